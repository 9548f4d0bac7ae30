"""One shard: a thread, a ring, an asyncio event loop whose waits are ring waits, an inbox.

Theory of operation
-------------------
The shard's thread builds a stock ``asyncio.SelectorEventLoop`` on a
`RingSelector` (io_uring backend) or a `ParkingEpollSelector` (thread
backend) and runs it forever, so any asyncio code runs here unchanged, and
``spargio.fs`` on this loop shares the selector's ring.

* Work arrives in the `Inbox` (tickets) and the mailbox (callbacks:
  cancel a running ticket, stop).  The shard's eventfd is registered with
  ``add_reader(wake_fd, _on_wake)`` and handed to the selector as the *work
  source*: whenever `_has_work` says something waits, the selector reports
  the wake fd ready instead of waiting, and `_on_wake` runs.  A sender
  wakes the shard only if its selector is parked (see `spargio._wakeup`).
* `_on_wake` runs the mailbox, then starts at most ``_BATCH`` tickets, oldest
  first (running the mailbox again after any ticket that left mail in
  it), so one iteration never starves the loop's other callbacks; what is
  left makes the next iteration's `select` skip its wait.  Tickets leave the
  inbox one at a time, so those behind a long-running one stay stealable.
  Only a sync function can hold the shard for long: before one starts,
  submitters waiting for space are let in, and while stealable work waits
  behind it a parked shard is woken to come and steal.  A coroutine ticket
  only becomes a task, so the tickets behind it start in the same batch;
  waking a thief for them would cost a cross-thread wakeup (and a GIL
  hand-off) per ticket for nothing (see the README's hand-off breakdown).
* Starting a ticket calls its function in the submitter's context.  A plain
  result is sent back at once; a coroutine becomes a task on this loop
  (wrapped by `_run_coroutine`, which turns every outcome — including
  `SystemExit`/`KeyboardInterrupt` from the work — into the ticket's result,
  so work can never stop the shard's loop; a task cancelled before its
  first step never enters the wrapper, so its done callback ends the ticket).
* Stealing: when the selector is about to park and the inbox is empty,
  `_has_work(parking=True)` asks the scheduler for a victim (the deepest
  stealable backlog: queued stealable tickets plus those running ahead of
  them) and moves up to half of the victim's stealable tickets (from the
  back) into this inbox.  Work that has started never moves.  A thief that
  leaves a victim still deep wakes one more; a shard woken to steal that
  finds work of its own passes the errand to another parked shard, so a
  backlog never waits behind a thief that got busy.
* Stopping: ``drain=True`` lets the inbox empty and the running tickets end,
  then stops the loop; ``drain=False`` stops at once.  On the way out
  (`_shut_down`) the inbox is closed and what is left in it fails with
  `ClosedError`; tasks still running are cancelled (their tickets fail with
  `ClosedError` too); async generators and the default executor are shut
  down; the loop closes, which closes the ring: in-flight native ops are
  cancelled and their CQEs awaited before the ring is destroyed.
* Death: if anything escapes ``run_forever`` (a `SystemExit` raised by loop
  machinery, say), the same way out runs with `ShardDiedError` (caused by
  what escaped) as the error, at once, and the runtime steers new work to
  the shards that are still alive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import types
import weakref
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._errors import ClosedError, ShardDiedError
from ._inbox import Inbox
from ._steal import ASYNC_STEAL_DEPTH, MIN_STEAL_DEPTH
from ._wakeup import Mailbox, Outbox, Waker, register_mailbox, shard_mailbox

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sized

    from ._loop import _Parking
    from ._runtime import Runtime
    from ._ticket import Work
    from .native.ring import Ring

__all__ = ["Shard", "current_shard", "current_shard_key", "watch_shard_stop"]

_BATCH: Final = ASYNC_STEAL_DEPTH  # tickets started per loop iteration, at most
_SHUTDOWN_GRACE: Final = 5.0  # seconds cancelled tasks get to finish when a shard stops

_local = threading.local()
_iscoroutine = asyncio.iscoroutine
_CoroutineType = types.CoroutineType
# Results that are never coroutines: skip asyncio.iscoroutine's ABC check for them.
_PLAIN_RESULTS: Final = frozenset({type(None), bool, int, float, str, bytes, bytearray, tuple, list, dict})


def current_shard() -> int | None:
    """The index of the shard the caller runs on, or None outside the shard pool."""
    shard: Shard | None = getattr(_local, "shard", None)
    return None if shard is None else shard.index


def current_shard_key() -> int | None:
    """A key naming the shard the caller runs on (None outside the pool), as `watch_shard_stop` reports it."""
    shard: Shard | None = getattr(_local, "shard", None)
    return None if shard is None else id(shard)


def watch_shard_stop(watcher: _StopWatcher) -> None:
    """Call ``watcher.shard_stopped(current_shard_key())`` on this shard's thread when the shard
    stops, after its tasks have ended (only on a shard's thread).  The watcher is held weakly: one
    that is gone is not called."""
    shard: Shard = _local.shard
    shard.stop_watchers.add(watcher)


class _StopWatcher(Protocol):
    def shard_stopped(self, key: int) -> None: ...


class Shard:
    """One shard of a `Runtime`.  Created and started by the runtime."""

    def __init__(
        self,
        runtime: Runtime,
        index: int,
        *,
        ring_entries: int,
        use_ring: bool,
        msg_ring: bool,
        cpu: int | None,
        capacity: int,
    ) -> None:
        self.runtime = runtime
        self.index = index
        self.inbox = Inbox(capacity)
        self._ring_entries = ring_entries
        self._use_ring = use_ring
        self._msg_ring = msg_ring
        self._cpu = cpu
        self.alive = False
        self.death: BaseException | None = None
        self.running = 0  # tickets started and not finished (sync fns while they run, tasks)
        self.started = 0
        self.completed = 0
        self.dropped = 0  # cancelled while queued: never ran
        self.cancelled = 0  # running coroutines that ended cancelled
        self.abandoned = 0  # sync fns whose caller had gone when they returned
        self.stolen = 0
        self.steal_attempts = 0
        self.woken_to_steal = False  # set by the runtime's wake_a_thief (see pass_on_theft)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.selector: _Parking | None = None
        self.ring: Ring | None = None
        self._ring_ops: Sized = ()  # the ring's ops in flight and the selector's polls among them, for load()
        self._armed_polls: Sized = ()
        self.waker: Waker | None = None
        self.mailbox: Mailbox | None = None
        self.outbox: Outbox | None = None
        self.stop_watchers: weakref.WeakSet[_StopWatcher] = weakref.WeakSet()  # see watch_shard_stop
        self._stop_error: Callable[[], ClosedError] | None = None
        self._draining = False
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=f"spargio-shard-{index}", daemon=True)

    def __repr__(self) -> str:
        state = "alive" if self.alive else ("dead" if self.death else "stopped")
        return f"<Shard {self.index} {state} queued={len(self.inbox)} running={self.running}>"

    # -- any thread ------------------------------------------------------

    def start(self) -> None:
        """Start the thread and wait until its loop runs.

        :raises BaseException: whatever building the loop raised (a ring that could not be set up).
        """
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def load(self) -> int:
        """Queued + running tickets + native ops in flight (a lock-free estimate)."""
        if not self.alive:
            return 1 << 30
        inbox = self.inbox
        load = len(inbox.own) + len(inbox.stealable) + self.running
        ops = self._ring_ops
        if ops:
            load += max(0, len(ops) - len(self._armed_polls))
        return load

    def stealable_backlog(self) -> int:
        """How deep the stealable work waits: queued stealable tickets plus the tickets
        running ahead of them (a shard busy with one ticket and holding one more is a
        fair victim; an idle shard holding one is not).  0 if nothing is stealable."""
        depth = len(self.inbox.stealable)
        return depth + self.running if depth and self.alive else 0

    def ops_in_flight(self) -> int:
        """Native ops in this shard's ring, not counting the selector's readiness polls."""
        ring, selector = self.ring, self.selector
        if ring is None or ring.closed:
            return 0
        return max(0, ring.in_flight - getattr(selector, "armed_polls", 0))

    def post(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` on the shard's loop soon (dropped if the shard has stopped)."""
        mailbox = self.mailbox
        if mailbox is not None and self.alive:
            mailbox.post(fn, arg)

    def request_stop(self, drain: bool) -> None:
        """Ask the shard to stop: after the queued and running work (drain) or now."""
        self.post(self._begin_stop, drain)

    # -- the shard's thread ----------------------------------------------

    def _make_loop(self) -> tuple[asyncio.AbstractEventLoop, _Parking]:
        selector: Any
        if self._use_ring:
            from ._loop import RingSelector

            selector = RingSelector(self._ring_entries)
            self.ring = selector.ring
            self._ring_ops, self._armed_polls = self.ring._ops, selector._armed
        else:
            from ._loop import ParkingEpollSelector

            selector = ParkingEpollSelector()
        from ._loop import ShardEventLoop

        return ShardEventLoop(selector), selector

    def _main(self) -> None:
        if self._cpu is not None:
            try:
                os.sched_setaffinity(0, {self._cpu})
            except OSError as exc:
                self._start_error = exc
        try:
            if self._start_error is not None:
                raise self._start_error
            loop, selector = self._make_loop()
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            self.stopped.set_result(None)
            return
        _local.shard = self
        asyncio.set_event_loop(loop)
        wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        ring = self.ring
        self.waker = Waker(
            selector, wake_fd, ring.fd if ring is not None and self._msg_ring else -1, self.runtime.tally
        )
        self.mailbox = shard_mailbox(self.waker)
        self.outbox = Outbox(self.mailbox)
        self.outbox.install()
        register_mailbox(loop, self.mailbox)
        loop.add_reader(wake_fd, self._on_wake)
        selector.set_work_source(wake_fd, self._has_work, self.outbox.flush)
        selector.spin_seconds = self.runtime.spin_seconds
        self.loop, self.selector = loop, selector
        self.alive = True
        self._ready.set()
        try:
            loop.run_forever()
        except BaseException as exc:
            self.death = exc
        finally:
            self._shut_down(loop, wake_fd)

    def _has_work(self, parking: bool) -> bool:
        if not self.alive:
            return False
        mailbox, inbox = self.mailbox, self.inbox
        if (mailbox is not None and mailbox.items) or inbox.own or inbox.stealable:
            return True
        return parking and not self._draining and self._steal()

    def _steal(self) -> bool:
        shards = self.runtime.shard_list
        if len(shards) < 2:
            return False
        self.steal_attempts += 1
        for shard in shards:  # the common case, every time a shard parks: nothing worth stealing anywhere
            if shard is not self and len(shard.inbox.stealable) >= MIN_STEAL_DEPTH - 1:
                break
        else:
            return False
        depths = [shard.stealable_backlog() for shard in shards]
        victim = self.runtime.scheduler.victim(self.index, depths)
        if victim is None:
            return False
        victim_inbox = shards[victim].inbox
        got = victim_inbox.steal(max(1, victim_inbox.stealable_depth // 2))
        if not got:
            return False
        self.stolen += len(got)
        self.inbox.adopt(got)
        self.woken_to_steal = False
        if shards[victim].stealable_backlog() >= MIN_STEAL_DEPTH:
            self.runtime.wake_a_thief(shards[victim])  # still deep: bring in one more thief
        return True

    def _on_wake(self) -> None:
        waker, mailbox, outbox, selector = self.waker, self.mailbox, self.outbox, self.selector
        assert waker is not None and mailbox is not None and outbox is not None and selector is not None
        waker.woken()
        inbox, runtime = self.inbox, self.runtime
        if mailbox.items or inbox.own or inbox.stealable:
            selector.spin_wanted = True  # serving cross-thread work (tickets, a channel's requests): spin first
        if mailbox.items:
            mailbox.drain()
        if self.woken_to_steal and len(inbox):
            self.woken_to_steal = False
            runtime.pass_on_theft(self)
        take, start = inbox.take, self._start
        freed = 0
        for _ in range(_BATCH):
            ticket = take()
            if ticket is None:
                break
            freed += 1
            if not ticket.is_async:  # a sync function may run long: let replies, waiters and thieves out first
                runtime.space_freed(freed)
                freed = 0
                outbox.flush()
                if inbox.stealable:
                    runtime.wake_a_thief(self)  # what waits behind it may run elsewhere
            start(ticket)
            if mailbox.items:  # a cancel or stop posted while the ticket ran: not after the whole batch
                mailbox.drain()
        if freed:
            runtime.space_freed(freed)
        if self._draining and not self.running and not len(inbox):
            self._stop_loop()

    def _start(self, ticket: Work[Any]) -> None:
        if not ticket.start_on(self):
            self.dropped += 1
            return
        self.started += 1
        self.running += 1
        try:
            result = ticket.run()
        except BaseException as exc:
            self._finished(ticket, None, exc)
            return
        cls = result.__class__
        if cls is _CoroutineType or (cls not in _PLAIN_RESULTS and _iscoroutine(result)):
            assert self.loop is not None
            task = self.loop.create_task(self._run_coroutine(ticket, result), context=ticket._context)
            task.add_done_callback(functools.partial(self._task_done, ticket, result))
            ticket._task = task
        else:
            self._finished(ticket, result, None)

    async def _run_coroutine(self, ticket: Work[Any], coro: Coroutine[Any, Any, Any]) -> None:
        try:
            value = await coro
        except BaseException as exc:
            self._coroutine_ended(ticket, None, exc)
        else:
            self._coroutine_ended(ticket, value, None)

    def _task_done(self, ticket: Work[Any], coro: Coroutine[Any, Any, Any], task: asyncio.Task[None]) -> None:
        if task.cancelled():  # cancelled before its first step: _run_coroutine's body never ran
            coro.close()
            self._coroutine_ended(ticket, None, asyncio.CancelledError())

    def _coroutine_ended(self, ticket: Work[Any], value: Any, error: BaseException | None) -> None:
        if isinstance(error, asyncio.CancelledError):
            self.cancelled += 1
            if self._stop_error is not None:
                error = self._stop_error()
        self._finished(ticket, value, error)
        if self._draining and not self.running and not len(self.inbox):
            self._stop_loop()

    def _finished(self, ticket: Work[Any], value: Any, error: BaseException | None) -> None:
        self.running -= 1
        self.completed += 1
        if ticket._cancel_requested and ticket._task is None:
            self.abandoned += 1
        ticket.finish(value, error, self.runtime.tally)

    def _begin_stop(self, drain: bool) -> None:
        if drain:
            self._draining = True
            if not self.running and not len(self.inbox):
                self._stop_loop()
        else:
            self._stop_error = self.runtime.closed_error
            self._stop_loop()

    def _stop_loop(self) -> None:
        assert self.loop is not None
        if self.alive:  # on the way out (_shut_down) the loop is no longer running: nothing to stop
            self.loop.stop()

    def _closing_error(self) -> ClosedError:
        if self.death is not None:
            err = ShardDiedError(f"spargio shard {self.index}'s thread died: {self.death!r}")
            err.__cause__ = self.death
            return err
        return self.runtime.closed_error()

    def _shut_down(self, loop: asyncio.AbstractEventLoop, wake_fd: int) -> None:
        self.alive = False
        self._stop_error = self._closing_error
        try:
            tally = self.runtime.tally
            for ticket in self.inbox.close(self._closing_error):
                if ticket.drop(self._closing_error(), tally):
                    self.dropped += 1
            assert self.mailbox is not None
            self.mailbox.drain()
            self._cancel_tasks(loop)
            for watcher in list(self.stop_watchers):
                watcher.shard_stopped(id(self))
            self.stop_watchers.clear()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.remove_reader(wake_fd)
        finally:
            assert self.waker is not None and self.outbox is not None
            self.outbox.uninstall()  # what the way out posted leaves now
            self.waker.close()  # closes wake_fd; no wake reaches this shard after this
            loop.close()
            asyncio.set_event_loop(None)
            _local.shard = None
            self.stopped.set_result(None)

    @staticmethod
    def _cancel_tasks(loop: asyncio.AbstractEventLoop) -> None:
        tasks = asyncio.all_tasks(loop)
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE))
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler(
                    {
                        "message": "unhandled exception in a task on a stopping spargio shard",
                        "exception": task.exception(),
                        "task": task,
                    }
                )
