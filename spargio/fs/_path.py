"""`spargio.fs.Path`: a pure POSIX path with the async pathlib methods people use.

It is a `pathlib.PurePosixPath`, so joining, ``.name``, ``.suffix``,
``.parent``, ``/`` and friends work as usual and return `Path`; the methods
that touch the file system are coroutines that call `spargio.fs`.
"""

from __future__ import annotations

import os
import pathlib
import stat as _stat
from typing import TYPE_CHECKING, Any

from .._backend import current_io
from . import _paths
from ._file import OpenCall
from ._file import open as _open

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["Path"]


class Path(pathlib.PurePosixPath):
    """A path whose I/O methods are awaitable and go through io_uring."""

    __slots__ = ()

    @classmethod
    def cwd(cls) -> Path:
        return cls(os.getcwd())

    @classmethod
    def home(cls) -> Path:
        return cls(os.path.expanduser("~"))

    def open(
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> OpenCall:
        """Like `spargio.fs.open` on this path."""
        return _open(self, mode, buffering, encoding, errors, newline)

    async def read_bytes(self) -> bytes:
        return await _paths.read_bytes(self)

    async def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        return await _paths.read_text(self, encoding, errors)

    async def write_bytes(self, data: Any, *, fsync: bool = False, atomic: bool = False) -> int:
        return await _paths.write_bytes(self, data, fsync=fsync, atomic=atomic)

    async def write_text(
        self,
        data: str,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        *,
        fsync: bool = False,
        atomic: bool = False,
    ) -> int:
        return await _paths.write_text(self, data, encoding, errors, newline, fsync=fsync, atomic=atomic)

    async def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return await _paths.stat(self, follow_symlinks=follow_symlinks)

    async def lstat(self) -> os.stat_result:
        return await _paths.lstat(self)

    async def exists(self) -> bool:
        return await _paths.exists(self)

    async def _mode_is(self, test: Any, follow: bool = True) -> bool:
        try:
            return bool(test((await self.stat(follow_symlinks=follow)).st_mode))
        except (FileNotFoundError, NotADirectoryError):
            return False

    async def is_file(self) -> bool:
        return await self._mode_is(_stat.S_ISREG)

    async def is_dir(self) -> bool:
        return await self._mode_is(_stat.S_ISDIR)

    async def is_symlink(self) -> bool:
        return await self._mode_is(_stat.S_ISLNK, follow=False)

    async def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        if parents:
            await _paths.makedirs(self, mode, exist_ok=exist_ok)
            return
        try:
            await _paths.mkdir(self, mode)
        except FileExistsError:
            if not exist_ok or not await self.is_dir():
                raise

    async def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None:
        flags = "ab" if exist_ok else "xb"
        async with _open(self, flags, perms=mode):
            pass
        if exist_ok:
            await current_io().run_blocking(os.utime, self, None)

    async def unlink(self, missing_ok: bool = False) -> None:
        try:
            await _paths.remove(self)
        except FileNotFoundError:
            if not missing_ok:
                raise

    async def rmdir(self) -> None:
        await _paths.rmdir(self)

    async def rename(self, target: Any) -> Path:
        await _paths.rename(self, target)
        return Path(target)

    async def replace(self, target: Any) -> Path:
        await _paths.replace(self, target)
        return Path(target)

    async def hardlink_to(self, target: Any) -> None:
        await _paths.link(target, self)

    async def symlink_to(self, target: Any) -> None:
        await _paths.symlink(target, self)

    async def readlink(self) -> Path:
        return Path(await _paths.readlink(self))

    async def resolve(self) -> Path:
        return Path(await _paths.realpath(self))

    async def absolute(self) -> Path:
        return self if self.is_absolute() else Path.cwd() / self

    async def chmod(self, mode: int) -> None:
        await _paths.chmod(self, mode)

    async def samefile(self, other: Any) -> bool:
        a, b = await self.stat(), await Path(other).stat()
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    async def iterdir(self) -> AsyncIterator[Path]:
        """The directory's entries (listed on a thread: io_uring has no getdents)."""
        for name in await _paths.listdir(self):
            yield self / name

    async def glob(self, pattern: str) -> list[Path]:
        """``pathlib.Path.glob``, collected on a thread."""
        base = pathlib.Path(self)
        found = await current_io().run_blocking(lambda: list(base.glob(pattern)))
        return [Path(p) for p in found]

    async def copy_to(self, target: Any) -> Path:
        """Copy this file's contents to ``target`` (see `spargio.fs.copyfile`)."""
        await _paths.copyfile(self, target)
        return Path(target)
