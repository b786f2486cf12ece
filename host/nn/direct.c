/* host/nn/direct.c: direct NHWC convolution (AVX-512) for conv2d forward, any kh x kw,
 * stride and padding, C_out a multiple of 16; conv2d.c also runs a stride-1 dX through it
 * (the forward of dout with the flipped kernel).
 *
 * Why: at narrow widths (the quickstart's ResNet-18 at width 0.25: 16-128 channels) both
 * other paths are bound by memory traffic, not multiplies: Winograd F(2x2, 3x3) writes 16
 * transformed floats per 4 outputs per channel and its 16 GEMMs are short in k, im2col
 * writes 9 copies of the input and packs them again inside sgemm. The direct kernel reads
 * the input and the (transposed) weights where they lie and writes each output once.
 * Kernel: a block of P output pixels of one output row x CB vectors of 16 output channels
 * is held in P*CB zmm accumulators (P*CB = 16); for every tap (ki, kj) and input channel ci
 * it loads the CB weight vectors wk[ki][kj][ci][co..] once and does one broadcast FMA per
 * pixel and vector. Weights are first transposed to wk (kh, kw, C_in, C_out) (small).
 * Numerics: every output is one FMA chain over k = (ki, kj, ci) in that order, starting
 * from zero (the order of im2col's K; a padding tap inside the image's rows adds 0 * w,
 * a whole padding row is skipped). This is not bit-identical to the paths it replaces
 * (Winograd's transforms round differently; OpenBLAS splits a long k into blocks whose
 * partial sums it adds), but it is the plain sequential sum: tests/nn check it against
 * the im2col path and PyTorch's fixtures.
 * EQM_NN_OUT_BF16 (forward, forward_stats): the epilogue stores the bf16 of each output
 * (nn_bf16_rne in AVX-512F integer ops, store_bf16) and sums the statistics from the
 * floats, so out is bf16(the float out) and the stats those of the float call.
 * Availability: CPUs with AVX-512F (nn_direct_ok says no elsewhere; the other paths run).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "nn/nn_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DIRECT_X86 1
#endif

int nn_direct_available(void)
{
#ifdef DIRECT_X86
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return v;
#else
    return 0;
#endif
}

/* The small-C_in kernels (see "Small C_in" below): the stems (3 channels in); tests may
 * switch them off to compare with the general kernels (nn_direct_small_set). */
static int small_on = 1;
void nn_direct_small_set(int on) { small_on = on; }

int nn_direct_small_ok(const eqm_conv2d_shape *s)
{
    return small_on && nn_direct_available() && s->C_out % 16 == 0 &&
           s->C_in <= NN_DIRECT_SMALL_CI && s->C_in * s->kw <= NN_DIRECT_SMALL_L;
}

/* bf16 (EQM_NN_BF16) only on the small-C_in kernels: they round their operands */
int nn_direct_ok(const eqm_conv2d_shape *s)
{
    return nn_direct_available() && s->C_out % 16 == 0 && s->C_in <= NN_DIRECT_MAX_CI &&
           (!(s->flags & EQM_NN_BF16) || nn_direct_small_ok(s));
}

/* (N, H + 2 pad, W + 2 pad, C_in) floats: the small kernels' padded copy of the input */
static size_t small_pad_floats(const eqm_conv2d_shape *s)
{
    return (size_t)s->N * (size_t)(s->H + 2 * s->pad) * (size_t)(s->W + 2 * s->pad) *
           (size_t)s->C_in;
}

/* 16-float multiple: the padded copy after the weights stays 64-byte aligned */
static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

size_t nn_direct_ws_floats(const eqm_conv2d_shape *s)
{
    size_t wk = (size_t)s->kh * s->kw * s->C_in * s->C_out;
    return nn_direct_small_ok(s) ? round16(wk) + small_pad_floats(s) : wk;
}

typedef struct {
    const eqm_conv2d_shape *s;
    int Ho, Wo;
    const float *in;
    const float *w; /* OHWI */
    float *wk;      /* (C_out / CW, kh, kw, C_in, CW), CW = 16 CB */
    float *out;
    int accumulate;
    const eqm_conv2d_shape *fs; /* dX: the forward conv whose w this is (flip it) */
    const float *xp;            /* small kernels: padded input (N, Hp, Wp, C_in) */
    int Hp, Wp;
    double *sp;                 /* forward_stats: parts x 2 C_out (sums, squares) */
    size_t parts;
    int ob; /* EQM_NN_OUT_BF16 (forward): out receives eqm_bf16 values */
} direct_ctx;

/* Channel vectors per block: 4 (64 channels) where C_out allows, else 2, else 1. */
static int direct_lcb(const eqm_conv2d_shape *s)
{
    size_t nv = (size_t)s->C_out / 16;
    return nv % 4 == 0 ? 2 : nv % 2 == 0 ? 1 : 0;
}

/* wk[blk][k][j] = w[blk * CW + j][k] (CW = 16 CB channels per block, k = (a, b, ci)):
 * each block's weights are one contiguous stream, read in k order. co in [cb, ce). */
