/* host/services/io.c: the eqm_io_api table (host_api.h): whole-file reads (host/fsutil.c:
 * regular files only, gunzipping "*.gz" with zlib, checking the stream end and CRC, with an
 * optional output limit), archive member reads and member iteration through libarchive
 * (tar, tar.gz, zip...).
 *
 * Left out: streaming of members larger than memory, random access into archives (every
 * member read scans the archive from the start: fine for a few members, use
 * for_each_member to read many), writing.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "core.h"
#include "fsutil.h"

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

/* Whole files (plain or gunzipped) go through fsutil.c: regular files only, and at most
 * `max` bytes of output (a gzip bomb stops there). */
static int read_file_max(eqm_host *h, const char *path, size_t max, void **data, size_t *n)
{
    const eqm_host_api *api = host_api();
    *data = NULL;
    *n = 0;
    unsigned char *b;
    size_t len;
    char err[1024];
    int rc = fs_read_file(path, ends_with(path, ".gz"), max, &b, &len, err, sizeof err);
    if (rc)
        return api->set_error(h, rc, "%s", err);
    void *res = api->alloc(h, len + 1, 64);
    if (!res) {
        free(b);
        return api->set_error(h, EQM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, len);
    }
    memcpy(res, b, len);
    free(b);
    *data = res;
    *n = len;
    return EQM_OK;
}

static int io_read_file(eqm_host *h, const char *path, void **data, size_t *n)
{
    return read_file_max(h, path, SIZE_MAX, data, n);
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
                         const char *path, size_t max, unsigned char **buf, size_t *n)
{
    const eqm_host_api *api = host_api();
    const char *name = archive_entry_pathname(e);
    int64_t sz = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    if (sz >= 0 && (uint64_t)sz > (uint64_t)max)
        return api->set_error(h, EQM_ERR_FORMAT,
                              "%s: member %s: %lld bytes, more than the %zu expected at most "
                              "(wrong or corrupt archive)",
                              path, name, (long long)sz, max);
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
        if (len > max) {
            free(b);
            return api->set_error(h, EQM_ERR_FORMAT,
                                  "%s: member %s: more than the %zu bytes expected at most "
                                  "(wrong or corrupt archive)",
                                  path, name, max);
        }
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

static int read_member_max(eqm_host *h, const char *path, const char *member, size_t max,
                           void **data, size_t *n)
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
        rc = arc_read_data(h, a, e, path, max, &b, &len);
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

static int io_read_member(eqm_host *h, const char *path, const char *member, void **data,
                          size_t *n)
{
    return read_member_max(h, path, member, SIZE_MAX, data, n);
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
        rc = arc_read_data(h, a, e, path, SIZE_MAX, &b, &len);
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
    read_file_max, read_member_max,
};

const eqm_io_api *io_api_table(void) { return &the_io; }
