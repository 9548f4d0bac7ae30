"""Helpers for testing code that uses spargio."""

from __future__ import annotations

from ._books import Books as Books
from ._books import open_fds as open_fds
from ._seccomp import block_io_uring as block_io_uring
from ._settle import settle as settle

__all__ = ["Books", "block_io_uring", "open_fds", "settle"]
