"""aiofiles' own test suite and anyio's ``tests/test_fileio.py``, run against spargio (issue 14).

The suites come from the sdists of the installed aiofiles and anyio (PyPI, the
same index ``make`` installs from), extracted into a temporary directory; none
of their code is in this repository.  Only imports are renamed: for aiofiles,
``sys.modules`` entries point ``aiofiles``, ``aiofiles.os``, ``aiofiles.ospath``,
``aiofiles.tempfile`` and ``aiofiles.threadpool`` at spargio's; for anyio, the
import of anyio's names is followed by one of ``AsyncFile, Path, open_file,
wrap_file`` from ``spargio.fs``.  Each suite runs in a subprocess on each backend (the ``backend``
fixture, which skips io_uring where it is blocked).

What may fail is named: the aiofiles tests that look inside aiofiles' own
objects (``f._file``, ``aiofiles.threadpool.sync_open``, the context manager's
``_obj``), and ``test_access``, which expects root to be refused ``X_OK`` and
fails on aiofiles itself when run as root.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

# aiofiles tests that inspect aiofiles' internals (or, test_access, fail on aiofiles itself as root).
AIOFILES_INTERNALS = re.compile(
    r"tests/threadpool/test_binary\.py::test_simple_close_ctx_mgr(_iter)?\["
    r"|tests/threadpool/test_text\.py::test_simple_close\["
    r"|tests/threadpool/test_open\.py::test_filetask_async_context_aexit$"
    r"|tests/threadpool/test_concurrency\.py::test_slow_file$"
    r"|tests/test_tempfile\.py::test_spooled_temporary_file\["
    r"|tests/test_os\.py::test_access$"
)

_RENAMES = """
import sys
import spargio.aiofiles, spargio.aiofiles.os, spargio.aiofiles.ospath
import spargio.aiofiles.tempfile, spargio.aiofiles.threadpool
for name in ("", ".os", ".ospath", ".tempfile", ".threadpool"):
    sys.modules["aiofiles" + name] = sys.modules["spargio.aiofiles" + name]
"""
_PYTEST_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture(scope="module")
def sdists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed aiofiles' and anyio's sdists, extracted."""
    where = tmp_path_factory.mktemp("sdists")
    wanted = [f"{name}=={importlib.metadata.version(name)}" for name in ("aiofiles", "anyio")]
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(where), *wanted],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if download.returncode:
        pytest.skip(f"the sdists of {', '.join(wanted)} could not be downloaded: {download.stderr.strip()[-300:]}")
    for archive in where.glob("*.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(where, filter="data")
    return where


def _run_pytest(cwd: Path, backend: str, *args: str) -> tuple[int, list[str], str]:
    """Run pytest in ``cwd``; (passed, failed test ids, output)."""
    env = {**os.environ, "SPARGIO_BACKEND": backend, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    passed = re.search(r"(\d+) passed", output)
    failed = re.findall(r"^FAILED (\S+)", output, re.MULTILINE)
    return int(passed.group(1)) if passed else 0, failed, output


def test_aiofiles_suite_passes_but_for_its_internals(sdists: Path, backend: str) -> None:
    (root,) = sdists.glob("aiofiles-*/")
    (root / "conftest.py").write_text(_RENAMES)
    (root / "pytest.ini").write_text(_PYTEST_INI)
    passed, failed, output = _run_pytest(root, backend, "tests")
    unexpected = [test for test in failed if not AIOFILES_INTERNALS.search(test)]
    assert not unexpected, output[-4000:]
    assert passed >= 170, output[-4000:]  # 176 on Python 3.11, 180 on 3.12 and 3.13


def test_anyio_fileio_suite_passes(sdists: Path, backend: str) -> None:
    (root,) = sdists.glob("anyio-*/")
    suite = root / "spargio_run"
    suite.mkdir(exist_ok=True)
    source = (root / "tests" / "test_fileio.py").read_text()
    # After its own import of anyio's names, the suite takes the file API's from spargio.fs.
    renamed, count = re.subn(
        r"^from anyio import (\([^)]*\)|[^\n(]*)\n",
        lambda m: m.group(0) + "from spargio.fs import AsyncFile, Path, open_file, wrap_file\n",
        source,
        count=1,
        flags=re.MULTILINE,
    )
    assert count == 1, "anyio's test_fileio.py no longer imports from anyio at the top: update the renaming"
    (suite / "test_fileio.py").write_text(renamed)
    (suite / "pytest.ini").write_text(_PYTEST_INI)
    passed, failed, output = _run_pytest(suite, backend, "-p", "no:anyio", "test_fileio.py")
    assert not failed, output[-4000:]
    assert passed >= 95, output[-4000:]  # 98 / 108 / 118 on Python 3.11 / 3.12 / 3.13 (the rest skip, as on anyio)
