"""The file-I/O benchmark cases: spargio and its anchors, doing the same work.

A case is (benchmark, implementation, queue depth): an async ``setup``
returning a state, an async ``op(state, i, worker)`` doing one unit of work
(one 4 KiB read, one small file, ...), and a ``teardown``.  `run_case` times
``n`` units on a given event loop; `benches/bench_fs.py` hands that to pyperf
and `examples/fs_demo.py` calls it directly.

Anchors: ``asyncio.to_thread`` / ``loop.run_in_executor`` (the default
executor), aiofiles (a thread hop per call; no pread, so seek + read), anyio
(a thread hop per call), and caio's io_uring context (aiofile's engine).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")

DATA = Path(__file__).resolve().parent / ".data"
READ_FILE = DATA / "read64m.bin"
BIG_FILE = DATA / "big16m.bin"
WRITE_FILE = DATA / "write16m.bin"
SMALL_DIR = DATA / "small"
OUT_DIR = DATA / "small-out"
BLOCK = 4096
N_SMALL = 1000
QD = 32

_offsets = [random.Random(7).randrange(64 * 1024 * 1024 // BLOCK) * BLOCK for _ in range(1 << 16)]
_write_offsets = [random.Random(8).randrange(16 * 1024 * 1024 // BLOCK) * BLOCK for _ in range(1 << 16)]


def offset(i: int) -> int:
    return _offsets[i & 0xFFFF]


def prepare_data() -> None:
    """Create the data set once (random content, then read once to warm the page cache)."""
    DATA.mkdir(exist_ok=True)
    for path, size in ((READ_FILE, 64 << 20), (BIG_FILE, 16 << 20), (WRITE_FILE, 16 << 20)):
        if not path.exists() or path.stat().st_size != size:
            with open(path, "wb") as f:
                for _ in range(size >> 20):
                    f.write(os.urandom(1 << 20))
    SMALL_DIR.mkdir(exist_ok=True)
    OUT_DIR.mkdir(exist_ok=True)
    for i in range(N_SMALL):
        p = SMALL_DIR / f"{i:04d}"
        if not p.exists():
            p.write_bytes(os.urandom(BLOCK))
    for path in (READ_FILE, BIG_FILE):
        with open(path, "rb") as f:
            while f.read(1 << 22):
                pass


Op = Callable[[Any, int, int], Awaitable[Any]]


@dataclass
class Case:
    bench: str
    impl: str
    qd: int
    setup: Callable[[], Awaitable[Any]]
    op: Op
    teardown: Callable[[Any], Awaitable[None]] = field(default=lambda state: _noop())
    batch: int = 1  # units of work done by one ``op`` call (read_many)

    @property
    def key(self) -> str:
        return f"{self.bench}/{self.impl}"


async def _noop() -> None:
    return None


def _fd_setup(path: Path, flags: int = 0) -> Callable[[], Awaitable[int]]:
    async def setup() -> int:
        return os.open(path, os.O_RDWR | flags)

    return setup


async def _close_fd(fd: int) -> None:
    os.close(fd)


# -- 4 KiB random reads ----------------------------------------------------------


def _spargio_file(path: Path, flags: int = 0) -> Callable[[], Awaitable[Any]]:
    async def setup() -> Any:
        import spargio

        return await spargio.fs.open(path, "r+b", flags=flags)

    return setup


async def _spargio_close(f: Any) -> None:
    await f.close()


async def spargio_read(f: Any, i: int, w: int) -> bytes:
    data: bytes = await f.read_at(offset(i), BLOCK)
    return data


async def spargio_read_many(f: Any, i: int, w: int) -> list[bytes]:
    import spargio

    return await spargio.fs.read_many([(f, offset(i + k), BLOCK) for k in range(QD)])


async def to_thread_read(fd: int, i: int, w: int) -> bytes:
    return await asyncio.to_thread(os.pread, fd, BLOCK, offset(i))


async def executor_read(fd: int, i: int, w: int) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, os.pread, fd, BLOCK, offset(i))


def _aligned_executor_read() -> tuple[Callable[[], Awaitable[Any]], Op]:
    async def setup() -> Any:
        return os.open(READ_FILE, os.O_RDONLY | os.O_DIRECT), [mmap.mmap(-1, BLOCK) for _ in range(QD)]

    def read_direct(fd: int, buf: mmap.mmap, off: int) -> bytes:
        n = os.preadv(fd, [buf], off)
        return buf[:n]

    async def op(state: Any, i: int, w: int) -> bytes:
        fd, bufs = state
        return await asyncio.get_running_loop().run_in_executor(None, read_direct, fd, bufs[w], offset(i))

    return setup, op


async def _aiofiles_setup() -> list[Any]:
    import aiofiles

    return [await aiofiles.open(READ_FILE, "rb") for _ in range(QD)]


async def _aiofiles_close(files: list[Any]) -> None:
    for f in files:
        await f.close()


async def aiofiles_read(files: list[Any], i: int, w: int) -> bytes:
    f = files[w]
    await f.seek(offset(i))
    data: bytes = await f.read(BLOCK)
    return data


async def _spargio_aiofiles_setup() -> list[Any]:
    import spargio.aiofiles

    return [await spargio.aiofiles.open(READ_FILE, "rb") for _ in range(QD)]


async def _spargio_fs_open_setup() -> list[Any]:
    import spargio

    return [await spargio.fs.open(READ_FILE, "rb") for _ in range(QD)]


async def _anyio_setup() -> list[Any]:
    import anyio

    return [await anyio.open_file(READ_FILE, "rb") for _ in range(QD)]


async def anyio_read(files: list[Any], i: int, w: int) -> bytes:
    f = files[w]
    await f.seek(offset(i))
    data: bytes = await f.read(BLOCK)
    return data


async def _anyio_close(files: list[Any]) -> None:
    for f in files:
        await f.aclose()


async def _caio_setup() -> tuple[Any, int]:
    from caio.linux_uring_asyncio import AsyncioContext

    return AsyncioContext(max_requests=128), os.open(READ_FILE, os.O_RDONLY)


async def caio_read(state: tuple[Any, int], i: int, w: int) -> bytes:
    ctx, fd = state
    data: bytes = await ctx.read(BLOCK, fd, offset(i))
    return data


async def _caio_close(state: tuple[Any, int]) -> None:
    ctx, fd = state
    ctx.close()
    os.close(fd)


# -- write + fsync ---------------------------------------------------------------

_PAYLOAD = os.urandom(BLOCK)


async def spargio_write_fsync(f: Any, i: int, w: int) -> None:
    await f.write_at(_write_offsets[i & 0xFFFF], _PAYLOAD)
    await f.fsync()


def _pwrite_fsync(fd: int, off: int) -> None:
    os.pwrite(fd, _PAYLOAD, off)
    os.fsync(fd)


async def to_thread_write_fsync(fd: int, i: int, w: int) -> None:
    await asyncio.to_thread(_pwrite_fsync, fd, _write_offsets[i & 0xFFFF])


async def _aiofiles_write_setup() -> list[Any]:
    import aiofiles

    return [await aiofiles.open(WRITE_FILE, "r+b") for _ in range(QD)]


async def aiofiles_write_fsync(files: list[Any], i: int, w: int) -> None:
    import aiofiles.os

    f = files[w]
    await f.seek(_write_offsets[i & 0xFFFF])
    await f.write(_PAYLOAD)
    await f.flush()
    await aiofiles.os.wrap(os.fsync)(f.fileno())


async def _caio_write_setup() -> tuple[Any, int]:
    from caio.linux_uring_asyncio import AsyncioContext

    return AsyncioContext(max_requests=128), os.open(WRITE_FILE, os.O_RDWR)


async def caio_write_fsync(state: tuple[Any, int], i: int, w: int) -> None:
    ctx, fd = state
    await ctx.write(_PAYLOAD, fd, _write_offsets[i & 0xFFFF])
    await ctx.fsync(fd)


# -- whole files -----------------------------------------------------------------


def _small(i: int) -> Path:
    return SMALL_DIR / f"{i % N_SMALL:04d}"


def _small_out(i: int) -> Path:
    return OUT_DIR / f"{i % N_SMALL:04d}"


async def spargio_small_read(state: None, i: int, w: int) -> bytes:
    import spargio

    return await spargio.fs.read_bytes(_small(i))


async def to_thread_small_read(state: None, i: int, w: int) -> bytes:
    return await asyncio.to_thread(_small(i).read_bytes)


async def aiofiles_small_read(state: None, i: int, w: int) -> bytes:
    import aiofiles

    async with aiofiles.open(_small(i), "rb") as f:
        data: bytes = await f.read()
        return data


async def spargio_aiofiles_small_read(state: None, i: int, w: int) -> bytes:
    """aiofiles' code, its import changed to spargio.aiofiles."""
    import spargio.aiofiles

    async with spargio.aiofiles.open(_small(i), "rb") as f:
        data: bytes = await f.read()
        return data


