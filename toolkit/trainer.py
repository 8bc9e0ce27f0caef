"""``train``: environment -> code -> dependencies -> launch -> outcome.

What runs, in order of precedence:

1. ``SAGEMAKER_TRAINING_MODULE=pkg.module:function`` (framework images): ``function()`` is
   called in this process, as AWS's toolkit does;
2. script mode, when ``SAGEMAKER_PROGRAM`` or the ``sagemaker_program`` hyperparameter names a
   program: the code is fetched from ``sagemaker_submit_directory``, its requirements installed,
   and the program launched as a child (one process, torch.distributed or MPI);
3. algorithm mode, ``--algorithm NAME`` or ``SAGEDOCK_ALGORITHM=NAME``: NAME is an entry point
   of the ``sagedock.algorithms`` group (a package whose ``train`` module has
   ``train(env)``) or an import string ``pkg.module:function``; it is called with the
   :class:`~sagedock.toolkit.env.TrainingEnv`.

Every way of ending goes through :mod:`sagedock.toolkit.outcome`.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, metadata
from typing import Any

from .channels import check_channel_dirs
from .env import TrainingEnv
from .errors import SagedockError, UserError
from .install import install_package, install_requirements
from .launch.plan import plan_command
from .launch.process import run
from .launch.program import EntryKind, Program
from .outcome import SUCCESS, Outcome, clear_previous, from_completed, from_exception, report
from .paths import MlPaths
from .signals import DEFAULT_GRACE_SECONDS, raise_if_stopped, stop_signals_raise
from .sources import fetch_code

log = logging.getLogger(__name__)

ALGORITHM_ENV = "SAGEDOCK_ALGORITHM"
ALGORITHM_GROUP = "sagedock.algorithms"
GRACE_ENV = "SAGEDOCK_STOP_GRACE_SECONDS"

Algorithm = Callable[[TrainingEnv], Any]


@dataclass(frozen=True)
class TrainSettings:
    """How ``train`` runs, as opposed to what it trains (that is :class:`TrainingEnv`).

    Precedence: command line > environment > default, resolved once in :meth:`resolve`.
    """

    algorithm: str | None = None
    """``--algorithm`` / ``SAGEDOCK_ALGORITHM``: the algorithm to run without a program."""
    grace_period: float = DEFAULT_GRACE_SECONDS
    """``SAGEDOCK_STOP_GRACE_SECONDS``: from a forwarded SIGTERM to SIGKILL."""
    python: str = sys.executable
    """The interpreter that installs requirements and runs Python programs."""

    @classmethod
    def resolve(cls, environ: Mapping[str, str], *, algorithm: str | None = None) -> TrainSettings:
        grace_text = environ.get(GRACE_ENV, "").strip()
        try:
            grace = float(grace_text) if grace_text else DEFAULT_GRACE_SECONDS
        except ValueError:
            raise UserError(
                f"{GRACE_ENV} must be a number of seconds, not {grace_text!r}"
            ) from None
        return cls(
            algorithm=algorithm or environ.get(ALGORITHM_ENV) or None,
            grace_period=grace,
        )


def train(environ: Mapping[str, str] | None = None, *, algorithm: str | None = None) -> int:
    """Run the training job of *environ* (default ``os.environ``); returns the exit code.

    Never raises for a failed job: the failure is in ``output/failure`` and the exit code.
    """
    env_map = os.environ if environ is None else environ
    paths = MlPaths.from_env(env_map)
    clear_previous(paths)
    try:
        with stop_signals_raise():
            settings = TrainSettings.resolve(env_map, algorithm=algorithm)
            env = TrainingEnv.load(env_map, paths)
            logging.getLogger("sagedock").setLevel(env.log_level)
            outcome = run_job(env, env_map, settings)
            # A stop whose exception was dropped (raised inside a ctypes callback, as XGBoost's
            # log callback is) still ends an in-process job as stopped, not as a success. A
            # stop while a program runs goes to its supervisor, which forwards it and records
            # nothing here: the program's own outcome stands.
            raise_if_stopped()
    except SystemExit as exc:
        outcome = _from_system_exit(exc)
    except SagedockError as exc:  # a failure we describe ourselves: no traceback needed
        log.debug("training failed", exc_info=True)
        outcome = from_exception(exc)
    except BaseException as exc:  # anything else, ours or a stop signal, still gets reported
        if isinstance(exc, Exception):
            log.exception("training failed")
        outcome = from_exception(exc)
    return report(outcome, paths)


def run_job(env: TrainingEnv, environ: Mapping[str, str], settings: TrainSettings) -> Outcome:
    """Dispatch to the framework module, the user's program or an algorithm."""
    if env.framework_module:
        log.info("running the framework module %s", env.framework_module)
        function = import_string(env.framework_module, what="SAGEMAKER_TRAINING_MODULE")
        function()
        return SUCCESS
    if env.user_entry_point:
        return run_script(env, environ, settings)
    if settings.algorithm:
        log.info("running the algorithm %s", settings.algorithm)
        algorithm = load_algorithm(settings.algorithm)
        # What the algorithm imported (xgboost alone brings scipy, pandas and scikit-learn) lives
        # as long as the process: frozen, it is left out of every later garbage collection,
        # the interpreter's full collections at exit included (0.3 s for xgboost).
        gc.freeze()
        algorithm(env)
        return SUCCESS
    raise UserError(
        "nothing to train: name a program (SAGEMAKER_PROGRAM or the sagemaker_program "
        f"hyperparameter) or an algorithm (--algorithm or {ALGORITHM_ENV})"
    )


