"""Make io_uring unavailable to this process, for real, with a seccomp filter.

`block_io_uring` installs a classic-BPF seccomp filter that makes the three
io_uring system calls fail with the given errno, exactly as a container
runtime's default profile does (Docker returns EPERM) or an old kernel does
(ENOSYS).  It cannot be undone: call it in a subprocess.

x86_64 and aarch64 share the io_uring syscall numbers (425-427).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import platform
import struct

__all__ = ["block_io_uring"]

_IO_URING_SYSCALLS = (425, 426, 427)  # io_uring_setup, io_uring_enter, io_uring_register
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_RET_K = 0x06


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def block_io_uring(errno: int = _errno.EPERM) -> None:
    """Make io_uring_setup/enter/register fail with ``errno`` in this process (irreversible).

    :raises OSError: the kernel refused the filter.
    :raises RuntimeError: an architecture this helper does not know.
    """
    arch = _AUDIT_ARCH.get(platform.machine())
    if arch is None:
        raise RuntimeError(f"block_io_uring does not know the syscall numbers of {platform.machine()}")
    fail = _SECCOMP_RET_ERRNO | (errno & 0xFFFF)
    n = len(_IO_URING_SYSCALLS)
    prog = [
        _insn(_BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(_BPF_JEQ_K, 1, 0, arch),
        _insn(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),  # another ABI: leave it alone
        _insn(_BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    for i, nr in enumerate(_IO_URING_SYSCALLS):
        prog.append(_insn(_BPF_JEQ_K, n - i, 0, nr))  # jump to the "fail" return
    prog.append(_insn(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW))
    prog.append(_insn(_BPF_RET_K, 0, 0, fail))
    code = b"".join(prog)
    filters = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(filters, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {_errno.errorcode.get(err, err)}")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP) failed: {_errno.errorcode.get(err, err)}")
