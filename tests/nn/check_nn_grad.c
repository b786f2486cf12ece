/* tests/nn/check_nn_grad.c: finite-difference gradient checks of every backward in
 * host/nn, plus the += / NULL-gradient conventions of nn.h.
 *
 * Method: for an op with output y, the test loss is L = sum(r * y) with a fixed random r
 * (so dout = r), or the loss itself for loss ops. For each gradient g of a parameter p the
 * directional derivative along 3 random unit-ish directions v is compared:
 *     (L(p + e v) - L(p - e v)) / 2e   vs   <g, v>
 * with L accumulated in double from the float forward. Tolerance: |fd - an| <=
 * 2e-2 * max(|fd|, |an|) + atol (atol scaled to the size of the gradient), enough for
 * float rounding at e = 1e-2 (linear ops) / 1e-3 (nonlinear ops) and strict enough to catch
 * any indexing or sign error (those give O(1) relative errors).
 * Conv shapes cover 1x1 stride 1 and 2, 3x3 stride 1 and 2, 7x7 stride 2 pad 3, 5x5, and
 * shapes that take conv2d's Winograd path; every shape runs in algo 0 (default: Winograd
 * for 3x3 stride 1 with >= 16 channels and >= 512 tiles, e.g. the 8x32x32x64 case), 1 (im2col only), 2 (stride-1
 * dX as a forward conv), 3 (Winograd wherever it applies, e.g. the 4x4 outputs) and 4 (the
 * direct kernel wherever it applies: C_out, or C_in for dX, a multiple of 16).
 */
#include "config.h"

#include "nn_test_util.h"
#include "nn/nn_internal.h"

typedef double (*loss_fn)(void *ctx);

static void fd_check(const char *what, loss_fn f, void *ctx, float *p, size_t n,
                     const float *grad, float eps)
{
    double gnorm = sqrt(dotd(grad, grad, n));
    for (int t = 0; t < 3; t++) {
        float *v = rnd(n, 1.f);
        float *save = dup(p, n);
        for (size_t i = 0; i < n; i++)
            p[i] = save[i] + eps * v[i];
        double lp = f(ctx);
        for (size_t i = 0; i < n; i++)
            p[i] = save[i] - eps * v[i];
        double lm = f(ctx);
        memcpy(p, save, sizeof(float) * n);
        double fd = (lp - lm) / (2.0 * eps);
        double an = dotd(grad, v, n);
        double atol = 1e-4 * (1.0 + gnorm * sqrt(dotd(v, v, n)) / sqrt((double)n + 1));
        double tol = 2e-2 * fmax(fabs(fd), fabs(an)) + atol;
        ck_assert_msg(fabs(fd - an) <= tol, "%s dir %d: finite difference %.7g vs analytic %.7g",
                      what, t, fd, an);
        free(v);
        free(save);
    }
}

/* ------------------------------------------------------------------ conv -------- */

typedef struct {
    eqm_conv2d_shape s;
    float *in, *w, *out, *r;
    size_t no;
} conv_t;

static double conv_loss(void *vc)
{
    conv_t *c = vc;
    ck_assert_int_eq(NN()->conv2d_forward(NULL, &c->s, c->out, c->in, c->w), EQM_OK);
    return dotd(c->out, c->r, c->no);
}

static const int conv_cfg[][9] = {
    /* N, H, W, Ci, Co, k, stride, pad */
    {2, 6, 5, 3, 4, 1, 1, 0, 0},    {2, 7, 6, 5, 3, 1, 2, 0, 0},
    {2, 6, 7, 4, 5, 3, 1, 1, 0},    {2, 7, 8, 4, 6, 3, 2, 1, 0},
    {2, 11, 10, 3, 4, 7, 2, 3, 0},  {1, 8, 8, 3, 2, 5, 1, 2, 0},
    {2, 12, 12, 16, 16, 3, 1, 1, 0}, {1, 9, 10, 32, 24, 3, 1, 1, 0},
    {2, 8, 8, 16, 32, 3, 2, 1, 0},  {2, 8, 8, 16, 32, 1, 2, 0, 0},
    {2, 10, 9, 16, 20, 3, 1, 0, 0}, /* Winograd without padding, odd output */
    {8, 32, 32, 64, 64, 3, 1, 1, 0}, /* several Winograd chunks / im2col tiles */
};
#define N_CONV (int)(sizeof conv_cfg / sizeof *conv_cfg)

