/* host/shards/reader.c: sequential reading of one file at a time into large aligned
 * buffers, with io_uring (liburing 2.3 API: several reads in flight, buffers registered
 * with io_uring_register_buffers and read with READ_FIXED when the kernel/memlock limit
 * allows, plain READ otherwise) or with pread (fallback, and selectable).
 *
 * Blocks come back strictly in file order. With io_uring, `depth` blocks are in flight;
 * the block handed out by shard_reader_next stays valid until the next call, when its
 * buffer is resubmitted for the next offset. A short read is continued in place.
 * Left out: O_DIRECT (page-cache reads are what `cat` does; the comparison in bench/shards
 * is against cat), SQPOLL (needs privileges), reading several files at once.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "core.h"
#include "shards.h"

#define MAX_DEPTH 64

typedef struct slot {
    uint8_t *buf;
    uint64_t off;   /* file offset of the block */
    size_t len;     /* bytes requested */
    size_t got;     /* bytes read so far */
    int state;      /* 0 idle, 1 in flight, 2 done */
    int err;        /* -errno of a failed read */
} slot;

struct shard_reader {
    int kind;
    size_t block;
    int depth;
    slot slots[MAX_DEPTH];
    struct io_uring ring;
    int ring_ok, fixed;
    int fd;
    char path[512];
    uint64_t size;        /* file size */
    uint64_t next_off;    /* next offset to submit */
    int head;             /* slot of the next block to hand out */
    int lent;             /* slot handed out by the last next(), -1 if none */
    uint64_t pread_off;
};

static int uring_setup(shard_reader *r)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int rc = io_uring_queue_init_params((unsigned)r->depth * 2, &r->ring, &p);
    if (rc < 0)
        return rc;
    r->ring_ok = 1;
    struct iovec iov[MAX_DEPTH];
    for (int i = 0; i < r->depth; i++) {
        iov[i].iov_base = r->slots[i].buf;
        iov[i].iov_len = r->block;
    }
    r->fixed = io_uring_register_buffers(&r->ring, iov, (unsigned)r->depth) == 0;
    return 0;
}

int shard_reader_create(int io, size_t block_bytes, int depth, shard_reader **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    if (block_bytes == 0)
        block_bytes = 1u << 20;
    block_bytes = (block_bytes + 4095) & ~(size_t)4095;
    if (depth < 1)
        depth = 4;
    if (depth > MAX_DEPTH)
        depth = MAX_DEPTH;
    if (io < SHARD_IO_AUTO || io > SHARD_IO_PREAD) {
        snprintf(err, errlen, "reader: io mode %d unknown (auto, uring or pread)", io);
        return EQM_ERR_INVAL;
    }
    shard_reader *r = calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    r->block = block_bytes;
    r->fd = -1;
    r->lent = -1;
    r->depth = io == SHARD_IO_PREAD ? 1 : depth;
    for (int i = 0; i < r->depth; i++) {
        if (posix_memalign((void **)&r->slots[i].buf, 4096, block_bytes)) {
            r->slots[i].buf = NULL;
            shard_reader_destroy(r);
            goto nomem;
        }
    }
    r->kind = SHARD_IO_PREAD;
    if (io != SHARD_IO_PREAD) {
        int rc = uring_setup(r);
        if (rc < 0) {
            if (io == SHARD_IO_URING) {
                snprintf(err, errlen,
                         "reader: io_uring setup failed: %s (use io = pread or auto; io_uring "
                         "may be disabled by seccomp or kernel.io_uring_disabled)",
                         strerror(-rc));
                shard_reader_destroy(r);
                return EQM_ERR_UNSUPPORTED;
            }
            host_log(EQM_LOG_INFO, "shards", "io_uring unavailable (%s): reading with pread",
                     strerror(-rc));
        } else {
            r->kind = SHARD_IO_URING;
        }
    }
    *out = r;
    return EQM_OK;
nomem:
    snprintf(err, errlen, "reader: out of memory for %d buffers of %zu bytes", depth,
             block_bytes);
    return EQM_ERR_NOMEM;
}

int shard_reader_kind(const shard_reader *r) { return r->kind; }

static void drain_inflight(shard_reader *r)
{
    if (!r->ring_ok)
        return;
    for (int i = 0; i < r->depth; i++) {
        while (r->slots[i].state == 1) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&r->ring, &cqe) < 0)
                return;
            int s = (int)(uintptr_t)io_uring_cqe_get_data(cqe);
            if (s >= 0 && s < r->depth)
                r->slots[s].state = 2;
            io_uring_cqe_seen(&r->ring, cqe);
        }
    }
}

void shard_reader_close(shard_reader *r)
{
    if (!r)
        return;
    drain_inflight(r);
    for (int i = 0; i < r->depth; i++)
        r->slots[i].state = 0;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->lent = -1;
}

void shard_reader_destroy(shard_reader *r)
{
    if (!r)
        return;
    shard_reader_close(r);
    if (r->ring_ok) {
        if (r->fixed)
            io_uring_unregister_buffers(&r->ring);
        io_uring_queue_exit(&r->ring);
    }
    for (int i = 0; i < MAX_DEPTH; i++)
        free(r->slots[i].buf);
    free(r);
}

