/* host/train/run.h: what the pieces of `equimod train` share (internal to host/train/).
 *
 *   run.c       train_main: resolve, open, build, resume, loop, finish; the run folder
 *               and the checkpoint of the training state
 *   step.c      one training step (METHOD.md §6-9) on a batch read in place
 *   report.c    progress line, metrics.jsonl, loss.svg, report.md, online kNN
 *   trained.c   building the modules of a config; a trained backbone loaded back
 *   features.c  frozen features of a split; kNN of a model
 * Threading: the training thread only. Errors: EQM_OK or a negative eqm_status with one
 * line in err. */
#ifndef EQM_TRAIN_RUN_H
#define EQM_TRAIN_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "core.h"
#include "loader/loader.h"
#include "sections.h"
#include "train/optim.h"
#include "train/trainer.h"

/* The position and counters a checkpoint's "state" section holds (its bytes are the
 * struct: do not reorder). */
typedef struct train_state {
    int64_t step;        /* steps done */
    int64_t epoch;       /* current epoch (== epochs when the run is complete) */
    int64_t batch;       /* batches done in `epoch` */
    int64_t optim_steps; /* optimizer updates done */
    double elapsed_s;    /* training time so far */
    int64_t images;      /* images seen so far */
} train_state;

/* Per-epoch sums of every logged value (report.c), each as metrics.jsonl holds it. */
#define MAX_TERMS 16
typedef struct acc_terms {
    int n;
    const char *name[MAX_TERMS];
    double sum[MAX_TERMS];
    int64_t steps;
} acc_terms;

typedef struct trainer {
    eqm_config *cfg;
    const eqm_registry *reg;
    train_opts to;
    run_opts ro;
    optim_opts oo;
    eval_opts eo;
    char cfg_path[4096];
    char dir[4096];
    char *cfg_text;
    uint64_t hash;
    eqm_loader *ld;
    eqm_loader_info li;
    eqm_model m;
    void *opts[EQM_SLOT_COUNT];
    int use_equimod, byol;
    optim opt;
    train_state st;
    int64_t S, T, W; /* steps per epoch, total, warmup */
    float *h, *dh, *ht; /* backbone outputs, their gradients, BYOL target outputs */
    FILE *metrics;
    int tty;
    /* resumed mid-epoch: the sums of that epoch's steps before the checkpoint, rebuilt
     * from metrics.jsonl (report_resume_metrics), with the names they were logged under */
    acc_terms resume_acc;
    char resume_names[MAX_TERMS][64];
    int writer;         /* rank 0 (or the only process): writes the run folder and prints */
    struct dist_grad *dg; /* MPI: gradient averaging (dist/grad.h); NULL alone */
    int streaming;      /* the train split is a stream (shards): its end is agreed under MPI */
    /* MPI: per slot and tensor, whether its gradient was marked ready this step (step.c) */
    unsigned char *gmark[EQM_SLOT_COUNT];
} trainer;

/* MPI: sets api->grads_final's hook on every module's context (step.c). */
int step_grads_setup(trainer *tr, char *err, size_t errlen);


/* One step's values, as step.c hands them to the report. */
typedef struct step_log {
    double loss, l_inv, l_equi, lr, tau, dt, stall_ms;
    int rows;
    const eqm_module_io *method, *equimod; /* their metrics; equimod NULL when off */
} step_log;

double now_s(void);

/* step.c */
int train_step(trainer *tr, eqm_batch *b, acc_terms *acc, char *err, size_t errlen);

/* report.c */
void acc_add(acc_terms *a, const char *name, double v);
double acc_mean(const acc_terms *a, const char *name);
void report_step(trainer *tr, const step_log *s, acc_terms *acc);
void report_progress(trainer *tr, int64_t epoch, int64_t b, double loss, double lr,
                     int final_line);
void report_epoch(trainer *tr, const acc_terms *a, double epoch_s);
/* On resume, before metrics.jsonl is appended to: drops every line the interrupted process
 * wrote after the checkpoint it resumes from (they are written again), so the file equals
 * an uninterrupted run's, and rebuilds tr->resume_acc from the kept step lines of the
 * current epoch. A torn last line (killed mid-write) is dropped too. */
int report_resume_metrics(trainer *tr, char *err, size_t errlen);
int report_knn(trainer *tr, const char *what, eval_acc *a, char *err, size_t errlen);
/* The end of a finished run: the kNN ([eval] knn_at_end) and linear probe (linear_at_end)
 * with their lines, then the {"kind":"end"} record. wall_s: this process's wall time. */
int report_end(trainer *tr, double wall_s, char *err, size_t errlen);
double report_untrained_top1(const char *dir);
void report_final(trainer *tr, const acc_terms *last, double wall_s);
void report_svg(const char *dir);

/* machine.c: RUN/machine.json (the machine, the build, the threads; see the file), and
 * the same object for other writers. */
struct json_t;
struct json_t *machine_json(int threads, int workers, int ranks, int64_t images_per_step);
int machine_write(const char *dir, int threads, int workers, int ranks, int64_t images_per_step,
                  char *err, size_t errlen);

/* trained.c: backbone (+ method, + equimod) for images of h x w x c and t of p_dim
 * fields, sized for max_rows rows; parameters not initialised. opts[] get the bound
 * option structs (free_opts). */
int build_model(eqm_config *cfg, const eqm_registry *reg, int h, int w, int c, int p_dim,
                int with_method, int with_equimod, int max_rows, eqm_model *m,
                void *opts[EQM_SLOT_COUNT], char *err, size_t errlen);
void free_opts(void *opts[EQM_SLOT_COUNT]);
/* The "tensors" section text of a checkpoint (malloc'ed). */
char *tensor_table(const eqm_model *m);

#endif
