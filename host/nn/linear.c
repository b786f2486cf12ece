/* host/nn/linear.c: torch.nn.Linear on OpenBLAS, and the raw sgemm entry of the table.
 *
 * Legend: N rows, C_in inputs, C_out outputs; w (C_out, C_in) like PyTorch; b (C_out).
 * forward  out = in @ w^T + b
 * backward din += dout @ w; dw += dout^T @ in; db += column sums of dout.
 * BLAS is called from the calling thread only (its own threads, the process policy).
 */
#include "config.h"

#include <cblas.h>

#include "nn/nn_internal.h"

void nn_sgemm(eqm_host *h, int transA, int transB, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    (void)h;
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
    nn_sgemm(h, 0, 1, N, Co, Ci, 1.f, in, Ci, w, Ci, beta, out, Co);
    return EQM_OK;
}

int nn_linear_backward(eqm_host *h, const eqm_linear_shape *s, float *din, float *dw,
                       float *db, const float *dout, const float *in, const float *w)
{
    int rc = check(h, "linear_backward", s);
    if (rc)
        return rc;
    int N = s->N, Ci = s->C_in, Co = s->C_out;
    if (din)
        nn_sgemm(h, 0, 0, N, Ci, Co, 1.f, dout, Co, w, Ci, 1.f, din, Ci);
    if (dw)
        nn_sgemm(h, 1, 0, Co, Ci, N, 1.f, dout, Co, in, Ci, 1.f, dw, Ci);
    if (db)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < Co; j++)
                db[j] += dout[(size_t)i * Co + j];
    return EQM_OK;
}
