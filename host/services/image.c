/* host/shards/image.c: the image services table (api->image, host_api.h).
 *
 * JPEG header reading through TurboJPEG (tjDecompressHeader3); decoding through the libjpeg
 * API of libjpeg-turbo (libjpeg62-turbo), because it offers what the TurboJPEG 2.x API does
 * not: DCT-domain scaling by any M/8, horizontal cropping (jpeg_crop_scanline) and row
 * skipping (jpeg_skip_scanlines) for partial decodes, and the Adobe marker needed to convert
 * CMYK/YCCK images the way Pillow does.  Resampling (crop_resize) follows Pillow's
 * ImagingResample (separable convolution with a triangle filter whose support widens when
 * downscaling, i.e. antialiased bilinear), in 14-bit fixed point.
 *
 * Deliberately left out: progressive-JPEG-specific speedups, 12-bit JPEGs, colour
 * management (ICC profiles are ignored as Pillow's convert("RGB") ignores them).
 * Dimensions: W, H original image; w, h output; C = 3 (RGB) unless stated.
 * Threading: every function is reentrant (no shared mutable state).
 */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <turbojpeg.h>

#include "core.h"

/* ------------------------------------------------------------------ header ------ */

static int img_jpeg_header(eqm_host *h, const void *data, size_t n, int *w, int *ht, int *c)
{
    if (!data || n < 4 || n > (size_t)0xffffffffu)
        return host_ctx_set_error(h, EQM_ERR_FORMAT, "jpeg_header: %zu bytes is not a JPEG", n);
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "jpeg_header: tjInitDecompress failed");
    int W = 0, H = 0, sub = 0, cs = 0;
    int rc = tjDecompressHeader3(tj, data, (unsigned long)n, &W, &H, &sub, &cs);
    if (rc) {
        host_ctx_set_error(h, EQM_ERR_FORMAT, "jpeg_header: %s", tjGetErrorStr2(tj));
        tjDestroy(tj);
        return EQM_ERR_FORMAT;
    }
    tjDestroy(tj);
    if (W <= 0 || H <= 0)
        return host_ctx_set_error(h, EQM_ERR_FORMAT, "jpeg_header: bad size %dx%d", W, H);
    if (w)
        *w = W;
    if (ht)
        *ht = H;
    if (c)
        *c = cs == TJCS_GRAY ? 1 : (cs == TJCS_CMYK || cs == TJCS_YCCK) ? 4 : 3;
    return EQM_OK;
}

/* ------------------------------------------------------------------ decode ------ */

struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int eof_warning; /* premature end of data: the image is truncated */
    char msg[JMSG_LENGTH_MAX];
};

static void jerr_exit(j_common_ptr ci)
{
    struct jerr *e = (struct jerr *)ci->err;
    (*ci->err->format_message)(ci, e->msg);
    longjmp(e->jb, 1);
}

static void jerr_emit(j_common_ptr ci, int level)
{
    struct jerr *e = (struct jerr *)ci->err;
    if (level < 0) {
        /* Warnings: "premature end of data" means a truncated file (Pillow refuses it
         * too); other warnings (extraneous bytes before a marker...) are harmless. */
        if (ci->err->msg_code == JWRN_JPEG_EOF) {
            e->eof_warning = 1;
            (*ci->err->format_message)(ci, e->msg);
        }
        ci->err->num_warnings++;
    }
}

static void jerr_output(j_common_ptr ci) { (void)ci; }

/* CMYK to RGB as Pillow: r = (255 - c) * (255 - k) / 255; Adobe files store inverted
 * values (Pillow's "CMYK;I" raw mode). */
