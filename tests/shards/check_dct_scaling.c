/* tests/shards/check_dct_scaling.c: [loader] dct_scaling (ABI 1.1 source_box/apply_scaled)
 * on real shards through the real imagenet_tar plugin, augment plugins and loader.
 * Data: one shard of 8 samples, streamed in order (no shuffle buffer): 6 large JPEGs
 * (640x480 and 480x640, textured: sinusoids of 40..90 px periods) and 2 of 40x40 (keys s_00..s_07; the small
 * ones are samples 3 and 6), labels J % 3. Views at 32 px: original = resize 36 + centre
 * crop 32, views = random_resized_crop (scale 0.5..1) + flip; all end with normalize.
 * Checked, one epoch with dct_scaling = true against false (batch 4, 1 worker):
 *  - t1, t2, labels and sample ids are identical (t stays in original pixels);
 *  - the large images are decoded below 8/8 (the loader's counters), the 40x40 ones at 8/8
 *    and their rows are byte-identical in both runs (8/8 is the exact path);
 *  - the downscaled rows stay close to the full-size ones (mean |difference| below 0.06
 *    in normalised units, about 3.5 grey levels; measured 0.025-0.042, while a box off by
 *    one pixel of the scaled image gives 0.46; max below 0.5);
 *  - with dct_scaling = false every sample is decoded at 8/8.
 * Dimension legend: B = 4 rows, V = 32 x 32 x 3 floats per view, P = 5 (crop 4 + flip). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "loader/loader.h"
#include "shards/shards.h"
#include "shard_util.h"

enum { N = 8, B = 4, S = 32 };
static double MEAN_TOL = 0.06; /* measured 0.025-0.042; a 1-pixel box shift gives 0.46 */

static char *dir;

static int small(int j) { return j == 3 || j == 6; }

/* A textured JPEG (quality 95, 4:4:4): sinusoids of periods 40..90 px, which the 32-px
 * views resolve and a 1/8 DCT scale keeps, so a misplaced box shows. tjFree *out. */
static int textured_jpeg(int w, int h, int seed, unsigned char **out, unsigned long *n)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb)
        return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 60 * sin(2 * M_PI * x / (40.0 + 10 * c) + seed) +
                           60 * cos(2 * M_PI * y / (90.0 - 15 * c) + 0.5 * seed);
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    tjhandle tj = tjInitCompress();
    *out = NULL;
    *n = 0;
    int rc = tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, out, n, TJSAMP_444, 95, 0);
    tjDestroy(tj);
    free(rgb);
    return rc;
}

static void make_shard(const char *d)
{
    tar_member m[2 * N];
    char names[2 * N][32], cls[N][8];
    unsigned char *jpg[N];
    for (int j = 0; j < N; j++) {
        unsigned long n;
        int w = small(j) ? 40 : (j & 1) ? 480 : 640, h = small(j) ? 40 : (j & 1) ? 640 : 480;
        ck_assert_int_eq(textured_jpeg(w, h, j, &jpg[j], &n), 0);
        snprintf(names[2 * j], 32, "s_%02d.jpg", j);
        snprintf(names[2 * j + 1], 32, "s_%02d.cls", j);
        snprintf(cls[j], sizeof cls[j], "%d\n", j % 3);
        m[2 * j] = (tar_member){names[2 * j], jpg[j], n};
        m[2 * j + 1] = (tar_member){names[2 * j + 1], cls[j], strlen(cls[j])};
    }
    char path[700];
    snprintf(path, sizeof path, "%s/s.tar", d);
    ck_assert_int_eq(su_write_tar(path, m, 2 * N), 0);
    for (int j = 0; j < N; j++)
        tjFree(jpg[j]);
}

typedef struct run_out {
    float x[3][N * S * S * 3];
    float t[2][N * 8];
    int32_t labels[N];
    int64_t ids[N];
    int p;
    eqm_loader_stats st;
} run_out;

