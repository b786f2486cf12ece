/* example_mlp.c: a complete out-of-tree equimod backbone plugin.
 *
 * backbone/example_mlp: h = fc2(relu(fc1(x))) on the flattened image x (K = in_h*in_w*in_c
 * floats per row). Tensors, in this fixed order, PyTorch names and layouts:
 *   fc1.weight (H, K)  fc1.bias (H)  fc2.weight (D, H)  fc2.bias (D)
 * All four carry EQM_T_EMA (a BYOL target mirrors them); the weights carry EQM_T_DECAY.
 *
 * It shows the module lifecycle (kinds.h, eqm_module_ops):
 *   create(cfg)   sizes from cfg; cfg->max_rows MAY be 0 (equimod export creates the
 *                 backbone only to read and write its tensors: no forward follows);
 *   n_tensors / tensor_info / act_floats / bind / init, then per step:
 *   forward(train rows) -> [forward(use_target = 1) of the EMA target] -> backward.
 *   The target forward runs between the online forward and its backward, so it MUST NOT
 *   overwrite what backward reads: here the arena has separate online and target parts,
 *   both laid out for max_rows.
 * All arithmetic goes through api->nn (no BLAS of our own). Build: see the Makefile.
 * Dimension legend: R rows, K input floats per row, H hidden width, D = out_dim.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <equimod/equimod.h>

typedef struct mlp_opts {
    int64_t hidden;  /* H */
    int64_t out_dim; /* D */
} mlp_opts;

