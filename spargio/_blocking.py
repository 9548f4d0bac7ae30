"""A bounded thread pool for the calls io_uring has no opcode for.

listdir, scandir, chmod, readlink, realpath and friends have no io_uring
opcode; they run here, on at most ``min(32, cpu_count + 4)`` threads shared by
the whole process (the same bound as asyncio's default executor, but a pool of
our own, so a service's default executor is not crowded out).

Cancellation: a call that has not started is dropped; a call already running
in a thread cannot be interrupted: it finishes and its result is discarded.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["executor", "run_blocking"]

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


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the shared pool with the caller's contextvars."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await loop.run_in_executor(executor(), ctx.run, fn, *args)
