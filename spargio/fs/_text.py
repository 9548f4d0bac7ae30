"""`AsyncTextFile`: ``io.TextIOWrapper``'s behaviour over a binary `AsyncFile`.

Theory of operation
-------------------
The state is TextIOWrapper's, so that positions, newlines and encodings come
out as ``io.open`` gives them: ``_decoded_chars`` is the text decoded from the
last chunk (``_used`` of it returned), and ``_snapshot`` is ``(decoder flags,
bytes)`` as they were before that chunk was decoded.  Chunks are
``_CHUNK_SIZE`` bytes taken with ``read1`` semantics from the binary file, so
the binary position after a partial read (where a ``write`` then lands) is
io's.  `tell` returns io's opaque cookie — a byte position, plus, when it falls
inside a chunk, the decoder flags, the bytes to feed and the characters to
skip to get back there — and `seek` takes one.

Cancellation: a read must consume nothing if it is cancelled, yet a line may
span chunks.  So a read runs synchronously on bytes already in the binary
file's read-ahead; when it runs out, the state is restored to what it was at
the call, the read-ahead is filled by one op (the only await, which consumes
nothing), and the read is tried again.  Each fill is at least as large as the
read-ahead already is, so a long line costs O(n log n), not O(n²).
"""

from __future__ import annotations

import codecs
import io
import locale
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from ._file import AsyncFile

__all__ = ["AsyncTextFile"]


class _NeedBytes(Exception):
    """The read-ahead ran out before the read could finish."""


def _pack_cookie(
    position: int, dec_flags: int = 0, bytes_to_feed: int = 0, need_eof: bool = False, chars_to_skip: int = 0
) -> int:
    # The C TextIOWrapper's layout (what io.open's files return), so that cookies are
    # interchangeable: position 64 bits, then 32 each for the decoder flags, the bytes
    # to feed and the characters to skip, then the need-EOF byte.
    return position | (dec_flags << 64) | (bytes_to_feed << 96) | (chars_to_skip << 128) | (int(need_eof) << 160)


def _unpack_cookie(cookie: int) -> tuple[int, int, int, bool, int]:
    mask = (1 << 32) - 1
    return (
        cookie & ((1 << 64) - 1),
        (cookie >> 64) & mask,
        (cookie >> 96) & mask,
        bool((cookie >> 160) & 0xFF),
        (cookie >> 128) & mask,
    )


class _NewlineDecoder:
    """``io.IncrementalNewlineDecoder``'s behaviour and state layout, in Python, so that
    the line ends seen (``newlines``) can be saved and restored with the rest of the
    state when a read is retried (the C decoder's cannot be set)."""

    def __init__(self, decoder: Any, translate: bool) -> None:
        self.decoder = decoder
        self.translate = translate
        self.pendingcr = False
        self.seennl = 0

    def decode(self, data: bytes, final: bool = False) -> str:
        output: str = self.decoder.decode(data, final)
        if self.pendingcr and (output or final):
            output = "\r" + output
            self.pendingcr = False
        if output.endswith("\r") and not final:  # a \n may follow in the next bytes
            output = output[:-1]
            self.pendingcr = True
        crlf = output.count("\r\n")
        cr = output.count("\r") - crlf
        lf = output.count("\n") - crlf
        self.seennl |= (lf and 1) | (cr and 2) | (crlf and 4)
        if self.translate:
            if crlf:
                output = output.replace("\r\n", "\n")
            if cr:
                output = output.replace("\r", "\n")
        return output

    def getstate(self) -> tuple[bytes, int]:
        held, flags = self.decoder.getstate()
        return held, (flags << 1) | int(self.pendingcr)

    def setstate(self, state: tuple[bytes, int]) -> None:
        held, flags = state
        self.pendingcr = bool(flags & 1)
        self.decoder.setstate((held, flags >> 1))

    def reset(self) -> None:
        self.seennl = 0
        self.pendingcr = False
        self.decoder.reset()

    @property
    def newlines(self) -> str | tuple[str, ...] | None:
        return (None, "\n", "\r", ("\r", "\n"), "\r\n", ("\n", "\r\n"), ("\r", "\r\n"), ("\r", "\n", "\r\n"))[
            self.seennl
        ]


