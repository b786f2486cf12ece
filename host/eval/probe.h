/* host/eval/probe.h: what a frozen representation keeps of the augmentation parameters t
 * (`equimod probe`, issue 12).
 *
 * Protocol (probe_run): images of a split (the test split by default, whose [data]
 * test_set the config names) go through the run's [views] view1 and view2 pipelines with
 * the loader (epoch 0, dataset order, randomness from [run] seed), so each image gives two
 * views and their raw t records. The frozen backbone (eval mode: BN running statistics)
 * gives h for every view, and the method's projection head (methods with
 * EQM_MODULE_EMBEDDING, eval mode) gives the embedding z = g(h). The images are split at
 * random (seeded) into fit / validation / test parts, 60 / 20 / 20 (both views of an image
 * in the same part). For each representation X (h or z) and each field group of t (the
 * fields one augmentation records, in the t layout: crop box, flip, jitter factors and
 * order, grayscale, ...):
 *   - X is standardised with the mean and standard deviation of the fit rows (a feature
 *     that is constant there is set to 0); every t field likewise (a field constant on the
 *     fit rows is left out: nothing to predict);
 *   - ridge regression Y = X W, W = (X'X + lambda n_fit I)^-1 X'Y, solved by our own
 *     Cholesky factorisation in double precision (X'X by BLAS dsyrk); lambda from the grid
 *     PROBE_LAMBDAS, chosen per group as the one with the best validation R^2 (ties: the
 *     larger lambda);
 *   - reported: R^2 on the test rows, 1 - sum(SSE) / sum(SST) over the group's fields
 *     (SST about the test rows' own mean; standardised fields, so each counts alike). 1 is
 *     a perfect linear read-out, 0 no better than the mean, below 0 worse.
 * "all" is the same sum over every field, each group at its own lambda.
 *
 * Threading: one thread (BLAS and the model use the host's compute threads).
 * Errors: EQM_OK or a negative eqm_status with one line in err. */
#ifndef EQM_EVAL_PROBE_H
#define EQM_EVAL_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"

#define PROBE_MAX_GROUPS 32
#define PROBE_N_LAMBDAS 9
extern const double PROBE_LAMBDAS[PROBE_N_LAMBDAS]; /* 1e-5 ... 1e3 */

/* Rows of the fit, validation and test parts (probe_fit_groups's `part`). */
enum { PROBE_FIT = 0, PROBE_VAL = 1, PROBE_TEST = 2 };

typedef struct probe_group {
    char name[128];   /* the augmentation's section, e.g. "augment.crop" */
    char plugin[64];  /* its plugin, e.g. "random_resized_crop" */
    int first, count; /* fields [first, first + count) of t */
} probe_group;

/* One representation's read-out of t. R^2 values are NAN where nothing varies. */
typedef struct probe_fit {
    double r2[PROBE_MAX_GROUPS];     /* test R^2 per group */
    double val_r2[PROBE_MAX_GROUPS]; /* validation R^2 at the chosen lambda */
    double lambda[PROBE_MAX_GROUPS]; /* chosen lambda (NAN: no varying field) */
    double r2_all;                   /* over every varying field */
    double *field_r2;                /* (P) test R^2 per field (malloc'ed) */
    int64_t n_fit, n_val, n_test;    /* rows */
    int d, d_used;                   /* features, and those not constant on the fit rows */
} probe_fit;

/* ---- the linear algebra (exposed for tests/probe) ---- */
/* In-place Cholesky A = L L' of a symmetric positive definite d x d matrix (row-major; the
 * lower triangle is read and overwritten with L, the strict upper one is left as is).
 * Returns 0, or k + 1 when the k-th pivot is not positive (A not positive definite). */
int probe_cholesky(double *A, int d);
/* Solve L L' X = B in place for k right-hand sides: B is d x k row-major. */
void probe_cholesky_solve(const double *L, int d, double *B, int k);
/* Ridge weights W (d x k) = (G + lam I)^-1 C for a Gram matrix G (d x d) and C = X'Y
 * (d x k). work: d * d doubles. Returns EQM_OK or EQM_ERR_NUMERIC (not positive
 * definite). */
