/* tests/backbone/check_backbone.c: the resnet backbone plugin (loaded by dlopen through the
 * registry), the model's flat buffers, safetensors and PyTorch interchange.
 *
 *   structure      tensor names/shapes/flags and parameter counts equal torchvision's
 *                  (ResNet-18 CIFAR 11,168,832 trainable; ResNet-34 21,284,672; ResNet-50
 *                  23,508,032: torchvision's counts minus fc)
 *   init           Kaiming normal fan-out statistics, BN 1/0, zero_init_residual
 *   grad_fd        finite differences of L = sum(h * dout) w.r.t. the input and 3 entries
 *                  of every trainable tensor: ResNet-18 CIFAR stem (8 channels, 4 rows,
 *                  16x16) and ImageNet stem (4 channels, 2 rows, 64x64) in training mode,
 *                  ResNet-50 (4 channels, 2 rows) in eval mode at 16x16 and training mode at
 *                  32x32. Input sizes keep the last BN over >= 8 values (at M = 2-3 the net
 *                  is so curved that no step works). Central differences in float at eps
 *                  3e-3, 1e-3, 3e-4, 1e-4: an entry passes when one of them gives |fd - an|
 *                  <= 3e-2 * max(|fd|, |an|) + 5e-3; 2% of the entries may fail (a ReLU
 *                  kink inside every step). A wrong gradient (sign, factor, missing term)
 *                  fails at every step.
 *   torch_ref      tests/backbone/fixtures (gen_fixtures.py): outputs, dL/dx, every weight
 *                  gradient, running stats after one training pass, eval output; relative
 *                  tolerance 1e-4 on outputs, 1e-3 on gradients (max abs diff over the
 *                  tensor divided by max(1, max |ref|)), 1e-4 on running stats
 *   export         export -> import round trip bit-identical; file layout (OIHW, I64
 *                  num_batches_tracked); strict import errors name the tensors;
 *                  `equimod export` (cmd_export) from a config = model_init(seed), and its
 *                  --import writes the same tensors
 *   target         use_target forward: equals the online training forward when the target
 *                  weights are equal, leaves running stats alone, and does not disturb the
 *                  saved activations (the online backward is bit-identical)
 *   model          with method_byol.so: slots by kind, parallel aligned flat buffers,
 *                  target bound for exactly the EMA tensors, model_init copies it
 *   grads_final    ABI 1.4: each unit's gradients declared final once, and final then
 *   act16          ABI 1.6 bf16 activation storage (EQM_ACT_BF16): smaller arena, errors
 *                  against fp32 within twice those of bf16 products alone
 *   set_din        ABI 1.5: with batchnorm_backward_ex / EQM_NN_SET_DIN (no memsets),
 *                  EQM_NN_RELU_FROM_IN and the block ends' EQM_NN_ADD_RESIDUAL the
 *                  gradients and dL/dx are the bits of a 1.4-sized nn table's zero +
 *                  accumulate path, which the plugin still takes on such a table (BN
 *                  statistics summed by BN itself in both: see sd_bnf_ex)
 * Plugin file: $EQUIMOD_PLUGIN_PATH/backbone_resnet.so, else
 * $EQM_BUILDDIR/plugins/backbone/resnet/.libs/backbone_resnet.so.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "train/model.h"
#include "nn/nn_internal.h"
#include "train/safetensors.h"

static eqm_registry *reg;
static const eqm_plugin *resnet_plugin;

static void load_plugin(void)
{
    if (resnet_plugin)
        return;
    /* The real discovery path: make check points EQUIMOD_PLUGIN_PATH at plugin-dir/. */
    reg = registry_create();
    ck_assert_ptr_nonnull(reg);
    ck_assert_int_ge(registry_scan(reg, NULL, 0), 1);
    resnet_plugin = registry_find(reg, EQM_KIND_BACKBONE, "resnet");
    ck_assert_msg(resnet_plugin != NULL, "no backbone/resnet in EQUIMOD_PLUGIN_PATH=%s",
                  getenv("EQUIMOD_PLUGIN_PATH") ? getenv("EQUIMOD_PLUGIN_PATH") : "");
}

/* Option struct from the plugin's own table: defaults, then "key=value" overrides. */
static void *make_opts(const char *const *kv)
{
    const eqm_plugin *p = resnet_plugin;
    void *o = calloc(1, p->desc.params_size);
    char err[512];
    ck_assert_ptr_nonnull(o);
    for (const eqm_param_spec *s = p->desc.params; s && s->key; s++)
        ck_assert_msg(param_parse(s, s->def ? s->def : "", (char *)o + s->offset, err,
                                  sizeof err) == EQM_OK,
                      "default of %s: %s", s->key, err);
    for (int i = 0; kv && kv[i]; i++) {
        const char *eq = strchr(kv[i], '=');
        ck_assert_ptr_nonnull(eq);
        const eqm_param_spec *s = p->desc.params;
        while (s->key && strncmp(s->key, kv[i], (size_t)(eq - kv[i])))
            s++;
        ck_assert_msg(s->key != NULL, "no option %s", kv[i]);
        ck_assert_msg(param_parse(s, eq + 1, (char *)o + s->offset, err, sizeof err) == EQM_OK,
                      "%s: %s", kv[i], err);
    }
    return o;
}

typedef struct net {
    eqm_model m;
    void *opts;
    int H, W, rows, D;
    const eqm_module_ops *ops;
    void *self;
} net;

