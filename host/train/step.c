/* host/train/step.c: one training step (METHOD.md §6-9; the sequence is in trainer.h):
 * BYOL target EMA, one backbone forward over the batch's views, the method's and the
 * equivariance module's losses and their backward, the backbone backward and the
 * optimizer step at the step's learning rate. The metrics line goes to report.c. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "dist/grad.h"
#include "nn/nn_internal.h"
#include "train/run.h"

/* BYOL: target <- tau*target + (1-tau)*online on every EMA tensor; returns tau. The
 * method's schedule (ABI 1.2 target_momentum); a 1.1 method gets BYOL's cosine from
 * 0.996 (TAU_BASE_V1_1). */
#define TAU_BASE_V1_1 0.996
static double ema_step(trainer *tr)
{
    eqm_model *m = &tr->m;
    const eqm_module_inst *me = &m->mod[EQM_SLOT_METHOD];
    double tau = me->ops->target_momentum
                     ? me->ops->target_momentum(me->self, tr->st.step, tr->T)
                     : sched_ema_tau(tr->st.step, tr->T, TAU_BASE_V1_1);
    int nt = model_n_tensors(m);
    for (int k = 0; k < nt; k++) {
        eqm_model_tensor t;
        if (!model_tensor(m, k, &t) && t.target)
            ema_update(t.target, t.param, t.numel, tau);
    }
    return tau;
}

/* lambda*L_equi of the 3N backbone outputs and the standardised t of both views, its
 * gradient added into tr->dh. */
static int equimod_step(trainer *tr, eqm_batch *b, eqm_module_io *eio, char *err,
                        size_t errlen)
{
    eqm_module_inst *eq = &tr->m.mod[EQM_SLOT_EQUIMOD];
    eio->size = sizeof *eio;
    eio->rows = 3 * b->n;
    eio->n_views = 3;
    eio->train = 1;
    eio->in = tr->h;
    eio->t = b->t; /* standardised by the loader's worker */
    int rc = model_call(eq, 0, eio, "forward", err, errlen);
    if (rc)
        return rc;
    eio->din = tr->dh;
    eio->loss_scale = 1.0f;
    rc = model_call(eq, 1, eio, "backward", err, errlen);
    if (rc)
        return rc;
    return EQM_OK;
}

/* Backbone forward of the views (and of the BYOL target on views 1 and 2), then the
 * method's loss and its gradient into tr->dh. bio is kept for the backward. */
static int forward_views(trainer *tr, eqm_batch *b, eqm_module_io *bio, eqm_module_io *mio,
                         char *err, size_t errlen)
{
    eqm_model *m = &tr->m;
    eqm_module_inst *bb = &m->mod[EQM_SLOT_BACKBONE], *me = &m->mod[EQM_SLOT_METHOD];
    const int N = b->n, D = bb->out_dim;
    const int rows = tr->use_equimod ? 3 * N : 2 * N;
    model_zero_grad(m);
    memset(tr->dh, 0, (size_t)rows * D * sizeof(float));
    /* the batch's views are one block: x0, x1, x2 (3N rows) or x1, x2 (2N), read in place */
    bio->size = sizeof *bio;
    bio->rows = rows;
    bio->n_views = tr->use_equimod ? 3 : 2;
    bio->train = 1;
    bio->in = tr->use_equimod ? b->x0 : b->x1;
    bio->out = tr->h;
    int rc = model_call(bb, 0, bio, "forward", err, errlen);
    if (rc)
        return rc;
    const size_t view_off = tr->use_equimod ? (size_t)N : 0;
    if (tr->byol) {
        eqm_module_io tio = {0};
        tio.size = sizeof tio;
        tio.rows = 2 * N;
        tio.n_views = 2;
        tio.train = 1;
        tio.use_target = 1;
        tio.in = b->x1;
        tio.out = tr->ht;
        rc = model_call(bb, 0, &tio, "target forward", err, errlen);
        if (rc)
            return rc;
    }
    mio->size = sizeof *mio;
    mio->rows = 2 * N;
    mio->n_views = 2;
    mio->train = 1;
    mio->in = tr->h + view_off * D;
    mio->in_target = tr->byol ? tr->ht : NULL;
    rc = model_call(me, 0, mio, "forward", err, errlen);
    if (rc)
        return rc;
    mio->din = tr->dh + view_off * D;
    mio->loss_scale = 1.0f;
    rc = model_call(me, 1, mio, "backward", err, errlen);
    if (rc)
        return rc;
    return EQM_OK;
}

