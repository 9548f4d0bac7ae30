"""Stock asyncio code, unchanged, on a loop whose selector is an io_uring."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import pytest

from spargio._loop import RingSelector, new_ring_loop

pytestmark = pytest.mark.io_uring  # the ring itself: nothing here runs on threads


@pytest.fixture
def ring_loop():
    loop = new_ring_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def test_sleep_wait_for_and_timeout(ring_loop):
    async def main() -> float:
        start = time.monotonic()
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.02)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(asyncio.sleep(0.01, result=i)) for i in range(10)]
        assert [t.result() for t in tasks] == list(range(10))
        return time.monotonic() - start

    elapsed = ring_loop.run_until_complete(main())
    assert 0.09 <= elapsed < 2


def test_tcp_echo_on_loopback(ring_loop):
    async def main() -> list[bytes]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.readline():
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, limit=4 << 20)
        port = server.sockets[0].getsockname()[1]
        replies = []
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 << 20)
            for i in range(50):
                writer.write(b"line %d\n" % i)
                await writer.drain()
                replies.append(await reader.readline())
            big = os.urandom(1 << 20).hex().encode() + b"\n"  # forces partial writes and drains
            writer.write(big)
            await writer.drain()
            assert await reader.readline() == big
            writer.close()
            await writer.wait_closed()
        return replies

    assert ring_loop.run_until_complete(main()) == [b"line %d\n" % i for i in range(50)]


def test_subprocess_and_executor(ring_loop):
    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hello from a child')", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        value = await asyncio.get_running_loop().run_in_executor(None, sum, range(100))
        return out, value

    out, value = ring_loop.run_until_complete(main())
    assert out.strip() == b"hello from a child"
    assert value == 4950


def test_call_soon_threadsafe_wakes_a_parked_loop(ring_loop):
    async def main() -> float:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        sent = []

        def other() -> None:
            time.sleep(0.05)
            sent.append(time.monotonic())
            loop.call_soon_threadsafe(fut.set_result, "woken")

        threading.Thread(target=other).start()
        assert await fut == "woken"
        return time.monotonic() - sent[0]

    latency = ring_loop.run_until_complete(main())
    assert latency < 0.5


def test_selector_contract():
    sel = RingSelector()
    r, w = os.pipe()
    try:
        key = sel.register(r, 1, "data")
        assert sel.get_key(r) is key and key.data == "data"
        with pytest.raises(KeyError):
            sel.register(r, 1)
        assert sel.select(0) == []
        os.write(w, b"x")
        ready = sel.select(1)
        assert ready == [(key, 1)]
        # still readable: level-triggered, fires again
        assert sel.select(1) == [(key, 1)]
        os.read(r, 1)
        assert sel.select(0) == []
        sel.modify(r, 1, "new")
        assert sel.get_key(r).data == "new"
        wkey = sel.register(w, 2)
        assert sel.select(1) == [(wkey, 2)]
        sel.unregister(w)
        sel.unregister(r)
        with pytest.raises(KeyError):
            sel.unregister(r)
        start = time.monotonic()
        assert sel.select(0.05) == []
        assert time.monotonic() - start >= 0.04
        assert sel.ring.in_flight <= 2  # cancelled polls whose CQEs have not been reaped yet
    finally:
        sel.close()
        os.close(r)
        os.close(w)


def test_an_idle_ring_loop_parks_in_the_kernel(ring_loop):
    """A loop with nothing to do waits in io_uring_enter: ~0% CPU over a second."""
    cpu_before = time.process_time()
    ring_loop.run_until_complete(asyncio.sleep(1.0))
    assert time.process_time() - cpu_before < 0.05
