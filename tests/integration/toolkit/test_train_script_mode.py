"""`sagedock train` in script mode, run as a separate process on temporary /opt/ml trees."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
from pathlib import Path

from .jobs import DUMP_SCRIPT, isolated_venv, make_job, make_tarball


def test_script_gets_sm_env_and_hyperparameters_as_argv(tmp_path: Path) -> None:
    job = make_job(
        tmp_path / "ml",
        code={"train.py": DUMP_SCRIPT},
        hyperparameters={"epochs": 10, "lr": 0.1, "b": True, "layers": [1, 2], "name": "a b"},
        channels={"train": {"part-0.csv": "1,2\n"}, "test": {"t.csv": "3,4\n"}},
    )
    result = job.run()
    assert result.returncode == 0, result.stderr
    seen = job.seen()
    assert seen["argv"] == [
        "-b", "True", "--epochs", "10", "--layers", "[1, 2]", "--lr", "0.1", "--name", "a b",
    ]  # fmt: skip
    env = seen["env"]
    assert env["SM_CHANNEL_TRAIN"] == str(job.base / "input/data/train")
    assert env["SM_CHANNEL_TEST"] == str(job.base / "input/data/test")
    assert env["SM_CHANNELS"] == '["test","train"]'
    assert env["SM_HPS"] == '{"b":true,"epochs":10,"layers":[1,2],"lr":0.1,"name":"a b"}'
    assert env["SM_HP_LAYERS"] == "[1,2]"
    assert env["SM_MODEL_DIR"] == str(job.base / "model")
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert json.loads(env["SM_USER_ARGS"]) == seen["argv"]
    assert json.loads(env["SM_TRAINING_ENV"])["hyperparameters"]["epochs"] == 10
    assert env["CURRENT_HOST"] == "algo-1"


def test_child_runs_unbuffered_in_the_code_dir_with_it_on_pythonpath(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": DUMP_SCRIPT})
    assert job.run().returncode == 0
    seen = job.seen()
    assert seen["cwd"] == str(job.code_dir)
    assert seen["env"]["PYTHONUNBUFFERED"] == "1"
    assert seen["env"]["PYTHONPATH"].split(":")[0] == str(job.code_dir)


#: Prints a line without flushing, then waits until told to go (``--go FILE`` appears).
STREAMING_SCRIPT = textwrap.dedent(
    """\
    import os, sys, time
    print("first line")
    go = sys.argv[sys.argv.index("--go") + 1]
    deadline = time.monotonic() + 20
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("never told to go: nobody saw the first line while this script ran")
        time.sleep(0.05)
    print("second line")
    """
)


def test_output_is_streamed_while_the_script_runs_though_it_never_flushes(tmp_path: Path) -> None:
    go = tmp_path / "go"
    job = make_job(
        tmp_path / "ml", code={"train.py": STREAMING_SCRIPT}, hyperparameters={"go": str(go)}
    )
    proc = job.popen()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        go.touch()
        rest, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert first == "first line\n"
    assert proc.returncode == 0, stderr[-2000:]
    assert rest == "second line\n"


def test_success_file_written_and_output_streamed(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": DUMP_SCRIPT})
    result = job.run()
    assert result.returncode == 0
    assert "dump script ran" in result.stdout
    assert job.succeeded and job.failure is None


def test_exit_code_3_passes_through_with_failure_file(tmp_path: Path) -> None:
    script = "import sys\nprint('about to fail', file=sys.stderr)\nsys.exit(3)\n"
    job = make_job(tmp_path / "ml", code={"train.py": script})
    result = job.run()
    assert result.returncode == 3
    assert job.failure is not None
    assert job.failure.startswith("ClientError: train.py exited with code 3.")
    assert "about to fail" in job.failure[:1024]
    assert not job.succeeded


def test_traceback_tail_is_within_the_first_1024_chars(tmp_path: Path) -> None:
    script = (
        "for i in range(500):\n    print('noise', i, 'x' * 60, flush=True)\n"
        "raise ValueError('bad lr')\n"
    )
    import_noise = "import sys\nfor i in range(300):\n    print('warn', i, file=sys.stderr)\n"
    job = make_job(tmp_path / "ml", code={"train.py": import_noise + script})
    assert job.run().returncode == 1
    assert job.failure is not None
    assert "ValueError: bad lr" in job.failure[:1024]


def test_failure_file_written_by_the_script_is_kept(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('my reason')\n"
        "sys.exit(5)\n"
    )
    job = make_job(tmp_path / "ml", code={"train.py": script})
    job.base.joinpath("output").mkdir(parents=True)
    assert job.run().returncode == 5
    assert job.failure == "my reason"


def test_a_rerun_in_the_same_tree_reports_only_its_own_outcome(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": "import sys\nsys.exit(4)\n"})
    assert job.run().returncode == 4
    assert job.failure is not None
    (job.code_dir / "train.py").write_text("print('fixed')\n")
    assert job.run().returncode == 0
    assert job.succeeded and job.failure is None


def test_malformed_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": DUMP_SCRIPT})
    (job.config_dir / "hyperparameters.json").write_text('{\n  "epochs": "3",\n  "lr": 0.1,,\n}')
    result = job.run()
    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("ClientError: ")
    assert "hyperparameters.json: malformed JSON at line 3, column 13" in job.failure


def test_missing_channel_directory_is_a_client_error_naming_it(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": DUMP_SCRIPT})
    job.write_config("inputdataconfig.json", {"train": {"TrainingInputMode": "File"}})
    result = job.run()
    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("ClientError: channel 'train'")
    assert str(job.base / "input/data/train") in job.failure


def test_missing_resourceconfig_means_one_local_host(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": DUMP_SCRIPT})
    (job.config_dir / "resourceconfig.json").unlink()
    result = job.run()
    assert result.returncode == 0, result.stderr
    assert job.seen()["env"]["SM_HOSTS"] == '["algo-1"]'
    assert "running as one local host" in result.stderr


def test_missing_entry_point_lists_the_code_dir(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", program="trian.py", code={"train.py": DUMP_SCRIPT})
    assert job.run().returncode == 1
    assert job.failure is not None
    assert "'trian.py' is not in the code directory" in job.failure
    assert "train.py" in job.failure


def test_sagemaker_program_env_wins_over_the_hyperparameter(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", program="missing.py", code={"other.py": DUMP_SCRIPT})
    assert job.run(env={"SAGEMAKER_PROGRAM": "other.py"}).returncode == 0
    assert job.seen()["env"]["SM_USER_ENTRY_POINT"] == "other.py"


def test_shell_script_gets_hyperparameters_as_argv_without_a_shell_string(tmp_path: Path) -> None:
    script = 'printf "%s|" "$@" > "$SM_OUTPUT_DATA_DIR/args.txt"\n'
    job = make_job(
        tmp_path / "ml",
        program="run.sh",
        code={"run.sh": 'mkdir -p "$SM_OUTPUT_DATA_DIR"\n' + script},
        hyperparameters={"msg": "it's $HOME; `x`"},
    )
    assert job.run().returncode == 0
    args = (job.base / "output/data/args.txt").read_text()
    assert args == "--msg|it's $HOME; `x`|"


BASH_ONLY_SCRIPT = """\
#!/bin/bash
set -euo pipefail
args=("$@")
[[ ${#args[@]} -eq 2 ]]
mkdir -p "$SM_OUTPUT_DATA_DIR"
printf '%s|' "${args[@]}" > "$SM_OUTPUT_DATA_DIR/args.txt"
echo "$BASH_VERSION" > "$SM_OUTPUT_DATA_DIR/bash.txt"
"""


def test_shell_script_with_a_bash_shebang_runs_under_bash(tmp_path: Path) -> None:
    # Arrays and [[ ]] are syntax errors for dash, Debian's /bin/sh.
    job = make_job(
        tmp_path / "ml",
        program="run.sh",
        code={"run.sh": BASH_ONLY_SCRIPT},
        hyperparameters={"msg": "it's $HOME"},
    )
    (job.code_dir / "run.sh").chmod(0o644)
    result = job.run()
    assert result.returncode == 0, result.stderr[-2000:]
    assert (job.base / "output/data/args.txt").read_text() == "--msg|it's $HOME|"
    assert (job.base / "output/data/bash.txt").read_text().strip()
    assert stat.S_IMODE((job.code_dir / "run.sh").stat().st_mode) == 0o744


def test_a_missing_shebang_interpreter_is_a_client_error_naming_it(tmp_path: Path) -> None:
    job = make_job(
        tmp_path / "ml", program="run.sh", code={"run.sh": "#!/no/such/shell\necho hi\n"}
    )
    assert job.run().returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("ClientError: cannot start run.sh")
    assert "the interpreter on its first line (#!/no/such/shell) does not exist" in job.failure


def test_package_with_pyproject_runs_as_module(tmp_path: Path) -> None:
    # A package whose build backend lives in the code dir itself: pip needs no network.
    backend = (
        "import os, zipfile\n"
        "def _wheel(d):\n"
        "    name = 'trainpkg-1.0-py3-none-any.whl'\n"
        "    with zipfile.ZipFile(os.path.join(d, name), 'w') as z:\n"
        "        z.writestr('trainpkg_marker.py', 'VALUE = 42\\n')\n"
        "        z.writestr('trainpkg-1.0.dist-info/METADATA', "
        "'Metadata-Version: 2.1\\nName: trainpkg\\nVersion: 1.0\\n')\n"
        "        z.writestr('trainpkg-1.0.dist-info/WHEEL', "
        "'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n"
        "        z.writestr('trainpkg-1.0.dist-info/RECORD', '')\n"
        "    return name\n"
        "def build_wheel(d, config_settings=None, metadata_directory=None):\n"
        "    return _wheel(d)\n"
        "def get_requires_for_build_wheel(config_settings=None):\n"
        "    return []\n"
    )
    pyproject = '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    entry = (
        "import os, sys, trainpkg_marker\n"
        "os.makedirs(os.environ['SM_MODEL_DIR'], exist_ok=True)\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'v'), 'w').write("
        "f'{__name__} {trainpkg_marker.VALUE} {sys.argv[1:]}')\n"
    )
    job = make_job(
        tmp_path / "ml",
        program="entry.py",
        code={"pyproject.toml": pyproject, "backend.py": backend, "entry.py": entry},
        hyperparameters={"k": 1},
    )
    venv = isolated_venv(tmp_path / "venv")
    result = job.run(python=str(venv))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (job.base / "model/v").read_text() == "__main__ 42 ['-k', '1']"


SETUP_PY = """\
from setuptools import setup
setup(name="trainpkg", version="1.0", py_modules=["trainpkg_marker"])
"""
#: The package's entry point: records how it was run.
PACKAGE_ENTRY = """\
import json, os, sys
import trainpkg_marker
seen = {
    "name": __name__,
    "spec": __spec__.name if __spec__ else None,
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith("SM_") or k == "PYTHONPATH"},
}
os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
"""


def test_package_with_setup_py_is_installed_and_runs_as_module(tmp_path: Path) -> None:
    job = make_job(
        tmp_path / "ml",
        program="entry.py",
        code={"setup.py": SETUP_PY, "trainpkg_marker.py": "VALUE = 1\n", "entry.py": PACKAGE_ENTRY},
        hyperparameters={"epochs": 2, "lr": 0.5},
    )
    venv = tmp_path / "venv"
    python = isolated_venv(venv)
    # setuptools comes from the test venv (seen through the isolated venv's .pth), not from the
    # package index: no network.
    result = job.run(python=str(python), env={"PIP_NO_BUILD_ISOLATION": "0"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    seen = job.seen()
    assert seen["name"] == "__main__" and seen["spec"] == "entry"  # python -m entry
    assert seen["argv"] == ["--epochs", "2", "--lr", "0.5"]
    env = seen["env"]
    assert env["SM_USER_ENTRY_POINT"] == "entry.py"
    assert env["SM_MODULE_NAME"] == "entry"
    assert env["SM_HPS"] == '{"epochs":2,"lr":0.5}'
    assert env["SM_MODULE_DIR"] == str(job.code_dir)
    assert env["PYTHONPATH"].split(":")[0] == str(job.code_dir)
    # pip install . put the package's module into the venv that runs the job.
    assert list(venv.glob("lib/python*/site-packages/trainpkg_marker.py"))


def test_submit_directory_tarball_is_extracted_into_the_code_dir(tmp_path: Path) -> None:
    archive = tmp_path / "sourcedir.tar.gz"
    make_tarball(archive, {"train.py": DUMP_SCRIPT, "lib/helper.py": "X = 1\n"})
    job = make_job(
        tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": archive.as_uri()}
    )
    assert job.run().returncode == 0
    assert (job.code_dir / "lib/helper.py").read_text() == "X = 1\n"
    assert job.seen()["env"]["SM_MODULE_DIR"] == archive.as_uri()


def test_path_traversal_tarball_is_refused_naming_the_member(tmp_path: Path) -> None:
    archive = tmp_path / "sourcedir.tar.gz"
    make_tarball(archive, {"train.py": DUMP_SCRIPT, "../../escaped.py": "boom\n"})
    job = make_job(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": str(archive)})
    assert job.run().returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("ClientError: unsafe archive member '../../escaped.py'")
    assert not (tmp_path / "escaped.py").exists()
    assert not job.code_dir.exists() or not any(job.code_dir.iterdir())


def test_code_already_in_the_code_dir_wins_over_the_submit_directory(tmp_path: Path) -> None:
    archive = tmp_path / "sourcedir.tar.gz"
    make_tarball(archive, {"train.py": "raise SystemExit(9)\n"})
    job = make_job(
        tmp_path / "ml",
        code={"train.py": DUMP_SCRIPT},
        hyperparameters={"sagemaker_submit_directory": str(archive)},
    )
    assert job.run().returncode == 0


def test_nothing_to_run_is_a_client_error(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", program=None)
    assert job.run().returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("ClientError: nothing to train")


def test_train_console_script_is_sagedock_train(tmp_path: Path) -> None:
    import subprocess

    job = make_job(tmp_path / "ml", code={"train.py": DUMP_SCRIPT})
    train = Path(sys.executable).parent / "train"
    result = subprocess.run([str(train)], env=job.environ(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert job.succeeded
