/* host/source/source.h: the sample sources the loader reads (host/loader/loader.h) and
 * the one rule for bad samples of a batch.
 *
 * Layers: host/shards (tar streams, JPEG services) < host/source (this: what a worker
 * reads, whatever the dataset's shape) < host/loader (pipelines, the batch ring) <
 * host/train. A source is built over a dataset plugin's bound [data] options by
 * dataset_source_open (random access: the plugin's get()) or shard_source_create
 * (streaming: stream_members/stream_source/decode over tar shards); loader_open picks.
 */
#ifndef EQM_HOST_SOURCE_H
#define EQM_HOST_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "shards/shards.h"

/* ------------------------------------------------------------- sample sources ---- */
/* What the workers read. Two shapes:
 *  random access (n_samples >= 0): get(ctx, index, img, cap, label) is called concurrently
 *      from the workers for any index in [0, n_samples); the loader shuffles indices.
 *  streaming (n_samples < 0): at each epoch the loader calls start_epoch(ctx, epoch); a
 *      worker that claims batch k calls next(ctx, &raw, &id) N times WHILE HOLDING the
 *      loader's source lock (so stream positions map to batches deterministically: batch k
 *      gets positions k*N .. k*N+N-1), then decode(ctx, raw, img, cap, label) outside the
 *      lock, concurrently with other workers; decode releases `raw` (except when it asks
 *      for a larger buffer, see below). next returns EQM_EOF at the end of the epoch (the
 *      batch is then partial or dropped). The augmentation randomness key of a streamed
 *      sample is its stream position in the epoch (k*N + row).
 *      Bad samples: decode may return EQM_SKIP for a sample the source found bad and has
 *      counted (corrupt JPEG, bad label; message through error(ctx) on the same thread).
 *      The loader then fills that row with the sample of the next good row of the SAME
 *      batch (cyclically: rows after the last good row take the first good row's), with
 *      the bad row's own augmentation key k*N + row and the substitute's label and
 *      sample id. The batch therefore depends only on its own N raw samples, and batches
 *      stay bit-identical whatever the number of workers. A batch whose samples are all
 *      bad is an error naming the last bad sample.
 *  get/decode write U8 HWC into img->data (caller-owned, cap bytes); if the image does not
 *  fit they return EQM_GROW after setting img->w/h/c to the needed size (source_grow: a
 *  1.1 dataset plugin's EQM_ERR_NOMEM means the same), and the worker grows its buffer
 *  and calls again. < 0 on failure, with the message readable
 *  through error(ctx) (on the failing thread: sources keep their messages per thread);
 *  EQM_SKIP from get() is treated as a failure (a silently short dataset is not allowed).
 *  image_sizes (optional, for sources whose image size varies: w = h = 0): writes the
 *  original (w, h) of up to `max` images the source serves first in epoch 0 into wh
 *  (2*max ints) and returns how many, or < 0 with error(ctx) set. It is called with
 *  sizes_ctx, not ctx, so that a wrapper replacing ctx (shard_source_pick) can pass
 *  both fields through unchanged. It may use the stream (start_epoch must follow before
 *  next) and is called on the owner thread when no epoch is being read. The loader's t
 *  estimate (loader_estimate_t) draws crops on these sizes.
 * The loader owns the source after a successful loader_create_source and calls destroy. */
typedef struct eqm_sample_source {
    void *ctx;
    int64_t n_samples;          /* >= 0 random access; < 0 streaming */
    int w, h, c;                /* fixed decoded size, or 0 if it varies */
    int n_classes;
    const char *const *class_names;
    const char *desc;           /* one line describing what is read (owned by ctx) */
    int (*get)(void *ctx, int64_t index, eqm_image *img, size_t cap, int32_t *label);
    int (*start_epoch)(void *ctx, int64_t epoch);
    int (*next)(void *ctx, void **raw, int64_t *id);
    int (*decode)(void *ctx, void *raw, eqm_image *img, size_t cap, int32_t *label);
    const char *(*error)(void *ctx);
    void (*destroy)(void *ctx);
    void *sizes_ctx;
    int64_t (*image_sizes)(void *sizes_ctx, int64_t max, int32_t *wh);
    /* Optional (streaming): decode() at DCT scale scale_num/8 (1, 2, 4 or 8; the image is
     * ceil(W * scale_num / 8) x ceil(H * scale_num / 8)); same contract as decode, and with
     * cap = 0 at scale 8 it reports the full size (EQM_GROW + img->w/h) without
     * releasing raw. The loader uses it when [loader] dct_scaling is on (see fill_batch). */
    int (*decode_scaled)(void *ctx, void *raw, int scale_num, eqm_image *img, size_t cap,
                         int32_t *label);
    /* Streaming: the samples of one epoch's stream as the dataset announces them (an
     * imagenet_tar index), for the schedule; <= 0: unknown. */
    int64_t stream_length;
    /* Optional (streaming): give back a raw sample from next() without decoding it (a
     * data-parallel slice skips the other ranks' samples of a global batch this way);
     * without it the loader decodes the sample to release it. Thread-safe. */
    void (*release)(void *ctx, void *raw);
} eqm_sample_source;

