"""The Runtime: a pool of shards beside the service's loop, its lifecycle and its stats.

Theory of operation
-------------------
``Runtime(shards=N)`` starts N `Shard` threads (each a ring + an asyncio loop
whose waits are ring waits).  ``rt.spawn(fn, *args, placement=...)`` is the
whole path of a piece of work:

1. A `Ticket` is made on the caller's loop (its future lives there).
2. The pure-Python `Scheduler` picks the shard from the placement and the
   shards' loads (queued + running + native ops in flight; power of two
   choices for ``Stealable``).  The ticket goes into that shard's bounded
   inbox; if it is full, stealable and round-robin work tries the other
   shards, and otherwise `spawn` raises `OverloadedError` (`submit` waits for
   space instead: shards that take work from their inbox wake the waiters).
3. The shard is woken only if it is parked (MSG_RING or eventfd, see
   `spargio._wakeup`).  If stealable work piles up on a shard that is busy
   while another is parked, one parked shard is woken to steal.
4. The result comes back through the caller loop's mailbox: one wakeup for
   all the results that are ready together.

Lifecycle: `aclose` (or leaving ``async with``) stops the shards, with
``drain=True`` after the queued and running work ends, with ``drain=False``
at once, failing what is left with `ClosedError`; either way rings close only
after every in-flight op's CQE.  Runtimes still open at interpreter exit are
closed by an ``atexit`` hook without draining (shard threads are daemons, so
exit never waits on a parked shard).  In a forked child a runtime of the
parent is unusable (`ClosedError`), and its rings are never touched; the
default runtime is rebuilt on first use.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import errno
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, overload

from . import _backend, native
from ._errors import BackendUnavailable, ClosedError, OverloadedError, ShardDiedError, SpargioTimeout
from ._shard import Shard
from ._steal import ASYNC_STEAL_DEPTH, MIN_STEAL_DEPTH, Placement, RoundRobin, Scheduler, Stealable
from ._ticket import Ticket, Work
from ._waitqueue import WaitQueue
from ._wakeup import Tally

if TYPE_CHECKING:
    from types import TracebackType


__all__ = [
    "Runtime",
    "RuntimeStats",
    "ShardStats",
    "WakeupStats",
    "current_runtime",
    "default_runtime",
    "run",
]

T = TypeVar("T")

Wakeup = Literal["auto", "msg_ring", "eventfd"]
DEFAULT_RING_ENTRIES: Final = 256
DEFAULT_INBOX_CAPACITY: Final = 1024
_EXIT_DEADLINE: Final = 3.0  # seconds the atexit hook waits for shards to stop
_STEALABLE: Final = Stealable()

_seq = itertools.count(1)
_live: weakref.WeakSet[Runtime] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class WakeupStats:
    """Wakeups sent: MSG_RING messages, eventfd writes, service-loop wakeups (replies)."""

    msg_ring: int
    eventfd: int
    loop: int


@dataclass(frozen=True, slots=True)
class ShardStats:
    """One shard at the moment `Runtime.stats` was called."""

    index: int
    alive: bool
    queued: int
    running: int
    in_flight_ops: int
    accepted: int
    started: int
    completed: int
    dropped: int
    cancelled: int
    abandoned: int
    stolen: int
    steal_attempts: int
    ring_submits: int
    ring_cqes: int
    wakeups_received: int


@dataclass(frozen=True, slots=True)
class RuntimeStats:
    """An immutable snapshot of a runtime (counters are totals since start).

    :ivar spawned: tickets accepted into an inbox.
    :ivar completed: tickets that ran to an outcome (value, error or cancel).
    :ivar dropped: tickets that never ran (cancelled while queued, or failed at close).
    :ivar stolen: tickets moved by work stealing; ``steal_attempts`` counts looks.
    :ivar overloaded: `spawn` calls refused with `OverloadedError`.
    :ivar cancelled: tickets whose cancel was requested; ``timeouts`` those by `Ticket.wait`.
    :ivar abandoned: sync functions whose result was discarded (caller gone).
    """

    backend: str
    wakeup: str
    shards: tuple[ShardStats, ...]
    spawned: int
    completed: int
    dropped: int
    stolen: int
    steal_attempts: int
    overloaded: int
    waited_for_space: int
    cancelled: int
    timeouts: int
    abandoned: int
    wakeups: WakeupStats
    ring_submits: int
    ring_cqes: int


class _Loads(Sequence[int]):
    """The shards' loads, read lazily: power of two choices looks at only two."""

    __slots__ = ("_shards",)

    def __init__(self, shards: list[Shard]) -> None:
        self._shards = shards

    def __len__(self) -> int:
        return len(self._shards)

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...
    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        if isinstance(i, slice):
            return [shard.load() for shard in self._shards[i]]
        return self._shards[i].load()


