/* host/train/checkpoint.c: checkpoint container, verification and rotation (checkpoint.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <equimod/status.h>

#include "core.h"
#include "fsutil.h"
#include "train/checkpoint.h"
#include "train/model.h"

#define HDR_BYTES 32u
#define ENTRY_BYTES 64u
#define TRAILER_BYTES 8u
#define ALIGN 64u

uint64_t ckpt_hash(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t align_up(uint64_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

/* Write with a running crc; returns 0 or -1 (errno set). */
static int wr(int fd, const void *data, size_t n, uLong *crc)
{
    const unsigned char *p = data;
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
        ssize_t w = write(fd, p + done, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        *crc = crc32(*crc, p + done, (uInt)w);
        done += (size_t)w;
    }
    return 0;
}

int ckpt_write(const char *path, uint64_t config_hash, const ckpt_section *s, int n,
               char *err, size_t errlen)
{
    if (n < 0 || (n > 0 && !s))
        return errf(err, errlen, EQM_ERR_INVAL, "%s: bad section list", path);
    uint64_t table_end = HDR_BYTES + (uint64_t)n * ENTRY_BYTES;
    uint64_t *offs = calloc(n ? (size_t)n : 1, sizeof *offs);
    if (!offs)
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", path);
    uint64_t pos = align_up(table_end);
    for (int i = 0; i < n; i++) {
        if (!s[i].name[0] || strnlen(s[i].name, CKPT_NAME_MAX) >= CKPT_NAME_MAX) {
            free(offs);
            return errf(err, errlen, EQM_ERR_INVAL, "%s: bad section name", path);
        }
        offs[i] = pos;
        pos = align_up(pos + s[i].bytes);
    }
    uint64_t file_bytes = pos + TRAILER_BYTES;
    unsigned char *head = calloc(1, (size_t)(align_up(table_end) ? align_up(table_end) : 64));
    if (!head) {
        free(offs);
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(head, CKPT_MAGIC, 8);
    put_u32(head + 8, CKPT_VERSION);
    put_u32(head + 12, (uint32_t)n);
    put_u64(head + 16, config_hash);
    put_u64(head + 24, file_bytes);
    for (int i = 0; i < n; i++) {
        unsigned char *e = head + HDR_BYTES + (size_t)i * ENTRY_BYTES;
        memcpy(e, s[i].name, strnlen(s[i].name, CKPT_NAME_MAX));
        put_u64(e + 48, offs[i]);
        put_u64(e + 56, s[i].bytes);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(head);
        free(offs);
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    static const unsigned char zeros[ALIGN];
    uLong crc = crc32(0L, Z_NULL, 0);
    int bad = wr(fd, head, (size_t)align_up(table_end), &crc);
    uint64_t at = align_up(table_end);
    for (int i = 0; i < n && !bad; i++) {
        bad = wr(fd, s[i].data, (size_t)s[i].bytes, &crc);
        at += s[i].bytes;
        uint64_t pad = align_up(at) - at;
        if (!bad && pad)
            bad = wr(fd, zeros, (size_t)pad, &crc);
        at += pad;
    }
    unsigned char trailer[TRAILER_BYTES];
    put_u32(trailer, (uint32_t)crc);
    memcpy(trailer + 4, "END!", 4);
    uLong dummy = 0;
    if (!bad)
        bad = wr(fd, trailer, sizeof trailer, &dummy);
    if (!bad)
        bad = fsync(fd);
    int e = errno;
    if (close(fd) && !bad) {
        bad = 1;
        e = errno;
    }
    free(head);
    free(offs);
    if (bad) {
        unlink(path);
        return errf(err, errlen, EQM_ERR_IO, "%s: write failed: %s (disk full?)", path,
                    strerror(e));
    }
    return EQM_OK;
}

/* ------------------------------------------------------------ known sections -------- */

/* Parse one unsigned decimal field of a tensor-table line; advances *p. 0 on failure. */
static int table_u64(const char **p, const char *end, uint64_t *v)
{
    const char *q = *p;
    while (q < end && *q == ' ')
        q++;
    if (q == end || *q < '0' || *q > '9')
        return 0;
    uint64_t x = 0;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        if (x > (UINT64_MAX - (uint64_t)(*q - '0')) / 10)
            return 0;
        x = x * 10 + (uint64_t)(*q - '0');
    }
    if (q < end && *q != ' ')
        return 0;
    *p = q;
    *v = x;
    return 1;
}

/* Index of the first non-finite float of n (n if none). */
static size_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

/* The "tensors" table (one line per tensor: slot index offset numel flags name, as
 * trainer.c writes it) checked against "params": every field parsed strictly, every
 * [offset, offset + numel) inside the params floats without wrapping. With `bad_at` <
 * nfloats, names the tensor holding that float into name_out instead (1 if found). */
static int check_table(const char *path, const ckpt_section *ts, uint64_t nfloats,
                       uint64_t bad_at, char *name_out, size_t name_len, char *err,
                       size_t errlen)
{
    const char *p = ts->data, *end = p + ts->bytes;
    int line_no = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line_no++;
        if (le == p) { /* empty line (only a trailing one is written) */
            p = le + 1;
            continue;
        }
        const char *q = p;
        uint64_t f[5];
        int ok = 1;
        for (int k = 0; k < 5 && ok; k++)
            ok = table_u64(&q, le, &f[k]);
        while (ok && q < le && *q == ' ')
            q++;
        const char *name = q;
        size_t name_n = (size_t)(le - q);
        for (const char *c = name; ok && c < le; c++)
            ok = *c > ' ' && *c < 127;
        if (!ok || name_n == 0 || name_n > 255)
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "%s: tensor table line %d is malformed (want 'slot index offset numel "
                        "flags name'); the checkpoint was not used",
                        path, line_no);
        if (f[0] >= EQM_SLOT_COUNT || f[1] > INT32_MAX || f[4] > UINT32_MAX)
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "%s: tensor table line %d (%.*s): slot %" PRIu64 " / index %" PRIu64
                        " out of range; the checkpoint was not used",
                        path, line_no, (int)name_n, name, f[0], f[1]);
        if (f[2] > nfloats || f[3] > nfloats - f[2])
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "%s: tensor %.*s: values [%" PRIu64 ", +%" PRIu64
                        ") lie outside the params section (%" PRIu64
                        " values); the checkpoint was not used",
                        path, (int)name_n, name, f[2], f[3], nfloats);
        if (bad_at < nfloats && bad_at >= f[2] && bad_at - f[2] < f[3]) {
            snprintf(name_out, name_len, "%.*s", (int)name_n, name);
            return 1;
        }
        p = le + (nl != NULL);
    }
    return EQM_OK;
}

