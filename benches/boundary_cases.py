"""The coordination shapes of shared/BENCHMARKS.md: a trivial call from the service's loop to another
thread and back, by spargio and by the anchors.

* ``boundary_call_rtt``: one call at a time (qd1) of a trivial sync function.
* ``boundary_call_qd32``: 32 callers at once.
* ``boundary_call_async_fn``: 32 callers at once, a trivial coroutine function.
* ``channel_recv_rtt``: request/response, one at a time, to a server on another thread.

Implementations: ``spargio`` (`spargio.boundary`, 2 shards), ``run_in_executor``
(a 2-thread ThreadPoolExecutor), ``run_coroutine_threadsafe`` (to a loop
running in a thread), ``janus`` (a request queue to a worker thread, a
response queue back, replies matched to callers' futures).  A unit is one
round trip.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fs_cases import run_on_fresh_loop

import spargio
from spargio import boundary

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

SHARDS = 2
QD = 32


def trivial(x: int) -> int:
    return x


async def trivial_async(x: int) -> int:
    return x


@dataclass(frozen=True)
class BoundaryCase:
    bench: str
    impl: str
    qd: int
    coroutine: bool = False

    @property
    def key(self) -> str:
        return f"{self.bench}/{self.impl}"


class _LoopThread:
    """An asyncio loop running in a thread (the run_coroutine_threadsafe anchor)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class _JanusWorker:
    """A worker thread fed by a janus queue, answering through another; callers await futures."""

    def __init__(self, fn: Callable[[int], int]) -> None:
        import janus

        self.requests: janus.Queue[tuple[int, int] | None] = janus.Queue()
        self.replies: janus.Queue[tuple[int, int]] = janus.Queue()
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.ids = itertools.count()
        self.fn = fn
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    def _serve(self) -> None:
        get, put = self.requests.sync_q.get, self.replies.sync_q.put
        while (item := get()) is not None:
            ident, arg = item
            put((ident, self.fn(arg)))

    async def _dispatch(self) -> None:
        get = self.replies.async_q.get
        while True:
            ident, value = await get()
            self.waiting.pop(ident).set_result(value)

    async def call(self, arg: int) -> int:
        ident = next(self.ids)
        future = self.waiting[ident] = asyncio.get_running_loop().create_future()
        await self.requests.async_q.put((ident, arg))
        return await future

    async def close(self) -> None:
        await self.requests.async_q.put(None)
        await asyncio.to_thread(self.thread.join)
        self.dispatcher.cancel()
        self.requests.close()
        self.replies.close()
        await self.requests.wait_closed()
        await self.replies.wait_closed()


async def _serve_channel(server: boundary.Server[int, int]) -> None:
    async for request in server:
        request.respond(request.payload)


async def _open(case: BoundaryCase) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]:
    """The case's one round trip, and how to tear it down."""
    loop = asyncio.get_running_loop()
    fn: Any = trivial_async if case.coroutine else trivial
    if case.impl == "spargio" and case.bench == "channel_recv_rtt":
        rt = await spargio.Runtime(shards=SHARDS).start()
        client, server = boundary.channel(64)
        serving = rt.spawn(_serve_channel, server)

        async def close_channel() -> None:
            client.close()
            await serving
            await rt.aclose()

        return lambda: client.call(1), close_channel
    if case.impl == "spargio":
        rt = await spargio.Runtime(shards=SHARDS).start()
        return lambda: boundary.call(fn, 1, runtime=rt), rt.aclose
    if case.impl == "run_in_executor":
        pool = ThreadPoolExecutor(SHARDS)

        async def close_pool() -> None:
            pool.shutdown()

        return lambda: loop.run_in_executor(pool, trivial, 1), close_pool
    if case.impl == "run_coroutine_threadsafe":
        other = _LoopThread()

        async def close_other() -> None:
            other.close()

        return (
            lambda: asyncio.wrap_future(asyncio.run_coroutine_threadsafe(trivial_async(1), other.loop)),
            close_other,
        )
    if case.impl == "janus":
        worker = _JanusWorker(trivial)
        return lambda: worker.call(1), worker.close
    raise ValueError(case.impl)


async def _timed(case: BoundaryCase, units: int) -> float:
    one, close = await _open(case)
    try:

        async def caller(n: int) -> None:
            for _ in range(n):
                await one()

        await asyncio.gather(*(caller(8) for _ in range(case.qd)))  # warm up: threads, rings
        per_caller = max(1, units // case.qd)
        t0 = time.perf_counter()
        await asyncio.gather(*(caller(per_caller) for _ in range(case.qd)))
        return (time.perf_counter() - t0) / (per_caller * case.qd)
    finally:
        await close()


def _cases() -> list[BoundaryCase]:
    cases = []
    for bench, qd in (("boundary_call_rtt", 1), ("boundary_call_qd32", QD)):
        cases += [BoundaryCase(bench, impl, qd) for impl in ("spargio", "run_in_executor", "janus")]
    cases += [
        BoundaryCase("boundary_call_async_fn", "spargio", QD, coroutine=True),
        BoundaryCase("boundary_call_async_fn", "run_coroutine_threadsafe", QD, coroutine=True),
        BoundaryCase("channel_recv_rtt", "spargio", 1),
        BoundaryCase("channel_recv_rtt", "janus", 1),
        BoundaryCase("channel_recv_rtt", "run_coroutine_threadsafe", 1),
    ]
    return cases


CASES: dict[str, BoundaryCase] = {case.key: case for case in _cases()}


def run_case(key: str, loop_name: str, units: int) -> float:
    """Seconds per round trip of ``key`` on a fresh ``loop_name`` loop (setup and teardown not timed)."""
    return run_on_fresh_loop(loop_name, _timed(CASES[key], units))
