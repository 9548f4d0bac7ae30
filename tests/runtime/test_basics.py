"""Spawning sync and coroutine functions, results, errors, contextvars, tickets."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import os
import threading
import traceback

import pytest

import spargio
from spargio import ClosedError, Pinned, SpargioTimeout

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_sync_function_runs_on_a_shard_thread(rt: spargio.Runtime) -> None:
    caller = threading.get_ident()
    where = await rt.spawn(lambda: (threading.get_ident(), spargio.current_shard()))
    assert where[0] != caller
    assert where[1] in range(4)
    assert spargio.current_shard() is None


async def test_coroutine_function_runs_on_the_shards_loop(rt: spargio.Runtime) -> None:
    async def work(x: int, *, y: int) -> tuple[int, bool]:
        await asyncio.sleep(0.001)
        return x + y, asyncio.get_running_loop() is not caller_loop

    caller_loop = asyncio.get_running_loop()
    assert await rt.spawn(work, 1, y=2) == (3, True)
    assert await rt.call(work, 5, y=5) == (10, True)


async def test_many_tickets_at_once(rt: spargio.Runtime) -> None:
    tickets = [rt.spawn(pow, i, 2) for i in range(500)]
    assert await asyncio.gather(*tickets) == [i * i for i in range(500)]
    stats = rt.stats()
    assert stats.spawned == stats.completed == 500


async def test_context_is_copied_in_and_not_leaked_back(rt: spargio.Runtime) -> None:
    def read_and_set() -> str:
        seen = request_id.get()
        request_id.set("changed on the shard")
        return seen

    async def read_async() -> str:
        await asyncio.sleep(0)
        return request_id.get()

    request_id.set("req-42")
    assert await rt.spawn(read_and_set) == "req-42"
    assert await rt.spawn(read_async) == "req-42"
    assert request_id.get() == "req-42"


def fails_here() -> None:
    raise KeyError("from the shard")


async def test_exception_keeps_type_and_fn_frame(rt: spargio.Runtime) -> None:
    with pytest.raises(KeyError, match="from the shard") as info:
        await rt.spawn(fails_here)
    assert "fails_here" in [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert await rt.spawn(int, "7") == 7  # the shard carries on


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
async def test_system_exit_and_keyboard_interrupt_reach_the_caller(rt: spargio.Runtime, exc: BaseException) -> None:
    def raises() -> None:
        raise exc

    async def raises_async() -> None:
        raise exc

    for fn in (raises, raises_async):
        ticket = rt.spawn(fn, placement=Pinned(1))
        while not ticket.done():
            await asyncio.sleep(0.001)
        assert isinstance(ticket.exception(), type(exc))
    assert await rt.spawn(os.getpid, placement=Pinned(1)) == os.getpid()
    assert all(shard.alive for shard in rt.stats().shards)


async def test_wait_timeout_cancels_a_running_coroutine(rt: spargio.Runtime) -> None:
    cancelled_on_shard = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled_on_shard.set()
            raise

    ticket = rt.spawn(forever)
    with pytest.raises(SpargioTimeout):
        await ticket.wait(timeout=0.05)
    assert ticket.cancelled()
    assert await asyncio.to_thread(cancelled_on_shard.wait, 5)
    stats = rt.stats()
    assert stats.timeouts == 1
    assert stats.cancelled == 1


async def test_cancelled_queued_work_never_runs(rt: spargio.Runtime) -> None:
    gate = threading.Event()
    ran = []
    blocker = rt.spawn(gate.wait, 10, placement=Pinned(0))
    queued = [rt.spawn(ran.append, i, placement=Pinned(0)) for i in range(20)]
    for ticket in queued:
        assert ticket.cancel()
    gate.set()
    assert await blocker is True
    assert await rt.spawn(len, "ok", placement=Pinned(0)) == 2  # after the dropped ones
    assert ran == []
    assert rt.stats().dropped == 20
    for ticket in queued:
        with pytest.raises(asyncio.CancelledError):
            await ticket


async def test_cancelling_the_awaiting_task_cancels_running_sync_work_and_counts_it(rt: spargio.Runtime) -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "dropped"

    waiter = asyncio.ensure_future(rt.call(slow))
    assert await asyncio.to_thread(started.wait, 5)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    for _ in range(500):
        if rt.stats().abandoned:
            break
        await asyncio.sleep(0.002)
    assert rt.stats().abandoned == 1


async def test_stats_are_an_immutable_snapshot(rt: spargio.Runtime) -> None:
    await rt.spawn(int)
    stats = rt.stats()
    assert len(stats.shards) == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.spawned = 0  # type: ignore[misc]
    assert stats.backend in ("io_uring", "threads")
    assert stats.wakeup in ("msg_ring", "eventfd")
    assert stats.spawned == 1


async def test_lifecycle_errors(shape: dict[str, object]) -> None:
    runtime = spargio.Runtime(shards=2, **shape)  # type: ignore[arg-type]
    with pytest.raises(ClosedError, match="not started"):
        runtime.spawn(int)
    await runtime.start()
    with pytest.raises(RuntimeError, match="already started"):
        await runtime.start()
    assert await runtime.spawn(int, "1") == 1
    await runtime.aclose()
    await runtime.aclose()  # closing twice is fine
    with pytest.raises(ClosedError, match="closed"):
        runtime.spawn(int)
    assert runtime.closed


def test_a_plain_thread_spawns_and_blocks_on_the_result() -> None:
    runtime = spargio.Runtime(shards=2).start_blocking()
    try:
        ticket = runtime.spawn(pow, 3, 4)
        assert ticket.result(timeout=5) == 81
        assert ticket.done() and not ticket.cancelled()
        failing = runtime.spawn(int, "x")
        assert isinstance(failing.exception(timeout=5), ValueError)
        with pytest.raises(ValueError, match="invalid literal"):
            failing.result()
        with pytest.raises(RuntimeError, match="outside an event loop"):
            asyncio.run(_await(ticket))
    finally:
        assert runtime.close_blocking(timeout=5)


async def _await(ticket: spargio.Ticket[int]) -> int:
    return await ticket


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shards": 0}, "shards"),
        ({"shards": True}, "shards"),
        ({"inbox_capacity": 0}, "inbox_capacity"),
        ({"backend": "epoll"}, "backend"),
        ({"wakeup": "signal"}, "wakeup"),
        ({"thread_affinity": [-1]}, "thread_affinity"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        spargio.Runtime(**kwargs)  # type: ignore[arg-type]


def test_shards_default_to_the_cpus_we_may_use() -> None:
    assert spargio.Runtime().shards == len(os.sched_getaffinity(0))


async def test_thread_affinity_pins_each_shard() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    async with spargio.Runtime(shards=len(cpus), thread_affinity=True) as runtime:
        for i in range(len(cpus)):
            assert await runtime.spawn(os.sched_getaffinity, 0, placement=Pinned(i)) == {cpus[i]}
