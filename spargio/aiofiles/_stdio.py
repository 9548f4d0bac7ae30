"""aiofiles' ``stdin``, ``stdout``, ``stderr`` (and ``_bytes`` forms) on spargio.

Each call looks up ``sys.stdout`` (or its ``.buffer``) when it is made, as
aiofiles' do, so a replaced ``sys.stdout`` (pytest's capture, a redirect) is
the one written to; and it calls that object's own method on spargio's blocking
pool.  Not on the ring: ``sys.stdout`` has a buffer of its own, shared with
``print``, and writing under it would reorder the output.
"""

from __future__ import annotations

import sys
from typing import Any

from .._backend import current_io

__all__ = ["stderr", "stderr_bytes", "stdin", "stdin_bytes", "stdout", "stdout_bytes"]

_IO_METHODS = frozenset(
    {
        "close",
        "flush",
        "isatty",
        "read",
        "readable",
        "readline",
        "readlines",
        "seek",
        "seekable",
        "tell",
        "truncate",
        "write",
        "writable",
        "writelines",
        "read1",
        "readinto",
        "peek",
    }
)


class _IndirectStream:
    """``sys.<name>`` (or its ``.buffer``), looked up at each call."""

    def __init__(self, name: str, *, binary: bool) -> None:
        self._name = name
        self._binary = binary

    def _target(self) -> Any:
        stream = getattr(sys, self._name)
        return stream.buffer if self._binary else stream

    def __getattr__(self, name: str) -> Any:
        if name not in _IO_METHODS:
            return getattr(self._target(), name)

        async def call(*args: Any) -> Any:
            method = getattr(self._target(), name)
            return await current_io().run_blocking(method, *args)

        call.__name__ = name
        return call

    def __repr__(self) -> str:
        return f"<spargio.aiofiles.{self._name}{'_bytes' if self._binary else ''}>"


stdin = _IndirectStream("stdin", binary=False)
stdout = _IndirectStream("stdout", binary=False)
stderr = _IndirectStream("stderr", binary=False)
stdin_bytes = _IndirectStream("stdin", binary=True)
stdout_bytes = _IndirectStream("stdout", binary=True)
stderr_bytes = _IndirectStream("stderr", binary=True)
