/* host/source/shard.c: the streaming sample source (source.h) over a dataset plugin's
 * stream_source/decode and a shard_stream (host/shards/shards.h).
 *
 * Threading (loader contract): next() is called under the loader's source lock, decode()
 * concurrently from the workers; the stream's pop/release are thread-safe anyway. Error
 * messages live in the source's eqm_host, whose messages are per calling thread
 * (host/api.c): a worker reads back the message of its own failure, whatever the others
 * do meanwhile.
 * Bad samples: decode() counts them and returns EQM_SKIP (on_bad = skip; the loader
 * substitutes another sample of the same batch, loader.h) or fails (on_bad = fail); it
 * never pulls a replacement from the stream, so batches do not depend on which worker
 * decodes them.
 * Data-parallel training (MPI) builds this source with rank 0 of world 1 on every rank and
 * slices each global batch in the loader (host/loader/fill.c says why); rank/world > 1
 * (the shard list split by rank) is left to callers that do not need the one-process order.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "source/source.h"

typedef struct src_ctx {
    const eqm_dataset_ops *ops;
    const eqm_plugin *pl;
    void *self;
    eqm_host *host; /* the plugin instance's context; also carries this source's errors */
    shard_stream *stream;
    int on_bad;
    int64_t expected; /* samples an epoch must yield under on_bad = fail (-1: unknown) */
    int64_t popped;   /* samples this epoch has yielded */
    int64_t epoch;
    char desc[700];
} src_ctx;

static void set_err(src_ctx *c, int rc, const char *fmt, const char *a, const char *b)
{
    host_ctx_set_error(c->host, rc, fmt, a, b);
}

static int src_start_epoch(void *ctx, int64_t epoch)
{
    src_ctx *c = ctx;
    char err[1024];
    int rc = shard_stream_start_epoch(c->stream, (uint64_t)epoch, err, sizeof err);
    if (rc != EQM_OK)
        set_err(c, rc, "%s%s", err, "");
    c->popped = 0;
    c->epoch = epoch;
    return rc;
}

static int src_next(void *ctx, void **raw, int64_t *id)
{
    src_ctx *c = ctx;
    char err[1024];
    eqm_raw_sample *r = NULL;
    int rc = shard_stream_pop(c->stream, &r, err, sizeof err);
    if (rc < 0)
        set_err(c, rc, "%s%s", err, "");
    c->popped += rc == EQM_OK;
    if (rc == EQM_EOF && c->on_bad == SHARD_BAD_FAIL && c->expected > 0 &&
        c->popped < c->expected) {
        /* Under on_bad = fail a stream shorter than its index is bad data too: a shard cut
         * short or replaced by a smaller one would otherwise train on less, silently. */
        char m[200];
        snprintf(m, sizeof m, "epoch %lld of the shards yielded %lld samples, the index says "
                 "%lld", (long long)c->epoch, (long long)c->popped, (long long)c->expected);
        set_err(c, EQM_ERR_FORMAT, "%s%s", m,
                ": a shard is truncated or was rewritten (rewrite the index with equimod "
                "shards, or set on_bad = skip to train on what the shards hold)");
        return EQM_ERR_FORMAT;
    }
    *raw = r;
    if (r && id)
        *id = r->index;
    return rc;
}

/* Decode at scale scale_num/8 (8: full size; the loader keeps crop records in original
 * pixels either way). Releases raw except when it asks for a larger buffer. A bad sample is counted (one rate-limited warning)
 * and is EQM_SKIP under on_bad = skip (message kept for this thread), an error under
 * fail. */
