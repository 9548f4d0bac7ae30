"""An unchanged aiohttp app on spargio.net: sites, ``run_app``, a sendfile ``FileResponse``, shards.

* `TCPSite` / `UnixSite` are aiohttp's, listening through `spargio.net`
  (``aiohttp._web.AppRunner`` and everything above it are aiohttp's own):
  connections are io_uring transports where the loop has a ring, the loop's
  own elsewhere.
* `run_app` is ``aiohttp._web.run_app``'s common shape on those sites, on
  uvloop by default.
* `FileResponse` is aiohttp's, sending the file with `spargio.net.sendfile`
  (splice) on a spargio transport.  aiohttp's own falls back to reading chunks
  in the executor on uvloop, whose ``loop.sendfile`` is not implemented.
* `serve_on_shards` runs one copy of the app per shard of a runtime, each on
  its own SO_REUSEPORT listener.
"""

from __future__ import annotations

import asyncio as _asyncio
import signal as _signal
import typing as _typing

from aiohttp import web as _web
from aiohttp import web_fileresponse as _web_fileresponse

from ._api import create_server as _create_server
from ._api import create_unix_server as _create_unix_server
from ._sendfile import sendfile as _sendfile
from ._shards import serve_on_shards as _serve_on_shards
from ._transport import RingTransport as _RingTransport

if _typing.TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from aiohttp.abc import AbstractStreamWriter
    from aiohttp.web_request import BaseRequest

    from .._runtime import Runtime
    from ._shards import ShardServers

__all__ = ["FileResponse", "TCPSite", "UnixSite", "run_app", "serve_on_shards"]


class TCPSite(_web.TCPSite):
    """aiohttp's ``TCPSite``, listening through `spargio.net.create_server`."""

    async def start(self) -> None:
        await _web.BaseSite.start(self)  # registers the site with its runner
        handler = self._runner.server
        assert handler is not None
        self._server = await _create_server(
            handler, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
        )  # fmt: skip
        sockets: Any = getattr(self._server, "sockets", ())
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    @property
    def port(self) -> int:
        """The port it listens on (the one picked, for port 0)."""
        return int(self._bound_port or 0)


class UnixSite(_web.UnixSite):
    """aiohttp's ``UnixSite``, listening through `spargio.net.create_unix_server`."""

    async def start(self) -> None:
        await _web.BaseSite.start(self)
        handler = self._runner.server
        assert handler is not None
        self._server = await _create_unix_server(handler, self._path, ssl=self._ssl_context, backlog=self._backlog)


class FileResponse(_web.FileResponse):
    """aiohttp's ``FileResponse``; on a spargio transport the body goes by splice."""

    async def _sendfile(self, request: BaseRequest, fobj: Any, offset: int, count: int) -> AbstractStreamWriter:
        transport = request.transport
        if not isinstance(transport, _RingTransport) or _web_fileresponse.NOSENDFILE or self.compression:
            return await super()._sendfile(request, fobj, offset, count)
        writer = await _web.StreamResponse.prepare(self, request)  # the headers, queued on the transport
        assert writer is not None
        await _sendfile(transport, fobj, offset, count)  # after them: sendfile drains the queue first
        await _web.StreamResponse.write_eof(self)
        return writer


def run_app(
    app: _web.Application,
    *,
    host: str = "0.0.0.0",
    port: int = 8080,
    path: str | None = None,
    loop_factory: Callable[[], _asyncio.AbstractEventLoop] | None = None,
    shutdown_timeout: float = 60.0,
    print: Callable[..., None] | None = print,
    **runner_kwargs: Any,
) -> None:
    """Serve ``app`` on spargio.net until SIGINT or SIGTERM, then shut down as aiohttp does.

    ``loop_factory`` defaults to uvloop's.  Requests in flight at the signal
    get ``shutdown_timeout`` seconds; what is left then is cancelled.
    """
    if loop_factory is None:
        import uvloop

        loop_factory = uvloop.new_event_loop

    async def serve() -> None:
        runner = _web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout, **runner_kwargs)
        await runner.setup()
        site: _web.BaseSite = UnixSite(runner, path) if path is not None else TCPSite(runner, host, port)
        try:
            await site.start()
            if print is not None:
                print(f"======== Running on {site.name} (spargio.net) ========\n(Press CTRL+C to quit)")
            stop = _asyncio.Event()
            loop = _asyncio.get_running_loop()
            for signum in (_signal.SIGINT, _signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()

    with _asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve())


async def serve_on_shards(
    runtime: Runtime,
    make_app: Callable[[], _web.Application],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    shutdown_timeout: float = 60.0,
    **runner_kwargs: Any,
) -> ShardServers:
    """Run ``make_app()`` on every shard of ``runtime``, each behind its own SO_REUSEPORT `TCPSite`.

    The kernel spreads connections over the shards; a request is handled on
    the shard that accepted its connection.  ``make_app`` runs on each shard
    (an aiohttp app belongs to one loop).  Close with ``await servers.aclose()``.
    """

    async def start(bind_host: str, bind_port: int) -> tuple[TCPSite, Callable[[], Any]]:
        runner = _web.AppRunner(make_app(), handle_signals=False, shutdown_timeout=shutdown_timeout, **runner_kwargs)
        await runner.setup()
        site = TCPSite(runner, bind_host, bind_port, reuse_port=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return site, runner.cleanup

    return await _serve_on_shards(runtime, start, host, port)
