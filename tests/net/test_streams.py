"""spargio.net's streams and protocols behave as asyncio's, on loopback, wherever they run."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from typing import TYPE_CHECKING, Any

import pytest

from spargio import net
from spargio._backend import current_io
from spargio.net import RingTransport
from spargio.testing import settle

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Runner = Callable[..., Awaitable[Any]]  # the `on` fixture: runs a test body on the loop or a shard

SIZES = [1, 255, 4096, 65_537, 1 << 20, 16 << 20]


def payload(size: int) -> bytes:
    block = os.urandom(4096)
    return (block * (size // 4096 + 1))[:size]


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(100_000):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():  # (not over TLS)
            writer.write_eof()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def echo_server() -> tuple[asyncio.AbstractServer, int]:
    server = await net.start_server(echo_handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def transport_kind(writer: asyncio.StreamWriter) -> bool:
    return isinstance(writer.transport, RingTransport)


async def test_echo_of_every_size_across_split_reads(on: Runner, ring_expected: bool) -> None:
    async def body() -> list[int]:
        assert net.uses_ring() is ring_expected
        server, port = await echo_server()
        async with server:
            reader, writer = await net.open_connection("127.0.0.1", port)
            assert transport_kind(writer) is ring_expected
            lengths = []
            for size in SIZES:
                data = payload(size)
                writer.write(data)
                got = bytearray()
                while len(got) < size:
                    chunk = await reader.read(size - len(got))
                    assert chunk
                    got += chunk
                assert bytes(got) == data
                lengths.append(len(got))
            writer.write_eof()
            assert await reader.read() == b""  # the server echoes EOF back
            writer.close()
            await writer.wait_closed()
        return lengths

    assert await on(body) == SIZES


async def test_half_close_while_the_peer_still_reads_and_answers(on: Runner) -> None:
    """write_eof with the peer still reading: the peer sees EOF, then answers on its open side."""

    async def body() -> bytes:
        async def count_then_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            total = len(await reader.read())  # to EOF
            writer.write(b"got %d" % total)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await net.start_server(count_then_answer, "127.0.0.1", 0)
        async with server:
            reader, writer = await net.open_connection(*server.sockets[0].getsockname())
            writer.write(b"x" * 300_000)
            writer.write_eof()
            assert writer.can_write_eof()
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            await writer.wait_closed()
        return answer

    assert await on(body) == b"got 300000"


async def test_peer_reset_reaches_the_reader(on: Runner) -> None:
    async def body() -> str:
        async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(1)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # close with linger 0: an RST

        server = await net.start_server(reset, "127.0.0.1", 0)
        async with server:
            reader, writer = await net.open_connection(*server.sockets[0].getsockname())
            writer.write(b"!")
            try:
                data = await asyncio.wait_for(reader.read(), 10)
                outcome = f"eof {data!r}"
            except ConnectionResetError:
                outcome = "reset"
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionResetError:
                pass
        return outcome

    assert await on(body) == "reset"


class Recorder(asyncio.Protocol):
    """Records what a transport tells its protocol."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.data = bytearray()
        self.events: list[str] = []
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.eof = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.events.append("eof")
        self.eof.set_result(None)
        return False

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)


async def raw_server(handler: Any) -> tuple[asyncio.AbstractServer, tuple[str, int]]:
    server = await net.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()


async def test_protocol_callbacks_extra_info_and_close_sends_what_is_queued(on: Runner) -> None:
    async def body() -> tuple[list[str], int, bool]:
        received = asyncio.get_running_loop().create_future()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.set_result(len(await reader.read()))
            writer.close()

        server, address = await raw_server(sink)
        async with server:
            transport, protocol = await net.create_connection(Recorder, *address)
            assert transport.get_extra_info("peername") == address
            assert transport.get_extra_info("sockname")[0] == "127.0.0.1"
            sock = transport.get_extra_info("socket")
            assert sock.family == socket.AF_INET and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            transport.write(b"a" * 1_000_000)  # more than the peer's socket takes at once
            transport.close()  # the queued megabyte still goes out, then the socket closes
            assert transport.is_closing()
            assert await asyncio.wait_for(protocol.lost, 10) is None
            total = await asyncio.wait_for(received, 10)
        return protocol.events, total, transport.is_closing()

    events, total, closing = await on(body)
    assert total == 1_000_000
    assert events[0] == "made" and events[-1] == "lost"
    assert closing


