/* host/shards/shards.h: streaming of WebDataset-style tar shards (host-internal).
 *
 * Pipeline (one producer thread per stream):
 *   shard list (brace patterns or @list file) -> per-epoch shuffled, rank-split order
 *   -> reader (io_uring with registered aligned buffers, several reads in flight; or pread)
 *   -> libarchive tar parser fed those buffers by a read callback (no extraction)
 *   -> grouping of consecutive members by key (KEY.jpg + KEY.cls)
 *   -> shuffle buffer (configurable size, across shards) -> bounded queue -> consumers.
 * The sample order is a pure function of (seed, epoch, rank, world, shard contents): the
 * producer is a single thread and draws from its own rng stream. The queue is bounded by
 * a sample count and a byte budget: the producer blocks while consumers are slow
 * (backpressure, bounded memory).
 * Bad data (unreadable or truncated shard, sample missing a required member, member too
 * large) follows on_bad: SKIP (counted, one rate-limited warning) or FAIL (the stream
 * stops and the error reaches the consumer through shard_stream_pop). JPEG corruption is
 * found by the decoder (the consumer) and counted with shard_stream_count_bad.
 * Deliberately not here: decoding and augmentation (the dataset plugin's decode and the
 * augment plugins), compressed tars (the tar must be plain; libarchive would handle gzip
 * but shards of JPEGs gain nothing from it).
 * Threading: shard_stream_pop / _release / _count_bad / _stats are thread-safe; create,
 * start_epoch and destroy are called from one (owner) thread.
 */
#ifndef EQM_SHARDS_SHARDS_H
#define EQM_SHARDS_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include <equimod/equimod.h>

/* ------------------------------------------------------------------ shard list -- */
/* Expand `pattern` into paths: brace ranges {000..123} (zero padding kept from the
 * first bound), lists {a,b,c}, several groups per pattern; or "@FILE": one path per line
 * (blank lines and # comments skipped; relative paths are relative to FILE's folder).
 * *paths is a malloc'd array of malloc'd strings (free with shardlist_free). Returns
 * EQM_OK or EQM_ERR_INVAL / _IO / _NOMEM with a message in err. */
int shardlist_expand(const char *pattern, char ***paths, size_t *n, char *err, size_t errlen);
void shardlist_free(char **paths, size_t n);
/* This rank's shard order for `epoch`: a permutation of [0, n) drawn from (seed, epoch),
 * then every world-th entry starting at rank. order must hold n entries; returns the
 * count written (n / world, +1 for low ranks). */
size_t shardlist_epoch_order(size_t n, uint64_t seed, uint64_t epoch, int rank, int world,
                             size_t *order);

/* ------------------------------------------------------------------ reader ------ */
enum shard_io { SHARD_IO_AUTO = 0, SHARD_IO_URING = 1, SHARD_IO_PREAD = 2 };

typedef struct shard_reader shard_reader;
/* block_bytes: size of each aligned buffer (rounded up to 4096); depth: reads in flight
 * (io_uring) / buffers. io AUTO tries io_uring and falls back to pread if setup fails. */
int shard_reader_create(int io, size_t block_bytes, int depth, shard_reader **r, char *err,
                        size_t errlen);
void shard_reader_destroy(shard_reader *r);
int shard_reader_kind(const shard_reader *r); /* SHARD_IO_URING or SHARD_IO_PREAD */
int shard_reader_open(shard_reader *r, const char *path, char *err, size_t errlen);
/* Next block of the open file in order: *data points into a reader buffer valid until the
 * next call. Returns EQM_OK (n > 0), EQM_EOF, or EQM_ERR_IO (message in err). */
int shard_reader_next(shard_reader *r, const void **data, size_t *n, char *err, size_t errlen);
void shard_reader_close(shard_reader *r);

/* ------------------------------------------------------------------ stream ------ */
enum shard_on_bad { SHARD_BAD_SKIP = 0, SHARD_BAD_FAIL = 1 };