async def spargio_fs_open_small_read(state: None, i: int, w: int) -> bytes:
    """aiofiles' call pattern through spargio.fs.open: what the layer itself costs."""
    import spargio

    async with spargio.fs.open(_small(i), "rb") as f:
        data: bytes = await f.read()
    return data


async def anyio_small_read(state: None, i: int, w: int) -> bytes:
    import anyio

    return await anyio.Path(_small(i)).read_bytes()


async def aiofile_small_read(state: None, i: int, w: int) -> bytes:
    from aiofile import async_open

    async with async_open(_small(i), "rb") as f:
        data: bytes = await f.read()
        return data


async def spargio_small_write(state: None, i: int, w: int) -> None:
    import spargio

    await spargio.fs.write_bytes(_small_out(i), _PAYLOAD)


async def to_thread_small_write(state: None, i: int, w: int) -> None:
    await asyncio.to_thread(_small_out(i).write_bytes, _PAYLOAD)


async def aiofiles_small_write(state: None, i: int, w: int) -> None:
    import aiofiles

    async with aiofiles.open(_small_out(i), "wb") as f:
        await f.write(_PAYLOAD)


async def spargio_aiofiles_small_write(state: None, i: int, w: int) -> None:
    """aiofiles' code, its import changed to spargio.aiofiles."""
    import spargio.aiofiles

    async with spargio.aiofiles.open(_small_out(i), "wb") as f:
        await f.write(_PAYLOAD)


