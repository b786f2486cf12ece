/* host/train/linear.c: the linear probe of a model (linear_of_model, trainer.h): the
 * METHOD.md §10 protocol (train features of the eval_train view recomputed every epoch)
 * or the fast mode (cached un-augmented features), then top-1/top-5 on the test split.
 * Used by `equimod eval linear` and by training's [eval] linear_at_end. The backbone runs
 * in eval mode in chunks of at most its max_rows (BN running statistics: chunking does not
 * change a feature), so the probe batch does not depend on the model's row capacity. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/run.h"

/* Features of b->n rows into f, in chunks of at most max_rows (model_call: a failure or
 * an output the backbone left unwritten is named in err). */
static int forward_rows(eqm_module_inst *bb, const eqm_batch *b, float *f, char *err,
                        size_t errlen)
{
    const int D = bb->out_dim, hwc = b->w * b->h * b->c;
    int max = bb->cfg.max_rows > 0 ? bb->cfg.max_rows : b->n;
    for (int r = 0; r < b->n; r += max) {
        eqm_module_io io = {0};
        io.size = sizeof io;
        io.rows = b->n - r < max ? b->n - r : max;
        io.train = 0;
        io.in = b->x0 + (size_t)r * hwc;
        io.out = f + (size_t)r * D;
        int rc = model_call(bb, 0, &io, "forward (linear probe)", err, errlen);
        if (rc)
            return rc;
    }
    return EQM_OK;
}

static eval_linear_cfg linear_cfg(const eval_opts *eo)
{
    eval_linear_cfg lc = {(int)eo->linear_epochs, (int)eo->linear_batch, eo->linear_lr,
                          eo->linear_final_lr, eo->linear_momentum, eo->linear_nesterov,
                          eo->linear_wd, 0};
    return lc;
}

/* One epoch of the paper protocol over the loader; the mean loss in *ep_loss. */
static int paper_epoch(eqm_module_inst *bb, eqm_loader *ld, eval_linear *lin, float *f, int64_t e,
                       double *ep_loss, char *err, size_t errlen)
{
    int rc = loader_start_epoch(ld, e);
    int64_t seen = 0;
    double sum = 0;
    while (!rc) {
        eqm_batch *b;
        rc = loader_next(ld, &b);
        if (rc == EQM_EOF) {
            rc = EQM_OK;
            break;
        }
        if (rc)
            return errf(err, errlen, rc, "%s", loader_error(ld));
        double lo = 0;
        rc = forward_rows(bb, b, f, err, errlen);
        if (rc) {
            loader_release(ld, b);
            return rc;
        }
        rc = eval_linear_step(lin, f, b->labels, b->n, &lo);
        sum += lo * b->n;
        seen += b->n;
        loader_release(ld, b);
        if (rc)
            return errf(err, errlen, rc, "linear probe step failed (%s)", eqm_status_str(rc));
    }
    *ep_loss = seen ? sum / seen : 0;
    return rc;
}

