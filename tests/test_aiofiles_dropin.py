"""``import spargio.aiofiles as aiofiles`` (issue 14): aiofiles' names, on spargio's I/O, on both backends."""

from __future__ import annotations

import asyncio
import io
import os

import aiofiles as real_aiofiles
import aiofiles.os as real_os
import aiofiles.ospath as real_ospath
import pytest

import spargio.aiofiles as aiofiles
from spargio.fs import AsyncFile


@pytest.fixture(autouse=True)
def _every_backend(backend: str) -> str:
    return backend


def test_every_public_name_of_aiofiles_os_and_ospath_is_there() -> None:
    assert set(real_os.__all__) <= set(aiofiles.os.__all__)
    assert set(real_ospath.__all__) <= set(aiofiles.ospath.__all__)
    assert aiofiles.os.path is aiofiles.ospath
    for name in aiofiles.os.__all__:
        assert callable(getattr(aiofiles.os, name)) or name == "path", name


async def test_open_takes_aiofiles_arguments_and_gives_spargio_files(tmp_path) -> None:
    path = tmp_path / "f"
    loop = asyncio.get_running_loop()
    async with aiofiles.open(path, "wb", loop=loop, executor=None) as f:
        assert isinstance(f, AsyncFile)
        await f.write(b"through spargio")
    async with real_aiofiles.open(path, "rb") as theirs, aiofiles.open(path, "rb") as mine:
        assert await mine.read() == await theirs.read()


async def test_os_functions_take_loop_and_executor_and_answer_as_aiofiles(tmp_path) -> None:
    loop = asyncio.get_running_loop()
    kw = {"loop": loop, "executor": None}
    await aiofiles.os.mkdir(tmp_path / "d", **kw)
    (tmp_path / "d" / "f").write_bytes(b"12345")
    assert await aiofiles.os.listdir(tmp_path / "d", **kw) == await real_os.listdir(tmp_path / "d")
    assert (await aiofiles.os.stat(tmp_path / "d" / "f", **kw)).st_size == 5
    assert await aiofiles.os.path.getsize(tmp_path / "d" / "f", **kw) == 5
    assert await aiofiles.os.path.isdir(tmp_path / "d", **kw) is await real_ospath.isdir(tmp_path / "d")
    assert await aiofiles.os.getcwd(**kw) == await real_os.getcwd()
    assert await aiofiles.os.access(tmp_path / "d" / "f", os.R_OK, **kw)
    await aiofiles.os.renames(tmp_path / "d" / "f", tmp_path / "e" / "g", **kw)
    assert not (tmp_path / "d").exists() and (tmp_path / "e" / "g").read_bytes() == b"12345"
    with await aiofiles.os.scandir(tmp_path / "e", **kw) as entries:
        assert next(entries).name == "g"
    wrapped = aiofiles.os.wrap(sum)
    assert await wrapped([1, 2, 3], loop=loop) == 6


async def test_temporary_file_is_unnamed_and_gone_when_closed(tmp_path) -> None:
    before = set(os.listdir(tmp_path))
    async with aiofiles.tempfile.TemporaryFile(dir=tmp_path) as f:
        await f.write(b"scratch")
        await f.seek(0)
        assert await f.read() == b"scratch"
        assert set(os.listdir(tmp_path)) == before  # O_TMPFILE: no name at all
        fd = f.fileno()
    with pytest.raises(OSError):
        os.fstat(fd)
    async with aiofiles.tempfile.TemporaryFile("w+", dir=tmp_path) as t:
        await t.write("text")
        await t.seek(0)
        assert await t.read() == "text"


@pytest.mark.parametrize("mode", ["w+b", "w+"])
async def test_named_temporary_file_has_a_name_and_is_removed_on_close(tmp_path, mode) -> None:
    async with aiofiles.tempfile.NamedTemporaryFile(mode, dir=tmp_path, prefix="p-", suffix=".s") as f:
        name = f.name
        assert os.path.dirname(name) == str(tmp_path)
        assert os.path.basename(name).startswith("p-") and name.endswith(".s")
        await f.write(b"seen by others" if "b" in mode else "seen by others")
        await f.flush()
        with open(name, "rb") as other:
            assert other.read() == b"seen by others"
    assert not os.path.exists(name)


