/* bench/train_step.c: time one ResNet-18-CIFAR training step (forward, backward, SGD) at
 * batch 256 on 32x32 input with equimod, then the same step in PyTorch in the same
 * invocation (bench/train_step_torch.py, tuned: channels_last, tcmalloc preloaded if
 * present, the same thread count), and print images/s, the ratio, achieved GFLOP/s
 * (3 x forward, 1.111 GFLOP/img forward, every tap counted) and peak RSS of each.
 * Precisions: by default the equimod step runs twice, fp32 and bf16 (the host precision of
 * train.precision = bf16: EQM_NN_BF16 convs and linears, fp32 accumulation), each in its own
 * child process (this program re-run with --precision P --no-torch, so each peak RSS is its
 * own), and the PyTorch step twice, fp32 and under torch.autocast("cpu", bfloat16). Lines
 * "equimod fp32 / torch fp32", "equimod bf16 / torch fp32", "equimod bf16 / torch bf16";
 * last line: exactly "ratio=R" (equimod's best precision over PyTorch fp32).
 * --precision fp32|bf16 runs one equimod precision in this process (and PyTorch fp32 only,
 * unless --no-torch): the older single-precision output, its ratio equimod / PyTorch.
 *
 * The equimod side loads the real resnet backbone plugin (depth=18, stem=cifar) through
 * the host registry and config binding, like `equimod train`, then adds the same fc
 * (512 -> 10, nn linear), softmax cross-entropy and SGD (momentum 0.9, wd 5e-4) as the
 * PyTorch script. Median over --steps timed steps after --warmup untimed ones.
 * `train-step equimod ...` is the whole SimCLR+EquiMod step instead (train_step_equimod.c).
 * Usage: train-step [--batch 256] [--steps 3] [--warmup 1] [--threads 2]
 *                   [--plugin-path DIR]... [--no-torch] [--profile] [--precision fp32|bf16]
 * --profile prints the time spent per nn op kind (wrapping the api->nn table).
 * --clock cpu: rank by process CPU seconds per step instead of wall seconds (both are
 *   printed): on a shared, loaded machine with --threads 1 the CPU time is what the step
 *   costs; with more threads it includes BLAS threads spinning, so prefer wall there.
 * Left out: data loading and augmentation (random tensors), LARS (the method's optimiser).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "nn/nn_internal.h"

#define FWD_GFLOP 1.111

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- optional per-op profile: a copy of the nn table whose entries time the real ones */
static eqm_nn_api real_nn, prof_nn;
enum { P_CONVF, P_CONVB, P_BNF, P_BNB, P_OTHER, P_N };
static double prof_t[P_N];
static const char *prof_name[P_N] = {"conv fwd", "conv bwd", "bn fwd", "bn bwd", "other"};
static int prof_cpu; /* --clock cpu: the profile counts CPU seconds too */
static double prof_now(void);
#define PROF(slot, call)                                                                       \
    do {                                                                                       \
        double t0_ = prof_now();                                                               \
        int rc_ = call;                                                                        \
        prof_t[slot] += prof_now() - t0_;                                                      \
        return rc_;                                                                            \
    } while (0)
static int p_convf(eqm_host *h, const eqm_conv2d_shape *s, float *o, const float *i,
                   const float *w)
{
    PROF(P_CONVF, real_nn.conv2d_forward(h, s, o, i, w));
}
static int p_convb(eqm_host *h, const eqm_conv2d_shape *s, float *di, float *dw,
                   const float *d, const float *i, const float *w)
{
    PROF(P_CONVB, real_nn.conv2d_backward(h, s, di, dw, d, i, w));
}
static int p_bnf(eqm_host *h, const eqm_bn_shape *s, float *o, const float *i, const float *g,
                 const float *b, float *rm, float *rv, float *sv)
{
    PROF(P_BNF, real_nn.batchnorm_forward(h, s, o, i, g, b, rm, rv, sv));
}
static int p_bnb(eqm_host *h, const eqm_bn_shape *s, float *di, float *dg, float *db,
                 const float *d, const float *i, const float *o, const float *g, const float *sv)
{
    PROF(P_BNB, real_nn.batchnorm_backward(h, s, di, dg, db, d, i, o, g, sv));
}

