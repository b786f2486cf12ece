/* host/nn/conv2d.c: torch.nn.functional.conv2d (no bias, groups 1, dilation 1) on NHWC
 * activations and OHWI weights, forward and backward.
 *
 * Why NHWC: a pixel's C channels are contiguous, so im2col copies whole runs of C_in
 * floats per kernel tap (memcpy, or a memset for a padding tap) instead of gathering one
 * float at a time, a 1x1 stride-1 convolution needs no im2col at all (the activation IS the
 * (N*H*W, C_in) matrix), and batch norm, ReLU, residual adds and linear layers see the same
 * (rows, C) matrix without transposes. PyTorch/oneDNN is fastest in channels_last for the
 * same reasons.
 *
 * Legend: N images, H x W input, Ho x Wo output, Ci = C_in, Co = C_out, K = kh*kw*Ci;
 * rows M = N*Ho*Wo. With cols (M, K) the im2col matrix (row = output pixel, columns in
 * (ki, kj, ci) order = the OHWI weight's inner order):
 *   forward  out (M, Co)  = cols @ w^T                 (w viewed as (Co, K))
 *   dW       dw (Co, K)  += dout^T @ cols
 *   dX       dcols (M, K) = dout @ w, then col2im adds each tap back into din.
 * Work is tiled by whole images: a tile's cols is about 1 MiB (so im2col's output is still
 * in cache when sgemm reads it: +25-35% on the 32x32 layers against 16 MiB tiles) but at
 * least 512 GEMM rows (small-M sgemm runs far below peak). col2im is a gather, one input
 * row per task, so even a one-image tile splits across threads without write conflicts.
 * Fast path (default): 3x3 stride-1 convs with >= 16 channels and >= 512 tiles run as
 * Winograd F(2x2, 3x3) (winograd.c), forward, dW, and dX as the Winograd forward of dout
 * with the flipped, transposed kernel (a stride-1 dX is a convolution of dout): 1.4-1.9x
 * faster per layer (bench/README.md). Direct path (default where direct_pick says, CPUs
 * with AVX-512F): the forward, and a stride-1 dX as the forward of dout, run as a direct
 * NHWC kernel (direct.c) on the strided and 3->C convs and on 3x3 stride-1 convs up to
 * C_in = 64 (at narrow widths Winograd and im2col are bound by their extra passes over
 * memory: 16->16 at 32x32, batch 384, 1 core: 18 ms against Winograd's 42); dW runs as
 * a direct kernel too where C_in, C_out <= 64 (direct_dw_pick). With C_in <= 4 (the
 * stems) the direct kernels are small-C_in variants on a padded copy of the input, which
 * also run in bf16 (they round their operands): the bf16 stem takes them too. Everything
 * else takes the im2col path above.
 * Algorithms (nn_conv2d_set_algo / EQM_CONV_ALGO, see nn_internal.h) force a path for the
 * tests and benchmarks: 1 im2col only, 2 no Winograd but stride-1 dX as a forward conv,
 * 3 Winograd wherever it applies.
 * Workspace: one host-owned buffer (static, process-wide) grows with posix_memalign the
 * first time a shape needs more and is never shrunk or reallocated afterwards, so after the
 * first training step no call allocates. Not thread-safe: ops run on the training thread.
 * GEMMs go through nn_sgemm (single-threaded BLAS calls on the host threads, linear.c);
 * im2col/col2im use parallel_for.
 * EQM_NN_BF16 (s->flags, or the host's precision nn_precision()): every GEMM of the op (im2col's,
 * the 1x1 ones, Winograd's 16) multiplies bf16-rounded operands with fp32 accumulation
 * (gemm_bf16.c); im2col, col2im, the Winograd transforms and all sums outside the GEMMs stay fp32.
 * With a native bf16 kernel the im2col path runs whole tiles per task and packs im2col rows
 * straight into bf16 (see "bf16 with a native kernel" below), and a stride-1 dX runs as the forward
 * conv of dout. On AMX and on vdpbf16ps, the dW of a stride-1 conv with C_in % 16 == 0 runs as an
 * implicit GEMM over the padded images where amx_dw_pick says (amx_dw.c: no im2col rows,
 * no per-tile packing; on vdpbf16ps strided convs too, per phase of the stride).
 * Implicit path (bf16 with a native kernel, C_in >= 16): the forward and the stride-1 dX
 * as a forward of dout run as an implicit GEMM on a padded bf16 copy of each image
 * (amx_conv.c: AMX tiles, or on AVX512_BF16 without AMX a vdpbf16ps kernel whose rows are
 * the output pixels), the dW as an implicit GEMM too (amx_dw.c, where amx_dw_pick says):
 * no im2col. On AMX strided convs take the implicit forward and dX (a transposed conv)
 * only where amx_pick / amx_dx_pick say (copy-bound shapes); on vdpbf16ps every forward
 * (pointwise included) and every strided dX (one stride-1 conv per phase). Else the
 * im2col tiles. On vdpbf16ps the 3x3 stride-1 forwards and stride-1 dX that reach
 * amx_conv.c run there as Winograd F(2x2, 3x3) with bf16 products where its wv_pick says
 * (256 tiles a call or more), and their dW too where nn_wv_dw_pick says (also C_in >= 32):
 * the implicit kernel runs near the vdpbf16ps peak, so fewer products are the gain left.
 * fp32 on a CPU with AVX512_BF16 (nn_wvf_pick): the same Winograd with float operands and
 * FMA takes the 3x3 stride-1 forwards and stride-1 dX with C_in and C_out multiples of 16
 * before every path above (256 tiles a call or more; the dW where nn_wv_dw_pick says:
 * also C_in >= 32): 1.4-1.7x faster than the direct kernels on those layers.
 * EQM_NN_SET_DIN (ABI 1.5, backward only): din is written, not added into; each dX path
 * above honours it (GEMM beta 0, the forward conv of dout without accumulate, col2im zeroing
 * each din row just before it gathers into it), so the caller's memset of din and the
 * read-back of those zeros go. dw still accumulates.
 * EQM_NN_IN_BF16 (ABI 1.6; forward, forward_stats, and backward's dW): `in` holds bf16
 * values (the activations a ResNet keeps for backward under precision = bf16), at either
 * precision. Read as they are by the implicit AMX forward (its padded image copy copies
 * them instead of converting, amx_conv.c) and dW (widened in registers, amx_dw.c), by the
 * small-C_in direct kernels (their padded copy widens them) and by im2col (im2col_row
 * widens each run: fp32 tiles and bf16 tiles); a pointwise conv with bf16 input runs
 * im2col with K = C_in (bf16 tiles on a native kernel) instead of the GEMM on `in`.
 * Winograd and the general direct kernels read float `in`: their picks skip such a conv
 * (im2col instead). No dX path reads `in`, and the dX-as-forward shape drops the flag
 * (its input is dout). Each of these paths gives the bits it gives on the widened floats
 * (check_bf16's test_conv_in_bf16). Measured (conv-layers --width 4 --batch 384, 1 core,
 * CPU ms, float -> bf16 input, the 9 layers summed): --bf16 1 (AMX) fwd 26.3 -> 23.1, dW
 * 37.7 -> 33.8 (32x32 16->16: 5.2 -> 4.6, 7.8 -> 6.5); fp32, where im2col replaces the
 * direct and Winograd kernels: fwd 68.7 -> 110.4, dW 76.9 -> 107.3 (16->16: 14.7 -> 31.7).
 * So conv2d_forward at fp32 products (the evaluation of a bf16-stored model) widens the
 * input a chunk of images at a time into a second workspace and keeps the direct,
 * Winograd and pointwise kernels (fwd_chunks; forward_stats the same, its sums per
 * chunk); the dW at fp32 with bf16 input (nothing in training: bf16 storage comes with bf16
 * products) keeps im2col.
 * EQM_NN_OUT_BF16 (ABI 1.6; forward and forward_stats, either precision, with or without
 * EQM_NN_IN_BF16): `out` receives eqm_bf16 values, bf16(the float output) to nearest even
 * (nn_bf16_rne: subnormal -> signed zero, NaN quietened), and forward_stats' sums are those
 * of the floats before rounding: a ResNet's conv writes its output for BN at 2 bytes an
 * element instead of 4 (and BN reads 2). Native (the bf16 stored straight from the
 * registers, the sums and the floats those of the call without the flag): the implicit AMX
 * forward (amx_conv.c, vcvtneps2bf16 in its epilogue) and the direct kernels, general and
 * small-C_in (direct.c, the rounding in AVX-512F integer ops), i.e. under bf16 on AMX the
 * 3x3 stride-1 convs with C_in >= 16, the strided ones amx_pick takes and the stems.
 * Every other path (im2col, the bf16 tiles, Winograd, a pointwise GEMM) runs in chunks of
 * images (fwd_chunks, the chunking of the bf16-input widening above): each chunk's float
 * output goes to the second workspace (about 1 MiB a chunk, or the widening's chunk) and is
 * narrowed from there; forward_stats sums per chunk. So where a float-input call takes
 * more than one chunk, its sums may differ from the plain call's in the last bits (the
 * summation order), and on the fp32 sgemm-based paths (Winograd, a pointwise GEMM) so may
 * a few outputs (OpenBLAS's Haswell kernels sum a row in an order that depends on its
 * place in the GEMM: 1-2 in 10^4 bf16 outputs one unit apart); im2col, the bf16 tiles and
 * the bf16 GEMMs give every pixel the same floats in any chunk (check_bf16's
 * test_conv_out_bf16_chunks). conv2d_backward ignores the bit (din and dw are floats; the
 * dX-as-forward shape drops it). Measured (conv-layers --bf16 1 --in-bf16 1 --width 4
 * --batch 384 --threads 1 --cpu 1 --reps 3, AMX, fwd CPU ms, two runs each, without ->
 * with --out-bf16 1; the machine loaded ~3): AMX layers 16->16 4.8/4.7 -> 4.4/4.2, 16->32
 * s2 2.7/2.6 -> 2.4/2.4, 32->32 1.9/1.8 -> 1.6/1.6, 1x1 s2 2.4/2.4 -> 1.8/1.8, 64->64 and
 * 128->128 unchanged (1.6-1.7, 2.2); the stem (small direct, integer rounding) 4.5 -> 4.7;
 * the two bf16-tile layers (fallback) 32->64 s2 2.2/2.3 -> 2.6/2.5, 64->128 s2 1.2 ->
 * 1.5/1.4; the 9 layers 23.5/23.3 -> 22.8/22.4 (BN's side, reading 2 bytes instead of 4,
 * not included).
 * Left out: bias, groups, dilation, non-square strides/paddings.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "nn/nn_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define TILE_FLOATS_DEFAULT (1u << 18) /* target floats of one im2col tile (1 MiB) */
