/* host/train/checkpoint.c: checkpoint container, verification and rotation (checkpoint.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <equimod/status.h>

#include "core.h"
#include "train/checkpoint.h"

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

int ckpt_read(const char *path, uint64_t expect_hash, ckpt *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errf(err, errlen, errno == ENOENT ? EQM_ERR_NOTFOUND : EQM_ERR_IO,
                    "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || st.st_size < (off_t)(HDR_BYTES + TRAILER_BYTES)) {
        fclose(f);
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: not an equimod checkpoint (too short: %lld bytes)", path,
                    (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *b = NULL;
    if (posix_memalign((void **)&b, ALIGN, size) || !b) {
        fclose(f);
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, size);
    }
    size_t got = fread(b, 1, size, f);
    fclose(f);
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
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = b + HDR_BYTES + (size_t)i * ENTRY_BYTES;
        uint64_t off = get_u64(e + 48), bytes = get_u64(e + 56);
        if (off > size - TRAILER_BYTES || bytes > size - TRAILER_BYTES - off ||
            memchr(e, 0, CKPT_NAME_MAX) == NULL) {
            free(out->sec);
            out->sec = NULL;
            rc = errf(err, errlen, EQM_ERR_FORMAT, "%s: section %u out of bounds", path, i);
            goto bad;
        }
        memcpy(out->sec[i].name, e, CKPT_NAME_MAX);
        out->sec[i].data = b + off;
        out->sec[i].bytes = bytes;
    }
    out->blob = b;
    out->blob_bytes = size;
    out->config_hash = hash;
    out->n_sections = (int)n;
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
