/* host/check/module.c: `equimod check` of a backbone, method or equivariance module:
 * tensors (names unique, shapes, BUFFER/EMA flags); finite-difference check of the
 * gradient of every trainable tensor and of the input (directional derivative along a
 * random direction, central differences); output fully written and finite; guard canaries
 * around the activation arena, parameters, gradients and outputs; din accumulates (+=);
 * backbones: a target (EMA) forward between forward and backward leaves the gradients
 * unchanged, and max_rows = 0 (as `equimod export` creates them) is accepted with the same
 * tensors; methods with EQM_MODULE_EMBEDDING: the embedding forward (mcase_embedding). */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/internal.h"

typedef struct mod {
    const eqm_module_ops *ops;
    void *self;
    int n;
    eqm_tensor_info *info;
    size_t *len;
    gbuf *gp, *gg, *gt; /* params, grads, targets (per tensor) */
    float **p, **g, **t;
    gbuf gact;
    size_t act_n;
} mod;

static void mod_free(mod *m)
{
    if (m->self)
        m->ops->destroy(m->self);
    for (int i = 0; i < m->n; i++) {
        if (m->gp)
            chk_gb_free(&m->gp[i]);
        if (m->gg)
            chk_gb_free(&m->gg[i]);
        if (m->gt)
            chk_gb_free(&m->gt[i]);
    }
    chk_gb_free(&m->gact);
    free(m->info);
    free(m->len);
    free(m->gp);
    free(m->gg);
    free(m->gt);
    free(m->p);
    free(m->g);
    free(m->t);
    memset(m, 0, sizeof *m);
}

static int mod_guards(ck *c, mod *m, const char *after)
{
    for (int i = 0; i < m->n; i++)
        if (!chk_gb_intact(&m->gp[i]) || (m->g[i] && !chk_gb_intact(&m->gg[i])) ||
            (m->t && m->t[i] && !chk_gb_intact(&m->gt[i]))) {
            chk_fail(c, "canaries", "%s wrote outside tensor %d '%s' (its values, gradient or "
                                    "target copy)", after, i, m->info[i].name);
            return -1;
        }
    if (!chk_gb_intact(&m->gact)) {
        chk_fail(c, "canaries", "%s wrote outside the activation arena (act_floats(max_rows) = %zu "
                                "floats)", after, m->act_n);
        return -1;
    }
    return 0;
}

