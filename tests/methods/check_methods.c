/* tests/methods/check_methods.c: the simclr, byol and equimod plugins, loaded from their
 * real .so files, against PyTorch fixtures and finite differences.
 *
 * Suites:
 *   tables   tensor names/shapes/flags as PyTorch names them, module flags, init values
 *   torch    tests/methods/fixtures/NAME.txt (gen_fixtures.py): loss, dL/dh, every parameter
 *            gradient, BN running statistics after the forward, metrics (equivariance gain)
 *   fd       central finite differences of the loss w.r.t. h (directional over all of h and
 *            per element) and w.r.t. every trainable tensor (directional), float32
 *   errors   bad options, row counts, call order
 * Dimension legend: N images, D width of h, P width of t.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "harness.h"
#include "train/optim.h"

/* ------------------------------------------------------------------ helpers ------ */

static void open_or_fail(hmod *m, int kind, const char *name, const char *const *ov,
                         int in_dim, int p_dim, int rows)
{
    char err[512];
    int rc = hmod_open(m, kind, name, ov, in_dim, p_dim, rows, err, sizeof err);
    ck_assert_msg(rc == EQM_OK, "%s", err);
}

static void fill_normal(float *x, size_t n, uint64_t seed)
{
    eqm_rng r;
    host_api()->rng_seed(&r, seed, 9, 9, 9);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)host_api()->rng_normal(&r);
}

/* |a[i] - r[i]| <= rtol * max(max_j |r[j]|, mag[i]) + atol for every i.
 * mag (may be NULL) is the magnitude of the terms summed into each element, from the
 * fixture (mag.<name>, see gen_fixtures.py): a float32 sum whose terms are right to a
 * relative error rtol is right to rtol * mag, so an element that cancels to zero up to
 * rounding (a bias before batch norm: 1.7e-16 in float64, -1.2e-7 in float32 under
 * OPENBLAS_CORETYPE=Haswell) keeps a floor set by what entered the sum, not by itself. */
static void expect_close_mag(const char *what, const float *a, const float *r, const float *mag,
                             size_t n, double rtol, double atol)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(r[i]));
    double worst_excess = -INFINITY, worst_tol = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double tol = rtol * fmax(scale, mag ? fabs(mag[i]) : 0.0) + atol;
        double excess = fabs((double)a[i] - r[i]) - tol;
        if (!(excess <= worst_excess)) {
            worst_excess = excess;
            worst = i;
            worst_tol = tol;
        }
    }
    ck_assert_msg(worst_excess <= 0,
                  "%s: |diff| %.3g at [%zu] (got %.7g, want %.7g), scale %.3g, magnitude "
                  "%.3g, tolerance %.3g",
                  what, fabs((double)a[worst] - r[worst]), worst, (double)a[worst],
                  (double)r[worst], scale, mag ? (double)mag[worst] : 0.0, worst_tol);
}

static void expect_close(const char *what, const float *a, const float *r, size_t n,
                         double rtol, double atol)
{
    expect_close_mag(what, a, r, NULL, n, rtol, atol);
}

static double metric(const eqm_module_io *io, const char *name)
{
    for (int i = 0; i < io->n_metrics; i++)
        if (!strcmp(io->metrics[i].name, name))
            return io->metrics[i].value;
    ck_abort_msg("metric %s not reported", name);
    return NAN;
}

static int kind_of(const char *plugin)
{
    return strcmp(plugin, "equimod") ? EQM_KIND_METHOD : EQM_KIND_EQUIMOD;
}

/* ------------------------------------------------------------------ tables ------- */

static void expect_tensor(const hmod *m, const char *name, int d0, int d1, uint32_t flags)
{
    int i = hmod_find(m, name);
    ck_assert_msg(i >= 0, "tensor %s missing", name);
    ck_assert_int_eq(m->info[i].shape[0], d0);
    if (d1)
        ck_assert_int_eq(m->info[i].shape[1], d1);
    ck_assert_int_eq(m->info[i].ndim, d1 ? 2 : 1);
    ck_assert_msg(m->info[i].flags == flags, "%s: flags %u, want %u", name,
                  m->info[i].flags, flags);
}

