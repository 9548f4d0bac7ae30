"""The mixed service under hostile clients and operator faults (issue 13), in every --io mode.

Real sockets on loopback.  In-process cases serve with `mixed_service.server`
(what ``python -m mixed_service`` runs) on the test's loop; memory, signals,
descriptor limits and kill -9 run the real CLI in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mixed_service import server
from mixed_service.app import make_app
from mixed_service.stores import make_store

import spargio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODES = {  # --io mode, backend, --net
    "spargio-io_uring": ("spargio", "io_uring", "loop"),
    "spargio-net": ("spargio", "io_uring", "spargio"),  # the connections on spargio.net's transports
    "spargio-threads": ("spargio", "threads", "loop"),
    "aiofiles": ("aiofiles", None, "loop"),
    "to_thread": ("to_thread", None, "loop"),
}
BIG = 16 << 20


@pytest.fixture(params=list(MODES))
def mode(request) -> tuple[str, str | None, str]:
    io, backend, net = MODES[request.param]
    if backend == "io_uring" and spargio.backend_info().name != "io_uring":
        pytest.skip(f"io_uring is unavailable here ({spargio.backend_info().reason}); this case needs it")
    if backend is not None:
        spargio.configure(backend=backend)
    yield io, backend, net
    spargio.configure(backend="auto")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    return root


@contextlib.asynccontextmanager
async def serving(mode, data_dir: Path, **options):
    io, _, net = mode
    io_timeout = options.pop("io_timeout", 30.0)
    app = make_app(
        make_store(io, shards=2), str(data_dir), max_body=options.pop("max_body", 1 << 20), io_timeout=io_timeout
    )
    service = await server.start(app, "127.0.0.1", 0, net=net, **options)
    try:
        yield service
    finally:
        await service.stop()


async def http(port: int, raw: bytes, *, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` on a new connection; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        async with asyncio.timeout(timeout):
            return await read_response(reader)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def get(name: str) -> bytes:
    return f"GET /files/{name} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


# -- 1: compressed bodies --------------------------------------------------------


async def test_a_compressed_body_is_refused_without_inflating_it(mode, data_dir):
    bomb = gzip.compress(bytes(64 << 20))  # 64 MiB of zeros in ~64 KiB
    async with serving(mode, data_dir) as service:
        head = (
            f"PUT /files/bomb HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        started = loop.time()
        status, headers, body = await http(service.port, head + bomb)
        assert status == 415 and headers["content-type"].startswith("application/json")
        assert "gzip" in json.loads(body)["error"]
        assert loop.time() - started < 1.0
        status, _, body = await http(service.port, get("hello.txt"))  # the loop was never busy inflating
        assert (status, body) == (200, b"hello, world\n")
    assert not (data_dir / "bomb").exists()


# -- 2: bounded memory (in a subprocess: its RSS is the service's alone) ---------


def _env(backend: str | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES))
    if backend is not None:
        env["SPARGIO_BACKEND"] = backend
    return env


class Service(subprocess.Popen):
    """The CLI's process; its stderr is read as it comes (a full pipe would block its log)."""

    def start_reading_stderr(self) -> None:
        self.log: list[str] = []
        self._reading = threading.Thread(target=lambda: self.log.extend(self.stderr), daemon=True)
        self._reading.start()

    def stderr_text(self) -> str:
        self._reading.join(10)
        return "".join(self.log)


