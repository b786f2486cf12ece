/* equimod SDK: neural-network ops offered by the host (api->nn).
 *
 * One implementation per op lives in the host, on OpenBLAS and the host's threads; backbone, method and equimod plugins compose them. Each op is a
 * forward/backward pair over raw float32 pointers, with a const shape struct first.
 *
 * Layout: activations are NHWC ("channels last"): a (N, H, W, C) tensor is N*H*W rows of C
 * contiguous floats. Then a 1x1 convolution, a linear layer and batch norm all see the same
 * (rows, C) matrix, and im2col copies contiguous runs of C. Conv weights are (C_out, kh,
 * kw, C_in) ("OHWI"); linear weights are (C_out, C_in) like PyTorch. Export to PyTorch
 * (OIHW) transposes.
 *
 * Conventions (llm.c): backward ACCUMULATES (+=) into every gradient it writes: weight,
 * bias and input gradients alike. The caller zeroes gradient buffers once per step. A NULL
 * gradient pointer means "not needed" and is skipped.
 * Exception (ABI 1.5): a caller may ask conv2d_backward (EQM_NN_SET_DIN in
 * eqm_conv2d_shape.flags) and batchnorm_backward_ex (its flags argument) to OVERWRITE din
 * (=) instead: then din's previous contents are never read (garbage, NaN included, is fine)
 * and the caller need not zero it; weight and BN parameter gradients still accumulate.
 * Only a 1.5 host honours the flag: check EQM_API_HAS(nn, batchnorm_backward_ex) first (a
 * 1.4 host ignores the bit in a conv shape and would ADD into din).
 * Scratch: ops do not allocate. Where an op needs saved state between forward and backward
 * (BN statistics, pooling argmax, NT-Xent probabilities) the caller passes a buffer sized by
 * the documented formula. conv2d uses a host-owned workspace that grows at its first use
 * with a given shape (i.e. during the first training step) and never afterwards.
 * Threading: call from one thread (the training thread); ops use the host's compute
 * threads internally. Return: EQM_OK, or EQM_ERR_INVAL for an impossible shape.
 * Semantics: each op names the PyTorch function it matches; equimod's own test suite pins
 * them with finite differences and PyTorch fixtures.
 * Sized, versioned, APPEND ONLY table: a new op is a minor bump.
 */
#ifndef EQM_SDK_NN_H
#define EQM_SDK_NN_H

#include <stddef.h>
#include <stdint.h>

#include "host_api.h"