async def test_named_temporary_file_delete_options(tmp_path) -> None:
    async with aiofiles.tempfile.NamedTemporaryFile(dir=tmp_path, delete=False) as f:
        kept = f.name
    assert os.path.exists(kept)
    async with aiofiles.tempfile.NamedTemporaryFile(dir=tmp_path, delete_on_close=False) as f:
        name = f.name
        await f.close()
        assert os.path.exists(name), "delete_on_close=False: kept until the with ends"
    assert not os.path.exists(name)
    f = await aiofiles.tempfile.NamedTemporaryFile(dir=tmp_path)
    name = f.name
    await f.close()
    assert not os.path.exists(name)
    os.unlink(kept)


async def test_temporary_directory_as_context_and_awaited(tmp_path) -> None:
    async with aiofiles.tempfile.TemporaryDirectory(dir=tmp_path, prefix="d-") as name:
        assert isinstance(name, str) and os.path.isdir(name) and os.path.basename(name).startswith("d-")
        os.makedirs(os.path.join(name, "a", "b"))
        open(os.path.join(name, "a", "f"), "wb").close()
    assert not os.path.exists(name)
    directory = await aiofiles.tempfile.TemporaryDirectory(dir=tmp_path)
    assert os.path.isdir(directory.name)
    kept = directory.name
    await directory.cleanup()
    await directory.cleanup()
    assert not os.path.exists(kept)


@pytest.mark.parametrize("mode", ["w+b", "w+"])
async def test_spooled_file_rolls_over_to_disk_past_max_size(tmp_path, mode) -> None:
    one = b"0123456789" if "b" in mode else "0123456789"
    async with aiofiles.tempfile.SpooledTemporaryFile(max_size=15, mode=mode, dir=tmp_path, encoding=None) as f:
        await f.write(one)
        assert not f.rolled and f.name is None
        await f.write(one)  # 20 > 15: on disk now, at the same position
        assert f.rolled and isinstance(await f.fileno(), int)
        assert await f.tell() == 20
        await f.write(one)
        await f.seek(0)
        assert await f.read() == one * 3
    assert f.closed


async def test_spooled_file_in_memory_behaves_as_the_stdlib_s() -> None:
    import tempfile

    async with aiofiles.tempfile.SpooledTemporaryFile(mode="w+", newline=None) as mine:
        with tempfile.SpooledTemporaryFile(mode="w+", newline=None) as theirs:
            for f in (mine, theirs):
                if f is mine:
                    await f.write("a\r\nb\nc")
                    await f.seek(0)
                    assert f.newlines is None
                    lines = [line async for line in f]
                    newlines = f.newlines
                else:
                    f.write("a\r\nb\nc")
                    f.seek(0)
                    expected, expected_newlines = list(f), f.newlines
    assert (lines, newlines) == (expected, expected_newlines)
    assert not mine.rolled  # max_size=0: never on its own
    rolled = await aiofiles.tempfile.SpooledTemporaryFile()
    await rolled.write(b"x")
    await rolled.rollover()
    await rolled.seek(0)
    assert await rolled.read() == b"x"
    await rolled.close()


async def test_the_same_open_awaited_twice_is_the_same_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    opening = aiofiles.open(path, "rb")
    f = await opening
    assert await opening is f
    assert await f.seekable() and not await f.writable() and not await f.isatty()
    raw = f.detach()  # aiofiles' detach gives the synchronous raw file
    try:
        assert raw.read() == b"x"
    finally:
        raw.close()
    with pytest.raises(ValueError):
        await f.close()


async def test_stdio_writes_to_the_current_sys_stdout(capsys):
    await aiofiles.stdout.write("out")
    await aiofiles.stderr.write("err")
    await aiofiles.stdout.flush()
    assert capsys.readouterr() == ("out", "err")


def test_threadpool_wrap_refuses_what_is_not_a_file():
    for thing in (1, [1], io.FileIO):
        with pytest.raises(TypeError):
            aiofiles.threadpool.wrap(thing)
