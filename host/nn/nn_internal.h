/* host/nn/nn_internal.h: helpers shared by the host's nn ops (host/nn/ *.c files).
 *
 * Not part of the SDK. Every op file defines its eqm_nn_api entries as non-static
 * functions named nn_<op>_<dir> declared here; nn_api.c gathers them into the table.
 * Threading: ops are called from the training thread; loops run through
 * nn_parallel (the host's parallel_for); nn_sgemm / nn_sgemm_batch run single-threaded BLAS
 * calls inside parallel bodies of their own (so they too must be called from the training
 * thread, never from inside a parallel body).
 */
#ifndef EQM_HOST_NN_INTERNAL_H
#define EQM_HOST_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <equimod/equimod.h>

/* Hot loop bodies: an AVX2 clone picked at run time (the build has no -march) and -O3 for
 * these functions only (the project builds with -O2, whose cheap vectoriser leaves loops
 * with a run-time trip count or possible aliasing scalar). */
#define NN_HOT __attribute__((target_clones("avx2", "default"), optimize("O3")))

/* Run fn over [0, n) on the host's compute threads (chunks of at least `grain`). */
void nn_parallel(eqm_host *h, size_t n, size_t grain, eqm_parallel_fn fn, void *ctx);
/* Set an error on h (may be NULL) naming the op and return EQM_ERR_INVAL. */
int nn_inval(eqm_host *h, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Number of compute threads (host_threads()). */
int nn_threads(void);

/* conv2d.c */
int nn_conv2d_forward(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                      const float *w);
int nn_conv2d_backward(eqm_host *h, const eqm_conv2d_shape *s, float *din, float *dw,
                       const float *dout, const float *in, const float *w);
/* Bytes currently held by conv2d's workspace (for tests and the benchmark). */
size_t nn_conv2d_workspace_bytes(void);
/* Conv algorithm (tests, benchmarks; EQM_CONV_ALGO sets it too):
 * 0 default: Winograd F(2x2, 3x3) for 3x3 stride-1 convs with C_in, C_out >= 16 and at
 *   least 512 2x2 output tiles per call (forward, dW, and dX as the Winograd forward of dout with the flipped
 *   kernel); otherwise im2col + sgemm forward and dW, sgemm + gather col2im dX;
 * 1 im2col / col2im only (the reference path);
 * 2 as 1 but stride-1 dX as a forward conv of dout with the flipped kernel (no col2im);
 * 3 Winograd wherever it applies (any output size) plus 2;
 * 4 the direct kernel (direct.c) wherever it applies (forward, stride-1 dX), else as 2;
 * 5 the implicit kernels wherever they apply: the bf16 forward, stride-1 dX and strided dX
 *   (amx_conv.c) and the bf16 dW (amx_dw.c), on AMX or vdpbf16ps; else as 2;
 * 6 as 5, but on vdpbf16ps the 3x3 stride-1 forwards and dX (as forwards) Winograd
 *   F(2x2, 3x3) with bf16 products (amx_conv.c) wherever it applies; in fp32 (an
 *   AVX512_BF16 CPU) the same Winograd with float operands (nn_wvf_pick) wherever it
 *   applies, forward, stride-1 dX and dW, else as 2.
 * Default (0) also takes the direct kernel on the shapes conv2d.c's direct_pick names, the
 * implicit bf16 forward / stride-1 dX (amx_conv.c) wherever it applies (strided forward and
 * dX: on AMX where amx_pick / amx_dx_pick say, on vdpbf16ps always), and the implicit bf16
 * dW (amx_dw.c) where conv2d.c's amx_dw_pick says, and on vdpbf16ps amx_conv.c's
 * Winograd where its wv_pick says; in fp32 that Winograd (nn_wvf_pick, nn_wv_dw_pick)
 * before every other path. */
void nn_conv2d_set_algo(int algo);
int nn_conv2d_algo(void);

/* winograd.c: F(2x2, 3x3) for 3x3 stride-1 convs with C_in, C_out in [16, NN_WINO_MAX_C] */
#define NN_WINO_MAX_C 4096
size_t nn_wino_ws_floats(const eqm_conv2d_shape *s);
void nn_wino_forward(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                     const float *w, int accumulate, float *ws);
void nn_wino_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout,
                const float *in, float *ws);

