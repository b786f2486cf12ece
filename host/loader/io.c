/* host/loader/io.c: the eqm_io_api table (host_api.h): whole-file reads (gunzipping
 * "*.gz" with zlib, checking the stream end and CRC), archive member reads and member
 * iteration through libarchive (tar, tar.gz, zip...).
 *
 * Left out: streaming of members larger than memory, random access into archives (every
 * member read scans the archive from the start: fine for a few members, use
 * for_each_member to read many), writing.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include "loader.h"

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int io_file_exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int read_plain(eqm_host *h, const char *path, void **data, size_t *n)
{
    const eqm_host_api *api = host_api();
    FILE *f = fopen(path, "rb");
    if (!f)
        return api->set_error(h, errno == ENOENT ? EQM_ERR_NOTFOUND : EQM_ERR_IO,
                              "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return api->set_error(h, EQM_ERR_IO, "%s: not a regular file", path);
    }
    size_t sz = (size_t)st.st_size;
    unsigned char *buf = api->alloc(h, sz + 1, 64);
    if (!buf) {
        fclose(f);
        return api->set_error(h, EQM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, sz);
    }
    size_t got = fread(buf, 1, sz, f);
    int bad = ferror(f);
    fclose(f);
    if (got != sz || bad) {
        api->free(h, buf);
        return api->set_error(h, EQM_ERR_IO, "%s: read %zu of %zu bytes", path, got, sz);
    }
    *data = buf;
    *n = sz;
    return EQM_OK;
}

/* Gunzip a whole file with inflate (gzip wrapper, concatenated members allowed). */
static int read_gz(eqm_host *h, const char *path, void **data, size_t *n)
{
    const eqm_host_api *api = host_api();
    void *packed;
    size_t np;
    int rc = read_plain(h, path, &packed, &np);
    if (rc)
        return rc;
    size_t cap = np * 4 + 4096, len = 0;
    unsigned char *out = malloc(cap);
    if (!out) {
        api->free(h, packed);
        return api->set_error(h, EQM_ERR_NOMEM, "%s: out of memory", path);
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        free(out);
        api->free(h, packed);
        return api->set_error(h, EQM_ERR_NOMEM, "%s: inflateInit failed", path);
    }
    z.next_in = packed;
    z.avail_in = (uInt)np;
    rc = EQM_OK;
    for (;;) {
        if (cap - len < 65536) {
            size_t nc = cap * 2;
            unsigned char *o2 = realloc(out, nc);
            if (!o2) {
                rc = api->set_error(h, EQM_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            out = o2;
            cap = nc;
        }
        z.next_out = out + len;
        z.avail_out = (uInt)(cap - len > (1u << 30) ? (1u << 30) : cap - len);
        uInt before = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        len += before - z.avail_out;
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0)
                break;
            /* concatenated gzip member */
            if (inflateReset(&z) != Z_OK) {
                rc = api->set_error(h, EQM_ERR_FORMAT, "%s: corrupt gzip data", path);
                break;
            }
            continue;
        }
        if (zr == Z_OK)
            continue;
        if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            rc = api->set_error(h, EQM_ERR_FORMAT,
                                "%s: truncated gzip file (stream ends after %zu bytes of "
                                "output without its end marker); re-fetch the file",
                                path, len);
            break;
        }
        if (zr == Z_BUF_ERROR)
            continue;
        rc = api->set_error(h, EQM_ERR_FORMAT, "%s: corrupt gzip data (%s) at output byte %zu",
                            path, z.msg ? z.msg : "inflate error", len);
        break;
    }
    inflateEnd(&z);
    api->free(h, packed);
    if (rc) {
        free(out);
        return rc;
    }
    unsigned char *res = api->alloc(h, len + 1, 64);
    if (!res) {
        free(out);
        return api->set_error(h, EQM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, len);
    }
    memcpy(res, out, len);
    free(out);
    *data = res;
    *n = len;
    return EQM_OK;
}

static int io_read_file(eqm_host *h, const char *path, void **data, size_t *n)
{
    *data = NULL;
    *n = 0;
    if (ends_with(path, ".gz"))
        return read_gz(h, path, data, n);
    return read_plain(h, path, data, n);
}

