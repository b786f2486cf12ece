/* host/nn/amx_dw.c: the weight gradient of a bf16 stride-1 conv2d as an implicit GEMM on
 * AMX (tdpbf16ps), or on AVX512_BF16 without AMX (vdpbf16ps, the second kernel below, which
 * also takes strided convs: "Strided convs" at the end of this comment): no im2col rows, no
 * per-tile packing.
 *
 * Shape (conv2d.c's legend): x (N, H, W, Ci) NHWC, dout (N, Ho, Wo, Co), dw (Co, kh, kw, Ci)
 * += sum over n, oy, ox of dout[n, oy, ox, co] xpad[n, oy + ky, ox + kx, ci] (stride 1,
 * zero padding pad). Scope (nn_amx_dw_ok): EQM_NN_BF16 on a native kernel
 * (nn_bf16_native() == 2 AMX, == 1 vdpbf16ps), stride 1 (vdpbf16ps: 1 to 4), not 1x1
 * pointwise, Ci % 16 == 0 (vdpbf16ps also: the largest tap offset (kh - 1) Wr + kw - 1
 * under 2^14); conv2d.c picks it (amx_dw_pick) on AMX where nn_amx_dw_fill >= 0.7 or C_in
 * >= 256, on vdpbf16ps where the fill is >= 0.85, or >= 0.7 up to C_in = 128 (strided: 32),
 * and always under algo 5.
 *
 * The canvas: the batch as one tall zero-padded image whose images and rows SHARE their
 * padding: row stride Wr = max(W + pad, Wo), image stride Hr = max(H + pad, Ho) rows;
 * position q = R Wr + c holds x[n][iy][ix] at R = pad + n Hr + iy, c = pad + ix, zero
 * elsewhere (columns [0, pad) are the left padding of their row and the right padding of
 * the row before; rows [H, Hr) of an image the bottom padding of it and the top padding
 * of the next). Output (n, oy, ox) sits at q = (n Hr + oy) Wr + ox and reads, for tap
 * (ky, kx), the canvas at q + d, d = ky Wr + kx: the zeros it meets are exactly xpad's.
 * (With the full padding per image, Hp Wp = (H + 2 pad)(W + 2 pad), a 4x4 image would be 16
 * of 36 positions, with the shared padding 16 of 25; 32x32 1024 of 1156 against 1089.)
 * The reduction runs over every q in [0, 32 steps), steps = ceil(N Hr Wr / 32); positions
 * that are no output (oy >= Ho, ox >= Wo, q >= N Hr Wr) get dout = 0 and add nothing:
 *     dw[co][t][c] = sum_q dout[q][co] canvas[q + d_t][c],
 * a GEMM over q whose operand "x shifted by d_t" is a pointer offset. Two bf16 operands,
 * built per chunk of q (below) by vectorised passes (vcvtneps2bf16 / vcvtne2ps2bf16: the
 * rounding of nn_bf16_from_f32):
 * - Xt[c][q] = bf16 canvas[q][c], Ci rows of LC positions (the chunk plus the largest tap
 *   offset dmax = (kh - 1) Wr + kw - 1): x transposed, 16 x 16 blocks in registers. An A
 *   tile (16 rows x 32 bf16) for channels c0 .. c0+15 of tap t at step k is
 *   Xt + c0 LC + 32 k + d_t, row stride 2 LC bytes: any d_t, odd or even.
 * - D2[p][co] = (bf16 dout[2p][co], bf16 dout[2p+1][co]) as one uint32 (the even q in the
 *   low half), Co padded to Co16 (a multiple of 16) with zeros, zero at the positions with
 *   no output: dout's rows pair-interleaved, no transpose. A B tile (16 pairs x 16 co) at
 *   step k is D2 + 16 k Co16 + co0, row stride 4 Co16 bytes: AMX's VNNI layout as it is.
 * tdpbf16ps C[m][n] += A[m][2k] B[k][2n] + A[m][2k+1] B[k][2n+1] = sum over the step's 32 q
 * of canvas[q + d][c0 + m] dout[q][co0 + n]: C is dW transposed, (tap, c) rows x co columns.
 * (These roles, x as A and dout as B, rather than dout^T as A and pairs of x as B: no value
 * is stored twice (pairs (x[q + d], x[q + d + 1]) at every q would hold x twice), 2 (Ci +
 * Co16) bytes per q instead of 4 Ci + 2 Co32, and Co = 16 needs no zero rows; dW is small,
 * so transposing it back while summing the partials costs nothing.)
 *
 * Blocks of C: "row groups" are 16 channels of one tap (j = t Ci/16 + c/16: rows 16 j ..
 * 16 j + 15 of dW^T, dw's K index in OHWI order). A block is 2 row groups x 32 co in 4 C
 * tiles (A tiles 4-5, B tiles 6-7) or, when Co16 = 16, 4 row groups x 16 co (one B tile, A
 * tiles rotating through 4, 5, 7), so that no tdpbf16ps multiplies padding columns (the
 * last block of a row or a column may hold fewer groups).
 * Reduction and threads: the steps are split into DW_GROUPS (4) fixed, contiguous ranges,
 * each summed into its own fp32 partial of dW^T (4 KiB per block). A task (nn_parallel) is
 * one group x one slice of the blocks (slices: ceil(threads / 4), so 1 up to 4 threads).
 * It walks its group's steps in chunks sized so that the chunk's Xt and D2 (DW_CHUNK_BYTES)
 * stay in L2: it converts the chunk into its own buffers (the fp32 x and dout are read
 * once per slice; no full-size bf16 copy is written to memory and read back: a first
 * version with whole-tensor copies took 11.3 ms on 32x32 16->16 at batch 384 against 7-8),
 * then runs every block of its slice over the chunk,
 * loading the C tiles from the partial (zero on the group's first chunk) and storing them
 * back. At the end dw += ((partial 0 + partial 1) + partial 2) + partial 3 per element.
 * A block's arithmetic does not depend on the slicing or on which thread runs it, so the
 * result is the same bits at any thread count (check_bf16 compares 1 and 2 threads).
 * Numerics: the exact products of the bf16-rounded operands summed in fp32, like the im2col
 * path (in another order; check_bf16's fp32-summation bounds hold). One difference: a
 * non-finite input pixel meets the zero dout of a position with no output (0 x inf =
 * NaN), where im2col never multiplies it; dW is then inf/NaN either way.
 * EQM_NN_IN_BF16: xt_chunk reads the bf16 values and widens them in the registers
 * (load16) before the same transpose and conversion: the same bits as on the widened
 * floats, half the bytes read.
 * Workspace: the caller's (conv2d.c's grow-only buffer, nn_amx_dw_ws_floats): the 4
 * partials, then each task's chunk buffers.
 * Measured: bench/README.md ("Implicit AMX dW").
 *
 * The vdpbf16ps kernel (nn_bf16_native() == 1: AVX512_BF16 without AMX, e.g. AMD Zen 4):
 * the same Xt and D2, the same blocks of C in the same partial layout (so the same
 * sum_body), the same groups, tasks and chunks: only the products differ. Per row group
 * of a block (16 channels c0.. of tap t), per pair p, the D2 vectors of the block's co
 * (zmm loads at D2 + p Co16 + co0) meet a broadcast of each channel's 32-bit pair
 * (Xt[c][2p + d_t], Xt[c][2p + 1 + d_t]) (a 4-byte memcpy, unaligned for odd d_t):
 * acc[k][b] = vdpbf16ps(acc[k][b], bcast(pair of row k), D2 vector b), the same sum
 * tdpbf16ps forms per element. Shapes (zk_body): 16 rows x 1 vector where the block has 16
 * co (Co16 = 16, or the last 16 of a row of 32-co blocks), else two 8 rows x 2 vectors;
 * 16 zmm accumulators, loaded from the partial (zero on the group's first chunk) and
 * stored back per call. The row stride LC of Xt is a constant of each kernel instance
 * (ZLC(l) = 2^l + 32, l = 8 .. 14: every row's read is one pointer plus a displacement,
 * where a run-time stride spilled the row pointers; the + 32 bf16, one cache line, keeps
 * 16 rows out of a single L1 set, which at 2^13 alone ran the 32x32 16->16 layer at 26.6
 * ms instead of 14.6); a chunk is the largest such row whose Xt + D2 fit ZCHUNK_BYTES
 * (256 KiB: Zen 4's L2 is 1 MiB; 64 KiB to 1 MiB measured the same within noise), and the
 * blocks walk it ZSUB (128) pairs at a time (the D2 columns of a block stay in L1; each
 * element still sums its pairs in order, so ZSUB does not change the bits). While a
 * chunk's products run, each kernel call prefetches (to L2, prefetcht1) its share of the
 * lines of x and dout that the group's next chunk will copy, one line per pair step
 * (zpf: 32x32 16->16 at batch 384, the dW alone, 12.6-13.0 -> 11.6-11.8 ms; prefetcht0
 * 12.2-12.4; a prefetch a fixed distance ahead inside the copies themselves gained
 * nothing). The copies take two shortcuts on this kernel (the same values): runs of pairs
 * inside an output row and runs of 16 pixels inside an image row skip the per-position
 * walk, and bf16 input is transposed as 16-bit values (tr16x16w) instead of widened,
 * transposed and narrowed (together about 5% of the 16->16 layer). Bits: the same at any
 * thread count (the structure above), not necessarily the AMX kernel's (tdpbf16ps may
 * order the sums of a step otherwise).
 * Measured (Zen 4, 1 core, CPU ms, the dW alone; bench/README.md "vdpbf16ps implicit dW
 * (no AMX)"): the kernel itself runs at about 230 GFLOP/s on the positions it computes
 * (perf, before the prefetch: zk 64% of 13 ms on 32x32 16->16 at batch 384, 1.93 GFLOP;
 * the 1024^3 bf16 GEMM: 188); the copies (x 12.6 MB of bf16, dout 25 MB of floats) take
 * most of the rest. conv-layers, 1 core, dW: 32x32 16->16 11.7-12.1 ms (fp32 direct
 * 17.3-18.0, the bf16 tiles before 33.0-33.5), 16x16 32->32 10.7 (fp32 17.9-19.4).
 *
 * Strided convs (vdpbf16ps only; AMX keeps stride 1): phase decomposition. For stride st,
 * tap (ky, kx) = (st jy + ry, st jx + rx) with ry, rx < st reads xpad[st oy + ky][st ox +
 * kx] = xph[oy + jy][ox + jx], xph(ry, rx)[a][b] = xpad[st a + ry][st b + rx]: per phase
 * (ry, rx) (ry < min(st, kh), rx < min(st, kw): the others have no taps; a 1x1 stride-2
 * conv is one phase) its taps are a stride-1 correlation of dout with xph, kernel
 * ceil((kh - ry) / st) x ceil((kw - rx) / st). Each phase gets its own canvas of the
 * same Hr x Wr per image: rows pty[ry] + n Hr + i, i < Hs[ry], hold input row y0[ry] + st i
 * (pty = ceil((pad - ry) / st) leading zero rows, the zero rows of xph; y0 = st pty + ry -
 * pad in [0, st)), columns likewise (ptx, x0, Ws); Hr is the largest of Ho, Hs + pty (the
 * image's rows end before the next image's leading zeros) and Ho + taps - 1 - pty (the
 * last tap of the last output row reads zeros) over the phases (axis(); at stride 1 this
 * is the canvas above). With one Hr and Wr for all phases, output (n, oy, ox) sits at the
 * same q in each, so D2 is built once per chunk and shared; each chunk builds one Xt per
 * phase (nph of them, Ci rows of LC each: the chunk sizing counts them), and a row group
 * of tap (ky, kx) reads phase (ky % st, kx % st)'s Xt at offset (ky / st) Wr + kx / st.
 * The blocks, row groups (dW's own tap order), partials, groups, tasks and sum are those
 * of stride 1: the same bits at any thread count. The fill drops to (Ho / (Ho + 1))^2 for
 * 3x3 s2 pad 1 (phase (0, 0) has a leading zero row and column per image), so conv2d.c
 * takes it only where that pays. Measured: conv2d.c's amx_dw_pick, bench/README.md.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "nn/nn_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define ZMM_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

#define DW_GROUPS 4
#define DW_CHUNK_BYTES (512u << 10) /* one chunk's Xt + D2 (L2: 2 MiB per core) */
#define BLOCK_FLOATS 1024           /* one block of C: 32 x 32 or 64 x 16 fp32 */
/* vdpbf16ps kernel: Xt rows LC = ZLC(ZLC_MIN) .. ZLC(ZLC_MAX) bf16 apart (a constant per
 * kernel instance), chunks of at most ZCHUNK_BYTES of Xt + D2 (unless the smallest row
 * needs more), walked ZSUB pairs at a time */
