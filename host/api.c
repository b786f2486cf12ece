/* host/api.c: logging, instance contexts and the eqm_host_api services table
 * (allocation, random streams, parallel_for, clock).
 *
 * Threads: one process-wide pool of compute threads (host_threads_init). parallel_for
 * runs chunks on the pool plus the calling thread. BLAS policy: OpenBLAS gets the same
 * thread count for calls made from the training thread; code running inside a
 * parallel_for body must not call BLAS (no nested BLAS threads). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "core.h"
#include "dist/dist.h"

/* ------------------------------------------------------------------ log --------- */

static int log_level = -1;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static const char *level_names[] = {"error", "warn", "info", "debug", "trace"};

static int log_level_get(void)
{
    if (log_level < 0) {
        const char *e = getenv("EQM_LOG");
        int l = EQM_LOG_INFO;
        if (e)
            for (int i = 0; i < 5; i++)
                if (!strncmp(e, level_names[i], strlen(level_names[i])))
                    l = i;
        log_level = l;
    }
    return log_level;
}

void host_log_set_level(int level) { log_level = level; }

static void (*log_sink)(int, const char *, void *);
static void *log_sink_ud;

void host_log_set_sink(void (*fn)(int level, const char *line, void *ud), void *ud)
{
    pthread_mutex_lock(&log_mutex);
    log_sink = fn;
    log_sink_ud = ud;
    pthread_mutex_unlock(&log_mutex);
}

void host_vlog(int level, const char *category, const char *fmt, va_list ap)
{
    if (level > log_level_get())
        return;
    if (level < 0)
        level = 0;
    if (level > 4)
        level = 4;
    char line[2048], tag[48] = ""; /* under MPI every rank's line names its rank */
    if (dist_size() > 1)
        snprintf(tag, sizeof tag, "[rank %d of %d] ", dist_rank(), dist_size());
    int n = snprintf(line, sizeof line, "%s%s %s: ", tag, level_names[level],
                     category ? category : "equimod");
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = strlen(line);
    while (len && line[len - 1] == '\n')
        line[--len] = '\0';
    pthread_mutex_lock(&log_mutex);
    if (log_sink)
        log_sink(level, line, log_sink_ud);
    else
        fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&log_mutex);
}

void host_log(int level, const char *category, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    host_vlog(level, category, fmt, ap);
    va_end(ap);
}