static int arc_open(eqm_host *h, const char *path, struct archive **out)
{
    const eqm_host_api *api = host_api();
    if (!io_file_exists(path))
        return api->set_error(h, EQM_ERR_NOTFOUND, "%s: no such archive", path);
    struct archive *a = archive_read_new();
    if (!a)
        return api->set_error(h, EQM_ERR_NOMEM, "%s: archive_read_new failed", path);
    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        int rc = api->set_error(h, EQM_ERR_FORMAT, "%s: cannot open archive: %s", path,
                                archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    *out = a;
    return EQM_OK;
}

/* Read the current entry's data into a malloc'ed buffer. */
static int arc_read_data(eqm_host *h, struct archive *a, struct archive_entry *e,
                         const char *path, unsigned char **buf, size_t *n)
{
    const eqm_host_api *api = host_api();
    const char *name = archive_entry_pathname(e);
    int64_t sz = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    size_t cap = sz >= 0 ? (size_t)sz + 1 : 65536, len = 0;
    unsigned char *b = malloc(cap);
    if (!b)
        return api->set_error(h, EQM_ERR_NOMEM, "%s: %s: out of memory", path, name);
    for (;;) {
        if (cap - len < 4096) {
            unsigned char *b2 = realloc(b, cap * 2);
            if (!b2) {
                free(b);
                return api->set_error(h, EQM_ERR_NOMEM, "%s: %s: out of memory", path, name);
            }
            b = b2;
            cap *= 2;
        }
        la_ssize_t r = archive_read_data(a, b + len, cap - len);
        if (r == 0)
            break;
        if (r < 0) {
            int rc = api->set_error(h, EQM_ERR_FORMAT, "%s: member %s: %s (truncated or corrupt archive)",
                                    path, name, archive_error_string(a));
            free(b);
            return rc;
        }
        len += (size_t)r;
    }
    if (sz >= 0 && (int64_t)len != sz) {
        free(b);
        return api->set_error(h, EQM_ERR_FORMAT,
                              "%s: member %s: got %zu bytes, header says %lld (truncated archive)",
                              path, name, len, (long long)sz);
    }
    *buf = b;
    *n = len;
    return EQM_OK;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int io_read_member(eqm_host *h, const char *path, const char *member, void **data,
                          size_t *n)
{
    const eqm_host_api *api = host_api();
    *data = NULL;
    *n = 0;
    struct archive *a;
    int rc = arc_open(h, path, &a);
    if (rc)
        return rc;
    int by_base = strchr(member, '/') == NULL;
    struct archive_entry *e;
    rc = api->set_error(h, EQM_ERR_NOTFOUND, "%s: no member %s", path, member);
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            rc = api->set_error(h, EQM_ERR_FORMAT, "%s: %s (truncated or corrupt archive) while looking for %s",
                                path, archive_error_string(a), member);
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG)
            continue;
        const char *name = archive_entry_pathname(e);
        if (strcmp(name, member) && !(by_base && !strcmp(base_name(name), member)))
            continue;
        unsigned char *b;
        size_t len;
        rc = arc_read_data(h, a, e, path, &b, &len);
        if (rc == EQM_OK) {
            void *res = api->alloc(h, len + 1, 64);
            if (!res)
                rc = api->set_error(h, EQM_ERR_NOMEM, "%s: %s: out of memory", path, member);
            else {
                memcpy(res, b, len);
                *data = res;
                *n = len;
            }
            free(b);
        }
        break;
    }
    archive_read_free(a);
    return rc;
}

static int io_for_each_member(eqm_host *h, const char *path,
                              int (*fn)(void *ctx, const char *name, const void *data, size_t n),
                              void *ctx)
{
    const eqm_host_api *api = host_api();
    struct archive *a;
    int rc = arc_open(h, path, &a);
    if (rc)
        return rc;
    struct archive_entry *e;
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) {
            rc = EQM_OK;
            break;
        }
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            rc = api->set_error(h, EQM_ERR_FORMAT, "%s: %s (truncated or corrupt archive)", path,
                                archive_error_string(a));
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG)
            continue;
        unsigned char *b;
        size_t len;
        rc = arc_read_data(h, a, e, path, &b, &len);
        if (rc)
            break;
        rc = fn(ctx, archive_entry_pathname(e), b, len);
        free(b);
        if (rc > 0) {
            rc = EQM_OK;
            break;
        }
        if (rc < 0)
            break;
    }
    archive_read_free(a);
    return rc;
}

static const eqm_io_api the_io = {
    sizeof(eqm_io_api), io_read_file, io_read_member, io_for_each_member, io_file_exists,
};

const eqm_io_api *io_api_table(void) { return &the_io; }
