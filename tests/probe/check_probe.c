/* tests/probe/check_probe.c: the ridge read-out of `equimod probe` (host/eval/probe.c).
 *   - the Cholesky solve against Gaussian elimination with partial pivoting (written here)
 *     and against torch.linalg.solve (fixture of tests/probe/gen_fixture.py);
 *   - probe_fit_groups against the PyTorch reference of the whole protocol (fixture);
 *   - known answers: features that hold a t field linearly give R^2 near 1; the same
 *     features shuffled against t give R^2 near 0; a group that does not vary gives NAN;
 *   - refusals: a matrix that is not positive definite, an empty part. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/probe.h"
#include "sweep/sweep.h"

#ifndef EQM_SRCDIR
#define EQM_SRCDIR "."
#endif

static uint64_t rng_state = 42;
static double urand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* Direct solution: Gaussian elimination with partial pivoting of A X = B (A d x d, B d x k). */
static void gauss_solve(double *A, int d, double *B, int k)
{
    for (int c = 0; c < d; c++) {
        int p = c;
        for (int r = c + 1; r < d; r++)
            if (fabs(A[r * d + c]) > fabs(A[p * d + c]))
                p = r;
        for (int j = 0; j < d; j++) {
            double t = A[c * d + j];
            A[c * d + j] = A[p * d + j], A[p * d + j] = t;
        }
        for (int j = 0; j < k; j++) {
            double t = B[c * k + j];
            B[c * k + j] = B[p * k + j], B[p * k + j] = t;
        }
        for (int r = c + 1; r < d; r++) {
            double f = A[r * d + c] / A[c * d + c];
            for (int j = c; j < d; j++)
                A[r * d + j] -= f * A[c * d + j];
            for (int j = 0; j < k; j++)
                B[r * k + j] -= f * B[c * k + j];
        }
    }
    for (int r = d - 1; r >= 0; r--)
        for (int j = 0; j < k; j++) {
            double s = B[r * k + j];
            for (int c = r + 1; c < d; c++)
                s -= A[r * d + c] * B[c * k + j];
            B[r * k + j] = s / A[r * d + r];
        }
}

START_TEST(test_solve_vs_direct)
{
    enum { D = 24, K = 3, M = 40 };
    static double A[M * D], G[D * D], G2[D * D], C[D * K], W[D * K], Wd[D * K], work[D * D];
    for (int i = 0; i < M * D; i++)
        A[i] = nrand();
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int r = 0; r < M; r++)
                s += A[r * D + i] * A[r * D + j];
            G[i * D + j] = s;
        }
    for (int i = 0; i < D * K; i++)
        C[i] = nrand();
    const double lams[3] = {1e-3, 0.5, 40.0};
    for (int l = 0; l < 3; l++) {
        ck_assert_int_eq(probe_ridge_solve(G, C, D, K, lams[l], W, work), EQM_OK);
        memcpy(G2, G, sizeof G2);
        for (int i = 0; i < D; i++)
            G2[i * D + i] += lams[l];
        memcpy(Wd, C, sizeof Wd);
        gauss_solve(G2, D, Wd, K);
        double wmax = 0, dmax = 0;
        for (int i = 0; i < D * K; i++) {
            wmax = fmax(wmax, fabs(Wd[i]));
            dmax = fmax(dmax, fabs(W[i] - Wd[i]));
        }
        /* condition number of G + lam I at most ~ (max eig / lam); 1e-12 relative floor */
        ck_assert_msg(dmax <= 1e-10 * wmax, "lambda %g: max |W - W_direct| %g (max |W| %g)",
                      lams[l], dmax, wmax);
    }
    /* not positive definite: the pivot that failed is reported */
    double bad[4] = {1, 2, 2, 1}; /* eigenvalues 3 and -1 */
    ck_assert_int_eq(probe_cholesky(bad, 2), 2);
    ck_assert_int_eq(probe_ridge_solve((double[]){0, 0, 0, 0}, (double[]){1, 1}, 2, 1, 0.0,
                                       (double[2]){0}, (double[4]){0}),
                     EQM_ERR_NUMERIC);
}
END_TEST

static FILE *open_fixture(void)
{
    const char *src = getenv("EQM_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/probe/fixtures/ridge.txt", src ? src : EQM_SRCDIR);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    return f;
}

static double rd(FILE *f)
{
    char tok[64];
    ck_assert_int_eq(fscanf(f, "%63s", tok), 1);
    return strtod(tok, NULL); /* "nan" too */
}

