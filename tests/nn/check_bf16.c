/* tests/nn/check_bf16.c: the bfloat16 ops (EQM_NN_BF16, host/nn/gemm_bf16.c) against
 * their fp32 twins.
 *
 * Every case runs three times: with the emulation (operands rounded to bf16, fp32 sgemm;
 * any CPU), with the AVX512_BF16 kernel (vdpbf16ps) and with the AMX kernel (tdpbf16ps);
 * each native one is skipped, with a message, on a CPU (or kernel) without it.
 *
 * Tolerances, per output element, from the reduction length K and S = sum_k |a_k b_k|
 * (the same op run in fp32 on |A|, |B|; u = 2^-24 the fp32 unit roundoff):
 * - against the exact products of the bf16-ROUNDED operands (this pins the bf16
 *   semantics: an fp32 product of the unrounded operands misses it by up to ~2^-7 S):
 *     |got - want| <= (K + 2) u S'   (fp32 summation of K exact products; S' over the
 *                                     rounded operands)
 * - against the fp32 op on the unrounded operands: rounding each operand to bf16 moves it
 *   by at most 2^-8 relative (bf16 keeps 8 significant bits: its unit roundoff is 2^-8),
 *   so each product by at most 2^-7 + 2^-16 relative:
 *     |got - want| <= (2^-7 + 2^-16 + 2 (K + 2) u) S
 *   (this file first used 2^-8 + 2^-18, half the worst case: the long reductions of the
 *   conv cases never came near it, a 3-term linear dX went to 1.29 of it)
 *   (2 (K + 2) u: both sides' fp32 summations). The Winograd path rounds the TRANSFORMED
 *   tiles (sums of up to 4 inputs and of up to 9 weights with coefficients <= 1 in
 *   magnitude, 9 products summed per output), so its bound is 9x the direct one.
 */
#include "config.h"

#include "nn_test_util.h"
/* mmap, fork, waitpid, _exit; unistd.h's dup(2) renamed (nn_test_util.h has its own) */
#define dup unistd_dup
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#undef dup
#include "nn/nn_internal.h"

static const double U24 = 0x1.0p-24, B8 = 0x1.0p-7 + 0x1.0p-16;

static float bits2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f2bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Loop index i: 0 emulation, 1 vdpbf16ps, 2 AMX. Returns 0 when it cannot run here. */
static int set_mode(int i)
{
    if (i > nn_bf16_cpu()) {
        fprintf(stderr, "bf16 kernel %s: not on this CPU, case skipped\n",
                i == 1 ? "AVX512_BF16" : "AMX-BF16");
        return 0;
    }
    nn_bf16_set_native(i);
    ck_assert_int_eq(nn_bf16_native(), i);
    return 1;
}

START_TEST(test_convert)
{
    static const struct {
        uint32_t in;
        uint16_t out;
    } known[] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* tie, even below: stays */
        {0x3f818000u, 0x3f82}, /* tie, odd below: up to even */
        {0x3f808001u, 0x3f81}, /* above the tie */
        {0x3f807fffu, 0x3f80}, /* below the tie */
        {0xbf818000u, 0xbf82}, /* negative tie */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to inf */
        {0x7f800000u, 0x7f80}, /* inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x00000001u, 0x0000}, /* subnormals: signed zero (DAZ, as vcvtne2ps2bf16) */
        {0x807fffffu, 0x8000},
        {0x00800000u, 0x0080}, /* smallest normal */
        {0x80000000u, 0x8000},
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        uint16_t b = nn_bf16_from_f32(bits2f(known[i].in));
        ck_assert_msg(b == known[i].out, "bf16(%08x) = %04x, want %04x", known[i].in, b,
                      known[i].out);
        ck_assert_uint_eq(f2bits(nn_bf16_to_f32(b)), (uint32_t)b << 16);
    }
    uint16_t nb = nn_bf16_from_f32(bits2f(0x7f800001u)); /* signalling NaN -> quiet NaN */
    ck_assert_msg((nb & 0x7f80) == 0x7f80 && (nb & 0x7f) && (nb & 0x40), "NaN -> %04x", nb);
    /* the scalar rule equals vcvtne2ps2bf16 on random bit patterns (all exponents) */
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x);
    uint16_t *y = malloc(N * sizeof *y);
    for (size_t i = 0; i < N; i++) {
        rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
        x[i] = bits2f((uint32_t)(rng_state >> 20));
    }
    if (!nn_bf16_convert_native(y, x, N)) {
        fprintf(stderr, "native conversion: no AVX512_BF16 on this CPU, compared scalar only\n");
    } else {
        for (size_t i = 0; i < N; i++) {
            uint16_t s = nn_bf16_from_f32(x[i]);
            int nan = (f2bits(x[i]) & 0x7fffffffu) > 0x7f800000u;
            if (nan)
                ck_assert_msg((y[i] & 0x7fff) > 0x7f80, "NaN %08x -> %04x", f2bits(x[i]), y[i]);
            else
                ck_assert_msg(s == y[i], "%08x: scalar %04x native %04x", f2bits(x[i]), s, y[i]);
        }
    }
    free(x), free(y);
}
END_TEST

static double at(int t, const float *X, int ld, int i, int j)
{
    return t ? X[(size_t)j * ld + i] : X[(size_t)i * ld + j];
}
static double rb(double v) { return nn_bf16_to_f32(nn_bf16_from_f32((float)v)); }

/* nn_gemm(EQM_NN_BF16) on 2 compute threads (split and unsplit) for every transpose pair,
 * beta 0/1, padded leading dimensions; sizes cross the kernel's blocks (6 x 64 tiles,
 * KC = 256 k, MC = 192 rows) and odd K. */
START_TEST(test_gemm)
{
    if (!set_mode(_i))
        return;
    host_threads_init(2);
    const int shapes[][3] = {{13, 70, 37}, {200, 130, 600}, {7, 1, 3}, {64, 200, 513}};
    for (int si = 0; si < 4; si++)
        for (int tA = 0; tA < 2; tA++)
            for (int tB = 0; tB < 2; tB++)
                for (int bi = 0; bi < 2; bi++) {
                    int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                    int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 5, ldc = N + 2;
                    size_t na = (size_t)(tA ? K : M) * lda, nb = (size_t)(tB ? N : K) * ldb;
                    size_t nc = (size_t)M * ldc;
                    float *A = rnd(na, 1.f), *B = rnd(nb, 2.f), *C = rnd(nc, 1.f);
                    float *C0 = dup(C, nc);
                    float beta = (float)bi, alpha = 0.75f;
                    nn_gemm(NULL, EQM_NN_BF16, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C,
                            ldc);
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < ldc; j++) {
                            size_t o = (size_t)i * ldc + j;
                            if (j >= N) {
                                ck_assert_float_eq(C[o], C0[o]);
                                continue;
                            }
                            double ex = 0, er = 0, S = 0, Sr = 0;
                            for (int k = 0; k < K; k++) {
                                double a = at(tA, A, lda, i, k), b = at(tB, B, ldb, k, j);
                                ex += a * b, S += fabs(a * b);
                                er += rb(a) * rb(b), Sr += fabs(rb(a) * rb(b));
                            }
                            double c0 = beta * C0[o];
                            double w1 = alpha * er + c0, w2 = alpha * ex + c0;
                            double t1 = (K + 2) * U24 * (alpha * Sr + fabs(c0));
                            double t2 =
                                alpha * B8 * S + 2 * (K + 2) * U24 * (alpha * S + fabs(c0));
                            if (!(fabs(C[o] - w1) <= t1) || !(fabs(C[o] - w2) <= t2))
                                ck_abort_msg("bf16 gemm %dx%dx%d tA %d tB %d beta %g: C[%d][%d] = "
                                             "%.9g; rounded operands %.9g (tol %.3g), fp32 %.9g "
                                             "(tol %.3g)",
                                             M, N, K, tA, tB, beta, i, j, C[o], w1, t1, w2, t2);
                        }
                    free(A), free(B), free(C), free(C0);
                }
    /* a batch (Winograd's 16 GEMMs go this way) */
    int M = 33, N = 70, K = 29, cnt = 5;
    size_t sA = (size_t)M * K + 7, sB = (size_t)N * K + 3, sC = (size_t)M * N + 1;
    float *A = rnd(sA * cnt, 1.f), *B = rnd(sB * cnt, 1.f), *C = rnd(sC * cnt, 1.f);
    float *C0 = dup(C, sC * cnt);
    nn_gemm_batch(NULL, EQM_NN_BF16, cnt, 1, 1, M, N, K, 1.f, A, M, sA, B, K, sB, 1.f, C, N, sC);
    for (int b = 0; b < cnt; b++) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double c0 = C0[b * sC + (size_t)i * N + j], er = c0, Sr = fabs(c0);
                for (int k = 0; k < K; k++) {
                    double p = rb(A[b * sA + (size_t)k * M + i]);
                    p *= rb(B[b * sB + (size_t)j * K + k]);
                    er += p, Sr += fabs(p);
                }
                float got = C[b * sC + (size_t)i * N + j];
                ck_assert_msg(fabs(got - er) <= (K + 2) * U24 * Sr,
                              "bf16 gemm_batch %d: C[%d][%d] = %.9g, want %.9g", b, i, j, got, er);
            }
        ck_assert_float_eq(C[b * sC + (size_t)M * N], C0[b * sC + (size_t)M * N]);
    }
    free(A), free(B), free(C), free(C0);
    nn_bf16_set_native(2);
}
END_TEST

/* With a native kernel the bf16 conv packs im2col rows straight into the GEMM's bf16
 * layout, and the weights once per call: the forward must equal, bit for bit, the bf16
 * GEMM of the fp32 im2col matrix (built here) with the weights (the same bf16 values of
 * the same fp32 numbers, the same kernel). Strided, 7x7 with 3 channels (K = 147: a
 * partial k block), and several tiles. */
