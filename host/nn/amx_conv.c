/* host/nn/amx_conv.c: bf16 convolution forward (and strided dX) as an implicit GEMM on AMX
 * (tdpbf16ps) or, on AVX512_BF16 without AMX, with vdpbf16ps (section "vdpbf16ps" below),
 * reading the activations where they lie: no im2col. On vdpbf16ps the 3x3 stride-1
 * forwards, dX and dW may run as Winograd F(2x2, 3x3) instead, with bf16 products
 * (sections "Winograd" at the end: 2.25x fewer products, which is what such a CPU needs
 * once the implicit kernel runs near its vdpbf16ps peak). The same Winograd also takes
 * fp32 convs (no EQM_NN_BF16: float operands, FMA products; wv_ok, nn_wvf_pick), the only
 * fp32 work in this file.
 *
 * Why: the im2col route of a bf16 conv (conv2d.c, "bf16 with a native kernel") spent more
 * time copying than multiplying: in the quickstart bf16 step im2col_row and its memcpy
 * took 26% of the CPU time and the bf16 packing of its rows 12%, against 16% in the AMX
 * kernel itself. Here the input is converted once to a zero-padded bf16 NHWC copy and the
 * AMX A tiles are loaded straight out of it.
 *
 * Padded-flat rows: Hp = H + 2 pad, Wp = W + 2 pad; q = (n Hp + y) Wp + x indexes the
 * pixels of the padded images one after another. Output pixel (n, oy, ox) is row
 * q = (n Hp + oy) Wp + ox of the GEMM, and for tap (ky, kx) it reads padded pixel
 * q + ky Wp + kx. For a fixed ky the taps kx = 0 .. kw-1 are kw neighbouring pixels, so
 * their kw Ci channels are ONE contiguous run of bf16 starting at pixel q + ky Wp, in the
 * (kx, ci) order of the OHWI weights. The reduction is cut per ky into R = kw Ci rounded
 * up to 32 (one AMX k-step of 16 pairs = 32 bf16). An A tile (16 consecutive rows q x 32
 * bf16 of the run) is then one tileloadd with a row stride of Ci bf16: rows overlap when
 * Ci < 32, which tileloadd allows. Rows q that are no output pixel (ox >= Wo, oy >= Ho:
 * the padding columns and rows between images) are computed and dropped: they cost
 * 1 - Ho Wo / (Hp Wp) of the multiplies (12% at 32x32, 56% at 4x4), which AMX has to
 * spare; the copies they replace do not.
 * The last k-step of a run, when kw Ci is not a multiple of 32, reads up to 31 bf16 past
 * the run (the next pixels of the padded image, or the slot's zeroed tail) against zero
 * weights.
 * Those values are finite unless an activation is inf or NaN, in which case the output
 * is not finite anyway; a NaN or inf input can then also reach the output pixel one
 * column to the left.
 * Weights: w^T packed once per call as 32-column panels of k-pairs in AMX's VNNI layout
 * (pair P of panel j: 32 uint32 (w'[2P][co], w'[2P+1][co])), k' = ky R + r with zero rows
 * for r >= kw Ci and zero columns past C_out.
 * Kernel: a block of 32 rows x 32 output channels in four C tiles, two A tiles (rows
 * q0 .., q0+16 ..) and two B tiles (16 columns each) per k-step: the same tile use as
 * gemm_bf16.c's kernel_amx_32x32.
 * One image at a time: a task (one of G = threads groups of whole images) converts image n
 * into its own slot (one padded image, about 37 KB at 32x32x16: it stays in L1/L2) and
 * runs the blocks of that image's rows q = y Wp + x < (Ho - 1) Wp + Wo right away. The
 * first version converted the whole batch into one padded copy (14 MB for the quickstart's
 * 32x32 layers) and read it back from memory in a second pass; every pass here is
 * memory-bound (bench/README.md). Each output row is written by one task from the same
 * sums, so any thread count gives the same bits.
 * Numerics: the products of the bf16-rounded operands are exact and summed in fp32 in the
 * tiles, over k' in (ky, chunk) order; the tile's own order inside a k-step is AMX's.
 * Against the im2col route (which blocks k by 1024 and adds the block sums in C) the sums
 * run in another order: tests/nn/check_bf16.c bounds both by the reduction length.
 * Strided forward: output row oy reads padded row st oy; its blocks of 32 rows q start
 * there and only every st-th row of them is an output pixel (the rest are computed and
 * dropped: worth it only where copies, not products, bound the layer; conv2d.c's amx_pick).
 * Strided dX (nn_amx_conv_dx): din is the stride-1 conv, with the flipped kernel, of dout
 * spread out by the stride into a slot of (H + kh - 1) x (W + kw - 1) pixels: dout pixel
 * (oy, ox) at (st oy + kh - 1 - pad, st ox + kw - 1 - pad), zeros elsewhere (a transposed
 * convolution; the products with those zeros are the price, conv2d.c's amx_dx_pick).
 * EQM_NN_IN_BF16 (forward only: the dX slot holds dout): the image is already bf16, so the
 * slot gets a copy (copy32), with the two rules of the conversion applied to it (zero and
 * subnormal -> signed zero, NaN quietened): the same bits as on the widened floats, and
 * half the bytes read.
 * EQM_NN_OUT_BF16 (forward only): the epilogue sums the statistics from the fp32 tiles, as
 * it does for a float out, and stores vcvtneps2bf16 of them (nearest even, subnormal ->
 * signed zero, NaN quietened: nn_bf16_rne), 2 bytes an output instead of 4.
 * Scope (nn_amx_conv_ok): EQM_NN_BF16 on a native kernel (nn_bf16_native() == 2: the tiles
 * here; == 1, AVX512_BF16 without AMX: the vdpbf16ps kernel below, same slot and packed
 * weights), C_in >= 16, on AMX not a 1x1 stride-1 pad-0 conv (a plain GEMM already);
 * nn_amx_conv_dx_ok: stride > 1, C_out >= 16, pad < kernel (and on vdpbf16ps stride <=
 * DXP_MAXST: the phase decomposition below).
 */
#include "config.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "nn/nn_internal.h"

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

typedef struct {
    const eqm_conv2d_shape *s;
    int dx;                 /* 0: forward of s; 1: the dX of a strided s (see nn_amx_conv_dx) */
    int Ci, Co, kh, kw, st; /* the conv the kernel runs (dX: C_out -> C_in, stride 1) */
    int Hp, Wp, Ho, Wo, R, KP, np;
    int f32;          /* a float conv (no EQM_NN_BF16): only the Winograd below takes it */
    size_t qimg, nbi; /* stride 1: rows of one image up to its last output pixel + 1, and
                         32-row blocks; stride > 1: blocks per output row (nbi) */
    size_t slot;      /* bf16 of one padded image with its zero tail (a multiple of 32) */
    size_t G;         /* image groups (tasks), one slot each */
} amx_plan;

static void plan(const eqm_conv2d_shape *s, int dx, amx_plan *p)
{
    p->s = s;
    p->dx = dx;
    p->f32 = !(s->flags & EQM_NN_BF16);
    p->kh = s->kh, p->kw = s->kw;
    if (!dx) {
        p->Ci = s->C_in, p->Co = s->C_out, p->st = s->stride;
        p->Hp = s->H + 2 * s->pad;
        p->Wp = s->W + 2 * s->pad;
        p->Ho = (p->Hp - s->kh) / s->stride + 1;
        p->Wo = (p->Wp - s->kw) / s->stride + 1;
    } else { /* the slot holds dout spread out by the stride: a stride-1 conv gives din */
        p->Ci = s->C_out, p->Co = s->C_in, p->st = 1;
        p->Hp = s->H + s->kh - 1;
        p->Wp = s->W + s->kw - 1;
        p->Ho = s->H;
        p->Wo = s->W;
    }
    p->R = (p->kw * p->Ci + 31) / 32 * 32;
    p->KP = p->kh * p->R / 2;
    p->np = (p->Co + 31) / 32;
    size_t last; /* one past the last row q of the last block */
    if (p->st == 1) {
        p->qimg = (size_t)(p->Ho - 1) * p->Wp + (size_t)p->Wo;
        p->nbi = (p->qimg + 31) / 32;
        last = p->nbi * 32;
    } else {
        size_t span = (size_t)p->st * (size_t)(p->Wo - 1) + 1;
        p->nbi = (span + 31) / 32;
        last = (size_t)p->st * (size_t)(p->Ho - 1) * p->Wp + p->nbi * 32;
    }
    /* last bf16 read: row last - 1 + (kh - 1) Wp, element R - 1 of its run */
    size_t need = (last + (size_t)(p->kh - 1) * p->Wp) * (size_t)p->Ci + (size_t)p->R;
    size_t img = (size_t)p->Hp * p->Wp * (size_t)p->Ci;
    p->slot = ((need > img ? need : img) + 32 + 31) / 32 * 32;
    p->G = (size_t)nn_threads();
    if (p->G > (size_t)s->N)
        p->G = (size_t)s->N;
}

#define DXP_MAXST 8 /* the vdpbf16ps strided dX: strides up to 8 (64 phases) */

int nn_amx_conv_ok(const eqm_conv2d_shape *s)
{
    /* a pointwise conv: on AMX a plain GEMM; on vdpbf16ps the implicit kernel reads a bf16
     * input as it is (the GEMM route would widen it and pack it again) */
    return (s->flags & EQM_NN_BF16) && nn_bf16_native() > 0 &&
           (nn_bf16_native() == 1 || !(s->kh == 1 && s->kw == 1 && s->pad == 0 && s->stride == 1)) &&
           s->C_in >= 16;
}

int nn_amx_conv_dx_ok(const eqm_conv2d_shape *s)
{
    return (s->flags & EQM_NN_BF16) && nn_bf16_native() > 0 && s->stride > 1 &&
           (nn_bf16_native() == 2 || s->stride <= DXP_MAXST) &&
           s->C_out >= 16 && s->pad <= s->kh - 1 && s->pad <= s->kw - 1;
}

static size_t bp_uint32(const amx_plan *p) { return (size_t)p->np * p->KP * 32; }

static size_t ws_floats(const amx_plan *p)
{
    /* packed weights (uint32 = one float each), then G slots (two bf16 per float) */
    return (bp_uint32(p) + 15) / 16 * 16 + p->G * p->slot / 2 + 32;
}

static int wv_pick(const amx_plan *p);
static size_t wv_ws_floats(const amx_plan *p);

size_t nn_amx_conv_ws_floats(const eqm_conv2d_shape *s)
{
    amx_plan p;
    plan(s, 0, &p);
    return wv_pick(&p) ? wv_ws_floats(&p) : ws_floats(&p);
}

static size_t dxp_ws(const eqm_conv2d_shape *s);

size_t nn_amx_conv_dx_ws_floats(const eqm_conv2d_shape *s)
{
    if (nn_bf16_native() == 1)
        return dxp_ws(s);
    amx_plan p;
    plan(s, 1, &p);
    return ws_floats(&p);
}

typedef struct {
    const amx_plan *p;
    const float *in, *w;
    float *out;
    uint16_t *xp; /* G slots */
    uint32_t *bp;
    int accumulate;
    int ib;     /* forward with EQM_NN_IN_BF16: in holds eqm_bf16 values */
    int ob;     /* forward with EQM_NN_OUT_BF16: out receives eqm_bf16 values */
    double *gs; /* NULL, or per group 2 Co doubles: sums, sums of squares of the output */
    const eqm_conv2d_shape *fs; /* NULL, or: w is this forward conv's, flip it (w_run) */
} amx_ctx;

/* bf16 of 32 floats (n valid, the rest zero) at dst; vcvtne2ps2bf16 rounds as
 * nn_bf16_from_f32 does. */
BF16_TARGET static inline void cvt32(uint16_t *dst, const float *src, int n)
{
    __mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    __mmask16 m1 = n >= 32 ? 0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
    __m512 x0 = _mm512_maskz_loadu_ps(m0, src), x1 = _mm512_maskz_loadu_ps(m1, src + 16);
    __m512i v = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
    __mmask32 m = n >= 32 ? 0xffffffffu : (__mmask32)((1u << n) - 1);
    _mm512_mask_storeu_epi16(dst, m, v);
}

