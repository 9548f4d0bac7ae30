"""Batch reads and writes: many ops, one submission, one wakeup.

On the io_uring backend every op of a batch is prepared in a single C call
and goes to the kernel with the loop iteration's one ``io_uring_submit``; the
caller's task is woken once, when the last op completes.  The thread backend
runs them concurrently on its pool.

Cancellation cancels every op of the batch that is still in flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._backend import current_io
from ._args import MAX_CHUNK, check_length, check_offset, data_view
from ._file import AsyncFile, write_all

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["read_many", "write_many"]


def _fd_of(target: Any, files: list[AsyncFile]) -> tuple[int, bool]:
    """The fd of a request's target, and whether it needs aligned (O_DIRECT) memory;
    a file is added to ``files``, whose buffered writes go first."""
    if isinstance(target, AsyncFile):
        files.append(target)
        return target.fileno(), target.direct
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"expected an AsyncFile or an fd, not {type(target).__name__}")
    return target, False


async def read_many(requests: Iterable[tuple[Any, int, int]]) -> list[bytes]:
    """Read many ``(file_or_fd, offset, size)`` ranges in one submission.

    Requests naming an `AsyncFile` opened with O_DIRECT get aligned buffers
    (raw fds are assumed not to be O_DIRECT).  A named file's buffered writes are
    flushed first, as `AsyncFile.read_at` does.

    :return: one ``bytes`` per request, in order; shorter than asked only at EOF.
    :raises ValueError: a bad offset or size (nothing is submitted then).
    """
    aligned = False
    fds: list[int] = []
    offsets: list[int] = []
    sizes: list[int] = []
    files: list[AsyncFile] = []
    for target, offset, size in requests:
        fd, direct = _fd_of(target, files)
        fds.append(fd)
        aligned |= direct
        offsets.append(check_offset(offset))
        checked = check_length(size)
        if checked > MAX_CHUNK:
            raise ValueError(f"read_many sizes are limited to {MAX_CHUNK} bytes per request")
        sizes.append(checked)
    await _flush(files, drop_read_ahead=False)
    return await current_io().read_many(fds, offsets, sizes, aligned)


async def write_many(requests: Iterable[tuple[Any, int, Any]]) -> list[int]:
    """Write many ``(file_or_fd, offset, data)`` in one submission.

    Every byte is written: a short write is continued with further ops.
    On cancellation the outcome of each write still in flight is unknown.  A named
    file's buffered writes are flushed first, as `AsyncFile.write_at` does.

    :return: the number of bytes written per request (``len(data)``).
    """
    aligned = False
    fds: list[int] = []
    offsets: list[int] = []
    views: list[memoryview] = []
    files: list[AsyncFile] = []
    for target, offset, data in requests:
        fd, direct = _fd_of(target, files)
        fds.append(fd)
        aligned |= direct
        offsets.append(check_offset(offset))
        view = data_view(data)
        if view.nbytes > MAX_CHUNK:
            raise ValueError(f"write_many data is limited to {MAX_CHUNK} bytes per request")
        views.append(view)
    await _flush(files, drop_read_ahead=True)
    written = await current_io().write_many(fds, offsets, views, aligned)
    for i, n in enumerate(written):
        if n < views[i].nbytes:
            await write_all(fds[i], views[i][n:], offsets[i] + n, direct=aligned)
            written[i] = views[i].nbytes
    return written


async def _flush(files: list[AsyncFile], *, drop_read_ahead: bool) -> None:
    for file in files:
        if file._pending:
            await file.flush()
        if drop_read_ahead:
            file._ahead = b""