START_TEST(test_fixture_torch)
{
    FILE *f = open_fixture();
    char word[16];
    int d, k;
    double lam;
    ck_assert_int_eq(fscanf(f, "%15s %d %d %lf", word, &d, &k, &lam), 4);
    ck_assert_str_eq(word, "solve");
    double *G = malloc(sizeof(double) * d * d), *C = malloc(sizeof(double) * d * k);
    double *W = malloc(sizeof(double) * d * k), *Wr = malloc(sizeof(double) * d * k);
    double *work = malloc(sizeof(double) * d * d);
    for (int i = 0; i < d * d; i++)
        G[i] = rd(f);
    for (int i = 0; i < d * k; i++)
        C[i] = rd(f);
    for (int i = 0; i < d * k; i++)
        Wr[i] = rd(f);
    ck_assert_int_eq(probe_ridge_solve(G, C, d, k, lam, W, work), EQM_OK);
    for (int i = 0; i < d * k; i++)
        ck_assert_msg(fabs(W[i] - Wr[i]) <= 1e-12 * (1 + fabs(Wr[i])), "W[%d] %.17g, torch %.17g",
                      i, W[i], Wr[i]);
    free(G), free(C), free(W), free(Wr), free(work);

    /* the whole read-out */
    int n, P, ng;
    ck_assert_int_eq(fscanf(f, "%15s %d %d %d %d", word, &n, &d, &P, &ng), 5);
    ck_assert_str_eq(word, "probe");
    probe_group g[PROBE_MAX_GROUPS];
    memset(g, 0, sizeof g);
    for (int i = 0; i < ng; i++) {
        ck_assert_int_eq(fscanf(f, "%d %d", &g[i].first, &g[i].count), 2);
        snprintf(g[i].name, sizeof g[i].name, "g%d", i);
    }
    float *F = malloc(sizeof(float) * n * d), *T = malloc(sizeof(float) * n * P);
    uint8_t *part = malloc((size_t)n);
    for (int i = 0; i < n * d; i++)
        F[i] = (float)rd(f);
    for (int i = 0; i < n * P; i++)
        T[i] = (float)rd(f);
    for (int i = 0; i < n; i++)
        part[i] = (uint8_t)rd(f);
    probe_fit pf;
    char err[512] = "";
    ck_assert_msg(probe_fit_groups(F, n, d, T, P, g, ng, part, &pf, err, sizeof err) == EQM_OK,
                  "%s", err);
    ck_assert_int_eq(pf.d_used, d - 1); /* feature 5 is constant */
    for (int i = 0; i < ng; i++) {
        double el = rd(f), ev = rd(f), et = rd(f);
        if (isnan(el)) {
            ck_assert_msg(isnan(pf.lambda[i]) && isnan(pf.r2[i]), "group %d should be NAN", i);
            continue;
        }
        ck_assert_msg(pf.lambda[i] == el, "group %d: lambda %g, torch %g", i, pf.lambda[i], el);
        ck_assert_msg(fabs(pf.val_r2[i] - ev) < 1e-9, "group %d: val R^2 %.12g, torch %.12g", i,
                      pf.val_r2[i], ev);
        ck_assert_msg(fabs(pf.r2[i] - et) < 1e-9, "group %d: R^2 %.12g, torch %.12g", i,
                      pf.r2[i], et);
    }
    double all = rd(f);
    ck_assert_msg(fabs(pf.r2_all - all) < 1e-9, "all: %.12g, torch %.12g", pf.r2_all, all);
    for (int j = 0; j < P; j++) {
        double e = rd(f);
        if (isnan(e))
            ck_assert(isnan(pf.field_r2[j]));
        else
            ck_assert_msg(fabs(pf.field_r2[j] - e) < 1e-9, "field %d: %.12g, torch %.12g", j,
                          pf.field_r2[j], e);
    }
    probe_fit_free(&pf);
    free(F), free(T), free(part);
    fclose(f);
}
END_TEST

/* n rows of d Gaussian features; t field 0 = 2 x3 - x7 + 0.5 + 1e-3 noise, field 1 =
 * 3 x0 (group "lin"); field 2 independent noise (group "noise"); field 3 constant
 * (group "const"). */
enum { SN = 3000, SD = 24, SP = 4 };
static void synthetic(float *F, float *T, uint8_t *part, probe_group *g)
{
    rng_state = 7;
    for (int r = 0; r < SN; r++) {
        for (int j = 0; j < SD; j++)
            F[r * SD + j] = (float)nrand();
        T[r * SP + 0] = (float)(2 * F[r * SD + 3] - F[r * SD + 7] + 0.5 + 1e-3 * nrand());
        T[r * SP + 1] = 3 * F[r * SD + 0];
        T[r * SP + 2] = (float)nrand();
        T[r * SP + 3] = 0.25f;
        part[r] = (uint8_t)(r % 5 < 3 ? PROBE_FIT : r % 5 == 3 ? PROBE_VAL : PROBE_TEST);
    }
    memset(g, 0, 3 * sizeof *g);
    snprintf(g[0].name, sizeof g[0].name, "lin");
    g[0].first = 0, g[0].count = 2;
    snprintf(g[1].name, sizeof g[1].name, "noise");
    g[1].first = 2, g[1].count = 1;
    snprintf(g[2].name, sizeof g[2].name, "const");
    g[2].first = 3, g[2].count = 1;
}