int errf(char *err, size_t errlen, int status, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ------------------------------------------------------------------ ctx --------- */
/* Error messages are per calling thread. One instance context may be used by several
 * threads at once (the loader's workers all decode through one dataset instance), so a
 * single message buffer per context would be a data race, and the failing thread could
 * read another thread's message. set_error therefore records the message in a small
 * table owned by the calling thread, keyed by (context, creation serial): the serial
 * keeps a context allocated at the address of a destroyed one from seeing its messages.
 * It also copies the message into h->error under err_mu: that copy is the fallback a
 * thread reads when it has set no message on h itself (for example a message set by
 * another thread, or when the table cannot be allocated). host_ctx_error(h) returns this
 * thread's latest message for h when there is one, else a copy of the fallback taken
 * under err_mu. The returned text stays valid on the calling thread until its next
 * set_error / host_ctx_error on h, or until it has used TL_ERR_SLOTS other contexts since
 * (least recently used entries are reused). Tables are freed at thread exit. */

#define TL_ERR_SLOTS 8

typedef struct host_ctx_full {
    eqm_host pub; /* first: an eqm_host * is a host_ctx_full * */
    uint64_t serial;
    host_grads_hook grads_final; /* api->grads_final on this context (NULL: a no-op) */
    void *grads_ctx;
} host_ctx_full;

typedef struct tl_err {
    const eqm_host *h;
    uint64_t serial;
    uint64_t used;  /* tick of the last use (LRU) */
    int own;        /* 1: set by this thread; 0: a copy of the shared fallback */
    char msg[sizeof(((eqm_host *)0)->error)];
} tl_err;

typedef struct tl_table {
    uint64_t tick;
    tl_err e[TL_ERR_SLOTS];
} tl_table;

static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t ctx_serial; /* guarded by err_mu */
static pthread_key_t tl_key;
static int tl_key_ok;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

static void tl_free(void *p) { free(p); }
static void tl_init(void) { tl_key_ok = pthread_key_create(&tl_key, tl_free) == 0; }

/* This thread's table (allocated on first use); NULL if out of memory. */
static tl_table *tl_get(void)
{
    pthread_once(&tl_once, tl_init);
    if (!tl_key_ok)
        return NULL;
    tl_table *t = pthread_getspecific(tl_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (t && pthread_setspecific(tl_key, t)) {
            free(t);
            t = NULL;
        }
    }
    return t;
}

static uint64_t ctx_serial_of(const eqm_host *h) { return ((const host_ctx_full *)h)->serial; }

/* The entry of h in t; with `create`, the least recently used entry is taken over. */
static tl_err *tl_find(tl_table *t, const eqm_host *h, int create)
{
    uint64_t serial = ctx_serial_of(h);
    tl_err *lru = &t->e[0];
    for (int i = 0; i < TL_ERR_SLOTS; i++) {
        tl_err *e = &t->e[i];
        if (e->h == h && e->serial == serial) {
            e->used = ++t->tick;
            return e;
        }
        if (e->used < lru->used)
            lru = e;
    }
    if (!create)
        return NULL;
    lru->h = h;
    lru->serial = serial;
    lru->used = ++t->tick;
    lru->own = 0;
    lru->msg[0] = 0;
    return lru;
}

eqm_host *host_ctx_create(const char *label)
{
    host_ctx_full *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    snprintf(f->pub.label, sizeof f->pub.label, "%s", label ? label : "host");
    pthread_mutex_lock(&err_mu);
    f->serial = ++ctx_serial;
    pthread_mutex_unlock(&err_mu);
    return &f->pub;
}

void host_ctx_set_grads_hook(eqm_host *h, host_grads_hook fn, void *ctx)
{
    if (!h)
        return;
    ((host_ctx_full *)h)->grads_final = fn;
    ((host_ctx_full *)h)->grads_ctx = ctx;
}

void host_ctx_destroy(eqm_host *h)
{
    if (!h)
        return;
    free((host_ctx_full *)h); /* entries keyed by its serial can never match again */
}

const char *host_ctx_error(const eqm_host *h)
{
    if (!h)
        return "";
    tl_table *t = tl_get();
    if (!t)
        return h->error; /* out of memory: the shared copy (may race) */
    tl_err *e = tl_find(t, h, 0);
    if (e && e->own)
        return e->msg;
    if (!e)
        e = tl_find(t, h, 1);
    pthread_mutex_lock(&err_mu);
    memcpy(e->msg, h->error, sizeof e->msg);
    pthread_mutex_unlock(&err_mu);
    e->msg[sizeof e->msg - 1] = 0;
    return e->msg;
}

const char *host_ctx_failure(eqm_host *h, const struct eqm_plugin *pl, const char *fn,
                             int status)
{
    static __thread char fallback[sizeof h->error];
    tl_table *t = h ? tl_get() : NULL;
    tl_err *e = t ? tl_find(t, h, 0) : NULL;
    if (e && e->own && e->msg[0]) {
        e->own = 0; /* consumed: read once */
        return e->msg;
    }
    char *out = t ? tl_find(t, h, 1)->msg : fallback;
    char who[512];
    const char *kn = pl ? kind_name((int)pl->desc.kind) : NULL;
    if (pl)
        snprintf(who, sizeof who, "%s plugin '%s' (%s)", kn ? kn : "?", pl->desc.name,
                 pl->path ? pl->path : "?");
    else
        snprintf(who, sizeof who, "%s", h ? h->label : "plugin");
    snprintf(out, sizeof fallback,
             "%s: %s() returned %d (%s) and set no message (a plugin function returning "
             "anything but EQM_OK records why with api->set_error)",
             who, fn, status, eqm_status_str(status));
    return out;
}

static int ctx_vset_error(eqm_host *h, int status, const char *fmt, va_list ap)
{
    if (!h)
        return status;
    /* format first: the arguments may point into this thread's entry for h (a message
     * read back with host_ctx_error and wrapped) */
    char msg[sizeof h->error];
    vsnprintf(msg, sizeof msg, fmt, ap);
    tl_table *t = tl_get();
    if (t) {
        tl_err *e = tl_find(t, h, 1);
        memcpy(e->msg, msg, sizeof e->msg);
        e->own = 1;
    }
    pthread_mutex_lock(&err_mu);
    memcpy(h->error, msg, sizeof h->error);
    h->status = status;
    pthread_mutex_unlock(&err_mu);
    return status;
}

int host_ctx_set_error(eqm_host *h, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx_vset_error(h, status, fmt, ap);
    va_end(ap);
    return status;
}

static void api_log(eqm_host *h, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    host_vlog(level, h ? h->label : NULL, fmt, ap);
    va_end(ap);
}

static int api_set_error(eqm_host *h, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx_vset_error(h, status, fmt, ap);
    va_end(ap);
    return status;
}

/* ------------------------------------------------------------------ memory ------ */

/* A failed alloc records why on h, so that a plugin returning EQM_ERR_NOMEM without a
 * message of its own still reports the cause. */
static void *api_alloc(eqm_host *h, size_t bytes, size_t align)
{
    if (align == 0)
        align = 64;
    if (align & (align - 1)) {
        host_ctx_set_error(h, EQM_ERR_INVAL,
                           "api->alloc: alignment %zu is not a power of two (0 means 64)",
                           align);
        return NULL;
    }
    if (align < sizeof(void *)) /* 1, 2, 4: the allocator's own alignment is stricter */
        align = sizeof(void *);
    void *p = NULL;
    if (posix_memalign(&p, align, bytes ? bytes : 1)) {
        host_ctx_set_error(h, EQM_ERR_NOMEM, "api->alloc: out of memory (%zu bytes)", bytes);
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

static void api_free(eqm_host *h, void *p)
{
    (void)h;
    free(p);
}

/* ------------------------------------------------------------------ rng --------- */
/* xoshiro256** (Blackman & Vigna), seeded through splitmix64 from (seed, a, b, c). */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void api_rng_seed(eqm_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = seed;
    uint64_t k = splitmix64(&x);
    x = k ^ (a * 0xd1b54a32d192ed03ULL);
    k = splitmix64(&x);
    x = k ^ (b * 0xabc98388fb8fac03ULL);
    k = splitmix64(&x);
    x = k ^ (c * 0x8cb92ba72f3d8dd7ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t api_rng_u64(eqm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double api_rng_uniform(eqm_rng *r) { return (api_rng_u64(r) >> 11) * 0x1.0p-53; }

static uint64_t api_rng_below(eqm_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    uint64_t lim = -n % n; /* 2^64 mod n: reject below it for an unbiased result */
    for (;;) {
        uint64_t x = api_rng_u64(r);
        if (x >= lim)
            return x % n;
    }
}

static double api_rng_normal(eqm_rng *r)
{
    double u1 = api_rng_uniform(r), u2 = api_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------------ threads ----- */

static struct pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    int n_threads;      /* including the caller */
    pthread_t *workers;
    uint64_t generation;
    int pending;        /* workers still running the current job */
    eqm_parallel_fn fn;
    void *ctx;
    size_t n, chunk;
    size_t next;        /* next chunk start, guarded by mu */
    int stop;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          0, NULL, 0, 0, NULL, NULL, 0, 0, 0, 0};

static int pool_take(size_t *b, size_t *e)
{
    pthread_mutex_lock(&pool.mu);
    int ok = pool.next < pool.n;
    if (ok) {
        *b = pool.next;
        *e = pool.next + pool.chunk < pool.n ? pool.next + pool.chunk : pool.n;
        pool.next = *e;
    }
    pthread_mutex_unlock(&pool.mu);
    return ok;
}

static void *pool_worker(void *arg)
{
    (void)arg;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&pool.mu);
        while (!pool.stop && pool.generation == seen)
            pthread_cond_wait(&pool.go, &pool.mu);
        if (pool.stop) {
            pthread_mutex_unlock(&pool.mu);
            return NULL;
        }
        seen = pool.generation;
        pthread_mutex_unlock(&pool.mu);
        size_t b, e;
        while (pool_take(&b, &e))
            pool.fn(pool.ctx, b, e);
        pthread_mutex_lock(&pool.mu);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.mu);
    }
}

static void pool_shutdown(void)
{
    if (!pool.workers)
        return;
    pthread_mutex_lock(&pool.mu);
    pool.stop = 1;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.n_threads - 1; i++)
        pthread_join(pool.workers[i], NULL);
    free(pool.workers);
    pool.workers = NULL;
}

int host_threads_check(const char *key, int64_t n, char *err, size_t errlen)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    long bound = cores * HOST_THREADS_PER_CORE;
    if (bound < HOST_THREADS_FLOOR)
        bound = HOST_THREADS_FLOOR;
    if (n <= bound)
        return EQM_OK;
    return errf(err, errlen, EQM_ERR_INVAL,
                "%s = %lld: this machine has %ld online CPUs; so many threads only "
                "oversubscribe them and crawl (set %s = 0 for one per CPU, or at most %ld)",
                key, (long long)n, cores, key, bound);
}

void host_threads_init(int n)
{
    if (pool.n_threads)
        return;
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        const char *e = getenv("EQM_THREADS");
        n = e ? atoi(e) : (int)(c > 0 ? c : 1);
        if (n <= 0)
            n = 1;
    }
    pool.n_threads = n;
    openblas_set_num_threads(n);
    if (n > 1) {
        pool.workers = calloc((size_t)n - 1, sizeof(pthread_t));
        if (!pool.workers) {
            pool.n_threads = 1;
        } else {
            for (int i = 0; i < n - 1; i++)
                if (pthread_create(&pool.workers[i], NULL, pool_worker, NULL)) {
                    pool.n_threads = i + 1;
                    break;
                }
        }
        atexit(pool_shutdown);
    }
}

