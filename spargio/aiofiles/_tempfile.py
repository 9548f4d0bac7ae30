"""The implementation of `spargio.aiofiles.tempfile` (see there)."""

from __future__ import annotations

import errno
import io
import os
import shutil
import tempfile as _tempfile
from typing import TYPE_CHECKING, Any

from .._backend import current_io
from ..fs._args import fspath_bytes
from ..fs._file import AsyncFile, AsyncTextFile, OpenCall, _mode_flags
from ._files import AiofilesBinaryFile, AiofilesTextFile

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile"]

_NO_TMPFILE = frozenset({errno.EISDIR, errno.EOPNOTSUPP, errno.EINVAL})  # what open(2) says where O_TMPFILE is missing


def TemporaryFile(
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: str | None = None,
    prefix: str | None = None,
    dir: Any = None,
    *,
    loop: object = None,
    executor: object = None,
) -> OpenCall:
    """An unnamed temporary file, gone when closed: ``async with TemporaryFile() as f``."""

    async def opening() -> AsyncFile | AsyncTextFile:
        io = current_io()
        directory = await _directory(dir)
        flags, _ = _mode_flags(mode)
        try:
            fd = await io.open(fspath_bytes(directory), os.O_TMPFILE | (flags & os.O_ACCMODE) | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE:
                raise
            fd, name = await io.run_blocking(_tempfile.mkstemp, suffix, prefix, directory)
            await io.unlink(fspath_bytes(name))
        return _wrap(fd, fd, mode, buffering, encoding, newline, remove_on_close=None, delete=True)

    return OpenCall(opening())


def NamedTemporaryFile(
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: str | None = None,
    prefix: str | None = None,
    dir: Any = None,
    delete: bool = True,
    delete_on_close: bool = True,
    *,
    loop: object = None,
    executor: object = None,
) -> _NamedOpenCall:
    """A temporary file with a ``name`` others can open; removed on close (``delete``), or at
    the end of its ``async with`` (``delete_on_close=False``)."""

    async def opening() -> AsyncFile | AsyncTextFile:
        io = current_io()
        fd, name = await io.run_blocking(_tempfile.mkstemp, suffix, prefix, await _directory(dir))
        remove_on_close = name if delete and delete_on_close else None
        return _wrap(fd, name, mode, buffering, encoding, newline, remove_on_close=remove_on_close, delete=delete)

    return _NamedOpenCall(opening(), delete and not delete_on_close)


class _NamedOpenCall(OpenCall):
    def __init__(self, opening: Any, delete_at_exit: bool) -> None:
        super().__init__(opening)
        self._delete_at_exit = delete_at_exit

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
        if self._delete_at_exit and self._file is not None:
            await _unlink_if_there(self._file.name)


class _DeletedOnClose(AiofilesBinaryFile):
    """A temporary file's binary file: closing it removes its name too (if it has one to remove)."""

    delete = True  # the stdlib's attribute: whether the file goes away
    _remove_on_close: str | None = None

    async def close(self) -> None:
        was_open = not self.closed
        await super().close()
        if was_open and self._remove_on_close is not None:
            await _unlink_if_there(self._remove_on_close)


class _TemporaryText(AiofilesTextFile):
    """A temporary file in text mode."""

    @property
    def delete(self) -> bool:
        return bool(getattr(self.buffer, "delete", True))


def _wrap(
    fd: int,
    name: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    newline: str | None,
    *,
    remove_on_close: str | None,
    delete: bool,
) -> AsyncFile | AsyncTextFile:
    flags, binary = _mode_flags(mode)
    try:
        raw = _DeletedOnClose(
            fd,
            name=name,
            mode=mode.replace("t", "") if binary else mode,
            flags=flags & ~os.O_TRUNC,
            buffering=-1 if buffering == 1 else buffering,
        )
    except BaseException:
        os.close(fd)
        raise
    raw._remove_on_close = remove_on_close
    raw.delete = delete
    if binary:
        return raw
    return _TemporaryText(raw, encoding=encoding, errors=None, newline=newline, line_buffering=buffering == 1)


async def _unlink_if_there(name: Any) -> None:
    try:
        await current_io().unlink(fspath_bytes(name))
    except FileNotFoundError:
        pass


async def _directory(dir: Any) -> Any:
    """``dir``, or the stdlib's temporary directory (found once, on the pool: it probes candidates)."""
    if dir is not None:
        return dir
    return await current_io().run_blocking(_tempfile.gettempdir)


class TemporaryDirectory:
    """A temporary directory: ``async with TemporaryDirectory() as name`` (a str), removed with
    everything in it at the end; or ``d = await TemporaryDirectory()``, ``d.name``, ``await d.cleanup()``."""

    def __init__(
        self,
        suffix: str | None = None,
        prefix: str | None = None,
        dir: Any = None,
        *,
        loop: object = None,
        executor: object = None,
    ) -> None:
        self._suffix, self._prefix, self._dir = suffix, prefix, dir
        self.name: str | None = None

    async def _create(self) -> TemporaryDirectory:
        directory = await _directory(self._dir)
        self.name = await current_io().run_blocking(_tempfile.mkdtemp, self._suffix, self._prefix, directory)
        return self

    def __await__(self) -> Any:
        return self._create().__await__()

    async def cleanup(self) -> None:
        """Remove the directory and everything in it (on the pool: a tree walk); twice is a no-op."""
        name, self.name = self.name, None
        if name is not None:
            await current_io().run_blocking(shutil.rmtree, name, True)

    async def __aenter__(self) -> str:
        await self._create()
        assert self.name is not None
        return self.name

    async def __aexit__(self, *exc: object) -> None:
        await self.cleanup()


class SpooledTemporaryFile:
    """In memory until it grows past ``max_size`` bytes (or `fileno` or `rollover` is called), then
    a `TemporaryFile` on the loop's ring, holding what was written so far at the same position.

    ``async with SpooledTemporaryFile(1 << 20) as f`` (or ``f = await ...``).  While in memory,
    each method is the in-memory file's own (``io.BytesIO``, or ``io.TextIOWrapper`` over one),
    run inline: there is no I/O to wait for.  ``max_size=0`` never rolls over on its own.
    """

    def __init__(
        self,
        max_size: int = 0,
        mode: str = "w+b",
        buffering: int = -1,
        encoding: str | None = None,
        newline: str | None = None,
        suffix: str | None = None,
        prefix: str | None = None,
        dir: Any = None,
        *,
        errors: str | None = None,
        loop: object = None,
        executor: object = None,
    ) -> None:
        self._binary = "b" in mode
        self._memory: Any = io.BytesIO() if self._binary else io.TextIOWrapper(io.BytesIO(), encoding, errors, newline)
        self._file: AsyncFile | AsyncTextFile | None = None
        self._max_size = max_size
        self._mode = mode
        self._args = (encoding, newline, suffix, prefix, dir)

    @property
    def rolled(self) -> bool:
        """Whether the data is on disk now."""
        return self._file is not None

    async def rollover(self) -> None:
        """Move the data to a `TemporaryFile` (once; later calls do nothing)."""
        if self._file is not None:
            return
        encoding, newline, suffix, prefix, dir = self._args
        memory = self._memory
        position = memory.tell()
        data = memory.getvalue() if self._binary else memory.buffer.getvalue()
        file = await TemporaryFile(self._mode, -1, encoding, newline, suffix, prefix, dir)
        try:
            await (file if isinstance(file, AsyncFile) else file.buffer).write(data)
            await file.seek(position)
        except BaseException:
            await file.close()
            raise
        self._file = file
        memory.close()

    async def _grew(self) -> None:
        if self._file is None and self._max_size and self._memory.tell() > self._max_size:
            await self.rollover()

    def __await__(self) -> Any:
        async def ready() -> SpooledTemporaryFile:
            return self

        return ready().__await__()

    async def __aenter__(self) -> SpooledTemporaryFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._file.closed if self._file is not None else bool(self._memory.closed)

    @property
    def mode(self) -> str:
        return self._file.mode if self._file is not None else self._mode

    @property
    def name(self) -> Any:
        return self._file.name if self._file is not None else None

    @property
    def newlines(self) -> Any:
        """The line ends seen so far (text mode, while in memory; None on disk or in binary mode)."""
        return None if self._file is not None or self._binary else self._memory.newlines

    async def fileno(self) -> int:
        """The fd of the file on disk (rolls over first, as the stdlib's does)."""
        await self.rollover()
        assert self._file is not None
        return self._file.fileno()

    async def write(self, data: Any) -> int:
        if self._file is not None:
            return await self._file.write(data)
        written: int = self._memory.write(data)
        await self._grew()
        return written

    async def writelines(self, lines: Any) -> None:
        for line in lines:
            await self.write(line)

    async def read(self, size: int = -1) -> Any:
        return await self._file.read(size) if self._file is not None else self._memory.read(size)

    async def readline(self, size: int = -1) -> Any:
        return await self._file.readline(size) if self._file is not None else self._memory.readline(size)

    async def readlines(self, hint: int = -1) -> list[Any]:
        if self._file is not None:
            lines: list[Any] = await self._file.readlines(hint)
            return lines
        return list(self._memory.readlines(hint))

    def __aiter__(self) -> SpooledTemporaryFile:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self._file is not None:
            return await self._file.seek(offset, whence)
        return int(self._memory.seek(offset, whence))

    async def tell(self) -> int:
        return await self._file.tell() if self._file is not None else int(self._memory.tell())

    async def truncate(self, size: int | None = None) -> int:
        if self._file is not None:
            return await self._file.truncate(size)
        result = int(self._memory.truncate(size))
        if self._max_size and result > self._max_size:
            await self.rollover()
        return result

    async def flush(self) -> None:
        if self._file is not None:
            await self._file.flush()
        else:
            self._memory.flush()

    async def close(self) -> None:
        """Close it; what was on disk goes with it (the file had no name)."""
        if self._file is not None:
            await self._file.close()
        else:
            self._memory.close()