/* MPI: tensor i of module `slot` holds its final gradient of this step: its floats, and
 * the zero padding up to the next tensor's 64-byte boundary (model.h), are marked ready,
 * so that a bucket starts once every float of it is final (padding and BN running
 * statistics would otherwise hold a bucket back until dist_grad_finish). Once a step. */
static void mark_tensor(trainer *tr, int slot, int i)
{
    const eqm_module_inst *mi = &tr->m.mod[slot];
    if (tr->gmark[slot][i])
        return;
    tr->gmark[slot][i] = 1;
    size_t off = mi->offset[i], end = off + mi->numel[i];
    end = (end + EQM_MODEL_ALIGN_FLOATS - 1) / EQM_MODEL_ALIGN_FLOATS * EQM_MODEL_ALIGN_FLOATS;
    if (end > tr->m.n_floats)
        end = tr->m.n_floats;
    dist_grad_ready(tr->dg, off, end - off);
}

/* MPI: the gradients of every tensor of module `slot` are final (its backward ran; those
 * it declared final through api->grads_final are marked already). */
static void grads_ready(trainer *tr, int slot)
{
    if (!tr->dg || !tr->m.mod[slot].plugin)
        return;
    for (int i = 0; i < tr->m.mod[slot].n_tensors; i++)
        mark_tensor(tr, slot, i);
}

/* MPI, at the start of a step: nothing marked yet, and the tensors without a gradient
 * (EQM_T_BUFFER: BN running statistics; their gradient memory stays 0) are final now. */
static void grads_begin(trainer *tr)
{
    if (!tr->dg)
        return;
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        const eqm_module_inst *mi = &tr->m.mod[s];
        if (!mi->plugin)
            continue;
        memset(tr->gmark[s], 0, (size_t)mi->n_tensors);
        for (int i = 0; i < mi->n_tensors; i++)
            if (!mi->grad[i])
                mark_tensor(tr, s, i);
    }
}

/* api->grads_final (ABI 1.4) of a module under MPI: tensors [first, first + count) of the
 * module whose context is h hold their final gradient; their all-reduce may start while
 * the rest of its backward runs. */
static int grads_final_hook(void *ctx, eqm_host *h, int first, int count)
{
    trainer *tr = ctx;
    int slot = -1;
    for (int s = 0; s < EQM_SLOT_COUNT; s++)
        if (tr->m.mod[s].plugin && tr->m.mod[s].ctx == h)
            slot = s;
    if (slot < 0)
        return EQM_OK;
    const eqm_module_inst *mi = &tr->m.mod[slot];
    if (first < 0 || count < 0 || first > mi->n_tensors || count > mi->n_tensors - first)
        return host_ctx_set_error(h, EQM_ERR_INVAL, "grads_final(%d, %d): the module has "
                                  "tensors 0..%d", first, count, mi->n_tensors - 1);
    for (int i = first; i < first + count; i++)
        if (mi->grad[i] && tr->gmark[slot][i])
            return host_ctx_set_error(h, EQM_ERR_INVAL, "grads_final: tensor %d ('%s') was "
                                      "declared final twice in one backward", i,
                                      mi->info[i].name);
    for (int i = first; i < first + count; i++)
        mark_tensor(tr, slot, i);
    return EQM_OK;
}

int step_grads_setup(trainer *tr, char *err, size_t errlen)
{
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        eqm_module_inst *mi = &tr->m.mod[s];
        if (!mi->plugin)
            continue;
        tr->gmark[s] = calloc((size_t)(mi->n_tensors ? mi->n_tensors : 1), 1);
        if (!tr->gmark[s])
            return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
        host_ctx_set_grads_hook(mi->ctx, grads_final_hook, tr);
    }
    return EQM_OK;
}

/* MPI: the logged values averaged over the ranks (the gathered NT-Xent losses are the
 * same everywhere already; BYOL's loss and the metrics are means over local rows, so the
 * average of equal-sized slices is the global mean). */
