"""Wakeups: how work and replies reach a loop that may be asleep.

Theory of operation
-------------------
A wakeup across cores costs ~25 us on the machines we measure, more than the
work of a small call, so the rule here is: never wake a loop that is awake,
and wake a sleeping one once for everything that is waiting for it.

* `Waker` (one per shard) wakes a shard's loop after something was put in
  its inbox or mailbox.  It does nothing unless the shard's selector is
  ``parked`` (see `spargio._loop`) and no wake is already on its way
  (``pending``, cleared by the shard when it wakes).  A shard that is
  ``spinning`` (it served tickets a moment ago and waits a few tens of
  microseconds, GIL released, before it parks) gets its bell rung instead:
  a store to a word it watches.  The wake itself is an
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
* `Outbox` (one per shard thread) holds what that thread posts to other
  loops' mailboxes during one iteration of its loop, and sends it when the
  iteration ends (the shard's selector flushes it before it looks for
  events, and the shard before it starts a sync function, which may run
  long).  Results that a shard finishes together then reach the service
  loop as one batch with one wakeup, instead of one wakeup each: a hot path
  whose coroutines finish a few microseconds apart used to cost the service
  loop one ``call_soon_threadsafe`` (a syscall, an epoll wakeup and a GIL
  hand-off) per result.
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
    "Outbox",
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

    __slots__ = (
        "_closed",
        "_fd_reads",
        "_fd_writes",
        "_lock",
        "_ring_fd",
        "_selector",
        "_tally",
        "_wake_fd",
        "pending",
    )

    def __init__(self, selector: _Parking, wake_fd: int, ring_fd: int, tally: Tally) -> None:
        self._selector = selector
        self._wake_fd = wake_fd
        self._ring_fd = ring_fd
        self._tally = tally
        self._lock = threading.Lock()
        self._closed = False
        self._fd_writes = 0  # eventfd writes (under the lock) and the count the last read covered
        self._fd_reads = 0
        self.pending = False

    @property
    def parked(self) -> bool:
        return self._selector.parked

    def wake(self) -> bool:
        """Wake the shard if it may be parked; returns whether a wakeup was sent.

        A shard spinning before it parks is told by its bell instead: a
        plain store it sees within nanoseconds, no syscall and no wakeup.
        """
        selector = self._selector
        bell = selector.bell
        if selector.spinning and bell is not None:
            bell.ring()
            return False
        if not selector.parked or self.pending:
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
            self._fd_writes += 1
            os.eventfd_write(self._wake_fd, 1)
        self._tally.add("eventfd")
        return True

    def woken(self) -> None:
        """The shard is awake: the next wake must be sent again.  Drains the eventfd if it was written.

        Even with MSG_RING, a sender without a ring (a plain thread) writes
        the eventfd.  Writers count their writes under the lock, and the read
        happens under it too, so a write counted is a write done: a read
        never misses one and leaves the fd readable (the shard would spin).
        A MSG_RING wake skips the syscall (and the GIL hand-off it invites).
        """
        self.pending = False
        if self._fd_writes == self._fd_reads:
            return
        with self._lock:
            self._fd_reads = self._fd_writes
            if self._closed:
                return
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

    __slots__ = ("__weakref__", "_armed", "_once_per_drain", "_wake", "items")

    def __init__(self, wake: Callable[[Tally | None], None], *, once_per_drain: bool) -> None:
        # What waits to run (read-only outside this class: its truth is the cheap "any mail?" check).
        self.items: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._armed = False
        self._once_per_drain = once_per_drain
        self._wake = wake

    def __bool__(self) -> bool:
        return bool(self.items)

    def post(self, fn: Callable[[Any], None], arg: Any, tally: Tally | None = None) -> None:
        """Run ``fn(arg)`` on the mailbox's loop soon; wakes it only if no drain is coming.

        Posted from a shard's thread (to another loop), it leaves when that
        shard's loop iteration ends, with everything else posted meanwhile
        (see `Outbox`).
        """
        outbox: Outbox | None = getattr(_thread, "outbox", None)
        if outbox is not None and outbox.own is not self:
            entry = outbox.posts.get(self)  # kept in the outbox until the shard's iteration ends
            if entry is None:
                outbox.posts[self] = ([(fn, arg)], tally)
            else:
                entry[0].append((fn, arg))
            return
        self.items.append((fn, arg))
        if not self._armed:
            self._armed = self._once_per_drain
            self._wake(tally)

    def post_many(self, posts: list[tuple[Callable[[Any], None], Any]], tally: Tally | None) -> None:
        """`post` each of ``posts``, in order, with at most one wake."""
        self.items.extend(posts)
        if not self._armed:
            self._armed = self._once_per_drain
            self._wake(tally)

    def drain(self) -> None:
        """Run everything posted so far (on the mailbox's loop)."""
        self._armed = False
        items = self.items
        pop = items.popleft
        while items:
            fn, arg = pop()
            fn(arg)


_thread = threading.local()


class Outbox:
    """What one shard's thread posts to other mailboxes during one loop iteration.

    `flush` sends it, one `Mailbox.post_many` (so at most one wake) per
    mailbox; posts keep their order per mailbox.  Only the owning thread
    touches an outbox.
    """

    __slots__ = ("own", "posts")

    def __init__(self, own: Mailbox) -> None:
        self.own = own  # the shard's own mailbox: posts to it need no batching
        # What each mailbox gets at the next flush (`Mailbox.post` fills it; only the owning thread).
        self.posts: dict[Mailbox, tuple[list[tuple[Callable[[Any], None], Any]], Tally | None]] = {}

    def flush(self) -> None:
        """Send everything added since the last flush."""
        posts = self.posts
        if posts:
            self.posts = {}
            for box, (items, tally) in posts.items():
                box.post_many(items, tally)

    def install(self) -> None:
        """Collect the calling thread's posts here from now on."""
        _thread.outbox = self

    def uninstall(self) -> None:
        """Send what is left, and post directly from now on."""
        _thread.outbox = None
        self.flush()


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
