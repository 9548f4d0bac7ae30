"""Backend choice and the thread fallback under a real seccomp block (row 20, 25)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import spargio

WORKLOAD = """
import asyncio, os, tempfile, warnings
import spargio
from spargio import fs

async def main():
    d = tempfile.mkdtemp()
    p = os.path.join(d, "f")
    await fs.write_bytes(p, b"hello fallback", fsync=True)
    async with fs.open(p, "rb") as f:
        assert await f.read_at(6, 100) == b"fallback"
    assert await fs.read_bytes(p) == b"hello fallback"
    await fs.remove(p)
    os.rmdir(d)
    info = spargio.backend_info()
    print(info.name, "|", info.reason)
"""


NET_WORKLOAD = """
_fs_main = main

async def main():
    await _fs_main()
    from spargio import net

    async def echo(reader, writer):
        writer.write(await reader.read(100))
        writer.close()

    server = await net.start_server(echo, "127.0.0.1", 0)
    reader, writer = await net.open_connection(*server.sockets[0].getsockname())
    writer.write(b"ping")
    assert await reader.read() == b"ping"
    writer.close()
    server.close()
    if not net.uses_ring() and not spargio.backend_info().net:
        print("net on the loop's own transports")
"""


def _run(prelude: str, body: str = WORKLOAD, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(prelude) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-P", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if k != "SPARGIO_BACKEND"}, **(env or {})},
    )


@pytest.mark.parametrize(("errno_name", "cause"), [("EPERM", "seccomp"), ("ENOSYS", "ENOSYS")])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_seccomp_block_falls_back_to_threads_with_one_warning(errno_name, cause, loop):
    prelude = f"""
        import errno
        from spargio.testing import block_io_uring
        block_io_uring(errno.{errno_name})
        """
    body = WORKLOAD + NET_WORKLOAD
    body = body + "\nimport uvloop\nuvloop.run(main())\n" if loop == "uvloop" else body + "\nasyncio.run(main())\n"
    proc = _run(prelude, body)
    assert proc.returncode == 0, proc.stderr
    name, reason = proc.stdout.strip().splitlines()[0].split(" | ")
    assert name == "threads"
    assert cause in reason
    assert proc.stderr.count("BackendFallbackWarning") == 1, proc.stderr
    assert "net on the loop's own transports" in proc.stdout
    assert cause in proc.stderr


def test_requiring_io_uring_where_blocked_raises_with_the_cause():
    prelude = """
        import errno
        from spargio.testing import block_io_uring
        block_io_uring(errno.EPERM)
        import spargio
        try:
            spargio.backend_info()
        except spargio.BackendUnavailable as exc:
            print("raised:", exc.errno == errno.EPERM, exc)
        """
    proc = _run(prelude, body="", env={"SPARGIO_BACKEND": "io_uring"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("raised: True")
    assert "seccomp" in proc.stdout


def test_environment_variable_forces_threads_without_warning():
    proc = _run("", WORKLOAD + "\nasyncio.run(main())\n", env={"SPARGIO_BACKEND": "threads", "PYTHONWARNINGS": "error"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("threads | the threads backend was requested")


def test_bad_backend_names_are_refused():
    with pytest.raises(ValueError):
        spargio.configure(backend="fast")  # type: ignore[arg-type]
    proc = _run("import spargio\nspargio.backend_info()\n", body="", env={"SPARGIO_BACKEND": "bogus"})
    assert proc.returncode != 0 and "SPARGIO_BACKEND" in proc.stderr


@pytest.mark.io_uring
def test_backend_info_on_this_machine():
    info = spargio.configure(backend="auto")
    assert info.name == "io_uring", f"this machine has io_uring; got {info}"
    assert {"READ", "WRITE", "OPENAT", "ASYNC_CANCEL"} <= info.opcodes
    assert info.kernel == os.uname().release
    assert info.net  # spargio.net's sockets go on io_uring here


@pytest.mark.parametrize("backend_name", [pytest.param("io_uring", marks=pytest.mark.io_uring), "threads"])
def test_low_rlimit_nofile_gives_emfile_per_op_and_the_runtime_survives(backend_name):
    """Row 25: with RLIMIT_NOFILE exhausted each open fails with EMFILE; closing fds recovers."""
    prelude = f"""
        import resource, os, errno, asyncio, tempfile
        import spargio
        from spargio import fs
        spargio.configure(backend={backend_name!r})
        """
    body = """
        async def main():
            d = tempfile.mkdtemp()
            p = os.path.join(d, "f")
            await fs.write_bytes(p, b"x")
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
            held = []
            try:
                while True:
                    held.append(os.open(p, os.O_RDONLY))
            except OSError:
                pass
            try:
                await fs.open(p, "rb")
            except OSError as exc:
                print("open:", errno.errorcode[exc.errno])
            os.close(held.pop())
            os.close(held.pop())
            assert await fs.read_bytes(p) == b"x"
            for fd in held:
                os.close(fd)
            print("survived")
        asyncio.run(main())
        """
    proc = _run(prelude, body)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["open:", "EMFILE", "survived"]


BINDING_MISSING = """
import importlib.abc, sys

class NoBinding(importlib.abc.MetaPathFinder):
    # What a broken install looks like: the compiled module's shared library does not load.
    def find_spec(self, name, path, target=None):
        if name == "spargio.native._uring":
            raise ImportError("liburing.so.2: cannot open shared object file (simulated)")

sys.meta_path.insert(0, NoBinding())

import asyncio, os, tempfile, warnings
import spargio
from spargio import fs

async def on_a_shard(path):
    return await fs.read_bytes(path)

async def main():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = spargio.backend_info()
    assert [w.category for w in caught] == [spargio.BackendFallbackWarning], caught
    d = tempfile.mkdtemp()
    p = os.path.join(d, "f")
    await fs.write_bytes(p, b"no binding", atomic=True, fsync=True)
    async with spargio.Runtime(shards=2) as runtime:
        assert await runtime.call(sum, [1, 2]) == 3
        assert await spargio.boundary.call(on_a_shard, p) == b"no binding"
    await fs.remove(p)
    os.rmdir(d)
    print(info.name, "|", info.reason)
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_binding_that_fails_to_load_leaves_a_working_thread_backend(loop):
    """Issue 16 item 19: ``import spargio`` never needs the binding; threads run fs and the pool."""
    runner = "asyncio.run(main())" if loop == "asyncio" else "import uvloop; uvloop.run(main())"
    done = subprocess.run(
        [sys.executable, "-P", "-c", BINDING_MISSING + runner],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    name, reason = done.stdout.strip().split(" | ")
    assert name == "threads"
    assert "binding could not be loaded" in reason and "liburing.so.2" in reason
