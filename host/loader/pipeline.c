/* host/loader/pipeline.c: the [views] pipelines: [augment.NAME] instances (shared by the
 * pipelines and the workers), their output shapes, running one on an image, drawing t
 * without pixels, and the DCT scale plan of streamed JPEGs; loader_setup binds [loader],
 * [views] and [run] and builds them. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader/internal.h"
#include "sections.h"

static aug_inst *inst_get(eqm_loader *l, eqm_config *cfg, const eqm_registry *reg,
                          const char *name, char *err, size_t n, int *rc)
{
    char section[128];
    if ((size_t)snprintf(section, sizeof section, "augment.%s", name) >= sizeof section) {
        *rc = errf(err, n, EQM_ERR_INVAL, "[views]: section name '%s' too long", name);
        return NULL;
    }
    for (int i = 0; i < l->n_insts; i++)
        if (!strcmp(l->insts[i].section, section))
            return &l->insts[i];
    if (l->n_insts >= (int)(sizeof l->insts / sizeof l->insts[0])) {
        *rc = errf(err, n, EQM_ERR_INVAL, "[views]: too many augmentation sections");
        return NULL;
    }
    if (!config_has_section(cfg, section)) {
        *rc = errf(err, n, EQM_ERR_NOTFOUND,
                      "[views] names '%s' but the config has no section [%s]; add it with "
                      "plugin = random_resized_crop|horizontal_flip|color_jitter|grayscale|"
                      "gaussian_blur|solarize|resize|center_crop|normalize",
                      name, section);
        return NULL;
    }
    aug_inst *a = &l->insts[l->n_insts];
    memset(a, 0, sizeof *a);
    snprintf(a->section, sizeof a->section, "%s", section);
    *rc = config_bind_plugin(cfg, reg, section, EQM_KIND_AUGMENT, &a->pl, &a->opts, err, n);
    if (*rc)
        return NULL;
    char label[160];
    snprintf(label, sizeof label, "augment/%s", name);
    a->host = host_ctx_create(label);
    if (!a->host) {
        free(a->opts);
        *rc = errf(err, n, EQM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    a->self = NULL;
    *rc = a->pl->ops.augment.create(l->api, a->host, a->opts, &a->self);
    if (*rc || !a->self) {
        if (*rc)
            errf(err, n, *rc < 0 ? *rc : EQM_ERR_STATE, "[%s] (%s): create: %s", section,
                 a->pl->desc.name, host_ctx_failure(a->host, a->pl, "create", *rc));
        else
            errf(err, n, EQM_ERR_STATE,
                 "[%s]: augment plugin '%s' (%s): create() returned EQM_OK without an "
                 "instance (*self is NULL); set *self to the plugin's state (a stateless "
                 "plugin may point it at a static object)",
                 section, a->pl->desc.name, a->pl->path);
        *rc = *rc < 0 ? *rc : EQM_ERR_STATE;
        host_ctx_destroy(a->host);
        free(a->opts);
        return NULL;
    }
    a->n_params = a->pl->ops.augment.n_params(a->self);
    const char *bad = NULL;
    if (a->n_params < 0 || a->n_params > MAX_T) {
        *rc = errf(err, n, EQM_ERR_INVAL, "[%s]: augment plugin '%s': n_params() = %d, "
                   "outside [0, %d]", section, a->pl->desc.name, a->n_params, MAX_T);
        bad = "";
    } else if (!(a->t_names = calloc((size_t)a->n_params + 1, sizeof *a->t_names))) {
        *rc = errf(err, n, EQM_ERR_NOMEM, "out of memory");
        bad = "";
    }
    for (int i = 0; !bad && i < a->n_params; i++) {
        const char *nm = a->pl->ops.augment.param_name
                             ? a->pl->ops.augment.param_name(a->self, i) : NULL;
        for (int j = 0; nm && j < i; j++)
            if (!strcmp(nm, a->t_names[j]))
                bad = nm;
        if (!nm || !nm[0] || bad) {
            *rc = errf(err, n, EQM_ERR_FORMAT,
                       "[%s]: augment plugin '%s' (%s): param_name(%d) %s%s%s; each of its "
                       "%d t fields needs its own non-empty name",
                       section, a->pl->desc.name, a->pl->path, i,
                       !nm ? "returned NULL" : bad ? "repeats the field name '" : "returned \"\"",
                       bad ? bad : "", bad ? "'" : "", a->n_params);
            bad = "";
        }
        a->t_names[i] = nm;
    }
    if (bad) {
        a->pl->ops.augment.destroy(a->self);
        host_ctx_destroy(a->host);
        free(a->opts);
        free(a->t_names);
        a->t_names = NULL;
        return NULL;
    }
    l->n_insts++;
    return a;
}

/* The next word of a list (words separated by blanks or commas, as [views] and
 * [equimod] t_fields write them) into name (cut to n - 1 bytes); the text after it, or
 * NULL when no word is left. */
