"""`AsyncFile`: a file whose every read, write and sync is one io_uring op.

Theory of operation
-------------------
An `AsyncFile` owns one fd and keeps the file position itself: reads and
writes on seekable files are positioned (``pread``/``pwrite`` semantics,
offset = ``self._pos``), so several files may share an fd number's kernel
position without surprise and a cancelled op leaves the position unchanged.
Streams (pipes, sockets, ttys) are not seekable and use offset -1 ("the
kernel's position"); files opened for append write at -1 too, so O_APPEND
appends.

``_ahead`` holds bytes already read from the file but not yet returned
(filled by ``readline`` and line iteration).  They sit at ``[_pos, _pos +
len(_ahead))``; every read consumes them first, and seek, write and truncate
drop them on seekable files (where they are only a cache).

Each method looks up the running loop's I/O object when it runs, so a file
may be used from any loop, on any thread, one call at a time.

Cancellation: if the awaiting task is cancelled, the op in flight is
cancelled in the kernel (io_uring backend) or abandoned in its thread (thread
backend); the position does not move.  A cancelled write's outcome is
unknown: the bytes may or may not be in the file.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import io
import mmap
import os
import stat as _stat
import warnings
from typing import TYPE_CHECKING, Any

from .. import _limits
from .._backend import current_io
from .._blocking import limited
from .._errors import ClosedError
from .._limits import MAX_OFFSET, READ_GUESS
from . import _args
from ._args import MAX_CHUNK, check_length, check_offset, data_view
from ._text import AsyncTextFile

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable
    from types import TracebackType

__all__ = ["AsyncFile", "AsyncTextFile", "OpenCall", "open", "open_as", "open_file", "read_exact", "write_all"]

_MAX_OFFSET = MAX_OFFSET
_STILL_WRITING = (
    "spargio: the file's buffered bytes are still being written (exactly once); its next call waits for them"
)
_STILL_WRITING_AT_CLOSE = (
    "spargio: the file's buffered bytes are still being written (exactly once), then its fd is closed"
)
_S_IFMT = 0o170000
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_LINE_CHUNK = 64 * 1024


async def read_exact(fd: int, size: int, offset: int, *, direct: bool = False) -> bytes:
    """Read ``size`` bytes at ``offset``, stopping early only at EOF.

    A single op unless ``size`` exceeds one kernel transfer (`MAX_CHUNK`); a
    short read from a regular file means EOF (the kernel retries partial
    buffered reads itself).
    """
    io_ = current_io()
    if size <= _limits.MAX_CHUNK:
        return await io_.read(fd, size, offset, direct)
    out = bytearray(size)
    view = memoryview(out)
    got = 0
    while got < size:
        step = min(_limits.MAX_CHUNK, size - got)
        n = await io_.readinto(fd, view[got : got + step], offset + got if offset >= 0 else -1)
        got += n
        if n < step:
            break
    view.release()
    del out[got:]
    return bytes(out)


async def write_all(fd: int, data: memoryview, offset: int, *, direct: bool = False) -> int:
    """Write every byte of ``data`` at ``offset`` (-1: the kernel's position).

    Short writes (pipes, signals, huge buffers) are continued until all bytes
    are in.  On cancellation the bytes written so far stay written (the
    CancelledError then says how many); the outcome of the op in flight is
    unknown (its note says so).
    """
    io_ = current_io()
    total = data.nbytes
    if total <= _limits.MAX_CHUNK:
        written = await io_.write(fd, data, offset, direct)
        if written == total:
            return total
    else:
        written = 0
    try:
        while written < total:
            step = data[written : written + _limits.MAX_CHUNK]
            n = await io_.write(fd, step, offset + written if offset >= 0 else -1, direct)
            if n == 0:
                raise OSError(5, "write made no progress (wrote 0 bytes)")
            written += n
    except asyncio.CancelledError as exc:
        if written:
            exc.add_note(f"spargio: the write was cancelled after {written} of its {total} bytes were written")
        raise
    return total


class AsyncFile:
    """A binary file opened by `spargio.fs.open`; every I/O method is a coroutine.

    Use it as ``async with await spargio.fs.open(...) as f`` or
    ``async with spargio.fs.open(...) as f``.  Reads and writes go through the
    running loop's io_uring (or the thread backend).

    It behaves as ``io.BufferedReader``/``BufferedWriter``/``BufferedRandom``
    (``buffering=0``: as the unbuffered ``io.FileIO``): writes smaller than the
    buffer wait in it until it fills, `flush`, a read, a seek or `close`;
    ``read(n)`` returns ``n`` bytes unless EOF comes first, `read1` does at
    most one op.  Positioned calls (`read_at`, `write_at`) flush first.
    """

    def __init__(
        self,
        fd: int,
        *,
        name: Any,
        mode: str,
        flags: int,
        closefd: bool = True,
        buffering: int = -1,
    ) -> None:
        st = os.fstat(fd)
        kind = st.st_mode & _S_IFMT
        if kind == _stat.S_IFDIR:  # open(2) takes a directory O_RDONLY; the builtin refuses it
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        self._fd = fd
        self.name = name
        self.mode = mode
        self._flags = flags
        self._closefd = closefd
        self._seekable = seekable = kind in (_stat.S_IFREG, _stat.S_IFBLK)
        self._append = append = bool(flags & os.O_APPEND)
        self._direct = direct = bool(flags & _O_DIRECT)
        access = flags & os.O_ACCMODE
        self._readable = access in (os.O_RDONLY, os.O_RDWR)
        self._writable = access in (os.O_WRONLY, os.O_RDWR)
        self._pos = st.st_size if append and seekable else 0
        self._ahead = b""
        # Buffered writes not yet in the file.  On a seekable file (not
        # appending) they belong at [_pos - len(_pending), _pos).
        self._pending = bytearray()
        if buffering < 0:
            buffering = st.st_blksize if st.st_blksize > 1 else io.DEFAULT_BUFFER_SIZE
        elif buffering == 1:
            buffering = io.DEFAULT_BUFFER_SIZE  # line buffering is a text-mode thing, as in io
        self._buffer_size = 0 if direct else buffering
        self._writing: asyncio.Future[int] | None = None  # buffered bytes going out after a cancel
        self._closed = False
        self._detached: str | None = None  # why the file is unusable, once detached
        self._raw: AsyncFile | None = None
        self.limiter: Any = None

    # -- state -----------------------------------------------------------

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<spargio.fs.AsyncFile name={self.name!r} mode={self.mode!r} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def readable(self) -> bool:
        self._check_open()
        return self._readable

    def writable(self) -> bool:
        self._check_open()
        return self._writable

    def seekable(self) -> bool:
        self._check_open()
        return self._seekable

    def isatty(self) -> bool:
        """Whether the fd is a terminal (one ioctl, done inline)."""
        self._check_open()
        return os.isatty(self._fd)

    @property
    def buffer_size(self) -> int:
        """The write buffer's size and the read-ahead's least read (0: unbuffered)."""
        return self._buffer_size

    @property
    def direct(self) -> bool:
        """Whether the file was opened with O_DIRECT (buffers are then aligned for you)."""
        return self._direct

    @property
    def raw(self) -> AsyncFile:
        """The unbuffered file under this one: itself if ``buffering=0``, else an unbuffered
        `AsyncFile` on the same fd (which does not close it), positioned where this file's
        I/O has reached in the file (its pending writes and read-ahead aside)."""
        if not self._buffer_size:
            return self
        if self._raw is None or self._raw.closed:
            raw = AsyncFile.__new__(AsyncFile)
            raw.__dict__.update(self.__dict__)
            raw._closefd, raw._buffer_size, raw._pending, raw._ahead, raw._raw = False, 0, bytearray(), b"", None
            raw._pos = self._pos - len(self._pending) + len(self._ahead)
            self._raw = raw
        return self._raw

    @property
    def wrapped(self) -> io.FileIO:
        """anyio's ``wrapped``: a synchronous ``io.FileIO`` on the same fd (it does not close
        it), for code that wants a plain file object.  Its calls block; its position is the
        kernel's, which spargio's positioned I/O does not move."""
        self._check_open()
        return io.FileIO(self._fd, self.mode.replace("b", "") or "r", closefd=False)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(self._detached or "I/O operation on closed file")

    def _check_readable(self) -> None:
        self._check_open()
        if not self._readable:
            raise io.UnsupportedOperation("read: file not open for reading")

    def _check_writable(self) -> None:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("write: file not open for writing")

    def _check_seekable(self, what: str) -> None:
        if not self._seekable:
            raise io.UnsupportedOperation(f"{what}: the file is not seekable")

    def _read_offset(self) -> int:
        return self._pos + len(self._ahead) if self._seekable else -1

    def _take_ahead(self, size: int) -> bytes:
        data, self._ahead = self._ahead[:size], self._ahead[size:]
        self._pos += len(data)
        return data

    # Reads that need an op as well as the read-ahead take the read-ahead only
    # once the op has completed, so a cancelled read consumed nothing.  On a
    # seekable file, a read first writes out pending writes (its bytes may be
    # among them), as io.BufferedRandom does; on a stream the two directions
    # are independent.

    # -- reading ---------------------------------------------------------

    async def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all, to EOF, if ``size`` is negative or None).

        Buffered (the default), ``read(n)`` returns ``n`` bytes unless EOF comes first,
        also from a pipe or socket; unbuffered, it does one op, as ``io.FileIO``.

        :return: ``b""`` at EOF.
        """
        self._check_readable()
        if self._writing is not None:
            await self._finish_writing()
        if type(size) is int and size >= self._buffer_size and self._seekable and not self._ahead and not self._pending:
            # The common case, kept short: a read of a buffer's worth or more goes straight out.
            data = await read_exact(self._fd, size, self._pos, direct=self._direct)
            self._pos += len(data)
            return data
        if size is None:
            size = -1
        elif isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if self._pending and self._seekable:
            await self._write_pending()
        if size < 0:
            rest = await current_io().read_all(self._fd, self._read_offset(), self._direct)
            head = self._take_ahead(len(self._ahead))
            self._pos += len(rest)
            return head + rest
        if not self._seekable:
            if not self._buffer_size:
                return self._take_ahead(size) if self._ahead else await self._read_op(size)
            return await self._read_stream(size)
        return await self._read_positioned(size)

    async def _read_positioned(self, size: int) -> bytes:
        if self._ahead:
            if len(self._ahead) >= size:
                return self._take_ahead(size)
            rest = await read_exact(self._fd, size - len(self._ahead), self._read_offset(), direct=self._direct)
            head = self._take_ahead(size)
            self._pos += len(rest)
            return head + rest
        if size < self._buffer_size:  # one buffer-sized read; the rest waits in the read-ahead
            data = await current_io().read(self._fd, self._buffer_size, self._pos, False)
            self._ahead = data[size:]
            self._pos += min(size, len(data))
            return data[:size]
        data = await read_exact(self._fd, size, self._pos, direct=self._direct)
        self._pos += len(data)
        return data

    async def _read_op(self, size: int) -> bytes:
        data = await current_io().read(self._fd, check_length(size), self._read_offset(), self._direct)
        self._pos += len(data)
        return data

    async def _fill_ahead(self, size: int) -> bool:
        """One read of ``size`` bytes onto the end of the read-ahead; False at EOF."""
        data = await current_io().read(self._fd, size, self._read_offset(), self._direct)
        self._ahead += data
        return bool(data)

    async def _read_stream(self, size: int) -> bytes:
        """A stream's ``read(size)``: until ``size`` bytes or EOF.  Each op's bytes go
        straight into the read-ahead, so a cancelled read loses nothing already read."""
        while len(self._ahead) < size:
            chunk = await current_io().read(self._fd, max(size - len(self._ahead), self._buffer_size), -1, False)
            if not chunk:
                break
            self._ahead += chunk
        return self._take_ahead(size)

    async def readall(self) -> bytes:
        """Read to EOF (``read()``)."""
        return await self.read(-1)

    async def read1(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes with at most one op: the read-ahead if there is
        any, else one read (of the buffer's size if ``size`` is negative)."""
        self._check_readable()
        if self._writing is not None:
            await self._finish_writing()
        if self._ahead:
            return self._take_ahead(len(self._ahead) if size < 0 else size)
        if self._pending and self._seekable:
            await self._write_pending()
        return await self._read_op((self._buffer_size or READ_GUESS) if size < 0 else size)

    async def peek(self, size: int = 0) -> bytes:
        """The bytes a read would return next, without consuming them: the read-ahead,
        filled by one read if it is empty (``b""`` only at EOF)."""
        self._check_readable()
        if self._writing is not None:
            await self._finish_writing()
        if not self._ahead:
            if self._pending and self._seekable:
                await self._write_pending()
            want = self._buffer_size or max(size, 1)
            self._ahead = await current_io().read(self._fd, want, self._read_offset(), self._direct)
        return self._ahead

    async def readinto(self, buffer: Any) -> int:
        """Read into a writable buffer (``bytearray``, ``memoryview``, numpy array...).

        Buffered, a stream is read until the buffer is full or EOF (one op for a regular
        file, whose short read means EOF).  The buffer is locked (cannot be resized)
        while an op is in flight.

        :raises TypeError: ``buffer`` is read-only, e.g. ``bytes``.
        :return: the number of bytes read; 0 at EOF.
        """
        self._check_readable()
        if self._writing is not None:
            await self._finish_writing()
        view = _writable_view(buffer)
        try:
            if self._pending and self._seekable:
                await self._write_pending()
            if not self._seekable and self._buffer_size:
                return await self._readinto_stream(view)
            return await self._readinto_once(view)
        finally:
            view.release()  # not held by an exception's frames: the caller may resize its buffer

    async def _readinto_stream(self, view: memoryview) -> int:
        """A stream's buffered ``readinto``: until ``view`` is full or EOF.  Cancelled, the
        bytes already in ``view`` go back to the read-ahead: the read consumed nothing."""
        got = min(len(self._ahead), view.nbytes)
        if got:
            view[:got] = self._take_ahead(got)
        try:
            while got < view.nbytes:
                n = await current_io().readinto(self._fd, view[got:], -1)
                if not n:
                    break
                got += n
        except BaseException:
            self._ahead = bytes(view[:got]) + self._ahead
            raise
        return got

    async def readinto1(self, buffer: Any) -> int:
        """Read into ``buffer`` with at most one op."""
        self._check_readable()
        if self._writing is not None:
            await self._finish_writing()
        view = _writable_view(buffer)
        try:
            if self._pending and self._seekable:
                await self._write_pending()
            if self._ahead:
                got = min(len(self._ahead), view.nbytes)
                view[:got] = self._take_ahead(got)
                return got
            return await self._readinto_once(view)
        finally:
            view.release()

    async def _readinto_once(self, view: memoryview) -> int:
        got = 0
        if self._ahead:
            got = min(len(self._ahead), view.nbytes)
            view[:got] = self._ahead[:got]
            if got == view.nbytes or not self._seekable:
                self._take_ahead(got)
                return got
        n = await current_io().readinto(self._fd, view[got:], self._read_offset())
        self._take_ahead(got)
        self._pos += n
        return got + n

    async def read_at(self, offset: int, size: int) -> bytes:
        """Read up to ``size`` bytes at ``offset`` without moving the file position.

        :raises ValueError: negative ``offset`` or ``size`` (checked before submitting).
        :raises io.UnsupportedOperation: the file is a stream.
        :return: fewer bytes than ``size`` only at EOF; ``b""`` past it.
        """
        if type(offset) is not int or offset < 0 or offset > _MAX_OFFSET:
            offset = check_offset(offset)
        if self._writing is not None:
            await self._finish_writing()
        if self._pending:
            await self._write_pending()
        if type(size) is not int or size < 0 or size > MAX_CHUNK:
            size = check_length(size)
            if size > MAX_CHUNK:
                self._check_readable()
                self._check_seekable("read_at")
                return await read_exact(self._fd, size, offset, direct=self._direct)
        if self._closed or not self._readable or not self._seekable:
            self._check_readable()
            self._check_seekable("read_at")
        return await current_io().read(self._fd, size, offset, self._direct)

    async def readinto_at(self, offset: int, buffer: Any) -> int:
        """Read into ``buffer`` at ``offset`` without moving the file position."""
        offset = check_offset(offset)
        self._check_readable()
        if self._writing is not None:
            await self._finish_writing()
        self._check_seekable("readinto_at")
        if self._pending:
            await self._write_pending()
        return await current_io().readinto(self._fd, buffer, offset)

    async def readline(self, size: int | None = -1) -> bytes:
        """Read one line, up to and including ``b"\\n"`` (or ``size`` bytes)."""
        if size == 0 and not self._readable:
            self._check_open()
            return b""  # as io's: a zero-length line needs no reading
        self._check_readable()
        if self._writing is not None:
            await self._finish_writing()
        if self._pending and self._seekable:
            await self._write_pending()
        limit = size if size is not None and size >= 0 else None
        while True:
            end = self._ahead.find(b"\n")
            if end >= 0 and (limit is None or end < limit):
                return self._take_ahead(end + 1)
            if limit is not None and len(self._ahead) >= limit:
                return self._take_ahead(limit)
            chunk = await current_io().read(self._fd, _LINE_CHUNK, self._read_offset(), self._direct)
            if not chunk:
                return self._take_ahead(len(self._ahead) if limit is None else limit)
            self._ahead += chunk

    async def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        async for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint < total:  # as io: the lines may add up to exactly ``hint`` and go on
                break
        return lines

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # -- writing ---------------------------------------------------------

    async def write(self, data: Any) -> int:
        """Write all of ``data`` at the file position (at the end in append mode).

        Buffered (the default), data that fits in the buffer waits there: it reaches
        the file when the buffer fills, or on `flush`, a read, a seek or `close`.  Else
        it is written now, with whatever was pending, in one op where it can be.

        :raises TypeError: ``data`` is not bytes-like.
        :return: ``len(data)`` in bytes.

        If the task is cancelled while a write is in flight, the op is cancelled in
        the kernel if it has not happened yet: whether its bytes reached the file is
        unknown, and the position does not move.  Pending bytes of a seekable file stay
        pending (writing them again at their offset is harmless).  Those of a stream or
        an append-mode file must go exactly once: their write goes on after the cancel
        and the file's next call waits for it (raising its error, if it failed).
        """
        self._check_writable()
        if self._writing is not None:
            await self._finish_writing()
        view = data_view(data)
        n = view.nbytes
        positioned = self._seekable and not self._append
        if self._seekable:
            self._ahead = b""
        if self._buffer_size:
            if len(self._pending) + n <= self._buffer_size:
                self._pending += view
                self._pos += n
                return n
            if self._pending and n <= 4 * self._buffer_size:
                # One op for the pending bytes and these: the copy costs less than an op.
                start = self._pos - len(self._pending)
                payload = self._pending + view
                await self._write_out(memoryview(payload), start, len(self._pending))
                self._pending = bytearray()
                if positioned:  # (an append's _write_out took the position from the kernel)
                    self._pos += n
                return n
            if self._pending:
                await self._write_pending()
        if positioned:
            written = await write_all(self._fd, view, self._pos, direct=self._direct)
            self._pos += written
            return written
        if self._append and not n:
            return 0  # nothing written: the kernel's offset says nothing about the end of the file
        return await self._write_out(view, -1)

    async def _write_out(self, view: memoryview, start: int, buffered: int = 0) -> int:
        """Write ``view`` (pending bytes first, perhaps) at ``start`` (-1 where the kernel's
        position or O_APPEND decides).

        On a stream or an append file, bytes that were buffered must go exactly once: a
        retry could write them twice, a cancelled op could drop them.  That write runs on
        in the background if its caller is cancelled (see `_finish_writing`).
        """
        positioned = self._seekable and not self._append
        if not positioned and buffered:
            return await self._write_exactly_once(view, buffered)
        n = await write_all(self._fd, view, start if positioned else -1, direct=self._direct)
        if self._append and self._seekable:
            self._ahead = b""
            self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
        return n

    async def _write_exactly_once(self, view: memoryview, buffered: int) -> int:
        """Write buffered bytes of a stream or an append file in a task of their own.

        Cancelled, the caller leaves at once but the write goes on: the file's next call
        waits for it (and raises its error, if it failed), so the bytes are neither lost
        nor written twice.
        """
        writing = asyncio.ensure_future(write_all(self._fd, view, -1, direct=self._direct))
        writing.add_done_callback(_retrieve)
        try:
            n = await asyncio.shield(writing)
        except asyncio.CancelledError as exc:
            if not writing.done():
                self._writing = writing
                exc.add_note(_STILL_WRITING)
            raise
        except OSError as exc:
            exc.add_note(f"spargio: {buffered} buffered bytes were dropped (written again, they could go twice)")
            raise
        self._after_append()
        return n

    async def _finish_writing(self) -> None:
        """Wait for a buffered write that outlived its cancelled caller; raise its error.

        Cancelled again, the write still goes on (and is waited for by the next call)."""
        writing = self._writing
        assert writing is not None
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError as exc:
            if not writing.done():
                exc.add_note(_STILL_WRITING)
                raise
        finally:
            if writing.done():
                self._writing = None
        if writing.cancelled():  # (only when its loop is closing)
            raise OSError(errno.EIO, "a buffered write of this file was cancelled with its event loop")
        writing.result()  # its OSError, if it failed: reported once, by the call after it
        self._after_append()

    def _after_append(self) -> None:
        if self._append and self._seekable:
            self._ahead = b""
            self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)

    async def _write_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        # The buffer goes out as it is and a fresh one takes its place: a cancelled op may
        # still hold it (the thread backend lends it until its thread is done), so it is
        # never resized again.
        self._pending = bytearray()
        try:
            await self._write_out(memoryview(pending), self._pos - len(pending), len(pending))
        except BaseException:
            if self._seekable and not self._append:
                self._pending = pending + self._pending  # a copy: written again later, at the same offset
            raise

    async def write_at(self, offset: int, data: Any) -> int:
        """Write all of ``data`` at ``offset`` without moving the file position
        (pending writes go first).

        On Linux a file opened with O_APPEND ignores ``offset`` and appends.
        """
        offset = check_offset(offset)
        self._check_writable()
        if self._writing is not None:
            await self._finish_writing()
        self._check_seekable("write_at")
        if self._pending:
            await self._write_pending()
        self._ahead = b""
        return await write_all(self._fd, data_view(data), offset, direct=self._direct)

    async def writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            await self.write(line)

    async def flush(self) -> None:
        """Write the pending bytes to the file (no durability: see `fsync`).

        Cancelled, see `write`: a seekable file's pending bytes stay pending, a stream's
        or an append file's are written on.  As ``io.BufferedRandom``'s, it drops a
        read-write file's read-ahead too."""
        self._check_open()
        if self._writing is not None:
            await self._finish_writing()
        if self._pending:
            await self._write_pending()
        if self._writable and self._seekable:
            self._ahead = b""

    async def fsync(self) -> None:
        """Flush, then the file's data and metadata to the device (IORING_OP_FSYNC)."""
        await self.flush()
        await current_io().fsync(self._fd, False)

    async def fdatasync(self) -> None:
        """Flush, then the file's data (and the metadata needed to read it back)."""
        await self.flush()
        await current_io().fsync(self._fd, True)

    async def truncate(self, size: int | None = None) -> int:
        """Resize the file to ``size`` bytes (default: the current position)."""
        self._check_writable()
        self._check_seekable("truncate")
        if size is not None:
            size = check_length(size)
        await self.flush()
        new_size = self._pos if size is None else size  # after the flush: an append moves the position
        self._ahead = b""
        await current_io().ftruncate(self._fd, new_size)
        return new_size

    async def allocate(self, offset: int, length: int, *, keep_size: bool = False) -> None:
        """Reserve disk space (fallocate); ``keep_size`` leaves the file size alone."""
        self._check_writable()
        if self._writing is not None:
            await self._finish_writing()
        await current_io().fallocate(
            self._fd, 1 if keep_size else 0, check_offset(offset), check_length(length, "length")
        )

    # -- position --------------------------------------------------------

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the file position (pending writes go first); returns the new absolute position."""
        self._check_open()
        if self._writing is not None:
            await self._finish_writing()
        self._check_seekable("seek")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"offset must be an int, not {type(offset).__name__}")
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if self._pending:
            await self._write_pending()
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._pos + offset
        else:
            target = (await current_io().stat(None, self._fd)).st_size + offset
        if target < 0:  # what lseek(2) says, and so io
            raise OSError(errno.EINVAL, f"{os.strerror(errno.EINVAL)}: negative seek position {target}")
        self._ahead = b""
        self._pos = check_offset(target)
        return self._pos

    async def tell(self) -> int:
        """The file position (counting pending writes)."""
        self._check_open()
        if self._writing is not None:
            await self._finish_writing()
        self._check_seekable("tell")
        return self._pos

    async def stat(self) -> os.stat_result:
        """The file's status (IORING_OP_STATX on the open fd), pending writes flushed first."""
        await self.flush()
        return await current_io().stat(None, self._fd)

    # -- closing ---------------------------------------------------------

    async def close(self) -> None:
        """Flush, then close the fd (IORING_OP_CLOSE).  Closing twice is a no-op.

        A file open for writing waits for the close, whose error (EIO from a
        network file system, say) is raised; so is the flush's, after the fd is
        closed.  A read-only file's close goes out with the loop's next
        submission and returns at once: its result carries no information, and
        not waiting saves a loop iteration per file (a GET of a small file is
        open, read, close).  Cancelled during the flush, the fd is still closed:
        at once on a seekable file (its pending bytes' outcome is unknown); on a
        stream or an append file once its pending bytes are out, exactly once.
        """
        if self._closed:
            if self._detached:
                raise ValueError(self._detached)  # as io's
            return
        if self._writing is not None:
            try:
                await self._finish_writing()
            except BaseException:
                self._close_after_writing()
                raise
        if self._pending and self._closefd:
            if not self._seekable or self._append:
                await self._close_exactly_once()
                return
            if await self._write_pending_and_close():
                return
        try:
            if self._pending:
                await self._write_pending()
        except BaseException:
            self._mark_closed()
            if self._closefd:
                current_io().close_fd_detached(self._fd)
            raise
        self._mark_closed()
        if self._closefd:
            if self._writable:
                await current_io().close_fd(self._fd)
            else:
                current_io().close_fd_detached(self._fd)

    def _close_after_writing(self) -> None:
        """Mark the file closed; its fd is closed once the background write (if any) has ended."""
        writing = self._writing
        self._mark_closed()
        if not self._closefd:
            return
        io_, fd = current_io(), self._fd
        if writing is None or writing.done():
            _close_quietly(io_, fd)
        else:
            writing.add_done_callback(lambda _writing: _close_quietly(io_, fd))

    async def _close_exactly_once(self) -> None:
        """Close a stream or an append file with bytes pending: write them and close the fd
        in a task of their own, so that a cancelled close neither drops them nor writes them
        twice (the task goes on and closes the fd when they are out)."""
        pending = self._pending
        self._mark_closed()
        closing = asyncio.ensure_future(_write_all_and_close(current_io(), self._fd, memoryview(pending)))
        closing.add_done_callback(_retrieve)
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError as exc:
            if not closing.done():
                exc.add_note(_STILL_WRITING_AT_CLOSE)
            raise

    async def _write_pending_and_close(self) -> bool:
        """The pending bytes and the close as one linked pair; True if the file is closed
        (False: the write came up short, the rest is pending again and the fd open)."""
        pending, self._pending = self._pending, bytearray()
        positioned = self._seekable and not self._append
        start = self._pos - len(pending) if positioned else -1
        try:
            written = await current_io().write_and_close(self._fd, memoryview(pending), start)
        except BaseException:
            self._mark_closed()  # the fd is closed (or is, once the pair has ended)
            raise
        if written == len(pending):
            self._mark_closed()
            return True
        self._pending = pending[written:]  # still at [_pos - len, _pos); an append's go on at the end
        return False

    def _mark_closed(self) -> None:
        self._closed = True
        self._ahead = b""
        self._pending = bytearray()

    async def aclose(self) -> None:
        """anyio's name for `close`."""
        await self.close()

    def detach(self) -> AsyncFile:
        """Separate the unbuffered file from this one and return it (see `raw`); this
        file is unusable after (its `close` raises ValueError, as io's).  Pending writes
        must be flushed first (a synchronous flush would block the loop), else ValueError."""
        self._check_open()
        if self._pending or self._writing is not None:
            raise ValueError("detach() with buffered writes pending: await flush() first")
        raw = self.raw
        if raw is not self:
            raw._closefd = self._closefd
            self._closed, self._detached = True, "raw stream has been detached"
        return raw

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._closefd:
            # An unclosed file: write out what is pending (as io's finaliser flushes),
            # then release the fd so it does not leak.
            self._closed = True
            writing = getattr(self, "_writing", None)
            if writing is not None and not writing.done():  # its ops still name the fd: close it after
                fd = self._fd
                writing.add_done_callback(lambda _writing: os.close(fd))
                return
            try:
                if self._pending:
                    positioned = self._seekable and not self._append
                    if positioned:
                        os.pwrite(self._fd, self._pending, self._pos - len(self._pending))
                    else:
                        os.write(self._fd, self._pending)
            except OSError:
                pass
            try:
                os.close(self._fd)
            except OSError:
                pass


async def _write_all_and_close(io_: Any, fd: int, view: memoryview) -> None:
    """``view`` at the fd's position (or the end: O_APPEND), then the close; the fd is closed
    whatever happens."""
    written = await io_.write_and_close(fd, view, -1)
    if written == view.nbytes:
        return
    try:
        await write_all(fd, view[written:], -1)
    except BaseException:
        _close_quietly(io_, fd)
        raise
    await io_.close_fd(fd)


def _close_quietly(io_: Any, fd: int) -> None:
    """Close ``fd`` with the loop's next submission, or at once if its ring is gone."""
    try:
        io_.close_fd_detached(fd)
    except ClosedError:
        os.close(fd)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background write's outcome as seen (the file's next call reports it)."""
    if not task.cancelled():
        task.exception()


def _writable_view(buffer: Any) -> memoryview:
    view = memoryview(buffer)
    if view.readonly:
        raise TypeError("readinto() needs a writable buffer, not a read-only one")
    return view.cast("B")


@functools.lru_cache(maxsize=64)
def _mode_flags(mode: str) -> tuple[int, bool]:
    """``open()``'s mode string as O_* flags, and whether it is binary."""
    modes = set(mode)
    if not mode or modes - set("rwaxbt+") or len(mode) != len(modes):
        raise ValueError(f"invalid mode: {mode!r}")
    kinds = modes & set("rwax")
    if len(kinds) != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if "b" in modes and "t" in modes:
        raise ValueError("can't have text and binary mode at once")
    kind = kinds.pop()
    plus = "+" in modes
    access = os.O_RDWR if plus else (os.O_RDONLY if kind == "r" else os.O_WRONLY)
    extra = {"r": 0, "w": os.O_CREAT | os.O_TRUNC, "a": os.O_CREAT | os.O_APPEND, "x": os.O_CREAT | os.O_EXCL}[kind]
    return access | extra, "b" in modes


