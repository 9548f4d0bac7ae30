"""``aiofiles.tempfile`` on spargio: temporary files and directories on the loop's io_uring.

`TemporaryFile` opens an unnamed file in the directory with one IORING_OP_OPENAT
(``O_TMPFILE``; where the file system lacks it, ``mkstemp`` + unlink on the
pool, as the stdlib falls back).  `NamedTemporaryFile` picks its name with the
stdlib's ``mkstemp`` on spargio's blocking pool (a loop of ``O_EXCL`` opens
under a random name) and removes the file when it is closed, or when its
``async with`` ends if ``delete_on_close=False`` (3.12's meaning).
`TemporaryDirectory` is ``mkdtemp`` and, at the end, ``rmtree``, both on the
pool.  Every file is a spargio `AsyncFile` (or `AsyncTextFile`).

``loop=`` and ``executor=`` are accepted as aiofiles accepts them and unused.
`SpooledTemporaryFile` keeps its data in memory (its methods run inline)
until it grows past ``max_size``, then rolls over to a `TemporaryFile`.
"""

from __future__ import annotations

from ._tempfile import NamedTemporaryFile, SpooledTemporaryFile, TemporaryDirectory, TemporaryFile

__all__ = ["NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile"]
