/* host/nn/loss.c: the losses: NT-Xent (SimCLR; METHOD.md §7), the BYOL cosine regression
 * and softmax cross-entropy.
 *
 * Legend: B2 = 2B rows of D (NT-Xent), N rows of D or C.
 * NT-Xent scratch layout (ntxent_scratch_floats = B2 * (2D + B2 + 1)):
 *   zn    B2*D   L2-normalised rows (forward)
 *   norms B2     max(||z_k||, 1e-12) (forward)
 *   P     B2*B2  row softmax over the allowed columns, 0 on dropped ones (forward)
 *   work  B2*D   backward's workspace (so backward allocates nothing; the scratch must
 *                therefore be writable memory even though backward takes it const)
 * Gradient: with G = (P - onehot(pos)) / (B2 tau), dL/dzn = G zn + G^T zn
 *   = (P zn + P^T zn - 2 zn[pos]) / (B2 tau) (pos is an involution), then the
 *   normalisation's backward. The two products are sgemm calls from the calling thread.
 * Left out: label smoothing, class weights, ignore_index.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "nn/nn_internal.h"

#define NRM_EPS 1e-12

static int ntx_check(eqm_host *h, const char *op, const eqm_ntxent_shape *s)
{
    if (!s || s->B2 < 2 || s->B2 % 2 || s->D <= 0)
        return nn_inval(h, op, "bad shape B2=%d D=%d (B2 = 2B must be even and >= 2, D > 0)",
                        s ? s->B2 : 0, s ? s->D : 0);
    if (!(s->tau > 0.f))
        return nn_inval(h, op, "tau must be > 0 (got %g)", (double)s->tau);
    if (s->exclude_period < 0)
        return nn_inval(h, op, "exclude_period must be >= 0 (got %d)", s->exclude_period);
    return EQM_OK;
}

size_t nn_ntxent_scratch_floats(const eqm_ntxent_shape *s)
{
    if (!s || s->B2 <= 0 || s->D <= 0)
        return 0;
    size_t B2 = (size_t)s->B2, D = (size_t)s->D;
    return B2 * (2 * D + B2 + 1);
}

typedef struct {
    const eqm_ntxent_shape *s;
    float *zn, *norms, *P, *rowloss, *work, *dz;
    const float *z;
    float coef;
} ntx_ctx;

/* 1 when column j takes part in the denominator of row k. */
static inline int ntx_allowed(const eqm_ntxent_shape *s, int k, int j, int pos)
{
    if (j == k)
        return 0;
    if (j == pos)
        return 1;
    int p = s->exclude_period;
    return !(p > 0 && j % p == k % p);
}

static void ntx_norm_body(void *vc, size_t b, size_t e)
{
    ntx_ctx *c = vc;
    int D = c->s->D;
    for (size_t k = b; k < e; k++) {
        const float *x = c->z + k * D;
        double ss = 0;
        for (int j = 0; j < D; j++)
            ss += (double)x[j] * x[j];
        double nr = sqrt(ss);
        if (nr < NRM_EPS)
            nr = NRM_EPS;
        c->norms[k] = (float)nr;
        float inv = (float)(1.0 / nr);
        for (int j = 0; j < D; j++)
            c->zn[k * D + j] = x[j] * inv;
    }
}

static void ntx_softmax_body(void *vc, size_t b, size_t e)
{
    ntx_ctx *c = vc;
    const eqm_ntxent_shape *s = c->s;
    int B2 = s->B2, B = B2 / 2;
    float itau = 1.f / s->tau;
    for (size_t kk = b; kk < e; kk++) {
        int k = (int)kk, pos = k < B ? k + B : k - B;
        float *p = c->P + (size_t)k * B2; /* holds cos(k, j) on entry */
        float mx = -INFINITY;
        for (int j = 0; j < B2; j++)
            if (ntx_allowed(s, k, j, pos) && p[j] * itau > mx)
                mx = p[j] * itau;
        double sum = 0;
        float lpos = p[pos] * itau;
        for (int j = 0; j < B2; j++) {
            if (ntx_allowed(s, k, j, pos)) {
                p[j] = expf(p[j] * itau - mx);
                sum += p[j];
            } else {
                p[j] = 0.f;
            }
        }
        float isum = (float)(1.0 / sum);
        for (int j = 0; j < B2; j++)
            p[j] *= isum;
        c->rowloss[k] = (float)(log(sum) + mx - lpos);
    }
}

