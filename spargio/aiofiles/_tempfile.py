"""The implementation of `spargio.aiofiles.tempfile` (see there)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile as _tempfile
from typing import TYPE_CHECKING, Any

from .._backend import current_io
from ..fs._args import fspath_bytes
from ..fs._file import AsyncFile, AsyncTextFile, OpenCall, _mode_flags

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"]

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
        return _wrap(fd, fd, mode, encoding, newline, remove_on_close=None, delete=True)

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
        return _wrap(fd, name, mode, encoding, newline, remove_on_close=remove_on_close, delete=delete)

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


class _DeletedOnClose(AsyncFile):
    """A temporary file's binary file: closing it removes its name too (if it has one to remove)."""

    delete = True  # the stdlib's attribute: whether the file goes away
    _remove_on_close: str | None = None

    async def close(self) -> None:
        was_open = not self.closed
        await super().close()
        if was_open and self._remove_on_close is not None:
            await _unlink_if_there(self._remove_on_close)


class _TemporaryText(AsyncTextFile):
    """A temporary file in text mode."""

    @property
    def delete(self) -> bool:
        return bool(getattr(self.buffer, "delete", True))


def _wrap(
    fd: int,
    name: Any,
    mode: str,
    encoding: str | None,
    newline: str | None,
    *,
    remove_on_close: str | None,
    delete: bool,
) -> AsyncFile | AsyncTextFile:
    flags, binary = _mode_flags(mode)
    try:
        raw = _DeletedOnClose(fd, name=name, mode=mode.replace("t", "") if binary else mode, flags=flags & ~os.O_TRUNC)
    except BaseException:
        os.close(fd)
        raise
    raw._remove_on_close = remove_on_close
    raw.delete = delete
    if binary:
        return raw
    return _TemporaryText(raw, encoding=encoding, errors=None, newline=newline)


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