static void direct_wt_body(void *vc, size_t cb, size_t ce)
{
    const direct_ctx *c = vc;
    const size_t K = (size_t)c->s->kh * c->s->kw * c->s->C_in;
    const size_t CW = (size_t)16 << direct_lcb(c->s);
    for (size_t co = cb; co < ce; co++) {
        float *d = c->wk + (co / CW) * K * CW + co % CW;
        if (!c->fs) {
            for (size_t k = 0; k < K; k++)
                d[k * CW] = c->w[co * K + k];
            continue;
        }
        /* dX: this conv's w~[co][a][b][ci] = w[ci][kh-1-a][kw-1-b][co] (fs's w) */
        const eqm_conv2d_shape *f = c->fs;
        const size_t fCi = (size_t)f->C_in, fK = (size_t)f->kh * f->kw * fCi;
        for (int a = 0; a < f->kh; a++)
            for (int b2 = 0; b2 < f->kw; b2++)
                for (size_t ci = 0; ci < (size_t)f->C_out; ci++)
                    d[(((size_t)a * f->kw + (size_t)b2) * f->C_out + ci) * CW] =
                        c->w[ci * fK + ((size_t)(f->kh - 1 - a) * f->kw + (size_t)(f->kw - 1 - b2)) * fCi + co];
    }
}

#ifdef DIRECT_X86
/* Reads of padding columns point here. */
static const float zero_row[NN_DIRECT_MAX_CI];

#define DIRECT_TARGET __attribute__((target("avx512f,fma"), optimize("O3")))

/* nn_bf16_from_f32 on 16 lanes (subnormals to signed zero, NaN kept quiet, nearest even),
 * the result widened back to float */
static inline __attribute__((always_inline)) DIRECT_TARGET __m512 rnd_bf16(__m512 v)
{
    const __m512i u = _mm512_castps_si512(v), hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_and_si512(
        _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), hi);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(
        r, nan, _mm512_or_si512(_mm512_and_si512(u, hi), _mm512_set1_epi32(0x00400000)));
    __mmask16 sub = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, sub, _mm512_and_si512(u, _mm512_set1_epi32((int)0x80000000u)));
    return _mm512_castsi512_ps(r);
}

/* EQM_NN_OUT_BF16: the 16 bf16 of v (nn_bf16_rne) at dst */
static inline __attribute__((always_inline)) DIRECT_TARGET void store_bf16(uint16_t *dst,
                                                                          __m512 v)
{
    __m512i r = _mm512_srli_epi32(_mm512_castps_si512(rnd_bf16(v)), 16);
    _mm256_storeu_si256((__m256i *)(void *)dst, _mm512_cvtepi32_epi16(r));
}

/* One 16-float vector of the output at element qi: bf16 (c->ob, EQM_NN_OUT_BF16) or float
 * (added to what is there with c->accumulate). Returns the float the statistics sum. */
static inline __attribute__((always_inline)) DIRECT_TARGET __m512
store_out(const direct_ctx *c, size_t qi, __m512 v)
{
    if (c->ob) {
        store_bf16((uint16_t *)(void *)c->out + qi, v);
        return v;
    }
    float *q = c->out + qi;
    if (c->accumulate)
        v = _mm512_add_ps(_mm512_loadu_ps(q), v);
    _mm512_storeu_ps(q, v);
    return v;
}

/* Output pixels ow0 .. ow0+P-1 of row oh of image n, channels co0 .. co0+16*CB-1. */
static inline __attribute__((always_inline)) DIRECT_TARGET void
direct_block(const direct_ctx *c, const int P, const int CB, size_t n, int oh, int ow0, size_t co0,
             float *rs)
{
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, Co = (size_t)s->C_out;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < P * CB; i++)
        acc[i] = _mm512_setzero_ps();
    for (int ki = 0; ki < s->kh; ki++) {
        int ih = oh * s->stride - s->pad + ki;
        if (ih < 0 || ih >= s->H)
            continue;
        const float *rowp = c->in + (n * (size_t)s->H + (size_t)ih) * (size_t)s->W * Ci;
        for (int kj = 0; kj < s->kw; kj++) {
            const float *src[16];
            for (int p = 0; p < P; p++) {
                int iw = (ow0 + p) * s->stride - s->pad + kj;
                src[p] = (iw < 0 || iw >= s->W) ? zero_row : rowp + (size_t)iw * Ci;
            }
            const size_t CW = 16 * (size_t)CB, K = (size_t)s->kh * s->kw * Ci;
            const float *wp = c->wk + co0 * K + ((size_t)ki * s->kw + (size_t)kj) * Ci * CW;
            for (size_t ci = 0; ci < Ci; ci++, wp += CW) {
                __m512 wv[4];
                for (int b = 0; b < CB; b++)
                    wv[b] = _mm512_loadu_ps(wp + 16 * b);
                for (int p = 0; p < P; p++) {
                    __m512 x = _mm512_set1_ps(src[p][ci]);
                    for (int b = 0; b < CB; b++)
                        acc[p * CB + b] = _mm512_fmadd_ps(x, wv[b], acc[p * CB + b]);
                }
            }
        }
    }
    const size_t oi = ((n * (size_t)c->Ho + (size_t)oh) * (size_t)c->Wo + (size_t)ow0) * Co + co0;
    __m512 sm[4], sq[4];
    for (int b = 0; b < CB; b++)
        sm[b] = sq[b] = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int b = 0; b < CB; b++) {
            /* the statistics sum the floats (before a bf16 store's rounding) */
            __m512 v = store_out(c, oi + (size_t)p * Co + 16 * (size_t)b, acc[p * CB + b]);
            sm[b] = _mm512_add_ps(sm[b], v);
            sq[b] = _mm512_fmadd_ps(v, v, sq[b]);
        }
    if (rs) /* BN statistics of the block (rs: 16 CB sums, then 16 CB squares) */
        for (int b = 0; b < CB; b++) {
            float *t = rs + 16 * b, *u = rs + 16 * CB + 16 * b;
            _mm512_storeu_ps(t, _mm512_add_ps(_mm512_loadu_ps(t), sm[b]));
            _mm512_storeu_ps(u, _mm512_add_ps(_mm512_loadu_ps(u), sq[b]));
        }
}

