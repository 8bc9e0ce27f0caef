#!/bin/sh
# Entry point of every sagedock image.
#
# SageMaker starts a container as `docker run IMAGE train` or `docker run IMAGE serve`; both
# names are console scripts on PATH. `exec` makes the command PID 1, which is what `train` and
# `serve` expect: they forward SIGTERM to their children and reap them themselves, so no init
# shim sits in between. Any other command (`bash`, `python`, ...) is run the same way.
if [ "$#" -eq 0 ]; then
    echo "usage: docker run IMAGE train|serve|COMMAND [ARG...]" >&2
    exit 2
fi
exec "$@"
