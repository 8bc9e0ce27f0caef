"""Algorithm mode (`--algorithm` / SAGEDOCK_ALGORITHM, entry points or pkg.module:function)
and framework mode (SAGEMAKER_TRAINING_MODULE)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .jobs import DUMP_SCRIPT, Job, make_job

TOY_TRAIN = textwrap.dedent(
    """\
    from sagedock.toolkit.channels import open_channel
    from sagedock.toolkit.errors import UserError

    def train(env):
        rounds = env.hyperparameters.get("num_round")
        if not isinstance(rounds, int) or rounds < 1:
            raise UserError(f"hyperparameter num_round must be a positive integer, not {rounds!r}")
        rows = sum(len(p.read_text().splitlines()) for p in open_channel(env, "train").files())
        env.model_dir.mkdir(parents=True, exist_ok=True)
        (env.model_dir / "model.txt").write_text(f"{rounds} rounds on {rows} rows")

    def crash(env):
        return {}["missing"]

    def sleepy(env):
        import time
        print("ready", flush=True)
        try:
            time.sleep(120)
        except Exception:  # a stop must not be swallowed by `except Exception`
            pass

    def frozen(env):
        import gc
        env.model_dir.mkdir(parents=True, exist_ok=True)
        (env.model_dir / "frozen.txt").write_text(str(gc.get_freeze_count()))
    """
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory on PYTHONPATH holding the package `toyalgo` and a distribution that
    registers it in the `sagedock.algorithms` entry-point group."""
    root = tmp_path / "site"
    (root / "toyalgo").mkdir(parents=True)
    (root / "toyalgo" / "__init__.py").write_text("")
    (root / "toyalgo" / "train.py").write_text(TOY_TRAIN)
    info = root / "toyalgo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyalgo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sagedock.algorithms]\ntoy = toyalgo\n")
    return root


def _job(tmp_path: Path, hyperparameters: dict[str, object]) -> Job:
    return make_job(
        tmp_path / "ml",
        program=None,
        hyperparameters=hyperparameters,
        channels={"train": {"a.csv": "1,2\n3,4\n", "b/c.csv": "5,6\n"}},
    )


