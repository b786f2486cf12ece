/* host/nn/linear.c: torch.nn.Linear on OpenBLAS, and the raw sgemm entry of the table.
 *
 * Legend: N rows, C_in inputs, C_out outputs; w (C_out, C_in) like PyTorch; b (C_out).
 * forward  out = in @ w^T + b
 * backward din += dout @ w; dw += dout^T @ in; db += column sums of dout.
 * Precision: the three GEMMs multiply in bf16 (fp32 accumulation) under the host's
 * precision EQM_NN_BF16 (nn_precision(), train.precision = bf16); the bias and its
 * gradient stay fp32. At precision 0 they are exactly the sgemm calls they always were.
 * GEMMs of the ops (nn_sgemm, nn_sgemm_batch) run single-threaded BLAS on the host's
 * compute threads (split by output blocks, or one GEMM of a batch per task); the table's
 * sgemm (nn_sgemm_api, for plugins) is one BLAS call with BLAS's own threads.
 */
#include "config.h"

#include <cblas.h>

#include "nn/nn_internal.h"

/* One cblas_sgemm on the calling thread. */
static void sgemm1_f32(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) { /* BLAS leaves C untouched only when beta = 1; be explicit */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
}

/* One GEMM on the calling thread: fp32 (cblas_sgemm) or bf16 products (gemm_bf16.c). */
static void gemm1(int bf16, int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C,
                  int ldc)
{
    if (bf16)
        nn_gemm_bf16_1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        sgemm1_f32(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* The table's sgemm (plugins): one BLAS call, BLAS threads as the process policy. */
void nn_sgemm_api(eqm_host *h, int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C,
                  int ldc)
{
    (void)h;
    sgemm1_f32(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Below this many multiply-adds a GEMM runs as one call (splitting costs more). */
#define SPLIT_MIN_MACS (1u << 21)

typedef struct {
    int bf16, tA, tB, M, N, K, lda, ldb, ldc, split_m, step;
    float alpha, beta;
    const float *A, *B;
    float *C;
} split_ctx;

/* Parts [b, e) of the output: row blocks of `step` rows (split_m) or column blocks. */
static void split_body(void *vc, size_t b, size_t e)
{
    const split_ctx *c = vc;
    int lim = c->split_m ? c->M : c->N;
    int i0 = (int)b * c->step, i1 = (int)e * c->step < lim ? (int)e * c->step : lim;
    if (i0 >= i1)
        return;
    if (c->split_m) {
        const float *A = c->tA ? c->A + i0 : c->A + (size_t)i0 * c->lda;
        gemm1(c->bf16, c->tA, c->tB, i1 - i0, c->N, c->K, c->alpha, A, c->lda, c->B, c->ldb,
              c->beta, c->C + (size_t)i0 * c->ldc, c->ldc);
    } else {
        const float *B = c->tB ? c->B + (size_t)i0 * c->ldb : c->B + i0;
        gemm1(c->bf16, c->tA, c->tB, c->M, i1 - i0, c->K, c->alpha, c->A, c->lda, B, c->ldb,
              c->beta, c->C + i0, c->ldc);
    }
}

/* BLAS single-threaded while the host's compute threads run the parts: the pthread
 * OpenBLAS's own workers busy-wait after each call (about 0.1 s by default) and so fought
 * the host's threads for the cores in every im2col / transform / BN loop between GEMMs
 * (2 threads: 2x the CPU time of 1 thread for the same wall time). */
static int blas_serial_begin(void)
{
    int bt = openblas_get_num_threads();
    if (bt != 1)
        openblas_set_num_threads(1);
    return bt;
}

static void blas_serial_end(int bt)
{
    if (bt != 1)
        openblas_set_num_threads(bt);
}

void nn_sgemm(eqm_host *h, int transA, int transB, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    nn_gemm(h, 0, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nn_gemm(eqm_host *h, uint32_t flags, int transA, int transB, int M, int N, int K,
             float alpha, const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc)
{
    int nt = nn_threads(), bf = (flags & EQM_NN_BF16) != 0;
    if (bf && nn_bf16_native()) { /* decides the kernel (and asks for AMX) on this thread */
        /* the native kernels split their own passes: packing each operand once */
        if ((double)M * N * (K > 0 ? K : 1) < SPLIT_MIN_MACS)
            nn_gemm_bf16_1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        else
            nn_gemm_bf16(h, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (nt <= 1 || M <= 0 || N <= 0) {
        gemm1(bf, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int bt = blas_serial_begin();
    if ((double)M * N * (K > 0 ? K : 1) < SPLIT_MIN_MACS) {
        gemm1(bf, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
        /* split the larger output side into 2 parts per thread (each part re-packs the
         * other operand once; more parts would cost more packing, fewer would leave a
         * thread idle when the other core is busy) */
        split_ctx c = {bf, transA, transB, M, N, K, lda, ldb, ldc, M >= N, 0,
                       alpha, beta, A, B, C};
        int side = c.split_m ? M : N, parts = 2 * nt;
        c.step = (side + parts - 1) / parts;
        if (!c.split_m)
            c.step = (c.step + 15) & ~15; /* whole 16-float column blocks */
        nn_parallel(h, (size_t)((side + c.step - 1) / c.step), 1, split_body, &c);
    }
    blas_serial_end(bt);
}

typedef struct {
    int bf16, tA, tB, M, N, K, lda, ldb, ldc;
    size_t sA, sB, sC;
    float alpha, beta;
    const float *A, *B;
    float *C;
} batch_ctx;

static void batch_body(void *vc, size_t b, size_t e)
{
    const batch_ctx *c = vc;
    for (size_t i = b; i < e; i++)
        gemm1(c->bf16, c->tA, c->tB, c->M, c->N, c->K, c->alpha, c->A + i * c->sA, c->lda,
               c->B + i * c->sB, c->ldb, c->beta, c->C + i * c->sC, c->ldc);
}

void nn_sgemm_batch(eqm_host *h, int count, int transA, int transB, int M, int N, int K,
                    float alpha, const float *A, int lda, size_t strideA, const float *B,
                    int ldb, size_t strideB, float beta, float *C, int ldc, size_t strideC)
{
    nn_gemm_batch(h, 0, count, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb,
                  strideB, beta, C, ldc, strideC);
}

void nn_gemm_batch(eqm_host *h, uint32_t flags, int count, int transA, int transB, int M,
                   int N, int K, float alpha, const float *A, int lda, size_t strideA,
                   const float *B, int ldb, size_t strideB, float beta, float *C, int ldc,
                   size_t strideC)
{
    int nt = nn_threads(), bf = (flags & EQM_NN_BF16) != 0;
    if (bf)
        (void)nn_bf16_native();
    if (nt <= 1 || count < nt) {
        for (int i = 0; i < count; i++)
            nn_gemm(h, flags, transA, transB, M, N, K, alpha, A + (size_t)i * strideA, lda,
                     B + (size_t)i * strideB, ldb, beta, C + (size_t)i * strideC, ldc);
        return;
    }
    int bt = blas_serial_begin();
    batch_ctx c = {bf, transA, transB, M, N, K, lda, ldb, ldc, strideA, strideB, strideC,
                   alpha, beta, A, B, C};
    nn_parallel(h, (size_t)count, 1, batch_body, &c);
    blas_serial_end(bt);
}

static int check(eqm_host *h, const char *op, const eqm_linear_shape *s)
{
    if (!s || s->N <= 0 || s->C_in <= 0 || s->C_out <= 0)
        return nn_inval(h, op, "bad shape N=%d C_in=%d C_out=%d (all must be > 0)",
                        s ? s->N : 0, s ? s->C_in : 0, s ? s->C_out : 0);
    return EQM_OK;
}

int nn_linear_forward(eqm_host *h, const eqm_linear_shape *s, float *out, const float *in,
                      const float *w, const float *b)
{
    int rc = check(h, "linear_forward", s);
    if (rc)
        return rc;
    int N = s->N, Ci = s->C_in, Co = s->C_out;
    float beta = 0.f;
    if (b) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < Co; j++)
                out[(size_t)i * Co + j] = b[j];
        beta = 1.f;
    }
    nn_gemm(h, nn_precision(), 0, 1, N, Co, Ci, 1.f, in, Ci, w, Ci, beta, out, Co);
    return EQM_OK;
}

int nn_linear_backward(eqm_host *h, const eqm_linear_shape *s, float *din, float *dw,
                       float *db, const float *dout, const float *in, const float *w)
{
    int rc = check(h, "linear_backward", s);
    if (rc)
        return rc;
    int N = s->N, Ci = s->C_in, Co = s->C_out;
    const uint32_t fl = nn_precision(); /* EQM_NN_BF16 under train.precision = bf16 */
    if (din)
        nn_gemm(h, fl, 0, 0, N, Ci, Co, 1.f, dout, Co, w, Ci, 1.f, din, Ci);
    if (dw)
        nn_gemm(h, fl, 1, 0, Co, Ci, N, 1.f, dout, Co, in, Ci, 1.f, dw, Ci);
    if (db)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < Co; j++)
                db[j] += dout[(size_t)i * Co + j];
    return EQM_OK;
}
