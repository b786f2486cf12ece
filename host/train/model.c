/* host/train/model.c: module instances and the model's flat buffers (see model.h).
 *
 * Leaves out: optimizer state (the trainer owns it, laid out with the same offsets) and the
 * EMA update rule (BYOL's tau schedule belongs to the trainer); this file only places,
 * binds, initialises and frees.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/model.h"

#define ALIGN_UP(x) (((x) + EQM_MODEL_ALIGN_FLOATS - 1) / EQM_MODEL_ALIGN_FLOATS * EQM_MODEL_ALIGN_FLOATS)

static const char *inst_label(const eqm_module_inst *mi)
{
    return mi->ctx ? mi->ctx->label : "module";
}

static int slot_of_kind(uint32_t kind)
{
    switch (kind) {
    case EQM_KIND_BACKBONE: return EQM_SLOT_BACKBONE;
    case EQM_KIND_METHOD: return EQM_SLOT_METHOD;
    case EQM_KIND_EQUIMOD: return EQM_SLOT_EQUIMOD;
    default: return -1;
    }
}

void model_reset(eqm_model *m) { memset(m, 0, sizeof *m); }

int model_add_module(eqm_model *m, const eqm_plugin *plugin, const void *opts,
                     const eqm_module_cfg *cfg, char *err, size_t errlen)
{
    if (!m || !plugin || !cfg)
        return errf(err, errlen, EQM_ERR_INVAL, "model_add_module: NULL argument");
    if (m->finalized)
        return errf(err, errlen, EQM_ERR_STATE,
                    "model_add_module(%s): model already finalized", plugin->desc.name);
    int slot = slot_of_kind(plugin->desc.kind);
    const char *kn = kind_name((int)plugin->desc.kind);
    if (slot < 0)
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s/%s: not a module plugin (kind must be backbone, method or equimod)",
                    kn ? kn : "?", plugin->desc.name);
    eqm_module_inst *mi = &m->mod[slot];
    if (mi->plugin)
        return errf(err, errlen, EQM_ERR_INVAL, "%s/%s: the model already has a %s (%s)", kn,
                    plugin->desc.name, kn, mi->plugin->desc.name);
    char label[96];
    snprintf(label, sizeof label, "%s/%s", kn, plugin->desc.name);
    eqm_host *ctx = host_ctx_create(label);
    if (!ctx)
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", label);
    eqm_module_cfg c = *cfg;
    c.size = sizeof c;
    void *self = NULL;
    int st = plugin->ops.module.create(host_api(), ctx, opts, &c, &self);
    if (st || !self) {
        if (st)
            errf(err, errlen, st < 0 ? st : EQM_ERR_STATE, "%s: create failed: %s", label,
                 host_ctx_failure(ctx, plugin, "create", st));
        else
            errf(err, errlen, EQM_ERR_STATE, "%s (%s): create() returned EQM_OK without an "
                 "instance (*self is NULL); set *self to the plugin's state", label,
                 plugin->path);
        host_ctx_destroy(ctx);
        return st < 0 ? st : EQM_ERR_STATE;
    }
    memset(mi, 0, sizeof *mi);
    mi->plugin = plugin;
    mi->ops = &plugin->ops.module;
    mi->self = self;
    mi->ctx = ctx;
    mi->opts = opts;
    mi->cfg = c;
    return EQM_OK;
}

/* Checked a*b and a+b on size_t. */
static int mul_ok(size_t a, size_t b, size_t *r)
{
    if (a && b > SIZE_MAX / a)
        return 0;
    *r = a * b;
    return 1;
}
static int add_ok(size_t a, size_t b, size_t *r)
{
    if (b > SIZE_MAX - a)
        return 0;
    *r = a + b;
    return 1;
}