/* Float sections hold finite values; a non-finite one is named by its tensor. */
static int check_floats(const char *path, const ckpt_section *s, const ckpt_section *ts,
                        char *err, size_t errlen)
{
    if (s->bytes % sizeof(float))
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: section %s has %" PRIu64 " bytes, not a whole number of floats; the "
                    "checkpoint was not used",
                    path, s->name, s->bytes);
    size_t n = (size_t)(s->bytes / sizeof(float));
    size_t i = first_nonfinite(s->data, n);
    if (i == n)
        return EQM_OK;
    float v = ((const float *)s->data)[i];
    char name[256] = "";
    if (ts && strcmp(s->name, "optim"))
        (void)check_table(path, ts, n, i, name, sizeof name, NULL, 0);
    return errf(err, errlen, EQM_ERR_NUMERIC,
                "%s: %s of tensor %s holds %s (value %zu of the section): the weights are "
                "broken (a diverged or corrupt run); the checkpoint was not used",
                path, s->name, name[0] ? name : "?", isnan(v) ? "NaN" : "Inf", i);
}

int ckpt_state_get(const ckpt *c, ckpt_state *st)
{
    const ckpt_section *ss = ckpt_find(c, "state");
    if (!ss || ss->bytes != CKPT_STATE_BYTES)
        return EQM_ERR_NOTFOUND;
    const unsigned char *p = ss->data;
    int64_t v[6];
    memcpy(v, p, sizeof v);
    st->step = v[0];
    st->epoch = v[1];
    st->batch = v[2];
    st->optim_steps = v[3];
    memcpy(&st->elapsed_s, p + 32, sizeof st->elapsed_s);
    st->images = v[5];
    return EQM_OK;
}

