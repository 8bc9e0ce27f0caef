"""``sagedock serve`` (and the ``serve`` of an image): a SageMaker-compatible model server.

Every flag is generated from the settings table (``serving.settings``); a flag overrides its
environment variable, which overrides the default.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

HELP = "serve a model as SageMaker hosts it: nginx -> gunicorn workers -> your hooks (port 8080)"


def configure(parser: argparse.ArgumentParser) -> None:
    from .settings import settings_fields

    for spec in settings_fields():
        meta = spec.metadata
        if not meta["cli"]:
            continue
        help_text = f"{meta['doc']} (env {meta['env']})"
        if spec.type in ("bool", bool):
            parser.add_argument(
                meta["cli"],
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
            continue
        parser.add_argument(
            meta["cli"],
            dest=spec.name,
            type=_argparse_type(meta["parse"]),
            default=None,
            metavar=meta["env"].removeprefix("SAGEMAKER_").removeprefix("SAGEDOCK_"),
            help=help_text,
        )


def _argparse_type(parse: Any) -> Any:
    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


def run(args: argparse.Namespace) -> int:
    from sagedock.toolkit.errors import SagedockError

    from .server import configure_logging
    from .settings import ServingSettings, settings_fields
    from .supervisor import Supervisor

    overrides = {
        spec.name: getattr(args, spec.name)
        for spec in settings_fields()
        if spec.metadata["cli"] and getattr(args, spec.name, None) is not None
    }
    try:
        settings = ServingSettings.load(overrides=overrides)
    except SagedockError as exc:
        configure_logging(20)
        import logging

        logging.getLogger("sagedock.serving").critical("%s", exc.describe())
        return 2
    configure_logging(settings.log_level)
    return Supervisor(dataclasses.replace(settings)).run()
