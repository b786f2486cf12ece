/* tests/shards/check_image.c: the host image services (host/services/image.c and
 * resample.c) through api->image: JPEG header, full/scaled/partial decode of RGB, grayscale
 * and CMYK JPEGs made with the TurboJPEG encoder, corrupt and truncated data, crop_resize
 * and resample against Pillow (fixtures/resize_ref.bin and resample_ref.bin from
 * gen_fixtures.py). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "shards/shards.h"

#include "shard_util.h"

static const eqm_image_api *img_api(void)
{
    const eqm_host_api *api = host_api();
    ck_assert_ptr_nonnull(api->image);
    return api->image;
}

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m)
            m = d;
    }
    return m;
}

START_TEST(test_header_and_full_decode)
{
    const eqm_image_api *im = img_api();
    eqm_host *h = host_ctx_create("test");
    unsigned char *j;
    unsigned long n;
    ck_assert_int_eq(su_jpeg(61, 37, SU_RGB, 5, &j, &n), 0);
    int w, ht, c;
    ck_assert_int_eq(im->jpeg_header(h, j, n, &w, &ht, &c), EQM_OK);
    ck_assert_int_eq(w, 61);
    ck_assert_int_eq(ht, 37);
    ck_assert_int_eq(c, 3);
    uint8_t *buf = malloc(61 * 37 * 3);
    eqm_image out = {.data = buf};
    ck_assert_int_eq(im->jpeg_decode(h, j, n, 1, &out, 61 * 37 * 3), EQM_OK);
    ck_assert_int_eq(out.w, 61);
    ck_assert_int_eq(out.h, 37);
    ck_assert_int_eq(out.stride, 61 * 3);
    uint8_t *ref = su_pattern(61, 37, 5);
    /* q95 4:2:0 of a smooth pattern: close to the source */
    double mse = 0;
    for (size_t i = 0; i < 61 * 37 * 3; i++)
        mse += (buf[i] - ref[i]) * (double)(buf[i] - ref[i]);
    mse /= 61 * 37 * 3;
    ck_assert_msg(mse < 12.0, "mse %g", mse);
    /* too small a buffer is refused, not overrun */
    ck_assert_int_eq(im->jpeg_decode(h, j, n, 1, &out, 100), EQM_ERR_INVAL);
    ck_assert_int_eq(im->jpeg_decode(h, j, n, 3, &out, 61 * 37 * 3), EQM_ERR_INVAL);
    free(ref);
    free(buf);
    tjFree(j);
    host_ctx_destroy(h);
}
END_TEST

START_TEST(test_scaled_decode)
{
    const eqm_image_api *im = img_api();
    eqm_host *h = host_ctx_create("test");
    unsigned char *j;
    unsigned long n;
    ck_assert_int_eq(su_jpeg(100, 75, SU_RGB, 2, &j, &n), 0);
    uint8_t *full = malloc(100 * 75 * 3), *half = malloc(100 * 75 * 3);
    eqm_image f = {.data = full}, hf = {.data = half};
    ck_assert_int_eq(im->jpeg_decode(h, j, n, 1, &f, 100 * 75 * 3), EQM_OK);
    ck_assert_int_eq(im->jpeg_decode(h, j, n, 2, &hf, 100 * 75 * 3), EQM_OK);
    ck_assert_int_eq(hf.w, 50);
    ck_assert_int_eq(hf.h, 38); /* ceil(75 / 2) */
    /* the DCT-scaled image approximates 2x2 box averages of the full decode */
    int worst = 0;
    for (int y = 0; y < 37; y++)
        for (int x = 0; x < 50; x++)
            for (int k = 0; k < 3; k++) {
                int s = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        s += full[((2 * y + dy) * 100 + 2 * x + dx) * 3 + k];
                int d = abs(s / 4 - half[(y * 50 + x) * 3 + k]);
                if (d > worst)
                    worst = d;
            }
    ck_assert_msg(worst <= 12, "scaled decode differs from box average by %d", worst);
    /* 3/8 through the region call */
    int ox, oy;
    ck_assert_int_eq(im->jpeg_decode_region(h, j, n, 3, 0, 0, 0, 0, &hf, 100 * 75 * 3, &ox, &oy),
                     EQM_OK);
    ck_assert_int_eq(hf.w, 38);
    ck_assert_int_eq(hf.h, 29);
    free(full);
    free(half);
    tjFree(j);
    host_ctx_destroy(h);
}
END_TEST

