/* tests/nn/check_nn_ref.c: the host nn ops against PyTorch 1.13 reference values
 * (tests/nn/fixtures/nn_ref.bin, written by tests/nn/gen_fixtures.py).
 *
 * Tolerances: float32 on both sides with different summation orders: conv and linear have a
 * floor derived from each element's magnitude (the same reduction over absolute values,
 * expect_close_mag; see run_conv); BN, losses atol 1e-4 + rtol 1e-3 (normalisation divides
 * by small stds).
 * Conv cases run in algo 0 (default: Winograd F(2x2, 3x3) where it applies, e.g.
 * conv3x3s1_wide), 1 (im2col/col2im only), 2 (stride-1 dX as a forward conv), 3
 * (Winograd wherever it applies), 4 (the direct kernel wherever it applies: C_out a
 * multiple of 16, e.g. conv3x3s1_wide; test_conv_direct_vs_im2col covers more shapes), 5
 * (in fp32 the im2col path: its kernels are bf16 ones) and 6 (amx_conv.c's fp32 Winograd
 * wherever it applies: C_in and C_out multiples of 16, an AVX512_BF16 CPU;
 * test_conv_wvf_vs_im2col covers more shapes). Also pins BN running statistics after training
 * passes, and checks the threaded nn_sgemm / nn_sgemm_batch against a double-precision loop.
 * ABI 1.5 EQM_NN_SET_DIN (test_conv_set_din, test_bn_set_din): every conv dX path (fp32, bf16
 * emulated / vdpbf16ps / AMX, algorithms 0-6) and batchnorm_backward_ex write din over NaN
 * with the bits of an accumulation into zeros.
 */
#include "config.h"

#include <float.h>

#include "nn_test_util.h"
#include "nn/nn_internal.h"

/* The magnitudes of a conv case: the same convolution over absolute values (im2col path,
 * algo 1): mag_out = conv(|x|, |w|), mag_din = conv_dX(|dy|, |w|), mag_dw = conv_dW(|dy|, |x|),
 * each element the sum of the absolute values of the terms its reference sums. */
static void conv_magnitudes(const eqm_conv2d_shape *s, const char *c, size_t no, size_t ni,
                            size_t nw, float **mo, float **mi, float **mw)
{
    float *ax = abs_dup(fixf(c, "in"), ni), *aw = abs_dup(fixf(c, "w"), nw);
    float *ag = abs_dup(fixf(c, "dout"), no);
    *mo = zeros(no), *mi = zeros(ni), *mw = zeros(nw);
    nn_conv2d_set_algo(1);
    ck_assert_int_eq(NN()->conv2d_forward(NULL, s, *mo, ax, aw), EQM_OK);
    ck_assert_int_eq(NN()->conv2d_backward(NULL, s, *mi, *mw, ag, ax, aw), EQM_OK);
    free(ax), free(aw), free(ag);
}

/* Tolerances (expect_close_mag): K eps32 times each element's magnitude, nothing relative to
 * the value itself (an element that cancels to about zero has a tiny value and a large
 * magnitude). Two float32 reductions of the same terms in different orders differ by at
 * most a few eps32 of the magnitude: measured worst 1.7 eps32 x magnitude over every case,
 * algo and both OpenBLAS core types (EQM_TEST_VERBOSE=1 prints it). K = 16 for the direct
 * and im2col paths, K = 32 where Winograd F(2x2, 3x3) may run (algo 0 and 3: its
 * transforms add and subtract up to 4 terms before the products). */
static void run_conv(const char *c, int algo)
{
    const float *sh = fixf(c, "shape");
    eqm_conv2d_shape s = {(int)sh[0], (int)sh[1], (int)sh[2], (int)sh[3], (int)sh[4],
                          (int)sh[5], (int)sh[6], (int)sh[7], (int)sh[8], 0};
    size_t no = fixn(c, "out"), ni = fixn(c, "in"), nw = fixn(c, "w");
    float *mo, *mi, *mw;
    conv_magnitudes(&s, c, no, ni, nw, &mo, &mi, &mw);
    const double k = (algo == 0 || algo == 3 || algo == 6) ? 32 : 16, rtol = 0;
    nn_conv2d_set_algo(algo);
    float *out = rnd(no, 1.f); /* forward overwrites */
    ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, out, fixf(c, "in"), fixf(c, "w")), EQM_OK);
    char what[128];
    snprintf(what, sizeof what, "%s algo %d out", c, algo);
    expect_close_mag(what, out, fixf(c, "out"), mo, no, k, rtol);
    /* backward accumulates: start from 1 and subtract afterwards */
    float *din = zeros(ni), *dw = zeros(nw);
    for (size_t i = 0; i < ni; i++)
        din[i] = 1.f;
    for (size_t i = 0; i < nw; i++)
        dw[i] = 1.f;
    ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, din, dw, fixf(c, "dout"), fixf(c, "in"),
                                           fixf(c, "w")),
                     EQM_OK);
    for (size_t i = 0; i < ni; i++)
        din[i] -= 1.f;
    for (size_t i = 0; i < nw; i++)
        dw[i] -= 1.f;
    /* the +1/-1 round trip rounds each element to a multiple of eps32 (1 is the larger
     * term): one more eps32 of floor on top of the magnitude's */
    for (size_t i = 0; i < ni; i++)
        mi[i] += 1.f;
    for (size_t i = 0; i < nw; i++)
        mw[i] += 1.f;
    snprintf(what, sizeof what, "%s algo %d din", c, algo);
    expect_close_mag(what, din, fixf(c, "din"), mi, ni, k, rtol);
    snprintf(what, sizeof what, "%s algo %d dw", c, algo);
    expect_close_mag(what, dw, fixf(c, "dw"), mw, nw, k, rtol);
    free(out), free(din), free(dw), free(mo), free(mi), free(mw);
    nn_conv2d_set_algo(0);
}

/* Default path (Winograd at >= 512 tiles) on a shape too big for a fixture: must agree
 * with the im2col path (algo 1), which the fixtures pin to PyTorch. */
START_TEST(test_conv_default_vs_im2col)
{
    /* 2 compute threads even on a 1-core runner: the GEMMs here (im2col 2048 x 24 x 144,
     * Winograd's 16 per chunk) then take the threaded nn_sgemm / nn_sgemm_batch paths */
    host_threads_init(2);
    eqm_conv2d_shape s = {2, 32, 32, 16, 24, 3, 3, 1, 1, 0}; /* 2 x 16 x 16 = 512 tiles */
    size_t ni = 2 * 32 * 32 * 16, no = 2 * 32 * 32 * 24, nw = 24 * 9 * 16;
    float *x = rnd(ni, 1.f), *w = rnd(nw, 0.1f), *g = rnd(no, 1.f);
    float *o[2], *dx[2], *dw[2];
    for (int a = 0; a < 2; a++) {
        nn_conv2d_set_algo(a);
        o[a] = zeros(no), dx[a] = zeros(ni), dw[a] = zeros(nw);
        ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, o[a], x, w), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, dx[a], dw[a], g, x, w), EQM_OK);
    }
    nn_conv2d_set_algo(0);
    expect_close("default vs im2col out", o[0], o[1], no, 1e-4, 1e-4);
    expect_close("default vs im2col din", dx[0], dx[1], ni, 1e-4, 1e-4);
    expect_close("default vs im2col dw", dw[0], dw[1], nw, 1e-3, 1e-4);
    for (int a = 0; a < 2; a++)
        free(o[a]), free(dx[a]), free(dw[a]);
    free(x), free(w), free(g);
}
END_TEST

/* The direct kernel (algo 4; direct.c, AVX-512F) against the im2col path on the shapes it
 * takes: every block width of its row loop (output widths 1..19 leave tails of 8, 4, 2, 1),
 * 1, 2 and 4 channel vectors per block (C_out 16, 32, 48, 64, 96), strides 1-2, 3x3, 5x5
 * and 7x7 kernels, C_in 3..40, padding taps at every border; dX of the stride-1 shapes runs
 * through it too (the forward of dout with the flipped kernel, accumulating into din).
 * Tolerance: both sum the same K terms in float32, in different orders (im2col's sgemm
 * blocks k); K eps32 x the magnitude (the same sum over absolute values), K = 16 as
 * run_conv. */
