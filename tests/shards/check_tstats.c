/* tests/shards/check_tstats.c: the t standardisation estimate on a streaming dataset uses
 * the real sizes of its images (crop records of t are in original pixels, METHOD.md 4),
 * not a fixed 256x256, for loader_estimate_t, the trainer's t_standardize = estimate and
 * `equimod tstats`. Real shards (libarchive + TurboJPEG), the real imagenet_tar and
 * augmentation plugins through the registry.
 * Data: shards A (24 images of 64x48), B (24 of 160x120), and the two together.
 * Checked:
 *  1. A's streamed estimate equals, bit for bit, the estimate over a random-access source
 *     of fixed size 64x48 (same draws, same sizes; the reference source serves sizes
 *     only: the estimate touches no pixels);
 *  2. B's crop height/width means (t[2], t[3]) are 2.5 times A's (160/64 = 120/48): the
 *     draws of both use the same random streams and random_resized_crop is scale
 *     invariant up to rounding the crop sides to pixels (about 1% at A's ~35 px means;
 *     tolerance 3%);
 *  3. A and B together: the means lie at the 50/50 mix of A's and B's, within 5 standard
 *     errors (std of B's crop side / sqrt(2n), n draws per view);
 *  4. the trainer's loader (loader_open, t_standardize = estimate) gets A's
 *     estimate, equal to a fixed-size 64x48 loader's;
 *  5. `equimod tstats` opens a streaming config (it used to refuse it) and prints the
 *     estimate of loader_estimate_t for the same draws. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"
#include "loader/loader.h"
#include "shards/shards.h"
#include "train/trainer.h"
#include "shard_util.h"

enum { PER = 24, N = 4000 };

static char *dir;

static void make_shard(const char *path, int w, int h, int seed)
{
    tar_member m[2 * PER];
    char names[2 * PER][64], cls[PER][8];
    unsigned char *jpg[PER];
    for (int j = 0; j < PER; j++) {
        unsigned long n;
        ck_assert_int_eq(su_jpeg(w, h, SU_RGB, seed + j, &jpg[j], &n), 0);
        snprintf(names[2 * j], 64, "k%d_%02d.jpg", seed, j);
        snprintf(names[2 * j + 1], 64, "k%d_%02d.cls", seed, j);
        snprintf(cls[j], sizeof cls[j], "%d\n", j % 2);
        m[2 * j] = (tar_member){names[2 * j], jpg[j], n};
        m[2 * j + 1] = (tar_member){names[2 * j + 1], cls[j], strlen(cls[j])};
    }
    ck_assert_int_eq(su_write_tar(path, m, 2 * PER), 0);
    for (int j = 0; j < PER; j++)
        tjFree(jpg[j]);
}

static void make_data(void)
{
    char p[700];
    snprintf(p, sizeof p, "%s/a.tar", dir);
    make_shard(p, 64, 48, 0);
    snprintf(p, sizeof p, "%s/b.tar", dir);
    make_shard(p, 160, 120, 100);
    snprintf(p, sizeof p, "%s/classes.txt", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("x\ny\n", f);
    fclose(f);
}

static const char *const pipeline[] = {
    "data.plugin=imagenet_tar", "data.n_classes=2", "data.shuffle_buffer=16", "run.seed=3",
    "loader.batch_size=4", "loader.workers=1",
    "augment.crop.plugin=random_resized_crop", "augment.crop.size=32",
    "augment.flip.plugin=horizontal_flip", "augment.norm.plugin=normalize",
    "augment.r.plugin=resize", "augment.r.size=36", "augment.c.plugin=center_crop",
    "augment.c.size=32", "views.view1=crop flip norm", "views.view2=crop flip norm",
    "views.original=r c norm", NULL};

typedef struct env {
    eqm_registry *reg;
    eqm_config *cfg;
} env;

/* shards: "a", "b" or "{a,b}"; ts: t_standardize */
static void env_open(env *e, const char *shards, const char *ts)
{
    char err[2048], l1[800], l2[800], l3[100];
    e->cfg = config_new_empty();
    for (int i = 0; pipeline[i]; i++)
        ck_assert_msg(config_set(e->cfg, pipeline[i], err, sizeof err) == 0, "%s", err);
    snprintf(l1, sizeof l1, "data.train_shards=%s/%s.tar", dir, shards);
    snprintf(l2, sizeof l2, "data.classes=%s/classes.txt", dir);
    snprintf(l3, sizeof l3, "loader.t_standardize=%s", ts);
    ck_assert(config_set(e->cfg, l1, err, sizeof err) == 0);
    ck_assert(config_set(e->cfg, l2, err, sizeof err) == 0);
    ck_assert(config_set(e->cfg, l3, err, sizeof err) == 0);
    ck_assert(config_set(e->cfg, "loader.t_estimate_samples=1000", err, sizeof err) == 0);
    e->reg = registry_create();
    ck_assert_msg(e->reg && registry_scan(e->reg, NULL, 0) > 0, "no plugins in "
                  "EQUIMOD_PLUGIN_PATH=%s", getenv("EQUIMOD_PLUGIN_PATH"));
}

