"""Wakeups: how work and replies reach a loop that may be asleep.

Theory of operation
-------------------
A wakeup across cores costs ~25 us on the machines we measure, more than the
work of a small call, so the rule here is: never wake a loop that is awake,
and wake a sleeping one once for everything that is waiting for it.

* `Waker` (one per shard) wakes a shard's loop after something was put in
  its inbox or mailbox.  It does nothing unless the shard's selector is
  ``parked`` (see `spargio._loop`) and no wake is already on its way
  (``pending``, cleared by the shard when it wakes).  The wake itself is an
  IORING_OP_MSG_RING message into the shard's ring, sent from the calling
  loop's own ring when the kernel has MSG_RING and the caller has a ring (a
  shard's ring, or a service loop's loop ring); otherwise a write to the
  shard's eventfd.  Either way the wake leaves at once: a sender may be about
  to block (a shard starting a long sync function), and a wake that waited
  in an SQ would strand the work it announces (``pending`` would stop
  anyone else from waking the shard).
* `Mailbox` (one per loop) carries callbacks posted from any thread to the
  loop's thread, where `drain` runs them in order.  On a service loop the
  first post after a drain wakes the loop (``call_soon_threadsafe``, which
  always brings a drain); later posts ride along, so N results that are
  ready together cost one wakeup.  A drain first disarms and then empties
  the queue, so a post never lands unseen: it either sees the mailbox armed
  (the coming drain takes it) or arms it again.  A shard's mailbox is never
  armed: every post asks the shard's `Waker`, which sends nothing while the
  shard is awake (the shard looks at its mailbox before it parks) or a wake
  is on its way.  Arming it would be wrong: a post that found the shard
  awake would leave it armed with no drain coming, and the next post would
  not wake the shard once it parked.
* `Tally` counts wakeups by kind for `Runtime.stats`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from ._backend import current_io

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._loop import _Parking

__all__ = [
    "KINDS",
    "Mailbox",
    "Tally",
    "Waker",
    "loop_mailbox",
    "mailbox_for",
    "register_mailbox",
    "shard_mailbox",
]

KINDS: Final = ("msg_ring", "eventfd", "loop")
_get_running_loop = asyncio._get_running_loop


class Tally:
    """Wakeups sent, by kind (``msg_ring``, ``eventfd``, ``loop``); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(KINDS, 0)

    def add(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Waker:
    """Wakes one shard's loop if, and only if, it may be parked.

    :param selector: the shard's selector (its ``parked`` flag is read).
    :param wake_fd: the shard's eventfd (watched by its loop).
    :param ring_fd: the shard's ring fd for MSG_RING, or -1 to use the eventfd only.
    """

    __slots__ = ("_closed", "_lock", "_ring_fd", "_selector", "_tally", "_wake_fd", "pending")

    def __init__(self, selector: _Parking, wake_fd: int, ring_fd: int, tally: Tally) -> None:
        self._selector = selector
        self._wake_fd = wake_fd
        self._ring_fd = ring_fd
        self._tally = tally
        self._lock = threading.Lock()
        self._closed = False
        self.pending = False

    @property
    def parked(self) -> bool:
        return self._selector.parked

    def wake(self) -> bool:
        """Wake the shard if it may be parked; returns whether a wakeup was sent."""
        if not self._selector.parked or self.pending:
            return False
        with self._lock:  # the fds stay open until the message has left (see close)
            if self._closed:
                return False
            self.pending = True
            if self._ring_fd >= 0 and _get_running_loop() is not None:
                send = getattr(current_io(), "send_message", None)
                if send is not None:
                    send(self._ring_fd)
                    self._tally.add("msg_ring")
                    return True
            os.eventfd_write(self._wake_fd, 1)
        self._tally.add("eventfd")
        return True

    def woken(self) -> None:
        """The shard is awake: the next wake must be sent again.  Drains the eventfd.

        The read is unconditional: even with MSG_RING, a sender without a ring
        (a plain thread) writes the eventfd, and a flag saying so could be set
        after this read, leaving the fd readable and the shard spinning.
        """
        self.pending = False
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close the eventfd; later wakes do nothing.  Call before the shard's ring closes.

        A shard stops while other threads may still be waking it (a thief
        call from a busy shard, a late submit).  The lock makes "check closed,
        send" one step against "mark closed, close the fd", so no wake ever
        reaches a closed fd — or worse, an fd number the process has reused.
        A MSG_RING send resolves the target ring fd inside its submit, which
        also happens under the lock.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._wake_fd)


class Mailbox:
    """Callbacks for one loop, posted from any thread, run on that loop in batches.

    :param wake: wakes the loop; called (with the poster's `Tally`) by the
        post that arms the mailbox, i.e. the first post since the last drain,
        or by every post if ``once_per_drain`` is False.
    :param once_per_drain: whether a call of ``wake`` always brings a drain
        (a service loop's ``call_soon_threadsafe``), so later posts may skip it.
    """

    __slots__ = ("__weakref__", "_armed", "_items", "_once_per_drain", "_wake")

    def __init__(self, wake: Callable[[Tally | None], None], *, once_per_drain: bool) -> None:
        self._items: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._armed = False
        self._once_per_drain = once_per_drain
        self._wake = wake

    def __bool__(self) -> bool:
        return bool(self._items)

    def post(self, fn: Callable[[Any], None], arg: Any, tally: Tally | None = None) -> None:
        """Run ``fn(arg)`` on the mailbox's loop soon; wakes it only if no drain is coming."""
        self._items.append((fn, arg))
        if not self._armed:
            self._armed = self._once_per_drain
            self._wake(tally)

    def drain(self) -> None:
        """Run everything posted so far (on the mailbox's loop)."""
        self._armed = False
        items = self._items
        pop = items.popleft
        while items:
            fn, arg = pop()
            fn(arg)


def loop_mailbox(loop: asyncio.AbstractEventLoop) -> Mailbox:
    """A service loop's mailbox (asyncio or uvloop): woken with ``call_soon_threadsafe``."""
    loop_ref = weakref.ref(loop)
    box_ref: weakref.ref[Mailbox] | None = None

    def wake(tally: Tally | None) -> None:
        target, box = loop_ref(), box_ref() if box_ref is not None else None
        if target is None or box is None:
            return
        try:
            target.call_soon_threadsafe(box.drain)
        except RuntimeError:  # the loop is closed: nobody is left to read the replies
            return
        if tally is not None:
            tally.add("loop")

    box = Mailbox(wake, once_per_drain=True)
    box_ref = weakref.ref(box)
    return box


def shard_mailbox(waker: Waker) -> Mailbox:
    """A shard's mailbox: woken through the shard's `Waker` (which does nothing if the shard is awake;
    the shard then finds the mail itself before it parks)."""

    def wake(_tally: Tally | None) -> None:
        waker.wake()

    return Mailbox(wake, once_per_drain=False)


_boxes: dict[int, Mailbox] = {}


def mailbox_for(loop: asyncio.AbstractEventLoop) -> Mailbox:
    """The mailbox of ``loop`` (created on first use for a service loop)."""
    box = _boxes.get(id(loop))
    if box is None:
        box = loop_mailbox(loop)
        register_mailbox(loop, box)
    return box


def register_mailbox(loop: asyncio.AbstractEventLoop, box: Mailbox) -> None:
    """Make ``box`` the mailbox of ``loop`` until the loop is garbage collected."""
    key = id(loop)
    _boxes[key] = box
    weakref.finalize(loop, _boxes.pop, key, None)
