/* bench/conv_layers.c: time conv2d forward, dX and dW on the ResNet-18-CIFAR layer shapes
 * (or ResNet-50's with --r50, or BN backward at its shapes with --bn-r50), to see where a
 * training step goes.
 * Usage: conv-layers [--batch 64] [--threads 2] [--reps 2] [--algo 0|1] [--cpu 1] [--bf16 1]
 *                    [--width 4] [--in-bf16 1] [--out-bf16 1] [--stats 1] [--layer I]
 *                    [--bn-r50 1] [--peak 1] [--r50 1]
 * --width D divides every channel count but the image's 3 by D (4: the quickstart's width 0.25);
 * --algo N forces a path (nn_internal.h: 1 the reference im2col/col2im, 5 the implicit
 * bf16 kernels, 6 those with the vdpbf16ps Winograd); --layer I times only row I (0: stem); --cpu 1 times process CPU seconds;
 * --bf16 1 passes EQM_NN_BF16 (bf16 products, fp32 accumulation; EQM_NN_BF16_NATIVE=0 for
 * the emulation) and first times one 1024^3 GEMM in fp32 and in bf16;
 * --bn-r50 1 times BN backward instead, at ResNet-50's BN shapes (bn_r50 below);
 * --r50 1 times ResNet-50 v1.5's conv shapes at 224 px instead (each with its count in the net)
 * and sums them into a step's worth of convs (no dX for the stem);
 * --peak 1 measures one core's ceilings instead (peak below: vdpbf16ps and FP32 FMA from
 * registers, streaming read, write and copy over 1 GiB); bench/step_floor.py reads its last line;
 * --in-bf16 1 passes the input as bf16 values with EQM_NN_IN_BF16 (ABI 1.6: activations
 * stored as bf16 under train.precision = bf16), at either precision; --out-bf16 1 has the
 * forward write its output as bf16 (EQM_NN_OUT_BF16; dX and dW still get a float dout, the
 * float forward's output); --stats 1 times conv2d_forward_stats as the fwd (a ResNet's
 * conv + BN unit calls that).
 * Prints per layer: ms and nominal GFLOP/s (every tap counted) of fwd, dX, dW.
 * Left out: correctness (tests/nn does that).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <immintrin.h>

#include "core.h"
#include "nn/nn_internal.h"

static int use_cpu_clock;

/* Wall clock, or with --cpu the process CPU time (robust on a shared, loaded machine;
 * meaningful with --threads 1, where no thread spins). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(use_cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* --bn-r50 1: BN backward (bf16 x, float dout, ReLU from x, din overwritten: what the
 * ResNet-50 bf16 step calls) at ResNet-50's BN shapes, M = batch H W rows of C channels;
 * GB/s counts the 16 bytes an element the two passes name (pass 1 reads dout and x, pass
 * 2 reads them again and writes din), not the write's read-for-ownership */
