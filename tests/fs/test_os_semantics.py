"""Where spargio.fs used to part from os/io (issue 16, items 4-12, 14, 16): each case against the builtin."""

from __future__ import annotations

import asyncio
import os
import threading

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


async def test_link_follows_a_symlink_by_default_and_not_when_told(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"t")
    (tmp_path / "sym").symlink_to(target)
    await fs.link(tmp_path / "sym", tmp_path / "followed")
    assert not (tmp_path / "followed").is_symlink()
    assert os.stat(tmp_path / "followed").st_ino == os.stat(target).st_ino
    await fs.link(tmp_path / "sym", tmp_path / "itself", follow_symlinks=False)
    assert (tmp_path / "itself").is_symlink()
    assert os.lstat(tmp_path / "itself").st_ino == os.lstat(tmp_path / "sym").st_ino
    with pytest.raises(FileExistsError) as info:
        await fs.link(target, tmp_path / "itself")
    assert (info.value.filename, info.value.filename2) == (str(target), str(tmp_path / "itself"))


async def test_read_bytes_of_a_fifo_reads_what_its_writer_sent(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    keeper = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer open without waiting
    writer = os.open(fifo, os.O_WRONLY)
    os.write(writer, b"through the fifo")
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, os.close, writer)  # EOF once read_bytes holds its own end
    loop.call_later(0.05, os.close, keeper)
    assert await asyncio.wait_for(fs.read_bytes(fifo), 5) == b"through the fifo"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-32"])
async def test_a_bom_is_written_once_at_the_start_as_io_does(tmp_path, encoding):
    theirs, mine = tmp_path / "theirs", tmp_path / "mine"
    for path in (theirs, mine):
        path.write_bytes(b"")
    with open(theirs, "w", encoding=encoding) as ref:
        ref.write("one")
        ref.write("two")
    async with fs.open(mine, "w", encoding=encoding) as f:
        await f.write("one")
        await f.write("two")
    assert mine.read_bytes() == theirs.read_bytes()
    with open(theirs, "a", encoding=encoding) as ref:  # appending to a non-empty file: no BOM
        ref.write("three")
    async with fs.open(mine, "a", encoding=encoding) as f:
        await f.write("three")
    assert mine.read_bytes() == theirs.read_bytes()
    with open(theirs, "r+", encoding=encoding) as ref:  # back to 0: the BOM again
        ref.seek(0, os.SEEK_END)
        ref.seek(0)
        ref.write("zero")
    async with fs.open(mine, "r+", encoding=encoding) as f:
        await f.seek(0, os.SEEK_END)
        await f.seek(0)
        await f.write("zero")
    assert mine.read_bytes() == theirs.read_bytes()


async def test_text_files_check_before_they_read_or_encode(tmp_path):
    path = tmp_path / "text"
    path.write_text("first line\nsecond line\n")
    f = await fs.open(path, "r")
    assert await f.readline() == "first line\n"  # the rest is decoded and buffered
    await f.close()
    for call in (f.read, f.readline, lambda: f.read(3)):
        with pytest.raises(ValueError, match="closed file"):
            await call()
    with pytest.raises(ValueError, match="closed file"):
        await f.write("\udc80 not encodable")
    async with fs.open(path, "r", encoding="ascii") as f:
        with pytest.raises(OSError, match="not open for writing") as info:
            await f.write("\u00e9 not ascii")
        assert isinstance(info.value, __import__("io").UnsupportedOperation)
    async with fs.open(path, "w") as f:
        with pytest.raises(OSError, match="not open for reading"):
            await f.readline()


async def test_newline_empty_ends_lines_only_where_io_does(tmp_path):
    path = tmp_path / "ends"
    body = "a\fb\vc\x1cd\x1de\x1ef\x85g\u2028h\u2029i\rj\r\nk\nl" + "m" * 65534 + "\r\nn\r"
    path.write_bytes(body.encode("utf-8"))
    with open(path, encoding="utf-8", newline="") as ref:
        expected = ref.readlines()
    async with fs.open(path, encoding="utf-8", newline="") as f:
        lines = [line async for line in f]
    assert lines == expected
    assert len(expected) == 5  # \r, \r\n, \n, \r\n across a 64 KiB chunk, a final \r


async def _cancel_soon_after_it_starts(coro) -> tuple[bool, object]:
    """Run ``coro`` until its op is submitted, then cancel: (cancelled, result)."""
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    task.cancel()
    try:
        return False, await task
    except asyncio.CancelledError:
        return True, None


@pytest.mark.parametrize("how", ["read(n)", "readinto"])
async def test_a_cancelled_read_after_readline_keeps_the_read_ahead(tmp_path, how):
    path = tmp_path / "lines"
    body = b"head line\n" + bytes(range(256)) * 1024
    path.write_bytes(body)
    cancelled = 0
    for _ in range(20):
        async with fs.open(path, "rb") as f:
            assert await f.readline() == b"head line\n"  # reads ahead well past the line
            size = 200_000  # beyond the read-ahead: the read needs an op too
            buffer = bytearray(size)
            call = f.read(size) if how == "read(n)" else f.readinto(buffer)
            was_cancelled, result = await _cancel_soon_after_it_starts(call)
            if not was_cancelled:
                got = result if how == "read(n)" else bytes(buffer[:result])
                assert got == body[10 : 10 + size]
                continue
            cancelled += 1
            assert await f.tell() == 10, "a cancelled read moved the position"
            assert await f.read(size) == body[10 : 10 + size]
    assert cancelled, "no read was cancelled in flight: the test proved nothing"


async def test_a_cancelled_read_to_eof_after_readline_keeps_the_read_ahead(pipe):
    r, w = pipe
    os.write(w, b"line\nahead")
    async with fs.open(r, "rb", closefd=False) as f:
        assert await f.readline() == b"line\n"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await f.read()  # waits for EOF that does not come
        threading.Timer(0.05, os.close, (w,)).start()
        assert await asyncio.wait_for(f.read(), 5) == b"ahead"
