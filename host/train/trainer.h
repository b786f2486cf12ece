/* host/train/trainer.h: the training loop, the run folder, and loading a trained model
 * back (eval, features, export).
 *
 * Host config sections owned here (listed in host/sections.c):
 *   [train]  epochs, threads, equimod (on/off: the plain baseline is one --set away),
 *            max_samples (train on the first M samples only), max_steps (stop early, with a
 *            checkpoint, as if interrupted), checkpoint_every (epochs), checkpoint_steps,
 *            log_every (steps, for plain-line output), steps_per_epoch (streaming data)
 *   [optim]  name = lars|sgd, lr, momentum, weight_decay, eta, nesterov, warmup_epochs,
 *            warmup_start (factor), final_lr (cosine floor)
 *   [eval]   knn_k, knn_t, knn_every (epochs; 0 = off), knn_at_end, knn_baseline (also the
 *            untrained backbone), train_limit / test_limit (rows of the kNN bank / test
 *            set; 0 = all), batch, linear_* (the probe of METHOD.md §10)
 * The seed is [run] seed (host/sections.c). The method, equimod and backbone sections are plugin sections ([backbone], [method],
 * [equimod]); the data sections belong to the loader (host/loader/loader.h).
 *
 * One training step (METHOD.md §6-9), N = batch rows, D = backbone width:
 *   BYOL: target <- tau*target + (1-tau)*online on every EMA tensor (before the forward)
 *   x = [x0; x1; x2] (3N rows) with EquiMod, else [x1; x2] (2N): one backbone forward (BN
 *   batch statistics shared by all rows) -> h
 *   BYOL: target backbone forward on the 2N views -> h_target (io.in_target of the method)
 *   method forward on h[views] -> L_inv; equimod forward on h (3N) + standardised t ->
 *   lambda*L_equi; backward of both into dh; backbone backward; optimizer step with the
 *   per-step warmup-cosine lr.
 *
 * The run folder (see docs in trainer.c): config.ini (resolved), metrics.jsonl,
 * checkpoint.last/.prev, report.md, loss.svg, train.log is NOT written (stderr is).
 * Resuming (--resume, or automatic when the folder holds a checkpoint) continues bit for
 * bit: the state is params (BN running statistics included), the BYOL target, the
 * optimizer's buffers and step count, and the position (epoch, batch); the loader's
 * randomness is a function of (seed, epoch, sample, view), so the remaining batches of an
 * interrupted epoch are found by skipping the batches already done.
 *
 * Threading: training thread only; SIGINT/SIGTERM handlers only set a flag.
 * Errors: functions return EQM_OK or a negative eqm_status with one line in err. */
#ifndef EQM_TRAIN_TRAINER_H
#define EQM_TRAIN_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "train/eval.h"
#include "train/model.h"

typedef struct train_opts {
    int64_t epochs;
    int64_t threads;
    int equimod;
    int64_t max_samples;
    int64_t max_steps;
    int64_t checkpoint_every;
    int64_t checkpoint_steps;
    int64_t log_every;
    int64_t steps_per_epoch;
    int sync_bn;                 /* MPI: SyncBN (batch statistics of the global batch) */
    int grad_overlap;            /* MPI: 0 thread, 1 test, 2 none (dist/grad.h) */
    int64_t grad_bucket_mb;      /* MPI: gradient all-reduce bucket size */
    int64_t check_params_every;  /* MPI: compare parameters over ranks every K steps */
    int precision;               /* 0 fp32, 1 bf16 (nn_precision_set around each step) */
} train_opts;

typedef struct optim_opts {
    int name; /* 0 lars, 1 sgd */
    double lr, momentum, weight_decay, eta;
    int nesterov;
    double warmup_epochs, warmup_start, final_lr;
} optim_opts;

typedef struct eval_opts {
    int64_t knn_k;
    double knn_t;
    int64_t knn_every;
    int knn_at_end;
    int knn_baseline;
    int64_t train_limit, test_limit;
    int64_t batch;
    int64_t linear_epochs;
    double linear_lr, linear_final_lr, linear_momentum, linear_wd;
    int linear_nesterov;
    int64_t linear_batch;
    int linear_at_end; /* 0 off, 1 fast, 2 full (the METHOD.md §10 protocol) */
} eval_opts;