#define ZLC_MIN 8
#define ZLC_MAX 14
#define ZLC_N (ZLC_MAX - ZLC_MIN + 1)
#define ZCHUNK_BYTES (256u << 10)
#define ZSUB 128
/* the row stride: 2^l bf16 and a cache line, so that the rows of a block fall in
 * different L1 sets (at 2^l alone, 16 rows 16 KiB apart thrashed one 8-way set) */
#define ZLC(l) (((size_t)1 << (l)) + 32)

/* Strided convs (vdpbf16ps only, see "Strided convs" above): phases ry < min(st, kh),
 * rx < min(st, kw); at most DW_MAXST^2 of them. */
#define DW_MAXST 4

typedef struct {
    const eqm_conv2d_shape *s;
    int st, nphx, nph;                     /* stride; phases per row (min(st, kw)), all */
    int pty[DW_MAXST], y0[DW_MAXST], Hs[DW_MAXST]; /* per ry: canvas rows, see axis */
    int ptx[DW_MAXST], x0[DW_MAXST], Ws[DW_MAXST]; /* per rx: canvas columns */
    int Ho, Wo, Hr, Wr, Ci, Co, Co16, ncg; /* ncg: 16-channel groups of C_in */
    int nrg, rbg, nrb, ncb, CB;            /* row groups, per block, row/col blocks, cols */
    size_t Qn, steps, chunk, dmax, LC;     /* chunk: steps per chunk; LC: Xt row length */
    int G, S;                              /* reduction groups, block slices */
    int ib;                                /* EQM_NN_IN_BF16: in holds eqm_bf16 values */
    int zmm;                               /* the vdpbf16ps kernel (no AMX); zl: log2 LC */
    int zl;
    size_t part_floats, xt_floats, task_floats; /* one partial, one task's Xt, Xt + D2 */
    const float *in, *dout;
    float *dw, *ws;
} dw_plan;

