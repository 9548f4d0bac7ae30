"""spargio.net.sendfile moves file bytes to a socket (by splice on a RingTransport)."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest

from spargio import net

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Runner = Callable[..., Awaitable[Any]]

CONTENT = os.urandom((3 << 20) + 7)
CASES = [(0, None), (0, 1), (5, 100_000), (1 << 20, None), (0, (2 << 20) + 3), (len(CONTENT) - 1, None)]


async def collect(path: str, offset: int, count: int | None, prefix: bytes) -> tuple[bytes, int, int]:
    """Write ``prefix``, sendfile, write a suffix; the peer returns what it read, and the file's position."""
    got = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.set_result(await reader.read())
        writer.close()

    server = await net.start_server(sink, "127.0.0.1", 0)
    async with server:
        _reader, writer = await net.open_connection(*server.sockets[0].getsockname())
        with open(path, "rb") as f:
            writer.write(prefix)
            try:
                sent = await net.sendfile(writer.transport, f, offset, count)
            except NotImplementedError:  # uvloop's own transports (the thread backend): as loop.sendfile
                writer.close()
                await writer.wait_closed()
                got.cancel()
                return b"", -1, -1
            position = f.tell()
        writer.write(b"<end>")
        writer.write_eof()
        data = await asyncio.wait_for(got, 30)
        writer.close()
        await writer.wait_closed()
    return data, sent, position


@pytest.mark.parametrize(("offset", "count"), CASES)
async def test_sendfile_sends_the_range_between_writes(
    on: Runner, tmp_path: Any, offset: int, count: int | None, ring_expected: bool
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    data, sent, position = await on(collect, str(path), offset, count, b"<head>")
    if sent == -1:
        assert not ring_expected
        return
    expected = CONTENT[offset:] if count is None else CONTENT[offset : offset + count]
    assert sent == len(expected)
    assert data == b"<head>" + expected + b"<end>"
    assert position == offset + sent


async def test_write_during_sendfile_is_refused(tmp_path: Any) -> None:
    if not net.uses_ring():
        pytest.skip("the loop's own transports say what they say")
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(32 << 20))

    async def slow_sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.2)
        await reader.read()
        writer.close()

    server = await net.start_server(slow_sink, "127.0.0.1", 0)
    async with server:
        _reader, writer = await net.open_connection(*server.sockets[0].getsockname())
        with open(path, "rb") as f:
            task = asyncio.ensure_future(net.sendfile(writer.transport, f))
            await asyncio.sleep(0.05)
            with pytest.raises(RuntimeError, match="sendfile is in progress"):
                writer.write(b"no")
            assert await task == 32 << 20
        writer.close()
        await writer.wait_closed()


async def test_cancelled_sendfile_cancels_its_splices_and_closes_the_transport(tmp_path: Any) -> None:
    if not net.uses_ring():
        pytest.skip("the ring path's cancel")
    from spargio.testing import settle

    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(64 << 20))
    release = asyncio.Event()

    async def stalled_sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()  # reads nothing: the socket's buffers fill and the splices wait
        writer.close()

    server = await net.start_server(stalled_sink, "127.0.0.1", 0)
    async with server:
        _reader, writer = await net.open_connection(*server.sockets[0].getsockname())
        with open(path, "rb") as f:
            task = asyncio.ensure_future(net.sendfile(writer.transport, f))
            await asyncio.sleep(0.2)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert writer.transport.is_closing()
        release.set()
        await writer.wait_closed()
    await settle()
