"""Zero-copy file -> socket for `RingTransport`: splice through a pipe, as io_uring ops.

Theory of operation
-------------------
A chunk goes file -> pipe -> socket in two linked SPLICE ops submitted
together: the kernel moves page-cache pages into the pipe and from the pipe
into the socket, and the bytes never reach Python.  The second op starts only
if the first moved the whole chunk (IOSQE_IO_LINK); after a short first op
(the file ended) or a short second one (the socket's buffer filled), what is
left in the pipe is spliced on by itself, waiting for the socket to become
writable (a POLL_ADD op) when it says EAGAIN.  Queued writes go first: the
transport's queue is drained before the first chunk, and ``write`` raises
while the sendfile runs, as asyncio's does.  The pipe is the transport's own,
made on first use and closed with it.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import select
from typing import IO, Any

from ..native.ring import os_error
from ._transport import RingTransport

__all__ = ["sendfile"]

_CHUNK = 1 << 20  # the pipe is asked for this size; pipe-max-size is 1 MiB by default
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


async def sendfile(
    transport: asyncio.WriteTransport, file: IO[bytes], offset: int = 0, count: int | None = None
) -> int:
    """Send ``count`` bytes of ``file`` from ``offset`` (to EOF if None) over ``transport``.

    On a `RingTransport` the bytes go by splice, never through Python; any
    other transport goes to ``loop.sendfile`` (which may read and write
    chunks, or raise NotImplementedError on uvloop).  The file's position is
    left after the last byte sent, as ``loop.sendfile`` leaves it.  Returns
    the number of bytes sent.  Cancelled: the splices in flight are cancelled;
    bytes already in the socket stay sent, and the pipe is dropped (its
    content cannot be taken back), so the transport is closed.
    """
    if not isinstance(transport, RingTransport):
        loop = asyncio.get_running_loop()
        return await loop.sendfile(transport, file, offset, count)
    if transport.is_closing():
        raise RuntimeError("Transport is closing")
    if count is not None and count <= 0:
        if count == 0:
            return 0
        raise ValueError(f"count must be a positive integer (got {count!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
    await transport._drained()
    transport._sendfile_active = True
    try:
        sent = await _splice_all(transport, file.fileno(), offset, count)
    except BaseException:
        transport.abort()  # bytes may be stuck in the pipe: the stream is no longer whole
        raise
    finally:
        transport._sendfile_active = False
    file.seek(offset + sent)
    return sent


async def _splice_all(transport: RingTransport, file_fd: int, offset: int, count: int | None) -> int:
    io = transport._io
    pipe_r, pipe_w = _pipe_of(transport)
    sent = 0
    while count is None or sent < count:
        if transport._lost:
            raise ConnectionResetError("Connection lost")
        chunk = _CHUNK if count is None else min(_CHUNK, count - sent)
        into_pipe, out_of_pipe = io._future(), io._future()
        ud_in = io.ring.prep_splice(file_fd, offset + sent, pipe_w, -1, chunk, into_pipe, link=True)
        ud_out = io.ring.prep_splice(pipe_r, -1, transport._fd, -1, chunk, out_of_pipe)
        moved_in = await _await_both(io, into_pipe, ud_in, out_of_pipe, ud_out)
        moved_out = out_of_pipe.result()
        if moved_in < 0:
            raise os_error(moved_in)
        if moved_in == 0:
            return sent  # EOF
        left = moved_in - max(moved_out, 0)
        if moved_out < 0 and moved_out not in (-errno.ECANCELED, -errno.EAGAIN):
            raise os_error(moved_out)
        await _drain_pipe(transport, pipe_r, left)
        sent += moved_in
        if moved_in < chunk:
            return sent  # the file ended inside this chunk
    return sent


async def _await_both(
    io: Any, first: asyncio.Future[int], ud_first: int, second: asyncio.Future[int], ud_second: int
) -> int:
    try:
        await second  # completes after the first (linked), or with it (-ECANCELED)
        return await first
    except asyncio.CancelledError:
        io._cancel(ud_first)
        io._cancel(ud_second)
        raise


async def _drain_pipe(transport: RingTransport, pipe_r: int, left: int) -> None:
    """Splice what is still in the pipe into the socket, waiting for room when it is full."""
    io = transport._io
    while left > 0:
        fut = io._future()
        ud = io.ring.prep_splice(pipe_r, -1, transport._fd, -1, left, fut)
        res = await io._result(fut, ud)
        if res == -errno.EAGAIN:
            ready = io._future()
            await io._result(ready, io.ring.prep_poll_add(transport._fd, select.POLLOUT, ready))
            continue
        if res < 0:
            raise os_error(res)
        left -= res


def _pipe_of(transport: RingTransport) -> tuple[int, int]:
    pipe = transport._pipe
    if pipe is None:
        pipe = os.pipe2(os.O_CLOEXEC)
        try:
            fcntl.fcntl(pipe[1], _F_SETPIPE_SZ, _CHUNK)
        except OSError:
            pass  # the default 64 KiB: smaller chunks
        transport._pipe = pipe
    return pipe
