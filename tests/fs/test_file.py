"""AsyncFile: reads, writes, positions, lines, text, O_DIRECT (RELIABILITY rows 1-6)."""

from __future__ import annotations

import io
import os

import pytest

from spargio import fs


async def test_read_at_and_read_whole(data_file):
    path, content = data_file
    async with fs.open(path, "rb") as f:
        assert await f.read_at(10, 100) == content[10:110]
        assert await f.tell() == 0, "read_at must not move the position"
        assert await f.read(5) == content[:5]
        assert await f.tell() == 5
        assert await f.read() == content[5:]
        assert await f.read() == b""


async def test_open_is_awaitable_and_a_context_manager(data_file):
    path, content = data_file
    f = await fs.open(path, "rb")
    try:
        assert isinstance(f, fs.AsyncFile)
        assert await f.read(3) == content[:3]
    finally:
        await f.close()
    assert f.closed
    await f.close()  # closing twice is a no-op


async def test_read_crossing_eof_returns_what_exists(tmp_path):
    """Row 1: 1000-byte file, read 4096 at 900 and at 5000."""
    path = tmp_path / "small"
    content = os.urandom(1000)
    path.write_bytes(content)
    async with fs.open(path, "rb") as f:
        assert await f.read_at(900, 4096) == content[900:]
        assert await f.read_at(5000, 4096) == b""
        assert await f.read_at(1000, 1) == b""


@pytest.mark.parametrize("bad", [-1, -4096])
async def test_negative_offset_is_refused_before_submit(data_file, bad):
    """Row 2: io_uring would read -1 as 'current position'."""
    path, _ = data_file
    async with fs.open(path, "r+b") as f:
        await f.seek(7)
        with pytest.raises(ValueError):
            await f.read_at(bad, 10)
        with pytest.raises(ValueError):
            await f.write_at(bad, b"x")
        assert await f.tell() == 7


@pytest.mark.parametrize(
    ("offset", "size", "exc"),
    [
        (True, 10, TypeError),
        (0, False, TypeError),
        (1.5, 10, TypeError),
        ("0", 10, TypeError),
        (0, None, TypeError),
        (2**63, 10, OverflowError),
        (2**64 + 5, 10, OverflowError),
        (0, -1, ValueError),
    ],
)
async def test_bad_argument_types_and_ranges(data_file, offset, size, exc):
    """Row 3: TypeError/ValueError/OverflowError at the call, never silent truncation."""
    path, _ = data_file
    async with fs.open(path, "rb") as f:
        with pytest.raises(exc):
            await f.read_at(offset, size)


async def test_huge_length_is_read_in_chunks(tmp_path, monkeypatch):
    """Row 3: a read larger than one kernel transfer is completed chunk by chunk."""
    from spargio import _limits

    monkeypatch.setattr(_limits, "MAX_CHUNK", 4096)
    content = os.urandom(4096 * 5 + 123)
    path = tmp_path / "f"
    path.write_bytes(content)
    async with fs.open(path, "r+b") as f:
        assert await f.read_at(0, len(content) + 10_000) == content
        assert await f.read_at(100, 4096 * 3) == content[100 : 100 + 4096 * 3]
        new = os.urandom(4096 * 3 + 7)
        assert await f.write_at(10, new) == len(new)
    assert path.read_bytes() == content[:10] + new + content[10 + len(new) :]


@pytest.mark.slow
async def test_read_over_2gib_from_sparse_file(tmp_path):
    """Row 3 for real: 2 GiB + 10 bytes from a sparse file, no truncation to 32 bits."""
    path = tmp_path / "sparse"
    size = 2**31 + 10
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(size - 5)
        f.write(b"tail!")
    async with fs.open(path, "rb") as f:
        data = await f.read_at(0, size + 100)
    assert len(data) == size
    assert data[-5:] == b"tail!"
    assert data[:4096] == bytes(4096)


async def test_zero_length_read_and_write(data_file):
    """Row 4."""
    path, content = data_file
    async with fs.open(path, "r+b") as f:
        assert await f.read_at(0, 0) == b""
        assert await f.read(0) == b""
        assert await f.write(b"") == 0
        assert await f.write_at(5, b"") == 0
    with open(path, "rb") as g:
        assert g.read() == content


async def test_closed_and_invalid_fds_raise_ebadf_and_ring_survives(data_file):
    """Row 5: fd -1 and a closed fd give OSError(EBADF); a normal op still works."""
    import errno

    path, content = data_file
    assert await fs.exists(path)  # the loop's ring exists before the fd numbers are freed
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    for fd in (-1, r):
        with pytest.raises(OSError) as info:
            await fs.read_many([(fd, 0, 10)])
        assert info.value.errno == errno.EBADF
    async with fs.open(path, "rb") as f:
        assert await f.read_at(0, 10) == content[:10]
    f = await fs.open(path, "rb")
    await f.close()
    with pytest.raises(ValueError, match="closed file"):
        await f.read(1)


async def test_readinto_refuses_read_only_buffers(data_file):
    """Row 6: readinto(bytes) fails before anything is submitted."""
    path, content = data_file
    async with fs.open(path, "rb") as f:
        with pytest.raises(TypeError):
            await f.readinto(b"immutable")
        with pytest.raises(TypeError):
            await f.readinto(memoryview(b"immutable"))
        buf = bytearray(100)
        assert await f.readinto(buf) == 100
        assert bytes(buf) == content[:100]
        view = memoryview(bytearray(50))
        assert await f.readinto_at(1000, view) == 50
        assert bytes(view) == content[1000:1050]