#define DIRECT_INST(P, CB)                                                                     \
    static DIRECT_TARGET __attribute__((noinline)) void direct_##P##_##CB(                     \
        const direct_ctx *c, size_t n, int oh, int ow0, size_t co0, float *rs)                 \
    {                                                                                          \
        direct_block(c, P, CB, n, oh, ow0, co0, rs);                                           \
    }
/* The block shapes (A, CB) with A * CB <= 16 accumulators, A = pixels (forward) or input
 * channels (dW), and their table [log2 CB][log2 A] (NULL: more than 16 accumulators). */
#define DIRECT_SHAPES(X)                                                                       \
    X(16, 1) X(8, 1) X(4, 1) X(2, 1) X(1, 1) X(8, 2) X(4, 2) X(2, 2) X(1, 2) X(4, 4) X(2, 4) X(1, 4)
#define DIRECT_TABLE(f)                                                                        \
    {                                                                                          \
        {f##_1_1, f##_2_1, f##_4_1, f##_8_1, f##_16_1}, {f##_1_2, f##_2_2, f##_4_2, f##_8_2, NULL}, \
            {f##_1_4, f##_2_4, f##_4_4, NULL, NULL},                                           \
    }
DIRECT_SHAPES(DIRECT_INST)

typedef void (*direct_fn)(const direct_ctx *, size_t, int, int, size_t, float *);
static const direct_fn direct_fns[3][5] = DIRECT_TABLE(direct);

/* rs (2 CW floats: the row's sums then squares of a channel block) into dp (2 Co). */
static void flush_stats(double *dp, size_t Co, size_t co0, size_t CW, float *rs)
{
    for (size_t k = 0; k < CW; k++) {
        dp[co0 + k] += rs[k];
        dp[Co + co0 + k] += rs[CW + k];
        rs[k] = rs[CW + k] = 0.f;
    }
}

/* Output rows (image, oh) in [b, e); dp: NULL, or 2 Co doubles the statistics go into
 * (float per output row and channel block, then double). */
static void direct_rows(const direct_ctx *c, size_t b, size_t e, double *dp)
{
    const size_t Co = (size_t)c->s->C_out;
    const int lcb = direct_lcb(c->s), CB = 1 << lcb;
    const size_t CW = 16 * (size_t)CB;
    float rs[2 * 64] = {0};
    /* channel blocks outermost: a block's weights (K x 16 CB floats) stay in cache over
     * all rows of the task */
    for (size_t co0 = 0; co0 < Co; co0 += CW)
        for (size_t r = b; r < e; r++) {
            size_t n = r / (size_t)c->Ho;
            int oh = (int)(r % (size_t)c->Ho);
            int ow0 = 0, lp = 4 - lcb;
            while (ow0 < c->Wo) {
                while ((1 << lp) > c->Wo - ow0)
                    lp--;
                direct_fns[lcb][lp](c, n, oh, ow0, co0, dp ? rs : NULL);
                ow0 += 1 << lp;
            }
            if (dp)
                flush_stats(dp, Co, co0, CW, rs);
        }
}

#endif

/* ---- Small C_in (the stems) ------------------------------------------------------ */

/* With C_in <= NN_DIRECT_SMALL_CI (a 3-channel image), the general kernel's inner loop over
 * C_in is 3 long and it recomputes the P source pointers (with their padding checks) at
 * every tap: the stem forward ran at 48 GFLOP/s and its dW at 37 (batch 384, 1 core). The
 * small kernels first copy the input once into a zero-padded (N, H + 2 pad, W + 2 pad,
 * C_in) buffer; then for a kernel row ki the kw x C_in values a pixel multiplies are one
 * contiguous run of L = kw C_in floats, at a stride of stride x C_in per output pixel,
 * and no tap needs a check. The sums are those of the general kernels, in the same order
 * (the padding taps they skip add 0 here), so fp32 results are the same bits.
 * EQM_NN_IN_BF16 (ABI 1.6): the padded copy widens the bf16 input (copy_row_bf16); the
 * kernels behind it never see the difference.
 * bf16 (EQM_NN_BF16): the padded copy and the weights are rounded to bf16 (nearest even,
 * as nn_bf16_from_f32) and so, in dW, is dout (per row group, into a per-part scratch):
 * bf16 products (exact in fp32) with fp32 accumulation, the semantics of every bf16 conv. */
#ifdef DIRECT_X86
/* dst[0..n) = src (rounded to bf16 when rnd) */
static DIRECT_TARGET void copy_row(float *dst, const float *src, size_t n, int rnd)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, src + i);
        _mm512_mask_storeu_ps(dst + i, m, rnd ? rnd_bf16(v) : v);
    }
}

/* dst[0..n) = the floats of the bf16 values src[0..n) (exact; then rounded when rnd, as
 * copy_row rounds: the same bits as copy_row of the widened floats) */
static DIRECT_TARGET void copy_row_bf16(float *dst, const uint16_t *src, size_t n, int rnd)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(src + i)));
        __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
        _mm512_storeu_ps(dst + i, rnd ? rnd_bf16(v) : v);
    }
    for (; i < n; i++)
        dst[i] = nn_bf16_wide(rnd ? nn_bf16_rne(nn_bf16_wide(src[i])) : src[i]);
}

typedef struct {
    const eqm_conv2d_shape *s;
    const float *in;
    float *xp;
    int Hp, Wp, rnd;
    int ib; /* EQM_NN_IN_BF16: in holds eqm_bf16 values */
} pad_ctx;

/* Padded rows (image, yp) in [b, e). */
static void pad_body(void *vc, size_t b, size_t e)
{
    const pad_ctx *c = vc;
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, rowf = (size_t)c->Wp * Ci, left = (size_t)s->pad * Ci;
    for (size_t r = b; r < e; r++) {
        size_t n = r / (size_t)c->Hp;
        int ih = (int)(r % (size_t)c->Hp) - s->pad;
        float *d = c->xp + r * rowf;
        if (ih < 0 || ih >= s->H) {
            memset(d, 0, rowf * sizeof(float));
            continue;
        }
        size_t mid = (size_t)s->W * Ci;
        memset(d, 0, left * sizeof(float));
        size_t off = (n * (size_t)s->H + (size_t)ih) * mid;
        if (c->ib)
            copy_row_bf16(d + left, (const uint16_t *)(const void *)c->in + off, mid, c->rnd);
        else
            copy_row(d + left, c->in + off, mid, c->rnd);
        memset(d + left + mid, 0, (rowf - left - mid) * sizeof(float));
    }
}

static void small_pad(eqm_host *h, const eqm_conv2d_shape *s, const float *in, float *xp)
{
    pad_ctx p = {s, in, xp, s->H + 2 * s->pad, s->W + 2 * s->pad, !!(s->flags & EQM_NN_BF16),
                 !!(s->flags & EQM_NN_IN_BF16)};
    nn_parallel(h, (size_t)s->N * (size_t)p.Hp, 16, pad_body, &p);
}

/* Output pixels ow0 .. ow0+P-1 of row oh of image n, channels co0 .. co0+15. */
static inline __attribute__((always_inline)) DIRECT_TARGET void
small_block(const direct_ctx *c, const int P, size_t n, int oh, int ow0, size_t co0, float *rs)
{
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, Co = (size_t)s->C_out, L = (size_t)s->kw * Ci;
    const size_t K = (size_t)s->kh * L, CW = (size_t)16 << direct_lcb(s);
    const size_t st = (size_t)s->stride * Ci;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
        acc[p] = _mm512_setzero_ps();
    const float *wp = c->wk + (co0 / CW) * K * CW + co0 % CW;
    for (int ki = 0; ki < s->kh; ki++) {
        const float *row = c->xp + ((n * (size_t)c->Hp + (size_t)oh * s->stride + (size_t)ki) *
                                        (size_t)c->Wp + (size_t)ow0 * s->stride) * Ci;
        for (size_t l = 0; l < L; l++, wp += CW) {
            __m512 w = _mm512_loadu_ps(wp);
            for (int p = 0; p < P; p++)
                acc[p] = _mm512_fmadd_ps(_mm512_set1_ps(row[(size_t)p * st + l]), w, acc[p]);
        }
    }
    const size_t oi = ((n * (size_t)c->Ho + (size_t)oh) * (size_t)c->Wo + (size_t)ow0) * Co + co0;
    __m512 sm = _mm512_setzero_ps(), sq = sm;
#pragma GCC unroll 16
    for (int p = 0; p < P; p++) {
        __m512 v = store_out(c, oi + (size_t)p * Co, acc[p]);
        sm = _mm512_add_ps(sm, v);
        sq = _mm512_fmadd_ps(v, v, sq);
    }
    if (rs) { /* BN statistics of the block (rs: 16 sums, then 16 squares) */
        _mm512_storeu_ps(rs, _mm512_add_ps(_mm512_loadu_ps(rs), sm));
        _mm512_storeu_ps(rs + 16, _mm512_add_ps(_mm512_loadu_ps(rs + 16), sq));
    }
}