static int check_state(const char *path, const ckpt *c, char *err, size_t errlen)
{
    const ckpt_section *ss = ckpt_find(c, "state");
    if (!ss)
        return EQM_OK;
    if (ss->bytes != CKPT_STATE_BYTES)
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: state section has %" PRIu64 " bytes, expected %d; the checkpoint was "
                    "not used",
                    path, ss->bytes, CKPT_STATE_BYTES);
    ckpt_state st;
    ckpt_state_get(c, &st);
    const struct {
        const char *name;
        int64_t v, max;
    } f[] = {{"step", st.step, CKPT_MAX_COUNT},
             {"epoch", st.epoch, CKPT_MAX_COUNT},
             {"batch", st.batch, CKPT_MAX_COUNT},
             {"optim_steps", st.optim_steps, CKPT_MAX_COUNT},
             {"images", st.images, CKPT_MAX_IMAGES}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 0 || f[i].v > f[i].max)
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "%s: state.%s = %" PRId64 " is out of range (0..%" PRId64
                        "): a corrupt or edited checkpoint; it was not used",
                        path, f[i].name, f[i].v, f[i].max);
    if (st.batch > st.step)
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: state.batch = %" PRId64 " exceeds state.step = %" PRId64
                    ": a corrupt or edited checkpoint; it was not used",
                    path, st.batch, st.step);
    if (!(st.elapsed_s >= 0 && st.elapsed_s <= 1e10))
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: state.elapsed_s = %g is out of range (0..1e10 s): a corrupt or edited "
                    "checkpoint; it was not used",
                    path, st.elapsed_s);
    return EQM_OK;
}

/* Every section the trainer writes (trainer.c: config, tensors, params, target, optim,
 * state) is checked here, so that no caller uses a field before it is known to fit. */
static int validate_sections(const char *path, const ckpt *c, char *err, size_t errlen)
{
    const ckpt_section *ts = ckpt_find(c, "tensors"), *ps = ckpt_find(c, "params"),
                       *tg = ckpt_find(c, "target"), *os = ckpt_find(c, "optim");
    int rc;
    if (ts && !ps)
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: a tensor table without a params section; the checkpoint was not used",
                    path);
    if (ps && (rc = check_floats(path, ps, ts, err, errlen)))
        return rc;
    if (ts && (rc = check_table(path, ts, ps->bytes / sizeof(float), UINT64_MAX, NULL, 0, err,
                                errlen)))
        return rc;
    if (tg && ps && tg->bytes != ps->bytes)
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: target section has %" PRIu64 " bytes, params %" PRIu64
                    "; the checkpoint was not used",
                    path, tg->bytes, ps->bytes);
    if (tg && (rc = check_floats(path, tg, ts, err, errlen)))
        return rc;
    if (os && (rc = check_floats(path, os, NULL, err, errlen)))
        return rc;
    return check_state(path, c, err, errlen);
}

int ckpt_check_progress(const ckpt *c, const char *path, int64_t epochs,
                        int64_t steps_per_epoch, char *err, size_t errlen)
{
    ckpt_state st;
    if (ckpt_state_get(c, &st))
        return errf(err, errlen, EQM_ERR_FORMAT, "%s: no training state; it was not used",
                    path);
    if (st.epoch > epochs)
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: the checkpoint is at epoch %" PRId64 " but the config trains %" PRId64
                    " epochs; it was not used",
                    path, st.epoch, epochs);
    if (steps_per_epoch > 0 &&
        (st.batch > steps_per_epoch ||
         st.step > (epochs <= CKPT_MAX_COUNT / steps_per_epoch ? epochs * steps_per_epoch
                                                                 : CKPT_MAX_COUNT)))
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: the checkpoint is at step %" PRId64 " (batch %" PRId64 " of epoch %"
                    PRId64 ") but the config trains %" PRId64 " epochs of %" PRId64
                    " steps: a corrupt checkpoint, or the dataset changed size; it was not used",
                    path, st.step, st.batch, st.epoch, epochs, steps_per_epoch);
    return EQM_OK;
}

