/* plugins/augment/solarize: RandomSolarize(threshold, p) (PIL ImageOps.solarize: pixels at
 * or above the threshold are inverted, 255 - v). Record (METHOD.md §4): solarize = 1 if
 * applied, else 0.
 * Left out: nothing.
 */
#include <equimod/equimod.h>

#include "../aug_common.h"

typedef struct sol_opts {
    int64_t threshold;
    double p;
} sol_opts;

typedef struct sol {
    const eqm_host_api *api;
    eqm_host *host;
    sol_opts o;
} sol;

static int sol_create(const eqm_host_api *api, eqm_host *host, const void *opts, void **self)
{
    sol *g = api->alloc(host, sizeof *g, 0);
    *self = NULL;
    if (!g)
        return api->set_error(host, EQM_ERR_NOMEM, "solarize: out of memory");
    g->api = api;
    g->host = host;
    g->o = *(const sol_opts *)opts;
    *self = g;
    return EQM_OK;
}

static void sol_destroy(void *self)
{
    sol *g = self;
    if (g)
        g->api->free(g->host, g);
}

static int sol_n_params(const void *self) { return 1; }
static const char *sol_param_name(const void *self, int i) { return i == 0 ? "solarize" : NULL; }

static int sol_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                      const eqm_image *in, float *p)
{
    const sol *g = self;
    p[0] = g->api->rng_uniform(rng) < g->o.p ? 1.0f : 0.0f;
    return EQM_OK;
}

static int sol_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                         uint32_t *format)
{
    *w = in->w;
    *h = in->h;
    *c = in->c;
    *format = in->format;
    return EQM_OK;
}

static int sol_apply(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                     void *scratch)
{
    const sol *g = self;
    int rc = aug_check_u8(g->api, g->host, "solarize", in);
    if (rc)
        return rc;
    if (p[0] == 0.0f) {
        aug_copy(in, out);
        return EQM_OK;
    }
    uint8_t lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = v < g->o.threshold ? (uint8_t)v : (uint8_t)(255 - v);
    size_t row = (size_t)in->w * in->c;
    for (int y = 0; y < in->h; y++) {
        const uint8_t *s = (const uint8_t *)in->data + (size_t)y * in->stride;
        uint8_t *o = (uint8_t *)out->data + (size_t)y * out->stride;
        for (size_t x = 0; x < row; x++)
            o[x] = lut[s[x]];
    }
    return EQM_OK;
}

static const eqm_param_spec sol_params[] = {
    {"threshold", EQM_PARAM_INT, offsetof(sol_opts, threshold), "128", 0, 256, NULL,
     "pixels >= threshold are inverted"},
    {"p", EQM_PARAM_FLOAT, offsetof(sol_opts, p), "0.2", 0, 1, NULL, "probability of solarizing"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const eqm_augment_ops sol_ops = {
    sizeof(eqm_augment_ops), sol_create, sol_destroy, sol_n_params, sol_param_name,
    sol_sample, sol_out_shape, sol_apply, NULL,
    NULL, NULL, /* 1.1 source_box, apply_scaled: not a resampling step */
};

static const eqm_plugin_desc sol_desc = {
    EQM_DESC_HEADER(EQM_KIND_AUGMENT), "solarize", "1.0.0",
    "RandomSolarize(threshold, p), PIL semantics: t = solarize (0/1)", sol_params,
    sizeof(sol_opts), &sol_ops,
};

static const eqm_plugin_desc *const descs[] = {&sol_desc};
EQM_PLUGIN_ENTRY(descs)
