"""The thread backend: the loop ring's interface on a bounded thread pool.

Used where io_uring cannot run (see `spargio._backend`).  Every call is the
matching `os` function on `spargio._blocking`'s pool, with two refinements:

* reads and writes on streams (offset -1: pipes, sockets) never wait in a
  thread: they wait for readiness on the loop, then run once without blocking
  on the loop thread (`spargio._readiness`), so cancelling one really cancels
  and a stuck pipe cannot take pool threads from file I/O;
* O_DIRECT needs aligned memory, so ``aligned=True`` reads go through an
  ``mmap`` buffer (page aligned).

Cancellation: a stream op still waiting for readiness is dropped and did
nothing; a file op not yet started in its thread is dropped; one already
running finishes in its thread and its result is discarded (a cancelled write
may therefore have happened: its CancelledError says the outcome is unknown,
as on io_uring).  A buffer lent to a running ``readinto`` stays locked until
its thread is done with it; a cancelled ``close_fd`` still closes the fd.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import mmap
import os
import stat
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from ._blocking import PoolCalls
from ._errors import WRITE_CANCEL_NOTE
from ._readiness import READ, WRITE, NoWaitUnsupported, Readiness, read_nowait, readinto_nowait, write_nowait

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from concurrent.futures import Future

    from typing_extensions import Buffer as BufferLike

__all__ = ["ThreadIO"]

T = TypeVar("T")

_STREAM_CHUNK = 1 << 16


def _readv_into(fd: int, target: Any) -> int:
    return os.readv(fd, [target])


def _pread_aligned(fd: int, length: int, offset: int) -> bytes:
    with mmap.mmap(-1, max(length, 1)) as buf:
        n = os.preadv(fd, [buf], offset) if offset >= 0 else os.readv(fd, [buf])
        return buf[:n]


def _read_all(fd: int, offset: int, aligned: bool) -> bytes:
    if aligned:
        parts = []
        while chunk := _pread_aligned(fd, 1 << 20, offset):
            parts.append(chunk)
            if offset >= 0:  # -1 (a stream) stays -1: the kernel's position moves
                offset += len(chunk)
        return b"".join(parts)
    size = os.fstat(fd).st_size
    data = os.pread(fd, max(size - offset, 0) + 1, offset) if size > offset else b""
    parts = [data]
    offset += len(data)
    while chunk := os.pread(fd, 1 << 16, offset):
        parts.append(chunk)
        offset += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _preadinto(fd: int, target: Any, offset: int) -> int:
    return os.preadv(fd, [target], offset)


def _pwrite_aligned(fd: int, data: Any, offset: int) -> int:
    view = memoryview(data).cast("B")
    with mmap.mmap(-1, max(view.nbytes, 1)) as buf:
        buf[: view.nbytes] = view
        chunk = memoryview(buf)[: view.nbytes]
        try:
            return os.pwritev(fd, [chunk], offset) if offset >= 0 else os.writev(fd, [chunk])
        finally:
            chunk.release()


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400


def _linkat(src: bytes, dst: bytes, follow_symlinks: bool) -> None:
    """linkat(2) itself: CPython's ``os.link`` calls link(2) when
    ``follow_symlinks`` is True, and Linux's link(2) does not follow."""
    flags = _AT_SYMLINK_FOLLOW if follow_symlinks else 0
    if _libc.linkat(_AT_FDCWD, src, _AT_FDCWD, dst, flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), os.fsdecode(src), None, os.fsdecode(dst))


