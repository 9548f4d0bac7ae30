"""An unchanged aiohttp app served through spargio.net: sites, FileResponse by splice, shards."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

import spargio
from spargio import net
from spargio.net import aiohttp as net_aiohttp

if TYPE_CHECKING:
    import pytest

BODY = os.urandom((1 << 20) + 11)


def make_app(tmp: str) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello from {threading.current_thread().name}")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    async def file(request: web.Request) -> web.StreamResponse:
        return net_aiohttp.FileResponse(os.path.join(tmp, "body.bin"))

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/echo", echo)
    app.router.add_get("/file", file)

    async def own_file(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(os.path.join(tmp, "body.bin"))  # aiohttp's own

    app.router.add_get("/own-file", own_file)
    return app


async def exercise(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/") as resp:
            hello = await resp.text()
        async with session.post(base + "/echo", data=b"p" * 300_000) as resp:
            echoed = await resp.read()
        async with session.get(base + "/file") as resp:
            body = await resp.read()
        async with session.get(base + "/file", headers={"Range": "bytes=5-104"}) as resp:
            ranged = (resp.status, await resp.read())
        async with session.get(base + "/own-file") as resp:  # aiohttp's own: loop.sendfile or its chunks
            own = await resp.read()
    return {"hello": hello, "echoed": len(echoed), "file": body == BODY, "range": ranged, "own": own == BODY}


async def test_app_on_a_spargio_site(tmp_path: Any, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "body.bin").write_bytes(BODY)
    from spargio.net import _sendfile

    spliced: list[int] = []
    real = _sendfile._splice_all

    async def counting(transport: Any, fd: int, offset: int, count: int | None) -> int:
        sent = await real(transport, fd, offset, count)
        spliced.append(sent)
        return sent

    monkeypatch.setattr(_sendfile, "_splice_all", counting)
    runner = web.AppRunner(make_app(str(tmp_path)))
    await runner.setup()
    site = net_aiohttp.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        seen = await exercise(f"http://127.0.0.1:{site.port}")
    finally:
        await runner.cleanup()
    assert seen["hello"].startswith("hello")
    assert seen["echoed"] == 300_000 and seen["file"] and seen["own"]
    assert seen["range"] == (206, BODY[5:105])
    # on io_uring both file responses went by splice; on threads aiohttp's own path ran
    assert spliced == ([len(BODY), 100] if backend == "io_uring" else [])


async def test_unix_site(tmp_path: Any, backend: str) -> None:
    (tmp_path / "body.bin").write_bytes(BODY)
    runner = web.AppRunner(make_app(str(tmp_path)))
    await runner.setup()
    path = str(tmp_path / "app.sock")
    site = net_aiohttp.UnixSite(runner, path)
    await site.start()
    try:
        connector = aiohttp.UnixConnector(path=path)
        async with aiohttp.ClientSession(connector=connector) as session, session.get("http://app/file") as resp:
            assert await resp.read() == BODY
    finally:
        await runner.cleanup()


async def test_app_on_every_shard(tmp_path: Any, backend: str) -> None:
    """One app per shard behind SO_REUSEPORT: requests are handled on the shards, spread by peer."""
    (tmp_path / "body.bin").write_bytes(BODY)
    async with spargio.Runtime(shards=2, backend=backend) as rt:
        servers = await net_aiohttp.serve_on_shards(rt, lambda: make_app(str(tmp_path)))
        try:
            base = f"http://127.0.0.1:{servers.port}"
            seen = await exercise(base)
            threads = set()
            for _ in range(40):  # a fresh connection each time: a fresh peer port to hash
                connector = aiohttp.TCPConnector(force_close=True)
                async with aiohttp.ClientSession(connector=connector) as session, session.get(base + "/") as resp:
                    threads.add((await resp.text()).removeprefix("hello from "))
        finally:
            await servers.aclose()
    assert seen["file"] and seen["echoed"] == 300_000
    assert threads == {"spargio-shard-0", "spargio-shard-1"}


async def test_protocol_servers_on_every_shard(backend: str) -> None:
    class Where(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            transport.write(threading.current_thread().name.encode())
            transport.close()

    async with spargio.Runtime(shards=2, backend=backend) as rt:
        servers = await net.serve_on_shards(rt, protocol_factory=Where)
        async with servers:
            names = set()
            for _ in range(40):
                reader, writer = await asyncio.open_connection("127.0.0.1", servers.port)
                names.add(await reader.read())
                writer.close()
                await writer.wait_closed()
    assert names == {b"spargio-shard-0", b"spargio-shard-1"}


def test_run_app_serves_until_sigterm(tmp_path: Any) -> None:
    """``spargio.net.aiohttp.run_app`` in a subprocess: it answers, then stops cleanly on SIGTERM."""
    import signal
    import subprocess
    import sys
    import urllib.request

    script = tmp_path / "serve.py"
    script.write_text(
        "import socket\n"
        "from aiohttp import web\n"
        "from spargio.net.aiohttp import run_app\n"
        "async def hello(request):\n"
        "    return web.Response(text='hello from run_app')\n"
        "app = web.Application()\n"
        "app.router.add_get('/', hello)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
        "print(port, flush=True)\n"
        "run_app(app, host='127.0.0.1', port=port, print=lambda *a: print('up', flush=True))\n"
    )
    with subprocess.Popen([sys.executable, "-P", str(script)], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())
            assert process.stdout.readline().strip() == "up"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                assert resp.read() == b"hello from run_app"
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
