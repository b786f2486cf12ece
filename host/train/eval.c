/* host/train/eval.c: weighted kNN, linear probe on features, top-k, .npy writers (eval.h).
 * The matrix products use cblas_sgemm (OpenBLAS, the host's BLAS thread policy). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include <equimod/status.h>

#include "train/eval.h"
#include "train/optim.h"

void eval_l2_normalize(float *x, int64_t n, int d)
{
    for (int64_t i = 0; i < n; i++) {
        float *r = x + i * d;
        double s = 0;
        for (int j = 0; j < d; j++)
            s += (double)r[j] * r[j];
        if (s > 0) {
            float inv = (float)(1.0 / sqrt(s));
            for (int j = 0; j < d; j++)
                r[j] *= inv;
        }
    }
}

/* Rank classes by score (descending, ties to the lower index) and count top-1/top-5. */
static void count_topk(const double *score, int C, int32_t label, int64_t *t1, int64_t *t5)
{
    /* rank = number of classes strictly better than the label's class, ties broken by index */
    double s = score[label];
    int rank = 0;
    for (int c = 0; c < C; c++)
        if (score[c] > s || (score[c] == s && c < label))
            rank++;
    if (rank < 1)
        (*t1)++;
    if (rank < 5)
        (*t5)++;
}

void eval_topk(const float *scores, const int32_t *labels, int64_t n, int n_classes,
               eval_acc *out)
{
    int64_t t1 = 0, t5 = 0;
    double *s = malloc(n_classes * sizeof *s);
    for (int64_t i = 0; s && i < n; i++) {
        for (int c = 0; c < n_classes; c++)
            s[c] = scores[i * n_classes + c];
        if (labels[i] >= 0 && labels[i] < n_classes)
            count_topk(s, n_classes, labels[i], &t1, &t5);
    }
    free(s);
    out->n = n;
    out->top1 = n ? 100.0 * t1 / n : 0;
    out->top5 = n ? 100.0 * t5 / n : 0;
}

/* Min-heap of (sim, index) of size k: the k largest similarities. */
typedef struct {
    float sim;
    int64_t idx;
} nb;

static void heap_sift(nb *h, int k, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && (h[l].sim < h[m].sim || (h[l].sim == h[m].sim && h[l].idx > h[m].idx)))
            m = l;
        if (r < k && (h[r].sim < h[m].sim || (h[r].sim == h[m].sim && h[r].idx > h[m].idx)))
            m = r;
        if (m == i)
            return;
        nb t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

int eval_knn(const float *train, const int32_t *train_labels, int64_t n_train,
             const float *test, const int32_t *test_labels, int64_t n_test, int d,
             int n_classes, int k, double temperature, eval_acc *out)
{
    if (n_train <= 0 || n_test <= 0 || d <= 0 || n_classes <= 0 || k <= 0 || temperature <= 0)
        return EQM_ERR_INVAL;
    if (k > n_train)
        k = (int)n_train;
    const int64_t chunk = 128;
    float *tr = malloc((size_t)n_train * d * sizeof(float));
    float *te = malloc((size_t)chunk * d * sizeof(float));
    float *sim = malloc((size_t)chunk * n_train * sizeof(float));
    nb *heap = malloc((size_t)k * sizeof *heap);
    double *score = malloc((size_t)n_classes * sizeof *score);
    if (!tr || !te || !sim || !heap || !score) {
        free(tr), free(te), free(sim), free(heap), free(score);
        return EQM_ERR_NOMEM;
    }
    memcpy(tr, train, (size_t)n_train * d * sizeof(float));
    eval_l2_normalize(tr, n_train, d);
    int64_t t1 = 0, t5 = 0;
    for (int64_t s = 0; s < n_test; s += chunk) {
        int64_t m = n_test - s < chunk ? n_test - s : chunk;
        memcpy(te, test + s * d, (size_t)m * d * sizeof(float));
        eval_l2_normalize(te, m, d);
        /* sim (m, Ntr) = te (m, D) @ tr^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n_train, d, 1.0f, te,
                    d, tr, d, 0.0f, sim, (int)n_train);
        for (int64_t i = 0; i < m; i++) {
            const float *row = sim + i * n_train;
            int filled = 0;
            for (int64_t j = 0; j < n_train; j++) {
                if (filled < k) {
                    heap[filled++] = (nb){row[j], j};
                    if (filled == k)
                        for (int q = k / 2 - 1; q >= 0; q--)
                            heap_sift(heap, k, q);
                } else if (row[j] > heap[0].sim) {
                    heap[0] = (nb){row[j], j};
                    heap_sift(heap, k, 0);
                }
            }
            for (int c = 0; c < n_classes; c++)
                score[c] = 0;
            for (int q = 0; q < filled; q++) {
                int32_t lab = train_labels[heap[q].idx];
                if (lab >= 0 && lab < n_classes)
                    score[lab] += exp(heap[q].sim / temperature);
            }
            int32_t y = test_labels[s + i];
            if (y >= 0 && y < n_classes)
                count_topk(score, n_classes, y, &t1, &t5);
        }
    }
    free(tr), free(te), free(sim), free(heap), free(score);
    out->n = n_test;
    out->top1 = 100.0 * t1 / n_test;
    out->top5 = 100.0 * t5 / n_test;
    return EQM_OK;
}

/* ------------------------------------------------------------ linear probe ------ */

struct eval_linear {
    int d, C;
    eval_linear_cfg cfg;
    int64_t total_steps;
    float *w;      /* (C, D) then b (C): one block so that one optimizer covers both */
    float *g;      /* same layout */
    float *logits; /* (batch, C) */
    optim opt;
};

eval_linear *eval_linear_create(int d, int n_classes, const eval_linear_cfg *cfg,
                                int64_t total_steps)
{
    if (d <= 0 || n_classes <= 0 || !cfg || cfg->batch <= 0)
        return NULL;
    eval_linear *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->d = d;
    l->C = n_classes;
    l->cfg = *cfg;
    l->total_steps = total_steps > 0 ? total_steps : 1;
    size_t nw = (size_t)n_classes * d + n_classes;
    l->w = calloc(nw, sizeof(float));
    l->g = calloc(nw, sizeof(float));
    l->logits = calloc((size_t)cfg->batch * n_classes, sizeof(float));
    if (!l->w || !l->g || !l->logits) {
        eval_linear_destroy(l);
        return NULL;
    }
    /* PyTorch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
     * (splitmix64 stream; the exact values of torch's generator are not reproduced). */
    uint64_t x = cfg->seed ^ 0x6c696e656172ull;
    float bound = 1.0f / sqrtf((float)d);
    for (size_t i = 0; i < nw; i++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        double u = (z >> 11) * 0x1.0p-53;
        l->w[i] = (float)((2 * u - 1) * bound);
    }
    optim_param p[2] = {{l->w, l->g, (size_t)n_classes * d, 1},
                        {l->w + (size_t)n_classes * d, l->g + (size_t)n_classes * d,
                         (size_t)n_classes, 0}};
    optim_cfg oc = {OPTIM_SGD, cfg->momentum, cfg->weight_decay, 0, cfg->nesterov};
    if (optim_init(&l->opt, &oc, p, 2)) {
        eval_linear_destroy(l);
        return NULL;
    }
    return l;
}

void eval_linear_destroy(eval_linear *l)
{
    if (!l)
        return;
    optim_free(&l->opt);
    free(l->w), free(l->g), free(l->logits);
    free(l);
}

int64_t eval_linear_steps_done(const eval_linear *l) { return l->opt.steps; }

static void linear_scores(const eval_linear *l, const float *x, int n, float *out)
{
    const float *b = l->w + (size_t)l->C * l->d;
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * l->C, b, l->C * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l->C, l->d, 1.0f, x, l->d, l->w,
                l->d, 1.0f, out, l->C);
}

int eval_linear_step(eval_linear *l, const float *x, const int32_t *labels, int n,
                     double *loss)
{
    if (n <= 0 || n > l->cfg.batch)
        return EQM_ERR_INVAL;
    const int C = l->C, D = l->d;
    float *z = l->logits;
    linear_scores(l, x, n, z);
    /* softmax cross-entropy (mean); z becomes dL/dlogits */
    double tot = 0;
    for (int i = 0; i < n; i++) {
        float *r = z + (size_t)i * C;
        float mx = r[0];
        for (int c = 1; c < C; c++)
            mx = r[c] > mx ? r[c] : mx;
        double s = 0;
        for (int c = 0; c < C; c++)
            s += exp((double)r[c] - mx);
        int y = labels[i];
        if (y < 0 || y >= C)
            return EQM_ERR_INVAL;
        tot += log(s) + mx - r[y];
        for (int c = 0; c < C; c++)
            r[c] = (float)(exp((double)r[c] - mx) / s / n);
        r[y] -= 1.0f / n;
    }
    if (loss)
        *loss = tot / n;
    /* dW (C, D) = dz^T (C, n) @ x (n, D); db = sum dz */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, D, n, 1.0f, z, C, x, D, 0.0f, l->g,
                D);
    float *db = l->g + (size_t)C * D;
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += z[(size_t)i * C + c];
        db[c] = (float)s;
    }
    double lr = sched_warmup_cosine(l->opt.steps, l->cfg.lr, 0, l->total_steps, 1.0,
                                    l->cfg.final_lr);
    return optim_step(&l->opt, lr);
}

int eval_linear_accuracy(eval_linear *l, const float *x, const int32_t *labels, int64_t n,
                         eval_acc *out)
{
    const int bs = l->cfg.batch;
    float *sc = malloc((size_t)n * l->C * sizeof(float));
    if (!sc)
        return EQM_ERR_NOMEM;
    for (int64_t s = 0; s < n; s += bs) {
        int m = (int)(n - s < bs ? n - s : bs);
        linear_scores(l, x + s * l->d, m, sc + s * l->C);
    }
    eval_topk(sc, labels, n, l->C, out);
    free(sc);
    return EQM_OK;
}

int eval_linear_fast(const float *train, const int32_t *train_labels, int64_t n_train,
                     const float *test, const int32_t *test_labels, int64_t n_test, int d,
                     int n_classes, const eval_linear_cfg *cfg, eval_acc *out,
                     double *final_loss)
{
    if (n_train <= 0 || n_test <= 0)
        return EQM_ERR_INVAL;
    int64_t spe = (n_train + cfg->batch - 1) / cfg->batch;
    eval_linear *l = eval_linear_create(d, n_classes, cfg, spe * cfg->epochs);
    int64_t *perm = malloc((size_t)n_train * sizeof *perm);
    float *xb = malloc((size_t)cfg->batch * d * sizeof(float));
    int32_t *yb = malloc((size_t)cfg->batch * sizeof *yb);
    if (!l || !perm || !xb || !yb) {
        eval_linear_destroy(l);
        free(perm), free(xb), free(yb);
        return EQM_ERR_NOMEM;
    }
    uint64_t x = cfg->seed * 0x9e3779b97f4a7c15ull + 1;
    int rc = EQM_OK;
    double ep_loss = 0;
    for (int e = 0; e < cfg->epochs && rc == EQM_OK; e++) {
        for (int64_t i = 0; i < n_train; i++)
            perm[i] = i;
        for (int64_t i = n_train - 1; i > 0; i--) { /* Fisher-Yates, xorshift64* */
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            int64_t j = (int64_t)((x * 0x2545f4914f6cdd1dull) % (uint64_t)(i + 1));
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        ep_loss = 0;
        for (int64_t s = 0; s < n_train && rc == EQM_OK; s += cfg->batch) {
            int m = (int)(n_train - s < cfg->batch ? n_train - s : cfg->batch);
            for (int i = 0; i < m; i++) {
                memcpy(xb + (size_t)i * d, train + perm[s + i] * d, d * sizeof(float));
                yb[i] = train_labels[perm[s + i]];
            }
            double lo = 0;
            rc = eval_linear_step(l, xb, yb, m, &lo);
            ep_loss += lo * m;
        }
    }
    if (final_loss)
        *final_loss = ep_loss / n_train;
    if (rc == EQM_OK)
        rc = eval_linear_accuracy(l, test, test_labels, n_test, out);
    eval_linear_destroy(l);
    free(perm), free(xb), free(yb);
    return rc;
}

/* ------------------------------------------------------------ npy ------------- */

static int npy_write(const char *path, const char *descr, const char *shape, const void *data,
                     size_t bytes, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return EQM_ERR_IO;
    }
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    unsigned hl = (unsigned)(n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 255),
                             (unsigned char)(hl >> 8)};
    int bad = fwrite(pre, 1, 10, f) != 10 || fwrite(hdr, 1, n, f) != (size_t)n;
    for (int i = 0; i < pad && !bad; i++)
        bad = fputc(' ', f) == EOF;
    bad = bad || fputc('\n', f) == EOF || fwrite(data, 1, bytes, f) != bytes;
    bad = fclose(f) || bad;
    if (bad || rename(tmp, path)) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        return EQM_ERR_IO;
    }
    return EQM_OK;
}

int npy_write_f32(const char *path, const float *x, int64_t n, int d, char *err, size_t errlen)
{
    char shape[64];
    snprintf(shape, sizeof shape, "(%lld, %d)", (long long)n, d);
    return npy_write(path, "<f4", shape, x, (size_t)n * d * sizeof(float), err, errlen);
}

int npy_write_i64(const char *path, const int64_t *x, int64_t n, char *err, size_t errlen)
{
    char shape[64];
    snprintf(shape, sizeof shape, "(%lld,)", (long long)n);
    return npy_write(path, "<i8", shape, x, (size_t)n * sizeof(int64_t), err, errlen);
}
