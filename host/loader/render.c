/* host/loader/render.c: inspection: one sample's views rendered synchronously (`equimod
 * views`) and the t layout of a config printed (`equimod config`). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/internal.h"

int loader_describe_t(eqm_config *cfg, const eqm_registry *reg, FILE *f)
{
    eqm_loader *l = loader_alloc();
    char err[1024] = "";
    if (!l) {
        fprintf(f, "error: out of memory\n");
        return EQM_ERR_NOMEM;
    }
    int rc = loader_setup(l, cfg, reg, NULL, err, sizeof err);
    if (rc) {
        fprintf(f, "error: %s\n", err);
        loader_free(l);
        return rc;
    }
    fprintf(f, "# t layout (method-reference.md §4): %d fields, raw values; standardisation: %s\n", l->p,
            loader_ts_names[l->cfg.t_standardize]);
    if (l->p < l->p_full)
        fprintf(f, "# [equimod] t_fields keeps %d of the %d fields the views draw; the "
                "others still augment\n", l->p, l->p_full);
    int k = 0, kept = 0;
    for (int i = 0; i < l->pipe[1].n; i++) {
        aug_inst *a = l->pipe[1].steps[i];
        for (int j = 0; j < a->n_params; j++, k++) {
            if (kept < l->p && l->t_sel[kept] == k)
                fprintf(f, "t[%d]\t%s\t(%s, plugin %s)\n", kept++, l->t_names_full[k],
                        a->section, a->pl->desc.name);
            else
                fprintf(f, "# dropped\t%s\t(%s, plugin %s)\n", l->t_names_full[k], a->section,
                        a->pl->desc.name);
        }
    }
    loader_free(l);
    return EQM_OK;
}

int loader_view_shape(eqm_config *cfg, const eqm_registry *reg, int *w, int *h, int *c, int *p,
                      char *err, size_t n)
{
    eqm_loader *l = loader_alloc();
    if (!l)
        return errf(err, n, EQM_ERR_NOMEM, "out of memory");
    int rc = loader_setup(l, cfg, reg, NULL, err, n);
    if (!rc)
        rc = pipe_shape(&l->pipe[1], 256, 256, 3, w, h, c, err, n);
    *p = l->p;
    loader_free(l);
    return rc;
}

int loader_render_sample(eqm_loader *l, int64_t epoch, int64_t index, eqm_image u8[3], float *t1,
                         float *t2, int32_t *label)
{
    memset(u8, 0, 3 * sizeof *u8);
    if (l->src.n_samples < 0 || index < 0 || index >= l->n_samples) {
        snprintf(l->err, sizeof l->err, "sample %lld: out of range [0, %lld) or streaming source",
                 (long long)index, (long long)l->n_samples);
        return EQM_ERR_INVAL;
    }
    worker_mem m;
    memset(&m, 0, sizeof m);
    eqm_image img;
    int rc = read_sample(l, &m, index, NULL, &img, label, l->err, sizeof l->err);
    float tb[MAX_T];
    for (int v = 0; !rc && v < l->n_pipes; v++) {
        eqm_rng r;
        l->api->rng_seed(&r, l->seed, (uint64_t)epoch, (uint64_t)index, (uint64_t)v);
        float *tp = v == 1 && t1 ? t1 : v == 2 && t2 ? t2 : NULL;
        eqm_image o;
        rc = pipe_run(l, &l->pipe[v], &m, &img, NULL, &r, tb, NULL, &o, l->err, sizeof l->err);
        if (rc)
            break;
        if (tp && l->mode == EQM_LOADER_VIEWS)
            t_gather(l, tb, tp);
        size_t bytes = (size_t)o.w * o.h * o.c;
        u8[v] = o;
        u8[v].stride = o.w * o.c;
        u8[v].data = malloc(bytes);
        if (!u8[v].data) {
            rc = EQM_ERR_NOMEM;
            break;
        }
        for (int y = 0; y < o.h; y++)
            memcpy((uint8_t *)u8[v].data + (size_t)y * o.w * o.c,
                   (const uint8_t *)o.data + (size_t)y * o.stride, (size_t)o.w * o.c);
    }
    if (rc)
        for (int v = 0; v < 3; v++) {
            free(u8[v].data);
            u8[v].data = NULL;
        }
    worker_mem_free(&m);
    return rc;
}