START_TEST(test_conv_grad)
{
    const int *g = conv_cfg[_i / 5];
    int algo = _i % 5; /* 0 default (Winograd or direct where they apply), 1 im2col, 2 dX as
                        * forward, 3 Winograd everywhere, 4 direct everywhere */
    conv_t c = {.s = {g[0], g[1], g[2], g[3], g[4], g[5], g[5], g[6], g[7], 0}};
    int Ho = (g[1] + 2 * g[7] - g[5]) / g[6] + 1, Wo = (g[2] + 2 * g[7] - g[5]) / g[6] + 1;
    size_t ni = (size_t)g[0] * g[1] * g[2] * g[3], nw = (size_t)g[4] * g[5] * g[5] * g[3];
    c.no = (size_t)g[0] * Ho * Wo * g[4];
    c.in = rnd(ni, 1.f);
    c.w = rnd(nw, 0.3f);
    c.out = zeros(c.no);
    c.r = rnd(c.no, 1.f);
    nn_conv2d_set_algo(algo);
    float *din = rnd(ni, 1.f), *dw = rnd(nw, 1.f);
    float *din0 = dup(din, ni), *dw0 = dup(dw, nw);
    ck_assert_int_eq(NN()->conv2d_backward(NULL, &c.s, din, dw, c.r, c.in, c.w), EQM_OK);
    for (size_t i = 0; i < ni; i++)
        din[i] -= din0[i]; /* += convention: remove the starting values */
    for (size_t i = 0; i < nw; i++)
        dw[i] -= dw0[i];
    char what[96];
    snprintf(what, sizeof what, "conv cfg %d algo %d din", _i / 5, algo);
    fd_check(what, conv_loss, &c, c.in, ni, din, 1e-2f);
    snprintf(what, sizeof what, "conv cfg %d algo %d dw", _i / 5, algo);
    fd_check(what, conv_loss, &c, c.w, nw, dw, 1e-2f);
    /* NULL gradients are skipped: din only, then dw only, must give the same values */
    float *din2 = zeros(ni), *dw2 = zeros(nw);
    ck_assert_int_eq(NN()->conv2d_backward(NULL, &c.s, din2, NULL, c.r, c.in, c.w), EQM_OK);
    ck_assert_int_eq(NN()->conv2d_backward(NULL, &c.s, NULL, dw2, c.r, c.in, c.w), EQM_OK);
    expect_close("conv din alone", din2, din, ni, 1e-4, 1e-4);
    expect_close("conv dw alone", dw2, dw, nw, 1e-4, 1e-4);
    nn_conv2d_set_algo(0);
    free(c.in), free(c.w), free(c.out), free(c.r), free(din), free(dw), free(din0), free(dw0),
        free(din2), free(dw2);
}
END_TEST

/* ------------------------------------------------------------------ bn ---------- */

typedef struct {
    eqm_bn_shape s;
    float *in, *gamma, *beta, *out, *r, *save, *rm, *rv;
} bn_t;

static double bn_loss(void *vc)
{
    bn_t *c = vc;
    /* training forward without running statistics (they would drift with each call) */
    ck_assert_int_eq(NN()->batchnorm_forward(NULL, &c->s, c->out, c->in, c->gamma, c->beta,
                                             c->s.train ? NULL : c->rm,
                                             c->s.train ? NULL : c->rv, c->save),
                     EQM_OK);
    return dotd(c->out, c->r, (size_t)c->s.M * c->s.C);
}

