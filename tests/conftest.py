"""Every async test runs on asyncio and on uvloop; every test checks the books.

Where io_uring is blocked (a container's seccomp profile, the sysctl, an old
kernel), the io_uring cases skip with the cause `backend_info()` gives and
everything on threads still runs: the io_uring parameter of the ``backend``
and ``shape`` fixtures skips, and so does any test marked ``io_uring``.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from typing import TYPE_CHECKING, Any

import pytest
import uvloop

import spargio
from spargio.testing import Books

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

with warnings.catch_warnings():
    warnings.simplefilter("ignore", spargio.BackendFallbackWarning)  # the probe's one warning, taken here
    _INFO = spargio.backend_info()
HAS_IO_URING = _INFO.name == "io_uring"
NO_IO_URING = f"io_uring is unavailable here ({_INFO.reason}); this case needs it"


def pytest_configure(config: pytest.Config) -> None:
    if not HAS_IO_URING:  # every fresh probe (spargio.configure) warns again: expected here, not an error
        config.addinivalue_line("filterwarnings", "ignore::spargio.BackendFallbackWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_IO_URING:
        return
    skip = pytest.mark.skip(reason=NO_IO_URING)
    for item in items:
        if item.get_closest_marker("io_uring") is not None:
            item.add_marker(skip)


def skip_without_io_uring(name: str) -> None:
    """Skip the running test if it needs io_uring (``name`` is a backend or wakeup) and it is blocked."""
    if name in ("io_uring", "msg_ring", "eventfd") and not HAS_IO_URING:
        pytest.skip(NO_IO_URING)


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
    skip_without_io_uring(request.param)
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
    skip_without_io_uring(SHAPES[request.param]["backend"])
    return SHAPES[request.param]


@pytest.fixture
async def rt(shape: dict[str, Any]) -> AsyncIterator[spargio.Runtime]:
    """A started 4-shard runtime (4 even on a 2-core machine), closed after the test."""
    async with spargio.Runtime(shards=4, **shape) as runtime:
        yield runtime
