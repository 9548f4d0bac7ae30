"""Helpers for testing code that uses spargio."""

from __future__ import annotations

from ._blocks import check_block as check_block
from ._blocks import make_block as make_block
from ._books import Books as Books
from ._books import open_fds as open_fds
from ._books import open_rings as open_rings
from ._books import shard_threads as shard_threads
from ._faults import ShardKilled as ShardKilled
from ._faults import kill_shard as kill_shard
from ._pipes import fill_pipe as fill_pipe
from ._seccomp import block_io_uring as block_io_uring
from ._settle import settle as settle

__all__ = [
    "Books",
    "ShardKilled",
    "block_io_uring",
    "check_block",
    "fill_pipe",
    "kill_shard",
    "make_block",
    "open_fds",
    "open_rings",
    "settle",
    "shard_threads",
]
