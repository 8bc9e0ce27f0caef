"""The three value codecs of the training contract, one name each.

SageMaker hands every hyperparameter over as a string, and AWS's training toolkit turns each one
into a Python value and back into text twice, by two different rules. User code already depends
on both, so sagedock reproduces them exactly, here and nowhere else:

- :func:`decode_hyperparameter`: ``hyperparameters.json`` value -> Python value (JSON where it
  parses, the value itself otherwise).
- :func:`env_value`: Python value -> ``SM_*`` variable text (compact, sorted JSON; strings as
  they are).
- :func:`arg_value`: Python value -> command-line argument text (Python's ``str()``, dicts as
  ``k=v,...``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def decode_hyperparameter(raw: Any) -> Any:
    """The value of one ``hyperparameters.json`` entry as user code sees it.

    ``'"train.py"'`` -> ``'train.py'``, ``'10'`` -> ``10``, ``'[1, 2]'`` -> ``[1, 2]``,
    ``'true'`` -> ``True``; text that is not JSON (``'some words'``) and values that are not
    strings at all are returned unchanged.

    :raises RecursionError: for JSON nested too deeply to decode (the caller names the file).
    """
    if not isinstance(raw, str | bytes | bytearray):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def env_value(value: Any) -> str:
    """The text of an ``SM_*`` variable holding *value*.

    Strings as they are, ``None`` as ``""``, bytes decoded as latin-1, anything else as compact
    JSON with sorted keys (``True`` -> ``true``, ``[1, 2]`` -> ``[1,2]``).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def arg_value(value: Any) -> str:
    """The text of the command-line argument holding *value*.

    Python's ``str()`` (``True`` -> ``True``, ``[1, 'x']`` -> ``[1, 'x']``), ``None`` as ``""``,
    bytes decoded as latin-1, and a mapping as ``k1=v1,k2=v2`` sorted by key.
    """
    if isinstance(value, Mapping):
        return ",".join(f"{key}={item}" for key, item in sorted(value.items()))
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)
