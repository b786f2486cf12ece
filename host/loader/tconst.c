/* host/loader/tconst.c: t, the parameter vectors of the views: the published
 * standardisation constants (METHOD.md §4), their choice by [loader] t_standardize, the
 * Monte Carlo estimate (t_standardize = estimate, `equimod tstats`), standardisation. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/internal.h"

const char *const loader_ts_names[] = {"cifar_simclr", "imagenet_simclr", "byol_cifar",
                                       "byol_imagenet", "estimate", "none"};

/* Published constants (METHOD.md §4). */
static const char *const layout_base[15] = {"crop_i", "crop_j", "crop_h", "crop_w", "flip",
                                            "jitter", "order0", "order1", "order2", "order3",
                                            "brightness", "contrast", "saturation", "hue", "gray"};
static const float cifar_mean[15] = {4.3122f, 4.3216f, 23.369f, 23.374f, 0.49998f, 0.80087f,
                                     1.2025f, 1.4007f, 1.5964f, 1.8004f, 0.99993f, 1.0002f,
                                     0.99986f, 2.2321e-07f, 0.19965f};
static const float cifar_std[15] = {3.9740f, 3.9851f, 4.9544f, 4.9539f, 0.5000f, 0.3993f,
                                    1.1651f, 1.0210f, 1.0200f, 1.1669f, 0.2066f, 0.2068f,
                                    0.2066f, 0.0517f, 0.3997f};
static const float inet_mean[17] = {68.162f, 99.199f, 269.33f, 274.57f, 0.49905f, 0.80054f,
                                    1.1998f, 1.3994f, 1.6014f, 1.7995f, 1.0001f, 1.0000f,
                                    1.0005f, 1.5640e-04f, 0.20018f, 0.50030f, 0.52507f};
static const float inet_std[17] = {77.370f, 98.681f, 136.86f, 143.49f, 0.5000f, 0.39959f,
                                   1.1661f, 1.0201f, 1.0201f, 1.1657f, 0.41347f, 0.41323f,
                                   0.41349f, 0.10333f, 0.40013f, 0.5000f, 0.65251f};
static const float byol_mean[3] = {0.27256f, 0.52507f, 0.050149f};
static const float byol_std[3] = {0.30381f, 0.65251f, 0.064719f};

/* The published constants of the full layout (p_full fields, t_names_full) into mean/std. */
static int t_published(const eqm_loader *l, int ts, float *mean, float *std, char *err, size_t n)
{
    int P = l->p_full;
    int want = ts == TS_CIFAR_SIMCLR ? 15 : ts == TS_IMAGENET_SIMCLR ? 17 : 18;
    const char *names[18];
    for (int i = 0; i < 15; i++)
        names[i] = layout_base[i];
    names[15] = "blur";
    names[16] = "blur_sigma";
    names[17] = "solarize";
    int ok = P == want;
    for (int i = 0; ok && i < P; i++)
        ok = l->t_names_full[i] && !strcmp(l->t_names_full[i], names[i]);
    if (!ok) {
        char got[1024] = "";
        for (int i = 0; i < P; i++) {
            size_t len = strlen(got);
            snprintf(got + len, sizeof got - len, "%s%s", i ? " " : "",
                     l->t_names_full[i] ? l->t_names_full[i] : "?");
        }
        return errf(err, n, EQM_ERR_INVAL,
                       "[loader] t_standardize = %s expects the %d-field t of method-reference.md §4 (crop_i "
                       "... gray%s), but [views] view1 gives %d fields: %s; use t_standardize = "
                       "estimate (or none)", loader_ts_names[ts], want,
                       want == 17 ? " blur blur_sigma" : want == 18 ? " blur blur_sigma solarize" : "",
                       P, got);
    }
    const float *m15 = ts == TS_CIFAR_SIMCLR || ts == TS_BYOL_CIFAR ? cifar_mean : inet_mean;
    const float *s15 = ts == TS_CIFAR_SIMCLR || ts == TS_BYOL_CIFAR ? cifar_std : inet_std;
    for (int i = 0; i < 15; i++) {
        mean[i] = m15[i];
        std[i] = s15[i];
    }
    if (ts == TS_IMAGENET_SIMCLR) {
        mean[15] = inet_mean[15];
        std[15] = inet_std[15];
        mean[16] = inet_mean[16];
        std[16] = inet_std[16];
    } else if (ts == TS_BYOL_CIFAR || ts == TS_BYOL_IMAGENET) {
        for (int i = 0; i < 3; i++) {
            mean[15 + i] = byol_mean[i];
            std[15 + i] = byol_std[i];
        }
    }
    return EQM_OK;
}

/* The published constants are those of the full layout (METHOD.md 4): with [equimod]
 * t_fields, the kept fields keep their own constants. */