class AsyncTextFile:
    """A text-mode file, as ``io.TextIOWrapper``, around a binary `AsyncFile` (``.buffer``).

    ``newline=None`` translates ``\\r\\n`` and ``\\r`` to ``\\n`` when reading and
    writes ``os.linesep``; ``""`` reads any line end untranslated; ``"\\n"``,
    ``"\\r"``, ``"\\r\\n"`` are used as they are.  `tell` after a partial read
    returns io's cookie, which `seek` takes.

    A read cancelled while its op is in flight consumes nothing.  A cancelled write
    follows the binary file's rule (`AsyncFile.write`).
    """

    _CHUNK_SIZE = 8192  # io.TextIOWrapper's

    def __init__(
        self,
        raw: AsyncFile,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        line_buffering: bool = False,
        write_through: bool = False,
    ) -> None:
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"illegal newline value: {newline!r}")
        if newline is not None and not isinstance(newline, str):
            raise TypeError(f"illegal newline type: {type(newline).__name__}")
        encoding = io.text_encoding(encoding)
        if encoding == "locale":
            encoding = locale.getencoding()
        if not codecs.lookup(encoding)._is_text_encoding:
            raise LookupError(f"{encoding!r} is not a text encoding; use codecs.open() to handle arbitrary codecs")
        self.buffer = raw
        self.encoding = encoding
        self.errors = errors or "strict"
        self._line_buffering = line_buffering
        self._write_through = write_through
        self._readuniversal = not newline
        self._readtranslate = newline is None
        self._readnl = newline
        self._writetranslate = newline != ""
        self._writenl = newline or os.linesep
        self._seekable = self._telling = raw._seekable
        self._decoder: Any = None
        self._encoder: Any = None
        self._decoded_chars = ""
        self._used = 0
        self._snapshot: tuple[int, bytes] | None = None
        self._b2cratio = 0.0
        self._eof_seen = False
        if raw._readable:
            self._decoder = self._new_decoder()
        if raw._writable:
            # One encoder for the file's life: a BOM-writing codec (utf-16,
            # utf-8-sig) writes its BOM once, at position 0 only.
            self._encoder = codecs.getincrementalencoder(self.encoding)(self.errors)
            if self._seekable and raw._pos != 0:
                self._encoder.setstate(0)

    def _new_decoder(self) -> Any:
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        if self._readuniversal:
            return _NewlineDecoder(decoder, self._readtranslate)
        return decoder

    # -- state -----------------------------------------------------------

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

    @property
    def newlines(self) -> str | tuple[str, ...] | None:
        """The line ends read so far, as io reports them (None before any, or if translating is off)."""
        return getattr(self._decoder, "newlines", None)

    @property
    def line_buffering(self) -> bool:
        return self._line_buffering

    @property
    def write_through(self) -> bool:
        return self._write_through

    @property
    def limiter(self) -> Any:
        return self.buffer.limiter

    @property
    def wrapped(self) -> io.TextIOWrapper:
        """anyio's ``wrapped``: a synchronous text file on the same fd (see `AsyncFile.wrapped`)."""
        return io.TextIOWrapper(
            io.BufferedRandom(self.buffer.wrapped)
            if self.buffer._readable and self.buffer._writable
            else io.BufferedReader(self.buffer.wrapped)
            if self.buffer._readable
            else io.BufferedWriter(self.buffer.wrapped),
            self.encoding,
            self.errors,
            self._readnl,
        )

    def fileno(self) -> int:
        return self.buffer.fileno()

    def readable(self) -> bool:
        self.buffer._check_open()
        return self.buffer._readable

    def writable(self) -> bool:
        self.buffer._check_open()
        return self.buffer._writable

    def seekable(self) -> bool:
        self.buffer._check_open()
        return self._seekable

    def isatty(self) -> bool:
        self.buffer._check_open()
        return os.isatty(self.buffer._fd)

    def _check_readable(self) -> None:
        self.buffer._check_readable()

    def _check_writable(self) -> None:
        self.buffer._check_writable()

    def _set_decoded_chars(self, chars: str) -> None:
        self._decoded_chars = chars
        self._used = 0

    def _get_decoded_chars(self, n: int | None = None) -> str:
        offset = self._used
        chars = self._decoded_chars[offset:] if n is None else self._decoded_chars[offset : offset + n]
        self._used += len(chars)
        return chars

    def _reset_read_state(self) -> None:
        self._set_decoded_chars("")
        self._snapshot = None
        if self._decoder is not None:
            self._decoder.reset()

    # -- reading: synchronous attempts on the read-ahead -------------------

    def _save(self) -> tuple[Any, ...]:
        raw = self.buffer
        return (
            self._decoded_chars,
            self._used,
            self._snapshot,
            self._b2cratio,
            self._decoder.getstate(),
            getattr(self._decoder, "seennl", 0),
            raw._ahead,
            raw._pos,
        )

    def _restore(self, saved: tuple[Any, ...]) -> None:
        raw = self.buffer
        (self._decoded_chars, self._used, self._snapshot, self._b2cratio, state, seennl, raw._ahead, raw._pos) = saved
        self._decoder.setstate(state)
        if isinstance(self._decoder, _NewlineDecoder):
            self._decoder.seennl = seennl

    def _read_chunk(self) -> bool:
        """io's chunk step, from the read-ahead: False at EOF."""
        raw = self.buffer
        if not raw._ahead and not self._eof_seen:
            raise _NeedBytes
        dec_buffer, dec_flags = self._decoder.getstate()
        chunk = raw._take_ahead(self._CHUNK_SIZE)
        eof = not chunk
        decoded = self._decoder.decode(chunk, eof)
        self._set_decoded_chars(decoded)
        self._b2cratio = len(chunk) / len(decoded) if decoded else 0.0
        if self._telling:
            self._snapshot = (dec_flags, dec_buffer + chunk)
        return not eof or bool(decoded)  # as io's: text the decoder held back is not EOF yet

    async def _attempt(self, step: Callable[[int], str], size: int) -> str:
        """Run ``step`` until it finishes on the read-ahead; between tries, fill it by one op."""
        raw = self.buffer
        if raw._pending and raw._seekable:
            await raw._write_pending()
        self._eof_seen = False
        try:
            while True:
                saved = self._save()
                try:
                    return step(size)
                except _NeedBytes:
                    self._restore(saved)
                except BaseException:
                    self._restore(saved)
                    raise
                self._eof_seen = not await raw._fill_ahead(max(self._CHUNK_SIZE, len(raw._ahead)))
        finally:
            self._eof_seen = False

    # -- reading ---------------------------------------------------------

    async def read(self, size: int | None = -1) -> str:
        """Read up to ``size`` characters (all, to EOF, if negative or None)."""
        self._check_readable()
        if size is None:
            size = -1
        elif not isinstance(size, int):
            raise TypeError(f"an integer is required, not {type(size).__name__}")
        if size < 0:
            data = await self.buffer.read()
            rest: str = self._decoder.decode(data, final=True)
            result = self._get_decoded_chars() + rest
            if self._snapshot is not None:
                self._set_decoded_chars("")
                self._snapshot = None
            return result
        if len(self._decoded_chars) - self._used >= size:
            return self._get_decoded_chars(size)
        return await self._attempt(self._read_sync, size)

    def _read_sync(self, size: int) -> str:
        result = self._get_decoded_chars(size)
        eof = False
        while len(result) < size and not eof:
            eof = not self._read_chunk()
            result += self._get_decoded_chars(size - len(result))
        return result

    async def readline(self, size: int = -1) -> str:
        """Read one line, its line end included (at most ``size`` characters)."""
        if not isinstance(size, int):  # None included, as io's; before the mode check, as io's
            raise TypeError(f"an integer is required, not {type(size).__name__}")
        self._check_readable()
        if self._readtranslate or self._readnl == "\n":
            # The fast path: the line is already decoded.
            end = self._decoded_chars.find("\n", self._used)
            if end >= 0 and (size < 0 or end - self._used < size):
                line = self._decoded_chars[self._used : end + 1]
                self._used = end + 1
                return line
        return await self._attempt(self._readline_sync, size)

    def _readline_sync(self, size: int) -> str:
        if not self._decoded_chars:  # as io's: a chunk first, even for readline(0)
            while self._read_chunk():
                if self._decoded_chars:
                    break
            if not self._decoded_chars:  # EOF
                self._snapshot = None
                return ""
        line = self._get_decoded_chars()
        start = 0
        endpos = None
        while True:
            if self._readtranslate:
                pos = line.find("\n", start)
                if pos >= 0:
                    endpos = pos + 1
                    break
                start = len(line)
            elif self._readuniversal:
                nlpos, crpos = line.find("\n", start), line.find("\r", start)
                if crpos == -1:
                    if nlpos == -1:
                        start = len(line)
                    else:
                        endpos = nlpos + 1
                        break
                elif nlpos == -1:  # a \r last is a line end: the decoder holds a \r back until it knows
                    endpos = crpos + 1
                    break
                elif nlpos < crpos:
                    endpos = nlpos + 1
                    break
                elif nlpos == crpos + 1:
                    endpos = crpos + 2
                    break
                else:
                    endpos = crpos + 1
                    break
            else:
                assert self._readnl is not None
                pos = line.find(self._readnl, start)
                if pos >= 0:
                    endpos = pos + len(self._readnl)
                    break
                start = max(len(line) - len(self._readnl) + 1, 0)
            if size >= 0 and len(line) >= size:
                endpos = size
                break
            while self._read_chunk():
                if self._decoded_chars:
                    break
            if self._decoded_chars:
                line += self._get_decoded_chars()
            else:  # EOF
                self._set_decoded_chars("")
                self._snapshot = None
                return line
        if size >= 0 and endpos > size:
            endpos = size
        self._used -= len(line) - endpos  # give back what follows the line
        return line[:endpos]

    async def readlines(self, hint: int | None = -1) -> list[str]:
        lines: list[str] = []
        total = 0
        async for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint < total:  # as io: exactly ``hint`` goes on
                break
        return lines

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # -- writing ---------------------------------------------------------

    async def write(self, text: str) -> int:
        """Encode ``text`` and write it to the binary file (buffered there).

        ``\\n`` becomes the ``newline`` given (``os.linesep`` for None).  After a partial
        read the text lands where the binary file's position is, past the chunk read, as
        io's does.  With ``line_buffering``, a line end flushes.
        """
        self.buffer._check_open()
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._check_writable()
        length = len(text)
        haslf = (self._writetranslate or self._line_buffering) and "\n" in text
        if haslf and self._writetranslate and self._writenl != "\n":
            text = text.replace("\n", self._writenl)
        data = self._encoder.encode(text)
        await self.buffer.write(data)
        if (self._line_buffering and (haslf or "\r" in text)) or self._write_through:
            await self.buffer.flush()
        self._reset_read_state()  # as io's, whatever was read: the decoder starts again
        return length

    async def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            await self.write(line)

    # -- position --------------------------------------------------------

    async def tell(self) -> int:
        """io's position cookie: a byte offset, or (inside a decoded chunk) an opaque int
        `seek` takes back."""
        if not self._seekable:
            raise io.UnsupportedOperation("underlying stream is not seekable")
        if not self._telling:
            raise OSError("telling position disabled by next() call")
        await self.flush()
        position = self.buffer._pos
        decoder = self._decoder
        if decoder is None or self._snapshot is None:
            return position
        return self._cookie(position)

    def _cookie(self, position: int) -> int:
        assert self._snapshot is not None
        decoder = self._decoder
        dec_flags, next_input = self._snapshot
        position -= len(next_input)
        chars_to_skip = self._used
        if chars_to_skip == 0:
            return _pack_cookie(position, dec_flags)
        saved_state = decoder.getstate()
        start = position

        def set_flags(flags: int) -> None:
            # As io's: the stream's start resets the decoder (which also forgets the
            # line ends seen, so after such a tell ``newlines`` is io's too).
            if start == 0 and flags == 0:
                decoder.reset()
            else:
                decoder.setstate((b"", flags))

        try:
            # A fast search for a start point near the position: where the decoder
            # holds no bytes, having decoded no more than the characters to skip.
            skip_bytes = int(self._b2cratio * chars_to_skip)
            skip_back = 1
            while skip_bytes > 0:
                set_flags(dec_flags)
                n = len(decoder.decode(next_input[:skip_bytes]))
                if n <= chars_to_skip:
                    held, flags = decoder.getstate()
                    if not held:
                        dec_flags = flags
                        chars_to_skip -= n
                        break
                    skip_bytes -= len(held)
                    skip_back = 1
                else:
                    skip_bytes -= skip_back
                    skip_back *= 2
            else:
                skip_bytes = 0
                set_flags(dec_flags)
            start_pos = position + skip_bytes
            start_flags = dec_flags
            if chars_to_skip == 0:
                return _pack_cookie(start_pos, start_flags)
            # Then byte by byte, to the last safe start point before the position.
            bytes_fed = 0
            need_eof = False
            chars_decoded = 0
            for i in range(skip_bytes, len(next_input)):
                bytes_fed += 1
                chars_decoded += len(decoder.decode(next_input[i : i + 1]))
                held, flags = decoder.getstate()
                if not held and chars_decoded <= chars_to_skip:
                    start_pos += bytes_fed
                    chars_to_skip -= chars_decoded
                    start_flags, bytes_fed, chars_decoded = flags, 0, 0
                if chars_decoded >= chars_to_skip:
                    break
            else:
                chars_decoded += len(decoder.decode(b"", final=True))
                need_eof = True
                if chars_decoded < chars_to_skip:
                    raise OSError("can't reconstruct logical file position")
            return _pack_cookie(start_pos, start_flags, bytes_fed, need_eof, chars_to_skip)
        finally:
            decoder.setstate(saved_state)

    async def seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        """Seek to a cookie from `tell` (or 0), or to the end (``seek(0, 2)``)."""
        self.buffer._check_open()
        if not self._seekable:
            raise io.UnsupportedOperation("underlying stream is not seekable")
        if not isinstance(cookie, int) or isinstance(cookie, bool):
            raise TypeError(f"an integer is required, not {type(cookie).__name__}")
        if whence == os.SEEK_CUR:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
            whence, cookie = os.SEEK_SET, await self.tell()
        elif whence == os.SEEK_END:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
            await self.flush()
            position = await self.buffer.seek(0, os.SEEK_END)
            self._reset_read_state()
            self._reset_encoder(position)
            return position
        if whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be {os.SEEK_SET}, {os.SEEK_CUR} or {os.SEEK_END})")
        if cookie < 0:
            raise ValueError(f"negative seek position {cookie!r}")
        await self.flush()
        start_pos, dec_flags, bytes_to_feed, need_eof, chars_to_skip = _unpack_cookie(cookie)
        data = b""
        if chars_to_skip:  # read before changing anything: a cancelled seek changes nothing
            data = await self.buffer.read_at(start_pos, bytes_to_feed)
        await self.buffer.seek(start_pos)
        self.buffer._pos += len(data)
        self._set_decoded_chars("")
        self._snapshot = None
        if self._decoder is not None:
            if cookie == 0:
                self._decoder.reset()
            else:
                self._decoder.setstate((b"", dec_flags))
                self._snapshot = (dec_flags, b"")
        if chars_to_skip:
            self._set_decoded_chars(self._decoder.decode(data, need_eof))
            self._snapshot = (dec_flags, data)
            if len(self._decoded_chars) < chars_to_skip:
                raise OSError("can't restore logical file position")
            self._used = chars_to_skip
        self._reset_encoder(cookie)
        return cookie

    def _reset_encoder(self, position: int) -> None:
        if self._encoder is not None:
            if position != 0:
                self._encoder.setstate(0)  # not at the start: no BOM
            else:
                self._encoder.reset()

    async def truncate(self, size: int | None = None) -> int:
        """Resize the file to ``size`` bytes (default: the binary file's position, as io's
        C implementation does, which is past a partially read chunk)."""
        await self.flush()
        return await self.buffer.truncate(size)

    # -- the rest ----------------------------------------------------------

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

    async def aclose(self) -> None:
        """anyio's name for `close`."""
        await self.close()

    def detach(self) -> AsyncFile:
        """Separate the binary file from this one and return it; this file is unusable after."""
        buffer = self.buffer
        buffer._check_open()
        if buffer._pending:
            raise ValueError("detach() with buffered writes pending: await flush() first")
        detached = type(buffer).__new__(type(buffer))
        detached.__dict__.update(buffer.__dict__)
        buffer._closed, buffer._detached = True, "underlying buffer has been detached"
        return detached

    async def __aenter__(self) -> AsyncTextFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