START_TEST(test_region_decode)
{
    const eqm_image_api *im = img_api();
    eqm_host *h = host_ctx_create("test");
    unsigned char *j;
    unsigned long n;
    ck_assert_int_eq(su_jpeg(200, 120, SU_RGB, 9, &j, &n), 0);
    uint8_t *full = malloc(200 * 120 * 3), *part = malloc(200 * 120 * 3);
    eqm_image f = {.data = full}, p = {.data = part};
    ck_assert_int_eq(im->jpeg_decode(h, j, n, 1, &f, 200 * 120 * 3), EQM_OK);
    int ox = -1, oy = -1;
    ck_assert_int_eq(im->jpeg_decode_region(h, j, n, 8, 70, 33, 50, 40, &p, 200 * 120 * 3,
                                            &ox, &oy),
                     EQM_OK);
    ck_assert_int_eq(oy, 33);
    ck_assert_int_le(ox, 70);
    ck_assert_int_ge(ox + p.w, 120);
    ck_assert_int_eq(p.h, 40);
    ck_assert_int_lt(p.w, 200); /* really cropped */
    /* the requested window matches the full decode (fancy upsampling may differ by a
     * little at the iMCU edge of the crop, not inside the window) */
    int worst = 0;
    for (int y = 0; y < 40; y++)
        for (int x = 70; x < 120; x++)
            for (int k = 0; k < 3; k++) {
                int a = full[((33 + y) * 200 + x) * 3 + k];
                int b = part[(y * p.w + (x - ox)) * 3 + k];
                if (abs(a - b) > worst)
                    worst = abs(a - b);
            }
    ck_assert_msg(worst <= 2, "region differs from full decode by %d", worst);
    /* outside the image */
    ck_assert_int_eq(im->jpeg_decode_region(h, j, n, 8, 190, 0, 20, 10, &p, 200 * 120 * 3,
                                            &ox, &oy),
                     EQM_ERR_INVAL);
    free(full);
    free(part);
    tjFree(j);
    host_ctx_destroy(h);
}
END_TEST

START_TEST(test_gray_and_cmyk)
{
    const eqm_image_api *im = img_api();
    eqm_host *h = host_ctx_create("test");
    unsigned char *j;
    unsigned long n;
    int w, ht, c;
    uint8_t *buf = malloc(48 * 32 * 3);
    uint8_t *ref = su_pattern(48, 32, 4);
    eqm_image out = {.data = buf};
    /* grayscale: R = G = B = luma */
    ck_assert_int_eq(su_jpeg(48, 32, SU_GRAY, 4, &j, &n), 0);
    ck_assert_int_eq(im->jpeg_header(h, j, n, &w, &ht, &c), EQM_OK);
    ck_assert_int_eq(c, 1);
    ck_assert_int_eq(im->jpeg_decode(h, j, n, 1, &out, 48 * 32 * 3), EQM_OK);
    ck_assert_int_eq(out.c, 3);
    for (int i = 0; i < 48 * 32; i++) {
        ck_assert_int_eq(buf[3 * i], buf[3 * i + 1]);
        ck_assert_int_eq(buf[3 * i], buf[3 * i + 2]);
        int luma = (ref[3 * i] * 299 + ref[3 * i + 1] * 587 + ref[3 * i + 2] * 114) / 1000;
        ck_assert_int_le(abs(buf[3 * i] - luma), 6);
    }
    tjFree(j);
    /* CMYK (Adobe, inverted) converts back to the pattern, as Pillow does */
    ck_assert_int_eq(su_jpeg(48, 32, SU_CMYK, 4, &j, &n), 0);
    ck_assert_int_eq(im->jpeg_header(h, j, n, &w, &ht, &c), EQM_OK);
    ck_assert_int_eq(c, 4);
    ck_assert_int_eq(im->jpeg_decode(h, j, n, 1, &out, 48 * 32 * 3), EQM_OK);
    ck_assert_int_eq(out.c, 3);
    int md = max_diff(buf, ref, 48 * 32 * 3);
    ck_assert_msg(md <= 8, "CMYK decode differs from the pattern by %d", md);
    tjFree(j);
    free(ref);
    free(buf);
    host_ctx_destroy(h);
}
END_TEST

