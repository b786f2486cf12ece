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
 *   batchnorm_backward_ex (ABI 1.5) with EQM_NN_SET_DIN writes din = ... instead: the second
 *   pass then stores din without reading it, and the caller skips its memset (bitwise the
 *   result of += into a zeroed din, except that a -0 stays -0). With EQM_NN_RELU_FROM_IN
 *   (relu = 1) both passes take the mask from x A + B > 0, A and B the forward's floats
 *   (bn_affine, one function for both; -std=c11 contracts no FMA), instead of reading out:
 *   the same mask, one stream less per pass (both passes are bound by memory traffic).
 * bf16 storage (ABI 1.6): batchnorm_forward_store keeps a bf16 copy of x (in_bf16) and
 *   normalises those rounded values (the statistics stay those of the float x), and can
 *   write y and read the residual as bf16; batchnorm_backward_ex with EQM_NN_IN_BF16 reads
 *   x as bf16. Rows are widened into (or computed in) C-float temporaries in L1, so the
 *   arithmetic is the float code's: backward on the kept copy recomputes the forward's
 *   mask exactly, and the result is bit for bit that of the float ops on the widened
 *   values (tests).
 * Statistics: one pass for sum and sum of squares, float over runs of 64 rows, double
 * beyond (the per-run float error is ~1e-7 relative; the double total keeps E[x^2] -
 * mean^2 accurate for |mean| / std up to ~1e3).
 * Threads: row-parallel passes (each row is C contiguous floats): stats/sums per row part,
 * then an elementwise pass. Per-part partial sums need P * 2C doubles: a host-owned buffer
 * grown at the first call with a larger C and never afterwards (no allocation once the
 * first training step has run; not thread-safe, like every op: training thread only).
 * Per-channel temporaries are C-sized arrays on the stack.
 * SyncBN (host/dist, DIST_NN_SYNC_BN, train = 1, more than one rank): the (2C + 1)
 *   per-channel totals [sum, sum of squares, rows] are all-reduced before the statistics
 *   (running_var's unbiased factor uses the global row count); in backward the totals
 *   [sum g, sum g xh, rows] are all-reduced for din, while dgamma/dbeta take this rank's
 *   sums (the trainer's gradient all-reduce sums the ranks). Same as
 *   torch.nn.SyncBatchNorm. The totals are in double, so the global batch's statistics
 *   are those of one process up to the summation order.
 * Left out: track_running_stats = False, cudnn-style saved "var" instead of inv_std.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "dist/dist.h"
#include "nn/nn_internal.h"

#define RB 64 /* rows per float partial sum before it is added into double */

/* Row-parallel statistics: the rows are cut into P contiguous parts (one per task); each
 * part sums its rows over all C channels (contiguous, vectorised), in float over runs of
 * RB rows then in double. Partials live in a host-owned buffer of P * 2C doubles that
 * grows at the first call with a new C (like conv2d's workspace) and never afterwards. */
static double *part;
static size_t part_n;

static double *part_get(eqm_host *h, size_t n)
{
    if (n <= part_n)
        return part;
    double *p = realloc(part, n * sizeof(double));
    if (!p) {
        nn_inval(h, "batchnorm", "out of memory for %zu partial sums", n);
        return NULL;
    }
    part = p;
    part_n = n;
    return part;
}

/* Per-channel totals of the P part sums, then the row count: (2C + 1) doubles in a second
 * host-owned buffer (grown like `part`). Under SyncBN this array is what is all-reduced. */
static double *tot;
static size_t tot_n;

static double *bn_totals(const double *pb, size_t P, size_t C, size_t M)
{
    if (2 * C + 1 > tot_n) {
        double *p = realloc(tot, (2 * C + 1) * sizeof(double));
        if (!p)
            return NULL;
        tot = p;
        tot_n = 2 * C + 1;
    }
    for (size_t j = 0; j < 2 * C; j++) {
        double a = 0;
        for (size_t t = 0; t < P; t++)
            a += pb[t * 2 * C + j];
        tot[j] = a;
    }
    tot[2 * C] = (double)M;
    return tot;
}

static int bn_dist_fail(eqm_host *h, const char *op, int rc)
{
    if (h)
        return host_ctx_set_error(h, rc, "nn.%s (SyncBN): %s", op, dist_error());
    host_log(EQM_LOG_ERROR, "nn", "%s (SyncBN): %s", op, dist_error());
    return rc;
}

typedef struct {
    const eqm_bn_shape *s;
    size_t P;          /* number of row parts */
    double *part;      /* (P, 2C) */
    float *out, *din;
    const float *in, *dout, *cout;
    const float *res;    /* forward: EQM_NN_ADD_RESIDUAL's residual, or NULL */
    const float *a, *b;  /* per channel: y = x a + b (forward) */
    const float *mean, *inv, *k, *mg, *mgx; /* backward per-channel factors */
    int set;             /* backward: EQM_NN_SET_DIN (din =, not +=) */
    int rin;             /* backward: EQM_NN_RELU_FROM_IN (mask from x a + b, not out) */
    /* ABI 1.6 bf16 storage (NULL when unused): backward's `in` as bf16 (EQM_NN_IN_BF16);
     * forward's bf16 output (EQM_NN_OUT_BF16), residual (EQM_NN_RES_BF16) and the bf16
     * copy of `in` that it keeps (batchnorm_forward_store's in_bf16) */
    const uint16_t *in16, *res16;
    uint16_t *out16, *keep16;
    int v512;            /* the CPU has AVX512_BF16 (nn_bf16_cpu): bn_apply16_row512 */
} bn_ctx;

/* A row of C bf16 values as floats (exact) in tmp. */
static inline const float *bn_wide_row(const uint16_t *src, float *tmp, size_t C)
{
    for (size_t j = 0; j < C; j++)
        tmp[j] = nn_bf16_wide(src[j]);
    return tmp;
}

static void rows_of(const bn_ctx *c, size_t t, size_t *r0, size_t *r1)
{
    size_t M = (size_t)c->s->M;
    *r0 = M * t / c->P;
    *r1 = M * (t + 1) / c->P;
}

NN_HOT static void bn_stats_body(void *vc, size_t tb, size_t te)
{
    bn_ctx *c = vc;
    const size_t C = (size_t)c->s->C;
    float fs[C], fq[C], xr[C];
    for (size_t t = tb; t < te; t++) {
        size_t r0, r1;
        rows_of(c, t, &r0, &r1);
        double *ds = c->part + t * 2 * C, *dq = ds + C;
        for (size_t j = 0; j < C; j++)
            ds[j] = dq[j] = 0;
        for (size_t m0 = r0; m0 < r1; m0 += RB) {
            size_t m1 = m0 + RB < r1 ? m0 + RB : r1;
            for (size_t j = 0; j < C; j++)
                fs[j] = fq[j] = 0.f;
            for (size_t m = m0; m < m1; m++) {
                const float *x = c->in16 ? bn_wide_row(c->in16 + m * C, xr, C) : c->in + m * C;
                for (size_t j = 0; j < C; j++) {
                    fs[j] += x[j];
                    fq[j] += x[j] * x[j];
                }
            }
            for (size_t j = 0; j < C; j++) {
                ds[j] += fs[j];
                dq[j] += fq[j];
            }
        }
    }
}

/* One row of the forward: y = act(x A + B [+ r]) (r NULL: no residual). */
static inline void bn_apply_row(size_t C, int relu, const float *x, const float *A,
                                const float *B, const float *r, float *y)
{
    if (r) { /* (x A + B) + r, then the ReLU: BN, then add + ReLU, in one pass */
        if (relu)
            for (size_t j = 0; j < C; j++) {
                float v = x[j] * A[j] + B[j] + r[j];
                y[j] = v > 0.f ? v : 0.f;
            }
        else
            for (size_t j = 0; j < C; j++)
                y[j] = x[j] * A[j] + B[j] + r[j];
    } else if (relu)
        for (size_t j = 0; j < C; j++) {
            float v = x[j] * A[j] + B[j];
            y[j] = v > 0.f ? v : 0.f;
        }
    else
        for (size_t j = 0; j < C; j++)
            y[j] = x[j] * A[j] + B[j];
}

NN_HOT static void bn_apply_body(void *vc, size_t b, size_t e)
{
    bn_ctx *c = vc;
    const size_t C = (size_t)c->s->C;
    for (size_t m = b; m < e; m++)
        bn_apply_row(C, c->s->relu, c->in + m * C, c->a, c->b, c->res ? c->res + m * C : NULL,
                     c->out + m * C);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BN512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

BN512 static inline __m512 bn_wide16(__m256i h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

BN512 static inline __m256i bn_narrow16(__m512 v)
{
    return (__m256i)_mm512_cvtneps_pbh(v); /* nearest even, subnormal -> 0, NaN quiet */
}

/* One row of bn_apply16_body in AVX-512 (vcvtneps2bf16 rounds as nn_bf16_rne; the
 * arithmetic is bn_apply_row's, ((x A + B) + r) then max(v, 0), which returns +0 for NaN
 * and -0 as `v > 0 ? v : 0` does); the tail of C % 16 channels is the scalar code's. */
BN512 static void bn_apply16_row512(size_t C, int relu, const float *x, const uint16_t *x16,
                                    uint16_t *keep,
                                    const float *A, const float *B, const float *rf,
                                    const uint16_t *r16, float *yf, uint16_t *y16)
{
    const __m512 zero = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= C; j += 16) {
        __m512 v = x16 ? bn_wide16(_mm256_loadu_si256((const __m256i *)(const void *)(x16 + j)))
                       : _mm512_loadu_ps(x + j);
        if (keep) {
            __m256i k = bn_narrow16(v);
            _mm256_storeu_si256((__m256i *)(void *)(keep + j), k);
            v = bn_wide16(k);
        }
        v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_loadu_ps(A + j)), _mm512_loadu_ps(B + j));
        if (r16)
            v = _mm512_add_ps(v, bn_wide16(_mm256_loadu_si256((const __m256i *)(const void *)(r16 + j))));
        else if (rf)
            v = _mm512_add_ps(v, _mm512_loadu_ps(rf + j));
        if (relu)
            v = _mm512_max_ps(v, zero);
        if (y16)
            _mm256_storeu_si256((__m256i *)(void *)(y16 + j), bn_narrow16(v));
        else
            _mm512_storeu_ps(yf + j, v);
    }
    for (; j < C; j++) {
        float xv = x16 ? nn_bf16_wide(x16[j]) : x[j];
        if (keep) {
            keep[j] = nn_bf16_rne(xv);
            xv = nn_bf16_wide(keep[j]);
        }
        float v = xv * A[j] + B[j];
        if (r16)
            v = v + nn_bf16_wide(r16[j]);
        else if (rf)
            v = v + rf[j];
        if (relu)
            v = v > 0.f ? v : 0.f;
        if (y16)
            y16[j] = nn_bf16_rne(v);
        else
            yf[j] = v;
    }
}
#endif

/* The same with bf16 storage (batchnorm_forward_store): per row, the kept copy of x is
 * rounded first and normalised as rounded; a bf16 residual is widened; a bf16 output is
 * computed in floats, then rounded. With AVX512_BF16 one pass per row in registers
 * (bn_apply16_row512); else rows go through L1-sized temporaries. */
NN_HOT static void bn_apply16_body(void *vc, size_t b, size_t e)
{
    bn_ctx *c = vc;
    const size_t C = (size_t)c->s->C;
#if defined(__x86_64__) && defined(__GNUC__)
    if (c->v512) {
        for (size_t m = b; m < e; m++)
            bn_apply16_row512(C, c->s->relu, c->in16 ? NULL : c->in + m * C,
                              c->in16 ? c->in16 + m * C : NULL,
                              c->keep16 ? c->keep16 + m * C : NULL,
                              c->a, c->b, c->res ? c->res + m * C : NULL,
                              c->res16 ? c->res16 + m * C : NULL, c->out16 ? NULL : c->out + m * C,
                              c->out16 ? c->out16 + m * C : NULL);
        return;
    }
#endif
    float xr[C], rr[C], yr[C];
    for (size_t m = b; m < e; m++) {
        const float *x = c->in16 ? bn_wide_row(c->in16 + m * C, xr, C) : c->in + m * C, *r = NULL;
        if (c->keep16) {
            uint16_t *k = c->keep16 + m * C;
            for (size_t j = 0; j < C; j++) {
                k[j] = nn_bf16_rne(x[j]);
                xr[j] = nn_bf16_wide(k[j]);
            }
            x = xr;
        }
        if (c->res16)
            r = bn_wide_row(c->res16 + m * C, rr, C);
        else if (c->res)
            r = c->res + m * C;
        float *y = c->out16 ? yr : c->out + m * C;
        bn_apply_row(C, c->s->relu, x, c->a, c->b, r, y);
        if (c->out16) {
            uint16_t *o = c->out16 + m * C;
            for (size_t j = 0; j < C; j++)
                o[j] = nn_bf16_rne(yr[j]);
        }
    }
}

/* The forward's per-channel affine y = x A + B (then the ReLU): one function, so that the
 * backward's EQM_NN_RELU_FROM_IN recomputes the same floats and so the same mask. */
static void bn_affine(const eqm_bn_shape *s, const float *gamma, const float *beta,
                      const float *mean, const float *inv, float *A, float *B)
{
    for (size_t j = 0; j < (size_t)s->C; j++) {
        float g = s->affine ? gamma[j] : 1.f, bt = s->affine ? beta[j] : 0.f;
        A[j] = g * inv[j];
        B[j] = bt - mean[j] * A[j];
    }
}

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

static size_t n_parts(const eqm_bn_shape *s)
{
    size_t P = (size_t)nn_threads() * 2;
    size_t maxp = (size_t)s->M / 16 ? (size_t)s->M / 16 : 1;
    return P < maxp ? P : maxp;
}

static size_t row_grain(const eqm_bn_shape *s)
{
    size_t g = 16384 / (size_t)s->C;
    return g ? g : 1;
}

/* stats (2C) = per channel [sum, sum of squares] of the (M, C) matrix x: the pass of
 * bn_stats_body over P row parts, then their totals (conv2d_forward_stats takes it for the
 * conv paths that do not sum in their own epilogue). */
int nn_bn_sums(eqm_host *h, size_t M, size_t C, const float *x, double *stats)
{
    eqm_bn_shape s = {(int)M, (int)C, 1, 0, 0, 1e-5f, 0.1f};
    bn_ctx c = {.s = &s, .in = x};
    c.P = n_parts(&s);
    double *pb = part_get(h, c.P * 2 * C);
    if (!pb)
        return EQM_ERR_NOMEM;
    c.part = pb;
    nn_parallel(h, c.P, 1, bn_stats_body, &c);
    for (size_t j = 0; j < 2 * C; j++) {
        double a = 0;
        for (size_t t = 0; t < c.P; t++)
            a += pb[t * 2 * C + j];
        stats[j] = a;
    }
    return EQM_OK;
}

int nn_batchnorm_forward(eqm_host *h, const eqm_bn_shape *s, float *out, const float *in,
                         const float *gamma, const float *beta, float *running_mean,
                         float *running_var, float *save)
{
    return nn_batchnorm_forward_ex(h, s, 0, out, in, NULL, gamma, beta, running_mean,
                                   running_var, save, NULL);
}

static int bn_forward(eqm_host *h, const eqm_bn_shape *s, const char *op, uint32_t flags,
                      void *out, uint16_t *keep16, const float *in, const void *residual,
                      const float *gamma, const float *beta, float *running_mean,
                      float *running_var, float *save, const double *stats);

/* ABI 1.5: stats (2C: per channel sum, sum of squares of `in`, as conv2d_forward_stats
 * returns them), when given and train = 1, replace the statistics pass over in. */
int nn_batchnorm_forward_ex(eqm_host *h, const eqm_bn_shape *s, uint32_t flags, float *out,
                            const float *in, const float *residual, const float *gamma,
                            const float *beta, float *running_mean, float *running_var,
                            float *save, const double *stats)
{
    const char *op = flags || stats ? "batchnorm_forward_ex" : "batchnorm_forward";
    int rc = bn_check(h, op, s);
    if (rc)
        return rc;
    if (flags & ~(uint32_t)EQM_NN_ADD_RESIDUAL)
        return nn_inval(h, op, "unknown flags 0x%x (this host knows EQM_NN_ADD_RESIDUAL = 0x%x)",
                        (unsigned)(flags & ~(uint32_t)EQM_NN_ADD_RESIDUAL),
                        (unsigned)EQM_NN_ADD_RESIDUAL);
    return bn_forward(h, s, op, flags, out, NULL, in, residual, gamma, beta, running_mean,
                      running_var, save, stats);
}

/* ABI 1.6: batchnorm_forward_ex with bf16 storage (nn.h): out and residual as bf16 per
 * flags, and in_bf16 (when given) = bf16(in), the values then normalised. */
int nn_batchnorm_forward_store(eqm_host *h, const eqm_bn_shape *s, uint32_t flags, void *out,
                               eqm_bf16 *in_bf16, const float *in, const void *residual,
                               const float *gamma, const float *beta, float *running_mean,
                               float *running_var, float *save, const double *stats)
{
    const char *op = "batchnorm_forward_store";
    int rc = bn_check(h, op, s);
    if (rc)
        return rc;
    const uint32_t known =
        EQM_NN_ADD_RESIDUAL | EQM_NN_OUT_BF16 | EQM_NN_RES_BF16 | EQM_NN_IN_BF16;
    if (flags & ~known)
        return nn_inval(h, op,
                        "unknown flags 0x%x (this host knows EQM_NN_ADD_RESIDUAL = 0x%x, "
                        "EQM_NN_OUT_BF16 = 0x%x, EQM_NN_RES_BF16 = 0x%x and EQM_NN_IN_BF16 = "
                        "0x%x)",
                        (unsigned)(flags & ~known), (unsigned)EQM_NN_ADD_RESIDUAL,
                        (unsigned)EQM_NN_OUT_BF16, (unsigned)EQM_NN_RES_BF16,
                        (unsigned)EQM_NN_IN_BF16);
    if ((flags & EQM_NN_RES_BF16) && !(flags & EQM_NN_ADD_RESIDUAL))
        return nn_inval(h, op, "EQM_NN_RES_BF16 without EQM_NN_ADD_RESIDUAL (no residual to read)");
    if ((flags & EQM_NN_IN_BF16) && in_bf16)
        return nn_inval(h, op, "EQM_NN_IN_BF16: `in` is bf16 already, in_bf16 must be NULL");
    return bn_forward(h, s, op, flags, out, in_bf16, in, residual, gamma, beta, running_mean,
                      running_var, save, stats);
}

/* The forward behind both: flags already checked. */
static int bn_forward(eqm_host *h, const eqm_bn_shape *s, const char *op, uint32_t flags,
                      void *out, uint16_t *keep16, const float *in, const void *residual,
                      const float *gamma, const float *beta, float *running_mean,
                      float *running_var, float *save, const double *stats)
{
    int rc;
    if ((flags & EQM_NN_ADD_RESIDUAL) && !residual)
        return nn_inval(h, op, "EQM_NN_ADD_RESIDUAL needs the residual (M, C)");
    if (!in || !out)
        return nn_inval(h, op, "in and out are required");
    if (s->affine && (!gamma || !beta))
        return nn_inval(h, op, "affine = 1 needs gamma and beta");
    if (!s->train && (!running_mean || !running_var))
        return nn_inval(h, op, "train = 0 needs running_mean and running_var");
    if (!save)
        return nn_inval(h, op, "save (2C floats) is required");
    const size_t M = (size_t)s->M, C = (size_t)s->C;
    const int o16 = (flags & EQM_NN_OUT_BF16) != 0, r16 = (flags & EQM_NN_RES_BF16) != 0;
    const int i16 = (flags & EQM_NN_IN_BF16) != 0;
    const void *res = (flags & EQM_NN_ADD_RESIDUAL) ? residual : NULL;
    bn_ctx c = {.s = s, .in = i16 ? NULL : in, .out = o16 ? NULL : out, .out16 = o16 ? out : NULL,
                .res = r16 ? NULL : res, .res16 = r16 ? res : NULL, .keep16 = keep16,
                .in16 = i16 ? (const uint16_t *)(const void *)in : NULL};
    /* per-channel a, b live after the partial sums in the same buffer */
    c.P = n_parts(s);
    double *pb = part_get(h, c.P * 2 * C);
    if (!pb)
        return EQM_ERR_NOMEM;
    c.part = pb;
    float ab[2 * C], *A = ab, *B = ab + C;
    float *mean = save, *inv = save + C;
    if (s->train) {
        if (stats) { /* the conv's epilogue summed them: one partial */
            memcpy(pb, stats, 2 * C * sizeof(double));
            c.P = 1;
        } else {
            nn_parallel(h, c.P, 1, bn_stats_body, &c);
        }
        /* st = [sum (C), sum of squares (C), rows]: all-reduced under SyncBN */
        double *st = bn_totals(pb, c.P, C, M);
        if (!st)
            return nn_inval(h, op, "out of memory for %zu totals", C);
        if (dist_nn_flags() & DIST_NN_SYNC_BN) {
            rc = dist_allreduce_f64(st, 2 * C + 1);
            if (rc)
                return bn_dist_fail(h, op, rc);
        }
        const double Mg = st[2 * C];
        for (size_t j = 0; j < C; j++) {
            double mu = st[j] / Mg, var = st[C + j] / Mg - mu * mu;
            if (var < 0)
                var = 0;
            mean[j] = (float)mu;
            inv[j] = (float)(1.0 / sqrt(var + s->eps));
            if (running_mean)
                running_mean[j] = (1.f - s->momentum) * running_mean[j] + s->momentum * (float)mu;
            if (running_var)
                running_var[j] = (1.f - s->momentum) * running_var[j] +
                                 s->momentum * (float)(var * Mg / (Mg - 1));
        }
    } else {
        for (size_t j = 0; j < C; j++) {
            mean[j] = running_mean[j];
            inv[j] = (float)(1.0 / sqrt((double)running_var[j] + s->eps));
        }
    }
    bn_affine(s, gamma, beta, mean, inv, A, B);
    c.a = A, c.b = B;
    c.v512 = nn_bf16_cpu() > 0;
    nn_parallel(h, M, row_grain(s),
                o16 || c.res16 || keep16 || i16 ? bn_apply16_body : bn_apply_body, &c);
    return EQM_OK;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The backward passes' rows in AVX-512 (c->v512), 16 channels at a time (the last block
 * masked): x widened from bf16 in registers (no temporary row), and each element gets the
 * scalar code's operations in its order (no contraction: -std=c11), so the same bits.
 * g = dout, masked by the ReLU of the forward (rin: x A + B > 0, recomputed; else out > 0). */
BN512 static inline __m512 bn_g16(const bn_ctx *c, __mmask16 m, size_t o, size_t j, __m512 x)
{
    __m512 d = _mm512_maskz_loadu_ps(m, c->dout + o);
    if (!c->s->relu)
        return d;
    __m512 v = c->rin ? _mm512_add_ps(_mm512_mul_ps(x, _mm512_maskz_loadu_ps(m, c->a + j)),
                                      _mm512_maskz_loadu_ps(m, c->b + j))
                      : _mm512_maskz_loadu_ps(m, c->cout + o);
    return _mm512_maskz_mov_ps(_mm512_mask_cmp_ps_mask(m, v, _mm512_setzero_ps(), _CMP_GT_OQ), d);
}

BN512 static inline __m512 bn_x16(const bn_ctx *c, __mmask16 m, size_t o)
{
    return c->in16 ? bn_wide16(_mm256_maskz_loadu_epi16(m, c->in16 + o))
                   : _mm512_maskz_loadu_ps(m, c->in + o);
}

/* the lanes of channels j .. j + 15 that are below C */
static inline __mmask16 bn_mask16(size_t C, size_t j)
{
    return C - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - j)) - 1);
}