#define SMALL_INST(P)                                                                          \
    static DIRECT_TARGET __attribute__((noinline)) void small_##P(                              \
        const direct_ctx *c, size_t n, int oh, int ow0, size_t co0, float *rs)                 \
    {                                                                                          \
        small_block(c, P, n, oh, ow0, co0, rs);                                                \
    }
SMALL_INST(16) SMALL_INST(8) SMALL_INST(4) SMALL_INST(2) SMALL_INST(1)
static void (*const small_fns[5])(const direct_ctx *, size_t, int, int, size_t, float *) = {
    small_1, small_2, small_4, small_8, small_16};

/* Output rows (image, oh) in [b, e); dp as direct_rows. */
static void small_rows(const direct_ctx *c, size_t b, size_t e, double *dp)
{
    const size_t Co = (size_t)c->s->C_out;
    float rs[32] = {0};
    for (size_t co0 = 0; co0 < Co; co0 += 16)
        for (size_t r = b; r < e; r++) {
            size_t n = r / (size_t)c->Ho;
            int oh = (int)(r % (size_t)c->Ho), ow0 = 0, lp = 4;
            while (ow0 < c->Wo) {
                while ((1 << lp) > c->Wo - ow0)
                    lp--;
                small_fns[lp](c, n, oh, ow0, co0, dp ? rs : NULL);
                ow0 += 1 << lp;
            }
            if (dp)
                flush_stats(dp, Co, co0, 16, rs);
        }
}

/* The general or the small-C_in kernels' rows, by c->xp (set only for the small ones). */
static void any_rows(const direct_ctx *c, size_t b, size_t e, double *dp)
{
    if (c->xp)
        small_rows(c, b, e, dp);
    else
        direct_rows(c, b, e, dp);
}

/* Tasks: output rows (image, oh) in [b, e). */
static void rows_body(void *vc, size_t b, size_t e) { any_rows(vc, b, e, NULL); }

/* Tasks: row parts q in [b, e), each with its statistics partial. */
static void parts_body(void *vc, size_t b, size_t e)
{
    const direct_ctx *c = vc;
    size_t rows = (size_t)c->s->N * (size_t)c->Ho;
    for (size_t q = b; q < e; q++)
        any_rows(c, rows * q / c->parts, rows * (q + 1) / c->parts,
                 c->sp + q * 2 * (size_t)c->s->C_out);
}

/* The transposed weights rounded to bf16 in place (n floats). */
static DIRECT_TARGET void round_floats(float *p, size_t n) { copy_row(p, p, n, 1); }
#endif

/* ---- dW ------------------------------------------------------------------------- */

/* dw (C_out, K) += sum over output pixels p of dout[p][co] * x[p, k], k = (ki, kj, ci).
 * The rows (image, oh) are cut into DW_PARTS fixed parts (not one per thread: the sums are
 * then the same for any thread count); part q sums into its own tmp_q (K, C_out): for every
 * group of DW_RG output rows, tap and block of KB input channels, KB x CB zmm accumulators
 * start at zero, take one FMA per pixel of the group's rows (vectorised over 16 output
 * channels, the input value broadcast), and are added to tmp_q (a group's rows and their
 * input rows stay in L1/L2 while every block of the group runs over them). Then dw[co][k] += ((tmp_0 + tmp_1) + ...)[k][co].
 * Padding taps are skipped (they add 0). */
#define DW_PARTS 8
#define DW_RG 8

size_t nn_direct_dw_ws_floats(const eqm_conv2d_shape *s)
{
    size_t t = (size_t)DW_PARTS * s->kh * s->kw * s->C_in * s->C_out;
    if (!nn_direct_small_ok(s))
        return t;
    size_t Wo = (size_t)((s->W + 2 * s->pad - s->kw) / s->stride + 1);
    return round16(t) + round16(small_pad_floats(s)) + (size_t)DW_PARTS * DW_RG * Wo * 16;
}

typedef struct {
    const eqm_conv2d_shape *s;
    int Ho, Wo;
    size_t rows, parts;
    const float *in, *dout;
    float *tmp; /* parts x (K, C_out) */
    float *dw;
    const float *xp; /* small kernels: padded input (N, Hp, Wp, C_in) */
    float *gs;       /* small kernels, bf16: parts x (DW_RG, Wo, 16) rounded dout */
    int Hp, Wp;
} dw_ctx;

