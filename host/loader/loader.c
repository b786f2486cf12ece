/* host/loader/loader.c: the batch queue (see loader.h for the contract).
 *
 * Structure: a loader owns the dataset instance (through an eqm_sample_source), one
 * augmentation instance per [augment.NAME] section used by its pipelines (shared by the
 * pipelines and the workers: apply/sample run on a const self), a ring of S = prefetch + 2
 * batch slots and `workers` threads.
 * Ring protocol (all under l->mu): batch k of the current epoch generation goes to slot
 * k % S. A worker claims the next batch number only when that slot is FREE, marks it
 * FILLING, fills it without the lock, then marks it READY (or records an error). The
 * consumer waits for slot k % S to be READY with batch k, marks it LENT; release makes it
 * FREE. start_epoch bumps the generation: READY slots of the old epoch are freed, FILLING
 * ones are freed by their worker when it finishes, LENT ones when released.
 * Per-worker memory (decode buffer, two 8-bit ping-pong images, scratch) grows to the
 * largest size seen and is then reused: no per-sample allocation in steady state.
 *
 * Left out: work stealing inside a batch (one worker fills a whole batch), NUMA placement.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loader.h"
#include "sections.h"

#define MAX_STEPS 32
#define MAX_T 256

/* ------------------------------------------------------------- config sections --- */


enum { TS_CIFAR_SIMCLR, TS_IMAGENET_SIMCLR, TS_BYOL_CIFAR, TS_BYOL_IMAGENET, TS_ESTIMATE, TS_NONE };
static const char *const ts_names[] = {"cifar_simclr", "imagenet_simclr", "byol_cifar",
                                       "byol_imagenet", "estimate", "none"};

