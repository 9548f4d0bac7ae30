/*
 * spargio native shim: the per-op work of spargio in one C call each.
 *
 * Theory of operation
 * -------------------
 * liburing's prep helpers are `static inline`, so they only exist for code
 * compiled against liburing.h; this file is that code.  Every function here
 * is called by exactly one Python object, `spargio.native.ring.Ring`, which
 * owns one `spg_ring` and guarantees that only one thread touches it at a
 * time (liburing allows a single submitter).
 *
 * Cost model: cffi releases the GIL around every call and each crossing costs
 * a few hundred nanoseconds, so the shim folds what would be several calls
 * into one:
 *
 *   - `spg_prep_*`: get an SQE (flushing the SQ to the kernel once if it is
 *     full), prepare it, set its user_data.  Returns 0 or -EBUSY when the SQ
 *     is still full after the flush (the caller must reap and retry).
 *   - `spg_flush`: the once-per-loop-iteration step.  Turns the ring's
 *     eventfd notifications off, submits everything queued, reaps what the
 *     kernel completed inline (page-cache reads usually are), turns the
 *     eventfd back on and looks once more, so a completion posted while the
 *     eventfd was off is never lost.  Inline completions therefore never
 *     wake the event loop through the eventfd.
 *   - `spg_reap`: drain the eventfd counter and copy up to N CQEs into
 *     caller-owned arrays, advancing the CQ once.
 *   - `spg_wait`: block (GIL released) until at least one CQE or a timeout.
 *
 * CQ overflow: rings are created with a CQ larger than the SQ, and on
 * IORING_FEAT_NODROP kernels an overflowing CQE is parked by the kernel;
 * io_uring_peek_batch_cqe() notices the overflow flag and enters the kernel
 * to flush it, so nothing is lost as long as the caller keeps reaping.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>
#include <liburing.h>

/* Opcode numbers newer than the liburing headers we may be built against.
 * Whether the running kernel has them is decided by the probe, never here. */
#define SPG_OP_FTRUNCATE 55

typedef struct spg_ring {
    struct io_uring ring;
    int efd;
    uint64_t submit_calls;
} spg_ring;

spg_ring *spg_ring_create(unsigned entries, unsigned cq_entries, unsigned flags, int *err)
{
    struct io_uring_params p;
    spg_ring *r = calloc(1, sizeof(*r));
    int ret;
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    memset(&p, 0, sizeof(p));
    p.flags = flags;
    if (cq_entries) {
        p.flags |= IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
    }
    ret = io_uring_queue_init_params(entries, &r->ring, &p);
    if (ret < 0) {
        free(r);
        *err = ret;
        return NULL;
    }
    r->efd = -1;
    *err = 0;
    return r;
}

void spg_ring_destroy(spg_ring *r)
{
    if (!r)
        return;
    if (r->efd >= 0) {
        io_uring_unregister_eventfd(&r->ring);
        close(r->efd);
    }
    io_uring_queue_exit(&r->ring);
    free(r);
}

int spg_ring_fd(spg_ring *r) { return r->ring.ring_fd; }
unsigned spg_ring_features(spg_ring *r) { return r->ring.features; }
unsigned spg_sq_entries(spg_ring *r) { return r->ring.sq.ring_entries; }
unsigned spg_cq_entries(spg_ring *r) { return r->ring.cq.ring_entries; }
unsigned spg_sq_pending(spg_ring *r) { return io_uring_sq_ready(&r->ring); }
unsigned spg_cq_pending(spg_ring *r) { return io_uring_cq_ready(&r->ring); }
uint64_t spg_submit_calls(spg_ring *r) { return r->submit_calls; }

/* Create a non-blocking eventfd and register it for CQE notifications.
 * Returns the fd or -errno. */
int spg_ring_enable_eventfd(spg_ring *r)
{
    int ret;
    if (r->efd >= 0)
        return r->efd;
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0)
        return -errno;
    ret = io_uring_register_eventfd(&r->ring, r->efd);
    if (ret < 0) {
        close(r->efd);
        r->efd = -1;
        return ret;
    }
    return r->efd;
}

