"""A typed wrapper around one io_uring instance: the only user of ``lib``.

Theory of operation
-------------------
A `Ring` owns one kernel ring and a table ``user_data -> (entry, keep)``.

* ``entry`` is whatever the caller wants back when the op completes (a
  future, a batch slot); ``keep`` holds every buffer and path whose address
  went into the SQE.  The pair leaves the table only when the op's CQE is
  reaped, so memory handed to the kernel stays alive until the kernel is done
  with it, whatever happened to the caller in the meantime (cancelled,
  timed out, loop closed).
* ``user_data`` is a 64-bit counter that only grows, so an id is never reused
  while an op could still complete (2**64 ops would take millennia).
* `cancel` swaps an op's entry for an `Orphan` and queues
  IORING_OP_ASYNC_CANCEL.  The op still ends with exactly one CQE, which the
  orphan consumes (closing an fd that an open produced too late, say) and the
  caller never sees.
* Completions are delivered to the ``sink`` given at construction, one call
  per CQE, from `flush` (submit + inline reap) and `reap` (after the eventfd
  fired).  Orphans are handled here and never reach the sink.
* One thread owns the ring (liburing allows a single submitter): every
  method that touches the SQ or CQ checks the calling thread and raises
  `RuntimeError` otherwise.  `adopt` moves ownership when nothing is in
  flight.
* Multishot ops (accept, recv) and ops that need a CQE's flags (a recv's
  buffer id) have a `Completion` as their entry: it is called with
  ``(res, flags)`` for every CQE, the sink is bypassed, and the op stays in
  the table while IORING_CQE_F_MORE says more CQEs will follow.  Cancelling
  one queues the cancel but keeps the `Completion` (it must still see the
  final CQE to hand back a provided buffer or close an accepted fd).
* Provided buffers: a `BufferRing` is a group of kernel-picked receive
  buffers registered on this ring; it is freed after the ring is destroyed.
* Messages: another ring can post a CQE into this one with
  IORING_OP_MSG_RING (`send_message`).  Such a CQE carries user_data 0,
  which no op ever gets (ids start at 1); it goes to ``on_message``, not the
  sink.  A shard is woken this way.
* Fork: a ring belongs to the process that created it.  In a forked child,
  `close` forgets the ring without cancelling or reaping anything, because
  the kernel ring is shared with the parent.
"""

from __future__ import annotations

import errno as _errno
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._abi import CQE_F_MORE
from ._uring import ffi, lib

__all__ = [
    "Bell",
    "Buffer",
    "BufferRing",
    "Completion",
    "Orphan",
    "Ring",
    "RingSetupError",
    "aligned_buffer",
    "buffer",
    "buffer_bytes",
    "ffi",
    "message_name",
    "message_scratch",
    "os_error",
    "path_arg",
    "raw_allocator",
    "readable_buffer",
    "release",
    "stat_result_from_statx",
    "statx_buffer",
    "writable_buffer",
]

Buffer = Any  # a cffi ``char[]`` / ``char *`` cdata
Sink = Callable[[Any, int], None]

# Opcode numbers from the kernel ABI (include/uapi/linux/io_uring.h).
OPCODES: Final[dict[str, int]] = {
    "NOP": 0,
    "FSYNC": 3,
    "POLL_ADD": 6,
    "SENDMSG": 9,
    "RECVMSG": 10,
    "ACCEPT": 13,
    "ASYNC_CANCEL": 14,
    "CONNECT": 16,
    "FALLOCATE": 17,
    "OPENAT": 18,
    "CLOSE": 19,
    "STATX": 21,
    "READ": 22,
    "WRITE": 23,
    "SEND": 26,
    "SEND_ZC": 47,
    "RECV": 27,
    "SPLICE": 30,
    "SHUTDOWN": 34,
    "MSG_RING": 40,
    "RENAMEAT": 35,
    "UNLINKAT": 36,
    "MKDIRAT": 37,
    "SYMLINKAT": 38,
    "LINKAT": 39,
    "FTRUNCATE": 55,
}

IORING_FSYNC_DATASYNC: Final = 1
AT_FDCWD: Final = -100
AT_REMOVEDIR: Final = 0x200
AT_SYMLINK_NOFOLLOW: Final = 0x100
AT_EMPTY_PATH: Final = 0x1000
STATX_BASIC_STATS: Final = 0x7FF
CURRENT_POSITION: Final = 2**64 - 1  # offset -1: "use and advance the file position"
FILE_SLOTS: Final = 64  # direct-descriptor slots per ring, for whole-file chains in flight at once

