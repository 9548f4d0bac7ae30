"""A bounded thread pool for the calls io_uring has no opcode for.

listdir, scandir, chmod, readlink, realpath and friends have no io_uring
opcode; they run here, on at most ``min(32, cpu_count + 4)`` threads shared by
the whole process (the same bound as asyncio's default executor, but a pool of
our own, so a service's default executor is not crowded out).  The thread
backend runs every op here.

Each loop's I/O object counts its calls with a `PoolCalls`: a call counts as
in flight until its thread is done with it, not until its caller stops
waiting, so `spargio.testing.settle` and a closing loop see work that a
cancelled caller left running.

Cancellation: a call that has not started is dropped; a call already running
in a thread cannot be interrupted: it finishes and its result is discarded.
A buffer lent to the call (``holding``) is released once the thread is done
with it, whichever comes first.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future

__all__ = ["PoolCalls", "executor", "limited"]

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0


def executor() -> ThreadPoolExecutor:
    """The shared pool, created on first use (and anew in a forked child)."""
    global _executor, _executor_pid
    pid = os.getpid()
    if _executor is None or _executor_pid != pid:
        with _lock:
            if _executor is None or _executor_pid != pid:
                workers = min(32, (os.cpu_count() or 1) + 4)
                _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spargio-blocking")
                _executor_pid = pid
    return _executor


async def limited(limiter: Any, call: Callable[..., Any], *args: Any) -> Any:
    """``await call(*args)``, holding ``limiter`` (anyio's ``CapacityLimiter``, or any
    async context manager) around it if one is given: anyio's ``limiter=``, for the
    calls that take a pool thread."""
    if limiter is None:
        return await call(*args)
    async with limiter:
        return await call(*args)


class PoolCalls:
    """One loop's calls on the shared pool, counted until their threads are done."""

    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0

    def started(self) -> None:
        with self.lock:
            self.count += 1

    def finished(self, _job: object = None) -> None:
        with self.lock:
            self.count -= 1

    def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        holding: memoryview | None = None,
        ended: Callable[[Future[T]], None] | None = None,
    ) -> Future[T]:
        """Start ``fn(*args)`` on the pool.

        When its thread is done: ``holding`` is released, then ``ended(job)``
        runs, then the call stops counting; all before the loop hears of the
        outcome (the loop's callback is added after these).
        """
        job = executor().submit(fn, *args)
        self.started()
        if holding is not None:
            job.add_done_callback(lambda _job: holding.release())
        if ended is not None:
            job.add_done_callback(ended)
        job.add_done_callback(self.finished)
        return job

    async def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        holding: memoryview | None = None,
        note_if_cancelled_running: str | None = None,
    ) -> T:
        """``fn(*args)`` on the pool, awaited.

        If the caller is cancelled before the call starts, it never runs; once
        it runs it finishes and its result is discarded, and the
        CancelledError then carries ``note_if_cancelled_running`` (for writes,
        whose outcome is unknown).
        """
        job = self.submit(fn, *args, holding=holding)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError as exc:
            if note_if_cancelled_running is not None and not job.cancelled():
                exc.add_note(note_if_cancelled_running)
            raise