START_TEST(test_conv_packed_bitwise)
{
    if (!set_mode(1 + _i))
        return;
    host_threads_init(2);
    nn_conv2d_set_algo(1); /* im2col (vdpbf16ps would take Winograd for the second) */
    static const eqm_conv2d_shape cs[] = {
        {3, 15, 13, 3, 16, 7, 7, 2, 3, EQM_NN_BF16},
        {16, 24, 24, 16, 24, 3, 3, 1, 1, EQM_NN_BF16},
        {5, 9, 11, 40, 70, 3, 3, 2, 1, EQM_NN_BF16},
    };
    for (int ci = 0; ci < 3; ci++) {
        const eqm_conv2d_shape *s = &cs[ci];
        int Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
        int Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
        int K = s->kh * s->kw * s->C_in, M = s->N * Ho * Wo;
        size_t ni = (size_t)s->N * s->H * s->W * s->C_in, no = (size_t)M * s->C_out;
        float *x = rnd(ni, 1.f), *w = rnd((size_t)s->C_out * K, 0.2f);
        float *cols = zeros((size_t)M * K), *o = zeros(no), *o1 = zeros(no);
        for (int n = 0; n < s->N; n++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++)
                    for (int a = 0; a < s->kh; a++)
                        for (int b = 0; b < s->kw; b++)
                            for (int c = 0; c < s->C_in; c++) {
                                int ih = oh * s->stride - s->pad + a;
                                int iw = ow * s->stride - s->pad + b;
                                size_t r = ((size_t)n * Ho + oh) * Wo + ow;
                                if (ih >= 0 && ih < s->H && iw >= 0 && iw < s->W)
                                    cols[r * K + ((size_t)a * s->kw + b) * s->C_in + c] =
                                        x[(((size_t)n * s->H + ih) * s->W + iw) * s->C_in + c];
                            }
        ck_assert_int_eq(NN()->conv2d_forward(NULL, s, o, x, w), EQM_OK);
        nn_gemm_bf16_1(0, 1, M, s->C_out, K, 1.f, cols, K, w, K, 0.f, o1, s->C_out);
        ck_assert_msg(memcmp(o, o1, no * sizeof *o) == 0,
                      "bf16 conv case %d: forward differs from the GEMM of its im2col", ci);
        free(x), free(w), free(cols), free(o), free(o1);
    }
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* The native kernels split their passes (pack op(B), pack op(A), compute) across the
 * compute threads (nn_gemm_bf16): every element must come out bit for bit as the one-thread
 * GEMM makes it, for every transpose pair (the transposing packers), with k blocks (AMX 512,
 * vdpbf16ps 256), partial 16-pair groups and a second chunk of rows (8 MiB of packed
 * op(A) = 2048 rows at K = 2048). */
START_TEST(test_gemm_threads_bitwise)
{
    if (!set_mode(1 + _i))
        return;
    host_threads_init(2);
    const int shapes[][3] = {{300, 70, 600}, {45, 260, 1100}, {2100, 40, 2048}};
    for (int si = 0; si < 3; si++)
        for (int tA = 0; tA < 2; tA++)
            for (int tB = 0; tB < 2; tB++) {
                int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                if (si == 2 && tA != tB) /* the big one: two transpose pairs are enough */
                    continue;
                int lda = (tA ? M : K) + 1, ldb = (tB ? K : N) + 3, ldc = N + 1;
                size_t na = (size_t)(tA ? K : M) * lda, nb = (size_t)(tB ? N : K) * ldb;
                size_t nc = (size_t)M * ldc;
                float *A = rnd(na, 1.f), *B = rnd(nb, 1.f), *C = rnd(nc, 1.f);
                float *C1 = dup(C, nc);
                ck_assert_int_eq(nn_gemm_bf16(NULL, tA, tB, M, N, K, 0.5f, A, lda, B, ldb, 1.f,
                                              C, ldc),
                                 1);
                nn_gemm_bf16_1(tA, tB, M, N, K, 0.5f, A, lda, B, ldb, 1.f, C1, ldc);
                ck_assert_msg(memcmp(C, C1, nc * sizeof *C) == 0,
                              "bf16 gemm %dx%dx%d tA %d tB %d: 2 threads differ from 1", M, N, K,
                              tA, tB);
                free(A), free(B), free(C), free(C1);
            }
    nn_bf16_set_native(2);
}
END_TEST

/* conv2d with EQM_NN_BF16 against fp32 conv2d: forward, dX, dW; im2col, 1x1, strided,
 * stem-like 7x7 and Winograd shapes. */
typedef struct {
    eqm_conv2d_shape s;
    int algo;
    int wino; /* 1: the path runs Winograd for forward, dX and dW; -1: it may; -2: it
                 does on vdpbf16ps (amx_conv.c's, forward and dX) */
} conv_case;

static const conv_case conv_cases[] = {
    {{2, 9, 11, 5, 7, 3, 3, 2, 1, 0}, 0, 0},     /* strided 3x3, im2col */
    {{2, 8, 8, 16, 24, 1, 1, 1, 0, 0}, 0, 0},    /* pointwise: plain GEMMs */
    {{2, 8, 8, 16, 32, 1, 1, 2, 0, 0}, 0, 0},    /* 1x1 stride 2 (ResNet shortcut) */
    {{3, 15, 13, 3, 16, 7, 7, 2, 3, 0}, 0, 0},   /* stem-like 7x7 */
    {{2, 32, 32, 16, 24, 3, 3, 1, 1, 0}, 1, 0},  /* 3x3 s1 on im2col / col2im */
    {{16, 24, 24, 16, 24, 3, 3, 1, 1, 0}, 1, 0}, /* 6 tiles of 3 images (the last 1): with a
                                                    native kernel, groups of tiles per task
                                                    and dW summed over 4 group partials */
    {{2, 32, 32, 16, 24, 3, 3, 1, 1, 0}, 3, 1},  /* same on Winograd (forced: on AMX and
                                                    vdpbf16ps the default takes the implicit
                                                    dW, on AMX the implicit forward too) */
    /* the implicit dW (amx_dw.c; kernel 2 tdpbf16ps, kernel 1 vdpbf16ps, emulation never):
     * the default path where its canvas is >= 70% output pixels on AMX (vdpbf16ps: >= 85%,
     * or >= 70% up to C_in = 128; elsewhere Winograd where it applies), algo 5 elsewhere */
    {{2, 32, 32, 32, 32, 3, 3, 1, 1, 0}, 0, -1},  /* 32 -> 32 (forward, dX: Winograd
                                                     without AMX) */
    {{3, 9, 7, 16, 40, 5, 5, 1, 2, 0}, 5, 0},     /* 5x5 pad 2, Co 40 (a 16-column block),
                                                     N Hr Wr = 297, not a multiple of 32 */
    {{2, 10, 12, 32, 16, 3, 3, 1, 0, 0}, 5, 0},   /* pad 0, Co 16 (64 x 16 blocks) */
    {{5, 4, 4, 16, 20, 3, 3, 1, 1, 0}, 5, 0},     /* 4x4: 9 of 25 positions are no output */
    {{2, 6, 6, 16, 32, 1, 1, 1, 1, 0}, 5, 0},     /* 1x1 with pad 1 (not pointwise) */
    {{2, 6, 9, 48, 8, 1, 3, 1, 0, 0}, 5, 0},      /* 1x3 kernel, Co 8 < 16 */
    {{64, 8, 8, 128, 128, 3, 3, 1, 1, 0}, 0, -1}, /* 2 chunks of q per reduction group
                                                     (vdpbf16ps: 3, 8 x 2 blocks) */
    {{2, 4, 4, 256, 24, 3, 3, 1, 1, 0}, 0, -1},   /* 4x4 (fill 0.64) from C_in = 256 (AMX;
                                                     vdpbf16ps: Winograd) */
    {{3, 12, 10, 32, 24, 3, 3, 1, 0, 0}, 5, 0},   /* pad 0, Co 24 (a 16-column block:
                                                     vdpbf16ps 16 x 1 after 8 x 2) */
    /* the implicit AMX forward and stride-1 dX (algo 5; as algo 2 without AMX): */
    {{2, 32, 32, 16, 24, 3, 3, 1, 1, 0}, 5, 0},  /* C_in 16: a k-step spans 2 taps, the last
                                                    reads 16 bf16 past the run; C_out 24 */
    {{3, 8, 8, 32, 40, 3, 3, 1, 1, 0}, 5, 0},    /* C_out 40: a partial second panel */
    {{5, 4, 4, 48, 32, 3, 3, 1, 1, 0}, 5, 0},    /* 4x4: 20 of 36 padded rows dropped;
                                                    N Hp Wp = 180 not a multiple of 32 */
    {{2, 7, 9, 16, 16, 5, 5, 1, 2, 0}, 5, 0},    /* 5x5 pad 2 on odd sizes */
    {{3, 6, 5, 24, 16, 3, 3, 1, 0, 0}, 5, 0},    /* pad 0, C_in 24 (run 72 of 96) */
    /* strided convs on AMX (forced by algo 5; the last one is the default path): the
     * implicit forward at every stride-th row q of an output row, the dX as the stride-1
     * conv of dout spread out by the stride (without AMX: im2col tiles / col2im) */
    {{2, 9, 11, 16, 32, 3, 3, 2, 1, 0}, 5, 0},   /* 3x3 s2 on odd sizes */
    {{3, 8, 8, 32, 40, 3, 3, 2, 1, 0}, 5, 0},    /* C_out 40: a partial panel */
    {{2, 10, 7, 24, 16, 5, 5, 3, 2, 0}, 5, 0},   /* 5x5 stride 3, C_in 24 */
    {{2, 6, 6, 16, 16, 3, 3, 2, 0, 0}, 5, 0},    /* pad 0 */
    {{2, 40, 70, 16, 32, 3, 3, 2, 1, 0}, 0, 0},  /* 35 outputs per row: 3 blocks of 32 */
    /* the strided implicit dW on vdpbf16ps (amx_dw.c: one phase canvas per (ky % st,
     * kx % st); algo 5, or the default where amx_dw_pick takes it; AMX: the tiles) */
    {{3, 11, 9, 16, 40, 3, 3, 2, 1, 0}, 5, 0},   /* 3x3 s2 pad 1, odd sizes, Co 40 */
    {{2, 9, 11, 32, 24, 1, 1, 2, 0, 0}, 5, 0},   /* 1x1 s2 pad 0 (one phase), Co 24 */
    {{2, 10, 8, 16, 20, 5, 5, 3, 2, 0}, 5, 0},   /* 5x5 s3 pad 2 (9 phases), Co 20 */
    {{3, 7, 6, 16, 16, 3, 3, 2, 0, 0}, 5, 0},    /* pad 0, Co 16 (64 x 16 blocks) */
    {{2, 33, 31, 16, 32, 3, 3, 2, 1, 0}, 0, 0},  /* the default path */
    /* vdpbf16ps blocks of 16 pixels x 16 channels in one row (v512_pick: the pixel offsets
     * as displacements from one register, 16 or 32 bf16 apart) */
    {{2, 32, 32, 16, 16, 3, 3, 1, 1, 0}, 5, 0},  /* forward and dX 16 apart */
    {{2, 32, 32, 16, 16, 3, 3, 2, 1, 0}, 0, 0},  /* forward 32 apart, strided dX 16 */
    {{2, 32, 32, 16, 32, 3, 3, 2, 1, 0}, 0, 0},  /* strided dX 32 apart */
    /* Winograd F(2x2, 3x3) on vdpbf16ps (amx_conv.c; algo 6 wherever it applies, the
     * default from 256 tiles a call; elsewhere as algo 5): chunks of 32 tiles over the
     * images, the last one short; GEMM blocks of 8 tiles x 16 or 32 columns */
    {{3, 10, 6, 16, 16, 3, 3, 1, 1, 0}, 6, -2},  /* 15 tiles an image: chunks across images */
    {{2, 8, 12, 32, 48, 3, 3, 1, 1, 0}, 6, -2},  /* C_out 48: a panel of 16 after one of 32 */
    {{2, 10, 8, 48, 32, 3, 3, 1, 0, 0}, 6, -2},  /* pad 0, C_in 48 */
    {{2, 6, 4, 16, 32, 3, 3, 1, 2, 0}, 6, -2},   /* pad 2: 8x6 outputs, tiles half outside */
    {{5, 4, 4, 64, 16, 3, 3, 1, 1, 0}, 6, -2},   /* 4 tiles an image, 20 in all */
    {{4, 16, 16, 32, 32, 3, 3, 1, 1, 0}, 0, -2}, /* the default path (256 tiles) */
    {{2, 7, 7, 32, 32, 3, 3, 1, 1, 0}, 6, -2},   /* 7x7 (ResNet-50's last stage): tiles with
                                                    one output row or column */
    {{3, 9, 8, 16, 16, 3, 3, 1, 0, 0}, 6, -2},   /* pad 0: 7x6 outputs */
    {{2, 5, 6, 16, 32, 3, 3, 1, 2, 0}, 6, -2},   /* pad 2: 7x8 outputs */
    /* the small-C_in direct kernels (direct.c; AVX-512F, else im2col): the stems */
    {{2, 11, 19, 3, 32, 3, 3, 1, 1, 0}, 0, 0},   /* CIFAR stem: widths 16 + 2 + 1 */
    {{3, 9, 9, 1, 16, 5, 5, 1, 2, 0}, 0, 0},     /* C_in 1 */
    {{2, 8, 7, 4, 48, 3, 3, 2, 0, 0}, 0, 0},     /* C_in 4, stride 2, pad 0, C_out 48 */
    {{1, 12, 12, 3, 16, 9, 9, 1, 4, 0}, 0, 0},   /* 9x9: 27 values per kernel row */
    {{2, 32, 32, 16, 24, 3, 3, 1, 1, 0}, 0, -1}, /* the default path (either; test_conv_precision
                                                    takes this last case) */
};
#define N_CONV (int)(sizeof conv_cases / sizeof *conv_cases)

static void conv_run(const eqm_conv2d_shape *s, uint32_t flags, const float *x, const float *w,
                     const float *g, float *o, float *dx, float *dw)
{
    eqm_conv2d_shape t = *s;
    t.flags = flags;
    ck_assert_int_eq(NN()->conv2d_forward(NULL, &t, o, x, w), EQM_OK);
    ck_assert_int_eq(NN()->conv2d_backward(NULL, &t, dx, dw, g, x, w), EQM_OK);
}

static void check_bound(const char *what, int ci, const float *got, const float *want,
                        const float *S, size_t n, double rel, int K)
{
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double tol = (rel + 2 * (K + 2) * U24) * S[i] + 1e-30;
        double e = fabs((double)got[i] - want[i]) / tol;
        if (!(e <= worst))
            worst = e, wi = i;
    }
    fprintf(stderr, "bf16 case %d %s: worst error %.3f of its bound (K = %d)\n", ci, what,
            worst, K);
    ck_assert_msg(worst <= 1.0, "bf16 case %d %s: element %zu got %.7g want %.7g (%.3g of "
                                "the bound)",
                  ci, what, wi, (double)got[wi], (double)want[wi], worst);
}

