/* host/nn/batchnorm.c: torch.nn.BatchNorm1d/2d over a (M, C) matrix (NHWC rows), with an
 * optional fused ReLU.
 *
 * Legend: M rows (N*H*W), C channels; save (2C) = [mean, inv_std] of the statistics used
 * by forward (batch statistics when train = 1, running ones when train = 0).
 * train = 1: y = (x - mean) * inv_std * gamma + beta with the batch mean and the BIASED
 *   variance; running_mean/var <- (1 - momentum) * running + momentum * batch, where the
 *   batch variance is UNBIASED (M / (M - 1)), as PyTorch.
 * train = 0: the running statistics normalise; nothing is updated.
 * relu = 1: out = max(y, 0); backward masks dout with (out > 0).
 * Backward (train): with g = masked dout and xh = (x - mean) * inv_std,
 *   dbeta += sum g, dgamma += sum g xh, din += gamma inv_std / M (M g - sum g - xh sum g xh).
 * Statistics accumulate in double (one pass, sum and sum of squares).
 * Threads: tasks are blocks of 16 channels, each walking all M rows (deterministic sums,
 * no partial buffers to allocate). Left out: track_running_stats = False, cudnn-style
 * saved "var" instead of inv_std.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "nn/nn_internal.h"

#define CB 16 /* channels per task */

typedef struct {
    const eqm_bn_shape *s;
    float *out, *din, *dgamma, *dbeta, *running_mean, *running_var, *save;
    const float *in, *gamma, *beta, *dout, *cout, *csave;
} bn_ctx;

static int bn_check(eqm_host *h, const char *op, const eqm_bn_shape *s)
{
    if (!s || s->M <= 0 || s->C <= 0)
        return nn_inval(h, op, "bad shape M=%d C=%d (both must be > 0)", s ? s->M : 0,
                        s ? s->C : 0);
    if (s->train && s->M < 2)
        return nn_inval(h, op, "training needs more than 1 value per channel (M=%d)", s->M);
    if (!(s->eps > 0.f))
        return nn_inval(h, op, "eps must be > 0 (got %g; PyTorch uses 1e-5)", (double)s->eps);
    return EQM_OK;
}

static void bn_fwd_body(void *vc, size_t bb, size_t be)
{
    bn_ctx *c = vc;
    const eqm_bn_shape *s = c->s;
    const size_t M = (size_t)s->M, C = (size_t)s->C;
    for (size_t blk = bb; blk < be; blk++) {
        size_t c0 = blk * CB, nc = C - c0 < CB ? C - c0 : CB;
        float mean[CB], inv[CB], a[CB], b[CB];
        if (s->train) {
            double sum[CB] = {0}, sq[CB] = {0};
            for (size_t m = 0; m < M; m++) {
                const float *x = c->in + m * C + c0;
                for (size_t j = 0; j < nc; j++) {
                    sum[j] += x[j];
                    sq[j] += (double)x[j] * x[j];
                }
            }
            for (size_t j = 0; j < nc; j++) {
                double mu = sum[j] / (double)M;
                double var = sq[j] / (double)M - mu * mu;
                if (var < 0)
                    var = 0;
                mean[j] = (float)mu;
                inv[j] = (float)(1.0 / sqrt(var + s->eps));
                if (c->running_mean)
                    c->running_mean[c0 + j] = (1.f - s->momentum) * c->running_mean[c0 + j] +
                                              s->momentum * (float)mu;
                if (c->running_var)
                    c->running_var[c0 + j] =
                        (1.f - s->momentum) * c->running_var[c0 + j] +
                        s->momentum * (float)(var * (double)M / (double)(M - 1));
            }
        } else {
            for (size_t j = 0; j < nc; j++) {
                mean[j] = c->running_mean[c0 + j];
                inv[j] = (float)(1.0 / sqrt((double)c->running_var[c0 + j] + s->eps));
            }
        }
        for (size_t j = 0; j < nc; j++) {
            c->save[c0 + j] = mean[j];
            c->save[C + c0 + j] = inv[j];
            float g = c->gamma ? c->gamma[c0 + j] : 1.f;
            float bt = c->beta ? c->beta[c0 + j] : 0.f;
            a[j] = g * inv[j];
            b[j] = bt - mean[j] * a[j];
        }
        for (size_t m = 0; m < M; m++) {
            const float *x = c->in + m * C + c0;
            float *y = c->out + m * C + c0;
            if (s->relu)
                for (size_t j = 0; j < nc; j++) {
                    float v = x[j] * a[j] + b[j];
                    y[j] = v > 0.f ? v : 0.f;
                }
            else
                for (size_t j = 0; j < nc; j++)
                    y[j] = x[j] * a[j] + b[j];
        }
    }
}

