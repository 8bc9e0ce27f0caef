"""MXNet exports: ``NAME-symbol.json`` with ``NAME-EPOCH.params`` (what ``HybridBlock.export``
and ``Module.save_checkpoint`` write), loaded as a Gluon ``SymbolBlock`` on the CPU. The
highest epoch wins; the inputs are the symbol's arguments that the parameters do not hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagedock.toolkit.errors import UserError

from .. import model_files
from ..handler import FrameworkDefaults

_PARAMS = re.compile(r"^(?P<name>.+)-(?P<epoch>\d{4})\.params$")


@dataclass(frozen=True)
class Export:
    symbol: Path
    params: Path


def export_files(model_dir: Path) -> Export | None:
    """The one symbol file in *model_dir* and its latest parameters file, else ``None``."""
    symbols = [p for p in model_dir.iterdir() if p.is_file() and p.name.endswith("-symbol.json")]
    if len(symbols) != 1:
        return None
    name = symbols[0].name[: -len("-symbol.json")]
    epochs = []
    for path in model_dir.iterdir():
        match = _PARAMS.match(path.name)
        if match and match["name"] == name:
            epochs.append((int(match["epoch"]), path))
    if not epochs:
        return None
    return Export(symbol=symbols[0], params=max(epochs)[1])


def detect(model_dir: Path) -> bool:
    return export_files(model_dir) is not None


def model_fn(model_dir: str | Path) -> Any:
    import mxnet as mx

    export = export_files(Path(model_dir))
    if export is None:
        raise model_files.not_found(
            Path(model_dir), "an MXNet export (NAME-symbol.json + NAME-0000.params)"
        )
    symbol = mx.sym.load(str(export.symbol))
    held = {key.split(":", 1)[-1] for key in mx.nd.load(str(export.params))}
    inputs = [name for name in symbol.list_inputs() if name not in held]
    if not inputs:
        raise UserError(f"{export.symbol.name} has no input that its parameters do not hold")
    return mx.gluon.SymbolBlock.imports(
        str(export.symbol), inputs, str(export.params), ctx=mx.cpu()
    )


def predict_fn(data: Any, model: Any) -> Any:
    import mxnet as mx
    import numpy as np

    output = model(mx.nd.array(np.asarray(data, dtype=np.float32)))
    if isinstance(output, list | tuple):
        return [item.asnumpy() for item in output]
    return output.asnumpy()


DEFAULTS = FrameworkDefaults("mxnet", detect, {"model_fn": model_fn, "predict_fn": predict_fn})
