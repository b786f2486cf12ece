/* example_shapes.c: a complete out-of-tree equimod dataset plugin.
 *
 * dataset/example_shapes: n synthetic RGB images of size x size pixels in 4 classes
 * (0 horizontal stripes, 1 vertical stripes, 2 diagonal stripes, 3 checkerboard), each with
 * its own colours and phase. Sample i of a split is a pure function of (split, i), so `get`
 * needs no state, no file and no lock: it MAY run on several threads at once.
 *
 * It shows the random-access dataset contract (kinds.h, eqm_dataset_ops):
 *   open/close/info       once, on the owner thread;
 *   get(index, img, cap)  writes U8 HWC pixels into the caller's buffer and sets w/h/c/
 *                         stride; when cap is too small it sets img->w/h/c to the size it
 *                         needs and returns EQM_GROW (the buffer-growth protocol:
 *                         the host grows its buffer and calls again; ABI 1.1 plugins
 *                         said EQM_ERR_NOMEM);
 *   labels                in [0, n_classes).
 * Build: see the Makefile beside this file (pkg-config equimod-sdk).
 * Dimension legend: n samples, s = size (w = h = s), c = 3 channels, HWC layout.
 */
#include <stddef.h>
#include <stdint.h>

#include <equimod/equimod.h>

typedef struct shapes_opts {
    int64_t n;    /* samples per split */
    int64_t size; /* image side in pixels */
} shapes_opts;

static const eqm_param_spec shapes_params[] = {
    {"n", EQM_PARAM_INT, offsetof(shapes_opts, n), "1024", 1, 1000000, NULL,
     "number of samples in each split"},
    {"size", EQM_PARAM_INT, offsetof(shapes_opts, size), "32", 4, 1024, NULL,
     "image width and height in pixels"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const char *const shapes_classes[4] = {"hstripes", "vstripes", "diagonal", "checker"};

typedef struct shapes {
    const eqm_host_api *api;
    eqm_host *host;
    int64_t n;
    int size;
    uint64_t split_key; /* 1 train, 2 test */
} shapes;

static int shapes_open(const eqm_host_api *api, eqm_host *host, const void *opts,
                       const char *split, void **self)
{
    const shapes_opts *o = opts;
    uint64_t key;
    if (split[0] == 't' && split[1] == 'r')
        key = 1; /* "train" */
    else if (split[0] == 't' && split[1] == 'e')
        key = 2; /* "test" */
    else
        return api->set_error(host, EQM_ERR_INVAL, "unknown split '%s' (train or test)",
                              split);
    shapes *s = api->alloc(host, sizeof *s, 0);
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    s->n = o->n;
    s->size = (int)o->size;
    s->split_key = key;
    *self = s;
    return EQM_OK;
}

static void shapes_close(void *self)
{
    shapes *s = self;
    if (s)
        s->api->free(s->host, s);
}

static int shapes_info(const void *self, eqm_dataset_info *info)
{
    const shapes *s = self;
    info->n_samples = s->n;
    info->n_classes = 4;
    info->class_names = shapes_classes;
    info->w = info->h = s->size;
    info->c = 3;
    for (int k = 0; k < 3; k++) {
        info->mean[k] = 0.5f;
        info->std[k] = 0.25f;
    }
    /* desc was appended after the first 1.0 layout: write it only if the host has it */
    if (info->size >= offsetof(eqm_dataset_info, desc) + sizeof info->desc)
        info->desc = "example_shapes: synthetic stripes and checkerboards";
    return EQM_OK;
}

/* splitmix64: a stateless hash of (split, index, k) */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int shapes_get(const void *self, int64_t index, eqm_image *img,
                      size_t img_capacity_bytes, int32_t *label)
{
    const shapes *s = self;
    if (index < 0 || index >= s->n)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "index %lld outside 0..%lld",
                                 (long long)index, (long long)(s->n - 1));
    int w = s->size, h = s->size, c = 3;
    if ((size_t)w * (size_t)h * (size_t)c > img_capacity_bytes) {
        img->w = w, img->h = h, img->c = c; /* grow the buffer to this and call again */
        return EQM_GROW;
    }
    uint64_t r = mix(s->split_key * 0x100000000ull + (uint64_t)index);
    int cls = (int)(r & 3);
    int period = 4 + (int)((r >> 8) % 5);
    int phase = (int)((r >> 16) % (uint64_t)period);
    uint8_t fg[3], bg[3];
    for (int k = 0; k < 3; k++) {
        fg[k] = (uint8_t)(128 + ((r >> (24 + 8 * k)) & 127));
        bg[k] = (uint8_t)((r >> (48 + 4 * k)) & 0x7f);
    }
    uint8_t *px = img->data;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int on;
            switch (cls) {
            case 0: on = (y + phase) / (period / 2 + 1) % 2; break;
            case 1: on = (x + phase) / (period / 2 + 1) % 2; break;
            case 2: on = (x + y + phase) / (period / 2 + 1) % 2; break;
            default: on = ((x + phase) / period + (y + phase) / period) % 2; break;
            }
            for (int k = 0; k < c; k++)
                px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)k] = on ? fg[k] : bg[k];
        }
    img->w = w, img->h = h, img->c = c;
    img->stride = w * c;
    img->format = EQM_PIX_U8;
    *label = cls;
    return EQM_OK;
}

static const eqm_dataset_ops shapes_ops = {
    .size = sizeof(eqm_dataset_ops),
    .open = shapes_open,
    .close = shapes_close,
    .info = shapes_info,
    .get = shapes_get,
};

static const eqm_plugin_desc shapes_desc = {
    EQM_DESC_HEADER(EQM_KIND_DATASET),
    "example_shapes",
    "1.0.0",
    "synthetic stripes and checkerboards in 4 classes (SDK example)",
    shapes_params,
    sizeof(shapes_opts),
    &shapes_ops,
};

static const eqm_plugin_desc *const descs[] = {&shapes_desc};
EQM_PLUGIN_ENTRY(descs)
