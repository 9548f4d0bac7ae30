"""An asyncio event loop whose waits are io_uring waits (the shard loop).

Theory of operation
-------------------
`RingSelector` implements `selectors.BaseSelector` on one `Ring`, so a stock
``asyncio.SelectorEventLoop(RingSelector())`` runs any asyncio code — sleeps,
streams, subprocesses, executors, ``call_soon_threadsafe`` (through asyncio's
own self-pipe) — while every wait is one ``io_uring_enter`` with the GIL
released.

* Readiness: each registered fd has at most one one-shot IORING_OP_POLL_ADD
  armed for its events.  When it fires, the fd is reported ready once and is
  re-armed at the next `select` (one-shot polls check readiness when armed,
  so an fd that is still readable fires again at once: level-triggered, as
  asyncio expects from epoll).  ``_to_arm`` holds the fds that need a poll
  (new, just reported, or just modified), so a `select` costs what changed,
  not what is registered.
* Changes: `unregister` and `modify` cancel the armed poll (its CQE is then
  an orphan the ring consumes) and, for `modify`, arm a new one.
* Waiting: `select(timeout)` arms what needs arming, submits, and if nothing
  is ready waits for one CQE or the timeout (``timeout=None``: forever; 0:
  never blocks).  Timers are the timeout asyncio passes in.
* Errors: a poll that fails (EBADF after the fd was closed, say) reports the
  fd ready for the events it was registered for, so asyncio's callback runs
  and sees the error itself, as with epoll's EPOLLERR.  Registering a closed
  fd raises EBADF and a regular file or directory EPERM, as epoll does.
* Half-closed peers: the kernel always adds POLLRDHUP (with POLLERR, POLLHUP,
  POLLNVAL) to an io_uring poll's mask.  A write-only poll on a socket whose
  peer did ``shutdown(SHUT_WR)`` therefore completes at once with RDHUP and
  no POLLOUT, and would again every time it is re-armed (a busy loop).  Such
  an fd is handed to a private epoll instance instead, which honours the
  mask asyncio asked for, and that epoll's fd is polled through the ring like
  any other: one ring, one wait still.  It goes back to a plain poll when
  its key is modified or unregistered.
* No lost re-arm: a poll that completes inside the flush (RDHUP, or a
  kernel-side ECANCELED) asks to be armed again after this `select` has
  armed; the flush is repeated until nothing is left to arm, so the ring
  never waits with a wanted fd unwatched.
* Other ops on the same ring (``spargio.fs`` running on this loop) complete
  through ``sink``, which the loop's `LoopRing` installs: one ring, one wait
  for readiness, timers and native I/O alike.  An op the kernel completes
  inside the flush resolves a future (scheduling callbacks), so that
  `select` returns without waiting.

Parking (what makes a shard)
----------------------------
A shard hands this selector a *work source*: a wake fd the loop watches with
``add_reader`` and a ``has_work(parking)`` callable.  Every `select` asks
``has_work(False)`` first; if work waits, the wait is skipped and the wake fd
is reported ready, so the shard's reader callback takes the work.  Before a
wait that may block, the selector sets ``parked`` and asks again with
``has_work(True)`` (the shard may steal then).  Senders put work in the inbox
and *then* read ``parked``; the selector sets ``parked`` and *then* reads the
inbox.  Under the GIL these are ordered, so either the sender sees the shard
parked and wakes it, or the shard sees the work: no wakeup is lost, and none
is sent to a shard that is awake.  A wakeup is an IORING_OP_MSG_RING message
from the sender's ring (`Ring.on_message` marks the wake fd ready) or a write
to the wake fd (an eventfd, polled like any fd).

`ParkingEpollSelector` gives the thread backend's shards the same protocol on
epoll.

Only the thread that runs the loop touches the ring (the `Ring` checks it).
"""

from __future__ import annotations

import asyncio
import errno as _errno
import os
import select
import selectors
import stat
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import native

if TYPE_CHECKING:
    from .native.ring import Bell, Ring

__all__ = ["ParkingEpollSelector", "RingSelector", "ShardEventLoop", "WorkSource", "new_ring_loop"]

WorkSource = Callable[[bool], bool]  # has_work(parking) -> whether work waits (may steal when parking)


