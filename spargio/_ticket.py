"""Tickets: the caller's handle on work done elsewhere, and the shard work item.

Theory of operation
-------------------
A `Ticket` is the caller's side of one piece of work (a function on a shard,
or a request through a `spargio.boundary` channel).  It lives on two
threads, so every transition is made so that exactly one side wins it:

* *Start or drop*: ``_claim`` is a one-element list; whoever pops it (the
  side starting the work, or a caller cancelling it, or a closing inbox)
  owns the ticket's fate.  ``list.pop`` is atomic, so queued work either
  starts or is dropped, never both.
* *Result*: the worker calls `finish`, which records the outcome, wakes any
  plain thread blocked in `result` and, for a ticket made on an event loop,
  posts ``_resolve`` to that loop's mailbox (one wakeup for many results,
  see `spargio._wakeup`).  ``_resolve`` sets the caller's future unless it
  is already done (cancelled), so a result that arrives after a cancel is
  dropped, never an ``InvalidStateError``; a loop that has closed is not
  woken at all.
* *Cancel* (``ticket.cancel()``, a cancelled ``await``, a ``wait`` timeout,
  a ``result(timeout=)`` that runs out): queued work is dropped and never
  runs; work that has started is told through `_cancel_started` (a shard
  cancels a running coroutine; a running sync function cannot be
  interrupted: it finishes, and its result is discarded and counted as
  abandoned; a channel request is marked ``cancelled`` for its server).
* A ticket made by a plain thread (no running loop) has no future: its
  outcome lives in the ticket, and `result` blocks on a lazily made event.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

from ._errors import SpargioTimeout
from ._wakeup import mailbox_for

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from ._wakeup import Mailbox, Tally

__all__ = ["Ticket", "Work"]

T = TypeVar("T")
_get_running_loop = asyncio._get_running_loop
_PENDING: Any = object()  # no outcome yet
_iscoroutinefunction = inspect.iscoroutinefunction
_CO_COROUTINE: Final = inspect.CO_COROUTINE


class _Owner(Protocol):
    """What a ticket reports cancellations and timeouts to (a runtime, a channel)."""

    def _count(self, what: str) -> None: ...


class _Runner(Protocol):
    """What runs a started ticket (a shard): where a running ticket's cancel goes."""

    def post(self, fn: Callable[[Any], None], arg: Any) -> None: ...