static int p_bnb_ex(eqm_host *h, const eqm_bn_shape *s, uint32_t fl, float *di, float *dg,
                    float *db, const float *d, const float *i, const float *o, const float *g,
                    const float *bt, const float *sv)
{
    PROF(P_BNB, real_nn.batchnorm_backward_ex(h, s, fl, di, dg, db, d, i, o, g, bt, sv));
}

static double prof_now(void) { return prof_cpu ? cpu_s() : now_s(); }

static int run_torch(int batch, int steps, int warmup, int threads, int use_cpu, int bf16,
                     double *img_s, double *rss_mib)
{
    const char *src = getenv("EQM_SRCDIR") ? getenv("EQM_SRCDIR") : EQM_SRCDIR;
    const char *tc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
    char cmd[8192];
    int have_tc = access(tc, R_OK) == 0;
    snprintf(cmd, sizeof cmd,
             "%s%s%s /usr/bin/python3 %s/bench/train_step_torch.py %d %d %d %d %s %s",
             have_tc ? "LD_PRELOAD=" : "", have_tc ? tc : "", have_tc ? " " : "", src, batch,
             steps, warmup, threads, use_cpu ? "cpu" : "wall", bf16 ? "bf16" : "fp32");
    printf("# torch: %s\n", cmd);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    int ok = 0;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "torch img_s=%lf step_s=%*f rss_mib=%lf", img_s, rss_mib) == 2)
            ok = 1;
        fputs("# ", stdout);
        fputs(line, stdout);
    }
    int st = pclose(p);
    return ok && st == 0 ? 0 : -1;
}

/* The equimod step in a child: this program with --precision P --no-torch. */
static int run_child(int argc, char **argv, const char *prec, double *img_s, double *rss_mib)
{
    char cmd[8192];
    size_t o = (size_t)snprintf(cmd, sizeof cmd, "'/proc/%d/exe'", (int)getpid());
    for (int i = 1; i < argc && o < sizeof cmd; i++)
        o += (size_t)snprintf(cmd + o, sizeof cmd - o, " '%s'", argv[i]);
    if (o < sizeof cmd)
        snprintf(cmd + o, sizeof cmd - o, " --precision %s --no-torch", prec);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    int ok = 0;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "equimod img/s=%lf step_s=%*f cpu_s=%*f clock=%*s GFLOP/s=%*f "
                         "rss_mib=%lf",
                   img_s, rss_mib) == 2)
            ok = 1;
        fputs("# ", stdout);
        fputs(line, stdout);
    }
    int st = pclose(p);
    return ok && st == 0 ? 0 : -1;
}

