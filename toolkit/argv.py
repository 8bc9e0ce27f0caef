"""Hyperparameters -> the user script's command-line arguments, exactly as AWS builds them.

Keys are sorted; each becomes ``--key`` (``-k`` when it is one character) followed by its value
in :func:`~sagedock.toolkit.encoding.arg_value` form, so ``{"epochs": 10, "lr": 0.1, "b":
True}`` becomes ``["-b", "True", "--epochs", "10", "--lr", "0.1"]``. There are no bare flags:
argparse code reads ``--flag True`` (users declare ``type=str2bool`` or similar).

The result is an argv list handed to the child as it is; it never passes through a shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .encoding import arg_value


def arg_name(key: str) -> str:
    """``--key``, ``-k`` for a one-character key, ``""`` for an empty one."""
    if not key:
        return ""
    return f"-{key}" if len(key) == 1 else f"--{key}"


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``[name, value, name, value, ...]`` for *hyperparameters*, sorted by key."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        args += [arg_name(str(key)), arg_value(hyperparameters[key])]
    return args