static void run(int scaling, run_out *o)
{
    char sets[2][800], err[2048];
    snprintf(sets[0], sizeof sets[0], "data.train_shards=%s/s.tar", dir);
    snprintf(sets[1], sizeof sets[1], "loader.dct_scaling=%s", scaling ? "true" : "false");
    const char *lines[] = {"data.plugin=imagenet_tar", sets[0], sets[1], "data.n_classes=3",
                           "data.shuffle_buffer=0", "loader.batch_size=4", "loader.workers=1",
                           "loader.t_standardize=none", "run.seed=5",
                           "augment.crop.plugin=random_resized_crop", "augment.crop.size=32",
                           "augment.crop.scale_min=0.5", "augment.crop.interpolation=bilinear",
                           "augment.flip.plugin=horizontal_flip",
                           "augment.norm.plugin=normalize", "augment.r.plugin=resize",
                           "augment.r.size=36", "augment.c.plugin=center_crop",
                           "augment.c.size=32", "views.view1=crop flip norm",
                           "views.view2=crop flip norm", "views.original=r c norm", NULL};
    eqm_config *cfg = config_new_empty();
    for (int i = 0; lines[i]; i++)
        ck_assert_msg(config_set(cfg, lines[i], err, sizeof err) == 0, "%s", err);
    eqm_registry *reg = registry_create();
    ck_assert_msg(reg && registry_scan(reg, NULL, 0) > 0, "no plugins in EQUIMOD_PLUGIN_PATH");
    const eqm_plugin *pl;
    void *opts;
    ck_assert_msg(config_bind_plugin(cfg, reg, "data", EQM_KIND_DATASET, &pl, &opts, err,
                                     sizeof err) == 0, "%s", err);
    eqm_sample_source src;
    ck_assert_msg(shard_source_create(pl, opts, "train", 5, 0, 1, &src, err, sizeof err) == 0,
                  "%s", err);
    eqm_loader *l = NULL;
    ck_assert_msg(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(loader_start_epoch(l, 0), EQM_OK);
    eqm_batch *b;
    int got = 0, rc;
    while ((rc = loader_next(l, &b)) == EQM_OK) {
        size_t vs = (size_t)b->w * b->h * b->c;
        ck_assert_int_eq((int)vs, S * S * 3);
        ck_assert_int_le(b->p, 8);
        o->p = b->p;
        for (int r = 0; r < b->n; r++, got++) {
            memcpy(o->x[0] + got * vs, b->x0 + r * vs, vs * sizeof(float));
            memcpy(o->x[1] + got * vs, b->x1 + r * vs, vs * sizeof(float));
            memcpy(o->x[2] + got * vs, b->x2 + r * vs, vs * sizeof(float));
            memcpy(o->t[0] + got * 8, b->t1 + r * b->p, (size_t)b->p * sizeof(float));
            memcpy(o->t[1] + got * 8, b->t2 + r * b->p, (size_t)b->p * sizeof(float));
            o->labels[got] = b->labels[r];
            o->ids[got] = b->sample_ids[r];
        }
        loader_release(l, b);
    }
    ck_assert_msg(rc == EQM_EOF, "%s", loader_error(l));
    ck_assert_int_eq(got, N);
    loader_stats(l, &o->st);
    loader_destroy(l);
    free(opts);
    config_destroy(cfg);
    registry_destroy(reg);
}

START_TEST(test_scaled_vs_full)
{
    static run_out a, f; /* a: dct_scaling on, f: off */
    make_shard(dir);
    memset(&a, 0, sizeof a);
    memset(&f, 0, sizeof f);
    run(1, &a);
    run(0, &f);
    ck_assert_int_eq(a.p, 5);
    ck_assert(!memcmp(a.t, f.t, sizeof a.t));
    ck_assert(!memcmp(a.labels, f.labels, sizeof a.labels));
    ck_assert(!memcmp(a.ids, f.ids, sizeof a.ids));
    /* counters: off = all at 8/8; on = the 2 small ones at 8/8, the 6 large ones below */
    ck_assert_int_eq(f.st.decoded_at[3], N);
    ck_assert_int_eq(f.st.decoded_at[0] + f.st.decoded_at[1] + f.st.decoded_at[2], 0);
    ck_assert_int_eq(a.st.decoded_at[3], 2);
    ck_assert_int_eq(a.st.decoded_at[0] + a.st.decoded_at[1] + a.st.decoded_at[2], N - 2);
    const size_t vs = S * S * 3;
    for (int r = 0; r < N; r++) {
        int j = (int)a.ids[r];
        for (int v = 0; v < 3; v++) {
            const float *x = a.x[v] + r * vs, *y = f.x[v] + r * vs;
            if (small(j)) {
                ck_assert_msg(!memcmp(x, y, vs * sizeof(float)),
                              "sample %d (40x40, decoded at 8/8) differs in view %d", j, v);
                continue;
            }
            double sum = 0, mx = 0;
            for (size_t i = 0; i < vs; i++) {
                double d = fabs((double)x[i] - y[i]);
                sum += d;
                mx = d > mx ? d : mx;
            }
            if (getenv("EQM_TEST_VERBOSE"))
                printf("sample %d view %d: mean |diff| %.4f max %.4f\n", j, v, sum / vs, mx);
            ck_assert_msg(sum / vs < MEAN_TOL && mx < 0.5, "sample %d view %d: mean |diff| %.4f, "
                          "max %.4f (DCT-scaled against full-size decode)", j, v, sum / vs, mx);
            ck_assert_msg(sum > 0, "sample %d view %d: identical, so not downscaled", j, v);
        }
    }
}
END_TEST

int main(void)
{
    if (!getenv("EQUIMOD_PLUGIN_PATH")) {
        printf("SKIP: EQUIMOD_PLUGIN_PATH unset (run through make check)\n");
        return 77;
    }
    if (getenv("EQM_TEST_MEAN_TOL"))
        MEAN_TOL = atof(getenv("EQM_TEST_MEAN_TOL"));
    dir = su_tmpdir();
    if (!dir)
        return 1;
    Suite *s = suite_create("dct_scaling");
    TCase *tc = tcase_create("loader");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_scaled_vs_full);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int nf = srunner_ntests_failed(r);
    srunner_free(r);
    su_rmtree(dir);
    free(dir);
    return nf ? 1 : 0;
}
