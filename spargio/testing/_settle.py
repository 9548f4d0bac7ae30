"""Wait, deterministically, until the running loop's spargio ops have all ended."""

from __future__ import annotations

import asyncio
import time

from .._backend import current_io

__all__ = ["settle"]


async def settle(timeout: float = 5.0) -> None:
    """Yield to the loop until nothing spargio started on it is still in flight.

    After a cancel or a timeout, the cancelled op's final CQE (and that of the
    IORING_OP_ASYNC_CANCEL) arrive a loop iteration or two later; tests that
    check the books call this first instead of sleeping and hoping.

    :raises TimeoutError: ops are still in flight after ``timeout`` seconds.
    """
    io = current_io()
    deadline = time.monotonic() + timeout
    while io.in_flight:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{io.in_flight} spargio ops still in flight after {timeout}s")
        await asyncio.sleep(0 if io.backend == "io_uring" else 0.001)
