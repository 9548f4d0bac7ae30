"""Memory per idle connection: 10**4 connections open at once on spargio.net and on the loop's own server.

A child process opens the connections (so their client ends are not in the
server's RSS); the server, on asyncio or uvloop, accepts them through
``spargio.net.create_server`` or ``loop.create_server`` with a protocol that
does nothing.  Reported: the server's RSS growth per connection once all are
accepted, and whether each one still answers (a byte echoed on a sample).

    python benches/net_idle.py [--connections 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop

from spargio import net


class Idle(asyncio.Protocol):
    connections = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        Idle.connections += 1

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_clients(port: int, n: int, ready_w: int, done_r: int) -> None:
    """(child) Open ``n`` connections, send one byte on every 100th and read it back, wait."""
    clients = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        clients.append(s)
    for s in clients[::100]:
        s.sendall(b"!")
    answered = sum(1 for s in clients[::100] if s.recv(1) == b"!")
    os.write(ready_w, answered.to_bytes(4, "little"))
    os.read(done_r, 1)
    os._exit(0)


async def measure(impl: str, n: int) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    Idle.connections = 0
    create = net.create_server if impl == "spargio.net" else loop.create_server
    server = await create(Idle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    await asyncio.sleep(0.1)
    gc.collect()
    before = rss_kib()
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        open_clients(port, n, ready_w, done_r)
    answered_fut = loop.run_in_executor(None, os.read, ready_r, 4)
    deadline = time.monotonic() + 120
    while Idle.connections < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    answered = int.from_bytes(await answered_fut, "little")
    gc.collect()
    grown = rss_kib() - before
    os.write(done_w, b"x")
    os.waitpid(pid, 0)
    server.close()
    for fd in (ready_r, ready_w, done_r, done_w):
        os.close(fd)
    await asyncio.sleep(0.2)
    return grown * 1024 / max(Idle.connections, 1), answered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "LOOP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections * 2 + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if args.one:  # one measurement in a fresh process: no heap left over from another run
        impl, loop_name = args.one
        run = uvloop.run if loop_name == "uvloop" else asyncio.run
        per, answered = run(measure(impl, args.connections))
        print(f"{per:.0f} {answered}")
        return
    print(f"{args.connections} idle connections; server RSS growth per connection (1 in 100 checked live)")
    print("| server | asyncio | uvloop |")
    print("|---|---:|---:|")
    for impl in ("spargio.net", "loop"):
        cells = []
        for loop_name in ("asyncio", "uvloop"):
            out = subprocess.run(
                [sys.executable, "-P", __file__, "--connections", str(args.connections), "--one", impl, loop_name],
                check=True, capture_output=True, text=True,
            ).stdout.split()  # fmt: skip
            cells.append(f"{int(out[0]):,} B ({out[1]}/{args.connections // 100} answered)")
        print(f"| {impl} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
