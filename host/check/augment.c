/* host/check/augment.c: `equimod check` of an augmentation: param_name (non-NULL,
 * [a-z0-9_]+, unique); on several sizes and channel counts: sample writes n_params finite
 * values and nothing past them, the same rng gives the same record, out_shape is sane and
 * does not need pixels, apply writes every pixel of out and nothing outside (guards, row
 * padding), leaves the input alone, is deterministic, is not EQM_SKIP; apply_scaled at
 * scale 1 equals apply and source_box lies in the image; with option p = 0 the record is
 * always the same (neutral) and apply is the identity; 4 threads sharing the instance
 * agree with one thread. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/internal.h"

static int rows_equal(const unsigned char *a, const unsigned char *b, int h, size_t row,
                      size_t stride)
{
    for (int y = 0; y < h; y++)
        if (memcmp(a + (size_t)y * stride, b + (size_t)y * stride, row))
            return 0;
    return 1;
}


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
    if ((r->ops->out_shape_p ? r->ops->out_shape_p(r->self, p, &im, &w, &hh, &c, &f)
                             : r->ops->out_shape(r->self, &im, &w, &hh, &c, &f)) != EQM_OK)
        goto out;
    size_t sb = r->ops->scratch_bytes ? r->ops->scratch_bytes(r->self, &im) : 0;
    void *scratch = malloc(sb ? sb : 1);
    size_t row = (size_t)w * c * pix_size(f);
    unsigned char *ob = calloc((size_t)hh, row ? row : 1);
    if (scratch && ob) {
        eqm_image out = {w, hh, c, w * c, f, ob};
        if (r->ops->apply(r->self, p, &im, &out, scratch) == EQM_OK) {
            h = chk_fnv(0xcbf29ce484222325ull, p, (size_t)r->np * sizeof(float));
            h = chk_fnv(h, ob, (size_t)hh * row) | 1;
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

/* One checked case: the input image (guarded), its record p (guarded, NaN past np). */
typedef struct acase {
    ck *c;
    const eqm_augment_ops *ops;
    void *self;
    int np, k, d, stride;
    const aug_case *ac;
    char what[64];
    eqm_image im;
    gbuf gin, gp;
    unsigned char *in, *keep;
    float *p;
} acase;

/* sample on the case: the record's length, finiteness and randomness. 0 when it holds;
 * -1 otherwise (*refused: the first draw's input was refused with a reason). */
static int case_sample(acase *a, int *refused)
{
    ck *c = a->c;
    char buf[1200];
    const char *what = a->what;
    for (int i = 0; i < a->np + 4; i++)
        a->p[i] = NAN;
    eqm_rng rng, rng2;
    host_api()->rng_seed(&rng, 1234, (uint64_t)a->k, (uint64_t)a->d, 0);
    rng2 = rng;
    eqm_augment_ctx ctx = {sizeof ctx, a->ac->w, a->ac->h};
    int rc = a->ops->sample(a->self, &rng, &ctx, &a->im, a->p);
    if (rc < 0) {
        const char *m = host_ctx_error(c->ctx);
        if (m && *m && a->d == 0) { /* a refused input with a reason: fine, skip this size */
            chk_note("%s refused by sample: %s", what, m);
            *refused = 1;
        } else {
            chk_fail(c, "sample", "%s: %s", what, chk_why(c, rc, buf, sizeof buf, "sample"));
        }
        return -1;
    }
    if (rc > 0) {
        chk_fail(c, "sample status", "%s: sample returned %d (%s); sample returns EQM_OK or a "
                                     "failure (a skipped augmentation writes its neutral "
                                     "record)", what, rc, eqm_status_str(rc));
        return -1;
    }
    for (int i = 0; i < a->np; i++)
        if (!isfinite(a->p[i])) {
            chk_fail(c, "t finite", "%s: sample left t[%d] (%s) = %g: sample writes all "
                                    "n_params values, each finite (method-reference.md §4)",
                     what, i, a->ops->param_name ? a->ops->param_name(a->self, i) : "?",
                     (double)a->p[i]);
            return -1;
        }
    for (int i = a->np; i < a->np + 4; i++)
        if (!isnan(a->p[i])) {
            chk_fail(c, "t length", "%s: sample wrote p[%d], past its n_params = %d", what, i,
                     a->np);
            return -1;
        }
    if (!chk_gb_intact(&a->gp) || !chk_gb_intact(&a->gin)) {
        chk_fail(c, "t length", "%s: sample wrote outside p[0..%d) or into the image", what,
                 a->np);
        return -1;
    }
    chk_pass(c, "sample");
    float *p2 = calloc((size_t)a->np + 1, sizeof(float));
    if (p2 && a->ops->sample(a->self, &rng2, &ctx, &a->im, p2) == EQM_OK &&
        memcmp(a->p, p2, (size_t)a->np * sizeof(float)))
        chk_fail(c, "sample randomness", "%s: two draws from the same rng state gave different "
                                         "records: sample draws only from the rng it is given",
                 what);
    free(p2);
    return 0;
}

