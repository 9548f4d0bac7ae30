"""Sizes shared by the I/O layers (the loop ring, the thread backend, spargio.fs)."""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_CHUNK", "MAX_OFFSET", "READ_GUESS"]

MAX_OFFSET: Final = 2**63 - 1
# One kernel read/write moves at most ~2 GiB (MAX_RW_COUNT); larger transfers
# are split into chunks of this size.  Read at call time, so tests can shrink it.
MAX_CHUNK = 1 << 30
# Whole-file reads start with one read of this size: files smaller than it take one op.
READ_GUESS: Final = 64 * 1024
