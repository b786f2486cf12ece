/* plugins/backbone/resnet/resnet.c: torchvision ResNet-18/34/50 as an equimod backbone.
 *
 * Matches torchvision.models.resnet (v1.5: in a Bottleneck the stride sits on the 3x3 conv;
 * downsample = 1x1 conv with stride + BN) with the classifier removed: the output h is the
 * global-average-pooled feature (N, D), D = 8 * base * expansion (512 for ResNet-18/34 and
 * 2048 for ResNet-50 at width 1). Stems: "imagenet" = conv 7x7/2 pad 3, BN, ReLU, max pool
 * 3x3/2 pad 1; "cifar" = conv 3x3/1 pad 1, BN, ReLU, no max pool (SimCLR's CIFAR variant).
 * Every op comes from the host (api->nn); this file only plans shapes and memory.
 *
 * Legend: N rows (images), H, W spatial size, C channels; activations NHWC, conv weights
 * OHWI (C_out, kh, kw, C_in), as nn.h. Tensor names and order are torchvision's
 * state_dict() minus fc.* and minus bn*.num_batches_tracked (export writes those).
 *
 * Flags: conv weights EQM_T_DECAY | EQM_T_EMA; BN weight/bias EQM_T_EMA (no decay, as the
 * LARS exclusion of BN parameters in SimCLR/BYOL/EquiMod); BN running_mean/var
 * EQM_T_BUFFER | EQM_T_EMA (the BYOL target keeps its own copy; the target forward does not
 * read it, see below).
 *
 * Memory (no allocation in forward/backward): the arena given at bind is
 *   [fixed: BN saves (2C per BN), target BN save/running scratch (4 * Cmax)]
 *   [rows * per-row: every saved activation of the online forward; 4 scratch buffers G0..G3
 *    of the largest activation]
 * Saved per conv unit: the conv output c (BN input) and, where a ReLU follows inside the
 * block, the fused BN+ReLU output a; per block its output y = relu(bn_last(c_last) + id).
 * Not the ImageNet stem's a on a 1.5 host: only the max pool reads it (its backward takes
 * the argmax), so it lives in G2 during the forward.
 * G0..G3 carry the gradients in backward (dy, which also collects dx of an identity block,
 * dx of a downsample block, dL/dc and dL/da of the unit being processed). nn ops accumulate
 * (+=); on a host of ABI 1.5 or later the BN and conv backwards that start a buffer
 * OVERWRITE it instead (EQM_NN_SET_DIN), so no buffer is zeroed first, except the inputs
 * of the pooling backwards (scatter-adds without the flag). An older host gets the memsets
 * and accumulation of before; the gradients are the same bits either way (check_backbone
 * test_set_din). G0 also holds the downsample BN output in forward.
 * bf16 storage (ABI 1.6, the host's cfg->act_flags has EQM_ACT_BF16: [train] precision =
 * bf16): every conv output c, unit output a and block output y is kept as eqm_bf16 (half
 * the floats in the plan), except the last block's y (the average pool's input) and, with
 * the ImageNet stem, the stem's a and the max pool's output (the pool ops are float). The
 * conv writes c in bf16 (EQM_NN_OUT_BF16; its statistics from the floats before
 * rounding), batchnorm_forward_store normalises it (EQM_NN_IN_BF16) and writes a or y in
 * bf16; the convs read their bf16 inputs and the BN backwards their bf16 c through
 * EQM_NN_IN_BF16. Gradients (G0..G3) stay float. The
 * conv products round their inputs to bf16 at this precision anyway; what storage adds is
 * one rounding of each normalised value and of the residual stream (check_backbone
 * test_act16 bounds it). ResNet-18 CIFAR's arena shrinks to 0.60 of the float plan. The
 * BYOL target forward saves nothing and keeps float activations in G0..G3 (so with
 * equal weights it is not the bits of the online forward under act16, only close).
 * The BYOL target forward (io->use_target = 1) runs ping-pong in G0..G3 only, placed as
 * for max_rows (not its own rows), so the online activations of the same step stay intact
 * for the online backward even when the online forward had more rows (EquiMod: 3N vs 2N).
 *
 * use_target = 1: weights and BN parameters from bind->target, BN in training mode (batch
 * statistics) whatever io->train says, and NO running-statistics update (the running
 * statistics of the target are host-side EMA copies of the online ones). Forward only.
 * Backward: dL/dx (+=) only when io->din != NULL; io->in must be the same input as in the
 * latest forward (rows equal). Threading: one instance is used by one thread at a time.
 * Left out: groups/dilation (ResNeXt, wide ResNets' width_per_group), the fc layer.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <equimod/equimod.h>

#define MAX_UNITS 64      /* ResNet-50: 53 conv units */
#define MAX_BLOCKS 16
#define NAME_LEN 48
#define T_PER_UNIT 5      /* weight, bn.weight, bn.bias, bn.running_mean, bn.running_var */
#define ALIGNF 16         /* floats: every buffer 64-byte aligned */
#define ALIGN_UP(x) (((x) + ALIGNF - 1) / ALIGNF * ALIGNF)

typedef struct resnet_opts {
    int depth;              /* ENUM 18|34|50 */
    int stem;               /* ENUM cifar|imagenet */
    int zero_init_residual; /* BOOL */
    double width;           /* FLOAT: base width 64 * width */
    int bf16;               /* BOOL, deprecated: read from older run folders, not used */
} resnet_opts;

enum { STEM_CIFAR = 0, STEM_IMAGENET = 1 };

/* One conv + BN (+ optional fused ReLU). */
typedef struct unit {
    int H, W, C_in, Ho, Wo, C_out, k, stride, pad;
    int relu;           /* fused BN+ReLU (the output a is saved) */
    int zero_gamma;     /* last BN of a residual branch (zero_init_residual) */
    int t0;             /* first tensor index: w, gamma, beta, rmean, rvar */
    size_t c_off;       /* per-row offset of the conv output (BN input) */
    size_t a_off;       /* per-row offset of the BN(+ReLU) output if relu; else unused */
    size_t save_off;    /* fixed offset of the BN save (2 * C_out) */
} unit;