START_TEST(test_simclr_table)
{
    hmod m;
    open_or_fail(&m, EQM_KIND_METHOD, "simclr", NULL, 512, 0, 8);
    /* Linear 0, BN 1, ReLU 2, Linear 3, BN 4, ReLU 5, Linear 6, BN 7 (affine=False) */
    ck_assert_int_eq(m.n, 1 + 4 + 1 + 4 + 1 + 2);
    expect_tensor(&m, "g.0.weight", 2048, 512, EQM_T_DECAY);
    expect_tensor(&m, "g.1.weight", 2048, 0, 0);
    expect_tensor(&m, "g.1.bias", 2048, 0, 0);
    expect_tensor(&m, "g.1.running_mean", 2048, 0, EQM_T_BUFFER);
    expect_tensor(&m, "g.4.running_var", 2048, 0, EQM_T_BUFFER);
    expect_tensor(&m, "g.6.weight", 128, 2048, EQM_T_DECAY);
    expect_tensor(&m, "g.7.running_mean", 128, 0, EQM_T_BUFFER);
    ck_assert_int_eq(hmod_find(&m, "g.6.bias"), -1);
    ck_assert_int_eq(hmod_find(&m, "g.7.weight"), -1);
    ck_assert_int_eq(m.ops->out_dim(m.self), 128);
    ck_assert_int_eq((int)m.ops->flags, EQM_MODULE_EMBEDDING);
    /* PyTorch init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BN 1/0, running 0/1 */
    ck_assert_int_eq(hmod_init(&m, 5), EQM_OK);
    int w = hmod_find(&m, "g.0.weight");
    double bound = 1 / sqrt(512.0), s2 = 0, mx = 0;
    for (size_t k = 0; k < m.count[w]; k++) {
        s2 += (double)m.params[w][k] * m.params[w][k];
        mx = fmax(mx, fabs(m.params[w][k]));
    }
    ck_assert(mx <= bound && mx > 0.99 * bound);
    ck_assert_double_eq_tol(sqrt(s2 / (double)m.count[w]), bound / sqrt(3.0), 0.01 * bound);
    ck_assert_float_eq(m.params[hmod_find(&m, "g.1.weight")][7], 1.0f);
    ck_assert_float_eq(m.params[hmod_find(&m, "g.1.bias")][7], 0.0f);
    ck_assert_float_eq(m.params[hmod_find(&m, "g.7.running_var")][3], 1.0f);
    ck_assert_float_eq(m.params[hmod_find(&m, "g.7.running_mean")][3], 0.0f);
    hmod_close(&m);
}
END_TEST

START_TEST(test_byol_table)
{
    hmod m;
    open_or_fail(&m, EQM_KIND_METHOD, "byol", NULL, 512, 0, 8);
    ck_assert_int_eq((int)m.ops->flags, EQM_MODULE_NEEDS_TARGET | EQM_MODULE_EMBEDDING);
    expect_tensor(&m, "proj.0.weight", 4096, 512, EQM_T_DECAY | EQM_T_EMA);
    expect_tensor(&m, "proj.1.weight", 4096, 0, EQM_T_EMA);
    expect_tensor(&m, "proj.1.running_var", 4096, 0, EQM_T_EMA | EQM_T_BUFFER);
    expect_tensor(&m, "proj.3.weight", 256, 4096, EQM_T_DECAY | EQM_T_EMA);
    expect_tensor(&m, "proj.3.bias", 256, 0, EQM_T_EMA);
    expect_tensor(&m, "pred.0.weight", 4096, 256, EQM_T_DECAY);
    expect_tensor(&m, "pred.3.weight", 256, 4096, EQM_T_DECAY);
    expect_tensor(&m, "pred.3.bias", 256, 0, 0);
    ck_assert_int_eq(hmod_find(&m, "proj.4.running_mean"), -1); /* no BN after the last */
    ck_assert_int_eq(m.ops->out_dim(m.self), 256);
    /* the option the host's EMA schedule reads */
    const eqm_param_spec *p = m.desc->params;
    while (p->key && strcmp(p->key, "ema_base"))
        p++;
    ck_assert_msg(p->key && p->type == EQM_PARAM_FLOAT, "option ema_base (FLOAT) missing");
    ck_assert_double_eq(*(const double *)((const char *)m.opts + p->offset), 0.996);
    /* init starts the target as a copy of the online projector */
    ck_assert_int_eq(hmod_init(&m, 5), EQM_OK);
    int w = hmod_find(&m, "proj.3.weight");
    ck_assert(!memcmp(m.params[w], m.target[w], m.count[w] * sizeof(float)));
    ck_assert_ptr_null(m.target[hmod_find(&m, "pred.0.weight")]);
    hmod_close(&m);
}
END_TEST

/* ABI 1.2: BYOL's EMA momentum comes from its ops table (target_momentum), equal bit for
 * bit to the schedule the host applied before from the option read by key. */
