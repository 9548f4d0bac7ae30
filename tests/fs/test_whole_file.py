"""Whole-file writes as one chain (`write_file`) and a file's last bytes with its close (`write_and_close`).

On io_uring ``fs.write_bytes`` is open -> write -> [fsync ->] close linked on a
direct descriptor, and ``AsyncFile.close`` with bytes pending is write -> close
linked; on threads each is one thread hop.  These check what the chains must
keep: the file's bytes, the errors of the step that failed, a write that comes
up short (a file size limit) written on to its real error, no fd and no slot
left behind after a cancel, and the op-by-op path when the slots run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import subprocess
import sys
import textwrap

import pytest

from spargio import fs
from spargio._backend import current_io
from spargio.testing import settle


def _open_fds() -> set[int]:
    current_io()  # the loop's ring (and its eventfd) exist before the first count
    return {int(name) for name in os.listdir("/proc/self/fd")}


def _free_slots() -> int | None:
    """Free direct-descriptor slots of the loop's ring (None: no ring, or no table yet)."""
    ring = getattr(current_io(), "ring", None)
    slots = None if ring is None else ring._file_slots
    return None if slots is None else len(slots)


async def test_write_bytes_writes_the_file_in_one_chain(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old contents that are longer")
    io = current_io()
    ring = getattr(io, "ring", None)
    submits = ring.submit_calls if ring is not None else 0
    assert await fs.write_bytes(path, b"new") == 3
    assert path.read_bytes() == b"new"
    if ring is not None:
        assert ring.submit_calls - submits <= 2  # one submission for the chain (and perhaps its reap)
        from spargio.native.ring import FILE_SLOTS

        assert _free_slots() == FILE_SLOTS
    assert await fs.write_bytes(path, b"", fsync=True) == 0
    assert path.read_bytes() == b""
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


async def test_more_concurrent_writes_than_slots_all_land(tmp_path):
    payloads = [os.urandom(100 + 37 * i) for i in range(200)]
    before = _open_fds()
    written = await asyncio.gather(
        *(fs.write_bytes(tmp_path / f"{i}", p, fsync=i % 3 == 0) for i, p in enumerate(payloads))
    )
    assert written == [len(p) for p in payloads]
    assert all((tmp_path / f"{i}").read_bytes() == p for i, p in enumerate(payloads))
    await settle()
    assert _open_fds() == before
    if _free_slots() is not None:
        from spargio.native.ring import FILE_SLOTS

        assert _free_slots() == FILE_SLOTS


@pytest.mark.parametrize("backend", ["io_uring"], indirect=True)  # (the thread backend has no slots)
async def test_with_every_slot_taken_write_bytes_goes_op_by_op(tmp_path):
    ring = current_io().ring  # type: ignore[union-attr]
    taken = []
    while (slot := ring.take_file_slot()) >= 0:
        taken.append(slot)
    try:
        assert await fs.write_bytes(tmp_path / "f", b"abc", fsync=True) == 3
        assert (tmp_path / "f").read_bytes() == b"abc"
    finally:
        for slot in taken:
            ring.give_file_slot(slot)


async def test_write_bytes_raises_the_error_of_the_step_that_failed(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        await fs.write_bytes(tmp_path / "missing" / "f", b"x")
    assert info.value.filename == str(tmp_path / "missing" / "f")
    with pytest.raises(IsADirectoryError):
        await fs.write_bytes(tmp_path, b"x")
    with pytest.raises(OSError) as info:  # /proc refuses this file's open or its write, as it chooses
        await fs.write_bytes("/proc/self/stat", b"x")
    assert info.value.errno in (5, 9, 13, 22)  # EIO, EBADF, EACCES, EINVAL
    if _free_slots() is not None:
        from spargio.native.ring import FILE_SLOTS

        assert _free_slots() == FILE_SLOTS


async def test_write_bytes_into_a_fifo_reaches_its_reader(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = asyncio.ensure_future(asyncio.to_thread(fifo.read_bytes))
    assert await fs.write_bytes(fifo, b"through the pipe") == 16
    assert await asyncio.wait_for(reader, 10) == b"through the pipe"


async def test_cancelled_write_bytes_leaves_no_fd_and_no_slot(tmp_path):
    big = os.urandom(4 << 20)
    before = _open_fds()
    outcomes = set()
    for delay in (0, 0, 0.0002, 0.001, 0.005):
        task = asyncio.ensure_future(fs.write_bytes(tmp_path / "f", big, fsync=True))
        await asyncio.sleep(delay)
        task.cancel()
        try:
            await task
            outcomes.add("done")
        except asyncio.CancelledError as exc:
            outcomes.add("cancelled")
            if (
                current_io().backend == "io_uring"
            ):  # (on threads, a write cancelled before its thread started did nothing)
                assert any("unknown" in note for note in getattr(exc, "__notes__", []))
    await settle()
    assert "cancelled" in outcomes
    assert _open_fds() == before
    if _free_slots() is not None:
        from spargio.native.ring import FILE_SLOTS

        assert _free_slots() == FILE_SLOTS


async def test_cancelled_atomic_write_removes_its_temporary_file_once_the_chain_ends(tmp_path):
    path = tmp_path / "kept"
    path.write_bytes(b"old")
    for delay in (0, 0, 0.0001, 0.0005):
        task = asyncio.ensure_future(fs.write_bytes(path, b"new" * 1000, atomic=True, fsync=True))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert path.read_bytes() in (b"old", b"new" * 1000)  # (a rename in flight may still land)
        path.write_bytes(b"old")
        await settle()
        assert os.listdir(tmp_path) == ["kept"]


async def test_close_with_pending_bytes_writes_them_and_closes(tmp_path):
    path = tmp_path / "f"
    before = _open_fds()
    async with fs.open(path, "wb") as f:
        await f.write(b"head ")
        await f.write(b"tail")
    assert path.read_bytes() == b"head tail"
    async with fs.open(path, "ab") as f:
        await f.write(b" more")
    assert path.read_bytes() == b"head tail more"
    f = await fs.open(path, "r+b")
    await f.seek(5)
    await f.write(b"TAIL")
    await f.close()
    assert path.read_bytes() == b"head TAIL more"
    await settle()
    assert _open_fds() == before


async def test_close_with_pending_bytes_on_a_pipe(pipe):
    r, w = pipe
    f = await fs.open(os.dup(w), "wb")
    await f.write(b"into the pipe")
    await f.close()
    os.close(w)
    assert os.read(r, 100) == b"into the pipe"


async def test_a_cancelled_close_with_pending_bytes_still_closes_the_fd(tmp_path):
    before = _open_fds()
    for delay in (0, 0.0001, 0.001):
        f = await fs.open(tmp_path / "f", "wb", buffering=1 << 20)
        await f.write(os.urandom(512 << 10))
        closing = asyncio.ensure_future(f.close())
        await asyncio.sleep(delay)
        closing.cancel()
        try:
            await closing
        except asyncio.CancelledError:
            pass
        assert f.closed
    await settle()
    assert _open_fds() == before


_FILE_SIZE_LIMIT = """
import asyncio, os, resource, signal, sys
os.environ["SPARGIO_BACKEND"] = {backend!r}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
from spargio import fs

async def main():
    path = {path!r}
    try:
        await fs.write_bytes(path, b"x" * 25_000)
    except OSError as exc:
        print("write_bytes", exc.errno, os.path.getsize(path))
    f = await fs.open(path + ".2", "wb", buffering=50_000)
    await f.write(b"y" * 25_000)
    try:
        await f.close()
    except OSError as exc:
        print("close", exc.errno, os.path.getsize(path + ".2"), f.closed)
    print("fds", len(os.listdir("/proc/self/fd")))

asyncio.run(main())
"""


def test_a_write_cut_short_by_the_file_size_limit_is_written_on_to_its_error(tmp_path, backend):
    """RLIMIT_FSIZE makes the chain's write come up short (10,000 of 25,000 bytes): the rest is
    written on, and the error is the one the next write gives (EFBIG), as with the os module."""
    script = _FILE_SIZE_LIMIT.format(backend=backend, path=str(tmp_path / "f"))
    out = subprocess.run(  # -P, from tmp_path: the spargio this suite tests (in CI the installed one)
        [sys.executable, "-P", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "write_bytes 27 10000"  # EFBIG, and the file holds what the limit let in
    assert lines[1] == "close 27 10000 True"


async def test_a_burst_of_fsync_chains_then_buffered_closes_all_complete(tmp_path):
    """The shape that stalled a shard waiting in io_uring_enter (see spargio._loop_ring, item 6):
    150 fsync'd chains at once, then files closed with bytes pending, one after another."""
    async with asyncio.timeout(30):
        await asyncio.gather(*(fs.write_bytes(tmp_path / f"{n}", b"x" * 60, fsync=True) for n in range(150)))
        for n in range(20):
            async with fs.open(tmp_path / f"{n}.buffered", "wb") as f:
                await f.write(b"y" * 60)
    assert all((tmp_path / f"{n}.buffered").read_bytes() == b"y" * 60 for n in range(20))


# -- buffered bytes of streams and append files go exactly once -----------------------------


async def _cancel_after(coro, delay: float) -> bool:
    """Run ``coro``, cancel it after ``delay`` seconds; True if the cancel landed."""
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(delay)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


async def test_a_cancelled_flush_of_an_append_file_still_writes_its_bytes_once(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"start\n")
    landed = 0
    async with fs.open(path, "ab") as f:
        for i, delay in enumerate((0, 0, 0.0001, 0.001, 0)):
            await f.write(b"line %d\n" % i)
            landed += await _cancel_after(f.flush(), delay)
            assert await f.tell() == path.stat().st_size  # the next call waited for the write
    assert path.read_bytes() == b"start\n" + b"".join(b"line %d\n" % i for i in range(5))
    assert landed  # (at least one cancel reached a flush in flight)


async def test_a_cancelled_close_of_an_append_file_writes_its_bytes_once_then_closes(tmp_path):
    path = tmp_path / "log"
    before = _open_fds()
    expected = b""
    for i, delay in enumerate((0, 0, 0.0001, 0.001)):
        f = await fs.open(path, "ab")
        await f.write(b"entry %d\n" % i)
        expected += b"entry %d\n" % i
        await _cancel_after(f.close(), delay)
        assert f.closed
        await settle()
        assert path.read_bytes() == expected
    assert _open_fds() == before


def _fill(w: int) -> None:
    """Fill the pipe whose write end is ``w``, so that the next write waits for its reader."""
    os.set_blocking(w, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(w, b"x" * 65536)
    os.set_blocking(w, True)


async def test_a_cancelled_flush_into_a_full_pipe_goes_on_and_its_error_comes_next(pipe):
    """The pipe is full, so the flush's write waits; cancelled, it goes on in the background.
    Once the reader has gone the write fails (EPIPE), and the file's next call says so."""
    r, w = pipe
    _fill(w)
    f = await fs.open(os.dup(w), "wb")
    await f.write(b"y" * 1000)
    assert await _cancel_after(f.flush(), 0.01)
    os.close(r)
    with pytest.raises(BrokenPipeError):
        await asyncio.wait_for(f.flush(), 10)
    await f.close()
    os.close(w)


async def test_a_cancelled_flush_of_a_pipe_delivers_each_byte_once(pipe):
    r, w = pipe
    f = await fs.open(os.dup(w), "wb")
    sent = b""
    for i, delay in enumerate((0, 0, 0.0001, 0.001)):
        chunk = b"chunk %d;" % i
        await f.write(chunk)
        sent += chunk
        await _cancel_after(f.flush(), delay)
    await f.close()
    os.close(w)
    received = b""
    while data := os.read(r, 65536):
        received += data
    assert received == sent


async def test_a_file_dropped_while_its_buffered_write_goes_on_closes_its_fd_after_it(pipe):
    r, w = pipe
    _fill(w)
    f = await fs.open(os.dup(w), "wb")
    fd = f.fileno()
    await f.write(b"y" * 1000)
    assert await _cancel_after(f.flush(), 0.01)
    del f
    gc.collect()
    os.fstat(fd)  # still open: the write that goes on names it
    received = b""
    while not received.endswith(b"y" * 1000):
        received += await asyncio.to_thread(os.read, r, 1 << 20)
    await settle()
    await asyncio.sleep(0.05)  # the write's task ends, then its done callback closes the fd
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF
