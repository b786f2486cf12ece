/* host/shards/stream.c: the shard stream (see shards.h): a producer thread reads shards
 * through shard_reader, parses them with libarchive from the reader's buffers (an
 * archive_read_open read callback hands out each block; nothing is extracted to disk),
 * groups members by key, mixes samples in a shuffle buffer and feeds a bounded queue.
 *
 * Sample memory: one buffer per sample holds all its member bodies (16-byte aligned);
 * shard_stream_release hands the sample back to a short free list the producer reuses.
 * Bytes held (member sizes of the shuffle buffer + queue + lent samples, counted when a
 * group is complete) are counted;
 * the producer waits while the queue is full or the byte budget is exceeded (unless the
 * queue is empty, so one oversized sample cannot deadlock the stream).
 * Left out: compressed tars, tar members split across shards (WebDataset never does it),
 * reading several shards concurrently (one io_uring with `depth` reads in flight already
 * keeps a disk busy; several streams can be created for more).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <archive.h>
#include <archive_entry.h>

#include "core.h"
#include "shards.h"

#define MAX_MEMBERS 8

/* Samples are recycled: shard_stream_release puts them on a short free list (under mu)
 * and the producer takes them from there, so the reader thread neither mallocs nor frees
 * per sample in the steady state (a free of memory malloc'd by the other thread costs an
 * arena lock handoff between the two threads). */
#define FREE_MAX 64                      /* samples kept on the free list */
#define FREE_BUF_MAX ((size_t)256 << 10) /* larger body buffers are freed, not kept */
#define BODY_ALIGN 16                    /* member bodies start at this alignment */

typedef struct sample {
    eqm_raw_sample raw; /* first: eqm_raw_sample * converts back */
    eqm_raw_member mem[MAX_MEMBERS];
    size_t off[MAX_MEMBERS]; /* member i's body at buf + off[i] (set when present) */
    unsigned present;        /* bit i: member i was read */
    char *key;               /* key_cap bytes */
    size_t key_cap;
    uint8_t *buf; /* all member bodies of the sample, buf_used of buf_cap bytes */
    size_t buf_cap, buf_used;
    const char *shard;
    size_t bytes; /* sum of the present members' sizes (counted in held_bytes once queued) */
    struct sample *next_free;
} sample;

struct shard_stream {
    shard_stream_opts o;
    char **paths;
    size_t n_paths;
    size_t *order;
    size_t n_order;
    char *members_buf;
    sample *free_list; /* under mu */
    size_t n_free;
    char *ext[MAX_MEMBERS];
    int n_ext;
    shard_reader *reader;

    /* producer state (producer thread only, between start and join) */
    pthread_t thread;
    int running;
    uint64_t epoch;
    eqm_rng rng;
    sample **shuf;
    size_t n_shuf;
    /* current group */
    sample *cur;
    int cur_bad;
    char cur_bad_why[256];

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t can_push, can_pop;
    sample **q;
    size_t q_cap, q_head, q_n;
    int done, stop, failed;
    int producer_waiting;
    size_t wake_n;          /* queue length that wakes waiting consumers */
    char fail_msg[1024];
    int64_t next_index;
    shard_stream_stats st;
    uint64_t warn_count;
};

/* ------------------------------------------------------------------ samples ----- */

static void sample_free(sample *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s->key);
    free(s);
}

/* Put a sample on the free list (mu held) or free it; returns 1 if kept, the caller
 * then frees nothing. */
static int recycle_locked(shard_stream *s, sample *smp)
{
    if (s->n_free >= FREE_MAX || smp->buf_cap > FREE_BUF_MAX)
        return 0;
    smp->next_free = s->free_list;
    s->free_list = smp;
    s->n_free++;
    return 1;
}

/* A sample from the free list (mu held), reset, or NULL when the list is empty. */
static sample *take_free_locked(shard_stream *s)
{
    sample *smp = s->free_list;
    if (!smp)
        return NULL;
    s->free_list = smp->next_free;
    s->n_free--;
    memset(&smp->raw, 0, sizeof smp->raw);
    memset(smp->mem, 0, sizeof smp->mem);
    smp->present = 0;
    smp->buf_used = 0;
    smp->bytes = 0;
    smp->next_free = NULL;
    return smp;
}