/* 32 bf16 values (n valid, the rest zero) copied to dst, each as cvt32 makes it of its
 * float: zero and subnormal -> signed zero, NaN quietened (bit 6), the rest unchanged (a
 * bf16 value is its own nearest even). So a forward on bf16 input gives the bits of the
 * same forward on the widened floats, whatever the values. */
BF16_TARGET static inline void copy32(uint16_t *dst, const uint16_t *src, int n)
{
    __mmask32 m = n >= 32 ? 0xffffffffu : (__mmask32)((1u << n) - 1);
    __m512i v = _mm512_maskz_loadu_epi16(m, src);
    __mmask32 z = _mm512_testn_epi16_mask(v, _mm512_set1_epi16(0x7f80));
    __mmask32 nan = _mm512_cmpgt_epu16_mask(_mm512_and_si512(v, _mm512_set1_epi16(0x7fff)),
                                            _mm512_set1_epi16(0x7f80));
    v = _mm512_mask_blend_epi16(z, v, _mm512_and_si512(v, _mm512_set1_epi16((short)0x8000)));
    v = _mm512_mask_blend_epi16(nan, v, _mm512_or_si512(v, _mm512_set1_epi16(0x40)));
    _mm512_mask_storeu_epi16(dst, m, v);
}

/* Image n into slot xp (every position not written here was zeroed once and is never
 * written). Forward: the interior of the padded image. dX: dout pixel (oy, ox) at slot
 * pixel (st oy + kh - 1 - pad, st ox + kw - 1 - pad), the rest zero: the stride-1 conv of
 * that with the flipped kernel is din (a transposed convolution). */
BF16_TARGET static void cvt_image(const amx_ctx *c, size_t n, uint16_t *xp)
{
    const amx_plan *p = c->p;
    const eqm_conv2d_shape *s = p->s;
    const size_t Ci = (size_t)p->Ci, rowlen = (size_t)p->Wp * Ci;
    if (p->dx) {
        const int Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
        const int Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
        const int oh = s->kh - 1 - s->pad, ow = s->kw - 1 - s->pad;
        for (int y = 0; y < Ho; y++)
            for (int x = 0; x < Wo; x++)
                for (size_t i = 0; i < Ci; i += 32)
                    cvt32(xp + (size_t)(s->stride * y + oh) * rowlen +
                              (size_t)(s->stride * x + ow) * Ci + i,
                          c->in + ((n * (size_t)Ho + (size_t)y) * (size_t)Wo + (size_t)x) * Ci + i,
                          Ci - i < 32 ? (int)(Ci - i) : 32);
        return;
    }
    const size_t padl = (size_t)s->pad * Ci, len = (size_t)s->W * Ci;
    if (c->ib) { /* bf16 input: a copy, no conversion */
        const uint16_t *in = (const uint16_t *)(const void *)c->in;
        for (int y = 0; y < s->H; y++) {
            uint16_t *dst = xp + (size_t)(y + s->pad) * rowlen + padl;
            const uint16_t *src = in + (n * s->H + (size_t)y) * len;
            for (size_t i = 0; i < len; i += 32)
                copy32(dst + i, src + i, len - i < 32 ? (int)(len - i) : 32);
        }
        return;
    }
    for (int y = 0; y < s->H; y++) {
        uint16_t *dst = xp + (size_t)(y + s->pad) * rowlen + padl;
        const float *src = c->in + (n * s->H + (size_t)y) * len;
        for (size_t i = 0; i < len; i += 32)
            cvt32(dst + i, src + i, len - i < 32 ? (int)(len - i) : 32);
    }
}

/* gd[col] += sums, gd[Co + col] += sums of squares, for the nc valid columns of a panel */
BF16_TARGET static inline void add8(double *g, int n, __m256 v)
{
    __mmask8 m = n >= 8 ? (__mmask8)0xff : (__mmask8)((1u << n) - 1);
    _mm512_mask_storeu_pd(g, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, g), _mm512_cvtps_pd(v)));
}

/* (each double += the float widened: the scalar loop's arithmetic, 8 lanes at a time) */
BF16_TARGET static void add_stats(double *gd, size_t Co, int nc, __m512 s0, __m512 s1,
                                 __m512 q0, __m512 q1)
{
    const __m512 v[4] = {s0, s1, q0, q1};
    for (int h = 0; h < 2; h++)     /* sums, squares */
        for (int k = 0; k < 4; k++) { /* 8 columns each */
            int n = nc - 8 * k;
            if (n <= 0)
                break;
            __m512 x = v[2 * h + k / 2];
            __m256 y = k % 2 ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))
                             : _mm512_castps512_ps256(x);
            add8(gd + (size_t)h * Co + 8 * (size_t)k, n, y);
        }
}

/* w'[co][ky][r] (r = kx Ci + ci in the kernel's run) is wr[co * *step] with wr = w_run(c,
 * ky, r), or 0 past the run or C_out: the conv's OHWI weights, or with c->fs the forward
 * conv fs's weights flipped and transposed (the kernel then runs fs's stride-1 dX as a
 * forward of dout: w'[co][ky][kx][ci] = w[ci][kh-1-ky][kw-1-kx][co], co < fs->C_in,
 * ci < fs->C_out), read in place: no flipped copy is written first. */
static const float *w_run(const amx_ctx *c, int ky, int r, size_t *step)
{
    const amx_plan *p = c->p;
    const int run = p->kw * p->Ci;
    if (r >= run)
        return NULL;
    if (!c->fs) {
        *step = (size_t)p->kh * (size_t)run;
        return c->w + (size_t)ky * (size_t)run + (size_t)r;
    }
    const eqm_conv2d_shape *f = c->fs;
    int kx = r / p->Ci, ci = r % p->Ci;
    *step = 1;
    return c->w + (((size_t)ci * f->kh + (size_t)(f->kh - 1 - ky)) * f->kw +
                   (size_t)(f->kw - 1 - kx)) * (size_t)f->C_in;
}

/* One pair row of a packed panel: dst[col] = (bf16 w0[(c0 + col) s0], bf16 w1[(c0 + col)
 * s1]) for col < nc, zero past nc or for a NULL w0 / w1 (past the run). */
static void pack_pairs32(uint32_t *dst, const float *w0, size_t s0, const float *w1, size_t s1,
                         size_t c0, int nc)
{
    for (int col = 0; col < 32; col++) {
        size_t k = c0 + (size_t)col;
        uint32_t v = 0;
        if (col < nc && w0)
            v = nn_bf16_from_f32(w0[k * s0]);
        if (col < nc && w1)
            v |= (uint32_t)nn_bf16_from_f32(w1[k * s1]) << 16;
        dst[col] = v;
    }
}

/* task item: panel j of the packed weights: pair P = ky R/2 + r2 of it holds, per column,
 * (bf16 w'[co][ky][2 r2], bf16 w'[co][ky][2 r2 + 1]) */
static void pack_w_body(void *vc, size_t b, size_t e)
{
    const amx_ctx *c = vc;
    const amx_plan *p = c->p;
    for (size_t j = b; j < e; j++) {
        uint32_t *dst = c->bp + j * (size_t)p->KP * 32;
        int nc = p->Co - (int)j * 32 < 32 ? p->Co - (int)j * 32 : 32;
        for (int ky = 0; ky < p->kh; ky++)
            for (int r2 = 0; r2 < p->R / 2; r2++, dst += 32) {
                size_t s0 = 0, s1 = 0;
                const float *w0 = w_run(c, ky, 2 * r2, &s0), *w1 = w_run(c, ky, 2 * r2 + 1, &s1);
                pack_pairs32(dst, w0, s0, w1, s1, j * 32, nc);
            }
    }
}

/* Group g's slot, zeroed (each image then writes only its interior), and its images
 * [n0, n1): the same split for any thread count. */
static uint16_t *group_slot(const amx_ctx *c, size_t g, size_t *n0, size_t *n1)
{
    const amx_plan *p = c->p;
    uint16_t *xp = c->xp + g * p->slot;
    memset(xp, 0, p->slot * sizeof(uint16_t));
    *n0 = (size_t)p->s->N * g / p->G;
    *n1 = (size_t)p->s->N * (g + 1) / p->G;
    return xp;
}

/* task item: group g of images, slot g; per image: convert it, then every block of 32
 * rows q of it, every panel */
AMX_TARGET static void fwd_body(void *vc, size_t gb, size_t ge)
{
    const amx_ctx *c = vc;
    const amx_plan *p = c->p;
    const size_t Ci = (size_t)p->Ci, Co = (size_t)p->Co, as = Ci * sizeof(uint16_t);
    const int nchunk = p->R / 32;
    const size_t nblk = p->st == 1 ? p->nbi : (size_t)p->Ho * p->nbi;
    float buf[32 * 32] __attribute__((aligned(64)));
    size_t dst[32]; /* the output row (its first element) of each of the 32 rows q */
    const size_t none = (size_t)-1;
    nn_amx_begin();
    for (size_t g = gb; g < ge; g++) {
        size_t n0, n1;
        uint16_t *xp = group_slot(c, g, &n0, &n1);
        for (size_t n = n0; n < n1; n++) {
            cvt_image(c, n, xp);
            for (size_t blk = 0; blk < nblk; blk++) {
                /* the output row of each of the 32 rows, or none (not an output pixel) */
                size_t q0;
                if (p->st == 1) {
                    q0 = blk * 32;
                    int y = (int)(q0 / (size_t)p->Wp), x = (int)(q0 % (size_t)p->Wp);
                    for (int r = 0; r < 32; r++) {
                        dst[r] = y < p->Ho && x < p->Wo
                                     ? ((n * p->Ho + (size_t)y) * p->Wo + (size_t)x) * Co
                                     : none;
                        if (++x == p->Wp)
                            x = 0, y++;
                    }
                } else { /* stride st: output row oy, every st-th row q of its padded row */
                    size_t oy = blk / p->nbi, x0 = blk % p->nbi * 32;
                    q0 = oy * (size_t)p->st * p->Wp + x0;
                    size_t orow = (n * p->Ho + oy) * p->Wo * Co;
                    for (int r = 0; r < 32; r++) {
                        size_t x = x0 + (size_t)r;
                        dst[r] = x % (size_t)p->st == 0 && x / (size_t)p->st < (size_t)p->Wo
                                     ? orow + x / (size_t)p->st * Co
                                     : none;
                    }
                }
                const uint16_t *a0 = xp + q0 * Ci;
                for (int j = 0; j < p->np; j++) {
                    const uint32_t *bj = c->bp + (size_t)j * p->KP * 32;
                    _tile_zero(0);
                    _tile_zero(1);
                    _tile_zero(2);
                    _tile_zero(3);
                    for (int ky = 0; ky < p->kh; ky++) {
                        const uint16_t *a = a0 + (size_t)ky * p->Wp * Ci;
                        const uint32_t *bk = bj + (size_t)ky * p->R / 2 * 32;
                        for (int ch = 0; ch < nchunk; ch++) {
                            _tile_loadd(4, a + 32 * ch, as);
                            _tile_loadd(5, a + 16 * Ci + 32 * ch, as);
                            _tile_loadd(6, bk + (size_t)ch * 16 * 32, 32 * sizeof(uint32_t));
                            _tile_loadd(7, bk + (size_t)ch * 16 * 32 + 16, 32 * sizeof(uint32_t));
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                        }
                    }
                    _tile_stored(0, buf, 32 * sizeof(float));
                    _tile_stored(1, buf + 16, 32 * sizeof(float));
                    _tile_stored(2, buf + 16 * 32, 32 * sizeof(float));
                    _tile_stored(3, buf + 16 * 32 + 16, 32 * sizeof(float));
                    int nc = (int)Co - 32 * j < 32 ? (int)Co - 32 * j : 32;
                    __mmask16 m0 = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1);
                    __mmask16 m1 =
                        nc >= 32 ? 0xffff : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1);
                    __m512 s0 = _mm512_setzero_ps(), s1 = s0, sq0 = s0, sq1 = s0;
                    for (int r = 0; r < 32; r++) {
                        if (dst[r] == none)
                            continue;
                        __m512 v0 = _mm512_load_ps(buf + r * 32);
                        __m512 v1 = _mm512_load_ps(buf + r * 32 + 16);
                        if (c->ob) { /* bf16 of the floats (the sums below use the floats) */
                            uint16_t *o = (uint16_t *)(void *)c->out + dst[r] + 32 * (size_t)j;
                            _mm256_mask_storeu_epi16(o, m0, (__m256i)_mm512_cvtneps_pbh(v0));
                            _mm256_mask_storeu_epi16(o + 16, m1, (__m256i)_mm512_cvtneps_pbh(v1));
                        } else {
                            float *o = c->out + dst[r] + 32 * (size_t)j;
                            if (c->accumulate) {
                                v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), v0);
                                v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + 16), v1);
                            }
                            _mm512_mask_storeu_ps(o, m0, v0);
                            _mm512_mask_storeu_ps(o + 16, m1, v1);
                        }
                        s0 = _mm512_add_ps(s0, v0), s1 = _mm512_add_ps(s1, v1);
                        sq0 = _mm512_fmadd_ps(v0, v0, sq0), sq1 = _mm512_fmadd_ps(v1, v1, sq1);
                    }
                    if (c->gs) /* BN statistics: float over the block's rows, then double */
                        add_stats(c->gs + g * 2 * Co + 32 * (size_t)j, Co, nc, s0, s1, sq0, sq1);
                }
            }
        }
    }
    nn_amx_end();
}

