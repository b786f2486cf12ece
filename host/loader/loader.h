/* host/loader/loader.h: the batch queue that turns a dataset and per-view augmentation
 * pipelines into ready-to-train batches of three views plus their parameter vectors t.
 *
 * Config (sections bound by the loader; host sections "loader" and "views"):
 *   [data]           plugin = cifar10 (or any dataset plugin) + its options
 *   [run]            seed: the base seed of every shuffle and augmentation stream
 *   [loader]         batch_size, workers, prefetch, drop_last, shuffle,
 *                    t_standardize = cifar_simclr|imagenet_simclr|byol_cifar|byol_imagenet|
 *                                    estimate|none, t_estimate_samples
 *   [views]          view1 = names of [augment.NAME] sections, in order (space separated)
 *                    view2 = same for view 2; original = pipeline of the original view x0
 *                    (e.g. "norm"); eval_train / eval_test = pipelines used by the
 *                    single-view evaluation mode (e.g. "lin_crop flip norm", "resize36 center32 norm")
 *   [equimod]        t_fields = names of [augment.NAME] sections of view1/view2 whose
 *                    records t keeps (e.g. "crop", "jitter gray"; default/"all": every one);
 *                    the others still augment, their fields are dropped from t (and from
 *                    the standardisation constants, which follow the kept fields). A host
 *                    key of the plugin section (config_bind_plugin skips it for the plugin).
 *   [augment.NAME]   plugin = random_resized_crop|horizontal_flip|color_jitter|grayscale|
 *                    gaussian_blur|solarize|resize|center_crop|normalize + its options
 * Every pipeline must end with an augmentation whose out_shape is F32 (normalize), and all
 * pipelines of one loader must produce the same (h, w, c). view1 and view2 must have the
 * same t layout (same field names in the same order): t1 and t2 share standardisation.
 *
 * Dimension legend: N = rows of a batch (batch_size, or fewer in a kept last batch),
 * H, W, C = view height/width/channels (NHWC, channels last, float), P = length of t.
 *
 * Determinism: the randomness of sample s (dataset index) in epoch e, view v (1 or 2) is a
 * stream api->rng_seed(r, seed, e, s, v); the epoch order is a Fisher-Yates shuffle of a
 * stream seeded with (seed, e, 0xffff..., 0). Batches are therefore bit-for-bit identical
 * whatever the number of workers (tests/data/check_loader proves it with memcmp).
 *
 * Threading: one consumer thread calls loader_next/loader_release/loader_start_epoch;
 * `workers` threads fill a bounded ring of (prefetch + 2) preallocated batch slots. All
 * other functions are for the consumer thread too, except loader_standardize_t,
 * loader_t_dim and loader_t_name which are pure reads and thread-safe.
 * Ownership: batches are owned by the loader and lent to the consumer from loader_next until
 * loader_release (no copy). Pointers inside an eqm_batch are valid while it is lent.
 * Errors: functions return EQM_OK or a negative eqm_status and then loader_error() holds a
 * message naming the file/section/sample. A worker's error is returned by loader_next.
 *
 * Sample sources: the loader reads samples through an eqm_sample_source
 * (source/source.h). loader_open binds [data] once and builds the source itself: over a
 * dataset plugin's random-access get(), or over tar shards for a streaming dataset
 * (ImageNet); the loader owns it. loader_create_source takes a caller-built one (tests).
 *
 * Left out on purpose: per-sample variable output sizes (all views of a loader have one
 * size), multi-process loading, GPU-side augmentation.
 */
#ifndef EQM_HOST_LOADER_H
#define EQM_HOST_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"
#include "source/source.h"

/* One batch. x0 = original view, x1/x2 = augmented views: each (N, H, W, C) float,
 * normalised by the pipeline's last step, back to back in one block: x1 = x0 + N*H*W*C,
 * x2 = x1 + N*H*W*C, so x0 is the (3N, H, W, C) input of a step with EquiMod and x1 the
 * (2N, H, W, C) input without. t1/t2: (N, P) RAW t of views 1 and 2 (t2 = t1 + N*P);
 * t: (2N, P) the same standardised ([loader] t_standardize) by the worker, view 1 then
 * view 2, as the equivariance module takes it. In single-view mode (EQM_LOADER_SINGLE)
 * only x0, labels and sample_ids are set; x1, x2, t1, t2, t are NULL and p = 0. */
typedef struct eqm_batch {
    int n;                 /* rows in this batch */
    int64_t epoch;         /* epoch it belongs to */
    int64_t index;         /* batch number within the epoch, 0-based */
    int w, h, c;           /* view size */
    int p;                 /* length of t */
    float *x0, *x1, *x2;   /* (n, h, w, c) */
    float *t1, *t2;        /* (n, p) raw */
    float *t;              /* (2n, p) standardised: t1 then t2 */
    int32_t *labels;       /* (n) class of each row */
    int64_t *sample_ids;   /* (n) dataset index (or stream position) of each row */
} eqm_batch;

