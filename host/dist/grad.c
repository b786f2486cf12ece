/* host/dist/grad.c: bucketed gradient averaging over the ranks (see grad.h). */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

#include <equimod/status.h>

#include "core.h"
#include "dist/dist.h"
#include "dist/grad.h"

struct dist_grad {
    float *g;
    size_t n, bs, nb;  /* floats, bucket size, buckets */
    int mode, size;
    size_t *marked;    /* (nb) floats marked ready this step */
    unsigned char *started;
    dist_grad_stats st;
    uint64_t finish_t0;
    int failed;
    char errmsg[512];
#ifdef HAVE_MPI
    MPI_Comm comm;
    MPI_Request *req; /* TEST: (nb) */
    /* THREAD: a FIFO of bucket ids handed to the thread, and how many it has done */
    pthread_t th;
    int th_up, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    size_t *queue, q_in, q_out, done;
    uint64_t *t_begin, *t_end; /* (nb) per bucket, this step */
#endif
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t bucket_len(const dist_grad *g, size_t b)
{
    size_t o = b * g->bs;
    return g->n - o < g->bs ? g->n - o : g->bs;
}

static void scale_bucket(dist_grad *g, size_t b)
{
    float *p = g->g + b * g->bs, k = 1.f / (float)g->size;
    size_t m = bucket_len(g, b);
    for (size_t i = 0; i < m; i++)
        p[i] *= k;
}

#ifdef HAVE_MPI
static int reduce_bucket(dist_grad *g, size_t b)
{
    size_t m = bucket_len(g, b);
    int rc = MPI_Allreduce(MPI_IN_PLACE, g->g + b * g->bs, (int)m, MPI_FLOAT, MPI_SUM, g->comm);
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        snprintf(g->errmsg, sizeof g->errmsg, "rank %d: gradient all-reduce of bucket %zu "
                 "failed: %s", dist_rank(), b, msg);
        return EQM_ERR_IO;
    }
    scale_bucket(g, b);
    return EQM_OK;
}

static void *comm_main(void *vg)
{
    dist_grad *g = vg;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (g->q_out == g->q_in && !g->stop)
            pthread_cond_wait(&g->cv_work, &g->mu);
        if (g->q_out == g->q_in && g->stop)
            break;
        size_t b = g->queue[g->q_out++];
        pthread_mutex_unlock(&g->mu);
        uint64_t t0 = mono_ns();
        int rc = g->failed ? EQM_ERR_IO : reduce_bucket(g, b);
        uint64_t t1 = mono_ns();
        pthread_mutex_lock(&g->mu);
        g->t_begin[b] = t0;
        g->t_end[b] = t1;
        if (rc)
            g->failed = 1;
        g->done++;
        pthread_cond_signal(&g->cv_done);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}
#endif

int dist_grad_create(dist_grad **out, float *grads, size_t n, size_t bucket_floats, int mode,
                     char *err, size_t errlen)
{
    *out = NULL;
    if (!grads || !n || !bucket_floats || bucket_floats > (1u << 30))
        return errf(err, errlen, EQM_ERR_INVAL, "gradient buckets: %zu floats in buckets of "
                    "%zu (both > 0, buckets at most 2^30)", n, bucket_floats);
    dist_grad *g = calloc(1, sizeof *g);
    if (!g)
        return errf(err, errlen, EQM_ERR_NOMEM, "gradient buckets: out of memory");
    g->g = grads;
    g->n = n;
    g->bs = bucket_floats;
    g->nb = (n + bucket_floats - 1) / bucket_floats;
    g->size = dist_size();
    g->mode = g->size > 1 ? mode : DIST_GRAD_SYNC;
    g->marked = calloc(g->nb, sizeof *g->marked);
    g->started = calloc(g->nb, 1);
    if (!g->marked || !g->started)
        goto oom;
#ifdef HAVE_MPI
    if (g->size > 1) {
        g->comm = *(MPI_Comm *)dist_mpi_comm(1);
        if (g->mode == DIST_GRAD_THREAD && !dist_thread_multiple())
            g->mode = DIST_GRAD_TEST;
        g->req = malloc(g->nb * sizeof *g->req);
        g->queue = calloc(g->nb, sizeof *g->queue);
        g->t_begin = calloc(g->nb, sizeof *g->t_begin);
        g->t_end = calloc(g->nb, sizeof *g->t_end);
        if (!g->req || !g->queue || !g->t_begin || !g->t_end)
            goto oom;
        for (size_t b = 0; b < g->nb; b++)
            g->req[b] = MPI_REQUEST_NULL;
        if (g->mode == DIST_GRAD_THREAD) {
            pthread_mutex_init(&g->mu, NULL);
            pthread_cond_init(&g->cv_work, NULL);
            pthread_cond_init(&g->cv_done, NULL);
            if (pthread_create(&g->th, NULL, comm_main, g)) {
                dist_grad_destroy(g);
                return errf(err, errlen, EQM_ERR_NOMEM,
                            "gradient buckets: cannot start the communication thread");
            }
            g->th_up = 1;
        }
    }
#endif
    *out = g;
    return EQM_OK;
oom:
    dist_grad_destroy(g);
    return errf(err, errlen, EQM_ERR_NOMEM, "gradient buckets: out of memory");
}

