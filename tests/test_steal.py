"""The placement and stealing policy, without any ring or thread."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from spargio._steal import (
    MIN_STEAL_DEPTH,
    Decision,
    Pinned,
    RoundRobin,
    Scheduler,
    Stealable,
    StealablePreferred,
    Sticky,
)


def test_pinned_and_preferred_go_where_they_are_told():
    s = Scheduler(4)
    assert s.place(Pinned(2), [9, 0, 9, 0]) == Decision(2, stealable=False)
    assert s.place(StealablePreferred(3), [0, 0, 0, 99]) == Decision(3, stealable=True)
    for bad in (-1, 4, True, "1"):
        with pytest.raises(ValueError):
            s.place(Pinned(bad), [0] * 4)  # type: ignore[arg-type]


def test_round_robin_cycles_and_is_never_stolen():
    s = Scheduler(3)
    decisions = [s.place(RoundRobin(), [0, 0, 0]) for _ in range(7)]
    assert [d.shard for d in decisions] == [0, 1, 2, 0, 1, 2, 0]
    assert not any(d.stealable for d in decisions)


def test_sticky_keys_stay_together():
    s = Scheduler(8)
    for key in ("user-1", 42, ("a", 1)):
        shards = {s.place(Sticky(key), [0] * 8).shard for _ in range(20)}
        assert len(shards) == 1
    spread = {s.place(Sticky(f"k{i}"), [0] * 8).shard for i in range(200)}
    assert len(spread) == 8, "distinct keys should use every shard"


def test_two_choices_never_picks_the_heavier_of_its_pair_and_avoids_the_hot_shard():
    s = Scheduler(4, random.Random(1))
    loads = [100, 0, 0, 0]
    picks = Counter(s.place(Stealable(), loads).shard for _ in range(10_000))
    # shard 0 is chosen only if both random choices were shard 0, which cannot happen (distinct)
    assert picks[0] == 0
    assert all(picks[i] > 2500 for i in (1, 2, 3))


def test_two_choices_balances_a_stream_of_work():
    n = 8
    s = Scheduler(n, random.Random(2))
    loads = [0] * n
    for _ in range(8000):
        loads[s.place(Stealable(), loads).shard] += 1
    assert max(loads) - min(loads) <= 4, loads


def test_one_shard_and_bad_arguments():
    s = Scheduler(1)
    assert s.place(Stealable(), [5]) == Decision(0, True)
    with pytest.raises(ValueError):
        s.place(Stealable(), [0, 0])
    with pytest.raises(TypeError):
        s.place("anywhere", [0])  # type: ignore[arg-type]
    for bad in (0, -2, True, 1.5):
        with pytest.raises(ValueError):
            Scheduler(bad)  # type: ignore[arg-type]


def test_victim_is_the_busiest_other_shard_with_enough_to_share():
    s = Scheduler(4)
    assert s.victim(0, [0, 3, 7, 2]) == 2
    assert s.victim(2, [0, 3, 7, 2]) == 1, "a shard never steals from itself"
    assert s.victim(0, [50, 0, 0, 0]) is None
    assert s.victim(1, [MIN_STEAL_DEPTH - 1] * 4) is None
    assert s.victim(1, [MIN_STEAL_DEPTH, 0, 0, 0]) == 0
