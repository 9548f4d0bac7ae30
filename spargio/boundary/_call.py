"""`call`, `submit`, `submit_nowait`: one function call moved into the shard pool.

All three run ``fn(*args, **kwargs)`` on a shard of ``runtime`` (default: the
runtime of the enclosing `spargio.run`, else the process's default runtime,
started on first use).  ``fn`` may be a sync function (it runs on the
shard's thread) or a coroutine function (it runs as a task on the shard's
loop).  The caller's contextvars are copied into the work, as
`asyncio.to_thread` does; changes made there stay there.  ``timeout``,
``placement`` and ``runtime`` are spargio's keywords: they are never passed
on to ``fn``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from .._runtime import Runtime, current_runtime
from .._steal import Stealable

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from .._steal import Placement
    from .._ticket import Ticket

__all__ = ["call", "submit", "submit_nowait"]

T = TypeVar("T")
_STEALABLE: Final = Stealable()


@overload
async def call(
    fn: Callable[..., Coroutine[Any, Any, T]],
    /,
    *args: Any,
    timeout: float | None = None,
    placement: Placement = ...,
    runtime: Runtime | None = None,
    **kwargs: Any,
) -> T: ...
@overload
async def call(
    fn: Callable[..., T],
    /,
    *args: Any,
    timeout: float | None = None,
    placement: Placement = ...,
    runtime: Runtime | None = None,
    **kwargs: Any,
) -> T: ...
async def call(
    fn: Callable[..., Any],
    /,
    *args: Any,
    timeout: float | None = None,
    placement: Placement = _STEALABLE,
    runtime: Runtime | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` on the pool and return its result.

    Exceptions from ``fn`` arrive with their type and ``fn``'s frames in the
    traceback.  If the inbox is full, waits for space.

    On cancel or timeout the work is cancelled: not started yet, it is
    dropped and never runs; a running coroutine is cancelled on its shard;
    a running sync function cannot be interrupted: it finishes, and its
    result is discarded and counted (``stats().abandoned``).

    :raises SpargioTimeout: ``timeout`` seconds passed (waiting for space
        counts); the work was cancelled as above.
    :raises ClosedError: the runtime is closed (or closed while the work waited).
    """
    rt = runtime if runtime is not None else current_runtime()
    return await rt._call(fn, args, kwargs, placement, timeout)


@overload
async def submit(
    fn: Callable[..., Coroutine[Any, Any, T]],
    /,
    *args: Any,
    placement: Placement = ...,
    runtime: Runtime | None = None,
    **kwargs: Any,
) -> Ticket[T]: ...
@overload
async def submit(
    fn: Callable[..., T], /, *args: Any, placement: Placement = ..., runtime: Runtime | None = None, **kwargs: Any
) -> Ticket[T]: ...
async def submit(
    fn: Callable[..., Any],
    /,
    *args: Any,
    placement: Placement = _STEALABLE,
    runtime: Runtime | None = None,
    **kwargs: Any,
) -> Ticket[Any]:
    """Queue ``fn(*args, **kwargs)`` on the pool, waiting for inbox space; returns its `Ticket`.

    ``await ticket`` (or ``await ticket.wait(timeout=)``) gives the result;
    ``ticket.cancel()`` cancels the work as `call` describes.  If the caller
    is cancelled while it waits for space, nothing was submitted.
    """
    rt = runtime if runtime is not None else current_runtime()
    return await rt.submit(fn, *args, placement=placement, **kwargs)


@overload
def submit_nowait(
    fn: Callable[..., Coroutine[Any, Any, T]],
    /,
    *args: Any,
    placement: Placement = ...,
    runtime: Runtime | None = None,
    **kwargs: Any,
) -> Ticket[T]: ...
@overload
def submit_nowait(
    fn: Callable[..., T], /, *args: Any, placement: Placement = ..., runtime: Runtime | None = None, **kwargs: Any
) -> Ticket[T]: ...
def submit_nowait(
    fn: Callable[..., Any],
    /,
    *args: Any,
    placement: Placement = _STEALABLE,
    runtime: Runtime | None = None,
    **kwargs: Any,
) -> Ticket[Any]:
    """Queue ``fn(*args, **kwargs)`` on the pool now, or raise `OverloadedError` at once.

    Works from an event loop (await the ticket) and from a plain thread
    (``ticket.result(timeout=)`` blocks; a timeout there cancels the work).

    :raises OverloadedError: the inbox(es) the placement allows are full.
    """
    rt = runtime if runtime is not None else current_runtime()
    return rt.spawn(fn, *args, placement=placement, **kwargs)