START_TEST(test_conv_direct_vs_im2col)
{
    host_threads_init(2);
    static const int cfg[][8] = {
        /* N, H, W, Ci, Co, k, stride, pad */
        {2, 9, 19, 16, 16, 3, 1, 1}, {1, 7, 13, 3, 32, 3, 1, 1},  {2, 8, 8, 40, 48, 3, 2, 1},
        {1, 11, 10, 3, 64, 7, 2, 3}, {2, 6, 5, 24, 64, 3, 1, 0},  {1, 4, 4, 32, 96, 3, 1, 1},
        {1, 9, 9, 8, 16, 5, 1, 2},   {3, 3, 3, 16, 32, 3, 2, 1},  {1, 1, 1, 16, 16, 3, 1, 1},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
        const int *g = cfg[i];
        eqm_conv2d_shape s = {g[0], g[1], g[2], g[3], g[4], g[5], g[5], g[6], g[7], 0};
        if (!nn_direct_available()) { /* CPUs without AVX-512F run the other paths */
            ck_assert_int_eq(nn_direct_ok(&s), 0);
            continue;
        }
        ck_assert_int_eq(nn_direct_ok(&s), 1);
        int Ho = (g[1] + 2 * g[7] - g[5]) / g[6] + 1, Wo = (g[2] + 2 * g[7] - g[5]) / g[6] + 1;
        size_t ni = (size_t)g[0] * g[1] * g[2] * g[3], nw = (size_t)g[4] * g[5] * g[5] * g[3];
        size_t no = (size_t)g[0] * Ho * Wo * g[4];
        float *x = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *dy = rnd(no, 1.f);
        float *ax = abs_dup(x, ni), *aw = abs_dup(w, nw), *ady = abs_dup(dy, no);
        float *o[2], *dx[2], *mo = zeros(no), *mi = zeros(ni);
        nn_conv2d_set_algo(1);
        ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, mo, ax, aw), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, mi, NULL, ady, ax, aw), EQM_OK);
        for (int a = 0; a < 2; a++) {
            nn_conv2d_set_algo(a ? 4 : 1);
            o[a] = rnd(no, 1.f), dx[a] = zeros(ni);
            ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, o[a], x, w), EQM_OK);
            ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, dx[a], NULL, dy, x, w), EQM_OK);
        }
        nn_conv2d_set_algo(0);
        char what[96];
        snprintf(what, sizeof what, "direct cfg %zu out", i);
        expect_close_mag(what, o[1], o[0], mo, no, 16, 0);
        snprintf(what, sizeof what, "direct cfg %zu din", i);
        expect_close_mag(what, dx[1], dx[0], mi, ni, 16, 0);
        for (int a = 0; a < 2; a++)
            free(o[a]), free(dx[a]);
        free(x), free(w), free(dy), free(ax), free(aw), free(ady), free(mo), free(mi);
    }
}
END_TEST

/* The fp32 Winograd of amx_conv.c (algo 6 in fp32: F(2x2, 3x3), the transforms and the
 * products with FMA on floats; CPUs with AVX512_BF16, nn_bf16_cpu) against the im2col path:
 * forward_stats (out and its statistics), and a backward that accumulates into din and dw
 * (they start at 1). Shapes: odd outputs (9x7: edge tiles with one output row or column),
 * C_out 48 (a 16-column panel), pad 0 and 2, 320 tiles over 5 images (chunks of 32 tiles
 * cut images; 4 dW groups), C_in 16. Tolerance: run_conv's Winograd K = 32 eps32 x the
 * magnitude (+1 for the din / dw round trip through 1); the statistics within 1e-5 of
 * sum |out| (float sums per 16 tiles, then double). Then the default's picks: from 256
 * tiles a call its forward and dX are algo 6's bits, its dW too from C_in 32. */
START_TEST(test_conv_wvf_vs_im2col)
{
    host_threads_init(2);
    static const int cfg[][6] = {
        /* N, H, W, Ci, Co, pad */
        {3, 9, 7, 32, 48, 1},
        {2, 10, 8, 16, 32, 0},
        {2, 6, 5, 16, 16, 2},
        {5, 16, 16, 32, 32, 1},
    };
    if (nn_bf16_cpu() == 0) {
        fprintf(stderr, "no AVX512_BF16: the fp32 Winograd is not taken, case skipped\n");
        return;
    }
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
        const int *g = cfg[i];
        eqm_conv2d_shape s = {g[0], g[1], g[2], g[3], g[4], 3, 3, 1, g[5], 0};
        nn_conv2d_set_algo(6);
        ck_assert_int_eq(nn_wvf_pick(&s), 1);
        int Ho = g[1] + 2 * g[5] - 2, Wo = g[2] + 2 * g[5] - 2;
        size_t ni = (size_t)g[0] * g[1] * g[2] * g[3], nw = (size_t)g[4] * 9 * g[3];
        size_t no = (size_t)g[0] * Ho * Wo * g[4];
        float *x = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *dy = rnd(no, 1.f);
        float *ax = abs_dup(x, ni), *aw = abs_dup(w, nw), *ady = abs_dup(dy, no);
        float *mo = zeros(no), *mi = zeros(ni), *mw = zeros(nw);
        nn_conv2d_set_algo(1);
        ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, mo, ax, aw), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, mi, mw, ady, ax, aw), EQM_OK);
        float *o[2], *dx[2], *dw[2];
        double st[2][2 * 48];
        for (int a = 0; a < 2; a++) {
            nn_conv2d_set_algo(a ? 6 : 1);
            o[a] = rnd(no, 1.f), dx[a] = zeros(ni), dw[a] = zeros(nw);
            for (size_t k = 0; k < ni; k++)
                dx[a][k] = 1.f;
            for (size_t k = 0; k < nw; k++)
                dw[a][k] = 1.f;
            ck_assert_int_eq(NN()->conv2d_forward_stats(NULL, &s, o[a], x, w, st[a]), EQM_OK);
            ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, dx[a], dw[a], dy, x, w), EQM_OK);
            for (size_t k = 0; k < ni; k++)
                dx[a][k] -= 1.f;
            for (size_t k = 0; k < nw; k++)
                dw[a][k] -= 1.f;
        }
        for (size_t k = 0; k < ni; k++)
            mi[k] += 1.f;
        for (size_t k = 0; k < nw; k++)
            mw[k] += 1.f;
        char what[96];
        snprintf(what, sizeof what, "fp32 Winograd cfg %zu out", i);
        expect_close_mag(what, o[1], o[0], mo, no, 32, 0);
        snprintf(what, sizeof what, "fp32 Winograd cfg %zu din", i);
        expect_close_mag(what, dx[1], dx[0], mi, ni, 32, 0);
        snprintf(what, sizeof what, "fp32 Winograd cfg %zu dw", i);
        expect_close_mag(what, dw[1], dw[0], mw, nw, 32, 0);
        for (int c = 0; c < g[4]; c++) { /* the statistics, against out's own in double */
            double sm = 0, sq = 0, am = 0; /* sq is its own magnitude */
            for (size_t r = 0; r < no / (size_t)g[4]; r++) {
                double v = o[1][r * (size_t)g[4] + (size_t)c];
                sm += v, sq += v * v, am += fabs(v);
            }
            ck_assert_msg(fabs(st[1][c] - sm) <= 1e-5 * am + 1e-6 &&
                              fabs(st[1][g[4] + c] - sq) <= 1e-5 * sq + 1e-6,
                          "fp32 Winograd cfg %zu stats channel %d: %.9g %.9g want %.9g %.9g", i, c,
                          st[1][c], st[1][g[4] + c], sm, sq);
        }
        for (int a = 0; a < 2; a++)
            free(o[a]), free(dx[a]), free(dw[a]);
        free(x), free(w), free(dy), free(ax), free(aw), free(ady), free(mo), free(mi), free(mw);
    }
    /* the default's picks: the forward and dX are algo 6's bits from 256 tiles a call, the
     * dW too from C_in 32; below 256 tiles none is */
    static const struct {
        int g[6], fwd, dw;
    } pk[] = {{{4, 16, 16, 32, 32, 1}, 1, 1},
              {{4, 16, 16, 16, 32, 1}, 1, 0},
              {{2, 16, 16, 32, 32, 1}, 0, 0}};
    for (size_t i = 0; i < sizeof pk / sizeof *pk; i++) {
        const int *g = pk[i].g;
        eqm_conv2d_shape s = {g[0], g[1], g[2], g[3], g[4], 3, 3, 1, g[5], 0};
        size_t ni = (size_t)g[0] * g[1] * g[2] * g[3], nw = (size_t)g[4] * 9 * g[3];
        size_t no = (size_t)g[0] * g[1] * g[2] * g[4];
        float *x = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *dy = rnd(no, 1.f);
        float *o[2], *dx[2], *dw[2];
        for (int a = 0; a < 2; a++) {
            nn_conv2d_set_algo(a ? 6 : 0);
            o[a] = zeros(no), dx[a] = zeros(ni), dw[a] = zeros(nw);
            ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, o[a], x, w), EQM_OK);
            ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, dx[a], dw[a], dy, x, w), EQM_OK);
        }
        ck_assert_msg((memcmp(o[0], o[1], no * sizeof(float)) == 0) == pk[i].fwd,
                      "pick %zu: the default forward is%s algo 6's", i, pk[i].fwd ? " not" : "");
        ck_assert_msg((memcmp(dx[0], dx[1], ni * sizeof(float)) == 0) == pk[i].fwd,
                      "pick %zu: the default dX is%s algo 6's", i, pk[i].fwd ? " not" : "");
        ck_assert_msg((memcmp(dw[0], dw[1], nw * sizeof(float)) == 0) == pk[i].dw,
                      "pick %zu: the default dW is%s algo 6's", i, pk[i].dw ? " not" : "");
        for (int a = 0; a < 2; a++)
            free(o[a]), free(dx[a]), free(dw[a]);
        free(x), free(w), free(dy);
    }
    nn_conv2d_set_algo(0);
}
END_TEST

