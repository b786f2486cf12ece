/* plugins/augment/random_resized_crop: torchvision 0.14 RandomResizedCrop on PIL images.
 *
 * sample(): up to 10 tries, each drawing an area fraction ~ U(scale_min, scale_max) and an
 * aspect ratio ~ exp(U(log ratio_min, log ratio_max)); w = round(sqrt(area*ratio)),
 * h = round(sqrt(area/ratio)) (round half to even, like Python); accepted if 0 < w <= W and
 * 0 < h <= H, then i ~ U{0..H-h}, j ~ U{0..W-w}. Fallback: centre crop with the aspect ratio
 * clamped to [ratio_min, ratio_max]. Record (METHOD.md §4): crop_i, crop_j, crop_h, crop_w
 * in pixels of the input image.
 * apply(): img.crop((j, i, j+w, i+h)).resize((size, size), BICUBIC|BILINEAR), Pillow 9.4
 * bit for bit (the host's api->image->resample). apply_scaled() (ABI 1.1): the same box on
 * a DCT-downscaled input, which the loader uses when the crop is at least twice the output.
 * Left out: non-square output sizes, nearest interpolation, tensor (float) inputs.
 */
#include <equimod/equimod.h>

#include <math.h>

#include "../aug_common.h"

typedef struct rrc_opts {
    int64_t size;
    double scale_min, scale_max, ratio_min, ratio_max;
    int interpolation; /* 0 bilinear, 1 bicubic */
} rrc_opts;

AUG_INSTANCE(rrc, rrc_opts, int flags; /* api->image->resample's */);

static int rrc_init(void *self)
{
    rrc *r = self;
    if (r->o.scale_min > r->o.scale_max || r->o.ratio_min > r->o.ratio_max)
        return r->h.api->set_error(r->h.host, EQM_ERR_INVAL,
                                   "random_resized_crop: scale_min > scale_max or ratio_min > "
                                   "ratio_max");
    return aug_resample_flags(r->h.api, r->h.host, "random_resized_crop", r->o.interpolation,
                              &r->flags);
}

AUG_LIFECYCLE(rrc, rrc, "random_resized_crop", rrc_init, NULL)
AUG_RECORD(rrc, "crop_i", "crop_j", "crop_h", "crop_w")

static int rrc_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                      const eqm_image *in, float *p)
{
    const rrc *r = self;
    const eqm_host_api *api = r->h.api;
    int width = in->w, height = in->h;
    double area = (double)height * width;
    double lr0 = log(r->o.ratio_min), lr1 = log(r->o.ratio_max);
    for (int t = 0; t < 10; t++) {
        double target = area * (r->o.scale_min + (r->o.scale_max - r->o.scale_min) * api->rng_uniform(rng));
        double ar = exp(lr0 + (lr1 - lr0) * api->rng_uniform(rng));
        int w = (int)nearbyint(sqrt(target * ar));
        int h = (int)nearbyint(sqrt(target / ar));
        if (0 < w && w <= width && 0 < h && h <= height) {
            int i = (int)api->rng_below(rng, (uint64_t)(height - h + 1));
            int j = (int)api->rng_below(rng, (uint64_t)(width - w + 1));
            p[0] = (float)i;
            p[1] = (float)j;
            p[2] = (float)h;
            p[3] = (float)w;
            return EQM_OK;
        }
    }
    double in_ratio = (double)width / height;
    int w, h;
    if (in_ratio < r->o.ratio_min) {
        w = width;
        h = (int)nearbyint(w / r->o.ratio_min);
    } else if (in_ratio > r->o.ratio_max) {
        h = height;
        w = (int)nearbyint(h * r->o.ratio_max);
    } else {
        w = width;
        h = height;
    }
    p[0] = (float)((height - h) / 2);
    p[1] = (float)((width - w) / 2);
    p[2] = (float)h;
    p[3] = (float)w;
    return EQM_OK;
}

static int rrc_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                         uint32_t *format)
{
    return aug_square_shape(((const rrc *)self)->o.size, in, w, h, c, format);
}