static const eqm_param_spec mlp_params[] = {
    {"hidden", EQM_PARAM_INT, offsetof(mlp_opts, hidden), "64", 1, 65536, NULL,
     "width of the hidden layer"},
    {"out_dim", EQM_PARAM_INT, offsetof(mlp_opts, out_dim), "32", 1, 65536, NULL,
     "width D of h"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

enum { FC1_W, FC1_B, FC2_W, FC2_B, N_TENSORS };

typedef struct mlp {
    const eqm_host_api *api;
    eqm_host *host;
    int K, H, D, max_rows;
    float *const *params;
    float *const *grads;
    float *const *target; /* NULL when the host keeps no EMA target */
    float *act;
    int last_rows; /* rows of the latest training forward (0: none) */
} mlp;

static int mlp_create(const eqm_host_api *api, eqm_host *host, const void *opts,
                      const eqm_module_cfg *cfg, void **self)
{
    const mlp_opts *o = opts;
    if (!api->nn)
        return api->set_error(host, EQM_ERR_STATE, "the host offers no nn ops (api->nn)");
    if (cfg->in_h <= 0 || cfg->in_w <= 0 || cfg->in_c <= 0 || cfg->max_rows < 0)
        return api->set_error(host, EQM_ERR_INVAL, "bad input %dx%dx%d or max_rows %d",
                              cfg->in_h, cfg->in_w, cfg->in_c, cfg->max_rows);
    mlp *s = api->alloc(host, sizeof *s, 0);
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    s->K = cfg->in_h * cfg->in_w * cfg->in_c;
    s->H = (int)o->hidden;
    s->D = (int)o->out_dim;
    s->max_rows = cfg->max_rows;
    *self = s;
    return EQM_OK;
}

static void mlp_destroy(void *self)
{
    mlp *s = self;
    if (s)
        s->api->free(s->host, s);
}

static int mlp_n_tensors(const void *self)
{
    (void)self;
    return N_TENSORS;
}

static int mlp_tensor_info(const void *self, int i, eqm_tensor_info *info)
{
    const mlp *s = self;
    static const char *const names[N_TENSORS] = {"fc1.weight", "fc1.bias", "fc2.weight",
                                                 "fc2.bias"};
    if (i < 0 || i >= N_TENSORS)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "tensor index %d out of range", i);
    memset(info, 0, sizeof *info);
    info->name = names[i];
    info->flags = EQM_T_EMA;
    switch (i) {
    case FC1_W: info->ndim = 2, info->shape[0] = s->H, info->shape[1] = s->K; break;
    case FC1_B: info->ndim = 1, info->shape[0] = s->H; break;
    case FC2_W: info->ndim = 2, info->shape[0] = s->D, info->shape[1] = s->H; break;
    default: info->ndim = 1, info->shape[0] = s->D; break;
    }
    if (i == FC1_W || i == FC2_W)
        info->flags |= EQM_T_DECAY;
    return EQM_OK;
}

/* Arena, each part laid out for max_rows rows of H floats:
 * [ online hidden | hidden gradient | target hidden ] */
static size_t mlp_act_floats(const void *self, int rows)
{
    const mlp *s = self;
    return 3 * (size_t)rows * (size_t)s->H;
}

static int mlp_bind(void *self, const eqm_module_bind *b)
{
    mlp *s = self;
    if (!b->params || !b->grads || (s->max_rows > 0 && !b->act))
        return s->api->set_error(s->host, EQM_ERR_INVAL, "bind: params, grads and act needed");
    s->params = b->params;
    s->grads = b->grads;
    s->target = b->target;
    s->act = b->act;
    return EQM_OK;
}

/* PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias. */
static int mlp_init(void *self, eqm_rng *rng)
{
    mlp *s = self;
    if (!s->params)
        return s->api->set_error(s->host, EQM_ERR_STATE, "init before bind");
    const size_t n[N_TENSORS] = {(size_t)s->H * s->K, (size_t)s->H, (size_t)s->D * s->H,
                                 (size_t)s->D};
    const int fan_in[N_TENSORS] = {s->K, s->K, s->H, s->H};
    for (int t = 0; t < N_TENSORS; t++) {
        double bound = 1.0 / sqrt((double)fan_in[t]);
        for (size_t i = 0; i < n[t]; i++)
            s->params[t][i] = (float)((2.0 * s->api->rng_uniform(rng) - 1.0) * bound);
    }
    return EQM_OK;
}

static int mlp_forward(void *self, eqm_module_io *io)
{
    mlp *s = self;
    const eqm_nn_api *nn = s->api->nn;
    if (!s->act)
        return s->api->set_error(s->host, EQM_ERR_STATE, "forward before bind");
    if (io->rows <= 0 || io->rows > s->max_rows)
        return s->api->set_error(s->host, EQM_ERR_INVAL, "rows %d outside 1..%d", io->rows,
                                 s->max_rows);
    float *const *w = s->params;
    float *hid = s->act; /* online part */
    if (io->use_target) {
        if (!s->target)
            return s->api->set_error(s->host, EQM_ERR_STATE, "target forward without a "
                                     "bound EMA target");
        w = s->target;
        hid = s->act + 2 * (size_t)s->max_rows * s->H; /* target part */
    }
    eqm_linear_shape l1 = {io->rows, s->K, s->H}, l2 = {io->rows, s->H, s->D};
    int rc = nn->linear_forward(s->host, &l1, hid, io->in, w[FC1_W], w[FC1_B]);
    if (rc == EQM_OK)
        rc = nn->relu_forward(s->host, (size_t)io->rows * s->H, hid, hid);
    if (rc == EQM_OK)
        rc = nn->linear_forward(s->host, &l2, io->out, hid, w[FC2_W], w[FC2_B]);
    if (rc == EQM_OK && !io->use_target)
        s->last_rows = io->train ? io->rows : 0;
    return rc;
}

static int mlp_backward(void *self, eqm_module_io *io)
{
    mlp *s = self;
    const eqm_nn_api *nn = s->api->nn;
    if (io->rows != s->last_rows)
        return s->api->set_error(s->host, EQM_ERR_STATE, "backward of %d rows without a "
                                 "training forward of the same rows", io->rows);
    float *hid = s->act, *dhid = s->act + (size_t)s->max_rows * s->H;
    size_t nh = (size_t)io->rows * s->H;
    eqm_linear_shape l1 = {io->rows, s->K, s->H}, l2 = {io->rows, s->H, s->D};
    /* relu was applied in place: hid holds relu(fc1(x)), which is all backward needs */
    memset(dhid, 0, nh * sizeof(float));
    int rc = nn->linear_backward(s->host, &l2, dhid, s->grads[FC2_W], s->grads[FC2_B],
                                 io->dout, hid, s->params[FC2_W]);
    if (rc == EQM_OK) /* mask with relu'(.) in place: din += dout * (out > 0) */
        for (size_t i = 0; i < nh; i++)
            dhid[i] = hid[i] > 0.0f ? dhid[i] : 0.0f;
    if (rc == EQM_OK)
        rc = nn->linear_backward(s->host, &l1, io->din, s->grads[FC1_W], s->grads[FC1_B],
                                 dhid, io->in, s->params[FC1_W]);
    return rc;
}

static int mlp_out_dim(const void *self) { return ((const mlp *)self)->D; }

static const eqm_module_ops mlp_ops = {
    .size = sizeof(eqm_module_ops),
    .create = mlp_create,
    .destroy = mlp_destroy,
    .n_tensors = mlp_n_tensors,
    .tensor_info = mlp_tensor_info,
    .act_floats = mlp_act_floats,
    .bind = mlp_bind,
    .init = mlp_init,
    .forward = mlp_forward,
    .backward = mlp_backward,
    .out_dim = mlp_out_dim,
    .flags = 0,
};

static const eqm_plugin_desc mlp_desc = {
    EQM_DESC_HEADER(EQM_KIND_BACKBONE),
    "example_mlp",
    "1.0.0",
    "two-layer perceptron on the flattened image (SDK example)",
    mlp_params,
    sizeof(mlp_opts),
    &mlp_ops,
};

static const eqm_plugin_desc *const descs[] = {&mlp_desc};
EQM_PLUGIN_ENTRY(descs)
