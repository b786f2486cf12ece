/* host/eval/probe.c: ridge read-out of t from frozen features (`equimod probe`); see
 * probe.h for the protocol. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "eval/probe.h"
#include "loader/loader.h"
#include "train/run.h"

const double PROBE_LAMBDAS[PROBE_N_LAMBDAS] = {1e-5, 1e-4, 1e-3, 1e-2, 1e-1,
                                               1e0,  1e1,  1e2,  1e3};

/* ------------------------------------------------------------ linear algebra ----- */

int probe_cholesky(double *A, int d)
{
    for (int j = 0; j < d; j++) {
        double *rj = A + (size_t)j * d;
        double s = rj[j];
        for (int k = 0; k < j; k++)
            s -= rj[k] * rj[k];
        if (!(s > 0) || !isfinite(s))
            return j + 1;
        double ljj = sqrt(s);
        rj[j] = ljj;
        for (int i = j + 1; i < d; i++) {
            double *ri = A + (size_t)i * d;
            double t = ri[j];
            for (int k = 0; k < j; k++)
                t -= ri[k] * rj[k];
            ri[j] = t / ljj;
        }
    }
    return 0;
}

void probe_cholesky_solve(const double *L, int d, double *B, int k)
{
    /* forward: L Y = B */
    for (int i = 0; i < d; i++) {
        const double *li = L + (size_t)i * d;
        double *bi = B + (size_t)i * k;
        for (int j = 0; j < i; j++) {
            const double *bj = B + (size_t)j * k;
            double l = li[j];
            for (int c = 0; c < k; c++)
                bi[c] -= l * bj[c];
        }
        for (int c = 0; c < k; c++)
            bi[c] /= li[i];
    }
    /* backward: L' X = Y */
    for (int i = d - 1; i >= 0; i--) {
        double *bi = B + (size_t)i * k;
        for (int j = i + 1; j < d; j++) {
            double l = L[(size_t)j * d + i];
            const double *bj = B + (size_t)j * k;
            for (int c = 0; c < k; c++)
                bi[c] -= l * bj[c];
        }
        double lii = L[(size_t)i * d + i];
        for (int c = 0; c < k; c++)
            bi[c] /= lii;
    }
}

int probe_ridge_solve(const double *G, const double *C, int d, int k, double lam, double *W,
                      double *work)
{
    memcpy(work, G, (size_t)d * d * sizeof(double));
    for (int i = 0; i < d; i++)
        work[(size_t)i * d + i] += lam;
    if (probe_cholesky(work, d))
        return EQM_ERR_NUMERIC;
    memcpy(W, C, (size_t)d * k * sizeof(double));
    probe_cholesky_solve(work, d, W, k);
    return EQM_OK;
}

/* ------------------------------------------------------------ the read-out ------- */

void probe_fit_free(probe_fit *f)
{
    free(f->field_r2);
    f->field_r2 = NULL;
}

/* Rows of part `p`, gathered: X standardised (n_p x d), Y standardised (n_p x P). */
typedef struct part_data {
    int64_t n;
    double *X, *Y;
} part_data;

/* Standardisation constants of features and t from the fit rows (two passes, double; a
 * column constant up to float rounding of its own magnitude carries no information and
 * gets sd 0), then every row standardised into its part's X and Y. */
