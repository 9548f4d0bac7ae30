"""Bounded request/response channels between any two sides: loops (service or shard) and plain threads.

Theory of operation
-------------------
``client, server = channel(capacity)`` share one `_State`: a deque of
`Request` objects (at most ``capacity``), a `WaitQueue` of receivers
waiting for a request and one of senders waiting for space.  Both sides may
live on any event loop or plain thread; nothing polls.

* A call makes a `Reply` (a `Ticket`: the caller's future on its own loop,
  or an event for a plain thread) and a `Request` holding it, appends the
  request under the lock and notifies one receiver.  The server's
  `Request.respond`/`fail` finishes the ticket, which posts the outcome to
  the caller loop's mailbox: many responses bound for one loop share one
  wakeup.
* Receivers are only *notified*; a request is taken by the receiver itself,
  under the lock, when it looks.  So a `recv` that times out (or is
  cancelled) has taken nothing: the request stays queued for the next
  `recv`, and a notification it was given is passed on (see `WaitQueue`).
* Cancelling a call (cancel, timeout) before a receiver took the request
  removes it from the queue: the server never sees it.  After it was
  taken, the server sees ``request.cancelled`` and may skip the work; its
  response, if any, is dropped.  ``request.expired`` says the caller's
  deadline has passed.
* Closing: when the last client closes, receivers drain what is queued and
  then `recv` raises `ClosedError`.  When the server closes, queued calls
  fail with `ClosedError`, and new calls raise it.  A request the server
  drops without answering fails its caller with `ClosedError` when it is
  garbage collected, so a caller never waits for an answer nobody holds.
* Receivers that go away: a shard that has received from a channel is
  remembered; when it stops (its runtime closed, its thread died), it is
  crossed off, and when no receiving shard is left and no other loop or
  plain thread ever received, the channel closes as if the server had:
  queued callers fail with `ClosedError` at once instead of waiting for a
  receiver that will never come (a server task cancelled by
  ``aclose(drain=False)`` left the requests behind the one it was serving
  waiting forever).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._errors import ClosedError, OverloadedError, SpargioTimeout
from .._shard import current_shard_key, watch_shard_stop
from .._ticket import Ticket
from .._waitqueue import WaitQueue

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ChannelStats", "Client", "Reply", "Request", "Server", "channel"]

_get_running_loop = asyncio._get_running_loop
Q = TypeVar("Q")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """A snapshot of a channel (counters are totals since it was made)."""

    capacity: int
    queued: int
    clients: int
    server_closed: bool
    calls: int
    overloaded: int
    responded: int
    failed: int
    cancelled: int
    timeouts: int


class _State:
    """What a client and its server share."""

    def __init__(self, capacity: int) -> None:
        self.lock = threading.Lock()
        self.queue: deque[Request[Any, Any]] = deque()
        self.capacity = capacity
        self.clients = 1
        self.server_closed = False
        self.receivers = WaitQueue()
        self.senders = WaitQueue()
        self.receiving_shards: set[int] = set()  # keys of the shards that received (see `received_on`)
        self.received_elsewhere = False  # a service loop or a plain thread received: never closed for it
        self.counts = dict.fromkeys(("calls", "overloaded", "responded", "failed", "cancelled", "timeouts"), 0)

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def received_on(self, loop: object | None) -> None:
        """Remember who receives (``loop`` None: a plain thread): a shard is crossed off when it stops."""
        if self.received_elsewhere:
            return
        key = current_shard_key() if loop is not None else None
        if key is None:
            self.received_elsewhere = True
        elif key not in self.receiving_shards:
            watch_shard_stop(self)
            with self.lock:
                self.receiving_shards.add(key)

    def shard_stopped(self, key: int) -> None:
        """A receiving shard stopped: close the channel if nobody is left to receive."""
        with self.lock:
            self.receiving_shards.discard(key)
            orphaned = not self.receiving_shards and not self.received_elsewhere and not self.server_closed
        if orphaned:
            self.close("every shard that received from this channel has stopped; nobody is left to receive")

    def close(self, reason: str) -> None:
        """Fail queued requests with `ClosedError` (``reason``) and refuse new ones."""
        with self.lock:
            self.server_closed = True
            left = list(self.queue)
            self.queue.clear()
        for request in left:
            if request._reply.drop(ClosedError(reason), None):
                request._answered = True
        self.senders.notify_all()
        self.receivers.notify_all()

    def remove(self, request: Request[Any, Any]) -> None:
        """A queued call was cancelled: its slot is free."""
        with self.lock:
            try:
                self.queue.remove(request)
            except ValueError:
                return
        self.senders.notify()

    def stats(self) -> ChannelStats:
        with self.lock:
            return ChannelStats(
                capacity=self.capacity,
                queued=len(self.queue),
                clients=self.clients,
                server_closed=self.server_closed,
                **self.counts,
            )


class Reply(Ticket[R]):
    """The caller's ticket for one request (await it, ``wait(timeout=)``, ``cancel()``...)."""

    __slots__ = ("_request", "_timed_out")

    _request: Request[Any, R] | None
    _timed_out: bool

    def _timeout_error(self, timeout: float | None) -> SpargioTimeout:
        # The caller's own timer decides: a loop's timer may fire a little before
        # time.monotonic() reaches the deadline (uvloop rounds to milliseconds).
        self._timed_out = True
        return super()._timeout_error(timeout)

    def _dropped(self) -> None:
        request = self._request
        if request is not None:
            request._state.remove(request)
            self._request = None