START_TEST(test_byol_target_momentum)
{
    hmod m;
    static const char *const over[] = {"ema_base", "0.99", NULL};
    open_or_fail(&m, EQM_KIND_METHOD, "byol", over, 64, 0, 8);
    ck_assert_msg(m.ops->target_momentum != NULL, "byol has no target_momentum (ABI 1.2)");
    const int64_t ks[] = {0, 1, 37, 99, 100, 150};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        double a = m.ops->target_momentum(m.self, ks[i], 100);
        double b = sched_ema_tau(ks[i], 100, 0.99);
        ck_assert_msg(!memcmp(&a, &b, sizeof a), "k=%lld: %.17g vs %.17g", (long long)ks[i], a,
                      b);
    }
    ck_assert_double_eq(m.ops->target_momentum(m.self, 5, 0), 0.99);
    hmod_close(&m);
}
END_TEST

START_TEST(test_equimod_table)
{
    hmod m;
    open_or_fail(&m, EQM_KIND_EQUIMOD, "equimod", NULL, 512, 15, 12);
    expect_tensor(&m, "proj_eq.0.weight", 2048, 512, EQM_T_DECAY);
    expect_tensor(&m, "proj_eq.6.weight", 128, 2048, EQM_T_DECAY);
    expect_tensor(&m, "proj_eq.7.running_mean", 128, 0, EQM_T_BUFFER);
    ck_assert_int_eq(hmod_find(&m, "proj_eq.7.weight"), -1);  /* affine=False */
    expect_tensor(&m, "proj_t.0.weight", 128, 15, EQM_T_DECAY);
    expect_tensor(&m, "proj_t.1.weight", 128, 0, 0);         /* affine BN, no ReLU */
    expect_tensor(&m, "proj_t.1.bias", 128, 0, 0);
    expect_tensor(&m, "pred_eq.0.weight", 128, 256, EQM_T_DECAY); /* [y0, p] -> 128 */
    expect_tensor(&m, "pred_eq.1.running_var", 128, 0, EQM_T_BUFFER);
    ck_assert_int_eq(hmod_find(&m, "pred_eq.1.weight"), -1);
    ck_assert_int_eq(hmod_find(&m, "pred_eq.0.bias"), -1);
    ck_assert_int_eq(m.n, 13 + 5 + 3);
    ck_assert_int_eq(m.ops->out_dim(m.self), 128);
    hmod_close(&m);
}
END_TEST

/* ------------------------------------------------------------------ torch -------- */

static void load_fixture(hfx *f, const char *name)
{
    char path[1024], err[1024];
    const char *src = getenv("EQM_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/methods/fixtures/%s.txt", src ? src : EQM_SRCDIR,
             name);
    ck_assert_msg(hfx_load(f, path, err, sizeof err) == EQM_OK, "%s", err);
}

static const float *fx_tensor(const hfx *f, const char *name, size_t n)
{
    const hfx_entry *e = hfx_get(f, 't', name);
    ck_assert_msg(e, "fixture has no %s", name);
    ck_assert_msg(n == 0 || (size_t)e->n == n, "fixture %s: %d values, want %zu", name, e->n,
                  n);
    return e->v;
}

/* The fixture's mag.<name> tensor, or NULL when it has none. */
static const float *fx_mag(const hfx *f, const char *name, size_t n)
{
    char key[220];
    snprintf(key, sizeof key, "mag.%s", name);
    return hfx_get(f, 't', key) ? fx_tensor(f, key, n) : NULL;
}

