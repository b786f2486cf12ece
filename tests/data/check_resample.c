/* tests/data/check_resample.c: the AVX2 passes of the host's resampler (api->image->resample,
 * host/services/resample.c) give the same bytes as its portable loops
 * (EQM_RESAMPLE_PORTABLE; check_augment compares both with Pillow through torchvision
 * fixtures), over random images, boxes, output sizes, filters, 1 and 3 channels and padded
 * strides, including sizes far larger than the CIFAR fixtures (up to 900 px), in both box
 * modes. With EQM_RESAMPLE_CROP, a fractional box (the apply_scaled path of ABI 1.1) equals
 * the crop-then-resize path on integer boxes.
 * Skips (77) where the CPU has no AVX2.
 * Dimension legend: W, H = input size; OW, OH = output size; C = channels.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#include "core.h"

static eqm_host *hctx;

static uint64_t rs = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs % n);
}

/* The box (x0, y0, w, h) of `in` to `out`: crop then resize (EQM_RESAMPLE_CROP, the
 * augment plugins' mode) or Pillow's resize(box) (mode 0, crop_resize's); AVX2 or not. */
static void resample(const eqm_image *in, double x0, double y0, double w, double h,
                     eqm_image *out, int filter, int mode, int simd)
{
    const double box[4] = {x0, y0, w, h};
    int rc = host_api()->image->resample(hctx, in, box,
                                         filter | mode | (simd ? 0 : EQM_RESAMPLE_PORTABLE), out);
    ck_assert_msg(rc == EQM_OK, "%s", host_ctx_error(hctx));
}

static void run(const eqm_image *in, int x0, int y0, int w, int h, eqm_image *out, int filter,
                int simd)
{
    resample(in, x0, y0, w, h, out, filter, EQM_RESAMPLE_CROP, simd);
}

START_TEST(test_simd_equals_scalar)
{
    int cases = 0;
    for (int it = 0; it < 400; it++) {
        int c = rnd(4) == 0 ? 1 : 3;
        int big = it % 4 == 0;
        int W = 1 + (int)rnd(big ? 900 : 80), H = 1 + (int)rnd(big ? 700 : 80);
        int pad = (int)rnd(3) * 5;
        eqm_image in = {W, H, c, W * c + pad, EQM_PIX_U8, NULL};
        uint8_t *px = malloc((size_t)in.stride * H);
        ck_assert_ptr_nonnull(px);
        /* smooth gradients plus noise plus saturated patches (clip8 at both ends) */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < in.stride; x++)
                px[(size_t)y * in.stride + x] =
                    (uint8_t)(rnd(8) == 0 ? (rnd(2) ? 255 : 0) : ((x * 7 + y * 3) & 255) ^ rnd(16));
        in.data = px;
        int w = 1 + (int)rnd((uint32_t)W), h = 1 + (int)rnd((uint32_t)H);
        int x0 = (int)rnd((uint32_t)(W - w + 1)), y0 = (int)rnd((uint32_t)(H - h + 1));
        int OW = 1 + (int)rnd(big ? 300 : 64), OH = 1 + (int)rnd(big ? 300 : 64);
        int filter = rnd(2) ? EQM_RESAMPLE_BILINEAR : EQM_RESAMPLE_BICUBIC;
        size_t on = (size_t)OW * OH * c;
        uint8_t *a = malloc(on), *b = malloc(on);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        eqm_image oa = {OW, OH, c, OW * c, EQM_PIX_U8, a}, ob = oa;
        ob.data = b;
        run(&in, x0, y0, w, h, &oa, filter, 0);
        run(&in, x0, y0, w, h, &ob, filter, 1);
        if (memcmp(a, b, on)) {
            size_t k = 0;
            while (a[k] == b[k])
                k++;
            ck_abort_msg("case %d: %dx%dx%d stride %d box (%d,%d %dx%d) -> %dx%d filter %d: "
                         "byte %zu scalar %u simd %u", it, W, H, c, in.stride, x0, y0, w, h, OW,
                         OH, filter, k, a[k], b[k]);
        }
        /* Pillow's resize(box): the taps may read around the box */
        resample(&in, x0, y0, w, h, &oa, filter, 0, 0);
        resample(&in, x0, y0, w, h, &ob, filter, 0, 1);
        ck_assert_msg(!memcmp(a, b, on), "case %d: resize(box) path: simd differs from scalar",
                      it);
        cases++;
        free(a);
        free(b);
        free(px);
    }
    ck_assert_int_eq(cases, 400);
}
END_TEST