START_TEST(test_corrupt_and_truncated)
{
    const eqm_image_api *im = img_api();
    eqm_host *h = host_ctx_create("test");
    unsigned char *j;
    unsigned long n;
    ck_assert_int_eq(su_jpeg(64, 64, SU_RGB, 1, &j, &n), 0);
    uint8_t *buf = malloc(64 * 64 * 3);
    eqm_image out = {.data = buf};
    /* truncated: half of the entropy-coded data */
    ck_assert_int_eq(im->jpeg_decode(h, j, n / 2, 1, &out, 64 * 64 * 3), EQM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(host_ctx_error(h), "corrupt JPEG"));
    /* garbage */
    uint8_t junk[300];
    for (int i = 0; i < 300; i++)
        junk[i] = (uint8_t)(i * 7 + 3);
    ck_assert_int_eq(im->jpeg_header(h, junk, sizeof junk, NULL, NULL, NULL), EQM_ERR_FORMAT);
    ck_assert_int_eq(im->jpeg_decode(h, junk, sizeof junk, 1, &out, 64 * 64 * 3),
                     EQM_ERR_FORMAT);
    /* header intact, scan data overwritten: an error or a decoded image, never a crash */
    unsigned char *bad = malloc(n);
    memcpy(bad, j, n);
    for (unsigned long i = n / 3; i < n - 2; i += 5)
        bad[i] = 0xff;
    int rc = im->jpeg_decode(h, bad, n, 1, &out, 64 * 64 * 3);
    ck_assert(rc == EQM_OK || rc == EQM_ERR_FORMAT);
    /* tiny inputs */
    ck_assert_int_eq(im->jpeg_decode(h, j, 2, 1, &out, 64 * 64 * 3), EQM_ERR_INVAL);
    free(bad);
    free(buf);
    tjFree(j);
    host_ctx_destroy(h);
}
END_TEST

START_TEST(test_crop_resize_vs_pillow)
{
    static const float cases[][6] = {
        {0.0f, 0.0f, 23.0f, 17.0f, 10, 7},
        {2.5f, 1.25f, 17.5f, 14.25f, 9, 8},
        {0.0f, 0.0f, 23.0f, 17.0f, 40, 31},
        {4.0f, 3.0f, 8.0f, 6.0f, 24, 24},
    };
    char path[2048];
    const char *src = getenv("EQM_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/shards/fixtures/resize_ref.bin", src ? src : EQM_SRCDIR);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "fixture %s missing (run tests/shards/gen_fixtures.py)", path);
    uint8_t ref[8192];
    size_t nref = fread(ref, 1, sizeof ref, f);
    fclose(f);
    const eqm_image_api *im = img_api();
    eqm_host *h = host_ctx_create("test");
    uint8_t *pat = su_pattern(23, 17, 3);
    eqm_image in = {23, 17, 3, 23 * 3, EQM_PIX_U8, pat};
    size_t off = 0;
    for (int k = 0; k < 4; k++) {
        int ow = (int)cases[k][4], oh = (int)cases[k][5];
        uint8_t *o = malloc((size_t)ow * oh * 3);
        eqm_image out = {ow, oh, 3, ow * 3, EQM_PIX_U8, o};
        ck_assert_int_eq(im->crop_resize(h, &in, cases[k][0], cases[k][1], cases[k][2],
                                         cases[k][3], &out),
                         EQM_OK);
        ck_assert_uint_le(off + (size_t)ow * oh * 3, nref);
        int md = max_diff(o, ref + off, (size_t)ow * oh * 3);
        /* Pillow keeps 22-bit coefficients, we keep 14: at most 1 level apart */
        ck_assert_msg(md <= 1, "case %d: max diff %d vs Pillow", k, md);
        off += (size_t)ow * oh * 3;
        free(o);
    }
    ck_assert_uint_eq(off, nref);
    /* a box outside the image is refused */
    uint8_t o1[12];
    eqm_image out = {2, 2, 3, 6, EQM_PIX_U8, o1};
    ck_assert_int_eq(im->crop_resize(h, &in, 20.0f, 0.0f, 10.0f, 5.0f, &out), EQM_ERR_INVAL);
    free(pat);
    host_ctx_destroy(h);
}
END_TEST

