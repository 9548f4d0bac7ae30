"""`spargio.fs.Path`: a pure POSIX path with pathlib's methods as coroutines (anyio's API).

It is a `pathlib.PurePosixPath`, so joining, ``.name``, ``.suffix``,
``.parent``, ``/`` and friends work as usual and return `Path` (keeping its
``limiter``); the methods that touch the file system are coroutines that call
`spargio.fs` (io_uring ops where there is one, the bounded blocking pool where
there is none), and ``iterdir``, ``glob``, ``rglob`` and ``walk`` are async
iterators.  ``limiter=`` (anyio's ``CapacityLimiter``, or any async context
manager) is held around the calls that take a pool thread.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat as _stat
import sys
from typing import TYPE_CHECKING, Any, cast

from .._backend import current_io
from . import _namespace, _paths
from ._file import OpenCall
from ._file import open as _open

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

__all__ = ["Path"]

_NO_LIMIT = contextlib.nullcontext()
_MISSING = (FileNotFoundError, NotADirectoryError)


class Path(pathlib.PurePosixPath):
    """A path whose I/O methods are awaitable and go through io_uring."""

    __slots__ = ("_limiter",)
    _limiter: Any

    if sys.version_info >= (3, 12):

        def __init__(self, *args: Any, limiter: Any = None) -> None:
            super().__init__(*args)
            self._limiter = limiter

        def with_segments(self, *segments: Any) -> Path:
            return type(self)(*segments, limiter=self.limiter)

    else:

        def __new__(cls, *args: Any, limiter: Any = None) -> Path:
            self = super().__new__(cls, *args)
            self._limiter = limiter
            return self

        # 3.11 builds derived paths without the instance: carry the limiter by hand.
        def __truediv__(self, key: Any) -> Path:
            return self._adopt(super().__truediv__(key))

        def __rtruediv__(self, key: Any) -> Path:
            return self._adopt(super().__rtruediv__(key))

        def joinpath(self, *args: Any) -> Path:
            return self._adopt(super().joinpath(*args))

        def with_name(self, name: str) -> Path:
            return self._adopt(super().with_name(name))

        def with_suffix(self, suffix: str) -> Path:
            return self._adopt(super().with_suffix(suffix))

        def relative_to(self, *other: Any) -> Path:
            return self._adopt(super().relative_to(*other))

        @property
        def parent(self) -> Path:
            return self._adopt(super().parent)

        @property
        def parents(self) -> Sequence[Path]:
            return tuple(self._adopt(p) for p in super().parents)

    def with_stem(self, stem: str) -> Path:
        """pathlib's, refusing an empty stem on a name with a suffix, as anyio's does (3.11-3.13's
        pathlib would make the suffix the whole name)."""
        if not stem and self.suffix:
            raise ValueError(f"{self!r} has a non-empty suffix")
        return self._adopt(super().with_stem(stem))

    @property
    def limiter(self) -> Any:
        """The ``limiter=`` given (None: none)."""
        return getattr(self, "_limiter", None)

    def _adopt(self, path: Any) -> Path:
        path._limiter = self.limiter
        return cast("Path", path)

    def _new(self, *segments: Any) -> Path:
        return type(self)(*segments, limiter=self.limiter)

    def _limited(self) -> Any:
        return self.limiter if self.limiter is not None else _NO_LIMIT

    async def _pooled(self, func: Callable[..., Any], *args: Any) -> Any:
        async with self._limited():
            return await current_io().run_blocking(func, *args)

    # -- classmethods ---------------------------------------------------------

    @classmethod
    async def cwd(cls, *, limiter: Any = None) -> Path:
        """The working directory (anyio's awaitable ``Path.cwd()``)."""
        return cls(await _namespace.getcwd(), limiter=limiter)

    @classmethod
    async def home(cls, *, limiter: Any = None) -> Path:
        """The user's home directory (``~``, which may look up the password database)."""
        return cls(await current_io().run_blocking(os.path.expanduser, "~"), limiter=limiter)

    if sys.version_info >= (3, 13):

        @classmethod
        def from_uri(cls, uri: str, *, limiter: Any = None) -> Path:
            return cls(pathlib.Path.from_uri(uri), limiter=limiter)

    # -- opening, reading, writing ----------------------------------------------

    def open(
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> OpenCall:
        """Like `spargio.fs.open` on this path (the file keeps this path's ``limiter``)."""
        return _open(self, mode, buffering, encoding, errors, newline, limiter=self.limiter)

    async def read_bytes(self) -> bytes:
        return await _paths.read_bytes(self)

    async def read_text(
        self, encoding: str | None = None, errors: str | None = None, newline: str | None = None
    ) -> str:
        if newline is None:
            return await _paths.read_text(self, encoding, errors)
        async with _open(self, "r", encoding=encoding, errors=errors, newline=newline) as f:
            text: str = await f.read()
            return text

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

    # -- status -------------------------------------------------------------------

    async def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return await _paths.stat(self, follow_symlinks=follow_symlinks)

    async def lstat(self) -> os.stat_result:
        return await _paths.lstat(self)

    async def exists(self, *, follow_symlinks: bool = True) -> bool:
        if follow_symlinks:
            return await _paths.exists(self)
        try:
            await self.lstat()
        except (*_MISSING, ValueError):
            return False
        return True

    async def _mode_is(self, test: Callable[[int], bool], follow: bool = True) -> bool:
        try:
            return bool(test((await self.stat(follow_symlinks=follow)).st_mode))
        except (*_MISSING, ValueError):
            return False

    async def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return await self._mode_is(_stat.S_ISREG, follow_symlinks)

    async def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return await self._mode_is(_stat.S_ISDIR, follow_symlinks)

    async def is_symlink(self) -> bool:
        return await self._mode_is(_stat.S_ISLNK, follow=False)

    async def is_block_device(self) -> bool:
        return await self._mode_is(_stat.S_ISBLK)

    async def is_char_device(self) -> bool:
        return await self._mode_is(_stat.S_ISCHR)

    async def is_fifo(self) -> bool:
        return await self._mode_is(_stat.S_ISFIFO)

    async def is_socket(self) -> bool:
        return await self._mode_is(_stat.S_ISSOCK)

    async def is_junction(self) -> bool:
        """Always False: junctions are Windows'."""
        return False

    async def is_mount(self) -> bool:
        return await _namespace.ismount(self)

    async def owner(self, *, follow_symlinks: bool = True) -> str:
        """The owner's user name (the stat on the ring, the name lookup on the pool)."""
        import pwd

        uid = (await self.stat(follow_symlinks=follow_symlinks)).st_uid
        return str(await self._pooled(lambda: pwd.getpwuid(uid).pw_name))

    async def group(self, *, follow_symlinks: bool = True) -> str:
        """The group's name (the stat on the ring, the name lookup on the pool)."""
        import grp

        gid = (await self.stat(follow_symlinks=follow_symlinks)).st_gid
        return str(await self._pooled(lambda: grp.getgrgid(gid).gr_name))

    async def samefile(self, other: Any) -> bool:
        a, b = await self.stat(), await Path(other).stat()
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    # -- changing the file system -----------------------------------------------

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
            await self._pooled(os.utime, self, None)

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
        return self._new(target)

    async def replace(self, target: Any) -> Path:
        await _paths.replace(self, target)
        return self._new(target)

    async def hardlink_to(self, target: Any) -> None:
        await _paths.link(target, self)

    async def symlink_to(self, target: Any, target_is_directory: bool = False) -> None:
        """Make this path a symlink to ``target`` (``target_is_directory`` matters on Windows only)."""
        await _paths.symlink(target, self)

    async def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        async with self._limited():
            if follow_symlinks:
                await _paths.chmod(self, mode)
            else:
                await current_io().run_blocking(lambda: os.chmod(self, mode, follow_symlinks=False))

    async def lchmod(self, mode: int) -> None:
        """``chmod`` of the link itself: ``os.chmod(follow_symlinks=False)`` on the pool.  Linux has
        no lchmod, so there it raises NotImplementedError, exactly as ``pathlib.Path.lchmod``."""
        await self.chmod(mode, follow_symlinks=False)

    async def copy_to(self, target: Any) -> Path:
        """Copy this file's contents to ``target`` (see `spargio.fs.copyfile`)."""
        await _paths.copyfile(self, target)
        return self._new(target)

    # -- resolving ----------------------------------------------------------------

    async def readlink(self) -> Path:
        async with self._limited():
            return self._new(await _paths.readlink(self))

    async def resolve(self, strict: bool = False) -> Path:
        async with self._limited():
            if strict:
                resolved = await current_io().run_blocking(lambda: pathlib.Path(self).resolve(strict=True))
                return self._new(resolved)
            return self._new(await _paths.realpath(self))

    async def absolute(self) -> Path:
        return self if self.is_absolute() else self._new(await _namespace.getcwd(), self)

    async def expanduser(self) -> Path:
        """``~`` and ``~user`` expanded (the password database is read on the pool)."""
        if not str(self).startswith("~"):
            return self
        return self._new(await self._pooled(os.path.expanduser, str(self)))

    # -- listing ------------------------------------------------------------------

    async def iterdir(self) -> AsyncIterator[Path]:
        """The directory's entries (listed on a thread: io_uring has no getdents)."""
        async with self._limited():
            names = await _paths.listdir(self)
        for name in names:
            yield self / name

    async def glob(self, pattern: str, **options: Any) -> AsyncIterator[Path]:
        """``pathlib.Path.glob`` (its keywords for this Python too), matched on a thread."""
        base = pathlib.Path(self)
        for found in await self._pooled(lambda: list(base.glob(pattern, **options))):
            yield self._new(found)

    async def rglob(self, pattern: str, **options: Any) -> AsyncIterator[Path]:
        """``pathlib.Path.rglob``, matched on a thread."""
        base = pathlib.Path(self)
        for found in await self._pooled(lambda: list(base.rglob(pattern, **options))):
            yield self._new(found)

    async def walk(
        self, top_down: bool = True, on_error: Callable[[OSError], object] | None = None, follow_symlinks: bool = False
    ) -> AsyncIterator[tuple[Path, list[str], list[str]]]:
        """``os.walk`` of this directory: each level listed on a thread."""

        def walk() -> list[tuple[str, list[str], list[str]]]:
            return list(os.walk(self, top_down, on_error, follow_symlinks))

        for root, dirs, files in await self._pooled(walk):
            yield self._new(root), dirs, files
