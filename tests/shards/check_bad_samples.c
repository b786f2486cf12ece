/* tests/shards/check_bad_samples.c: bad samples of a streamed dataset under on_bad = skip
 * keep batches bit-identical whatever the number of loader workers. Real shards (tar
 * written with libarchive, JPEGs with TurboJPEG), the real dataset_imagenet_tar plugin
 * and augmentation plugins through the registry, the real loader (loader_create_source
 * over shard_source_create).
 * Data: 3 shards of 12 samples (key s<S>_<J>, image sizes vary with J, label J % 3),
 * streamed without a shuffle buffer, so with batch_size 4 every batch is 4 consecutive
 * samples of one shard (the shard order is reshuffled every epoch). Bad samples at known
 * places: shard 0 J=1 (corrupt JPEG: row 1 of its batch), shard 1 J=3 (bad .cls: row 3),
 * shard 2 J=4 and J=5 (corrupt JPEG, .cls out of range: rows 0 and 1).
 * Checked: (1) for 1, 2 and 3 workers, two epochs: every batch equal byte for byte
 * (x0, x1, x2, t1, t2, labels, sample_ids); (2) a bad row carries the sample of the next
 * good row of its batch, cyclically (row 1 -> 2, row 3 -> 0, rows 0 and 1 -> 2): same
 * sample id, label and original view x0, its own augmentation (t1 differs); exactly these
 * 3 batch patterns per epoch; the source counts 4 bad samples per epoch; (3) `equimod
 * views`' picker (shard_source_pick) renders a bad position with training's substitute
 * and t; (4) a batch whose samples are all bad is an error naming a shard and key;
 * (5) on_bad = fail stops at the first bad sample with a message naming it and the fix;
 * (6) data-parallel slices (MPI, issue 13): loaders with slice_count 2 and 4 over the same
 * stream make exactly the rows of the one-loader batch, byte for byte (bad rows included,
 * also where the substitute lies in another slice), and a slice does not decode the other
 * slices' samples (the bad samples each counts add up to the one loader's 4 at 2 slices);
 * a slice with drop_last = false is refused naming the fix. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"
#include "loader/loader.h"
#include "shards/shards.h"
#include "shard_util.h"

enum { SHARDS = 3, PER = 12, B = 4 };

static char *dir;

static const char junk[] = "\xff\xd8\xff\xe0 this is not really a JPEG";

/* Write shards s0..s2 (+ classes.txt). all_bad: shard 2 J=8..11 are corrupt too. */
static void make_shards(const char *d, int all_bad)
{
    char path[700];
    snprintf(path, sizeof path, "%s/classes.txt", d);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("a\nb\nc\n", f);
    fclose(f);
    for (int s = 0; s < SHARDS; s++) {
        tar_member m[2 * PER];
        char names[2 * PER][64], cls[PER][8];
        unsigned char *jpg[PER];
        for (int j = 0; j < PER; j++) {
            unsigned long n;
            int w = 24 + 4 * j, h = 20 + 2 * ((j + s) % 5);
            ck_assert_int_eq(su_jpeg(w, h, SU_RGB, s * 100 + j, &jpg[j], &n), 0);
            snprintf(names[2 * j], 64, "s%d_%02d.jpg", s, j);
            snprintf(names[2 * j + 1], 64, "s%d_%02d.cls", s, j);
            snprintf(cls[j], sizeof cls[j], "%d\n", j % 3);
            m[2 * j] = (tar_member){names[2 * j], jpg[j], n};
            m[2 * j + 1] = (tar_member){names[2 * j + 1], cls[j], strlen(cls[j])};
            int corrupt = (s == 0 && j == 1) || (s == 2 && j == 4) || (all_bad && s == 2 && j >= 8);
            if (corrupt)
                m[2 * j] = (tar_member){names[2 * j], junk, sizeof junk - 1};
            if (s == 1 && j == 3)
                m[2 * j + 1] = (tar_member){names[2 * j + 1], "x7\n", 3};
            if (s == 2 && j == 5)
                m[2 * j + 1] = (tar_member){names[2 * j + 1], "77\n", 3};
        }
        snprintf(path, sizeof path, "%s/s%d.tar", d, s);
        ck_assert_int_eq(su_write_tar(path, m, 2 * PER), 0);
        for (int j = 0; j < PER; j++)
            tjFree(jpg[j]);
    }
}

typedef struct env {
    eqm_registry *reg;
    eqm_config *cfg;
    const eqm_plugin *pl;
    void *opts;
} env;

