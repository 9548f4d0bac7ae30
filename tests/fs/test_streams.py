"""Pipes, sockets and ttys: ops that wait on the other end (RELIABILITY rows 7 and 9).

On the thread backend a stream op waits for readiness on the loop and never
in a pool thread (`spargio._readiness`); on io_uring the kernel polls.  Either
way a stuck pipe must not hold up file I/O, several ops may wait on one fd,
and cancelling them leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import pty
import socket

import pytest

from spargio import fs
from spargio._backend import current_io
from spargio.testing import fill_pipe, settle


async def test_file_io_goes_on_while_many_pipe_ops_are_stuck(data_file, pipe):
    """64 writes into a full pipe and 64 reads from an empty one (more than the pool has threads)."""
    path, content = data_file
    io = current_io()
    _, full_w = pipe
    fill_pipe(full_w)  # still a blocking fd: spargio must not need O_NONBLOCK to avoid blocking
    empty_r, empty_w = os.pipe()
    stuck = [asyncio.ensure_future(io.write(full_w, b"y" * 512, -1)) for _ in range(64)]
    stuck += [asyncio.ensure_future(io.read(empty_r, 16, -1)) for _ in range(64)]
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert io.in_flight >= 128, "every stuck op counts as in flight"
        async with asyncio.timeout(10):
            for i in range(20):
                assert await fs.read_bytes(path) == content, i
        assert not any(t.done() for t in stuck)
    finally:
        for t in stuck:
            t.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        await settle()
        os.close(empty_r)
        os.close(empty_w)
    assert io.in_flight == 0


async def test_readers_sharing_one_pipe_each_get_their_bytes(pipe):
    """asyncio and uvloop keep one reader callback per fd: 20 readers of one pipe must all wake."""
    r, w = pipe
    io = current_io()
    readers = [asyncio.ensure_future(io.read(r, 1, -1)) for _ in range(20)]
    await asyncio.sleep(0)
    sent = bytes(range(65, 85))
    async with asyncio.timeout(10):
        for byte in sent:
            os.write(w, bytes([byte]))
            while sum(t.done() for t in readers) < sent.index(byte) + 1:
                await asyncio.sleep(0)
        got = await asyncio.gather(*readers)
    assert sorted(got) == sorted(bytes([b]) for b in sent)
    await settle()
    assert io.in_flight == 0


async def test_cancelling_some_waiters_of_one_pipe_leaves_the_others_waiting(pipe):
    r, w = pipe
    io = current_io()
    readers = [asyncio.ensure_future(io.read(r, 4, -1)) for _ in range(6)]
    await asyncio.sleep(0)
    for t in readers[:5]:
        t.cancel()
    await asyncio.gather(*readers[:5], return_exceptions=True)
    os.write(w, b"last")
    async with asyncio.timeout(10):
        assert await readers[5] == b"last"
    await settle()


async def test_closing_a_pipe_ends_the_read_waiting_on_it(backend):
    """Threads: the waiting read fails with EBADF at once.  io_uring: the kernel holds the
    file for the read, so it ends at EOF when the writer goes."""
    r, w = os.pipe()
    reader = await fs.open(r, "rb", buffering=0)
    pending = asyncio.ensure_future(reader.read(8))
    await asyncio.sleep(0.01)
    await reader.close()
    os.close(w)
    async with asyncio.timeout(10):
        if backend == "threads":
            with pytest.raises(OSError, match="closed while an op waited"):
                await pending
        else:
            assert await pending == b""
    await settle()


async def test_a_socket_pair_carries_a_mebibyte_each_way():
    a, b = socket.socketpair()
    payload_ab, payload_ba = os.urandom(1 << 20), os.urandom(1 << 20)
    ends = [await fs.open(s.fileno(), "r+b", buffering=0, closefd=False) for s in (a, b)]

    async def pump(src: fs.AsyncFile, dst: fs.AsyncFile, payload: bytes) -> bytes:
        async def drain() -> bytes:
            got = bytearray()
            while len(got) < len(payload):
                got += await dst.read(65536)
            return bytes(got)

        reading = asyncio.ensure_future(drain())
        await src.write(payload)
        return await reading

    try:
        async with asyncio.timeout(30):
            ab, ba = await asyncio.gather(pump(ends[0], ends[1], payload_ab), pump(ends[1], ends[0], payload_ba))
        assert ab == payload_ab and ba == payload_ba
    finally:
        for end in ends:
            await end.close()
        a.close()
        b.close()


async def test_a_tty_is_read_though_it_cannot_be_read_without_waiting():
    """ttys refuse RWF_NOWAIT: the thread backend reads them on the pool once they are readable."""
    master, slave = pty.openpty()
    try:
        io = current_io()
        reading = asyncio.ensure_future(io.read(slave, 64, -1))
        await asyncio.sleep(0.01)
        os.write(master, b"hello\n")
        async with asyncio.timeout(10):
            assert await reading == b"hello\n"
    finally:
        os.close(master)
        os.close(slave)


async def test_read_to_eof_from_a_pipe_waits_for_the_writer_to_finish():
    """A short read from a stream is not EOF: read() goes on until the writer closes."""
    r, w = os.pipe()
    reader = await fs.open(r, "rb")
    try:
        reading = asyncio.ensure_future(reader.read())
        sent = b""
        for i in range(5):
            await asyncio.sleep(0.01)
            chunk = bytes([65 + i]) * (1000 * (i + 1))
            os.write(w, chunk)
            sent += chunk
        os.close(w)
        async with asyncio.timeout(10):
            assert await reading == sent
    finally:
        await reader.close()


async def test_read_all_of_a_packet_pipe_through_aligned_memory():
    """O_DIRECT pipes (packet mode) read to EOF at the kernel's position, never at an offset."""
    r, w = os.pipe2(os.O_DIRECT)
    try:
        sent = os.urandom(5000) + os.urandom(3000)
        os.write(w, sent[:5000])
        os.write(w, sent[5000:])
        os.close(w)
        async with asyncio.timeout(10):
            assert await current_io().read_all(r, -1, True) == sent
    finally:
        os.close(r)