def _is_stream(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False  # let the read report the error
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def _open(path: str, flags: int, mode: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, mode)


def _fsync(fd: int, datasync: bool) -> None:
    (os.fdatasync if datasync else os.fsync)(fd)


def _stat(path: str | None, fd: int, follow_symlinks: bool) -> os.stat_result:
    if path is None:
        return os.fstat(fd)
    return os.stat(path, follow_symlinks=follow_symlinks)


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if mode:
        raise OSError(95, "fallocate modes other than 0 need the io_uring backend")
    os.posix_fallocate(fd, offset, length)


def _close_result(job: Future[int]) -> None:
    if not job.cancelled() and job.exception() is None:
        os.close(job.result())


class _PendingCall:
    """A pool call that leaves something behind (an fd, a new file), whose caller may
    leave before it ends.

    Whichever comes second, the call's end or its caller's cancel, runs
    ``release(job)`` on what it left; the lock makes "second" exact.
    """

    __slots__ = ("_ended", "_io", "_orphaned", "_release")

    def __init__(self, io: ThreadIO, release: Callable[[Future[Any]], None]) -> None:
        self._io = io
        self._release = release
        self._ended = self._orphaned = False

    def ended(self, job: Future[Any]) -> None:
        with self._io._calls.lock:
            self._ended = True
            orphaned = self._orphaned
        if orphaned:
            self._release(job)

    def orphan(self, job: Future[Any]) -> None:
        with self._io._calls.lock:
            self._orphaned = True
            ended = self._ended
        if ended:
            self._release(job)


def _releasing_fd(if_orphaned: Callable[[], None] | None) -> Callable[[Future[int]], None]:
    def release(job: Future[int]) -> None:
        _close_result(job)
        if if_orphaned is not None:
            if_orphaned()

    return release


def _write_and_close(fd: int, data: BufferLike, offset: int) -> int:
    """`LoopRing.write_and_close` in one thread hop: write all of ``data``, then close ``fd``
    (also when the write failed)."""
    try:
        with memoryview(data) as view, view.cast("B") as octets:
            done = 0
            while done < octets.nbytes:
                rest = octets[done:]
                done += os.pwrite(fd, rest, offset + done) if offset >= 0 else os.write(fd, rest)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return done


def _write_file(path: str, data: BufferLike, flags: int, mode: int, fsync: bool, offset: int) -> int:
    """`LoopRing.write_file`'s steps in one thread hop: open, write all at ``offset``, fsync, close."""
    fd = os.open(path, flags | os.O_CLOEXEC, mode)
    try:
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        with memoryview(data) as view, view.cast("B") as octets:
            done = 0
            while done < octets.nbytes:
                done += os.write(fd, octets[done:])  # from the fd's position: a FIFO has no offsets
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return done


def _name(path: bytes | None) -> str | None:
    """Paths travel as bytes; errors should name them as ``os`` does (str)."""
    return None if path is None else os.fsdecode(path)


class ThreadIO:
    """The same interface as `LoopRing`, on threads."""

    backend = "threads"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_ref = weakref.ref(loop)
        self._readiness = Readiness(loop)
        self._calls = PoolCalls()  # pool calls, and stream ops waiting for readiness
        self.closed = False

    @property
    def in_flight(self) -> int:
        """Ops not finished yet, including ones whose caller was cancelled but
        whose thread is still running them (their outcome is not known yet)."""
        return self._calls.count

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop_ref()

    async def _call(self, fn: Callable[..., T], *args: Any, holding: memoryview | None = None) -> T:
        """Run ``fn`` on the pool; it counts as in flight until its thread is done with it."""
        return await self._calls.call(fn, *args, holding=holding)

    async def _stream(
        self,
        fd: int,
        direction: bool,
        nowait: Callable[..., T],
        blocking: Callable[..., T],
        *args: Any,
        holding: memoryview | None = None,
        cancel_note: str | None = None,
    ) -> T:
        """One read or write on a stream fd: wait for readiness on the loop, then ``nowait(fd, *args)``.

        Waiting counts as in flight, and a cancel while waiting leaves
        nothing behind.  Fds the loop cannot watch (regular files, some
        devices), and files that refuse ``RWF_NOWAIT`` (ttys), run
        ``blocking(fd, *args)`` on the pool instead.  ``holding`` is released
        when the op is done with it.
        """
        on_the_pool = False
        try:
            while True:
                self._calls.started()
                try:
                    watched = await self._readiness.wait(fd, direction)
                finally:
                    self._calls.finished()
                if not watched:
                    break
                try:
                    return nowait(fd, *args)
                except BlockingIOError:
                    continue  # another waiter took the data (or the room) first
                except NoWaitUnsupported:
                    break
            on_the_pool = True
            return await self._calls.call(blocking, fd, *args, holding=holding, note_if_cancelled_running=cancel_note)
        finally:
            if holding is not None and not on_the_pool:
                holding.release()

    async def read(self, fd: int, length: int, offset: int, aligned: bool = False) -> bytes:
        if aligned:
            return await self._call(_pread_aligned, fd, length, offset)
        if offset < 0:
            return await self._stream(fd, READ, read_nowait, os.read, length)
        return await self._call(os.pread, fd, length, offset)

    async def read_all(self, fd: int, offset: int, aligned: bool = False) -> bytes:
        """Read to EOF: from a file in one thread hop, from a stream chunk by chunk as it is ready.

        An offset on a stream (a FIFO, a socket, a tty) is ignored, as io_uring
        ignores it: ``read_bytes`` of a FIFO reads what its writer sends.
        """
        if offset >= 0 and not aligned and _is_stream(fd):
            offset = -1
        if offset >= 0 or aligned:
            return await self._call(_read_all, fd, offset, aligned)
        parts = []
        while chunk := await self._stream(fd, READ, read_nowait, os.read, _STREAM_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    async def readinto(self, fd: int, target: Any, offset: int) -> int:
        view = memoryview(target)
        if view.readonly:
            view.release()
            raise TypeError("readinto() needs a writable buffer, not a read-only one")
        # The view is released when the op is done with it: a cancelled caller
        # may leave its thread still filling it.
        if offset < 0:
            return await self._stream(fd, READ, readinto_nowait, _readv_into, view, holding=view)
        return await self._call(_preadinto, fd, view, offset, holding=view)

    async def write(self, fd: int, data: BufferLike, offset: int, aligned: bool = False) -> int:
        """Write some of ``data``; on a stream, as much as there is room for once it is writable."""
        if aligned:
            return await self._calls.call(
                _pwrite_aligned, fd, data, offset, note_if_cancelled_running=WRITE_CANCEL_NOTE
            )
        if offset < 0:
            return await self._stream(fd, WRITE, write_nowait, os.write, data, cancel_note=WRITE_CANCEL_NOTE)
        return await self._calls.call(os.pwrite, fd, data, offset, note_if_cancelled_running=WRITE_CANCEL_NOTE)

    async def read_many(
        self, fds: Sequence[int], offsets: Sequence[int], lengths: Sequence[int], aligned: bool = False
    ) -> list[bytes]:
        reads = (self.read(f, n, o, aligned) for f, o, n in zip(fds, offsets, lengths, strict=True))
        return list(await asyncio.gather(*reads))

    async def write_many(
        self, fds: Sequence[int], offsets: Sequence[int], datas: Sequence[BufferLike], aligned: bool = False
    ) -> list[int]:
        writes = (self.write(f, d, o, aligned) for f, o, d in zip(fds, offsets, datas, strict=True))
        return list(await asyncio.gather(*writes))

    async def fsync(self, fd: int, datasync: bool) -> None:
        await self._call(_fsync, fd, datasync)

    async def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        await self._call(_fallocate, fd, mode, offset, length)

    async def ftruncate(self, fd: int, length: int) -> None:
        await self._call(os.ftruncate, fd, length)

    async def open(self, path: bytes, flags: int, mode: int, *, if_orphaned: Callable[[], None] | None = None) -> int:
        """Open on the pool; if the caller is cancelled mid-open, the fd it yields is closed.

        ``if_orphaned`` is then called once the open has ended, before the
        open stops counting as in flight, as `LoopRing.open` does.
        """
        return await self._pending(_releasing_fd(if_orphaned), _open, os.fsdecode(path), flags, mode)

    async def write_file(
        self, path: bytes, data: BufferLike, flags: int, mode: int, fsync: bool,
        *, offset: int = 0, if_orphaned: Callable[[], None] | None = None,
    ) -> int:  # fmt: skip
        """Open, write all of ``data``, fsync if asked, close: one thread hop (see `LoopRing.write_file`).

        Cancelled before its thread starts, nothing happens; once running, it
        finishes, then ``if_orphaned`` runs.
        """
        release = (lambda _job: if_orphaned()) if if_orphaned is not None else (lambda _job: None)
        fspath = os.fsdecode(path)
        return await self._pending(
            release, _write_file, fspath, data, flags, mode, fsync, offset, note=WRITE_CANCEL_NOTE
        )

    async def write_and_close(self, fd: int, data: BufferLike, offset: int) -> int:
        """Write all of ``data`` at ``offset`` (-1: the fd's position), then close ``fd``: one
        thread hop (see `LoopRing.write_and_close`; here a short write is written on in the
        thread, so the result is always ``len(data)``).  The fd is closed whatever happens,
        also when the caller is cancelled before the thread starts."""
        self._readiness.forget(fd)
        job = self._calls.submit(_write_and_close, fd, data, offset)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError as exc:
            if job.cancelled():
                self.close_fd_detached(fd)
            else:
                exc.add_note(WRITE_CANCEL_NOTE)
            raise

    async def _pending(
        self, release: Callable[[Future[Any]], None], fn: Callable[..., T], *args: Any, note: str = ""
    ) -> T:
        """``fn(*args)`` on the pool; if the caller is cancelled, ``release(job)`` runs once it has
        ended (and the CancelledError carries ``note`` if the call had started)."""
        pending = _PendingCall(self, release)
        job = self._calls.submit(fn, *args, ended=pending.ended)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError as exc:
            pending.orphan(job)
            if note and not job.cancelled():
                exc.add_note(note)
            raise

    async def close_fd(self, fd: int) -> None:
        """Close ``fd`` on the pool.  If the caller is cancelled first, the fd is
        closed all the same: here, if the pool had not started the close."""
        self._readiness.forget(fd)
        job = self._calls.submit(os.close, fd)
        try:
            await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            if job.cancelled():
                self.close_fd_detached(fd)
            raise

    def close_fd_detached(self, fd: int) -> None:
        """Close ``fd`` now; a close error on a read-only fd carries no information."""
        self._readiness.forget(fd)
        try:
            os.close(fd)
        except OSError:
            pass

    async def stat(self, path: bytes | None, fd: int = -1, follow_symlinks: bool = True) -> os.stat_result:
        return await self._call(_stat, _name(path), fd, follow_symlinks)

    async def rename(self, old: bytes, new: bytes) -> None:
        await self._call(os.rename, os.fsdecode(old), os.fsdecode(new))

    async def unlink(self, path: bytes) -> None:
        await self._call(os.unlink, os.fsdecode(path))

    async def rmdir(self, path: bytes) -> None:
        await self._call(os.rmdir, os.fsdecode(path))

    async def mkdir(self, path: bytes, mode: int) -> None:
        await self._call(os.mkdir, os.fsdecode(path), mode)

    async def link(self, src: bytes, dst: bytes, follow_symlinks: bool) -> None:
        await self._call(_linkat, src, dst, follow_symlinks)

    async def symlink(self, target: bytes, link: bytes) -> None:
        await self._call(os.symlink, os.fsdecode(target), os.fsdecode(link))

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the pool with the caller's contextvars (see `PoolCalls.call`)."""
        return await self._calls.call(contextvars.copy_context().run, fn, *args)

    def close(self) -> None:
        """Nothing to release: the pool is shared by the process."""
        self.closed = True
