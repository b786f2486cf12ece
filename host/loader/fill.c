/* host/loader/fill.c: one batch: its samples read from the source (random access by the
 * epoch's order, or this batch's turn at the stream), its rows made by the pipelines, and
 * bad streamed samples substituted by the rule of source.h (batch_substitute).
 *
 * Data-parallel slices of a stream (MPI, issue 13): every rank reads the SAME stream (the
 * shard source is built with rank 0 of world 1 everywhere, so its shard order and shuffle
 * buffer are those of one process), takes the whole global batch k (batch_stride raw
 * samples) at its turn and decodes only its rows [slice_off, slice_off + batch_size); the
 * other raw samples are given back undecoded (src.release). A row's augmentation key is its
 * GLOBAL stream position k * batch_stride + row, so a global batch holds the same samples
 * and t whatever the number of ranks. Bad samples follow the substitution rule over the
 * whole global batch: a bad row of the slice may take a good sample from outside it (that
 * one sample is then decoded too), exactly as one process would. The DCT scale of a
 * decoded sample is planned for its own row only (plan_scale with one key), not for the
 * bad rows that borrow it, since those may lie in another rank's slice. Why not split the
 * shard list by rank (which shard_stream allows: each rank would read 1/N of the bytes):
 * the samples of a global batch would then depend on N (which shards feed which slice,
 * epoch ends that differ per rank), unless the order were defined by N-independent
 * interleaved groups; reading everything costs each rank the full I/O and tar parsing of
 * an epoch (README, "MPI") but no JPEG decoding beyond its slice. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/internal.h"

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
        if (source_grow(rc) && img->w > 0 && img->h > 0) {
            g->W = img->w;
            g->H = img->h;
            M = plan_scale(l, epoch, plan_key0, plan_nk, img->w, img->h);
        } else if (rc == EQM_SKIP) {
            return EQM_SKIP; /* a bad streamed sample (counted, released): substituted */
        } else {
            return errf(err, n, rc < 0 ? rc : EQM_ERR_FORMAT, "%s: sample %lld: %s", l->desc,
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
            return errf(err, n, EQM_ERR_NOMEM, "out of memory");
        memset(img, 0, sizeof *img);
        img->data = m->img;
        img->format = EQM_PIX_U8;
        int rc = raw ? (M < 8 ? l->src.decode_scaled(l->src.ctx, raw, M, img, m->img_cap, label)
                              : l->src.decode(l->src.ctx, raw, img, m->img_cap, label))
                     : l->src.get(l->src.ctx, index, img, m->img_cap, label);
        if (source_grow(rc) && img->w > 0 && img->h > 0 && img->c > 0 &&
            (size_t)img->w * img->h * img->c > m->img_cap) {
            if (!grow_buf((void **)&m->img, &m->img_cap, (size_t)img->w * img->h * img->c))
                return errf(err, n, EQM_ERR_NOMEM, "out of memory");
            raw = raw; /* decode is retried with the same raw sample */
            continue;
        }
        if (rc == EQM_SKIP && raw)
            return EQM_SKIP; /* a bad streamed sample (counted, released): substituted */
        if (rc)
            return errf(err, n, rc < 0 ? rc : EQM_ERR_FORMAT, "%s: sample %lld: %s", l->desc,
                           (long long)index, l->src.error ? l->src.error(l->src.ctx) : "read failed");
        if (img->format != EQM_PIX_U8 || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
            return errf(err, n, EQM_ERR_FORMAT, "%s: sample %lld: not an 8-bit 1/3-channel image",
                           l->desc, (long long)index);
        return EQM_OK;
    }
    return errf(err, n, EQM_ERR_NOMEM, "%s: sample %lld: buffer growth failed", l->desc,
                   (long long)index);
}

int read_sample(eqm_loader *l, worker_mem *m, int64_t index, void *raw, eqm_image *img,
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
        int rc = pipe_run(l, &l->pipe[v], m, img, g, &r, tbuf, dst, NULL, err, n);
        if (rc)
            return rc;
        if (v > 0) /* the fields [equimod] t_fields keeps */
            t_gather(l, tbuf, (v == 1 ? b->t1 : b->t2) + (size_t)l->p * row);
    }
    return EQM_OK;
}

/* A batch of n rows: the views and the raw t of view 2 follow those of view 1 (loader.h). */
static void batch_layout(const eqm_loader *l, eqm_batch *b, int n)
{
    b->n = n;
    if (l->mode != EQM_LOADER_VIEWS)
        return;
    size_t vs = (size_t)l->w * l->h * l->c;
    b->x1 = b->x0 + (size_t)n * vs;
    b->x2 = b->x1 + (size_t)n * vs;
    b->t2 = b->t1 + (size_t)n * l->p;
}