int nn_ntxent_forward(eqm_host *h, const eqm_ntxent_shape *s, float *loss, const float *z,
                      float *scratch)
{
    int rc = ntx_check(h, "ntxent_forward", s);
    if (rc)
        return rc;
    size_t B2 = (size_t)s->B2, D = (size_t)s->D;
    ntx_ctx c = {.s = s, .z = z, .zn = scratch, .norms = scratch + B2 * D,
                 .P = scratch + B2 * D + B2};
    c.rowloss = c.P + B2 * B2 + 0; /* the work area: free during forward */
    c.work = c.rowloss;
    nn_parallel(h, B2, 16, ntx_norm_body, &c);
    nn_sgemm(h, 0, 1, s->B2, s->B2, s->D, 1.f, c.zn, s->D, c.zn, s->D, 0.f, c.P, s->B2);
    nn_parallel(h, B2, 8, ntx_softmax_body, &c);
    double tot = 0;
    for (size_t k = 0; k < B2; k++)
        tot += c.rowloss[k];
    *loss = (float)(tot / (double)B2);
    return EQM_OK;
}

static void ntx_bwd_body(void *vc, size_t b, size_t e)
{
    ntx_ctx *c = vc;
    int B2 = c->s->B2, B = B2 / 2, D = c->s->D;
    for (size_t kk = b; kk < e; kk++) {
        int k = (int)kk, pos = k < B ? k + B : k - B;
        float *w = c->work + (size_t)k * D;
        const float *zp = c->zn + (size_t)pos * D, *zk = c->zn + (size_t)k * D;
        float *dx = c->dz + (size_t)k * D;
        double dot = 0;
        for (int j = 0; j < D; j++) {
            w[j] = c->coef * (w[j] - 2.f * zp[j]);
            dot += (double)w[j] * zk[j];
        }
        float inv = 1.f / c->norms[k];
        if (c->norms[k] <= (float)NRM_EPS)
            dot = 0;
        for (int j = 0; j < D; j++)
            dx[j] += (w[j] - zk[j] * (float)dot) * inv;
    }
}

int nn_ntxent_backward(eqm_host *h, const eqm_ntxent_shape *s, float *dz, float scale,
                       const float *z, const float *scratch)
{
    int rc = ntx_check(h, "ntxent_backward", s);
    if (rc || !dz)
        return rc;
    size_t B2 = (size_t)s->B2, D = (size_t)s->D;
    float *sc = (float *)scratch; /* the work area is documented as writable */
    ntx_ctx c = {.s = s, .z = z, .zn = sc, .norms = sc + B2 * D, .P = sc + B2 * D + B2,
                 .dz = dz};
    c.work = c.P + B2 * B2;
    c.coef = scale / ((float)B2 * s->tau);
    int n = s->B2, d = s->D;
    nn_sgemm(h, 0, 0, n, d, n, 1.f, c.P, n, c.zn, d, 0.f, c.work, d);
    nn_sgemm(h, 1, 0, n, d, n, 1.f, c.P, n, c.zn, d, 1.f, c.work, d);
    nn_parallel(h, B2, 16, ntx_bwd_body, &c);
    return EQM_OK;
}

