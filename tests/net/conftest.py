"""spargio.net tests run on the service loop and on a shard, on both backends, on asyncio and uvloop.

``on(fn, *args)`` runs an async test body where the case says: inline on the
test's loop (asyncio or uvloop, through the loop ring or the loop's own
transports), or on a shard of a one-shard runtime (its ring loop, or an epoll
loop on the thread backend).  Servers and clients of a body share its loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import spargio

Runner = Callable[..., Awaitable[Any]]


@pytest.fixture(params=["loop", "shard"])
async def on(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[Runner]:
    if request.param == "loop":

        async def inline(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
            return await fn(*args)

        yield inline
        return
    async with spargio.Runtime(shards=1, backend=backend) as rt:

        async def on_shard(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
            return await rt.spawn(fn, *args)

        yield on_shard


@pytest.fixture
def ring_expected(backend: str) -> bool:
    """Whether spargio.net should put sockets on io_uring for this case."""
    return backend == "io_uring"
