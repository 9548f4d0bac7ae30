"""Serving from shards: one SO_REUSEPORT listener per shard, each connection handled where it landed.

Every shard of a `spargio.Runtime` opens its own listening socket on the
same address with SO_REUSEPORT, so the kernel spreads incoming connections
over the shards by a hash of the peer's address (a peer's connections keep
landing on the same shard: sticky by peer, with no acceptor thread in
between).  Each shard accepts on its own ring, and the protocol factory, the
protocols and their handlers run on that shard's loop.  The service loop only
starts and stops the listeners.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .._steal import Pinned
from ._api import create_server

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from .._runtime import Runtime

__all__ = ["ShardServers", "serve_on_shards"]


class ShardServers:
    """The listeners `serve_on_shards` started, one per shard; close them with `aclose`."""

    def __init__(
        self, runtime: Runtime, servers: list[Any], port: int, closers: list[Callable[[], Coroutine[Any, Any, None]]]
    ) -> None:
        self.runtime = runtime
        self.servers = servers
        self.port = port  #: the port every shard listens on
        self._closers = closers

    async def aclose(self) -> None:
        """Stop every shard's listener (each on its own shard) and wait for its connections to end."""
        closers, self._closers = self._closers, []
        await asyncio.gather(*(self.runtime.spawn(closer, placement=Pinned(i)) for i, closer in enumerate(closers)))

    async def __aenter__(self) -> ShardServers:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def serve_on_shards(
    runtime: Runtime,
    start: Callable[[str, int], Coroutine[Any, Any, tuple[Any, Callable[[], Coroutine[Any, Any, None]]]]] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    protocol_factory: Callable[[], asyncio.BaseProtocol] | None = None,
    backlog: int = 100,
) -> ShardServers:
    """Listen on ``host:port`` from every shard of ``runtime`` (SO_REUSEPORT; 0 picks a free port).

    Either ``protocol_factory`` (a `spargio.net.create_server` per shard) or
    ``start(host, port)``: a coroutine function run on each shard that starts
    its server and returns ``(server, close)``, ``close`` a coroutine function
    that stops it (`spargio.net.aiohttp.serve_on_shards` passes one that runs an
    aiohttp app).  A shard whose start fails stops the ones already started.
    """
    if (start is None) == (protocol_factory is None):
        raise TypeError("give either start or protocol_factory")
    if start is None:
        assert protocol_factory is not None
        factory = protocol_factory

        async def start_listener(bind_host: str, bind_port: int) -> tuple[Any, Callable[[], Coroutine[Any, Any, None]]]:
            server = await create_server(factory, bind_host, bind_port, reuse_port=True, backlog=backlog)

            async def close() -> None:
                server.close()
                await server.wait_closed()

            return server, close

        start = start_listener
    servers: list[Any] = []
    closers: list[Callable[[], Coroutine[Any, Any, None]]] = []
    try:
        for i in range(runtime.shards):
            started: tuple[Any, Callable[[], Coroutine[Any, Any, None]]] = await runtime.spawn(
                start, host, port, placement=Pinned(i)
            )
            server, close = started
            servers.append(server)
            closers.append(close)
            if port == 0:  # the first shard picked a port: the others join it
                port = _port_of(server)
    except BaseException:
        await ShardServers(runtime, servers, port, closers).aclose()
        raise
    return ShardServers(runtime, servers, port, closers)


def _port_of(server: Any) -> int:
    sockets = getattr(server, "sockets", None)
    if sockets:
        return int(sockets[0].getsockname()[1])
    bound = getattr(server, "port", None)
    if isinstance(bound, int):
        return bound
    raise RuntimeError(f"cannot tell which port {server!r} listens on")
