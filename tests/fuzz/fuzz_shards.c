/* tests/fuzz/fuzz_shards.c: the tar shard stream and the grouping of members into samples
 * (host/shards/stream.c over the real reader and libarchive's tar parser).
 *
 * Input: one option byte, then the bytes of one shard file. Option bits:
 *   0 on_bad = fail (else skip)          1 shuffle buffer of 3 samples (else stream order)
 *   2 members "cls;jpg;json" (else "jpg;cls")   3 max_member_bytes = 4096 (else default)
 *   4 queue of 2 samples (backpressure)  5 io = auto (io_uring when available; else pread)
 *   6,7 block size 4, 8, 12 or 64 KiB
 * The stream runs one epoch; every sample is popped, read whole and released.
 * Invariants: samples carry exactly the requested members in order, with a key and sizes
 * within max_member_bytes; indices count 0, 1, 2...; an error stops the epoch with a
 * message; the epoch ends (no hang, bounded by the shard). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fuzz.h"
#include "shards/shards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet++)
        fuzz_quiet();
    if (size < 1)
        return 0;
    unsigned op = data[0];
    const char *path = fuzz_file("shard-000000.tar", data + 1, size - 1);
    shard_stream_opts o;
    memset(&o, 0, sizeof o);
    o.pattern = path;
    o.members = op & 4 ? "cls;jpg;json" : "jpg;cls";
    o.seed = 7;
    o.rank = 0;
    o.world = 1;
    o.shuffle_buffer = op & 2 ? 3 : 0;
    o.queue_samples = op & 16 ? 2 : 0;
    o.max_member_bytes = op & 8 ? 4096 : 0;
    o.io = op & 32 ? SHARD_IO_AUTO : SHARD_IO_PREAD;
    static const size_t blocks[4] = {4096, 8192, 12288, 65536};
    o.block_bytes = blocks[(op >> 6) & 3];
    o.depth = 2;
    o.on_bad = op & 1 ? SHARD_BAD_FAIL : SHARD_BAD_SKIP;
    size_t max_member = o.max_member_bytes ? o.max_member_bytes : (size_t)64 << 20;
    int n_ext = op & 4 ? 3 : 2;
    char err[1200] = "";
    shard_stream *s = NULL;
    if (shard_stream_create(&o, &s, err, sizeof err))
        fuzz_fail("shard_stream_create: %s", err);
    if (shard_stream_start_epoch(s, 0, err, sizeof err))
        fuzz_fail("shard_stream_start_epoch: %s", err);
    int64_t next = 0;
    volatile unsigned sum = 0;
    for (;;) {
        eqm_raw_sample *raw = NULL;
        err[0] = 0;
        int rc = shard_stream_pop(s, &raw, err, sizeof err);
        if (rc == EQM_EOF)
            break;
        if (rc) {
            if (!err[0] || !(op & 1))
                fuzz_fail("shard_stream_pop failed (%d) under on_bad = %s: '%s'", rc,
                          op & 1 ? "fail" : "skip", err);
            break;
        }
        if (!raw || raw->index != next++ || !raw->key || !raw->shard ||
            raw->n_members != n_ext || !raw->members)
            fuzz_fail("malformed sample (index %lld, expected %lld)",
                      raw ? (long long)raw->index : -1LL, (long long)next - 1);
        for (int i = 0; i < raw->n_members; i++) {
            const eqm_raw_member *m = &raw->members[i];
            if (!m->ext || m->size > max_member || (m->size && !m->data))
                fuzz_fail("sample %s: member %d malformed (size %zu)", raw->key, i, m->size);
            const uint8_t *b = m->data;
            for (size_t k = 0; k < m->size; k++)
                sum += b[k];
        }
        (void)strlen(raw->key);
        shard_stream_release(s, raw);
    }
    shard_stream_stats st;
    shard_stream_stats_get(s, &st);
    if (st.samples != (uint64_t)next)
        fuzz_fail("stats count %llu samples, %lld were popped", (unsigned long long)st.samples,
                  (long long)next);
    shard_stream_destroy(s);
    return 0;
}
