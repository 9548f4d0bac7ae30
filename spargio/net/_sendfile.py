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
from typing import IO

from ._binding import ring as _native
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
        transport._fd_ops += 2
        try:
            moved_out = await _counted(transport, out_of_pipe, ud_out)  # after the first (linked), or with it
        except BaseException:
            _abandon(transport, into_pipe, ud_in)
            raise
        moved_in = await _counted(transport, into_pipe, ud_in, already_done=True)
        if moved_in < 0:
            raise _native.os_error(moved_in)
        if moved_in == 0:
            return sent  # EOF
        left = moved_in - max(moved_out, 0)
        if moved_out < 0 and moved_out not in (-errno.ECANCELED, -errno.EAGAIN):
            raise _native.os_error(moved_out)
        await _drain_pipe(transport, pipe_r, left)
        sent += moved_in
        if moved_in < chunk:
            return sent  # the file ended inside this chunk
    return sent


async def _counted(transport: RingTransport, fut: asyncio.Future[int], ud: int, *, already_done: bool = False) -> int:
    """Await op ``ud``, which the transport counts among those naming its fds until its final CQE.

    Cancelled: the op is cancelled and stays counted until its CQE comes, so the
    transport cannot close the fds under it.  ``already_done``: its CQE has come.
    """
    if already_done and fut.done():
        transport._op_done()
        return fut.result()
    try:
        res = await fut
    except asyncio.CancelledError:
        _abandon(transport, fut, ud)
        raise
    transport._op_done()
    return res


def _abandon(transport: RingTransport, fut: asyncio.Future[int], ud: int) -> None:
    """Stop waiting for op ``ud``: cancel it, and let the transport count it until its final CQE."""
    io = transport._io
    if (fut.done() and not fut.cancelled()) or io.closed or not io.ring.cancel_pending(ud):
        transport._op_done()  # its CQE has come (or the closing ring takes care of it)
    else:
        io._cancel(ud, lambda _res: transport._op_done())


async def _drain_pipe(transport: RingTransport, pipe_r: int, left: int) -> None:
    """Splice what is still in the pipe into the socket, waiting for room when it is full."""
    io = transport._io
    while left > 0:
        fut = io._future()
        ud = io.ring.prep_splice(pipe_r, -1, transport._fd, -1, left, fut)
        transport._fd_ops += 1
        res = await _counted(transport, fut, ud)
        if res == -errno.EAGAIN:
            ready = io._future()
            ud = io.ring.prep_poll_add(transport._fd, select.POLLOUT, ready)
            transport._fd_ops += 1
            await _counted(transport, ready, ud)
            continue
        if res < 0:
            raise _native.os_error(res)
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
