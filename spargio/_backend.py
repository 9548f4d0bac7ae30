"""Which backend runs, why, and the per-loop I/O object.

The choice is made once per process, on first use, from (in order) the
``backend=`` given to `configure`, the ``SPARGIO_BACKEND`` environment
variable (``io_uring``, ``threads`` or ``auto``), and ``auto``:

* ``auto`` sets up a probe ring.  If the kernel refuses (ENOSYS: no io_uring
  or a seccomp filter; EPERM: the ``kernel.io_uring_disabled`` sysctl or a
  seccomp filter; ENOMEM: RLIMIT_MEMLOCK), or lacks the opcodes spargio needs,
  spargio runs on threads and emits one `BackendFallbackWarning` naming the
  cause.
* ``io_uring`` makes the same failure a `BackendUnavailable` error.
* ``threads`` never touches io_uring.

`backend_info` reports the decision.  `current_io` returns the running loop's
I/O object (a `LoopRing` or a `ThreadIO`), creating it on first use.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Union

from . import native
from ._errors import BackendUnavailable
from ._thread_io import ThreadIO

if TYPE_CHECKING:
    from ._loop import RingSelector
    from ._loop_ring import LoopRing

__all__ = [
    "IO",
    "BackendFallbackWarning",
    "BackendInfo",
    "backend_info",
    "configure",
    "current_io",
]

IO = Union["LoopRing", ThreadIO]
BackendName = Literal["io_uring", "threads"]
Requested = Literal["auto", "io_uring", "threads"]

DEFAULT_RING_ENTRIES: Final = 512
REQUIRED_OPCODES: Final = ("READ", "WRITE", "OPENAT", "CLOSE", "STATX", "FSYNC", "ASYNC_CANCEL")
NET_OPCODES: Final = frozenset({"RECV", "SEND", "SENDMSG", "ACCEPT", "CONNECT", "SHUTDOWN"})  # spargio.net's


class BackendFallbackWarning(RuntimeWarning):
    """io_uring could not be used, so spargio runs its API on threads."""


@dataclass(frozen=True)
class BackendInfo:
    """What spargio runs on in this process, and why.

    :ivar name: ``"io_uring"`` or ``"threads"``.
    :ivar requested: what was asked for (``"auto"``, ``"io_uring"``, ``"threads"``).
    :ivar reason: a sentence saying why this backend was chosen.
    :ivar errno: the errno of the failed io_uring setup, if there was one.
    :ivar opcodes: the io_uring opcodes the kernel supports that spargio uses.
    :ivar kernel: the running kernel's release string.
    """

    name: BackendName
    requested: Requested
    reason: str
    errno: int | None
    opcodes: frozenset[str]
    kernel: str

    @property
    def msg_ring(self) -> bool:
        """Whether the kernel has IORING_OP_MSG_RING (ring-to-ring wakeups)."""
        return "MSG_RING" in self.opcodes

    @property
    def net(self) -> bool:
        """Whether `spargio.net` puts sockets on io_uring completions here; if not, it hands
        out the running loop's own transports (same API)."""
        return self.name == "io_uring" and self.opcodes >= NET_OPCODES


_lock = threading.Lock()
_requested: Requested | None = None
_ring_entries = DEFAULT_RING_ENTRIES
_info: BackendInfo | None = None
_ios: dict[int, IO] = {}
_get_running_loop = asyncio.get_running_loop


def configure(*, backend: Requested | None = None, ring_entries: int | None = None) -> BackendInfo:
    """Choose the backend (and loop ring size) for this process.

    Takes effect for loops that have not used spargio yet; loops already
    running keep the I/O object they have.

    :param backend: ``"auto"`` (default), ``"io_uring"`` or ``"threads"``;
        None keeps the current setting (or ``SPARGIO_BACKEND``).
    :param ring_entries: SQ size of each loop ring (default 512).
    :raises BackendUnavailable: ``backend="io_uring"`` where it cannot run.
    :raises ValueError: an unknown backend name.
    :return: the resulting `BackendInfo`.
    """
    global _requested, _ring_entries, _info
    with _lock:
        if backend is not None:
            _requested = _parse(backend, "backend")
        if ring_entries is not None:
            if isinstance(ring_entries, bool) or not isinstance(ring_entries, int) or not 1 <= ring_entries <= 32768:
                raise ValueError("ring_entries must be an int between 1 and 32768")
            _ring_entries = ring_entries
        _info = None
    return backend_info()


def _parse(value: str, source: str) -> Requested:
    if value not in ("auto", "io_uring", "threads"):
        raise ValueError(f"{source} must be 'auto', 'io_uring' or 'threads', not {value!r}")
    return value  # type: ignore[return-value]


