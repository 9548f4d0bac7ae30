"""aiofiles' ``loop=`` and ``executor=`` keywords on spargio's native functions."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")

NOTE = (
    "\n\n``loop=`` and ``executor=`` are accepted as aiofiles accepts them: spargio does the work on the "
    "running loop's io_uring (or its own bounded pool where there is no opcode), so both are unused."
)


def aiofiles_signature(func: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
    """``func``, also taking (and not using) aiofiles' ``loop=`` and ``executor=`` keywords."""

    @functools.wraps(func)
    async def call(*args: Any, loop: object = None, executor: object = None, **kwargs: Any) -> T:
        return await func(*args, **kwargs)

    call.__doc__ = (func.__doc__ or "") + NOTE
    return call