int t_constants(eqm_loader *l, char *err, size_t n)
{
    int ts = l->cfg.t_standardize, P = l->p;
    for (int i = 0; i < P; i++) {
        l->t_mean[i] = 0.0f;
        l->t_std[i] = 1.0f;
    }
    if (l->mode == EQM_LOADER_SINGLE || ts == TS_NONE)
        return EQM_OK;
    if (ts == TS_ESTIMATE) {
        int rc = loader_estimate_t(l, l->cfg.t_estimate_samples, l->seed ^ 0x7e57u, l->t_mean,
                                   l->t_std);
        return rc ? errf(err, n, rc, "[loader] t_standardize = estimate: %s", l->err) : rc;
    }
    float mean[MAX_T], std[MAX_T];
    int rc = t_published(l, ts, mean, std, err, n);
    if (rc)
        return rc;
    t_gather(l, mean, l->t_mean);
    t_gather(l, std, l->t_std);
    return EQM_OK;
}

void t_gather(const eqm_loader *l, const float *full, float *t)
{
    for (int k = 0; k < l->p; k++)
        t[k] = full[l->t_sel[k]];
}

/* Offset in t of step `step` of pipeline pp. */
static int step_offset(const pipeline *pp, int step)
{
    int off = 0;
    for (int i = 0; i < step; i++)
        off += pp->steps[i]->n_params;
    return off;
}

/* The [augment.NAME] names of views 1 and 2 that have t fields, space separated. */
static void t_field_names(const eqm_loader *l, const char **cands, size_t *nc, char *list,
                          size_t n)
{
    size_t len = 0;
    *nc = 0;
    list[0] = '\0';
    for (int v = 1; v <= 2; v++)
        for (int i = 0; i < l->pipe[v].n; i++) {
            const aug_inst *a = l->pipe[v].steps[i];
            const char *nm = a->section + 8; /* "augment." */
            int seen = 0;
            for (size_t j = 0; j < *nc; j++)
                seen |= !strcmp(cands[j], nm);
            if (seen || !a->n_params || *nc >= MAX_STEPS * 2)
                continue;
            cands[(*nc)++] = nm;
            int w = snprintf(list + len, n - len, "%s%s", len ? " " : "", nm);
            if (w > 0 && (size_t)w < n - len)
                len += (size_t)w;
        }
}

/* One name of t_fields: mark the fields of the step of view 1 (or view 2: the layouts are
 * the same, field by field) that [augment.NAME] is. */
static int t_mark(const eqm_loader *l, eqm_config *cfg, const char *name, unsigned char *keep,
                  char *err, size_t n)
{
    for (int v = 1; v <= 2; v++)
        for (int i = 0; i < l->pipe[v].n; i++) {
            const aug_inst *a = l->pipe[v].steps[i];
            if (strcmp(a->section + 8, name))
                continue;
            if (!a->n_params)
                return errf(err, n, EQM_ERR_INVAL,
                            "%s: [equimod] t_fields: [augment.%s] (%s) has no t fields; name "
                            "augmentations that have some (or all)",
                            config_where(cfg, "equimod", "t_fields"), name, a->pl->desc.name);
            int off = step_offset(&l->pipe[v], i);
            for (int j = 0; j < a->n_params; j++)
                keep[off + j] = 1;
            return EQM_OK;
        }
    const char *cands[MAX_STEPS * 2];
    size_t nc;
    char list[1024];
    t_field_names(l, cands, &nc, list, sizeof list);
    const char *sug = suggest_closest(name, cands, nc);
    return errf(err, n, EQM_ERR_INVAL,
                "%s: [equimod] t_fields: '%s' is not an augmentation of [views] view1 or "
                "view2%s%s%s\nhint: t_fields takes the [augment.NAME] names of the views that "
                "have t fields: %s (or all)",
                config_where(cfg, "equimod", "t_fields"), name, sug ? "; did you mean '" : "",
                sug ? sug : "", sug ? "'?" : "", list);
}

int t_select(eqm_loader *l, eqm_config *cfg, char *err, size_t n)
{
    const char *text = config_has_section(cfg, "equimod") ? config_get(cfg, "equimod", "t_fields")
                                                          : NULL;
    unsigned char keep[MAX_T];
    int all = !text || !text[0];
    memset(keep, all, sizeof keep);
    char names[MAX_STEPS * 2][96];
    int n_names = 0;
    for (const char *s = text ? text : ""; *s;) {
        char name[96];
        if (!(s = list_word(s, name, sizeof name)))
            break;
        if (!strcmp(name, "all")) {
            all = 1;
            continue;
        }
        for (int i = 0; i < n_names; i++)
            if (!strcmp(names[i], name))
                return errf(err, n, EQM_ERR_INVAL, "%s: [equimod] t_fields: '%s' listed twice",
                            config_where(cfg, "equimod", "t_fields"), name);
        if (n_names >= MAX_STEPS * 2)
            return errf(err, n, EQM_ERR_INVAL, "%s: [equimod] t_fields: more than %d names",
                        config_where(cfg, "equimod", "t_fields"), MAX_STEPS * 2);
        snprintf(names[n_names++], sizeof names[0], "%s", name);
        int rc = t_mark(l, cfg, name, keep, err, n);
        if (rc)
            return rc;
    }
    if (all && n_names)
        return errf(err, n, EQM_ERR_INVAL,
                    "%s: [equimod] t_fields: 'all' cannot be combined with names (%s ...)",
                    config_where(cfg, "equimod", "t_fields"), names[0]);
    if (all)
        memset(keep, 1, sizeof keep);
    l->p = 0;
    for (int k = 0; k < l->p_full; k++)
        if (keep[k]) {
            l->t_sel[l->p] = k;
            l->t_names[l->p++] = l->t_names_full[k];
        }
    return EQM_OK;
}

