"""boundary.call / submit / submit_nowait: results, errors, context, bounds, and cancellation at every stage
(RELIABILITY rows 8, 11, 12, 14, 16, 30)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import pytest

import spargio
from spargio import ClosedError, OverloadedError, Pinned, SpargioTimeout, boundary

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def _until(predicate: object, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


async def _block_the_shard(rt: spargio.Runtime) -> tuple[threading.Event, spargio.Ticket[bool]]:
    """Occupy shard 0 with a sync function until the returned gate is set."""
    gate = threading.Event()
    blocker = rt.spawn(gate.wait, 10, placement=Pinned(0))
    await _until(lambda: rt.stats().shards[0].running == 1, "the blocker to start")
    return gate, blocker


async def test_call_runs_sync_and_coroutine_functions(rt: spargio.Runtime) -> None:
    async def double_later(x: int) -> int:
        await asyncio.sleep(0.001)
        return 2 * x

    assert await boundary.call(pow, 2, 10, runtime=rt) == 1024
    assert await boundary.call(double_later, 21, runtime=rt) == 42
    assert await boundary.call(sorted, [3, 1, 2], reverse=True, runtime=rt) == [3, 2, 1]
    assert await boundary.call(spargio.current_shard, runtime=rt, placement=Pinned(3)) == 3
    ticket = await boundary.submit(double_later, 5, runtime=rt)
    assert isinstance(ticket, spargio.Ticket)
    assert await ticket.wait(timeout=5) == 10
    assert ticket.done() and ticket.result() == 10 and ticket.exception() is None
    assert await boundary.submit_nowait(pow, 3, 3, runtime=rt) == 27


async def test_call_uses_the_runtime_of_spargio_run() -> None:
    def main_in_thread() -> tuple[int, int | None]:
        async def main() -> tuple[int, int | None]:
            return spargio.current_runtime().shards, await boundary.call(spargio.current_shard)

        return spargio.run(main, shards=3)

    shards, where = await asyncio.to_thread(main_in_thread)
    assert shards == 3 and where in (0, 1, 2)


async def test_exceptions_keep_their_type_and_fn_frame_and_the_shard_lives(rt: spargio.Runtime) -> None:
    """Row 11."""

    def parse_order(text: str) -> int:
        return int(text)

    async def parse_later(text: str) -> int:
        await asyncio.sleep(0)
        return int(text)

    for fn in (parse_order, parse_later):
        with pytest.raises(ValueError, match="invalid literal") as info:
            await boundary.call(fn, "x", runtime=rt, placement=Pinned(1))
        assert fn.__name__ in [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert await boundary.call(parse_order, "7", runtime=rt, placement=Pinned(1)) == 7


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt])
async def test_system_exit_and_keyboard_interrupt_reach_the_caller(rt: spargio.Runtime, kind: type) -> None:
    """Row 12: delivered to the caller; the shard is not silently dead."""

    def quit_now() -> None:
        raise kind(3)

    async def quit_later() -> None:
        await asyncio.sleep(0)
        raise kind(4)

    for fn in (quit_now, quit_later):
        with pytest.raises(kind):
            await boundary.call(fn, runtime=rt, placement=Pinned(2))
    assert rt.stats().shards[2].alive
    assert await boundary.call(spargio.current_shard, runtime=rt, placement=Pinned(2)) == 2


async def test_contextvars_are_copied_in_and_do_not_leak_back(rt: spargio.Runtime) -> None:
    """Row 30 (context half)."""

    def read_and_set() -> str:
        seen = request_id.get()
        request_id.set("changed-on-shard")
        return seen

    async def read_and_set_async() -> str:
        await asyncio.sleep(0)
        return read_and_set()

    request_id.set("req-42")
    assert await boundary.call(read_and_set, runtime=rt) == "req-42"
    assert await boundary.call(read_and_set_async, runtime=rt) == "req-42"
    assert request_id.get() == "req-42"


async def test_the_works_own_timeout_error_is_not_a_spargio_timeout(rt: spargio.Runtime) -> None:
    def times_out() -> None:
        raise TimeoutError("upstream")

    with pytest.raises(TimeoutError, match="upstream") as info:
        await boundary.call(times_out, runtime=rt, timeout=5)
    assert not isinstance(info.value, SpargioTimeout)


# -- cancellation at every stage (row 8) -------------------------------------------------


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancelled_while_queued_never_runs(rt1: spargio.Runtime, how: str) -> None:
    gate, blocker = await _block_the_shard(rt1)
    ran = threading.Event()
    if how == "cancel":
        caller = asyncio.create_task(boundary.call(ran.set, runtime=rt1))
        await asyncio.sleep(0.01)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
    else:
        with pytest.raises(SpargioTimeout, match="cancelled"):
            await boundary.call(ran.set, runtime=rt1, timeout=0.02)
    gate.set()
    assert await blocker
    assert await boundary.call(int, "5", runtime=rt1) == 5  # the shard got past where the work was queued
    assert not ran.is_set()
    stats = rt1.stats()
    assert stats.dropped == 1 and stats.cancelled == 1
    assert stats.timeouts == (1 if how == "timeout" else 0)


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_a_running_coroutine_is_cancelled_on_its_shard(rt: spargio.Runtime, how: str) -> None:
    started = threading.Event()
    saw: list[str] = []

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw.append(f"cancelled on shard {spargio.current_shard()}")
            raise

    if how == "cancel":
        caller = asyncio.create_task(boundary.call(wait_forever, runtime=rt, placement=Pinned(1)))
        await asyncio.to_thread(started.wait, 5)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
    else:
        with pytest.raises(SpargioTimeout):
            await boundary.call(wait_forever, runtime=rt, placement=Pinned(1), timeout=0.05)
    await _until(lambda: saw, "the coroutine to see its cancellation")
    assert saw == ["cancelled on shard 1"]
    await _until(lambda: rt.stats().shards[1].cancelled == 1, "the shard to count it")


async def test_a_running_sync_function_finishes_and_its_result_is_dropped_and_counted(
    rt: spargio.Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        finished.set()
        return "late"

    caller = asyncio.create_task(boundary.call(slow, runtime=rt))
    await asyncio.to_thread(started.wait, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await asyncio.to_thread(finished.wait, 5)
    await _until(lambda: rt.stats().abandoned == 1, "the abandoned result to be counted")
    await asyncio.sleep(0.01)  # the dropped result reaches this loop: no noise
    assert capsys.readouterr().err == ""


async def test_cancelling_a_finished_ticket_changes_nothing(rt: spargio.Runtime) -> None:
    ticket = boundary.submit_nowait(pow, 2, 5, runtime=rt)
    assert await ticket == 32
    assert not ticket.cancel()
    assert ticket.result() == 32 and not ticket.cancelled()
    assert rt.stats().cancelled == 0


async def test_ticket_wait_timeout_cancels_and_the_ticket_can_be_cancelled_directly(rt1: spargio.Runtime) -> None:
    gate, blocker = await _block_the_shard(rt1)
    ticket = boundary.submit_nowait(int, "1", runtime=rt1)
    with pytest.raises(SpargioTimeout):
        await ticket.wait(timeout=0.01)
    assert ticket.cancelled()
    with pytest.raises(asyncio.CancelledError):
        ticket.result()
    gate.set()
    await blocker
    # the shard drops the cancelled ticket when it reaches it, which may be after the blocker's result has come back
    await _until(lambda: rt1.stats().dropped == 1, "the cancelled ticket to be dropped")
    assert rt1.stats().completed == 1  # the blocker only: the cancelled ticket never ran


# -- bounds (row 14) -------------------------------------------------------------------


async def test_full_inbox_submit_nowait_raises_at_once_and_awaiting_variants_wait(rt1: spargio.Runtime) -> None:
    gate, blocker = await _block_the_shard(rt1)
    queued = boundary.submit_nowait(int, "1", runtime=rt1)  # capacity 1: now full
    started = time.monotonic()
    with pytest.raises(OverloadedError, match="full"):
        boundary.submit_nowait(int, "2", runtime=rt1)
    assert time.monotonic() - started < 0.1
    callers = [asyncio.create_task(boundary.call(int, str(i), runtime=rt1)) for i in range(20)]
    submitter = asyncio.create_task(boundary.submit(int, "99", runtime=rt1))
    await asyncio.sleep(0.02)
    assert not any(c.done() for c in callers) and not submitter.done()
    assert rt1.stats().shards[0].queued == 1  # bounded: the waiters hold nothing in the inbox
    gate.set()
    assert await blocker
    assert await queued == 1
    assert sorted(await asyncio.gather(*callers)) == list(range(20))
    assert await (await submitter) == 99


async def test_a_timeout_while_waiting_for_space_submits_nothing(rt1: spargio.Runtime) -> None:
    gate, blocker = await _block_the_shard(rt1)
    boundary.submit_nowait(int, "1", runtime=rt1)
    ran = threading.Event()
    with pytest.raises(SpargioTimeout):
        await boundary.call(ran.set, runtime=rt1, timeout=0.02)
    gate.set()
    await blocker
    await boundary.call(int, "0", runtime=rt1)
    assert not ran.is_set()
    assert rt1.stats().spawned == 3  # blocker, the queued one, the last call


async def test_closed_runtime_raises_closed_error(shape: dict[str, object]) -> None:
    rt = await spargio.Runtime(shards=1, **shape).start()  # type: ignore[arg-type]
    await rt.aclose()
    with pytest.raises(ClosedError):
        await boundary.call(int, runtime=rt)
    with pytest.raises(ClosedError):
        boundary.submit_nowait(int, runtime=rt)


# -- plain threads -------------------------------------------------------------------------


def test_a_plain_thread_blocks_on_result_and_its_timeout_cancels(shape: dict[str, object]) -> None:
    rt = spargio.Runtime(shards=1, inbox_capacity=4, **shape).start_blocking()  # type: ignore[arg-type]
    try:
        assert boundary.submit_nowait(pow, 2, 8, runtime=rt).result(timeout=5) == 256
        gate = threading.Event()
        blocker = boundary.submit_nowait(gate.wait, 10, runtime=rt)
        ran = threading.Event()
        queued = boundary.submit_nowait(ran.set, runtime=rt)
        with pytest.raises(SpargioTimeout):
            queued.result(timeout=0.02)
        assert queued.done() and queued.cancelled()
        gate.set()
        assert blocker.result(timeout=5) is True
        assert boundary.submit_nowait(int, "3", runtime=rt).result(timeout=5) == 3
        assert not ran.is_set()
    finally:
        assert rt.close_blocking(timeout=5)


async def test_a_loop_ticket_waited_for_from_a_plain_thread(rt: spargio.Runtime) -> None:
    ticket = boundary.submit_nowait(sum, [1, 2, 3], runtime=rt)
    assert await asyncio.to_thread(ticket.result, 5) == 6


# -- the caller's loop goes away (row 16) ----------------------------------------------------


def test_results_for_a_closed_loop_are_dropped_quietly() -> None:
    script = textwrap.dedent(
        """
        import asyncio, threading, time, spargio
        from spargio import boundary

        rt = spargio.Runtime(shards=2).start_blocking()
        release = threading.Event()

        def slow(i):
            release.wait(5)
            return bytearray(1 << 16)

        async def slow_coro(i):
            await asyncio.sleep(0.05)
            return i

        async def main():
            for i in range(50):
                boundary.submit_nowait(slow if i % 2 else slow_coro, i, runtime=rt)
            threading.Timer(0.05, release.set).start()

        asyncio.run(main())          # returns without awaiting: its loop closes with work in flight
        time.sleep(0.3)              # the results arrive for a closed loop
        assert rt.close_blocking(drain=True, timeout=5)
        print("clean", rt.stats().completed)
        """
    )
    env = dict(os.environ)
    if spargio.backend_info().name != "io_uring":  # io_uring blocked: threads, asked for (no fallback warning)
        env["SPARGIO_BACKEND"] = "threads"
    done = subprocess.run(
        [sys.executable, "-P", "-c", script], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["clean", "50"]
    assert done.stderr == ""
