"""Where ``sagedock local`` keeps its jobs and endpoints on this machine.

``$SAGEDOCK_LOCAL_DIR`` if set, else ``$XDG_STATE_HOME/sagedock/local``, else
``~/.local/state/sagedock/local``. Under it: ``training-jobs/<name>/`` (the job record, logs,
and the per-host ``/opt/ml`` trees while a job runs), ``transform-jobs/<name>/`` and
``endpoints/<name>/``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOCAL_DIR_ENV = "SAGEDOCK_LOCAL_DIR"
TRAINING = "training-jobs"
TRANSFORM = "transform-jobs"
ENDPOINTS = "endpoints"


def local_root(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(LOCAL_DIR_ENV):
        return Path(env[LOCAL_DIR_ENV]).expanduser()
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path("~/.local/state").expanduser()
    return base / "sagedock" / "local"


def entry_dir(kind: str, name: str, environ: Mapping[str, str] | None = None) -> Path:
    return local_root(environ) / kind / name


def write_json_atomic(path: Path, value: Any) -> None:
    """Write *value* as JSON so that readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        tmp.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