/* The small-C_in direct kernels (direct.c, the stems: C_in <= 4, kw C_in <= 28) sum the
 * same products in the same order as the general direct kernels (the padding taps these
 * skip add 0 there): forward and dW must be equal element for element (== : a zero's sign
 * may differ). Shapes: output widths 19 (blocks 16, 2, 1) and 10, C_out 16, 32, 48 and 64
 * (1, 2 and 4 channel vectors per general block), C_in 1, 3 and 4, 3x3, 5x5, 7x7 and a 9x9
 * (L = 27: two accumulator runs in dW), strides 1 and 2, pad 0 to 4. */
START_TEST(test_conv_small_same_sums)
{
    host_threads_init(2);
    static const int cfg[][8] = {
        /* N, H, W, Ci, Co, k, stride, pad */
        {2, 11, 19, 3, 32, 3, 1, 1}, {1, 11, 10, 3, 64, 7, 2, 3}, {3, 9, 9, 1, 16, 5, 1, 2},
        {2, 8, 7, 4, 48, 3, 2, 0},   {1, 12, 12, 3, 16, 9, 1, 4},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
        const int *g = cfg[i];
        eqm_conv2d_shape s = {g[0], g[1], g[2], g[3], g[4], g[5], g[5], g[6], g[7], 0};
        if (!nn_direct_available()) {
            ck_assert_int_eq(nn_direct_small_ok(&s), 0);
            continue;
        }
        ck_assert_int_eq(nn_direct_small_ok(&s), 1);
        int Ho = (g[1] + 2 * g[7] - g[5]) / g[6] + 1, Wo = (g[2] + 2 * g[7] - g[5]) / g[6] + 1;
        size_t ni = (size_t)g[0] * g[1] * g[2] * g[3], nw = (size_t)g[4] * g[5] * g[5] * g[3];
        size_t no = (size_t)g[0] * Ho * Wo * g[4];
        float *x = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *dy = rnd(no, 1.f);
        float *o[2], *dw[2];
        nn_conv2d_set_algo(4);
        for (int a = 0; a < 2; a++) {
            nn_direct_small_set(a);
            o[a] = rnd(no, 1.f), dw[a] = rnd(nw, 1.f);
            memcpy(dw[a], w, nw * sizeof(float)); /* dW accumulates onto w */
            ck_assert_int_eq(NN()->conv2d_forward(NULL, &s, o[a], x, w), EQM_OK);
            ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, NULL, dw[a], dy, x, w), EQM_OK);
        }
        nn_direct_small_set(1);
        nn_conv2d_set_algo(0);
        for (size_t j = 0; j < no; j++)
            ck_assert_msg(o[0][j] == o[1][j], "small cfg %zu out[%zu]: %.9g vs general %.9g", i,
                          j, (double)o[1][j], (double)o[0][j]);
        for (size_t j = 0; j < nw; j++)
            ck_assert_msg(dw[0][j] == dw[1][j], "small cfg %zu dw[%zu]: %.9g vs general %.9g", i,
                          j, (double)dw[1][j], (double)dw[0][j]);
        for (int a = 0; a < 2; a++)
            free(o[a]), free(dw[a]);
        free(x), free(w), free(dy);
    }
}
END_TEST

/* nn_sgemm / nn_sgemm_batch on 2 compute threads (BLAS single-threaded inside the host's
 * parallel bodies, the output split in row or column blocks) against a double-precision
 * loop: every transpose combination, padded leading dimensions, beta 0 and 1, both split
 * sides (M >= N and M < N, with a column count that is not a multiple of the 16-column
 * blocks), and one GEMM below the split threshold. */
static double ref_at(int t, const float *X, int ld, int i, int j)
{
    return t ? X[(size_t)j * ld + i] : X[(size_t)i * ld + j];
}

START_TEST(test_sgemm_split)
{
    host_threads_init(2); /* first pool use in this (forked) test process */
    ck_assert_int_ge(host_threads(), 1);
    const int shapes[][3] = {{300, 70, 101}, {40, 1003, 64}, {13, 9, 5}};
    for (int si = 0; si < 3; si++)
        for (int tA = 0; tA < 2; tA++)
            for (int tB = 0; tB < 2; tB++)
                for (int bi = 0; bi < 2; bi++) {
                    int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                    int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 5, ldc = N + 2;
                    size_t na = (size_t)(tA ? K : M) * lda, nb = (size_t)(tB ? N : K) * ldb;
                    size_t nc = (size_t)M * ldc;
                    float *A = rnd(na, 1.f), *B = rnd(nb, 1.f), *C = rnd(nc, 1.f);
                    float *C0 = malloc(nc * sizeof(float));
                    memcpy(C0, C, nc * sizeof(float));
                    float beta = (float)bi, alpha = 0.75f;
                    nn_sgemm(NULL, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < ldc; j++) {
                            size_t o = (size_t)i * ldc + j;
                            if (j >= N) { /* padding columns untouched */
                                ck_assert_float_eq(C[o], C0[o]);
                                continue;
                            }
                            double acc = 0;
                            for (int k = 0; k < K; k++)
                                acc += ref_at(tA, A, lda, i, k) * ref_at(tB, B, ldb, k, j);
                            double want = alpha * acc + beta * C0[o];
                            if (fabs(C[o] - want) > 1e-4 + 1e-4 * fabs(want))
                                ck_abort_msg("sgemm %dx%dx%d tA %d tB %d beta %g: C[%d][%d] = %g, "
                                             "want %g", M, N, K, tA, tB, beta, i, j, C[o], want);
                        }
                    free(A), free(B), free(C), free(C0);
                }
    /* batch of 5 (odd: uneven across threads), operands at strides */
    int M = 33, N = 17, K = 29, cnt = 5;
    size_t sA = (size_t)M * K + 7, sB = (size_t)N * K + 3, sC = (size_t)M * N + 1;
    float *A = rnd(sA * cnt, 1.f), *B = rnd(sB * cnt, 1.f), *C = rnd(sC * cnt, 1.f);
    float *C0 = malloc(sC * cnt * sizeof(float));
    memcpy(C0, C, sC * cnt * sizeof(float));
    nn_sgemm_batch(NULL, cnt, 1, 1, M, N, K, 1.f, A, M, sA, B, K, sB, 1.f, C, N, sC);
    for (int b = 0; b < cnt; b++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double acc = C0[b * sC + (size_t)i * N + j];
                for (int k = 0; k < K; k++)
                    acc += (double)A[b * sA + (size_t)k * M + i] * B[b * sB + (size_t)j * K + k];
                float got = C[b * sC + (size_t)i * N + j];
                if (fabs(got - acc) > 1e-4 + 1e-4 * fabs(acc))
                    ck_abort_msg("sgemm_batch %d: C[%d][%d] = %g, want %g", b, i, j, got, acc);
            }
    for (int b = 0; b < cnt; b++) /* the gap after each C is untouched */
        ck_assert_float_eq(C[b * sC + (size_t)M * N], C0[b * sC + (size_t)M * N]);
    free(A), free(B), free(C), free(C0);
}
END_TEST

static const char *conv_cases[] = {"conv3x3s1", "conv3x3s2", "conv1x1s2",
                                   "conv1x1s1", "conv7x7s2", "conv3x3s1_wide"};

START_TEST(test_conv_ref)
{
    run_conv(conv_cases[_i / 7], _i % 7);
}
END_TEST

