/* plugins/augment/center_crop: CenterCrop(size) of torchvision 0.14: top =
 * int(round((H - size) / 2)), left = int(round((W - size) / 2)) (round half to even).
 * Deterministic: no record in t.
 * Left out: padding when the image is smaller than the crop (an error here).
 */
#include <equimod/equimod.h>

#include <math.h>

#include "../aug_common.h"

typedef struct cc_opts {
    int64_t size;
} cc_opts;

typedef struct cc {
    const eqm_host_api *api;
    eqm_host *host;
    cc_opts o;
} cc;

static int cc_create(const eqm_host_api *api, eqm_host *host, const void *opts, void **self)
{
    cc *g = api->alloc(host, sizeof *g, 0);
    *self = NULL;
    if (!g)
        return api->set_error(host, EQM_ERR_NOMEM, "center_crop: out of memory");
    g->api = api;
    g->host = host;
    g->o = *(const cc_opts *)opts;
    *self = g;
    return EQM_OK;
}

static void cc_destroy(void *self)
{
    cc *g = self;
    if (g)
        g->api->free(g->host, g);
}

static int cc_n_params(const void *self) { return 0; }
static const char *cc_param_name(const void *self, int i) { return NULL; }

static int cc_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                     const eqm_image *in, float *p)
{
    return EQM_OK;
}

static int cc_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                        uint32_t *format)
{
    const cc *g = self;
    *w = *h = (int)g->o.size;
    *c = in->c;
    *format = EQM_PIX_U8;
    return EQM_OK;
}

static int cc_apply(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                    void *scratch)
{
    const cc *g = self;
    int rc = aug_check_u8(g->api, g->host, "center_crop", in);
    if (rc)
        return rc;
    int s = (int)g->o.size;
    if (s > in->w || s > in->h)
        return g->api->set_error(g->host, EQM_ERR_INVAL, "center_crop: %d px crop of a %dx%d image "
                                 "(padding is not supported; resize first)", s, in->w, in->h);
    int top = (int)nearbyint((in->h - s) / 2.0), left = (int)nearbyint((in->w - s) / 2.0);
    for (int y = 0; y < s; y++)
        memcpy((uint8_t *)out->data + (size_t)y * out->stride,
               (const uint8_t *)in->data + (size_t)(y + top) * in->stride + (size_t)left * in->c,
               (size_t)s * in->c);
    return EQM_OK;
}

static const eqm_param_spec cc_params[] = {
    {"size", EQM_PARAM_INT, offsetof(cc_opts, size), "224", 1, 65536, NULL, "crop side in pixels"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const eqm_augment_ops cc_ops = {
    sizeof(eqm_augment_ops), cc_create, cc_destroy, cc_n_params, cc_param_name,
    cc_sample, cc_out_shape, cc_apply, NULL,
    NULL, NULL, /* 1.1 source_box, apply_scaled: not a resampling step */
};

static const eqm_plugin_desc cc_desc = {
    EQM_DESC_HEADER(EQM_KIND_AUGMENT), "center_crop", "1.0.0",
    "CenterCrop(size); deterministic, no t record", cc_params, sizeof(cc_opts), &cc_ops,
};

static const eqm_plugin_desc *const descs[] = {&cc_desc};
EQM_PLUGIN_ENTRY(descs)
