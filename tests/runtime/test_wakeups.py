"""Wakeups: only to parked shards, one per batch of replies, by the configured path (row 21)."""

from __future__ import annotations

import asyncio
import threading
import time

import spargio
from spargio import Pinned


async def test_the_configured_wake_path_is_the_one_used(rt: spargio.Runtime, shape: dict[str, object]) -> None:
    for i in range(20):
        await rt.spawn(int, placement=Pinned(i % 4))
    wakeups = rt.stats().wakeups
    if shape["wakeup"] == "msg_ring":
        assert wakeups.msg_ring > 0 and wakeups.eventfd == 0
        assert sum(s.wakeups_received for s in rt.stats().shards) > 0
    else:
        assert wakeups.eventfd > 0 and wakeups.msg_ring == 0


async def test_a_busy_shard_is_not_woken_for_each_item(rt: spargio.Runtime) -> None:
    gate = threading.Event()
    blocker = rt.spawn(gate.wait, 10, placement=Pinned(0))
    while rt.stats().shards[0].running == 0:
        await asyncio.sleep(0.001)
    before = rt.stats().wakeups
    tickets = [rt.spawn(int, i, placement=Pinned(0)) for i in range(500)]
    after = rt.stats().wakeups
    sent = (after.msg_ring - before.msg_ring) + (after.eventfd - before.eventfd)
    assert sent == 0, f"{sent} wakeups sent to a shard that was busy"
    gate.set()
    assert await asyncio.gather(*tickets) == list(range(500))
    await blocker


async def test_replies_that_are_ready_together_cost_one_wakeup(rt: spargio.Runtime) -> None:
    await rt.spawn(int, placement=Pinned(1))
    before = rt.stats().wakeups.loop
    tickets = [rt.spawn(pow, i, 2, placement=Pinned(1)) for i in range(300)]
    time.sleep(0.3)  # block this loop: the shard finishes all 300 meanwhile
    assert rt.stats().shards[1].completed == 301, "the shard did not finish the batch while the loop was blocked"
    assert await asyncio.gather(*tickets) == [i * i for i in range(300)]
    woke = rt.stats().wakeups.loop - before
    assert woke <= 2, f"{woke} loop wakeups for 300 replies"


async def test_shard_to_shard_work_and_replies(rt: spargio.Runtime) -> None:
    async def fan_out() -> list[int | None]:
        here = spargio.current_shard()
        others = [i for i in range(4) if i != here]
        return list(await asyncio.gather(*(rt.spawn(spargio.current_shard, placement=Pinned(i)) for i in others)))

    for origin in range(4):
        where = await rt.spawn(fan_out, placement=Pinned(origin))
        assert sorted(where) == sorted(i for i in range(4) if i != origin)  # type: ignore[type-var]


async def test_threads_without_a_loop_wake_shards_through_the_eventfd(rt: spargio.Runtime) -> None:
    """A plain thread posting to a shard's mailbox has no ring: it must use the eventfd."""
    ran = threading.Event()
    shard = rt.shard_list[2]
    while not (shard.waker is not None and shard.waker.parked):
        await asyncio.sleep(0.001)
    before = rt.stats().wakeups.eventfd
    await asyncio.to_thread(shard.post, lambda _arg: ran.set(), None)
    assert await asyncio.to_thread(ran.wait, 5)
    assert rt.stats().wakeups.eventfd == before + 1


async def test_wakes_racing_a_shard_that_stops_are_harmless(shape: dict[str, object]) -> None:
    """A busy shard may wake a thief that is stopping (drained close); the wake must not
    reach the thief's closed eventfd or ring, and must not fail the waker."""
    rt = await spargio.Runtime(shards=2, **shape).start()  # type: ignore[arg-type]
    waker = rt.shard_list[0].waker
    assert waker is not None
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            waker.pending = False
            try:
                waker.wake()
            except BaseException as exc:  # the test reports whatever escaped
                errors.append(exc)
                return
            time.sleep(0)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        await rt.aclose()
        rt.shard_list[0].selector.parked = True  # type: ignore[union-attr]
        await asyncio.sleep(0.01)  # the hammer keeps going against the closed shard
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert waker.wake() is False


async def test_a_post_made_while_the_mailbox_drains_does_not_leave_it_armed(shape: dict[str, object]) -> None:
    """A post that finds the shard awake (here: made by a callback the drain is running) must not
    arm the mailbox, or the next post would skip the wake and the parked shard would never see it."""
    rt = await spargio.Runtime(shards=1, **shape).start()  # type: ignore[arg-type]
    shard = rt.shard_list[0]
    reposted = threading.Event()

    def repost(_: object) -> None:
        shard.post(lambda _: reposted.set(), None)

    shard.post(repost, None)
    assert await asyncio.to_thread(reposted.wait, 5)
    deadline = time.monotonic() + 5
    while not shard.selector.parked:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    async with asyncio.timeout(5):  # the stop request is a post: it must wake the parked shard
        await rt.aclose()