class OpenCall:
    """What `open` returns: await it for the file, or use it with ``async with``."""

    __slots__ = ("_file", "_opening")

    def __init__(self, opening: Any) -> None:
        self._opening = opening
        self._file: AsyncFile | AsyncTextFile | None = None

    def __await__(self) -> Any:
        # Awaiting it again gives the same file, as aiofiles' does.
        if self._file is None:
            self._file = yield from self._opening.__await__()
        return self._file

    async def __aenter__(self) -> Any:
        if self._file is None:
            self._file = await self._opening
        return self._file

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            await self._file.close()


def open(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[Any, int], int] | None = None,
    *,
    flags: int = 0,
    perms: int = 0o666,
    limiter: Any = None,
) -> OpenCall:
    """Open a file through io_uring (IORING_OP_OPENAT), like the builtin `open`.

    ``f = await spargio.fs.open(path, "rb")`` or ``async with spargio.fs.open(path) as f``.

    :param file: a path (str, bytes, os.PathLike) or an open fd to wrap.
    :param mode: as the builtin: ``r w a x`` with ``b``/``t`` and ``+``.
    :param buffering: as the builtin's: -1 (the default) buffers writes and small
        reads in a buffer of the file's block size, ``n > 1`` in one of ``n`` bytes,
        0 (binary only) not at all; 1 (text only) flushes at each line end.  O_DIRECT
        files are unbuffered.
    :param flags: extra ``os.O_*`` flags, e.g. ``os.O_DIRECT`` (reads and writes
        are then staged through 4096-aligned memory; offsets and sizes must be
        multiples of the device's block size).
    :param opener: as the builtin's: ``opener(file, flags)`` returns an open fd
        (it runs on spargio's blocking pool: it is the caller's code and may block).
    :param perms: permission bits for a created file (before the umask).
    :param limiter: anyio's ``limiter=`` (a ``CapacityLimiter``): kept as the file's
        ``limiter``; held around the file's calls that run on the blocking pool (its
        ``opener``).  The file's reads and writes are io_uring ops, which it does not hold.
    :return: an `AsyncFile` (binary modes) or `AsyncTextFile` (text modes).
    :raises OSError: as the builtin `open` (``FileNotFoundError``, ...).

    If the task is cancelled while the open is in flight, the open is
    cancelled in the kernel; an fd that arrives anyway is closed.
    """
    return open_as(
        AsyncFile,
        AsyncTextFile,
        file,
        mode,
        buffering,
        encoding,
        errors,
        newline,
        closefd,
        opener,
        flags=flags,
        perms=perms,
        limiter=limiter,
    )


