"""Random reads, writes, truncates, fsyncs and cancellations must agree with os on a twin file."""

from __future__ import annotations

import asyncio
import os
import tempfile

import pytest
import uvloop
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from spargio import fs
from spargio.testing import settle

OFFSETS = st.integers(min_value=0, max_value=20_000)
SIZES = st.integers(min_value=0, max_value=9_000)


class TwinFile(RuleBasedStateMachine):
    loop_factory = staticmethod(asyncio.new_event_loop)

    @initialize()
    def setup(self) -> None:
        self.loop = self.loop_factory()
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "subject")
        self.twin_path = os.path.join(self.dir, "twin")
        open(self.path, "wb").close()
        self.twin = os.open(self.twin_path, os.O_RDWR | os.O_CREAT)
        self.f = self.run(fs.open(self.path, "r+b"))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def run_cancelled(self, coro, steps):
        """Start ``coro``, let the loop run ``steps`` iterations, cancel it, settle.

        Returns its result if it finished before the cancel arrived, else None.
        """

        async def go():
            task = asyncio.ensure_future(coro)
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                result = await task
            except asyncio.CancelledError:
                result = None
            await settle()
            return result

        return self.run(go())

    @rule(offset=OFFSETS, data=st.binary(max_size=6000))
    def write_at(self, offset, data):
        assert self.run(self.f.write_at(offset, data)) == len(data)
        os.pwrite(self.twin, data, offset)

    @rule(offset=OFFSETS, size=SIZES)
    def read_at(self, offset, size):
        assert self.run(self.f.read_at(offset, size)) == os.pread(self.twin, size, offset)

    @rule(size=st.integers(min_value=0, max_value=25_000))
    def truncate(self, size):
        self.run(self.f.truncate(size))
        os.ftruncate(self.twin, size)

    @rule(datasync=st.booleans())
    def sync(self, datasync):
        self.run(self.f.fdatasync() if datasync else self.f.fsync())

    @rule(offset=OFFSETS, size=SIZES, steps=st.integers(min_value=0, max_value=3))
    def cancelled_read(self, offset, size, steps):
        data = self.run_cancelled(self.f.read_at(offset, size), steps)
        if data is not None:
            assert data == os.pread(self.twin, size, offset)

    @rule(offset=OFFSETS, data=st.binary(min_size=1, max_size=6000), steps=st.integers(min_value=0, max_value=3))
    def cancelled_write(self, offset, data, steps):
        """A cancelled write's outcome is unknown: the region holds the old bytes or the new ones."""
        before = os.pread(self.twin, len(data), offset)
        size_before = os.fstat(self.twin).st_size

        self.run_cancelled(self.f.write_at(offset, data), steps)
        now = self.run(self.f.read_at(offset, len(data)))
        if now == data:
            os.pwrite(self.twin, data, offset)
        else:
            assert now == before and os.fstat(self.f.fileno()).st_size == size_before

    @invariant()
    def same_size(self):
        if hasattr(self, "f"):
            assert os.fstat(self.f.fileno()).st_size == os.fstat(self.twin).st_size

    def teardown(self):
        if hasattr(self, "f"):
            self.run(self.f.close())
            os.close(self.twin)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            os.unlink(self.path)
            os.unlink(self.twin_path)
            os.rmdir(self.dir)


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_spargio_agrees_with_os_on_a_twin_file(loop_name, backend):
    class Machine(TwinFile):
        loop_factory = staticmethod(asyncio.new_event_loop if loop_name == "asyncio" else uvloop.new_event_loop)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=40 if backend == "io_uring" else 15,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
