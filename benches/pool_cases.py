"""Pool scheduling benchmarks: work stealing vs static placement vs a ThreadPoolExecutor.

The work releases the GIL (sha256 of large buffers; file reads, writes and
fsync), or the GIL would make every pool equal.  Each implementation runs
the same units of work from the service's loop (asyncio or uvloop):

* ``spargio``: a `spargio.Runtime`, default placement (`Stealable`: steered
  at submission, stolen by idle shards).
* ``spargio.round_robin``: the same runtime with `RoundRobin` placement
  (static, never stolen) — the policy alone, same machinery.
* ``static``: the thread-per-core shape without spargio: one asyncio loop per
  thread, work assigned round-robin (``call_soon_threadsafe``), never moved;
  results come back with ``call_soon_threadsafe``.
* ``thread_pool``: ``loop.run_in_executor`` on a ``ThreadPoolExecutor`` with
  as many workers as the pool has shards (one shared queue).

Shapes (names used by the README and results):

* ``fanout_fanin_balanced``: 64 requests at once, each fanning out 16 equal
  branches (sha256 of 128 KiB) and gathering them.  One unit = 64 requests.
* ``fanout_fanin_skewed``: the same, but one branch in 16 does 40x the work.
  With 16 branches and an even number of shards, round robin puts every
  heavy branch on the same shard: the case stealing exists for.
* ``pipeline_read_hash_write``: 64 items, each: read a 256 KiB file, sha256
  it, write the digest to a file and fsync it; 4 shards; half the items
  prefer one "hot" shard, which rotates every 16 items.  ``spargio`` does the
  I/O with ``spargio.fs`` on the shard's ring; ``spargio.blocking_io`` runs the
  anchors' blocking function on the shards (the scheduling alone).
* ``cold_start``: start the pool, 64 sequential round trips, close it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fs_cases import run_on_fresh_loop

import spargio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

DATA = Path(__file__).resolve().parent / ".data"
PIPE_IN = DATA / "pipe-in"
PIPE_OUT = DATA / "pipe-out"
BRANCH = 128 * 1024
HEAVY = 40
REQUESTS = 64
BRANCHES = 16
PIPE_ITEMS = 64
PIPE_FILE = 256 * 1024
PIPE_SHARDS = 4
_buffer = os.urandom(BRANCH * HEAVY)


def hash_work(units: int) -> bytes:
    """sha256 over ``units`` x 128 KiB (releases the GIL while it hashes)."""
    return hashlib.sha256(memoryview(_buffer)[: BRANCH * units]).digest()


def branch_units(branch: int, skewed: bool) -> int:
    return HEAVY if skewed and branch == 0 else 1


def prepare_data() -> None:
    PIPE_IN.mkdir(parents=True, exist_ok=True)
    PIPE_OUT.mkdir(parents=True, exist_ok=True)
    for i in range(PIPE_ITEMS):
        path = PIPE_IN / f"{i:03d}"
        if not path.exists() or path.stat().st_size != PIPE_FILE:
            path.write_bytes(os.urandom(PIPE_FILE))


def pipeline_sync(i: int) -> bytes:
    """Read, hash, write + fsync with blocking calls (static and thread-pool shapes)."""
    with open(PIPE_IN / f"{i:03d}", "rb") as f:
        digest = hashlib.sha256(f.read()).digest()
    fd = os.open(PIPE_OUT / f"{i:03d}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, digest)
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest


async def pipeline_native(i: int) -> bytes:
    """The same on a shard: spargio.fs on the shard's ring, sha256 on the shard's thread."""
    data = await spargio.fs.read_bytes(PIPE_IN / f"{i:03d}")
    digest = hashlib.sha256(data).digest()
    async with await spargio.fs.open(PIPE_OUT / f"{i:03d}", "wb") as f:
        await f.write(digest)
        await f.fsync()
    return digest


def hot_shard(i: int) -> int:
    """Half the items prefer the hot shard, which moves every 16 items; the rest spread."""
    return (i // 16) % PIPE_SHARDS if i % 2 == 0 else i % PIPE_SHARDS


# -- the pools ----------------------------------------------------------------


class StaticPool:
    """Thread per core without spargio: one asyncio loop per thread, round robin, never moved."""

    def __init__(self, n: int) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.threads: list[threading.Thread] = []
        self._next = 0
        for _ in range(n):
            ready = threading.Event()
            holder: list[asyncio.AbstractEventLoop] = []

            def run(holder: list[asyncio.AbstractEventLoop] = holder, ready: threading.Event = ready) -> None:
                loop = asyncio.new_event_loop()
                holder.append(loop)
                ready.set()
                loop.run_forever()
                loop.close()

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            ready.wait()
            self.loops.append(holder[0])
            self.threads.append(thread)

    def submit(self, fn: Callable[..., Any], *args: Any, shard: int | None = None) -> asyncio.Future[Any]:
        caller = asyncio.get_running_loop()
        fut = caller.create_future()
        if shard is None:
            shard = self._next
            self._next = (shard + 1) % len(self.loops)

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the caller
                caller.call_soon_threadsafe(_set_exception, fut, exc)
            else:
                caller.call_soon_threadsafe(_set_result, fut, result)

        self.loops[shard].call_soon_threadsafe(run)
        return fut

    def close(self) -> None:
        for loop in self.loops:
            loop.call_soon_threadsafe(loop.stop)
        for thread in self.threads:
            thread.join()


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


# -- the cases -------------------------------------------------------------------


@dataclass
class PoolCase:
    bench: str
    impl: str
    shards: int
    run: Callable[[Any, int], Awaitable[None]]  # (pool, units) -> None
    kind: str  # which pool: "spargio", "static", "thread_pool", or "cold"

    @property
    def key(self) -> str:
        return f"{self.bench}/{self.impl}"


def _fanout(skewed: bool, how: str) -> Callable[[Any, int], Awaitable[None]]:
    async def request(pool: Any) -> None:
        if how == "spargio":
            branches = [pool.spawn(hash_work, branch_units(b, skewed)) for b in range(BRANCHES)]
        elif how == "round_robin":
            rr = spargio.RoundRobin()
            branches = [pool.spawn(hash_work, branch_units(b, skewed), placement=rr) for b in range(BRANCHES)]
        elif how == "static":
            branches = [pool.submit(hash_work, branch_units(b, skewed)) for b in range(BRANCHES)]
        else:
            loop = asyncio.get_running_loop()
            branches = [loop.run_in_executor(pool, hash_work, branch_units(b, skewed)) for b in range(BRANCHES)]
        await asyncio.gather(*branches)

    async def run(pool: Any, units: int) -> None:
        for _ in range(units):
            await asyncio.gather(*(request(pool) for _ in range(REQUESTS)))

    return run


def _pipeline(how: str) -> Callable[[Any, int], Awaitable[None]]:
    async def run(pool: Any, units: int) -> None:
        for _ in range(units):
            if how in ("spargio", "spargio.blocking_io"):
                fn = pipeline_native if how == "spargio" else pipeline_sync
                items = [
                    pool.spawn(fn, i, placement=spargio.StealablePreferred(hot_shard(i))) for i in range(PIPE_ITEMS)
                ]
            elif how == "static":
                items = [pool.submit(pipeline_sync, i, shard=hot_shard(i)) for i in range(PIPE_ITEMS)]
            else:
                loop = asyncio.get_running_loop()
                items = [loop.run_in_executor(pool, pipeline_sync, i) for i in range(PIPE_ITEMS)]
            await asyncio.gather(*items)

    return run


def _cold(how: str, shards: int) -> Callable[[Any, int], Awaitable[None]]:
    async def run(_pool: Any, units: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(units):
            if how == "spargio":
                async with spargio.Runtime(shards=shards) as rt:
                    for _ in range(64):
                        await rt.spawn(int)
            elif how == "static":
                pool = StaticPool(shards)
                for _ in range(64):
                    await pool.submit(int)
                pool.close()
            else:
                executor = ThreadPoolExecutor(shards)
                for _ in range(64):
                    await loop.run_in_executor(executor, int)
                executor.shutdown()

    return run


def _cases() -> list[PoolCase]:
    n = len(os.sched_getaffinity(0))
    cases = []
    for bench, skewed in (("fanout_fanin_balanced", False), ("fanout_fanin_skewed", True)):
        cases += [
            PoolCase(bench, "spargio", n, _fanout(skewed, "spargio"), "spargio"),
            PoolCase(bench, "spargio.round_robin", n, _fanout(skewed, "round_robin"), "spargio"),
            PoolCase(bench, "static", n, _fanout(skewed, "static"), "static"),
            PoolCase(bench, "thread_pool", n, _fanout(skewed, "thread_pool"), "thread_pool"),
        ]
    bench = "pipeline_read_hash_write"
    cases += [
        PoolCase(bench, "spargio", PIPE_SHARDS, _pipeline("spargio"), "spargio"),
        PoolCase(bench, "spargio.blocking_io", PIPE_SHARDS, _pipeline("spargio.blocking_io"), "spargio"),
        PoolCase(bench, "static", PIPE_SHARDS, _pipeline("static"), "static"),
        PoolCase(bench, "thread_pool", PIPE_SHARDS, _pipeline("thread_pool"), "thread_pool"),
    ]
    cases += [
        PoolCase("cold_start", "spargio", n, _cold("spargio", n), "cold"),
        PoolCase("cold_start", "static", n, _cold("static", n), "cold"),
        PoolCase("cold_start", "thread_pool", n, _cold("thread_pool", n), "cold"),
    ]
    return cases


CASES: dict[str, PoolCase] = {case.key: case for case in _cases()}


def run_case(key: str, loop_name: str, units: int) -> float:
    """Seconds per unit of ``key`` on a fresh ``loop_name`` loop.

    Pool start and close are not timed, except in ``cold_start`` (which is about them).
    """
    import time

    case = CASES[key]

    async def timed() -> float:
        pool: Any = None
        if case.kind == "spargio":
            pool = await spargio.Runtime(shards=case.shards).start()
        elif case.kind == "static":
            pool = StaticPool(case.shards)
        elif case.kind == "thread_pool":
            pool = ThreadPoolExecutor(case.shards)
        try:
            await case.run(pool, 1)  # warm up: threads, rings, page cache
            t0 = time.perf_counter()
            await case.run(pool, units)
            return (time.perf_counter() - t0) / units
        finally:
            if case.kind == "spargio":
                await pool.aclose()
            elif case.kind == "static":
                pool.close()
            elif case.kind == "thread_pool":
                pool.shutdown()

    return run_on_fresh_loop(loop_name, timed())
