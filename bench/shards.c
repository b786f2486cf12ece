/* bench/shards.c: `bench/shards`, throughput of the ImageNet shard path, per core.
 *
 * 1. Writes shards into a temporary folder from $EQUIMOD_DATA_DIR (or --data DIR):
 *    set "imagenet": the 66 full-size ImageNet JPEGs of imagenet-sample-images (median about
 *    500x375, up to 1200x1600, mean 113 KB: the realistic case), and set "imagenette": the
 *    3,925 val JPEGs of imagenette2-224 (224x224, 12 KB), written by `equimod shards`.
 * 2. Read rates (warm page cache, best of 3; 30 with --read-only): the reader alone
 *    (io_uring / pread into its blocks), the shard stream (reader + libarchive + grouping +
 *    one copy into each sample) and `cat` of the same files to /dev/null, on the Imagenette
 *    shards (small members: per-member cost shows) and on 8 copies of the ImageNet shard.
 * 3. The TRAINING PATH, what `equimod train` gets (this is the ratio): the real loader
 *    (loader_open: imagenet_tar plugin, shard stream, [loader] dct_scaling on) with
 *    the real augment plugins, 1 worker, batches of 32, epoch after epoch; per core =
 *    images per CPU-second of the whole process (reading thread included). Views as the
 *    torchvision side: original = resize 256 (bilinear) + centre crop 224, 2 views =
 *    random_resized_crop 224 (bilinear) + flip + color_jitter (0.4, 0.4, 0.4, 0.1) p 0.8 +
 *    grayscale p 0.2; all end with normalize. Prints the DCT scales the loader used.
 * 4. This benchmark's own fused pipeline (a design study, not what training runs): one
 *    decode at the smallest SIMD DCT scale (1/8, 2/8, 4/8, 8/8) over the rows/columns the
 *    three crops cover (api->image->jpeg_decode_region), views by crop_resize and a planar
 *    float path with torchvision's tensor semantics (--augment plugins: the real plugins
 *    for flip/jitter/gray/normalize instead); EQM_BENCH_PROFILE=1 prints time per stage.
 * 5. The same work in torchvision + PIL (bench/shards_torchvision.py, one process, one
 *    thread) on the same shards.
 * Last line: ratio=R, training path over torchvision images/s per core, "imagenet" set.
 * Options: --seconds S per measurement (default 3), --data DIR, --keep (keep the shards),
 * --only-equimod / --only-loader (profiling), --read-only (the read lines only),
 * --augment own|plugins; EQM_BENCH_ENT / EQM_BENCH_RES: the fused pipeline's cost model.
 * Figures and history: bench/README.md. Why not 10x on full-size JPEGs: entropy decoding
 * alone (libjpeg-turbo, the same work Pillow does) is ~820 us of the ~1,150 us a full
 * decode of these files takes, and torchvision needs ~11 ms per image for decode + 3
 * views, so even free views and a free IDCT would stay near 14x, and a real pipeline is
 * far from free; DCT scaling rarely applies (a random crop of 8-100% of the area needs
 * every original pixel for most images up to ~800 px).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "core.h"
#include "loader/loader.h"
#include "shards/shards.h"
#include "train/trainer.h"


#define OUT 224
/* pixels of one output view */
#define NPIX (OUT * OUT)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct blob {
    void *data;
    size_t size;
} blob;

/* ---------------------------------------------------------------- shards ------- */

static int write_sample_shard(const char *tar_in, const char *out)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, tar_in, 1 << 16) != ARCHIVE_OK) {
        fprintf(stderr, "bench/shards: %s: %s\n", tar_in, archive_error_string(a));
        archive_read_free(a);
        return -1;
    }
    struct archive *w = archive_write_new();
    archive_write_set_format_ustar(w);
    if (archive_write_open_filename(w, out) != ARCHIVE_OK) {
        fprintf(stderr, "bench/shards: %s: %s\n", out, archive_error_string(w));
        archive_read_free(a);
        archive_write_free(w);
        return -1;
    }
    struct archive_entry *e;
    int k = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) != AE_IFREG || !strstr(name, ".JPEG"))
            continue;
        size_t n = (size_t)archive_entry_size(e);
        void *buf = malloc(n);
        if (archive_read_data(a, buf, n) != (la_ssize_t)n) {
            free(buf);
            continue;
        }
        char key[64], cls[16];
        snprintf(key, sizeof key, "s%05d.jpg", k);
        int cn = snprintf(cls, sizeof cls, "%d\n", k);
        struct archive_entry *o = archive_entry_new();
        archive_entry_set_pathname(o, key);
        archive_entry_set_size(o, (la_int64_t)n);
        archive_entry_set_filetype(o, AE_IFREG);
        archive_entry_set_perm(o, 0644);
        archive_write_header(w, o);
        archive_write_data(w, buf, n);
        archive_entry_clear(o);
        snprintf(key, sizeof key, "s%05d.cls", k);
        archive_entry_set_pathname(o, key);
        archive_entry_set_size(o, cn);
        archive_entry_set_filetype(o, AE_IFREG);
        archive_entry_set_perm(o, 0644);
        archive_write_header(w, o);
        archive_write_data(w, cls, (size_t)cn);
        archive_entry_free(o);
        free(buf);
        k++;
    }
    archive_read_free(a);
    archive_write_close(w);
    archive_write_free(w);
    return k;
}