static int query_tensors(eqm_module_inst *mi, char *err, size_t errlen)
{
    const char *lb = inst_label(mi);
    int n = mi->ops->n_tensors(mi->self);
    if (n < 0)
        return errf(err, errlen, EQM_ERR_STATE, "%s: n_tensors returned %d", lb, n);
    mi->n_tensors = n;
    size_t k = n ? (size_t)n : 1;
    mi->info = calloc(k, sizeof *mi->info);
    mi->offset = calloc(k, sizeof *mi->offset);
    mi->numel = calloc(k, sizeof *mi->numel);
    mi->param = calloc(k, sizeof *mi->param);
    mi->grad = calloc(k, sizeof *mi->grad);
    if (!mi->info || !mi->offset || !mi->numel || !mi->param || !mi->grad)
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", lb);
    for (int i = 0; i < n; i++) {
        eqm_tensor_info *t = &mi->info[i];
        int st = mi->ops->tensor_info(mi->self, i, t);
        if (st)
            return errf(err, errlen, st < 0 ? st : EQM_ERR_STATE, "%s: tensor_info(%d): %s", lb,
                        i, host_ctx_failure(mi->ctx, mi->plugin, "tensor_info", st));
        if (!t->name || !t->name[0])
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "%s (%s): tensor_info(%d) returned EQM_OK but left the tensor unnamed "
                        "(info->name %s); it must fill name, ndim, shape and flags of each of "
                        "the %d tensors n_tensors() declares",
                        lb, mi->plugin->path, i, t->name ? "is \"\"" : "is NULL", n);
        if (t->ndim < 1 || t->ndim > 4)
            return errf(err, errlen, EQM_ERR_FORMAT, "%s: tensor '%s' has ndim %d (1..4)", lb,
                        t->name, t->ndim);
        size_t ne = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] <= 0 || !mul_ok(ne, (size_t)t->shape[d], &ne))
                return errf(err, errlen, EQM_ERR_FORMAT,
                            "%s: tensor '%s' has a bad dimension %d (%d)", lb, t->name, d,
                            t->shape[d]);
        }
        mi->numel[i] = ne;
        for (int j = 0; j < i; j++)
            if (!strcmp(mi->info[j].name, t->name))
                return errf(err, errlen, EQM_ERR_FORMAT, "%s: duplicate tensor name '%s'", lb,
                            t->name);
    }
    return EQM_OK;
}

