"""Build the cffi API-mode module ``spargio.native._uring`` against liburing.

liburing's prep and wait helpers are ``static inline``: only code compiled
against ``liburing.h`` can call them, so ABI mode cannot work.  Flags come from
``pkg-config liburing`` when it knows the library, else plain ``-luring``; if
the header is missing the build stops with one message naming the Debian
package to install.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

CDEF = """
typedef struct spg_ring spg_ring;

spg_ring *spg_ring_create(unsigned entries, unsigned cq_entries, unsigned flags, int *err);
void spg_ring_destroy(spg_ring *r);
int spg_ring_fd(spg_ring *r);
unsigned spg_ring_features(spg_ring *r);
unsigned spg_sq_entries(spg_ring *r);
unsigned spg_cq_entries(spg_ring *r);
unsigned spg_sq_pending(spg_ring *r);
unsigned spg_cq_pending(spg_ring *r);
uint64_t spg_submit_calls(spg_ring *r);
int spg_ring_enable_eventfd(spg_ring *r);
int spg_probe(spg_ring *r, unsigned char *supported, int n);
int spg_submit(spg_ring *r);

int spg_prep_nop(spg_ring *r, uint64_t ud);
int spg_prep_read(spg_ring *r, int fd, void *buf, unsigned len, uint64_t off, uint64_t ud);
int spg_prep_write(spg_ring *r, int fd, const void *buf, unsigned len, uint64_t off, uint64_t ud);
int spg_prep_rw_many(spg_ring *r, int write, int n, const int *fds, char *const *bufs,
                     const unsigned *lens, const uint64_t *offs, uint64_t ud_first);
int spg_prep_fsync(spg_ring *r, int fd, unsigned flags, uint64_t ud);
int spg_prep_openat(spg_ring *r, int dfd, const char *path, int flags, unsigned mode, uint64_t ud);
int spg_prep_close(spg_ring *r, int fd, uint64_t ud);
int spg_register_file_slots(spg_ring *r, unsigned n);
int spg_prep_write_file(spg_ring *r, int dfd, const char *path, int flags, unsigned mode, unsigned slot,
                        const void *buf, unsigned len, uint64_t off, int fsync, uint64_t ud_first);
int spg_prep_close_slot(spg_ring *r, unsigned slot, uint64_t ud);
int spg_prep_write_close(spg_ring *r, int fd, const void *buf, unsigned len, uint64_t off, uint64_t ud_first);
int spg_prep_statx(spg_ring *r, int dfd, const char *path, int flags, unsigned mask,
                   void *statxbuf, uint64_t ud);
int spg_prep_renameat(spg_ring *r, int olddfd, const char *oldpath, int newdfd,
                      const char *newpath, unsigned flags, uint64_t ud);
int spg_prep_unlinkat(spg_ring *r, int dfd, const char *path, int flags, uint64_t ud);
int spg_prep_mkdirat(spg_ring *r, int dfd, const char *path, unsigned mode, uint64_t ud);
int spg_prep_linkat(spg_ring *r, int olddfd, const char *oldpath, int newdfd,
                    const char *newpath, int flags, uint64_t ud);
int spg_prep_symlinkat(spg_ring *r, const char *target, int newdfd, const char *linkpath,
                       uint64_t ud);
int spg_prep_fallocate(spg_ring *r, int fd, int mode, uint64_t off, uint64_t len, uint64_t ud);
int spg_prep_ftruncate(spg_ring *r, int fd, uint64_t len, uint64_t ud);
int spg_prep_poll_add(spg_ring *r, int fd, unsigned mask, uint64_t ud);
int spg_prep_cancel(spg_ring *r, uint64_t target, uint64_t ud);
int spg_prep_msg_ring(spg_ring *r, int target_fd, unsigned res, uint64_t data, uint64_t ud);