async def spargio_fs_open_small_write(state: None, i: int, w: int) -> None:
    """aiofiles' call pattern through spargio.fs.open: what the layer itself costs."""
    import spargio

    async with spargio.fs.open(_small_out(i), "wb") as f:
        await f.write(_PAYLOAD)


async def anyio_small_write(state: None, i: int, w: int) -> None:
    import anyio

    await anyio.Path(_small_out(i)).write_bytes(_PAYLOAD)


async def aiofile_small_write(state: None, i: int, w: int) -> None:
    from aiofile import async_open

    async with async_open(_small_out(i), "wb") as f:
        await f.write(_PAYLOAD)


async def spargio_large(state: None, i: int, w: int) -> bytes:
    import spargio

    return await spargio.fs.read_bytes(BIG_FILE)


async def to_thread_large(state: None, i: int, w: int) -> bytes:
    return await asyncio.to_thread(BIG_FILE.read_bytes)


async def aiofiles_large(state: None, i: int, w: int) -> bytes:
    import aiofiles

    async with aiofiles.open(BIG_FILE, "rb") as f:
        data: bytes = await f.read()
        return data


async def anyio_large(state: None, i: int, w: int) -> bytes:
    import anyio

    return await anyio.Path(BIG_FILE).read_bytes()


async def aiofile_large(state: None, i: int, w: int) -> bytes:
    from aiofile import async_open

    async with async_open(BIG_FILE, "rb") as f:
        data: bytes = await f.read()
        return data


SMALL_IO = 100  # bytes per call: a log line, a record


def _small_io_setup(impl: str, path: Path) -> Callable[[], Awaitable[Any]]:
    """The file a small-I/O case reads or writes, opened as ``impl`` users open it."""

    async def setup() -> Any:
        if impl == "spargio":
            import spargio

            return await spargio.fs.open(path, "r+b")
        if impl == "spargio.unbuffered":
            import spargio

            return await spargio.fs.open(path, "r+b", buffering=0)
        if impl == "spargio.aiofiles":
            import spargio.aiofiles

            return await spargio.aiofiles.open(path, "r+b")
        if impl == "aiofiles":
            import aiofiles

            return await aiofiles.open(path, "r+b")
        return open(path, "r+b")  # to_thread: closed by the teardown

    return setup


async def _small_io_close(f: Any) -> None:
    result = f.close()
    if result is not None:
        await result


async def small_write(f: Any, i: int, w: int) -> None:
    if i % 100_000 == 0:
        await f.seek(0)
    await f.write(_PAYLOAD[:SMALL_IO])


async def small_read(f: Any, i: int, w: int) -> bytes:
    data: bytes = await f.read(SMALL_IO)
    if not data:
        await f.seek(0)
    return data


async def to_thread_write_100(f: Any, i: int, w: int) -> None:
    if i % 100_000 == 0:
        f.seek(0)
    await asyncio.to_thread(f.write, _PAYLOAD[:SMALL_IO])


async def to_thread_small_read_100(f: Any, i: int, w: int) -> bytes:
    data: bytes = await asyncio.to_thread(f.read, SMALL_IO)
    if not data:
        f.seek(0)
    return data


