"""Argument checks shared by every file operation, done before anything is submitted.

io_uring reads an offset of -1 as "the current file position" and silently
truncates lengths to 32 bits, so bad values must be refused here, never passed on.
"""

from __future__ import annotations

import os
from typing import Any

from .._limits import MAX_CHUNK, MAX_OFFSET

__all__ = ["MAX_CHUNK", "MAX_OFFSET", "check_length", "check_offset", "data_view", "fspath_bytes"]


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def check_offset(offset: object) -> int:
    """A file offset: an int in [0, 2**63).

    :raises TypeError: not an int (bools are refused too).
    :raises ValueError: negative.
    :raises OverflowError: 2**63 or more.
    """
    value = _int(offset, "offset")
    if value < 0:
        raise ValueError(f"offset must be >= 0, not {value}")
    if value > MAX_OFFSET:
        raise OverflowError(f"offset {value} does not fit in a signed 64-bit file offset")
    return value


def check_length(length: object, what: str = "size") -> int:
    """A byte count: an int >= 0 (callers handle their own -1 meaning "all")."""
    value = _int(length, what)
    if value < 0:
        raise ValueError(f"{what} must be >= 0, not {value}")
    if value > MAX_OFFSET:
        raise OverflowError(f"{what} {value} is larger than any file")
    return value


def data_view(data: Any) -> memoryview:
    """The bytes to write, as a flat byte view.

    :raises TypeError: ``data`` is a str or does not support the buffer protocol.
    """
    if isinstance(data, str):
        raise TypeError("write() needs a bytes-like object, not str (open the file in text mode)")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"write() needs a bytes-like object, not {type(data).__name__}") from None
    return view if view.format == "B" and view.ndim == 1 and view.contiguous else view.cast("B")


def fspath_bytes(path: Any) -> bytes:
    """A path (str, bytes or os.PathLike) as bytes, refusing embedded NULs."""
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("embedded null byte in path")
    return raw
