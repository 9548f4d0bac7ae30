"""Sockets for `spargio.net`: raw socket addresses, listeners, and which path a loop takes."""

from __future__ import annotations

import os
import socket
import stat
import struct
from typing import TYPE_CHECKING, Any

from .._backend import NET_OPCODES, current_io

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterable, Sequence

__all__ = ["address_of", "given_unix_socket", "listening_sockets", "ring_of", "sockaddr", "unix_listener"]


def ring_of(loop: asyncio.AbstractEventLoop) -> Any:
    """The running loop's `LoopRing` if sockets can go on io_uring completions there, else None.

    None means the thread backend (io_uring blocked or not chosen) or a kernel
    without the socket opcodes: `spargio.net` then hands out the loop's own
    transports.
    """
    io = current_io()
    if io.backend != "io_uring":
        return None
    ring = io.ring  # type: ignore[union-attr]
    if not all(ring.supports(op) for op in NET_OPCODES):
        return None
    return io


def sockaddr(family: int, address: Any) -> bytes:
    """``struct sockaddr_*`` bytes for IORING_OP_CONNECT (the socket module keeps its own private)."""
    if family == socket.AF_INET:
        host, port = address[0], address[1]
        return struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_pton(family, host) + bytes(8)
    if family == socket.AF_INET6:
        host, port = address[0], address[1]
        flowinfo = address[2] if len(address) > 2 else 0
        scope_id = address[3] if len(address) > 3 else 0
        if "%" in host:  # a scoped literal that getaddrinfo did not resolve
            host, _, scope = host.partition("%")
            scope_id = socket.if_nametoindex(scope)
        return (
            struct.pack("=H", family)
            + struct.pack("!HI", port, flowinfo)
            + socket.inet_pton(family, host)
            + struct.pack("=I", scope_id)
        )
    if family == socket.AF_UNIX:
        path = os.fsencode(address) if not isinstance(address, bytes) else address
        if len(path) >= 108:
            raise OSError(36, "AF_UNIX path too long", address)  # ENAMETOOLONG, as connect() says
        # An abstract name (leading NUL) is passed with its exact length; a path NUL-terminated.
        return struct.pack("=H", family) + path + (b"" if path.startswith(b"\0") else b"\0")
    raise ValueError(f"spargio.net cannot connect sockets of family {family!r}")


def address_of(raw: bytes) -> Any:
    """The Python form (as ``socket.recvfrom`` gives it) of a raw ``struct sockaddr``; None if empty."""
    if len(raw) < 2:
        return None
    (family,) = struct.unpack("=H", raw[:2])
    if family == socket.AF_INET:
        (port,) = struct.unpack("!H", raw[2:4])
        return socket.inet_ntop(family, raw[4:8]), port
    if family == socket.AF_INET6:
        port, flowinfo = struct.unpack("!HI", raw[2:8])
        (scope_id,) = struct.unpack("=I", raw[24:28])
        return socket.inet_ntop(family, raw[8:24]), port, flowinfo, scope_id
    if family == socket.AF_UNIX:
        path = raw[2:]
        if path.startswith(b"\0"):
            return path  # an abstract name, as the socket module returns it
        return os.fsdecode(path.split(b"\0", 1)[0]) or None
    return raw


async def listening_sockets(
    loop: asyncio.AbstractEventLoop,
    host: str | Sequence[str] | None,
    port: int | None,
    *,
    family: int,
    flags: int,
    reuse_address: bool | None,
    reuse_port: bool | None,
    keep_alive: bool | None = None,
) -> list[socket.socket]:
    """Bound, non-blocking TCP sockets for every address ``host`` resolves to, as asyncio makes them.

    ``host`` None or "" binds every interface; a sequence binds each.  The
    sockets are not listening yet (`Server` calls ``listen``).
    """
    hosts: Iterable[str | None] = [None] if host in (None, "") else [host] if isinstance(host, str) else list(host)
    infos: set[tuple[Any, ...]] = set()
    for name in hosts:
        infos.update(await loop.getaddrinfo(name, port, family=family, type=socket.SOCK_STREAM, flags=flags))
    if reuse_address is None:
        reuse_address = True
    sockets: list[socket.socket] = []
    try:
        for af, socktype, proto, _canon, address in sorted(infos, key=lambda info: info[0]):
            try:
                sock = socket.socket(af, socktype, proto)
            except OSError:
                continue  # an address family this host lacks (no IPv6, say): skip it, as asyncio does
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if keep_alive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            try:
                sock.bind(address)
            except OSError as err:
                raise OSError(
                    err.errno, f"error while attempting to bind on address {address!r}: {err.strerror}"
                ) from None
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(f"could not bind any address for host {host!r}")
    return sockets


def given_unix_socket(sock: socket.socket, path: object) -> socket.socket:
    """A caller's own AF_UNIX stream socket, checked as asyncio checks it, made non-blocking."""
    if path is not None:
        raise ValueError("path and sock can not be specified at the same time")
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
    sock.setblocking(False)
    return sock


def unix_listener(path: str | bytes | os.PathLike[str] | None, sock: socket.socket | None) -> socket.socket:
    """A bound, non-blocking AF_UNIX stream socket, removing a stale socket file first (as asyncio does)."""
    if sock is not None:
        return given_unix_socket(sock, path)
    if path is None:
        raise ValueError("path was not specified, and no sock specified")
    name = os.fspath(path)
    if name[:1] not in ("\0", b"\0"):
        try:
            if stat.S_ISSOCK(os.stat(name).st_mode):
                os.remove(name)
        except FileNotFoundError:
            pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(name)
    except OSError as exc:
        listener.close()
        if exc.errno == 98:  # EADDRINUSE
            raise OSError(exc.errno, f"Address {name!r} is already in use") from None
        raise
    listener.setblocking(False)
    return listener