/* ---- vdpbf16ps (AVX512_BF16 without AMX: nn_bf16_native() == 1) ---------------------
 * The same slot and the same packed weights, multiplied with _mm512_dpbf16_ps (per fp32
 * lane acc += a[2i] b[2i] + a[2i+1] b[2i+1]): a block of P output pixels x CB vectors of 16
 * output channels (one panel of 32 columns is CB = 2) is held in P CB zmm accumulators;
 * per tap row ky and k-pair r (two neighbouring bf16 of the pixel's run of kw Ci) it loads
 * the CB weight vectors of pair r (the panel's pair row: VNNI layout, as AMX reads it) and
 * broadcasts each pixel's pair as one 32-bit value. Unlike the tiles, the rows are output
 * pixels themselves (pixel ox of output row oy starts its run at padded pixel (st oy + ky,
 * st ox)): no padding rows or columns and, strided, no dropped rows are multiplied, and a
 * run stops at its last pair (ceil(kw Ci / 2)) instead of R / 2 (the rest of R is zero
 * weights). A run of odd length reads one bf16 past it against a zero weight, as the
 * tiles do.
 * Numerics: exact products of the same bf16 operands summed in fp32 over k in (ky, r)
 * order, two products per lane and step (vdpbf16ps rounds each of its two additions to
 * nearest even and flushes subnormal results, as the AMX and vdpbf16ps GEMMs do): the
 * bounds of tests/nn/check_bf16.c hold; another order than the tiles', so other bits. */
#define V512_MAXP 16

/* the pair of bf16 at p (even index first) as one 32-bit lane value */
static inline uint32_t pair_at(const uint16_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* the masks of a 32-column panel's two vectors of 16 for its nc valid columns */
static inline void nc_masks(int nc, __mmask16 m[2])
{
    m[0] = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1);
    m[1] = nc >= 32 ? 0xffff : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1);
}

/* One block's operands: pixel q's run starts at a + so[q] (bf16; tap row ky at + ky rs),
 * the weights of tap row ky at bj + ky r2 32 (r2 pairs a tap row), npair pairs of each
 * run multiplied; its output at o0 + q os (oo NULL) or at oo[q] (pixels that do not lie
 * evenly apart: dxp_body's blocks run across the rows of a phase), output channels 32 j +
 * 16 b (b < CB, nc valid in the panel). v512_block's st: NULL (no statistics wanted: a plain
 * forward, a dX), or the 2 CB sum and 2 CB square vectors the block's floats are added into. */
typedef struct {
    const uint16_t *a;
    const size_t *so, *oo;
    size_t rs, o0, os;
    const uint32_t *bj;
    int kh, r2, npair, nc;
} v512_arg;

#define V512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), optimize("O3")))
V512_TARGET static inline __attribute__((always_inline)) void
v512_block(const amx_ctx *c, const int P, const int CB, const int PS, const v512_arg *g,
           __m512 *st)
{
    __m512 acc[V512_MAXP * 2];
#pragma GCC unroll 32
    for (int i = 0; i < P * CB; i++)
        acc[i] = _mm512_setzero_ps();
    const int npair = g->npair;
    for (int ky = 0; ky < g->kh; ky++) {
        const uint16_t *ar = g->a + (size_t)ky * g->rs;
        const uint32_t *bk = g->bj + (size_t)ky * (size_t)g->r2 * 32;
        const uint16_t *src[V512_MAXP];
        for (int q = 0; q < P; q++) /* PS: the pixels lie PS bf16 apart (src[0] only) */
            src[q] = ar + g->so[q];
        for (int r = 0; r < npair; r++) {
            __m512bh wv[2];
            for (int b = 0; b < CB; b++)
                wv[b] = (__m512bh)_mm512_loadu_si512(bk + (size_t)r * 32 + 16 * b);
            for (int q = 0; q < P; q++) {
                const uint16_t *pq = PS ? src[0] + 2 * r + (size_t)q * PS : src[q] + 2 * r;
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)pair_at(pq));
                for (int b = 0; b < CB; b++)
                    acc[q * CB + b] = _mm512_dpbf16_ps(acc[q * CB + b], x, wv[b]);
            }
        }
    }
    const int nc = g->nc;
    __mmask16 m[2];
    __m512 sum[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()}, sq[2] = {sum[0], sum[0]};
    nc_masks(nc, m);
#pragma GCC unroll 16
    for (int q = 0; q < P; q++)
#pragma GCC unroll 2
        for (int b = 0; b < CB; b++) {
            __m512 v = acc[q * CB + b];
            size_t oi = (g->oo ? g->oo[q] : g->o0 + (size_t)q * g->os) + 16 * (size_t)b;
            if (c->ob) { /* bf16 of the floats (the sums below use the floats) */
                uint16_t *o = (uint16_t *)(void *)c->out + oi;
                _mm256_mask_storeu_epi16(o, m[b], (__m256i)_mm512_cvtneps_pbh(v));
            } else {
                float *o = c->out + oi;
                if (c->accumulate)
                    v = _mm512_add_ps(_mm512_maskz_loadu_ps(m[b], o), v);
                _mm512_mask_storeu_ps(o, m[b], v);
            }
            if (st) { /* forward_stats: sums and squares of the block's floats */
                sum[b] = _mm512_add_ps(sum[b], v);
                sq[b] = _mm512_fmadd_ps(v, v, sq[b]);
            }
        }
    if (st) /* in registers above: through st (memory) each pixel was a store-load chain */
        for (int b = 0; b < CB; b++) {
            st[b] = _mm512_add_ps(st[b], sum[b]);
            st[2 + b] = _mm512_add_ps(st[2 + b], sq[b]);
        }
}

#define V512_INST(P, CB)                                                                       \
    V512_TARGET static __attribute__((noinline)) void v512_##P##_##CB(                           \
        const amx_ctx *c, const v512_arg *g, __m512 *st)                                         \
    {                                                                                            \
        v512_block(c, P, CB, 0, g, st);                                                          \
    }
V512_INST(16, 1) V512_INST(8, 1) V512_INST(4, 1) V512_INST(2, 1) V512_INST(1, 1)
V512_INST(8, 2) V512_INST(4, 2) V512_INST(2, 2) V512_INST(1, 2)
#define V512_INST_PS(P, CB, PS)                                                                \
    V512_TARGET static __attribute__((noinline)) void v512_##P##_##CB##_##PS(                    \
        const amx_ctx *c, const v512_arg *g, __m512 *st)                                         \
    {                                                                                            \
        v512_block(c, P, CB, PS, g, st);                                                         \
    }
V512_INST_PS(16, 1, 16) V512_INST_PS(16, 1, 32)
typedef void (*v512_fn)(const amx_ctx *, const v512_arg *, __m512 *);
/* [CB - 1][log2 P] (CB = 2: at most 8 pixels, 16 accumulators) */
static const v512_fn v512_fns[2][5] = {{v512_1_1, v512_2_1, v512_4_1, v512_8_1, v512_16_1},
                                       {v512_1_2, v512_2_2, v512_4_2, v512_8_2, NULL}};

/* the kernel for a block of P pixels (so[]) x CB: one that keeps the pixel offsets in one
 * register where they lie ps bf16 apart and P = 16 would keep 16 (16 pointers do not fit
 * the general registers: the compiler moves them through xmm registers per pair) */
static v512_fn v512_pick(int lp, int CB, const size_t *so, size_t ps)
{
    if (lp == 4 && CB == 1 && (ps == 16 || ps == 32)) {
        int u = 1;
        for (int q = 1; q < 16; q++)
            u &= so[q] == so[0] + (size_t)q * ps;
        if (u)
            return ps == 16 ? v512_16_1_16 : v512_16_1_32;
    }
    return v512_fns[CB - 1][lp];
}

/* task item: group g of images, slot g; per image: convert it, then per panel its output
 * pixels in raster order, in blocks (statistics: float per block, then double) */
BF16_TARGET static void v512_fwd_body(void *vc, size_t gb, size_t ge)
{
    const amx_ctx *c = vc;
    const amx_plan *p = c->p;
    const size_t Ci = (size_t)p->Ci, Co = (size_t)p->Co, ps = (size_t)p->st * Ci;
    const size_t rs = (size_t)p->Wp * Ci, npix = (size_t)p->Ho * (size_t)p->Wo;
    size_t so[V512_MAXP];
    v512_arg va = {.so = so, .rs = rs, .os = Co, .kh = p->kh, .r2 = p->R / 2,
                   .npair = (p->kw * p->Ci + 1) / 2};
    for (size_t g = gb; g < ge; g++) {
        size_t n0, n1;
        uint16_t *xp = group_slot(c, g, &n0, &n1);
        for (size_t n = n0; n < n1; n++) {
            cvt_image(c, n, xp);
            for (int j = 0; j < p->np; j++) {
                const uint32_t *bj = c->bp + (size_t)j * p->KP * 32;
                int nc = (int)Co - 32 * j < 32 ? (int)Co - 32 * j : 32;
                int CB = nc > 16 ? 2 : 1, lp = CB == 2 ? 3 : 4;
                size_t i = 0, oy = 0, ox = 0; /* (oy, ox): pixel i (no division per pixel) */
                while (i < npix) {
                    while ((size_t)1 << lp > npix - i)
                        lp--;
                    int P = 1 << lp;
                    for (int q = 0; q < P; q++) {
                        so[q] = (size_t)p->st * oy * rs + ox * ps;
                        if (++ox == (size_t)p->Wo)
                            ox = 0, oy++;
                    }
                    __m512 st[4];
                    for (int k = 0; k < 4; k++)
                        st[k] = _mm512_setzero_ps();
                    va.a = xp, va.bj = bj, va.nc = nc;
                    va.o0 = (n * npix + i) * Co + 32 * (size_t)j;
                    v512_pick(lp, CB, so, ps)(c, &va, c->gs ? st : NULL);
                    if (c->gs) /* BN statistics: float over the block, then double */
                        add_stats(c->gs + g * 2 * Co + 32 * (size_t)j, Co, nc, st[0], st[1],
                                  st[2], st[3]);
                    i += (size_t)P;
                }
            }
        }
    }
}

static void run(eqm_host *h, const amx_plan *pp, float *out, const float *in, const float *w,
                int accumulate, float *buf, double *gs, const eqm_conv2d_shape *fs);

/* ---- The dX of a strided conv on vdpbf16ps: one stride-1 conv per phase ----------------
 * (AMX spreads dout out by the stride and runs one stride-1 conv over it, multiplying the
 * zeros in between: (st^2 - 1) / st^2 of its products; here they would cost as much as the
 * rest.) din pixel (iy, ix) with iy + pad = st qy + ry, ix + pad = st qx + rx (its phase
 * (ry, rx)) receives only the taps ky = ry + st jy, kx = rx + st ix (jy < nky, ix < nkx),
 * from dout pixel (qy - jy, qx - ix). So per phase din is a stride-1 conv of dout with the
 * phase's nky x nkx taps (flipped) over a slot holding dout at (TY + oy, TX + ox), TY = (kh
 * - 1) / st, TX = (kw - 1) / st, zero around it: pixel (qy, qx)'s run for tap row jy' (jy
 * = nky - 1 - jy') is the nkx Co bf16 from slot pixel (TY + qy - nky + 1 + jy', TX + qx -
 * nkx + 1), with w'[ci][jy'][ix' Co + co] = w[co][ry + st (nky-1-jy')][rx + st (nkx-1-ix')]
 * [ci] packed per phase (panels of 32 ci, pairs of the run: the forward kernel's layout).
 * A phase without taps (1x1 stride 2: three of four) writes zeros (or leaves din as it is
 * when accumulating). The blocks take a phase's din pixels in raster order, across its
 * rows (each pixel with its own slot and din offsets, v512_arg's oo: per row, ResNet-50's
 * 7- and 14-pixel phase rows ran as blocks of 4, 2 and 1, whose weight loads outnumber
 * their products); each pixel's sum is the same at any blocking. Groups of whole images
 * per task as the forward, so any thread count gives the same bits. Every product is one of the
 * forward's dX products (no zero operand is multiplied but the padding of the slot's borders). */
