/* plugins/equimod/equimod/equimod.c: the EquiMod equivariance module (METHOD.md §5-7, §11).
 *
 *   y   = g'(h)                       3N rows: original, view 1, view 2     "proj_eq.*"
 *         g' = hidden blocks Linear(nb)+BN+ReLU, then Linear(nb) + BN(affine=False)
 *   p   = ParamProj(t)                2N rows (t standardised by the host)  "proj_t.*"
 *         = [hidden blocks], Linear(P -> T, nb) + BN(T, affine=True), no ReLU
 *   y0  = [y[0:N] ; y[0:N]],  yt = y[N:3N]
 *   ŷt  = u_psi([y0 , p])             2N rows, input order [y_original, projected t]
 *         u_psi = [hidden blocks], Linear(Y+T -> Y, nb) + BN(Y, affine=False)  "pred_eq.*"
 *   L_equi = NT-Xent([yt ; ŷt], tau)  4N rows; the positive of yt[k] is ŷt[k]; every other
 *         row is a negative, the sibling view and its prediction included (the released
 *         code, METHOD.md §7, §12.1). exclude_sibling = true drops those two rows from the
 *         denominator (the paper's Eq. 4): exclude_period = N in eqm_ntxent_shape.
 *   io->loss = lambda * L_equi: the host adds it to the method's loss as it is (total
 *         L = L_inv + lambda * L_equi, METHOD.md §7); backward scales by lambda*loss_scale.
 * Metrics (METHOD.md §11): l_equi (unweighted), equi_gain = mean_k cos(yt,ŷt) -
 *   mean_k cos(yt,y0), equi_ratio = (1 - mean cos(yt,y0)) / (1 - mean cos(yt,ŷt)),
 *   cos_yt_yhat, cos_yt_y0.
 * No stop-gradient anywhere: gradients reach h through yt and through y0 (via u_psi).
 * t has no gradient.
 *
 * Left out: the multi-GPU all-gather; an identity g' (reference string "none").
 * Dimension legend: N images, D = in_dim, P = p_dim, Y = width of y, T = width of p.
 * Threading: one instance is driven from the training thread only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <equimod/equimod.h>

#include "../../common/mlp.h"

typedef struct equimod_opts {
    const char *head;
    const char *t_layers;
    const char *pred_hidden;
    double tau;
    double lambda;
    int exclude_sibling;
} equimod_opts;

static const eqm_param_spec equimod_params[] = {
    {"head", EQM_PARAM_STRING, offsetof(equimod_opts, head), "2048-2048-128", 0, 0, NULL,
     "widths of g' ('-' separated); the last is y's width (Linear nb + BN without affine)"},
    {"t_layers", EQM_PARAM_STRING, offsetof(equimod_opts, t_layers), "128", 0, 0, NULL,
     "widths of the projection of t; the last is Linear nb + BN with affine, no ReLU"},
    {"pred_hidden", EQM_PARAM_STRING, offsetof(equimod_opts, pred_hidden), "", 0, 0, NULL,
     "hidden widths of the predictor u_psi (empty: one Linear nb + BN without affine)"},
    {"tau", EQM_PARAM_FLOAT, offsetof(equimod_opts, tau), "0.2", 1e-4, 100, NULL,
     "temperature of the equivariance NT-Xent"},
    {"lambda", EQM_PARAM_FLOAT, offsetof(equimod_opts, lambda), "1.0", 0, 1e6, NULL,
     "weight of L_equi; the reported loss is lambda * L_equi"},
    {"exclude_sibling", EQM_PARAM_BOOL, offsetof(equimod_opts, exclude_sibling), "false", 0,
     0, NULL,
     "drop the other view of the same image and its prediction from the negatives "
     "(paper's Eq. 4); false = released code"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};

typedef struct equimod {
    const eqm_host_api *api;
    eqm_host *host;
    int max_rows;
    float tau, lambda;
    int exclude_sibling;
    mlp g, tp, u; /* g', ParamProj, u_psi */
    float *const *params, *const *grads;
    float *act;
    int last_rows, last_train;
} equimod;

static int parse_at_least_one(const equimod *s, const char *key, const char *spec, int *w,
                              const char *hint)
{
    char err[256];
    int n = mlp_parse_widths(spec, w, MLP_MAX_LAYERS, err, sizeof err);
    if (n < 0)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "option %s: %s", key, err);
    if (n == 0)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "option %s = \"%s\": %s", key,
                                 spec, hint);
    return n;
}