int model_finalize(eqm_model *m, char *err, size_t errlen)
{
    if (m->finalized)
        return errf(err, errlen, EQM_ERR_STATE, "model_finalize: called twice");
    if (!m->mod[EQM_SLOT_BACKBONE].plugin)
        return errf(err, errlen, EQM_ERR_INVAL, "model_finalize: the model has no backbone");
    const eqm_host_api *api = host_api();
    m->has_target = 0;
    for (int s = 0; s < EQM_SLOT_COUNT; s++)
        if (m->mod[s].plugin && (m->mod[s].ops->flags & EQM_MODULE_NEEDS_TARGET))
            m->has_target = 1;

    /* Offsets and sizes. */
    size_t total = 0, n_act = 0, trainable = 0;
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        eqm_module_inst *mi = &m->mod[s];
        if (!mi->plugin)
            continue;
        int st = query_tensors(mi, err, errlen);
        if (st < 0)
            return st;
        for (int i = 0; i < mi->n_tensors; i++) {
            mi->offset[i] = total;
            if (!add_ok(total, mi->numel[i], &total) ||
                total > SIZE_MAX - EQM_MODEL_ALIGN_FLOATS)
                return errf(err, errlen, EQM_ERR_NOMEM, "%s: parameter count overflows",
                            inst_label(mi));
            total = ALIGN_UP(total);
            if (!(mi->info[i].flags & EQM_T_BUFFER))
                trainable += mi->numel[i];
        }
        mi->act_floats = mi->ops->act_floats(mi->self, mi->cfg.max_rows);
        if (mi->act_floats > SIZE_MAX / sizeof(float) / 2 ||
            !add_ok(n_act, ALIGN_UP(mi->act_floats), &n_act))
            return errf(err, errlen, EQM_ERR_NOMEM, "%s: activation size overflows",
                        inst_label(mi));
        if (s == EQM_SLOT_BACKBONE) {
            if (!mi->ops->out_dim)
                return errf(err, errlen, EQM_ERR_STATE, "%s: backbone has no out_dim",
                            inst_label(mi));
            mi->out_dim = mi->ops->out_dim(mi->self);
        } else if ((mi->ops->flags & EQM_MODULE_EMBEDDING) && mi->ops->out_dim) {
            mi->out_dim = mi->ops->out_dim(mi->self); /* the embedding's width */
        }
    }
    m->n_floats = total;
    m->n_trainable = trainable;
    m->n_act = n_act;
    size_t bytes;
    if (!mul_ok(total ? total : 1, sizeof(float), &bytes))
        return errf(err, errlen, EQM_ERR_NOMEM, "model: parameter buffer size overflows");
    m->params = api->alloc(NULL, bytes, 64);
    m->grads = api->alloc(NULL, bytes, 64);
    if (m->has_target)
        m->target = api->alloc(NULL, bytes, 64);
    size_t abytes;
    if (!mul_ok(n_act ? n_act : 1, sizeof(float), &abytes))
        return errf(err, errlen, EQM_ERR_NOMEM, "model: activation arena size overflows");
    m->act = api->alloc(NULL, abytes, 64);
    if (!m->params || !m->grads || (m->has_target && !m->target) || !m->act)
        return errf(err, errlen, EQM_ERR_NOMEM,
                    "model: out of memory for %zu parameter floats and %zu activation floats "
                    "(%.1f MiB)\nhint: lower the batch size",
                    total, n_act, (double)abytes / 1048576.0);

    /* Bind. */
    size_t act_off = 0;
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        eqm_module_inst *mi = &m->mod[s];
        if (!mi->plugin)
            continue;
        int with_target = m->has_target && s != EQM_SLOT_EQUIMOD;
        if (with_target) {
            mi->target = calloc(mi->n_tensors ? (size_t)mi->n_tensors : 1, sizeof(float *));
            if (!mi->target)
                return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", inst_label(mi));
        }
        for (int i = 0; i < mi->n_tensors; i++) {
            mi->param[i] = m->params + mi->offset[i];
            mi->grad[i] = (mi->info[i].flags & EQM_T_BUFFER) ? NULL : m->grads + mi->offset[i];
            if (with_target)
                mi->target[i] =
                    (mi->info[i].flags & EQM_T_EMA) ? m->target + mi->offset[i] : NULL;
        }
        mi->act = m->act + act_off;
        act_off += ALIGN_UP(mi->act_floats);
        eqm_module_bind b;
        memset(&b, 0, sizeof b);
        b.size = sizeof b;
        b.params = mi->param;
        b.grads = mi->grad;
        b.target = mi->target;
        b.act = mi->act;
        int st = mi->ops->bind(mi->self, &b);
        if (st < 0)
            return errf(err, errlen, st, "%s: bind failed: %s", inst_label(mi),
                        host_ctx_failure(mi->ctx, mi->plugin, "bind", st));
    }
    m->finalized = 1;
    return EQM_OK;
}

int model_call(eqm_module_inst *mi, int backward, eqm_module_io *io, const char *what,
               char *err, size_t errlen)
{
    const int bb = mi->plugin->desc.kind == EQM_KIND_BACKBONE;
    /* a method's embedding forward (EQM_MODULE_EMBEDDING): out = z, no loss */
    const int emb = !bb && !backward && !io->train && io->out &&
                    mi->plugin->desc.kind == EQM_KIND_METHOD &&
                    (mi->ops->flags & EQM_MODULE_EMBEDDING);
    const size_t n_out = (bb || emb) && !backward ? (size_t)io->rows * (size_t)mi->out_dim : 0;
    if (n_out) /* unwritten outputs stay NaN and are caught below */
        for (size_t i = 0; i < n_out; i++)
            io->out[i] = NAN;
    if (!bb && !emb && !backward)
        io->loss = NAN;
    int st = backward ? mi->ops->backward(mi->self, io) : mi->ops->forward(mi->self, io);
    if (st)
        return errf(err, errlen, st < 0 ? st : EQM_ERR_STATE, "%s %s: %s", inst_label(mi), what,
                    host_ctx_failure(mi->ctx, mi->plugin, backward ? "backward" : "forward",
                                     st));
    for (size_t i = 0; i < n_out; i++)
        if (isnan(io->out[i]))
            return errf(err, errlen, EQM_ERR_NUMERIC,
                        "%s (%s) %s: output %s[%zu][%zu] of the %d x %d it declares (rows x "
                        "out_dim) is NaN: forward did not write it (it must write every "
                        "output), or computed NaN (then lower optim.lr or check the data)",
                        inst_label(mi), mi->plugin->path, what, bb ? "h" : "z",
                        i / (size_t)mi->out_dim, i % (size_t)mi->out_dim, io->rows, mi->out_dim);
    if (!bb && !emb && !backward && isnan(io->loss))
        return errf(err, errlen, EQM_ERR_NUMERIC,
                    "%s (%s) %s: io->loss is NaN: forward did not set it (it must), or "
                    "computed NaN (then lower optim.lr or check the data)",
                    inst_label(mi), mi->plugin->path, what);
    return EQM_OK;
}