int ckpt_read(const char *path, uint64_t expect_hash, ckpt *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    int fd = fs_open_regular(path, &st, err, errlen); /* a FIFO or device never blocks */
    if (fd < 0)
        return fd;
    if (st.st_size < (off_t)(HDR_BYTES + TRAILER_BYTES)) {
        close(fd);
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: not an equimod checkpoint (too short: %lld bytes)", path,
                    (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *b = NULL;
    if (posix_memalign((void **)&b, ALIGN, size) || !b) {
        close(fd);
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, size);
    }
    size_t got = 0;
    while (got < size) {
        size_t chunk = size - got > (1u << 30) ? (1u << 30) : size - got;
        ssize_t r = read(fd, b + got, chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    int rc = EQM_OK;
    if (got != size) {
        rc = errf(err, errlen, EQM_ERR_IO, "%s: read failed", path);
        goto bad;
    }
    if (memcmp(b, CKPT_MAGIC, 8)) {
        rc = errf(err, errlen, EQM_ERR_FORMAT, "%s: not an equimod checkpoint (bad magic)", path);
        goto bad;
    }
    uint32_t version = get_u32(b + 8), n = get_u32(b + 12);
    uint64_t hash = get_u64(b + 16), file_bytes = get_u64(b + 24);
    if (version != CKPT_VERSION) {
        rc = errf(err, errlen, EQM_ERR_FORMAT,
                  "%s: checkpoint format version %u, this equimod reads version %u", path,
                  version, CKPT_VERSION);
        goto bad;
    }
    if (file_bytes != size) {
        rc = errf(err, errlen, EQM_ERR_FORMAT,
                  "%s: truncated or padded checkpoint (%zu bytes, header says %llu)", path,
                  size, (unsigned long long)file_bytes);
        goto bad;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t done = 0; done < size - TRAILER_BYTES;) {
        size_t chunk = size - TRAILER_BYTES - done;
        if (chunk > (1u << 30))
            chunk = 1u << 30;
        crc = crc32(crc, b + done, (uInt)chunk);
        done += chunk;
    }
    if (memcmp(b + size - 4, "END!", 4) || get_u32(b + size - 8) != (uint32_t)crc) {
        rc = errf(err, errlen, EQM_ERR_FORMAT,
                  "%s: checkpoint is corrupt (checksum mismatch); it was not used", path);
        goto bad;
    }
    if ((uint64_t)HDR_BYTES + (uint64_t)n * ENTRY_BYTES > size - TRAILER_BYTES) {
        rc = errf(err, errlen, EQM_ERR_FORMAT, "%s: bad section table", path);
        goto bad;
    }
    if (expect_hash && hash != expect_hash) {
        rc = errf(err, errlen, EQM_ERR_ABI,
                  "%s: checkpoint belongs to another configuration (config hash %016llx, "
                  "this run %016llx); use another --out folder, or the config it was made with",
                  path, (unsigned long long)hash, (unsigned long long)expect_hash);
        goto bad;
    }
    out->sec = calloc(n ? n : 1, sizeof *out->sec);
    if (!out->sec) {
        rc = errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", path);
        goto bad;
    }
    /* Sections lie after the table, on 64-byte boundaries (as written), inside the payload. */
    uint64_t first = align_up((uint64_t)HDR_BYTES + (uint64_t)n * ENTRY_BYTES);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = b + HDR_BYTES + (size_t)i * ENTRY_BYTES;
        uint64_t off = get_u64(e + 48), bytes = get_u64(e + 56);
        if (off < first || off % ALIGN || off > size - TRAILER_BYTES ||
            bytes > size - TRAILER_BYTES - off || memchr(e, 0, CKPT_NAME_MAX) == NULL ||
            !e[0]) {
            free(out->sec);
            out->sec = NULL;
            rc = errf(err, errlen, EQM_ERR_FORMAT,
                      "%s: section %u out of bounds (offset %" PRIu64 ", %" PRIu64
                      " bytes, payload %zu bytes); it was not used",
                      path, i, off, bytes, size);
            goto bad;
        }
        memcpy(out->sec[i].name, e, CKPT_NAME_MAX);
        out->sec[i].data = b + off;
        out->sec[i].bytes = bytes;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(out->sec[j].name, out->sec[i].name)) {
                rc = errf(err, errlen, EQM_ERR_FORMAT,
                          "%s: section '%s' appears twice; it was not used", path,
                          out->sec[i].name);
                free(out->sec);
                out->sec = NULL;
                goto bad;
            }
    }
    out->blob = b;
    out->blob_bytes = size;
    out->config_hash = hash;
    out->n_sections = (int)n;
    if ((rc = validate_sections(path, out, err, errlen))) {
        free(out->sec);
        out->sec = NULL;
        memset(out, 0, sizeof *out);
        goto bad;
    }
    return EQM_OK;
bad:
    free(b);
    return rc;
}

int ckpt_verify(const char *path, char *err, size_t errlen)
{
    ckpt c;
    int rc = ckpt_read(path, 0, &c, err, errlen);
    if (rc == EQM_OK)
        ckpt_free(&c);
    return rc;
}

const ckpt_section *ckpt_find(const ckpt *c, const char *name)
{
    for (int i = 0; i < c->n_sections; i++)
        if (!strcmp(c->sec[i].name, name))
            return &c->sec[i];
    return NULL;
}

void ckpt_free(ckpt *c)
{
    free(c->blob);
    free(c->sec);
    memset(c, 0, sizeof *c);
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int ckpt_save_rotate(const char *dir, uint64_t config_hash, const ckpt_section *s, int n,
                     char *err, size_t errlen)
{
    char tmp[4096], last[4096], prev[4096];
    snprintf(tmp, sizeof tmp, "%s/%s", dir, CKPT_TMP);
    snprintf(last, sizeof last, "%s/%s", dir, CKPT_LAST);
    snprintf(prev, sizeof prev, "%s/%s", dir, CKPT_PREV);
    int rc = ckpt_write(tmp, config_hash, s, n, err, errlen);
    if (rc)
        return rc;
    char e2[256];
    if (access(last, F_OK) == 0 && ckpt_verify(last, e2, sizeof e2) == EQM_OK) {
        if (rename(last, prev)) {
            unlink(tmp);
            return errf(err, errlen, EQM_ERR_IO, "%s: rename to %s failed: %s", last, prev,
                        strerror(errno));
        }
    }
    if (rename(tmp, last)) {
        unlink(tmp);
        return errf(err, errlen, EQM_ERR_IO, "%s: rename to %s failed: %s", tmp, last,
                    strerror(errno));
    }
    fsync_dir(dir);
    return EQM_OK;
}

int ckpt_load_latest(const char *dir, uint64_t expect_hash, ckpt *out, const char **which,
                     char *warn, size_t warnlen, char *err, size_t errlen)
{
    char last[4096], prev[4096];
    snprintf(last, sizeof last, "%s/%s", dir, CKPT_LAST);
    snprintf(prev, sizeof prev, "%s/%s", dir, CKPT_PREV);
    if (warn && warnlen)
        warn[0] = 0;
    char e1[1024];
    int rc = ckpt_read(last, expect_hash, out, e1, sizeof e1);
    if (rc == EQM_OK) {
        if (which)
            *which = CKPT_LAST;
        return EQM_OK;
    }
    if (rc == EQM_ERR_ABI)
        return errf(err, errlen, rc, "%s", e1);
    if (rc != EQM_ERR_NOTFOUND && warn)
        snprintf(warn, warnlen, "%s; trying %s", e1, CKPT_PREV);
    char e2[1024];
    int rc2 = ckpt_read(prev, expect_hash, out, e2, sizeof e2);
    if (rc2 == EQM_OK) {
        if (which)
            *which = CKPT_PREV;
        return EQM_OK;
    }
    if (rc == EQM_ERR_NOTFOUND && rc2 == EQM_ERR_NOTFOUND)
        return errf(err, errlen, EQM_ERR_NOTFOUND, "%s: no checkpoint (%s, %s)", dir, CKPT_LAST,
                    CKPT_PREV);
    if (rc2 == EQM_ERR_NOTFOUND)
        return errf(err, errlen, rc, "%s", e1);
    return errf(err, errlen, rc2, "%s; and %s", rc == EQM_ERR_NOTFOUND ? "no checkpoint.last" : e1,
                e2);
}
