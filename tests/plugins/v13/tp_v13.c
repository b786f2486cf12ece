/* tests/plugins/v13/tp_v13.c: the ABI 1.3 appends, and 1.2 plugins without them, for
 * tests/plugins/check_appends.c (built in tests/plugins/v13/.libs, away from the fixture
 * folder other tests scan).
 *
 *   augment test_turn     a 90-degree clockwise turn when its t field 'turn' is 1 (drawn
 *                         with probability 1/2); out_shape_p gives the turned size
 *   augment test_turn12   built as an ABI 1.2 plugin (ops table without out_shape_p): the
 *                         identity, loads into a 1.3 host
 *   dataset test_sizes    12 images of varying size (w 40, 48, 56; h 30, 40), lists their
 *                         sizes with image_sizes; option `wide`: every image 12x8 instead
 *   dataset test_sizes12  the same built as ABI 1.2 (no image_sizes)
 */
#include "../tp_common.h"

/* ---- test_turn ---- */
static int turn_n(const void *self) { (void)self; return 1; }
static const char *turn_name(const void *self, int i) { (void)self; (void)i; return "turn"; }
static int turn_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                       const eqm_image *in, float *p)
{
    const tp_aug *a = self;
    (void)ctx; (void)in;
    p[0] = a->api->rng_uniform(rng) < 0.5 ? 1.0f : 0.0f;
    return EQM_OK;
}
static int turn_shape_p(const void *self, const float *p, const eqm_image *in, int *w, int *h,
                        int *c, uint32_t *format)
{
    tp_aug_out_shape(self, in, w, h, c, format);
    if (p[0] > 0.5f) {
        *w = in->h;
        *h = in->w;
    }
    return EQM_OK;
}
static int turn_apply(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                      void *scratch)
{
    if (p[0] <= 0.5f)
        return tp_aug_apply(self, p, in, out, scratch);
    if (in->format != EQM_PIX_U8 || out->w != in->h || out->h != in->w) {
        const tp_aug *a = self;
        return a->api->set_error(a->host, EQM_ERR_INVAL, "test_turn: output %dx%d for a "
                                 "turned %dx%d input", out->w, out->h, in->w, in->h);
    }
    const unsigned char *s = in->data;
    unsigned char *d = out->data;
    for (int y = 0; y < out->h; y++) /* clockwise: out(y, x) = in(H - 1 - x, y) */
        for (int x = 0; x < out->w; x++)
            for (int k = 0; k < in->c; k++)
                d[(size_t)y * out->stride + (size_t)x * in->c + k] =
                    s[(size_t)(in->h - 1 - x) * in->stride + (size_t)y * in->c + k];
    return EQM_OK;
}
static const eqm_augment_ops turn_ops = {
    .size = sizeof(eqm_augment_ops), .create = tp_aug_create, .destroy = tp_aug_destroy,
    .n_params = turn_n, .param_name = turn_name, .sample = turn_sample,
    .out_shape = tp_aug_out_shape, .apply = turn_apply, .out_shape_p = turn_shape_p};
static const eqm_plugin_desc turn_desc = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_turn", "1",
                                          "90-degree turn (out_shape_p)", NULL, 0, &turn_ops};

/* ---- test_turn12: an ABI 1.2 table (its size stops before out_shape_p) ---- */
static const eqm_augment_ops turn12_ops = {
    .size = offsetof(eqm_augment_ops, out_shape_p), .create = tp_aug_create,
    .destroy = tp_aug_destroy, .n_params = tp_aug_n_params, .param_name = tp_aug_param_name,
    .sample = tp_aug_sample, .out_shape = tp_aug_out_shape, .apply = tp_aug_apply};
static const eqm_plugin_desc turn12_desc = {sizeof(eqm_plugin_desc), EQM_ABI_MAJOR, 2,
                                            EQM_KIND_AUGMENT, "test_turn12", "1",
                                            "identity built for ABI 1.2", NULL, 0, &turn12_ops};