static size_t up(size_t v, size_t m) { return (v + m - 1) / m * m; }

static int imax(int a, int b) { return a > b ? a : b; }

/* One axis of the phase canvases (rows: n = H, k = kh, o = Ho; columns likewise): per
 * phase r < min(st, k), pt[r] leading zero positions, then nd[r] = count of input rows
 * y0[r] + st i (i = 0, 1, ...) inside [0, n); returns the canvas period (Hr or Wr): the
 * largest of o, nd + pt (an image's rows end before the next image's phase rows start)
 * and o + ceil((k - r) / st) - 1 - pt (the last tap of the last output stays in the
 * zeros after the rows, or in the next image's leading ones). At stride 1: pt = pad,
 * y0 = 0, nd = n, period max(n + pad, o) (the canvas of the comment at the top). */
static int axis(int n, int k, int o, int st, int pad, int *pt, int *y0, int *nd)
{
    int per = o;
    for (int r = 0; r < st && r < k && r < DW_MAXST; r++) { /* (nn_amx_dw_ok: st <= 4) */
        pt[r] = pad > r ? (pad - r + st - 1) / st : 0;
        y0[r] = st * pt[r] + r - pad; /* in [0, st) */
        nd[r] = n > y0[r] ? (n - y0[r] + st - 1) / st : 0;
        int taps = (k - r + st - 1) / st;
        per = imax(per, imax(nd[r] + pt[r], o + taps - 1 - pt[r]));
    }
    return per;
}

/* The canvas geometry of s (all kernels): Ho, Wo, st, phases, Hr, Wr, dmax. */
static void geom(const eqm_conv2d_shape *s, dw_plan *p)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->st = s->stride;
    p->Ho = (s->H + 2 * s->pad - s->kh) / s->stride + 1;
    p->Wo = (s->W + 2 * s->pad - s->kw) / s->stride + 1;
    p->nphx = s->kw < p->st ? s->kw : p->st;
    p->nph = (s->kh < p->st ? s->kh : p->st) * p->nphx;
    p->Hr = axis(s->H, s->kh, p->Ho, p->st, s->pad, p->pty, p->y0, p->Hs);
    p->Wr = axis(s->W, s->kw, p->Wo, p->st, s->pad, p->ptx, p->x0, p->Ws);
    /* the largest tap offset: phase (0, 0)'s last tap */
    p->dmax = (size_t)((s->kh + p->st - 1) / p->st - 1) * (size_t)p->Wr +
              (size_t)((s->kw + p->st - 1) / p->st - 1);
}

int nn_amx_dw_ok(const eqm_conv2d_shape *s)
{
    int nat = nn_bf16_native();
    /* a pointwise conv: on AMX a plain GEMM; on vdpbf16ps the canvas is the input itself
     * (fill 1), and a bf16 input (the ResNet's) is read as it is, where the GEMM route
     * widens it and packs it again (conv2d.c takes the GEMM for a float input) */
    if (!(s->flags & EQM_NN_BF16) || nat < 1 || s->stride < 1 ||
        (nat == 2 && s->stride == 1 && s->kh == 1 && s->kw == 1 && s->pad == 0) ||
        s->C_in % 16 != 0)
        return 0;
    if (nat == 2) /* AMX: stride 1 */
        return s->stride == 1;
    if (s->stride > DW_MAXST)
        return 0;
    /* vdpbf16ps: an Xt row holds the largest tap offset plus a step */
    dw_plan p;
    geom(s, &p);
    return p.dmax + 32 <= ZLC(ZLC_MAX);
}

static void plan_of(const eqm_conv2d_shape *s, dw_plan *p)
{
    geom(s, p);
    p->Ci = s->C_in;
    p->Co = s->C_out;
    p->Co16 = (int)up((size_t)s->C_out, 16);
    p->ncg = s->C_in / 16;
    p->nrg = s->kh * s->kw * p->ncg;
    p->rbg = p->Co16 == 16 ? 4 : 2;
    p->CB = p->Co16 == 16 ? 16 : 32;
    p->nrb = (p->nrg + p->rbg - 1) / p->rbg;
    p->ncb = (p->Co16 + p->CB - 1) / p->CB;
    p->Qn = (size_t)s->N * p->Hr * p->Wr;
    p->steps = (p->Qn + 31) / 32;
    p->zmm = nn_bf16_native() == 1;
    if (p->zmm) {
        /* LC = ZLC(zl) (a constant of the kernel instance): the largest whose chunk of
         * Xt (2 Ci LC bytes per phase) and D2 (2 Co16 (LC - dmax)) fits ZCHUNK_BYTES, at
         * least one step past dmax, no larger than the steps need */
        size_t lim = ZCHUNK_BYTES, need = 32 * p->steps + p->dmax;
        int zl = ZLC_MIN;
        while (zl < ZLC_MAX && ZLC(zl) < p->dmax + 32)
            zl++;
        while (zl < ZLC_MAX && ZLC(zl) < need &&
               2 * (size_t)p->nph * (size_t)p->Ci * ZLC(zl + 1) +
                       2 * (size_t)p->Co16 * (ZLC(zl + 1) - p->dmax) <=
                   lim)
            zl++;
        p->zl = zl;
        p->LC = ZLC(zl);
        p->chunk = (p->LC - p->dmax) / 32;
        if (p->chunk > p->steps)
            p->chunk = p->steps;
    } else {
        p->chunk = DW_CHUNK_BYTES / (64 * ((size_t)p->Ci + (size_t)p->Co16));
        if (p->chunk < 4)
            p->chunk = 4;
        if (p->chunk > p->steps)
            p->chunk = p->steps;
        p->LC = up(32 * p->chunk + p->dmax, 32);
    }
    p->G = (int)(p->steps < DW_GROUPS ? p->steps : DW_GROUPS);
    size_t nblk = (size_t)p->nrb * p->ncb, nt = (size_t)nn_threads();
    size_t S = (nt + (size_t)p->G - 1) / (size_t)p->G; /* G S tasks: >= the threads */
    p->S = (int)(S < nblk ? S : nblk);
    p->part_floats = nblk * BLOCK_FLOATS;
    p->xt_floats = (size_t)p->nph * (size_t)p->Ci * p->LC / 2;
    p->task_floats = p->xt_floats + up(16 * p->chunk * (size_t)p->Co16, 16);
}