static void run_fixture(const char *fixture, const char *plugin)
{
    hfx f;
    load_fixture(&f, fixture);
    const char *ov[65];
    hfx_options(&f, ov, 32);
    int D = hfx_dim(&f, "in_dim", 0), P = hfx_dim(&f, "p_dim", 0), rows = hfx_dim(&f, "rows", 0);
    hmod m;
    open_or_fail(&m, kind_of(plugin), plugin, ov, D, P, rows);
    char key[200];
    for (int i = 0; i < m.n; i++) {
        snprintf(key, sizeof key, "param.%s", m.info[i].name);
        memcpy(m.params[i], fx_tensor(&f, key, m.count[i]), m.count[i] * sizeof(float));
        if (m.target[i]) {
            snprintf(key, sizeof key, "target.%s", m.info[i].name);
            memcpy(m.target[i], fx_tensor(&f, key, m.count[i]), m.count[i] * sizeof(float));
        }
    }
    int n_in = rows; /* rows of h: 2N (method) or 3N (equimod) */
    const float *in = fx_tensor(&f, "in", (size_t)n_in * D);
    const float *in_target = hfx_get(&f, 't', "in_target") ? fx_tensor(&f, "in_target", 0) : NULL;
    const float *t = P ? fx_tensor(&f, "t", (size_t)(rows / 3) * 2 * P) : NULL;
    eqm_module_io io;
    hmod_zero_grads(&m);
    ck_assert_msg(hmod_forward(&m, &io, rows, 1, in, in_target, t) == EQM_OK, "%s",
                  hmod_error(&m));
    float loss = (float)io.loss;
    expect_close("loss", &loss, fx_tensor(&f, "loss", 1), 1, 2e-6, 1e-6);
    int n_metric = 0;
    for (int i = 0; i < f.n; i++)
        if (f.e[i].kind == 't' && !strncmp(f.e[i].name, "metric.", 7)) {
            float v = (float)metric(&io, f.e[i].name + 7);
            expect_close(f.e[i].name, &v, f.e[i].v, 1, 1e-5, 1e-6);
            n_metric++;
        }
    ck_assert_int_gt(n_metric, 0);
    if (!strcmp(plugin, "equimod")) { /* io->loss = lambda * L_equi */
        const hfx_entry *lam = hfx_get(&f, 'o', "lambda");
        ck_assert_double_eq_tol(io.loss, atof(lam->text) * metric(&io, "l_equi"), 1e-9);
    }
    float *din = calloc((size_t)n_in * D, sizeof(float));
    ck_assert_ptr_nonnull(din);
    ck_assert_msg(hmod_backward(&m, &io, din, 1.0f) == EQM_OK, "%s", hmod_error(&m));
    ck_assert_ptr_nonnull(fx_mag(&f, "din", (size_t)n_in * D));
    expect_close_mag("din", din, fx_tensor(&f, "din", (size_t)n_in * D),
                     fx_mag(&f, "din", (size_t)n_in * D), n_in * (size_t)D, 2e-5, 1e-7);
    int n_grad = 0;
    for (int i = 0; i < m.n; i++) {
        snprintf(key, sizeof key, "grad.%s", m.info[i].name);
        if (m.grads[i]) {
            ck_assert_msg(fx_mag(&f, key, m.count[i]), "fixture has no mag.%s", key);
            expect_close_mag(key, m.grads[i], fx_tensor(&f, key, m.count[i]),
                             fx_mag(&f, key, m.count[i]), m.count[i], 2e-5, 1e-7);
            n_grad++;
        } else {
            ck_assert_msg(!hfx_get(&f, 't', key), "%s has a gradient in torch", key);
            snprintf(key, sizeof key, "after.%s", m.info[i].name);
            expect_close_mag(key, m.params[i], fx_tensor(&f, key, m.count[i]),
                             fx_mag(&f, key, m.count[i]), m.count[i], 1e-5, 1e-7);
        }
        if (m.target[i] && (m.info[i].flags & EQM_T_BUFFER)) {
            snprintf(key, sizeof key, "after_target.%s", m.info[i].name);
            expect_close_mag(key, m.target[i], fx_tensor(&f, key, m.count[i]),
                             fx_mag(&f, key, m.count[i]), m.count[i], 1e-5, 1e-7);
        }
    }
    ck_assert_int_gt(n_grad, 2);
    /* backward accumulates and honours loss_scale: a second pass with 0.5 -> 1.5x */
    float *din2 = calloc((size_t)n_in * D, sizeof(float));
    ck_assert_ptr_nonnull(din2);
    memcpy(din2, din, (size_t)n_in * D * sizeof(float));
    ck_assert_int_eq(hmod_backward(&m, &io, din2, 0.5f), EQM_OK);
    for (size_t i = 0; i < (size_t)n_in * D; i++)
        din[i] *= 1.5f;
    expect_close("din after a second backward with loss_scale 0.5", din2, din,
                 (size_t)n_in * D, 1e-6, 1e-9);
    free(din);
    free(din2);
    hmod_close(&m);
    hfx_free(&f);
}

START_TEST(test_torch_simclr) { run_fixture("simclr", "simclr"); }
END_TEST
START_TEST(test_torch_byol) { run_fixture("byol", "byol"); }
END_TEST
START_TEST(test_torch_equimod) { run_fixture("equimod", "equimod"); }
END_TEST
START_TEST(test_torch_equimod_excl) { run_fixture("equimod_excl", "equimod"); }
END_TEST

/* ------------------------------------------------------------------ fd ----------- */

typedef struct fd_case {
    const char *plugin;
    const char *const *ov;
    int N, D, P;
} fd_case;

static const char *const ov_simclr[] = {"hidden", "12-10", "out_dim", "6", "tau", "0.5", NULL};
static const char *const ov_byol[] = {"proj_hidden", "12", "proj_dim", "6", "pred_hidden",
                                      "10", NULL};
