/* tests/data/check_loader.c: the batch queue (host/loader/loader.c) with the real
 * augmentation plugins: bit-identical batches for 1, 2 and 3 workers (random-access and
 * streaming sources), per-epoch shuffles, drop_last, worker errors reaching the consumer,
 * destroy mid-epoch, epoch restarts, t layout/standardisation/estimation against the
 * published constants, configuration errors, and the real CIFAR-10 train split (skipped
 * without $EQUIMOD_DATA_DIR).
 * Synthetic source: N images of 32x32x3 whose pixels are a hash of (index, position), so
 * every sample differs; label = index % 10. */
#include "config.h"

#include <math.h>
#include <pthread.h>

#include "data_util.h"

typedef struct syn {
    int64_t n;
    int64_t fail_at;          /* get/decode of this index fails (-1: never) */
    int64_t pos;              /* streaming position */
    int64_t epoch;
    char err[128];
} syn;

static uint8_t syn_px(int64_t idx, int k)
{
    uint64_t x = (uint64_t)idx * 0x9e3779b97f4a7c15ULL + (uint64_t)k * 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    x *= 0x94d049bb133111ebULL;
    return (uint8_t)(x >> 56);
}

static int syn_fill(syn *s, int64_t idx, eqm_image *img, size_t cap, int32_t *label)
{
    img->w = 32;
    img->h = 32;
    img->c = 3;
    img->stride = 96;
    img->format = EQM_PIX_U8;
    if (cap < 3072)
        return EQM_ERR_NOMEM;
    if (idx == s->fail_at) {
        snprintf(s->err, sizeof s->err, "synthetic failure at sample %lld", (long long)idx);
        return EQM_ERR_FORMAT;
    }
    for (int k = 0; k < 3072; k++)
        ((uint8_t *)img->data)[k] = syn_px(idx, k);
    *label = (int32_t)(idx % 10);
    return EQM_OK;
}

static int syn_get(void *ctx, int64_t idx, eqm_image *img, size_t cap, int32_t *label)
{
    return syn_fill(ctx, idx, img, cap, label);
}

static const char *syn_error(void *ctx) { return ((syn *)ctx)->err; }

/* streaming: the epoch's stream is the indices in a fixed rotation by epoch */
static int syn_start(void *ctx, int64_t epoch)
{
    syn *s = ctx;
    s->pos = 0;
    s->epoch = epoch;
    return EQM_OK;
}

static int syn_next(void *ctx, void **raw, int64_t *id)
{
    syn *s = ctx;
    if (s->pos >= s->n)
        return EQM_EOF;
    int64_t idx = (s->pos + s->epoch * 7) % s->n;
    s->pos++;
    int64_t *r = malloc(sizeof *r);
    if (!r)
        return EQM_ERR_NOMEM;
    *r = idx;
    *raw = r;
    *id = idx;
    return EQM_OK;
}

static int syn_decode(void *ctx, void *raw, eqm_image *img, size_t cap, int32_t *label)
{
    int64_t idx = *(int64_t *)raw;
    int rc = syn_fill(ctx, idx, img, cap, label);
    if (rc != EQM_ERR_NOMEM)
        free(raw);
    return rc;
}

static eqm_sample_source syn_source(syn *s, int streaming)
{
    eqm_sample_source src;
    memset(&src, 0, sizeof src);
    src.ctx = s;
    src.n_samples = streaming ? -1 : s->n;
    src.w = 32;
    src.h = 32;
    src.c = 3;
    src.n_classes = 10;
    src.desc = streaming ? "synthetic stream" : "synthetic";
    src.get = syn_get;
    src.error = syn_error;
    if (streaming) {
        src.start_epoch = syn_start;
        src.next = syn_next;
        src.decode = syn_decode;
    }
    return src;
}

static eqm_registry *reg;

/* All batches of `epochs` epochs concatenated: x0|x1|x2|t1|t2|labels|ids per batch. */
typedef struct dump {
    unsigned char *d;
    size_t n;
    int batches;
} dump;

static void dump_add(dump *d, const void *p, size_t n)
{
    d->d = realloc(d->d, d->n + n);
    ck_assert_ptr_nonnull(d->d);
    memcpy(d->d + d->n, p, n);
    d->n += n;
}

