"""Where things live under the SageMaker base directory (``/opt/ml``).

Pure: nothing here touches the file system. The base directory is ``/opt/ml`` unless
``SAGEMAKER_BASE_DIR`` names another one, which is how tests and the local platform's process
backend run without root or Docker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_DIR = Path("/opt/ml")
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"


def base_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The base directory named by ``SAGEMAKER_BASE_DIR`` in *environ* (default ``os.environ``),
    else ``/opt/ml``."""
    env = os.environ if environ is None else environ
    value = env.get(BASE_DIR_ENV, "").strip()
    return Path(value) if value else DEFAULT_BASE_DIR


@dataclass(frozen=True)
class MlPaths:
    """Every path of the ``/opt/ml`` contract, derived from one base directory."""

    base: Path = DEFAULT_BASE_DIR

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MlPaths:
        """Paths under the base directory that *environ* (default ``os.environ``) selects."""
        return cls(base_dir(environ))

    # -- input -----------------------------------------------------------------------------
    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def input_config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def input_data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / "hyperparameters.json"

    @property
    def resource_config_file(self) -> Path:
        return self.input_config_dir / "resourceconfig.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.input_config_dir / "inputdataconfig.json"

    @property
    def checkpoint_config_file(self) -> Path:
        return self.input_config_dir / "checkpointconfig.json"

    def channel_dir(self, channel: str) -> Path:
        """The File-mode directory of *channel*."""
        return self.input_data_dir / channel

    def pipe_path(self, channel: str, epoch: int) -> Path:
        """The Pipe-mode FIFO of *channel* for *epoch* (``<channel>_<epoch>``)."""
        return self.input_data_dir / f"{channel}_{epoch}"

    # -- code, model, output ---------------------------------------------------------------
    @property
    def code_dir(self) -> Path:
        return self.base / "code"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def model_code_dir(self) -> Path:
        """Where an inference ``model.tar.gz`` carries its code (``model/code``)."""
        return self.model_dir / "code"

    @property
    def multi_model_dir(self) -> Path:
        """Root of multi-model endpoints (``models/<name>/model``)."""
        return self.base / "models"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def output_intermediate_dir(self) -> Path:
        return self.output_dir / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def success_file(self) -> Path:
        return self.output_dir / "success"

    @property
    def default_checkpoint_dir(self) -> Path:
        """``checkpoints/``; ``checkpointconfig.json`` may name another local path."""
        return self.base / "checkpoints"
