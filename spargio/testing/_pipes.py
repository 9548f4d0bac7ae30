"""Pipes that make an op wait: a full one for writes (an empty one does it for reads)."""

from __future__ import annotations

import os

__all__ = ["fill_pipe"]


def fill_pipe(w: int) -> int:
    """Write into pipe end ``w`` until it is full; return how many bytes went in.

    ``w`` keeps its blocking mode: a blocking write into it now blocks until
    the other end reads, which is what a test of waiting ops wants.
    """
    was_blocking = os.get_blocking(w)
    os.set_blocking(w, False)
    filled = 0
    try:
        while True:
            filled += os.write(w, b"x" * 65536)
    except BlockingIOError:
        return filled
    finally:
        os.set_blocking(w, was_blocking)
