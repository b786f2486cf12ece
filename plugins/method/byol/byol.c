/* plugins/method/byol/byol.c: the BYOL invariance branch as a method plugin.
 *
 * METHOD.md §5 (B) and §8:
 *   projector  f: Linear(D -> 4096, nb), BN, ReLU, Linear(4096 -> 256, with bias)  "proj.*"
 *   predictor  q: Linear(256 -> 4096, nb), BN, ReLU, Linear(4096 -> 256, with bias) "pred.*"
 *   online:  z = f(h), p = q(z) for the 2N rows of h (view 1 then view 2)
 *   target:  zt = f_target(h_target) with the EMA copy of the projector, train-mode BN
 *            (batch statistics), no gradient. There is no target predictor.
 *   loss:    L_BYOL = 2 * mean over the 2N rows of (2 - 2 cos(p_k, zt_swap(k))), where the
 *            halves of zt are swapped: view 1's prediction meets view 2's target and back.
 * Projector tensors carry EQM_T_EMA (BN running statistics included, flagged EMA|BUFFER):
 * the host keeps their target copy, passes it in bind->target and updates it with the
 * cosine schedule of byol_target_momentum (ABI 1.2 target_momentum) from option
 * `ema_base` (tau_base, default 0.996). The target forward updates the target copy's BN running statistics, as
 * PyTorch's train-mode target does. The target backbone is the host's business: it passes
 * its features as io->in_target.
 *
 * Left out: multi-GPU, and averaging BN running statistics in the EMA (host policy).
 * Dimension legend: N images, R = 2N rows, D = in_dim, Z = proj_dim (256), H = hidden.
 * Threading: one instance is driven from the training thread only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <equimod/equimod.h>

#include "../../common/mlp.h"

typedef struct byol_opts {
    const char *proj_hidden;
    int64_t proj_dim;
    const char *pred_hidden;
    double ema_base;
} byol_opts;

static const eqm_param_spec byol_params[] = {
    {"proj_hidden", EQM_PARAM_STRING, offsetof(byol_opts, proj_hidden), "4096", 0, 0, NULL,
     "hidden widths of the projector (Linear nb + BN + ReLU each), '-' separated"},
    {"proj_dim", EQM_PARAM_INT, offsetof(byol_opts, proj_dim), "256", 1, 65536, NULL,
     "width of z and of the prediction (final Linear with bias, no BN)"},
    {"pred_hidden", EQM_PARAM_STRING, offsetof(byol_opts, pred_hidden), "4096", 0, 0, NULL,
     "hidden widths of the predictor, '-' separated"},
    {"ema_base", EQM_PARAM_FLOAT, offsetof(byol_opts, ema_base), "0.996", 0, 1, NULL,
     "tau_base of the target's EMA: tau = 1 - (1 - tau_base)(cos(pi k/K) + 1)/2 "
     "(the host applies the EMA with it)"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};

typedef struct byol {
    const eqm_host_api *api;
    eqm_host *host;
    int max_rows;
    double ema_base;
    mlp proj, pred;
    float *const *params, *const *grads, *const *target;
    float *act;
    int last_rows, last_train;
} byol;

static int byol_create(const eqm_host_api *api, eqm_host *host, const void *opts_,
                       const eqm_module_cfg *cfg, void **self)
{
    const byol_opts *o = opts_;
    char err[256];
    int ph[MLP_MAX_LAYERS], qh[MLP_MAX_LAYERS];
    if (!api->nn)
        return api->set_error(host, EQM_ERR_STATE, "the host offers no nn ops (api->nn)");
    int np = mlp_parse_widths(o->proj_hidden, ph, MLP_MAX_LAYERS - 1, err, sizeof err);
    if (np < 0)
        return api->set_error(host, EQM_ERR_INVAL, "option proj_hidden: %s", err);
    int nq = mlp_parse_widths(o->pred_hidden, qh, MLP_MAX_LAYERS - 1, err, sizeof err);
    if (nq < 0)
        return api->set_error(host, EQM_ERR_INVAL, "option pred_hidden: %s", err);
    if (cfg->max_rows < 2) /* the host may size every module for 3N rows */
        return api->set_error(host, EQM_ERR_INVAL,
                              "max_rows %d: a method needs at least 2 rows (2N)",
                              cfg->max_rows);
    byol *s = api->alloc(host, sizeof *s, 0);
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    s->max_rows = cfg->max_rows;
    s->ema_base = o->ema_base;
    int Z = (int)o->proj_dim;
    int rc = mlp_build(&s->proj, "proj", cfg->in_dim, ph, np, Z, 1, MLP_BN_NONE, EQM_T_EMA,
                       err, sizeof err);
    if (rc == EQM_OK)
        rc = mlp_build(&s->pred, "pred", Z, qh, nq, Z, 1, MLP_BN_NONE, 0, err, sizeof err);
    if (rc < 0) {
        api->free(host, s);
        return api->set_error(host, rc, "%s", err);
    }
    *self = s;
    return EQM_OK;
}

