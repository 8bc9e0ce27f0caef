"""Launchers: how the user's program is started on each host.

- :mod:`.program`: what kind of entry point the user gave (script, package, shell script,
  executable) and the argv that runs it in one process;
- :mod:`.process`: one child process, output streamed line by line, stop signals forwarded;
- :mod:`.torch_distributed`: ``python -m torch.distributed.run`` across the hosts;
- :mod:`.mpi`: ``mpirun`` with the options AWS's toolkit uses;
- :mod:`.hosts`: host names to addresses (``SAGEDOCK_HOST_ADDRESSES``, else DNS with a bounded
  wait);
- :mod:`.plan`: which launcher a job calls for, and the command it runs.
"""

from .process import Command as Command
from .process import Completed as Completed
from .program import EntryKind as EntryKind
from .program import Program as Program