class Ticket(Generic[T]):
    """The caller's handle on work running elsewhere; ``await ticket`` gives its result.

    A ticket made on an event loop belongs to that loop: await it, and call
    its methods, from there.  A ticket made by a plain thread (no running
    loop) is waited for with ``result(timeout=)``, which blocks.
    """

    __slots__ = (
        "__weakref__",
        "_cancel_requested",
        "_claim",
        "_error",
        "_event",
        "_future",
        "_outcome_set",
        "_owner",
        "_reply",
        "_value",
    )

    def __init__(self, owner: _Owner) -> None:
        loop = _get_running_loop()
        self._future: asyncio.Future[T] | None = None
        self._reply: Mailbox | None = None
        if loop is not None:
            self._future = loop.create_future()
            self._reply = mailbox_for(loop)
        self._owner = owner
        self._claim = [True]
        self._cancel_requested = False
        # A plain thread's ticket: popped by whoever records the outcome (finish, or the thread's cancel).
        self._outcome_set: list[bool] | None = None if loop is not None else [True]
        self._value: Any = _PENDING
        self._error: BaseException | None = None
        self._event: threading.Event | None = None

    def __repr__(self) -> str:
        state = "done" if self.done() else ("running" if not self._claim else "queued")
        return f"<{type(self).__name__} {state}>"

    # -- the caller's side -------------------------------------------------

    def __await__(self) -> Generator[Any, None, T]:
        future = self._future
        if future is None:
            raise RuntimeError("this ticket was made outside an event loop: use ticket.result(timeout=)")
        try:
            return (yield from future.__await__())
        except asyncio.CancelledError:
            self._cancel_work()
            raise

    def done(self) -> bool:
        """Whether the ticket has a result, an exception, or was cancelled."""
        future = self._future
        if future is not None:
            return future.done()
        return self._has_outcome()

    def cancelled(self) -> bool:
        future = self._future
        if future is not None:
            return future.cancelled()
        return isinstance(self._error, asyncio.CancelledError)

    def result(self, timeout: float | None = None) -> T:
        """The result, or raise the work's exception.

        On the ticket's own loop this never blocks: a ticket not done yet
        raises `asyncio.InvalidStateError` (await it instead).  Anywhere else
        (a plain thread) it blocks until the outcome arrives, at most
        ``timeout`` seconds.

        :raises SpargioTimeout: ``timeout`` ran out; the work was cancelled as by `cancel`.
        :raises asyncio.CancelledError: the ticket was cancelled.
        """
        future = self._future
        if future is not None and (future.done() or _get_running_loop() is future.get_loop()):
            return future.result()
        if not self._wait_finished(timeout):
            self._time_out(timeout)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The work's exception (None if it returned); waits as `result` does."""
        try:
            self.result(timeout)
        except (asyncio.CancelledError, SpargioTimeout):
            raise
        except BaseException as exc:
            return exc
        return None

    def cancel(self, msg: object = None) -> bool:
        """Cancel the work: queued work never runs; work that started is told (a running
        coroutine is cancelled on its shard, a running sync function's result is discarded).
        False if the ticket was already done."""
        future = self._future
        if future is not None:
            if not future.cancel(msg):
                return False
        else:
            if not self._may_record_outcome():
                return False
            self._error = asyncio.CancelledError(msg) if msg is not None else asyncio.CancelledError()
            self._set_event()
        self._cancel_work()
        return True

    async def wait(self, timeout: float | None = None) -> T:
        """Await the result for at most ``timeout`` seconds.

        :raises SpargioTimeout: the time ran out; the work was cancelled as
            by `cancel` (queued: dropped; running coroutine: cancelled; running
            sync function: result discarded).
        """
        if timeout is None:
            return await self
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await self
        except TimeoutError:
            if not deadline.expired():
                raise  # the work's own TimeoutError
            raise self._timeout_error(timeout) from None

    def _time_out(self, timeout: float | None) -> None:
        """`result`'s time ran out on a thread without the ticket's loop: cancel, unless the outcome won."""
        if self._future is None:
            cancelled = self.cancel()
        else:  # a loop's ticket: its future may only be touched on its loop
            cancelled = not self._has_outcome()
            if cancelled:
                assert self._reply is not None
                self._reply.post(Ticket._cancel_on_its_loop, self)
        if cancelled:
            raise self._timeout_error(timeout)

    @staticmethod
    def _cancel_on_its_loop(ticket: Ticket[Any]) -> None:
        ticket.cancel()

    def _timeout_error(self, timeout: float | None) -> SpargioTimeout:
        self._owner._count("timeouts")
        return SpargioTimeout(f"the work did not finish within {timeout} s; it was cancelled")

    def _wait_finished(self, timeout: float | None) -> bool:
        """Block this (loop-less) thread until `finish` ran; False at ``timeout``."""
        if self._has_outcome():
            return True
        event = self._event
        if event is None:
            event = self._event = threading.Event()
        # finish() sets the outcome, then reads _event: either it sees ours, or we see its outcome.
        if self._has_outcome():
            return True
        return event.wait(timeout)

    def _has_outcome(self) -> bool:
        """`finish` (or a plain thread's cancel) has recorded the outcome."""
        return self._value is not _PENDING or self._error is not None

    def _may_record_outcome(self) -> bool:
        """A plain thread's ticket: True for the one caller (finish or cancel) that records the outcome."""
        slot = self._outcome_set
        assert slot is not None
        try:
            slot.pop()
        except IndexError:
            return False
        return True

    def _set_event(self) -> None:
        event = self._event
        if event is not None:
            event.set()

    def _cancel_work(self) -> None:
        if self._cancel_requested:
            return
        self._cancel_requested = True
        self._owner._count("cancelled")
        try:
            self._claim.pop()
        except IndexError:  # started (or finished): tell whoever runs it
            self._cancel_started()
        else:  # never started: it never will
            self._dropped()

    def _cancel_started(self) -> None:
        """The work had started when it was cancelled (subclasses pass the cancel on)."""

    def _dropped(self) -> None:
        """The work was cancelled before it started and will never run (subclasses let go of it)."""

    # -- the worker's side ---------------------------------------------------

    def claim(self) -> bool:
        """Take the ticket to start its work; False if it was cancelled while queued."""
        try:
            self._claim.pop()
        except IndexError:
            return False
        return True

    def drop(self, error: BaseException, tally: Tally | None) -> bool:
        """Fail a ticket that never started with ``error``; False if someone else took it."""
        try:
            self._claim.pop()
        except IndexError:
            return False
        self.finish(None, error, tally)
        return True

    def finish(self, value: Any, error: BaseException | None, tally: Tally | None) -> None:
        """Record the outcome (from any thread) and send it to the caller."""
        reply = self._reply
        if reply is None:  # a plain thread's ticket: the outcome lives here
            if not self._may_record_outcome():  # cancelled by its thread: drop the outcome
                return
            self._error = error
            self._value = value
            self._set_event()
            return
        self._error = error
        self._value = value
        if self._event is not None:  # a plain thread also waits in result() (rare): wake it
            self._event.set()
        reply.post(Ticket._resolve, self, tally)

    @staticmethod
    def _resolve(ticket: Ticket[Any]) -> None:
        future = ticket._future
        assert future is not None
        if not future.done():
            if ticket._error is None:
                future.set_result(ticket._value)
            else:
                future.set_exception(ticket._error)
        ticket._release()

    def _release(self) -> None:
        """Drop what the ticket holds for its work once the caller has the outcome."""


