#!/bin/sh
# Entry point of every sagedock image.
#
# SageMaker starts a container as `docker run IMAGE train` or `docker run IMAGE serve`; both
# names are console scripts on PATH. `exec` makes the command PID 1, which is what `train` and
# `serve` expect: they forward SIGTERM to their children and reap them themselves, so no init
# shim sits in between. Any other command (`bash`, `python`, ...) is run the same way.
#
# Started with no command (SageMaker SDK 3.x local mode does this for training), the layout
# decides: a training job's config folder means `train`, a model folder with no such config
# means `serve`. The choice is logged, so a surprising one can be seen.
if [ "$#" -eq 0 ]; then
    base="${SAGEMAKER_BASE_DIR:-/opt/ml}"
    config="$base/input/config"
    if [ -f "$config/resourceconfig.json" ] || [ -f "$config/hyperparameters.json" ] ||
        [ -f "$config/inputdataconfig.json" ]; then
        echo "sagedock: no command given; $config holds a training job's configuration: running train" >&2
        set -- train
    elif [ -d "$base/model" ]; then
        echo "sagedock: no command given; $base/model exists and $config holds no training configuration: running serve" >&2
        set -- serve
    else
        echo "sagedock: no command given, and $base has neither a training configuration ($config/*.json) nor a model ($base/model)" >&2
        echo "usage: docker run IMAGE train|serve|COMMAND [ARG...]" >&2
        exit 2
    fi
fi
exec "$@"
