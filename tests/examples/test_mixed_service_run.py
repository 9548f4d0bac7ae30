"""The service as users start it (python -m mixed_service), and make demo's driver, for real.

The service runs in a subprocess on uvloop, talks HTTP on loopback, and
stops on SIGTERM with nothing on stderr but
the stop's own two log lines.  The demo test runs wrk and nginx
(installed by `make deps`) against every mode with short runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from mixed_service.demo import NET_SERVER
from mixed_service.stores import MODES

import spargio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES))
    if spargio.backend_info().name != "io_uring":  # io_uring blocked: threads, asked for (no fallback warning)
        env["SPARGIO_BACKEND"] = "threads"
    return env


@pytest.mark.parametrize("io", MODES)
async def test_the_service_serves_on_loopback_and_stops_on_sigterm(tmp_path, io):
    (tmp_path / "a.txt").write_bytes(b"alpha")
    command = [sys.executable, "-P", "-m", "mixed_service", "--io", io, "--port", "0", "--data-dir", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()) as service:
        try:
            line = service.stdout.readline()
            assert line.startswith("listening on http://127.0.0.1:"), line + service.stderr.read()
            url = line.split()[2]
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/files/a.txt") as response:
                    assert response.status == 200
                    assert await response.read() == b"alpha"
                async with session.put(f"{url}/files/b.txt", data=b"beta") as response:
                    assert response.status == 200
                async with session.get(f"{url}/digest/b.txt") as response:
                    assert (await response.json())["sha256"].startswith("f44e64e7")
                async with session.get(f"{url}/stats") as response:
                    assert (await response.json())["io"] == io
        finally:
            service.send_signal(signal.SIGTERM)
            _, err = service.communicate(timeout=30)
    assert service.returncode == 0
    # Nothing but the stop's own log lines: no traceback, no warning.
    logged = [line.split(" ", 3)[3] for line in err.splitlines()]
    assert len(logged) == 2, err
    assert (
        logged[0] == "INFO stopping: the listener is closed; 0 connection(s) open, up to 2.0 s for requests in flight"
    )
    assert logged[1].startswith("INFO stopped in "), err
    assert (tmp_path / "b.txt").read_bytes() == b"beta"


def test_a_missing_data_dir_is_a_clear_error(tmp_path):
    command = [sys.executable, "-P", "-m", "mixed_service", "--port", "0", "--data-dir", str(tmp_path / "nope")]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=30, check=False)
    assert done.returncode == 1
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(180)
def test_the_demo_drives_every_mode_and_nginx_with_wrk(tmp_path):
    command = [sys.executable, "-P", "-m", "mixed_service.demo", "--seconds", "1", "--rounds", "1", "--warmup", "0"]
    command += ["--shards", "2", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=170, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads((tmp_path / "demo.json").read_text())
    servers = [*MODES, NET_SERVER] if spargio.backend_info().net else list(MODES)  # spargio+net: on io_uring
    assert {(r["server"], r["endpoint"]) for r in rows} == {
        *((server, endpoint) for server in servers for endpoint in ("get", "put", "digest")),
        ("nginx", "get"),
    }
    assert all(r["requests"] > 0 and r["failed"] == 0 for r in rows)
    assert "spargio ÷ aiofiles" in done.stdout
    steps = 3 * len(servers) + 1
    assert f"[{steps}/{steps}] nginx" in done.stdout
    assert (tmp_path / "demo.png").read_bytes().startswith(b"\x89PNG")
    report = (tmp_path / "demo.md").read_text()
    assert "| GET /files (16 KiB) | spargio |" in report
    assert all(f"| slow readers | {mode} |" in report for mode in MODES)
