"""Tickets: one piece of work sent to a shard, and the caller's handle on it.

Theory of operation
-------------------
A `Ticket` is both the item that waits in a shard's inbox and the object the
caller awaits.  It lives on two threads, so every transition is made so that
exactly one side wins it:

* *Start or drop*: ``_claim`` is a one-element list; whoever pops it (the
  shard starting the work, or a caller cancelling it, or a shard closing its
  inbox) owns the ticket's fate.  ``list.pop`` is atomic, so queued work
  either starts or is dropped, never both.
* *Result*: the shard records the outcome and posts ``_resolve`` to the
  caller loop's mailbox (one wakeup for many results, see `spargio._wakeup`).
  ``_resolve`` runs on the caller's loop and sets the caller's future unless
  it is already done (cancelled), so a result that arrives after a cancel is
  dropped, never an ``InvalidStateError``.
* *Cancel* (``ticket.cancel()``, a cancelled ``await``, a ``wait`` timeout):
  queued work is dropped and never runs; a running coroutine is cancelled
  on its shard (through that shard's mailbox); a running sync function
  cannot be interrupted: it finishes, and its result is discarded and
  counted as abandoned.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ._errors import SpargioTimeout

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from ._wakeup import Mailbox, Tally

__all__ = ["Ticket"]

T = TypeVar("T")


class _Owner(Protocol):
    """What a ticket reports cancellations and timeouts to (the runtime)."""

    def _count(self, what: str) -> None: ...


class _Runner(Protocol):
    """What runs a started ticket (a shard): where a running ticket's cancel goes."""

    def post(self, fn: Callable[[Any], None], arg: Any) -> None: ...


class Ticket(Generic[T]):
    """Work submitted to a `Runtime`; ``await ticket`` gives its result.

    A ticket belongs to the event loop that submitted it: await it, and call
    its methods, from that loop.
    """

    __slots__ = (
        "__weakref__",
        "_args",
        "_cancel_requested",
        "_claim",
        "_context",
        "_error",
        "_fn",
        "_future",
        "_kwargs",
        "_owner",
        "_reply",
        "_runner",
        "_task",
        "_value",
        "seq",
        "stealable",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: asyncio.Future[T],
        reply: Mailbox,
        owner: _Owner,
        seq: int,
    ) -> None:
        self._fn: Callable[..., Any] | None = fn
        self._args = args
        self._kwargs = kwargs
        self._context = contextvars.copy_context()
        self._future = future
        self._reply = reply
        self._owner = owner
        self._claim = [True]
        self._runner: _Runner | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancel_requested = False
        self._value: Any = None
        self._error: BaseException | None = None
        self.seq = seq
        self.stealable = False

    def __repr__(self) -> str:
        fn = getattr(self._fn, "__qualname__", self._fn)
        state = "done" if self._future.done() else ("running" if not self._claim else "queued")
        return f"<Ticket #{self.seq} {fn} {state}>"

    # -- the caller's side (on the submitting loop) -----------------------

    def __await__(self) -> Generator[Any, None, T]:
        try:
            return (yield from self._future.__await__())
        except asyncio.CancelledError:
            self._cancel_work()
            raise

    def done(self) -> bool:
        """Whether the ticket has a result, an exception, or was cancelled."""
        return self._future.done()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def result(self) -> T:
        """The result, or raise the work's exception (`asyncio.InvalidStateError` if not done)."""
        return self._future.result()

    def exception(self) -> BaseException | None:
        return self._future.exception()

    def cancel(self, msg: object = None) -> bool:
        """Cancel the work: queued work never runs, a running coroutine is cancelled on its
        shard, a running sync function's result is discarded.  False if already done."""
        if not self._future.cancel(msg):
            return False
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
        try:
            async with asyncio.timeout(timeout):
                return await self
        except TimeoutError:
            self._owner._count("timeouts")
            raise SpargioTimeout(f"the work did not finish within {timeout} s; it was cancelled") from None

    def _cancel_work(self) -> None:
        if self._cancel_requested:
            return
        self._cancel_requested = True
        self._owner._count("cancelled")
        try:
            self._claim.pop()
        except IndexError:  # started (or finished): cancel it where it runs
            runner = self._runner
            if runner is not None:
                runner.post(Ticket._cancel_on_runner, self)
        else:  # never started: it never will
            self._release()

    # -- the shard's side --------------------------------------------------

    def claim(self, runner: _Runner) -> bool:
        """Take the ticket to start it on ``runner``; False if it was cancelled while queued."""
        self._runner = runner
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

    def run(self) -> Any:
        """Call the function in the submitter's context (a coroutine function returns its coroutine)."""
        fn = self._fn
        assert fn is not None
        return self._context.run(fn, *self._args, **self._kwargs)

    def finish(self, value: Any, error: BaseException | None, tally: Tally | None) -> None:
        """Record the outcome and send it to the submitting loop."""
        self._value = value
        self._error = error
        self._fn = None
        self._args = ()
        self._kwargs = {}
        self._reply.post(Ticket._resolve, self, tally)

    @staticmethod
    def _cancel_on_runner(ticket: Ticket[Any]) -> None:
        task = ticket._task
        if task is not None and not task.done():
            task.cancel()

    @staticmethod
    def _resolve(ticket: Ticket[Any]) -> None:
        future = ticket._future
        if not future.done():
            if ticket._error is None:
                future.set_result(ticket._value)
            else:
                future.set_exception(ticket._error)
        ticket._release()

    def _release(self) -> None:
        """Drop what the ticket holds so a finished ticket pins no memory (or cycles)."""
        self._value = self._error = self._fn = self._task = None
        self._args = ()
        self._kwargs = {}