/* direct.c: direct NHWC conv2d forward (AVX-512F), C_out a multiple of 16 */
#define NN_DIRECT_MAX_CI 4096
int nn_direct_available(void);
/* nn_direct_ok: the forward / dW apply (fp32 any C_in; bf16 only where the small-C_in
 * kernels do). nn_direct_small_ok: C_in <= NN_DIRECT_SMALL_CI and kw C_in <=
 * NN_DIRECT_SMALL_L (the stems), which also run in bf16. nn_direct_small_set(0) (tests)
 * switches the small kernels off. */
#define NN_DIRECT_SMALL_CI 4
#define NN_DIRECT_SMALL_L 28
int nn_direct_ok(const eqm_conv2d_shape *s);
int nn_direct_small_ok(const eqm_conv2d_shape *s);
void nn_direct_small_set(int on);
size_t nn_direct_ws_floats(const eqm_conv2d_shape *s);
void nn_direct_forward(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                       const float *w, int accumulate, float *ws, const eqm_conv2d_shape *fs);
int nn_direct_forward_stats(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                            const float *w, float *ws, double *stats);
size_t nn_direct_dw_ws_floats(const eqm_conv2d_shape *s);
void nn_direct_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout,
                  const float *in, float *ws);

/* amx_dw.c: the dW of a bf16 conv as an implicit GEMM over the padded images (no im2col
 * rows), on AMX (nn_bf16_native() == 2, tdpbf16ps) or on AVX512_BF16 without AMX (== 1,
 * vdpbf16ps, e.g. AMD Zen 4): stride 1 (vdpbf16ps: 1 to 4, per phase of the stride), not
 * 1x1 pointwise, C_in % 16 == 0, and on vdpbf16ps a largest tap offset under 2^14 canvas
 * positions (nn_amx_dw_ok). dw += the gradient; ws: nn_amx_dw_ws_floats(s) floats, 64-byte
 * aligned (both depend on the kernel: call them under the same nn_bf16_native()). The same
 * bits at any thread count. */
int nn_amx_dw_ok(const eqm_conv2d_shape *s);
/* The fraction of its reduction positions (the padded canvas, see amx_dw.c) that are
 * output pixels: the rest multiply zeros. */
double nn_amx_dw_fill(const eqm_conv2d_shape *s);
size_t nn_amx_dw_ws_floats(const eqm_conv2d_shape *s);
void nn_amx_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout,
               const float *in, float *ws);

/* batchnorm.c */
int nn_batchnorm_forward(eqm_host *h, const eqm_bn_shape *s, float *out, const float *in,
                         const float *gamma, const float *beta, float *running_mean,
                         float *running_var, float *save);
int nn_batchnorm_backward(eqm_host *h, const eqm_bn_shape *s, float *din, float *dgamma,
                          float *dbeta, const float *dout, const float *in, const float *out,
                          const float *gamma, const float *save);
int nn_batchnorm_forward_ex(eqm_host *h, const eqm_bn_shape *s, uint32_t flags, float *out,
                            const float *in, const float *residual, const float *gamma,
                            const float *beta, float *running_mean, float *running_var,
                            float *save, const double *stats);
int nn_batchnorm_forward_store(eqm_host *h, const eqm_bn_shape *s, uint32_t flags, void *out,
                               eqm_bf16 *in_bf16, const float *in, const void *residual,
                               const float *gamma, const float *beta, float *running_mean,
                               float *running_var, float *save, const double *stats);
/* per channel [sum, sum of squares] (2C doubles) of an (M, C) matrix: BN's statistics pass */
int nn_bn_sums(eqm_host *h, size_t M, size_t C, const float *x, double *stats);
/* batchnorm.c: 0 switches the AVX-512 rows of batchnorm_backward_ex off (tests: the same
 * bits as the portable code), 1 (default) on where the CPU has AVX512_BF16. */
void nn_bn_set_v512(int on);
int nn_conv2d_forward_stats(eqm_host *h, const eqm_conv2d_shape *s, float *out,
                            const float *in, const float *w, double *stats);
int nn_batchnorm_backward_ex(eqm_host *h, const eqm_bn_shape *s, uint32_t flags, float *din,
                             float *dgamma, float *dbeta, const float *dout, const float *in,
                             const float *out, const float *gamma, const float *beta,
                             const float *save);

/* elementwise.c */
int nn_relu_forward(eqm_host *h, size_t n, float *out, const float *in);
int nn_relu_backward(eqm_host *h, size_t n, float *din, const float *dout, const float *out);
int nn_add_forward(eqm_host *h, size_t n, float *out, const float *a, const float *b);
int nn_concat_forward(eqm_host *h, int N, int Ca, int Cb, float *out, const float *a,
                      const float *b);
