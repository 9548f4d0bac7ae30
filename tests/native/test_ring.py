"""The Ring wrapper on its own, no event loop: tables, ids, bursts, ownership, shutdown."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from spargio.native import ring as native
from spargio.native.ring import Orphan, Ring

pytestmark = pytest.mark.io_uring  # the ring itself: nothing here runs on threads


class Collector:
    def __init__(self) -> None:
        self.results: dict[object, list[int]] = {}

    def __call__(self, entry: object, res: int) -> None:
        self.results.setdefault(entry, []).append(res)


def drain(ring: Ring) -> None:
    ring.flush()
    while ring.in_flight:
        ring.wait(1.0)
        ring.reap()


def test_user_data_only_grows_and_every_op_ends_once():
    sink = Collector()
    ring = Ring(64, sink)
    try:
        uds = [ring.prep_nop(i) for i in range(1000)]
        assert uds == sorted(set(uds)), "user_data must be unique and increasing"
        drain(ring)
        assert sink.results == {i: [0] for i in range(1000)}
        assert ring.ops_started == ring.ops_completed == 1000
        more = ring.prep_nop("again")
        assert more > uds[-1]
        drain(ring)
    finally:
        assert ring.close() == 0


@pytest.mark.parametrize("burst", [7, 100, 5000])
def test_tiny_ring_bursts_lose_and_duplicate_nothing(burst):
    """Row 22: an 8-entry SQ and 16-entry CQ under 10**5 ops: SQ-full and CQ overflow."""
    sink = Collector()
    ring = Ring(8, sink, cq_entries=16)
    try:
        total = 0
        while total < 100_000:
            for _ in range(burst):
                ring.prep_nop(total)
                total += 1
            ring.flush()
        drain(ring)
        assert len(sink.results) == total
        assert all(v == [0] for v in sink.results.values())
        assert ring.ops_started == ring.ops_completed
    finally:
        ring.close()


def test_reads_and_errors_map_to_oserror(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello world")
    fd = os.open(path, os.O_RDONLY)
    sink = Collector()
    ring = Ring(8, sink)
    try:
        buf = native.buffer(64)
        ring.prep_read(fd, buf, 64, 6, "read")
        ring.prep_read(-1, native.buffer(8), 8, 0, "badfd")
        drain(ring)
        assert sink.results["read"] == [5]
        assert native.buffer_bytes(buf, 5) == b"world"
        assert sink.results["badfd"] == [-errno.EBADF]
        exc = native.os_error(-errno.ENOENT, "x")
        assert isinstance(exc, FileNotFoundError) and exc.filename == "x"
    finally:
        os.close(fd)
        ring.close()


def test_cancelled_read_keeps_its_buffer_until_the_cqe():
    """The buffer of a cancelled op stays in the table until its own CQE arrives."""
    r, w = os.pipe()
    sink = Collector()
    ring = Ring(8, sink)
    try:
        buf = native.buffer(16)
        ud = ring.prep_read(r, buf, 16, -1, "read")
        ring.flush()
        assert ring.in_flight == 1
        seen: list[int] = []
        assert ring.cancel(ud, seen.append)
        assert not ring.cancel(ud), "cancelling twice is a no-op"
        assert ring._ops[ud][1] is buf, "buffer released before the CQE"
        drain(ring)
        assert seen == [-errno.ECANCELED]
        assert "read" not in sink.results, "an orphan's result must not reach the sink"
        assert ring.in_flight == 0
    finally:
        os.close(r)
        os.close(w)
        ring.close()


def test_only_the_owner_thread_may_touch_the_ring():
    """Row 30: a ring used from a foreign thread raises a clear RuntimeError."""
    ring = Ring(8, Collector())
    errors: list[BaseException] = []

    def intruder() -> None:
        for call in (lambda: ring.prep_nop("x"), ring.flush, ring.reap):
            try:
                call()
            except RuntimeError as exc:
                errors.append(exc)

    t = threading.Thread(target=intruder)
    t.start()
    t.join()
    assert len(errors) == 3
    assert "another thread" in str(errors[0])
    assert ring.in_flight == 0
    ring.close()


def test_close_cancels_in_flight_ops_and_waits_for_their_cqes():
    r, w = os.pipe()
    ring = Ring(8, Collector())
    try:
        for _ in range(4):
            ring.prep_read(r, native.buffer(8), 8, -1, "blocked")
        ring.flush()
        assert ring.in_flight == 4
        assert ring.close(timeout=5) == 0, "every op must end before the ring is destroyed"
        assert ring.closed
        with pytest.raises(RuntimeError):
            ring.prep_nop("after close")
    finally:
        os.close(r)
        os.close(w)


def test_orphan_entries_are_consumed_by_the_ring():
    got: list[int] = []
    ring = Ring(8, Collector())
    ring.prep_nop(Orphan(got.append))
    drain(ring)
    assert got == [0]
    ring.close()


def test_probe_knows_the_basic_opcodes():
    ring = Ring(8, Collector())
    try:
        for op in ("READ", "WRITE", "OPENAT", "STATX", "ASYNC_CANCEL"):
            assert ring.supports(op)
    finally:
        ring.close()
