"""The aiohttp application: four routes over one data directory.

    GET  /files/{name}    the stored file's bytes
    PUT  /files/{name}    store the body durably; {"name", "size"}
    GET  /digest/{name}   {"name", "sha256"}, hashed off the loop
    GET  /stats           the store's and the service's counters as JSON

Everything but the disk work is plain aiohttp on the running loop; the disk
work goes through the `Store` chosen by ``--io``.  Input is checked before
any disk work: a name is 1-128 characters of ``[A-Za-z0-9._-]`` starting with
a letter or digit (so no path separators, no ``..``, no hidden files, and
never the stores' hidden temporary files), and the resolved path must lie
directly inside the data directory.  Errors are JSON ``{"error": ...}`` with
the status that says what went wrong: 400 bad name, 404 no such file, 409 a
directory has that name, 408 a body that stalls, 413 body too large, 415 an
encoded (gzip, deflate...) body, 417 an unknown Expect, 507 disk full, 503
(with Retry-After where retrying helps) for the server's own faults: out of
descriptors, a read-only file system, the data directory gone; never a 500
for anything a client sent.

Memory per request is bounded whatever the file size: GET sends a large file
in chunks as the client takes them, PUT writes the body to its temporary file
chunk by chunk as it arrives.  Each chunk must move within ``io_timeout``
seconds (a client that stops reading, or stops sending, is cut: 408 if the
response has not begun).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Final

from aiohttp import web

from .stores import CHUNK, Store, sweep_temporaries

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

log: Final = logging.getLogger("mixed_service")

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DEFAULT_MAX_BODY: Final = 16 << 20
DEFAULT_IO_TIMEOUT: Final = 30.0

STORE: Final = web.AppKey("store", Store)
DATA_DIR: Final = web.AppKey("data_dir", str)
MAX_BODY: Final = web.AppKey("max_body", int)
IO_TIMEOUT: Final = web.AppKey("io_timeout", float)
COUNTS: Final = web.AppKey("counts", Counter[str])


def make_app(
    store: Store, data_dir: str, *, max_body: int = DEFAULT_MAX_BODY, io_timeout: float = DEFAULT_IO_TIMEOUT
) -> web.Application:
    """The service over ``data_dir`` (which must exist), with ``store`` doing the disk work.

    Temporary files that killed writers left in ``data_dir`` are removed
    first.  The store is started with the app and closed with it (aiohttp's
    cleanup context); requests still running at shutdown are the server's to
    finish or cut (`mixed_service.server`).
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir!r} does not exist")
    if removed := sweep_temporaries(data_dir):
        log.info("removed %d temporary file(s) that earlier runs left in %s", removed, data_dir)
    app = web.Application(client_max_size=max_body, middlewares=[_json_errors])
    app[STORE] = store
    app[DATA_DIR] = os.path.realpath(data_dir)
    app[MAX_BODY] = max_body
    app[IO_TIMEOUT] = io_timeout
    app[COUNTS] = Counter()
    app.cleanup_ctx.append(_store_lifetime)
    app.router.add_get("/files/{name}", get_file)
    app.router.add_put("/files/{name}", put_file, expect_handler=_expect_continue)
    app.router.add_get("/digest/{name}", get_digest)
    app.router.add_get("/stats", get_stats)
    return app


async def _store_lifetime(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].start()
    yield
    await app[STORE].close()


def file_path(request: web.Request) -> tuple[str, str]:
    """The request's file name and its path in the data directory; 400 if the name is not allowed."""
    name = request.match_info["name"]
    if not NAME_PATTERN.fullmatch(name):
        raise _bad_request(
            f"bad file name {name[:140]!r}: use 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    data_dir = request.app[DATA_DIR]
    path = os.path.join(data_dir, name)
    if os.path.dirname(path) != data_dir:  # the pattern already ensures it; never trust one check
        raise _bad_request(f"bad file name {name!r}")
    return name, path


async def get_file(request: web.Request) -> web.StreamResponse:
    _, path = file_path(request)
    request.app[COUNTS]["get"] += 1
    reader = await request.app[STORE].open_read(path)
    try:
        if reader.size <= CHUNK:  # the common case: one read, one response
            return web.Response(body=await reader.read(), content_type="application/octet-stream")
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = reader.size
        await response.prepare(request)
        timeout = request.app[IO_TIMEOUT]
        while chunk := await reader.read():
            async with asyncio.timeout(timeout):  # a client that stops reading is cut
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await reader.close()


async def put_file(request: web.Request) -> web.Response:
    name, path = file_path(request)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":  # inflating is CPU on the loop for every request: send the bytes as they are
        raise _json(web.HTTPUnsupportedMediaType, f"Content-Encoding {encoding[:40]!r} is not accepted")
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length)
    request.app[COUNTS]["put"] += 1
    store = request.app[STORE]
    if request.content_length is not None and request.content_length <= CHUNK:  # one write
        async with _receiving(request):
            body = await request.read()
        size = await store.write(path, body)
    else:  # to the temporary file as it arrives
        size = await store.write_stream(path, _body_chunks(request, limit))
    return web.json_response({"name": name, "size": size})