def test_algorithm_from_the_entry_point_group(tmp_path: Path, site: Path) -> None:
    job = _job(tmp_path, {"num_round": 5})
    result = job.run("--algorithm", "toy", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert (job.base / "model/model.txt").read_text() == "5 rounds on 3 rows"
    assert job.succeeded


def test_algorithm_from_the_environment_as_an_import_string(tmp_path: Path, site: Path) -> None:
    job = _job(tmp_path, {"num_round": 2})
    env = {"PYTHONPATH": str(site), "SAGEDOCK_ALGORITHM": "toyalgo.train:train"}
    assert job.run(env=env).returncode == 0
    assert (job.base / "model/model.txt").read_text() == "2 rounds on 3 rows"


def test_a_user_error_in_the_algorithm_is_a_client_error(tmp_path: Path, site: Path) -> None:
    job = _job(tmp_path, {"num_round": "many"})
    assert job.run("--algorithm", "toy", env={"PYTHONPATH": str(site)}).returncode == 1
    assert job.failure == (
        "ClientError: hyperparameter num_round must be a positive integer, not 'many'\n"
    )


def test_a_bug_in_the_algorithm_is_an_algorithm_error(tmp_path: Path, site: Path) -> None:
    job = _job(tmp_path, {"num_round": 1})
    result = job.run("--algorithm", "toyalgo.train:crash", env={"PYTHONPATH": str(site)})
    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("AlgorithmError: KeyError: 'missing'")
    assert 'return {}["missing"]' in job.failure


def test_an_unknown_algorithm_lists_the_installed_ones(tmp_path: Path, site: Path) -> None:
    job = _job(tmp_path, {})
    assert job.run("--algorithm", "nope", env={"PYTHONPATH": str(site)}).returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("ClientError: unknown algorithm 'nope'")
    assert "toy" in job.failure


def test_a_program_wins_over_the_algorithm(tmp_path: Path, site: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": DUMP_SCRIPT})
    env = {"PYTHONPATH": str(site), "SAGEDOCK_ALGORITHM": "toy"}
    assert job.run(env=env).returncode == 0
    assert (job.base / "output/data/seen.json").exists()


def test_sagemaker_training_module_is_called_in_process(tmp_path: Path) -> None:
    framework = tmp_path / "fw"
    framework.mkdir()
    (framework / "fwmod.py").write_text(
        "import os, pathlib\n"
        "def main():\n"
        "    base = pathlib.Path(os.environ['SAGEMAKER_BASE_DIR'])\n"
        "    (base / 'model').mkdir(parents=True, exist_ok=True)\n"
        "    (base / 'model' / 'fw.txt').write_text('framework ran')\n"
    )
    job = make_job(tmp_path / "ml", code={"train.py": DUMP_SCRIPT})
    env = {"PYTHONPATH": str(framework), "SAGEMAKER_TRAINING_MODULE": "fwmod:main"}
    result = job.run(env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (job.base / "model/fw.txt").read_text() == "framework ran"
    # The framework module decides what runs; the program named by sagemaker_program is not
    # started behind its back.
    assert not (job.base / "output/data/seen.json").exists()
    assert "dump script ran" not in result.stdout
    assert job.succeeded


def test_sigterm_stops_an_in_process_algorithm_with_a_failure_file(
    tmp_path: Path, site: Path
) -> None:
    import signal

    job = _job(tmp_path, {})
    proc = job.popen("--algorithm", "toyalgo.train:sleepy", env={"PYTHONPATH": str(site)})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert job.failure == "ClientError: the job was stopped (SIGTERM) before it finished.\n"


def test_a_stop_dropped_inside_the_framework_module_still_stops_the_job(tmp_path: Path) -> None:
    # SAGEMAKER_TRAINING_MODULE runs in this process as an algorithm does: a SIGTERM whose
    # exception ctypes dropped (as in XGBoost's log callback) must not end it as a success.
    job = make_job(tmp_path / "ml", program=None)
    env = {
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
        "SAGEMAKER_TRAINING_MODULE": "tests.fixtures.signals:signal_inside_ctypes_callback",
    }
    result = job.run(env=env)
    assert result.returncode == 143, result.stderr[-2000:]
    assert job.failure == "ClientError: the job was stopped (SIGTERM) before it finished.\n"
    assert not job.succeeded


def test_what_the_algorithm_imported_is_frozen_out_of_garbage_collection(
    tmp_path: Path, site: Path
) -> None:
    # Left in, an algorithm's imports (~10^6 objects for xgboost) make the interpreter's full
    # collections at exit cost 0.3 s.
    job = _job(tmp_path, {})
    result = job.run("--algorithm", "toyalgo.train:frozen", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert int((job.base / "model/frozen.txt").read_text()) > 1000


def test_a_built_in_algorithm_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    # `pip install sagedock` without `[xgboost]`: xgboost cannot be imported. A sitecustomize
    # on PYTHONPATH hides it from this job's interpreter only.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['xgboost'] = None\n")
    job = _job(tmp_path, {"num_round": 1})
    result = job.run("--algorithm", "xgboost", env={"PYTHONPATH": str(hide)})
    assert result.returncode == 1
    assert job.failure == (
        "ClientError: the algorithm 'xgboost' needs the Python module 'xgboost', not installed: "
        "pip install 'sagedock[xgboost]'\n"
    )
    assert "Traceback" not in result.stderr


def test_a_third_party_algorithm_missing_a_module_gets_no_install_hint(
    tmp_path: Path, site: Path
) -> None:
    (site / "toyalgo" / "train.py").write_text("import no_such_module_xyz\n")
    job = _job(tmp_path, {})
    assert job.run("--algorithm", "toy", env={"PYTHONPATH": str(site)}).returncode == 1
    assert job.failure == (
        "ClientError: the algorithm 'toy' needs the Python module 'no_such_module_xyz', "
        "not installed\n"
    )
