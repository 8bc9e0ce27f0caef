"""``sagedock images``: argument handling, the printed table and --report, without an engine.
(tests/images/test_images_command.py runs the same command against a real one.)"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.images import command
from sagedock.toolkit.images.build import BuildResult
from sagedock.toolkit.images.catalog import repository

REPO = Path(__file__).resolve().parents[3]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sagedock images")
    command.configure(parser)
    return parser.parse_args(argv)


def _result(tag: str, size: int, seconds: float, wheels: int, wheel_bytes: int) -> BuildResult:
    name = tag.rsplit("/", 1)[-1].split(":")[0]
    return BuildResult(
        name=name,
        tags=(tag, tag.rsplit(":", 1)[0] + ":latest"),
        size=size,
        seconds=seconds,
        resolve_seconds=1.25,
        wheels=wheels,
        wheel_bytes=wheel_bytes,
        layers=((1000, "RUN pip install"), (0, "LABEL a=b")),
    )


def _sagedock_images(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The real command in a process whose PATH has no docker on it."""
    env = dict(os.environ, PATH=str(tmp_path), SAGEDOCK_IMAGES_CACHE=str(tmp_path / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "images", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_build_options_follow_the_flags(tmp_path: Path) -> None:
    args = _parse(
        "build", "--offline", "--tag", "registry.example:5000/team", "-q",
        "--source", str(REPO), "--cache", str(tmp_path / "c"), "xgboost",
    )  # fmt: skip
    options = command.build_options(args)
    assert args.names == ["xgboost"]
    assert options.offline is True
    assert options.prefix == "registry.example:5000/team"
    assert options.echo_build is False
    assert options.source == REPO
    assert options.cache == tmp_path / "c"


def test_build_defaults_are_online_with_the_sagedock_prefix_and_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAGEDOCK_IMAGES_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    options = command.build_options(_parse("build", "--source", str(REPO)))
    assert (options.offline, options.prefix, options.echo_build) == (False, "sagedock", True)
    assert options.cache == tmp_path / "sagedock" / "images"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("build", "nope"), "unknown image 'nope'; known images: base, xgboost"),
        (("build", "--tag", "", "base"), "the tag prefix must not be empty"),
        (("build", "--tag", "Team/Images", "base"), "'Team' is not a valid repository component"),
    ],
)
def test_bad_arguments_fail_before_anything_is_built(
    argv: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    # no docker on PATH: had the build started, the error would be about the engine
    done = _sagedock_images(*argv, tmp_path=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr
    assert not (tmp_path / "cache").exists()  # nothing was prepared


def test_repository_prefixes_docker_accepts() -> None:
    for prefix in ("sagedock", "team/images", "registry.example:5000/team", "localhost/x_y-z"):
        assert repository("base", prefix) == f"{prefix}/base"
    for prefix in ("Team", "team//x", "-team", "team/ima ges"):
        with pytest.raises(UserError, match="not a valid repository component"):
            repository("base", prefix)


def test_the_results_table_lines_up_sizes_times_and_wheels() -> None:
    table = command.results_table(
        [
            _result("sagedock/base:0.1.0", 257_000_000, 28.14, 19, 38_400_000),
            _result("registry.example:5000/team/xgboost:0.1.0", 673_600_000, 22.86, 4, 108e6),
        ]
    ).splitlines()
    assert table[0].split() == ["IMAGE", "SIZE", "BUILD", "WHEELS"]
    assert table[1].split() == ["sagedock/base:0.1.0", "257", "MB", "28.1", "s", "38", "MB/19"]
    assert table[2].split() == [
        "registry.example:5000/team/xgboost:0.1.0", "674", "MB", "22.9", "s", "108", "MB/4",
    ]  # fmt: skip
    # a long tag widens the first column instead of pushing the others out of line
    assert len({line.index(" MB ") for line in table[1:]}) == 1
    assert table[0].index("SIZE") < table[1].index(" MB ")


def test_the_report_is_the_results_as_json(tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.json"
    command.write_report(report, [_result("sagedock/base:0.1.0", 257_000_000, 28.14, 19, 38e6)])
    assert json.loads(report.read_text()) == [
        {
            "name": "base",
            "tags": ["sagedock/base:0.1.0", "sagedock/base:latest"],
            "size_bytes": 257_000_000,
            "build_seconds": 28.1,
            "resolve_seconds": 1.2,
            "wheels": 19,
            "wheel_bytes": 38e6,
            "layers": [
                {"bytes": 1000, "created_by": "RUN pip install"},
                {"bytes": 0, "created_by": "LABEL a=b"},
            ],
        }
    ]
    assert [p.name for p in report.parent.iterdir()] == ["report.json"]


def test_list_without_an_engine_shows_the_catalog_and_says_why_nothing_is_built(
    tmp_path: Path,
) -> None:
    done = _sagedock_images("list", "--tag", "team", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert rows[0].split()[:3] == ["IMAGE", "BUILT", "SIZE"]
    names = [row.split()[0] for row in rows[1:]]
    assert names == [f"team/{n}:0.1.0" for n in command.catalog.CATALOG]
    assert all(row.split()[1] == "-" for row in rows[1:])
    assert "(no engine: the docker command is not installed" in done.stderr


def test_bootstrap_base_without_an_engine_fails_saying_how_to_start_one(tmp_path: Path) -> None:
    done = _sagedock_images("bootstrap-base", "--no-pull", tmp_path=tmp_path)
    assert done.returncode == 1
    assert "cannot build images: the docker command is not installed" in done.stderr
    assert "scripts/docker-up" in done.stderr


def test_no_action_prints_the_usage_and_exits_2(tmp_path: Path) -> None:
    done = _sagedock_images(tmp_path=tmp_path)
    assert done.returncode == 2
    assert "usage: sagedock images {build,list,bootstrap-base}" in done.stderr
