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
 * Gathered NT-Xent (host/dist, DIST_NN_GATHER_LOSS, R > 1 ranks): every rank holds its
 * own B2 = 2B rows ([a_r ; b_r], or EquiMod's [yt_r ; yhat_r]); the loss is the NT-Xent
 * of the union of all ranks' rows (G = R B2 rows), the same function as one process on
 * the whole global batch. Scheme: all-gather forward, reduce-scatter of the gathered
 * gradient backward (exact gradients for the local rows), chosen over the official
 * PyTorch code's gather-without-gradient + world-size scale because the latter drops the
 * terms where a local row is a negative of another rank's anchor (it is right only in
 * expectation), and the issue asks for N ranks computing what one process computes.
 *   forward: normalise the local rows into their block of zg (G, D), all-gather zg;
 *     P_r (B2, G) = softmax rows of the LOCAL anchors against all G rows (1/R of the
 *     similarity work per rank); the global row order is rank-major, the positive of local
 *     row k is local row k +- B on the same rank, and exclude_period p drops the rows of
 *     the same rank with k' = k (mod p) (the same sample: the single-process rule on the
 *     local layout). Loss = all-reduced sum of the local rows' losses / G, so every rank
 *     reports the global loss.
 *   backward: work (G, D) = P_r^T zl (the local anchors' share of every gathered row's
 *     gradient); work[local block] += P_r zg; reduce-scatter (sum over ranks) gives each
 *     rank the complete (P zn + P^T zn) rows of its own rows; then -2 zn[pos] and the
 *     normalisation's backward as in the single-process op.
 *   Scale: backward multiplies by scale / (B2 tau) with the LOCAL B2, i.e. R x the
 *   gradient of the global loss, DistributedDataParallel's convention (dist.h): the
 *   trainer averages gradients over ranks.
 *   Permutation: SimCLR's union [a_0; a_1; ..; b_0; b_1; ..] is rank-major-permuted
 *   here; NT-Xent is invariant under any row permutation that keeps the positive pairs
 *   and exclusion classes, so value and gradients (row for row) are the single-process
 *   ones up to float summation order.
 *   Scratch (ntxent_scratch_floats under the gather): zg G*D | norms B2 | P B2*G |
 *   work G*D | rs B2*D.
 * Left out: label smoothing, class weights, ignore_index.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "core.h"
#include "dist/dist.h"
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
    if (dist_nn_flags() & DIST_NN_GATHER_LOSS) {
        size_t G = B2 * (size_t)dist_size();
        return 2 * G * D + B2 + B2 * G + B2 * D;
    }
    return B2 * (2 * D + B2 + 1);
}