/* Create, describe, allocate and bind (with a target copy when `target`). */
static int mod_open(ck *c, const eqm_plugin *pl, const void *opts, const eqm_module_cfg *cfg,
                    int target, mod *m)
{
    char buf[1200];
    memset(m, 0, sizeof *m);
    m->ops = &pl->ops.module;
    int rc = m->ops->create(host_api(), c->ctx, opts, cfg, &m->self);
    if (rc != EQM_OK) {
        m->self = NULL;
        chk_fail(c, "create", "create (max_rows %d) failed: %s", cfg->max_rows,
                 chk_why(c, rc, buf, sizeof buf, "create"));
        return -1;
    }
    if (!m->self) {
        chk_fail(c, "create", "create returned EQM_OK with a NULL instance (*self)");
        return -1;
    }
    m->n = m->ops->n_tensors(m->self);
    if (m->n < 0 || m->n > 100000) {
        chk_fail(c, "tensors", "n_tensors = %d", m->n);
        m->n = 0;
        return -1;
    }
    size_t nn = (size_t)(m->n ? m->n : 1);
    m->info = calloc(nn, sizeof *m->info);
    m->len = calloc(nn, sizeof *m->len);
    m->gp = calloc(nn, sizeof *m->gp);
    m->gg = calloc(nn, sizeof *m->gg);
    m->gt = calloc(nn, sizeof *m->gt);
    m->p = calloc(nn, sizeof *m->p);
    m->g = calloc(nn, sizeof *m->g);
    m->t = target ? calloc(nn, sizeof *m->t) : NULL;
    if (!m->info || !m->len || !m->gp || !m->gg || !m->gt || !m->p || !m->g || (target && !m->t)) {
        chk_fail(c, "host", "out of memory");
        return -1;
    }
    for (int i = 0; i < m->n; i++) {
        eqm_tensor_info *ti = &m->info[i];
        rc = m->ops->tensor_info(m->self, i, ti);
        if (rc != EQM_OK) {
            chk_fail(c, "tensors", "tensor_info(%d) failed: %s", i,
                     chk_why(c, rc, buf, sizeof buf, "tensor_info"));
            return -1;
        }
        if (!ti->name || !*ti->name || ti->ndim < 1 || ti->ndim > 4 || (ti->flags & ~7u)) {
            chk_fail(c, "tensors", "tensor %d: name %s, ndim %d, flags 0x%x: a name, ndim 1..4, "
                                   "flags of eqm_tensor_flags", i, ti->name ? ti->name : "NULL",
                     ti->ndim, ti->flags);
            return -1;
        }
        size_t len = 1;
        for (int d = 0; d < ti->ndim; d++) {
            if (ti->shape[d] <= 0) {
                chk_fail(c, "tensors", "tensor %d '%s': shape[%d] = %d", i, ti->name, d,
                         ti->shape[d]);
                return -1;
            }
            len *= (size_t)ti->shape[d];
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(m->info[j].name, ti->name)) {
                chk_fail(c, "tensors", "tensors %d and %d are both named '%s'", j, i, ti->name);
                return -1;
            }
        m->len[i] = len;
        m->p[i] = chk_gb_alloc(&m->gp[i], len * sizeof(float));
        if (!(ti->flags & EQM_T_BUFFER))
            m->g[i] = chk_gb_alloc(&m->gg[i], len * sizeof(float));
        if (target && (ti->flags & EQM_T_EMA))
            m->t[i] = chk_gb_alloc(&m->gt[i], len * sizeof(float));
        if (!m->p[i] || (!(ti->flags & EQM_T_BUFFER) && !m->g[i])) {
            chk_fail(c, "host", "out of memory for tensor '%s' (%zu floats)", ti->name, len);
            return -1;
        }
        memset(m->p[i], 0, len * sizeof(float));
        if (m->g[i])
            memset(m->g[i], 0, len * sizeof(float));
        if (m->t && m->t[i])
            memset(m->t[i], 0, len * sizeof(float));
    }
    m->act_n = m->ops->act_floats(m->self, cfg->max_rows);
    if (m->act_n > ((size_t)1 << 33)) {
        chk_fail(c, "act_floats", "act_floats(%d) = %zu floats", cfg->max_rows, m->act_n);
        return -1;
    }
    float *act = chk_gb_alloc(&m->gact, (m->act_n ? m->act_n : 1) * sizeof(float));
    if (!act) {
        chk_fail(c, "host", "out of memory for %zu activation floats", m->act_n);
        return -1;
    }
    for (size_t i = 0; i < (m->act_n ? m->act_n : 1); i++)
        act[i] = NAN; /* the arena starts as garbage: a plugin may not rely on zeros */
    eqm_module_bind b = {sizeof b, m->p, m->g, m->t, act};
    rc = m->ops->bind(m->self, &b);
    if (rc != EQM_OK) {
        chk_fail(c, "bind", "bind failed: %s", chk_why(c, rc, buf, sizeof buf, "bind"));
        return -1;
    }
    eqm_rng rng;
    host_api()->rng_seed(&rng, 7, 0, 0, 0);
    rc = m->ops->init(m->self, &rng);
    if (rc != EQM_OK) {
        chk_fail(c, "init", "init failed: %s", chk_why(c, rc, buf, sizeof buf, "init"));
        return -1;
    }
    for (int i = 0; i < m->n; i++)
        for (size_t k = 0; k < m->len[i]; k++)
            if (!isfinite(m->p[i][k])) {
                chk_fail(c, "init", "init left %s[%zu] = %g", m->info[i].name, k, (double)m->p[i][k]);
                return -1;
            }
    if (m->t) /* a target a little away from the online weights */
        for (int i = 0; i < m->n; i++)
            if (m->t[i])
                for (size_t k = 0; k < m->len[i]; k++)
                    m->t[i][k] = m->p[i][k] * 0.9f + 0.01f;
    return mod_guards(c, m, "bind/init");
}

typedef struct mod_io {
    int kind, rows, D_out;
    float *in, *in_target, *t, *out, *dout, *din;
    gbuf gin, gout, gdin;
    size_t n_in, n_out;
} mod_io;

/* The scalar whose gradient is checked: loss (method, equimod) or sum(out .* dout)
 * (backbone), in double; *scale gets the sum of magnitudes (noise floor). */
