"""``aiofiles``' names on spargio's native I/O: ``import spargio.aiofiles as aiofiles``.

Done so far: `open` (aiofiles' signature), `os` and `os.path` (every public
name of ``aiofiles.os`` and ``aiofiles.ospath``), and ``tempfile`` but for
``SpooledTemporaryFile``.  Not yet: the stdin/stdout/stderr wrappers, and
``io``'s buffered-write semantics in the file objects (spargio's writes reach
the file before ``flush()``); see the README.
"""

from __future__ import annotations

from . import os as os
from . import ospath as ospath
from . import tempfile as tempfile
from ._open import open as open

__all__ = ["open", "os", "ospath", "tempfile"]