typedef struct shard_stream_opts {
    const char *pattern;     /* shard list (see shardlist_expand) */
    const char *members;     /* required member extensions, ';' separated ("jpg;cls") */
    uint64_t seed;
    int rank, world;         /* world >= 1, 0 <= rank < world */
    size_t shuffle_buffer;   /* samples held for shuffling; 0 or 1 = stream order */
    int shuffle_shards;      /* 1: reshuffle the shard order every epoch */
    size_t queue_samples;    /* bound on ready samples (default 256) */
    size_t queue_bytes;      /* bound on bytes held by queue + shuffle buffer (default 256 MiB) */
    size_t max_member_bytes; /* larger members are bad data (default 64 MiB) */
    int io;                  /* enum shard_io */
    size_t block_bytes;      /* default 1 MiB */
    int depth;               /* default 4 */
    int on_bad;              /* enum shard_on_bad */
} shard_stream_opts;

typedef struct shard_stream shard_stream;

/* Expands the list and starts nothing yet. Returns EQM_OK or < 0 with err. */
int shard_stream_create(const shard_stream_opts *o, shard_stream **s, char *err, size_t errlen);
/* Stops the producer (if running) and frees everything. Samples not released are freed
 * too: release them first. */
void shard_stream_destroy(shard_stream *s);
size_t shard_stream_n_shards(const shard_stream *s);
int shard_stream_io_kind(const shard_stream *s);
/* Start producing epoch `epoch` (stops a previous one first). */
int shard_stream_start_epoch(shard_stream *s, uint64_t epoch, char *err, size_t errlen);
/* Next sample of the epoch, in the deterministic order; blocks while none is ready.
 * Returns EQM_OK (*out set; give it back with shard_stream_release), EQM_EOF (epoch done),
 * or < 0: the producer stopped on an error under on_bad = FAIL (message in err). The
 * sample's members follow the order of opts.members; raw->index is its position in the
 * epoch. */
int shard_stream_pop(shard_stream *s, eqm_raw_sample **out, char *err, size_t errlen);
void shard_stream_release(shard_stream *s, eqm_raw_sample *raw);
/* Count one bad sample found by the consumer (corrupt JPEG...): warns (rate limited). */
void shard_stream_count_bad(shard_stream *s, const char *what);

typedef struct shard_stream_stats {
    uint64_t samples;      /* delivered by pop this epoch */
    uint64_t bad_samples;  /* skipped: missing members, oversized, decode failures */
    uint64_t bad_shards;   /* unreadable or truncated shards */
    uint64_t bytes_read;   /* shard bytes read this epoch */
    uint64_t producer_waits; /* times the producer blocked on a full queue */
    size_t held_bytes, held_bytes_max; /* bytes in queue + shuffle buffer (now, peak) */
} shard_stream_stats;
void shard_stream_stats_get(shard_stream *s, shard_stream_stats *st);

/* ------------------------------------------------------------ writer ----------- */
/* `equimod shards` (host/shards/writer.c): labelled JPEGs -> tar shards + index +
 * classes.txt, published atomically. Messages on stderr; returns the exit status (0, 1). */
typedef struct shards_write_opts {
    const char *src, *out, *prefix;
    const char *labels;       /* flat source: "<file name> <label>" lines, or NULL */
    const char *classes_file; /* class list, or NULL: the sorted class names */
    size_t per_shard, shard_bytes, limit;
    uint64_t seed;
    int shuffle, strict;
} shards_write_opts;
int shards_write(const shards_write_opts *o);
/* One regular member (mode 0644, mtime, uid and gid 0) of n bytes appended to a tar being
 * written with libarchive (also used by `equimod check` for its generated shard). 0 or -1. */
struct archive;
int shards_tar_member(struct archive *a, const char *name, const void *data, size_t n);

#endif