static void fit_standardise(const float *F, int64_t n, int d, const float *T, int P,
                            const uint8_t *part, part_data pd[3], double *mu, double *sd,
                            double *tm, double *ts, probe_fit *out)
{
    for (int64_t r = 0; r < n; r++)
        if (part[r] == PROBE_FIT) {
            for (int j = 0; j < d; j++)
                mu[j] += F[(size_t)r * d + j];
            for (int j = 0; j < P; j++)
                tm[j] += T[(size_t)r * P + j];
        }
    for (int j = 0; j < d; j++)
        mu[j] /= (double)pd[0].n;
    for (int j = 0; j < P; j++)
        tm[j] /= (double)pd[0].n;
    for (int64_t r = 0; r < n; r++)
        if (part[r] == PROBE_FIT) {
            for (int j = 0; j < d; j++) {
                double v = F[(size_t)r * d + j] - mu[j];
                sd[j] += v * v;
            }
            for (int j = 0; j < P; j++) {
                double v = T[(size_t)r * P + j] - tm[j];
                ts[j] += v * v;
            }
        }
    out->d_used = 0;
    for (int j = 0; j < d; j++) {
        sd[j] = sqrt(sd[j] / (double)pd[0].n);
        /* constant up to float rounding of its own magnitude: no information */
        if (sd[j] > 1e-6 * (fabs(mu[j]) + 1e-30) && sd[j] > 0)
            out->d_used++;
        else
            sd[j] = 0;
    }
    for (int j = 0; j < P; j++) {
        ts[j] = sqrt(ts[j] / (double)pd[0].n);
        if (!(ts[j] > 1e-6 * (fabs(tm[j]) + 1e-30) && ts[j] > 0))
            ts[j] = 0;
    }
    int64_t at[3] = {0, 0, 0};
    for (int64_t r = 0; r < n; r++) {
        part_data *q = &pd[part[r]];
        double *x = q->X + (size_t)at[part[r]] * d, *y = q->Y + (size_t)at[part[r]] * P;
        at[part[r]]++;
        for (int j = 0; j < d; j++)
            x[j] = sd[j] > 0 ? (F[(size_t)r * d + j] - mu[j]) / sd[j] : 0.0;
        for (int j = 0; j < P; j++)
            y[j] = ts[j] > 0 ? (T[(size_t)r * P + j] - tm[j]) / ts[j] : 0.0;
    }
}

/* SST of the validation and test parts about their own means, per field (0 where the
 * field does not vary on the fit rows). */
static void fit_sst(const part_data pd[3], int P, const double *ts, double *sst_v,
                    double *sst_t)
{
    for (int p = 1; p < 3; p++) {
        double *sst = p == 1 ? sst_v : sst_t;
        for (int j = 0; j < P; j++) {
            double m = 0, s = 0;
            for (int64_t r = 0; r < pd[p].n; r++)
                m += pd[p].Y[(size_t)r * P + j];
            m /= (double)pd[p].n;
            for (int64_t r = 0; r < pd[p].n; r++) {
                double v = pd[p].Y[(size_t)r * P + j] - m;
                s += v * v;
            }
            sst[j] = ts[j] > 0 ? s : 0;
        }
    }
}

/* G = Xf'Xf, C = Xf'Yf; then for every lambda the ridge weights and the validation and test
 * SSE per field (sse_v, sse_t: PROBE_N_LAMBDAS x P); ok_lam[li] = 0 where the system is not
 * positive definite. */
static int fit_lambdas(const part_data pd[3], int d, int P, double *G, double *C, double *W,
                       double *work, double *sse_v, double *sse_t, int *ok_lam, char *err,
                       size_t errlen)
{
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, d, (int)pd[0].n, 1.0, pd[0].X, d, 0.0,
                G, d);
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++)
            G[(size_t)i * d + j] = G[(size_t)j * d + i];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, P, (int)pd[0].n, 1.0, pd[0].X, d,
                pd[0].Y, P, 0.0, C, P);
    size_t maxn = (size_t)(pd[1].n > pd[2].n ? pd[1].n : pd[2].n);
    double *pred = malloc(maxn * P * sizeof(double));
    if (!pred)
        return errf(err, errlen, EQM_ERR_NOMEM, "probe: out of memory");
    for (int li = 0; li < PROBE_N_LAMBDAS; li++) {
        double lam = PROBE_LAMBDAS[li] * (double)pd[0].n;
        if (probe_ridge_solve(G, C, d, P, lam, W, work))
            continue; /* not positive definite at this lambda: not a candidate */
        ok_lam[li] = 1;
        for (int p = 1; p < 3; p++) {
            double *sse = (p == 1 ? sse_v : sse_t) + (size_t)li * P;
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)pd[p].n, P, d, 1.0,
                        pd[p].X, d, W, P, 0.0, pred, P);
            for (int64_t r = 0; r < pd[p].n; r++)
                for (int j = 0; j < P; j++) {
                    double e = pred[(size_t)r * P + j] - pd[p].Y[(size_t)r * P + j];
                    sse[j] += e * e;
                }
        }
    }
    free(pred);
    return EQM_OK;
}

