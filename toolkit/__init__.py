"""sagedock.toolkit: the /opt/ml training contract, ``train``, launchers, CLI and local platform.

Importing this package has no side effects: it reads no environment, creates no directories
and pulls in no ML framework.
"""

from .errors import AlgorithmError as AlgorithmError
from .errors import PlatformError as PlatformError
from .errors import SagedockError as SagedockError
from .errors import UserError as UserError
from .paths import MlPaths as MlPaths
from .version import __version__ as __version__
