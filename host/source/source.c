/* host/source/source.c: the bad-row rule (batch_substitute) and the random-access source
 * over a dataset plugin's get() (dataset_source_open); source.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/source.h"

int batch_substitute(int n, int row, int (*good)(void *ctx, int r), void *ctx, int *sub)
{
    *sub = -1;
    for (int j = 0; j < n; j++) {
        int r = (row + j) % n;
        int g = good(ctx, r);
        if (g < 0)
            return g;
        if (g) {
            *sub = r;
            break;
        }
    }
    return EQM_OK;
}

typedef struct ds_ctx {
    const eqm_plugin *pl;
    void *self;
    eqm_host *host;
    char desc[1024];
} ds_ctx;

static int ds_get(void *ctx, int64_t index, eqm_image *img, size_t cap, int32_t *label)
{
    ds_ctx *d = ctx;
    int rc = d->pl->ops.dataset.get(d->self, index, img, cap, label);
    if (rc != EQM_OK && !source_grow(rc)) /* this thread's message: never empty, never stale */
        host_ctx_set_error(d->host, rc, "%s", host_ctx_failure(d->host, d->pl, "get", rc));
    return rc;
}

static const char *ds_error(void *ctx)
{
    ds_ctx *d = ctx;
    return host_ctx_error(d->host);
}

/* ABI 1.3: a random-access dataset of varying image sizes lists them (t estimation). */
static int64_t ds_image_sizes(void *ctx, int64_t max, int32_t *wh)
{
    ds_ctx *d = ctx;
    int64_t n = d->pl->ops.dataset.image_sizes(d->self, max, wh);
    if (n < 0 || n > max)
        host_ctx_set_error(d->host, n < 0 ? (int)n : EQM_ERR_STATE, "%s",
                           n < 0 ? host_ctx_failure(d->host, d->pl, "image_sizes", (int)n)
                                 : "image_sizes() returned more sizes than asked for");
    else
        for (int64_t i = 0; i < 2 * n; i++)
            if (wh[i] <= 0) {
                host_ctx_set_error(d->host, EQM_ERR_FORMAT, "dataset plugin '%s': "
                                   "image_sizes() gave size %d at entry %lld: sizes are > 0",
                                   d->pl->desc.name, (int)wh[i], (long long)(i / 2));
                return EQM_ERR_FORMAT;
            }
    return n > max ? EQM_ERR_STATE : n;
}

static void ds_destroy(void *ctx)
{
    ds_ctx *d = ctx;
    if (!d)
        return;
    if (d->self)
        d->pl->ops.dataset.close(d->self);
    host_ctx_destroy(d->host);
    free(d);
}

int dataset_source_open(const eqm_plugin *pl, const void *opts, const char *split,
                        eqm_sample_source *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    ds_ctx *d = calloc(1, sizeof *d);
    char label[160];
    snprintf(label, sizeof label, "dataset/%s", pl->desc.name);
    if (!d || !(d->host = host_ctx_create(label))) {
        free(d);
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    }
    d->pl = pl;
    int rc = pl->ops.dataset.open(host_api(), d->host, opts, split, &d->self);
    if (rc || !d->self) {
        if (rc)
            errf(err, errlen, rc < 0 ? rc : EQM_ERR_STATE, "[data] %s, split %s: %s",
                 pl->desc.name, split, host_ctx_failure(d->host, pl, "open", rc));
        else
            errf(err, errlen, EQM_ERR_STATE, "[data] dataset plugin '%s' (%s): open() returned "
                 "EQM_OK without an instance (*self is NULL); set *self to the plugin's state",
                 pl->desc.name, pl->path);
        d->self = NULL;
        ds_destroy(d);
        return rc < 0 ? rc : EQM_ERR_STATE;
    }
    eqm_dataset_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    rc = pl->ops.dataset.info(d->self, &info);
    if (rc) {
        errf(err, errlen, rc < 0 ? rc : EQM_ERR_STATE, "[data] %s: info: %s", pl->desc.name,
             host_ctx_failure(d->host, pl, "info", rc));
        rc = rc < 0 ? rc : EQM_ERR_STATE;
        ds_destroy(d);
        return rc;
    }
    if (info.n_samples < 0 || !pl->ops.dataset.get) {
        ds_destroy(d);
        return errf(err, errlen, EQM_ERR_UNSUPPORTED,
                    "[data] %s is streaming-only; build its source and use loader_create_source",
                    pl->desc.name);
    }
    snprintf(d->desc, sizeof d->desc, "%s", info.desc ? info.desc : pl->desc.name);
    out->ctx = d;
    out->n_samples = info.n_samples;
    out->w = info.w;
    out->h = info.h;
    out->c = info.c;
    out->n_classes = info.n_classes;
    out->class_names = info.class_names;
    out->desc = d->desc;
    out->get = ds_get;
    out->error = ds_error;
    out->destroy = ds_destroy;
    if ((!info.w || !info.h) && pl->ops.dataset.image_sizes) {
        out->sizes_ctx = d;
        out->image_sizes = ds_image_sizes;
    }
    return EQM_OK;
}