class _Parking:
    """The parking protocol shared by the shard selectors (see the module docstring)."""

    parked = False
    spinning = False
    spin_wanted = False  # set by the shard when it served tickets; a spin that times out clears it
    spin_seconds = 0.0  # 0: never spin
    wake_fd = -1
    _has_work: WorkSource | None = None
    _iteration_ended: Callable[[], None] | None = None
    _bell_seen = 0

    def __init__(self) -> None:
        # The spin runs in the binding; without it (a broken install, on threads) a shard parks at once.
        self.bell: Bell | None = native.ring.Bell() if native.IMPORT_ERROR is None else None

    def set_work_source(
        self, wake_fd: int, has_work: WorkSource, iteration_ended: Callable[[], None] | None = None
    ) -> None:
        """Report ``wake_fd`` ready whenever ``has_work`` says work waits (the fd must be registered);
        call ``iteration_ended`` at the start of every `select`, when the previous loop iteration's
        callbacks have run (the shard sends the replies they made)."""
        self.wake_fd = wake_fd
        self._has_work = has_work
        self._iteration_ended = iteration_ended

    def _work_waits(self, timeout: float | None) -> bool:
        """Whether work waits; else get ready to wait: spinning (if wanted) or parked."""
        has_work = self._has_work
        if has_work is None:
            return False
        if self._iteration_ended is not None:
            self._iteration_ended()
        if has_work(False):
            return True
        if timeout is None or timeout > 0:
            if self.spin_wanted and self.spin_seconds > 0 and self.bell is not None:
                self._bell_seen = self.bell.value
                self.spinning = True  # senders ring the bell from now on, instead of waking us
                if has_work(False):
                    self.spinning = False
                    return True
                return False
            return self._park(has_work)
        return False

    def _park(self, has_work: WorkSource) -> bool:
        self.parked = True
        if has_work(True):
            self.parked = False
            return True
        return False

    def _spin_then_park(self, timeout: float | None, ring: Ring | None) -> int:
        """Spin (GIL released) for new work before parking: 1 if work came, 2 if a completion is
        ready on ``ring``, 0 if it did not (the selector is then parked, and may wait)."""
        assert self._has_work is not None and self.bell is not None
        seconds = self.spin_seconds if timeout is None else min(self.spin_seconds, timeout)
        got = self.bell.spin(self._bell_seen, seconds, ring)
        self.spinning = False
        if self._has_work(False):
            return 1
        if got == 2:
            return 2
        if got == 0:
            self.spin_wanted = False  # nothing came: park at once next time, until tickets come again
        return 1 if self._park(self._has_work) else 0


_POLLIN = select.POLLIN | select.POLLPRI
_POLLOUT = select.POLLOUT
_POLL_FAILED = select.POLLERR | select.POLLHUP | select.POLLNVAL
_POLLRDHUP = 0x2000  # select.POLLRDHUP where defined; the kernel ABI value
_REARM_ROUNDS = 4


def _check_pollable(fd: int) -> None:
    """Refuse what epoll refuses: a closed fd (EBADF), a regular file or directory (EPERM)."""
    mode = os.fstat(fd).st_mode  # OSError(EBADF) for a closed fd
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        raise PermissionError(_errno.EPERM, os.strerror(_errno.EPERM))


class _Armed:
    """The entry of one armed poll: which fd, and whether it is still wanted."""

    __slots__ = ("fd", "live", "ud")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.live = True
        self.ud = 0


