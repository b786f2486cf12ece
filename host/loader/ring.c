/* host/loader/ring.c: the worker threads and the ring of batch slots (protocol in
 * internal.h's struct comment and loader.c's header): claiming and filling batches,
 * epochs, handing batches to the consumer and back, counters. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader/internal.h"

static int64_t batches_in_epoch(const eqm_loader *l)
{
    if (l->src.n_samples < 0)
        return -1;
    return l->drop_last ? l->n_epoch / l->batch_stride
                        : (l->n_epoch + l->batch_stride - 1) / l->batch_stride;
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
    worker_mem_free(&m);
    return NULL;
}

void stop_workers(eqm_loader *l)
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
                errf(l->err, sizeof l->err, rc, "%.400s: start of epoch %lld: %.500s", l->desc,
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
        info->batches_per_epoch = l->drop_last ? l->n_samples / l->batch_stride
                                               : (l->n_samples + l->batch_stride - 1) / l->batch_stride;
    info->w = l->w;
    info->h = l->h;
    info->c = l->c;
    info->p = l->mode == EQM_LOADER_VIEWS ? l->p : 0;
    info->n_classes = l->src.n_classes;
    info->class_names = l->src.class_names;
    info->source_desc = l->desc;
    info->t_standardize = loader_ts_names[l->cfg.t_standardize];
    info->stream_samples = info->stream_batches = -1;
    if (l->src.n_samples < 0 && l->src.stream_length > 0) {
        int64_t n = l->src.stream_length, bs = l->batch_stride; /* global batches */
        if (l->limit > 0 && l->limit < n)
            n = l->limit;
        info->stream_samples = n;
        info->stream_batches = l->drop_last ? n / bs : (n + bs - 1) / bs;
    }
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