const eqm_param_spec loader_section_spec[] = {
    {"batch_size", EQM_PARAM_INT, offsetof(loader_cfg, batch_size), "256", 1, 1 << 20, NULL,
     "images per batch"},
    {"workers", EQM_PARAM_INT, offsetof(loader_cfg, workers), "0", 0, 256, NULL,
     "loader threads; 0 = number of online CPUs (at most 8)"},
    {"prefetch", EQM_PARAM_INT, offsetof(loader_cfg, prefetch), "2", 0, 64, NULL,
     "batches produced ahead; the ring has prefetch + 2 slots"},
    {"drop_last", EQM_PARAM_BOOL, offsetof(loader_cfg, drop_last), "true", 0, 0, NULL,
     "drop the last partial batch of an epoch"},
    {"shuffle", EQM_PARAM_BOOL, offsetof(loader_cfg, shuffle), "true", 0, 0, NULL,
     "shuffle the sample order every epoch"},
    {"t_standardize", EQM_PARAM_ENUM, offsetof(loader_cfg, t_standardize), "cifar_simclr", 0, 0,
     "cifar_simclr|imagenet_simclr|byol_cifar|byol_imagenet|estimate|none",
     "t standardisation: published constants (METHOD.md 4), Monte Carlo estimate, or none"},
    {"t_estimate_samples", EQM_PARAM_INT, offsetof(loader_cfg, t_estimate_samples), "100000",
     100, 1e9, NULL, "parameter vectors drawn per view when t_standardize = estimate"},
    {"dct_scaling", EQM_PARAM_BOOL, offsetof(loader_cfg, dct_scaling), "true", 0, 0, NULL,
     "streaming JPEG datasets: decode at 1/8, 1/4 or 1/2 size when the first step of every "
     "view (random_resized_crop, resize) still gets at least its output size from it; false: "
     "full-size decode (bit-exact with torchvision on PIL)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};
const size_t loader_section_size = sizeof(loader_cfg);


const eqm_param_spec views_section_spec[] = {
    {"view1", EQM_PARAM_STRING, offsetof(views_cfg, view1), NULL, 0, 0, NULL,
     "[augment.NAME] sections of view 1, in order (e.g. crop flip jitter gray norm)"},
    {"view2", EQM_PARAM_STRING, offsetof(views_cfg, view2), NULL, 0, 0, NULL,
     "[augment.NAME] sections of view 2, in order"},
    {"original", EQM_PARAM_STRING, offsetof(views_cfg, original), NULL, 0, 0, NULL,
     "preprocessing of the original view x0 (e.g. norm; ImageNet: resize256 center224 norm)"},
    {"eval_train", EQM_PARAM_STRING, offsetof(views_cfg, eval_train), NULL, 0, 0, NULL,
     "linear-eval training pipeline (e.g. lin_crop flip norm)"},
    {"eval_test", EQM_PARAM_STRING, offsetof(views_cfg, eval_test), NULL, 0, 0, NULL,
     "evaluation pipeline (CIFAR: resize36 center32 norm)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};
const size_t views_section_size = sizeof(views_cfg);

/* Published constants (METHOD.md §4). */
static const char *const layout_base[15] = {"crop_i", "crop_j", "crop_h", "crop_w", "flip",
                                            "jitter", "order0", "order1", "order2", "order3",
                                            "brightness", "contrast", "saturation", "hue", "gray"};
static const float cifar_mean[15] = {4.3122f, 4.3216f, 23.369f, 23.374f, 0.49998f, 0.80087f,
                                     1.2025f, 1.4007f, 1.5964f, 1.8004f, 0.99993f, 1.0002f,
                                     0.99986f, 2.2321e-07f, 0.19965f};
static const float cifar_std[15] = {3.9740f, 3.9851f, 4.9544f, 4.9539f, 0.5000f, 0.3993f,
                                    1.1651f, 1.0210f, 1.0200f, 1.1669f, 0.2066f, 0.2068f,
                                    0.2066f, 0.0517f, 0.3997f};
static const float inet_mean[17] = {68.162f, 99.199f, 269.33f, 274.57f, 0.49905f, 0.80054f,
                                    1.1998f, 1.3994f, 1.6014f, 1.7995f, 1.0001f, 1.0000f,
                                    1.0005f, 1.5640e-04f, 0.20018f, 0.50030f, 0.52507f};
static const float inet_std[17] = {77.370f, 98.681f, 136.86f, 143.49f, 0.5000f, 0.39959f,
                                   1.1661f, 1.0201f, 1.0201f, 1.1657f, 0.41347f, 0.41323f,
                                   0.41349f, 0.10333f, 0.40013f, 0.5000f, 0.65251f};
static const float byol_mean[3] = {0.27256f, 0.52507f, 0.050149f};
static const float byol_std[3] = {0.30381f, 0.65251f, 0.064719f};

/* ------------------------------------------------------------- structures -------- */

typedef struct aug_inst {
    const eqm_plugin *pl;
    void *self;
    eqm_host *host;
    void *opts;
    char section[128];
    int n_params;
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
    int64_t batch_size;
    int drop_last, shuffle;
    int n_workers, n_slots;
    uint64_t seed;

    /* source */
    eqm_sample_source src;
    int own_src;
    const eqm_plugin *ds_plugin;
    void *ds_self;
    eqm_host *ds_host;
    void *ds_opts;
    char desc[1024];
    int64_t n_samples;

    /* pipelines: 0 = x0 (original or single view), 1, 2 */
    aug_inst insts[64];
    int n_insts;
    pipeline pipe[3];
    int n_pipes;
    int w, h, c, p;
    float t_mean[MAX_T], t_std[MAX_T];
    const char *t_names[MAX_T];

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

static int set_err(char *err, size_t n, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_err(char *err, size_t n, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && n)
        vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return rc;
}

/* ------------------------------------------------------------- dataset source ---- */

typedef struct ds_ctx {
    const eqm_plugin *pl;
    void *self;
    eqm_host *host;
} ds_ctx;

static int ds_get(void *ctx, int64_t index, eqm_image *img, size_t cap, int32_t *label)
{
    ds_ctx *d = ctx;
    return d->pl->ops.dataset.get(d->self, index, img, cap, label);
}

static const char *ds_error(void *ctx)
{
    ds_ctx *d = ctx;
    return host_ctx_error(d->host);
}

/* ------------------------------------------------------------- pipelines --------- */

static aug_inst *inst_get(eqm_loader *l, eqm_config *cfg, const eqm_registry *reg,
                          const char *name, char *err, size_t n, int *rc)
{
    char section[128];
    if ((size_t)snprintf(section, sizeof section, "augment.%s", name) >= sizeof section) {
        *rc = set_err(err, n, EQM_ERR_INVAL, "[views]: section name '%s' too long", name);
        return NULL;
    }
    for (int i = 0; i < l->n_insts; i++)
        if (!strcmp(l->insts[i].section, section))
            return &l->insts[i];
    if (l->n_insts >= (int)(sizeof l->insts / sizeof l->insts[0])) {
        *rc = set_err(err, n, EQM_ERR_INVAL, "[views]: too many augmentation sections");
        return NULL;
    }
    if (!config_has_section(cfg, section)) {
        *rc = set_err(err, n, EQM_ERR_NOTFOUND,
                      "[views] names '%s' but the config has no section [%s]; add it with "
                      "plugin = random_resized_crop|horizontal_flip|color_jitter|grayscale|"
                      "gaussian_blur|solarize|resize|center_crop|normalize",
                      name, section);
        return NULL;
    }
    aug_inst *a = &l->insts[l->n_insts];
    memset(a, 0, sizeof *a);
    snprintf(a->section, sizeof a->section, "%s", section);
    *rc = config_bind_plugin(cfg, reg, section, EQM_KIND_AUGMENT, &a->pl, &a->opts, err, n);
    if (*rc)
        return NULL;
    char label[160];
    snprintf(label, sizeof label, "augment/%s", name);
    a->host = host_ctx_create(label);
    if (!a->host) {
        free(a->opts);
        *rc = set_err(err, n, EQM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    *rc = a->pl->ops.augment.create(l->api, a->host, a->opts, &a->self);
    if (*rc) {
        set_err(err, n, *rc, "[%s] (%s): %s", section, a->pl->desc.name, host_ctx_error(a->host));
        host_ctx_destroy(a->host);
        free(a->opts);
        return NULL;
    }
    a->n_params = a->pl->ops.augment.n_params(a->self);
    if (a->n_params < 0 || a->n_params > MAX_T) {
        a->pl->ops.augment.destroy(a->self);
        host_ctx_destroy(a->host);
        free(a->opts);
        *rc = set_err(err, n, EQM_ERR_INVAL, "[%s]: n_params %d out of range", section, a->n_params);
        return NULL;
    }
    l->n_insts++;
    return a;
}

static int pipe_build(eqm_loader *l, eqm_config *cfg, const eqm_registry *reg, pipeline *pp,
                      const char *key, const char *text, char *err, size_t n)
{
    memset(pp, 0, sizeof *pp);
    snprintf(pp->key, sizeof pp->key, "%s", key);
    if (!text || !text[0])
        return set_err(err, n, EQM_ERR_INVAL,
                       "[views] %s is empty: list the [augment.NAME] sections of this view in "
                       "order, ending with a normalize step (e.g. %s = %s)", key, key,
                       !strcmp(key, "original") ? "norm" : "crop flip jitter gray norm");
    const char *s = text;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        if (!*s)
            break;
        const char *e = s;
        while (*e && *e != ' ' && *e != '\t' && *e != ',')
            e++;
        char name[96];
        size_t len = (size_t)(e - s) < sizeof name - 1 ? (size_t)(e - s) : sizeof name - 1;
        memcpy(name, s, len);
        name[len] = 0;
        s = e;
        if (pp->n >= MAX_STEPS)
            return set_err(err, n, EQM_ERR_INVAL, "[views] %s: more than %d steps", key, MAX_STEPS);
        int rc = 0;
        aug_inst *a = inst_get(l, cfg, reg, name, err, n, &rc);
        if (!a)
            return rc;
        pp->steps[pp->n++] = a;
        pp->p += a->n_params;
    }
    if (pp->p > MAX_T)
        return set_err(err, n, EQM_ERR_INVAL, "[views] %s: t has more than %d fields", key, MAX_T);
    return EQM_OK;
}

/* Output shape of a pipeline for an input of w x h x c; checks the F32 step is last. */
static int pipe_shape(const pipeline *pp, int w, int h, int c, int *ow, int *oh, int *oc,
                      char *err, size_t n)
{
    eqm_image im = {w, h, c, w * c, EQM_PIX_U8, NULL};
    for (int i = 0; i < pp->n; i++) {
        const aug_inst *a = pp->steps[i];
        int nw, nh, nc;
        uint32_t f;
        if (im.format != EQM_PIX_U8)
            return set_err(err, n, EQM_ERR_INVAL,
                           "[views] %s: step '%s' comes after the float conversion; the "
                           "normalize step must be last", pp->key, a->section + 8);
        int rc = a->pl->ops.augment.out_shape(a->self, &im, &nw, &nh, &nc, &f);
        if (rc)
            return set_err(err, n, rc, "[%s]: out_shape: %s", a->section, host_ctx_error(a->host));
        im.w = nw;
        im.h = nh;
        im.c = nc;
        im.format = f;
        im.stride = nw * nc;
    }
    if (im.format != EQM_PIX_F32)
        return set_err(err, n, EQM_ERR_INVAL,
                       "[views] %s must end with a step producing float images (plugin = "
                       "normalize)", pp->key);
    *ow = im.w;
    *oh = im.h;
    *oc = im.c;
    return EQM_OK;
}

static void *grow_buf(void **p, size_t *cap, size_t need)
{
    if (need <= *cap && *p)
        return *p;
    size_t nc = need + need / 4 + 256;
    void *q = NULL;
    if (posix_memalign(&q, 64, nc))
        return NULL;
    free(*p);
    *p = q;
    *cap = nc;
    return q;
}

/* Run pipeline pp on `src` with stream r, writing t to tp (pp->p floats). If dst != NULL the
 * final F32 step writes dst (packed h*w*c); if u8_out != NULL the pipeline stops before the
 * F32 step and the last 8-bit image is returned there (pointing into mem). */
/* How a decoded image relates to its original (streaming DCT scaling): the original is
 * W x H and the decoded image is it at scale M/8 (M = 8: full size). */
typedef struct src_geom {
    int W, H, M;
} src_geom;

static int pipe_run(eqm_loader *l, const pipeline *pp, worker_mem *m, const eqm_image *src,
                    const src_geom *g, eqm_rng *r, float *tp, float *dst, eqm_image *u8_out,
                    char *err, size_t n)
{
    eqm_image cur = *src;
    const int W0 = g ? g->W : src->w, H0 = g ? g->H : src->h;
    eqm_augment_ctx ctx = {sizeof(eqm_augment_ctx), W0, H0};
    int which = 0, off = 0;
    for (int i = 0; i < pp->n; i++) {
        const aug_inst *a = pp->steps[i];
        const eqm_augment_ops *ops = &a->pl->ops.augment;
        /* a downscaled source: the first step draws and sizes for the original (t stays in
         * original pixels) and resamples the smaller image (apply_scaled, ABI 1.1) */
        const int scaled = i == 0 && g && g->M < 8;
        eqm_image full = cur;
        if (scaled) {
            full.w = W0;
            full.h = H0;
            full.stride = W0 * cur.c;
            full.data = NULL;
        }
        int rc = ops->sample(a->self, r, &ctx, scaled ? &full : &cur, tp + off);
        if (rc)
            return set_err(err, n, rc, "[%s]: sample: %s", a->section, host_ctx_error(a->host));
        int w, h, c;
        uint32_t f;
        rc = ops->out_shape(a->self, scaled ? &full : &cur, &w, &h, &c, &f);
        if (rc)
            return set_err(err, n, rc, "[%s]: out_shape: %s", a->section, host_ctx_error(a->host));
        eqm_image out = {w, h, c, w * c, f, NULL};
        if (f == EQM_PIX_F32) {
            if (u8_out) {
                *u8_out = cur;
                return EQM_OK;
            }
            if (w != l->w || h != l->h || c != l->c)
                return set_err(err, n, EQM_ERR_FORMAT,
                               "[views] %s produced %dx%dx%d, the batch holds %dx%dx%d", pp->key, w,
                               h, c, l->w, l->h, l->c);
            out.data = dst;
        } else {
            /* pick the ping-pong buffer the current image is not in */
            if (cur.data == m->buf[which])
                which ^= 1;
            size_t need = (size_t)w * h * c;
            if (!grow_buf((void **)&m->buf[which], &m->buf_cap[which], need))
                return set_err(err, n, EQM_ERR_NOMEM, "out of memory");
            out.data = m->buf[which];
        }
        size_t sb = ops->scratch_bytes ? ops->scratch_bytes(a->self, &cur) : 0;
        if (sb && !grow_buf(&m->scratch, &m->scratch_cap, sb))
            return set_err(err, n, EQM_ERR_NOMEM, "out of memory");
        rc = scaled ? ops->apply_scaled(a->self, tp + off, &cur, (float)g->M / 8.0f,
                                        (float)g->M / 8.0f, &out, m->scratch)
                    : ops->apply(a->self, tp + off, &cur, &out, m->scratch);
        if (rc)
            return set_err(err, n, rc, "[%s]: apply: %s", a->section, host_ctx_error(a->host));
        off += a->n_params;
        cur = out;
    }
    if (u8_out)
        *u8_out = cur;
    return EQM_OK;
}

/* The DCT scale M/8 (M = 1, 2, 4 or 8) from which every view of the rows with keys
 * [key0, key0 + nk) of `epoch` can be made out of a W x H original: each view's first step
 * reads a box (source_box) that must keep at least its output size once scaled. Draws the
 * first steps' parameters with the rows' own streams, as pipe_run will again. */
static int plan_scale(const eqm_loader *l, int64_t epoch, int64_t key0, int nk, int W, int H)
{
    float p[MAX_T];
    eqm_image full = {W, H, 3, W * 3, EQM_PIX_U8, NULL};
    eqm_augment_ctx ctx = {sizeof(eqm_augment_ctx), W, H};
    int M = 1;
    for (int kk = 0; kk < nk; kk++)
        for (int v = 0; v < l->n_pipes; v++) {
            const aug_inst *a = l->pipe[v].steps[0];
            const eqm_augment_ops *ops = &a->pl->ops.augment;
            eqm_rng r;
            l->api->rng_seed(&r, l->seed, (uint64_t)epoch, (uint64_t)(key0 + kk), (uint64_t)v);
            float box[4];
            int ow, oh, oc;
            uint32_t f;
            if (ops->sample(a->self, &r, &ctx, &full, p) ||
                ops->out_shape(a->self, &full, &ow, &oh, &oc, &f) ||
                ops->source_box(a->self, p, W, H, box))
                return 8; /* pipe_run reports the error */
            int need = 8;
            for (int s = 1; s < 8; s *= 2)
                if (box[2] * (float)s / 8.0f >= (float)ow && box[3] * (float)s / 8.0f >= (float)oh) {
                    need = s;
                    break;
                }
            M = need > M ? need : M;
            if (M == 8)
                return 8;
        }
    return M;
}

/* Read one sample into m->img (growing it as needed). With g (streaming, l->scaling): the
 * original size is read first (decode_scaled at 8/8 with no room), plan_scale picks M for
 * the rows [plan_key0, plan_key0 + plan_nk) the image will serve, and the sample is decoded
 * at M/8; *g says so. */
static int read_sample_g(eqm_loader *l, worker_mem *m, int64_t index, void *raw, eqm_image *img,
                         int32_t *label, src_geom *g, int64_t epoch, int64_t plan_key0,
                         int plan_nk, char *err, size_t n)
{
    int M = 8;
    if (g && raw && l->scaling) {
        uint8_t none[4];
        memset(img, 0, sizeof *img);
        img->data = none;
        img->format = EQM_PIX_U8;
        int rc = l->src.decode_scaled(l->src.ctx, raw, 8, img, 0, label);
        if (rc == EQM_ERR_NOMEM && img->w > 0 && img->h > 0) {
            g->W = img->w;
            g->H = img->h;
            M = plan_scale(l, epoch, plan_key0, plan_nk, img->w, img->h);
        } else if (rc == EQM_SKIP) {
            return EQM_SKIP; /* a bad streamed sample (counted, released): substituted */
        } else {
            return set_err(err, n, rc < 0 ? rc : EQM_ERR_FORMAT, "%s: sample %lld: %s", l->desc,
                           (long long)index,
                           rc ? (l->src.error ? l->src.error(l->src.ctx) : "read failed")
                              : "decode_scaled wrote pixels into no room");
        }
    }
    if (g) {
        g->M = M;
        __atomic_fetch_add(&l->st.decoded_at[M == 8 ? 3 : M == 4 ? 2 : M == 2 ? 1 : 0], 1,
                           __ATOMIC_RELAXED);
    }
    for (int tries = 0; tries < 3; tries++) {
        if (!m->img && !grow_buf((void **)&m->img, &m->img_cap,
                                 (size_t)(l->src.w ? l->src.w : 256) * (l->src.h ? l->src.h : 256) * 3))
            return set_err(err, n, EQM_ERR_NOMEM, "out of memory");
        memset(img, 0, sizeof *img);
        img->data = m->img;
        img->format = EQM_PIX_U8;
        int rc = raw ? (M < 8 ? l->src.decode_scaled(l->src.ctx, raw, M, img, m->img_cap, label)
                              : l->src.decode(l->src.ctx, raw, img, m->img_cap, label))
                     : l->src.get(l->src.ctx, index, img, m->img_cap, label);
        if (rc == EQM_ERR_NOMEM && img->w > 0 && img->h > 0 && img->c > 0 &&
            (size_t)img->w * img->h * img->c > m->img_cap) {
            if (!grow_buf((void **)&m->img, &m->img_cap, (size_t)img->w * img->h * img->c))
                return set_err(err, n, EQM_ERR_NOMEM, "out of memory");
            raw = raw; /* decode is retried with the same raw sample */
            continue;
        }
        if (rc == EQM_SKIP && raw)
            return EQM_SKIP; /* a bad streamed sample (counted, released): substituted */
        if (rc)
            return set_err(err, n, rc < 0 ? rc : EQM_ERR_FORMAT, "%s: sample %lld: %s", l->desc,
                           (long long)index, l->src.error ? l->src.error(l->src.ctx) : "read failed");
        if (img->format != EQM_PIX_U8 || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
            return set_err(err, n, EQM_ERR_FORMAT, "%s: sample %lld: not an 8-bit 1/3-channel image",
                           l->desc, (long long)index);
        return EQM_OK;
    }
    return set_err(err, n, EQM_ERR_NOMEM, "%s: sample %lld: buffer growth failed", l->desc,
                   (long long)index);
}

static int read_sample(eqm_loader *l, worker_mem *m, int64_t index, void *raw, eqm_image *img,
                       int32_t *label, char *err, size_t n)
{
    return read_sample_g(l, m, index, raw, img, label, NULL, 0, 0, 0, err, n);
}

/* Produce row `row` of batch b for sample key `key` (dataset index or stream position);
 * g: the image is a downscaled original (NULL: it is the original). */
static int make_row(eqm_loader *l, worker_mem *m, eqm_batch *b, int row, int64_t key,
                    const eqm_image *img, const src_geom *g, char *err, size_t n)
{
    size_t vs = (size_t)l->w * l->h * l->c;
    float tbuf[MAX_T];
    for (int v = 0; v < l->n_pipes; v++) {
        eqm_rng r;
        l->api->rng_seed(&r, l->seed, (uint64_t)b->epoch, (uint64_t)key, (uint64_t)v);
        float *dst = (v == 0 ? b->x0 : v == 1 ? b->x1 : b->x2) + vs * row;
        float *tp = v == 0 ? tbuf : (v == 1 ? b->t1 : b->t2) + (size_t)l->p * row;
        int rc = pipe_run(l, &l->pipe[v], m, img, g, &r, tp, dst, NULL, err, n);
        if (rc)
            return rc;
    }
    return EQM_OK;
}

static int fill_batch(eqm_loader *l, worker_mem *m, slot *s, int64_t k, char *err, size_t n)
{
    eqm_batch *b = &s->b; /* b->epoch was set at claim time */
    b->index = k;
    if (l->src.n_samples >= 0) {
        int64_t start = k * l->batch_size, end = start + l->batch_size;
        if (end > l->n_epoch)
            end = l->n_epoch;
        b->n = (int)(end - start);
        for (int row = 0; row < b->n; row++) {
            int64_t idx = l->order[start + row];
            eqm_image img;
            int32_t label;
            int rc = read_sample(l, m, idx, NULL, &img, &label, err, n);
            if (rc)
                return rc;
            if (l->src.n_classes > 0 && (label < 0 || label >= l->src.n_classes))
                return set_err(err, n, EQM_ERR_FORMAT, "%s: sample %lld has label %d, expected 0..%d",
                               l->desc, (long long)idx, label, l->src.n_classes - 1);
            b->labels[row] = label;
            b->sample_ids[row] = idx;
            rc = make_row(l, m, b, row, idx, &img, NULL, err, n);
            if (rc)
                return rc;
        }
        return EQM_OK;
    }
    /* streaming: take our turn at the stream, pull batch_size raw samples in order */
    void **raws = calloc((size_t)l->batch_size, sizeof(void *));
    int64_t *ids = calloc((size_t)l->batch_size, sizeof(int64_t));
    if (!raws || !ids) {
        free(raws);
        free(ids);
        return set_err(err, n, EQM_ERR_NOMEM, "out of memory");
    }
    int got = 0, rc = EQM_OK;
    pthread_mutex_lock(&l->mu);
    while (l->stream_turn != k && !l->stop && !l->failed && s->gen == l->gen)
        pthread_cond_wait(&l->cv, &l->mu);
    int skip = l->stop || l->failed || s->gen != l->gen || l->stream_turn != k ||
               (l->stream_eof_at >= 0 && k >= l->stream_eof_at);
    if (skip && l->stream_turn == k && s->gen == l->gen) {
        l->stream_turn = k + 1; /* past the end: let the next batch see it too */
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    int hit_eof = 0;
    if (!skip) {
        while (got < l->batch_size) {
            int64_t id = -1;
            rc = l->src.next(l->src.ctx, &raws[got], &id);
            if (rc == EQM_EOF) {
                rc = EQM_OK;
                hit_eof = 1;
                break;
            }
            if (rc) {
                rc = set_err(err, n, rc < 0 ? rc : EQM_ERR_FORMAT, "%s: %s", l->desc,
                             l->src.error ? l->src.error(l->src.ctx) : "next failed");
                break;
            }
            ids[got++] = id;
        }
        pthread_mutex_lock(&l->mu);
        if (hit_eof && (l->stream_eof_at < 0 || l->stream_eof_at > k + 1))
            l->stream_eof_at = k + 1;
        l->stream_turn = k + 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    b->n = got;
    /* a partial last batch that drop_last throws away is only released (decode releases) */
    int dropped = hit_eof && l->drop_last && got < l->batch_size;
    /* Bad rows (decode says EQM_SKIP) take the sample of the next good row of this batch,
     * cyclically, with their own augmentation key: bad rows before a good row are made
     * from its image right after it; bad rows after the last good row from the first
     * good row's image, kept aside in m->keep. So the batch is a function of its own raw
     * samples only, whatever worker makes it. */
    int first_good = -1, pend = -1; /* pend: first row of the bad run before the next good */
    int32_t keep_label = -1;
    eqm_image keep_img;
    memset(&keep_img, 0, sizeof keep_img);
    src_geom keep_g = {0, 0, 8};
    char bad_what[512] = "";
    for (int row = 0; row < got; row++) {
        if (rc || dropped) { /* only release the remaining raws: decode frees them */
            eqm_image img;
            int32_t lab;
            read_sample(l, m, ids[row], raws[row], &img, &lab, NULL, 0);
            continue;
        }
        eqm_image img;
        int32_t label;
        src_geom g = {0, 0, 8};
        /* the image serves this row and the bad rows pending before it */
        rc = read_sample_g(l, m, ids[row], raws[row], &img, &label, &g, b->epoch,
                           k * l->batch_size + (pend >= 0 ? pend : row),
                           row - (pend >= 0 ? pend : row) + 1, err, n);
        if (rc == EQM_SKIP) {
            rc = EQM_OK;
            snprintf(bad_what, sizeof bad_what, "%s",
                     l->src.error ? l->src.error(l->src.ctx) : "bad sample");
            if (pend < 0)
                pend = row;
            continue;
        }
        if (rc)
            continue;
        if (l->src.n_classes > 0 && (label < 0 || label >= l->src.n_classes)) {
            rc = set_err(err, n, EQM_ERR_FORMAT, "%s: stream position %lld has label %d, "
                         "expected 0..%d", l->desc, (long long)ids[row], label,
                         l->src.n_classes - 1);
            continue;
        }
        int r0 = pend >= 0 ? pend : row;
        for (int r = r0; r <= row && !rc; r++) {
            b->labels[r] = label;
            b->sample_ids[r] = ids[row];
            rc = make_row(l, m, b, r, k * l->batch_size + r, &img, g.M < 8 ? &g : NULL, err, n);
        }
        pend = -1;
        if (first_good < 0 && !rc) {
            /* keep this image for trailing bad rows: swap it out of the decode buffer */
            first_good = row;
            uint8_t *tb = m->keep;
            size_t tc = m->keep_cap;
            m->keep = m->img;
            m->keep_cap = m->img_cap;
            m->img = tb;
            m->img_cap = tc;
            keep_img = img; /* img.data points into what is now m->keep */
            keep_g = g;
            keep_label = label;
        }
    }
    if (!rc && !dropped && pend >= 0) {
        if (first_good < 0)
            rc = set_err(err, n, EQM_ERR_FORMAT,
                         "%s: batch %lld of epoch %lld: all %d samples are bad (the last: "
                         "%s); check the shards, or use a larger batch_size",
                         l->desc, (long long)k, (long long)b->epoch, got, bad_what);
        for (int r = pend; r < got && !rc; r++) {
            b->labels[r] = keep_label;
            b->sample_ids[r] = ids[first_good];
            rc = make_row(l, m, b, r, k * l->batch_size + r, &keep_img,
                          keep_g.M < 8 ? &keep_g : NULL, err, n);
        }
    }
    free(raws);
    free(ids);
    return rc;
}

static int64_t batches_in_epoch(const eqm_loader *l)
{
    if (l->src.n_samples < 0)
        return -1;
    return l->drop_last ? l->n_epoch / l->batch_size
                        : (l->n_epoch + l->batch_size - 1) / l->batch_size;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *arg)
{
    eqm_loader *l = arg;
    worker_mem m;
    memset(&m, 0, sizeof m);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (l->stop)
            break;
        int64_t k = l->claim;
        int avail = !l->failed && (l->n_batches < 0 ? (l->stream_eof_at < 0 || k < l->stream_eof_at)
                                                    : k < l->n_batches);
        slot *s = avail ? &l->slots[k % l->n_slots] : NULL;
        if (!avail || s->state != SLOT_FREE) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        s->state = SLOT_FILLING;
        s->k = k;
        s->gen = l->gen;
        s->b.epoch = l->epoch;
        s->rc = 0;
        s->err[0] = 0;
        l->claim++;
        pthread_mutex_unlock(&l->mu);
        uint64_t t0 = l->api->now_ns(), c0 = thread_cpu_ns();
        int rc = fill_batch(l, &m, s, k, s->err, sizeof s->err);
        uint64_t t1 = l->api->now_ns(), c1 = thread_cpu_ns();
        pthread_mutex_lock(&l->mu);
        l->st.work_ns += t1 - t0;
        l->st.work_cpu_ns += c1 - c0;
        if (s->gen != l->gen) {
            s->state = SLOT_FREE; /* an abandoned epoch */
        } else {
            s->rc = rc;
            s->state = SLOT_READY;
            if (rc && (!l->failed || k < l->fail_k)) {
                l->failed = 1;
                l->fail_k = k;
                snprintf(l->err, sizeof l->err, "%s", s->err);
            }
            if (!rc && l->n_batches < 0 && s->b.n == 0)
                s->rc = EQM_EOF; /* streaming: nothing left for this batch */
            else if (!rc && l->n_batches < 0 && l->drop_last && s->b.n < l->batch_size)
                s->rc = EQM_EOF;
        }
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    free(m.img);
    free(m.keep);
    free(m.buf[0]);
    free(m.buf[1]);
    free(m.scratch);
    return NULL;
}

/* ------------------------------------------------------------- creation ---------- */

static int t_constants(eqm_loader *l, char *err, size_t n)
{
    int ts = l->cfg.t_standardize, P = l->p;
    for (int i = 0; i < P; i++) {
        l->t_mean[i] = 0.0f;
        l->t_std[i] = 1.0f;
    }
    if (l->mode == EQM_LOADER_SINGLE || ts == TS_NONE)
        return EQM_OK;
    if (ts == TS_ESTIMATE) {
        int rc = loader_estimate_t(l, l->cfg.t_estimate_samples, l->seed ^ 0x7e57u, l->t_mean,
                                   l->t_std);
        return rc ? set_err(err, n, rc, "[loader] t_standardize = estimate: %s", l->err) : rc;
    }
    int want = ts == TS_CIFAR_SIMCLR ? 15 : ts == TS_IMAGENET_SIMCLR ? 17 : 18;
    const char *names[18];
    for (int i = 0; i < 15; i++)
        names[i] = layout_base[i];
    names[15] = "blur";
    names[16] = "blur_sigma";
    names[17] = "solarize";
    int ok = P == want;
    for (int i = 0; ok && i < P; i++)
        ok = l->t_names[i] && !strcmp(l->t_names[i], names[i]);
    if (!ok) {
        char got[1024] = "";
        for (int i = 0; i < P; i++) {
            size_t len = strlen(got);
            snprintf(got + len, sizeof got - len, "%s%s", i ? " " : "", l->t_names[i] ? l->t_names[i] : "?");
        }
        return set_err(err, n, EQM_ERR_INVAL,
                       "[loader] t_standardize = %s expects the %d-field t of METHOD.md 4 (crop_i "
                       "... gray%s), but [views] view1 gives %d fields: %s; use t_standardize = "
                       "estimate (or none)", ts_names[ts], want,
                       want == 17 ? " blur blur_sigma" : want == 18 ? " blur blur_sigma solarize" : "",
                       P, got);
    }
    const float *m15 = ts == TS_CIFAR_SIMCLR || ts == TS_BYOL_CIFAR ? cifar_mean : inet_mean;
    const float *s15 = ts == TS_CIFAR_SIMCLR || ts == TS_BYOL_CIFAR ? cifar_std : inet_std;
    for (int i = 0; i < 15; i++) {
        l->t_mean[i] = m15[i];
        l->t_std[i] = s15[i];
    }
    if (ts == TS_IMAGENET_SIMCLR) {
        l->t_mean[15] = inet_mean[15];
        l->t_std[15] = inet_std[15];
        l->t_mean[16] = inet_mean[16];
        l->t_std[16] = inet_std[16];
    } else if (ts == TS_BYOL_CIFAR || ts == TS_BYOL_IMAGENET) {
        for (int i = 0; i < 3; i++) {
            l->t_mean[15 + i] = byol_mean[i];
            l->t_std[15 + i] = byol_std[i];
        }
    }
    return EQM_OK;
}

/* Bind [loader] and [views] and build the pipelines (no dataset, no threads). */
static int loader_setup(eqm_loader *l, eqm_config *cfg, const eqm_registry *reg,
                        const eqm_loader_opts *o, char *err, size_t n)
{
    l->api = host_api();
    int rc = config_bind(cfg, "loader", loader_section_spec, &l->cfg, NULL, err, n);
    if (rc)
        return rc;
    rc = config_bind(cfg, "views", views_section_spec, &l->vcfg, NULL, err, n);
    if (rc)
        return rc;
    l->mode = o ? o->mode : EQM_LOADER_VIEWS;
    l->batch_size = o && o->batch_size > 0 ? o->batch_size : l->cfg.batch_size;
    l->n_workers = (int)(o && o->workers > 0 ? o->workers : l->cfg.workers);
    if (l->n_workers <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        l->n_workers = c > 8 ? 8 : c > 0 ? (int)c : 1;
    }
    l->n_slots = (int)(o && o->prefetch > 0 ? o->prefetch : l->cfg.prefetch) + 2;
    l->shuffle = o && o->shuffle_set ? o->shuffle : l->cfg.shuffle;
    l->drop_last = o && o->drop_last_set ? o->drop_last : l->cfg.drop_last;
    {
        /* the run's base seed ([run] seed) keys every shuffle and augmentation stream */
        run_opts ro;
        memset(&ro, 0, sizeof ro);
        rc = config_bind(cfg, "run", run_spec, &ro, NULL, err, n);
        if (rc)
            return rc;
        l->seed = (uint64_t)ro.seed;
    }
    if (l->mode == EQM_LOADER_SINGLE) {
        const char *key = o && o->single_view ? o->single_view : "original";
        const char *text = !strcmp(key, "original") ? l->vcfg.original
                           : !strcmp(key, "eval_train") ? l->vcfg.eval_train
                           : !strcmp(key, "eval_test") ? l->vcfg.eval_test : NULL;
        if (!strcmp(key, "view1"))
            text = l->vcfg.view1;
        if (!strcmp(key, "view2"))
            text = l->vcfg.view2;
        if (!text && strcmp(key, "original") && strcmp(key, "eval_train") && strcmp(key, "eval_test"))
            return set_err(err, n, EQM_ERR_INVAL, "loader: unknown single view '%s' (original, "
                           "eval_train, eval_test, view1, view2)", key);
        l->n_pipes = 1;
        rc = pipe_build(l, cfg, reg, &l->pipe[0], key, text, err, n);
    } else {
        l->n_pipes = 3;
        rc = pipe_build(l, cfg, reg, &l->pipe[0], "original", l->vcfg.original, err, n);
        if (!rc)
            rc = pipe_build(l, cfg, reg, &l->pipe[1], "view1", l->vcfg.view1, err, n);
        if (!rc)
            rc = pipe_build(l, cfg, reg, &l->pipe[2], "view2", l->vcfg.view2, err, n);
    }
    if (rc)
        return rc;
    /* t layout: view1's; view2 must match */
    if (l->mode == EQM_LOADER_VIEWS) {
        l->p = l->pipe[1].p;
        int k = 0;
        for (int i = 0; i < l->pipe[1].n; i++) {
            aug_inst *a = l->pipe[1].steps[i];
            for (int j = 0; j < a->n_params; j++)
                l->t_names[k++] = a->pl->ops.augment.param_name ? a->pl->ops.augment.param_name(a->self, j) : NULL;
        }
        k = 0;
        int same = l->pipe[2].p == l->p;
        for (int i = 0; same && i < l->pipe[2].n; i++) {
            aug_inst *a = l->pipe[2].steps[i];
            for (int j = 0; same && j < a->n_params; j++, k++) {
                const char *nm = a->pl->ops.augment.param_name ? a->pl->ops.augment.param_name(a->self, j) : NULL;
                same = nm && l->t_names[k] && !strcmp(nm, l->t_names[k]);
            }
        }
        if (!same)
            return set_err(err, n, EQM_ERR_INVAL,
                           "[views] view1 and view2 give different t layouts (%d vs %d fields or "
                           "other field names); both views must use the same kinds of "
                           "augmentations in the same order (set p = 0 to disable one)",
                           l->pipe[1].p, l->pipe[2].p);
        for (int i = 0; i < l->p; i++)
            if (!l->t_names[i])
                return set_err(err, n, EQM_ERR_INVAL, "[views] view1: t field %d has no name", i);
    }
    return EQM_OK;
}

static void loader_free(eqm_loader *l);

static int loader_finish(eqm_loader *l, char *err, size_t n)
{
    if (l->src.n_samples >= 0 && !l->src.get)
        return set_err(err, n, EQM_ERR_INVAL, "loader: random-access source without get()");
    if (l->src.n_samples < 0 && (!l->src.next || !l->src.decode))
        return set_err(err, n, EQM_ERR_INVAL, "loader: streaming source without next()/decode()");
    /* batch view size from the first pipeline; all must agree */
    int w0 = l->src.w ? l->src.w : 256, h0 = l->src.h ? l->src.h : 256, c0 = l->src.c ? l->src.c : 3;
    for (int v = 0; v < l->n_pipes; v++) {
        int w = 0, h = 0, c = 0;
        int rc = pipe_shape(&l->pipe[v], w0, h0, c0, &w, &h, &c, err, n);
        if (rc)
            return rc;
        if (v == 0) {
            l->w = w;
            l->h = h;
            l->c = c;
        } else if (w != l->w || h != l->h || c != l->c) {
            return set_err(err, n, EQM_ERR_INVAL,
                           "[views] %s gives %dx%dx%d images but %s gives %dx%dx%d; all views "
                           "of a batch need one size", l->pipe[v].key, w, h, c, l->pipe[0].key,
                           l->w, l->h, l->c);
        }
    }
    /* DCT scaling: a streaming source that can decode scaled, and views whose first steps
     * all resample a box (source_box + apply_scaled) */
    l->scaling = l->cfg.dct_scaling && l->src.n_samples < 0 && l->src.decode_scaled != NULL &&
                 l->n_pipes > 0;
    for (int v = 0; v < l->n_pipes && l->scaling; v++) {
        const eqm_augment_ops *ops = l->pipe[v].n > 1 ? &l->pipe[v].steps[0]->pl->ops.augment : NULL;
        l->scaling = ops && ops->source_box && ops->apply_scaled;
    }
    int rc = t_constants(l, err, n);
    if (rc)
        return rc;
    size_t vs = (size_t)l->w * l->h * l->c, B = (size_t)l->batch_size;
    l->slots = calloc((size_t)l->n_slots, sizeof(slot));
    if (!l->slots)
        return set_err(err, n, EQM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < l->n_slots; i++) {
        eqm_batch *b = &l->slots[i].b;
        b->w = l->w;
        b->h = l->h;
        b->c = l->c;
        b->p = l->mode == EQM_LOADER_VIEWS ? l->p : 0;
        b->x0 = l->api->alloc(NULL, B * vs * sizeof(float), 64);
        b->labels = l->api->alloc(NULL, B * sizeof(int32_t), 64);
        b->sample_ids = l->api->alloc(NULL, B * sizeof(int64_t), 64);
        if (!b->x0 || !b->labels || !b->sample_ids)
            return set_err(err, n, EQM_ERR_NOMEM, "loader: cannot allocate the batch ring");
        if (l->mode == EQM_LOADER_VIEWS) {
            b->x1 = l->api->alloc(NULL, B * vs * sizeof(float), 64);
            b->x2 = l->api->alloc(NULL, B * vs * sizeof(float), 64);
            b->t1 = l->api->alloc(NULL, B * (size_t)(l->p ? l->p : 1) * sizeof(float), 64);
            b->t2 = l->api->alloc(NULL, B * (size_t)(l->p ? l->p : 1) * sizeof(float), 64);
            if (!b->x1 || !b->x2 || !b->t1 || !b->t2)
                return set_err(err, n, EQM_ERR_NOMEM, "loader: cannot allocate the batch ring");
        }
    }
    if (l->src.n_samples >= 0) {
        l->order = malloc((size_t)(l->n_samples ? l->n_samples : 1) * sizeof(int64_t));
        if (!l->order)
            return set_err(err, n, EQM_ERR_NOMEM, "out of memory");
    }
    l->threads = calloc((size_t)l->n_workers, sizeof(pthread_t));
    if (!l->threads)
        return set_err(err, n, EQM_ERR_NOMEM, "out of memory");
    l->epoch = -1;
    l->n_batches = 0;
    l->stream_eof_at = -1;
    host_log(EQM_LOG_INFO, "loader", "%s; %s views %dx%dx%d, t %d fields (%s), batch %lld, %d workers",
             l->desc, l->mode == EQM_LOADER_VIEWS ? "3" : "1", l->w, l->h, l->c,
             l->mode == EQM_LOADER_VIEWS ? l->p : 0,
             l->mode == EQM_LOADER_VIEWS ? ts_names[l->cfg.t_standardize] : "-",
             (long long)l->batch_size, l->n_workers);
    return EQM_OK;
}

static eqm_loader *loader_alloc(void)
{
    eqm_loader *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->stream_mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    return l;
}

int loader_create(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg, const char *split,
                  const eqm_loader_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    eqm_loader *l = loader_alloc();
    if (!l)
        return set_err(err, errlen, EQM_ERR_NOMEM, "out of memory");
    int rc = loader_setup(l, cfg, reg, o, err, errlen);
    if (rc)
        goto fail;
    rc = config_bind_plugin(cfg, reg, "data", EQM_KIND_DATASET, &l->ds_plugin, &l->ds_opts, err,
                            errlen);
    if (rc)
        goto fail;
    char label[160];
    snprintf(label, sizeof label, "dataset/%s", l->ds_plugin->desc.name);
    l->ds_host = host_ctx_create(label);
    if (!l->ds_host) {
        rc = set_err(err, errlen, EQM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    rc = l->ds_plugin->ops.dataset.open(l->api, l->ds_host, l->ds_opts, split, &l->ds_self);
    if (rc) {
        set_err(err, errlen, rc, "[data] %s, split %s: %s", l->ds_plugin->desc.name, split,
                host_ctx_error(l->ds_host));
        l->ds_self = NULL;
        goto fail;
    }
    eqm_dataset_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    rc = l->ds_plugin->ops.dataset.info(l->ds_self, &info);
    if (rc) {
        set_err(err, errlen, rc, "[data] %s: info: %s", l->ds_plugin->desc.name, host_ctx_error(l->ds_host));
        goto fail;
    }
    if (info.n_samples < 0 || !l->ds_plugin->ops.dataset.get) {
        rc = set_err(err, errlen, EQM_ERR_UNSUPPORTED,
                     "[data] %s is streaming-only; build its source and use loader_create_source",
                     l->ds_plugin->desc.name);
        goto fail;
    }
    ds_ctx *d = calloc(1, sizeof *d);
    if (!d) {
        rc = set_err(err, errlen, EQM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    d->pl = l->ds_plugin;
    d->self = l->ds_self;
    d->host = l->ds_host;
    snprintf(l->desc, sizeof l->desc, "%s", info.desc ? info.desc : l->ds_plugin->desc.name);
    l->src.ctx = d;
    l->src.n_samples = info.n_samples;
    l->src.w = info.w;
    l->src.h = info.h;
    l->src.c = info.c;
    l->src.n_classes = info.n_classes;
    l->src.class_names = info.class_names;
    l->src.desc = l->desc;
    l->src.get = ds_get;
    l->src.error = ds_error;
    l->own_src = 0;
    l->n_samples = info.n_samples;
    if (o && o->limit > 0 && o->limit < l->n_samples)
        l->n_samples = o->limit;
    rc = loader_finish(l, err, errlen);
    if (rc)
        goto fail;
    *out = l;
    return EQM_OK;
fail:
    loader_free(l);
    return rc;
}

int loader_create_source(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg,
                         const eqm_sample_source *src, const eqm_loader_opts *o, char *err,
                         size_t errlen)
{
    *out = NULL;
    eqm_loader *l = loader_alloc();
    if (!l)
        return set_err(err, errlen, EQM_ERR_NOMEM, "out of memory");
    int rc = loader_setup(l, cfg, reg, o, err, errlen);
    if (rc)
        goto fail;
    l->src = *src;
    snprintf(l->desc, sizeof l->desc, "%s", src->desc ? src->desc : "sample source");
    l->n_samples = src->n_samples;
    if (o && o->limit > 0 && l->n_samples >= 0 && o->limit < l->n_samples)
        l->n_samples = o->limit;
    rc = loader_finish(l, err, errlen);
    if (rc) {
        memset(&l->src, 0, sizeof l->src); /* not ours on failure */
        goto fail;
    }
    l->own_src = 1;
    *out = l;
    return EQM_OK;
fail:
    memset(&l->src, 0, sizeof l->src);
    loader_free(l);
    return rc;
}

static void stop_workers(eqm_loader *l)
{
    if (!l->started)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_workers; i++)
        pthread_join(l->threads[i], NULL);
    l->started = 0;
}

static void loader_free(eqm_loader *l)
{
    if (!l)
        return;
    stop_workers(l);
    if (l->slots)
        for (int i = 0; i < l->n_slots; i++) {
            eqm_batch *b = &l->slots[i].b;
            l->api->free(NULL, b->x0);
            l->api->free(NULL, b->x1);
            l->api->free(NULL, b->x2);
            l->api->free(NULL, b->t1);
            l->api->free(NULL, b->t2);
            l->api->free(NULL, b->labels);
            l->api->free(NULL, b->sample_ids);
        }
    free(l->slots);
    free(l->threads);
    free(l->order);
    for (int i = 0; i < l->n_insts; i++) {
        aug_inst *a = &l->insts[i];
        a->pl->ops.augment.destroy(a->self);
        host_ctx_destroy(a->host);
        free(a->opts);
    }
    if (l->own_src && l->src.destroy)
        l->src.destroy(l->src.ctx);
    if (!l->own_src)
        free(l->src.ctx); /* ds_ctx (or NULL) */
    if (l->ds_self)
        l->ds_plugin->ops.dataset.close(l->ds_self);
    host_ctx_destroy(l->ds_host);
    free(l->ds_opts);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->stream_mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

void loader_destroy(eqm_loader *l) { loader_free(l); }

/* ------------------------------------------------------------- epochs ------------ */

int loader_start_epoch(eqm_loader *l, int64_t epoch)
{
    if (l->failed)
        return EQM_ERR_STATE;
    pthread_mutex_lock(&l->mu);
    /* stop claims (n_batches = 0), drop what is ready, wait for batches being filled: they
     * read l->order, which is rebuilt below */
    l->gen++;
    l->n_batches = 0;
    pthread_cond_broadcast(&l->cv); /* streaming workers waiting for their turn give up */
    for (int i = 0; i < l->n_slots; i++)
        if (l->slots[i].state == SLOT_READY)
            l->slots[i].state = SLOT_FREE;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < l->n_slots; i++)
            busy |= l->slots[i].state == SLOT_FILLING;
        if (!busy)
            break;
        pthread_cond_wait(&l->cv, &l->mu);
    }
    l->epoch = epoch;
    l->claim = l->consume = 0;
    l->stream_turn = 0;
    l->stream_eof_at = -1;
    int rc = EQM_OK;
    if (l->src.n_samples >= 0) {
        l->n_epoch = l->n_samples;
        for (int64_t i = 0; i < l->n_epoch; i++)
            l->order[i] = i;
        if (l->shuffle) {
            eqm_rng r;
            l->api->rng_seed(&r, l->seed, (uint64_t)epoch, UINT64_MAX, 0);
            for (int64_t i = l->n_epoch - 1; i > 0; i--) {
                int64_t j = (int64_t)l->api->rng_below(&r, (uint64_t)i + 1);
                int64_t t = l->order[i];
                l->order[i] = l->order[j];
                l->order[j] = t;
            }
        }
        l->n_batches = batches_in_epoch(l);
    } else {
        l->n_batches = -1;
        if (l->src.start_epoch) {
            rc = l->src.start_epoch(l->src.ctx, epoch);
            if (rc) {
                l->failed = 1;
                l->fail_k = 0;
                set_err(l->err, sizeof l->err, rc, "%.400s: start of epoch %lld: %.500s", l->desc,
                        (long long)epoch, l->src.error ? l->src.error(l->src.ctx) : "failed");
            }
        }
    }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (rc)
        return rc;
    if (!l->started) {
        l->stop = 0;
        for (int i = 0; i < l->n_workers; i++)
            if (pthread_create(&l->threads[i], NULL, worker_main, l)) {
                pthread_mutex_lock(&l->mu);
                l->stop = 1;
                pthread_cond_broadcast(&l->cv);
                pthread_mutex_unlock(&l->mu);
                for (int j = 0; j < i; j++)
                    pthread_join(l->threads[j], NULL);
                snprintf(l->err, sizeof l->err, "loader: cannot start worker thread %d", i);
                l->failed = 1;
                l->fail_k = 0;
                return EQM_ERR_NOMEM;
            }
        l->started = 1;
    }
    return EQM_OK;
}

int loader_next(eqm_loader *l, eqm_batch **b)
{
    *b = NULL;
    if (l->epoch < 0 && !l->started) {
        snprintf(l->err, sizeof l->err, "loader_next called before loader_start_epoch");
        return EQM_ERR_STATE;
    }
    uint64_t t0 = l->api->now_ns();
    pthread_mutex_lock(&l->mu);
    int rc;
    for (;;) {
        int64_t k = l->consume;
        if (l->n_batches >= 0 && k >= l->n_batches) {
            rc = EQM_EOF;
            break;
        }
        if (l->n_batches < 0 && l->stream_eof_at >= 0 && k >= l->stream_eof_at &&
            l->slots[k % l->n_slots].k != k) {
            rc = EQM_EOF;
            break;
        }
        slot *s = &l->slots[k % l->n_slots];
        if (s->state == SLOT_READY && s->k == k && s->gen == l->gen) {
            if (s->rc == EQM_EOF) {
                s->state = SLOT_FREE;
                l->stream_eof_at = k;
                pthread_cond_broadcast(&l->cv);
                rc = EQM_EOF;
                break;
            }
            if (s->rc) {
                rc = s->rc;
                break;
            }
            s->state = SLOT_LENT;
            l->consume++;
            *b = &s->b;
            l->st.batches++;
            l->st.samples += s->b.n;
            rc = EQM_OK;
            break;
        }
        if (l->failed && k >= l->fail_k) {
            /* batches before the failed one were all claimed and are delivered first */
            rc = EQM_ERR_STATE;
            for (int i = 0; i < l->n_slots; i++)
                if (l->slots[i].state == SLOT_READY && l->slots[i].rc < 0)
                    rc = l->slots[i].rc;
            break;
        }
        pthread_cond_wait(&l->cv, &l->mu);
    }
    l->st.stall_ns += l->api->now_ns() - t0;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void loader_release(eqm_loader *l, eqm_batch *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n_slots; i++)
        if (&l->slots[i].b == b && l->slots[i].state == SLOT_LENT) {
            l->slots[i].state = SLOT_FREE;
            break;
        }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

const char *loader_error(const eqm_loader *l) { return l->err; }

void loader_info(const eqm_loader *l, eqm_loader_info *info)
{
    memset(info, 0, sizeof *info);
    info->n_samples = l->src.n_samples >= 0 ? l->n_samples : -1;
    info->batch_size = (int)l->batch_size;
    info->batches_per_epoch = -1;
    if (l->src.n_samples >= 0)
        info->batches_per_epoch = l->drop_last ? l->n_samples / l->batch_size
                                               : (l->n_samples + l->batch_size - 1) / l->batch_size;
    info->w = l->w;
    info->h = l->h;
    info->c = l->c;
    info->p = l->mode == EQM_LOADER_VIEWS ? l->p : 0;
    info->n_classes = l->src.n_classes;
    info->class_names = l->src.class_names;
    info->source_desc = l->desc;
    info->t_standardize = ts_names[l->cfg.t_standardize];
}

void loader_stats(const eqm_loader *l, eqm_loader_stats *s)
{
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    s->batches = l->st.batches;
    s->samples = l->st.samples;
    s->stall_ns = l->st.stall_ns;
    s->work_ns = l->st.work_ns;
    s->work_cpu_ns = l->st.work_cpu_ns;
    for (int i = 0; i < 4; i++) /* counted by the workers without the lock */
        s->decoded_at[i] = __atomic_load_n(&l->st.decoded_at[i], __ATOMIC_RELAXED);
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
}

/* ------------------------------------------------------------- t ----------------- */

int loader_t_dim(const eqm_loader *l) { return l->mode == EQM_LOADER_VIEWS ? l->p : 0; }

const char *loader_t_name(const eqm_loader *l, int i)
{
    return i >= 0 && i < loader_t_dim(l) ? l->t_names[i] : NULL;
}

void loader_standardize_t(const eqm_loader *l, const float *t_raw, float *t_std, int n)
{
    int P = loader_t_dim(l);
    for (int r = 0; r < n; r++)
        for (int k = 0; k < P; k++)
            t_std[(size_t)r * P + k] = (t_raw[(size_t)r * P + k] - l->t_mean[k]) / l->t_std[k];
}

const float *loader_t_mean(const eqm_loader *l) { return l->t_mean; }
const float *loader_t_std(const eqm_loader *l) { return l->t_std; }

/* Draw t of a pipeline from the dataset's image size, shapes only. */
static int pipe_sample_only(const eqm_loader *l, const pipeline *pp, int w, int h, int c,
                            eqm_rng *r, float *tp)
{
    eqm_image cur = {w, h, c, w * c, EQM_PIX_U8, NULL};
    eqm_augment_ctx ctx = {sizeof(eqm_augment_ctx), w, h};
    int off = 0;
    for (int i = 0; i < pp->n; i++) {
        const aug_inst *a = pp->steps[i];
        int rc = a->pl->ops.augment.sample(a->self, r, &ctx, &cur, tp + off);
        if (rc)
            return rc;
        int nw, nh, nc;
        uint32_t f;
        rc = a->pl->ops.augment.out_shape(a->self, &cur, &nw, &nh, &nc, &f);
        if (rc)
            return rc;
        cur.w = nw;
        cur.h = nh;
        cur.c = nc;
        cur.format = f;
        cur.stride = nw * nc;
        off += a->n_params;
    }
    return EQM_OK;
}

#define EST_MAX_SIZES 2000

int loader_estimate_t(eqm_loader *l, int64_t n, uint64_t seed, float *mean, float *std)
{
    int P = l->mode == EQM_LOADER_VIEWS ? l->p : 0;
    if (P == 0)
        return EQM_OK;
    double sum[MAX_T] = {0}, sq[MAX_T] = {0};
    float t[MAX_T];
    int c = l->src.c ? l->src.c : 3;
    /* image sizes the draws use: fixed, or the first images of the stream (crop records
     * are in original pixels and scale with each image's size, METHOD.md 4) */
    int32_t fixed[2] = {l->src.w ? l->src.w : 256, l->src.h ? l->src.h : 256};
    int32_t *wh = fixed;
    int64_t n_wh = 1;
    if ((!l->src.w || !l->src.h) && n > 0) {
        if (l->src.image_sizes) {
            int64_t want = n < EST_MAX_SIZES ? n : EST_MAX_SIZES;
            wh = malloc((size_t)want * 2 * sizeof(int32_t));
            if (!wh) {
                snprintf(l->err, sizeof l->err, "t estimation: out of memory");
                return EQM_ERR_NOMEM;
            }
            n_wh = l->src.image_sizes(l->src.sizes_ctx, want, wh);
            if (n_wh <= 0) {
                int rc = n_wh < 0 ? (int)n_wh : EQM_ERR_FORMAT;
                snprintf(l->err, sizeof l->err, "t estimation: %.400s: %.500s", l->desc,
                         n_wh < 0 && l->src.error ? l->src.error(l->src.ctx)
                                                  : "no readable image in epoch 0");
                free(wh);
                return rc;
            }
        } else {
            host_log(EQM_LOG_WARN, "loader", "%s: image sizes vary and the source cannot list "
                     "them: t estimated on 256x256 images (crop fields are then off)", l->desc);
        }
    }
    for (int64_t i = 0; i < n; i++)
        for (int v = 1; v <= 2; v++) {
            eqm_rng r;
            l->api->rng_seed(&r, seed, 0xe571u, (uint64_t)i, (uint64_t)v);
            const int32_t *s = wh + 2 * (i % n_wh);
            int rc = pipe_sample_only(l, &l->pipe[v], s[0], s[1], c, &r, t);
            if (rc) {
                snprintf(l->err, sizeof l->err, "t estimation: sample failed (%s)", eqm_status_str(rc));
                if (wh != fixed)
                    free(wh);
                return rc;
            }
            for (int k = 0; k < P; k++) {
                sum[k] += t[k];
                sq[k] += (double)t[k] * t[k];
            }
        }
    if (wh != fixed) {
        host_log(EQM_LOG_INFO, "loader", "t estimate: %lld draws per view on the sizes of the "
                 "first %lld images of epoch 0", (long long)n, (long long)n_wh);
        free(wh);
    }
    double N = 2.0 * (double)n;
    for (int k = 0; k < P; k++) {
        double m = sum[k] / N, var = sq[k] / N - m * m;
        mean[k] = (float)m;
        std[k] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
    return EQM_OK;
}

int loader_describe_t(eqm_config *cfg, const eqm_registry *reg, FILE *f)
{
    eqm_loader *l = loader_alloc();
    char err[1024] = "";
    if (!l) {
        fprintf(f, "error: out of memory\n");
        return EQM_ERR_NOMEM;
    }
    int rc = loader_setup(l, cfg, reg, NULL, err, sizeof err);
    if (rc) {
        fprintf(f, "error: %s\n", err);
        loader_free(l);
        return rc;
    }
    fprintf(f, "# t layout (METHOD.md 4): %d fields, raw values; standardisation: %s\n", l->p,
            ts_names[l->cfg.t_standardize]);
    int k = 0;
    for (int i = 0; i < l->pipe[1].n; i++) {
        aug_inst *a = l->pipe[1].steps[i];
        for (int j = 0; j < a->n_params; j++, k++)
            fprintf(f, "t[%d]\t%s\t(%s, plugin %s)\n", k, l->t_names[k], a->section,
                    a->pl->desc.name);
    }
    loader_free(l);
    return EQM_OK;
}

/* ------------------------------------------------------------- inspection -------- */

int loader_render_sample(eqm_loader *l, int64_t epoch, int64_t index, eqm_image u8[3], float *t1,
                         float *t2, int32_t *label)
{
    memset(u8, 0, 3 * sizeof *u8);
    if (l->src.n_samples < 0 || index < 0 || index >= l->n_samples) {
        snprintf(l->err, sizeof l->err, "sample %lld: out of range [0, %lld) or streaming source",
                 (long long)index, (long long)l->n_samples);
        return EQM_ERR_INVAL;
    }
    worker_mem m;
    memset(&m, 0, sizeof m);
    eqm_image img;
    int rc = read_sample(l, &m, index, NULL, &img, label, l->err, sizeof l->err);
    float tb[MAX_T];
    for (int v = 0; !rc && v < l->n_pipes; v++) {
        eqm_rng r;
        l->api->rng_seed(&r, l->seed, (uint64_t)epoch, (uint64_t)index, (uint64_t)v);
        float *tp = v == 1 && t1 ? t1 : v == 2 && t2 ? t2 : tb;
        eqm_image o;
        rc = pipe_run(l, &l->pipe[v], &m, &img, NULL, &r, tp, NULL, &o, l->err, sizeof l->err);
        if (rc)
            break;
        size_t bytes = (size_t)o.w * o.h * o.c;
        u8[v] = o;
        u8[v].stride = o.w * o.c;
        u8[v].data = malloc(bytes);
        if (!u8[v].data) {
            rc = EQM_ERR_NOMEM;
            break;
        }
        for (int y = 0; y < o.h; y++)
            memcpy((uint8_t *)u8[v].data + (size_t)y * o.w * o.c,
                   (const uint8_t *)o.data + (size_t)y * o.stride, (size_t)o.w * o.c);
    }
    if (rc)
        for (int v = 0; v < 3; v++) {
            free(u8[v].data);
            u8[v].data = NULL;
        }
    free(m.img);
    free(m.buf[0]);
    free(m.buf[1]);
    free(m.scratch);
    return rc;
}