/* pass 1's step for 16 channels from j of the element at o: sm += g, sq += g ((x - mu) iv),
 * the scalar loop's operations in its order */
BN512 static inline void bn_sum16(const bn_ctx *c, __mmask16 k, size_t o, size_t j, __m512 mu,
                                  __m512 iv, __m512 *sm, __m512 *sq)
{
    __m512 x = bn_x16(c, k, o), g = bn_g16(c, k, o, j, x);
    __m512 xh = _mm512_mul_ps(_mm512_sub_ps(x, mu), iv);
    *sm = _mm512_add_ps(*sm, g);
    *sq = _mm512_add_ps(*sq, _mm512_mul_ps(g, xh));
}

/* pass 1, rows [m0, m1) (one run of RB rows): fs = sum g, fq = sum g ((x - mean) inv),
 * the scalar loop's per-element operations in its order (the same bits), the sums kept in
 * registers for up to 64 channels at a time: row by row through fs and fq in memory each
 * add waited on the previous row's store (a store-to-load chain per row and channel
 * block, the whole pass at C = 16) */
BN512 static void bn_bsum_run512(const bn_ctx *c, size_t m0, size_t m1, float *fs, float *fq)
{
    const size_t C = (size_t)c->s->C;
    for (size_t j0 = 0; j0 < C; j0 += 64) {
        const int nb = (int)((C - j0 < 64 ? C - j0 : 64) + 15) / 16;
        __mmask16 k[4];
        __m512 sm[4], sq[4], mu[4], iv[4];
        for (int b = 0; b < nb; b++) {
            size_t j = j0 + 16 * (size_t)b;
            k[b] = bn_mask16(C, j);
            sm[b] = sq[b] = _mm512_setzero_ps();
            mu[b] = _mm512_maskz_loadu_ps(k[b], c->mean + j);
            iv[b] = _mm512_maskz_loadu_ps(k[b], c->inv + j);
        }
        for (size_t m = m0; m < m1; m++)
            for (int b = 0; b < nb; b++) {
                size_t j = j0 + 16 * (size_t)b;
                bn_sum16(c, k[b], m * C + j, j, mu[b], iv[b], &sm[b], &sq[b]);
            }
        for (int b = 0; b < nb; b++) {
            _mm512_mask_storeu_ps(fs + j0 + 16 * (size_t)b, k[b], sm[b]);
            _mm512_mask_storeu_ps(fq + j0 + 16 * (size_t)b, k[b], sq[b]);
        }
    }
}

