/* host/nn/pool.c: max pooling (torch.nn.MaxPool2d(k, stride, pad)) and global average
 * pooling (torch.mean over H, W), NHWC.
 *
 * Legend: N images, H x W input, Ho x Wo output, C channels; argmax (N, Ho, Wo, C) int32
 * holds the flat input index (n*H*W + h*W + w)*C + c of each maximum. Padding acts as
 * -inf (PyTorch): a window is never all padding when pad < k as PyTorch requires.
 * Ties: the first maximum in (h, w) scan order wins, as in PyTorch's CPU kernel.
 * Left out: ceil_mode, dilation, return of indices in PyTorch's own format.
 * Threads: one image per task (backward scatters only inside its own image).
 */
#include "config.h"

#include <float.h>
#include <string.h>

#include "nn/nn_internal.h"

static int pool_check(eqm_host *h, const char *op, const eqm_pool_shape *s, int *Ho, int *Wo)
{
    if (!s || s->N <= 0 || s->H <= 0 || s->W <= 0 || s->C <= 0 || s->k <= 0 ||
        s->stride <= 0 || s->pad < 0 || 2 * s->pad > s->k)
        return nn_inval(h, op,
                        "bad shape N=%d H=%d W=%d C=%d k=%d stride=%d pad=%d "
                        "(need positive sizes and pad <= k/2)",
                        s ? s->N : 0, s ? s->H : 0, s ? s->W : 0, s ? s->C : 0, s ? s->k : 0,
                        s ? s->stride : 0, s ? s->pad : 0);
    *Ho = (s->H + 2 * s->pad - s->k) / s->stride + 1;
    *Wo = (s->W + 2 * s->pad - s->k) / s->stride + 1;
    if (*Ho <= 0 || *Wo <= 0 || (double)s->N * s->H * s->W * s->C > 2147483647.0)
        return nn_inval(h, op, "output %dx%d empty or input too large for int32 argmax", *Ho,
                        *Wo);
    return EQM_OK;
}

typedef struct {
    const eqm_pool_shape *s;
    int Ho, Wo;
    float *out;
    const float *in;
    int32_t *argmax;
    float *din;
    const float *dout;
    const int32_t *cargmax;
} pool_ctx;

/* The first valid tap of a window is taken as it is, then a later tap only where it is
 * strictly greater (the first of equal maxima wins; a NaN first tap stays): the rule of
 * the loop this replaced (take x when x > y or nothing was taken yet), with branch-free
 * selects over the channels that the compiler vectorises (it did not vectorise that one:
 * 3% of the ResNet-50 bf16 step). */
NN_HOT static void maxpool_fwd_body(void *vc, size_t nb, size_t ne)
{
    pool_ctx *c = vc;
    const eqm_pool_shape *s = c->s;
    int C = s->C;
    for (size_t n = nb; n < ne; n++)
        for (int oh = 0; oh < c->Ho; oh++)
            for (int ow = 0; ow < c->Wo; ow++) {
                size_t o = (((n * c->Ho) + oh) * c->Wo + ow) * C;
                float *restrict y = c->out + o;
                int32_t *restrict am = c->argmax + o;
                int first = 1;
                for (int ki = 0; ki < s->k; ki++) {
                    int ih = oh * s->stride - s->pad + ki;
                    if (ih < 0 || ih >= s->H)
                        continue;
                    for (int kj = 0; kj < s->k; kj++) {
                        int iw = ow * s->stride - s->pad + kj;
                        if (iw < 0 || iw >= s->W)
                            continue;
                        size_t base = ((n * s->H + ih) * s->W + iw) * C;
                        const float *restrict x = c->in + base;
                        if (first) {
                            for (int ch = 0; ch < C; ch++) {
                                y[ch] = x[ch];
                                am[ch] = (int32_t)(base + (size_t)ch);
                            }
                            first = 0;
                            continue;
                        }
                        for (int ch = 0; ch < C; ch++) {
                            float xv = x[ch], yv = y[ch];
                            int32_t av = am[ch], t = xv > yv;
                            y[ch] = t ? xv : yv;
                            am[ch] = t ? (int32_t)(base + (size_t)ch) : av;
                        }
                    }
                }
                if (first) /* no tap inside the image (pool_check's pad <= k / 2 rules it out) */
                    for (int ch = 0; ch < C; ch++) {
                        y[ch] = -FLT_MAX;
                        am[ch] = -1;
                    }
            }
}

int nn_maxpool_forward(eqm_host *h, const eqm_pool_shape *s, float *out, const float *in,
                       int32_t *argmax)
{
    pool_ctx c = {.s = s, .out = out, .in = in, .argmax = argmax};
    int rc = pool_check(h, "maxpool_forward", s, &c.Ho, &c.Wo);
    if (rc)
        return rc;
    nn_parallel(h, (size_t)s->N, 1, maxpool_fwd_body, &c);
    return EQM_OK;
}

static void maxpool_bwd_body(void *vc, size_t nb, size_t ne)
{
    pool_ctx *c = vc;
    size_t per = (size_t)c->Ho * c->Wo * c->s->C;
    for (size_t i = nb * per; i < ne * per; i++)
        c->din[c->cargmax[i]] += c->dout[i];
}

int nn_maxpool_backward(eqm_host *h, const eqm_pool_shape *s, float *din, const float *dout,
                        const int32_t *argmax)
{
    pool_ctx c = {.s = s, .din = din, .dout = dout, .cargmax = argmax};
    int rc = pool_check(h, "maxpool_backward", s, &c.Ho, &c.Wo);
    if (rc || !din)
        return rc;
    nn_parallel(h, (size_t)s->N, 1, maxpool_bwd_body, &c);
    return EQM_OK;
}

int nn_avgpool_forward(eqm_host *h, int N, int HW, int C, float *out, const float *in)
{
    if (N <= 0 || HW <= 0 || C <= 0)
        return nn_inval(h, "avgpool_forward", "bad shape N=%d HW=%d C=%d", N, HW, C);
    float inv = 1.f / (float)HW;
    for (int n = 0; n < N; n++) {
        float *y = out + (size_t)n * C;
        memset(y, 0, sizeof(float) * (size_t)C);
        for (int p = 0; p < HW; p++) {
            const float *x = in + ((size_t)n * HW + p) * C;
            for (int ch = 0; ch < C; ch++)
                y[ch] += x[ch];
        }
        for (int ch = 0; ch < C; ch++)
            y[ch] *= inv;
    }
    return EQM_OK;
}

int nn_avgpool_backward(eqm_host *h, int N, int HW, int C, float *din, const float *dout)
{
    if (N <= 0 || HW <= 0 || C <= 0)
        return nn_inval(h, "avgpool_backward", "bad shape N=%d HW=%d C=%d", N, HW, C);
    if (!din)
        return EQM_OK;
    float inv = 1.f / (float)HW;
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * C;
        for (int p = 0; p < HW; p++) {
            float *dx = din + ((size_t)n * HW + p) * C;
            for (int ch = 0; ch < C; ch++)
                dx[ch] += g[ch] * inv;
        }
    }
    return EQM_OK;
}