static int src_decode_scaled(void *ctx, void *raw_, int scale_num, eqm_image *img, size_t cap,
                             int32_t *label)
{
    src_ctx *c = ctx;
    eqm_raw_sample *raw = raw_;
    int rc = c->ops->decode(c->self, raw, scale_num, img, cap, label, NULL, NULL);
    if (source_grow(rc) && img->w > 0 && (size_t)img->w * img->h * 3 > cap)
        return EQM_GROW; /* the worker grows its buffer and calls again with the same raw */
    shard_stream_release(c->stream, raw);
    if (rc != EQM_OK) /* this thread's message on c->host: never empty, never stale */
        host_ctx_set_error(c->host, rc, "%s", host_ctx_failure(c->host, c->pl, "decode", rc));
    if (rc != EQM_SKIP)
        return rc;
    char what[1024];
    snprintf(what, sizeof what, "%s", host_ctx_error(c->host));
    shard_stream_count_bad(c->stream, what);
    if (c->on_bad == SHARD_BAD_FAIL) {
        set_err(c, EQM_ERR_FORMAT, "%s%s", what, " (set on_bad = skip to skip bad samples)");
        return EQM_ERR_FORMAT;
    }
    return EQM_SKIP;
}

static int src_decode(void *ctx, void *raw, eqm_image *img, size_t cap, int32_t *label)
{
    return src_decode_scaled(ctx, raw, 8, img, cap, label);
}

/* Sizes of up to `max` images of epoch 0 (stream order), read from their JPEG headers:
 * decode() with no room at scale 8/8 reports the full size without decoding pixels
 * (EQM_GROW + img->w/h); a plugin that decodes anyway gets a buffer. Bad samples
 * are left out (not counted: training counts them). Leaves the stream mid-epoch 0. */
static int64_t src_image_sizes(void *ctx, int64_t max, int32_t *wh)
{
    src_ctx *c = ctx;
    int rc = src_start_epoch(c, 0);
    if (rc != EQM_OK)
        return rc;
    int64_t n = 0;
    uint8_t one[3];
    uint8_t *buf = NULL;
    size_t cap = 0;
    while (n < max) {
        eqm_raw_sample *r = NULL;
        char err[1024];
        rc = shard_stream_pop(c->stream, &r, err, sizeof err);
        if (rc == EQM_EOF)
            break;
        if (rc != EQM_OK) {
            set_err(c, rc, "%s%s", err, "");
            free(buf);
            return rc;
        }
        eqm_image im;
        memset(&im, 0, sizeof im);
        im.data = one;
        int32_t label = -1;
        int ow = 0, oh = 0;
        rc = c->ops->decode(c->self, r, 8, &im, 0, &label, &ow, &oh);
        if (source_grow(rc) && im.w > 0 && im.h > 0) {
            ow = im.w; /* scale 8/8: the needed size is the original size */
            oh = im.h;
            rc = EQM_OK;
        } else if (rc == EQM_OK && (ow <= 0 || oh <= 0)) {
            ow = im.w;
            oh = im.h;
        } else if (source_grow(rc)) { /* no size reported: decode small for real */
            for (int tries = 0; tries < 3 && source_grow(rc); tries++) {
                size_t need = im.w > 0 && im.h > 0 ? (size_t)im.w * im.h * 4 : cap * 2 + 65536;
                uint8_t *nb = need > cap ? realloc(buf, need) : buf;
                if (!nb)
                    break;
                buf = nb;
                cap = need > cap ? need : cap;
                memset(&im, 0, sizeof im);
                im.data = buf;
                rc = c->ops->decode(c->self, r, 1, &im, cap, &label, &ow, &oh);
            }
        }
        shard_stream_release(c->stream, r);
        if (rc == EQM_OK && ow > 0 && oh > 0) {
            wh[2 * n] = ow;
            wh[2 * n + 1] = oh;
            n++;
        } else if (rc < 0 && !source_grow(rc)) {
            free(buf);
            return rc; /* message on c->host */
        }
    }
    free(buf);
    return n;
}

static void src_release(void *ctx, void *raw)
{
    shard_stream_release(((src_ctx *)ctx)->stream, raw);
}

static const char *src_error(void *ctx) { return host_ctx_error(((src_ctx *)ctx)->host); }

