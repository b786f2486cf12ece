/* tests/shards/check_stream.c: shard list expansion and the shard stream (host/shards):
 * grouping, missing and extra members, truncated / unreadable / non-tar shards, skip vs
 * fail, determinism of the sample order, rank split, backpressure (bounded memory, the
 * producer blocks on a slow consumer), stopping mid-epoch, io_uring and pread readers.
 * Shards are written at test time with libarchive's writer; member bodies are synthetic
 * ("jpg" = bytes derived from the sample id, "cls" = the id as text) so that grouping can be
 * checked exactly; JPEG decoding is covered by check_image and check_shards_plugin. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "shards/shards.h"
#include "shard_util.h"

static char *dir;

/* Body of sample `id`: `len` bytes, byte i = (id * 31 + i) & 255, first 4 bytes = id. */
static uint8_t *body_of(int id, size_t len)
{
    uint8_t *b = malloc(len);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(id * 31 + (int)i);
    memcpy(b, &id, sizeof id < len ? sizeof id : len);
    return b;
}

static size_t len_of(int id) { return 100 + (size_t)(id * 977) % 5000; }

/* Shard `s` of n_per samples with ids s*n_per .. ; flags: 1 = drop the .cls of the 3rd
 * sample, 2 = add a .json member to every sample. */
static void make_shard(const char *path, int s, int n_per, int flags)
{
    tar_member *m = calloc((size_t)n_per * 3, sizeof *m);
    char **names = calloc((size_t)n_per * 3, sizeof *names);
    char **cls = calloc((size_t)n_per, sizeof *cls);
    uint8_t **bodies = calloc((size_t)n_per, sizeof *bodies);
    int k = 0;
    for (int i = 0; i < n_per; i++) {
        int id = s * n_per + i;
        size_t len = len_of(id);
        bodies[i] = body_of(id, len);
        cls[i] = malloc(16);
        snprintf(cls[i], 16, "%d\n", id);
        names[k] = malloc(64);
        snprintf(names[k], 64, "dir%d/s%06d.jpg", s, id);
        m[k] = (tar_member){names[k], bodies[i], len};
        k++;
        if (flags & 2) {
            names[k] = malloc(64);
            snprintf(names[k], 64, "dir%d/s%06d.json", s, id);
            m[k] = (tar_member){names[k], "{}", 2};
            k++;
        }
        if (!((flags & 1) && i == 2)) {
            names[k] = malloc(64);
            snprintf(names[k], 64, "dir%d/s%06d.cls", s, id);
            m[k] = (tar_member){names[k], cls[i], strlen(cls[i])};
            k++;
        }
    }
    ck_assert_int_eq(su_write_tar(path, m, k), 0);
    for (int i = 0; i < k; i++)
        free(names[i]);
    for (int i = 0; i < n_per; i++) {
        free(cls[i]);
        free(bodies[i]);
    }
    free(names);
    free(cls);
    free(bodies);
    free(m);
}

static void setup(void)
{
    dir = su_tmpdir();
    ck_assert_ptr_nonnull(dir);
    char p[512];
    for (int s = 0; s < 6; s++) {
        snprintf(p, sizeof p, "%s/good-%03d.tar", dir, s);
        make_shard(p, s, 20, 0);
    }
}

static void teardown(void)
{
    su_rmtree(dir);
    free(dir);
}

static void opts_init(shard_stream_opts *o, const char *pattern, int io)
{
    memset(o, 0, sizeof *o);
    o->pattern = pattern;
    o->members = "jpg;cls";
    o->seed = 7;
    o->world = 1;
    o->shuffle_buffer = 32;
    o->shuffle_shards = 1;
    o->io = io;
    o->block_bytes = 8192; /* small blocks: members span several buffers */
    o->depth = 3;
}

/* Read a whole epoch: check every sample's grouping; ids[] gets the order (may be NULL).
 * Returns the number of samples, or -rc on an error. */
