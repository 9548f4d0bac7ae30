"""Three ways to do the service's disk work: spargio, aiofiles, asyncio.to_thread.

Each store does the same jobs, written the way its users write them:

- ``open_read(path)``: a `Reader` over the file: its size, then its bytes in
  chunks of at most `CHUNK`, so memory per request is bounded whatever the
  file's size (a small file is one chunk).
- ``write(path, data)`` and ``write_stream(path, chunks)``: durable
  replacement: write a hidden temporary file beside the target (chunk by
  chunk as they arrive, for the stream), fsync it, rename it into place,
  fsync the directory.  Readers see the old file or the new one, never half
  of either; a failed or cancelled write removes its temporary file.
- ``digest(path)``: the sha256 of a file, read in chunks and hashed off the
  service's loop (hashlib releases the GIL for large buffers, so hashes run
  in parallel).

Temporary files are named ``.NAME.tmp-PID-N`` (``.NAME.spargio-tmp-PID-N``
for spargio's own); `sweep_temporaries` removes those a killed process left.

`SpargioStore` reads and writes on the loop's own io_uring and hashes in the
shard pool (`spargio.boundary.call`), where the read happens too, on the
shard's ring.  `AiofilesStore` hops to the default executor for every file
call (open, read, write, close), and hashes there too.  `ToThreadStore` does
each job as one blocking function in one `asyncio.to_thread` hop.

On cancel (the client went away): spargio cancels the op in flight and
removes a temporary file a cancelled write leaves; the thread stores cannot
stop a call that has started, so it finishes in its thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

import aiofiles
import aiofiles.os

import spargio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CHUNK: Final = 256 << 10  # the most a GET holds in memory at a time, and a PUT's write size
DIGEST_CHUNK: Final = 1 << 20  # read and hash this much at a time
MODES = ("spargio", "aiofiles", "to_thread")


class Reader(Protocol):
    """An open file being served: ``size`` (at open), then ``read()`` chunks until ``b""``."""

    size: int

    async def read(self) -> bytes: ...
    async def close(self) -> None: ...


class Store(Protocol):
    mode: ClassVar[str]

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def open_read(self, path: str) -> Reader: ...
    async def write(self, path: str, data: bytes) -> int: ...
    async def write_stream(self, path: str, chunks: AsyncIterator[bytes]) -> int: ...
    async def digest(self, path: str) -> str: ...
    def stats(self) -> dict[str, Any]: ...


def make_store(mode: str, *, shards: int | None = None) -> Store:
    """The store for ``--io mode``; ``shards`` sizes spargio's pool (default: one per CPU)."""
    if mode == "spargio":
        return SpargioStore(shards)
    if mode == "aiofiles":
        return AiofilesStore()
    if mode == "to_thread":
        return ToThreadStore()
    raise ValueError(f"unknown --io mode {mode!r}: choose one of {', '.join(MODES)}")


class SpargioStore:
    """Disk I/O on the loop's io_uring; hashing in spargio's shard pool."""

    mode: ClassVar[str] = "spargio"

    def __init__(self, shards: int | None) -> None:
        self.runtime = spargio.Runtime(shards=shards)

    async def start(self) -> None:
        await self.runtime.start()

    async def close(self) -> None:
        await self.runtime.aclose()

    async def open_read(self, path: str) -> Reader:
        return _SpargioReader(await spargio.fs.open(path, "rb"))

    async def write(self, path: str, data: bytes) -> int:
        return await spargio.fs.write_bytes(path, data, atomic=True, fsync=True)

    async def write_stream(self, path: str, chunks: AsyncIterator[bytes]) -> int:
        return await spargio.fs.write_bytes(path, chunks, atomic=True, fsync=True)

    async def digest(self, path: str) -> str:
        # The whole job (open, read, hash) runs on a shard: its reads go
        # through the shard's own ring and the service's loop only waits.
        return await spargio.boundary.call(_digest_on_shard, path, runtime=self.runtime)

    def stats(self) -> dict[str, Any]:
        info = spargio.backend_info()
        return {"backend": info.name, "backend_reason": info.reason, "runtime": asdict(self.runtime.stats())}


