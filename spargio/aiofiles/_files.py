"""aiofiles' file objects: spargio's, with the few methods aiofiles makes coroutines.

aiofiles runs ``seekable()``, ``writable()`` and ``isatty()`` (and, on text files,
``readable()``) in its executor, so its users write ``await f.seekable()``.
These subclasses answer the same questions inline and hand the answer back
as a coroutine's; everything else is `spargio.fs.AsyncFile`/`AsyncTextFile`.
"""

from __future__ import annotations

import io
import os
from typing import Any

from ..fs._file import AsyncFile
from ..fs._text import AsyncTextFile
from ..fs._wrapped import WrappedFile

__all__ = ["AiofilesBinaryFile", "AiofilesTextFile", "AiofilesWrappedFile", "wrap"]


def _detach_sync(file: AsyncFile) -> io.FileIO:
    """The file's fd as a synchronous ``io.FileIO`` at the file's position (aiofiles' ``detach``
    gives the synchronous raw file); ``file`` is unusable after."""
    file._check_open()
    if file._pending or file._writing is not None:
        raise ValueError("detach() with buffered writes pending: await flush() first")
    if file._seekable:
        os.lseek(file._fd, file._pos, os.SEEK_SET)  # the raw file reads where this one would have
    raw = io.FileIO(file._fd, file.mode.replace("t", ""), closefd=file._closefd)
    file._closed, file._detached = True, "raw stream has been detached"
    return raw


class AiofilesBinaryFile(AsyncFile):
    """`spargio.fs.AsyncFile` as aiofiles' binary file: ``await f.seekable()``, and
    ``detach()`` giving the synchronous raw file."""

    def detach(self) -> io.FileIO:  # type: ignore[override]
        return _detach_sync(self)

    async def seekable(self) -> bool:  # type: ignore[override]
        return AsyncFile.seekable(self)

    async def writable(self) -> bool:  # type: ignore[override]
        return AsyncFile.writable(self)

    async def isatty(self) -> bool:  # type: ignore[override]
        return AsyncFile.isatty(self)


class AiofilesTextFile(AsyncTextFile):
    """`spargio.fs.AsyncTextFile` as aiofiles' text file: ``await f.readable()``, and
    ``detach()`` giving the synchronous binary file."""

    def detach(self) -> io.BufferedIOBase:  # type: ignore[override]
        binary = self.buffer
        readable, writable = binary._readable, binary._writable
        raw = _detach_sync(binary)
        binary._detached = "underlying buffer has been detached"
        if readable and writable:
            return io.BufferedRandom(raw)
        return io.BufferedReader(raw) if readable else io.BufferedWriter(raw)

    async def readable(self) -> bool:  # type: ignore[override]
        return AsyncTextFile.readable(self)

    async def seekable(self) -> bool:  # type: ignore[override]
        return AsyncTextFile.seekable(self)

    async def writable(self) -> bool:  # type: ignore[override]
        return AsyncTextFile.writable(self)

    async def isatty(self) -> bool:  # type: ignore[override]
        return AsyncTextFile.isatty(self)


class AiofilesWrappedFile(WrappedFile):
    """aiofiles' ``wrap``: a file object's I/O methods (aiofiles' set) run on the pool."""

    _ASYNC = WrappedFile._ASYNC | {"isatty", "seekable", "writable"}

    def __init__(self, file: Any, *, limiter: Any = None) -> None:
        super().__init__(file, limiter=limiter)
        if isinstance(file, io.TextIOBase):
            self._async_names = self._ASYNC | {"readable"}


def wrap(file: Any, *, loop: object = None, executor: object = None) -> AiofilesWrappedFile:
    """aiofiles' ``wrap``: an open ``io`` file object, its methods as coroutines run on
    spargio's blocking pool (``loop=`` and ``executor=`` are accepted and unused).

    :raises TypeError: ``file`` is not an ``io`` file object.
    """
    if not isinstance(file, io.IOBase):
        raise TypeError(f"Unsupported io type: {file!r}.")
    return AiofilesWrappedFile(file)
