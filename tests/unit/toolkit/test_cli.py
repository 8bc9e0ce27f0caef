import subprocess
import sys

from sagedock.toolkit import __version__
from sagedock.toolkit.cli import SUBCOMMANDS, build_parser

HEAVY_MODULES = ("xgboost", "torch", "tensorflow", "onnxruntime", "boto3", "pandas", "pyarrow")


def test_version_flag_prints_the_package_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"sagedock {__version__}"


def test_help_lists_every_subcommand() -> None:
    text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in text


def test_building_the_cli_imports_no_ml_framework() -> None:
    code = (
        "import sys; from sagedock.toolkit.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
