/* tests/nn/nn_test_util.h: helpers for the nn Check suites (fixture reader, random fill,
 * comparisons). Header-only, static functions; included by tests/nn/check_*.c only.
 * Fixture format: see tests/nn/gen_fixtures.py.
 */
#ifndef EQM_TESTS_NN_UTIL_H
#define EQM_TESTS_NN_UTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <equimod/equimod.h>

#include "core.h"

typedef struct fix_tensor {
    char name[64];
    int ndim;
    int dims[8];
    size_t n;
    float *data;
} fix_tensor;

static fix_tensor *fix_all;
static size_t fix_count;

static __attribute__((unused)) void fix_load(void)
{
    if (fix_all)
        return;
    const char *src = getenv("EQM_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/nn/fixtures/nn_ref.bin", src ? src : EQM_SRCDIR);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open fixture %s (regenerate: /usr/bin/python3 "
                             "tests/nn/gen_fixtures.py)", path);
    char magic[8];
    uint32_t cnt;
    ck_assert(fread(magic, 1, 8, f) == 8 && !memcmp(magic, "EQMFIX01", 8));
    ck_assert(fread(&cnt, 4, 1, f) == 1);
    fix_all = calloc(cnt, sizeof *fix_all);
    fix_count = cnt;
    for (uint32_t i = 0; i < cnt; i++) {
        fix_tensor *t = &fix_all[i];
        uint32_t len, nd, d;
        ck_assert(fread(&len, 4, 1, f) == 1 && len < sizeof t->name);
        ck_assert(fread(t->name, 1, len, f) == len);
        ck_assert(fread(&nd, 4, 1, f) == 1 && nd <= 8);
        t->ndim = (int)nd;
        t->n = 1;
        for (uint32_t k = 0; k < nd; k++) {
            ck_assert(fread(&d, 4, 1, f) == 1);
            t->dims[k] = (int)d;
            t->n *= d;
        }
        t->data = malloc(sizeof(float) * (t->n ? t->n : 1));
        ck_assert(fread(t->data, sizeof(float), t->n, f) == t->n);
    }
    fclose(f);
}

static __attribute__((unused)) const fix_tensor *fix_get(const char *name)
{
    fix_load();
    for (size_t i = 0; i < fix_count; i++)
        if (!strcmp(fix_all[i].name, name))
            return &fix_all[i];
    ck_abort_msg("fixture tensor %s missing (regenerate the fixtures)", name);
    return NULL;
}

static __attribute__((unused)) const float *fixf(const char *c, const char *field)
{
    char n[128];
    snprintf(n, sizeof n, "%s/%s", c, field);
    return fix_get(n)->data;
}

static __attribute__((unused)) size_t fixn(const char *c, const char *field)
{
    char n[128];
    snprintf(n, sizeof n, "%s/%s", c, field);
    return fix_get(n)->n;
}

/* Max |a - b| / (atol + rtol |b|) <= 1 for every element. */
static __attribute__((unused)) void expect_close(const char *what, const float *a, const float *b, size_t n,
                         double atol, double rtol)
{
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= worst)) {
            worst = e;
            wi = i;
        }
    }
    ck_assert_msg(worst <= 1.0, "%s: element %zu got %.7g want %.7g (error %.3g of tolerance)",
                  what, wi, (double)a[wi], (double)b[wi], worst);
}

/* Max |a - b| / (k eps32 mag + rtol |b|) <= 1 for every element: the floor is derived from
 * mag[i], the same reduction over the absolute values of its terms (sum |x| |w| for a
 * conv output), so an element that cancels to about zero is held to the rounding its
 * terms allow, not to a fraction of its own (tiny) value. k: the ulps of the magnitude
 * allowed (the summation-order difference between two float32 reductions; Winograd's
 * transforms add a few). Prints the worst ratio when EQM_TEST_VERBOSE is set. */
static __attribute__((unused)) void expect_close_mag(const char *what, const float *a,
                                                     const float *b, const float *mag,
                                                     size_t n, double k, double rtol)
{
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double tol = k * 0x1.0p-23 * fabs((double)mag[i]) + rtol * fabs((double)b[i]);
        double e = fabs((double)a[i] - b[i]) / (tol > 0 ? tol : 0x1.0p-149);
        if (!(e <= worst)) {
            worst = e;
            wi = i;
        }
    }
    if (getenv("EQM_TEST_VERBOSE"))
        fprintf(stderr, "%s: worst %.3g of tolerance (element %zu, magnitude %.3g)\n", what,
                worst, wi, (double)mag[wi]);
    ck_assert_msg(worst <= 1.0,
                  "%s: element %zu got %.7g want %.7g, magnitude %.3g (error %.3g of "
                  "tolerance %g eps32 x magnitude + %g x |want|)",
                  what, wi, (double)a[wi], (double)b[wi], (double)mag[wi], worst, k, rtol);
}

static __attribute__((unused)) float *abs_dup(const float *p, size_t n)
{
    float *q = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        q[i] = fabsf(p[i]);
    return q;
}

static uint64_t rng_state = 88172645463325252ULL;
static __attribute__((unused)) float frand(void) /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}
static __attribute__((unused)) float *rnd(size_t n, float scale)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * scale;
    return p;
}
static __attribute__((unused)) float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static __attribute__((unused)) float *dup(const float *s, size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    memcpy(p, s, sizeof(float) * n);
    return p;
}
static __attribute__((unused)) double dotd(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static __attribute__((unused)) const eqm_nn_api *NN(void) { return host_api()->nn; }

#endif