typedef struct {
    const eqm_conv2d_shape *s;
    int st, Ho, Wo, TY, TX, SH, SW, np, nph;
    int gaps; /* some phase has no taps */
    size_t slot; /* bf16 of one slot (+ slack for the last pair's overread) */
    int nky[DXP_MAXST * DXP_MAXST], nkx[DXP_MAXST * DXP_MAXST], r2[DXP_MAXST * DXP_MAXST];
    size_t woff[DXP_MAXST * DXP_MAXST + 1]; /* uint32 offsets of the phases' packed weights */
    size_t G;
} dxp_plan;

static void dxp_make(const eqm_conv2d_shape *s, dxp_plan *p)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->st = s->stride;
    p->Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    p->Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    p->TY = (s->kh - 1) / p->st;
    p->TX = (s->kw - 1) / p->st;
    int QH = (s->H - 1 + s->pad) / p->st + 1, QW = (s->W - 1 + s->pad) / p->st + 1;
    p->SH = p->TY + (p->Ho > QH ? p->Ho : QH);
    p->SW = p->TX + (p->Wo > QW ? p->Wo : QW);
    p->slot = ((size_t)p->SH * p->SW * (size_t)s->C_out + 32 + 31) / 32 * 32;
    p->np = (s->C_in + 31) / 32;
    p->nph = p->st * p->st;
    for (int ph = 0; ph < p->nph; ph++) {
        int ry = ph / p->st, rx = ph % p->st;
        p->nky[ph] = ry < s->kh ? (s->kh - 1 - ry) / p->st + 1 : 0;
        p->nkx[ph] = rx < s->kw ? (s->kw - 1 - rx) / p->st + 1 : 0;
        p->r2[ph] = (p->nkx[ph] * s->C_out + 1) / 2;
        if (!p->nky[ph] || !p->nkx[ph])
            p->gaps = 1;
        p->woff[ph + 1] =
            p->woff[ph] + (size_t)p->np * (size_t)p->nky[ph] * (size_t)p->r2[ph] * 32;
    }
    p->G = (size_t)nn_threads();
    if (p->G > (size_t)s->N)
        p->G = (size_t)s->N;
}

static size_t dxp_ws_floats(const dxp_plan *p)
{
    return (p->woff[p->nph] + 15) / 16 * 16 + p->G * p->slot / 2 + 32;
}

typedef struct {
    const dxp_plan *p;
    const float *w, *dout;
    uint32_t *wp;
    uint16_t *xp;
    amx_ctx c; /* out = din, accumulate (what v512_block reads) */
} dxp_ctx;

/* task item: phase ph, panel j (t = ph np + j) */
static void dxp_pack_body(void *vc, size_t b, size_t e)
{
    const dxp_ctx *d = vc;
    const dxp_plan *p = d->p;
    const eqm_conv2d_shape *s = p->s;
    const int Co = s->C_out, Ci = s->C_in;
    for (size_t t = b; t < e; t++) {
        int ph = (int)(t / (size_t)p->np), j = (int)(t % (size_t)p->np);
        int ry = ph / p->st, rx = ph % p->st, nky = p->nky[ph], nkx = p->nkx[ph];
        int run = nkx * Co;
        uint32_t *dst = d->wp + p->woff[ph] + (size_t)j * nky * (size_t)p->r2[ph] * 32;
        for (int jy = 0; jy < nky; jy++) {
            int ky = ry + p->st * (nky - 1 - jy);
            for (int r2 = 0; r2 < p->r2[ph]; r2++, dst += 32) {
                const float *w0 = NULL, *w1 = NULL;
                for (int h = 0; h < 2; h++) {
                    int el = 2 * r2 + h;
                    if (el >= run)
                        continue;
                    int kx = rx + p->st * (nkx - 1 - el / Co), co = el % Co;
                    const float *wr = d->w + (((size_t)co * s->kh + (size_t)ky) * s->kw + (size_t)kx) * Ci;
                    if (h)
                        w1 = wr;
                    else
                        w0 = wr;
                }
                pack_pairs32(dst, w0, 1, w1, 1, 32 * (size_t)j, Ci - 32 * j < 32 ? Ci - 32 * j : 32);
            }
        }
    }
}

/* first q (>= 0) with st q + r - pad >= 0, and one past the last with st q + r - pad < n */
static void dxp_range(int n, int st, int r, int pad, int *q0, int *q1)
{
    *q0 = pad > r ? (pad - r + st - 1) / st : 0;
    *q1 = n - 1 + pad - r >= 0 ? (n - 1 + pad - r) / st + 1 : 0;
}

/* task item: group g of images, slot g */
BF16_TARGET static void dxp_body(void *vc, size_t gb, size_t ge)
{
    const dxp_ctx *d = vc;
    const dxp_plan *p = d->p;
    const eqm_conv2d_shape *s = p->s;
    const size_t Co = (size_t)s->C_out, Ci = (size_t)s->C_in, SW = (size_t)p->SW;
    size_t so[V512_MAXP], oo[V512_MAXP];
    v512_arg va = {.so = so, .oo = oo, .rs = SW * Co};
    for (size_t g = gb; g < ge; g++) {
        uint16_t *xp = d->xp + g * p->slot;
        memset(xp, 0, p->slot * sizeof(uint16_t));
        size_t n0 = (size_t)s->N * g / p->G, n1 = (size_t)s->N * (g + 1) / p->G;
        for (size_t n = n0; n < n1; n++) {
            const size_t len = (size_t)p->Wo * Co;
            for (int oy = 0; oy < p->Ho; oy++) {
                uint16_t *dst = xp + ((size_t)(p->TY + oy) * SW + (size_t)p->TX) * Co;
                const float *src = d->dout + (n * (size_t)p->Ho + (size_t)oy) * len;
                for (size_t i = 0; i < len; i += 32)
                    cvt32(dst + i, src + i, len - i < 32 ? (int)(len - i) : 32);
            }
            /* pixels no tap reaches (a phase without taps: 1x1 stride 2) have dL/din = 0:
             * without accumulate the image is zeroed first (one pass; the phases with taps
             * then overwrite theirs) */
            if (p->gaps && !d->c.accumulate)
                memset(d->c.out + n * (size_t)s->H * (size_t)s->W * Ci, 0,
                       (size_t)s->H * (size_t)s->W * Ci * sizeof(float));
            for (int ph = 0; ph < p->nph; ph++) {
                int ry = ph / p->st, rx = ph % p->st, nky = p->nky[ph], nkx = p->nkx[ph];
                int qy0, qy1, qx0, qx1;
                dxp_range(s->H, p->st, ry, s->pad, &qy0, &qy1);
                dxp_range(s->W, p->st, rx, s->pad, &qx0, &qx1);
                if (!nky || !nkx)
                    continue;
                va.kh = nky, va.r2 = va.npair = p->r2[ph];
                va.a = xp;
                for (int j = 0; j < p->np; j++) {
                    va.bj = d->wp + p->woff[ph] + (size_t)j * nky * (size_t)p->r2[ph] * 32;
                    va.nc = (int)Ci - 32 * j < 32 ? (int)Ci - 32 * j : 32;
                    int CB = va.nc > 16 ? 2 : 1, lp = CB == 2 ? 3 : 4;
                    /* the phase's pixels in raster order, blocks across its rows (per
                     * row, 7 pixels were blocks of 4, 2 and 1) */
                    const int nq = qy1 > qy0 && qx1 > qx0 ? (qy1 - qy0) * (qx1 - qx0) : 0;
                    int qy = qy0, qx = qx0;
                    for (int i = 0; i < nq;) {
                        while ((1 << lp) > nq - i)
                            lp--;
                        int P = 1 << lp;
                        for (int q = 0; q < P; q++) {
                            size_t sy = (size_t)(p->TY + qy - nky + 1),
                                   sx = (size_t)(p->TX + qx - nkx + 1);
                            size_t iy = (size_t)(p->st * qy + ry - s->pad),
                                   ix = (size_t)(p->st * qx + rx - s->pad);
                            so[q] = (sy * SW + sx) * Co;
                            oo[q] =
                                ((n * (size_t)s->H + iy) * (size_t)s->W + ix) * Ci + 32 * (size_t)j;
                            if (++qx == qx1)
                                qx = qx0, qy++;
                        }
                        v512_pick(lp, CB, so, Co)(&d->c, &va, NULL); /* no statistics */
                        i += P;
                    }
                }
            }
        }
    }
}

static void dxp_run(eqm_host *h, const eqm_conv2d_shape *s, float *din, const float *dout,
                    const float *w, int accumulate, float *buf)
{
    dxp_plan p;
    dxp_make(s, &p);
    dxp_ctx d = {.p = &p, .w = w, .dout = dout};
    d.c.out = din, d.c.accumulate = accumulate;
    d.wp = (uint32_t *)(void *)buf;
    d.xp = (uint16_t *)(void *)(buf + (p.woff[p.nph] + 15) / 16 * 16);
    nn_parallel(h, (size_t)p.nph * (size_t)p.np, 1, dxp_pack_body, &d);
    nn_parallel(h, p.G, 1, dxp_body, &d);
}

/* Per-group statistics partials (G x 2 Co doubles): grown at the first call that needs
 * more, never shrunk (no allocation once the first training step has run). */
static double *gpart;
static size_t gpart_n;

int nn_amx_conv_forward_stats(eqm_host *h, const eqm_conv2d_shape *s, float *out,
                              const float *in, const float *w, float *buf, double *stats)
{
    amx_plan p;
    plan(s, 0, &p);
    size_t n = p.G * 2 * (size_t)p.Co;
    if (n > gpart_n) {
        double *q = realloc(gpart, n * sizeof(double));
        if (!q) {
            host_api()->set_error(h, EQM_ERR_NOMEM, "nn.conv2d_forward_stats: out of memory");
            return EQM_ERR_NOMEM;
        }
        gpart = q, gpart_n = n;
    }
    memset(gpart, 0, n * sizeof(double));
    run(h, &p, out, in, w, 0, buf, gpart, NULL);
    /* groups in order: the same sums for a given thread count */
    for (size_t k = 0; k < 2 * (size_t)p.Co; k++) {
        double a = 0;
        for (size_t g = 0; g < p.G; g++)
            a += gpart[g * 2 * (size_t)p.Co + k];
        stats[k] = a;
    }
    return EQM_OK;
}

void nn_amx_conv_forward(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                         const float *w, int accumulate, float *buf, const eqm_conv2d_shape *fs)
{
    amx_plan p;
    plan(s, 0, &p);
    run(h, &p, out, in, w, accumulate, buf, NULL, fs);
}

