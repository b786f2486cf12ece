/* host/train/step.c: one training step (METHOD.md §6-9; the sequence is in trainer.h):
 * BYOL target EMA, one backbone forward over the batch's views, the method's and the
 * equivariance module's losses and their backward, the backbone backward and the
 * optimizer step at the step's learning rate. The metrics line goes to report.c. */
#include "config.h"

#include <math.h>
#include <stdio.h>
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

/* MPI: the gradients of every tensor of module `slot` are final (its backward ran):
 * their all-reduce may start while the backbone's backward runs. */
static void grads_ready(trainer *tr, int slot)
{
    if (!tr->dg)
        return;
    int nt = model_n_tensors(&tr->m);
    for (int k = 0; k < nt; k++) {
        eqm_model_tensor t;
        if (!model_tensor(&tr->m, k, &t) && t.grad && t.slot == slot)
            dist_grad_ready(tr->dg, t.offset, t.numel);
    }
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
