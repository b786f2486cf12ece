/* host/nn/gemm_bf16.c: GEMM with bfloat16 products and fp32 accumulation (EQM_NN_BF16).
 *
 * C = alpha op(A) op(B) + beta C, row-major like cblas_sgemm. The fp32 operands are rounded
 * to bfloat16 (round to nearest even; zero and subnormal inputs become signed zero, NaN
 * stays NaN: what vcvtne2ps2bf16 does) while they are packed; the products of two bf16
 * values are exact in fp32 and are summed in fp32. Debian's OpenBLAS 0.3.21 has no sbgemm,
 * so the kernels are ours.
 *
 * Three implementations with the same numerics up to the order of the fp32 sums:
 * - AMX (CPUs with AMX-BF16, Linux granting the tile state: cpuid, arch_prctl, xgetbv): the
 *   same packing (k padded to 32, rows to 32), 32 x 32 blocks of C in four tiles,
 *   tdpbf16ps on 16 x 32 A tiles and 16-pair x 16-column B tiles read straight out of the B
 *   panel (the packed layout is AMX's VNNI layout). KC = 512. Measured on this machine's
 *   cores (Intel, AMX): 1024^3 at 400-735 GFLOP/s on one core (fp32 sgemm: 145), the
 *   packing (fp32 -> bf16, transposes) is then what limits it.
 * - AVX512_BF16 (checked at run time with cpuid/xgetbv): a packed GEMM in
 *   the Goto layout whose micro-kernel is vdpbf16ps (_mm512_dpbf16_ps: per fp32 lane,
 *   acc += a[2i] b[2i] + a[2i+1] b[2i+1]), 6 rows x 64 columns of C in 24 zmm accumulators.
 *   B (KC x N block) is packed as 64-column panels of k-pairs (one zmm per pair: 16 x 2 bf16
 *   per 16 columns), A (MC x KC block) as 6-row micro-panels, each row's bf16 contiguous
 *   (the kernel broadcasts one 32-bit k-pair per row). KC = 256 (a B panel is 32 KiB: L1),
 *   MC = 192 (an A block is 96 KiB: L2). The functions carry target attributes, so the
 *   project needs no -m flags and the binary runs on any x86-64. On Intel cores with AMX
 *   vdpbf16ps runs at HALF the fp32 FMA rate (measured 105 vs 210 GFLOP/s per core), so
 *   this kernel is slower than sgemm there; it is meant for cores where it runs at 2x
 *   (AMD Zen 4/5). EQM_NN_BF16_NATIVE=0|1|2 caps the choice (emulation, this, AMX).
 * - emulation (any CPU; EQM_NN_BF16_NATIVE=0 forces it): both operands are rounded to bf16
 *   values held in fp32 and multiplied with cblas_sgemm. The products are still exact, so
 *   this is the same arithmetic (in another summation order), at fp32 speed or below: it
 *   exists so that EQM_NN_BF16 means the same numbers everywhere and the tests of the
 *   bf16 ops run on every machine.
 * Threads: nn_gemm_bf16 runs a GEMM's three passes (pack op(B), pack op(A), compute 32 x 32
 *   blocks) across the host's threads, each operand packed once; nn_gemm_bf16_1 runs them
 *   on the calling thread. Every element of C gets the same arithmetic either way.
 * Buffers: grow-only, one pair per calling thread (below), reused by every call.
 * Packed operands: conv2d.c packs im2col rows and its weights straight into the kernels'
 *   layout (nn_bf16_pack_*, nn_gemm_bf16_packed; nn_internal.h).
 */
#include "config.h"

#include <cblas.h>
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nn/nn_internal.h"

uint16_t nn_bf16_from_f32(float f) { return nn_bf16_rne(f); }

float nn_bf16_to_f32(uint16_t b) { return nn_bf16_wide(b); }

void nn_bf16_round(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = nn_bf16_to_f32(nn_bf16_from_f32(src[i]));
}

/* ----------------------------------------------------------------- CPU check ---- */

static int cpu_has_bf16(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
        return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    if ((xlo & 0xe6u) != 0xe6u) /* the OS saves SSE, AVX and the AVX-512 state */
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned need = (1u << 16) | (1u << 30) | (1u << 31); /* avx512 f, bw, vl */
    if ((b & need) != need)
        return 0;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1u; /* AVX512_BF16 */
}