class _SpargioReader:
    """Chunks read on the loop's ring (one read op each)."""

    def __init__(self, file: spargio.fs.AsyncFile) -> None:
        self._file = file
        self.size = self._left = os.fstat(file.fileno()).st_size  # the open fd's inode: no I/O

    async def read(self) -> bytes:
        if self._left <= 0:
            return b""
        want = min(CHUNK, self._left)
        data = await self._file.read(want)
        self._left = self._left - want if len(data) == want else 0  # a short read: the file shrank
        return data

    async def close(self) -> None:
        await self._file.close()


DIGESTS_PER_SHARD: Final = 4  # hashing is CPU-bound: more at once per shard adds buffers, not speed


async def _digest_on_shard(path: str) -> str:
    slots, buffers = _shard_digest_state()
    async with slots:  # at most DIGESTS_PER_SHARD buffers in use on this shard
        buffer = buffers.pop() if buffers else bytearray(DIGEST_CHUNK)
        view = memoryview(buffer)
        digest = hashlib.sha256()
        async with spargio.fs.open(path, "rb", buffering=0) as f:
            while n := await f.readinto(buffer):
                digest.update(view[:n])
        # Back to the pool only after a clean finish: a read cancelled mid-flight
        # may still be writing into its buffer until its CQE arrives.
        buffers.append(buffer)
    return digest.hexdigest()


_shard_local = threading.local()


def _shard_digest_state() -> tuple[asyncio.Semaphore, list[bytearray]]:
    """This shard's digest slots and spare read buffers (as many as slots, at most).

    Reusing buffers matters: a fresh 1 MiB buffer per read costs page faults
    on every read (and TLB shootdowns when it is unmapped), which halved the
    digest rate in measurement.  The slots bound them: 32 digests at once
    used to leave 32 MiB of spare buffers behind for good.
    """
    try:
        state: tuple[asyncio.Semaphore, list[bytearray]] = _shard_local.digest_state
    except AttributeError:
        state = _shard_local.digest_state = (asyncio.Semaphore(DIGESTS_PER_SHARD), [])
    return state


