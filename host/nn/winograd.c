/* host/nn/winograd.c: Winograd F(2x2, 3x3) convolution for 3x3 stride-1 conv2d (NHWC,
 * OHWI), forward and dW; conv2d.c also runs dX through the forward with the flipped,
 * transposed kernel (a stride-1 dX is a convolution of dout).
 *
 * Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). Each 2x2 block
 * of outputs comes from a 4x4 input tile d: Y = A^T [ (G g G^T) . (B^T d B) ] A, so the
 * 36 multiplies of a direct 2x2 block become 16: 2.25x fewer multiply-adds, done as 16
 * sgemm calls, one per tile position xi:  M[xi] (R, Co) = V[xi] (R, Ci) @ U[xi]^T, U[xi] stored (Co, Ci).
 * Legend: R tiles (images x th x tw, th = ceil(Ho/2)), V input transforms, U weight
 * transforms, M products, xi in 0..15 (4x4). Padding taps are zeros in d (the border
 * tiles' extra outputs are computed and dropped).
 * dW is the exact adjoint: dM = A dY A^T per tile, dU[xi] (Co, Ci) += dM[xi]^T @ V[xi],
 * dw += G^T dU G (per ci, co).
 * The transforms are vectorised over 8 channels (GCC vector extension, AVX2 clone picked at
 * run time), which made this path 1.4-1.9x faster than im2col+sgemm on the 32x32, 16x16
 * and 8x8 ResNet layers (bench/README.md); scalar transforms were 1.3-2x SLOWER.
 * Numerics: the transforms use only 0, +-1, +-1/2, so F(2x2, 3x3) stays within ~1e-6
 * relative of the direct sum (the FD and PyTorch tests pin it).
 * Workspace: from conv2d.c's host-owned buffer, chunked by whole images (V + M of a chunk
 * about 12 MiB; EQM_WINO_CHUNK_KIB overrides it for benchmarks: 2-12 MiB measured within
 * ~10% of each other, 32 MiB up to 25% slower on the 32x32 layers).
 * Left out: F(4x4, 3x3) (larger tiles, worse conditioning), strided or non-3x3 kernels.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

#define WINO_CHUNK_DEFAULT (3u << 20) /* V + M of one chunk, floats (12 MiB) */
static size_t chunk_floats_v;

/* Chunk target; EQM_WINO_CHUNK_KIB overrides it (benchmarks). */
static size_t wino_chunk_floats(void)
{
    if (!chunk_floats_v) {
        const char *e = getenv("EQM_WINO_CHUNK_KIB");
        long k = e ? atol(e) : 0;
        chunk_floats_v = k > 0 ? (size_t)k * 256 : WINO_CHUNK_DEFAULT;
    }
    return chunk_floats_v;
}

/* 8-float vectors (GCC/Clang vector extension): the transforms run over 8 channels at a
 * time; the avx2 clone of each body makes them one ymm register. Unaligned access through
 * memcpy. Channel counts that are not a multiple of 8 finish with a scalar tail. */