def _cases() -> list[Case]:
    none: Callable[[], Awaitable[Any]] = _noop
    cases: list[Case] = []
    for bench, qd in (("fs_read_rtt_4k", 1), ("fs_read_throughput_4k_qd32", QD)):
        cases += [
            Case(bench, "spargio", qd, _spargio_file(READ_FILE), spargio_read, _spargio_close),
            Case(bench, "to_thread", qd, _fd_setup(READ_FILE), to_thread_read, _close_fd),
            Case(bench, "aiofiles", qd, _aiofiles_setup, aiofiles_read, _aiofiles_close),
            # aiofiles' code with its import changed: the drop-in's cost against spargio.fs
            Case(bench, "spargio.aiofiles", qd, _spargio_aiofiles_setup, aiofiles_read, _aiofiles_close),
            # the same code through spargio.fs.open: the layer's own cost, apart from the call pattern
            Case(bench, "spargio.fs.open", qd, _spargio_fs_open_setup, aiofiles_read, _aiofiles_close),
            Case(bench, "anyio", qd, _anyio_setup, anyio_read, _anyio_close),
            Case(bench, "caio", qd, _caio_setup, caio_read, _caio_close),
        ]
    cases.append(
        Case(
            "fs_read_throughput_4k_qd32", "spargio.read_many", 1, _spargio_file(READ_FILE),
            spargio_read_many, _spargio_close, batch=QD,
        )
    )  # fmt: skip
    direct_setup, direct_op = _aligned_executor_read()
    cases += [
        Case(
            "fs_read_odirect_4k_qd32",
            "spargio",
            QD,
            _spargio_file(READ_FILE, os.O_DIRECT),
            spargio_read,
            _spargio_close,
        ),
        Case("fs_read_odirect_4k_qd32", "run_in_executor", QD, direct_setup, direct_op, lambda s: _close_fd(s[0])),
    ]
    for bench, qd in (("fs_write_fsync_4k_qd1", 1), ("fs_write_fsync_4k_qd32", QD)):
        cases += [
            Case(bench, "spargio", qd, _spargio_file(WRITE_FILE), spargio_write_fsync, _spargio_close),
            Case(bench, "to_thread", qd, _fd_setup(WRITE_FILE), to_thread_write_fsync, _close_fd),
            Case(bench, "aiofiles", qd, _aiofiles_write_setup, aiofiles_write_fsync, _aiofiles_close),
            Case(bench, "caio", qd, _caio_write_setup, caio_write_fsync, _caio_close),
        ]
    for bench, ops in (
        (
            "fs_small_files_read",
            (spargio_small_read, to_thread_small_read, aiofiles_small_read, anyio_small_read, aiofile_small_read),
        ),
        (
            "fs_small_files_write",
            (spargio_small_write, to_thread_small_write, aiofiles_small_write, anyio_small_write, aiofile_small_write),
        ),
        ("fs_read_large_16m", (spargio_large, to_thread_large, aiofiles_large, anyio_large, aiofile_large)),
    ):
        for impl, op in zip(("spargio", "to_thread", "aiofiles", "anyio", "aiofile"), ops, strict=True):
            cases.append(Case(bench, impl, 1, none, op))
    for impl in ("spargio", "spargio.unbuffered", "spargio.aiofiles", "aiofiles", "to_thread"):
        threaded = impl == "to_thread"
        cases += [
            Case("fs_write_100b", impl, 1, _small_io_setup(impl, WRITE_FILE),
                 to_thread_write_100 if threaded else small_write, _small_io_close),
            Case("fs_read_100b", impl, 1, _small_io_setup(impl, READ_FILE),
                 to_thread_small_read_100 if threaded else small_read, _small_io_close),
        ]  # fmt: skip
    cases += [
        Case("fs_small_files_read", "spargio.aiofiles", 1, none, spargio_aiofiles_small_read),
        Case("fs_small_files_write", "spargio.aiofiles", 1, none, spargio_aiofiles_small_write),
        Case("fs_small_files_read", "spargio.fs.open", 1, none, spargio_fs_open_small_read),
        Case("fs_small_files_write", "spargio.fs.open", 1, none, spargio_fs_open_small_write),
    ]
    return cases


CASES: dict[str, Case] = {case.key: case for case in _cases()}


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _timed(case: Case, n: int) -> float:
    state = await case.setup()
    try:
        calls = max(1, n // case.batch)
        for i in range(min(calls, 64)):  # warm up: rings, thread pools, caches
            await case.op(state, i, 0)
        if case.qd == 1:
            start = time.perf_counter()
            for i in range(calls):
                await case.op(state, i * case.batch, 0)
            return time.perf_counter() - start

        per_worker = max(1, calls // case.qd)

        async def worker(w: int) -> None:
            for i in range(per_worker):
                await case.op(state, (i * case.qd + w) * case.batch, w)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(case.qd)))
        elapsed = time.perf_counter() - start
        return elapsed * n / (per_worker * case.qd * case.batch)
    finally:
        await case.teardown(state)


def run_on_fresh_loop(loop_name: str, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a new ``loop_name`` loop and close it as `asyncio.run` does (the loop's
    ring closes with it; a bare ``loop.close()`` would leave it to the garbage collector)."""
    loop = new_loop(loop_name)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def run_case(key: str, loop_name: str, n: int) -> float:
    """Seconds taken by ``n`` units of work of case ``key`` on a fresh loop."""
    return run_on_fresh_loop(loop_name, _timed(CASES[key], n))
