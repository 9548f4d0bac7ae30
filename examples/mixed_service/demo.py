"""``make demo``: the mixed service under load, with each ``--io`` mode, beside nginx.

For each mode (spargio, aiofiles, to_thread, and spargio+net: spargio's disk work with the
connections on spargio.net's io_uring transports instead of uvloop's) it starts the service on
loopback, drives each endpoint with wrk (a warm-up, then three measured
runs whose medians are kept), and stops it; nginx serving the same files is the far anchor for GET.  It
prints one table (req/s, p50 and p99 latency, and spargio's ratios to the
other two modes), and writes it with a chart to ``--out``: demo.md,
demo.json and demo.png.  A second table shows each mode's memory with 32
clients that ask for a 16 MiB file and do not read it (peak RSS).  It exits 1 if any request failed, so a broken mode
cannot hide behind a fast number.

The machine is shared and noisy: compare the ratios within one run, not
absolute figures across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .stores import MODES

if TYPE_CHECKING:
    from collections.abc import Iterator

HERE = Path(__file__).resolve().parent
LOAD_SCRIPT = HERE / "load.lua"
DEFAULT_OUT = HERE / "results"


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    method: str
    prefix: str  # the URL path before a 4-digit index
    count: int  # how many names are cycled
    body: int = 0  # PUT body size in bytes


ENDPOINTS = (
    Endpoint("get", "GET /files (16 KiB)", "GET", "/files/small-", 256),
    Endpoint("put", "PUT /files (4 KiB, fsync, rename)", "PUT", "/files/put-", 64, body=4096),
    Endpoint("digest", "GET /digest (sha256 of 1 MiB)", "GET", "/digest/big-", 16),
)
SMALL_SIZE, BIG_SIZE, HUGE_SIZE = 16 << 10, 1 << 20, 16 << 20
SLOW_READERS = 32
NET_SERVER = "spargio+net"  # --io spargio --net spargio: the same service on spargio.net's transports


@dataclass(frozen=True)
class Memory:
    server: str
    rss_mib: float  # after the load, before the slow readers
    peak_mib: float  # VmHWM once the slow readers have waited
    readers: int = SLOW_READERS


@dataclass(frozen=True)
class Result:
    server: str  # a --io mode, or "nginx"
    endpoint: str
    rate: float  # requests/s, the median of the measured runs
    requests: int  # answered in all the measured runs
    failed: int  # socket errors plus non-2xx answers
    p50_ms: float
    p99_ms: float


# -- the data set, the servers, the load -------------------------------------


def make_data_set(root: Path) -> None:
    """256 small files (GET), 16 large ones (digest); the same bytes every run."""
    rng = random.Random(20261122)
    for i in range(256):
        (root / f"small-{i:04d}").write_bytes(rng.randbytes(SMALL_SIZE))
    for i in range(16):
        (root / f"big-{i:04d}").write_bytes(rng.randbytes(BIG_SIZE))
    (root / "huge").write_bytes(rng.randbytes(HUGE_SIZE))
    root.chmod(0o755)  # nginx's workers run as an unprivileged user


@contextlib.contextmanager
def running_service(server: str, data_dir: Path, shards: int | None) -> Iterator[tuple[str, int]]:
    """Start ``python -m mixed_service --io mode`` on a free loopback port; yield its URL and pid.

    ``server`` is an --io mode, or ``spargio+net``: --io spargio with --net spargio (the
    connections on spargio.net's io_uring transports instead of uvloop's).
    """
    mode, _, net = server.partition("+")
    command = [sys.executable, "-P", "-m", "mixed_service", "--io", mode, "--port", "0", "--data-dir", str(data_dir)]
    if net:
        command += ["--net", "spargio"]
    if shards is not None:
        command += ["--shards", str(shards)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # "listening on http://127.0.0.1:PORT (...)"
            if not line.startswith("listening on "):
                process.kill()
                raise RuntimeError(f"the {mode} service did not start: {line}{process.communicate()[1]}")
            yield line.split()[2], process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                _, errors = process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                _, errors = process.communicate()
            said = "\n".join(line for line in errors.splitlines() if " INFO " not in line)  # not its stop's log
            if said.strip():
                print(f"    the {mode} service said on stderr:\n{said.strip()}", file=sys.stderr)


@contextlib.contextmanager
def running_nginx(data_dir: Path) -> Iterator[str]:
    """nginx (one worker, sendfile on) serving ``data_dir`` at /files/ on a free loopback port."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="spargio-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(
            f"""
            daemon off;
            worker_processes 1;
            pid {prefix}/nginx.pid;
            error_log {prefix}/error.log;
            events {{ worker_connections 1024; }}
            http {{
                access_log off;
                sendfile on;
                tcp_nopush on;
                keepalive_requests 1000000;
                client_body_temp_path {prefix}/body;
                proxy_temp_path {prefix}/proxy;
                fastcgi_temp_path {prefix}/fastcgi;
                uwsgi_temp_path {prefix}/uwsgi;
                scgi_temp_path {prefix}/scgi;
                server {{
                    listen 127.0.0.1:{port};
                    location /files/ {{ alias {data_dir}/; }}
                }}
            }}
            """
        )
        with subprocess.Popen([_nginx(), "-p", prefix, "-c", str(conf)], stderr=subprocess.PIPE, text=True) as process:
            try:
                _wait_for_port(port, process)
                yield f"http://127.0.0.1:{port}"
            finally:
                process.send_signal(signal.SIGQUIT)  # graceful stop
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        raise RuntimeError("nginx is not installed (make demo installs Debian's nginx-light)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {process.communicate()[1]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on port {port} within {timeout} s")