int train_step_equimod_main(int argc, char **argv); /* train_step_equimod.c */

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "equimod")) /* the whole SimCLR+EquiMod step */
        return train_step_equimod_main(argc - 1, argv + 1);
    int batch = 256, steps = 3, warmup = 1, threads = 2, torch = 1, profile = 0, use_cpu = 0;
    const char *prec = NULL;
    const char *dirs[16];
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--plugin-path") && i + 1 < argc && n_dirs < 16)
            dirs[n_dirs++] = argv[++i];
        else if (!strcmp(argv[i], "--no-torch"))
            torch = 0;
        else if (!strcmp(argv[i], "--profile"))
            profile = 1;
        else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
            prof_cpu = use_cpu = !strcmp(argv[++i], "cpu");
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "fp32") || !strcmp(argv[i + 1], "bf16")))
            prec = argv[++i];
        else {
            fprintf(stderr, "train-step: unknown argument %s\n"
                            "usage: train-step [--batch N] [--steps N] [--warmup N] "
                            "[--threads N] [--plugin-path DIR]... [--no-torch] [--profile] "
                            "[--clock wall|cpu] [--precision fp32|bf16]\n",
                    argv[i]);
            return 2;
        }
    }
    if (batch < 2 || steps < 1 || warmup < 0 || threads < 1) {
        fprintf(stderr, "train-step: need batch >= 2, steps >= 1, warmup >= 0, threads >= 1\n");
        return 2;
    }
    if (!prec) { /* both precisions, each in a child; then PyTorch fp32 and bf16 autocast */
        double img[2], rss[2], timg[2] = {0, 0}, trss[2] = {0, 0};
        static const char *const pn[2] = {"fp32", "bf16"};
        for (int v = 0; v < 2; v++)
            if (run_child(argc, argv, pn[v], &img[v], &rss[v])) {
                fprintf(stderr, "train-step: the equimod %s run failed\n", pn[v]);
                return 1;
            }
        for (int v = 0; torch && v < 2; v++)
            if (run_torch(batch, steps, warmup, threads, use_cpu, v, &timg[v], &trss[v])) {
                fprintf(stderr, "train-step: the PyTorch %s run failed\n", pn[v]);
                return 1;
            }
        for (int v = 0; v < 2; v++)
            printf("equimod %s img/s=%.2f step_s=%.4f clock=%s GFLOP/s=%.1f rss_mib=%.1f\n",
                   pn[v], img[v], batch / img[v], use_cpu ? "cpu" : "wall",
                   img[v] * 3 * FWD_GFLOP, rss[v]);
        if (!torch)
            return 0;
        for (int v = 0; v < 2; v++)
            printf("torch   %s img/s=%.2f step_s=%.4f clock=%s GFLOP/s=%.1f rss_mib=%.1f%s\n",
                   pn[v], timg[v], batch / timg[v], use_cpu ? "cpu" : "wall",
                   timg[v] * 3 * FWD_GFLOP, trss[v], v ? " (autocast)" : "");
        printf("equimod fp32 / torch fp32 = %.3f (peak RSS %.2f)\n", img[0] / timg[0],
               rss[0] / trss[0]);
        printf("equimod bf16 / torch fp32 = %.3f (peak RSS %.2f)\n", img[1] / timg[0],
               rss[1] / trss[0]);
        printf("equimod bf16 / torch bf16 = %.3f (peak RSS %.2f)\n", img[1] / timg[1],
               rss[1] / trss[1]);
        printf("ratio=%.3f\n", (img[0] > img[1] ? img[0] : img[1]) / timg[0]);
        return 0;
    }
    int bf16 = !strcmp(prec, "bf16");
    host_threads_init(threads);
    /* a call into host/nn/nn_api.c pulls its strong nn_api_table() out of the static
     * libeqmhost archive (api.c only has a weak NULL default) */
    if (nn_threads() < 1)
        return 1;
    const eqm_host_api *api = host_api();
    if (!api->nn) {
        fprintf(stderr, "train-step: the host has no nn table\n");
        return 1;
    }
    if (profile) {
        real_nn = *api->nn;
        prof_nn = real_nn;
        prof_nn.conv2d_forward = p_convf;
        prof_nn.conv2d_backward = p_convb;
        prof_nn.batchnorm_forward = p_bnf;
        prof_nn.batchnorm_backward = p_bnb;
        prof_nn.batchnorm_backward_ex = p_bnb_ex; /* ABI 1.5: the resnet's BN backward */
        ((eqm_host_api *)api)->nn = &prof_nn; /* bench only: the table is process-owned */
    }
    const eqm_nn_api *nn = api->nn;

    /* ---- the backbone plugin through the registry and the config binder */
    eqm_registry *reg = registry_create();
    registry_scan(reg, dirs, n_dirs);
    eqm_config *cfg = config_new_empty();
    char err[1024];
    const char *sets[] = {"backbone.plugin=resnet", "backbone.depth=18", "backbone.stem=cifar"};
    nn_precision_set(bf16 ? EQM_NN_BF16 : 0);
    for (int i = 0; i < 3; i++)
        if (config_set(cfg, sets[i], err, sizeof err)) {
            fprintf(stderr, "train-step: %s\n", err);
            return 1;
        }
    const eqm_plugin *pl = NULL;
    void *opts = NULL;
    if (config_bind_plugin(cfg, reg, "backbone", EQM_KIND_BACKBONE, &pl, &opts, err,
                           sizeof err)) {
        fprintf(stderr, "train-step: %s\n(build it and pass --plugin-path DIR of "
                        "backbone_resnet.so, or set EQUIMOD_PLUGIN_PATH)\n", err);
        return 1;
    }
    printf("# backbone: plugin %s from %s (depth=18, stem=cifar, %s%s)\n", pl->desc.name,
           pl->path, prec,
           !bf16 ? ""
                 : (const char *[]){": EMULATED (no AVX512_BF16/AMX)", ": AVX512_BF16 kernel",
                                    ": AMX kernel"}[nn_bf16_native()]);
    const eqm_module_ops *ops = &pl->ops.module;
    eqm_host *hctx = host_ctx_create("backbone/resnet");
    eqm_module_cfg mc = {sizeof mc, 32, 32, 3, 0, 0, batch, 0};
    void *self = NULL;
    if (ops->create(api, hctx, opts, &mc, &self)) {
        fprintf(stderr, "train-step: create: %s\n", host_ctx_error(hctx));
        return 1;
    }
    int nt = ops->n_tensors(self);
    float **params = calloc((size_t)nt, sizeof *params), **grads = calloc((size_t)nt, sizeof *grads);
    float **mom = calloc((size_t)nt, sizeof *mom);
    size_t *sizes = calloc((size_t)nt, sizeof *sizes), n_params = 0;
    uint32_t *flags = calloc((size_t)nt, sizeof *flags);
    for (int i = 0; i < nt; i++) {
        eqm_tensor_info ti;
        ops->tensor_info(self, i, &ti);
        size_t n = 1;
        for (int d = 0; d < ti.ndim; d++)
            n *= (size_t)ti.shape[d];
        sizes[i] = n;
        flags[i] = ti.flags;
        params[i] = api->alloc(NULL, n * sizeof(float), 64);
        if (!(ti.flags & EQM_T_BUFFER)) {
            grads[i] = api->alloc(NULL, n * sizeof(float), 64);
            mom[i] = api->alloc(NULL, n * sizeof(float), 64);
            n_params += n;
        }
    }
    int D = ops->out_dim(self);
    size_t act_n = ops->act_floats(self, batch);
    float *act = api->alloc(NULL, act_n * sizeof(float), 64);
    eqm_module_bind mb = {sizeof mb, params, grads, NULL, act};
    eqm_rng rng;
    api->rng_seed(&rng, 42, 0, 0, 0);
    if (ops->bind(self, &mb) || ops->init(self, &rng)) {
        fprintf(stderr, "train-step: bind/init: %s\n", host_ctx_error(hctx));
        return 1;
    }
    /* fc head, inputs, labels */
    const int K = 10;
    float *fw = api->alloc(NULL, sizeof(float) * (size_t)K * D, 64);
    float *fb = api->alloc(NULL, sizeof(float) * K, 64);
    float *dfw = api->alloc(NULL, sizeof(float) * (size_t)K * D, 64);
    float *dfb = api->alloc(NULL, sizeof(float) * K, 64);
    float *mfw = api->alloc(NULL, sizeof(float) * (size_t)K * D, 64);
    float *mfb = api->alloc(NULL, sizeof(float) * K, 64);
    for (int i = 0; i < K * D; i++)
        fw[i] = (float)(api->rng_uniform(&rng) * 2 - 1) / 22.6f;
    size_t nx = (size_t)batch * 32 * 32 * 3;
    float *x = api->alloc(NULL, nx * sizeof(float), 64);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)api->rng_normal(&rng);
    int32_t *lab = api->alloc(NULL, sizeof(int32_t) * batch, 64);
    for (int i = 0; i < batch; i++)
        lab[i] = (int32_t)api->rng_below(&rng, K);
    float *h = api->alloc(NULL, sizeof(float) * (size_t)batch * D, 64);
    float *dh = api->alloc(NULL, sizeof(float) * (size_t)batch * D, 64);
    float *logits = api->alloc(NULL, sizeof(float) * (size_t)batch * K, 64);
    float *probs = api->alloc(NULL, sizeof(float) * (size_t)batch * K, 64);
    float *dlog = api->alloc(NULL, sizeof(float) * (size_t)batch * K, 64);
    printf("# equimod: batch %d, threads %d, %zu trainable params, act arena %.1f MiB\n", batch,
           threads, n_params, act_n * 4.0 / 1048576.0);

    const float lr = 0.01f, momentum = 0.9f, wd = 5e-4f;
    eqm_linear_shape ls = {batch, D, K};
    double *times = calloc((size_t)steps, sizeof(double));
    double *ctimes = calloc((size_t)steps, sizeof(double));
    float loss = 0;
    for (int it = 0; it < warmup + steps; it++) {
        if (it == warmup)
            memset(prof_t, 0, sizeof prof_t);
        double t0 = now_s(), c0 = cpu_s();
        for (int i = 0; i < nt; i++)
            if (grads[i])
                memset(grads[i], 0, sizes[i] * sizeof(float));
        memset(dfw, 0, sizeof(float) * (size_t)K * D);
        memset(dfb, 0, sizeof(float) * K);
        memset(dh, 0, sizeof(float) * (size_t)batch * D);
        memset(dlog, 0, sizeof(float) * (size_t)batch * K);
        eqm_module_io io = {.size = sizeof io, .rows = batch, .train = 1, .in = x, .out = h};
        int rc = ops->forward(self, &io);
        rc = rc ? rc : nn->linear_forward(NULL, &ls, logits, h, fw, fb);
        rc = rc ? rc : nn->softmax_xent_forward(NULL, batch, K, &loss, logits, lab, probs);
        rc = rc ? rc : nn->softmax_xent_backward(NULL, batch, K, dlog, 1.f, probs, lab);
        rc = rc ? rc : nn->linear_backward(NULL, &ls, dh, dfw, dfb, dlog, h, fw);
        io.dout = dh;
        io.din = NULL;
        rc = rc ? rc : ops->backward(self, &io);
        if (rc) {
            fprintf(stderr, "train-step: step failed (%d): %s\n", rc, host_ctx_error(hctx));
            return 1;
        }
        /* SGD with momentum and weight decay, as torch.optim.SGD */
        for (int i = 0; i <= nt; i++) {
            float *w = i < nt ? params[i] : fw, *g = i < nt ? grads[i] : dfw;
            float *m = i < nt ? mom[i] : mfw;
            size_t n = i < nt ? sizes[i] : (size_t)K * D;
            if (!g)
                continue;
            for (size_t j = 0; j < n; j++) {
                float d = g[j] + wd * w[j];
                m[j] = it ? momentum * m[j] + d : d;
                w[j] -= lr * m[j];
            }
        }
        for (int j = 0; j < K; j++) {
            float d = dfb[j] + wd * fb[j];
            mfb[j] = it ? momentum * mfb[j] + d : d;
            fb[j] -= lr * mfb[j];
        }
        double t1 = now_s(), c1 = cpu_s();
        if (it >= warmup) {
            times[it - warmup] = t1 - t0;
            ctimes[it - warmup] = c1 - c0;
        }
        printf("# equimod step %d: %.3f s wall, %.3f s cpu, loss %.4f\n", it, t1 - t0, c1 - c0,
               (double)loss);
        fflush(stdout);
    }
    qsort(times, (size_t)steps, sizeof(double), cmp_d);
    qsort(ctimes, (size_t)steps, sizeof(double), cmp_d);
    double med = times[steps / 2], cmed = ctimes[steps / 2];
    double eq_img = batch / (use_cpu ? cmed : med);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double eq_rss = ru.ru_maxrss / 1024.0;
    if (profile) {
        double tot = 0;
        for (int i = 0; i < P_N - 1; i++) {
            printf("# profile %-9s %.3f s/step\n", prof_name[i], prof_t[i] / steps);
            tot += prof_t[i];
        }
        double mean = 0; /* the profile sums every timed step: compare with the mean */
        for (int i = 0; i < steps; i++)
            mean += (use_cpu ? ctimes[i] : times[i]) / steps;
        printf("# profile rest      %.3f s/step (mean step %.3f s)\n", mean - tot / steps, mean);
    }
    printf("equimod img/s=%.2f step_s=%.4f cpu_s=%.4f clock=%s GFLOP/s=%.1f rss_mib=%.1f\n",
           eq_img, med, cmed, use_cpu ? "cpu" : "wall", eq_img * 3 * FWD_GFLOP, eq_rss);
    double th_img = 0, th_rss = 0;
    if (torch) {
        if (run_torch(batch, steps, warmup, threads, use_cpu, 0, &th_img, &th_rss)) {
            fprintf(stderr, "train-step: the PyTorch run failed\n");
            return 1;
        }
        printf("torch   img/s=%.2f step_s=%.4f clock=%s GFLOP/s=%.1f rss_mib=%.1f\n", th_img,
               batch / th_img, use_cpu ? "cpu" : "wall", th_img * 3 * FWD_GFLOP, th_rss);
        printf("ratio=%.3f\n", eq_img / th_img);
    }
    ops->destroy(self);
    return 0;
}