/* pass 1 for C > 64: the same sums in the same order per channel, the rows read as they
 * lie (4 at a time, every channel of them) with fs and fq in L1 between them. Channel
 * blocks of 64 down a run of rows read each row in pieces C floats apart: in ResNet-50's
 * bf16 step (C 256-2048) that pass took 6.1% against pass 2's 3.6% though it moves 6
 * bytes an element against 14; now 3.9%. Both passes at 7x7 C 2048, batch 96: 17.4-18.1
 * -> 12.0-12.1 ms (bench/README.md, conv-layers --bn-r50). */
BN512 static void bn_bsum_rows512(const bn_ctx *c, size_t m0, size_t m1, float *fs, float *fq)
{
    const size_t C = (size_t)c->s->C;
    for (size_t j = 0; j < C; j++)
        fs[j] = fq[j] = 0.f;
    for (size_t m = m0; m < m1; m += 4) {
        const size_t r = m1 - m < 4 ? m1 - m : 4;
        for (size_t j = 0; j < C; j += 16) {
            __mmask16 k = bn_mask16(C, j);
            __m512 mu = _mm512_maskz_loadu_ps(k, c->mean + j);
            __m512 iv = _mm512_maskz_loadu_ps(k, c->inv + j);
            __m512 sm = _mm512_maskz_loadu_ps(k, fs + j), sq = _mm512_maskz_loadu_ps(k, fq + j);
            for (size_t i = 0; i < r; i++)
                bn_sum16(c, k, (m + i) * C + j, j, mu, iv, &sm, &sq);
            _mm512_mask_storeu_ps(fs + j, k, sm);
            _mm512_mask_storeu_ps(fq + j, k, sq);
        }
    }
}