static void byol_destroy(void *self)
{
    byol *s = self;
    if (s)
        s->api->free(s->host, s);
}

static int byol_n_tensors(const void *self)
{
    const byol *s = self;
    return s->proj.n_tensors + s->pred.n_tensors;
}

static int byol_tensor_info(const void *self, int i, eqm_tensor_info *info)
{
    const byol *s = self;
    if (i < 0 || i >= byol_n_tensors(self))
        return s->api->set_error(s->host, EQM_ERR_INVAL, "tensor index %d out of range", i);
    if (i < s->proj.n_tensors)
        mlp_tensor_info(&s->proj, i, info);
    else
        mlp_tensor_info(&s->pred, i - s->proj.n_tensors, info);
    return EQM_OK;
}

/* act layout for R rows:
 *   proj | pred | target proj (forward activations) | backward scratch shared by proj and
 *   pred | zts (R, Z) | dp (R, Z) | dz (R, Z) */
typedef struct byol_bufs {
    float *proj, *pred, *tproj, *gs, *zts, *dp, *dz;
} byol_bufs;

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static size_t layout(const byol *s, float *act, int R, byol_bufs *b)
{
    size_t RZ = (size_t)R * (size_t)s->proj.out_dim, off = 0;
    float *base = act;
#define TAKE(field, n)                  \
    do {                                \
        if (b)                          \
            b->field = base ? base + off : NULL; \
        off += (n);                     \
    } while (0)
    TAKE(proj, mlp_act_floats(&s->proj, R));
    TAKE(pred, mlp_act_floats(&s->pred, R));
    TAKE(tproj, mlp_act_floats(&s->proj, R));
    TAKE(gs, max_sz(mlp_scratch_floats(&s->proj, R), mlp_scratch_floats(&s->pred, R)));
    TAKE(zts, RZ);
    TAKE(dp, RZ);
    TAKE(dz, RZ);
#undef TAKE
    return off;
}

static size_t byol_act_floats(const void *self, int rows)
{
    return layout(self, NULL, rows, NULL);
}

static int byol_bind(void *self, const eqm_module_bind *b)
{
    byol *s = self;
    if (!b->params || !b->grads || !b->act)
        return s->api->set_error(s->host, EQM_ERR_INVAL,
                                 "bind: params, grads and act are required");
    if (!b->target)
        return s->api->set_error(s->host, EQM_ERR_INVAL,
                                 "bind: BYOL needs the EMA target copy of its projector "
                                 "(bind->target); the host must honour "
                                 "EQM_MODULE_NEEDS_TARGET");
    for (int i = 0; i < s->proj.n_tensors; i++)
        if (!b->target[i])
            return s->api->set_error(s->host, EQM_ERR_INVAL,
                                     "bind: no target copy of tensor %s (flagged EQM_T_EMA)",
                                     s->proj.name[i]);
    s->params = b->params;
    s->grads = b->grads;
    s->target = b->target;
    s->act = b->act;
    return EQM_OK;
}

static int byol_init(void *self, eqm_rng *rng)
{
    byol *s = self;
    if (!s->params)
        return s->api->set_error(s->host, EQM_ERR_STATE, "init before bind");
    mlp_init(&s->proj, s->api, rng, s->params);
    mlp_init(&s->pred, s->api, rng, s->params + s->proj.n_tensors);
    /* BYOL starts the target as a copy of the online projector. */
    for (int i = 0; i < s->proj.n_tensors; i++) {
        size_t n = (size_t)s->proj.shape[i][0] *
                   (size_t)(s->proj.ndim[i] > 1 ? s->proj.shape[i][1] : 1);
        memcpy(s->target[i], s->params[i], n * sizeof(float));
    }
    return EQM_OK;
}

