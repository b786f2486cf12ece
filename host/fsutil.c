/* host/fsutil.c: regular-file opening and bounded whole-file reading (fsutil.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <equimod/status.h>

#include "core.h"
#include "fsutil.h"

const char *fs_type_name(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

int fs_open_regular(const char *path, struct stat *st, char *err, size_t errlen)
{
    struct stat tmp;
    if (!st)
        st = &tmp;
    int fd;
    do
        fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;
        return errf(err, errlen, e == ENOENT ? EQM_ERR_NOTFOUND : EQM_ERR_IO,
                    "%s: cannot open: %s", path,
                    e == ENXIO ? "not a regular file (a socket or a device without its driver)"
                               : strerror(e));
    }
    if (fstat(fd, st)) {
        int e = errno;
        close(fd);
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return errf(err, errlen, EQM_ERR_IO, "%s: is %s, not a regular file; give a file path",
                    path, fs_type_name(st->st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return errf(err, errlen, EQM_ERR_IO, "%s: fcntl: %s", path, strerror(e));
    }
    return fd;
}

FILE *fs_fopen_regular(const char *path, int *status, char *err, size_t errlen)
{
    int fd = fs_open_regular(path, NULL, err, errlen);
    if (fd < 0) {
        if (status)
            *status = fd;
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        int rc = errf(err, errlen, EQM_ERR_NOMEM, "%s: fdopen: %s", path, strerror(e));
        if (status)
            *status = rc;
    }
    return f;
}

/* read() until n bytes or end of file; returns bytes read or -1 (errno). */
static ssize_t read_full(int fd, unsigned char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
        ssize_t r = read(fd, p + done, chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int read_plain(int fd, const struct stat *st, const char *path, size_t max,
                      unsigned char **data, size_t *n, char *err, size_t errlen)
{
    if ((uint64_t)st->st_size > (uint64_t)max)
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "%s: %lld bytes, more than the %zu expected at most (wrong or corrupt file)",
                    path, (long long)st->st_size, max);
    size_t sz = (size_t)st->st_size;
    unsigned char *b = malloc(sz + 1);
    if (!b)
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, sz);
    ssize_t got = read_full(fd, b, sz);
    if (got != (ssize_t)sz) {
        int e = errno;
        free(b);
        return errf(err, errlen, EQM_ERR_IO, "%s: read %zd of %zu bytes%s%s", path, got, sz,
                    got < 0 ? ": " : " (the file shrank while read)", got < 0 ? strerror(e) : "");
    }
    b[sz] = 0;
    *data = b;
    *n = sz;
    return EQM_OK;
}

static int read_gz(int fd, const char *path, size_t max, unsigned char **data, size_t *n,
                   char *err, size_t errlen)
{
    /* Output never grows past lim = max + 1 bytes: reaching it proves "more than max". */
    const size_t lim = max == SIZE_MAX ? SIZE_MAX : max + 1;
    size_t cap = lim < (1u << 20) ? lim : (1u << 20), len = 0;
    unsigned char *out = malloc(cap + 1);
    unsigned char *in = malloc(1u << 16);
    if (!out || !in) {
        free(out);
        free(in);
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", path);
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        free(out);
        free(in);
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: inflateInit failed", path);
    }
    int rc = EQM_OK, eof = 0;
    for (;;) {
        if (z.avail_in == 0 && !eof) {
            ssize_t r = read(fd, in, 1u << 16);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = errf(err, errlen, EQM_ERR_IO, "%s: read failed: %s", path, strerror(errno));
                break;
            }
            eof = r == 0;
            z.next_in = in;
            z.avail_in = (uInt)r;
        }
        if (len == cap) {
            if (cap >= lim) {
                rc = errf(err, errlen, EQM_ERR_FORMAT,
                          "%s: gzip data inflates to more than %zu bytes, the most expected "
                          "(a corrupt file or a decompression bomb); it was not used",
                          path, max);
                break;
            }
            size_t nc = cap > lim / 2 ? lim : cap * 2;
            unsigned char *o2 = realloc(out, nc + 1);
            if (!o2) {
                rc = errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, nc);
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
            if (z.avail_in == 0 && !eof) {
                ssize_t r;
                do
                    r = read(fd, in, 1u << 16);
                while (r < 0 && errno == EINTR);
                if (r < 0) {
                    rc = errf(err, errlen, EQM_ERR_IO, "%s: read failed: %s", path,
                              strerror(errno));
                    break;
                }
                eof = r == 0;
                z.next_in = in;
                z.avail_in = (uInt)r;
            }
            if (z.avail_in == 0)
                break;
            /* concatenated gzip member */
            if (inflateReset(&z) != Z_OK) {
                rc = errf(err, errlen, EQM_ERR_FORMAT, "%s: corrupt gzip data", path);
                break;
            }
            continue;
        }
        if (zr == Z_OK)
            continue;
        if (zr == Z_BUF_ERROR && z.avail_in == 0 && eof) {
            rc = errf(err, errlen, EQM_ERR_FORMAT,
                      "%s: truncated gzip file (stream ends after %zu bytes of output without "
                      "its end marker); re-fetch the file",
                      path, len);
            break;
        }
        if (zr == Z_BUF_ERROR)
            continue;
        rc = errf(err, errlen, EQM_ERR_FORMAT, "%s: corrupt gzip data (%s) at output byte %zu",
                  path, z.msg ? z.msg : "inflate error", len);
        break;
    }
    inflateEnd(&z);
    free(in);
    if (rc) {
        free(out);
        return rc;
    }
    out[len] = 0;
    *data = out;
    *n = len;
    return EQM_OK;
}

int fs_read_file(const char *path, int gunzip, size_t max, unsigned char **data, size_t *n,
                 char *err, size_t errlen)
{
    *data = NULL;
    *n = 0;
    struct stat st;
    int fd = fs_open_regular(path, &st, err, errlen);
    if (fd < 0)
        return fd;
    int rc = gunzip ? read_gz(fd, path, max, data, n, err, errlen)
                    : read_plain(fd, &st, path, max, data, n, err, errlen);
    close(fd);
    return rc;
}

int fs_mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, mode) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(tmp, mode) && errno != EEXIST)
        return -1;
    return 0;
}
