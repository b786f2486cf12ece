/* host/train/eval.h: evaluation of frozen features: weighted kNN and a linear classifier
 * (softmax cross-entropy, SGD-Nesterov, per-step cosine lr), top-1/top-5 accuracy, and the
 * NumPy .npy writer used by `equimod features`.
 *
 * Dimension legend: Ntr = train (bank) rows, Nte = test rows, D = feature width,
 * C = number of classes, K = neighbours.
 *
 * kNN (Wu et al. 2018, the protocol of solo-learn/lightly "weighted kNN"): rows are
 * L2-normalised; for each test row the K most cosine-similar bank rows vote for their class
 * with weight exp(sim / T); classes are ranked by their summed weight (ties: lower class
 * index first). Defaults K = 200, T = 0.1.
 * Linear (METHOD.md §10 on cached features: the "fast" mode): Linear(D -> C, bias) with the
 * PyTorch default init U(-1/sqrt(D), 1/sqrt(D)), SGD momentum 0.9 Nesterov, wd 0, batch 256,
 * lr 0.2 cosine per step to 1e-4 over epochs x ceil(Ntr/256) steps, mean cross-entropy,
 * shuffled every epoch from the given seed.
 *
 * Left out: kNN with other distances, feature centring, early stopping.
 * Threading: training thread only (uses the host's sgemm/parallel ops).
 * Returns: EQM_OK, EQM_ERR_NOMEM, EQM_ERR_INVAL (bad sizes), EQM_ERR_IO (npy). */
#ifndef EQM_TRAIN_EVAL_H
#define EQM_TRAIN_EVAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct eval_acc {
    double top1, top5; /* percent */
    int64_t n;         /* test rows */
} eval_acc;

/* Normalise n rows of d floats in place (zero rows stay zero). */
void eval_l2_normalize(float *x, int64_t n, int d);

/* Features need not be normalised (done on copies). */
int eval_knn(const float *train, const int32_t *train_labels, int64_t n_train,
             const float *test, const int32_t *test_labels, int64_t n_test, int d,
             int n_classes, int k, double temperature, eval_acc *out);

typedef struct eval_linear_cfg {
    int epochs;        /* 90 */
    int batch;         /* 256 */
    double lr;         /* 0.2 */
    double final_lr;   /* 1e-4 */
    double momentum;   /* 0.9 */
    int nesterov;      /* 1 */
    double weight_decay; /* 0 */
    uint64_t seed;
} eval_linear_cfg;

/* A linear classifier and its optimizer state, for both modes. */
typedef struct eval_linear eval_linear;
eval_linear *eval_linear_create(int d, int n_classes, const eval_linear_cfg *cfg,
                                int64_t total_steps);
void eval_linear_destroy(eval_linear *l);
/* One SGD step on n rows (features x (n, d), labels). Returns the mean loss in *loss. */
int eval_linear_step(eval_linear *l, const float *x, const int32_t *labels, int n,
                     double *loss);
int eval_linear_accuracy(eval_linear *l, const float *x, const int32_t *labels, int64_t n,
                         eval_acc *out);
int64_t eval_linear_steps_done(const eval_linear *l);

/* Fast mode: train on cached train features, measure on test features. */
int eval_linear_fast(const float *train, const int32_t *train_labels, int64_t n_train,
                     const float *test, const int32_t *test_labels, int64_t n_test, int d,
                     int n_classes, const eval_linear_cfg *cfg, eval_acc *out,
                     double *final_loss);

/* Top-1/top-5 from scores (n, C) and labels. */
void eval_topk(const float *scores, const int32_t *labels, int64_t n, int n_classes,
               eval_acc *out);

/* NumPy .npy v1.0 writers ('<f4' (n, d) and '<i8' (n,)), written to a temp file and
 * renamed. err gets "path: reason". */
int npy_write_f32(const char *path, const float *x, int64_t n, int d, char *err,
                  size_t errlen);
int npy_write_i64(const char *path, const int64_t *x, int64_t n, char *err, size_t errlen);

#endif
