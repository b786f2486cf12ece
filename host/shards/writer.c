/* host/shards/writer.c: `equimod shards`, the shard writer.
 *
 * Turns labelled JPEGs into WebDataset-style tar shards (KEY.jpg + KEY.cls members, KEY =
 * "<class folder>/<file stem>"), written with libarchive's writer (ustar, uid/gid 0, mtime
 * 0, mode 0644: byte-identical output for identical input), plus an index file
 * (PREFIX.index: "shard samples bytes" per line, then "total N") and classes.txt.
 *
 * Sources:
 *   - an ImageFolder tree SRC/<class>/<file>.(JPEG|jpg|jpeg) (ILSVRC-2012 train is one);
 *   - a flat folder with a label file (ILSVRC-2012 val): --labels FILE with lines
 *     "<file name> <label>", label = class index or class name (wnid), class list from
 *     --classes FILE (first word of each line) or the sorted class names in the file;
 *   - a tar or tar.gz holding either layout (read into memory: fine for Imagenette-size
 *     archives; extract ImageNet first).
 * Order: classes sorted by name (C locale), files sorted within a class, then a seeded
 * Fisher-Yates shuffle (--seed, default 1; --no-shuffle keeps the sorted order), so shards
 * mix classes and the output depends only on the input and the seed.
 * Checks: every image is read as a regular file (a FIFO or device named .JPEG never blocks)
 * and checked before it is packed: not empty, a JPEG (SOI marker, a header TurboJPEG
 * decodes: size and colour space) and not truncated (an end-of-image marker after the first
 * scan). A bad file is reported on its own line with the reason and skipped (--strict: it is
 * an error); the index counts only what was written.
 * Atomic output: shards, classes.txt and the index are written under *.tmp names and renamed
 * only when everything succeeded, the index last; after an error the temporary files are
 * removed and an earlier complete output in OUTDIR is left as it was.
 * Left out: re-encoding or resizing images (bytes are copied), a full decode of every image
 * (the header and the end marker are checked, not every scan), parallel writing.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>
#include <turbojpeg.h>

#include "core.h"
#include "fsutil.h"
#include "shards.h"

typedef struct item {
    char *cls;     /* class name */
    char *key;     /* "<class>/<stem>" */
    char *path;    /* file path (folder source) or NULL */
    void *data;    /* bytes (archive source) or NULL */
    size_t size;
    int label;
} item;

typedef struct items {
    item *v;
    size_t n, cap;
} items;

static int is_jpeg_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".jpg"));
}