#ifdef DIRECT_X86
/* Output rows r in [ra, rb) (r = image * Ho + oh), tap (ki, kj), input channels
 * ci0 .. ci0+KB-1, output channels co0 .. co0+16*CB-1: t[(k, co)] += sum over the rows'
 * pixels. */
static inline __attribute__((always_inline)) DIRECT_TARGET void
dw_block(const dw_ctx *c, const int KB, const int CB, size_t ra, size_t rb, int ki, int kj,
         size_t ci0, size_t co0, float *t)
{
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, Co = (size_t)s->C_out;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < KB * CB; i++)
        acc[i] = _mm512_setzero_ps();
    for (size_t r = ra; r < rb; r++) {
        size_t n = r / (size_t)c->Ho;
        int oh = (int)(r % (size_t)c->Ho), ih = oh * s->stride - s->pad + ki;
        if (ih < 0 || ih >= s->H)
            continue;
        const float *irow = c->in + ((n * (size_t)s->H + (size_t)ih) * (size_t)s->W) * Ci + ci0;
        const float *grow = c->dout + r * (size_t)c->Wo * Co + co0;
        for (int ow = 0; ow < c->Wo; ow++) {
            int iw = ow * s->stride - s->pad + kj;
            if (iw < 0 || iw >= s->W)
                continue;
            const float *x = irow + (size_t)iw * Ci;
            __m512 g[4];
            for (int b = 0; b < CB; b++)
                g[b] = _mm512_loadu_ps(grow + (size_t)ow * Co + 16 * (size_t)b);
            for (int kk = 0; kk < KB; kk++) {
                __m512 xb = _mm512_set1_ps(x[kk]);
                for (int b = 0; b < CB; b++)
                    acc[kk * CB + b] = _mm512_fmadd_ps(xb, g[b], acc[kk * CB + b]);
            }
        }
    }
    float *tk = t + (((size_t)ki * s->kw + (size_t)kj) * Ci + ci0) * Co + co0;
#pragma GCC unroll 16
    for (int kk = 0; kk < KB; kk++)
#pragma GCC unroll 4
        for (int b = 0; b < CB; b++) {
            float *q = tk + (size_t)kk * Co + 16 * (size_t)b;
            _mm512_storeu_ps(q, _mm512_add_ps(_mm512_loadu_ps(q), acc[kk * CB + b]));
        }
}

#define DW_INST(KB, CB)                                                                        \
    static DIRECT_TARGET __attribute__((noinline)) void dw_##KB##_##CB(                        \
        const dw_ctx *c, size_t ra, size_t rb, int ki, int kj, size_t ci0, size_t co0, float *t) \
    {                                                                                          \
        dw_block(c, KB, CB, ra, rb, ki, kj, ci0, co0, t);                                      \
    }
DIRECT_SHAPES(DW_INST)

typedef void (*dw_fn)(const dw_ctx *, size_t, size_t, int, int, size_t, size_t, float *);
static const dw_fn dw_fns[3][5] = DIRECT_TABLE(dw); /* [log2 CB][log2 KB] */

/* Tasks: parts q in [b, e). */
static void dw_part_body(void *vc, size_t b, size_t e)
{
    const dw_ctx *c = vc;
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, Co = (size_t)s->C_out, K = (size_t)s->kh * s->kw * Ci;
    const int lcb = direct_lcb(s), CB = 1 << lcb;
    for (size_t q = b; q < e; q++) {
        float *t = c->tmp + q * K * Co;
        memset(t, 0, K * Co * sizeof(float));
        size_t r0 = q * c->rows / c->parts, r1 = (q + 1) * c->rows / c->parts;
        for (size_t ra = r0; ra < r1; ra += DW_RG) {
            size_t rb = ra + DW_RG < r1 ? ra + DW_RG : r1;
            for (int ki = 0; ki < s->kh; ki++)
                for (size_t co0 = 0; co0 < Co; co0 += 16 * (size_t)CB)
                    for (int kj = 0; kj < s->kw; kj++) {
                        size_t ci0 = 0;
                        int lk = 4 - lcb;
                        while (ci0 < Ci) {
                            while ((size_t)1 << lk > Ci - ci0)
                                lk--;
                            dw_fns[lcb][lk](c, ra, rb, ki, kj, ci0, co0, t);
                            ci0 += (size_t)1 << lk;
                        }
                    }
        }
    }
}

/* Small-C_in dW (see "Small C_in"): output rows r in [ra, rb), kernel row ki, the run
 * l0 .. l0+LB-1 of the L = kw C_in values, output channels co0 .. co0+15; g0: dout of row
 * ra at co0 (or its rounded copy), gst floats from pixel to pixel. */
