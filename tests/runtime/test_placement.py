"""Where work runs: each placement mode, bounded inboxes, and work stealing (row 27)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

import spargio
from spargio import OverloadedError, Pinned, RoundRobin, Stealable, StealablePreferred, Sticky


async def test_pinned_runs_on_that_shard(rt: spargio.Runtime) -> None:
    for i in range(4):
        where = await asyncio.gather(*(rt.spawn(spargio.current_shard, placement=Pinned(i)) for _ in range(20)))
        assert set(where) == {i}
    with pytest.raises(ValueError, match=r"shard must be in 0\.\.3"):
        rt.spawn(int, placement=Pinned(4))


async def test_round_robin_takes_the_shards_in_turn(rt: spargio.Runtime) -> None:
    where = [await rt.spawn(spargio.current_shard, placement=RoundRobin()) for _ in range(8)]
    assert where[:4] == where[4:]
    assert sorted(where[:4]) == [0, 1, 2, 3]


async def test_sticky_keeps_a_key_on_one_shard(rt: spargio.Runtime) -> None:
    for key in ("user-1", "user-2", 17, ("a", 1)):
        where = await asyncio.gather(*(rt.spawn(spargio.current_shard, placement=Sticky(key)) for _ in range(10)))
        assert len(set(where)) == 1


async def test_stealable_preferred_goes_to_its_shard_when_it_is_free(rt: spargio.Runtime) -> None:
    for i in range(4):
        assert await rt.spawn(spargio.current_shard, placement=StealablePreferred(i)) == i


async def test_stealable_work_spreads_over_the_shards(rt: spargio.Runtime) -> None:
    # Blocking sync work: a shard runs one at a time, so the load steers the rest elsewhere.
    barrier = threading.Barrier(4, timeout=10)

    def meet() -> int | None:
        barrier.wait()
        return spargio.current_shard()

    where = await asyncio.gather(*(rt.spawn(meet, placement=Stealable()) for _ in range(4)))
    assert sorted(where) == [0, 1, 2, 3]  # type: ignore[type-var]


async def test_full_inbox_refuses_spawn_and_makes_submit_wait(shape: dict[str, object]) -> None:
    gate = threading.Event()
    async with spargio.Runtime(shards=2, inbox_capacity=2, **shape) as rt:  # type: ignore[arg-type]
        running = rt.spawn(gate.wait, 10, placement=Pinned(0))
        while rt.stats().shards[0].running == 0:
            await asyncio.sleep(0.001)
        queued = [rt.spawn(int, i, placement=Pinned(0)) for i in range(2)]
        with pytest.raises(OverloadedError, match="full"):
            rt.spawn(int, placement=Pinned(0))
        assert rt.stats().overloaded == 1
        # Stealable work is not refused while another shard has room.
        assert await rt.spawn(int, "5") == 5
        waiting = [asyncio.ensure_future(rt.submit(int, 100 + i, placement=Pinned(0))) for i in range(3)]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiting)
        gate.set()
        assert await running is True
        assert await asyncio.gather(*queued) == [0, 1]
        tickets = await asyncio.gather(*waiting)
        assert await asyncio.gather(*tickets) == [100, 101, 102]
        assert rt.stats().waited_for_space == 3


async def test_cancelled_submit_while_waiting_submits_nothing(shape: dict[str, object]) -> None:
    gate = threading.Event()
    ran = []
    async with spargio.Runtime(shards=1, inbox_capacity=1, **shape) as rt:  # type: ignore[arg-type]
        running = rt.spawn(gate.wait, 10)
        while rt.stats().shards[0].running == 0:
            await asyncio.sleep(0.001)
        rt.spawn(int)
        waiting = asyncio.ensure_future(rt.submit(ran.append, 1))
        await asyncio.sleep(0.02)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.set()
        await running
    assert ran == []


async def test_stealing_runs_every_task_exactly_once(shape: dict[str, object]) -> None:
    """Row 27: 10**5 tasks all sent to shard 0; other shards steal; each runs once."""
    n = 100_000
    runs = [0] * n

    def task(i: int) -> None:
        runs[i] += 1

    async with spargio.Runtime(shards=4, **shape) as rt:  # type: ignore[arg-type]
        preferred = StealablePreferred(0)
        tickets = [await rt.submit(task, i, placement=preferred) for i in range(n)]
        await asyncio.gather(*tickets)
        stats = rt.stats()
    assert Counter(runs) == {1: n}
    assert stats.completed == n
    assert stats.stolen > 0
    assert sum(s.started for s in stats.shards[1:]) > 0, "no other shard ran any work"


async def test_pinned_work_is_never_stolen(shape: dict[str, object]) -> None:
    async with spargio.Runtime(shards=4, **shape) as rt:  # type: ignore[arg-type]
        tickets = [await rt.submit(spargio.current_shard, placement=Pinned(0)) for _ in range(3000)]
        where = await asyncio.gather(*tickets)
        assert set(where) == {0}
        assert rt.stats().stolen == 0