/* ---- Winograd F(2x2, 3x3) on vdpbf16ps (nn_bf16_native() == 1), and in fp32 ------------
 * fp32 (p->f32: a float conv, on any CPU with AVX512_BF16, nn_bf16_cpu(), whatever the
 * bf16 mode): the same tiles, chunks, groups and transforms with V and U kept as floats
 * (no rounding) and the products by FMA (fc_block: 8 tiles x 16 or 32 co per block, one
 * broadcast float of V per tile and ci); the dW multiplies V as wv_in leaves it (no
 * transpose: fc_block broadcasts down a column of it) by dM as floats. Numerics: those of
 * winograd.c (transforms in 0, +-1, +-1/2; within 2 eps32 of the magnitude against im2col
 * in tests/nn/check_nn_ref.c). Measured against the direct kernels it replaces
 * (conv-layers --stats 1, 1 core, CPU ms, fwd / dX / dW): width 1/4 batch 384: 32x32
 * 16->16 15.0 / 15.5 / (dW kept: 19.8 against 16.6) against 21.1 / 20.9; 16x16 32->32
 * 10.9 / 11.1 / 13.1 against 17.4 / 16.9 / 18.2; 8x8 64->64 9.4 / 9.6 / 10.7 against
 * 15.5 / 15.2 / 17.8; 4x4 128->128 8.5 / 8.6 / 9.8 against 14.7 / 14.8 / 15.1; full
 * width batch 64: 32x32 64->64 26.0 / 25.4 / 28.3 against 44.0 / 43.5 / 44.9; 16x16
 * 128->128 22.7 / 22.9 / 25.5 against winograd.c's 32.6 / 38.8 / 37.5.
 * A 3x3 stride-1 conv as 16 products per 2x2 output tile and (ci, co) instead of 36
 * (Lavin & Gray): per tile, V = B^T d B of its 4x4 input patch d (fp32 from the input as it
 * lies, bf16 or float, rounded to bf16), U = G g G^T of each 3x3 kernel (fp32, rounded to
 * bf16, packed as the implicit kernel's panels: pairs of ci x 32 co), per xi of the 16:
 * M[xi][tile][co] = sum_ci V[xi][tile][ci] U[xi][ci][co] by wv_gemm (blocks of 8 tiles x
 * 16 or 32 co, as v512_block's but without its per-block setup: a run is only C_in long;
 * fp32 accumulation), then Y = A^T M A in fp32 (the 2x2 outputs), with the statistics
 * and the float / accumulated / bf16 store of the implicit kernel's epilogue.
 * Not the implicit kernel's numerics: the products are of transformed operands, each
 * rounded to bf16 (bounded as the fp32 Winograd's bf16 GEMMs are, tests/nn/check_bf16.c).
 * Tiles run in chunks of WV_T (a larger chunk did not help 4x4 512->512: 128 and 256
 * tiles gave the same times) over the images of a group (one group per task, whole
 * images: any thread count gives the same outputs); statistics: float sums per 16 tiles of
 * a chunk (64 outputs), then double. Scope (wv_ok): 3x3, stride 1, C_in and C_out
 * multiples of 16. An odd Ho or Wo ends in tiles with one output row or column: their
 * input past the image reads as zeros (wv_in), the outputs past Ho, Wo are not stored
 * nor summed (wv_out), and the dW reads their dout as zeros (wd_dout). */
#define WV_T 32

static int wv_ok(const amx_plan *p)
{
    /* fp32: any AVX-512 CPU this file compiles for (nn_bf16_cpu), float in and out */
    int isa = p->f32 ? nn_bf16_cpu() > 0 && !(p->s->flags & (EQM_NN_IN_BF16 | EQM_NN_OUT_BF16))
                     : nn_bf16_native() == 1;
    return isa && !p->dx && p->kh == 3 && p->kw == 3 && p->st == 1 && p->Ci % 16 == 0 &&
           p->Co % 16 == 0 && p->Ho >= 1 && p->Wo >= 1;
}

/* algo 6: wherever it applies; 5: never (the implicit kernel); default: see below */
static int wv_pick(const amx_plan *p)
{
    int algo = nn_conv2d_algo();
    if (!wv_ok(p) || (algo != 0 && algo != 6))
        return 0;
    if (algo == 6)
        return 1;
    /* default: from 256 tiles a call (below that, U's packing, 16 C_in C_out values, is
     * not amortised: 4x4 512->512 at batch 16, 64 tiles, dX 16.5-16.8 against 10.3-11.1
     * ms, the forward still 6.8-8.0 against 9.7-10.8; at batch 64, 256 tiles, 14.5-14.8 /
     * 25.4-25.5 and 24.8-25.2 / 26.3-26.4). Measured (conv-layers --bf16 1 --in-bf16 1
     * --stats 1, 1 core, CPU ms, Winograd / implicit, forward and dX), batch 768 (the
     * paper's 3N rows), two rounds: 32x32 64->64 189-220 / 306-324, 221-245 / 293-308;
     * 16x16 128->128 156-164 / 276-291, 175-183 / 276-290; 8x8 256->256 149 / 274-276,
     * 160-164 / 275-281; 4x4 512->512 133-138 / 268-271, 145-146 / 270-279; batch 384,
     * width 1/4: 32x32 16->16 9.5-9.7 / 10.9-11.1, 11.8-12.2 / 11.6-12.2; 16x16 32->32
     * 6.6-7.0 / 9.6, 7.5-8.1 / 9.8; 8x8 64->64 5.5-6.0 / 8.9-9.0, 6.1-6.7 / 8.8-9.1; 4x4
     * 128->128 5.8 / 8.7-8.9, 6.3 / 8.8-9.0 */
    return (size_t)p->s->N * (size_t)((p->Ho + 1) / 2) * (size_t)((p->Wo + 1) / 2) >= 256;
}

typedef struct {
    int tw;     /* tiles per image row */
    size_t ti;  /* tiles per image */
    size_t ubp; /* uint32 (fp32: floats) of the packed U: 16 np (Ci / 2) 32 (fp32: 16 np Ci 32) */
    size_t T;   /* tiles per chunk */
    size_t vp;  /* V elements (bf16, fp32: floats) from one xi's to the next: T Ci + 32; the
                   padding puts the 16 planes in distinct L1 sets (T Ci is a power of two) */
    size_t mp;  /* floats from one xi's M to the next: T Co + 16 */
    size_t vsz; /* V elements of one group: 16 vp */
    size_t vf;  /* floats that V takes in a group's workspace (rounded up to 16) */
    size_t msz; /* floats of one group's M: 16 mp */
} wv_plan;

static void wv_make(const amx_plan *p, wv_plan *v)
{
    v->tw = (p->Wo + 1) / 2;
    v->ti = (size_t)((p->Ho + 1) / 2) * (size_t)v->tw;
    v->ubp = 16 * (size_t)p->np * (size_t)(p->f32 ? p->Ci : p->Ci / 2) * 32;
    v->T = WV_T;
    v->vp = v->T * (size_t)p->Ci + 32;
    v->mp = v->T * (size_t)p->Co + 16;
    v->vsz = 16 * v->vp;
    v->vf = ((p->f32 ? v->vsz : v->vsz / 2) + 15) / 16 * 16;
    v->msz = 16 * v->mp;
}

static size_t wv_ws_floats(const amx_plan *p)
{
    wv_plan v;
    wv_make(p, &v);
    return (v.ubp + 15) / 16 * 16 + p->G * (v.vf + v.msz) + 32;
}

typedef struct {
    const amx_ctx *c;
    const wv_plan *v;
    float *gw; /* per group g at gw + g (vf + msz): V (vf floats of bf16), then M */
} wv_ctx;

/* task item: panel j of U: per xi, pair r, column: (bf16 U[xi][32 j + col][2 r], ...[2r+1])
 * with U = G g G^T of g[ky][kx] = w'[co][ky][kx][ci] (the conv's own OHWI weights or, for a
 * dX, the forward's flipped: w'[co][ky][kx][ci] = w[ci][2 - ky][2 - kx][co], gathered),
 * 16 ci at a time in fp32 vectors; columns past C_out are zero */
V512_TARGET static void wv_pack_body(void *vc, size_t b, size_t e)
{
    const wv_ctx *x = vc;
    const amx_ctx *c = x->c;
    const amx_plan *p = c->p;
    const size_t np = (size_t)p->np, nr = (size_t)(p->Ci / 2), Ci = (size_t)p->Ci;
    const eqm_conv2d_shape *f = c->fs;
    const size_t Cf = f ? (size_t)f->C_in : 0;
    const __m512 h = _mm512_set1_ps(0.5f);
    /* flipped: element ci of a gather is w[ci][..][..][co], 9 C_in(f) apart */
    const __m512i gi =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(9 * (int)Cf));
    for (size_t j = b; j < e; j++) {
        const size_t pr32 = p->f32 ? Ci : nr; /* 32-lane rows of a panel */
        for (size_t xi = 0; xi < 16; xi++) /* the panel, zero (columns past C_out stay so) */
            memset(c->bp + ((xi * np + j) * pr32) * 32, 0, pr32 * 32 * sizeof(uint32_t));
        for (size_t col = 0; col < 32 && 32 * j + col < (size_t)p->Co; col++) {
            size_t co = 32 * j + col;
            for (size_t c0 = 0; c0 < Ci; c0 += 16) {
                __m512 g[3][3], t[4][3];
                for (size_t ky = 0; ky < 3; ky++)
                    for (size_t kx = 0; kx < 3; kx++) {
                        const float *wf = c->w + ((c0 * 3 + 2 - ky) * 3 + 2 - kx) * Cf + co;
                        g[ky][kx] = f ? _mm512_i32gather_ps(gi, wf, 4)
                                      : _mm512_loadu_ps(c->w + ((co * 3 + ky) * 3 + kx) * Ci + c0);
                    }
                for (int k = 0; k < 3; k++) { /* t = G g */
                    t[0][k] = g[0][k];
                    t[1][k] =
                        _mm512_mul_ps(h, _mm512_add_ps(_mm512_add_ps(g[0][k], g[1][k]), g[2][k]));
                    t[2][k] =
                        _mm512_mul_ps(h, _mm512_add_ps(_mm512_sub_ps(g[0][k], g[1][k]), g[2][k]));
                    t[3][k] = g[2][k];
                }
                for (int i = 0; i < 4; i++) { /* u = t G^T, rounded: 8 pairs of ci per xi */
                    __m512 u[4] = {
                        t[i][0],
                        _mm512_mul_ps(h, _mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2])),
                        _mm512_mul_ps(h, _mm512_add_ps(_mm512_sub_ps(t[i][0], t[i][1]), t[i][2])),
                        t[i][2]};
                    for (int k = 0; k < 4; k++) {
                        if (p->f32) { /* U[xi][ci][32 j + col] as floats */
                            float uf[16];
                            _mm512_storeu_ps(uf, u[k]);
                            float *dst = (float *)(void *)c->bp +
                                         (((size_t)(4 * i + k) * np + j) * Ci + c0) * 32 + col;
                            for (int r = 0; r < 16; r++)
                                dst[(size_t)r * 32] = uf[r];
                            continue;
                        }
                        uint32_t pr[8];
                        _mm256_storeu_si256((__m256i *)(void *)pr,
                                            (__m256i)_mm512_cvtneps_pbh(u[k]));
                        uint32_t *dst =
                            c->bp + (((size_t)(4 * i + k) * np + j) * nr + c0 / 2) * 32 + col;
                        for (int r = 0; r < 8; r++)
                            dst[(size_t)r * 32] = pr[r];
                    }
                }
            }
        }
    }
}

/* r[i] = (B^T d)[i] of column x of input rows y0..y0+3, 16 channels from ci: (d0 - d2,
 * d1 + d2, d2 - d1, d1 - d3); rows[i]: row y0 + i of the image, with mr[i] = 0 (a masked
 * load: zeros) where that row is outside it (rows[i] then points at a row inside); IB:
 * bf16 input (widened exactly), else float */
V512_TARGET static inline __attribute__((always_inline)) void
wv_col(const int IB, const void *const rows[4], const __mmask16 mr[4], int x, int W, size_t Ci,
       size_t ci, __m512 r[4])
{
    __m512 d[4];
    if (x < 0 || x >= W) {
        for (int i = 0; i < 4; i++)
            d[i] = _mm512_setzero_ps();
    } else {
        size_t off = (size_t)x * Ci + ci;
        for (int i = 0; i < 4; i++)
            if (IB) {
                __m256i h = _mm256_maskz_loadu_epi16(mr[i], (const uint16_t *)rows[i] + off);
                d[i] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            } else
                d[i] = _mm512_maskz_loadu_ps(mr[i], (const float *)rows[i] + off);
    }
    r[0] = _mm512_sub_ps(d[0], d[2]);
    r[1] = _mm512_add_ps(d[1], d[2]);
    r[2] = _mm512_sub_ps(d[2], d[1]);
    r[3] = _mm512_sub_ps(d[1], d[3]);
}

/* V[xi][t][ci] (bf16, T tiles per xi) of the nt tiles of a chunk from global tile k0 (image
 * k / ti), a run of tiles of one tile row at a time: each input column's B^T d is formed
 * once and serves the two tiles that share it */
