"""`wrap_file`: an async face for a synchronous file object, its calls on the blocking pool.

A Python file object (``sys.stdout``, a ``BytesIO``, a file some library opened)
has its own buffer and position, which spargio's io_uring ops would bypass; so
its methods run as they are, on spargio's bounded pool, one thread hop each
(what anyio's ``wrap_file`` and aiofiles' ``wrap`` do).  For a file you open
yourself, `spargio.fs.open` (or ``fs.open(fd)``) does the I/O on the ring.

Cancellation: a call that has not started is dropped; one already running
finishes in its thread and its result is discarded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .._backend import current_io
from .._blocking import limited

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = ["WrappedFile", "wrap_file"]


class WrappedFile:
    """``file``'s methods as coroutines run on the blocking pool (holding ``limiter`` if
    given); its other attributes as they are.  ``async with``, ``async for`` work."""

    # The methods that do I/O (anyio's AsyncFile's); others are the file's own.
    _ASYNC: ClassVar[frozenset[str]] = frozenset(
        {
            "read",
            "read1",
            "readline",
            "readlines",
            "readinto",
            "readinto1",
            "write",
            "writelines",
            "truncate",
            "seek",
            "tell",
            "flush",
            "close",
            "peek",
            "readall",
        }
    )

    def __init__(self, file: Any, *, limiter: Any = None) -> None:
        self._file = file
        self._async_names = self._ASYNC
        self.limiter = limiter

    @property
    def wrapped(self) -> Any:
        """The file object itself."""
        return self._file

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._file, name)
        if name in self._async_names and callable(attribute):
            return self._pooled(attribute)
        return attribute

    def _pooled(self, method: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any) -> Any:
            return await limited(self.limiter, current_io().run_blocking, method, *args)

        call.__name__ = getattr(method, "__name__", "call")
        return call

    async def aclose(self) -> None:
        """Close the file (on the pool: its close may flush)."""
        await self._pooled(self._file.close)()

    def __repr__(self) -> str:
        return f"<spargio.fs.WrappedFile {self._file!r}>"

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        line = await self._pooled(self._file.readline)()
        if not line:
            raise StopAsyncIteration
        return line

    async def __aenter__(self) -> WrappedFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def wrap_file(file: Any, *, limiter: Any = None) -> WrappedFile:
    """anyio's ``wrap_file``: ``file`` (an open synchronous file object) with its
    methods as coroutines on spargio's blocking pool."""
    return WrappedFile(file, limiter=limiter)