static int bn_r50(int batch, int reps)
{
    static const int S[][2] = {{56, 64}, {56, 256}, {28, 128}, {28, 512}, {14, 1024}, {7, 2048}};
    printf("# BN backward, batch %d (ms, GB/s at 16 B an element)\n", batch);
    for (size_t i = 0; i < sizeof S / sizeof *S; i++) {
        size_t M = (size_t)batch * S[i][0] * S[i][0], C = (size_t)S[i][1], n = M * C;
        float *dout = malloc(n * sizeof(float)), *din = malloc(n * sizeof(float));
        uint16_t *x = malloc(n * sizeof(uint16_t));
        float *par = calloc(5 * C, sizeof(float)); /* gamma, beta, save (2C), dgamma+dbeta */
        float *dpar = calloc(2 * C, sizeof(float));
        if (!dout || !din || !x || !par || !dpar)
            return 1;
        for (size_t k = 0; k < n; k++) {
            dout[k] = (float)((k * 7) % 13) - 6;
            x[k] = nn_bf16_from_f32((float)((k * 5) % 11) - 5);
        }
        for (size_t j = 0; j < C; j++)
            par[j] = 1.f, par[C + j] = 0.1f, par[3 * C + j] = 0.5f; /* mean 0, inv 0.5 */
        eqm_bn_shape s = {.M = (int)M, .C = (int)C, .train = 1, .affine = 1, .relu = 1,
                          .eps = 1e-5f, .momentum = 0.1f};
        double best = 1e9;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now_s();
            int rc = nn_batchnorm_backward_ex(
                NULL, &s, EQM_NN_SET_DIN | EQM_NN_RELU_FROM_IN | EQM_NN_IN_BF16, din, dpar,
                dpar + C, dout, (const float *)(const void *)x, NULL, par, par + C, par + 2 * C);
            double t = now_s() - t0;
            if (rc)
                return 1;
            if (r && t < best) /* the first call grows the partials: not timed */
                best = t;
        }
        printf("%dx%d C %zu (M %zu): %.2f ms, %.1f GB/s\n", S[i][0], S[i][0], C, M, best * 1e3,
               16.0 * (double)n / best / 1e9);
        free(dout), free(din), free(x), free(par), free(dpar);
    }
    return 0;
}

/* --peak 1: one core's ceilings, the rates a step's floor is computed from
 * (bench/step_floor.py). Products: 12 independent zmm accumulators (twice the latency x
 * throughput of vdpbf16ps and vfmadd231ps on this core), operands in registers, so nothing
 * but the unit's rate limits it; a vdpbf16ps is 16 lanes x 2 products (64 FLOP), an FMA 16
 * x 1 (32). Memory: a 1 GiB buffer (far past any cache), best of reps; read sums it, write
 * stores to it (GB/s counts the bytes stored, not the read-for-ownership the core also
 * does), nt-write with streaming stores, copy reads one half into the other (bytes read +
 * written). */