def is_coroutine_function(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` only makes a coroutine (so starting it never blocks a shard).

    Plain functions and bound methods are told by their code's flags (a
    hot path pays nanoseconds, not `inspect`'s microsecond); anything else
    (partials, callable objects, builtins) asks `inspect`.  A function that
    is not a coroutine function but returns a coroutine is still run as
    one; it is only treated, when it starts, as work that may block.
    """
    code = getattr(fn, "__code__", None)
    if code is not None and not hasattr(fn, "_is_coroutine_marker"):
        return bool(code.co_flags & _CO_COROUTINE)
    return _iscoroutinefunction(fn)


class Work(Ticket[T]):
    """A function (sync or coroutine) to run on a shard; the item in a shard's inbox."""

    __slots__ = ("_args", "_context", "_fn", "_kwargs", "_runner", "_task", "is_async", "seq", "stealable")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], owner: _Owner, seq: int
    ) -> None:
        super().__init__(owner)
        self.is_async = is_coroutine_function(fn)
        self._fn: Callable[..., Any] | None = fn
        self._args = args
        self._kwargs = kwargs
        self._context = contextvars.copy_context()
        self._runner: _Runner | None = None
        self._task: asyncio.Task[None] | None = None
        self.seq = seq
        self.stealable = False

    def __repr__(self) -> str:
        fn = getattr(self._fn, "__qualname__", self._fn)
        state = "done" if self.done() else ("running" if not self._claim else "queued")
        return f"<Ticket #{self.seq} {fn} {state}>"

    def _cancel_started(self) -> None:
        runner = self._runner
        if runner is not None:
            runner.post(Work._cancel_on_runner, self)

    def _dropped(self) -> None:
        self._release()

    def start_on(self, runner: _Runner) -> bool:
        """Claim the ticket to run it on ``runner``; False if it was cancelled while queued."""
        self._runner = runner
        return self.claim()

    def run(self) -> Any:
        """Call the function in the submitter's context (a coroutine function returns its coroutine)."""
        fn = self._fn
        assert fn is not None
        return self._context.run(fn, *self._args, **self._kwargs)

    def finish(self, value: Any, error: BaseException | None, tally: Tally | None) -> None:
        self._fn = None
        self._args = ()
        self._kwargs = {}
        super().finish(value, error, tally)

    @staticmethod
    def _cancel_on_runner(ticket: Work[Any]) -> None:
        task = ticket._task
        if task is not None and not task.done():
            task.cancel()

    def _release(self) -> None:
        """Drop what the ticket holds so a finished ticket pins no memory (or cycles)."""
        self._fn = self._task = None
        self._args = ()
        self._kwargs = {}
