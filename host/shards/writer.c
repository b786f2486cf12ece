/* host/shards/writer.c: the shard writer behind `equimod shards` (host/cmd/shards.c).
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

int shards_tar_member(struct archive *a, const char *name, const void *data, size_t n)
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

/* What one `equimod shards` run holds between its steps. */
typedef struct job {
    const shards_write_opts *o;
    items it;
    char **cls;    /* class list (owned strings) */
    size_t n_cls;
    size_t shard;  /* shards begun: each has a .tmp until published */
    size_t written, skipped;
    tjhandle tj;
} job;

/* A flat source's labels (--labels): each image's key becomes "<label>/<stem>". */
static int apply_labels(job *j)
{
    const shards_write_opts *o = j->o;
    items *it = &j->it;
    char ferr[1024];
    FILE *f = fs_fopen_regular(o->labels, NULL, ferr, sizeof ferr);
    if (!f) {
        fprintf(stderr, "equimod shards: --labels %s\n", ferr);
        return -1;
    }
    char line[1024];
    size_t matched = 0;
    char **lab_of = calloc(it->n, sizeof *lab_of);
    if (!lab_of) {
        fclose(f);
        return -1;
    }
    qsort(it->v, it->n, sizeof *it->v, cmp_item); /* by key "/<stem>" */
    while (fgets(line, sizeof line, f)) {
        char name[512], lab[256];
        if (line[0] == '#' || sscanf(line, "%511s %255s", name, lab) != 2)
            continue;
        size_t stem = strcspn(name, ".");
        char key[520];
        snprintf(key, sizeof key, "/%.*s", (int)stem, name);
        item probe = {.cls = "", .key = key};
        item *x = bsearch(&probe, it->v, it->n, sizeof *it->v, cmp_item);
        if (!x || lab_of[x - it->v])
            continue;
        lab_of[x - it->v] = strdup(lab);
        matched++;
    }
    fclose(f);
    /* apply after the lookups (keys change, and with them the sort order) */
    int oom = 0;
    for (size_t i = 0; i < it->n; i++) {
        item *x = &it->v[i];
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
        return -1;
    if (matched != it->n) {
        fprintf(stderr, "equimod shards: --labels %s names %zu of the %zu images in %s "
                        "(each image needs a line '<file name> <label>')\n",
                o->labels, matched, it->n, o->src);
        return -1;
    }
    return 0;
}

/* The class list (--classes, else the sorted class names) and each image's label. */
static int resolve_classes(job *j)
{
    const shards_write_opts *o = j->o;
    items *it = &j->it;
    if (o->classes_file) {
        char ferr[1024];
        FILE *f = fs_fopen_regular(o->classes_file, NULL, ferr, sizeof ferr);
        if (!f) {
            fprintf(stderr, "equimod shards: --classes %s\n", ferr);
            return -1;
        }
        char line[1024], w[512];
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "%511s", w) != 1 || w[0] == '#')
                continue;
            char **nc = realloc(j->cls, (j->n_cls + 1) * sizeof *j->cls);
            if (!nc || !(nc[j->n_cls] = strdup(w))) {
                j->cls = nc ? nc : j->cls;
                fclose(f);
                return -1;
            }
            j->cls = nc;
            j->n_cls++;
        }
        fclose(f);
    } else {
        j->cls = malloc(it->n * sizeof *j->cls);
        if (!j->cls)
            return -1;
        for (size_t i = 0; i < it->n; i++)
            j->cls[i] = it->v[i].cls;
        qsort(j->cls, it->n, sizeof *j->cls, cmp_str);
        size_t k = 0;
        for (size_t i = 0; i < it->n; i++)
            if (!k || strcmp(j->cls[k - 1], j->cls[i]))
                j->cls[k++] = j->cls[i];
        for (size_t i = 0; i < k; i++)
            j->cls[i] = strdup(j->cls[i]);
        j->n_cls = k;
    }
    for (size_t i = 0; i < it->n; i++) {
        item *x = &it->v[i];
        char *end;
        long idx = strtol(x->cls, &end, 10);
        int numeric = *x->cls && !*end && idx >= 0;
        x->label = -1;
        if (o->labels && numeric) { /* "ILSVRC2012_val_00000001.JPEG 65": a class index */
            if (!o->classes_file || (size_t)idx < j->n_cls)
                x->label = (int)idx;
        } else {
            for (size_t c = 0; c < j->n_cls && x->label < 0; c++)
                if (!strcmp(j->cls[c], x->cls))
                    x->label = (int)c;
        }
        if (x->label < 0) {
            fprintf(stderr, "equimod shards: class '%s' of %s is not in the class list %s\n",
                    x->cls, x->key, o->classes_file ? o->classes_file : "");
            return -1;
        }
    }
    return 0;
}