/* A sample the producer drops before it was counted in held_bytes. */
static void sample_drop(shard_stream *s, sample *smp)
{
    pthread_mutex_lock(&s->mu);
    int kept = recycle_locked(s, smp);
    pthread_mutex_unlock(&s->mu);
    if (!kept)
        sample_free(smp);
}

static void held_add(shard_stream *s, size_t b)
{
    pthread_mutex_lock(&s->mu);
    s->st.held_bytes += b;
    if (s->st.held_bytes > s->st.held_bytes_max)
        s->st.held_bytes_max = s->st.held_bytes;
    pthread_mutex_unlock(&s->mu);
}

/* Wake the producer only once there is room for a run of samples (hysteresis: half the
 * queue and a quarter of the byte budget free), or when the queue ran dry (its wait
 * condition lets it go on then), so a full queue does not cost a wake-up per sample. */
static void maybe_wake_producer(shard_stream *s)
{
    if (s->producer_waiting &&
        (s->q_n == 0 || (s->q_n <= s->q_cap / 2 &&
                         s->st.held_bytes <= s->o.queue_bytes - s->o.queue_bytes / 4)))
        pthread_cond_signal(&s->can_push);
}

static void release_locked(shard_stream *s, sample *smp)
{
    s->st.held_bytes -= smp->bytes < s->st.held_bytes ? smp->bytes : s->st.held_bytes;
    maybe_wake_producer(s);
}

void shard_stream_release(shard_stream *s, eqm_raw_sample *raw)
{
    if (!raw)
        return;
    sample *smp = (sample *)raw;
    pthread_mutex_lock(&s->mu);
    release_locked(s, smp);
    int kept = recycle_locked(s, smp);
    pthread_mutex_unlock(&s->mu);
    if (!kept)
        sample_free(smp);
}

/* Rate-limited warning: the first 10 in full, then every 1000th with the count. */
static void warn_bad(shard_stream *s, const char *msg)
{
    uint64_t k;
    pthread_mutex_lock(&s->mu);
    k = ++s->warn_count;
    pthread_mutex_unlock(&s->mu);
    if (k <= 10)
        host_log(EQM_LOG_WARN, "shards", "skipped: %s%s", msg,
                 k == 10 ? " (further warnings only every 1000)" : "");
    else if (k % 1000 == 0)
        host_log(EQM_LOG_WARN, "shards", "%llu bad samples/shards skipped so far; latest: %s",
                 (unsigned long long)k, msg);
}

void shard_stream_count_bad(shard_stream *s, const char *what)
{
    pthread_mutex_lock(&s->mu);
    s->st.bad_samples++;
    pthread_mutex_unlock(&s->mu);
    warn_bad(s, what ? what : "bad sample");
}

/* ------------------------------------------------------------------ producer ---- */

/* Stop the epoch with an error (on_bad = fail or a hard error). */
static void producer_fail(shard_stream *s, int status, const char *msg)
{
    pthread_mutex_lock(&s->mu);
    if (!s->failed) {
        s->failed = status;
        snprintf(s->fail_msg, sizeof s->fail_msg, "%s", msg);
    }
    pthread_cond_broadcast(&s->can_pop);
    pthread_mutex_unlock(&s->mu);
}

