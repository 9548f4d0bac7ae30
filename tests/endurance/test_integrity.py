"""RELIABILITY row 26 through the shard pool: 8 writers on shards, fsync, read back two ways.

Each writer is a coroutine function run by `spargio.boundary.call` on a shard
of a 2-shard pool; it opens the file on that shard (so its writes go through
the shard's own ring) and writes its 256 blocks twice, the second time with a
newer sequence number.  Then the file is fsynced and every block is read back
through ``spargio.fs`` on the service's loop and through ``os.pread``, and
checked: the offset it claims, its crc32, and the newest sequence.  Buffered
and O_DIRECT (where the filesystem allows it).
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest

import spargio
from spargio.testing import check_block, make_block

BLOCK = 4096
WRITERS, PER_WRITER = 8, 256


async def _writer_on_a_shard(path: str, k: int, blocks: list[int], flags: int) -> dict[int, int]:
    """Runs on a shard: write ``blocks`` twice through the shard's ring; return index -> newest seq."""
    assert spargio.current_shard() is not None
    rng = random.Random(k)
    newest: dict[int, int] = {}
    async with spargio.fs.open(path, "r+b", buffering=0, flags=flags) as f:
        buffer = spargio.fs.aligned_buffer(BLOCK) if flags & os.O_DIRECT else None
        for generation in range(2):
            for i, index in enumerate(blocks):
                seq = generation * 100_000 + k * 1000 + i
                data = make_block(index * BLOCK, seq, rng)
                if buffer is not None:
                    buffer[:] = data
                    data = buffer
                assert await f.write_at(index * BLOCK, data) == BLOCK
                newest[index] = seq
        await f.fsync()
    return newest


@pytest.mark.parametrize("direct", [False, True])
async def test_writers_on_shards_then_fsync_then_read_back(tmp_path, shape, direct):
    path = tmp_path / "integrity"
    n_blocks = WRITERS * PER_WRITER * 2  # half the blocks are never written: they must stay zero
    path.write_bytes(bytes(n_blocks * BLOCK))
    flags = os.O_DIRECT if direct else 0
    if direct:
        try:
            os.close(os.open(path, os.O_RDWR | os.O_DIRECT))
        except OSError as exc:
            pytest.skip(f"this filesystem refuses O_DIRECT: {exc}")
    order = list(range(n_blocks))
    random.Random(26).shuffle(order)
    spargio.configure(backend=shape["backend"])
    try:
        async with spargio.Runtime(shards=2, **shape) as rt:
            shares = [order[k * PER_WRITER : (k + 1) * PER_WRITER] for k in range(WRITERS)]
            results = await asyncio.gather(
                *(
                    spargio.boundary.call(_writer_on_a_shard, str(path), k, shares[k], flags, runtime=rt)
                    for k in range(WRITERS)
                )
            )
            assert sum(s.completed for s in rt.stats().shards) == WRITERS
        expected = {index: seq for newest in results for index, seq in newest.items()}
        assert len(expected) == WRITERS * PER_WRITER
        async with spargio.fs.open(path, "rb", buffering=0) as f:
            via_spargio = await spargio.fs.read_many([(f, i * BLOCK, BLOCK) for i in range(n_blocks)])
    finally:
        spargio.configure(backend="auto")
    fd = os.open(path, os.O_RDONLY)
    try:
        for index in range(n_blocks):
            raw = os.pread(fd, BLOCK, index * BLOCK)
            assert raw == via_spargio[index], f"spargio and pread disagree at block {index}"
            if index in expected:
                assert check_block(raw, index * BLOCK) == expected[index], f"stale block {index}"
            else:
                assert raw == bytes(BLOCK), f"block {index} was never written but is not zero"
    finally:
        os.close(fd)