START_TEST(test_conv)
{
    int ci = _i / 3;
    if (!set_mode(_i % 3))
        return;
    host_threads_init(2);
    const conv_case *cc = &conv_cases[ci];
    const eqm_conv2d_shape *s = &cc->s;
    nn_conv2d_set_algo(cc->algo);
    int Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    int Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    size_t ni = (size_t)s->N * s->H * s->W * s->C_in, no = (size_t)s->N * Ho * Wo * s->C_out;
    size_t nw = (size_t)s->C_out * s->kh * s->kw * s->C_in;
    float *x = rnd(ni, 1.f), *w = rnd(nw, 0.2f), *g = rnd(no, 1.f);
    float *ax = dup(x, ni), *aw = dup(w, nw), *ag = dup(g, no);
    for (size_t i = 0; i < ni; i++)
        ax[i] = fabsf(ax[i]);
    for (size_t i = 0; i < nw; i++)
        aw[i] = fabsf(aw[i]);
    for (size_t i = 0; i < no; i++)
        ag[i] = fabsf(ag[i]);
    float *o[3], *dx[3], *dw[3];
    for (int v = 0; v < 3; v++)
        o[v] = zeros(no), dx[v] = zeros(ni), dw[v] = zeros(nw);
    conv_run(s, EQM_NN_BF16, x, w, g, o[0], dx[0], dw[0]); /* bf16 */
    conv_run(s, 0, x, w, g, o[1], dx[1], dw[1]);           /* fp32 twin */
    conv_run(s, 0, ax, aw, ag, o[2], dx[2], dw[2]);        /* S = sum |a b| */
    /* -1: Winograd where the default takes it, never on AMX (wino_ok in conv2d.c) */
    int wino = cc->wino == -1   ? nn_bf16_native() != 2
               : cc->wino == -2 ? nn_bf16_native() == 1 /* amx_conv.c's Winograd */
                                : cc->wino;
    double f = wino ? 9 : 1;
    int Kf = s->kh * s->kw * s->C_in, Kx = s->kh * s->kw * s->C_out, Kw = s->N * Ho * Wo;
    check_bound("forward vs fp32", ci, o[0], o[1], o[2], no, f * B8, Kf);
    check_bound("dX vs fp32", ci, dx[0], dx[1], dx[2], ni, f * B8, Kx);
    check_bound("dW vs fp32", ci, dw[0], dw[1], dw[2], nw, f * B8, Kw);
    if (!wino) {
        /* the direct paths multiply the rounded operands exactly: fp32 conv of the rounded
         * tensors agrees to fp32 summation error */
        float *rx = dup(x, ni), *rw = dup(w, nw), *rg = dup(g, no);
        nn_bf16_round(rx, rx, ni), nn_bf16_round(rw, rw, nw), nn_bf16_round(rg, rg, no);
        float *ro = zeros(no), *rdx = zeros(ni), *rdw = zeros(nw);
        conv_run(s, 0, rx, rw, rg, ro, rdx, rdw);
        check_bound("forward vs rounded fp32", ci, o[0], ro, o[2], no, 0, Kf);
        check_bound("dX vs rounded fp32", ci, dx[0], rdx, dx[2], ni, 0, Kx);
        check_bound("dW vs rounded fp32", ci, dw[0], rdw, dw[2], nw, 0, Kw);
        free(rx), free(rw), free(rg), free(ro), free(rdx), free(rdw);
    }
    /* and bf16 really differs from fp32 (the flag is not ignored) */
    double d = 0;
    for (size_t i = 0; i < no; i++)
        d += fabs((double)o[0][i] - o[1][i]);
    ck_assert_msg(d > 0, "bf16 conv case %d: output bit-identical to fp32", ci);
    for (int v = 0; v < 3; v++)
        free(o[v]), free(dx[v]), free(dw[v]);
    free(x), free(w), free(g), free(ax), free(aw), free(ag);
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* The small-C_in direct kernels round their operands themselves (AVX-512F integer ops):
 * every rounding must be nn_bf16_from_f32's, special values included. A 1x1 stride-2
 * conv with C_in 1 and weights 1 is not pointwise, so it takes them; its forward of 16
 * one-pixel images is then bf16(x) (one exact product), and the dW of one pixel with x = 1
 * is bf16(dout) per output channel. Values: ties to even both ways, a carry into the
 * exponent, overflow to inf, infinities, quiet and signalling NaN (kept quiet), signed
 * zero, the largest subnormals (flushed to signed zero, where nearest even would give the
 * smallest normal bf16). */
START_TEST(test_small_rounding)
{
    host_threads_init(2);
    static const uint32_t v[16] = {
        0x3f800000u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f7fffffu, 0x7f7fffffu,
        0x7f800000u, 0xff800000u, 0x7fc00001u, 0x7f800001u, 0x80000000u, 0x007fffffu,
        0x807fffffu, 0x40490fdbu, 0xbb23d70au, 0x7149f2cau};
    eqm_conv2d_shape s = {16, 1, 1, 1, 16, 1, 1, 2, 0, EQM_NN_BF16};
    if (!nn_direct_small_ok(&s)) {
        fprintf(stderr, "small-C_in direct kernels: no AVX-512F here, case skipped\n");
        return;
    }
    float x[16], w[16], out[256], one = 1.f, dw[16] = {0}, g[16];
    for (int i = 0; i < 16; i++)
        x[i] = bits2f(v[i]), w[i] = 1.f, g[i] = bits2f(v[i]);
    ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, out, x, w), EQM_OK);
    eqm_conv2d_shape s1 = s;
    s1.N = 1;
    ck_assert_int_eq(NN()->conv2d_backward(NULL, &s1, NULL, dw, g, &one, w), EQM_OK);
    for (int i = 0; i < 16; i++) {
        float want = nn_bf16_to_f32(nn_bf16_from_f32(bits2f(v[i])));
        for (int co = 0; co < 16; co++) {
            float got = out[i * 16 + co];
            ck_assert_msg(isnan(want) ? isnan(got) : got == want,
                          "forward of 0x%08x: got 0x%08x want 0x%08x", v[i], f2bits(got),
                          f2bits(want));
        }
        ck_assert_msg(isnan(want) ? isnan(dw[i]) : dw[i] == want,
                      "dW of dout 0x%08x: got 0x%08x want 0x%08x", v[i], f2bits(dw[i]),
                      f2bits(want));
    }
}
END_TEST

/* ABI 1.5 conv2d_forward_stats: out is bit for bit conv2d_forward's (fp32 and bf16, every
 * kernel: loop index = native mode as test_conv), and stats (per channel sum and sum of
 * squares) agree with a double sum of that out. Bound: float sums over at most 64 rows
 * (BN's runs; the AMX epilogue sums 32-row blocks) added in double, so per channel
 * |err| <= (64 + 2) u S with S the sum of |v| (of v^2 for the squares). Then
 * batchnorm_forward_ex with those stats: within the same bound of batchnorm_forward, and
 * its flags and stats arguments are checked. Shapes: the quickstart's 32x32 16->16 (AMX
 * implicit), a strided 16->32, C_out 40 (a partial panel), the stem (small direct). */
START_TEST(test_conv_stats)
{
    if (!set_mode(_i))
        return;
    host_threads_init(2);
    static const int cfg[][9] = {
        /* N, H, W, Ci, Co, k, stride, pad, algo */
        {4, 32, 32, 16, 16, 3, 1, 1, 0}, {3, 16, 16, 16, 32, 3, 2, 1, 5},
        {2, 8, 8, 32, 40, 3, 1, 1, 0},   {2, 11, 9, 3, 16, 3, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++)
        for (int bf = 0; bf < 2; bf++) {
            const int *g = cfg[i];
            eqm_conv2d_shape s = {g[0], g[1], g[2], g[3], g[4], g[5], g[5], g[6], g[7],
                                  bf ? EQM_NN_BF16 : 0u};
            nn_conv2d_set_algo(g[8]);
            int Ho = (g[1] + 2 * g[7] - g[5]) / g[6] + 1, Wo = (g[2] + 2 * g[7] - g[5]) / g[6] + 1;
            size_t M = (size_t)g[0] * Ho * Wo, C = (size_t)g[4], no = M * C;
            size_t ni = (size_t)g[0] * g[1] * g[2] * g[3], nw = C * g[5] * g[5] * g[3];
            float *x = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *o1 = zeros(no), *o2 = zeros(no);
            for (size_t k = 0; k < ni; k++)
                x[k] += 0.5f; /* a mean away from 0: sums of squares are not sums of noise */
            double st[2 * C];
            ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, o1, x, w), EQM_OK);
            ck_assert_int_eq(NN()->conv2d_forward_stats(NULL, &s, o2, x, w, st), EQM_OK);
            ck_assert_msg(!memcmp(o1, o2, no * sizeof(float)),
                          "conv stats case %zu bf16 %d: out differs from conv2d_forward", i, bf);
            double worst = 0;
            for (size_t j = 0; j < C; j++) {
                double sum = 0, sq = 0, as = 0;
                for (size_t m = 0; m < M; m++) {
                    double v = o1[m * C + j];
                    sum += v, sq += v * v, as += fabs(v);
                }
                double e1 = fabs(st[j] - sum) / ((64 + 2) * U24 * as + 1e-30);
                double e2 = fabs(st[C + j] - sq) / ((64 + 2) * U24 * sq + 1e-30);
                if (e1 > worst)
                    worst = e1;
                if (e2 > worst)
                    worst = e2;
            }
            fprintf(stderr, "conv stats case %zu bf16 %d: worst error %.3f of its bound\n", i,
                    bf, worst);
            ck_assert_msg(worst <= 1.0, "conv stats case %zu bf16 %d: %.3f of the bound", i, bf,
                          worst);
            /* BN with those stats against BN summing them itself */
            eqm_bn_shape bs = {(int)M, (int)C, 1, 1, 1, 1e-5f, 0.1f};
            float *gm = rnd(C, 1.f), *bt = rnd(C, 1.f), *rm1 = zeros(C), *rv1 = zeros(C);
            float *rm2 = zeros(C), *rv2 = zeros(C), *sv1 = zeros(2 * C), *sv2 = zeros(2 * C);
            float *a1 = zeros(no), *a2 = zeros(no);
            ck_assert_int_eq(NN()->batchnorm_forward(NULL, &bs, a1, o1, gm, bt, rm1, rv1, sv1),
                             EQM_OK);
            ck_assert_int_eq(NN()->batchnorm_forward_ex(NULL, &bs, 0, a2, o1, NULL, gm, bt, rm2, rv2,
                                                        sv2, st),
                             EQM_OK);
            for (size_t j = 0; j < 2 * C; j++) /* mean, inv_std: ~1e-6 relative */
                ck_assert_msg(fabs((double)sv1[j] - sv2[j]) <= 1e-5 * fabs((double)sv1[j]) + 1e-6,
                              "bn with conv stats case %zu: save[%zu] %.9g vs %.9g", i, j,
                              (double)sv2[j], (double)sv1[j]);
            ck_assert_int_eq(NN()->batchnorm_forward_ex(NULL, &bs, 1u, a2, o1, NULL, gm, bt, rm2, rv2,
                                                        sv2, st),
                             EQM_ERR_INVAL);
            free(x), free(w), free(o1), free(o2), free(gm), free(bt), free(rm1), free(rv1),
                free(rm2), free(rv2), free(sv1), free(sv2), free(a1), free(a2);
        }
    eqm_conv2d_shape s = {1, 4, 4, 16, 16, 3, 3, 1, 1, 0};
    float v[256] = {0};
    ck_assert_int_eq(NN()->conv2d_forward_stats(NULL, &s, v, v, v, NULL), EQM_ERR_INVAL);
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* The 1-thread side of a threads-bitwise test: the pool's size is set once per process,
 * so a child forked before this process starts its pool runs fn(one, arg) at 1 thread into
 * n zeroed floats of shared memory (returned; the caller munmaps n floats). fork_ok: not
 * under CK_FORK=no (the pool may already be running; the case is then skipped). */
