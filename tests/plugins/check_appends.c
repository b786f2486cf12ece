/* tests/plugins/check_appends.c: the ABI 1.3 appends (issue 15), with real plugin files
 * (tests/plugins/v13/tp_v13.so) loaded by dlopen through the registry beside this build's
 * augmentation plugins:
 *   - api->image->decode / image_header read PNG (written here by libpng: RGB, gray 1-bit,
 *     gray+alpha 16-bit, palette with tRNS, interlaced RGBA) as Pillow's convert("RGB")
 *     does, and JPEG (the same pixels as jpeg_decode); the grow protocol; corrupt data;
 *   - an augmentation whose output size depends on its parameters (out_shape_p): a
 *     90-degree turn of non-square images gives the turned pixels through the loader;
 *   - a dataset of varying image sizes lists them (image_sizes) and the t estimate uses
 *     them instead of 256x256;
 *   - the same plugins built for ABI 1.2 (ops tables without the appends) load and run. */
#include "config.h"

#include <math.h>
#include <png.h>
#include <turbojpeg.h>

#include "../data/data_util.h"

static eqm_registry *reg;

/* ------------------------------------------------------------------ PNG ---------- */

typedef struct membuf {
    unsigned char *p;
    size_t n;
} membuf;

static void mem_write(png_structp ps, png_bytep d, png_size_t n)
{
    membuf *m = png_get_io_ptr(ps);
    m->p = realloc(m->p, m->n + n);
    memcpy(m->p + m->n, d, n);
    m->n += n;
}
static void mem_flush(png_structp ps) { (void)ps; }

/* A PNG of w x h with colour type `type`, bit depth `depth`, rows given as packed bytes. */
static membuf png_write(int w, int h, int type, int depth, int interlace,
                        const unsigned char *rows, size_t rowbytes, const png_color *pal,
                        int npal, const png_byte *trns, int ntrns)
{
    membuf m = {NULL, 0};
    png_structp ps = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop pi = png_create_info_struct(ps);
    ck_assert(ps && pi);
    ck_assert(!setjmp(png_jmpbuf(ps)));
    png_set_write_fn(ps, &m, mem_write, mem_flush);
    png_set_IHDR(ps, pi, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal)
        png_set_PLTE(ps, pi, pal, npal);
    if (trns)
        png_set_tRNS(ps, pi, trns, ntrns, NULL);
    png_write_info(ps, pi);
    png_bytep *rp = malloc((size_t)h * sizeof *rp);
    for (int y = 0; y < h; y++)
        rp[y] = (png_bytep)rows + (size_t)y * rowbytes;
    png_write_image(ps, rp);
    png_write_end(ps, NULL);
    free(rp);
    png_destroy_write_struct(&ps, &pi);
    return m;
}

static eqm_host *ctx;

/* decode m, check w x h and every RGB byte against exp (w*h*3) */
static void decode_eq(const membuf *m, int w, int h, int c_hdr, const unsigned char *exp)
{
    const eqm_image_api *im = host_api()->image;
    ck_assert(EQM_API_HAS(im, decode) && EQM_API_HAS(im, image_header));
    int W = 0, H = 0, C = 0;
    ck_assert_msg(im->image_header(ctx, m->p, m->n, &W, &H, &C) == EQM_OK, "%s",
                  host_ctx_error(ctx));
    ck_assert_int_eq(W, w);
    ck_assert_int_eq(H, h);
    ck_assert_int_eq(C, c_hdr);
    /* too small: the size and EQM_GROW, nothing written */
    unsigned char small[4] = {1, 2, 3, 4};
    eqm_image o = {0, 0, 0, 0, EQM_PIX_U8, small};
    ck_assert_int_eq(im->decode(ctx, m->p, m->n, &o, sizeof small), EQM_GROW);
    ck_assert_int_eq(o.w, w);
    ck_assert_int_eq(o.h, h);
    ck_assert_int_eq(o.c, 3);
    ck_assert_int_eq(small[0], 1);
    unsigned char *buf = malloc((size_t)w * h * 3);
    o = (eqm_image){0, 0, 0, 0, EQM_PIX_U8, buf};
    ck_assert_msg(im->decode(ctx, m->p, m->n, &o, (size_t)w * h * 3) == EQM_OK, "%s",
                  host_ctx_error(ctx));
    ck_assert_int_eq(o.w, w);
    ck_assert_int_eq(o.h, h);
    ck_assert_int_eq(o.c, 3);
    ck_assert_int_eq(o.stride, w * 3);
    for (int i = 0; i < w * h * 3; i++)
        ck_assert_msg(buf[i] == exp[i], "pixel byte %d: %d, expected %d", i, buf[i], exp[i]);
    free(buf);
}

