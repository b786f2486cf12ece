/* host/loader/internal.h: the loader's structures and what its files share (internal to
 * host/loader/; the contract is loader.h).
 *
 *   loader.c    creation (loader_open, loader_create*, the slot allocation), destroy, info
 *   options.c   the [loader] and [views] option tables (data only)
 *   pipeline.c  [views] pipelines of [augment.NAME] instances: build, shape, run, the DCT
 *               scale plan
 *   fill.c      a batch: reading samples, making rows, the bad-row substitution
 *   ring.c      the worker threads and the ring of batch slots; epochs, next, release
 *   tconst.c    t: the published standardisation constants (METHOD.md §4), estimation
 *   render.c    `equimod views` / `config`: one sample rendered, the t layout printed
 */
#ifndef EQM_LOADER_INTERNAL_H
#define EQM_LOADER_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "loader/loader.h"

#define MAX_STEPS 32
#define MAX_T 256

/* [loader] t_standardize (options.c's enum order). */
enum { TS_CIFAR_SIMCLR, TS_IMAGENET_SIMCLR, TS_BYOL_CIFAR, TS_BYOL_IMAGENET, TS_ESTIMATE, TS_NONE };
extern const char *const loader_ts_names[];

typedef struct aug_inst {
    const eqm_plugin *pl;
    void *self;
    eqm_host *host;
    void *opts;
    char section[128];
    int n_params;
    const char **t_names; /* (n_params) param_name(i), checked at creation (owned array) */
} aug_inst;

typedef struct pipeline {
    int n;
    aug_inst *steps[MAX_STEPS];
    int p;
    char key[32];
} pipeline;

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_LENT };

typedef struct slot {
    eqm_batch b;
    int state;
    int64_t k;
    uint64_t gen;
    int rc;
    char err[1024];
} slot;

typedef struct worker_mem {
    uint8_t *img;
    size_t img_cap;
    uint8_t *keep;     /* streaming: the batch's first good image (substitute of bad rows) */
    size_t keep_cap;
    uint8_t *buf[2];
    size_t buf_cap[2];
    void *scratch;
    size_t scratch_cap;
} worker_mem;

struct eqm_loader {
    const eqm_host_api *api;
    loader_cfg cfg;
    views_cfg vcfg;
    int mode;
    int64_t batch_size;  /* rows this loader makes per batch */
    int64_t batch_stride; /* samples per (global) batch in the epoch order: batch_size, or
                             batch_size x slice_count under a data-parallel slice */
    int64_t slice_off;    /* this slice's first row within a global batch */
    int drop_last, shuffle;
    int n_workers, n_slots;
    uint64_t seed;

    /* source (owned: destroyed with the loader, and the [data] options it was built
     * from, when loader_open bound them) */
    eqm_sample_source src;
    int own_src;
    void *ds_opts;
    char desc[1024];
    int64_t n_samples;
    int64_t limit; /* eqm_loader_opts.limit */

    /* pipelines: 0 = x0 (original or single view), 1, 2 */
    aug_inst insts[64];
    int n_insts;
    pipeline pipe[3];
    int n_pipes;
    int w, h, c, p;
    float t_mean[MAX_T], t_std[MAX_T];
    const char *t_names[MAX_T];
    /* [equimod] t_fields: the pipelines draw p_full fields (names t_names_full, view1's
     * layout); t keeps the p fields t_sel[0..p) of them, in pipeline order (all: p = p_full) */
    int p_full;
    int t_sel[MAX_T];
    const char *t_names_full[MAX_T];

    /* ring */
    slot *slots;
    pthread_t *threads;
    int started;
    pthread_mutex_t mu, stream_mu;
    pthread_cond_t cv;
    int stop;
    uint64_t gen;
    int64_t epoch;
    int64_t *order;
    int64_t n_epoch;    /* samples in this epoch (random access) */
    int64_t n_batches;  /* batches in this epoch (-1: streaming, until EOF) */
    int64_t claim, consume;
    int64_t stream_turn, stream_eof_at; /* streaming: next batch allowed to pull; batch at EOF */
    int scaling; /* streaming sources decoded at M/8 (dct_scaling and every view allows it) */
    int failed;
    int64_t fail_k;     /* smallest batch number that failed (batches before it are delivered) */
    char err[1024];

    eqm_loader_stats st;
};

/* How a decoded image relates to its original (streaming DCT scaling): the original is
 * W x H and the decoded image is it at scale M/8 (M = 8: full size). */
typedef struct src_geom {
    int W, H, M;
} src_geom;

/* pipeline.c */
int loader_setup(eqm_loader *l, eqm_config *cfg, const eqm_registry *reg,
                 const eqm_loader_opts *o, char *err, size_t n);
int pipe_shape(const pipeline *pp, int w, int h, int c, int *ow, int *oh, int *oc, char *err,
               size_t n);
void *grow_buf(void **p, size_t *cap, size_t need);
int pipe_run(eqm_loader *l, const pipeline *pp, worker_mem *m, const eqm_image *src,
             const src_geom *g, eqm_rng *r, float *tp, float *dst, eqm_image *u8_out, char *err,
             size_t n);
int pipe_sample_only(const eqm_loader *l, const pipeline *pp, int w, int h, int c, eqm_rng *r,
                     float *tp, char *err, size_t n);
int plan_scale(const eqm_loader *l, int64_t epoch, int64_t key0, int nk, int W, int H);

/* fill.c */
int read_sample(eqm_loader *l, worker_mem *m, int64_t index, void *raw, eqm_image *img,
                int32_t *label, char *err, size_t n);
int fill_batch(eqm_loader *l, worker_mem *m, slot *s, int64_t k, char *err, size_t n);
void worker_mem_free(worker_mem *m);

/* ring.c */
void stop_workers(eqm_loader *l);

/* tconst.c: l->t_mean/t_std from [loader] t_standardize */
int t_constants(eqm_loader *l, char *err, size_t n);
/* tconst.c: l->p, t_sel, t_names from [equimod] t_fields over the full layout (p_full,
 * t_names_full); errors name the config line and suggest the closest augmentation. */
int t_select(eqm_loader *l, eqm_config *cfg, char *err, size_t n);
/* The next blank- or comma-separated word of s into name (n bytes); NULL when none is left
 * (pipeline.c). */
const char *list_word(const char *s, char *name, size_t n);
/* tconst.c: the kept fields of a full t (p_full floats) into t (p floats). */
void t_gather(const eqm_loader *l, const float *full, float *t);

/* loader.c */
eqm_loader *loader_alloc(void);
void loader_free(eqm_loader *l);

#endif