double nn_amx_dw_fill(const eqm_conv2d_shape *s)
{
    dw_plan p;
    plan_of(s, &p);
    return (double)s->N * p.Ho * p.Wo / (32.0 * (double)p.steps);
}

size_t nn_amx_dw_ws_floats(const eqm_conv2d_shape *s)
{
    dw_plan p;
    plan_of(s, &p);
    return (size_t)p.G * (p.part_floats + (size_t)p.S * p.task_floats);
}

static inline __mmask16 mask16(int n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* 16 x 16 transpose of 32-bit elements: r[i] element j -> r[j] element i. */
ZMM_TARGET static inline void tr16(__m512 r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32((__m512i)r[i], (__m512i)r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32((__m512i)r[i], (__m512i)r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i ua = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);
        __m512i ub = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
        __m512i va = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
        __m512i vb = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
        r[j] = (__m512)_mm512_shuffle_i32x4(ua, va, 0x88);
        r[8 + j] = (__m512)_mm512_shuffle_i32x4(ua, va, 0xdd);
        r[4 + j] = (__m512)_mm512_shuffle_i32x4(ub, vb, 0x88);
        r[12 + j] = (__m512)_mm512_shuffle_i32x4(ub, vb, 0xdd);
    }
}

/* 16 x 16 transpose of 16-bit elements: r[i] element j -> r[j] element i (within each
 * 128-bit lane an 8 x 8 transpose of rows 0-7 and of rows 8-15, then the lanes joined). */
ZMM_TARGET static inline void tr16x16w(__m256i r[16])
{
    __m256i a[16], b[16];
    for (int h = 0; h < 16; h += 8) {
        for (int i = 0; i < 8; i += 2) {
            a[h + i] = _mm256_unpacklo_epi16(r[h + i], r[h + i + 1]);
            a[h + i + 1] = _mm256_unpackhi_epi16(r[h + i], r[h + i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            b[h + i] = _mm256_unpacklo_epi32(a[h + i], a[h + i + 2]);
            b[h + i + 1] = _mm256_unpackhi_epi32(a[h + i], a[h + i + 2]);
            b[h + i + 2] = _mm256_unpacklo_epi32(a[h + i + 1], a[h + i + 3]);
            b[h + i + 3] = _mm256_unpackhi_epi32(a[h + i + 1], a[h + i + 3]);
        }
        /* b[h + 0..3]: rows h..h+3, b[h + 4..7]: rows h+4..h+7; element pairs (0,1), (2,3),
         * (4,5), (6,7) of each lane */
        for (int i = 0; i < 4; i++) {
            a[h + 2 * i] = _mm256_unpacklo_epi64(b[h + i], b[h + 4 + i]);
            a[h + 2 * i + 1] = _mm256_unpackhi_epi64(b[h + i], b[h + 4 + i]);
        }
    }
    /* a[k] (k < 8): element k of rows 0-7 in lane 0, element 8 + k in lane 1; a[8 + k]:
     * the same of rows 8-15 */
    for (int k = 0; k < 8; k++) {
        r[k] = _mm256_permute2x128_si256(a[k], a[8 + k], 0x20);
        r[8 + k] = _mm256_permute2x128_si256(a[k], a[8 + k], 0x31);
    }
}

/* ------------------------------------------------------------- the two copies ---- */

/* The input pixel at position q of phase (ry, rx)'s canvas, or none (padding, gaps, past
 * the images): walks q. */
typedef struct {
    size_t R;   /* canvas row q / Wr */
    int c;      /* column q % Wr */
    int has;    /* R is an image row */
    size_t row; /* its first element in `in` (floats or bf16) */
    int ry;     /* the phase's row */
} xwalk;

static void xwalk_row(const dw_plan *p, xwalk *w)
{
    const eqm_conv2d_shape *s = p->s;
    const int pt = p->pty[w->ry];
    w->has = 0;
    if (w->R < (size_t)pt)
        return;
    size_t t = w->R - (size_t)pt, n = t / (size_t)p->Hr;
    int i = (int)(t % (size_t)p->Hr);
    if (n < (size_t)s->N && i < p->Hs[w->ry]) {
        w->has = 1;
        w->row = (n * (size_t)s->H + (size_t)(p->y0[w->ry] + p->st * i)) * (size_t)s->W *
                 (size_t)p->Ci;
    }
}

/* 16 channels of one pixel (element e of `in`) as floats: with bf16 input, the values
 * widened (exact), so the register holds what a float `in` would give, and the transpose
 * and conversion below make the same bf16 bits of it. */
ZMM_TARGET static inline __m512 load16(const dw_plan *p, size_t e)
{
    if (p->ib) {
        const uint16_t *b = (const uint16_t *)(const void *)p->in + e;
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)b));
        return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    }
    return _mm512_loadu_ps(p->in + e);
}

/* Xt rows (Ci of them, LC apart) of phase (ry, rx) at dst for positions [q0, q0 + nq),
 * nq % 16 == 0. Column c holds input column x0 + st (c - pt) (pt = ptx[rx], ...) where
 * 0 <= c - pt < Ws[rx]; at stride 1 ix = c - pad. */