/* act_flags: eqm_module_cfg.act_flags (ABI 1.6: EQM_ACT_BF16, bf16 activation storage) */
static void net_build_act(net *n, const char *const *kv, int H, int W, int rows, uint64_t seed,
                          uint32_t act_flags)
{
    char err[1024];
    load_plugin();
    memset(n, 0, sizeof *n);
    n->opts = make_opts(kv);
    n->H = H, n->W = W, n->rows = rows;
    eqm_module_cfg cfg = {sizeof cfg, H, W, 3, 0, 0, rows, act_flags};
    ck_assert_msg(model_add_module(&n->m, resnet_plugin, n->opts, &cfg, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_msg(model_finalize(&n->m, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(model_init(&n->m, seed, err, sizeof err) == 0, "%s", err);
    n->ops = n->m.mod[0].ops;
    n->self = n->m.mod[0].self;
    n->D = n->m.mod[0].out_dim;
}

static void net_build(net *n, const char *const *kv, int H, int W, int rows, uint64_t seed)
{
    net_build_act(n, kv, H, W, rows, seed, 0);
}

static void net_free(net *n)
{
    model_destroy(&n->m);
    free(n->opts);
}

static int fwd(net *n, const float *x, float *out, int train)
{
    eqm_module_io io;
    memset(&io, 0, sizeof io);
    io.size = sizeof io;
    io.rows = n->rows, io.train = train, io.in = x, io.out = out;
    int st = n->ops->forward(n->self, &io);
    ck_assert_msg(st == 0, "forward: %s", host_ctx_error(n->m.mod[0].ctx));
    return st;
}

static void bwd(net *n, const float *x, const float *dout, float *din, int train)
{
    eqm_module_io io;
    memset(&io, 0, sizeof io);
    io.size = sizeof io;
    io.rows = n->rows, io.train = train, io.in = x, io.dout = dout, io.din = din;
    ck_assert_msg(n->ops->backward(n->self, &io) == 0, "backward: %s",
                  host_ctx_error(n->m.mod[0].ctx));
}

static uint64_t lcg = 88172645463325252ull;
static float frand(void) /* N(0,1)-ish, deterministic */
{
    double s = 0;
    for (int i = 0; i < 4; i++) {
        lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
        s += (double)(lcg >> 11) * 0x1.0p-53;
    }
    return (float)((s - 2.0) * 1.7320508);
}

/* ------------------------------------------------------------------ structure --- */

START_TEST(test_structure)
{
    static const char *const r18[] = {"depth=18", "stem=cifar", NULL};
    static const char *const r50[] = {"depth=50", "stem=imagenet", NULL};
    net n;
    net_build(&n, r18, 32, 32, 0, 1);
    ck_assert_int_eq(n.D, 512);
    ck_assert_int_eq(n.m.mod[0].n_tensors, 100); /* 20 conv+BN units x 5 */
    ck_assert_uint_eq(n.m.n_trainable, 11168832u);
    const eqm_tensor_info *ti = n.m.mod[0].info;
    ck_assert_str_eq(ti[0].name, "conv1.weight");
    ck_assert_int_eq(ti[0].shape[0], 64);
    ck_assert_int_eq(ti[0].shape[1], 3);
    ck_assert_int_eq(ti[0].shape[3], 3);
    ck_assert_uint_eq(ti[0].flags, EQM_T_DECAY | EQM_T_EMA);
    ck_assert_str_eq(ti[1].name, "bn1.weight");
    ck_assert_uint_eq(ti[1].flags, EQM_T_EMA);
    ck_assert_str_eq(ti[4].name, "bn1.running_var");
    ck_assert_uint_eq(ti[4].flags, EQM_T_BUFFER | EQM_T_EMA);
    ck_assert_ptr_null(n.m.mod[0].grad[4]);
    int k = model_find(&n.m, 0, "layer2.0.downsample.0.weight");
    ck_assert_int_ge(k, 0);
    ck_assert_int_eq(ti[k].shape[0], 128);
    ck_assert_int_eq(ti[k].shape[1], 1);
    ck_assert_int_eq(ti[k].shape[3], 64);
    ck_assert_int_ge(model_find(&n.m, 0, "layer4.1.bn2.running_mean"), 0);
    ck_assert_int_lt(model_find(&n.m, 0, "layer1.0.downsample.0.weight"), 0);
    for (int i = 0; i < n.m.mod[0].n_tensors; i++)
        ck_assert_uint_eq(n.m.mod[0].offset[i] % EQM_MODEL_ALIGN_FLOATS, 0);
    net_free(&n);
    net_build(&n, r50, 64, 64, 0, 1);
    ck_assert_int_eq(n.D, 2048);
    ck_assert_int_eq(n.m.mod[0].n_tensors, 265); /* 53 units */
    ck_assert_uint_eq(n.m.n_trainable, 23508032u);
    k = model_find(&n.m, 0, "layer1.0.downsample.1.running_var");
    ck_assert_int_ge(k, 0);
    ck_assert_int_eq(n.m.mod[0].info[k].shape[0], 256);
    k = model_find(&n.m, 0, "layer3.5.conv3.weight");
    ck_assert_int_eq(n.m.mod[0].info[k].shape[0], 1024);
    ck_assert_int_eq(n.m.mod[0].info[k].shape[3], 256);
    net_free(&n);
    static const char *const r34[] = {"depth=34", "stem=imagenet", NULL};
    net_build(&n, r34, 64, 64, 0, 1);
    ck_assert_int_eq(n.D, 512);
    ck_assert_uint_eq(n.m.n_trainable, 21284672u); /* torchvision resnet34 minus fc */
    ck_assert_int_ge(model_find(&n.m, 0, "layer3.5.bn2.running_var"), 0);
    ck_assert_int_lt(model_find(&n.m, 0, "layer3.6.conv1.weight"), 0);
    net_free(&n);
}
END_TEST

START_TEST(test_init)
{
    static const char *const kv[] = {"depth=18", NULL};
    net n;
    net_build(&n, kv, 32, 32, 0, 42);
    /* layer3.0.conv2: 256 x 3 x 3 x 256, std sqrt(2 / (256 * 9)) */
    int k = model_find(&n.m, 0, "layer3.0.conv2.weight");
    const float *w = n.m.mod[0].param[k];
    size_t ne = n.m.mod[0].numel[k];
    double s = 0, s2 = 0;
    for (size_t i = 0; i < ne; i++)
        s += w[i], s2 += (double)w[i] * w[i];
    double mean = s / ne, sd = sqrt(s2 / ne - mean * mean), want = sqrt(2.0 / (256 * 9));
    ck_assert_msg(fabs(sd / want - 1) < 0.01 && fabs(mean) < 0.01 * want,
                  "std %g want %g, mean %g", sd, want, mean);
    /* zero_init_residual (default true): layerX.Y.bn2 weight 0, bn1 weight 1 */
    const float *g2 = n.m.mod[0].param[model_find(&n.m, 0, "layer2.1.bn2.weight")];
    const float *g1 = n.m.mod[0].param[model_find(&n.m, 0, "layer2.1.bn1.weight")];
    const float *rv = n.m.mod[0].param[model_find(&n.m, 0, "layer2.1.bn1.running_var")];
    const float *dsg = n.m.mod[0].param[model_find(&n.m, 0, "layer2.0.downsample.1.weight")];
    for (int c = 0; c < 128; c++) {
        ck_assert_float_eq(g2[c], 0.f);
        ck_assert_float_eq(g1[c], 1.f);
        ck_assert_float_eq(rv[c], 1.f);
        ck_assert_float_eq(dsg[c], 1.f);
    }
    /* same seed, same weights; another seed, others */
    net n2;
    net_build(&n2, kv, 32, 32, 0, 42);
    ck_assert(!memcmp(n.m.params, n2.m.params, n.m.n_floats * sizeof(float)));
    net_free(&n2);
    static const char *const kv2[] = {"depth=18", "zero_init_residual=false", NULL};
    net_build(&n2, kv2, 32, 32, 0, 43);
    ck_assert(memcmp(n.m.params, n2.m.params, n.m.n_floats * sizeof(float)));
    ck_assert_float_eq(n2.m.mod[0].param[model_find(&n2.m, 0, "layer2.1.bn2.weight")][0], 1.f);
    net_free(&n2);
    net_free(&n);
}
END_TEST

/* ------------------------------------------------------------------ grad_fd ----- */

/* Perturb BN gamma/beta so that no branch is dead and BN's affine gradients are generic.
 * The last BN of each residual branch gets a small gamma (0.1..0.3): a 16-block net of
 * 4-channel layers with unit gammas is chaotic (gradients ~1e3, no usable FD step). */
static void randomise_bn(net *n)
{
    eqm_module_inst *mi = &n->m.mod[0];
    const char *last = model_find(&n->m, 0, "layer1.0.bn3.weight") >= 0 ? "bn3.weight"
                                                                         : "bn2.weight";
    for (int i = 0; i < mi->n_tensors; i++) {
        const char *nm = mi->info[i].name;
        size_t l = strlen(nm);
        int is_w = l > 7 && !strcmp(nm + l - 7, ".weight") && mi->info[i].ndim == 1;
        int is_b = l > 5 && !strcmp(nm + l - 5, ".bias");
        int is_last = l > 10 && !strcmp(nm + l - 10, last);
        for (size_t j = 0; j < mi->numel[i]; j++) {
            if (is_last)
                mi->param[i][j] = 0.1f + 0.2f * fabsf(frand()) / 2.5f;
            else if (is_w)
                mi->param[i][j] = 0.8f + 0.4f * fabsf(frand());
            if (is_b)
                mi->param[i][j] = 0.2f * frand();
        }
    }
}

static int fd_train = 1; /* BN mode of the finite-difference case being run */

static double loss_of(net *n, const float *x, const float *dout, float *out)
{
    fwd(n, x, out, fd_train);
    double L = 0;
    for (int i = 0; i < n->rows * n->D; i++)
        L += (double)out[i] * dout[i];
    return L;
}

/* Central difference of L w.r.t. *p at eps 1e-3, 3e-4 and 1e-4; returns the smallest
 * error in units of the tolerance (<= 1 passes), *fd_out the difference at that eps. The
 * narrow test nets are kinky (ReLUs near 0, BN over few values): a right gradient matches
 * at one of the steps, a wrong one (sign, factor, missing term) at none. */
static double fd_check(net *n, float *p, double an, const float *x, const float *dout,
                       float *out, double *fd_out)
{
    static const float steps[] = {3e-3f, 1e-3f, 3e-4f, 1e-4f};
    double best = INFINITY;
    float v = *p;
    for (int k = 0; k < 4; k++) {
        float eps = steps[k];
        *p = v + eps;
        double lp = loss_of(n, x, dout, out);
        *p = v - eps;
        double lm = loss_of(n, x, dout, out);
        *p = v;
        double fd = (lp - lm) / (2 * (double)eps);
        double e = fabs(fd - an) / (3e-2 * fmax(fabs(fd), fabs(an)) + 5e-3);
        if (e < best)
            best = e, *fd_out = fd;
        if (e <= 1)
            break;
    }
    return best;
}

static void grad_fd_case(const char *const *kv, int H, int W, int rows, int train)
{
    fd_train = train;
    net n;
    lcg = 88172645463325252ull; /* same draws whether or not Check forks */
    net_build(&n, kv, H, W, rows, 7);
    randomise_bn(&n);
    size_t nx = (size_t)rows * H * W * 3;
    float *x = malloc(nx * sizeof *x), *din = calloc(nx, sizeof *din);
    float *out = malloc((size_t)rows * n.D * sizeof *out);
    float *dout = malloc((size_t)rows * n.D * sizeof *dout);
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    for (int i = 0; i < rows * n.D; i++)
        dout[i] = frand();
    model_zero_grad(&n.m);
    loss_of(&n, x, dout, out);
    bwd(&n, x, dout, din, train);
    int checked = 0, bad = 0;
    double worst = 0;
    char where[128] = "";
    /* input: 24 entries spread over the tensor */
    for (int k = 0; k < 24; k++) {
        size_t i = (size_t)k * 7919 % nx;
        double fd, an = din[i], e = fd_check(&n, &x[i], an, x, dout, out, &fd);
        checked++;
        if (e > 1) {
            bad++;
            if (e > worst)
                worst = e, snprintf(where, sizeof where, "input[%zu] fd %g an %g", i, fd, an);
        }
    }
    /* every trainable tensor: 3 entries */
    eqm_module_inst *mi = &n.m.mod[0];
    for (int t = 0; t < mi->n_tensors; t++) {
        if (!mi->grad[t])
            continue;
        for (int k = 0; k < 3; k++) {
            size_t i = ((size_t)k * 104729 + 17 * (size_t)t) % mi->numel[t];
            double fd, an = mi->grad[t][i];
            double e = fd_check(&n, &mi->param[t][i], an, x, dout, out, &fd);
            checked++;
            if (e > 1) {
                bad++;
                if (e > worst)
                    worst = e, snprintf(where, sizeof where, "%s[%zu] fd %g an %g",
                                        mi->info[t].name, i, fd, an);
            }
        }
    }
    /* A ReLU kink crossed by +-eps can spoil a rare entry: allow 2% of them. */
    ck_assert_msg(bad <= checked / 50, "%d of %d gradient entries off (worst %.1fx tol: %s)", bad,
                  checked, worst, where);
    fprintf(stderr, "grad_fd %s/%s/%s: %d entries, %d outside tolerance\n", kv[0], kv[1],
            train ? "train" : "eval", checked, bad);
    free(x), free(din), free(out), free(dout);
    net_free(&n);
}

START_TEST(test_grad_fd_r18_cifar)
{
    static const char *const kv[] = {"depth=18", "stem=cifar", "width=0.125",
                                     "zero_init_residual=false", NULL};
    grad_fd_case(kv, 16, 16, 4, 1);
}
END_TEST

START_TEST(test_grad_fd_r18_imagenet)
{
    static const char *const kv[] = {"depth=18", "stem=imagenet", "width=0.0625",
                                     "zero_init_residual=false", NULL};
    grad_fd_case(kv, 64, 64, 2, 1);
}
END_TEST

START_TEST(test_grad_fd_r50)
{
    static const char *const kv[] = {"depth=50", "stem=cifar", "width=0.0625",
                                     "zero_init_residual=false", NULL};
    grad_fd_case(kv, 16, 16, 2, 0);
}
END_TEST

START_TEST(test_grad_fd_r50_train)
{
    static const char *const kv[] = {"depth=50", "stem=cifar", "width=0.0625",
                                     "zero_init_residual=false", NULL};
    grad_fd_case(kv, 32, 32, 2, 1);
}
END_TEST

/* ------------------------------------------------------------------ torch_ref --- */

static char *fixture(const char *name)
{
    static char buf[2][4096];
    static int k;
    const char *src = getenv("EQM_SRCDIR");
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/tests/backbone/fixtures/%s", src ? src : EQM_SRCDIR,
             name);
    return buf[k];
}

static const float *ref_f32(st_file *f, const char *name, size_t numel)
{
    const st_tensor *t = st_find(f, name);
    ck_assert_msg(t != NULL, "fixture lacks %s", name);
    ck_assert_str_eq(t->dtype, "F32");
    ck_assert_uint_eq(t->numel, numel);
    return t->data; /* F32 data of our own fixtures is 4-byte aligned (written F32 only) */
}

/* max |a - b| / max(1, max |b|) */
static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / fmax(1.0, m);
}

static void torch_case(const char *name, const char *const *kv, int HW, int rows)
{
    char err[4096], fn[64];
    net n;
    net_build(&n, kv, HW, HW, rows, 1);
    snprintf(fn, sizeof fn, "%s_weights.safetensors", name);
    ck_assert_msg(st_import_backbone(&n.m, fixture(fn), err, sizeof err) == 0, "%s", err);
    snprintf(fn, sizeof fn, "%s_ref.safetensors", name);
    st_file *f = NULL;
    ck_assert_msg(st_read(fixture(fn), &f, err, sizeof err) == 0, "%s", err);
    size_t nx = (size_t)rows * HW * HW * 3, no = (size_t)rows * n.D;
    const float *x = ref_f32(f, "input_nhwc", nx);
    float *out = malloc(no * sizeof *out), *din = calloc(nx, sizeof *din);
    model_zero_grad(&n.m);
    fwd(&n, x, out, 1);
    double e_out = rel_err(out, ref_f32(f, "out", no), no);
    bwd(&n, x, ref_f32(f, "dout", no), din, 1);
    double e_din = rel_err(din, ref_f32(f, "din_nhwc", nx), nx);
    double e_g = 0, e_rs = 0;
    char worst[96] = "";
    eqm_module_inst *mi = &n.m.mod[0];
    float *tmp = NULL;
    for (int t = 0; t < mi->n_tensors; t++) {
        char key[160];
        const eqm_tensor_info *ti = &mi->info[t];
        if (mi->grad[t]) {
            snprintf(key, sizeof key, "grad.%s", ti->name);
            const float *r = ref_f32(f, key, mi->numel[t]);
            const float *g = mi->grad[t];
            if (ti->ndim == 4) { /* ours OHWI -> OIHW */
                int O = ti->shape[0], KH = ti->shape[1], KW = ti->shape[2], I = ti->shape[3];
                tmp = realloc(tmp, mi->numel[t] * sizeof *tmp);
                for (int o = 0; o < O; o++)
                    for (int y = 0; y < KH; y++)
                        for (int xx = 0; xx < KW; xx++)
                            for (int c = 0; c < I; c++)
                                tmp[(((size_t)o * I + c) * KH + y) * KW + xx] =
                                    g[(((size_t)o * KH + y) * KW + xx) * I + c];
                g = tmp;
            }
            double e = rel_err(g, r, mi->numel[t]);
            if (e > e_g)
                e_g = e, snprintf(worst, sizeof worst, "%s", ti->name);
        } else {
            snprintf(key, sizeof key, "after.%s", ti->name);
            e_rs = fmax(e_rs, rel_err(mi->param[t], ref_f32(f, key, mi->numel[t]), mi->numel[t]));
        }
    }
    fwd(&n, x, out, 0);
    double e_eval = rel_err(out, ref_f32(f, "out_eval", no), no);
    fprintf(stderr,
            "torch_ref %s: out %.2e, din %.2e, grads %.2e (worst %s), running stats %.2e, "
            "eval out %.2e\n",
            name, e_out, e_din, e_g, worst, e_rs, e_eval);
    ck_assert_msg(e_out < 1e-4, "%s: output differs from PyTorch by %g", name, e_out);
    ck_assert_msg(e_din < 1e-3, "%s: dL/dx differs by %g", name, e_din);
    ck_assert_msg(e_g < 1e-3, "%s: weight gradient %s differs by %g", name, worst, e_g);
    ck_assert_msg(e_rs < 1e-4, "%s: running statistics differ by %g", name, e_rs);
    ck_assert_msg(e_eval < 1e-4, "%s: eval output differs by %g", name, e_eval);
    free(tmp), free(out), free(din);
    st_close(f);
    net_free(&n);
}

START_TEST(test_torch_r18)
{
    static const char *const kv[] = {"depth=18", "stem=cifar", "width=0.0625", NULL};
    torch_case("r18", kv, 16, 2);
}
END_TEST

START_TEST(test_torch_r50)
{
    static const char *const kv[] = {"depth=50", "stem=imagenet", "width=0.0625", NULL};
    torch_case("r50", kv, 64, 2);
}
END_TEST

/* Tolerance of a bf16 network's forward against fp32 (relative, see rel_err / rel_l2):
 * every conv's products carry at most 2^-7 + 2^-16 relative error (both operands rounded
 * to bf16, whose unit roundoff is 2^-8; gemm_bf16.c; tests/nn/check_bf16.c pins each op),
 * and a signal crosses at most L convs (ResNet-18: 17 on its longest path plus a
 * shortcut); errors that add up linearly through the layers give at most about L * 2^-7. */
static double bf16_tol(int convs) { return convs * 0x1.0p-7; }

/* The host's precision EQM_NN_BF16 (train.precision = bf16) reaches every conv of the
 * backbone: the output stays within bf16_tol(18) of PyTorch's fp32 (forward only). */
START_TEST(test_bf16_option)
{
    static const char *const kv[] = {"depth=18", "stem=cifar", "width=0.0625", NULL};
    char err[4096];
    net n;
    net_build(&n, kv, 16, 16, 2, 1);
    ck_assert_msg(st_import_backbone(&n.m, fixture("r18_weights.safetensors"), err,
                                     sizeof err) == 0,
                  "%s", err);
    st_file *f = NULL;
    ck_assert_msg(st_read(fixture("r18_ref.safetensors"), &f, err, sizeof err) == 0, "%s", err);
    size_t no = (size_t)2 * n.D;
    float *out = malloc(no * sizeof *out);
    nn_precision_set(EQM_NN_BF16);
    fwd(&n, ref_f32(f, "input_nhwc", (size_t)2 * 16 * 16 * 3), out, 1);
    nn_precision_set(0);
    double e = rel_err(out, ref_f32(f, "out", no), no);
    fprintf(stderr, "bf16 r18: out %.2e vs PyTorch fp32 (tolerance %.2e)\n", e, bf16_tol(18));
    ck_assert_msg(e < bf16_tol(18), "bf16 output off by %g", e);
    free(out);
    st_close(f);
    net_free(&n);
}
END_TEST

/* ||a - b|| / ||b|| (Frobenius). */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double x = (double)a[i] - b[i];
        d += x * x, m += (double)b[i] * b[i];
    }
    return sqrt(d / fmax(m, 1e-300));
}