static const char *const ov_eq[] = {"head", "12-6", "t_layers", "7", "tau", "0.2", "lambda",
                                    "0.7", NULL};
static const char *const ov_eq_excl[] = {"head", "12-10-6", "t_layers", "9-7", "pred_hidden",
                                         "8", "tau", "0.3", "exclude_sibling", "true", NULL};

/* ABI 1.3 EQM_MODULE_EMBEDDING: train = 0 and out != NULL writes z (rows x out_dim) and
 * nothing else: no loss, no metrics, in_target not read, no backward after it. Checked
 * after a training forward (BN running statistics no longer 0/1): the values are finite,
 * each row's z does not depend on the other rows (eval-mode BN), and for SimCLR the
 * NT-Xent of the embedding equals the eval-mode loss forward's. */
static void check_embedding(const char *name, const char *const *ov, int Z)
{
    enum { R = 8, D = 8 };
    hmod m;
    open_or_fail(&m, EQM_KIND_METHOD, name, ov, D, 0, R);
    ck_assert_int_eq(hmod_init(&m, 3), EQM_OK);
    float h[R * D], ht[R * D], z[R * 16], z4[4 * 16];
    fill_normal(h, R * D, 11);
    fill_normal(ht, R * D, 12);
    eqm_module_io io;
    ck_assert_msg(hmod_forward(&m, &io, R, 1, h, ht, NULL) == EQM_OK, "%s", hmod_error(&m));
    for (int i = 0; i < R * 16; i++)
        z[i] = z4[i % (4 * 16)] = NAN;
    memset(&io, 0, sizeof io);
    io.size = sizeof io;
    io.rows = R;
    io.n_views = 2;
    io.train = 0;
    io.in = h;
    io.out = z;
    io.loss = 123;
    io.n_metrics = 5;
    ck_assert_msg(m.ops->forward(m.self, &io) == EQM_OK, "%s", hmod_error(&m));
    ck_assert(io.loss == 0 && io.n_metrics == 0);
    for (int i = 0; i < R * Z; i++)
        ck_assert_msg(isfinite(z[i]), "%s: z[%d] = %g", name, i, (double)z[i]);
    ck_assert_msg(isnan(z[R * Z]), "%s wrote past rows x out_dim", name);
    ck_assert_int_eq(m.ops->backward(m.self, &io), EQM_ERR_STATE);
    io.rows = 4;
    io.out = z4;
    ck_assert_msg(m.ops->forward(m.self, &io) == EQM_OK, "%s", hmod_error(&m));
    expect_close("z of 4 rows vs of 8", z4, z, 4 * (size_t)Z, 1e-6, 1e-7);
    if (!strcmp(name, "simclr")) {
        ck_assert_msg(hmod_forward(&m, &io, R, 0, h, NULL, NULL) == EQM_OK, "%s",
                      hmod_error(&m));
        eqm_ntxent_shape sh = {R, Z, 0.5, 0};
        float *scr = malloc(host_api()->nn->ntxent_scratch_floats(&sh) * sizeof(float));
        float loss = 0;
        ck_assert_int_eq(host_api()->nn->ntxent_forward(m.host, &sh, &loss, z, scr), EQM_OK);
        free(scr);
        ck_assert_msg(fabs(loss - io.loss) <= 1e-6 * fabs(io.loss),
                      "NT-Xent of the embedding %.9g, eval-mode loss %.9g", (double)loss,
                      io.loss);
    }
    hmod_close(&m);
}

START_TEST(test_embedding_forward)
{
    check_embedding("simclr", ov_simclr, 6);
    check_embedding("byol", ov_byol, 6);
}
END_TEST

static const fd_case fd_cases[] = {
    {"simclr", ov_simclr, 4, 8, 0},
    {"byol", ov_byol, 4, 8, 0},
    {"equimod", ov_eq, 3, 8, 5},
    {"equimod", ov_eq_excl, 4, 6, 4},
};

typedef struct fd_ctx {
    hmod m;
    int rows, n_in;
    float *in, *in_target, *t;
} fd_ctx;

static double fd_loss(fd_ctx *c)
{
    eqm_module_io io;
    ck_assert_msg(hmod_forward(&c->m, &io, c->rows, 1, c->in, c->in_target, c->t) == EQM_OK,
                  "%s", hmod_error(&c->m));
    return io.loss;
}

/* a random unit direction */
static void unit_normal(float *v, size_t n, uint64_t seed)
{
    double nv = 0;
    fill_normal(v, n, seed);
    for (size_t i = 0; i < n; i++)
        nv += (double)v[i] * v[i];
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(v[i] / sqrt(nv));
}

