"""The mixed service through aiohttp's test client, in every --io mode, on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os

import pytest
from aiohttp.test_utils import TestClient, TestServer
from mixed_service.app import make_app
from mixed_service.stores import make_store

import spargio

MAX_BODY = 1 << 20

# spargio on each backend; the two thread-hop baselines.
MODES = {
    "spargio-io_uring": ("spargio", "io_uring"),
    "spargio-threads": ("spargio", "threads"),
    "aiofiles": ("aiofiles", None),
    "to_thread": ("to_thread", None),
}


@pytest.fixture(params=list(MODES))
def mode(request):
    io, backend = MODES[request.param]
    if backend == "io_uring" and spargio.backend_info().name != "io_uring":
        pytest.skip(f"io_uring is unavailable here ({spargio.backend_info().reason}); this case needs it")
    if backend is not None:
        spargio.configure(backend=backend)
    yield io
    spargio.configure(backend="auto")


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "empty").write_bytes(b"")
    (root / "big.bin").write_bytes(os.urandom(3 << 20 | 12345))  # several digest chunks, and a tail
    (root / "sub").mkdir()
    return root


@pytest.fixture
async def client(mode, data_dir):
    app = make_app(make_store(mode, shards=2), str(data_dir), max_body=MAX_BODY)
    async with TestClient(TestServer(app)) as client:
        yield client


def names_in(directory) -> set[str]:
    return set(os.listdir(directory))


async def test_get_returns_the_files_bytes(client, data_dir):
    for name in ("hello.txt", "empty", "big.bin"):
        response = await client.get(f"/files/{name}")
        assert response.status == 200
        assert response.content_type == "application/octet-stream"
        assert await response.read() == (data_dir / name).read_bytes()


async def test_put_stores_the_body_durably_and_replaces_whole(client, data_dir):
    before = names_in(data_dir)
    body = os.urandom(200_000)
    response = await client.put("/files/new.bin", data=body)
    assert response.status == 200
    assert await response.json() == {"name": "new.bin", "size": len(body)}
    assert (data_dir / "new.bin").read_bytes() == body
    response = await client.put("/files/new.bin", data=b"shorter")
    assert response.status == 200
    assert (data_dir / "new.bin").read_bytes() == b"shorter"
    assert (await (await client.get("/files/new.bin")).read()) == b"shorter"
    assert names_in(data_dir) == before | {"new.bin"}, "a temporary file was left behind"


async def test_concurrent_puts_of_one_name_leave_one_whole_body(client, data_dir):
    bodies = [bytes([i]) * (5_000 + 3_001 * i) for i in range(16)]
    responses = await asyncio.gather(*(client.put("/files/contended", data=b) for b in bodies))
    assert [r.status for r in responses] == [200] * len(bodies)
    assert (data_dir / "contended").read_bytes() in bodies
    assert not [n for n in names_in(data_dir) if n.startswith(".")], "a temporary file was left behind"


async def test_digest_is_the_sha256_of_the_file(client, data_dir):
    for name in ("hello.txt", "empty", "big.bin"):
        response = await client.get(f"/digest/{name}")
        assert response.status == 200
        expected = hashlib.sha256((data_dir / name).read_bytes()).hexdigest()
        assert await response.json() == {"name": name, "sha256": expected}


async def test_digests_in_parallel_are_each_right(client, data_dir):
    for i in range(8):
        (data_dir / f"part-{i}").write_bytes(os.urandom(300_000 + i))
    responses = await asyncio.gather(*(client.get(f"/digest/part-{i % 8}") for i in range(32)))
    for i, response in enumerate(responses):
        expected = hashlib.sha256((data_dir / f"part-{i % 8}").read_bytes()).hexdigest()
        assert (await response.json())["sha256"] == expected


async def test_stats_say_what_ran(client, mode):
    await client.get("/files/hello.txt")
    await client.get("/digest/hello.txt")
    await client.put("/files/x", data=b"1")
    response = await client.get("/stats")
    assert response.status == 200
    stats = await response.json()
    assert stats["io"] == mode
    assert stats["requests"] == {"get": 1, "digest": 1, "put": 1}
    if mode == "spargio":
        runtime = stats["store"]["runtime"]
        assert runtime["backend"] == spargio.backend_info().name
        assert runtime["completed"] >= 1  # the digest ran in the pool
        assert len(runtime["shards"]) == 2


BAD_NAMES = [
    "..",
    ".hidden",
    "-leading-dash",
    "a%20b",
    "x" * 129,
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e",
    "name%00.txt",
    "caf%C3%A9",
    "a%5Cb",
]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_bad_names_are_refused_before_any_disk_work(client, data_dir, name):
    outside = names_in(data_dir.parent)
    for method, path in (("GET", "/files/"), ("PUT", "/files/"), ("GET", "/digest/")):
        url = client.make_url(path + name).with_path(path + name, encoded=True)  # as sent: no dot folding
        response = await client.session.request(method, url, data=b"evil" if method == "PUT" else None)
        assert response.status == 400, (method, name, response.status)
        assert "bad file name" in (await response.json())["error"]
    assert names_in(data_dir.parent) == outside
    assert not [n for n in names_in(data_dir) if n not in {"hello.txt", "empty", "big.bin", "sub"}]


async def test_a_slash_in_the_name_matches_no_route(client, data_dir):
    for method in ("GET", "PUT"):
        response = await client.request(method, "/files/sub/escape", data=b"x" if method == "PUT" else None)
        assert response.status == 404
        assert (await response.json()) == {"error": "Not Found"}
    assert not (data_dir / "sub" / "escape").exists()


async def test_missing_files_are_404(client):
    for path in ("/files/nothing-here", "/digest/nothing-here"):
        response = await client.get(path)
        assert response.status == 404
        assert await response.json() == {"error": "no such file: nothing-here"}


async def test_a_directory_name_is_409(client, data_dir):
    for method, path in (("GET", "/files/sub"), ("PUT", "/files/sub"), ("GET", "/digest/sub")):
        response = await client.request(method, path, data=b"x" if method == "PUT" else None)
        assert response.status == 409, (method, path)
        assert await response.json() == {"error": "a directory has that name: sub"}
    assert (data_dir / "sub").is_dir()
    assert not [n for n in names_in(data_dir) if n.startswith(".")]


async def test_oversized_bodies_are_413_with_or_without_a_length(client, data_dir):
    before = names_in(data_dir)
    response = await client.put("/files/too-big", data=io.BytesIO(b"z" * (MAX_BODY + 1)))
    assert response.status == 413
    assert "limit" in (await response.json())["error"]

    async def chunks():
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"z" * 65536

    response = await client.put("/files/too-big", data=chunks())  # chunked: no Content-Length
    assert response.status == 413
    assert "limit" in (await response.json())["error"]
    assert names_in(data_dir) == before
    response = await client.put("/files/just-fits", data=io.BytesIO(b"z" * MAX_BODY))
    assert response.status == 200


async def test_unknown_routes_and_methods_answer_json(client):
    response = await client.get("/nowhere")
    assert response.status == 404
    assert await response.json() == {"error": "Not Found"}
    response = await client.post("/files/hello.txt", data=b"x")
    assert response.status == 405
    assert "PUT" in response.headers["Allow"]
    assert json.loads(await response.text())["error"] == "Method Not Allowed"


def test_an_unknown_mode_and_a_missing_data_dir_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown --io mode"):
        make_store("mmap")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_app(make_store("to_thread"), str(tmp_path / "absent"))
