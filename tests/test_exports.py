"""Every public module's __all__ lists exactly its public names."""

from __future__ import annotations

import importlib
import types

import pytest

MODULES = [
    "spargio",
    "spargio.aiofiles",
    "spargio.aiofiles.os",
    "spargio.aiofiles.ospath",
    "spargio.aiofiles.tempfile",
    "spargio.fs",
    "spargio.net",
    "spargio.net.aiohttp",
    "spargio.testing",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_complete_and_resolvable(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public -= {"annotations"}
    assert public <= set(module.__all__), f"{name}: public but not in __all__: {public - set(module.__all__)}"