static void run_bn(const char *c)
{
    const float *sh = fixf(c, "shape");
    int M = (int)sh[0], C = (int)sh[1], affine = (int)sh[2], relu = (int)sh[3];
    int steps = (int)sh[4];
    eqm_bn_shape s = {M, C, 1, affine, relu, 1e-5f, 0.1f};
    float *rm = dup(fixf(c, "rm0"), (size_t)C), *rv = dup(fixf(c, "rv0"), (size_t)C);
    const float *gamma = affine ? fixf(c, "gamma") : NULL;
    const float *beta = affine ? fixf(c, "beta") : NULL;
    size_t n = (size_t)M * C;
    float *out = zeros(n), *save = zeros(2 * (size_t)C);
    char what[128], f[32];
    for (int st = 0; st < steps; st++) {
        snprintf(f, sizeof f, "in%d", st);
        ck_assert_int_eq(NN()->batchnorm_forward(NULL, &s, out, fixf(c, f), gamma, beta, rm,
                                                 rv, save),
                         EQM_OK);
        snprintf(f, sizeof f, "out%d", st);
        snprintf(what, sizeof what, "%s train out step %d", c, st);
        expect_close(what, out, fixf(c, f), n, 1e-4, 1e-4);
    }
    snprintf(what, sizeof what, "%s running_mean", c);
    expect_close(what, rm, fixf(c, "rm"), (size_t)C, 1e-5, 1e-5);
    snprintf(what, sizeof what, "%s running_var", c);
    expect_close(what, rv, fixf(c, "rv"), (size_t)C, 1e-5, 1e-5);
    float *din = zeros(n), *dg = zeros((size_t)C), *db = zeros((size_t)C);
    snprintf(f, sizeof f, "in%d", steps - 1);
    ck_assert_int_eq(NN()->batchnorm_backward(NULL, &s, din, affine ? dg : NULL,
                                              affine ? db : NULL, fixf(c, "dout"), fixf(c, f),
                                              out, gamma, save),
                     EQM_OK);
    snprintf(what, sizeof what, "%s train din", c);
    expect_close(what, din, fixf(c, "din"), n, 1e-4, 1e-3);
    if (affine) {
        snprintf(what, sizeof what, "%s dgamma", c);
        expect_close(what, dg, fixf(c, "dgamma"), (size_t)C, 1e-4, 1e-4);
        snprintf(what, sizeof what, "%s dbeta", c);
        expect_close(what, db, fixf(c, "dbeta"), (size_t)C, 1e-4, 1e-4);
    }
    /* eval mode with the updated running statistics */
    s.train = 0;
    float *rm2 = dup(rm, (size_t)C), *rv2 = dup(rv, (size_t)C);
    ck_assert_int_eq(NN()->batchnorm_forward(NULL, &s, out, fixf(c, "ein"), gamma, beta, rm,
                                             rv, save),
                     EQM_OK);
    snprintf(what, sizeof what, "%s eval out", c);
    expect_close(what, out, fixf(c, "eout"), n, 1e-4, 1e-4);
    ck_assert(!memcmp(rm, rm2, sizeof(float) * C) && !memcmp(rv, rv2, sizeof(float) * C));
    memset(din, 0, sizeof(float) * n);
    ck_assert_int_eq(NN()->batchnorm_backward(NULL, &s, din, affine ? dg : NULL,
                                              affine ? db : NULL, fixf(c, "edout"),
                                              fixf(c, "ein"), out, gamma, save),
                     EQM_OK);
    snprintf(what, sizeof what, "%s eval din", c);
    expect_close(what, din, fixf(c, "edin"), n, 1e-4, 1e-4);
    free(rm), free(rv), free(rm2), free(rv2), free(out), free(save), free(din), free(dg),
        free(db);
}

static const char *bn_cases[] = {"bn_affine", "bn_plain", "bn_relu", "bn_big"};

START_TEST(test_bn_ref)
{
    run_bn(bn_cases[_i]);
}
END_TEST

START_TEST(test_maxpool_ref)
{
    const float *sh = fixf("maxpool", "shape");
    eqm_pool_shape s = {(int)sh[0], (int)sh[1], (int)sh[2], (int)sh[3],
                        (int)sh[4], (int)sh[5], (int)sh[6]};
    size_t no = fixn("maxpool", "out"), ni = fixn("maxpool", "in");
    float *out = zeros(no), *din = zeros(ni);
    int32_t *am = calloc(no, sizeof(int32_t));
    ck_assert_int_eq(NN()->maxpool_forward(NULL, &s, out, fixf("maxpool", "in"), am), EQM_OK);
    expect_close("maxpool out", out, fixf("maxpool", "out"), no, 0, 0 + 1e-7);
    ck_assert_int_eq(NN()->maxpool_backward(NULL, &s, din, fixf("maxpool", "dout"), am),
                     EQM_OK);
    expect_close("maxpool din", din, fixf("maxpool", "din"), ni, 1e-6, 1e-6);
    free(out), free(din), free(am);
}
END_TEST

/* maxpool's rule on ties and NaN, against the loop it had (take x where x > y or nothing
 * was taken yet): the first of equal maxima wins (PyTorch's), a NaN first tap stays, a NaN
 * later tap is not taken. Channels 0-2 of a 7x7 image (3x3 windows, stride 2, pad 1): all
 * equal; a NaN at pixel (0, 0); values from a set of four (many ties); C = 19 (vector
 * tails). */
START_TEST(test_maxpool_ties)
{
    const int H = 7, W = 7, C = 19, k = 3, st = 2, pad = 1, Ho = 4, Wo = 4;
    eqm_pool_shape s = {1, H, W, C, k, st, pad};
    float *x = zeros((size_t)H * W * C), *out = zeros((size_t)Ho * Wo * C);
    int32_t *am = calloc((size_t)Ho * Wo * C, sizeof(int32_t));
    for (int p = 0; p < H * W; p++)
        for (int c = 0; c < C; c++)
            x[p * C + c] = c == 0 ? 0.5f : c == 1 && p == 0 ? NAN : (float)((p * 7 + c * 3) % 4);
    ck_assert_int_eq(NN()->maxpool_forward(NULL, &s, out, x, am), EQM_OK);
    for (int oh = 0; oh < Ho; oh++)
        for (int ow = 0; ow < Wo; ow++)
            for (int c = 0; c < C; c++) {
                float y = -FLT_MAX;
                int32_t a = -1;
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) {
                        int ih = oh * st - pad + ki, iw = ow * st - pad + kj;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                            continue;
                        int32_t i = (ih * W + iw) * C + c;
                        if (x[i] > y || a < 0)
                            y = x[i], a = i;
                    }
                int o = (oh * Wo + ow) * C + c;
                ck_assert_msg(am[o] == a && (out[o] == y || (isnan(out[o]) && isnan(y))),
                              "maxpool (%d, %d) channel %d: %g at %d, want %g at %d", oh, ow, c,
                              (double)out[o], am[o], (double)y, a);
            }
    free(x), free(out), free(am);
}
END_TEST

START_TEST(test_avgpool_ref)
{
    float *out = zeros(3 * 4), *din = zeros(3 * 4 * 30);
    ck_assert_int_eq(NN()->avgpool_forward(NULL, 3, 30, 4, out, fixf("avgpool", "in")), EQM_OK);
    expect_close("avgpool out", out, fixf("avgpool", "out"), 12, 1e-6, 1e-5);
    ck_assert_int_eq(NN()->avgpool_backward(NULL, 3, 30, 4, din, fixf("avgpool", "dout")),
                     EQM_OK);
    expect_close("avgpool din", din, fixf("avgpool", "din"), 360, 1e-6, 1e-5);
    free(out), free(din);
}
END_TEST

/* Magnitude floors as for conv (run_conv): the same ops over absolute values give each
 * element's magnitude; K = 16 eps32 of it (measured worst below 1 eps32). */
START_TEST(test_linear_ref)
{
    eqm_linear_shape s = {4, 7, 5};
    float *out = zeros(20), *din = zeros(28), *dw = zeros(35), *db = zeros(5);
    const char *c = "linear";
    float *ax = abs_dup(fixf(c, "in"), 28), *aw = abs_dup(fixf(c, "w"), 35);
    float *ab = abs_dup(fixf(c, "b"), 5), *ag = abs_dup(fixf(c, "dout"), 20);
    float *mo = zeros(20), *mi = zeros(28), *mw = zeros(35), *mb = zeros(5);
    ck_assert_int_eq(NN()->linear_forward(NULL, &s, mo, ax, aw, ab), EQM_OK);
    ck_assert_int_eq(NN()->linear_backward(NULL, &s, mi, mw, mb, ag, ax, aw), EQM_OK);
    ck_assert_int_eq(NN()->linear_forward(NULL, &s, out, fixf(c, "in"), fixf(c, "w"),
                                          fixf(c, "b")),
                     EQM_OK);
    expect_close_mag("linear out", out, fixf(c, "out"), mo, 20, 16, 0);
    ck_assert_int_eq(NN()->linear_backward(NULL, &s, din, dw, db, fixf(c, "dout"),
                                           fixf(c, "in"), fixf(c, "w")),
                     EQM_OK);
    expect_close_mag("linear din", din, fixf(c, "din"), mi, 28, 16, 0);
    expect_close_mag("linear dw", dw, fixf(c, "dw"), mw, 35, 16, 0);
    expect_close_mag("linear db", db, fixf(c, "db"), mb, 5, 16, 0);
    /* without bias: out - b, exactly the biased output less b up to one rounding of the sum */
    ck_assert_int_eq(NN()->linear_forward(NULL, &s, out, fixf(c, "in"), fixf(c, "w"), NULL),
                     EQM_OK);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            ck_assert_float_eq_tol(out[i * 5 + j] + fixf(c, "b")[j], fixf(c, "out")[i * 5 + j],
                                   16 * 0x1.0p-23 * mo[i * 5 + j]);
    free(out), free(din), free(dw), free(db);
    free(ax), free(aw), free(ab), free(ag), free(mo), free(mi), free(mw), free(mb);
}
END_TEST

START_TEST(test_l2norm_ref)
{
    float *out = zeros(45), *nr = zeros(5), *din = zeros(45);
    ck_assert_int_eq(NN()->l2norm_forward(NULL, 5, 9, out, fixf("l2norm", "in"), nr), EQM_OK);
    expect_close("l2norm out", out, fixf("l2norm", "out"), 45, 1e-6, 1e-5);
    ck_assert_int_eq(NN()->l2norm_backward(NULL, 5, 9, din, fixf("l2norm", "dout"), out, nr),
                     EQM_OK);
    expect_close("l2norm din", din, fixf("l2norm", "din"), 45, 1e-6, 1e-4);
    free(out), free(nr), free(din);
}
END_TEST