static void env_open(env *e, const char *d, int workers, const char *on_bad)
{
    char sets[4][800], err[2048];
    snprintf(sets[0], sizeof sets[0], "data.train_shards=%s/s{0..2}.tar", d);
    snprintf(sets[1], sizeof sets[1], "data.classes=%s/classes.txt", d);
    snprintf(sets[2], sizeof sets[2], "loader.workers=%d", workers);
    snprintf(sets[3], sizeof sets[3], "data.on_bad=%s", on_bad);
    const char *lines[] = {"data.plugin=imagenet_tar", sets[0], sets[1], sets[2], sets[3],
                           "data.n_classes=3", "data.shuffle_buffer=0", "loader.batch_size=4",
                           "loader.prefetch=2", "loader.t_standardize=none", "run.seed=7",
                           "augment.crop.plugin=random_resized_crop", "augment.crop.size=16",
                           "augment.flip.plugin=horizontal_flip",
                           "augment.norm.plugin=normalize", "augment.r.plugin=resize",
                           "augment.r.size=18", "augment.c.plugin=center_crop",
                           "augment.c.size=16", "views.view1=crop flip norm",
                           "views.view2=crop flip norm", "views.original=r c norm", NULL};
    e->cfg = config_new_empty();
    for (int i = 0; lines[i]; i++)
        ck_assert_msg(config_set(e->cfg, lines[i], err, sizeof err) == 0, "%s", err);
    e->reg = registry_create();
    ck_assert_msg(e->reg && registry_scan(e->reg, NULL, 0) > 0, "no plugins in "
                  "EQUIMOD_PLUGIN_PATH=%s", getenv("EQUIMOD_PLUGIN_PATH"));
    ck_assert_msg(config_bind_plugin(e->cfg, e->reg, "data", EQM_KIND_DATASET, &e->pl, &e->opts,
                                     err, sizeof err) == 0, "%s", err);
}

static void env_close(env *e)
{
    free(e->opts);
    config_destroy(e->cfg);
    registry_destroy(e->reg);
}

/* A loader over the shards; *src_out: a copy of its source (to read the counters). */
static eqm_loader *open_loader(env *e, eqm_sample_source *src_out)
{
    char err[2048];
    eqm_sample_source src;
    ck_assert_msg(shard_source_create(e->pl, e->opts, "train", 7, 0, 1, &src, err, sizeof err) == 0,
                  "%s", err);
    eqm_loader *l = NULL;
    int rc = loader_create_source(&l, e->cfg, e->reg, &src, NULL, err, sizeof err);
    if (rc)
        src.destroy(src.ctx);
    ck_assert_msg(rc == 0, "%s", err);
    if (src_out)
        *src_out = src;
    return l;
}

/* A loader over the shards making slice `rank` of `count` of every batch. */
static eqm_loader *open_slice(env *e, int rank, int count, eqm_sample_source *src_out,
                              char *err, size_t errlen)
{
    eqm_sample_source src;
    ck_assert_msg(shard_source_create(e->pl, e->opts, "train", 7, 0, 1, &src, err, errlen) == 0,
                  "%s", err);
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.slice_rank = rank;
    o.slice_count = count;
    eqm_loader *l = NULL;
    if (loader_create_source(&l, e->cfg, e->reg, &src, &o, err, errlen)) {
        src.destroy(src.ctx);
        return NULL;
    }
    if (src_out)
        *src_out = src;
    return l;
}

/* One epoch's batches: per batch x0|x1|x2|t1|t2|labels|ids. */
typedef struct rec {
    int nb;
    size_t bytes;
    unsigned char *d;
} rec;

static size_t batch_bytes(const eqm_batch *b)
{
    size_t vs = (size_t)b->w * b->h * b->c;
    return (size_t)B * (3 * vs + 2 * (size_t)b->p) * sizeof(float) +
           (size_t)B * (sizeof(int32_t) + sizeof(int64_t));
}

static void rec_add(rec *r, const eqm_batch *b)
{
    size_t vs = (size_t)b->w * b->h * b->c, n = batch_bytes(b);
    ck_assert_int_eq(b->n, B);
    r->d = realloc(r->d, (size_t)(r->nb + 1) * n);
    unsigned char *q = r->d + (size_t)r->nb * n;
    memcpy(q, b->x0, B * vs * sizeof(float)), q += B * vs * sizeof(float);
    memcpy(q, b->x1, B * vs * sizeof(float)), q += B * vs * sizeof(float);
    memcpy(q, b->x2, B * vs * sizeof(float)), q += B * vs * sizeof(float);
    memcpy(q, b->t1, (size_t)B * b->p * sizeof(float)), q += (size_t)B * b->p * sizeof(float);
    memcpy(q, b->t2, (size_t)B * b->p * sizeof(float)), q += (size_t)B * b->p * sizeof(float);
    memcpy(q, b->labels, B * sizeof(int32_t)), q += B * sizeof(int32_t);
    memcpy(q, b->sample_ids, B * sizeof(int64_t));
    r->bytes = n;
    r->nb++;
}