static int mod_loss(ck *c, mod *m, mod_io *x, const char *when, double *L, double *scale)
{
    char buf[1200];
    eqm_module_io io;
    memset(&io, 0, sizeof io);
    io.size = sizeof io;
    io.rows = x->rows;
    io.train = 1;
    io.in = x->in;
    io.in_target = x->in_target;
    io.t = x->t;
    io.out = x->out;
    io.loss = NAN;
    if (x->out)
        for (size_t i = 0; i < x->n_out; i++)
            x->out[i] = NAN;
    int rc = m->ops->forward(m->self, &io);
    if (rc != EQM_OK) {
        chk_fail(c, "forward", "%s: forward failed: %s", when, chk_why(c, rc, buf, sizeof buf, "forward"));
        return -1;
    }
    if (mod_guards(c, m, "forward") || !chk_gb_intact(&x->gout)) {
        if (chk_gb_intact(&x->gout) == 0)
            chk_fail(c, "canaries", "forward wrote outside io->out (rows x D)");
        return -1;
    }
    if (io.n_metrics < 0 || io.n_metrics > EQM_MAX_METRICS) {
        chk_fail(c, "metrics", "n_metrics = %d: 0..%d", io.n_metrics, EQM_MAX_METRICS);
        return -1;
    }
    for (int k = 0; k < io.n_metrics; k++)
        if (!io.metrics[k].name) {
            chk_fail(c, "metrics", "metrics[%d].name is NULL", k);
            return -1;
        }
    if (x->kind == EQM_KIND_BACKBONE) {
        double s = 0, a = 0;
        for (size_t i = 0; i < x->n_out; i++) {
            if (!isfinite(x->out[i])) {
                chk_fail(c, "output written", "%s: out[%zu] (row %zu) is %g after forward: forward "
                                              "writes every value of the declared rows x D output",
                         when, i, i / (size_t)x->D_out, (double)x->out[i]);
                return -1;
            }
            s += (double)x->out[i] * x->dout[i];
            a += fabs((double)x->out[i] * x->dout[i]);
        }
        *L = s;
        *scale = a;
    } else {
        if (!isfinite(io.loss)) {
            chk_fail(c, "loss", "%s: forward set io->loss = %g", when, io.loss);
            return -1;
        }
        *L = io.loss;
        *scale = fabs(io.loss) + 1e-3;
    }
    return 0;
}

static int mod_backward(ck *c, mod *m, mod_io *x, const char *when)
{
    char buf[1200];
    eqm_module_io io;
    memset(&io, 0, sizeof io);
    io.size = sizeof io;
    io.rows = x->rows;
    io.train = 1;
    io.in = x->in;
    io.in_target = x->in_target;
    io.t = x->t;
    io.out = x->out;
    io.dout = x->dout;
    io.din = x->din;
    io.loss_scale = 1.0f;
    int rc = m->ops->backward(m->self, &io);
    if (rc != EQM_OK) {
        chk_fail(c, "backward", "%s: backward failed: %s", when,
                 chk_why(c, rc, buf, sizeof buf, "backward"));
        return -1;
    }
    if (mod_guards(c, m, "backward"))
        return -1;
    if (!chk_gb_intact(&x->gdin)) {
        chk_fail(c, "canaries", "backward wrote outside io->din");
        return -1;
    }
    return 0;
}

static void zero_grads(mod *m)
{
    for (int i = 0; i < m->n; i++)
        if (m->g[i])
            memset(m->g[i], 0, m->len[i] * sizeof(float));
}

static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Directional finite difference of L along a random direction of x[0..n), against the
 * analytic gradient g. */
