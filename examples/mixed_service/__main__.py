"""``python -m mixed_service``: serve the data directory on uvloop until SIGINT or SIGTERM.

Prints one line, ``listening on http://HOST:PORT (io=MODE, ...)``, once the
socket accepts connections (``--port 0`` picks a free port; the line says
which), so a parent process can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import uvloop
from aiohttp import web
from aiohttp.log import access_logger

from .app import DEFAULT_MAX_BODY, make_app
from .stores import MODES, make_store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mixed_service", description=__doc__.splitlines()[0])
    parser.add_argument("--io", choices=MODES, default="spargio", help="how the disk work is done")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--data-dir", required=True, help="the directory whose files are served")
    parser.add_argument("--shards", type=int, default=None, help="spargio's pool size (default: one per CPU)")
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, help="the largest PUT body, in bytes")
    parser.add_argument("--access-log", action="store_true", help="log each request (off: it costs req/s)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    app = make_app(make_store(args.io, shards=args.shards), args.data_dir, max_body=args.max_body)
    runner = web.AppRunner(app, access_log=access_logger if args.access_log else None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port, backlog=1024)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"listening on http://{host}:{port} (io={args.io}, data={args.data_dir})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        uvloop.run(serve(args))
    except FileNotFoundError as exc:
        sys.exit(f"mixed_service: {exc}")


if __name__ == "__main__":
    main()
