/* tests/train/check_optim.c: LARS, SGD-Nesterov, the warmup-cosine lr schedule and the
 * BYOL EMA schedule against PyTorch reference values (tests/train/fixtures/optim.txt,
 * written by tests/train/gen_fixtures.py), plus the NaN refusal and the EMA update. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <equimod/status.h>

#include "train/eval.h"
#include "train/optim.h"

#define MAXV 8192
typedef struct {
    char name[32];
    int n;
    double *v;
} fx_entry;
static fx_entry fx[256];
static int n_fx;

static void load_fixture(void)
{
    if (n_fx)
        return;
    const char *src = getenv("EQM_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/train/fixtures/optim.txt", src ? src : EQM_SRCDIR);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char name[32];
    int n;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (c == '#') {
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        ungetc(c, f);
        if (fscanf(f, "%31s %d", name, &n) != 2)
            break;
        ck_assert(n_fx < 256 && n >= 0 && n <= MAXV);
        fx_entry *e = &fx[n_fx++];
        snprintf(e->name, sizeof e->name, "%s", name);
        e->n = n;
        e->v = calloc(n ? n : 1, sizeof(double));
        for (int i = 0; i < n; i++)
            ck_assert(fscanf(f, "%lf", &e->v[i]) == 1);
    }
    fclose(f);
}

static const fx_entry *get(const char *name)
{
    load_fixture();
    for (int i = 0; i < n_fx; i++)
        if (!strcmp(fx[i].name, name))
            return &fx[i];
    ck_abort_msg("fixture entry %s missing", name);
    return NULL;
}

static void run_optimizer(int kind, const char *prefix)
{
    const fx_entry *meta = get("meta");
    int nt = (int)meta->v[0], steps = (int)meta->v[1];
    double wd = meta->v[3];
    float *w[8], *g[8];
    optim_param p[8];
    char nm[32];
    for (int i = 0; i < nt; i++) {
        snprintf(nm, sizeof nm, "shape%d", i);
        const fx_entry *s = get(nm);
        snprintf(nm, sizeof nm, "init%d", i);
        const fx_entry *in = get(nm);
        w[i] = calloc(in->n, sizeof(float));
        g[i] = calloc(in->n, sizeof(float));
        for (int j = 0; j < in->n; j++)
            w[i][j] = (float)in->v[j];
        p[i] = (optim_param){w[i], g[i], (size_t)s->v[0], (int)s->v[1]};
    }
    optim o;
    optim_cfg cfg = {kind, 0.9, wd, 1e-3, kind == OPTIM_SGD};
    ck_assert_int_eq(optim_init(&o, &cfg, p, nt), EQM_OK);
    const fx_entry *lrs = get("lrs");
    for (int k = 0; k < steps; k++) {
        for (int i = 0; i < nt; i++) {
            snprintf(nm, sizeof nm, "grad%d_%d", k, i);
            const fx_entry *ge = get(nm);
            for (int j = 0; j < ge->n; j++)
                g[i][j] = (float)ge->v[j];
        }
        ck_assert_int_eq(optim_step(&o, lrs->v[k]), EQM_OK);
    }
    for (int i = 0; i < nt; i++) {
        snprintf(nm, sizeof nm, "%s%d", prefix, i);
        const fx_entry *ref = get(nm);
        for (int j = 0; j < ref->n; j++) {
            double tol = 2e-6 + 2e-5 * fabs(ref->v[j]);
            ck_assert_msg(fabs(w[i][j] - ref->v[j]) <= tol, "%s[%d]: got %.9g, torch %.9g", nm,
                          j, w[i][j], ref->v[j]);
        }
        /* The reference must have moved the weights: a no-op optimizer cannot pass. */
        snprintf(nm, sizeof nm, "init%d", i);
        const fx_entry *in = get(nm);
        double moved = 0;
        for (int j = 0; j < in->n; j++)
            moved += fabs(in->v[j] - ref->v[j]);
        ck_assert(moved > 1e-4);
        free(w[i]);
        free(g[i]);
    }
    optim_free(&o);
}