static size_t tile_floats_v;
#define TILE_MIN_ROWS 512

/* Tile target; EQM_CONV_TILE_KIB overrides it (benchmarks). */
static size_t tile_floats(void)
{
    if (!tile_floats_v) {
        const char *e = getenv("EQM_CONV_TILE_KIB");
        long k = e ? atol(e) : 0;
        tile_floats_v = k > 0 ? (size_t)k * 256 : TILE_FLOATS_DEFAULT;
    }
    return tile_floats_v;
}

static float *ws;
static size_t ws_floats;
static int conv_algo;

size_t nn_conv2d_workspace_bytes(void) { return ws_floats * sizeof(float); }
void nn_conv2d_set_algo(int algo) { conv_algo = algo; }

int nn_conv2d_algo(void) { return conv_algo; }

/* EQM_CONV_ALGO (benchmarks) sets the default algorithm once. */
static void algo_from_env(void)
{
    static int done;
    if (!done) {
        const char *e = getenv("EQM_CONV_ALGO");
        if (e && conv_algo == 0)
            conv_algo = atoi(e);
        done = 1;
    }
}

static float *ws_get(eqm_host *h, size_t floats)
{
    if (floats == 0)
        floats = 1;
    if (floats <= ws_floats)
        return ws;
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, floats * sizeof(float))) {
        host_api()->set_error(h, EQM_ERR_NOMEM, "nn.conv2d: workspace of %zu bytes: out of memory",
                              floats * sizeof(float));
        return NULL;
    }
    free(ws);
    ws = p;
    ws_floats = floats;
    return ws;
}

typedef struct {
    const eqm_conv2d_shape *s;
    int Ho, Wo, K;
    size_t n0; /* first image of the tile */
    float *cols;
    const float *in;
    float *din;
    const float *dcols;
    int set; /* EQM_NN_SET_DIN: col2im zeroes each din row before it sums into it */
} conv_ctx;

static int conv_check(eqm_host *h, const char *op, const eqm_conv2d_shape *s, int *Ho, int *Wo)
{
    if (!s || s->N <= 0 || s->H <= 0 || s->W <= 0 || s->C_in <= 0 || s->C_out <= 0 ||
        s->kh <= 0 || s->kw <= 0 || s->stride <= 0 || s->pad < 0)
        return nn_inval(h, op,
                        "bad shape N=%d H=%d W=%d C_in=%d C_out=%d k=%dx%d stride=%d pad=%d "
                        "(sizes, kernel and stride must be > 0, pad >= 0)",
                        s ? s->N : 0, s ? s->H : 0, s ? s->W : 0, s ? s->C_in : 0,
                        s ? s->C_out : 0, s ? s->kh : 0, s ? s->kw : 0, s ? s->stride : 0,
                        s ? s->pad : 0);
    if (s->H + 2 * s->pad < s->kh || s->W + 2 * s->pad < s->kw)
        return nn_inval(h, op, "kernel %dx%d larger than padded input %dx%d", s->kh, s->kw,
                        s->H + 2 * s->pad, s->W + 2 * s->pad);
    *Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    *Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    return EQM_OK;
}

/* EQM_NN_IN_BF16 (ABI 1.6): `in` holds eqm_bf16 values (see the header comment). */
static int in_bf16(const eqm_conv2d_shape *s) { return (s->flags & EQM_NN_IN_BF16) != 0; }