/* Per group: the lambda of the best validation R^2 (ties: the larger), its test R^2 and
 * the test R^2 of each of its fields; the pooled test R^2 of all groups. */
static int fit_pick(const probe_group *groups, int n_groups, int P, const double *sse_v,
                    const double *sse_t, const double *sst_v, const double *sst_t,
                    const int *ok_lam, probe_fit *out, char *err, size_t errlen)
{
    for (int j = 0; j < P; j++)
        out->field_r2[j] = NAN;
    double all_sse = 0, all_sst = 0;
    for (int g = 0; g < n_groups; g++) {
        const probe_group *gr = &groups[g];
        if (gr->first < 0 || gr->count < 1 || gr->first + gr->count > P)
            return errf(err, errlen, EQM_ERR_INVAL, "probe: group %s: fields %d..%d of %d",
                        gr->name, gr->first, gr->first + gr->count - 1, P);
        double sv = 0, st = 0;
        for (int j = gr->first; j < gr->first + gr->count; j++)
            sv += sst_v[j], st += sst_t[j];
        if (!(sv > 0) || !(st > 0))
            continue; /* no varying field: NAN */
        int best = -1;
        double best_r2 = -INFINITY;
        for (int li = 0; li < PROBE_N_LAMBDAS; li++) {
            if (!ok_lam[li])
                continue;
            double e = 0;
            for (int j = gr->first; j < gr->first + gr->count; j++)
                e += sse_v[(size_t)li * P + j];
            double r2 = 1.0 - e / sv;
            if (r2 >= best_r2) /* ties: the larger lambda */
                best_r2 = r2, best = li;
        }
        if (best < 0)
            return errf(err, errlen, EQM_ERR_NUMERIC,
                        "probe: the ridge system is not positive definite at any lambda "
                        "(features not finite?)");
        double e = 0;
        for (int j = gr->first; j < gr->first + gr->count; j++) {
            double ej = sse_t[(size_t)best * P + j];
            e += ej;
            if (sst_t[j] > 0)
                out->field_r2[j] = 1.0 - ej / sst_t[j];
        }
        out->lambda[g] = PROBE_LAMBDAS[best];
        out->val_r2[g] = best_r2;
        out->r2[g] = 1.0 - e / st;
        all_sse += e;
        all_sst += st;
    }
    if (all_sst > 0)
        out->r2_all = 1.0 - all_sse / all_sst;
    return EQM_OK;
}