/* AMX-TILE + AMX-BF16 in cpuid, and Linux's permission for this process to use the tile
 * data state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA; Linux >= 5.16). */
static int cpu_has_amx(void)
{
    unsigned a, b, c, d;
    if (!cpu_has_bf16())
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (!((d >> 22) & 1u) || !((d >> 24) & 1u))
        return 0;
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0)
        return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    return (xlo & 0x60000u) == 0x60000u; /* XTILECFG, XTILEDATA enabled by the OS */
}

static int native_v = -1; /* -1: not decided yet */

int nn_bf16_cpu(void)
{
    static int v = -1;
    if (v < 0)
        v = cpu_has_bf16() ? (cpu_has_amx() ? 2 : 1) : 0;
    return v;
}

int nn_bf16_native(void)
{
    if (native_v < 0) {
        const char *e = getenv("EQM_NN_BF16_NATIVE");
        int want = e && *e ? atoi(e) : 2;
        native_v = want < nn_bf16_cpu() ? want : nn_bf16_cpu();
        if (native_v < 0)
            native_v = 0;
    }
    return native_v;
}

void nn_bf16_set_native(int mode)
{
    native_v = mode < nn_bf16_cpu() ? mode : nn_bf16_cpu();
    if (native_v < 0)
        native_v = 0;
}

const char *nn_bf16_kernel_name(void)
{
    static const char *const names[3] = {"emulated (bf16-rounded operands, fp32 sgemm)",
                                         "AVX512_BF16 (vdpbf16ps)", "AMX-BF16 (tdpbf16ps)"};
    int v = nn_bf16_native();
    return names[v >= 0 && v <= 2 ? v : 0];
}

/* ----------------------------------------------------------------- precision ---- */

static uint32_t prec_flags; /* 0 or EQM_NN_BF16: the training thread's precision */

void nn_precision_set(uint32_t flags) { prec_flags = flags & EQM_NN_BF16; }

uint32_t nn_precision(void) { return prec_flags; }

int nn_precision_check(const char *what, int cpu, int emulate, char *err, size_t errlen)
{
    if (cpu > 0 || emulate)
        return EQM_OK;
    if (err && errlen)
        snprintf(err, errlen,
                 "%s: this CPU has neither AVX512_BF16 (with AVX512 F/BW/VL, and the OS "
                 "saving the AVX-512 state) nor AMX-BF16, so bf16 products would only run "
                 "emulated, slower than fp32; set precision = fp32, or run with "
                 "EQM_NN_BF16_NATIVE=0 to use the emulation anyway (the same bf16 products, "
                 "for checking numbers, not for speed)",
                 what);
    return EQM_ERR_UNSUPPORTED;
}

/* ----------------------------------------------------------------- emulation ---- */

static void gemm_emul(int tA, int tB, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    /* copy op(A) as (M, K) and op(B) as (K, N), rounded */
    float *a = malloc(sizeof(float) * (size_t)M * K);
    float *b = malloc(sizeof(float) * (size_t)K * N);
    if (!a || !b) { /* a GEMM has no error path: out of memory, this call runs in fp32 */
        free(a), free(b);
        cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            a[(size_t)i * K + k] = nn_bf16_to_f32(nn_bf16_from_f32(
                tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]));
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            b[(size_t)k * N + j] = nn_bf16_to_f32(nn_bf16_from_f32(
                tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, alpha, a, K, b, N, beta, C,
                ldc);
    free(a), free(b);
}

/* ------------------------------------------------------------------- native ---- */

#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define MR 6
#define NR 64
#define KC 256 /* k per block (even) */
#define MC 192 /* rows per A block (multiple of MR) */

/* 16 x 16 transpose of 32-bit elements: r[i] element j -> r[j] element i. */
BF16_TARGET static inline void tr16(__m512i r[16])
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* r[i + j] lane L: column 4L + j of rows i .. i+3 */
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i ua = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88);
        __m512i ub = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd);
        __m512i va = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
        __m512i vb = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
        t[j] = _mm512_shuffle_i32x4(ua, va, 0x88);
        t[8 + j] = _mm512_shuffle_i32x4(ua, va, 0xdd);
        t[4 + j] = _mm512_shuffle_i32x4(ub, vb, 0x88);
        t[12 + j] = _mm512_shuffle_i32x4(ub, vb, 0xdd);
    }
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

