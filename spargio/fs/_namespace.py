"""The rest of ``os`` and ``os.path`` that aiofiles and anyio users call.

Each does what its ``os`` namesake does.  Where the kernel has an io_uring
opcode for the work, it is used: the ``os.path`` time and identity helpers
are IORING_OP_STATX (one op per path), ``removedirs`` and ``renames`` are
unlinkat/mkdirat/renameat ops.  ``getcwd`` and ``abspath`` touch no file
system (the cwd is the process's own): they run inline, no hop.  ``access``,
``statvfs`` and ``sendfile`` have no opcode and run on spargio's bounded
blocking pool.

Cancellation: as each op's: a cancelled ``renames`` or ``removedirs`` stops
between its steps (the steps done stay done, as with a crash of ``os``'s).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from typing import TYPE_CHECKING, Any, TypeVar

from .._backend import current_io
from ._paths import exists, lstat, makedirs, rename, rmdir, stat

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from concurrent.futures import Executor

__all__ = [
    "abspath",
    "access",
    "getatime",
    "getctime",
    "getcwd",
    "getmtime",
    "islink",
    "ismount",
    "removedirs",
    "renames",
    "samefile",
    "sameopenfile",
    "sendfile",
    "statvfs",
    "wrap",
]

T = TypeVar("T")


async def getcwd() -> str:
    """``os.getcwd`` (inline: the process's own state, no I/O)."""
    return os.getcwd()


async def abspath(path: Any) -> Any:
    """``os.path.abspath`` (inline: string work and the cwd, no I/O)."""
    return os.path.abspath(path)  # noqa: ASYNC240 - string work and getcwd(), no file-system I/O


async def access(
    path: Any, mode: int, *, dir_fd: int | None = None, effective_ids: bool = False, follow_symlinks: bool = True
) -> bool:
    """``os.access`` (thread: io_uring has no faccessat opcode, and ACLs make statx no substitute)."""
    return bool(
        await current_io().run_blocking(
            functools.partial(os.access, dir_fd=dir_fd, effective_ids=effective_ids, follow_symlinks=follow_symlinks),
            path,
            mode,
        )
    )


async def statvfs(path: Any) -> os.statvfs_result:
    """``os.statvfs`` (thread: no opcode)."""
    result: os.statvfs_result = await current_io().run_blocking(os.statvfs, path)
    return result


async def sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
    """``os.sendfile``: up to ``count`` bytes from ``in_fd`` (at ``offset``; None: its position)
    to ``out_fd``, copied in the kernel (thread: no opcode; a blocking ``out_fd`` blocks a pool thread)."""
    sent: int = await current_io().run_blocking(os.sendfile, out_fd, in_fd, offset, count)
    return sent


async def getatime(path: Any) -> float:
    """``os.path.getatime`` (IORING_OP_STATX)."""
    return (await stat(path)).st_atime


async def getmtime(path: Any) -> float:
    """``os.path.getmtime`` (IORING_OP_STATX)."""
    return (await stat(path)).st_mtime


async def getctime(path: Any) -> float:
    """``os.path.getctime`` (IORING_OP_STATX)."""
    return (await stat(path)).st_ctime


async def islink(path: Any) -> bool:
    """``os.path.islink``: False for anything that cannot be lstat'ed."""
    try:
        return (await lstat(path)).st_mode & 0o170000 == 0o120000
    except (OSError, ValueError):
        return False


async def ismount(path: Any) -> bool:
    """``os.path.ismount``, as posixpath does it: a mount point's parent is on another device,
    or is the same inode (the root)."""
    try:
        st = await lstat(path)
    except (OSError, ValueError):
        return False
    if st.st_mode & 0o170000 == 0o120000:
        return False
    fspath = os.fspath(path)
    parent = os.path.join(fspath, b".." if isinstance(fspath, bytes) else "..")
    try:
        up = await lstat(parent)
    except (OSError, ValueError):
        return False
    return st.st_dev != up.st_dev or st.st_ino == up.st_ino


async def samefile(a: Any, b: Any) -> bool:
    """``os.path.samefile``: both names are one file (device and inode; two statx ops, together)."""
    sa, sb = await asyncio.gather(stat(a), stat(b))
    return os.path.samestat(sa, sb)


async def sameopenfile(fd1: int, fd2: int) -> bool:
    """``os.path.sameopenfile``: both fds are one file (statx on each open fd)."""
    io = current_io()
    s1, s2 = await asyncio.gather(io.stat(None, fd1), io.stat(None, fd2))
    return os.path.samestat(s1, s2)


async def removedirs(name: Any) -> None:
    """``os.removedirs``: remove ``name``, then each parent that is left empty, stopping at the
    first that cannot be removed (errors there are not raised; ``name``'s own are)."""
    await rmdir(name)
    head, tail = os.path.split(os.fspath(name))
    if not tail:
        head, tail = os.path.split(head)
    while head and tail:
        try:
            await rmdir(head)
        except OSError:
            break
        head, tail = os.path.split(head)


async def renames(old: Any, new: Any) -> None:
    """``os.renames``: create ``new``'s missing parents, rename, then remove ``old``'s parents
    that are left empty (failing to remove them is not an error)."""
    head, tail = os.path.split(os.fspath(new))
    if head and tail and not await exists(head):
        await makedirs(head)
    await rename(old, new)
    head, tail = os.path.split(os.fspath(old))
    if head and tail:
        try:
            await removedirs(head)
        except OSError:
            pass


def wrap(func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """An async version of blocking ``func``, as ``aiofiles.os.wrap``: each call runs on spargio's
    blocking pool with the caller's contextvars, or on ``executor=`` if one is given (``loop=`` is
    accepted for aiofiles' sake; the running loop is always the one used)."""

    @functools.wraps(func)
    async def run(
        *args: Any, loop: asyncio.AbstractEventLoop | None = None, executor: Executor | None = None, **kwargs: Any
    ) -> T:
        call = functools.partial(func, *args, **kwargs)
        if executor is not None:
            running = asyncio.get_running_loop()
            return await running.run_in_executor(executor, contextvars.copy_context().run, call)
        result: T = await current_io().run_blocking(call)
        return result

    return run
