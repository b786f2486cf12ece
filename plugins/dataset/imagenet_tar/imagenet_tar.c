/* plugins/dataset/imagenet_tar: ImageNet-style data streamed from WebDataset tar shards
 * (members KEY.jpg + KEY.cls; write them with `equimod shards`).
 *
 * A streaming dataset: the host reads the shards (io_uring or pread), parses the tar
 * stream, groups members by key and shuffles (eqm_dataset_ops.stream_source); this plugin
 * only says where the shards are and turns one grouped sample into an image and a label
 * (decode), through the host's JPEG services (api->image: DCT-domain downscaling when
 * asked). The views (METHOD.md: original = resize 256 bilinear + centre crop 224; crop
 * records of t in original pixels) are made by the augmentation pipelines afterwards.
 * Options: shards (pattern or @list), one pattern per split (train_shards/test_shards), an
 * optional index file (`equimod shards` writes PREFIX.index) for n_samples, an optional
 * classes file for class names, shuffle_buffer, io and on_bad.
 * Left out: random access (get): tar shards are read in order only.
 * Dimensions: W, H = image width, height; C = 3 (RGB).
 */
#include <equimod/equimod.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest image decoded (pixels): ImageNet's largest is about 10^7; 2^28 = 768 MiB of RGB. */
#define MAX_PIXELS ((int64_t)1 << 28)

typedef struct tar_opts {
    const char *train_shards;
    const char *test_shards;
    const char *train_index;
    const char *test_index;
    const char *classes;
    int64_t n_classes;
    int64_t shuffle_buffer;
    int io;     /* 0 auto, 1 uring, 2 pread */
    int on_bad; /* 0 skip, 1 fail */
} tar_opts;

typedef struct tar_ds {
    const eqm_host_api *api;
    eqm_host *host;
    const tar_opts *o;
    const char *shards;
    int64_t n_samples;
    int n_classes;
    char **names;      /* (n_classes) or NULL */
    char desc[600];
} tar_ds;

#define SET_ERR(d, st, ...) (d)->api->set_error((d)->host, (st), __VA_ARGS__)

static void free_names(tar_ds *d)
{
    if (!d->names)
        return;
    for (int i = 0; i < d->n_classes; i++)
        free(d->names[i]);
    free(d->names);
    d->names = NULL;
}

static int read_classes(tar_ds *d, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return SET_ERR(d, EQM_ERR_IO, "classes = %s: cannot open (one class name per line)",
                       path);
    char line[1024], w[512];
    int n = 0, cap = 0, rc = EQM_OK;
    char **v = NULL;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%511s", w) != 1 || w[0] == '#')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                rc = EQM_ERR_NOMEM;
                break;
            }
            v = nv;
        }
        v[n] = strdup(w);
        if (!v[n]) {
            rc = EQM_ERR_NOMEM;
            break;
        }
        n++;
    }
    fclose(f);
    d->names = v;
    d->n_classes = n;
    if (rc != EQM_OK)
        return SET_ERR(d, rc, "classes = %s: out of memory", path);
    if (n == 0)
        return SET_ERR(d, EQM_ERR_FORMAT, "classes = %s: no class names", path);
    return EQM_OK;
}

/* "total N" line of an index written by `equimod shards`. */
static int read_index(tar_ds *d, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return SET_ERR(d, EQM_ERR_IO, "index = %s: cannot open (written by `equimod shards` "
                       "as PREFIX.index)", path);
    char line[1024];
    long long total = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "total %lld", &total) == 1)
            break;
    fclose(f);
    if (total < 0)
        return SET_ERR(d, EQM_ERR_FORMAT, "index = %s: no 'total N' line", path);
    d->n_samples = total;
    return EQM_OK;
}