/* Read a whole set through the stream: the JPEG bodies (copied) and the read rate. */
/* repetitions of each read measurement (best kept); --read-only raises it for perf */
static int read_reps = 3;

static int read_set(const char *pattern, int io, blob **out, size_t *n_out, double *mb_s,
                    size_t *bytes)
{
    shard_stream_opts o;
    memset(&o, 0, sizeof o);
    o.pattern = pattern;
    o.members = "jpg;cls";
    o.world = 1;
    o.io = io;
    o.block_bytes = 1 << 20;
    o.depth = 4;
    char err[1024];
    shard_stream *s;
    if (shard_stream_create(&o, &s, err, sizeof err)) {
        fprintf(stderr, "bench/shards: %s\n", err);
        return -1;
    }
    double best = 1e30;
    size_t cap = 0, n = 0;
    blob *v = NULL;
    for (int rep = 0; rep < read_reps; rep++) {
        double t0 = now_s();
        shard_stream_start_epoch(s, 0, err, sizeof err);
        eqm_raw_sample *r;
        n = 0;
        while (shard_stream_pop(s, &r, err, sizeof err) == EQM_OK) {
            if (out && rep == 0) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 1024;
                    v = realloc(v, cap * sizeof *v);
                }
                v[n].size = r->members[0].size;
                v[n].data = malloc(v[n].size);
                memcpy(v[n].data, r->members[0].data, v[n].size);
            }
            n++;
            shard_stream_release(s, r);
        }
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    shard_stream_stats st;
    shard_stream_stats_get(s, &st);
    *bytes = st.bytes_read;
    *mb_s = st.bytes_read / best / 1e6;
    if (io != SHARD_IO_PREAD && shard_stream_io_kind(s) != SHARD_IO_URING)
        fprintf(stderr, "bench/shards: io_uring unavailable, read with pread\n");
    shard_stream_destroy(s);
    if (out) {
        *out = v;
        *n_out = n;
    }
    return 0;
}

/* The reader alone (io_uring or pread into its aligned blocks, no parsing): MB/s. */
static double reader_rate(char **paths, int n, int io)
{
    shard_reader *rd;
    char err[1024];
    if (shard_reader_create(io, 1 << 20, 4, &rd, err, sizeof err)) {
        fprintf(stderr, "bench/shards: %s\n", err);
        return -1;
    }
    double best = 1e30;
    size_t bytes = 0;
    for (int rep = 0; rep < read_reps; rep++) {
        double t0 = now_s();
        bytes = 0;
        for (int i = 0; i < n; i++) {
            if (shard_reader_open(rd, paths[i], err, sizeof err)) {
                fprintf(stderr, "bench/shards: %s\n", err);
                shard_reader_destroy(rd);
                return -1;
            }
            const void *d;
            size_t k;
            while (shard_reader_next(rd, &d, &k, err, sizeof err) == EQM_OK)
                bytes += k;
            shard_reader_close(rd);
        }
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    shard_reader_destroy(rd);
    return bytes / best / 1e6;
}

static double cat_rate(const char *files, size_t bytes)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cat %s > /dev/null", files);
    double best = 1e30;
    for (int rep = 0; rep < read_reps; rep++) {
        double t0 = now_s();
        if (system(cmd) != 0)
            return -1;
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    return bytes / best / 1e6;
}

/* ---------------------------------------------------------------- views -------- */

typedef struct box {
    double x, y, w, h; /* original pixels */
} box;

/* torchvision RandomResizedCrop.get_params, scale (0.08, 1), ratio (3/4, 4/3) */
static box rrc_box(const eqm_host_api *api, eqm_rng *r, int W, int H)
{
    double area = (double)W * H;
    for (int t = 0; t < 10; t++) {
        double ta = area * (0.08 + 0.92 * api->rng_uniform(r));
        double lr = log(3.0 / 4.0) + (log(4.0 / 3.0) - log(3.0 / 4.0)) * api->rng_uniform(r);
        double ar = exp(lr);
        int w = (int)lrint(sqrt(ta * ar)), h = (int)lrint(sqrt(ta / ar));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            int i = (int)api->rng_below(r, (uint64_t)(H - h + 1));
            int j = (int)api->rng_below(r, (uint64_t)(W - w + 1));
            return (box){j, i, w, h};
        }
    }
    double in_ratio = (double)W / H;
    int w, h;
    if (in_ratio < 0.75) {
        w = W;
        h = (int)lrint(w / 0.75);
    } else if (in_ratio > 4.0 / 3.0) {
        h = H;
        w = (int)lrint(h * 4.0 / 3.0);
    } else {
        w = W;
        h = H;
    }
    return (box){(W - w) / 2, (H - h) / 2, w, h};
}

/* hot loops: vectorised (the build rule gives -O3 -ffast-math), with an AVX2 clone picked
 * at run time */
#define HOT __attribute__((target_clones("avx2", "default")))

/* The views' colour operations run on planar float images in [0, 1] (torchvision's tensor
 * semantics: no rounding to 8 bits between operations), in loops the compiler vectorises. */
/* macros, not inline functions: they must be compiled with the HOT target of the caller */
#define fmx(a, b) ((a) > (b) ? (a) : (b))
#define fmn(a, b) ((a) < (b) ? (a) : (b))

HOT static void to_planar(const uint8_t *restrict u8, float *restrict r, float *restrict g,
                          float *restrict b)
{
    for (int i = 0; i < NPIX; i++) {
        r[i] = u8[3 * i] * (1.0f / 255);
        g[i] = u8[3 * i + 1] * (1.0f / 255);
        b[i] = u8[3 * i + 2] * (1.0f / 255);
    }
}