static int fork_ok(void)
{
    const char *fk = getenv("CK_FORK");
    if (fk && !strcmp(fk, "no")) {
        fprintf(stderr, "CK_FORK=no: the thread pool may be running, 1-thread case skipped\n");
        return 0;
    }
    return 1;
}

static float *one_thread(size_t n, int (*fn)(float *one, void *arg), void *arg)
{
    float *one =
        mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(one != MAP_FAILED);
    memset(one, 0, n * sizeof(float));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        host_threads_init(1);
        _exit(fn(one, arg) ? 1 : 0);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "1-thread child failed (%d)", st);
    return one;
}

typedef struct {
    const eqm_conv2d_shape *cs;
    int ns;
    float **x, **g, **w;
    const size_t *off;
    int fwd; /* 1: forward, dX and dW at one + off[i] (out, dx, dw in a row); 0: dW only */
    const size_t (*n3)[3];
} conv_runs;

static int conv_runs_fn(float *one, void *arg)
{
    const conv_runs *r = arg;
    int bad = 0;
    for (int i = 0; i < r->ns; i++) {
        float *o = one + r->off[i];
        if (!r->fwd) {
            bad |= NN()->conv2d_backward(NULL, &r->cs[i], NULL, o, r->g[i], r->x[i], r->w[i]);
            continue;
        }
        float *dx = o + r->n3[i][0], *dw = dx + r->n3[i][1];
        bad |= NN()->conv2d_forward(NULL, &r->cs[i], o, r->x[i], r->w[i]);
        bad |= NN()->conv2d_backward(NULL, &r->cs[i], dx, dw, r->g[i], r->x[i], r->w[i]);
    }
    return bad;
}

/* The implicit dW (amx_dw.c; loop index 1 vdpbf16ps, 2 AMX) sums 4 fixed reduction groups
 * and slices its blocks by the thread count: dw must come out bit for bit the same at 1 and
 * 2 threads. The pool's size is set once per process, so a child process (fork, before this
 * one starts its pool) computes the 1-thread dw into shared memory. Shapes: several chunks
 * per group, 64 x 16 blocks, a 5x5 with a partial column block (N Hr Wr = 297, not a
 * multiple of 32), pad 0 with Co 24; strided (vdpbf16ps only): 3x3 s2 on odd sizes with
 * several chunks, 5x5 s3 pad 2. */
