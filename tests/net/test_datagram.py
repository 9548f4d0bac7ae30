"""spargio.net's datagram endpoints behave as asyncio's, on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

import pytest

from spargio import net

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Runner = Callable[..., Awaitable[Any]]


class Collector(asyncio.DatagramProtocol):
    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.datagrams: list[tuple[bytes, Any]] = []
        self.errors: list[type[BaseException]] = []
        self.arrived = asyncio.Event()
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.append((data, addr))
        self.arrived.set()
        if self.echo:
            self.transport.sendto(data.upper(), addr)

    def error_received(self, exc: Exception) -> None:
        self.errors.append(type(exc))
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


async def until(protocol: Collector, n: int) -> None:
    while len(protocol.datagrams) + len(protocol.errors) < n:
        protocol.arrived.clear()
        await asyncio.wait_for(protocol.arrived.wait(), 10)


async def test_udp_echo_with_addresses_and_a_connected_client(on: Runner, ring_expected: bool) -> None:
    async def body() -> dict[str, Any]:
        server_t, server_p = await net.create_datagram_endpoint(
            lambda: Collector(echo=True), local_addr=("127.0.0.1", 0)
        )
        server_addr = server_t.get_extra_info("sockname")
        client_t, client_p = await net.create_datagram_endpoint(Collector, remote_addr=server_addr)
        sizes = (0, 1, 1200, 65507) if ring_expected else (1, 1200, 65507)  # (3.11's asyncio drops b"")
        for size in sizes:  # up to the largest UDP payload over IPv4
            client_t.sendto(b"q" * size)
        await until(client_p, len(sizes))
        # an unconnected sender gets its replies, with the server's address
        free_t, free_p = await net.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        free_t.sendto(b"hello", server_addr)
        await until(free_p, 1)
        out = {
            "sizes": [len(d) for d, _ in client_p.datagrams],
            "client_from": {a for _, a in client_p.datagrams},
            "server_saw": {a for _, a in server_p.datagrams},
            "free": free_p.datagrams,
            "server_addr": server_addr,
            "client_addr": client_t.get_extra_info("sockname"),
            "kind": type(client_t).__name__,
        }
        for t, p in ((client_t, client_p), (server_t, server_p), (free_t, free_p)):
            t.close()
            assert await p.lost is None
        return out

    out = await on(body)
    assert out["sizes"] == ([0] if ring_expected else []) + [1, 1200, 65507]
    assert out["client_from"] == {out["server_addr"]}
    assert out["client_addr"] in out["server_saw"]
    assert out["free"] == [(b"HELLO", out["server_addr"])]
    assert (out["kind"] == "RingDatagramTransport") is ring_expected


async def test_port_unreachable_is_an_error_received_and_the_endpoint_goes_on(on: Runner) -> None:
    async def body() -> tuple[list[type[BaseException]], list[bytes]]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()  # closed at the end of the block: nobody listens there
        transport, protocol = await net.create_datagram_endpoint(Collector, remote_addr=dead)
        transport.sendto(b"anyone?")
        await until(protocol, 1)  # the ICMP port-unreachable comes back as ECONNREFUSED
        errors = list(protocol.errors)
        transport.close()
        await protocol.lost
        return errors, [d for d, _ in protocol.datagrams]

    errors, data = await on(body)
    assert errors == [ConnectionRefusedError]
    assert data == []


async def test_unix_datagrams(on: Runner, tmp_path: Any, ring_expected: bool) -> None:
    server_path, client_path = str(tmp_path / "s.sock"), str(tmp_path / "c.sock")

    async def body() -> list[tuple[bytes, Any]]:
        if not ring_expected and type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
            pytest.skip("uvloop's own create_datagram_endpoint takes no AF_UNIX paths (the thread backend uses it)")
        server_t, _ = await net.create_datagram_endpoint(
            lambda: Collector(echo=True), local_addr=server_path, family=socket.AF_UNIX
        )
        client_t, client_p = await net.create_datagram_endpoint(
            Collector, local_addr=client_path, remote_addr=server_path, family=socket.AF_UNIX
        )
        client_t.sendto(b"over unix")
        await until(client_p, 1)
        client_t.close()
        server_t.close()
        await asyncio.sleep(0)
        return client_p.datagrams

    assert await on(body) == [(b"OVER UNIX", server_path)]
