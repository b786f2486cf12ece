/* host/cmd/train.c: the `train`, `eval` and `features` sub-commands (argument parsing and
 * printing; the work is in host/train: run.c, features.c, trained.c, eval.c).
 *
 *   equimod train CONFIG|RUN [--set s.k=v]... [--out DIR] [--resume]
 *   equimod eval knn RUN|CHECKPOINT|CONFIG [--set s.k=v]...
 *   equimod eval linear RUN|CHECKPOINT|CONFIG [--epochs E] [--fast] [--set s.k=v]...
 *   equimod features RUN|CHECKPOINT|CONFIG --split train|test -o FILE.npy [--limit N] [--set ...]
 * A CONFIG (*.ini) stands for the untrained model (model_source_open, trainer.h).
 * Exit status: 0 success, 1 failure, 2 usage error, 130 training interrupted (checkpoint
 * saved). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"
#include "loader/loader.h"
#include "train/eval.h"
#include "train/trainer.h"

#define MAX_SETS 64

/* Common options: --set (repeatable), --plugin-path. Returns 1 if argv[*i] was consumed. */
static int common_opt(int argc, char **argv, int *i, char **sets, int *n_sets, const char *cmd,
                      int *bad)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--set") || !strcmp(a, "--plugin-path")) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "equimod %s: %s needs a value\n", cmd, a);
            *bad = 1;
            return 1;
        }
        if (a[2] == 's') {
            if (*n_sets >= MAX_SETS) {
                fprintf(stderr, "equimod %s: too many --set (max %d)\n", cmd, MAX_SETS);
                *bad = 1;
            } else {
                sets[(*n_sets)++] = argv[*i + 1];
            }
        } else {
            cli_add_plugin_path(argv[*i + 1]);
        }
        (*i)++;
        return 1;
    }
    if (!strncmp(a, "--set=", 6)) {
        if (*n_sets < MAX_SETS)
            sets[(*n_sets)++] = (char *)a + 6;
        return 1;
    }
    if (!strncmp(a, "--plugin-path=", 14)) {
        cli_add_plugin_path(a + 14);
        return 1;
    }
    return 0;
}

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: equimod train CONFIG [--set SECTION.KEY=VALUE]... [--out DIR] [--resume]\n"
            "       equimod train RUN_DIR            (continue the run in RUN_DIR)\n\n"
            "Train a self-supervised model. The run folder (--out, else [run] out_dir/name)\n"
            "gets config.ini, metrics.jsonl, checkpoint.last/.prev, report.md and loss.svg.\n"
            "A folder that holds a checkpoint of the same config is resumed automatically\n"
            "(bit for bit); --resume makes a missing checkpoint an error. SIGINT/SIGTERM save\n"
            "a checkpoint and stop (exit 130). Plain baseline: --set train.equimod=false.\n"
            "Precision: --set train.precision=bf16 multiplies convolutions and linear layers\n"
            "in bfloat16 with fp32 accumulation (AMX-BF16, else AVX512_BF16, picked at start);\n"
            "weights, checkpoints, batch norm, losses and the optimizer stay fp32. A CPU with\n"
            "neither feature is an error naming them; EQM_NN_BF16_NATIVE=0 runs the emulation\n"
            "instead (the same bf16 products, slower than fp32: for checking numbers).\n");
}

int cmd_train(int argc, char **argv)
{
    char *sets[MAX_SETS];
    int n_sets = 0, resume = 0, bad = 0;
    const char *config = NULL, *out = NULL;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        } else if (common_opt(argc, argv, &i, sets, &n_sets, "train", &bad)) {
            continue;
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "equimod train: %s needs a folder\n", a);
                return 2;
            }
            out = argv[++i];
        } else if (!strncmp(a, "--out=", 6)) {
            out = a + 6;
        } else if (!strcmp(a, "--resume")) {
            resume = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "equimod train: unknown option '%s'\nhint: see 'equimod train --help'\n", a);
            return 2;
        } else if (config) {
            fprintf(stderr, "equimod train: more than one CONFIG ('%s', '%s')\n", config, a);
            return 2;
        } else {
            config = a;
        }
    }
    if (bad)
        return 2;
    if (!config) {
        train_usage(stderr);
        return 2;
    }
    return train_main(config, sets, n_sets, out, resume);
}

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: equimod eval knn RUN|CHECKPOINT|CONFIG [--set eval.KEY=VALUE]...\n"
            "       equimod eval linear RUN|CHECKPOINT|CONFIG [--epochs E] [--fast] [--set ...]...\n\n"
            "Evaluate the frozen backbone of a run: weighted kNN (eval.knn_k, eval.knn_t) or a\n"
            "linear probe (method-reference.md §6: SGD Nesterov lr 0.2 cosine to 1e-4, batch 256,\n"
            "RandomResizedCrop+flip on the train images; --fast trains on cached features of\n"
            "the un-augmented images instead). Prints top-1/top-5 and the test set used, and\n"
            "appends them to RUN/report.md. Subsets: --set eval.train_limit=N, eval.test_limit=N.\n"
            "A CONFIG (.ini) evaluates the untrained backbone ([run] seed's initialisation).\n");
}

