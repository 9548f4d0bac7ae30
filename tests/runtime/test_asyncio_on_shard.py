"""Any asyncio code runs unchanged on a shard; spargio.fs there uses the shard's ring."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

import spargio
from spargio import Pinned
from spargio._backend import current_io


async def test_sleep_wait_for_and_timeout(rt: spargio.Runtime) -> None:
    async def timing() -> tuple[float, bool, bool]:
        t0 = time.monotonic()
        await asyncio.sleep(0.03)
        slept = time.monotonic() - t0
        try:
            await asyncio.wait_for(asyncio.sleep(10), 0.02)
        except TimeoutError:
            wait_for_fired = True
        else:
            wait_for_fired = False
        try:
            async with asyncio.timeout(0.02):
                await asyncio.sleep(10)
        except TimeoutError:
            timeout_fired = True
        else:
            timeout_fired = False
        return slept, wait_for_fired, timeout_fired

    slept, wait_for_fired, timeout_fired = await rt.spawn(timing)
    assert 0.025 <= slept < 1.0
    assert wait_for_fired and timeout_fired


async def test_task_group(rt: spargio.Runtime) -> None:
    async def group() -> list[int]:
        async def child(i: int) -> int:
            await asyncio.sleep(0.001 * i)
            return i * 10

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(child(i)) for i in range(10)]
        return [t.result() for t in tasks]

    assert await rt.spawn(group) == [i * 10 for i in range(10)]


async def test_tcp_echo_server_and_client_on_loopback(rt: spargio.Runtime) -> None:
    async def echo_round_trip() -> list[bytes]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, limit=4 << 20)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 << 20)
        got = []
        for line in (b"hello\n", b"x" * (1 << 20) + b"\n"):
            writer.write(line)
            await writer.drain()
            got.append(await reader.readline())
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got

    assert await rt.spawn(echo_round_trip) == [b"hello\n", b"x" * (1 << 20) + b"\n"]


async def test_subprocess(rt: spargio.Runtime) -> None:
    async def child() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; print(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"from a shard")
        return out, await proc.wait()

    assert await rt.spawn(child) == (b"FROM A SHARD\n", 0)


@pytest.mark.parametrize("backend", [pytest.param("io_uring", marks=pytest.mark.io_uring), "threads"])
def test_subprocess_on_a_shard_after_uvloop_install(backend: str) -> None:
    """Issue 16 item 3: the shard's loop must not need the process-wide policy's child watcher."""
    script = f"""
import asyncio, sys, warnings, uvloop, spargio
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: install() is deprecated, still used
    uvloop.install()

async def child():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(7)")
    return await proc.wait()

async def main():
    async with spargio.Runtime(shards=1, backend={backend!r}) as rt:
        print(await rt.call(child), await rt.call(child))

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-P", "-W", "error", "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "7 7"), done.stderr


async def test_run_in_executor(rt: spargio.Runtime) -> None:
    async def offload() -> int:
        return await asyncio.get_running_loop().run_in_executor(None, sum, range(1000))

    assert await rt.spawn(offload) == sum(range(1000))


async def test_fs_on_a_shard_uses_the_shards_ring(rt: spargio.Runtime, data_file: tuple[str, bytes]) -> None:
    path, content = data_file

    async def read_here() -> tuple[bytes, bool]:
        data = await spargio.fs.read_bytes(path)
        io = current_io()
        selector = getattr(asyncio.get_running_loop(), "_selector", None)
        shares = getattr(io, "ring", None) is not None and io.ring is getattr(selector, "ring", None)  # type: ignore[union-attr]
        return data, shares

    data, shares = await rt.spawn(read_here, placement=Pinned(2))
    assert data == content
    assert shares == (rt.backend == "io_uring")
    # Stats are read from another thread without stopping the shard: allow it to finish re-arming polls.
    for _ in range(200):
        if rt.stats().shards[2].in_flight_ops == 0:
            break
        await asyncio.sleep(0.005)
    assert rt.stats().shards[2].in_flight_ops == 0


async def test_fs_many_concurrent_ops_on_tiny_shard_rings(
    shape: dict[str, object], data_file: tuple[str, bytes]
) -> None:
    """Row 22 on shards: 8-entry rings, 10**4 reads in flight bursts; nothing lost or duplicated."""
    path, content = data_file

    async def burst(offsets: list[int]) -> bool:
        async with await spargio.fs.open(path, "rb") as f:
            got = await asyncio.gather(*(f.read_at(off, 4096) for off in offsets))
        return all(g == content[o : o + 4096] for g, o in zip(got, offsets, strict=True))

    offsets = [(i * 4096 * 7) % (len(content) - 4096) for i in range(10_000)]
    async with spargio.Runtime(shards=2, ring_entries=8, **shape) as rt:  # type: ignore[arg-type]
        assert all(await asyncio.gather(rt.spawn(burst, offsets[:5000]), rt.spawn(burst, offsets[5000:])))


async def test_whole_file_writes_on_tiny_shard_rings(shape: dict[str, object], tmp_path) -> None:
    """write_bytes' linked chain (4 SQEs with fsync) and a close's linked write -> close on
    8-entry shard rings, more at once than the ring has slots: every file lands whole."""

    async def writes(base: int) -> bool:
        payloads = {base + i: os.urandom(50 + i) for i in range(150)}
        await asyncio.gather(
            *(spargio.fs.write_bytes(tmp_path / f"{n}", p, fsync=n % 2 == 0) for n, p in payloads.items())
        )
        for n in range(base, base + 20):
            async with spargio.fs.open(tmp_path / f"{n}.buffered", "wb") as f:
                await f.write(payloads[n])
        return all((tmp_path / f"{n}").read_bytes() == p for n, p in payloads.items()) and all(
            (tmp_path / f"{n}.buffered").read_bytes() == payloads[n] for n in range(base, base + 20)
        )

    async with spargio.Runtime(shards=2, ring_entries=8, **shape) as rt:  # type: ignore[arg-type]
        assert await asyncio.gather(
            rt.spawn(writes, 0, placement=Pinned(0)), rt.spawn(writes, 1000, placement=Pinned(1))
        ) == [True, True]


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open")
async def test_shard_loop_is_a_stock_selector_loop(rt: spargio.Runtime) -> None:
    async def kind() -> list[str]:
        return [cls.__name__ for cls in type(asyncio.get_running_loop()).__mro__]

    assert "_UnixSelectorEventLoop" in await rt.spawn(kind)
