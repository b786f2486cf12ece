/* host/services/image_png.c: PNG decoding and the format-sniffing entry points of the image
 * services (api->image->image_header and ->decode, ABI 1.3), so that a dataset plugin reads
 * JPEG and PNG files without an image library of its own.
 *
 * PNG through libpng's classic API, converted the way Pillow's Image.convert("RGB") does:
 * palette expanded, gray replicated to R, G and B, bit depths below 8 scaled up, 16-bit
 * samples reduced to their high byte, alpha and tRNS dropped (not composited), gamma and
 * colour profiles ignored, interlaced images deinterlaced. JPEG is image.c's decoder.
 * Threading: reentrant (libpng state is per call).
 */
#include "config.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <png.h>

#include "core.h"
#include "services/image_png.h"

static const unsigned char PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

int image_sniff(const void *data, size_t n)
{
    const unsigned char *b = data;
    if (b && n >= 8 && !memcmp(b, PNG_SIG, 8))
        return IMAGE_PNG;
    if (b && n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return IMAGE_JPEG;
    return IMAGE_UNKNOWN;
}

typedef struct png_src {
    const unsigned char *p;
    size_t n, off;
} png_src;

typedef struct png_fail {
    jmp_buf jb;
    char msg[256];
} png_fail;

static void png_read_mem(png_structp ps, png_bytep out, png_size_t len)
{
    png_src *s = png_get_io_ptr(ps);
    if (len > s->n - s->off)
        png_error(ps, "truncated data");
    memcpy(out, s->p + s->off, len);
    s->off += len;
}

static void png_on_error(png_structp ps, png_const_charp msg)
{
    png_fail *f = png_get_error_ptr(ps);
    snprintf(f->msg, sizeof f->msg, "%s", msg);
    longjmp(f->jb, 1);
}

static void png_on_warning(png_structp ps, png_const_charp msg) { (void)ps; (void)msg; }

/* Read the header; with `out`, decode into it (RGB, caller's buffer of cap bytes). */
static int png_run(eqm_host *h, const char *fn, const void *data, size_t n, int *w, int *ht,
                   int *c, eqm_image *out, size_t cap)
{
    png_src src = {data, n, 0};
    png_fail fail;
    fail.msg[0] = 0;
    png_structp ps = png_create_read_struct(PNG_LIBPNG_VER_STRING, &fail, png_on_error,
                                            png_on_warning);
    png_infop pi = ps ? png_create_info_struct(ps) : NULL;
    if (!pi) {
        png_destroy_read_struct(&ps, NULL, NULL);
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "%s: out of memory (libpng)", fn);
    }
    /* volatile: read after a longjmp from libpng */
    png_bytep *volatile rows = NULL;
    int rc = EQM_OK;
    if (setjmp(fail.jb)) {
        rc = host_ctx_set_error(h, EQM_ERR_FORMAT, "%s: PNG: %s", fn, fail.msg);
        goto done;
    }
    png_set_read_fn(ps, &src, png_read_mem);
    png_set_user_limits(ps, 1u << 16, 1u << 16);
    png_read_info(ps, pi);
    png_uint_32 W = png_get_image_width(ps, pi), H = png_get_image_height(ps, pi);
    int type = png_get_color_type(ps, pi), depth = png_get_bit_depth(ps, pi);
    if (w)
        *w = (int)W;
    if (ht)
        *ht = (int)H;
    if (c)
        *c = (type & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    if (!out)
        goto done;
    if ((size_t)W * H * 3 > cap) {
        out->w = (int)W;
        out->h = (int)H;
        out->c = 3;
        rc = EQM_GROW;
        goto done;
    }
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(ps);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(ps);
    if (depth == 16)
        png_set_strip_16(ps);
    if ((type & PNG_COLOR_MASK_ALPHA) || png_get_valid(ps, pi, PNG_INFO_tRNS))
        png_set_strip_alpha(ps); /* a palette's tRNS comes out of the expansion as alpha */
    if (!(type & PNG_COLOR_MASK_COLOR))
        png_set_gray_to_rgb(ps);
    png_set_interlace_handling(ps);
    png_read_update_info(ps, pi);
    if (png_get_rowbytes(ps, pi) != (size_t)W * 3)
        png_error(ps, "unexpected row size after conversion to RGB");
    rows = png_malloc(ps, H * sizeof *rows);
    for (png_uint_32 y = 0; y < H; y++)
        rows[y] = (png_bytep)out->data + (size_t)y * W * 3;
    png_read_image(ps, rows);
    png_read_end(ps, NULL);
    out->w = (int)W;
    out->h = (int)H;
    out->c = 3;
    out->stride = (int)W * 3;
    out->format = EQM_PIX_U8;
done:
    if (rows)
        png_free(ps, rows);
    png_destroy_read_struct(&ps, &pi, NULL);
    return rc;
}

int image_png_header(eqm_host *h, const void *data, size_t n, int *w, int *ht, int *c)
{
    return png_run(h, "image_header", data, n, w, ht, c, NULL, 0);
}

int image_png_decode(eqm_host *h, const void *data, size_t n, eqm_image *out, size_t cap)
{
    return png_run(h, "decode", data, n, NULL, NULL, NULL, out, cap);
}