/* Pillow's triangle-filter resample in double precision (horizontal pass, rounded to 8
 * bits, then vertical), for checking crop_resize's vectorised paths on large noisy images
 * where a misplaced lane would show as a large difference. */
static void ref_pass(const double *in, int n_in, int stride_in, int len, double x0, double cw,
                     int n_out, double *out, int stride_out, int step_in, int step_out)
{
    double scale = cw / n_out, fs = scale < 1 ? 1 : scale, support = fs;
    for (int i = 0; i < n_out; i++) {
        double c = x0 + (i + 0.5) * scale;
        int lo = (int)(c - support + 0.5), hi = (int)(c + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > n_in)
            hi = n_in;
        double w[64], ws = 0;
        for (int x = lo; x < hi; x++) {
            double d = fabs((x - c + 0.5) / fs);
            w[x - lo] = d < 1 ? 1 - d : 0;
            ws += w[x - lo];
        }
        for (int e = 0; e < len; e++) {
            double a = 0;
            for (int x = lo; x < hi; x++)
                a += w[x - lo] / ws * in[(size_t)x * step_in + (size_t)e * stride_in];
            a = floor(a + 0.5);
            out[(size_t)i * step_out + (size_t)e * stride_out] = a < 0 ? 0 : a > 255 ? 255 : a;
        }
    }
}

START_TEST(test_crop_resize_large_noise)
{
    const int W = 333, H = 250;
    uint8_t *pix = malloc((size_t)W * H * 3);
    double *src = malloc(sizeof(double) * W * H * 3), *mid = malloc(sizeof(double) * 224 * H * 3),
           *ref = malloc(sizeof(double) * 224 * 224 * 3);
    uint32_t st = 12345;
    for (size_t i = 0; i < (size_t)W * H * 3; i++) {
        st = st * 1664525u + 1013904223u;
        pix[i] = (uint8_t)(st >> 24);
        src[i] = pix[i];
    }
    const eqm_image_api *im = img_api();
    eqm_host *h = host_ctx_create("test");
    eqm_image in = {W, H, 3, W * 3, EQM_PIX_U8, pix};
    /* boxes shrinking (vertical pass first), growing (horizontal first), mixed; odd sizes
     * leave tails after the 16-pixel vector steps */
    static const float cases[][6] = {
        {0, 0, 333, 250, 224, 224}, {10.5f, 7.25f, 150, 120, 224, 224},
        {3, 2, 300, 60, 101, 77},   {100, 40, 41, 200, 224, 37},
    };
    for (int k = 0; k < 4; k++) {
        int ow = (int)cases[k][4], oh = (int)cases[k][5];
        uint8_t *o = malloc((size_t)ow * oh * 3);
        eqm_image out = {ow, oh, 3, ow * 3, EQM_PIX_U8, o};
        ck_assert_int_eq(im->crop_resize(h, &in, cases[k][0], cases[k][1], cases[k][2],
                                         cases[k][3], &out), EQM_OK);
        /* horizontal: rows of H, elements = channels; then vertical */
        for (int y = 0; y < H; y++)
            ref_pass(src + (size_t)y * W * 3, W, 1, 3, cases[k][0], cases[k][2], ow,
                     mid + (size_t)y * ow * 3, 1, 3, 3);
        ref_pass(mid, H, 1, ow * 3, cases[k][1], cases[k][3], oh, ref, 1, (size_t)ow * 3,
                 (size_t)ow * 3);
        int md = 0;
        double sum = 0;
        for (size_t i = 0; i < (size_t)ow * oh * 3; i++) {
            int d = abs((int)o[i] - (int)ref[i]);
            md = d > md ? d : md;
            sum += d;
        }
        ck_assert_msg(md <= 2 && sum / ((double)ow * oh * 3) < 0.5,
                      "case %d: max diff %d, mean %g vs the reference", k, md,
                      sum / ((double)ow * oh * 3));
        free(o);
    }
    free(pix);
    free(src);
    free(mid);
    free(ref);
    host_ctx_destroy(h);
}
END_TEST