static const int bn_cfg[][4] = {
    /* M, C, affine, relu, (train by loop) */
    {24, 5, 1, 0}, {24, 5, 0, 0}, {30, 20, 1, 1}, {16, 33, 0, 1}, {7, 3, 1, 0},
    {300, 12, 1, 0}, /* several row parts and 64-row float runs */
    {260, 9, 0, 1},
};

START_TEST(test_bn_grad)
{
    const int *g = bn_cfg[_i / 2];
    int train = !(_i % 2);
    bn_t c = {.s = {g[0], g[1], train, g[2], g[3], 1e-5f, 0.1f}};
    size_t n = (size_t)g[0] * g[1], C = (size_t)g[1];
    c.in = rnd(n, 2.f);
    for (size_t i = 0; i < n; i++)
        c.in[i] += 0.3f;
    c.gamma = g[2] ? rnd(C, 1.f) : NULL;
    c.beta = g[2] ? rnd(C, 1.f) : NULL;
    c.rm = rnd(C, 0.2f);
    c.rv = rnd(C, 0.4f);
    for (size_t i = 0; i < C; i++)
        c.rv[i] += 1.f;
    c.out = zeros(n);
    c.r = rnd(n, 1.f);
    c.save = zeros(2 * C);
    bn_loss(&c);
    float *din = zeros(n), *dg = zeros(C), *db = zeros(C);
    ck_assert_int_eq(NN()->batchnorm_backward(NULL, &c.s, din, dg, db, c.r, c.in, c.out,
                                              c.gamma, c.save),
                     EQM_OK);
    char what[96];
    snprintf(what, sizeof what, "bn cfg %d train %d din", _i / 2, train);
    /* with the fused ReLU a smaller step keeps kink crossings rare */
    float eps = g[3] ? 2e-4f : 1e-3f;
    fd_check(what, bn_loss, &c, c.in, n, din, eps);
    if (g[3]) {
        /* fused ReLU: dgamma/dbeta must equal BN (FD-checked without ReLU) followed by
         * relu (FD-checked alone); FD on gamma itself crosses ReLU kinks too often */
        eqm_bn_shape u = c.s;
        u.relu = 0;
        float *y = zeros(n), *o = zeros(n), *gy = zeros(n), *din2 = zeros(n);
        float *dg2 = zeros(C), *db2 = zeros(C);
        ck_assert_int_eq(NN()->batchnorm_forward(NULL, &u, y, c.in, c.gamma, c.beta, c.rm,
                                                 c.rv, c.save), EQM_OK);
        ck_assert_int_eq(NN()->relu_forward(NULL, n, o, y), EQM_OK);
        ck_assert_int_eq(NN()->relu_backward(NULL, n, gy, c.r, o), EQM_OK);
        ck_assert_int_eq(NN()->batchnorm_backward(NULL, &u, din2, dg2, db2, gy, c.in, NULL,
                                                  c.gamma, c.save), EQM_OK);
        expect_close("bn fused relu din", din, din2, n, 1e-5, 1e-5);
        if (g[2]) {
            expect_close("bn fused relu dgamma", dg, dg2, C, 1e-5, 1e-5);
            expect_close("bn fused relu dbeta", db, db2, C, 1e-5, 1e-5);
        }
        free(y), free(o), free(gy), free(din2), free(dg2), free(db2);
    } else if (g[2]) {
        snprintf(what, sizeof what, "bn cfg %d train %d dgamma", _i / 2, train);
        fd_check(what, bn_loss, &c, c.gamma, C, dg, eps);
        snprintf(what, sizeof what, "bn cfg %d train %d dbeta", _i / 2, train);
        fd_check(what, bn_loss, &c, c.beta, C, db, eps);
    }
    free(c.in), free(c.gamma), free(c.beta), free(c.rm), free(c.rv), free(c.out), free(c.r),
        free(c.save), free(din), free(dg), free(db);
}
END_TEST