class Runtime:
    """A pool of shards: N threads, each with its own io_uring and asyncio loop.

    :param shards: number of shards (default: the CPUs this process may run on).
    :param ring_entries: SQ size of each shard's ring.
    :param backend: ``"auto"`` (the process's backend, see `backend_info`),
        ``"io_uring"`` (fail if it cannot run) or ``"threads"`` (epoll loops).
    :param thread_affinity: None (the OS places threads), True (shard *i* on
        the *i*-th allowed CPU, round robin: thread per core), or a list of
        CPUs (shard *i* on ``cpus[i % len(cpus)]``).
    :param inbox_capacity: the most queued tickets per shard.
    :param wakeup: ``"auto"`` (MSG_RING where the kernel has it, else
        eventfd; ``SPARGIO_WAKEUP`` overrides), ``"msg_ring"`` or ``"eventfd"``.
    """

    def __init__(
        self,
        shards: int | None = None,
        *,
        ring_entries: int = DEFAULT_RING_ENTRIES,
        backend: Literal["auto", "io_uring", "threads"] = "auto",
        thread_affinity: bool | Sequence[int] | None = None,
        inbox_capacity: int = DEFAULT_INBOX_CAPACITY,
        wakeup: Wakeup = "auto",
    ) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        if shards is None:
            shards = len(cpus)
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be an int >= 1, not {shards!r}")
        if isinstance(inbox_capacity, bool) or not isinstance(inbox_capacity, int) or inbox_capacity < 1:
            raise ValueError(f"inbox_capacity must be an int >= 1, not {inbox_capacity!r}")
        if backend not in ("auto", "io_uring", "threads"):
            raise ValueError(f"backend must be 'auto', 'io_uring' or 'threads', not {backend!r}")
        if wakeup not in ("auto", "msg_ring", "eventfd"):
            raise ValueError(f"wakeup must be 'auto', 'msg_ring' or 'eventfd', not {wakeup!r}")
        self._n = shards
        self._ring_entries = ring_entries
        self._requested_backend = backend
        self._requested_wakeup = wakeup
        self._cpus = self._cpu_plan(thread_affinity, cpus, shards)
        self._capacity = inbox_capacity
        self.scheduler = Scheduler(shards)
        self.tally = Tally()
        self.shard_list: list[Shard] = []
        self.backend = ""
        self.wakeup = ""
        self._state: Literal["new", "running", "closing", "closed"] = "new"
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._space = WaitQueue()  # submitters waiting for inbox space
        self._counts = {"overloaded": 0, "waited_for_space": 0, "cancelled": 0, "timeouts": 0}
        self._loads = _Loads(self.shard_list)
        self.spin_seconds = _spin_seconds()

    def __repr__(self) -> str:
        return f"<spargio.Runtime {self._state} shards={self._n} backend={self.backend or '?'}>"

    @staticmethod
    def _cpu_plan(affinity: bool | Sequence[int] | None, cpus: list[int], n: int) -> list[int | None]:
        if affinity is None or affinity is False:
            return [None] * n
        chosen = cpus if affinity is True else list(affinity)
        if not chosen or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in chosen):
            raise ValueError(f"thread_affinity must be True or a non-empty list of CPU numbers, not {affinity!r}")
        return [chosen[i % len(chosen)] for i in range(n)]

    # -- lifecycle -------------------------------------------------------

    @property
    def shards(self) -> int:
        """The number of shards."""
        return self._n

    @property
    def closed(self) -> bool:
        return self._state in ("closing", "closed") or os.getpid() != self._pid

    async def __aenter__(self) -> Runtime:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose(drain=exc_type is None)

    async def start(self) -> Runtime:
        """Start the shards (each builds its ring and loop on its own thread); returns self.

        :raises BackendUnavailable: ``backend="io_uring"`` (or ``wakeup="msg_ring"``) where it cannot run.
        :raises RuntimeError: the runtime was already started.
        """
        return self.start_blocking()

    def start_blocking(self) -> Runtime:
        """`start` for code that has no running loop (a few ms: threads and rings are created)."""
        if self._state != "new":
            raise RuntimeError(f"this runtime was already started ({self._state})")
        use_ring, msg_ring = self._choose_backend()
        self.backend = "io_uring" if use_ring else "threads"
        self.wakeup = "msg_ring" if msg_ring else "eventfd"
        self._state = "running"
        _live.add(self)
        try:
            for index, cpu in enumerate(self._cpus):
                shard = Shard(
                    self,
                    index,
                    ring_entries=self._ring_entries,
                    use_ring=use_ring,
                    msg_ring=msg_ring,
                    cpu=cpu,
                    capacity=self._capacity,
                )
                self.shard_list.append(shard)
                shard.start()
        except BaseException:
            self.close_blocking(drain=False)
            raise
        return self

    def _choose_backend(self) -> tuple[bool, bool]:
        requested = self._requested_backend
        if requested == "threads":
            use_ring = False
        elif requested == "io_uring":
            info = _backend.backend_info()
            if info.name != "io_uring" and info.requested != "threads":
                raise BackendUnavailable(
                    info.errno or errno.ENOSYS, f"io_uring runtime requested but unavailable: {info.reason}"
                )
            use_ring = True
        else:
            use_ring = _backend.backend_info().name == "io_uring"
        wakeup = self._requested_wakeup
        if wakeup == "auto":
            wakeup = os.environ.get("SPARGIO_WAKEUP", "auto")  # type: ignore[assignment]
        if wakeup == "eventfd":
            return use_ring, False
        has_msg_ring = use_ring and _msg_ring_supported()
        if wakeup == "msg_ring" and not has_msg_ring:
            raise BackendUnavailable(
                errno.ENOSYS, "MSG_RING wakeups need the io_uring backend and a kernel with IORING_OP_MSG_RING"
            )
        return use_ring, has_msg_ring

    async def aclose(self, *, drain: bool = True) -> None:
        """Stop the shards and close their rings.

        ``drain=True`` runs the queued work to the end first; ``drain=False``
        fails queued work with `ClosedError` and cancels running coroutines
        (they see `CancelledError`; their tickets fail with `ClosedError`).
        Running sync functions cannot be interrupted: closing waits for them.
        In-flight native ops are cancelled and their CQEs awaited before the
        rings close.  New work raises `ClosedError` from the moment this is
        called.  Closing again waits for the first close.
        """
        if not self._begin_close(drain):
            return
        await asyncio.gather(*(asyncio.wrap_future(shard.stopped) for shard in self.shard_list))
        self._state = "closed"

    def close_blocking(self, *, drain: bool = False, timeout: float | None = None) -> bool:
        """`aclose` for code that has no running loop; returns False if shards were still running at ``timeout``."""
        if not self._begin_close(drain):
            return True
        done, _ = concurrent.futures.wait([shard.stopped for shard in self.shard_list], timeout)
        self._state = "closed"
        return len(done) == len(self.shard_list)

    def _begin_close(self, drain: bool) -> bool:
        if os.getpid() != self._pid:
            return False  # a forked child: the shards (and rings) are the parent's
        if self._state in ("new", "closed"):
            self._state = "closed"
            return False
        self._state = "closing"
        for shard in self.shard_list:
            shard.request_stop(drain)
        self._space.notify_all()  # waiters retry and meet ClosedError
        return True

    def closed_error(self) -> ClosedError:
        return ClosedError("the spargio runtime was closed before this work ran to the end")

    # -- work ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state == "running" and os.getpid() == self._pid:
            return
        if os.getpid() != self._pid:
            raise ClosedError(
                "this spargio runtime belongs to the parent process (it was started before fork()); "
                "create a new Runtime in the child"
            )
        if self._state == "new":
            raise ClosedError("this spargio runtime was not started (use 'async with' or await start())")
        raise ClosedError("this spargio runtime is closed")

    @overload
    def spawn(
        self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, placement: Placement = ..., **kwargs: Any
    ) -> Ticket[T]: ...
    @overload
    def spawn(self, fn: Callable[..., T], /, *args: Any, placement: Placement = ..., **kwargs: Any) -> Ticket[T]: ...
    def spawn(
        self, fn: Callable[..., Any], /, *args: Any, placement: Placement = _STEALABLE, **kwargs: Any
    ) -> Ticket[Any]:
        """Run ``fn(*args, **kwargs)`` on a shard; returns a `Ticket` to await from this loop
        (or, called from a plain thread, to wait for with ``ticket.result(timeout=)``).

        ``fn`` may be a sync function (it runs on the shard's thread) or a
        coroutine function (it runs as a task on the shard's loop).
        contextvars are copied into the work.  ``placement`` (keyword-only)
        chooses the shard (default `Stealable`).  Never waits.

        :raises OverloadedError: the inbox(es) the placement allows are full.
        :raises ClosedError: the runtime is not running.
        :raises ShardDiedError: the placement names a shard whose thread died.
        """
        ticket = self._work(fn, args, kwargs)
        if not self._place(ticket, placement):
            self._count("overloaded")
            raise OverloadedError(
                f"the spargio shard inbox for {placement!r} is full ({self._capacity} queued); "
                "await submit() to wait for space"
            )
        return ticket

    @overload
    async def submit(
        self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, placement: Placement = ..., **kwargs: Any
    ) -> Ticket[T]: ...
    @overload
    async def submit(
        self, fn: Callable[..., T], /, *args: Any, placement: Placement = ..., **kwargs: Any
    ) -> Ticket[T]: ...
    async def submit(
        self, fn: Callable[..., Any], /, *args: Any, placement: Placement = _STEALABLE, **kwargs: Any
    ) -> Ticket[Any]:
        """Like `spawn`, but waits for inbox space instead of raising `OverloadedError`.

        If the caller is cancelled while it waits, nothing was submitted.
        """
        ticket = self._work(fn, args, kwargs)
        if not self._place(ticket, placement):
            await self._place_when_space(ticket, placement)
        return ticket

    @overload
    async def call(
        self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, placement: Placement = ..., **kwargs: Any
    ) -> T: ...
    @overload
    async def call(self, fn: Callable[..., T], /, *args: Any, placement: Placement = ..., **kwargs: Any) -> T: ...
    async def call(
        self, fn: Callable[..., Any], /, *args: Any, placement: Placement = _STEALABLE, **kwargs: Any
    ) -> Any:
        """``await (await submit(...))``: run ``fn`` on a shard and return its result.

        Cancelling the caller cancels the work (see `Ticket.cancel`).
        """
        return await self._call(fn, args, kwargs, placement, None)

    async def _call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        placement: Placement,
        timeout: float | None,
    ) -> Any:
        """`call` and ``boundary.call``: place, wait for space if need be, await the result.

        The future is awaited directly (not through `Ticket.__await__`'s
        generator): this is the hot path of the whole package.
        """
        ticket = self._work(fn, args, kwargs)
        placed = self._place(ticket, placement)
        future = ticket._future
        assert future is not None  # a coroutine always runs on a loop
        if timeout is None:
            if not placed:
                await self._place_when_space(ticket, placement)  # cancelled here: it was never queued
            try:
                return await future
            except asyncio.CancelledError:
                ticket._cancel_work()
                raise
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                if not placed:
                    await self._place_when_space(ticket, placement)
                try:
                    return await future
                except asyncio.CancelledError:
                    ticket._cancel_work()
                    raise
        except TimeoutError:
            if not deadline.expired():
                raise  # fn's own TimeoutError
            self._count("timeouts")
            name = getattr(fn, "__qualname__", None) or repr(fn)
            raise SpargioTimeout(f"{name} did not finish within {timeout} s; it was cancelled") from None

    def _work(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Work[Any]:
        """A ticket for ``fn(*args, **kwargs)`` (the caller's context copied now), not queued yet
        (`_place` checks that the runtime is open)."""
        return Work(fn, args, kwargs, self, next(_seq))

    async def _place_when_space(self, ticket: Work[Any], placement: Placement) -> None:
        """`_place` ``ticket`` as soon as an inbox has room (cancelled: it was never queued)."""
        self._count("waited_for_space")
        await self._space.wait_for(lambda: True if self._place(ticket, placement) else None, None)

    def _place(self, ticket: Work[Any], placement: Placement) -> bool:
        """Queue ``ticket`` where ``placement`` says and wake who must know; False if the inboxes are full."""
        if self._state != "running" or os.getpid() != self._pid:
            self._check_open()
        if placement.__class__ is Stealable:  # the default: skip the general dispatch
            stealable = True
            shards = self.shard_list
            if len(shards) == 2:  # power of two choices among two is just the lighter one
                first, second = shards
                shard = first if first.load() <= second.load() else second
            else:
                shard = shards[self.scheduler.least_loaded_of_two(self._loads)]
        else:
            decision = self.scheduler.place(placement, self._loads)
            stealable = decision.stealable
            shard = self.shard_list[decision.shard]
        # A coroutine ticket only becomes a task when it starts, and a shard starts up to a batch of
        # them per loop iteration: in a shallower inbox it waits one iteration at most, and moving it
        # would only add a thief's wakeup and a GIL hand-off (a 2-shard 64 KiB read + crc32 hot path
        # at 8 in flight ran at 0.85x with them stealable).
        inbox = shard.inbox
        ticket.stealable = stealable and (
            not ticket.is_async or len(inbox.own) + len(inbox.stealable) >= ASYNC_STEAL_DEPTH
        )
        fallback = stealable or isinstance(placement, RoundRobin)
        if not self._put(shard, ticket, fallback):
            if not fallback:
                return False
            for other in self._by_load(shard):
                if self._put(other, ticket, True):
                    shard = other
                    break
            else:
                return False
        waker = shard.waker
        if waker is not None and not waker.wake() and ticket.stealable and shard.stealable_backlog() >= MIN_STEAL_DEPTH:
            self.wake_a_thief(shard)
        return True

    def _put(self, shard: Shard, ticket: Work[Any], fallback: bool) -> bool:
        try:
            return shard.inbox.put(ticket)
        except ShardDiedError:
            if fallback:
                return False
            raise

    def _by_load(self, skip: Shard) -> list[Shard]:
        return sorted((s for s in self.shard_list if s is not skip and s.alive), key=Shard.load)

    def wake_a_thief(self, busy: Shard) -> None:
        """Wake one parked shard (other than ``busy``) so that it steals ``busy``'s backlog.

        The shard is told it was woken to steal: if its own work arrives
        first, it passes the errand on (`pass_on_theft`) instead of letting
        the backlog wait behind work that may run for a long time.
        """
        for shard in self.shard_list:
            waker, selector = shard.waker, shard.selector
            if (
                shard is not busy
                and waker is not None
                and selector is not None
                and selector.parked
                and not waker.pending
                and shard.alive
            ):
                shard.woken_to_steal = True
                waker.wake()
                return

    def pass_on_theft(self, thief: Shard) -> None:
        """``thief`` was woken to steal but has work of its own: wake another for the deepest backlog."""
        backlogs = [shard.stealable_backlog() for shard in self.shard_list]
        deepest = max(range(len(backlogs)), key=backlogs.__getitem__)
        if backlogs[deepest] >= MIN_STEAL_DEPTH:
            self.wake_a_thief(self.shard_list[deepest])

    def space_freed(self, n: int) -> None:
        """Shards took ``n`` tickets from their inboxes: let up to ``n`` waiting submitters retry."""
        if self._space.waiting:
            self._space.notify(n)

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    # -- stats -----------------------------------------------------------

    def stats(self) -> RuntimeStats:
        """A snapshot of the shards and the runtime's counters (read without stopping anything)."""
        shards = tuple(_shard_stats(shard) for shard in self.shard_list)
        wakeups = self.tally.snapshot()
        with self._lock:
            counts = dict(self._counts)
        return RuntimeStats(
            backend=self.backend,
            wakeup=self.wakeup,
            shards=shards,
            spawned=sum(s.accepted for s in shards),
            completed=sum(s.completed for s in shards),
            dropped=sum(s.dropped for s in shards),
            stolen=sum(s.stolen for s in shards),
            steal_attempts=sum(s.steal_attempts for s in shards),
            overloaded=counts["overloaded"],
            waited_for_space=counts["waited_for_space"],
            cancelled=counts["cancelled"],
            timeouts=counts["timeouts"],
            abandoned=sum(s.abandoned for s in shards),
            wakeups=WakeupStats(**wakeups),
            ring_submits=sum(s.ring_submits for s in shards),
            ring_cqes=sum(s.ring_cqes for s in shards),
        )


def _shard_stats(shard: Shard) -> ShardStats:
    ring = shard.ring
    return ShardStats(
        index=shard.index,
        alive=shard.alive,
        queued=len(shard.inbox),
        running=shard.running,
        in_flight_ops=shard.ops_in_flight(),
        accepted=shard.inbox.accepted,
        started=shard.started,
        completed=shard.completed,
        dropped=shard.dropped,
        cancelled=shard.cancelled,
        abandoned=shard.abandoned,
        stolen=shard.stolen,
        steal_attempts=shard.steal_attempts,
        ring_submits=ring.submit_calls if ring is not None else 0,
        ring_cqes=ring.ops_completed + ring.messages if ring is not None else 0,
        wakeups_received=ring.messages if ring is not None else 0,
    )


DEFAULT_SPIN_US: Final = 50


def _spin_seconds() -> float:
    """How long a shard that has just served tickets spins before it parks (``SPARGIO_SPIN_US``,
    microseconds; 0 turns spinning off)."""
    raw = os.environ.get("SPARGIO_SPIN_US", "")
    try:
        micros = float(raw) if raw else DEFAULT_SPIN_US
    except ValueError:
        micros = DEFAULT_SPIN_US
    return max(0.0, micros) / 1e6


def _msg_ring_supported() -> bool:
    info = _backend.backend_info()
    if info.name == "io_uring":
        return info.msg_ring
    if native.IMPORT_ERROR is not None:
        return False  # no binding: shards are woken through their eventfd
    from .native.ring import Ring

    probe = Ring(8, lambda entry, res: None)
    try:
        return probe.supports("MSG_RING")
    finally:
        probe.close()


# -- the default runtime ---------------------------------------------------

_default: Runtime | None = None
_default_lock = threading.Lock()
_current: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("spargio_runtime", default=None)


def default_runtime() -> Runtime:
    """The process's default runtime, started on first use (CPU-count shards) and closed at exit."""
    global _default
    rt = _default
    if rt is not None and not rt.closed:
        return rt
    with _default_lock:
        if _default is None or _default.closed:
            _default = Runtime().start_blocking()
        return _default


def current_runtime() -> Runtime:
    """The runtime of the enclosing `spargio.run`, or else the default runtime."""
    rt = _current.get()
    return rt if rt is not None and not rt.closed else default_runtime()


def run(
    main: Coroutine[Any, Any, T] | Callable[[], Coroutine[Any, Any, T]],
    /,
    *,
    debug: bool | None = None,
    **runtime_options: Any,
) -> T:
    """Run ``main`` on a new event loop (uvloop if installed, else asyncio) beside a new `Runtime`.

    ``main`` is a coroutine or a coroutine function taking no arguments.
    Inside it, `current_runtime()` (and ``spargio.boundary``) use this
    runtime.  The runtime is drained and closed when ``main`` returns (closed
    without draining if it raises); the loop is closed as `asyncio.run` does.

    :param runtime_options: passed to `Runtime`.
    """
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a test dependency
        loop_factory = None

    async def with_runtime() -> T:
        coro = main() if callable(main) else main
        async with Runtime(**runtime_options) as rt:
            token = _current.set(rt)
            try:
                return await coro
            finally:
                _current.reset(token)

    with asyncio.Runner(debug=debug, loop_factory=loop_factory) as runner:
        return runner.run(with_runtime())


def _close_at_exit() -> None:
    for rt in list(_live):
        rt.close_blocking(drain=False, timeout=_EXIT_DEADLINE)


def _after_fork_in_child() -> None:
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()
    _live.clear()  # the parent's runtimes: never closed (nor touched) here


atexit.register(_close_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