/* None: the host's resampler keeps its own per-thread memory (0 rather than a NULL
 * callback, for callers written when this step needed scratch). */
static size_t rrc_scratch(const void *self, const eqm_image *in) { return 0; }

AUG_APPLY(rrc, rrc, "random_resized_crop", 0)
{
    int i = (int)p[0], j = (int)p[1], h = (int)p[2], w = (int)p[3];
    if (i < 0 || j < 0 || h <= 0 || w <= 0 || i + h > in->h || j + w > in->w)
        return g->h.api->set_error(g->h.host, EQM_ERR_INVAL,
                                   "random_resized_crop: crop (i=%d, j=%d, h=%d, w=%d) outside "
                                   "the %dx%d input", i, j, h, w, in->w, in->h);
    const double box[4] = {j, i, w, h};
    return g->h.api->image->resample(g->h.host, in, box, g->flags, out);
}

/* The crop box in the input's pixels. */
static int rrc_source_box(const void *self, const float *p, int in_w, int in_h, float box[4])
{
    box[0] = p[1];
    box[1] = p[0];
    box[2] = p[3];
    box[3] = p[2];
    return EQM_OK;
}

/* On an input downscaled by (sx, sy): the same box, scaled, resampled (the taps read the
 * scaled box's pixel window, EQM_RESAMPLE_CROP). */
static int rrc_apply_scaled(const void *self, const float *p, const eqm_image *in, float sx,
                            float sy, eqm_image *out, void *scratch)
{
    const rrc *r = self;
    if (sx == 1.0f && sy == 1.0f)
        return rrc_apply(self, p, in, out, scratch);
    int rc = aug_check_u8(r->h.api, r->h.host, "random_resized_crop", in);
    if (rc)
        return rc;
    double i = p[0], j = p[1], h = p[2], w = p[3];
    if (!(sx > 0 && sx <= 1 && sy > 0 && sy <= 1) || i < 0 || j < 0 || h <= 0 || w <= 0 ||
        (j + w) * sx > in->w + 1e-3 || (i + h) * sy > in->h + 1e-3)
        return r->h.api->set_error(r->h.host, EQM_ERR_INVAL,
                                   "random_resized_crop: crop (i=%g, j=%g, h=%g, w=%g) scaled "
                                   "by (%g, %g) outside the %dx%d input", i, j, h, w, sx, sy,
                                   in->w, in->h);
    const double box[4] = {j * sx, i * sy, w * sx, h * sy};
    return r->h.api->image->resample(r->h.host, in, box, r->flags, out);
}

static const eqm_param_spec rrc_params[] = {
    {"size", EQM_PARAM_INT, offsetof(rrc_opts, size), "224", 1, 65536, NULL, "output side in pixels"},
    {"scale_min", EQM_PARAM_FLOAT, offsetof(rrc_opts, scale_min), "0.08", 1e-6, 1, NULL,
     "smallest crop area fraction"},
    {"scale_max", EQM_PARAM_FLOAT, offsetof(rrc_opts, scale_max), "1.0", 1e-6, 1, NULL,
     "largest crop area fraction"},
    {"ratio_min", EQM_PARAM_FLOAT, offsetof(rrc_opts, ratio_min), "0.75", 1e-3, 1e3, NULL,
     "smallest aspect ratio w/h"},
    {"ratio_max", EQM_PARAM_FLOAT, offsetof(rrc_opts, ratio_max), "1.3333333333333333", 1e-3, 1e3,
     NULL, "largest aspect ratio w/h"},
    {"interpolation", EQM_PARAM_ENUM, offsetof(rrc_opts, interpolation), "bicubic", 0, 0,
     "bilinear|bicubic", "resampling filter (Pillow, antialiased)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(rrc, "random_resized_crop",
           "RandomResizedCrop (torchvision 0.14 on PIL): t = crop i, j, h, w", rrc_opts,
           rrc_out_shape, rrc_scratch, rrc_source_box, rrc_apply_scaled)