static void src_destroy(void *ctx)
{
    src_ctx *c = ctx;
    if (!c)
        return;
    shard_stream_destroy(c->stream);
    if (c->self)
        c->ops->close(c->self);
    host_ctx_destroy(c->host);
    free(c);
}

int shard_source_create(const eqm_plugin *p, const void *opts, const char *split,
                        uint64_t seed, int rank, int world, eqm_sample_source *out, char *err,
                        size_t errlen)
{
    const eqm_dataset_ops *ops = &p->ops.dataset;
    if (!ops->stream_members || !ops->stream_source || !ops->decode) {
        snprintf(err, errlen, "dataset/%s: not a streaming dataset (no stream_members/"
                              "stream_source/decode)", p->desc.name);
        return EQM_ERR_UNSUPPORTED;
    }
    src_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return EQM_ERR_NOMEM;
    }
    c->ops = ops;
    c->pl = p;
    char label[96];
    snprintf(label, sizeof label, "dataset/%s", p->desc.name);
    c->host = host_ctx_create(label);
    if (!c->host) {
        src_destroy(c);
        snprintf(err, errlen, "out of memory");
        return EQM_ERR_NOMEM;
    }
    int rc = ops->open(host_api(), c->host, opts, split, &c->self);
    if (rc != EQM_OK || !c->self) {
        snprintf(err, errlen, "%s: %s", label,
                 rc ? host_ctx_failure(c->host, p, "open", rc)
                    : "open() returned EQM_OK without an instance (*self is NULL); set *self "
                      "to the plugin's state");
        c->self = NULL;
        src_destroy(c);
        return rc < 0 ? rc : EQM_ERR_STATE;
    }
    eqm_dataset_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    eqm_stream_source ss;
    memset(&ss, 0, sizeof ss);
    ss.size = sizeof ss;
    ss.n_samples = -1;
    const char *fn = "info";
    if ((rc = ops->info(c->self, &info)) != EQM_OK ||
        (fn = "stream_source", rc = ops->stream_source(c->self, &ss)) != EQM_OK) {
        snprintf(err, errlen, "%s: %s", label, host_ctx_failure(c->host, p, fn, rc));
        src_destroy(c);
        return rc < 0 ? rc : EQM_ERR_STATE;
    }
    shard_stream_opts so;
    memset(&so, 0, sizeof so);
    so.pattern = ss.shards;
    so.members = ops->stream_members;
    so.seed = seed;
    so.rank = rank;
    so.world = world;
    so.shuffle_buffer = ss.shuffle_buffer > 0 ? (size_t)ss.shuffle_buffer : 0;
    so.shuffle_shards = 1;
    so.io = ss.io;
    so.on_bad = ss.on_bad;
    c->on_bad = ss.on_bad;
    rc = shard_stream_create(&so, &c->stream, err, errlen);
    if (rc != EQM_OK) {
        src_destroy(c);
        return rc;
    }
    snprintf(c->desc, sizeof c->desc, "%s (%zu shards, %s)", info.desc ? info.desc : label,
             shard_stream_n_shards(c->stream),
             shard_stream_io_kind(c->stream) == SHARD_IO_URING ? "io_uring" : "pread");
    memset(out, 0, sizeof *out);
    out->ctx = c;
    out->n_samples = -1;
    out->w = info.w;
    out->h = info.h;
    out->c = 3;
    out->n_classes = info.n_classes;
    out->class_names = info.class_names;
    out->desc = c->desc;
    out->start_epoch = src_start_epoch;
    out->next = src_next;
    out->decode = src_decode;
    out->decode_scaled = src_decode_scaled;
    out->release = src_release;
    out->error = src_error;
    out->destroy = src_destroy;
    out->stream_length = info.n_samples > 0 ? info.n_samples : ss.n_samples;
    /* one rank sees only its shards, whose count the index does not give per shard */
    c->expected = world == 1 ? out->stream_length : -1;
    if (!out->w || !out->h) {
        out->sizes_ctx = c;
        out->image_sizes = src_image_sizes;
    }
    return EQM_OK;
}