async def open_file(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[Any, int], int] | None = None,
    *,
    limiter: Any = None,
) -> AsyncFile | AsyncTextFile:
    """anyio's ``open_file``: `open`, as a coroutine (``f = await open_file(path)``)."""
    file_object: AsyncFile | AsyncTextFile = await open(
        file, mode, buffering, encoding, errors, newline, closefd, opener, limiter=limiter
    )
    return file_object


def open_as(
    binary_file: type[AsyncFile],
    text_file: type[AsyncTextFile],
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[Any, int], int] | None = None,
    *,
    flags: int = 0,
    perms: int = 0o666,
    limiter: Any = None,
) -> OpenCall:
    """`open`, giving files of these classes (spargio.aiofiles' have aiofiles' quirks)."""
    access, binary = _mode_flags(mode)
    if binary and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    if isinstance(buffering, bool) or not isinstance(buffering, int):
        raise TypeError(f"buffering must be an int, not {type(buffering).__name__}")
    line_buffering = False
    if buffering == 1:
        if binary:
            warnings.warn(
                "line buffering (buffering=1) isn't supported in binary mode, the default buffer size will be used",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            line_buffering, buffering = True, -1
    if buffering == 0 and not binary:
        raise ValueError("can't have unbuffered text I/O")
    all_flags = access | flags

    async def opening() -> AsyncFile | AsyncTextFile:
        if isinstance(file, int) and not isinstance(file, bool):
            fd, name, flags_now = file, file, _fd_flags(file, all_flags)
        elif not closefd:
            raise ValueError("Cannot use closefd=False with file name")
        elif opener is not None:
            fd = await _run_opener(opener, file, all_flags | os.O_CLOEXEC, limiter)
            name, flags_now = file, _fd_flags(fd, all_flags)
        else:
            fd = await current_io().open(_args.fspath_bytes(file), all_flags, perms)
            name, flags_now = file, all_flags
        try:
            raw = binary_file(
                fd,
                name=name,
                mode=mode.replace("t", "") if binary else mode,
                flags=flags_now,
                closefd=closefd,
                buffering=buffering,
            )
            raw.limiter = limiter
            if isinstance(name, os.PathLike):
                raw.name = os.fspath(name)  # as the builtin's: the path as str (or bytes)
            if not binary:
                text = text_file(raw, encoding=encoding, errors=errors, newline=newline, line_buffering=line_buffering)
        except BaseException:
            if closefd:
                os.close(fd)
            raise
        return raw if binary else text

    return OpenCall(opening())


async def _run_opener(opener: Callable[[Any, int], int], file: Any, flags: int, limiter: Any) -> int:
    """``opener(file, flags)`` on the blocking pool (holding ``limiter``, if given); if the
    caller is cancelled meanwhile, the fd it returns later is closed."""
    call = asyncio.ensure_future(limited(limiter, current_io().run_blocking, opener, file, flags))
    try:
        fd = await asyncio.shield(call)
    except asyncio.CancelledError:
        call.add_done_callback(_close_orphaned_fd)
        raise
    if not isinstance(fd, int) or isinstance(fd, bool) or fd < 0:
        raise ValueError(f"opener returned {fd!r}, not an open fd")
    return fd


def _close_orphaned_fd(call: asyncio.Future[Any]) -> None:
    if not call.cancelled() and call.exception() is None and isinstance(call.result(), int):
        os.close(call.result())


def _fd_flags(fd: int, requested: int) -> int:
    """The flags a wrapped fd really has (what the kernel says), plus extra requested ones."""
    try:
        return fcntl.fcntl(fd, fcntl.F_GETFL) | (requested & ~os.O_ACCMODE)
    except OSError:
        return requested


def aligned_buffer(size: int) -> memoryview:
    """A writable, 4096-aligned buffer of ``size`` bytes, for ``readinto`` on O_DIRECT files."""
    size = check_length(size)
    try:
        from ..native.ring import aligned_buffer as _aligned
        from ..native.ring import buffer_view
    except ImportError:  # no io_uring binding: anonymous mmap memory is page aligned
        return memoryview(mmap.mmap(-1, max(size, 1)))[:size]
    return buffer_view(_aligned(size), size)
