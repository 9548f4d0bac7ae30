"""Boundary tests: every test on asyncio and uvloop; those with shards on every shard shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import spargio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def rt1(shape: dict[str, Any]) -> AsyncIterator[spargio.Runtime]:
    """A one-shard runtime with room for one queued ticket: easy to fill and to block."""
    async with spargio.Runtime(shards=1, inbox_capacity=1, **shape) as runtime:
        yield runtime