static int tar_open(const eqm_host_api *api, eqm_host *host, const void *opts,
                    const char *split, void **self)
{
    const tar_opts *o = opts;
    *self = NULL;
    int train = !strcmp(split, "train");
    if (!train && strcmp(split, "test"))
        return api->set_error(host, EQM_ERR_INVAL, "split '%s' unknown (train or test)", split);
    const char *shards = train ? o->train_shards : o->test_shards;
    if (!shards || !*shards)
        return api->set_error(host, EQM_ERR_INVAL,
                              "%s_shards is empty: set it to the shard pattern, e.g. "
                              "/data/imagenet/%s-{000000..001023}.tar", split, split);
    tar_ds *d = api->alloc(host, sizeof *d, 0);
    if (!d)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    d->api = api;
    d->host = host;
    d->o = o;
    d->shards = shards;
    d->n_samples = -1;
    d->n_classes = (int)o->n_classes;
    int rc = EQM_OK;
    const char *index = train ? o->train_index : o->test_index;
    if (index && *index)
        rc = read_index(d, index);
    if (rc == EQM_OK && o->classes && *o->classes)
        rc = read_classes(d, o->classes);
    if (rc != EQM_OK) {
        free_names(d);
        api->free(host, d);
        return rc;
    }
    snprintf(d->desc, sizeof d->desc, "imagenet_tar %s: %s (%lld samples%s)", split, shards,
             (long long)d->n_samples, d->n_samples < 0 ? ": unknown, no index" : "");
    *self = d;
    return EQM_OK;
}

static void tar_close(void *self)
{
    tar_ds *d = self;
    if (!d)
        return;
    free_names(d);
    d->api->free(d->host, d);
}

static int tar_info(const void *self, eqm_dataset_info *info)
{
    const tar_ds *d = self;
    eqm_dataset_info i;
    memset(&i, 0, sizeof i);
    i.size = info->size;
    i.n_samples = -1; /* streamed: no random access even when the count is known */
    i.n_classes = d->n_classes;
    i.class_names = (const char *const *)d->names;
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(i.mean, mean, sizeof mean);
    memcpy(i.std, std, sizeof std);
    i.desc = d->desc;
    size_t n = info->size < sizeof i ? info->size : sizeof i;
    memcpy(info, &i, n);
    return EQM_OK;
}

static int tar_stream_source(const void *self, eqm_stream_source *src)
{
    const tar_ds *d = self;
    eqm_stream_source s;
    memset(&s, 0, sizeof s);
    s.size = src->size;
    s.shards = d->shards;
    s.n_samples = d->n_samples;
    s.shuffle_buffer = d->o->shuffle_buffer;
    s.io = d->o->io;
    s.on_bad = d->o->on_bad;
    size_t n = src->size < sizeof s ? src->size : sizeof s;
    memcpy(src, &s, n);
    return EQM_OK;
}

/* members: [0] = jpg, [1] = cls (stream_members order) */
static int tar_decode(const void *self, const eqm_raw_sample *raw, int scale_num,
                      eqm_image *img, size_t cap, int32_t *label, int *orig_w, int *orig_h)
{
    const tar_ds *d = self;
    const eqm_host_api *api = d->api;
    if (!raw || raw->n_members < 2 || !raw->members[0].data || !raw->members[1].data)
        return SET_ERR(d, EQM_SKIP, "%s: sample '%s' lacks its .jpg or .cls member",
                       raw ? raw->shard : "?", raw ? raw->key : "?");
    if (scale_num < 1 || scale_num > 8)
        return SET_ERR(d, EQM_ERR_INVAL, "decode: scale_num %d (1..8)", scale_num);
    /* label: decimal text, surrounding white space allowed */
    const eqm_raw_member *cls = &raw->members[1];
    char txt[32];
    if (cls->size == 0 || cls->size >= sizeof txt)
        return SET_ERR(d, EQM_SKIP, "%s: %s.cls is %zu bytes (expected a class index as text)",
                       raw->shard, raw->key, cls->size);
    memcpy(txt, cls->data, cls->size);
    size_t tn = cls->size;
    while (tn > 0 && (txt[tn - 1] == ' ' || txt[tn - 1] == '\n' || txt[tn - 1] == '\r' ||
                      txt[tn - 1] == '\t'))
        tn--;
    txt[tn] = 0;
    char *end;
    long v = strtol(txt, &end, 10);
    if (end == txt || *end || v < 0 || v >= d->n_classes)
        return SET_ERR(d, EQM_SKIP, "%s: %s.cls = '%.20s' is not a class index in [0, %d)",
                       raw->shard, raw->key, txt, d->n_classes);
    const eqm_raw_member *jpg = &raw->members[0];
    int W, H, C;
    int rc = api->image->jpeg_header(d->host, jpg->data, jpg->size, &W, &H, &C);
    if (rc != EQM_OK)
        return SET_ERR(d, EQM_SKIP, "%s: %s.jpg: not a readable JPEG", raw->shard, raw->key);
    if ((int64_t)W * H > MAX_PIXELS)
        return SET_ERR(d, EQM_SKIP, "%s: %s.jpg is %dx%d pixels (limit %lld: not a photo, or "
                       "a decompression bomb)", raw->shard, raw->key, W, H, (long long)MAX_PIXELS);
    int sw = (W * scale_num + 7) / 8, sh = (H * scale_num + 7) / 8;
    size_t need = (size_t)sw * (size_t)sh * 3;
    if (need > cap) {
        img->w = sw;
        img->h = sh;
        img->c = 3;
        return SET_ERR(d, EQM_ERR_NOMEM, "decode: image %dx%d needs %zu bytes", sw, sh, need);
    }
    if (EQM_API_HAS(api->image, jpeg_decode_region)) {
        int ox, oy;
        rc = api->image->jpeg_decode_region(d->host, jpg->data, jpg->size, scale_num, 0, 0, 0,
                                            0, img, cap, &ox, &oy);
    } else if (scale_num == 8 || scale_num == 4 || scale_num == 2 || scale_num == 1) {
        rc = api->image->jpeg_decode(d->host, jpg->data, jpg->size, 8 / scale_num, img, cap);
    } else {
        rc = api->image->jpeg_decode(d->host, jpg->data, jpg->size, 1, img, cap);
    }
    if (rc == EQM_ERR_FORMAT)
        return SET_ERR(d, EQM_SKIP, "%s: %s.jpg: corrupt JPEG", raw->shard, raw->key);
    if (rc != EQM_OK)
        return rc;
    *label = (int32_t)v;
    if (orig_w)
        *orig_w = W;
    if (orig_h)
        *orig_h = H;
    return EQM_OK;
}