static int fill_random(eqm_loader *l, worker_mem *m, eqm_batch *b, int64_t k, char *err,
                       size_t n)
{
    int64_t start = k * l->batch_stride + l->slice_off, end = start + l->batch_size;
    if (end > l->n_epoch)
        end = l->n_epoch;
    batch_layout(l, b, (int)(end - start));
    for (int row = 0; row < b->n; row++) {
        int64_t idx = l->order[start + row];
        eqm_image img;
        int32_t label;
        int rc = read_sample(l, m, idx, NULL, &img, &label, err, n);
        if (rc)
            return rc;
        if (l->src.n_classes > 0 && (label < 0 || label >= l->src.n_classes))
            return errf(err, n, EQM_ERR_FORMAT, "%s: sample %lld has label %d, expected 0..%d",
                        l->desc, (long long)idx, label, l->src.n_classes - 1);
        b->labels[row] = label;
        b->sample_ids[row] = idx;
        rc = make_row(l, m, b, row, idx, &img, NULL, err, n);
        if (rc)
            return rc;
    }
    return EQM_OK;
}

/* Batch k's turn at the stream: pull up to batch_stride raw samples (the global batch; =
 * batch_size without a slice) in order into raws/ids. *got: how many; *hit_eof: the
 * stream ended. */
