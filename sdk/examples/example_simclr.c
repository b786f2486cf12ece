/* example_simclr.c: a complete out-of-tree equimod method (invariance) plugin.
 *
 * method/example_simclr: z = h W^T (one Linear without bias, "proj.weight" (Z, D)), then
 * L = NT-Xent([z1 ; z2], tau) (method-reference.md §3) over the 2N rows of h: view 1
 * then view 2, the positive of row k is row k + N.
 *
 * It shows what a method gets and owes (kinds.h, eqm_module_io):
 *   forward:  io->in = h (rows = 2N, D); set io->loss (and optional metrics);
 *   backward: io->din += io->loss_scale * dL/dh, and parameter gradients += into grads;
 *   with EQM_MODULE_EMBEDDING (ABI 1.3, used by `equimod probe`): a forward with
 *   io->train = 0 and io->out set writes the embedding z (rows, out_dim) and nothing else.
 * Build: see the Makefile beside this file (pkg-config equimod-sdk).
 * Dimension legend: R = 2N rows, D = in_dim (width of h), Z = out_dim.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <equimod/equimod.h>

typedef struct simclr_opts {
    int64_t out_dim;
    double tau;
} simclr_opts;

static const eqm_param_spec simclr_params[] = {
    {"out_dim", EQM_PARAM_INT, offsetof(simclr_opts, out_dim), "32", 1, 65536, NULL,
     "width Z of the projection z"},
    {"tau", EQM_PARAM_FLOAT, offsetof(simclr_opts, tau), "0.5", 1e-3, 100, NULL,
     "NT-Xent temperature"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

typedef struct simclr {
    const eqm_host_api *api;
    eqm_host *host;
    int D, Z, max_rows;
    float tau;
    float *const *params;
    float *const *grads;
    float *act;
    int last_rows;
} simclr;

static int simclr_create(const eqm_host_api *api, eqm_host *host, const void *opts,
                         const eqm_module_cfg *cfg, void **self)
{
    const simclr_opts *o = opts;
    if (!api->nn)
        return api->set_error(host, EQM_ERR_STATE, "the host offers no nn ops (api->nn)");
    if (cfg->in_dim <= 0 || cfg->max_rows < 0)
        return api->set_error(host, EQM_ERR_INVAL, "bad in_dim %d or max_rows %d",
                              cfg->in_dim, cfg->max_rows);
    simclr *s = api->alloc(host, sizeof *s, 0);
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    s->D = cfg->in_dim;
    s->Z = (int)o->out_dim;
    s->max_rows = cfg->max_rows;
    s->tau = (float)o->tau;
    *self = s;
    return EQM_OK;
}

static void simclr_destroy(void *self)
{
    simclr *s = self;
    if (s)
        s->api->free(s->host, s);
}

static int simclr_n_tensors(const void *self)
{
    (void)self;
    return 1;
}

static int simclr_tensor_info(const void *self, int i, eqm_tensor_info *info)
{
    const simclr *s = self;
    if (i != 0)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "tensor index %d out of range", i);
    memset(info, 0, sizeof *info);
    info->name = "proj.weight";
    info->ndim = 2;
    info->shape[0] = s->Z;
    info->shape[1] = s->D;
    info->flags = EQM_T_DECAY;
    return EQM_OK;
}

static eqm_ntxent_shape nt_shape(const simclr *s, int rows)
{
    eqm_ntxent_shape sh = {rows, s->Z, s->tau, 0};
    return sh;
}

/* Arena: [ z (R, Z) | dz (R, Z) | NT-Xent scratch ] */
static size_t simclr_act_floats(const void *self, int rows)
{
    const simclr *s = self;
    eqm_ntxent_shape sh = nt_shape(s, rows);
    return 2 * (size_t)rows * (size_t)s->Z + (rows > 0 ? s->api->nn->ntxent_scratch_floats(&sh) : 0);
}

static int simclr_bind(void *self, const eqm_module_bind *b)
{
    simclr *s = self;
    if (!b->params || !b->grads || (s->max_rows > 0 && !b->act))
        return s->api->set_error(s->host, EQM_ERR_INVAL, "bind: params, grads and act needed");
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
    double bound = 1.0 / sqrt((double)s->D);
    for (size_t i = 0; i < (size_t)s->Z * (size_t)s->D; i++)
        s->params[0][i] = (float)((2.0 * s->api->rng_uniform(rng) - 1.0) * bound);
    return EQM_OK;
}

static int simclr_forward(void *self, eqm_module_io *io)
{
    simclr *s = self;
    const eqm_nn_api *nn = s->api->nn;
    int R = io->rows;
    if (!s->act)
        return s->api->set_error(s->host, EQM_ERR_STATE, "forward before bind");
    if (R < 2 || R % 2 || R > s->max_rows)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "rows %d: expected 2N in 2..%d", R,
                                 s->max_rows);
    float *z = s->act;
    float *scratch = s->act + 2 * (size_t)R * s->Z;
    eqm_linear_shape l = {R, s->D, s->Z};
    eqm_ntxent_shape sh = nt_shape(s, R);
    if (!io->train && io->out) { /* the embedding forward: z only, no loss, no backward */
        s->last_rows = 0;
        return nn->linear_forward(s->host, &l, io->out, io->in, s->params[0], NULL);
    }
    float loss = 0.0f;
    int rc = nn->linear_forward(s->host, &l, z, io->in, s->params[0], NULL);
    if (rc == EQM_OK)
        rc = nn->ntxent_forward(s->host, &sh, &loss, z, scratch);
    if (rc != EQM_OK)
        return rc;
    if (!isfinite(loss))
        return s->api->set_error(s->host, EQM_ERR_NUMERIC, "NT-Xent loss is %g", (double)loss);
    io->loss = loss;
    io->n_metrics = 1;
    io->metrics[0].name = "l_contrast";
    io->metrics[0].value = loss;
    s->last_rows = io->train ? R : 0;
    return EQM_OK;
}

static int simclr_backward(void *self, eqm_module_io *io)
{
    simclr *s = self;
    const eqm_nn_api *nn = s->api->nn;
    int R = io->rows;
    if (R != s->last_rows)
        return s->api->set_error(s->host, EQM_ERR_STATE, "backward of %d rows without a "
                                 "training forward of the same rows", R);
    float *z = s->act, *dz = s->act + (size_t)R * s->Z;
    float *scratch = s->act + 2 * (size_t)R * s->Z;
    eqm_linear_shape l = {R, s->D, s->Z};
    eqm_ntxent_shape sh = nt_shape(s, R);
    memset(dz, 0, (size_t)R * s->Z * sizeof(float));
    int rc = nn->ntxent_backward(s->host, &sh, dz, io->loss_scale, z, scratch);
    if (rc == EQM_OK)
        rc = nn->linear_backward(s->host, &l, io->din, s->grads[0], NULL, dz, io->in,
                                 s->params[0]);
    return rc;
}

/* The width Z of the embedding z (EQM_MODULE_EMBEDDING). */
static int simclr_out_dim(const void *self) { return ((const simclr *)self)->Z; }

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
    "example_simclr",
    "1.0.0",
    "linear projection and NT-Xent over the two views (SDK example)",
    simclr_params,
    sizeof(simclr_opts),
    &simclr_ops,
};

static const eqm_plugin_desc *const descs[] = {&simclr_desc};
EQM_PLUGIN_ENTRY(descs)
