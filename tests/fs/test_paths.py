"""Path helpers and spargio.fs.Path against the os module."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from spargio import fs
from spargio.testing import settle


async def test_read_write_bytes_and_text(tmp_path):
    path = tmp_path / "a.bin"
    data = os.urandom(200_000)
    assert await fs.write_bytes(path, data) == len(data)
    assert await fs.read_bytes(path) == data
    assert await fs.write_bytes(str(path), b"small", fsync=True) == 5
    assert path.read_bytes() == b"small"
    assert await fs.write_text(path, "x\ny\n", newline="\r\n") == 4
    assert path.read_bytes() == b"x\r\ny\r\n"
    assert await fs.read_text(path) == "x\ny\n"
    with pytest.raises(FileNotFoundError) as info:
        await fs.read_bytes(tmp_path / "missing")
    assert info.value.filename == str(tmp_path / "missing")


async def test_atomic_write_replaces_in_one_step(tmp_path):
    path = tmp_path / "atomic"
    path.write_bytes(b"old")
    await fs.write_bytes(path, b"new contents", atomic=True)
    assert path.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["atomic"]


async def test_concurrent_atomic_writers_of_one_path_never_share_a_temporary_file(tmp_path):
    path = tmp_path / "shared"
    payloads = [bytes([i]) * (1000 + 7919 * i) for i in range(24)]
    written = await asyncio.gather(*(fs.write_bytes(path, p, atomic=True, fsync=True) for p in payloads))
    assert written == [len(p) for p in payloads]
    assert path.read_bytes() in payloads  # whole: one writer's bytes, never a mix
    assert os.listdir(tmp_path) == ["shared"]


async def test_cancelled_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "kept"
    path.write_bytes(b"old")
    big = os.urandom(8 << 20)
    for delay in (0, 0.0005, 0.002):
        task = asyncio.ensure_future(fs.write_bytes(path, big, atomic=True, fsync=True))
        await asyncio.sleep(delay)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            assert path.read_bytes() == b"old"
        else:
            assert path.read_bytes() == big  # finished before the cancel landed
            path.write_bytes(b"old")
        await settle()  # a cancelled open ends (and its file is removed) a moment later
        assert os.listdir(tmp_path) == ["kept"]


async def test_namespace_operations(tmp_path):
    base = tmp_path / "d"
    await fs.mkdir(base)
    with pytest.raises(FileExistsError):
        await fs.mkdir(base)
    await fs.makedirs(base / "x" / "y" / "z")
    await fs.makedirs(base / "x" / "y" / "z", exist_ok=True)
    assert await fs.isdir(base / "x" / "y" / "z")
    await fs.write_bytes(base / "f", b"1")
    assert await fs.exists(base / "f")
    assert await fs.isfile(base / "f")
    assert not await fs.exists(base / "nope")
    assert not await fs.exists(base / "f" / "under-a-file")
    await fs.rename(base / "f", base / "g")
    assert sorted(await fs.listdir(base)) == ["g", "x"]
    assert sorted(e.name for e in await fs.scandir(base)) == ["g", "x"]
    await fs.write_bytes(base / "h", b"2")
    await fs.replace(base / "h", base / "g")
    assert (base / "g").read_bytes() == b"2"
    await fs.link(base / "g", base / "hard")
    assert os.stat(base / "hard").st_ino == os.stat(base / "g").st_ino
    await fs.symlink("g", base / "soft")
    assert await fs.readlink(base / "soft") == "g"
    assert (await fs.lstat(base / "soft")).st_mode & 0o170000 == 0o120000
    assert (await fs.stat(base / "soft")).st_ino == os.stat(base / "g").st_ino
    await fs.chmod(base / "g", 0o600)
    assert os.stat(base / "g").st_mode & 0o777 == 0o600
    await fs.remove(base / "soft")
    await fs.unlink(base / "hard")
    with pytest.raises(OSError):
        await fs.rmdir(base / "x")  # not empty
    await fs.rmdir(base / "x" / "y" / "z")
    assert not await fs.exists(base / "x" / "y" / "z")
    assert await fs.getsize(base / "g") == 1
    assert await fs.realpath(base / "x" / "..") == os.path.realpath(base)


async def test_copyfile(tmp_path):
    src = tmp_path / "src"
    data = os.urandom(3 * (1 << 20) + 17)
    src.write_bytes(data)
    assert await fs.copyfile(src, tmp_path / "dst") == len(data)
    assert (tmp_path / "dst").read_bytes() == data
    with pytest.raises(shutil.SameFileError):
        await fs.copyfile(src, src)


async def test_path_class(tmp_path):
    p = fs.Path(tmp_path) / "sub" / "file.txt"
    assert isinstance(p, fs.Path) and isinstance(p.parent, fs.Path)
    assert p.name == "file.txt" and p.suffix == ".txt"
    await p.parent.mkdir()
    await p.write_text("hello")
    assert await p.read_text() == "hello"
    assert await p.exists() and await p.is_file() and not await p.is_dir()
    assert (await p.stat()).st_size == 5
    async with p.open("rb") as f:
        assert await f.read() == b"hello"
    q = await p.rename(p.with_name("moved.txt"))
    assert not await p.exists() and await q.read_bytes() == b"hello"
    assert [x.name async for x in q.parent.iterdir()] == ["moved.txt"]
    assert [x.name async for x in q.parent.glob("*.txt")] == ["moved.txt"]
    link = q.with_name("link")
    await link.symlink_to(q.name)
    assert await link.is_symlink()
    assert await link.resolve() == fs.Path(os.path.realpath(q))
    assert await q.samefile(link)
    await link.unlink()
    await link.unlink(missing_ok=True)
    await q.unlink()
    await q.parent.rmdir()
    await (fs.Path(tmp_path) / "t").touch()
    assert os.path.exists(tmp_path / "t")
    await (fs.Path(tmp_path) / "a" / "b").mkdir(parents=True)
    await (fs.Path(tmp_path) / "a" / "b").mkdir(parents=True, exist_ok=True)


async def test_batch_read_and_write(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(bytes(64 * 4096))
    async with fs.open(path, "r+b") as f:
        blocks = [os.urandom(4096) for _ in range(64)]
        assert await fs.write_many((f, i * 4096, blocks[i]) for i in range(64)) == [4096] * 64
        got = await fs.read_many([(f, i * 4096, 4096) for i in reversed(range(64))])
        assert got == list(reversed(blocks))
        assert await fs.read_many([(f, 64 * 4096 - 10, 4096), (f.fileno(), 10**9, 5)]) == [blocks[-1][-10:], b""]
        with pytest.raises(ValueError):
            await fs.read_many([(f, 0, 10), (f, -1, 10)])
        assert await fs.read_many([]) == []


async def test_write_bytes_of_an_async_iterable_writes_each_chunk_as_it_comes(tmp_path):
    path = tmp_path / "streamed"
    chunks = [os.urandom(n) for n in (1, 70_000, 0, 3 << 20, 5)]

    async def body():
        for chunk in chunks:
            await asyncio.sleep(0)
            yield chunk

    assert await fs.write_bytes(path, body(), atomic=True, fsync=True) == sum(map(len, chunks))
    assert path.read_bytes() == b"".join(chunks)


async def test_a_failing_stream_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "kept"
    path.write_bytes(b"old")

    async def body():
        yield b"new part"
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await fs.write_bytes(path, body(), atomic=True, fsync=True)
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["kept"]


class _CountingLimiter:
    """An async context manager counting how often it is held (anyio's CapacityLimiter's shape)."""

    def __init__(self) -> None:
        self.held = 0

    async def __aenter__(self) -> None:
        self.held += 1

    async def __aexit__(self, *exc: object) -> None:
        pass


async def test_a_paths_limiter_is_kept_by_derived_paths_and_held_for_pool_calls(tmp_path):
    limiter = _CountingLimiter()
    root = fs.Path(tmp_path, limiter=limiter)
    for derived in (root / "a", "x" / root, root.joinpath("b"), root.parent, *root.parents, root.with_name("c")):
        assert derived.limiter is limiter
    await (root / "one.txt").write_text("1")
    assert [p.name async for p in root.glob("*.txt")] == ["one.txt"]
    assert [p.name async for p in root.iterdir()] == ["one.txt"]
    assert limiter.held == 2  # glob and listdir take a pool thread; the write was ring ops
    async with (root / "one.txt").open() as f:
        assert f.limiter is limiter
    assert (await fs.Path.cwd()) == fs.Path(os.getcwd())
    assert await fs.Path("~").expanduser() == fs.Path(os.path.expanduser("~"))
    with pytest.raises(ValueError, match="non-empty suffix"):
        fs.Path("a.txt").with_stem("")


async def test_open_file_and_wrap_file_as_anyio(tmp_path):
    path = tmp_path / "f.txt"
    f = await fs.open_file(path, "w")
    assert f.name == str(path)  # the builtin's name: the path as str
    await f.write("hello")
    await f.aclose()
    with open(path) as sync:
        wrapped = fs.wrap_file(sync)
        assert wrapped.wrapped is sync
        assert await wrapped.read() == "hello"
