/* equimod SDK: the kind-specific operation tables (eqm_plugin_desc.ops).
 *
 * Every table begins with `uint32_t size` = sizeof(table) as compiled by the plugin. The
 * host copies min(size, sizeof) into a zeroed table, so a field the plugin does not know
 * reads as NULL/0 ("not implemented"); the host refuses a table smaller than its 1.0 size
 * or missing a function marked REQUIRED. APPEND ONLY.
 *
 * Lifecycle and ownership (all kinds): create/open receives the host api, the instance's
 * eqm_host, and `opts`, a pointer to the plugin's option struct (params_size bytes) that the
 * host filled from the config and that stays valid until destroy/close. The plugin keeps
 * its state behind `void *self`, allocated with api->alloc and released in destroy/close.
 * The host owns every tensor, image and batch it passes in; a plugin borrows them for the
 * duration of the call only. On failure a function records a message with api->set_error
 * and returns a negative eqm_status; create/open MUST leave nothing allocated on failure.
 * No plugin function may call exit(), abort() or write to stdout.
 *
 * Each callback below carries two notes, as LV2 documents its functions:
 *   Thread: "instantiation" callbacks (create/open, destroy/close, bind, init) are never
 *     called concurrently with any other callback of the same instance; "training"
 *     callbacks run on the one training thread, one at a time per instance; "concurrent"
 *     callbacks MAY run on several threads at once for the same instance (const self).
 *   Returns: the status codes the host expects (status.h); any other negative status is
 *     a failure reported with the message set through api->set_error.
 */
#ifndef EQM_SDK_KINDS_H
#define EQM_SDK_KINDS_H

#include <stddef.h>
#include <stdint.h>

#include "host_api.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ dataset ------ */

typedef struct eqm_dataset_info {
    uint32_t size;
    int64_t n_samples;        /* number of samples in the split; -1 if only streamable */
    int n_classes;
    const char *const *class_names; /* n_classes strings, owned by the instance */
    int w, h, c;              /* fixed image size, or 0 if it varies */
    float mean[3], std[3];    /* suggested normalisation constants */
    /* --- appended in 1.0 development: check info->size before writing --- */
    const char *desc;         /* one line: what was read ("cifar10 test: exact first 1,000
                                 (path)"), owned by the instance; NULL if none */
} eqm_dataset_info;

/* One grouped sample of a tar shard (WebDataset layout: members KEY.EXT sharing KEY).
 * Built by the host; borrowed by the plugin for one decode call. */
typedef struct eqm_raw_member {
    const char *ext;   /* extension after the key ("jpg", "cls"), lower case as stored */
    const void *data;  /* member bytes */
    size_t size;       /* bytes */
} eqm_raw_member;

typedef struct eqm_raw_sample {
    uint32_t size;                 /* sizeof(eqm_raw_sample) in the host */
    const char *key;               /* member path without its extension(s) */
    const char *shard;             /* path of the shard it came from (messages) */
    int64_t index;                 /* position in this epoch's stream (0-based) */
    int n_members;                 /* = number of stream_members extensions */
    const eqm_raw_member *members; /* (n_members), in stream_members order */
} eqm_raw_sample;

/* Where a streaming dataset's samples are and how to read them (eqm_dataset_ops.
 * stream_source). The host may override the reading options from its own config. */
enum eqm_stream_io { EQM_STREAM_IO_AUTO = 0, EQM_STREAM_IO_URING = 1, EQM_STREAM_IO_PREAD = 2 };
enum eqm_stream_on_bad { EQM_STREAM_BAD_SKIP = 0, EQM_STREAM_BAD_FAIL = 1 };
typedef struct eqm_stream_source {
    uint32_t size;           /* set by the caller */
    const char *shards;      /* "dir/train-{000000..001023}.tar" or "@list.txt" */
    int64_t n_samples;       /* samples per epoch if known (from an index file), else -1 */
    int64_t shuffle_buffer;  /* samples in the cross-shard shuffle buffer (0 = none) */
    int io;                  /* enum eqm_stream_io */
    int on_bad;              /* enum eqm_stream_on_bad */
} eqm_stream_source;