#define PEAK_CH 12
#define PEAK_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), noinline))
PEAK_TARGET static float peak_units(long n, int fma)
{
    __m512 acc[PEAK_CH];
    for (int k = 0; k < PEAK_CH; k++)
        acc[k] = _mm512_set1_ps((float)k);
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80),
             b = (__m512bh)_mm512_set1_epi32(0x3c003c00);
    __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(1e-7f);
    if (fma)
        for (long i = 0; i < n; i++) {
#pragma GCC unroll 12
            for (int k = 0; k < PEAK_CH; k++)
                acc[k] = _mm512_fmadd_ps(acc[k], x, y);
        }
    else
        for (long i = 0; i < n; i++) {
#pragma GCC unroll 12
            for (int k = 0; k < PEAK_CH; k++)
                acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
        }
    __m512 s = acc[0];
    for (int k = 1; k < PEAK_CH; k++)
        s = _mm512_add_ps(s, acc[k]);
    return _mm512_reduce_add_ps(s);
}
PEAK_TARGET static float peak_read(const float *p, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_load_ps(p + i));
        s1 = _mm512_add_ps(s1, _mm512_load_ps(p + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_load_ps(p + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}
PEAK_TARGET static void peak_write(float *p, size_t n, float v, int nt)
{
    __m512 x = _mm512_set1_ps(v);
    if (nt) {
        for (size_t i = 0; i < n; i += 16)
            _mm512_stream_ps(p + i, x);
        _mm_sfence();
    } else {
        for (size_t i = 0; i < n; i += 16)
            _mm512_store_ps(p + i, x);
    }
}
PEAK_TARGET static void peak_copy(float *d, const float *s, size_t n)
{
    for (size_t i = 0; i < n; i += 16)
        _mm512_store_ps(d + i, _mm512_load_ps(s + i));
}

static int peak(int reps)
{
    if (!nn_bf16_cpu()) {
        fprintf(stderr, "conv-layers --peak: this CPU has no AVX512_BF16\n");
        return 1;
    }
    const long it = 20000000; /* 240 M instructions a kernel: about 0.1 s */
    double g[2] = {0, 0};
    volatile float sink = 0; /* keeps the results, so no loop is dropped */
    for (int f = 0; f < 2; f++)
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now_s();
            sink += peak_units(it, f);
            double t = now_s() - t0, gf = (f ? 32.0 : 64.0) * PEAK_CH * (double)it / t / 1e9;
            g[f] = gf > g[f] ? gf : g[f];
        }
    const size_t bytes = (size_t)1 << 30, n = bytes / sizeof(float);
    float *p = aligned_alloc(64, bytes);
    if (!p)
        return 1;
    memset(p, 0, bytes); /* fault every page in before timing */
    double bw[4] = {0, 0, 0, 0};
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now_s();
        sink += peak_read(p, n);
        double t1 = now_s();
        peak_write(p, n, (float)r, 0);
        double t2 = now_s();
        peak_write(p, n, (float)r, 1);
        double t3 = now_s();
        peak_copy(p + n / 2, p, n / 2);
        double t4 = now_s();
        double b[4] = {bytes / (t1 - t0), bytes / (t2 - t1), bytes / (t3 - t2), bytes / (t4 - t3)};
        for (int k = 0; k < 4; k++)
            bw[k] = b[k] / 1e9 > bw[k] ? b[k] / 1e9 : bw[k];
    }
    free(p);
    printf("# one core, best of %d: vdpbf16ps %.1f GFLOP/s, FP32 FMA %.1f GFLOP/s (%.2fx); "
           "read %.1f GB/s, write %.1f GB/s (RFO not counted), nt-write %.1f GB/s, copy %.1f "
           "GB/s (read + written)\n",
           reps, g[0], g[1], g[0] / g[1], bw[0], bw[1], bw[2], bw[3]);
    printf("peak bf16_gflops=%.1f fp32_gflops=%.1f read_gbs=%.2f write_gbs=%.2f "
           "ntwrite_gbs=%.2f copy_gbs=%.2f\n",
           g[0], g[1], bw[0], bw[1], bw[2], bw[3]);
    return 0;
}

