/* equimod SDK: the host-services table handed to every plugin instance.
 *
 * The host passes `const eqm_host_api *api` and an opaque `eqm_host *host` to every
 * create/open call. A plugin keeps both and calls host services only through `api`: a
 * plugin links nothing of the host (no -rdynamic, no host symbols). The table is
 * versioned and APPEND ONLY: `size` is sizeof(eqm_host_api) as compiled into the host;
 * a plugin built against a newer minor MUST check `size` (EQM_API_HAS) before using
 * a field it does not find in the 1.0 layout.
 *
 * Ownership: the table and everything it points to are owned by the host and live as
 * long as any plugin instance. `eqm_host` is the per-instance context (it carries the
 * instance's name for log prefixes and its error buffer).
 * Threading: every function in this table is thread-safe unless stated otherwise; an
 * eqm_rng MUST be used by one thread at a time (it is a plain value).
 */
#ifndef EQM_SDK_HOST_API_H
#define EQM_SDK_HOST_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eqm_host eqm_host;       /* opaque, host-owned */
typedef struct eqm_nn_api eqm_nn_api;   /* nn.h */

/* Whether a sized table `api` (as its filler compiled it) holds `field`. Plain C11/C++:
 * the field's offset is taken from the pointer itself (no typeof). */
#define EQM_API_HAS(api, field)                                                        \
    ((size_t)(api)->size >= (size_t)((const char *)&(api)->field - (const char *)(api)) + \
                                sizeof((api)->field))

/* printf-format checking where the compiler has it (GCC, Clang); nothing elsewhere, so
 * that a strict C11 or C++ compiler accepts the headers. */
#if defined(__GNUC__)
#define EQM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define EQM_PRINTF(fmt, args)
#endif

enum eqm_log_level {
    EQM_LOG_ERROR = 0,
    EQM_LOG_WARN = 1,
    EQM_LOG_INFO = 2,
    EQM_LOG_DEBUG = 3,
    EQM_LOG_TRACE = 4
};

/* Random stream: xoshiro256** state. A plain value: copy it, keep it in your own storage.
 * The host derives streams with api->rng_seed(r, seed, a, b, c) from independent 64-bit
 * keys (run seed, epoch, sample index, view...), so every sample's randomness is fixed by
 * its keys whatever thread draws it. */
typedef struct eqm_rng {
    uint64_t s[4];
} eqm_rng;

/* An 8-bit or float image, interleaved channels (HWC), rows `stride` elements apart.
 * Ownership: whoever fills `data` says who owns it (see each call). */
enum eqm_pixel_format {
    EQM_PIX_U8 = 0,  /* uint8_t, 0..255 */
    EQM_PIX_F32 = 1  /* float */
};
typedef struct eqm_image {
    int w, h, c;        /* width, height, channels (1 or 3) */
    int stride;         /* elements (not bytes) between rows; >= w * c */
    uint32_t format;    /* enum eqm_pixel_format */
    void *data;         /* (h, stride) */
} eqm_image;

/* Flags of api->image->resample: one filter, ORed with options. Append only. */
enum eqm_resample_flags {
    EQM_RESAMPLE_BILINEAR = 2,      /* Pillow's BILINEAR (triangle, support 1) */
    EQM_RESAMPLE_BICUBIC = 3,       /* Pillow's BICUBIC (a = -0.5, support 2) */
    EQM_RESAMPLE_FILTER_MASK = 0xff,
    EQM_RESAMPLE_CROP = 1 << 8,     /* taps read only the box's pixel window (see resample) */
    EQM_RESAMPLE_PORTABLE = 1 << 9  /* no CPU-specific code path: the same bytes (tests) */
};

/* Image services (JPEG through libjpeg-turbo and PNG through libpng inside the host,
 * resampling). Sized, append only. */
typedef struct eqm_image_api {
    uint32_t size;
    /* Read the size of a JPEG without decoding. Returns EQM_OK or EQM_ERR_FORMAT. */
    int (*jpeg_header)(eqm_host *h, const void *data, size_t n, int *w, int *ht, int *c);
    /* Decode a JPEG to 8-bit RGB (grayscale and CMYK are converted), downscaled by the DCT
     * by 1/scale_denom (1, 2, 4 or 8), into out->data (caller-owned, at least
     * w*h*3 bytes after scaling; out->stride = out->w*3 on return). Thread-safe.
     * Returns EQM_OK, EQM_ERR_FORMAT (corrupt data) or EQM_ERR_INVAL. */
    int (*jpeg_decode)(eqm_host *h, const void *data, size_t n, int scale_denom,
                       eqm_image *out, size_t out_capacity_bytes);

    /* ---- appended in 1.0 (issue 6; check with EQM_API_HAS(api->image, field)) ---- */

    /* Partial, DCT-scaled decode. The image is scaled by scale_num/8 (1..8) in the DCT
     * domain: the scaled size is ceil(W * scale_num / 8) x ceil(H * scale_num / 8). Rows
     * [y, y+ht) and at least columns [x, x+w) of the scaled image are decoded to 8-bit
     * RGB (grayscale and CMYK converted) into out->data (caller-owned, out_capacity_bytes):
     * rows before y are skipped without IDCT (jpeg_skip_scanlines), columns are cropped
     * to whole iMCUs (jpeg_crop_scanline), so out->w may exceed w; *out_x / *out_y get the
     * scaled coordinates of out's top-left pixel (*out_y == y). w == 0 or ht == 0 means
     * the full width / height. Capacity needed: at most (w + 2*16*scale_num/8 + 16) * ht * 3
     * bytes; the full scaled width * ht * 3 is always enough. Thread-safe.
     * Returns EQM_OK, EQM_ERR_FORMAT (corrupt or truncated data) or EQM_ERR_INVAL. */
    int (*jpeg_decode_region)(eqm_host *h, const void *data, size_t n, int scale_num, int x,
                              int y, int w, int ht, eqm_image *out,
                              size_t out_capacity_bytes, int *out_x, int *out_y);
    /* Resample the box (x0, y0, cw, ch) of `in` (source pixel units, fractional allowed;
     * Pillow's resize(box=...)) to out->w x out->h with Pillow's BILINEAR filter, which is
     * antialiased when downscaling (triangle filter whose support grows with the scale,
     * ImagingResample): api->image->resample with EQM_RESAMPLE_BILINEAR, bit for bit. in
     * and out: U8, same c (1 or 3); out->data and out->stride are caller-set. Thread-safe.
     * Returns EQM_OK, EQM_ERR_INVAL (box outside the image, formats) or EQM_ERR_NOMEM. */
    int (*crop_resize)(eqm_host *h, const eqm_image *in, float x0, float y0, float cw,
                       float ch, eqm_image *out);

    /* ---- appended in 1.2 (issue 11; check with EQM_API_HAS(api->image, resample)) ---- */

    /* Resample the box (box[0], box[1]) + (box[2] x box[3]) of `in` (x, y, w, h in source
     * pixels, fractional allowed; the far edges may pass the image by 1e-3) to out->w x
     * out->h: Pillow 9.4's resampling bit for bit (separable, horizontal pass first into
     * 8 bits, 22-bit fixed-point taps, support widened by the downscale factor, so
     * antialiased; an axis whose size and box are unchanged is copied). flags: a filter,
     * EQM_RESAMPLE_BILINEAR or EQM_RESAMPLE_BICUBIC, ORed with
     *   EQM_RESAMPLE_CROP: the taps read only the box's pixel window [floor(x), ceil(x+w))
     *     x [floor(y), ceil(y+h)): im.crop(window).resize(size, filter, box moved into the
     *     window), which for a box on pixel edges is im.crop(box).resize(size, filter)
     *     (torchvision's resized_crop). Without it the taps may read the pixels around the
     *     box: im.resize(size, filter, box) (as crop_resize);
     *   EQM_RESAMPLE_PORTABLE: the portable loops instead of the CPU-specific (AVX2) ones;
     *     the output is the same (for tests comparing the two).
     * Pillow itself takes the box as float: for its bytes, pass box values that a float
     * holds exactly. in, out: U8 with the same c (1 or 3), strides in elements; out->data
     * and out->stride are caller-set. Thread-safe; uses memory the host keeps per calling
     * thread (the temporary image, a cache of recent coefficients), freed when the thread
     * exits.
     * Returns EQM_OK, EQM_ERR_INVAL (box outside the image, formats, flags; the message
     * says which) or EQM_ERR_NOMEM. */
    int (*resample)(eqm_host *h, const eqm_image *in, const double box[4], int flags,
                    eqm_image *out);

    /* ---- appended in 1.3 (issue 15; check with EQM_API_HAS(api->image, decode)) ---- */

    /* JPEG or PNG, told apart by their first bytes, so that a dataset reads either without
     * an image library of its own. image_header: the size without decoding; *c = 1 for a
     * gray image (PNG gray with or without alpha, gray JPEG), else 3 (pointers may be NULL).
     * Returns EQM_OK or EQM_ERR_FORMAT (neither format, corrupt header). Thread-safe. */
    int (*image_header)(eqm_host *h, const void *data, size_t n, int *w, int *ht, int *c);
    /* Decode a whole JPEG or PNG at full size to 8-bit RGB, as Pillow's convert("RGB"):
     * gray replicated, PNG palettes expanded, 16-bit samples reduced to their high byte,
     * alpha and tRNS dropped (not composited), CMYK JPEGs converted. Writes out->data
     * (caller-owned, out_capacity_bytes) and sets out->w/h/c (c = 3), stride = w*3 and
     * format U8. When w*h*3 exceeds the capacity it sets out->w/h/c and returns EQM_GROW
     * without decoding: grow the buffer and call again (the protocol of a dataset's get).
     * Returns EQM_OK, EQM_GROW, EQM_ERR_FORMAT (neither format, corrupt or truncated data),
     * EQM_ERR_INVAL or EQM_ERR_NOMEM. Thread-safe. */
    int (*decode)(eqm_host *h, const void *data, size_t n, eqm_image *out,
                  size_t out_capacity_bytes);
} eqm_image_api;

/* File and archive reading (libarchive + zlib inside the host). Sized, append only.
 * Paths are plain file-system paths. Every function records a message naming the file (and
 * member) with api->set_error semantics on `h` and returns a negative eqm_status on failure:
 * EQM_ERR_NOTFOUND (no such file or member), EQM_ERR_IO, EQM_ERR_FORMAT (corrupt or
 * truncated compressed data), EQM_ERR_NOMEM. Thread-safe. Buffers returned in *data are
 * allocated with api->alloc and released by the caller with api->free. */
typedef struct eqm_io_api {
    uint32_t size;
    /* Read a whole file. If the name ends in ".gz" it is gunzipped (the whole stream is
     * checked: a truncated or corrupt file is EQM_ERR_FORMAT). */
    int (*read_file)(eqm_host *h, const char *path, void **data, size_t *n);
    /* Read member `member` (exact path inside the archive, or the path with any leading
     * directories removed when `member` has no '/') of an archive libarchive understands
     * (tar, tar.gz, zip, ...). */
    int (*read_member)(eqm_host *h, const char *archive, const char *member, void **data,
                       size_t *n);
    /* Call fn(ctx, name, data, n) for each regular-file member in archive order; data is
     * valid during the call only. fn returns 0 to go on, > 0 to stop early (returned as
     * EQM_OK), < 0 to abort (returned as is). */
    int (*for_each_member)(eqm_host *h, const char *archive,
                           int (*fn)(void *ctx, const char *name, const void *data, size_t n),
                           void *ctx);
    /* 1 if `path` names an existing regular file, else 0. */
    int (*file_exists)(const char *path);

    /* ---- appended in 1.2 (issue 10; check with EQM_API_HAS(api->io, field)) ---- */

    /* read_file / read_member refusing more than `max` bytes (of output, after gunzip):
     * EQM_ERR_FORMAT, with a message naming the file and the limit, and without producing
     * more than about `max` bytes, so that a corrupt file or a decompression bomb cannot
     * fill memory. A dataset that knows the size of what it reads SHOULD use these. Every
     * io function reads regular files only: a FIFO, device or directory is EQM_ERR_IO. */
    int (*read_file_max)(eqm_host *h, const char *path, size_t max, void **data, size_t *n);
    int (*read_member_max)(eqm_host *h, const char *archive, const char *member, size_t max,
                           void **data, size_t *n);
} eqm_io_api;

/* Body of a parallel loop: process items [begin, end). Runs on host worker threads
 * concurrently with other chunks of the same loop; MUST NOT call parallel_for itself. */
typedef void (*eqm_parallel_fn)(void *ctx, size_t begin, size_t end);

typedef struct eqm_host_api {
    uint32_t size;                /* sizeof(eqm_host_api) in the host */
    uint16_t abi_major, abi_minor;

    /* Log a line, prefixed with the instance's kind/name. Never fails. */
    void (*log)(eqm_host *h, int level, const char *fmt, ...)
        EQM_PRINTF(3, 4);
    /* Record the message of a failure on this instance and return `status` unchanged, so
     * that `return api->set_error(h, EQM_ERR_FORMAT, "%s: truncated", path);` works.
     * The host reports it with the instance's kind/name.
     * Threading: thread-safe, and messages are per calling thread. When several threads
     * call into one instance at once (a dataset's decode from the loader's workers), each
     * failing call's message is recorded for the thread that made it, and the host reads
     * it back on that same thread, so a concurrent failure on another thread cannot
     * overwrite it. Set the message on the thread that returns the failure (not from a
     * parallel_for chunk run on a pool thread: the caller would not see it as its own). */
    int (*set_error)(eqm_host *h, int status, const char *fmt, ...)
        EQM_PRINTF(3, 4);
    /* Zero-filled, `align`-aligned memory: `align` a power of two, 0 = 64 (a cache line);
     * 1, 2 and 4 give at least pointer alignment. NULL on failure, with the reason
     * recorded on h (out of memory, or an `align` that is not a power of two), so that
     * `return EQM_ERR_NOMEM;` after it still reports why. Release with api->free only. */
    void *(*alloc)(eqm_host *h, size_t bytes, size_t align);
    void (*free)(eqm_host *h, void *p);

    /* Random streams. rng_seed derives a stream from a seed and three keys (splitmix64
     * mixing); rng_u64 is the raw generator; rng_uniform returns [0, 1) with 53 bits;
     * rng_below returns an unbiased integer in [0, n) (n > 0); rng_normal returns N(0, 1). */
    void (*rng_seed)(eqm_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
    uint64_t (*rng_u64)(eqm_rng *r);
    double (*rng_uniform)(eqm_rng *r);
    uint64_t (*rng_below)(eqm_rng *r, uint64_t n);
    double (*rng_normal)(eqm_rng *r);

    /* Split [0, n) into chunks of at least `grain` items over the host's compute threads
     * and wait for all of them. Called from the training thread only. Returns EQM_OK. */
    int (*parallel_for)(eqm_host *h, size_t n, size_t grain, eqm_parallel_fn fn, void *ctx);

    /* Monotonic clock, nanoseconds. */
    uint64_t (*now_ns)(void);

    /* Neural-network ops (nn.h) and image services; both sized and append only. */
    const eqm_nn_api *nn;
    const eqm_image_api *image;

    /* --- appended in 1.0 development: file and archive reading (may be NULL) --- */
    const eqm_io_api *io;

    /* ---- appended in 1.4 (issue 13; check with EQM_API_HAS(api, grads_final)) ---- */

    /* A module's backward says that the gradients of its tensors [first, first + count)
     * (tensor_info indices; EQM_T_BUFFER tensors in the range are ignored) are final for
     * this backward: nothing more will be added to them before the next forward. Under
     * MPI the host then starts averaging them over the ranks while the rest of backward
     * runs (a backbone calls it after each layer's dW; without it the host starts the
     * module's gradients only after its backward returns). Optional to call; each tensor
     * at most once per backward, and only from the thread that called backward (not from
     * a parallel_for chunk). Returns EQM_OK, or EQM_ERR_INVAL for a range outside the
     * module's tensors or a tensor declared twice (message on h): return it. */
    int (*grads_final)(eqm_host *h, int first, int count);
} eqm_host_api;

#ifdef __cplusplus
}
#endif

#endif
