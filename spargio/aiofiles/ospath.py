"""``aiofiles.os.path`` (also ``aiofiles.ospath``) on spargio: the same names and answers as
``os.path``; the time, size and identity helpers are one IORING_OP_STATX each."""

from __future__ import annotations

from .. import fs as _fs
from ._compat import aiofiles_signature as _aiofiles_signature

__all__ = [
    "abspath",
    "exists",
    "getatime",
    "getctime",
    "getmtime",
    "getsize",
    "isdir",
    "isfile",
    "islink",
    "ismount",
    "samefile",
    "sameopenfile",
]

abspath = _aiofiles_signature(_fs.abspath)
exists = _aiofiles_signature(_fs.exists)
getatime = _aiofiles_signature(_fs.getatime)
getctime = _aiofiles_signature(_fs.getctime)
getmtime = _aiofiles_signature(_fs.getmtime)
getsize = _aiofiles_signature(_fs.getsize)
isdir = _aiofiles_signature(_fs.isdir)
isfile = _aiofiles_signature(_fs.isfile)
islink = _aiofiles_signature(_fs.islink)
ismount = _aiofiles_signature(_fs.ismount)
samefile = _aiofiles_signature(_fs.samefile)
sameopenfile = _aiofiles_signature(_fs.sameopenfile)
