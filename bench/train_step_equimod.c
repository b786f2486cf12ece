/* bench/train_step_equimod.c: `train-step equimod`: the whole SimCLR+EquiMod training step
 * (issue 14) with equimod against the same step in PyTorch (bench/train_step_equimod_torch.py,
 * written from METHOD.md §5-9), in fp32 and bf16 on both sides.
 *
 * The step (step.c's sequence, without the loader): zero the gradients; ONE backbone
 * forward over 3N rows [x0; x1; x2]; SimCLR's g on rows N..3N and NT-Xent (tau 0.5) and its
 * backward; EquiMod (g' on 3N rows, ParamProj of the standardised t of both views, u_psi,
 * NT-Xent tau 0.2 over 4N rows) and its backward; the backbone backward; LARS (METHOD.md
 * §9: eta 1e-3, momentum 0.9, wd 1e-6 on conv/linear weights) at a fixed lr. Random
 * inputs and t. The equimod side loads the real plugins (backbone/resnet, method/simclr,
 * equimod/equimod) through the registry and config binder and the host's model and
 * optimizer (host/train), as `equimod train` does; bf16 = the host precision of
 * train.precision = bf16 set around the step.
 *
 * Settings (--setting, default quickstart):
 *   quickstart  ResNet-18-CIFAR width 0.25 (D 128), g 512-128, g' 512-128, t_layers 64,
 *               batch 128 (configs/quickstart.ini), 32 px
 *   paper       ResNet-18-CIFAR (D 512), g 2048-2048-128, g' 2048-2048-128, t_layers 128,
 *               batch 256, 32 px (METHOD.md §5, §13)
 *   r50         ResNet-50 ImageNet stem (D 2048), heads as paper, batch 32, 224 px
 * By default each equimod precision runs in its own child process (this program re-run
 * with --precision P --no-torch: its own peak RSS), then PyTorch fp32 and bf16 autocast.
 * Lines: "equimod fp32 / torch fp32", "equimod bf16 / torch fp32", "equimod bf16 / torch
 * bf16" (each with the peak RSS ratio), and last "ratio=R": equimod's best precision over
 * PyTorch fp32. Median over --iters timed steps after --warmup untimed ones; --clock cpu
 * ranks by process CPU seconds (for a loaded machine at 1 thread).
 * Usage: train-step equimod [--setting quickstart|paper|r50] [--iters 3] [--warmup 1]
 *          [--threads 2] [--batch N] [--plugin-path DIR]... [--no-torch]
 *          [--precision fp32|bf16] [--clock wall|cpu]
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
#include "train/optim.h"
#include "train/run.h"

int train_step_equimod_main(int argc, char **argv);

static double eq_now(int cpu)
{
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *name;
    int depth, imagenet, px, batch, t_layers;
    double width;
    const char *g_hidden, *g_out, *head; /* SimCLR hidden / out_dim, EquiMod head */
} setting;

static const setting settings[] = {
    {"quickstart", 18, 0, 32, 128, 64, 0.25, "512", "128", "512-128"},
    {"paper", 18, 0, 32, 256, 128, 1.0, "2048-2048", "128", "2048-2048-128"},
    {"r50", 50, 1, 224, 32, 128, 1.0, "2048-2048", "128", "2048-2048-128"},
};
#define P_DIM 15 /* t fields of the CIFAR SimCLR pipeline (equimod config: crop 4, flip,
                    jitter 1+4, jitter factors 4, gray) */

static int run_torch_eq(const setting *s, int batch, int iters, int warmup, int threads,
                        int use_cpu, int bf16, double *img_s, double *rss_mib)
{
    const char *src = getenv("EQM_SRCDIR") ? getenv("EQM_SRCDIR") : EQM_SRCDIR;
    const char *tc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
    char cmd[8192];
    int have_tc = access(tc, R_OK) == 0;
    snprintf(cmd, sizeof cmd,
             "%s%s%s /usr/bin/python3 %s/bench/train_step_equimod_torch.py --setting %s "
             "--batch %d --iters %d --warmup %d --threads %d --clock %s --precision %s",
             have_tc ? "LD_PRELOAD=" : "", have_tc ? tc : "", have_tc ? " " : "", src, s->name,
             batch, iters, warmup, threads, use_cpu ? "cpu" : "wall", bf16 ? "bf16" : "fp32");
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

static int run_child_eq(int argc, char **argv, const char *prec, double *img_s, double *rss)
{
    char cmd[8192];
    size_t o = (size_t)snprintf(cmd, sizeof cmd, "'/proc/%d/exe' equimod", (int)getpid());
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
        if (sscanf(line, "equimod img/s=%lf step_s=%*f cpu_s=%*f clock=%*s rss_mib=%lf", img_s,
                   rss) == 2)
            ok = 1;
        fputs("# ", stdout);
        fputs(line, stdout);
    }
    int st = pclose(p);
    return ok && st == 0 ? 0 : -1;
}

