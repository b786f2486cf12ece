/* host/cmd/probe.c: the `probe` sub-command (the work is in host/eval/probe.c).
 *
 *   equimod probe RUN|CHECKPOINT|CONFIG [--images N] [--split test|train] [--batch B]
 *                 [--seed S] [--out DIR] [--set s.k=v]... [--plugin-path DIR]...
 * Prints the table, writes DIR/probe.json (DIR: --out, else the run folder) and appends
 * the table to RUN/report.md for a run folder.
 * Exit status: 0 success, 1 failure, 2 usage error. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"
#include "eval/probe.h"
#include "fsutil.h"
#include "sections.h"
#include "train/trainer.h"

#define MAX_SETS 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: equimod probe RUN|CHECKPOINT|CONFIG [--images N] [--split test|train]\n"
            "                     [--batch B] [--seed S] [--out DIR]\n"
            "                     [--set SECTION.KEY=VALUE]... [--plugin-path DIR]...\n\n"
            "Measure what a frozen representation keeps of the augmentation parameters t.\n"
            "N images of the split (default %d; the test split is the one [data] test_set\n"
            "names, e.g. --set data.test_set=official for all 10,000 CIFAR-10 test images)\n"
            "go through the run's [views] view1 and view2 pipelines (epoch 0, dataset order,\n"
            "[run] seed), giving two views and their raw t each. The frozen backbone (eval\n"
            "mode) gives h and the method's projection head gives the embedding z (methods\n"
            "with the embedding forward: simclr, byol). The images are split at random (seed\n"
            "S, default the run's seed) into fit / validation / test parts (60/20/20); a\n"
            "closed-form ridge regression (features and t standardised on the fit images;\n"
            "Cholesky solve; lambda per group from 1e-5..1e3 times n_fit by validation R^2)\n"
            "predicts each group of t fields (the fields one augmentation records: crop box,\n"
            "flip, jitter factors and order, grayscale, ...) and its R^2 on the test images is\n"
            "reported, for h and for z; \"all\" pools every field.\n\n"
            "Output: the table on stdout; DIR/probe.json (DIR = --out, else the run folder;\n"
            "none for a checkpoint or a config without --out): model, step, method, equimod,\n"
            "data {split, source, images, fit/val/test_images}, groups [{name, section,\n"
            "plugin, fields}], and for \"backbone\" and \"embedding\" (null without one):\n"
            "{dim, dims_varying, rows, r2 {GROUP: R^2, all}, val_r2, lambda, field_r2 [per\n"
            "t field]}; R^2 is null where the group does not vary. A run folder's report.md\n"
            "gets the table as a section (`equimod report` shows it).\n"
            "Threads: the run's [train] threads. --batch: images per forward (default 64).\n",
            PROBE_DEFAULT_IMAGES);
}

static int parse_i64(const char *opt, const char *v, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0) {
        fprintf(stderr, "equimod probe: %s expects a non-negative integer, got '%s'\n", opt, v);
        return 2;
    }
    *out = x;
    return 0;
}

int cmd_probe(int argc, char **argv)
{
    const char *source = NULL, *out_dir = NULL;
    char *sets[MAX_SETS];
    int n_sets = 0, seed_set = 0;
    int64_t batch = 0, seed = 0;
    probe_opts po;
    memset(&po, 0, sizeof po);
    po.split = "test";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        int takes = !strcmp(a, "--images") || !strcmp(a, "--split") || !strcmp(a, "--batch") ||
                    !strcmp(a, "--seed") || !strcmp(a, "--out") || !strcmp(a, "-o") ||
                    !strcmp(a, "--set") || !strcmp(a, "--plugin-path");
        if (takes && !v) {
            fprintf(stderr, "equimod probe: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--images")) {
            if (parse_i64(a, v, &po.images))
                return 2;
        } else if (!strcmp(a, "--split")) {
            po.split = v;
        } else if (!strcmp(a, "--batch")) {
            if (parse_i64(a, v, &batch) || batch < 1 || batch > 4096) {
                fprintf(stderr, "equimod probe: --batch expects 1..4096\n");
                return 2;
            }
        } else if (!strcmp(a, "--seed")) {
            if (parse_i64(a, v, &seed))
                return 2;
            seed_set = 1;
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            out_dir = v;
        } else if (!strcmp(a, "--set") || !strncmp(a, "--set=", 6)) {
            if (n_sets >= MAX_SETS) {
                fprintf(stderr, "equimod probe: too many --set (max %d)\n", MAX_SETS);
                return 2;
            }
            sets[n_sets++] = (char *)(a[5] == '=' ? a + 6 : v);
            if (a[5] == '=')
                continue;
        } else if (!strcmp(a, "--plugin-path")) {
            cli_add_plugin_path(v);
        } else if (!strncmp(a, "--plugin-path=", 14)) {
            cli_add_plugin_path(a + 14);
            continue;
        } else if (a[0] != '-' && !source) {
            source = a;
            continue;
        } else {
            fprintf(stderr, "equimod probe: unexpected argument '%s'\nhint: see 'equimod probe "
                            "--help'\n", a);
            return 2;
        }
        i++; /* the option's value */
    }
    if (!source) {
        fprintf(stderr, "equimod probe: missing RUN (a run folder, checkpoint or config)\n"
                        "hint: see 'equimod probe --help'\n");
        return 2;
    }
    if (strcmp(po.split, "test") && strcmp(po.split, "train")) {
        fprintf(stderr, "equimod probe: --split %s: expected test or train\n", po.split);
        return 2;
    }
    po.batch = (int)batch;
    struct stat st;
    int is_run = !stat(source, &st) && S_ISDIR(st.st_mode);
    if (!seed_set) { /* the run's seed: read it from the model's config below */
        model_source ms;
        char e2[2048];
        if (!model_source_open(&ms, source, sets, n_sets, e2, sizeof e2)) {
            run_opts ro;
            memset(&ro, 0, sizeof ro);
            if (!config_bind(ms.cfg, "run", run_spec, &ro, NULL, e2, sizeof e2))
                seed = ro.seed;
            model_source_close(&ms);
        }
    }
    po.seed = (uint64_t)seed;
    const eqm_registry *reg = cli_registry();
    if (!reg) {
        fprintf(stderr, "equimod probe: no plugins\n");
        return 1;
    }
    char err[2048] = "";
    probe_report r;
    int rc = probe_run(source, reg, sets, n_sets, &po, &r, err, sizeof err);
    if (rc) {
        fprintf(stderr, "equimod probe: %s\n", err[0] ? err : eqm_status_str(rc));
        return 1;
    }
    probe_write_table(&r, stdout);
    printf("(features %.1f s, ridge %.1f s)\n", r.extract_s, r.fit_s);
    const char *dir = out_dir ? out_dir : is_run ? source : NULL;
    if (dir) {
        char path[4200];
        if (out_dir && fs_mkdir_p(out_dir, 0755)) {
            fprintf(stderr, "equimod probe: cannot create %s: %s\n", out_dir, strerror(errno));
            probe_report_free(&r);
            return 1;
        }
        snprintf(path, sizeof path, "%s/probe.json", dir);
        if (probe_write_json(&r, path, err, sizeof err)) {
            fprintf(stderr, "equimod probe: %s\n", err);
            probe_report_free(&r);
            return 1;
        }
        printf("%s\n", path);
    }
    if (is_run) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            fprintf(f, "\n## What the representation keeps of t (`equimod probe`)\n\n");
            probe_write_table(&r, f);
            fclose(f);
            if (report_append(source, buf))
                fprintf(stderr, "equimod probe: could not append to %s/report.md\n", source);
        }
        free(buf);
    }
    probe_report_free(&r);
    return 0;
}