int loader_t_dim(const eqm_loader *l) { return l->mode == EQM_LOADER_VIEWS ? l->p : 0; }

const char *loader_t_name(const eqm_loader *l, int i)
{
    return i >= 0 && i < loader_t_dim(l) ? l->t_names[i] : NULL;
}

const char *loader_t_group(const eqm_loader *l, int i, const char **plugin)
{
    if (plugin)
        *plugin = NULL;
    if (i < 0 || i >= loader_t_dim(l))
        return NULL;
    int fi = l->t_sel[i]; /* field i of t in the full layout ([equimod] t_fields) */
    for (int s = 0, k = 0; s < l->pipe[1].n; s++) {
        const aug_inst *a = l->pipe[1].steps[s];
        if (fi < k + a->n_params) {
            if (plugin)
                *plugin = a->pl->desc.name;
            return a->section;
        }
        k += a->n_params;
    }
    return NULL;
}

void loader_standardize_t(const eqm_loader *l, const float *t_raw, float *t_std, int n)
{
    int P = loader_t_dim(l);
    for (int r = 0; r < n; r++)
        for (int k = 0; k < P; k++)
            t_std[(size_t)r * P + k] = (t_raw[(size_t)r * P + k] - l->t_mean[k]) / l->t_std[k];
}

const float *loader_t_mean(const eqm_loader *l) { return l->t_mean; }
const float *loader_t_std(const eqm_loader *l) { return l->t_std; }

#define EST_MAX_SIZES 2000

int loader_estimate_t(eqm_loader *l, int64_t n, uint64_t seed, float *mean, float *std)
{
    int P = l->mode == EQM_LOADER_VIEWS ? l->p : 0;
    if (P == 0)
        return EQM_OK;
    double sum[MAX_T] = {0}, sq[MAX_T] = {0};
    float tf[MAX_T], t[MAX_T];
    int c = l->src.c ? l->src.c : 3;
    /* image sizes the draws use: fixed, or the first images of the stream (crop records
     * are in original pixels and scale with each image's size, METHOD.md 4) */
    int32_t fixed[2] = {l->src.w ? l->src.w : 256, l->src.h ? l->src.h : 256};
    int32_t *wh = fixed;
    int64_t n_wh = 1;
    if ((!l->src.w || !l->src.h) && n > 0) {
        if (l->src.image_sizes) {
            int64_t want = n < EST_MAX_SIZES ? n : EST_MAX_SIZES;
            wh = malloc((size_t)want * 2 * sizeof(int32_t));
            if (!wh) {
                snprintf(l->err, sizeof l->err, "t estimation: out of memory");
                return EQM_ERR_NOMEM;
            }
            n_wh = l->src.image_sizes(l->src.sizes_ctx, want, wh);
            if (n_wh <= 0) {
                int rc = n_wh < 0 ? (int)n_wh : EQM_ERR_FORMAT;
                snprintf(l->err, sizeof l->err, "t estimation: %.400s: %.500s", l->desc,
                         n_wh < 0 && l->src.error ? l->src.error(l->src.ctx)
                                                  : "no readable image in epoch 0");
                free(wh);
                return rc;
            }
        } else {
            host_log(EQM_LOG_WARN, "loader", "%s: image sizes vary and the source cannot list "
                     "them: t estimated on 256x256 images (crop fields are then off)", l->desc);
        }
    }
    for (int64_t i = 0; i < n; i++)
        for (int v = 1; v <= 2; v++) {
            eqm_rng r;
            l->api->rng_seed(&r, seed, 0xe571u, (uint64_t)i, (uint64_t)v);
            const int32_t *s = wh + 2 * (i % n_wh);
            char why[900];
            int rc = pipe_sample_only(l, &l->pipe[v], s[0], s[1], c, &r, tf, why, sizeof why);
            if (rc) {
                snprintf(l->err, sizeof l->err, "t estimation: %s", why);
                if (wh != fixed)
                    free(wh);
                return rc;
            }
            t_gather(l, tf, t);
            for (int k = 0; k < P; k++) {
                sum[k] += t[k];
                sq[k] += (double)t[k] * t[k];
            }
        }
    if (wh != fixed) {
        host_log(EQM_LOG_INFO, "loader", "t estimate: %lld draws per view on the sizes of the "
                 "first %lld images of epoch 0", (long long)n, (long long)n_wh);
        free(wh);
    }
    double N = 2.0 * (double)n;
    for (int k = 0; k < P; k++) {
        double m = sum[k] / N, var = sq[k] / N - m * m;
        mean[k] = (float)m;
        std[k] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
    return EQM_OK;
}

