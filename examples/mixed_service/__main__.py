"""``python -m mixed_service``: serve the data directory on uvloop until SIGINT or SIGTERM.

Prints one line, ``listening on http://HOST:PORT (io=MODE, ...)``, once the
socket accepts connections (``--port 0`` picks a free port; the line says
which), so a parent process can wait for it.  The log (stderr) says what the
guards of `mixed_service.server` refused, and what the stop did.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import uvloop
from aiohttp.log import access_logger

from . import server
from .app import DEFAULT_IO_TIMEOUT, DEFAULT_MAX_BODY, make_app
from .stores import MODES, make_store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mixed_service", description=__doc__.splitlines()[0])
    parser.add_argument("--io", choices=MODES, default="spargio", help="how the disk work is done")
    parser.add_argument(
        "--net",
        choices=("loop", "spargio"),
        default="loop",
        help="the connections' transports: the loop's own (uvloop's), or spargio.net's on io_uring",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--data-dir", required=True, help="the directory whose files are served")
    parser.add_argument("--shards", type=int, default=None, help="spargio's pool size (default: one per CPU)")
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, help="the largest PUT body, in bytes")
    parser.add_argument(
        "--max-connections", type=int, default=None, help="open connections at most (default: from ulimit -n)"
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=server.DEFAULT_IDLE_TIMEOUT, help="seconds a connection may idle"
    )
    parser.add_argument(
        "--io-timeout", type=float, default=DEFAULT_IO_TIMEOUT, help="seconds a body or response chunk may stall"
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=server.DEFAULT_SHUTDOWN_TIMEOUT,
        help="seconds requests in flight get at SIGTERM",
    )
    parser.add_argument("--access-log", action="store_true", help="log each request (off: it costs req/s)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    app = make_app(
        make_store(args.io, shards=args.shards), args.data_dir, max_body=args.max_body, io_timeout=args.io_timeout
    )
    service = await server.start(
        app,
        args.host,
        args.port,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
        shutdown_timeout=args.shutdown_timeout,
        access_log=access_logger if args.access_log else None,
        net=args.net,
    )
    try:
        print(
            f"listening on http://{service.host}:{service.port} (io={args.io}, net={args.net}, data={args.data_dir})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await service.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        uvloop.run(serve(args))
    except FileNotFoundError as exc:
        sys.exit(f"mixed_service: {exc}")


if __name__ == "__main__":
    main()