/* pass 2, rows [b, e): din (= or +=) k (g - mg - ((x - mean) inv) mgx) */
BN512 static void bn_bdin_rows512(const bn_ctx *c, size_t b, size_t e)
{
    const size_t C = (size_t)c->s->C;
    for (size_t m = b; m < e; m++)
        for (size_t j = 0; j < C; j += 16) {
            __mmask16 k = bn_mask16(C, j);
            size_t o = m * C + j;
            __m512 x = bn_x16(c, k, o), g = bn_g16(c, k, o, j, x);
            __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(x, _mm512_maskz_loadu_ps(k, c->mean + j)),
                                                   _mm512_maskz_loadu_ps(k, c->inv + j)),
                                     _mm512_maskz_loadu_ps(k, c->mgx + j));
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, c->k + j),
                                     _mm512_sub_ps(_mm512_sub_ps(g, _mm512_maskz_loadu_ps(k, c->mg + j)), t));
            if (!c->set)
                v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, c->din + o), v);
            _mm512_mask_storeu_ps(c->din + o, k, v);
        }
}
#endif

/* The AVX-512 rows of the backward (on CPUs with AVX512_BF16, for float and bf16 inputs);
 * tests switch them off to compare bits with the portable code (nn_bn_set_v512). */
static int bn_v512_on = 1;
void nn_bn_set_v512(int on) { bn_v512_on = on; }