/* Check the substitution pattern of one batch; returns its kind: 0 clean, 1 row 1 -> 2,
 * 2 row 3 -> 0, 3 rows 0 and 1 -> 2; -1 anything else. */
static int pattern(const eqm_batch *b, int64_t k)
{
    int sub[B];
    for (int r = 0; r < B; r++) {
        int64_t want = k * B + r;
        sub[r] = -1;
        if (b->sample_ids[r] != want) {
            int64_t d = b->sample_ids[r] - k * B;
            ck_assert_msg(d >= 0 && d < B, "batch %lld row %d: sample id %lld outside its batch",
                          (long long)k, r, (long long)b->sample_ids[r]);
            sub[r] = (int)d;
        }
    }
    size_t vs = (size_t)b->w * b->h * b->c;
    for (int r = 0; r < B; r++)
        if (sub[r] >= 0) { /* same sample as its substitute: label and x0; its own t */
            int q = sub[r];
            ck_assert_int_eq(b->labels[r], b->labels[q]);
            ck_assert(!memcmp(b->x0 + r * vs, b->x0 + q * vs, vs * sizeof(float)));
            ck_assert(memcmp(b->t1 + r * b->p, b->t1 + q * b->p, b->p * sizeof(float)) ||
                      memcmp(b->t2 + r * b->p, b->t2 + q * b->p, b->p * sizeof(float)));
        }
    if (sub[0] < 0 && sub[1] < 0 && sub[2] < 0 && sub[3] < 0)
        return 0;
    if (sub[0] < 0 && sub[1] == 2 && sub[2] < 0 && sub[3] < 0)
        return 1;
    if (sub[0] < 0 && sub[1] < 0 && sub[2] < 0 && sub[3] == 0)
        return 2;
    if (sub[0] == 2 && sub[1] == 2 && sub[2] < 0 && sub[3] < 0)
        return 3;
    return -1;
}

static rec run(int workers, int64_t epoch, int check_patterns)
{
    env e;
    env_open(&e, dir, workers, "skip");
    eqm_sample_source src;
    eqm_loader *l = open_loader(&e, &src);
    rec r = {0, 0, NULL};
    ck_assert_int_eq(loader_start_epoch(l, epoch), EQM_OK);
    int kinds[4] = {0};
    eqm_batch *b;
    int rc;
    while ((rc = loader_next(l, &b)) == EQM_OK) {
        if (check_patterns) {
            int kd = pattern(b, b->index);
            ck_assert_msg(kd >= 0, "batch %lld: unexpected substitution", (long long)b->index);
            kinds[kd]++;
        }
        rec_add(&r, b);
        loader_release(l, b);
    }
    ck_assert_msg(rc == EQM_EOF, "%s", loader_error(l));
    ck_assert_int_eq(r.nb, SHARDS * PER / B);
    if (check_patterns) {
        ck_assert_int_eq(kinds[0], SHARDS * PER / B - 3);
        ck_assert_int_eq(kinds[1], 1);
        ck_assert_int_eq(kinds[2], 1);
        ck_assert_int_eq(kinds[3], 1);
    }
    shard_stream_stats st;
    ck_assert_int_eq(shard_source_stats(&src, &st), EQM_OK);
    ck_assert_uint_eq(st.bad_samples, 4);
    ck_assert_uint_eq(st.samples, SHARDS * PER);
    loader_destroy(l);
    env_close(&e);
    return r;
}

START_TEST(test_identical_across_workers)
{
    make_shards(dir, 0);
    for (int64_t epoch = 0; epoch < 2; epoch++) {
        rec r1 = run(1, epoch, 1);
        for (int w = 2; w <= 3; w++) {
            rec rw = run(w, epoch, 1);
            ck_assert_int_eq(rw.nb, r1.nb);
            ck_assert_uint_eq(rw.bytes, r1.bytes);
            for (int k = 0; k < r1.nb; k++)
                ck_assert_msg(!memcmp(r1.d + (size_t)k * r1.bytes, rw.d + (size_t)k * rw.bytes,
                                      r1.bytes),
                              "epoch %lld batch %d differs between 1 and %d workers",
                              (long long)epoch, k, w);
            free(rw.d);
        }
        free(r1.d);
    }
}
END_TEST

