"""UDP (and AF_UNIX datagram) endpoints on io_uring completions, as ``loop.create_datagram_endpoint``.

Theory of operation
-------------------
`RingDatagramTransport` keeps one RECVMSG op armed into its own 64 KiB buffer
(a datagram's bytes and its sender's address come in one CQE) and arms the
next when it completes, until reading is paused or the transport closes.
``sendto`` queues; one SENDMSG is in flight at a time (so ``get_write_buffer_size``
means what asyncio's does), and the next datagram goes when it completes.
Errors of one datagram (ECONNREFUSED from an ICMP port-unreachable, EMSGSIZE)
go to ``error_received`` and the endpoint goes on, as asyncio's does.
``close`` sends what is queued, then ``connection_lost(None)``; ``abort``
drops it.  Cancelled ops keep their memory until their final CQE.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
import warnings
from asyncio import trsock
from typing import TYPE_CHECKING, Any

from ._binding import ring as _native
from ._sockets import address_of, ring_of, sockaddr
from ._transport import release_socket, water_marks

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._loop_ring import LoopRing

__all__ = ["RingDatagramTransport", "create_datagram_endpoint"]

_DATAGRAM_MAX = 65536
_P = Any


class RingDatagramTransport(asyncio.DatagramTransport):
    """A datagram transport whose recvmsg and sendmsg are io_uring ops."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        io: LoopRing,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
        address: Any,
        waiter: asyncio.Future[None],
    ) -> None:
        super().__init__({"socket": trsock.TransportSocket(sock)})
        self._extra: dict[str, Any] = self._extra
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        self._extra["peername"] = address
        self._loop, self._io, self._ring = loop, io, io.ring
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._family = sock.family
        self._address = address  # the connected peer (remote_addr), or None
        self._protocol = protocol
        self._closing = False
        self._lost = False
        self._reading = True
        self._recv_ud = 0
        self._recv_buffer = _native.buffer(_DATAGRAM_MAX)
        self._recv_scratch = _native.message_scratch()
        self._on_recv_entry = io.completion(self._on_recv)
        self._queue: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._queued = 0
        self._send_ud = 0
        self._on_sent_entry = io.completion(self._on_sent)
        self._protocol_paused = False
        self._high_water, self._low_water = 64 * 1024, 16 * 1024
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._arm_recv)
        loop.call_soon(_resolve, waiter)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()

    # -- receiving --------------------------------------------------------

    def _arm_recv(self) -> None:
        if self._recv_ud or self._closing or not self._reading or self._io.closed:
            return
        self._recv_ud = self._ring.prep_recvmsg(
            self._fd, self._recv_scratch, self._recv_buffer, _DATAGRAM_MAX, self._on_recv_entry
        )
        self._io._request_flush()

    def _on_recv(self, res: int, _flags: int) -> None:
        self._recv_ud = 0
        if self._lost or self._closing:
            return
        if res >= 0:
            data = _native.buffer_bytes(self._recv_buffer, res)
            address = address_of(_native.message_name(self._recv_scratch)) or self._address
            try:
                self._protocol.datagram_received(data, address)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.datagram_received() call failed.")
                return
        elif res != -errno.ECANCELED:
            self._protocol.error_received(_native.os_error(res))
        self._arm_recv()

    # -- sending ----------------------------------------------------------

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Queue one datagram to ``addr`` (None: the connected peer); it leaves with the next flush."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._address is not None and addr not in (None, self._address):
            raise ValueError(f"Invalid address: must be None or {self._address}")
        if self._lost or self._closing:
            return
        raw = None if addr is None else sockaddr(self._family, addr)
        chunk = bytes(data)
        self._queue.append((chunk, raw))
        self._queued += len(chunk)
        if not self._send_ud:
            self._send_next()
        if not self._protocol_paused and self._queued > self._high_water:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def _send_next(self) -> None:
        if not self._queue or self._io.closed or self._sock is None:
            return
        data, raw = self._queue[0]
        self._send_ud = self._ring.prep_sendmsg_to(self._fd, _native.message_scratch(), data, raw, self._on_sent_entry)
        self._io._request_flush()

    def _on_sent(self, res: int, _flags: int) -> None:
        self._send_ud = 0
        if self._lost:
            return
        data, _raw = self._queue.popleft()
        self._queued -= len(data)
        if res < 0 and res != -errno.ECANCELED:
            self._protocol.error_received(_native.os_error(res))  # that datagram is lost; the rest go on
        if self._protocol_paused and self._queued <= self._low_water:
            self._protocol_paused = False
            self._protocol.resume_writing()
        if self._queue:
            self._send_next()
        elif self._closing:
            self._schedule_connection_lost(None)

    def get_write_buffer_size(self) -> int:
        return self._queued

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low_water, self._high_water

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high_water, self._low_water = water_marks(high, low)

    # -- the rest of the transport ----------------------------------------

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        """Stop receiving (the armed recvmsg is cancelled; datagrams wait in the socket)."""
        if self._reading and not self._closing:
            self._reading = False
            if self._recv_ud:
                self._io._cancel(self._recv_ud)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            if not self._recv_ud:
                self._arm_recv()

    def close(self) -> None:
        """Stop receiving; queued datagrams are still sent, then ``connection_lost(None)``."""
        if self._closing:
            return
        self._closing = True
        if self._recv_ud:
            self._io._cancel(self._recv_ud)
        if not self._queue:
            self._schedule_connection_lost(None)

    def abort(self) -> None:
        """Close now; queued datagrams are dropped."""
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        self._closing = True
        self._queue.clear()
        self._queued = 0
        for ud in (self._recv_ud, self._send_ud):
            if ud:
                self._io._cancel(ud)
        self._schedule_connection_lost(exc)

    def _schedule_connection_lost(self, exc: BaseException | None) -> None:
        if not self._lost:
            self._lost = True
            self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            if self._sock is not None:
                release_socket(self._io, self._sock)
                self._sock = None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.cancelled():
        waiter.set_result(None)