V512_TARGET static inline __attribute__((always_inline)) void wv_in_t(const int IB, const int OF,
                                                                      const amx_ctx *c,
                                                                      const wv_plan *v, size_t k0,
                                                                      size_t nt, void *V, size_t vp)
{
    const eqm_conv2d_shape *s = c->p->s;
    const size_t Ci = (size_t)c->p->Ci, es = IB ? 2 : 4;
    const int pad = s->pad;
    for (size_t t = 0; t < nt;) {
        size_t k = k0 + t, n = k / v->ti, tt = k % v->ti, ty = tt / (size_t)v->tw;
        size_t tx0 = tt % (size_t)v->tw, run = (size_t)v->tw - tx0;
        if (run > nt - t)
            run = nt - t;
        const void *rows[4];
        __mmask16 mr[4];
        for (int i = 0; i < 4; i++) {
            int y = 2 * (int)ty - pad + i, in = y >= 0 && y < s->H;
            mr[i] = in ? (__mmask16)0xffff : 0;
            rows[i] = (const char *)(const void *)c->in +
                      ((n * (size_t)s->H + (size_t)(in ? y : 0)) * (size_t)s->W) * Ci * es;
        }
        for (size_t ci = 0; ci < Ci; ci += 16) {
            int x = 2 * (int)tx0 - pad;
            __m512 a[4][4], cl[4][4]; /* cl[col][i]: columns x .. x + 3 of the tile */
            wv_col(IB, rows, mr, x, s->W, Ci, ci, cl[0]);
            wv_col(IB, rows, mr, x + 1, s->W, Ci, ci, cl[1]);
            for (size_t u = 0; u < run; u++, x += 2) {
                wv_col(IB, rows, mr, x + 2, s->W, Ci, ci, cl[2]);
                wv_col(IB, rows, mr, x + 3, s->W, Ci, ci, cl[3]);
                for (int i = 0; i < 4; i++) { /* V = r B, row i */
                    a[i][0] = _mm512_sub_ps(cl[0][i], cl[2][i]);
                    a[i][1] = _mm512_add_ps(cl[1][i], cl[2][i]);
                    a[i][2] = _mm512_sub_ps(cl[2][i], cl[1][i]);
                    a[i][3] = _mm512_sub_ps(cl[1][i], cl[3][i]);
                }
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        size_t o = (size_t)(4 * i + j) * vp + (t + u) * Ci + ci;
                        if (OF)
                            _mm512_storeu_ps((float *)V + o, a[i][j]);
                        else
                            _mm256_storeu_si256((__m256i *)(void *)((uint16_t *)V + o),
                                                (__m256i)_mm512_cvtneps_pbh(a[i][j]));
                    }
                for (int i = 0; i < 4; i++)
                    cl[0][i] = cl[2][i], cl[1][i] = cl[3][i];
            }
        }
        t += run;
    }
}

V512_TARGET static __attribute__((noinline)) void wv_in(const amx_ctx *c, const wv_plan *v,
                                                        size_t k0, size_t nt, void *V, size_t vp)
{
    if (c->p->f32) /* (float input: wv_ok) */
        wv_in_t(0, 1, c, v, k0, nt, V, vp);
    else if (c->ib)
        wv_in_t(1, 0, c, v, k0, nt, V, vp);
    else
        wv_in_t(0, 0, c, v, k0, nt, V, vp);
}

/* Y = A^T M A of the chunk's tiles into out (OB: bf16; else float, ACC: accumulated);
 * ST: statistics of the outputs into gd (2 Co doubles). Per 16 tiles their output
 * offsets first (no division per tile and channel block). */
V512_TARGET static inline __attribute__((always_inline)) void
wv_out_t(const int OB, const int ACC, const int ST, const amx_ctx *c, const wv_plan *v, size_t k0,
         size_t nt, const float *M, double *gd)
{
    const amx_plan *p = c->p;
    const size_t Co = (size_t)p->Co, Wo = (size_t)p->Wo;
    size_t ob[16];
    int ni[16], nj[16]; /* output rows and columns of the tile: 2, or 1 at an odd edge */
    for (size_t t0 = 0; t0 < nt; t0 += 16) {
        size_t t1 = nt - t0 < 16 ? nt : t0 + 16;
        for (size_t t = t0; t < t1; t++) {
            size_t k = k0 + t, n = k / v->ti, tt = k % v->ti;
            size_t oy = 2 * (tt / (size_t)v->tw), ox = 2 * (tt % (size_t)v->tw);
            ob[t - t0] = ((n * (size_t)p->Ho + oy) * Wo + ox) * Co;
            ni[t - t0] = oy + 1 < (size_t)p->Ho ? 2 : 1;
            nj[t - t0] = ox + 1 < Wo ? 2 : 1;
        }
        for (size_t co = 0; co < Co; co += 16) {
            __m512 sum = _mm512_setzero_ps(), sq = sum;
            for (size_t t = t0; t < t1; t++) {
                __m512 m[16], a[2][4];
                for (int xi = 0; xi < 16; xi++)
                    m[xi] = _mm512_loadu_ps(M + (size_t)xi * v->mp + t * Co + co);
                for (int j = 0; j < 4; j++) { /* a = A^T m */
                    a[0][j] = _mm512_add_ps(_mm512_add_ps(m[j], m[4 + j]), m[8 + j]);
                    a[1][j] = _mm512_sub_ps(_mm512_sub_ps(m[4 + j], m[8 + j]), m[12 + j]);
                }
                for (size_t i = 0; i < (size_t)ni[t - t0]; i++) {
                    __m512 y[2] = {_mm512_add_ps(_mm512_add_ps(a[i][0], a[i][1]), a[i][2]),
                                   _mm512_sub_ps(_mm512_sub_ps(a[i][1], a[i][2]), a[i][3])};
                    size_t o = ob[t - t0] + i * Wo * Co + co;
                    for (int j = 0; j < nj[t - t0]; j++, o += Co) {
                        if (OB)
                            _mm256_storeu_si256((__m256i *)(void *)((uint16_t *)(void *)c->out + o),
                                                (__m256i)_mm512_cvtneps_pbh(y[j]));
                        else
                            _mm512_storeu_ps(c->out + o,
                                             ACC ? _mm512_add_ps(_mm512_loadu_ps(c->out + o), y[j])
                                                 : y[j]);
                        if (ST) {
                            sum = _mm512_add_ps(sum, y[j]);
                            sq = _mm512_fmadd_ps(y[j], y[j], sq);
                        }
                    }
                }
            }
            if (ST)
                add_stats(gd + co, Co, 16, sum, sum, sq, sq);
        }
    }
}

V512_TARGET static __attribute__((noinline)) void
wv_out(const amx_ctx *c, const wv_plan *v, size_t k0, size_t nt, const float *M, double *gd)
{
    if (c->ob)
        gd ? wv_out_t(1, 0, 1, c, v, k0, nt, M, gd) : wv_out_t(1, 0, 0, c, v, k0, nt, M, gd);
    else if (c->accumulate)
        gd ? wv_out_t(0, 1, 1, c, v, k0, nt, M, gd) : wv_out_t(0, 1, 0, c, v, k0, nt, M, gd);
    else
        gd ? wv_out_t(0, 0, 1, c, v, k0, nt, M, gd) : wv_out_t(0, 0, 0, c, v, k0, nt, M, gd);
}

/* The end of bc_block / fc_block: o[q][16 k ..] (+)= acc[q CB + k], masked to m[k] */
V512_TARGET static inline __attribute__((always_inline)) void
acc_store(const int CB, const __m512 *acc, float *o, size_t ldo, const __mmask16 m[2], int add)
{
    for (int q = 0; q < 8; q++)
        for (int k = 0; k < CB; k++) {
            float *oq = o + (size_t)q * ldo + 16 * (size_t)k;
            __m512 v = acc[q * CB + k];
            if (add)
                v = _mm512_add_ps(_mm512_maskz_loadu_ps(m[k], oq), v);
            _mm512_mask_storeu_ps(oq, m[k], v);
        }
}

/* One block of 8 rows x CB vectors of 16 columns: o[q][16 b + i] (+)= sum over the npair
 * pairs r of (a[q lda + 2r], a[q lda + 2r + 1]) . (pair r of b[r ldb + 16 b + i]), the
 * broadcast operand's rows lda bf16 apart, the vector operand's pair rows ldb uint32
 * apart; masked to m[b] columns; add: o += instead of o =. (v512_block's arithmetic
 * without its per-block setup: the Winograd products are runs of one C_in or one chunk.) */
V512_TARGET static inline __attribute__((always_inline)) void
bc_block(const int CB, const uint16_t *a, size_t lda, const uint32_t *b, size_t ldb, int npair,
         float *o, size_t ldo, const __mmask16 m[2], int add)
{
    __m512 acc[16];
    for (int i = 0; i < 8 * CB; i++)
        acc[i] = _mm512_setzero_ps();
    for (int r = 0; r < npair; r++) {
        __m512bh bv[2];
        for (int k = 0; k < CB; k++)
            bv[k] = (__m512bh)_mm512_loadu_si512(b + (size_t)r * ldb + 16 * (size_t)k);
        for (int q = 0; q < 8; q++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)pair_at(a + (size_t)q * lda + 2 * r));
            for (int k = 0; k < CB; k++)
                acc[q * CB + k] = _mm512_dpbf16_ps(acc[q * CB + k], x, bv[k]);
        }
    }
    acc_store(CB, acc, o, ldo, m, add);
}

/* M[t][co] = sum over the npair pairs r of V[t][2r, 2r+1] . U[r][co] for t < nt (a multiple
 * of 8), co < nc of the panel: blocks of 8 tiles x CB vectors of 16 columns; the tiles lie
 * Ci bf16 apart */
V512_TARGET static inline __attribute__((always_inline)) void
wv_gemm(const int CB, const uint16_t *V, size_t Ci, const uint32_t *bj, int npair, float *M,
        size_t Co, size_t nt, int nc)
{
    __mmask16 m[2];
    nc_masks(nc, m);
    for (size_t t = 0; t < nt; t += 8)
        bc_block(CB, V + t * Ci, Ci, bj, 32, npair, M + t * Co, Co, m, 0);
}

V512_TARGET static __attribute__((noinline)) void wv_gemm1(const uint16_t *V, size_t Ci,
                                                           const uint32_t *bj, int npair, float *M,
                                                           size_t Co, size_t nt, int nc)
{
    wv_gemm(1, V, Ci, bj, npair, M, Co, nt, nc);
}

V512_TARGET static __attribute__((noinline)) void wv_gemm2(const uint16_t *V, size_t Ci,
                                                           const uint32_t *bj, int npair, float *M,
                                                           size_t Co, size_t nt, int nc)
{
    wv_gemm(2, V, Ci, bj, npair, M, Co, nt, nc);
}

/* fp32 (p->f32): bc_block's with FMA on floats: o[q][16 b + i] (+)= sum over r < n of
 * a[q lda + r lr] b[r ldb + 16 b + i], blocks of 8 rows x CB vectors of 16 columns */
V512_TARGET static inline __attribute__((always_inline)) void
fc_block(const int CB, const float *a, size_t lda, size_t lr, const float *b, size_t ldb, int n,
         float *o, size_t ldo, const __mmask16 m[2], int add)
{
    __m512 acc[16];
    for (int i = 0; i < 8 * CB; i++)
        acc[i] = _mm512_setzero_ps();
    for (int r = 0; r < n; r++) {
        __m512 bv[2];
        for (int k = 0; k < CB; k++)
            bv[k] = _mm512_loadu_ps(b + (size_t)r * ldb + 16 * (size_t)k);
        for (int q = 0; q < 8; q++) {
            __m512 x = _mm512_set1_ps(a[(size_t)q * lda + (size_t)r * lr]);
            for (int k = 0; k < CB; k++)
                acc[q * CB + k] = _mm512_fmadd_ps(x, bv[k], acc[q * CB + k]);
        }
    }
    acc_store(CB, acc, o, ldo, m, add);
}

/* wv_gemm on floats: M[t][co] = sum over ci of V[t][ci] U[ci][co] */
V512_TARGET static inline __attribute__((always_inline)) void wf_gemm(const int CB, const float *V,
                                                                      size_t Ci, const float *bj,
                                                                      float *M, size_t Co,
                                                                      size_t nt, int nc)
{
    __mmask16 m[2];
    nc_masks(nc, m);
    for (size_t t = 0; t < nt; t += 8)
        fc_block(CB, V + t * Ci, Ci, 1, bj, 32, (int)Ci, M + t * Co, Co, m, 0);
}