void dist_grad_destroy(dist_grad *g)
{
    if (!g)
        return;
#ifdef HAVE_MPI
    if (g->th_up) {
        pthread_mutex_lock(&g->mu);
        g->stop = 1;
        pthread_cond_signal(&g->cv_work);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->th, NULL);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv_work);
        pthread_cond_destroy(&g->cv_done);
    }
    if (g->req)
        for (size_t b = 0; b < g->nb; b++)
            if (g->req[b] != MPI_REQUEST_NULL)
                MPI_Wait(&g->req[b], MPI_STATUS_IGNORE);
    free(g->req);
    free(g->queue);
    free(g->t_begin);
    free(g->t_end);
#endif
    free(g->marked);
    free(g->started);
    free(g);
}

int dist_grad_mode_of(const dist_grad *g) { return g->mode; }

#ifdef HAVE_MPI
/* Hand bucket b over (THREAD) or post its non-blocking all-reduce (TEST). */
static void start_bucket(dist_grad *g, size_t b)
{
    g->started[b] = 1;
    if (g->mode == DIST_GRAD_THREAD) {
        pthread_mutex_lock(&g->mu);
        g->queue[g->q_in++] = b;
        pthread_cond_signal(&g->cv_work);
        pthread_mutex_unlock(&g->mu);
    } else if (g->mode == DIST_GRAD_TEST) {
        int rc = MPI_Iallreduce(MPI_IN_PLACE, g->g + b * g->bs, (int)bucket_len(g, b),
                                MPI_FLOAT, MPI_SUM, g->comm, &g->req[b]);
        if (rc != MPI_SUCCESS) {
            g->failed = 1;
            snprintf(g->errmsg, sizeof g->errmsg, "rank %d: MPI_Iallreduce of bucket %zu "
                     "failed (error %d)", dist_rank(), b, rc);
        }
    }
}
#endif

void dist_grad_progress(dist_grad *g)
{
#ifdef HAVE_MPI
    if (g && g->mode == DIST_GRAD_TEST) {
        int flag;
        MPI_Testall((int)g->nb, g->req, &flag, MPI_STATUSES_IGNORE);
    }
#else
    (void)g;
#endif
}

int dist_grad_ready(dist_grad *g, size_t off, size_t n)
{
    if (!g || g->size == 1)
        return EQM_OK;
    if (off > g->n || n > g->n - off)
        return EQM_ERR_INVAL;
    /* add the range to the buckets it covers */
    size_t end = off + n;
    while (off < end) {
        size_t b = off / g->bs, bend = (b + 1) * g->bs < end ? (b + 1) * g->bs : end;
        g->marked[b] += bend - off;
        off = bend;
    }
#ifdef HAVE_MPI
    if (g->mode != DIST_GRAD_SYNC)
        for (size_t b = 0; b < g->nb; b++)
            if (!g->started[b] && g->marked[b] >= bucket_len(g, b)) {
                start_bucket(g, b);
                g->st.early++;
            }
    dist_grad_progress(g);
#endif
    return EQM_OK;
}

int dist_grad_finish(dist_grad *g, char *err, size_t errlen)
{
    if (!g)
        return EQM_OK;
    if (g->size == 1) {
        g->st.steps++;
        return EQM_OK;
    }
    uint64_t tf = mono_ns();
    int rc = EQM_OK;
#ifdef HAVE_MPI
    if (g->mode == DIST_GRAD_SYNC) {
        for (size_t b = 0; b < g->nb && !rc; b++)
            rc = reduce_bucket(g, b);
        uint64_t t1 = mono_ns();
        g->st.comm_ns += t1 - tf;
    } else {
        for (size_t b = 0; b < g->nb; b++)
            if (!g->started[b])
                start_bucket(g, b);
        if (g->mode == DIST_GRAD_THREAD) {
            pthread_mutex_lock(&g->mu);
            while (g->done < g->nb)
                pthread_cond_wait(&g->cv_done, &g->mu);
            pthread_mutex_unlock(&g->mu);
            for (size_t b = 0; b < g->nb; b++) {
                g->st.comm_ns += g->t_end[b] - g->t_begin[b];
                uint64_t e = g->t_end[b] < tf ? g->t_end[b] : tf;
                if (e > g->t_begin[b])
                    g->st.overlap_ns += e - g->t_begin[b];
            }
            g->q_in = g->q_out = g->done = 0;
        } else {
            int mrc = MPI_Waitall((int)g->nb, g->req, MPI_STATUSES_IGNORE);
            if (mrc != MPI_SUCCESS && !g->failed) {
                g->failed = 1;
                snprintf(g->errmsg, sizeof g->errmsg, "rank %d: gradient all-reduce failed "
                         "(error %d)", dist_rank(), mrc);
            }
            for (size_t b = 0; b < g->nb; b++)
                scale_bucket(g, b);
            g->st.comm_ns += mono_ns() - tf;
        }
        if (g->failed)
            rc = EQM_ERR_IO;
    }
    if (rc)
        errf(err, errlen, rc, "%s", g->errmsg);
#else
    (void)err, (void)errlen;
#endif
    uint64_t t1 = mono_ns();
    g->st.wait_ns += t1 - tf;
    g->st.steps++;
    g->st.buckets += g->nb;
    uint64_t bytes = (uint64_t)(2.0 * (g->size - 1) / g->size * (double)(g->n * sizeof(float)));
    g->st.bytes += bytes;
    dist_stats_add(t1 - tf, bytes);
    memset(g->marked, 0, g->nb * sizeof *g->marked);
    memset(g->started, 0, g->nb);
    return rc;
}

dist_grad_stats dist_grad_stats_get(const dist_grad *g)
{
    dist_grad_stats z = {0};
    return g ? g->st : z;
}
