"""Hot paths moved into the pool, against the same code left inline on the service loop and in
``asyncio.to_thread``: the shapes a service has when it asks "should this go to the shards?".

* ``boundary_hotpath_fs_qd8`` / ``_qd32``: 8 or 32 callers at once, each unit an async function that
  reads a 64 KiB file with ``spargio.fs.read_bytes`` (page cache) and ``zlib.crc32``s it.
* ``boundary_hotpath_sha256``: 8 callers, each unit a 256 KiB file read and hashed with sha256 (the
  GIL is released while hashing); as an async function (``spargio.fs``) and as a sync function.
* ``service_loop_lag_fs`` / ``service_loop_lag_sha256``: the p99 lateness of a 1 ms ticker on the
  service loop while the matching hot path runs at full rate (32 and 8 callers).  The value is the
  p99 lag in seconds (lower is better), not a rate.

Implementations: ``spargio`` (``boundary.call`` of the async function: it runs on a shard's loop and
reads through the shard's ring), ``spargio.sync`` (``boundary.call`` of the sync function),
``inline`` (the async function awaited on the service loop, reading through the loop's ring), and
``to_thread`` (the sync function, ``open``/``read``/hash, in ``asyncio.to_thread``).  spargio runs
2 shards on this 2-core machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fs_cases import run_on_fresh_loop

import spargio
from spargio import boundary

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

DATA = Path(__file__).resolve().parent / ".data"
SMALL_DIR = DATA / "hot64k"
LARGE_DIR = DATA / "hot256k"
N_FILES = 64
SHARDS = 2
LAG_SECONDS = 0.3  # how long one service_loop_lag value runs the hot path
TICK = 0.001

_small = [str(SMALL_DIR / f"{i:02d}") for i in range(N_FILES)]
_large = [str(LARGE_DIR / f"{i:02d}") for i in range(N_FILES)]


def prepare_data() -> None:
    """64 files of 64 KiB and 64 of 256 KiB, random content, read once into the page cache."""
    for folder, size, paths in ((SMALL_DIR, 64 << 10, _small), (LARGE_DIR, 256 << 10, _large)):
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            p = Path(path)
            if not p.exists() or p.stat().st_size != size:
                p.write_bytes(os.urandom(size))
            p.read_bytes()


async def crc_async(path: str) -> int:
    return zlib.crc32(await spargio.fs.read_bytes(path))


def crc_sync(path: str) -> int:
    with open(path, "rb") as f:
        return zlib.crc32(f.read())


async def sha_async(path: str) -> bytes:
    return hashlib.sha256(await spargio.fs.read_bytes(path)).digest()


def sha_sync(path: str) -> bytes:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()


@dataclass(frozen=True)
class HotCase:
    bench: str
    impl: str
    qd: int
    work: str  # "crc" or "sha"
    lag: bool = False

    @property
    def key(self) -> str:
        return f"{self.bench}/{self.impl}"


async def _unit(case: HotCase) -> tuple[Callable[[int], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """One unit of the case's work (given a counter), and how to tear it down."""
    paths = _small if case.work == "crc" else _large
    async_fn, sync_fn = (crc_async, crc_sync) if case.work == "crc" else (sha_async, sha_sync)
    mask = N_FILES - 1

    async def nothing() -> None:
        return None

    if case.impl.startswith("spargio"):
        rt = await spargio.Runtime(shards=SHARDS).start()
        fn: Any = sync_fn if case.impl == "spargio.sync" else async_fn
        return (lambda i: boundary.call(fn, paths[i & mask], runtime=rt)), rt.aclose
    if case.impl == "inline":
        return (lambda i: async_fn(paths[i & mask])), nothing
    if case.impl == "to_thread":
        return (lambda i: asyncio.to_thread(sync_fn, paths[i & mask])), nothing
    raise ValueError(case.impl)


async def _callers(one: Callable[[int], Awaitable[Any]], qd: int, per_caller: int | None, stop: list[bool]) -> int:
    done = 0

    async def caller(k: int) -> None:
        nonlocal done
        i = k
        n = 0
        while (per_caller is None and not stop) or (per_caller is not None and n < per_caller):
            await one(i)
            i += qd
            n += 1
        done += n

    await asyncio.gather(*(caller(k) for k in range(qd)))
    return done


async def _timed(case: HotCase, units: int) -> float:
    """Seconds per unit at the case's depth."""
    one, close = await _unit(case)
    try:
        await _callers(one, case.qd, 4, [])  # warm up: threads, rings, buffers
        per_caller = max(1, units // case.qd)
        t0 = time.perf_counter()
        await _callers(one, case.qd, per_caller, [])
        return (time.perf_counter() - t0) / (per_caller * case.qd)
    finally:
        await close()


async def _lag(case: HotCase) -> float:
    """The p99 lateness (seconds) of a 1 ms ticker while the hot path runs at full rate."""
    one, close = await _unit(case)
    try:
        await _callers(one, case.qd, 4, [])
        stop: list[bool] = []
        load = asyncio.ensure_future(_callers(one, case.qd, None, stop))
        lags: list[float] = []
        end = time.perf_counter() + LAG_SECONDS
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - t0 - TICK)
        stop.append(True)
        await load
        lags.sort()
        return max(0.0, lags[int(len(lags) * 0.99)])
    finally:
        await close()


def _cases() -> list[HotCase]:
    fs_impls = ("spargio", "inline", "to_thread")
    sha_impls = ("spargio", "spargio.sync", "inline", "to_thread")
    cases: list[HotCase] = []
    for qd in (8, 32):
        cases += [HotCase(f"boundary_hotpath_fs_qd{qd}", impl, qd, "crc") for impl in fs_impls]
    cases += [HotCase("boundary_hotpath_sha256", impl, 8, "sha") for impl in sha_impls]
    cases += [HotCase("service_loop_lag_fs", impl, 32, "crc", lag=True) for impl in fs_impls]
    cases += [HotCase("service_loop_lag_sha256", impl, 8, "sha", lag=True) for impl in sha_impls]
    return cases


CASES: dict[str, HotCase] = {case.key: case for case in _cases()}
LAG_BENCHES = frozenset(case.bench for case in CASES.values() if case.lag)


def run_case(key: str, loop_name: str, units: int) -> float:
    """Seconds per unit of ``key`` on a fresh loop; for the lag shapes, the p99 lag in seconds."""
    case = CASES[key]
    return run_on_fresh_loop(loop_name, _lag(case) if case.lag else _timed(case, units))