int spg_prep_recv(spg_ring *r, int fd, void *buf, unsigned len, int flags, uint64_t ud);
int spg_prep_recv_multishot(spg_ring *r, int fd, unsigned bgid, uint64_t ud);
int spg_prep_send(spg_ring *r, int fd, const void *buf, unsigned len, int flags, uint64_t ud);
int spg_prep_send_zc(spg_ring *r, int fd, const void *buf, unsigned len, int flags, uint64_t ud);
size_t spg_msghdr_size(int n);
int spg_prep_sendv(spg_ring *r, int fd, char *const *bufs, const unsigned *lens, int n,
                   void *scratch, int flags, uint64_t ud);
int spg_prep_accept(spg_ring *r, int fd, int multishot, int flags, uint64_t ud);
int spg_prep_connect(spg_ring *r, int fd, const void *addr, unsigned addrlen, uint64_t ud);
int spg_prep_shutdown(spg_ring *r, int fd, int how, uint64_t ud);
int spg_prep_splice(spg_ring *r, int fd_in, int64_t off_in, int fd_out, int64_t off_out, unsigned len,
                    unsigned flags, int link, uint64_t ud);

size_t spg_msg_scratch_size(void);
unsigned spg_msg_namelen(const void *scratch);
const char *spg_msg_name(const void *scratch);
int spg_prep_recvmsg(spg_ring *r, int fd, void *scratch, void *buf, unsigned len, uint64_t ud);
int spg_prep_sendmsg_to(spg_ring *r, int fd, void *scratch, const void *buf, unsigned len, const void *addr,
                        unsigned addrlen, uint64_t ud);

typedef struct spg_bufring spg_bufring;
spg_bufring *spg_bufring_create(spg_ring *r, unsigned bgid, unsigned entries, unsigned size, int *err);
char *spg_bufring_buf(spg_bufring *b, unsigned bid);
void spg_bufring_recycle(spg_bufring *b, unsigned bid);
void spg_bufring_destroy(spg_ring *r, spg_bufring *b);

int spg_reap(spg_ring *r, uint64_t *ud, int32_t *res, uint32_t *flags, int max);
int spg_flush(spg_ring *r, uint64_t *ud, int32_t *res, uint32_t *flags, int max, int *submit_ret);
int spg_wait(spg_ring *r, long long timeout_ns);
int spg_spin(spg_ring *r, uint32_t *bell, uint32_t seen, long long ns);

void *spg_aligned_alloc(size_t size);
void spg_aligned_free(void *p);
size_t spg_statx_size(void);
void spg_statx_fields(const void *buf, int64_t *out);
"""

MISSING_HEADERS = (
    "spargio needs liburing's development files to build its io_uring binding.\n"
    "On Debian or Ubuntu: apt-get install liburing-dev pkg-config\n"
    "(or run `make deps` in a spargio checkout)."
)


def _pkg_config() -> tuple[list[str], list[str], list[str]]:
    """Return (include dirs, library dirs, libraries) for liburing."""
    if shutil.which("pkg-config"):
        probe = subprocess.run(
            ["pkg-config", "--cflags-only-I", "--libs", "liburing"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            words = probe.stdout.split()
            incs = [w[2:] for w in words if w.startswith("-I")]
            libdirs = [w[2:] for w in words if w.startswith("-L")]
            libs = [w[2:] for w in words if w.startswith("-l")]
            return incs, libdirs, libs or ["uring"]
    return [], [], ["uring"]


def _check_headers(include_dirs: list[str]) -> None:
    candidates = [Path(d) / "liburing.h" for d in include_dirs]
    candidates += [Path("/usr/include/liburing.h"), Path("/usr/local/include/liburing.h")]
    if not any(c.exists() for c in candidates):
        sys.stderr.write(MISSING_HEADERS + "\n")
        raise SystemExit(MISSING_HEADERS)


def make_builder() -> FFI:
    include_dirs, library_dirs, libraries = _pkg_config()
    _check_headers(include_dirs)
    builder = FFI()
    builder.cdef(CDEF)
    builder.set_source(
        "spargio.native._uring",
        (HERE / "_shim.c").read_text(),
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        libraries=libraries,
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"],
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
