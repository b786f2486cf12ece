/* host/shards/source.c: the streaming sample source (loader.h eqm_sample_source) over a
 * dataset plugin's stream_source/decode and a shard_stream (see shards.h for the rules).
 *
 * Threading (loader contract): next() is called under the loader's source lock, decode()
 * concurrently from the workers; the stream's pop/release are thread-safe anyway. The
 * error text is per source, guarded by a mutex (the loader reads it after a failure).
 * Left out: rank/world from a distributed launcher (the caller passes them).
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "loader/loader.h"
#include "shards.h"

typedef struct src_ctx {
    const eqm_dataset_ops *ops;
    void *self;
    eqm_host *host;
    shard_stream *stream;
    int on_bad;
    pthread_mutex_t mu;
    char err[1200];
    char desc[700];
} src_ctx;

static void set_err(src_ctx *c, const char *fmt, const char *a, const char *b)
{
    pthread_mutex_lock(&c->mu);
    snprintf(c->err, sizeof c->err, fmt, a, b);
    pthread_mutex_unlock(&c->mu);
}

static int src_start_epoch(void *ctx, int64_t epoch)
{
    src_ctx *c = ctx;
    char err[1024];
    int rc = shard_stream_start_epoch(c->stream, (uint64_t)epoch, err, sizeof err);
    if (rc != EQM_OK)
        set_err(c, "%s%s", err, "");
    return rc;
}

static int src_next(void *ctx, void **raw, int64_t *id)
{
    src_ctx *c = ctx;
    char err[1024];
    eqm_raw_sample *r = NULL;
    int rc = shard_stream_pop(c->stream, &r, err, sizeof err);
    if (rc < 0)
        set_err(c, "%s%s", err, "");
    *raw = r;
    if (r && id)
        *id = r->index;
    return rc;
}

static int src_decode(void *ctx, void *raw_, eqm_image *img, size_t cap, int32_t *label)
{
    src_ctx *c = ctx;
    eqm_raw_sample *raw = raw_;
    for (;;) {
        int rc = c->ops->decode(c->self, raw, 8, img, cap, label, NULL, NULL);
        if (rc == EQM_ERR_NOMEM && img->w > 0 && (size_t)img->w * img->h * 3 > cap)
            return rc; /* the worker grows its buffer and calls again with the same raw */
        if (rc != EQM_SKIP) {
            if (rc < 0)
                set_err(c, "%s%s", host_ctx_error(c->host), "");
            shard_stream_release(c->stream, raw);
            return rc;
        }
        char what[1100];
        snprintf(what, sizeof what, "%s", host_ctx_error(c->host));
        shard_stream_release(c->stream, raw);
        shard_stream_count_bad(c->stream, what);
        if (c->on_bad == SHARD_BAD_FAIL) {
            set_err(c, "%s%s", what, " (set on_bad = skip to skip bad samples)");
            return EQM_ERR_FORMAT;
        }
        char err[1024];
        eqm_raw_sample *next = NULL;
        rc = shard_stream_pop(c->stream, &next, err, sizeof err);
        if (rc != EQM_OK) {
            if (rc == EQM_EOF)
                set_err(c, "%s%s", what, " (and no sample left in the epoch to replace it)");
            else
                set_err(c, "%s%s", err, "");
            return rc == EQM_EOF ? EQM_ERR_FORMAT : rc;
        }
        raw = next;
    }
}

static const char *src_error(void *ctx) { return ((src_ctx *)ctx)->err; }

static void src_destroy(void *ctx)
{
    src_ctx *c = ctx;
    if (!c)
        return;
    shard_stream_destroy(c->stream);
    if (c->self)
        c->ops->close(c->self);
    host_ctx_destroy(c->host);
    pthread_mutex_destroy(&c->mu);
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
    pthread_mutex_init(&c->mu, NULL);
    c->ops = ops;
    char label[96];
    snprintf(label, sizeof label, "dataset/%s", p->desc.name);
    c->host = host_ctx_create(label);
    if (!c->host) {
        src_destroy(c);
        snprintf(err, errlen, "out of memory");
        return EQM_ERR_NOMEM;
    }
    int rc = ops->open(host_api(), c->host, opts, split, &c->self);
    if (rc != EQM_OK) {
        snprintf(err, errlen, "%s: %s", label, host_ctx_error(c->host));
        c->self = NULL;
        src_destroy(c);
        return rc;
    }
    eqm_dataset_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    eqm_stream_source ss;
    memset(&ss, 0, sizeof ss);
    ss.size = sizeof ss;
    ss.n_samples = -1;
    if ((rc = ops->info(c->self, &info)) != EQM_OK ||
        (rc = ops->stream_source(c->self, &ss)) != EQM_OK) {
        snprintf(err, errlen, "%s: %s", label, host_ctx_error(c->host));
        src_destroy(c);
        return rc;
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
    out->error = src_error;
    out->destroy = src_destroy;
    return EQM_OK;
}

/* ------------------------------------------------------------ one picked sample -- */

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
        return EQM_ERR_NOMEM;
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

int shard_source_pick(eqm_sample_source *src, int64_t epoch, int64_t index,
                      eqm_sample_source *out, char *err, size_t errlen)
{
    if (!src || src->next != src_next || index < 0) {
        snprintf(err, errlen, "shard_source_pick: needs a source from shard_source_create and "
                              "an index >= 0");
        return EQM_ERR_INVAL;
    }
    src_ctx *c = src->ctx;
    int rc = src_start_epoch(c, epoch);
    if (rc != EQM_OK) {
        snprintf(err, errlen, "%s", c->err);
        return rc;
    }
    eqm_raw_sample *r = NULL;
    for (int64_t k = 0; k <= index; k++) {
        char e[1024];
        rc = shard_stream_pop(c->stream, &r, e, sizeof e);
        if (rc == EQM_EOF) {
            snprintf(err, errlen, "sample %lld: epoch %lld of the stream has only %lld samples "
                     "(use --index below that)", (long long)index, (long long)epoch,
                     (long long)k);
            return EQM_ERR_INVAL;
        }
        if (rc != EQM_OK) {
            snprintf(err, errlen, "%s", e);
            return rc;
        }
        if (k < index)
            shard_stream_release(c->stream, r);
    }
    pick_ctx *p = calloc(1, sizeof *p);
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    if (!p || !buf) {
        free(p);
        free(buf);
        shard_stream_release(c->stream, r);
        snprintf(err, errlen, "out of memory");
        return EQM_ERR_NOMEM;
    }
    eqm_image im;
    int32_t label = -1;
    for (;;) {
        memset(&im, 0, sizeof im);
        im.data = buf;
        rc = src_decode(c, r, &im, cap, &label); /* releases r unless it asks for more room */
        if (rc != EQM_ERR_NOMEM || im.w <= 0 || (size_t)im.w * im.h * 3 <= cap)
            break;
        cap = (size_t)im.w * im.h * 3;
        uint8_t *nb = realloc(buf, cap);
        if (!nb) {
            shard_stream_release(c->stream, r);
            rc = EQM_ERR_NOMEM;
            snprintf(c->err, sizeof c->err, "out of memory");
            break;
        }
        buf = nb;
    }
    if (rc != EQM_OK) {
        snprintf(err, errlen, "sample %lld of epoch %lld: %s", (long long)index,
                 (long long)epoch, c->err);
        free(buf);
        free(p);
        return rc < 0 ? rc : EQM_ERR_FORMAT;
    }
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
    out->error = pick_error;
    out->destroy = pick_destroy;
    return EQM_OK;
}