static dump run_loader(eqm_config *cfg, syn *s, int streaming, int workers, int epochs,
                       int batch, int drop_last)
{
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.workers = workers;
    o.batch_size = batch;
    o.drop_last_set = 1;
    o.drop_last = drop_last;
    eqm_sample_source src = syn_source(s, streaming);
    eqm_loader *l;
    char err[1024];
    int rc = loader_create_source(&l, cfg, reg, &src, &o, err, sizeof err);
    ck_assert_msg(rc == 0, "loader_create_source: %s", err);
    dump d = {NULL, 0, 0};
    for (int e = 0; e < epochs; e++) {
        ck_assert_int_eq(loader_start_epoch(l, e), 0);
        eqm_batch *b;
        while ((rc = loader_next(l, &b)) == EQM_OK) {
            size_t vs = (size_t)b->n * b->w * b->h * b->c * sizeof(float);
            ck_assert_int_eq(b->epoch, e);
            dump_add(&d, &b->n, sizeof b->n);
            dump_add(&d, b->x0, vs);
            dump_add(&d, b->x1, vs);
            dump_add(&d, b->x2, vs);
            dump_add(&d, b->t1, (size_t)b->n * b->p * sizeof(float));
            dump_add(&d, b->t2, (size_t)b->n * b->p * sizeof(float));
            dump_add(&d, b->labels, (size_t)b->n * sizeof(int32_t));
            dump_add(&d, b->sample_ids, (size_t)b->n * sizeof(int64_t));
            d.batches++;
            loader_release(l, b);
        }
        ck_assert_msg(rc == EQM_EOF, "loader_next: %d %s", rc, loader_error(l));
    }
    loader_destroy(l);
    return d;
}

static const char *const simclr_lines[] = {DU_SIMCLR_CIFAR, "loader.prefetch=1", NULL};

START_TEST(test_determinism_workers)
{
    eqm_config *cfg = du_config(simclr_lines);
    syn s = {70, -1, 0, 0, ""};
    dump d1 = run_loader(cfg, &s, 0, 1, 2, 16, 0);
    dump d2 = run_loader(cfg, &s, 0, 2, 2, 16, 0);
    dump d3 = run_loader(cfg, &s, 0, 3, 2, 16, 0);
    ck_assert_int_eq(d1.batches, 10); /* 2 epochs x ceil(70/16) */
    ck_assert_uint_eq(d1.n, d2.n);
    ck_assert_uint_eq(d1.n, d3.n);
    ck_assert_msg(!memcmp(d1.d, d2.d, d1.n), "1 vs 2 workers differ");
    ck_assert_msg(!memcmp(d1.d, d3.d, d1.n), "1 vs 3 workers differ");
    free(d1.d);
    free(d2.d);
    free(d3.d);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_determinism_streaming)
{
    eqm_config *cfg = du_config(simclr_lines);
    syn s = {50, -1, 0, 0, ""};
    dump d1 = run_loader(cfg, &s, 1, 1, 2, 8, 1);
    dump d3 = run_loader(cfg, &s, 1, 3, 2, 8, 1);
    ck_assert_int_eq(d1.batches, 12); /* 2 x floor(50/8) */
    ck_assert_uint_eq(d1.n, d3.n);
    ck_assert_msg(!memcmp(d1.d, d3.d, d1.n), "streaming: 1 vs 3 workers differ");
    dump k1 = run_loader(cfg, &s, 1, 2, 1, 8, 0);
    ck_assert_int_eq(k1.batches, 7); /* kept last batch of 2 */
    free(d1.d);
    free(d3.d);
    free(k1.d);
    config_destroy(cfg);
}
END_TEST