async def test_abort_with_writes_pending_drops_them_and_reports_lost(on: Runner) -> None:
    async def body() -> tuple[list[str], int]:
        got = asyncio.get_running_loop().create_future()

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            total = 0
            try:
                while chunk := await reader.read(65536):
                    total += len(chunk)
            except ConnectionResetError:
                pass
            got.set_result(total)
            writer.close()

        server, address = await raw_server(slow)
        async with server:
            transport, protocol = await net.create_connection(Recorder, *address)
            transport.write(b"z" * (32 << 20))
            assert transport.get_write_buffer_size() > 0
            transport.abort()
            assert transport.get_write_buffer_size() == 0 or not net.uses_ring()
            assert await asyncio.wait_for(protocol.lost, 10) is None
            total = await asyncio.wait_for(got, 10)
        return protocol.events, total

    events, total = await on(body)
    assert events[-1] == "lost"
    assert total < 32 << 20


async def test_flow_control_under_a_slow_reader(on: Runner) -> None:
    async def body() -> tuple[list[str], int]:
        release = asyncio.Event()
        done = asyncio.get_running_loop().create_future()

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()
            done.set_result(len(await reader.read()))
            writer.close()

        server, address = await raw_server(slow)
        async with server:
            transport, protocol = await net.create_connection(Recorder, *address)
            transport.set_write_buffer_limits(high=64 * 1024)
            assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            for _ in range(256):
                transport.write(b"w" * 65536)  # 16 MiB: far more than both socket buffers hold
            for _ in range(100):
                await asyncio.sleep(0.01)
            assert "pause" in protocol.events
            assert transport.get_write_buffer_size() > 64 * 1024
            release.set()
            for _ in range(1000):
                if transport.get_write_buffer_size() == 0 and "resume" in protocol.events:
                    break
                await asyncio.sleep(0.01)
            transport.close()
            total = await asyncio.wait_for(done, 10)
            await protocol.lost
        return protocol.events, total

    events, total = await on(body)
    assert total == 256 * 65536
    assert events.index("pause") < events.index("resume") < events.index("lost")


async def test_pause_reading_holds_data_and_resume_delivers_it_in_order(on: Runner) -> None:
    async def body() -> bytes:
        async def talker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for i in range(50):
                writer.write(b"%03d" % i)
                await writer.drain()
                await asyncio.sleep(0.001)
            writer.close()

        server, address = await raw_server(talker)
        async with server:
            transport, protocol = await net.create_connection(Recorder, *address)
            await asyncio.sleep(0.01)
            transport.pause_reading()
            assert not transport.is_reading()
            seen = len(protocol.data)
            await asyncio.sleep(0.1)  # the talker finishes meanwhile
            assert len(protocol.data) <= seen + 3 * 4  # nothing much after the pause took effect
            transport.resume_reading()
            assert transport.is_reading()
            await asyncio.wait_for(protocol.lost, 10)
        return bytes(protocol.data)

    assert await on(body) == b"".join(b"%03d" % i for i in range(50))


class Buffered(asyncio.BufferedProtocol):
    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)
        self.got = bytearray()
        self.sizes: list[int] = []
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.sizes.append(nbytes)
        self.got += self.buf[:nbytes]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