typedef struct eqm_dataset_ops {
    uint32_t size;
    /* REQUIRED. Open split `split` ("train" or "test").
     * Thread: instantiation. Returns: EQM_OK, or < 0 (EQM_ERR_NOTFOUND: no data files). */
    int (*open)(const eqm_host_api *api, eqm_host *host, const void *opts, const char *split,
                void **self);
    /* REQUIRED. Thread: instantiation. */
    void (*close)(void *self);
    /* REQUIRED. Fill *info (info->size is set by the caller).
     * Thread: instantiation (the owner thread, before any get/decode). Returns: EQM_OK, < 0. */
    int (*info)(const void *self, eqm_dataset_info *info);
    /* Random access (in-memory or indexed datasets). Write sample `index` into `img`, whose
     * data (caller-owned, img_capacity_bytes) the plugin fills as U8 HWC, setting w/h/c/
     * stride; *label gets the class. MAY be called concurrently from several threads on
     * the same instance. Returns EQM_OK, EQM_SKIP (bad sample, message set), EQM_GROW
     * (1.2; 1.1: EQM_ERR_NOMEM) with img->w/h/c set when the image does not fit, or < 0.
     * Buffer growth: on EQM_GROW the host grows the buffer to at least w*h*c bytes and
     * calls again with the same index; a loader worker's buffer starts at w*h*3 bytes of
     * info's size, or 256*256*3 when the size varies, and only grows.
     * Thread: concurrent. */
    int (*get)(const void *self, int64_t index, eqm_image *img, size_t img_capacity_bytes,
               int32_t *label);

    /* ---- appended in 1.0 development (issue 6): streaming datasets (tar shards) ----
     * A streaming dataset (info->n_samples = -1, get = NULL) names its shards and the
     * member extensions of a sample; the HOST reads the shards (io_uring/pread), parses
     * the tar stream, groups members by key, shuffles, and hands each sample to decode().
     * A plugin implementing streaming MUST set all three fields below. */

    /* Required member extensions of one sample, ';' separated, e.g. "jpg;cls" (static
     * string or owned by the plugin file). eqm_raw_sample.members follow this order. */
    const char *stream_members;
    /* Fill *src with the instance's shard list and reading options (strings owned by the
     * instance, valid until close). Called once after open, on the owner thread.
     * Thread: instantiation. Returns: EQM_OK, < 0. */
    int (*stream_source)(const void *self, eqm_stream_source *src);
    /* Turn one grouped sample into an image and a label. img->data is caller-owned
     * (img_capacity_bytes); the plugin writes U8 HWC and sets w/h/c/stride. scale_num
     * (1..8) asks for DCT-domain downscaling by scale_num/8 (8 = full size: the image is
     * ceil(W * scale_num / 8) x ceil(H * scale_num / 8)); *orig_w / *orig_h get the size of
     * the original image whatever the scale (crop records of t are in original pixels,
     * method-reference.md §4); orig_w and orig_h may be NULL (not wanted). If the image
     * does not fit, the plugin sets img->w/h/c to the needed size and returns EQM_GROW (the
     * caller grows its buffer and calls again); the loader first asks the size so, with
     * img_capacity_bytes = 0, and `equimod check` does too. MAY be called concurrently from
     * several threads on the same instance; `raw` is borrowed for the call. Returns EQM_OK,
     * EQM_SKIP (bad sample: corrupt JPEG, bad label; message set), EQM_GROW for a buffer
     * that is too small (1.2; a 1.1 plugin returns EQM_ERR_NOMEM, which the host still
     * reads as "grow"), or < 0. Thread: concurrent. */
    int (*decode)(const void *self, const eqm_raw_sample *raw, int scale_num, eqm_image *img,
                  size_t img_capacity_bytes, int32_t *label, int *orig_w, int *orig_h);

    /* ---- appended in 1.3 (issue 15; read only when the ops table's size covers it) ---- */
    /* Optional, random-access datasets whose images vary in size (info w = h = 0): write
     * the original (w, h) of samples 0, 1, ... up to `max` of them into wh[2*i], wh[2*i+1]
     * (from an index or the files' headers, api->image->image_header, without decoding).
     * The host draws t of [loader] t_standardize = estimate on these sizes (crop records
     * are in original pixels, method-reference.md §4); without it, it warns and uses
     * 256x256. Thread: instantiation. Returns: the number of sizes written (1..max), or
     * < 0 with a message. */
    int64_t (*image_sizes)(const void *self, int64_t max, int32_t *wh);
} eqm_dataset_ops;

/* ------------------------------------------------------------------ augment ------ */

/* Facts an augmentation may need when drawing its parameters. */
typedef struct eqm_augment_ctx {
    uint32_t size;
    int orig_w, orig_h; /* size of the original image, before any augmentation */
} eqm_augment_ctx;