static inline __attribute__((always_inline)) DIRECT_TARGET void
small_dw_block(const dw_ctx *c, const int LB, size_t ra, size_t rb, int ki, size_t l0,
               size_t co0, const float *g0, size_t gst, float *t)
{
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, Co = (size_t)s->C_out, L = (size_t)s->kw * Ci;
    const size_t st = (size_t)s->stride * Ci, Wo = (size_t)c->Wo;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int kk = 0; kk < LB; kk++)
        acc[kk] = _mm512_setzero_ps();
    for (size_t r = ra; r < rb; r++) {
        size_t n = r / (size_t)c->Ho, oh = r % (size_t)c->Ho;
        const float *row = c->xp + ((n * (size_t)c->Hp + oh * s->stride + (size_t)ki) *
                                    (size_t)c->Wp) * Ci + l0;
        const float *grow = g0 + (r - ra) * Wo * gst;
        for (size_t ow = 0; ow < Wo; ow++) {
            __m512 g = _mm512_loadu_ps(grow + ow * gst);
            const float *x = row + ow * st;
            for (int kk = 0; kk < LB; kk++)
                acc[kk] = _mm512_fmadd_ps(_mm512_set1_ps(x[kk]), g, acc[kk]);
        }
    }
    float *tk = t + ((size_t)ki * L + l0) * Co + co0;
#pragma GCC unroll 16
    for (int kk = 0; kk < LB; kk++) {
        float *q = tk + (size_t)kk * Co;
        _mm512_storeu_ps(q, _mm512_add_ps(_mm512_loadu_ps(q), acc[kk]));
    }
}

#define SMALL_LB_MAX 14 /* accumulators per run: L <= 28 is one or two runs */
#define SMALL_DW_INST(LB)                                                                      \
    static DIRECT_TARGET __attribute__((noinline)) void small_dw_##LB(                         \
        const dw_ctx *c, size_t ra, size_t rb, int ki, size_t l0, size_t co0, const float *g0, \
        size_t gst, float *t)                                                                  \
    {                                                                                          \
        small_dw_block(c, LB, ra, rb, ki, l0, co0, g0, gst, t);                                \
    }
SMALL_DW_INST(1) SMALL_DW_INST(2) SMALL_DW_INST(3) SMALL_DW_INST(4) SMALL_DW_INST(5)
SMALL_DW_INST(6) SMALL_DW_INST(7) SMALL_DW_INST(8) SMALL_DW_INST(9) SMALL_DW_INST(10)
SMALL_DW_INST(11) SMALL_DW_INST(12) SMALL_DW_INST(13) SMALL_DW_INST(14)
typedef void (*small_dw_fn)(const dw_ctx *, size_t, size_t, int, size_t, size_t, const float *,
                            size_t, float *);
static const small_dw_fn small_dw_fns[SMALL_LB_MAX] = {
    small_dw_1, small_dw_2, small_dw_3,  small_dw_4,  small_dw_5,  small_dw_6,  small_dw_7,
    small_dw_8, small_dw_9, small_dw_10, small_dw_11, small_dw_12, small_dw_13, small_dw_14};

/* Tasks: parts q in [b, e), as dw_part_body (the same row groups, the same sums). */
static DIRECT_TARGET void small_dw_part_body(void *vc, size_t b, size_t e)
{
    const dw_ctx *c = vc;
    const eqm_conv2d_shape *s = c->s;
    const size_t Co = (size_t)s->C_out, L = (size_t)s->kw * s->C_in, K = (size_t)s->kh * L;
    const size_t Wo = (size_t)c->Wo, nrun = (L + SMALL_LB_MAX - 1) / SMALL_LB_MAX;
    const int rnd = !!(s->flags & EQM_NN_BF16);
    for (size_t q = b; q < e; q++) {
        float *t = c->tmp + q * K * Co, *gs = c->gs + q * DW_RG * Wo * 16;
        memset(t, 0, K * Co * sizeof(float));
        size_t r0 = q * c->rows / c->parts, r1 = (q + 1) * c->rows / c->parts;
        for (size_t ra = r0; ra < r1; ra += DW_RG) {
            size_t rb = ra + DW_RG < r1 ? ra + DW_RG : r1;
            for (size_t co0 = 0; co0 < Co; co0 += 16) {
                const float *g0 = c->dout + ra * Wo * Co + co0;
                size_t gst = Co;
                if (rnd) {
                    for (size_t i = 0; i < (rb - ra) * Wo; i++)
                        _mm512_storeu_ps(gs + i * 16, rnd_bf16(_mm512_loadu_ps(g0 + i * Co)));
                    g0 = gs, gst = 16;
                }
                for (int ki = 0; ki < s->kh; ki++)
                    for (size_t j = 0, l0 = 0; j < nrun; j++) {
                        size_t l1 = L * (j + 1) / nrun;
                        small_dw_fns[l1 - l0 - 1](c, ra, rb, ki, l0, co0, g0, gst, t);
                        l0 = l1;
                    }
            }
        }
    }
}
#endif

/* dw[co][k] += sum_q tmp_q[k][co] for co in [b, e). */
static void dw_reduce_body(void *vc, size_t b, size_t e)
{
    const dw_ctx *c = vc;
    const eqm_conv2d_shape *s = c->s;
    const size_t Co = (size_t)s->C_out, K = (size_t)s->kh * s->kw * s->C_in;
    for (size_t co = b; co < e; co++)
        for (size_t k = 0; k < K; k++) {
            float v = c->tmp[k * Co + co];
            for (size_t q = 1; q < c->parts; q++)
                v += c->tmp[(q * K + k) * Co + co];
            c->dw[co * K + k] += v;
        }
}

