"""``aiofiles.open`` on spargio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..fs._file import OpenCall, open_as
from ._files import AiofilesBinaryFile, AiofilesTextFile

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["open"]


def open(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[Any, int], int] | None = None,
    *,
    loop: object = None,
    executor: object = None,
) -> OpenCall:
    """``aiofiles.open``: ``await`` it (again, for the same file) or use it with
    ``async with``; the file is spargio's `AsyncFile` (binary) or `AsyncTextFile`
    (text), on the running loop's io_uring, with aiofiles' coroutine ``seekable()``,
    ``writable()``, ``isatty()`` (and text ``readable()``).

    ``loop=`` and ``executor=`` are accepted as aiofiles accepts them and unused: spargio
    does the I/O on the running loop's ring.  ``opener`` runs on spargio's blocking pool.
    """
    return open_as(
        AiofilesBinaryFile, AiofilesTextFile, file, mode, buffering, encoding, errors, newline, closefd, opener
    )
