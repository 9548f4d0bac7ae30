"""``aiofiles.os`` on spargio: the same names, on the running loop's io_uring.

``import spargio.aiofiles as aiofiles`` then ``await aiofiles.os.rename(a, b)``.
Each function does what its ``os`` namesake does; see `spargio.fs` for which
ones are io_uring ops (stat, rename, unlink, mkdir, rmdir, link, symlink...)
and which run on spargio's bounded pool (listdir, scandir, readlink, access,
statvfs, sendfile).  ``scandir`` returns an iterator over entries read
already, usable with ``next``, ``for`` and ``with``, as ``os.scandir``'s.
"""

from __future__ import annotations

from .. import fs as _fs
from . import ospath as path
from ._compat import aiofiles_signature as _aiofiles_signature

__all__ = [
    "access",
    "getcwd",
    "link",
    "listdir",
    "makedirs",
    "mkdir",
    "path",
    "readlink",
    "remove",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "rmdir",
    "scandir",
    "sendfile",
    "stat",
    "statvfs",
    "symlink",
    "unlink",
    "wrap",
]

access = _aiofiles_signature(_fs.access)
getcwd = _aiofiles_signature(_fs.getcwd)
link = _aiofiles_signature(_fs.link)
listdir = _aiofiles_signature(_fs.listdir)
makedirs = _aiofiles_signature(_fs.makedirs)
mkdir = _aiofiles_signature(_fs.mkdir)
readlink = _aiofiles_signature(_fs.readlink)
remove = _aiofiles_signature(_fs.remove)
removedirs = _aiofiles_signature(_fs.removedirs)
rename = _aiofiles_signature(_fs.rename)
renames = _aiofiles_signature(_fs.renames)
replace = _aiofiles_signature(_fs.replace)
rmdir = _aiofiles_signature(_fs.rmdir)
scandir = _aiofiles_signature(_fs.scandir)
sendfile = _aiofiles_signature(_fs.sendfile)
stat = _aiofiles_signature(_fs.stat)
statvfs = _aiofiles_signature(_fs.statvfs)
symlink = _aiofiles_signature(_fs.symlink)
unlink = _aiofiles_signature(_fs.unlink)
wrap = _fs.wrap