START_TEST(test_bn_running_stats)
{
    /* running_var uses the unbiased variance, momentum 0.1, from the given start values */
    eqm_bn_shape s = {4, 1, 1, 0, 0, 1e-5f, 0.1f};
    float x[4] = {1, 2, 3, 6}, out[4], save[2], rm = 0.5f, rv = 2.f, g = 1, b = 0;
    ck_assert_int_eq(NN()->batchnorm_forward(NULL, &s, out, x, &g, &b, &rm, &rv, save), EQM_OK);
    ck_assert_float_eq_tol(rm, 0.9f * 0.5f + 0.1f * 3.f, 1e-6);
    ck_assert_float_eq_tol(rv, 0.9f * 2.f + 0.1f * (14.f / 3.f), 1e-6);
    ck_assert_float_eq_tol(save[0], 3.f, 1e-6);
    ck_assert_float_eq_tol(save[1], 1.f / sqrtf(3.5f + 1e-5f), 1e-6);
    s.M = 1;
    ck_assert_int_eq(NN()->batchnorm_forward(NULL, &s, out, x, &g, &b, &rm, &rv, save),
                     EQM_ERR_INVAL);
}
END_TEST

/* ------------------------------------------------------------------ pools, relu -- */

typedef struct {
    eqm_pool_shape s;
    float *in, *out, *r;
    int32_t *am;
    size_t no;
    int kind; /* 0 maxpool, 1 avgpool, 2 relu */
} pool_t;

static double pool_loss(void *vc)
{
    pool_t *c = vc;
    const eqm_pool_shape *s = &c->s;
    if (c->kind == 0)
        ck_assert_int_eq(NN()->maxpool_forward(NULL, s, c->out, c->in, c->am), EQM_OK);
    else if (c->kind == 1)
        ck_assert_int_eq(NN()->avgpool_forward(NULL, s->N, s->H * s->W, s->C, c->out, c->in),
                         EQM_OK);
    else
        ck_assert_int_eq(NN()->relu_forward(NULL, c->no, c->out, c->in), EQM_OK);
    return dotd(c->out, c->r, c->no);
}

static void pool_run(int kind, int N, int H, int W, int C, int k, int st, int pad)
{
    pool_t c = {.s = {N, H, W, C, k, st, pad}};
    c.kind = kind;
    size_t ni = (size_t)N * H * W * C;
    if (kind == 0)
        c.no = (size_t)N * ((H + 2 * pad - k) / st + 1) * ((W + 2 * pad - k) / st + 1) * C;
    else if (kind == 1)
        c.no = (size_t)N * C;
    else
        c.no = ni;
    c.in = rnd(ni, 1.f);
    c.out = zeros(c.no);
    c.r = rnd(c.no, 1.f);
    c.am = calloc(c.no, sizeof(int32_t));
    pool_loss(&c);
    float *din = zeros(ni);
    if (kind == 0)
        ck_assert_int_eq(NN()->maxpool_backward(NULL, &c.s, din, c.r, c.am), EQM_OK);
    else if (kind == 1)
        ck_assert_int_eq(NN()->avgpool_backward(NULL, N, H * W, C, din, c.r), EQM_OK);
    else
        ck_assert_int_eq(NN()->relu_backward(NULL, ni, din, c.r, c.out), EQM_OK);
    const char *names[] = {"maxpool", "avgpool", "relu"};
    fd_check(names[kind], pool_loss, &c, c.in, ni, din, 1e-3f);
    free(c.in), free(c.out), free(c.r), free(c.am), free(din);
}

START_TEST(test_pool_relu_grad)
{
    pool_run(0, 2, 9, 8, 3, 3, 2, 1);  /* ResNet stem pool 3x3/2 pad 1 */
    pool_run(0, 2, 8, 8, 5, 2, 2, 0);
    pool_run(0, 1, 7, 7, 4, 3, 1, 1);
    pool_run(1, 3, 5, 4, 6, 0, 0, 0);
    pool_run(2, 1, 10, 10, 7, 0, 0, 0);
}
END_TEST

/* ------------------------------------------------------------------ linear ------ */

typedef struct {
    eqm_linear_shape s;
    float *in, *w, *b, *out, *r;
} lin_t;