void model_copy_to_target(eqm_model *m)
{
    if (!m->target)
        return;
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        eqm_module_inst *mi = &m->mod[s];
        if (!mi->plugin || !mi->target)
            continue;
        for (int i = 0; i < mi->n_tensors; i++)
            if (mi->target[i])
                memcpy(mi->target[i], mi->param[i], mi->numel[i] * sizeof(float));
    }
}

int model_init(eqm_model *m, uint64_t seed, char *err, size_t errlen)
{
    if (!m->finalized)
        return errf(err, errlen, EQM_ERR_STATE, "model_init: model not finalized");
    const eqm_host_api *api = host_api();
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        eqm_module_inst *mi = &m->mod[s];
        if (!mi->plugin)
            continue;
        eqm_rng r;
        api->rng_seed(&r, seed, 0x6d6f64656cULL, (uint64_t)s, 0);
        int st = mi->ops->init(mi->self, &r);
        if (st < 0)
            return errf(err, errlen, st, "%s: init failed: %s", inst_label(mi),
                        host_ctx_failure(mi->ctx, mi->plugin, "init", st));
    }
    model_copy_to_target(m);
    return EQM_OK;
}

void model_zero_grad(eqm_model *m)
{
    if (m->grads)
        memset(m->grads, 0, m->n_floats * sizeof(float));
}

int model_n_tensors(const eqm_model *m)
{
    int n = 0;
    for (int s = 0; s < EQM_SLOT_COUNT; s++)
        if (m->mod[s].plugin)
            n += m->mod[s].n_tensors;
    return n;
}

int model_tensor(const eqm_model *m, int k, eqm_model_tensor *out)
{
    if (k < 0)
        return EQM_ERR_INVAL;
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        const eqm_module_inst *mi = &m->mod[s];
        if (!mi->plugin)
            continue;
        if (k < mi->n_tensors) {
            out->slot = s;
            out->index = k;
            out->info = &mi->info[k];
            out->offset = mi->offset[k];
            out->numel = mi->numel[k];
            out->param = mi->param[k];
            out->grad = mi->grad[k];
            out->target = mi->target ? mi->target[k] : NULL;
            return EQM_OK;
        }
        k -= mi->n_tensors;
    }
    return EQM_ERR_INVAL;
}

int model_find(const eqm_model *m, int slot, const char *name)
{
    if (slot < 0 || slot >= EQM_SLOT_COUNT || !m->mod[slot].plugin)
        return -1;
    const eqm_module_inst *mi = &m->mod[slot];
    for (int i = 0; i < mi->n_tensors; i++)
        if (mi->info && !strcmp(mi->info[i].name, name))
            return i;
    return -1;
}

void model_destroy(eqm_model *m)
{
    if (!m)
        return;
    const eqm_host_api *api = host_api();
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        eqm_module_inst *mi = &m->mod[s];
        if (!mi->plugin)
            continue;
        if (mi->self)
            mi->ops->destroy(mi->self);
        host_ctx_destroy(mi->ctx);
        free(mi->info);
        free(mi->offset);
        free(mi->numel);
        free(mi->param);
        free(mi->grad);
        free(mi->target);
    }
    api->free(NULL, m->params);
    api->free(NULL, m->grads);
    api->free(NULL, m->target);
    api->free(NULL, m->act);
    memset(m, 0, sizeof *m);
}