#pragma GCC diagnostic ignored "-Wpsabi" /* v8 helpers are static inline: no ABI at stake */
typedef float v8 __attribute__((vector_size(32)));
static inline v8 ld8(const float *p)
{
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

/* Reads of padding taps / missing outputs point here (branch-free inner loops). */
static const float zero_row[NN_WINO_MAX_C];

typedef struct {
    const eqm_conv2d_shape *s;
    int Ho, Wo, th, tw;
    size_t n0, R;       /* first image of the chunk, tiles in the chunk */
    const float *in;    /* (N, H, W, Ci) */
    float *V;           /* (16, R, Ci) */
    float *M;           /* (16, R, Co) */
    float *out;         /* (N, Ho, Wo, Co) */
    const float *dout;  /* (N, Ho, Wo, Co) for dW */
    int accumulate;
} wino_ctx;

/* V[xi][r][:] = B^T d B for the tiles r in [b, e). B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0;
 * 0 1 0 -1]. */
__attribute__((target_clones("avx2", "default"))) static void wino_in_body(void *vc, size_t b,
                                                                          size_t e)
{
    wino_ctx *c = vc;
    const eqm_conv2d_shape *s = c->s;
    const size_t Ci = (size_t)s->C_in, R = c->R, T = (size_t)c->th * c->tw;
    for (size_t r = b; r < e; r++) {
        size_t n = c->n0 + r / T, t = r % T;
        int y0 = (int)(t / (size_t)c->tw) * 2 - s->pad, x0 = (int)(t % (size_t)c->tw) * 2 - s->pad;
        const float *row[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                int y = y0 + i, x = x0 + j;
                row[i][j] = (y < 0 || y >= s->H || x < 0 || x >= s->W)
                                ? zero_row
                                : c->in + ((n * s->H + y) * s->W + x) * Ci;
            }
        float *v[16];
        for (int k = 0; k < 16; k++)
            v[k] = c->V + ((size_t)k * R + r) * Ci;
        size_t ci = 0;
        for (; ci + 8 <= Ci; ci += 8) {
            v8 d[4][4], tmp[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    d[i][j] = ld8(row[i][j] + ci);
            for (int j = 0; j < 4; j++) { /* tmp = B^T d */
                tmp[0][j] = d[0][j] - d[2][j];
                tmp[1][j] = d[1][j] + d[2][j];
                tmp[2][j] = d[2][j] - d[1][j];
                tmp[3][j] = d[1][j] - d[3][j];
            }
            for (int i = 0; i < 4; i++) { /* (B^T d) B */
                st8(v[i * 4 + 0] + ci, tmp[i][0] - tmp[i][2]);
                st8(v[i * 4 + 1] + ci, tmp[i][1] + tmp[i][2]);
                st8(v[i * 4 + 2] + ci, tmp[i][2] - tmp[i][1]);
                st8(v[i * 4 + 3] + ci, tmp[i][1] - tmp[i][3]);
            }
        }
        for (; ci < Ci; ci++) {
            float d[4][4], tmp[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    d[i][j] = row[i][j][ci];
            for (int j = 0; j < 4; j++) {
                tmp[0][j] = d[0][j] - d[2][j];
                tmp[1][j] = d[1][j] + d[2][j];
                tmp[2][j] = d[2][j] - d[1][j];
                tmp[3][j] = d[1][j] - d[3][j];
            }
            for (int i = 0; i < 4; i++) {
                v[i * 4 + 0][ci] = tmp[i][0] - tmp[i][2];
                v[i * 4 + 1][ci] = tmp[i][1] + tmp[i][2];
                v[i * 4 + 2][ci] = tmp[i][2] - tmp[i][1];
                v[i * 4 + 3][ci] = tmp[i][1] - tmp[i][3];
            }
        }
    }
}

/* out = A^T M A for tiles [b, e) (+= when accumulate). A^T = [1 1 1 0; 0 1 -1 -1]. */
__attribute__((target_clones("avx2", "default"))) static void wino_out_body(void *vc, size_t b,
                                                                           size_t e)
{
    wino_ctx *c = vc;
    const eqm_conv2d_shape *s = c->s;
    const size_t Co = (size_t)s->C_out, R = c->R, T = (size_t)c->th * c->tw;
    for (size_t r = b; r < e; r++) {
        size_t n = c->n0 + r / T, t = r % T;
        int y0 = (int)(t / (size_t)c->tw) * 2, x0 = (int)(t % (size_t)c->tw) * 2;
        const float *m[16];
        for (int k = 0; k < 16; k++)
            m[k] = c->M + ((size_t)k * R + r) * Co;
        float *o[2][2];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                o[i][j] = (y0 + i < c->Ho && x0 + j < c->Wo)
                              ? c->out + ((n * c->Ho + y0 + i) * c->Wo + x0 + j) * Co
                              : NULL;
        size_t co = 0;
        for (; co + 8 <= Co; co += 8) {
            v8 tmp[2][4], y[2][2];
            for (int j = 0; j < 4; j++) { /* A^T M */
                v8 m0 = ld8(m[j] + co), m1 = ld8(m[4 + j] + co), m2 = ld8(m[8 + j] + co),
                   m3 = ld8(m[12 + j] + co);
                tmp[0][j] = m0 + m1 + m2;
                tmp[1][j] = m1 - m2 - m3;
            }
            for (int i = 0; i < 2; i++) {
                y[i][0] = tmp[i][0] + tmp[i][1] + tmp[i][2];
                y[i][1] = tmp[i][1] - tmp[i][2] - tmp[i][3];
            }
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    if (o[i][j])
                        st8(o[i][j] + co, c->accumulate ? ld8(o[i][j] + co) + y[i][j] : y[i][j]);
        }
        for (; co < Co; co++) {
            float tmp[2][4];
            for (int j = 0; j < 4; j++) {
                float m0 = m[j][co], m1 = m[4 + j][co], m2 = m[8 + j][co], m3 = m[12 + j][co];
                tmp[0][j] = m0 + m1 + m2;
                tmp[1][j] = m1 - m2 - m3;
            }
            for (int i = 0; i < 2; i++) {
                float y0v = tmp[i][0] + tmp[i][1] + tmp[i][2];
                float y1v = tmp[i][1] - tmp[i][2] - tmp[i][3];
                if (o[i][0])
                    o[i][0][co] = c->accumulate ? o[i][0][co] + y0v : y0v;
                if (o[i][1])
                    o[i][1][co] = c->accumulate ? o[i][1][co] + y1v : y1v;
            }
        }
    }
}

/* M[xi][r][:] = A dY A^T (the adjoint of the output transform) for tiles [b, e). */
__attribute__((target_clones("avx2", "default"))) static void wino_dout_body(void *vc, size_t b,
                                                                            size_t e)
{
    wino_ctx *c = vc;
    const eqm_conv2d_shape *s = c->s;
    const size_t Co = (size_t)s->C_out, R = c->R, T = (size_t)c->th * c->tw;
    for (size_t r = b; r < e; r++) {
        size_t n = c->n0 + r / T, t = r % T;
        int y0 = (int)(t / (size_t)c->tw) * 2, x0 = (int)(t % (size_t)c->tw) * 2;
        float *m[16];
        for (int k = 0; k < 16; k++)
            m[k] = c->M + ((size_t)k * R + r) * Co;
        const float *g[2][2];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                g[i][j] = (y0 + i < c->Ho && x0 + j < c->Wo)
                              ? c->dout + ((n * c->Ho + y0 + i) * c->Wo + x0 + j) * Co
                              : zero_row;
        size_t co = 0;
        for (; co + 8 <= Co; co += 8) {
            v8 d00 = ld8(g[0][0] + co), d01 = ld8(g[0][1] + co);
            v8 d10 = ld8(g[1][0] + co), d11 = ld8(g[1][1] + co);
            v8 a[4][2] = {{d00, d01}, {d00 + d10, d01 + d11}, {d00 - d10, d01 - d11},
                          {-d10, -d11}};
            for (int i = 0; i < 4; i++) {
                st8(m[i * 4 + 0] + co, a[i][0]);
                st8(m[i * 4 + 1] + co, a[i][0] + a[i][1]);
                st8(m[i * 4 + 2] + co, a[i][0] - a[i][1]);
                st8(m[i * 4 + 3] + co, -a[i][1]);
            }
        }
        for (; co < Co; co++) {
            float d00 = g[0][0][co], d01 = g[0][1][co];
            float d10 = g[1][0][co], d11 = g[1][1][co];
            /* A = [1 0; 1 1; 1 -1; 0 -1]: rows of A dY */
            float a[4][2] = {{d00, d01},
                             {d00 + d10, d01 + d11},
                             {d00 - d10, d01 - d11},
                             {-d10, -d11}};
            for (int i = 0; i < 4; i++) {
                m[i * 4 + 0][co] = a[i][0];
                m[i * 4 + 1][co] = a[i][0] + a[i][1];
                m[i * 4 + 2][co] = a[i][0] - a[i][1];
                m[i * 4 + 3][co] = -a[i][1];
            }
        }
    }
}

/* G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] (written out in the loops below) */

/* U[xi][co][ci] = (G g G^T)[xi] for g = w[co][:][:][ci] (ci innermost: contiguous loads
 * and stores, vectorised over ci; the GEMMs then take U transposed). */
typedef struct {
    const float *w;
    float *U;
    float *dw;
    int Ci, Co;
} wt_ctx;

/* Tasks: output channels co in [cb, ce) (parallel_for over C_out). */
NN_HOT static void wino_weights_body(void *vc, size_t cb, size_t ce)
{
    const wt_ctx *c = vc;
    const float *w = c->w;
    float *U = c->U;
    const int Ci = c->Ci, Co = c->Co;
    for (size_t co = cb; co < ce; co++) {
        const float *g = w + co * 9 * (size_t)Ci; /* g[a][b][ci] */
        for (size_t ci = 0; ci < (size_t)Ci; ci++) {
            float t[4][3];
            for (int b = 0; b < 3; b++) {
                float g0 = g[(0 * 3 + b) * (size_t)Ci + ci], g1 = g[(1 * 3 + b) * (size_t)Ci + ci],
                      g2 = g[(2 * 3 + b) * (size_t)Ci + ci];
                t[0][b] = g0;
                t[1][b] = 0.5f * (g0 + g1 + g2);
                t[2][b] = 0.5f * (g0 - g1 + g2);
                t[3][b] = g2;
            }
            for (int i = 0; i < 4; i++) {
                float *u = U + ((size_t)(i * 4) * Co + co) * Ci + ci;
                size_t st = (size_t)Co * Ci;
                u[0] = t[i][0];
                u[st] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                u[2 * st] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                u[3 * st] = t[i][2];
            }
        }
    }
}

/* dw[co][a][b][ci] += sum_ij G[i][a] dU[ij][co][ci] G[j][b] (the adjoint of wino_weights). */
NN_HOT static void wino_dweights_body(void *vc, size_t cb, size_t ce)
{
    const wt_ctx *c = vc;
    const float *dU = c->U;
    float *dw = c->dw;
    const int Ci = c->Ci, Co = c->Co;
    const size_t st = (size_t)Co * Ci;
    for (size_t co = cb; co < ce; co++) {
        float *d = dw + co * 9 * (size_t)Ci;
        for (size_t ci = 0; ci < (size_t)Ci; ci++) {
            float u[4][4], t[3][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    u[i][j] = dU[(size_t)(i * 4 + j) * st + co * Ci + ci];
            for (int j = 0; j < 4; j++) { /* G^T u: rows a = 0..2 */
                t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                t[1][j] = 0.5f * (u[1][j] - u[2][j]);
                t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            for (int a2 = 0; a2 < 3; a2++) { /* (G^T u) G: columns b = 0..2 */
                d[(a2 * 3 + 0) * (size_t)Ci + ci] += t[a2][0] + 0.5f * (t[a2][1] + t[a2][2]);
                d[(a2 * 3 + 1) * (size_t)Ci + ci] += 0.5f * (t[a2][1] - t[a2][2]);
                d[(a2 * 3 + 2) * (size_t)Ci + ci] += 0.5f * (t[a2][1] + t[a2][2]) + t[a2][3];
            }
        }
    }
}

size_t nn_wino_ws_floats(const eqm_conv2d_shape *s)
{
    int Ho = s->H + 2 * s->pad - 2, Wo = s->W + 2 * s->pad - 2;
    size_t T = (size_t)((Ho + 1) / 2) * ((Wo + 1) / 2);
    size_t per_img = 16 * T * (size_t)(s->C_in + s->C_out);
    size_t nt = wino_chunk_floats() / per_img;
    if (nt < 1)
        nt = 1;
    if (nt > (size_t)s->N)
        nt = (size_t)s->N;
    return nt * per_img + 16 * (size_t)s->C_in * s->C_out;
}

static size_t chunk_images(const eqm_conv2d_shape *s, size_t T)
{
    size_t per_img = 16 * T * (size_t)(s->C_in + s->C_out);
    size_t nt = wino_chunk_floats() / per_img;
    if (nt < 1)
        nt = 1;
    if (nt > (size_t)s->N)
        nt = (size_t)s->N;
    return nt;
}

/* out (=, or += when accumulate) = conv3x3 stride 1 (in, w). ws: nn_wino_ws_floats. */
void nn_wino_forward(eqm_host *h, const eqm_conv2d_shape *s, float *out, const float *in,
                     const float *w, int accumulate, float *ws)
{
    wino_ctx c = {.s = s, .in = in, .out = out, .accumulate = accumulate};
    c.Ho = s->H + 2 * s->pad - 2;
    c.Wo = s->W + 2 * s->pad - 2;
    c.th = (c.Ho + 1) / 2;
    c.tw = (c.Wo + 1) / 2;
    const size_t T = (size_t)c.th * c.tw, Ci = (size_t)s->C_in, Co = (size_t)s->C_out;
    size_t nt = chunk_images(s, T);
    float *U = ws;
    wt_ctx wc = {w, U, NULL, s->C_in, s->C_out};
    nn_parallel(h, Co, 8, wino_weights_body, &wc);
    for (size_t n0 = 0; n0 < (size_t)s->N; n0 += nt) {
        size_t k = (size_t)s->N - n0 < nt ? (size_t)s->N - n0 : nt;
        c.n0 = n0;
        c.R = k * T;
        c.V = U + 16 * Ci * Co;
        c.M = c.V + 16 * c.R * Ci;
        nn_parallel(h, c.R, 16, wino_in_body, &c);
        nn_gemm_batch(h, s->flags, 16, 0, 1, (int)c.R, (int)Co, (int)Ci, 1.f, c.V, (int)Ci,
                      c.R * Ci, U, (int)Ci, Ci * Co, 0.f, c.M, (int)Co, c.R * Co);
        nn_parallel(h, c.R, 16, wino_out_body, &c);
    }
}

/* dw += dW of conv3x3 stride 1. ws: nn_wino_ws_floats. */
void nn_wino_dw(eqm_host *h, const eqm_conv2d_shape *s, float *dw, const float *dout,
                const float *in, float *ws)
{
    wino_ctx c = {.s = s, .in = in, .dout = dout};
    c.Ho = s->H + 2 * s->pad - 2;
    c.Wo = s->W + 2 * s->pad - 2;
    c.th = (c.Ho + 1) / 2;
    c.tw = (c.Wo + 1) / 2;
    const size_t T = (size_t)c.th * c.tw, Ci = (size_t)s->C_in, Co = (size_t)s->C_out;
    size_t nt = chunk_images(s, T);
    float *dU = ws;
    memset(dU, 0, sizeof(float) * 16 * Ci * Co);
    for (size_t n0 = 0; n0 < (size_t)s->N; n0 += nt) {
        size_t k = (size_t)s->N - n0 < nt ? (size_t)s->N - n0 : nt;
        c.n0 = n0;
        c.R = k * T;
        c.V = dU + 16 * Ci * Co;
        c.M = c.V + 16 * c.R * Ci;
        nn_parallel(h, c.R, 16, wino_in_body, &c);
        nn_parallel(h, c.R, 16, wino_dout_body, &c);
        nn_gemm_batch(h, s->flags, 16, 1, 0, (int)Co, (int)Ci, (int)c.R, 1.f, c.M, (int)Co,
                      c.R * Co, c.V, (int)Ci, c.R * Ci, 1.f, dU, (int)Ci, Ci * Co);
    }
    wt_ctx wc = {NULL, dU, dw, s->C_in, s->C_out};
    nn_parallel(h, Co, 8, wino_dweights_body, &wc);
}
