#!/bin/sh
# tests/data/exhaustive_color.sh: on-demand (not in make check; ~1 minute, 250 MB in $TMPDIR)
# check that color_jitter's hue and saturation operations (generic and AVX2 builds) equal Pillow 9.4 / torchvision
# 0.14 on ALL 2^24 RGB colours, for hue factors 0.1, -0.37, 0.5 and saturation 1.37, 0.61;
# then tests/data/hue_float_check.c (op_hue's float products = Pillow's double ones for all
# 2^24 (v, s, h) combinations) in both builds.
# Usage: sh tests/data/exhaustive_color.sh   (from the repository root)
set -eu
t=${TMPDIR:-/tmp}/eqm_exhaustive.$$
mkdir -p "$t"
trap 'rm -rf "$t"' EXIT
/usr/bin/python3 - "$t" <<'PY'
import sys
import numpy as np
from PIL import Image
import torchvision.transforms.functional as F
t = sys.argv[1]
a = np.arange(1 << 24, dtype=np.uint32)
img = np.stack([(a >> 16) & 255, (a >> 8) & 255, a & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
open(f"{t}/all.rgb", "wb").write(img.tobytes())
p = Image.fromarray(img)
for i, f in enumerate([0.1, -0.37, 0.5]):
    open(f"{t}/hue{i}.rgb", "wb").write(np.array(F.adjust_hue(p, f)).tobytes())
for i, f in enumerate([1.37, 0.61]):
    open(f"{t}/sat{i}.rgb", "wb").write(np.array(F.adjust_saturation(p, f)).tobytes())
PY
cat > "$t/check.c" <<EOF2
#include "$(pwd)/plugins/augment/color_jitter/color_jitter.c"
#include <stdio.h>
#include <stdlib.h>
static unsigned char *rd(const char *p, size_t n) { FILE *f = fopen(p, "rb"); unsigned char *b = malloc(n); if (!f || fread(b, 1, n, f) != n) exit(2); fclose(f); return b; }
int main(void)
{
    size_t N = (size_t)1 << 24, B = N * 3, bad_all = 0;
    unsigned char *all = rd("$t/all.rgb", B), *out = malloc(B);
    hue_tables *tb = malloc(sizeof *tb);
    hue_tables_build(tb);
    float hf[3] = {0.1f, -0.37f, 0.5f}, sf[2] = {1.37f, 0.61f};
    char p[512];
    for (int k = 0; k < 5; k++) {
        snprintf(p, sizeof p, k < 3 ? "$t/hue%d.rgb" : "$t/sat%d.rgb", k < 3 ? k : k - 3);
        unsigned char *ref = rd(p, B);
        if (k < 3) op_hue(tb, all, out, N, 3, hf[k]); else op_saturation(all, out, N, 3, sf[k - 3]);
        size_t bad = 0;
        for (size_t i = 0; i < B; i++) bad += out[i] != ref[i];
        printf("%s %g: %zu of %zu values differ\n", k < 3 ? "hue" : "saturation", k < 3 ? hf[k] : sf[k - 3], bad, B);
        bad_all += bad;
        free(ref);
    }
    return bad_all != 0;
}
EOF2
cc -std=c11 -D_GNU_SOURCE -O2 -Isdk/include -o "$t/check" "$t/check.c" -lm
echo "generic build:"
"$t/check"
cc -std=c11 -D_GNU_SOURCE -O2 -Isdk/include -o "$t/hfc" tests/data/hue_float_check.c -lm
"$t/hfc"
if grep -q avx2 /proc/cpuinfo 2>/dev/null; then
  # the AVX2 path the plugin selects at run time (AUG_TARGET_V3: no FMA)
  cc -std=c11 -D_GNU_SOURCE -O3 -mavx2 -mbmi -mbmi2 -mpopcnt -msse4.2 -Isdk/include -o "$t/check3" "$t/check.c" -lm
  echo "AVX2 build:"
  "$t/check3"
  cc -std=c11 -D_GNU_SOURCE -O3 -mavx2 -mbmi -mbmi2 -mpopcnt -msse4.2 -Isdk/include -o "$t/hfc3" tests/data/hue_float_check.c -lm
  "$t/hfc3"
fi
