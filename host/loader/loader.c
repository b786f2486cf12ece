/* host/loader/loader.c: the batch queue (see loader.h for the contract).
 *
 * Structure: a loader owns its sample source (source/source.h) and so the dataset instance, one
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

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader/internal.h"


/* The ring's size before it is allocated: larger than half the machine's memory, it would
 * fail (or swap) late; the error names the keys to change. (A batch larger than the data
 * is the trainer's to refuse: it knows the epoch.) */
static int ring_size_check(const eqm_loader *l, char *err, size_t n)
{
    const int views = l->mode == EQM_LOADER_VIEWS ? 3 : 1;
    double per_slot = (double)l->batch_size *
                      ((double)views * l->w * l->h * l->c * sizeof(float) +
                       (l->mode == EQM_LOADER_VIEWS ? 4.0 * (l->p ? l->p : 1) * sizeof(float)
                                                    : 0) +
                       sizeof(int32_t) + sizeof(int64_t));
    double ring = per_slot * l->n_slots;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double mem = pages > 0 && page > 0 ? (double)pages * page : 0;
    if (mem > 0 && ring > mem / 2)
        return errf(err, n, EQM_ERR_NOMEM,
                    "the batch ring would take %.1f GiB (%d slots of loader.batch_size = %lld "
                    "x %d views of %dx%dx%d floats), more than half of this machine's %.1f GiB: "
                    "lower loader.batch_size or loader.prefetch",
                    ring / 1073741824.0, l->n_slots, (long long)l->batch_size, views, l->w,
                    l->h, l->c, mem / 1073741824.0);
    return EQM_OK;
}