/* directional derivative of the loss along v (n entries of x), central differences */
static double fd_dir(fd_ctx *c, float *x, const float *v, size_t n, float eps)
{
    for (size_t i = 0; i < n; i++)
        x[i] += eps * v[i];
    double lp = fd_loss(c);
    for (size_t i = 0; i < n; i++)
        x[i] -= 2 * eps * v[i];
    double lm = fd_loss(c);
    for (size_t i = 0; i < n; i++)
        x[i] += eps * v[i];
    return (lp - lm) / (2.0 * eps);
}

/* Compare the backward's directional derivative `an` with central differences. float32
 * loses digits below eps ~ 1e-3, and a step that carries a ReLU input across 0 (a kink)
 * spoils the difference by O(eps); so three steps are tried and one must agree within
 * 2% + 2e-3. A wrong gradient (missing term, factor, swapped halves) fails all three. */
static void expect_fd(fd_ctx *c, const char *what, float *x, const float *v, size_t n,
                      double an)
{
    static const float steps[3] = {1e-3f, 5e-4f, 2e-3f};
    double fd[3];
    for (int k = 0; k < 3; k++) {
        fd[k] = fd_dir(c, x, v, n, steps[k]);
        double tol = 2e-2 * fmax(fabs(fd[k]), fabs(an)) + 2e-3;
        if (fabs(fd[k] - an) <= tol)
            return;
    }
    ck_abort_msg("%s: backward %.6g, finite differences %.6g %.6g %.6g (steps 1e-3, 5e-4, "
                 "2e-3)", what, an, fd[0], fd[1], fd[2]);
}

START_TEST(test_fd)
{
    const fd_case *k = &fd_cases[_i];
    fd_ctx c;
    int eq = !strcmp(k->plugin, "equimod");
    c.rows = (eq ? 3 : 2) * k->N;
    c.n_in = c.rows * k->D;
    open_or_fail(&c.m, kind_of(k->plugin), k->plugin, k->ov, k->D, k->P, c.rows);
    ck_assert_int_eq(hmod_init(&c.m, 11 + (uint64_t)_i), EQM_OK);
    c.in = malloc((size_t)c.n_in * sizeof(float));
    c.in_target = malloc((size_t)c.n_in * sizeof(float));
    c.t = malloc((size_t)(2 * k->N * (k->P ? k->P : 1)) * sizeof(float));
    float *din = calloc((size_t)c.n_in, sizeof(float));
    ck_assert(c.in && c.in_target && c.t && din);
    fill_normal(c.in, (size_t)c.n_in, 100 + (uint64_t)_i);
    fill_normal(c.in_target, (size_t)c.n_in, 200 + (uint64_t)_i);
    fill_normal(c.t, (size_t)(2 * k->N * (k->P ? k->P : 1)), 300 + (uint64_t)_i);
    if (c.m.target[0]) /* BYOL: a target that differs from the online projector */
        for (int i = 0; i < c.m.n; i++)
            if (c.m.target[i] && !(c.m.info[i].flags & EQM_T_BUFFER))
                for (size_t j = 0; j < c.m.count[i]; j++)
                    c.m.target[i][j] = c.m.params[i][j] * 0.9f + 0.01f * (float)(j % 7);

    eqm_module_io io;
    hmod_zero_grads(&c.m);
    ck_assert_msg(hmod_forward(&c.m, &io, c.rows, 1, c.in, c.in_target, c.t) == EQM_OK, "%s",
                  hmod_error(&c.m));
    double l0 = io.loss;
    ck_assert(isfinite(l0) && l0 > 0);
    ck_assert_msg(hmod_backward(&c.m, &io, din, 1.0f) == EQM_OK, "%s", hmod_error(&c.m));
    /* the same forward again gives the same loss (running stats do not feed train mode) */
    ck_assert_double_eq(fd_loss(&c), l0);

    char what[160];
    /* w.r.t. h: directional over all of h, then single entries */
    float *v = malloc((size_t)c.n_in * sizeof(float));
    ck_assert_ptr_nonnull(v);
    for (int trial = 0; trial < 3; trial++) {
        unit_normal(v, (size_t)c.n_in, 400 + (uint64_t)trial);
        double an = 0;
        for (int i = 0; i < c.n_in; i++)
            an += (double)din[i] * v[i];
        snprintf(what, sizeof what, "%s dL/dh along v%d", k->plugin, trial);
        expect_fd(&c, what, c.in, v, (size_t)c.n_in, an);
    }
    for (int j = 0; j < 6; j++) {
        int i = (j * 37 + 5) % c.n_in;
        memset(v, 0, (size_t)c.n_in * sizeof(float));
        v[i] = 1;
        snprintf(what, sizeof what, "%s dL/dh[%d]", k->plugin, i);
        expect_fd(&c, what, c.in, v, (size_t)c.n_in, din[i]);
    }
    free(v);
    /* w.r.t. every trainable tensor, directional */
    for (int i = 0; i < c.m.n; i++) {
        if (!c.m.grads[i])
            continue;
        size_t n = c.m.count[i];
        float *u = malloc(n * sizeof(float));
        ck_assert_ptr_nonnull(u);
        unit_normal(u, n, 500 + (uint64_t)i);
        double an = 0;
        for (size_t j = 0; j < n; j++)
            an += (double)c.m.grads[i][j] * u[j];
        snprintf(what, sizeof what, "%s dL/d%s", k->plugin, c.m.info[i].name);
        expect_fd(&c, what, c.m.params[i], u, n, an);
        free(u);
    }
    free(din);
    free(c.in);
    free(c.in_target);
    free(c.t);
    hmod_close(&c.m);
}
END_TEST

