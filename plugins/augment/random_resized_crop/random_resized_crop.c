/* plugins/augment/random_resized_crop: torchvision 0.14 RandomResizedCrop on PIL images.
 *
 * sample(): up to 10 tries, each drawing an area fraction ~ U(scale_min, scale_max) and an
 * aspect ratio ~ exp(U(log ratio_min, log ratio_max)); w = round(sqrt(area*ratio)),
 * h = round(sqrt(area/ratio)) (round half to even, like Python); accepted if 0 < w <= W and
 * 0 < h <= H, then i ~ U{0..H-h}, j ~ U{0..W-w}. Fallback: centre crop with the aspect ratio
 * clamped to [ratio_min, ratio_max]. Record (METHOD.md §4): crop_i, crop_j, crop_h, crop_w
 * in pixels of the input image.
 * apply(): img.crop((j, i, j+w, i+h)).resize((size, size), BICUBIC|BILINEAR), Pillow 9.4
 * bit for bit (aug_common.h). apply_scaled() (ABI 1.1): the same box on a DCT-downscaled
 * input (aug_resize_fbox), which the loader uses when the crop is at least twice the output.
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

/* Coefficients for every crop side 1..max_in resized to `size` (small outputs only, e.g.
 * CIFAR's 32: crops are at most the image side); larger cases compute them per call. */
#define RRC_TABLE_MAX_SIZE 64
typedef struct rrc {
    const eqm_host_api *api;
    eqm_host *host;
    rrc_opts o;
    int filter;
    int max_in;           /* tables for in = 1..max_in (0: none) */
    aug_coef *coef;       /* [max_in + 1] */
    int32_t *coef_data;
} rrc;

static int rrc_create(const eqm_host_api *api, eqm_host *host, const void *opts, void **self)
{
    const rrc_opts *o = opts;
    *self = NULL;
    if (o->scale_min > o->scale_max || o->ratio_min > o->ratio_max)
        return api->set_error(host, EQM_ERR_INVAL,
                              "random_resized_crop: scale_min > scale_max or ratio_min > ratio_max");
    rrc *r = api->alloc(host, sizeof *r, 0);
    if (!r)
        return api->set_error(host, EQM_ERR_NOMEM, "random_resized_crop: out of memory");
    r->api = api;
    r->host = host;
    r->o = *o;
    r->filter = o->interpolation == 1 ? AUG_BICUBIC : AUG_BILINEAR;
    if (o->size <= RRC_TABLE_MAX_SIZE) {
        int out = (int)o->size, mx = 2 * out;
        size_t total = 0;
        for (int in = 1; in <= mx; in++)
            total += (size_t)aug_ksize(in, out, r->filter) * out + 2 * (size_t)out;
        r->coef = api->alloc(host, sizeof(aug_coef) * (size_t)(mx + 1), 0);
        r->coef_data = api->alloc(host, total * sizeof(int32_t), 0);
        if (!r->coef || !r->coef_data) {
            api->free(host, r->coef);
            api->free(host, r->coef_data);
            api->free(host, r);
            return api->set_error(host, EQM_ERR_NOMEM, "random_resized_crop: out of memory");
        }
        int32_t *d = r->coef_data;
        for (int in = 1; in <= mx; in++) {
            int k = aug_ksize(in, out, r->filter);
            aug_coeffs(in, out, r->filter, k, d, d + (size_t)k * out);
            r->coef[in].ksize = k;
            r->coef[in].kk = d;
            r->coef[in].bounds = d + (size_t)k * out;
            d += (size_t)k * out + 2 * (size_t)out;
        }
        r->max_in = mx;
    }
    *self = r;
    return EQM_OK;
}

static void rrc_destroy(void *self)
{
    rrc *r = self;
    if (r) {
        r->api->free(r->host, r->coef);
        r->api->free(r->host, r->coef_data);
        r->api->free(r->host, r);
    }
}

static int rrc_n_params(const void *self) { return 4; }