/* Paper protocol: augmented train features recomputed every epoch. */
static int linear_paper(trained *t, const eval_opts *eo, const eqm_registry *reg,
                        eval_acc *acc, double *loss_out, char **desc, char *err, size_t errlen)
{
    eqm_model *m = &t->model;
    eqm_module_inst *bb = &m->mod[EQM_SLOT_BACKBONE];
    eqm_loader_opts lo = {0};
    lo.mode = EQM_LOADER_SINGLE;
    lo.single_view = "eval_train";
    lo.batch_size = (int)eo->linear_batch;
    lo.shuffle_set = 1, lo.shuffle = 1;
    lo.drop_last_set = 1, lo.drop_last = 0;
    lo.limit = eo->train_limit;
    eqm_loader *ld = NULL;
    int rc = loader_open(&ld, t->cfg, reg, "train", &lo, err, errlen);
    if (rc)
        return rc;
    eqm_loader_info li;
    loader_info(ld, &li);
    const int D = bb->out_dim;
    eval_linear_cfg lc = {(int)eo->linear_epochs, (int)eo->linear_batch, eo->linear_lr,
                          eo->linear_final_lr, eo->linear_momentum, eo->linear_nesterov,
                          eo->linear_wd, 0};
    eval_linear *lin = eval_linear_create(D, li.n_classes, &lc,
                                          li.batches_per_epoch * eo->linear_epochs);
    float *f = malloc((size_t)eo->linear_batch * D * sizeof(float));
    if (!lin || !f) {
        rc = EQM_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
    }
    double ep_loss = 0;
    for (int64_t e = 0; !rc && e < eo->linear_epochs; e++) {
        rc = loader_start_epoch(ld, e);
        int64_t seen = 0;
        ep_loss = 0;
        while (!rc) {
            eqm_batch *b;
            rc = loader_next(ld, &b);
            if (rc == EQM_EOF) {
                rc = EQM_OK;
                break;
            }
            if (rc) {
                snprintf(err, errlen, "%s", loader_error(ld));
                break;
            }
            eqm_module_io io = {0};
            io.size = sizeof io;
            io.rows = b->n;
            io.train = 0;
            io.in = b->x0;
            io.out = f;
            rc = bb->ops->forward(bb->self, &io);
            double lo_ = 0;
            if (!rc)
                rc = eval_linear_step(lin, f, b->labels, b->n, &lo_);
            ep_loss += lo_ * b->n;
            seen += b->n;
            loader_release(ld, b);
            if (rc)
                snprintf(err, errlen, "linear probe step failed (%s)", eqm_status_str(rc));
        }
        if (!rc)
            fprintf(stderr, "linear probe epoch %lld/%lld: loss %.4f\n", (long long)e + 1,
                    (long long)eo->linear_epochs, seen ? ep_loss / seen : 0);
    }
    loader_destroy(ld);
    *loss_out = ep_loss;
    if (!rc) {
        float *fte = NULL;
        int32_t *lte = NULL;
        int64_t nte = 0;
        rc = extract_features(m, t->cfg, reg, "test", "eval_test", eo->test_limit,
                              (int)eo->batch, &fte, &lte, &nte, NULL, desc, err, errlen);
        if (!rc)
            rc = eval_linear_accuracy(lin, fte, lte, nte, acc);
        free(fte), free(lte);
    }
    eval_linear_destroy(lin);
    free(f);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    char *sets[MAX_SETS + 2];
    int n_sets = 0, bad = 0, fast = 0;
    const char *mode = NULL, *source = NULL;
    long long epochs = -1;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            eval_usage(stdout);
            return 0;
        } else if (common_opt(argc, argv, &i, sets, &n_sets, "eval", &bad)) {
            continue;
        } else if (!strcmp(a, "--fast")) {
            fast = 1;
        } else if (!strcmp(a, "--epochs")) {
            char *end;
            if (i + 1 >= argc || (epochs = strtoll(argv[i + 1], &end, 10)) < 1 || *end) {
                fprintf(stderr, "equimod eval: --epochs needs a positive integer\n");
                return 2;
            }
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "equimod eval: unknown option '%s'\nhint: see 'equimod eval --help'\n", a);
            return 2;
        } else if (!mode) {
            mode = a;
        } else if (!source) {
            source = a;
        } else {
            fprintf(stderr, "equimod eval: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (bad)
        return 2;
    if (!mode || !source || (strcmp(mode, "knn") && strcmp(mode, "linear"))) {
        eval_usage(stderr);
        return 2;
    }
    char epochs_set[64];
    if (epochs > 0) {
        snprintf(epochs_set, sizeof epochs_set, "eval.linear_epochs=%lld", epochs);
        sets[n_sets++] = epochs_set;
    }
    const eqm_registry *reg = cli_registry();
    char err[2048] = "";
    trained t;
    eval_opts eo;
    memset(&eo, 0, sizeof eo);
    int rc = trained_load(&t, source, reg, 512, sets, n_sets, err, sizeof err);
    if (rc) {
        fprintf(stderr, "equimod eval: %s\n", err);
        return 1;
    }
    rc = config_bind(t.cfg, "eval", eval_section_spec, &eo, NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "equimod eval: %s\n", err);
        trained_free(&t);
        return 1;
    }
    if (eo.batch > 512)
        eo.batch = 512;
    if (eo.linear_batch > 512)
        eo.linear_batch = 512;
    eval_acc acc = {0};
    char *desc = NULL;
    char line[2048];
    double loss = 0;
    if (!strcmp(mode, "knn")) {
        rc = knn_of_model(&t.model, t.cfg, reg, &eo, &acc, &desc, err, sizeof err);
        snprintf(line, sizeof line,
                 "kNN (k=%lld, T=%g, bank: %s train images): top-1 %.2f%%  top-5 %.2f%%",
                 (long long)eo.knn_k, eo.knn_t, eo.train_limit ? "subset of" : "all", acc.top1,
                 acc.top5);
    } else if (fast) {
        float *ftr = NULL, *fte = NULL;
        int32_t *ltr = NULL, *lte = NULL;
        int64_t ntr = 0, nte = 0;
        int C = 0;
        rc = extract_features(&t.model, t.cfg, reg, "train", "eval_test", eo.train_limit,
                              (int)eo.batch, &ftr, &ltr, &ntr, &C, NULL, err, sizeof err);
        if (!rc)
            rc = extract_features(&t.model, t.cfg, reg, "test", "eval_test", eo.test_limit,
                                  (int)eo.batch, &fte, &lte, &nte, NULL, &desc, err, sizeof err);
        if (!rc) {
            eval_linear_cfg lc = {(int)eo.linear_epochs, (int)eo.linear_batch, eo.linear_lr,
                                  eo.linear_final_lr, eo.linear_momentum, eo.linear_nesterov,
                                  eo.linear_wd, 0};
            rc = eval_linear_fast(ftr, ltr, ntr, fte, lte, nte, t.model.mod[0].out_dim, C, &lc,
                                  &acc, &loss);
            if (rc)
                snprintf(err, sizeof err, "linear probe failed (%s)", eqm_status_str(rc));
        }
        free(ftr), free(fte), free(ltr), free(lte);
        snprintf(line, sizeof line,
                 "linear probe, fast mode (cached un-augmented features, %lld epochs, final "
                 "train loss %.4f): top-1 %.2f%%  top-5 %.2f%%",
                 (long long)eo.linear_epochs, loss, acc.top1, acc.top5);
    } else {
        rc = linear_paper(&t, &eo, reg, &acc, &loss, &desc, err, sizeof err);
        snprintf(line, sizeof line,
                 "linear probe, method-reference.md §6 protocol (%lld epochs, RRC+flip, SGD Nesterov lr "
                 "%g cosine to %g, batch %lld): top-1 %.2f%%  top-5 %.2f%%",
                 (long long)eo.linear_epochs, eo.linear_lr, eo.linear_final_lr,
                 (long long)eo.linear_batch, acc.top1, acc.top5);
    }
    if (rc) {
        fprintf(stderr, "equimod eval: %s\n", err[0] ? err : eqm_status_str(rc));
        free(desc);
        trained_free(&t);
        return 1;
    }
    printf("%s\n  test set: %lld images: %s\n  model: %s (step %lld)\n", line, (long long)acc.n,
           desc ? desc : "?", t.what, (long long)t.step);
    struct stat st;
    if (!stat(source, &st) && S_ISDIR(st.st_mode)) {
        char text[4096];
        if (snprintf(text, sizeof text, "- `equimod eval %s%s`: %s on %lld test images (%s), model %s\n",
                 mode, fast ? " --fast" : "", line, (long long)acc.n, desc ? desc : "?",
                 t.what) >= (int)sizeof text)
            text[sizeof text - 2] = '\n';
        report_append(source, text);
    }
    free(desc);
    trained_free(&t);
    return 0;
}

