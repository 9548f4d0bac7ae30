"""The io_uring binding for spargio.net's ring path: ``ring`` is None where it failed to load.

spargio.net must import without the compiled binding: on the thread backend it
hands out the loop's own transports and never builds a ring transport, so the
binding is only reached through this name on the ring path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import native

if TYPE_CHECKING:
    from ..native import ring
else:
    ring = getattr(native, "ring", None)

__all__ = ["ring"]