static const char *rrc_param_name(const void *self, int i)
{
    static const char *const n[4] = {"crop_i", "crop_j", "crop_h", "crop_w"};
    return i >= 0 && i < 4 ? n[i] : NULL;
}

static int rrc_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                      const eqm_image *in, float *p)
{
    const rrc *r = self;
    const eqm_host_api *api = r->api;
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
    const rrc *r = self;
    *w = *h = (int)r->o.size;
    *c = in->c;
    *format = EQM_PIX_U8;
    return EQM_OK;
}

static size_t rrc_scratch(const void *self, const eqm_image *in)
{
    const rrc *r = self;
    return aug_resize_fbox_scratch(in->w, in->h, in->c, (int)r->o.size, (int)r->o.size,
                                   r->filter);
}

static int rrc_apply(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                     void *scratch)
{
    const rrc *r = self;
    int rc = aug_check_u8(r->api, r->host, "random_resized_crop", in);
    if (rc)
        return rc;
    int i = (int)p[0], j = (int)p[1], h = (int)p[2], w = (int)p[3];
    if (i < 0 || j < 0 || h <= 0 || w <= 0 || i + h > in->h || j + w > in->w)
        return r->api->set_error(r->host, EQM_ERR_INVAL,
                                 "random_resized_crop: crop (i=%d, j=%d, h=%d, w=%d) outside the "
                                 "%dx%d input", i, j, h, w, in->w, in->h);
    const aug_coef *ch = w <= r->max_in ? &r->coef[w] : NULL;
    const aug_coef *cv = h <= r->max_in ? &r->coef[h] : NULL;
    aug_resize_c(in, j, i, w, h, out, r->filter, scratch, ch, cv); /* dispatches to AVX2 itself */
    return EQM_OK;
}

/* The crop box in the input's pixels. */
static int rrc_source_box(const void *self, const float *p, int in_w, int in_h, float box[4])
{
    (void)self;
    (void)in_w;
    (void)in_h;
    box[0] = p[1];
    box[1] = p[0];
    box[2] = p[3];
    box[3] = p[2];
    return EQM_OK;
}

/* On an input downscaled by (sx, sy): the same box, scaled, resampled (aug_resize_fbox). */
static int rrc_apply_scaled(const void *self, const float *p, const eqm_image *in, float sx,
                            float sy, eqm_image *out, void *scratch)
{
    const rrc *r = self;
    if (sx == 1.0f && sy == 1.0f)
        return rrc_apply(self, p, in, out, scratch);
    int rc = aug_check_u8(r->api, r->host, "random_resized_crop", in);
    if (rc)
        return rc;
    double i = p[0], j = p[1], h = p[2], w = p[3];
    if (!(sx > 0 && sx <= 1 && sy > 0 && sy <= 1) || i < 0 || j < 0 || h <= 0 || w <= 0 ||
        (j + w) * sx > in->w + 1e-3 || (i + h) * sy > in->h + 1e-3)
        return r->api->set_error(r->host, EQM_ERR_INVAL,
                                 "random_resized_crop: crop (i=%g, j=%g, h=%g, w=%g) scaled by "
                                 "(%g, %g) outside the %dx%d input", i, j, h, w, sx, sy, in->w,
                                 in->h);
    aug_resize_fbox(in, j * sx, i * sy, w * sx, h * sy, out, r->filter, scratch);
    return EQM_OK;
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

static const eqm_augment_ops rrc_ops = {
    sizeof(eqm_augment_ops), rrc_create, rrc_destroy, rrc_n_params, rrc_param_name,
    rrc_sample, rrc_out_shape, rrc_apply, rrc_scratch, rrc_source_box, rrc_apply_scaled,
};

static const eqm_plugin_desc rrc_desc = {
    EQM_DESC_HEADER(EQM_KIND_AUGMENT), "random_resized_crop", "1.0.0",
    "RandomResizedCrop (torchvision 0.14 on PIL): t = crop i, j, h, w", rrc_params,
    sizeof(rrc_opts), &rrc_ops,
};

static const eqm_plugin_desc *const descs[] = {&rrc_desc};
EQM_PLUGIN_ENTRY(descs)