/* Bad data: returns 0 to carry on (skip), -1 to stop (fail). */
static int bad_data(shard_stream *s, int is_shard, const char *msg)
{
    if (s->o.on_bad == SHARD_BAD_FAIL) {
        char m[900];
        snprintf(m, sizeof m, "%.800s (set on_bad = skip to skip bad data with a warning)", msg);
        producer_fail(s, EQM_ERR_FORMAT, m);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    if (is_shard)
        s->st.bad_shards++;
    else
        s->st.bad_samples++;
    pthread_mutex_unlock(&s->mu);
    warn_bad(s, msg);
    return 0;
}

/* Push to the bounded queue; blocks. Returns -1 when asked to stop (smp is then freed). */
static int queue_push(shard_stream *s, sample *smp)
{
    pthread_mutex_lock(&s->mu);
    int waited = 0;
    while (!s->stop && (s->q_n >= s->q_cap || (s->st.held_bytes > s->o.queue_bytes && s->q_n > 0))) {
        if (!waited)
            s->st.producer_waits++;
        waited = 1;
        pthread_cond_broadcast(&s->can_pop); /* whatever is queued is ready: take it */
        s->producer_waiting = 1;
        pthread_cond_wait(&s->can_push, &s->mu);
        s->producer_waiting = 0;
    }
    if (s->stop) { /* the sample goes nowhere: free it here */
        release_locked(s, smp);
        pthread_mutex_unlock(&s->mu);
        sample_free(smp);
        return -1;
    }
    s->q[(s->q_head + s->q_n) % s->q_cap] = smp;
    s->q_n++;
    /* consumers are woken by runs of samples, not one by one; the producer also wakes them
     * before it blocks and after each shard */
    if (s->q_n >= s->wake_n)
        pthread_cond_broadcast(&s->can_pop);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* A complete sample enters the shuffle buffer; one may leave it for the queue. */
static int shuffle_put(shard_stream *s, sample *smp)
{
    size_t cap = s->o.shuffle_buffer;
    if (cap <= 1)
        return queue_push(s, smp);
    if (s->n_shuf < cap) {
        s->shuf[s->n_shuf++] = smp;
        return 0;
    }
    size_t j = (size_t)host_api()->rng_below(&s->rng, cap);
    sample *out = s->shuf[j];
    s->shuf[j] = smp;
    return queue_push(s, out);
}

static int shuffle_drain(shard_stream *s)
{
    while (s->n_shuf > 0) {
        size_t j = (size_t)host_api()->rng_below(&s->rng, s->n_shuf);
        sample *out = s->shuf[j];
        s->shuf[j] = s->shuf[--s->n_shuf];
        if (queue_push(s, out))
            return -1; /* stopped: queue_push freed `out` */
    }
    return 0;
}

/* The current group is complete: check it and pass it on. */
static int group_flush(shard_stream *s)
{
    sample *g = s->cur;
    s->cur = NULL;
    if (!g)
        return 0;
    int rc = 0;
    if (!s->cur_bad) {
        for (int i = 0; i < s->n_ext; i++)
            if (!(g->present & (1u << i))) {
                snprintf(s->cur_bad_why, sizeof s->cur_bad_why, "%s: sample '%s' has no .%s "
                         "member (required members: %s)", g->shard, g->key, s->ext[i],
                         s->o.members);
                s->cur_bad = 1;
                break;
            }
    }
    if (s->cur_bad) {
        rc = bad_data(s, 0, s->cur_bad_why);
        sample_drop(s, g); /* never counted in held_bytes */
        return rc;
    }
    held_add(s, g->bytes);
    g->raw.size = sizeof(eqm_raw_sample);
    g->raw.key = g->key;
    g->raw.shard = g->shard;
    g->raw.n_members = s->n_ext;
    g->raw.members = g->mem;
    for (int i = 0; i < s->n_ext; i++) {
        g->mem[i].ext = s->ext[i];
        g->mem[i].data = g->buf + g->off[i];
    }
    return shuffle_put(s, g);
}

typedef struct rd_ctx {
    shard_stream *s;
    char err[600];
    int io_failed;
} rd_ctx;

static la_ssize_t rd_cb(struct archive *a, void *ud, const void **buf)
{
    rd_ctx *c = ud;
    size_t n = 0;
    int rc = shard_reader_next(c->s->reader, buf, &n, c->err, sizeof c->err);
    if (rc == EQM_EOF)
        return 0;
    if (rc != EQM_OK) {
        c->io_failed = 1;
        archive_set_error(a, EIO, "%s", c->err);
        return -1;
    }
    pthread_mutex_lock(&c->s->mu);
    c->s->st.bytes_read += n;
    pthread_mutex_unlock(&c->s->mu);
    return (la_ssize_t)n;
}

/* Split "dir/KEY.ext.more" into key "dir/KEY" and ext "ext.more" (WebDataset: the key
 * ends at the first dot of the file name). */
static int split_key(const char *path, size_t *keylen, const char **ext)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strchr(base, '.');
    if (!dot || dot == base)
        return -1;
    *keylen = (size_t)(dot - path);
    *ext = dot + 1;
    return 0;
}

/* Read one shard. Returns 0 to go on, -1 to stop. */
static int read_shard(shard_stream *s, const char *path)
{
    char err[700];
    int rc = shard_reader_open(s->reader, path, err, sizeof err);
    if (rc != EQM_OK)
        return bad_data(s, 1, err);
    struct archive *a = archive_read_new();
    if (!a) {
        producer_fail(s, EQM_ERR_NOMEM, "libarchive: out of memory");
        return -1;
    }
    archive_read_support_format_tar(a);
    rd_ctx c = {.s = s};
    int ret = 0;
    if (archive_read_open(a, &c, NULL, rd_cb, NULL) != ARCHIVE_OK) {
        snprintf(err, sizeof err, "%s: not a tar shard: %s", path, archive_error_string(a));
        ret = bad_data(s, 1, err);
        goto done;
    }
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            snprintf(err, sizeof err, "%s: %s shard: %s (the rest of the shard is skipped)",
                     path, c.io_failed ? "unreadable" : "truncated or corrupt",
                     archive_error_string(a) ? archive_error_string(a) : "?");
            if (s->cur) { /* the group in hand may be cut short: drop it with the shard */
                sample_drop(s, s->cur);
                s->cur = NULL;
            }
            ret = bad_data(s, 1, err);
            goto done;
        }
        if (archive_entry_filetype(e) != AE_IFREG)
            continue;
        const char *name = archive_entry_pathname(e);
        size_t keylen;
        const char *ext;
        if (!name || split_key(name, &keylen, &ext))
            continue; /* no extension: not part of any sample */
        if (s->cur && (strlen(s->cur->key) != keylen || strncmp(s->cur->key, name, keylen))) {
            if (group_flush(s)) {
                ret = -1;
                goto done;
            }
        }
        if (!s->cur) { /* a new group: the one lock per sample (stop, free list) */
            pthread_mutex_lock(&s->mu);
            int stop = s->stop;
            sample *g = stop ? NULL : take_free_locked(s);
            pthread_mutex_unlock(&s->mu);
            if (stop) {
                ret = -1;
                goto done;
            }
            if (!g)
                g = calloc(1, sizeof *g);
            if (g && g->key_cap < keylen + 1) {
                char *k = realloc(g->key, keylen + 1);
                if (k) {
                    g->key = k;
                    g->key_cap = keylen + 1;
                }
            }
            if (!g || g->key_cap < keylen + 1) {
                sample_free(g);
                producer_fail(s, EQM_ERR_NOMEM, "shard stream: out of memory");
                ret = -1;
                goto done;
            }
            memcpy(g->key, name, keylen);
            g->key[keylen] = 0;
            s->cur = g;
            s->cur->shard = path;
            s->cur_bad = 0;
        }
        int m = -1;
        for (int i = 0; i < s->n_ext; i++)
            if (!strcasecmp(ext, s->ext[i]))
                m = i;
        if (m < 0 || s->cur_bad)
            continue; /* a member nobody asked for (e.g. .json) */
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        if (size < 0 || (uint64_t)size > s->o.max_member_bytes) {
            snprintf(s->cur_bad_why, sizeof s->cur_bad_why,
                     "%s: member '%s' is %lld bytes (limit max_member_bytes = %zu)", path,
                     name, (long long)size, s->o.max_member_bytes);
            s->cur_bad = 1;
            continue;
        }
        sample *g = s->cur;
        size_t at = (g->buf_used + BODY_ALIGN - 1) & ~(size_t)(BODY_ALIGN - 1);
        size_t need = at + (size_t)size;
        if (need > g->buf_cap || !g->buf) { /* grow; offsets stay valid */
            size_t cap = g->buf_cap ? g->buf_cap : 4096;
            while (cap < need)
                cap *= 2;
            uint8_t *nb = realloc(g->buf, cap);
            if (!nb) {
                producer_fail(s, EQM_ERR_NOMEM, "shard stream: out of memory");
                ret = -1;
                goto done;
            }
            g->buf = nb;
            g->buf_cap = cap;
        }
        uint8_t *body = g->buf + at;
        size_t got = 0;
        while (got < (size_t)size) {
            la_ssize_t k = archive_read_data(a, body + got, (size_t)size - got);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        if (got < (size_t)size) {
            snprintf(err, sizeof err, "%s: member '%s' %s: %s (the rest of the shard is "
                     "skipped)", path, name, c.io_failed ? "unreadable" : "truncated",
                     archive_error_string(a) ? archive_error_string(a) : "short data");
            sample_drop(s, s->cur);
            s->cur = NULL;
            ret = bad_data(s, 1, err);
            goto done;
        }
        if (g->present & (1u << m)) /* duplicate member: keep the last, it is a rewrite */
            g->bytes -= g->mem[m].size;
        g->present |= 1u << m;
        g->off[m] = at;
        g->buf_used = need;
        g->mem[m].size = (size_t)size;
        g->bytes += (size_t)size;
    }
    if (group_flush(s))
        ret = -1;
done:
    archive_read_free(a);
    shard_reader_close(s->reader);
    return ret;
}