/* "Grow the buffer and call again" from a source or a dataset plugin: EQM_GROW (ABI 1.2),
 * or EQM_ERR_NOMEM with the needed size set, as 1.1 plugins say it (the caller checks the
 * size: a NOMEM without one is a real allocation failure). */
static inline int source_grow(int rc) { return rc == EQM_GROW || rc == EQM_ERR_NOMEM; }

/* ------------------------------------------------------------- bad rows -------- */
/* The substitution rule of a batch of n rows (both fill paths of the loader and
 * shard_source_pick follow it): the row `row` whose sample is bad takes the sample of the
 * first good row after it, cyclically (rows after the last good row take the first good
 * row's). good(ctx, r) says whether row r's sample is good: 1 yes, 0 bad, < 0 an error
 * (returned as is); it is called for r = row, row + 1, ... (mod n), each at most once
 * per call, so a caller may decode lazily in that order. *sub gets the row, or -1 when
 * all n rows are bad. Returns EQM_OK or good()'s error. */
int batch_substitute(int n, int row, int (*good)(void *ctx, int r), void *ctx, int *sub);

/* ------------------------------------------------------------- dataset source ---- */
/* A random-access source over a dataset plugin with get(): opens the instance for `split`
 * with `opts` (its bound option struct, kept by the caller until destroy) and fills *out
 * (n_samples >= 0). A dataset without get() is EQM_ERR_UNSUPPORTED (a streaming one:
 * shard_source_create). The source owns the instance (destroy closes it). Returns EQM_OK
 * or < 0 with err. */
int dataset_source_open(const eqm_plugin *plugin, const void *opts, const char *split,
                        eqm_sample_source *out, char *err, size_t errlen);

/* ------------------------------------------------------------- shard source ------ */
/* A streaming eqm_sample_source over a dataset plugin that
 * implements stream_members/stream_source/decode: opens the plugin instance for `split`
 * with `opts` (its bound option struct, kept by the caller until destroy), builds the
 * shard stream (seed, rank, world) and fills *out (n_samples < 0: streaming). decode()
 * decodes at full size (scale 8/8) so crop records stay in original pixels; a sample the
 * plugin reports as bad (EQM_SKIP: corrupt JPEG, bad .cls) is counted (one rate-limited
 * warning) and, under on_bad = skip, returned as EQM_SKIP: the loader fills its row with
 * the next good sample of the same batch (loader.h), so batches stay bit-identical
 * whatever the number of workers; under on_bad = fail it is an error naming the sample
 * and the fix. image_sizes (sizes_ctx = the source) lists the original sizes of the first
 * images of epoch 0 from their JPEG headers (for loader_estimate_t). Errors are per
 * calling thread (error(ctx) on the thread that failed). Returns EQM_OK or < 0 with err.
 * The source owns the instance (destroy closes it). */
int shard_source_create(const eqm_plugin *plugin, const void *opts, const char *split,
                        uint64_t seed, int rank, int world, eqm_sample_source *out,
                        char *err, size_t errlen);

/* Counters of the shard stream under a source from shard_source_create (bad_samples
 * includes the decode failures counted by its decode()). EQM_ERR_INVAL if src is not
 * such a source. Thread-safe. */
int shard_source_stats(const eqm_sample_source *src, shard_stream_stats *st);

/* One sample of a stream as a random-access source (for `equimod views`): starts epoch
 * `epoch` of the streaming source *src (from shard_source_create), pops the samples
 * before the batch that holds position `index` (batches of `batch_size` positions, as
 * training's [loader] batch_size) and releases them undecoded, then decodes sample
 * `index` (its position in the epoch, the key the loader gives a streamed sample's
 * augmentation randomness). If that sample is bad (on_bad = skip), the next good sample
 * of its batch, cyclically, is decoded instead, exactly as training substitutes it (a
 * warning names both). Fills *out with n_samples = index + 1 whose get() serves that one
 * index only (other indices are an error). Takes ownership of *src on success (out's
 * destroy destroys it), not on failure. Returns EQM_OK, or < 0 with err (EQM_ERR_INVAL:
 * the epoch has <= index samples; EQM_ERR_FORMAT: every sample of the batch is bad). */
int shard_source_pick(eqm_sample_source *src, int64_t epoch, int64_t index,
                      int64_t batch_size, eqm_sample_source *out, char *err,
                      size_t errlen);

#endif