START_TEST(test_amx_dw_threads_bitwise)
{
    if (!set_mode(_i))
        return;
    if (!fork_ok())
        return;
    static const eqm_conv2d_shape cs[] = {
        {64, 8, 8, 128, 128, 3, 3, 1, 1, EQM_NN_BF16},
        {4, 12, 12, 32, 16, 3, 3, 1, 1, EQM_NN_BF16},
        {3, 9, 7, 16, 40, 5, 5, 1, 2, EQM_NN_BF16},
        {3, 12, 10, 32, 24, 3, 3, 1, 0, EQM_NN_BF16},
        {24, 17, 15, 32, 40, 3, 3, 2, 1, EQM_NN_BF16},
        {3, 10, 8, 16, 20, 5, 5, 3, 2, EQM_NN_BF16},
    };
    enum { NS = 6 };
    const int ns = nn_bf16_native() == 2 ? 4 : NS; /* AMX: stride 1 only */
    float *x[NS], *g[NS], *w[NS];
    size_t nw[NS], off[NS + 1] = {0};
    for (int i = 0; i < NS; i++) {
        const eqm_conv2d_shape *s = &cs[i];
        ck_assert(i >= ns || nn_amx_dw_ok(s));
        int Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
        int Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
        nw[i] = (size_t)s->C_out * s->kh * s->kw * s->C_in;
        x[i] = rnd((size_t)s->N * s->H * s->W * s->C_in, 1.f);
        g[i] = rnd((size_t)s->N * Ho * Wo * s->C_out, 1.f);
        w[i] = rnd(nw[i], 0.2f);
        off[i + 1] = off[i] + nw[i];
    }
    nn_conv2d_set_algo(5); /* the last shape's fill is under the default's 0.7 */
    conv_runs cr = {cs, ns, x, g, w, off, 0, NULL};
    float *one = one_thread(off[NS], conv_runs_fn, &cr);
    host_threads_init(2);
    ck_assert_int_eq(host_threads(), 2);
    for (int i = 0; i < NS; i++) {
        float *dw = zeros(nw[i]);
        if (i < ns) {
            ck_assert_int_eq(NN()->conv2d_backward(NULL, &cs[i], NULL, dw, g[i], x[i], w[i]),
                             EQM_OK);
            ck_assert_msg(memcmp(dw, one + off[i], nw[i] * sizeof *dw) == 0,
                          "implicit dW kernel %d shape %d: 2 threads differ from 1", _i, i);
            double d = 0;
            for (size_t k = 0; k < nw[i]; k++)
                d += fabs((double)dw[k]);
            ck_assert_msg(d > 0, "implicit dW kernel %d shape %d: all zero", _i, i);
        }
        free(dw), free(x[i]), free(g[i]), free(w[i]);
    }
    munmap(one, off[NS] * sizeof(float));
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* amx_conv.c's Winograd (algo 6; loop index 0: bf16 products on vdpbf16ps, 1: fp32 with
 * FMA): forward, dX and dW bit for bit the same at 1 and 2 threads (the forward's groups
 * are whole images; the dW sums 4 fixed groups of tiles). Shapes: groups of 36 tiles over images of
 * 16 (chunks cut images, the dW's last chunk short and odd), 30 tiles an image with C 16, C_out 48
 * (a 16-column panel), 7x7 (odd: edge tiles with one output row or column). As
 * test_amx_dw_threads_bitwise: the 1-thread results come from a forked child. */
START_TEST(test_wv_threads_bitwise)
{
    if (!set_mode(1))
        return;
    if (!fork_ok())
        return;
    eqm_conv2d_shape cs[] = {
        {9, 8, 8, 32, 48, 3, 3, 1, 1, EQM_NN_BF16},
        {5, 12, 10, 16, 16, 3, 3, 1, 1, EQM_NN_BF16},
        {3, 6, 6, 48, 32, 3, 3, 1, 2, EQM_NN_BF16},
        {7, 7, 7, 32, 16, 3, 3, 1, 1, EQM_NN_BF16},
    };
    enum { NS = 4 };
    float *x[NS], *g[NS], *w[NS];
    size_t n3[NS][3], off[NS + 1] = {0}; /* out, dx, dw */
    for (int i = 0; i < NS; i++) {
        eqm_conv2d_shape *s = &cs[i];
        if (_i == 1)
            s->flags = 0;
        int Ho = s->H + 2 * s->pad - 2, Wo = s->W + 2 * s->pad - 2;
        n3[i][0] = (size_t)s->N * Ho * Wo * s->C_out;
        n3[i][1] = (size_t)s->N * s->H * s->W * s->C_in;
        n3[i][2] = (size_t)s->C_out * 9 * s->C_in;
        x[i] = rnd(n3[i][1], 1.f), g[i] = rnd(n3[i][0], 1.f), w[i] = rnd(n3[i][2], 0.2f);
        off[i + 1] = off[i] + n3[i][0] + n3[i][1] + n3[i][2];
    }
    nn_conv2d_set_algo(6);
    conv_runs cr = {cs, NS, x, g, w, off, 1, (const size_t(*)[3])n3};
    float *one = one_thread(off[NS], conv_runs_fn, &cr);
    host_threads_init(2);
    ck_assert_int_eq(host_threads(), 2);
    for (int i = 0; i < NS; i++) {
        float *r = zeros(n3[i][0] + n3[i][1] + n3[i][2]), *dx = r + n3[i][0], *dw = dx + n3[i][1];
        ck_assert_int_eq(NN()->conv2d_forward(NULL, &cs[i], r, x[i], w[i]), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_backward(NULL, &cs[i], dx, dw, g[i], x[i], w[i]), EQM_OK);
        static const char *what[3] = {"forward", "dX", "dW"};
        for (int k = 0, o = 0; k < 3; o += (int)n3[i][k], k++) {
            ck_assert_msg(memcmp(r + o, one + off[i] + o, n3[i][k] * sizeof(float)) == 0,
                          "Winograd %s shape %d %s: 2 threads differ from 1", _i ? "fp32" : "bf16",
                          i, what[k]);
            double d = 0;
            for (size_t e = 0; e < n3[i][k]; e++)
                d += fabs((double)r[o + e]);
            ck_assert_msg(d > 0, "Winograd shape %d %s: all zero", i, what[k]);
        }
        free(r), free(x[i]), free(g[i]), free(w[i]);
    }
    munmap(one, off[NS] * sizeof(float));
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* Where the default takes amx_conv.c's Winograd on vdpbf16ps (wv_pick, nn_wv_dw_pick): the
 * default's forward, dX and dW are bit for bit algo 6's (Winograd) or algo 5's (the
 * implicit kernels), as the picks say: from 256 tiles a call, the dW also from C_in 32. */
START_TEST(test_wv_default_pick)
{
    if (!set_mode(1))
        return;
    host_threads_init(2);
    static const struct {
        eqm_conv2d_shape s;
        int fwd, dw; /* the algo the default's forward and dX, and dW, must equal */
    } cs[] = {
        {{4, 16, 16, 32, 32, 3, 3, 1, 1, EQM_NN_BF16}, 6, 6}, /* 256 tiles */
        {{2, 16, 16, 32, 32, 3, 3, 1, 1, EQM_NN_BF16}, 5, 5}, /* 128 */
        {{4, 16, 16, 16, 32, 3, 3, 1, 1, EQM_NN_BF16}, 6, 5}, /* C_in 16: the implicit dW */
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        const eqm_conv2d_shape *s = &cs[i].s;
        size_t no = (size_t)s->N * s->H * s->W * s->C_out,
               ni = (size_t)s->N * s->H * s->W * s->C_in;
        size_t nw = (size_t)s->C_out * 9 * s->C_in;
        float *x = rnd(ni, 1.f), *w = rnd(nw, 0.2f), *g = rnd(no, 1.f);
        float *o[3], *dx[3], *dw[3];
        static const int algo[3] = {0, 5, 6};
        for (int v = 0; v < 3; v++) {
            o[v] = zeros(no), dx[v] = zeros(ni), dw[v] = zeros(nw);
            nn_conv2d_set_algo(algo[v]);
            ck_assert_int_eq(NN()->conv2d_forward(NULL, s, o[v], x, w), EQM_OK);
            ck_assert_int_eq(NN()->conv2d_backward(NULL, s, dx[v], dw[v], g, x, w), EQM_OK);
        }
        int f = cs[i].fwd == 5 ? 1 : 2, d = cs[i].dw == 5 ? 1 : 2;
        ck_assert_msg(
            !memcmp(o[0], o[f], no * sizeof(float)) && memcmp(o[1], o[2], no * sizeof(float)),
            "shape %zu: the default forward is not algo %d's (or 5 and 6 agree)", i, cs[i].fwd);
        ck_assert_msg(!memcmp(dx[0], dx[f], ni * sizeof(float)),
                      "shape %zu: the default dX is not algo %d's", i, cs[i].fwd);
        ck_assert_msg(!memcmp(dw[0], dw[d], nw * sizeof(float)) &&
                          memcmp(dw[1], dw[2], nw * sizeof(float)),
                      "shape %zu: the default dW is not algo %d's (or 5 and 6 agree)", i, cs[i].dw);
        for (int v = 0; v < 3; v++)
            free(o[v]), free(dx[v]), free(dw[v]);
        free(x), free(w), free(g);
    }
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* The strided implicit dW on vdpbf16ps (amx_dw.c's phase canvases) on odd geometries: pads
 * from 0 to past the stride, a phase with no input rows (H = 1 at stride 2, pad 0 or 1),
 * 1x1 with pad, kernels smaller than the stride, 2x2 stride 4, stride 3 and 4. Each dW
 * (algo 5: the implicit kernel wherever nn_amx_dw_ok) against the fp32 conv of the rounded
 * tensors, to fp32 summation error (the products are exact). */
START_TEST(test_amx_dw_strided_shapes)
{
    if (!set_mode(1))
        return;
    host_threads_init(2);
    static const eqm_conv2d_shape cs[] = {
        /* N, H, W, Ci, Co, kh, kw, stride, pad */
        {2, 7, 9, 16, 20, 3, 3, 2, 2, 0}, {3, 1, 5, 16, 16, 3, 3, 2, 1, 0},
        {2, 1, 3, 16, 8, 1, 1, 2, 0, 0},  {2, 6, 7, 32, 16, 1, 1, 2, 1, 0},
        {2, 9, 8, 16, 24, 2, 2, 4, 1, 0}, {2, 11, 13, 16, 40, 4, 4, 3, 1, 0},
        {2, 12, 9, 16, 16, 3, 5, 4, 3, 0}, {5, 4, 4, 48, 32, 3, 3, 2, 1, 0},
        {2, 10, 10, 16, 16, 3, 3, 3, 0, 0}, {2, 8, 6, 16, 72, 2, 3, 2, 0, 0},
    };
    nn_conv2d_set_algo(5);
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        const eqm_conv2d_shape *s = &cs[i];
        eqm_conv2d_shape sb = *s;
        sb.flags = EQM_NN_BF16;
        ck_assert_msg(nn_amx_dw_ok(&sb), "strided shape %zu not taken", i);
        int Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
        int Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
        size_t ni = (size_t)s->N * s->H * s->W * s->C_in, no = (size_t)s->N * Ho * Wo * s->C_out;
        size_t nw = (size_t)s->C_out * s->kh * s->kw * s->C_in;
        float *x = rnd(ni, 1.f), *w = rnd(nw, 0.2f), *g = rnd(no, 1.f);
        nn_bf16_round(x, x, ni), nn_bf16_round(w, w, nw), nn_bf16_round(g, g, no);
        float *ax = dup(x, ni), *ag = dup(g, no);
        for (size_t k = 0; k < ni; k++)
            ax[k] = fabsf(ax[k]);
        for (size_t k = 0; k < no; k++)
            ag[k] = fabsf(ag[k]);
        float *dw[3] = {zeros(nw), zeros(nw), zeros(nw)};
        ck_assert_int_eq(NN()->conv2d_backward(NULL, &sb, NULL, dw[0], g, x, w), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_backward(NULL, s, NULL, dw[1], g, x, w), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_backward(NULL, s, NULL, dw[2], ag, ax, w), EQM_OK);
        check_bound("strided implicit dW vs rounded fp32", (int)i, dw[0], dw[1], dw[2], nw, 0,
                    s->N * Ho * Wo);
        double d = 0;
        for (size_t k = 0; k < nw; k++)
            d += fabs((double)dw[0][k]);
        ck_assert_msg(d > 0, "strided shape %zu: dW all zero", i);
        for (int v = 0; v < 3; v++)
            free(dw[v]);
        free(x), free(w), free(g), free(ax), free(ag);
    }
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* The host's precision (train.precision = bf16): a conv whose own flags are 0 runs exactly
 * as with EQM_NN_BF16 (bit for bit, forward, dX, dW), and precision 0 gives back fp32. */
START_TEST(test_conv_precision)
{
    host_threads_init(2);
    const eqm_conv2d_shape *s = &conv_cases[N_CONV - 1].s; /* the default path */
    size_t ni = (size_t)s->N * s->H * s->W * s->C_in, no = (size_t)s->N * s->H * s->W * s->C_out;
    size_t nw = (size_t)s->C_out * 9 * s->C_in;
    float *x = rnd(ni, 1.f), *w = rnd(nw, 0.2f), *g = rnd(no, 1.f);
    float *o[3], *dx[3], *dw[3];
    for (int v = 0; v < 3; v++)
        o[v] = zeros(no), dx[v] = zeros(ni), dw[v] = zeros(nw);
    conv_run(s, EQM_NN_BF16, x, w, g, o[0], dx[0], dw[0]);
    nn_precision_set(EQM_NN_BF16);
    ck_assert_uint_eq(nn_precision(), EQM_NN_BF16);
    conv_run(s, 0, x, w, g, o[1], dx[1], dw[1]);
    nn_precision_set(0);
    conv_run(s, 0, x, w, g, o[2], dx[2], dw[2]);
    ck_assert_msg(!memcmp(o[0], o[1], no * 4) && !memcmp(dx[0], dx[1], ni * 4) &&
                      !memcmp(dw[0], dw[1], nw * 4),
                  "conv under precision bf16 differs from the EQM_NN_BF16 conv");
    ck_assert_msg(memcmp(o[0], o[2], no * 4), "precision 0 still runs bf16");
    for (int v = 0; v < 3; v++)
        free(o[v]), free(dx[v]), free(dw[v]);
    free(x), free(w), free(g);
}
END_TEST

/* ABI 1.6 EQM_NN_IN_BF16: conv2d_forward, conv2d_forward_stats and conv2d_backward read `in`
 * as eqm_bf16 values. x16 is a bf16 array (random values, about a third zeros as after a
 * ReLU, and two bf16 subnormals), xw its widening (the exact floats). Every case runs the
 * op with IN_BF16 on x16 and the plain op on xw, at fp32 precision and at bf16 (the
 * shape's flag, or nn_precision_set for every other shape), on each bf16 kernel, under
 * every algorithm 0-5:
 * - din: bit for bit the plain call's (no dX path reads in; += into random din, or
 *   EQM_NN_SET_DIN for every other algorithm);
 * - out, stats, dw: bit for bit the plain call's wherever the plain call takes no path
 *   that IN_BF16 skips (then both run the same kernel on the same floats: im2col rows and
 *   the small-C_in direct kernels' padded copy widen x16, the AMX implicit kernels copy it
 *   as they would round xw): not pointwise (the plain call is one GEMM on xw, IN_BF16 the
 *   im2col tiles), not where Winograd may run (3x3 stride 1, C_in, C_out >= 16, under
 *   algorithm 3, or 0 except bf16 on AMX), not where the general direct kernels may run
 *   (fp32, algorithms 0 and 4, unless the small-C_in ones apply);
 * - everywhere: out and dw against a double-precision conv of the operands the op
 *   multiplies (xw exactly; w and dout rounded to bf16 at bf16 precision): IN_BF16 takes
 *   no Winograd or direct path, so its products are exact (bf16) or rounded once (fp32),
 *   summed in fp32: |err| <= (K + 2) u S with K the reduction length (dw: N Ho Wo, plus
 *   1 for the dw it adds into) and S the same sum over |operands|; stats against double
 *   sums of the out returned, (64 + 2) u sum |v| as test_conv_stats. */
typedef struct {
    eqm_conv2d_shape s;
    const char *what;
} inb_case;

static const inb_case inb_cases[] = {
    {{2, 10, 10, 16, 24, 3, 3, 1, 1, 0}, "3x3 s1 C_in 16 (AMX implicit forward and dW)"},
    {{2, 8, 8, 32, 40, 3, 3, 1, 1, 0}, "3x3 s1 32->40 (a partial panel)"},
    {{2, 18, 20, 16, 24, 3, 3, 1, 1, 0}, "3x3 s1 18x20 (implicit dW: runs of 16 pixels)"},
    {{3, 9, 11, 24, 16, 3, 3, 1, 1, 0}, "3x3 s1 C_in 24 (dW on tiles: C_in % 16)"},
    {{2, 9, 11, 16, 32, 3, 3, 2, 1, 0}, "3x3 s2, Wo 6 (tiles; AMX under algo 5)"},
    {{2, 34, 34, 16, 32, 3, 3, 2, 1, 0}, "3x3 s2, Wo 17 (AMX forward by default)"},
    {{2, 8, 8, 16, 24, 1, 1, 1, 0, 0}, "1x1 s1 pointwise"},
    {{2, 7, 9, 20, 12, 1, 1, 1, 0, 0}, "1x1 s1 pointwise, odd sizes"},
    {{2, 8, 8, 16, 32, 1, 1, 2, 0, 0}, "1x1 s2 (shortcut)"},
    {{2, 6, 6, 16, 32, 1, 1, 1, 1, 0}, "1x1 pad 1 (not pointwise)"},
    {{2, 11, 19, 3, 32, 3, 3, 1, 1, 0}, "stem 3->32"},
    {{2, 8, 7, 4, 48, 3, 3, 2, 0, 0}, "C_in 4 s2 pad 0"},
    {{3, 5, 7, 5, 7, 3, 3, 2, 1, 0}, "small odd 5->7 s2"},
    {{2, 11, 9, 16, 40, 3, 3, 2, 1, 0}, "3x3 s2 odd sizes (vdpbf16ps implicit dW)"},
    {{2, 9, 7, 32, 24, 1, 1, 2, 0, 0}, "1x1 s2 odd sizes (vdpbf16ps implicit dW)"},
    {{2, 10, 8, 16, 20, 5, 5, 3, 2, 0}, "5x5 s3 pad 2 (vdpbf16ps implicit dW)"},
};
#define N_INB (int)(sizeof inb_cases / sizeof *inb_cases)

/* out (M, Co) and its S; dw (Co, K) = dw0 + dout^T cols and its S, in double */
static void inb_ref(const eqm_conv2d_shape *s, const float *x, const float *w, const float *g,
                    const float *dw0, double *out, double *os, double *dw, double *ds)
{
    const int Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    const int Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    const size_t Ci = (size_t)s->C_in, Co = (size_t)s->C_out, K = (size_t)s->kh * s->kw * Ci;
    for (size_t i = 0; i < Co * K; i++)
        dw[i] = dw0[i], ds[i] = fabs((double)dw0[i]);
    for (int n = 0; n < s->N; n++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                size_t m = ((size_t)n * Ho + oy) * Wo + ox;
                for (size_t co = 0; co < Co; co++)
                    out[m * Co + co] = 0, os[m * Co + co] = 0;
                for (int ky = 0; ky < s->kh; ky++)
                    for (int kx = 0; kx < s->kw; kx++) {
                        int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                        if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W)
                            continue;
                        const float *xp = x + (((size_t)n * s->H + iy) * s->W + ix) * Ci;
                        for (size_t co = 0; co < Co; co++) {
                            size_t k0 = ((size_t)ky * s->kw + kx) * Ci;
                            const float *wp = w + co * K + k0;
                            double a = 0, b = 0, gv = g[m * Co + co];
                            for (size_t ci = 0; ci < Ci; ci++) {
                                a += (double)xp[ci] * wp[ci], b += fabs((double)xp[ci] * wp[ci]);
                                dw[co * K + k0 + ci] += gv * xp[ci];
                                ds[co * K + k0 + ci] += fabs(gv * xp[ci]);
                            }
                            out[m * Co + co] += a, os[m * Co + co] += b;
                        }
                    }
            }
}

static double inb_worst(const float *got, const double *want, const double *S, size_t n, int K,
                        size_t *wi)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / ((K + 2) * U24 * S[i] + 1e-30);
        if (!(e <= worst))
            worst = e, *wi = i;
    }
    return worst;
}