static int average_logged(step_log *s, eqm_module_io *mio, eqm_module_io *eio, char *err,
                          size_t errlen)
{
    double v[2 + 2 * EQM_MAX_METRICS];
    int n = 0;
    v[n++] = s->l_inv;
    v[n++] = s->l_equi;
    eqm_module_io *ios[2] = {mio, eio};
    for (int k = 0; k < 2; k++)
        for (int i = 0; ios[k] && i < ios[k]->n_metrics && i < EQM_MAX_METRICS; i++)
            v[n++] = ios[k]->metrics[i].value;
    int rc = dist_allreduce_f64(v, (size_t)n);
    if (rc)
        return errf(err, errlen, rc, "metrics: %s", dist_error());
    double R = dist_size();
    n = 0;
    s->l_inv = v[n++] / R;
    s->l_equi = v[n++] / R;
    for (int k = 0; k < 2; k++)
        for (int i = 0; ios[k] && i < ios[k]->n_metrics && i < EQM_MAX_METRICS; i++)
            ios[k]->metrics[i].value = v[n++] / R;
    return EQM_OK;
}

static int step_run(trainer *tr, eqm_batch *b, acc_terms *acc, char *err, size_t errlen);

/* The step at train.precision: the host's nn precision is set for the step only, so the
 * kNN evaluation and everything outside the step run fp32. */
int train_step(trainer *tr, eqm_batch *b, acc_terms *acc, char *err, size_t errlen)
{
    nn_precision_set(tr->to.precision == 1 ? EQM_NN_BF16 : 0);
    int rc = step_run(tr, b, acc, err, errlen);
    nn_precision_set(0);
    return rc;
}

static int step_run(trainer *tr, eqm_batch *b, acc_terms *acc, char *err, size_t errlen)
{
    eqm_module_inst *bb = &tr->m.mod[EQM_SLOT_BACKBONE];
    double t0 = now_s();
    eqm_loader_stats ls0;
    loader_stats(tr->ld, &ls0);
    step_log s;
    memset(&s, 0, sizeof s);
    s.tau = tr->byol ? ema_step(tr) : NAN;
    eqm_module_io bio = {0}, mio = {0}, eio = {0};
    grads_begin(tr);
    int rc = forward_views(tr, b, &bio, &mio, err, errlen);
    if (rc)
        return rc;
    s.l_inv = mio.loss;
    grads_ready(tr, EQM_SLOT_METHOD);
    if (tr->use_equimod) {
        if ((rc = equimod_step(tr, b, &eio, err, errlen)))
            return rc;
        s.l_equi = eio.loss;
        grads_ready(tr, EQM_SLOT_EQUIMOD);
    }
    if (tr->dg && (rc = average_logged(&s, &mio, tr->use_equimod ? &eio : NULL, err, errlen)))
        return rc;
    s.loss = s.l_inv + s.l_equi;
    if (!isfinite(s.loss))
        return errf(err, errlen, EQM_ERR_NUMERIC,
                    "loss is %g at step %lld (L_inv %g, lambda*L_equi %g); lower optim.lr or "
                    "check the data",
                    s.loss, (long long)tr->st.step, s.l_inv, s.l_equi);
    bio.dout = tr->dh;
    bio.din = NULL;
    rc = model_call(bb, 1, &bio, "backward", err, errlen);
    if (rc)
        return rc;
    /* the backbone's tensors it did not declare final (api->grads_final) start in finish */
    if (tr->dg && (rc = dist_grad_finish(tr->dg, err, errlen))) /* average over ranks */
        return rc;
    s.lr = sched_warmup_cosine(tr->st.step, tr->oo.lr, tr->W, tr->T, tr->oo.warmup_start,
                               tr->oo.final_lr);
    rc = optim_step(&tr->opt, s.lr);
    if (rc)
        return errf(err, errlen, rc, "optimizer step %lld: non-finite gradient",
                    (long long)tr->st.step);
    s.dt = now_s() - t0;
    eqm_loader_stats ls1;
    loader_stats(tr->ld, &ls1);
    s.stall_ms = (ls1.stall_ns - ls0.stall_ns) / 1e6;
    s.rows = b->n * dist_size(); /* images of the global batch */
    s.method = &mio;
    s.equimod = tr->use_equimod ? &eio : NULL;
    report_step(tr, &s, acc);
    if (tr->dg && tr->to.check_params_every > 0 && tr->st.step % tr->to.check_params_every == 0) {
        char what[64];
        snprintf(what, sizeof what, "parameters after step %lld", (long long)tr->st.step);
        if ((rc = dist_check_identical(tr->m.params, tr->m.n_floats * sizeof(float), what, err,
                                       errlen)))
            return rc;
    }
    return EQM_OK;
}