static void run_ntxent(const char *c)
{
    const float *sh = fixf(c, "shape");
    eqm_ntxent_shape s = {(int)sh[0], (int)sh[1], fixf(c, "tau")[0], (int)sh[2]};
    size_t n = (size_t)s.B2 * s.D;
    float *scratch = zeros(NN()->ntxent_scratch_floats(&s)), *dz = zeros(n), loss = 0;
    ck_assert_int_eq(NN()->ntxent_forward(NULL, &s, &loss, fixf(c, "z"), scratch), EQM_OK);
    expect_close(c, &loss, fixf(c, "loss"), 1, 1e-6, 1e-5);
    ck_assert_int_eq(NN()->ntxent_backward(NULL, &s, dz, 2.f, fixf(c, "z"), scratch), EQM_OK);
    for (size_t i = 0; i < n; i++)
        dz[i] *= 0.5f;
    expect_close(c, dz, fixf(c, "dz"), n, 1e-6, 1e-4);
    free(scratch), free(dz);
}

START_TEST(test_ntxent_ref)
{
    run_ntxent("ntxent");
    run_ntxent("ntxent_excl");
}
END_TEST

START_TEST(test_cosine_ref)
{
    float loss = 0, *dq = zeros(48);
    ck_assert_int_eq(NN()->cosine_loss_forward(NULL, 6, 8, &loss, fixf("cosine", "q"),
                                               fixf("cosine", "t")),
                     EQM_OK);
    expect_close("cosine loss", &loss, fixf("cosine", "loss"), 1, 1e-6, 1e-5);
    ck_assert_int_eq(NN()->cosine_loss_backward(NULL, 6, 8, dq, 1.f, fixf("cosine", "q"),
                                                fixf("cosine", "t")),
                     EQM_OK);
    expect_close("cosine dq", dq, fixf("cosine", "dq"), 48, 1e-6, 1e-4);
    free(dq);
}
END_TEST

START_TEST(test_xent_ref)
{
    int32_t lab[7];
    for (int i = 0; i < 7; i++)
        lab[i] = (int32_t)fixf("xent", "labels")[i];
    float loss = 0, *probs = zeros(35), *dl = zeros(35);
    ck_assert_int_eq(NN()->softmax_xent_forward(NULL, 7, 5, &loss, fixf("xent", "logits"), lab,
                                                probs),
                     EQM_OK);
    expect_close("xent loss", &loss, fixf("xent", "loss"), 1, 1e-6, 1e-5);
    ck_assert_int_eq(NN()->softmax_xent_backward(NULL, 7, 5, dl, 1.f, probs, lab), EQM_OK);
    expect_close("xent dlogits", dl, fixf("xent", "dlogits"), 35, 1e-6, 1e-4);
    lab[3] = 5; /* out of range: refused */
    ck_assert_int_eq(NN()->softmax_xent_forward(NULL, 7, 5, &loss, fixf("xent", "logits"), lab,
                                                probs),
                     EQM_ERR_INVAL);
    free(probs), free(dl);
}
END_TEST

/* ABI 1.5 EQM_NN_SET_DIN: conv2d_backward with the flag on a din full of NaN gives the bits
 * of the same call accumulating into a zeroed din (every dX path stores, or zeroes its rows
 * before its sums: the same arithmetic; a -0 that += 0 would turn into +0 is the only
 * allowed difference), and dw still accumulates (both runs start dw from the same random
 * values). Loop: _i / 7 = precision (0 fp32, 1 bf16 emulated, 2 bf16 vdpbf16ps, 3 bf16 AMX;
 * a native kernel this CPU lacks is skipped), _i % 7 = algorithm (0 default, 1 im2col +
 * col2im, 2 stride-1 dX as a forward conv (im2col or bf16 tiles), 3 Winograd, 4 direct, 5
 * the implicit AMX kernels, 6 those with amx_conv.c's Winograd on vdpbf16ps: its dX over
 * NaN, its dW into random values). Shapes: pointwise (a GEMM with beta), strided 3x3 and 1x1
 * stride 2 and the 3-channel 3x3 and 7x7 stems (col2im, also on the bf16 tiles), 3x3
 * stride 1 at C_in 16 (direct on fp32 default), 16 -> 80 at 32x32 (the flipped conv runs as
 * Winograd by default in fp32), 128 -> 80 at 8x8, and 5x5 pad 2 (the forward-conv paths of
 * every algorithm). */
static int same_bits(float a, float b)
{
    return !memcmp(&a, &b, sizeof a) || (a == 0.f && b == 0.f);
}

static void expect_same_bits(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(same_bits(got[i], want[i]), "%s: element %zu: %.9g, want %.9g (bits)",
                      what, i, (double)got[i], (double)want[i]);
}

START_TEST(test_conv_set_din)
{
    int prec = _i / 7, algo = _i % 7;
    if (prec >= 2 && prec - 1 > nn_bf16_cpu()) {
        fprintf(stderr, "set_din: bf16 kernel %d not on this CPU, case skipped\n", prec - 1);
        return;
    }
    host_threads_init(2);
    if (prec)
        nn_bf16_set_native(prec - 1);
    static const int cfg[][8] = {
        /* N, H, W, Ci, Co, k, stride, pad */
        {2, 8, 8, 16, 24, 1, 1, 0},   {2, 9, 11, 5, 7, 3, 2, 1},    {2, 8, 8, 16, 32, 1, 2, 0},
        {1, 7, 13, 3, 32, 3, 1, 1},   {1, 11, 10, 3, 64, 7, 2, 3},  {2, 16, 16, 16, 16, 3, 1, 1},
        {2, 32, 32, 16, 80, 3, 1, 1}, {2, 8, 8, 128, 80, 3, 1, 1},  {3, 9, 7, 16, 40, 5, 1, 2},
    };
    nn_conv2d_set_algo(algo);
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
        const int *g = cfg[i];
        eqm_conv2d_shape s = {g[0], g[1], g[2], g[3], g[4], g[5], g[5], g[6], g[7],
                              prec ? (uint32_t)EQM_NN_BF16 : 0u};
        int Ho = (g[1] + 2 * g[7] - g[5]) / g[6] + 1, Wo = (g[2] + 2 * g[7] - g[5]) / g[6] + 1;
        size_t ni = (size_t)g[0] * g[1] * g[2] * g[3], nw = (size_t)g[4] * g[5] * g[5] * g[3];
        size_t no = (size_t)g[0] * Ho * Wo * g[4];
        float *x = rnd(ni, 1.f), *w = rnd(nw, 0.3f), *dy = rnd(no, 1.f), *dw0 = rnd(nw, 1.f);
        float *dx_acc = zeros(ni), *dw_acc = dup(dw0, nw), *dx_set = malloc(ni * sizeof(float));
        float *dw_set = dup(dw0, nw), *dx_only = malloc(ni * sizeof(float));
        for (size_t k = 0; k < ni; k++)
            dx_set[k] = dx_only[k] = NAN;
        ck_assert_int_eq(NN()->conv2d_backward(NULL, &s, dx_acc, dw_acc, dy, x, w), EQM_OK);
        eqm_conv2d_shape t = s;
        t.flags |= EQM_NN_SET_DIN;
        ck_assert_int_eq(NN()->conv2d_backward(NULL, &t, dx_set, dw_set, dy, x, w), EQM_OK);
        ck_assert_int_eq(NN()->conv2d_backward(NULL, &t, dx_only, NULL, dy, x, w), EQM_OK);
        char what[128];
        snprintf(what, sizeof what, "set_din prec %d algo %d cfg %zu din", prec, algo, i);
        expect_same_bits(what, dx_set, dx_acc, ni);
        snprintf(what, sizeof what, "set_din prec %d algo %d cfg %zu din (no dw)", prec, algo, i);
        expect_same_bits(what, dx_only, dx_acc, ni);
        snprintf(what, sizeof what, "set_din prec %d algo %d cfg %zu dw", prec, algo, i);
        expect_same_bits(what, dw_set, dw_acc, nw);
        /* and the gradient is not empty: dw moved away from its start */
        int moved = 0;
        for (size_t k = 0; k < nw; k++)
            moved |= dw_acc[k] != dw0[k];
        ck_assert_msg(moved, "set_din cfg %zu: dw unchanged by backward", i);
        free(x), free(w), free(dy), free(dw0), free(dx_acc), free(dw_acc), free(dx_set),
            free(dw_set), free(dx_only);
    }
    nn_conv2d_set_algo(0);
}
END_TEST

/* ABI 1.5 batchnorm_backward_ex: EQM_NN_SET_DIN on a NaN din gives the bits of
 * batchnorm_backward into a zeroed din (up to a -0), dgamma/dbeta still accumulate; flags 0
 * is batchnorm_backward (+= into din); EQM_NN_RELU_FROM_IN (with and without SET_DIN, out
 * not passed when relu = 1) gives the same bits again; an unknown bit is EQM_ERR_INVAL, and
 * so is RELU_FROM_IN without beta when affine = 1. Training and eval,
 * affine or not, fused ReLU or not, several row parts. */