static int loader_finish(eqm_loader *l, char *err, size_t n)
{
    if (l->batch_stride != l->batch_size) { /* a data-parallel slice */
        if (l->src.n_samples < 0 && !l->drop_last) /* (fill.c: every rank reads the stream) */
            return errf(err, n, EQM_ERR_INVAL,
                        "loader.drop_last = false with a streaming dataset (%s) under %lld "
                        "MPI ranks: the size of the stream's last global batch is known only "
                        "at its end, and the ranks' slices of a partial batch would differ in "
                        "size; set loader.drop_last = true", l->src.desc ? l->src.desc :
                        "shards", (long long)(l->batch_stride / l->batch_size));
        if (l->src.n_samples >= 0 && !l->drop_last && l->n_samples % l->batch_stride)
            return errf(err, n, EQM_ERR_INVAL,
                        "loader.drop_last = false with %lld samples, not a multiple of the "
                        "global batch %lld: the ranks' last batch would differ in size; set "
                        "loader.drop_last = true", (long long)l->n_samples,
                        (long long)l->batch_stride);
    }
    if (l->src.n_samples >= 0 && !l->src.get)
        return errf(err, n, EQM_ERR_INVAL, "loader: random-access source without get()");
    if (l->src.n_samples < 0 && (!l->src.next || !l->src.decode))
        return errf(err, n, EQM_ERR_INVAL, "loader: streaming source without next()/decode()");
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
            return errf(err, n, EQM_ERR_INVAL,
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
    if ((rc = ring_size_check(l, err, n)))
        return rc;
    size_t vs = (size_t)l->w * l->h * l->c, B = (size_t)l->batch_size;
    l->slots = calloc((size_t)l->n_slots, sizeof(slot));
    if (!l->slots)
        return errf(err, n, EQM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < l->n_slots; i++) {
        eqm_batch *b = &l->slots[i].b;
        b->w = l->w;
        b->h = l->h;
        b->c = l->c;
        b->p = l->mode == EQM_LOADER_VIEWS ? l->p : 0;
        const int views = l->mode == EQM_LOADER_VIEWS ? 3 : 1;
        b->x0 = l->api->alloc(NULL, views * B * vs * sizeof(float), 64);
        b->labels = l->api->alloc(NULL, B * sizeof(int32_t), 64);
        b->sample_ids = l->api->alloc(NULL, B * sizeof(int64_t), 64);
        if (!b->x0 || !b->labels || !b->sample_ids)
            return errf(err, n, EQM_ERR_NOMEM, "loader: cannot allocate the batch ring");
        if (l->mode == EQM_LOADER_VIEWS) {
            size_t tb = 2 * B * (size_t)(l->p ? l->p : 1) * sizeof(float);
            b->t1 = l->api->alloc(NULL, tb, 64);
            b->t = l->api->alloc(NULL, tb, 64);
            if (!b->t1 || !b->t)
                return errf(err, n, EQM_ERR_NOMEM, "loader: cannot allocate the batch ring");
        }
    }
    if (l->src.n_samples >= 0) {
        l->order = malloc((size_t)(l->n_samples ? l->n_samples : 1) * sizeof(int64_t));
        if (!l->order)
            return errf(err, n, EQM_ERR_NOMEM, "out of memory");
    }
    l->threads = calloc((size_t)l->n_workers, sizeof(pthread_t));
    if (!l->threads)
        return errf(err, n, EQM_ERR_NOMEM, "out of memory");
    l->epoch = -1;
    l->n_batches = 0;
    l->stream_eof_at = -1;
    host_log(EQM_LOG_INFO, "loader", "%s; %s views %dx%dx%d, t %d fields (%s), batch %lld, %d workers",
             l->desc, l->mode == EQM_LOADER_VIEWS ? "3" : "1", l->w, l->h, l->c,
             l->mode == EQM_LOADER_VIEWS ? l->p : 0,
             l->mode == EQM_LOADER_VIEWS ? loader_ts_names[l->cfg.t_standardize] : "-",
             (long long)l->batch_size, l->n_workers);
    return EQM_OK;
}

eqm_loader *loader_alloc(void)
{
    eqm_loader *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->stream_mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    return l;
}

/* The [data] section's source for `split`: random access (dataset_source_open) or
 * streaming (shard_source_create, seed [run] seed, rank 0 of world 1: under MPI every rank
 * reads the whole stream and keeps its slice, fill.c); with o->pick_set and a
 * streaming dataset, the one sample of training's batch (shard_source_pick). The bound
 * options go to l->ds_opts (the loader frees them after the source). */
static int open_source(eqm_loader *l, eqm_config *cfg, const eqm_registry *reg,
                       const char *split, const eqm_loader_opts *o, char *err, size_t errlen)
{
    const eqm_plugin *pl = NULL;
    int rc = config_bind_plugin(cfg, reg, "data", EQM_KIND_DATASET, &pl, &l->ds_opts, err,
                                errlen);
    if (rc)
        return rc;
    if (pl->ops.dataset.get)
        return dataset_source_open(pl, l->ds_opts, split, &l->src, err, errlen);
    eqm_sample_source stream;
    rc = shard_source_create(pl, l->ds_opts, split, l->seed, 0, 1, &stream, err, errlen);
    if (rc || !o || !o->pick_set) {
        if (!rc)
            l->src = stream;
        return rc;
    }
    rc = shard_source_pick(&stream, o->pick_epoch, o->pick_index, l->cfg.batch_size, &l->src,
                           err, errlen);
    if (rc)
        stream.destroy(stream.ctx);
    return rc;
}

int loader_open(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg, const char *split,
                const eqm_loader_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    eqm_loader *l = loader_alloc();
    if (!l)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    int rc = loader_setup(l, cfg, reg, o, err, errlen);
    if (!rc)
        rc = open_source(l, cfg, reg, split, o, err, errlen);
    if (rc) {
        memset(&l->src, 0, sizeof l->src);
        loader_free(l);
        return rc;
    }
    l->own_src = 1;
    snprintf(l->desc, sizeof l->desc, "%s", l->src.desc ? l->src.desc : "sample source");
    l->n_samples = l->src.n_samples;
    l->limit = o ? o->limit : 0;
    if (o && o->limit > 0 && l->n_samples >= 0 && o->limit < l->n_samples)
        l->n_samples = o->limit;
    rc = loader_finish(l, err, errlen);
    if (rc) {
        loader_free(l);
        return rc;
    }
    *out = l;
    return EQM_OK;
}

int loader_create(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg, const char *split,
                  const eqm_loader_opts *o, char *err, size_t errlen)
{
    return loader_open(out, cfg, reg, split, o, err, errlen);
}

int loader_create_source(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg,
                         const eqm_sample_source *src, const eqm_loader_opts *o, char *err,
                         size_t errlen)
{
    *out = NULL;
    eqm_loader *l = loader_alloc();
    if (!l)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    int rc = loader_setup(l, cfg, reg, o, err, errlen);
    if (rc)
        goto fail;
    l->src = *src;
    snprintf(l->desc, sizeof l->desc, "%s", src->desc ? src->desc : "sample source");
    l->n_samples = src->n_samples;
    l->limit = o ? o->limit : 0;
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

void loader_free(eqm_loader *l)
{
    if (!l)
        return;
    stop_workers(l);
    if (l->slots)
        for (int i = 0; i < l->n_slots; i++) {
            eqm_batch *b = &l->slots[i].b;
            l->api->free(NULL, b->x0); /* x1, x2 point into it, t2 into t1 */
            l->api->free(NULL, b->t1);
            l->api->free(NULL, b->t);
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
        free(a->t_names);
    }
    if (l->own_src && l->src.destroy)
        l->src.destroy(l->src.ctx);
    free(l->ds_opts);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->stream_mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

void loader_destroy(eqm_loader *l) { loader_free(l); }