START_TEST(test_known_answer)
{
    static float F[SN * SD], T[SN * SP];
    static uint8_t part[SN];
    probe_group g[3];
    synthetic(F, T, part, g);
    probe_fit pf;
    char err[512] = "";
    ck_assert_msg(!probe_fit_groups(F, SN, SD, T, SP, g, 3, part, &pf, err, sizeof err), "%s", err);
    ck_assert_int_eq(pf.n_fit, 1800);
    ck_assert_int_eq(pf.n_val, 600);
    ck_assert_int_eq(pf.n_test, 600);
    ck_assert_msg(pf.r2[0] > 0.999, "linear fields: R^2 %g, expected ~1", pf.r2[0]);
    ck_assert_msg(pf.field_r2[0] > 0.999 && pf.field_r2[1] > 0.999, "fields %g %g",
                  pf.field_r2[0], pf.field_r2[1]);
    ck_assert_msg(fabs(pf.r2[1]) < 0.05, "noise field: R^2 %g, expected ~0", pf.r2[1]);
    ck_assert_msg(isnan(pf.r2[2]) && isnan(pf.lambda[2]) && isnan(pf.field_r2[3]),
                  "a constant field has no R^2");
    ck_assert_msg(pf.lambda[0] <= 1e-2, "lambda %g for an exact linear map", pf.lambda[0]);
    probe_fit_free(&pf);

    /* the same features shuffled against t: nothing left to read out */
    for (int r = SN - 1; r > 0; r--) {
        int s = (int)(urand() * (r + 1));
        for (int j = 0; j < SD; j++) {
            float t = F[r * SD + j];
            F[r * SD + j] = F[s * SD + j], F[s * SD + j] = t;
        }
    }
    ck_assert_msg(!probe_fit_groups(F, SN, SD, T, SP, g, 3, part, &pf, err, sizeof err), "%s", err);
    ck_assert_msg(fabs(pf.r2[0]) < 0.05, "shuffled features: R^2 %g, expected ~0", pf.r2[0]);
    ck_assert_msg(fabs(pf.r2_all) < 0.05, "shuffled features: pooled R^2 %g", pf.r2_all);
    probe_fit_free(&pf);
}
END_TEST

START_TEST(test_refusals)
{
    static float F[SN * SD], T[SN * SP];
    static uint8_t part[SN];
    probe_group g[3];
    synthetic(F, T, part, g);
    for (int r = 0; r < SN; r++)
        if (part[r] == PROBE_VAL)
            part[r] = PROBE_TEST;
    probe_fit pf;
    char err[512] = "";
    ck_assert_int_eq(probe_fit_groups(F, SN, SD, T, SP, g, 3, part, &pf, err, sizeof err),
                     EQM_ERR_INVAL);
    ck_assert_msg(strstr(err, "validation part has 0 rows") != NULL, "%s", err);
    synthetic(F, T, part, g);
    g[1].count = 5; /* past the end of t */
    ck_assert_int_eq(probe_fit_groups(F, SN, SD, T, SP, g, 3, part, &pf, err, sizeof err),
                     EQM_ERR_INVAL);
    ck_assert_msg(strstr(err, "group noise") != NULL, "%s", err);
}
END_TEST

/* probe.json written by probe_write_json and read back (probe_json_read), the run page's
 * HTML table and the sweep summary's section (mean ± sd per point over the runs that have
 * a probe.json): real files in a temporary sweep folder. */
static void fake_report(probe_report *r, double crop_bb, double crop_emb, int equimod)
{
    memset(r, 0, sizeof *r);
    snprintf(r->what, sizeof r->what, "x/checkpoint.last");
    snprintf(r->method, sizeof r->method, "simclr");
    snprintf(r->split, sizeof r->split, "test");
    r->equimod = equimod;
    r->images = 100, r->fit_images = 60, r->val_images = 20, r->test_images = 20;
    r->P = 3;
    static char *names[3] = {"crop_i", "crop_j", "flip"};
    r->field_names = names;
    r->n_groups = 2;
    snprintf(r->groups[0].name, sizeof r->groups[0].name, "augment.crop");
    snprintf(r->groups[0].plugin, sizeof r->groups[0].plugin, "random_resized_crop");
    r->groups[0].first = 0, r->groups[0].count = 2;
    snprintf(r->groups[1].name, sizeof r->groups[1].name, "augment.flip");
    snprintf(r->groups[1].plugin, sizeof r->groups[1].plugin, "horizontal_flip");
    r->groups[1].first = 2, r->groups[1].count = 1;
    probe_fit *fits[2] = {&r->backbone, &r->embedding};
    for (int k = 0; k < 2; k++) {
        probe_fit *p = fits[k];
        for (int g = 0; g < PROBE_MAX_GROUPS; g++)
            p->r2[g] = p->val_r2[g] = p->lambda[g] = NAN;
        p->r2[0] = k ? crop_emb : crop_bb;
        p->r2[1] = NAN; /* flip did not vary: null */
        p->lambda[0] = 1;
        p->r2_all = p->r2[0];
        p->d = 8, p->d_used = 8;
    }
    r->has_embedding = 1;
}

