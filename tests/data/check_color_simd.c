/* tests/data/check_color_simd.c: the AVX2 colour kernels of plugins/augment/aug_common.h
 * (used by color_jitter and grayscale) give the bytes of the scalar formulas, which
 * check_augment compares with torchvision/PIL fixtures:
 *  - aug_luma_row_v3 = aug_luma on all 2^24 RGB colours (rows of odd lengths for the tails);
 *  - aug_blend_row_v3 = Image.blend's float formula for every value 0..255 against every
 *    constant base 0..255 and against per-value bases, for alphas inside [0, 1] (no clip),
 *    outside (clipped), the jitter range 0.2..1.8 and edge values, lengths 1..97.
 * Skips (77) where the CPU has no AVX2. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/augment/aug_common.h"

static uint8_t blend_ref(int s, int base, float a)
{
    float t = (float)base + a * (float)(s - base);
    if (!(a >= 0 && a <= 1.0f))
        t = t < 0.0f ? 0.0f : t > 255.0f ? 255.0f : t;
    return (uint8_t)(int)t;
}

START_TEST(test_luma_all_colours)
{
    enum { ROW = 4099 }; /* not a multiple of 16: every call has a scalar tail */
    static uint8_t rgb[3 * ROW], l[ROW];
    uint32_t c = 0;
    while (c < (1u << 24)) {
        size_t n = 0;
        for (; n < ROW && c < (1u << 24); n++, c++) {
            rgb[3 * n] = (uint8_t)(c >> 16);
            rgb[3 * n + 1] = (uint8_t)(c >> 8);
            rgb[3 * n + 2] = (uint8_t)c;
        }
        aug_luma_row_v3(rgb, l, n);
        for (size_t i = 0; i < n; i++)
            if (l[i] != aug_luma(rgb + 3 * i))
                ck_abort_msg("luma of (%u, %u, %u): simd %u, scalar %u", rgb[3 * i], rgb[3 * i + 1],
                             rgb[3 * i + 2], l[i], aug_luma(rgb + 3 * i));
    }
}
END_TEST

START_TEST(test_blend_all_values)
{
    static const float alphas[] = {0.0f, 1.0f, 0.5f, 0.6f, 0.999f, 1.0001f, 1.4f, 1.8f, 0.2f,
                                   0.37f, 1.2345f, 2.5f, -0.3f, 0.0001f, 3.0f};
    uint8_t s[256 + 1], bases[256 + 1], o[256 + 1];
    for (int i = 0; i < 256; i++)
        s[i] = (uint8_t)i;
    for (size_t k = 0; k < sizeof alphas / sizeof *alphas; k++) {
        float a = alphas[k];
        for (int base = 0; base < 256; base++) {
            aug_blend_row_v3(s, NULL, base, o, 256, a);
            for (int i = 0; i < 256; i++)
                ck_assert_msg(o[i] == blend_ref(i, base, a), "blend(%d, base %d, a %g): simd %u, "
                              "scalar %u", i, base, (double)a, o[i], blend_ref(i, base, a));
            /* per-value bases: base + i (mod 256) against every value */
            for (int i = 0; i < 256; i++)
                bases[i] = (uint8_t)(base + i * 7);
            aug_blend_row_v3(s, bases, 0, o, 256, a);
            for (int i = 0; i < 256; i++)
                ck_assert_msg(o[i] == blend_ref(i, bases[i], a), "blend(%d, base %d, a %g) with "
                              "bases: simd %u, scalar %u", i, bases[i], (double)a, o[i],
                              blend_ref(i, bases[i], a));
        }
        for (size_t n = 1; n <= 97; n++) { /* tails */
            memset(o, 0xaa, sizeof o);
            aug_blend_row_v3(s + 100, NULL, 77, o, n, a);
            for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(o[i], blend_ref(100 + (int)i, 77, a));
            ck_assert_int_eq(o[n], 0xaa); /* nothing written past n */
        }
    }
}
END_TEST

int main(void)
{
    if (!AUG_HAVE_V3 || !aug_use_v3()) {
        printf("SKIP: no AVX2 on this CPU (or EQM_AUG_GENERIC set)\n");
        return 77;
    }
    Suite *su = suite_create("color_simd");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_luma_all_colours);
    tcase_add_test(tc, test_blend_all_values);
    suite_add_tcase(su, tc);
    SRunner *r = srunner_create(su);
    srunner_run_all(r, CK_NORMAL);
    int nf = srunner_ntests_failed(r);
    srunner_free(r);
    return nf ? 1 : 0;
}