async def create_datagram_endpoint(
    protocol_factory: Callable[[], _P],
    local_addr: Any = None,
    remote_addr: Any = None,
    *,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    reuse_port: bool | None = None,
    allow_broadcast: bool | None = None,
    sock: socket.socket | None = None,
) -> tuple[asyncio.DatagramTransport, _P]:
    """A datagram endpoint, as ``loop.create_datagram_endpoint``; on io_uring its recvs and sends are ops.

    ``local_addr``/``remote_addr`` are resolved with the loop's getaddrinfo (a
    str path for AF_UNIX); ``remote_addr`` connects the socket, and then
    ``sendto``'s address must be None or that peer.
    """
    loop = asyncio.get_running_loop()
    io = ring_of(loop)
    if io is None or not io.ring.supports("RECVMSG"):
        kwargs = {k: v for k, v in (("reuse_port", reuse_port), ("allow_broadcast", allow_broadcast)) if v}
        own: Any = loop
        return await own.create_datagram_endpoint(  # type: ignore[no-any-return]
            protocol_factory, local_addr, remote_addr, family=family, proto=proto, flags=flags, sock=sock, **kwargs
        )
    if sock is not None:
        if local_addr or remote_addr or family or proto or flags or reuse_port or allow_broadcast:
            raise ValueError("socket modifier keyword arguments can not be used when sock is specified")
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
        sock.setblocking(False)
        remote = None
    else:
        sock, remote = await _datagram_socket(loop, local_addr, remote_addr, family, proto, flags)
        try:
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if allow_broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if local_addr is not None:
                sock.bind(local_addr if sock.family == socket.AF_UNIX else _resolved_local(sock, local_addr))
            if remote is not None:
                sock.connect(remote)  # a datagram connect only sets the default peer: no wait
        except BaseException:
            sock.close()
            raise
    protocol = protocol_factory()
    waiter: asyncio.Future[None] = loop.create_future()
    transport = RingDatagramTransport(loop, io, sock, protocol, remote, waiter)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


async def _datagram_socket(
    loop: asyncio.AbstractEventLoop, local_addr: Any, remote_addr: Any, family: int, proto: int, flags: int
) -> tuple[socket.socket, Any]:
    if family == socket.AF_UNIX or isinstance(local_addr, str) or isinstance(remote_addr, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        return sock, remote_addr
    target = remote_addr if remote_addr is not None else local_addr
    if target is None:
        if not family:
            raise ValueError("unexpected address family")
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        sock.setblocking(False)
        return sock, None
    infos = await loop.getaddrinfo(*target[:2], family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags)
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    af, socktype, sock_proto, _canon, address = infos[0]
    sock = socket.socket(af, socktype, sock_proto)
    sock.setblocking(False)
    return sock, address if remote_addr is not None else None


def _resolved_local(sock: socket.socket, local_addr: Any) -> Any:
    host, port = local_addr[0], local_addr[1]
    if sock.family == socket.AF_INET6 and host in ("", None):
        return ("::", port)
    return (host or "0.0.0.0", port)
