/* tests/dist/run_diff.c: compare two run folders of the same config trained with different
 * numbers of MPI ranks (tests/dist/mpi_train.test).
 *   run_diff DIR_A DIR_B
 * Step losses (metrics.jsonl "loss", "loss_inv", "loss_equi" of every step line) must
 * agree within 1e-5 relative (issue 13), and every float of the final checkpoint's "params"
 * (and "target" when present) within |a - b| <= 1e-4 max|a| + 1e-4 |b|: after S steps of
 * LARS/SGD from the same start, what differs is float summation order only (the
 * global-batch statistics are summed in another order across ranks), amplified by at most
 * the lr-scaled steps; 1e-4 of the largest weight is a stated float tolerance, not a
 * measured one. Exit 0 when both hold, 1 otherwise, printing the worst differences. */
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

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: run_diff DIR_A DIR_B\n");
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
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/checkpoint.last", argv[1]);
    if (ckpt_read(path, 0, &ca, err, sizeof err)) {
        fprintf(stderr, "run_diff: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/checkpoint.last", argv[2]);
    if (ckpt_read(path, 0, &cb, err, sizeof err)) {
        fprintf(stderr, "run_diff: %s\n", err);
        return 1;
    }
    static const char *const secs[] = {"params", "target"};
    for (int s = 0; s < 2; s++) {
        const ckpt_section *a = ckpt_find(&ca, secs[s]), *b = ckpt_find(&cb, secs[s]);
        if (!a && !b)
            continue;
        if (!a || !b || a->bytes != b->bytes) {
            fprintf(stderr, "run_diff: section %s differs in presence or size\n", secs[s]);
            return 1;
        }
        size_t n = a->bytes / sizeof(float);
        const float *x = a->data, *y = b->data;
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
