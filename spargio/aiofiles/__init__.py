"""``aiofiles``' names on spargio's native I/O: ``import spargio.aiofiles as aiofiles``.

`open` (aiofiles' signature and file objects, on the loop's ring), `os` and
`os.path` (every public name of ``aiofiles.os`` and ``aiofiles.ospath``),
`tempfile`, `threadpool` (``open``, ``wrap``) and the stdio wrappers
(`stdin`, `stdout`, `stderr` and their ``_bytes`` forms).  The differences
that remain are in the README's migration section.
"""

from __future__ import annotations

from . import os as os
from . import ospath as ospath
from . import tempfile as tempfile
from . import threadpool as threadpool
from ._open import open as open
from ._stdio import stderr as stderr
from ._stdio import stderr_bytes as stderr_bytes
from ._stdio import stdin as stdin
from ._stdio import stdin_bytes as stdin_bytes
from ._stdio import stdout as stdout
from ._stdio import stdout_bytes as stdout_bytes

__all__ = [
    "open",
    "os",
    "ospath",
    "stderr",
    "stderr_bytes",
    "stdin",
    "stdin_bytes",
    "stdout",
    "stdout_bytes",
    "tempfile",
    "threadpool",
]
