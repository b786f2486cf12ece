/* plugins/method/simclr/simclr.c: the SimCLR invariance branch as a method plugin.
 *
 * z = g(h) for the 2N rows of h (view 1 then view 2), L_inv = NT-Xent([z1 ; z2], tau)
 * (METHOD.md §5 "g, invariance head (S)", §6 step 2, §7). g is hidden blocks
 * Linear(nb) + BN + ReLU (option `hidden`, default "2048-2048") and a final
 * Linear(-> out_dim, nb) + BatchNorm1d(out_dim, affine=False).
 * Tensors: "g.0.weight", "g.1.weight", ... (plugins/common/mlp.h).
 *
 * Left out: the multi-GPU all-gather (single process); the world_size factor is 1.
 * Dimension legend: N images, R = 2N rows, D = in_dim (width of h), Z = out_dim.
 * Threading: one instance is driven from the training thread only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <equimod/equimod.h>

#include "../../common/mlp.h"

typedef struct simclr_opts {
    const char *hidden;
    int64_t out_dim;
    double tau;
} simclr_opts;

static const eqm_param_spec simclr_params[] = {
    {"hidden", EQM_PARAM_STRING, offsetof(simclr_opts, hidden), "2048-2048", 0, 0, NULL,
     "hidden widths of the projection head g, '-' separated (Linear nb + BN + ReLU each)"},
    {"out_dim", EQM_PARAM_INT, offsetof(simclr_opts, out_dim), "128", 1, 65536, NULL,
     "width of z (final Linear nb + BN without affine)"},
    {"tau", EQM_PARAM_FLOAT, offsetof(simclr_opts, tau), "0.5", 1e-4, 100, NULL,
     "NT-Xent temperature (0.5 CIFAR-10, 0.2 ImageNet)"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};

typedef struct simclr {
    const eqm_host_api *api;
    eqm_host *host;
    float tau;
    int max_rows;
    mlp g;
    float *const *params;
    float *const *grads;
    float *act;
    int last_rows, last_train;
} simclr;

static int simclr_create(const eqm_host_api *api, eqm_host *host, const void *opts_,
                         const eqm_module_cfg *cfg, void **self)
{
    const simclr_opts *o = opts_;
    char err[256];
    int hidden[MLP_MAX_LAYERS];
    if (!api->nn)
        return api->set_error(host, EQM_ERR_STATE, "the host offers no nn ops (api->nn)");
    int nh = mlp_parse_widths(o->hidden, hidden, MLP_MAX_LAYERS - 1, err, sizeof err);
    if (nh < 0)
        return api->set_error(host, EQM_ERR_INVAL, "option hidden: %s", err);
    if (cfg->max_rows < 2) /* the host may size every module for 3N rows */
        return api->set_error(host, EQM_ERR_INVAL,
                              "max_rows %d: a method needs at least 2 rows (2N)",
                              cfg->max_rows);
    simclr *s = api->alloc(host, sizeof *s, 0);
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    s->tau = (float)o->tau;
    s->max_rows = cfg->max_rows;
    int rc = mlp_build(&s->g, "g", cfg->in_dim, hidden, nh, (int)o->out_dim, 0, MLP_BN_PLAIN,
                       0, err, sizeof err);
    if (rc < 0) {
        api->free(host, s);
        return api->set_error(host, rc, "projection head: %s", err);
    }
    *self = s;
    return EQM_OK;
}

static void simclr_destroy(void *self)
{
    simclr *s = self;
    if (s)
        s->api->free(s->host, s);
}

static int simclr_n_tensors(const void *self) { return ((const simclr *)self)->g.n_tensors; }

static int simclr_tensor_info(const void *self, int i, eqm_tensor_info *info)
{
    const simclr *s = self;
    if (i < 0 || i >= s->g.n_tensors)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "tensor index %d out of range", i);
    mlp_tensor_info(&s->g, i, info);
    return EQM_OK;
}

static eqm_ntxent_shape nt_shape(const simclr *s, int rows)
{
    eqm_ntxent_shape sh = {rows, s->g.out_dim, s->tau, 0};
    return sh;
}

/* act: [ g activations | g backward scratch | dz (R, Z) | NT-Xent scratch ] */
static size_t simclr_act_floats(const void *self, int rows)
{
    const simclr *s = self;
    eqm_ntxent_shape sh = nt_shape(s, rows);
    return mlp_act_floats(&s->g, rows) + mlp_scratch_floats(&s->g, rows) +
           (size_t)rows * (size_t)s->g.out_dim +
           s->api->nn->ntxent_scratch_floats(&sh);
}