const char *list_word(const char *s, char *name, size_t n)
{
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (!*s)
        return NULL;
    const char *e = s;
    while (*e && *e != ' ' && *e != '\t' && *e != ',')
        e++;
    size_t len = (size_t)(e - s) < n - 1 ? (size_t)(e - s) : n - 1;
    memcpy(name, s, len);
    name[len] = 0;
    return e;
}

static int pipe_build(eqm_loader *l, eqm_config *cfg, const eqm_registry *reg, pipeline *pp,
                      const char *key, const char *text, char *err, size_t n)
{
    memset(pp, 0, sizeof *pp);
    snprintf(pp->key, sizeof pp->key, "%s", key);
    if (!text || !text[0])
        return errf(err, n, EQM_ERR_INVAL,
                       "[views] %s is empty: list the [augment.NAME] sections of this view in "
                       "order, ending with a normalize step (e.g. %s = %s)", key, key,
                       !strcmp(key, "original") ? "norm" : "crop flip jitter gray norm");
    const char *s = text;
    while (*s) {
        char name[96];
        if (!(s = list_word(s, name, sizeof name)))
            break;
        if (pp->n >= MAX_STEPS)
            return errf(err, n, EQM_ERR_INVAL, "[views] %s: more than %d steps", key, MAX_STEPS);
        int rc = 0;
        aug_inst *a = inst_get(l, cfg, reg, name, err, n, &rc);
        if (!a)
            return rc;
        pp->steps[pp->n++] = a;
        pp->p += a->n_params;
    }
    if (pp->p > MAX_T)
        return errf(err, n, EQM_ERR_INVAL, "[views] %s: t has more than %d fields", key, MAX_T);
    return EQM_OK;
}

/* Output shape of a pipeline for an input of w x h x c; checks the F32 step is last. */
int pipe_shape(const pipeline *pp, int w, int h, int c, int *ow, int *oh, int *oc,
                      char *err, size_t n)
{
    eqm_image im = {w, h, c, w * c, EQM_PIX_U8, NULL};
    for (int i = 0; i < pp->n; i++) {
        const aug_inst *a = pp->steps[i];
        int nw, nh, nc;
        uint32_t f;
        if (im.format != EQM_PIX_U8)
            return errf(err, n, EQM_ERR_INVAL,
                           "[views] %s: step '%s' comes after the float conversion; the "
                           "normalize step must be last", pp->key, a->section + 8);
        int rc = a->pl->ops.augment.out_shape(a->self, &im, &nw, &nh, &nc, &f);
        if (rc)
            return errf(err, n, rc < 0 ? rc : EQM_ERR_STATE, "[%s]: out_shape: %s", a->section,
                        host_ctx_failure(a->host, a->pl, "out_shape", rc));
        im.w = nw;
        im.h = nh;
        im.c = nc;
        im.format = f;
        im.stride = nw * nc;
    }
    if (im.format != EQM_PIX_F32)
        return errf(err, n, EQM_ERR_INVAL,
                       "[views] %s must end with a step producing float images (plugin = "
                       "normalize)", pp->key);
    *ow = im.w;
    *oh = im.h;
    *oc = im.c;
    return EQM_OK;
}

/* The error of step a's function fn returning rc != 0: the plugin's message, or one naming
 * the plugin, function and status; never a positive status (EQM_SKIP from apply is not a
 * skipped sample: an augmentation cannot drop one). */
static int step_failed(const aug_inst *a, const char *fn, int rc, char *err, size_t n)
{
    if (rc > 0)
        return errf(err, n, EQM_ERR_STATE,
                    "[%s]: augment plugin '%s' (%s): %s() returned %d (%s), which it may not "
                    "return: only a dataset may skip a sample; an augmentation returns "
                    "EQM_OK or a failure", a->section, a->pl->desc.name, a->pl->path, fn, rc,
                    rc == EQM_SKIP ? "EQM_SKIP" : eqm_status_str(rc));
    return errf(err, n, rc, "[%s] (%s): %s: %s", a->section, a->pl->desc.name, fn,
                host_ctx_failure(a->host, a->pl, fn, rc));
}