/* cnt copies of one net (seed 7, the same BN draws, input x and output gradient dout), net
 * v built with act_flags act[v] and run at nn precision prec[v]: one training forward and
 * backward each, out[v] and din[v] (dL/dx) allocated here. x: rows x H x H x 3, filled. */
static void same_nets(net *n, int cnt, const char *const *kv, int H, int rows,
                      const uint32_t *prec, const uint32_t *act, float *x, float **out,
                      float **din)
{
    size_t nx = (size_t)rows * H * H * 3;
    float *dout = NULL;
    for (int v = 0; v < cnt; v++) {
        lcg = 88172645463325252ull; /* same BN draws, input and dout in every net */
        net_build_act(&n[v], kv, H, H, rows, 7, act[v]);
        randomise_bn(&n[v]);
        size_t no = (size_t)rows * n[v].D;
        for (size_t i = 0; i < nx; i++)
            x[i] = frand();
        if (!dout)
            dout = malloc(no * sizeof *dout);
        for (size_t i = 0; i < no; i++)
            dout[i] = frand();
        out[v] = malloc(no * sizeof *out[v]);
        din[v] = calloc(nx, sizeof *din[v]);
        model_zero_grad(&n[v].m);
        nn_precision_set(prec[v]);
        fwd(&n[v], x, out[v], 1);
        bwd(&n[v], x, dout, din[v], 1);
        nn_precision_set(0);
    }
    free(dout);
}

