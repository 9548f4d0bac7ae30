"""The soak (RELIABILITY row 28): small file ops and boundary calls for a long time, sampled.

256 workers on the service's loop do 4 KiB reads and writes at random
offsets of one file through ``spargio.fs``; a tenth as many ops again are
``spargio.boundary.call``s of a small function in the shard pool, mixed in
at random so the mix stays the same from start to end.  Every
``sample_every`` ops it records throughput, RSS, threads and fds.  The run
fails if, after the first (warm-up) sample,

* RSS grows by more than 20 MB,
* the thread count or the fd count changes, or
* the median throughput of the last tenth of the samples (at least three)
  is more than 30% below that of the first tenth.

The machines are shared and noisy: another tenant can hold throughput down
by a third for seconds at a time, which in a short run looks like decay.  So
a run that looks decayed goes on for as long again on the same loop and
runtime (`judged_soak`), and the verdict compares the first run's start with
the second run's end: a decay from spargio (a growing table, a leak) lasts and
deepens; noise passes.

``make soak`` runs the full size (10^6 file ops + 10^5 calls, a sample every
10^5 ops) on asyncio and uvloop, io_uring and threads, and prints each run's
samples as a table; the test suite runs a tenth of it
(tests/endurance/test_soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, replace
from typing import Any, Literal

import spargio

BLOCK = 4096
FILE_BLOCKS = 4096  # a 16 MiB file
RSS_LIMIT_MB = 20.0
DECAY_LIMIT = 0.30


@dataclass(frozen=True)
class Sample:
    ops: int  # total ops done when the sample was taken
    rate: float  # ops/s since the previous sample
    rss_mb: float
    threads: int
    fds: int


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def thread_count() -> int:
    """This process's threads, not counting the kernel's io-wq workers (the kernel starts and
    retires those on its own; spargio does not own them)."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                count += not f.read().startswith("iou-")
        except FileNotFoundError:  # exited meanwhile
            pass
    return count


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _checksum(block: bytes) -> int:
    return zlib.crc32(block)


async def soak(
    path: str,
    *,
    file_ops: int,
    calls: int,
    sample_every: int,
    concurrency: int = 256,
    runtime: spargio.Runtime,
    seed: int = 28,
) -> list[Sample]:
    """Run the soak on the running loop; return one sample per ``sample_every`` ops."""
    total = file_ops + calls
    call_share = calls / total
    samples: list[Sample] = []
    done = 0
    last = time.perf_counter()
    rng = random.Random(seed)
    payload = rng.randbytes(BLOCK)

    def count() -> None:
        nonlocal done, last
        done += 1
        if done % sample_every == 0:
            now = time.perf_counter()
            samples.append(Sample(done, sample_every / (now - last), rss_mb(), thread_count(), fd_count()))
            last = now

    async with spargio.fs.open(path, "r+b", buffering=0) as f:

        async def worker(k: int) -> None:
            local = random.Random(seed * 1000 + k)
            while done < total:
                roll = local.random()
                offset = local.randrange(FILE_BLOCKS) * BLOCK
                if roll < call_share:
                    await spargio.boundary.call(_checksum, payload, runtime=runtime)
                elif roll < (1 + call_share) / 2:
                    data = await f.read_at(offset, BLOCK)
                    if len(data) != BLOCK:
                        raise AssertionError(f"short read at {offset}: {len(data)}")
                else:
                    await f.write_at(offset, payload)
                count()

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return samples


async def judged_soak(path: str, **options: Any) -> list[Sample]:
    """`soak`, continued for as long again if its throughput looks decayed (see the module's docstring)."""
    samples = await soak(path, **options)
    if _decay(samples) is None:
        return samples
    more = await soak(path, **options)
    return samples + [replace(s, ops=s.ops + samples[-1].ops) for s in more]


def _decay(samples: list[Sample]) -> str | None:
    """Why the throughput after warm-up counts as decayed, or None."""
    rest = samples[1:]
    tenth = max(3, len(rest) // 10)
    first = statistics.median(s.rate for s in rest[:tenth])
    final = statistics.median(s.rate for s in rest[-tenth:])
    if final < (1 - DECAY_LIMIT) * first:
        return f"throughput decayed {1 - final / first:.0%}: {first:,.0f} -> {final:,.0f} ops/s"
    return None


def problems(samples: list[Sample]) -> list[str]:
    """What the samples after the first (warm-up) one say is wrong; empty if nothing."""
    if len(samples) < 4:
        return [f"too few samples to judge ({len(samples)})"]
    base, rest = samples[0], samples[1:]
    found = []
    growth = max(s.rss_mb for s in rest) - base.rss_mb
    if growth > RSS_LIMIT_MB:
        found.append(f"RSS grew {growth:.1f} MB after warm-up (limit {RSS_LIMIT_MB:g} MB)")
    if any(s.threads != base.threads for s in rest):
        found.append(f"thread count drifted: {[s.threads for s in samples]}")
    if any(s.fds != base.fds for s in rest):
        found.append(f"fd count drifted: {[s.fds for s in samples]}")
    if decay := _decay(samples):
        found.append(decay)
    return found


def table(samples: list[Sample]) -> str:
    lines = ["      ops     ops/s   RSS MB  threads  fds"]
    for s in samples:
        lines.append(f"{s.ops:>9,} {s.rate:>9,.0f} {s.rss_mb:>8.1f} {s.threads:>8} {s.fds:>4}")
    return "\n".join(lines)


def run_one(
    loop_name: str, backend: Literal["io_uring", "threads"], *, file_ops: int, calls: int, sample_every: int
) -> list[Sample]:
    """One soak on a fresh loop of ``loop_name`` with a 2-shard runtime, both on ``backend``."""
    import uvloop

    spargio.configure(backend=backend)  # loops made from now on
    factory = uvloop.new_event_loop if loop_name == "uvloop" else asyncio.new_event_loop

    async def main() -> list[Sample]:
        with tempfile.NamedTemporaryFile(prefix="spargio-soak-") as tmp:
            tmp.write(bytes(FILE_BLOCKS * BLOCK))
            tmp.flush()
            async with spargio.Runtime(shards=2, backend=backend) as rt:
                return await judged_soak(
                    tmp.name, file_ops=file_ops, calls=calls, sample_every=sample_every, runtime=rt
                )

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main())
    finally:
        spargio.configure(backend="auto")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file-ops", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--sample-every", type=int, default=100_000)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--backends", default="io_uring,threads")
    args = parser.parse_args(argv)
    failed = False
    for backend in args.backends.split(","):
        for loop_name in args.loops.split(","):
            print(
                f"\n== {loop_name}, {backend}: {args.file_ops:,} file ops + {args.calls:,} boundary calls", flush=True
            )
            started = time.perf_counter()
            samples = run_one(
                loop_name, backend, file_ops=args.file_ops, calls=args.calls, sample_every=args.sample_every
            )
            print(table(samples))
            found = problems(samples)
            verdict = "FAILED: " + "; ".join(found) if found else "ok"
            print(f"{verdict}  ({time.perf_counter() - started:.0f} s)", flush=True)
            failed = failed or bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
