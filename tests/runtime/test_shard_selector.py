"""The shard loop's selector behaves as the stock epoll loop does at its edges (issue 16, items 1-2)."""

from __future__ import annotations

import asyncio
import errno
import os
import selectors
import socket
import threading

import pytest

import spargio
from spargio import Pinned
from spargio._loop import RingSelector


async def test_writes_drain_to_a_peer_that_shut_down_its_write_side(rt: spargio.Runtime) -> None:
    """RELIABILITY row 31: the peer did shutdown(SHUT_WR) and still reads; 16 MiB must get through."""
    size = 16 << 20
    ours, theirs = socket.socketpair()
    theirs.shutdown(socket.SHUT_WR)  # our side now sees RDHUP on every poll
    received = bytearray()

    def read_slowly() -> None:
        while chunk := theirs.recv(1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=read_slowly)
    reader.start()

    async def send_all() -> None:
        ours.setblocking(False)
        await asyncio.get_running_loop().sock_sendall(ours, b"x" * size)
        ours.shutdown(socket.SHUT_WR)

    try:
        await asyncio.wait_for(rt.call(send_all, placement=Pinned(0)), 20)
    finally:
        ours.close()
        reader.join(20)
        theirs.close()
    assert len(received) == size


async def test_registering_what_epoll_refuses_raises_as_epoll_does(rt: spargio.Runtime, tmp_path) -> None:
    path = tmp_path / "regular"
    path.write_bytes(b"data")

    async def refusals() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(PermissionError) as regular:
                loop.add_reader(fd, lambda: None)
        finally:
            os.close(fd)
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        with pytest.raises(OSError) as closed:
            loop.add_reader(r, lambda: None)
        return regular.value.errno, closed.value.errno

    assert await rt.call(refusals) == (errno.EPERM, errno.EBADF)


@pytest.mark.parametrize(
    "selector_class", [selectors.EpollSelector, pytest.param(RingSelector, marks=pytest.mark.io_uring)]
)
def test_unregistering_a_closed_socket_object_finds_it_by_identity(selector_class: type) -> None:
    """As the selectors module does: a closed socket's fileno() is -1, so it is looked up by object."""
    selector = selector_class()
    a, b = socket.socketpair()
    try:
        fd = a.fileno()
        selector.register(a, selectors.EVENT_READ)
        a.close()
        assert selector.get_key(a).fd == fd
        assert selector.unregister(a).fd == fd
        with pytest.raises(ValueError):
            selector.unregister(a)
    finally:
        selector.close()
        b.close()