START_TEST(test_conv_in_bf16)
{
    const inb_case *cc = &inb_cases[_i];
    eqm_conv2d_shape s0 = cc->s;
    host_threads_init(2);
    const int Ho = (s0.H + 2 * s0.pad - s0.kh) / s0.stride + 1;
    const int Wo = (s0.W + 2 * s0.pad - s0.kw) / s0.stride + 1;
    const size_t ni = (size_t)s0.N * s0.H * s0.W * s0.C_in, M = (size_t)s0.N * Ho * Wo;
    const size_t Co = (size_t)s0.C_out, no = M * Co, K = (size_t)s0.kh * s0.kw * s0.C_in;
    const size_t nw = Co * K;
    const int pointwise = s0.kh == 1 && s0.kw == 1 && s0.stride == 1 && s0.pad == 0;
    uint16_t *x16 = malloc(ni * sizeof *x16);
    float *xw = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *g = rnd(no, 1.f), *dw0 = rnd(nw, 1.f);
    float *din0 = rnd(ni, 1.f);
    for (size_t i = 0; i < ni; i++) {
        if (i % 3 == 1)
            xw[i] = 0;
        x16[i] = nn_bf16_from_f32(xw[i]);
    }
    x16[ni / 2] = 0x0001, x16[ni / 3] = 0x8005; /* bf16 subnormals */
    for (size_t i = 0; i < ni; i++)
        xw[i] = nn_bf16_to_f32(x16[i]);
    double *ro = malloc(no * sizeof *ro), *rs = malloc(no * sizeof *rs);
    double *rdw = malloc(nw * sizeof *rdw), *rds = malloc(nw * sizeof *rds);
    float *o[2], *o2[2], *dx[2], *dw[2];
    for (int v = 0; v < 2; v++)
        o[v] = zeros(no), o2[v] = zeros(no), dx[v] = zeros(ni), dw[v] = zeros(nw);
    double *st[2] = {malloc(2 * Co * sizeof(double)), malloc(2 * Co * sizeof(double))};
    int nbit = 0, ncase = 0;
    for (int bf = 0; bf < 2; bf++) {
        /* the operands the op multiplies */
        float *wr = dup(w, nw), *gr = dup(g, no);
        if (bf)
            nn_bf16_round(wr, wr, nw), nn_bf16_round(gr, gr, no);
        inb_ref(&s0, xw, wr, gr, dw0, ro, rs, rdw, rds);
        free(wr), free(gr);
        for (int mode = bf ? 0 : 2; mode < 3; mode++) {
            if (mode > nn_bf16_cpu())
                continue;
            nn_bf16_set_native(mode);
            for (int algo = 0; algo <= 5; algo++) {
                nn_conv2d_set_algo(algo);
                const int viaprec = bf && _i % 2; /* bf16 from the host's precision */
                eqm_conv2d_shape sp = s0, sb;
                sp.flags = bf && !viaprec ? EQM_NN_BF16 : 0;
                if (algo % 2)
                    sp.flags |= EQM_NN_SET_DIN;
                sb = sp;
                sb.flags |= EQM_NN_IN_BF16;
                const float *xin = (const float *)(const void *)x16;
                int wino = s0.kh == 3 && s0.kw == 3 && s0.stride == 1 && s0.C_in >= 16 &&
                           s0.C_out >= 16 && (algo == 3 || (algo == 0 && !(bf && mode == 2)));
                int direct = !bf && (algo == 0 || algo == 4) && nn_direct_ok(&sp) &&
                             !nn_direct_small_ok(&sp);
                int bit = !pointwise && !wino && !direct;
                char what[160];
                snprintf(what, sizeof what, "in_bf16 %s: bf16 %d%s kernel %d algo %d", cc->what, bf,
                         viaprec ? " (precision)" : "", mode, algo);
                if (viaprec)
                    nn_precision_set(EQM_NN_BF16);
                for (int v = 0; v < 2; v++) {
                    const eqm_conv2d_shape *t = v ? &sb : &sp;
                    const float *xv = v ? xin : xw;
                    memcpy(dx[v], din0, ni * sizeof(float));
                    memcpy(dw[v], dw0, nw * sizeof(float));
                    ck_assert_int_eq(NN()->conv2d_forward(NULL, t, o[v], xv, w), EQM_OK);
                    ck_assert_int_eq(NN()->conv2d_forward_stats(NULL, t, o2[v], xv, w, st[v]),
                                     EQM_OK);
                    ck_assert_int_eq(NN()->conv2d_backward(NULL, t, dx[v], dw[v], g, xv, w),
                                     EQM_OK);
                    /* dW alone and dX alone: the same bits as together */
                    float *dxa = dup(din0, ni), *dwa = dup(dw0, nw);
                    ck_assert_int_eq(NN()->conv2d_backward(NULL, t, NULL, dwa, g, xv, w), EQM_OK);
                    ck_assert_int_eq(NN()->conv2d_backward(NULL, t, dxa, NULL, g, xv, w), EQM_OK);
                    ck_assert_msg(!memcmp(dwa, dw[v], nw * 4) && !memcmp(dxa, dx[v], ni * 4),
                                  "%s: dW / dX alone differ from both at once (%d)", what, v);
                    free(dxa), free(dwa);
                }
                nn_precision_set(0);
                ncase++;
                ck_assert_msg(!memcmp(dx[0], dx[1], ni * 4), "%s: din differs from the plain call's",
                              what);
                ck_assert_msg(!memcmp(o[1], o2[1], no * 4),
                              "%s: forward_stats out differs from conv2d_forward's", what);
                if (bit) {
                    nbit++;
                    ck_assert_msg(!memcmp(o[0], o[1], no * 4), "%s: out not bit for bit the plain's",
                                  what);
                    ck_assert_msg(!memcmp(st[0], st[1], 2 * Co * sizeof(double)),
                                  "%s: stats not bit for bit the plain's", what);
                    ck_assert_msg(!memcmp(dw[0], dw[1], nw * 4), "%s: dw not bit for bit the plain's",
                                  what);
                }
                size_t wi = 0;
                double e = inb_worst(o[1], ro, rs, no, (int)K, &wi);
                ck_assert_msg(e <= 1.0, "%s: out[%zu] %.9g, reference %.9g (%.3f of the bound)",
                              what, wi, (double)o[1][wi], ro[wi], e);
                double e2 = inb_worst(dw[1], rdw, rds, nw, (int)M + 1, &wi);
                ck_assert_msg(e2 <= 1.0, "%s: dw[%zu] %.9g, reference %.9g (%.3f of the bound)",
                              what, wi, (double)dw[1][wi], rdw[wi], e2);
                for (size_t c = 0; c < Co; c++) {
                    double sum = 0, sq = 0, as = 0;
                    for (size_t m = 0; m < M; m++) {
                        double v = o[1][m * Co + c];
                        sum += v, sq += v * v, as += fabs(v);
                    }
                    ck_assert_msg(fabs(st[1][c] - sum) <= (64 + 2) * U24 * as + 1e-30 &&
                                      fabs(st[1][Co + c] - sq) <= (64 + 2) * U24 * sq + 1e-30,
                                  "%s: stats of channel %zu", what, c);
                }
                if (algo == 0)
                    fprintf(stderr, "%s: out %.3f, dw %.3f of the bound%s\n", what, e, e2,
                            bit ? ", bitwise" : "");
            }
        }
    }
    /* on AMX the implicit kernels' cases are among the bitwise ones */
    if (nn_bf16_cpu() == 2 && !pointwise && s0.C_in >= 16)
        ck_assert_int_ge(nbit, 2);
    fprintf(stderr, "in_bf16 %s: %d runs, %d bitwise\n", cc->what, ncase, nbit);
    for (int v = 0; v < 2; v++)
        free(o[v]), free(o2[v]), free(dx[v]), free(dw[v]), free(st[v]);
    free(x16), free(xw), free(w), free(g), free(dw0), free(din0), free(ro), free(rs), free(rdw),
        free(rds);
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* EQM_NN_OUT_BF16 (ABI 1.6): conv2d_forward and conv2d_forward_stats write `out` as eqm_bf16
 * values. On the shapes of test_conv_in_bf16, at fp32 and bf16 precision (the shape's flag,
 * or the host's precision for every other shape), on each bf16 kernel, under every
 * algorithm 0-5, with and without EQM_NN_IN_BF16 (the ResNet passes both):
 * - out (forward and forward_stats) == nn_bf16_rne(out of the same call without the flag),
 *   bit for bit, and not one byte written past the N Ho Wo C_out bf16 (a path that still
 *   stored floats would fill twice that);
 * - stats bit for bit the plain call's: the native paths (implicit AMX, direct kernels)
 *   sum the floats in their epilogues as without the flag, and the other paths run one
 *   chunk at these sizes (the float output of the whole call, then narrowed: the plain
 *   call's sums; test_conv_out_bf16_chunks covers several chunks);
 * - conv2d_backward with the flag set gives the plain call's din and dw bit for bit (it
 *   ignores the flag: its din, dw and dout are floats). */
START_TEST(test_conv_out_bf16)
{
    const inb_case *cc = &inb_cases[_i];
    eqm_conv2d_shape s0 = cc->s;
    host_threads_init(2);
    const int Ho = (s0.H + 2 * s0.pad - s0.kh) / s0.stride + 1;
    const int Wo = (s0.W + 2 * s0.pad - s0.kw) / s0.stride + 1;
    const size_t ni = (size_t)s0.N * s0.H * s0.W * s0.C_in, M = (size_t)s0.N * Ho * Wo;
    const size_t Co = (size_t)s0.C_out, no = M * Co, nw = Co * s0.kh * s0.kw * s0.C_in;
    enum { PAST = 64 }; /* guard bf16 after out */
    uint16_t *x16 = malloc(ni * sizeof *x16);
    float *xw = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *g = rnd(no, 1.f), *dw0 = rnd(nw, 1.f);
    float *din0 = rnd(ni, 1.f);
    for (size_t i = 0; i < ni; i++) {
        if (i % 3 == 1)
            xw[i] = 0;
        x16[i] = nn_bf16_from_f32(xw[i]);
        xw[i] = nn_bf16_to_f32(x16[i]);
    }
    float *o = zeros(no), *o2 = zeros(no), *dx[2], *dw[2];
    uint16_t *ob = malloc((no + PAST) * 2), *ob2 = malloc((no + PAST) * 2);
    for (int v = 0; v < 2; v++)
        dx[v] = zeros(ni), dw[v] = zeros(nw);
    double *st[2] = {malloc(2 * Co * sizeof(double)), malloc(2 * Co * sizeof(double))};
    int ncase = 0;
    for (int bf = 0; bf < 2; bf++)
        for (int mode = bf ? 0 : 2; mode < 3; mode++) {
            if (mode > nn_bf16_cpu())
                continue;
            nn_bf16_set_native(mode);
            for (int algo = 0; algo <= 5; algo++)
                for (int ib = 0; ib < 2; ib++) {
                    nn_conv2d_set_algo(algo);
                    const int viaprec = bf && (_i + algo) % 2;
                    eqm_conv2d_shape sp = s0, sb;
                    sp.flags = (bf && !viaprec ? EQM_NN_BF16 : 0) | (ib ? EQM_NN_IN_BF16 : 0) |
                               (algo % 2 ? EQM_NN_SET_DIN : 0);
                    sb = sp;
                    sb.flags |= EQM_NN_OUT_BF16;
                    const float *xv = ib ? (const float *)(const void *)x16 : xw;
                    char what[160];
                    snprintf(what, sizeof what,
                             "out_bf16 %s: bf16 %d%s kernel %d algo %d in_bf16 %d", cc->what, bf,
                             viaprec ? " (precision)" : "", mode, algo, ib);
                    if (viaprec)
                        nn_precision_set(EQM_NN_BF16);
                    memset(ob, 0xa5, (no + PAST) * 2), memset(ob2, 0x5a, (no + PAST) * 2);
                    ck_assert_int_eq(NN()->conv2d_forward(NULL, &sp, o, xv, w), EQM_OK);
                    ck_assert_int_eq(NN()->conv2d_forward(NULL, &sb, (float *)(void *)ob, xv, w),
                                     EQM_OK);
                    ck_assert_int_eq(NN()->conv2d_forward_stats(NULL, &sp, o2, xv, w, st[0]),
                                     EQM_OK);
                    ck_assert_int_eq(
                        NN()->conv2d_forward_stats(NULL, &sb, (float *)(void *)ob2, xv, w, st[1]),
                        EQM_OK);
                    for (int v = 0; v < 2; v++) {
                        memcpy(dx[v], din0, ni * sizeof(float));
                        memcpy(dw[v], dw0, nw * sizeof(float));
                        ck_assert_int_eq(
                            NN()->conv2d_backward(NULL, v ? &sb : &sp, dx[v], dw[v], g, xv, w),
                            EQM_OK);
                    }
                    nn_precision_set(0);
                    ncase++;
                    for (size_t i = 0; i < no; i++) {
                        ck_assert_msg(ob[i] == nn_bf16_rne(o[i]),
                                      "%s: forward out[%zu] %04x, bf16 of %.9g is %04x", what, i,
                                      ob[i], (double)o[i], nn_bf16_rne(o[i]));
                        ck_assert_msg(ob2[i] == nn_bf16_rne(o2[i]),
                                      "%s: forward_stats out[%zu] %04x, bf16 of %.9g is %04x",
                                      what, i, ob2[i], (double)o2[i], nn_bf16_rne(o2[i]));
                    }
                    for (size_t i = no; i < no + PAST; i++)
                        ck_assert_msg(ob[i] == 0xa5a5 && ob2[i] == 0x5a5a,
                                      "%s: written past the bf16 out (element %zu)", what, i);
                    ck_assert_msg(!memcmp(st[0], st[1], 2 * Co * sizeof(double)),
                                  "%s: stats not bit for bit the plain call's", what);
                    ck_assert_msg(!memcmp(dx[0], dx[1], ni * 4) && !memcmp(dw[0], dw[1], nw * 4),
                                  "%s: backward changed by EQM_NN_OUT_BF16", what);
                }
        }
    fprintf(stderr, "out_bf16 %s: %d runs\n", cc->what, ncase);
    for (int v = 0; v < 2; v++)
        free(dx[v]), free(dw[v]), free(st[v]);
    free(o), free(o2), free(ob), free(ob2), free(x16), free(xw), free(w), free(g), free(dw0),
        free(din0);
    nn_conv2d_set_algo(0);
    nn_bf16_set_native(2);
}
END_TEST

/* EQM_NN_OUT_BF16 on the paths that store floats (conv2d.c fwd_chunks: the float output a
 * chunk of images at a time, about 1 MiB, or the chunk of the bf16 input's widening,
 * narrowed): shapes of several chunks, the last one partial, on Winograd, a pointwise GEMM
 * (fp32 and bf16), im2col fp32 tiles and im2col bf16 tiles, with and without a bf16 input.
 * out == bf16(the plain call's out) bit for bit, except on a float input at fp32 through
 * Winograd or the pointwise sgemm (an sgemm may sum a row in another order in a chunk than
 * in the whole batch: OpenBLAS's Haswell kernels do): there within the bf16 rounding of
 * the plain out plus 2 K u max|x| max|w| (as test_conv_in_bf16_chunks); forward_stats' out
 * the forward's; its stats (summed per chunk) within 2 (M + 64) u sum |out| of the plain
 * call's, bit for bit with a bf16 input (the same chunks as the plain call's widening). */
START_TEST(test_conv_out_bf16_chunks)
{
    static const struct {
        int N, H, Ci, Co, k, algo, bf;
        const char *what;
    } cs[] = {
        {10, 32, 128, 128, 3, 3, 0, "Winograd, 2 images a chunk (widening: 8)"},
        {17, 32, 64, 64, 1, 0, 0, "pointwise, 4 a chunk (widening: 16)"},
        {7, 32, 16, 128, 3, 1, 0, "im2col, 2 a chunk"},
        {7, 32, 16, 128, 3, 1, 1, "im2col bf16 tiles, 2 a chunk"},
        {17, 32, 64, 64, 1, 0, 1, "pointwise bf16, 4 a chunk"},
    };
    host_threads_init(2);
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
        for (int ib = 0; ib < 2; ib++) {
            eqm_conv2d_shape s = {cs[i].N, cs[i].H, cs[i].H, cs[i].Ci, cs[i].Co, cs[i].k, cs[i].k,
                                  1, cs[i].k / 2, 0};
            s.flags = (cs[i].bf ? EQM_NN_BF16 : 0) | (ib ? EQM_NN_IN_BF16 : 0);
            nn_conv2d_set_algo(cs[i].algo);
            size_t ni = (size_t)s.N * s.H * s.W * s.C_in, no = (size_t)s.N * s.H * s.W * s.C_out;
            size_t nw = (size_t)s.C_out * s.kh * s.kw * s.C_in;
            float *x = rnd(ni, 1.f), *w = rnd(nw, 0.1f), *o = malloc(no * 4);
            uint16_t *x16 = malloc(ni * 2), *ob = malloc(no * 2), *ob2 = malloc(no * 2);
            for (size_t j = 0; j < ni; j++) {
                x16[j] = nn_bf16_from_f32(x[j]);
                x[j] = nn_bf16_to_f32(x16[j]);
            }
            const float *xin = ib ? (const float *)(const void *)x16 : x;
            double st0[2 * 128], st1[2 * 128];
            eqm_conv2d_shape sb = s;
            sb.flags |= EQM_NN_OUT_BF16;
            ck_assert_int_eq(NN()->conv2d_forward_stats(NULL, &s, o, xin, w, st0), EQM_OK);
            ck_assert_int_eq(NN()->conv2d_forward(NULL, &sb, (float *)(void *)ob, xin, w), EQM_OK);
            ck_assert_int_eq(
                NN()->conv2d_forward_stats(NULL, &sb, (float *)(void *)ob2, xin, w, st1), EQM_OK);
            /* bitwise but for a float input at fp32 through an sgemm-based path */
            const int bit = ib || cs[i].bf || cs[i].algo == 1;
            float mx = 0, mw = 0;
            for (size_t j = 0; j < ni; j++)
                mx = fabsf(x[j]) > mx ? fabsf(x[j]) : mx;
            for (size_t j = 0; j < nw; j++)
                mw = fabsf(w[j]) > mw ? fabsf(w[j]) : mw;
            const double tol = 2.0 * (double)(s.kh * s.kw * s.C_in) * 0x1.0p-24 * mx * mw;
            double asum = 0;
            size_t ndiff = 0;
            for (size_t j = 0; j < no; j++) {
                ck_assert_msg(ob2[j] == ob[j], "%s in_bf16 %d: forward_stats out[%zu] %04x, "
                              "forward's %04x", cs[i].what, ib, j, ob2[j], ob[j]);
                double d = fabs((double)nn_bf16_wide(ob[j]) - o[j]);
                ndiff += ob[j] != nn_bf16_rne(o[j]);
                ck_assert_msg(bit ? ob[j] == nn_bf16_rne(o[j])
                                  : d <= 0x1.0p-8 * (fabs(o[j]) + tol) + tol,
                              "%s in_bf16 %d: out[%zu] %04x, bf16 of %.9g is %04x", cs[i].what,
                              ib, j, ob[j], (double)o[j], nn_bf16_rne(o[j]));
                asum += fabs(o[j]);
            }
            if (!bit)
                fprintf(stderr, "out_bf16 chunks, %s: %zu of %zu outputs not bf16(plain)\n",
                        cs[i].what, ndiff, no);
            const double stol = 2.0 * (double)(no / s.C_out + 64) * 0x1.0p-24 * asum;
            for (int c = 0; c < 2 * s.C_out; c++)
                ck_assert_msg(ib ? st1[c] == st0[c] : fabs(st1[c] - st0[c]) <= stol,
                              "%s in_bf16 %d: stats[%d] %g vs %g", cs[i].what, ib, c, st1[c],
                              st0[c]);
            free(x), free(w), free(o), free(x16), free(ob), free(ob2);
        }
    nn_conv2d_set_algo(0);
}
END_TEST

/* linear (the method heads and the EquiMod module) under the host's precision bf16
 * against the fp32 op: forward (K = C_in), dX (K = C_out), dW (K = N rows) within the
 * per-element bound of the file header, (2^-7 + 2^-16 + 2 (K + 2) u) S, with S the same op
 * on |in|, |w|, |dout| (the bias adds exactly: it enters S as |b|); against the fp32 op on
 * the bf16-rounded operands within 2 (K + 2) u S' (the products are exact); the bias
 * gradient is fp32 (bit-equal). Shapes: a head layer at quickstart width (3N = 96 rows),
 * one large enough to be split over the 2 threads, and a tiny odd one. */
static void lin_run(const eqm_linear_shape *s, uint32_t prec, const float *x, const float *w,
                    const float *b, const float *g, float *o, float *dx, float *dw, float *db)
{
    nn_precision_set(prec);
    ck_assert_int_eq(NN()->linear_forward(NULL, s, o, x, w, b), EQM_OK);
    ck_assert_int_eq(NN()->linear_backward(NULL, s, dx, dw, db, g, x, w), EQM_OK);
    nn_precision_set(0);
}

/* conv2d_forward at fp32 products on a bf16 input (the evaluation of a bf16-stored model)
 * widens the input a chunk of images (~4 MiB) at a time and keeps the float kernels
 * (conv2d.c fwd_wide). Shapes of several chunks, the last one partial: a 3x3 conv that
 * the direct kernel takes (per image: the bits of the plain call on the widened input),
 * one Winograd takes and a pointwise GEMM (their sums may run in another order per chunk:
 * within 2 K u max|x| max|w| of the plain call), forward and forward_stats (its out is the
 * forward's, its stats within 2 (M + 64) u sum |out| of the plain's). */
START_TEST(test_conv_in_bf16_chunks)
{
    static const struct {
        int N, H, Ci, Co, k, direct;
    } cs[] = {
        {9, 64, 64, 32, 3, 1},   /* 4 images per chunk: 4, 4, 1 */
        {20, 32, 128, 128, 3, 0}, /* Winograd: 8, 8, 4 */
        {41, 32, 256, 64, 1, 0},  /* pointwise: 4 per chunk, 11 chunks */
    };
    host_threads_init(2);
    nn_conv2d_set_algo(0);
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        eqm_conv2d_shape s = {cs[i].N, cs[i].H, cs[i].H, cs[i].Ci, cs[i].Co, cs[i].k, cs[i].k,
                              1, cs[i].k / 2, 0};
        size_t ni = (size_t)s.N * s.H * s.W * s.C_in, no = (size_t)s.N * s.H * s.W * s.C_out;
        size_t nw = (size_t)s.C_out * s.kh * s.kw * s.C_in, K = (size_t)s.kh * s.kw * s.C_in;
        float *x = rnd(ni, 1.f), *w = rnd(nw, 0.1f), *o0 = malloc(no * 4), *o1 = malloc(no * 4),
              *o2 = malloc(no * 4);
        uint16_t *x16 = malloc(ni * 2);
        for (size_t j = 0; j < ni; j++) {
            x16[j] = nn_bf16_from_f32(x[j]);
            x[j] = nn_bf16_to_f32(x16[j]);
        }
        double st0[2 * 256], st1[2 * 256];
        eqm_conv2d_shape sb = s;
        sb.flags = EQM_NN_IN_BF16;
        const float *xin = (const float *)(const void *)x16;
        ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, o0, x, w), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_forward(NULL, &sb, o1, xin, w), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_forward_stats(NULL, &s, o2, x, w, st0), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_forward_stats(NULL, &sb, o2, xin, w, st1), EQM_OK);
        ck_assert_msg(!memcmp(o1, o2, no * 4), "case %zu: forward_stats out != forward's", i);
        float mx = 0, mw = 0;
        for (size_t j = 0; j < ni; j++)
            mx = fabsf(x[j]) > mx ? fabsf(x[j]) : mx;
        for (size_t j = 0; j < nw; j++)
            mw = fabsf(w[j]) > mw ? fabsf(w[j]) : mw;
        const double tol = 2.0 * (double)K * 0x1.0p-24 * mx * mw;
        double worst = 0, asum = 0;
        for (size_t j = 0; j < no; j++) {
            double d = fabs((double)o1[j] - o0[j]);
            worst = d > worst ? d : worst;
            asum += fabs(o0[j]);
        }
        if (cs[i].direct)
            ck_assert_msg(!memcmp(o0, o1, no * 4), "case %zu: direct, out not the plain bits", i);
        ck_assert_msg(worst <= tol, "case %zu: out off by %g (bound %g)", i, worst, tol);
        const double stol = 2.0 * (double)(no / s.C_out + 64) * 0x1.0p-24 * asum;
        for (int c = 0; c < 2 * s.C_out; c++)
            ck_assert_msg(fabs(st1[c] - st0[c]) <= stol, "case %zu: stats[%d] %g vs %g", i, c,
                          st1[c], st0[c]);
        free(x), free(w), free(o0), free(o1), free(o2), free(x16);
    }
}
END_TEST