static int items_add(items *it, const char *cls, const char *file, const char *path,
                     void *data, size_t size)
{
    if (it->n == it->cap) {
        size_t nc = it->cap ? it->cap * 2 : 1024;
        item *nv = realloc(it->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        it->v = nv;
        it->cap = nc;
    }
    item *x = &it->v[it->n];
    memset(x, 0, sizeof *x);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t stem = strcspn(base, ".");
    size_t kl = strlen(cls) + 1 + stem + 1;
    x->key = malloc(kl);
    x->cls = strdup(cls);
    x->path = path ? strdup(path) : NULL;
    if (!x->key || !x->cls || (path && !x->path)) {
        free(x->key);
        free(x->cls);
        free(x->path);
        return -1;
    }
    snprintf(x->key, kl, "%s/%.*s", cls, (int)stem, base);
    x->data = data;
    x->size = size;
    it->n++;
    return 0;
}

static void items_free(items *it)
{
    for (size_t i = 0; i < it->n; i++) {
        free(it->v[i].cls);
        free(it->v[i].key);
        free(it->v[i].path);
        free(it->v[i].data);
    }
    free(it->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    int c = strcmp(x->cls, y->cls);
    return c ? c : strcmp(x->key, y->key);
}

/* ---- sources ---- */

static int scan_folder(const char *src, items *it)
{
    DIR *d = opendir(src);
    if (!d) {
        fprintf(stderr, "equimod shards: %s: %s\n", src, strerror(errno));
        return -1;
    }
    struct dirent *e;
    char path[8192];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", src, e->d_name);
        struct stat st;
        if (stat(path, &st) || !S_ISDIR(st.st_mode))
            continue;
        DIR *c = opendir(path);
        if (!c)
            continue;
        struct dirent *f;
        char fp[16384];
        while ((f = readdir(c))) {
            if (f->d_name[0] == '.' || !is_jpeg_name(f->d_name))
                continue;
            snprintf(fp, sizeof fp, "%s/%s", path, f->d_name);
            if (items_add(it, e->d_name, f->d_name, fp, NULL, 0)) {
                closedir(c);
                closedir(d);
                return -1;
            }
        }
        closedir(c);
    }
    closedir(d);
    return 0;
}

static int scan_flat(const char *src, items *it)
{
    DIR *d = opendir(src);
    if (!d) {
        fprintf(stderr, "equimod shards: %s: %s\n", src, strerror(errno));
        return -1;
    }
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !is_jpeg_name(e->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", src, e->d_name);
        if (items_add(it, "", e->d_name, path, NULL, 0)) {
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    return 0;
}

/* Archive: entries ".../<class>/<file>.JPEG" (ImageFolder) or ".../<file>.JPEG" (flat). */
static int scan_archive(const char *src, items *it, int flat)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_none(a);
    if (archive_read_open_filename(a, src, 1 << 16) != ARCHIVE_OK) {
        fprintf(stderr, "equimod shards: %s: %s\n", src, archive_error_string(a));
        archive_read_free(a);
        return -1;
    }
    struct archive_entry *e;
    int r, rc = 0;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) != AE_IFREG || !name || !is_jpeg_name(name))
            continue;
        char cls[256] = "";
        const char *slash = strrchr(name, '/');
        if (!flat) {
            if (!slash)
                continue;
            const char *p = slash;
            while (p > name && p[-1] != '/')
                p--;
            snprintf(cls, sizeof cls, "%.*s", (int)(slash - p), p);
        }
        int64_t size = archive_entry_size(e);
        void *buf = malloc(size > 0 ? (size_t)size : 1);
        if (!buf || archive_read_data(a, buf, (size_t)size) != size) {
            fprintf(stderr, "equimod shards: %s: reading %s: %s\n", src, name,
                    buf ? archive_error_string(a) : "out of memory");
            free(buf);
            rc = -1;
            break;
        }
        if (items_add(it, cls, name, NULL, buf, (size_t)size)) {
            free(buf);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && r != ARCHIVE_EOF) {
        fprintf(stderr, "equimod shards: %s: %s\n", src, archive_error_string(a));
        rc = -1;
    }
    archive_read_free(a);
    return rc;
}

#define MAX_IMAGE_BYTES ((size_t)1 << 30)

/* NULL when `d` looks like a whole JPEG, else why not (into why[n]). Walks the marker
 * segments from SOI to the first SOS (so that an EXIF thumbnail's own EOI is skipped), then
 * wants an EOI (FF D9) after it: entropy-coded data never holds FF D9 (FF is stuffed), so a
 * file cut anywhere in its scans has none. Trailing bytes after the EOI are allowed. */
