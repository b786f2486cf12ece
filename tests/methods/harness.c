/* tests/methods/harness.c: see harness.h. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

static const char *kind_dir(int kind)
{
    switch (kind) {
    case EQM_KIND_BACKBONE: return "backbone";
    case EQM_KIND_METHOD: return "method";
    case EQM_KIND_EQUIMOD: return "equimod";
    default: return "?";
    }
}

/* The plugins as the host finds them: $EQUIMOD_PLUGIN_PATH (make check sets it to the
 * build's plugin-dir), else $EQM_BUILDDIR/plugin-dir. Returns the number loaded. */
static int load_plugins(eqm_registry *r, char *where, size_t n)
{
    const char *b = getenv("EQM_BUILDDIR");
    if (getenv("EQUIMOD_PLUGIN_PATH") || !b) {
        snprintf(where, n, "$EQUIMOD_PLUGIN_PATH=%s", getenv("EQUIMOD_PLUGIN_PATH") ?
                 getenv("EQUIMOD_PLUGIN_PATH") : "(unset)");
        return registry_scan(r, NULL, 0);
    }
    snprintf(where, n, "%s/plugin-dir", b);
    const char *dirs[1] = {where};
    return registry_scan(r, dirs, 1);
}

static int fill_option(hmod *m, const eqm_param_spec *p, const char *text, char *err,
                       size_t errlen)
{
    /* STRING options point at the text: keep a copy for the instance's lifetime */
    if (m->n_opt_text == 32) {
        snprintf(err, errlen, "too many options");
        return EQM_ERR_INVAL;
    }
    char *copy = strdup(!strcmp(text, "-") ? "" : text);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return EQM_ERR_NOMEM;
    }
    m->opt_text[m->n_opt_text++] = copy;
    char perr[256];
    int rc = param_parse(p, copy, (char *)m->opts + p->offset, perr, sizeof perr);
    if (rc < 0)
        snprintf(err, errlen, "option %s = \"%s\": %s", p->key, text, perr);
    return rc;
}

int hmod_open(hmod *m, int kind, const char *name, const char *const *overrides, int in_dim,
              int p_dim, int max_rows, char *err, size_t errlen)
{
    char path[1200];
    memset(m, 0, sizeof *m);
    m->reg = registry_create();
    if (!m->reg) {
        snprintf(err, errlen, "out of memory");
        return EQM_ERR_NOMEM;
    }
    int lrc = load_plugins(m->reg, path, sizeof path);
    const eqm_plugin *pl = registry_find(m->reg, kind, name);
    if (!pl) {
        snprintf(err, errlen, "%s plugin %s not loaded (%d plugins found in %s)",
                 kind_dir(kind), name, lrc, path);
        goto fail;
    }
    m->desc = &pl->desc;
    m->ops = &pl->ops.module;
    m->api = host_api();
    m->host = host_ctx_create(name);
    m->opts = calloc(1, m->desc->params_size ? m->desc->params_size : 1);
    if (!m->host || !m->opts) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (const eqm_param_spec *p = m->desc->params; p && p->key; p++) {
        const char *text = p->def ? p->def : "";
        for (const char *const *o = overrides; o && o[0]; o += 2)
            if (!strcmp(o[0], p->key))
                text = o[1];
        if (fill_option(m, p, *text ? text : "-", err, errlen) < 0)
            goto fail;
    }
    for (const char *const *o = overrides; o && o[0]; o += 2) {
        const eqm_param_spec *p = m->desc->params;
        while (p && p->key && strcmp(p->key, o[0]))
            p++;
        if (!p || !p->key) {
            snprintf(err, errlen, "%s has no option %s", name, o[0]);
            goto fail;
        }
    }
    eqm_module_cfg cfg = {sizeof cfg, 0, 0, 0, in_dim, p_dim, max_rows, 0};
    int rc = m->ops->create(m->api, m->host, m->opts, &cfg, &m->self);
    if (rc < 0) {
        snprintf(err, errlen, "create: %s", host_ctx_error(m->host));
        m->self = NULL;
        goto fail;
    }
    m->max_rows = max_rows;
    m->n = m->ops->n_tensors(m->self);
    m->info = calloc((size_t)m->n, sizeof *m->info);
    m->count = calloc((size_t)m->n, sizeof *m->count);
    m->params = calloc((size_t)m->n, sizeof(float *));
    m->grads = calloc((size_t)m->n, sizeof(float *));
    m->target = calloc((size_t)m->n, sizeof(float *));
    if (!m->info || !m->count || !m->params || !m->grads || !m->target)
        goto oom;
    for (int i = 0; i < m->n; i++) {
        if (m->ops->tensor_info(m->self, i, &m->info[i]) < 0) {
            snprintf(err, errlen, "tensor_info(%d): %s", i, host_ctx_error(m->host));
            goto fail;
        }
        size_t c = 1;
        for (int d = 0; d < m->info[i].ndim; d++)
            c *= (size_t)m->info[i].shape[d];
        m->count[i] = c;
        m->params[i] = calloc(c, sizeof(float));
        if (!m->params[i])
            goto oom;
        if (!(m->info[i].flags & EQM_T_BUFFER) && !(m->grads[i] = calloc(c, sizeof(float))))
            goto oom;
        if ((m->ops->flags & EQM_MODULE_NEEDS_TARGET) && (m->info[i].flags & EQM_T_EMA) &&
            !(m->target[i] = calloc(c, sizeof(float))))
            goto oom;
    }
    m->act_floats = m->ops->act_floats(m->self, max_rows);
    m->act = calloc(m->act_floats ? m->act_floats : 1, sizeof(float));
    if (!m->act)
        goto oom;
    eqm_module_bind b = {sizeof b, m->params, m->grads,
                         (m->ops->flags & EQM_MODULE_NEEDS_TARGET) ? m->target : NULL, m->act};
    if (m->ops->bind(m->self, &b) < 0) {
        snprintf(err, errlen, "bind: %s", host_ctx_error(m->host));
        goto fail;
    }
    return EQM_OK;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    hmod_close(m);
    return EQM_ERR_INVAL;
}

