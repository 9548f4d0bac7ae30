"""WaitQueue: parties waiting for a condition, each on its own event loop or plain thread.

Theory of operation
-------------------
A bounded queue needs two kinds of waiting: receivers wait for an item,
senders wait for space.  The waiting side may be the service's loop, a
shard's loop, or a plain thread; the side that makes the condition true may
be any other.  A `WaitQueue` holds the waiters in arrival order and
`notify` wakes the oldest:

* a waiter on a loop is a future, set through that loop's mailbox (one
  wakeup for everything posted to the loop together; set directly when the
  notifier runs on the same loop);
* a waiter on a plain thread is a `threading.Event`.

The condition is never handed over with the notification: a woken waiter
tries again (`wait_for` loops on an ``attempt`` function that takes the
item or the slot, or returns None).  So a waiter that gives up (timeout,
cancel) can never take an item or a slot with it; if it had been notified,
it passes the notification on to the next waiter, so nobody sleeps while
the condition holds.  A waiter enlists *before* its last attempt, so a
notification that lands between that attempt and the wait is not missed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, TypeVar

from ._wakeup import mailbox_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._wakeup import Mailbox

T = TypeVar("T")

__all__ = ["WaitQueue", "Waiter"]

_get_running_loop = asyncio._get_running_loop


class Waiter:
    """One party's place in a `WaitQueue`."""

    __slots__ = ("event", "future", "loop", "mailbox", "notified")

    def __init__(self) -> None:
        self.loop = _get_running_loop()
        self.notified = False
        self.future: asyncio.Future[None] | None = None
        self.mailbox: Mailbox | None = None
        self.event: threading.Event | None = None
        if self.loop is not None:
            self.future = self.loop.create_future()
            self.mailbox = mailbox_for(self.loop)
        else:
            self.event = threading.Event()

    def wake(self) -> None:
        """Wake the waiter (from any thread)."""
        if self.event is not None:
            self.event.set()
            return
        assert self.future is not None and self.mailbox is not None
        if _get_running_loop() is self.loop:
            _set(self.future)
        else:
            self.mailbox.post(_set, self.future)

    async def wait(self, timeout: float | None) -> bool:
        """Wait on the enlisting loop until woken; False at ``timeout`` (cancellation propagates)."""
        assert self.future is not None
        if timeout is None:
            await self.future
            return True
        if timeout <= 0:
            return self.future.done()
        try:
            async with asyncio.timeout(timeout):
                await self.future
        except TimeoutError:
            return False
        return True

    def wait_blocking(self, timeout: float | None) -> bool:
        """Block the enlisting plain thread until woken; False at ``timeout``."""
        assert self.event is not None
        return self.event.wait(timeout)


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class WaitQueue:
    """Waiters for one condition, woken oldest first (thread-safe)."""

    __slots__ = ("_lock", "_waiters", "waiting")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: deque[Waiter] = deque()
        self.waiting = self._waiters  # read-only outside: its truth is the cheap "anyone waiting?" check

    def __len__(self) -> int:
        return len(self._waiters)

    async def wait_for(self, attempt: Callable[[], T | None], timeout: float | None) -> T | None:
        """Call ``attempt`` until it returns something, waiting for a notification between
        tries; None when ``timeout`` runs out.  Cancellation propagates; either way a
        waiter that leaves takes nothing with it and passes on a notification it got."""
        deadline = _deadline(timeout)
        while True:
            got, waiter = self._attempt_or_enlist(attempt)
            if waiter is None:
                return got
            try:
                woke = await waiter.wait(_remaining(deadline))
            except BaseException:
                self._leave(waiter)
                raise
            if not woke:
                self._leave(waiter)
                return attempt()

    def wait_for_blocking(self, attempt: Callable[[], T | None], timeout: float | None) -> T | None:
        """`wait_for` for a plain thread: blocks between tries."""
        deadline = _deadline(timeout)
        while True:
            got, waiter = self._attempt_or_enlist(attempt)
            if waiter is None:
                return got
            if not waiter.wait_blocking(_remaining(deadline)):
                self._leave(waiter)
                return attempt()

    def _attempt_or_enlist(self, attempt: Callable[[], T | None]) -> tuple[T | None, Waiter | None]:
        """What ``attempt`` got, or a waiter enlisted before one last failed attempt."""
        got = attempt()
        if got is not None:
            return got, None
        waiter = self._enlist()
        got = attempt()
        if got is not None:
            self._leave(waiter)
            return got, None
        return None, waiter

    def _enlist(self) -> Waiter:
        waiter = Waiter()
        with self._lock:
            self._waiters.append(waiter)
        return waiter

    def _leave(self, waiter: Waiter) -> None:
        with self._lock:
            if not waiter.notified:
                self._waiters.remove(waiter)
                return
        self.notify()  # woken, but not taking what the wake was for: the next waiter may

    def notify(self, n: int = 1) -> None:
        """Wake the ``n`` oldest waiters (the condition they wait for may now hold)."""
        if not self._waiters:
            return
        with self._lock:
            woken: list[Waiter] = []
            while self._waiters and len(woken) < n:
                waiter = self._waiters.popleft()
                waiter.notified = True
                woken.append(waiter)
        for waiter in woken:
            waiter.wake()

    def notify_all(self) -> None:
        """Wake every waiter (the queue closed: they all look again and find out)."""
        self.notify(len(self._waiters) + 1)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