int host_threads(void)
{
    if (!pool.n_threads)
        host_threads_init(0);
    return pool.n_threads;
}

static int api_parallel_for(eqm_host *h, size_t n, size_t grain, eqm_parallel_fn fn, void *ctx)
{
    (void)h;
    int nt = host_threads();
    if (grain == 0)
        grain = 1;
    if (n == 0)
        return EQM_OK;
    if (nt <= 1 || n <= grain) {
        fn(ctx, 0, n);
        return EQM_OK;
    }
    size_t chunk = (n + (size_t)nt * 4 - 1) / ((size_t)nt * 4);
    if (chunk < grain)
        chunk = grain;
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunk = chunk;
    pool.next = 0;
    pool.pending = nt - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    size_t b, e;
    while (pool_take(&b, &e))
        fn(ctx, b, e);
    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    return EQM_OK;
}

static uint64_t api_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The nn, image and io tables are defined in host/nn/nn_api.c, host/services/image.c and
 * host/services/io.c. They are referenced here (no weak defaults), so every program that
 * links the static libeqmhost gets all three. */

/* ABI 1.4: the module says which of its gradients are final (host_api.h); the trainer's
 * hook on the module's context acts on it (MPI: starts their all-reduce), else nothing. */
static int api_grads_final(eqm_host *h, int first, int count)
{
    host_ctx_full *f = (host_ctx_full *)h;
    if (!f || !f->grads_final)
        return EQM_OK;
    return f->grads_final(f->grads_ctx, h, first, count);
}

static eqm_host_api the_api;

static void api_init(void)
{
    eqm_host_api *a = &the_api;
    a->size = sizeof *a;
    a->abi_major = EQM_ABI_MAJOR;
    a->abi_minor = EQM_ABI_MINOR;
    a->log = api_log;
    a->set_error = api_set_error;
    a->alloc = api_alloc;
    a->free = api_free;
    a->rng_seed = api_rng_seed;
    a->rng_u64 = api_rng_u64;
    a->rng_uniform = api_rng_uniform;
    a->rng_below = api_rng_below;
    a->rng_normal = api_rng_normal;
    a->parallel_for = api_parallel_for;
    a->now_ns = api_now_ns;
    a->nn = nn_api_table();
    a->image = image_api_table();
    a->io = io_api_table();
    a->grads_final = api_grads_final;
}

const eqm_host_api *host_api(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, api_init);
    return &the_api;
}