/* dst[0..n) = the floats of the bf16 values src[0..n) (exact); AVX-512F where the CPU has
 * it (the scalar loop is not vectorised at -O2: it made the bf16-tile layers 1.3-1.8x
 * slower than on float input) */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void widen_avx512(float *dst, const uint16_t *src,
                                                              size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_si512((void *)(dst + i),
                            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                                  (const __m256i *)(const void *)(src + i))),
                                              16));
    for (; i < n; i++)
        dst[i] = nn_bf16_wide(src[i]);
}
#endif
static void widen_row(float *dst, const uint16_t *src, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nn_direct_available()) {
        widen_avx512(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = nn_bf16_wide(src[i]);
}

/* im2col of row r of the tile (image n0 + r / (Ho*Wo), pixel r % (Ho*Wo)) into dst (K).
 * The only place the im2col paths (fp32 and bf16 tiles) read `in`: with EQM_NN_IN_BF16 it
 * widens the bf16 runs, so every later step sees the floats a float `in` would hold. */
static void im2col_row(const conv_ctx *c, size_t r, float *dst)
{
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, HoWo = (size_t)c->Ho * c->Wo;
    const int ib = in_bf16(s);
    size_t n = c->n0 + r / HoWo, p = r % HoWo;
    int oh = (int)(p / (size_t)c->Wo), ow = (int)(p % (size_t)c->Wo);
    for (int ki = 0; ki < s->kh; ki++) {
        int ih = oh * s->stride - s->pad + ki;
        if (ih < 0 || ih >= s->H) {
            memset(dst, 0, sizeof(float) * Ci * (size_t)s->kw);
            dst += Ci * (size_t)s->kw;
            continue;
        }
        for (int kj = 0; kj < s->kw; kj++, dst += Ci) {
            int iw = ow * s->stride - s->pad + kj;
            if (iw < 0 || iw >= s->W)
                memset(dst, 0, sizeof(float) * Ci);
            else if (ib)
                widen_row(dst,
                          (const uint16_t *)(const void *)c->in + ((n * s->H + ih) * s->W + iw) * Ci,
                          Ci);
            else
                memcpy(dst, c->in + ((n * s->H + ih) * s->W + iw) * Ci, sizeof(float) * Ci);
        }
    }
}

/* im2col of rows [b, e) of the tile into c->cols. */
static void im2col_body(void *vc, size_t b, size_t e)
{
    conv_ctx *c = vc;
    for (size_t r = b; r < e; r++)
        im2col_row(c, r, c->cols + r * (size_t)c->K);
}

/* col2im as a gather: task item = one input row (image t of the tile, row ih); every
 * input pixel sums the dcols entries of the taps that read it, so tasks never write the
 * same din and a one-image tile still splits across threads. With EQM_NN_SET_DIN (c->set)
 * the task zeroes its row first (in cache, just before the sums: the caller's memset of
 * all of din goes), so din = the same sums as += into a zeroed din. */
NN_HOT static void col2im_body(void *vc, size_t b, size_t e)
{
    conv_ctx *c = vc;
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, HoWo = (size_t)c->Ho * c->Wo, K = (size_t)c->K;
    for (size_t item = b; item < e; item++) {
        size_t t = item / (size_t)s->H;
        int ih = (int)(item % (size_t)s->H);
        float *drow = c->din + ((c->n0 + t) * s->H + ih) * (size_t)s->W * Ci;
        const float *dc = c->dcols + t * HoWo * K;
        if (c->set)
            memset(drow, 0, sizeof(float) * (size_t)s->W * Ci);
        for (int ki = 0; ki < s->kh; ki++) {
            int y = ih + s->pad - ki;
            if (y < 0 || y % s->stride)
                continue;
            int oh = y / s->stride;
            if (oh >= c->Ho)
                continue;
            for (int iw = 0; iw < s->W; iw++) {
                float *dst = drow + (size_t)iw * Ci;
                for (int kj = 0; kj < s->kw; kj++) {
                    int x = iw + s->pad - kj;
                    if (x < 0 || x % s->stride)
                        continue;
                    int ow = x / s->stride;
                    if (ow >= c->Wo)
                        continue;
                    const float *src =
                        dc + ((size_t)oh * c->Wo + ow) * K + ((size_t)ki * s->kw + kj) * Ci;
                    for (size_t ci = 0; ci < Ci; ci++)
                        dst[ci] += src[ci];
                }
            }
        }
    }
}

static int is_pointwise(const eqm_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

/* Images per tile so that one tile's cols is about TILE_FLOATS. */
static size_t tile_images(const eqm_conv2d_shape *s, size_t rows_per_img, size_t K)
{
    size_t per = rows_per_img * K;
    size_t t = per ? tile_floats() / per : 1;
    /* but at least TILE_MIN_ROWS GEMM rows: small-M sgemm calls run far below peak */
    size_t tmin = (TILE_MIN_ROWS + rows_per_img - 1) / rows_per_img;
    if (t < tmin)
        t = tmin;
    if (t < 1)
        t = 1;
    if (t > (size_t)s->N)
        t = (size_t)s->N;
    return t;
}

/* ---------------------------------------------- bf16 with a native kernel: tiles ---- */

/* With bf16 products on a native kernel (AMX or vdpbf16ps) the im2col path runs whole tiles
 * per task: one parallel_for per call over groups of tiles, each group running its tiles
 * on its own thread and its own slice of the workspace. The shared-tile path synchronised
 * the threads 4-6 times per tile (im2col, the GEMM's passes, col2im), and at the quickstart
 * widths a tile is one image (1024 rows x 144): about 10^4 hand-offs per step, so 2
 * threads ran slower than 1 (98 against 120 img/s, idle).
 * No fp32 im2col matrix: im2col writes a few rows into a small buffer (cache-resident) that
 * is packed straight into the GEMM's bf16 layout (forward: rows of op(A); dW: k-pairs of
 * op(B)), and the weights are packed once per call (forward: w^T, dX: w) for all tiles.
 * The packed bits are what the GEMM's own packing makes of the same fp32 values.
 * dW: each group sums its tiles into its own (C_out, K) partial, then dw += partial 0 +
 * partial 1 + ... in group order. The groups of a dW are BF16_DW_GROUPS whole-tile runs
 * whatever the thread count, so the result does not depend on it (it is not the sum
 * order of the shared-tile path: the bf16 tests bound it by the reduction length). */
#define BF16_DW_GROUPS 4
#define BF16_ROWS 8 /* im2col rows per packing call (8 x K floats: L1 at K <= 1152) */

static int bf16_tiles(const eqm_conv2d_shape *s)
{
    /* a pointwise conv is a plain GEMM on `in`, unless `in` is bf16 (then im2col widens it) */
    return (s->flags & EQM_NN_BF16) && nn_bf16_native() > 0 && (!is_pointwise(s) || in_bf16(s));
}

typedef struct {
    const eqm_conv2d_shape *s;
    int Ho, Wo, K, G;
    size_t T, ntiles, slice; /* images per tile, tiles, floats per group slice */
    size_t o_bp, o_dcols, o_row; /* slice offsets (floats): packed op(B) / op(A), dcols, rows */
    nn_bf16_kdims kf, kx;     /* forward (reduction K), dX (reduction C_out) */
    const uint32_t *wp;       /* the packed weights (forward: w^T, dX: w) */
    const float *in, *w, *dout;
    float *out, *din, *dw, *buf;
    float beta;
    int nomem;
} bf16_conv_ctx;

static size_t floats_of(size_t bytes) { return (bytes + 63) / 64 * 16; }

/* tiles of group g: [g ntiles / G, (g + 1) ntiles / G) */
static void bf16_group_tiles(const bf16_conv_ctx *b, size_t g, size_t *t0, size_t *t1)
{
    *t0 = g * b->ntiles / (size_t)b->G;
    *t1 = (g + 1) * b->ntiles / (size_t)b->G;
}

static size_t bf16_tile_n(const bf16_conv_ctx *b, size_t t)
{
    size_t n0 = t * b->T;
    return (size_t)b->s->N - n0 < b->T ? (size_t)b->s->N - n0 : b->T;
}

static void bf16_fwd_body(void *vc, size_t gb, size_t ge)
{
    bf16_conv_ctx *b = vc;
    const eqm_conv2d_shape *s = b->s;
    const size_t HoWo = (size_t)b->Ho * b->Wo, K = (size_t)b->K;
    for (size_t g = gb; g < ge; g++) {
        float *sl = b->buf + g * b->slice, *rows = sl + b->o_row;
        uint16_t *ap = (uint16_t *)(void *)sl;
        conv_ctx c = {.s = s, .Ho = b->Ho, .Wo = b->Wo, .K = b->K, .in = b->in};
        size_t t0, t1;
        bf16_group_tiles(b, g, &t0, &t1);
        for (size_t t = t0; t < t1; t++) {
            size_t n0 = t * b->T, Mt = bf16_tile_n(b, t) * HoWo;
            c.n0 = n0;
            for (size_t r0 = 0; r0 < Mt; r0 += BF16_ROWS) {
                size_t r1 = Mt - r0 < BF16_ROWS ? Mt : r0 + BF16_ROWS;
                for (size_t r = r0; r < r1; r++)
                    im2col_row(&c, r, rows + (r - r0) * K);
                nn_bf16_pack_a_rows(&b->kf, (int)Mt, rows, (int)r0, (int)r1, ap);
            }
            nn_bf16_pack_a_rows(&b->kf, (int)Mt, NULL, (int)Mt, nn_bf16_rows(&b->kf, (int)Mt),
                                ap);
            if (!nn_gemm_bf16_packed(&b->kf, 0, (int)Mt, s->C_out, 1.f, NULL, 0, ap, b->wp,
                                     b->beta, b->out + n0 * HoWo * (size_t)s->C_out, s->C_out))
                b->nomem = 1;
        }
    }
}

static void bf16_bwd_body(void *vc, size_t gb, size_t ge)
{
    bf16_conv_ctx *b = vc;
    const eqm_conv2d_shape *s = b->s;
    const size_t HoWo = (size_t)b->Ho * b->Wo;
    const int Co = s->C_out, K = b->K;
    for (size_t g = gb; g < ge; g++) {
        float *sl = b->buf + g * b->slice, *part = b->dw ? sl : NULL;
        uint32_t *bp = (uint32_t *)(void *)(sl + b->o_bp);
        float *r0 = sl + b->o_row, *r1 = r0 + K;
        conv_ctx c = {.s = s, .Ho = b->Ho, .Wo = b->Wo, .K = K, .in = b->in, .din = b->din,
                      .dcols = sl + b->o_dcols, .set = (s->flags & EQM_NN_SET_DIN) != 0};
        size_t t0, t1;
        bf16_group_tiles(b, g, &t0, &t1);
        for (size_t t = t0; t < t1; t++) {
            size_t n0 = t * b->T, nt = bf16_tile_n(b, t);
            int Mt = (int)(nt * HoWo);
            const float *gr = b->dout + n0 * HoWo * Co;
            c.n0 = n0;
            if (part) { /* dw (Co, K) += dout^T (Co, Mt) @ cols (Mt, K): pairs of cols rows */
                nn_bf16_kdims kw;
                nn_bf16_kdims_of(Mt, &kw);
                for (int p = 0, np = nn_bf16_pairs(&kw); p < np; p++) {
                    int ra = 2 * p, rb = 2 * p + 1;
                    if (ra < Mt)
                        im2col_row(&c, (size_t)ra, r0);
                    if (rb < Mt)
                        im2col_row(&c, (size_t)rb, r1);
                    nn_bf16_pack_b_pair(&kw, K, ra < Mt ? r0 : NULL, rb < Mt ? r1 : NULL, p, bp);
                }
                if (!nn_gemm_bf16_packed(&kw, 1, Co, K, 1.f, gr, Co, NULL, bp,
                                         t == t0 ? 0.f : 1.f, part, K))
                    b->nomem = 1;
            }
            if (b->din) {
                if (!nn_gemm_bf16_packed(&b->kx, 0, Mt, K, 1.f, gr, Co, NULL, b->wp, 0.f,
                                         sl + b->o_dcols, K))
                    b->nomem = 1;
                col2im_body(&c, 0, nt * (size_t)s->H);
            }
        }
    }
}

typedef struct {
    float *dw;
    const float *buf;
    size_t slice;
    int G;
} dw_sum_ctx;

static void dw_sum_body(void *vc, size_t b, size_t e)
{
    const dw_sum_ctx *c = vc;
    for (int g = 0; g < c->G; g++) {
        const float *p = c->buf + (size_t)g * c->slice;
        for (size_t i = b; i < e; i++)
            c->dw[i] += p[i];
    }
}

/* Groups, slice layout and workspace (returned, floats: the packed weights, then G slices)
 * of a forward (dw_dx 0) or a backward (dw_dx: 1 dW, 2 dX, 3 both). */
static size_t bf16_plan(const eqm_conv2d_shape *s, int dw_dx, bf16_conv_ctx *b)
{
    b->s = s;
    b->Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    b->Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    b->K = s->kh * s->kw * s->C_in;
    const size_t HoWo = (size_t)b->Ho * b->Wo, K = (size_t)b->K, Co = (size_t)s->C_out;
    b->T = tile_images(s, HoWo, K);
    b->ntiles = ((size_t)s->N + b->T - 1) / b->T;
    size_t G = (dw_dx & 1) ? BF16_DW_GROUPS : 4 * (size_t)nn_threads();
    b->G = (int)(G < b->ntiles ? G : b->ntiles);
    const int Mmax = (int)(b->T * HoWo);
    size_t wfl;
    if (!dw_dx) {
        nn_bf16_kdims_of(b->K, &b->kf);
        wfl = floats_of(nn_bf16_b_bytes(&b->kf, (int)Co));
        b->o_row = floats_of(nn_bf16_a_bytes(&b->kf, Mmax));
        b->slice = b->o_row + floats_of(sizeof(float) * BF16_ROWS * K);
    } else {
        nn_bf16_kdims kw;
        nn_bf16_kdims_of(Mmax, &kw);
        nn_bf16_kdims_of(s->C_out, &b->kx);
        wfl = dw_dx & 2 ? floats_of(nn_bf16_b_bytes(&b->kx, (int)K)) : 0;
        b->o_bp = dw_dx & 1 ? floats_of(sizeof(float) * Co * K) : 0;
        b->o_dcols = b->o_bp + (dw_dx & 1 ? floats_of(nn_bf16_b_bytes(&kw, (int)K)) : 0);
        b->o_row = b->o_dcols + (dw_dx & 2 ? (size_t)Mmax * K : 0);
        b->slice = b->o_row + (dw_dx & 1 ? floats_of(sizeof(float) * 2 * K) : 0);
    }
    b->slice = (b->slice + 15) / 16 * 16;
    return wfl + (size_t)b->G * b->slice;
}

static int bf16_nomem(eqm_host *h, const char *op)
{
    host_api()->set_error(h, EQM_ERR_NOMEM, "nn.%s: bf16 packing buffers: out of memory", op);
    return EQM_ERR_NOMEM;
}

static int fwd_bf16(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                    const float *w, float beta, float *buf)
{
    bf16_conv_ctx b = {.in = in, .w = w, .out = out, .beta = beta};
    size_t all = bf16_plan(s, 0, &b);
    size_t wfl = all - (size_t)b.G * b.slice;
    nn_bf16_pack_b(&b.kf, 1, w, b.K, s->C_out, (uint32_t *)(void *)buf);
    b.wp = (const uint32_t *)(void *)buf;
    b.buf = buf + wfl;
    nn_parallel(h, (size_t)b.G, 1, bf16_fwd_body, &b);
    return b.nomem ? bf16_nomem(h, "conv2d_forward") : EQM_OK;
}

static int bwd_bf16(eqm_host *h, const eqm_conv2d_shape *s, float *din, float *dw,
                    const float *dout, const float *in, const float *w)
{
    bf16_conv_ctx b = {.in = in, .w = w, .dout = dout, .din = din, .dw = dw};
    size_t all = bf16_plan(s, (dw ? 1 : 0) | (din ? 2 : 0), &b);
    float *buf = ws_get(h, all);
    if (!buf)
        return EQM_ERR_NOMEM;
    size_t wfl = all - (size_t)b.G * b.slice;
    if (din) /* dcols (Mt, K) = dout (Mt, Co) @ w (Co, K) */
        nn_bf16_pack_b(&b.kx, 0, w, b.K, b.K, (uint32_t *)(void *)buf);
    b.wp = (const uint32_t *)(void *)buf;
    b.buf = buf + wfl;
    nn_parallel(h, (size_t)b.G, 1, bf16_bwd_body, &b);
    if (b.nomem)
        return bf16_nomem(h, "conv2d_backward");
    if (dw) {
        dw_sum_ctx d = {dw, b.buf, b.slice, b.G};
        nn_parallel(h, (size_t)s->C_out * b.K, 4096, dw_sum_body, &d);
    }
    return EQM_OK;
}

/* Winograd by default (not for bf16 on AMX, see below) for 3x3 stride-1 convs with >= 16
 * channels in and out and at least 512 output tiles per call: the weight transform (16 Ci Co per call) is then amortised
 * (measured: 4x4x512 at batch 64 = 256 tiles about breaks even, at batch 256 it is 1.7x
 * faster than im2col). */
static int wino_ok(const eqm_conv2d_shape *s)
{
    int Ho = s->H + 2 * s->pad - 2, Wo = s->W + 2 * s->pad - 2;
    size_t tiles = (size_t)s->N * (size_t)((Ho + 1) / 2) * (size_t)((Wo + 1) / 2);
    /* bf16 on AMX: im2col + the AMX GEMM beats Winograd (whose transforms stay fp32 and
     * whose GEMMs are short in k): 64->64 at 32x32, batch 64, 1 core: 26/33/28 ms against
     * 38/37/55 (fwd/dX/dW) */
    int amx = (s->flags & EQM_NN_BF16) && nn_bf16_native() == 2;
    int on = conv_algo == 3 || (conv_algo == 0 && tiles >= 512 && !amx);
    if (in_bf16(s)) /* its input transform reads float `in` */
        return 0;
    return on && s->kh == 3 && s->kw == 3 && s->stride == 1 && s->C_in >= 16 &&
           s->C_out >= 16 && s->C_in <= NN_WINO_MAX_C && s->C_out <= NN_WINO_MAX_C;
}

/* Direct kernel (direct.c): algo 4 wherever it applies; by default: see below. */
static int direct_pick(const eqm_conv2d_shape *s)
{
    /* with bf16 input only the small-C_in kernels (they read in through their padded copy) */
    if (is_pointwise(s) || (in_bf16(s) && !nn_direct_small_ok(s)) || !nn_direct_ok(s))
        return 0;
    if (conv_algo == 4)
        return 1;
    if (conv_algo != 0)
        return 0;
    /* default, measured per shape (bench/README.md, conv-layers at batch 384 width 1/4 and
     * batch 64 full width, 1 core): direct beats im2col on every strided or 3->C conv with
     * a kernel over 1x1, and Winograd on 3x3 stride-1 convs up to C_in = 64 (16->16 at
     * 32x32: 19 against 42 ms) and at 4x4 outputs; Winograd stays ahead from C_in = 128 at
     * 8x8 and 16x16 (16x16 128->128: 27.5 against 32.5 ms). 1x1 stride 2: up to C_in = 32. */
    if (s->kh == 1 && s->kw == 1) /* 1x1 s2 16->32: 4.4-4.7 against 5.1-6.9 ms; 64->128
                                   * at full width, batch 64: 5.0-5.3 against 3.9 */
        return s->C_in <= 32;
    if (s->stride == 1 && s->C_in > 64 && (size_t)s->H * (size_t)s->W > 16)
        return 0;
    return 1;
}

/* Direct dW (direct.c): algo 4 wherever it applies; by default: see below. */
static int direct_dw_pick(const eqm_conv2d_shape *s)
{
    if (is_pointwise(s) || (in_bf16(s) && !nn_direct_small_ok(s)) || !nn_direct_ok(s))
        return 0;
    if (conv_algo == 4)
        return 1;
    /* default, measured (conv-layers, batch 384, width 1/4, 1 core, CPU ms, direct with
     * groups of 8 rows against the default before): 3->16 9.7 / 20, 16->16 15.6 / 50
     * (Winograd), 16->32 s2 11.4 / 17.5, 32->32 14.4 / 30 (Winograd), 1x1 16->32 s2 3.1 /
     * 5.7, 32->64 s2 10.8 / 10.5-11, 64->64 15.4 / 17.5-19.7 (Winograd); from 128 output
     * channels it loses (64->128 s2 12.2 / 8, 4x4 128->128 23 / 12: the K x C_out partial
     * sums of a row group then outgrow L1) */
    return conv_algo == 0 && s->C_in <= 64 && s->C_out <= 64;
}

/* Implicit AMX forward (amx_conv.c): algo 5 wherever it applies (bf16 on AMX, C_in >= 16);
 * algo 0 at stride 1, and strided where at least half of the rows it computes are output
 * pixels (Wo >= 16) and C_in <= 32: it wins where the im2col copies, not the products,
 * bound the layer. Measured (conv-layers --bf16 1 --width 4, batch 384, 1 core, CPU ms,
 * against the im2col tiles): 32x32 16->32 3x3 s2 4.5-4.7 / 9.3, 1x1 s2 3.9-4.4 / 4.4-4.6;
 * 16x16 32->64 s2 (Wo 8) 2.4 / 2.2-2.3, 8x8 64->128 s2 (Wo 4) 3.6-3.7 / 1.2-1.3. Stride 1:
 * quickstart bf16 step, 1 core, see bench/README.md. */
static int amx_pick(const eqm_conv2d_shape *s)
{
    if (conv_algo == 5 || conv_algo == 6)
        return nn_amx_conv_ok(s);
    if (conv_algo != 0 || !nn_amx_conv_ok(s))
        return 0;
    /* vdpbf16ps (no AMX): its rows are the output pixels themselves (no dropped rows when
     * strided), and it runs every shape it takes at 150-200 GFLOP/s against the im2col
     * tiles' 60-160 and Winograd's 35-165 (conv-layers --bf16 1 --in-bf16 1 --width 4,
     * batch 384, 1 core, CPU ms, implicit / default before): 32x32 16->16 11.9 / 51.0,
     * 16->32 s2 6.0 / 14.5, 1x1 s2 2.3 / 4.1; 16x16 32->32 9.5 / 23.2, 32->64 s2 5.4 / 6.5;
     * 8x8 64->64 9.2 / 12.4, 64->128 s2 4.7 / 5.6; 4x4 128->128 8.9 / 10.8 */
    if (nn_bf16_native() == 1)
        return 1;
    int Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    return s->stride == 1 || (Wo >= 16 && s->C_in <= 32);
}

/* Winograd for a forward (and a stride-1 dX as one): not where the implicit vdpbf16ps
 * kernel takes it (amx_pick: faster on every shape measured); the dW keeps wino_ok. */
static int wino_fwd(const eqm_conv2d_shape *s)
{
    return wino_ok(s) && !(nn_bf16_native() == 1 && amx_pick(s));
}

/* The dX of a strided conv as an implicit AMX transposed conv (amx_conv.c): algo 5 wherever
 * it applies (bf16 on AMX, stride > 1, C_out >= 16, pad < kernel); algo 0 for kernels over
 * 1x1 with W >= 32 and C_out <= 32 (the AMX then multiplies (stride^2 - 1) / stride^2
 * zeros, which only a copy-bound layer affords). Measured as amx_pick: 32x32 16->32 3x3 s2
 * 7.9-8.0 / 9.4-9.6, 1x1 s2 6.1-6.3 / 4.9-5.0, 16x16 32->64 3.5-3.8 / 3.6-3.8, 8x8 64->128
 * 3.4-3.6 / 1.4-1.5. */
static int amx_dx_pick(const eqm_conv2d_shape *s)
{
    if (conv_algo == 5 || conv_algo == 6)
        return nn_amx_conv_dx_ok(s);
    /* on vdpbf16ps nn_amx_conv_dx runs one stride-1 conv per phase (no products with the
     * spread-out zeros, which there cost as much as the rest: 32x32 16->32 3x3 s2 19.7 ms
     * with them against the tiles' 12.8), taken for every strided dX: per phase against
     * the im2col tiles (algo 2), width 1/4, batch 384, 1 core, CPU ms, two alternating
     * rounds beside a CI run: 32x32 16->32 3x3 s2 11.8-12.4 / 14.0-17.4, 1x1 s2 4.5-5.5 /
     * 6.4-8.3, 16x16 32->64 7.2-8.0 / 7.9-9.2, 8x8 64->128 5.6-6.5 / 6.2-6.4 */
    if (conv_algo == 0 && nn_bf16_native() == 1)
        return nn_amx_conv_dx_ok(s);
    return conv_algo == 0 && nn_bf16_native() == 2 && nn_amx_conv_dx_ok(s) &&
           s->kh * s->kw > 1 && s->W >= 32 && s->C_out <= 32;
}

/* im2col + sgemm: out = conv(in, w) (beta 0) or out += conv(in, w) (beta 1). */
static int fwd_im2col(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                      const float *w, float beta, float *buf)
{
    conv_ctx c = {.s = s, .in = in};
    conv_check(h, "conv2d_forward", s, &c.Ho, &c.Wo);
    const int Co = s->C_out;
    c.K = s->kh * s->kw * s->C_in;
    const size_t HoWo = (size_t)c.Ho * c.Wo;
    if (is_pointwise(s) && !in_bf16(s)) {
        nn_gemm(h, s->flags, 0, 1, (int)((size_t)s->N * HoWo), Co, c.K, 1.f, in, c.K, w, c.K,
                beta, out, Co);
        return EQM_OK;
    }
    if (bf16_tiles(s))
        return fwd_bf16(h, s, out, in, w, beta, buf);
    size_t T = tile_images(s, HoWo, (size_t)c.K);
    c.cols = buf;
    for (size_t n0 = 0; n0 < (size_t)s->N; n0 += T) {
        size_t nt = (size_t)s->N - n0 < T ? (size_t)s->N - n0 : T;
        c.n0 = n0;
        nn_parallel(h, nt * HoWo, 64, im2col_body, &c);
        nn_gemm(h, s->flags, 0, 1, (int)(nt * HoWo), Co, c.K, 1.f, c.cols, c.K, w, c.K, beta,
                out + n0 * HoWo * Co, Co);
    }
    return EQM_OK;
}

static size_t fwd_ws_floats(const eqm_conv2d_shape *s)
{
    if (nn_wvf_pick(s))
        return nn_amx_conv_ws_floats(s);
    if (direct_pick(s))
        return nn_direct_ws_floats(s);
    if (wino_fwd(s))
        return nn_wino_ws_floats(s);
    if (amx_pick(s))
        return nn_amx_conv_ws_floats(s);
    if (is_pointwise(s) && !in_bf16(s))
        return 0;
    if (bf16_tiles(s)) {
        bf16_conv_ctx b;
        return bf16_plan(s, 0, &b);
    }
    int Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    int Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    size_t HoWo = (size_t)Ho * Wo, K = (size_t)s->kh * s->kw * s->C_in;
    return tile_images(s, HoWo, K) * HoWo * K;
}

static int fwd_any(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                   const float *w, int accumulate, float *buf)
{
    if (nn_wvf_pick(s)) { /* fp32 Winograd, amx_conv.c */
        nn_amx_conv_forward(h, s, out, in, w, accumulate, buf, NULL);
        return EQM_OK;
    }
    if (direct_pick(s)) {
        nn_direct_forward(h, s, out, in, w, accumulate, buf, NULL);
        return EQM_OK;
    }
    if (wino_fwd(s)) {
        nn_wino_forward(h, s, out, in, w, accumulate, buf);
        return EQM_OK;
    }
    if (amx_pick(s)) {
        nn_amx_conv_forward(h, s, out, in, w, accumulate, buf, NULL);
        return EQM_OK;
    }
    return fwd_im2col(h, s, out, in, w, accumulate ? 1.f : 0.f, buf);
}

/* s with the host's precision OR-ed into its flags (a copy in *buf when that changes
 * them; train.precision = bf16 turns every conv into EQM_NN_BF16). */
static const eqm_conv2d_shape *with_precision(const eqm_conv2d_shape *s, eqm_conv2d_shape *buf)
{
    uint32_t p = nn_precision();
    if (!s || !p || (s->flags & p) == p)
        return s;
    *buf = *s;
    buf->flags |= p;
    return buf;
}

/* fp32 products on a bf16 input (EQM_NN_IN_BF16 without EQM_NN_BF16: the evaluation
 * forward of a model that stores its activations in bf16, ABI 1.6 EQM_ACT_BF16). The
 * direct, Winograd and pointwise-GEMM kernels read a float `in`; rather than giving them
 * up for im2col (1.6x slower over the quickstart's layers: 68.7 against 110.4 ms forward,
 * bench/conv-layers --in-bf16 1 --bf16 0), the input is widened a chunk of images at a
 * time (about 4 MiB) into a second workspace and each chunk runs as a float conv. Per
 * image the same kernels and the same floats as a float conv of the widened input.
 * EQM_NN_OUT_BF16 on a path that stores floats (all but the direct kernels and the
 * implicit AMX forward, out_native) runs the same chunks: each chunk's float output goes
 * into the second workspace (about 1 MiB a chunk, so that it is still in cache when it is
 * narrowed) and is narrowed into `out` from there. forward_stats sums per chunk (each
 * chunk's sums as the plain call of that chunk gives them, added in chunk order). */
#define WIDE_CHUNK_FLOATS ((size_t)1 << 20)
#define NARROW_CHUNK_FLOATS ((size_t)1 << 18)
static float *wide_ws;
static size_t wide_floats;
static double *chunk_st; /* one chunk's statistics (2 C_out) */
static size_t chunk_st_n;

/* EQM_NN_OUT_BF16 (ABI 1.6; forward, forward_stats): `out` receives eqm_bf16 values. */
static int out_bf16(const eqm_conv2d_shape *s) { return (s->flags & EQM_NN_OUT_BF16) != 0; }

/* The paths that store bf16 themselves (the order of fwd_any): the direct kernels and the
 * implicit AMX forward. */
static int out_native(const eqm_conv2d_shape *s)
{
    return direct_pick(s) || (!wino_fwd(s) && amx_pick(s));
}

/* dst[0..n) = bf16 of src[0..n) (nn_bf16_rne: vcvtneps2bf16 rounds the same way) */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
narrow_avx512bf16(uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(dst + i),
                            (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    for (; i < n; i++)
        dst[i] = nn_bf16_rne(src[i]);
}
#endif
static void narrow_row(uint16_t *dst, const float *src, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nn_bf16_cpu() > 0) {
        narrow_avx512bf16(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = nn_bf16_rne(src[i]);
}

typedef struct {
    float *f;
    const uint16_t *b;
} widen_ctx;

typedef struct {
    uint16_t *b;
    const float *f;
} narrow_ctx;

static void widen_body(void *vc, size_t b, size_t e)
{
    const widen_ctx *c = vc;
    widen_row(c->f + b, c->b + b, e - b);
}

static void narrow_body(void *vc, size_t b, size_t e)
{
    const narrow_ctx *c = vc;
    narrow_row(c->b + b, c->f + b, e - b);
}

/* One forward (stats NULL) or forward_stats, as it is: no chunks. With EQM_NN_OUT_BF16 only
 * where out_native says. */
static int fwd_run(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                   const float *w, double *stats, size_t rows)
{
    size_t need = fwd_ws_floats(s);
    float *buf = ws_get(h, need);
    if (!buf)
        return EQM_ERR_NOMEM;
    if (!stats)
        return fwd_any(h, s, out, in, w, 0, buf);
    /* the direct kernels (fp32, and the small-C_in ones in both precisions) and the
     * implicit AMX kernel sum in their epilogues; the rest: BN's statistics pass */
    if (nn_wvf_pick(s) || (!direct_pick(s) && !wino_fwd(s) && amx_pick(s)))
        return nn_amx_conv_forward_stats(h, s, out, in, w, buf, stats);
    if (direct_pick(s))
        return nn_direct_forward_stats(h, s, out, in, w, buf, stats);
    int rc = fwd_any(h, s, out, in, w, 0, buf);
    return rc ? rc : nn_bn_sums(h, rows, (size_t)s->C_out, out, stats);
}

/* The chunked forward of t (its flags already without the IN_BF16 that `widen` replaces
 * and the OUT_BF16 that `narrow` replaces): per chunk of images, `in` widened into the
 * second workspace (widen) or read where it lies, the chunk's conv run as it is (fwd_run),
 * into the second workspace and narrowed from there (narrow) or into `out` itself. */
static int fwd_chunks(eqm_host *h, const eqm_conv2d_shape *t, int widen, int narrow,
                      float *out, const float *in, const float *w, double *stats, int Ho,
                      int Wo)
{
    const size_t img = (size_t)t->H * t->W * t->C_in, oimg = (size_t)Ho * Wo * t->C_out;
    const size_t Co = (size_t)t->C_out;
    size_t per = (size_t)t->N;
    /* with a widened input the widening's chunks (so that IN_BF16 | OUT_BF16 gives the bf16
     * of the IN_BF16 call's floats, bit for bit: per chunk, an sgemm-based kernel may sum a
     * pixel in another order than over the whole batch) */
    if (widen && WIDE_CHUNK_FLOATS / img < per)
        per = WIDE_CHUNK_FLOATS / img ? WIDE_CHUNK_FLOATS / img : 1;
    else if (!widen && narrow && NARROW_CHUNK_FLOATS / oimg < per)
        per = NARROW_CHUNK_FLOATS / oimg ? NARROW_CHUNK_FLOATS / oimg : 1;
    const size_t xfl = widen ? (per * img + 15) / 16 * 16 : 0; /* widened input */
    const size_t need = xfl + (narrow ? per * oimg : 0);      /* then float out */
    if (need > wide_floats) {
        float *p = NULL;
        if (posix_memalign((void **)&p, 64, need * sizeof(float))) {
            host_api()->set_error(h, EQM_ERR_NOMEM,
                                  "nn.conv2d: bf16 input/output chunk of %zu bytes: out of memory",
                                  need * sizeof(float));
            return EQM_ERR_NOMEM;
        }
        free(wide_ws);
        wide_ws = p, wide_floats = need;
    }
    if (stats && per < (size_t)t->N && 2 * Co > chunk_st_n) {
        double *q = realloc(chunk_st, 2 * Co * sizeof(double));
        if (!q) {
            host_api()->set_error(h, EQM_ERR_NOMEM, "nn.conv2d_forward_stats: out of memory");
            return EQM_ERR_NOMEM;
        }
        chunk_st = q, chunk_st_n = 2 * Co;
    }
    const uint16_t *in16 = (const uint16_t *)(const void *)in;
    uint16_t *out16 = (uint16_t *)(void *)out;
    for (size_t n0 = 0; n0 < (size_t)t->N; n0 += per) {
        eqm_conv2d_shape c = *t;
        c.N = (int)((size_t)t->N - n0 < per ? (size_t)t->N - n0 : per);
        const float *ci;
        if (widen) {
            widen_ctx wc = {wide_ws, in16 + n0 * img};
            nn_parallel(h, (size_t)c.N * img, 16384, widen_body, &wc);
            ci = wide_ws;
        } else {
            ci = in_bf16(t) ? (const float *)(const void *)(in16 + n0 * img) : in + n0 * img;
        }
        float *co = narrow       ? wide_ws + xfl
                    : out_bf16(t) ? (float *)(void *)(out16 + n0 * oimg)
                                  : out + n0 * oimg;
        double *cs = !stats ? NULL : n0 ? chunk_st : stats;
        int rc = fwd_run(h, &c, co, ci, w, cs, (size_t)c.N * Ho * Wo);
        if (rc)
            return rc;
        if (narrow) {
            narrow_ctx nc = {out16 + n0 * oimg, co};
            nn_parallel(h, (size_t)c.N * oimg, 16384, narrow_body, &nc);
        }
        if (stats && n0)
            for (size_t k = 0; k < 2 * Co; k++)
                stats[k] += chunk_st[k];
    }
    return EQM_OK;
}

/* forward (stats NULL) or forward_stats of a checked shape: as it is, or in chunks where
 * a bf16 input is widened for the float kernels (fp32 products) or a float-storing path
 * meets EQM_NN_OUT_BF16. */
static int fwd_top(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                   const float *w, double *stats, int Ho, int Wo)
{
    eqm_conv2d_shape t = *s;
    /* fp32 products, bf16 input, a float kernel that the bf16 input would lose (the
     * small-C_in direct kernels read bf16 themselves) */
    int widen = in_bf16(s) && !(s->flags & EQM_NN_BF16) && !direct_pick(s) && !amx_pick(s);
    if (widen) {
        t.flags &= ~(uint32_t)EQM_NN_IN_BF16;
        widen = direct_pick(&t) || wino_ok(&t) || is_pointwise(&t);
        if (!widen)
            t = *s;
    }
    int narrow = out_bf16(&t) && !out_native(&t);
    if (narrow)
        t.flags &= ~(uint32_t)EQM_NN_OUT_BF16;
    if (!widen && !narrow)
        return fwd_run(h, s, out, in, w, stats, (size_t)s->N * Ho * Wo);
    return fwd_chunks(h, &t, widen, narrow, out, in, w, stats, Ho, Wo);
}

int nn_conv2d_forward(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                      const float *w)
{
    int Ho, Wo;
    eqm_conv2d_shape sp;
    s = with_precision(s, &sp);
    algo_from_env();
    int rc = conv_check(h, "conv2d_forward", s, &Ho, &Wo);
    if (rc)
        return rc;
    return fwd_top(h, s, out, in, w, NULL, Ho, Wo);
}

/* forward + per output channel [sum, sum of squares] of out (ABI 1.5): the direct kernels
 * (fp32, and the small-C_in ones in both precisions) and the implicit AMX kernel sum in
 * their epilogues (the values they store are still in registers); every other path runs
 * as conv2d_forward, then BN's statistics pass over out (per chunk where fwd_top runs
 * chunks). With EQM_NN_OUT_BF16 the sums are those of the floats before rounding. */
int nn_conv2d_forward_stats(eqm_host *h, const eqm_conv2d_shape *s, float *out,
                            const float *in, const float *w, double *stats)
{
    int Ho, Wo;
    eqm_conv2d_shape sp;
    s = with_precision(s, &sp);
    algo_from_env();
    int rc = conv_check(h, "conv2d_forward_stats", s, &Ho, &Wo);
    if (rc)
        return rc;
    if (!stats)
        return nn_inval(h, "conv2d_forward_stats", "stats (2 C_out doubles) is required");
    return fwd_top(h, s, out, in, w, stats, Ho, Wo);
}

/* dX of a stride-1 conv as a forward conv of dout: din = conv(dout, w~, pad k-1-pad) with
 * w~[ci][a][b][co] = w[co][kh-1-a][kw-1-b][ci] (flipped, in/out swapped). */
static void dx_shape(const eqm_conv2d_shape *s, int Ho, int Wo, eqm_conv2d_shape *t);

/* Algo 0 takes it when the flipped conv runs as Winograd (an im2col forward of dout was
 * measured slower than sgemm + col2im in fp32), or as bf16 tiles on a native kernel (no
 * fp32 dcols and no col2im pass: quickstart bf16 step -3% CPU); algos 2 and 3 whenever it
 * applies. */
static int dx_as_forward_ok(const eqm_conv2d_shape *s)
{
    if (!(s->stride == 1 && s->C_in >= 16 && s->pad <= s->kh - 1 && s->pad <= s->kw - 1 &&
          s->kh == s->kw && !is_pointwise(s)))
        return 0;
    if (conv_algo >= 2)
        return 1;
    if (conv_algo != 0)
        return 0;
    eqm_conv2d_shape t;
    dx_shape(s, s->H + 2 * s->pad - s->kh + 1, s->W + 2 * s->pad - s->kw + 1, &t);
    return nn_wvf_pick(&t) || direct_pick(&t) || wino_fwd(&t) || bf16_tiles(&t);
}

static void dx_shape(const eqm_conv2d_shape *s, int Ho, int Wo, eqm_conv2d_shape *t)
{
    *t = *s;
    t->H = Ho;
    t->W = Wo;
    t->C_in = s->C_out;
    t->C_out = s->C_in;
    t->pad = s->kh - 1 - s->pad;
    /* its input is dout, its output din: floats */
    t->flags &= ~(uint32_t)(EQM_NN_IN_BF16 | EQM_NN_OUT_BF16);
}

typedef struct {
    const eqm_conv2d_shape *s;
    const float *w;
    float *wt;
} flip_ctx;

/* wt[ci][a][b][co] = w[co][kh-1-a][kw-1-b][ci] for ci in [cb, ce). */
static void flip_body(void *vc, size_t cb, size_t ce)
{
    const flip_ctx *c = vc;
    const int kh = c->s->kh, kw = c->s->kw, Ci = c->s->C_in, Co = c->s->C_out;
    for (size_t ci = cb; ci < ce; ci++)
        for (int a = 0; a < kh; a++)
            for (int b = 0; b < kw; b++)
                for (int co = 0; co < Co; co++)
                    c->wt[((ci * kh + (size_t)a) * kw + (size_t)b) * Co + (size_t)co] =
                        c->w[(((size_t)co * kh + (kh - 1 - a)) * kw + (kw - 1 - b)) * Ci + ci];
}

/* The implicit dW (amx_dw.c): algo 5 wherever it applies (AMX or vdpbf16ps); by default
 * on AMX where at least 70% of its reduction positions are output pixels (nn_amx_dw_fill;
 * the rest multiply zeros), or from C_in = 256 on. Measured (conv-layers --bf16 1, 1 core,
 * ms, implicit against the grouped im2col tiles): width 1/4, batch 384 (CPU ms): 32x32
 * 16->16 (fill 0.94) 8.6-9.3 / 21.7-21.9, 16x16 32->32 (0.89) 3.8-5.0 / 6.3-7.1, 8x8
 * 64->64 (0.79) 2.8-2.9 / 3.2-3.3, 4x4 128->128 (0.64) 2.9-3.0 / 2.5 (wall); full width,
 * batch 64 (wall): 32x32 64->64 7.0-8.6 / 10.4-10.8, 8x8 256->256 5.6-6.2 / 10.3-10.5, 4x4
 * 512->512 10.7-11.8 / 12.8-14.6; width 1/2, batch 128: 4x4 256->256 3.4-3.5 / 5.1-5.3.
 * On vdpbf16ps (AVX512_BF16 without AMX: AMD Zen 4) where the fill is >= 0.85, or >= 0.7
 * up to C_in = 128: its products run near the vdpbf16ps peak, so the zero positions and
 * the copies decide. Measured on Zen 4 (conv-layers --bf16 1 --in-bf16 1 --threads 1
 * --cpu 1, CPU ms, implicit against the default before, the bf16 tiles; two alternating
 * rounds): width 1/4, batch 384: 32x32 16->16 11.7-12.1 / 33.0-33.5 (fp32, the direct
 * kernel: 17.3-18.0), 16x16 32->32 10.7 / 17.1-17.2 (fp32 17.9-19.4), 8x8 64->64
 * 11.1-11.2 / 11.9 (fp32 17.4-17.6); full width, batch 64: 32x32 64->64 25.8-26.0 /
 * 32.1-36.5 (fp32 49.4), 16x16 128->128 26.5 / 27.6-29.2 (fp32 42.4); not taken (--algo 5
 * against the default): 4x4 128->128 (fill 0.64) 13.7-14.8 / 10.5-12.7, 8x8 256->256
 * (0.79) 34.3 / 27.8-30.8, 4x4 512->512 (0.64) 49.9 / 26.9-33.4. Strided convs (vdpbf16ps
 * only: one phase canvas per (ky % st, kx % st), amx_dw.c) where the fill is >= 0.85, or
 * >= 0.7 up to C_in = 32 (the canvas of a 3x3 s2 pad 1 conv has Ho + 1 rows per image:
 * fill (Ho / (Ho + 1))^2). Measured (same flags, two or three alternating rounds, implicit
 * / the bf16 tiles of fwd before): width 1/4, batch 384: 32x32 16->32 3x3 s2 (fill 0.89)
 * 7.3-7.5 / 15.0-18.3, 1x1 s2 (1.0) 2.2 / 6.7-8.0, 16x16 32->64 s2 (0.79) 6.7-7.7 /
 * 7.9-8.1; full width, batch 64: 32x32 64->128 s2 15.0-17.0 / 16.5-18.3, 1x1 s2 64->128
 * 2.0-2.7 / 3.7-4.1; not taken: 16x16 128->256 s2 (0.79) 16.1-19.5 / 14.3-14.8, 8x8
 * 64->128 s2 (0.64, --algo 5) 7.7 / 6.1-6.9, 8x8 256->512 s2 (0.64) 22.1 / 14.0-17.1. The
 * forced algorithms 1-4 keep their own dW paths. */
static int amx_dw_pick(const eqm_conv2d_shape *s)
{
    if (!nn_amx_dw_ok(s))
        return 0;
    if (conv_algo != 0)
        return conv_algo == 5 || conv_algo == 6;
    double fill = nn_amx_dw_fill(s);
    if (nn_bf16_native() == 2) /* (stride 1: nn_amx_dw_ok) */
        return fill >= 0.7 || s->C_in >= 256;
    if (s->stride > 1)
        return fill >= 0.85 || (fill >= 0.7 && s->C_in <= 32);
    return fill >= 0.85 || (fill >= 0.7 && s->C_in <= 128);
}

/* The dX of a pointwise conv: din (= or +=) dout w. On vdpbf16ps (the implicit kernel takes
 * the pointwise forward there, amx_pick) as the implicit forward of dout with w transposed
 * while packed (the GEMM would pack dout to bf16 as well, and w); else the GEMM. Measured
 * only through the ResNet-50 step (its 1x1 convs, forward, dX and dW together): 16.7-17.4
 * CPU s against 17.2-18.5 before, within the noise of that machine: one path less, not a
 * proven gain. */
static int pw_dx(eqm_host *h, const eqm_conv2d_shape *s, float *din, const float *dout,
                 const float *w, int set)
{
    eqm_conv2d_shape t;
    dx_shape(s, s->H, s->W, &t);
    if (amx_pick(&t)) {
        float *buf = ws_get(h, nn_amx_conv_ws_floats(&t));
        if (!buf)
            return EQM_ERR_NOMEM;
        nn_amx_conv_forward(h, &t, din, dout, w, !set, buf, s);
        return EQM_OK;
    }
    nn_gemm(h, s->flags, 0, 0, (int)((size_t)s->N * s->H * s->W), s->C_in, s->C_out, 1.f, dout,
            s->C_out, w, s->C_in, set ? 0.f : 1.f, din, s->C_in);
    return EQM_OK;
}

int nn_conv2d_backward(eqm_host *h, const eqm_conv2d_shape *s, float *din, float *dw,
                       const float *dout, const float *in, const float *w)
{
    eqm_conv2d_shape sp, so;
    s = with_precision(s, &sp);
    if (s && (s->flags & EQM_NN_OUT_BF16)) { /* forward only: din and dw are floats */
        so = *s;
        so.flags &= ~(uint32_t)EQM_NN_OUT_BF16;
        s = &so;
    }
    conv_ctx c = {.s = s, .in = in, .din = din};
    algo_from_env();
    int rc = conv_check(h, "conv2d_backward", s, &c.Ho, &c.Wo);
    if (rc)
        return rc;
    if (!din && !dw)
        return EQM_OK;
    const int Co = s->C_out;
    c.K = s->kh * s->kw * s->C_in;
    const size_t HoWo = (size_t)c.Ho * c.Wo;
    /* EQM_NN_SET_DIN: every dX path below writes din (=) instead of adding into it: the
     * GEMM and forward-conv ones store (beta 0, accumulate 0), col2im zeroes each row it
     * gathers into (c.set); all give the bits of += into a zeroed din (up to a -0) */
    const int set = (s->flags & EQM_NN_SET_DIN) != 0;
    c.set = set;
    if (is_pointwise(s) && in_bf16(s)) {
        /* dX as the plain call's (pw_dx: it does not read in); dW below: on vdpbf16ps the
         * implicit dW (amx_dw.c reads the bf16 as it is), else the im2col path (bf16 or
         * fp32 tiles), which widens in */
        if (din && (rc = pw_dx(h, s, din, dout, w, set)))
            return rc;
        if (!dw)
            return EQM_OK;
        din = c.din = NULL;
    } else if (is_pointwise(s)) {
        int M = (int)((size_t)s->N * HoWo);
        if (dw)
            nn_gemm(h, s->flags, 1, 0, Co, c.K, M, 1.f, dout, Co, in, c.K, 1.f, dw, c.K);
        return din ? pw_dx(h, s, din, dout, w, set) : EQM_OK;
    }
    int vdw = dw && nn_wv_dw_pick(s); /* amx_conv.c's Winograd dW (vdpbf16ps; fp32: FMA) */
    int adw = dw && (vdw || amx_dw_pick(s));
    if (bf16_tiles(s) && !(dw && wino_ok(s)) && !adw && !(dw && direct_dw_pick(s)) &&
        !(din && (dx_as_forward_ok(s) || amx_dx_pick(s))))
        return bwd_bf16(h, s, din, dw, dout, in, w);
    size_t T = tile_images(s, HoWo, (size_t)c.K);
    size_t tile = T * HoWo * (size_t)c.K;
    int ddw = dw && !adw && direct_dw_pick(s);
    int wdw = dw && !adw && !ddw && wino_ok(s), fdx = din && dx_as_forward_ok(s);
    int adx = din && !fdx && amx_dx_pick(s);
    eqm_conv2d_shape ts;
    dx_shape(s, c.Ho, c.Wo, &ts);
    size_t need_dw = !dw ? 0
                     : vdw ? nn_wv_dw_ws_floats(s)
                     : adw ? nn_amx_dw_ws_floats(s)
                     : ddw ? nn_direct_dw_ws_floats(s)
                     : wdw ? nn_wino_ws_floats(s)
                           : bf16_tiles(s) ? 0 : tile;
    size_t need_dx = !din  ? 0
                     : fdx ? (size_t)Co * c.K + fwd_ws_floats(&ts)
                     : adx ? nn_amx_conv_dx_ws_floats(s)
                           : tile;
    /* the im2col dW and col2im dX share one pass over the tiles: cols then dcols */
    size_t need = (!wdw && !ddw && !adw && !fdx && !adx && dw && din) ? 2 * tile
                                                      : (need_dw > need_dx ? need_dw : need_dx);
    float *buf = ws_get(h, need);
    if (!buf)
        return EQM_ERR_NOMEM;
    if (vdw)
        nn_wv_dw(h, s, dw, dout, in, buf);
    else if (adw)
        nn_amx_dw(h, s, dw, dout, in, buf);
    if (ddw)
        nn_direct_dw(h, s, dw, dout, in, buf);
    if (wdw)
        nn_wino_dw(h, s, dw, dout, in, buf);
    if (fdx && nn_wvf_pick(&ts)) /* fwd_any's choice; flips w itself */
        nn_amx_conv_forward(h, &ts, din, dout, w, !set, buf + (size_t)Co * c.K, s);
    else if (fdx && direct_pick(&ts))
        nn_direct_forward(h, &ts, din, dout, w, !set, buf, s); /* flips w itself */
    else if (fdx && !wino_fwd(&ts) && amx_pick(&ts)) /* fwd_any's choice; flips w itself */
        nn_amx_conv_forward(h, &ts, din, dout, w, !set, buf + (size_t)Co * c.K, s);
    else if (adx) /* reads w as it is */
        nn_amx_conv_dx(h, s, din, dout, w, !set, buf);
    else if (fdx) {
        float *wt = buf; /* (C_in, kh, kw, C_out) */
        flip_ctx fc = {s, w, wt};
        nn_parallel(h, (size_t)s->C_in, 8, flip_body, &fc);
        if ((rc = fwd_any(h, &ts, din, dout, wt, !set, buf + (size_t)Co * c.K)))
            return rc;
    }
    int do_dw = dw && !wdw && !ddw && !adw, do_dx = din && !fdx && !adx;
    if (!do_dw && !do_dx)
        return EQM_OK;
    if (bf16_tiles(s)) /* what the Winograd dW or the dX as a forward conv left */
        return bwd_bf16(h, s, do_dx ? din : NULL, do_dw ? dw : NULL, dout, in, w);
    c.cols = buf;
    float *dcols = do_dw ? buf + tile : buf;
    c.dcols = dcols;
    for (size_t n0 = 0; n0 < (size_t)s->N; n0 += T) {
        size_t nt = (size_t)s->N - n0 < T ? (size_t)s->N - n0 : T;
        int Mt = (int)(nt * HoWo);
        const float *g = dout + n0 * HoWo * Co;
        c.n0 = n0;
        if (do_dw) {
            nn_parallel(h, nt * HoWo, 64, im2col_body, &c);
            nn_gemm(h, s->flags, 1, 0, Co, c.K, Mt, 1.f, g, Co, c.cols, c.K, 1.f, dw, c.K);
        }
        if (do_dx) {
            nn_gemm(h, s->flags, 0, 0, Mt, c.K, Co, 1.f, g, Co, w, c.K, 0.f, dcols, c.K);
            nn_parallel(h, nt * (size_t)s->H, 1, col2im_body, &c);
        }
    }
    return EQM_OK;
}