/* Paper protocol: augmented train features recomputed every epoch. */
static int linear_paper(eqm_model *m, eqm_config *cfg, const eqm_registry *reg,
                        const eval_opts *eo, eval_acc *acc, double *loss_out, char **desc,
                        char *err, size_t errlen)
{
    eqm_module_inst *bb = &m->mod[EQM_SLOT_BACKBONE];
    eqm_loader_opts lo = {0};
    lo.mode = EQM_LOADER_SINGLE;
    lo.single_view = "eval_train";
    lo.batch_size = (int)eo->linear_batch;
    lo.shuffle_set = 1, lo.shuffle = 1;
    lo.drop_last_set = 1, lo.drop_last = 0;
    lo.limit = eo->train_limit;
    eqm_loader *ld = NULL;
    int rc = loader_open(&ld, cfg, reg, "train", &lo, err, errlen);
    if (rc)
        return rc;
    eqm_loader_info li;
    loader_info(ld, &li);
    eval_linear_cfg lc = linear_cfg(eo);
    eval_linear *lin = eval_linear_create(bb->out_dim, li.n_classes, &lc,
                                          li.batches_per_epoch * eo->linear_epochs);
    float *f = malloc((size_t)eo->linear_batch * bb->out_dim * sizeof(float));
    if (!lin || !f)
        rc = errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    double ep_loss = 0;
    for (int64_t e = 0; !rc && e < eo->linear_epochs; e++) {
        rc = paper_epoch(bb, ld, lin, f, e, &ep_loss, err, errlen);
        if (!rc)
            fprintf(stderr, "linear probe epoch %lld/%lld: loss %.4f\n", (long long)e + 1,
                    (long long)eo->linear_epochs, ep_loss);
    }
    loader_destroy(ld);
    *loss_out = ep_loss;
    if (!rc) {
        float *fte = NULL;
        int32_t *lte = NULL;
        int64_t nte = 0;
        rc = extract_features(m, cfg, reg, "test", "eval_test", eo->test_limit, (int)eo->batch,
                              &fte, &lte, &nte, NULL, desc, err, errlen);
        if (!rc)
            rc = eval_linear_accuracy(lin, fte, lte, nte, acc);
        free(fte), free(lte);
    }
    eval_linear_destroy(lin);
    free(f);
    return rc;
}

/* Fast mode: un-augmented train features cached once. */
static int linear_fast(eqm_model *m, eqm_config *cfg, const eqm_registry *reg,
                       const eval_opts *eo, eval_acc *acc, double *loss, char **desc,
                       char *err, size_t errlen)
{
    float *ftr = NULL, *fte = NULL;
    int32_t *ltr = NULL, *lte = NULL;
    int64_t ntr = 0, nte = 0;
    int C = 0;
    int rc = extract_features(m, cfg, reg, "train", "eval_test", eo->train_limit, (int)eo->batch,
                              &ftr, &ltr, &ntr, &C, NULL, err, errlen);
    if (!rc)
        rc = extract_features(m, cfg, reg, "test", "eval_test", eo->test_limit, (int)eo->batch,
                              &fte, &lte, &nte, NULL, desc, err, errlen);
    if (!rc) {
        eval_linear_cfg lc = linear_cfg(eo);
        rc = eval_linear_fast(ftr, ltr, ntr, fte, lte, nte, m->mod[EQM_SLOT_BACKBONE].out_dim,
                              C, &lc, acc, loss);
        if (rc)
            errf(err, errlen, rc, "linear probe failed (%s)", eqm_status_str(rc));
    }
    free(ftr), free(fte), free(ltr), free(lte);
    return rc;
}

int linear_of_model(eqm_model *m, eqm_config *cfg, const eqm_registry *reg, const eval_opts *eo,
                    int fast, eval_acc *acc, double *loss, char **test_desc, char *line,
                    size_t line_len, char *err, size_t errlen)
{
    *loss = 0;
    *test_desc = NULL;
    int rc = fast ? linear_fast(m, cfg, reg, eo, acc, loss, test_desc, err, errlen)
                  : linear_paper(m, cfg, reg, eo, acc, loss, test_desc, err, errlen);
    if (fast)
        snprintf(line, line_len,
                 "linear probe, fast mode (cached un-augmented features, %lld epochs, final "
                 "train loss %.4f): top-1 %.2f%%  top-5 %.2f%%",
                 (long long)eo->linear_epochs, *loss, acc->top1, acc->top5);
    else
        snprintf(line, line_len,
                 "linear probe, method-reference.md §6 protocol (%lld epochs, RRC+flip, SGD Nesterov lr "
                 "%g cosine to %g, batch %lld): top-1 %.2f%%  top-5 %.2f%%",
                 (long long)eo->linear_epochs, eo->linear_lr, eo->linear_final_lr,
                 (long long)eo->linear_batch, acc->top1, acc->top5);
    return rc;
}