/* The output shape of the case's record: out_shape_p (1.3) when the plugin has it. */
static int case_out_shape(const acase *a, const eqm_image *in, int *w, int *hh, int *ch,
                          uint32_t *f)
{
    return a->ops->out_shape_p ? a->ops->out_shape_p(a->self, a->p, in, w, hh, ch, f)
                               : a->ops->out_shape(a->self, in, w, hh, ch, f);
}

/* out_shape (or out_shape_p) of the case: sane, and the same without pixels. 0 when it
 * holds. */
static int case_shape(acase *a, int *w, int *hh, int *ch, uint32_t *f)
{
    ck *c = a->c;
    char buf[1200];
    const char *fn = a->ops->out_shape_p ? "out_shape_p" : "out_shape";
    int w2 = -1, h2 = -1, c2 = -1;
    uint32_t f2 = 98;
    *f = 99;
    int rc = case_out_shape(a, &a->im, w, hh, ch, f);
    if (rc != EQM_OK) {
        chk_fail(c, "out_shape", "%s: %s", a->what, chk_why(c, rc, buf, sizeof buf, fn));
        return -1;
    }
    if (*w <= 0 || *hh <= 0 || (*ch != 1 && *ch != 3) || (*f != EQM_PIX_U8 && *f != EQM_PIX_F32)) {
        chk_fail(c, "out_shape", "%s: out_shape gave %dx%dx%d format %u: w, h > 0, c 1 or 3, "
                                 "format EQM_PIX_U8 or EQM_PIX_F32", a->what, *w, *hh, *ch, *f);
        return -1;
    }
    eqm_image shape_only = a->im;
    shape_only.data = NULL;
    rc = case_out_shape(a, &shape_only, &w2, &h2, &c2, &f2);
    if (rc != EQM_OK || w2 != *w || h2 != *hh || c2 != *ch || f2 != *f)
        chk_fail(c, "out_shape", "%s: out_shape of the same shape with data = NULL gave %s "
                                 "%dx%dx%d: out_shape depends on the shape only (kinds.h)",
                 a->what, rc ? "an error" : "", w2, h2, c2);
    return 0;
}

/* apply_scaled at scale 1 against apply's output o2, and source_box inside the image. */
static void case_scaled(acase *a, eqm_image *out, unsigned char *o1, const unsigned char *o2,
                        size_t obytes, void *scratch)
{
    ck *c = a->c;
    const aug_case *ac = a->ac;
    size_t ps = pix_size(out->format), ostride = (size_t)out->stride;
    float box[4] = {NAN, NAN, NAN, NAN};
    int rc = a->ops->source_box(a->self, a->p, ac->w, ac->h, box);
    if (rc != EQM_OK || !(box[0] >= 0 && box[1] >= 0 && box[2] > 0 && box[3] > 0 &&
                          box[0] + box[2] <= ac->w + 1e-3f && box[1] + box[3] <= ac->h + 1e-3f))
        chk_fail(c, "source_box", "%s: source_box gave (%g, %g, %g, %g)%s: a box inside the "
                                  "%dx%d input", a->what, box[0], box[1], box[2], box[3],
                 rc ? " and failed" : "", ac->w, ac->h);
    memset(o1, 0x55, obytes);
    rc = a->ops->apply_scaled(a->self, a->p, &a->im, 1.0f, 1.0f, out, scratch);
    int same = 1;
    for (int y = 0; y < out->h && same; y++)
        if (memcmp(o1 + (size_t)y * ostride * ps, o2 + (size_t)y * ostride * ps,
                   (size_t)out->w * out->c * ps))
            same = 0;
    if (rc != EQM_OK || !same)
        chk_fail(c, "apply_scaled", "%s: apply_scaled at scale 1 %s apply (kinds.h: with sx = "
                                    "sy = 1 it MUST equal apply's)", a->what,
                 rc ? "failed where" : "differs from");
}

/* The checks of apply's output o1 (second call, prefilled 0xFF) against o2 (first call,
 * prefilled 0x00): nothing outside, deterministic, input untouched, scratch, finite. */