/* Queue the read of the rest of slot i. */
static int submit_slot(shard_reader *r, int i)
{
    slot *s = &r->slots[i];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
        if (!sqe)
            return -EBUSY;
    }
    unsigned n = (unsigned)(s->len - s->got);
    if (r->fixed)
        io_uring_prep_read_fixed(sqe, r->fd, s->buf + s->got, n, s->off + s->got, i);
    else
        io_uring_prep_read(sqe, r->fd, s->buf + s->got, n, s->off + s->got);
    io_uring_sqe_set_data(sqe, (void *)(uintptr_t)i);
    s->state = 1;
    return 0;
}

/* Give slot i the next block of the file, if any. */
static int refill(shard_reader *r, int i)
{
    slot *s = &r->slots[i];
    s->state = 0;
    s->got = 0;
    s->err = 0;
    if (r->next_off >= r->size)
        return 0;
    s->off = r->next_off;
    s->len = r->size - r->next_off < r->block ? (size_t)(r->size - r->next_off) : r->block;
    r->next_off += s->len;
    return submit_slot(r, i);
}

int shard_reader_open(shard_reader *r, const char *path, char *err, size_t errlen)
{
    shard_reader_close(r);
    snprintf(r->path, sizeof r->path, "%s", path);
    /* O_NONBLOCK: a FIFO or device named by mistake must not block the open; regular
     * files ignore the flag for reads */
    r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (r->fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return EQM_ERR_IO;
    }
    struct stat st;
    if (fstat(r->fd, &st) || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(r->fd);
        r->fd = -1;
        return EQM_ERR_IO;
    }
    r->size = (uint64_t)st.st_size;
    r->next_off = 0;
    r->head = 0;
    r->lent = -1;
    r->pread_off = 0;
    if (r->kind == SHARD_IO_PREAD) {
        posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        return EQM_OK;
    }
    for (int i = 0; i < r->depth; i++) {
        int rc = refill(r, i);
        if (rc < 0) {
            snprintf(err, errlen, "%s: io_uring submit: %s", path, strerror(-rc));
            shard_reader_close(r);
            return EQM_ERR_IO;
        }
    }
    int rc = io_uring_submit(&r->ring);
    if (rc < 0) {
        snprintf(err, errlen, "%s: io_uring submit: %s", path, strerror(-rc));
        shard_reader_close(r);
        return EQM_ERR_IO;
    }
    return EQM_OK;
}

static int next_pread(shard_reader *r, const void **data, size_t *n, char *err, size_t errlen)
{
    slot *s = &r->slots[0];
    size_t got = 0;
    while (got < r->block) {
        ssize_t k = pread(r->fd, s->buf + got, r->block - got, (off_t)(r->pread_off + got));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "%s: read at byte %llu: %s", r->path,
                     (unsigned long long)(r->pread_off + got), strerror(errno));
            return EQM_ERR_IO;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    if (got == 0)
        return EQM_EOF;
    r->pread_off += got;
    *data = s->buf;
    *n = got;
    return EQM_OK;
}

int shard_reader_next(shard_reader *r, const void **data, size_t *n, char *err, size_t errlen)
{
    if (r->fd < 0) {
        snprintf(err, errlen, "reader: no file open");
        return EQM_ERR_STATE;
    }
    if (r->kind == SHARD_IO_PREAD)
        return next_pread(r, data, n, err, errlen);
    /* recycle the block lent last time */
    if (r->lent >= 0) {
        int rc = refill(r, r->lent);
        r->lent = -1;
        if (rc < 0) {
            snprintf(err, errlen, "%s: io_uring submit: %s", r->path, strerror(-rc));
            return EQM_ERR_IO;
        }
        io_uring_submit(&r->ring);
    }
    slot *s = &r->slots[r->head];
    if (s->state == 0)
        return EQM_EOF; /* nothing was queued: past the end */
    for (;;) {
        while (s->state == 1) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&r->ring, &cqe);
            if (rc == -EINTR)
                continue;
            if (rc < 0) {
                snprintf(err, errlen, "%s: io_uring wait: %s", r->path, strerror(-rc));
                return EQM_ERR_IO;
            }
            int i = (int)(uintptr_t)io_uring_cqe_get_data(cqe);
            int res = cqe->res;
            io_uring_cqe_seen(&r->ring, cqe);
            if (i < 0 || i >= r->depth)
                continue;
            slot *c = &r->slots[i];
            c->state = 2;
            if (res < 0)
                c->err = res;
            else if (res == 0)
                c->err = -ENODATA; /* file shrank under us */
            else
                c->got += (size_t)res;
        }
        if (s->err == -EINTR || s->err == -EAGAIN) {
            s->err = 0;
        } else if (s->err) {
            snprintf(err, errlen, "%s: read at byte %llu: %s", r->path,
                     (unsigned long long)(s->off + s->got),
                     s->err == -ENODATA ? "unexpected end of file" : strerror(-s->err));
            return EQM_ERR_IO;
        }
        if (s->got >= s->len)
            break;
        /* short read: continue in place */
        int rc = submit_slot(r, r->head);
        if (rc < 0) {
            snprintf(err, errlen, "%s: io_uring submit: %s", r->path, strerror(-rc));
            return EQM_ERR_IO;
        }
        io_uring_submit(&r->ring);
    }
    *data = s->buf;
    *n = s->got;
    r->lent = r->head;
    r->head = (r->head + 1) % r->depth;
    return EQM_OK;
}
