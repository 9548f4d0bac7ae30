"""Sockets on io_uring completions, behind asyncio's own shapes.

``spargio.net`` has asyncio's stream and protocol entry points —
`start_server`/`open_connection` (asyncio's ``StreamReader``/``StreamWriter``)
and `create_server`/`create_connection` with their AF_UNIX twins (a
``Protocol`` or ``BufferedProtocol`` factory, ``Transport`` s with asyncio's
semantics).  On an io_uring loop (the service loop's ring on asyncio or
uvloop, or a shard's) connections are `RingTransport` s: a multishot accept
per listener, a multishot recv into the loop's provided-buffer ring per
connection, one gathered send per loop iteration, connect and shutdown as
ops; `create_datagram_endpoint` on recvmsg/sendmsg ops; and `sendfile` by
splice (the bytes never reach Python).  On the thread
backend every call goes to the running loop's own method, same arguments,
same results; `uses_ring` says which path a loop takes.  `serve_on_shards`
listens from every shard of a runtime (SO_REUSEPORT), and
`spargio.net.aiohttp` serves an unchanged aiohttp app on all of this.
"""

from ._api import create_connection, create_server, create_unix_connection, create_unix_server, start_tls, uses_ring
from ._datagram import RingDatagramTransport, create_datagram_endpoint
from ._sendfile import sendfile
from ._server import Server
from ._shards import ShardServers, serve_on_shards
from ._streams import StreamWriter, open_connection, open_unix_connection, start_server, start_unix_server
from ._transport import RingTransport

__all__ = [
    "RingDatagramTransport",
    "RingTransport",
    "Server",
    "ShardServers",
    "StreamWriter",
    "create_connection",
    "create_datagram_endpoint",
    "create_server",
    "create_unix_connection",
    "create_unix_server",
    "open_connection",
    "open_unix_connection",
    "sendfile",
    "serve_on_shards",
    "start_server",
    "start_tls",
    "start_unix_server",
    "uses_ring",
]