/* Epoch order: a permutation, different per epoch, every sample once; x0 = normalize(pixels). */
START_TEST(test_epoch_content)
{
    eqm_config *cfg = du_config(simclr_lines);
    syn s = {100, -1, 0, 0, ""};
    eqm_sample_source src = syn_source(&s, 0);
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.workers = 2;
    o.batch_size = 32;
    eqm_loader *l;
    char err[1024];
    ck_assert_msg(loader_create_source(&l, cfg, reg, &src, &o, err, sizeof err) == 0, "%s", err);
    eqm_loader_info info;
    loader_info(l, &info);
    ck_assert_int_eq(info.batches_per_epoch, 3); /* drop_last defaults to true */
    ck_assert_int_eq(info.p, 15);
    int64_t first[2][32];
    for (int e = 0; e < 2; e++) {
        int seen[100] = {0};
        ck_assert_int_eq(loader_start_epoch(l, e), 0);
        eqm_batch *b;
        int nb = 0, rc;
        while ((rc = loader_next(l, &b)) == EQM_OK) {
            ck_assert_int_eq(b->n, 32);
            ck_assert_int_eq(b->index, nb);
            for (int r = 0; r < b->n; r++) {
                int64_t id = b->sample_ids[r];
                ck_assert(id >= 0 && id < 100);
                ck_assert_int_eq(seen[id], 0);
                seen[id] = 1;
                ck_assert_int_eq(b->labels[r], id % 10);
                if (nb == 0)
                    first[e][r] = id;
                /* x0 = (v/255 - mean)/std of the source pixels */
                const float m[3] = {0.4914f, 0.4822f, 0.4465f}, sd[3] = {0.247f, 0.243f, 0.261f};
                for (int k = 0; k < 3072; k += 97) {
                    float v = ((float)syn_px(id, k) / 255.0f - m[k % 3]) / sd[k % 3];
                    ck_assert_float_eq(b->x0[(size_t)r * 3072 + k], v);
                }
                /* t: neutral values when the jitter was skipped; ranges otherwise */
                const float *t = b->t1 + (size_t)r * 15;
                ck_assert(t[2] >= 1 && t[2] <= 32 && t[3] >= 1 && t[3] <= 32);
                ck_assert(t[0] + t[2] <= 32 && t[1] + t[3] <= 32);
                ck_assert(t[4] == 0 || t[4] == 1);
                if (t[5] == 0) {
                    ck_assert(t[6] == 0 && t[7] == 1 && t[8] == 2 && t[9] == 3);
                    ck_assert(t[10] == 1 && t[11] == 1 && t[12] == 1 && t[13] == 0);
                } else {
                    ck_assert(t[10] >= 0.6f && t[10] <= 1.4f && fabsf(t[13]) <= 0.1f);
                    ck_assert(t[6] + t[7] + t[8] + t[9] == 6);
                }
            }
            loader_release(l, b);
            nb++;
        }
        ck_assert_int_eq(rc, EQM_EOF);
        ck_assert_int_eq(nb, 3);
    }
    ck_assert_msg(memcmp(first[0], first[1], sizeof first[0]), "epochs 0 and 1 have the same order");
    eqm_loader_stats st;
    loader_stats(l, &st);
    ck_assert_int_eq(st.batches, 6);
    ck_assert_int_eq(st.samples, 192);
    loader_destroy(l);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_worker_error)
{
    eqm_config *cfg = du_config(simclr_lines);
    for (int workers = 1; workers <= 3; workers++) {
        syn s = {100, 37, 0, 0, ""};
        eqm_sample_source src = syn_source(&s, 0);
        eqm_loader_opts o;
        memset(&o, 0, sizeof o);
        o.workers = workers;
        o.batch_size = 10;
        o.shuffle_set = 1;
        o.shuffle = 0;
        eqm_loader *l;
        char err[1024];
        ck_assert_msg(loader_create_source(&l, cfg, reg, &src, &o, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(loader_start_epoch(l, 0), 0);
        eqm_batch *b;
        int rc, good = 0;
        while ((rc = loader_next(l, &b)) == EQM_OK) {
            good++;
            loader_release(l, b);
        }
        ck_assert_int_eq(good, 3); /* batches 0..2; batch 3 holds sample 37 */
        ck_assert_int_eq(rc, EQM_ERR_FORMAT);
        ck_assert_msg(strstr(loader_error(l), "synthetic failure at sample 37"), "%s", loader_error(l));
        /* the loader stays failed, and says so */
        ck_assert_int_lt(loader_next(l, &b), 0);
        loader_destroy(l);
    }
    config_destroy(cfg);
}
END_TEST

START_TEST(test_destroy_mid_epoch)
{
    eqm_config *cfg = du_config(simclr_lines);
    syn s = {200, -1, 0, 0, ""};
    for (int keep_lent = 0; keep_lent < 2; keep_lent++) {
        eqm_sample_source src = syn_source(&s, 0);
        eqm_loader_opts o;
        memset(&o, 0, sizeof o);
        o.workers = 3;
        o.batch_size = 8;
        eqm_loader *l;
        char err[1024];
        ck_assert_msg(loader_create_source(&l, cfg, reg, &src, &o, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(loader_start_epoch(l, 0), 0);
        eqm_batch *b;
        ck_assert_int_eq(loader_next(l, &b), 0);
        if (!keep_lent)
            loader_release(l, b);
        loader_destroy(l); /* workers busy or waiting on a full ring */
    }
    /* streaming too */
    syn s2 = {200, -1, 0, 0, ""};
    eqm_sample_source src = syn_source(&s2, 1);
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.workers = 2;
    o.batch_size = 8;
    eqm_loader *l;
    char err[1024];
    ck_assert_msg(loader_create_source(&l, cfg, reg, &src, &o, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(loader_start_epoch(l, 0), 0);
    eqm_batch *b;
    ck_assert_int_eq(loader_next(l, &b), 0);
    loader_destroy(l);
    config_destroy(cfg);
}
END_TEST

/* Abandoning an epoch half-way gives the same next epoch as a fresh loader. */
START_TEST(test_epoch_restart)
{
    eqm_config *cfg = du_config(simclr_lines);
    syn s = {64, -1, 0, 0, ""};
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.workers = 3;
    o.batch_size = 8;
    char err[1024];
    eqm_loader *a, *b2;
    eqm_sample_source src = syn_source(&s, 0);
    ck_assert(loader_create_source(&a, cfg, reg, &src, &o, err, sizeof err) == 0);
    ck_assert(loader_create_source(&b2, cfg, reg, &src, &o, err, sizeof err) == 0);
    ck_assert_int_eq(loader_start_epoch(a, 0), 0);
    eqm_batch *x, *y;
    ck_assert_int_eq(loader_next(a, &x), 0);
    loader_release(a, x);
    ck_assert_int_eq(loader_start_epoch(a, 5), 0);
    ck_assert_int_eq(loader_start_epoch(b2, 5), 0);
    int n = 0;
    while (loader_next(a, &x) == EQM_OK) {
        ck_assert_int_eq(loader_next(b2, &y), 0);
        ck_assert_int_eq(x->index, y->index);
        ck_assert(!memcmp(x->x1, y->x1, (size_t)x->n * 3072 * sizeof(float)));
        ck_assert(!memcmp(x->t2, y->t2, (size_t)x->n * 15 * sizeof(float)));
        loader_release(a, x);
        loader_release(b2, y);
        n++;
    }
    ck_assert_int_eq(n, 8);
    loader_destroy(a);
    loader_destroy(b2);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_t_layout_and_standardize)
{
    eqm_config *cfg = du_config(simclr_lines);
    syn s = {10, -1, 0, 0, ""};
    eqm_sample_source src = syn_source(&s, 0);
    eqm_loader *l;
    char err[1024];
    ck_assert(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err) == 0);
    static const char *const names[15] = {"crop_i", "crop_j", "crop_h", "crop_w", "flip",
                                          "jitter", "order0", "order1", "order2", "order3",
                                          "brightness", "contrast", "saturation", "hue", "gray"};
    ck_assert_int_eq(loader_t_dim(l), 15);
    for (int i = 0; i < 15; i++)
        ck_assert_str_eq(loader_t_name(l, i), names[i]);
    float raw[30], st[30];
    for (int i = 0; i < 30; i++)
        raw[i] = (float)i;
    loader_standardize_t(l, raw, st, 2);
    ck_assert_float_eq_tol(st[2], (2.0f - 23.369f) / 4.9544f, 1e-6f);
    ck_assert_float_eq_tol(st[15 + 13], (28.0f - 2.2321e-07f) / 0.0517f, 1e-3f);
    loader_destroy(l);
    /* describe */
    char *buf = NULL;
    size_t bl = 0;
    FILE *f = open_memstream(&buf, &bl);
    ck_assert_int_eq(loader_describe_t(cfg, reg, f), 0);
    fclose(f);
    ck_assert_msg(strstr(buf, "t[13]\thue") && strstr(buf, "t[14]\tgray"), "%s", buf);
    free(buf);
    config_destroy(cfg);
}
END_TEST

/* Monte Carlo estimate vs the published CIFAR constants (METHOD.md §4): the sampler's
 * distributions must match the reference's. */
START_TEST(test_estimate_matches_published)
{
    const char *const lines[] = {DU_SIMCLR_CIFAR, "loader.t_standardize=estimate",
                                 "loader.t_estimate_samples=40000", NULL};
    eqm_config *cfg = du_config(lines);
    syn s = {10, -1, 0, 0, ""};
    eqm_sample_source src = syn_source(&s, 0);
    eqm_loader *l;
    char err[1024];
    ck_assert_msg(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err) == 0, "%s", err);
    const float pm[15] = {4.3122f, 4.3216f, 23.369f, 23.374f, 0.49998f, 0.80087f, 1.2025f, 1.4007f,
                          1.5964f, 1.8004f, 0.99993f, 1.0002f, 0.99986f, 2.2321e-07f, 0.19965f};
    const float ps[15] = {3.9740f, 3.9851f, 4.9544f, 4.9539f, 0.5000f, 0.3993f, 1.1651f, 1.0210f,
                          1.0200f, 1.1669f, 0.2066f, 0.2068f, 0.2066f, 0.0517f, 0.3997f};
    const float *m = loader_t_mean(l), *sd = loader_t_std(l);
    for (int i = 0; i < 15; i++) {
        /* 80,000 draws: the standard error of a mean is std/283; allow 5 of them + 0.5% */
        ck_assert_msg(fabsf(m[i] - pm[i]) <= 5 * ps[i] / 283.0f + 0.005f * fabsf(pm[i]),
                      "t[%d] mean %g, published %g", i, m[i], pm[i]);
        ck_assert_msg(fabsf(sd[i] - ps[i]) <= 0.02f * ps[i] + 0.002f, "t[%d] std %g, published %g",
                      i, sd[i], ps[i]);
    }
    loader_destroy(l);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_config_errors)
{
    char err[1024];
    syn s = {10, -1, 0, 0, ""};
    eqm_sample_source src = syn_source(&s, 0);
    eqm_loader *l;
    {   /* views with different t layouts */
        const char *const lines[] = {DU_SIMCLR_CIFAR, "views.view2=crop flip jitter norm", NULL};
        eqm_config *cfg = du_config(lines);
        ck_assert_int_eq(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err), EQM_ERR_INVAL);
        ck_assert_msg(strstr(err, "different t layouts"), "%s", err);
        config_destroy(cfg);
    }
    {   /* missing section */
        const char *const lines[] = {DU_SIMCLR_CIFAR, "views.view1=crop flop jitter gray norm", NULL};
        eqm_config *cfg = du_config(lines);
        ck_assert_int_lt(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err), 0);
        ck_assert_msg(strstr(err, "[augment.flop]"), "%s", err);
        config_destroy(cfg);
    }
    {   /* normalize not last */
        const char *const lines[] = {DU_SIMCLR_CIFAR, "views.original=norm flip", NULL};
        eqm_config *cfg = du_config(lines);
        ck_assert_int_eq(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err), EQM_ERR_INVAL);
        ck_assert_msg(strstr(err, "normalize step must be last"), "%s", err);
        config_destroy(cfg);
    }
    {   /* published constants for a layout they do not describe */
        const char *const lines[] = {DU_SIMCLR_CIFAR, "loader.t_standardize=byol_cifar", NULL};
        eqm_config *cfg = du_config(lines);
        ck_assert_int_eq(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err), EQM_ERR_INVAL);
        ck_assert_msg(strstr(err, "byol_cifar expects the 18-field"), "%s", err);
        config_destroy(cfg);
    }
    {   /* sizes differ between views */
        const char *const lines[] = {DU_SIMCLR_CIFAR, "augment.crop.size=24", NULL};
        eqm_config *cfg = du_config(lines);
        ck_assert_int_eq(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err), EQM_ERR_INVAL);
        ck_assert_msg(strstr(err, "one size"), "%s", err);
        config_destroy(cfg);
    }
}
END_TEST

