"""SageMaker request documents (CreateTrainingJob, CreateModel, CreateTransformJob,
InvokeEndpoint) parsed into frozen specs, with errors that name the JSON path of the bad
field. Each document is checked first against botocore's model of the operation
(:mod:`.schema`), then by the local platform's own rules in the parser."""

from .invoke import InvokeRequest as InvokeRequest
from .invoke import parse_invoke_request as parse_invoke_request
from .model import ModelSpec as ModelSpec
from .model import parse_model as parse_model
from .reader import Node as Node
from .reader import SpecError as SpecError
from .reader import load_document as load_document
from .schema import LocalRules as LocalRules
from .schema import check_request as check_request
from .training import InputChannel as InputChannel
from .training import InstanceGroup as InstanceGroup
from .training import MetricDefinition as MetricDefinition
from .training import TrainingJobSpec as TrainingJobSpec
from .training import parse_training_job as parse_training_job
from .transform import TransformJobSpec as TransformJobSpec
from .transform import parse_transform_job as parse_transform_job
