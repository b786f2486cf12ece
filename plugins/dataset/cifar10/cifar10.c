/* plugins/dataset/cifar10: the CIFAR-10 dataset (Krizhevsky 2009) in its official binary
 * format, held in memory as HWC uint8 (50,000 x 32 x 32 x 3 = 147 MiB for train).
 *
 * Sources, searched in this order under `root` (default $EQUIMOD_DATA_DIR/cifar10):
 *   the archive cifar-10-binary.tar.gz (members cifar-10-batches-bin/NAME.bin, read through
 *   the host's libarchive service, no extraction); the folder cifar-10-batches-bin/ or root
 *   itself with data_batch_{1..5}.bin / test_batch.bin, each also accepted gzipped (.bin.gz).
 * Test split (`test_set`): official = test_batch.bin (10,000, exact); exact1000 =
 *   test_batch_first1000.bin.gz (official records 0..999, exact); jpeg_full =
 *   cifar10-test-jpeg-q75.tar.gz + cifar10-test-jpeg-q75-index.txt (10,000, lossy JPEG q75,
 *   exact labels; decoded with api->image); auto = official, else exact1000, else jpeg_full.
 *   Which one was used is logged at info level and returned in eqm_dataset_info.desc.
 * Record format: 1 label byte (0..9) + 3,072 pixel bytes (1,024 R, 1,024 G, 1,024 B, each
 * 32x32 row-major). A batch file holds exactly 10,000 records (30,730,000 bytes).
 *
 * Left out: the python pickle format, CIFAR-100.
 */
#include <equimod/equimod.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REC 3073
#define PIX 3072
#define PER_BATCH 10000

typedef struct cifar_opts {
    const char *root;
    int test_set;       /* 0 auto, 1 exact1000, 2 jpeg_full, 3 official */
    int64_t train_batches;
} cifar_opts;

static const char *const class_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                            "dog", "frog", "horse", "ship", "truck"};

typedef struct cifar {
    const eqm_host_api *api;
    eqm_host *host;
    int64_t n;
    uint8_t *pix;      /* (n, 32, 32, 3) */
    int32_t *labels;   /* (n) */
    char desc[1400];
    char root[1024];
} cifar;

#define SET_ERR(c, st, ...) (c)->api->set_error((c)->host, (st), __VA_ARGS__)