class Request(Generic[Q, R]):
    """One request as the server sees it: ``payload``, then `respond` or `fail`, once."""

    __slots__ = ("_answered", "_reply", "_state", "deadline", "payload")

    def __init__(self, state: _State, payload: Q, reply: Reply[R], deadline: float | None) -> None:
        self._state = state
        self.payload = payload
        self._reply = reply
        self.deadline = deadline  # time.monotonic() value, or None
        self._answered = False

    def __repr__(self) -> str:
        return f"<Request {self.payload!r}{' cancelled' if self.cancelled else ''}>"

    @property
    def expired(self) -> bool:
        """The caller's deadline has passed (its call has timed out or is about to)."""
        if self.deadline is None:
            return False
        return self._reply._timed_out or time.monotonic() >= self.deadline

    @property
    def cancelled(self) -> bool:
        """The caller cancelled (or timed out): a response would be dropped."""
        return self._reply._cancel_requested

    def respond(self, value: R) -> None:
        """Send ``value`` to the caller (from any thread or loop).

        :raises RuntimeError: the request was already answered.
        """
        self._answer(value, None)
        self._state._count("responded")

    def fail(self, exc: BaseException) -> None:
        """Raise ``exc`` in the caller.

        :raises RuntimeError: the request was already answered.
        """
        if not isinstance(exc, BaseException):
            raise TypeError(f"fail() takes an exception, not {exc!r}")
        self._answer(None, exc)
        self._state._count("failed")

    def _answer(self, value: Any, error: BaseException | None) -> None:
        if self._answered:
            raise RuntimeError("this request was already answered")
        self._answered = True
        self._reply.finish(value, error, None)

    def __del__(self) -> None:
        if not self._answered and not self._reply._claim:  # taken by a server, never answered
            self._answered = True
            self._reply.finish(None, ClosedError("the server dropped this request without answering it"), None)


