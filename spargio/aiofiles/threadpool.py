"""``aiofiles.threadpool``'s public names: ``open`` (aiofiles' ``open``) and ``wrap``."""

from __future__ import annotations

from ._files import wrap
from ._open import open

__all__ = ["open", "wrap"]