static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int w, int inverted)
{
    for (int x = 0; x < w; x++) {
        int c = in[4 * x], m = in[4 * x + 1], y = in[4 * x + 2], k = in[4 * x + 3];
        if (!inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        /* MULDIV255 as Pillow: (a*b + 128 + ((a*b + 128) >> 8)) >> 8 */
        int t;
        t = c * k + 128;
        out[3 * x] = (uint8_t)((t + (t >> 8)) >> 8);
        t = m * k + 128;
        out[3 * x + 1] = (uint8_t)((t + (t >> 8)) >> 8);
        t = y * k + 128;
        out[3 * x + 2] = (uint8_t)((t + (t >> 8)) >> 8);
    }
}

/* Decode rows [ry, ry+rh) and at least columns [rx, rx+rw) of the image scaled by
 * num/8. rw == 0 means the full width, rh == 0 the full height. On success `out` holds the
 * rows with out->w >= rw columns starting at scaled column *ox. */
typedef struct region {
    int x, y, w, h;
} region;

static int decode_impl(eqm_host *h, const void *data, size_t n, int num, region *rg,
                       eqm_image *out, size_t cap, int *ox, int *oy)
{
    if (!data || n < 4 || !out || !out->data || num < 1 || num > 8)
        return host_ctx_set_error(h, EQM_ERR_INVAL, "jpeg_decode: bad arguments (n=%zu, "
                                  "scale %d/8)", n, num);
    struct jpeg_decompress_struct ci;
    struct jerr e;
    memset(&e, 0, sizeof e);
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jerr_exit;
    e.pub.emit_message = jerr_emit;
    e.pub.output_message = jerr_output;
    uint8_t *volatile rowbuf = NULL;
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&ci);
        free(rowbuf);
        return host_ctx_set_error(h, EQM_ERR_FORMAT, "corrupt JPEG: %s", e.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, (const unsigned char *)data, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    int inverted = cmyk && ci.saw_Adobe_marker;
    ci.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    ci.scale_num = (unsigned)num;
    ci.scale_denom = 8;
    ci.dct_method = JDCT_ISLOW;
    jpeg_calc_output_dimensions(&ci);
    int SW = (int)ci.output_width, SH = (int)ci.output_height;
    if (rg->w <= 0) {
        rg->x = 0;
        rg->w = SW;
    }
    if (rg->h <= 0) {
        rg->y = 0;
        rg->h = SH;
    }
    const int rx = rg->x, ry = rg->y, rw = rg->w, rh = rg->h;
    if (rx < 0 || ry < 0 || rx + rw > SW || ry + rh > SH) {
        jpeg_destroy_decompress(&ci);
        return host_ctx_set_error(h, EQM_ERR_INVAL,
                                  "jpeg_decode: region %d,%d %dx%d outside the %dx%d scaled image",
                                  rx, ry, rw, rh, SW, SH);
    }
    jpeg_start_decompress(&ci);
    JDIMENSION xoff = (JDIMENSION)rx, cw = (JDIMENSION)rw;
    if (rw < SW)
        jpeg_crop_scanline(&ci, &xoff, &cw); /* widens to iMCU boundaries */
    size_t need = (size_t)cw * (size_t)rh * 3;
    if (need > cap) {
        jpeg_destroy_decompress(&ci);
        return host_ctx_set_error(h, EQM_ERR_INVAL,
                                  "jpeg_decode: output needs %zu bytes, buffer has %zu", need,
                                  cap);
    }
    if (cmyk)
        rowbuf = malloc((size_t)cw * 4);
    if (cmyk && !rowbuf) {
        jpeg_destroy_decompress(&ci);
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "jpeg_decode: out of memory");
    }
    if (ry > 0)
        jpeg_skip_scanlines(&ci, (JDIMENSION)ry);
    uint8_t *dst = out->data;
    for (int y = 0; y < rh; y++) {
        JSAMPROW row = cmyk ? rowbuf : dst + (size_t)y * cw * 3;
        if (jpeg_read_scanlines(&ci, &row, 1) != 1) {
            longjmp(e.jb, 1); /* suspension cannot happen with a memory source */
        }
        if (e.eof_warning)
            break;
        if (cmyk)
            cmyk_row_to_rgb(rowbuf, dst + (size_t)y * cw * 3, (int)cw, inverted);
    }
    if (e.eof_warning) {
        jpeg_destroy_decompress(&ci);
        free(rowbuf);
        return host_ctx_set_error(h, EQM_ERR_FORMAT, "corrupt JPEG: %s (truncated data)",
                                  e.msg);
    }
    jpeg_abort_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(rowbuf);
    out->w = (int)cw;
    out->h = rh;
    out->c = 3;
    out->stride = (int)cw * 3;
    out->format = EQM_PIX_U8;
    if (ox)
        *ox = (int)xoff;
    if (oy)
        *oy = ry;
    return EQM_OK;
}