int nn_batchnorm_forward(eqm_host *h, const eqm_bn_shape *s, float *out, const float *in,
                         const float *gamma, const float *beta, float *running_mean,
                         float *running_var, float *save)
{
    int rc = bn_check(h, "batchnorm_forward", s);
    if (rc)
        return rc;
    if (s->affine && (!gamma || !beta))
        return nn_inval(h, "batchnorm_forward", "affine = 1 needs gamma and beta");
    if (!s->train && (!running_mean || !running_var))
        return nn_inval(h, "batchnorm_forward", "train = 0 needs running_mean and running_var");
    if (!save)
        return nn_inval(h, "batchnorm_forward", "save (2C floats) is required");
    bn_ctx c = {.s = s, .out = out, .in = in, .gamma = s->affine ? gamma : NULL,
                .beta = s->affine ? beta : NULL, .running_mean = running_mean,
                .running_var = running_var, .save = save};
    nn_parallel(h, ((size_t)s->C + CB - 1) / CB, 1, bn_fwd_body, &c);
    return EQM_OK;
}

static void bn_bwd_body(void *vc, size_t bb, size_t be)
{
    bn_ctx *c = vc;
    const eqm_bn_shape *s = c->s;
    const size_t M = (size_t)s->M, C = (size_t)s->C;
    for (size_t blk = bb; blk < be; blk++) {
        size_t c0 = blk * CB, nc = C - c0 < CB ? C - c0 : CB;
        float mean[CB], inv[CB];
        double sg[CB] = {0}, sgx[CB] = {0};
        for (size_t j = 0; j < nc; j++) {
            mean[j] = c->csave[c0 + j];
            inv[j] = c->csave[C + c0 + j];
        }
        for (size_t m = 0; m < M; m++) {
            const float *x = c->in + m * C + c0, *d = c->dout + m * C + c0;
            const float *y = c->cout + m * C + c0;
            for (size_t j = 0; j < nc; j++) {
                float g = (!s->relu || y[j] > 0.f) ? d[j] : 0.f;
                sg[j] += g;
                sgx[j] += (double)g * ((x[j] - mean[j]) * inv[j]);
            }
        }
        for (size_t j = 0; j < nc; j++) {
            if (c->dgamma)
                c->dgamma[c0 + j] += (float)sgx[j];
            if (c->dbeta)
                c->dbeta[c0 + j] += (float)sg[j];
        }
        if (!c->din)
            continue;
        float k[CB], mg[CB], mgx[CB];
        for (size_t j = 0; j < nc; j++) {
            float g = c->gamma ? c->gamma[c0 + j] : 1.f;
            k[j] = g * inv[j];
            mg[j] = s->train ? (float)(sg[j] / (double)M) : 0.f;
            mgx[j] = s->train ? (float)(sgx[j] / (double)M) : 0.f;
        }
        for (size_t m = 0; m < M; m++) {
            const float *x = c->in + m * C + c0, *d = c->dout + m * C + c0;
            const float *y = c->cout + m * C + c0;
            float *dx = c->din + m * C + c0;
            for (size_t j = 0; j < nc; j++) {
                float g = (!s->relu || y[j] > 0.f) ? d[j] : 0.f;
                float xh = (x[j] - mean[j]) * inv[j];
                dx[j] += k[j] * (g - mg[j] - xh * mgx[j]);
            }
        }
    }
}

int nn_batchnorm_backward(eqm_host *h, const eqm_bn_shape *s, float *din, float *dgamma,
                          float *dbeta, const float *dout, const float *in, const float *out,
                          const float *gamma, const float *save)
{
    int rc = bn_check(h, "batchnorm_backward", s);
    if (rc)
        return rc;
    if (s->affine && !gamma)
        return nn_inval(h, "batchnorm_backward", "affine = 1 needs gamma");
    if (s->relu && !out)
        return nn_inval(h, "batchnorm_backward", "relu = 1 needs the forward output");
    bn_ctx c = {.s = s, .din = din, .dgamma = s->affine ? dgamma : NULL,
                .dbeta = s->affine ? dbeta : NULL, .dout = dout, .in = in,
                .cout = s->relu ? out : dout, .gamma = s->affine ? gamma : NULL,
                .csave = save};
    nn_parallel(h, ((size_t)s->C + CB - 1) / CB, 1, bn_bwd_body, &c);
    return EQM_OK;
}