static double lin_loss(void *vc)
{
    lin_t *c = vc;
    ck_assert_int_eq(NN()->linear_forward(NULL, &c->s, c->out, c->in, c->w, c->b), EQM_OK);
    return dotd(c->out, c->r, (size_t)c->s.N * c->s.C_out);
}

START_TEST(test_linear_grad)
{
    lin_t c = {.s = {6, 9, 4}};
    c.in = rnd(54, 1.f);
    c.w = rnd(36, 1.f);
    c.b = rnd(4, 1.f);
    c.out = zeros(24);
    c.r = rnd(24, 1.f);
    float *din = zeros(54), *dw = zeros(36), *db = zeros(4);
    ck_assert_int_eq(NN()->linear_backward(NULL, &c.s, din, dw, db, c.r, c.in, c.w), EQM_OK);
    fd_check("linear din", lin_loss, &c, c.in, 54, din, 1e-2f);
    fd_check("linear dw", lin_loss, &c, c.w, 36, dw, 1e-2f);
    fd_check("linear db", lin_loss, &c, c.b, 4, db, 1e-2f);
    free(c.in), free(c.w), free(c.b), free(c.out), free(c.r), free(din), free(dw), free(db);
}
END_TEST

/* ------------------------------------------------------------------ add, concat -- */

