/* host/cmd/sweep.c: `equimod sweep SWEEP.ini [--jobs N] [--dry-run] [--collect] [--out DIR]`
 * (argument parsing and printing; the plan, runner and tables are in host/sweep/).
 * Exit status: 0 every run done, 1 a run failed or the sweep file/folder was refused,
 * 2 usage error, 130 interrupted (running trainings stopped at a checkpoint). */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "sweep/sweep.h"

static void sweep_usage(FILE *f)
{
    fprintf(f,
            "usage: equimod sweep SWEEP.ini [--jobs N] [--dry-run] [--collect] [--out DIR]\n"
            "       equimod sweep SWEEP_DIR --collect\n\n"
            "Run an ablation study: the runs are the product of the [axis.NAME] sections of\n"
            "the sweep file over its base config (see configs/ablations/). Every run's\n"
            "config is validated before anything trains. Each run is a run folder named\n"
            "from its values under the sweep folder (--out, else [sweep] out, else\n"
            "sweeps/<file stem>), which also holds sweep.json (the plan), results.csv and\n"
            "summary.md. Running the same command again skips finished runs and resumes\n"
            "interrupted ones from their checkpoints; a folder made from another plan is\n"
            "refused. A failed run is recorded and the others go on.\n\n"
            "  --jobs N    N trainings at once; the cores are divided between them\n"
            "  --dry-run   print the runs (name and --set list) after validating them\n"
            "  --collect   only rebuild results.csv and summary.md from the run folders\n"
            "  --out DIR   the sweep folder\n"
            "SIGINT/SIGTERM stop every running training at a checkpoint (exit 130).\n\n"
            "Sweep file:\n"
            "  [sweep]\n  base = ../quickstart.ini\n  baseline = equimod=false\n"
            "  [axis.equimod]\n  key = train.equimod\n  values = false, true\n"
            "  [axis.seed]\n  key = run.seed\n  values = 1, 2, 3\n"
            "Keys of [sweep]: base, baseline, knn (true), linear (off|fast|full), out.\n"
            "Keys of [axis.NAME]: key, values, names (labels), key2..key4 + values2..values4\n"
            "(a zip axis), range + scale (uniform|log) with a [sample] section (n, seed):\n"
            "a seeded random sample of n points instead of the product.\n");
}

int cmd_sweep(int argc, char **argv)
{
    const char *file = NULL, *out = NULL;
    int jobs = 1, dry = 0, collect = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            sweep_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dry-run")) {
            dry = 1;
        } else if (!strcmp(a, "--collect")) {
            collect = 1;
        } else if (!strcmp(a, "--jobs") || !strcmp(a, "-j") || !strncmp(a, "--jobs=", 7)) {
            const char *v = a[2] == 'j' && a[6] == '=' ? a + 7 : i + 1 < argc ? argv[++i] : NULL;
            char *end;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || n < 1 || n > 1024) {
                fprintf(stderr, "equimod sweep: --jobs needs a number from 1 to 1024\n");
                return 2;
            }
            jobs = (int)n;
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "equimod sweep: %s needs a folder\n", a);
                return 2;
            }
            out = argv[++i];
        } else if (!strncmp(a, "--out=", 6)) {
            out = a + 6;
        } else if (!strcmp(a, "--plugin-path")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "equimod sweep: --plugin-path needs a folder\n");
                return 2;
            }
            cli_add_plugin_path(argv[++i]);
        } else if (!strncmp(a, "--plugin-path=", 14)) {
            cli_add_plugin_path(a + 14);
        } else if (a[0] == '-') {
            fprintf(stderr, "equimod sweep: unknown option '%s'\nhint: see 'equimod sweep --help'\n",
                    a);
            return 2;
        } else if (file) {
            fprintf(stderr, "equimod sweep: more than one SWEEP file ('%s', '%s')\n", file, a);
            return 2;
        } else {
            file = a;
        }
    }
    if (!file) {
        sweep_usage(stderr);
        return 2;
    }
    char err[4096];
    sweep_plan plan;
    struct stat st;
    if (!stat(file, &st) && S_ISDIR(st.st_mode)) {
        if (!collect) {
            fprintf(stderr, "equimod sweep: %s is a folder\nhint: give the sweep file (.ini); "
                            "a sweep folder takes only --collect\n", file);
            return 2;
        }
        if (sweep_plan_load_json(&plan, file, err, sizeof err)) {
            fprintf(stderr, "equimod sweep: %s\n", err);
            return 1;
        }
        int rc = sweep_collect(&plan, file, err, sizeof err);
        if (rc)
            fprintf(stderr, "equimod sweep: %s\n", err);
        else
            fprintf(stderr, "equimod sweep: wrote %s/results.csv and %s/summary.md\n", file, file);
        sweep_plan_free(&plan);
        return rc ? 1 : 0;
    }
    eqm_registry *reg = cli_registry();
    if (!reg) {
        fprintf(stderr, "equimod sweep: out of memory\n");
        return 1;
    }
    if (sweep_plan_read(&plan, file, reg, err, sizeof err)) {
        fprintf(stderr, "equimod sweep: %s\n", err);
        return 1;
    }
    int status = 1;
    if (sweep_validate(&plan, reg, err, sizeof err)) {
        fprintf(stderr, "equimod sweep: %s\nhint: nothing was run; fix the sweep file or the "
                        "base config and run again\n", err);
        goto done;
    }
    char dir[4096];
    if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else
        sweep_default_dir(&plan, dir, sizeof dir);
    if (dry) {
        printf("# %d runs from %s (base %s), sweep folder %s; every run's config is valid\n",
               plan.n_runs, file, plan.base, dir);
        for (int r = 0; r < plan.n_runs; r++) {
            printf("%s", plan.runs[r].name);
            for (int s = 0; s < plan.runs[r].n_sets; s++)
                printf(" --set %s", plan.runs[r].sets[s]);
            printf("\n");
        }
        status = 0;
        goto done;
    }
    if (collect) {
        char p[4200];
        snprintf(p, sizeof p, "%s/sweep.json", dir);
        if (stat(p, &st)) {
            fprintf(stderr, "equimod sweep: %s: no sweep.json: this sweep has not been run "
                            "there\nhint: run it first (without --collect), or give --out "
                            "DIR\n", dir);
            goto done;
        }
    }
    if (sweep_plan_bind_dir(&plan, dir, err, sizeof err)) {
        fprintf(stderr, "equimod sweep: %s\n", err);
        goto done;
    }
    if (!collect) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) {
            fprintf(stderr, "equimod sweep: cannot find the equimod binary (/proc/self/exe)\n");
            goto done;
        }
        exe[n] = 0;
        const char *const *dirs = NULL;
        int n_dirs = cli_plugin_paths(&dirs);
        sweep_run_opts o = {jobs, 0, exe, dirs, n_dirs};
        status = sweep_execute(&plan, dir, &o);
    } else {
        status = 0;
    }
    if (sweep_collect(&plan, dir, err, sizeof err)) {
        fprintf(stderr, "equimod sweep: %s\n", err);
        status = 1;
    } else {
        fprintf(stderr, "equimod sweep: results: %s/results.csv, %s/summary.md\n", dir, dir);
    }
done:
    sweep_plan_free(&plan);
    return status;
}
