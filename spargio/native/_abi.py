"""Kernel ABI numbers spargio needs without the compiled binding (include/uapi/linux/io_uring.h)."""

from __future__ import annotations

from typing import Final

__all__ = ["CQE_F_BUFFER", "CQE_F_MORE"]

CQE_F_BUFFER: Final = 1  # the CQE's upper 16 flag bits name the provided buffer it used
CQE_F_MORE: Final = 2  # the op stays armed: more CQEs will follow