#define clamp01(x) fmn(fmx((x), 0.0f), 1.0f)

HOT static void flip_plane(float *p)
{
    for (int y = 0; y < OUT; y++) {
        float *r = p + y * OUT;
        for (int a = 0, b = OUT - 1; a < b; a++, b--) {
            float t = r[a];
            r[a] = r[b];
            r[b] = t;
        }
    }
}

HOT static void brightness(float *restrict r, float *restrict g, float *restrict b, float f)
{
    for (int i = 0; i < NPIX; i++) {
        r[i] = clamp01(r[i] * f);
        g[i] = clamp01(g[i] * f);
        b[i] = clamp01(b[i] * f);
    }
}

HOT static void contrast(float *restrict r, float *restrict g, float *restrict b, float f)
{
    float sum = 0;
    for (int i = 0; i < NPIX; i++)
        sum += 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
    float m = (1 - f) * (sum / NPIX);
    for (int i = 0; i < NPIX; i++) {
        r[i] = clamp01(f * r[i] + m);
        g[i] = clamp01(f * g[i] + m);
        b[i] = clamp01(f * b[i] + m);
    }
}

HOT static void saturation(float *restrict r, float *restrict g, float *restrict b, float f)
{
    for (int i = 0; i < NPIX; i++) {
        float l = (1 - f) * (0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i]);
        r[i] = clamp01(f * r[i] + l);
        g[i] = clamp01(f * g[i] + l);
        b[i] = clamp01(f * b[i] + l);
    }
}

/* torchvision F_t._rgb2hsv -> h += hf mod 1 -> _hsv2rgb, branch-free so that it vectorises.
 * Rewritten with two identities (equal up to float rounding): with v = max, s = cr / max
 * (cr = max - min), v * s = cr, so no division for s; and _hsv2rgb's six-sector select is
 * channel_n = v - cr * clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6, n = 5, 3, 1 for R,
 * G, B (sector 0: R = v, G = v(1 - s(1 - f)) = t, B = v(1 - s) = p, and so on). */
HOT static void hue(float *restrict R, float *restrict G, float *restrict B, float hf)
{
    const float h_add = 6.0f * hf + 6.0f; /* in sectors; + 6 keeps it positive */
    for (int i = 0; i < NPIX; i++) {
        float r = R[i], g = G[i], b = B[i];
        float maxc = fmx(r, fmx(g, b)), minc = fmn(r, fmn(g, b));
        float cr = maxc - minc;
        float icr = 1.0f / (cr == 0.0f ? 1.0f : cr);
        float rc = (maxc - r) * icr, gc = (maxc - g) * icr, bc = (maxc - b) * icr;
        float h6 = maxc == r ? bc - gc : maxc == g ? 2.0f + rc - bc : 4.0f + gc - rc;
        float H = h6 + h_add; /* in (-1 + 6 - 0.6, 4 + 1 + 6 + 0.6): wrap to [0, 6) */
        H = H - 6.0f * floorf(H * (1.0f / 6.0f));
        float kr = 5.0f + H, kg = 3.0f + H, kb = 1.0f + H;
        kr = kr >= 6.0f ? kr - 6.0f : kr;
        kg = kg >= 6.0f ? kg - 6.0f : kg;
        kb = kb >= 6.0f ? kb - 6.0f : kb;
        float wr = fmn(fmx(fmn(kr, 4.0f - kr), 0.0f), 1.0f);
        float wg = fmn(fmx(fmn(kg, 4.0f - kg), 0.0f), 1.0f);
        float wb = fmn(fmx(fmn(kb, 4.0f - kb), 0.0f), 1.0f);
        R[i] = maxc - cr * wr;
        G[i] = maxc - cr * wg;
        B[i] = maxc - cr * wb;
    }
}

HOT static void gray(float *restrict r, float *restrict g, float *restrict b)
{
    for (int i = 0; i < NPIX; i++) {
        float l = 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
        r[i] = g[i] = b[i] = l;
    }
}

/* ToTensor + Normalize: (C, H, W) output */
HOT static void normalize(float *p, float mean, float sd)
{
    float a = 1.0f / sd, c = -mean / sd;
    for (int i = 0; i < NPIX; i++)
        p[i] = p[i] * a + c;
}

/* The views' flip, colour jitter, grayscale and ToTensor + Normalize are the real augment
 * plugins (plugins/augment: bit-exact with torchvision 0.14 on PIL images, the semantics the
 * torchvision side runs), loaded through the registry and bound from config text as the
 * loader does; their sample() draws the parameters and apply() does the work. */
enum { A_FLIP, A_JITTER, A_GRAY, A_NORM, N_AUG };
static const char *const aug_cfg[N_AUG][2] = {
    {"horizontal_flip", "p=0.5"},
    {"color_jitter", "brightness=0.4"}, /* contrast/saturation 0.4, hue 0.1, p 0.8: defaults */
    {"grayscale", "p=0.2"},
    {"normalize", "mean=0.485,0.456,0.406"},
};
typedef struct augp {
    const eqm_augment_ops *ops;
    void *self;
} augp;
static augp aug[N_AUG];
static eqm_config *aug_config;