static void *producer_main(void *arg)
{
    shard_stream *s = arg;
    for (size_t i = 0; i < s->n_order; i++) {
        if (read_shard(s, s->paths[s->order[i]]))
            goto out;
        pthread_mutex_lock(&s->mu); /* the next shard may be slow to come: hand out what is ready */
        if (s->q_n)
            pthread_cond_broadcast(&s->can_pop);
        pthread_mutex_unlock(&s->mu);
    }
    shuffle_drain(s);
out:
    /* anything still in the shuffle buffer (stopped early) is freed here */
    for (size_t i = 0; i < s->n_shuf; i++) {
        pthread_mutex_lock(&s->mu);
        release_locked(s, s->shuf[i]);
        pthread_mutex_unlock(&s->mu);
        sample_free(s->shuf[i]);
    }
    s->n_shuf = 0;
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_broadcast(&s->can_pop);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------ api --------- */

int shard_stream_create(const shard_stream_opts *o, shard_stream **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    if (!o || !o->members || !*o->members) {
        snprintf(err, errlen, "shard stream: no member extensions (e.g. \"jpg;cls\")");
        return EQM_ERR_INVAL;
    }
    if (o->world < 1 || o->rank < 0 || o->rank >= o->world) {
        snprintf(err, errlen, "shard stream: rank %d of world %d (need 0 <= rank < world)",
                 o->rank, o->world);
        return EQM_ERR_INVAL;
    }
    shard_stream *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "shard stream: out of memory");
        return EQM_ERR_NOMEM;
    }
    s->o = *o;
    if (!s->o.queue_samples)
        s->o.queue_samples = 256;
    if (!s->o.queue_bytes)
        s->o.queue_bytes = (size_t)256 << 20;
    if (!s->o.max_member_bytes)
        s->o.max_member_bytes = (size_t)64 << 20;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->can_push, NULL);
    pthread_cond_init(&s->can_pop, NULL);
    int rc = EQM_ERR_NOMEM;
    s->members_buf = strdup(o->members);
    if (!s->members_buf)
        goto fail_nomem;
    char *save = NULL;
    for (char *t = strtok_r(s->members_buf, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
        if (s->n_ext == MAX_MEMBERS) {
            snprintf(err, errlen, "shard stream: more than %d member extensions in '%s'",
                     MAX_MEMBERS, o->members);
            rc = EQM_ERR_INVAL;
            goto fail;
        }
        s->ext[s->n_ext++] = t;
    }
    if (!s->n_ext) {
        snprintf(err, errlen, "shard stream: no member extensions in '%s'", o->members);
        rc = EQM_ERR_INVAL;
        goto fail;
    }
    rc = shardlist_expand(o->pattern, &s->paths, &s->n_paths, err, errlen);
    if (rc != EQM_OK)
        goto fail;
    s->order = malloc(s->n_paths * sizeof *s->order);
    s->q_cap = s->o.queue_samples;
    s->wake_n = s->q_cap / 4 < 16 ? (s->q_cap / 4 ? s->q_cap / 4 : 1) : 16;
    s->q = malloc(s->q_cap * sizeof *s->q);
    s->shuf = malloc((s->o.shuffle_buffer > 1 ? s->o.shuffle_buffer : 1) * sizeof *s->shuf);
    if (!s->order || !s->q || !s->shuf)
        goto fail_nomem;
    rc = shard_reader_create(o->io, o->block_bytes, o->depth ? o->depth : 4, &s->reader, err,
                             errlen);
    if (rc != EQM_OK)
        goto fail;
    s->done = 1; /* no epoch yet */
    *out = s;
    return EQM_OK;
fail_nomem:
    snprintf(err, errlen, "shard stream: out of memory");
    rc = EQM_ERR_NOMEM;
fail:
    shard_stream_destroy(s);
    return rc;
}