START_TEST(test_png_rgb)
{
    enum { W = 5, H = 3 };
    unsigned char rows[W * H * 3];
    for (int i = 0; i < W * H * 3; i++)
        rows[i] = (unsigned char)(i * 17 + 3);
    membuf m = png_write(W, H, PNG_COLOR_TYPE_RGB, 8, 0, rows, W * 3, NULL, 0, NULL, 0);
    decode_eq(&m, W, H, 3, rows);
    /* truncated: a format error naming PNG */
    const eqm_image_api *im = host_api()->image;
    unsigned char buf[W * H * 3];
    eqm_image o = {0, 0, 0, 0, EQM_PIX_U8, buf};
    ck_assert_int_eq(im->decode(ctx, m.p, m.n - 20, &o, sizeof buf), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(host_ctx_error(ctx), "decode: PNG: "), "%s", host_ctx_error(ctx));
    ck_assert_int_eq(im->decode(ctx, "GIF89a....", 10, &o, sizeof buf), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(host_ctx_error(ctx), "neither a JPEG nor a PNG"), "%s",
                  host_ctx_error(ctx));
    free(m.p);
}
END_TEST

/* 1-bit gray: 0 -> 0, 1 -> 255, replicated to R, G, B */
START_TEST(test_png_gray1)
{
    enum { W = 11, H = 2 };
    unsigned char rows[2 * 2] = {0xA5, 0x40, 0x0F, 0xE0}; /* 11 bits per row, 2 bytes */
    unsigned char exp[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int bit = (rows[y * 2 + x / 8] >> (7 - x % 8)) & 1;
            for (int k = 0; k < 3; k++)
                exp[(y * W + x) * 3 + k] = bit ? 255 : 0;
        }
    membuf m = png_write(W, H, PNG_COLOR_TYPE_GRAY, 1, 0, rows, 2, NULL, 0, NULL, 0);
    decode_eq(&m, W, H, 1, exp);
    free(m.p);
}
END_TEST

/* 16-bit gray + alpha: the high byte of the gray sample, alpha dropped */
START_TEST(test_png_gray_alpha16)
{
    enum { W = 4, H = 3 };
    unsigned char rows[W * H * 4], exp[W * H * 3];
    for (int i = 0; i < W * H; i++) {
        int g = i * 4099 + 5, a = 65535 - i * 1000;
        rows[i * 4 + 0] = (unsigned char)(g >> 8);
        rows[i * 4 + 1] = (unsigned char)g;
        rows[i * 4 + 2] = (unsigned char)(a >> 8);
        rows[i * 4 + 3] = (unsigned char)a;
        for (int k = 0; k < 3; k++)
            exp[i * 3 + k] = (unsigned char)(g >> 8);
    }
    membuf m = png_write(W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, rows, W * 4, NULL, 0, NULL, 0);
    decode_eq(&m, W, H, 1, exp);
    free(m.p);
}
END_TEST

/* palette with transparency: the palette colours, tRNS ignored */
START_TEST(test_png_palette)
{
    enum { W = 6, H = 2 };
    const png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    const png_byte trns[4] = {0, 128, 255, 7};
    unsigned char rows[W * H], exp[W * H * 3];
    for (int i = 0; i < W * H; i++) {
        rows[i] = (unsigned char)(i % 4);
        exp[i * 3 + 0] = pal[i % 4].red;
        exp[i * 3 + 1] = pal[i % 4].green;
        exp[i * 3 + 2] = pal[i % 4].blue;
    }
    membuf m = png_write(W, H, PNG_COLOR_TYPE_PALETTE, 8, 0, rows, W, pal, 4, trns, 4);
    decode_eq(&m, W, H, 3, exp);
    free(m.p);
}
END_TEST