static int img_jpeg_decode(eqm_host *h, const void *data, size_t n, int scale_denom,
                           eqm_image *out, size_t cap)
{
    if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8)
        return host_ctx_set_error(h, EQM_ERR_INVAL,
                                  "jpeg_decode: scale_denom %d (use 1, 2, 4 or 8)", scale_denom);
    region rg = {0, 0, 0, 0};
    return decode_impl(h, data, n, 8 / scale_denom, &rg, out, cap, NULL, NULL);
}

static int img_jpeg_decode_region(eqm_host *h, const void *data, size_t n, int scale_num,
                                  int x, int y, int w, int ht, eqm_image *out, size_t cap,
                                  int *out_x, int *out_y)
{
    if (w < 0 || ht < 0)
        return host_ctx_set_error(h, EQM_ERR_INVAL, "jpeg_decode_region: negative size");
    region rg = {x, y, w, ht};
    return decode_impl(h, data, n, scale_num, &rg, out, cap, out_x, out_y);
}

/* ------------------------------------------------------------------ resample ---- */
/* Pillow ImagingResample: for output pixel i, centre = x0 + (i + 0.5) * scale, support =
 * max(scale, 1) (triangle filter of radius 1 in the source scale), weights normalised. */

#define PREC 14

typedef struct coeffs {
    int n_out, kmax;
    int *lo, *cnt; /* (n_out) */
    int32_t *k;    /* (n_out, kmax) */
} coeffs;

static void coeffs_free(coeffs *c)
{
    free(c->lo);
    free(c->cnt);
    free(c->k);
}

static int coeffs_make(coeffs *c, int in_size, double x0, double x1, int n_out)
{
    double scale = (x1 - x0) / n_out;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * fscale;
    int kmax = (int)ceil(support) * 2 + 1;
    c->n_out = n_out;
    c->kmax = kmax;
    c->lo = malloc(sizeof(int) * (size_t)n_out);
    c->cnt = malloc(sizeof(int) * (size_t)n_out);
    c->k = malloc(sizeof(int32_t) * (size_t)n_out * (size_t)kmax);
    double *tmp = malloc(sizeof(double) * (size_t)kmax);
    if (!c->lo || !c->cnt || !c->k || !tmp) {
        free(tmp);
        coeffs_free(c);
        return -1;
    }
    for (int i = 0; i < n_out; i++) {
        double center = x0 + (i + 0.5) * scale;
        double ss = 1.0 / fscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        if (xmax > kmax)
            xmax = kmax;
        double ww = 0;
        for (int x = 0; x < xmax; x++) {
            double d = (x + xmin - center + 0.5) * ss;
            double v = d < 0 ? -d : d;
            v = v < 1.0 ? 1.0 - v : 0.0;
            tmp[x] = v;
            ww += v;
        }
        int32_t *k = c->k + (size_t)i * kmax;
        for (int x = 0; x < kmax; x++) {
            double v = x < xmax && ww != 0 ? tmp[x] / ww : 0.0;
            k[x] = (int32_t)lround(v * (1 << PREC));
        }
        c->lo[i] = xmin;
        c->cnt[i] = xmax;
    }
    free(tmp);
    return 0;
}

