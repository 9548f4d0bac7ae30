"""boundary.channel: between every pair of sides, bounded, cancellable, closable (rows 10, 14)."""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

import spargio
from spargio import ClosedError, OverloadedError, Pinned, SpargioTimeout, boundary

if TYPE_CHECKING:
    from spargio.boundary import Client, Server


async def _serve_upper(server: Server[str, str]) -> int:
    served = 0
    async for request in server:
        request.respond(request.payload.upper())
        served += 1
    return served


def _serve_upper_blocking(server: Server[str, str]) -> int:
    served = 0
    while True:
        try:
            request = server.recv_blocking()
        except ClosedError:
            return served
        request.respond(request.payload.upper())
        served += 1


async def _call_many(client: Client[str, str], n: int) -> list[str]:
    replies = await asyncio.gather(*(client.call(f"m{i}", timeout=10) for i in range(n)))
    client.close()
    return replies


def _expected(n: int) -> list[str]:
    return [f"M{i}" for i in range(n)]


async def test_service_loop_to_service_loop() -> None:
    client, server = boundary.channel(8)
    serving = asyncio.create_task(_serve_upper(server))
    assert await _call_many(client, 50) == _expected(50)
    assert await serving == 50


async def test_service_loop_to_shard_and_back(rt: spargio.Runtime) -> None:
    client, server = boundary.channel(8)
    serving = rt.spawn(_serve_upper, server, placement=Pinned(2))
    assert await _call_many(client, 50) == _expected(50)
    assert await serving == 50

    client, server = boundary.channel(8)
    calling = rt.spawn(_call_many, client, 50, placement=Pinned(1))
    assert await _serve_upper(server) == 50
    assert await calling == _expected(50)


async def test_shard_to_shard(rt: spargio.Runtime) -> None:
    client, server = boundary.channel(4)
    serving = rt.spawn(_serve_upper, server, placement=Pinned(0))
    calling = rt.spawn(_call_many, client, 50, placement=Pinned(3))
    assert await calling == _expected(50)
    assert await serving == 50


async def test_plain_thread_and_loop_both_ways() -> None:
    client, server = boundary.channel(4)
    serving = asyncio.create_task(asyncio.to_thread(_serve_upper_blocking, server))
    assert await _call_many(client, 30) == _expected(30)
    assert await serving == 30

    client, server = boundary.channel(4)

    def call_from_thread() -> list[str]:
        with client:
            return [client.call_blocking(f"m{i}", timeout=10) for i in range(30)]

    calling = asyncio.create_task(asyncio.to_thread(call_from_thread))
    assert await _serve_upper(server) == 30
    assert await calling == _expected(30)


async def test_try_call_is_overloaded_at_once_and_call_waits_for_space() -> None:
    """Row 14 for channels: capacity 1, many callers."""
    client, server = boundary.channel(1)
    first = client.try_call("a")
    with pytest.raises(OverloadedError, match="full"):
        client.try_call("b")
    waiting = [asyncio.create_task(client.call(f"m{i}")) for i in range(20)]
    await asyncio.sleep(0.01)
    assert server.stats().queued == 1 and not any(w.done() for w in waiting)
    serving = asyncio.create_task(_serve_upper(server))
    assert await first == "A"
    assert await asyncio.gather(*waiting) == _expected(20)
    client.close()
    assert await serving == 21
    assert server.stats().overloaded == 1


async def test_a_recv_that_times_out_never_loses_an_item() -> None:
    """Row 10: 10^4 rounds, the receive timeout about as long as a send takes."""
    rounds = 10_000
    client, server = boundary.channel(16)
    rng = random.Random(10)

    def send_all() -> None:
        replies = []
        for i in range(rounds):
            replies.append(client.try_call(i) if i % 50 else client.call_blocking(i, timeout=10))
            if rng.random() < 0.2:
                time.sleep(rng.random() * 0.0002)
            if len(replies) > 8:
                reply = replies.pop(0)
                if isinstance(reply, spargio.Ticket):
                    reply.result(timeout=10)
        client.close()

    sender = asyncio.create_task(asyncio.to_thread(send_all))
    received: list[int] = []
    timeouts = 0
    while True:
        try:
            request = await server.recv(timeout=rng.random() * 0.0002)
        except SpargioTimeout:
            timeouts += 1
            continue
        except ClosedError:
            break
        received.append(request.payload)
        request.respond(None)
    await sender
    assert sorted(received) == list(range(rounds))
    assert timeouts > 0, "the timeouts never raced the sends"


async def test_a_cancelled_call_leaves_the_queue_and_the_server_sees_cancelled_and_expired() -> None:
    client, server = boundary.channel(4)
    caller = asyncio.create_task(client.call("never seen"))
    await asyncio.sleep(0.01)
    assert server.stats().queued == 1
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert server.stats().queued == 0
    with pytest.raises(SpargioTimeout):
        await server.recv(timeout=0.01)

    caller = asyncio.create_task(client.call("seen", timeout=0.05))
    request = await server.recv(timeout=1)
    assert request.payload == "seen" and not request.cancelled and not request.expired
    assert request.deadline is not None
    with pytest.raises(SpargioTimeout):
        await caller
    assert request.cancelled and request.expired
    request.respond("too late")  # dropped quietly
    stats = server.stats()
    assert stats.cancelled == 2 and stats.timeouts == 1


