"""asyncio's stream helpers over `spargio.net` transports.

The reader is asyncio's ``StreamReader`` and the writer an
``asyncio.StreamWriter`` (backpressure through ``drain``, ``wait_closed``
all as in asyncio); only the transport underneath differs.  The writer's
class is `StreamWriter`, asyncio's with one change: ``start_tls`` goes
through `spargio.net.start_tls`, since uvloop's ``loop.start_tls`` refuses
transports that are not its own.  A server's writers are made by asyncio's
``StreamReaderProtocol``; the callback wrapper gives them this class (it adds
no state, only the method).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._api import create_connection, create_server, create_unix_connection, create_unix_server, start_tls

if TYPE_CHECKING:
    import os
    import ssl as _ssl

__all__ = ["StreamWriter", "open_connection", "open_unix_connection", "start_server", "start_unix_server"]

_LIMIT = 2**16  # asyncio.streams._DEFAULT_LIMIT

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


class StreamWriter(asyncio.StreamWriter):
    """asyncio's ``StreamWriter`` whose ``start_tls`` also works on uvloop over a spargio transport."""

    async def start_tls(
        self,
        sslcontext: _ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        """Upgrade the connection to TLS; queued writes are drained first (as asyncio)."""
        state: Any = self  # asyncio's private attributes, as its own start_tls uses them
        protocol = state._protocol
        server_side = protocol._client_connected_cb is not None
        await self.drain()
        state._transport = await start_tls(
            state._transport, protocol, sslcontext, server_side=server_side,
            server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip
        if hasattr(protocol, "_replace_transport"):  # asyncio 3.13+ tells the protocol of the new transport
            protocol._replace_transport(state._transport)
        else:  # 3.11 and 3.12 hand it the writer
            protocol._replace_writer(self)


def _with_our_writer(client_connected_cb: ClientConnected) -> ClientConnected:
    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Awaitable[None] | None:
        writer.__class__ = StreamWriter
        return client_connected_cb(reader, writer)

    return connected


def _server_protocols(client_connected_cb: ClientConnected, limit: int) -> Any:
    """A factory of asyncio's stream protocol for a server: a reader per connection, our writer class."""
    loop = asyncio.get_running_loop()
    connected = _with_our_writer(client_connected_cb)

    def factory() -> asyncio.StreamReaderProtocol:
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=limit, loop=loop), connected, loop=loop)

    return factory


async def _stream_pair(connect: Any, address: tuple[Any, ...], limit: int, kwds: Any) -> Any:
    """Connect with ``connect(protocol_factory, *address, **kwds)``; asyncio's reader and our writer."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await connect(lambda: protocol, *address, **kwds)
    return reader, StreamWriter(transport, protocol, reader, loop)


async def open_connection(
    host: str | None = None, port: int | None = None, *, limit: int = _LIMIT, **kwds: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` on a spargio.net transport; ``kwds`` go to `create_connection`."""
    pair: tuple[asyncio.StreamReader, asyncio.StreamWriter] = await _stream_pair(
        create_connection, (host, port), limit, kwds
    )
    return pair


async def start_server(
    client_connected_cb: ClientConnected,
    host: str | None = None,
    port: int | None = None,
    *,
    limit: int = _LIMIT,
    **kwds: Any,
) -> asyncio.AbstractServer:
    """``asyncio.start_server`` on spargio.net; ``kwds`` go to `create_server`."""
    return await create_server(_server_protocols(client_connected_cb, limit), host, port, **kwds)


async def open_unix_connection(
    path: str | bytes | os.PathLike[str] | None = None, *, limit: int = _LIMIT, **kwds: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_unix_connection`` on a spargio.net transport."""
    pair: tuple[asyncio.StreamReader, asyncio.StreamWriter] = await _stream_pair(
        create_unix_connection, (path,), limit, kwds
    )
    return pair


async def start_unix_server(
    client_connected_cb: ClientConnected,
    path: str | bytes | os.PathLike[str] | None = None,
    *,
    limit: int = _LIMIT,
    **kwds: Any,
) -> asyncio.AbstractServer:
    """``asyncio.start_unix_server`` on spargio.net; ``kwds`` go to `create_unix_server`."""
    return await create_unix_server(_server_protocols(client_connected_cb, limit), path, **kwds)