@pytest.mark.parametrize("buffer_size", [7, 65536])
async def test_buffered_protocol_gets_every_byte_in_its_own_buffer(on: Runner, buffer_size: int) -> None:
    async def body() -> tuple[bool, int]:
        data = payload(3 << 20)

        async def sender(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(data)
            await writer.drain()
            writer.close()

        server, address = await raw_server(sender)
        async with server:
            _transport, protocol = await net.create_connection(lambda: Buffered(buffer_size), *address)
            await asyncio.wait_for(protocol.lost, 30)
        return bytes(protocol.got) == data, max(protocol.sizes)

    equal, biggest = await on(body)
    assert equal
    assert biggest <= buffer_size


async def test_unix_sockets(on: Runner, tmp_path: Any, ring_expected: bool) -> None:
    path = str(tmp_path / "echo.sock")

    async def body() -> bytes:
        server = await net.start_unix_server(echo_handler, path)
        async with server:
            reader, writer = await net.open_unix_connection(path)
            writer.write(b"over unix " * 10000)
            got = await reader.readexactly(100000)
            writer.close()
            await writer.wait_closed()
        return got[:10]

    assert await on(body) == b"over unix "
    if ring_expected:  # as asyncio 3.13's cleanup_socket (3.11's asyncio leaves the file)
        assert not os.path.exists(path)


async def test_cancel_during_connect_recv_and_send(on: Runner) -> None:
    async def body() -> list[str]:
        server, port = await echo_server()
        outcomes = []
        async with server:
            for delay in range(4):  # cancel before the connect's flush, and after 1..3 iterations
                task = asyncio.ensure_future(net.open_connection("127.0.0.1", port))
                for _ in range(delay):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    _reader, writer = await task
                except asyncio.CancelledError:
                    outcomes.append("cancelled")
                else:
                    outcomes.append("connected")
                    writer.close()
                    await writer.wait_closed()
            reader, writer = await net.open_connection("127.0.0.1", port)
            read = asyncio.ensure_future(reader.read(10))
            await asyncio.sleep(0.01)
            read.cancel()  # a cancelled read loses nothing: the next one gets the echo
            with pytest.raises(asyncio.CancelledError):
                await read
            writer.write(b"x" * (8 << 20))
            drain = asyncio.ensure_future(writer.drain())
            await asyncio.sleep(0)
            drain.cancel()  # a cancelled drain does not take back what was written
            try:
                await drain
            except asyncio.CancelledError:
                pass
            assert await reader.readexactly(8 << 20) == b"x" * (8 << 20)
            writer.close()
            await writer.wait_closed()
        await settle()
        return outcomes

    outcomes = await on(body)
    assert outcomes[0] == "cancelled"
    assert set(outcomes) <= {"cancelled", "connected"}


async def test_connect_refused_is_an_oserror(on: Runner) -> None:
    async def body() -> int | None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, not listening: connect is refused
            try:
                await net.open_connection("127.0.0.1", port)
            except OSError as exc:
                return exc.errno
        return None

    assert await on(body) == errno.ECONNREFUSED


@pytest.mark.slow
async def test_a_thousand_connections_churned_leave_nothing_behind(on: Runner) -> None:
    async def body() -> tuple[int, int]:
        server, port = await echo_server()  # (which makes the loop's ring, if it has none yet)
        before = len(os.listdir("/proc/self/fd"))
        async with server:

            async def one(i: int) -> bytes:
                reader, writer = await net.open_connection("127.0.0.1", port)
                writer.write(b"%d" % i)
                writer.write_eof()
                data = await reader.read()
                writer.close()
                await writer.wait_closed()
                return data

            for start in range(0, 1000, 100):
                results = await asyncio.gather(*(one(i) for i in range(start, start + 100)))
                assert results == [b"%d" % i for i in range(start, start + 100)]
        await server.wait_closed()
        await settle()
        return before, len(os.listdir("/proc/self/fd"))

    before, after = await on(body)
    assert after <= before


async def test_more_data_in_flight_than_receive_buffers_falls_back_and_never_errors(
    on: Runner, ring_expected: bool
) -> None:
    """20 peers send 1 MiB each while the loop is blocked: the 4 MiB of provided buffers run out."""

    async def body() -> tuple[list[int], int]:
        blocks = 20
        data = payload(1 << 20)
        lengths: list[int] = []

        async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            lengths.append(len(await reader.read()))
            writer.close()

        server, address = await raw_server(receive)
        async with server:
            pairs = [await net.open_connection(*address) for _ in range(blocks)]
            await asyncio.sleep(0.05)
            for _reader, writer in pairs:
                writer.write(data)
                writer.write_eof()
            await asyncio.sleep(0)  # the sends go out with this flush
            import time

            time.sleep(0.3)  # the loop is blocked while the kernel fills buffers
            for _ in range(1000):
                if len(lengths) == blocks:
                    break
                await asyncio.sleep(0.01)
            for _reader, writer in pairs:
                writer.close()
                await writer.wait_closed()
        io = current_io()
        return lengths, io.net.buffer_shortages if ring_expected else 0  # type: ignore[union-attr]

    lengths, shortages = await on(body)
    assert lengths == [1 << 20] * 20
    if ring_expected:
        assert shortages > 0  # the buffers did run out, and every byte still arrived


async def test_server_close_wait_closed_and_serve_forever(on: Runner, ring_expected: bool) -> None:
    """wait_closed waits for the last client (asyncio 3.12's semantics; 3.11's and uvloop's
    return at once, so on the thread backend the first step is theirs)."""

    async def body() -> list[str]:
        steps = []
        server = await net.start_server(echo_handler, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        forever = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.01)
        assert server.is_serving()
        reader, writer = await net.open_connection(*server.sockets[0].getsockname())
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        forever.cancel()
        closed = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.05)
        steps.append("waiting for a client" if not closed.done() else "closed early")
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(closed, 10)
        steps.append("closed")
        assert not server.is_serving() and not server.sockets
        try:
            await forever
        except asyncio.CancelledError:
            steps.append("serve_forever cancelled")
        return steps

    steps = await on(body)
    assert steps[1:] == ["closed", "serve_forever cancelled"]
    if ring_expected:
        assert steps[0] == "waiting for a client"


async def test_tls_over_a_spargio_transport(on: Runner) -> None:
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def body() -> tuple[bytes, bytes]:
        server = await net.start_server(echo_handler, "127.0.0.1", 0, ssl=server_ctx)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await net.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
            writer.write(b"secret " * 50_000)
            first = await reader.readexactly(350_000)
            writer.close()
            await writer.wait_closed()
            # start_tls: upgrade a plain connection to a TLS one
            plain = await net.start_server(echo_handler, "127.0.0.1", 0)
            async with plain:
                upgrade_done = asyncio.get_running_loop().create_future()

                async def upgrader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                    assert await reader.readexactly(8) == b"STARTTLS"
                    writer.write(b"OK")  # the client starts TLS only after this
                    await writer.start_tls(server_ctx)
                    writer.write(await reader.readexactly(5))
                    await writer.drain()
                    upgrade_done.set_result(None)
                    writer.close()

                upgrade = await net.start_server(upgrader, "127.0.0.1", 0)
                async with upgrade:
                    reader, writer = await net.open_connection(*upgrade.sockets[0].getsockname())
                    writer.write(b"STARTTLS")
                    assert await reader.readexactly(2) == b"OK"
                    await writer.start_tls(client_ctx, server_hostname="localhost")
                    writer.write(b"hello")
                    second = await reader.readexactly(5)
                    await upgrade_done
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except (ssl.SSLError, ConnectionError):
                        pass
        return first[:7], second

    assert await on(body) == (b"secret ", b"hello")


async def test_no_data_reaches_the_protocol_after_close(on: Runner) -> None:
    async def body() -> tuple[int, int]:
        async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                for _ in range(64):
                    writer.write(b"f" * 65536)
                    await writer.drain()
            except ConnectionError:
                pass
            writer.close()

        class CloseAtOnce(Recorder):
            calls = 0
            after_close = 0

            def data_received(self, data: bytes) -> None:
                if self.transport.is_closing():
                    self.after_close += 1
                self.calls += 1
                self.transport.close()

        server, address = await raw_server(firehose)
        async with server:
            _transport, protocol = await net.create_connection(CloseAtOnce, *address)
            await asyncio.wait_for(protocol.lost, 10)
            await asyncio.sleep(0.05)
        return protocol.calls, protocol.after_close

    calls, after_close = await on(body)
    assert calls >= 1
    assert after_close == 0


async def test_ops_queued_on_a_closed_connection_never_reach_the_socket_that_reuses_its_fd(on: Runner) -> None:
    """A closed connection's fd number is reused at once by the next socket; its last ops (the
    server's SHUTDOWN after EOF, a cancelled recv) must still act on the old socket, never on the new."""

    async def body() -> int:
        server, port = await echo_server()
        ok = 0
        async with server:
            for i in range(60):
                reader, writer = await net.open_connection("127.0.0.1", port)
                message = b"round %d" % i
                writer.write(message)
                assert await asyncio.wait_for(reader.readexactly(len(message)), 10) == message
                writer.close()  # the server sees EOF: write_eof (a SHUTDOWN op), close — while we reconnect
                ok += 1
            await asyncio.sleep(0.05)
        return ok

    assert await on(body) == 60


async def test_without_buffer_rings_connections_receive_with_plain_recvs(
    on: Runner, ring_expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel before 5.19 has no provided-buffer rings: registering one fails (EINVAL), and
    every connection receives with a plain recv into its own buffer instead."""
    from spargio.native.ring import Ring

    def no_buffer_rings(self: Ring, count: int, size: int) -> None:
        raise OSError(errno.EINVAL, "buffer rings need Linux 5.19")

    monkeypatch.setattr(Ring, "buffer_ring", no_buffer_rings)

    async def body() -> tuple[bool, bool]:
        server, port = await echo_server()
        async with server:
            reader, writer = await net.open_connection("127.0.0.1", port)
            for size in (1, 4096, 1 << 20):
                data = payload(size)
                writer.write(data)
                assert await reader.readexactly(size) == data
            writer.close()
            await writer.wait_closed()
        state = getattr(current_io(), "net", None)
        return transport_kind(writer), state is not None and state.buffers is None

    on_ring, plain = await on(body)
    assert on_ring is ring_expected
    assert plain is ring_expected  # (the thread backend never makes spargio.net's state)