/* The whole network's gradients, bf16 against fp32: the same ResNet-18-CIFAR (same seed,
 * BN randomised the same way) at precision fp32 and bf16, one training-mode forward and
 * backward on the same input and a random output gradient; relative L2 of each tensor.
 * - output: within bf16_tol(18) (measured 3.3e-3);
 * - input gradient and every parameter gradient: within 0.5 (cosine >= ~0.87). The
 *   backward of the bf16 net runs through the ReLU masks and BN statistics of a forward
 *   that differs by ~2^-9 relative, which flips the masks of near-zero pre-activations,
 *   and train-mode BN backward subtracts the batch means (cancellation): no per-op bound
 *   covers that. Measured (AVX512_BF16 and emulation alike): input gradient 0.16, worst
 *   parameter gradient 0.27 (a BN bias: a sum over 2048 rows), 0.10 / 0.14 in eval mode.
 *   A broken bf16 op (a wrong transposition, an operand not rounded, a lost block) is O(1).
 * - not bit-identical (the precision reaches the convs). */
START_TEST(test_bf16_grads)
{
    const int H = 32, rows = 8;
    static const char *const kv[] = {"depth=18", "stem=cifar", "width=0.125", NULL};
    net n[2];
    float *out[2], *din[2];
    size_t nx = (size_t)rows * H * H * 3;
    float *x = malloc(nx * sizeof *x);
    static const uint32_t prec[2] = {0, EQM_NN_BF16}, act[2] = {0, 0};
    same_nets(n, 2, kv, H, rows, prec, act, x, out, din);
    const double tol = bf16_tol(18), tol_b = 0.5;
    size_t no = (size_t)rows * n[0].D;
    double e_out = rel_l2(out[1], out[0], no), e_din = rel_l2(din[1], din[0], nx);
    double e_g = 0;
    char worst[96] = "";
    eqm_module_inst *a = &n[0].m.mod[0], *b = &n[1].m.mod[0];
    ck_assert_int_eq(a->n_tensors, b->n_tensors);
    for (int t = 0; t < a->n_tensors; t++) {
        if (!a->grad[t])
            continue;
        double e = rel_l2(b->grad[t], a->grad[t], a->numel[t]);
        if (e > e_g)
            e_g = e, snprintf(worst, sizeof worst, "%s", a->info[t].name);
    }
    fprintf(stderr, "bf16 vs fp32 r18 (%s): out %.2e, din %.2e, worst grad %.2e (%s); "
                    "tolerance %.2e / %.2e\n",
            (const char *[]){"emulated", "AVX512_BF16", "AMX"}[nn_bf16_native()], e_out, e_din, e_g, worst, tol, tol_b);
    ck_assert_msg(e_out > 0 && e_g > 0, "bf16 network bit-identical to fp32: flag ignored");
    ck_assert_msg(e_out < tol, "bf16 output off by %g", e_out);
    ck_assert_msg(e_din < tol_b, "bf16 dL/dx off by %g", e_din);
    ck_assert_msg(e_g < tol_b, "bf16 gradient of %s off by %g", worst, e_g);
    for (int v = 0; v < 2; v++)
        free(out[v]), free(din[v]), net_free(&n[v]);
    free(x);
}
END_TEST

/* ABI 1.6 bf16 activation storage (EQM_ACT_BF16): the backbone keeps its conv outputs,
 * unit outputs and block outputs (not the last, nor a max pool's input and output) as
 * bf16.
 * - memory: act_floats shrinks (the saved tensors halve, the four float gradient buffers
 *   stay): below ratio_max of the float plan's.
 * - numerics: three copies of one net (same weights, BN draws, input, dout), one training
 *   forward + backward each: fp32 (0), bf16 products with float storage (1), bf16
 *   products and storage (2). The conv products already round their inputs to bf16, so
 *   storage adds the rounding of each BN input (the value normalised) and of the
 *   residual stream, 2^-9 relative each: one more rounding per layer, of the size of the
 *   products' own. So each error of (2) against (0) (output, dL/dx, all parameter
 *   gradients as one vector; relative L2) stays within twice that of (1) against (0)
 *   plus 1e-3, and the output within bf16_tol(18). Per tensor the bf16 gradients of
 *   these narrow nets are noise-dominated (test_bf16_grads; ResNet-50 at width 1/16:
 *   single BN biases at 0.6-1.0 relative even with float storage), hence the one vector.
 *   Measured (AMX; out / dL/dx / gradients): ResNet-18 (2) 4.5e-3 / 0.17 / 0.14 against
 *   (1) 3.4e-3 / 0.17 / 0.12; ResNet-50 (2) 1.8e-2 / 0.37 / 0.34 against (1) 1.1e-2 /
 *   0.26 / 0.24.
 * - eval mode at fp32 precision with bf16 storage (the kNN of a bf16-trained run): output
 *   within bf16_tol(18) of the float one, and not identical.
 * - ResNet-18 CIFAR (identity and downsample blocks) and ResNet-50 ImageNet (max pool,
 *   bottlenecks: the stem stays float).
 * A storage bug (a tensor read in the wrong format, a half-size region overrun) is O(1);
 * ASan sees an overrun of the arena. */
static double grads_rel_l2(net *a, net *b)
{
    double d = 0, m = 0;
    eqm_module_inst *x = &a->m.mod[0], *y = &b->m.mod[0];
    for (int t = 0; t < x->n_tensors; t++)
        for (size_t k = 0; x->grad[t] && k < x->numel[t]; k++) {
            double v = (double)y->grad[t][k] - x->grad[t][k];
            d += v * v, m += (double)x->grad[t][k] * x->grad[t][k];
        }
    return sqrt(d / fmax(m, 1e-300));
}

static void act16_case(const char *const *kv, int H, int rows, double ratio_max)
{
    net n[3]; /* 0: fp32, 1: bf16 precision, float storage, 2: bf16 precision and storage */
    float *out[3], *din[3], *ev[2];
    size_t nx = (size_t)rows * H * H * 3;
    float *x = malloc(nx * sizeof *x);
    static const uint32_t prec[3] = {0, EQM_NN_BF16, EQM_NN_BF16}, act[3] = {0, 0, EQM_ACT_BF16};
    same_nets(n, 3, kv, H, rows, prec, act, x, out, din);
    double ratio = (double)n[2].m.mod[0].act_floats / (double)n[1].m.mod[0].act_floats;
    fprintf(stderr, "act16 %s: act_floats %zu -> %zu (%.3f)\n", kv[0], n[1].m.mod[0].act_floats,
            n[2].m.mod[0].act_floats, ratio);
    ck_assert_msg(ratio < ratio_max, "bf16 storage: act_floats ratio %.3f (want < %.2f)", ratio,
                  ratio_max);
    size_t no = (size_t)rows * n[0].D;
    double e[2][3];
    for (int v = 1; v < 3; v++) {
        e[v - 1][0] = rel_l2(out[v], out[0], no);
        e[v - 1][1] = rel_l2(din[v], din[0], nx);
        e[v - 1][2] = grads_rel_l2(&n[0], &n[v]);
        fprintf(stderr, "act16 %s: %s vs fp32: out %.2e, din %.2e, gradients %.2e\n", kv[0],
                v == 1 ? "bf16 products, float storage" : "bf16 products and storage",
                e[v - 1][0], e[v - 1][1], e[v - 1][2]);
    }
    static const char *const what[3] = {"output", "dL/dx", "gradients"};
    for (int k = 0; k < 3; k++)
        ck_assert_msg(isfinite(e[1][k]) && e[1][k] <= 2 * e[0][k] + 1e-3,
                      "bf16 storage: %s off by %.3e (float storage: %.3e)", what[k], e[1][k],
                      e[0][k]);
    ck_assert_msg(e[1][0] < bf16_tol(18), "bf16 storage: output off by %g", e[1][0]);
    for (int v = 0; v < 2; v++) { /* eval at fp32 precision: float vs bf16 storage */
        ev[v] = malloc(no * sizeof *ev[v]);
        fwd(&n[v ? 2 : 0], x, ev[v], 0);
    }
    double e_ev = rel_l2(ev[1], ev[0], no);
    fprintf(stderr, "act16 %s eval (fp32 products): out %.2e\n", kv[0], e_ev);
    ck_assert_msg(e_ev > 0, "bf16 storage left the eval output bit-identical: not applied");
    ck_assert_msg(e_ev < bf16_tol(18), "bf16 storage: eval output off by %g", e_ev);
    for (int v = 0; v < 3; v++)
        free(out[v]), free(din[v]), net_free(&n[v]);
    free(ev[0]), free(ev[1]), free(x);
}