static inline __mmask16 mask16(int n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* 16 k-pairs of one row: elements t = (bf16 x[2t], bf16 x[2t+1]) of x[0 .. nv) (zero past
 * nv), for a row x of contiguous k. */
BF16_TARGET static inline __m512i pairs_of_row(const float *x, int nv)
{
    __m512 x0 = _mm512_maskz_loadu_ps(mask16(nv), x);
    __m512 x1 = _mm512_maskz_loadu_ps(mask16(nv - 16), x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(x1, x0); /* lo x0, hi x1 */
}

/* 16 columns' k-pairs from two k rows: elements t = (bf16 r0[t], bf16 r1[t]), columns past
 * nj zero, r1 NULL = zero. */
BF16_TARGET static inline __m512i pairs_of_cols(const float *r0, const float *r1, int nj)
{
    const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    __mmask16 m = mask16(nj);
    __m512 x0 = r0 ? _mm512_maskz_loadu_ps(m, r0) : _mm512_setzero_ps();
    __m512 x1 = r1 ? _mm512_maskz_loadu_ps(m, r1) : _mm512_setzero_ps();
    return _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
}

/* Pack panel q (columns NR q ..) of op(B)[k0 .. k0+kc, 0 .. N) at dst: pair p is NR uint32
 * (column j's (b(2p, j), b(2p+1, j)) bf16 pair) at dst + p NR, for kp pairs; columns past N
 * and k past kc are zero. */
BF16_TARGET static void pack_b(int tB, const float *B, int ldb, int k0, int kc, int kp, int N,
                               int q, uint32_t *dst)
{
    if (!tB) { /* rows k of B are contiguous over j */
        for (int p = 0; p < kp; p++) {
            int k = k0 + 2 * p;
            const float *r0 = 2 * p < kc ? B + (size_t)k * ldb : NULL;
            const float *r1 = 2 * p + 1 < kc ? B + (size_t)(k + 1) * ldb : NULL;
            for (int v = 0; v < NR / 16; v++) {
                int j = q * NR + v * 16;
                __m512i out = pairs_of_cols(r0 ? r0 + j : NULL, r1 ? r1 + j : NULL, N - j);
                _mm512_store_si512((void *)(dst + (size_t)p * NR + v * 16), out);
            }
        }
        return;
    }
    /* op(B)(k, j) = B[j][k]: a row j gives 16 pairs (over p) per 32 k; 16 columns x 16
     * pairs are transposed in registers so that every store is one 64-byte run */
    for (int v = 0; v < NR / 16; v++) {
        int j0 = q * NR + v * 16;
        for (int p0 = 0; p0 < kp; p0 += 16) {
            __m512i r[16];
            for (int t = 0; t < 16; t++)
                r[t] = j0 + t < N ? pairs_of_row(B + (size_t)(j0 + t) * ldb + k0 + 2 * p0,
                                                 kc - 2 * p0)
                                  : _mm512_setzero_si512();
            tr16(r);
            int np = kp - p0 < 16 ? kp - p0 : 16;
            for (int p = 0; p < np; p++)
                _mm512_store_si512((void *)(dst + (size_t)(p0 + p) * NR + v * 16), r[p]);
        }
    }
}

/* Pack rows [r0, r1) of op(A)[i0 .., k0 .. k0+kc] as rows of kp2 bf16 (k past kc zero),
 * row i at ap + i * kp2 (a 6-row micro-panel of the AVX-512 kernel, or 16-row AMX tiles,
 * are then evenly strided rows); rows from mc on are zero. */
BF16_TARGET static void pack_a(int tA, const float *A, int lda, int i0, int mc, int r0, int r1,
                               int k0, int kc, int kp2, uint16_t *ap)
{
    if (!tA) {
        for (int i = r0; i < r1; i++) {
            uint16_t *dst = ap + (size_t)i * kp2;
            if (i >= mc) {
                memset(dst, 0, sizeof(uint16_t) * (size_t)kp2);
                continue;
            }
            const float *src = A + (size_t)(i0 + i) * lda + k0;
            for (int k = 0; k < kp2; k += 32)
                _mm512_mask_storeu_epi32(dst + k, mask16((kp2 - k) / 2),
                                         pairs_of_row(src + k, kc - k));
        }
        return;
    }
    /* op(A)(i, k) = A[k][i]: two k rows give 16 rows' pairs; 16 pairs x 16 rows are
     * transposed in registers so that every store is one 64-byte run of a packed row */
    const int kp = kp2 / 2;
    for (int ib = r0; ib < r1; ib += 16) {
        int nr = r1 - ib < 16 ? r1 - ib : 16, nv = mc - ib;
        for (int p0 = 0; p0 < kp; p0 += 16) {
            __m512i r[16];
            for (int p = 0; p < 16; p++) {
                int k = 2 * (p0 + p);
                const float *x0 = k < kc && nv > 0 ? A + (size_t)(k0 + k) * lda + i0 + ib : NULL;
                const float *x1 = k + 1 < kc && nv > 0 ? x0 + lda : NULL;
                r[p] = pairs_of_cols(x0, x1, nv);
            }
            tr16(r);
            __mmask16 m = mask16(kp - p0);
            for (int t = 0; t < nr; t++)
                _mm512_mask_storeu_epi32(ap + (size_t)(ib + t) * kp2 + 2 * p0, m, r[t]);
        }
    }
}
/* C[0..mr, 0..nc] (= or +=) alpha * (6 x 64 micro-panel product over kp k-pairs). */
BF16_TARGET static void kernel_6x64(int kp, const uint16_t *a, const uint32_t *b, float *C,
                                    int ldc, int mr, int nc, float alpha, float beta)
{
    __m512 c[MR][4];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 4; v++)
            c[r][v] = _mm512_setzero_ps();
    const size_t rs = (size_t)kp; /* uint32 pairs per packed A row */
    const uint32_t *a32 = (const uint32_t *)(const void *)a;
    for (int p = 0; p < kp; p++) {
        const uint32_t *bq = b + (size_t)p * NR;
        __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)bq);
        __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(bq + 16));
        __m512bh b2 = (__m512bh)_mm512_load_si512((const void *)(bq + 32));
        __m512bh b3 = (__m512bh)_mm512_load_si512((const void *)(bq + 48));