/* interlaced RGBA: deinterlaced, alpha dropped */
START_TEST(test_png_rgba_interlaced)
{
    enum { W = 13, H = 9 };
    unsigned char rows[W * H * 4], exp[W * H * 3];
    for (int i = 0; i < W * H; i++)
        for (int k = 0; k < 4; k++) {
            rows[i * 4 + k] = (unsigned char)(i * 5 + k * 60);
            if (k < 3)
                exp[i * 3 + k] = rows[i * 4 + k];
        }
    membuf m = png_write(W, H, PNG_COLOR_TYPE_RGBA, 8, 1, rows, W * 4, NULL, 0, NULL, 0);
    decode_eq(&m, W, H, 3, exp);
    free(m.p);
}
END_TEST

/* a JPEG through decode: the bytes of jpeg_decode */
START_TEST(test_jpeg_through_decode)
{
    enum { W = 24, H = 16 };
    unsigned char px[W * H * 3];
    for (int i = 0; i < W * H * 3; i++)
        px[i] = (unsigned char)(i * 13);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long jn = 0;
    ck_assert(tjCompress2(tj, px, W, W * 3, H, TJPF_RGB, &jpg, &jn, TJSAMP_420, 90, 0) == 0);
    tjDestroy(tj);
    unsigned char a[W * H * 3], b[W * H * 3];
    eqm_image oa = {0, 0, 0, 0, EQM_PIX_U8, a}, ob = {0, 0, 0, 0, EQM_PIX_U8, b};
    const eqm_image_api *im = host_api()->image;
    ck_assert(im->jpeg_decode(ctx, jpg, jn, 1, &oa, sizeof a) == EQM_OK);
    membuf m = {jpg, jn};
    decode_eq(&m, W, H, 3, a);
    ck_assert(im->decode(ctx, jpg, jn, &ob, sizeof b) == EQM_OK);
    ck_assert(!memcmp(a, b, sizeof a));
    tjFree(jpg);
}
END_TEST

/* ------------------------------------------------------------------ plugins ------ */

static eqm_config *open_cfg; /* the config of the open loader (it keeps its strings) */

static eqm_loader *open_loader(const char *const *lines, char *msg, size_t n)
{
    open_cfg = du_config(lines);
    eqm_loader *l = NULL;
    int rc = loader_open(&l, open_cfg, reg, "train", NULL, msg, n);
    ck_assert_msg(rc == 0, "loader_open: %s", msg);
    return l;
}

static void close_loader(eqm_loader *l)
{
    loader_destroy(l);
    config_destroy(open_cfg);
    open_cfg = NULL;
}

/* turned rows of view 1 are the original view turned: x1(y, x) = x0(7 - x, y) */
START_TEST(test_out_shape_p)
{
    const char *const lines[] = {"data.plugin=test_sizes", "data.wide=true",
                                 "augment.turn.plugin=test_turn", "augment.cc.plugin=center_crop",
                                 "augment.cc.size=8", "augment.norm.plugin=normalize",
                                 "views.view1=turn cc norm", "views.view2=turn cc norm",
                                 "views.original=cc norm", "loader.t_standardize=none",
                                 "loader.batch_size=12", "loader.workers=2", NULL};
    char msg[2048];
    eqm_loader *l = open_loader(lines, msg, sizeof msg);
    ck_assert_int_eq(loader_t_dim(l), 1);
    ck_assert_str_eq(loader_t_name(l, 0), "turn");
    ck_assert_int_eq(loader_start_epoch(l, 0), 0);
    eqm_batch *b;
    ck_assert_msg(loader_next(l, &b) == EQM_OK, "%s", loader_error(l));
    ck_assert_int_eq(b->w, 8);
    ck_assert_int_eq(b->h, 8);
    int turned = 0, kept = 0;
    for (int r = 0; r < b->n; r++) {
        const float *x0 = b->x0 + (size_t)r * 192, *x1 = b->x1 + (size_t)r * 192;
        int turn = b->t1[r] > 0.5f;
        turned += turn;
        kept += !turn;
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                for (int k = 0; k < 3; k++) {
                    float want = turn ? x0[((7 - x) * 8 + y) * 3 + k] : x0[(y * 8 + x) * 3 + k];
                    ck_assert_msg(x1[(y * 8 + x) * 3 + k] == want, "row %d (turn %d) at %d,%d",
                                  r, turn, y, x);
                }
    }
    ck_assert_msg(turned > 0 && kept > 0, "turned %d kept %d", turned, kept);
    loader_release(l, b);
    close_loader(l);
}
END_TEST

