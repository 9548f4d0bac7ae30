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
directory has that name, 413 body too large, 507 disk full; never a 500 for
anything a client sent.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Final

from aiohttp import web

from .stores import Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DEFAULT_MAX_BODY: Final = 16 << 20

STORE: Final = web.AppKey("store", Store)
DATA_DIR: Final = web.AppKey("data_dir", str)
MAX_BODY: Final = web.AppKey("max_body", int)
COUNTS: Final = web.AppKey("counts", Counter[str])


def make_app(store: Store, data_dir: str, *, max_body: int = DEFAULT_MAX_BODY) -> web.Application:
    """The service over ``data_dir`` (which must exist), with ``store`` doing the disk work.

    The store is started with the app and closed with it (aiohttp's cleanup
    context); requests still running at shutdown are aiohttp's to cancel.
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir!r} does not exist")
    app = web.Application(client_max_size=max_body, middlewares=[_json_errors])
    app[STORE] = store
    app[DATA_DIR] = os.path.realpath(data_dir)
    app[MAX_BODY] = max_body
    app[COUNTS] = Counter()
    app.cleanup_ctx.append(_store_lifetime)
    app.router.add_get("/files/{name}", get_file)
    app.router.add_put("/files/{name}", put_file)
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


async def get_file(request: web.Request) -> web.Response:
    _, path = file_path(request)
    request.app[COUNTS]["get"] += 1
    data = await request.app[STORE].read(path)
    return web.Response(body=data, content_type="application/octet-stream")


async def put_file(request: web.Request) -> web.Response:
    name, path = file_path(request)
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.read()  # aiohttp answers 413 itself when a body without a length runs over
    request.app[COUNTS]["put"] += 1
    size = await request.app[STORE].write(path, body)
    return web.json_response({"name": name, "size": size})


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
}


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """OSErrors from the disk become the status that says why; aiohttp's own errors become JSON."""
    try:
        return await handler(request)
    except OSError as exc:
        status, message = _OS_ERRORS.get(exc.errno or 0, (500, "disk error"))
        name = request.match_info.get("name", "")
        return web.json_response({"error": f"{message}: {name}" if name else message}, status=status)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        # aiohttp's own text: "404: Not Found", "Maximum request body size ... exceeded, ..."
        message = (exc.text or exc.reason).removeprefix(f"{exc.status}: ")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": message}, status=exc.status, headers=headers)