V512_TARGET static __attribute__((noinline)) void
wf_gemm1(const float *V, size_t Ci, const float *bj, float *M, size_t Co, size_t nt, int nc)
{
    wf_gemm(1, V, Ci, bj, M, Co, nt, nc);
}

V512_TARGET static __attribute__((noinline)) void
wf_gemm2(const float *V, size_t Ci, const float *bj, float *M, size_t Co, size_t nt, int nc)
{
    wf_gemm(2, V, Ci, bj, M, Co, nt, nc);
}

/* task item: group g of images: its tiles in chunks of WV_T */
V512_TARGET static void wv_body(void *vc, size_t gb, size_t ge)
{
    const wv_ctx *x = vc;
    const amx_ctx *c = x->c;
    const amx_plan *p = c->p;
    const wv_plan *v = x->v;
    const size_t Ci = (size_t)p->Ci, Co = (size_t)p->Co, nr = Ci / 2;
    for (size_t g = gb; g < ge; g++) {
        uint16_t *V = (uint16_t *)(void *)(x->gw + g * (v->vf + v->msz));
        float *M = x->gw + g * (v->vf + v->msz) + v->vf;
        size_t n0 = (size_t)p->s->N * g / p->G, n1 = (size_t)p->s->N * (g + 1) / p->G;
        memset(V, 0, v->vf * sizeof(float)); /* a short last chunk multiplies rows past nt:
                                                never uninitialised */
        for (size_t k0 = n0 * v->ti; k0 < n1 * v->ti; k0 += v->T) {
            size_t nt = n1 * v->ti - k0 < v->T ? n1 * v->ti - k0 : v->T;
            wv_in(c, v, k0, nt, V, v->vp);
            for (int xi = 0; xi < 16; xi++)
                for (int j = 0; j < p->np; j++) {
                    size_t pj = (size_t)xi * (size_t)p->np + (size_t)j; /* U's panel */
                    float *Mj = M + (size_t)xi * v->mp + 32 * (size_t)j;
                    int nc = (int)Co - 32 * j < 32 ? (int)Co - 32 * j : 32;
                    if (p->f32)
                        (nc > 16 ? wf_gemm2
                                 : wf_gemm1)((const float *)(void *)V + (size_t)xi * v->vp, Ci,
                                             (const float *)(const void *)c->bp + pj * Ci * 32, Mj,
                                             Co, (nt + 7) / 8 * 8, nc);
                    else
                        (nc > 16 ? wv_gemm2 : wv_gemm1)(V + (size_t)xi * v->vp, Ci,
                                                        c->bp + pj * nr * 32, (int)nr, Mj, Co,
                                                        (nt + 7) / 8 * 8, nc);
                }
            wv_out(c, v, k0, nt, M, c->gs ? c->gs + g * 2 * Co : NULL);
        }
    }
}

static void wv_run(eqm_host *h, amx_ctx *c, float *buf)
{
    const amx_plan *p = c->p;
    wv_plan v;
    wv_make(p, &v);
    c->bp = (uint32_t *)(void *)buf;
    wv_ctx x = {.c = c, .v = &v, .gw = buf + (v.ubp + 15) / 16 * 16};
    nn_parallel(h, (size_t)p->np, 1, wv_pack_body, &x);
    nn_parallel(h, p->G, 1, wv_body, &x);
}

/* ---- The dW of the same convs by Winograd F(2x2, 3x3) on vdpbf16ps ------------------
 * y = A^T [U (.) V] A per tile makes dL/dU = (A dy A^T) (.) V, so dW = G^T dU G with
 *     dU[xi][ci][co] = sum over tiles t of V[xi][t][ci] dM[xi][t][co],  dM = A dy A^T,
 * a GEMM per xi whose reduction runs over the tiles: V of the input as the forward forms
 * it (wv_in), dM of dout (fp32, rounded to bf16), exact products summed in fp32; dU stays
 * fp32 and G^T dU G is formed in fp32 at the end. vdpbf16ps takes pairs of tiles: dM as
 * the vector operand, pair-interleaved (dP[xi][t/2][co] = (dM[t][co], dM[t+1][co])), V
 * as the broadcast one, transposed (Vt[xi][ci][t]: 16x16 blocks in registers). Threads:
 * the tiles of the batch split into WD_GROUPS fixed contiguous ranges, each summed into
 * its own partial dU (one task each), then dw += G^T (((P0 + P1) + P2) + P3) G per
 * element: the same bits at any thread count. Scope: wv_ok's. */
#define WD_T 256 /* tiles per chunk (128 pairs per product block) */
/* fp32: tiles per chunk (V and dM as floats: the workspace of a 128->128 conv's dW 12 MiB,
 * not 20 as with 256) */
#define WD_TF 128
#define WD_GROUPS 4

typedef struct {
    amx_ctx c; /* in, ib, p: the conv as a forward */
    wv_plan v;
    const float *dout;
    float *part; /* WD_GROUPS x 16 Ci Co */
    float *tw;   /* per group: V (16 WD_T Ci bf16), Vt (same), dP (16 WD_T / 2 Co uint32) */
    size_t twf;  /* floats per group there */
    float *dw;
} wd_ctx;

/* V elements (bf16, fp32: floats) from one xi's V (or Vt) to the next; uint32 from one
 * xi's dP to the next (fp32: floats from one xi's dM to the next, dM[xi][t][co] as is) */
static size_t wd_vp(int f32, size_t Ci)
{
    return (size_t)(f32 ? WD_TF : WD_T) * Ci + 32;
}

static size_t wd_dp(int f32, size_t Co)
{
    return (size_t)(f32 ? WD_TF : WD_T / 2) * Co + 16;
}

static size_t wd_twf(const amx_plan *p)
{
    /* elements: bf16 (V and Vt, vb / 2 floats each) or floats (V only) */
    size_t vb = 16 * wd_vp(p->f32, (size_t)p->Ci);
    return vb + 16 * wd_dp(p->f32, (size_t)p->Co) + 32;
}

static size_t wd_ws_floats(const amx_plan *p)
{
    return WD_GROUPS * 16 * (size_t)p->Ci * (size_t)p->Co + WD_GROUPS * wd_twf(p) + 32;
}

/* a 16 x 16 matrix of 32-bit lanes (r[i]: row i) transposed in registers */
V512_TARGET static inline void wd_tr16(__m512i r[16])
{
    __m512i t[16], u[16], v[16];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (int m = 0; m < 4; m++) { /* u[4m + j], lane L: column 4L + j of rows 4m .. 4m + 3 */
        u[4 * m + 0] = _mm512_unpacklo_epi64(t[4 * m], t[4 * m + 2]);
        u[4 * m + 1] = _mm512_unpackhi_epi64(t[4 * m], t[4 * m + 2]);
        u[4 * m + 2] = _mm512_unpacklo_epi64(t[4 * m + 1], t[4 * m + 3]);
        u[4 * m + 3] = _mm512_unpackhi_epi64(t[4 * m + 1], t[4 * m + 3]);
    }
    for (int m = 0; m < 4; m += 2)
        for (int j = 0; j < 4; j++) {
            v[4 * m + j] = _mm512_shuffle_i32x4(u[4 * m + j], u[4 * m + 4 + j], 0x88);
            v[4 * m + 4 + j] = _mm512_shuffle_i32x4(u[4 * m + j], u[4 * m + 4 + j], 0xdd);
        }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_i32x4(v[j], v[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_i32x4(v[j], v[8 + j], 0xdd);
        r[4 + j] = _mm512_shuffle_i32x4(v[4 + j], v[12 + j], 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(v[4 + j], v[12 + j], 0xdd);
    }
}

/* Vt[xi][ci][t] = V[xi][t][ci] (bf16; WD_T tiles per xi, nt16 a multiple of 16) */
V512_TARGET static void wd_transpose(const uint16_t *V, uint16_t *Vt, size_t Ci, size_t nt16)
{
    const size_t vp = wd_vp(0, Ci);
    for (size_t xi = 0; xi < 16; xi++)
        for (size_t t0 = 0; t0 < nt16; t0 += 16)
            for (size_t c0 = 0; c0 < Ci; c0 += 16) {
                __m512i r[16];
                for (size_t i = 0; i < 16; i++)
                    r[i] = _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                        (const __m256i *)(const void *)(V + xi * vp + (t0 + i) * Ci + c0)));
                wd_tr16(r);
                for (size_t i = 0; i < 16; i++)
                    _mm256_storeu_si256((__m256i *)(void *)(Vt + xi * vp + (c0 + i) * WD_T + t0),
                                        _mm512_cvtepi32_epi16(r[i]));
            }
}

/* dP[xi][t / 2][co] = (bf16 dM[xi][t][co], bf16 dM[xi][t + 1][co]) of the chunk's tiles,
 * dM = A dy A^T of each tile's 2x2 dout (fp32); tiles past nt (up to even) are zero. fp32
 * (p->f32): dM[xi][t][co] as floats at dP, for t < nt only. */
V512_TARGET static void wd_dout(const wd_ctx *d, size_t k0, size_t nt, void *dP)
{
    const amx_plan *p = d->c.p;
    const wv_plan *v = &d->v;
    const size_t Co = (size_t)p->Co, Wo = (size_t)p->Wo, dp = wd_dp(p->f32, Co);
    /* element 2i: tile t's co i (element i of cvtne2ps_pbh's result), 2i + 1: tile t + 1's */
    const __m512i lo = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                        8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (size_t t = 0; t < nt; t += 2)
        for (size_t co = 0; co < Co; co += 16) {
            __m512 m[2][16];
            for (int h = 0; h < 2; h++) {
                if (t + (size_t)h >= nt) {
                    for (int xi = 0; xi < 16; xi++)
                        m[h][xi] = _mm512_setzero_ps();
                    continue;
                }
                size_t k = k0 + t + (size_t)h, n = k / v->ti, tt = k % v->ti;
                size_t oy = 2 * (tt / (size_t)v->tw), ox = 2 * (tt % (size_t)v->tw);
                const float *y0 = d->dout + ((n * (size_t)p->Ho + oy) * Wo + ox) * Co + co;
                /* a last row or column of an odd Ho or Wo: no output there, dout 0 */
                __mmask16 r1 = oy + 1 < (size_t)p->Ho ? 0xffff : 0, c1 = ox + 1 < Wo ? 0xffff : 0;
                const float *y1 = r1 ? y0 + Wo * Co : y0;
                __m512 y[2][2] = {
                    {_mm512_loadu_ps(y0), _mm512_maskz_loadu_ps(c1, y0 + (c1 ? Co : 0))},
                    {_mm512_maskz_loadu_ps(r1, y1),
                     _mm512_maskz_loadu_ps(r1 & c1, y1 + (c1 ? Co : 0))}};
                __m512 r[4][2]; /* r = A y: (y0, y0 + y1, y0 - y1, -y1) per column */
                for (int b = 0; b < 2; b++) {
                    r[0][b] = y[0][b];
                    r[1][b] = _mm512_add_ps(y[0][b], y[1][b]);
                    r[2][b] = _mm512_sub_ps(y[0][b], y[1][b]);
                    r[3][b] = _mm512_sub_ps(_mm512_setzero_ps(), y[1][b]);
                }
                for (int i = 0; i < 4; i++) { /* dM = r A^T */
                    m[h][4 * i + 0] = r[i][0];
                    m[h][4 * i + 1] = _mm512_add_ps(r[i][0], r[i][1]);
                    m[h][4 * i + 2] = _mm512_sub_ps(r[i][0], r[i][1]);
                    m[h][4 * i + 3] = _mm512_sub_ps(_mm512_setzero_ps(), r[i][1]);
                }
            }
            if (p->f32) { /* dM[xi][t][co] as floats */
                for (int h = 0; h < 2 && t + (size_t)h < nt; h++)
                    for (int xi = 0; xi < 16; xi++)
                        _mm512_storeu_ps((float *)dP + (size_t)xi * dp + (t + h) * Co + co,
                                         m[h][xi]);
                continue;
            }
            for (int xi = 0; xi < 16; xi++) { /* interleave the two tiles' bf16 */
                __m512i b = (__m512i)_mm512_cvtne2ps_pbh(m[1][xi], m[0][xi]);
                _mm512_storeu_si512((uint32_t *)dP + (size_t)xi * dp + t / 2 * Co + co,
                                    _mm512_permutexvar_epi16(lo, b));
            }
        }
}

