"""``import spargio.aiofiles as aiofiles`` (issue 14): aiofiles' names, on spargio's I/O, on both backends."""

from __future__ import annotations

import asyncio
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