def run_wrk(url: str, endpoint: Endpoint, seconds: int, connections: int) -> dict[str, Any]:
    """One wrk run (one thread, ``connections`` keep-alive connections); the load script's JSON summary."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (make demo installs Debian's wrk)")
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LOAD_SCRIPT), url]
    command += ["--", endpoint.method, endpoint.prefix, str(endpoint.count), str(endpoint.body)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def measure(server: str, url: str, endpoint: Endpoint, args: argparse.Namespace) -> Result:
    """A warm-up, then ``args.rounds`` measured wrk runs: the median of each figure, failures summed."""
    if args.warmup > 0:
        run_wrk(url, endpoint, args.warmup, args.connections)
    runs = [run_wrk(url, endpoint, args.seconds, args.connections) for _ in range(args.rounds)]
    return Result(
        server=server,
        endpoint=endpoint.key,
        rate=statistics.median(r["requests"] / (r["duration_us"] / 1e6) for r in runs),
        requests=sum(r["requests"] for r in runs),
        failed=sum(r["errors"] + r["non_2xx"] for r in runs),
        p50_ms=statistics.median(r["p50_us"] for r in runs) / 1e3,
        p99_ms=statistics.median(r["p99_us"] for r in runs) / 1e3,
    )


def measure_memory(server: str, url: str, pid: int) -> Memory:
    """32 clients ask for the 16 MiB file and never read; the service's RSS, and its peak RSS over the 2 s
    they wait (the peak is reset first through /proc/PID/clear_refs, so the load before does not count)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    rss = _status_mib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (root, or the service's own user)
    clients = []
    try:
        for _ in range(SLOW_READERS):
            client = socket.create_connection((host, int(port)))
            client.sendall(b"GET /files/huge HTTP/1.1\r\nHost: demo\r\n\r\n")
            clients.append(client)
        time.sleep(2.0)
        peak = _status_mib(pid, "VmHWM")
    finally:
        for client in clients:
            client.close()
    return Memory(server, rss, peak)


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


# -- the report --------------------------------------------------------------


def memory_table(memories: list[Memory]) -> str:
    lines = [
        f"| memory | server | RSS after the load | peak RSS with {SLOW_READERS} clients not reading a 16 MiB file |",
        "|---|---|---:|---:|",
    ]
    for m in memories:
        lines.append(f"| slow readers | {m.server} | {m.rss_mib:.0f} MB | **{m.peak_mib:.0f} MB** |")
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    """A Markdown table: a row per endpoint and server, spargio's ratios on its rows."""
    by = {(r.server, r.endpoint): r for r in results}
    lines = [
        "| endpoint | server | req/s | p50 ms | p99 ms | spargio ÷ aiofiles | spargio ÷ to_thread |"
        " spargio.net ÷ uvloop's transports |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint in ENDPOINTS:
        for server in (*MODES, NET_SERVER, "nginx"):
            r = by.get((server, endpoint.key))
            if r is None:
                continue
            ratios = ["", ""]
            if server == "spargio":
                for i, other in enumerate(("aiofiles", "to_thread")):
                    o = by.get((other, endpoint.key))
                    if o is not None and o.rate > 0:
                        ratios[i] = f"**{r.rate / o.rate:.2f}x** (p99 {r.p99_ms / o.p99_ms:.2f}x)"
            net_ratio = ""
            base = by.get(("spargio", endpoint.key))
            if server == NET_SERVER and base is not None and base.rate > 0:
                net_ratio = f"**{r.rate / base.rate:.2f}x** (p99 {r.p99_ms / base.p99_ms:.2f}x)"
            failed = f" ({r.failed} failed)" if r.failed else ""
            lines.append(
                f"| {endpoint.label} | {server}{failed} | {r.rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
                f"{ratios[0]} | {ratios[1]} | {net_ratio} |"
            )
    return "\n".join(lines)


def chart(results: list[Result], path: Path) -> None:
    """A panel per endpoint and metric (each on its own scale): req/s above, p99 below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "spargio": "#2a9d8f", NET_SERVER: "#264653", "aiofiles": "#e76f51", "to_thread": "#f4a261", "nginx": "#8d99ae"
    }  # fmt: skip
    fig, axes = plt.subplots(2, len(ENDPOINTS), figsize=(4 * len(ENDPOINTS), 6.4), squeeze=False)
    for column, endpoint in enumerate(ENDPOINTS):
        rows = [r for server in colours for r in results if r.server == server and r.endpoint == endpoint.key]
        names = [r.server for r in rows]
        for row, (values, unit) in enumerate((([r.rate for r in rows], "req/s"), ([r.p99_ms for r in rows], "p99 ms"))):
            ax = axes[row][column]
            bars = ax.bar(names, values, color=[colours[n] for n in names])
            ax.bar_label(bars, labels=[f"{v:,.0f}" if v >= 100 else f"{v:.1f}" for v in values], fontsize=8)
            ax.set_ylabel(unit)
            ax.margins(y=0.15)
            ax.grid(axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(endpoint.label, fontsize=10)
    fig.suptitle("the mixed service (aiohttp on uvloop) under wrk: req/s (higher is better), p99 (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- main ----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mixed_service.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="each measured wrk run (whole s)")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per endpoint and mode (median)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured wrk run before each (whole s)")
    parser.add_argument("--connections", type=int, default=32, help="wrk's keep-alive connections")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated --io modes to run")
    parser.add_argument("--shards", type=int, default=None, help="spargio's pool size (default: one per CPU)")
    parser.add_argument("--no-nginx", action="store_true", help="leave out the nginx anchor")
    parser.add_argument("--no-net", action="store_true", help="leave out the spargio+net rows (spargio.net transports)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where demo.md/json/png go")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}: choose from {', '.join(MODES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import spargio

    info = spargio.backend_info()
    servers = [*args.modes]
    if "spargio" in args.modes and not args.no_net and info.name == "io_uring":
        servers.append(NET_SERVER)
    steps = len(servers) * len(ENDPOINTS) + (0 if args.no_nginx else 1)
    budget = steps * (args.seconds * args.rounds + args.warmup)
    print(f"spargio {spargio.__version__} on {info.name} ({info.reason}); {os.cpu_count()} CPUs")
    print(
        f"{steps} rows, each {args.warmup} s of warm-up then the median of {args.rounds} wrk runs of {args.seconds} s"
        f" ({args.connections} connections): ~{budget} s"
    )
    results: list[Result] = []
    memories: list[Memory] = []
    step = 0

    def record(result: Result) -> None:
        nonlocal step
        step += 1
        failed = f"  {result.failed} FAILED" if result.failed else ""
        print(
            f"[{step:2d}/{steps}] {result.server:11s} {result.endpoint:6s} {result.rate:9,.0f} req/s"
            f"  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms{failed}",
            flush=True,
        )
        results.append(result)

    with tempfile.TemporaryDirectory(prefix="spargio-demo-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        Path(tmp).chmod(0o755)
        make_data_set(data_dir)
        for mode in servers:
            with running_service(mode, data_dir, args.shards) as (url, pid):
                for endpoint in ENDPOINTS:
                    record(measure(mode, url, endpoint, args))
                memories.append(measure_memory(mode, url, pid))
                print(f"        {mode:9s} peak RSS {memories[-1].peak_mib:.0f} MB with {SLOW_READERS} slow readers")
        if not args.no_nginx:
            with running_nginx(data_dir) as url:
                record(measure("nginx", url, ENDPOINTS[0], args))

    report = table(results) + "\n\n" + memory_table(memories)
    print()
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"spargio {spargio.__version__}, {info.name} backend, {os.cpu_count()} CPUs; wrk -t1 -c{args.connections}, "
        f"median of {args.rounds} runs of {args.seconds} s per row after {args.warmup} s of warm-up; "
        "service and wrk on one machine.\n\n"
    )
    (args.out / "demo.md").write_text(header + report + "\n")
    (args.out / "demo.json").write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    chart(results, args.out / "demo.png")
    print(f"\nwrote {args.out / 'demo.md'}, demo.json and demo.png")
    failed = sum(r.failed for r in results)
    if failed:
        print(f"{failed} requests failed: see the rows marked FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