static int equimod_create(const eqm_host_api *api, eqm_host *host, const void *opts_,
                          const eqm_module_cfg *cfg, void **self)
{
    const equimod_opts *o = opts_;
    char err[256];
    if (!api->nn)
        return api->set_error(host, EQM_ERR_STATE, "the host offers no nn ops (api->nn)");
    if (cfg->p_dim < 1)
        return api->set_error(host, EQM_ERR_INVAL,
                              "p_dim %d: EquiMod needs the augmentation parameters t "
                              "(at least one augmentation with parameters)", cfg->p_dim);
    if (cfg->max_rows < 3)
        return api->set_error(host, EQM_ERR_INVAL,
                              "max_rows %d: EquiMod needs 3N rows (original, view 1, view 2)",
                              cfg->max_rows);
    equimod *s = api->alloc(host, sizeof *s, 0);
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    s->max_rows = cfg->max_rows;
    s->tau = (float)o->tau;
    s->lambda = (float)o->lambda;
    s->exclude_sibling = o->exclude_sibling;
    int gw[MLP_MAX_LAYERS], tw[MLP_MAX_LAYERS], uw[MLP_MAX_LAYERS];
    int ng = parse_at_least_one(s, "head", o->head, gw,
                                "g' needs at least one layer (an identity head is not "
                                "supported); the paper's value is 2048-2048-128");
    int nt = ng < 0 ? ng
                    : parse_at_least_one(s, "t_layers", o->t_layers, tw,
                                         "the projection of t needs one width, e.g. 128");
    int nu = nt < 0 ? nt : mlp_parse_widths(o->pred_hidden, uw, MLP_MAX_LAYERS - 1, err,
                                            sizeof err);
    int rc = EQM_OK;
    if (ng < 0 || nt < 0)
        rc = ng < 0 ? ng : nt;
    else if (nu < 0)
        rc = api->set_error(host, EQM_ERR_INVAL, "option pred_hidden: %s", err);
    if (rc == EQM_OK) {
        int Y = gw[ng - 1], T = tw[nt - 1];
        rc = mlp_build(&s->g, "proj_eq", cfg->in_dim, gw, ng - 1, Y, 0, MLP_BN_PLAIN, 0, err,
                       sizeof err);
        if (rc == EQM_OK)
            rc = mlp_build(&s->tp, "proj_t", cfg->p_dim, tw, nt - 1, T, 0, MLP_BN_AFFINE, 0,
                           err, sizeof err);
        if (rc == EQM_OK)
            rc = mlp_build(&s->u, "pred_eq", Y + T, uw, nu, Y, 0, MLP_BN_PLAIN, 0, err,
                           sizeof err);
        if (rc < 0)
            rc = api->set_error(host, rc, "%s", err);
    }
    if (rc < 0) {
        api->free(host, s);
        return rc;
    }
    *self = s;
    return EQM_OK;
}

static void equimod_destroy(void *self)
{
    equimod *s = self;
    if (s)
        s->api->free(s->host, s);
}

static int equimod_n_tensors(const void *self)
{
    const equimod *s = self;
    return s->g.n_tensors + s->tp.n_tensors + s->u.n_tensors;
}

static int equimod_tensor_info(const void *self, int i, eqm_tensor_info *info)
{
    const equimod *s = self;
    if (i < 0 || i >= equimod_n_tensors(self))
        return s->api->set_error(s->host, EQM_ERR_INVAL, "tensor index %d out of range", i);
    if (i < s->g.n_tensors)
        mlp_tensor_info(&s->g, i, info);
    else if ((i -= s->g.n_tensors) < s->tp.n_tensors)
        mlp_tensor_info(&s->tp, i, info);
    else
        mlp_tensor_info(&s->u, i - s->tp.n_tensors, info);
    return EQM_OK;
}

static eqm_ntxent_shape nt_shape(const equimod *s, int N)
{
    eqm_ntxent_shape sh = {4 * N, s->g.out_dim, s->tau, s->exclude_sibling ? N : 0};
    return sh;
}

/* act layout for rows = 3N:
 *   g' (3N) | ParamProj (2N) | u_psi (2N) (forward activations) | backward scratch shared
 *   by the three | cat (2N, Y+T) |
 *   zc (4N, Y) = [yt ; ŷt] | dzc (4N, Y) | dy (3N, Y) | dcat (2N, Y+T) | dp (2N, T) |
 *   NT-Xent scratch */
