"""spargio's exceptions.

::

    Exception
     ├── SpargioError                     anything spargio raises on its own account
     │    ├── ClosedError                 the runtime, ring or channel is closed
     │    │    └── ShardDiedError         the shard running the work died (its cause is chained)
     │    ├── OverloadedError             a bounded queue is full (non-waiting variants)
     │    └── BackendUnavailable          the requested backend cannot run here (+ OSError's errno)
     └── TimeoutError (builtin)
          └── SpargioTimeout              a spargio ``timeout=`` expired (also a SpargioError)

OS failures of file operations are the builtin `OSError` subclasses
(`FileNotFoundError`, ...) with ``errno``, ``strerror`` and ``filename`` set, as
the `os` module raises them.  Cancellation is asyncio's `CancelledError`.
"""

from __future__ import annotations

__all__ = ["BackendUnavailable", "ClosedError", "OverloadedError", "ShardDiedError", "SpargioError", "SpargioTimeout"]


class SpargioError(Exception):
    """Base class of the errors spargio raises on its own account."""


class ClosedError(SpargioError):
    """The runtime, ring or channel was closed before or while the work ran."""


class ShardDiedError(ClosedError):
    """The thread of the shard that held or ran the work died; ``__cause__`` says why."""


class OverloadedError(SpargioError):
    """A bounded queue is full and the caller asked not to wait."""


class BackendUnavailable(SpargioError, OSError):
    """The requested backend cannot run here; ``errno`` and the message say why."""


class SpargioTimeout(SpargioError, TimeoutError):
    """A ``timeout=`` given to spargio expired; the work was cancelled."""


WRITE_CANCEL_NOTE = (
    "spargio: a write was cancelled while in flight; the kernel may or may not have written it (its outcome is unknown)"
)
