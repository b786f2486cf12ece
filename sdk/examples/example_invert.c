/* example_invert.c: a complete out-of-tree equimod augmentation plugin.
 *
 * augment/example_invert: with probability p, invert every pixel (255 - v for 8-bit
 * images, 1 - v for float images in [0, 1]). Its record in t is one value: 1 if the image
 * was inverted, 0 if not (method-reference.md §4: the neutral value of a skipped augmentation).
 *
 * It includes only <equimod/equimod.h> and libc, links nothing of the host, and keeps no
 * global state: everything it needs comes through the api table at create(). Build:
 *     cc -std=c11 -O2 -shared -fPIC $(pkg-config --cflags equimod-sdk) \
 *        -o example_invert.so example_invert.c
 * and run `equimod --plugin-path . describe augment/example_invert`.
 * Dimension legend: w, h image width and height, c channels (1 or 3), HWC layout.
 */
#include <stddef.h>
#include <stdint.h>

#include <equimod/equimod.h>

/* Options, filled by the host from the config section ([augment.NAME]). */
typedef struct invert_opts {
    double p; /* probability of inverting */
} invert_opts;

static const eqm_param_spec invert_params[] = {
    {"p", EQM_PARAM_FLOAT, offsetof(invert_opts, p), "0.5", 0.0, 1.0, NULL,
     "probability of inverting the image"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

/* Instance state: allocated with api->alloc, read-only after create. */
typedef struct invert {
    const eqm_host_api *api;
    eqm_host *host;
    double p;
} invert;

static int invert_create(const eqm_host_api *api, eqm_host *host, const void *opts,
                         void **self)
{
    const invert_opts *o = opts;
    invert *s = api->alloc(host, sizeof *s, 0);
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    s->p = o->p;
    *self = s;
    return EQM_OK;
}

static void invert_destroy(void *self)
{
    invert *s = self;
    if (s)
        s->api->free(s->host, s);
}

static int invert_n_params(const void *self)
{
    (void)self;
    return 1;
}

static const char *invert_param_name(const void *self, int i)
{
    (void)self;
    return i == 0 ? "invert" : NULL;
}

/* Runs concurrently on a const self: randomness only from rng. */
static int invert_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                         const eqm_image *in, float *p)
{
    const invert *s = self;
    (void)ctx;
    (void)in;
    p[0] = s->api->rng_uniform(rng) < s->p ? 1.0f : 0.0f;
    return EQM_OK;
}

static int invert_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                            uint32_t *format)
{
    (void)self;
    *w = in->w;
    *h = in->h;
    *c = in->c;
    *format = in->format;
    return EQM_OK;
}

/* Deterministic given p; out is caller-owned with the dimensions of out_shape. */
static int invert_apply(const void *self, const float *p, const eqm_image *in,
                        eqm_image *out, void *scratch)
{
    const invert *s = self;
    (void)scratch;
    int on = p[0] > 0.5f;
    size_t row = (size_t)in->w * (size_t)in->c;
    if (in->format == EQM_PIX_U8) {
        for (int y = 0; y < in->h; y++) {
            const uint8_t *a = (const uint8_t *)in->data + (size_t)y * (size_t)in->stride;
            uint8_t *b = (uint8_t *)out->data + (size_t)y * (size_t)out->stride;
            for (size_t x = 0; x < row; x++)
                b[x] = on ? (uint8_t)(255 - a[x]) : a[x];
        }
    } else if (in->format == EQM_PIX_F32) {
        for (int y = 0; y < in->h; y++) {
            const float *a = (const float *)in->data + (size_t)y * (size_t)in->stride;
            float *b = (float *)out->data + (size_t)y * (size_t)out->stride;
            for (size_t x = 0; x < row; x++)
                b[x] = on ? 1.0f - a[x] : a[x];
        }
    } else {
        return s->api->set_error(s->host, EQM_ERR_UNSUPPORTED, "pixel format %u",
                                 (unsigned)in->format);
    }
    return EQM_OK;
}

static const eqm_augment_ops invert_ops = {
    .size = sizeof(eqm_augment_ops),
    .create = invert_create,
    .destroy = invert_destroy,
    .n_params = invert_n_params,
    .param_name = invert_param_name,
    .sample = invert_sample,
    .out_shape = invert_out_shape,
    .apply = invert_apply,
};

static const eqm_plugin_desc invert_desc = {
    EQM_DESC_HEADER(EQM_KIND_AUGMENT),
    "example_invert",
    "1.0.0",
    "invert the pixels with probability p (SDK example)",
    invert_params,
    sizeof(invert_opts),
    &invert_ops,
};

static const eqm_plugin_desc *const descs[] = {&invert_desc};
EQM_PLUGIN_ENTRY(descs)