static const char *jpeg_problem(tjhandle tj, const unsigned char *d, size_t n, char *why,
                                size_t wn)
{
    if (n == 0)
        return "empty file";
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8))
        return "a PNG image, not a JPEG (convert it, or rename it)";
    if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) {
        snprintf(why, wn, "not a JPEG (starts with %02x %02x, not the SOI marker ff d8)", d[0],
                 n > 1 ? d[1] : 0);
        return why;
    }
    int W = 0, H = 0, sub = 0, cs = 0;
    if (n > 0xffffffffu || tjDecompressHeader3(tj, d, (unsigned long)n, &W, &H, &sub, &cs) ||
        W <= 0 || H <= 0) {
        snprintf(why, wn, "bad JPEG header (%s)", tjGetErrorStr2(tj));
        return why;
    }
    size_t p = 2, sos = 0;
    while (p + 4 <= n) {
        if (d[p] != 0xFF)
            break;
        unsigned m = d[p + 1];
        if (m == 0xFF) { /* fill byte */
            p++;
            continue;
        }
        if (m == 0xDA) {
            sos = p;
            break;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length */
            p += 2;
            continue;
        }
        p += 2 + ((size_t)d[p + 2] << 8 | d[p + 3]);
    }
    if (!sos)
        return "truncated or corrupt JPEG (no image data after the header)";
    for (size_t q = n - 1; q > sos + 1; q--)
        if (d[q] == 0xD9 && d[q - 1] == 0xFF)
            return NULL;
    return "truncated JPEG (no end-of-image marker after the image data)";
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: equimod shards [options] SRC OUTDIR\n"
            "Write WebDataset-style tar shards (KEY.jpg + KEY.cls) and an index.\n"
            "SRC: an ImageFolder tree (SRC/<class>/<file>.JPEG, e.g. ILSVRC-2012 train), a\n"
            "     flat folder with --labels (ILSVRC-2012 val), or a .tar/.tar.gz of either.\n"
            "options:\n"
            "  --prefix NAME        shard names NAME-000000.tar ... (default: train)\n"
            "  --per-shard N        samples per shard (default 1000)\n"
            "  --shard-bytes B      or: start a new shard past B bytes (suffix k/M/G ok)\n"
            "  --labels FILE        lines '<file name> <class index|class name>' (flat SRC)\n"
            "  --classes FILE       class list, first word per line (default: sorted names)\n"
            "  --seed S             order shuffle seed (default 1)\n"
            "  --no-shuffle         keep the sorted order (class, then file)\n"
            "  --limit N            write only the first N samples of the order\n"
            "  --strict             a file that is not a whole JPEG is an error (default: it\n"
            "                       is reported and skipped)\n");
}

static size_t parse_bytes(const char *s, int *ok)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    *ok = end != s && !errno;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'M')
        v <<= 20, end++;
    else if (*end == 'G')
        v <<= 30, end++;
    if (*end)
        *ok = 0;
    return (size_t)v;
}

static int write_member(struct archive *a, const char *name, const void *data, size_t n)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    int rc = archive_write_header(a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK)
        return -1;
    if (n && archive_write_data(a, data, n) != (la_ssize_t)n)
        return -1;
    return 0;
}