ZMM_TARGET static void xt_chunk(const dw_plan *p, int ry, int rx, size_t q0, size_t nq,
                                uint16_t *dst)
{
    const size_t Ci = (size_t)p->Ci, LC = p->LC, sC = (size_t)p->st * Ci;
    const int pt = p->ptx[rx], Ws = p->Ws[rx];
    const size_t xo = (size_t)p->x0[rx] * Ci;
    xwalk w = {q0 / (size_t)p->Wr, (int)(q0 % (size_t)p->Wr), 0, 0, ry};
    xwalk_row(p, &w);
    for (size_t x = 0; x < nq; x += 16) {
        size_t src[16]; /* element of the pixel in `in`, or SIZE_MAX (zero) */
        int ix0 = w.c - pt;
        if (p->zmm && w.has && ix0 >= 0 && ix0 + 16 <= Ws && w.c + 16 < p->Wr) {
            /* vdpbf16ps: 16 pixels of one image row, as the walk below finds them */
            for (int i = 0; i < 16; i++)
                src[i] = w.row + xo + (size_t)(ix0 + i) * sC;
            w.c += 16;
        } else {
            for (int i = 0; i < 16; i++) {
                int ix = w.c - pt;
                src[i] = w.has && ix >= 0 && ix < Ws ? w.row + xo + (size_t)ix * sC : SIZE_MAX;
                if (++w.c == p->Wr) {
                    w.c = 0;
                    w.R++;
                    xwalk_row(p, &w);
                }
            }
        }
        if (p->zmm && p->ib) {
            /* bf16 input: a 16 x 16 transpose of the 16-bit values themselves */
            const uint16_t *b = (const uint16_t *)(const void *)p->in;
            for (size_t c0 = 0; c0 < Ci; c0 += 16) {
                __m256i r[16];
                for (int i = 0; i < 16; i++) {
                    const uint16_t *e = src[i] == SIZE_MAX ? NULL : b + src[i] + c0;
                    r[i] = e ? _mm256_loadu_si256((const __m256i *)(const void *)e)
                             : _mm256_setzero_si256();
                }
                tr16x16w(r);
                for (int j = 0; j < 16; j++)
                    _mm256_storeu_si256((__m256i *)(void *)(dst + (c0 + (size_t)j) * LC + x),
                                        r[j]);
            }
            continue;
        }
        for (size_t c0 = 0; c0 < Ci; c0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = src[i] != SIZE_MAX ? load16(p, src[i] + c0) : _mm512_setzero_ps();
            tr16(r);
            for (int j = 0; j < 16; j++)
                _mm256_storeu_si256((__m256i *)(void *)(dst + (c0 + (size_t)j) * LC + x),
                                    (__m256i)_mm512_cvtneps_pbh(r[j]));
        }
    }
}

/* D2 pairs [p0, p0 + np) (q = 2 p0 ...) at dst, Co16 uint32 each. */
ZMM_TARGET static void d2_chunk(const dw_plan *p, size_t p0, size_t np, uint32_t *dst)
{
    const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    const int Co = p->Co, Co16 = p->Co16, Wr = p->Wr, Hr = p->Hr;
    size_t q = 2 * p0, t = q / (size_t)Wr;
    int x = (int)(q % (size_t)Wr), y = (int)(t % (size_t)Hr);
    size_t n = t / (size_t)Hr;
    const float *r[2];
    for (size_t pi = 0; pi < np; pi++, dst += Co16) {
        if (p->zmm && n < (size_t)p->s->N && y < p->Ho && x + 1 < p->Wo) {
            /* vdpbf16ps: a run of pairs inside an output row (contiguous in dout) without
             * the per-position walk; the same values as the loop below */
            size_t run = (size_t)(p->Wo - x) / 2;
            if (run > np - pi)
                run = np - pi;
            const float *g = p->dout + ((n * (size_t)p->Ho + (size_t)y) * (size_t)p->Wo +
                                        (size_t)x) * (size_t)Co;
            uint32_t *o = dst;
            for (size_t k = 0; k < run; k++, g += 2 * (size_t)Co, o += Co16) {
                for (int c0 = 0; c0 < Co16; c0 += 16) {
                    __m512 x0, x1;
                    if (c0 + 16 <= Co) {
                        x0 = _mm512_loadu_ps(g + c0);
                        x1 = _mm512_loadu_ps(g + Co + c0);
                    } else {
                        __mmask16 m = mask16(Co - c0);
                        x0 = _mm512_maskz_loadu_ps(m, g + c0);
                        x1 = _mm512_maskz_loadu_ps(m, g + Co + c0);
                    }
                    _mm512_storeu_si512(
                        (void *)(o + c0),
                        _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(x1, x0)));
                }
            }
            pi += run - 1; /* the loop's increments add the last pair */
            dst += (run - 1) * (size_t)Co16;
            x += 2 * (int)run;
            while (x >= Wr) {
                x -= Wr;
                if (++y == Hr)
                    y = 0, n++;
            }
            continue;
        }
        for (int h = 0; h < 2; h++) {
            r[h] = n < (size_t)p->s->N && y < p->Ho && x < p->Wo
                       ? p->dout + ((n * (size_t)p->Ho + (size_t)y) * (size_t)p->Wo +
                                    (size_t)x) * (size_t)Co
                       : NULL;
            if (++x == Wr) {
                x = 0;
                if (++y == Hr)
                    y = 0, n++;
            }
        }
        for (int c0 = 0; c0 < Co16; c0 += 16) {
            __mmask16 m = mask16(Co - c0);
            __m512 x0 = r[0] ? _mm512_maskz_loadu_ps(m, r[0] + c0) : _mm512_setzero_ps();
            __m512 x1 = r[1] ? _mm512_maskz_loadu_ps(m, r[1] + c0) : _mm512_setzero_ps();
            _mm512_storeu_si512((void *)(dst + c0),
                                _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(x1, x0)));
        }
    }
}

/* ------------------------------------------------------------------ the kernel ---- */

/* Block (rb, cb) of C = dW^T over the chunk's ns steps (Xt chunk xt, D2 chunk d2),
 * accumulated in its partial c (4 KiB); first: start from zero. */
