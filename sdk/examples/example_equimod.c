/* example_equimod.c: a complete out-of-tree equimod equivariance-module plugin.
 *
 * equimod/example_equimod: predicts the embedding of each view from the original image's
 * embedding and the view's augmentation record t (method-reference.md §2):
 *   y0   = [h0 ; h0]                 the original's h, once per view       (2N, D)
 *   pred = [y0 , t] W^T              one Linear without bias, "pred.weight" (D, D + P)
 *   L    = NT-Xent([yt ; pred], tau) yt = [h1 ; h2], 4N rows of D; the positive of yt[k]
 *                                    is pred[k]
 *   io->loss = lambda * L; backward scales by lambda * loss_scale.
 * It shows what an equivariance module gets (kinds.h, eqm_module_io): io->in = h of the
 * original, view 1 and view 2 (rows = 3N); io->t = standardised t of view 1 then view 2
 * (2N rows of P = cfg->p_dim); io->t has no gradient.
 * Build: see the Makefile beside this file (pkg-config equimod-sdk).
 * Dimension legend: N images, D = in_dim, P = p_dim.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <equimod/equimod.h>

typedef struct eqv_opts {
    double tau;
    double lambda;
} eqv_opts;

static const eqm_param_spec eqv_params[] = {
    {"tau", EQM_PARAM_FLOAT, offsetof(eqv_opts, tau), "0.2", 1e-3, 100, NULL,
     "temperature of the equivariance NT-Xent"},
    {"lambda", EQM_PARAM_FLOAT, offsetof(eqv_opts, lambda), "1.0", 0, 1e6, NULL,
     "weight of the loss"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

typedef struct eqv {
    const eqm_host_api *api;
    eqm_host *host;
    int D, P, max_rows;
    float tau, lambda;
    float *const *params;
    float *const *grads;
    float *act;
    int last_rows;
} eqv;

static int eqv_create(const eqm_host_api *api, eqm_host *host, const void *opts,
                      const eqm_module_cfg *cfg, void **self)
{
    const eqv_opts *o = opts;
    if (!api->nn)
        return api->set_error(host, EQM_ERR_STATE, "the host offers no nn ops (api->nn)");
    if (cfg->in_dim <= 0 || cfg->p_dim <= 0 || cfg->max_rows < 0)
        return api->set_error(host, EQM_ERR_INVAL, "bad in_dim %d, p_dim %d or max_rows %d",
                              cfg->in_dim, cfg->p_dim, cfg->max_rows);
    eqv *s = api->alloc(host, sizeof *s, 0);
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    s->D = cfg->in_dim;
    s->P = cfg->p_dim;
    s->max_rows = cfg->max_rows;
    s->tau = (float)o->tau;
    s->lambda = (float)o->lambda;
    *self = s;
    return EQM_OK;
}

static void eqv_destroy(void *self)
{
    eqv *s = self;
    if (s)
        s->api->free(s->host, s);
}

static int eqv_n_tensors(const void *self)
{
    (void)self;
    return 1;
}

static int eqv_tensor_info(const void *self, int i, eqm_tensor_info *info)
{
    const eqv *s = self;
    if (i != 0)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "tensor index %d out of range", i);
    memset(info, 0, sizeof *info);
    info->name = "pred.weight";
    info->ndim = 2;
    info->shape[0] = s->D;
    info->shape[1] = s->D + s->P;
    info->flags = EQM_T_DECAY;
    return EQM_OK;
}

/* Arena offsets for N images (rows = 3N), in floats. */
typedef struct layout {
    size_t x, z, dz, dx, dy0, nt, total;
} layout;

static layout arena(const eqv *s, int rows)
{
    int N = rows / 3;
    size_t M = 2 * (size_t)N, C = (size_t)s->D + (size_t)s->P;
    eqm_ntxent_shape sh = {4 * N, s->D, s->tau, 0};
    layout a;
    a.x = 0;                            /* [y0 , t]     (2N, D + P) */
    a.z = a.x + M * C;                  /* [yt ; pred]  (4N, D) */
    a.dz = a.z + 2 * M * (size_t)s->D;  /* d[yt ; pred] (4N, D) */
    a.dx = a.dz + 2 * M * (size_t)s->D; /* d[y0 , t]    (2N, D + P) */
    a.dy0 = a.dx + M * C;               /* dy0          (2N, D) */
    a.nt = a.dy0 + M * (size_t)s->D;    /* NT-Xent scratch */
    a.total = a.nt + (N > 0 ? s->api->nn->ntxent_scratch_floats(&sh) : 0);
    return a;
}

static size_t eqv_act_floats(const void *self, int rows) { return arena(self, rows).total; }

static int eqv_bind(void *self, const eqm_module_bind *b)
{
    eqv *s = self;
    if (!b->params || !b->grads || (s->max_rows > 0 && !b->act))
        return s->api->set_error(s->host, EQM_ERR_INVAL, "bind: params, grads and act needed");
    s->params = b->params;
    s->grads = b->grads;
    s->act = b->act;
    return EQM_OK;
}