typedef struct eq_bufs {
    float *g, *tp, *u, *gs, *cat, *zc, *dzc, *dy, *dcat, *dp, *nt;
} eq_bufs;

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static size_t layout(const equimod *s, float *act, int rows, eq_bufs *b)
{
    int N = rows / 3;
    size_t Y = (size_t)s->g.out_dim, T = (size_t)s->tp.out_dim, off = 0;
    eqm_ntxent_shape sh = nt_shape(s, N);
#define TAKE(field, n)                           \
    do {                                         \
        if (b)                                   \
            b->field = act ? act + off : NULL;   \
        off += (n);                              \
    } while (0)
    TAKE(g, mlp_act_floats(&s->g, 3 * N));
    TAKE(tp, mlp_act_floats(&s->tp, 2 * N));
    TAKE(u, mlp_act_floats(&s->u, 2 * N));
    TAKE(gs, max_sz(mlp_scratch_floats(&s->g, 3 * N),
                    max_sz(mlp_scratch_floats(&s->tp, 2 * N), mlp_scratch_floats(&s->u, 2 * N))));
    TAKE(cat, 2 * (size_t)N * (Y + T));
    TAKE(zc, 4 * (size_t)N * Y);
    TAKE(dzc, 4 * (size_t)N * Y);
    TAKE(dy, 3 * (size_t)N * Y);
    TAKE(dcat, 2 * (size_t)N * (Y + T));
    TAKE(dp, 2 * (size_t)N * T);
    TAKE(nt, s->api->nn->ntxent_scratch_floats(&sh));
#undef TAKE
    return off;
}

static size_t equimod_act_floats(const void *self, int rows)
{
    return layout(self, NULL, rows, NULL);
}

static int equimod_bind(void *self, const eqm_module_bind *b)
{
    equimod *s = self;
    if (!b->params || !b->grads || !b->act)
        return s->api->set_error(s->host, EQM_ERR_INVAL,
                                 "bind: params, grads and act are required");
    s->params = b->params;
    s->grads = b->grads;
    s->act = b->act;
    return EQM_OK;
}

static int equimod_init(void *self, eqm_rng *rng)
{
    equimod *s = self;
    if (!s->params)
        return s->api->set_error(s->host, EQM_ERR_STATE, "init before bind");
    mlp_init(&s->g, s->api, rng, s->params);
    mlp_init(&s->tp, s->api, rng, s->params + s->g.n_tensors);
    mlp_init(&s->u, s->api, rng, s->params + s->g.n_tensors + s->tp.n_tensors);
    return EQM_OK;
}

static double cosine(const float *a, const float *b, int D)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < D; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    /* torch.nn.functional.cosine_similarity clamps each norm at eps = 1e-8 */
    return ab / (fmax(sqrt(aa), 1e-8) * fmax(sqrt(bb), 1e-8));
}

static int equimod_forward(void *self, eqm_module_io *io)
{
    equimod *s = self;
    const eqm_host_api *api = s->api;
    const eqm_nn_api *nn = api->nn;
    if (!s->act)
        return api->set_error(s->host, EQM_ERR_STATE, "forward before bind");
    int rows = io->rows;
    if (rows < 3 || rows % 3 || rows > s->max_rows)
        return api->set_error(s->host, EQM_ERR_INVAL,
                              "rows %d: expected 3N rows (original, view 1, view 2), at most "
                              "%d", rows, s->max_rows);
    if (!io->t)
        return api->set_error(s->host, EQM_ERR_INVAL, "io->t (standardised t) is required");
    int N = rows / 3, Y = s->g.out_dim, T = s->tp.out_dim;
    size_t NY = (size_t)N * Y;
    eq_bufs b;
    layout(s, s->act, rows, &b);
    float *const *pg = s->params, *const *pt = pg + s->g.n_tensors,
                 *const *pu = pt + s->tp.n_tensors;
    const float *y, *p, *yhat; /* (3N, Y), (2N, T), (2N, Y) */
    int rc = mlp_forward(&s->g, api, s->host, pg, b.g, 3 * N, io->train, io->in, &y);
    if (rc == EQM_OK)
        rc = mlp_forward(&s->tp, api, s->host, pt, b.tp, 2 * N, io->train, io->t, &p);
    for (int v = 0; v < 2 && rc == EQM_OK; v++) /* [y_original, projected t] per view */
        rc = nn->concat_forward(s->host, N, Y, T, b.cat + (size_t)v * N * (Y + T), y,
                                p + (size_t)v * N * T);
    if (rc == EQM_OK)
        rc = mlp_forward(&s->u, api, s->host, pu, b.u, 2 * N, io->train, b.cat, &yhat);
    if (rc < 0)
        return rc;
    memcpy(b.zc, y + NY, 2 * NY * sizeof(float));
    memcpy(b.zc + 2 * NY, yhat, 2 * NY * sizeof(float));
    eqm_ntxent_shape sh = nt_shape(s, N);
    float l_equi = 0;
    rc = nn->ntxent_forward(s->host, &sh, &l_equi, b.zc, b.nt);
    if (rc < 0)
        return rc;
    if (!isfinite(l_equi))
        return api->set_error(s->host, EQM_ERR_NUMERIC, "L_equi is %g", (double)l_equi);

    double c_pred = 0, c_orig = 0;
    for (int k = 0; k < 2 * N; k++) {
        const float *yt = y + NY + (size_t)k * Y;
        c_pred += cosine(yt, yhat + (size_t)k * Y, Y);
        c_orig += cosine(yt, y + (size_t)(k % N) * Y, Y);
    }
    c_pred /= 2 * N;
    c_orig /= 2 * N;
    io->loss = (double)s->lambda * l_equi;
    io->n_metrics = 5;
    io->metrics[0] = (eqm_metric){"l_equi", l_equi};
    io->metrics[1] = (eqm_metric){"equi_gain", c_pred - c_orig};
    io->metrics[2] = (eqm_metric){"equi_ratio", (1 - c_orig) / fmax(1 - c_pred, 1e-12)};
    io->metrics[3] = (eqm_metric){"cos_yt_yhat", c_pred};
    io->metrics[4] = (eqm_metric){"cos_yt_y0", c_orig};
    s->last_rows = rows;
    s->last_train = io->train;
    return EQM_OK;
}