/* Backward pass 1, rows [m0, m1) (one run of RB rows), portable: fs = sum g, fq = sum g xh */
static inline __attribute__((always_inline)) void bn_bsum_run(const bn_ctx *c, size_t m0, size_t m1,
                                                             float *fs, float *fq, float *xr)
{
    const eqm_bn_shape *s = c->s;
    const size_t C = (size_t)s->C;
    const float *mean = c->mean, *inv = c->inv, *A = c->a, *B = c->b;
    for (size_t j = 0; j < C; j++)
        fs[j] = fq[j] = 0.f;
    for (size_t m = m0; m < m1; m++) {
        const float *x = c->in16 ? bn_wide_row(c->in16 + m * C, xr, C) : c->in + m * C;
        const float *d = c->dout + m * C, *y = c->cout + m * C;
        if (s->relu && c->rin)
            for (size_t j = 0; j < C; j++) {
                float v = x[j] * A[j] + B[j]; /* bn_apply_body's v */
                float g = v > 0.f ? d[j] : 0.f;
                fs[j] += g;
                fq[j] += g * ((x[j] - mean[j]) * inv[j]);
            }
        else if (s->relu)
            for (size_t j = 0; j < C; j++) {
                float g = y[j] > 0.f ? d[j] : 0.f;
                fs[j] += g;
                fq[j] += g * ((x[j] - mean[j]) * inv[j]);
            }
        else
            for (size_t j = 0; j < C; j++) {
                fs[j] += d[j];
                fq[j] += d[j] * ((x[j] - mean[j]) * inv[j]);
            }
    }
}

