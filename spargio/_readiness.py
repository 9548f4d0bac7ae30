"""Stream readiness on the loop, for the thread backend.

Theory of operation.  A blocking read from an empty pipe, or a write into a
full one, would hold a pool thread until the other end acts, and a cancel
cannot take that thread back; enough of them starve every other file op of
the backend.  So stream ops (pipes, sockets: what epoll can watch) never go
to the pool while they would block:

1. wait on the loop until the fd is readable (or writable) -- cancelling
   that wait costs nothing and leaves nothing behind;
2. then try the call once on the loop thread with ``RWF_NOWAIT``
   (preadv2/pwritev2), which the kernel answers at once: data, a short
   write, EOF, an error, or EAGAIN when another waiter got there first --
   then go back to 1.

Step 1 comes first even when data may already be there, so every op yields
to the loop at least once: a reader of a pipe that is fed without pause
cannot starve the loop.

asyncio and uvloop keep a single reader and a single writer callback per fd
(a second ``add_reader`` replaces the first), so several ops waiting on one
fd share one registration: `Readiness` keeps, per (fd, direction), the
futures waiting, wakes them all when the fd is ready (each retries; the
losers wait again), and removes the registration when its last waiter has
gone, woken or cancelled.

Files the kernel cannot do ``RWF_NOWAIT`` on (ttys and some character
devices: EOPNOTSUPP) fall back to the blocking call on the pool after
readiness, as regular files (which epoll refuses) always do.
"""

from __future__ import annotations

import asyncio
import errno
import os
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["READ", "WRITE", "NoWaitUnsupported", "Readiness", "read_nowait", "readinto_nowait", "write_nowait"]

READ = False
WRITE = True

_RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)


class NoWaitUnsupported(Exception):
    """The fd's file cannot answer without blocking (``RWF_NOWAIT`` refused)."""


def _nowait(call: Callable[..., int], fd: int, buffers: list[Any]) -> int:
    if not _RWF_NOWAIT:
        raise NoWaitUnsupported
    try:
        return call(fd, buffers, -1, _RWF_NOWAIT)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            raise NoWaitUnsupported from None
        raise


# A stream read returns what the pipe or socket holds, which is rarely more than this;
# capping the buffer keeps a read(1 GiB) from zero-filling a gibibyte per attempt.
_MAX_STREAM_READ = 1 << 18


def read_nowait(fd: int, length: int) -> bytes:
    """Read up to ``length`` bytes (at most 256 KiB) from a stream now, or raise BlockingIOError."""
    buf = bytearray(min(length, _MAX_STREAM_READ))
    n = _nowait(os.preadv, fd, [buf])
    del buf[n:]
    return bytes(buf)


def readinto_nowait(fd: int, target: memoryview) -> int:
    """Read into ``target`` from a stream now, or raise BlockingIOError."""
    return _nowait(os.preadv, fd, [target])


def write_nowait(fd: int, data: Any) -> int:
    """Write what fits into a stream now (maybe short), or raise BlockingIOError."""
    return _nowait(os.pwritev, fd, [data])


class Readiness:
    """The loop's readiness registrations for stream fds, shared by their waiters."""

    __slots__ = ("_loop_ref", "_waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_ref = weakref.ref(loop)  # the loop's I/O object must not keep its loop alive
        self._waiting: dict[tuple[int, bool], list[asyncio.Future[None]]] = {}

    async def wait(self, fd: int, direction: bool) -> bool:
        """Wait until ``fd`` is ready to read (or write); False at once if the loop cannot watch it.

        Regular files are refused by epoll (and so by asyncio and uvloop):
        their callers do the blocking call on the pool instead.  A cancelled
        waiter leaves, and takes the registration with it if it was the last.
        """
        loop = self._loop_ref()
        if loop is None:
            raise RuntimeError("the loop this I/O object served is gone")
        key = (fd, direction)
        waiters = self._waiting.get(key)
        if waiters is None:
            add = loop.add_writer if direction else loop.add_reader
            try:
                add(fd, self._ready, key)
            except (ValueError, OSError):
                return False
            waiters = self._waiting[key] = []
        ready: asyncio.Future[None] = loop.create_future()
        waiters.append(ready)
        try:
            await ready
        except asyncio.CancelledError:
            if self._waiting.get(key) is waiters and ready in waiters:  # not woken meanwhile
                waiters.remove(ready)
                if not waiters:
                    self._unregister(key)
            raise
        return True

    def forget(self, fd: int) -> None:
        """``fd`` is being closed: its waiters fail with EBADF and its registrations go.

        Failing them now, rather than letting them retry, keeps a retry from
        touching whatever file later reuses the fd's number.
        """
        for key in ((fd, READ), (fd, WRITE)):
            if key in self._waiting:
                for ready in self._unregister(key):
                    if not ready.done():
                        ready.set_exception(OSError(errno.EBADF, "the fd was closed while an op waited on it"))

    def _ready(self, key: tuple[int, bool]) -> None:
        waiters = self._unregister(key)
        for ready in waiters:
            if not ready.done():
                ready.set_result(None)

    def _unregister(self, key: tuple[int, bool]) -> list[asyncio.Future[None]]:
        fd, direction = key
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed():
            (loop.remove_writer if direction else loop.remove_reader)(fd)
        return self._waiting.pop(key)
