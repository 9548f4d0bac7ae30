"""spargio.boundary: move a hot path into the shard pool one call at a time.

::

    from spargio import boundary

    digest = await boundary.call(hashlib.sha256, blob, timeout=2.0)   # sync fn on a shard's thread
    page = await boundary.call(render, name)                          # coroutine fn on a shard's loop
    ticket = await boundary.submit(fetch, url)                        # a Ticket: await, wait(timeout=), cancel()
    ticket = boundary.submit_nowait(fetch, url)                       # or OverloadedError at once

    client, server = boundary.channel(64)                             # bounded request/response
    reply = await client.call(request, timeout=1.0)                   # on one side (any loop or thread)
    async for request in server:                                      # on the other
        request.respond(handle(request.payload))

Timeouts and cancellation cancel: work not started is dropped and never
runs; a running coroutine is cancelled on its shard; a running sync function
finishes and its result is discarded (and counted).  Every queue is bounded
and nothing polls.
"""

from __future__ import annotations

from .._ticket import Ticket
from ._call import call, submit, submit_nowait
from ._channel import ChannelStats, Client, Reply, Request, Server, channel

__all__ = [
    "ChannelStats",
    "Client",
    "Reply",
    "Request",
    "Server",
    "Ticket",
    "call",
    "channel",
    "submit",
    "submit_nowait",
]