async def test_buffer_cannot_be_resized_while_read_in_flight():
    """Row 6: resizing a bytearray that the kernel is filling raises BufferError."""
    import asyncio

    r, w = os.pipe()
    try:
        f = await fs.open(r, "rb", closefd=False)
        buf = bytearray(16)
        task = asyncio.ensure_future(f.readinto1(buf))  # readinto fills the buffer (as io), readinto1 is one read
        for _ in range(3):
            await asyncio.sleep(0)
        with pytest.raises(BufferError):
            buf.extend(b"more")
        os.write(w, b"hello")
        assert await task == 5
        assert bytes(buf[:5]) == b"hello"
        buf.extend(b"ok now")  # released after completion
    finally:
        os.close(r)
        os.close(w)


async def test_write_modes_positions_and_append(tmp_path):
    path = tmp_path / "w"
    async with fs.open(path, "wb") as f:
        assert await f.write(b"hello ") == 6
        assert await f.write(bytearray(b"world")) == 5
        assert await f.tell() == 11
        await f.seek(0)
        await f.write(b"J")
        await f.seek(-1, os.SEEK_END)
        await f.write(b"D")
        await f.fsync()
        await f.fdatasync()
    assert path.read_bytes() == b"Jello worlD"
    async with fs.open(path, "ab") as f:
        await f.write(b"!!")
        assert await f.tell() == 13
    assert path.read_bytes() == b"Jello worlD!!"
    with pytest.raises(FileExistsError):
        await fs.open(path, "xb")
    async with fs.open(path, "rb") as f:
        with pytest.raises(io.UnsupportedOperation):
            await f.write(b"x")
    with pytest.raises(TypeError):
        async with fs.open(path, "wb") as f:
            await f.write("text is not bytes")


async def test_truncate_stat_and_allocate(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(b"0123456789")
    async with fs.open(path, "r+b") as f:
        assert await f.truncate(4) == 4
        assert (await f.stat()).st_size == 4
        await f.seek(2)
        assert await f.truncate() == 2
        await f.allocate(0, 8192, keep_size=False)
        assert (await f.stat()).st_size == 8192
    assert path.read_bytes()[:2] == b"01"
    st = await fs.stat(path)
    ref = os.stat(path)
    assert (st.st_size, st.st_ino, st.st_mode, st.st_mtime_ns) == (
        ref.st_size,
        ref.st_ino,
        ref.st_mode,
        ref.st_mtime_ns,
    )


async def test_lines_binary(tmp_path):
    path = tmp_path / "lines"
    lines = [b"first\n", b"\n", b"third line\n", b"no newline at end"]
    path.write_bytes(b"".join(lines))
    async with fs.open(path, "rb") as f:
        assert [line async for line in f] == lines
    async with fs.open(path, "rb") as f:
        assert await f.readline() == lines[0]
        assert await f.read(3) == b"\nth"
        assert await f.tell() == len(lines[0]) + 3
        assert await f.readlines() == [b"ird line\n", lines[3]]


async def test_long_lines_span_many_chunks(tmp_path):
    path = tmp_path / "long"
    long_line = b"x" * 200_000 + b"\n"
    path.write_bytes(long_line * 3)
    async with fs.open(path, "rb") as f:
        assert [line async for line in f] == [long_line] * 3


async def test_text_mode(tmp_path):
    path = tmp_path / "text"
    async with fs.open(path, "w", encoding="utf-8") as f:
        assert await f.write("héllo\nwörld\n") == 12
    async with fs.open(path) as f:
        assert isinstance(f, fs.AsyncTextFile)
        assert [line async for line in f] == ["héllo\n", "wörld\n"]
    path.write_bytes(b"a\r\nb\rc\n")
    async with fs.open(path) as f:
        assert await f.read() == "a\nb\nc\n"
    async with fs.open(path, newline="") as f:
        assert await f.readline() == "a\r\n"
    async with fs.open(path, encoding="utf-8") as f:
        assert await f.read(1) == "a"
        cookie = await f.tell()  # io's cookie, inside the decoded chunk
        rest = await f.read()
        assert await f.seek(cookie) == cookie
        assert await f.read() == rest
    with pytest.raises(ValueError):
        await fs.open(path, "rb", encoding="utf-8")
    with pytest.raises(ValueError):
        await fs.open(path, "rw")


async def test_streams_use_the_kernel_position():
    r, w = os.pipe()
    reader = await fs.open(r, "rb")
    writer = await fs.open(w, "wb")
    try:
        assert not reader.seekable()
        await writer.write(b"line one\nline two\n")
        await writer.close()
        assert [line async for line in reader] == [b"line one\n", b"line two\n"]
        with pytest.raises(io.UnsupportedOperation):
            await reader.seek(0)
        with pytest.raises(io.UnsupportedOperation):
            await reader.read_at(0, 1)
    finally:
        await reader.close()


async def test_o_direct_with_aligned_buffers(tmp_path):
    """O_DIRECT reads and writes through aligned memory (when the filesystem allows it)."""
    path = tmp_path / "direct"
    content = os.urandom(4096 * 4)
    path.write_bytes(content)
    try:
        f = await fs.open(path, "r+b", flags=os.O_DIRECT)
    except OSError as exc:
        pytest.skip(f"this filesystem refuses O_DIRECT: {exc}")
    async with f:
        assert f.direct
        assert await f.read_at(4096, 8192) == content[4096 : 4096 * 3]
        buf = fs.aligned_buffer(4096)
        assert await f.readinto_at(0, buf) == 4096
        assert bytes(buf) == content[:4096]
        block = os.urandom(4096)
        assert await f.write_at(8192, block) == 4096
        await f.fsync()
    assert path.read_bytes() == content[:8192] + block + content[12288:]