START_TEST(test_add_concat)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {7, 8, 9, 10}, out[10], s[6];
    ck_assert_int_eq(NN()->add_forward(NULL, 6, s, a, a), EQM_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(s[i], 2 * a[i]);
    ck_assert_int_eq(NN()->concat_forward(NULL, 2, 3, 2, out, a, b), EQM_OK);
    const float want[10] = {1, 2, 3, 7, 8, 4, 5, 6, 9, 10};
    for (int i = 0; i < 10; i++)
        ck_assert_float_eq(out[i], want[i]);
    float da[6] = {0}, db[4] = {1, 1, 1, 1};
    ck_assert_int_eq(NN()->concat_backward(NULL, 2, 3, 2, da, db, want), EQM_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(da[i], a[i]);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(db[i], b[i] + 1);
    ck_assert_int_eq(NN()->concat_backward(NULL, 2, 3, 2, NULL, db, want), EQM_OK);
    ck_assert_float_eq(db[0], 2 * b[0] + 1);
}
END_TEST

/* ------------------------------------------------------------------ l2norm, losses */

typedef struct {
    int N, D;
    float *in, *out, *r, *norms, *t, *scratch;
    eqm_ntxent_shape ns;
    int32_t *lab;
    int kind; /* 0 l2norm, 1 ntxent, 2 cosine, 3 xent */
} loss_t;

static double any_loss(void *vc)
{
    loss_t *c = vc;
    float l = 0;
    switch (c->kind) {
    case 0:
        ck_assert_int_eq(NN()->l2norm_forward(NULL, c->N, c->D, c->out, c->in, c->norms),
                         EQM_OK);
        return dotd(c->out, c->r, (size_t)c->N * c->D);
    case 1:
        ck_assert_int_eq(NN()->ntxent_forward(NULL, &c->ns, &l, c->in, c->scratch), EQM_OK);
        return l;
    case 2:
        ck_assert_int_eq(NN()->cosine_loss_forward(NULL, c->N, c->D, &l, c->in, c->t), EQM_OK);
        return l;
    default:
        ck_assert_int_eq(NN()->softmax_xent_forward(NULL, c->N, c->D, &l, c->in, c->lab,
                                                    c->scratch),
                         EQM_OK);
        return l;
    }
}

static void loss_run(int kind, int N, int D, float tau, int period)
{
    loss_t c = {.N = N, .D = D};
    c.kind = kind;
    size_t n = (size_t)N * D;
    c.in = rnd(n, 1.f);
    c.out = zeros(n);
    c.r = rnd(n, 1.f);
    c.norms = zeros((size_t)N);
    c.t = rnd(n, 1.f);
    c.ns = (eqm_ntxent_shape){N, D, tau, period};
    c.scratch = zeros(kind == 1 ? NN()->ntxent_scratch_floats(&c.ns) : n);
    c.lab = calloc((size_t)N, sizeof(int32_t));
    for (int i = 0; i < N; i++)
        c.lab[i] = (i * 7 + 3) % D;
    any_loss(&c);
    float *g = rnd(n, 1.f), *g0 = dup(g, n);
    switch (kind) {
    case 0:
        ck_assert_int_eq(NN()->l2norm_backward(NULL, N, D, g, c.r, c.out, c.norms), EQM_OK);
        break;
    case 1:
        ck_assert_int_eq(NN()->ntxent_backward(NULL, &c.ns, g, 1.f, c.in, c.scratch), EQM_OK);
        break;
    case 2:
        ck_assert_int_eq(NN()->cosine_loss_backward(NULL, N, D, g, 1.f, c.in, c.t), EQM_OK);
        break;
    default:
        ck_assert_int_eq(NN()->softmax_xent_backward(NULL, N, D, g, 1.f, c.scratch, c.lab),
                         EQM_OK);
    }
    for (size_t i = 0; i < n; i++)
        g[i] -= g0[i];
    char what[64];
    snprintf(what, sizeof what, "loss kind %d N %d D %d period %d", kind, N, D, period);
    fd_check(what, any_loss, &c, c.in, n, g, 1e-3f);
    free(c.in), free(c.out), free(c.r), free(c.norms), free(c.t), free(c.scratch), free(c.lab),
        free(g), free(g0);
}

START_TEST(test_loss_grad)
{
    loss_run(0, 5, 7, 0, 0);
    loss_run(1, 8, 6, 0.5f, 0);
    loss_run(1, 16, 5, 0.2f, 4);  /* EquiMod layout: 4 blocks of 4, sibling excluded */
    loss_run(1, 12, 9, 0.2f, 3);
    loss_run(2, 6, 8, 0, 0);
    loss_run(3, 7, 5, 0, 0);
}
END_TEST

START_TEST(test_ntxent_scale)
{
    /* scale multiplies the gradient; exclude_period drops the right entries: with
     * period = B2 nothing but self is dropped, so the loss equals the default one */
    eqm_ntxent_shape s = {8, 4, 0.5f, 0}, s8 = {8, 4, 0.5f, 8};
    float *z = rnd(32, 1.f), *sc = zeros(NN()->ntxent_scratch_floats(&s));
    float l0, l8, *g1 = zeros(32), *g3 = zeros(32);
    ck_assert_int_eq(NN()->ntxent_forward(NULL, &s8, &l8, z, sc), EQM_OK);
    ck_assert_int_eq(NN()->ntxent_forward(NULL, &s, &l0, z, sc), EQM_OK);
    ck_assert_float_eq_tol(l0, l8, 1e-6);
    ck_assert_int_eq(NN()->ntxent_backward(NULL, &s, g1, 1.f, z, sc), EQM_OK);
    ck_assert_int_eq(NN()->ntxent_backward(NULL, &s, g3, 3.f, z, sc), EQM_OK);
    for (int i = 0; i < 32; i++)
        ck_assert_float_eq_tol(g3[i], 3.f * g1[i], 1e-5);
    free(z), free(sc), free(g1), free(g3);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("nn_grad");
    TCase *tc = tcase_create("fd");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_conv_grad, 0, 5 * N_CONV);
    tcase_add_loop_test(tc, test_bn_grad, 0, 2 * (int)(sizeof bn_cfg / sizeof *bn_cfg));
    tcase_add_test(tc, test_bn_running_stats);
    tcase_add_test(tc, test_pool_relu_grad);
    tcase_add_test(tc, test_linear_grad);
    tcase_add_test(tc, test_add_concat);
    tcase_add_test(tc, test_loss_grad);
    tcase_add_test(tc, test_ntxent_scale);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* no host_threads_init here: Check forks per test and the pool (started lazily by the
     * first op inside the child) must belong to the process that uses it */
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