@contextlib.contextmanager
def cli(mode, data_dir: Path, *flags: str, nofile: int | None = None):
    """``python -m mixed_service`` in a subprocess: (process, port); SIGTERM and wait at the end."""
    io, backend, net = mode
    command = [sys.executable, "-P", "-m", "mixed_service", "--io", io, "--port", "0", "--data-dir", str(data_dir)]
    command += ["--net", net]
    limit = None if nofile is None else (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
    with Service(
        [*command, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(backend),
        preexec_fn=limit,  # setrlimit only, before exec
    ) as process:
        process.start_reading_stderr()
        try:
            line = process.stdout.readline()
            assert line.startswith("listening on http://127.0.0.1:"), line + process.stderr_text()
            yield process, int(line.split()[2].rsplit(":", 1)[1])
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(120)
async def test_slow_readers_and_unfinished_uploads_hold_bounded_memory(mode, data_dir):
    (data_dir / "big").write_bytes(os.urandom(BIG))
    with cli(mode, data_dir, "--max-body", str(32 << 20)) as (process, port):
        status, _, body = await http(port, get("big"), timeout=30)  # warm: code paths, buffers, pools
        assert status == 200 and len(body) == BIG
        before = rss_mib(process.pid)
        writers = []
        for _ in range(32):  # ask for 16 MiB and never read it
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(get("big"))
            writers.append(writer)
        part = os.urandom(8 << 20)
        for i in range(16):  # announce 15 MiB, send 8, stall
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"PUT /files/up{i} HTTP/1.1\r\nHost: t\r\nContent-Length: {15 << 20}\r\n\r\n".encode())
            writer.write(part)
            writers.append(writer)
        await asyncio.sleep(2.0)
        during = rss_mib(process.pid)
        for writer in writers:
            writer.transport.abort()
        # 32 x 16 MiB + 16 x 8 MiB would be 640 MiB if any mode held whole files or bodies.
        assert during - before < 80, f"RSS grew by {during - before:.0f} MiB"
        await asyncio.sleep(0.5)
        status, _, body = await http(port, get("hello.txt"))
        assert (status, body) == (200, b"hello, world\n")
    assert sorted(os.listdir(data_dir)) == ["big", "hello.txt"], "a cut upload left a file behind"


# -- 3: descriptors, the connection cap, idle and slow connections --------------


async def test_connections_over_the_cap_get_a_503_and_live_ones_keep_working(mode, data_dir):
    async with serving(mode, data_dir, max_connections=8) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(get("hello.txt"))
        assert (await read_response(reader))[0] == 200
        idle = [await asyncio.open_connection("127.0.0.1", service.port) for _ in range(7)]
        await asyncio.sleep(0.1)
        status, headers, body = await http(service.port, get("hello.txt"))
        assert status == 503 and headers["retry-after"] == "1"
        assert "too many connections" in json.loads(body)["error"]
        writer.write(get("hello.txt"))  # the live connection is still served
        assert (await read_response(reader))[:1] == (200,)
        for _, w in [*idle, (reader, writer)]:
            w.close()


@pytest.mark.timeout(120)
async def test_descriptor_exhaustion_is_a_503_with_retry_after(mode, data_dir):
    with cli(mode, data_dir, "--max-connections", "10000", nofile=128) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get("hello.txt"))
        assert (await read_response(reader))[0] == 200
        flood = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]  # the service runs out of fds
        await asyncio.sleep(1.0)
        writer.write(get("hello.txt"))
        status, headers, body = await asyncio.wait_for(read_response(reader), 10)
        assert status == 503, (status, body)
        assert headers["retry-after"] == "1" and "descriptors" in json.loads(body)["error"]
        for _, w in flood:
            w.transport.abort()
        writer.close()


async def test_the_default_cap_leaves_descriptors_for_live_connections(mode, data_dir):
    """ulimit -n 256: the cap is (256 - 128) / 2 = 64; 100 idle connections cannot starve a live one."""
    with cli(mode, data_dir, nofile=256) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get("hello.txt"))
        assert (await read_response(reader))[0] == 200
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(100)]
        await asyncio.sleep(0.5)
        for request in (get("hello.txt"), b"GET /digest/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"):
            writer.write(request)
            assert (await asyncio.wait_for(read_response(reader), 10))[0] == 200
        for _, w in idle:
            w.transport.abort()
        writer.close()


async def test_idle_and_slow_connections_are_closed(mode, data_dir):
    async with serving(mode, data_dir, idle_timeout=0.5) as service:
        loop = asyncio.get_running_loop()
        started = loop.time()
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", service.port)
        slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", service.port)
        request = get("hello.txt")[:-2]  # never finished
        for byte in request:  # a byte every 50 ms: slower than any real client
            slow_writer.write(bytes([byte]))
            await asyncio.sleep(0.05)
            if slow_reader.at_eof() or loop.time() - started > 3:
                break
        assert await asyncio.wait_for(idle_reader.read(), 3) == b""
        assert await asyncio.wait_for(slow_reader.read(), 3) == b""
        assert loop.time() - started < 3
        # A keep-alive connection that finished a request is closed once it idles as long.
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(get("hello.txt"))
        assert (await read_response(reader))[0] == 200
        assert await asyncio.wait_for(reader.read(), 3) == b""
        for w in (idle_writer, slow_writer, writer):
            w.close()


async def test_a_stalled_upload_gets_408_and_leaves_nothing(mode, data_dir):
    async with serving(mode, data_dir, io_timeout=0.3) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(f"PUT /files/stalled HTTP/1.1\r\nHost: t\r\nContent-Length: {1 << 20}\r\n\r\n".encode())
        writer.write(b"x" * 1000)
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 408 and "stalled" in json.loads(body)["error"]
        writer.close()
    assert sorted(os.listdir(data_dir)) == ["hello.txt"]


async def test_a_reader_that_stops_reading_is_cut(mode, data_dir):
    (data_dir / "big").write_bytes(os.urandom(BIG))
    async with serving(mode, data_dir, io_timeout=0.3) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port, limit=1 << 16)
        writer.transport.pause_reading()  # the kernel's buffers fill, then the service's send stalls
        writer.write(get("big"))
        await asyncio.sleep(1.5)
        writer.transport.resume_reading()
        received = 0
        async with asyncio.timeout(10):
            while chunk := await reader.read(1 << 20):
                received += len(chunk)
        assert received < BIG, "the whole file went out: the stalled send was never cut"
        writer.close()