START_TEST(lars_matches_torch) { run_optimizer(OPTIM_LARS, "lars"); }
END_TEST

START_TEST(sgd_nesterov_matches_torch) { run_optimizer(OPTIM_SGD, "sgd"); }
END_TEST

START_TEST(warmup_cosine_matches_torch)
{
    const fx_entry *m = get("warmcos_meta");
    const fx_entry *v = get("warmcos");
    int W = (int)m->v[1], T = (int)m->v[2];
    double lr = m->v[3];
    for (int k = 0; k < v->n; k++) {
        double got = sched_warmup_cosine(k, lr, W, T, 1e-8, 1e-8);
        ck_assert_msg(fabs(got - v->v[k]) <= 1e-9 * lr, "step %d: %.17g vs torch %.17g", k,
                      got, v->v[k]);
    }
    const fx_entry *pv = get("probecos");
    int T2 = (int)get("probecos_meta")->v[0];
    for (int k = 0; k < pv->n; k++) {
        double got = sched_warmup_cosine(k, 0.2, 0, T2, 1.0, 1e-4);
        ck_assert_msg(fabs(got - pv->v[k]) <= 1e-10, "probe step %d: %.17g vs %.17g", k, got,
                      pv->v[k]);
    }
}
END_TEST

START_TEST(ema_tau_schedule)
{
    const fx_entry *ks = get("tau_k"), *tv = get("tau");
    for (int i = 0; i < ks->n; i++) {
        double got = sched_ema_tau((int64_t)ks->v[i], 97 * 800, 0.996);
        ck_assert_msg(fabs(got - tv->v[i]) <= 1e-15, "k=%g: %.17g vs %.17g", ks->v[i], got,
                      tv->v[i]);
    }
    ck_assert(fabs(sched_ema_tau(0, 100, 0.996) - 0.996) < 1e-15);
    ck_assert(fabs(sched_ema_tau(100, 100, 0.996) - 1.0) < 1e-15);
    ck_assert(sched_ema_tau(50, 100, 0.996) > 0.996 && sched_ema_tau(50, 100, 0.996) < 1.0);
    float t[3] = {1, 2, 3}, o[3] = {3, 2, 1};
    ema_update(t, o, 3, 0.75);
    ck_assert(fabs(t[0] - 1.5f) < 1e-6 && fabs(t[1] - 2.0f) < 1e-6 && fabs(t[2] - 2.5f) < 1e-6);
}
END_TEST

START_TEST(nan_gradient_refused)
{
    float w[4] = {1, 2, 3, 4}, g[4] = {0.1f, NAN, 0.1f, 0.1f};
    float w2[2] = {1, 1}, g2[2] = {1, 1};
    optim_param p[2] = {{w2, g2, 2, 1}, {w, g, 4, 1}};
    optim o;
    optim_cfg cfg = {OPTIM_LARS, 0.9, 1e-6, 1e-3, 0};
    ck_assert_int_eq(optim_init(&o, &cfg, p, 2), EQM_OK);
    ck_assert_int_eq(optim_step(&o, 0.1), EQM_ERR_NUMERIC);
    ck_assert(w[0] == 1 && w[3] == 4 && w2[0] == 1); /* nothing changed, not even tensor 0 */
    optim_free(&o);
    cfg.kind = OPTIM_SGD;
    ck_assert_int_eq(optim_init(&o, &cfg, p, 2), EQM_OK);
    ck_assert_int_eq(optim_step(&o, 0.1), EQM_ERR_NUMERIC);
    ck_assert(w2[0] == 1);
    optim_free(&o);
    cfg.momentum = 1.5;
    ck_assert_int_eq(optim_init(&o, &cfg, p, 2), EQM_ERR_INVAL);
}
END_TEST