static int eqv_init(void *self, eqm_rng *rng)
{
    eqv *s = self;
    if (!s->params)
        return s->api->set_error(s->host, EQM_ERR_STATE, "init before bind");
    size_t C = (size_t)s->D + (size_t)s->P;
    double bound = 1.0 / sqrt((double)C);
    for (size_t i = 0; i < (size_t)s->D * C; i++)
        s->params[0][i] = (float)((2.0 * s->api->rng_uniform(rng) - 1.0) * bound);
    return EQM_OK;
}

static int eqv_forward(void *self, eqm_module_io *io)
{
    eqv *s = self;
    const eqm_nn_api *nn = s->api->nn;
    int R = io->rows, N = R / 3, D = s->D;
    if (!s->act)
        return s->api->set_error(s->host, EQM_ERR_STATE, "forward before bind");
    if (R < 3 || R % 3 || R > s->max_rows || !io->t)
        return s->api->set_error(s->host, EQM_ERR_INVAL,
                                 "rows %d: expected 3N in 3..%d with t", R, s->max_rows);
    layout a = arena(s, R);
    float *x = s->act + a.x, *z = s->act + a.z;
    size_t nd = (size_t)N * D;
    int rc = EQM_OK;
    for (int v = 0; v < 2 && rc == EQM_OK; v++) /* y0 = [h0 ; h0] beside t of view v */
        rc = nn->concat_forward(s->host, N, D, s->P, x + (size_t)v * N * (D + s->P), io->in,
                                io->t + (size_t)v * N * s->P);
    memcpy(z, io->in + nd, 2 * nd * sizeof(float)); /* yt = [h1 ; h2] */
    eqm_linear_shape l = {2 * N, D + s->P, D};
    if (rc == EQM_OK)
        rc = nn->linear_forward(s->host, &l, z + 2 * nd, x, s->params[0], NULL);
    eqm_ntxent_shape sh = {4 * N, D, s->tau, 0};
    float loss = 0.0f;
    if (rc == EQM_OK)
        rc = nn->ntxent_forward(s->host, &sh, &loss, z, s->act + a.nt);
    if (rc != EQM_OK)
        return rc;
    if (!isfinite(loss))
        return s->api->set_error(s->host, EQM_ERR_NUMERIC, "NT-Xent loss is %g", (double)loss);
    io->loss = (double)s->lambda * loss;
    io->n_metrics = 1;
    io->metrics[0].name = "l_predict";
    io->metrics[0].value = loss;
    s->last_rows = io->train ? R : 0;
    return EQM_OK;
}

static int eqv_backward(void *self, eqm_module_io *io)
{
    eqv *s = self;
    const eqm_nn_api *nn = s->api->nn;
    int R = io->rows, N = R / 3, D = s->D;
    if (R != s->last_rows)
        return s->api->set_error(s->host, EQM_ERR_STATE, "backward of %d rows without a "
                                 "training forward of the same rows", R);
    layout a = arena(s, R);
    float *dz = s->act + a.dz, *dx = s->act + a.dx, *dy0 = s->act + a.dy0;
    size_t nd = (size_t)N * D, C = (size_t)D + (size_t)s->P;
    memset(dz, 0, 4 * nd * sizeof(float));
    memset(dx, 0, 2 * (size_t)N * C * sizeof(float));
    memset(dy0, 0, 2 * nd * sizeof(float));
    eqm_ntxent_shape sh = {4 * N, D, s->tau, 0};
    int rc = nn->ntxent_backward(s->host, &sh, dz, s->lambda * io->loss_scale,
                                 s->act + a.z, s->act + a.nt);
    eqm_linear_shape l = {2 * N, D + s->P, D};
    if (rc == EQM_OK)
        rc = nn->linear_backward(s->host, &l, dx, s->grads[0], NULL, dz + 2 * nd,
                                 s->act + a.x, s->params[0]);
    if (rc == EQM_OK) /* t gets no gradient: its part of dx is dropped */
        rc = nn->concat_backward(s->host, 2 * N, D, s->P, dy0, NULL, dx);
    if (rc != EQM_OK || !io->din)
        return rc;
    for (size_t i = 0; i < nd; i++) {
        io->din[i] += dy0[i] + dy0[nd + i]; /* h0 fed both predictions */
        io->din[nd + i] += dz[i];           /* yt = h1 */
        io->din[2 * nd + i] += dz[nd + i];  /* yt = h2 */
    }
    return EQM_OK;
}

static const eqm_module_ops eqv_ops = {
    .size = sizeof(eqm_module_ops),
    .create = eqv_create,
    .destroy = eqv_destroy,
    .n_tensors = eqv_n_tensors,
    .tensor_info = eqv_tensor_info,
    .act_floats = eqv_act_floats,
    .bind = eqv_bind,
    .init = eqv_init,
    .forward = eqv_forward,
    .backward = eqv_backward,
    .flags = 0,
};

static const eqm_plugin_desc eqv_desc = {
    EQM_DESC_HEADER(EQM_KIND_EQUIMOD),
    "example_equimod",
    "1.0.0",
    "predict each view's h from the original's h and t (SDK example)",
    eqv_params,
    sizeof(eqv_opts),
    &eqv_ops,
};

static const eqm_plugin_desc *const descs[] = {&eqv_desc};
EQM_PLUGIN_ENTRY(descs)