# -- 4: SIGTERM with a slow client ------------------------------------------------


@pytest.mark.timeout(60)
async def test_sigterm_stops_within_seconds_despite_a_slow_client(mode, data_dir):
    (data_dir / "big").write_bytes(os.urandom(BIG))
    with cli(mode, data_dir) as (process, port):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.pause_reading()
        writer.write(get("big"))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, timeout=30)
        took = time.monotonic() - started
        writer.transport.abort()
        err = process.stderr_text()
    assert process.returncode == 0, err
    assert took < 5, f"SIGTERM took {took:.1f} s"
    assert "stopping: the listener is closed; 1 connection(s) open" in err
    assert "Traceback" not in err


# -- 5: kill -9 leaves temporary files; the next start removes them ---------------


@pytest.mark.timeout(60)
async def test_a_restart_sweeps_what_kill_9_left(mode, data_dir):
    with cli(mode, data_dir) as (process, port):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"PUT /files/cut HTTP/1.1\r\nHost: t\r\nContent-Length: {4 << 20}\r\n\r\n".encode())
        writer.write(os.urandom(1 << 20))
        await writer.drain()
        for _ in range(100):  # until the upload's temporary file exists
            if any(name.startswith(".cut.") for name in os.listdir(data_dir)):
                break
            await asyncio.sleep(0.05)
        process.kill()
        process.wait()
        writer.transport.abort()
    left = [name for name in os.listdir(data_dir) if name.startswith(".")]
    assert left, "the cut upload left no temporary file: the test proves nothing"
    live = data_dir / f".other.tmp-{os.getpid()}-1"  # a live writer's file (ours) is left alone
    live.write_bytes(b"being written")
    with cli(mode, data_dir):
        pass  # the sweep runs before the service listens
    assert sorted(os.listdir(data_dir)) == sorted(["hello.txt", live.name])


# -- 6: errors that are the server's fault ---------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {done.stderr.decode().strip()}")
    try:
        (mount / "hello.txt").write_bytes(b"hello, world\n")
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_read_only_file_system_is_a_503_that_says_so(mode, small_tmpfs):
    async with serving(mode, small_tmpfs) as service:
        subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
        status, _, body = await http(service.port, b"PUT /files/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        assert status == 503 and "read-only" in json.loads(body)["error"]
        status, _, body = await http(service.port, get("hello.txt"))  # reads still work
        assert (status, body) == (200, b"hello, world\n")


async def test_a_full_disk_is_507_and_leaves_nothing(mode, small_tmpfs):
    async with serving(mode, small_tmpfs, max_body=8 << 20) as service:
        body = os.urandom(6 << 20)
        status, _, answer = await http(
            service.port, f"PUT /files/big HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        assert status == 507, answer
    assert sorted(os.listdir(small_tmpfs)) == ["hello.txt"]


async def test_a_missing_data_directory_is_a_server_fault(mode, data_dir):
    async with serving(mode, data_dir) as service:
        (data_dir / "hello.txt").unlink()
        data_dir.rmdir()
        for request in (b"PUT /files/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", get("hello.txt")):
            status, _, body = await http(service.port, request)
            assert status == 503 and "data directory is missing" in json.loads(body)["error"]


# -- 7 and 8: malformed requests: JSON answers, one log line each, rate limited ----

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /files/hello.txt HTTP/9.9\r\n\r\n",
    b"GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n",
    b"GET /files/hello.txt HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    b"PUT /files/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
]


async def test_malformed_requests_get_json_and_one_concise_line_each(mode, data_dir, caplog):
    caplog.set_level(logging.INFO)
    async with serving(mode, data_dir) as service:
        for raw in MALFORMED:
            status, headers, body = await http(service.port, raw)
            assert 400 <= status < 500, (raw[:40], status)
            assert headers["content-type"].startswith("application/json"), (raw[:40], headers)
            assert "error" in json.loads(body)
        status, headers, body = await http(
            service.port, b"PUT /files/x HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx"
        )
        assert status == 417 and "teapot" in json.loads(body)["error"]
    assert not [r for r in caplog.records if r.exc_info], "a malformed request logged a traceback"
    rejected = [r for r in caplog.records if r.getMessage().startswith("rejected ")]
    assert len(rejected) == len(MALFORMED)
    assert all(len(r.getMessage()) < 300 for r in rejected)


async def test_a_flood_of_malformed_requests_is_rate_limited_in_the_log(mode, data_dir, caplog):
    caplog.set_level(logging.INFO)
    async with serving(mode, data_dir) as service:
        answers = await asyncio.gather(*(http(service.port, b"GARBAGE\r\n\r\n") for _ in range(300)))
    assert all(status == 400 for status, _, _ in answers)
    rejected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rejected ")]
    assert 1 <= len(rejected) <= 30, len(rejected)