_REAP_BATCH: Final = 256
_MSG_NOSIGNAL: Final = 0x4000
_SOCK_FLAGS: Final = 0o4000 | 0o2000000  # SOCK_NONBLOCK | SOCK_CLOEXEC
_get_ident = threading.get_ident
_prep_read = lib.spg_prep_read
_prep_write = lib.spg_prep_write
_prep_send = lib.spg_prep_send
_alloc = ffi.new_allocator(should_clear_after_alloc=False)
raw_allocator = _alloc  # ``raw_allocator("char[]", n)``: uninitialised memory, freed with its cdata
_aligned_alloc = ffi.new_allocator(
    alloc=lib.spg_aligned_alloc, free=lib.spg_aligned_free, should_clear_after_alloc=False
)
_STATX_SIZE: Final = int(lib.spg_statx_size())

# Every ring not yet closed (the books in spargio.testing look for leaks here).
open_rings: weakref.WeakSet[Ring] = weakref.WeakSet()

# Buffers of ops that were still in the kernel when their ring had to be
# destroyed anyway.  They are never freed: the kernel may still write them.
_abandoned_buffers: list[object] = []


class Bell:
    """A doorbell word: one thread spins on it with the GIL released (`spin`), others `ring` it.

    Ringing is a plain store from Python (no syscall, no GIL hand-off), so a
    sender can tell a spinning shard about new work for a few nanoseconds.
    """

    __slots__ = ("_word",)

    def __init__(self) -> None:
        self._word = ffi.new("uint32_t[1]")

    @property
    def value(self) -> int:
        """The current count: pass it to `spin` as what was seen."""
        return int(self._word[0])

    def ring(self) -> None:
        word = self._word
        word[0] = (word[0] + 1) & 0xFFFFFFFF

    def spin(self, seen: int, seconds: float, ring: Ring | None = None) -> int:
        """Spin until the bell has moved on from ``seen`` (1), a completion is ready on ``ring``
        (2; the ring's owner only), or ``seconds`` pass (0).  The CPU is yielded every few
        microseconds, so a runnable thread on the same core still gets it."""
        ptr = ffi.NULL
        if ring is not None:
            ring._check_owner()
            ptr = ring._ptr
        return int(lib.spg_spin(ptr, self._word, seen, int(seconds * 1e9)))


class RingSetupError(OSError):
    """io_uring_setup failed; ``errno`` says why (ENOSYS, EPERM, ENOMEM...)."""


class Orphan:
    """The entry of an op whose caller has gone away.

    Its CQE is consumed here; ``on_result`` (if any) gets the raw result, e.g.
    to close an fd that an open returned after its caller was cancelled.
    """

    __slots__ = ("on_result",)

    def __init__(self, on_result: Callable[[int], None] | None = None) -> None:
        self.on_result = on_result