static int stream_take(eqm_loader *l, slot *s, int64_t k, void **raws, int64_t *ids, int *got,
                       int *hit_eof, char *err, size_t n)
{
    int rc = EQM_OK;
    *got = 0;
    *hit_eof = 0;
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
    if (skip)
        return EQM_OK;
    while (*got < l->batch_stride) {
        int64_t id = -1;
        rc = l->src.next(l->src.ctx, &raws[*got], &id);
        if (rc == EQM_EOF) {
            rc = EQM_OK;
            *hit_eof = 1;
            break;
        }
        if (rc) {
            rc = errf(err, n, rc < 0 ? rc : EQM_ERR_FORMAT, "%s: %s", l->desc,
                      l->src.error ? l->src.error(l->src.ctx) : "next failed");
            break;
        }
        ids[(*got)++] = id;
    }
    pthread_mutex_lock(&l->mu);
    if (*hit_eof && (l->stream_eof_at < 0 || l->stream_eof_at > k + 1))
        l->stream_eof_at = k + 1;
    l->stream_turn = k + 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* The rows of a streamed batch, decoded lazily in row order for batch_substitute. The
 * image in m->img serves the rows [from, its row]; the first good row's image is kept
 * aside (m->keep) for the rows after the last good row. */
typedef struct stream_rows {
    eqm_loader *l;
    worker_mem *m;
    eqm_batch *b;
    int64_t k;
    void **raws;
    int64_t *ids;
    signed char *state; /* per row: 0 not read, 1 good, 2 bad */
    int r0, r1;         /* the rows of the (global) batch this loader makes: its slice */
    int from;
    eqm_image img;
    src_geom g;
    int32_t label;
    char bad_what[512];
    char *err;
    size_t n;
} stream_rows;

static int stream_row_good(void *ctx, int q)
{
    stream_rows *c = ctx;
    eqm_loader *l = c->l;
    if (c->state[q])
        return c->state[q] == 1;
    c->g = (src_geom){0, 0, 8};
    /* the scale is planned for row q's own views only: the bad rows that borrow the image
     * may belong to another rank's slice (see the header) */
    int rc = read_sample_g(l, c->m, c->ids[q], c->raws[q], &c->img, &c->label, &c->g,
                           c->b->epoch, c->k * l->batch_stride + q, 1, c->err, c->n);
    c->state[q] = rc == EQM_OK ? 1 : 2; /* the raw sample is released either way */
    if (rc == EQM_SKIP) {
        snprintf(c->bad_what, sizeof c->bad_what, "%s",
                 l->src.error ? l->src.error(l->src.ctx) : "bad sample");
        return 0;
    }
    if (rc)
        return rc;
    if (l->src.n_classes > 0 && (c->label < 0 || c->label >= l->src.n_classes))
        return errf(c->err, c->n, EQM_ERR_FORMAT,
                    "%s: stream position %lld has label %d, expected 0..%d", l->desc,
                    (long long)c->ids[q], c->label, l->src.n_classes - 1);
    return 1;
}

/* Rows [r0, r1) of the global batch (clipped to the slice) from one image with the given
 * label and sample id; batch row r - c->r0, augmentation key k * batch_stride + r. */
static int make_rows(stream_rows *c, int r0, int r1, const eqm_image *img, const src_geom *g,
                     int32_t label, int64_t id)
{
    int rc = EQM_OK;
    if (r1 > c->r1)
        r1 = c->r1;
    for (int r = r0; r < r1 && !rc; r++) {
        c->b->labels[r - c->r0] = label;
        c->b->sample_ids[r - c->r0] = id;
        rc = make_row(c->l, c->m, c->b, r - c->r0, c->k * c->l->batch_stride + r, img,
                      g->M < 8 ? g : NULL, c->err, c->n);
    }
    return rc;
}

/* The rows [c->r0, c->r1) of a streamed (global) batch of `got` raw samples
 * (batch_substitute over all `got` for bad ones: the batch is a function of its own raw
 * samples only, whatever worker or rank makes it). */
static int stream_fill(stream_rows *c, int got)
{
    worker_mem *m = c->m;
    int rc = EQM_OK, first_good = -1;
    eqm_image keep_img;
    src_geom keep_g = {0, 0, 8};
    int32_t keep_label = -1;
    for (int r = c->r0; r < c->r1 && !rc;) {
        int sub = -1;
        c->from = r;
        if ((rc = batch_substitute(got, r, stream_row_good, c, &sub)))
            break;
        if (sub < 0)
            return errf(c->err, c->n, EQM_ERR_FORMAT,
                        "%s: batch %lld of epoch %lld: all %d samples are bad (the last: "
                        "%s); check the shards, or use a larger batch_size",
                        c->l->desc, (long long)c->k, (long long)c->b->epoch, got,
                        c->bad_what);
        if (sub < r) { /* after the last good row: the first good row's image, kept when
                          it lies in this slice, else just decoded (a row before r0) */
            if (sub == first_good)
                rc = make_rows(c, r, got, &keep_img, &keep_g, keep_label, c->ids[sub]);
            else
                rc = make_rows(c, r, got, &c->img, &c->g, c->label, c->ids[sub]);
            break;
        }
        rc = make_rows(c, r, sub + 1, &c->img, &c->g, c->label, c->ids[sub]);
        if (first_good < 0 && !rc) {
            /* keep this image for trailing bad rows: swap it out of the decode buffer */
            first_good = sub;
            uint8_t *tb = m->keep;
            size_t tc = m->keep_cap;
            m->keep = m->img;
            m->keep_cap = m->img_cap;
            m->img = tb;
            m->img_cap = tc;
            keep_img = c->img; /* its data points into what is now m->keep */
            keep_g = c->g;
            keep_label = c->label;
        }
        r = sub + 1;
    }
    return rc;
}

static int fill_stream(eqm_loader *l, worker_mem *m, slot *s, int64_t k, char *err, size_t n);

int fill_batch(eqm_loader *l, worker_mem *m, slot *s, int64_t k, char *err, size_t n)
{
    eqm_batch *b = &s->b; /* b->epoch was set at claim time */
    b->index = k;
    int rc = l->src.n_samples >= 0 ? fill_random(l, m, b, k, err, n)
                                   : fill_stream(l, m, s, k, err, n);
    if (!rc && l->mode == EQM_LOADER_VIEWS) /* t1 then t2: 2n rows */
        loader_standardize_t(l, b->t1, b->t, 2 * b->n);
    return rc;
}

/* A streamed batch: batch k's raw samples, then its rows. */
static int fill_stream(eqm_loader *l, worker_mem *m, slot *s, int64_t k, char *err, size_t n)
{
    eqm_batch *b = &s->b;
    void **raws = calloc((size_t)l->batch_stride, sizeof(void *));
    int64_t *ids = calloc((size_t)l->batch_stride, sizeof(int64_t));
    signed char *state = calloc((size_t)l->batch_stride, 1);
    if (!raws || !ids || !state) {
        free(raws);
        free(ids);
        free(state);
        return errf(err, n, EQM_ERR_NOMEM, "out of memory");
    }
    int got = 0, hit_eof = 0;
    int rc = stream_take(l, s, k, raws, ids, &got, &hit_eof, err, n);
    /* this loader's rows [r0, r1) of the global batch (a slice needs drop_last: a partial
     * last global batch is dropped on every rank, loader_finish) */
    int r0 = (int)l->slice_off, r1 = (int)(l->slice_off + l->batch_size);
    if (r1 > got)
        r1 = got;
    if (r0 > r1)
        r0 = r1;
    /* a partial last batch that drop_last throws away is only released */
    int dropped = hit_eof && l->drop_last && got < l->batch_stride;
    batch_layout(l, b, dropped && l->batch_stride != l->batch_size ? 0 : r1 - r0);
    if (!rc && !dropped) {
        stream_rows c = {l, m, b, k, raws, ids, state, r0, r1, 0, {0}, {0, 0, 8}, -1, "",
                         err, n};
        rc = stream_fill(&c, got);
    }
    for (int row = 0; row < got; row++)
        if (!state[row]) { /* the raws not decoded: given back (decode released the others) */
            if (l->src.release) {
                l->src.release(l->src.ctx, raws[row]);
            } else {
                eqm_image img;
                int32_t lab;
                read_sample(l, m, ids[row], raws[row], &img, &lab, NULL, 0);
            }
        }
    free(raws);
    free(ids);
    free(state);
    return rc;
}

void worker_mem_free(worker_mem *m)
{
    free(m->img);
    free(m->keep);
    free(m->buf[0]);
    free(m->buf[1]);
    free(m->scratch);
}