extern const eqm_param_spec train_section_spec[];
extern const size_t train_section_size;
extern const eqm_param_spec optim_section_spec[];
extern const size_t optim_section_size;
extern const eqm_param_spec eval_section_spec[];
extern const size_t eval_section_size;

/* `equimod train` in a function: config path (or a run folder holding config.ini), the
 * --set assignments, the run folder (NULL: [run] out_dir/name or runs/<config stem>),
 * resume (1 = --resume: refuse to start from scratch). Returns a process exit status
 * (0 done, 1 error, 130 interrupted by a signal after saving a checkpoint). */
int train_main(const char *config, char **sets, int n_sets, const char *out_dir, int resume);

/* The SOURCE of a command that takes a model (eval, features, export): a run folder
 * (RUN/config.ini and RUN/checkpoint.last, else .prev), a checkpoint file (its embedded
 * config), or a config file (*.ini without the checkpoint magic: the untrained model, the
 * initialisation of [run] seed, as training starts from it). cfg: loaded, `sets` applied
 * (owned); ckpt: the checkpoint read ("" for a config); step/epoch: its position. */
typedef struct model_source {
    eqm_config *cfg;
    char ckpt[4096];
    int64_t step, epoch;
} model_source;
int model_source_open(model_source *ms, const char *source, char **sets, int n_sets, char *err,
                      size_t errlen);
void model_source_close(model_source *ms);

/* A trained backbone, loaded from a model source (above; a config gives the untrained
 * initialisation). The model holds the backbone
 * only, sized for `max_rows` rows per forward. cfg is the run's resolved config (owned:
 * config_destroy). BN running statistics come with the parameters. `sets` are --set
 * assignments applied to the run's config before anything is built (e.g. eval.*). */
typedef struct trained {
    eqm_config *cfg;
    eqm_model model;
    void *backbone_opts;
    char source[4096];  /* the checkpoint file that was read ("" for a config) */
    char what[4200];    /* for messages: the checkpoint, or "CONFIG (untrained, seed S)" */
    int64_t step, epoch;
} trained;
/* equimod config: every plugin of a resolved config created with its options as train
 * creates them (the [views] augmentations when with_views, then backbone, method, EquiMod
 * for view 1's output shape; no data read), so a config that train would refuse for a
 * plugin's own option check is refused here too. */
int config_check_plugins(eqm_config *cfg, const eqm_registry *reg, int with_views, char *err,
                         size_t errlen);

int trained_load(trained *t, const char *source, const eqm_registry *reg, int max_rows,
                 char **sets, int n_sets, char *err, size_t errlen);
void trained_free(trained *t);

/* Copy the tensors of slot `slot` of a checkpoint (the "tensors" + "params" sections, by
 * name) into a model whose modules match. Used by trained_load and export. */
int train_restore_slot(eqm_model *m, int slot, const char *ckpt_path, char *err, size_t errlen);

/* Frozen backbone features of a split in dataset order (eval mode; pipeline `view` of
 * [views], e.g. "eval_test"). *feat (n, D), *labels (n) malloc'ed; *desc gets the
 * loader's source description (malloc'ed). limit > 0: first `limit` samples. */
int extract_features(eqm_model *m, eqm_config *cfg, const eqm_registry *reg,
                     const char *split, const char *view, int64_t limit, int batch,
                     float **feat, int32_t **labels, int64_t *n, int *n_classes, char **desc,
                     char *err, size_t errlen);

/* kNN of a model: bank = train split (eval_test view), queries = test split. */
int knn_of_model(eqm_model *m, eqm_config *cfg, const eqm_registry *reg,
                 const eval_opts *eo, eval_acc *acc, char **test_desc, char *err,
                 size_t errlen);

/* The linear probe of a model (host/train/linear.c): fast = 1 trains on cached
 * un-augmented train features, 0 the METHOD.md §10 protocol (eval_train view, features
 * recomputed every epoch); top-1/top-5 on the test split in *acc, the last epoch's mean
 * train loss in *loss, the test set's description in *test_desc (malloc'ed), one line for
 * the report in `line`. Prints the protocol's epochs on stderr. */
int linear_of_model(eqm_model *m, eqm_config *cfg, const eqm_registry *reg, const eval_opts *eo,
                    int fast, eval_acc *acc, double *loss, char **test_desc, char *line,
                    size_t line_len, char *err, size_t errlen);

/* Append a section to RUN/report.md (creates it). */
int report_append(const char *run_dir, const char *text);

#endif
