/* host/sweep/expand.c: a plan's runs from its axes (internal.h): the product of the value
 * lists, or with [sample] n seeded draws of the non-seed axes (uniform, log-uniform or a
 * choice of the values), each crossed with every seed; a run's name, point, labels and
 * --set list; the plan hash. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "sweep/internal.h"

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Append a run built from one value index per axis (range axes: the drawn text). */
static int add_run(sweep_plan *p, const int *idx, char *const *drawn)
{
    sweep_run *nr = realloc(p->runs, (size_t)(p->n_runs + 1) * sizeof *nr);
    if (!nr)
        return EQM_ERR_NOMEM;
    p->runs = nr;
    sweep_run *r = &p->runs[p->n_runs];
    memset(r, 0, sizeof *r);
    size_t nl = 1, pl = 1, ns = 0;
    r->labels = calloc((size_t)p->n_axes, sizeof(char *));
    if (!r->labels)
        return EQM_ERR_NOMEM;
    p->n_runs++;
    for (int a = 0; a < p->n_axes; a++) {
        const sweep_axis *ax = &p->axes[a];
        char lab[256];
        if (ax->is_range) {
            snprintf(lab, sizeof lab, "%s", drawn[a]);
            sweep_sanitize_label(lab);
        } else {
            snprintf(lab, sizeof lab, "%s", ax->labels[idx[a]]);
        }
        if (!(r->labels[a] = sweep_strdup(lab)))
            return EQM_ERR_NOMEM;
        nl += strlen(ax->name) + strlen(lab) + 2;
        pl += strlen(ax->name) + strlen(lab) + 2;
        ns += (size_t)ax->n_keys;
    }
    r->name = calloc(nl, 1);
    r->point = calloc(pl + 4, 1);
    r->sets = calloc(ns + (size_t)p->n_fixed + 1, sizeof(char *));
    if (!r->name || !r->point || !r->sets)
        return EQM_ERR_NOMEM;
    r->seed = sweep_strdup("");
    for (int k = 0; k < p->n_fixed; k++)
        if (!(r->sets[r->n_sets++] = sweep_strdup(p->fixed[k])))
            return EQM_ERR_NOMEM;
    for (int a = 0; a < p->n_axes; a++) {
        const sweep_axis *ax = &p->axes[a];
        char part[512];
        snprintf(part, sizeof part, "%s=%s", ax->name, r->labels[a]);
        if (*r->name)
            strcat(r->name, ",");
        strcat(r->name, part);
        if (ax->is_seed) {
            free(r->seed);
            r->seed = sweep_strdup(r->labels[a]);
        } else {
            if (*r->point)
                strcat(r->point, ",");
            strcat(r->point, part);
        }
        for (int k = 0; k < ax->n_keys; k++) {
            const char *v = ax->is_range ? drawn[a] : ax->values[k * ax->n_values + idx[a]];
            char *s = malloc(strlen(ax->keys[k]) + strlen(v) + 2);
            if (!s)
                return EQM_ERR_NOMEM;
            sprintf(s, "%s=%s", ax->keys[k], v);
            r->sets[r->n_sets++] = s;
        }
    }
    if (!*r->point)
        strcpy(r->point, "all");
    if (!r->seed)
        return EQM_ERR_NOMEM;
    return EQM_OK;
}

void sweep_plan_hash(sweep_plan *p)
{
    uint64_t h = sweep_fnv(SWEEP_FNV_INIT, &p->base_hash, sizeof p->base_hash);
    for (int r = 0; r < p->n_runs; r++) {
        h = sweep_fnv(h, p->runs[r].name, strlen(p->runs[r].name) + 1);
        for (int s = 0; s < p->runs[r].n_sets; s++)
            h = sweep_fnv(h, p->runs[r].sets[s], strlen(p->runs[r].sets[s]) + 1);
    }
    p->plan_hash = h;
}

int sweep_expand(sweep_plan *p, char *err, size_t errlen)
{
    int idx[64] = {0};
    if (p->n_axes > 64)
        return errf(err, errlen, EQM_ERR_INVAL, "%s: more than 64 axes", p->file);
    if (!p->sample_n) {
        for (;;) {
            if (add_run(p, idx, NULL))
                return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
            if (p->n_runs > 100000)
                return errf(err, errlen, EQM_ERR_INVAL, "%s: more than 100000 runs", p->file);
            int a = p->n_axes - 1;
            for (; a >= 0; a--) {
                if (++idx[a] < p->axes[a].n_values)
                    break;
                idx[a] = 0;
            }
            if (a < 0)
                break;
        }
        return EQM_OK;
    }
    /* [sample]: n draws of the non-seed axes, each crossed with every seed. */
    uint64_t st = (uint64_t)p->sample_seed * 0x9e3779b97f4a7c15ull + 12345;
    int seed_axis = -1;
    for (int a = 0; a < p->n_axes; a++)
        if (p->axes[a].is_seed)
            seed_axis = a;
    char drawn_buf[64][64];
    char *drawn[64];
    for (int a = 0; a < 64; a++)
        drawn[a] = drawn_buf[a];
    for (int64_t s = 0; s < p->sample_n; s++) {
        for (int a = 0; a < p->n_axes; a++) {
            sweep_axis *ax = &p->axes[a];
            if (ax->is_seed)
                continue;
            double u = (splitmix(&st) >> 11) * 0x1.0p-53;
            if (ax->is_range) {
                double v = ax->log_scale ? exp(log(ax->lo) + u * (log(ax->hi) - log(ax->lo)))
                                         : ax->lo + u * (ax->hi - ax->lo);
                snprintf(drawn[a], 64, "%.4g", v);
            } else {
                idx[a] = (int)(u * ax->n_values);
                if (idx[a] >= ax->n_values)
                    idx[a] = ax->n_values - 1;
            }
        }
        int n_seed = seed_axis >= 0 ? p->axes[seed_axis].n_values : 1;
        for (int k = 0; k < n_seed; k++) {
            if (seed_axis >= 0)
                idx[seed_axis] = k;
            int before = p->n_runs;
            if (add_run(p, idx, drawn))
                return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
            /* the same point drawn twice runs once */
            for (int r = 0; r < before; r++)
                if (!strcmp(p->runs[r].name, p->runs[before].name)) {
                    sweep_run *ru = &p->runs[before];
                    free(ru->name), free(ru->point), free(ru->seed);
                    sweep_free_strv(ru->sets, (size_t)ru->n_sets);
                    sweep_free_strv(ru->labels, (size_t)p->n_axes);
                    p->n_runs--;
                    break;
                }
        }
    }
    return EQM_OK;
}