class _KeyMap(Mapping[Any, selectors.SelectorKey]):
    def __init__(self, selector: RingSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._keys)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        fd = self._selector._fd_lookup(fileobj)
        try:
            return self._selector._keys[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Any:
        return iter(self._selector._keys)


class RingSelector(_Parking, selectors.BaseSelector):
    """A selector whose readiness and waits are io_uring POLL_ADD ops and ring waits.

    :param entries: SQ size of the ring.
    :ivar sink: receives the completions of ops that are not this selector's polls.
    """

    def __init__(self, entries: int = 256) -> None:
        _Parking.__init__(self)
        self.ring = native.ring.Ring(entries, self._on_cqe)
        self.ring.on_message = self._on_message
        self.sink: Callable[[Any, int], None] | None = None
        self.before_flush: Callable[[], None] | None = None  # the loop's LoopRing.run_flush_hooks
        self._delivered = False
        self._keys: dict[int, selectors.SelectorKey] = {}
        self._armed: dict[int, _Armed] = {}
        self._ready: dict[int, int] = {}
        self._to_arm: set[int] = set()
        self._map = _KeyMap(self)
        self._epoll: select.epoll | None = None  # fds whose polls only ever say RDHUP (see above)
        self._via_epoll: set[int] = set()
        self._epoll_armed: _Armed | None = None
        self._rearm = False  # a poll completed inside this select's flush and wants arming again

    # -- registration ----------------------------------------------------

    @staticmethod
    def _fd_of(fileobj: Any) -> int:
        return selectors._fileobj_to_fd(fileobj)  # type: ignore[attr-defined,no-any-return]

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if not events or events & ~(selectors.EVENT_READ | selectors.EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        fd = self._fd_of(fileobj)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        _check_pollable(fd)
        return self._add_key(selectors.SelectorKey(fileobj, fd, events, data))

    def _add_key(self, key: selectors.SelectorKey) -> selectors.SelectorKey:
        self._keys[key.fd] = key
        self._to_arm.add(key.fd)
        return key

    def _fd_lookup(self, fileobj: Any) -> int:
        """The fd of a registered object; a closed socket (fileno -1) is found by identity, as
        the selectors module does."""
        try:
            return self._fd_of(fileobj)
        except ValueError:
            for key in self._keys.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = self._fd_lookup(fileobj)
        try:
            key = self._keys.pop(fd)
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        self._leave_epoll(fd)
        self._disarm(fd)
        self._ready.pop(fd, None)
        self._to_arm.discard(fd)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = self._fd_lookup(fileobj)
        old = self._keys.get(fd)
        if old is None:
            raise KeyError(f"{fileobj!r} is not registered")
        if events == old.events:
            key = old._replace(data=data)
            self._keys[fd] = key
            return key
        self.unregister(fileobj)
        return self._add_key(old._replace(events=events, data=data))  # checked when it was registered

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map

    # -- polls -----------------------------------------------------------

    def _disarm(self, fd: int) -> None:
        armed = self._armed.pop(fd, None)
        if armed is not None:
            armed.live = False
            if not self.ring.closed:
                self.ring.cancel(armed.ud)

    def _arm_pending(self) -> None:
        if self._via_epoll and self._epoll_armed is None and self._epoll is not None:
            armed = _Armed(self._epoll.fileno())
            armed.ud = self.ring.prep_poll_add(armed.fd, _POLLIN, armed)
            self._epoll_armed = armed
        for fd in self._to_arm:
            key = self._keys.get(fd)
            if key is None or fd in self._armed or fd in self._ready or fd in self._via_epoll:
                continue
            mask = (_POLLIN if key.events & selectors.EVENT_READ else 0) | (
                _POLLOUT if key.events & selectors.EVENT_WRITE else 0
            )
            armed = _Armed(fd)
            armed.ud = self.ring.prep_poll_add(fd, mask, armed)
            self._armed[fd] = armed
        self._to_arm.clear()

    @property
    def armed_polls(self) -> int:
        """Polls in the ring (so a caller can tell them from native ops in flight)."""
        return len(self._armed)

    def note_delivery(self) -> None:
        """A completion made callbacks ready (``call_soon``): this `select` must not wait."""
        self._delivered = True

    def _on_message(self, _value: int) -> None:
        if self.wake_fd >= 0:
            self._ready[self.wake_fd] = self._ready.get(self.wake_fd, 0) | selectors.EVENT_READ

    def _on_cqe(self, entry: Any, res: int) -> None:
        if entry.__class__ is not _Armed:
            if self.sink is not None:
                self._delivered = True
                self.sink(entry, res)
            return
        if not entry.live:
            return
        if entry is self._epoll_armed:
            self._epoll_armed = None
            self._rearm = True
            self._collect_epoll()
            return
        fd = entry.fd
        if self._armed.get(fd) is entry:
            del self._armed[fd]
        key = self._keys.get(fd)
        if key is None:
            return
        if res < 0:
            if res == -_errno.ECANCELED:
                self._to_arm.add(fd)  # cancelled by the kernel, not by us: arm again
                self._rearm = True
                return
            events = key.events  # let asyncio's callback meet the error itself
        else:
            events = 0
            if res & (_POLLIN | _POLL_FAILED):
                events |= selectors.EVENT_READ
            if res & (_POLLOUT | _POLL_FAILED):
                events |= selectors.EVENT_WRITE
            events &= key.events
        if events:
            self._ready[fd] = self._ready.get(fd, 0) | events
        elif res & _POLLRDHUP and key.events == selectors.EVENT_WRITE:
            self._enter_epoll(fd)  # RDHUP would fire again at once: let epoll wait for POLLOUT
            self._rearm = True
        else:
            self._to_arm.add(fd)  # fired for nothing this key wants: keep watching
            self._rearm = True

    # -- fds watched through the private epoll ---------------------------

    def _enter_epoll(self, fd: int) -> None:
        if self._epoll is None:
            self._epoll = select.epoll()
        try:
            self._epoll.register(fd, select.EPOLLOUT)
        except OSError:  # closed meanwhile: let asyncio's callback meet the error
            self._ready[fd] = self._ready.get(fd, 0) | selectors.EVENT_WRITE
            return
        self._via_epoll.add(fd)

    def _leave_epoll(self, fd: int) -> None:
        if fd in self._via_epoll:
            self._via_epoll.discard(fd)
            assert self._epoll is not None
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # already closed: the kernel dropped it from the epoll set

    def _collect_epoll(self) -> None:
        """The private epoll's fd is readable: report its ready fds (level-triggered, once per select)."""
        assert self._epoll is not None
        for fd, mask in self._epoll.poll(0):
            if fd in self._keys:
                self._ready[fd] = self._ready.get(fd, 0) | selectors.EVENT_WRITE
            if mask & (select.EPOLLERR | select.EPOLLHUP):
                self._leave_epoll(fd)  # a plain poll reports errors at once from now on
                self._to_arm.add(fd)

    # -- waiting ---------------------------------------------------------

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._work_waits(timeout):
            self._on_message(0)
        self._arm_pending()
        self._delivered = False
        self._rearm = False
        if self.before_flush is not None:
            self.before_flush()
        self.ring.flush()
        for _ in range(_REARM_ROUNDS):  # a poll that completed inside the flush wants arming again
            if self._ready or not self._rearm:
                break
            self._rearm = False
            self._arm_pending()
            self.ring.flush()
        # A native op that completed inside the flush has made callbacks ready: do not wait.
        waits = not self._ready and not self._delivered and (timeout is None or timeout > 0)
        reap = waits
        if self.spinning:
            if not waits:
                self.spinning = False
            else:
                spun = self._spin_then_park(timeout, self.ring)
                if spun:
                    waits = False
                    if spun == 1:
                        self._on_message(0)
        if waits:
            self.ring.wait(timeout)
        self.parked = False  # before the reap: a sender that sees it now need not wake us
        if reap:
            self.ring.reap()
        ready = [(self._keys[fd], events) for fd, events in self._ready.items() if fd in self._keys]
        self._to_arm.update(self._ready)  # reported once; watch them again from the next select
        self._ready.clear()
        return ready

    def close(self) -> None:
        self._keys.clear()
        for armed in self._armed.values():
            armed.live = False
        self._armed.clear()
        if self._epoll_armed is not None:
            self._epoll_armed.live = False
            self._epoll_armed = None
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        self._via_epoll.clear()
        self._ready.clear()
        self._to_arm.clear()
        self.ring.close()


class ParkingEpollSelector(_Parking, selectors.EpollSelector):
    """epoll with the shard parking protocol (the thread backend's shards)."""

    def __init__(self) -> None:
        _Parking.__init__(self)
        selectors.EpollSelector.__init__(self)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        work = self._work_waits(timeout)
        try:
            if self.spinning:  # what is ready now first: epoll is not watched while spinning
                ready = super().select(0)
                if ready:
                    self.spinning = False
                    return ready
                work = self._spin_then_park(timeout, None) == 1
            ready = super().select(0 if work else timeout)
        finally:
            self.parked = False
            self.spinning = False
        if work and all(key.fd != self.wake_fd for key, _events in ready):
            ready.append((self.get_key(self.wake_fd), selectors.EVENT_READ))
        return ready


class ShardEventLoop(asyncio.SelectorEventLoop):
    """asyncio's own selector loop, with child processes watched by the loop itself.

    A stock loop asks the process-wide policy for a child watcher when it
    starts a subprocess; uvloop's policy (``uvloop.install()``) provides
    none, and a shard's loop must not depend on whatever policy the service
    installed.  Here each child is watched
    through a pidfd registered with this loop (what asyncio's
    ``PidfdChildWatcher`` does, without the policy): when it becomes
    readable the child is reaped and the transport told.  Where
    ``os.pidfd_open`` is missing, the stock path runs.
    """

    async def _make_subprocess_transport(
        self,
        protocol: Any,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        extra: Any = None,
        **kwargs: Any,
    ) -> Any:
        if not hasattr(os, "pidfd_open"):  # pragma: no cover - Linux >= 5.3 has it
            return await super()._make_subprocess_transport(  # type: ignore[misc]
                protocol, args, shell, stdin, stdout, stderr, bufsize, extra, **kwargs
            )
        from asyncio import unix_events

        waiter = self.create_future()
        transport = unix_events._UnixSubprocessTransport(  # type: ignore[attr-defined]
            self, protocol, args, shell, stdin, stdout, stderr, bufsize, waiter=waiter, extra=extra, **kwargs
        )
        self._watch_child(transport.get_pid(), transport)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport

    def _watch_child(self, pid: int, transport: Any) -> None:
        pidfd = os.pidfd_open(pid)

        def exited() -> None:
            self.remove_reader(pidfd)
            os.close(pidfd)
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:  # reaped by someone else: as asyncio's watchers report it
                returncode = 255
            else:
                returncode = os.waitstatus_to_exitcode(status)
            transport._process_exited(returncode)

        self.add_reader(pidfd, exited)


def new_ring_loop(entries: int = 256) -> asyncio.AbstractEventLoop:
    """A stock asyncio event loop that waits in io_uring instead of epoll."""
    return ShardEventLoop(RingSelector(entries))
