"""Short transfers, device errors and concurrent integrity (RELIABILITY rows 23, 24, 26)."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import threading
import time

import pytest

from spargio import fs
from spargio.testing import check_block, make_block


async def test_one_mib_into_a_slowly_read_pipe_is_written_whole():
    """Row 23: every byte arrives although the reader takes small sips."""
    r, w = os.pipe()
    payload = os.urandom(1 << 20)
    received = bytearray()

    def slow_reader() -> None:
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                return
            received.extend(chunk)
            if len(received) % (64 * 4096) == 0:
                time.sleep(0.001)

    t = threading.Thread(target=slow_reader)
    t.start()
    try:
        async with fs.open(w, "wb") as f:
            assert await f.write(payload) == len(payload)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, t.join)
        os.close(r)
    assert bytes(received) == payload


async def test_enospc_is_reported_by_the_write():
    """Row 24: /dev/full makes every write fail with ENOSPC; it must surface."""
    async with fs.open("/dev/full", "wb", buffering=0) as f:
        with pytest.raises(OSError) as info:
            await f.write(b"x" * 4096)
        assert info.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as info:
            await fs.write_many([(f, 0, b"y")])
        assert info.value.errno == errno.ENOSPC
    # Buffered (as io), a small write waits in the buffer; the flush reports ENOSPC,
    # and the bytes of a stream are dropped (written again they could go twice).
    f = await fs.open("/dev/full", "wb")
    assert await f.write(b"x" * 100) == 100
    with pytest.raises(OSError) as info:
        await f.flush()
    assert info.value.errno == errno.ENOSPC
    assert any("100 buffered bytes were dropped" in note for note in info.value.__notes__)
    await f.close()  # nothing pending any more: the close succeeds


BLOCK = 4096


@pytest.mark.parametrize("direct", [False, True])
async def test_concurrent_writers_then_fsync_then_read_back(tmp_path, direct):
    """Row 26: 8 tasks x 256 random 4 KiB blocks {offset, seq, crc32}; every block verified."""
    path = tmp_path / "integrity"
    n_blocks = 8 * 256
    path.write_bytes(bytes(n_blocks * BLOCK))
    try:
        f = await fs.open(path, "r+b", flags=os.O_DIRECT if direct else 0)
    except OSError as exc:
        pytest.skip(f"this filesystem refuses O_DIRECT: {exc}")
    expected: dict[int, int] = {}
    async with f:
        # Each writer owns 256 random blocks (concurrent writes to one block have no
        # defined winner); it writes them all, then rewrites them with a newer sequence.
        order = list(range(n_blocks))
        random.Random(1).shuffle(order)

        async def writer(k: int) -> None:
            rng = random.Random(k)
            mine = order[k * 256 : (k + 1) * 256]
            for generation in range(2):
                for i, index in enumerate(mine):
                    seq = generation * 100_000 + k * 1000 + i
                    await f.write_at(index * BLOCK, make_block(index * BLOCK, seq, rng))
                    expected[index] = seq

        await asyncio.gather(*(writer(k) for k in range(8)))
        await f.fsync()
        via_spargio = await fs.read_many([(f, i * BLOCK, BLOCK) for i in range(n_blocks)])
    fd = os.open(path, os.O_RDONLY)
    try:
        for index in range(n_blocks):
            raw = os.pread(fd, BLOCK, index * BLOCK)
            assert raw == via_spargio[index]
            if index in expected:
                assert check_block(raw, index * BLOCK) == expected[index]
            else:
                assert raw == bytes(BLOCK)
    finally:
        os.close(fd)