/* One precision of the equimod step in this process; prints the "equimod img/s=" line. */
static int run_equimod(const setting *s, int batch, int iters, int warmup, int threads,
                       int use_cpu, int bf16, const char **dirs, int n_dirs)
{
    host_threads_init(threads);
    if (nn_threads() < 1) /* pulls host/nn's table out of the static archive */
        return 1;
    char err[2048];
    eqm_registry *reg = registry_create();
    registry_scan(reg, dirs, n_dirs);
    eqm_config *cfg = config_new_empty();
    char sets[13][128];
    int ns = 0;
    snprintf(sets[ns++], 128, "backbone.plugin=resnet");
    snprintf(sets[ns++], 128, "backbone.depth=%d", s->depth);
    snprintf(sets[ns++], 128, "backbone.stem=%s", s->imagenet ? "imagenet" : "cifar");
    snprintf(sets[ns++], 128, "backbone.width=%g", s->width);
    snprintf(sets[ns++], 128, "method.plugin=simclr");
    snprintf(sets[ns++], 128, "method.hidden=%s", s->g_hidden);
    snprintf(sets[ns++], 128, "method.out_dim=%s", s->g_out);
    snprintf(sets[ns++], 128, "method.tau=0.5");
    snprintf(sets[ns++], 128, "equimod.plugin=equimod");
    snprintf(sets[ns++], 128, "equimod.head=%s", s->head);
    snprintf(sets[ns++], 128, "equimod.t_layers=%d", s->t_layers);
    snprintf(sets[ns++], 128, "equimod.tau=0.2");
    snprintf(sets[ns++], 128, "train.precision=%s", bf16 ? "bf16" : "fp32");
    for (int i = 0; i < ns; i++)
        if (config_set(cfg, sets[i], err, sizeof err)) {
            fprintf(stderr, "train-step equimod: %s: %s\n", sets[i], err);
            return 1;
        }
    /* [train] bound as `equimod train` binds it: build_model reads train.precision (bf16:
     * the backbone stores its activations in bf16, EQM_ACT_BF16) */
    train_opts *to = calloc(1, sizeof *to);
    if (!to || config_bind(cfg, "train", train_section_spec, to, NULL, err, sizeof err) ||
        config_section_attach(cfg, "train", NULL, to)) {
        fprintf(stderr, "train-step equimod: [train]: %s\n", err);
        return 1;
    }
    eqm_model m;
    model_reset(&m);
    void *opts[EQM_SLOT_COUNT] = {0};
    const int N = batch, H = s->px;
    if (build_model(cfg, reg, H, H, 3, P_DIM, 1, 1, 3 * N, &m, opts, err, sizeof err) ||
        model_init(&m, 1, err, sizeof err)) {
        fprintf(stderr, "train-step equimod: %s\n(pass --plugin-path DIR of the plugins, or "
                        "set EQUIMOD_PLUGIN_PATH)\n", err);
        return 1;
    }
    int nt = model_n_tensors(&m), np = 0;
    optim_param *pp = calloc((size_t)nt, sizeof *pp);
    for (int k = 0; k < nt; k++) {
        eqm_model_tensor t;
        if (model_tensor(&m, k, &t) || !t.grad)
            continue;
        pp[np++] = (optim_param){t.param, t.grad, t.numel, !!(t.info->flags & EQM_T_DECAY)};
    }
    optim opt;
    optim_cfg oc = {OPTIM_LARS, 0.9, 1e-6, 1e-3, 0};
    if (optim_init(&opt, &oc, pp, (size_t)np)) {
        fprintf(stderr, "train-step equimod: optimizer\n");
        return 1;
    }
    free(pp);
    eqm_module_inst *bb = &m.mod[EQM_SLOT_BACKBONE], *me = &m.mod[EQM_SLOT_METHOD],
                    *eq = &m.mod[EQM_SLOT_EQUIMOD];
    const int D = bb->out_dim;
    const eqm_host_api *api = host_api();
    size_t nx = (size_t)3 * N * H * H * 3;
    float *x = api->alloc(NULL, nx * sizeof(float), 64);
    float *t = api->alloc(NULL, (size_t)2 * N * P_DIM * sizeof(float), 64);
    float *h = api->alloc(NULL, (size_t)3 * N * D * sizeof(float), 64);
    float *dh = api->alloc(NULL, (size_t)3 * N * D * sizeof(float), 64);
    eqm_rng rng;
    api->rng_seed(&rng, 42, 0, 0, 0);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)api->rng_normal(&rng);
    for (size_t i = 0; i < (size_t)2 * N * P_DIM; i++)
        t[i] = (float)api->rng_normal(&rng);
    printf("# equimod %s: ResNet-%d %s width %g (D %d), g %s-%s, g' %s, t_layers %d, batch %d "
           "(3N = %d rows), %d px, %zu trainable floats, threads %d, precision %s%s%s\n",
           s->name, s->depth, s->imagenet ? "imagenet" : "cifar", s->width, D, s->g_hidden,
           s->g_out, s->head, s->t_layers, N, 3 * N, H, m.n_trainable, threads,
           bf16 ? "bf16" : "fp32", bf16 ? ": " : "", bf16 ? nn_bf16_kernel_name() : "");
    double *wt = calloc((size_t)iters, sizeof(double)), *ct = calloc((size_t)iters, sizeof(double));
    for (int it = 0; it < warmup + iters; it++) {
        double w0 = eq_now(0), c0 = eq_now(1);
        nn_precision_set(bf16 ? EQM_NN_BF16 : 0);
        model_zero_grad(&m);
        memset(dh, 0, (size_t)3 * N * D * sizeof(float));
        eqm_module_io bio = {.size = sizeof bio, .rows = 3 * N, .n_views = 3, .train = 1,
                             .in = x, .out = h};
        int rc = bb->ops->forward(bb->self, &bio);
        eqm_module_io mio = {.size = sizeof mio, .rows = 2 * N, .n_views = 2, .train = 1,
                             .in = h + (size_t)N * D};
        rc = rc ? rc : me->ops->forward(me->self, &mio);
        mio.din = dh + (size_t)N * D;
        mio.loss_scale = 1.0f;
        rc = rc ? rc : me->ops->backward(me->self, &mio);
        eqm_module_io eio = {.size = sizeof eio, .rows = 3 * N, .n_views = 3, .train = 1,
                             .in = h, .t = t};
        rc = rc ? rc : eq->ops->forward(eq->self, &eio);
        eio.din = dh;
        eio.loss_scale = 1.0f;
        rc = rc ? rc : eq->ops->backward(eq->self, &eio);
        bio.dout = dh;
        bio.din = NULL;
        rc = rc ? rc : bb->ops->backward(bb->self, &bio);
        nn_precision_set(0);
        rc = rc ? rc : optim_step(&opt, 0.1);
        if (rc) {
            fprintf(stderr, "train-step equimod: step %d failed (%d): %s %s %s\n", it, rc,
                    host_ctx_error(bb->ctx), host_ctx_error(me->ctx), host_ctx_error(eq->ctx));
            return 1;
        }
        double w1 = eq_now(0), c1 = eq_now(1);
        if (it >= warmup)
            wt[it - warmup] = w1 - w0, ct[it - warmup] = c1 - c0;
        printf("# equimod step %d: %.3f s wall, %.3f s cpu, L_inv %.4f, lambda*L_equi %.4f\n",
               it, w1 - w0, c1 - c0, (double)mio.loss, (double)eio.loss);
        fflush(stdout);
    }
    qsort(wt, (size_t)iters, sizeof(double), cmp_dbl);
    qsort(ct, (size_t)iters, sizeof(double), cmp_dbl);
    double med = wt[iters / 2], cmed = ct[iters / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("equimod img/s=%.4f step_s=%.4f cpu_s=%.4f clock=%s rss_mib=%.1f\n",
           N / (use_cpu ? cmed : med), med, cmed, use_cpu ? "cpu" : "wall", ru.ru_maxrss / 1024.0);
    optim_free(&opt);
    model_destroy(&m);
    free_opts(opts);
    free(wt), free(ct);
    return 0;
}