static void features_usage(FILE *f)
{
    fprintf(f,
            "usage: equimod features RUN|CHECKPOINT|CONFIG --split train|test -o FILE.npy [--limit N]\n"
            "                        [--set SECTION.KEY=VALUE]...\n\n"
            "Write the frozen backbone features (eval mode, the test preprocessing [views]\n"
            "eval_test) of a split as a NumPy float32 array (rows, D), one row per image in\n"
            "dataset order, and the labels as int64 in FILE.labels.npy (FILE minus .npy).\n"
            "A CONFIG (.ini) gives the untrained backbone ([run] seed's initialisation).\n");
}

int cmd_features(int argc, char **argv)
{
    char *sets[MAX_SETS];
    int n_sets = 0, bad = 0;
    const char *source = NULL, *split = NULL, *out = NULL;
    long long limit = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            features_usage(stdout);
            return 0;
        } else if (common_opt(argc, argv, &i, sets, &n_sets, "features", &bad)) {
            continue;
        } else if ((!strcmp(a, "--split") || !strcmp(a, "-o") || !strcmp(a, "--limit")) &&
                   i + 1 < argc) {
            if (a[1] == 'o')
                out = argv[++i];
            else if (a[2] == 's')
                split = argv[++i];
            else
                limit = atoll(argv[++i]);
        } else if (a[0] == '-') {
            fprintf(stderr, "equimod features: unknown option or missing value '%s'\n", a);
            return 2;
        } else if (!source) {
            source = a;
        } else {
            fprintf(stderr, "equimod features: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (bad)
        return 2;
    if (!source || !split || !out || (strcmp(split, "train") && strcmp(split, "test"))) {
        features_usage(stderr);
        return 2;
    }
    const eqm_registry *reg = cli_registry();
    char err[2048] = "";
    trained t;
    int rc = trained_load(&t, source, reg, 256, sets, n_sets, err, sizeof err);
    if (rc) {
        fprintf(stderr, "equimod features: %s\n", err);
        return 1;
    }
    float *F = NULL;
    int32_t *L = NULL;
    int64_t n = 0;
    char *desc = NULL;
    rc = extract_features(&t.model, t.cfg, reg, split, "eval_test", limit, 256, &F, &L, &n, NULL,
                          &desc, err, sizeof err);
    int D = t.model.mod[EQM_SLOT_BACKBONE].out_dim;
    int64_t *L64 = NULL;
    if (!rc) {
        L64 = malloc((size_t)(n ? n : 1) * sizeof *L64);
        if (!L64) {
            rc = EQM_ERR_NOMEM;
            snprintf(err, sizeof err, "out of memory");
        }
    }
    char lpath[4096];
    size_t ol = strlen(out);
    if (ol > 4 && !strcmp(out + ol - 4, ".npy"))
        snprintf(lpath, sizeof lpath, "%.*s.labels.npy", (int)(ol - 4), out);
    else
        snprintf(lpath, sizeof lpath, "%s.labels.npy", out);
    if (!rc) {
        for (int64_t i = 0; i < n; i++)
            L64[i] = L[i];
        rc = npy_write_f32(out, F, n, D, err, sizeof err);
        if (!rc)
            rc = npy_write_i64(lpath, L64, n, err, sizeof err);
    }
    if (rc)
        fprintf(stderr, "equimod features: %s\n", err[0] ? err : eqm_status_str(rc));
    else
        printf("wrote %s (%lld x %d float32) and %s (int64 labels): %s split, %s, model %s\n",
               out, (long long)n, D, lpath, split, desc ? desc : "?", t.what);
    free(F), free(L), free(L64), free(desc);
    trained_free(&t);
    return rc ? 1 : 0;
}
