"""Runtime tests run on every shard shape: io_uring with MSG_RING wakeups,
io_uring with eventfd wakeups, and the thread backend (epoll shards)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import spargio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SHAPES: dict[str, dict[str, Any]] = {
    "msg_ring": {"backend": "io_uring", "wakeup": "msg_ring"},
    "eventfd": {"backend": "io_uring", "wakeup": "eventfd"},
    "threads": {"backend": "threads", "wakeup": "eventfd"},
}


@pytest.fixture(params=list(SHAPES))
def shape(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Runtime options of one shard shape."""
    return SHAPES[request.param]


@pytest.fixture
async def rt(shape: dict[str, Any]) -> AsyncIterator[spargio.Runtime]:
    """A started 4-shard runtime (4 even on a 2-core machine), closed after the test."""
    async with spargio.Runtime(shards=4, **shape) as runtime:
        yield runtime
