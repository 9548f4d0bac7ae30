"""The loop ring: native file I/O on the running event loop's own io_uring.

Theory of operation
-------------------
Each event loop (asyncio's or uvloop's) that uses spargio gets one `LoopRing`,
created on first use by `spargio._backend.current_io`.  No thread is involved:

1. An op (``await io.read(...)``) preps an SQE on the ring, books a future
   under a fresh user_data, and, if none is pending, schedules one
   ``flush`` with ``loop.call_soon``.  Everything queued during the same loop
   iteration therefore goes to the kernel in one ``io_uring_submit``.
2. ``flush`` submits, then reaps at once whatever the kernel completed inline
   (page-cache reads usually are) with the ring's eventfd switched off, so
   those completions never cost an eventfd wakeup.  Futures are resolved there;
   the awaiting task resumes on the following iteration.  Because every op
   resolves through the loop, a coroutine awaiting op after op always yields:
   a loop of 10**5 cached reads cannot starve other tasks.
3. Ops the kernel finishes later (disk reads, pipes, fsync) post a CQE that
   makes the eventfd readable; ``loop.add_reader`` calls ``_on_eventfd``,
   which drains the eventfd and reaps in one C call.
4. Cancellation: when the awaiting task is cancelled (``task.cancel()``,
   ``asyncio.timeout``, ``wait_for``), the op's entry is orphaned and
   IORING_OP_ASYNC_CANCEL is queued.  The op's buffer stays referenced by the
   ring until its CQE arrives (see `spargio.native.ring`).  A cancelled open
   whose fd arrives anyway has that fd closed.
5. Sockets (`spargio.net`): an op that wants every CQE and its flags
   (multishot accept and recv, sends) takes a `completion(fn)` entry.  On
   the loop's own ring ``fn`` runs inside the flush or reap, which are loop
   callbacks already; on a shard's shared ring it is deferred with
   ``call_soon`` (the CQE is reaped inside the selector's ``select``, where
   protocol code must not run).  ``at_flush(fn)`` runs ``fn`` just before
   the next submit, after every callback of this iteration: a transport
   gathers the iteration's writes there into one send.
6. Linked ops: ``write_file`` (a whole-file write: open -> write -> [fsync
   ->] close on a direct descriptor from the ring's file table) and
   ``write_and_close`` (a file's last buffered bytes and its close) go to the
   kernel as one linked chain, so the trip to io-wq that the open or the
   buffered write takes anyway (ext4 has no non-blocking buffered writes)
   carries the rest along: one wakeup instead of one per op.  Their entries
   are `Completion`s, which a cancel does not orphan, so a chain whose caller
   left still ends, and frees its slot or closes its fd, when the kernel is
   done.  On a shard's shared ring they run op by op: there, right after a
   burst of fsync'd chains, a plain open was seen to sit in io-wq with its
   workers idle (1 run in 3) until the next op touched the queue (a cancel,
   seconds later); a bounded wait did not rescue it, so it is no lost
   wakeup.  The loop ring never showed it (29 runs of the same shape,
   tests/fs/test_whole_file.py), nor did shards op by op.
7. Shutdown: the ring registers an async generator with the loop, so
   ``loop.shutdown_asyncgens()`` (run by ``asyncio.run``, ``asyncio.Runner``,
   ``uvloop.run`` and pytest-asyncio) closes the ring while the loop is still
   alive: in-flight ops are cancelled and their CQEs awaited before the ring
   is destroyed.  A loop dropped without that step closes its ring when it is
   garbage collected (``weakref.finalize``), and interpreter exit closes the rest.

Only the loop's thread may use the ring; another thread gets `RuntimeError`.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import ctypes
import errno
import functools
import os
import stat
import weakref
from typing import TYPE_CHECKING, Any

from . import _limits
from ._blocking import PoolCalls
from ._errors import WRITE_CANCEL_NOTE, ClosedError
from ._limits import READ_GUESS
from .native import ring as _native
from .native.ring import Orphan, Ring, os_error

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Sequence

    from typing_extensions import Buffer as BufferLike

__all__ = ["LoopRing"]

_Future = asyncio.Future
_POOLED_SIZE = 4096  # reads up to this size reuse buffers from a per-ring pool
_POOL_MAX = 64
_FLUSH_ROUNDS = 4  # submit+reap rounds per flush callback while completions queue more work
_alloc = _native.raw_allocator
_unpack = _native.ffi.unpack


class _Batch:
    """Completion state of a read_many/write_many: one future for N ops."""

    __slots__ = ("future", "remaining", "results")

    def __init__(self, future: asyncio.Future[list[int]], n: int) -> None:
        self.future = future
        self.remaining = n
        self.results = [0] * n

    def slot_done(self, index: int, res: int) -> None:
        self.results[index] = res
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(self.results)


class _Guarded:
    """The entry of an op whose result is a resource (an fd) to release if nobody takes it."""

    __slots__ = ("future", "on_orphan")

    def __init__(self, future: asyncio.Future[int], on_orphan: Callable[[int], None]) -> None:
        self.future = future
        self.on_orphan = on_orphan


class _Chain(abc.ABC):
    """Completion state of linked ops: each op's CQE is booked here, and `ended` runs once
    the last one is in.  The entries are `Completion`s, which a cancel does not orphan, so
    a chain whose caller left still ends (and cleans up) when the kernel is done with it."""

    __slots__ = ("future", "remaining", "results")

    def __init__(self, future: asyncio.Future[list[int]], n: int) -> None:
        self.future = future
        self.results = [0] * n
        self.remaining = n

    def entries(self) -> list[_native.Completion]:
        return [_native.Completion(functools.partial(self.op_done, i)) for i in range(len(self.results))]

    def op_done(self, index: int, res: int, _flags: int) -> None:
        self.results[index] = res
        self.remaining -= 1
        if not self.remaining:
            self.ended()

    @abc.abstractmethod
    def ended(self) -> None:
        """Every op of the chain has its CQE: release what it held, tell the caller."""


class _WriteClose(_Chain):
    """A linked write -> close (`LoopRing.write_and_close`).  If the caller was cancelled and
    the close did not run (the write was cut short or cancelled), the fd is closed here."""

    __slots__ = ("buf", "fd", "io")

    def __init__(self, io: LoopRing, future: asyncio.Future[list[int]], fd: int, buf: Any) -> None:
        super().__init__(future, 2)
        self.io, self.fd, self.buf = io, fd, buf

    def ended(self) -> None:
        _native.release(self.buf)
        if not self.future.done():
            self.future.set_result(self.results)
        elif self.results[1] == -errno.ECANCELED:  # an abandoned pair whose close never ran
            self.io.close_behind_ops(self.fd)


class _WholeFile(_Chain):
    """A whole-file chain (`LoopRing.write_file`).  At its end the direct slot is empty
    again (or is emptied, if the chain was cut before its close ran) and the data's buffer
    export is released; if the caller was cancelled, ``if_orphaned`` runs then: nothing of
    the chain can touch the file any more."""

    __slots__ = ("buf", "if_orphaned", "io", "slot")

    def __init__(
        self, io: LoopRing, future: asyncio.Future[list[int]], n: int, slot: int, buf: Any,
        if_orphaned: Callable[[], None] | None,
    ) -> None:  # fmt: skip
        super().__init__(future, n)
        self.io, self.slot, self.buf, self.if_orphaned = io, slot, buf, if_orphaned

    def ended(self) -> None:
        _native.release(self.buf)
        opened, closed = self.results[0] >= 0, self.results[-1] != -errno.ECANCELED
        self.io._slot_done(self.slot, still_open=opened and not closed)
        if self.future.cancelled():
            if self.if_orphaned is not None:
                self.if_orphaned()
        elif not self.future.done():
            self.future.set_result(self.results)


def _aligned_copy(data: BufferLike) -> memoryview:
    view = memoryview(data).cast("B")
    buf = _native.aligned_buffer(view.nbytes)
    out = _native.buffer_view(buf, view.nbytes)
    out[:] = view
    return out


def _release_all_after(bufs: list[Any], _res: int) -> None:
    _release_all(bufs)


def _release_all(bufs: list[Any]) -> None:
    for buf in bufs:
        _native.release(buf)


def _close_orphan_fd(res: int) -> None:
    if res >= 0:
        try:
            os.close(res)
        except OSError:
            pass


def _then(close: Callable[[int], None], after: Callable[[], None]) -> Callable[[int], None]:
    def on_orphan(res: int) -> None:
        close(res)
        after()

    return on_orphan


class LoopRing:
    """The io_uring of one event loop.  Create through `spargio._backend.current_io`."""

    backend = "io_uring"

    def __init__(self, loop: asyncio.AbstractEventLoop, entries: int, *, shared: Ring | None = None) -> None:
        """Make a ring for ``loop``, or with ``shared``, use the ring ``loop`` already waits on.

        A shared ring belongs to the loop's `RingSelector` (a shard): the
        selector flushes it on every iteration and delivers its completions,
        so no eventfd and no flush callback are needed, and the selector
        closes it when the loop closes.
        """
        self._loop_ref = weakref.ref(loop)
        self._owns_ring = shared is None
        self.ring = Ring(entries, self._complete) if shared is None else shared
        self._has_ftruncate = self.ring.supports("FTRUNCATE")
        self._eventfd = -1
        if shared is None:
            self._eventfd = self.ring.enable_eventfd()
            loop.add_reader(self._eventfd, self._on_eventfd)
        # A shared ring is flushed by its selector on every loop iteration, so
        # a flush is, in effect, always pending.
        self._flush_pending = shared is not None
        self._pool: list[Any] = []  # 4 KiB buffers of reads that completed (never of orphans)
        self._pool_calls = PoolCalls()  # calls with no opcode (listdir, chmod...) on the blocking pool
        self._at_flush: list[Callable[[], None]] = []
        self._note_delivery: Callable[[], None] | None = None  # a shard's selector: "callbacks are ready"
        self._selector_polls: Callable[[], int] = int  # a shard's selector: its readiness polls in the ring
        self.net: Any = None  # spargio.net's per-loop state (its receive buffers), made on first use
        self.closed = False
        self._shutdown_hook = self._install_shutdown_hook()
        self._finalizer = weakref.finalize(loop, self.ring.close) if shared is None else None

    # -- plumbing --------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop_ref()

    @property
    def in_flight(self) -> int:
        """Ring ops not completed yet, plus blocking-pool calls whose thread is still running
        (a cancelled caller's included)."""
        ring_ops = 0 if self.ring.closed else self.ring.in_flight - self._selector_polls()
        return ring_ops + self._pool_calls.count

    def _install_shutdown_hook(self) -> AsyncGenerator[None, None]:
        async def closes_ring_at_loop_shutdown() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                self.close()

        agen = closes_ring_at_loop_shutdown()
        step = agen.__anext__()  # the loop's firstiter hook registers agen here
        try:
            step.send(None)
        except StopIteration:
            pass
        return agen

    def _complete(self, entry: Any, res: int) -> None:
        cls = entry.__class__
        if cls is _Future:
            if not entry.done():
                entry.set_result(res)
        elif cls is tuple:
            entry[0].slot_done(entry[1], res)
        elif cls is _Guarded:
            if entry.future.done():  # cancelled before its CQE came: release the resource
                entry.on_orphan(res)
            else:
                entry.future.set_result(res)
        elif not entry.done():
            entry.set_result(res)

    def _on_eventfd(self) -> None:
        if not self.ring.closed:
            self.ring.reap()

    def completion(self, fn: Callable[[int, int], None]) -> _native.Completion:
        """An entry whose ``fn(res, flags)`` sees every CQE of its op, on this loop's thread.

        On a shard's shared ring the call is deferred with ``call_soon`` (see above).
        """
        if self._owns_ring:
            return _native.Completion(fn)
        loop = self._loop_ref()
        assert loop is not None and self._note_delivery is not None
        call_soon, note_delivery = loop.call_soon, self._note_delivery

        def later(res: int, flags: int) -> None:
            if loop.is_closed():  # the ring is being closed with its loop: the last CQEs, at once
                fn(res, flags)
                return
            note_delivery()
            call_soon(fn, res, flags)

        return _native.Completion(later)

    def at_flush(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once, just before the next submit (after this iteration's callbacks)."""
        self._at_flush.append(fn)
        if not self._flush_pending:
            self._request_flush()

    def run_flush_hooks(self) -> None:
        """Run what `at_flush` queued (a shard's selector calls this before each submit)."""
        hooks = self._at_flush
        if hooks:
            self._at_flush = []
            for fn in hooks:
                fn()

    def _flush(self) -> None:
        """Submit and reap; again, a few rounds at most, while the completions queue more work.

        A completion delivered inline (a socket's bytes to its protocol) may write at once: the
        reply goes out in this same callback instead of a loop iteration later.  Futures only
        schedule callbacks, so file ops never add rounds (a task awaiting op after op still
        yields to the loop each time).
        """
        ring = self.ring
        done = False
        try:
            for _ in range(_FLUSH_ROUNDS):
                if self._at_flush:
                    self.run_flush_hooks()
                if ring.closed:
                    done = True
                    return
                started = ring.ops_started
                if ring.flush():  # the kernel took only part of the SQ (EAGAIN/EBUSY): next iteration
                    break
                if not self._at_flush and ring.ops_started == started:  # nothing new queued: no FFI call
                    done = True
                    return
        finally:  # (also when a completion's callback raised: the next flush must still be scheduled)
            self._flush_pending = False
            if not done:
                self._request_flush()

    def _request_flush(self) -> asyncio.AbstractEventLoop | None:
        """Make sure one flush runs in the loop's next iteration; None if the ring or loop is gone.

        Callers on the loop (every op) know it is running; callers that may run
        while it closes (`_cancel`) check ``is_closed`` themselves.
        """
        loop = self._loop_ref()
        if self.closed or loop is None:
            return None
        if not self._flush_pending:
            self._flush_pending = True
            loop.call_soon(self._flush)
        return loop

    def _future(self) -> asyncio.Future[int]:
        """A future for a new op, with this iteration's flush scheduled."""
        loop = self._request_flush()
        if loop is None:
            raise ClosedError("this event loop's io_uring is closed")
        return loop.create_future()

    def _cancel(self, ud: int, on_orphan: Callable[[int], None] | None = None) -> None:
        """Orphan op ``ud`` and send IORING_OP_ASYNC_CANCEL with the next flush."""
        if self.closed:
            return
        loop = self._loop_ref()
        if self.ring.cancel(ud, on_orphan) and loop is not None and not loop.is_closed():
            self._request_flush()

    async def _result(self, fut: asyncio.Future[int], ud: int, on_orphan: Callable[[int], None] | None = None) -> int:
        """Await op ``ud``; if the caller is cancelled, cancel the op.

        ``on_orphan`` receives the result of an op that completes after all
        (or completed just before the cancellation reached the caller).
        """
        try:
            return await fut
        except asyncio.CancelledError:
            if on_orphan is not None and fut.done() and not fut.cancelled():
                on_orphan(fut.result())
            else:
                self._cancel(ud, on_orphan)
            raise

    async def _checked(
        self, fut: asyncio.Future[int], ud: int, filename: object = None, filename2: object = None, note: str = ""
    ) -> int:
        try:
            res = await self._result(fut, ud)
        except asyncio.CancelledError as exc:
            if note:
                exc.add_note(note)
            raise
        if res < 0:
            raise os_error(res, filename, filename2)
        return res

    def send_message(self, target_ring_fd: int) -> None:
        """Post a MSG_RING message into ring ``target_ring_fd``, submitted now.

        Not deferred to the end of the iteration: the sender may be about to
        block (a shard starting a long sync function) or to stop running its
        loop, and a wake that sits in an SQ would strand the work it announces.
        """
        self.ring.send_message(target_ring_fd)
        if self.ring.flush():
            self._request_flush()

    def close(self) -> None:
        """Cancel what is in flight, wait for its CQEs, destroy the ring.

        A shared ring is only let go of: its selector closes it with the loop.
        """
        if self.closed:
            return
        self.closed = True
        if self._finalizer is not None:
            self._finalizer.detach()
        if not self._owns_ring:
            return
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._eventfd)
        self.ring.close()

    # -- data ------------------------------------------------------------

    async def read(self, fd: int, length: int, offset: int, aligned: bool = False) -> bytes:
        pooled = length <= _POOLED_SIZE and not aligned
        if pooled:
            buf = self._pool.pop() if self._pool else _alloc("char[]", _POOLED_SIZE)
        else:
            buf = _native.aligned_buffer(length) if aligned else _alloc("char[]", length)
        fut = self._future()
        ud = self.ring.prep_read(fd, buf, length, offset, fut)
        try:
            res = await fut
        except asyncio.CancelledError:
            self._cancel(ud)
            raise
        data: bytes = _unpack(buf, res) if res >= 0 else b""
        if pooled and len(self._pool) < _POOL_MAX:
            self._pool.append(buf)  # the kernel is done with it: its CQE was reaped
        if res < 0:
            raise os_error(res)
        return data

    async def read_all(self, fd: int, offset: int, aligned: bool = False) -> bytes:
        """Read from ``offset`` (-1: a stream) to EOF.

        A regular file is sized with ``fstat`` on its open fd (metadata the
        kernel holds in memory; what ``io.FileIO.readall`` does), and the
        body is read straight into the ``bytes`` object that is returned (a
        fresh, uninitialised object the kernel fills in place, as ``os.read``
        allocates) while a probe read just past it checks for EOF in the same
        submission: one ring round trip whatever the size, one copy.  A file
        that grew meanwhile is read on to its new end; streams, O_DIRECT and
        files that shrank take the general loop.
        """
        size = -1
        if offset >= 0 and not aligned:
            try:
                st = os.fstat(fd)
            except OSError:
                st = None  # let the read report the error
            if st is not None and stat.S_ISREG(st.st_mode):
                size = max(0, st.st_size - offset)
        if 0 < size <= _limits.MAX_CHUNK:
            return await self._read_sized(fd, offset, size)
        return await self._read_to_eof(fd, offset, [], aligned)

    async def _read_sized(self, fd: int, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` into one new bytes object; the probe for EOF goes with the last chunk."""
        out = _uninitialised_bytes(size)
        target = _native.ffi.from_buffer(out)
        got = 0
        while size - got > _limits.MAX_CHUNK:  # more than one kernel transfer: all but the last chunk
            n = await self._fill(fd, target + got, _limits.MAX_CHUNK, offset + got, out)
            got += n
            if n < _limits.MAX_CHUNK:  # the file shrank
                return await self._read_to_eof(fd, offset + got, [out[:got]])
        last = size - got
        body = self._future()
        body_ud = self.ring.prep_read(fd, target + got, last, offset + got, body, out)
        try:
            tail = await self.read(fd, _POOLED_SIZE, offset + size)  # flushed with the body: one submit
        except BaseException:
            self._cancel(body_ud)
            raise
        got += await self._checked(body, body_ud)
        if got == size and not tail:
            return out
        if got < size:  # the file shrank: the probe's bytes are not contiguous; read on from here
            return await self._read_to_eof(fd, offset + got, [out[:got]])
        return await self._read_to_eof(fd, offset + size + len(tail), [out, tail])  # it grew

    async def _read_to_eof(self, fd: int, pos: int, parts: list[bytes], aligned: bool = False) -> bytes:
        """Read on from ``pos`` (-1: a stream) until a read returns nothing; join with ``parts``."""
        chunk = READ_GUESS
        while True:
            data = await self.read(fd, chunk, pos, aligned)
            if not data:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            parts.append(data)
            if pos >= 0:
                pos += len(data)
            chunk = min(chunk * 2, _limits.MAX_CHUNK)

    async def _fill(self, fd: int, target: Any, length: int, offset: int, owner: object) -> int:
        """Read into raw memory inside ``owner`` (kept alive by the ring until the CQE)."""
        fut = self._future()
        ud = self.ring.prep_read(fd, target, length, offset, fut, owner)
        return await self._checked(fut, ud)

    async def readinto(self, fd: int, target: Any, offset: int) -> int:
        buf = _native.writable_buffer(target)
        # The export holds the target while the kernel needs it; this frame must not, or a
        # cancelled read's traceback would keep the caller's buffer from being resized.
        del target
        fut = self._future()
        ud = self.ring.prep_read(fd, buf, len(buf), offset, fut)
        return await self._exported(fut, ud, buf, write=False)

    async def write(self, fd: int, data: BufferLike, offset: int, aligned: bool = False) -> int:
        if aligned:
            view = memoryview(data)
            buf = _native.aligned_buffer(view.nbytes)
            _native.buffer_view(buf, view.nbytes)[:] = view.cast("B")
            fut = self._future()
            ud = self.ring.prep_write(fd, buf, view.nbytes, offset, fut)
            return await self._checked(fut, ud, note=WRITE_CANCEL_NOTE)
        buf = _native.readable_buffer(data)
        fut = self._future()
        ud = self.ring.prep_write(fd, buf, len(buf), offset, fut)
        return await self._exported(fut, ud, buf, write=True)

    async def _exported(self, fut: asyncio.Future[int], ud: int, buf: Any, *, write: bool) -> int:
        """Await an op on a buffer exported from a Python object, then release the export.

        On cancel the export is released by the op's orphan, when its CQE
        arrives and the kernel is done with the memory.
        """
        try:
            res = await fut
        except asyncio.CancelledError as exc:
            if self.closed or not self.ring.cancel_pending(ud):
                _native.release(buf)
            else:
                self._cancel(ud, lambda _res: _native.release(buf))
            if write:
                exc.add_note(WRITE_CANCEL_NOTE)
            raise
        _native.release(buf)
        if res < 0:
            raise os_error(res)
        return res

    async def read_many(
        self, fds: Sequence[int], offsets: Sequence[int], lengths: Sequence[int], aligned: bool = False
    ) -> list[bytes]:
        n = len(fds)
        if n == 0:
            return []
        make = _native.aligned_buffer if aligned else _native.buffer
        bufs = [make(length) for length in lengths]
        results = await self._run_batch(False, fds, bufs, lengths, offsets)
        out = []
        for i, res in enumerate(results):
            if res < 0:
                raise os_error(res)
            out.append(_native.buffer_bytes(bufs[i], res))
        return out

    async def write_many(
        self, fds: Sequence[int], offsets: Sequence[int], datas: Sequence[BufferLike], aligned: bool = False
    ) -> list[int]:
        n = len(fds)
        if n == 0:
            return []
        if aligned:  # O_DIRECT: stage copies in aligned memory (owned by us, nothing to release)
            datas = [_aligned_copy(d) for d in datas]
        bufs = [_native.readable_buffer(d) for d in datas]
        lengths = [len(b) for b in bufs]
        try:
            results = await self._run_batch(
                True, fds, bufs, lengths, offsets, on_orphan=functools.partial(_release_all_after, bufs)
            )
        except asyncio.CancelledError as exc:
            exc.add_note(WRITE_CANCEL_NOTE)
            raise
        _release_all(bufs)
        for res in results:
            if res < 0:
                raise os_error(res)
        return results

    async def _run_batch(
        self,
        write: bool,
        fds: Sequence[int],
        bufs: list[Any],
        lengths: Sequence[int],
        offsets: Sequence[int],
        on_orphan: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Queue len(fds) reads or writes in one C call and await them all; on cancel,
        cancel those still in flight.

        ``on_orphan`` runs once, when the last cancelled op's CQE arrives (or
        at once if none was still in flight).
        """
        n = len(fds)
        batch = _Batch(self._future(), n)  # type: ignore[arg-type]
        first = self.ring.prep_rw_many(write, fds, bufs, lengths, offsets, [(batch, i) for i in range(n)], bufs)
        try:
            return await batch.future
        except asyncio.CancelledError:
            pending = [] if self.closed else [ud for ud in range(first, first + n) if self.ring.cancel_pending(ud)]
            if not pending:
                if on_orphan is not None:
                    on_orphan(0)
                raise
            countdown = [len(pending)]

            def one_done(res: int) -> None:
                countdown[0] -= 1
                if countdown[0] == 0 and on_orphan is not None:
                    on_orphan(res)

            for ud in pending:
                self._cancel(ud, one_done)
            raise

    async def fsync(self, fd: int, datasync: bool) -> None:
        fut = self._future()
        await self._checked(fut, self.ring.prep_fsync(fd, datasync, fut))

    async def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        fut = self._future()
        await self._checked(fut, self.ring.prep_fallocate(fd, mode, offset, length, fut))

    async def ftruncate(self, fd: int, length: int) -> None:
        if not self._has_ftruncate:  # kernels before 6.9 have no IORING_OP_FTRUNCATE
            await self.run_blocking(os.ftruncate, fd, length)
            return
        fut = self._future()
        await self._checked(fut, self.ring.prep_ftruncate(fd, length, fut))

    # -- files and names -------------------------------------------------

    async def open(self, path: bytes, flags: int, mode: int, *, if_orphaned: Callable[[], None] | None = None) -> int:
        """Open ``path``; if the caller is cancelled, the open is cancelled.

        An open the kernel finishes anyway has its fd closed, and then
        ``if_orphaned`` is called (an ``O_CREAT`` open may have made the file:
        the caller's chance to remove it once nothing can create it any more).
        """
        fut = self._future()
        on_orphan = _close_orphan_fd if if_orphaned is None else _then(_close_orphan_fd, if_orphaned)
        entry = _Guarded(fut, on_orphan)
        ud = self.ring.prep_openat(_native.AT_FDCWD, _native.path_arg(path), flags | os.O_CLOEXEC, mode, entry)
        try:
            res = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                on_orphan(fut.result())  # it opened just before the cancel reached the caller
            else:
                self._cancel(ud, on_orphan)
            raise
        if res < 0:
            raise os_error(res, os.fsdecode(path))
        return res

    async def write_file(
        self, path: bytes, data: BufferLike, flags: int, mode: int, fsync: bool,
        *, offset: int = 0, if_orphaned: Callable[[], None] | None = None,
    ) -> int:  # fmt: skip
        """Open ``path`` with ``flags``, write ``data`` at ``offset``, fsync if asked, close: one linked chain.

        The four ops go to the kernel in one submission on a direct descriptor
        (the ring's file table), so the open's trip to io-wq carries the rest
        along and the caller wakes once, instead of once per op.  With no free
        slot (or no file table), and on a shard's ring (see the module's
        notes), the same steps run one op at a time.

        :return: the bytes written; fewer than ``data`` only if the file filled
            up (the caller may write the rest with another call, at the offset
            reached, without ``O_TRUNC``).
        :raises OSError: of the first step that failed (the open's names ``path``).

        Cancelled, the ops not yet done are cancelled in the kernel; the file
        may have been created, truncated or written (``if_orphaned`` runs once
        the chain has ended, e.g. to remove a temporary file).
        """
        slot = self.ring.take_file_slot() if self._owns_ring else -1
        if slot < 0:
            return await self._write_file_op_by_op(path, data, flags, mode, fsync, offset, if_orphaned)
        buf = _native.readable_buffer(data)
        n = 4 if fsync else 3
        chain = _WholeFile(self, self._future(), n, slot, buf, if_orphaned)  # type: ignore[arg-type]
        path_buf = _native.path_arg(path)
        try:
            first = self.ring.prep_write_file(
                path_buf,
                flags & ~os.O_CLOEXEC,
                mode,
                slot,
                buf,
                len(buf),
                offset,
                fsync,
                chain.entries(),
                (path_buf, buf),
            )
        except BaseException:
            self.ring.give_file_slot(slot)
            _native.release(buf)
            raise
        try:
            results = await chain.future
        except asyncio.CancelledError as exc:
            if not self.closed:
                for ud in range(first, first + n - 1):  # not the close: it empties the slot
                    if self.ring.cancel_pending(ud):
                        self.ring.cancel(ud)
                self._request_flush()
            exc.add_note(WRITE_CANCEL_NOTE)
            raise
        if results[0] < 0:
            raise os_error(results[0], os.fsdecode(path))
        for res in results[1:]:
            if res < 0:
                raise os_error(res)
        return results[1]

    async def write_and_close(self, fd: int, data: BufferLike, offset: int) -> int:
        """Write ``data`` at ``offset`` (-1: the fd's position), then close ``fd``: a linked pair in
        one submission, one wakeup (a file's last buffered bytes and its close); op by op on a
        shard's ring.

        :return: ``len(data)``: all written, the fd is closed.  Fewer: the write came up short
            and the fd is still open, for the caller to write on (and close).
        :raises OSError: the write failed or the close did; either way the fd is closed.

        Cancelled, the write is cancelled in the kernel if it has not happened (its outcome
        is unknown) and the fd is closed all the same.
        """
        if not self._owns_ring:
            return await self._write_and_close_op_by_op(fd, data, offset)
        buf = _native.readable_buffer(data)
        length = len(buf)
        pair = _WriteClose(self, self._future(), fd, buf)  # type: ignore[arg-type]
        try:
            ud = self.ring.prep_write_close(fd, buf, length, offset, pair.entries())
        except BaseException:
            _native.release(buf)
            raise
        try:
            written, closed = await pair.future
        except asyncio.CancelledError as exc:
            if not self.closed and self.ring.cancel_pending(ud):
                self.ring.cancel(ud)
                self._request_flush()
            exc.add_note(WRITE_CANCEL_NOTE)
            raise
        if closed == -errno.ECANCELED:  # the link was cut: the fd is open
            if written < 0:
                self.close_fd_detached(fd)
                raise os_error(written)
            return written
        if written < 0:
            raise os_error(written)
        if closed < 0:
            raise os_error(closed)
        return written

    async def _write_and_close_op_by_op(self, fd: int, data: BufferLike, offset: int) -> int:
        try:
            written = await self.write(fd, data, offset)
        except BaseException:
            self.close_fd_detached(fd)
            raise
        if written == memoryview(data).nbytes:
            await self.close_fd(fd)
        return written

    def _slot_done(self, slot: int, *, still_open: bool) -> None:
        """A chain has ended: its slot is free, or (cut before its close) is closed first."""
        ring = self.ring
        if not still_open or self.closed or ring.closed:
            ring.give_file_slot(slot)  # (a closing ring takes its table with it)
            return
        ring.prep_close_slot(slot, _native.Completion(lambda _res, _flags: ring.give_file_slot(slot)))
        self._request_flush()

    async def _write_file_op_by_op(
        self, path: bytes, data: BufferLike, flags: int, mode: int, fsync: bool, offset: int,
        if_orphaned: Callable[[], None] | None,
    ) -> int:  # fmt: skip
        fd = await self.open(path, flags, mode, if_orphaned=if_orphaned)
        try:
            n = await self.write(fd, data, offset)
            if fsync:
                await self.fsync(fd, False)
        except BaseException:
            self.close_fd_detached(fd)
            raise
        await self.close_fd(fd)
        return n

    async def close_fd(self, fd: int) -> None:
        fut = self._future()
        await self._checked(fut, self.ring.prep_close(fd, fut))

    def close_fd_detached(self, fd: int) -> None:
        """Close ``fd`` with the next flush, not waiting for (or reporting) the result."""
        if self._request_flush() is None:
            raise ClosedError("this event loop's io_uring is closed")
        self.ring.prep_close(fd, Orphan())

    def close_behind_ops(self, fd: int) -> None:
        """Close ``fd`` behind the ops already prepped on it (os.close once the ring is closed).

        An op names its fd by number until it is submitted.  Closed at once, the
        number could go to a new socket (an accept, a ``socket()``) before the next
        flush, and a queued op — a shutdown, a send, a connect — would act on that
        socket.  IORING_OP_CLOSE goes into the SQ behind them: every op queued
        before it has taken hold of the old file when the number is freed.
        """
        if self.closed or self.ring.closed:
            os.close(fd)
        else:
            self.close_fd_detached(fd)

    async def stat(self, path: bytes | None, fd: int = -1, follow_symlinks: bool = True) -> os.stat_result:
        out = _native.statx_buffer()
        flags = 0 if follow_symlinks else _native.AT_SYMLINK_NOFOLLOW
        if path is None:
            c_path, dfd, flags = _native.path_arg(b""), fd, flags | _native.AT_EMPTY_PATH
        else:
            c_path, dfd = _native.path_arg(path), _native.AT_FDCWD
        fut = self._future()
        await self._checked(fut, self.ring.prep_statx(dfd, c_path, flags, out, fut), _fsname(path))
        return _native.stat_result_from_statx(out)

    async def rename(self, old: bytes, new: bytes) -> None:
        fut = self._future()
        ud = self.ring.prep_renameat(_native.path_arg(old), _native.path_arg(new), fut)
        await self._checked(fut, ud, _fsname(old), _fsname(new))

    async def unlink(self, path: bytes) -> None:
        fut = self._future()
        await self._checked(fut, self.ring.prep_unlinkat(_native.path_arg(path), 0, fut), _fsname(path))

    async def rmdir(self, path: bytes) -> None:
        fut = self._future()
        ud = self.ring.prep_unlinkat(_native.path_arg(path), _native.AT_REMOVEDIR, fut)
        await self._checked(fut, ud, _fsname(path))

    async def mkdir(self, path: bytes, mode: int) -> None:
        fut = self._future()
        await self._checked(fut, self.ring.prep_mkdirat(_native.path_arg(path), mode, fut), _fsname(path))

    async def link(self, src: bytes, dst: bytes, follow_symlinks: bool) -> None:
        fut = self._future()
        flags = 0x400 if follow_symlinks else 0  # AT_SYMLINK_FOLLOW
        ud = self.ring.prep_linkat(_native.path_arg(src), _native.path_arg(dst), flags, fut)
        await self._checked(fut, ud, _fsname(src), _fsname(dst))

    async def symlink(self, target: bytes, link: bytes) -> None:
        fut = self._future()
        ud = self.ring.prep_symlinkat(_native.path_arg(target), _native.path_arg(link), fut)
        await self._checked(fut, ud, _fsname(target), _fsname(link))

    async def nop(self) -> int:
        fut = self._future()
        return await self._result(fut, self.ring.prep_nop(fut))

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the blocking pool with the caller's contextvars (see `PoolCalls.call`)."""
        return await self._pool_calls.call(contextvars.copy_context().run, fn, *args)


# ``PyBytes_FromStringAndSize(NULL, n)``: a new bytes object whose contents are
# not initialised, which is how ``os.read`` allocates before the kernel fills it.
# ``bytes(n)`` would zero 16 MiB first (1.5 ms measured), for nothing.
_PyBytes_FromStringAndSize = ctypes.pythonapi.PyBytes_FromStringAndSize
_PyBytes_FromStringAndSize.restype = ctypes.py_object
_PyBytes_FromStringAndSize.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


def _uninitialised_bytes(size: int) -> bytes:
    """A fresh, unshared bytes object for the kernel to fill completely."""
    data: bytes = _PyBytes_FromStringAndSize(None, size)
    return data


def _fsname(path: bytes | None) -> str | None:
    return None if path is None else os.fsdecode(path)
