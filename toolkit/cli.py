"""The ``sagedock`` command line, and the ``train`` / ``serve`` entry points of images.

Each subcommand lives in its own module that exposes::

    HELP: str                                        # one line for ``sagedock --help``
    def configure(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int         # the process exit code

The table below names those modules by import string, so that the command line stays the one
place that knows every command while ``toolkit`` imports nothing of ``serving`` or
``containers`` until a command needs it. Command modules must be cheap to import: they import
frameworks (xgboost, torch, boto3, ...) inside ``run``, never at module level.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from .version import __version__

#: subcommand name -> module implementing it; the order is the order of ``--help``.
SUBCOMMANDS: dict[str, str] = {
    "train": "sagedock.toolkit.commands.train",
    "demo": "sagedock.toolkit.commands.demo",
    "images": "sagedock.toolkit.images.command",
    "init": "sagedock.templates.command",
    "local": "sagedock.toolkit.local.cli",
    "serve": "sagedock.serving.command",
}


def _load(module_name: str) -> ModuleType:
    return importlib.import_module(module_name)


def build_parser() -> argparse.ArgumentParser:
    """The full ``sagedock`` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="sagedock",
        description="SageMaker-compatible training toolkit, model server and local platform.",
    )
    parser.add_argument("--version", action="version", version=f"sagedock {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = _load(module_name)
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(_command_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``sagedock [COMMAND] ...``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_command_module", None)
    if module is None:
        parser.print_help()
        return 2
    return int(module.run(args))


def _run_alias(command: str) -> int:
    # SageMaker starts containers as `docker run IMAGE train` / `IMAGE serve`; images put these
    # two names on PATH and they behave exactly like `sagedock train` / `sagedock serve`.
    return main([command, *sys.argv[1:]])


def train_entry() -> None:
    """Console script ``train``."""
    sys.exit(_run_alias("train"))


def serve_entry() -> None:
    """Console script ``serve``."""
    sys.exit(_run_alias("serve"))


if __name__ == "__main__":
    sys.exit(main())
