/* plugins/augment/normalize: ToTensor + Normalize (torchvision 0.14): out = (v/255 - mean) /
 * std per channel, in float32 exactly as torch computes it (a 256-entry table per channel).
 * Converts U8 HWC to F32 HWC: it must be the last step of a pipeline. No record in t.
 * Options mean/std: three comma-separated numbers ("0.4914,0.4822,0.4465"); one number is
 * used for every channel.
 * Left out: CHW output (the backbones take NHWC).
 */
#include <equimod/equimod.h>

#include <stdlib.h>

#include "../aug_common.h"

typedef struct norm_opts {
    const char *mean, *std;
} norm_opts;

typedef struct norm {
    aug_head h;
    norm_opts o; /* read by init only (then cleared: the strings are the config's) */
    float lut[3][256];
    float m[3], s[3];
    float mpat[192], spat[192]; /* m and s repeated for 64 RGB pixels */
    void (*run)(const struct norm *g, const eqm_image *in, eqm_image *out);
} norm;

/* 3 channels: the same float32 operations as the table (v / 255, minus mean, divided by
 * std), computed directly on contiguous runs of 64 pixels so that they vectorise. */
AUG_INLINE void norm_run_impl(const norm *g, const eqm_image *in, eqm_image *out)
{
    const int w = in->w, c = in->c;
    for (int y = 0; y < in->h; y++) {
        const uint8_t *s = (const uint8_t *)in->data + (size_t)y * in->stride;
        float *o = (float *)out->data + (size_t)y * out->stride;
        if (c == 3) {
            const int nv = 3 * w;
            for (int x0 = 0; x0 < nv; x0 += 192) {
                int n = nv - x0 < 192 ? nv - x0 : 192;
                for (int x = 0; x < n; x++)
                    o[x0 + x] = ((float)s[x0 + x] / 255.0f - g->mpat[x]) / g->spat[x];
            }
        } else {
            for (int x = 0; x < w; x++)
                o[x] = g->lut[0][s[x]];
        }
    }
}

static void norm_run_v0(const norm *g, const eqm_image *in, eqm_image *out)
{
    norm_run_impl(g, in, out);
}
#if AUG_HAVE_V3
AUG_TARGET_V3 static void norm_run_v3(const norm *g, const eqm_image *in, eqm_image *out)
{
    norm_run_impl(g, in, out);
}
#endif

static int parse3(const char *s, float v[3])
{
    char *end;
    int n = 0;
    while (*s && n < 3) {
        double d = strtod(s, &end);
        if (end == s)
            return -1;
        v[n++] = (float)d;
        s = end;
        while (*s == ' ' || *s == ',')
            s++;
    }
    if (*s)
        return -1;
    if (n == 1)
        v[1] = v[2] = v[0];
    else if (n != 3)
        return -1;
    return 0;
}

static int norm_init(void *self)
{
    norm *g = self;
    const eqm_host_api *api = g->h.api;
    eqm_host *host = g->h.host;
    const norm_opts *o = &g->o;
    float m[3], s[3];
    if (parse3(o->mean, m))
        return api->set_error(host, EQM_ERR_INVAL, "normalize: mean = '%s': expected 3 numbers 'r,g,b'", o->mean);
    if (parse3(o->std, s) || !(s[0] > 0 && s[1] > 0 && s[2] > 0))
        return api->set_error(host, EQM_ERR_INVAL, "normalize: std = '%s': expected 3 positive numbers 'r,g,b'",
                              o->std);
    g->run = norm_run_v0;
#if AUG_HAVE_V3
    if (aug_use_v3())
        g->run = norm_run_v3;
#endif
    for (int k = 0; k < 192; k++) {
        g->mpat[k] = m[k % 3];
        g->spat[k] = s[k % 3];
    }
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            volatile float x = (float)v / 255.0f; /* ToTensor: float32 division */
            volatile float d = x - m[c];
            g->lut[c][v] = d / s[c];
        }
    g->o.mean = g->o.std = NULL; /* the config's strings: not kept */
    return EQM_OK;
}

AUG_LIFECYCLE(norm, norm, "normalize", norm_init, NULL)
AUG_NO_RECORD(norm)

static int norm_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                          uint32_t *format)
{
    *w = in->w;
    *h = in->h;
    *c = in->c;
    *format = EQM_PIX_F32;
    return EQM_OK;
}

AUG_APPLY(norm, norm, "normalize", 0)
{
    g->run(g, in, out);
    return EQM_OK;
}

static const eqm_param_spec norm_params[] = {
    {"mean", EQM_PARAM_STRING, offsetof(norm_opts, mean), "0.4914,0.4822,0.4465", 0, 0, NULL,
     "per-channel mean r,g,b (default: CIFAR-10; ImageNet: 0.485,0.456,0.406)"},
    {"std", EQM_PARAM_STRING, offsetof(norm_opts, std), "0.247,0.243,0.261", 0, 0, NULL,
     "per-channel std r,g,b (default: CIFAR-10; ImageNet: 0.229,0.224,0.225)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(norm, "normalize",
           "ToTensor + Normalize(mean, std): U8 -> F32, must be last; no t record", norm_opts,
           norm_out_shape, NULL, NULL, NULL) /* 1.1: no resampling */
