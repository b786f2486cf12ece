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
    } else {
        rc = linear_of_model(&t.model, t.cfg, reg, &eo, fast, &acc, &loss, &desc, line,
                             sizeof line, err, sizeof err);
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