static int aug_setup(eqm_host *h)
{
    if (!getenv("EQUIMOD_PLUGIN_PATH"))
        cli_add_plugin_path("plugin-dir"); /* run from the build folder */
    eqm_registry *reg = cli_registry();
    char err[1024], as[256];
    aug_config = config_new_empty();
    for (int i = 0; i < N_AUG; i++) {
        snprintf(as, sizeof as, "augment.a%d.plugin=%s", i, aug_cfg[i][0]);
        config_set(aug_config, as, err, sizeof err);
        snprintf(as, sizeof as, "augment.a%d.%s", i, aug_cfg[i][1]);
        config_set(aug_config, as, err, sizeof err);
    }
    config_set(aug_config, "augment.a3.std=0.229,0.224,0.225", err, sizeof err);
    for (int i = 0; i < N_AUG; i++) {
        const eqm_plugin *pl;
        void *opts;
        snprintf(as, sizeof as, "augment.a%d", i);
        if (!reg || config_bind_plugin(aug_config, reg, as, EQM_KIND_AUGMENT, &pl, &opts, err,
                                       sizeof err)) {
            fprintf(stderr, "bench/shards: augment plugin %s: %s (run from the build folder or "
                    "set EQUIMOD_PLUGIN_PATH)\n", aug_cfg[i][0], reg ? err : "no registry");
            return -1;
        }
        aug[i].ops = &pl->ops.augment;
        if (aug[i].ops->create(host_api(), h, opts, &aug[i].self)) {
            fprintf(stderr, "bench/shards: %s: create: %s\n", aug_cfg[i][0], host_ctx_error(h));
            return -1;
        }
    }
    return 0;
}

/* decode-plan cost model, relative to one decoded (IDCT + colour) output pixel: entropy
 * decoding per original pixel, resampling per source pixel (EQM_BENCH_ENT / _RES override) */
static double ENT_COST = 2.0, RES_COST = 0.5;

static int use_plugins; /* --augment plugins */
static double prof[5]; /* decode, resize, colour ops, normalize */
static int prof_on;
static long m_hist[9]; /* DCT scale numerators used */
#define PT(k, t0) do { if (prof_on) { double t1_ = now_s(); prof[k] += t1_ - (t0); (t0) = t1_; } } while (0)

typedef struct work {
    uint8_t *dec[3];   /* decoded regions (one per decode of the plan) */
    size_t dec_cap[3];
    uint8_t *u8, *u8b; /* (OUT, OUT, 3) ping-pong */
    void *scratch;     /* augment plugins' scratch */
    size_t scratch_cap;
    float *views;      /* (3, OUT, OUT, 3) */
    eqm_host *h;
} work;