typedef struct {
    const eqm_ntxent_shape *s;
    float *zn, *norms, *P, *rowloss, *work, *dz;
    const float *z;
    float coef;
    float *zg;     /* gathered: all G normalised rows */
    int G, rank;   /* gathered: G rows in all, this rank's block starts at rank * B2 */
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

/* ---- gathered NT-Xent (see the header) ---- */

static int ntx_dist_fail(eqm_host *h, const char *op, int rc)
{
    if (h)
        return host_ctx_set_error(h, rc, "nn.%s (gathered NT-Xent): %s", op, dist_error());
    host_log(EQM_LOG_ERROR, "nn", "%s (gathered NT-Xent): %s", op, dist_error());
    return rc;
}

/* 1 when gathered column j (rank-major) takes part in the denominator of local row k. */
static inline int ntx_g_allowed(const ntx_ctx *c, int k, int j, int posg)
{
    int B2 = c->s->B2, self = c->rank * B2 + k;
    if (j == self)
        return 0;
    if (j == posg)
        return 1;
    int p = c->s->exclude_period;
    return !(p > 0 && j / B2 == c->rank && (j % B2) % p == k % p);
}

static void ntx_g_softmax_body(void *vc, size_t b, size_t e)
{
    ntx_ctx *c = vc;
    const eqm_ntxent_shape *s = c->s;
    int B2 = s->B2, B = B2 / 2, G = c->G;
    float itau = 1.f / s->tau;
    for (size_t kk = b; kk < e; kk++) {
        int k = (int)kk, posg = c->rank * B2 + (k < B ? k + B : k - B);
        float *p = c->P + (size_t)k * G; /* holds cos(k, j) on entry */
        float mx = -INFINITY;
        for (int j = 0; j < G; j++)
            if (ntx_g_allowed(c, k, j, posg) && p[j] * itau > mx)
                mx = p[j] * itau;
        double sum = 0;
        float lpos = p[posg] * itau;
        for (int j = 0; j < G; j++) {
            if (ntx_g_allowed(c, k, j, posg)) {
                p[j] = expf(p[j] * itau - mx);
                sum += p[j];
            } else {
                p[j] = 0.f;
            }
        }
        float isum = (float)(1.0 / sum);
        for (int j = 0; j < G; j++)
            p[j] *= isum;
        c->rowloss[k] = (float)(log(sum) + mx - lpos);
    }
}

static void ntx_g_layout(const eqm_ntxent_shape *s, float *scratch, ntx_ctx *c)
{
    size_t B2 = (size_t)s->B2, D = (size_t)s->D, G = B2 * (size_t)dist_size();
    c->s = s;
    c->G = (int)G;
    c->rank = dist_rank();
    c->zg = scratch;
    c->zn = c->zg + (size_t)c->rank * B2 * D; /* this rank's normalised rows */
    c->norms = scratch + G * D;
    c->P = c->norms + B2;
    c->work = c->P + B2 * G;   /* (G, D) */
    c->rowloss = c->work;      /* forward only */
}

static int ntx_gather_forward(eqm_host *h, const eqm_ntxent_shape *s, float *loss,
                              const float *z, float *scratch)
{
    /* every rank must hold the same B2 and D (the gather's counts): check first */
    double sh[4] = {s->B2, (double)s->B2 * s->B2, s->D, (double)s->D * s->D};
    int rc = dist_allreduce_f64(sh, 4);
    if (rc)
        return ntx_dist_fail(h, "ntxent_forward", rc);
    double R = dist_size();
    if (sh[1] * R != sh[0] * sh[0] || sh[3] * R != sh[2] * sh[2])
        return nn_inval(h, "ntxent_forward", "gathered NT-Xent needs the same rows and width "
                        "on every rank (this rank: B2=%d D=%d; mean over ranks: B2=%g D=%g)",
                        s->B2, s->D, sh[0] / R, sh[2] / R);
    if ((double)s->B2 * R > INT_MAX / 2)
        return nn_inval(h, "ntxent_forward", "gathered NT-Xent: %g rows in all is too many",
                        (double)s->B2 * R);
    size_t B2 = (size_t)s->B2, D = (size_t)s->D;
    ntx_ctx c = {.z = z};
    ntx_g_layout(s, scratch, &c);
    nn_parallel(h, B2, 16, ntx_norm_body, &c);
    rc = dist_allgather_f32(c.zn, B2 * D, c.zg);
    if (rc)
        return ntx_dist_fail(h, "ntxent_forward", rc);
    nn_sgemm(h, 0, 1, s->B2, c.G, s->D, 1.f, c.zn, s->D, c.zg, s->D, 0.f, c.P, c.G);
    nn_parallel(h, B2, 8, ntx_g_softmax_body, &c);
    double tot = 0;
    for (size_t k = 0; k < B2; k++)
        tot += c.rowloss[k];
    rc = dist_allreduce_f64(&tot, 1);
    if (rc)
        return ntx_dist_fail(h, "ntxent_forward", rc);
    *loss = (float)(tot / (double)c.G);
    return EQM_OK;
}

static void ntx_bwd_body(void *vc, size_t b, size_t e);

static int ntx_gather_backward(eqm_host *h, const eqm_ntxent_shape *s, float *dz,
                               float scale, const float *scratch)
{
    size_t B2 = (size_t)s->B2, D = (size_t)s->D;
    ntx_ctx c = {.dz = dz};
    ntx_g_layout(s, (float *)scratch, &c); /* the scratch is documented as writable */
    float *rs = c.work + (size_t)c.G * D;  /* (B2, D): this rank's summed rows */
    int n = s->B2, d = s->D, G = c.G;
    /* work (G, D) = P_r^T zl; then its local block += P_r zg */
    nn_sgemm(h, 1, 0, G, d, n, 1.f, c.P, G, c.zn, d, 0.f, c.work, d);
    nn_sgemm(h, 0, 0, n, d, G, 1.f, c.P, G, c.zg, d, 1.f, c.work + (size_t)c.rank * B2 * D, d);
    int rc = dist_reduce_scatter_f32(c.work, B2 * D, rs);
    if (rc)
        return ntx_dist_fail(h, "ntxent_backward", rc);
    c.work = rs;
    c.coef = scale / ((float)B2 * s->tau);
    nn_parallel(h, B2, 16, ntx_bwd_body, &c);
    return EQM_OK;
}

int nn_ntxent_forward(eqm_host *h, const eqm_ntxent_shape *s, float *loss, const float *z,
                      float *scratch)
{
    int rc = ntx_check(h, "ntxent_forward", s);
    if (rc)
        return rc;
    if (dist_nn_flags() & DIST_NN_GATHER_LOSS)
        return ntx_gather_forward(h, s, loss, z, scratch);
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
    if (dist_nn_flags() & DIST_NN_GATHER_LOSS)
        return ntx_gather_backward(h, s, dz, scale, scratch);
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
