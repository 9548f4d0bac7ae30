"""Row 34: where io_uring is blocked (Docker's and Kubernetes' default seccomp), the suite passes:
the io_uring cases skip with the cause and everything on threads runs.  Proved by running part of this
suite in a child process under the project's own seccomp helper."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

CHILD = """
import errno, sys
from spargio.testing import block_io_uring
block_io_uring(errno.EPERM)
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.mark.timeout(300)
def test_part_of_the_suite_passes_with_io_uring_blocked() -> None:
    part = [
        str(TESTS / "fs" / "test_paths.py"),
        str(TESTS / "test_backend.py"),
        str(TESTS / "native" / "test_ring.py"),
        str(TESTS / "boundary" / "test_channel.py") + "::test_service_loop_to_shard_and_back",
    ]
    done = subprocess.run(
        [sys.executable, "-P", "-c", CHILD, "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *part],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        cwd=TESTS.parent,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, \d+ skipped in [\d.]+s( \(.*\))?", summary), out[-4000:]
    assert "io_uring is unavailable here (io_uring_setup failed with EPERM" in out, out[-2000:]