/* The deterministic order: sorted, then a seeded Fisher-Yates shuffle. */
static void order_items(job *j)
{
    items *it = &j->it;
    qsort(it->v, it->n, sizeof *it->v, cmp_item);
    if (!j->o->shuffle)
        return;
    const eqm_host_api *api = host_api();
    eqm_rng rng;
    api->rng_seed(&rng, j->o->seed, 0x5752495445ULL /* WRITE */, 0, 0);
    for (size_t i = it->n; i > 1; i--) {
        size_t k = (size_t)api->rng_below(&rng, i);
        item t = it->v[i - 1];
        it->v[i - 1] = it->v[k];
        it->v[k] = t;
    }
}

/* Packs one image (checked first) into shard a; *packed gets its bytes. Returns 1 written,
 * 0 skipped, -1 failed. */
static int pack_item(job *j, struct archive *a, const char *path, item *x, size_t *packed)
{
    const int strict = j->o->strict;
    unsigned char *data = x->data;
    size_t size = x->size;
    char why[1200], why2[256];
    const char *bad = NULL, *prob = NULL;
    if (!data) {
        int r = fs_read_file(x->path, 0, MAX_IMAGE_BYTES, &data, &size, why, sizeof why);
        if (r == EQM_ERR_NOMEM) {
            fprintf(stderr, "equimod shards: %s\n", why);
            return -1;
        }
        if (r) {
            data = NULL;
            bad = why; /* the message names the path */
        }
    }
    if (!bad)
        prob = jpeg_problem(j->tj, data, size, why2, sizeof why2);
    if (bad || prob) {
        if (bad)
            fprintf(stderr, "equimod shards: %s %s\n", strict ? "error:" : "skipped:", bad);
        else
            fprintf(stderr, "equimod shards: %s %s: %s\n", strict ? "error:" : "skipped:",
                    x->path ? x->path : x->key, prob);
        if (!x->data)
            free(data);
        j->skipped++;
        return strict ? -1 : 0;
    }
    char mname[1100], cls_txt[32];
    snprintf(mname, sizeof mname, "%s.jpg", x->key);
    int n = snprintf(cls_txt, sizeof cls_txt, "%d\n", x->label);
    int w = shards_tar_member(a, mname, data, size);
    snprintf(mname, sizeof mname, "%s.cls", x->key);
    w = w || shards_tar_member(a, mname, cls_txt, (size_t)n);
    if (!x->data)
        free(data);
    if (w) {
        fprintf(stderr, "equimod shards: %s: %s\n", path, archive_error_string(a));
        return -1;
    }
    *packed = size;
    return 1;
}