/* `equimod views` on a bad position shows training's substitute with the row's own t. */
START_TEST(test_pick_matches_training)
{
    make_shards(dir, 0);
    env e;
    env_open(&e, dir, 2, "skip");
    eqm_loader *l = open_loader(&e, NULL);
    ck_assert_int_eq(loader_start_epoch(l, 1), EQM_OK);
    enum { NB = SHARDS * PER / B };
    int32_t labels[NB * B];
    int64_t ids[NB * B];
    float t1[NB * B][8], t2[NB * B][8];
    int p = loader_t_dim(l);
    ck_assert_int_le(p, 8);
    eqm_batch *b;
    int nb = 0;
    while (loader_next(l, &b) == EQM_OK) {
        for (int r = 0; r < B; r++) {
            labels[nb * B + r] = b->labels[r];
            ids[nb * B + r] = b->sample_ids[r];
            memcpy(t1[nb * B + r], b->t1 + r * p, p * sizeof(float));
            memcpy(t2[nb * B + r], b->t2 + r * p, p * sizeof(float));
        }
        nb++;
        loader_release(l, b);
    }
    ck_assert_int_eq(nb, NB);
    loader_destroy(l);
    int substituted = 0;
    for (int64_t i = 0; i < NB * B; i++) {
        if (ids[i] == i && i % 5) /* every bad position and every 5th good one */
            continue;
        substituted += ids[i] != i;
        char err[2048];
        eqm_sample_source src, one;
        ck_assert(shard_source_create(e.pl, e.opts, "train", 7, 0, 1, &src, err, sizeof err) == 0);
        ck_assert_msg(shard_source_pick(&src, 1, i, B, &one, err, sizeof err) == 0, "%s", err);
        eqm_loader_opts o;
        memset(&o, 0, sizeof o);
        o.workers = 1;
        o.batch_size = 1;
        eqm_loader *v = NULL;
        ck_assert_msg(loader_create_source(&v, e.cfg, e.reg, &one, &o, err, sizeof err) == 0, "%s",
                      err);
        eqm_image u8[3];
        float vt1[8], vt2[8];
        int32_t lab;
        ck_assert_msg(loader_render_sample(v, 1, i, u8, vt1, vt2, &lab) == 0, "%s",
                      loader_error(v));
        ck_assert_int_eq(lab, labels[i]);
        ck_assert_msg(!memcmp(vt1, t1[i], p * sizeof(float)) && !memcmp(vt2, t2[i], p * sizeof(float)),
                      "position %lld: views' t differs from training's", (long long)i);
        for (int k = 0; k < 3; k++)
            free(u8[k].data);
        loader_destroy(v);
    }
    ck_assert_int_eq(substituted, 4);
    env_close(&e);
}
END_TEST

/* The rows [off, off + n) of batch k of a one-loader record equal slice batch b. */
static void same_rows(const rec *whole, int64_t k, int off, const eqm_batch *b, int count,
                      int64_t epoch)
{
    size_t vs = (size_t)b->w * b->h * b->c, p = (size_t)b->p, n = (size_t)b->n;
    const unsigned char *q = whole->d + (size_t)k * whole->bytes;
    const float *x = (const float *)q, *t = x + 3 * (size_t)B * vs;
    const int32_t *lab = (const int32_t *)(t + 2 * (size_t)B * p);
    const int64_t *ids = (const int64_t *)(lab + B);
    const float *mine[3] = {b->x0, b->x1, b->x2};
    for (int v = 0; v < 3; v++)
        ck_assert_msg(!memcmp(x + ((size_t)v * B + off) * vs, mine[v], n * vs * sizeof(float)),
                      "epoch %lld batch %lld, slice at row %d of %d slices: view %d differs "
                      "from the one-loader batch", (long long)epoch, (long long)k, off, count, v);
    ck_assert_msg(!memcmp(t + off * p, b->t1, n * p * sizeof(float)) &&
                  !memcmp(t + ((size_t)B + off) * p, b->t2, n * p * sizeof(float)),
                  "epoch %lld batch %lld slice row %d: t differs", (long long)epoch,
                  (long long)k, off);
    ck_assert(!memcmp(lab + off, b->labels, n * sizeof(int32_t)));
    ck_assert_msg(!memcmp(ids + off, b->sample_ids, n * sizeof(int64_t)),
                  "epoch %lld batch %lld slice row %d: sample ids differ", (long long)epoch,
                  (long long)k, off);
}

