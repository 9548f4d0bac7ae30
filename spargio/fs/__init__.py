"""spargio.fs: file I/O on the running loop's io_uring, with the API of aiofiles and anyio.

>>> async with spargio.fs.open("data.bin", "rb") as f:
...     header = await f.read_at(0, 4096)
>>> data = await spargio.fs.read_bytes("config.json")
>>> await spargio.fs.Path("out.txt").write_text("hello", fsync=True)
"""

from __future__ import annotations

from ._batch import read_many as read_many, write_many as write_many
from ._file import (
    AsyncFile as AsyncFile,
    AsyncTextFile as AsyncTextFile,
    aligned_buffer as aligned_buffer,
    open as open,
)
from ._path import Path as Path
from ._paths import (
    chmod as chmod,
    copyfile as copyfile,
    exists as exists,
    getsize as getsize,
    isdir as isdir,
    isfile as isfile,
    link as link,
    listdir as listdir,
    lstat as lstat,
    makedirs as makedirs,
    mkdir as mkdir,
    read_bytes as read_bytes,
    read_text as read_text,
    readlink as readlink,
    realpath as realpath,
    remove as remove,
    rename as rename,
    replace as replace,
    rmdir as rmdir,
    scandir as scandir,
    stat as stat,
    symlink as symlink,
    unlink as unlink,
    write_bytes as write_bytes,
    write_text as write_text,
)

__all__ = [
    "AsyncFile",
    "AsyncTextFile",
    "Path",
    "aligned_buffer",
    "chmod",
    "copyfile",
    "exists",
    "getsize",
    "isdir",
    "isfile",
    "link",
    "listdir",
    "lstat",
    "makedirs",
    "mkdir",
    "open",
    "read_bytes",
    "read_many",
    "read_text",
    "readlink",
    "realpath",
    "remove",
    "rename",
    "replace",
    "rmdir",
    "scandir",
    "stat",
    "symlink",
    "unlink",
    "write_bytes",
    "write_many",
    "write_text",
]