int train_step_equimod_main(int argc, char **argv)
{
    int iters = 3, warmup = 1, threads = 2, torch = 1, use_cpu = 0, batch = 0;
    const char *prec = NULL, *sname = "quickstart";
    const char *dirs[16];
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--setting") && i + 1 < argc)
            sname = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--plugin-path") && i + 1 < argc && n_dirs < 16)
            dirs[n_dirs++] = argv[++i];
        else if (!strcmp(argv[i], "--no-torch"))
            torch = 0;
        else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
            use_cpu = !strcmp(argv[++i], "cpu");
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "fp32") || !strcmp(argv[i + 1], "bf16")))
            prec = argv[++i];
        else {
            fprintf(stderr, "train-step equimod: unknown argument %s\nusage: train-step equimod "
                            "[--setting quickstart|paper|r50] [--iters N] [--warmup N] "
                            "[--threads N] [--batch N] [--plugin-path DIR]... [--no-torch] "
                            "[--precision fp32|bf16] [--clock wall|cpu]\n",
                    argv[i]);
            return 2;
        }
    }
    const setting *s = NULL;
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++)
        if (!strcmp(settings[i].name, sname))
            s = &settings[i];
    if (!s) {
        fprintf(stderr, "train-step equimod: --setting %s: expected quickstart, paper or r50\n",
                sname);
        return 2;
    }
    if (!batch)
        batch = s->batch;
    if (batch < 2 || iters < 1 || warmup < 0 || threads < 1) {
        fprintf(stderr, "train-step equimod: need batch >= 2, iters >= 1, warmup >= 0, "
                        "threads >= 1\n");
        return 2;
    }
    if (prec)
        return run_equimod(s, batch, iters, warmup, threads, use_cpu, !strcmp(prec, "bf16"),
                           dirs, n_dirs);
    double img[2], rss[2], timg[2] = {0, 0}, trss[2] = {0, 0};
    static const char *const pn[2] = {"fp32", "bf16"};
    for (int v = 0; v < 2; v++)
        if (run_child_eq(argc, argv, pn[v], &img[v], &rss[v])) {
            fprintf(stderr, "train-step equimod: the equimod %s run failed\n", pn[v]);
            return 1;
        }
    for (int v = 0; torch && v < 2; v++)
        if (run_torch_eq(s, batch, iters, warmup, threads, use_cpu, v, &timg[v], &trss[v])) {
            fprintf(stderr, "train-step equimod: the PyTorch %s run failed\n", pn[v]);
            return 1;
        }
    printf("setting %s: batch %d, threads %d, clock %s\n", s->name, batch, threads,
           use_cpu ? "cpu" : "wall");
    for (int v = 0; v < 2; v++)
        printf("equimod %s img/s=%.3f step_s=%.4f peak_rss_mib=%.1f\n", pn[v], img[v],
               batch / img[v], rss[v]);
    if (!torch)
        return 0;
    for (int v = 0; v < 2; v++)
        printf("torch   %s img/s=%.3f step_s=%.4f peak_rss_mib=%.1f%s\n", pn[v], timg[v],
               batch / timg[v], trss[v], v ? " (autocast)" : "");
    printf("equimod fp32 / torch fp32 = %.3f (peak RSS %.2f)\n", img[0] / timg[0], rss[0] / trss[0]);
    printf("equimod bf16 / torch fp32 = %.3f (peak RSS %.2f)\n", img[1] / timg[0], rss[1] / trss[0]);
    printf("equimod bf16 / torch bf16 = %.3f (peak RSS %.2f)\n", img[1] / timg[1], rss[1] / trss[1]);
    printf("ratio=%.3f\n", (img[0] > img[1] ? img[0] : img[1]) / timg[0]);
    return 0;
}