async def _body_chunks(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    """The request's body in pieces of about `CHUNK`; 413 past ``limit``, 408 if it stalls."""
    received = 0
    pending = bytearray()
    while True:
        async with _receiving(request):
            data = await request.content.readany()
        received += len(data)
        if received > limit:
            raise _too_large(limit, received)
        pending += data
        if pending and (len(pending) >= CHUNK or not data):
            yield bytes(pending)
            pending.clear()
        if not data:
            return


class _receiving:
    """``async with``: the next piece of a request body must arrive within ``io_timeout``, else 408."""

    def __init__(self, request: web.Request) -> None:
        self._timeout = asyncio.timeout(request.app[IO_TIMEOUT])

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._timeout.__aexit__(*exc)  # type: ignore[arg-type]
        except TimeoutError:
            raise _json(web.HTTPRequestTimeout, "the request body stalled") from None


async def _expect_continue(request: web.Request) -> None:
    """HTTP/1.1's ``Expect: 100-continue`` gets its interim answer, unless the body is refused
    anyway (too large); any other Expect is a JSON 417.  (As aiohttp's default, in JSON.)"""
    if request.version != (1, 1):
        return
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        raise _json(web.HTTPExpectationFailed, f"unknown Expect: {expect[:40]!r}")
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length)
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the response proper has not begun


async def get_digest(request: web.Request) -> web.Response:
    name, path = file_path(request)
    request.app[COUNTS]["digest"] += 1
    store = request.app[STORE]
    digest = await store.digest(path)
    return web.json_response({"name": name, "sha256": digest})


async def get_stats(request: web.Request) -> web.Response:
    store = request.app[STORE]
    counts: Counter[str] = request.app[COUNTS]
    body = {"io": store.mode, "requests": dict(counts), "store": store.stats()}
    return web.Response(text=json.dumps(body, default=str), content_type="application/json")


# -- errors ------------------------------------------------------------------

_OS_ERRORS: Final[dict[int, tuple[int, str]]] = {
    errno.ENOENT: (404, "no such file"),
    errno.EISDIR: (409, "a directory has that name"),
    errno.ENOTDIR: (404, "no such file"),
    errno.EACCES: (403, "permission denied"),
    errno.EPERM: (403, "permission denied"),
    errno.ENOSPC: (507, "the disk is full"),
    errno.EDQUOT: (507, "the disk quota is used up"),
    errno.EFBIG: (413, "the file would be too large"),
    errno.EROFS: (503, "the file system is read-only"),
    errno.EMFILE: (503, "the server is out of file descriptors; retry shortly"),
    errno.ENFILE: (503, "the system is out of file descriptors; retry shortly"),
}
_RETRY: Final = frozenset({errno.EMFILE, errno.ENFILE})  # passing faults: say when to try again


def _json(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json")


def _too_large(limit: int, size: int) -> web.HTTPException:
    message = f"the body is over the {limit}-byte limit (at least {size} bytes)"
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=size, text=json.dumps({"error": message}), content_type="application/json"
    )


def _bad_request(message: str) -> web.HTTPException:
    return _json(web.HTTPBadRequest, message)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """OSErrors from the disk become the status that says why; aiohttp's own errors become JSON."""
    try:
        return await handler(request)
    except ConnectionError:
        raise  # the client went away: nobody to answer
    except OSError as exc:
        code = exc.errno or 0
        status, message = _OS_ERRORS.get(code, (500, "disk error"))
        if code == errno.ENOENT and not os.path.isdir(request.app[DATA_DIR]):
            status, message = 503, "the data directory is missing"  # the server's fault, not a missing file
        if status == 500:
            log.error("disk error serving %s %s: %s", request.method, request.path, exc)
        name = request.match_info.get("name", "")
        headers = {"Retry-After": "1"} if code in _RETRY else None
        return web.json_response({"error": f"{message}: {name}" if name else message}, status=status, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        # aiohttp's own text: "404: Not Found", "Maximum request body size ... exceeded, ..."
        message = (exc.text or exc.reason).removeprefix(f"{exc.status}: ")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": message}, status=exc.status, headers=headers)
