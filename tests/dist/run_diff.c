/* tests/dist/run_diff.c: compare two run folders of the same config trained with different
 * numbers of MPI ranks (tests/dist/mpi_train.test).
 *   run_diff DIR_A DIR_B
 * Step losses (metrics.jsonl "loss", "loss_inv", "loss_equi" of every step line) must
 * agree within 1e-5 relative (issue 13), and every float of the final checkpoint's "params"
 * (and "target" when present) within |a - b| <= 1e-4 max|a| + 1e-4 |b|: after S steps of
 * LARS/SGD from the same start, what differs is float summation order only (the
 * global-batch statistics are summed in another order across ranks), amplified by at most
 * the lr-scaled steps; 1e-4 of the largest weight is a stated float tolerance, not a
 * measured one. Exit 0 when both hold, 1 otherwise, printing the worst differences.
 *   run_diff --exact DIR_A DIR_B
 * The same config with the same rank count, once uninterrupted and once killed and resumed
 * (tests/dist/mpi_fault.test): the final checkpoints' "params", "target" and "optim"
 * (momentum) sections must be equal bit for bit, since every operation is deterministic
 * for a given rank count (same slices, same reduction order) and the checkpoint holds the
 * whole training state. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/checkpoint.h"

static int read_losses(const char *dir, const char *key, double *v, int max)
{
    char path[4200], line[8192], pat[64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    snprintf(pat, sizeof pat, "\"%s\":", key);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"kind\":\"step\""))
            continue;
        const char *p = strstr(line, pat);
        v[n++] = p ? strtod(p + strlen(pat), NULL) : NAN;
    }
    fclose(f);
    return n;
}

static int read_last(const char *dir, ckpt *c)
{
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/checkpoint.last", dir);
    if (ckpt_read(path, 0, c, err, sizeof err)) {
        fprintf(stderr, "run_diff: %s\n", err);
        return -1;
    }
    return 0;
}

/* Section `name` of both checkpoints as floats: 1 (x, y, *n set), 0 when neither has it,
 * -1 (with a message) when only one has it or the sizes differ. */
static int both(const ckpt *ca, const ckpt *cb, const char *name, const float **x,
                const float **y, size_t *n)
{
    const ckpt_section *a = ckpt_find(ca, name), *b = ckpt_find(cb, name);
    if (!a && !b)
        return 0;
    if (!a || !b || a->bytes != b->bytes) {
        fprintf(stderr, "run_diff: section %s differs in presence or size\n", name);
        return -1;
    }
    *x = a->data, *y = b->data, *n = a->bytes / sizeof(float);
    return 1;
}

static int exact(const char *da, const char *db)
{
    ckpt ca, cb;
    if (read_last(da, &ca))
        return 1;
    if (read_last(db, &cb)) {
        ckpt_free(&ca);
        return 1;
    }
    int bad = 0;
    static const char *const secs[] = {"params", "target", "optim"};
    for (int s = 0; s < 3; s++) {
        const float *x, *y;
        size_t n, nd = 0;
        int has = both(&ca, &cb, secs[s], &x, &y, &n);
        bad |= has < 0;
        if (has <= 0)
            continue;
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            if (memcmp(&x[i], &y[i], sizeof(float))) {
                nd++;
                worst = fmax(worst, fabs((double)x[i] - y[i]));
            }
        printf("run_diff --exact: %s: %zu floats, %zu differ (largest |a - b| %.3g)\n", secs[s],
               n, nd, worst);
        bad |= nd > 0;
    }
    ckpt_free(&ca);
    ckpt_free(&cb);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--exact"))
        return exact(argv[2], argv[3]);
    if (argc != 3) {
        fprintf(stderr, "usage: run_diff [--exact] DIR_A DIR_B\n");
        return 2;
    }
    int bad = 0;
    static const char *const keys[] = {"loss", "loss_inv", "loss_equi"};
    for (int k = 0; k < 3; k++) {
        double a[4096], b[4096];
        int na = read_losses(argv[1], keys[k], a, 4096), nb = read_losses(argv[2], keys[k], b, 4096);
        if (na <= 0 || na != nb) {
            fprintf(stderr, "run_diff: %s: %d step lines in %s, %d in %s\n", keys[k], na,
                    argv[1], nb, argv[2]);
            return 1;
        }
        double worst = 0;
        for (int i = 0; i < na; i++) {
            if (isnan(a[i]) && isnan(b[i]))
                continue;
            double rel = fabs(a[i] - b[i]) / fmax(fabs(a[i]), 1e-30);
            worst = fmax(worst, rel);
            if (!(rel <= 1e-5)) {
                fprintf(stderr, "run_diff: step %d %s %.9g vs %.9g (relative %.3g > 1e-5)\n", i,
                        keys[k], a[i], b[i], rel);
                bad = 1;
            }
        }
        printf("run_diff: %d steps, %s: worst relative difference %.3g (limit 1e-5)\n", na,
               keys[k], worst);
    }
    ckpt ca, cb;
    if (read_last(argv[1], &ca))
        return 1;
    if (read_last(argv[2], &cb))
        return 1;
    static const char *const secs[] = {"params", "target"};
    for (int s = 0; s < 2; s++) {
        const float *x, *y;
        size_t n;
        int has = both(&ca, &cb, secs[s], &x, &y, &n);
        if (has < 0)
            return 1;
        if (has == 0)
            continue;
        double mx = 0, worst = 0, wa = 0;
        for (size_t i = 0; i < n; i++)
            mx = fmax(mx, fabs(x[i]));
        size_t nbad = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)x[i] - y[i]), tol = 1e-4 * mx + 1e-4 * fabs(y[i]);
            if (d > worst)
                worst = d, wa = x[i];
            nbad += !(d <= tol);
        }
        printf("run_diff: %s: %zu floats, max |a| %.4g, worst |a - b| %.3g (at a = %.6g), "
               "%zu outside the tolerance\n", secs[s], n, mx, worst, wa, nbad);
        bad |= nbad > 0;
    }
    ckpt_free(&ca);
    ckpt_free(&cb);
    return bad;
}