#define ROW(r)                                                                                \
    do {                                                                                      \
        __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a32[(r)*rs + p]);                       \
        c[r][0] = _mm512_dpbf16_ps(c[r][0], ar, b0);                                          \
        c[r][1] = _mm512_dpbf16_ps(c[r][1], ar, b1);                                          \
        c[r][2] = _mm512_dpbf16_ps(c[r][2], ar, b2);                                          \
        c[r][3] = _mm512_dpbf16_ps(c[r][3], ar, b3);                                          \
    } while (0)
        ROW(0);
        ROW(1);
        ROW(2);
        ROW(3);
        ROW(4);
        ROW(5);
#undef ROW
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < mr; r++) {
        float *cr = C + (size_t)r * ldc;
        for (int v = 0; v < 4; v++) {
            int j = v * 16, nj = nc - j;
            if (nj <= 0)
                break;
            __mmask16 m = nj >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nj) - 1);
            __m512 x = _mm512_mul_ps(va, c[r][v]);
            if (beta != 0.f)
                x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cr + j), x);
            _mm512_mask_storeu_ps(cr + j, m, x);
        }
    }
}

/* AMX: C tiles 0-3 (a 32 x 32 block of fp32), A tiles 4-5 (16 rows x 16 k-pairs each),
 * B tiles 6-7 (16 k-pairs x 16 columns each, straight out of the packed B panel). */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

/* Static: ldtilecfg's asm does not tell the compiler that it reads the struct, so a local
 * one's stores were dropped at -O2. */
static const amx_cfg amx_config = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

AMX_TARGET void nn_amx_begin(void) { _tile_loadconfig(&amx_config); }

AMX_TARGET void nn_amx_end(void) { _tile_release(); }

/* C[0..mr, 0..nc] (= or +=) alpha * (32 x 32 block over kp k-pairs, kp % 16 == 0); a: the
 * block's first packed A row (rows kp2 bf16 apart), b: the panel's first column of it. */