/* One image: decode once (scaled, partial), three views. Returns 0 or -1. */
static int process(const eqm_host_api *api, work *wk, const blob *b, uint64_t idx)
{
    const eqm_image_api *im = api->image;
    double tp = prof_on ? now_s() : 0;
    int W, H, C;
    if (im->jpeg_header(wk->h, b->data, b->size, &W, &H, &C))
        return -1;
    eqm_rng r;
    api->rng_seed(&r, 1, 0, idx, 0);
    box bx[3];
    double s0 = 256.0 / (W < H ? W : H); /* Resize(256) then CenterCrop(224) */
    double side = OUT / s0;
    bx[0] = (box){(W - side) / 2, (H - side) / 2, side, side};
    if (side > W)
        bx[0].x = 0, bx[0].w = W;
    if (side > H)
        bx[0].y = 0, bx[0].h = H;
    bx[1] = rrc_box(api, &r, W, H);
    bx[2] = rrc_box(api, &r, W, H);
    /* Decode plan. need[v]: the smallest M/8 keeping >= OUT pixels across view v's box.
     * Candidate plans, for each threshold T among the needs: one decode at scale T of the
     * union of the boxes of the views with need <= T, plus one decode per other view of
     * only its box at its own scale. Cost model (per original pixel, from timing these
     * images): entropy decoding of every row down to the region's bottom (skipped rows are
     * still entropy-decoded), IDCT + colour conversion of the decoded output pixels, and the
     * resampling of the source pixels each view reads. The cheapest plan wins; a view
     * never gets fewer than OUT source pixels across, so the output is never upscaled. */
    int need[3];
    for (int v = 0; v < 3; v++) {
        double mn = bx[v].w < bx[v].h ? bx[v].w : bx[v].h;
        int m = (int)ceil(8.0 * OUT / mn - 1e-9);
        /* only 1/8, 2/8, 4/8, 8/8: libjpeg-turbo's other scales have no SIMD IDCT and cost
         * more than a full decode (these images: 3/8 1112 us, 5/8 1441, 6/8 1580, 7/8 2001,
         * 8/8 1157, 4/8 1029, 2/8 973, 1/8 822) */
        m = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8;
        need[v] = m;
    }
    int best_T = 8;
    double best_cost = 1e300;
    for (int T0 = 0; T0 < 3; T0++) {
        int T = need[T0];
        double cost = 0;
        double ux0 = 1e9, uy0 = 1e9, ux1 = 0, uy1 = 0;
        for (int v = 0; v < 3; v++) {
            int m = need[v] <= T ? T : need[v];
            double f = (m / 8.0) * (m / 8.0);
            cost += RES_COST * f * bx[v].w * bx[v].h;
            if (need[v] <= T) {
                ux0 = fmin(ux0, bx[v].x);
                uy0 = fmin(uy0, bx[v].y);
                ux1 = fmax(ux1, bx[v].x + bx[v].w);
                uy1 = fmax(uy1, bx[v].y + bx[v].h);
            } else {
                cost += ENT_COST * W * (bx[v].y + bx[v].h) + f * bx[v].w * bx[v].h;
            }
        }
        cost += ENT_COST * W * uy1 + (T / 8.0) * (T / 8.0) * (ux1 - ux0) * (uy1 - uy0);
        if (cost < best_cost)
            best_cost = cost, best_T = T;
    }
    int di[3] = {-1, -1, -1}; /* view -> decode slot */
    int nd = 0;
    eqm_image dimg[3];
    int dox[3], doy[3];
    double dsx[3], dsy[3];
    for (int pass = 0; pass < 4; pass++) {
        /* pass 0: the shared decode at best_T; passes 1..3: view pass-1 on its own */
        int M = pass == 0 ? best_T : need[pass - 1];
        if (pass > 0 && need[pass - 1] <= best_T)
            continue;
        double x0 = 1e9, y0 = 1e9, x1 = 0, y1 = 0;
        int any = 0;
        for (int v = 0; v < 3; v++) {
            if (pass == 0 ? need[v] > best_T : v != pass - 1)
                continue;
            any = 1;
            x0 = fmin(x0, bx[v].x);
            y0 = fmin(y0, bx[v].y);
            x1 = fmax(x1, bx[v].x + bx[v].w);
            y1 = fmax(y1, bx[v].y + bx[v].h);
            di[v] = nd;
        }
        if (!any)
            continue;
        if (prof_on)
            m_hist[M]++;
        int SW = (W * M + 7) / 8, SH = (H * M + 7) / 8;
        double sc = (double)SW / W, scy = (double)SH / H;
        int rx = (int)floor(x0 * sc), ry = (int)floor(y0 * scy);
        int rx1 = (int)ceil(x1 * sc), ry1 = (int)ceil(y1 * scy);
        if (rx1 > SW)
            rx1 = SW;
        if (ry1 > SH)
            ry1 = SH;
        /* crop_scanline widens to iMCU columns: room for the whole scaled width */
        size_t needb = (size_t)SW * (size_t)(ry1 - ry) * 3;
        if (needb > wk->dec_cap[nd]) {
            free(wk->dec[nd]);
            wk->dec[nd] = malloc(needb);
            wk->dec_cap[nd] = wk->dec[nd] ? needb : 0;
        }
        dimg[nd] = (eqm_image){.data = wk->dec[nd]};
        if (im->jpeg_decode_region(wk->h, b->data, b->size, M, rx, ry, rx1 - rx, ry1 - ry,
                                   &dimg[nd], wk->dec_cap[nd], &dox[nd], &doy[nd]))
            return -1;
        dsx[nd] = sc;
        dsy[nd] = scy;
        nd++;
    }
    PT(0, tp);
    for (int v = 0; v < 3; v++) {
        eqm_image o = {OUT, OUT, 3, OUT * 3, EQM_PIX_U8, wk->u8};
        int d = di[v];
        double sc = dsx[d], scy = dsy[d];
        const eqm_image *src = &dimg[d];
        float bxx = (float)(bx[v].x * sc - dox[d]), byy = (float)(bx[v].y * scy - doy[d]);
        float bw = (float)(bx[v].w * sc), bh = (float)(bx[v].h * scy);
        if (bxx < 0)
            bxx = 0;
        if (byy < 0)
            byy = 0;
        if (bxx + bw > src->w)
            bw = src->w - bxx;
        if (byy + bh > src->h)
            bh = src->h - byy;
        if (im->crop_resize(wk->h, src, bxx, byy, bw, bh, &o))
            return -1;
        PT(1, tp);
        if (use_plugins) {
            /* flip, jitter, gray (views 1, 2), then normalize into the view's float output */
            eqm_image cur = o;
            eqm_augment_ctx ctx = {sizeof(eqm_augment_ctx), W, H};
            float prm[16];
            for (int i = v > 0 ? 0 : A_NORM; i < N_AUG; i++) {
                const eqm_augment_ops *ops = aug[i].ops;
                int w, hh, c;
                uint32_t f;
                if (ops->sample(aug[i].self, &r, &ctx, &cur, prm) ||
                    ops->out_shape(aug[i].self, &cur, &w, &hh, &c, &f))
                    return -1;
                eqm_image out = {w, hh, c, w * c, f,
                                 f == EQM_PIX_F32 ? (void *)(wk->views + (size_t)v * 3 * NPIX)
                                                  : (void *)(cur.data == wk->u8 ? wk->u8b : wk->u8)};
                size_t sb = ops->scratch_bytes ? ops->scratch_bytes(aug[i].self, &cur) : 0;
                if (sb > wk->scratch_cap) {
                    free(wk->scratch);
                    wk->scratch = malloc(sb);
                    wk->scratch_cap = wk->scratch ? sb : 0;
                    if (!wk->scratch)
                        return -1;
                }
                if (ops->apply(aug[i].self, prm, &cur, &out, wk->scratch))
                    return -1;
                cur = out;
                if (i == A_GRAY)
                    PT(2, tp);
            }
            PT(3, tp);
            continue;
        }
        float *vr = wk->views + (size_t)v * 3 * NPIX, *vg = vr + NPIX, *vb = vg + NPIX;
        to_planar(wk->u8, vr, vg, vb);
        if (v > 0) {
            if (api->rng_uniform(&r) < 0.5) {
                flip_plane(vr);
                flip_plane(vg);
                flip_plane(vb);
            }
            if (api->rng_uniform(&r) < 0.8) {
                int order[4] = {0, 1, 2, 3};
                for (int i = 3; i > 0; i--) {
                    int j = (int)api->rng_below(&r, (uint64_t)i + 1);
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
                float fb = (float)(0.6 + 0.8 * api->rng_uniform(&r));
                float fc = (float)(0.6 + 0.8 * api->rng_uniform(&r));
                float fs = (float)(0.6 + 0.8 * api->rng_uniform(&r));
                float fh = (float)(-0.1 + 0.2 * api->rng_uniform(&r));
                for (int k = 0; k < 4; k++)
                    switch (order[k]) {
                    case 0: brightness(vr, vg, vb, fb); break;
                    case 1: contrast(vr, vg, vb, fc); break;
                    case 2: saturation(vr, vg, vb, fs); break;
                    default: hue(vr, vg, vb, fh); break;
                    }
            }
            if (api->rng_uniform(&r) < 0.2)
                gray(vr, vg, vb);
        }
        PT(2, tp);
        normalize(vr, 0.485f, 0.229f);
        normalize(vg, 0.456f, 0.224f);
        normalize(vb, 0.406f, 0.225f);
        PT(3, tp);
    }
    return 0;
}

static double bench_equimod(const blob *v, size_t n, double seconds, size_t *count)
{
    const eqm_host_api *api = host_api();
    work wk = {0};
    wk.h = host_ctx_create("bench");
    if (use_plugins && !aug[0].ops && aug_setup(wk.h)) {
        *count = 0;
        return 0;
    }
    wk.u8 = malloc(OUT * OUT * 3);
    wk.u8b = malloc(OUT * OUT * 3);
    /* (3 views, C, H, W) float (own) or (3 views, H, W, C) (plugins: the backbones' layout) */
    wk.views = malloc(sizeof(float) * 3 * OUT * OUT * 3);
    size_t k = 0, bad = 0;
    double t0 = now_s(), dt;
    for (;;) {
        if (process(api, &wk, &v[k % n], k))
            bad++;
        k++;
        if ((k & 7) == 0 && (dt = now_s() - t0) >= seconds)
            break;
    }
    if (bad)
        fprintf(stderr, "bench/shards: %zu images failed: %s\n", bad, host_ctx_error(wk.h));
    if (prof_on)
        fprintf(stderr, "profile per image (us): decode %.0f, resize %.0f, flip/jitter/gray %.0f, "
                "normalize %.0f\n", prof[0] / k * 1e6, prof[1] / k * 1e6, prof[2] / k * 1e6,
                prof[3] / k * 1e6);
    if (prof_on) {
        fprintf(stderr, "DCT scale M/8 used:");
        for (int m = 1; m <= 8; m++)
            fprintf(stderr, " %d:%ld", m, m_hist[m]);
        fprintf(stderr, "\n");
    }
    memset(prof, 0, sizeof prof);
    memset(m_hist, 0, sizeof m_hist);
    for (int i = 0; i < 3; i++)
        free(wk.dec[i]);
    free(wk.u8);
    free(wk.u8b);
    free(wk.scratch);
    free(wk.views);
    host_ctx_destroy(wk.h);
    *count = k;
    return k / dt;
}

/* The training path: the real loader (loader_open: imagenet_tar plugin, host shard
 * stream, the augment plugins of the views below), 1 worker, batches of 64, epoch after
 * epoch for `seconds`. Per core = images per CPU-second of the whole process (the reading
 * thread included). The views are the torchvision reference's: original = Resize(256,
 * bilinear) + CenterCrop(224) + normalize, views = RandomResizedCrop(224, bilinear) + flip
 * + ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8 + grayscale p 0.2 + normalize. */
static const char *const train_cfg[] = {
    "run.seed=1", "data.plugin=imagenet_tar", "data.shuffle_buffer=64", "data.n_classes=1000",
    "loader.batch_size=32", "loader.workers=1", "loader.drop_last=false",
    "loader.t_standardize=none",
    "views.original=resize256 center224 norm", "views.view1=crop flip jitter gray norm",
    "views.view2=crop flip jitter gray norm",
    "augment.resize256.plugin=resize", "augment.resize256.size=256",
    "augment.resize256.interpolation=bilinear",
    "augment.center224.plugin=center_crop", "augment.center224.size=224",
    "augment.crop.plugin=random_resized_crop", "augment.crop.size=224",
    "augment.crop.interpolation=bilinear",
    "augment.flip.plugin=horizontal_flip", "augment.jitter.plugin=color_jitter",
    "augment.jitter.brightness=0.4", "augment.jitter.contrast=0.4",
    "augment.jitter.saturation=0.4", "augment.jitter.hue=0.1", "augment.jitter.p=0.8",
    "augment.gray.plugin=grayscale", "augment.gray.p=0.2",
    "augment.norm.plugin=normalize", "augment.norm.mean=0.485,0.456,0.406",
    "augment.norm.std=0.229,0.224,0.225",
};

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static double bench_loader(const char *pattern, double seconds, size_t *count)
{
    *count = 0;
    if (!getenv("EQUIMOD_PLUGIN_PATH"))
        cli_add_plugin_path("plugin-dir"); /* run from the build folder */
    eqm_registry *reg = cli_registry();
    eqm_config *c = config_new_empty();
    char err[2048], kv[1500];
    snprintf(kv, sizeof kv, "data.train_shards=%s", pattern);
    int bad = !reg || !c || config_set(c, kv, err, sizeof err);
    for (size_t i = 0; !bad && i < sizeof train_cfg / sizeof *train_cfg; i++)
        bad = config_set(c, train_cfg[i], err, sizeof err) != 0;
    eqm_loader *l = NULL;
    if (bad || loader_open(&l, c, reg, "train", NULL, err, sizeof err)) {
        fprintf(stderr, "bench/shards: training loader: %s\n", reg ? err : "no plugins");
        config_destroy(c);
        return -1;
    }
    size_t n = 0;
    double t0 = now_s(), c0 = cpu_s(), c1 = c0;
    for (int64_t ep = 0; now_s() - t0 < seconds; ep++) {
        if (loader_start_epoch(l, ep))
            break;
        eqm_batch *b;
        int rc;
        while ((rc = loader_next(l, &b)) == EQM_OK) {
            n += (size_t)b->n;
            loader_release(l, b);
        }
        if (rc != EQM_EOF) {
            fprintf(stderr, "bench/shards: training loader: %s\n", loader_error(l));
            n = 0;
            break;
        }
        c1 = cpu_s();
    }
    eqm_loader_stats st;
    loader_stats(l, &st);
    printf("training path: decoded at DCT scale 1/8: %lld, 2/8: %lld, 4/8: %lld, 8/8: %lld\n",
           (long long)st.decoded_at[0], (long long)st.decoded_at[1],
           (long long)st.decoded_at[2], (long long)st.decoded_at[3]);
    loader_destroy(l);
    config_destroy(c);
    *count = n;
    return n ? n / (c1 - c0) : -1;
}

static double run_torchvision(const char *script, const char *files, double seconds,
                              int two_only)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s --seconds %g %s %s", script, seconds,
             two_only ? "--two-views-only" : "", files);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    double r = -1;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "torchvision_img_per_s=%lf", &r) == 1)
            break;
    pclose(p);
    return r;
}

