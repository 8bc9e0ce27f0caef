"""sagedock.toolkit.local: SageMaker's part played on one machine.

Training jobs (:class:`TrainingJob`), endpoints (:class:`LocalEndpoint`) and batch transforms
(:func:`run_transform_job`) from the request JSON of CreateTrainingJob / CreateModel /
CreateTransformJob (:mod:`.spec`), with local paths and ``file://`` URIs allowed wherever
SageMaker takes an S3 URI. The command line is :mod:`.cli` (``sagedock local ...``).
"""

from .serving import LocalEndpoint as LocalEndpoint
from .serving import ServeOptions as ServeOptions
from .spec import ModelSpec as ModelSpec
from .spec import SpecError as SpecError
from .spec import TrainingJobSpec as TrainingJobSpec
from .spec import TransformJobSpec as TransformJobSpec
from .spec import parse_model as parse_model
from .spec import parse_training_job as parse_training_job
from .spec import parse_transform_job as parse_transform_job
from .training import TrainingJob as TrainingJob
from .training import TrainingResult as TrainingResult
from .training import TrainOptions as TrainOptions
from .training import describe as describe
from .transform_job import TransformOptions as TransformOptions
from .transform_job import run_transform_job as run_transform_job