AMX_TARGET static void kernel_amx_32x32(int kp, const uint16_t *a, size_t kp2, const uint32_t *b,
                                        float *C, int ldc, int mr, int nc, float alpha,
                                        float beta)
{
    float buf[32 * 32] __attribute__((aligned(64)));
    const size_t as = kp2 * sizeof(uint16_t);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int p = 0; p < kp; p += 16) {
        _tile_loadd(4, a + 2 * (size_t)p, as);
        _tile_loadd(5, a + 16 * kp2 + 2 * (size_t)p, as);
        _tile_loadd(6, b + (size_t)p * NR, NR * sizeof(uint32_t));
        _tile_loadd(7, b + (size_t)p * NR + 16, NR * sizeof(uint32_t));
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, buf, 32 * sizeof(float));
    _tile_stored(1, buf + 16, 32 * sizeof(float));
    _tile_stored(2, buf + 16 * 32, 32 * sizeof(float));
    _tile_stored(3, buf + 16 * 32 + 16, 32 * sizeof(float));
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < mr; r++) {
        float *cr = C + (size_t)r * ldc;
        for (int v = 0; v < 2; v++) {
            int j = v * 16, nj = nc - j;
            if (nj <= 0)
                break;
            __mmask16 m = nj >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nj) - 1);
            __m512 x = _mm512_mul_ps(va, _mm512_load_ps(buf + r * 32 + j));
            if (beta != 0.f)
                x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cr + j), x);
            _mm512_mask_storeu_ps(cr + j, m, x);
        }
    }
}

/* ------------------------------------------------------------ the native driver ---- */

/* Packing buffers: grow-only, one pair per calling thread (a slot in a process-wide table,
 * so that they stay reachable and are reused by every later call of that thread; the
 * pool's workers write into the caller's buffers during its passes). Allocating them per
 * call cost page faults on every call once a second thread ran GEMMs (glibc returns a
 * thread arena's freed top to the kernel: 21% of the CPU time of a 2-thread bf16 step in
 * clear_page). Threads past NSLOTS allocate per call. */
#define NSLOTS 64
static struct {
    void *p[2];
    size_t bytes[2];
} slots[NSLOTS];
static _Atomic int slots_used;
static _Thread_local int my_slot = -1;

/* Buffer `which` (0 B panels, 1 A rows) of at least `bytes`, 64-byte aligned; *tmp set
 * when the caller must free it. NULL when out of memory. */
static void *pack_buf(int which, size_t bytes, int *tmp)
{
    bytes = (bytes + 63) / 64 * 64;
    *tmp = 0;
    if (my_slot < 0) {
        int s = slots_used++;
        my_slot = s < NSLOTS ? s : NSLOTS;
    }
    if (my_slot >= NSLOTS) {
        *tmp = 1;
        return aligned_alloc(64, bytes ? bytes : 64);
    }
    if (slots[my_slot].bytes[which] >= bytes)
        return slots[my_slot].p[which];
    void *p = aligned_alloc(64, bytes);
    if (!p)
        return NULL;
    free(slots[my_slot].p[which]);
    slots[my_slot].p[which] = p;
    slots[my_slot].bytes[which] = bytes;
    return p;
}

/* One GEMM in three passes, each a parallel_for when run through the host (or a plain
 * loop): pack all of op(B) (every k block, NR-column panels), then per chunk of M rows
 * pack op(A) (every k block) and compute the chunk's blocks of C. Nothing is packed
 * twice, and the passes split across threads without re-packing (the former split of
 * the output into parts re-packed the other operand once per part). Every element of C
 * sees the same arithmetic as one thread doing it all: per k block (in order) a kernel
 * sum from zero, then C = alpha sum + (beta on the first block, else 1) C. */
typedef struct {
    int amx, tA, tB, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int kblk, kal, nkb, kpb, np; /* k per block, k padding, blocks, pairs per block, panels */
    int rb, cb, ncb;             /* compute item: rb rows x cb columns; column items */
    int m0, mc, mrows;           /* the chunk: rows m0 .. m0+mc, padded to mrows */
    uint32_t *bp;                /* block b, panel q: bp + (b np + q) kpb NR */
    uint16_t *ap;                /* block b: ap + b mrows 2 kpb, row i at + i 2 kp(b) */
    const uint32_t *bpc;         /* what compute reads: bp, or a caller's packed op(B) */
    const uint16_t *apc;         /* ap, or a caller's packed op(A) */
} gemm_plan;

