/* host/cmd/check.c: `equimod check FILE.so | KIND/NAME`, a plugin's contract exercised.
 *
 * Loads the plugin(s) through the registry (so every load-time refusal is reported as in
 * `equimod plugins`), creates an instance with the default options (or --set KEY=VALUE),
 * and runs the checks of its kind. Each failure is one line naming the rule it breaks,
 *     FAIL [rule] what happened
 * and the exit status is 0 only when every check of every plugin held.
 *   augment:  param_name (non-NULL, [a-z0-9_]+, unique); on several sizes and channel
 *             counts: sample writes n_params finite values and nothing past them, the
 *             same rng gives the same record, out_shape is sane and does not need pixels,
 *             apply writes every pixel of out and nothing outside (guards, row padding),
 *             leaves the input alone, is deterministic, is not EQM_SKIP; apply_scaled at
 *             scale 1 equals apply and source_box lies in the image; with option p = 0
 *             the record is always the same (neutral) and apply is the identity; 4
 *             threads sharing the instance agree with one thread.
 *   dataset:  info (sizes, classes, mean/std); get on the first, last and 5 other indices
 *             (pixels inside the buffer, U8 1/3 channels, label in [0, n_classes), the
 *             same sample twice, the buffer-growth protocol from a 16-byte buffer); 4
 *             threads agree; streaming datasets: stream_members and stream_source.
 *   backbone, method, equimod: tensors (names unique, shapes, BUFFER/EMA flags);
 *             finite-difference check of the gradient of every trainable tensor and of
 *             the input (directional derivative along a random direction, central
 *             differences); output fully written and finite; guard canaries around the
 *             activation arena, parameters, gradients and outputs; din accumulates (+=);
 *             backbones: a target (EMA) forward between forward and backward leaves the
 *             gradients unchanged, and max_rows = 0 (as `equimod export` creates them) is
 *             accepted with the same tensors.
 * Exit: 0 every check held, 1 a check failed or the plugin could not be loaded, 2 usage.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"

/* ------------------------------------------------------------------ report ------ */

typedef struct ck {
    const eqm_plugin *pl;
    char label[96];
    int n_checks, n_fail, verbose;
    eqm_host *ctx;
} ck;

