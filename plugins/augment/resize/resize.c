/* plugins/augment/resize: Resize(size, interpolation) of torchvision 0.14 on PIL images:
 * the smaller side becomes `size`, the other int(size * long / short); Pillow resampling
 * (antialiased bilinear or bicubic) bit for bit. Deterministic: no record in t.
 * Used for evaluation (CIFAR: Resize(36, bicubic) + CenterCrop(32); ImageNet: Resize(256)).
 * apply_scaled() (ABI 1.1): the same output from a DCT-downscaled input (the loader uses it
 * when the smaller side stays at least `size`).
 * Left out: max_size, (h, w) sizes.
 */
#include <equimod/equimod.h>

#include "../aug_common.h"

typedef struct rs_opts {
    int64_t size;
    int interpolation; /* 0 bilinear, 1 bicubic */
} rs_opts;

typedef struct rs {
    const eqm_host_api *api;
    eqm_host *host;
    rs_opts o;
    int filter;
} rs;

static int rs_create(const eqm_host_api *api, eqm_host *host, const void *opts, void **self)
{
    rs *g = api->alloc(host, sizeof *g, 0);
    *self = NULL;
    if (!g)
        return api->set_error(host, EQM_ERR_NOMEM, "resize: out of memory");
    g->api = api;
    g->host = host;
    g->o = *(const rs_opts *)opts;
    g->filter = g->o.interpolation == 1 ? AUG_BICUBIC : AUG_BILINEAR;
    *self = g;
    return EQM_OK;
}

static void rs_destroy(void *self)
{
    rs *g = self;
    if (g)
        g->api->free(g->host, g);
}

static int rs_n_params(const void *self) { return 0; }
static const char *rs_param_name(const void *self, int i) { return NULL; }

static int rs_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                     const eqm_image *in, float *p)
{
    return EQM_OK;
}

static int rs_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                        uint32_t *format)
{
    const rs *g = self;
    int s = (int)g->o.size;
    if (in->w <= in->h) {
        *w = s;
        *h = (int)((int64_t)s * in->h / in->w);
    } else {
        *h = s;
        *w = (int)((int64_t)s * in->w / in->h);
    }
    *c = in->c;
    *format = EQM_PIX_U8;
    return EQM_OK;
}

static size_t rs_scratch(const void *self, const eqm_image *in)
{
    const rs *g = self;
    int w, h, c;
    uint32_t f;
    rs_out_shape(self, in, &w, &h, &c, &f);
    /* + 2: under apply_scaled the output is sized from the full image, which may round to
     * one more pixel than this (downscaled) input gives */
    return aug_resize_scratch(in->w, in->h, in->c, w + 2, h + 2, g->filter);
}

static int rs_apply(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                    void *scratch)
{
    const rs *g = self;
    int rc = aug_check_u8(g->api, g->host, "resize", in);
    if (rc)
        return rc;
    aug_resize(in, 0, 0, in->w, in->h, out, g->filter, scratch);
    return EQM_OK;
}

/* The whole input. */
static int rs_source_box(const void *self, const float *p, int in_w, int in_h, float box[4])
{
    (void)self;
    (void)p;
    box[0] = box[1] = 0;
    box[2] = (float)in_w;
    box[3] = (float)in_h;
    return EQM_OK;
}

/* On a downscaled input: the whole (smaller) image to the output the full one gives. */
static int rs_apply_scaled(const void *self, const float *p, const eqm_image *in, float sx,
                           float sy, eqm_image *out, void *scratch)
{
    (void)sx;
    (void)sy;
    return rs_apply(self, p, in, out, scratch);
}

static const eqm_param_spec rs_params[] = {
    {"size", EQM_PARAM_INT, offsetof(rs_opts, size), "256", 1, 65536, NULL, "smaller side after resizing"},
    {"interpolation", EQM_PARAM_ENUM, offsetof(rs_opts, interpolation), "bilinear", 0, 0,
     "bilinear|bicubic", "resampling filter (Pillow, antialiased)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const eqm_augment_ops rs_ops = {
    sizeof(eqm_augment_ops), rs_create, rs_destroy, rs_n_params, rs_param_name,
    rs_sample, rs_out_shape, rs_apply, rs_scratch, rs_source_box, rs_apply_scaled,
};

static const eqm_plugin_desc rs_desc = {
    EQM_DESC_HEADER(EQM_KIND_AUGMENT), "resize", "1.0.0",
    "Resize(size) of the smaller side, Pillow resampling; deterministic, no t record", rs_params,
    sizeof(rs_opts), &rs_ops,
};

static const eqm_plugin_desc *const descs[] = {&rs_desc};
EQM_PLUGIN_ENTRY(descs)
