"""Which files of a File-mode channel are data, with SageMaker's rules and messages.

- Every regular file under the channel directory is read, in sorted path order, down to
  :data:`MAX_FOLDER_DEPTH` levels: ``train/a``, ``train/d1/a`` and ``train/d1/d2/a`` are read,
  ``train/d1/d2/d3/a`` is ignored with a warning.
- A hidden file (name starting with ``.``) anywhere under the channel stops training with
  SageMaker's message, plus the file's path so it can be found.
- Empty files, files named ``_*`` (Hadoop/Spark markers such as ``_SUCCESS``) and XGBoost's
  own ``*.cache`` files are skipped.
- A channel without data is refused (``No data in training channel path ...``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from sagedock.toolkit.errors import UserError

logger = logging.getLogger(__name__)

#: How many directory levels of a channel are read (the channel directory is level 1).
MAX_FOLDER_DEPTH = 3

HIDDEN_FILE_MESSAGE = "Hidden file found in the data path! Remove that before training."


def _is_skipped(name: str) -> bool:
    if name.startswith("_"):
        return True
    # Cache files XGBoost writes next to external-memory data.
    return ".cache" in name and ("dtrain" in name or "dval" in name)


def list_data_files(path: Path, *, max_depth: int = MAX_FOLDER_DEPTH) -> list[Path]:
    """The data files of *path* (a channel directory or a single file), sorted.

    Raises a UserError when a hidden file is present. Returns an empty list when the path
    does not exist or holds no non-empty data file; :func:`require_data` turns that into
    SageMaker's "No data" error.
    """
    if path.is_file():
        if path.name.startswith("."):
            raise UserError(f"{HIDDEN_FILE_MESSAGE} (found {path})")
        return [path] if path.stat().st_size > 0 else []
    if not path.is_dir():
        return []
    found: list[Path] = []
    too_deep: list[Path] = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        here = Path(root)
        depth = len(here.relative_to(path).parts) + 1
        for name in sorted(names):
            file = here / name
            if name.startswith("."):
                raise UserError(f"{HIDDEN_FILE_MESSAGE} (found {file})")
            if depth > max_depth:
                too_deep.append(file)
            elif file.is_file() and not _is_skipped(name) and file.stat().st_size > 0:
                found.append(file)
    if too_deep:
        logger.warning(
            "The depth of folder %s exceeds the limit %d. Files in deeper sub dirs won't be "
            "loaded (%d ignored, e.g. %s). Please adjust the folder structure accordingly.",
            path,
            max_depth,
            len(too_deep),
            too_deep[0],
        )
    return sorted(found)


def require_data(files: Sequence[Path], channel: str, path: Path) -> None:
    """SageMaker's error for a declared channel without data (``train`` -> "training")."""
    if not files:
        kind = "training" if channel == "train" else channel
        raise UserError(f"No data in {kind} channel path {path}")


def warn_identical_files(train: Sequence[Path], validation: Sequence[Path]) -> list[str]:
    """Log (and return) a warning for each file name present in both channels with the same
    size: the same data in training and validation makes the validation score meaningless."""
    by_name = {(p.name, p.stat().st_size): p for p in train}
    warnings: list[str] = []
    for path in validation:
        twin = by_name.get((path.name, path.stat().st_size))
        if twin is not None:
            message = (
                f"Suspected identical files found. ({twin} and {path} with same size "
                f"{path.stat().st_size} bytes). Note: Duplicate data in the training set and "
                "validation set is usually not intentional and can impair the validity of the "
                "model evaluation by the validation score."
            )
            logger.warning(message)
            warnings.append(message)
    return warnings
