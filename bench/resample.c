/* bench/resample.c: the host's Pillow-exact resampler (api->image->resample,
 * host/services/resample.c) per call, against Pillow 9's own resize (the algorithm it
 * reproduces bit for bit) on the same boxes, in one invocation.
 *
 *   bench/resample [--rounds R] [--no-pillow]
 *
 * Cases (RandomResizedCrop-like boxes, scale 0.08-1, ratio 3/4-4/3, fixed seed):
 *   imagenet  a 500 x 375 RGB image -> 224 x 224, bilinear (what the ImageNet views do)
 *   cifar     a 32 x 32 RGB image -> 32 x 32, bilinear (the CIFAR views)
 * For each: microseconds per call (thread CPU time, robust to load; median of R rounds)
 * of the AVX2 path, the portable path (EQM_RESAMPLE_PORTABLE: the same bytes) and Pillow
 * (Image.resize(size, BILINEAR, box) timed with time.thread_time in /usr/bin/python3, the
 * same boxes read from a pipe), then ratios. The last line: `ratio=R`, Pillow over AVX2
 * on the imagenet case. The image is synthetic (gradient + noise): resampling time does
 * not depend on the pixel values.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"

#define NBOX 256

typedef struct bench_case {
    const char *name;
    int w, h, ow, oh;
    double box[NBOX][4];
} bench_case;

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1.0p-53;
}

/* torchvision RandomResizedCrop.get_params, integer box (x, y, w, h) */
static void rrc_box(int W, int H, double out[4])
{
    for (int tries = 0; tries < 10; tries++) {
        double area = W * H * (0.08 + urand() * 0.92);
        double logr = log(3.0 / 4) + urand() * (log(4.0 / 3) - log(3.0 / 4));
        double ar = exp(logr);
        int w = (int)lround(sqrt(area * ar)), h = (int)lround(sqrt(area / ar));
        if (w > 0 && h > 0 && w <= W && h <= H) {
            out[0] = (int)(urand() * (W - w + 1));
            out[1] = (int)(urand() * (H - h + 1));
            out[2] = w, out[3] = h;
            return;
        }
    }
    out[0] = out[1] = 0, out[2] = W, out[3] = H;
}

static double thread_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median over rounds of the mean microseconds per call over the NBOX boxes. */
static double time_host(eqm_host *hc, const eqm_image *in, const bench_case *bc, int flags,
                        int rounds, uint8_t *out)
{
    double r[64];
    eqm_image o = {bc->ow, bc->oh, 3, bc->ow * 3, EQM_PIX_U8, out};
    for (int k = 0; k < rounds; k++) {
        double t0 = thread_us();
        for (int i = 0; i < NBOX; i++)
            if (host_api()->image->resample(hc, in, bc->box[i], EQM_RESAMPLE_BILINEAR | flags,
                                            &o)) {
                fprintf(stderr, "resample: %s\n", host_ctx_error(hc));
                exit(1);
            }
        r[k] = (thread_us() - t0) / NBOX;
    }
    qsort(r, (size_t)rounds, sizeof *r, cmp_d);
    return r[rounds / 2];
}

static const char pillow_py[] =
    "import sys, time\n"
    "from PIL import Image\n"
    "W, H, OW, OH, R = map(int, sys.stdin.readline().split())\n"
    "boxes = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]\n"
    "im = Image.frombytes('RGB', (W, H), bytes((x * 7 + y * 3 + (x * y) % 13) & 255 "
    "for y in range(H) for x in range(W) for c in range(3)))\n"
    "rs = []\n"
    "for _ in range(R):\n"
    "    t0 = time.thread_time()\n"
    "    for (x, y, w, h) in boxes:\n"
    "        im.resize((OW, OH), Image.BILINEAR, box=(x, y, x + w, y + h))\n"
    "    rs.append((time.thread_time() - t0) / len(boxes) * 1e6)\n"
    "rs.sort()\n"
    "print(rs[len(rs) // 2])\n";

/* Pillow's microseconds per call on the same boxes, or -1 when python3/PIL is missing. */
static double time_pillow(const bench_case *bc, int rounds)
{
    char tmpl[] = "/tmp/eqm-bench-resample-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    fputs(pillow_py, f);
    fclose(f);
    char cmd[256], inpath[] = "/tmp/eqm-bench-resample-in-XXXXXX";
    int fi = mkstemp(inpath);
    if (fi < 0) {
        remove(tmpl);
        return -1;
    }
    f = fdopen(fi, "w");
    fprintf(f, "%d %d %d %d %d\n", bc->w, bc->h, bc->ow, bc->oh, rounds);
    for (int i = 0; i < NBOX; i++)
        fprintf(f, "%.17g %.17g %.17g %.17g\n", bc->box[i][0], bc->box[i][1], bc->box[i][2],
                bc->box[i][3]);
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s < %s 2>/dev/null", tmpl, inpath);
    FILE *p = popen(cmd, "r");
    double us = -1;
    if (p) {
        if (fscanf(p, "%lf", &us) != 1)
            us = -1;
        if (pclose(p) != 0)
            us = -1;
    }
    remove(tmpl);
    remove(inpath);
    return us;
}

int main(int argc, char **argv)
{
    int rounds = 9, pillow = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-pillow"))
            pillow = 0;
        else {
            fprintf(stderr, "usage: bench/resample [--rounds R] [--no-pillow]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 64)
        rounds = 9;
    eqm_host *hc = host_ctx_create("bench");
    static bench_case cases[2] = {{"imagenet", 500, 375, 224, 224, {{0}}},
                                  {"cifar", 32, 32, 32, 32, {{0}}}};
    double ratio = 0;
    printf("# bench/resample: microseconds per call (thread CPU time, median of %d rounds of "
           "%d boxes)\n",
           rounds, NBOX);
    for (int c = 0; c < 2; c++) {
        bench_case *bc = &cases[c];
        for (int i = 0; i < NBOX; i++)
            rrc_box(bc->w, bc->h, bc->box[i]);
        size_t n = (size_t)bc->w * bc->h * 3;
        uint8_t *px = malloc(n), *out = malloc((size_t)bc->ow * bc->oh * 3);
        for (int y = 0; y < bc->h; y++)
            for (int x = 0; x < bc->w; x++)
                for (int k = 0; k < 3; k++)
                    px[((size_t)y * bc->w + x) * 3 + k] =
                        (uint8_t)((x * 7 + y * 3 + (x * y) % 13) & 255);
        eqm_image in = {bc->w, bc->h, 3, bc->w * 3, EQM_PIX_U8, px};
        time_host(hc, &in, bc, 0, 1, out); /* warm the coefficient cache and the pages */
        double simd = time_host(hc, &in, bc, 0, rounds, out);
        double port = time_host(hc, &in, bc, EQM_RESAMPLE_PORTABLE, rounds, out);
        double pil = pillow ? time_pillow(bc, rounds) : -1;
        printf("%-9s %dx%d -> %dx%d: avx2 %.1f us, portable %.1f us (%.2fx)", bc->name, bc->w,
               bc->h, bc->ow, bc->oh, simd, port, port / simd);
        if (pil > 0)
            printf(", Pillow %.1f us (%.2fx)", pil, pil / simd);
        printf("\n");
        if (c == 0)
            ratio = pil > 0 ? pil / simd : port / simd;
        free(px);
        free(out);
    }
    host_ctx_destroy(hc);
    printf("ratio=%.2f\n", ratio);
    return 0;
}
