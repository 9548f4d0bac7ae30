"""Fault injection for tests of code that uses a `Runtime`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ["ShardKilled", "kill_shard"]


class ShardKilled(SystemExit):
    """Raised inside a shard's loop machinery by `kill_shard` (escapes ``run_forever``)."""


def _die(_arg: Any) -> None:
    raise ShardKilled("killed by spargio.testing.kill_shard")


def kill_shard(runtime: Runtime, index: int) -> None:
    """Make shard ``index``'s thread die as if its loop had crashed.

    A `SystemExit` subclass is raised from the shard's own mailbox handling,
    outside any work, so it escapes the loop: the shard's thread ends, and
    the runtime must fail that shard's pending tickets with `ShardDiedError`.
    """
    runtime.shard_list[index].post(_die, None)