enum eqm_loader_mode {
    EQM_LOADER_VIEWS = 0,  /* pre-training: x0, x1, x2, t1, t2 */
    EQM_LOADER_SINGLE = 1  /* evaluation: x0 only, made by pipeline `single_view` */
};

/* Overrides of the [loader] section for one loader; zero-initialise and set what you need.
 * A field left at 0 (or NULL, or -1 where stated) takes the config value. */
typedef struct eqm_loader_opts {
    int mode;                /* enum eqm_loader_mode */
    const char *single_view; /* SINGLE mode: key of [views] to use: "original" (default),
                                "eval_train" or "eval_test" */
    int batch_size;          /* 0 = config */
    int workers;             /* 0 = config */
    int prefetch;            /* 0 = config */
    int shuffle_set;         /* 1: use `shuffle` below instead of the config */
    int shuffle;             /* 0 = dataset order, 1 = shuffled per epoch */
    int drop_last_set;       /* 1: use `drop_last` below instead of the config */
    int drop_last;           /* 0 = keep the last partial batch, 1 = drop it */
    int64_t limit;           /* > 0: use only the first `limit` samples of the split */
    int pick_set;            /* 1: `equimod views` of a streaming dataset: the source is the
                                one sample at position pick_index of epoch pick_epoch's
                                stream, substituted as training does (shard_source_pick) */
    int64_t pick_epoch, pick_index;
    /* Data-parallel slice (issue 13): slice_count > 1 ranks share each batch of
     * batch_size rows (the GLOBAL batch); this loader makes rows [slice_rank * b,
     * (slice_rank + 1) * b) of every global batch, b = batch_size / slice_count, from the
     * same per-epoch order as one loader would, so a row's sample and augmentation (keyed by
     * the sample) do not depend on the number of ranks. A streaming source is read whole
     * by every slice, which decodes only its rows (host/loader/fill.c); drop_last must then
     * be on. batch_size must be a multiple of slice_count and, random access, drop_last on
     * or the epoch a multiple of batch_size. batch_size in eqm_loader_info is then b
     * (stream_batches counts global batches). 0 = the whole batch. */
    int slice_rank, slice_count;
} eqm_loader_opts;

/* Facts about a built loader. */
typedef struct eqm_loader_info {
    int64_t n_samples;        /* samples per epoch (after limit); -1 if streaming/unknown */
    int64_t batches_per_epoch;/* -1 if unknown */
    int batch_size;
    int w, h, c, p;
    int n_classes;
    const char *const *class_names; /* owned by the dataset instance */
    const char *source_desc;  /* e.g. "cifar10 test: exact first 1,000 (test_batch_first1000.bin.gz)" */
    const char *t_standardize;/* name of the standardisation in use */
    int64_t stream_samples;   /* streaming: samples per epoch the dataset announces (its
                                 index; after limit), -1 unknown; random access: -1 */
    int64_t stream_batches;   /* the batches they make (drop_last), -1 unknown */
} eqm_loader_info;

/* Counters since creation (loader_stats copies them field by field: add new ones there).
 * stall_ns: time the consumer waited in loader_next for a batch
 * that was not ready yet (the trainer is input-bound if this grows). */
typedef struct eqm_loader_stats {
    int64_t batches, samples;
    uint64_t stall_ns;        /* consumer wait in loader_next */
    uint64_t work_ns;         /* summed worker wall time spent producing batches */
    uint64_t work_cpu_ns;     /* summed worker CPU time (CLOCK_THREAD_CPUTIME_ID) for them */
    int64_t decoded_at[4];    /* streaming: samples decoded at DCT scale 1/8, 2/8, 4/8, 8/8 */
} eqm_loader_stats;

typedef struct eqm_loader eqm_loader;

/* ------------------------------------------------------------- lifecycle --------- */
/* Build a loader for `split` ("train" or "test") of the [data] section of cfg, with the
 * pipelines of [views] and the settings of [loader] (o may be NULL). Binds every section it
 * reads once (so config_check_unused sees them as used), builds the sample source (random
 * access or streaming, see above) and the augmentation instances, allocates the ring and
 * starts no thread yet (loader_start_epoch does). Every command opens its data this way.
 * Returns EQM_OK and *out, or a negative status with a message in err. */
int loader_open(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg, const char *split,
                const eqm_loader_opts *o, char *err, size_t errlen);
/* The same (its older name). */
int loader_create(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg,
                  const char *split, const eqm_loader_opts *o, char *err, size_t errlen);
/* Same over a caller-built source (streaming datasets). Takes ownership of *src on
 * success (the struct is copied) and not on failure. */
int loader_create_source(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg,
                         const eqm_sample_source *src, const eqm_loader_opts *o, char *err,
                         size_t errlen);
