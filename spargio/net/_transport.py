"""A stream socket transport on io_uring completions.

Theory of operation
-------------------
`RingTransport` is an ``asyncio.Transport`` over one connected stream socket
(TCP or AF_UNIX) whose reads and writes are io_uring ops on the loop's
`LoopRing` — the loop's own ring, or the shard's ring its loop waits on.

Receiving.  One multishot recv stays armed while the transport reads.  The
kernel picks a buffer from the loop's provided-buffer ring for each arrival
and posts a CQE naming it; the transport copies the bytes out (into
``bytes`` for a `Protocol`, into ``get_buffer()`` for a `BufferedProtocol`)
and hands the buffer straight back.  Idle connections hold no buffer.  The
recv ends with -ENOBUFS when every buffer is out (more data in flight than
buffers): that connection then does one plain recv into its own buffer and
arms the multishot again, so exhaustion slows it and never fails it.
``pause_reading`` cancels the recv; whatever its last CQEs carry is held and
delivered after ``resume_reading``.  EOF (a 0-byte CQE) goes to
``eof_received``, which closes the transport unless it returns true.

Sending.  ``write`` appends to a queue and asks the loop ring to call
`_send` just before its next submit, after every callback of this loop
iteration has run; so a burst of writes goes out as one send (one sendmsg
of many buffers when it is large).  One send is in flight at a time, which
keeps the byte order without links; a short send puts the rest back at the
head of the queue.  Sends use MSG_NOSIGNAL: a dead peer is EPIPE, never
SIGPIPE.  ``get_write_buffer_size`` counts queued and in-flight bytes, and
the protocol's ``pause_writing``/``resume_writing`` follow asyncio's high and
low water marks.  ``write_eof`` queues a SHUTDOWN op after the last send.

Closing.  ``close`` stops reading, lets the queue drain, then calls
``connection_lost(None)``.  ``abort`` and fatal errors cancel the ops in
flight and call ``connection_lost`` on the next iteration.  A cancelled op's
memory stays with the ring until its final CQE (see `spargio.native.ring`).
The socket's fd is closed only once no op that names it is left in the kernel
(``_fd_ops`` counts them), and then with an IORING_OP_CLOSE queued behind
anything still in the SQ: an op queued, or punted to io-wq (a SHUTDOWN, a
SPLICE), may resolve its fd number late, and a number closed under it could
by then belong to a new connection (a test closes and reconnects 60 times to
catch exactly that).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import functools
import logging
import socket
import warnings
from asyncio import trsock
from asyncio.transports import _FlowControlMixin
from typing import TYPE_CHECKING, Any

from ..native._abi import CQE_F_MORE
from ._binding import ring as _native

if TYPE_CHECKING:
    from .._loop_ring import LoopRing

__all__ = ["RingTransport", "receive_buffers", "release_socket", "water_marks"]

logger = logging.getLogger("spargio.net")
# readable_buffer, minus a frame (None where the binding failed to load: no ring transport then)
_from_buffer = functools.partial(_native.ffi.from_buffer, "char[]") if _native is not None else None

_RECV_BUFFERS = 256  # per loop: 256 x 16 KiB = 4 MiB, shared by every connection on the loop
_RECV_BUFFER_SIZE = 16 * 1024
_OWN_BUFFER_SIZE = 64 * 1024  # a connection's plain recv after -ENOBUFS, or where buffer rings are missing
_JOIN_LIMIT = 64 * 1024  # queued writes up to this many bytes are joined into one send; more go as sendmsg
_IOV_MAX = 1024
_WARN_AFTER_LOST = 5  # as asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES


class _NetState:
    """Per-loop state of spargio.net: the provided-buffer ring all connections receive into."""

    __slots__ = ("buffer_shortages", "buffers")

    def __init__(self, io: LoopRing) -> None:
        self.buffer_shortages = 0  # multishot recvs ended by -ENOBUFS (each fell back to a plain recv)
        try:
            self.buffers: _native.BufferRing | None = io.ring.buffer_ring(_RECV_BUFFERS, _RECV_BUFFER_SIZE)
        except OSError:  # kernels before 5.19 have no buffer rings: plain recvs
            self.buffers = None


def receive_buffers(io: LoopRing) -> _native.BufferRing | None:
    state = io.net
    if state is None:
        state = io.net = _NetState(io)
    buffers: _native.BufferRing | None = state.buffers
    return buffers


class RingTransport(_FlowControlMixin):
    """An asyncio stream transport whose recv, send and shutdown are io_uring ops.

    In-flight work on ``close()``: queued writes are still sent, then the
    socket closes.  On ``abort()`` (and on a fatal error) queued writes are
    dropped and the ops in flight are cancelled; a write the kernel had
    already taken may still reach the peer.
    """

    __slots__ = (
        "__weakref__",
        "_buffered",
        "_buffers",
        "_closing",
        "_conn_lost_writes",
        "_empty_waiters",
        "_eof_requested",
        "_fd",
        "_fd_ops",
        "_held",
        "_in_flight",
        "_in_flight_data",
        "_io",
        "_lost",
        "_on_plain_recv_entry",
        "_on_recv_entry",
        "_on_sent_entry",
        "_on_shutdown_entry",
        "_own_buffer",
        "_pipe",
        "_protocol",
        "_queue",
        "_queued",
        "_reading",
        "_recv_cancelled",
        "_recv_ud",
        "_release_pending",
        "_ring",
        "_send_scheduled",
        "_send_ud",
        "_sendfile_active",
        "_server",
        "_sock",
    )  # an idle connection costs what it holds, no per-object dict

    if TYPE_CHECKING:  # _FlowControlMixin's slots and helpers, which typeshed leaves out
        _loop: asyncio.AbstractEventLoop
        _protocol_paused: bool
        _high_water: int
        _low_water: int

        def _maybe_pause_protocol(self) -> None: ...
        def _maybe_resume_protocol(self) -> None: ...

    _start_tls_compatible = True
    _sendfile_compatible = asyncio.constants._SendfileMode.FALLBACK

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        io: LoopRing,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        *,
        extra: dict[str, Any] | None = None,
        server: Any = None,
        waiter: asyncio.Future[None] | None = None,
    ) -> None:
        super().__init__(extra, loop)  # asyncio's flow control: water marks, pause/resume_writing
        self._io = io
        self._ring = io.ring
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        # Ops in the kernel that name this fd (or the sendfile pipe's): the fd is closed only when
        # none is left, since an op queued or punted to io-wq may resolve the number late, and a
        # number closed under it could by then be another socket's.
        self._fd_ops = 0
        self._release_pending = False
        info: dict[str, Any] = self._extra  # type: ignore[attr-defined]  # (asyncio.BaseTransport's slot)
        info["socket"] = trsock.TransportSocket(sock)
        for key, call in (("sockname", sock.getsockname), ("peername", sock.getpeername)):
            try:
                info[key] = call()
            except OSError:
                info[key] = None
        self._protocol: asyncio.BaseProtocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._server = server
        if server is not None:
            server._attach(self)
        self._closing = False  # close() or abort() was called, or the connection failed
        self._lost = False  # connection_lost has been scheduled
        self._conn_lost_writes = 0
        # receiving
        self._buffers = receive_buffers(io)
        self._reading = True
        self._recv_ud = 0  # the armed recv (0: none)
        self._recv_cancelled = False  # its cancel is on the way
        self._held: collections.deque[bytes | None] = collections.deque()  # received while paused; None = EOF
        self._own_buffer: Any = None
        self._on_recv_entry = io.completion(self._on_recv)
        self._on_plain_recv_entry = io.completion(self._on_plain_recv)
        # sending
        self._queue: list[bytes] = []
        self._queued = 0
        self._in_flight = 0  # bytes of the send in flight
        self._in_flight_data: list[bytes] = []
        self._send_ud = 0
        self._send_scheduled = False
        self._on_sent_entry = io.completion(self._on_sent)
        self._on_shutdown_entry = io.completion(self._on_shutdown)
        self._eof_requested = False
        self._sendfile_active = False  # a spargio.net.sendfile owns the socket's sending side
        self._pipe: tuple[int, int] | None = None  # sendfile's pipe (read end, write end)
        self._empty_waiters: list[asyncio.Future[None]] = []
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._arm_recv)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter)

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else "closing" if self._closing else "open"
        return f"<RingTransport fd={self._fd} {state} buffered={self.get_write_buffer_size()}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()
            self._sock = None

    # -- asyncio.BaseTransport --------------------------------------------

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; queued writes are still sent, then ``connection_lost(None)``."""
        if self._closing:
            return
        self._closing = True
        self._stop_recv()
        if not self._queued and not self._send_ud:
            self._schedule_connection_lost(None)

    def abort(self) -> None:
        """Close now: queued writes are dropped, ops in flight cancelled, then ``connection_lost(None)``."""
        self._force_close(None)

    # -- reading ----------------------------------------------------------

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        """Cancel the armed recv; bytes its last CQEs carry are held until `resume_reading`."""
        if self._closing or not self._reading:
            return
        self._reading = False
        self._stop_recv()

    def resume_reading(self) -> None:
        """Deliver what was held (next iteration), then arm the recv again."""
        if self._closing or self._reading:
            return
        self._reading = True
        if self._held:
            self._loop.call_soon(self._deliver_held)
        else:
            self._arm_recv()

    def _stop_recv(self) -> None:
        if self._recv_ud and not self._recv_cancelled and not self._io.closed:
            self._recv_cancelled = True
            self._io._cancel(self._recv_ud)

    def _arm_recv(self) -> None:
        if self._recv_ud or self._closing or not self._reading or self._held or self._io.closed:
            return
        if self._buffers is not None:
            self._recv_ud = self._ring.prep_recv_multishot(self._fd, self._buffers, self._on_recv_entry)
            self._fd_ops += 1
        else:
            self._arm_plain_recv()
            return
        self._recv_cancelled = False
        self._io._request_flush()

    def _arm_plain_recv(self) -> None:
        if self._own_buffer is None:
            self._own_buffer = _native.buffer(_OWN_BUFFER_SIZE)
        self._recv_ud = self._ring.prep_recv(self._fd, self._own_buffer, _OWN_BUFFER_SIZE, self._on_plain_recv_entry)
        self._fd_ops += 1
        self._recv_cancelled = False
        self._io._request_flush()

    def _on_recv(self, res: int, flags: int) -> None:
        """A CQE of the multishot recv: bytes in a provided buffer, EOF, or the end of the op."""
        if not flags & CQE_F_MORE:
            self._recv_ud = 0
            self._recv_cancelled = False
            self._op_done()
        if res > 0:
            buffers: Any = self._buffers
            bid = flags >> 16
            if self._closing:  # closed, or reading stopped for good: bytes still arriving are dropped
                buffers.recycle(bid)
                return
            if not self._reading or self._held or self._buffered:
                if self._buffered and self._reading and not self._held:
                    self._into_protocol_buffer(buffers, bid, res)
                else:
                    self._received(buffers.take(bid, res))
            else:  # the hot path: bytes straight to data_received
                self._data_received(buffers.take(bid, res))
        elif self._closing:
            return
        elif res == 0:
            self._received(None)  # EOF ends the op
            return
        elif res == -errno.ENOBUFS:  # every provided buffer is out: one plain recv, then multishot again
            self._io.net.buffer_shortages += 1
            if self._reading and not self._closing and not self._held and not self._io.closed:
                self._arm_plain_recv()
            return
        elif res != -errno.ECANCELED:
            self._fatal_error(_native.os_error(res), "Fatal read error on socket transport")
            return
        if not self._recv_ud and not self._closing:
            self._arm_recv()  # the kernel ended the multishot (or we cancelled it and read on)

    def _on_plain_recv(self, res: int, _flags: int) -> None:
        self._recv_ud = 0
        self._recv_cancelled = False
        self._op_done()
        if self._closing:
            return
        if res > 0:
            self._received(_native.buffer_bytes(self._own_buffer, res))
        elif res == 0:
            self._received(None)
            return
        elif res != -errno.ECANCELED:
            self._fatal_error(_native.os_error(res), "Fatal read error on socket transport")
            return
        self._arm_recv()

    def _into_protocol_buffer(self, buffers: _native.BufferRing, bid: int, length: int) -> None:
        protocol: Any = self._protocol
        try:
            target = memoryview(protocol.get_buffer(length)).cast("B")
            if not target.nbytes:
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            buffers.recycle(bid)
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        if target.nbytes >= length:
            buffers.take_into(bid, length, target)
            self._buffer_updated(length)
        else:  # a smaller buffer than offered: feed it in pieces
            self._feed_buffered(buffers.take(bid, length), target)

    def _received(self, data: bytes | None) -> None:
        """Data (None: EOF) for the protocol, or held while reading is paused."""
        if not self._reading or self._held:
            self._held.append(data)
            return
        if data is None:
            self._eof()
        elif self._buffered:
            self._feed_buffered(data, None)
        else:
            self._data_received(data)

    def _data_received(self, data: bytes) -> bool:
        """``protocol.data_received(data)``; a failure is fatal to the transport (False)."""
        try:
            self._protocol.data_received(data)  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
            return False
        return True

    def _feed_buffered(self, data: bytes, target: memoryview | None) -> None:
        view = memoryview(data)
        protocol: Any = self._protocol
        while view and not self._lost:
            try:
                if target is None:
                    target = memoryview(protocol.get_buffer(len(view))).cast("B")
                    if not target.nbytes:
                        raise RuntimeError("get_buffer() returned an empty buffer")
                n = min(target.nbytes, len(view))
                target[:n] = view[:n]
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
            self._buffer_updated(n)
            view = view[n:]
            target = None

    def _buffer_updated(self, n: int) -> None:
        try:
            self._protocol.buffer_updated(n)  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def _deliver_held(self) -> None:
        while self._held and self._reading and not self._lost:
            data = self._held.popleft()
            if data is None:
                self._eof()
                return
            if self._buffered:
                self._feed_buffered(data, None)
            elif not self._data_received(data):
                return
        self._arm_recv()

    def _eof(self) -> None:
        self._reading = False  # nothing more will come
        try:
            keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if not keep_open:
            self.close()

    # -- writing ----------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; it goes out with this iteration's other writes in one send."""
        if data.__class__ is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
            data = bytes(data)  # the caller may reuse its buffer
        if self._eof_requested:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._sendfile_active:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self._lost:
            if self._conn_lost_writes >= _WARN_AFTER_LOST:
                logger.warning("socket.send() raised exception.")
            self._conn_lost_writes += 1
            return
        if not self._send_ud and not self._queue:  # the common case: nothing ahead of it, send it now
            n = len(data)
            self._send_ud = self._ring.prep_send(self._fd, _from_buffer(data), n, self._on_sent_entry, data)
            self._fd_ops += 1
            self._in_flight_data = [data]
            self._in_flight = n
            io = self._io
            if not io._flush_pending:
                io._request_flush()
        else:  # behind a send in flight: gathered into the next one
            self._queue.append(data)
            self._queued += len(data)
            if not self._send_scheduled and not self._send_ud:
                self._send_scheduled = True
                self._io.at_flush(self._send)
        if self._queued + self._in_flight > self._high_water and not self._protocol_paused:
            self._maybe_pause_protocol()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _send(self) -> None:
        """Send everything queued in one op (called just before the ring's next submit)."""
        self._send_scheduled = False
        if self._send_ud or not self._queue or self._lost or self._io.closed:
            return
        queue, size = self._queue, self._queued
        self._queue, self._queued = [], 0
        if len(queue) == 1:
            data = queue[0]
            self._send_ud = self._ring.prep_send(self._fd, _from_buffer(data), size, self._on_sent_entry, data)
        elif size <= _JOIN_LIMIT or len(queue) > _IOV_MAX:
            data = b"".join(queue)
            queue = [data]
            self._send_ud = self._ring.prep_send(
                self._fd, _native.readable_buffer(data), size, self._on_sent_entry, data
            )
        else:
            bufs = [_native.readable_buffer(chunk) for chunk in queue]
            self._send_ud = self._ring.prep_sendv(self._fd, bufs, self._on_sent_entry, queue)
        self._fd_ops += 1
        self._in_flight_data = queue
        self._in_flight = size

    def _on_sent(self, res: int, _flags: int) -> None:
        self._send_ud = 0
        self._op_done()
        sent_of, data = self._in_flight, self._in_flight_data
        self._in_flight, self._in_flight_data = 0, []
        if self._lost:
            return
        if res < 0:
            if res == -errno.ECANCELED and self._closing:
                return
            self._fatal_error(_native.os_error(res), "Fatal write error on socket transport")
            return
        if res < sent_of:  # a short send: the rest goes first next time
            rest = b"".join(data)[res:]
            self._queue.insert(0, rest)
            self._queued += len(rest)
        if self._queue:
            self._send_scheduled = True
            self._io.at_flush(self._send)
            return
        if self._empty_waiters:
            self._wake_empty_waiters()
        if self._protocol_paused:
            self._maybe_resume_protocol()
        if self._closing:
            self._schedule_connection_lost(None)
        elif self._eof_requested:
            self._shutdown_write()

    async def _drained(self) -> None:
        """Wait until every queued and in-flight write is out (or the transport failed)."""
        while (self._queued or self._send_ud) and not self._lost:
            waiter = self._loop.create_future()
            self._empty_waiters.append(waiter)
            await waiter

    def _wake_empty_waiters(self) -> None:
        waiters, self._empty_waiters = self._empty_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Shut the sending side (SHUT_WR) once queued writes are out; reading goes on."""
        if self._eof_requested or self._closing:
            return
        self._eof_requested = True
        if not self._queued and not self._send_ud:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        if self._io.closed or self._sock is None:
            return
        self._ring.prep_shutdown(self._fd, socket.SHUT_WR, self._on_shutdown_entry)
        self._fd_ops += 1
        self._io._request_flush()

    def _on_shutdown(self, _res: int, _flags: int) -> None:
        self._op_done()  # (a failed shutdown means the connection is gone: the recv says how)

    def _release_fds(self) -> None:
        """Close the socket (and sendfile's pipe): no op names them any more."""
        self._release_pending = False
        if self._pipe is not None:
            for fd in self._pipe:
                self._io.close_behind_ops(fd)
            self._pipe = None
        if self._sock is not None:
            release_socket(self._io, self._sock)
            self._sock = None

    def _op_done(self) -> None:
        """One op on this transport's fds has had its final CQE; release them once none is left."""
        self._fd_ops -= 1
        if not self._fd_ops and self._release_pending:
            self._release_fds()

    def get_write_buffer_size(self) -> int:
        return self._queued + self._in_flight

    # -- ending -----------------------------------------------------------

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if isinstance(exc, OSError) and exc.errno in (
            errno.EPIPE,
            errno.ECONNRESET,
            errno.ECONNABORTED,
            errno.ETIMEDOUT,
            errno.ENOTCONN,
        ):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
            )
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._closing = True
        self._queue, self._queued = [], 0
        self._in_flight = 0  # the send in flight is cancelled: its bytes are no longer the transport's
        self._stop_recv()
        if self._send_ud and not self._io.closed:
            self._io._cancel(self._send_ud)
        self._schedule_connection_lost(exc)

    def _schedule_connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._wake_empty_waiters()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            self._held.clear()
            self._release_pending = True
            if not self._fd_ops:
                self._release_fds()
            server, self._server = self._server, None
            if server is not None:
                server._detach(self)


def release_socket(io: LoopRing, sock: socket.socket) -> None:
    """Close ``sock`` behind the ring ops already queued on its fd (see `LoopRing.close_behind_ops`)."""
    if sock.fileno() < 0:
        return
    io.close_behind_ops(sock.detach())


def water_marks(high: int | None, low: int | None) -> tuple[int, int]:
    """asyncio's rule for ``set_write_buffer_limits``: (high, low) from what was given."""
    if high is None:
        high = 64 * 1024 if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


def _set_result_unless_cancelled(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.set_result(None)
