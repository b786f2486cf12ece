/* plugins/augment/horizontal_flip: RandomHorizontalFlip(p) (torchvision 0.14, PIL
 * transpose FLIP_LEFT_RIGHT). Record (METHOD.md §4): flip = 1 if flipped, else 0.
 * Left out: vertical flips.
 */
#include <equimod/equimod.h>

#include "../aug_common.h"

typedef struct flip_opts {
    double p;
} flip_opts;

typedef struct flip {
    const eqm_host_api *api;
    eqm_host *host;
    flip_opts o;
} flip;

static int flip_create(const eqm_host_api *api, eqm_host *host, const void *opts, void **self)
{
    flip *f = api->alloc(host, sizeof *f, 0);
    *self = NULL;
    if (!f)
        return api->set_error(host, EQM_ERR_NOMEM, "horizontal_flip: out of memory");
    f->api = api;
    f->host = host;
    f->o = *(const flip_opts *)opts;
    *self = f;
    return EQM_OK;
}

static void flip_destroy(void *self)
{
    flip *f = self;
    if (f)
        f->api->free(f->host, f);
}

static int flip_n_params(const void *self) { return 1; }
static const char *flip_param_name(const void *self, int i) { return i == 0 ? "flip" : NULL; }

static int flip_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                       const eqm_image *in, float *p)
{
    const flip *f = self;
    p[0] = f->api->rng_uniform(rng) < f->o.p ? 1.0f : 0.0f;
    return EQM_OK;
}

static int flip_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                          uint32_t *format)
{
    *w = in->w;
    *h = in->h;
    *c = in->c;
    *format = in->format;
    return EQM_OK;
}

static int flip_apply(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                      void *scratch)
{
    const flip *f = self;
    int rc = aug_check_u8(f->api, f->host, "horizontal_flip", in);
    if (rc)
        return rc;
    if (p[0] == 0.0f) {
        aug_copy(in, out);
        return EQM_OK;
    }
    const int w = in->w, c = in->c;
    for (int y = 0; y < in->h; y++) {
        const uint8_t *s = (const uint8_t *)in->data + (size_t)y * in->stride;
        uint8_t *o = (uint8_t *)out->data + (size_t)y * out->stride;
        if (c == 3)
            for (int x = 0; x < w; x++) {
                o[3 * x] = s[3 * (w - 1 - x)];
                o[3 * x + 1] = s[3 * (w - 1 - x) + 1];
                o[3 * x + 2] = s[3 * (w - 1 - x) + 2];
            }
        else
            for (int x = 0; x < w; x++)
                o[x] = s[w - 1 - x];
    }
    return EQM_OK;
}

static const eqm_param_spec flip_params[] = {
    {"p", EQM_PARAM_FLOAT, offsetof(flip_opts, p), "0.5", 0, 1, NULL, "probability of flipping"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const eqm_augment_ops flip_ops = {
    sizeof(eqm_augment_ops), flip_create, flip_destroy, flip_n_params, flip_param_name,
    flip_sample, flip_out_shape, flip_apply, NULL,
    NULL, NULL, /* 1.1 source_box, apply_scaled: not a resampling step */
};

static const eqm_plugin_desc flip_desc = {
    EQM_DESC_HEADER(EQM_KIND_AUGMENT), "horizontal_flip", "1.0.0",
    "RandomHorizontalFlip(p): t = flip (0/1)", flip_params, sizeof(flip_opts), &flip_ops,
};

static const eqm_plugin_desc *const descs[] = {&flip_desc};
EQM_PLUGIN_ENTRY(descs)