async def test_closing_the_last_client_lets_the_server_drain_then_stop() -> None:
    client, server = boundary.channel(8)
    other = client.clone()
    replies = [client.try_call(f"m{i}") for i in range(5)]
    client.close()
    other.close()
    with pytest.raises(ClosedError):
        client.try_call("late")
    assert await _serve_upper(server) == 5
    assert [await r for r in replies] == _expected(5)
    with pytest.raises(ClosedError, match="every client"):
        await server.recv()


async def test_closing_the_server_fails_queued_and_new_calls() -> None:
    client, server = boundary.channel(8)
    queued = client.try_call("x")
    waiting_recv = asyncio.create_task(boundary.channel(1)[1].recv(timeout=5))
    server.close()
    with pytest.raises(ClosedError, match="closed before it took"):
        await queued
    with pytest.raises(ClosedError, match="server is closed"):
        await client.call("y")
    with pytest.raises(ClosedError):
        await server.recv()
    waiting_recv.cancel()
    with pytest.raises((asyncio.CancelledError, ClosedError)):
        await waiting_recv


async def test_a_request_dropped_without_an_answer_fails_its_caller() -> None:
    client, server = boundary.channel(2)
    caller = asyncio.create_task(client.call("ignored"))
    request: Any = await server.recv(timeout=1)
    with pytest.raises(RuntimeError, match="already answered"):
        request.respond(1)
        request.respond(2)
    caller2 = asyncio.create_task(client.call("dropped"))
    assert await caller == 1
    request = await server.recv(timeout=1)
    del request
    gc.collect()
    with pytest.raises(ClosedError, match="without answering"):
        await caller2


async def test_fail_raises_in_the_caller() -> None:
    client, server = boundary.channel(2)
    caller = asyncio.create_task(client.call("bad"))
    (await server.recv(timeout=1)).fail(KeyError("nope"))
    with pytest.raises(KeyError, match="nope"):
        await caller
    with pytest.raises(ValueError, match="capacity"):
        boundary.channel(0)


async def test_receivers_on_many_threads_and_loops_share_the_work(rt: spargio.Runtime) -> None:
    client, server = boundary.channel(4)
    servers = [rt.spawn(_serve_upper, server, placement=Pinned(i)) for i in range(4)]
    threads = [asyncio.create_task(asyncio.to_thread(_serve_upper_blocking, server)) for _ in range(2)]
    assert await _call_many(client, 400) == _expected(400)
    served = [await s for s in servers] + [await t for t in threads]
    assert sum(served) == 400


def test_a_plain_thread_try_call_blocks_on_result() -> None:
    client, server = boundary.channel(2)
    thread = threading.Thread(target=_serve_upper_blocking, args=(server,))
    thread.start()
    try:
        assert client.try_call("q").result(timeout=5) == "Q"
        assert client.call_blocking("r", timeout=5) == "R"
    finally:
        client.close()
        thread.join(5)


async def test_queued_calls_fail_when_the_last_receiving_shard_stops(shape: dict[str, Any]) -> None:
    """Issue 16 item 17: a server cancelled by aclose(drain=False) leaves nobody to receive."""
    client, server = boundary.channel(8)
    serving_started = threading.Event()

    async def serve_slowly() -> None:
        async for request in server:
            serving_started.set()
            await asyncio.sleep(30)  # busy with the first request when the runtime closes
            request.respond(request.payload)

    rt = await spargio.Runtime(shards=2, **shape).start()  # type: ignore[arg-type]
    serving = rt.spawn(serve_slowly, placement=Pinned(0))
    first = asyncio.ensure_future(client.call("first"))
    await asyncio.to_thread(serving_started.wait, 10)
    queued = asyncio.ensure_future(client.call("queued"))
    await asyncio.sleep(0.01)
    await rt.aclose(drain=False)
    async with asyncio.timeout(5):
        for call in (first, queued):
            with pytest.raises(ClosedError):
                await call
        with pytest.raises(ClosedError):
            await serving
        with pytest.raises(ClosedError):
            await client.call("after")
    client.close()


async def test_a_channel_received_on_the_service_loop_is_not_closed_by_a_stopping_shard(
    shape: dict[str, Any],
) -> None:
    client, server = boundary.channel(8)
    async with spargio.Runtime(shards=1, **shape) as rt:  # type: ignore[arg-type]
        shard_side = rt.spawn(server.try_recv)
        assert await shard_side is None  # a shard received (nothing) once
        assert server.try_recv() is None  # and so did the service loop
    call = asyncio.ensure_future(client.call("still served"))
    request = await server.recv(timeout=5)
    request.respond(request.payload)
    assert await call == "still served"
    client.close()
