/* plugins/augment/resize: Resize(size, interpolation) of torchvision 0.14 on PIL images:
 * the smaller side becomes `size`, the other int(size * long / short); Pillow resampling
 * (antialiased bilinear or bicubic) bit for bit. Deterministic: no record in t.
 * Resampling is the host's (api->image->resample).
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

AUG_INSTANCE(rs, rs_opts, int flags; /* api->image->resample's */);

static int rs_init(void *self)
{
    rs *g = self;
    return aug_resample_flags(g->h.api, g->h.host, "resize", g->o.interpolation, &g->flags);
}

AUG_LIFECYCLE(rs, rs, "resize", rs_init, NULL)
AUG_NO_RECORD(rs)

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

AUG_APPLY(rs, rs, "resize", 0)
{
    const double box[4] = {0, 0, in->w, in->h};
    return g->h.api->image->resample(g->h.host, in, box, g->flags, out);
}

/* The whole input. */
static int rs_source_box(const void *self, const float *p, int in_w, int in_h, float box[4])
{
    box[0] = box[1] = 0;
    box[2] = (float)in_w;
    box[3] = (float)in_h;
    return EQM_OK;
}

/* On a downscaled input: the whole (smaller) image to the output the full one gives. */
static int rs_apply_scaled(const void *self, const float *p, const eqm_image *in, float sx,
                           float sy, eqm_image *out, void *scratch)
{
    return rs_apply(self, p, in, out, scratch);
}

static const eqm_param_spec rs_params[] = {
    {"size", EQM_PARAM_INT, offsetof(rs_opts, size), "256", 1, 65536, NULL, "smaller side after resizing"},
    {"interpolation", EQM_PARAM_ENUM, offsetof(rs_opts, interpolation), "bilinear", 0, 0,
     "bilinear|bicubic", "resampling filter (Pillow, antialiased)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(rs, "resize",
           "Resize(size) of the smaller side, Pillow resampling; deterministic, no t record",
           rs_opts, rs_out_shape, NULL, rs_source_box, rs_apply_scaled)