/* Fill supported[op] with 1 for each opcode the kernel supports. */
int spg_probe(spg_ring *r, unsigned char *supported, int n)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->ring);
    int i;
    if (!probe)
        return -EOPNOTSUPP;
    for (i = 0; i < n; i++)
        supported[i] = (unsigned char)io_uring_opcode_supported(probe, i);
    io_uring_free_probe(probe);
    return 0;
}

static int submit_retrying(spg_ring *r)
{
    int ret;
    do {
        r->submit_calls++;
        ret = io_uring_submit(&r->ring);
    } while (ret == -EINTR);
    return ret;
}

int spg_submit(spg_ring *r) { return submit_retrying(r); }

/* An SQE, flushing the SQ once if it is full.  NULL means: still full (the
 * kernel refused more work until the caller reaps, e.g. -EBUSY). */
static inline struct io_uring_sqe *get_sqe(spg_ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (sqe)
        return sqe;
    submit_retrying(r);
    return io_uring_get_sqe(&r->ring);
}

#define PREP_OR_BUSY(r, sqe)      \
    struct io_uring_sqe *sqe = get_sqe(r); \
    if (!sqe)                     \
        return -EBUSY

int spg_prep_nop(spg_ring *r, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_nop(sqe);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_read(spg_ring *r, int fd, void *buf, unsigned len, uint64_t off, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_read(sqe, fd, buf, len, off);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_write(spg_ring *r, int fd, const void *buf, unsigned len, uint64_t off, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_write(sqe, fd, buf, len, off);
    sqe->user_data = ud;
    return 0;
}

/* n reads (or writes) in one crossing; user_data are ud_first .. ud_first+n-1.
 * Returns how many were queued (fewer than n only if the SQ stayed full). */
int spg_prep_rw_many(spg_ring *r, int write, int n, const int *fds, char *const *bufs,
                     const unsigned *lens, const uint64_t *offs, uint64_t ud_first)
{
    int i;
    for (i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = get_sqe(r);
        if (!sqe)
            return i;
        if (write)
            io_uring_prep_write(sqe, fds[i], bufs[i], lens[i], offs[i]);
        else
            io_uring_prep_read(sqe, fds[i], bufs[i], lens[i], offs[i]);
        sqe->user_data = ud_first + (uint64_t)i;
    }
    return n;
}

int spg_prep_fsync(spg_ring *r, int fd, unsigned flags, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_fsync(sqe, fd, flags);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_openat(spg_ring *r, int dfd, const char *path, int flags, unsigned mode, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_openat(sqe, dfd, path, flags, mode);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_close(spg_ring *r, int fd, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_close(sqe, fd);
    sqe->user_data = ud;
    return 0;
}

/* Room for `need` SQEs in this submission (a linked chain must not be split
 * across two: the kernel would cut it), flushing the SQ once if it has less.
 * 0: still not enough room. */
static int reserve_sqes(spg_ring *r, unsigned need)
{
    if (io_uring_sq_space_left(&r->ring) >= need)
        return 1;
    submit_retrying(r);
    return io_uring_sq_space_left(&r->ring) >= need;
}

/* A registered file table of `n` empty slots, for the chains below (-errno on failure). */
int spg_register_file_slots(spg_ring *r, unsigned n)
{
    return io_uring_register_files_sparse(&r->ring, n);
}

/* A whole-file write as one linked chain on direct descriptor `slot`:
 *
 *   openat (into the slot) -LINK-> write at `off` -HARDLINK-> [fsync -HARDLINK->] close
 *
 * user_data ud_first, ud_first+1, ... in that order.  A failed open cancels
 * the rest (the slot stays empty); once the open succeeded the close always
 * runs, whatever the write or fsync did, so the slot is empty again when the
 * last CQE arrives.  The open has O_CREAT/O_TRUNC and goes to io-wq; the
 * linked ops run after it in the same worker, so the caller wakes once.
 * All SQEs go in one submission (`reserve_sqes`).  Returns the number of
 * SQEs prepped, or -EBUSY. */
int spg_prep_write_file(spg_ring *r, int dfd, const char *path, int flags, unsigned mode, unsigned slot,
                        const void *buf, unsigned len, uint64_t off, int fsync, uint64_t ud_first)
{
    unsigned need = fsync ? 4 : 3;
    struct io_uring_sqe *sqe;
    uint64_t ud = ud_first;
    if (!reserve_sqes(r, need))
        return -EBUSY;
    sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_openat_direct(sqe, dfd, path, flags, mode, slot);
    sqe->flags |= IOSQE_IO_LINK;
    sqe->user_data = ud++;
    sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_write(sqe, (int)slot, buf, len, off);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
    sqe->user_data = ud++;
    if (fsync) {
        sqe = io_uring_get_sqe(&r->ring);
        io_uring_prep_fsync(sqe, (int)slot, 0);
        sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
        sqe->user_data = ud++;
    }
    sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_close_direct(sqe, slot);
    sqe->user_data = ud;
    return (int)need;
}

/* write -LINK-> close on `fd`, in one submission: a file's last pending
 * bytes and its close.  A short or failed write cuts the link, so the close
 * is cancelled (-ECANCELED) and the fd stays open for the caller to write on.
 * Returns 2 or -EBUSY. */
int spg_prep_write_close(spg_ring *r, int fd, const void *buf, unsigned len, uint64_t off, uint64_t ud_first)
{
    struct io_uring_sqe *sqe;
    if (!reserve_sqes(r, 2))
        return -EBUSY;
    sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_write(sqe, fd, buf, len, off);
    sqe->flags |= IOSQE_IO_LINK;
    sqe->user_data = ud_first;
    sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_close(sqe, fd);
    sqe->user_data = ud_first + 1;
    return 2;
}

/* Empty direct-descriptor slot `slot` (after a chain whose close was cancelled). */
int spg_prep_close_slot(spg_ring *r, unsigned slot, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_close_direct(sqe, slot);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_statx(spg_ring *r, int dfd, const char *path, int flags, unsigned mask,
                   void *statxbuf, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_statx(sqe, dfd, path, flags, mask, (struct statx *)statxbuf);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_renameat(spg_ring *r, int olddfd, const char *oldpath, int newdfd,
                      const char *newpath, unsigned flags, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_renameat(sqe, olddfd, oldpath, newdfd, newpath, flags);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_unlinkat(spg_ring *r, int dfd, const char *path, int flags, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_unlinkat(sqe, dfd, path, flags);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_mkdirat(spg_ring *r, int dfd, const char *path, unsigned mode, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_mkdirat(sqe, dfd, path, mode);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_linkat(spg_ring *r, int olddfd, const char *oldpath, int newdfd,
                    const char *newpath, int flags, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_linkat(sqe, olddfd, oldpath, newdfd, newpath, flags);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_symlinkat(spg_ring *r, const char *target, int newdfd, const char *linkpath,
                       uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_symlinkat(sqe, target, newdfd, linkpath);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_fallocate(spg_ring *r, int fd, int mode, uint64_t off, uint64_t len, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_fallocate(sqe, fd, mode, off, len);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_ftruncate(spg_ring *r, int fd, uint64_t len, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_rw(SPG_OP_FTRUNCATE, sqe, fd, NULL, 0, len);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_poll_add(spg_ring *r, int fd, unsigned mask, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_poll_add(sqe, fd, mask);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_cancel(spg_ring *r, uint64_t target, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_cancel64(sqe, target, 0);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_msg_ring(spg_ring *r, int target_fd, unsigned res, uint64_t data, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_msg_ring(sqe, target_fd, res, data, 0);
    sqe->user_data = ud;
    return 0;
}

/* -- sockets ------------------------------------------------------------- */

int spg_prep_recv(spg_ring *r, int fd, void *buf, unsigned len, int flags, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_recv(sqe, fd, buf, len, flags);
    sqe->user_data = ud;
    return 0;
}

/* Multishot recv picking buffers from provided-buffer group `bgid`: one SQE,
 * one CQE per arrival (IORING_CQE_F_MORE while it stays armed). */
int spg_prep_recv_multishot(spg_ring *r, int fd, unsigned bgid, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = (__u16)bgid;
    sqe->user_data = ud;
    return 0;
}

int spg_prep_send(spg_ring *r, int fd, const void *buf, unsigned len, int flags, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_send(sqe, fd, buf, len, flags);
    sqe->user_data = ud;
    return 0;
}

/* A zero-copy send (IORING_OP_SEND_ZC): two CQEs, the result (with
 * IORING_CQE_F_MORE) and, once the kernel no longer reads `buf`, a
 * notification (IORING_CQE_F_NOTIF).  `buf` must live until the second. */
int spg_prep_send_zc(spg_ring *r, int fd, const void *buf, unsigned len, int flags, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_send_zc(sqe, fd, buf, len, flags, 0);
    sqe->user_data = ud;
    return 0;
}

size_t spg_msghdr_size(int n) { return sizeof(struct msghdr) + (size_t)n * sizeof(struct iovec); }

/* One sendmsg of n buffers (a gathered write).  `scratch` (spg_msghdr_size(n)
 * bytes) holds the msghdr and iovecs and must live until the CQE. */
int spg_prep_sendv(spg_ring *r, int fd, char *const *bufs, const unsigned *lens, int n,
                   void *scratch, int flags, uint64_t ud)
{
    struct msghdr *msg = (struct msghdr *)scratch;
    struct iovec *iov = (struct iovec *)(msg + 1);
    int i;
    PREP_OR_BUSY(r, sqe);
    for (i = 0; i < n; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = lens[i];
    }
    memset(msg, 0, sizeof(*msg));
    msg->msg_iov = iov;
    msg->msg_iovlen = (size_t)n;
    io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_accept(spg_ring *r, int fd, int multishot, int flags, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    if (multishot)
        io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, flags);
    else
        io_uring_prep_accept(sqe, fd, NULL, NULL, flags);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_connect(spg_ring *r, int fd, const void *addr, unsigned addrlen, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)addr, (socklen_t)addrlen);
    sqe->user_data = ud;
    return 0;
}

int spg_prep_shutdown(spg_ring *r, int fd, int how, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_shutdown(sqe, fd, how);
    sqe->user_data = ud;
    return 0;
}

/* splice(2) as an op; off -1 = the fd's own position (a pipe).  `link` chains the
 * next SQE behind this one (IOSQE_IO_LINK: it starts only if this one moves
 * all `len` bytes; otherwise it completes with -ECANCELED). */
int spg_prep_splice(spg_ring *r, int fd_in, int64_t off_in, int fd_out, int64_t off_out, unsigned len,
                    unsigned flags, int link, uint64_t ud)
{
    PREP_OR_BUSY(r, sqe);
    io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, len, flags);
    if (link)
        sqe->flags |= IOSQE_IO_LINK;
    sqe->user_data = ud;
    return 0;
}

/* Datagrams: one msghdr, its iovec and a sockaddr_storage in caller-owned
 * `scratch` (spg_msg_scratch_size() bytes, alive until the CQE).  recvmsg
 * fills the name; spg_msg_namelen/spg_msg_name read it back after. */
typedef struct spg_msg {
    struct msghdr msg;
    struct iovec iov;
    struct sockaddr_storage name;
} spg_msg;

size_t spg_msg_scratch_size(void) { return sizeof(spg_msg); }
unsigned spg_msg_namelen(const void *scratch) { return ((const spg_msg *)scratch)->msg.msg_namelen; }
const char *spg_msg_name(const void *scratch) { return (const char *)&((const spg_msg *)scratch)->name; }

static void msg_init(spg_msg *m, void *buf, unsigned len)
{
    memset(&m->msg, 0, sizeof(m->msg));
    m->iov.iov_base = buf;
    m->iov.iov_len = len;
    m->msg.msg_iov = &m->iov;
    m->msg.msg_iovlen = 1;
}

int spg_prep_recvmsg(spg_ring *r, int fd, void *scratch, void *buf, unsigned len, uint64_t ud)
{
    spg_msg *m = (spg_msg *)scratch;
    PREP_OR_BUSY(r, sqe);
    msg_init(m, buf, len);
    m->msg.msg_name = &m->name;
    m->msg.msg_namelen = sizeof(m->name);
    io_uring_prep_recvmsg(sqe, fd, &m->msg, 0);
    sqe->user_data = ud;
    return 0;
}

/* sendmsg of one buffer to `addr` (NULL: the connected peer). */
int spg_prep_sendmsg_to(spg_ring *r, int fd, void *scratch, const void *buf, unsigned len, const void *addr,
                        unsigned addrlen, uint64_t ud)
{
    spg_msg *m = (spg_msg *)scratch;
    PREP_OR_BUSY(r, sqe);
    msg_init(m, (void *)buf, len);
    if (addr && addrlen <= sizeof(m->name)) {
        memcpy(&m->name, addr, addrlen);
        m->msg.msg_name = &m->name;
        m->msg.msg_namelen = addrlen;
    }
    io_uring_prep_sendmsg(sqe, fd, &m->msg, MSG_NOSIGNAL);
    sqe->user_data = ud;
    return 0;
}

/* -- provided-buffer rings ---------------------------------------------------
 *
 * One ring of `entries` buffers of `size` bytes, registered as group `bgid`.
 * The kernel picks a buffer per multishot-recv CQE (its id is in the CQE's
 * upper 16 flag bits); the caller copies the bytes out and hands the buffer
 * back with spg_bufring_recycle.  When every buffer is out, the recv ends with
 * -ENOBUFS and the caller re-arms once some are back. */
typedef struct spg_bufring {
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned entries, size, bgid;
    size_t ring_bytes;
} spg_bufring;

spg_bufring *spg_bufring_create(spg_ring *r, unsigned bgid, unsigned entries, unsigned size, int *err)
{
    struct io_uring_buf_reg reg;
    spg_bufring *b = calloc(1, sizeof(*b));
    unsigned i;
    int ret;
    if (!b) {
        *err = -ENOMEM;
        return NULL;
    }
    b->ring_bytes = (size_t)entries * sizeof(struct io_uring_buf);
    if (posix_memalign((void **)&b->br, 4096, b->ring_bytes) ||
        posix_memalign((void **)&b->bufs, 4096, (size_t)entries * size)) {
        free(b->br);
        free(b);
        *err = -ENOMEM;
        return NULL;
    }
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)b->br;
    reg.ring_entries = entries;
    reg.bgid = (__u16)bgid;
    ret = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (ret) {
        free(b->bufs);
        free(b->br);
        free(b);
        *err = ret;
        return NULL;
    }
    b->entries = entries;
    b->size = size;
    b->bgid = bgid;
    io_uring_buf_ring_init(b->br);
    for (i = 0; i < entries; i++)
        io_uring_buf_ring_add(b->br, b->bufs + (size_t)i * size, size, (unsigned short)i,
                              io_uring_buf_ring_mask(entries), (int)i);
    io_uring_buf_ring_advance(b->br, (int)entries);
    *err = 0;
    return b;
}

char *spg_bufring_buf(spg_bufring *b, unsigned bid) { return b->bufs + (size_t)bid * b->size; }

void spg_bufring_recycle(spg_bufring *b, unsigned bid)
{
    io_uring_buf_ring_add(b->br, b->bufs + (size_t)bid * b->size, b->size, (unsigned short)bid,
                          io_uring_buf_ring_mask(b->entries), 0);
    io_uring_buf_ring_advance(b->br, 1);
}

void spg_bufring_destroy(spg_ring *r, spg_bufring *b)
{
    if (!b)
        return;
    if (r)
        io_uring_unregister_buf_ring(&r->ring, (int)b->bgid);
    free(b->bufs);
    free(b->br);
    free(b);
}

static void drain_eventfd(spg_ring *r)
{
    uint64_t counter;
    if (r->efd >= 0) {
        while (read(r->efd, &counter, sizeof(counter)) < 0 && errno == EINTR)
            ;
    }
}

static int reap_into(spg_ring *r, uint64_t *ud, int32_t *res, uint32_t *flags, int max)
{
    struct io_uring_cqe *cqes[64];
    int total = 0;
    while (total < max) {
        unsigned want = (unsigned)(max - total);
        unsigned got, i;
        if (want > 64)
            want = 64;
        got = io_uring_peek_batch_cqe(&r->ring, cqes, want);
        if (!got)
            break;
        for (i = 0; i < got; i++) {
            ud[total + i] = cqes[i]->user_data;
            res[total + i] = cqes[i]->res;
            flags[total + i] = cqes[i]->flags;
        }
        io_uring_cq_advance(&r->ring, got);
        total += (int)got;
    }
    return total;
}

int spg_reap(spg_ring *r, uint64_t *ud, int32_t *res, uint32_t *flags, int max)
{
    drain_eventfd(r);
    return reap_into(r, ud, res, flags, max);
}

int spg_flush(spg_ring *r, uint64_t *ud, int32_t *res, uint32_t *flags, int max, int *submit_ret)
{
    int n, quiet = r->efd >= 0 && io_uring_cq_eventfd_toggle(&r->ring, false) == 0;
    *submit_ret = io_uring_sq_ready(&r->ring) ? submit_retrying(r) : 0;
    n = reap_into(r, ud, res, flags, max);
    if (quiet) {
        io_uring_cq_eventfd_toggle(&r->ring, true);
        /* A CQE posted while the eventfd was off signalled nothing: look again. */
        n += reap_into(r, ud + n, res + n, flags + n, max - n);
    }
    return n;
}

/* Wait (GIL released by cffi) for at least one CQE; timeout_ns < 0 waits
 * forever.  Returns 0, -ETIME on timeout, -EINTR if a signal arrived, or
 * another -errno.  Submits anything queued first. */
int spg_wait(spg_ring *r, long long timeout_ns)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts;
    int ret;
    if (timeout_ns < 0) {
        r->submit_calls++;
        ret = io_uring_submit_and_wait(&r->ring, 1);
        return ret < 0 ? ret : 0;
    }
    ts.tv_sec = timeout_ns / 1000000000LL;
    ts.tv_nsec = timeout_ns % 1000000000LL;
    r->submit_calls++;
    ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
    return ret < 0 ? ret : 0;
}

/* Spin (the wrapper releases the GIL) until the word `*bell` differs from
 * `seen`, a CQE is ready on `r` (NULL: none is watched), or `ns` nanoseconds
 * have passed.  Returns 1 (the bell rang), 2 (a completion is ready) or 0.
 *
 * A shard that has just served boundary work spins here before it parks, so
 * that a caller's next ticket finds it awake: the caller then rings the bell
 * (a plain store) instead of sending a wakeup, and the shard skips the
 * kernel's wakeup path.  Every few microseconds the spinner yields the CPU,
 * so a runnable thread on the same core (the service loop, another shard)
 * is never kept off it by a spinner. */
int spg_spin(spg_ring *r, uint32_t *bell, uint32_t seen, long long ns)
{
    struct timespec t0, now;
    unsigned i = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (__atomic_load_n(bell, __ATOMIC_ACQUIRE) != seen)
            return 1;
        if (r != NULL && io_uring_cq_ready(&r->ring))
            return 2;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
        if ((++i & 63) == 0) {
            long long elapsed;
            clock_gettime(CLOCK_MONOTONIC, &now);
            elapsed = (now.tv_sec - t0.tv_sec) * 1000000000LL + (now.tv_nsec - t0.tv_nsec);
            if (elapsed >= ns)
                return 0;
            if ((i & 1023) == 0)
                sched_yield();
        }
    }
}

/* Memory for O_DIRECT: aligned, not zeroed. */
void *spg_aligned_alloc(size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, size ? size : 1))
        return NULL;
    return p;
}

void spg_aligned_free(void *p) { free(p); }

size_t spg_statx_size(void) { return sizeof(struct statx); }

/* Flatten a struct statx into os.stat_result's 19-field order. */
void spg_statx_fields(const void *buf, int64_t *out)
{
    const struct statx *s = (const struct statx *)buf;
    out[0] = s->stx_mode;
    out[1] = (int64_t)s->stx_ino;
    out[2] = (int64_t)makedev(s->stx_dev_major, s->stx_dev_minor);
    out[3] = s->stx_nlink;
    out[4] = s->stx_uid;
    out[5] = s->stx_gid;
    out[6] = (int64_t)s->stx_size;
    out[7] = s->stx_atime.tv_sec;
    out[8] = s->stx_atime.tv_nsec;
    out[9] = s->stx_mtime.tv_sec;
    out[10] = s->stx_mtime.tv_nsec;
    out[11] = s->stx_ctime.tv_sec;
    out[12] = s->stx_ctime.tv_nsec;
    out[13] = s->stx_blksize;
    out[14] = (int64_t)s->stx_blocks;
    out[15] = (int64_t)makedev(s->stx_rdev_major, s->stx_rdev_minor);
}

/*
 * Which wrappers keep the GIL.
 *
 * cffi wraps every call in Py_BEGIN_ALLOW_THREADS / Py_END_ALLOW_THREADS.
 * For a call that never blocks and takes well under a microsecond (prepare
 * an SQE, read a counter, copy CQEs the kernel already posted), letting go
 * of the GIL buys nothing and costs a hand-off: a thread waiting for the GIL
 * (a shard, or the service loop) is woken, usually finds it taken again, and
 * both threads pay a context switch.  Measured on a 2-shard hot path (read
 * 64 KiB + crc32 at 8 in flight): ~9 context switches per call before this.
 *
 * The generated wrappers are compiled after this file, so redefining the
 * two macros here changes them all; `__func__` names the wrapper
 * (`_cffi_f_<name>`) and the comparison folds at compile time.  Calls that
 * may block or enter the kernel for real work (submit, flush, wait, create,
 * destroy, probe) still release the GIL.
 */
static inline int spg_keeps_gil(const char *wrapper)
{
    return strncmp(wrapper, "_cffi_f_spg_prep_", 17) == 0 || strcmp(wrapper, "_cffi_f_spg_reap") == 0 ||
           strcmp(wrapper, "_cffi_f_spg_sq_pending") == 0 || strcmp(wrapper, "_cffi_f_spg_cq_pending") == 0 ||
           strcmp(wrapper, "_cffi_f_spg_submit_calls") == 0 || strcmp(wrapper, "_cffi_f_spg_ring_fd") == 0 ||
           strcmp(wrapper, "_cffi_f_spg_statx_fields") == 0 || strcmp(wrapper, "_cffi_f_spg_statx_size") == 0 ||
           strcmp(wrapper, "_cffi_f_spg_bufring_buf") == 0 || strcmp(wrapper, "_cffi_f_spg_bufring_recycle") == 0 ||
           strcmp(wrapper, "_cffi_f_spg_msghdr_size") == 0 || strcmp(wrapper, "_cffi_f_spg_msg_scratch_size") == 0 ||
           strcmp(wrapper, "_cffi_f_spg_msg_namelen") == 0 || strcmp(wrapper, "_cffi_f_spg_msg_name") == 0;
}

#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS                  \
    {                                           \
        PyThreadState *_save = NULL;            \
        if (!spg_keeps_gil(__func__))           \
            _save = PyEval_SaveThread();
#define Py_END_ALLOW_THREADS                    \
        if (_save != NULL)                      \
            PyEval_RestoreThread(_save);        \
    }