/* The output shape of step a for record p on `in`: out_shape_p (ABI 1.3) when the step's
 * size depends on its parameters, else out_shape. */
static int step_shape(const aug_inst *a, const float *p, const eqm_image *in, int *w, int *h,
                      int *c, uint32_t *f)
{
    const eqm_augment_ops *ops = &a->pl->ops.augment;
    return ops->out_shape_p ? ops->out_shape_p(a->self, p, in, w, h, c, f)
                            : ops->out_shape(a->self, in, w, h, c, f);
}

/* t must be finite: a NaN or Inf drawn by sample is reported here, naming the field, and
 * not later as a NaN loss. A few compares per sample. */
static int t_finite(const aug_inst *a, const float *p, char *err, size_t n)
{
    for (int j = 0; j < a->n_params; j++)
        if (!isfinite(p[j]))
            return errf(err, n, EQM_ERR_NUMERIC,
                        "[%s]: augment plugin '%s' (%s): sample() wrote %g into t field '%s' "
                        "(%d of its %d); every value of t must be finite", a->section,
                        a->pl->desc.name, a->pl->path, (double)p[j], a->t_names[j], j,
                        a->n_params);
    return EQM_OK;
}

void *grow_buf(void **p, size_t *cap, size_t need)
{
    if (need <= *cap && *p)
        return *p;
    size_t nc = need + need / 4 + 256;
    void *q = NULL;
    if (posix_memalign(&q, 64, nc))
        return NULL;
    free(*p);
    *p = q;
    *cap = nc;
    return q;
}

/* Run pipeline pp on `src` with stream r, writing t to tp (pp->p floats). If dst != NULL the
 * final F32 step writes dst (packed h*w*c); if u8_out != NULL the pipeline stops before the
 * F32 step and the last 8-bit image is returned there (pointing into mem). */
int pipe_run(eqm_loader *l, const pipeline *pp, worker_mem *m, const eqm_image *src,
                    const src_geom *g, eqm_rng *r, float *tp, float *dst, eqm_image *u8_out,
                    char *err, size_t n)
{
    eqm_image cur = *src;
    const int W0 = g ? g->W : src->w, H0 = g ? g->H : src->h;
    eqm_augment_ctx ctx = {sizeof(eqm_augment_ctx), W0, H0};
    int which = 0, off = 0;
    for (int i = 0; i < pp->n; i++) {
        const aug_inst *a = pp->steps[i];
        const eqm_augment_ops *ops = &a->pl->ops.augment;
        /* a downscaled source: the first step draws and sizes for the original (t stays in
         * original pixels) and resamples the smaller image (apply_scaled, ABI 1.1) */
        const int scaled = i == 0 && g && g->M < 8;
        eqm_image full = cur;
        if (scaled) {
            full.w = W0;
            full.h = H0;
            full.stride = W0 * cur.c;
            full.data = NULL;
        }
        int rc = ops->sample(a->self, r, &ctx, scaled ? &full : &cur, tp + off);
        if (rc)
            return step_failed(a, "sample", rc, err, n);
        if ((rc = t_finite(a, tp + off, err, n)))
            return rc;
        int w, h, c;
        uint32_t f;
        rc = step_shape(a, tp + off, scaled ? &full : &cur, &w, &h, &c, &f);
        if (rc)
            return step_failed(a, ops->out_shape_p ? "out_shape_p" : "out_shape", rc, err, n);
        eqm_image out = {w, h, c, w * c, f, NULL};
        if (f == EQM_PIX_F32) {
            if (u8_out) {
                *u8_out = cur;
                return EQM_OK;
            }
            if (w != l->w || h != l->h || c != l->c)
                return errf(err, n, EQM_ERR_FORMAT,
                               "[views] %s produced %dx%dx%d, the batch holds %dx%dx%d", pp->key, w,
                               h, c, l->w, l->h, l->c);
            out.data = dst;
        } else {
            /* pick the ping-pong buffer the current image is not in */
            if (cur.data == m->buf[which])
                which ^= 1;
            size_t need = (size_t)w * h * c;
            if (!grow_buf((void **)&m->buf[which], &m->buf_cap[which], need))
                return errf(err, n, EQM_ERR_NOMEM, "out of memory");
            out.data = m->buf[which];
        }
        size_t sb = ops->scratch_bytes ? ops->scratch_bytes(a->self, &cur) : 0;
        if (sb && !grow_buf(&m->scratch, &m->scratch_cap, sb))
            return errf(err, n, EQM_ERR_NOMEM, "out of memory");
        rc = scaled ? ops->apply_scaled(a->self, tp + off, &cur, (float)g->M / 8.0f,
                                        (float)g->M / 8.0f, &out, m->scratch)
                    : ops->apply(a->self, tp + off, &cur, &out, m->scratch);
        if (rc)
            return step_failed(a, scaled ? "apply_scaled" : "apply", rc, err, n);
        off += a->n_params;
        cur = out;
    }
    if (u8_out)
        *u8_out = cur;
    return EQM_OK;
}