/* Backward pass 1: per part, sums of g and g * xh (g = dout masked by out > 0), in float
 * per run of RB rows, then double. */
NN_HOT static void bn_bsum_body(void *vc, size_t tb, size_t te)
{
    bn_ctx *c = vc;
    const size_t C = (size_t)c->s->C;
    float fs[C], fq[C], xr[C];
    for (size_t t = tb; t < te; t++) {
        size_t r0, r1;
        rows_of(c, t, &r0, &r1);
        double *ds = c->part + t * 2 * C, *dq = ds + C;
        for (size_t j = 0; j < C; j++)
            ds[j] = dq[j] = 0;
        for (size_t m0 = r0; m0 < r1; m0 += RB) {
            size_t m1 = m0 + RB < r1 ? m0 + RB : r1;
#if defined(__x86_64__) && defined(__GNUC__)
            if (c->v512)
                (C > 64 ? bn_bsum_rows512 : bn_bsum_run512)(c, m0, m1, fs, fq);
            else
#endif
                bn_bsum_run(c, m0, m1, fs, fq, xr);
            for (size_t j = 0; j < C; j++) {
                ds[j] += fs[j];
                dq[j] += fq[j];
            }
        }
    }
}

/* Backward pass 2: din += k (g - mg - xh mgx), or din = ... with EQM_NN_SET_DIN (c->set:
 * din is then only written, never read; the same arithmetic, as into a zeroed din). */