/* Every shard under a .tmp name, and the index (PREFIX.index.tmp). Returns 0 or -1. */
static int write_shards(job *j)
{
    const shards_write_opts *o = j->o;
    items *it = &j->it;
    size_t want = o->limit ? o->limit : it->n;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s.index", o->out, o->prefix);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *index = fopen(tmp, "w");
    if (!index) {
        fprintf(stderr, "equimod shards: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    fprintf(index, "# equimod shard index v1: shard samples bytes\n");
    size_t i = 0;
    int failed = 0;
    while (i < it->n && j->written < want && !failed) {
        char name[600];
        snprintf(name, sizeof name, "%s-%06zu.tar", o->prefix, j->shard);
        snprintf(path, sizeof path, "%s/%s.tmp", o->out, name);
        struct archive *a = archive_write_new();
        archive_write_set_format_ustar(a);
        archive_write_set_bytes_per_block(a, 10240);
        if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
            fprintf(stderr, "equimod shards: %s: %s\n", path, archive_error_string(a));
            archive_write_free(a);
            failed = 1;
            break;
        }
        j->shard++; /* a .tmp exists from here on: removed on failure */
        size_t count = 0, bytes = 0;
        while (i < it->n && j->written < want &&
               (o->shard_bytes ? (count == 0 || bytes < o->shard_bytes) : count < o->per_shard)) {
            size_t packed = 0;
            int r = pack_item(j, a, path, &it->v[i++], &packed);
            if (r < 0) {
                failed = 1;
                break;
            }
            if (r == 0)
                continue;
            bytes += packed;
            count++;
            j->written++;
        }
        if (archive_write_close(a) != ARCHIVE_OK) {
            fprintf(stderr, "equimod shards: %s: %s\n", path, archive_error_string(a));
            failed = 1;
        }
        archive_write_free(a);
        if (count == 0 && !failed) { /* only bad files were left */
            unlink(path);
            j->shard--;
            break;
        }
        fprintf(index, "%s %zu %zu\n", name, count, bytes);
    }
    fprintf(index, "total %zu\n", j->written);
    if (ferror(index))
        failed = 1;
    if (fclose(index))
        failed = 1;
    if (!failed && j->written == 0) {
        fprintf(stderr, "equimod shards: %s: none of the %zu images is a whole JPEG; nothing "
                        "written\n", o->src, it->n);
        failed = 1;
    }
    return failed ? -1 : 0;
}

/* tmp -> final name; returns 0 or -1 with a message. */
static int publish_one(const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (rename(tmp, path)) {
        fprintf(stderr, "equimod shards: rename %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

/* classes.txt.tmp, then every name published: shards, classes.txt, the index last (what
 * readers open first). */
static int publish(job *j)
{
    const shards_write_opts *o = j->o;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/classes.txt", o->out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *cf = fopen(tmp, "w");
    if (!cf) {
        fprintf(stderr, "equimod shards: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    for (size_t c = 0; c < j->n_cls; c++)
        fprintf(cf, "%s\n", j->cls[c]);
    if (ferror(cf) | fclose(cf)) {
        fprintf(stderr, "equimod shards: %s: write failed\n", tmp);
        return -1;
    }
    for (size_t k = 0; k < j->shard; k++) {
        snprintf(path, sizeof path, "%s/%s-%06zu.tar", o->out, o->prefix, k);
        if (publish_one(path))
            return -1;
    }
    snprintf(path, sizeof path, "%s/classes.txt", o->out);
    if (publish_one(path))
        return -1;
    snprintf(path, sizeof path, "%s/%s.index", o->out, o->prefix);
    return publish_one(path);
}

/* After a failure: what this run left half-written goes; earlier outputs stay. */
static void remove_partial(const job *j)
{
    const shards_write_opts *o = j->o;
    char p[4200];
    for (size_t k = 0; k < j->shard; k++) {
        snprintf(p, sizeof p, "%s/%s-%06zu.tar.tmp", o->out, o->prefix, k);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/%s.index.tmp", o->out, o->prefix);
    unlink(p);
    snprintf(p, sizeof p, "%s/classes.txt.tmp", o->out);
    unlink(p);
}

int shards_write(const shards_write_opts *o)
{
    job J = {.o = o};
    job *j = &J;
    struct stat st;
    if (stat(o->src, &st)) {
        fprintf(stderr, "equimod shards: %s: %s\n", o->src, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "equimod shards: %s: is %s; SRC is a folder or a .tar/.tar.gz file\n",
                o->src, fs_type_name(st.st_mode));
        return 1;
    }
    int flat = o->labels != NULL, rc = 1;
    int r = S_ISDIR(st.st_mode) ? (flat ? scan_flat(o->src, &j->it) : scan_folder(o->src, &j->it))
                                : scan_archive(o->src, &j->it, flat);
    if (!r && !j->it.n) {
        fprintf(stderr, "equimod shards: %s: no .JPEG/.jpg files found (layout: %s)\n", o->src,
                flat ? "flat folder + --labels" : "<class>/<file>.JPEG");
        r = -1;
    }
    if (!r && flat)
        r = apply_labels(j);
    if (!r)
        r = resolve_classes(j);
    if (!r) {
        order_items(j);
        if (mkdir(o->out, 0755) && errno != EEXIST) {
            fprintf(stderr, "equimod shards: %s: %s\n", o->out, strerror(errno));
            r = -1;
        }
    }
    if (!r && !(j->tj = tjInitDecompress())) {
        fprintf(stderr, "equimod shards: tjInitDecompress failed\n");
        r = -1;
    }
    if (!r && !(r = write_shards(j)) && !(r = publish(j))) {
        if (j->skipped)
            fprintf(stderr, "equimod shards: skipped %zu bad file(s) (listed above)\n",
                    j->skipped);
        printf("wrote %zu samples of %zu classes into %zu shards: %s/%s-{%06d..%06zu}.tar "
               "(index %s/%s.index)\n", j->written, j->n_cls, j->shard, o->out, o->prefix, 0,
               j->shard - 1, o->out, o->prefix);
        rc = 0;
    }
    if (rc)
        remove_partial(j);
    if (j->tj)
        tjDestroy(j->tj);
    for (size_t c = 0; c < j->n_cls; c++)
        free(j->cls[c]);
    free(j->cls);
    items_free(&j->it);
    return rc;
}