static int read_epoch(shard_stream *s, uint64_t epoch, int *ids, int max, char *err,
                      size_t errlen)
{
    ck_assert_int_eq(shard_stream_start_epoch(s, epoch, err, errlen), EQM_OK);
    int n = 0;
    for (;;) {
        eqm_raw_sample *r;
        int rc = shard_stream_pop(s, &r, err, errlen);
        if (rc == EQM_EOF)
            return n;
        if (rc < 0)
            return rc;
        ck_assert_int_eq(r->n_members, 2);
        ck_assert_str_eq(r->members[0].ext, "jpg");
        ck_assert_str_eq(r->members[1].ext, "cls");
        ck_assert_int_eq(r->index, n);
        int id = atoi((const char *)r->members[1].data);
        ck_assert_uint_eq(r->members[0].size, len_of(id));
        uint8_t *b = body_of(id, len_of(id));
        ck_assert_msg(!memcmp(b, r->members[0].data, len_of(id)), "body of %d differs", id);
        free(b);
        char key[64];
        snprintf(key, sizeof key, "s%06d", id);
        ck_assert_ptr_nonnull(strstr(r->key, key));
        if (ids && n < max)
            ids[n] = id;
        n++;
        shard_stream_release(s, r);
    }
}

START_TEST(test_shardlist)
{
    char **p;
    size_t n;
    char err[512];
    ck_assert_int_eq(shardlist_expand("a/train-{000..011}.tar", &p, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 12);
    ck_assert_str_eq(p[0], "a/train-000.tar");
    ck_assert_str_eq(p[11], "a/train-011.tar");
    shardlist_free(p, n);
    ck_assert_int_eq(shardlist_expand("{x,y}-{8..10}.tar", &p, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 6);
    ck_assert_str_eq(p[0], "x-8.tar");
    ck_assert_str_eq(p[2], "x-10.tar");
    ck_assert_str_eq(p[5], "y-10.tar");
    shardlist_free(p, n);
    ck_assert_int_eq(shardlist_expand("plain.tar", &p, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 1);
    shardlist_free(p, n);
    ck_assert_int_eq(shardlist_expand("a-{5..2}.tar", &p, &n, err, sizeof err), EQM_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(err, "bad range"));
    ck_assert_int_eq(shardlist_expand("a-{1..2.tar", &p, &n, err, sizeof err), EQM_ERR_INVAL);
    ck_assert_int_eq(shardlist_expand("a-1}.tar", &p, &n, err, sizeof err), EQM_ERR_INVAL);
    ck_assert_int_eq(shardlist_expand("", &p, &n, err, sizeof err), EQM_ERR_INVAL);
    /* @list: comments, blank lines, paths relative to the list's folder */
    char lp[512];
    snprintf(lp, sizeof lp, "%s/list.txt", dir);
    FILE *f = fopen(lp, "w");
    fprintf(f, "# shards\n\ngood-000.tar\n  /abs/x.tar  \n");
    fclose(f);
    char at[520];
    snprintf(at, sizeof at, "@%s", lp);
    ck_assert_int_eq(shardlist_expand(at, &p, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 2);
    char want[600];
    snprintf(want, sizeof want, "%s/good-000.tar", dir);
    ck_assert_str_eq(p[0], want);
    ck_assert_str_eq(p[1], "/abs/x.tar");
    shardlist_free(p, n);
    ck_assert_int_eq(shardlist_expand("@/nonexistent/list.txt", &p, &n, err, sizeof err),
                     EQM_ERR_IO);
}
END_TEST

START_TEST(test_epoch_order)
{
    size_t a[50], b[50], c[50], r0[50], r1[50];
    ck_assert_uint_eq(shardlist_epoch_order(50, 1, 0, 0, 1, a), 50);
    ck_assert_uint_eq(shardlist_epoch_order(50, 1, 0, 0, 1, b), 50);
    ck_assert_uint_eq(shardlist_epoch_order(50, 1, 1, 0, 1, c), 50);
    ck_assert(!memcmp(a, b, sizeof a));   /* same seed and epoch: same order */
    ck_assert(memcmp(a, c, sizeof a));    /* reshuffled every epoch */
    int seen[50] = {0};
    for (int i = 0; i < 50; i++)
        seen[a[i]]++;
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(seen[i], 1);
    /* rank split: disjoint, covering */
    size_t n0 = shardlist_epoch_order(50, 1, 3, 0, 2, r0);
    size_t n1 = shardlist_epoch_order(50, 1, 3, 1, 2, r1);
    ck_assert_uint_eq(n0 + n1, 50);
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < n0; i++)
        seen[r0[i]]++;
    for (size_t i = 0; i < n1; i++)
        seen[r1[i]]++;
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(seen[i], 1);
}
END_TEST

static void check_full_epoch(int io, size_t shuffle)
{
    char pat[600], err[1024];
    snprintf(pat, sizeof pat, "%s/good-{000..005}.tar", dir);
    shard_stream_opts o;
    opts_init(&o, pat, io);
    o.shuffle_buffer = shuffle;
    shard_stream *s;
    int rc = shard_stream_create(&o, &s, err, sizeof err);
    if (io == SHARD_IO_URING && rc == EQM_ERR_UNSUPPORTED) {
        fprintf(stderr, "io_uring unavailable here: %s\n", err);
        return;
    }
    ck_assert_msg(rc == EQM_OK, "%s", err);
    ck_assert_uint_eq(shard_stream_n_shards(s), 6);
    if (io != SHARD_IO_AUTO)
        ck_assert_int_eq(shard_stream_io_kind(s), io);
    int ids[200];
    ck_assert_int_eq(read_epoch(s, 0, ids, 200, err, sizeof err), 120);
    int seen[120] = {0};
    for (int i = 0; i < 120; i++)
        seen[ids[i]]++;
    for (int i = 0; i < 120; i++)
        ck_assert_int_eq(seen[i], 1);
    shard_stream_stats st;
    shard_stream_stats_get(s, &st);
    ck_assert_uint_eq(st.samples, 120);
    ck_assert_uint_eq(st.bad_samples, 0);
    ck_assert_uint_eq(st.bad_shards, 0);
    ck_assert_uint_eq(st.held_bytes, 0); /* everything released */
    shard_stream_destroy(s);
}

START_TEST(test_grouping_pread) { check_full_epoch(SHARD_IO_PREAD, 0); check_full_epoch(SHARD_IO_PREAD, 32); }
END_TEST

START_TEST(test_grouping_uring) { check_full_epoch(SHARD_IO_URING, 0); check_full_epoch(SHARD_IO_URING, 32); }
END_TEST

START_TEST(test_grouping_auto) { check_full_epoch(SHARD_IO_AUTO, 1000); }
END_TEST

START_TEST(test_determinism)
{
    char pat[600], err[1024];
    snprintf(pat, sizeof pat, "%s/good-{000..005}.tar", dir);
    int a[120], b[120], c[120], d[120], e[120];
    shard_stream_opts o;
    shard_stream *s;
    opts_init(&o, pat, SHARD_IO_AUTO);
    ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
    ck_assert_int_eq(read_epoch(s, 0, a, 120, err, sizeof err), 120);
    ck_assert_int_eq(read_epoch(s, 1, c, 120, err, sizeof err), 120);
    shard_stream_destroy(s);
    /* a second stream, other reader kind, same seed: same order */
    opts_init(&o, pat, SHARD_IO_PREAD);
    ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
    ck_assert_int_eq(read_epoch(s, 0, b, 120, err, sizeof err), 120);
    shard_stream_destroy(s);
    ck_assert(!memcmp(a, b, sizeof a));
    ck_assert(memcmp(a, c, sizeof a)); /* another epoch: another order */
    o.seed = 8;
    ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
    ck_assert_int_eq(read_epoch(s, 0, d, 120, err, sizeof err), 120);
    shard_stream_destroy(s);
    ck_assert(memcmp(a, d, sizeof a)); /* another seed: another order */
    /* samples really mix across shards: within the first 20, several shards appear */
    int shards_seen[6] = {0}, k = 0;
    for (int i = 0; i < 20; i++)
        shards_seen[a[i] / 20] = 1;
    for (int i = 0; i < 6; i++)
        k += shards_seen[i];
    ck_assert_int_ge(k, 2);
    /* no shuffle at all: shard order then member order */
    o.shuffle_buffer = 0;
    o.shuffle_shards = 0;
    ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
    ck_assert_int_eq(read_epoch(s, 0, e, 120, err, sizeof err), 120);
    shard_stream_destroy(s);
    for (int i = 0; i < 120; i++)
        ck_assert_int_eq(e[i], i);
}
END_TEST

START_TEST(test_rank_split)
{
    char pat[600], err[1024];
    snprintf(pat, sizeof pat, "%s/good-{000..005}.tar", dir);
    int seen[120] = {0}, ids[120];
    for (int rank = 0; rank < 2; rank++) {
        shard_stream_opts o;
        shard_stream *s;
        opts_init(&o, pat, SHARD_IO_AUTO);
        o.rank = rank;
        o.world = 2;
        ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
        int n = read_epoch(s, 4, ids, 120, err, sizeof err);
        ck_assert_int_eq(n, 60);
        for (int i = 0; i < n; i++)
            seen[ids[i]]++;
        shard_stream_destroy(s);
    }
    for (int i = 0; i < 120; i++)
        ck_assert_int_eq(seen[i], 1);
    shard_stream_opts o;
    shard_stream *s;
    opts_init(&o, pat, SHARD_IO_AUTO);
    o.rank = 2;
    o.world = 2;
    ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_ERR_INVAL);
}
END_TEST

/* Bad shards: one with a sample missing its .cls (and .json extras everywhere), one
 * truncated in the middle of a member, one that is not a tar, one that does not exist. */
static void make_bad_shards(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/bad-000.tar", dir);
    make_shard(p, 10, 20, 1 | 2);
    snprintf(p, sizeof p, "%s/bad-001.tar", dir);
    make_shard(p, 11, 20, 0);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(truncate(p, st.st_size / 2 + 300), 0);
    snprintf(p, sizeof p, "%s/bad-002.tar", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 3000; i++)
        fputc("not a tar file "[i % 15], f);
    fclose(f);
    /* bad-003.tar is never written: unreadable */
    snprintf(p, sizeof p, "%s/bad-004.tar", dir); /* a FIFO: opening it must not block */
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/bad-005.tar", dir); /* empty file: not a tar either */
    f = fopen(p, "w");
    fclose(f);
}

START_TEST(test_bad_data_skip)
{
    make_bad_shards();
    char pat[600], err[1024];
    snprintf(pat, sizeof pat,
             "%s/{good-000,bad-000,bad-001,bad-002,bad-003,bad-004,bad-005,good-001}.tar", dir);
    for (int io = SHARD_IO_AUTO; io <= SHARD_IO_PREAD; io += 2) {
        shard_stream_opts o;
        shard_stream *s;
        opts_init(&o, pat, io);
        ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
        int ids[200];
        int n = read_epoch(s, 0, ids, 200, err, sizeof err);
        shard_stream_stats st;
        shard_stream_stats_get(s, &st);
        ck_assert_uint_eq(st.bad_samples, 1); /* the sample without .cls */
        /* truncated, not a tar, missing, FIFO, empty (a valid empty tar has 1024 zero bytes) */
        ck_assert_uint_eq(st.bad_shards, 5);
        /* 40 good + 19 of bad-000 + the samples before the cut of bad-001 */
        ck_assert_int_gt(n, 59);
        ck_assert_int_lt(n, 79);
        int seen[300] = {0};
        for (int i = 0; i < n; i++)
            seen[ids[i]]++;
        ck_assert_int_eq(seen[10 * 20 + 2], 0); /* the one missing its .cls */
        for (int i = 0; i < 20; i++) {
            ck_assert_int_eq(seen[i], 1);
            ck_assert_int_eq(seen[20 + i], 1);
            if (i != 2)
                ck_assert_int_eq(seen[200 + i], 1);
        }
        ck_assert_int_eq(seen[220], 1); /* first sample of the truncated shard survives */
        shard_stream_destroy(s);
    }
}
END_TEST

START_TEST(test_bad_data_fail)
{
    make_bad_shards();
    const char *which[] = {"bad-000", "bad-001", "bad-002", "bad-003", "bad-004"};
    const char *expect[] = {"no .cls member", "truncated", "not a tar", "cannot open",
                            "not a regular file"};
    for (int k = 0; k < 5; k++) {
        char pat[600], err[1024];
        snprintf(pat, sizeof pat, "%s/{good-000,%s}.tar", dir, which[k]);
        shard_stream_opts o;
        shard_stream *s;
        opts_init(&o, pat, SHARD_IO_AUTO);
        o.on_bad = SHARD_BAD_FAIL;
        o.shuffle_shards = 0;
        ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
        err[0] = 0;
        int rc = read_epoch(s, 0, NULL, 0, err, sizeof err);
        ck_assert_int_eq(rc, EQM_ERR_FORMAT);
        ck_assert_msg(strstr(err, expect[k]) && strstr(err, which[k]), "%s: '%s'", which[k], err);
        ck_assert_ptr_nonnull(strstr(err, "on_bad = skip"));
        shard_stream_destroy(s);
    }
}
END_TEST

START_TEST(test_backpressure)
{
    /* 4 shards of 30 samples of ~1 MB: the producer must stop at the byte budget */
    char p[600], err[1024];
    for (int s = 0; s < 4; s++) {
        snprintf(p, sizeof p, "%s/big-%d.tar", dir, s);
        tar_member m[60];
        char names[60][32], cls[30][16];
        uint8_t *body = malloc(1 << 20);
        memset(body, 0xab, 1 << 20);
        for (int i = 0; i < 30; i++) {
            snprintf(names[2 * i], 32, "k%d_%02d.jpg", s, i);
            snprintf(names[2 * i + 1], 32, "k%d_%02d.cls", s, i);
            snprintf(cls[i], 16, "%d", s * 30 + i);
            m[2 * i] = (tar_member){names[2 * i], body, 1 << 20};
            m[2 * i + 1] = (tar_member){names[2 * i + 1], cls[i], strlen(cls[i])};
        }
        ck_assert_int_eq(su_write_tar(p, m, 60), 0);
        free(body);
    }
    snprintf(p, sizeof p, "%s/big-{0..3}.tar", dir);
    shard_stream_opts o;
    shard_stream *s;
    opts_init(&o, p, SHARD_IO_AUTO);
    o.shuffle_buffer = 4;
    o.queue_samples = 64;
    o.queue_bytes = (size_t)8 << 20; /* 8 MiB of the 120 MiB */
    o.block_bytes = 1 << 20;
    ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
    ck_assert_int_eq(shard_stream_start_epoch(s, 0, err, sizeof err), EQM_OK);
    /* a consumer that does not come: the producer must fill the budget and wait. Polled
     * (up to 20 s): a fixed 300 ms sleep failed on a loaded machine under ASan. */
    shard_stream_stats st;
    for (int i = 0; i < 400; i++) {
        shard_stream_stats_get(s, &st);
        if (st.producer_waits > 0)
            break;
        usleep(50000);
    }
    usleep(100000); /* still waiting a while later */
    shard_stream_stats_get(s, &st);
    ck_assert_uint_gt(st.producer_waits, 0);
    ck_assert_uint_lt(st.bytes_read, (uint64_t)40 << 20); /* it stopped reading */
    ck_assert_uint_le(st.held_bytes, ((size_t)8 << 20) + (2u << 20));
    /* slow consumer: memory stays bounded for the whole epoch */
    int n = 0;
    for (;;) {
        eqm_raw_sample *r;
        int rc = shard_stream_pop(s, &r, err, sizeof err);
        if (rc == EQM_EOF)
            break;
        ck_assert_int_eq(rc, EQM_OK);
        if (n % 20 == 0)
            usleep(20000);
        shard_stream_release(s, r);
        n++;
    }
    ck_assert_int_eq(n, 120);
    shard_stream_stats_get(s, &st);
    ck_assert_msg(st.held_bytes_max <= ((size_t)8 << 20) + (2u << 20), "peak %zu",
                  st.held_bytes_max);
    /* stop while the producer is blocked: destroy must not hang */
    ck_assert_int_eq(shard_stream_start_epoch(s, 1, err, sizeof err), EQM_OK);
    eqm_raw_sample *r;
    ck_assert_int_eq(shard_stream_pop(s, &r, err, sizeof err), EQM_OK);
    usleep(100000);
    shard_stream_release(s, r);
    ck_assert_int_eq(shard_stream_start_epoch(s, 2, err, sizeof err), EQM_OK); /* restart */
    ck_assert_int_eq(shard_stream_pop(s, &r, err, sizeof err), EQM_OK);
    shard_stream_release(s, r);
    shard_stream_destroy(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("shards");
    TCase *tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_shardlist);
    tcase_add_test(tc, test_epoch_order);
    tcase_add_test(tc, test_grouping_pread);
    tcase_add_test(tc, test_grouping_uring);
    tcase_add_test(tc, test_grouping_auto);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_rank_split);
    tcase_add_test(tc, test_bad_data_skip);
    tcase_add_test(tc, test_bad_data_fail);
    tcase_add_test(tc, test_backpressure);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