static int plan_kc(const gemm_plan *g, int b)
{
    return g->K - b * g->kblk < g->kblk ? g->K - b * g->kblk : g->kblk;
}

static int plan_kp(const gemm_plan *g, int b)
{
    return (plan_kc(g, b) + g->kal - 1) / g->kal * g->kal / 2;
}

BF16_TARGET static void pass_pack_b(void *vc, size_t b, size_t e)
{
    const gemm_plan *g = vc;
    for (size_t it = b; it < e; it++) {
        int kb = (int)(it / (size_t)g->np), q = (int)(it % (size_t)g->np);
        pack_b(g->tB, g->B, g->ldb, kb * g->kblk, plan_kc(g, kb), plan_kp(g, kb), g->N, q,
               g->bp + ((size_t)kb * g->np + q) * g->kpb * NR);
    }
}

/* items: groups of g->rb rows of the chunk, every k block */
BF16_TARGET static void pass_pack_a(void *vc, size_t b, size_t e)
{
    const gemm_plan *g = vc;
    int r0 = (int)b * g->rb, r1 = (int)e * g->rb < g->mrows ? (int)e * g->rb : g->mrows;
    for (int kb = 0; kb < g->nkb; kb++)
        pack_a(g->tA, g->A, g->lda, g->m0, g->mc, r0, r1, kb * g->kblk, plan_kc(g, kb),
               2 * plan_kp(g, kb), g->ap + (size_t)kb * g->mrows * 2 * g->kpb);
}

BF16_TARGET static void pass_compute(void *vc, size_t b, size_t e)
{
    const gemm_plan *g = vc;
    if (g->amx)
        nn_amx_begin();
    for (size_t it = b; it < e; it++) {
        int ri = (int)(it / (size_t)g->ncb), ci = (int)(it % (size_t)g->ncb);
        int i0 = ri * g->rb, j0 = ci * g->cb, q = j0 / NR;
        int mr = g->mc - i0 < g->rb ? g->mc - i0 : g->rb;
        int nc = g->N - j0 < g->cb ? g->N - j0 : g->cb;
        float *C = g->C + (size_t)(g->m0 + i0) * g->ldc + j0;
        for (int kb = 0; kb < g->nkb; kb++) {
            int kp = plan_kp(g, kb);
            float bt = kb == 0 ? g->beta : 1.f;
            const uint16_t *a = g->apc + (size_t)kb * g->mrows * 2 * g->kpb + (size_t)i0 * 2 * kp;
            const uint32_t *bq = g->bpc + ((size_t)kb * g->np + q) * g->kpb * NR + (j0 - q * NR);
            if (g->amx) {
                kernel_amx_32x32(kp, a, 2 * (size_t)kp, bq, C, g->ldc, mr, nc, g->alpha, bt);
                continue;
            }
            for (int P = 0; P * MR < mr; P++)
                kernel_6x64(kp, a + (size_t)P * MR * 2 * kp, bq, C + (size_t)P * MR * g->ldc,
                            g->ldc, mr - P * MR < MR ? mr - P * MR : MR, nc, g->alpha, bt);
        }
    }
    if (g->amx)
        nn_amx_end();
}

#define CHUNK_BYTES (8u << 20) /* packed A of one chunk of rows at most (about) */

static void run_pass(eqm_host *h, int par, size_t n, eqm_parallel_fn fn, void *ctx)
{
    if (par)
        nn_parallel(h, n, 1, fn, ctx);
    else
        fn(ctx, 0, n);
}

static void plan_init(gemm_plan *g, int amx, int M, int N, int K)
{
    g->amx = amx;
    g->M = M, g->N = N, g->K = K;
    g->kblk = amx ? 2 * KC : KC;
    g->kal = amx ? 32 : 2;
    g->nkb = (K + g->kblk - 1) / g->kblk;
    g->kpb = plan_kp(g, 0);
    g->np = (N + NR - 1) / NR;
    g->rb = amx ? 32 : 8 * MR;
    g->cb = amx ? 32 : NR;
    g->ncb = (N + g->cb - 1) / g->cb;
}