START_TEST(test_bn_set_din)
{
    static const int cfg[][4] = {
        /* M, C, affine, relu */
        {24, 5, 1, 0}, {30, 20, 1, 1}, {16, 33, 0, 1}, {300, 12, 1, 0}, {260, 9, 0, 1},
        {4096, 16, 1, 1},
    };
    host_threads_init(2);
    for (size_t i = 0; i < 2 * sizeof cfg / sizeof *cfg; i++) {
        const int *g = cfg[i / 2];
        eqm_bn_shape s = {g[0], g[1], (int)(i % 2 == 0), g[2], g[3], 1e-5f, 0.1f};
        size_t n = (size_t)g[0] * g[1], C = (size_t)g[1];
        float *x = rnd(n, 2.f), *gm = rnd(C, 1.f), *bt = rnd(C, 1.f), *rm = rnd(C, 0.2f);
        float *rv = rnd(C, 0.4f), *out = zeros(n), *save = zeros(2 * C), *dy = rnd(n, 1.f);
        for (size_t k = 0; k < C; k++)
            rv[k] += 1.f;
        ck_assert_int_eq(NN()->batchnorm_forward(NULL, &s, out, x, g[2] ? gm : NULL,
                                                 g[2] ? bt : NULL, rm, rv, save),
                         EQM_OK);
        float *dg0 = rnd(C, 1.f), *db0 = rnd(C, 1.f);
        float *dx_acc = zeros(n), *dg_acc = dup(dg0, C), *db_acc = dup(db0, C);
        float *dx_set = malloc(n * sizeof(float)), *dg_set = dup(dg0, C), *db_set = dup(db0, C);
        float *base = rnd(n, 1.f), *dx_add = dup(base, n), *dx_ref = dup(base, n);
        for (size_t k = 0; k < n; k++)
            dx_set[k] = NAN;
        ck_assert_int_eq(NN()->batchnorm_backward(NULL, &s, dx_acc, g[2] ? dg_acc : NULL,
                                                  g[2] ? db_acc : NULL, dy, x, out,
                                                  g[2] ? gm : NULL, save),
                         EQM_OK);
        ck_assert_int_eq(NN()->batchnorm_backward_ex(NULL, &s, EQM_NN_SET_DIN, dx_set,
                                                     g[2] ? dg_set : NULL, g[2] ? db_set : NULL,
                                                     dy, x, out, g[2] ? gm : NULL, NULL, save),
                         EQM_OK);
        /* EQM_NN_RELU_FROM_IN: the mask from x and the affine, out not passed: same bits */
        float *dx_rin = malloc(n * sizeof(float)), *dx_rin_add = dup(base, n);
        for (size_t k = 0; k < n; k++)
            dx_rin[k] = NAN;
        ck_assert_int_eq(NN()->batchnorm_backward_ex(NULL, &s,
                                                     EQM_NN_SET_DIN | EQM_NN_RELU_FROM_IN,
                                                     dx_rin, NULL, NULL, dy, x, g[3] ? NULL : out,
                                                     g[2] ? gm : NULL, g[2] ? bt : NULL, save),
                         EQM_OK);
        ck_assert_int_eq(NN()->batchnorm_backward_ex(NULL, &s, EQM_NN_RELU_FROM_IN, dx_rin_add,
                                                     NULL, NULL, dy, x, g[3] ? NULL : out,
                                                     g[2] ? gm : NULL, g[2] ? bt : NULL, save),
                         EQM_OK);
        char what[96];
        snprintf(what, sizeof what, "bn relu_from_in case %zu din", i);
        expect_same_bits(what, dx_rin, dx_acc, n);
        snprintf(what, sizeof what, "bn set_din case %zu din", i);
        expect_same_bits(what, dx_set, dx_acc, n);
        snprintf(what, sizeof what, "bn set_din case %zu dgamma", i);
        expect_same_bits(what, dg_set, dg_acc, C);
        snprintf(what, sizeof what, "bn set_din case %zu dbeta", i);
        expect_same_bits(what, db_set, db_acc, C);
        /* flags 0: accumulates exactly like batchnorm_backward */
        ck_assert_int_eq(NN()->batchnorm_backward(NULL, &s, dx_ref, NULL, NULL, dy, x, out,
                                                  g[2] ? gm : NULL, save),
                         EQM_OK);
        ck_assert_int_eq(NN()->batchnorm_backward_ex(NULL, &s, 0, dx_add, NULL, NULL, dy, x,
                                                     out, g[2] ? gm : NULL, NULL, save),
                         EQM_OK);
        snprintf(what, sizeof what, "bn flags 0 case %zu din", i);
        expect_same_bits(what, dx_add, dx_ref, n);
        snprintf(what, sizeof what, "bn relu_from_in += case %zu din", i);
        expect_same_bits(what, dx_rin_add, dx_ref, n);
        free(dx_rin), free(dx_rin_add);
        int differs = 0;
        for (size_t k = 0; k < n; k++)
            differs |= dx_add[k] != dx_acc[k];
        ck_assert_msg(differs, "bn flags 0 case %zu: din did not accumulate", i);
        free(x), free(gm), free(bt), free(rm), free(rv), free(out), free(save), free(dy),
            free(dg0), free(db0), free(dx_acc), free(dg_acc), free(db_acc), free(dx_set),
            free(dg_set), free(db_set), free(base), free(dx_add), free(dx_ref);
    }
    eqm_bn_shape s = {4, 2, 1, 0, 0, 1e-5f, 0.1f};
    float v[8] = {0}, c2[2] = {1, 1}, sv[4] = {0, 0, 1, 1};
    ck_assert_int_eq(NN()->batchnorm_backward_ex(NULL, &s, 1u << 7, v, NULL, NULL, v, v, v, c2,
                                                 NULL, sv),
                     EQM_ERR_INVAL);
    ck_assert_int_eq(NN()->batchnorm_backward_ex(NULL, &s, EQM_NN_BF16, v, NULL, NULL, v, v, v,
                                                 c2, NULL, sv),
                     EQM_ERR_INVAL);
    eqm_bn_shape sr = {4, 2, 1, 1, 1, 1e-5f, 0.1f}; /* relu, affine: the mask needs beta */
    ck_assert_int_eq(NN()->batchnorm_backward_ex(NULL, &sr, EQM_NN_RELU_FROM_IN, v, NULL, NULL,
                                                 v, v, NULL, c2, NULL, sv),
                     EQM_ERR_INVAL);
    ck_assert_int_eq(NN()->batchnorm_backward_ex(NULL, &sr, EQM_NN_RELU_FROM_IN, v, NULL, NULL,
                                                 v, v, NULL, c2, c2, sv),
                     EQM_OK);
}
END_TEST

/* ABI 1.5 batchnorm_forward_ex with EQM_NN_ADD_RESIDUAL: out = relu(bn(x) + r) (or without
 * the ReLU) is, bit for bit, batchnorm_forward without ReLU followed by the add and the
 * ReLU in float (the ResNet block's end it replaces); running statistics and save agree
 * too. Training and eval, affine or not; the flag without a residual, and an unknown bit,
 * are EQM_ERR_INVAL. */
