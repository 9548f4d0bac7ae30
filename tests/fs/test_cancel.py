"""Cancellation and timeouts really cancel (RELIABILITY row 7), deterministically.

Each test waits until the op is really in flight (the loop's I/O object counts
it), cancels, then `settle()`s until the kernel has delivered the final CQE.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from spargio import fs
from spargio._backend import current_io
from spargio.testing import fill_pipe, settle


async def _until_in_flight(n: int = 1) -> None:
    io = current_io()
    for _ in range(10_000):
        if io.in_flight >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError("the op never went in flight")


async def test_timeout_on_a_read_nobody_feeds(pipe):
    r, w = pipe
    reader = await fs.open(r, "rb", closefd=False)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await reader.read(10)
    assert loop.time() - start < 1.0, "the timeout fired late"
    await settle()
    assert current_io().in_flight == 0
    # The cancelled read consumed nothing: the next read gets the next bytes.
    os.write(w, b"after")
    assert await reader.read(10) == b"after"


async def test_task_cancel_and_wait_for(pipe):
    r, w = pipe
    reader = await fs.open(r, "rb", closefd=False)
    task = asyncio.ensure_future(reader.read(5))
    await _until_in_flight()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(5), 0.02)
    await settle()
    os.write(w, b"12345")
    assert await asyncio.wait_for(reader.read(5), 5) == b"12345"


async def test_cancelled_write_says_its_outcome_is_unknown(pipe, backend):
    r, w = pipe
    fill_pipe(w)
    writer = await fs.open(w, "wb", closefd=False)
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(0.05):
            await writer.write(b"y" * 100_000)
    if backend == "io_uring":
        cancelled = info.value.__context__
        assert isinstance(cancelled, asyncio.CancelledError)
        assert any("outcome is unknown" in note for note in getattr(cancelled, "__notes__", []))
    # Drain the pipe (on another thread) until the write has ended: on the thread
    # backend it is still running in its thread, and settle() waits for that.
    os.set_blocking(r, False)
    io = current_io()
    drained = asyncio.get_running_loop().run_in_executor(None, _drain_while, r, lambda: io.in_flight > 0)
    await settle()
    await drained


def _drain_while(r, busy) -> None:
    while True:
        try:
            while os.read(r, 1 << 20):
                pass
        except BlockingIOError:
            pass
        if not busy():
            return
        time.sleep(0.001)


async def test_open_cancelled_before_its_flush_leaks_no_fd(tmp_path):
    """The race that leaks fds: cancelled after queuing, before the open's CQE is reaped."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    for _ in range(20):
        task = asyncio.ensure_future(fs.open(path, "rb"))
        await asyncio.sleep(0)  # the open is queued; its flush is scheduled
        task.cancel()
        try:
            f = await task
        except asyncio.CancelledError:
            pass
        else:
            await f.close()
    await settle()
    # the books fixture fails the test if any fd from these opens is still open


async def test_blocked_open_cancelled_in_its_thread_leaks_no_fd(tmp_path, backend):
    """Thread backend: opening a FIFO blocks; cancel it; the fd it yields later is closed."""
    if backend != "threads":
        pytest.skip("io_uring opens a FIFO without blocking (it retries with O_NONBLOCK)")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await fs.open(fifo, "rb")
    assert current_io().in_flight == 1, "the open is still running in its thread"
    # A writer lets the blocked open finish; settle() waits for it, and the fd it
    # produced for nobody must be closed (the books fixture checks).
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        await settle()
    finally:
        os.close(writer)


async def test_cancel_many_in_flight_reads(pipe):
    r, w = pipe
    io = current_io()
    tasks = [asyncio.ensure_future(io.read(r, 16, -1)) for _ in range(50)]
    await _until_in_flight(50)
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(x, asyncio.CancelledError) for x in results)
    await settle()
    assert io.in_flight == 0
    os.write(w, b"z")
    assert await asyncio.wait_for(io.read(r, 16, -1), 5) == b"z"