AMX_TARGET static void run_block(const dw_plan *p, float *c, int rb, int cb, const uint16_t *xt,
                                 const uint32_t *d2, size_t ns, int first)
{
    const int kw = p->s->kw;
    const uint16_t *a[4];
    int ma = p->nrg - rb * p->rbg < p->rbg ? p->nrg - rb * p->rbg : p->rbg;
    for (int i = 0; i < ma; i++) {
        int j = rb * p->rbg + i, t = j / p->ncg, cg = j % p->ncg;
        size_t d = (size_t)(t / kw) * (size_t)p->Wr + (size_t)(t % kw);
        a[i] = xt + (size_t)cg * 16 * p->LC + d;
    }
    const size_t as = 2 * p->LC, bs = 4 * (size_t)p->Co16;
    const uint32_t *bt = d2 + (size_t)cb * p->CB;
    const size_t bstep = 16 * (size_t)p->Co16;
    if (p->rbg == 4) { /* Co16 = 16: C(i) = tile i, rows 16 i of the 64 x 16 block */
        if (first) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
        } else {
            _tile_loadd(0, c, 64);
            _tile_loadd(1, c + 256, 64);
            _tile_loadd(2, c + 512, 64);
            _tile_loadd(3, c + 768, 64);
        }
        for (size_t k = 0; k < ns; k++, bt += bstep) {
            size_t o = 32 * k;
            _tile_loadd(6, bt, bs);
            _tile_loadd(4, a[0] + o, as);
            _tile_dpbf16ps(0, 4, 6);
            if (ma > 1) {
                _tile_loadd(5, a[1] + o, as);
                _tile_dpbf16ps(1, 5, 6);
            }
            if (ma > 2) {
                _tile_loadd(7, a[2] + o, as);
                _tile_dpbf16ps(2, 7, 6);
            }
            if (ma > 3) {
                _tile_loadd(4, a[3] + o, as);
                _tile_dpbf16ps(3, 4, 6);
            }
        }
        _tile_stored(0, c, 64);
        _tile_stored(1, c + 256, 64);
        _tile_stored(2, c + 512, 64);
        _tile_stored(3, c + 768, 64);
        return;
    }
    /* 32 x 32: C(i, j) = tile 2 i + j at c + 512 i + 16 j, row stride 128 bytes */
    const int nb = p->Co16 - cb * 32 < 32 ? 1 : 2;
    if (first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    } else {
        _tile_loadd(0, c, 128);
        _tile_loadd(1, c + 16, 128);
        _tile_loadd(2, c + 512, 128);
        _tile_loadd(3, c + 528, 128);
    }
    if (ma == 2 && nb == 2) {
        for (size_t k = 0; k < ns; k++, bt += bstep) {
            size_t o = 32 * k;
            _tile_loadd(4, a[0] + o, as);
            _tile_loadd(5, a[1] + o, as);
            _tile_loadd(6, bt, bs);
            _tile_loadd(7, bt + 16, bs);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    } else {
        for (size_t k = 0; k < ns; k++, bt += bstep) {
            size_t o = 32 * k;
            _tile_loadd(4, a[0] + o, as);
            _tile_loadd(6, bt, bs);
            _tile_dpbf16ps(0, 4, 6);
            if (nb > 1) {
                _tile_loadd(7, bt + 16, bs);
                _tile_dpbf16ps(1, 4, 7);
            }
            if (ma > 1) {
                _tile_loadd(5, a[1] + o, as);
                _tile_dpbf16ps(2, 5, 6);
                if (nb > 1)
                    _tile_dpbf16ps(3, 5, 7);
            }
        }
    }
    _tile_stored(0, c, 128);
    _tile_stored(1, c + 16, 128);
    _tile_stored(2, c + 512, 128);
    _tile_stored(3, c + 528, 128);
}

/* ------------------------------------------------------- the vdpbf16ps kernel ---- */

/* KB rows (channels c .. c + KB - 1 of one tap: a, a + LC, ...; a = the first row's Xt at
 * the tap offset) x CB vectors of 16 co (D2 at d, pairs ldd uint32 apart) over np pairs:
 * c[k ldc + 16 b ..] (+)= sum_p (Xt[k][2p], Xt[k][2p + 1]) . D2[p][16 b ..]. LC, KB, CB
 * are constants of each instance: every row's 4-byte read is one pointer plus a
 * displacement. */
ZMM_TARGET static inline __attribute__((always_inline)) void
zk_body(float *c, size_t ldc, const uint16_t *a, const uint32_t *d, size_t ldd, size_t np,
        int first, const char *pf, size_t npf, const size_t LC, const int KB, const int CB)
{
    __m512 acc[16][2];
#pragma GCC unroll 16
    for (int k = 0; k < KB; k++)
#pragma GCC unroll 2
        for (int b = 0; b < CB; b++)
            acc[k][b] =
                first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + (size_t)k * ldc + 16 * b);
    for (size_t i = 0; i < np; i++, a += 2, d += ldd) {
        if (i < npf)
            _mm_prefetch(pf + 64 * i, _MM_HINT_T1);
        __m512bh dv[2];
#pragma GCC unroll 2
        for (int b = 0; b < CB; b++)
            dv[b] = (__m512bh)_mm512_loadu_si512((const void *)(d + 16 * b));
#pragma GCC unroll 16
        for (int k = 0; k < KB; k++) {
            uint32_t u;
            memcpy(&u, a + (size_t)k * LC, sizeof u);
            __m512bh bc = (__m512bh)_mm512_set1_epi32((int)u);
#pragma GCC unroll 2
            for (int b = 0; b < CB; b++)
                acc[k][b] = _mm512_dpbf16_ps(acc[k][b], bc, dv[b]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < KB; k++)
#pragma GCC unroll 2
        for (int b = 0; b < CB; b++)
            _mm512_storeu_ps(c + (size_t)k * ldc + 16 * b, acc[k][b]);
}

typedef void (*zk_fn)(float *c, size_t ldc, const uint16_t *a, const uint32_t *d, size_t ldd,
                      size_t np, int first, const char *pf, size_t npf);
#define ZK_FN(KB, CB, L)                                                                      \
    ZMM_TARGET static void zk_##KB##x##CB##_##L(float *c, size_t ldc, const uint16_t *a,      \
                                                const uint32_t *d, size_t ldd, size_t np,     \
                                                int first, const char *pf, size_t npf)        \
    {                                                                                         \
        zk_body(c, ldc, a, d, ldd, np, first, pf, npf, ZLC(L), KB, CB);                       \
    }
#define ZK_LCS(KB, CB)                                                                        \
    ZK_FN(KB, CB, 8) ZK_FN(KB, CB, 9) ZK_FN(KB, CB, 10) ZK_FN(KB, CB, 11) ZK_FN(KB, CB, 12)   \
    ZK_FN(KB, CB, 13) ZK_FN(KB, CB, 14)
ZK_LCS(16, 1)
ZK_LCS(8, 2)
/* [shape: 0 16 x 1, 1 8 x 2][log2 LC - ZLC_MIN] */
static const zk_fn zk_tab[2][ZLC_N] = {
    {zk_16x1_8, zk_16x1_9, zk_16x1_10, zk_16x1_11, zk_16x1_12, zk_16x1_13, zk_16x1_14},
    {zk_8x2_8, zk_8x2_9, zk_8x2_10, zk_8x2_11, zk_8x2_12, zk_8x2_13, zk_8x2_14},
};

