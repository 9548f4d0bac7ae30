"""The rest of os and os.path (issue 14): each against its os namesake, on both backends."""

from __future__ import annotations

import asyncio
import contextvars
import os
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from spargio import fs


async def test_getcwd_and_abspath_are_os_s():
    assert await fs.getcwd() == os.getcwd()
    assert await fs.abspath("a/../b") == os.path.abspath("a/../b")
    assert await fs.abspath(b"x") == os.path.abspath(b"x")


async def test_access_answers_as_os_does(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"")
    path.chmod(0o400)
    for mode in (os.F_OK, os.R_OK, os.W_OK, os.X_OK, os.R_OK | os.W_OK):
        assert await fs.access(path, mode) == os.access(path, mode), mode
    assert await fs.access(tmp_path / "missing", os.F_OK) is False


async def test_times_links_and_identity(tmp_path):
    target = tmp_path / "t"
    target.write_bytes(b"data")
    os.utime(target, (1_000_000, 2_000_000))
    (tmp_path / "sym").symlink_to(target)
    os.link(target, tmp_path / "hard")
    st = os.stat(target)
    assert await fs.getatime(target) == os.path.getatime(target) == 1_000_000
    assert await fs.getmtime(target) == os.path.getmtime(target) == 2_000_000
    assert await fs.getctime(target) == st.st_ctime
    assert (await fs.islink(tmp_path / "sym"), await fs.islink(target)) == (True, False)
    assert await fs.islink(tmp_path / "missing") is False
    assert await fs.samefile(target, tmp_path / "hard")
    assert await fs.samefile(target, tmp_path / "sym")  # follows, as os.path.samefile
    assert not await fs.samefile(target, tmp_path)
    with pytest.raises(FileNotFoundError):
        await fs.samefile(target, tmp_path / "missing")
    a, b, c = os.open(target, os.O_RDONLY), os.open(tmp_path / "hard", os.O_RDONLY), os.open(tmp_path, os.O_RDONLY)
    try:
        assert await fs.sameopenfile(a, b) and not await fs.sameopenfile(a, c)
    finally:
        for fd in (a, b, c):
            os.close(fd)


@pytest.mark.parametrize("where", ["/", "/proc", "/tmp", "/etc/hostname", "/nonexistent"])
async def test_ismount_answers_as_os_path_does(where):
    assert await fs.ismount(where) == os.path.ismount(where)


async def test_ismount_of_a_symlink_and_a_plain_directory(tmp_path):
    (tmp_path / "root-link").symlink_to("/")
    assert await fs.ismount(tmp_path / "root-link") is os.path.ismount(tmp_path / "root-link") is False
    assert await fs.ismount(tmp_path) is os.path.ismount(tmp_path)


async def test_removedirs_and_renames_as_os(tmp_path):
    for root in ("theirs", "mine"):
        os.makedirs(tmp_path / root / "a" / "b" / "c")
        (tmp_path / root / "keep").write_bytes(b"")
    os.removedirs(tmp_path / "theirs" / "a" / "b" / "c")
    await fs.removedirs(tmp_path / "mine" / "a" / "b" / "c")
    assert sorted(os.listdir(tmp_path / "mine")) == sorted(os.listdir(tmp_path / "theirs")) == ["keep"]
    with pytest.raises(FileNotFoundError):
        await fs.removedirs(tmp_path / "mine" / "gone")

    for root in ("theirs", "mine"):
        os.makedirs(tmp_path / root / "old" / "deep")
        (tmp_path / root / "old" / "deep" / "f").write_bytes(b"moved")
    os.renames(tmp_path / "theirs" / "old" / "deep" / "f", tmp_path / "theirs" / "new" / "er" / "f")
    await fs.renames(tmp_path / "mine" / "old" / "deep" / "f", tmp_path / "mine" / "new" / "er" / "f")
    assert (tmp_path / "mine" / "new" / "er" / "f").read_bytes() == b"moved"
    assert sorted(os.listdir(tmp_path / "mine")) == sorted(os.listdir(tmp_path / "theirs")) == ["keep", "new"]