/* C = alpha op(A) op(B) + beta C. ap_pre / bp_pre: op(A) / op(B) already packed by the
 * caller (nn_bf16_pack_*; then A / B are not read), else NULL. Returns 0 when the buffers
 * could not be had (the caller falls back). */
static int gemm_native(eqm_host *h, int par, int amx, int tA, int tB, int M, int N, int K,
                       float alpha, const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc, const uint16_t *ap_pre,
                       const uint32_t *bp_pre)
{
    gemm_plan g = {.tA = tA, .tB = tB, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha,
                   .beta = beta, .A = A, .B = B, .C = C};
    plan_init(&g, amx, M, N, K);
    /* rows per chunk: a multiple of rb, packed A within CHUNK_BYTES (one chunk when the
     * caller packed op(A)) */
    size_t rowbytes = sizeof(uint16_t) * (size_t)g.nkb * 2 * g.kpb;
    int crows = (int)(CHUNK_BYTES / rowbytes) / g.rb * g.rb;
    if (crows < g.rb)
        crows = g.rb;
    if (ap_pre)
        crows = (M + g.rb - 1) / g.rb * g.rb;
    int mfirst = M < crows ? M : crows;
    int mrmax = (mfirst + g.rb - 1) / g.rb * g.rb;
    int tb = 0, ta = 0;
    uint32_t *bp = NULL;
    uint16_t *ap = NULL;
    if (!bp_pre)
        bp = pack_buf(0, sizeof(uint32_t) * (size_t)g.nkb * g.np * g.kpb * NR, &tb);
    if (!ap_pre)
        ap = pack_buf(1, rowbytes * (size_t)mrmax, &ta);
    if ((!bp_pre && !bp) || (!ap_pre && !ap)) {
        if (tb)
            free(bp);
        if (ta)
            free(ap);
        return 0;
    }
    g.bp = bp;
    g.ap = ap;
    g.bpc = bp_pre ? bp_pre : bp;
    g.apc = ap_pre ? ap_pre : ap;
    if (!bp_pre)
        run_pass(h, par, (size_t)g.nkb * g.np, pass_pack_b, &g);
    for (g.m0 = 0; g.m0 < M; g.m0 += crows) {
        g.mc = M - g.m0 < crows ? M - g.m0 : crows;
        g.mrows = (g.mc + g.rb - 1) / g.rb * g.rb;
        size_t nrb = (size_t)g.mrows / g.rb;
        if (!ap_pre)
            run_pass(h, par, nrb, pass_pack_a, &g);
        run_pass(h, par, nrb * g.ncb, pass_compute, &g);
    }
    if (tb)
        free(bp);
    if (ta)
        free(ap);
    return 1;
}

/* --------------------------------------------- packed operands for conv2d.c ---- */

static void plan_of(const nn_bf16_kdims *d, int M, int N, gemm_plan *g)
{
    memset(g, 0, sizeof *g);
    plan_init(g, d->amx, M, N, d->K);
}

void nn_bf16_kdims_of(int K, nn_bf16_kdims *d)
{
    gemm_plan g;
    memset(&g, 0, sizeof g);
    plan_init(&g, nn_bf16_native() == 2, 1, 1, K);
    d->amx = g.amx, d->K = K, d->kblk = g.kblk, d->nkb = g.nkb, d->kpb = g.kpb, d->rb = g.rb;
}

size_t nn_bf16_a_bytes(const nn_bf16_kdims *d, int M)
{
    size_t mrows = (size_t)(M + d->rb - 1) / d->rb * d->rb;
    return sizeof(uint16_t) * mrows * (size_t)d->nkb * 2 * d->kpb;
}

size_t nn_bf16_b_bytes(const nn_bf16_kdims *d, int N)
{
    return sizeof(uint32_t) * (size_t)d->nkb * (size_t)((N + NR - 1) / NR) * d->kpb * NR;
}