def _explain(code: int) -> str:
    if code == errno.ENOSYS:
        return "io_uring_setup failed with ENOSYS: the kernel has no io_uring, or a seccomp filter hides it"
    if code == errno.EPERM:
        try:
            with open("/proc/sys/kernel/io_uring_disabled") as f:
                disabled = f.read().strip()
        except OSError:
            disabled = "0"
        if disabled == "2":
            return "io_uring_setup failed with EPERM: the sysctl kernel.io_uring_disabled=2 forbids io_uring"
        if disabled == "1":
            return (
                "io_uring_setup failed with EPERM: the sysctl kernel.io_uring_disabled=1 allows io_uring "
                "only to the kernel.io_uring_group"
            )
        return "io_uring_setup failed with EPERM: a seccomp filter (a container runtime's?) forbids io_uring"
    if code == errno.ENOMEM:
        return "io_uring_setup failed with ENOMEM: RLIMIT_MEMLOCK is too low for the ring"
    return f"io_uring_setup failed: {os.strerror(code)}"


def _decide() -> BackendInfo:
    kernel = os.uname().release
    env = os.environ.get("SPARGIO_BACKEND")
    requested: Requested = _requested or (_parse(env, "SPARGIO_BACKEND") if env else "auto")
    if requested == "threads":
        return BackendInfo("threads", requested, "the threads backend was requested", None, frozenset(), kernel)
    failure: tuple[str, int | None]
    if native.IMPORT_ERROR is not None:
        failure = (native.IMPORT_ERROR, None)
    else:
        from .native.ring import OPCODES, Ring, RingSetupError

        try:
            probe = Ring(8, lambda entry, res: None)
        except RingSetupError as exc:
            failure = (_explain(exc.errno or errno.EIO), exc.errno)
        else:
            opcodes = frozenset(name for name in OPCODES if probe.supports(name))
            probe.close()
            missing = [name for name in REQUIRED_OPCODES if name not in opcodes]
            if not missing:
                reason = "io_uring is available" + (" (requested)" if requested == "io_uring" else " (auto-detected)")
                return BackendInfo("io_uring", requested, reason, None, opcodes, kernel)
            failure = ("the kernel's io_uring lacks " + ", ".join(f"IORING_OP_{m}" for m in missing), None)
    reason, code = failure
    if requested == "io_uring":
        raise BackendUnavailable(code or errno.ENOSYS, f"io_uring backend requested but unavailable: {reason}")
    warnings.warn(
        f"spargio is running on threads because io_uring is unavailable: {reason}",
        BackendFallbackWarning,
        stacklevel=4,
    )
    return BackendInfo("threads", requested, reason, code, frozenset(), kernel)


def backend_info() -> BackendInfo:
    """Which backend spargio uses in this process, and why (probes on first call).

    :raises BackendUnavailable: io_uring was required but cannot run.
    """
    global _info
    info = _info
    if info is None:
        with _lock:
            if _info is None:
                _info = _decide()
            info = _info
    return info


def current_io() -> IO:
    """The running loop's I/O object, created on first use.

    :raises RuntimeError: no event loop is running in this thread.
    """
    loop = _get_running_loop()
    io = _ios.get(id(loop))
    # An entry is removed when its loop is garbage collected (weakref.finalize),
    # so an id found here is this loop's, never a dead loop's reused id.
    if io is not None and not io.closed:
        return io
    return _new_io(loop)


def _new_io(loop: asyncio.AbstractEventLoop) -> IO:
    info = backend_info()
    io: IO
    selector = _ring_selector_of(loop)
    if selector is not None:
        # A shard's loop: spargio.fs shares the ring the loop already waits on.
        from ._loop_ring import LoopRing

        io = LoopRing(loop, _ring_entries, shared=selector.ring)
        selector.sink = io._complete
        selector.before_flush = io.run_flush_hooks
        io._note_delivery = selector.note_delivery
        io._selector_polls = lambda: selector.armed_polls
    elif info.name == "io_uring":
        from ._loop_ring import LoopRing

        io = LoopRing(loop, _ring_entries)
    else:
        io = ThreadIO(loop)
    key = id(loop)
    _ios[key] = io
    weakref.finalize(loop, _ios.pop, key, None)
    return io


def _ring_selector_of(loop: asyncio.AbstractEventLoop) -> RingSelector | None:
    """The loop's `RingSelector` if it is a shard's loop (whose ring spargio.fs shares)."""
    selector = getattr(loop, "_selector", None)
    if selector is None or native.IMPORT_ERROR is not None:
        return None
    from ._loop import RingSelector

    return selector if isinstance(selector, RingSelector) and not selector.ring.closed else None


def loop_ios() -> list[IO]:
    """Every live loop's I/O object (for tests and stats)."""
    return list(_ios.values())


def close_all() -> None:
    """Close every loop ring (interpreter exit)."""
    for io in list(_ios.values()):
        io.close()
    _ios.clear()


def _forget_after_fork() -> None:
    """In a forked child: drop the parent's loop rings without touching them.

    The kernel rings are shared with the parent, so the child must not
    submit, cancel or reap on them (`Ring.close` in the child only forgets
    its copy).  A loop that goes on in the child gets a fresh ring on first use.
    """
    for io in list(_ios.values()):
        io.closed = True
        ring = getattr(io, "ring", None)
        if ring is not None:
            ring.close()
    _ios.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