int probe_fit_groups(const float *F, int64_t n, int d, const float *T, int P,
                     const probe_group *groups, int n_groups, const uint8_t *part,
                     probe_fit *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->d = d;
    out->r2_all = NAN;
    for (int g = 0; g < PROBE_MAX_GROUPS; g++)
        out->r2[g] = out->val_r2[g] = out->lambda[g] = NAN;
    if (n_groups < 1 || n_groups > PROBE_MAX_GROUPS || P < 1 || d < 1)
        return errf(err, errlen, EQM_ERR_INVAL, "probe: %d groups of %d t fields, %d features",
                    n_groups, P, d);
    part_data pd[3] = {{0}};
    for (int64_t r = 0; r < n; r++) {
        if (part[r] > PROBE_TEST)
            return errf(err, errlen, EQM_ERR_INVAL, "probe: row %lld has part %d",
                        (long long)r, part[r]);
        pd[part[r]].n++;
    }
    static const char *pname[3] = {"fit", "validation", "test"};
    for (int p = 0; p < 3; p++)
        if (pd[p].n < 2)
            return errf(err, errlen, EQM_ERR_INVAL,
                        "probe: the %s part has %lld rows (at least 2 needed): use more images",
                        pname[p], (long long)pd[p].n);
    out->n_fit = pd[0].n, out->n_val = pd[1].n, out->n_test = pd[2].n;
    int rc = EQM_OK;
    double *mu = calloc((size_t)d, sizeof(double)), *sd = calloc((size_t)d, sizeof(double));
    double *tm = calloc((size_t)P, sizeof(double)), *ts = calloc((size_t)P, sizeof(double));
    double *G = malloc((size_t)d * d * sizeof(double)), *work = malloc((size_t)d * d * sizeof(double));
    double *C = malloc((size_t)d * P * sizeof(double)), *W = malloc((size_t)d * P * sizeof(double));
    out->field_r2 = malloc((size_t)P * sizeof(double));
    /* per lambda, per field: validation and test SSE; SST per field and part */
    double *sse_v = calloc((size_t)PROBE_N_LAMBDAS * P, sizeof(double));
    double *sse_t = calloc((size_t)PROBE_N_LAMBDAS * P, sizeof(double));
    double *sst_v = calloc((size_t)P, sizeof(double)), *sst_t = calloc((size_t)P, sizeof(double));
    int ok_lam[PROBE_N_LAMBDAS] = {0};
    for (int p = 0; p < 3; p++) {
        pd[p].X = malloc((size_t)pd[p].n * d * sizeof(double));
        pd[p].Y = malloc((size_t)pd[p].n * P * sizeof(double));
    }
    if (!mu || !sd || !tm || !ts || !G || !work || !C || !W || !out->field_r2 || !sse_v ||
        !sse_t || !sst_v || !sst_t || !pd[0].X || !pd[0].Y || !pd[1].X || !pd[1].Y ||
        !pd[2].X || !pd[2].Y) {
        rc = errf(err, errlen, EQM_ERR_NOMEM, "probe: out of memory (%lld rows x %d features)",
                  (long long)n, d);
        goto out;
    }
    fit_standardise(F, n, d, T, P, part, pd, mu, sd, tm, ts, out);
    fit_sst(pd, P, ts, sst_v, sst_t);
    rc = fit_lambdas(pd, d, P, G, C, W, work, sse_v, sse_t, ok_lam, err, errlen);
    if (!rc)
        rc = fit_pick(groups, n_groups, P, sse_v, sse_t, sst_v, sst_t, ok_lam, out, err,
                      errlen);
out:
    free(mu), free(sd), free(tm), free(ts), free(G), free(work), free(C), free(W);
    free(sse_v), free(sse_t), free(sst_v), free(sst_t);
    for (int p = 0; p < 3; p++)
        free(pd[p].X), free(pd[p].Y);
    if (rc)
        probe_fit_free(out);
    return rc;
}

/* ------------------------------------------------------------ the command's work - */

static double probe_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void probe_report_free(probe_report *r)
{
    free(r->data_desc);
    if (r->field_names)
        for (int i = 0; i < r->P; i++)
            free(r->field_names[i]);
    free(r->field_names);
    free(r->field_group);
    probe_fit_free(&r->backbone);
    probe_fit_free(&r->embedding);
    memset(r, 0, sizeof *r);
}

/* The groups of t: consecutive fields recorded by one augmentation. */
static int t_groups(const eqm_loader *l, probe_report *r, char *err, size_t errlen)
{
    r->P = loader_t_dim(l);
    if (r->P < 1)
        return errf(err, errlen, EQM_ERR_INVAL,
                    "probe: the [views] view1 pipeline records no t field (nothing to "
                    "predict)");
    r->field_names = calloc((size_t)r->P, sizeof(char *));
    r->field_group = calloc((size_t)r->P, sizeof(int));
    if (!r->field_names || !r->field_group)
        return errf(err, errlen, EQM_ERR_NOMEM, "probe: out of memory");
    for (int i = 0; i < r->P; i++) {
        const char *pl = NULL, *sec = loader_t_group(l, i, &pl), *nm = loader_t_name(l, i);
        r->field_names[i] = strdup(nm ? nm : "?");
        if (!r->field_names[i])
            return errf(err, errlen, EQM_ERR_NOMEM, "probe: out of memory");
        if (!sec)
            sec = "?";
        probe_group *g = r->n_groups ? &r->groups[r->n_groups - 1] : NULL;
        if (!g || strcmp(g->name, sec)) {
            if (r->n_groups == PROBE_MAX_GROUPS)
                return errf(err, errlen, EQM_ERR_INVAL,
                            "probe: t has more than %d augmentation groups", PROBE_MAX_GROUPS);
            g = &r->groups[r->n_groups++];
            snprintf(g->name, sizeof g->name, "%s", sec);
            snprintf(g->plugin, sizeof g->plugin, "%s", pl ? pl : "?");
            g->first = i;
            g->count = 0;
        }
        g->count++;
        r->field_group[i] = r->n_groups - 1;
    }
    return EQM_OK;
}