static int fd_check(ck *c, mod *m, mod_io *io, float *x, const float *g, size_t n,
                    const char *what, uint64_t seed)
{
    double rms = 0;
    for (size_t i = 0; i < n; i++)
        rms += (double)x[i] * x[i];
    rms = sqrt(rms / (double)n);
    float step = (float)(getenv("EQM_FD_STEP") ? atof(getenv("EQM_FD_STEP")) : 2e-3) * (float)(rms > 0.05 ? rms : 0.05);
    float *keep = malloc(n * sizeof(float)), *dir = malloc(n * sizeof(float));
    if (!keep || !dir) {
        free(keep);
        free(dir);
        chk_fail(c, "host", "out of memory");
        return -1;
    }
    memcpy(keep, x, n * sizeof(float));
    double an = 0;
    for (size_t i = 0; i < n; i++) {
        dir[i] = rnd(&seed) * step;
        an += (double)g[i] * dir[i];
    }
    double Lp, Lm, sp, sm;
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        x[i] = keep[i] + dir[i];
    rc |= mod_loss(c, m, io, what, &Lp, &sp);
    for (size_t i = 0; i < n; i++)
        x[i] = keep[i] - dir[i];
    if (!rc)
        rc |= mod_loss(c, m, io, what, &Lm, &sm);
    memcpy(x, keep, n * sizeof(float));
    free(keep);
    free(dir);
    if (rc)
        return -1;
    double fd = (Lp - Lm) / 2.0;
    double floor_ = 64.0 * FLT_EPSILON * (sp > sm ? sp : sm);
    double tol = 0.1 * fmax(fabs(fd), fabs(an)) + floor_;
    if (fabs(fd - an) > tol) {
        chk_fail(c, "gradient", "%s: directional derivative %.6g from backward, %.6g by central "
                                "differences (tolerance %.3g): backward's gradient is wrong%s",
                 what, an, fd, tol,
                 fabs(an) < 1e-3 * fabs(fd) ? " (nothing was accumulated into it?)" : "");
        return -1;
    }
    return 0;
}

/* The inputs of one module check: random inputs, dout, t and target h; the analytic
 * gradients of the first backward (g1 per tensor, g_in of the input). */
typedef struct mcase {
    int kind, N, needs_target;
    eqm_module_cfg cfg;
    mod m;
    mod_io x;
    float *g_in, *dout, *tt, *intg, **g1;
} mcase;

static void mcase_free(mcase *k)
{
    if (k->g1)
        for (int i = 0; i < k->m.n; i++)
            free(k->g1[i]);
    free(k->g1);
    free(k->g_in);
    free(k->dout);
    free(k->tt);
    free(k->intg);
    chk_gb_free(&k->x.gin);
    chk_gb_free(&k->x.gdin);
    chk_gb_free(&k->x.gout);
    mod_free(&k->m);
}

/* Sizes and random contents of the inputs (the instance is open). 0 or -1. */
static int mcase_inputs(ck *c, const eqm_plugin *pl, mcase *k)
{
    mod_io *x = &k->x;
    const int N = k->N;
    x->rows = k->kind == EQM_KIND_METHOD ? 2 * N : 3 * N;
    if (k->kind == EQM_KIND_BACKBONE) {
        x->D_out = pl->ops.module.out_dim ? pl->ops.module.out_dim(k->m.self) : 0;
        if (x->D_out <= 0 || x->D_out > 1 << 20) {
            chk_fail(c, "out_dim", "out_dim = %d", x->D_out);
            return -1;
        }
        x->n_in = (size_t)x->rows * k->cfg.in_h * k->cfg.in_w * k->cfg.in_c;
        x->n_out = (size_t)x->rows * x->D_out;
    } else {
        x->n_in = (size_t)x->rows * k->cfg.in_dim;
    }
    const size_t n_in = x->n_in, n_t = (size_t)2 * N * k->cfg.p_dim;
    x->in = chk_gb_alloc(&x->gin, n_in * sizeof(float));
    x->din = chk_gb_alloc(&x->gdin, n_in * sizeof(float));
    k->g_in = malloc(n_in * sizeof(float));
    k->dout = x->n_out ? malloc(x->n_out * sizeof(float)) : NULL;
    k->tt = k->kind == EQM_KIND_EQUIMOD ? malloc(n_t * sizeof(float)) : NULL;
    k->intg = k->needs_target ? malloc(n_in * sizeof(float)) : NULL;
    k->g1 = calloc((size_t)(k->m.n ? k->m.n : 1), sizeof *k->g1);
    if (x->n_out)
        x->out = chk_gb_alloc(&x->gout, x->n_out * sizeof(float));
    if (!x->in || !x->din || !k->g_in || (x->n_out && (!k->dout || !x->out)) ||
        (k->kind == EQM_KIND_EQUIMOD && !k->tt) || (k->needs_target && !k->intg) || !k->g1) {
        chk_fail(c, "host", "out of memory");
        return -1;
    }
    uint64_t s = 42;
    for (size_t i = 0; i < n_in; i++)
        x->in[i] = rnd(&s);
    for (size_t i = 0; i < x->n_out; i++)
        k->dout[i] = rnd(&s);
    for (size_t i = 0; k->tt && i < n_t; i++)
        k->tt[i] = rnd(&s);
    for (size_t i = 0; k->intg && i < n_in; i++)
        k->intg[i] = rnd(&s);
    x->dout = k->dout;
    x->t = k->tt;
    x->in_target = k->intg;
    return 0;
}