typedef struct block {
    int u0, n_main;     /* main-path units u0 .. u0+n_main-1 (2 Basic, 3 Bottleneck) */
    int ds;             /* unit index of the downsample, or -1 */
    int Ho, Wo, C;      /* output */
    size_t y_off;       /* per-row offset of the block output */
} block;

typedef struct resnet {
    const eqm_host_api *api;
    eqm_host *host;
    resnet_opts o;
    int in_h, in_w, in_c, max_rows;
    int n_units, n_blocks;
    unit u[MAX_UNITS];
    block bk[MAX_BLOCKS];
    int maxpool;                 /* imagenet stem */
    int pH, pW;                  /* after max pool */
    size_t p_off, arg_off;       /* per-row: max pool output and argmax (int32) */
    int out_dim;
    int n_tensors;
    char names[MAX_UNITS * T_PER_UNIT][NAME_LEN];
    int shape[MAX_UNITS * T_PER_UNIT][4];
    int ndim[MAX_UNITS * T_PER_UNIT];
    uint32_t flags[MAX_UNITS * T_PER_UNIT];
    /* arena plan */
    size_t fixed;                /* floats before the per-row region */
    size_t tsave_off, trun_off;  /* fixed: target BN save (2 Cmax), running scratch (2 Cmax) */
    size_t per_row;              /* floats per row (saved + 4 G buffers) */
    size_t g_off[4];             /* per-row offsets of G0..G3 */
    size_t g_size;               /* per-row floats of one G buffer */
    /* bound buffers */
    float *const *params, *const *grads, *const *target;
    float *act;
    int last_rows;               /* rows of the latest online forward, 0 = none */
    int act16;                   /* ABI 1.6 bf16 storage (EQM_ACT_BF16), see "bf16" above */
    int stem_scratch;            /* the stem's a lives in G2 (max pool input, not saved) */
} resnet;