/* The model of the probe: backbone and, when the method can give its embedding, the
 * method, restored from the source's checkpoint (or initialised from [run] seed). */
static int probe_model(const model_source *ms, const char *source, const eqm_registry *reg,
                       int h, int w, int c, int P, int max_rows, eqm_model *m,
                       void *opts[EQM_SLOT_COUNT], probe_report *r, char *err, size_t errlen)
{
    const eqm_plugin *mp = NULL;
    void *mo = NULL;
    int with_method = 0;
    if (config_has_section(ms->cfg, "method")) {
        int rc = config_bind_plugin(ms->cfg, reg, "method", EQM_KIND_METHOD, &mp, &mo, err,
                                    errlen);
        free(mo);
        if (rc)
            return rc;
        snprintf(r->method, sizeof r->method, "%s", mp->desc.name);
        with_method = (mp->ops.module.flags & EQM_MODULE_EMBEDDING) != 0;
    }
    int rc = build_model(ms->cfg, reg, h, w, c, P, with_method, 0, max_rows, m, opts, err,
                         errlen);
    if (rc)
        return rc;
    r->has_embedding = with_method;
    if (ms->ckpt[0]) {
        rc = train_restore_slot(m, EQM_SLOT_BACKBONE, ms->ckpt, err, errlen);
        if (!rc && with_method)
            rc = train_restore_slot(m, EQM_SLOT_METHOD, ms->ckpt, err, errlen);
        snprintf(r->what, sizeof r->what, "%s", ms->ckpt);
    } else {
        run_opts ro;
        memset(&ro, 0, sizeof ro);
        rc = config_bind(ms->cfg, "run", run_spec, &ro, NULL, err, errlen);
        if (!rc)
            rc = model_init(m, (uint64_t)ro.seed, err, errlen);
        snprintf(r->what, sizeof r->what, "%s (untrained, [run] seed %lld)", source,
                 (long long)ro.seed);
    }
    return rc;
}

/* Frozen features of one batch's 2N view rows (view 1 then view 2, as x1/x2 lie): the
 * backbone's into h; with an embedding (z not NULL) the method's embedding of h into z. */
static int forward_views(eqm_module_inst *bb, eqm_module_inst *me, const float *x, int N,
                         float *h, float *z, char *err, size_t errlen)
{
    eqm_module_io io = {0};
    io.size = sizeof io;
    io.rows = 2 * N;
    io.n_views = 2;
    io.train = 0;
    io.in = x;
    io.out = h;
    int rc = model_call(bb, 0, &io, "forward (probe)", err, errlen);
    if (rc)
        return rc;
    if (!z)
        return EQM_OK;
    eqm_module_io mio = {0};
    mio.size = sizeof mio;
    mio.rows = 2 * N;
    mio.n_views = 2;
    mio.train = 0;
    mio.in = h;
    mio.out = z;
    return model_call(me, 0, &mio, "embedding forward (probe)", err, errlen);
}

/* The parts: a seeded random assignment of the images, 60 / 20 / 20 (fit / validation /
 * test), both views of an image in the same part; part[] follows the feature rows (image i
 * in batch i / batch at row i % batch, its second view N rows later). -1 out of memory. */
static int assign_parts(int64_t imgs, int batch, uint64_t seed, uint8_t *part,
                        probe_report *r)
{
    int64_t *perm = malloc(((size_t)imgs + 1) * sizeof(int64_t));
    if (!perm)
        return -1;
    uint64_t s = seed ^ 0x70726f6265ull; /* "probe" */
    for (int64_t i = 0; i < imgs; i++)
        perm[i] = i;
    for (int64_t i = imgs - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&s) % (uint64_t)(i + 1));
        int64_t tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    int64_t n_fit = imgs * 6 / 10, n_val = imgs * 2 / 10;
    for (int64_t k = 0; k < imgs; k++) {
        int64_t i = perm[k];
        uint8_t p = k < n_fit ? PROBE_FIT : k < n_fit + n_val ? PROBE_VAL : PROBE_TEST;
        int64_t b0 = (i / batch) * batch, nb = imgs - b0 < batch ? imgs - b0 : batch;
        part[2 * b0 + (i - b0)] = p;
        part[2 * b0 + nb + (i - b0)] = p;
    }
    free(perm);
    r->fit_images = n_fit, r->val_images = n_val, r->test_images = imgs - n_fit - n_val;
    return 0;
}

