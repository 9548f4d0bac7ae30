"""``aiofiles``' names on spargio's native I/O: ``import spargio.aiofiles as aiofiles``.

Done so far: `open` (aiofiles' signature), `os` and `os.path` (every public
name of ``aiofiles.os`` and ``aiofiles.ospath``).  Not yet: ``tempfile``, the
stdin/stdout/stderr wrappers, and ``io``'s buffered-write semantics in the file
objects (spargio's writes reach the file before ``flush()``); see the README.
"""

from __future__ import annotations

from . import os as os
from . import ospath as ospath
from ._open import open as open

__all__ = ["open", "os", "ospath"]
