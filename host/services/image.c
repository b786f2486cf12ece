/* host/services/image.c: the image services table (api->image, host_api.h).
 *
 * JPEG header reading through TurboJPEG (tjDecompressHeader3); decoding through the libjpeg
 * API of libjpeg-turbo (libjpeg62-turbo), because it offers what the TurboJPEG 2.x API does
 * not: DCT-domain scaling by any M/8, horizontal cropping (jpeg_crop_scanline) and row
 * skipping (jpeg_skip_scanlines) for partial decodes, and the Adobe marker needed to convert
 * CMYK/YCCK images the way Pillow does. Resampling (resample, crop_resize) is resample.c's:
 * Pillow's ImagingResample bit for bit. image_header / decode (ABI 1.3) take JPEG or PNG
 * (image_png.c).
 *
 * Deliberately left out: progressive-JPEG-specific speedups, 12-bit JPEGs, colour
 * management (ICC profiles are ignored as Pillow's convert("RGB") ignores them).
 * Dimensions: W, H original image; w, h output; C = 3 (RGB) unless stated.
 * Threading: every function is reentrant (no shared mutable state).
 */
#include "config.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <turbojpeg.h>

#include "core.h"
#include "services/image_png.h"
#include "services/resample.h"

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
/* Both entry points are the one resampler of resample.c. */

static int img_crop_resize(eqm_host *h, const eqm_image *in, float x0, float y0, float cw,
                           float ch, eqm_image *out)
{
    const double box[4] = {x0, y0, cw, ch};
    return image_resample(h, "crop_resize", in, box, EQM_RESAMPLE_BILINEAR, out);
}

static int img_resample(eqm_host *h, const eqm_image *in, const double box[4], int flags,
                        eqm_image *out)
{
    return image_resample(h, "resample", in, box, flags, out);
}

/* ------------------------------------------------------------------ any format -- */
/* ABI 1.3: JPEG or PNG, told apart by their signatures (image_png.c has the PNG side). */

static int img_image_header(eqm_host *h, const void *data, size_t n, int *w, int *ht, int *c)
{
    switch (image_sniff(data, n)) {
    case IMAGE_PNG: return image_png_header(h, data, n, w, ht, c);
    case IMAGE_JPEG: {
        int cc = 3, rc = img_jpeg_header(h, data, n, w, ht, &cc);
        if (c)
            *c = cc == 1 ? 1 : 3; /* CMYK decodes to RGB */
        return rc;
    }
    default:
        return host_ctx_set_error(h, EQM_ERR_FORMAT, "image_header: %zu bytes that are neither "
                                  "a JPEG nor a PNG (by their first bytes)", n);
    }
}

static int img_decode(eqm_host *h, const void *data, size_t n, eqm_image *out, size_t cap)
{
    if (!out)
        return host_ctx_set_error(h, EQM_ERR_INVAL, "decode: out is NULL");
    switch (image_sniff(data, n)) {
    case IMAGE_PNG: return image_png_decode(h, data, n, out, cap);
    case IMAGE_JPEG: {
        int W, H;
        int rc = img_jpeg_header(h, data, n, &W, &H, NULL);
        if (rc)
            return rc;
        if ((size_t)W * H * 3 > cap) {
            out->w = W;
            out->h = H;
            out->c = 3;
            return EQM_GROW;
        }
        return img_jpeg_decode(h, data, n, 1, out, cap);
    }
    default:
        return host_ctx_set_error(h, EQM_ERR_FORMAT, "decode: %zu bytes that are neither a "
                                  "JPEG nor a PNG (by their first bytes)", n);
    }
}

static const eqm_image_api the_image_api = {
    .size = sizeof(eqm_image_api),
    .jpeg_header = img_jpeg_header,
    .jpeg_decode = img_jpeg_decode,
    .jpeg_decode_region = img_jpeg_decode_region,
    .crop_resize = img_crop_resize,
    .resample = img_resample,
    .image_header = img_image_header,
    .decode = img_decode,
};

const eqm_image_api *image_api_table(void) { return &the_image_api; }