static int simclr_bind(void *self, const eqm_module_bind *b)
{
    simclr *s = self;
    if (!b->params || !b->grads || !b->act)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "bind: params, grads and act are "
                                 "required");
    s->params = b->params;
    s->grads = b->grads;
    s->act = b->act;
    return EQM_OK;
}

static int simclr_init(void *self, eqm_rng *rng)
{
    simclr *s = self;
    if (!s->params)
        return s->api->set_error(s->host, EQM_ERR_STATE, "init before bind");
    mlp_init(&s->g, s->api, rng, s->params);
    return EQM_OK;
}

static int check_rows(const simclr *s, int rows)
{
    if (rows < 2 || rows % 2 || rows > s->max_rows)
        return s->api->set_error(s->host, EQM_ERR_INVAL,
                                 "rows %d: expected an even count 2N in 2..%d", rows,
                                 s->max_rows);
    return EQM_OK;
}

static int simclr_forward(void *self, eqm_module_io *io)
{
    simclr *s = self;
    const eqm_host_api *api = s->api;
    if (!s->act)
        return api->set_error(s->host, EQM_ERR_STATE, "forward before bind");
    int rc = check_rows(s, io->rows);
    if (rc < 0)
        return rc;
    int R = io->rows;
    const float *z; /* (R, Z) */
    rc = mlp_forward(&s->g, api, s->host, s->params, s->act, R, io->train, io->in, &z);
    if (rc < 0)
        return rc;
    if (!io->train && io->out) { /* embedding forward (EQM_MODULE_EMBEDDING) */
        memcpy(io->out, z, (size_t)R * (size_t)s->g.out_dim * sizeof(float));
        io->loss = 0;
        io->n_metrics = 0;
        s->last_rows = 0;
        return EQM_OK;
    }
    eqm_ntxent_shape sh = nt_shape(s, R);
    float *scratch = s->act + mlp_act_floats(&s->g, R) + mlp_scratch_floats(&s->g, R) +
                     (size_t)R * s->g.out_dim;
    float loss = 0;
    rc = api->nn->ntxent_forward(s->host, &sh, &loss, z, scratch);
    if (rc < 0)
        return rc;
    if (!isfinite(loss))
        return api->set_error(s->host, EQM_ERR_NUMERIC, "NT-Xent loss is %g", (double)loss);
    io->loss = loss;
    io->n_metrics = 1;
    io->metrics[0].name = "l_simclr";
    io->metrics[0].value = loss;
    s->last_rows = R;
    s->last_train = io->train;
    return EQM_OK;
}

static int simclr_backward(void *self, eqm_module_io *io)
{
    simclr *s = self;
    const eqm_host_api *api = s->api;
    int R = io->rows;
    if (R != s->last_rows || !s->last_train)
        return api->set_error(s->host, EQM_ERR_STATE, "backward needs a training forward "
                              "of the same %d rows first", R);
    float *gscratch = s->act + mlp_act_floats(&s->g, R);
    float *dz = gscratch + mlp_scratch_floats(&s->g, R); /* (R, Z) */
    float *scratch = dz + (size_t)R * s->g.out_dim; /* NT-Xent */
    const float *z = mlp_output(&s->g, s->act, R); /* (R, Z) of the forward */
    memset(dz, 0, (size_t)R * s->g.out_dim * sizeof(float));
    eqm_ntxent_shape sh = nt_shape(s, R);
    int rc = api->nn->ntxent_backward(s->host, &sh, dz, io->loss_scale, z, scratch);
    if (rc < 0)
        return rc;
    return mlp_backward(&s->g, api, s->host, s->params, s->grads, s->act, gscratch, R, io->in,
                        dz, io->din);
}

static int simclr_out_dim(const void *self) { return ((const simclr *)self)->g.out_dim; }

static const eqm_module_ops simclr_ops = {
    .size = sizeof(eqm_module_ops),
    .create = simclr_create,
    .destroy = simclr_destroy,
    .n_tensors = simclr_n_tensors,
    .tensor_info = simclr_tensor_info,
    .act_floats = simclr_act_floats,
    .bind = simclr_bind,
    .init = simclr_init,
    .forward = simclr_forward,
    .backward = simclr_backward,
    .out_dim = simclr_out_dim,
    .flags = EQM_MODULE_EMBEDDING,
};

static const eqm_plugin_desc simclr_desc = {
    EQM_DESC_HEADER(EQM_KIND_METHOD),
    .name = "simclr",
    .version = "1.0.0",
    .summary = "SimCLR: projection head g and NT-Xent over the two views (method-reference.md §3)",
    .params = simclr_params,
    .params_size = sizeof(simclr_opts),
    .ops = &simclr_ops,
};

static const eqm_plugin_desc *const descs[] = {&simclr_desc};
EQM_PLUGIN_ENTRY(descs)
