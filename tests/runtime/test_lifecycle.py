"""Closing, dying, exiting, forking, signals and idling (rows 13, 15, 17, 18, 19)."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import spargio
from spargio import ClosedError, Pinned, ShardDiedError
from spargio.testing import kill_shard


async def test_close_with_drain_runs_all_queued_work(shape: dict[str, object]) -> None:
    """Row 15, drain mode: 1000 slow ops all finish."""
    rt = await spargio.Runtime(shards=2, **shape).start()  # type: ignore[arg-type]

    async def slow(i: int) -> int:
        await asyncio.sleep(0.001)
        return i

    tickets = [await rt.submit(slow, i) for i in range(1000)]
    await rt.aclose(drain=True)
    assert all(t.done() for t in tickets)
    assert [await t for t in tickets] == list(range(1000))
    with pytest.raises(ClosedError):
        rt.spawn(int)


async def test_close_without_drain_fails_queued_and_running_work(shape: dict[str, object]) -> None:
    """Row 15, cancel mode: every ticket ends, with ClosedError where it did not finish."""
    rt = await spargio.Runtime(shards=2, **shape).start()  # type: ignore[arg-type]
    cancelled_on_shard = []

    async def slow(i: int) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled_on_shard.append(i)
            raise
        return i

    tickets = [await rt.submit(slow, i) for i in range(1000)]
    await asyncio.sleep(0.05)
    await rt.aclose(drain=False)
    await asyncio.sleep(0)  # the replies' mailbox drain
    assert all(t.done() for t in tickets)
    for t in tickets:
        assert isinstance(t.exception(), ClosedError)
    assert cancelled_on_shard, "running coroutines were not cancelled on their shards"
    with pytest.raises(ClosedError):
        rt.spawn(int)


async def test_close_cancels_in_flight_native_ops(shape: dict[str, object]) -> None:
    """A shard parked on a pipe read that nobody writes: close cancels it and the ring closes cleanly."""
    r, w = os.pipe()
    try:
        rt = await spargio.Runtime(shards=2, **shape).start()  # type: ignore[arg-type]

        async def read_pipe() -> bytes:
            async with await spargio.fs.open(r, "rb", closefd=False) as f:
                return await f.read(10)

        ticket = rt.spawn(read_pipe, placement=Pinned(1))
        for _ in range(500):
            if rt.stats().shards[1].running:
                break
            await asyncio.sleep(0.002)
        t0 = time.monotonic()
        await rt.aclose(drain=False)
        assert time.monotonic() - t0 < 3
        await asyncio.sleep(0)
        assert isinstance(ticket.exception(), ClosedError)
    finally:
        os.close(r)
        os.close(w)


async def test_dead_shard_fails_its_tickets_and_others_carry_on(shape: dict[str, object]) -> None:
    """Row 13: a shard's thread dies; its pending tickets fail within 1 s with a clear error."""
    gate = threading.Event()
    async with spargio.Runtime(shards=2, **shape) as rt:  # type: ignore[arg-type]

        async def parked() -> None:
            await asyncio.sleep(3600)

        running = rt.spawn(parked, placement=Pinned(0))
        # Hold the shard in a short sync call so that the tickets below queue behind it and the
        # kill arrives before any of them starts (gate.wait would block the shard for 10 s).
        rt.spawn(time.sleep, 0.3, placement=Pinned(0))
        while rt.stats().shards[0].running < 2:
            await asyncio.sleep(0.001)
        queued = [rt.spawn(gate.wait, 10, placement=Pinned(0)) for _ in range(5)]
        t0 = time.monotonic()
        kill_shard(rt, 0)
        done, _ = await asyncio.wait([asyncio.ensure_future(t.wait()) for t in [running, *queued]], timeout=1.0)
        assert len(done) == 6, f"only {len(done)} of 6 tickets ended within 1 s"
        assert time.monotonic() - t0 < 1.0
        for t in [running, *queued]:
            exc = t.exception()
            assert isinstance(exc, ShardDiedError)
            assert "shard 0" in str(exc) and "died" in str(exc)
            assert isinstance(exc.__cause__, SystemExit)
        stats = rt.stats()
        assert not stats.shards[0].alive and stats.shards[1].alive
        with pytest.raises(ShardDiedError):
            rt.spawn(int, placement=Pinned(0))
        # Work that may go anywhere goes to the live shard.
        assert set(await asyncio.gather(*(rt.spawn(spargio.current_shard) for _ in range(20)))) == {1}
        gate.set()


