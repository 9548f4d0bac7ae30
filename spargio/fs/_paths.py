"""Path helpers: whole-file reads and writes and namespace operations.

Native io_uring opcodes do the work where the kernel has them (openat, read,
write, fsync, close, statx, renameat, unlinkat, mkdirat, linkat, symlinkat).
Functions marked "thread" below have no opcode and run on spargio's bounded
blocking pool (`spargio._blocking`).

Cancellation: a cancelled helper cancels its op in flight; files it opened
are closed.  A cancelled ``write_*`` leaves the file in an unknown state
(use ``atomic=True`` for all-or-nothing replacement).
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import shutil
import stat as _stat
from typing import TYPE_CHECKING, Any

from .._backend import current_io
from ._args import MAX_CHUNK, data_view, fspath_bytes
from ._file import write_all

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable

__all__ = [
    "chmod",
    "copyfile",
    "exists",
    "getsize",
    "isdir",
    "isfile",
    "link",
    "listdir",
    "lstat",
    "makedirs",
    "mkdir",
    "read_bytes",
    "read_text",
    "readlink",
    "realpath",
    "remove",
    "rename",
    "replace",
    "rmdir",
    "scandir",
    "stat",
    "symlink",
    "unlink",
    "write_bytes",
    "write_text",
]

_COPY_CHUNK = 1 << 20


async def read_bytes(path: Any) -> bytes:
    """Read a whole file: open, read(s), close — one op each for files under 64 KiB."""
    io_ = current_io()
    fd = await io_.open(fspath_bytes(path), os.O_RDONLY, 0)
    try:
        return await io_.read_all(fd, 0)
    finally:
        io_.close_fd_detached(fd)


async def read_text(path: Any, encoding: str | None = None, errors: str | None = None) -> str:
    """Read a whole file as text (universal newlines, like ``pathlib.Path.read_text``)."""
    data = await read_bytes(path)
    text = data.decode(encoding or "utf-8", errors or "strict")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


async def write_bytes(path: Any, data: Any, *, fsync: bool = False, atomic: bool = False, mode: int = 0o666) -> int:
    """Create or replace a file with ``data``.

    :param data: a bytes-like object, or an async iterable of them (an
        upload's body, chunk by chunk): each chunk is written as it comes,
        so memory stays one chunk whatever the file's size.  An exception
        from the iterable ends the write as a failed write does (with
        ``atomic``: the temporary file is removed, the old file untouched).
    :param fsync: fsync the file before returning (durable contents); with
        ``atomic``, the directory is fsynced after the rename too, so the new
        name is durable as well.
    :param atomic: write a temporary file beside it (a hidden name unique to
        this call, so concurrent writers of one path never share it), fsync
        it, and rename it into place: readers see the old file or the new
        one, never half.  If the write fails or is cancelled before the
        rename, the temporary file is removed and the old file is untouched.
    :return: the number of bytes written.
    """
    view = None if hasattr(data, "__aiter__") else data_view(data)  # else: chunks, written as they come
    target = fspath_bytes(path)
    dest = _temporary_name(target) if atomic else target
    io_ = current_io()
    # A cancelled open may still create the temporary file: remove it once the open has ended.
    if_orphaned = (lambda: _unlink_quietly(dest)) if atomic else None
    durable = fsync or atomic
    try:
        if view is not None and view.nbytes <= MAX_CHUNK:  # the common case: one chain, one wakeup
            n = await _write_whole(dest, view, mode, durable, if_orphaned)
        else:
            n = await _write_opened(dest, view if view is not None else data, mode, durable, if_orphaned)
        if atomic:
            await io_.rename(dest, target)
    except BaseException:
        if atomic:
            _unlink_quietly(dest)  # ENOENT (ignored) if the rename happened before a cancel landed
        raise
    if atomic and fsync:
        await _fsync_directory(os.path.dirname(target) or b".")
    return n


async def _write_whole(
    dest: bytes, view: memoryview, mode: int, durable: bool, if_orphaned: Callable[[], None] | None
) -> int:
    """Open (create, truncate), write, [fsync,] close as `write_file` chains: one, unless the
    file fills up, when the rest is written on so that the error is the one a write gives."""
    io_ = current_io()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    n = await io_.write_file(dest, view, flags, mode, durable, if_orphaned=if_orphaned)
    while n < view.nbytes:
        more = await io_.write_file(dest, view[n:], os.O_WRONLY, 0, durable, offset=n)
        if not more:
            raise OSError(errno.EIO, "write made no progress (wrote 0 bytes)", os.fsdecode(dest))
        n += more
    return n


async def _write_opened(
    dest: bytes, data: Any, mode: int, durable: bool, if_orphaned: Callable[[], None] | None
) -> int:
    """The same op by op on an open fd: a buffer over one kernel transfer, or an async
    iterable of chunks written as they come."""
    io_ = current_io()
    fd = await io_.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode, if_orphaned=if_orphaned)
    try:
        n = await write_all(fd, data, 0) if isinstance(data, memoryview) else await _write_chunks(fd, data)
        if durable:
            await io_.fsync(fd, False)
    except BaseException:
        io_.close_fd_detached(fd)
        raise
    await io_.close_fd(fd)
    return n


async def _write_chunks(fd: int, chunks: AsyncIterable[Any]) -> int:
    offset = 0
    async for chunk in chunks:
        offset += await write_all(fd, data_view(chunk), offset)
    return offset


_temporary_names = itertools.count()


def _temporary_name(target: bytes) -> bytes:
    head, tail = os.path.split(target)
    return os.path.join(head, b".%s.spargio-tmp-%d-%d" % (tail, os.getpid(), next(_temporary_names)))


async def _fsync_directory(path: bytes) -> None:
    io_ = current_io()
    fd = await io_.open(path, os.O_RDONLY | os.O_DIRECTORY, 0)
    try:
        await io_.fsync(fd, False)
    finally:
        io_.close_fd_detached(fd)


def _unlink_quietly(path: bytes) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


async def write_text(
    path: Any,
    text: str,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    *,
    fsync: bool = False,
    atomic: bool = False,
) -> int:
    """Create or replace a file with ``text``; returns the number of characters."""
    if not isinstance(text, str):
        raise TypeError(f"data must be str, not {type(text).__name__}")
    out = text.replace("\n", newline) if newline not in (None, "", "\n") else text
    await write_bytes(path, out.encode(encoding or "utf-8", errors or "strict"), fsync=fsync, atomic=atomic)
    return len(text)


async def stat(path: Any, *, follow_symlinks: bool = True) -> os.stat_result:
    """``os.stat`` through IORING_OP_STATX."""
    return await current_io().stat(fspath_bytes(path), follow_symlinks=follow_symlinks)


async def lstat(path: Any) -> os.stat_result:
    """``os.lstat`` through IORING_OP_STATX."""
    return await stat(path, follow_symlinks=False)


async def exists(path: Any) -> bool:
    """Whether ``path`` exists (following symlinks), like ``os.path.exists``."""
    try:
        await stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
            return False
        raise
    return True


async def isfile(path: Any) -> bool:
    """As ``os.path.isfile``: False for anything that cannot be stat'ed (missing, a symlink loop...)."""
    try:
        return (await stat(path)).st_mode & 0o170000 == 0o100000
    except (OSError, ValueError):
        return False


async def isdir(path: Any) -> bool:
    """As ``os.path.isdir``: False for anything that cannot be stat'ed (missing, a symlink loop...)."""
    try:
        return (await stat(path)).st_mode & 0o170000 == 0o040000
    except (OSError, ValueError):
        return False


async def getsize(path: Any) -> int:
    return (await stat(path)).st_size


async def rename(src: Any, dst: Any) -> None:
    """``os.rename`` through IORING_OP_RENAMEAT (replaces ``dst`` on POSIX)."""
    await current_io().rename(fspath_bytes(src), fspath_bytes(dst))


async def replace(src: Any, dst: Any) -> None:
    """``os.replace``: rename, replacing ``dst`` if it exists."""
    await rename(src, dst)


async def remove(path: Any) -> None:
    """``os.remove`` through IORING_OP_UNLINKAT."""
    await current_io().unlink(fspath_bytes(path))


unlink = remove


async def rmdir(path: Any) -> None:
    """``os.rmdir`` through IORING_OP_UNLINKAT with AT_REMOVEDIR."""
    await current_io().rmdir(fspath_bytes(path))


async def mkdir(path: Any, mode: int = 0o777) -> None:
    """``os.mkdir`` through IORING_OP_MKDIRAT."""
    await current_io().mkdir(fspath_bytes(path), mode)


async def makedirs(path: Any, mode: int = 0o777, exist_ok: bool = False) -> None:
    """``os.makedirs``: create ``path`` and any missing parents (IORING_OP_MKDIRAT each)."""
    raw = fspath_bytes(path)
    head, tail = os.path.split(raw)
    if not tail:
        head, tail = os.path.split(head)
    if head and tail and not await exists(head):
        try:
            await makedirs(head, exist_ok=True)
        except FileExistsError:
            pass
        if tail == b".":  # "new/dir/." exists once "new/dir" does
            return
    try:
        await mkdir(raw, mode)
    except OSError:
        if not exist_ok or not await isdir(raw):
            raise


async def link(src: Any, dst: Any, *, follow_symlinks: bool = True) -> None:
    """A hard link ``dst`` to ``src`` (IORING_OP_LINKAT).

    ``follow_symlinks=True`` (the default) links what a symlink ``src`` points
    to, as `os.link` documents; ``False`` links the symlink itself.  Both
    backends do this.  (CPython's own ``os.link`` on Linux calls link(2) in
    the default case, which links the symlink itself.)
    """
    await current_io().link(fspath_bytes(src), fspath_bytes(dst), follow_symlinks)


async def symlink(target: Any, link_path: Any) -> None:
    """``os.symlink`` through IORING_OP_SYMLINKAT."""
    await current_io().symlink(fspath_bytes(target), fspath_bytes(link_path))


async def listdir(path: Any = ".") -> list[Any]:
    """``os.listdir`` (thread: io_uring has no getdents opcode)."""
    result: list[Any] = await current_io().run_blocking(os.listdir, path)
    return result


class ScandirIterator:
    """What `scandir` returns: ``os.scandir``'s iterator shape (``next``, ``for``, ``with``,
    ``close``) over entries already read, so iterating never blocks the loop."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[os.DirEntry[Any]]) -> None:
        self._entries = iter(entries)

    def __iter__(self) -> ScandirIterator:
        return self

    def __next__(self) -> os.DirEntry[Any]:
        return next(self._entries)

    def close(self) -> None:
        self._entries = iter(())

    def __enter__(self) -> ScandirIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def scandir(path: Any = ".") -> ScandirIterator:
    """``os.scandir``, read to the end on the blocking pool (io_uring has no getdents opcode).

    The entries' cached ``stat``/``is_dir`` answers come from that read; a
    call that needs a fresh ``stat`` (an entry's ``stat()`` on a filesystem
    without d_type, ``follow_symlinks``) makes it on the calling thread, as
    ``os.DirEntry`` does.
    """

    def scan() -> list[os.DirEntry[Any]]:
        with os.scandir(path) as it:
            return list(it)

    entries: list[os.DirEntry[Any]] = await current_io().run_blocking(scan)
    return ScandirIterator(entries)


async def readlink(path: Any) -> Any:
    """``os.readlink`` (thread: no readlinkat opcode)."""
    return await current_io().run_blocking(os.readlink, path)


async def chmod(path: Any, mode: int) -> None:
    """``os.chmod`` (thread: no fchmodat opcode)."""
    await current_io().run_blocking(os.chmod, path, mode)


async def realpath(path: Any) -> Any:
    """``os.path.realpath`` (thread: resolving links takes several syscalls)."""
    return await current_io().run_blocking(os.path.realpath, path)


async def copyfile(src: Any, dst: Any, *, fsync: bool = False) -> int:
    """Copy ``src``'s contents to ``dst`` (created or truncated), 1 MiB at a time.

    The read of the next chunk is in flight while the current one is written.
    Permission bits are not copied (like ``shutil.copyfile``).

    :return: the number of bytes copied.
    """
    io_ = current_io()
    src_b, dst_b = fspath_bytes(src), fspath_bytes(dst)
    src_st = await io_.stat(src_b)
    if _stat.S_ISDIR(src_st.st_mode):  # before dst is touched: its data must survive
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fsdecode(src_b))
    try:
        dst_st = await io_.stat(dst_b)
    except FileNotFoundError:
        pass
    else:
        if (src_st.st_dev, src_st.st_ino) == (dst_st.st_dev, dst_st.st_ino):
            raise shutil.SameFileError(f"{src!r} and {dst!r} are the same file")
    fd_in = await io_.open(src_b, os.O_RDONLY, 0)
    try:
        fd_out = await io_.open(dst_b, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            total = 0
            chunk = await io_.read(fd_in, _COPY_CHUNK, 0)
            while chunk:
                next_read = asyncio.ensure_future(io_.read(fd_in, _COPY_CHUNK, total + len(chunk)))
                try:
                    await write_all(fd_out, memoryview(chunk), total)
                except BaseException:
                    next_read.cancel()
                    raise
                total += len(chunk)
                chunk = await next_read
            if fsync:
                await io_.fsync(fd_out, False)
        finally:
            await io_.close_fd(fd_out)
    finally:
        io_.close_fd_detached(fd_in)
    return total