static inline uint8_t clip8(int32_t v)
{
    v = (v + (1 << (PREC - 1))) >> PREC;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Vertical filter: output row j = sum_t k[j][t] * src row (lo[j] + t - y_off), over n
 * elements per row. Vectorised (AVX2 clone where the CPU has it). */
__attribute__((target_clones("avx2", "default"), optimize("O3")))
static void vpass(const uint8_t *src, int stride, const coeffs *cy, int y_off, size_t n,
                  int32_t *acc, uint8_t *dst, int dst_stride, int rows)
{
    for (int j = 0; j < rows; j++) {
        const int32_t *k = cy->k + (size_t)j * cy->kmax;
        const uint8_t *s0 = src + (size_t)(cy->lo[j] - y_off) * stride;
        int32_t k0 = k[0];
        for (size_t x = 0; x < n; x++)
            acc[x] = s0[x] * k0 + (1 << (PREC - 1));
        for (int t = 1; t < cy->cnt[j]; t++) {
            const uint8_t *s = src + (size_t)(cy->lo[j] + t - y_off) * stride;
            int32_t kk = k[t];
            for (size_t x = 0; x < n; x++)
                acc[x] += s[x] * kk;
        }
        uint8_t *d = dst + (size_t)j * dst_stride;
        for (size_t x = 0; x < n; x++) {
            int32_t v = acc[x] >> PREC;
            d[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_VPASS_AVX2 1
/* vpass with AVX2 intrinsics: taps in pairs, the two source rows' bytes interleaved and
 * multiplied-added by (k[t], k[t+1]) with vpmaddwd (16 pixels per step; the weights are
 * 0..2^PREC, so 16-bit). The same integer sums as vpass: identical output. */
__attribute__((target("avx2")))
static void vpass_avx2(const uint8_t *src, int stride, const coeffs *cy, int y_off, size_t n,
                       int32_t *acc, uint8_t *dst, int dst_stride, int rows)
{
    for (int j = 0; j < rows; j++) {
        const int32_t *k = cy->k + (size_t)j * cy->kmax;
        const int cnt = cy->cnt[j];
        const uint8_t *s0 = src + (size_t)(cy->lo[j] - y_off) * stride;
        uint8_t *d = dst + (size_t)j * dst_stride;
        size_t x = 0;
        for (; x + 16 <= n; x += 16) {
            __m256i a0 = _mm256_set1_epi32(1 << (PREC - 1)), a1 = a0;
            const uint8_t *s = s0 + x;
            int t = 0;
            for (; t + 1 < cnt; t += 2, s += 2 * (size_t)stride) {
                __m128i r0 = _mm_loadu_si128((const __m128i *)(const void *)s);
                __m128i r1 = _mm_loadu_si128((const __m128i *)(const void *)(s + stride));
                __m256i kk = _mm256_set1_epi32((int32_t)(((uint32_t)k[t] & 0xffffu) |
                                                         ((uint32_t)k[t + 1] << 16)));
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(
                                              _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(r0, r1)), kk));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(
                                              _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(r0, r1)), kk));
            }
            if (t < cnt) {
                __m128i r0 = _mm_loadu_si128((const __m128i *)(const void *)s);
                __m256i kk = _mm256_set1_epi32(k[t] & 0xffff);
                __m128i z = _mm_setzero_si128();
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(
                                              _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(r0, z)), kk));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(
                                              _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(r0, z)), kk));
            }
            a0 = _mm256_srai_epi32(a0, PREC);
            a1 = _mm256_srai_epi32(a1, PREC);
            /* a0: pixels 0..7, a1: 8..15 */
            __m128i p0 = _mm_packs_epi32(_mm256_castsi256_si128(a0),
                                         _mm256_extracti128_si256(a0, 1));
            __m128i p1 = _mm_packs_epi32(_mm256_castsi256_si128(a1),
                                         _mm256_extracti128_si256(a1, 1));
            _mm_storeu_si128((__m128i *)(void *)(d + x), _mm_packus_epi16(p0, p1));
        }
        for (; x < n; x++) {
            int32_t a = (1 << (PREC - 1));
            for (int t = 0; t < cnt; t++)
                a += s0[(size_t)t * stride + x] * k[t];
            int32_t v = a >> PREC;
            d[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    (void)acc;
}
#endif

static void vpass_any(const uint8_t *src, int stride, const coeffs *cy, int y_off, size_t n,
                      int32_t *acc, uint8_t *dst, int dst_stride, int rows)
{
#ifdef HAVE_VPASS_AVX2
    if (__builtin_cpu_supports("avx2")) {
        vpass_avx2(src, stride, cy, y_off, n, acc, dst, dst_stride, rows);
        return;
    }
#endif
    vpass(src, stride, cy, y_off, n, acc, dst, dst_stride, rows);
}

/* Pixel transpose: dst[c][r] = src[r][c] for a rows x cols block of C-byte pixels. Lets the
 * horizontal filter run as a (vectorised) vertical one. */
static void transpose_px(const uint8_t *src, int src_stride, int rows, int cols, int C,
                         uint8_t *dst, int dst_stride)
{
    enum { BS = 32 };
    for (int r0 = 0; r0 < rows; r0 += BS)
        for (int c0 = 0; c0 < cols; c0 += BS) {
            int r1 = r0 + BS < rows ? r0 + BS : rows, c1 = c0 + BS < cols ? c0 + BS : cols;
            for (int r = r0; r < r1; r++) {
                const uint8_t *s = src + (size_t)r * src_stride + (size_t)c0 * C;
                if (C == 3) {
                    /* 4-byte copies (the 4th byte is overwritten later or lies inside the
                     * row: not for the last column / row, copied bytewise) */
                    int cfast = c1 < cols ? c1 : cols - 1;
                    int c = c0;
                    if (r + 1 < rows)
                        for (; c < cfast; c++, s += 3) {
                            uint32_t v;
                            memcpy(&v, s, 4);
                            memcpy(dst + (size_t)c * dst_stride + (size_t)r * 3, &v, 4);
                        }
                    for (; c < c1; c++, s += 3) {
                        uint8_t *d = dst + (size_t)c * dst_stride + (size_t)r * 3;
                        d[0] = s[0];
                        d[1] = s[1];
                        d[2] = s[2];
                    }
                }
                else
                    for (int c = c0; c < c1; c++, s++)
                        dst[(size_t)c * dst_stride + r] = *s;
            }
        }
}

/* Crop box (x0, y0, cw, ch) of `in` (float source pixels, Pillow's `box`), resampled to
 * out->w x out->h. in and out are U8 with 1 or 3 channels (same c). out->data is
 * caller-owned with out->stride set (elements). */
static int img_crop_resize(eqm_host *h, const eqm_image *in, float x0, float y0, float cw,
                           float ch, eqm_image *out)
{
    if (!in || !out || !in->data || !out->data || in->format != EQM_PIX_U8 ||
        out->format != EQM_PIX_U8 || in->c != out->c || (in->c != 1 && in->c != 3) ||
        out->w <= 0 || out->h <= 0 || !(cw > 0) || !(ch > 0) || x0 < 0 || y0 < 0 ||
        x0 + cw > in->w + 1e-3f || y0 + ch > in->h + 1e-3f)
        return host_ctx_set_error(h, EQM_ERR_INVAL,
                                  "crop_resize: bad arguments (box %g,%g %gx%g of %dx%d, out "
                                  "%dx%d)", x0, y0, cw, ch, in ? in->w : 0, in ? in->h : 0,
                                  out ? out->w : 0, out ? out->h : 0);
    const int C = in->c;
    coeffs cx, cy;
    if (coeffs_make(&cx, in->w, x0, (double)x0 + cw, out->w))
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "crop_resize: out of memory");
    if (coeffs_make(&cy, in->h, y0, (double)y0 + ch, out->h)) {
        coeffs_free(&cx);
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "crop_resize: out of memory");
    }
    const int OW = out->w, OH = out->h;
    /* source rows the vertical filter reads, source columns the horizontal one reads */
    int ylo = in->h, yhi = 0, xlo = in->w, xhi = 0;
    for (int i = 0; i < OH; i++) {
        ylo = cy.lo[i] < ylo ? cy.lo[i] : ylo;
        yhi = cy.lo[i] + cy.cnt[i] > yhi ? cy.lo[i] + cy.cnt[i] : yhi;
    }
    for (int i = 0; i < OW; i++) {
        xlo = cx.lo[i] < xlo ? cx.lo[i] : xlo;
        xhi = cx.lo[i] + cx.cnt[i] > xhi ? cx.lo[i] + cx.cnt[i] : xhi;
    }
    if (ylo >= yhi)
        ylo = yhi = 0;
    if (xlo >= xhi)
        xlo = xhi = 0;
    int nrows = yhi - ylo, ncols = xhi - xlo;
    /* Pillow filters horizontally first. When the box shrinks vertically, filtering
     * vertically first touches fewer pixels: the same separable filter, rounding to 8 bits
     * in between as Pillow does (results may differ from Pillow's by 1 level). */
    int vfirst = nrows > OH;
    /* Both passes run as vertical (vectorised) passes; the horizontal one on transposed
     * pixels:
     *   vfirst: V(src) -> A (OH, ncols) -> transpose -> B (ncols, OH) -> V(cx) -> D (OW, OH)
     *           -> transpose -> out
     *   else:   transpose(src rows ylo..yhi) -> B (ncols, nrows) -> V(cx) -> D (OW, nrows)
     *           -> transpose -> A (nrows, OW) -> V(cy) -> out */
    int mid_rows = vfirst ? OH : nrows; /* rows of the image between the two filters */
    size_t a_bytes = (size_t)mid_rows * (size_t)(ncols > OW ? ncols : OW) * C;
    size_t b_bytes = (size_t)ncols * mid_rows * C;
    size_t d_bytes = (size_t)OW * mid_rows * C;
    size_t acc_n = (size_t)(ncols > OW ? ncols : OW) * C;
    if ((size_t)mid_rows * C > acc_n)
        acc_n = (size_t)mid_rows * C;
    /* per-thread scratch, kept between calls: large temporaries would otherwise be mmap'ed
     * and page-faulted in on every call */
    static __thread uint8_t *tls_tmp;
    static __thread size_t tls_cap;
    size_t a_al = (a_bytes + 63) & ~(size_t)63, b_al = (b_bytes + 63) & ~(size_t)63,
           d_al = (d_bytes + 63) & ~(size_t)63;
    size_t need = a_al + b_al + d_al + sizeof(int32_t) * (acc_n ? acc_n : 1);
    if (need > tls_cap) {
        free(tls_tmp);
        tls_tmp = malloc(need);
        tls_cap = tls_tmp ? need : 0;
    }
    uint8_t *A = tls_tmp;
    if (!A) {
        coeffs_free(&cx);
        coeffs_free(&cy);
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "crop_resize: out of memory");
    }
    uint8_t *B = A + a_al, *D = B + b_al;
    int32_t *acc = (int32_t *)(void *)(D + d_al);
    const uint8_t *src = in->data;
    uint8_t *dst = out->data;
    if (vfirst) {
        vpass_any(src + (size_t)xlo * C, in->stride, &cy, 0, (size_t)ncols * C, acc, A,
              ncols * C, OH);
        transpose_px(A, ncols * C, OH, ncols, C, B, OH * C);
        vpass_any(B, OH * C, &cx, xlo, (size_t)OH * C, acc, D, OH * C, OW);
        transpose_px(D, OH * C, OW, OH, C, dst, out->stride);
    } else {
        transpose_px(src + (size_t)ylo * in->stride + (size_t)xlo * C, in->stride, nrows, ncols,
                     C, B, nrows * C);
        vpass_any(B, nrows * C, &cx, xlo, (size_t)nrows * C, acc, D, nrows * C, OW);
        transpose_px(D, nrows * C, OW, nrows, C, A, OW * C);
        vpass_any(A, OW * C, &cy, ylo, (size_t)OW * C, acc, dst, out->stride, OH);
    }
    coeffs_free(&cx);
    coeffs_free(&cy);
    return EQM_OK;
}

static const eqm_image_api the_image_api = {
    .size = sizeof(eqm_image_api),
    .jpeg_header = img_jpeg_header,
    .jpeg_decode = img_jpeg_decode,
    .jpeg_decode_region = img_jpeg_decode_region,
    .crop_resize = img_crop_resize,
};

const eqm_image_api *image_api_table(void) { return &the_image_api; }
