"""RELIABILITY row 28, shortened: 10^5 file ops + 10^4 boundary calls, a sample every 10^4 ops.

The same engine and the same verdict as ``make soak`` (10^6 + 10^5): RSS
growth under 20 MB after the warm-up sample, constant threads and fds, and
no more than a 30% fall in throughput from the first samples to the last
(a run that looks decayed goes on for as long again, and only a decay that
lasts counts: see ``soak.judged_soak``).
"""

from __future__ import annotations

import os

import pytest
import soak

import spargio


@pytest.mark.timeout(180)
async def test_soak_keeps_memory_threads_fds_and_throughput_steady(tmp_path, shape):
    path = tmp_path / "soak.bin"
    path.write_bytes(bytes(soak.FILE_BLOCKS * soak.BLOCK))
    spargio.configure(backend=shape["backend"])
    try:
        async with spargio.Runtime(shards=2, **shape) as rt:
            samples = await soak.judged_soak(str(path), file_ops=100_000, calls=10_000, sample_every=10_000, runtime=rt)
    finally:
        spargio.configure(backend="auto")
    print(soak.table(samples))
    assert len(samples) in (11, 22)
    assert soak.problems(samples) == [], soak.table(samples)


def test_the_verdict_catches_each_kind_of_drift():
    steady = [soak.Sample(ops=i * 10, rate=1000.0, rss_mb=50.0, threads=5, fds=9) for i in range(1, 12)]
    assert soak.problems(steady) == []
    grown = [*steady[:-1], soak.Sample(ops=110, rate=1000.0, rss_mb=71.0, threads=5, fds=9)]
    assert "RSS grew 21.0 MB" in soak.problems(grown)[0]
    leaked = [*steady[:-1], soak.Sample(ops=110, rate=1000.0, rss_mb=50.0, threads=5, fds=10)]
    assert "fd count drifted" in soak.problems(leaked)[0]
    spawned = [*steady[:-1], soak.Sample(ops=110, rate=1000.0, rss_mb=50.0, threads=6, fds=9)]
    assert "thread count drifted" in soak.problems(spawned)[0]
    slowed = [*steady[:8], *(soak.Sample(ops=i, rate=650.0, rss_mb=50.0, threads=5, fds=9) for i in range(3))]
    assert "throughput decayed 35%" in soak.problems(slowed)[0]


async def test_the_soak_itself_notices_a_leak(tmp_path, monkeypatch):
    """Break the invariant on purpose: a boundary call that leaks an fd each time is caught by the fd check."""
    path = tmp_path / "soak.bin"
    path.write_bytes(bytes(soak.FILE_BLOCKS * soak.BLOCK))
    leaked: list[int] = []
    real_checksum = soak._checksum

    def leaky_checksum(block: bytes) -> int:
        leaked.append(os.dup(0))
        return real_checksum(block)

    monkeypatch.setattr(soak, "_checksum", leaky_checksum)
    try:
        async with spargio.Runtime(shards=2) as rt:
            samples = await soak.soak(str(path), file_ops=20_000, calls=2_000, sample_every=2_000, runtime=rt)
    finally:
        for fd in leaked:
            os.close(fd)
    assert any("fd count drifted" in p for p in soak.problems(samples))


async def test_a_decay_that_lasts_is_not_taken_for_noise(tmp_path, monkeypatch):
    """Break the invariant on purpose: a boundary fn whose cost grows with every call (an O(n) scan of
    a list that is never trimmed) slows the soak for good, and the second run confirms it."""
    path = tmp_path / "soak.bin"
    path.write_bytes(bytes(soak.FILE_BLOCKS * soak.BLOCK))
    history: list[int] = []

    def growing_checksum(block: bytes) -> int:
        history.append(len(block))
        total = 0
        for _ in range(4):  # the O(n) scan four times: its slow-down outgrows a loaded machine's noise
            total = sum(history)
        return total

    monkeypatch.setattr(soak, "_checksum", growing_checksum)
    async with spargio.Runtime(shards=2) as rt:
        samples = await soak.judged_soak(str(path), file_ops=1_000, calls=10_000, sample_every=1_100, runtime=rt)
    assert len(samples) == 20, "the first run looked decayed, so it went on for as long again"
    assert any("throughput decayed" in p for p in soak.problems(samples)), soak.table(samples)
