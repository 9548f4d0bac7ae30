"""Three ways to do the service's disk work: spargio, aiofiles, asyncio.to_thread.

Each store does the same three jobs, written the way its users write them:

- ``read(path)``: a whole file's bytes.
- ``write(path, data)``: durable replacement: write a hidden temporary file
  beside the target, fsync it, rename it into place, fsync the directory.
  Readers see the old file or the new one, never half of either.
- ``digest(path)``: the sha256 of a file, hashed off the service's loop
  (hashlib releases the GIL for large buffers, so hashes run in parallel).

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
import threading
from dataclasses import asdict
from typing import Any, ClassVar, Protocol

import aiofiles
import aiofiles.os

import spargio

DIGEST_CHUNK = 1 << 20  # read and hash this much at a time
MODES = ("spargio", "aiofiles", "to_thread")


class Store(Protocol):
    mode: ClassVar[str]

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def read(self, path: str) -> bytes: ...
    async def write(self, path: str, data: bytes) -> int: ...
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

    async def read(self, path: str) -> bytes:
        return await spargio.fs.read_bytes(path)

    async def write(self, path: str, data: bytes) -> int:
        return await spargio.fs.write_bytes(path, data, atomic=True, fsync=True)

    async def digest(self, path: str) -> str:
        # The whole job (open, read, hash) runs on a shard: its reads go
        # through the shard's own ring and the service's loop only waits.
        return await spargio.boundary.call(_digest_on_shard, path, runtime=self.runtime)

    def stats(self) -> dict[str, Any]:
        info = spargio.backend_info()
        return {"backend": info.name, "backend_reason": info.reason, "runtime": asdict(self.runtime.stats())}


async def _digest_on_shard(path: str) -> str:
    buffers = _read_buffers()
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


def _read_buffers() -> list[bytearray]:
    """This shard's spare read buffers.

    Reusing them matters: a fresh 1 MiB buffer per read costs page faults on
    every read (and TLB shootdowns when it is unmapped), which halved the
    digest rate in measurement.
    """
    try:
        buffers: list[bytearray] = _shard_local.buffers
    except AttributeError:
        buffers = _shard_local.buffers = []
    return buffers


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

    async def read(self, path: str) -> bytes:
        async with aiofiles.open(path, "rb") as f:
            return await f.read()

    async def write(self, path: str, data: bytes) -> int:
        temporary = _temporary_name(path)
        try:
            async with aiofiles.open(temporary, "wb") as f:
                await f.write(data)
                await f.flush()
                await _aiofiles_fsync(f.fileno())
            await aiofiles.os.replace(temporary, path)
        except BaseException:
            await asyncio.shield(_aiofiles_remove_quietly(temporary))
            raise
        await _aiofiles_fsync_directory(os.path.dirname(path))
        return len(data)

    async def digest(self, path: str) -> str:
        data = await self.read(path)
        return await asyncio.get_running_loop().run_in_executor(None, _sha256_hex, data)


class ToThreadStore(_ExecutorStore):
    """asyncio.to_thread: each job is one blocking function in one thread hop."""

    mode: ClassVar[str] = "to_thread"

    async def read(self, path: str) -> bytes:
        return await asyncio.to_thread(_read_file, path)

    async def write(self, path: str, data: bytes) -> int:
        return await asyncio.to_thread(_write_file_durably, path, data)

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


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


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


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# aiofiles has no fsync and no directory fsync of its own: its users wrap the blocking calls.
_aiofiles_fsync = aiofiles.os.wrap(os.fsync)
_aiofiles_fsync_directory = aiofiles.os.wrap(_fsync_directory)
_aiofiles_remove_quietly = aiofiles.os.wrap(_remove_quietly)