BF16_TARGET void nn_bf16_pack_a_rows(const nn_bf16_kdims *d, int M, const float *x, int r0,
                                     int r1, uint16_t *ap)
{
    gemm_plan g;
    plan_of(d, M, 1, &g);
    int mrows = (M + d->rb - 1) / d->rb * d->rb;
    for (int kb = 0; kb < g.nkb; kb++) {
        int kp = plan_kp(&g, kb);
        uint16_t *blk = ap + (size_t)kb * mrows * 2 * g.kpb;
        if (x)
            pack_a(0, x, d->K, 0, r1 - r0, 0, r1 - r0, kb * g.kblk, plan_kc(&g, kb), 2 * kp,
                   blk + (size_t)r0 * 2 * kp);
        else
            pack_a(0, NULL, 0, 0, 0, r0, r1, 0, 0, 2 * kp, blk);
    }
}

BF16_TARGET void nn_bf16_pack_b(const nn_bf16_kdims *d, int tB, const float *B, int ldb, int N,
                                uint32_t *bp)
{
    gemm_plan g;
    plan_of(d, 1, N, &g);
    g.tB = tB, g.B = B, g.ldb = ldb, g.bp = bp;
    pass_pack_b(&g, 0, (size_t)g.nkb * g.np);
}

BF16_TARGET void nn_bf16_pack_b_pair(const nn_bf16_kdims *d, int N, const float *x0,
                                     const float *x1, int p, uint32_t *bp)
{
    const int half = d->kblk / 2, kb = p / half, pl = p % half, np = (N + NR - 1) / NR;
    for (int q = 0; q < np; q++) {
        uint32_t *dst = bp + (((size_t)kb * np + q) * d->kpb + pl) * NR;
        for (int v = 0; v < NR / 16; v++) {
            int j = q * NR + v * 16;
            __m512i out = pairs_of_cols(x0 ? x0 + j : NULL, x1 ? x1 + j : NULL, N - j);
            _mm512_store_si512((void *)(dst + v * 16), out);
        }
    }
}

int nn_bf16_rows(const nn_bf16_kdims *d, int M) { return (M + d->rb - 1) / d->rb * d->rb; }

int nn_bf16_pairs(const nn_bf16_kdims *d)
{
    gemm_plan g;
    plan_of(d, 1, 1, &g);
    return (g.nkb - 1) * (d->kblk / 2) + plan_kp(&g, g.nkb - 1);
}

static int gemm_trivial(int M, int N, int K, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return 1;
    if (K > 0)
        return 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(size_t)i * ldc + j];
    return 1;
}

int nn_gemm_bf16_packed(const nn_bf16_kdims *d, int tA, int M, int N, float alpha,
                        const float *A, int lda, const uint16_t *ap, const uint32_t *bp,
                        float beta, float *C, int ldc)
{
    if (gemm_trivial(M, N, d->K, beta, C, ldc))
        return 1;
    return gemm_native(NULL, 0, d->amx, tA, 0, M, N, d->K, alpha, A, lda, NULL, 0, beta, C, ldc,
                       ap, bp);
}

/* One GEMM on the calling thread. */
void nn_gemm_bf16_1(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc)
{
    if (gemm_trivial(M, N, K, beta, C, ldc))
        return;
    int mode = nn_bf16_native();
    if (!mode || !gemm_native(NULL, 0, mode == 2, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta,
                              C, ldc, NULL, NULL))
        gemm_emul(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int nn_gemm_bf16(eqm_host *h, int tA, int tB, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int mode = nn_bf16_native();
    if (!mode)
        return 0;
    if (gemm_trivial(M, N, K, beta, C, ldc))
        return 1;
    if (!gemm_native(h, nn_threads() > 1, mode == 2, tA, tB, M, N, K, alpha, A, lda, B, ldb,
                     beta, C, ldc, NULL, NULL))
        gemm_emul(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return 1;
}
/* Test hook: the native conversion of n floats (n a multiple of 32), or 0 without it. */
BF16_TARGET static void cvt_native(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i + 32 <= n; i += 32) {
        __m512 x0 = _mm512_loadu_ps(src + i), x1 = _mm512_loadu_ps(src + i + 16);
        _mm512_storeu_si512((void *)(dst + i), (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
    }
}

int nn_bf16_convert_native(uint16_t *dst, const float *src, size_t n)
{
    if (!nn_bf16_cpu() || n % 32)
        return 0;
    cvt_native(dst, src, n);
    return 1;
}