int nn_concat_backward(eqm_host *h, int N, int Ca, int Cb, float *da, float *db,
                       const float *dout);
int nn_l2norm_forward(eqm_host *h, int N, int D, float *out, const float *in, float *norms);
int nn_l2norm_backward(eqm_host *h, int N, int D, float *din, const float *dout,
                       const float *out, const float *norms);

/* pool.c */
int nn_maxpool_forward(eqm_host *h, const eqm_pool_shape *s, float *out, const float *in,
                       int32_t *argmax);
int nn_maxpool_backward(eqm_host *h, const eqm_pool_shape *s, float *din, const float *dout,
                        const int32_t *argmax);
int nn_avgpool_forward(eqm_host *h, int N, int HW, int C, float *out, const float *in);
int nn_avgpool_backward(eqm_host *h, int N, int HW, int C, float *din, const float *dout);

/* linear.c */
int nn_linear_forward(eqm_host *h, const eqm_linear_shape *s, float *out, const float *in,
                      const float *w, const float *b);
int nn_linear_backward(eqm_host *h, const eqm_linear_shape *s, float *din, float *dw,
                       float *db, const float *dout, const float *in, const float *w);
/* Row-major C = alpha op(A) op(B) + beta C on the compute threads (BLAS threads off). */
void nn_sgemm(eqm_host *h, int transA, int transB, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* count independent GEMMs (operand i at X + i * strideX), one per task. */
void nn_sgemm_batch(eqm_host *h, int count, int transA, int transB, int M, int N, int K,
                    float alpha, const float *A, int lda, size_t strideA, const float *B,
                    int ldb, size_t strideB, float beta, float *C, int ldc, size_t strideC);
/* nn_sgemm / nn_sgemm_batch with op flags: EQM_NN_BF16 multiplies in bf16 (gemm_bf16.c),
 * otherwise exactly nn_sgemm / nn_sgemm_batch. */
void nn_gemm(eqm_host *h, uint32_t flags, int transA, int transB, int M, int N, int K,
             float alpha, const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc);
void nn_gemm_batch(eqm_host *h, uint32_t flags, int count, int transA, int transB, int M,
                   int N, int K, float alpha, const float *A, int lda, size_t strideA,
                   const float *B, int ldb, size_t strideB, float beta, float *C, int ldc,
                   size_t strideC);
/* The table's sgemm: one cblas_sgemm with BLAS's own threads (the process policy). */
void nn_sgemm_api(eqm_host *h, int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C,
                  int ldc);

/* gemm_bf16.c: C = alpha op(A) op(B) + beta C (row-major) with both operands rounded to
 * bfloat16 (nearest even) and fp32 accumulation, on the calling thread: AVX512_BF16
 * (vdpbf16ps) where the CPU has it, else an emulation with the same products. */
void nn_gemm_bf16_1(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* The same GEMM with its passes (pack op(B), pack op(A), compute) split across the host's
 * compute threads (nn_parallel; not from inside a parallel_for body), with the same
 * result bit for bit as nn_gemm_bf16_1 at any thread count. Returns 0 (nothing done) when
 * the kernel is the emulation, which the caller then splits itself. */
int nn_gemm_bf16(eqm_host *h, int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C,
                 int ldc);
/* Packed bf16 operands (native kernels only: nn_bf16_native() > 0), for callers that build
 * them without an fp32 copy (conv2d.c: im2col rows straight into packed rows). The layout
 * is the kernel's for a reduction of length K (nn_bf16_kdims_of); packing the same fp32
 * values gives the same bits as the GEMM's own packing, so the products are the same.
 * - op(A), M rows: nn_bf16_a_bytes; nn_bf16_pack_a_rows packs rows [r0, r1) from x (row
 *   r0 first, K floats per row, contiguous), or zeroes them (x NULL; rows from M up to the
 *   padded row count must be zero: pack them with x NULL up to nn_bf16_rows(d, M)).
 * - op(B), N columns: nn_bf16_b_bytes; nn_bf16_pack_b packs all of op(B) from B (as the GEMM
 *   takes it), nn_bf16_pack_b_pair pair p (k = 2p, 2p+1) from two rows of N floats (NULL =
 *   zero); every pair below nn_bf16_pairs(d) must be packed (past K: both NULL).
 * nn_gemm_bf16_packed: C = alpha op(A) op(B) + beta C on the calling thread with op(B)
 * packed, op(A) packed (ap) or taken from A (ap NULL; tA as nn_gemm's). Returns 0 when out
 * of memory (nothing done). */
typedef struct {
    int amx, K, kblk, nkb, kpb, rb;
} nn_bf16_kdims;
void nn_bf16_kdims_of(int K, nn_bf16_kdims *d);
size_t nn_bf16_a_bytes(const nn_bf16_kdims *d, int M);
size_t nn_bf16_b_bytes(const nn_bf16_kdims *d, int N);
int nn_bf16_rows(const nn_bf16_kdims *d, int M);
int nn_bf16_pairs(const nn_bf16_kdims *d);
void nn_bf16_pack_a_rows(const nn_bf16_kdims *d, int M, const float *x, int r0, int r1,
                         uint16_t *ap);
void nn_bf16_pack_b(const nn_bf16_kdims *d, int tB, const float *B, int ldb, int N,
                    uint32_t *bp);
void nn_bf16_pack_b_pair(const nn_bf16_kdims *d, int N, const float *x0, const float *x1, int p,
                         uint32_t *bp);
int nn_gemm_bf16_packed(const nn_bf16_kdims *d, int tA, int M, int N, float alpha,
                        const float *A, int lda, const uint16_t *ap, const uint32_t *bp,
                        float beta, float *C, int ldc);
/* AMX (native mode 2): functions using the tile intrinsics carry AMX_TARGET. The tile
 * configuration of every AMX kernel here: palette 1, tiles 0-7 all 16 rows x 64 bytes.
 * nn_amx_begin loads it on the calling thread (each task of a parallel pass calls it before
 * its first tile instruction), nn_amx_end releases the tile state. */
#define AMX_TARGET                                                                            \
    __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))