class _ExecutorStore:
    """What the two thread-hop stores share: nothing to start or close, the default executor."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"backend": "threads (the default executor)"}


class AiofilesStore(_ExecutorStore):
    """aiofiles: every file call is a hop to the default executor."""

    mode: ClassVar[str] = "aiofiles"

    async def open_read(self, path: str) -> Reader:
        f = await aiofiles.open(path, "rb")
        return _AiofilesReader(f, os.fstat(f.fileno()).st_size)

    async def write(self, path: str, data: bytes) -> int:
        return await self.write_stream(path, _one(data))

    async def write_stream(self, path: str, chunks: AsyncIterator[bytes]) -> int:
        temporary = _temporary_name(path)
        size = 0
        try:
            async with aiofiles.open(temporary, "wb") as f:
                async for chunk in chunks:
                    await f.write(chunk)
                    size += len(chunk)
                await f.flush()
                await _aiofiles_fsync(f.fileno())
            await aiofiles.os.replace(temporary, path)
        except BaseException:
            await asyncio.shield(_aiofiles_remove_quietly(temporary))
            raise
        await _aiofiles_fsync_directory(os.path.dirname(path))
        return size

    async def digest(self, path: str) -> str:
        loop = asyncio.get_running_loop()
        digest = hashlib.sha256()
        async with aiofiles.open(path, "rb") as f:
            while chunk := await f.read(DIGEST_CHUNK):
                await loop.run_in_executor(None, digest.update, chunk)
        return digest.hexdigest()


class _AiofilesReader:
    def __init__(self, file: Any, size: int) -> None:
        self._file = file
        self.size = size

    async def read(self) -> bytes:
        data: bytes = await self._file.read(CHUNK)
        return data

    async def close(self) -> None:
        try:
            await self._file.close()
        except BaseException:
            # As _ThreadReader.close: cancelled at server shutdown or no executor left, close the
            # underlying (read-only, non-blocking to close) file here rather than leak it.
            self._file._file.close()
            raise


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class ToThreadStore(_ExecutorStore):
    """asyncio.to_thread: each job is one blocking function in one thread hop."""

    mode: ClassVar[str] = "to_thread"

    async def open_read(self, path: str) -> Reader:
        return await asyncio.to_thread(_ThreadReader.open, path)  # a small file is read in this hop

    async def write(self, path: str, data: bytes) -> int:
        return await asyncio.to_thread(_write_file_durably, path, data)

    async def write_stream(self, path: str, chunks: AsyncIterator[bytes]) -> int:
        temporary = _temporary_name(path)
        size = 0
        try:
            f = await asyncio.to_thread(open, temporary, "wb")
            try:
                async for chunk in chunks:
                    size += await asyncio.to_thread(f.write, chunk)
            finally:
                await asyncio.to_thread(_fsync_and_close, f)
            await asyncio.to_thread(os.replace, temporary, path)
        except BaseException:
            _remove_quietly(temporary)
            raise
        await asyncio.to_thread(_fsync_directory, os.path.dirname(path))
        return size

    async def digest(self, path: str) -> str:
        return await asyncio.to_thread(_digest_file, path)


# -- blocking helpers (the thread stores) ----------------------------------

_temporary_names = itertools.count()


def _temporary_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.tmp-{os.getpid()}-{next(_temporary_names)}")


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class _ThreadReader:
    """A file read in ``to_thread`` hops: one for open (and the whole of a small file), one per chunk."""

    def __init__(self, file: Any, size: int, first: bytes | None) -> None:
        self._file = file
        self.size = size
        self._first = first

    @classmethod
    def open(cls, path: str) -> _ThreadReader:
        f = open(path, "rb")  # noqa: SIM115 - closed by close(), or below
        try:
            size = os.fstat(f.fileno()).st_size
            if size > CHUNK:
                return cls(f, size, None)
            first = f.read()
        except BaseException:
            f.close()
            raise
        f.close()
        return cls(None, len(first), first)

    async def read(self) -> bytes:
        if self._file is None:
            first, self._first = self._first or b"", b""
            return first
        data: bytes = await asyncio.to_thread(self._file.read, CHUNK)
        return data

    async def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                await asyncio.to_thread(file.close)
            except BaseException:
                # Cancelled (the server is stopping) or the executor already shut down: a
                # read-only file's close does not block, so close it here rather than leak it.
                file.close()
                raise


def _fsync_and_close(f: Any) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


def _write_file_durably(path: str, data: bytes) -> int:
    temporary = _temporary_name(path)
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise
    _fsync_directory(os.path.dirname(path))
    return len(data)


def _fsync_directory(path: str) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# aiofiles has no fsync and no directory fsync of its own: its users wrap the blocking calls.
_aiofiles_fsync = aiofiles.os.wrap(os.fsync)
_aiofiles_fsync_directory = aiofiles.os.wrap(_fsync_directory)
_aiofiles_remove_quietly = aiofiles.os.wrap(_remove_quietly)


# -- what a killed process leaves behind -------------------------------------

_TEMPORARY: Final = re.compile(r"\..+\.(?:spargio-)?tmp-(\d+)-\d+")


def sweep_temporaries(data_dir: str) -> int:
    """Remove the temporary files of writers that are gone (kill -9, a crash, a power cut).

    A temporary file names its writer's pid; one whose process still runs is
    left alone (another service on the same directory may be writing it).
    Returns how many were removed.
    """
    removed = 0
    with os.scandir(data_dir) as entries:
        for entry in entries:
            match = _TEMPORARY.fullmatch(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False) or _alive(int(match[1])):
                continue
            _remove_quietly(entry.path)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # at start-up nothing of ours is being written yet: an earlier process had our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
