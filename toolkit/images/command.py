"""``sagedock images build|list|bootstrap-base``: build and inspect sagedock's Docker images."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SagedockError, UserError
from ..version import __version__
from . import catalog

if TYPE_CHECKING:
    from .build import BuildOptions, BuildResult

HELP = "build and list sagedock's Docker images (base, xgboost, pytorch, ...)"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="images_action", metavar="ACTION")

    build = actions.add_parser(
        "build",
        help="build images (and the images they start FROM) in dependency order",
        description=(
            "Prepare each image's wheelhouse (a wheel of the checkout + its pinned "
            "requirements) and docker-build it; prints each image's size and build time."
        ),
    )
    build.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"images to build (default: all of {', '.join(catalog.CATALOG)})",
    )
    build.add_argument(
        "--offline",
        action="store_true",
        help="use only the wheel cache and local images; reach no package index or registry",
    )
    build.add_argument(
        "--tag",
        metavar="PREFIX",
        default=catalog.DEFAULT_PREFIX,
        help="repository prefix: images are tagged PREFIX/NAME:VERSION and PREFIX/NAME:latest "
        f"(default {catalog.DEFAULT_PREFIX})",
    )
    _source_args(build)
    build.add_argument("-q", "--quiet", action="store_true", help="do not echo docker's output")
    build.add_argument(
        "--report", type=Path, metavar="FILE", help="also write the results as JSON to FILE"
    )

    lister = actions.add_parser("list", help="list the catalog and which images are built")
    lister.add_argument("--tag", metavar="PREFIX", default=catalog.DEFAULT_PREFIX)

    boot = actions.add_parser(
        "bootstrap-base",
        help=f"make {catalog.DEBIAN_BASE} locally (debootstrap + docker import) when missing",
    )
    boot.add_argument(
        "--no-pull", action="store_true", help="do not try `docker pull` before debootstrap"
    )
    _cache_arg(boot)


def _source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        type=Path,
        metavar="CHECKOUT",
        help="the sagedock checkout holding Dockerfiles/ (default: the one sagedock runs from, "
        "else the current directory)",
    )
    _cache_arg(parser)


def _cache_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="wheel and root-fs cache (default $SAGEDOCK_IMAGES_CACHE, else "
        "sagedock/images in $XDG_CACHE_HOME or ~/.cache)",
    )


def _source(args: argparse.Namespace) -> Path:
    from .wheelhouse import source_root_of_package

    if args.source is not None:
        return Path(args.source).resolve()
    found = source_root_of_package()
    if found is not None:
        return found
    cwd = Path.cwd()
    if (cwd / "Dockerfiles").is_dir():
        return cwd
    raise UserError("no sagedock checkout found: run from one, or pass --source CHECKOUT")


def _cache(args: argparse.Namespace) -> Path:
    from .build import default_cache

    return Path(args.cache).resolve() if args.cache else default_cache()


def build_options(args: argparse.Namespace) -> BuildOptions:
    """The :class:`~.build.BuildOptions` of ``sagedock images build`` *args*.

    :raises UserError: an unknown image name or an empty ``--tag``, before anything is built.
    """
    from .build import BuildOptions

    catalog.build_order(args.names or None)  # names the unknown image, if any
    catalog.repository("base", args.tag)  # an unusable prefix fails here, not mid-build
    return BuildOptions(
        source=_source(args),
        cache=_cache(args),
        offline=args.offline,
        prefix=args.tag,
        echo_build=not args.quiet,
        log=lambda line: print(line, flush=True),
    )


def results_table(results: Sequence[BuildResult]) -> str:
    """The table ``build`` ends with: each image's tag, size, build time and new wheels."""
    width = max([len("IMAGE"), *(len(res.tags[0]) for res in results)])
    lines = [f"{'IMAGE':<{width}} {'SIZE':>10} {'BUILD':>9} {'WHEELS':>12}"]
    for res in results:
        lines.append(
            f"{res.tags[0]:<{width}} {res.size / 1e6:>7.0f} MB {res.seconds:>7.1f} s "
            f"{res.wheel_bytes / 1e6:>6.0f} MB/{res.wheels:<3d}"
        )
    return "\n".join(lines)


def write_report(path: Path, results: Sequence[BuildResult]) -> None:
    """``--report``: the results as a JSON list, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps([r.as_dict() for r in results], indent=2) + "\n")
    partial.replace(path)


def _run_build(args: argparse.Namespace) -> int:
    from .build import build_images

    options = build_options(args)
    results = build_images(args.names or None, options)
    print()
    print(results_table(results))
    if args.report:
        write_report(args.report, results)
    return 0


def _run_list(args: argparse.Namespace) -> int:
    from . import docker

    problem = docker.engine_problem()
    refs = {name: catalog.tags(name, __version__, args.tag)[0] for name in catalog.CATALOG}
    width = max(len("IMAGE"), *(len(ref) for ref in refs.values()))
    print(f"{'IMAGE':<{width}} {'BUILT':<19} {'SIZE':>9}  CONTENTS")
    for spec in catalog.CATALOG.values():
        ref = refs[spec.name]
        built, size = "-", ""
        if problem is None and docker.image_exists(ref):
            info = docker.inspect(ref)
            built, size = info.created[:19].replace("T", " "), f"{info.size / 1e6:.0f} MB"
        print(f"{ref:<{width}} {built:<19} {size:>9}  {spec.summary}")
    if problem:
        print(f"(no engine: {problem})", file=sys.stderr)
    return 0


def _run_bootstrap(args: argparse.Namespace) -> int:
    from .bootstrap import bootstrap_base
    from .build import ensure_engine

    ensure_engine()
    bootstrap_base(
        _cache(args), try_pull=not args.no_pull, log=lambda line: print(line, flush=True)
    )
    return 0


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "images_action", None)
    handlers = {"build": _run_build, "list": _run_list, "bootstrap-base": _run_bootstrap}
    if action not in handlers:
        print("usage: sagedock images {build,list,bootstrap-base} ...", file=sys.stderr)
        return 2
    try:
        return handlers[action](args)
    except SagedockError as exc:
        print(f"sagedock images {action}: {exc.describe()}", file=sys.stderr)
        return 1