size_t shard_stream_n_shards(const shard_stream *s) { return s->n_paths; }
int shard_stream_io_kind(const shard_stream *s) { return shard_reader_kind(s->reader); }

static void stop_producer(shard_stream *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->can_push);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = 0;
    pthread_mutex_lock(&s->mu);
    if (s->cur) { /* not counted in held_bytes yet */
        sample_free(s->cur);
        s->cur = NULL;
    }
    while (s->q_n) {
        sample *smp = s->q[s->q_head];
        s->q_head = (s->q_head + 1) % s->q_cap;
        s->q_n--;
        release_locked(s, smp);
        sample_free(smp);
    }
    pthread_mutex_unlock(&s->mu);
}

void shard_stream_destroy(shard_stream *s)
{
    if (!s)
        return;
    stop_producer(s);
    while (s->free_list) {
        sample *n = s->free_list->next_free;
        sample_free(s->free_list);
        s->free_list = n;
    }
    shard_reader_destroy(s->reader);
    shardlist_free(s->paths, s->n_paths);
    free(s->order);
    free(s->q);
    free(s->shuf);
    free(s->members_buf);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->can_push);
    pthread_cond_destroy(&s->can_pop);
    free(s);
}

int shard_stream_start_epoch(shard_stream *s, uint64_t epoch, char *err, size_t errlen)
{
    stop_producer(s);
    const eqm_host_api *api = host_api();
    if (s->o.shuffle_shards) {
        s->n_order = shardlist_epoch_order(s->n_paths, s->o.seed, epoch, s->o.rank,
                                           s->o.world, s->order);
    } else {
        s->n_order = 0;
        for (size_t i = (size_t)s->o.rank; i < s->n_paths; i += (size_t)s->o.world)
            s->order[s->n_order++] = i;
    }
    api->rng_seed(&s->rng, s->o.seed, epoch, (uint64_t)s->o.rank, 0x53485546ULL /* SHUF */);
    s->epoch = epoch;
    s->n_shuf = 0;
    pthread_mutex_lock(&s->mu);
    s->stop = 0;
    s->done = 0;
    s->failed = 0;
    s->fail_msg[0] = 0;
    s->next_index = 0;
    size_t held = s->st.held_bytes, held_max = s->st.held_bytes_max;
    memset(&s->st, 0, sizeof s->st);
    s->st.held_bytes = held; /* samples still lent from the last epoch */
    s->st.held_bytes_max = held_max;
    pthread_mutex_unlock(&s->mu);
    if (pthread_create(&s->thread, NULL, producer_main, s)) {
        snprintf(err, errlen, "shard stream: cannot start the reader thread");
        s->done = 1;
        return EQM_ERR_NOMEM;
    }
    s->running = 1;
    return EQM_OK;
}

int shard_stream_pop(shard_stream *s, eqm_raw_sample **out, char *err, size_t errlen)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    while (!s->q_n && !s->done && !s->failed)
        pthread_cond_wait(&s->can_pop, &s->mu);
    int rc;
    if (s->failed) {
        rc = s->failed;
        snprintf(err, errlen, "%s", s->fail_msg);
    } else if (s->q_n) {
        sample *smp = s->q[s->q_head];
        s->q_head = (s->q_head + 1) % s->q_cap;
        s->q_n--;
        smp->raw.index = s->next_index++;
        s->st.samples++;
        maybe_wake_producer(s);
        *out = &smp->raw;
        rc = EQM_OK;
    } else {
        rc = EQM_EOF;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void shard_stream_stats_get(shard_stream *s, shard_stream_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    pthread_mutex_unlock(&s->mu);
}