static const eqm_param_spec resnet_params[] = {
    {"depth", EQM_PARAM_ENUM, offsetof(resnet_opts, depth), "18", 0, -1, "18|34|50",
     "18 and 34: BasicBlock [2,2,2,2]/[3,4,6,3]; 50: Bottleneck [3,4,6,3]"},
    {"stem", EQM_PARAM_ENUM, offsetof(resnet_opts, stem), "cifar", 0, -1, "cifar|imagenet",
     "cifar: conv 3x3/1, no max pool; imagenet: conv 7x7/2 + max pool 3x3/2"},
    {"zero_init_residual", EQM_PARAM_BOOL, offsetof(resnet_opts, zero_init_residual), "true",
     0, -1, NULL, "initialise the last BN weight of every residual branch to 0"},
    {"width", EQM_PARAM_FLOAT, offsetof(resnet_opts, width), "1", 0.015625, 16, NULL,
     "width multiplier: base width round(64 * width), channels base*2^stage"},
    /* Kept so that run folders written while it existed (their config.ini lists
     * `bf16 = false`) still load and resume with the same config hash. */
    {"bf16", EQM_PARAM_BOOL, offsetof(resnet_opts, bf16), "false", 0, -1, NULL,
     "deprecated, not used: bf16 products are [train] precision = bf16 (for every conv and "
     "linear layer)"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};

/* ------------------------------------------------------------------ plan -------- */

static int conv_out(int x, int k, int s, int p) { return (x + 2 * p - k) / s + 1; }

/* Per-row floats of a unit's conv output. */
static size_t unit_out(const unit *u) { return (size_t)u->Ho * u->Wo * u->C_out; }

static void add_tensor(resnet *r, const char *name, int ndim, const int *shape, uint32_t flags)
{
    int i = r->n_tensors++;
    snprintf(r->names[i], NAME_LEN, "%s", name);
    r->ndim[i] = ndim;
    for (int d = 0; d < 4; d++)
        r->shape[i][d] = d < ndim ? shape[d] : 0;
    r->flags[i] = flags;
}

/* Declare unit tensors with torchvision names: conv `cname`, BN `bname`. */
static int add_unit(resnet *r, const char *cname, const char *bname, int H, int W, int C_in,
                    int C_out, int k, int stride, int pad, int relu)
{
    if (r->n_units >= MAX_UNITS)
        return -1;
    unit *u = &r->u[r->n_units];
    memset(u, 0, sizeof *u);
    u->H = H, u->W = W, u->C_in = C_in, u->C_out = C_out;
    u->k = k, u->stride = stride, u->pad = pad, u->relu = relu;
    u->Ho = conv_out(H, k, stride, pad);
    u->Wo = conv_out(W, k, stride, pad);
    u->t0 = r->n_tensors;
    char n[NAME_LEN];
    int ws[4] = {C_out, k, k, C_in}, cs[4] = {C_out, 0, 0, 0};
    snprintf(n, sizeof n, "%s.weight", cname);
    add_tensor(r, n, 4, ws, EQM_T_DECAY | EQM_T_EMA);
    snprintf(n, sizeof n, "%s.weight", bname);
    add_tensor(r, n, 1, cs, EQM_T_EMA);
    snprintf(n, sizeof n, "%s.bias", bname);
    add_tensor(r, n, 1, cs, EQM_T_EMA);
    snprintf(n, sizeof n, "%s.running_mean", bname);
    add_tensor(r, n, 1, cs, EQM_T_BUFFER | EQM_T_EMA);
    snprintf(n, sizeof n, "%s.running_var", bname);
    add_tensor(r, n, 1, cs, EQM_T_BUFFER | EQM_T_EMA);
    return r->n_units++;
}

/* bf16 storage (act16): which saved tensors are eqm_bf16. Every conv output c (the BN
 * input kept for backward); every unit output a, except the stem's when a max pool follows
 * (the pool's input stays float, and so does its output p); every block output y except
 * the last (the average pool's input). */
static int a_is16(const resnet *r, int u) { return r->act16 && !(u == 0 && r->maxpool); }
static int y_is16(const resnet *r, int b) { return r->act16 && b != r->n_blocks - 1; }

static int plan(resnet *r)
{
    const eqm_host_api *api = r->api;
    static const int blocks_of[3][4] = {{2, 2, 2, 2}, {3, 4, 6, 3}, {3, 4, 6, 3}};
    int bottleneck = r->o.depth == 2, exp = bottleneck ? 4 : 1;
    int base = (int)lround(64.0 * r->o.width);
    if (base < 1)
        base = 1;
    int H = r->in_h, W = r->in_w;
    /* stem */
    int su = r->o.stem == STEM_IMAGENET
                 ? add_unit(r, "conv1", "bn1", H, W, r->in_c, base, 7, 2, 3, 1)
                 : add_unit(r, "conv1", "bn1", H, W, r->in_c, base, 3, 1, 1, 1);
    H = r->u[su].Ho, W = r->u[su].Wo;
    if (H < 1 || W < 1)
        return api->set_error(r->host, EQM_ERR_INVAL,
                              "input %dx%d is too small for the %s stem", r->in_w, r->in_h,
                              r->o.stem ? "imagenet" : "cifar");
    r->maxpool = r->o.stem == STEM_IMAGENET;
    if (r->maxpool) {
        H = conv_out(H, 3, 2, 1), W = conv_out(W, 3, 2, 1);
        r->pH = H, r->pW = W;
    }
    int inplanes = base;
    for (int li = 0; li < 4; li++) {
        int planes = base << li, stride = li ? 2 : 1;
        for (int bi = 0; bi < blocks_of[r->o.depth][li]; bi++) {
            if (r->n_blocks >= MAX_BLOCKS)
                return api->set_error(r->host, EQM_ERR_INVAL, "too many blocks");
            block *b = &r->bk[r->n_blocks++];
            int s = bi ? 1 : stride;
            char c[NAME_LEN], bn[NAME_LEN];
            b->u0 = r->n_units;
            int h = H, w = W, cin = inplanes, u;
            if (!bottleneck) {
                snprintf(c, sizeof c, "layer%d.%d.conv1", li + 1, bi);
                snprintf(bn, sizeof bn, "layer%d.%d.bn1", li + 1, bi);
                u = add_unit(r, c, bn, h, w, cin, planes, 3, s, 1, 1);
                h = r->u[u].Ho, w = r->u[u].Wo;
                snprintf(c, sizeof c, "layer%d.%d.conv2", li + 1, bi);
                snprintf(bn, sizeof bn, "layer%d.%d.bn2", li + 1, bi);
                u = add_unit(r, c, bn, h, w, planes, planes, 3, 1, 1, 0);
                b->n_main = 2;
            } else {
                snprintf(c, sizeof c, "layer%d.%d.conv1", li + 1, bi);
                snprintf(bn, sizeof bn, "layer%d.%d.bn1", li + 1, bi);
                u = add_unit(r, c, bn, h, w, cin, planes, 1, 1, 0, 1);
                snprintf(c, sizeof c, "layer%d.%d.conv2", li + 1, bi);
                snprintf(bn, sizeof bn, "layer%d.%d.bn2", li + 1, bi);
                u = add_unit(r, c, bn, h, w, planes, planes, 3, s, 1, 1);
                h = r->u[u].Ho, w = r->u[u].Wo;
                snprintf(c, sizeof c, "layer%d.%d.conv3", li + 1, bi);
                snprintf(bn, sizeof bn, "layer%d.%d.bn3", li + 1, bi);
                u = add_unit(r, c, bn, h, w, planes, planes * exp, 1, 1, 0, 0);
                b->n_main = 3;
            }
            if (u < 0)
                return api->set_error(r->host, EQM_ERR_INVAL, "too many layers");
            r->u[u].zero_gamma = 1;
            b->ds = -1;
            if (s != 1 || inplanes != planes * exp) {
                snprintf(c, sizeof c, "layer%d.%d.downsample.0", li + 1, bi);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", li + 1, bi);
                b->ds = add_unit(r, c, bn, H, W, inplanes, planes * exp, 1, s, 0, 0);
                if (b->ds < 0)
                    return api->set_error(r->host, EQM_ERR_INVAL, "too many layers");
            }
            if (h < 1 || w < 1)
                return api->set_error(r->host, EQM_ERR_INVAL,
                                      "input %dx%d is too small: layer%d has no pixels left",
                                      r->in_w, r->in_h, li + 1);
            b->Ho = h, b->Wo = w, b->C = planes * exp;
            H = h, W = w, inplanes = planes * exp;
        }
    }
    r->out_dim = inplanes;

    /* Arena plan. Fixed region: BN saves + target scratch. */
    size_t f = 0;
    int cmax = 0;
    for (int i = 0; i < r->n_units; i++) {
        r->u[i].save_off = f;
        f += ALIGN_UP(2 * (size_t)r->u[i].C_out);
        if (r->u[i].C_out > cmax)
            cmax = r->u[i].C_out;
    }
    r->tsave_off = f;
    f += ALIGN_UP(2 * (size_t)cmax);
    r->trun_off = f;
    f += ALIGN_UP(2 * (size_t)cmax);
    r->fixed = f;
    /* Per-row region (offsets are multiplied by rows at use). A bf16 tensor (act16) takes
     * half the floats of its element count; gmax counts elements (G buffers are floats). */
    size_t p = 0, gmax = (size_t)r->in_h * r->in_w * r->in_c;
#define TAKE(dst, n, half)                                                                  \
    do {                                                                                    \
        (dst) = p;                                                                          \
        p += ALIGN_UP((half) ? ((size_t)(n) + 1) / 2 : (size_t)(n));                        \
        if ((size_t)(n) > gmax)                                                             \
            gmax = (size_t)(n);                                                             \
    } while (0)
    /* With a max pool after the stem and a host whose BN backward recomputes the ReLU
     * mask (ABI 1.5 EQM_NN_RELU_FROM_IN), the stem's output a is read only by the pool
     * (whose backward uses its argmax): it lives in G2 during the forward, not saved
     * (ResNet-50 at 224 px: 802,816 floats per row less) */
    r->stem_scratch = r->maxpool && EQM_API_HAS(api->nn, batchnorm_backward_ex) &&
                      api->nn->batchnorm_backward_ex;
    for (int i = 0; i < r->n_units; i++) {
        unit *un = &r->u[i];
        TAKE(un->c_off, unit_out(un), r->act16);
        if (un->relu && !(i == 0 && r->stem_scratch))
            TAKE(un->a_off, unit_out(un), a_is16(r, i));
        else if (un->relu && unit_out(un) > gmax)
            gmax = unit_out(un); /* the stem's a in G2 */
    }
    if (r->maxpool) {
        size_t n = (size_t)r->pH * r->pW * r->u[0].C_out;
        TAKE(r->p_off, n, 0);
        TAKE(r->arg_off, n, 0); /* int32 argmax, one float slot each */
    }
    for (int i = 0; i < r->n_blocks; i++) {
        block *b = &r->bk[i];
        TAKE(b->y_off, (size_t)b->Ho * b->Wo * b->C, y_is16(r, i));
    }
#undef TAKE
    r->g_size = ALIGN_UP(gmax);
    for (int g = 0; g < 4; g++) {
        r->g_off[g] = p;
        p += r->g_size;
    }
    r->per_row = p;
    return EQM_OK;
}

/* ------------------------------------------------------------------ lifecycle --- */

static int resnet_create(const eqm_host_api *api, eqm_host *host, const void *opts,
                         const eqm_module_cfg *cfg, void **self)
{
    const resnet_opts *o = opts;
    if (!cfg || cfg->in_h <= 0 || cfg->in_w <= 0 || cfg->in_c <= 0 || cfg->max_rows < 0)
        return api->set_error(host, EQM_ERR_INVAL,
                              "bad module config (input %dx%dx%d, max_rows %d): the input "
                              "size must be positive",
                              cfg ? cfg->in_w : 0, cfg ? cfg->in_h : 0, cfg ? cfg->in_c : 0,
                              cfg ? cfg->max_rows : 0);
    if (o->depth < 0 || o->depth > 2 || o->stem < 0 || o->stem > 1 || !(o->width > 0))
        return api->set_error(host, EQM_ERR_INVAL, "bad options (depth %d, stem %d, width %g)",
                              o->depth, o->stem, o->width);
    if (!api->nn || !api->nn->conv2d_forward)
        return api->set_error(host, EQM_ERR_UNSUPPORTED, "the host offers no nn ops");
    if (o->bf16 && api->log)
        api->log(host, EQM_LOG_WARN,
                 "bf16 = true is deprecated and not used: set [train] precision = bf16 (bf16 "
                 "products in every conv and linear layer)");
    resnet *r = api->alloc(host, sizeof *r, 64);
    if (!r)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    r->api = api;
    r->host = host;
    r->o = *o;
    r->in_h = cfg->in_h, r->in_w = cfg->in_w, r->in_c = cfg->in_c;
    r->max_rows = cfg->max_rows;
    /* ABI 1.6: a host training at bf16 offers bf16 storage; it needs the 1.6 nn ops */
    r->act16 = cfg->size >= offsetof(eqm_module_cfg, act_flags) + sizeof cfg->act_flags &&
               (cfg->act_flags & EQM_ACT_BF16) && EQM_API_HAS(api->nn, batchnorm_forward_store) &&
               api->nn->batchnorm_forward_store;
    int st = plan(r);
    if (st < 0) {
        api->free(host, r);
        return st;
    }
    *self = r;
    return EQM_OK;
}

static void resnet_destroy(void *self)
{
    resnet *r = self;
    if (r)
        r->api->free(r->host, r);
}

static int resnet_n_tensors(const void *self) { return ((const resnet *)self)->n_tensors; }

static int resnet_tensor_info(const void *self, int i, eqm_tensor_info *info)
{
    const resnet *r = self;
    if (i < 0 || i >= r->n_tensors)
        return r->api->set_error(r->host, EQM_ERR_INVAL, "tensor index %d out of range", i);
    info->name = r->names[i];
    info->ndim = r->ndim[i];
    for (int d = 0; d < 4; d++)
        info->shape[d] = r->shape[i][d];
    info->flags = r->flags[i];
    return EQM_OK;
}

static size_t resnet_act_floats(const void *self, int rows)
{
    const resnet *r = self;
    return r->fixed + (rows > 0 ? (size_t)rows : 0) * r->per_row;
}

static int resnet_bind(void *self, const eqm_module_bind *b)
{
    resnet *r = self;
    if (!b || !b->params || !b->grads)
        return r->api->set_error(r->host, EQM_ERR_INVAL, "bind: params and grads are required");
    r->params = b->params;
    r->grads = b->grads;
    r->target = b->target;
    r->act = b->act;
    return EQM_OK;
}

static int resnet_out_dim(const void *self) { return ((const resnet *)self)->out_dim; }

/* torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), BN weight 1 bias 0,
 * zero_init_residual zeroes the last BN weight of each block; running stats 0 / 1. */
static int resnet_init(void *self, eqm_rng *rng)
{
    resnet *r = self;
    if (!r->params)
        return r->api->set_error(r->host, EQM_ERR_STATE, "init before bind");
    for (int i = 0; i < r->n_units; i++) {
        const unit *u = &r->u[i];
        float *w = r->params[u->t0];
        size_t n = (size_t)u->C_out * u->k * u->k * u->C_in;
        double std = sqrt(2.0 / ((double)u->C_out * u->k * u->k));
        for (size_t j = 0; j < n; j++)
            w[j] = (float)(std * r->api->rng_normal(rng));
        float g = (u->zero_gamma && r->o.zero_init_residual) ? 0.f : 1.f;
        for (int c = 0; c < u->C_out; c++) {
            r->params[u->t0 + 1][c] = g;
            r->params[u->t0 + 2][c] = 0.f;
            r->params[u->t0 + 3][c] = 0.f;
            r->params[u->t0 + 4][c] = 1.f;
        }
    }
    return EQM_OK;
}

/* ------------------------------------------------------------------ forward ----- */

/* The two elementwise passes below run over every block output (forward and backward):
 * an AVX2 clone picked at run time and -O3 for these loops only (the project's -O2 leaves
 * them scalar; same arithmetic, same bytes). */
#if defined(__GNUC__) && defined(__x86_64__)
#define RESNET_HOT __attribute__((target_clones("avx2", "default"), optimize("O3")))
#else
#define RESNET_HOT
#endif

/* y = max(y + id, 0), in place. */
typedef struct addrelu_ctx {
    float *y;
    const float *id;
} addrelu_ctx;

RESNET_HOT static void addrelu_body(void *vc, size_t b, size_t e)
{
    addrelu_ctx *c = vc;
    float *y = c->y;
    const float *id = c->id;
    for (size_t i = b; i < e; i++) {
        float v = y[i] + id[i];
        y[i] = v > 0.f ? v : 0.f;
    }
}

/* d = d * (y > 0), in place. */
RESNET_HOT static void mask_body(void *vc, size_t b, size_t e)
{
    addrelu_ctx *c = vc;
    float *d = c->y;
    const float *y = c->id;
    for (size_t i = b; i < e; i++)
        d[i] = y[i] > 0.f ? d[i] : 0.f;
}

/* The same mask from a bf16-stored y (act16): y > 0 on its exact float value. */
typedef struct mask16_ctx {
    float *d;
    const eqm_bf16 *y;
} mask16_ctx;

RESNET_HOT static void mask16_body(void *vc, size_t b, size_t e)
{
    mask16_ctx *c = vc;
    float *d = c->d;
    const eqm_bf16 *y = c->y;
    for (size_t i = b; i < e; i++) {
        uint32_t u = (uint32_t)y[i] << 16;
        float v;
        memcpy(&v, &u, sizeof v);
        d[i] = v > 0.f ? d[i] : 0.f;
    }
}

#define GRAIN 16384

typedef struct pass {
    resnet *r;
    int N;
    int tgt;                  /* BYOL target forward */
    int train;                /* BN batch statistics */
    float *const *w;          /* params or target */
} pass;

static float *row_ptr(const resnet *r, int N, size_t off)
{
    return r->act + r->fixed + (size_t)N * off;
}

static void conv_shape(const unit *u, int N, eqm_conv2d_shape *s)
{
    memset(s, 0, sizeof *s);
    s->N = N, s->H = u->H, s->W = u->W, s->C_in = u->C_in, s->C_out = u->C_out;
    s->kh = s->kw = u->k, s->stride = u->stride, s->pad = u->pad;
    s->flags = 0; /* bf16 products come from the host's precision (train.precision) */
}

static void bn_shape(const unit *u, int N, int train, int relu, eqm_bn_shape *s)
{
    memset(s, 0, sizeof *s);
    s->M = N * u->Ho * u->Wo;
    s->C = u->C_out;
    s->train = train;
    s->affine = 1;
    s->relu = relu;
    s->eps = 1e-5f;
    s->momentum = 0.1f;
}

/* What one unit's forward reads and writes. in, out and res are eqm_bf16 where their
 * flag says so (act16); the conv writes its output, the saved BN input, to c (float) or
 * under act16 to c16 (eqm_bf16, EQM_NN_OUT_BF16; c unused). res NULL: no
 * residual; else out = relu(BN(c) + res), a block's end in one host pass (ABI 1.5
 * EQM_NN_ADD_RESIDUAL, only where the host has batchnorm_forward_ex). */
typedef struct uio {
    const void *in;
    void *out;
    const void *res;
    float *c;
    eqm_bf16 *c16;
    int in16, out16, res16;
} uio;

static int unit_fwd_io(pass *p, const unit *u, const uio *io);

/* conv(in -> c) then BN(c -> out) with the unit's ReLU flag, all float. */
static int unit_fwd(pass *p, const unit *u, const float *in, float *c, float *out)
{
    uio io = {.in = in, .out = out, .c = c};
    return unit_fwd_io(p, u, &io);
}

static int unit_fwd_io(pass *p, const unit *u, const uio *io)
{
    resnet *r = p->r;
    const eqm_nn_api *nn = r->api->nn;
    const void *res = io->res;
    float *c = io->c;
    eqm_conv2d_shape cs;
    eqm_bn_shape bs;
    conv_shape(u, p->N, &cs);
    if (io->in16)
        cs.flags |= EQM_NN_IN_BF16;
    if (io->c16) { /* the conv writes c as bf16, its statistics those of the floats */
        cs.flags |= EQM_NN_OUT_BF16;
        c = (float *)(void *)io->c16;
    }
    const float *in = io->in; /* eqm_bf16 under EQM_NN_IN_BF16 (nn.h) */
    /* ABI 1.5, training: the conv sums the BN statistics of c as it writes it (where its
     * kernel can), and BN skips its own pass over c */
    int fused = (p->train || res || io->c16) && EQM_API_HAS(nn, batchnorm_forward_ex) &&
                nn->batchnorm_forward_ex;
    double stats[fused ? 2 * u->C_out : 1];
    int st = fused && p->train
                 ? nn->conv2d_forward_stats(r->host, &cs, c, in, p->w[u->t0], stats)
                 : nn->conv2d_forward(r->host, &cs, c, in, p->w[u->t0]);
    if (st < 0)
        return st;
    bn_shape(u, p->N, p->train, res ? 1 : u->relu, &bs);
    float *save = p->tgt ? r->act + r->tsave_off : r->act + u->save_off;
    float *rm = p->tgt ? r->act + r->trun_off : p->w[u->t0 + 3];
    float *rv = p->tgt ? r->act + r->trun_off + u->C_out : p->w[u->t0 + 4];
    if (p->tgt) { /* defined values for an implementation that reads them */
        memcpy(rm, p->w[u->t0 + 3], (size_t)u->C_out * sizeof(float));
        memcpy(rv, p->w[u->t0 + 4], (size_t)u->C_out * sizeof(float));
    }
    const uint32_t fl = res ? EQM_NN_ADD_RESIDUAL : 0u;
    if (io->c16 || io->out16 || io->res16) /* ABI 1.6 bf16 storage */
        return nn->batchnorm_forward_store(
            r->host, &bs,
            fl | (io->out16 ? EQM_NN_OUT_BF16 : 0u) | (io->res16 ? EQM_NN_RES_BF16 : 0u) |
                (io->c16 ? EQM_NN_IN_BF16 : 0u),
            io->out, NULL, c, res, p->w[u->t0 + 1], p->w[u->t0 + 2], rm, rv, save,
            p->train ? stats : NULL);
    if (fused)
        return nn->batchnorm_forward_ex(r->host, &bs, fl, io->out, c, res, p->w[u->t0 + 1],
                                        p->w[u->t0 + 2], rm, rv, save, p->train ? stats : NULL);
    return nn->batchnorm_forward(r->host, &bs, io->out, c, p->w[u->t0 + 1], p->w[u->t0 + 2], rm,
                                 rv, save);
}

static int online_forward(pass *p, const float *x, float *out)
{
    resnet *r = p->r;
    const eqm_nn_api *nn = r->api->nn;
    int N = p->N, st;
    const int a16 = r->act16;
    /* the conv writes c_off: floats, or bf16 under act16 */
#define UNIT_C(un) (a16 ? NULL : row_ptr(r, N, (un)->c_off))
#define UNIT_C16(un) (a16 ? (eqm_bf16 *)(void *)row_ptr(r, N, (un)->c_off) : NULL)
    const unit *u0 = &r->u[0];
    uio io0 = {.in = x,
               .out = row_ptr(r, N, r->stem_scratch ? r->g_off[2] : u0->a_off),
               .out16 = a_is16(r, 0),
               .c = UNIT_C(u0), .c16 = UNIT_C16(u0)};
    if ((st = unit_fwd_io(p, u0, &io0)) < 0)
        return st;
    const void *cur = io0.out;
    int cur16 = io0.out16;
    if (r->maxpool) {
        eqm_pool_shape ps = {N, u0->Ho, u0->Wo, u0->C_out, 3, 2, 1};
        if ((st = nn->maxpool_forward(r->host, &ps, row_ptr(r, N, r->p_off), cur,
                                      (int32_t *)row_ptr(r, N, r->arg_off))) < 0)
            return st;
        cur = row_ptr(r, N, r->p_off);
    }
    /* ABI 1.5: the shortcut first, then the last unit's BN adds it and applies the ReLU
     * (EQM_NN_ADD_RESIDUAL): the same floats as BN, then addrelu_body, one pass less */
    const int fuse_end = EQM_API_HAS(nn, batchnorm_forward_ex) && nn->batchnorm_forward_ex;
    for (int bi = 0; bi < r->n_blocks; bi++) {
        const block *b = &r->bk[bi];
        float *y = row_ptr(r, N, b->y_off);
        const void *in = cur, *id = cur;
        int in16 = cur16, id16 = cur16;
        if (b->ds >= 0 && fuse_end) {
            const unit *u = &r->u[b->ds];
            float *g0 = row_ptr(r, N, r->g_off[0]);
            uio io = {.in = cur, .in16 = cur16, .out = g0, .c = UNIT_C(u), .c16 = UNIT_C16(u)};
            if ((st = unit_fwd_io(p, u, &io)) < 0)
                return st;
            id = g0, id16 = 0;
        }
        for (int j = 0; j < b->n_main; j++) {
            const unit *u = &r->u[b->u0 + j];
            int last = j == b->n_main - 1;
            uio io = {.in = in, .in16 = in16, .c = UNIT_C(u), .c16 = UNIT_C16(u)};
            io.out = last ? y : row_ptr(r, N, u->a_off);
            io.out16 = last ? y_is16(r, bi) : a_is16(r, b->u0 + j);
            if (last && fuse_end)
                io.res = id, io.res16 = id16;
            if ((st = unit_fwd_io(p, u, &io)) < 0)
                return st;
            in = io.out, in16 = io.out16;
        }
        cur = y, cur16 = y_is16(r, bi);
        if (fuse_end)
            continue;
        /* a 1.4 host (no act16): BN, then the shortcut's add + ReLU */
        if (b->ds >= 0) {
            const unit *u = &r->u[b->ds];
            float *g0 = row_ptr(r, N, r->g_off[0]);
            if ((st = unit_fwd(p, u, id, row_ptr(r, N, u->c_off), g0)) < 0)
                return st;
            id = g0;
        }
        addrelu_ctx ac = {y, id};
        r->api->parallel_for(r->host, (size_t)N * b->Ho * b->Wo * b->C, GRAIN, addrelu_body,
                             &ac);
    }
#undef UNIT_C
#undef UNIT_C16
    const block *lb = &r->bk[r->n_blocks - 1];
    return nn->avgpool_forward(r->host, N, lb->Ho * lb->Wo, lb->C, out, cur);
}

/* Target forward: the same graph in the four G buffers (nothing saved). */
static int target_forward(pass *p, const float *x, float *out)
{
    resnet *r = p->r;
    const eqm_nn_api *nn = r->api->nn;
    int N = p->N, st;
    float *G[4];
    /* G buffers laid out for max_rows, not N: the online forward that the target forward
     * must not disturb may have had MORE rows (EquiMod: 3N online, 2N target), and its
     * saved activations extend to row_ptr(rows_online, g_off[0]) <= row_ptr(max_rows, .) */
    for (int g = 0; g < 4; g++)
        G[g] = row_ptr(r, r->max_rows, r->g_off[g]);
    const unit *u0 = &r->u[0];
    /* X = G[0], Y = G[1], T1 = G[2], T2 = G[3] */
    float *X = G[0], *Y = G[1], *T1 = G[2], *T2 = G[3], *t;
    if (r->maxpool) {
        if ((st = unit_fwd(p, u0, x, T1, T2)) < 0)
            return st;
        eqm_pool_shape ps = {N, u0->Ho, u0->Wo, u0->C_out, 3, 2, 1};
        if ((st = nn->maxpool_forward(r->host, &ps, X, T2, (int32_t *)Y)) < 0)
            return st;
    } else if ((st = unit_fwd(p, u0, x, T1, X)) < 0) {
        return st;
    }
    for (int bi = 0; bi < r->n_blocks; bi++) {
        const block *b = &r->bk[bi];
        const float *in = X;
        for (int j = 0; j < b->n_main; j++) {
            const unit *u = &r->u[b->u0 + j];
            /* c -> T1, a -> T2 (alternating so the input of the next conv survives) */
            float *c = (in == T1) ? T2 : T1;
            float *o = j == b->n_main - 1 ? Y : (c == T1 ? T2 : T1);
            if ((st = unit_fwd(p, u, in, c, o)) < 0)
                return st;
            in = o;
        }
        const float *id = X;
        if (b->ds >= 0) {
            if ((st = unit_fwd(p, &r->u[b->ds], X, T1, T2)) < 0)
                return st;
            id = T2;
        }
        addrelu_ctx ac = {Y, id};
        r->api->parallel_for(r->host, (size_t)N * b->Ho * b->Wo * b->C, GRAIN, addrelu_body,
                             &ac);
        t = X, X = Y, Y = t;
    }
    const block *lb = &r->bk[r->n_blocks - 1];
    return nn->avgpool_forward(r->host, N, lb->Ho * lb->Wo, lb->C, out, X);
}

static int resnet_forward(void *self, eqm_module_io *io)
{
    resnet *r = self;
    if (!r->act || !r->params)
        return r->api->set_error(r->host, EQM_ERR_STATE, "forward before bind");
    if (!io || !io->in || !io->out || io->rows <= 0 || io->rows > r->max_rows)
        return r->api->set_error(r->host, EQM_ERR_INVAL,
                                 "forward: rows %d outside 1..%d (max_rows) or NULL in/out",
                                 io ? io->rows : 0, r->max_rows);
    pass p = {r, io->rows, 0, io->train, r->params};
    if (io->use_target) {
        if (!r->target)
            return r->api->set_error(r->host, EQM_ERR_STATE,
                                     "use_target: the host bound no target weights");
        p.tgt = 1, p.train = 1, p.w = r->target;
        return target_forward(&p, io->in, io->out);
    }
    if (p.train && p.N * r->bk[r->n_blocks - 1].Ho * r->bk[r->n_blocks - 1].Wo < 2)
        return r->api->set_error(r->host, EQM_ERR_INVAL,
                                 "training mode needs at least 2 rows at a 1x1 last stage "
                                 "(BN batch statistics)");
    r->last_rows = 0;
    int st = online_forward(&p, io->in, io->out);
    if (st == EQM_OK)
        r->last_rows = io->rows;
    return st;
}

/* ------------------------------------------------------------------ backward ---- */

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

/* The unit's conv and BN gradients are final (each unit is visited once per backward):
 * under MPI the host starts averaging them while the layers below still run (ABI 1.4;
 * an older host has no grads_final and averages after backward). */
static int unit_done(resnet *r, const unit *u)
{
    if (!EQM_API_HAS(r->api, grads_final))
        return EQM_OK;
    return r->api->grads_final(r->host, u->t0, T_PER_UNIT);
}

/* ABI 1.5: the host's batchnorm_backward_ex and conv2d_backward can OVERWRITE din
 * (EQM_NN_SET_DIN) instead of adding into it. A 1.4 host's table ends before
 * batchnorm_backward_ex (and its conv2d_backward ignores the flag): zero + accumulate. */
static int host_sets_din(const resnet *r)
{
    const eqm_nn_api *nn = r->api->nn;
    return EQM_API_HAS(nn, batchnorm_backward_ex) && nn->batchnorm_backward_ex != NULL;
}

/* dc = dL/dc through the unit's BN (+ReLU): dc's old contents are dead. */
static int bn_bwd(resnet *r, int N, int train, const unit *u, float *dc, const float *dout,
                  int sd)
{
    const eqm_nn_api *nn = r->api->nn;
    eqm_bn_shape bs;
    bn_shape(u, N, train, u->relu, &bs);
    const float *c = row_ptr(r, N, u->c_off); /* eqm_bf16 under act16 (EQM_NN_IN_BF16) */
    /* `out` is only read with relu = 1; pass a valid buffer anyway */
    const float *out = u->relu && !(u == r->u && r->stem_scratch) ? row_ptr(r, N, u->a_off) : c;
    if (sd) /* 1.5: the ReLU mask from c and the affine (EQM_NN_RELU_FROM_IN): out unread */
        return nn->batchnorm_backward_ex(
            r->host, &bs,
            EQM_NN_SET_DIN | EQM_NN_RELU_FROM_IN | (r->act16 ? EQM_NN_IN_BF16 : 0u), dc,
            r->grads[u->t0 + 1], r->grads[u->t0 + 2], dout, c, out, r->params[u->t0 + 1],
            r->params[u->t0 + 2], r->act + u->save_off);
    zero(dc, (size_t)N * unit_out(u));
    return nn->batchnorm_backward(r->host, &bs, dc, r->grads[u->t0 + 1], r->grads[u->t0 + 2],
                                  dout, c, out, r->params[u->t0 + 1], r->act + u->save_off);
}

/* The unit's conv backward: dw +=; din = dL/din (set: its old contents are dead) or
 * din += dL/din (set = 0: another producer's gradient is in it, or the host's io->din). */
static int conv_bwd(resnet *r, int N, const unit *u, const void *in, int in16, float *din,
                    const float *dc, int set, int sd)
{
    eqm_conv2d_shape cs;
    conv_shape(u, N, &cs);
    if (in16)
        cs.flags |= EQM_NN_IN_BF16;
    if (set && din) {
        if (sd)
            cs.flags |= EQM_NN_SET_DIN;
        else
            zero(din, (size_t)N * u->H * u->W * u->C_in);
    }
    return r->api->nn->conv2d_backward(r->host, &cs, din, r->grads[u->t0], dc, in,
                                       r->params[u->t0]);
}

/* Gradient through BN (dout -> dc) then conv (dc -> din, = when set else +=; dw +=); in
 * is the conv's input, eqm_bf16 when in16. */
static int unit_bwd(resnet *r, int N, int train, const unit *u, const void *in, int in16,
                    float *din, int set, const float *dout, float *dc, int sd)
{
    int st;
    if ((st = bn_bwd(r, N, train, u, dc, dout, sd)) < 0 ||
        (st = conv_bwd(r, N, u, in, in16, din, dc, set, sd)) < 0)
        return st;
    return unit_done(r, u);
}

static int resnet_backward(void *self, eqm_module_io *io)
{
    resnet *r = self;
    const eqm_nn_api *nn = r->api->nn;
    if (!io || !io->dout || !io->in || io->rows != r->last_rows || io->use_target)
        return r->api->set_error(r->host, EQM_ERR_STATE,
                                 "backward needs a preceding online forward with the same rows "
                                 "(%d) and io->in/dout set",
                                 r->last_rows);
    int N = io->rows, st, train = io->train, sd = host_sets_din(r);
    /* Gradient buffers G0..G3, by index: iy holds dL/d(block output). Per block, the
     * identity gradient is d(sum) itself, so without a downsample the block's dx
     * accumulates into iy (no copy); with one, dx gets its own buffer. Two more buffers
     * carry dL/dc (BN input, `ia`) and dL/da (previous unit's output, `ib`). */
    float *G[4];
    for (int g = 0; g < 4; g++)
        G[g] = row_ptr(r, N, r->g_off[g]);
    int iy = 0;
    const block *lb = &r->bk[r->n_blocks - 1];
    zero(G[iy], (size_t)N * lb->Ho * lb->Wo * lb->C);
    if ((st = nn->avgpool_backward(r->host, N, lb->Ho * lb->Wo, lb->C, G[iy], io->dout)) < 0)
        return st;
    for (int bi = r->n_blocks - 1; bi >= 0; bi--) {
        const block *b = &r->bk[bi];
        const float *x = bi ? row_ptr(r, N, r->bk[bi - 1].y_off)
                            : row_ptr(r, N, r->maxpool ? r->p_off : r->u[0].a_off);
        const int x16 = bi ? y_is16(r, bi - 1) : !r->maxpool && a_is16(r, 0);
        size_t ny = (size_t)N * b->Ho * b->Wo * b->C;
        int free_[3], nf = 0;
        for (int g = 0; g < 4; g++)
            if (g != iy)
                free_[nf++] = g;
        float *dsum = G[iy];
        if (y_is16(r, bi)) { /* d(sum) = dy * (y > 0) */
            mask16_ctx mc = {dsum, (const eqm_bf16 *)(const void *)row_ptr(r, N, b->y_off)};
            r->api->parallel_for(r->host, ny, GRAIN, mask16_body, &mc);
        } else {
            addrelu_ctx mc = {dsum, row_ptr(r, N, b->y_off)};
            r->api->parallel_for(r->host, ny, GRAIN, mask_body, &mc);
        }
        int idx = iy;
        float *A = G[free_[0]], *B = G[free_[1]];
        if (b->ds >= 0) { /* dx = the downsample's dX (set), then += the main path's */
            idx = free_[2];
            if ((st = unit_bwd(r, N, train, &r->u[b->ds], x, x16, G[idx], 1, dsum, A, sd)) < 0)
                return st;
        }
        float *dx = G[idx];
        const float *dcur = dsum; /* dL/d(output of unit j) */
        for (int j = b->n_main - 1; j >= 0; j--) {
            const unit *u = &r->u[b->u0 + j];
            if (j == 0) { /* dx += (identity: dx is d(sum); downsample: its dX is in dx) */
                if ((st = unit_bwd(r, N, train, u, x, x16, dx, 0, dcur, A, sd)) < 0)
                    return st;
                break;
            }
            const unit *prev = &r->u[b->u0 + j - 1];
            /* B = dL/d(prev output), set: dcur (== B after the first unit) is consumed by
             * the BN backward before the conv writes B */
            if ((st = unit_bwd(r, N, train, u, row_ptr(r, N, prev->a_off),
                               a_is16(r, b->u0 + j - 1), B, 1, dcur, A, sd)) < 0)
                return st;
            dcur = B;
        }
        iy = idx; /* dx becomes the next dy */
    }
    /* stem: G[iy] = d(stem output) */
    const unit *u0 = &r->u[0];
    int o1 = (iy + 1) % 4, o2 = (iy + 2) % 4;
    if (r->maxpool) {
        eqm_pool_shape ps = {N, u0->Ho, u0->Wo, u0->C_out, 3, 2, 1};
        zero(G[o1], (size_t)N * unit_out(u0));
        if ((st = nn->maxpool_backward(r->host, &ps, G[o1], G[iy],
                                       (const int32_t *)row_ptr(r, N, r->arg_off))) < 0)
            return st;
        iy = o1;
        o1 = o2;
    }
    /* io->din is the host's: += (module contract) */
    return unit_bwd(r, N, train, u0, io->in, 0, io->din, 0, G[iy], G[o1], sd);
}

/* ------------------------------------------------------------------ descriptor -- */

static const eqm_module_ops resnet_ops = {
    .size = sizeof(eqm_module_ops),
    .create = resnet_create,
    .destroy = resnet_destroy,
    .n_tensors = resnet_n_tensors,
    .tensor_info = resnet_tensor_info,
    .act_floats = resnet_act_floats,
    .bind = resnet_bind,
    .init = resnet_init,
    .forward = resnet_forward,
    .backward = resnet_backward,
    .out_dim = resnet_out_dim,
    .flags = 0,
};

static const eqm_plugin_desc resnet_desc = {
    EQM_DESC_HEADER(EQM_KIND_BACKBONE),
    "resnet",
    "1.0.0",
    "torchvision ResNet-18/34/50 (CIFAR or ImageNet stem), pooled features",
    resnet_params,
    sizeof(resnet_opts),
    &resnet_ops,
};

static const eqm_plugin_desc *const descs[] = {&resnet_desc};
EQM_PLUGIN_ENTRY(descs)