int cmd_shards(int argc, char **argv)
{
    const char *prefix = "train", *labels = NULL, *classes_file = NULL;
    size_t per_shard = 1000, shard_bytes = 0, limit = 0;
    uint64_t seed = 1;
    int shuffle = 1, strict = 0, ok;
    const char *pos[2];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-shuffle")) {
            shuffle = 0;
        } else if (!strcmp(a, "--strict")) {
            strict = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            if (!v) {
                fprintf(stderr, "equimod shards: %s needs a value\n", a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--prefix"))
                prefix = v;
            else if (!strcmp(a, "--labels"))
                labels = v;
            else if (!strcmp(a, "--classes"))
                classes_file = v;
            else if (!strcmp(a, "--per-shard") || !strcmp(a, "--shard-bytes") ||
                     !strcmp(a, "--seed") || !strcmp(a, "--limit")) {
                size_t x = parse_bytes(v, &ok);
                if (!ok || (x == 0 && strcmp(a, "--seed") && strcmp(a, "--limit"))) {
                    fprintf(stderr, "equimod shards: %s '%s': expected a positive integer\n",
                            a, v);
                    return 2;
                }
                if (!strcmp(a, "--per-shard"))
                    per_shard = x;
                else if (!strcmp(a, "--shard-bytes"))
                    shard_bytes = x;
                else if (!strcmp(a, "--seed"))
                    seed = x;
                else
                    limit = x;
            } else {
                fprintf(stderr, "equimod shards: unknown option '%s'\nhint: equimod shards "
                                "--help\n", a);
                return 2;
            }
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "equimod shards: too many arguments ('%s')\n", a);
            return 2;
        }
    }
    if (npos != 2) {
        usage(stderr);
        return 2;
    }
    const char *src = pos[0], *out = pos[1];
    items it = {0};
    int rc = 1;
    size_t shard = 0; /* shards begun (each has a .tmp until published) */
    FILE *index = NULL;
    tjhandle tj = NULL;
    char **cls = NULL;
    size_t n_cls = 0;
    struct stat st;
    if (stat(src, &st)) {
        fprintf(stderr, "equimod shards: %s: %s\n", src, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "equimod shards: %s: is %s; SRC is a folder or a .tar/.tar.gz file\n",
                src, fs_type_name(st.st_mode));
        return 1;
    }
    int flat = labels != NULL;
    int r = S_ISDIR(st.st_mode) ? (flat ? scan_flat(src, &it) : scan_folder(src, &it))
                                : scan_archive(src, &it, flat);
    if (r)
        goto done;
    if (!it.n) {
        fprintf(stderr, "equimod shards: %s: no .JPEG/.jpg files found (layout: %s)\n", src,
                flat ? "flat folder + --labels" : "<class>/<file>.JPEG");
        goto done;
    }
    /* labels of a flat source */
    if (flat) {
        char ferr[1024];
        FILE *f = fs_fopen_regular(labels, NULL, ferr, sizeof ferr);
        if (!f) {
            fprintf(stderr, "equimod shards: --labels %s\n", ferr);
            goto done;
        }
        char line[1024];
        size_t matched = 0;
        char **lab_of = calloc(it.n, sizeof *lab_of);
        if (!lab_of) {
            fclose(f);
            goto done;
        }
        qsort(it.v, it.n, sizeof *it.v, cmp_item); /* by key "/<stem>" */
        while (fgets(line, sizeof line, f)) {
            char name[512], lab[256];
            if (line[0] == '#' || sscanf(line, "%511s %255s", name, lab) != 2)
                continue;
            size_t stem = strcspn(name, ".");
            char key[520];
            snprintf(key, sizeof key, "/%.*s", (int)stem, name);
            item probe = {.cls = "", .key = key};
            item *x = bsearch(&probe, it.v, it.n, sizeof *it.v, cmp_item);
            if (!x || lab_of[x - it.v])
                continue;
            lab_of[x - it.v] = strdup(lab);
            matched++;
        }
        fclose(f);
        /* apply after the lookups (keys change, and with them the sort order) */
        int oom = 0;
        for (size_t i = 0; i < it.n; i++) {
            item *x = &it.v[i];
            if (!lab_of[i])
                continue;
            char *nk = malloc(strlen(lab_of[i]) + strlen(x->key) + 1);
            if (!nk) {
                oom = 1;
                free(lab_of[i]);
                continue;
            }
            sprintf(nk, "%s%s", lab_of[i], x->key);
            free(x->key);
            x->key = nk;
            free(x->cls);
            x->cls = lab_of[i];
        }
        free(lab_of);
        if (oom)
            goto done;
        if (matched != it.n) {
            fprintf(stderr, "equimod shards: --labels %s names %zu of the %zu images in %s "
                            "(each image needs a line '<file name> <label>')\n",
                    labels, matched, it.n, src);
            goto done;
        }
    }
    /* class list */
    if (classes_file) {
        char ferr[1024];
        FILE *f = fs_fopen_regular(classes_file, NULL, ferr, sizeof ferr);
        if (!f) {
            fprintf(stderr, "equimod shards: --classes %s\n", ferr);
            goto done;
        }
        char line[1024], w[512];
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "%511s", w) != 1 || w[0] == '#')
                continue;
            char **nc = realloc(cls, (n_cls + 1) * sizeof *cls);
            if (!nc || !(nc[n_cls] = strdup(w))) {
                cls = nc ? nc : cls;
                fclose(f);
                goto done;
            }
            cls = nc;
            n_cls++;
        }
        fclose(f);
    } else {
        cls = malloc(it.n * sizeof *cls);
        if (!cls)
            goto done;
        for (size_t i = 0; i < it.n; i++)
            cls[i] = it.v[i].cls;
        qsort(cls, it.n, sizeof *cls, cmp_str);
        size_t k = 0;
        for (size_t i = 0; i < it.n; i++)
            if (!k || strcmp(cls[k - 1], cls[i]))
                cls[k++] = cls[i];
        for (size_t i = 0; i < k; i++)
            cls[i] = strdup(cls[i]);
        n_cls = k;
    }
    for (size_t i = 0; i < it.n; i++) {
        item *x = &it.v[i];
        char *end;
        long idx = strtol(x->cls, &end, 10);
        int numeric = *x->cls && !*end && idx >= 0;
        x->label = -1;
        if (flat && numeric) { /* "ILSVRC2012_val_00000001.JPEG 65": a class index */
            if (!classes_file || (size_t)idx < n_cls)
                x->label = (int)idx;
        } else {
            for (size_t c = 0; c < n_cls && x->label < 0; c++)
                if (!strcmp(cls[c], x->cls))
                    x->label = (int)c;
        }
        if (x->label < 0) {
            fprintf(stderr, "equimod shards: class '%s' of %s is not in the class list %s\n",
                    x->cls, x->key, classes_file ? classes_file : "");
            goto done;
        }
    }
    /* deterministic order */
    qsort(it.v, it.n, sizeof *it.v, cmp_item);
    if (shuffle) {
        const eqm_host_api *api = host_api();
        eqm_rng rng;
        api->rng_seed(&rng, seed, 0x5752495445ULL /* WRITE */, 0, 0);
        for (size_t i = it.n; i > 1; i--) {
            size_t j = (size_t)api->rng_below(&rng, i);
            item t = it.v[i - 1];
            it.v[i - 1] = it.v[j];
            it.v[j] = t;
        }
    }
    size_t want = limit ? limit : it.n;
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "equimod shards: %s: %s\n", out, strerror(errno));
        goto done;
    }
    tj = tjInitDecompress();
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s.index", out, prefix);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    index = tj ? fopen(tmp, "w") : NULL;
    if (!index) {
        fprintf(stderr, "equimod shards: %s: %s\n", tmp, tj ? strerror(errno) : "tjInitDecompress failed");
        goto done;
    }
    fprintf(index, "# equimod shard index v1: shard samples bytes\n");
    size_t i = 0, written = 0, skipped = 0;
    int failed = 0;
    while (i < it.n && written < want && !failed) {
        char name[600];
        snprintf(name, sizeof name, "%s-%06zu.tar", prefix, shard);
        snprintf(path, sizeof path, "%s/%s.tmp", out, name);
        struct archive *a = archive_write_new();
        archive_write_set_format_ustar(a);
        archive_write_set_bytes_per_block(a, 10240);
        if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
            fprintf(stderr, "equimod shards: %s: %s\n", path, archive_error_string(a));
            archive_write_free(a);
            failed = 1;
            break;
        }
        shard++; /* a .tmp exists from here on: removed on failure */
        size_t count = 0, bytes = 0;
        while (i < it.n && written < want &&
               (shard_bytes ? (count == 0 || bytes < shard_bytes) : count < per_shard)) {
            item *x = &it.v[i++];
            unsigned char *data = x->data;
            size_t size = x->size;
            char why[1200];
            const char *bad = NULL;
            if (!data) {
                int r2 = fs_read_file(x->path, 0, MAX_IMAGE_BYTES, &data, &size, why,
                                      sizeof why);
                if (r2 == EQM_ERR_NOMEM) {
                    fprintf(stderr, "equimod shards: %s\n", why);
                    failed = 1;
                    break;
                }
                if (r2) {
                    data = NULL;
                    bad = why; /* the message names the path */
                }
            }
            char why2[256];
            const char *prob = bad ? NULL : jpeg_problem(tj, data, size, why2, sizeof why2);
            if (bad || prob) {
                if (bad)
                    fprintf(stderr, "equimod shards: %s %s\n", strict ? "error:" : "skipped:",
                            bad);
                else
                    fprintf(stderr, "equimod shards: %s %s: %s\n",
                            strict ? "error:" : "skipped:", x->path ? x->path : x->key, prob);
                if (!x->data)
                    free(data);
                skipped++;
                if (strict)
                    failed = 1;
                if (strict)
                    break;
                continue;
            }
            char mname[1100], cls_txt[32];
            snprintf(mname, sizeof mname, "%s.jpg", x->key);
            int n = snprintf(cls_txt, sizeof cls_txt, "%d\n", x->label);
            int w = write_member(a, mname, data, size);
            snprintf(mname, sizeof mname, "%s.cls", x->key);
            w = w || write_member(a, mname, cls_txt, (size_t)n);
            if (!x->data)
                free(data);
            if (w) {
                fprintf(stderr, "equimod shards: %s: %s\n", path, archive_error_string(a));
                failed = 1;
                break;
            }
            bytes += size;
            count++;
            written++;
        }
        if (archive_write_close(a) != ARCHIVE_OK) {
            fprintf(stderr, "equimod shards: %s: %s\n", path, archive_error_string(a));
            failed = 1;
        }
        archive_write_free(a);
        if (count == 0 && !failed) { /* only bad files were left */
            unlink(path);
            shard--;
            break;
        }
        fprintf(index, "%s %zu %zu\n", name, count, bytes);
    }
    fprintf(index, "total %zu\n", written);
    if (ferror(index))
        failed = 1;
    if (fclose(index))
        failed = 1;
    index = NULL;
    if (!failed && written == 0) {
        fprintf(stderr, "equimod shards: %s: none of the %zu images is a whole JPEG; nothing "
                        "written\n", src, it.n);
        failed = 1;
    }
    if (failed)
        goto done;
    snprintf(path, sizeof path, "%s/classes.txt", out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *cf = fopen(tmp, "w");
    if (!cf) {
        fprintf(stderr, "equimod shards: %s: %s\n", tmp, strerror(errno));
        goto done;
    }
    for (size_t c = 0; c < n_cls; c++)
        fprintf(cf, "%s\n", cls[c]);
    if (ferror(cf) | fclose(cf)) {
        fprintf(stderr, "equimod shards: %s: write failed\n", tmp);
        goto done;
    }
    /* Publish: shards, classes.txt, then the index (what readers open first). */
    for (size_t k = 0; k < shard; k++) {
        char from[4200];
        snprintf(path, sizeof path, "%s/%s-%06zu.tar", out, prefix, k);
        snprintf(from, sizeof from, "%s.tmp", path);
        if (rename(from, path)) {
            fprintf(stderr, "equimod shards: rename %s: %s\n", from, strerror(errno));
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/classes.txt", out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (rename(tmp, path)) {
        fprintf(stderr, "equimod shards: rename %s: %s\n", tmp, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s.index", out, prefix);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (rename(tmp, path)) {
        fprintf(stderr, "equimod shards: rename %s: %s\n", tmp, strerror(errno));
        goto done;
    }
    if (skipped)
        fprintf(stderr, "equimod shards: skipped %zu bad file(s) (listed above)\n", skipped);
    printf("wrote %zu samples of %zu classes into %zu shards: %s/%s-{%06d..%06zu}.tar "
           "(index %s/%s.index)\n", written, n_cls, shard, out, prefix, 0, shard - 1, out,
           prefix);
    rc = 0;
done:
    if (index)
        fclose(index);
    if (rc && out) { /* remove what this run left half-written; earlier outputs stay */
        char p2[4200];
        for (size_t k = 0; k < shard; k++) {
            snprintf(p2, sizeof p2, "%s/%s-%06zu.tar.tmp", out, prefix, k);
            unlink(p2);
        }
        snprintf(p2, sizeof p2, "%s/%s.index.tmp", out, prefix);
        unlink(p2);
        snprintf(p2, sizeof p2, "%s/classes.txt.tmp", out);
        unlink(p2);
    }
    if (tj)
        tjDestroy(tj);
    for (size_t c = 0; c < n_cls; c++)
        free(cls[c]);
    free(cls);
    items_free(&it);
    return rc;
}