int main(int argc, char **argv)
{
    int only = -1; /* --layer I: only row I of L (0 = the stem) */
    int batch = 64, threads = 2, reps = 2, bf16 = 0, wdiv = 1, inb = 0, outb = 0, stats = 0;
    int bnr50 = 0, pk = 0, r50 = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--algo"))
            nn_conv2d_set_algo(atoi(argv[i + 1]));
        else if (!strcmp(argv[i], "--cpu"))
            use_cpu_clock = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--bf16"))
            bf16 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--in-bf16"))
            inb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out-bf16"))
            outb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--layer"))
            only = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--stats"))
            stats = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--width"))
            wdiv = atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 1;
        else if (!strcmp(argv[i], "--bn-r50"))
            bnr50 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--peak"))
            pk = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--r50"))
            r50 = atoi(argv[i + 1]);
    }
    host_threads_init(threads);
    /* a call into host/nn/nn_api.c pulls its strong nn_api_table() out of the static
     * libeqmhost archive (api.c only has a weak NULL default) */
    if (nn_threads() < 1)
        return 1;
    if (pk)
        return peak(reps);
    if (bnr50)
        return bn_r50(batch, reps);
    const eqm_nn_api *nn = host_api()->nn;
    static const int C18[][7] = {
        /* H, Ci, Co, k, stride, pad, 1 (timed once each; only --r50's rows count convs) */
        {32, 3, 64, 3, 1, 1, 1},    {32, 64, 64, 3, 1, 1, 1},  {32, 64, 128, 3, 2, 1, 1},
        {16, 128, 128, 3, 1, 1, 1}, {32, 64, 128, 1, 2, 0, 1}, {16, 128, 256, 3, 2, 1, 1},
        {8, 256, 256, 3, 1, 1, 1},  {8, 256, 512, 3, 2, 1, 1}, {4, 512, 512, 3, 1, 1, 1},
    };
    /* --r50 1: ResNet-50 v1.5's conv shapes at 224 px (torchvision; the stride on the 3x3),
     * with how many convs of each shape the net has */
    static const int R50[][7] = {
        {224, 3, 64, 7, 2, 3, 1},     {56, 64, 64, 1, 1, 0, 1},     {56, 64, 64, 3, 1, 1, 3},
        {56, 64, 256, 1, 1, 0, 4},    {56, 256, 64, 1, 1, 0, 2},    {56, 256, 128, 1, 1, 0, 1},
        {56, 128, 128, 3, 2, 1, 1},   {28, 128, 512, 1, 1, 0, 4},   {56, 256, 512, 1, 2, 0, 1},
        {28, 512, 128, 1, 1, 0, 3},   {28, 128, 128, 3, 1, 1, 3},   {28, 512, 256, 1, 1, 0, 1},
        {28, 256, 256, 3, 2, 1, 1},   {14, 256, 1024, 1, 1, 0, 6},  {28, 512, 1024, 1, 2, 0, 1},
        {14, 1024, 256, 1, 1, 0, 5},  {14, 256, 256, 3, 1, 1, 5},   {14, 1024, 512, 1, 1, 0, 1},
        {14, 512, 512, 3, 2, 1, 1},   {7, 512, 2048, 1, 1, 0, 3},   {14, 1024, 2048, 1, 2, 0, 1},
        {7, 2048, 512, 1, 1, 0, 2},   {7, 512, 512, 3, 1, 1, 2},
    };
    const int(*L)[7] = r50 ? R50 : C18;
    size_t nl = r50 ? sizeof R50 / sizeof *R50 : sizeof C18 / sizeof *C18;
    double tot[3] = {0, 0, 0}, totg = 0; /* --r50: the net's seconds (x count), its GFLOP */
    if (bf16) {
        const int n = 1024;
        float *a = calloc((size_t)n * n, 4), *b = calloc((size_t)n * n, 4),
              *c = calloc((size_t)n * n, 4);
        for (size_t i = 0; i < (size_t)n * n; i++)
            a[i] = (float)(i % 7) - 3, b[i] = (float)(i % 5) * 0.1f;
        for (int f = 0; f < 2; f++) {
            uint32_t fl = f ? EQM_NN_BF16 : 0;
            double best = 1e9;
            for (int r = 0; r < reps + 1; r++) {
                double t0 = now_s();
                nn_gemm(NULL, fl, 0, 1, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
                double t1 = now_s();
                if (r && t1 - t0 < best)
                    best = t1 - t0;
            }
            printf("# gemm %d^3 %s%s: %.2f ms, %.0f GFLOP/s\n", n, f ? "bf16" : "fp32",
                   f ? (const char *[]){" (emulated)", " (AVX512_BF16)", " (AMX)"}[nn_bf16_native()] : "",
                   best * 1e3,
                   2.0 * n * n * n / best / 1e9);
        }
        free(a), free(b), free(c);
    }
    printf("# batch %d threads %d width 1/%d%s%s%s%s (ms, nominal GFLOP/s)\n", batch, threads,
           wdiv, bf16 ? " bf16" : "", inb ? " in-bf16" : "", outb ? " out-bf16" : "",
           stats ? " fwd=forward_stats" : "");
    for (size_t l = 0; l < nl; l++) {
        if (only >= 0 && (size_t)only != l)
            continue;
        int ci = L[l][1] == 3 ? 3 : L[l][1] / wdiv, co = L[l][2] / wdiv;
        eqm_conv2d_shape s = {batch, L[l][0], L[l][0], ci, co,
                              L[l][3], L[l][3], L[l][4], L[l][5], bf16 ? EQM_NN_BF16 : 0};
        if (inb)
            s.flags |= EQM_NN_IN_BF16;
        int Ho = (s.H + 2 * s.pad - s.kh) / s.stride + 1;
        size_t ni = (size_t)batch * s.H * s.W * s.C_in, no = (size_t)batch * Ho * Ho * s.C_out;
        size_t nw = (size_t)s.C_out * s.kh * s.kw * s.C_in;
        float *x = calloc(ni, 4), *y = calloc(no, 4), *w = calloc(nw, 4), *dx = calloc(ni, 4),
              *dw = calloc(nw, 4);
        for (size_t i = 0; i < ni; i++)
            x[i] = (float)(i % 7) - 3;
        uint16_t *xb = inb ? malloc(ni * sizeof *xb) : NULL;
        for (size_t i = 0; xb && i < ni; i++)
            xb[i] = nn_bf16_from_f32(x[i]);
        const float *xin = xb ? (const float *)(const void *)xb : x;
        for (size_t i = 0; i < nw; i++)
            w[i] = (float)(i % 5) * 0.1f;
        /* --out-bf16: the timed forward writes yb; dX and dW get the float forward's y */
        eqm_conv2d_shape so = s;
        uint16_t *yb = NULL;
        if (outb) {
            so.flags |= EQM_NN_OUT_BF16;
            yb = malloc(no * sizeof *yb);
            nn->conv2d_forward(NULL, &s, y, xin, w);
        }
        float *yo = yb ? (float *)(void *)yb : y;
        double *st = malloc(2 * (size_t)s.C_out * sizeof *st);
        double gf = 2.0 * no * (double)s.kh * s.kw * s.C_in / 1e9;
        double t[3] = {1e9, 1e9, 1e9};
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now_s();
            if (stats)
                nn->conv2d_forward_stats(NULL, &so, yo, xin, w, st);
            else
                nn->conv2d_forward(NULL, &so, yo, xin, w);
            double t1 = now_s();
            nn->conv2d_backward(NULL, &s, dx, NULL, y, xin, w);
            double t2 = now_s();
            nn->conv2d_backward(NULL, &s, NULL, dw, y, xin, w);
            double t3 = now_s();
            if (r) {
                t[0] = t1 - t0 < t[0] ? t1 - t0 : t[0];
                t[1] = t2 - t1 < t[1] ? t2 - t1 : t[1];
                t[2] = t3 - t2 < t[2] ? t3 - t2 : t[2];
            }
        }
        printf("%3dx%-3d %4d->%-4d k%d s%d: fwd %7.1f ms %5.0f | dX %7.1f ms %5.0f | dW %7.1f ms "
               "%5.0f\n",
               s.H, s.W, s.C_in, s.C_out, s.kh, s.stride, t[0] * 1e3, gf / t[0], t[1] * 1e3,
               gf / t[1], t[2] * 1e3, gf / t[2]);
        if (r50) {
            int n = L[l][6], hasdx = l > 0; /* the stem's dX is never asked for */
            printf("    x%d: %.0f ms of the step (fwd %.0f, dX %.0f, dW %.0f)\n", n,
                   n * (t[0] + hasdx * t[1] + t[2]) * 1e3, n * t[0] * 1e3, n * hasdx * t[1] * 1e3,
                   n * t[2] * 1e3);
            tot[0] += n * t[0], tot[1] += n * hasdx * t[1], tot[2] += n * t[2];
            totg += n * gf * (2 + hasdx);
        }
        free(x), free(xb), free(y), free(yb), free(st), free(w), free(dx), free(dw);
    }
    if (r50 && only < 0)
        printf("ResNet-50's convs: %.2f s (fwd %.2f, dX %.2f, dW %.2f), %.0f nominal GFLOP/s "
               "(every tap counted)\n",
               tot[0] + tot[1] + tot[2], tot[0], tot[1], tot[2],
               totg / (tot[0] + tot[1] + tot[2]));
    return 0;
}
