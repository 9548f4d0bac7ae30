"""``create_server`` / ``create_connection`` and their AF_UNIX twins, as asyncio's loop methods.

Each takes the running loop's path: on io_uring (the loop's own ring, or a
shard's) connections are `RingTransport` s; on the thread backend, or a kernel
without the socket opcodes, the call goes to the loop's own method with the
same arguments, so code written against `spargio.net` runs anywhere.
``spargio.net.uses_ring()`` says which path the running loop takes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl as _ssl
from asyncio import sslproto
from typing import TYPE_CHECKING, Any, TypeVar

from ._server import Server
from ._sockets import given_unix_socket, listening_sockets, ring_of, sockaddr, unix_listener
from ._transport import RingTransport, release_socket

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._loop_ring import LoopRing

__all__ = [
    "create_connection",
    "create_server",
    "create_unix_connection",
    "create_unix_server",
    "start_tls",
    "uses_ring",
]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)
SSLArg = _ssl.SSLContext | bool | None


def uses_ring() -> bool:
    """Whether `spargio.net` puts the running loop's sockets on io_uring completions."""
    return ring_of(asyncio.get_running_loop()) is not None


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | Sequence[str] | None = None,
    port: int | None = None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: socket.socket | None = None,
    backlog: int = 100,
    ssl: SSLArg = None,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    keep_alive: bool | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
) -> asyncio.AbstractServer:
    """A TCP server, as ``loop.create_server``; its connections are io_uring transports.

    Accepts are armed once per listening socket (multishot) and stay armed
    while it serves.
    """
    loop = asyncio.get_running_loop()
    io = ring_of(loop)
    if io is None:
        return await _own(loop).create_server(  # type: ignore[no-any-return]
            protocol_factory, host, port, family=family, flags=flags, sock=sock, backlog=backlog, ssl=ssl,
            reuse_address=reuse_address, reuse_port=reuse_port, start_serving=start_serving,
            **_given(ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
                     keep_alive=keep_alive),
        )  # fmt: skip
    _check_ssl_args(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
    if sock is not None:
        sockets = [_given_stream_socket(sock, host, port)]
    else:
        sockets = await listening_sockets(
            loop, host, port, family=family, flags=flags, reuse_address=reuse_address,
            reuse_port=reuse_port, keep_alive=keep_alive,
        )  # fmt: skip
    wrap = _server_tls(loop, ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    return await _serving(Server(loop, io, sockets, protocol_factory, backlog, wrap=wrap), start_serving)


async def create_unix_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    path: str | bytes | os.PathLike[str] | None = None,
    *,
    sock: socket.socket | None = None,
    backlog: int = 100,
    ssl: SSLArg = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    cleanup_socket: bool = True,
) -> asyncio.AbstractServer:
    """An AF_UNIX stream server, as ``loop.create_unix_server`` (the socket file goes on close)."""
    loop = asyncio.get_running_loop()
    io = ring_of(loop)
    if io is None:
        return await _own(loop).create_unix_server(  # type: ignore[no-any-return]
            protocol_factory, path, sock=sock, backlog=backlog, ssl=ssl, start_serving=start_serving,
            **_given(ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
                     cleanup_socket=None if cleanup_socket else False),
        )  # fmt: skip
    _check_ssl_args(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
    listener = unix_listener(path, sock)
    name = listener.getsockname()
    unlink = name if cleanup_socket and sock is None and name and name[:1] not in ("\0", b"\0") else None
    wrap = _server_tls(loop, ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    server = Server(loop, io, [listener], protocol_factory, backlog, unlink_on_close=unlink, wrap=wrap)
    return await _serving(server, start_serving)


async def _serving(server: Server, start: bool) -> Server:
    if start:
        await server.start_serving()
    return server


async def create_connection(
    protocol_factory: Callable[[], _P],
    host: str | None = None,
    port: int | None = None,
    *,
    ssl: SSLArg = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    sock: socket.socket | None = None,
    local_addr: tuple[str, int] | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    happy_eyeballs_delay: float | None = None,
    interleave: int | None = None,
    all_errors: bool = False,
) -> tuple[asyncio.Transport, _P]:
    """A TCP connection, as ``loop.create_connection``, connected with IORING_OP_CONNECT.

    The addresses ``host`` resolves to are tried in turn.  Cancelled while
    connecting: the connect op is cancelled and the socket closed.
    ``happy_eyeballs_delay``/``interleave`` are accepted for the signature;
    the ring path tries addresses one after another.
    """
    loop = asyncio.get_running_loop()
    io = ring_of(loop)
    if io is None:
        return await _own(loop).create_connection(  # type: ignore[no-any-return]
            protocol_factory, host, port, ssl=ssl, family=family, proto=proto, flags=flags, sock=sock,
            local_addr=local_addr, server_hostname=server_hostname,
            **_given(ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
                     happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave, all_errors=all_errors or None),
        )  # fmt: skip
    if ssl and server_hostname is None:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    _check_ssl_args(ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
    if sock is not None:
        _given_stream_socket(sock, host, port)
    else:
        if host is None and port is None:
            raise ValueError("host and port was not specified and no sock specified")
        sock = await _connect_any(loop, io, host, port, family, proto, flags, local_addr, all_errors)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return await _connected(loop, io, sock, protocol_factory, ssl, server_hostname,
                            ssl_handshake_timeout, ssl_shutdown_timeout)  # fmt: skip


async def create_unix_connection(
    protocol_factory: Callable[[], _P],
    path: str | bytes | os.PathLike[str] | None = None,
    *,
    ssl: SSLArg = None,
    sock: socket.socket | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[asyncio.Transport, _P]:
    """An AF_UNIX stream connection, as ``loop.create_unix_connection``."""
    loop = asyncio.get_running_loop()
    io = ring_of(loop)
    if io is None:
        return await _own(loop).create_unix_connection(  # type: ignore[no-any-return]
            protocol_factory, path, ssl=ssl, sock=sock, server_hostname=server_hostname,
            **_given(ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout),
        )  # fmt: skip
    if ssl and server_hostname is None:
        raise ValueError("you have to pass server_hostname when using ssl")
    _check_ssl_args(ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
    if sock is not None:
        given_unix_socket(sock, path)
    else:
        if path is None:
            raise ValueError("no path and sock were specified")
        address = os.fspath(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await connect(io, sock, address)
        except BaseException:
            release_socket(io, sock)
            raise
    return await _connected(loop, io, sock, protocol_factory, ssl, server_hostname,
                            ssl_handshake_timeout, ssl_shutdown_timeout)  # fmt: skip


_SSLProtocol: Any = sslproto.SSLProtocol  # (typeshed's timeouts say int; asyncio takes floats)


def _own(loop: asyncio.AbstractEventLoop) -> Any:
    """The loop, to call its own method with asyncio's arguments (uvloop's signatures differ)."""
    return loop


def _given_stream_socket(sock: socket.socket, host: object, port: object) -> socket.socket:
    """A caller's own connected or listening socket, checked as asyncio checks it, made non-blocking."""
    if host is not None or port is not None:
        raise ValueError("host/port and sock can not be specified at the same time")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")
    sock.setblocking(False)
    return sock


def _given(**options: Any) -> dict[str, Any]:
    """The options the caller set: the loop's own method gets only those (uvloop's lacks
    some of asyncio's newer parameters, and older Pythons lack ``keep_alive``)."""
    return {name: value for name, value in options.items() if value is not None}


# -- connecting ------------------------------------------------------------


async def connect(io: LoopRing, sock: socket.socket, address: Any) -> None:
    """Connect ``sock`` with one IORING_OP_CONNECT; cancelling the caller cancels the op."""
    fut = io._future()
    ud = io.ring.prep_connect(sock.fileno(), sockaddr(sock.family, address), fut)
    res = await io._result(fut, ud)
    if res < 0:
        err = -res
        raise OSError(err, f"Connect call failed {address}: {os.strerror(err)}")


async def _connect_any(
    loop: asyncio.AbstractEventLoop,
    io: LoopRing,
    host: str | None,
    port: int | None,
    family: int,
    proto: int,
    flags: int,
    local_addr: tuple[str, int] | None,
    all_errors: bool,
) -> socket.socket:
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags)
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    errors: list[OSError] = []
    for af, socktype, sock_proto, _canon, address in infos:
        sock = socket.socket(af, socktype, sock_proto)
        try:
            sock.setblocking(False)
            if local_addr is not None:
                sock.bind(local_addr)
            await connect(io, sock, address)
            return sock
        except OSError as exc:
            release_socket(io, sock)
            errors.append(exc)
        except BaseException:
            release_socket(io, sock)  # behind a cancelled connect that may not be submitted yet
            raise
    if all_errors:
        raise ExceptionGroup("create_connection failed", errors)
    if len(errors) == 1 or len({str(e) for e in errors}) == 1:
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")


async def _connected(
    loop: asyncio.AbstractEventLoop,
    io: LoopRing,
    sock: socket.socket,
    protocol_factory: Callable[[], _P],
    ssl: SSLArg,
    server_hostname: str | None,
    handshake_timeout: float | None,
    shutdown_timeout: float | None,
) -> tuple[asyncio.Transport, _P]:
    """Wrap a connected socket in a transport (behind TLS if asked) and wait for connection_made."""
    protocol = protocol_factory()
    waiter: asyncio.Future[None] = loop.create_future()
    try:
        if ssl:
            context = ssl if isinstance(ssl, _ssl.SSLContext) else _ssl.create_default_context()
            wrapped = _SSLProtocol(
                loop, protocol, context, waiter, server_side=False, server_hostname=server_hostname,
                ssl_handshake_timeout=handshake_timeout, ssl_shutdown_timeout=shutdown_timeout,
            )  # fmt: skip
            transport: asyncio.Transport = RingTransport(loop, io, sock, wrapped)
            await waiter
            return wrapped._app_transport, protocol
        transport = RingTransport(loop, io, sock, protocol, waiter=waiter)
    except BaseException:
        sock.close()
        raise
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


# -- TLS ---------------------------------------------------------------------


async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    sslcontext: _ssl.SSLContext,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> asyncio.Transport:
    """``loop.start_tls`` that also upgrades a `RingTransport` on uvloop (whose own refuses it).

    The transport's protocol becomes asyncio's ``SSLProtocol``, which speaks
    TLS to the peer and plain bytes to ``protocol`` through the transport this
    returns.  Cancelled or failed during the handshake: the transport is closed.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(transport, RingTransport):
        return await _own(loop).start_tls(  # type: ignore[no-any-return]
            transport, protocol, sslcontext, server_side=server_side, server_hostname=server_hostname,
            **_given(ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout),
        )  # fmt: skip
    waiter: asyncio.Future[None] = loop.create_future()
    ssl_protocol = _SSLProtocol(
        loop, protocol, sslcontext, waiter, server_side, server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
        call_connection_made=False,
    )  # fmt: skip
    transport.pause_reading()  # bytes that arrive meanwhile are held, then go to the SSLProtocol
    transport.set_protocol(ssl_protocol)
    made = loop.call_soon(ssl_protocol.connection_made, transport)
    resumed = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        raise
    return ssl_protocol._app_transport  # type: ignore[no-any-return]


def _check_ssl_args(
    ssl: SSLArg, server_hostname: str | None, handshake_timeout: float | None, shutdown_timeout: float | None
) -> None:
    if not ssl:
        if server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
        if handshake_timeout is not None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if shutdown_timeout is not None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


def _server_tls(
    loop: asyncio.AbstractEventLoop, ssl: SSLArg, handshake_timeout: float | None, shutdown_timeout: float | None
) -> Callable[[asyncio.BaseProtocol], asyncio.BaseProtocol] | None:
    """What wraps each accepted connection's protocol in asyncio's SSLProtocol, or None."""
    if not ssl:
        return None
    if not isinstance(ssl, _ssl.SSLContext):
        raise TypeError(f"ssl argument must be an SSLContext or None, got {ssl!r}")
    context = ssl

    def wrap(protocol: asyncio.BaseProtocol) -> asyncio.BaseProtocol:
        handshake: asyncio.Future[None] = loop.create_future()
        handshake.add_done_callback(_retrieve)  # a failed handshake is the connection's business
        return _SSLProtocol(  # type: ignore[no-any-return]
            loop, protocol, context, handshake, server_side=True,
            ssl_handshake_timeout=handshake_timeout, ssl_shutdown_timeout=shutdown_timeout,
        )  # fmt: skip

    return wrap


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
