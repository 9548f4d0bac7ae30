"""spargio: io_uring for asyncio and uvloop services.

``spargio.fs`` does file I/O on the running loop's own io_uring (no thread
pool); where io_uring cannot run it falls back to threads and says why
(`backend_info`).
"""

from __future__ import annotations

import atexit as _atexit

from . import fs as fs
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
    SpargioError as SpargioError,
)
from ._errors import (
    SpargioTimeout as SpargioTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "BackendFallbackWarning",
    "BackendInfo",
    "BackendUnavailable",
    "ClosedError",
    "OverloadedError",
    "SpargioError",
    "SpargioTimeout",
    "__version__",
    "backend_info",
    "configure",
    "fs",
]

_atexit.register(_close_all)