/* The next chunk's source lines (x, then dout), handed out to the kernel calls of this
 * chunk one line per pair step (prefetched to L2 while the products run). */
typedef struct {
    const char *a, *b;
    size_t na, nb; /* lines */
} zpf;

static void zpf_take(zpf *z, size_t want, const char **pp, size_t *n)
{
    if (!z->na) {
        z->a = z->b, z->na = z->nb;
        z->nb = 0;
    }
    size_t m = z->na < want ? z->na : want;
    *pp = z->a, *n = m;
    if (m) /* (z->a may be null with nothing left) */
        z->a += 64 * m, z->na -= m;
}

/* The first pixel of `in` at or after canvas position q of phase (0, 0) (N H W past the
 * last; strided: the other phases' rows st i + 1 .. of the last canvas row are left out,
 * a prefetch range only). */
static size_t in_pix(const dw_plan *p, size_t q)
{
    const eqm_conv2d_shape *s = p->s;
    const size_t HW = (size_t)s->H * (size_t)s->W, tot = (size_t)s->N * HW;
    size_t R = q / (size_t)p->Wr;
    int c = (int)(q % (size_t)p->Wr);
    if (R < (size_t)p->pty[0])
        return 0;
    size_t t = R - (size_t)p->pty[0], n = t / (size_t)p->Hr, i = t % (size_t)p->Hr;
    if (n >= (size_t)s->N)
        return tot;
    if (i >= (size_t)p->Hs[0])
        return (n + 1) * HW;
    size_t iy = (size_t)p->y0[0] + (size_t)p->st * i;
    int j = c - p->ptx[0] < 0 ? 0 : c - p->ptx[0];
    if (j >= p->Ws[0])
        return n * HW + (iy + 1) * (size_t)s->W;
    return n * HW + iy * (size_t)s->W + (size_t)(p->x0[0] + p->st * j);
}

/* The first output pixel at or after canvas position q. */
static size_t out_pix(const dw_plan *p, size_t q)
{
    const size_t HoWo = (size_t)p->Ho * (size_t)p->Wo, HrWr = (size_t)p->Hr * (size_t)p->Wr;
    size_t n = q / HrWr, rem = q % HrWr, y = rem / (size_t)p->Wr, x = rem % (size_t)p->Wr;
    if (n >= (size_t)p->s->N)
        return (size_t)p->s->N * HoWo;
    if (y >= (size_t)p->Ho)
        return (n + 1) * HoWo;
    if (x >= (size_t)p->Wo)
        return n * HoWo + (y + 1) * (size_t)p->Wo;
    return n * HoWo + y * (size_t)p->Wo + x;
}

/* The lines of x and dout that the chunk at positions [qa, qb) reads. */
static void zpf_chunk(const dw_plan *p, size_t qa, size_t qb, zpf *z)
{
    const size_t es = p->ib ? 2 : 4, cx = (size_t)p->Ci * es, cd = (size_t)p->Co * 4;
    uintptr_t x0 = (uintptr_t)(const void *)p->in + in_pix(p, qa) * cx;
    uintptr_t x1 = (uintptr_t)(const void *)p->in + in_pix(p, qb + p->dmax) * cx;
    uintptr_t d0 = (uintptr_t)(const void *)p->dout + out_pix(p, qa) * cd;
    uintptr_t d1 = (uintptr_t)(const void *)p->dout + out_pix(p, qb) * cd;
    x0 &= ~(uintptr_t)63, d0 &= ~(uintptr_t)63;
    z->a = (const char *)x0, z->na = x1 > x0 ? (x1 - x0 + 63) / 64 : 0;
    z->b = (const char *)d0, z->nb = d1 > d0 ? (d1 - d0 + 63) / 64 : 0;
}

/* Block (rb, cb) of C (the AMX kernel's blocks and partial layout) over pairs [p0, p0 + np)
 * of the chunk: per row group (16 channels of one tap), 16 x 1 vectors of co, or two
 * 8 x 2 where the block has 32 co. */
ZMM_TARGET static void zrun_block(const dw_plan *p, float *c, int rb, int cb,
                                  const uint16_t *xt, const uint32_t *d2, size_t p0, size_t np,
                                  int first, zpf *z)
{
    const int kw = p->s->kw, st = p->st;
    const int ma = p->nrg - rb * p->rbg < p->rbg ? p->nrg - rb * p->rbg : p->rbg;
    const int nb = p->CB == 32 && p->Co16 - cb * 32 >= 32 ? 2 : 1;
    const size_t ldc = (size_t)p->CB, ldd = (size_t)p->Co16;
    const uint32_t *d = d2 + p0 * ldd + (size_t)cb * p->CB;
    for (int i = 0; i < ma; i++) {
        /* tap (ky, kx): phase (ky % st, kx % st), offset (ky / st) Wr + kx / st there */
        int j = rb * p->rbg + i, t = j / p->ncg, cg = j % p->ncg, ky = t / kw, kx = t % kw;
        size_t ph = (size_t)((ky % st) * p->nphx + kx % st);
        size_t dt = (size_t)(ky / st) * (size_t)p->Wr + (size_t)(kx / st);
        const uint16_t *a =
            xt + (ph * (size_t)p->Ci + (size_t)cg * 16) * p->LC + dt + 2 * p0;
        float *ci = c + (size_t)i * 16 * ldc;
        const char *pf;
        size_t npf;
        zpf_take(z, np, &pf, &npf);
        if (nb == 2) {
            zk_fn f = zk_tab[1][p->zl - ZLC_MIN];
            f(ci, ldc, a, d, ldd, np, first, pf, npf);
            zpf_take(z, np, &pf, &npf);
            f(ci + 8 * ldc, ldc, a + 8 * p->LC, d, ldd, np, first, pf, npf);
        } else
            zk_tab[0][p->zl - ZLC_MIN](ci, ldc, a, d, ldd, np, first, pf, npf);
    }
}

/* Task item it = group g S + slice: its steps [s0, s1), its blocks [b0, b1), its group's
 * partial and its own Xt and D2 buffers. */
typedef struct {
    size_t s0, s1, b0, b1;
    float *part;
    uint16_t *xt;
    uint32_t *d2;
} dw_task;