/* BYOL layout (18 fields, asymmetric views) with the published byol_cifar constants. */
START_TEST(test_byol_views)
{
    const char *const lines[] = {
        DU_SIMCLR_CIFAR, "augment.blur1.plugin=gaussian_blur", "augment.blur1.p=1",
        "augment.blur2.plugin=gaussian_blur", "augment.blur2.p=0.1",
        "augment.sol1.plugin=solarize", "augment.sol1.p=0", "augment.sol2.plugin=solarize",
        "views.view1=crop flip jitter gray blur1 sol1 norm",
        "views.view2=crop flip jitter gray blur2 sol2 norm", "loader.t_standardize=byol_cifar", NULL};
    eqm_config *cfg = du_config(lines);
    dump d1, d2;
    syn s = {40, -1, 0, 0, ""};
    d1 = run_loader(cfg, &s, 0, 1, 1, 20, 1);
    d2 = run_loader(cfg, &s, 0, 2, 1, 20, 1);
    ck_assert_uint_eq(d1.n, d2.n);
    ck_assert(!memcmp(d1.d, d2.d, d1.n));
    /* view 1 always blurred, never solarized */
    size_t vs = 20 * 3072 * sizeof(float), off = sizeof(int) + 3 * vs;
    const float *t1 = (const float *)(d1.d + off);
    for (int r = 0; r < 20; r++) {
        ck_assert_float_eq(t1[r * 18 + 15], 1.0f);
        ck_assert(t1[r * 18 + 16] >= 0.1f && t1[r * 18 + 16] <= 2.0f);
        ck_assert_float_eq(t1[r * 18 + 17], 0.0f);
    }
    free(d1.d);
    free(d2.d);
    config_destroy(cfg);
}
END_TEST