START_TEST(test_linear)
{
    static const eqm_linear_shape shapes[] = {{96, 64, 32}, {300, 70, 130}, {7, 5, 3}};
    const eqm_linear_shape *s = &shapes[_i / 3];
    if (!set_mode(_i % 3))
        return;
    host_threads_init(2);
    size_t ni = (size_t)s->N * s->C_in, no = (size_t)s->N * s->C_out;
    size_t nw = (size_t)s->C_out * s->C_in, nb = (size_t)s->C_out;
    float *x = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *b = rnd(nb, 0.5f), *g = rnd(no, 1.f);
    float *a[4] = {dup(x, ni), dup(w, nw), dup(b, nb), dup(g, no)};
    size_t an[4] = {ni, nw, nb, no};
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < an[k]; i++)
            a[k][i] = fabsf(a[k][i]);
    float *r[4] = {dup(x, ni), dup(w, nw), dup(b, nb), dup(g, no)}; /* rounded (bias kept) */
    nn_bf16_round(r[0], r[0], ni), nn_bf16_round(r[1], r[1], nw), nn_bf16_round(r[3], r[3], no);
    float *o[4], *dx[4], *dw[4], *db[4];
    for (int v = 0; v < 4; v++)
        o[v] = zeros(no), dx[v] = zeros(ni), dw[v] = zeros(nw), db[v] = zeros(nb);
    lin_run(s, EQM_NN_BF16, x, w, b, g, o[0], dx[0], dw[0], db[0]); /* bf16 */
    lin_run(s, 0, x, w, b, g, o[1], dx[1], dw[1], db[1]);           /* fp32 twin */
    lin_run(s, 0, a[0], a[1], a[2], a[3], o[2], dx[2], dw[2], db[2]); /* S */
    lin_run(s, 0, r[0], r[1], r[2], r[3], o[3], dx[3], dw[3], db[3]); /* rounded fp32 */
    int ci = _i / 3;
    check_bound("linear forward vs fp32", ci, o[0], o[1], o[2], no, B8, s->C_in);
    check_bound("linear dX vs fp32", ci, dx[0], dx[1], dx[2], ni, B8, s->C_out);
    check_bound("linear dW vs fp32", ci, dw[0], dw[1], dw[2], nw, B8, s->N);
    check_bound("linear forward vs rounded fp32", ci, o[0], o[3], o[2], no, 0, s->C_in);
    check_bound("linear dX vs rounded fp32", ci, dx[0], dx[3], dx[2], ni, 0, s->C_out);
    check_bound("linear dW vs rounded fp32", ci, dw[0], dw[3], dw[2], nw, 0, s->N);
    ck_assert_msg(!memcmp(db[0], db[1], nb * 4), "bias gradient not fp32 under bf16");
    double d = 0;
    for (size_t i = 0; i < no; i++)
        d += fabs((double)o[0][i] - o[1][i]);
    ck_assert_msg(d > 0, "linear under precision bf16 bit-identical to fp32: precision ignored");
    for (int v = 0; v < 4; v++)
        free(o[v]), free(dx[v]), free(dw[v]), free(db[v]);
    for (int k = 0; k < 4; k++)
        free(a[k]), free(r[k]);
    free(x), free(w), free(b), free(g);
    nn_bf16_set_native(2);
}
END_TEST