typedef struct eqm_augment_ops {
    uint32_t size;
    /* REQUIRED. Thread: instantiation. Returns: EQM_OK, < 0 (EQM_ERR_INVAL: bad options). */
    int (*create)(const eqm_host_api *api, eqm_host *host, const void *opts, void **self);
    /* REQUIRED. Thread: instantiation. */
    void (*destroy)(void *self);
    /* REQUIRED. Length of this augmentation's record in t (method-reference.md §4); may be 0.
     * Thread: instantiation (the host asks once, after create). Returns: >= 0. */
    int (*n_params)(const void *self);
    /* REQUIRED when n_params > 0: short name of record field i ("crop_i", "flip", ...).
     * Thread: instantiation. Returns: a static string, never NULL for 0 <= i < n_params. */
    const char *(*param_name)(const void *self, int i);
    /* REQUIRED. Draw the random parameters for input `in` into p[0..n_params), writing the
     * neutral values when the augmentation is skipped. Uses only `rng` for randomness.
     * Runs concurrently on a const self. Thread: concurrent. Returns: EQM_OK, < 0. */
    int (*sample)(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                  const eqm_image *in, float *p);
    /* REQUIRED. Size and format of the output for input `in` (the host sizes buffers);
     * for the neutral record when out_shape_p (1.3) says it depends on the parameters.
     * Thread: concurrent (pure). Returns: EQM_OK, < 0 (an input it cannot take). */
    int (*out_shape)(const void *self, const eqm_image *in, int *w, int *h, int *c,
                     uint32_t *format);
    /* REQUIRED. Deterministic: apply parameters p to `in`, writing `out` (caller-owned,
     * dimensions from out_shape). `scratch` is caller-owned, scratch_bytes(in) long.
     * Runs concurrently on a const self. Thread: concurrent. Returns: EQM_OK, < 0. */
    int (*apply)(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                 void *scratch);
    /* Optional: bytes of scratch apply() needs for input `in` (NULL = 0).
     * Thread: concurrent (pure). */
    size_t (*scratch_bytes)(const void *self, const eqm_image *in);

    /* ---- appended in 1.1: downscaled sources (DCT-domain JPEG scaling, issue 6) ----
     * Optional, both or neither, for steps that resample a box of their input (crops,
     * resizes). When the FIRST step of a pipeline has them, the host may decode a JPEG at a
     * reduced scale M/8 (never below what keeps the box at least as large as the output)
     * and call apply_scaled on that smaller image instead of apply on the full one.
     * sample() and out_shape() are still called with the full-size input (a shape whose
     * data may be NULL), so t records stay in original pixels (method-reference.md §4). */
    /* Write the box (x, y, w, h; input pixels, fractional allowed) of an in_w x in_h input
     * that apply(p) reads. Pure. Returns EQM_OK or < 0. Thread: concurrent. */
    int (*source_box)(const void *self, const float *p, int in_w, int in_h, float box[4]);
    /* As apply, but `in` is the input scaled by (sx, sy) in (0, 1]: pixel (x, y) of the
     * image p was drawn for is at (x * sx, y * sy) of `in`. `out` has the size out_shape
     * gave for the full-size input; scratch is scratch_bytes(in) long (in = the scaled
     * image). The result approximates apply's on the full image (resampling of a
     * DCT-downscaled picture); with sx = sy = 1 it MUST equal apply's. Runs concurrently
     * on a const self. Returns EQM_OK or < 0 (message set). Thread: concurrent. */
    int (*apply_scaled)(const void *self, const float *p, const eqm_image *in, float sx,
                        float sy, eqm_image *out, void *scratch);

    /* ---- appended in 1.3 (issue 15; read only when the ops table's size covers it) ---- */
    /* Optional, for an augmentation whose output size depends on its parameters (a
     * 90-degree turn of a non-square image): the output of apply(p) on an input shaped like
     * `in` (data may be NULL). When set, the host sizes each sample's output with it after
     * sample() and passes that size to apply; out_shape then gives the shape for the
     * neutral record and is what the loader's build-time shape check uses (a pipeline's
     * final output must still be the same for every p: follow such a step with a resize or
     * crop). Thread: concurrent (pure). Returns: EQM_OK, < 0. */
    int (*out_shape_p)(const void *self, const float *p, const eqm_image *in, int *w, int *h,
                       int *c, uint32_t *format);
} eqm_augment_ops;