void nn_amx_begin(void);
void nn_amx_end(void);
/* amx_conv.c: a bf16 conv forward as an implicit GEMM on AMX (no im2col), and the dX of a
 * strided conv as the stride-1 conv of dout spread out by the stride (a transposed conv).
 * nn_amx_conv_ok: the forwards it takes (EQM_NN_BF16, AMX, not a 1x1 stride-1 pad-0 conv,
 * C_in >= 16); nn_amx_conv_dx_ok: the dX it takes (EQM_NN_BF16, AMX, stride > 1,
 * C_out >= 16, pad < kernel). Workspace in floats; accumulate: out += instead of out =. */
int nn_amx_conv_ok(const eqm_conv2d_shape *s);
size_t nn_amx_conv_ws_floats(const eqm_conv2d_shape *s);
/* fs non-NULL: s is the stride-1 dX of the forward conv fs run as a forward of dout
 * (conv2d.c's dx_shape) and w is fs's own weights, flipped and transposed while packed */
void nn_amx_conv_forward(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                         const float *w, int accumulate, float *buf, const eqm_conv2d_shape *fs);
/* the forward with per output channel [sum, sum of squares] (2 C_out doubles) summed in
 * the epilogue; returns EQM_OK or EQM_ERR_NOMEM */
int nn_amx_conv_forward_stats(eqm_host *h, const eqm_conv2d_shape *s, float *out,
                              const float *in, const float *w, float *buf, double *stats);
/* the dW of a bf16 3x3 stride-1 conv by Winograd F(2x2, 3x3) on vdpbf16ps (amx_conv.c):
 * nn_wv_dw_pick says where (algo 6: wherever it applies; default: where measured faster);
 * dw += the gradient; in as the forward's (EQM_NN_IN_BF16: bf16 values) */
int nn_wv_dw_pick(const eqm_conv2d_shape *s);
/* fp32 (no EQM_NN_BF16, float in and out, an AVX-512 CPU: nn_bf16_cpu() > 0): the same
 * Winograd with FMA on floats takes the forward (nn_amx_conv_forward / _stats, and a
 * stride-1 dX as the forward of dout) where nn_wvf_pick says, the dW where nn_wv_dw_pick
 * does */
int nn_wvf_pick(const eqm_conv2d_shape *s);
size_t nn_wv_dw_ws_floats(const eqm_conv2d_shape *s);
void nn_wv_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout,
              const float *in, float *buf);
