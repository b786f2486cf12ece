/* plugins/augment/grayscale: RandomGrayscale(p) (torchvision 0.14 on PIL): ITU-R 601 luma
 * with Pillow's rounding ((19595 R + 38470 G + 7471 B + 0x8000) >> 16), replicated to 3
 * channels. Record (METHOD.md §4): gray = 1 if applied, else 0.
 * Left out: 1-channel output.
 */
#include <equimod/equimod.h>

#include "../aug_common.h"

typedef struct gray_opts {
    double p;
} gray_opts;

typedef struct gray {
    const eqm_host_api *api;
    eqm_host *host;
    gray_opts o;
} gray;

static int gray_create(const eqm_host_api *api, eqm_host *host, const void *opts, void **self)
{
    gray *g = api->alloc(host, sizeof *g, 0);
    *self = NULL;
    if (!g)
        return api->set_error(host, EQM_ERR_NOMEM, "grayscale: out of memory");
    g->api = api;
    g->host = host;
    g->o = *(const gray_opts *)opts;
    *self = g;
    return EQM_OK;
}

static void gray_destroy(void *self)
{
    gray *g = self;
    if (g)
        g->api->free(g->host, g);
}

static int gray_n_params(const void *self) { return 1; }
static const char *gray_param_name(const void *self, int i) { return i == 0 ? "gray" : NULL; }

static int gray_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                       const eqm_image *in, float *p)
{
    const gray *g = self;
    p[0] = g->api->rng_uniform(rng) < g->o.p ? 1.0f : 0.0f;
    return EQM_OK;
}

static int gray_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                          uint32_t *format)
{
    *w = in->w;
    *h = in->h;
    *c = in->c;
    *format = in->format;
    return EQM_OK;
}

static int gray_apply(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                      void *scratch)
{
    const gray *g = self;
    int rc = aug_check_u8(g->api, g->host, "grayscale", in);
    if (rc)
        return rc;
    if (p[0] == 0.0f || in->c == 1) {
        aug_copy(in, out);
        return EQM_OK;
    }
    for (int y = 0; y < in->h; y++) {
        const uint8_t *s = (const uint8_t *)in->data + (size_t)y * in->stride;
        uint8_t *o = (uint8_t *)out->data + (size_t)y * out->stride;
        for (int x = 0; x < in->w; x++) {
            uint8_t l = aug_luma(s + 3 * x);
            o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = l;
        }
    }
    return EQM_OK;
}

static const eqm_param_spec gray_params[] = {
    {"p", EQM_PARAM_FLOAT, offsetof(gray_opts, p), "0.2", 0, 1, NULL, "probability of converting to gray"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const eqm_augment_ops gray_ops = {
    sizeof(eqm_augment_ops), gray_create, gray_destroy, gray_n_params, gray_param_name,
    gray_sample, gray_out_shape, gray_apply, NULL,
    NULL, NULL, /* 1.1 source_box, apply_scaled: not a resampling step */
};

static const eqm_plugin_desc gray_desc = {
    EQM_DESC_HEADER(EQM_KIND_AUGMENT), "grayscale", "1.0.0",
    "RandomGrayscale(p), ITU-R 601 luma on 3 channels: t = gray (0/1)", gray_params,
    sizeof(gray_opts), &gray_ops,
};

static const eqm_plugin_desc *const descs[] = {&gray_desc};
EQM_PLUGIN_ENTRY(descs)