/* t estimated on the listed sizes: crop records in pixels of images at most 56 x 40 */
START_TEST(test_image_sizes)
{
    const char *ds[2] = {"data.plugin=test_sizes", "data.plugin=test_sizes12"};
    float crop_mean[2] = {0, 0};
    for (int v = 0; v < 2; v++) {
        const char *const lines[] = {ds[v], "augment.crop.plugin=random_resized_crop",
                                     "augment.crop.size=8", "augment.norm.plugin=normalize",
                                     "views.view1=crop norm", "views.view2=crop norm",
                                     "views.original=crop norm",
                                     "loader.t_standardize=estimate",
                                     "loader.t_estimate_samples=200", "loader.batch_size=4",
                                     NULL};
        char msg[2048];
        eqm_loader *l = open_loader(lines, msg, sizeof msg);
        ck_assert_int_eq(loader_t_dim(l), 4);
        ck_assert_str_eq(loader_t_name(l, 3), "crop_w");
        crop_mean[v] = loader_t_mean(l)[3];
        close_loader(l);
    }
    /* listed sizes: crop_w below the widest image (56); the 1.2 dataset cannot list them
     * and the estimate falls back to 256 x 256 images */
    ck_assert_msg(crop_mean[0] > 5 && crop_mean[0] < 56, "crop_w mean %g", crop_mean[0]);
    ck_assert_msg(crop_mean[1] > 60, "crop_w mean %g (1.2 dataset)", crop_mean[1]);
}
END_TEST

/* the 1.2 builds load, their appended fields read as NULL, and they run */
START_TEST(test_v12_plugins)
{
    const eqm_plugin *t12 = registry_find(reg, EQM_KIND_AUGMENT, "test_turn12");
    const eqm_plugin *s12 = registry_find(reg, EQM_KIND_DATASET, "test_sizes12");
    ck_assert(t12 && s12);
    ck_assert_int_eq(t12->file_abi_minor, 2);
    ck_assert_ptr_null(t12->ops.augment.out_shape_p);
    ck_assert_ptr_null(s12->ops.dataset.image_sizes);
    ck_assert_ptr_nonnull(registry_find(reg, EQM_KIND_AUGMENT, "test_turn")->ops.augment.out_shape_p);
    const char *const lines[] = {"data.plugin=test_sizes12", "augment.id.plugin=test_turn12",
                                 "augment.cc.plugin=center_crop", "augment.cc.size=8",
                                 "augment.norm.plugin=normalize", "views.view1=id cc norm",
                                 "views.view2=id cc norm", "views.original=cc norm",
                                 "loader.t_standardize=none", "loader.batch_size=6", NULL};
    char msg[2048];
    eqm_loader *l = open_loader(lines, msg, sizeof msg);
    ck_assert_int_eq(loader_start_epoch(l, 0), 0);
    eqm_batch *b;
    int rc, n = 0;
    while ((rc = loader_next(l, &b)) == EQM_OK) {
        n += b->n;
        ck_assert(!memcmp(b->x0, b->x1, (size_t)b->n * 192 * sizeof(float)));
        loader_release(l, b);
    }
    ck_assert_msg(rc == EQM_EOF, "%s", loader_error(l));
    ck_assert_int_eq(n, 12);
    close_loader(l);
}
END_TEST

int main(void)
{
    reg = du_registry();
    const char *dir = getenv("EQM_BUILDDIR");
    ctx = host_ctx_create("test/appends");
    if (!reg || !dir || !ctx)
        return 99;
    char so[2048];
    snprintf(so, sizeof so, "%s/tests/plugins/v13/.libs/tp_v13.so", dir);
    int n = registry_load_file(reg, so);
    if (n != 4) {
        fprintf(stderr, "%s: %d plugins loaded, 4 expected\n", so, n);
        return 99;
    }
    Suite *s = suite_create("appends");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_png_rgb);
    tcase_add_test(tc, test_png_gray1);
    tcase_add_test(tc, test_png_gray_alpha16);
    tcase_add_test(tc, test_png_palette);
    tcase_add_test(tc, test_png_rgba_interlaced);
    tcase_add_test(tc, test_jpeg_through_decode);
    tcase_add_test(tc, test_out_shape_p);
    tcase_add_test(tc, test_image_sizes);
    tcase_add_test(tc, test_v12_plugins);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    registry_destroy(reg);
    host_ctx_destroy(ctx);
    return nf ? 1 : 0;
}