class Client(Generic[Q, R]):
    """The calling side of a channel.  `clone` makes another client; the server's
    `recv` raises `ClosedError` once every client has closed and the queue is empty."""

    __slots__ = ("__weakref__", "_closed", "_state")

    def __init__(self, state: _State) -> None:
        self._state = state
        self._closed = False

    def __repr__(self) -> str:
        return f"<spargio.boundary.Client {'closed' if self._closed else 'open'} {self._state.stats()}>"

    async def call(self, payload: Q, timeout: float | None = None) -> R:
        """Send ``payload`` and return the server's response (waits for space if the channel is full).

        On cancel or timeout: a request not yet received is removed and the
        server never sees it; one already received is marked ``cancelled``
        (the server may skip it) and its response is dropped.

        :raises SpargioTimeout: ``timeout`` seconds passed (waiting for space counts).
        :raises ClosedError: this client or the server is closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        reply = self._try(payload, deadline)
        if reply is None:
            reply = await self._state.senders.wait_for(lambda: self._try(payload, deadline), timeout)
            if reply is None:
                self._state._count("timeouts")
                raise SpargioTimeout(f"no space in the channel within {timeout} s; nothing was sent")
        if deadline is None:
            return await reply
        return await reply.wait(max(0.0, deadline - time.monotonic()))

    def try_call(self, payload: Q, timeout: float | None = None) -> Reply[R]:
        """Send ``payload`` now; returns the `Reply` ticket to await (or, on a plain
        thread, ``result(timeout=)``).  ``timeout`` only sets ``request.deadline``.

        :raises OverloadedError: the channel is full.
        :raises ClosedError: this client or the server is closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        reply = self._try(payload, deadline)
        if reply is None:
            self._state._count("overloaded")
            raise OverloadedError(f"the channel is full ({self._state.capacity} requests queued)")
        return reply

    def call_blocking(self, payload: Q, timeout: float | None = None) -> R:
        """`call` for a plain thread (no running loop): blocks until the response.

        :raises SpargioTimeout: ``timeout`` seconds passed; the call was cancelled as `call` describes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        reply = self._state.senders.wait_for_blocking(lambda: self._try(payload, deadline), timeout)
        if reply is None:
            self._state._count("timeouts")
            raise SpargioTimeout(f"no space in the channel within {timeout} s; nothing was sent")
        return reply.result(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _try(self, payload: Q, deadline: float | None) -> Reply[R] | None:
        state = self._state
        if self._closed:
            raise ClosedError("this channel client is closed")
        reply: Reply[R] = Reply(state)
        request = Request(state, payload, reply, deadline)
        reply._request = request
        reply._timed_out = False
        with state.lock:
            if state.server_closed:
                raise ClosedError("the channel's server is closed")
            if len(state.queue) >= state.capacity:
                request._answered = True  # never sent: nothing to answer
                return None
            state.queue.append(request)
            state.counts["calls"] += 1
        state.receivers.notify()
        return reply

    def clone(self) -> Client[Q, R]:
        """Another client of the same channel (close each one)."""
        state = self._state
        with state.lock:
            if self._closed:
                raise ClosedError("this channel client is closed")
            state.clients += 1
        return Client(state)

    def close(self) -> None:
        """Close this client (calls in flight still get their responses).  Idempotent."""
        state = self._state
        with state.lock:
            if self._closed:
                return
            self._closed = True
            state.clients -= 1
            last = state.clients == 0
        if last:
            state.receivers.notify_all()  # they drain the queue, then meet ClosedError

    def stats(self) -> ChannelStats:
        return self._state.stats()

    def __enter__(self) -> Client[Q, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class Server(Generic[Q, R]):
    """The serving side of a channel: `recv` requests (or ``async for request in server``)."""

    __slots__ = ("__weakref__", "_state")

    def __init__(self, state: _State) -> None:
        self._state = state

    def __repr__(self) -> str:
        return f"<spargio.boundary.Server {self._state.stats()}>"

    async def recv(self, timeout: float | None = None) -> Request[Q, R]:
        """The oldest request; waits for one at most ``timeout`` seconds.

        A timeout or a cancel takes nothing: a request arriving meanwhile
        stays queued for the next `recv`.

        :raises SpargioTimeout: nothing arrived within ``timeout`` seconds.
        :raises ClosedError: every client has closed and the queue is empty,
            or the server was closed.
        """
        state = self._state
        state.received_on(_get_running_loop())
        request = await state.receivers.wait_for(self._take, timeout)
        if request is None:
            raise SpargioTimeout(f"no request within {timeout} s")
        return request

    def recv_blocking(self, timeout: float | None = None) -> Request[Q, R]:
        """`recv` for a plain thread (no running loop): blocks until a request."""
        self._state.received_on(None)
        request = self._state.receivers.wait_for_blocking(self._take, timeout)
        if request is None:
            raise SpargioTimeout(f"no request within {timeout} s")
        return request

    def try_recv(self) -> Request[Q, R] | None:
        """The oldest request, or None at once if none is queued.

        :raises ClosedError: as `recv`.
        """
        self._state.received_on(_get_running_loop())
        return self._take()

    def _take(self) -> Request[Q, R] | None:
        state = self._state
        with state.lock:
            while state.queue:
                request = state.queue.popleft()
                if request._reply.claim():
                    request._reply._request = None  # the server holds it now (see Request.__del__)
                    break
            else:
                if state.server_closed:
                    raise ClosedError("this channel's server is closed")
                if state.clients == 0:
                    raise ClosedError("every client of this channel has closed")
                return None
        state.senders.notify()
        return request

    def __aiter__(self) -> Server[Q, R]:
        return self

    async def __anext__(self) -> Request[Q, R]:
        try:
            return await self.recv()
        except ClosedError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop serving: queued requests fail with `ClosedError`; new calls raise it.  Idempotent."""
        self._state.close("the channel's server closed before it took this request")

    def stats(self) -> ChannelStats:
        return self._state.stats()

    def __enter__(self) -> Server[Q, R]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def channel(capacity: int) -> tuple[Client[Any, Any], Server[Any, Any]]:
    """A bounded request/response channel: ``client, server = channel(64)``.

    Either side may be used from any event loop (the service's, a shard's)
    or a plain thread (``call_blocking``, ``recv_blocking``, ``try_call`` +
    ``result(timeout=)``).  Annotate for types: ``client: Client[str, bytes]``.

    :param capacity: the most requests queued and not yet received.
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"capacity must be an int >= 1, not {capacity!r}")
    state = _State(capacity)
    return Client(state), Server(state)