void hmod_close(hmod *m)
{
    if (m->self)
        m->ops->destroy(m->self);
    for (int i = 0; i < m->n; i++) {
        if (m->params)
            free(m->params[i]);
        if (m->grads)
            free(m->grads[i]);
        if (m->target)
            free(m->target[i]);
    }
    free(m->params);
    free(m->grads);
    free(m->target);
    free(m->info);
    free(m->count);
    free(m->act);
    for (int i = 0; i < m->n_opt_text; i++)
        free(m->opt_text[i]);
    free(m->opts);
    if (m->host)
        host_ctx_destroy(m->host);
    if (m->reg)
        registry_destroy(m->reg);
    memset(m, 0, sizeof *m);
}

int hmod_find(const hmod *m, const char *tensor_name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->info[i].name, tensor_name))
            return i;
    return -1;
}

void hmod_zero_grads(hmod *m)
{
    for (int i = 0; i < m->n; i++)
        if (m->grads[i])
            memset(m->grads[i], 0, m->count[i] * sizeof(float));
}

int hmod_init(hmod *m, uint64_t seed)
{
    eqm_rng rng;
    m->api->rng_seed(&rng, seed, 1, 2, 3);
    return m->ops->init(m->self, &rng);
}

int hmod_forward(hmod *m, eqm_module_io *io, int rows, int train, const float *in,
                 const float *in_target, const float *t)
{
    memset(io, 0, sizeof *io);
    io->size = sizeof *io;
    io->rows = rows;
    io->train = train;
    io->in = in;
    io->in_target = in_target;
    io->t = t;
    io->loss_scale = 1.0f;
    return m->ops->forward(m->self, io);
}

int hmod_backward(hmod *m, eqm_module_io *io, float *din, float loss_scale)
{
    io->din = din;
    io->loss_scale = loss_scale;
    return m->ops->backward(m->self, io);
}

const char *hmod_error(const hmod *m) { return host_ctx_error(m->host); }

/* --------------------------------------------------------------- fixtures ------ */

int hfx_load(hfx *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: %s (regenerate with /usr/bin/python3 "
                 "tests/methods/gen_fixtures.py)", path, strerror(errno));
        return EQM_ERR_IO;
    }
    char tok[160];
    int line = 0;
    while (fscanf(fp, "%159s", tok) == 1) {
        line++;
        if (tok[0] == '#') {
            int c;
            while ((c = fgetc(fp)) != EOF && c != '\n')
                ;
            continue;
        }
        if (f->n == f->cap) {
            int cap = f->cap ? 2 * f->cap : 64;
            hfx_entry *e = realloc(f->e, (size_t)cap * sizeof *e);
            if (!e)
                goto bad;
            f->e = e;
            f->cap = cap;
        }
        hfx_entry *e = &f->e[f->n];
        memset(e, 0, sizeof *e);
        e->kind = tok[0];
        if (strcmp(tok, "opt") && strcmp(tok, "dim") && strcmp(tok, "t"))
            goto bad;
        if (fscanf(fp, "%127s", e->name) != 1)
            goto bad;
        if (e->kind == 'o') {
            if (fscanf(fp, "%127s", e->text) != 1)
                goto bad;
        } else if (e->kind == 'd') {
            if (fscanf(fp, "%d", &e->n) != 1)
                goto bad;
        } else {
            if (fscanf(fp, "%d", &e->n) != 1 || e->n < 1 || e->n > (1 << 22))
                goto bad;
            e->v = malloc((size_t)e->n * sizeof(float));
            if (!e->v)
                goto bad;
            for (int i = 0; i < e->n; i++)
                if (fscanf(fp, "%f", &e->v[i]) != 1) {
                    free(e->v);
                    goto bad;
                }
        }
        f->n++;
    }
    fclose(fp);
    return EQM_OK;
bad:
    snprintf(err, errlen, "%s: entry %d (after \"%s\"): malformed fixture; regenerate with "
             "/usr/bin/python3 tests/methods/gen_fixtures.py", path, line, tok);
    fclose(fp);
    hfx_free(f);
    return EQM_ERR_FORMAT;
}

void hfx_free(hfx *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->e[i].v);
    free(f->e);
    memset(f, 0, sizeof *f);
}

const hfx_entry *hfx_get(const hfx *f, char kind, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (f->e[i].kind == kind && !strcmp(f->e[i].name, name))
            return &f->e[i];
    return NULL;
}

int hfx_options(const hfx *f, const char **pairs, int max_pairs)
{
    int k = 0;
    for (int i = 0; i < f->n && k + 1 < 2 * max_pairs; i++)
        if (f->e[i].kind == 'o') {
            pairs[k++] = f->e[i].name;
            pairs[k++] = f->e[i].text;
        }
    pairs[k] = NULL;
    return k / 2;
}

int hfx_dim(const hfx *f, const char *name, int def)
{
    const hfx_entry *e = hfx_get(f, 'd', name);
    return e ? e->n : def;
}