/* With EQM_RESAMPLE_CROP, a box with integer edges given as fractions equals the
 * crop-then-resize path; on a fractional box a constant image stays constant and the AVX2
 * and portable paths agree. */
START_TEST(test_fbox)
{
    for (int it = 0; it < 200; it++) {
        int c = rnd(3) == 0 ? 1 : 3;
        int W = 2 + (int)rnd(600), H = 2 + (int)rnd(500);
        eqm_image in = {W, H, c, W * c, EQM_PIX_U8, NULL};
        uint8_t *px = malloc((size_t)W * H * c);
        ck_assert_ptr_nonnull(px);
        int flat = it % 5 == 0;
        for (size_t k = 0; k < (size_t)W * H * c; k++)
            px[k] = flat ? 77 : (uint8_t)rnd(256);
        in.data = px;
        int w = 1 + (int)rnd((uint32_t)W), h = 1 + (int)rnd((uint32_t)H);
        int x0 = (int)rnd((uint32_t)(W - w + 1)), y0 = (int)rnd((uint32_t)(H - h + 1));
        int OW = 1 + (int)rnd(200), OH = 1 + (int)rnd(200);
        int filter = rnd(2) ? EQM_RESAMPLE_BILINEAR : EQM_RESAMPLE_BICUBIC;
        size_t on = (size_t)OW * OH * c;
        uint8_t *a = malloc(on), *b = malloc(on);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        eqm_image oa = {OW, OH, c, OW * c, EQM_PIX_U8, a}, ob = oa;
        ob.data = b;
        run(&in, x0, y0, w, h, &oa, filter, it & 1);
        resample(&in, (double)x0, (double)y0, (double)w, (double)h, &ob, filter,
                 EQM_RESAMPLE_CROP, it & 1);
        ck_assert_msg(!memcmp(a, b, on), "case %d: integer box differs from crop+resize", it);
        /* fractional box */
        double fx = x0 + rnd(1000) / 1000.0 * (W - x0 - 0.5) * 0.5, fy = y0 * 0.5;
        double fw = (W - fx) * (0.2 + rnd(800) / 1000.0), fh = (H - fy) * (0.2 + rnd(800) / 1000.0);
        resample(&in, fx, fy, fw, fh, &ob, filter, EQM_RESAMPLE_CROP, it & 1);
        if (flat)
            for (size_t k = 0; k < on; k++)
                ck_assert_int_eq(b[k], 77);
        resample(&in, fx, fy, fw, fh, &oa, filter, EQM_RESAMPLE_CROP, !(it & 1));
        ck_assert_msg(!memcmp(a, b, on), "case %d: fractional box: simd differs from scalar", it);
        free(a);
        free(b);
        free(px);
    }
}
END_TEST

int main(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
#else
    int v3 = 0;
#endif
    if (!v3) {
        printf("SKIP: no AVX2 on this CPU\n");
        return 77;
    }
    hctx = host_ctx_create("check_resample");
    Suite *s = suite_create("resample");
    TCase *tc = tcase_create("simd");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_simd_equals_scalar);
    tcase_add_test(tc, test_fbox);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int nf = srunner_ntests_failed(r);
    srunner_free(r);
    host_ctx_destroy(hctx);
    return nf ? 1 : 0;
}
