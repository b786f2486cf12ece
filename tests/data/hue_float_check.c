/* tests/data/hue_float_check.c: on-demand check (run by tests/data/exhaustive_color.sh) that
 * color_jitter's op_hue may compute Pillow's HSV -> RGB products in float: for every
 * v, ss, hh in 0..255 (2^24 combinations), with fs = fs[ss] and f = frac[hh] from the
 * plugin's tables, round(v (1 - fs)), round(v (1 - fs f)) and round(v (1 - fs (1 - f))) as
 * Pillow computes them (Convert.c: double arithmetic on float operands, round half away
 * from zero) equal the float expressions of op_hue. Exit status 0 when all are equal.
 * Build: cc -O2 -Isdk/include tests/data/hue_float_check.c -lm (from the repository root;
 * also with the AVX2 flags of exhaustive_color.sh). Left out: nothing is sampled.
 */
#include "../../plugins/augment/color_jitter/color_jitter.c"

#include <stdio.h>
#include <stdlib.h>

static int pil_round(double x) { return (int)round(x); }

static int f_round(float x)
{
    int r = (int)x;
    return r + (x - (float)r >= 0.5f);
}

int main(void)
{
    hue_tables *t = malloc(sizeof *t);
    if (!t)
        return 2;
    hue_tables_build(t);
    long bad = 0;
    for (int ss = 0; ss < 256; ss++)
        for (int hh = 0; hh < 256; hh++)
            for (int vi = 0; vi < 256; vi++) {
                float fs = t->fs[ss], f = t->frac[hh], v = (float)vi;
                int p = pil_round(v * (1.0 - fs)), q = pil_round(v * (1.0 - fs * f)),
                    tt = pil_round(v * (1.0 - fs * (1.0 - f)));
                int p2 = f_round(v * (1.0f - fs)), q2 = f_round(v * (1.0f - fs * f)),
                    t2 = f_round(v * (1.0f - fs * (1.0f - f)));
                if (p != p2 || q != q2 || tt != t2 || p < 0 || p > vi || q < 0 || q > vi || tt < 0 || tt > vi) {
                    if (bad < 10)
                        printf("differs: v %d ss %d hh %d: double %d %d %d float %d %d %d\n", vi, ss, hh, p, q, tt,
                               p2, q2, t2);
                    bad++;
                }
            }
    printf("hue float products: %ld of %d combinations differ\n", bad, 1 << 24);
    free(t);
    return bad != 0;
}
