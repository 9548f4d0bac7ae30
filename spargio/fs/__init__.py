"""spargio.fs: file I/O on the running loop's io_uring, with the API of aiofiles and anyio.

>>> async with spargio.fs.open("data.bin", "rb") as f:
...     header = await f.read_at(0, 4096)
>>> data = await spargio.fs.read_bytes("config.json")
>>> await spargio.fs.Path("out.txt").write_text("hello", fsync=True)
"""

from __future__ import annotations

from ._batch import read_many as read_many
from ._batch import write_many as write_many
from ._file import (
    AsyncFile as AsyncFile,
)
from ._file import (
    AsyncTextFile as AsyncTextFile,
)
from ._file import (
    aligned_buffer as aligned_buffer,
)
from ._file import (
    open as open,
)
from ._file import (
    open_file as open_file,
)
from ._namespace import (
    abspath as abspath,
)
from ._namespace import (
    access as access,
)
from ._namespace import (
    getatime as getatime,
)
from ._namespace import (
    getctime as getctime,
)
from ._namespace import (
    getcwd as getcwd,
)
from ._namespace import (
    getmtime as getmtime,
)
from ._namespace import (
    islink as islink,
)
from ._namespace import (
    ismount as ismount,
)
from ._namespace import (
    removedirs as removedirs,
)
from ._namespace import (
    renames as renames,
)
from ._namespace import (
    samefile as samefile,
)
from ._namespace import (
    sameopenfile as sameopenfile,
)
from ._namespace import (
    sendfile as sendfile,
)
from ._namespace import (
    statvfs as statvfs,
)
from ._namespace import (
    wrap as wrap,
)
from ._path import Path as Path
from ._paths import (
    chmod as chmod,
)
from ._paths import (
    copyfile as copyfile,
)
from ._paths import (
    exists as exists,
)
from ._paths import (
    getsize as getsize,
)
from ._paths import (
    isdir as isdir,
)
from ._paths import (
    isfile as isfile,
)
from ._paths import (
    link as link,
)
from ._paths import (
    listdir as listdir,
)
from ._paths import (
    lstat as lstat,
)
from ._paths import (
    makedirs as makedirs,
)
from ._paths import (
    mkdir as mkdir,
)
from ._paths import (
    read_bytes as read_bytes,
)
from ._paths import (
    read_text as read_text,
)
from ._paths import (
    readlink as readlink,
)
from ._paths import (
    realpath as realpath,
)
from ._paths import (
    remove as remove,
)
from ._paths import (
    rename as rename,
)
from ._paths import (
    replace as replace,
)
from ._paths import (
    rmdir as rmdir,
)
from ._paths import (
    scandir as scandir,
)
from ._paths import (
    stat as stat,
)
from ._paths import (
    symlink as symlink,
)
from ._paths import (
    unlink as unlink,
)
from ._paths import (
    write_bytes as write_bytes,
)
from ._paths import (
    write_text as write_text,
)
from ._wrapped import WrappedFile as WrappedFile
from ._wrapped import wrap_file as wrap_file

__all__ = [
    "AsyncFile",
    "AsyncTextFile",
    "Path",
    "WrappedFile",
    "abspath",
    "access",
    "aligned_buffer",
    "chmod",
    "copyfile",
    "exists",
    "getatime",
    "getctime",
    "getcwd",
    "getmtime",
    "getsize",
    "isdir",
    "isfile",
    "islink",
    "ismount",
    "link",
    "listdir",
    "lstat",
    "makedirs",
    "mkdir",
    "open",
    "open_file",
    "read_bytes",
    "read_many",
    "read_text",
    "readlink",
    "realpath",
    "remove",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "rmdir",
    "samefile",
    "sameopenfile",
    "scandir",
    "sendfile",
    "stat",
    "statvfs",
    "symlink",
    "unlink",
    "wrap",
    "wrap_file",
    "write_bytes",
    "write_many",
    "write_text",
]
