"""The network shapes of issue 15 on loopback: spargio.net against the loop's own transports and rloop.

* ``net_echo_rtt_256b``: one connection, 256 B written and read back, one round at a time.
* ``net_stream_throughput_4k_window32``: one connection, 4 KiB frames echoed with 32 in flight.
* ``net_hotspot_rotation_4k``: 8 connections; at each step one (rotating) sends 32 frames of 4 KiB and
  the others 2, and the step ends when every echo is back.  The echo server runs on 2 shards
  (``spargio``: ``spargio.net.serve_on_shards``, SO_REUSEPORT), on the client's own loop
  (``loop.protocol``), or on 2 plain loops in threads with SO_REUSEPORT listeners (``loop.threads``, the
  thread-per-core shape without spargio).  The client is ``spargio.net`` for the first, the loop's own
  transports for the others.  A unit is one step.

* ``net_send_1m``: one connection, 1 MiB sends back to back (one in flight, short sends continued),
  drained by a plain thread; a unit is 1 MiB.  ``spargio`` is IORING_OP_SEND on the loop's ring
  (what a RingTransport issues), ``spargio.send_zc`` IORING_OP_SEND_ZC (zero-copy: the buffer is held
  until the kernel's notification CQE), ``loop.sock_sendall`` the loop's own ``sock_sendall``.  It
  decides whether spargio.net's large writes should be zero-copy.

A unit is one round (one frame).  Client and echo server run on the same loop, so each
implementation pays for both ends.  Implementations:

* ``spargio`` — ``spargio.net`` streams (asyncio's StreamReader/Writer on RingTransports);
* ``spargio.protocol`` — ``spargio.net.create_server``/``create_connection`` with plain Protocols;
* ``loop.streams`` / ``loop.protocol`` — the same code on the loop's own transports: asyncio's
  selector transports in the asyncio column, uvloop's in the uvloop column;
* ``rloop.sock`` — rloop 0.5's ``sock_recv``/``sock_sendall`` on an rloop loop (its streams are
  not what it is built for); the same rloop run in both columns.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fs_cases import run_on_fresh_loop

from spargio import net

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

ECHO_SIZE = 256
FRAME = 4096
WINDOW = 32


@dataclass(frozen=True)
class NetCase:
    bench: str
    impl: str
    qd: int

    @property
    def key(self) -> str:
        return f"{self.bench}/{self.impl}"


IMPLS = ("spargio", "spargio.protocol", "loop.streams", "loop.protocol", "rloop.sock")
CASES: dict[str, NetCase] = {}
for _bench, _qd in (("net_echo_rtt_256b", 1), ("net_stream_throughput_4k_window32", WINDOW)):
    for _impl in IMPLS:
        _case = NetCase(_bench, _impl, _qd)
        CASES[_case.key] = _case


# -- streams ------------------------------------------------------------------------


async def _echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def _streams(module: Any, bench: str, n: int) -> float:
    server = await module.start_server(_echo_stream, "127.0.0.1", 0)
    reader, writer = await module.open_connection(*server.sockets[0].getsockname())
    try:
        if bench == "net_echo_rtt_256b":
            message = b"e" * ECHO_SIZE
            t0 = time.perf_counter()
            for _ in range(n):
                writer.write(message)
                await reader.readexactly(ECHO_SIZE)
        else:
            frame = b"f" * FRAME
            t0 = time.perf_counter()
            sent = 0
            for _ in range(min(WINDOW, n)):
                writer.write(frame)
                sent += 1
            for _ in range(n):
                await reader.readexactly(FRAME)
                if sent < n:
                    writer.write(frame)
                    sent += 1
        elapsed = time.perf_counter() - t0
    finally:
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    return elapsed


# -- protocols ----------------------------------------------------------------------


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _Client(asyncio.Protocol):
    """Counts echoed bytes; ``on_bytes(total)`` runs on every arrival."""

    def __init__(self) -> None:
        self.received = 0
        self.waiter: asyncio.Future[None] | None = None
        self.want = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.waiter is not None and self.received >= self.want and not self.waiter.done():
            self.waiter.set_result(None)

    async def until(self, total: int) -> None:
        if self.received >= total:
            return
        self.want = total
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter


async def _protocols(
    create_server: Callable[..., Any], create_connection: Callable[..., Any], bench: str, n: int
) -> float:
    server = await create_server(_EchoProtocol, "127.0.0.1", 0)
    transport, client = await create_connection(_Client, *server.sockets[0].getsockname())
    try:
        if bench == "net_echo_rtt_256b":
            message = b"e" * ECHO_SIZE
            t0 = time.perf_counter()
            for i in range(1, n + 1):
                transport.write(message)
                await client.until(i * ECHO_SIZE)
        else:
            frame = b"f" * FRAME
            t0 = time.perf_counter()
            sent = min(WINDOW, n)
            for _ in range(sent):
                transport.write(frame)
            done = 0
            while done < n:
                await client.until((done + 1) * FRAME)
                now = client.received // FRAME
                for _ in range(min(now - done, n - sent)):
                    transport.write(frame)
                    sent += 1
                done = now
        elapsed = time.perf_counter() - t0
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
    return elapsed


# -- rloop's sock_* API ---------------------------------------------------------------


async def _rloop_socks(bench: str, n: int) -> float:
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    client = socket.socket()
    client.setblocking(False)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def serve() -> None:
        conn, _ = await loop.sock_accept(listener)
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while data := await loop.sock_recv(conn, 65536):
                await loop.sock_sendall(conn, data)
        finally:
            conn.close()

    server = asyncio.ensure_future(serve())
    await loop.sock_connect(client, listener.getsockname())
    try:
        size = ECHO_SIZE if bench == "net_echo_rtt_256b" else FRAME
        window = 1 if bench == "net_echo_rtt_256b" else WINDOW
        message = b"m" * size
        t0 = time.perf_counter()
        in_flight = 0
        received = 0
        sent = 0
        while received < n * size:
            while in_flight < window and sent < n:
                await loop.sock_sendall(client, message)
                in_flight += 1
                sent += 1
            data = await loop.sock_recv(client, 65536)
            received += len(data)
            in_flight = sent - received // size
        elapsed = time.perf_counter() - t0
    finally:
        client.close()
        await server
        listener.close()
    return elapsed


def _run_rloop(main: Coroutine[Any, Any, float]) -> float:
    import rloop

    loop = rloop.new_event_loop()
    try:
        return loop.run_until_complete(main)  # type: ignore[no-any-return]
    finally:
        loop.close()


def run_case(key: str, loop_name: str, n: int) -> float:
    """Seconds taken by ``n`` units of case ``key`` on a fresh ``loop_name`` loop."""
    case = CASES[key]
    if case.bench == SEND_BENCH:
        return run_on_fresh_loop(loop_name, _large_sends(case.impl, n))
    if case.bench == HOTSPOT:
        return run_on_fresh_loop(loop_name, _hotspot(case.impl, loop_name, n))
    if case.impl == "rloop.sock":
        return _run_rloop(_rloop_socks(case.bench, n))
    if case.impl == "spargio":
        main = _streams(net, case.bench, n)
    elif case.impl == "loop.streams":
        main = _streams(asyncio, case.bench, n)
    elif case.impl == "spargio.protocol":
        main = _protocols(net.create_server, net.create_connection, case.bench, n)
    else:

        async def own_protocols() -> float:
            loop = asyncio.get_running_loop()
            return await _protocols(loop.create_server, loop.create_connection, case.bench, n)

        main = own_protocols()
    return run_on_fresh_loop(loop_name, main)


# -- the hot-spot rotation (serving from shards) ----------------------------------------

STREAMS = 8
HOT_FRAMES, COLD_FRAMES = 32, 2
SERVER_SHARDS = 2
HOTSPOT = "net_hotspot_rotation_4k"
HOTSPOT_IMPLS = ("spargio", "loop.protocol", "loop.threads")  # spargio: the server on 2 shards
for _impl in HOTSPOT_IMPLS:
    _case = NetCase(HOTSPOT, _impl, STREAMS)
    CASES[_case.key] = _case


async def _hotspot_rounds(create_connection: Callable[..., Any], address: tuple[str, int], n: int) -> float:
    """``n`` steps: stream ``step % 8`` sends 32 frames, the others 2 each; a step ends when all came back."""
    pairs = [await create_connection(_Client, *address) for _ in range(STREAMS)]
    frame = b"h" * FRAME
    expected = [0] * STREAMS
    try:
        t0 = time.perf_counter()
        for step in range(n):
            hot = step % STREAMS
            for i, (transport, _client) in enumerate(pairs):
                frames = HOT_FRAMES if i == hot else COLD_FRAMES
                transport.write(frame * frames)
                expected[i] += frames * FRAME
            for i, (_transport, client) in enumerate(pairs):
                await client.until(expected[i])
        elapsed = time.perf_counter() - t0
    finally:
        for transport, _client in pairs:
            transport.close()
    return elapsed


class _EchoThreads:
    """``SERVER_SHARDS`` plain event loops in threads, each with its own SO_REUSEPORT echo listener."""

    def __init__(self, loop_name: str) -> None:
        self.loop_name = loop_name
        self.port = 0
        self.threads: list[Any] = []
        self.stops: list[Callable[[], None]] = []

    def start(self) -> int:
        import threading

        for _ in range(SERVER_SHARDS):
            ready = threading.Event()
            thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
            thread.start()
            ready.wait()
            self.threads.append(thread)
        return self.port

    def _serve(self, ready: Any) -> None:
        from fs_cases import new_loop

        loop = new_loop(self.loop_name)

        async def main() -> None:
            server = await loop.create_server(_EchoProtocol, "127.0.0.1", self.port, reuse_port=True)
            self.port = server.sockets[0].getsockname()[1]
            stop = asyncio.Event()
            self.stops.append(lambda: loop.call_soon_threadsafe(stop.set))
            ready.set()
            await stop.wait()
            server.close()

        loop.run_until_complete(main())
        loop.close()

    def stop(self) -> None:
        for stop in self.stops:
            stop()
        for thread in self.threads:
            thread.join()


async def _hotspot(impl: str, loop_name: str, n: int) -> float:
    loop = asyncio.get_running_loop()
    if impl == "spargio":
        import spargio

        async with spargio.Runtime(shards=SERVER_SHARDS) as rt:
            servers = await net.serve_on_shards(rt, protocol_factory=_EchoProtocol)
            try:
                return await _hotspot_rounds(net.create_connection, ("127.0.0.1", servers.port), n)
            finally:
                await servers.aclose()
    if impl == "loop.threads":
        threads = _EchoThreads(loop_name)
        port = await loop.run_in_executor(None, threads.start)
        try:
            return await _hotspot_rounds(loop.create_connection, ("127.0.0.1", port), n)
        finally:
            await loop.run_in_executor(None, threads.stop)
    server = await loop.create_server(_EchoProtocol, "127.0.0.1", 0)
    try:
        return await _hotspot_rounds(loop.create_connection, server.sockets[0].getsockname(), n)
    finally:
        server.close()


# -- large sends: SEND against SEND_ZC ------------------------------------------------------

SEND_BENCH = "net_send_1m"
SEND_SIZE = 1 << 20
for _impl in ("spargio", "spargio.send_zc", "loop.sock_sendall"):
    _case = NetCase(SEND_BENCH, _impl, 1)
    CASES[_case.key] = _case
_CQE_F_MORE, _CQE_F_NOTIF = 1 << 1, 1 << 3


def _drain(sock: socket.socket) -> None:
    into = bytearray(1 << 20)
    while sock.recv_into(into):
        pass


async def _ring_send(fd: int, buf: Any, length: int, zero_copy: bool) -> int:
    """One send on the loop's ring; for SEND_ZC, done once the notification says ``buf`` is free."""
    from spargio._backend import current_io
    from spargio.native import ring as native

    io: Any = current_io()
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    result = [0]

    def on_cqe(res: int, flags: int) -> None:
        if not flags & _CQE_F_NOTIF:
            result[0] = res
        if not flags & _CQE_F_MORE and not done.done():
            done.set_result(result[0])

    prep = io.ring.prep_send_zc if zero_copy else io.ring.prep_send
    prep(fd, buf, length, native.Completion(on_cqe), buf)
    io._request_flush()
    return await done


async def _large_sends(impl: str, n: int) -> float:
    import threading

    from spargio.native import ring as native

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    drainer = threading.Thread(target=_drain, args=(server,), daemon=True)
    drainer.start()
    loop = asyncio.get_running_loop()
    payload = bytes(SEND_SIZE)
    buf = native.buffer(SEND_SIZE)
    try:
        start = time.perf_counter()
        for _ in range(n):
            if impl == "loop.sock_sendall":
                client.setblocking(False)
                await loop.sock_sendall(client, payload)
                continue
            sent = 0
            while sent < SEND_SIZE:
                res = await _ring_send(client.fileno(), buf + sent, SEND_SIZE - sent, impl == "spargio.send_zc")
                if res <= 0:
                    raise OSError(-res, "send failed")
                sent += res
        return time.perf_counter() - start
    finally:
        client.close()
        drainer.join()
        server.close()
        listener.close()