static int equimod_backward(void *self, eqm_module_io *io)
{
    equimod *s = self;
    const eqm_host_api *api = s->api;
    const eqm_nn_api *nn = api->nn;
    int rows = io->rows;
    if (rows != s->last_rows || !s->last_train)
        return api->set_error(s->host, EQM_ERR_STATE, "backward needs a training forward "
                              "of the same %d rows first", rows);
    int N = rows / 3, Y = s->g.out_dim, T = s->tp.out_dim;
    size_t NY = (size_t)N * Y;
    eq_bufs b;
    layout(s, s->act, rows, &b);
    float *const *pg = s->params, *const *pt = pg + s->g.n_tensors,
                 *const *pu = pt + s->tp.n_tensors;
    float *const *gg = s->grads, *const *gt = gg + s->g.n_tensors,
                 *const *gu = gt + s->tp.n_tensors;

    memset(b.dzc, 0, 4 * NY * sizeof(float));
    memset(b.dy, 0, 3 * NY * sizeof(float));
    memset(b.dcat, 0, 2 * (size_t)N * (Y + T) * sizeof(float));
    memset(b.dp, 0, 2 * (size_t)N * T * sizeof(float));
    eqm_ntxent_shape sh = nt_shape(s, N);
    int rc = nn->ntxent_backward(s->host, &sh, b.dzc, s->lambda * io->loss_scale, b.zc, b.nt);
    if (rc < 0)
        return rc;
    /* yt = y[N:3N] */
    for (size_t i = 0; i < 2 * NY; i++)
        b.dy[NY + i] += b.dzc[i];
    /* ŷt = u_psi(cat) */
    rc = mlp_backward(&s->u, api, s->host, pu, gu, b.u, b.gs, 2 * N, b.cat, b.dzc + 2 * NY,
                      b.dcat);
    /* cat = [y0, p]: both views add into dy[0:N] */
    for (int v = 0; v < 2 && rc == EQM_OK; v++)
        rc = nn->concat_backward(s->host, N, Y, T, b.dy, b.dp + (size_t)v * N * T,
                                 b.dcat + (size_t)v * N * (Y + T));
    if (rc == EQM_OK) /* t has no gradient: din = NULL */
        rc = mlp_backward(&s->tp, api, s->host, pt, gt, b.tp, b.gs, 2 * N, io->t, b.dp, NULL);
    if (rc == EQM_OK)
        rc = mlp_backward(&s->g, api, s->host, pg, gg, b.g, b.gs, 3 * N, io->in, b.dy,
                          io->din);
    return rc;
}

static int equimod_out_dim(const void *self) { return ((const equimod *)self)->g.out_dim; }

static const eqm_module_ops equimod_ops = {
    .size = sizeof(eqm_module_ops),
    .create = equimod_create,
    .destroy = equimod_destroy,
    .n_tensors = equimod_n_tensors,
    .tensor_info = equimod_tensor_info,
    .act_floats = equimod_act_floats,
    .bind = equimod_bind,
    .init = equimod_init,
    .forward = equimod_forward,
    .backward = equimod_backward,
    .out_dim = equimod_out_dim,
    .flags = 0,
};

static const eqm_plugin_desc equimod_desc = {
    EQM_DESC_HEADER(EQM_KIND_EQUIMOD),
    .name = "equimod",
    .version = "1.0.0",
    .summary = "EquiMod: equivariant head g', projection of t, predictor u_psi, "
               "equivariance NT-Xent (method-reference.md §2-3)",
    .params = equimod_params,
    .params_size = sizeof(equimod_opts),
    .ops = &equimod_ops,
};

static const eqm_plugin_desc *const descs[] = {&equimod_desc};
EQM_PLUGIN_ENTRY(descs)