static int byol_forward(void *self, eqm_module_io *io)
{
    byol *s = self;
    const eqm_host_api *api = s->api;
    if (!s->act)
        return api->set_error(s->host, EQM_ERR_STATE, "forward before bind");
    int R = io->rows;
    if (R < 2 || R % 2 || R > s->max_rows)
        return api->set_error(s->host, EQM_ERR_INVAL,
                              "rows %d: expected an even count 2N in 2..%d", R, s->max_rows);
    byol_bufs b;
    layout(s, s->act, R, &b);
    int N = R / 2, Z = s->proj.out_dim;
    const float *z, *p, *zt;
    if (!io->train && io->out) { /* embedding forward (EQM_MODULE_EMBEDDING): z only */
        int rc = mlp_forward(&s->proj, api, s->host, s->params, b.proj, R, 0, io->in, &z);
        if (rc < 0)
            return rc;
        memcpy(io->out, z, (size_t)R * (size_t)Z * sizeof(float));
        io->loss = 0;
        io->n_metrics = 0;
        s->last_rows = 0;
        return EQM_OK;
    }
    if (!io->in_target)
        return api->set_error(s->host, EQM_ERR_INVAL,
                              "io->in_target (target backbone features) is required");
    int rc = mlp_forward(&s->proj, api, s->host, s->params, b.proj, R, io->train, io->in, &z);
    if (rc == EQM_OK)
        rc = mlp_forward(&s->pred, api, s->host, s->params + s->proj.n_tensors, b.pred, R,
                         io->train, z, &p);
    if (rc == EQM_OK)
        rc = mlp_forward(&s->proj, api, s->host, s->target, b.tproj, R, io->train,
                         io->in_target, &zt);
    if (rc < 0)
        return rc;
    /* swap the halves of the target: row k meets the other view of the same image */
    size_t half = (size_t)N * (size_t)Z;
    memcpy(b.zts, zt + half, half * sizeof(float));
    memcpy(b.zts + half, zt, half * sizeof(float));
    float mean = 0;
    rc = api->nn->cosine_loss_forward(s->host, R, Z, &mean, p, b.zts);
    if (rc < 0)
        return rc;
    if (!isfinite(mean))
        return api->set_error(s->host, EQM_ERR_NUMERIC, "BYOL loss is %g", (double)mean);
    io->loss = 2.0 * (double)mean;
    io->n_metrics = 1;
    io->metrics[0].name = "l_byol";
    io->metrics[0].value = io->loss;
    s->last_rows = R;
    s->last_train = io->train;
    return EQM_OK;
}

static int byol_backward(void *self, eqm_module_io *io)
{
    byol *s = self;
    const eqm_host_api *api = s->api;
    int R = io->rows;
    if (R != s->last_rows || !s->last_train)
        return api->set_error(s->host, EQM_ERR_STATE, "backward needs a training forward "
                              "of the same %d rows first", R);
    byol_bufs b;
    layout(s, s->act, R, &b);
    int Z = s->proj.out_dim;
    size_t RZ = (size_t)R * (size_t)Z;
    const float *z = mlp_output(&s->proj, b.proj, R);
    const float *p = mlp_output(&s->pred, b.pred, R);
    memset(b.dp, 0, RZ * sizeof(float));
    memset(b.dz, 0, RZ * sizeof(float));
    int rc = api->nn->cosine_loss_backward(s->host, R, Z, b.dp, 2.0f * io->loss_scale, p,
                                           b.zts);
    if (rc == EQM_OK)
        rc = mlp_backward(&s->pred, api, s->host, s->params + s->proj.n_tensors,
                          s->grads + s->proj.n_tensors, b.pred, b.gs, R, z, b.dp, b.dz);
    if (rc == EQM_OK)
        rc = mlp_backward(&s->proj, api, s->host, s->params, s->grads, b.proj, b.gs, R,
                          io->in, b.dz, io->din);
    return rc;
}

static int byol_out_dim(const void *self) { return ((const byol *)self)->proj.out_dim; }

/* METHOD.md §8: tau_k = 1 - (1 - tau_base)(cos(pi k/K) + 1)/2, k clamped to K. */
static double byol_target_momentum(const void *self, int64_t k, int64_t K)
{
    const double base = ((const byol *)self)->ema_base;
    if (K <= 0)
        return base;
    if (k > K)
        k = K;
    return 1.0 - (1.0 - base) * (cos(3.14159265358979323846 * (double)k / (double)K) + 1.0) / 2.0;
}

static const eqm_module_ops byol_ops = {
    .size = sizeof(eqm_module_ops),
    .create = byol_create,
    .destroy = byol_destroy,
    .n_tensors = byol_n_tensors,
    .tensor_info = byol_tensor_info,
    .act_floats = byol_act_floats,
    .bind = byol_bind,
    .init = byol_init,
    .forward = byol_forward,
    .backward = byol_backward,
    .out_dim = byol_out_dim,
    .flags = EQM_MODULE_NEEDS_TARGET | EQM_MODULE_EMBEDDING,
    .target_momentum = byol_target_momentum,
};

static const eqm_plugin_desc byol_desc = {
    EQM_DESC_HEADER(EQM_KIND_METHOD),
    .name = "byol",
    .version = "1.0.0",
    .summary = "BYOL: projector, predictor, EMA target projector, symmetric cosine loss",
    .params = byol_params,
    .params_size = sizeof(byol_opts),
    .ops = &byol_ops,
};

static const eqm_plugin_desc *const descs[] = {&byol_desc};
EQM_PLUGIN_ENTRY(descs)
