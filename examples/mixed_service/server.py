"""Serving the app to clients that may be hostile: the listener and its guards.

aiohttp's `AppRunner` and `TCPSite` serve an app as it is.  A service facing
the open network needs a few things more, and they live here, outside the
app's routes:

* **A cap on open connections** (``max_connections``; by default half the
  descriptors the process may still open, so a flood of idle connections
  cannot take the descriptors the routes' file work needs).  A connection over
  the cap gets a JSON 503 with ``Retry-After`` and is closed.
* **An idle timeout** (``idle_timeout``): a connection with no request under
  way — waiting for its first request's headers, or between keep-alive
  requests — is closed after that many seconds, however slowly it trickles
  bytes (aiohttp's keep-alive timer closes only connections waiting for a
  whole request, and it is started at accept).  Slow bodies and slow readers
  are the routes' own timeouts (``io_timeout`` in `make_app`).
* **No inflating on the loop**: request bodies are not decompressed
  (``auto_decompress=False``); the app refuses an encoded body with 415.
* **Errors found by the HTTP parser** (malformed requests) are JSON, like
  the app's own, and each is logged as one line, rate limited (`RejectLog`),
  instead of a traceback per request.
* **A bounded stop**: `Service.stop` closes the listener, gives requests in
  flight ``shutdown_timeout`` seconds, then cuts what is left, and logs what
  it did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, cast

from aiohttp import web

import spargio.net

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

log: Final = logging.getLogger("mixed_service")

DEFAULT_IDLE_TIMEOUT: Final = 10.0
DEFAULT_SHUTDOWN_TIMEOUT: Final = 2.0
DESCRIPTOR_RESERVE: Final = 128  # for the routes' files, the loop, the pool, logging


def default_max_connections() -> int:
    """Half the descriptors left after a reserve: each connection may also hold a file or two."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(16, min(10_000, (soft - DESCRIPTOR_RESERVE) // 2))


class RejectLog:
    """One line per rejected request, at most ``per_second`` of them (bursts of ``burst``);
    the rest are counted and the count is logged with the next line that gets through."""

    def __init__(self, per_second: float = 5.0, burst: int = 20) -> None:
        self._rate = per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self.suppressed = 0

    def note(self, remote: str | None, status: int, reason: str) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            self.suppressed += 1
            return
        self._tokens -= 1
        more = f" (and {self.suppressed} more not logged)" if self.suppressed else ""
        self.suppressed = 0
        log.warning("rejected %s: %d %s%s", remote or "?", status, reason[:200], more)