/* Stops the workers (mid-epoch is fine: they finish the sample in hand) and frees all. */
void loader_destroy(eqm_loader *l);

/* Begin epoch `epoch` (any integer; a new epoch abandons what is left of the previous one).
 * Starts the workers on first use. Returns EQM_OK or < 0. */
int loader_start_epoch(eqm_loader *l, int64_t epoch);
/* Next batch of the epoch in order: EQM_OK and *b (lent until loader_release), EQM_EOF
 * after the last batch, or < 0 if a worker failed (loader_error says why; the loader is
 * then unusable except for destroy). Blocks while the batch is being produced. */
int loader_next(eqm_loader *l, eqm_batch **b);
/* Give a batch back (in any order); its slot is refilled. */
void loader_release(eqm_loader *l, eqm_batch *b);

const char *loader_error(const eqm_loader *l);
void loader_info(const eqm_loader *l, eqm_loader_info *info);
void loader_stats(const eqm_loader *l, eqm_loader_stats *s);

/* ------------------------------------------------------------- t ----------------- */
/* Length of t and the name of field i ("crop_i", "jitter_order0", ...), from the plugins'
 * param_name, in pipeline order (the view1 layout; only the fields [equimod] t_fields keeps). */
int loader_t_dim(const eqm_loader *l);
const char *loader_t_name(const eqm_loader *l, int i);
/* The augmentation that records field i of t: its config section ("augment.crop") and,
 * in *plugin when not NULL, its plugin name ("random_resized_crop"); NULL if i is out of
 * range. Fields of one augmentation are contiguous (equimod probe groups t by it). */
const char *loader_t_group(const eqm_loader *l, int i, const char **plugin);
/* t_std[k] = (t_raw[k] - mean[k % P]) / std[k % P] for n rows of P values (n*P floats;
 * t_raw == t_std allowed). Constants: [loader] t_standardize. With "none" it copies. */
void loader_standardize_t(const eqm_loader *l, const float *t_raw, float *t_std, int n);
/* The constants in use (P floats each; owned by the loader). */
const float *loader_t_mean(const eqm_loader *l);
const float *loader_t_std(const eqm_loader *l);

/* Print the t layout of cfg's view1 (and view2 if different: an error) as lines
 * "t[k] name  (augment.SECTION plugin)" for `equimod config`. Opens the augmentation
 * instances but no dataset. Returns EQM_OK or < 0 (message printed to f as a line
 * starting with "error:"). */
int loader_describe_t(eqm_config *cfg, const eqm_registry *reg, FILE *f);
/* The augmentation plugins of [views] created as training creates them (no data opened):
 * view 1's output shape for a 256x256 RGB input, and the t length. For `equimod config`. */
int loader_view_shape(eqm_config *cfg, const eqm_registry *reg, int *w, int *h, int *c, int *p,
                      char *err, size_t n);

/* Estimate t standardisation constants by drawing `n` parameter vectors of view1 and of
 * view2 with sample() only (no pixels touched), seeded with `seed`. Image sizes: the
 * source's fixed size; for a variable-size source with image_sizes (streaming ImageNet
 * shards: crop records are in original pixels, METHOD.md 4) the sizes of the first
 * min(n, 2000) images of epoch 0, cycled through for the n draws; a variable-size source
 * without it falls back to 256x256 with a warning. mean/std: P floats each (caller-owned,
 * P = loader_t_dim). std of a constant field is reported as 1. Consumer thread, before
 * loader_start_epoch or between epochs (it may read the stream). */
int loader_estimate_t(eqm_loader *l, int64_t n, uint64_t seed, float *mean, float *std);

/* ------------------------------------------------------------- inspection -------- */
/* Produce the views of dataset sample `index` in `epoch` synchronously (no worker), for
 * `equimod views`. u8[0..3): original, view 1, view 2 as U8 images BEFORE the pipelines'
 * final normalisation (data malloc'ed by the loader; free with free()); t1, t2: P floats
 * each (caller-owned). Returns EQM_OK or < 0. Random-access sources only. */
int loader_render_sample(eqm_loader *l, int64_t epoch, int64_t index, eqm_image u8[3],
                         float *t1, float *t2, int32_t *label);

/* The host sections the loader owns (for host/sections.c): option structs and tables. */
typedef struct loader_cfg {
    int64_t batch_size, workers, prefetch;
    int drop_last, shuffle;
    int t_standardize; /* cifar_simclr|imagenet_simclr|byol_cifar|byol_imagenet|estimate|none */
    int64_t t_estimate_samples;
    int dct_scaling; /* streaming JPEG sources: decode at M/8 when every view allows it */
} loader_cfg;
typedef struct views_cfg {
    const char *view1, *view2, *original, *eval_train, *eval_test;
} views_cfg;
extern const eqm_param_spec loader_section_spec[];
extern const size_t loader_section_size;
extern const eqm_param_spec views_section_spec[];
extern const size_t views_section_size;

#endif