/* [equimod] t_fields: t keeps the fields of the named augmentations (in pipeline order),
 * the views are the same pixels as with every field, the kept fields are the same numbers
 * as those columns of the full t, and the standardisation constants (published or
 * estimated) are those of the kept fields. */
static eqm_loader *tf_loader(eqm_config *cfg, syn *s)
{
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.workers = 2;
    o.batch_size = 16;
    eqm_sample_source src = syn_source(s, 0);
    eqm_loader *l;
    char err[1024];
    ck_assert_msg(loader_create_source(&l, cfg, reg, &src, &o, err, sizeof err) == 0, "%s", err);
    return l;
}

START_TEST(test_t_fields_subset)
{
    const char *const colour[] = {DU_SIMCLR_CIFAR, "equimod.t_fields=jitter, gray", NULL};
    const char *const crop[] = {DU_SIMCLR_CIFAR, "equimod.t_fields=crop", NULL};
    eqm_config *cf = du_config(simclr_lines), *cc = du_config(colour), *ck = du_config(crop);
    syn s = {40, -1, 0, 0, ""};
    eqm_loader *lf = tf_loader(cf, &s), *lc = tf_loader(cc, &s), *lk = tf_loader(ck, &s);
    static const char *const cnames[10] = {"jitter", "order0", "order1", "order2", "order3",
                                           "brightness", "contrast", "saturation", "hue", "gray"};
    ck_assert_int_eq(loader_t_dim(lf), 15);
    ck_assert_int_eq(loader_t_dim(lc), 10);
    ck_assert_int_eq(loader_t_dim(lk), 4);
    eqm_loader_info info;
    loader_info(lc, &info);
    ck_assert_int_eq(info.p, 10);
    for (int i = 0; i < 10; i++) {
        ck_assert_str_eq(loader_t_name(lc, i), cnames[i]);
        ck_assert_float_eq(loader_t_mean(lc)[i], loader_t_mean(lf)[5 + i]);
        ck_assert_float_eq(loader_t_std(lc)[i], loader_t_std(lf)[5 + i]);
    }
    ck_assert_str_eq(loader_t_name(lk, 3), "crop_w");
    ck_assert_float_eq(loader_t_mean(lk)[2], 23.369f);
    ck_assert_ptr_null(loader_t_name(lk, 4));
    ck_assert_int_eq(loader_start_epoch(lf, 0), 0);
    ck_assert_int_eq(loader_start_epoch(lc, 0), 0);
    ck_assert_int_eq(loader_start_epoch(lk, 0), 0);
    eqm_batch *bf, *bc, *bk;
    int batches = 0;
    while (loader_next(lf, &bf) == EQM_OK) {
        ck_assert_int_eq(loader_next(lc, &bc), EQM_OK);
        ck_assert_int_eq(loader_next(lk, &bk), EQM_OK);
        ck_assert_int_eq(bc->p, 10);
        ck_assert_int_eq(bk->p, 4);
        size_t vs = (size_t)bf->n * bf->w * bf->h * bf->c * sizeof(float);
        ck_assert(!memcmp(bf->x0, bc->x0, 3 * vs)); /* x0, x1, x2: the same augmentations */
        ck_assert(!memcmp(bf->x0, bk->x0, 3 * vs));
        for (int r = 0; r < 2 * bf->n; r++) { /* t1 then t2, raw and standardised */
            for (int k = 0; k < 10; k++) {
                ck_assert_float_eq(bc->t1[r * 10 + k], bf->t1[r * 15 + 5 + k]);
                ck_assert_float_eq(bc->t[r * 10 + k], bf->t[r * 15 + 5 + k]);
            }
            for (int k = 0; k < 4; k++) {
                ck_assert_float_eq(bk->t1[r * 4 + k], bf->t1[r * 15 + k]);
                ck_assert_float_eq(bk->t[r * 4 + k], bf->t[r * 15 + k]);
            }
        }
        loader_release(lf, bf);
        loader_release(lc, bc);
        loader_release(lk, bk);
        batches++;
    }
    ck_assert_int_eq(batches, 2);
    /* the estimate draws the same parameters: the kept fields' constants are the same */
    float mf[15], sf[15], mc[10], sc[10];
    ck_assert_int_eq(loader_estimate_t(lf, 500, 9, mf, sf), 0);
    ck_assert_int_eq(loader_estimate_t(lc, 500, 9, mc, sc), 0);
    for (int i = 0; i < 10; i++) {
        ck_assert_float_eq(mc[i], mf[5 + i]);
        ck_assert_float_eq(sc[i], sf[5 + i]);
    }
    loader_destroy(lf);
    loader_destroy(lc);
    loader_destroy(lk);
    /* the layout `equimod config` prints */
    char *buf = NULL;
    size_t bl = 0;
    FILE *f = open_memstream(&buf, &bl);
    ck_assert_int_eq(loader_describe_t(ck, reg, f), 0);
    fclose(f);
    ck_assert_msg(strstr(buf, "4 fields") && strstr(buf, "t[3]\tcrop_w") &&
                      !strstr(buf, "t[4]") && strstr(buf, "# dropped\tgray"), "%s", buf);
    free(buf);
    config_destroy(cf);
    config_destroy(cc);
    config_destroy(ck);
}
END_TEST