/* BYOL: loss = mean_i (2 - 2 cos(q_i, t_i)), normalisation as F.normalize (eps 1e-12). */
int nn_cosine_loss_forward(eqm_host *h, int N, int D, float *loss, const float *q,
                           const float *t)
{
    if (N <= 0 || D <= 0)
        return nn_inval(h, "cosine_loss_forward", "bad shape N=%d D=%d", N, D);
    double tot = 0;
    for (int i = 0; i < N; i++) {
        const float *a = q + (size_t)i * D, *b = t + (size_t)i * D;
        double qq = 0, tt = 0, qt = 0;
        for (int j = 0; j < D; j++) {
            qq += (double)a[j] * a[j];
            tt += (double)b[j] * b[j];
            qt += (double)a[j] * b[j];
        }
        double nq = fmax(sqrt(qq), NRM_EPS), nt = fmax(sqrt(tt), NRM_EPS);
        tot += 2.0 - 2.0 * qt / (nq * nt);
    }
    *loss = (float)(tot / N);
    return EQM_OK;
}

int nn_cosine_loss_backward(eqm_host *h, int N, int D, float *dq, float scale, const float *q,
                            const float *t)
{
    if (N <= 0 || D <= 0)
        return nn_inval(h, "cosine_loss_backward", "bad shape N=%d D=%d", N, D);
    if (!dq)
        return EQM_OK;
    for (int i = 0; i < N; i++) {
        const float *a = q + (size_t)i * D, *b = t + (size_t)i * D;
        double qq = 0, tt = 0, qt = 0;
        for (int j = 0; j < D; j++) {
            qq += (double)a[j] * a[j];
            tt += (double)b[j] * b[j];
            qt += (double)a[j] * b[j];
        }
        double rq = sqrt(qq), nq = fmax(rq, NRM_EPS), nt = fmax(sqrt(tt), NRM_EPS);
        double cs = qt / (nq * nt);
        double k = -2.0 * scale / N;
        /* d cos / dq = t / (nq nt) - cos q / nq^2 (the second term vanishes below eps) */
        float ct = (float)(k / (nq * nt));
        float cq = rq > NRM_EPS ? (float)(-k * cs / (nq * nq)) : 0.f;
        for (int j = 0; j < D; j++)
            dq[(size_t)i * D + j] += ct * b[j] + cq * a[j];
    }
    return EQM_OK;
}

int nn_softmax_xent_forward(eqm_host *h, int N, int C, float *loss, const float *logits,
                            const int32_t *labels, float *probs)
{
    if (N <= 0 || C <= 0)
        return nn_inval(h, "softmax_xent_forward", "bad shape N=%d C=%d", N, C);
    double tot = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] < 0 || labels[i] >= C)
            return nn_inval(h, "softmax_xent_forward", "label %d of row %d outside [0, %d)",
                            labels[i], i, C);
        const float *x = logits + (size_t)i * C;
        float *p = probs + (size_t)i * C;
        float mx = x[0];
        for (int j = 1; j < C; j++)
            mx = x[j] > mx ? x[j] : mx;
        double sum = 0;
        for (int j = 0; j < C; j++) {
            p[j] = expf(x[j] - mx);
            sum += p[j];
        }
        float is = (float)(1.0 / sum);
        for (int j = 0; j < C; j++)
            p[j] *= is;
        tot += log(sum) + mx - x[labels[i]];
    }
    *loss = (float)(tot / N);
    return EQM_OK;
}

int nn_softmax_xent_backward(eqm_host *h, int N, int C, float *dlogits, float scale,
                             const float *probs, const int32_t *labels)
{
    if (N <= 0 || C <= 0)
        return nn_inval(h, "softmax_xent_backward", "bad shape N=%d C=%d", N, C);
    if (!dlogits)
        return EQM_OK;
    float k = scale / (float)N;
    for (int i = 0; i < N; i++) {
        if (labels[i] < 0 || labels[i] >= C)
            return nn_inval(h, "softmax_xent_backward", "label %d of row %d outside [0, %d)",
                            labels[i], i, C);
        for (int j = 0; j < C; j++)
            dlogits[(size_t)i * C + j] +=
                k * (probs[(size_t)i * C + j] - (j == labels[i] ? 1.f : 0.f));
    }
    return EQM_OK;
}