#ifdef __cplusplus
extern "C" {
#endif

enum eqm_nn_flags {
    EQM_NN_BF16 = 1u << 0 /* conv2d: products of bfloat16-rounded inputs/weights (nearest
                             even), fp32 accumulation; AMX or AVX512_BF16 kernels where the
                             CPU has them, else an emulation with the same products.
                             The host also applies it by itself to every conv2d and
                             linear op while it trains at [train] precision = bf16 */,
    EQM_NN_SET_DIN = 1u << 1 /* ABI 1.5. conv2d_backward (in eqm_conv2d_shape.flags) and
                                batchnorm_backward_ex (flags): din = dL/din, overwritten,
                                its previous contents not read; dw, dgamma, dbeta still
                                +=. Ignored by conv2d_forward. A 1.4 host ignores it in a
                                conv shape (it then accumulates): check
                                EQM_API_HAS(nn, batchnorm_backward_ex) before setting it */,
    EQM_NN_RELU_FROM_IN = 1u << 2 /* ABI 1.5. batchnorm_backward_ex with relu = 1: the ReLU
                                mask (out > 0) is recomputed from `in` and the forward's
                                affine (in * a + b > 0, a = gamma * inv_std, b = beta -
                                mean * a, the same float arithmetic as the forward): the
                                same bits without reading `out` (may then be NULL); needs
                                beta when affine = 1 */,
    EQM_NN_ADD_RESIDUAL = 1u << 3 /* ABI 1.5. batchnorm_forward_ex: out = bn(in) + residual,
                                then the ReLU when relu = 1 (a ResNet block's end: one
                                pass instead of BN, then add + ReLU) */,
    EQM_NN_IN_BF16 = 1u << 4 /* ABI 1.6. conv2d_forward, conv2d_forward_stats,
                                conv2d_backward (in eqm_conv2d_shape.flags) and
                                batchnorm_backward_ex (flags): `in` points to eqm_bf16
                                values (cast to const float *), read as the floats they
                                are exactly; every other pointer stays float. Activations
                                kept for backward at half the memory (see
                                batchnorm_forward_store). Check EQM_API_HAS(nn,
                                batchnorm_forward_store) first: an older host ignores the
                                bit in a conv shape and would read the bytes as floats */,
    EQM_NN_OUT_BF16 = 1u << 5 /* ABI 1.6. batchnorm_forward_store, conv2d_forward and
                                conv2d_forward_stats (in eqm_conv2d_shape.flags): `out`
                                receives eqm_bf16 values (rounded to nearest even; passed
                                cast to float *), not floats. conv2d_forward_stats' sums
                                stay those of the float outputs before rounding. Combines
                                with EQM_NN_IN_BF16; conv2d_backward ignores it */,
    EQM_NN_RES_BF16 = 1u << 6 /* ABI 1.6. batchnorm_forward_store with EQM_NN_ADD_RESIDUAL:
                                `residual` holds eqm_bf16 values, not floats */
};

/* ABI 1.6: one bfloat16 value, the upper 16 bits of an IEEE-754 binary32 (sign, 8 exponent
 * bits, 7 mantissa bits). float -> bf16 rounds to nearest even (NaN stays NaN); bf16 ->
 * float is exact (the bits shifted left by 16). */
typedef uint16_t eqm_bf16;

/* torch.nn.functional.conv2d, no bias, square stride/padding, dilation 1, groups 1.
 * Output size: Ho = (H + 2*pad - kh)/stride + 1, Wo likewise. */
typedef struct eqm_conv2d_shape {
    int N, H, W, C_in, C_out;
    int kh, kw, stride, pad;
    uint32_t flags; /* enum eqm_nn_flags */
} eqm_conv2d_shape;

/* torch.nn.BatchNorm1d/2d over a (M, C) matrix (M = N*H*W). train = 1: normalise with the
 * batch mean and biased variance, then update running_mean/var with `momentum` (0.1) using
 * the UNBIASED variance (PyTorch); train = 0: use the running statistics. affine = 0: no
 * gamma/beta (pass NULL). save: 2*C floats (mean, inv_std) written by forward and read by
 * backward. relu = 1 fuses a ReLU after the affine (backward then needs `out`). */
typedef struct eqm_bn_shape {
    int M, C;
    int train, affine, relu;
    float eps;      /* 1e-5 */
    float momentum; /* 0.1 */
} eqm_bn_shape;

/* torch.nn.MaxPool2d(k, stride, pad) on NHWC; argmax: N*Ho*Wo*C int32. */
typedef struct eqm_pool_shape {
    int N, H, W, C;
    int k, stride, pad;
} eqm_pool_shape;

/* torch.nn.Linear: out (N, C_out) = in (N, C_in) @ w^T (C_in, C_out) + b. */
typedef struct eqm_linear_shape {
    int N, C_in, C_out;
} eqm_linear_shape;

/* NT-Xent (SimCLR; method-reference.md §3) over z = [a ; b], 2B rows of D: rows are L2-normalised,
 * logits = cos / tau, self-similarity removed, positive of row k is k+B (and of k+B, k),
 * loss = mean over the 2B rows of the cross-entropy. exclude_period > 0 additionally drops
 * from the denominator every row k' != positive with k' = k (mod exclude_period) (EquiMod's
 * paper variant: pass N to exclude the sibling view and its prediction); 0 = code default.
 * scratch: ntxent_scratch_floats(shape) floats of writable memory, written by forward and
 * used by backward (backward also writes its own temporaries into the tail of it). */
typedef struct eqm_ntxent_shape {
    int B2, D; /* B2 = 2B rows */
    float tau;
    int exclude_period;
} eqm_ntxent_shape;

typedef struct eqm_nn_api {
    uint32_t size; /* sizeof(eqm_nn_api) in the host */

    int (*conv2d_forward)(eqm_host *h, const eqm_conv2d_shape *s,
                          float *out,        /* (N, Ho, Wo, C_out), overwritten */
                          const float *in,   /* (N, H, W, C_in) */
                          const float *w);   /* (C_out, kh, kw, C_in) */
    int (*conv2d_backward)(eqm_host *h, const eqm_conv2d_shape *s,
                           float *din,        /* (N, H, W, C_in) += (= with
                                                 EQM_NN_SET_DIN), or NULL */
                           float *dw,         /* (C_out, kh, kw, C_in) += , or NULL */
                           const float *dout, /* (N, Ho, Wo, C_out) */
                           const float *in, const float *w);

    int (*batchnorm_forward)(eqm_host *h, const eqm_bn_shape *s,
                             float *out, const float *in,          /* (M, C) */
                             const float *gamma, const float *beta, /* (C) or NULL */
                             float *running_mean, float *running_var, /* (C), updated if train */
                             float *save);                          /* (2C) */
    int (*batchnorm_backward)(eqm_host *h, const eqm_bn_shape *s,
                              float *din, float *dgamma, float *dbeta, /* += */
                              const float *dout, const float *in,
                              const float *out, /* forward output; used when relu = 1 */
                              const float *gamma, const float *save);

    /* torch.relu; n elements. backward: din += dout * (out > 0). */
    int (*relu_forward)(eqm_host *h, size_t n, float *out, const float *in);
    int (*relu_backward)(eqm_host *h, size_t n, float *din, const float *dout, const float *out);

    int (*maxpool_forward)(eqm_host *h, const eqm_pool_shape *s, float *out, const float *in,
                           int32_t *argmax);
    int (*maxpool_backward)(eqm_host *h, const eqm_pool_shape *s, float *din,
                            const float *dout, const int32_t *argmax);

    /* Global average pool (torch.mean over H, W): (N, HW, C) -> (N, C). */
    int (*avgpool_forward)(eqm_host *h, int N, int HW, int C, float *out, const float *in);
    int (*avgpool_backward)(eqm_host *h, int N, int HW, int C, float *din, const float *dout);

    int (*linear_forward)(eqm_host *h, const eqm_linear_shape *s, float *out,
                          const float *in, const float *w, const float *b /* or NULL */);
    int (*linear_backward)(eqm_host *h, const eqm_linear_shape *s, float *din, float *dw,
                           float *db, const float *dout, const float *in, const float *w);

    /* out = a + b, n elements (residual add; its backward is dout to both inputs). */
    int (*add_forward)(eqm_host *h, size_t n, float *out, const float *a, const float *b);

    /* Row concat: out (N, Ca + Cb) = [a (N, Ca), b (N, Cb)] (torch.cat dim 1). */
    int (*concat_forward)(eqm_host *h, int N, int Ca, int Cb, float *out, const float *a,
                          const float *b);
    int (*concat_backward)(eqm_host *h, int N, int Ca, int Cb, float *da, float *db,
                           const float *dout);

    /* Row-wise L2 normalisation (torch.nn.functional.normalize, eps 1e-12):
     * out = in / max(||in||, eps). norms: N floats saved for backward. */
    int (*l2norm_forward)(eqm_host *h, int N, int D, float *out, const float *in, float *norms);
    int (*l2norm_backward)(eqm_host *h, int N, int D, float *din, const float *dout,
                           const float *out, const float *norms);

    /* NT-Xent, see eqm_ntxent_shape. forward writes *loss; backward adds scale*dL/dz. */
    size_t (*ntxent_scratch_floats)(const eqm_ntxent_shape *s);
    int (*ntxent_forward)(eqm_host *h, const eqm_ntxent_shape *s, float *loss, const float *z,
                          float *scratch);
    int (*ntxent_backward)(eqm_host *h, const eqm_ntxent_shape *s, float *dz, float scale,
                           const float *z, const float *scratch);

    /* BYOL regression: loss = mean_i (2 - 2 cos(q_i, t_i)) over N rows of D; t is a
     * constant target (no gradient). backward: dq += scale * dloss/dq. */
    int (*cosine_loss_forward)(eqm_host *h, int N, int D, float *loss, const float *q,
                               const float *t);
    int (*cosine_loss_backward)(eqm_host *h, int N, int D, float *dq, float scale,
                                const float *q, const float *t);

    /* torch.nn.functional.cross_entropy (mean) over N rows of C logits, integer labels.
     * probs: N*C scratch written by forward. */
    int (*softmax_xent_forward)(eqm_host *h, int N, int C, float *loss, const float *logits,
                                const int32_t *labels, float *probs);
    int (*softmax_xent_backward)(eqm_host *h, int N, int C, float *dlogits, float scale,
                                 const float *probs, const int32_t *labels);

    /* Row-major C = alpha * op(A) @ op(B) + beta * C (cblas_sgemm, CblasRowMajor). */
    void (*sgemm)(eqm_host *h, int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C,
                  int ldc);

    /* ---- appended in 1.5 (issue 14; check with EQM_API_HAS(api->nn, batchnorm_backward_ex),
     * which also says that conv2d_backward honours EQM_NN_SET_DIN) ---- */
    /* batchnorm_backward with flags: 0 is batchnorm_backward itself (din +=);
     * EQM_NN_SET_DIN: din = dL/din, overwritten without being read (the caller need not
     * zero it); dgamma, dbeta += in both cases. EQM_NN_RELU_FROM_IN (relu = 1): the ReLU
     * mask comes from `in`, gamma, beta and save instead of `out` (one tensor less read by
     * each of the two passes). Any other bit is EQM_ERR_INVAL. beta: the forward's beta,
     * read only with EQM_NN_RELU_FROM_IN (and affine = 1), else may be NULL. */
    int (*batchnorm_backward_ex)(eqm_host *h, const eqm_bn_shape *s, uint32_t flags,
                                 float *din, float *dgamma, float *dbeta, /* see flags; += */
                                 const float *dout, const float *in,
                                 const float *out, /* forward output; used when relu = 1
                                                      without EQM_NN_RELU_FROM_IN */
                                 const float *gamma, const float *beta, const float *save);
    /* conv2d_forward that also returns, per output channel, the sum and the sum of squares
     * of what it wrote (stats: 2 C_out doubles, sums then squares): where the host's conv
     * kernel sums them in its epilogue, the separate pass of batchnorm_forward over out
     * goes (pass them to batchnorm_forward_ex). */
    int (*conv2d_forward_stats)(eqm_host *h, const eqm_conv2d_shape *s, float *out,
                                const float *in, const float *w, double *stats);
    /* batchnorm_forward with flags and, when train = 1, the statistics of `in` already
     * summed (stats: 2C doubles from conv2d_forward_stats over exactly this `in`), or NULL:
     * summed here. flags: EQM_NN_ADD_RESIDUAL (residual: (M, C), added before the ReLU;
     * else residual may be NULL); any other bit is EQM_ERR_INVAL. */
    int (*batchnorm_forward_ex)(eqm_host *h, const eqm_bn_shape *s, uint32_t flags, float *out,
                                const float *in, const float *residual, const float *gamma,
                                const float *beta, float *running_mean, float *running_var,
                                float *save, const double *stats);

    /* ---- appended in 1.6 (issue 14: bf16 activation storage; check with
     * EQM_API_HAS(api->nn, batchnorm_forward_store), which also says that conv2d_forward,
     * conv2d_forward_stats, conv2d_backward and batchnorm_backward_ex honour
     * EQM_NN_IN_BF16) ---- */
    /* batchnorm_forward_ex that can keep its input and write its output as bfloat16.
     * in_bf16 != NULL: in_bf16 (M, C) = bf16(in) (nearest even), and the normalisation is
     * applied to those ROUNDED values (out = act(bf16(in) * a + b [+ residual])), so that
     * batchnorm_backward_ex(EQM_NN_IN_BF16 | EQM_NN_RELU_FROM_IN) on in_bf16 recomputes
     * exactly this ReLU mask; in_bf16 == NULL: in itself is normalised, as
     * batchnorm_forward_ex. The batch statistics (save, running_mean/var) are always those
     * of the float `in` (stats as in batchnorm_forward_ex, or summed here over `in`). flags:
     * EQM_NN_ADD_RESIDUAL, EQM_NN_OUT_BF16 (out is eqm_bf16 (M, C)), EQM_NN_RES_BF16
     * (residual is eqm_bf16), EQM_NN_IN_BF16 (`in` itself is eqm_bf16, e.g. a conv's
     * output written with EQM_NN_OUT_BF16, and is normalised as it is; in_bf16 must then
     * be NULL; with stats NULL the statistics are those of these bf16 values); any other
     * bit is EQM_ERR_INVAL. out and residual are floats without their bits. */
    int (*batchnorm_forward_store)(eqm_host *h, const eqm_bn_shape *s, uint32_t flags,
                                   void *out, eqm_bf16 *in_bf16, const float *in,
                                   const void *residual, const float *gamma, const float *beta,
                                   float *running_mean, float *running_var, float *save,
                                   const double *stats);
} eqm_nn_api;

#ifdef __cplusplus
}
#endif

#endif
