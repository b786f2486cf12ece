/* host/sweep/sweep.h: ablation studies: a sweep file (plan.c), the runs it expands to
 * (runner.c: child `equimod train` processes), and the tables made from their run folders
 * (results.c: results.csv, summary.md).
 *
 * Sweep file (INI, read by config_load: the same file:line + did-you-mean errors):
 *   [sweep]
 *   base = ../quickstart.ini     the base config (relative to the sweep file, or absolute)
 *   baseline = equimod=false     a point of the non-seed axes (summary.md differences)
 *   knn = true                   kNN at the end of every run (eval.knn_at_end)
 *   linear = off|fast|full       the probe at the end of each run (eval.linear_at_end)
 *   out = DIR                    the sweep folder (default: sweeps/<file stem>; --out wins)
 *   [axis.NAME]                  one axis; the plan is the product of all axes (file order,
 *   key = section.key            the last axis varies fastest)
 *   values = a, b, c             comma separated, spaces trimmed
 *   names = x, y, z              optional labels (run folder names), one per value
 *   key2 = ... / values2 = ...   (up to key4) a zip axis: keys that vary together
 *   range = LO, HI               only with [sample]: draw a value per sample
 *   scale = uniform|log          the law of a range
 *   [set.train]                  optional: fixed overrides of the base for every run
 *   epochs = 10                  (keys of the base's section, checked like a config)
 *   [sample]                     optional: a seeded random sample of n points of the
 *   n = 8                        non-seed axes (values: uniform choice; range: uniform or
 *   seed = 1                     log-uniform) instead of their product; seeds stay a grid
 * An axis whose key is run.seed is the seed axis: summary.md groups over it.
 *
 * Sweep folder: sweep.json (the plan: base config hash, axes, runs, plan hash), one run
 * folder per run (named "axis=label,axis=label"), each with train.log (the child's
 * output) and sweep-status.json (written by the runner when the child ends), then
 * results.csv and summary.md.
 *
 * Errors: functions return EQM_OK or a negative status with the message in err. */
#ifndef EQM_SWEEP_H
#define EQM_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

#define SWEEP_MAX_KEYS 4

typedef struct sweep_axis {
    char *name;                    /* [axis.NAME] */
    int line;                      /* of its header */
    int n_keys;
    char *keys[SWEEP_MAX_KEYS];    /* "section.key" */
    int n_values;
    char **values;                 /* n_keys * n_values, values[k * n_values + v] */
    char **labels;                 /* n_values (names, else the first key's values) */
    int is_seed;                   /* key is run.seed */
    int is_range;                  /* range = LO, HI (with [sample]) */
    double lo, hi;
    int log_scale;
} sweep_axis;

typedef struct sweep_run {
    char *name;   /* folder name: "lambda=0.5,seed=1" */
    char *point;  /* the non-seed part: "lambda=0.5" ("all" without non-seed axes) */
    char *seed;   /* the seed axis label ("" without a seed axis) */
    int n_sets;
    char **sets;  /* "section.key=value" */
    char **labels; /* one per axis */
} sweep_run;

typedef struct sweep_plan {
    char *file;      /* the sweep file as given ("" when loaded from sweep.json) */
    char *base;      /* base config path as resolved */
    char *baseline;  /* "" = none */
    char *out;       /* [sweep] out, "" = default */
    int knn;
    int linear;      /* 0 off, 1 fast, 2 full */
    int sample_n;
    int64_t sample_seed;
    int n_fixed;
    char **fixed;    /* [set.SECTION] overrides, "section.key=value", first in every run */
    int n_axes;
    sweep_axis *axes;
    int n_runs;
    sweep_run *runs;
    uint64_t base_hash; /* FNV-1a of the resolved base config (comment lines left out) */
    uint64_t plan_hash; /* base hash + every run's name and --set list */
} sweep_plan;

/* Read and expand a sweep file; the base config is loaded and resolved against reg, each
 * axis key checked against it. Does not validate the runs (sweep_validate does). */
int sweep_plan_read(sweep_plan *p, const char *path, const eqm_registry *reg, char *err,
                    size_t errlen);
void sweep_plan_free(sweep_plan *p);
/* Resolve every run's config (base + its --set list); the first invalid one fails,
 * naming the run and the config error. */
int sweep_validate(const sweep_plan *p, const eqm_registry *reg, char *err, size_t errlen);
/* Write DIR/sweep.json, or check an existing one: a folder made from another plan is
 * refused (EQM_ERR_STATE) with what differs. */
int sweep_plan_bind_dir(const sweep_plan *p, const char *dir, char *err, size_t errlen);
/* Read the plan back from DIR/sweep.json (for --collect and report). */
int sweep_plan_load_json(sweep_plan *p, const char *dir, char *err, size_t errlen);
/* The default sweep folder of a plan: [sweep] out, else sweeps/<file stem>. */
void sweep_default_dir(const sweep_plan *p, char *buf, size_t n);

/* Run the plan in DIR (already bound): skip finished runs, resume interrupted ones, jobs
 * at once. exe = the equimod binary, plugin_dirs = --plugin-path list for the children.
 * Returns a process exit status: 0 all done, 1 some run failed, 130 interrupted. */
typedef struct sweep_run_opts {
    int jobs;
    int cores;        /* 0 = the CPUs this process may use */
    const char *exe;
    const char *const *plugin_dirs;
    int n_plugin_dirs;
} sweep_run_opts;
int sweep_execute(const sweep_plan *p, const char *dir, const sweep_run_opts *o);

/* results.csv and summary.md of DIR from its run folders. */
int sweep_collect(const sweep_plan *p, const char *dir, char *err, size_t errlen);

/* `equimod report`: one self-contained HTML file for a run folder or a sweep folder. */
int sweep_report_html(const char *dir, const char *out, char *err, size_t errlen);

/* One run folder's numbers (results.c); NaN where absent. */
typedef struct run_result {
    char status[16];     /* done, failed, interrupted, pending */
    int exit_code;
    double knn_top1, knn_top5, knn_n;
    char test_set[512];
    double linear_top1;
    double loss, loss_inv, loss_equi, equi_gain;
    double epochs, steps;
    double wall_s, img_s;
    double images_per_step, threads; /* the {"kind":"end"} record (NAN: older runs) */
    char cpu[256];       /* machine.json cpu_model ("" for older runs) */
    char last_log[512];  /* failed runs: the last log line */
} run_result;
void run_result_read(const char *run_dir, run_result *r);

/* Helpers shared by the sweep files. */
int sweep_json_get(const char *line, const char *key, double *v);

/* The step lines of a run's metrics.jsonl, one record per step index (a step logged twice
 * keeps its last line), with the values `names` asks for (NAN where absent); every kNN line
 * goes to on_knn (may be NULL). Returns the records (malloc'ed, *n of them; `present` says
 * which steps were logged), or NULL with *n = 0 when there is no file or no step. */
#define SWEEP_STEP_VALUES 8
typedef struct sweep_step {
    int present;
    double epoch, img_s, step_s, v[SWEEP_STEP_VALUES];
} sweep_step;
sweep_step *sweep_read_steps(const char *run_dir, const char *const *names, int n_names,
                             void (*on_knn)(const char *line, void *ud), void *ud, size_t *n);

#endif
