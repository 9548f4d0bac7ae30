"""Self-describing blocks for data-integrity tests (RELIABILITY row 26).

Each block carries the offset it was written at, a sequence number and the
crc32 of its payload, so a reader can tell a torn, misplaced or stale block
from a good one without keeping a copy of what was written.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import random

__all__ = ["BLOCK_HEADER", "check_block", "make_block"]

BLOCK_HEADER: Final = struct.Struct("<QQI")  # offset, sequence, crc32 of the payload


def make_block(offset: int, seq: int, rng: random.Random, size: int = 4096) -> bytes:
    """``size`` bytes: the header for (``offset``, ``seq``) and random payload from ``rng``."""
    payload = rng.randbytes(size - BLOCK_HEADER.size)
    return BLOCK_HEADER.pack(offset, seq, zlib.crc32(payload)) + payload


def check_block(block: bytes, offset: int) -> int:
    """The block's sequence number; `AssertionError` if it names another offset or its checksum is bad."""
    claimed, seq, crc = BLOCK_HEADER.unpack_from(block)
    assert claimed == offset, f"block at {offset} claims offset {claimed}"
    assert zlib.crc32(block[BLOCK_HEADER.size :]) == crc, f"bad checksum at {offset}"
    return int(seq)
