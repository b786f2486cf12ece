/* host/check/dataset.c: `equimod check` of a dataset: info (sizes, classes, mean/std);
 * get on the first, last and 5 other indices (pixels inside the buffer, U8 1/3 channels,
 * label in [0, n_classes), the same sample twice, the buffer-growth protocol from a
 * 16-byte buffer); 4 threads agree; streaming datasets: stream_source, and decode of the
 * samples of a generated shard (stream.c). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/internal.h"

/* "grow the buffer and call again": EQM_GROW (1.2), EQM_ERR_NOMEM with a size (1.1) */
#define GROWS(rc) ((rc) == EQM_GROW || (rc) == EQM_ERR_NOMEM)

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
        if (GROWS(rc) && im.w > 0 && im.h > 0 && im.c > 0) {
            c2 = (size_t)im.w * im.h * im.c;
            free(b);
            continue;
        }
        uint64_t h = 0;
        if (rc == EQM_OK) {
            h = chk_fnv(0xcbf29ce484222325ull, &label, sizeof label);
            for (int y = 0; y < im.h; y++)
                h = chk_fnv(h, b + (size_t)y * im.stride, (size_t)im.w * im.c);
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
    unsigned char *b = chk_gb_alloc(&g, cap);
    *hash = 0;
    if (!b) {
        chk_fail(c, "host", "out of memory");
        return;
    }
    eqm_image im = {0, 0, 0, 0, EQM_PIX_U8, b};
    int32_t label = -1;
    int rc = ops->get(self, index, &im, cap, &label);
    if (GROWS(rc) && im.w > 0 && im.h > 0 && im.c > 0 &&
        (size_t)im.w * im.h * im.c > cap) {
        chk_gb_free(&g);
        chk_note("%s asked for a %dx%dx%d buffer (default capacity %zu bytes)", what, im.w, im.h,
                 im.c, cap);
        check_get(c, ops, self, info, index, (size_t)im.w * im.h * im.c, hash);
        return;
    }
    if (rc == EQM_SKIP) {
        chk_note("%s skipped the sample: %s", what, host_ctx_error(c->ctx));
        chk_gb_free(&g);
        return;
    }
    if (rc != EQM_OK) {
        chk_fail(c, "get", "%s: %s", what, chk_why(c, rc, buf, sizeof buf, "get"));
        chk_gb_free(&g);
        return;
    }
    if (im.data != b)
        chk_fail(c, "get buffer", "%s replaced img->data: get writes into the caller's buffer", what);
    else if (im.format != EQM_PIX_U8 || im.w <= 0 || im.h <= 0 || (im.c != 1 && im.c != 3) ||
             im.stride < im.w * im.c)
        chk_fail(c, "get image", "%s gave %dx%dx%d stride %d format %u: U8, w, h > 0, c 1 or 3, "
                                 "stride >= w*c", what, im.w, im.h, im.c, im.stride, im.format);
    else if ((size_t)im.stride * (im.h - 1) + (size_t)im.w * im.c > cap || !chk_gb_intact(&g))
        chk_fail(c, "get buffer", "%s wrote past img_capacity_bytes = %zu (image %dx%dx%d, stride "
                                  "%d)", what, cap, im.w, im.h, im.c, im.stride);
    else if (label < 0 || label >= info->n_classes)
        chk_fail(c, "labels", "%s: label %d outside [0, n_classes = %d)", what, (int)label,
                 info->n_classes);
    else if (info->w > 0 && info->h > 0 && (im.w != info->w || im.h != info->h))
        chk_fail(c, "get image", "%s is %dx%d; info says every image is %dx%d (0 if they vary)",
                 what, im.w, im.h, info->w, info->h);
    else {
        chk_pass(c, what);
        *hash = ds_once(ops, self, index, cap);
        uint64_t h = chk_fnv(0xcbf29ce484222325ull, &label, sizeof label);
        for (int y = 0; y < im.h; y++)
            h = chk_fnv(h, b + (size_t)y * im.stride, (size_t)im.w * im.c);
        if ((h | 1) != *hash)
            chk_fail(c, "get deterministic", "%s twice gave other pixels or label", what);
    }
    chk_gb_free(&g);
    if (*hash) { /* the growth protocol from a 16-byte buffer */
        gbuf s = {0};
        unsigned char *sm = chk_gb_alloc(&s, 16);
        eqm_image im2 = {0, 0, 0, 0, EQM_PIX_U8, sm};
        int rc2 = ops->get(self, index, &im2, 16, &label);
        if (!chk_gb_intact(&s))
            chk_fail(c, "buffer growth", "%s with a 16-byte buffer wrote past it", what);
        else if (rc2 == EQM_OK && (size_t)im2.w * im2.h * im2.c <= 16)
            chk_pass(c, "buffer growth");
        else if (!GROWS(rc2) || (size_t)im2.w * im2.h * im2.c < (size_t)im.w * im.h * im.c)
            chk_fail(c, "buffer growth", "%s with a 16-byte buffer returned %d (%s) with img "
                                         "%dx%dx%d: when the image does not fit, set img->w/h/c "
                                         "to the size needed and return EQM_GROW (a 1.1 plugin: "
                                         "EQM_ERR_NOMEM; kinds.h)",
                     what, rc2, eqm_status_str(rc2), im2.w, im2.h, im2.c);
        else
            chk_pass(c, "buffer growth");
        chk_gb_free(&s);
    }
}