int main(int argc, char **argv)
{
    double seconds = 3.0;
    const char *data = getenv("EQUIMOD_DATA_DIR");
    int keep = 0, only_eq = 0, read_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--read-only")) { /* the read rates only, 30 repetitions */
            read_only = 1;
            read_reps = 30;
            continue;
        }
        if (!strcmp(argv[i], "--only-equimod")) { /* for profiling */
            only_eq = 1;
            continue;
        }
        if (!strcmp(argv[i], "--only-loader")) { /* for profiling: the training path only */
            only_eq = 2;
            continue;
        }
        if (!strcmp(argv[i], "--augment") && i + 1 < argc &&
            (!strcmp(argv[i + 1], "plugins") || !strcmp(argv[i + 1], "own")))
            use_plugins = !strcmp(argv[++i], "plugins");
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = 1;
        else {
            fprintf(stderr, "usage: bench/shards [--seconds S] [--data DIR] [--keep] [--only-equimod | --only-loader]\n"
                    "       [--read-only]\n"
                    "       [--augment own|plugins]\n");
            return 2;
        }
    }
    prof_on = getenv("EQM_BENCH_PROFILE") != NULL;
    if (getenv("EQM_BENCH_ENT"))
        ENT_COST = atof(getenv("EQM_BENCH_ENT"));
    if (getenv("EQM_BENCH_RES"))
        RES_COST = atof(getenv("EQM_BENCH_RES"));
    if (!data) {
        fprintf(stderr, "bench/shards: set EQUIMOD_DATA_DIR (the shared data folder) or --data\n");
        return 2;
    }
    char tmpl[] = "/tmp/eqm_bench_shards_XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        return 1;
    char in[1200], out[1200], pat_a[1300], pat_b[1300], files_b[8192];
    snprintf(in, sizeof in, "%s/imagenet-sample-images/imagenet-sample-images-sub.tar", data);
    snprintf(pat_a, sizeof pat_a, "%s/imagenet-000000.tar", dir);
    int na = write_sample_shard(in, pat_a);
    if (na <= 0)
        return 1;
    snprintf(in, sizeof in, "%s/imagenette2-224/imagenette2-224-val.tar.gz", data);
    snprintf(out, sizeof out, "%s/nette", dir);
    {
        char *av[] = {"shards", "--per-shard", "500", "--prefix", "val", in, out};
        fflush(stdout);
        if (cmd_shards(7, av))
            return 1;
    }
    snprintf(pat_b, sizeof pat_b, "%s/val-{000000..000007}.tar", out);
    files_b[0] = 0;
    for (int s = 0; s < 8; s++) {
        size_t l = strlen(files_b);
        snprintf(files_b + l, sizeof files_b - l, "%s%s/val-%06d.tar", s ? " " : "", out, s);
    }

    /* read rate */
    double r_uring, r_pread, r_cat;
    size_t bytes;
    blob *va = NULL, *vb = NULL;
    size_t nva = 0, nvb = 0;
    read_set(pat_b, SHARD_IO_AUTO, &vb, &nvb, &r_uring, &bytes);
    read_set(pat_b, SHARD_IO_PREAD, NULL, NULL, &r_pread, &bytes);
    r_cat = cat_rate(files_b, bytes);
    char *paths_b[8], pb[8][1300];
    for (int s = 0; s < 8; s++) {
        snprintf(pb[s], sizeof pb[s], "%s/val-%06d.tar", out, s);
        paths_b[s] = pb[s];
    }
    double rr_uring = reader_rate(paths_b, 8, SHARD_IO_AUTO);
    double rr_pread = reader_rate(paths_b, 8, SHARD_IO_PREAD);
    printf("read: %zu samples, %.1f MB in 8 shards: shard stream (read + libarchive + grouping "
           "+ copy into samples) io_uring %.0f MB/s, pread %.0f MB/s; reader alone io_uring "
           "%.0f MB/s, pread %.0f MB/s; cat %.0f MB/s (stream / cat = %.2f, reader / cat = "
           "%.2f)\n", nvb, bytes / 1e6, r_uring, r_pread, rr_uring, rr_pread, r_cat,
           r_uring / r_cat, rr_uring / r_cat);
    {
        /* the same on ImageNet-size members: 8 copies of the full-size sample shard */
        char pat_r[1400], files_r[12000] = "", cmd[6000];
        snprintf(cmd, sizeof cmd, "for i in 1 2 3 4 5 6 7; do cp '%s' '%s/rep-00000'$i.tar; done; "
                 "cp '%s' '%s/rep-000000.tar'", pat_a, dir, pat_a, dir);
        if (system(cmd) == 0) {
            snprintf(pat_r, sizeof pat_r, "%s/rep-{000000..000007}.tar", dir);
            for (int s2 = 0; s2 < 8; s2++) {
                size_t l2 = strlen(files_r);
                snprintf(files_r + l2, sizeof files_r - l2, "%s%s/rep-%06d.tar", s2 ? " " : "",
                         dir, s2);
            }
            double q_uring, q_cat;
            size_t qbytes;
            read_set(pat_r, SHARD_IO_AUTO, NULL, NULL, &q_uring, &qbytes);
            q_cat = cat_rate(files_r, qbytes);
            printf("read, ImageNet-size members (8 x the %d full-size JPEGs, mean %.0f KB): "
                   "shard stream io_uring %.0f MB/s (%.0f samples/s), cat %.0f MB/s (stream / "
                   "cat = %.2f)\n", na, qbytes / 8.0 / na / 1e3, q_uring,
                   q_uring * 1e6 / (qbytes / 8.0 / na), q_cat, q_uring / q_cat);
        }
    }
    if (read_only) {
        for (size_t i = 0; i < nvb; i++)
            free(vb[i].data);
        free(vb);
        if (!keep) {
            char cmd[1400];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd))
                fprintf(stderr, "bench/shards: could not remove %s\n", dir);
        }
        return 0;
    }
    read_set(pat_a, SHARD_IO_AUTO, &va, &nva, &r_uring, &bytes);

    char script[1200];
    const char *src = getenv("EQM_SRCDIR");
    snprintf(script, sizeof script, "%s/bench/shards_torchvision.py", src ? src : EQM_SRCDIR);
    double eq_a, eq_b, tv_a, tv_b, tv_a2;
    size_t ca, cb;
    size_t cl;
    double ld_a = bench_loader(pat_a, seconds, &cl);
    printf("imagenet training path (loader, plugins): %.1f img per CPU-s (%zu images)\n", ld_a,
           cl);
    fflush(stdout);
    eq_a = only_eq == 2 ? 0 : bench_equimod(va, nva, seconds, &ca);
    if (only_eq) {
        printf("imagenet: equimod %.1f img/s (%zu images)\n", eq_a, ca);
        if (!keep) {
            char cmd[1400];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd))
                fprintf(stderr, "bench/shards: could not remove %s\n", dir);
        }
        return 0;
    }
    tv_a = run_torchvision(script, pat_a, seconds, 0);
    tv_a2 = run_torchvision(script, pat_a, seconds, 1);
    printf("imagenet (%zu full-size JPEGs): training path %.1f img/CPU-s (ratio %.2f); this "
           "benchmark's fused pipeline %.1f img/s (decode + 3 views, %zu images, ratio %.2f); "
           "torchvision+PIL %.1f img/s (3 views), %.1f img/s (2 views, the reference row)\n",
           nva, ld_a, tv_a > 0 ? ld_a / tv_a : 0.0, eq_a, ca, tv_a > 0 ? eq_a / tv_a : 0.0,
           tv_a, tv_a2);
    size_t clb;
    double ld_b = bench_loader(pat_b, seconds, &clb);
    eq_b = bench_equimod(vb, nvb, seconds, &cb);
    tv_b = run_torchvision(script, files_b, seconds, 0);
    printf("imagenette (%zu JPEGs 224x224): training path %.1f img/CPU-s (ratio %.2f); fused "
           "pipeline %.1f img/s (ratio %.2f); torchvision+PIL %.1f img/s\n", nvb, ld_b,
           tv_b > 0 ? ld_b / tv_b : 0.0, eq_b, tv_b > 0 ? eq_b / tv_b : 0.0, tv_b);
    for (size_t i = 0; i < nva; i++)
        free(va[i].data);
    for (size_t i = 0; i < nvb; i++)
        free(vb[i].data);
    free(va);
    free(vb);
    if (!keep) {
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd))
            fprintf(stderr, "bench/shards: could not remove %s\n", dir);
    } else {
        printf("shards kept in %s\n", dir);
    }
    if (tv_a <= 0) {
        fprintf(stderr, "bench/shards: the torchvision reference failed (/usr/bin/python3 "
                        "with torch and torchvision needed)\n");
        return 1;
    }
    /* the ratio is the training path's: what `equimod train` gets per core */
    printf("ratio=%.2f\n", ld_a / tv_a);
    return 0;
}