/* ------------------------------------------------------------ one picked sample -- */

int shard_source_stats(const eqm_sample_source *src, shard_stream_stats *st)
{
    if (!src || src->next != src_next)
        return EQM_ERR_INVAL;
    shard_stream_stats_get(((src_ctx *)src->ctx)->stream, st);
    return EQM_OK;
}

typedef struct pick_ctx {
    eqm_sample_source inner; /* the streaming source (owned) */
    int64_t index;
    uint8_t *img; /* decoded sample (w, h, c) */
    int w, h, c;
    int32_t label;
    char err[256];
} pick_ctx;

static int pick_get(void *ctx, int64_t index, eqm_image *img, size_t cap, int32_t *label)
{
    pick_ctx *p = ctx;
    if (index != p->index) {
        snprintf(p->err, sizeof p->err, "sample %lld: only sample %lld of the stream was "
                 "picked", (long long)index, (long long)p->index);
        return EQM_ERR_INVAL;
    }
    size_t bytes = (size_t)p->w * p->h * p->c;
    img->w = p->w;
    img->h = p->h;
    img->c = p->c;
    img->stride = p->w * p->c;
    img->format = EQM_PIX_U8;
    if (bytes > cap)
        return EQM_GROW;
    memcpy(img->data, p->img, bytes);
    *label = p->label;
    return EQM_OK;
}

static const char *pick_error(void *ctx) { return ((pick_ctx *)ctx)->err; }

static void pick_destroy(void *ctx)
{
    pick_ctx *p = ctx;
    if (!p)
        return;
    p->inner.destroy(p->inner.ctx);
    free(p->img);
    free(p);
}

/* One row of the picked batch for batch_substitute: decodes it (releasing its raw
 * sample) into *buf, growing it; 1 good, 0 bad (its message kept if the first), < 0. */
typedef struct pick_row {
    src_ctx *c;
    eqm_raw_sample **raws;
    uint8_t **buf;
    size_t *cap;
    eqm_image im;
    int32_t label;
    char first_bad[1024];
} pick_row;

static int pick_good(void *ctx, int q)
{
    pick_row *p = ctx;
    eqm_raw_sample *r = p->raws[q];
    p->raws[q] = NULL; /* src_decode releases it */
    int rc;
    for (;;) {
        memset(&p->im, 0, sizeof p->im);
        p->im.data = *p->buf;
        rc = src_decode(p->c, r, &p->im, *p->cap, &p->label);
        if (!source_grow(rc) || p->im.w <= 0 || (size_t)p->im.w * p->im.h * 3 <= *p->cap)
            break;
        *p->cap = (size_t)p->im.w * p->im.h * 3;
        uint8_t *nb = realloc(*p->buf, *p->cap);
        if (!nb) {
            shard_stream_release(p->c->stream, r);
            set_err(p->c, EQM_ERR_NOMEM, "%s%s", "out of memory", "");
            return EQM_ERR_NOMEM;
        }
        *p->buf = nb;
    }
    if (rc == EQM_SKIP && !p->first_bad[0])
        snprintf(p->first_bad, sizeof p->first_bad, "%s", host_ctx_error(p->c->host));
    return rc == EQM_OK ? 1 : rc == EQM_SKIP ? 0 : rc;
}

