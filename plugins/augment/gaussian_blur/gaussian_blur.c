/* plugins/augment/gaussian_blur: RandomApply([GaussianBlur(k, sigma)], p) as torchvision
 * 0.14 does it on PIL images: the 8-bit image becomes float, is convolved with the
 * normalised Gaussian kernel (float32, reflect padding, k x k), rounded half to even and
 * stored as uint8.
 * sample(): with probability p: blur = 1, sigma ~ U(sigma_min, sigma_max); else 0, 0.
 * Record (METHOD.md §4): blur, sigma.
 * kernel_size = 0 picks 2*round((S - 10)/20) + 1 from the input's smaller side S (3 at 32 px,
 * 23 at 224 px; METHOD.md §3).
 * Deliberate difference: the convolution is computed separably (rows, then columns) in
 * float32, torchvision sums the k x k products directly; results can differ by one level
 * where the exact value is within float rounding of a .5 boundary (tests allow it).
 */
#include <equimod/equimod.h>

#include <math.h>

#include "../aug_common.h"

typedef struct gb_opts {
    int64_t kernel_size;
    double sigma_min, sigma_max, p;
} gb_opts;

AUG_INSTANCE(gb, gb_opts, );

static int gb_init(void *self)
{
    const gb *g = self;
    const gb_opts *o = &g->o;
    if (o->kernel_size && o->kernel_size % 2 == 0)
        return g->h.api->set_error(g->h.host, EQM_ERR_INVAL,
                                   "gaussian_blur: kernel_size %lld must be odd (or 0 = auto)",
                                   (long long)o->kernel_size);
    if (o->sigma_min > o->sigma_max)
        return g->h.api->set_error(g->h.host, EQM_ERR_INVAL,
                                   "gaussian_blur: sigma_min > sigma_max");
    return EQM_OK;
}

AUG_LIFECYCLE(gb, gb, "gaussian_blur", gb_init, NULL)
AUG_RECORD(gb, "blur", "blur_sigma")

static int gb_ksize(const gb *g, const eqm_image *in)
{
    if (g->o.kernel_size)
        return (int)g->o.kernel_size;
    int s = in->w < in->h ? in->w : in->h;
    return 2 * (int)nearbyint((s - 10) / 20.0) + 1;
}

static int gb_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                     const eqm_image *in, float *p)
{
    const gb *g = self;
    p[0] = p[1] = 0.0f;
    if (g->h.api->rng_uniform(rng) < g->o.p) {
        p[0] = 1.0f;
        p[1] = (float)(g->o.sigma_min + (g->o.sigma_max - g->o.sigma_min) * g->h.api->rng_uniform(rng));
    }
    return EQM_OK;
}

static size_t gb_scratch(const void *self, const eqm_image *in)
{
    return (size_t)in->w * in->h * in->c * sizeof(float) + 64;
}

static inline int reflect(int i, int n)
{
    if (i < 0)
        return -i;
    if (i >= n)
        return 2 * n - 2 - i;
    return i;
}

AUG_APPLY(gb, gb, "gaussian_blur", 1)
{
    int k = gb_ksize(g, in), half = k / 2;
    float sigma = p[1];
    if (!(sigma > 0))
        return g->h.api->set_error(g->h.host, EQM_ERR_INVAL, "gaussian_blur: sigma %g must be > 0", (double)sigma);
    if (k > 255 || half >= in->w || half >= in->h)
        return g->h.api->set_error(g->h.host, EQM_ERR_INVAL,
                                 "gaussian_blur: kernel %d too large for a %dx%d image (reflect padding)",
                                 k, in->w, in->h);
    float ker[256], sum = 0.0f;
    for (int i = 0; i < k; i++) {
        /* torch.linspace(-half, half, k) in float32 */
        float x = (float)(-half + i);
        float z = x / sigma;
        ker[i] = expf(-0.5f * z * z);
        sum += ker[i];
    }
    for (int i = 0; i < k; i++)
        ker[i] /= sum;
    const int w = in->w, h = in->h, c = in->c;
    float *tmp = scratch; /* (h, w, c) after the horizontal pass */
    for (int y = 0; y < h; y++) {
        const uint8_t *s = (const uint8_t *)in->data + (size_t)y * in->stride;
        float *t = tmp + (size_t)y * w * c;
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                float a = 0.0f;
                for (int i = 0; i < k; i++)
                    a += ker[i] * (float)s[reflect(x + i - half, w) * c + ch];
                t[x * c + ch] = a;
            }
    }
    for (int y = 0; y < h; y++) {
        uint8_t *o = (uint8_t *)out->data + (size_t)y * out->stride;
        for (int x = 0; x < w * c; x++) {
            float a = 0.0f;
            for (int i = 0; i < k; i++)
                a += ker[i] * tmp[(size_t)reflect(y + i - half, h) * w * c + x];
            float r = nearbyintf(a);
            o[x] = r <= 0 ? 0 : r >= 255 ? 255 : (uint8_t)r;
        }
    }
    return EQM_OK;
}

static const eqm_param_spec gb_params[] = {
    {"kernel_size", EQM_PARAM_INT, offsetof(gb_opts, kernel_size), "0", 0, 255, NULL,
     "odd kernel side; 0 = 2*round((S-10)/20)+1 from the image side S"},
    {"sigma_min", EQM_PARAM_FLOAT, offsetof(gb_opts, sigma_min), "0.1", 1e-6, 1e3, NULL, "smallest sigma"},
    {"sigma_max", EQM_PARAM_FLOAT, offsetof(gb_opts, sigma_max), "2.0", 1e-6, 1e3, NULL, "largest sigma"},
    {"p", EQM_PARAM_FLOAT, offsetof(gb_opts, p), "0.5", 0, 1, NULL, "probability of blurring"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(gb, "gaussian_blur",
           "RandomApply(GaussianBlur(k, sigma), p), torchvision semantics: t = blur, sigma",
           gb_opts, aug_same_shape, gb_scratch, NULL, NULL) /* 1.1: no resampling */
