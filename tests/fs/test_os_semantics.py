"""Where spargio.fs used to part from os/io (issue 16, items 4-7, 10, 11): each case against the builtin."""

from __future__ import annotations

import os

import pytest

from spargio import fs


async def test_opening_a_directory_raises_as_the_builtin_does(tmp_path):
    with pytest.raises(IsADirectoryError):
        open(tmp_path, "rb")  # noqa: SIM115 - the reference behaviour
    with pytest.raises(IsADirectoryError) as info:
        await fs.open(tmp_path, "rb")
    assert info.value.filename == tmp_path


async def test_copyfile_of_a_directory_leaves_the_destination_untouched(tmp_path):
    dst = tmp_path / "dst"
    dst.write_bytes(b"precious")
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        await fs.copyfile(tmp_path / "dir", dst)
    assert dst.read_bytes() == b"precious"


async def test_isdir_and_isfile_of_a_symlink_loop_are_false(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    assert (os.path.isdir(loop), os.path.isfile(loop)) == (False, False)
    assert (await fs.isdir(loop), await fs.isfile(loop)) == (False, False)
    with pytest.raises(OSError) as theirs:
        os.makedirs(loop / "a", exist_ok=True)
    with pytest.raises(OSError) as mine:
        await fs.makedirs(loop / "a", exist_ok=True)
    assert (type(mine.value), mine.value.errno) == (type(theirs.value), theirs.value.errno)


async def test_makedirs_of_a_path_ending_in_dot(tmp_path):
    os.makedirs(tmp_path / "theirs" / "dir" / ".")
    await fs.makedirs(tmp_path / "mine" / "dir" / ".")
    assert (tmp_path / "mine" / "dir").is_dir()


async def test_empty_append_write_keeps_the_position(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"abcdef")
    with open(path, "ab") as ref:
        ref.write(b"")
        expected = ref.tell()
    async with fs.open(path, "ab") as f:
        assert await f.write(b"") == 0
        assert await f.tell() == expected == 6
        await f.write(b"gh")
        assert await f.tell() == 8


@pytest.mark.parametrize("mode", ["rb", "r"])
async def test_readlines_hint_that_lines_reach_exactly(tmp_path, mode):
    path = tmp_path / "lines"
    path.write_bytes(b"aa\nbb\ncc\n")
    for hint in range(-1, 11):
        with open(path, mode) as ref:
            expected = ref.readlines(hint)
        async with fs.open(path, mode) as f:
            assert await f.readlines(hint) == expected, hint
