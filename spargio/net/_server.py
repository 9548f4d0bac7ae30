"""A listening server whose accepts are one multishot IORING_OP_ACCEPT per socket.

Theory of operation
-------------------
`Server` is an ``asyncio.AbstractServer``.  While it serves, each listening
socket has one multishot accept armed: the kernel posts a CQE per incoming
connection carrying its fd (already non-blocking and close-on-exec), and the
server wraps it in a `RingTransport` with a fresh protocol.  An accept that
ends (the kernel drops a multishot when its CQ overflows, say) is armed again;
EMFILE/ENFILE/ENOBUFS/ENOMEM stop accepting for a second, as asyncio does, so
a descriptor shortage does not spin.  ``close`` cancels the accepts and
closes the listening sockets; a connection fd whose CQE arrives after that is
closed unused.  ``wait_closed`` waits until the server is closed and its last
connection has gone (asyncio 3.12's semantics).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from asyncio import trsock
from functools import partial
from typing import TYPE_CHECKING

from ..native._abi import CQE_F_MORE
from ._transport import RingTransport, release_socket

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._loop_ring import LoopRing

__all__ = ["Server"]

logger = logging.getLogger("spargio.net")

_ACCEPT_BACKOFF = 1.0  # seconds without accepting after EMFILE and friends (asyncio's ACCEPT_RETRY_DELAY)
_SHORTAGE = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Server(asyncio.AbstractServer):
    """Listening sockets whose connections become `RingTransport` s on this loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        io: LoopRing,
        sockets: Iterable[socket.socket],
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        backlog: int,
        *,
        wrap: Callable[[asyncio.BaseProtocol], asyncio.BaseProtocol] | None = None,
        unlink_on_close: str | bytes | None = None,
    ) -> None:
        self._loop = loop
        self._io = io
        self._sockets: list[socket.socket] | None = list(sockets)
        self._protocol_factory = protocol_factory
        self._wrap = wrap  # TLS: wraps each app protocol in an SSLProtocol
        self._backlog = backlog
        self._serving = False
        self._serving_forever: asyncio.Future[None] | None = None
        self._accepts: dict[int, int] = {}  # listening fd -> armed accept's user_data
        self._clients: set[RingTransport] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._unlink_on_close = unlink_on_close
        self._listening = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    # -- connections ------------------------------------------------------

    def _attach(self, transport: RingTransport) -> None:
        self._clients.add(transport)

    def _detach(self, transport: RingTransport) -> None:
        self._clients.discard(transport)
        if not self._clients and self._sockets is None:
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- accepting --------------------------------------------------------

    def _arm_accept(self, listener: socket.socket) -> None:
        if not self._serving or self._io.closed or self._sockets is None:
            return
        fd = listener.fileno()
        entry = self._io.completion(partial(self._on_accept, listener))
        self._accepts[fd] = self._io.ring.prep_accept(fd, True, entry)
        self._io._request_flush()

    def _on_accept(self, listener: socket.socket, res: int, flags: int) -> None:
        more = flags & CQE_F_MORE
        if not more:
            self._accepts.pop(listener.fileno(), None)
        if res >= 0:
            if not self._serving or self._io.closed:
                os.close(res)  # arrived after close() (or with the loop's ring closing): nobody will serve it
            else:
                self._accepted(listener, res)
        elif res == -errno.ECANCELED:
            return
        elif -res in _SHORTAGE:
            logger.warning("spargio.net: accept failed (%s); accepting again in %.0f s", os.strerror(-res), 1.0)
            if listener.fileno() in self._accepts:
                self._io._cancel(self._accepts.pop(listener.fileno()))
            self._loop.call_later(_ACCEPT_BACKOFF, self._arm_accept, listener)
            return
        # Other errors (ECONNABORTED: the peer gave up in the backlog) concern one connection only.
        if not more and listener.fileno() not in self._accepts:
            self._arm_accept(listener)

    def _accepted(self, listener: socket.socket, fd: int) -> None:
        try:
            sock = socket.socket(listener.family, socket.SOCK_STREAM, listener.proto, fileno=fd)
        except OSError:
            os.close(fd)
            return
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        try:
            protocol = self._protocol_factory()
            if self._wrap is not None:
                protocol = self._wrap(protocol)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            sock.close()
            self._loop.call_exception_handler(
                {"message": "Error in protocol factory while accepting a connection", "exception": exc}
            )
            return
        RingTransport(self._loop, self._io, sock, protocol, server=self)

    # -- asyncio.AbstractServer ---------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[trsock.TransportSocket, ...]:
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(s) for s in self._sockets)

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)  # as asyncio: let the loop run once so the accepts are armed

    def _start_serving(self) -> None:
        if self._serving or self._sockets is None:
            return
        self._serving = True
        for sock in self._sockets:
            if not self._listening:
                sock.listen(self._backlog)
            self._arm_accept(sock)
        self._listening = True

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    def close(self) -> None:
        """Stop accepting and close the listening sockets; open connections go on."""
        sockets, self._sockets = self._sockets, None
        if sockets is None:
            return
        self._serving = False
        for ud in self._accepts.values():
            self._io._cancel(ud)
        self._accepts.clear()
        for sock in sockets:
            release_socket(self._io, sock)  # behind an accept armed but not yet submitted
        if self._unlink_on_close is not None:
            try:
                os.unlink(self._unlink_on_close)
            except OSError:
                pass
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
            self._serving_forever = None
        if not self._clients:
            self._wake_waiters()

    def close_clients(self) -> None:
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self) -> None:
        for transport in list(self._clients):
            transport.abort()

    async def wait_closed(self) -> None:
        """Wait until `close` has been called and the last connection has gone."""
        if self._sockets is None and not self._clients:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter
