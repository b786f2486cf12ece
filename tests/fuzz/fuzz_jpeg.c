/* tests/fuzz/fuzz_jpeg.c: the JPEG decode path of the host's image services
 * (host/services/image.c: api->image->jpeg_header, jpeg_decode, jpeg_decode_region,
 * crop_resize), called as the imagenet_tar plugin and the loader call them.
 *
 * Input: four option bytes, then the JPEG bytes.
 *   byte 0: scale_num = 1 + (b & 7) for the region decodes; jpeg_decode's scale_denom =
 *           1 << ((b >> 3) & 3)
 *   bytes 1, 2: the region (x, w from byte 1, y, h from byte 2, as fractions of the scaled
 *           image)
 *   byte 3: the crop_resize box and output size
 * Images over 4 megapixels (by their header) are skipped, as the plugins refuse images
 * over their pixel limit before decoding (the fuzzer's time limit, not a property).
 * Output buffers are exactly as large as the API documents, so that an overrun is caught.
 * Invariants: refusals carry a message; a decode of the whole image gives the documented
 * scaled size; a region decode into the documented capacity succeeds or reports corrupt
 * data (never "buffer too small"), covers the requested columns and starts at row y. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fuzz.h"

#define MAX_PIXELS ((int64_t)1 << 22)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        fuzz_fail("out of memory (%zu bytes)", n);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static eqm_host *h;
    if (!h) {
        fuzz_quiet();
        h = host_ctx_create("fuzz/jpeg");
    }
    const eqm_image_api *im = host_api()->image;
    if (size < 4)
        return 0;
    const uint8_t b0 = data[0], b1 = data[1], b2 = data[2], b3 = data[3];
    const uint8_t *jpg = data + 4;
    size_t n = size - 4;
    int W = 0, H = 0, C = 0;
    if (im->jpeg_header(h, jpg, n, &W, &H, &C)) {
        if (!host_ctx_error(h)[0])
            fuzz_fail("jpeg_header refused without a message");
        /* the decoder must refuse it too, or decode within the buffer it was given */
        eqm_image o = {0};
        o.data = xmalloc(64 * 64 * 3);
        (void)im->jpeg_decode(h, jpg, n, 1, &o, 64 * 64 * 3);
        free(o.data);
        return 0;
    }
    if (W <= 0 || H <= 0 || (C != 1 && C != 3 && C != 4))
        fuzz_fail("jpeg_header: %dx%d, %d channels", W, H, C);
    if ((int64_t)W * H > MAX_PIXELS)
        return 0;
    int num = 1 + (b0 & 7);
    int sw = (W * num + 7) / 8, sh = (H * num + 7) / 8;
    /* 1. the whole image, scaled */
    size_t cap = (size_t)sw * sh * 3;
    eqm_image full = {0};
    full.data = xmalloc(cap);
    int ox = -1, oy = -1;
    int rc = im->jpeg_decode_region(h, jpg, n, num, 0, 0, 0, 0, &full, cap, &ox, &oy);
    if (rc == EQM_OK && (full.w != sw || full.h != sh || full.c != 3 || ox != 0 || oy != 0 ||
                         full.stride != sw * 3))
        fuzz_fail("full decode at %d/8 of %dx%d gave %dx%dx%d at %d,%d (want %dx%d)", num, W,
                  H, full.w, full.h, full.c, ox, oy, sw, sh);
    if (rc != EQM_OK && rc != EQM_ERR_FORMAT)
        fuzz_fail("full decode at %d/8 of %dx%d: status %d (%s)", num, W, H, rc,
                  host_ctx_error(h));
    if (rc != EQM_OK && !host_ctx_error(h)[0])
        fuzz_fail("full decode failed without a message");
    int full_ok = rc == EQM_OK;
    /* 2. jpeg_decode (1.0 API) at 1/denom */
    int denom = 1 << ((b0 >> 3) & 3);
    int dw = (W + denom - 1) / denom, dh = (H + denom - 1) / denom;
    size_t dcap = (size_t)dw * dh * 3;
    eqm_image d = {0};
    d.data = xmalloc(dcap);
    rc = im->jpeg_decode(h, jpg, n, denom, &d, dcap);
    if (rc == EQM_OK && (d.w != dw || d.h != dh))
        fuzz_fail("jpeg_decode 1/%d of %dx%d gave %dx%d", denom, W, H, d.w, d.h);
    if (rc != EQM_OK && rc != EQM_ERR_FORMAT)
        fuzz_fail("jpeg_decode 1/%d of %dx%d: status %d (%s)", denom, W, H, rc,
                  host_ctx_error(h));
    free(d.data);
    /* 3. a region, into the documented capacity */
    int x = (int)((int64_t)sw * (b1 & 15) / 16), y = (int)((int64_t)sh * (b2 & 15) / 16);
    int w = 1 + (int)((int64_t)(sw - x - 1) * (b1 >> 4) / 15);
    int ht = 1 + (int)((int64_t)(sh - y - 1) * (b2 >> 4) / 15);
    size_t rcap = (size_t)(w + 2 * 16 * num / 8 + 16) * ht * 3;
    eqm_image r = {0};
    r.data = xmalloc(rcap);
    rc = im->jpeg_decode_region(h, jpg, n, num, x, y, w, ht, &r, rcap, &ox, &oy);
    if (rc == EQM_OK && (ox > x || ox + r.w < x + w || oy != y || r.h != ht || r.c != 3 ||
                         (size_t)r.w * r.h * 3 > rcap))
        fuzz_fail("region %d,%d %dx%d at %d/8 of %dx%d gave %dx%d at %d,%d", x, y, w, ht, num,
                  W, H, r.w, r.h, ox, oy);
    if (rc != EQM_OK && rc != EQM_ERR_FORMAT)
        fuzz_fail("region %d,%d %dx%d at %d/8 of %dx%d (scaled %dx%d): status %d (%s)", x, y,
                  w, ht, num, W, H, sw, sh, rc, host_ctx_error(h));
    free(r.data);
    /* 4. crop_resize of the decoded image (Pillow BILINEAR with a box) */
    if (full_ok) {
        float fx = (float)(b3 & 3) / 4.0f * (float)sw, fy = (float)((b3 >> 2) & 3) / 4.0f * (float)sh;
        float cw = ((float)sw - fx) * (float)(1 + ((b3 >> 4) & 3)) / 4.0f;
        float ch = ((float)sh - fy) * (float)(1 + ((b3 >> 4) & 3)) / 4.0f;
        eqm_image o = {0};
        o.w = 1 + (b3 >> 2) % 48;
        o.h = 1 + (b3 * 7) % 48;
        o.c = 3;
        o.stride = o.w * 3;
        o.format = EQM_PIX_U8;
        o.data = xmalloc((size_t)o.w * o.h * 3);
        full.format = EQM_PIX_U8;
        rc = im->crop_resize(h, &full, fx, fy, cw, ch, &o);
        if (rc != EQM_OK)
            fuzz_fail("crop_resize of box %g,%g %gx%g of %dx%d to %dx%d: %s", fx, fy, cw, ch,
                      sw, sh, o.w, o.h, host_ctx_error(h));
        free(o.data);
    }
    free(full.data);
    return 0;
}