/* The DCT scale M/8 (M = 1, 2, 4 or 8) from which every view of the rows with keys
 * [key0, key0 + nk) of `epoch` can be made out of a W x H original: each view's first step
 * reads a box (source_box) that must keep at least its output size once scaled. Draws the
 * first steps' parameters with the rows' own streams, as pipe_run will again. */
int plan_scale(const eqm_loader *l, int64_t epoch, int64_t key0, int nk, int W, int H)
{
    float p[MAX_T];
    eqm_image full = {W, H, 3, W * 3, EQM_PIX_U8, NULL};
    eqm_augment_ctx ctx = {sizeof(eqm_augment_ctx), W, H};
    int M = 1;
    for (int kk = 0; kk < nk; kk++)
        for (int v = 0; v < l->n_pipes; v++) {
            const aug_inst *a = l->pipe[v].steps[0];
            const eqm_augment_ops *ops = &a->pl->ops.augment;
            eqm_rng r;
            l->api->rng_seed(&r, l->seed, (uint64_t)epoch, (uint64_t)(key0 + kk), (uint64_t)v);
            float box[4];
            int ow, oh, oc;
            uint32_t f;
            if (ops->sample(a->self, &r, &ctx, &full, p) ||
                step_shape(a, p, &full, &ow, &oh, &oc, &f) ||
                ops->source_box(a->self, p, W, H, box))
                return 8; /* pipe_run reports the error */
            int need = 8;
            for (int s = 1; s < 8; s *= 2)
                if (box[2] * (float)s / 8.0f >= (float)ow && box[3] * (float)s / 8.0f >= (float)oh) {
                    need = s;
                    break;
                }
            M = need > M ? need : M;
            if (M == 8)
                return 8;
        }
    return M;
}

/* Draw t of a pipeline from the dataset's image size, shapes only. */
int pipe_sample_only(const eqm_loader *l, const pipeline *pp, int w, int h, int c,
                     eqm_rng *r, float *tp, char *err, size_t n)
{
    (void)l;
    eqm_image cur = {w, h, c, w * c, EQM_PIX_U8, NULL};
    eqm_augment_ctx ctx = {sizeof(eqm_augment_ctx), w, h};
    int off = 0;
    for (int i = 0; i < pp->n; i++) {
        const aug_inst *a = pp->steps[i];
        int rc = a->pl->ops.augment.sample(a->self, r, &ctx, &cur, tp + off);
        if (rc)
            return step_failed(a, "sample", rc, err, n);
        if ((rc = t_finite(a, tp + off, err, n)))
            return rc;
        int nw, nh, nc;
        uint32_t f;
        rc = step_shape(a, tp + off, &cur, &nw, &nh, &nc, &f);
        if (rc)
            return step_failed(a, "out_shape", rc, err, n);
        cur.w = nw;
        cur.h = nh;
        cur.c = nc;
        cur.format = f;
        cur.stride = nw * nc;
        off += a->n_params;
    }
    return EQM_OK;
}