async def test_statvfs_is_os_s(tmp_path):
    mine, theirs = await fs.statvfs(tmp_path), os.statvfs(tmp_path)
    assert (mine.f_bsize, mine.f_blocks, mine.f_namemax) == (theirs.f_bsize, theirs.f_blocks, theirs.f_namemax)


async def test_sendfile_file_to_file_and_to_a_socket(tmp_path):
    src = tmp_path / "src"
    body = os.urandom(200_000)
    src.write_bytes(body)
    with open(src, "rb") as i, open(tmp_path / "dst", "wb") as o:
        sent = 0
        while sent < len(body):
            sent += await fs.sendfile(o.fileno(), i.fileno(), sent, len(body) - sent)
    assert (tmp_path / "dst").read_bytes() == body
    a, b = socket.socketpair()
    with a, b, open(src, "rb") as i:
        got = bytearray()
        sender = asyncio.ensure_future(fs.sendfile(a.fileno(), i.fileno(), 0, 1000))
        assert await sender == 1000
        while len(got) < 1000:
            got += b.recv(1000)
        assert bytes(got) == body[:1000]


async def test_scandir_is_an_iterator_usable_with_with_and_next(tmp_path):
    (tmp_path / "only").write_bytes(b"")
    with await fs.scandir(tmp_path) as entries:
        entry = next(entries)
        assert entry.name == "only" and entry.is_file()
        with pytest.raises(StopIteration):
            next(entries)
    assert [e.name for e in await fs.scandir(tmp_path)] == ["only"]
    with pytest.raises(FileNotFoundError):
        await fs.scandir(tmp_path / "missing")


_seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="")


async def test_wrap_runs_a_blocking_function_on_the_pool_or_a_given_executor():
    def where(x: int) -> tuple[int, str, str]:
        import threading

        return x * 2, threading.current_thread().name, _seen.get()

    wrapped = fs.wrap(where)
    _seen.set("caller's")
    doubled, thread, seen = await wrapped(21)
    assert (doubled, seen) == (42, "caller's") and thread.startswith("spargio-blocking")
    with ThreadPoolExecutor(1, thread_name_prefix="given") as executor:
        _, thread, _ = await wrapped(1, executor=executor, loop=asyncio.get_running_loop())
    assert thread.startswith("given")
    assert wrapped.__name__ == "where"


async def test_open_with_an_opener(tmp_path):
    path = tmp_path / "f"
    calls = []

    def opener(name, flags):
        calls.append((name, flags))
        return os.open(name, flags, 0o600)

    async with fs.open(path, "wb", opener=opener) as f:
        await f.write(b"via opener")
    assert path.read_bytes() == b"via opener" and calls and calls[0][0] == path
    assert calls[0][1] & os.O_CLOEXEC
    with pytest.raises(ValueError, match="not an open fd"):
        await fs.open(path, "rb", opener=lambda name, flags: -1)


async def test_stat_times_are_os_stat_s_to_the_last_bit(tmp_path):
    """The float times are CPython's ``sec + nsec * 1e-9``, not ``(sec * 1e9 + nsec) / 1e9``."""
    import random

    path = tmp_path / "t"
    path.write_bytes(b"")
    rng = random.Random(16)
    for _ in range(300):
        ns = rng.randrange(4_000_000_000 * 10**9)
        os.utime(path, ns=(ns, ns + rng.randrange(10**9)))
        mine, theirs = await fs.stat(path), os.stat(path)
        assert (mine.st_atime, mine.st_mtime, mine.st_ctime) == (theirs.st_atime, theirs.st_mtime, theirs.st_ctime)
        assert (mine.st_atime_ns, mine.st_mtime_ns) == (theirs.st_atime_ns, theirs.st_mtime_ns)