/* The sibling switch changes only the negatives: same weights, a smaller loss. */
START_TEST(test_sibling_switch)
{
    const char *ov0[] = {"head", "8-6", "t_layers", "5", NULL};
    const char *ov1[] = {"head", "8-6", "t_layers", "5", "exclude_sibling", "yes", NULL};
    hmod a, b;
    int N = 4, D = 5, P = 3;
    open_or_fail(&a, EQM_KIND_EQUIMOD, "equimod", ov0, D, P, 3 * N);
    open_or_fail(&b, EQM_KIND_EQUIMOD, "equimod", ov1, D, P, 3 * N);
    ck_assert_int_eq(hmod_init(&a, 3), EQM_OK);
    ck_assert_int_eq(hmod_init(&b, 3), EQM_OK);
    float h[12 * 5], t[8 * 3];
    fill_normal(h, 60, 1);
    fill_normal(t, 24, 2);
    eqm_module_io ia, ib;
    ck_assert_int_eq(hmod_forward(&a, &ia, 3 * N, 1, h, NULL, t), EQM_OK);
    ck_assert_int_eq(hmod_forward(&b, &ib, 3 * N, 1, h, NULL, t), EQM_OK);
    ck_assert(ib.loss < ia.loss);
    ck_assert_double_eq(metric(&ia, "equi_gain"), metric(&ib, "equi_gain"));
    hmod_close(&a);
    hmod_close(&b);
}
END_TEST

/* Eval mode uses the running statistics and leaves them alone. */
START_TEST(test_eval_mode)
{
    hmod m;
    open_or_fail(&m, EQM_KIND_METHOD, "simclr", ov_simclr, 8, 0, 8);
    ck_assert_int_eq(hmod_init(&m, 3), EQM_OK);
    float h[64];
    fill_normal(h, 64, 4);
    int rm = hmod_find(&m, "g.1.running_mean");
    eqm_module_io io;
    ck_assert_int_eq(hmod_forward(&m, &io, 8, 0, h, NULL, NULL), EQM_OK);
    ck_assert_float_eq(m.params[rm][0], 0.0f);
    ck_assert(isfinite(io.loss));
    ck_assert_int_eq(hmod_backward(&m, &io, NULL, 1.0f), EQM_ERR_STATE); /* not after eval */
    ck_assert_int_eq(hmod_forward(&m, &io, 8, 1, h, NULL, NULL), EQM_OK);
    ck_assert(m.params[rm][0] != 0.0f);
    hmod_close(&m);
}
END_TEST

/* The trainer sizes every module for 3N rows (N may be odd) and runs methods on 2N. */
START_TEST(test_rows_below_max)
{
    hmod m;
    open_or_fail(&m, EQM_KIND_METHOD, "byol", ov_byol, 8, 0, 15);
    ck_assert_int_eq(hmod_init(&m, 3), EQM_OK);
    float h[10 * 8], ht[10 * 8], din[10 * 8] = {0};
    fill_normal(h, 80, 5);
    fill_normal(ht, 80, 6);
    eqm_module_io io;
    ck_assert_msg(hmod_forward(&m, &io, 10, 1, h, ht, NULL) == EQM_OK, "%s", hmod_error(&m));
    ck_assert_int_eq(hmod_backward(&m, &io, din, 1.0f), EQM_OK);
    ck_assert(isfinite(io.loss) && din[0] != 0.0f);
    ck_assert_int_eq(hmod_forward(&m, &io, 16, 1, h, ht, NULL), EQM_ERR_INVAL);
    hmod_close(&m);
}
END_TEST

