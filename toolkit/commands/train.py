"""``sagedock train`` (and the ``train`` command of images): run the job under /opt/ml."""

from __future__ import annotations

import argparse
import logging

HELP = "run the training job laid out under /opt/ml (or SAGEMAKER_BASE_DIR)"

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--algorithm",
        metavar="NAME",
        help="built-in algorithm (entry point of sagedock.algorithms) or package.module:function "
        "to run when no program is given; default: $SAGEDOCK_ALGORITHM",
    )


def run(args: argparse.Namespace) -> int:
    from ..trainer import train

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return train(algorithm=args.algorithm)
