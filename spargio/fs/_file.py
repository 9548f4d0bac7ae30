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
import codecs
import errno
import fcntl
import io
import mmap
import os
import stat as _stat
from typing import TYPE_CHECKING, Any

from .. import _limits
from .._backend import current_io
from .._limits import MAX_OFFSET, READ_GUESS
from . import _args
from ._args import MAX_CHUNK, check_length, check_offset, data_view

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable
    from types import TracebackType

__all__ = ["AsyncFile", "AsyncTextFile", "OpenCall", "open", "read_exact", "write_all"]

_MAX_OFFSET = MAX_OFFSET
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
    """

    def __init__(
        self,
        fd: int,
        *,
        name: Any,
        mode: str,
        flags: int,
        closefd: bool = True,
    ) -> None:
        st = os.fstat(fd)
        if _stat.S_ISDIR(st.st_mode):  # open(2) takes a directory O_RDONLY; the builtin refuses it
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        self._fd = fd
        self.name = name
        self.mode = mode
        self._flags = flags
        self._closefd = closefd
        self._seekable = _stat.S_ISREG(st.st_mode) or _stat.S_ISBLK(st.st_mode)
        self._append = bool(flags & os.O_APPEND)
        self._direct = bool(flags & getattr(os, "O_DIRECT", 0))
        self._readable = (flags & os.O_ACCMODE) in (os.O_RDONLY, os.O_RDWR)
        self._writable = (flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
        self._pos = 0
        if self._append and self._seekable:
            self._pos = st.st_size
        self._ahead = b""
        self._closed = False

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
        return self._readable

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return self._seekable

    @property
    def direct(self) -> bool:
        """Whether the file was opened with O_DIRECT (buffers are then aligned for you)."""
        return self._direct

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file")

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
    # once the op has completed, so a cancelled read consumed nothing.

    # -- reading ---------------------------------------------------------

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all, to EOF, if ``size`` is negative or omitted).

        :return: ``b""`` at EOF.
        """
        self._check_readable()
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if size < 0:
            rest = await current_io().read_all(self._fd, self._read_offset(), self._direct)
            head = self._take_ahead(len(self._ahead))
            self._pos += len(rest)
            return head + rest
        if self._ahead:
            if len(self._ahead) >= size or not self._seekable:
                return self._take_ahead(size)
            rest = await read_exact(self._fd, size - len(self._ahead), self._read_offset(), direct=self._direct)
            head = self._take_ahead(size)
            self._pos += len(rest)
            return head + rest
        data = await read_exact(self._fd, size, self._read_offset(), direct=self._direct)
        self._pos += len(data)
        return data

    async def read1(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes with at most one op (64 KiB if ``size`` < 0)."""
        self._check_readable()
        if self._ahead:
            return self._take_ahead(len(self._ahead) if size < 0 else size)
        data = await current_io().read(
            self._fd, READ_GUESS if size < 0 else check_length(size), self._read_offset(), self._direct
        )
        self._pos += len(data)
        return data

    async def readinto(self, buffer: Any) -> int:
        """Read into a writable buffer (``bytearray``, ``memoryview``, numpy array...).

        The buffer is locked (cannot be resized) while the op is in flight.

        :raises TypeError: ``buffer`` is read-only, e.g. ``bytes``.
        :return: the number of bytes read; 0 at EOF.
        """
        self._check_readable()
        view = memoryview(buffer)
        if view.readonly:
            raise TypeError("readinto() needs a writable buffer, not a read-only one")
        view = view.cast("B")
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
        self._check_seekable("readinto_at")
        return await current_io().readinto(self._fd, buffer, offset)

    async def readline(self, size: int = -1) -> bytes:
        """Read one line, up to and including ``b"\\n"`` (or ``size`` bytes)."""
        self._check_readable()
        limit = size if size >= 0 else None
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

    async def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        async for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint < total:  # as io: the lines may add up to exactly ``hint`` and go on
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

        Short writes are continued until every byte is written.

        :raises TypeError: ``data`` is not bytes-like.
        :return: ``len(data)`` in bytes.

        If the task is cancelled while the write is in flight, the write is
        cancelled in the kernel if it has not happened yet; whether the bytes
        reached the file is unknown, and the position does not move.
        """
        self._check_writable()
        view = data_view(data)
        if self._seekable and not self._append:
            self._ahead = b""
            n = await write_all(self._fd, view, self._pos, direct=self._direct)
            self._pos += n
            return n
        if self._append and not len(view):
            return 0  # nothing written: the kernel's offset says nothing about the end of the file
        n = await write_all(self._fd, view, -1, direct=self._direct)
        if self._append and self._seekable:
            self._ahead = b""
            self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
        return n

    async def write_at(self, offset: int, data: Any) -> int:
        """Write all of ``data`` at ``offset`` without moving the file position.

        On Linux a file opened with O_APPEND ignores ``offset`` and appends.
        """
        offset = check_offset(offset)
        self._check_writable()
        self._check_seekable("write_at")
        self._ahead = b""
        return await write_all(self._fd, data_view(data), offset, direct=self._direct)

    async def writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            await self.write(line)

    async def flush(self) -> None:
        """Nothing to do: spargio does not buffer writes (see `fsync` for durability)."""
        self._check_open()

    async def fsync(self) -> None:
        """Flush the file's data and metadata to the device (IORING_OP_FSYNC)."""
        self._check_open()
        await current_io().fsync(self._fd, False)

    async def fdatasync(self) -> None:
        """Flush the file's data (and the metadata needed to read it back)."""
        self._check_open()
        await current_io().fsync(self._fd, True)

    async def truncate(self, size: int | None = None) -> int:
        """Resize the file to ``size`` bytes (default: the current position)."""
        self._check_writable()
        self._check_seekable("truncate")
        new_size = self._pos if size is None else check_length(size)
        self._ahead = b""
        await current_io().ftruncate(self._fd, new_size)
        return new_size

    async def allocate(self, offset: int, length: int, *, keep_size: bool = False) -> None:
        """Reserve disk space (fallocate); ``keep_size`` leaves the file size alone."""
        self._check_writable()
        await current_io().fallocate(
            self._fd, 1 if keep_size else 0, check_offset(offset), check_length(length, "length")
        )

    # -- position --------------------------------------------------------

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the file position; returns the new absolute position."""
        self._check_open()
        self._check_seekable("seek")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"offset must be an int, not {type(offset).__name__}")
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._pos + offset
        elif whence == os.SEEK_END:
            target = (await current_io().stat(None, self._fd)).st_size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._ahead = b""
        self._pos = check_offset(target)
        return self._pos

    async def tell(self) -> int:
        """The file position."""
        self._check_open()
        self._check_seekable("tell")
        return self._pos

    async def stat(self) -> os.stat_result:
        """The file's status (IORING_OP_STATX on the open fd)."""
        self._check_open()
        return await current_io().stat(None, self._fd)

    # -- closing ---------------------------------------------------------

    async def close(self) -> None:
        """Close the fd (IORING_OP_CLOSE).  Closing twice is a no-op.

        A file open for writing waits for the close, whose error (EIO from a
        network file system, say) is raised.  A read-only file's close goes
        out with the loop's next submission and returns at once: its result
        carries no information, and not waiting saves a loop iteration per
        file (a GET of a small file is open, read, close).
        """
        if self._closed:
            return
        self._closed = True
        self._ahead = b""
        if self._closefd:
            if self._writable:
                await current_io().close_fd(self._fd)
            else:
                current_io().close_fd_detached(self._fd)

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._closefd:
            # An unclosed file: release the fd so it does not leak.
            self._closed = True
            try:
                os.close(self._fd)
            except OSError:
                pass


class AsyncTextFile:
    """A text-mode file: decodes and encodes around a binary `AsyncFile`.

    Newlines follow `open`'s rules: ``newline=None`` translates ``\\r\\n`` and
    ``\\r`` to ``\\n`` when reading; any other value is used as-is.
    `tell` works when no decoded text is buffered (after ``read()``,
    ``write``, ``seek``), as positions of a half-decoded line are not bytes.
    """

    def __init__(self, raw: AsyncFile, *, encoding: str | None, errors: str | None, newline: str | None) -> None:
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"illegal newline value: {newline!r}")
        self.buffer = raw
        self.encoding = encoding or "utf-8"
        codecs.lookup(self.encoding)
        self.errors = errors or "strict"
        self._newline = newline
        self._decoded = ""
        self._decoder = self._new_decoder()
        # One encoder for the file's life, as io.TextIOWrapper: a BOM-writing
        # codec (utf-16, utf-8-sig) writes its BOM once, at position 0 only.
        self._encoder = codecs.getincrementalencoder(self.encoding)(self.errors)
        if raw.seekable() and raw.writable() and raw._pos != 0:
            self._encoder.setstate(0)

    def _new_decoder(self) -> Any:
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        if self._newline is None:
            return io.IncrementalNewlineDecoder(decoder, translate=True)
        return decoder

    def __repr__(self) -> str:
        return f"<spargio.fs.AsyncTextFile name={self.name!r} mode={self.mode!r} encoding={self.encoding!r}>"

    @property
    def name(self) -> Any:
        return self.buffer.name

    @property
    def mode(self) -> str:
        return self.buffer.mode

    @property
    def closed(self) -> bool:
        return self.buffer.closed

    def fileno(self) -> int:
        return self.buffer.fileno()

    def _reset_decoder(self) -> None:
        self._decoded = ""
        self._decoder = self._new_decoder()

    def _check_readable(self) -> None:
        self.buffer._check_readable()

    def _check_writable(self) -> None:
        self.buffer._check_writable()

    async def _fill(self) -> bool:
        chunk = await self.buffer.read1(_LINE_CHUNK)
        self._decoded += self._decoder.decode(chunk, final=not chunk)
        return bool(chunk)

    async def read(self, size: int = -1) -> str:
        """Read up to ``size`` characters (all, if negative)."""
        self._check_readable()
        if size is None or size < 0:
            data = await self.buffer.read()
            text: str = self._decoded + self._decoder.decode(data, final=True)
            self._reset_decoder()
            return text
        while len(self._decoded) < size and await self._fill():
            pass
        text, self._decoded = self._decoded[:size], self._decoded[size:]
        return text

    def _line_end(self) -> int:
        if self._newline in (None, "\n"):
            return self._decoded.find("\n")
        if self._newline == "":  # \n, \r or \r\n, as io (not str.splitlines' other line ends)
            decoded = self._decoded
            lf, cr = decoded.find("\n"), decoded.find("\r")
            if cr < 0 or 0 <= lf < cr:
                return lf
            if cr + 1 < len(decoded):
                return cr + 1 if decoded[cr + 1] == "\n" else cr
            return -1  # a \r last: whether \n follows is in the next chunk (at EOF, readline takes it)
        idx = self._decoded.find(self._newline)
        return idx + len(self._newline) - 1 if idx >= 0 else -1

    async def readline(self, size: int = -1) -> str:
        self._check_readable()
        while True:
            end = self._line_end()
            if end >= 0 and (size < 0 or end < size):
                line, self._decoded = self._decoded[: end + 1], self._decoded[end + 1 :]
                return line
            if 0 <= size <= len(self._decoded):
                line, self._decoded = self._decoded[:size], self._decoded[size:]
                return line
            if not await self._fill():
                line, self._decoded = self._decoded, ""
                return line

    async def readlines(self, hint: int = -1) -> list[str]:
        lines: list[str] = []
        async for line in self:
            lines.append(line)
            if 0 < hint < sum(map(len, lines)):  # as io: exactly ``hint`` goes on
                break
        return lines

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def write(self, text: str) -> int:
        """Encode and write ``text`` (``\\n`` becomes ``newline`` if one was given)."""
        self._check_writable()
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self._decoded:
            raise io.UnsupportedOperation("write after a partial read of a text file; seek first")
        out = text.replace("\n", self._newline) if self._newline not in (None, "", "\n") else text
        await self.buffer.write(self._encoder.encode(out))
        return len(text)

    async def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            await self.write(line)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._reset_decoder()
        position = await self.buffer.seek(offset, whence)
        if position:
            self._encoder.setstate(0)  # not at the start: no BOM
        else:
            self._encoder.reset()
        return position

    async def tell(self) -> int:
        if self._decoded:
            raise OSError("tell() is unavailable while decoded text is buffered (after a partial read)")
        return await self.buffer.tell()

    async def truncate(self, size: int | None = None) -> int:
        return await self.buffer.truncate(size)

    async def flush(self) -> None:
        await self.buffer.flush()

    async def fsync(self) -> None:
        await self.buffer.fsync()

    async def fdatasync(self) -> None:
        await self.buffer.fdatasync()

    async def stat(self) -> os.stat_result:
        return await self.buffer.stat()

    async def close(self) -> None:
        await self.buffer.close()

    async def __aenter__(self) -> AsyncTextFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


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

    def __init__(self, opening: Any) -> None:
        self._opening = opening
        self._file: AsyncFile | AsyncTextFile | None = None

    def __await__(self) -> Any:
        return self._opening.__await__()

    async def __aenter__(self) -> Any:
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
) -> OpenCall:
    """Open a file through io_uring (IORING_OP_OPENAT), like the builtin `open`.

    ``f = await spargio.fs.open(path, "rb")`` or ``async with spargio.fs.open(path) as f``.

    :param file: a path (str, bytes, os.PathLike) or an open fd to wrap.
    :param mode: as the builtin: ``r w a x`` with ``b``/``t`` and ``+``.
    :param buffering: accepted for compatibility; spargio does not buffer writes.
    :param flags: extra ``os.O_*`` flags, e.g. ``os.O_DIRECT`` (reads and writes
        are then staged through 4096-aligned memory; offsets and sizes must be
        multiples of the device's block size).
    :param opener: as the builtin's: ``opener(file, flags)`` returns an open fd
        (it runs on spargio's blocking pool: it is the caller's code and may block).
    :param perms: permission bits for a created file (before the umask).
    :return: an `AsyncFile` (binary modes) or `AsyncTextFile` (text modes).
    :raises OSError: as the builtin `open` (``FileNotFoundError``, ...).

    If the task is cancelled while the open is in flight, the open is
    cancelled in the kernel; an fd that arrives anyway is closed.
    """
    access, binary = _mode_flags(mode)
    if binary and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    all_flags = access | flags

    async def opening() -> AsyncFile | AsyncTextFile:
        if isinstance(file, int) and not isinstance(file, bool):
            fd, name, flags_now = file, file, _fd_flags(file, all_flags)
        elif not closefd:
            raise ValueError("Cannot use closefd=False with file name")
        elif opener is not None:
            fd = await _run_opener(opener, file, all_flags | os.O_CLOEXEC)
            name, flags_now = file, _fd_flags(fd, all_flags)
        else:
            fd = await current_io().open(_args.fspath_bytes(file), all_flags, perms)
            name, flags_now = file, all_flags
        try:
            raw = AsyncFile(
                fd,
                name=name,
                mode=mode.replace("t", "") if binary else mode,
                flags=flags_now,
                closefd=closefd,
            )
        except BaseException:
            if closefd:
                os.close(fd)
            raise
        if binary:
            return raw
        return AsyncTextFile(raw, encoding=encoding, errors=errors, newline=newline)

    return OpenCall(opening())


async def _run_opener(opener: Callable[[Any, int], int], file: Any, flags: int) -> int:
    """``opener(file, flags)`` on the blocking pool; if the caller is cancelled meanwhile,
    the fd it returns later is closed."""
    call = asyncio.ensure_future(current_io().run_blocking(opener, file, flags))
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