/* ------------------------------------------------------------------ errors ------- */

START_TEST(test_errors)
{
    hmod m;
    char err[512];
    const char *bad_hidden[] = {"hidden", "20x48", NULL};
    ck_assert_int_lt(hmod_open(&m, EQM_KIND_METHOD, "simclr", bad_hidden, 8, 0, 8, err,
                               sizeof err), 0);
    ck_assert_msg(strstr(err, "hidden") && strstr(err, "20x48"), "%s", err);
    const char *no_head[] = {"head", "none", NULL};
    ck_assert_int_lt(hmod_open(&m, EQM_KIND_EQUIMOD, "equimod", no_head, 8, 5, 12, err,
                               sizeof err), 0);
    ck_assert_msg(strstr(err, "head"), "%s", err);
    ck_assert_int_lt(hmod_open(&m, EQM_KIND_EQUIMOD, "equimod", NULL, 8, 0, 12, err,
                               sizeof err), 0);
    ck_assert_msg(strstr(err, "p_dim"), "%s", err);

    open_or_fail(&m, EQM_KIND_METHOD, "simclr", ov_simclr, 8, 0, 8);
    float h[64] = {0};
    eqm_module_io io;
    ck_assert_int_eq(hmod_init(&m, 1), EQM_OK);
    ck_assert_int_eq(hmod_forward(&m, &io, 7, 1, h, NULL, NULL), EQM_ERR_INVAL);
    ck_assert_msg(strstr(hmod_error(&m), "rows 7"), "%s", hmod_error(&m));
    ck_assert_int_eq(hmod_forward(&m, &io, 10, 1, h, NULL, NULL), EQM_ERR_INVAL); /* > max */
    hmod_close(&m);

    open_or_fail(&m, EQM_KIND_EQUIMOD, "equimod", ov_eq, 8, 5, 12);
    ck_assert_int_eq(hmod_init(&m, 1), EQM_OK);
    float hh[96] = {0}, t[40] = {0};
    io.rows = 9;
    ck_assert_int_eq(m.ops->backward(m.self, &io), EQM_ERR_STATE); /* before any forward */
    ck_assert_int_eq(hmod_forward(&m, &io, 8, 1, hh, NULL, t), EQM_ERR_INVAL);
    ck_assert_int_eq(hmod_forward(&m, &io, 12, 1, hh, NULL, NULL), EQM_ERR_INVAL);
    ck_assert_msg(strstr(hmod_error(&m), "io->t"), "%s", hmod_error(&m));
    hmod_close(&m);

    /* BYOL refuses a host that does not provide the target copy */
    open_or_fail(&m, EQM_KIND_METHOD, "byol", ov_byol, 8, 0, 8);
    eqm_module_bind b = {sizeof b, m.params, m.grads, NULL, m.act};
    ck_assert_int_eq(m.ops->bind(m.self, &b), EQM_ERR_INVAL);
    ck_assert_msg(strstr(hmod_error(&m), "target"), "%s", hmod_error(&m));
    ck_assert_int_eq(hmod_forward(&m, &io, 8, 1, h, NULL, NULL), EQM_ERR_INVAL);
    ck_assert_msg(strstr(hmod_error(&m), "in_target"), "%s", hmod_error(&m));
    hmod_close(&m);
}
END_TEST

static Suite *methods_suite(void)
{
    Suite *s = suite_create("methods");
    TCase *tc = tcase_create("tables");
    tcase_add_test(tc, test_simclr_table);
    tcase_add_test(tc, test_byol_table);
    tcase_add_test(tc, test_byol_target_momentum);
    tcase_add_test(tc, test_embedding_forward);
    tcase_add_test(tc, test_equimod_table);
    suite_add_tcase(s, tc);
    tc = tcase_create("torch");
    tcase_add_test(tc, test_torch_simclr);
    tcase_add_test(tc, test_torch_byol);
    tcase_add_test(tc, test_torch_equimod);
    tcase_add_test(tc, test_torch_equimod_excl);
    suite_add_tcase(s, tc);
    tc = tcase_create("fd");
    tcase_add_loop_test(tc, test_fd, 0, (int)(sizeof fd_cases / sizeof fd_cases[0]));
    tcase_add_test(tc, test_sibling_switch);
    tcase_add_test(tc, test_eval_mode);
    tcase_add_test(tc, test_rows_below_max);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* no host_threads_init: Check forks per test, and the pool (started lazily by the
     * first op inside the child) must belong to the process that uses it */
    SRunner *sr = srunner_create(methods_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
