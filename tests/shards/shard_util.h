/* tests/shards/shard_util.h: helpers for the shard tests: temporary folders, JPEGs made
 * with the TurboJPEG encoder, tar shards made with libarchive's writer (static functions,
 * included by each check program). */
#ifndef EQM_TESTS_SHARD_UTIL_H
#define EQM_TESTS_SHARD_UTIL_H


#include <archive.h>
#include <archive_entry.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>

typedef struct tar_member {
    const char *name;
    const void *data;
    size_t size;
} tar_member;

__attribute__((unused)) static int su_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

__attribute__((unused)) static void su_rmtree(const char *dir) { nftw(dir, su_rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

__attribute__((unused)) static char *su_tmpdir(void)
{
    char tmpl[] = "/tmp/eqm_shards_XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

/* Write a ustar tar of the members. Returns 0 on success. */
__attribute__((unused)) static int su_write_tar(const char *path, const tar_member *m, int n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_ustar(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
        archive_write_free(a);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_size(e, (la_int64_t)m[i].size);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        if (archive_write_header(a, e) != ARCHIVE_OK)
            rc = -1;
        else if (m[i].size &&
                 archive_write_data(a, m[i].data, m[i].size) != (la_ssize_t)m[i].size)
            rc = -1;
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK)
        rc = -1;
    archive_write_free(a);
    return rc;
}

enum { SU_RGB = 0, SU_GRAY = 1, SU_CMYK = 2 };

/* A smooth test pattern (w, h, 3) depending on `seed`; caller frees. */
__attribute__((unused)) static uint8_t *su_pattern(int w, int h, int seed)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            q[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            q[2] = (uint8_t)((seed * 29) % 128 + (x + y) * 127 / (w + h));
        }
    return p;
}

/* Encode a JPEG (quality 95). kind SU_GRAY: luma of the pattern; SU_CMYK: a CMYK JPEG (Adobe,
 * inverted) whose RGB conversion is the pattern. *out is tjAlloc'ed: tjFree it. */
__attribute__((unused)) static int su_jpeg(int w, int h, int kind, int seed, unsigned char **out, unsigned long *n)
{
    uint8_t *rgb = su_pattern(w, h, seed);
    tjhandle tj = tjInitCompress();
    *out = NULL;
    *n = 0;
    int rc;
    if (kind == SU_GRAY) {
        uint8_t *g = malloc((size_t)w * h);
        for (int i = 0; i < w * h; i++)
            g[i] = (uint8_t)((rgb[3 * i] * 299 + rgb[3 * i + 1] * 587 + rgb[3 * i + 2] * 114) / 1000);
        rc = tjCompress2(tj, g, w, 0, h, TJPF_GRAY, out, n, TJSAMP_GRAY, 95, 0);
        free(g);
    } else if (kind == SU_CMYK) {
        uint8_t *c = malloc((size_t)w * h * 4);
        for (int i = 0; i < w * h; i++) {
            /* TurboJPEG writes an Adobe marker: readers (Pillow, us) take the stored
             * values as inverted CMYK, so storing (R, G, B, 255) means c = 255 - R, ...,
             * k = 0, which is the RGB pattern again. */
            c[4 * i] = rgb[3 * i];
            c[4 * i + 1] = rgb[3 * i + 1];
            c[4 * i + 2] = rgb[3 * i + 2];
            c[4 * i + 3] = 255;
        }
        rc = tjCompress2(tj, c, w, 0, h, TJPF_CMYK, out, n, TJSAMP_444, 95, 0);
        free(c);
    } else {
        rc = tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, out, n, TJSAMP_420, 95, 0);
    }
    tjDestroy(tj);
    free(rgb);
    return rc;
}

#endif