int nn_amx_conv_dx_ok(const eqm_conv2d_shape *s);
size_t nn_amx_conv_dx_ws_floats(const eqm_conv2d_shape *s);
/* w: the conv's own weights (OHWI; flipped while packed) */
void nn_amx_conv_dx(eqm_host *h, const eqm_conv2d_shape *s, float *din, const float *dout,
                    const float *w, int accumulate, float *buf);
/* fp32 -> bf16, round to nearest even, zero/subnormal -> signed zero, NaN stays NaN (the
 * rule of vcvtne2ps2bf16); and back (exact). */
uint16_t nn_bf16_from_f32(float f);
float nn_bf16_to_f32(uint16_t b);
/* The same two as inline functions, for the row loops that read or write activations
 * stored as bf16 (ABI 1.6, EQM_NN_IN_BF16 / EQM_NN_OUT_BF16): identical results. */
static inline uint16_t nn_bf16_rne(float f)
{
    uint32_t u;
    __builtin_memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0)
        return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float nn_bf16_wide(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
}
/* dst[i] = src[i] rounded to the nearest bf16 value (dst may equal src). */
void nn_bf16_round(float *dst, const float *src, size_t n);
/* What the CPU (and OS) run: 0 nothing, 1 AVX512_BF16 (with AVX512 F/BW/VL), 2 also
 * AMX-BF16 with the tile state granted to this process (arch_prctl). */
int nn_bf16_cpu(void);
/* The bf16 GEMM's kernel: 0 emulation, 1 vdpbf16ps, 2 AMX (tdpbf16ps): the best the CPU
 * has, capped by EQM_NN_BF16_NATIVE=0|1|2. nn_bf16_set_native(mode) sets it (capped by
 * nn_bf16_cpu(); tests). Call first from the training thread (it asks Linux for AMX). */
int nn_bf16_native(void);
void nn_bf16_set_native(int mode);
/* The host's precision (train.precision; host state that the ops read, so that the
 * SDK's shape structs need no field): 0 = fp32 (each conv2d as its own flags say), or
 * EQM_NN_BF16 = every conv2d (forward, dX, dW) and every linear op (forward, dX, dW)
 * multiplies in bf16 with fp32 accumulation (their flags OR this). The rest stays fp32:
 * batch norm, the losses (NT-Xent's and the cosine loss's GEMMs), the table's raw sgemm,
 * the optimizer. The trainer sets it around each training step only (evaluation,
 * features and export run fp32). Set and read on the training thread. */
void nn_precision_set(uint32_t flags);
uint32_t nn_precision(void);
/* The CPU check of precision = bf16 (cpu = nn_bf16_cpu(), a parameter so that tests can
 * pass 0): EQM_OK when the CPU runs bf16 natively (AVX512_BF16 or AMX-BF16), or when
 * emulate is set (the user asked for the emulation: EQM_NN_BF16_NATIVE=0); otherwise
 * EQM_ERR_UNSUPPORTED with a message naming the missing feature and the fixes. `what` names
 * the setting in the message (e.g. "train.precision = bf16"). */
int nn_precision_check(const char *what, int cpu, int emulate, char *err, size_t errlen);
/* A printable name of the bf16 kernel nn_bf16_native() picked ("AMX-BF16 (tdpbf16ps)",
 * "AVX512_BF16 (vdpbf16ps)", "emulated (bf16-rounded operands, fp32 sgemm)"). */
const char *nn_bf16_kernel_name(void);
/* Test hook: vcvtne2ps2bf16 of n floats (n % 32 == 0); returns 0 (nothing done) without
 * AVX512_BF16. */
int nn_bf16_convert_native(uint16_t *dst, const float *src, size_t n);

/* loss.c */
size_t nn_ntxent_scratch_floats(const eqm_ntxent_shape *s);
int nn_ntxent_forward(eqm_host *h, const eqm_ntxent_shape *s, float *loss, const float *z,
                      float *scratch);
int nn_ntxent_backward(eqm_host *h, const eqm_ntxent_shape *s, float *dz, float scale,
                       const float *z, const float *scratch);
int nn_cosine_loss_forward(eqm_host *h, int N, int D, float *loss, const float *q,
                           const float *t);
int nn_cosine_loss_backward(eqm_host *h, int N, int D, float *dq, float scale, const float *q,
                            const float *t);
int nn_softmax_xent_forward(eqm_host *h, int N, int C, float *loss, const float *logits,
                            const int32_t *labels, float *probs);
int nn_softmax_xent_backward(eqm_host *h, int N, int C, float *dlogits, float scale,
                             const float *probs, const int32_t *labels);

#endif
