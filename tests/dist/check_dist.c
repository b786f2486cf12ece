/* tests/dist/check_dist.c: host/dist and the nn ops across ranks.
 *
 * Run as a plain program: the single-process group (rank 0 of 1, collectives are the
 * identity, dist_nn_flags() stays 0 whatever is set). Run under mpirun -np R (R >= 2,
 * tests/dist/mpi.test): the collectives with exact integer-valued data, then
 *   - gathered NT-Xent across R ranks == the single-process op on the union of the rows
 *     (SimCLR layout [a ; b] and EquiMod's [yt1 ; yt2 ; yhat1 ; yhat2] with and without
 *     exclude_period): loss value on every rank, and dz of the local rows / R (the
 *     DistributedDataParallel convention, dist.h) == the reference rows;
 *   - SyncBN on R ranks == batch norm of the whole batch (equal and unequal row slices,
 *     relu 0/1, affine 0/1, train): out, save, running stats; backward with the reference
 *     dout rows: din == reference rows, and dgamma/dbeta summed over ranks == reference.
 * The reference is the host's own single-process op (pinned against PyTorch by
 * tests/nn/check_nn_ref), computed on every rank from the same global data.
 * Each comparison also shows that the per-rank op WITHOUT the collective misses the
 * reference by far more than the tolerance (the test would fail without them).
 * Tolerances: |a - b| <= floor + 1e-5 |b|, the floor derived from the magnitudes entering
 * each value (see tol_* below). A failure prints the rank and aborts the whole job.
 * Usage: check_dist [--built-with-mpi]  (prints 1/0 and exits: used by mpi.test)
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <equimod/equimod.h>

#include "core.h"
#include "dist/dist.h"
#include "dist/grad.h"

static int R = 1, rank = 0;
static long n_checks;

#define FAIL(...)                                                                    \
    do {                                                                             \
        fprintf(stderr, "check_dist: rank %d: %s:%d: ", rank, __FILE__, __LINE__);  \
        fprintf(stderr, __VA_ARGS__);                                                \
        fputc('\n', stderr);                                                         \
        dist_abort(1);                                                               \
        exit(1);                                                                     \
    } while (0)
#define CHECK(cond, ...)       \
    do {                       \
        n_checks++;            \
        if (!(cond))           \
            FAIL(__VA_ARGS__); \
    } while (0)

static const eqm_nn_api *NN(void) { return host_api()->nn; }

/* deterministic data, the same on every rank */
static uint64_t lcg = 88172645463325252ull;
static float urand(void)
{
    lcg ^= lcg << 13;
    lcg ^= lcg >> 7;
    lcg ^= lcg << 17;
    return (float)((lcg >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}
static float *rnd(size_t n, float a, float b) /* a * u + b, u in [-1, 1) */
{
    float *p = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++)
        p[i] = a * urand() + b;
    return p;
}
static float *zeros(size_t n) { return calloc(n + 16, sizeof(float)); }

/* ---- collectives ---- */

static void test_collectives(void)
{
    enum { N = 37 };
    float f[N];
    double d[N];
    for (int i = 0; i < N; i++)
        f[i] = (float)(i + rank), d[i] = 1e9 * i + rank;
    CHECK(dist_allreduce_f32(f, N) == EQM_OK, "allreduce_f32: %s", dist_error());
    CHECK(dist_allreduce_f64(d, N) == EQM_OK, "allreduce_f64: %s", dist_error());
    for (int i = 0; i < N; i++) {
        CHECK(f[i] == (float)(R * i + R * (R - 1) / 2), "allreduce_f32[%d] = %g", i, f[i]);
        CHECK(d[i] == 1e9 * i * R + R * (R - 1) / 2, "allreduce_f64[%d] = %.17g", i, d[i]);
    }
    float *g = zeros((size_t)N * R), *h = zeros((size_t)N * R), mine[N];
    for (int i = 0; i < N; i++)
        mine[i] = (float)(1000 * rank + i);
    CHECK(dist_allgather_f32(mine, N, g) == EQM_OK, "allgather: %s", dist_error());
    memcpy(h + (size_t)rank * N, mine, sizeof mine); /* in place */
    CHECK(dist_allgather_f32(h + (size_t)rank * N, N, h) == EQM_OK, "allgather in place");
    for (int r = 0; r < R; r++)
        for (int i = 0; i < N; i++) {
            CHECK(g[(size_t)r * N + i] == (float)(1000 * r + i), "allgather[%d][%d]", r, i);
            CHECK(h[(size_t)r * N + i] == (float)(1000 * r + i), "allgather in place");
        }
    /* reduce-scatter: block b of rank r's send = b * 100 + r + i; rank gets its block summed */
    for (int b = 0; b < R; b++)
        for (int i = 0; i < N; i++)
            g[(size_t)b * N + i] = (float)(b * 100 + rank + i);
    float out[N];
    CHECK(dist_reduce_scatter_f32(g, N, out) == EQM_OK, "reduce_scatter: %s", dist_error());
    for (int i = 0; i < N; i++)
        CHECK(out[i] == (float)(R * (rank * 100 + i) + R * (R - 1) / 2),
              "reduce_scatter[%d] = %g", i, out[i]);
    char msg[32] = "";
    if (rank == R - 1)
        snprintf(msg, sizeof msg, "from the last rank");
    CHECK(dist_bcast(msg, sizeof msg, R - 1) == EQM_OK, "bcast: %s", dist_error());
    CHECK(!strcmp(msg, "from the last rank"), "bcast gave '%s'", msg);
    CHECK(dist_bcast(msg, 1, R) == EQM_ERR_INVAL, "bcast from a root outside the group");
    CHECK(dist_barrier() == EQM_OK, "barrier: %s", dist_error());
    /* the ranks on this machine (make check starts them all here) and their thread share */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(dist_local_size() == R, "dist_local_size %d, expected %d (one machine)",
          dist_local_size(), R);
    CHECK(dist_threads_per_rank() >= 1 && dist_threads_per_rank() <= (online / R > 1 ? online / R : 1),
          "dist_threads_per_rank %d with %ld CPUs and %d ranks", dist_threads_per_rank(), online, R);
    /* maxima (train's stop flag): only the last rank raises it, every rank sees it */
    int flags[3] = {rank == R - 1 ? 15 : 0, -rank, rank};
    CHECK(dist_allreduce_max_int(flags, 3) == EQM_OK, "allreduce_max_int: %s", dist_error());
    CHECK(flags[0] == 15 && flags[1] == 0 && flags[2] == R - 1, "allreduce_max_int gave %d %d %d",
          flags[0], flags[1], flags[2]);
    dist_stats st = dist_stats_get();
    if (R > 1)
        CHECK(st.calls >= 6 && st.bytes > 0, "stats: %llu calls, %llu bytes",
              (unsigned long long)st.calls, (unsigned long long)st.bytes);
    else
        CHECK(st.calls == 0, "single process: no communication counted");
    free(g);
    free(h);
}

/* ---- gathered NT-Xent ---- */

/* The local rows of rank r in a global layout of `nb` blocks of nl * R rows: block q's
 * rows [r * nl, (r + 1) * nl) (SimCLR: nb = 2, EquiMod: nb = 4). */
static void take_rows(float *dst, const float *src, int nb, int nl, int D, int r)
{
    for (int q = 0; q < nb; q++)
        memcpy(dst + (size_t)q * nl * D, src + ((size_t)q * nl * R + (size_t)r * nl) * D,
               (size_t)nl * D * sizeof(float));
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* nb blocks of nl local rows (global: nb blocks of nl R rows), D wide; period in local
 * (= per-rank layout) terms, the global one is period * R. */
static void ntxent_case(int nb, int nl, int D, float tau, int period_local, float scale)
{
    const int G = nb * nl * R, B2 = nb * nl;
    float *zg = rnd((size_t)G * D, 1.5f, 0.2f); /* rows of norm ~ sqrt(D) */
    /* one near-duplicate pair so that a positive is close: magnitudes of P vary */
    memcpy(zg + (size_t)(G / 2) * D, zg, (size_t)D * sizeof(float));
    zg[(size_t)(G / 2) * D] += 0.05f;

    /* reference: the single-process op on the whole global batch */
    dist_nn_set(0);
    eqm_ntxent_shape sg = {G, D, tau, period_local ? period_local * R : 0};
    float *scr = zeros(NN()->ntxent_scratch_floats(&sg)), *dref = zeros((size_t)G * D), lref;
    CHECK(NN()->ntxent_forward(NULL, &sg, &lref, zg, scr) == EQM_OK, "reference forward");
    CHECK(NN()->ntxent_backward(NULL, &sg, dref, scale, zg, scr) == EQM_OK, "ref backward");

    float *zl = zeros((size_t)B2 * D), *dl = zeros((size_t)B2 * D), *dr = zeros((size_t)B2 * D);
    take_rows(zl, zg, nb, nl, D, rank);
    take_rows(dr, dref, nb, nl, D, rank);
    eqm_ntxent_shape sl = {B2, D, tau, period_local};

    /* without the gather (each rank alone): must miss the reference */
    float *scl = zeros(NN()->ntxent_scratch_floats(&sl)), lloc;
    CHECK(NN()->ntxent_forward(NULL, &sl, &lloc, zl, scl) == EQM_OK, "local forward");

    dist_nn_set(DIST_NN_GATHER_LOSS);
    float *scd = zeros(NN()->ntxent_scratch_floats(&sl)), ldist = -1;
    CHECK(NN()->ntxent_forward(NULL, &sl, &ldist, zl, scd) == EQM_OK, "gathered forward");
    CHECK(NN()->ntxent_backward(NULL, &sl, dl, scale, zl, scd) == EQM_OK, "gathered backward");
    dist_nn_set(0);

    /* loss: log-sum-exp over G logits of size <= 1/tau: float error ~ eps (1/tau + ln G)
     * per row, the mean keeps it */
    double tol_l = 16 * FLT_EPSILON * (1.0 / tau + log((double)G)) + 1e-5 * fabs(lref);
    CHECK(fabs((double)ldist - lref) <= tol_l, "gathered loss %.9g vs single-process %.9g "
          "(tol %.3g; nb %d nl %d period %d)", ldist, lref, tol_l, nb, nl, period_local);
    if (R > 1)
        CHECK(fabs((double)lloc - lref) > 100 * tol_l,
              "the per-rank loss %.9g should differ from the global one %.9g", lloc, lref);
    /* dz row k = scale/(G tau) (P zn + P^T zn - 2 zn[pos])_k projected, / ||z_k||: the
     * bracket has norm <= 4 (rows of P sum to 1, columns to about 1, unit rows), each term
     * carries a relative error ~ eps / tau from the logits */
    double worst = 0, miss = 0;
    for (int k = 0; k < B2; k++) {
        const float *a = dl + (size_t)k * D, *b = dr + (size_t)k * D, *z = zl + (size_t)k * D;
        double nz = 0;
        for (int j = 0; j < D; j++)
            nz += (double)z[j] * z[j];
        nz = sqrt(nz);
        double floor_k = 64 * FLT_EPSILON * (1 + 1.0 / tau) * 4 * fabs(scale) / (G * tau * nz);
        for (int j = 0; j < D; j++) {
            double got = (double)a[j] / R, want = b[j];
            double err = fabs(got - want), tol = floor_k + 1e-5 * fabs(want);
            worst = fmax(worst, err / tol);
            CHECK(err <= tol, "gathered dz[%d][%d] / R = %.9g vs single-process %.9g (tol %.3g;"
                  " nb %d nl %d period %d)", k, j, got, want, tol, nb, nl, period_local);
        }
        miss = fmax(miss, floor_k);
    }
    if (R > 1) { /* the gradient of the local op alone (no reduce-scatter) is far off */
        float *dloc = zeros((size_t)B2 * D);
        NN()->ntxent_backward(NULL, &sl, dloc, scale, zl, scl);
        for (size_t i = 0; i < (size_t)B2 * D; i++)
            dloc[i] /= R;
        CHECK(max_abs_diff(dloc, dr, (size_t)B2 * D) > 100 * miss,
              "the per-rank gradient should differ from the global one");
        free(dloc);
    }
    if (rank == 0)
        printf("check_dist: NT-Xent nb=%d nl=%d D=%d period=%d over %d ranks: loss %.7f vs "
               "%.7f, worst dz error %.3g of its tolerance\n", nb, nl, D, period_local, R,
               ldist, lref, worst);
    free(zg), free(scr), free(dref), free(zl), free(dl), free(dr), free(scl), free(scd);
}

/* ---- SyncBN ---- */

static void bn_case(int C, const int *rows, int relu, int affine)
{
    int Mg = 0, r0 = 0;
    for (int r = 0; r < R; r++) {
        if (r < rank)
            r0 += rows[r];
        Mg += rows[r];
    }
    const int m = rows[rank];
    float *x = rnd((size_t)Mg * C, 2.f, 3.f); /* mean 3, so E[x^2] - mean^2 is exercised */
    float *dout = rnd((size_t)Mg * C, 1.f, 0.1f);
    float *gamma = rnd((size_t)C, 0.5f, 1.f), *beta = rnd((size_t)C, 0.5f, 0.f);
    float *rm0 = rnd((size_t)C, 0.1f, 0.f), *rv0 = rnd((size_t)C, 0.1f, 1.f);
    eqm_bn_shape s = {Mg, C, 1, affine, relu, 1e-5f, 0.1f};
    const float *gp = affine ? gamma : NULL, *bp = affine ? beta : NULL;

    /* reference on the whole batch */
    dist_nn_set(0);
    float *out = zeros((size_t)Mg * C), *din = zeros((size_t)Mg * C), *save = zeros(2 * (size_t)C);
    float *rm = zeros(C), *rv = zeros(C), *dg = zeros(C), *db = zeros(C);
    memcpy(rm, rm0, C * sizeof(float));
    memcpy(rv, rv0, C * sizeof(float));
    CHECK(NN()->batchnorm_forward(NULL, &s, out, x, gp, bp, rm, rv, save) == EQM_OK, "bn ref");
    CHECK(NN()->batchnorm_backward(NULL, &s, din, affine ? dg : NULL, affine ? db : NULL, dout,
                                   x, out, gp, save) == EQM_OK, "bn ref backward");

    /* this rank's slice */
    eqm_bn_shape sl = s;
    sl.M = m;
    const float *xl = x + (size_t)r0 * C, *gl = dout + (size_t)r0 * C;
    float *ol = zeros((size_t)m * C), *dil = zeros((size_t)m * C), *svl = zeros(2 * (size_t)C);
    float *rml = zeros(C), *rvl = zeros(C), *dgl = zeros(C), *dbl = zeros(C);
    memcpy(rml, rm0, C * sizeof(float));
    memcpy(rvl, rv0, C * sizeof(float));
    float *olocal = zeros((size_t)m * C), *svx = zeros(2 * (size_t)C);
    CHECK(NN()->batchnorm_forward(NULL, &sl, olocal, xl, gp, bp, NULL, NULL, svx) == EQM_OK,
          "bn local");
    dist_nn_set(DIST_NN_SYNC_BN);
    CHECK(NN()->batchnorm_forward(NULL, &sl, ol, xl, gp, bp, rml, rvl, svl) == EQM_OK,
          "SyncBN forward");
    CHECK(NN()->batchnorm_backward(NULL, &sl, dil, affine ? dgl : NULL, affine ? dbl : NULL,
                                   gl, xl, ol, gp, svl) == EQM_OK, "SyncBN backward");
    dist_nn_set(0);

    /* save: mean and inv_std from double totals, rounded to float: |mean| + std scale */
    double worst = 0, missed = 0;
    for (int j = 0; j < C; j++) {
        double tm = 8 * FLT_EPSILON * (fabs(save[j]) + 1.0 / save[C + j]) + 1e-6 * fabs(save[j]);
        double ti = 8 * FLT_EPSILON * save[C + j] + 1e-6 * save[C + j];
        CHECK(fabs((double)svl[j] - save[j]) <= tm, "SyncBN mean[%d] %.9g vs %.9g", j, svl[j],
              save[j]);
        CHECK(fabs((double)svl[C + j] - save[C + j]) <= ti, "SyncBN inv_std[%d] %.9g vs %.9g",
              j, svl[C + j], save[C + j]);
        CHECK(fabs((double)rml[j] - rm[j]) <= tm, "running_mean[%d] %.9g vs %.9g", j, rml[j],
              rm[j]);
        double tv = 16 * FLT_EPSILON * fabs(rv[j]) + 1e-6 * fabs(rv[j]);
        CHECK(fabs((double)rvl[j] - rv[j]) <= tv, "running_var[%d] %.9g vs %.9g (uses the "
              "global row count)", j, rvl[j], rv[j]);
    }
    /* out = (x - mean) inv gamma + beta: error ~ eps (|x| + |mean|) inv |gamma| + |beta| */
    for (int i = 0; i < m; i++)
        for (int j = 0; j < C; j++) {
            size_t e = (size_t)i * C + j, eg = (size_t)(r0 + i) * C + j;
            double g = affine ? fabs(gamma[j]) : 1, b = affine ? fabs(beta[j]) : 0;
            double fl = 16 * FLT_EPSILON * ((fabs(x[eg]) + fabs(save[j])) * save[C + j] * g + b);
            double err = fabs((double)ol[e] - out[eg]), tol = fl + 1e-5 * fabs(out[eg]);
            worst = fmax(worst, err / tol);
            CHECK(err <= tol, "SyncBN out[%d][%d] %.9g vs whole batch %.9g (tol %.3g)", i, j,
                  ol[e], out[eg], tol);
            missed = fmax(missed, fabs((double)olocal[e] - out[eg]) / tol);
        }
    if (R > 1)
        CHECK(missed > 100, "per-rank BN should differ from the whole batch's");
    /* din = gamma inv (g - mean g - xh mean(g xh)): error ~ eps gamma inv (|g| + |mean g| +
     * |xh| |mean g xh|), bounded with the maxima over the channel */
    for (int j = 0; j < C; j++) {
        double sg = 0, sgx = 0, mxg = 0, mxh = 0;
        for (int i = 0; i < Mg; i++) {
            size_t e = (size_t)i * C + j;
            double g = relu && out[e] <= 0 ? 0 : dout[e];
            double xh = ((double)x[e] - save[j]) * save[C + j];
            sg += fabs(g), sgx += fabs(g * xh), mxg = fmax(mxg, fabs(g)), mxh = fmax(mxh, fabs(xh));
        }
        double k = (affine ? fabs(gamma[j]) : 1) * save[C + j];
        double fl = 64 * FLT_EPSILON * k * (mxg + sg / Mg + mxh * sgx / Mg);
        for (int i = 0; i < m; i++) {
            size_t e = (size_t)i * C + j, eg = (size_t)(r0 + i) * C + j;
            /* the relu mask may flip where out is within rounding of 0: skip those */
            if (relu && fabs(out[eg]) <= 16 * FLT_EPSILON * (1 + fabs(out[eg])))
                continue;
            double err = fabs((double)dil[e] - din[eg]), tol = fl + 1e-5 * fabs(din[eg]);
            worst = fmax(worst, err / tol);
            CHECK(err <= tol, "SyncBN din[%d][%d] %.9g vs whole batch %.9g (tol %.3g)", i, j,
                  dil[e], din[eg], tol);
        }
        if (affine) { /* dgamma/dbeta: local sums, summed over ranks by the gradient sum */
            double flg = 64 * FLT_EPSILON * sgx, flb = 64 * FLT_EPSILON * sg;
            double v[2] = {dgl[j], dbl[j]};
            CHECK(dist_allreduce_f64(v, 2) == EQM_OK, "allreduce");
            CHECK(fabs(v[0] - dg[j]) <= flg + 1e-5 * fabs(dg[j]), "dgamma[%d] summed over "
                  "ranks %.9g vs whole batch %.9g", j, v[0], dg[j]);
            CHECK(fabs(v[1] - db[j]) <= flb + 1e-5 * fabs(db[j]), "dbeta[%d] summed over ranks"
                  " %.9g vs whole batch %.9g", j, v[1], db[j]);
        }
    }
    if (rank == 0)
        printf("check_dist: SyncBN C=%d rows %d.. relu=%d affine=%d over %d ranks: worst error "
               "%.3g of its tolerance\n", C, rows[0], relu, affine, R, worst);
    free(x), free(dout), free(gamma), free(beta), free(rm0), free(rv0), free(out), free(din);
    free(save), free(rm), free(rv), free(dg), free(db), free(ol), free(dil), free(svl);
    free(rml), free(rvl), free(dgl), free(dbl), free(olocal), free(svx);
}

/* ---- gradient averaging (grad.c) and the identical-bytes check ---- */

/* Rank r's gradient element i is (i % 97) - 13 r + 0.25 (integers and quarters: the sum over
 * ranks and the division by R = 2, 4, .. are exact in float), so every mode must give the
 * average bit for bit. The ranges are marked in a fixed scrambled order of uneven pieces
 * (the same on every rank), which starts buckets out of index order. */
static void grad_case(size_t n, size_t bucket, int mode)
{
    float *g = zeros(n);
    for (size_t i = 0; i < n; i++)
        g[i] = (float)(i % 97) - 13.f * (float)rank + 0.25f;
    dist_grad *dg = NULL;
    char err[256] = "";
    CHECK(dist_grad_create(&dg, g, n, bucket, mode, err, sizeof err) == EQM_OK, "create: %s",
          err);
    for (int step = 0; step < 3; step++) {
        if (step)
            for (size_t i = 0; i < n; i++)
                g[i] = (float)(i % 97) - 13.f * (float)rank + 0.25f * (float)step;
        /* pieces of 1..(n/5+1) floats from the end backwards (as backward produces them) */
        size_t end = n, piece = 1;
        while (end > 0) {
            size_t m = piece < end ? piece : end;
            CHECK(dist_grad_ready(dg, end - m, m) == EQM_OK, "ready");
            end -= m;
            piece = piece * 3 % (n / 5 + 2) + 1;
        }
        CHECK(dist_grad_finish(dg, err, sizeof err) == EQM_OK, "finish: %s", err);
        float s = step ? 0.25f * (float)step : 0.25f;
        for (size_t i = 0; i < n; i++) {
            float want = (float)(i % 97) - 13.f * (float)(R - 1) / 2.f + s;
            CHECK(g[i] == want, "mode %d bucket %zu step %d: grad[%zu] = %.9g, want the "
                  "average %.9g", dist_grad_mode_of(dg), bucket, step, i, g[i], want);
        }
    }
    dist_grad_stats st = dist_grad_stats_get(dg);
    CHECK(st.steps == 3, "stats steps %llu", (unsigned long long)st.steps);
    if (R > 1)
        CHECK(st.bytes == 3 * (uint64_t)(2.0 * (R - 1) / R * (double)(n * sizeof(float))),
              "stats bytes %llu", (unsigned long long)st.bytes);
    dist_grad_destroy(dg);
    free(g);
}

static void test_grad(void)
{
    for (int mode = 0; mode < 3; mode++) {
        grad_case(1000, 64, mode);
        grad_case(1000, 1000, mode);
        grad_case(777, 100, mode); /* last bucket short */
    }
    char err[256] = "";
    float same[40], mine[40];
    for (int i = 0; i < 40; i++)
        same[i] = (float)i, mine[i] = (float)i;
    CHECK(dist_check_identical(same, sizeof same, "parameters", err, sizeof err) == EQM_OK,
          "identical bytes reported different: %s", err);
    if (rank == R - 1)
        mine[17] = nextafterf(mine[17], 100.f); /* one ulp on the last rank */
    int rc = dist_check_identical(mine, sizeof mine, "parameters", err, sizeof err);
    if (R > 1) {
        char want[32];
        snprintf(want, sizeof want, "rank(s) %d", R - 1);
        CHECK(rc == EQM_ERR_STATE && strstr(err, want) && strstr(err, "parameters"),
              "one ulp on rank %d: rc %d, '%s'", R - 1, rc, err);
    } else {
        CHECK(rc == EQM_OK, "single process: %s", err);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--built-with-mpi")) {
        printf("%d\n", dist_built_with_mpi());
        return 0;
    }
    char err[512] = "";
    if (dist_init(&argc, &argv, err, sizeof err) != EQM_OK) {
        fprintf(stderr, "check_dist: %s\n", err);
        return 1;
    }
    R = dist_size();
    rank = dist_rank();
    host_threads_init(1);
    if (R == 1) { /* the flags mean nothing in a group of one */
        dist_nn_set(DIST_NN_SYNC_BN | DIST_NN_GATHER_LOSS);
        CHECK(dist_nn_flags() == 0, "flags in force with one process");
        dist_nn_set(0);
    }
    test_collectives();
    test_grad();
    ntxent_case(2, 4, 16, 0.5f, 0, 1.f);   /* SimCLR: [a ; b], B = 4 per rank */
    ntxent_case(2, 3, 7, 0.1f, 0, 2.5f);   /* odd sizes, low temperature */
    ntxent_case(4, 3, 8, 0.2f, 0, 1.f);    /* EquiMod [yt1; yt2; yhat1; yhat2], released code */
    ntxent_case(4, 3, 8, 0.2f, 3, 1.f);    /* EquiMod, exclude_sibling (period N) */
    int eq[64], uneq[64];
    for (int r = 0; r < R && r < 64; r++)
        eq[r] = 24, uneq[r] = 5 + 7 * r;
    for (int relu = 0; relu < 2; relu++)
        for (int affine = 0; affine < 2; affine++)
            bn_case(19, eq, relu, affine);
    bn_case(70, uneq, 1, 1); /* unequal slices; more channels */
    bn_case(8, uneq, 0, 0);
    if (rank == 0)
        printf("check_dist: %d rank(s), %ld checks passed\n", R, n_checks);
    dist_finalize();
    return 0;
}