int shard_source_pick(eqm_sample_source *src, int64_t epoch, int64_t index, int64_t batch_size,
                      eqm_sample_source *out, char *err, size_t errlen)
{
    if (!src || src->next != src_next || index < 0 || batch_size < 1) {
        snprintf(err, errlen, "shard_source_pick: needs a source from shard_source_create, "
                              "an index >= 0 and a batch size >= 1");
        return EQM_ERR_INVAL;
    }
    src_ctx *c = src->ctx;
    int rc = src_start_epoch(c, epoch);
    if (rc != EQM_OK) {
        snprintf(err, errlen, "%s", host_ctx_error(c->host));
        return rc;
    }
    /* the batch holding `index`: positions [start, start + cnt) */
    int64_t start = index / batch_size * batch_size, cnt = 0;
    eqm_raw_sample **raws = calloc((size_t)batch_size, sizeof *raws);
    pick_ctx *p = calloc(1, sizeof *p);
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    if (!raws || !p || !buf) {
        free(raws);
        free(p);
        free(buf);
        snprintf(err, errlen, "out of memory");
        return EQM_ERR_NOMEM;
    }
    int64_t seen = 0; /* samples the epoch yielded */
    for (int64_t k = 0; k < start + batch_size; k++) {
        eqm_raw_sample *r = NULL;
        char e[1024];
        rc = shard_stream_pop(c->stream, &r, e, sizeof e);
        if (rc == EQM_EOF)
            break;
        seen++;
        if (rc != EQM_OK) {
            snprintf(err, errlen, "%s", e);
            goto fail;
        }
        if (k < start)
            shard_stream_release(c->stream, r);
        else
            raws[cnt++] = r;
    }
    if (index >= start + cnt) {
        snprintf(err, errlen, "sample %lld: epoch %lld of the stream has only %lld samples "
                 "(use --index below that)", (long long)index, (long long)epoch,
                 (long long)seen);
        rc = EQM_ERR_INVAL;
        goto fail;
    }
    /* as training: a bad sample's row takes the next good sample of its batch (source.h) */
    pick_row pr = {c, raws, &buf, &cap, {0}, -1, ""};
    int sub = -1;
    rc = batch_substitute((int)cnt, (int)(index - start), pick_good, &pr, &sub);
    int64_t used = sub >= 0 ? start + sub : -1;
    eqm_image im = pr.im;
    int32_t label = pr.label;
    const char *first_bad = pr.first_bad;
    if (used < 0) {
        if (rc == EQM_OK)
            snprintf(err, errlen, "sample %lld of epoch %lld: all %lld samples of its batch "
                     "(batch_size %lld) are bad, training stops there too (the first: %s)",
                     (long long)index, (long long)epoch, (long long)cnt,
                     (long long)batch_size, first_bad);
        else
            snprintf(err, errlen, "sample %lld of epoch %lld: %s", (long long)index,
                     (long long)epoch, host_ctx_error(c->host));
        rc = rc < 0 ? rc : EQM_ERR_FORMAT;
        goto fail;
    }
    if (used != index)
        host_log(EQM_LOG_WARN, "views", "sample %lld of epoch %lld is bad (%s); training fills "
                 "its row with sample %lld of the same batch (batch_size %lld), shown here "
                 "with sample %lld's augmentation", (long long)index, (long long)epoch,
                 first_bad, (long long)used, (long long)batch_size, (long long)index);
    for (int64_t j = 0; j < cnt; j++)
        if (raws[j])
            shard_stream_release(c->stream, raws[j]);
    free(raws);
    p->inner = *src;
    p->index = index;
    p->img = buf;
    p->w = im.w;
    p->h = im.h;
    p->c = im.c;
    p->label = label;
    *out = *src;
    out->ctx = p;
    out->n_samples = index + 1;
    out->w = out->h = 0; /* the sizes of the stream's images vary */
    out->c = 3;
    out->get = pick_get;
    out->start_epoch = NULL;
    out->next = NULL;
    out->decode = NULL;
    out->decode_scaled = NULL;
    out->release = NULL;
    out->error = pick_error;
    out->destroy = pick_destroy;
    return EQM_OK;
fail:
    for (int64_t j = 0; j < cnt; j++)
        if (raws[j])
            shard_stream_release(c->stream, raws[j]);
    free(raws);
    free(buf);
    free(p);
    return rc;
}
