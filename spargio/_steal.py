"""Placement and work stealing: where a piece of work runs (pure Python, no ring).

Theory of operation
-------------------
A runtime of N shards asks this module two questions:

1. *At submission*: which shard's inbox does this work go to, and may other
   shards steal it while it waits?  `Scheduler.place` answers from the work's
   placement and a snapshot of the shards' loads (queued + in-flight ops):

   ========================  ==========================================  =========
   placement                 shard chosen                                stealable
   ========================  ==========================================  =========
   ``Pinned(i)``             ``i``                                       no
   ``RoundRobin()``          the next shard in turn                      no
   ``Sticky(key)``           the same shard for equal keys               no
   ``Stealable()``           the lighter of two random shards            yes
                             ("power of two choices")
   ``StealablePreferred(i)`` ``i``                                       yes
   ========================  ==========================================  =========

   Power of two choices keeps the maximum load within O(log log n) of the
   mean while reading only two loads, so steering stays O(1) whatever N is.

2. *When a shard runs dry*: whom does it steal from?  `Scheduler.victim`
   names the shard with the most stealable work waiting (never the thief
   itself), or None when no shard has enough to share.  The thief takes from
   the *back* of the victim's inbox (the newest work, coldest in the victim's
   caches); work that has started never moves, because an asyncio task is
   bound to its loop and its in-flight I/O to that shard's ring.

Loads are snapshots read without locks; a stale snapshot only makes a choice
slightly worse, never wrong, so no synchronisation is needed here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

__all__ = [
    "ASYNC_STEAL_DEPTH",
    "MIN_STEAL_DEPTH",
    "Decision",
    "Pinned",
    "Placement",
    "RoundRobin",
    "Scheduler",
    "Stealable",
    "StealablePreferred",
    "Sticky",
]

# A victim must have at least this many stealable items waiting: stealing a
# victim's only item just moves the wait (and the wakeup cost) elsewhere.
MIN_STEAL_DEPTH: Final = 2
# Coroutine work is stealable only when it lands behind at least this many queued items: a shard
# starts that many tickets per loop iteration, and a coroutine ticket only becomes a task there, so
# in a shallower inbox it starts within one iteration wherever it is.
ASYNC_STEAL_DEPTH: Final = 64


@dataclass(frozen=True, slots=True)
class Pinned:
    """Run on shard ``shard``, always; never stolen."""

    shard: int


@dataclass(frozen=True, slots=True)
class RoundRobin:
    """Run on the shards in turn; never stolen (the static, thread-per-core shape)."""


@dataclass(frozen=True, slots=True)
class Sticky:
    """Run every item with an equal ``key`` on the same shard; never stolen."""

    key: Hashable


@dataclass(frozen=True, slots=True)
class Stealable:
    """Go to the less loaded of two random shards; idle shards may steal it (the default)."""


@dataclass(frozen=True, slots=True)
class StealablePreferred:
    """Go to shard ``shard``; idle shards may steal it while it waits."""

    shard: int


Placement = Pinned | RoundRobin | Sticky | Stealable | StealablePreferred


class Decision(NamedTuple):
    """Where submitted work goes and whether it may be stolen while queued."""

    shard: int
    stealable: bool


class Scheduler:
    """The placement and stealing policy for ``shards`` shards.

    :param shards: number of shards (>= 1).
    :param rng: source of randomness for power-of-two choices (seed it in tests).
    :raises ValueError: ``shards`` < 1.
    """

    def __init__(self, shards: int, rng: random.Random | None = None) -> None:
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be an int >= 1, not {shards!r}")
        self.shards = shards
        self._random = (rng or random.Random()).random
        self._next = 0

    def _check_shard(self, shard: int, what: str) -> int:
        if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < self.shards:
            raise ValueError(f"{what}: shard must be in 0..{self.shards - 1}, not {shard!r}")
        return shard

    def place(self, placement: Placement, loads: Sequence[int]) -> Decision:
        """Choose the shard for new work.

        :param loads: per shard, queued items + in-flight ops (a snapshot).
        :raises ValueError: a shard index out of range, or ``loads`` of the wrong length.
        :raises TypeError: an unknown placement.
        """
        if len(loads) != self.shards:
            raise ValueError(f"expected {self.shards} loads, got {len(loads)}")
        if isinstance(placement, Stealable):
            return Decision(self.least_loaded_of_two(loads), True)
        if isinstance(placement, Pinned):
            return Decision(self._check_shard(placement.shard, "Pinned"), False)
        if isinstance(placement, StealablePreferred):
            return Decision(self._check_shard(placement.shard, "StealablePreferred"), True)
        if isinstance(placement, RoundRobin):
            shard = self._next
            self._next = (shard + 1) % self.shards
            return Decision(shard, False)
        if isinstance(placement, Sticky):
            return Decision(hash(placement.key) % self.shards, False)
        raise TypeError(f"unknown placement {placement!r}")

    def least_loaded_of_two(self, loads: Sequence[int]) -> int:
        """Power of two choices: the less loaded of two distinct random shards (reads two loads)."""
        n = self.shards
        if n == 1:
            return 0
        random = self._random
        a = int(random() * n)
        b = int(random() * (n - 1))
        if b >= a:
            b += 1  # two distinct shards
        return a if loads[a] <= loads[b] else b

    def victim(self, thief: int, stealable_depths: Sequence[int]) -> int | None:
        """The shard an idle ``thief`` should steal from, or None.

        :param stealable_depths: per shard, how deep its stealable work waits
            (the runtime counts queued stealable items plus the items running
            ahead of them; 0 when nothing is stealable).
        """
        self._check_shard(thief, "victim")
        best, best_depth = None, MIN_STEAL_DEPTH - 1
        for shard, depth in enumerate(stealable_depths):
            if shard != thief and depth > best_depth:
                best, best_depth = shard, depth
        return best