START_TEST(test_bn_residual)
{
    static const int cfg[][4] = {
        /* M, C, affine, relu */
        {30, 20, 1, 1}, {260, 9, 0, 1}, {4096, 16, 1, 1}, {24, 5, 1, 0},
    };
    host_threads_init(2);
    for (size_t i = 0; i < 2 * sizeof cfg / sizeof *cfg; i++) {
        const int *g = cfg[i / 2];
        int train = i % 2 == 0;
        eqm_bn_shape s = {g[0], g[1], train, g[2], g[3], 1e-5f, 0.1f};
        eqm_bn_shape s0 = s;
        s0.relu = 0;
        size_t n = (size_t)g[0] * g[1], C = (size_t)g[1];
        float *x = rnd(n, 2.f), *res = rnd(n, 1.5f), *gm = rnd(C, 1.f), *bt = rnd(C, 1.f);
        float *rm1 = rnd(C, 0.2f), *rv1 = rnd(C, 0.4f), *rm2, *rv2;
        for (size_t k = 0; k < C; k++)
            rv1[k] += 1.f;
        rm2 = dup(rm1, C), rv2 = dup(rv1, C);
        float *o1 = zeros(n), *o2 = zeros(n), *sv1 = zeros(2 * C), *sv2 = zeros(2 * C);
        ck_assert_int_eq(NN()->batchnorm_forward(NULL, &s0, o1, x, g[2] ? gm : NULL,
                                                 g[2] ? bt : NULL, rm1, rv1, sv1),
                         EQM_OK);
        for (size_t k = 0; k < n; k++) {
            float v = o1[k] + res[k];
            o1[k] = g[3] ? (v > 0.f ? v : 0.f) : v;
        }
        ck_assert_int_eq(NN()->batchnorm_forward_ex(NULL, &s, EQM_NN_ADD_RESIDUAL, o2, x, res,
                                                    g[2] ? gm : NULL, g[2] ? bt : NULL, rm2,
                                                    rv2, sv2, NULL),
                         EQM_OK);
        char what[96];
        snprintf(what, sizeof what, "bn residual case %zu out", i);
        expect_same_bits(what, o2, o1, n);
        snprintf(what, sizeof what, "bn residual case %zu save", i);
        expect_same_bits(what, sv2, sv1, 2 * C);
        snprintf(what, sizeof what, "bn residual case %zu running mean", i);
        expect_same_bits(what, rm2, rm1, C);
        snprintf(what, sizeof what, "bn residual case %zu running var", i);
        expect_same_bits(what, rv2, rv1, C);
        free(x), free(res), free(gm), free(bt), free(rm1), free(rv1), free(rm2), free(rv2),
            free(o1), free(o2), free(sv1), free(sv2);
    }
    eqm_bn_shape s = {4, 2, 1, 0, 0, 1e-5f, 0.1f};
    float v[8] = {0}, c2[2] = {1, 1}, sv[4] = {0};
    ck_assert_int_eq(NN()->batchnorm_forward_ex(NULL, &s, EQM_NN_ADD_RESIDUAL, v, v, NULL, NULL,
                                                NULL, c2, c2, sv, NULL),
                     EQM_ERR_INVAL);
    ck_assert_int_eq(NN()->batchnorm_forward_ex(NULL, &s, EQM_NN_SET_DIN, v, v, v, NULL, NULL, c2,
                                                c2, sv, NULL),
                     EQM_ERR_INVAL);
}
END_TEST

/* bf16 helpers for the ABI 1.6 tests: x rounded (nearest even) to bf16 bits, and back. */
static uint16_t *to_bf16(const float *x, size_t n)
{
    uint16_t *b = malloc(n * sizeof *b);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++)
        b[i] = nn_bf16_from_f32(x[i]);
    return b;
}

static float *from_bf16(const uint16_t *b, size_t n)
{
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = nn_bf16_to_f32(b[i]);
    return x;
}

/* ABI 1.6 batchnorm_forward_store: with in_bf16 it keeps bf16(x) and its out is, bit for
 * bit, batchnorm_forward_ex on the widened kept copy with the statistics of the float x
 * (passed as stats to both; with stats NULL the save and running statistics are those of
 * batchnorm_forward_ex on x); a bf16 out is bf16(that float out); a bf16 residual is read
 * as its exact floats. Every combination of ReLU, residual (none, float, bf16), out (float,
 * bf16) and in_bf16 (kept or not), training and eval. Then batchnorm_backward_ex with
 * EQM_NN_IN_BF16 on the kept copy gives the bits of the float call on the widened copy
 * (every SET_DIN / RELU_FROM_IN combination). Bad flag combinations are EQM_ERR_INVAL. */
START_TEST(test_bn_store)
{
    static const int cfg[][3] = {{30, 20, 1}, {260, 9, 0}, {4096, 16, 1}, {37, 5, 1}};
    host_threads_init(2);
    int n_cases = 0;
    for (size_t ci = 0; ci < sizeof cfg / sizeof *cfg; ci++)
        for (int v = 0; v < 2 * 2 * 3 * 2 * 2; v++) {
            const int *g = cfg[ci];
            int train = v & 1, relu = (v >> 1) & 1, rk = (v >> 2) % 3, o16 = (v / 12) & 1,
                keep = (v / 24) & 1;
            eqm_bn_shape s = {g[0], g[1], train, g[2], relu, 1e-5f, 0.1f};
            size_t n = (size_t)g[0] * g[1], C = (size_t)g[1];
            float *x = rnd(n, 2.f), *res = rnd(n, 1.5f), *gm = rnd(C, 1.f), *bt = rnd(C, 1.f);
            float *rm1 = rnd(C, 0.2f), *rv1 = rnd(C, 0.4f);
            for (size_t k = 0; k < C; k++)
                rv1[k] += 1.f;
            float *rm2 = dup(rm1, C), *rv2 = dup(rv1, C);
            uint16_t *res16 = to_bf16(res, n), *x16ref = to_bf16(x, n);
            float *resw = from_bf16(res16, n), *xw = from_bf16(x16ref, n);
            double *st = calloc(2 * C, sizeof *st);
            for (size_t m = 0; m < (size_t)g[0]; m++)
                for (size_t j = 0; j < C; j++) {
                    st[j] += x[m * C + j];
                    st[C + j] += (double)x[m * C + j] * x[m * C + j];
                }
            const double *stp = keep ? st : NULL; /* without a kept copy: the op's own sums */
            uint32_t fl = (rk ? EQM_NN_ADD_RESIDUAL : 0u) | (rk == 2 ? EQM_NN_RES_BF16 : 0u) |
                          (o16 ? EQM_NN_OUT_BF16 : 0u);
            float *o1 = zeros(n), *sv1 = zeros(2 * C), *sv2 = zeros(2 * C);
            uint16_t *o16b = calloc(n, sizeof *o16b), *k16 = calloc(n, sizeof *k16);
            float *o2f = zeros(n);
            const float *r1 = rk == 1 ? res : rk == 2 ? resw : NULL;
            ck_assert_int_eq(NN()->batchnorm_forward_ex(NULL, &s, rk ? EQM_NN_ADD_RESIDUAL : 0u,
                                                        o1, keep ? xw : x, r1, g[2] ? gm : NULL,
                                                        g[2] ? bt : NULL, rm1, rv1, sv1,
                                                        train ? stp : NULL),
                             EQM_OK);
            ck_assert_int_eq(NN()->batchnorm_forward_store(
                                 NULL, &s, fl, o16 ? (void *)o16b : (void *)o2f,
                                 keep ? k16 : NULL, x,
                                 rk == 2 ? (const void *)res16 : rk ? (const void *)res : NULL,
                                 g[2] ? gm : NULL, g[2] ? bt : NULL, rm2, rv2, sv2,
                                 train ? stp : NULL),
                             EQM_OK);
            char what[96];
            snprintf(what, sizeof what, "bn store %zu/%d out", ci, v);
            if (o16) {
                uint16_t *ref = to_bf16(o1, n);
                for (size_t k = 0; k < n; k++)
                    ck_assert_msg(o16b[k] == ref[k], "%s: element %zu: 0x%04x, want 0x%04x",
                                  what, k, o16b[k], ref[k]);
                free(ref);
            } else {
                expect_same_bits(what, o2f, o1, n);
            }
            if (keep) {
                for (size_t k = 0; k < n; k++)
                    ck_assert_msg(k16[k] == x16ref[k], "bn store %zu/%d kept copy %zu", ci, v, k);
                /* EQM_NN_IN_BF16: the kept copy as `in` (with the float statistics) gives
                 * the bits of the float `in` + in_bf16 call */
                /* (running statistics: train reads none, eval leaves them as they were) */
                float *rm3 = dup(rm2, C), *rv3 = dup(rv2, C), *sv3 = zeros(2 * C);
                uint16_t *o16c = calloc(n, sizeof *o16c);
                float *o3f = zeros(n);
                ck_assert_int_eq(NN()->batchnorm_forward_store(
                                     NULL, &s, fl | EQM_NN_IN_BF16,
                                     o16 ? (void *)o16c : (void *)o3f, NULL,
                                     (const float *)(const void *)x16ref,
                                     rk == 2 ? (const void *)res16 : rk ? (const void *)res : NULL,
                                     g[2] ? gm : NULL, g[2] ? bt : NULL, rm3, rv3, sv3,
                                     train ? stp : NULL),
                                 EQM_OK);
                if (o16)
                    ck_assert_msg(!memcmp(o16c, o16b, n * sizeof *o16c),
                                  "bn store %zu/%d: IN_BF16 out differs", ci, v);
                else
                    expect_same_bits("bn store IN_BF16 out", o3f, o2f, n);
                expect_same_bits("bn store IN_BF16 save", sv3, sv2, 2 * C);
                free(rm3), free(rv3), free(sv3), free(o16c), free(o3f);
            }
            snprintf(what, sizeof what, "bn store %zu/%d save", ci, v);
            expect_same_bits(what, sv2, sv1, 2 * C);
            snprintf(what, sizeof what, "bn store %zu/%d running", ci, v);
            expect_same_bits(what, rm2, rm1, C);
            expect_same_bits(what, rv2, rv1, C);
            if (keep && train && !rk && !o16) { /* backward on the kept copy */
                float *d = rnd(n, 1.f);
                for (int bf = 0; bf < 4; bf++) {
                    uint32_t bfl = (bf & 1 ? EQM_NN_SET_DIN : 0u) |
                                   (bf & 2 ? EQM_NN_RELU_FROM_IN : 0u);
                    if (relu && !(bf & 2))
                        continue; /* a bf16-stored forward keeps no float out to mask by */
                    float *di1 = rnd(n, 1.f), *di2 = dup(di1, n);
                    float *dg1 = rnd(C, 1.f), *db1 = rnd(C, 1.f), *dg2 = dup(dg1, C),
                          *db2 = dup(db1, C);
                    ck_assert_int_eq(NN()->batchnorm_backward_ex(
                                         NULL, &s, bfl, di1, g[2] ? dg1 : NULL,
                                         g[2] ? db1 : NULL, d, xw, NULL, g[2] ? gm : NULL,
                                         g[2] ? bt : NULL, sv1),
                                     EQM_OK);
                    ck_assert_int_eq(NN()->batchnorm_backward_ex(
                                         NULL, &s, bfl | EQM_NN_IN_BF16, di2,
                                         g[2] ? dg2 : NULL, g[2] ? db2 : NULL, d,
                                         (const float *)(const void *)k16, NULL,
                                         g[2] ? gm : NULL, g[2] ? bt : NULL, sv2),
                                     EQM_OK);
                    snprintf(what, sizeof what, "bn store %zu/%d backward %d din", ci, v, bf);
                    expect_same_bits(what, di2, di1, n);
                    snprintf(what, sizeof what, "bn store %zu/%d backward %d dgamma", ci, v, bf);
                    expect_same_bits(what, dg2, dg1, C);
                    expect_same_bits(what, db2, db1, C);
                    free(di1), free(di2), free(dg1), free(db1), free(dg2), free(db2);
                    n_cases++;
                }
                free(d);
            }
            free(x), free(res), free(gm), free(bt), free(rm1), free(rv1), free(rm2), free(rv2),
                free(res16), free(x16ref), free(resw), free(xw), free(st), free(o1), free(sv1),
                free(sv2), free(o16b), free(k16), free(o2f);
        }
    ck_assert_int_gt(n_cases, 8);
    eqm_bn_shape s = {4, 2, 1, 0, 0, 1e-5f, 0.1f};
    float v8[8] = {0}, c2[2] = {1, 1}, sv[4] = {0};
    ck_assert_int_eq(NN()->batchnorm_forward_store(NULL, &s, EQM_NN_RES_BF16, v8, NULL, v8, v8,
                                                   NULL, NULL, c2, c2, sv, NULL),
                     EQM_ERR_INVAL);
    ck_assert_int_eq(NN()->batchnorm_forward_store(NULL, &s, EQM_NN_SET_DIN, v8, NULL, v8, NULL,
                                                   NULL, NULL, c2, c2, sv, NULL),
                     EQM_ERR_INVAL);
    ck_assert_int_eq(NN()->batchnorm_forward_store(NULL, &s, EQM_NN_OUT_BF16, v8, NULL, v8,
                                                   NULL, NULL, NULL, c2, c2, sv, NULL),
                     EQM_OK);
    ck_assert_int_eq(NN()->batchnorm_forward_ex(NULL, &s, EQM_NN_OUT_BF16, v8, v8, NULL, NULL,
                                                NULL, c2, c2, sv, NULL),
                     EQM_ERR_INVAL);
    uint16_t k8[8];
    ck_assert_int_eq(NN()->batchnorm_forward_store(NULL, &s, EQM_NN_IN_BF16, v8, k8, v8, NULL,
                                                   NULL, NULL, c2, c2, sv, NULL),
                     EQM_ERR_INVAL);
}
END_TEST