def json_error(status: int, message: str, *, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.Response(
        status=status, text=json.dumps({"error": message}), content_type="application/json", headers=headers
    )


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, with the idle timeout and JSON parser errors."""

    __slots__ = ("_guard", "_idle_timer", "_requests_under_way")

    def __init__(self, guard: Guard, **kwargs: Any) -> None:
        super().__init__(guard.server, loop=guard.loop, **kwargs)
        self._guard = guard
        self._idle_timer: asyncio.TimerHandle | None = None
        self._requests_under_way = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._guard.open_connections += 1
        self._start_idle_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.open_connections -= 1
        self._stop_idle_timer()
        super().connection_lost(exc)

    def request_started(self) -> None:
        self._requests_under_way += 1
        self._stop_idle_timer()

    def request_ended(self) -> None:
        self._requests_under_way -= 1
        if not self._requests_under_way:
            self._start_idle_timer()

    def _start_idle_timer(self) -> None:
        self._stop_idle_timer()
        self._idle_timer = self._guard.loop.call_later(self._guard.idle_timeout, self._idle_too_long)

    def _stop_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_too_long(self) -> None:
        self._idle_timer = None
        if self.transport is not None and not self._requests_under_way:
            # Idle keep-alive connections end this way every day: counted, not warned about.
            self._guard.idle_closed += 1
            log.debug("closed an idle connection from %s", _peer(self.transport))
            self.transport.close()

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """JSON for what the parser refused (and for failures outside the app's own middleware)."""
        if isinstance(exc, ConnectionError):  # the client went away mid-request: nobody to answer
            raise ConnectionError("the client went away") from exc
        reason = message or (str(exc) if exc is not None and status != 500 else "") or HTTPStatus(status).phrase
        if status == 500 and exc is not None:
            log.error("internal error serving %s", request.remote, exc_info=exc)
        else:
            self._guard.rejects.note(request.remote, status, reason)
        if request.writer.output_size > 0:  # the response had begun: all we can do is cut it
            raise ConnectionError("the response was under way; the connection is cut")
        response = json_error(status, "internal error" if status == 500 else reason)
        response.force_close()
        return response


class _Busy(asyncio.Protocol):
    """The answer to a connection over the cap: a JSON 503, then close."""

    BODY: Final = json.dumps({"error": "too many connections; retry shortly"}).encode()
    ANSWER: Final = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast("asyncio.Transport", transport)  # uvloop's transports are not asyncio's subclasses
        self._guard.rejects.note(_peer(stream), 503, "over the connection cap")
        stream.write(self.ANSWER)
        stream.close()


def _peer(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if peer else None


class Guard:
    """The protocol factory the listener uses: a guarded handler, or a 503 over the cap."""

    def __init__(
        self, server: web.Server, *, idle_timeout: float, max_connections: int, handler_args: dict[str, Any]
    ) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.handler_args = handler_args
        self.open_connections = 0
        self.idle_closed = 0  # connections closed for idling past idle_timeout (or trickling a request)
        self.rejects = RejectLog()

    def __call__(self) -> asyncio.Protocol:
        if self.open_connections >= self.max_connections:
            return _Busy(self)
        return GuardedRequestHandler(self, **self.handler_args)


@web.middleware
async def track_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    """Tell the connection a request is under way (its idle timer stops meanwhile)."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedRequestHandler):  # aiohttp's test server: no guard
        return await handler(request)  # type: ignore[no-any-return]
    protocol.request_started()
    try:
        return await handler(request)  # type: ignore[no-any-return]
    finally:
        protocol.request_ended()


class Service:
    """A running service: its listener, its runner and its guard."""

    def __init__(
        self, runner: web.AppRunner, listener: asyncio.AbstractServer, guard: Guard, shutdown_timeout: float
    ) -> None:
        self.runner = runner
        self.listener = listener
        self.guard = guard
        self.shutdown_timeout = shutdown_timeout
        sockets: Any = getattr(listener, "sockets", ())  # asyncio.Server's and spargio.net.Server's
        self.host, self.port = sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Close the listener, let requests in flight finish for ``shutdown_timeout`` s, cut the rest."""
        self.listener.close()
        connections = self.guard.open_connections
        log.info(
            "stopping: the listener is closed; %d connection(s) open, up to %.1f s for requests in flight",
            connections,
            self.shutdown_timeout,
        )
        started = time.monotonic()
        await self.runner.cleanup()
        log.info("stopped in %.1f s", time.monotonic() - started)


async def start(
    app: web.Application,
    host: str,
    port: int,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    access_log: logging.Logger | None = None,
    backlog: int = 1024,
    net: str = "loop",
) -> Service:
    """Serve ``app`` on ``host:port`` (0: a free port) with the guards above.

    ``net="spargio"`` listens through `spargio.net` (connections on io_uring
    completions); ``"loop"`` through the loop's own ``create_server``.
    """
    app.middlewares.insert(0, track_requests)
    handler_args: dict[str, Any] = {
        "access_log": access_log,
        "keepalive_timeout": idle_timeout,
        "auto_decompress": False,
    }
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout, **handler_args)
    await runner.setup()
    assert runner.server is not None
    guard = Guard(
        runner.server,
        idle_timeout=idle_timeout,
        max_connections=max_connections or default_max_connections(),
        handler_args=handler_args,
    )
    try:
        if net == "spargio":
            listener = await spargio.net.create_server(guard, host, port, backlog=backlog)
        else:
            listener = await asyncio.get_running_loop().create_server(guard, host, port, backlog=backlog)
    except BaseException:
        await runner.cleanup()
        raise
    return Service(runner, listener, guard, shutdown_timeout)
