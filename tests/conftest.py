"""Every async test runs on asyncio and on uvloop; every test checks the books."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import pytest
import uvloop

import spargio
from spargio.testing import Books

if TYPE_CHECKING:
    from collections.abc import Iterator

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
