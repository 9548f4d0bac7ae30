"""Books that must balance: ops, fds, rings and shard threads.

``Books.take()`` snapshots the process; ``Books.check()`` (after the test)
raises `AssertionError` naming what did not balance: ops still in flight on
any loop ring, ops started but not completed, file descriptors opened and not
closed, io_uring rings created and not closed, or shard threads still running.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass, field

from .. import native
from .._backend import loop_ios

__all__ = ["Books", "open_fds", "open_rings", "shard_threads"]


def open_fds() -> set[int]:
    """The fds this process has open now."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def open_rings() -> set[int]:
    """ids of the `Ring` objects not yet closed."""
    if native.IMPORT_ERROR is not None:
        return set()
    return {id(ring) for ring in native.ring.open_rings}


def shard_threads() -> set[threading.Thread]:
    """The shard threads that are running now."""
    return {t for t in threading.enumerate() if t.name.startswith("spargio-shard-")}


def _ring_counts() -> tuple[int, int, int]:
    started = completed = in_flight = 0
    for io in loop_ios():
        ring = getattr(io, "ring", None)
        if ring is not None:
            started += ring.ops_started
            completed += ring.ops_completed
            in_flight += io.in_flight
        else:
            in_flight += io.in_flight
    return started, completed, in_flight


@dataclass
class Books:
    fds: set[int] = field(default_factory=set)
    rings: set[int] = field(default_factory=set)
    threads: set[threading.Thread] = field(default_factory=set)

    @classmethod
    def take(cls) -> Books:
        return cls(fds=open_fds(), rings=open_rings(), threads=shard_threads())

    def check(self, *, ignore_fds: set[int] | None = None, thread_grace: float = 2.0) -> None:
        problems = []
        # A shard thread sets its stopped future just before it returns: give it a moment.
        deadline = time.monotonic() + thread_grace
        while (shard_threads() - self.threads) and time.monotonic() < deadline:
            time.sleep(0.005)
        gc.collect()
        threads = shard_threads() - self.threads
        if threads:
            problems.append(f"shard threads still running: {sorted(t.name for t in threads)}")
        started, completed, in_flight = _ring_counts()
        if in_flight:
            problems.append(f"{in_flight} ops still in flight")
        if started != completed:
            problems.append(f"ops started ({started}) != ops completed ({completed})")
        live_loop_rings = {id(ring) for ring in (getattr(io, "ring", None) for io in loop_ios()) if ring is not None}
        rings = open_rings() - self.rings - live_loop_rings
        if rings:
            problems.append(f"{len(rings)} io_uring rings created and not closed")
        leaked = open_fds() - self.fds - (ignore_fds or set())
        leaked = {fd for fd in leaked if not _is_ring_fd(fd)}
        if leaked:
            problems.append(
                f"fds opened and not closed: {sorted(leaked)} -> {[_describe(fd) for fd in sorted(leaked)]}"
            )
        if problems:
            raise AssertionError("books do not balance: " + "; ".join(problems))


def _describe(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def _is_ring_fd(fd: int) -> bool:
    """Rings and their eventfds of loops that are still alive are not leaks."""
    target = _describe(fd)
    live = {getattr(io, "_eventfd", -1) for io in loop_ios()} | {
        ring.fd for ring in (getattr(io, "ring", None) for io in loop_ios()) if ring is not None and not ring.closed
    }
    return fd in live and target.startswith("anon_inode:")
