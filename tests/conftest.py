"""Every async test runs on asyncio and on uvloop; every test checks the books."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest
import uvloop

import spargio
from spargio.testing import Books

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

if os.environ.get("CI") == "true":
    # CI tests the installed package, not the checkout.
    assert "site-packages" in spargio.__file__, f"testing the checkout: {spargio.__file__}"

# uvloop opens a process-wide pipe the first time a loop runs; open it now so
# that the fd books of the first uvloop test do not count it as a leak.
_warm = uvloop.new_event_loop()
_warm.run_until_complete(asyncio.sleep(0))
_warm.close()
del _warm


def pytest_asyncio_loop_factories(config, item):
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
def books() -> Iterator[Books]:
    """Fail a test whose books do not balance: ops in flight, ops unfinished, fds leaked."""
    taken = Books.take()
    yield taken
    taken.check()


@pytest.fixture
def data_file(tmp_path) -> tuple[str, bytes]:
    """A 1 MiB file of random bytes."""
    content = os.urandom(1 << 20)
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    return str(path), content


@pytest.fixture(params=["io_uring", "threads"])
def backend(request) -> Iterator[str]:
    """Run the test on each backend (chosen for loops created from now on)."""
    spargio.configure(backend=request.param)
    yield request.param
    spargio.configure(backend="auto")


# Shard shapes: io_uring with MSG_RING wakeups, io_uring with eventfd wakeups,
# and the thread backend (epoll shards).
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