static void fail(ck *c, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(ck *c, const char *rule, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  FAIL [%s] ", rule);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    c->n_fail++;
    c->n_checks++;
}

static void pass(ck *c, const char *what)
{
    c->n_checks++;
    if (c->verbose)
        printf("  ok   %s\n", what);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  note ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* The message of a failed call, or the rule it broke by not setting one. */
static const char *why(ck *c, int rc, char *buf, size_t n, const char *fn)
{
    const char *m = host_ctx_error(c->ctx);
    if (m && *m) {
        snprintf(buf, n, "%s (%s)", m, eqm_status_str(rc));
        return buf;
    }
    fail(c, "error message", "%s returned %d (%s) without a message: a failing function "
                             "records one with api->set_error (ABI.md §8)",
         fn, rc, eqm_status_str(rc));
    snprintf(buf, n, "%s, no message", eqm_status_str(rc));
    return buf;
}

/* ------------------------------------------------------------------ guarded ---- */

#define GUARD 4096 /* bytes on each side */
static const unsigned char CANARY = 0xA7;

typedef struct gbuf {
    unsigned char *raw;
    size_t n;
} gbuf;

static void *gb_alloc(gbuf *g, size_t n)
{
    g->n = n;
    g->raw = aligned_alloc(64, (2 * GUARD + n + 63) / 64 * 64);
    if (!g->raw)
        return NULL;
    memset(g->raw, CANARY, 2 * GUARD + n);
    return g->raw + GUARD;
}


/* 1 if both guards are intact. */
static int gb_intact(const gbuf *g)
{
    if (!g->raw)
        return 1;
    for (size_t i = 0; i < GUARD; i++)
        if (g->raw[i] != CANARY || g->raw[GUARD + g->n + i] != CANARY)
            return 0;
    return 1;
}

static void gb_free(gbuf *g)
{
    free(g->raw);
    g->raw = NULL;
}

static int rows_equal(const unsigned char *a, const unsigned char *b, int h, size_t row,
                      size_t stride)
{
    for (int y = 0; y < h; y++)
        if (memcmp(a + (size_t)y * stride, b + (size_t)y * stride, row))
            return 0;
    return 1;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* ------------------------------------------------------------------ augment ---- */

typedef struct aug_case {
    int w, h, c;
} aug_case;
static const aug_case aug_cases[] = {{32, 32, 3}, {17, 23, 3}, {48, 30, 1}, {7, 5, 3}};
#define N_AUG_CASES (sizeof aug_cases / sizeof aug_cases[0])
#define N_DRAWS 6

static void fill_image(eqm_image *im, unsigned char *buf, int w, int h, int c, int stride,
                       uint64_t seed)
{
    im->w = w, im->h = h, im->c = c, im->stride = stride, im->format = EQM_PIX_U8;
    im->data = buf;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < stride; x++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            /* smooth-ish content plus noise, row padding set to a canary */
            buf[(size_t)y * stride + x] =
                x < w * c ? (unsigned char)((x * 7 + y * 5 + (int)(s >> 59)) & 255) : CANARY;
        }
}

static size_t pix_size(uint32_t f) { return f == EQM_PIX_F32 ? sizeof(float) : 1; }

typedef struct aug_run {
    const eqm_augment_ops *ops;
    void *self;
    int np;
    uint64_t hash[N_AUG_CASES][N_DRAWS]; /* of t and the output; 0 = refused input */
    int failed;                         /* thread runs: any call failed */
} aug_run;

/* One sample+apply of case k, draw d, without checks: returns the hash (0 if a call
 * failed). Used by the threads, compared with the checked serial run. */
static uint64_t aug_once(const aug_run *r, int k, int d)
{
    const aug_case *ac = &aug_cases[k];
    int stride = ac->w * ac->c + 3;
    unsigned char *in = malloc((size_t)stride * ac->h);
    float *p = calloc((size_t)r->np + 1, sizeof(float));
    uint64_t h = 0;
    if (!in || !p)
        goto out;
    eqm_image im;
    fill_image(&im, in, ac->w, ac->h, ac->c, stride, (uint64_t)k);
    eqm_rng rng;
    host_api()->rng_seed(&rng, 1234, (uint64_t)k, (uint64_t)d, 0);
    eqm_augment_ctx ctx = {sizeof ctx, ac->w, ac->h};
    if (r->ops->sample(r->self, &rng, &ctx, &im, p) != EQM_OK)
        goto out;
    int w, hh, c;
    uint32_t f;
    if (r->ops->out_shape(r->self, &im, &w, &hh, &c, &f) != EQM_OK)
        goto out;
    size_t sb = r->ops->scratch_bytes ? r->ops->scratch_bytes(r->self, &im) : 0;
    void *scratch = malloc(sb ? sb : 1);
    size_t row = (size_t)w * c * pix_size(f);
    unsigned char *ob = calloc((size_t)hh, row ? row : 1);
    if (scratch && ob) {
        eqm_image out = {w, hh, c, w * c, f, ob};
        if (r->ops->apply(r->self, p, &im, &out, scratch) == EQM_OK) {
            h = fnv(0xcbf29ce484222325ull, p, (size_t)r->np * sizeof(float));
            h = fnv(h, ob, (size_t)hh * row) | 1;
        }
    }
    free(scratch);
    free(ob);
out:
    free(in);
    free(p);
    return h;
}

static void *aug_thread(void *arg)
{
    aug_run *r = arg;
    for (size_t k = 0; k < N_AUG_CASES; k++)
        for (int d = 0; d < N_DRAWS; d++)
            if (r->hash[k][d] && aug_once(r, (int)k, d) != r->hash[k][d])
                r->failed = 1;
    return NULL;
}

/* Checked sample + apply of one case; returns the hash, 0 if the input was refused. */
static uint64_t aug_case_run(ck *c, const eqm_augment_ops *ops, void *self, int np, int k,
                             int d, int *refused)
{
    const eqm_host_api *api = host_api();
    const aug_case *ac = &aug_cases[k];
    char buf[1200], what[64];
    snprintf(what, sizeof what, "%dx%dx%d input, draw %d", ac->w, ac->h, ac->c, d);
    int stride = ac->w * ac->c + 3;
    gbuf gin = {0}, gp = {0}, gout = {0}, gs = {0};
    unsigned char *in = gb_alloc(&gin, (size_t)stride * ac->h);
    float *p = gb_alloc(&gp, (size_t)(np + 4) * sizeof(float));
    unsigned char *keep = malloc((size_t)stride * ac->h);
    uint64_t h = 0;
    if (!in || !p || !keep) {
        fail(c, "host", "out of memory");
        goto out;
    }
    eqm_image im;
    fill_image(&im, in, ac->w, ac->h, ac->c, stride, (uint64_t)k);
    memcpy(keep, in, (size_t)stride * ac->h);
    for (int i = 0; i < np + 4; i++)
        p[i] = NAN;
    eqm_rng rng, rng2;
    api->rng_seed(&rng, 1234, (uint64_t)k, (uint64_t)d, 0);
    rng2 = rng;
    eqm_augment_ctx ctx = {sizeof ctx, ac->w, ac->h};
    int rc = ops->sample(self, &rng, &ctx, &im, p);
    if (rc < 0) {
        const char *m = host_ctx_error(c->ctx);
        if (m && *m && d == 0) { /* a refused input with a reason: fine, skip this size */
            note("%s refused by sample: %s", what, m);
            *refused = 1;
        } else {
            fail(c, "sample", "%s: %s", what, why(c, rc, buf, sizeof buf, "sample"));
        }
        goto out;
    }
    if (rc > 0) {
        fail(c, "sample status", "%s: sample returned %d (%s); sample returns EQM_OK or a "
                                 "failure (a skipped augmentation writes its neutral record)",
             what, rc, eqm_status_str(rc));
        goto out;
    }
    int bad = 0;
    for (int i = 0; i < np && !bad; i++)
        if (!isfinite(p[i])) {
            fail(c, "t finite", "%s: sample left t[%d] (%s) = %g: sample writes all n_params "
                                "values, each finite (method-reference.md §4)",
                 what, i, ops->param_name ? ops->param_name(self, i) : "?", (double)p[i]);
            bad = 1;
        }
    for (int i = np; i < np + 4 && !bad; i++)
        if (!isnan(p[i])) {
            fail(c, "t length", "%s: sample wrote p[%d], past its n_params = %d", what, i, np);
            bad = 1;
        }
    if (!gb_intact(&gp) || !gb_intact(&gin)) {
        fail(c, "t length", "%s: sample wrote outside p[0..%d) or into the image", what, np);
        bad = 1;
    }
    if (bad)
        goto out;
    pass(c, "sample");
    {
        float *p2 = calloc((size_t)np + 1, sizeof(float));
        if (p2 && ops->sample(self, &rng2, &ctx, &im, p2) == EQM_OK &&
            memcmp(p, p2, (size_t)np * sizeof(float)))
            fail(c, "sample randomness", "%s: two draws from the same rng state gave different "
                                         "records: sample draws only from the rng it is given",
                 what);
        free(p2);
    }
    int w = 0, hh = 0, ch = 0, w2 = -1, h2 = -1, c2 = -1;
    uint32_t f = 99, f2 = 98;
    rc = ops->out_shape(self, &im, &w, &hh, &ch, &f);
    if (rc != EQM_OK) {
        fail(c, "out_shape", "%s: %s", what, why(c, rc, buf, sizeof buf, "out_shape"));
        goto out;
    }
    if (w <= 0 || hh <= 0 || (ch != 1 && ch != 3) || (f != EQM_PIX_U8 && f != EQM_PIX_F32)) {
        fail(c, "out_shape", "%s: out_shape gave %dx%dx%d format %u: w, h > 0, c 1 or 3, "
                             "format EQM_PIX_U8 or EQM_PIX_F32", what, w, hh, ch, f);
        goto out;
    }
    eqm_image shape_only = im;
    shape_only.data = NULL;
    rc = ops->out_shape(self, &shape_only, &w2, &h2, &c2, &f2);
    if (rc != EQM_OK || w2 != w || h2 != hh || c2 != ch || f2 != f)
        fail(c, "out_shape", "%s: out_shape of the same shape with data = NULL gave %s "
                             "%dx%dx%d: out_shape depends on the shape only (kinds.h)",
             what, rc ? "an error" : "", w2, h2, c2);
    size_t ps = pix_size(f), ostride = (size_t)w * ch + 5, obytes = ostride * hh * ps;
    unsigned char *o1 = gb_alloc(&gout, obytes);
    size_t sb = ops->scratch_bytes ? ops->scratch_bytes(self, &im) : 0;
    void *scratch = gb_alloc(&gs, sb);
    unsigned char *o2 = malloc(obytes);
    if (!o1 || !o2 || (!scratch && sb)) {
        free(o2);
        fail(c, "host", "out of memory");
        goto out;
    }
    eqm_image out = {w, hh, ch, (int)ostride, f, o1};
    memset(o1, 0x00, obytes);
    rc = ops->apply(self, p, &im, &out, scratch);
    if (rc == EQM_SKIP) {
        fail(c, "apply status", "%s: apply returned EQM_SKIP, which apply may not return "
                                "(only a dataset's get/decode skips a sample); a skipped "
                                "augmentation is decided in sample", what);
        free(o2);
        goto out;
    }
    if (rc != EQM_OK && d == 0 && host_ctx_error(c->ctx)[0]) {
        note("%s refused by apply: %s", what, host_ctx_error(c->ctx));
        *refused = 1;
        free(o2);
        goto out;
    }
    if (rc != EQM_OK) {
        fail(c, "apply", "%s: apply failed on an input its sample accepted: %s", what,
             why(c, rc, buf, sizeof buf, "apply"));
        free(o2);
        goto out;
    }
    memcpy(o2, o1, obytes);
    memset(o1, 0xFF, obytes);
    rc = ops->apply(self, p, &im, &out, scratch);
    int row_pad_ok = 1;
    for (int y = 0; y < hh && row_pad_ok; y++)
        for (size_t b = (size_t)w * ch * ps; b < ostride * ps; b++)
            if (o1[(size_t)y * ostride * ps + b] != 0xFF || o2[(size_t)y * ostride * ps + b])
                row_pad_ok = 0;
    if (!gb_intact(&gout) || !row_pad_ok)
        fail(c, "out_shape honoured", "%s: apply wrote outside the %dx%dx%d output "
                                      "(out->stride %zu elements, rows padded)",
             what, w, hh, ch, ostride);
    else if (rc != EQM_OK || !rows_equal(o1, o2, hh, (size_t)w * ch * ps, ostride * ps))
        fail(c, "apply deterministic", "%s: apply of the same record twice (on outputs "
                                       "prefilled with 0x00 and 0xFF) differs: apply writes "
                                       "every output pixel and depends only on p and the input",
             what);
    else if (memcmp(in, keep, (size_t)stride * ac->h) || !gb_intact(&gin))
        fail(c, "input const", "%s: apply modified its input image", what);
    else if (sb && !gb_intact(&gs))
        fail(c, "scratch", "%s: apply wrote past scratch_bytes = %zu", what, sb);
    else
        pass(c, "apply");
    if (f == EQM_PIX_F32)
        for (int y = 0; y < hh; y++)
            for (int x = 0; x < w * ch; x++)
                if (!isfinite(((float *)o1)[(size_t)y * ostride + x])) {
                    fail(c, "output finite", "%s: apply wrote a non-finite float at row %d",
                         what, y);
                    y = hh;
                    break;
                }
    if (ops->apply_scaled && ops->source_box) {
        float box[4] = {NAN, NAN, NAN, NAN};
        rc = ops->source_box(self, p, ac->w, ac->h, box);
        if (rc != EQM_OK || !(box[0] >= 0 && box[1] >= 0 && box[2] > 0 && box[3] > 0 &&
                              box[0] + box[2] <= ac->w + 1e-3f && box[1] + box[3] <= ac->h + 1e-3f))
            fail(c, "source_box", "%s: source_box gave (%g, %g, %g, %g)%s: a box inside the "
                                  "%dx%d input", what, box[0], box[1], box[2], box[3],
                 rc ? " and failed" : "", ac->w, ac->h);
        memset(o1, 0x55, obytes);
        rc = ops->apply_scaled(self, p, &im, 1.0f, 1.0f, &out, scratch);
        int same = 1;
        for (int y = 0; y < hh && same; y++)
            if (memcmp(o1 + (size_t)y * ostride * ps, o2 + (size_t)y * ostride * ps,
                       (size_t)w * ch * ps))
                same = 0;
        if (rc != EQM_OK || !same)
            fail(c, "apply_scaled", "%s: apply_scaled at scale 1 %s apply (kinds.h: with sx = "
                                    "sy = 1 it MUST equal apply's)", what,
                 rc ? "failed where" : "differs from");
    }
    h = fnv(0xcbf29ce484222325ull, p, (size_t)np * sizeof(float));
    {
        size_t row = (size_t)w * ch * ps;
        for (int y = 0; y < hh; y++)
            h = fnv(h, o2 + (size_t)y * ostride * ps, row);
        h |= 1;
    }
    free(o2);
out:
    gb_free(&gin);
    gb_free(&gp);
    gb_free(&gout);
    gb_free(&gs);
    free(keep);
    return h;
}

static int create_augment(ck *c, const eqm_plugin *pl, const void *opts, void **self)
{
    char buf[1200];
    *self = NULL;
    int rc = pl->ops.augment.create(host_api(), c->ctx, opts, self);
    if (rc != EQM_OK) {
        fail(c, "create", "create with these options failed: %s",
             why(c, rc, buf, sizeof buf, "create"));
        return -1;
    }
    if (!*self) {
        fail(c, "create", "create returned EQM_OK with a NULL instance (*self)");
        return -1;
    }
    return 0;
}

static void check_augment(ck *c, const eqm_plugin *pl, void *opts)
{
    const eqm_augment_ops *ops = &pl->ops.augment;
    void *self;
    if (create_augment(c, pl, opts, &self))
        return;
    pass(c, "create");
    int np = ops->n_params(self);
    if (np < 0 || np > 4096) {
        fail(c, "n_params", "n_params = %d: 0..4096", np);
        ops->destroy(self);
        return;
    }
    if (np > 0 && !ops->param_name) {
        fail(c, "param_name", "n_params = %d but param_name is NULL (REQUIRED when "
                              "n_params > 0)", np);
    } else {
        int ok = 1;
        for (int i = 0; i < np; i++) {
            const char *n = ops->param_name(self, i);
            if (!n || !param_key_valid(n)) {
                fail(c, "param_name", "param_name(%d) is %s%s%s: a name [a-z0-9_]+", i,
                     n ? "'" : "NULL", n ? n : "", n ? "'" : "");
                ok = 0;
                continue;
            }
            for (int j = 0; j < i; j++) {
                const char *m = ops->param_name(self, j);
                if (m && !strcmp(m, n)) {
                    fail(c, "t field names", "t fields %d and %d are both named '%s': names "
                                             "are unique within an augmentation", j, i, n);
                    ok = 0;
                }
            }
        }
        if (ok)
            pass(c, "param_name");
    }
    aug_run run = {ops, self, np, {{0}}, 0};
    int n_ok = 0;
    for (size_t k = 0; k < N_AUG_CASES; k++) {
        int refused = 0;
        for (int d = 0; d < N_DRAWS && !refused; d++) {
            run.hash[k][d] = aug_case_run(c, ops, self, np, (int)k, d, &refused);
            n_ok += run.hash[k][d] != 0;
        }
    }
    if (!n_ok)
        fail(c, "inputs", "no test input was accepted (8-bit images of 32x32x3, 17x23x3, "
                          "48x30x1 and 7x5x3)");
    /* several threads on one instance agree with the serial results */
    pthread_t th[4];
    aug_run runs[4];
    int started = 0;
    for (int i = 0; i < 4; i++) {
        runs[i] = run;
        if (!pthread_create(&th[i], NULL, aug_thread, &runs[i]))
            started++;
        else
            break;
    }
    int disagree = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        disagree |= runs[i].failed;
    }
    if (disagree)
        fail(c, "threads", "4 threads calling sample and apply on the same instance got "
                           "other records or pixels than one thread: they run concurrently "
                           "on a const self (ABI.md §7)");
    else if (n_ok)
        pass(c, "threads");
    ops->destroy(self);

    /* p = 0: every draw skipped, the neutral record, and apply is the identity */
    const eqm_param_spec *pp = NULL;
    for (size_t i = 0; i < param_table_len(pl->desc.params); i++)
        if (!strcmp(pl->desc.params[i].key, "p") && pl->desc.params[i].type == EQM_PARAM_FLOAT)
            pp = &pl->desc.params[i];
    if (!pp || !n_ok)
        return;
    double *pv = (double *)((char *)opts + pp->offset), keep_p = *pv;
    *pv = 0.0;
    if (create_augment(c, pl, opts, &self)) {
        *pv = keep_p;
        return;
    }
    const aug_case *ac = &aug_cases[0];
    int stride = ac->w * ac->c;
    unsigned char *in = malloc((size_t)stride * ac->h), *ob = NULL;
    float *p0 = calloc((size_t)np + 1, sizeof(float)), *p = calloc((size_t)np + 1, sizeof(float));
    eqm_image im;
    int w, hh, ch;
    uint32_t f;
    if (in && p0 && p) {
        fill_image(&im, in, ac->w, ac->h, ac->c, stride, 7);
        eqm_augment_ctx ctx = {sizeof ctx, ac->w, ac->h};
        int same = 1, ok = 1;
        for (int d = 0; d < 8 && ok; d++) {
            eqm_rng rng;
            host_api()->rng_seed(&rng, 99, (uint64_t)d, 0, 0);
            ok = ops->sample(self, &rng, &ctx, &im, d ? p : p0) == EQM_OK;
            if (d && memcmp(p, p0, (size_t)np * sizeof(float)))
                same = 0;
        }
        if (ok && !same)
            fail(c, "neutral record", "with p = 0 (always skipped) the records differ between "
                                      "draws: a skipped augmentation writes the same neutral "
                                      "values (method-reference.md §4)");
        else if (ok && ops->out_shape(self, &im, &w, &hh, &ch, &f) == EQM_OK && w == ac->w &&
                 hh == ac->h && ch == ac->c && f == EQM_PIX_U8) {
            size_t sb = ops->scratch_bytes ? ops->scratch_bytes(self, &im) : 0;
            void *scratch = malloc(sb ? sb : 1);
            ob = malloc((size_t)stride * ac->h);
            eqm_image out = {w, hh, ch, stride, f, ob};
            if (scratch && ob && ops->apply(self, p0, &im, &out, scratch) == EQM_OK) {
                if (memcmp(ob, in, (size_t)stride * ac->h))
                    fail(c, "neutral record", "with p = 0 (always skipped) apply changed the "
                                              "image: the neutral record is the identity");
                else
                    pass(c, "neutral record");
            }
            free(scratch);
        } else if (ok) {
            pass(c, "neutral record");
        }
    }
    free(in);
    free(ob);
    free(p0);
    free(p);
    ops->destroy(self);
    *pv = keep_p;
}

/* ------------------------------------------------------------------ dataset ---- */

typedef struct ds_run {
    const eqm_dataset_ops *ops;
    void *self;
    int64_t idx[8];
    uint64_t hash[8];
    int n;
    size_t cap;
    int failed;
} ds_run;

static uint64_t ds_once(const eqm_dataset_ops *ops, void *self, int64_t i, size_t cap)
{
    size_t c2 = cap;
    for (int tries = 0; tries < 3; tries++) {
        unsigned char *b = malloc(c2 ? c2 : 1);
        if (!b)
            return 0;
        eqm_image im = {0, 0, 0, 0, EQM_PIX_U8, b};
        int32_t label = -1;
        int rc = ops->get(self, i, &im, c2, &label);
        if (rc == EQM_ERR_NOMEM && im.w > 0 && im.h > 0 && im.c > 0) {
            c2 = (size_t)im.w * im.h * im.c;
            free(b);
            continue;
        }
        uint64_t h = 0;
        if (rc == EQM_OK) {
            h = fnv(0xcbf29ce484222325ull, &label, sizeof label);
            for (int y = 0; y < im.h; y++)
                h = fnv(h, b + (size_t)y * im.stride, (size_t)im.w * im.c);
            h |= 1;
        }
        free(b);
        return h;
    }
    return 0;
}

static void *ds_thread(void *arg)
{
    ds_run *r = arg;
    for (int k = 0; k < r->n; k++)
        if (r->hash[k] && ds_once(r->ops, r->self, r->idx[k], r->cap) != r->hash[k])
            r->failed = 1;
    return NULL;
}

static void check_get(ck *c, const eqm_dataset_ops *ops, void *self,
                      const eqm_dataset_info *info, int64_t index, size_t cap, uint64_t *hash)
{
    char buf[1200], what[64];
    snprintf(what, sizeof what, "get(%lld)", (long long)index);
    gbuf g = {0};
    unsigned char *b = gb_alloc(&g, cap);
    *hash = 0;
    if (!b) {
        fail(c, "host", "out of memory");
        return;
    }
    eqm_image im = {0, 0, 0, 0, EQM_PIX_U8, b};
    int32_t label = -1;
    int rc = ops->get(self, index, &im, cap, &label);
    if (rc == EQM_ERR_NOMEM && im.w > 0 && im.h > 0 && im.c > 0 &&
        (size_t)im.w * im.h * im.c > cap) {
        gb_free(&g);
        note("%s asked for a %dx%dx%d buffer (default capacity %zu bytes)", what, im.w, im.h,
             im.c, cap);
        check_get(c, ops, self, info, index, (size_t)im.w * im.h * im.c, hash);
        return;
    }
    if (rc == EQM_SKIP) {
        note("%s skipped the sample: %s", what, host_ctx_error(c->ctx));
        gb_free(&g);
        return;
    }
    if (rc != EQM_OK) {
        fail(c, "get", "%s: %s", what, why(c, rc, buf, sizeof buf, "get"));
        gb_free(&g);
        return;
    }
    if (im.data != b)
        fail(c, "get buffer", "%s replaced img->data: get writes into the caller's buffer", what);
    else if (im.format != EQM_PIX_U8 || im.w <= 0 || im.h <= 0 || (im.c != 1 && im.c != 3) ||
             im.stride < im.w * im.c)
        fail(c, "get image", "%s gave %dx%dx%d stride %d format %u: U8, w, h > 0, c 1 or 3, "
                             "stride >= w*c", what, im.w, im.h, im.c, im.stride, im.format);
    else if ((size_t)im.stride * (im.h - 1) + (size_t)im.w * im.c > cap || !gb_intact(&g))
        fail(c, "get buffer", "%s wrote past img_capacity_bytes = %zu (image %dx%dx%d, stride "
                              "%d)", what, cap, im.w, im.h, im.c, im.stride);
    else if (label < 0 || label >= info->n_classes)
        fail(c, "labels", "%s: label %d outside [0, n_classes = %d)", what, (int)label,
             info->n_classes);
    else if (info->w > 0 && info->h > 0 && (im.w != info->w || im.h != info->h))
        fail(c, "get image", "%s is %dx%d; info says every image is %dx%d (0 if they vary)",
             what, im.w, im.h, info->w, info->h);
    else {
        pass(c, what);
        *hash = ds_once(ops, self, index, cap);
        uint64_t h = fnv(0xcbf29ce484222325ull, &label, sizeof label);
        for (int y = 0; y < im.h; y++)
            h = fnv(h, b + (size_t)y * im.stride, (size_t)im.w * im.c);
        if ((h | 1) != *hash)
            fail(c, "get deterministic", "%s twice gave other pixels or label", what);
    }
    gb_free(&g);
    if (*hash) { /* the growth protocol from a 16-byte buffer */
        gbuf s = {0};
        unsigned char *sm = gb_alloc(&s, 16);
        eqm_image im2 = {0, 0, 0, 0, EQM_PIX_U8, sm};
        int rc2 = ops->get(self, index, &im2, 16, &label);
        if (!gb_intact(&s))
            fail(c, "buffer growth", "%s with a 16-byte buffer wrote past it", what);
        else if (rc2 == EQM_OK && (size_t)im2.w * im2.h * im2.c <= 16)
            pass(c, "buffer growth");
        else if (rc2 != EQM_ERR_NOMEM || (size_t)im2.w * im2.h * im2.c < (size_t)im.w * im.h * im.c)
            fail(c, "buffer growth", "%s with a 16-byte buffer returned %d (%s) with img "
                                     "%dx%dx%d: when the image does not fit, set img->w/h/c "
                                     "to the size needed and return EQM_ERR_NOMEM (kinds.h)",
                 what, rc2, eqm_status_str(rc2), im2.w, im2.h, im2.c);
        else
            pass(c, "buffer growth");
        gb_free(&s);
    }
}

static void check_dataset_split(ck *c, const eqm_plugin *pl, void *opts, const char *split)
{
    const eqm_dataset_ops *ops = &pl->ops.dataset;
    char buf[1200];
    void *self = NULL;
    int rc = ops->open(host_api(), c->ctx, opts, split, &self);
    if (rc != EQM_OK) {
        fail(c, "open", "open(\"%s\") with these options failed: %s%s", split,
             why(c, rc, buf, sizeof buf, "open"),
             "\n       (set options with --set KEY=VALUE, e.g. a data folder)");
        return;
    }
    if (!self) {
        fail(c, "open", "open(\"%s\") returned EQM_OK with a NULL instance", split);
        return;
    }
    printf("  split %s\n", split);
    eqm_dataset_info info;
    memset(&info, 0x5A, sizeof info);
    info.size = sizeof info;
    info.class_names = NULL;
    info.desc = NULL;
    rc = ops->info(self, &info);
    if (rc != EQM_OK) {
        fail(c, "info", "info failed: %s", why(c, rc, buf, sizeof buf, "info"));
        ops->close(self);
        return;
    }
    int ok = 1;
    if (info.n_classes < 1 || info.n_classes > 100000000)
        fail(c, "info", "n_classes = %d: at least 1", info.n_classes), ok = 0;
    if (info.w < 0 || info.h < 0 || (info.c != 0 && info.c != 1 && info.c != 3) ||
        info.w > 1000000 || info.h > 1000000)
        fail(c, "info", "w, h, c = %d, %d, %d: the fixed size, or 0 when it varies (c 1 or 3)",
             info.w, info.h, info.c), ok = 0;
    for (int k = 0; k < 3; k++)
        if (!isfinite(info.mean[k]) || !isfinite(info.std[k]) || !(info.std[k] > 0))
            fail(c, "info", "mean[%d] = %g, std[%d] = %g: finite, std > 0", k,
                 (double)info.mean[k], k, (double)info.std[k]), ok = 0, k = 3;
    if (info.class_names && ok)
        for (int k = 0; k < info.n_classes && k < 100000; k++)
            if (!info.class_names[k]) {
                fail(c, "info", "class_names[%d] is NULL (n_classes = %d)", k, info.n_classes);
                ok = 0;
                break;
            }
    int streaming = info.n_samples < 0;
    if (streaming) {
        if (!ops->stream_members || !ops->stream_source || !ops->decode)
            fail(c, "streaming", "n_samples = -1 but stream_members, stream_source and decode "
                                 "are not all set (kinds.h: all three)"), ok = 0;
        else {
            eqm_stream_source src;
            memset(&src, 0, sizeof src);
            src.size = sizeof src;
            rc = ops->stream_source(self, &src);
            if (rc != EQM_OK)
                fail(c, "streaming", "stream_source failed: %s",
                     why(c, rc, buf, sizeof buf, "stream_source"));
            else if (!src.shards || !*src.shards)
                fail(c, "streaming", "stream_source gave no shards");
            else
                pass(c, "stream_source");
            note("streaming dataset: decode is exercised by training on shards (equimod shards "
                 "writes them), not here");
        }
    } else if (!ops->get) {
        fail(c, "get", "n_samples = %lld but get is NULL: a random-access dataset sets get",
             (long long)info.n_samples), ok = 0;
    } else if (info.n_samples == 0) {
        fail(c, "info", "n_samples = 0: an empty split");
        ok = 0;
    }
    if (ok)
        pass(c, "info");
    if (ok && !streaming) {
        size_t cap = (size_t)(info.w ? info.w : 256) * (info.h ? info.h : 256) * 3;
        ds_run run = {ops, self, {0}, {0}, 0, cap, 0};
        int64_t n = info.n_samples;
        run.idx[run.n++] = 0;
        if (n > 1)
            run.idx[run.n++] = n - 1;
        uint64_t s = 0x1234567;
        for (int k = 0; k < 5 && n > 2; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            run.idx[run.n++] = (int64_t)((s >> 11) % (uint64_t)n);
        }
        for (int k = 0; k < run.n; k++)
            check_get(c, ops, self, &info, run.idx[k], cap, &run.hash[k]);
        pthread_t th[4];
        ds_run runs[4];
        int started = 0, disagree = 0;
        for (int i = 0; i < 4; i++) {
            runs[i] = run;
            if (pthread_create(&th[i], NULL, ds_thread, &runs[i]))
                break;
            started++;
        }
        for (int i = 0; i < started; i++) {
            pthread_join(th[i], NULL);
            disagree |= runs[i].failed;
        }
        if (disagree)
            fail(c, "threads", "4 threads calling get on the same instance got other pixels "
                               "or labels than one thread (get MAY run concurrently)");
        else
            pass(c, "threads");
    }
    ops->close(self);
}

static void check_dataset(ck *c, const eqm_plugin *pl, void *opts)
{
    check_dataset_split(c, pl, opts, "train");
    check_dataset_split(c, pl, opts, "test");
}

/* ------------------------------------------------------------------ modules ---- */

typedef struct mod {
    const eqm_module_ops *ops;
    void *self;
    int n;
    eqm_tensor_info *info;
    size_t *len;
    gbuf *gp, *gg, *gt; /* params, grads, targets (per tensor) */
    float **p, **g, **t;
    gbuf gact;
    size_t act_n;
} mod;

static void mod_free(mod *m)
{
    if (m->self)
        m->ops->destroy(m->self);
    for (int i = 0; i < m->n; i++) {
        if (m->gp)
            gb_free(&m->gp[i]);
        if (m->gg)
            gb_free(&m->gg[i]);
        if (m->gt)
            gb_free(&m->gt[i]);
    }
    gb_free(&m->gact);
    free(m->info);
    free(m->len);
    free(m->gp);
    free(m->gg);
    free(m->gt);
    free(m->p);
    free(m->g);
    free(m->t);
    memset(m, 0, sizeof *m);
}

static int mod_guards(ck *c, mod *m, const char *after)
{
    for (int i = 0; i < m->n; i++)
        if (!gb_intact(&m->gp[i]) || (m->g[i] && !gb_intact(&m->gg[i])) ||
            (m->t && m->t[i] && !gb_intact(&m->gt[i]))) {
            fail(c, "canaries", "%s wrote outside tensor %d '%s' (its values, gradient or "
                                "target copy)", after, i, m->info[i].name);
            return -1;
        }
    if (!gb_intact(&m->gact)) {
        fail(c, "canaries", "%s wrote outside the activation arena (act_floats(max_rows) = %zu "
                            "floats)", after, m->act_n);
        return -1;
    }
    return 0;
}

/* Create, describe, allocate and bind (with a target copy when `target`). */
static int mod_open(ck *c, const eqm_plugin *pl, const void *opts, const eqm_module_cfg *cfg,
                    int target, mod *m)
{
    char buf[1200];
    memset(m, 0, sizeof *m);
    m->ops = &pl->ops.module;
    int rc = m->ops->create(host_api(), c->ctx, opts, cfg, &m->self);
    if (rc != EQM_OK) {
        m->self = NULL;
        fail(c, "create", "create (max_rows %d) failed: %s", cfg->max_rows,
             why(c, rc, buf, sizeof buf, "create"));
        return -1;
    }
    if (!m->self) {
        fail(c, "create", "create returned EQM_OK with a NULL instance (*self)");
        return -1;
    }
    m->n = m->ops->n_tensors(m->self);
    if (m->n < 0 || m->n > 100000) {
        fail(c, "tensors", "n_tensors = %d", m->n);
        m->n = 0;
        return -1;
    }
    size_t nn = (size_t)(m->n ? m->n : 1);
    m->info = calloc(nn, sizeof *m->info);
    m->len = calloc(nn, sizeof *m->len);
    m->gp = calloc(nn, sizeof *m->gp);
    m->gg = calloc(nn, sizeof *m->gg);
    m->gt = calloc(nn, sizeof *m->gt);
    m->p = calloc(nn, sizeof *m->p);
    m->g = calloc(nn, sizeof *m->g);
    m->t = target ? calloc(nn, sizeof *m->t) : NULL;
    if (!m->info || !m->len || !m->gp || !m->gg || !m->gt || !m->p || !m->g || (target && !m->t)) {
        fail(c, "host", "out of memory");
        return -1;
    }
    for (int i = 0; i < m->n; i++) {
        eqm_tensor_info *ti = &m->info[i];
        rc = m->ops->tensor_info(m->self, i, ti);
        if (rc != EQM_OK) {
            fail(c, "tensors", "tensor_info(%d) failed: %s", i,
                 why(c, rc, buf, sizeof buf, "tensor_info"));
            return -1;
        }
        if (!ti->name || !*ti->name || ti->ndim < 1 || ti->ndim > 4 || (ti->flags & ~7u)) {
            fail(c, "tensors", "tensor %d: name %s, ndim %d, flags 0x%x: a name, ndim 1..4, "
                               "flags of eqm_tensor_flags", i, ti->name ? ti->name : "NULL",
                 ti->ndim, ti->flags);
            return -1;
        }
        size_t len = 1;
        for (int d = 0; d < ti->ndim; d++) {
            if (ti->shape[d] <= 0) {
                fail(c, "tensors", "tensor %d '%s': shape[%d] = %d", i, ti->name, d,
                     ti->shape[d]);
                return -1;
            }
            len *= (size_t)ti->shape[d];
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(m->info[j].name, ti->name)) {
                fail(c, "tensors", "tensors %d and %d are both named '%s'", j, i, ti->name);
                return -1;
            }
        m->len[i] = len;
        m->p[i] = gb_alloc(&m->gp[i], len * sizeof(float));
        if (!(ti->flags & EQM_T_BUFFER))
            m->g[i] = gb_alloc(&m->gg[i], len * sizeof(float));
        if (target && (ti->flags & EQM_T_EMA))
            m->t[i] = gb_alloc(&m->gt[i], len * sizeof(float));
        if (!m->p[i] || (!(ti->flags & EQM_T_BUFFER) && !m->g[i])) {
            fail(c, "host", "out of memory for tensor '%s' (%zu floats)", ti->name, len);
            return -1;
        }
        memset(m->p[i], 0, len * sizeof(float));
        if (m->g[i])
            memset(m->g[i], 0, len * sizeof(float));
        if (m->t && m->t[i])
            memset(m->t[i], 0, len * sizeof(float));
    }
    m->act_n = m->ops->act_floats(m->self, cfg->max_rows);
    if (m->act_n > ((size_t)1 << 33)) {
        fail(c, "act_floats", "act_floats(%d) = %zu floats", cfg->max_rows, m->act_n);
        return -1;
    }
    float *act = gb_alloc(&m->gact, (m->act_n ? m->act_n : 1) * sizeof(float));
    if (!act) {
        fail(c, "host", "out of memory for %zu activation floats", m->act_n);
        return -1;
    }
    for (size_t i = 0; i < (m->act_n ? m->act_n : 1); i++)
        act[i] = NAN; /* the arena starts as garbage: a plugin may not rely on zeros */
    eqm_module_bind b = {sizeof b, m->p, m->g, m->t, act};
    rc = m->ops->bind(m->self, &b);
    if (rc != EQM_OK) {
        fail(c, "bind", "bind failed: %s", why(c, rc, buf, sizeof buf, "bind"));
        return -1;
    }
    eqm_rng rng;
    host_api()->rng_seed(&rng, 7, 0, 0, 0);
    rc = m->ops->init(m->self, &rng);
    if (rc != EQM_OK) {
        fail(c, "init", "init failed: %s", why(c, rc, buf, sizeof buf, "init"));
        return -1;
    }
    for (int i = 0; i < m->n; i++)
        for (size_t k = 0; k < m->len[i]; k++)
            if (!isfinite(m->p[i][k])) {
                fail(c, "init", "init left %s[%zu] = %g", m->info[i].name, k, (double)m->p[i][k]);
                return -1;
            }
    if (m->t) /* a target a little away from the online weights */
        for (int i = 0; i < m->n; i++)
            if (m->t[i])
                for (size_t k = 0; k < m->len[i]; k++)
                    m->t[i][k] = m->p[i][k] * 0.9f + 0.01f;
    return mod_guards(c, m, "bind/init");
}

typedef struct mod_io {
    int kind, rows, D_out;
    float *in, *in_target, *t, *out, *dout, *din;
    gbuf gin, gout, gdin;
    size_t n_in, n_out;
} mod_io;

/* The scalar whose gradient is checked: loss (method, equimod) or sum(out .* dout)
 * (backbone), in double; *scale gets the sum of magnitudes (noise floor). */
static int mod_loss(ck *c, mod *m, mod_io *x, const char *when, double *L, double *scale)
{
    char buf[1200];
    eqm_module_io io;
    memset(&io, 0, sizeof io);
    io.size = sizeof io;
    io.rows = x->rows;
    io.train = 1;
    io.in = x->in;
    io.in_target = x->in_target;
    io.t = x->t;
    io.out = x->out;
    io.loss = NAN;
    if (x->out)
        for (size_t i = 0; i < x->n_out; i++)
            x->out[i] = NAN;
    int rc = m->ops->forward(m->self, &io);
    if (rc != EQM_OK) {
        fail(c, "forward", "%s: forward failed: %s", when, why(c, rc, buf, sizeof buf, "forward"));
        return -1;
    }
    if (mod_guards(c, m, "forward") || !gb_intact(&x->gout)) {
        if (gb_intact(&x->gout) == 0)
            fail(c, "canaries", "forward wrote outside io->out (rows x D)");
        return -1;
    }
    if (io.n_metrics < 0 || io.n_metrics > EQM_MAX_METRICS) {
        fail(c, "metrics", "n_metrics = %d: 0..%d", io.n_metrics, EQM_MAX_METRICS);
        return -1;
    }
    for (int k = 0; k < io.n_metrics; k++)
        if (!io.metrics[k].name) {
            fail(c, "metrics", "metrics[%d].name is NULL", k);
            return -1;
        }
    if (x->kind == EQM_KIND_BACKBONE) {
        double s = 0, a = 0;
        for (size_t i = 0; i < x->n_out; i++) {
            if (!isfinite(x->out[i])) {
                fail(c, "output written", "%s: out[%zu] (row %zu) is %g after forward: forward "
                                          "writes every value of the declared rows x D output",
                     when, i, i / (size_t)x->D_out, (double)x->out[i]);
                return -1;
            }
            s += (double)x->out[i] * x->dout[i];
            a += fabs((double)x->out[i] * x->dout[i]);
        }
        *L = s;
        *scale = a;
    } else {
        if (!isfinite(io.loss)) {
            fail(c, "loss", "%s: forward set io->loss = %g", when, io.loss);
            return -1;
        }
        *L = io.loss;
        *scale = fabs(io.loss) + 1e-3;
    }
    return 0;
}

static int mod_backward(ck *c, mod *m, mod_io *x, const char *when)
{
    char buf[1200];
    eqm_module_io io;
    memset(&io, 0, sizeof io);
    io.size = sizeof io;
    io.rows = x->rows;
    io.train = 1;
    io.in = x->in;
    io.in_target = x->in_target;
    io.t = x->t;
    io.out = x->out;
    io.dout = x->dout;
    io.din = x->din;
    io.loss_scale = 1.0f;
    int rc = m->ops->backward(m->self, &io);
    if (rc != EQM_OK) {
        fail(c, "backward", "%s: backward failed: %s", when,
             why(c, rc, buf, sizeof buf, "backward"));
        return -1;
    }
    if (mod_guards(c, m, "backward"))
        return -1;
    if (!gb_intact(&x->gdin)) {
        fail(c, "canaries", "backward wrote outside io->din");
        return -1;
    }
    return 0;
}

static void zero_grads(mod *m)
{
    for (int i = 0; i < m->n; i++)
        if (m->g[i])
            memset(m->g[i], 0, m->len[i] * sizeof(float));
}

static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Directional finite difference of L along a random direction of x[0..n), against the
 * analytic gradient g. */
static int fd_check(ck *c, mod *m, mod_io *io, float *x, const float *g, size_t n,
                    const char *what, uint64_t seed)
{
    double rms = 0;
    for (size_t i = 0; i < n; i++)
        rms += (double)x[i] * x[i];
    rms = sqrt(rms / (double)n);
    float step = (float)(getenv("EQM_FD_STEP") ? atof(getenv("EQM_FD_STEP")) : 2e-3) * (float)(rms > 0.05 ? rms : 0.05);
    float *keep = malloc(n * sizeof(float)), *dir = malloc(n * sizeof(float));
    if (!keep || !dir) {
        free(keep);
        free(dir);
        fail(c, "host", "out of memory");
        return -1;
    }
    memcpy(keep, x, n * sizeof(float));
    double an = 0;
    for (size_t i = 0; i < n; i++) {
        dir[i] = rnd(&seed) * step;
        an += (double)g[i] * dir[i];
    }
    double Lp, Lm, sp, sm;
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        x[i] = keep[i] + dir[i];
    rc |= mod_loss(c, m, io, what, &Lp, &sp);
    for (size_t i = 0; i < n; i++)
        x[i] = keep[i] - dir[i];
    if (!rc)
        rc |= mod_loss(c, m, io, what, &Lm, &sm);
    memcpy(x, keep, n * sizeof(float));
    free(keep);
    free(dir);
    if (rc)
        return -1;
    double fd = (Lp - Lm) / 2.0;
    double floor_ = 64.0 * FLT_EPSILON * (sp > sm ? sp : sm);
    double tol = 0.1 * fmax(fabs(fd), fabs(an)) + floor_;
    if (fabs(fd - an) > tol) {
        fail(c, "gradient", "%s: directional derivative %.6g from backward, %.6g by central "
                            "differences (tolerance %.3g): backward's gradient is wrong%s",
             what, an, fd, tol,
             fabs(an) < 1e-3 * fabs(fd) ? " (nothing was accumulated into it?)" : "");
        return -1;
    }
    return 0;
}

static void check_module(ck *c, const eqm_plugin *pl, void *opts)
{
    int kind = (int)pl->desc.kind;
    const int N = 4;
    eqm_module_cfg cfg = {sizeof cfg, 16, 16, 3, 12, 5, 3 * N};
    mod m;
    mod_io x;
    memset(&x, 0, sizeof x);
    x.kind = kind;
    int needs_target = kind == EQM_KIND_METHOD && (pl->ops.module.flags & EQM_MODULE_NEEDS_TARGET);
    if (mod_open(c, pl, opts, &cfg, kind == EQM_KIND_BACKBONE || needs_target, &m)) {
        mod_free(&m);
        return;
    }
    pass(c, "create, tensors, bind, init");
    size_t n_in;
    x.rows = kind == EQM_KIND_METHOD ? 2 * N : 3 * N;
    if (kind == EQM_KIND_BACKBONE) {
        x.D_out = pl->ops.module.out_dim ? pl->ops.module.out_dim(m.self) : 0;
        if (x.D_out <= 0 || x.D_out > 1 << 20) {
            fail(c, "out_dim", "out_dim = %d", x.D_out);
            mod_free(&m);
            return;
        }
        n_in = (size_t)x.rows * cfg.in_h * cfg.in_w * cfg.in_c;
        x.n_out = (size_t)x.rows * x.D_out;
    } else {
        n_in = (size_t)x.rows * cfg.in_dim;
    }
    x.n_in = n_in;
    x.in = gb_alloc(&x.gin, n_in * sizeof(float));
    x.din = gb_alloc(&x.gdin, n_in * sizeof(float));
    float *g_in = malloc(n_in * sizeof(float));
    float *dout = x.n_out ? malloc(x.n_out * sizeof(float)) : NULL;
    float *tt = kind == EQM_KIND_EQUIMOD ? malloc((size_t)2 * N * cfg.p_dim * sizeof(float)) : NULL;
    float *intg = needs_target ? malloc(n_in * sizeof(float)) : NULL;
    float **g1 = calloc((size_t)(m.n ? m.n : 1), sizeof *g1);
    if (x.n_out)
        x.out = gb_alloc(&x.gout, x.n_out * sizeof(float));
    if (!x.in || !x.din || !g_in || (x.n_out && (!dout || !x.out)) ||
        (kind == EQM_KIND_EQUIMOD && !tt) || (needs_target && !intg) || !g1) {
        fail(c, "host", "out of memory");
        goto out;
    }
    uint64_t s = 42;
    for (size_t i = 0; i < n_in; i++)
        x.in[i] = rnd(&s);
    for (size_t i = 0; i < x.n_out; i++)
        dout[i] = rnd(&s);
    if (tt)
        for (size_t i = 0; i < (size_t)2 * N * cfg.p_dim; i++)
            tt[i] = rnd(&s);
    if (intg)
        for (size_t i = 0; i < n_in; i++)
            intg[i] = rnd(&s);
    x.dout = dout;
    x.t = tt;
    x.in_target = intg;
    /* analytic gradients: din starts at 0.5 to check that backward accumulates */
    double L, scale;
    zero_grads(&m);
    for (size_t i = 0; i < n_in; i++)
        x.din[i] = 0.5f;
    float *in_keep = malloc(n_in * sizeof(float));
    if (!in_keep) {
        fail(c, "host", "out of memory");
        goto out;
    }
    memcpy(in_keep, x.in, n_in * sizeof(float));
    if (mod_loss(c, &m, &x, "forward", &L, &scale) || mod_backward(c, &m, &x, "backward")) {
        free(in_keep);
        goto out;
    }
    if (memcmp(in_keep, x.in, n_in * sizeof(float)))
        fail(c, "input const", "forward or backward modified io->in");
    free(in_keep);
    pass(c, "forward, backward, output written, canaries");
    for (size_t i = 0; i < n_in; i++)
        g_in[i] = x.din[i] - 0.5f;
    for (int i = 0; i < m.n; i++) {
        if (!m.g[i])
            continue;
        g1[i] = malloc(m.len[i] * sizeof(float));
        if (!g1[i]) {
            fail(c, "host", "out of memory");
            goto out;
        }
        memcpy(g1[i], m.g[i], m.len[i] * sizeof(float));
        for (size_t k = 0; k < m.len[i]; k++)
            if (!isfinite(g1[i][k])) {
                fail(c, "gradient", "backward left %s grad[%zu] = %g", m.info[i].name, k,
                     (double)g1[i][k]);
                goto out;
            }
    }
    /* finite differences, every trainable tensor and the input */
    int n_fd = 0, n_bad = 0;
    char what[160];
    for (int i = 0; i < m.n; i++) {
        if (!m.g[i])
            continue;
        snprintf(what, sizeof what, "tensor '%s'", m.info[i].name);
        n_fd++;
        n_bad += fd_check(c, &m, &x, m.p[i], g1[i], m.len[i], what, 1000 + (uint64_t)i) != 0;
    }
    n_fd++;
    n_bad += fd_check(c, &m, &x, x.in, g_in, n_in, "input (din)", 7) != 0;
    if (!n_bad) {
        char msg[96];
        snprintf(msg, sizeof msg, "finite differences of %d gradients", n_fd);
        pass(c, msg);
    }
    /* a target forward between forward and backward changes nothing of the online pass */
    if (kind == EQM_KIND_BACKBONE && m.t) {
        zero_grads(&m);
        memset(x.din, 0, n_in * sizeof(float));
        gbuf gto = {0};
        float *tout = gb_alloc(&gto, x.n_out * sizeof(float));
        if (!tout || mod_loss(c, &m, &x, "online forward", &L, &scale)) {
            gb_free(&gto);
            goto out;
        }
        char buf[1200];
        eqm_module_io io;
        memset(&io, 0, sizeof io);
        io.size = sizeof io;
        io.rows = 2 * N; /* the target sees the two views only */
        io.train = 1;
        io.use_target = 1;
        io.in = x.in + (size_t)N * cfg.in_h * cfg.in_w * cfg.in_c;
        io.out = tout;
        for (size_t i = 0; i < (size_t)2 * N * x.D_out; i++)
            tout[i] = NAN;
        int rc = m.ops->forward(m.self, &io);
        int ok = 1;
        if (rc != EQM_OK) {
            fail(c, "target forward", "forward with use_target = 1 failed: %s",
                 why(c, rc, buf, sizeof buf, "forward"));
            ok = 0;
        } else if (mod_guards(c, &m, "target forward") || !gb_intact(&gto)) {
            ok = 0;
        } else {
            for (size_t i = 0; i < (size_t)2 * N * x.D_out; i++)
                if (!isfinite(tout[i])) {
                    fail(c, "target forward", "target forward left out[%zu] = %g", i,
                         (double)tout[i]);
                    ok = 0;
                    break;
                }
        }
        gb_free(&gto);
        if (ok && !mod_backward(c, &m, &x, "backward after a target forward")) {
            double d2 = 0, n2 = 0;
            for (int i = 0; i < m.n; i++)
                if (m.g[i])
                    for (size_t k = 0; k < m.len[i]; k++) {
                        double e = (double)m.g[i][k] - g1[i][k];
                        d2 += e * e;
                        n2 += (double)g1[i][k] * g1[i][k];
                    }
            for (size_t k = 0; k < n_in; k++) {
                double e = (double)x.din[k] - g_in[k];
                d2 += e * e;
                n2 += (double)g_in[k] * g_in[k];
            }
            if (!(sqrt(d2) <= 1e-5 * sqrt(n2) + 1e-30))
                fail(c, "target forward", "a target (EMA) forward between forward and backward "
                                          "changed the gradients (relative difference %.3g): "
                                          "the target forward must leave the online "
                                          "activations that backward reads intact",
                     sqrt(d2) / (sqrt(n2) + 1e-30));
            else
                pass(c, "target forward between forward and backward");
        }
    }
    /* max_rows = 0, as equimod export creates a backbone: same tensors */
    if (kind == EQM_KIND_BACKBONE) {
        eqm_module_cfg c0 = cfg;
        c0.max_rows = 0;
        mod m0;
        if (mod_open(c, pl, opts, &c0, 0, &m0) == 0) {
            int same = m0.n == m.n;
            for (int i = 0; same && i < m.n; i++)
                same = !strcmp(m0.info[i].name, m.info[i].name) && m0.len[i] == m.len[i] &&
                       m0.info[i].flags == m.info[i].flags;
            if (!same)
                fail(c, "max_rows = 0", "created with max_rows = 0 (as equimod export does) the "
                                        "backbone lists other tensors than with max_rows %d",
                     cfg.max_rows);
            else
                pass(c, "max_rows = 0");
        } else {
            note("max_rows = 0: equimod export creates backbones this way (no forward follows)");
        }
        mod_free(&m0);
    }
out:
    if (g1)
        for (int i = 0; i < m.n; i++)
            free(g1[i]);
    free(g1);
    free(g_in);
    free(dout);
    free(tt);
    free(intg);
    gb_free(&x.gin);
    gb_free(&x.gdin);
    gb_free(&x.gout);
    mod_free(&m);
}

/* ------------------------------------------------------------------ command ---- */

static void check_usage(FILE *f)
{
    fprintf(f,
            "usage: equimod check [--plugin-path DIR]... [--set KEY=VALUE]... [-v]\n"
            "                     FILE.so | KIND/NAME\n\n"
            "Exercise a plugin's contract and report each failure with the rule it breaks;\n"
            "exit status 0 only when everything holds. FILE.so checks every plugin of that\n"
            "file (a path: it contains '/'); KIND/NAME one plugin from the search path.\n"
            "The instance gets the plugin's default options; --set KEY=VALUE changes one\n"
            "(e.g. --set depth=18 for a smaller network). -v lists the checks that held.\n"
            "  augment   records in t (finite, declared length, unique names, neutral with\n"
            "            p = 0), apply (deterministic, every pixel, nothing outside out_shape,\n"
            "            no EQM_SKIP), apply_scaled = apply at scale 1, several threads agree,\n"
            "            on 8-bit images of several sizes with 1 and 3 channels\n"
            "  dataset   info, get on the first, last and random indices, labels within\n"
            "            n_classes, the buffer-growth protocol, several threads agree\n"
            "  backbone, method, equimod\n"
            "            finite-difference check of the gradient of every parameter tensor\n"
            "            and of the input, output fully written, canaries around the\n"
            "            activation arena and every buffer, din accumulates; backbones: a\n"
            "            target (EMA) forward between forward and backward, max_rows = 0\n");
}

static int check_one(const eqm_plugin *pl, const char *const *sets, int n_sets, int verbose)
{
    ck c;
    memset(&c, 0, sizeof c);
    c.pl = pl;
    c.verbose = verbose;
    const char *kn = kind_name((int)pl->desc.kind);
    snprintf(c.label, sizeof c.label, "%s/%s", kn ? kn : "?", pl->desc.name);
    printf("check %s %s (plugin ABI %u.%u, %s)\n", c.label, pl->desc.version, pl->file_abi_major,
           pl->file_abi_minor, pl->path);
    c.ctx = host_ctx_create(c.label);
    void *opts = calloc(1, pl->desc.params_size ? pl->desc.params_size : 1);
    eqm_config *cfg = config_new_empty();
    char err[2048];
    int rc = (c.ctx && opts && cfg) ? 0 : -1;
    for (int i = 0; rc == 0 && i < n_sets; i++) {
        char a[1200];
        snprintf(a, sizeof a, "check.%s", sets[i]);
        if (config_set(cfg, a, err, sizeof err)) {
            printf("  FAIL [options] --set %s: %s\n", sets[i], err);
            rc = -1;
        }
    }
    if (rc == 0 && config_bind(cfg, "check", pl->desc.params, opts, NULL, err, sizeof err)) {
        printf("  FAIL [options] %s\n", err);
        rc = -1;
    }
    if (rc == 0) {
        switch (pl->desc.kind) {
        case EQM_KIND_AUGMENT: check_augment(&c, pl, opts); break;
        case EQM_KIND_DATASET: check_dataset(&c, pl, opts); break;
        default: check_module(&c, pl, opts); break;
        }
        if (c.n_fail)
            printf("%s: %d of %d checks FAILED\n", c.label, c.n_fail, c.n_checks);
        else
            printf("%s: all %d checks hold\n", c.label, c.n_checks);
    } else {
        printf("%s: not checked\n", c.label);
    }
    config_destroy(cfg);
    free(opts);
    if (c.ctx)
        host_ctx_destroy(c.ctx);
    return rc == 0 && c.n_fail == 0 ? 0 : 1;
}

int cmd_check(int argc, char **argv)
{
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    const char *target = NULL;
    int n_sets = 0, verbose = 0, rc = 2;
    if (!sets)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            check_usage(stdout);
            rc = 0;
            goto done;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = 1;
        } else if (!strcmp(a, "--plugin-path") || !strcmp(a, "--set")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "equimod check: %s needs a value\n", a);
                goto done;
            }
            if (a[2] == 'p')
                cli_add_plugin_path(argv[++i]);
            else
                sets[n_sets++] = argv[++i];
        } else if (!strncmp(a, "--plugin-path=", 14)) {
            cli_add_plugin_path(a + 14);
        } else if (!strncmp(a, "--set=", 6)) {
            sets[n_sets++] = a + 6;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "equimod check: unknown option '%s'\nhint: see 'equimod check "
                            "--help'\n", a);
            goto done;
        } else if (!target) {
            target = a;
        } else {
            fprintf(stderr, "equimod check: unexpected argument '%s'\n", a);
            goto done;
        }
    }
    if (!target) {
        fprintf(stderr, "equimod check: expected FILE.so or KIND/NAME\n"
                        "hint: equimod check ./my_plugin.so, or equimod check augment/flip\n");
        goto done;
    }
    rc = 1;
    struct stat st;
    if (strchr(target, '/') && !stat(target, &st)) { /* a file */
        eqm_registry *r = registry_create();
        if (!r)
            goto done;
        int n = registry_load_file(r, target);
        if (n <= 0) {
            fprintf(stderr, "equimod check: no plugin of %s was accepted%s\n", target,
                    n < 0 ? " (the file could not be opened)" : " (see the refusal above)");
            registry_destroy(r);
            goto done;
        }
        rc = 0;
        for (size_t i = 0; i < registry_count(r); i++)
            rc |= check_one(registry_at(r, i), sets, n_sets, verbose);
        registry_destroy(r);
        goto done;
    }
    const char *slash = strchr(target, '/');
    if (!slash) {
        fprintf(stderr, "equimod check: '%s' is neither a file nor KIND/NAME\n", target);
        rc = 2;
        goto done;
    }
    char kind_s[32];
    snprintf(kind_s, sizeof kind_s, "%.*s", (int)(slash - target), target);
    int kind = kind_from_name(kind_s);
    eqm_registry *r = cli_registry();
    const eqm_plugin *pl = (r && kind >= 0) ? registry_find(r, kind, slash + 1) : NULL;
    if (!pl) {
        fprintf(stderr, "equimod check: no file %s and no plugin %s in the search path\n"
                        "hint: 'equimod plugins' lists the plugins found\n", target, target);
        goto done;
    }
    rc = check_one(pl, sets, n_sets, verbose);
done:
    free(sets);
    return rc;
}