START_TEST(test_t_fields_errors)
{
    static const struct {
        const char *value, *want;
    } cases[] = {
        {"equimod.t_fields=crp jitter", "t_fields: 'crp' is not an augmentation of [views] "
                                        "view1 or view2; did you mean 'crop'?"},
        {"equimod.t_fields=norm", "[augment.norm] (normalize) has no t fields"},
        {"equimod.t_fields=crop crop", "'crop' listed twice"},
        {"equimod.t_fields=all crop", "'all' cannot be combined"},
        {"equimod.t_fields=lincrop", "hint: t_fields takes the [augment.NAME] names of the "
                                     "views that have t fields: crop flip jitter gray (or all)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const lines[] = {DU_SIMCLR_CIFAR, cases[i].value, NULL};
        eqm_config *cfg = du_config(lines);
        syn s = {10, -1, 0, 0, ""};
        eqm_sample_source src = syn_source(&s, 0);
        eqm_loader *l;
        char err[1024];
        ck_assert_int_eq(loader_create_source(&l, cfg, reg, &src, NULL, err, sizeof err),
                         EQM_ERR_INVAL);
        ck_assert_msg(strstr(err, cases[i].want) && strstr(err, "--set equimod.t_fields"),
                      "%s: %s", cases[i].value, err);
        config_destroy(cfg);
    }
}
END_TEST

/* Real CIFAR-10 train split through the [data] section. */
START_TEST(test_real_cifar)
{
    const char *dir = du_cifar_dir();
    if (!dir) {
        fprintf(stderr, "%s: skipped (no CIFAR-10 under $EQUIMOD_DATA_DIR/cifar10)\n", __func__);
        return;
    }
    char root[1200];
    snprintf(root, sizeof root, "data.root=%s", dir);
    const char *const lines[] = {DU_SIMCLR_CIFAR, "data.plugin=cifar10", root,
                                 "data.train_batches=1", "views.eval_test=r36 c32 norm",
                                 "augment.r36.plugin=resize", "augment.r36.size=36",
                                 "augment.r36.interpolation=bicubic",
                                 "augment.c32.plugin=center_crop", "augment.c32.size=32", NULL};
    eqm_config *cfg = du_config(lines);
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch_size = 100;
    o.workers = 2;
    o.limit = 1000;
    eqm_loader *l;
    char err[1024];
    ck_assert_msg(loader_create(&l, cfg, reg, "train", &o, err, sizeof err) == 0, "%s", err);
    eqm_loader_info info;
    loader_info(l, &info);
    ck_assert_int_eq(info.n_samples, 1000);
    ck_assert_int_eq(info.n_classes, 10);
    ck_assert_str_eq(info.class_names[3], "cat");
    ck_assert_msg(strstr(info.source_desc, "train"), "%s", info.source_desc);
    ck_assert_int_eq(loader_start_epoch(l, 0), 0);
    eqm_batch *b;
    int n = 0;
    while (loader_next(l, &b) == EQM_OK) {
        for (int r = 0; r < b->n; r++)
            ck_assert(b->labels[r] >= 0 && b->labels[r] < 10);
        n += b->n;
        loader_release(l, b);
    }
    ck_assert_int_eq(n, 1000);
    /* render sample 0: the original view is the image itself (frog, class 6) */
    eqm_image u8[3];
    float t1[15], t2[15];
    int32_t label;
    ck_assert_int_eq(loader_render_sample(l, 0, 0, u8, t1, t2, &label), 0);
    ck_assert_int_eq(label, 6);
    ck_assert_int_eq(u8[0].w, 32);
    for (int v = 0; v < 3; v++)
        free(u8[v].data);
    loader_destroy(l);
    /* single-view evaluation mode with the test preprocessing */
    memset(&o, 0, sizeof o);
    o.mode = EQM_LOADER_SINGLE;
    o.single_view = "eval_test";
    o.batch_size = 250;
    o.shuffle_set = 1;
    o.drop_last_set = 1;
    ck_assert_msg(loader_create(&l, cfg, reg, "test", &o, err, sizeof err) == 0, "%s", err);
    loader_info(l, &info);
    ck_assert_int_eq(info.p, 0);
    ck_assert_int_eq(loader_start_epoch(l, 0), 0);
    n = 0;
    while (loader_next(l, &b) == EQM_OK) {
        ck_assert_ptr_null(b->x1);
        ck_assert_int_eq(b->sample_ids[0], n);
        n += b->n;
        loader_release(l, b);
    }
    ck_assert_int_eq(n, info.n_samples);
    loader_destroy(l);
    config_destroy(cfg);
}
END_TEST

int main(void)
{
    reg = du_registry();
    if (!reg)
        return 99;
    Suite *s = suite_create("loader");
    /* one case per test, so that CK_RUN_CASE=<name without test_> runs one (valgrind) */
    {
        TCase *tc = tcase_create("determinism_workers");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_determinism_workers);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("determinism_streaming");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_determinism_streaming);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("epoch_content");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_epoch_content);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("worker_error");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_worker_error);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("destroy_mid_epoch");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_destroy_mid_epoch);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("epoch_restart");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_epoch_restart);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("t_layout_and_standardize");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_t_layout_and_standardize);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("estimate_matches_published");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_estimate_matches_published);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("config_errors");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_config_errors);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("byol_views");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_byol_views);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("t_fields_subset");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_t_fields_subset);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("t_fields_errors");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_t_fields_errors);
        suite_add_tcase(s, tc);
    }
    {
        TCase *tc = tcase_create("real_cifar");
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_real_cifar);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    registry_destroy(reg);
    return nf ? 1 : 0;
}