static void case_apply_result(acase *a, const eqm_image *out, const unsigned char *o1,
                              const unsigned char *o2, int rc, const gbuf *gout,
                              const gbuf *gs, size_t sb)
{
    ck *c = a->c;
    const int w = out->w, hh = out->h, ch = out->c;
    size_t ps = pix_size(out->format), ostride = (size_t)out->stride;
    int row_pad_ok = 1;
    for (int y = 0; y < hh && row_pad_ok; y++)
        for (size_t b = (size_t)w * ch * ps; b < ostride * ps; b++)
            if (o1[(size_t)y * ostride * ps + b] != 0xFF || o2[(size_t)y * ostride * ps + b])
                row_pad_ok = 0;
    if (!chk_gb_intact(gout) || !row_pad_ok)
        chk_fail(c, "out_shape honoured", "%s: apply wrote outside the %dx%dx%d output "
                                          "(out->stride %zu elements, rows padded)",
                 a->what, w, hh, ch, ostride);
    else if (rc != EQM_OK || !rows_equal(o1, o2, hh, (size_t)w * ch * ps, ostride * ps))
        chk_fail(c, "apply deterministic", "%s: apply of the same record twice (on outputs "
                                           "prefilled with 0x00 and 0xFF) differs: apply "
                                           "writes every output pixel and depends only on p "
                                           "and the input", a->what);
    else if (memcmp(a->in, a->keep, (size_t)a->stride * a->ac->h) || !chk_gb_intact(&a->gin))
        chk_fail(c, "input const", "%s: apply modified its input image", a->what);
    else if (sb && !chk_gb_intact(gs))
        chk_fail(c, "scratch", "%s: apply wrote past scratch_bytes = %zu", a->what, sb);
    else
        chk_pass(c, "apply");
    if (out->format == EQM_PIX_F32)
        for (int y = 0; y < hh; y++)
            for (int x = 0; x < w * ch; x++)
                if (!isfinite(((const float *)o1)[(size_t)y * ostride + x])) {
                    chk_fail(c, "output finite", "%s: apply wrote a non-finite float at row %d",
                             a->what, y);
                    y = hh;
                    break;
                }
}

/* out_shape and apply (twice) on the case after its sample; returns the hash of the record
 * and the output, 0 if it failed or the input was refused. */
static uint64_t case_apply(acase *a, int *refused)
{
    ck *c = a->c;
    char buf[1200];
    int w = 0, hh = 0, ch = 0;
    uint32_t f;
    if (case_shape(a, &w, &hh, &ch, &f))
        return 0;
    size_t ps = pix_size(f), ostride = (size_t)w * ch + 5, obytes = ostride * hh * ps;
    gbuf gout = {0}, gs = {0};
    unsigned char *o1 = chk_gb_alloc(&gout, obytes);
    size_t sb = a->ops->scratch_bytes ? a->ops->scratch_bytes(a->self, &a->im) : 0;
    void *scratch = chk_gb_alloc(&gs, sb);
    unsigned char *o2 = malloc(obytes);
    uint64_t h = 0;
    eqm_image out = {w, hh, ch, (int)ostride, f, o1};
    int rc = EQM_ERR_NOMEM;
    if (o1 && o2 && (scratch || !sb)) {
        memset(o1, 0x00, obytes);
        rc = a->ops->apply(a->self, a->p, &a->im, &out, scratch);
    } else {
        chk_fail(c, "host", "out of memory");
        goto out;
    }
    if (rc == EQM_SKIP) {
        chk_fail(c, "apply status", "%s: apply returned EQM_SKIP, which apply may not return "
                                    "(only a dataset's get/decode skips a sample); a skipped "
                                    "augmentation is decided in sample", a->what);
        goto out;
    }
    if (rc != EQM_OK && a->d == 0 && host_ctx_error(c->ctx)[0]) {
        chk_note("%s refused by apply: %s", a->what, host_ctx_error(c->ctx));
        *refused = 1;
        goto out;
    }
    if (rc != EQM_OK) {
        chk_fail(c, "apply", "%s: apply failed on an input its sample accepted: %s", a->what,
                 chk_why(c, rc, buf, sizeof buf, "apply"));
        goto out;
    }
    memcpy(o2, o1, obytes);
    memset(o1, 0xFF, obytes);
    rc = a->ops->apply(a->self, a->p, &a->im, &out, scratch);
    case_apply_result(a, &out, o1, o2, rc, &gout, &gs, sb);
    if (a->ops->apply_scaled && a->ops->source_box)
        case_scaled(a, &out, o1, o2, obytes, scratch);
    h = chk_fnv(0xcbf29ce484222325ull, a->p, (size_t)a->np * sizeof(float));
    for (int y = 0; y < hh; y++)
        h = chk_fnv(h, o2 + (size_t)y * ostride * ps, (size_t)w * ch * ps);
    h |= 1;
out:
    free(o2);
    chk_gb_free(&gout);
    chk_gb_free(&gs);
    return h;
}