/* ---- test_sizes ---- */
typedef struct sz_opts {
    int wide;
} sz_opts;
typedef struct sz {
    const eqm_host_api *api;
    eqm_host *host;
    int wide;
} sz;
static const char *const sz_classes[2] = {"a", "b"};
#define SZ_N 12

static void sz_size(const sz *d, int64_t i, int *w, int *h)
{
    *w = d->wide ? 12 : 40 + (int)(i % 3) * 8;
    *h = d->wide ? 8 : 30 + (int)(i % 2) * 10;
}
static int sz_open(const eqm_host_api *api, eqm_host *host, const void *opts,
                   const char *split, void **self)
{
    (void)split;
    sz *d = api->alloc(host, sizeof *d, 0);
    if (!d)
        return EQM_ERR_NOMEM;
    d->api = api;
    d->host = host;
    d->wide = ((const sz_opts *)opts)->wide;
    *self = d;
    return EQM_OK;
}
static void sz_close(void *self)
{
    sz *d = self;
    d->api->free(d->host, d);
}
static int sz_info(const void *self, eqm_dataset_info *info)
{
    (void)self;
    info->n_samples = SZ_N;
    info->n_classes = 2;
    info->class_names = sz_classes;
    info->w = info->h = info->c = 0; /* sizes vary */
    for (int k = 0; k < 3; k++) {
        info->mean[k] = 0.5f;
        info->std[k] = 0.25f;
    }
    return EQM_OK;
}
static int sz_get(const void *self, int64_t index, eqm_image *img, size_t cap, int32_t *label)
{
    const sz *d = self;
    sz_size(d, index, &img->w, &img->h);
    img->c = 3;
    img->stride = img->w * 3;
    img->format = EQM_PIX_U8;
    size_t n = (size_t)img->w * img->h * 3;
    if (cap < n)
        return EQM_GROW;
    for (size_t k = 0; k < n; k++)
        ((unsigned char *)img->data)[k] = (unsigned char)(index * 31 + (int64_t)k * 7);
    *label = (int32_t)(index % 2);
    return EQM_OK;
}
static int64_t sz_sizes(const void *self, int64_t max, int32_t *wh)
{
    const sz *d = self;
    int64_t n = max < SZ_N ? max : SZ_N;
    for (int64_t i = 0; i < n; i++) {
        int w, h;
        sz_size(d, i, &w, &h);
        wh[2 * i] = w;
        wh[2 * i + 1] = h;
    }
    return n;
}
static const eqm_param_spec sz_params[] = {
    {"wide", EQM_PARAM_BOOL, offsetof(sz_opts, wide), "false", 1, 0, NULL,
     "every image 12x8"},
    TP_SPEC_END};
static const eqm_dataset_ops sz_ops = {.size = sizeof(eqm_dataset_ops), .open = sz_open,
                                       .close = sz_close, .info = sz_info, .get = sz_get,
                                       .image_sizes = sz_sizes};
static const eqm_plugin_desc sz_desc = {EQM_DESC_HEADER(EQM_KIND_DATASET), "test_sizes", "1",
                                        "images of varying size", sz_params, sizeof(sz_opts),
                                        &sz_ops};
static const eqm_dataset_ops sz12_ops = {.size = offsetof(eqm_dataset_ops, image_sizes),
                                         .open = sz_open, .close = sz_close, .info = sz_info,
                                         .get = sz_get};
static const eqm_plugin_desc sz12_desc = {sizeof(eqm_plugin_desc), EQM_ABI_MAJOR, 2,
                                          EQM_KIND_DATASET, "test_sizes12", "1",
                                          "the same built for ABI 1.2", sz_params,
                                          sizeof(sz_opts), &sz12_ops};

static const eqm_plugin_desc *const descs[] = {&turn_desc, &turn12_desc, &sz_desc, &sz12_desc};
EQM_PLUGIN_ENTRY(descs)