START_TEST(test_table)
{
    const eqm_nn_api *nn = NN();
    ck_assert_ptr_nonnull(nn);
    ck_assert_uint_eq(nn->size, sizeof(eqm_nn_api));
    /* every entry present */
    const void *const *p = (const void *const *)((const char *)nn + sizeof(void *));
    size_t n = (sizeof(eqm_nn_api) - sizeof(void *)) / sizeof(void *);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(p[i] != NULL, "nn api entry %zu is NULL", i);
    eqm_conv2d_shape bad = {1, 2, 2, 1, 1, 5, 5, 1, 0, 0};
    float x[4] = {0}, w[25] = {0}, y[4];
    ck_assert_int_eq(nn->conv2d_forward(NULL, &bad, y, x, w), EQM_ERR_INVAL);
}
END_TEST

/* The AVX-512 rows of batchnorm_backward_ex (CPUs with AVX512_BF16) against the portable
 * code, bit for bit: din (set and +=), dgamma, dbeta, for float and bf16 inputs, the ReLU
 * from out and from in, train and eval, C a multiple of 16 or not (a masked last block). */
START_TEST(test_bn_backward_v512_bits)
{
    static const int cfg[][3] = {{300, 16, 1}, {97, 24, 1}, {64, 5, 0}, {130, 64, 1}, {70, 150, 1}};
    host_threads_init(2);
    if (nn_bf16_native() == 0 && !nn_bf16_cpu()) {
        fprintf(stderr, "bn v512 bits: SKIPPED (no AVX512_BF16: only the portable rows run)\n");
        return;
    }
    for (size_t ci = 0; ci < sizeof cfg / sizeof *cfg; ci++)
        for (int v = 0; v < 32; v++) {
            const int *g = cfg[ci];
            int train = v & 1, relu = (v >> 1) & 1, set = (v >> 2) & 1, rin = (v >> 3) & 1,
                i16 = (v >> 4) & 1;
            if (i16 && relu && !rin)
                continue; /* bf16 in: the mask comes from in (no float out to mask by) */
            eqm_bn_shape s = {g[0], g[1], train, g[2], relu, 1e-5f, 0.1f};
            size_t n = (size_t)g[0] * g[1], C = (size_t)g[1];
            float *x = rnd(n, 2.f), *d = rnd(n, 1.f), *out = rnd(n, 1.f), *gm = rnd(C, 1.f),
                  *bt = rnd(C, 1.f), *sv = rnd(2 * C, 0.5f);
            for (size_t k = 0; k < C; k++)
                sv[C + k] = 0.5f + fabsf(sv[C + k]);
            uint16_t *x16 = to_bf16(x, n);
            const float *in = i16 ? (const float *)(const void *)x16 : x;
            uint32_t fl = (set ? EQM_NN_SET_DIN : 0u) | (rin ? EQM_NN_RELU_FROM_IN : 0u) |
                          (i16 ? EQM_NN_IN_BF16 : 0u);
            float *di[2], *dg[2], *db[2];
            di[0] = rnd(n, 1.f), dg[0] = rnd(C, 1.f), db[0] = rnd(C, 1.f);
            di[1] = dup(di[0], n), dg[1] = dup(dg[0], C), db[1] = dup(db[0], C);
            for (int k = 0; k < 2; k++) {
                nn_bn_set_v512(k);
                ck_assert_int_eq(NN()->batchnorm_backward_ex(
                                     NULL, &s, fl, di[k], g[2] ? dg[k] : NULL, g[2] ? db[k] : NULL,
                                     d, in, out, g[2] ? gm : NULL, g[2] ? bt : NULL, sv),
                                 EQM_OK);
            }
            nn_bn_set_v512(1);
            char what[64];
            snprintf(what, sizeof what, "bn v512 %zu/%d din", ci, v);
            expect_same_bits(what, di[1], di[0], n);
            snprintf(what, sizeof what, "bn v512 %zu/%d dgamma", ci, v);
            expect_same_bits(what, dg[1], dg[0], C);
            expect_same_bits(what, db[1], db[0], C);
            for (int k = 0; k < 2; k++)
                free(di[k]), free(dg[k]), free(db[k]);
            free(x), free(d), free(out), free(gm), free(bt), free(sv), free(x16);
        }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("nn_ref");
    TCase *tc = tcase_create("pytorch");
    tcase_add_test(tc, test_table);
    tcase_add_loop_test(tc, test_conv_ref, 0, 7 * (int)(sizeof conv_cases / sizeof *conv_cases));
    tcase_add_test(tc, test_conv_direct_vs_im2col);
    tcase_add_test(tc, test_conv_wvf_vs_im2col);
    tcase_add_test(tc, test_conv_small_same_sums);
    tcase_add_test(tc, test_bn_residual);
    tcase_add_test(tc, test_bn_store);
    tcase_add_test(tc, test_conv_default_vs_im2col);
    tcase_add_test(tc, test_sgemm_split);
    tcase_add_loop_test(tc, test_conv_set_din, 0, 4 * 7);
    tcase_add_test(tc, test_bn_set_din);
    tcase_add_test(tc, test_bn_backward_v512_bits);
    tcase_add_loop_test(tc, test_bn_ref, 0, (int)(sizeof bn_cases / sizeof *bn_cases));
    tcase_add_test(tc, test_maxpool_ref);
    tcase_add_test(tc, test_maxpool_ties);
    tcase_add_test(tc, test_avgpool_ref);
    tcase_add_test(tc, test_linear_ref);
    tcase_add_test(tc, test_l2norm_ref);
    tcase_add_test(tc, test_ntxent_ref);
    tcase_add_test(tc, test_cosine_ref);
    tcase_add_test(tc, test_xent_ref);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* no host_threads_init here: Check forks per test and the pool (started lazily by the
     * first op inside the child) must belong to the process that uses it */
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
