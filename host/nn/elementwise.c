/* host/nn/elementwise.c: relu, residual add, row concat and row L2 normalisation.
 *
 * Legend: n elements; N rows; Ca, Cb, D columns. All memory-bound: one pass each, split
 * over the host's threads in chunks of a few thousand elements.
 * Left out: in-place aliasing rules beyond the obvious (out == in is fine for relu and add).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "nn/nn_internal.h"

#define GRAIN 16384

typedef struct {
    float *out;
    const float *a, *b;
} ew_ctx;

NN_HOT static void relu_fwd_body(void *c, size_t b, size_t e)
{
    ew_ctx *x = c;
    for (size_t i = b; i < e; i++)
        x->out[i] = x->a[i] > 0.f ? x->a[i] : 0.f;
}

int nn_relu_forward(eqm_host *h, size_t n, float *out, const float *in)
{
    ew_ctx c = {out, in, NULL};
    nn_parallel(h, n, GRAIN, relu_fwd_body, &c);
    return EQM_OK;
}

NN_HOT static void relu_bwd_body(void *c, size_t b, size_t e)
{
    ew_ctx *x = c; /* out = din, a = dout, b = forward out */
    for (size_t i = b; i < e; i++)
        x->out[i] += x->b[i] > 0.f ? x->a[i] : 0.f;
}

int nn_relu_backward(eqm_host *h, size_t n, float *din, const float *dout, const float *out)
{
    if (!din)
        return EQM_OK;
    ew_ctx c = {din, dout, out};
    nn_parallel(h, n, GRAIN, relu_bwd_body, &c);
    return EQM_OK;
}

NN_HOT static void add_body(void *c, size_t b, size_t e)
{
    ew_ctx *x = c;
    for (size_t i = b; i < e; i++)
        x->out[i] = x->a[i] + x->b[i];
}

int nn_add_forward(eqm_host *h, size_t n, float *out, const float *a, const float *b)
{
    ew_ctx c = {out, a, b};
    nn_parallel(h, n, GRAIN, add_body, &c);
    return EQM_OK;
}

int nn_concat_forward(eqm_host *h, int N, int Ca, int Cb, float *out, const float *a,
                      const float *b)
{
    if (N < 0 || Ca < 0 || Cb < 0)
        return nn_inval(h, "concat_forward", "negative size N=%d Ca=%d Cb=%d", N, Ca, Cb);
    size_t C = (size_t)Ca + (size_t)Cb;
    for (int i = 0; i < N; i++) {
        memcpy(out + i * C, a + (size_t)i * Ca, sizeof(float) * (size_t)Ca);
        memcpy(out + i * C + Ca, b + (size_t)i * Cb, sizeof(float) * (size_t)Cb);
    }
    return EQM_OK;
}

int nn_concat_backward(eqm_host *h, int N, int Ca, int Cb, float *da, float *db,
                       const float *dout)
{
    if (N < 0 || Ca < 0 || Cb < 0)
        return nn_inval(h, "concat_backward", "negative size N=%d Ca=%d Cb=%d", N, Ca, Cb);
    size_t C = (size_t)Ca + (size_t)Cb;
    for (int i = 0; i < N; i++) {
        const float *d = dout + i * C;
        if (da)
            for (int j = 0; j < Ca; j++)
                da[(size_t)i * Ca + j] += d[j];
        if (db)
            for (int j = 0; j < Cb; j++)
                db[(size_t)i * Cb + j] += d[Ca + j];
    }
    return EQM_OK;
}

/* torch.nn.functional.normalize(x, dim=1, eps=1e-12): out = x / max(||x||, eps).
 * norms[i] = max(||x_i||, eps). Backward: if ||x|| > eps, din += (dout - out (out.dout)) /
 * norm; else the map is x / eps (linear) and din += dout / eps. */
#define L2_EPS 1e-12

int nn_l2norm_forward(eqm_host *h, int N, int D, float *out, const float *in, float *norms)
{
    if (N < 0 || D <= 0)
        return nn_inval(h, "l2norm_forward", "bad size N=%d D=%d", N, D);
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * D;
        double ss = 0;
        for (int j = 0; j < D; j++)
            ss += (double)x[j] * x[j];
        double nr = sqrt(ss);
        if (nr < L2_EPS)
            nr = L2_EPS;
        norms[i] = (float)nr;
        float inv = (float)(1.0 / nr);
        for (int j = 0; j < D; j++)
            out[(size_t)i * D + j] = x[j] * inv;
    }
    return EQM_OK;
}

int nn_l2norm_backward(eqm_host *h, int N, int D, float *din, const float *dout,
                       const float *out, const float *norms)
{
    if (N < 0 || D <= 0)
        return nn_inval(h, "l2norm_backward", "bad size N=%d D=%d", N, D);
    if (!din)
        return EQM_OK;
    for (int i = 0; i < N; i++) {
        const float *y = out + (size_t)i * D, *g = dout + (size_t)i * D;
        float *dx = din + (size_t)i * D;
        float inv = 1.f / norms[i];
        if (norms[i] <= (float)L2_EPS) {
            for (int j = 0; j < D; j++)
                dx[j] += g[j] * inv;
            continue;
        }
        double dot = 0;
        for (int j = 0; j < D; j++)
            dot += (double)y[j] * g[j];
        float fd = (float)dot;
        for (int j = 0; j < D; j++)
            dx[j] += (g[j] - y[j] * fd) * inv;
    }
    return EQM_OK;
}
