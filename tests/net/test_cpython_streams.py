"""CPython's own asyncio stream tests pass with spargio.net's stream helpers in asyncio's place."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("cpython_streams.py")


@pytest.mark.io_uring
@pytest.mark.skipif(
    importlib.util.find_spec("test.test_asyncio") is None,
    reason="this Python has no test.test_asyncio (Debian ships it in a separate package)",
)
def test_cpython_test_streams_on_spargio_net() -> None:
    command = [sys.executable, "-P", str(RUNNER)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    words = last.split()
    assert done.returncode == 0 and words[:1] == ["ran"], done.stderr[-3000:]
    counts = dict(zip(words[::2], map(int, words[1::2]), strict=True))
    assert counts["failures"] == 0 and counts["errors"] == 0, done.stderr[-3000:]
    assert counts["ran"] > 50
    assert counts["ring"] > 0  # the swap took: the tests ran on RingTransports
