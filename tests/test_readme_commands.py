"""Every command the README shows works when pasted from the project root (issue 16 item 20).

``make`` targets are checked with a dry run (``make -n``: the target exists and
its recipe expands; CI runs ``make test`` itself, and ``tests/examples`` runs
the demo).  Every other command in a ``sh`` block runs for real, from the
project root, on this test's interpreter, with a free port and a fresh data
directory: the service must answer, then stop on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)
COMMANDS = [
    line.split("#")[0].strip() for block in SH_BLOCKS for line in block.splitlines() if line.split("#")[0].strip()
]
MAKE_TARGETS = sorted(
    set(re.findall(r"`make ([a-z][a-z-]*)`", README)) | {c.split()[1] for c in COMMANDS if c.startswith("make ")}
)
OTHER_COMMANDS = [c for c in COMMANDS if not c.startswith("make ")]


def test_the_readme_shows_commands() -> None:
    assert {"demo", "test"} <= set(MAKE_TARGETS)
    assert OTHER_COMMANDS, "the README's service command is gone: update this test"


@pytest.mark.parametrize("target", MAKE_TARGETS)
def test_each_make_target_the_readme_names_exists(target: str) -> None:
    done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", OTHER_COMMANDS)
def test_each_other_command_runs_from_the_project_root(command: str, tmp_path: Path) -> None:
    port = _free_port()
    words = shlex.split(command)
    env_words = [w for w in words if re.fullmatch(r"[A-Z_]+=.*", w)]
    argv = words[len(env_words) :]
    assert argv[0] == ".venv/bin/python", f"a new kind of command: teach this test to run it: {command}"
    argv[0] = sys.executable  # this run's interpreter (CI runs the suite on several)
    for flag, value in (("--port", str(port)), ("--data-dir", str(tmp_path))):
        argv[argv.index(flag) + 1] = value
    env = {**os.environ, **dict(w.split("=", 1) for w in env_words)}
    with subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            stats = _wait_for_stats(port, proc)
            assert stats["io"] == argv[argv.index("--io") + 1], stats
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def _wait_for_stats(port: int, proc: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"the command exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as response:
                return dict(json.load(response))
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the service never answered")