/* -------------------------------------------- backbone, method, equimod ------ */

/* What the host tells a module when creating it. */
typedef struct eqm_module_cfg {
    uint32_t size;
    int in_h, in_w, in_c; /* backbone: input image size */
    int in_dim;           /* method/equimod: width D of the backbone features h */
    int p_dim;            /* equimod: length P of t */
    int max_rows;         /* largest number of input rows per forward */
    /* ---- appended in 1.6: read only when size covers it (an older host's cfg ends
     * above, and means act_flags = 0) ---- */
    uint32_t act_flags;   /* enum eqm_act_flags */
} eqm_module_cfg;

/* eqm_module_cfg.act_flags (ABI 1.6). */
enum eqm_act_flags {
    EQM_ACT_BF16 = 1u << 0 /* the host runs this model at [train] precision = bf16 (conv and
                              linear products in bfloat16) and its nn table has the 1.6
                              ops: the module MAY keep the activations it saves for
                              backward as eqm_bf16 (nn.h: batchnorm_forward_store,
                              EQM_NN_IN_BF16), and size act_floats for that. Set for every
                              forward of the model, evaluation included, so a run's
                              features come from one storage format */
};

/* Tensor flags. */
enum eqm_tensor_flags {
    EQM_T_DECAY = 1u << 0,  /* weight decay and LARS adaptation apply (conv/linear weights) */
    EQM_T_BUFFER = 1u << 1, /* not trained, no gradient (BN running statistics) */
    EQM_T_EMA = 1u << 2     /* mirrored by the BYOL target network */
};

typedef struct eqm_tensor_info {
    const char *name; /* PyTorch-style dotted name ("layer1.0.conv1.weight"), owned by self */
    int ndim;
    int shape[4];     /* in the op layout (conv: C_out, kh, kw, C_in) */
    uint32_t flags;   /* enum eqm_tensor_flags */
} eqm_tensor_info;

/* Buffers the host lends a module for its lifetime (after bind). All pointer arrays have
 * n_tensors entries; each points into a host-owned, 64-byte-aligned flat buffer. */
typedef struct eqm_module_bind {
    uint32_t size;
    float *const *params;  /* values (trainable and buffers) */
    float *const *grads;   /* gradients; NULL entries for EQM_T_BUFFER tensors */
    float *const *target;  /* EMA target copy (EQM_T_EMA tensors, needs_target modules), else NULL entries; NULL array if unused */
    float *act;            /* act_floats(max_rows) floats of activation arena */
} eqm_module_bind;

#define EQM_MAX_METRICS 8
typedef struct eqm_metric {
    const char *name; /* static string owned by the plugin */
    double value;
} eqm_metric;

/* Inputs and outputs of one forward/backward. Per kind:
 *  backbone: in = images (rows, in_h, in_w, in_c) NHWC float; out = h (rows, D).
 *            backward: dout = dL/dh (rows, D); din = dL/dx (+=) or NULL.
 *            use_target = 1: run with the EMA target weights (forward only; BYOL).
 *  method:   in = h of the augmented views (rows = 2N: view 1 then view 2);
 *            in_target = target-network h of the same rows (needs_target only).
 *            forward sets loss; backward: din += loss_scale * dL/dh.
 *            With EQM_MODULE_EMBEDDING (1.3): train = 0 and out != NULL is the embedding
 *            forward, out = z (rows, out_dim), no loss (see eqm_module_flags).
 *  equimod:  in = h (rows = 3N: original, view 1, view 2); t = standardised t of the views
 *            (2N, P), view 1 then view 2. forward sets loss; backward: din += loss_scale*dL/dh.
 * forward may fill metrics[0..n_metrics). */
typedef struct eqm_module_io {
    uint32_t size;
    int rows;
    int train;             /* 1 = training mode (BN batch statistics, running update) */
    int use_target;
    const float *in;
    const float *in_target;
    const float *t;
    float *out;
    const float *dout;
    float *din;
    float loss_scale;
    double loss;
    int n_metrics;
    eqm_metric metrics[EQM_MAX_METRICS];
    /* ---- appended in 1.2 (read only when io->size covers it) ---- */
    int n_views; /* views stacked in `in`, N rows each: method 2 (view 1, view 2), equimod
                    3 (original, view 1, view 2), backbone 2 or 3; 0 from a 1.1 host */
} eqm_module_io;