int probe_ridge_solve(const double *G, const double *C, int d, int k, double lam, double *W,
                      double *work);

/* ---- the read-out ---- */
/* Fit and score the groups of t from features F (n x d) and raw targets T (n x P), with
 * each row's part in `part` (PROBE_FIT / _VAL / _TEST). out->field_r2 is allocated
 * (probe_fit_free). Fails when a part is empty (EQM_ERR_INVAL). */
int probe_fit_groups(const float *F, int64_t n, int d, const float *T, int P,
                     const probe_group *groups, int n_groups, const uint8_t *part,
                     probe_fit *out, char *err, size_t errlen);
void probe_fit_free(probe_fit *f);

/* ---- the command's work ---- */
typedef struct probe_opts {
    int64_t images;    /* images to read; <= 0: PROBE_DEFAULT_IMAGES */
    const char *split; /* "test" (default) or "train" */
    int batch;         /* images per forward (rows = 2 x batch); <= 0: 64 */
    uint64_t seed;     /* the fit/val/test assignment of images */
} probe_opts;
#define PROBE_DEFAULT_IMAGES 4000

typedef struct probe_report {
    char what[4200];        /* the model: its checkpoint, or "CONFIG (untrained ...)" */
    int64_t step;
    char method[64];        /* method plugin */
    int equimod;            /* [train] equimod of the run */
    char split[16];
    char *data_desc;        /* the loader's source description (malloc'ed) */
    int64_t images, fit_images, val_images, test_images;
    int P;
    char **field_names;     /* (P) malloc'ed */
    int *field_group;       /* (P) group of each field */
    probe_group groups[PROBE_MAX_GROUPS];
    int n_groups;
    probe_fit backbone;
    int has_embedding;      /* the method writes its embedding (EQM_MODULE_EMBEDDING) */
    probe_fit embedding;
    double extract_s, fit_s;
} probe_report;

/* The whole probe of a model source (a run folder, a checkpoint or a config; trainer.h
 * model_source_open) with `sets` applied to its config. */
int probe_run(const char *source, const eqm_registry *reg, char **sets, int n_sets,
              const probe_opts *o, probe_report *r, char *err, size_t errlen);
void probe_report_free(probe_report *r);

/* The short name of a group ("augment.crop" -> "crop"). */
const char *probe_group_label(const probe_group *g);
/* The result as a Markdown table with a short header (stdout and report.md). */
void probe_write_table(const probe_report *r, FILE *f);
/* probe.json (see `equimod probe --help` for the fields). */
int probe_write_json(const probe_report *r, const char *path, char *err, size_t errlen);

/* ---- probe.json read back (probe_out.c): `equimod report` and sweep summaries ---- */
typedef struct probe_summary {
    int n_groups;                          /* the t groups, then "all" */
    char group[PROBE_MAX_GROUPS + 1][64];
    double bb[PROBE_MAX_GROUPS + 1];       /* backbone R^2 (NAN: null) */
    double emb[PROBE_MAX_GROUPS + 1];      /* embedding R^2 (NAN: none) */
    int has_embedding;
    char method[64];
    int equimod;
    int64_t images;
    char split[16];
} probe_summary;
/* RUN/probe.json: EQM_OK, 1 when there is none, EQM_ERR_FORMAT when it cannot be read. */
int probe_json_read(const char *run_dir, probe_summary *s);
/* The run page's section (an HTML table, id "probe") when RUN/probe.json exists; returns 1
 * if written, 0 if there is no probe.json. */
int probe_html(FILE *f, const char *run_dir);
/* summary.md's section: probe R^2 per t group per point of the sweep (mean ± sd over the
 * runs that have a probe.json), backbone and embedding rows; 1 if written, 0 if no run of
 * the sweep has a probe.json. */
struct sweep_plan;
int probe_sweep_md(FILE *f, const struct sweep_plan *p, const char *dir);

#endif