static const eqm_param_spec tar_params[] = {
    {"train_shards", EQM_PARAM_STRING, offsetof(tar_opts, train_shards), "", 0, 0, NULL,
     "train shards: pattern with brace ranges (train-{000000..001023}.tar) or @list.txt"},
    {"test_shards", EQM_PARAM_STRING, offsetof(tar_opts, test_shards), "", 0, 0, NULL,
     "test (val) shards: pattern or @list.txt"},
    {"train_index", EQM_PARAM_STRING, offsetof(tar_opts, train_index), "", 0, 0, NULL,
     "optional index file of the train shards (PREFIX.index from `equimod shards`)"},
    {"test_index", EQM_PARAM_STRING, offsetof(tar_opts, test_index), "", 0, 0, NULL,
     "optional index file of the test shards"},
    {"classes", EQM_PARAM_STRING, offsetof(tar_opts, classes), "", 0, 0, NULL,
     "optional class list (classes.txt from `equimod shards`); sets n_classes"},
    {"n_classes", EQM_PARAM_INT, offsetof(tar_opts, n_classes), "1000", 1, 1000000, NULL,
     "number of classes when no class list is given"},
    {"shuffle_buffer", EQM_PARAM_INT, offsetof(tar_opts, shuffle_buffer), "2000", 0, 10000000,
     NULL, "samples held to shuffle across shards (0 = shard order)"},
    {"io", EQM_PARAM_ENUM, offsetof(tar_opts, io), "auto", 0, 0, "auto|uring|pread",
     "read with io_uring, pread, or io_uring falling back to pread"},
    {"on_bad", EQM_PARAM_ENUM, offsetof(tar_opts, on_bad), "skip", 0, 0, "skip|fail",
     "bad data (truncated shard, corrupt JPEG, missing .cls): skip with a warning, or fail"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const eqm_dataset_ops tar_ops = {
    .size = sizeof(eqm_dataset_ops),
    .open = tar_open,
    .close = tar_close,
    .info = tar_info,
    .get = NULL,
    .stream_members = "jpg;cls",
    .stream_source = tar_stream_source,
    .decode = tar_decode,
};

static const eqm_plugin_desc tar_desc = {
    EQM_DESC_HEADER(EQM_KIND_DATASET),
    "imagenet_tar",
    "1.0.0",
    "ImageNet-style JPEG + class samples streamed from WebDataset tar shards",
    tar_params,
    sizeof(tar_opts),
    &tar_ops,
};

static const eqm_plugin_desc *const descs[] = {&tar_desc};
EQM_PLUGIN_ENTRY(descs)