int probe_run(const char *source, const eqm_registry *reg, char **sets, int n_sets,
              const probe_opts *o, probe_report *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    const char *split = o->split ? o->split : "test";
    if (strcmp(split, "test") && strcmp(split, "train"))
        return errf(err, errlen, EQM_ERR_INVAL, "probe: --split %s: expected train or test",
                    split);
    snprintf(r->split, sizeof r->split, "%s", split);
    int64_t want = o->images > 0 ? o->images : PROBE_DEFAULT_IMAGES;
    int batch = o->batch > 0 ? o->batch : 64;
    model_source ms;
    int rc = model_source_open(&ms, source, sets, n_sets, err, errlen);
    if (rc)
        return rc;
    r->step = ms.step;
    train_opts to;
    memset(&to, 0, sizeof to);
    rc = config_bind(ms.cfg, "train", train_section_spec, &to, NULL, err, errlen);
    if (!rc)
        rc = host_threads_check("train.threads", to.threads, err, errlen);
    if (rc) {
        model_source_close(&ms);
        return rc;
    }
    if (to.threads > 0)
        host_threads_init((int)to.threads);
    r->equimod = to.equimod;
    eqm_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.mode = EQM_LOADER_VIEWS;
    lo.batch_size = batch;
    lo.shuffle_set = 1;
    lo.shuffle = 0;
    lo.drop_last_set = 1;
    lo.drop_last = 0;
    lo.limit = want;
    eqm_loader *ld = NULL;
    eqm_model m;
    model_reset(&m);
    void *opts[EQM_SLOT_COUNT] = {0};
    float *F = NULL, *Z = NULL, *T = NULL;
    uint8_t *part = NULL;
    double t0 = probe_now_s();
    rc = loader_open(&ld, ms.cfg, reg, split, &lo, err, errlen);
    if (rc)
        goto out;
    eqm_loader_info li;
    loader_info(ld, &li);
    if (li.source_desc)
        r->data_desc = strdup(li.source_desc);
    if ((rc = t_groups(ld, r, err, errlen)))
        goto out;
    int64_t cap = li.n_samples > 0 ? li.n_samples : want;
    if ((rc = probe_model(&ms, source, reg, li.h, li.w, li.c, r->P, 2 * batch, &m, opts, r,
                          err, errlen)))
        goto out;
    const int D = m.mod[EQM_SLOT_BACKBONE].out_dim;
    eqm_module_inst *bb = &m.mod[EQM_SLOT_BACKBONE], *me = &m.mod[EQM_SLOT_METHOD];
    int Zd = r->has_embedding ? me->out_dim : 0; /* ops->out_dim, model_finalize */
    if (r->has_embedding && Zd <= 0) {
        rc = errf(err, errlen, EQM_ERR_STATE, "probe: method/%s (%s) declares "
                  "EQM_MODULE_EMBEDDING but its out_dim %s %d: it must give the width of the "
                  "embedding z (kinds.h)", r->method, me->plugin->path,
                  me->ops->out_dim ? "returns" : "is NULL, width", Zd);
        goto out;
    }
    F = malloc((size_t)cap * 2 * D * sizeof(float));
    T = malloc((size_t)cap * 2 * r->P * sizeof(float));
    Z = Zd ? malloc((size_t)cap * 2 * Zd * sizeof(float)) : NULL;
    if (!F || !T || (Zd && !Z)) {
        rc = errf(err, errlen, EQM_ERR_NOMEM, "probe: out of memory (%lld images)",
                  (long long)cap);
        goto out;
    }
    int64_t imgs = 0;
    rc = loader_start_epoch(ld, 0);
    while (rc == EQM_OK && imgs < want) {
        eqm_batch *b = NULL;
        rc = loader_next(ld, &b);
        if (rc == EQM_EOF) {
            rc = EQM_OK;
            break;
        }
        if (rc) {
            errf(err, errlen, rc, "%s", loader_error(ld));
            break;
        }
        int N = b->n;
        if (imgs + N > cap)
            N = (int)(cap - imgs);
        if (N > 0 && N < b->n) { /* never for a random-access split: cap is its size */
            loader_release(ld, b);
            break;
        }
        rc = forward_views(bb, me, b->x1, N, F + (size_t)imgs * 2 * D,
                           Zd ? Z + (size_t)imgs * 2 * Zd : NULL, err, errlen);
        memcpy(T + (size_t)imgs * 2 * r->P, b->t1, (size_t)2 * N * r->P * sizeof(float));
        imgs += N;
        loader_release(ld, b);
    }
    if (rc)
        goto out;
    r->extract_s = probe_now_s() - t0;
    r->images = imgs;
    part = malloc((size_t)imgs * 2 + 1);
    if (!part || assign_parts(imgs, batch, o->seed, part, r)) {
        rc = errf(err, errlen, EQM_ERR_NOMEM, "probe: out of memory");
        goto out;
    }
    double t1 = probe_now_s();
    rc = probe_fit_groups(F, imgs * 2, D, T, r->P, r->groups, r->n_groups, part, &r->backbone,
                          err, errlen);
    if (!rc && Zd)
        rc = probe_fit_groups(Z, imgs * 2, Zd, T, r->P, r->groups, r->n_groups, part,
                              &r->embedding, err, errlen);
    r->fit_s = probe_now_s() - t1;
out:
    free(F), free(Z), free(T), free(part);
    if (ld)
        loader_destroy(ld);
    model_destroy(&m);
    free_opts(opts);
    model_source_close(&ms);
    if (rc)
        probe_report_free(r);
    return rc;
}

