"""The one exception tree of sagedock.

Every error we raise on purpose is a :class:`SagedockError`. Its subclass says whose fault it
is, which decides the failure-file prefix and the exit code (``toolkit.outcome``) and the HTTP
status (``serving.errors``):

- :class:`UserError`: bad input from the user (hyperparameters, data, a failing user script,
  a requirements file that does not install). Reported as ``ClientError: ...``, the prefix
  SageMaker's own algorithms use, so existing alerting on ``FailureReason`` keeps working.
- :class:`AlgorithmError`: a bug or unexpected state in sagedock or a built-in algorithm.
- :class:`PlatformError`: the environment around us failed (a host that never resolved, a
  download that broke, a missing system binary). Logs and command-line messages say
  ``PlatformError: ...`` (:meth:`SagedockError.describe`); a job's failure reason (a training
  job's ``output/failure``, a local job record's ``FailureReason``) says ``AlgorithmError: ...``
  (:meth:`SagedockError.failure_reason`), the word SageMaker's own algorithms use for failures
  that are not the user's input.
"""

from __future__ import annotations

#: The words SageMaker's own failure reasons start with: what users alert on or retry by is
#: "my input" (ClientError) versus "not my input" (AlgorithmError).
REASON_PREFIXES = ("ClientError", "AlgorithmError")


class SagedockError(Exception):
    """Base of every error sagedock raises deliberately.

    :param message: one paragraph for a person: what failed and, where the user can act,
        what to change.
    """

    #: The word that starts the failure file and log line for this kind of error.
    failure_prefix: str = "AlgorithmError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def describe(self) -> str:
        """The text for logs and command-line messages: ``"<prefix>: <message>"``, naming the
        kind of error (``PlatformError: ...``)."""
        return f"{self.failure_prefix}: {self.message}"

    def failure_reason(self) -> str:
        """The text for a job's failure reason (``output/failure``, ``FailureReason``):
        ``"<prefix>: <message>"`` with the error's own prefix when it is one of
        :data:`REASON_PREFIXES`, else ``AlgorithmError`` (a PlatformError, and any other
        kind)."""
        own = self.failure_prefix
        prefix = own if own in REASON_PREFIXES else "AlgorithmError"
        return f"{prefix}: {self.message}"


class UserError(SagedockError):
    """Something the user gave us is wrong; the message says what to fix."""

    failure_prefix = "ClientError"


class AlgorithmError(SagedockError):
    """sagedock itself (or a built-in algorithm) failed."""

    failure_prefix = "AlgorithmError"


class PlatformError(SagedockError):
    """The surroundings failed: network, DNS, a missing system program, a full disk."""

    failure_prefix = "PlatformError"