enum eqm_module_flags {
    EQM_MODULE_NEEDS_TARGET = 1u << 0, /* method: host keeps an EMA target (BYOL) */
    /* method (appended in 1.3): an embedding forward is supported. Called with
     * io->train == 0 and io->out != NULL, forward writes the method's embedding z (the
     * projection head's output, rows x out_dim) of every row of io->in to io->out and
     * nothing else: no loss (io->loss = 0, no metrics), io->in_target not read, no BN
     * statistics updated (running statistics used), and no backward may follow. Used by
     * `equimod probe`. A method without the flag is never called this way. */
    EQM_MODULE_EMBEDDING = 1u << 1
};

/* Module lifecycle (backbone, method, equimod), all on one thread: create (max_rows = 0
 * when no forward will follow: `equimod export` builds backbones so), n_tensors and
 * tensor_info for each tensor (REQUIRED, the whole record filled), act_floats(max_rows),
 * bind, init; then per training step: backbone forward; for BYOL a backbone forward with
 * use_target = 1 (views 1 and 2, its own output) BEFORE the backbone's backward, so it must
 * leave the online activations intact; method forward, backward; equimod forward,
 * backward; backbone backward. backward gets the io of its forward: in, in_target, t and
 * out stay valid and unchanged until it returns. A backbone forward writes every one of
 * rows x out_dim outputs (the host presets them to NaN and refuses one left so); method
 * and equimod forwards set io->loss. Tensors flagged EQM_T_BUFFER | EQM_T_EMA (BN running
 * statistics) get the same EMA into their target copy as the weights. The SDK's author's
 * guide (README.md, section 5) has the details and the export naming rules. */
typedef struct eqm_module_ops {
    uint32_t size;
    /* REQUIRED. Thread: instantiation. Returns: EQM_OK, < 0 (EQM_ERR_INVAL: bad options or
     * sizes). */
    int (*create)(const eqm_host_api *api, eqm_host *host, const void *opts,
                  const eqm_module_cfg *cfg, void **self);
    /* REQUIRED. Thread: instantiation. */
    void (*destroy)(void *self);
    /* REQUIRED. Number of tensors and their descriptions, in a fixed order.
     * Thread: instantiation. Returns: n >= 0; tensor_info EQM_OK or < 0 (i out of range). */
    int (*n_tensors)(const void *self);
    int (*tensor_info)(const void *self, int i, eqm_tensor_info *info);
    /* REQUIRED. Floats of activation memory needed for `rows` input rows (forward + backward,
     * including op scratch); the host allocates it once. Thread: instantiation (pure). */
    size_t (*act_floats)(const void *self, int rows);
    /* REQUIRED. Take the buffers; called once before init/forward.
     * Thread: instantiation. Returns: EQM_OK, < 0. */
    int (*bind)(void *self, const eqm_module_bind *b);
    /* REQUIRED. Initialise parameters and buffers (torchvision/PyTorch defaults).
     * Thread: instantiation. Returns: EQM_OK, < 0. */
    int (*init)(void *self, eqm_rng *rng);
    /* REQUIRED. Thread: training. Returns: EQM_OK, < 0 (EQM_ERR_INVAL: rows above
     * max_rows; EQM_ERR_NUMERIC: a NaN/Inf it detected). */
    int (*forward)(void *self, eqm_module_io *io);
    /* REQUIRED. Uses the activations of the latest forward with the same rows.
     * Thread: training. Returns: EQM_OK, < 0 (EQM_ERR_STATE: no matching forward). */
    int (*backward)(void *self, eqm_module_io *io);
    /* REQUIRED for backbones: width D of h. Thread: instantiation (pure). Returns: D > 0. */
    int (*out_dim)(const void *self);
    uint32_t flags; /* enum eqm_module_flags */

    /* ---- appended in 1.2 ---- */
    /* Optional, methods with EQM_MODULE_NEEDS_TARGET: the momentum tau of the EMA target
     * used before step k (0-based) of a run of K steps: target <- tau*target +
     * (1-tau)*online. The method owns its schedule (BYOL: a cosine from its
     * option ema_base). A 1.1 method without it gets the host's default, BYOL's cosine
     * schedule from 0.996. Thread: training (pure). Returns: tau in [0, 1]. */
    double (*target_momentum)(const void *self, int64_t k, int64_t K);
} eqm_module_ops;

#ifdef __cplusplus
}
#endif

#endif