/* ------------------------------------------------------------ output ------------- */

const char *probe_group_label(const probe_group *g)
{
    return strncmp(g->name, "augment.", 8) ? g->name : g->name + 8;
}

static void r2_cell(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, " %.3f |", v);
    else
        fprintf(f, " n/a |");
}

void probe_write_table(const probe_report *r, FILE *f)
{
    fprintf(f, "What the representation keeps of t: ridge regression from frozen features of\n"
               "augmented views to each group of t fields, R^2 on held-out images (1 = read\n"
               "out perfectly, 0 = no better than the mean).\n\n");
    fprintf(f, "- model: %s (step %lld), method %s%s\n", r->what, (long long)r->step,
            r->method[0] ? r->method : "?", r->equimod ? " + EquiMod" : "");
    fprintf(f, "- data: %s split (%s), %lld images x 2 views ([views] view1, view2; epoch 0): "
               "fit %lld, validation %lld, test %lld images\n",
            r->split, r->data_desc ? r->data_desc : "?", (long long)r->images,
            (long long)r->fit_images, (long long)r->val_images, (long long)r->test_images);
    fprintf(f, "- features standardised on the fit images; lambda per group (grid 1e-5..1e3, "
               "times n_fit) by validation R^2\n\n");
    fprintf(f, "| t group | plugin | fields | backbone R^2 | embedding R^2 |\n");
    fprintf(f, "|---|---|---|---|---|\n");
    for (int g = 0; g < r->n_groups; g++) {
        const probe_group *gr = &r->groups[g];
        fprintf(f, "| %s | %s | %d |", probe_group_label(gr), gr->plugin, gr->count);
        r2_cell(f, r->backbone.r2[g]);
        if (r->has_embedding)
            r2_cell(f, r->embedding.r2[g]);
        else
            fprintf(f, " - |");
        fputc('\n', f);
    }
    fprintf(f, "| all | | %d |", r->P);
    r2_cell(f, r->backbone.r2_all);
    if (r->has_embedding)
        r2_cell(f, r->embedding.r2_all);
    else
        fprintf(f, " - |");
    fprintf(f, "\n\nbackbone: %d features (%d vary); ", r->backbone.d, r->backbone.d_used);
    if (r->has_embedding)
        fprintf(f, "embedding (method/%s projection head): %d features (%d vary)\n", r->method,
                r->embedding.d, r->embedding.d_used);
    else
        fprintf(f, "embedding: not available (method/%s has no embedding forward, "
                   "EQM_MODULE_EMBEDDING)\n", r->method[0] ? r->method : "?");
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

static void json_fit(FILE *f, const probe_report *r, const probe_fit *p)
{
    fprintf(f, "{\"dim\": %d, \"dims_varying\": %d, \"rows\": {\"fit\": %lld, "
               "\"validation\": %lld, \"test\": %lld},\n",
            p->d, p->d_used, (long long)p->n_fit, (long long)p->n_val, (long long)p->n_test);
    static const char *keys[3] = {"r2", "val_r2", "lambda"};
    for (int k = 0; k < 3; k++) {
        const double *v = k == 0 ? p->r2 : k == 1 ? p->val_r2 : p->lambda;
        fprintf(f, "    \"%s\": {", keys[k]);
        for (int g = 0; g < r->n_groups; g++) {
            fprintf(f, "%s", g ? ", " : "");
            json_str(f, probe_group_label(&r->groups[g]));
            fprintf(f, ": ");
            json_num(f, v[g]);
        }
        if (k == 0) {
            fprintf(f, ", \"all\": ");
            json_num(f, p->r2_all);
        }
        fprintf(f, "},\n");
    }
    fprintf(f, "    \"field_r2\": [");
    for (int i = 0; i < r->P; i++) {
        fprintf(f, "%s", i ? ", " : "");
        json_num(f, p->field_r2 ? p->field_r2[i] : NAN);
    }
    fprintf(f, "]}");
}

int probe_write_json(const probe_report *r, const char *path, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return errf(err, errlen, EQM_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "{\"probe\": 1,\n  \"model\": ");
    json_str(f, r->what);
    fprintf(f, ", \"step\": %lld, \"method\": ", (long long)r->step);
    json_str(f, r->method);
    fprintf(f, ", \"equimod\": %s,\n  \"data\": {\"split\": ", r->equimod ? "true" : "false");
    json_str(f, r->split);
    fprintf(f, ", \"source\": ");
    json_str(f, r->data_desc ? r->data_desc : "");
    fprintf(f, ", \"images\": %lld, \"views_per_image\": 2, \"fit_images\": %lld, "
               "\"val_images\": %lld, \"test_images\": %lld},\n",
            (long long)r->images, (long long)r->fit_images, (long long)r->val_images,
            (long long)r->test_images);
    fprintf(f, "  \"protocol\": \"ridge regression of each t group from features standardised "
               "on the fit images; targets standardised likewise; lambda (times n_fit) per "
               "group from the grid by validation R^2; R^2 on the test images\",\n");
    fprintf(f, "  \"lambda_grid\": [");
    for (int i = 0; i < PROBE_N_LAMBDAS; i++)
        fprintf(f, "%s%g", i ? ", " : "", PROBE_LAMBDAS[i]);
    fprintf(f, "],\n  \"groups\": [");
    for (int g = 0; g < r->n_groups; g++) {
        const probe_group *gr = &r->groups[g];
        fprintf(f, "%s\n    {\"name\": ", g ? "," : "");
        json_str(f, probe_group_label(gr));
        fprintf(f, ", \"section\": ");
        json_str(f, gr->name);
        fprintf(f, ", \"plugin\": ");
        json_str(f, gr->plugin);
        fprintf(f, ", \"fields\": [");
        for (int i = gr->first; i < gr->first + gr->count; i++) {
            fprintf(f, "%s", i > gr->first ? ", " : "");
            json_str(f, r->field_names[i]);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "],\n  \"backbone\": ");
    json_fit(f, r, &r->backbone);
    fprintf(f, ",\n  \"embedding\": ");
    if (r->has_embedding)
        json_fit(f, r, &r->embedding);
    else
        fprintf(f, "null");
    fprintf(f, "\n}\n");
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, path)) {
        remove(tmp);
        return errf(err, errlen, EQM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    return EQM_OK;
}
