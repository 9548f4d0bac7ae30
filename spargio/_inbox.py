"""A shard's inbox: the bounded queue of work that has not started yet.

Two deques under one lock: ``_own`` holds work that must run on this shard
(pinned, round-robin, sticky), ``_stealable`` holds work other shards may
take (stolen work included: it has not started, so it may move again).  The owner takes the oldest item of either
(tickets carry a global sequence number); a thief takes the newest stealable
items, from the back, which are the coldest in the owner's caches and the
last the owner would have reached.  Lengths are read without the lock for
load estimates: a stale length only makes a placement slightly worse.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._ticket import Work

__all__ = ["Inbox"]


class Inbox:
    """A bounded two-lane queue of tickets for one shard.

    :param capacity: the most tickets it holds; `put` refuses more.
    """

    def __init__(self, capacity: int) -> None:
        self._lock = threading.Lock()
        # The two lanes.  Read-only outside this class, where their truth and lengths are the
        # lock-free "anything queued?" checks of the hot paths (a method call costs more).
        self.own: deque[Work[Any]] = deque()
        self.stealable: deque[Work[Any]] = deque()
        self.capacity = capacity
        self._closed: Callable[[], BaseException] | None = None
        self.accepted = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self.own) + len(self.stealable)

    @property
    def stealable_depth(self) -> int:
        return len(self.stealable)

    def put(self, ticket: Work[Any]) -> bool:
        """Queue ``ticket``; False if the inbox is full.

        :raises ClosedError: the inbox was closed (the error its closer chose).
        """
        with self._lock:
            if self._closed is not None:
                raise self._closed()
            if len(self.own) + len(self.stealable) >= self.capacity:
                self.rejected += 1
                return False
            (self.stealable if ticket.stealable else self.own).append(ticket)
            self.accepted += 1
            return True

    def take(self) -> Work[Any] | None:
        """The owner's side: the oldest ticket, or None.

        One at a time: a ticket left in the inbox can still be stolen while
        the owner runs the one before it.
        """
        own, stealable = self.own, self.stealable
        if not own and not stealable:
            return None
        with self._lock:
            if not stealable or (own and own[0].seq < stealable[0].seq):
                return own.popleft() if own else None
            return stealable.popleft()

    def steal(self, limit: int) -> list[Work[Any]]:
        """A thief's side: up to ``limit`` stealable tickets from the back, returned oldest first."""
        with self._lock:
            n = min(limit, len(self.stealable))
            got = [self.stealable.pop() for _ in range(n)]
        got.reverse()
        return got

    def adopt(self, tickets: list[Work[Any]]) -> None:
        """Queue stolen tickets here.  They stay stealable: a thief that is
        busy with the first may lose the rest to another idle shard."""
        with self._lock:
            self.stealable.extend(tickets)

    def close(self, error: Callable[[], BaseException]) -> list[Work[Any]]:
        """Refuse new tickets with ``error()`` from now on; return those still queued."""
        with self._lock:
            self._closed = error
            left = [*self.own, *self.stealable]
            self.own.clear()
            self.stealable.clear()
        return left