/* api->image->resample equals Pillow 9.4 byte for byte (fixtures/resample_ref.bin, cases
 * as RESAMPLE_CASES in gen_fixtures.py), both box modes, both filters, 1 and 3 channels,
 * AVX2 and portable paths; crop_resize equals Pillow's resize(box) exactly; bad calls are
 * refused with a message saying what is wrong. */
static const struct {
    int c, filter, crop;
    double box[4];
    int ow, oh;
} rs_cases[] = {
    {3, EQM_RESAMPLE_BILINEAR, 0, {0, 0, 61, 47}, 20, 15},
    {3, EQM_RESAMPLE_BICUBIC, 0, {0, 0, 61, 47}, 20, 15},
    {3, EQM_RESAMPLE_BICUBIC, 0, {3.5, 2.25, 40.5, 30.75}, 90, 70},
    {3, EQM_RESAMPLE_BICUBIC, 1, {5, 4, 30, 20}, 32, 32},
    {3, EQM_RESAMPLE_BILINEAR, 1, {5, 4, 30, 20}, 13, 9},
    {3, EQM_RESAMPLE_BICUBIC, 1, {2.375, 1.75, 55.125, 44.5}, 16, 12},
    {3, EQM_RESAMPLE_BICUBIC, 0, {2.375, 1.75, 55.125, 44.5}, 16, 12},
    {3, EQM_RESAMPLE_BICUBIC, 1, {0, 0, 61, 47}, 61, 30},
    {1, EQM_RESAMPLE_BICUBIC, 1, {7, 3, 37, 41}, 45, 19},
    {1, EQM_RESAMPLE_BILINEAR, 0, {1.5, 0.5, 58, 45}, 33, 47},
};