NN_HOT static void bn_bdin_body(void *vc, size_t b, size_t e)
{
    bn_ctx *c = vc;
    const eqm_bn_shape *s = c->s;
    const size_t C = (size_t)s->C;
    const float *mean = c->mean, *inv = c->inv, *k = c->k, *mg = c->mg, *mgx = c->mgx;
    const float *A = c->a, *B = c->b;
#if defined(__x86_64__) && defined(__GNUC__)
    if (c->v512) {
        bn_bdin_rows512(c, b, e);
        return;
    }
#endif
    float xr[C];
    for (size_t m = b; m < e; m++) {
        const float *x = c->in16 ? bn_wide_row(c->in16 + m * C, xr, C) : c->in + m * C;
        const float *d = c->dout + m * C, *y = c->cout + m * C;
        float *dx = c->din + m * C;
        if (s->relu && c->rin && c->set)
            for (size_t j = 0; j < C; j++) {
                float v = x[j] * A[j] + B[j];
                float g = v > 0.f ? d[j] : 0.f;
                dx[j] = k[j] * (g - mg[j] - (x[j] - mean[j]) * inv[j] * mgx[j]);
            }
        else if (s->relu && c->rin)
            for (size_t j = 0; j < C; j++) {
                float v = x[j] * A[j] + B[j];
                float g = v > 0.f ? d[j] : 0.f;
                dx[j] += k[j] * (g - mg[j] - (x[j] - mean[j]) * inv[j] * mgx[j]);
            }
        else if (s->relu && c->set)
            for (size_t j = 0; j < C; j++) {
                float g = y[j] > 0.f ? d[j] : 0.f;
                dx[j] = k[j] * (g - mg[j] - (x[j] - mean[j]) * inv[j] * mgx[j]);
            }
        else if (s->relu)
            for (size_t j = 0; j < C; j++) {
                float g = y[j] > 0.f ? d[j] : 0.f;
                dx[j] += k[j] * (g - mg[j] - (x[j] - mean[j]) * inv[j] * mgx[j]);
            }
        else if (c->set)
            for (size_t j = 0; j < C; j++)
                dx[j] = k[j] * (d[j] - mg[j] - (x[j] - mean[j]) * inv[j] * mgx[j]);
        else
            for (size_t j = 0; j < C; j++)
                dx[j] += k[j] * (d[j] - mg[j] - (x[j] - mean[j]) * inv[j] * mgx[j]);
    }
}

