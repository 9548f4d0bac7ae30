"""spargio: io_uring for asyncio and uvloop services.

``spargio.fs`` does file I/O on the running loop's own io_uring (no thread
pool); `Runtime` runs work on a pool of shards (a thread, an io_uring and an
asyncio loop each) beside the service's loop.  Where io_uring cannot run,
both fall back to threads and say why (`backend_info`).
"""

from __future__ import annotations

import atexit as _atexit

from . import boundary as boundary
from . import fs as fs
from . import net as net
from ._backend import (
    BackendFallbackWarning as BackendFallbackWarning,
)
from ._backend import (
    BackendInfo as BackendInfo,
)
from ._backend import (
    backend_info as backend_info,
)
from ._backend import (
    close_all as _close_all,
)
from ._backend import (
    configure as configure,
)
from ._errors import (
    BackendUnavailable as BackendUnavailable,
)
from ._errors import (
    ClosedError as ClosedError,
)
from ._errors import (
    OverloadedError as OverloadedError,
)
from ._errors import (
    ShardDiedError as ShardDiedError,
)
from ._errors import (
    SpargioError as SpargioError,
)
from ._errors import (
    SpargioTimeout as SpargioTimeout,
)
from ._runtime import Runtime as Runtime
from ._runtime import RuntimeStats as RuntimeStats
from ._runtime import ShardStats as ShardStats
from ._runtime import WakeupStats as WakeupStats
from ._runtime import current_runtime as current_runtime
from ._runtime import default_runtime as default_runtime
from ._runtime import run as run
from ._shard import current_shard as current_shard
from ._steal import Pinned as Pinned
from ._steal import Placement as Placement
from ._steal import RoundRobin as RoundRobin
from ._steal import Stealable as Stealable
from ._steal import StealablePreferred as StealablePreferred
from ._steal import Sticky as Sticky
from ._ticket import Ticket as Ticket

__version__ = "0.1.0"

__all__ = [
    "BackendFallbackWarning",
    "BackendInfo",
    "BackendUnavailable",
    "ClosedError",
    "OverloadedError",
    "Pinned",
    "Placement",
    "RoundRobin",
    "Runtime",
    "RuntimeStats",
    "ShardDiedError",
    "ShardStats",
    "SpargioError",
    "SpargioTimeout",
    "Stealable",
    "StealablePreferred",
    "Sticky",
    "Ticket",
    "WakeupStats",
    "__version__",
    "backend_info",
    "configure",
    "current_runtime",
    "current_shard",
    "default_runtime",
    "fs",
    "net",
    "run",
]

_atexit.register(_close_all)