static void task_of(const dw_plan *p, size_t it, dw_task *t)
{
    const size_t nblk = (size_t)p->nrb * p->ncb;
    size_t g = it / (size_t)p->S, sl = it % (size_t)p->S;
    t->s0 = g * p->steps / (size_t)p->G, t->s1 = (g + 1) * p->steps / (size_t)p->G;
    t->b0 = sl * nblk / (size_t)p->S, t->b1 = (sl + 1) * nblk / (size_t)p->S;
    t->part = p->ws + g * p->part_floats;
    float *tb = p->ws + (size_t)p->G * p->part_floats + it * p->task_floats;
    t->xt = (uint16_t *)(void *)tb;
    t->d2 = (uint32_t *)(void *)(tb + p->xt_floats);
}

/* dw_body on the vdpbf16ps kernel: the same tasks, groups, chunks and partials; within a
 * chunk, the blocks walk ZSUB pairs at a time (so that a block's D2 columns stay in L1).
 * Each element still sums its pairs in order: the bits do not depend on ZSUB. */
static void zdw_body(void *vc, size_t b, size_t e)
{
    const dw_plan *p = vc;
    const size_t sub = ZSUB;
    for (size_t it = b; it < e; it++) {
        dw_task t;
        task_of(p, it, &t);
        const size_t s0 = t.s0, s1 = t.s1, b0 = t.b0, b1 = t.b1;
        float *part = t.part;
        uint16_t *xt = t.xt;
        uint32_t *d2 = t.d2;
        for (size_t k0 = s0; k0 < s1; k0 += p->chunk) {
            size_t ns = s1 - k0 < p->chunk ? s1 - k0 : p->chunk;
            for (int ph = 0; ph < p->nph; ph++)
                xt_chunk(p, ph / p->nphx, ph % p->nphx, 32 * k0, up(32 * ns + p->dmax, 16),
                         xt + (size_t)ph * (size_t)p->Ci * p->LC);
            d2_chunk(p, 16 * k0, 16 * ns, d2);
            zpf z = {0};
            if (k0 + ns < s1) {
                size_t n2 = s1 - k0 - ns < p->chunk ? s1 - k0 - ns : p->chunk;
                zpf_chunk(p, 32 * (k0 + ns), 32 * (k0 + ns + n2), &z);
            }
            for (size_t q0 = 0; q0 < 16 * ns; q0 += sub) {
                size_t nq = 16 * ns - q0 < sub ? 16 * ns - q0 : sub;
                for (size_t bi = b0; bi < b1; bi++)
                    zrun_block(p, part + bi * BLOCK_FLOATS, (int)(bi / (size_t)p->ncb),
                               (int)(bi % (size_t)p->ncb), xt, d2, q0, nq,
                               k0 == s0 && q0 == 0, &z);
            }
        }
    }
}

/* Task = group g (its steps) x slice (its blocks): item g S + slice. Per chunk of the
 * group's steps: the chunk's Xt and D2 into the task's buffers, then its blocks. */
static void dw_body(void *vc, size_t b, size_t e)
{
    const dw_plan *p = vc;
    nn_amx_begin();
    for (size_t it = b; it < e; it++) {
        dw_task t;
        task_of(p, it, &t);
        const size_t s0 = t.s0, s1 = t.s1, b0 = t.b0, b1 = t.b1;
        float *part = t.part;
        uint16_t *xt = t.xt;
        uint32_t *d2 = t.d2;
        for (size_t k0 = s0; k0 < s1; k0 += p->chunk) {
            size_t ns = s1 - k0 < p->chunk ? s1 - k0 : p->chunk;
            xt_chunk(p, 0, 0, 32 * k0, up(32 * ns + p->dmax, 16), xt);
            d2_chunk(p, 16 * k0, 16 * ns, d2);
            for (size_t bi = b0; bi < b1; bi++)
                run_block(p, part + bi * BLOCK_FLOATS, (int)(bi / (size_t)p->ncb),
                          (int)(bi % (size_t)p->ncb), xt, d2, ns, k0 == s0);
        }
    }
    nn_amx_end();
}

/* dw[co][kcol] += (((partial 0 + partial 1) + partial 2) + ...) (group order), item = one
 * block (rb, cb): 16 x 16 sub-blocks summed, transposed, added to 16 rows of dw. */
ZMM_TARGET static void sum_body(void *vc, size_t b, size_t e)
{
    const dw_plan *p = vc;
    const size_t K = (size_t)p->nrg * 16, R = (size_t)p->rbg * 16, CB = (size_t)p->CB;
    for (size_t bi = b; bi < e; bi++) {
        size_t k0 = bi / (size_t)p->ncb * R, c0 = bi % (size_t)p->ncb * CB;
        size_t nr = K - k0 < R ? K - k0 : R, nc = (size_t)p->Co - c0 < CB ? p->Co - c0 : CB;
        const float *blk = p->ws + bi * BLOCK_FLOATS;
        for (size_t r0 = 0; r0 < nr; r0 += 16) /* nr % 16 == 0 */
            for (size_t j0 = 0; j0 < nc; j0 += 16) {
                __m512 v[16];
                for (int i = 0; i < 16; i++) {
                    const float *q = blk + (r0 + (size_t)i) * CB + j0;
                    v[i] = _mm512_load_ps(q);
                    for (int g = 1; g < p->G; g++)
                        v[i] = _mm512_add_ps(v[i], _mm512_load_ps(q + (size_t)g * p->part_floats));
                }
                tr16(v); /* v[j]: column j0 + j (co), rows r0 .. r0 + 15 (kcol) */
                for (size_t j = 0; j < 16 && j0 + j < nc; j++) {
                    float *d = p->dw + (c0 + j0 + j) * K + k0 + r0;
                    _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), v[j]));
                }
            }
    }
}

void nn_amx_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout,
               const float *in, float *ws)
{
    dw_plan p;
    plan_of(s, &p);
    p.in = in;
    p.ib = (s->flags & EQM_NN_IN_BF16) != 0;
    p.dout = dout;
    p.dw = dw;
    p.ws = ws;
    nn_parallel(h, (size_t)p.G * p.S, 1, p.zmm ? zdw_body : dw_body, &p);
    nn_parallel(h, (size_t)p.nrb * p.ncb, 4, sum_body, &p);
}

#else /* no x86-64 intrinsics: never picked (nn_bf16_native() is 0 there) */

int nn_amx_dw_ok(const eqm_conv2d_shape *s)
{
    (void)s;
    return 0;
}
double nn_amx_dw_fill(const eqm_conv2d_shape *s)
{
    (void)s;
    return 0;
}
size_t nn_amx_dw_ws_floats(const eqm_conv2d_shape *s)
{
    (void)s;
    return 0;
}
void nn_amx_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout,
               const float *in, float *ws)
{
    (void)h, (void)s, (void)dw, (void)dout, (void)in, (void)ws;
}
#endif