/* Checked sample + apply of one case; returns the hash, 0 if the input was refused. */
static uint64_t aug_case_run(ck *c, const eqm_augment_ops *ops, void *self, int np, int k,
                             int d, int *refused)
{
    acase a;
    memset(&a, 0, sizeof a);
    a.c = c, a.ops = ops, a.self = self, a.np = np, a.k = k, a.d = d;
    a.ac = &aug_cases[k];
    snprintf(a.what, sizeof a.what, "%dx%dx%d input, draw %d", a.ac->w, a.ac->h, a.ac->c, d);
    a.stride = a.ac->w * a.ac->c + 3;
    a.in = chk_gb_alloc(&a.gin, (size_t)a.stride * a.ac->h);
    a.p = chk_gb_alloc(&a.gp, (size_t)(np + 4) * sizeof(float));
    a.keep = malloc((size_t)a.stride * a.ac->h);
    uint64_t h = 0;
    if (!a.in || !a.p || !a.keep) {
        chk_fail(c, "host", "out of memory");
    } else {
        fill_image(&a.im, a.in, a.ac->w, a.ac->h, a.ac->c, a.stride, (uint64_t)k);
        memcpy(a.keep, a.in, (size_t)a.stride * a.ac->h);
        if (!case_sample(&a, refused))
            h = case_apply(&a, refused);
    }
    chk_gb_free(&a.gin);
    chk_gb_free(&a.gp);
    free(a.keep);
    return h;
}

static int create_augment(ck *c, const eqm_plugin *pl, const void *opts, void **self)
{
    char buf[1200];
    *self = NULL;
    int rc = pl->ops.augment.create(host_api(), c->ctx, opts, self);
    if (rc != EQM_OK) {
        chk_fail(c, "create", "create with these options failed: %s",
                 chk_why(c, rc, buf, sizeof buf, "create"));
        return -1;
    }
    if (!*self) {
        chk_fail(c, "create", "create returned EQM_OK with a NULL instance (*self)");
        return -1;
    }
    return 0;
}

void check_augment(ck *c, const eqm_plugin *pl, void *opts)
{
    const eqm_augment_ops *ops = &pl->ops.augment;
    void *self;
    if (create_augment(c, pl, opts, &self))
        return;
    chk_pass(c, "create");
    int np = ops->n_params(self);
    if (np < 0 || np > 4096) {
        chk_fail(c, "n_params", "n_params = %d: 0..4096", np);
        ops->destroy(self);
        return;
    }
    if (np > 0 && !ops->param_name) {
        chk_fail(c, "param_name", "n_params = %d but param_name is NULL (REQUIRED when "
                                  "n_params > 0)", np);
    } else {
        int ok = 1;
        for (int i = 0; i < np; i++) {
            const char *n = ops->param_name(self, i);
            if (!n || !param_key_valid(n)) {
                chk_fail(c, "param_name", "param_name(%d) is %s%s%s: a name [a-z0-9_]+", i,
                         n ? "'" : "NULL", n ? n : "", n ? "'" : "");
                ok = 0;
                continue;
            }
            for (int j = 0; j < i; j++) {
                const char *m = ops->param_name(self, j);
                if (m && !strcmp(m, n)) {
                    chk_fail(c, "t field names", "t fields %d and %d are both named '%s': names "
                                                 "are unique within an augmentation", j, i, n);
                    ok = 0;
                }
            }
        }
        if (ok)
            chk_pass(c, "param_name");
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
        chk_fail(c, "inputs", "no test input was accepted (8-bit images of 32x32x3, 17x23x3, "
                              "48x30x1 and 7x5x3)");
    /* several threads on one instance agree with the serial results */
    int disagree = chk_threads(aug_thread, &run, sizeof run, offsetof(aug_run, failed)) == 1;
    if (disagree)
        chk_fail(c, "threads", "4 threads calling sample and apply on the same instance got "
                               "other records or pixels than one thread: they run concurrently "
                               "on a const self (ABI.md §7)");
    else if (n_ok)
        chk_pass(c, "threads");
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
            chk_fail(c, "neutral record", "with p = 0 (always skipped) the records differ between "
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
                    chk_fail(c, "neutral record", "with p = 0 (always skipped) apply changed the "
                                                  "image: the neutral record is the identity");
                else
                    chk_pass(c, "neutral record");
            }
            free(scratch);
        } else if (ok) {
            chk_pass(c, "neutral record");
        }
    }
    free(in);
    free(ob);
    free(p0);
    free(p);
    ops->destroy(self);
    *pv = keep_p;
}