/* dw += dW of conv2d(in, w) for dout. ws: nn_direct_dw_ws_floats. Only where
 * nn_direct_ok(s). */
void nn_direct_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout,
                  const float *in, float *ws)
{
    dw_ctx c = {.s = s, .in = in, .dout = dout, .tmp = ws, .dw = dw};
    c.Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    c.Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    c.rows = (size_t)s->N * (size_t)c.Ho;
    c.parts = c.rows < DW_PARTS ? c.rows : DW_PARTS;
#ifdef DIRECT_X86
    if (nn_direct_small_ok(s)) {
        size_t t = round16((size_t)DW_PARTS * s->kh * s->kw * s->C_in * s->C_out);
        float *xp = ws + t;
        c.xp = xp, c.gs = xp + round16(small_pad_floats(s));
        c.Hp = s->H + 2 * s->pad, c.Wp = s->W + 2 * s->pad;
        small_pad(h, s, in, xp);
        nn_parallel(h, c.parts, 1, small_dw_part_body, &c);
    } else {
        nn_parallel(h, c.parts, 1, dw_part_body, &c);
    }
#endif
    nn_parallel(h, (size_t)s->C_out, 4, dw_reduce_body, &c);
}

static void direct_run(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                       const float *w, int accumulate, float *ws, const eqm_conv2d_shape *fs,
                       double *sp, size_t parts);

/* out (=, or += when accumulate) = conv2d(in, w). ws: nn_direct_ws_floats. Only where
 * nn_direct_ok(s). With fs (a stride-1 conv whose dX s is, see conv2d.c's dx_shape), w is
 * fs's weight and the flipped, transposed kernel is built from it. */
void nn_direct_forward(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                       const float *w, int accumulate, float *ws, const eqm_conv2d_shape *fs)
{
    direct_run(h, s, out, in, w, accumulate, ws, fs, NULL, 0);
}

/* Statistics partials (parts x 2 C_out doubles): grown at the first call that needs more,
 * never shrunk. */
static double *spart;
static size_t spart_n;

/* out = conv2d(in, w) and per output channel [sum, sum of squares] of out (2 C_out
 * doubles), summed as the blocks store (fixed row parts: the same sums for a given thread
 * count). EQM_ERR_NOMEM or EQM_OK. */
int nn_direct_forward_stats(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                            const float *w, float *ws, double *stats)
{
    size_t Ho = (size_t)((s->H + 2 * s->pad - s->kh) / s->stride + 1);
    size_t rows = (size_t)s->N * Ho, parts = 2 * (size_t)nn_threads(), Co = (size_t)s->C_out;
    if (parts > rows)
        parts = rows;
    if (parts * 2 * Co > spart_n) {
        double *q = realloc(spart, parts * 2 * Co * sizeof(double));
        if (!q) {
            host_api()->set_error(h, EQM_ERR_NOMEM,
                                  "nn.conv2d_forward_stats: %zu partial sums: out of memory",
                                  parts * 2 * Co);
            return EQM_ERR_NOMEM;
        }
        spart = q, spart_n = parts * 2 * Co;
    }
    memset(spart, 0, parts * 2 * Co * sizeof(double));
    direct_run(h, s, out, in, w, 0, ws, NULL, spart, parts);
    for (size_t k = 0; k < 2 * Co; k++) {
        double a = 0;
        for (size_t q = 0; q < parts; q++)
            a += spart[q * 2 * Co + k];
        stats[k] = a;
    }
    return EQM_OK;
}

static void direct_run(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                       const float *w, int accumulate, float *ws, const eqm_conv2d_shape *fs,
                       double *sp, size_t parts)
{
    direct_ctx c = {.s = s, .in = in, .w = w, .wk = ws, .out = out, .accumulate = accumulate,
                    .fs = fs, .sp = sp, .parts = parts};
    c.ob = !fs && (s->flags & EQM_NN_OUT_BF16); /* a dX (fs) writes din: floats */
    c.Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    c.Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    nn_parallel(h, (size_t)s->C_out, 16, direct_wt_body, &c);
#ifdef DIRECT_X86
    if (nn_direct_small_ok(s)) {
        size_t nw = (size_t)s->kh * s->kw * s->C_in * s->C_out;
        if (s->flags & EQM_NN_BF16)
            round_floats(ws, nw);
        float *xp = ws + round16(nw);
        c.xp = xp, c.Hp = s->H + 2 * s->pad, c.Wp = s->W + 2 * s->pad;
        small_pad(h, s, in, xp);
    }
    if (sp)
        nn_parallel(h, parts, 1, parts_body, &c);
    else
        nn_parallel(h, (size_t)s->N * (size_t)c.Ho, 1, rows_body, &c);
#endif
}
