"""spargio's io_uring binding: the cffi module and its one typed wrapper, `Ring`.

Importing this package never fails: if the compiled module or the liburing
shared library is missing, `IMPORT_ERROR` says what to install and
`spargio.backend_info()` reports it; the thread backend still works.
"""

from __future__ import annotations

__all__ = ["IMPORT_ERROR", "available"]

IMPORT_ERROR: str | None
try:
    from . import ring as ring
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    IMPORT_ERROR = (
        f"spargio's io_uring binding could not be loaded ({exc}). Install liburing "
        "(Debian/Ubuntu: apt-get install liburing2; to build: liburing-dev) and reinstall spargio."
    )
else:
    IMPORT_ERROR = None


def available() -> bool:
    """Whether the compiled io_uring binding imported."""
    return IMPORT_ERROR is None