START_TEST(knn_matches_torch)
{
    const fx_entry *m = get("knn_meta");
    int ntr = (int)m->v[0], nte = (int)m->v[1], d = (int)m->v[2], C = (int)m->v[3],
        k = (int)m->v[4];
    double T = m->v[5];
    const fx_entry *xtr = get("knn_xtr"), *ytr = get("knn_ytr"), *xte = get("knn_xte"),
                   *yte = get("knn_yte"), *acc = get("knn_acc");
    float *a = malloc(sizeof(float) * ntr * d), *b = malloc(sizeof(float) * nte * d);
    int32_t *la = malloc(sizeof(int32_t) * ntr), *lb = malloc(sizeof(int32_t) * nte);
    for (int i = 0; i < ntr * d; i++)
        a[i] = (float)xtr->v[i];
    for (int i = 0; i < nte * d; i++)
        b[i] = (float)xte->v[i];
    for (int i = 0; i < ntr; i++)
        la[i] = (int32_t)ytr->v[i];
    for (int i = 0; i < nte; i++)
        lb[i] = (int32_t)yte->v[i];
    eval_acc r;
    ck_assert_int_eq(eval_knn(a, la, ntr, b, lb, nte, d, C, k, T, &r), EQM_OK);
    ck_assert_msg(fabs(r.top1 - acc->v[0]) < 1e-3 && fabs(r.top5 - acc->v[1]) < 1e-3,
                  "knn %.3f/%.3f vs torch %.3f/%.3f", r.top1, r.top5, acc->v[0], acc->v[1]);
    ck_assert_int_eq(r.n, nte);
    /* The linear probe (fast mode) on the same features: well above chance (10%), and
     * near-perfect on its own training rows. */
    eval_linear_cfg lc = {30, 32, 0.2, 1e-4, 0.9, 1, 0, 1};
    eval_acc lr_acc, train_acc;
    double loss = 0;
    ck_assert_int_eq(eval_linear_fast(a, la, ntr, b, lb, nte, d, C, &lc, &lr_acc, &loss), EQM_OK);
    ck_assert_int_eq(eval_linear_fast(a, la, ntr, a, la, ntr, d, C, &lc, &train_acc, NULL),
                     EQM_OK);
    ck_assert_msg(lr_acc.top1 > 40 && train_acc.top1 > 60 && loss < 1.5,
                  "linear test %.1f train %.1f loss %.3f", lr_acc.top1, train_acc.top1, loss);
    free(a), free(b), free(la), free(lb);
}
END_TEST

START_TEST(npy_header)
{
    char path[] = "/tmp/eqm-npy-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    float x[6] = {1, 2, 3, 4, 5, 6};
    char err[256];
    ck_assert_int_eq(npy_write_f32(path, x, 2, 3, err, sizeof err), EQM_OK);
    FILE *f = fopen(path, "rb");
    unsigned char h[128];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    ck_assert_int_eq(n, 128 + 0); /* 128-byte header (64-aligned) ... */
    ck_assert(!memcmp(h, "\x93NUMPY\x01\x00", 8));
    int hl = h[8] | h[9] << 8;
    ck_assert_int_eq((10 + hl) % 64, 0);
    ck_assert(strstr((char *)h + 10, "'descr': '<f4'") && strstr((char *)h + 10, "(2, 3)"));
    struct stat st;
    stat(path, &st);
    ck_assert_int_eq(st.st_size, 10 + hl + 24); /* ... then 6 floats */
    unlink(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, lars_matches_torch);
    tcase_add_test(tc, sgd_nesterov_matches_torch);
    tcase_add_test(tc, warmup_cosine_matches_torch);
    tcase_add_test(tc, ema_tau_schedule);
    tcase_add_test(tc, nan_gradient_refused);
    tcase_add_test(tc, knn_matches_torch);
    tcase_add_test(tc, npy_header);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (int i = 0; i < n_fx; i++)
        free(fx[i].v);
    return nf ? 1 : 0;
}
