"""Batch transform: splitting, mini-batching, DataProcessing filters and the job runner."""

from .batch import Batch as Batch
from .batch import Record as Record
from .batch import make_batches as make_batches
from .dataprocessing import DataProcessing as DataProcessing
from .jsonpath import parse_jsonpath as parse_jsonpath
from .runner import TransformError as TransformError
from .runner import TransformResult as TransformResult
from .runner import TransformSettings as TransformSettings
from .runner import resolve_settings as resolve_settings
from .runner import run_transform as run_transform
from .runner import transform_environment as transform_environment
from .runner import transform_stream as transform_stream
from .split import split_records as split_records
from .stopping import StopRequest as StopRequest
from .stopping import TransformStopped as TransformStopped
