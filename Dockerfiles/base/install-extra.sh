#!/bin/sh
# sagedock-install-extra: install what an image adds to the venv, from whichever source its
# build copied in. Every Dockerfile calls it, so offline and online builds are decided once.
#
# usage: sagedock-install-extra SOURCE [--root DIR] [--keep-installed] [--pin REQ]... EXTRA...
#
#   SOURCE/requirements.txt present (the wheelhouse `sagedock images build` prepares): exactly
#       those pins, from SOURCE alone (--no-index: the air-gapped build).
#   otherwise SOURCE/pyproject.toml (a plain `docker build` from the checkout): sagedock's
#       dependencies, those of each EXTRA and every --pin, from the package index.
#   --root DIR         install under the staging root DIR (a child image then copies one layer
#                      holding only the new files)
#   --keep-installed   online: constrain pip to the versions the venv already has (a child
#                      image keeps its parent's packages)
set -eu

usage() {
    echo "usage: sagedock-install-extra SOURCE [--root DIR] [--keep-installed] [--pin REQ]... EXTRA..." >&2
    exit 2
}

[ $# -ge 1 ] || usage
source=$1
shift
root=
keep=
pins=
while [ $# -gt 0 ]; do
    case $1 in
        --root) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
        --keep-installed) keep=1; shift ;;
        --pin) [ $# -ge 2 ] || usage; pins="$pins$2
"; shift 2 ;;
        -*) usage ;;
        *) break ;;
    esac
done

if [ -f "$source/requirements.txt" ]; then
    exec pip install ${root:+--root "$root"} --no-warn-script-location \
        --no-index --find-links "$source" -r "$source/requirements.txt"
fi
if [ ! -f "$source/pyproject.toml" ]; then
    echo "sagedock-install-extra: $source holds neither requirements.txt (a wheelhouse) nor" \
        "pyproject.toml (the checkout)" >&2
    exit 1
fi

work=$(mktemp -d)
python3 - "$source/pyproject.toml" "$@" >"$work/requirements.txt" <<'PYTHON'
import sys
import tomllib

with open(sys.argv[1], "rb") as file:
    project = tomllib.load(file)["project"]
extras = project.get("optional-dependencies", {})
unknown = [name for name in sys.argv[2:] if name not in extras]
if unknown:
    sys.exit(f"sagedock-install-extra: pyproject.toml has no extra {', '.join(unknown)}")
print("\n".join([*project["dependencies"], *(r for name in sys.argv[2:] for r in extras[name])]))
PYTHON
printf '%s' "$pins" >>"$work/requirements.txt"
set -- -r "$work/requirements.txt"
if [ -n "$keep" ]; then
    pip freeze --all --exclude sagedock >"$work/installed.txt"
    set -- -c "$work/installed.txt" "$@"
fi
exec pip install ${root:+--root "$root"} --no-warn-script-location "$@"