/* forward + backward: output written, canaries, input const; keeps the analytic gradients
 * (din starts at 0.5 to check that backward accumulates). 0 or -1. */
static int mcase_backward(ck *c, mcase *k)
{
    mod *m = &k->m;
    mod_io *x = &k->x;
    const size_t n_in = x->n_in;
    double L, scale;
    zero_grads(m);
    for (size_t i = 0; i < n_in; i++)
        x->din[i] = 0.5f;
    float *in_keep = malloc(n_in * sizeof(float));
    if (!in_keep) {
        chk_fail(c, "host", "out of memory");
        return -1;
    }
    memcpy(in_keep, x->in, n_in * sizeof(float));
    if (mod_loss(c, m, x, "forward", &L, &scale) || mod_backward(c, m, x, "backward")) {
        free(in_keep);
        return -1;
    }
    if (memcmp(in_keep, x->in, n_in * sizeof(float)))
        chk_fail(c, "input const", "forward or backward modified io->in");
    free(in_keep);
    chk_pass(c, "forward, backward, output written, canaries");
    for (size_t i = 0; i < n_in; i++)
        k->g_in[i] = x->din[i] - 0.5f;
    for (int i = 0; i < m->n; i++) {
        if (!m->g[i])
            continue;
        k->g1[i] = malloc(m->len[i] * sizeof(float));
        if (!k->g1[i]) {
            chk_fail(c, "host", "out of memory");
            return -1;
        }
        memcpy(k->g1[i], m->g[i], m->len[i] * sizeof(float));
        for (size_t j = 0; j < m->len[i]; j++)
            if (!isfinite(k->g1[i][j])) {
                chk_fail(c, "gradient", "backward left %s grad[%zu] = %g", m->info[i].name, j,
                         (double)k->g1[i][j]);
                return -1;
            }
    }
    return 0;
}

/* Finite differences of every trainable tensor and of the input. */
static void mcase_fd(ck *c, mcase *k)
{
    mod *m = &k->m;
    int n_fd = 0, n_bad = 0;
    char what[160];
    for (int i = 0; i < m->n; i++) {
        if (!m->g[i])
            continue;
        snprintf(what, sizeof what, "tensor '%s'", m->info[i].name);
        n_fd++;
        n_bad += fd_check(c, m, &k->x, m->p[i], k->g1[i], m->len[i], what, 1000 + (uint64_t)i) != 0;
    }
    n_fd++;
    n_bad += fd_check(c, m, &k->x, k->x.in, k->g_in, k->x.n_in, "input (din)", 7) != 0;
    if (!n_bad) {
        char msg[96];
        snprintf(msg, sizeof msg, "finite differences of %d gradients", n_fd);
        chk_pass(c, msg);
    }
}

/* The target forward itself (use_target = 1, the two views) into a guarded output. 0 when
 * it ran, wrote every value and nothing outside. */
static int target_forward(ck *c, mcase *k)
{
    mod *m = &k->m;
    const size_t n = (size_t)2 * k->N * k->x.D_out;
    gbuf gto = {0};
    float *tout = chk_gb_alloc(&gto, n * sizeof(float));
    if (!tout) {
        chk_fail(c, "host", "out of memory");
        return -1;
    }
    char buf[1200];
    eqm_module_io io;
    memset(&io, 0, sizeof io);
    io.size = sizeof io;
    io.rows = 2 * k->N; /* the target sees the two views only */
    io.train = 1;
    io.use_target = 1;
    io.in = k->x.in + (size_t)k->N * k->cfg.in_h * k->cfg.in_w * k->cfg.in_c;
    io.out = tout;
    for (size_t i = 0; i < n; i++)
        tout[i] = NAN;
    int rc = m->ops->forward(m->self, &io), ok = 1;
    if (rc != EQM_OK) {
        chk_fail(c, "target forward", "forward with use_target = 1 failed: %s",
                 chk_why(c, rc, buf, sizeof buf, "forward"));
        ok = 0;
    } else if (mod_guards(c, m, "target forward") || !chk_gb_intact(&gto)) {
        ok = 0;
    } else {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(tout[i])) {
                chk_fail(c, "target forward", "target forward left out[%zu] = %g", i,
                         (double)tout[i]);
                ok = 0;
                break;
            }
    }
    chk_gb_free(&gto);
    return ok ? 0 : -1;
}

