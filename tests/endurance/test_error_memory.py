"""RELIABILITY row 29: 10^5 failing ops leave no memory behind once gc.collect() has run.

EBADF reads, ENOENT opens, and boundary calls of a function that raises,
each caught by the caller the way services do.  An exception whose
traceback pins a frame (and the frame its buffers) in a cycle would keep
~1 KiB or more per op: 10^5 ops would show as 100 MB; the limit is 1 MB.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

import spargio
from spargio._backend import current_io

OPS = 100_000
WARMUP = 5_000
LIMIT = 1 << 20


class Refused(Exception):
    pass


def _refuse(n: int) -> None:
    raise Refused(n)


async def _fail_once(i: int, missing: str, rt: spargio.Runtime) -> None:
    kind = i % 3
    try:
        if kind == 0:
            await spargio.fs.read_bytes(missing)
        elif kind == 1:
            await current_io().read(-1, 4096, 0)  # EBADF from the ring (or the thread backend's pread)
        else:
            await spargio.boundary.call(_refuse, i, runtime=rt)
    except (OSError, Refused):
        return
    raise AssertionError(f"op {i} (kind {kind}) did not fail")


@pytest.mark.timeout(300)
async def test_failing_ops_leave_no_growth_after_gc(tmp_path, shape):
    spargio.configure(backend=shape["backend"])
    missing = str(tmp_path / "missing")
    try:
        async with spargio.Runtime(shards=2, **shape) as rt:
            for i in range(WARMUP):
                await _fail_once(i, missing, rt)
            gc.collect()
            tracemalloc.start(1)
            try:
                before = tracemalloc.take_snapshot()
                for i in range(OPS):
                    await _fail_once(i, missing, rt)
                gc.collect()
                after = tracemalloc.take_snapshot()
            finally:
                tracemalloc.stop()
    finally:
        spargio.configure(backend="auto")
    growth = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in growth)
    top = "\n".join(str(stat) for stat in growth[:8])
    assert total < LIMIT, f"{total / 2**20:.1f} MB still held after {OPS} failing ops:\n{top}"
    assert gc.garbage == []