static void check_dataset_split(ck *c, const eqm_plugin *pl, void *opts, const char *split)
{
    const eqm_dataset_ops *ops = &pl->ops.dataset;
    char buf[1200];
    void *self = NULL;
    int rc = ops->open(host_api(), c->ctx, opts, split, &self);
    if (rc != EQM_OK) {
        chk_fail(c, "open", "open(\"%s\") with these options failed: %s%s", split,
                 chk_why(c, rc, buf, sizeof buf, "open"),
                 "\n       (set options with --set KEY=VALUE, e.g. a data folder)");
        return;
    }
    if (!self) {
        chk_fail(c, "open", "open(\"%s\") returned EQM_OK with a NULL instance", split);
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
        chk_fail(c, "info", "info failed: %s", chk_why(c, rc, buf, sizeof buf, "info"));
        ops->close(self);
        return;
    }
    int ok = 1;
    if (info.n_classes < 1 || info.n_classes > 100000000)
        chk_fail(c, "info", "n_classes = %d: at least 1", info.n_classes), ok = 0;
    if (info.w < 0 || info.h < 0 || (info.c != 0 && info.c != 1 && info.c != 3) ||
        info.w > 1000000 || info.h > 1000000)
        chk_fail(c, "info", "w, h, c = %d, %d, %d: the fixed size, or 0 when it varies (c 1 or 3)",
                 info.w, info.h, info.c), ok = 0;
    for (int k = 0; k < 3; k++)
        if (!isfinite(info.mean[k]) || !isfinite(info.std[k]) || !(info.std[k] > 0))
            chk_fail(c, "info", "mean[%d] = %g, std[%d] = %g: finite, std > 0", k,
                     (double)info.mean[k], k, (double)info.std[k]), ok = 0, k = 3;
    if (info.class_names && ok)
        for (int k = 0; k < info.n_classes && k < 100000; k++)
            if (!info.class_names[k]) {
                chk_fail(c, "info", "class_names[%d] is NULL (n_classes = %d)", k, info.n_classes);
                ok = 0;
                break;
            }
    int streaming = info.n_samples < 0;
    if (streaming) {
        if (!ops->stream_members || !ops->stream_source || !ops->decode)
            chk_fail(c, "streaming", "n_samples = -1 but stream_members, stream_source and decode "
                                     "are not all set (kinds.h: all three)"), ok = 0;
        else {
            eqm_stream_source src;
            memset(&src, 0, sizeof src);
            src.size = sizeof src;
            rc = ops->stream_source(self, &src);
            if (rc != EQM_OK)
                chk_fail(c, "streaming", "stream_source failed: %s",
                         chk_why(c, rc, buf, sizeof buf, "stream_source"));
            else if (!src.shards || !*src.shards)
                chk_fail(c, "streaming", "stream_source gave no shards");
            else if (src.n_samples < -1 || src.shuffle_buffer < 0 || src.io < 0 || src.io > 2 ||
                     src.on_bad < 0 || src.on_bad > 1)
                chk_fail(c, "streaming", "stream_source gave n_samples %lld, shuffle_buffer %lld, "
                                         "io %d, on_bad %d: n_samples >= -1, shuffle_buffer >= "
                                         "0, io and on_bad of enum eqm_stream_io/_on_bad",
                         (long long)src.n_samples, (long long)src.shuffle_buffer, src.io,
                         src.on_bad);
            else
                chk_pass(c, "stream_source");
        }
    } else if (!ops->get) {
        chk_fail(c, "get", "n_samples = %lld but get is NULL: a random-access dataset sets get",
                 (long long)info.n_samples), ok = 0;
    } else if (info.n_samples == 0) {
        chk_fail(c, "info", "n_samples = 0: an empty split");
        ok = 0;
    }
    if (ok)
        chk_pass(c, "info");
    if (ok && streaming)
        check_stream(c, ops, self, &info);
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
        int disagree = chk_threads(ds_thread, &run, sizeof run, offsetof(ds_run, failed)) == 1;
        if (disagree)
            chk_fail(c, "threads", "4 threads calling get on the same instance got other pixels "
                                   "or labels than one thread (get MAY run concurrently)");
        else
            chk_pass(c, "threads");
    }
    ops->close(self);
}

void check_dataset(ck *c, const eqm_plugin *pl, void *opts)
{
    check_dataset_split(c, pl, opts, "train");
    check_dataset_split(c, pl, opts, "test");
}
