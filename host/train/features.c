/* host/train/features.c: frozen backbone features of a split (extract_features) and the
 * kNN accuracy of a model (knn_of_model); trainer.h. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/run.h"

int extract_features(eqm_model *m, eqm_config *cfg, const eqm_registry *reg,
                     const char *split, const char *view, int64_t limit, int batch,
                     float **feat, int32_t **labels, int64_t *n, int *n_classes, char **desc,
                     char *err, size_t errlen)
{
    *feat = NULL;
    *labels = NULL;
    *n = 0;
    if (desc)
        *desc = NULL;
    eqm_module_inst *bb = &m->mod[EQM_SLOT_BACKBONE];
    if (batch > bb->cfg.max_rows)
        batch = bb->cfg.max_rows;
    eqm_loader_opts lo = {0};
    lo.mode = EQM_LOADER_SINGLE;
    lo.single_view = view;
    lo.batch_size = batch;
    lo.shuffle_set = 1;
    lo.shuffle = 0;
    lo.drop_last_set = 1;
    lo.drop_last = 0;
    lo.limit = limit;
    eqm_loader *ld = NULL;
    int rc = loader_open(&ld, cfg, reg, split, &lo, err, errlen);
    if (rc)
        return rc;
    eqm_loader_info li;
    loader_info(ld, &li);
    if (n_classes)
        *n_classes = li.n_classes;
    if (desc && li.source_desc)
        *desc = strdup(li.source_desc);
    const int D = bb->out_dim;
    int64_t cap = li.n_samples > 0 ? li.n_samples : 1024, rows = 0;
    float *F = malloc((size_t)cap * D * sizeof(float));
    int32_t *L = malloc((size_t)cap * sizeof(int32_t));
    if (!F || !L) {
        rc = errf(err, errlen, EQM_ERR_NOMEM, "features: out of memory (%lld x %d)",
                   (long long)cap, D);
        goto out;
    }
    rc = loader_start_epoch(ld, 0);
    while (rc == EQM_OK) {
        eqm_batch *b = NULL;
        rc = loader_next(ld, &b);
        if (rc == EQM_EOF) {
            rc = EQM_OK;
            break;
        }
        if (rc) {
            errf(err, errlen, rc, "%s", loader_error(ld));
            break;
        }
        if (rows + b->n > cap) {
            int64_t nc = (rows + b->n) * 2;
            float *F2 = realloc(F, (size_t)nc * D * sizeof(float));
            int32_t *L2 = F2 ? realloc(L, (size_t)nc * sizeof(int32_t)) : NULL;
            if (F2)
                F = F2;
            if (L2)
                L = L2;
            if (!F2 || !L2) {
                loader_release(ld, b);
                rc = errf(err, errlen, EQM_ERR_NOMEM, "features: out of memory");
                break;
            }
            cap = nc;
        }
        eqm_module_io io = {0};
        io.size = sizeof io;
        io.rows = b->n;
        io.train = 0;
        io.in = b->x0;
        io.out = F + rows * D;
        rc = model_call(bb, 0, &io, "forward", err, errlen);
        memcpy(L + rows, b->labels, b->n * sizeof(int32_t));
        rows += b->n;
        loader_release(ld, b);
    }
out:
    loader_destroy(ld);
    if (rc) {
        free(F), free(L);
        if (desc) {
            free(*desc);
            *desc = NULL;
        }
        return rc;
    }
    *feat = F;
    *labels = L;
    *n = rows;
    return EQM_OK;
}

int knn_of_model(eqm_model *m, eqm_config *cfg, const eqm_registry *reg,
                 const eval_opts *eo, eval_acc *acc, char **test_desc, char *err,
                 size_t errlen)
{
    float *ftr = NULL, *fte = NULL;
    int32_t *ltr = NULL, *lte = NULL;
    int64_t ntr = 0, nte = 0;
    int C = 0;
    int rc = extract_features(m, cfg, reg, "train", "eval_test", eo->train_limit,
                              (int)eo->batch, &ftr, &ltr, &ntr, &C, NULL, err, errlen);
    if (!rc)
        rc = extract_features(m, cfg, reg, "test", "eval_test", eo->test_limit, (int)eo->batch,
                              &fte, &lte, &nte, NULL, test_desc, err, errlen);
    if (!rc) {
        rc = eval_knn(ftr, ltr, ntr, fte, lte, nte, m->mod[EQM_SLOT_BACKBONE].out_dim, C,
                      (int)eo->knn_k, eo->knn_t, acc);
        if (rc)
            errf(err, errlen, rc, "kNN failed (%s)", eqm_status_str(rc));
    }
    free(ftr), free(fte), free(ltr), free(lte);
    return rc;
}

