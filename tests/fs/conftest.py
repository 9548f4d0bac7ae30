from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _every_backend(backend: str) -> str:
    """Every file-system test runs on both backends."""
    return backend