START_TEST(test_json_report_sweep)
{
    char dir[] = "/tmp/eqm_probe_sweep_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* a plan of 2 points x 2 seeds; the point "m=b" seed 2 has no probe.json */
    static const char *names[4] = {"m=a,seed=1", "m=a,seed=2", "m=b,seed=1", "m=b,seed=2"};
    static const char *points[4] = {"m=a", "m=a", "m=b", "m=b"};
    const double crop[4][2] = {{0.5, 0.25}, {0.7, 0.35}, {0.9, 0.8}, {0, 0}};
    sweep_run runs[4];
    memset(runs, 0, sizeof runs);
    char path[512], err[512];
    for (int i = 0; i < 4; i++) {
        runs[i].name = (char *)names[i];
        runs[i].point = (char *)points[i];
        runs[i].seed = (char *)(i % 2 ? "2" : "1");
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        if (i == 3)
            continue;
        probe_report r;
        fake_report(&r, crop[i][0], crop[i][1], i >= 2);
        snprintf(path, sizeof path, "%s/%s/probe.json", dir, names[i]);
        ck_assert_msg(probe_write_json(&r, path, err, sizeof err) == EQM_OK, "%s", err);
    }
    probe_summary s;
    snprintf(path, sizeof path, "%s/%s", dir, names[2]);
    ck_assert_int_eq(probe_json_read(path, &s), EQM_OK);
    ck_assert_int_eq(s.n_groups, 3);
    ck_assert_str_eq(s.group[0], "crop");
    ck_assert_str_eq(s.group[1], "flip");
    ck_assert_str_eq(s.group[2], "all");
    ck_assert(fabs(s.bb[0] - 0.9) < 1e-9 && fabs(s.emb[0] - 0.8) < 1e-9);
    ck_assert(isnan(s.bb[1]) && s.has_embedding && s.equimod && s.images == 100);
    snprintf(path, sizeof path, "%s/%s", dir, names[3]);
    ck_assert_int_eq(probe_json_read(path, &s), 1); /* none */
    /* the run page */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    snprintf(path, sizeof path, "%s/%s", dir, names[0]);
    ck_assert_int_eq(probe_html(f, path), 1);
    fclose(f);
    ck_assert_msg(strstr(buf, "<table id=\"probe\">") &&
                      strstr(buf, "<tr><td>crop</td><td>0.500</td><td>0.250</td></tr>") &&
                      strstr(buf, "<tr><td>flip</td><td>n/a</td><td>n/a</td></tr>"),
                  "%s", buf);
    free(buf);
    /* the sweep summary section */
    sweep_plan p;
    memset(&p, 0, sizeof p);
    p.n_runs = 4;
    p.runs = runs;
    buf = NULL;
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(probe_sweep_md(f, &p, dir), 1);
    fclose(f);
    /* m=a: crop backbone 0.5, 0.7 -> 0.600 ± 0.141 (2); embedding 0.25, 0.35 -> 0.300 ± 0.071 */
    ck_assert_msg(strstr(buf, "| point | representation | n | crop | flip | all |") &&
                      strstr(buf, "| m=a | backbone | 2 | 0.600 ± 0.141 (2) | | 0.600 ± 0.141 (2) |") &&
                      strstr(buf, "| m=a | embedding | 2 | 0.300 ± 0.071 (2) |") &&
                      strstr(buf, "| m=b | backbone | 1 | 0.900 (1) |"),
                  "%s", buf);
    free(buf);
    /* a sweep without any probe.json: no section */
    p.n_runs = 0;
    buf = NULL;
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(probe_sweep_md(f, &p, dir), 0);
    fclose(f);
    ck_assert_uint_eq(len, 0);
    free(buf);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s/probe.json", dir, names[i]);
        remove(path);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rmdir(path);
    }
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("ridge");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_solve_vs_direct);
    tcase_add_test(tc, test_fixture_torch);
    tcase_add_test(tc, test_known_answer);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_json_report_sweep);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