static int path_join(char *out, size_t n, const char *a, const char *b)
{
    int k = snprintf(out, n, "%s/%s", a, b);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

static int grow(cifar *c, int64_t extra)
{
    const eqm_host_api *api = c->api;
    int64_t nn = c->n + extra;
    uint8_t *p = api->alloc(c->host, (size_t)nn * PIX, 64);
    int32_t *l = api->alloc(c->host, (size_t)nn * sizeof(int32_t), 64);
    if (!p || !l) {
        api->free(c->host, p);
        api->free(c->host, l);
        return SET_ERR(c, EQM_ERR_NOMEM, "cifar10: cannot allocate %lld images", (long long)nn);
    }
    if (c->n) {
        memcpy(p, c->pix, (size_t)c->n * PIX);
        memcpy(l, c->labels, (size_t)c->n * sizeof(int32_t));
    }
    api->free(c->host, c->pix);
    api->free(c->host, c->labels);
    c->pix = p;
    c->labels = l;
    return EQM_OK;
}

/* Append the records of one batch file's bytes. `expect` records exactly (0: any whole
 * number of records). */
static int add_records(cifar *c, const char *what, const uint8_t *d, size_t n, int64_t expect)
{
    if (n % REC)
        return SET_ERR(c, EQM_ERR_FORMAT,
                       "%s: %zu bytes is not a whole number of %d-byte CIFAR-10 records "
                       "(truncated or not a CIFAR-10 binary batch)", what, n, REC);
    int64_t k = (int64_t)(n / REC);
    if (expect && k != expect)
        return SET_ERR(c, EQM_ERR_FORMAT,
                       "%s: %lld records (%zu bytes), expected %lld (%lld bytes); the file is "
                       "truncated or not an official batch", what, (long long)k, n,
                       (long long)expect, (long long)expect * REC);
    for (int64_t r = 0; r < k; r++)
        if (d[(size_t)r * REC] > 9)
            return SET_ERR(c, EQM_ERR_FORMAT, "%s: record %lld has label %u, expected 0..9",
                           what, (long long)r, d[(size_t)r * REC]);
    int rc = grow(c, k);
    if (rc)
        return rc;
    for (int64_t r = 0; r < k; r++) {
        const uint8_t *s = d + (size_t)r * REC;
        uint8_t *o = c->pix + (size_t)(c->n + r) * PIX;
        c->labels[c->n + r] = s[0];
        for (int q = 0; q < 1024; q++) {
            o[3 * q] = s[1 + q];
            o[3 * q + 1] = s[1 + 1024 + q];
            o[3 * q + 2] = s[1 + 2048 + q];
        }
    }
    c->n += k;
    return EQM_OK;
}

/* Find `name` (.bin or .bin.gz) in root/cifar-10-batches-bin or root. */
static int find_file(cifar *c, const char *name, char *out, size_t n)
{
    const eqm_io_api *io = c->api->io;
    const char *dirs[2] = {"cifar-10-batches-bin/", ""};
    for (int d = 0; d < 2; d++)
        for (int gz = 0; gz < 2; gz++) {
            char rel[256];
            snprintf(rel, sizeof rel, "%s%s%s", dirs[d], name, gz ? ".gz" : "");
            if (path_join(out, n, c->root, rel) == 0 && io->file_exists(out))
                return 1;
        }
    return 0;
}

static size_t batch_bytes(int64_t expect) { return expect > 0 ? (size_t)expect * REC : SIZE_MAX; }

/* A batch of `expect` records is exactly expect * REC bytes: reading more (a gzip bomb, a
 * wrong file) is refused by the host at that size when it can (ABI 1.2), otherwise
 * add_records refuses the size after the read. */
static int load_file(cifar *c, const char *path, int64_t expect)
{
    const eqm_io_api *io = c->api->io;
    void *d;
    size_t n;
    int rc = EQM_API_HAS(io, read_file_max)
                 ? io->read_file_max(c->host, path, batch_bytes(expect), &d, &n)
                 : io->read_file(c->host, path, &d, &n);
    if (rc)
        return rc;
    rc = add_records(c, path, d, n, expect);
    c->api->free(c->host, d);
    return rc;
}

static int load_member(cifar *c, const char *arc, const char *member, int64_t expect)
{
    const eqm_io_api *io = c->api->io;
    void *d;
    size_t n;
    int rc = EQM_API_HAS(io, read_member_max)
                 ? io->read_member_max(c->host, arc, member, batch_bytes(expect), &d, &n)
                 : io->read_member(c->host, arc, member, &d, &n);
    if (rc)
        return rc;
    char what[1400];
    snprintf(what, sizeof what, "%s:%s", arc, member);
    rc = add_records(c, what, d, n, expect);
    c->api->free(c->host, d);
    return rc;
}

/* ---- JPEG test set ---- */
typedef struct jpeg_ctx {
    cifar *c;
    char (*paths)[64]; /* index -> member path */
    int *order;        /* indices sorted by path */
    int *seen;
    int n;
    int rc;
} jpeg_ctx;

static const char (*sort_paths)[64];
static int cmp_idx(const void *a, const void *b)
{
    /* qsort has no context argument; the table is set just before the (serial) sort by
     * load_jpeg_test, which runs on the opening thread only. */
    return strcmp(sort_paths[*(const int *)a], sort_paths[*(const int *)b]);
}

static int find_path(const jpeg_ctx *j, const char *name)
{
    int lo = 0, hi = j->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, k = j->order[mid];
        int cmp = strcmp(j->paths[k], name);
        if (!cmp)
            return k;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int jpeg_member(void *vctx, const char *name, const void *data, size_t n)
{
    jpeg_ctx *j = vctx;
    cifar *c = j->c;
    int idx = find_path(j, name);
    if (idx < 0)
        return 0;
    eqm_image img = {0, 0, 0, 0, EQM_PIX_U8, c->pix + (size_t)idx * PIX};
    int rc = c->api->image->jpeg_decode(c->host, data, n, 1, &img, PIX);
    if (rc)
        return c->api->set_error(c->host, rc < 0 ? rc : EQM_ERR_FORMAT,
                                 "cifar10: %s: JPEG decode failed", name);
    if (img.w != 32 || img.h != 32 || img.c != 3)
        return c->api->set_error(c->host, EQM_ERR_FORMAT, "cifar10: %s: %dx%dx%d, expected 32x32x3",
                                 name, img.w, img.h, img.c);
    j->seen[idx] = 1;
    return 0;
}

static int load_jpeg_test(cifar *c, const char *tarpath, const char *idxpath)
{
    const eqm_host_api *api = c->api;
    if (!api->image || !api->image->jpeg_decode)
        return SET_ERR(c, EQM_ERR_UNSUPPORTED,
                       "cifar10: test_set=jpeg_full needs the host's JPEG decoder "
                       "(api->image->jpeg_decode), which this build lacks; use "
                       "test_set=exact1000");
    void *d;
    size_t n;
    int rc = api->io->read_file(c->host, idxpath, &d, &n);
    if (rc)
        return rc;
    jpeg_ctx j = {c, NULL, NULL, NULL, PER_BATCH, 0};
    j.paths = calloc(PER_BATCH, sizeof *j.paths);
    j.seen = calloc(PER_BATCH, sizeof(int));
    j.order = calloc(PER_BATCH, sizeof(int));
    if (!j.paths || !j.seen || !j.order) {
        rc = SET_ERR(c, EQM_ERR_NOMEM, "cifar10: out of memory");
        goto out;
    }
    rc = grow(c, PER_BATCH);
    if (rc)
        goto out;
    c->n = PER_BATCH;
    {
        char *s = d, *end = s + n;
        int line = 0, count = 0;
        while (s < end) {
            char *nl = memchr(s, '\n', (size_t)(end - s));
            if (!nl)
                nl = end;
            line++;
            if (nl > s) {
                char buf[256];
                size_t len = (size_t)(nl - s) < sizeof buf - 1 ? (size_t)(nl - s) : sizeof buf - 1;
                memcpy(buf, s, len);
                buf[len] = 0;
                int idx, lab;
                char p[128];
                if (sscanf(buf, "%d %d %127s", &idx, &lab, p) != 3 || idx < 0 || idx >= PER_BATCH ||
                    lab < 0 || lab > 9 || strlen(p) >= 64) {
                    rc = SET_ERR(c, EQM_ERR_FORMAT,
                                 "%s:%d: expected 'index label path' with index 0..9999 and "
                                 "label 0..9", idxpath, line);
                    goto out;
                }
                snprintf(j.paths[idx], 64, "%s", p);
                c->labels[idx] = lab;
                count++;
            }
            s = nl + 1;
        }
        if (count != PER_BATCH) {
            rc = SET_ERR(c, EQM_ERR_FORMAT, "%s: %d entries, expected %d", idxpath, count, PER_BATCH);
            goto out;
        }
    }
    for (int k = 0; k < PER_BATCH; k++)
        j.order[k] = k;
    sort_paths = (const char (*)[64])j.paths;
    qsort(j.order, PER_BATCH, sizeof(int), cmp_idx);
    rc = api->io->for_each_member(c->host, tarpath, jpeg_member, &j);
    if (rc)
        goto out;
    for (int k = 0; k < PER_BATCH; k++)
        if (!j.seen[k]) {
            rc = SET_ERR(c, EQM_ERR_FORMAT, "%s: member %s (test index %d) is missing", tarpath,
                         j.paths[k], k);
            goto out;
        }
out:
    free(j.paths);
    free(j.seen);
    free(j.order);
    api->free(c->host, d);
    return rc;
}

static int open_train(cifar *c, const cifar_opts *o)
{
    char arc[1100], p[1100];
    path_join(arc, sizeof arc, c->root, "cifar-10-binary.tar.gz");
    int use_arc = c->api->io->file_exists(arc);
    for (int b = 1; b <= o->train_batches; b++) {
        char name[64];
        snprintf(name, sizeof name, "data_batch_%d.bin", b);
        int rc;
        if (use_arc) {
            rc = load_member(c, arc, name, PER_BATCH);
        } else if (find_file(c, name, p, sizeof p)) {
            rc = load_file(c, p, PER_BATCH);
        } else {
            return SET_ERR(c, EQM_ERR_NOTFOUND,
                           "cifar10: %s not found in %s (looked for cifar-10-binary.tar.gz, "
                           "cifar-10-batches-bin/%s[.gz], %s[.gz]); set [dataset] root or "
                           "EQUIMOD_DATA_DIR, or run datasets/cifar10.sh",
                           name, c->root, name, name);
        }
        if (rc)
            return rc;
    }
    snprintf(c->desc, sizeof c->desc, "cifar10 train: %lld images (data_batch_1..%d, %s)",
             (long long)c->n, (int)o->train_batches, use_arc ? arc : p);
    return EQM_OK;
}

static int open_test(cifar *c, const cifar_opts *o)
{
    char arc[1100], off[1100], ex[1100], jt[1100], ji[1100];
    path_join(arc, sizeof arc, c->root, "cifar-10-binary.tar.gz");
    int has_arc = c->api->io->file_exists(arc);
    int has_off = find_file(c, "test_batch.bin", off, sizeof off);
    int has_ex = find_file(c, "test_batch_first1000.bin", ex, sizeof ex);
    path_join(jt, sizeof jt, c->root, "cifar10-test-jpeg-q75.tar.gz");
    path_join(ji, sizeof ji, c->root, "cifar10-test-jpeg-q75-index.txt");
    int has_jpg = c->api->io->file_exists(jt) && c->api->io->file_exists(ji);
    int mode = o->test_set;
    if (mode == 0)
        mode = (has_off || has_arc) ? 3 : has_ex ? 1 : has_jpg ? 2 : 3;
    int rc;
    switch (mode) {
    case 3:
        if (has_off)
            rc = load_file(c, off, PER_BATCH);
        else if (has_arc)
            rc = load_member(c, arc, "test_batch.bin", PER_BATCH);
        else
            return SET_ERR(c, EQM_ERR_NOTFOUND,
                           "cifar10: no official test set in %s (test_batch.bin[.gz] or "
                           "cifar-10-binary.tar.gz)%s", c->root,
                           o->test_set == 0 ? ", nor test_batch_first1000.bin.gz, nor the JPEG test set" : "; try test_set=auto");
        if (rc)
            return rc;
        snprintf(c->desc, sizeof c->desc, "cifar10 test: official, all 10,000 exact images (%s)",
                 has_off ? off : arc);
        return EQM_OK;
    case 1:
        if (!has_ex)
            return SET_ERR(c, EQM_ERR_NOTFOUND, "cifar10: test_set=exact1000 needs %s/test_batch_first1000.bin.gz",
                           c->root);
        rc = load_file(c, ex, 1000);
        if (rc)
            return rc;
        snprintf(c->desc, sizeof c->desc,
                 "cifar10 test: exact first 1,000 of the official test set (%s)", ex);
        return EQM_OK;
    default:
        if (!has_jpg)
            return SET_ERR(c, EQM_ERR_NOTFOUND, "cifar10: test_set=jpeg_full needs %s and %s", jt, ji);
        rc = load_jpeg_test(c, jt, ji);
        if (rc)
            return rc;
        snprintf(c->desc, sizeof c->desc,
                 "cifar10 test: full 10,000, JPEG q75 version (lossy pixels, exact labels) (%s)", jt);
        return EQM_OK;
    }
}

static void cifar_close(void *self);

static int cifar_open(const eqm_host_api *api, eqm_host *host, const void *vopts,
                      const char *split, void **self)
{
    const cifar_opts *o = vopts;
    *self = NULL;
    if (!EQM_API_HAS(api, io) || !api->io)
        return api->set_error(host, EQM_ERR_UNSUPPORTED, "cifar10: host has no file services (api->io)");
    cifar *c = api->alloc(host, sizeof *c, 0);
    if (!c)
        return api->set_error(host, EQM_ERR_NOMEM, "cifar10: out of memory");
    c->api = api;
    c->host = host;
    if (o->root && o->root[0]) {
        snprintf(c->root, sizeof c->root, "%s", o->root);
    } else {
        const char *d = getenv("EQUIMOD_DATA_DIR");
        if (!d || !d[0]) {
            api->free(host, c);
            return api->set_error(host, EQM_ERR_INVAL,
                                  "cifar10: no data folder: set [dataset] root = DIR or the "
                                  "environment variable EQUIMOD_DATA_DIR (DIR/cifar10 is used)");
        }
        snprintf(c->root, sizeof c->root, "%s/cifar10", d);
    }
    int rc;
    if (!strcmp(split, "train"))
        rc = open_train(c, o);
    else if (!strcmp(split, "test"))
        rc = open_test(c, o);
    else
        rc = api->set_error(host, EQM_ERR_INVAL, "cifar10: unknown split '%s' (train or test)", split);
    if (rc) {
        cifar_close(c);
        return rc;
    }
    api->log(host, EQM_LOG_INFO, "%s", c->desc);
    *self = c;
    return EQM_OK;
}

static void cifar_close(void *self)
{
    cifar *c = self;
    if (!c)
        return;
    c->api->free(c->host, c->pix);
    c->api->free(c->host, c->labels);
    c->api->free(c->host, c);
}

static int cifar_info(const void *self, eqm_dataset_info *info)
{
    const cifar *c = self;
    info->n_samples = c->n;
    info->n_classes = 10;
    info->class_names = class_names;
    info->w = 32;
    info->h = 32;
    info->c = 3;
    info->mean[0] = 0.4914f;
    info->mean[1] = 0.4822f;
    info->mean[2] = 0.4465f;
    info->std[0] = 0.247f;
    info->std[1] = 0.243f;
    info->std[2] = 0.261f;
    if (info->size >= offsetof(eqm_dataset_info, desc) + sizeof(info->desc))
        info->desc = c->desc;
    return EQM_OK;
}

static int cifar_get(const void *self, int64_t index, eqm_image *img, size_t cap, int32_t *label)
{
    const cifar *c = self;
    if (index < 0 || index >= c->n)
        return c->api->set_error(c->host, EQM_ERR_INVAL, "cifar10: index %lld out of [0, %lld)",
                                 (long long)index, (long long)c->n);
    img->w = 32;
    img->h = 32;
    img->c = 3;
    img->stride = 96;
    img->format = EQM_PIX_U8;
    if (cap < PIX)
        return EQM_ERR_NOMEM;
    memcpy(img->data, c->pix + (size_t)index * PIX, PIX);
    *label = c->labels[index];
    return EQM_OK;
}

static const eqm_param_spec cifar_params[] = {
    {"root", EQM_PARAM_STRING, offsetof(cifar_opts, root), "", 0, 0, NULL,
     "data folder holding the CIFAR-10 files (default: $EQUIMOD_DATA_DIR/cifar10)"},
    {"test_set", EQM_PARAM_ENUM, offsetof(cifar_opts, test_set), "auto", 0, 0,
     "auto|exact1000|jpeg_full|official",
     "test split: official test_batch.bin, exact first 1,000, or full JPEG q75 (lossy)"},
    {"train_batches", EQM_PARAM_INT, offsetof(cifar_opts, train_batches), "5", 1, 5, NULL,
     "train split: read data_batch_1..N only (5 = the whole training set)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const eqm_dataset_ops cifar_ops = {
    .size = sizeof(eqm_dataset_ops),
    .open = cifar_open,
    .close = cifar_close,
    .info = cifar_info,
    .get = cifar_get,
};

static const eqm_plugin_desc cifar_desc = {
    EQM_DESC_HEADER(EQM_KIND_DATASET),
    "cifar10",
    "1.0.0",
    "CIFAR-10 in the official binary format (archive, .bin or .bin.gz), train and test",
    cifar_params,
    sizeof(cifar_opts),
    &cifar_ops,
};

static const eqm_plugin_desc *const descs[] = {&cifar_desc};
EQM_PLUGIN_ENTRY(descs)