/* part[ci][co] (+)= sum over npair pairs of Vt[ci][2r, 2r+1] . dP[r][co], blocks of 8 ci x
 * CB vectors of 16 co; first: store instead of add. fp32 (f32): part[ci][co] (+)= sum over
 * the n tiles t of V[t][ci] dM[t][co] (V as wv_in leaves it: no transpose, fc_block's
 * broadcast reads it down a column; dM as floats) */
V512_TARGET static inline __attribute__((always_inline)) void
wd_gemm(const int CB, int f32, const void *Vt, const void *dP, size_t Ci, size_t Co, int n,
        float *part, int first)
{
    static const __mmask16 all[2] = {0xffff, 0xffff};
    for (size_t ci = 0; ci < Ci; ci += 8)
        for (size_t co = 0; co < Co; co += 16 * (size_t)CB) {
            float *o = part + ci * Co + co;
            if (f32)
                fc_block(CB, (const float *)Vt + ci, 1, Ci, (const float *)dP + co, Co, n, o, Co,
                         all, !first);
            else
                bc_block(CB, (const uint16_t *)Vt + ci * WD_T, WD_T, (const uint32_t *)dP + co, Co,
                         n, o, Co, all, !first);
        }
}

V512_TARGET static __attribute__((noinline)) void wd_gemm1(int f32, const void *Vt, const void *dP,
                                                           size_t Ci, size_t Co, int n, float *part,
                                                           int first)
{
    wd_gemm(1, f32, Vt, dP, Ci, Co, n, part, first);
}

V512_TARGET static __attribute__((noinline)) void wd_gemm2(int f32, const void *Vt, const void *dP,
                                                           size_t Ci, size_t Co, int n, float *part,
                                                           int first)
{
    wd_gemm(2, f32, Vt, dP, Ci, Co, n, part, first);
}

/* task item: group gi of WD_GROUPS: tiles [N ti gi / 4, N ti (gi + 1) / 4) into part gi */
V512_TARGET static void wd_body(void *vc, size_t b, size_t e)
{
    const wd_ctx *d = vc;
    const amx_plan *p = d->c.p;
    const size_t Ci = (size_t)p->Ci, Co = (size_t)p->Co, nall = (size_t)p->s->N * d->v.ti;
    const size_t vp = wd_vp(p->f32, Ci), dp = wd_dp(p->f32, Co);
    for (size_t gi = b; gi < e; gi++) {
        float *part = d->part + gi * 16 * Ci * Co;
        size_t ka = nall * gi / WD_GROUPS, kb = nall * (gi + 1) / WD_GROUPS;
        if (ka == kb) {
            memset(part, 0, 16 * Ci * Co * sizeof(float));
            continue;
        }
        if (p->f32) { /* V and dM as floats; no rows past nt are read */
            float *V = d->tw + gi * d->twf, *dM = V + 16 * vp;
            for (size_t k0 = ka; k0 < kb; k0 += WD_TF) {
                size_t nt = kb - k0 < WD_TF ? kb - k0 : WD_TF;
                wv_in(&d->c, &d->v, k0, nt, V, vp);
                wd_dout(d, k0, nt, dM);
                for (int xi = 0; xi < 16; xi++)
                    (Co % 32 ? wd_gemm1 : wd_gemm2)(1, V + (size_t)xi * vp, dM + (size_t)xi * dp,
                                                    Ci, Co, (int)nt, part + (size_t)xi * Ci * Co,
                                                    k0 == ka);
            }
            continue;
        }
        uint16_t *V = (uint16_t *)(void *)(d->tw + gi * d->twf);
        uint16_t *Vt = V + 16 * vp;
        uint32_t *dP = (uint32_t *)(void *)(Vt + 16 * vp);
        memset(V, 0, 16 * vp * sizeof(uint16_t)); /* tiles past a short chunk */
        for (size_t k0 = ka; k0 < kb; k0 += WD_T) {
            size_t nt = kb - k0 < WD_T ? kb - k0 : WD_T, nt16 = (nt + 15) / 16 * 16;
            wv_in(&d->c, &d->v, k0, nt, V, vp);
            for (size_t t = nt; t < nt16; t++) /* zero V past nt: its dM is 0, V must be finite */
                for (int xi = 0; xi < 16; xi++)
                    memset(V + (size_t)xi * vp + t * Ci, 0, Ci * sizeof(uint16_t));
            wd_transpose(V, Vt, Ci, nt16);
            wd_dout(d, k0, nt, dP);
            int np2 = (int)((nt + 1) / 2);
            for (int xi = 0; xi < 16; xi++)
                (Co % 32 ? wd_gemm1 : wd_gemm2)(0, Vt + (size_t)xi * vp, dP + (size_t)xi * dp, Ci,
                                                Co, np2, part + (size_t)xi * Ci * Co, k0 == ka);
        }
    }
}

/* task item: 16 output channels from 16 cb: dw[co][ky][kx][ci] += (G^T dU G)[ky][kx] of the
 * partials' sum ((P0 + P1) + P2) + P3, 16 ci at a time: the partials' [ci][co] blocks
 * summed and transposed in registers (wd_tr16), then the transform along ci */
V512_TARGET static void wd_fin_body(void *vc, size_t b, size_t e)
{
    const wd_ctx *d = vc;
    const amx_plan *p = d->c.p;
    const size_t Ci = (size_t)p->Ci, Co = (size_t)p->Co, ps = 16 * Ci * Co;
    const __m512 h = _mm512_set1_ps(0.5f);
    __m512 U[16][16]; /* [xi][co in the block]: 16 ci */
    for (size_t cb = b; cb < e; cb++)
        for (size_t c0 = 0; c0 < Ci; c0 += 16) {
            for (size_t xi = 0; xi < 16; xi++) {
                __m512i r[16];
                for (size_t i = 0; i < 16; i++) {
                    const float *q = d->part + (xi * Ci + c0 + i) * Co + 16 * cb;
                    __m512 a = _mm512_loadu_ps(q);
                    for (size_t g = 1; g < WD_GROUPS; g++)
                        a = _mm512_add_ps(a, _mm512_loadu_ps(q + g * ps));
                    r[i] = _mm512_castps_si512(a);
                }
                wd_tr16(r);
                for (int j = 0; j < 16; j++)
                    U[xi][j] = _mm512_castsi512_ps(r[j]);
            }
            for (size_t j = 0; j < 16; j++) {
                __m512 t[3][4];
                for (int k = 0; k < 4; k++) { /* t = G^T u (rows of u: xi / 4) */
                    __m512 u0 = U[k][j], u1 = U[4 + k][j], u2 = U[8 + k][j], u3 = U[12 + k][j];
                    __m512 s12 = _mm512_mul_ps(h, _mm512_add_ps(u1, u2));
                    t[0][k] = _mm512_add_ps(u0, s12);
                    t[1][k] = _mm512_mul_ps(h, _mm512_sub_ps(u1, u2));
                    t[2][k] = _mm512_add_ps(s12, u3);
                }
                size_t co = 16 * cb + j;
                for (int i = 0; i < 3; i++) { /* dw = t G */
                    float *o = d->dw + ((co * 3 + (size_t)i) * 3) * Ci + c0;
                    __m512 s12 = _mm512_mul_ps(h, _mm512_add_ps(t[i][1], t[i][2]));
                    __m512 v[3] = {_mm512_add_ps(t[i][0], s12),
                                   _mm512_mul_ps(h, _mm512_sub_ps(t[i][1], t[i][2])),
                                   _mm512_add_ps(s12, t[i][3])};
                    for (int k = 0; k < 3; k++)
                        _mm512_storeu_ps(o + (size_t)k * Ci,
                                         _mm512_add_ps(_mm512_loadu_ps(o + (size_t)k * Ci), v[k]));
                }
            }
        }
}

/* algo 6: wherever it applies; 5: never; default: see below */
int nn_wv_dw_pick(const eqm_conv2d_shape *s)
{
    if (s->C_in < 16)
        return 0;
    amx_plan p;
    plan(s, 0, &p);
    /* wv_pick's choice (algo 6, algo 5, the default's 256 tiles a call), and by default
     * C_in from 32. Measured (conv-layers --bf16
     * 1 --in-bf16 1, 1 core, CPU ms, Winograd / the implicit dW): batch 768, full width,
     * two rounds: 32x32 64->64 199-217 / 306-309, 16x16 128->128 172-175 / 304-325, 8x8
     * 256->256 169-173 / 370, 4x4 512->512 165-175 / 498-516; batch 384 width 1/4: 32x32
     * 16->16 14.4-14.7 / 11.2-12.3 (so not from C_in 16), 16x16 32->32 9.9 / 11.0, 8x8
     * 64->64 7.6-8.2 / 11.2-13.0, 4x4 128->128 6.6-9.8 / 10.2-13.7; 4x4 512->512 at batch
     * 16 (64 tiles) 19.3-23.0 / 15.6-17.8, at batch 64 25.0-25.8 / 43.4-44.9 */
    return wv_pick(&p) && (nn_conv2d_algo() == 6 || p.Ci >= 32);
}

/* fp32: the forward (and a stride-1 dX as the forward of dout) by the Winograd above, with
 * FMA on floats: where wv_pick says (algo 6: wherever it applies; default: 256 tiles a
 * call) */
int nn_wvf_pick(const eqm_conv2d_shape *s)
{
    if (s->flags & EQM_NN_BF16)
        return 0;
    amx_plan p;
    plan(s, 0, &p);
    return wv_pick(&p);
}

size_t nn_wv_dw_ws_floats(const eqm_conv2d_shape *s)
{
    amx_plan p;
    plan(s, 0, &p);
    return wd_ws_floats(&p);
}

void nn_wv_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout, const float *in,
              float *buf)
{
    amx_plan p;
    plan(s, 0, &p);
    wd_ctx d = {.dout = dout, .dw = dw};
    d.c.p = &p, d.c.in = in, d.c.ib = !!(s->flags & EQM_NN_IN_BF16);
    wv_make(&p, &d.v);
    d.part = buf;
    d.tw = buf + WD_GROUPS * 16 * (size_t)p.Ci * (size_t)p.Co;
    d.twf = wd_twf(&p);
    nn_parallel(h, WD_GROUPS, 1, wd_body, &d);
    nn_parallel(h, (size_t)p.Co / 16, 1, wd_fin_body, &d);
}

static size_t dxp_ws(const eqm_conv2d_shape *s)
{
    dxp_plan p;
    dxp_make(s, &p);
    return dxp_ws_floats(&p);
}

void nn_amx_conv_dx(eqm_host *h, const eqm_conv2d_shape *s, float *din, const float *dout,
                    const float *w, int accumulate, float *buf)
{
    if (nn_bf16_native() == 1) {
        dxp_run(h, s, din, dout, w, accumulate, buf);
        return;
    }
    amx_plan p;
    plan(s, 1, &p);
    run(h, &p, din, dout, w, accumulate, buf, NULL, s); /* w flipped while packed */
}

static void run(eqm_host *h, const amx_plan *pp, float *out, const float *in, const float *w,
                int accumulate, float *buf, double *gs, const eqm_conv2d_shape *fs)
{
    amx_plan p = *pp;
    amx_ctx c = {.p = &p, .in = in, .w = w, .out = out, .accumulate = accumulate, .gs = gs,
                 .fs = fs};
    c.ib = !p.dx && (p.s->flags & EQM_NN_IN_BF16); /* a dX reads dout: float */
    c.ob = !p.dx && (p.s->flags & EQM_NN_OUT_BF16); /* and writes din: float */
    if (wv_pick(&p)) {
        wv_run(h, &c, buf);
        return;
    }
    c.bp = (uint32_t *)(void *)buf;
    c.xp = (uint16_t *)(void *)(buf + (bp_uint32(&p) + 15) / 16 * 16);
    nn_parallel(h, (size_t)p.np, 1, pack_w_body, &c);
    nn_parallel(h, p.G, 1, nn_bf16_native() == 2 ? fwd_body : v512_fwd_body, &c);
}