/* The losses stay fp32 under precision bf16: NT-Xent (whose similarities are a GEMM through
 * nn_sgemm) gives bit-identical loss and gradient. */
START_TEST(test_losses_stay_fp32)
{
    host_threads_init(2);
    eqm_ntxent_shape sh = {64, 32, 0.2f, 0};
    size_t n = (size_t)sh.B2 * sh.D, ns = NN()->ntxent_scratch_floats(&sh);
    float *z = rnd(n, 1.f), *sc[2], *dz[2], loss[2];
    for (int v = 0; v < 2; v++) {
        sc[v] = zeros(ns), dz[v] = zeros(n);
        nn_precision_set(v ? EQM_NN_BF16 : 0);
        ck_assert_int_eq(NN()->ntxent_forward(NULL, &sh, &loss[v], z, sc[v]), EQM_OK);
        ck_assert_int_eq(NN()->ntxent_backward(NULL, &sh, dz[v], 1.f, z, sc[v]), EQM_OK);
        nn_precision_set(0);
    }
    ck_assert_msg(loss[0] == loss[1] && !memcmp(dz[0], dz[1], n * 4),
                  "NT-Xent changed under precision bf16 (%.9g vs %.9g)", loss[0], loss[1]);
    for (int v = 0; v < 2; v++)
        free(sc[v]), free(dz[v]);
    free(z);
}
END_TEST

/* The start-up check of train.precision = bf16 (nn_precision_check with the CPU level as
 * a parameter, so the refusal is exercised on any machine). */
START_TEST(test_precision_check)
{
    char err[1024] = "";
    ck_assert_int_eq(nn_precision_check("train.precision = bf16", 0, 0, err, sizeof err),
                     EQM_ERR_UNSUPPORTED);
    fprintf(stderr, "no-bf16 CPU: %s\n", err);
    ck_assert_msg(strstr(err, "train.precision = bf16") && strstr(err, "AVX512_BF16") &&
                      strstr(err, "AMX-BF16") && strstr(err, "precision = fp32") &&
                      strstr(err, "EQM_NN_BF16_NATIVE=0"),
                  "message does not name the feature and the fixes: %s", err);
    ck_assert_int_eq(nn_precision_check("x", 0, 1, err, sizeof err), EQM_OK); /* emulation */
    ck_assert_int_eq(nn_precision_check("x", 1, 0, err, sizeof err), EQM_OK);
    ck_assert_int_eq(nn_precision_check("x", 2, 0, err, sizeof err), EQM_OK);
    fprintf(stderr, "this CPU: bf16 level %d, kernel %s\n", nn_bf16_cpu(), nn_bf16_kernel_name());
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("nn_bf16");
    TCase *tc = tcase_create("bf16");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_convert);
    tcase_add_loop_test(tc, test_gemm, 0, 3);
    tcase_add_loop_test(tc, test_gemm_threads_bitwise, 0, 2);
    tcase_add_loop_test(tc, test_conv_packed_bitwise, 0, 2);
    tcase_add_loop_test(tc, test_conv, 0, 3 * N_CONV);
    tcase_add_test(tc, test_conv_precision);
    tcase_add_test(tc, test_small_rounding);
    tcase_add_loop_test(tc, test_conv_stats, 0, 3);
    tcase_add_loop_test(tc, test_amx_dw_threads_bitwise, 1, 3);
    tcase_add_test(tc, test_amx_dw_strided_shapes);
    tcase_add_loop_test(tc, test_wv_threads_bitwise, 0, 2);
    tcase_add_test(tc, test_wv_default_pick);
    tcase_add_loop_test(tc, test_conv_in_bf16, 0, N_INB);
    tcase_add_test(tc, test_conv_in_bf16_chunks);
    tcase_add_loop_test(tc, test_conv_out_bf16, 0, N_INB);
    tcase_add_test(tc, test_conv_out_bf16_chunks);
    tcase_add_loop_test(tc, test_linear, 0, 9);
    tcase_add_test(tc, test_losses_stay_fp32);
    tcase_add_test(tc, test_precision_check);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