int nn_batchnorm_backward(eqm_host *h, const eqm_bn_shape *s, float *din, float *dgamma,
                          float *dbeta, const float *dout, const float *in, const float *out,
                          const float *gamma, const float *save)
{
    return nn_batchnorm_backward_ex(h, s, 0, din, dgamma, dbeta, dout, in, out, gamma, NULL,
                                    save);
}

/* ABI 1.5: flags 0 = batchnorm_backward; EQM_NN_SET_DIN: din overwritten (pass 2 writes
 * it without reading it: the caller's memset and that read both go). */
int nn_batchnorm_backward_ex(eqm_host *h, const eqm_bn_shape *s, uint32_t flags, float *din,
                             float *dgamma, float *dbeta, const float *dout, const float *in,
                             const float *out, const float *gamma, const float *beta,
                             const float *save)
{
    const uint32_t known = EQM_NN_SET_DIN | EQM_NN_RELU_FROM_IN | EQM_NN_IN_BF16;
    const char *op = flags ? "batchnorm_backward_ex" : "batchnorm_backward";
    int rc = bn_check(h, op, s);
    if (rc)
        return rc;
    if (flags & ~known)
        return nn_inval(h, op,
                        "unknown flags 0x%x (this host knows EQM_NN_SET_DIN = 0x%x, "
                        "EQM_NN_RELU_FROM_IN = 0x%x and EQM_NN_IN_BF16 = 0x%x)",
                        (unsigned)(flags & ~known), (unsigned)EQM_NN_SET_DIN,
                        (unsigned)EQM_NN_RELU_FROM_IN, (unsigned)EQM_NN_IN_BF16);
    const int i16 = (flags & EQM_NN_IN_BF16) != 0;
    if (!in)
        return nn_inval(h, op, "in (the forward's input) is required");
    if (s->affine && !gamma)
        return nn_inval(h, op, "affine = 1 needs gamma");
    const int rin = s->relu && (flags & EQM_NN_RELU_FROM_IN);
    if (rin && s->affine && !beta)
        return nn_inval(h, op, "EQM_NN_RELU_FROM_IN with affine = 1 needs beta (the forward's)");
    if (s->relu && !rin && !out)
        return nn_inval(h, op, "relu = 1 needs the forward output (or EQM_NN_RELU_FROM_IN)");
    const size_t M = (size_t)s->M, C = (size_t)s->C;
    float ab[2 * C];
    bn_ctx c = {.s = s, .din = din, .dout = dout, .in = i16 ? NULL : in,
                .in16 = i16 ? (const uint16_t *)(const void *)in : NULL,
                .cout = s->relu && !rin ? out : dout, .mean = save, .inv = save + C,
                .set = (flags & EQM_NN_SET_DIN) != 0, .rin = rin};
    if (rin) {
        bn_affine(s, gamma, beta, c.mean, c.inv, ab, ab + C);
        c.a = ab, c.b = ab + C;
    }
    c.v512 = bn_v512_on && nn_bf16_cpu() > 0;
    c.P = n_parts(s);
    double *pb = part_get(h, c.P * 2 * C);
    if (!pb)
        return EQM_ERR_NOMEM;
    c.part = pb;
    nn_parallel(h, c.P, 1, bn_bsum_body, &c);
    /* st = [sum g (C), sum g xh (C), rows] */
    double *st = bn_totals(pb, c.P, C, M);
    if (!st)
        return nn_inval(h, op, "out of memory for %zu totals", C);
    /* dgamma/dbeta: this rank's sums (the trainer's gradient all-reduce adds the ranks) */
    for (size_t j = 0; j < C; j++) {
        if (s->affine && dgamma)
            dgamma[j] += (float)st[C + j];
        if (s->affine && dbeta)
            dbeta[j] += (float)st[j];
    }
    if (s->train && (dist_nn_flags() & DIST_NN_SYNC_BN) && din) {
        rc = dist_allreduce_f64(st, 2 * C + 1);
        if (rc)
            return bn_dist_fail(h, op, rc);
    }
    const double Mg = st[2 * C];
    float k[C], mg[C], mgx[C];
    for (size_t j = 0; j < C; j++) {
        k[j] = (s->affine ? gamma[j] : 1.f) * c.inv[j];
        mg[j] = s->train ? (float)(st[j] / Mg) : 0.f;
        mgx[j] = s->train ? (float)(st[C + j] / Mg) : 0.f;
    }
    if (!din)
        return EQM_OK;
    c.k = k, c.mg = mg, c.mgx = mgx;
    nn_parallel(h, M, row_grain(s), bn_bdin_body, &c);
    return EQM_OK;
}