static void env_close(env *e)
{
    config_destroy(e->cfg);
    registry_destroy(e->reg);
}

/* A loader over the shards (streaming source from the registry's imagenet_tar). */
static eqm_loader *stream_loader(env *e, void **opts)
{
    char err[2048];
    const eqm_plugin *pl;
    ck_assert_msg(config_bind_plugin(e->cfg, e->reg, "data", EQM_KIND_DATASET, &pl, opts, err,
                                     sizeof err) == 0, "%s", err);
    eqm_sample_source src;
    ck_assert_msg(shard_source_create(pl, *opts, "train", 3, 0, 1, &src, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_int_eq(src.w, 0); /* sizes vary: the estimate must ask the stream */
    eqm_loader *l = NULL;
    int rc = loader_create_source(&l, e->cfg, e->reg, &src, NULL, err, sizeof err);
    if (rc)
        src.destroy(src.ctx);
    ck_assert_msg(rc == 0, "%s", err);
    return l;
}

/* Reference: a random-access source of fixed size w x h (gray images; the estimate reads
 * only the size). */
typedef struct fixed {
    int w, h;
} fixed;

static int fixed_get(void *ctx, int64_t index, eqm_image *img, size_t cap, int32_t *label)
{
    fixed *f = ctx;
    (void)index;
    img->w = f->w;
    img->h = f->h;
    img->c = 3;
    img->stride = 3 * f->w;
    img->format = EQM_PIX_U8;
    if (cap < (size_t)f->w * f->h * 3)
        return EQM_ERR_NOMEM;
    memset(img->data, 128, (size_t)f->w * f->h * 3);
    *label = 0;
    return EQM_OK;
}

static const char *fixed_error(void *ctx)
{
    (void)ctx;
    return "";
}

static eqm_loader *fixed_loader(env *e, fixed *f)
{
    eqm_sample_source s;
    memset(&s, 0, sizeof s);
    s.ctx = f;
    s.n_samples = 8;
    s.w = f->w;
    s.h = f->h;
    s.c = 3;
    s.n_classes = 2;
    s.desc = "fixed-size reference";
    s.get = fixed_get;
    s.error = fixed_error;
    char err[2048];
    eqm_loader *l = NULL;
    ck_assert_msg(loader_create_source(&l, e->cfg, e->reg, &s, NULL, err, sizeof err) == 0, "%s",
                  err);
    return l;
}

typedef struct est {
    int p;
    float mean[64], std[64];
} est;

static est estimate(eqm_loader *l, int64_t n, uint64_t seed)
{
    est r;
    r.p = loader_t_dim(l);
    ck_assert_int_ge(r.p, 5);
    ck_assert_str_eq(loader_t_name(l, 2), "crop_h");
    ck_assert_str_eq(loader_t_name(l, 3), "crop_w");
    ck_assert_msg(loader_estimate_t(l, n, seed, r.mean, r.std) == EQM_OK, "%s", loader_error(l));
    return r;
}

static est stream_estimate(const char *shards, int64_t n, uint64_t seed)
{
    env e;
    env_open(&e, shards, "none");
    void *opts;
    eqm_loader *l = stream_loader(&e, &opts);
    est r = estimate(l, n, seed);
    /* the loader still streams normally after the estimate read epoch 0's start */
    ck_assert_int_eq(loader_start_epoch(l, 0), EQM_OK);
    eqm_batch *b;
    int nb = 0;
    while (loader_next(l, &b) == EQM_OK) {
        nb++;
        loader_release(l, b);
    }
    ck_assert_int_eq(nb, (strchr(shards, ',') ? 2 : 1) * PER / 4);
    loader_destroy(l);
    free(opts);
    env_close(&e);
    return r;
}

static est fixed_estimate(int w, int h, int64_t n, uint64_t seed)
{
    env e;
    env_open(&e, "a", "none");
    fixed f = {w, h};
    eqm_loader *l = fixed_loader(&e, &f);
    est r = estimate(l, n, seed);
    loader_destroy(l);
    env_close(&e);
    return r;
}

START_TEST(test_estimate_sizes)
{
    make_data();
    est a = stream_estimate("a", N, 11), b = stream_estimate("b", N, 11);
    est ab = stream_estimate("{a,b}", N, 11);
    est ref = fixed_estimate(64, 48, N, 11);
    /* 1. exactly the fixed-size estimate of the same size */
    ck_assert_int_eq(a.p, ref.p);
    for (int k = 0; k < a.p; k++)
        ck_assert_msg(a.mean[k] == ref.mean[k] && a.std[k] == ref.std[k],
                      "t[%d]: streamed %g/%g, fixed-size 64x48 %g/%g", k, a.mean[k], a.std[k],
                      ref.mean[k], ref.std[k]);
    fprintf(stderr, "crop_h/crop_w means: 64x48 %.3f %.3f, 160x120 %.3f %.3f, mixed %.3f %.3f\n",
            a.mean[2], a.mean[3], b.mean[2], b.mean[3], ab.mean[2], ab.mean[3]);
    /* 2. scale with the image */
    for (int k = 2; k <= 3; k++) {
        double ratio = b.mean[k] / a.mean[k];
        ck_assert_msg(fabs(ratio - 2.5) < 0.03 * 2.5, "t[%d] mean ratio %.4f, expected 2.5", k,
                      ratio);
        ratio = b.std[k] / a.std[k];
        ck_assert_msg(fabs(ratio - 2.5) < 0.05 * 2.5, "t[%d] std ratio %.4f, expected 2.5", k,
                      ratio);
        /* inside the image: means below the side */
        ck_assert(a.mean[k] < (k == 2 ? 48 : 64) && b.mean[k] < (k == 2 ? 120 : 160));
    }
    /* 3. the mixed stream: half of each size */
    for (int k = 0; k <= 3; k++) {
        double want = 0.5 * (a.mean[k] + b.mean[k]), se = b.std[k] / sqrt(2.0 * N);
        ck_assert_msg(fabs(ab.mean[k] - want) < 5 * se, "t[%d] mixed mean %.3f, expected %.3f "
                      "+- %.3f", k, ab.mean[k], want, 5 * se);
    }
}
END_TEST

START_TEST(test_trainer_estimate)
{
    make_data();
    env e;
    env_open(&e, "a", "estimate");
    char err[2048];
    eqm_loader *l = NULL;
    ck_assert_msg(loader_open(&l, e.cfg, e.reg, "train", NULL, err, sizeof err) == 0, "%s",
                  err);
    fixed f = {64, 48};
    eqm_loader *r = fixed_loader(&e, &f);
    int p = loader_t_dim(l);
    ck_assert_int_eq(p, loader_t_dim(r));
    const float *m = loader_t_mean(l), *s = loader_t_std(l);
    const float *rm = loader_t_mean(r), *rs = loader_t_std(r);
    for (int k = 0; k < p; k++)
        ck_assert_msg(m[k] == rm[k] && s[k] == rs[k], "t[%d]: trainer %g/%g, 64x48 %g/%g", k,
                      m[k], s[k], rm[k], rs[k]);
    ck_assert(m[2] < 48 && m[3] < 64); /* 256x256 would give means far above */
    loader_destroy(l);
    loader_destroy(r);
    env_close(&e);
}
END_TEST

START_TEST(test_tstats_command)
{
    make_data();
    const char *bd = getenv("EQM_BUILDDIR"), *pp = getenv("EQUIMOD_PLUGIN_PATH");
    ck_assert_msg(bd && pp, "run through make check (EQM_BUILDDIR, EQUIMOD_PLUGIN_PATH)");
    char ini[700], cmd[3000];
    snprintf(ini, sizeof ini, "%s/stream.ini", dir);
    FILE *f = fopen(ini, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[run]\nseed = 3\n[data]\nplugin = imagenet_tar\ntrain_shards = %s/{a,b}.tar\n"
               "classes = %s/classes.txt\nn_classes = 2\nshuffle_buffer = 16\n"
               "[loader]\nbatch_size = 4\nt_standardize = none\n"
               "[augment.crop]\nplugin = random_resized_crop\nsize = 32\n"
               "[augment.flip]\nplugin = horizontal_flip\n[augment.norm]\nplugin = normalize\n"
               "[augment.r]\nplugin = resize\nsize = 36\n"
               "[augment.c]\nplugin = center_crop\nsize = 32\n"
               "[views]\nview1 = crop flip norm\nview2 = crop flip norm\noriginal = r c norm\n",
            dir, dir);
    fclose(f);
    snprintf(cmd, sizeof cmd, "EQM_LOG=error %s/equimod tstats %s --samples 3000 --seed 21 "
             "--plugin-path %s 2>&1", bd, ini, pp);
    FILE *o = popen(cmd, "r");
    ck_assert_ptr_nonnull(o);
    char line[1024], all[8192] = "";
    double got_mean[4] = {-1, -1, -1, -1};
    while (fgets(line, sizeof line, o)) {
        if (strlen(all) + strlen(line) < sizeof all)
            strcat(all, line);
        int idx;
        char name[64];
        double mean, sd;
        if (sscanf(line, "%d %63s %lf %lf", &idx, name, &mean, &sd) == 4 && idx >= 0 && idx < 4)
            got_mean[idx] = mean;
    }
    int st = pclose(o);
    ck_assert_msg(st == 0, "equimod tstats on a streaming config failed:\n%s", all);
    est ab = stream_estimate("{a,b}", 3000, 21);
    for (int k = 0; k < 4; k++)
        ck_assert_msg(fabs(got_mean[k] - ab.mean[k]) <= 1e-5 * fabs(ab.mean[k]) + 1e-6,
                      "t[%d]: tstats printed %g, loader_estimate_t %g\n%s", k, got_mean[k],
                      ab.mean[k], all);
}
END_TEST

int main(void)
{
    dir = su_tmpdir();
    if (!dir)
        return 99;
    Suite *su = suite_create("tstats");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_estimate_sizes);
    tcase_add_test(tc, test_trainer_estimate);
    tcase_add_test(tc, test_tstats_command);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    su_rmtree(dir);
    free(dir);
    return nf ? 1 : 0;
}