START_TEST(test_act16)
{
    static const char *const r18[] = {"depth=18", "stem=cifar", "width=0.125", NULL};
    static const char *const r50[] = {"depth=50", "stem=imagenet", "width=0.0625", NULL};
    act16_case(r18, 32, 8, 0.75);
    act16_case(r50, 64, 8, 0.85);
}
END_TEST

/* ------------------------------------------------------------------ export ------ */

static void tmp_path(char *buf, size_t n, const char *stem)
{
    const char *bd = getenv("EQM_BUILDDIR");
    snprintf(buf, n, "%s/tests/backbone/%s.%d.safetensors", bd ? bd : ".", stem, (int)getpid());
}

START_TEST(test_export_roundtrip)
{
    static const char *const kv[] = {"depth=18", "stem=cifar", "width=0.125", NULL};
    char err[4096], path[4096];
    net a, b;
    net_build(&a, kv, 32, 32, 0, 5);
    net_build(&b, kv, 32, 32, 0, 6);
    randomise_bn(&a); /* non-default BN values must travel too */
    eqm_module_inst *ma = &a.m.mod[0], *mb = &b.m.mod[0];
    for (int t = 0; t < ma->n_tensors; t++)
        if (ma->info[t].flags & EQM_T_BUFFER)
            for (size_t j = 0; j < ma->numel[t]; j++)
                ma->param[t][j] = 0.5f + fabsf(frand());
    ck_assert(memcmp(a.m.params, b.m.params, a.m.n_floats * sizeof(float)));
    tmp_path(path, sizeof path, "roundtrip");
    static const char *const meta[] = {"k", "v", NULL};
    ck_assert_msg(st_export_backbone(&a.m, path, 3, meta, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(st_import_backbone(&b.m, path, err, sizeof err) == 0, "%s", err);
    ck_assert(!memcmp(a.m.params, b.m.params, a.m.n_floats * sizeof(float)));
    /* layout seen by PyTorch */
    st_file *f;
    ck_assert_msg(st_read(path, &f, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(st_count(f), ma->n_tensors + ma->n_tensors / 5);
    const st_tensor *t = st_find(f, "conv1.weight");
    ck_assert_int_eq(t->ndim, 4);
    ck_assert(t->shape[0] == 8 && t->shape[1] == 3 && t->shape[2] == 3 && t->shape[3] == 3);
    t = st_find(f, "layer2.0.downsample.0.weight");
    ck_assert(t->shape[0] == 16 && t->shape[1] == 8 && t->shape[2] == 1);
    float w;
    int k = model_find(&a.m, 0, "conv1.weight"); /* OIHW [o=1][i=2][y=0][x=1] = OHWI [1][0][1][2] */
    memcpy(&w, (const float *)st_find(f, "conv1.weight")->data + ((1 * 3 + 2) * 3 + 0) * 3 + 1,
           4);
    ck_assert_float_eq(w, ma->param[k][((1 * 3 + 0) * 3 + 1) * 3 + 2]);
    t = st_find(f, "layer3.1.bn2.num_batches_tracked");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->dtype, "I64");
    ck_assert_int_eq(t->ndim, 0);
    int64_t nbt;
    memcpy(&nbt, t->data, 8);
    ck_assert_int_eq(nbt, 3);
    ck_assert_str_eq(st_metadata(f, "format"), "pt");
    ck_assert_str_eq(st_metadata(f, "k"), "v");
    st_close(f);
    unlink(path);
    (void)mb;
    net_free(&a);
    net_free(&b);
}
END_TEST

/* `equimod export` itself (cmd_export, plugins from $EQUIMOD_PLUGIN_PATH): a config gives
 * exactly model_init(seed)'s weights; --import of that file writes the same tensors; a
 * file that does not fit the config is refused. */
START_TEST(test_cli_export)
{
    char cfg[4096], p1[4096], p2[4096], err[4096];
    ck_assert_msg(getenv("EQUIMOD_PLUGIN_PATH") != NULL,
                  "EQUIMOD_PLUGIN_PATH unset: run through make check (plugin-dir/)");
    tmp_path(cfg, sizeof cfg, "cli_cfg");
    strcpy(cfg + strlen(cfg) - strlen(".safetensors"), ".ini"); /* SOURCE kind by suffix */
    tmp_path(p1, sizeof p1, "cli1");
    tmp_path(p2, sizeof p2, "cli2");
    FILE *fp = fopen(cfg, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("[run]\nseed = 21\n\n[backbone]\nplugin = resnet\ndepth = 18\nwidth = 0.125\n"
          "zero_init_residual = false\n",
          fp);
    fclose(fp);
    char *a1[] = {"export", cfg, "-o", p1, NULL};
    ck_assert_int_eq(cmd_export(4, a1), 0);
    char *a2[] = {"export", cfg, "--import", p1, "-o", p2, NULL};
    ck_assert_int_eq(cmd_export(6, a2), 0);
    char *a3[] = {"export", cfg, "--set", "backbone.depth=34", "--import", p1, "-o", p2, NULL};
    ck_assert_int_eq(cmd_export(8, a3), 1);
    char *a4[] = {"export", cfg, NULL};
    ck_assert_int_eq(cmd_export(2, a4), 2);
    st_file *f1, *f2;
    ck_assert_msg(st_read(p1, &f1, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(st_read(p2, &f2, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(st_metadata(f1, "equimod.seed"), "21");
    ck_assert_int_eq(st_count(f1), st_count(f2));
    for (int i = 0; i < st_count(f1); i++) {
        const st_tensor *t1 = st_at(f1, i), *t2 = st_find(f2, t1->name);
        ck_assert_msg(t2 && t1->numel == t2->numel && !strcmp(t1->dtype, t2->dtype) &&
                          !memcmp(t1->data, t2->data, t1->numel * t1->elem_size),
                      "tensor %s changed through --import", t1->name);
    }
    /* the same weights as model_init(21) in C */
    static const char *const kv[] = {"depth=18", "width=0.125", "zero_init_residual=false",
                                     NULL};
    net a, b;
    net_build(&a, kv, 32, 32, 0, 21);
    net_build(&b, kv, 32, 32, 0, 22);
    ck_assert_msg(st_import_backbone(&b.m, p1, err, sizeof err) == 0, "%s", err);
    ck_assert(!memcmp(a.m.params, b.m.params, a.m.n_floats * sizeof(float)));
    net_free(&a);
    net_free(&b);
    st_close(f1);
    st_close(f2);
    unlink(cfg), unlink(p1), unlink(p2);
}
END_TEST

/* Write the exported tensors of `a` again, with edits, through the writer. */
START_TEST(test_import_errors)
{
    static const char *const kv[] = {"depth=18", "stem=cifar", "width=0.0625", NULL};
    static const char *const kv_wide[] = {"depth=18", "stem=cifar", "width=0.125", NULL};
    char err[4096], good[4096], path[4096];
    net a, b;
    net_build(&a, kv, 16, 16, 0, 5);
    net_build(&b, kv_wide, 16, 16, 0, 5);
    tmp_path(good, sizeof good, "good");
    tmp_path(path, sizeof path, "bad");
    ck_assert_msg(st_export_backbone(&a.m, good, 0, NULL, err, sizeof err) == 0, "%s", err);
    st_file *f;
    ck_assert_msg(st_read(good, &f, err, sizeof err) == 0, "%s", err);
    /* (1) a missing tensor and an extra one */
    st_writer *w = st_writer_create();
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (!strcmp(t->name, "layer3.0.bn1.bias"))
            continue;
        ck_assert_int_eq(st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err,
                                       sizeof err), 0);
    }
    float fcw[4] = {0};
    int64_t fcs[2] = {2, 2};
    st_writer_add(w, "fc.weight", "F32", 2, fcs, fcw, err, sizeof err);
    ck_assert_int_eq(st_writer_write(w, path, err, sizeof err), 0);
    st_writer_destroy(w);
    ck_assert_int_eq(st_import_backbone(&a.m, path, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "missing tensor(s): layer3.0.bn1.bias") &&
                      strstr(err, "unexpected tensor(s): fc.weight"),
                  "%s", err);
    /* (2) wrong widths: every shape named */
    ck_assert_int_eq(st_import_backbone(&b.m, good, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "conv1.weight: shape [4, 3, 3, 3] in the file, [8, 3, 3, 3] "
                              "expected"),
                  "%s", err);
    /* (3) malformed files */
    FILE *fp = fopen(path, "wb");
    fwrite("\x0e\0\0\0\0\0\0\0{\"a\": {\"dtype\"", 1, 22, fp);
    fclose(fp);
    ck_assert_int_eq(st_import_backbone(&a.m, path, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "bad JSON header"), "%s", err);
    const char hole[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    unsigned char buf[128] = {0};
    buf[0] = (unsigned char)(sizeof hole - 1);
    memcpy(buf + 8, hole, sizeof hole - 1);
    st_file *g = NULL;
    ck_assert_int_eq(st_parse(buf, 8 + sizeof hole - 1 + 8, "mem", &g, err, sizeof err),
                     EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "leaves a hole"), "%s", err);
    ck_assert_int_eq(st_parse(buf, 8 + sizeof hole - 1 + 4, "mem", &g, err, sizeof err),
                     EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "out of the data region"), "%s", err);
    ck_assert_int_eq(st_read("/nonexistent/x.safetensors", &g, err, sizeof err), EQM_ERR_IO);
    /* (4) NaN / Inf / beyond-float F64 weights: refused naming the tensor, nothing copied */
    float *before = malloc(a.m.n_floats * sizeof(float));
    memcpy(before, a.m.params, a.m.n_floats * sizeof(float));
    for (int k = 0; k < 3; k++) {
        const char *victim = "layer2.0.conv1.weight";
        w = st_writer_create();
        float *copy = NULL;
        double *d64 = NULL;
        for (int i = 0; i < st_count(f); i++) {
            const st_tensor *t = st_at(f, i);
            const void *data = t->data;
            const char *dtype = t->dtype;
            if (!strcmp(t->name, victim)) {
                if (k < 2) {
                    copy = malloc(t->numel * sizeof(float));
                    memcpy(copy, t->data, t->numel * sizeof(float));
                    copy[t->numel / 2] = k == 0 ? NAN : INFINITY;
                    data = copy;
                } else {
                    d64 = malloc(t->numel * sizeof(double));
                    for (size_t j = 0; j < t->numel; j++)
                        d64[j] = 1e300; /* no float holds it */
                    data = d64;
                    dtype = "F64";
                }
            }
            ck_assert_int_eq(st_writer_add(w, t->name, dtype, t->ndim, t->shape, data, err,
                                           sizeof err), 0);
        }
        ck_assert_int_eq(st_writer_write(w, path, err, sizeof err), 0);
        st_writer_destroy(w);
        free(copy);
        free(d64);
        ck_assert_int_eq(st_import_backbone(&a.m, path, err, sizeof err), EQM_ERR_FORMAT);
        ck_assert_msg(strstr(err, victim) &&
                          strstr(err, k == 0 ? "NaN" : k == 1 ? "Inf" : "beyond float range"),
                      "case %d: %s", k, err);
        ck_assert(!memcmp(before, a.m.params, a.m.n_floats * sizeof(float)));
        st_file *h = NULL;
        ck_assert_int_eq(st_read(path, &h, err, sizeof err), EQM_OK);
        const st_tensor *t = st_find(h, victim);
        float *dst = malloc(t->numel * sizeof(float));
        ck_assert_int_eq(st_to_f32(t, dst, t->numel, err, sizeof err), EQM_ERR_NUMERIC);
        free(dst);
        st_close(h);
    }
    free(before);
    /* (5) a FIFO or a directory where the file is expected: refused at once, never read */
    unlink(path);
    ck_assert(mkfifo(path, 0600) == 0);
    alarm(20);
    ck_assert_int_eq(st_import_backbone(&a.m, path, err, sizeof err), EQM_ERR_IO);
    ck_assert_msg(strstr(err, path) && strstr(err, "FIFO"), "%s", err);
    alarm(0);
    unlink(path);
    ck_assert(mkdir(path, 0700) == 0);
    ck_assert_int_eq(st_read(path, &g, err, sizeof err), EQM_ERR_IO);
    ck_assert_msg(strstr(err, "directory"), "%s", err);
    rmdir(path);
    st_close(f);
    unlink(good);
    unlink(path);
    net_free(&a);
    net_free(&b);
}
END_TEST

/* ------------------------------------------------------------------ target ------ */

START_TEST(test_target_forward)
{
    static const char *const kv[] = {"depth=18", "stem=imagenet", "width=0.0625",
                                     "zero_init_residual=false", NULL};
    const int rows = 3, HW = 16;
    net n;
    net_build(&n, kv, HW, HW, rows, 9);
    randomise_bn(&n);
    eqm_module_inst *mi = &n.m.mod[0];
    /* Bind a target buffer by hand (the model makes one only for NEEDS_TARGET methods). */
    float *tgt = calloc(n.m.n_floats, sizeof *tgt);
    float **tp = calloc((size_t)mi->n_tensors, sizeof *tp);
    memcpy(tgt, n.m.params, n.m.n_floats * sizeof *tgt);
    for (int i = 0; i < mi->n_tensors; i++)
        tp[i] = tgt + mi->offset[i];
    eqm_module_bind bd = {sizeof bd, mi->param, mi->grad, tp, mi->act};
    ck_assert_int_eq(n.ops->bind(n.self, &bd), 0);
    size_t nx = (size_t)rows * HW * HW * 3, no = (size_t)rows * n.D;
    float *x = malloc(nx * 4), *o1 = malloc(no * 4), *o2 = malloc(no * 4), *dout = malloc(no * 4);
    float *g1 = malloc(n.m.n_floats * 4), *din1 = calloc(nx, 4), *din2 = calloc(nx, 4);
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    for (size_t i = 0; i < no; i++)
        dout[i] = frand();
    /* reference: online forward + backward */
    model_zero_grad(&n.m);
    fwd(&n, x, o1, 1);
    bwd(&n, x, dout, din1, 1);
    memcpy(g1, n.m.grads, n.m.n_floats * 4);
    /* the target forward with equal weights gives the online training output */
    float *rs_before = malloc(n.m.n_floats * 4);
    memcpy(rs_before, n.m.params, n.m.n_floats * 4);
    memcpy(tgt, n.m.params, n.m.n_floats * 4);
    eqm_module_io io;
    memset(&io, 0, sizeof io);
    io.size = sizeof io, io.rows = rows, io.train = 0, io.use_target = 1, io.in = x, io.out = o2;
    ck_assert_int_eq(n.ops->forward(n.self, &io), 0);
    ck_assert_msg(!memcmp(o1, o2, no * 4), "target forward differs from online forward");
    ck_assert(!memcmp(rs_before, n.m.params, n.m.n_floats * 4)); /* no running update */
    /* online forward, a target forward with other weights AND fewer rows in between (as
     * EquiMod: 3N online rows, 2N target rows), backward: identical */
    for (size_t i = 0; i < n.m.n_floats; i++)
        tgt[i] *= 1.1f;
    memcpy(n.m.params, rs_before, n.m.n_floats * 4);
    model_zero_grad(&n.m);
    fwd(&n, x, o1, 1);
    io.rows = rows - 1;
    io.in = x + (size_t)HW * HW * 3;
    ck_assert_int_eq(n.ops->forward(n.self, &io), 0);
    io.rows = rows;
    io.in = x;
    ck_assert_int_eq(n.ops->forward(n.self, &io), 0);
    ck_assert(memcmp(o1, o2, no * 4));
    bwd(&n, x, dout, din2, 1);
    ck_assert(!memcmp(g1, n.m.grads, n.m.n_floats * 4));
    ck_assert(!memcmp(din1, din2, nx * 4));
    /* backward without din is fine; rows mismatch is refused */
    bwd(&n, x, dout, NULL, 1);
    eqm_module_io bad;
    memset(&bad, 0, sizeof bad);
    bad.size = sizeof bad, bad.rows = 2, bad.in = x, bad.dout = dout;
    ck_assert_int_eq(n.ops->backward(n.self, &bad), EQM_ERR_STATE);
    bad.rows = rows + 1, bad.out = o1;
    ck_assert_int_eq(n.ops->forward(n.self, &bad), EQM_ERR_INVAL);
    free(x), free(o1), free(o2), free(dout), free(g1), free(din1), free(din2), free(rs_before);
    free(tgt), free(tp);
    net_free(&n);
}
END_TEST

/* ------------------------------------------------------------------ model ------- */

/* The model with a method that needs a BYOL target (method_byol.so): parallel flat buffers,
 * target bound exactly for the EMA tensors of backbone and method, model_init copies it. */
/* ABI 1.4 api->grads_final: during backward the backbone declares each conv unit's
 * tensors final once, and a declared gradient is not changed afterwards (a snapshot at
 * the call equals the gradient after backward); every trained tensor is declared, the
 * first declaration comes while the stem's gradient is still untouched (the calls run
 * during backward, layer by layer, not at its end). */
typedef struct gf_rec {
    eqm_model *m;
    int calls, *declared;
    float **snap;
    int stem_zero_at_first; /* tensor 0's gradient was all zero at the first call */
} gf_rec;

static int gf_hook(void *ctx, eqm_host *h, int first, int count)
{
    gf_rec *g = ctx;
    const eqm_module_inst *mi = &g->m->mod[0];
    ck_assert_ptr_eq(h, mi->ctx);
    ck_assert_int_ge(first, 0);
    ck_assert_int_le(first + count, mi->n_tensors);
    if (g->calls++ == 0) {
        g->stem_zero_at_first = 1;
        for (size_t k = 0; k < mi->numel[0]; k++)
            g->stem_zero_at_first &= mi->grad[0][k] == 0.f;
    }
    for (int i = first; i < first + count; i++) {
        if (!mi->grad[i])
            continue;
        ck_assert_msg(!g->declared[i], "tensor %d (%s) declared twice", i, mi->info[i].name);
        g->declared[i] = 1;
        g->snap[i] = malloc(mi->numel[i] * sizeof(float));
        memcpy(g->snap[i], mi->grad[i], mi->numel[i] * sizeof(float));
    }
    return EQM_OK;
}

static void grads_final_case(const char *const *kv, int H, int rows)
{
    net n;
    net_build(&n, kv, H, H, rows, 5);
    const eqm_module_inst *mi = &n.m.mod[0];
    gf_rec g = {&n.m, 0, calloc((size_t)mi->n_tensors, sizeof(int)),
                calloc((size_t)mi->n_tensors, sizeof(float *)), 0};
    host_ctx_set_grads_hook(mi->ctx, gf_hook, &g);
    size_t nx = (size_t)rows * H * H * 3;
    float *x = malloc(nx * sizeof(float)), *out = malloc((size_t)rows * n.D * sizeof(float));
    float *dout = malloc((size_t)rows * n.D * sizeof(float));
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    for (size_t i = 0; i < (size_t)rows * n.D; i++)
        dout[i] = frand();
    model_zero_grad(&n.m);
    fwd(&n, x, out, 1);
    ck_assert_int_eq(g.calls, 0); /* forward declares nothing */
    bwd(&n, x, dout, NULL, 1);
    ck_assert_int_gt(g.calls, 1);
    ck_assert_msg(g.stem_zero_at_first, "the first grads_final came after the stem's dW");
    int stem_set = 0;
    for (size_t k = 0; k < mi->numel[0]; k++)
        stem_set |= mi->grad[0][k] != 0.f;
    ck_assert_msg(stem_set, "the stem's dW is zero after backward (the check above is void)");
    for (int i = 0; i < mi->n_tensors; i++) {
        if (!mi->grad[i])
            continue;
        ck_assert_msg(g.declared[i], "tensor %d (%s) never declared final", i, mi->info[i].name);
        ck_assert_msg(!memcmp(g.snap[i], mi->grad[i], mi->numel[i] * sizeof(float)),
                      "tensor %d (%s) changed after it was declared final", i, mi->info[i].name);
        free(g.snap[i]);
    }
    host_ctx_set_grads_hook(mi->ctx, NULL, NULL);
    free(g.declared);
    free(g.snap);
    free(x);
    free(out);
    free(dout);
    net_free(&n);
}

START_TEST(test_grads_final)
{
    const char *r18[] = {"depth=18", "stem=cifar", "width=0.125", NULL};
    grads_final_case(r18, 8, 3);
    const char *r50[] = {"depth=50", "stem=imagenet", "width=0.0625", NULL};
    grads_final_case(r50, 32, 2);
}
END_TEST

/* ABI 1.5 EQM_NN_SET_DIN: on a host whose nn table has batchnorm_backward_ex the backbone's
 * BN backwards overwrite their din through it and the conv backwards that start a gradient
 * buffer (every unit's but the first of a block and the stem) set EQM_NN_SET_DIN, with no
 * memset before; shown with a 1.4-sized copy of the table (what a 1.4 host hands a plugin:
 * size ends before batchnorm_backward_ex, which the plugin then must not call), the plugin
 * zeroes and accumulates as before. Both give the same gradients bit for bit (a -0 against
 * +0 allowed) for every tensor and for dL/dx, which is accumulated (+=) into the caller's
 * din in both. ResNet-18 CIFAR stem (identity and downsample blocks) and ResNet-50
 * ImageNet stem (max pool, bottlenecks, stride-1 downsample). */
static const eqm_nn_api *sd_real;
static int sd_bn_ex, sd_bn_old, sd_conv_set, sd_conv_acc;

static int sd_bnb(eqm_host *h, const eqm_bn_shape *s, float *di, float *dg, float *db,
                  const float *d, const float *i, const float *o, const float *g, const float *sv)
{
    sd_bn_old++;
    return sd_real->batchnorm_backward(h, s, di, dg, db, d, i, o, g, sv);
}

static int sd_bnb_ex(eqm_host *h, const eqm_bn_shape *s, uint32_t fl, float *di, float *dg,
                     float *db, const float *d, const float *i, const float *o, const float *g,
                     const float *bt, const float *sv)
{
    ck_assert_uint_eq(fl, EQM_NN_SET_DIN | EQM_NN_RELU_FROM_IN);
    sd_bn_ex++;
    /* RELU_FROM_IN: the host must not need the forward output (NULL would be refused) */
    return sd_real->batchnorm_backward_ex(h, s, fl, di, dg, db, d, i, s->relu ? NULL : o, g,
                                          bt, sv);
}

static int sd_bnb_ex_absent(eqm_host *h, const eqm_bn_shape *s, uint32_t fl, float *di,
                            float *dg, float *db, const float *d, const float *i, const float *o,
                            const float *g, const float *bt, const float *sv)
{
    ck_abort_msg("the plugin called batchnorm_backward_ex past a 1.4 table's size");
    return EQM_ERR_STATE;
}

/* The 1.5 forward: BN with the conv's epilogue statistics sums them in another order (not
 * the same bits: tests/nn/check_bf16.c test_conv_stats bounds it), so here BN sums its own
 * (stats dropped) and the comparison stays bitwise; the residual form must be used. */
static int sd_res;
static int sd_bnf_ex(eqm_host *h, const eqm_bn_shape *s, uint32_t fl, float *o, const float *i,
                     const float *res, const float *g, const float *bt, float *rm, float *rv,
                     float *sv, const double *st)
{
    (void)st;
    sd_res += (fl & EQM_NN_ADD_RESIDUAL) != 0;
    return sd_real->batchnorm_forward_ex(h, s, fl, o, i, res, g, bt, rm, rv, sv, NULL);
}

static int sd_convb(eqm_host *h, const eqm_conv2d_shape *s, float *di, float *dw,
                    const float *d, const float *i, const float *w)
{
    if (s->flags & EQM_NN_SET_DIN)
        sd_conv_set++;
    else
        sd_conv_acc++;
    return sd_real->conv2d_backward(h, s, di, dw, d, i, w);
}

static int sd_same_bits(float a, float b)
{
    return !memcmp(&a, &b, sizeof a) || (a == 0.f && b == 0.f);
}

/* forward + backward with `table` as api->nn; returns the gradients (concatenated) and din */
static float *sd_run(net *n, const eqm_nn_api *table, const float *x, const float *dout,
                     float *din, size_t nx, size_t *ng)
{
    eqm_host_api *api = (eqm_host_api *)host_api(); /* tests only: the table is process-owned */
    const eqm_nn_api *keep = api->nn;
    const eqm_module_inst *mi = &n->m.mod[0];
    float *out = malloc((size_t)n->rows * n->D * sizeof(float));
    for (size_t k = 0; k < nx; k++)
        din[k] = 0.25f; /* the host's din is accumulated into */
    api->nn = table;
    model_zero_grad(&n->m);
    fwd(n, x, out, 1);
    bwd(n, x, dout, din, 1);
    api->nn = keep;
    *ng = 0;
    for (int i = 0; i < mi->n_tensors; i++)
        *ng += mi->grad[i] ? mi->numel[i] : 0;
    float *g = malloc(*ng * sizeof(float)), *p = g;
    for (int i = 0; i < mi->n_tensors; i++)
        if (mi->grad[i]) {
            memcpy(p, mi->grad[i], mi->numel[i] * sizeof(float));
            p += mi->numel[i];
        }
    free(out);
    return g;
}

static void set_din_case(const char *const *kv, int H, int rows)
{
    net n, n_old; /* n_old is created under the 1.4-sized table, as a 1.4 host would */
    net_build(&n, kv, H, H, rows, 11);
    sd_real = host_api()->nn;
    ck_assert_msg(EQM_API_HAS(sd_real, batchnorm_backward_ex), "the host lacks the 1.5 op");
    eqm_nn_api now = *sd_real, old = *sd_real;
    now.batchnorm_backward = sd_bnb, now.batchnorm_backward_ex = sd_bnb_ex;
    now.conv2d_backward = sd_convb;
    now.batchnorm_forward_ex = sd_bnf_ex;
    old.size = (uint32_t)offsetof(eqm_nn_api, batchnorm_backward_ex);
    old.batchnorm_backward = sd_bnb, old.batchnorm_backward_ex = sd_bnb_ex_absent;
    old.conv2d_backward = sd_convb;
    {
        eqm_host_api *api = (eqm_host_api *)host_api(); /* tests only */
        api->nn = &old;
        net_build(&n_old, kv, H, H, rows, 11);
        api->nn = sd_real;
    }
    size_t nx = (size_t)rows * H * H * 3, ng1, ng2;
    float *x = malloc(nx * sizeof(float)), *dout = malloc((size_t)rows * n.D * sizeof(float));
    float *din1 = malloc(nx * sizeof(float)), *din2 = malloc(nx * sizeof(float));
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    for (size_t i = 0; i < (size_t)rows * n.D; i++)
        dout[i] = frand();
    sd_res = 0;
    float *g1 = sd_run(&n, &now, x, dout, din1, nx, &ng1);
    ck_assert_int_gt(sd_res, 0);
    int units = sd_bn_ex + sd_bn_old;
    ck_assert_int_eq(sd_bn_old, 0);
    ck_assert_int_gt(sd_bn_ex, 0);
    ck_assert_int_gt(sd_conv_set, 0);
    ck_assert_int_eq(sd_conv_set + sd_conv_acc, units);
    int conv_set = sd_conv_set;
    sd_bn_ex = sd_bn_old = sd_conv_set = sd_conv_acc = 0;
    float *g2 = sd_run(&n_old, &old, x, dout, din2, nx, &ng2);
    ck_assert_int_eq(sd_bn_ex, 0);
    ck_assert_int_eq(sd_bn_old, units);
    ck_assert_int_eq(sd_conv_set, 0);
    fprintf(stderr, "set_din %s %s: %d units, %d conv dX overwritten, %zu gradient floats\n",
            kv[0], kv[1], units, conv_set, ng1);
    ck_assert_uint_eq(ng1, ng2);
    size_t nonzero = 0;
    for (size_t i = 0; i < ng1; i++) {
        ck_assert_msg(sd_same_bits(g1[i], g2[i]), "gradient float %zu: %.9g with SET_DIN, %.9g "
                      "with zero + accumulate", i, (double)g1[i], (double)g2[i]);
        nonzero += g1[i] != 0.f;
    }
    ck_assert_uint_gt(nonzero, ng1 / 2);
    for (size_t i = 0; i < nx; i++)
        ck_assert_msg(sd_same_bits(din1[i], din2[i]) && din1[i] != 0.25f,
                      "dL/dx[%zu]: %.9g with SET_DIN, %.9g with zero + accumulate", i,
                      (double)din1[i], (double)din2[i]);
    free(g1), free(g2), free(x), free(dout), free(din1), free(din2);
    sd_bn_ex = sd_bn_old = sd_conv_set = sd_conv_acc = 0;
    net_free(&n);
    net_free(&n_old);
}

START_TEST(test_set_din)
{
    /* zero_init_residual = false: else every residual branch's gradient is 0 (gamma 0) */
    const char *r18[] = {"depth=18", "stem=cifar", "width=0.125", "zero_init_residual=false",
                         NULL};
    set_din_case(r18, 16, 3); /* the last stage 2x2: every 3x3 tap reads data */
    const char *r50[] = {"depth=50", "stem=imagenet", "width=0.0625", "zero_init_residual=false",
                         NULL};
    set_din_case(r50, 64, 2);
}
END_TEST

START_TEST(test_model_target)
{
    char err[1024], path[4096];
    const char *pp = getenv("EQUIMOD_PLUGIN_PATH");
    load_plugin();
    if (!registry_find(reg, EQM_KIND_METHOD, "byol")) {
        ck_assert_msg(pp != NULL, "EQUIMOD_PLUGIN_PATH unset: cannot find method_byol.so");
        snprintf(path, sizeof path, "%s/method_byol.so", pp);
        ck_assert_int_ge(registry_load_file(reg, path), 1);
    }
    const eqm_plugin *byol = registry_find(reg, EQM_KIND_METHOD, "byol");
    ck_assert_ptr_nonnull(byol);
    void *bo = calloc(1, byol->desc.params_size);
    for (const eqm_param_spec *sp = byol->desc.params; sp && sp->key; sp++) {
        const char *v = sp->def ? sp->def : "";
        if (!strcmp(sp->key, "proj_hidden") || !strcmp(sp->key, "pred_hidden"))
            v = "16";
        else if (!strcmp(sp->key, "proj_dim"))
            v = "8";
        ck_assert_msg(param_parse(sp, v, (char *)bo + sp->offset, err, sizeof err) == 0, "%s",
                      err);
    }
    static const char *const kv[] = {"depth=18", "width=0.0625", NULL};
    void *ro = make_opts(kv);
    eqm_model m;
    model_reset(&m);
    const int rows = 4;
    /* method first: slots follow the kind, not the call order */
    eqm_module_cfg mc = {sizeof mc, 0, 0, 0, 32, 0, rows, 0};
    ck_assert_msg(model_add_module(&m, byol, bo, &mc, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(model_finalize(&m, err, sizeof err), EQM_ERR_INVAL); /* no backbone */
    eqm_module_cfg bc = {sizeof bc, 16, 16, 3, 0, 0, rows, 0};
    ck_assert_msg(model_add_module(&m, resnet_plugin, ro, &bc, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(model_add_module(&m, resnet_plugin, ro, &bc, err, sizeof err),
                     EQM_ERR_INVAL); /* a second backbone */
    ck_assert_msg(model_finalize(&m, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(m.mod[EQM_SLOT_BACKBONE].out_dim, 32);
    ck_assert_int_eq(m.has_target, 1);
    ck_assert_ptr_nonnull(m.target);
    ck_assert_int_eq(model_add_module(&m, byol, bo, &mc, err, sizeof err), EQM_ERR_STATE);
    ck_assert_msg(model_init(&m, 3, err, sizeof err) == 0, "%s", err);
    int n = model_n_tensors(&m), n_bound = 0, n_ema = 0;
    ck_assert_int_eq(n, m.mod[0].n_tensors + m.mod[1].n_tensors);
    size_t end = 0;
    for (int k = 0; k < n; k++) {
        eqm_model_tensor t;
        ck_assert_int_eq(model_tensor(&m, k, &t), 0);
        ck_assert_uint_eq(t.offset % EQM_MODEL_ALIGN_FLOATS, 0);
        ck_assert_uint_ge(t.offset, end); /* no overlap, slot order */
        end = t.offset + t.numel;
        ck_assert_ptr_eq(t.param, m.params + t.offset);
        if (t.info->flags & EQM_T_BUFFER)
            ck_assert_ptr_null(t.grad);
        else
            ck_assert_ptr_eq(t.grad, m.grads + t.offset);
        if (t.info->flags & EQM_T_EMA) {
            n_ema++;
            ck_assert_ptr_eq(t.target, m.target + t.offset);
            ck_assert(!memcmp(t.target, t.param, t.numel * sizeof(float)));
            n_bound++;
        } else {
            ck_assert_ptr_null(t.target);
        }
    }
    ck_assert_uint_le(end, m.n_floats);
    ck_assert_int_gt(n_ema, m.mod[0].n_tensors); /* the method has EMA tensors too */
    ck_assert_int_eq(model_tensor(&m, n, &(eqm_model_tensor){0}), EQM_ERR_INVAL);
    ck_assert_int_eq(model_find(&m, EQM_SLOT_BACKBONE, "bn1.bias"), 2);
    ck_assert_int_eq(model_find(&m, EQM_SLOT_EQUIMOD, "bn1.bias"), -1);
    /* the backbone runs its target forward on the model-bound target */
    size_t nx = (size_t)rows * 16 * 16 * 3;
    float *x = malloc(nx * 4), *h = malloc((size_t)rows * 32 * 4), *ht = malloc((size_t)rows * 32 * 4);
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    eqm_module_io io = {0};
    io.size = sizeof io, io.rows = rows, io.train = 1, io.in = x, io.out = h;
    ck_assert_int_eq(m.mod[0].ops->forward(m.mod[0].self, &io), 0);
    io.use_target = 1, io.out = ht;
    ck_assert_int_eq(m.mod[0].ops->forward(m.mod[0].self, &io), 0);
    ck_assert(!memcmp(h, ht, (size_t)rows * 32 * 4));
    for (size_t i = 0; i < m.n_floats; i++)
        m.grads[i] = 1.f;
    model_zero_grad(&m);
    for (size_t i = 0; i < m.n_floats; i++)
        ck_assert_float_eq(m.grads[i], 0.f);
    free(x), free(h), free(ht);
    model_destroy(&m);
    ck_assert_ptr_null(m.params);
    model_destroy(&m); /* idempotent on a zeroed model */
    free(bo);
    free(ro);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("backbone");
    TCase *tc = tcase_create("resnet");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_structure);
    tcase_add_test(tc, test_init);
    tcase_add_test(tc, test_grad_fd_r18_cifar);
    tcase_add_test(tc, test_grad_fd_r18_imagenet);
    tcase_add_test(tc, test_grad_fd_r50);
    tcase_add_test(tc, test_grad_fd_r50_train);
    tcase_add_test(tc, test_torch_r18);
    tcase_add_test(tc, test_torch_r50);
    tcase_add_test(tc, test_bf16_option);
    tcase_add_test(tc, test_bf16_grads);
    tcase_add_test(tc, test_act16);
    tcase_add_test(tc, test_export_roundtrip);
    tcase_add_test(tc, test_cli_export);
    tcase_add_test(tc, test_import_errors);
    tcase_add_test(tc, test_target_forward);
    tcase_add_test(tc, test_model_target);
    tcase_add_test(tc, test_grads_final);
    tcase_add_test(tc, test_set_din);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