def run_script(env: TrainingEnv, environ: Mapping[str, str], settings: TrainSettings) -> Outcome:
    """Script mode: fetch the code, install its dependencies, launch it, report its outcome."""
    assert env.user_entry_point is not None
    code_dir = env.paths.code_dir
    fetch_code(env.module_dir, code_dir, environ=environ)
    check_channel_dirs(env)
    program = Program.find(code_dir, env.user_entry_point)
    if program.kind is EntryKind.PYTHON_PACKAGE:
        install_package(code_dir, python=settings.python, environ=environ)
    elif (code_dir / "requirements.txt").is_file():
        install_requirements(code_dir / "requirements.txt", python=settings.python, environ=environ)
    program.make_executable()
    launcher, command = plan_command(env, program, environ=environ, python=settings.python)
    log.info("training environment:\n%s", json.dumps(env.to_training_env(), indent=4))
    log.info("invoking %s (%s launcher)", program.entry, launcher)
    completed = run(command, grace_period=settings.grace_period)
    return from_completed(completed)


def import_string(spec: str, *, what: str) -> Callable[..., Any]:
    """The callable named by ``pkg.module:function``.

    :raises UserError: *spec* is malformed, its module does not exist, or has no such name.
        An ImportError raised *inside* the module (a missing dependency) propagates unchanged.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UserError(f"{what} must look like 'package.module:function', not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise UserError(f"{what}: no module named {module_name!r} (from {spec!r})") from None
        raise
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise UserError(f"{what}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UserError(f"{what}: {spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def load_algorithm(name: str) -> Algorithm:
    """The training function of the algorithm *name* (entry point or ``pkg.module:function``).

    :raises UserError: *name* is neither; the message lists the installed algorithms.
    """
    if ":" in name:
        return import_string(name, what="the algorithm")
    found = {ep.name: ep.value for ep in entry_points(group=ALGORITHM_GROUP)}
    if name not in found:
        installed = ", ".join(sorted(found)) or "none"
        raise UserError(
            f"unknown algorithm {name!r} (installed algorithms: {installed}; or give "
            "'package.module:function')"
        )
    target = found[name]
    spec = target if ":" in target else f"{target}.train:train"
    try:
        return import_string(spec, what=f"the algorithm {name!r}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "sagedock":
            raise
        raise UserError(_missing_dependency_message(name, exc.name)) from None


def _missing_dependency_message(algorithm: str, module: str) -> str:
    """What to install when *algorithm*'s import fails on *module*.

    Each built-in algorithm has an extra of its own name (``sagedock[xgboost]``); an algorithm
    from another distribution gets no install hint we could not stand behind.
    """
    message = f"the algorithm {algorithm!r} needs the Python module {module!r}, not installed"
    try:
        extras = metadata("sagedock").get_all("Provides-Extra") or []
    except PackageNotFoundError:
        extras = []
    if _normalised(algorithm) in {_normalised(extra) for extra in extras}:
        message += f": pip install 'sagedock[{algorithm}]'"
    return message


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _from_system_exit(exc: SystemExit) -> Outcome:
    code = exc.code
    if code is None or code == 0:
        return SUCCESS
    if isinstance(code, int):
        return Outcome(code, f"AlgorithmError: training exited with code {code}.")
    return Outcome(1, f"AlgorithmError: training exited: {code}")