START_TEST(test_resample_vs_pillow)
{
    enum { NW = 61, NH = 47 };
    char path[2048];
    const char *srcdir = getenv("EQM_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/shards/fixtures/resample_ref.bin",
             srcdir ? srcdir : EQM_SRCDIR);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "fixture %s missing (run tests/shards/gen_fixtures.py)", path);
    static uint8_t ref[65536];
    size_t nref = fread(ref, 1, sizeof ref, f);
    fclose(f);
    uint8_t noise[NW * NH * 3];
    uint32_t st = 777;
    for (size_t i = 0; i < sizeof noise; i++) {
        st = st * 1664525u + 1013904223u;
        noise[i] = (uint8_t)(st >> 24);
    }
    const eqm_image_api *im = img_api();
    ck_assert(EQM_API_HAS(im, resample));
    eqm_host *h = host_ctx_create("test");
    size_t off = 0;
    for (size_t k = 0; k < sizeof rs_cases / sizeof rs_cases[0]; k++) {
        const int c = rs_cases[k].c, ow = rs_cases[k].ow, oh = rs_cases[k].oh;
        /* a padded input stride and a padded output stride */
        uint8_t *pad = malloc((size_t)(NW * c + 5) * NH);
        for (int y = 0; y < NH; y++)
            memcpy(pad + (size_t)y * (NW * c + 5), noise + (size_t)y * NW * c, (size_t)NW * c);
        eqm_image in = {NW, NH, c, NW * c + 5, EQM_PIX_U8, pad};
        size_t n = (size_t)ow * oh * c;
        ck_assert_uint_le(off + n, nref);
        for (int portable = 0; portable < 2; portable++) {
            uint8_t *o = malloc((size_t)(ow * c + 3) * oh);
            eqm_image out = {ow, oh, c, ow * c + 3, EQM_PIX_U8, o};
            int flags = rs_cases[k].filter | (rs_cases[k].crop ? EQM_RESAMPLE_CROP : 0) |
                        (portable ? EQM_RESAMPLE_PORTABLE : 0);
            ck_assert_int_eq(im->resample(h, &in, rs_cases[k].box, flags, &out), EQM_OK);
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow * c; x++)
                    ck_assert_msg(o[(size_t)y * (ow * c + 3) + x] == ref[off + (size_t)y * ow * c + x],
                                  "case %zu (portable %d): byte (%d, %d) is %u, Pillow %u", k,
                                  portable, y, x, o[(size_t)y * (ow * c + 3) + x],
                                  ref[off + (size_t)y * ow * c + x]);
            free(o);
        }
        off += n;
        free(pad);
    }
    ck_assert_uint_eq(off, nref);

    /* crop_resize is resample's Pillow resize(box), bilinear: exact on resize_ref.bin */
    snprintf(path, sizeof path, "%s/tests/shards/fixtures/resize_ref.bin",
             srcdir ? srcdir : EQM_SRCDIR);
    f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    nref = fread(ref, 1, sizeof ref, f);
    fclose(f);
    static const float cr[][6] = {{0.0f, 0.0f, 23.0f, 17.0f, 10, 7},
                                  {2.5f, 1.25f, 17.5f, 14.25f, 9, 8},
                                  {0.0f, 0.0f, 23.0f, 17.0f, 40, 31},
                                  {4.0f, 3.0f, 8.0f, 6.0f, 24, 24}};
    uint8_t *pat = su_pattern(23, 17, 3);
    eqm_image pin = {23, 17, 3, 23 * 3, EQM_PIX_U8, pat};
    off = 0;
    for (int k = 0; k < 4; k++) {
        int ow = (int)cr[k][4], oh = (int)cr[k][5];
        uint8_t *o = malloc((size_t)ow * oh * 3);
        eqm_image out = {ow, oh, 3, ow * 3, EQM_PIX_U8, o};
        ck_assert_int_eq(im->crop_resize(h, &pin, cr[k][0], cr[k][1], cr[k][2], cr[k][3], &out),
                         EQM_OK);
        ck_assert_msg(max_diff(o, ref + off, (size_t)ow * oh * 3) == 0,
                      "crop_resize case %d differs from Pillow", k);
        off += (size_t)ow * oh * 3;
        free(o);
    }
    free(pat);

    /* refusals */
    uint8_t ob[64];
    eqm_image in = {NW, NH, 3, NW * 3, EQM_PIX_U8, noise};
    eqm_image out = {4, 4, 3, 12, EQM_PIX_U8, ob};
    const double inside[4] = {1, 1, 10, 10}, outside[4] = {50, 0, 20, 10};
    ck_assert_int_eq(im->resample(h, &in, outside, EQM_RESAMPLE_BICUBIC, &out), EQM_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(host_ctx_error(h), "not inside the 61x47 image"));
    ck_assert_int_eq(im->resample(h, &in, inside, 0, &out), EQM_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(host_ctx_error(h), "EQM_RESAMPLE_BICUBIC"));
    eqm_image gray_out = {4, 4, 1, 4, EQM_PIX_U8, ob};
    ck_assert_int_eq(im->resample(h, &in, inside, EQM_RESAMPLE_BILINEAR, &gray_out),
                     EQM_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(host_ctx_error(h), "the same in both"));
    host_ctx_destroy(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("jpeg");
    tcase_add_test(tc, test_header_and_full_decode);
    tcase_add_test(tc, test_scaled_decode);
    tcase_add_test(tc, test_region_decode);
    tcase_add_test(tc, test_gray_and_cmyk);
    tcase_add_test(tc, test_corrupt_and_truncated);
    tcase_add_test(tc, test_crop_resize_vs_pillow);
    tcase_add_test(tc, test_crop_resize_large_noise);
    tcase_add_test(tc, test_resample_vs_pillow);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