int loader_setup(eqm_loader *l, eqm_config *cfg, const eqm_registry *reg,
                        const eqm_loader_opts *o, char *err, size_t n)
{
    l->api = host_api();
    int rc = config_bind(cfg, "loader", loader_section_spec, &l->cfg, NULL, err, n);
    if (rc)
        return rc;
    rc = config_bind(cfg, "views", views_section_spec, &l->vcfg, NULL, err, n);
    if (rc)
        return rc;
    l->mode = o ? o->mode : EQM_LOADER_VIEWS;
    l->batch_size = o && o->batch_size > 0 ? o->batch_size : l->cfg.batch_size;
    l->batch_stride = l->batch_size;
    l->slice_off = 0;
    if (o && o->slice_count > 1) {
        if (o->slice_rank < 0 || o->slice_rank >= o->slice_count)
            return errf(err, n, EQM_ERR_INVAL, "loader: slice %d of %d", o->slice_rank,
                        o->slice_count);
        if (l->batch_size % o->slice_count)
            return errf(err, n, EQM_ERR_INVAL,
                        "loader.batch_size = %lld is the global batch and must be a multiple "
                        "of the %d ranks (each loads batch_size / ranks rows)",
                        (long long)l->batch_size, o->slice_count);
        l->batch_size /= o->slice_count;
        l->slice_off = (int64_t)o->slice_rank * l->batch_size;
    }
    l->n_workers = (int)(o && o->workers > 0 ? o->workers : l->cfg.workers);
    if ((rc = host_threads_check("loader.workers", l->n_workers, err, n)))
        return rc;
    if (l->n_workers <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        l->n_workers = c > 8 ? 8 : c > 0 ? (int)c : 1;
    }
    l->n_slots = (int)(o && o->prefetch > 0 ? o->prefetch : l->cfg.prefetch) + 2;
    l->shuffle = o && o->shuffle_set ? o->shuffle : l->cfg.shuffle;
    l->drop_last = o && o->drop_last_set ? o->drop_last : l->cfg.drop_last;
    {
        /* the run's base seed ([run] seed) keys every shuffle and augmentation stream */
        run_opts ro;
        memset(&ro, 0, sizeof ro);
        rc = config_bind(cfg, "run", run_spec, &ro, NULL, err, n);
        if (rc)
            return rc;
        l->seed = (uint64_t)ro.seed;
    }
    if (l->mode == EQM_LOADER_SINGLE) {
        const char *key = o && o->single_view ? o->single_view : "original";
        const char *text = !strcmp(key, "original") ? l->vcfg.original
                           : !strcmp(key, "eval_train") ? l->vcfg.eval_train
                           : !strcmp(key, "eval_test") ? l->vcfg.eval_test : NULL;
        if (!strcmp(key, "view1"))
            text = l->vcfg.view1;
        if (!strcmp(key, "view2"))
            text = l->vcfg.view2;
        if (!text && strcmp(key, "original") && strcmp(key, "eval_train") && strcmp(key, "eval_test"))
            return errf(err, n, EQM_ERR_INVAL, "loader: unknown single view '%s' (original, "
                           "eval_train, eval_test, view1, view2)", key);
        l->n_pipes = 1;
        rc = pipe_build(l, cfg, reg, &l->pipe[0], key, text, err, n);
    } else {
        l->n_pipes = 3;
        rc = pipe_build(l, cfg, reg, &l->pipe[0], "original", l->vcfg.original, err, n);
        if (!rc)
            rc = pipe_build(l, cfg, reg, &l->pipe[1], "view1", l->vcfg.view1, err, n);
        if (!rc)
            rc = pipe_build(l, cfg, reg, &l->pipe[2], "view2", l->vcfg.view2, err, n);
    }
    if (rc)
        return rc;
    /* t layout: view1's; view2 must match; [equimod] t_fields keeps some of it */
    if (l->mode == EQM_LOADER_VIEWS) {
        l->p_full = l->pipe[1].p;
        int k = 0;
        for (int i = 0; i < l->pipe[1].n; i++) {
            aug_inst *a = l->pipe[1].steps[i];
            for (int j = 0; j < a->n_params; j++)
                l->t_names_full[k++] = a->t_names[j];
        }
        k = 0;
        int same = l->pipe[2].p == l->p_full;
        for (int i = 0; same && i < l->pipe[2].n; i++) {
            aug_inst *a = l->pipe[2].steps[i];
            for (int j = 0; same && j < a->n_params; j++, k++)
                same = !strcmp(a->t_names[j], l->t_names_full[k]);
        }
        if (!same)
            return errf(err, n, EQM_ERR_INVAL,
                           "[views] view1 and view2 give different t layouts (%d vs %d fields or "
                           "other field names); both views must use the same kinds of "
                           "augmentations in the same order (set p = 0 to disable one)",
                           l->pipe[1].p, l->pipe[2].p);
        return t_select(l, cfg, err, n);
    }
    return EQM_OK;
}