async def test_idle_runtime_uses_almost_no_cpu(shape: dict[str, object]) -> None:
    """An idle 4-shard runtime uses under 2% of one CPU over 2 s."""
    async with spargio.Runtime(shards=4, **shape) as rt:  # type: ignore[arg-type]
        await asyncio.gather(*(rt.spawn(int, placement=Pinned(i)) for i in range(4)))
        await asyncio.sleep(0.1)
        before = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        await asyncio.sleep(2.0)
        after = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic() - t0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu / wall < 0.02, f"idle runtime used {cpu / wall:.1%} of a CPU"


def _run_script(script: str, timeout: float = 20, **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **popen,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("wakeup", [pytest.param("msg_ring", marks=pytest.mark.io_uring), "eventfd"])
def test_interpreter_exits_promptly_without_close(wakeup: str) -> None:
    """Row 17: exit code 0 within 5 s with shards parked and a pipe read pending, no close."""
    script = f"""
        import asyncio, os, spargio
        r, w = os.pipe()
        async def read_pipe():
            f = await spargio.fs.open(r, "rb", closefd=False)
            return await f.read(10)
        async def main():
            rt = await spargio.Runtime(shards=4, wakeup={wakeup!r}).start()
            ticket = rt.spawn(read_pipe, placement=spargio.Pinned(0))
            while not rt.stats().shards[0].running:
                await asyncio.sleep(0.001)
            print("started", flush=True)
        asyncio.run(main())
    """
    t0 = time.monotonic()
    done = _run_script(script)
    assert done.returncode == 0, done.stderr
    assert "started" in done.stdout
    assert time.monotonic() - t0 < 5
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("main", ["asyncio", "sleep"])
def test_sigint_reaches_the_main_thread_while_shards_wait(main: str) -> None:
    """Row 18: KeyboardInterrupt promptly in the main thread; shards are parked in io_uring_enter."""
    wait = "asyncio.run(asyncio.sleep(30))" if main == "asyncio" else "time.sleep(30)"
    script = f"""
        import asyncio, time, spargio
        rt = spargio.Runtime(shards=4).start_blocking()
        print("ready", flush=True)
        t0 = time.monotonic()
        try:
            {wait}
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - t0, 2), flush=True)
        rt.close_blocking(timeout=5)
    """
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 3
    assert proc.returncode == 0, err
    assert "interrupted after" in out, (out, err)


async def test_fork_child_cannot_use_the_parents_runtime(shape: dict[str, object]) -> None:
    """Row 19: the child gets a clear error (and a fresh default runtime); the parent is unaffected."""
    async with spargio.Runtime(shards=2, **shape) as rt:  # type: ignore[arg-type]
        assert await rt.spawn(int, "1") == 1
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            code = 1
            try:
                try:
                    rt.spawn(int)
                except ClosedError as exc:
                    ok = "fork" in str(exc)
                else:
                    ok = False

                async def fresh() -> int:
                    return await spargio.default_runtime().spawn(os.getpid)  # type: ignore[no-any-return]

                ok = ok and asyncio.new_event_loop().run_until_complete(fresh()) == os.getpid()
                os.write(w, b"ok" if ok else b"no")
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        got = os.read(r, 10)
        os.close(r)
        assert os.waitstatus_to_exitcode(status) == 0
        assert got == b"ok"
        assert await rt.spawn(int, "2") == 2


def test_spargio_run_gives_main_a_runtime() -> None:
    async def main() -> tuple[int | None, int]:
        rt = spargio.current_runtime()
        assert rt.shards == 2
        return await rt.spawn(spargio.current_shard), rt.shards

    shard, shards = spargio.run(main, shards=2)
    assert shard in (0, 1) and shards == 2


def test_default_runtime_is_started_lazily_and_closed_at_exit() -> None:
    script = """
        import asyncio, spargio, threading
        async def main():
            rt = spargio.default_runtime()
            assert rt is spargio.default_runtime()
            assert rt is spargio.current_runtime()
            print(rt.shards, await rt.spawn(lambda: threading.current_thread().name.startswith("spargio-shard")))
        asyncio.run(main())
    """
    done = _run_script(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(os.sched_getaffinity(0))), "True"]