class Completion:
    """The entry of an op that wants every CQE with its flags: ``fn(res, flags)``.

    Used for multishot ops (one SQE, many CQEs; ``flags & CQE_F_MORE`` while
    it stays armed) and for recvs that pick a provided buffer.  ``fn`` runs on
    the ring's thread inside `Ring.flush`/`Ring.reap`, also for the CQEs of a
    cancelled op and during `Ring.close`, so it must cope with its owner
    having gone away.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[int, int], None]) -> None:
        self.fn = fn


class BufferRing:
    """A provided-buffer ring: ``count`` buffers of ``size`` bytes the kernel picks from.

    Registered on ``ring`` as buffer group ``group``.  A recv armed with
    ``prep_recv_multishot(fd, group, ...)`` gets one CQE per arrival whose
    flags name the buffer (``flags >> 16``); `take` copies its bytes out and
    hands the buffer back.  When none is left the recv ends with -ENOBUFS.
    """

    __slots__ = ("_ptr", "count", "group", "in_use", "size")

    def __init__(self, ring: Ring, group: int, count: int, size: int) -> None:
        ring._check_owner()
        err = ffi.new("int *")
        ptr = lib.spg_bufring_create(ring._ptr, group, count, size, err)
        if ptr == ffi.NULL:
            raise os_error(err[0])
        self._ptr: Any = ptr
        self.group, self.count, self.size = group, count, size
        self.in_use = 0  # handed out by the kernel, not yet taken (advisory; the kernel keeps the truth)
        ring._buffer_rings.append(self)

    def take(self, bid: int, length: int) -> bytes:
        """The first ``length`` bytes of buffer ``bid`` as ``bytes``; the buffer goes back to the kernel."""
        data: bytes = ffi.unpack(lib.spg_bufring_buf(self._ptr, bid), length)
        lib.spg_bufring_recycle(self._ptr, bid)
        return data

    def take_into(self, bid: int, length: int, target: memoryview) -> None:
        """Copy the first ``length`` bytes of buffer ``bid`` into ``target``; the buffer goes back."""
        target[:length] = ffi.buffer(lib.spg_bufring_buf(self._ptr, bid), length)
        lib.spg_bufring_recycle(self._ptr, bid)

    def recycle(self, bid: int) -> None:
        lib.spg_bufring_recycle(self._ptr, bid)

    def _free(self) -> None:
        if self._ptr is not None:
            lib.spg_bufring_destroy(ffi.NULL, self._ptr)
            self._ptr = None


_INTERNAL = Orphan()
MESSAGE_UD: Final = 0  # user_data of a CQE posted by another ring's MSG_RING


def os_error(res: int, filename: object = None, filename2: object = None) -> OSError:
    """Map a negative CQE result to the matching ``OSError`` subclass."""
    code = -res
    if filename2 is not None:
        return OSError(code, os.strerror(code), filename, None, filename2)
    if filename is not None:
        return OSError(code, os.strerror(code), filename)
    return OSError(code, os.strerror(code))


def buffer(size: int) -> Buffer:
    """Uninitialised memory for the kernel to fill."""
    return _alloc("char[]", size)


def aligned_buffer(size: int) -> Buffer:
    """4096-aligned, uninitialised memory (what O_DIRECT needs)."""
    return _aligned_alloc("char[]", size)


def buffer_bytes(buf: Buffer, length: int) -> bytes:
    """Copy the first ``length`` bytes of ``buf`` out as ``bytes``."""
    data: bytes = ffi.buffer(buf, length)[:]
    return data


def buffer_view(buf: Buffer, length: int) -> memoryview:
    """A writable memoryview over ``buf`` (no copy)."""
    return memoryview(ffi.buffer(buf, length))


def writable_buffer(obj: Any) -> Buffer:
    """A pointer into ``obj`` for the kernel to write; holds a buffer export.

    While the returned cdata lives, a ``bytearray`` cannot be resized
    (`BufferError`), so the kernel never writes into freed memory.

    :raises TypeError: ``obj`` is read-only (``bytes``) or not a buffer.
    """
    return ffi.from_buffer("char[]", obj, require_writable=True)


def release(buf: Buffer) -> None:
    """Drop a `writable_buffer`/`readable_buffer` export now (once the kernel is done).

    Releasing explicitly matters: a cdata holding a memoryview export that is
    left to the cycle collector (say, in a traceback's frame) can be torn down
    after the memoryview it points into, which crashes CPython 3.11.
    """
    ffi.release(buf)


def readable_buffer(obj: Any) -> Buffer:
    """A pointer into ``obj`` for the kernel to read; holds a buffer export."""
    return ffi.from_buffer("char[]", obj)


def path_arg(path: bytes) -> Buffer:
    """A NUL-terminated copy of ``path`` that the kernel can read."""
    return ffi.new("char[]", path)


def message_scratch() -> Buffer:
    """Memory for one datagram op's msghdr, iovec and peer address (see `Ring.prep_recvmsg`)."""
    return ffi.new("char[]", lib.spg_msg_scratch_size())


def message_name(scratch: Buffer) -> bytes:
    """The raw sockaddr a completed recvmsg left in ``scratch``."""
    data: bytes = ffi.unpack(lib.spg_msg_name(scratch), lib.spg_msg_namelen(scratch))
    return data


def statx_buffer() -> Buffer:
    return ffi.new("char[]", _STATX_SIZE)


def stat_result_from_statx(buf: Buffer) -> os.stat_result:
    """Build the familiar ``os.stat_result`` from a filled ``struct statx``."""
    out = ffi.new("int64_t[16]")
    lib.spg_statx_fields(buf, out)
    (mode, ino, dev, nlink, uid, gid, size, a_s, a_ns, m_s, m_ns, c_s, c_ns, blksize, blocks, rdev) = ffi.unpack(
        out, 16
    )
    a_total, m_total, c_total = a_s * 10**9 + a_ns, m_s * 10**9 + m_ns, c_s * 10**9 + c_ns
    return os.stat_result(
        (
            mode, ino, dev, nlink, uid, gid, size, a_s, m_s, c_s,
            a_s + a_ns * 1e-9, m_s + m_ns * 1e-9, c_s + c_ns * 1e-9,  # CPython's own formula, to the last bit
            a_total, m_total, c_total,
            blksize, blocks, rdev,
        )
    )  # fmt: skip


def _rw_method(c_prep: Callable[..., int], doc: str) -> Callable[..., int]:
    """Build the read or write prep method: the per-op hot path, so no helper call inside."""

    def method(self: Ring, fd: int, buf: Buffer, length: int, offset: int, entry: Any, keep: object = None) -> int:
        if _get_ident() != self._owner or self._ptr is None:
            self._check_owner()
        ud = self._next_ud
        rc = c_prep(self._ptr, fd, buf, length, offset & CURRENT_POSITION, ud)
        if rc:
            if rc != -_errno.EBUSY:
                raise os_error(rc)
            self._room()
            return method(self, fd, buf, length, offset, entry, keep)
        self._next_ud = ud + 1
        self._ops[ud] = (entry, buf if keep is None else keep)
        self.ops_started += 1
        return ud

    method.__doc__ = doc
    return method


class Ring:
    """One io_uring instance, its op table, and its completions.

    :param entries: SQ size (rounded up to a power of two by the kernel).
    :param sink: called as ``sink(entry, result)`` for each completed op whose
        entry is not an `Orphan`, on the owning thread, from `flush`/`reap`.
    :param cq_entries: CQ size; defaults to four times ``entries``.
    :raises RingSetupError: the kernel refused to create the ring.
    """

    def __init__(self, entries: int, sink: Sink, *, cq_entries: int = 0) -> None:
        err = ffi.new("int *")
        ptr = lib.spg_ring_create(entries, cq_entries or entries * 4, 0, err)
        if ptr == ffi.NULL:
            code = -err[0]
            raise RingSetupError(code, f"io_uring_setup failed: {os.strerror(code)}")
        self._ptr: Any = ptr
        self._sink = sink
        self._ops: dict[int, tuple[Any, object]] = {}
        self._next_ud = 1
        self._owner = threading.get_ident()
        self._ud = ffi.new("uint64_t[]", _REAP_BATCH)
        self._res = ffi.new("int32_t[]", _REAP_BATCH)
        self._flags = ffi.new("uint32_t[]", _REAP_BATCH)
        self._submit_ret = ffi.new("int *")
        self._eventfd = -1
        self._pid = os.getpid()
        self._supported = self._probe()
        self.ops_started = 0
        self.ops_completed = 0
        self.ops_cancelled = 0
        self.messages = 0
        self.on_message: Callable[[int], None] | None = None
        self._buffer_rings: list[BufferRing] = []
        self._next_group = 0
        self._file_slots: list[int] | None = None  # free direct-descriptor slots; None: table not registered yet
        open_rings.add(self)

    # -- facts -----------------------------------------------------------

    def _probe(self) -> frozenset[int]:
        table = ffi.new("unsigned char[]", 256)
        if lib.spg_probe(self._ptr, table, 256) < 0:
            return frozenset()
        return frozenset(i for i in range(256) if table[i])

    def supports(self, opcode: str) -> bool:
        """Whether the running kernel has IORING_OP_<opcode> (from the probe)."""
        return OPCODES[opcode] in self._supported

    @property
    def closed(self) -> bool:
        return self._ptr is None

    @property
    def fd(self) -> int:
        return int(lib.spg_ring_fd(self._ptr))

    @property
    def in_flight(self) -> int:
        """Ops queued or in the kernel, including cancels not yet completed."""
        return len(self._ops)

    @property
    def submit_calls(self) -> int:
        return int(lib.spg_submit_calls(self._ptr)) if self._ptr is not None else 0

    def sizes(self) -> tuple[int, int]:
        return int(lib.spg_sq_entries(self._ptr)), int(lib.spg_cq_entries(self._ptr))

    def enable_eventfd(self) -> int:
        """Register a non-blocking eventfd that becomes readable on completions."""
        fd = int(lib.spg_ring_enable_eventfd(self._ptr))
        if fd < 0:
            raise os_error(fd)
        self._eventfd = fd
        return fd

    # -- ownership -------------------------------------------------------

    def _check_owner(self) -> None:
        if threading.get_ident() != self._owner:
            raise RuntimeError(
                "this io_uring belongs to another thread; only the thread that owns a ring may "
                "submit to it or reap it (use that thread's event loop, or spargio.boundary)"
            )
        if self._ptr is None:
            raise RuntimeError("this io_uring is closed")

    def adopt(self) -> None:
        """Make the calling thread the owner; only allowed with nothing in flight."""
        if self._ops:
            raise RuntimeError("cannot move a ring with ops in flight to another thread")
        self._owner = threading.get_ident()

    # -- submission ------------------------------------------------------

    def _queued(self, rc: int, ud: int, entry: Any, keep: object) -> int:
        """Book an op that C just prepped (rc == 0) or retry after reaping (-EBUSY)."""
        if rc:
            raise os_error(rc)
        self._next_ud = ud + 1
        self._ops[ud] = (entry, keep)
        self.ops_started += 1
        return ud

    def _room(self) -> None:
        """The SQ stayed full after a submit: the kernel wants us to reap first."""
        self.reap()
        if lib.spg_submit(self._ptr) < 0:
            self.reap()

    def _prep(self, prep: Callable[..., int], args: tuple[Any, ...], entry: Any, keep: object) -> int:
        self._check_owner()
        ud = self._next_ud
        rc = prep(self._ptr, *args, ud)
        if rc == -_errno.EBUSY:
            self._room()
            rc = prep(self._ptr, *args, ud)
        return self._queued(rc, ud, entry, keep)

    def prep_nop(self, entry: Any) -> int:
        return self._prep(lib.spg_prep_nop, (), entry, None)

    if TYPE_CHECKING:

        def prep_read(self, fd: int, buf: Buffer, length: int, offset: int, entry: Any, keep: object = None) -> int: ...

        def prep_write(
            self, fd: int, buf: Buffer, length: int, offset: int, entry: Any, keep: object = None
        ) -> int: ...

    else:
        prep_read = _rw_method(_prep_read, "Queue a read of ``length`` bytes into ``buf``; offset -1 = position.")
        prep_write = _rw_method(_prep_write, "Queue a write of ``length`` bytes from ``buf``; offset -1 = position.")

    def prep_rw_many(
        self,
        write: bool,
        fds: Sequence[int],
        bufs: Sequence[Buffer],
        lengths: Sequence[int],
        offsets: Sequence[int],
        entries: Sequence[Any],
        keep: object,
    ) -> int:
        """Queue ``len(fds)`` reads or writes in one crossing; returns the first user_data.

        ``entries[i]`` gets op *i*'s result.  ``keep`` is held until the last
        of them completes.
        """
        self._check_owner()
        n = len(fds)
        c_fds = ffi.new("int[]", list(fds))
        c_bufs = ffi.new("char *[]", list(bufs))
        c_lens = ffi.new("unsigned[]", list(lengths))
        c_offs = ffi.new("uint64_t[]", [o & CURRENT_POSITION for o in offsets])
        first = self._next_ud
        done = 0
        while done < n:
            got = lib.spg_prep_rw_many(
                self._ptr, int(write), n - done, c_fds + done, c_bufs + done, c_lens + done, c_offs + done, first + done
            )
            for i in range(done, done + got):
                self._ops[first + i] = (entries[i], keep)
            done += got
            if done < n:
                self._room()
        self._next_ud = first + n
        self.ops_started += n
        return first

    def prep_fsync(self, fd: int, datasync: bool, entry: Any) -> int:
        return self._prep(lib.spg_prep_fsync, (fd, IORING_FSYNC_DATASYNC if datasync else 0), entry, None)

    def prep_openat(self, dfd: int, path: Buffer, flags: int, mode: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_openat, (dfd, path, flags, mode), entry, path)

    def take_file_slot(self) -> int:
        """A free direct-descriptor slot, or -1 if none is free (or the kernel has no file table).

        The ring's table of `FILE_SLOTS` empty slots is registered on first use.
        """
        slots = self._file_slots
        if slots is None:
            self._check_owner()
            registered = lib.spg_register_file_slots(self._ptr, FILE_SLOTS) >= 0
            slots = self._file_slots = list(range(FILE_SLOTS - 1, -1, -1)) if registered else []
        return slots.pop() if slots else -1

    def give_file_slot(self, slot: int) -> None:
        """Hand back a slot that is empty again (its close's CQE has arrived)."""
        assert self._file_slots is not None
        self._file_slots.append(slot)

    def prep_write_file(
        self, path: Buffer, flags: int, mode: int, slot: int, buf: Buffer, length: int, offset: int, fsync: bool,
        entries: Sequence[Any], keep: object,
    ) -> int:  # fmt: skip
        """Queue open -> write -> [fsync ->] close as one linked chain on direct slot ``slot``
        (see ``spg_prep_write_file``); ``entries[i]`` gets op *i*'s CQE.  Returns the first user_data."""
        self._check_owner()
        ud = self._next_ud
        args = (self._ptr, AT_FDCWD, path, flags, mode, slot, buf, length, offset, int(fsync), ud)
        n = lib.spg_prep_write_file(*args)
        if n == -_errno.EBUSY:
            self._room()
            n = lib.spg_prep_write_file(*args)
        if n < 0:
            raise os_error(n)
        for i in range(n):
            self._ops[ud + i] = (entries[i], keep)
        self._next_ud = ud + n
        self.ops_started += n
        return ud

    def prep_write_close(self, fd: int, buf: Buffer, length: int, offset: int, entries: Sequence[Any]) -> int:
        """Queue write -> close on ``fd`` as a linked pair (see ``spg_prep_write_close``);
        ``entries`` get the two CQEs.  Returns the write's user_data (the close's is the next)."""
        self._check_owner()
        ud = self._next_ud
        args = (self._ptr, fd, buf, length, offset & CURRENT_POSITION, ud)
        n = lib.spg_prep_write_close(*args)
        if n == -_errno.EBUSY:
            self._room()
            n = lib.spg_prep_write_close(*args)
        if n < 0:
            raise os_error(n)
        self._ops[ud] = (entries[0], buf)
        self._ops[ud + 1] = (entries[1], None)
        self._next_ud = ud + 2
        self.ops_started += 2
        return ud

    def prep_close_slot(self, slot: int, entry: Any) -> int:
        """Empty direct-descriptor slot ``slot``."""
        return self._prep(lib.spg_prep_close_slot, (slot,), entry, None)

    def prep_close(self, fd: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_close, (fd,), entry, None)

    def prep_statx(self, dfd: int, path: Buffer, flags: int, out: Buffer, entry: Any) -> int:
        return self._prep(lib.spg_prep_statx, (dfd, path, flags, STATX_BASIC_STATS, out), entry, (path, out))

    def prep_renameat(self, old: Buffer, new: Buffer, entry: Any) -> int:
        return self._prep(lib.spg_prep_renameat, (AT_FDCWD, old, AT_FDCWD, new, 0), entry, (old, new))

    def prep_unlinkat(self, path: Buffer, flags: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_unlinkat, (AT_FDCWD, path, flags), entry, path)

    def prep_mkdirat(self, path: Buffer, mode: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_mkdirat, (AT_FDCWD, path, mode), entry, path)

    def prep_linkat(self, old: Buffer, new: Buffer, flags: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_linkat, (AT_FDCWD, old, AT_FDCWD, new, flags), entry, (old, new))

    def prep_symlinkat(self, target: Buffer, link: Buffer, entry: Any) -> int:
        return self._prep(lib.spg_prep_symlinkat, (target, AT_FDCWD, link), entry, (target, link))

    def prep_fallocate(self, fd: int, mode: int, offset: int, length: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_fallocate, (fd, mode, offset, length), entry, None)

    def prep_ftruncate(self, fd: int, length: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_ftruncate, (fd, length), entry, None)

    def prep_poll_add(self, fd: int, mask: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_poll_add, (fd, mask), entry, None)

    # -- sockets -------------------------------------------------------

    def prep_recv(self, fd: int, buf: Buffer, length: int, entry: Any, keep: object = None) -> int:
        """Queue one recv of up to ``length`` bytes into ``buf``."""
        return self._prep(lib.spg_prep_recv, (fd, buf, length, 0), entry, buf if keep is None else keep)

    def prep_recv_multishot(self, fd: int, buffers: BufferRing, entry: Completion) -> int:
        """Arm a multishot recv on ``fd`` taking buffers from ``buffers``: one CQE per arrival."""
        return self._prep(lib.spg_prep_recv_multishot, (fd, buffers.group), entry, buffers)

    def prep_send(self, fd: int, buf: Buffer, length: int, entry: Any, keep: object = None) -> int:
        """Queue one send of ``length`` bytes from ``buf`` (MSG_NOSIGNAL: EPIPE, never SIGPIPE).

        A transport's per-write hot path, so no helper call inside (as `prep_read`).
        """
        if _get_ident() != self._owner or self._ptr is None:
            self._check_owner()
        ud = self._next_ud
        rc = _prep_send(self._ptr, fd, buf, length, _MSG_NOSIGNAL, ud)
        if rc:
            if rc != -_errno.EBUSY:
                raise os_error(rc)
            self._room()
            return self.prep_send(fd, buf, length, entry, keep)
        self._next_ud = ud + 1
        self._ops[ud] = (entry, buf if keep is None else keep)
        self.ops_started += 1
        return ud

    def prep_send_zc(self, fd: int, buf: Buffer, length: int, entry: Completion, keep: object = None) -> int:
        """Queue a zero-copy send (IORING_OP_SEND_ZC, MSG_NOSIGNAL).  ``entry`` (a `Completion`)
        sees the result, flagged `CQE_F_MORE`, then the notification that ``buf`` is free."""
        return self._prep(lib.spg_prep_send_zc, (fd, buf, length, _MSG_NOSIGNAL), entry, buf if keep is None else keep)

    def prep_sendv(self, fd: int, bufs: Sequence[Buffer], entry: Any, keep: object = None) -> int:
        """Queue one sendmsg gathering ``bufs`` (cffi buffers, each sent whole, in order)."""
        n = len(bufs)
        c_bufs = ffi.new("char *[]", list(bufs))
        c_lens = ffi.new("unsigned[]", [len(b) for b in bufs])
        scratch = _alloc("char[]", lib.spg_msghdr_size(n))
        return self._prep(
            lib.spg_prep_sendv, (fd, c_bufs, c_lens, n, scratch, _MSG_NOSIGNAL), entry, (bufs, scratch, keep)
        )

    def prep_recvmsg(self, fd: int, scratch: Buffer, buf: Buffer, length: int, entry: Any) -> int:
        """Queue one recvmsg of a datagram into ``buf``; its sender's address lands in ``scratch``
        (a `message_scratch`), read back with `message_name`."""
        return self._prep(lib.spg_prep_recvmsg, (fd, scratch, buf, length), entry, (scratch, buf))

    def prep_sendmsg_to(self, fd: int, scratch: Buffer, data: bytes, address: bytes | None, entry: Any) -> int:
        """Queue one sendmsg of ``data`` to the raw sockaddr ``address`` (None: the connected peer)."""
        buf = ffi.from_buffer("char[]", data)
        addr = ffi.NULL if address is None else ffi.new("char[]", address)
        length = 0 if address is None else len(address)
        return self._prep(
            lib.spg_prep_sendmsg_to, (fd, scratch, buf, len(data), addr, length), entry, (scratch, buf, addr, data)
        )

    def prep_accept(self, fd: int, multishot: bool, entry: Any) -> int:
        """Queue an accept (non-blocking, close-on-exec sockets); multishot: one CQE per connection."""
        return self._prep(lib.spg_prep_accept, (fd, int(multishot), _SOCK_FLAGS), entry, None)

    def prep_connect(self, fd: int, address: bytes, entry: Any) -> int:
        """Queue a connect to the raw ``struct sockaddr`` in ``address``."""
        addr = ffi.new("char[]", address)
        return self._prep(lib.spg_prep_connect, (fd, addr, len(address)), entry, addr)

    def prep_shutdown(self, fd: int, how: int, entry: Any) -> int:
        return self._prep(lib.spg_prep_shutdown, (fd, how), entry, None)

    def prep_splice(
        self, fd_in: int, off_in: int, fd_out: int, off_out: int, length: int, entry: Any, *, link: bool = False
    ) -> int:
        """Queue a splice of ``length`` bytes (offsets -1: a pipe's); ``link`` chains the next op behind it."""
        return self._prep(lib.spg_prep_splice, (fd_in, off_in, fd_out, off_out, length, 1, int(link)), entry, None)

    def buffer_ring(self, count: int, size: int) -> BufferRing:
        """Register a new provided-buffer group of ``count`` (a power of two) buffers of ``size`` bytes."""
        group = self._next_group
        buffers = BufferRing(self, group, count, size)
        self._next_group = group + 1
        return buffers

    def send_message(self, target_fd: int, value: int = 0) -> int:
        """Queue an IORING_OP_MSG_RING that posts a CQE carrying ``value`` into ring ``target_fd``.

        The target sees it as a message (its ``on_message(value)``), not as an
        op.  It leaves with the next `flush` or `wait`; this ring's own CQE for
        it (an error if the target is gone) is consumed silently.
        """
        return self._prep(lib.spg_prep_msg_ring, (target_fd, value, MESSAGE_UD), _INTERNAL, None)

    def cancel_pending(self, ud: int) -> bool:
        """Whether op ``ud`` is still in flight and not already cancelled."""
        slot = self._ops.get(ud)
        return slot is not None and slot[0].__class__ is not Orphan

    def cancel(self, ud: int, on_result: Callable[[int], None] | None = None) -> bool:
        """Ask the kernel to cancel op ``ud``; its eventual result goes to ``on_result``.

        The op's buffers stay in the table until its own CQE arrives.  Returns
        False if the op had already completed.
        """
        slot = self._ops.get(ud)
        if slot is None or slot[0].__class__ is Orphan:
            return False
        if slot[0].__class__ is not Completion:  # a Completion sees its own final CQE
            self._ops[ud] = (Orphan(on_result), slot[1])
        self.ops_cancelled += 1
        self._prep(lib.spg_prep_cancel, (ud,), _INTERNAL, None)
        return True

    # -- completion ------------------------------------------------------

    def _dispatch(self, n: int) -> None:
        if not n:
            return
        self.ops_completed += n
        if n == 1:  # the common case at queue depth 1: skip the unpacking
            cqes: Any = ((self._ud[0], self._res[0], self._flags[0]),)
        elif n <= 8:  # a few: indexing the arrays beats unpacking three of them and zipping
            uds, ress, flagss = self._ud, self._res, self._flags
            cqes = [(uds[i], ress[i], flagss[i]) for i in range(n)]
        else:
            cqes = zip(ffi.unpack(self._ud, n), ffi.unpack(self._res, n), ffi.unpack(self._flags, n), strict=True)
        ops, sink = self._ops, self._sink
        for ud, res, flags in cqes:
            if ud == MESSAGE_UD:
                self._message(res)
                continue
            if flags & CQE_F_MORE:  # a multishot op that stays armed
                self.ops_completed -= 1
                entry = ops[ud][0]
            else:
                entry = ops.pop(ud)[0]
            cls = entry.__class__
            if cls is Completion:
                entry.fn(res, flags)
            elif cls is Orphan:
                if entry.on_result is not None:
                    entry.on_result(res)
            else:
                sink(entry, res)

    def _message(self, value: int) -> None:
        self.ops_completed -= 1  # a message is not an op of this ring
        self.messages += 1
        if self.on_message is not None:
            self.on_message(value)

    def flush(self) -> bool:
        """Submit everything queued, then deliver what completed inline.

        :return: True if SQEs are still queued (the kernel answered EAGAIN or
            EBUSY: it wants completions reaped first); flush again soon.
        """
        if _get_ident() != self._owner or self._ptr is None:
            self._check_owner()
        n = lib.spg_flush(self._ptr, self._ud, self._res, self._flags, _REAP_BATCH, self._submit_ret)
        self._dispatch(n)
        if n == _REAP_BATCH:
            self.reap()
        rc = self._submit_ret[0]
        if rc >= 0:
            return False
        if rc not in (-_errno.EBUSY, -_errno.EAGAIN):
            raise os_error(rc)
        return bool(lib.spg_sq_pending(self._ptr))

    def reap(self) -> None:
        """Deliver every completion waiting in the CQ (clears the eventfd)."""
        self._check_owner()
        while True:
            n = lib.spg_reap(self._ptr, self._ud, self._res, self._flags, _REAP_BATCH)
            self._dispatch(n)
            if n < _REAP_BATCH:
                return

    def wait(self, timeout: float | None) -> bool:
        """Block (GIL released) until a completion is ready; False on timeout."""
        self._check_owner()
        rc = lib.spg_wait(self._ptr, -1 if timeout is None else int(timeout * 1e9))
        return rc in (0, -_errno.EINTR)

    # -- shutdown --------------------------------------------------------

    def close(self, timeout: float = 2.0) -> int:
        """Cancel every op in flight, wait for their CQEs, then destroy the ring.

        The sink is not called any more once this starts: entries of ops
        still in flight are orphaned (a `Completion` is still called with its
        final CQE, usually -ECANCELED).  Ops the kernel has not finished after
        ``timeout`` seconds keep their buffers forever (the kernel could still
        write to them).  Returns the number of such ops.
        """
        if self._ptr is None:
            return 0
        open_rings.discard(self)
        if os.getpid() != self._pid:
            # A forked child: the kernel ring is the parent's.  Touch nothing.
            self._ptr = None
            self._ops.clear()
            return 0
        self._owner = threading.get_ident()
        for ud, (entry, _keep) in list(self._ops.items()):
            if entry.__class__ is not Orphan:
                self.cancel(ud)  # a Completion stays: it is told of its final CQE below
        deadline = time.monotonic() + timeout
        while self._ops:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            lib.spg_submit(self._ptr)
            self.wait(min(remaining, 0.1))
            self.reap()
        stragglers = len(self._ops)
        if stragglers:
            _abandoned_buffers.extend(keep for _entry, keep in self._ops.values())
        self._ops.clear()
        lib.spg_ring_destroy(self._ptr)
        self._ptr = None
        if stragglers:
            _abandoned_buffers.extend(self._buffer_rings)  # the kernel may still write them
        else:
            for buffers in self._buffer_rings:
                buffers._free()
        self._buffer_rings.clear()
        return stragglers