/* A target forward between forward and backward changes nothing of the online pass. */
static void mcase_target(ck *c, mcase *k)
{
    mod *m = &k->m;
    mod_io *x = &k->x;
    double L, scale;
    zero_grads(m);
    memset(x->din, 0, x->n_in * sizeof(float));
    if (mod_loss(c, m, x, "online forward", &L, &scale) || target_forward(c, k) ||
        mod_backward(c, m, x, "backward after a target forward"))
        return;
    double d2 = 0, n2 = 0;
    for (int i = 0; i < m->n; i++)
        if (m->g[i])
            for (size_t j = 0; j < m->len[i]; j++) {
                double e = (double)m->g[i][j] - k->g1[i][j];
                d2 += e * e;
                n2 += (double)k->g1[i][j] * k->g1[i][j];
            }
    for (size_t j = 0; j < x->n_in; j++) {
        double e = (double)x->din[j] - k->g_in[j];
        d2 += e * e;
        n2 += (double)k->g_in[j] * k->g_in[j];
    }
    if (!(sqrt(d2) <= 1e-5 * sqrt(n2) + 1e-30))
        chk_fail(c, "target forward", "a target (EMA) forward between forward and backward "
                                      "changed the gradients (relative difference %.3g): "
                                      "the target forward must leave the online "
                                      "activations that backward reads intact",
                 sqrt(d2) / (sqrt(n2) + 1e-30));
    else
        chk_pass(c, "target forward between forward and backward");
}

/* max_rows = 0, as equimod export creates a backbone: the same tensors. */
static void mcase_max_rows0(ck *c, const eqm_plugin *pl, const void *opts, mcase *k)
{
    eqm_module_cfg c0 = k->cfg;
    c0.max_rows = 0;
    mod m0;
    if (mod_open(c, pl, opts, &c0, 0, &m0) == 0) {
        int same = m0.n == k->m.n;
        for (int i = 0; same && i < k->m.n; i++)
            same = !strcmp(m0.info[i].name, k->m.info[i].name) && m0.len[i] == k->m.len[i] &&
                   m0.info[i].flags == k->m.info[i].flags;
        if (!same)
            chk_fail(c, "max_rows = 0", "created with max_rows = 0 (as equimod export does) "
                                        "the backbone lists other tensors than with max_rows "
                                        "%d", k->cfg.max_rows);
        else
            chk_pass(c, "max_rows = 0");
    } else {
        chk_note("max_rows = 0: equimod export creates backbones this way (no forward "
                 "follows)");
    }
    mod_free(&m0);
}

/* A method with EQM_MODULE_EMBEDDING (kinds.h): out_dim gives the width Z of z; the
 * embedding forward (train = 0, out set) writes every one of rows x Z values of out, finite,
 * nothing outside, sets no loss and no metrics, reads no in_target (it is NaN here),
 * updates no tensor (BN running statistics included), and gives the same z twice. */