START_TEST(test_slices_match_whole)
{
    make_shards(dir, 0);
    for (int64_t epoch = 0; epoch < 2; epoch++) {
        rec whole = run(1, epoch, 1);
        for (int count = 2; count <= 4; count += 2) {
            uint64_t bad_sum = 0;
            for (int rank = 0; rank < count; rank++) {
                env e;
                env_open(&e, dir, 2, "skip");
                char err[2048];
                eqm_sample_source src;
                eqm_loader *l = open_slice(&e, rank, count, &src, err, sizeof err);
                ck_assert_msg(l, "%s", err);
                eqm_loader_info li;
                loader_info(l, &li);
                ck_assert_int_eq(li.batch_size, B / count);
                ck_assert_int_eq(loader_start_epoch(l, epoch), EQM_OK);
                eqm_batch *b;
                int rc, nb = 0;
                while ((rc = loader_next(l, &b)) == EQM_OK) {
                    ck_assert_int_eq(b->n, B / count);
                    ck_assert_int_eq(b->index, nb);
                    same_rows(&whole, b->index, rank * (B / count), b, count, epoch);
                    nb++;
                    loader_release(l, b);
                }
                ck_assert_msg(rc == EQM_EOF, "%s", loader_error(l));
                ck_assert_int_eq(nb, whole.nb);
                shard_stream_stats st;
                ck_assert_int_eq(shard_source_stats(&src, &st), EQM_OK);
                ck_assert_uint_eq(st.samples, SHARDS * PER); /* the whole stream is read */
                bad_sum += st.bad_samples;
                ck_assert_uint_lt(st.bad_samples, 4); /* the others' bad rows not decoded */
                loader_destroy(l);
                env_close(&e);
            }
            if (count == 2)
                ck_assert_uint_eq(bad_sum, 4);
        }
        free(whole.d);
    }
    /* drop_last = false: refused, naming the key */
    env e;
    env_open(&e, dir, 1, "skip");
    char err[2048];
    ck_assert(config_set(e.cfg, "loader.drop_last=false", err, sizeof err) == 0);
    ck_assert_ptr_null(open_slice(&e, 1, 2, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "set loader.drop_last = true") && strstr(err, "2 MPI ranks"),
                  "%s", err);
    env_close(&e);
}
END_TEST

START_TEST(test_all_bad_batch)
{
    char d[700];
    snprintf(d, sizeof d, "%s/allbad", dir);
    mkdir(d, 0755);
    make_shards(d, 1);
    env e;
    env_open(&e, d, 2, "skip");
    eqm_loader *l = open_loader(&e, NULL);
    ck_assert_int_eq(loader_start_epoch(l, 0), EQM_OK);
    eqm_batch *b;
    int rc, good = 0;
    while ((rc = loader_next(l, &b)) == EQM_OK) {
        good++;
        loader_release(l, b);
    }
    ck_assert_int_lt(rc, 0);
    const char *m = loader_error(l);
    ck_assert_msg(strstr(m, "all 4 samples are bad") && strstr(m, "s2.tar") && strstr(m, "s2_"),
                  "%s", m);
    ck_assert_int_lt(good, SHARDS * PER / B);
    loader_destroy(l);
    env_close(&e);
}
END_TEST

START_TEST(test_on_bad_fail)
{
    make_shards(dir, 0);
    env e;
    env_open(&e, dir, 3, "fail");
    eqm_loader *l = open_loader(&e, NULL);
    ck_assert_int_eq(loader_start_epoch(l, 0), EQM_OK);
    eqm_batch *b;
    int rc;
    while ((rc = loader_next(l, &b)) == EQM_OK)
        loader_release(l, b);
    ck_assert_int_lt(rc, 0);
    const char *m = loader_error(l);
    ck_assert_msg(strstr(m, "on_bad = skip") && strstr(m, ".tar: s") &&
                  (strstr(m, ".jpg") || strstr(m, ".cls")), "%s", m);
    loader_destroy(l);
    env_close(&e);
}
END_TEST

int main(void)
{
    dir = su_tmpdir();
    if (!dir)
        return 99;
    Suite *su = suite_create("bad_samples");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_identical_across_workers);
    tcase_add_test(tc, test_pick_matches_training);
    tcase_add_test(tc, test_slices_match_whole);
    tcase_add_test(tc, test_all_bad_batch);
    tcase_add_test(tc, test_on_bad_fail);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    su_rmtree(dir);
    free(dir);
    return nf ? 1 : 0;
}