static void mcase_embedding(ck *c, mcase *k)
{
    mod *m = &k->m;
    const int rows = k->x.rows;
    const int Z = m->ops->out_dim ? m->ops->out_dim(m->self) : 0;
    if (Z <= 0 || Z > 1 << 20) {
        chk_fail(c, "embedding", "the method declares EQM_MODULE_EMBEDDING but out_dim %s %d: "
                                 "it must give the width of the embedding z",
                 m->ops->out_dim ? "returns" : "is NULL, width", Z);
        return;
    }
    const size_t n = (size_t)rows * Z;
    gbuf go = {0}, gnan = {0};
    float *z = chk_gb_alloc(&go, n * sizeof(float)), *z1 = malloc(n * sizeof(float));
    float *nan_t = chk_gb_alloc(&gnan, k->x.n_in * sizeof(float));
    uint64_t h0 = 0xcbf29ce484222325ull, h1 = h0;
    for (int i = 0; i < m->n; i++)
        h0 = chk_fnv(h0, m->p[i], m->len[i] * sizeof(float));
    for (int pass = 0; z && z1 && nan_t && pass < 2; pass++) {
        char buf[1200];
        for (size_t i = 0; i < n; i++)
            z[i] = NAN;
        for (size_t i = 0; i < k->x.n_in; i++)
            nan_t[i] = NAN;
        eqm_module_io io;
        memset(&io, 0, sizeof io);
        io.size = sizeof io;
        io.rows = rows;
        io.n_views = 2;
        io.train = 0;
        io.in = k->x.in;
        io.in_target = k->needs_target ? nan_t : NULL;
        io.out = z;
        int rc = m->ops->forward(m->self, &io);
        if (rc != EQM_OK) {
            chk_fail(c, "embedding", "the embedding forward (train = 0, out set) failed: %s",
                     chk_why(c, rc, buf, sizeof buf, "forward"));
            break;
        }
        if (mod_guards(c, m, "the embedding forward"))
            break;
        if (!chk_gb_intact(&go)) {
            chk_fail(c, "embedding", "the embedding forward wrote outside io->out (rows x "
                                     "out_dim = %d x %d)", rows, Z);
            break;
        }
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++)
            if (!isfinite(z[i]))
                bad = i;
        if (bad < n) {
            chk_fail(c, "embedding", "the embedding forward left z[%zu][%zu] = %g of the %d x %d "
                                     "declared (rows x out_dim): it writes every value, finite%s",
                     bad / (size_t)Z, bad % (size_t)Z, (double)z[bad], rows, Z,
                     k->needs_target ? " (in_target is NaN here: it is not read)" : "");
            break;
        }
        if (io.loss != 0 || io.n_metrics != 0) {
            chk_fail(c, "embedding", "the embedding forward set loss %g and %d metrics: it sets "
                                     "no loss and no metrics", io.loss, io.n_metrics);
            break;
        }
        for (int i = 0; i < m->n; i++)
            h1 = chk_fnv(h1, m->p[i], m->len[i] * sizeof(float));
        if (h1 != h0) {
            chk_fail(c, "embedding", "the embedding forward changed the module's tensors: it "
                                     "updates nothing (BN: running statistics used, not updated)");
            break;
        }
        h1 = 0xcbf29ce484222325ull;
        if (pass == 0)
            memcpy(z1, z, n * sizeof(float));
        else if (memcmp(z1, z, n * sizeof(float)))
            chk_fail(c, "embedding", "two embedding forwards of the same rows gave other z");
        else
            chk_pass(c, "embedding forward (EQM_MODULE_EMBEDDING)");
    }
    if (!z || !z1 || !nan_t)
        chk_fail(c, "host", "out of memory");
    chk_gb_free(&go);
    chk_gb_free(&gnan);
    free(z1);
}

void check_module(ck *c, const eqm_plugin *pl, void *opts)
{
    mcase k;
    memset(&k, 0, sizeof k);
    k.kind = (int)pl->desc.kind;
    k.N = 4;
    k.cfg = (eqm_module_cfg){sizeof k.cfg, 16, 16, 3, 12, 5, 3 * k.N, 0};
    k.x.kind = k.kind;
    k.needs_target = k.kind == EQM_KIND_METHOD && (pl->ops.module.flags & EQM_MODULE_NEEDS_TARGET);
    if (mod_open(c, pl, opts, &k.cfg, k.kind == EQM_KIND_BACKBONE || k.needs_target, &k.m)) {
        mcase_free(&k);
        return;
    }
    chk_pass(c, "create, tensors, bind, init");
    if (!mcase_inputs(c, pl, &k) && !mcase_backward(c, &k)) {
        mcase_fd(c, &k);
        if (k.kind == EQM_KIND_BACKBONE && k.m.t)
            mcase_target(c, &k);
        if (k.kind == EQM_KIND_BACKBONE)
            mcase_max_rows0(c, pl, opts, &k);
        if (k.kind == EQM_KIND_METHOD && (pl->ops.module.flags & EQM_MODULE_EMBEDDING))
            mcase_embedding(c, &k);
    }
    mcase_free(&k);
}
