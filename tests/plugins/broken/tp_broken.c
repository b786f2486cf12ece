/* tests/plugins/broken/tp_broken.c: plugins that break their contract in one way each, for
 * tests/plugins/check_failures.c (the host must name the plugin, its kind, the function
 * and the rule, never print an empty message or crash). Built as a real shared object in
 * tests/plugins/broken/.libs, away from the fixture folder other tests scan.
 *
 *   augment test_nomsg     sample() fails (EQM_ERR_FORMAT) without setting a message
 *   augment test_msg       sample() fails with a message of its own
 *   augment test_skipapply apply() returns EQM_SKIP (not allowed there)
 *   augment test_nant      sample() writes NaN into its t field 'b'
 *   augment test_nullname  param_name(0) returns NULL
 *   augment test_dupname   two t fields both named 'a'
 *   augment test_nullself  create() returns EQM_OK with *self = NULL
 *   dataset test_ds        8 images 8x8x3, 2 classes; get(fail_at) fails without a message
 *   backbone test_bb_nowrite  forward() writes only row 0 of h (out_dim 4)
 *   backbone test_bb_noname   tensor_info() returns EQM_OK without filling the record
 *   method test_me_noloss  forward() returns EQM_OK without setting io->loss
 *   method test_me_noembed declares EQM_MODULE_EMBEDDING (out_dim 4); its embedding
 *                          forward writes only row 0 of z (training forward: loss 0.5)
 *   augment test_align     create() allocates with alignments 1, 2, 4, 8 and 3 (refused)
 *   dataset test_stream    streaming (members jpg;cls, 4 classes) through api->image; its
 *                          option bug picks one break of decode (equimod check names the
 *                          rule, tests/plugins/check_cmd.test): 0 none, 1 a label outside
 *                          n_classes returned EQM_OK, 2 a corrupt JPEG is EQM_ERR_FORMAT (not
 *                          EQM_SKIP), 3 no room is an error (not EQM_GROW), 4 scale_num
 *                          ignored, 5 *orig_w and *orig_h not set
 *   dataset test_stream_png the same with members png;cls: api->image->decode, and
 *                          crop_resize for scale_num < 8 (PNG has no DCT scaling)
 */
#include <math.h>
#include <stdlib.h>

#include "../tp_common.h"

/* ---- augmentations: two t fields 'a' and 'b' unless said otherwise ---- */
static int two(const void *self) { (void)self; return 2; }
static const char *name_ab(const void *self, int i) { (void)self; return i ? "b" : "a"; }
static const char *name_aa(const void *self, int i) { (void)self; (void)i; return "a"; }
static const char *name_null(const void *self, int i) { (void)self; (void)i; return NULL; }

static int sample_ok(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                     const eqm_image *in, float *p)
{
    (void)self; (void)rng; (void)ctx; (void)in;
    p[0] = 0.25f;
    p[1] = 0.5f;
    return EQM_OK;
}
static int sample_nomsg(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                        const eqm_image *in, float *p)
{
    sample_ok(self, rng, ctx, in, p);
    return EQM_ERR_FORMAT;
}
static int sample_msg(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                      const eqm_image *in, float *p)
{
    const tp_aug *a = self;
    sample_ok(self, rng, ctx, in, p);
    return a->api->set_error(a->host, EQM_ERR_INVAL, "test_msg: the message set in sample "
                             "for a %dx%d image", in->w, in->h);
}
static int sample_nan(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                      const eqm_image *in, float *p)
{
    sample_ok(self, rng, ctx, in, p);
    p[1] = NAN;
    return EQM_OK;
}
static int apply_skip(const void *self, const float *p, const eqm_image *in, eqm_image *out,
                      void *scratch)
{
    tp_aug_apply(self, p, in, out, scratch);
    return EQM_SKIP;
}
static int create_nullself(const eqm_host_api *api, eqm_host *host, const void *opts,
                           void **self)
{
    (void)api; (void)host; (void)opts;
    *self = NULL;
    return EQM_OK;
}
/* alignments 1, 2, 4 and 8 work; 3 is refused with a message */
static int create_align(const eqm_host_api *api, eqm_host *host, const void *opts, void **self)
{
    static const size_t al[4] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        void *p = api->alloc(host, 3, al[i]);
        if (!p)
            return api->set_error(host, EQM_ERR_NOMEM, "alloc(3, %zu) gave NULL", al[i]);
        int bad = ((const unsigned char *)p)[0] || ((uintptr_t)p % al[i]);
        api->free(host, p);
        if (bad)
            return api->set_error(host, EQM_ERR_STATE, "alloc(3, %zu): misaligned or not "
                                  "zeroed", al[i]);
    }
    if (api->alloc(host, 8, 3))
        return api->set_error(host, EQM_ERR_STATE, "alloc(8, 3) did not fail");
    return EQM_ERR_NOMEM; /* no message of its own: the host's alloc message is the reason */
}

#define AUG(nm_, create_, np_, pname_, sample_, apply_)                                    \
    static const eqm_augment_ops nm_##_ops = {                                             \
        .size = sizeof(eqm_augment_ops), .create = create_, .destroy = tp_aug_destroy,    \
        .n_params = np_, .param_name = pname_, .sample = sample_,                         \
        .out_shape = tp_aug_out_shape, .apply = apply_};                                  \
    static const eqm_plugin_desc nm_##_desc = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), #nm_,   \
                                               "1", "broken on purpose", NULL, 0, &nm_##_ops};

AUG(test_nomsg, tp_aug_create, two, name_ab, sample_nomsg, tp_aug_apply)
AUG(test_msg, tp_aug_create, two, name_ab, sample_msg, tp_aug_apply)
AUG(test_skipapply, tp_aug_create, two, name_ab, sample_ok, apply_skip)
AUG(test_nant, tp_aug_create, two, name_ab, sample_nan, tp_aug_apply)
AUG(test_nullname, tp_aug_create, two, name_null, sample_ok, tp_aug_apply)
AUG(test_dupname, tp_aug_create, two, name_aa, sample_ok, tp_aug_apply)
AUG(test_nullself, create_nullself, two, name_ab, sample_ok, tp_aug_apply)
AUG(test_align, create_align, two, name_ab, sample_ok, tp_aug_apply)

/* ---- dataset test_ds ---- */
typedef struct ds_opts {
    int64_t fail_at;
} ds_opts;
typedef struct ds {
    const eqm_host_api *api;
    eqm_host *host;
    int64_t fail_at;
} ds;
static const char *const ds_classes[2] = {"zero", "one"};

static int ds_open(const eqm_host_api *api, eqm_host *host, const void *opts,
                   const char *split, void **self)
{
    (void)split;
    ds *d = api->alloc(host, sizeof *d, 0);
    if (!d)
        return EQM_ERR_NOMEM;
    d->api = api;
    d->host = host;
    d->fail_at = ((const ds_opts *)opts)->fail_at;
    *self = d;
    return EQM_OK;
}
static void ds_close(void *self)
{
    ds *d = self;
    d->api->free(d->host, d);
}
static int ds_info(const void *self, eqm_dataset_info *info)
{
    (void)self;
    info->n_samples = 8;
    info->n_classes = 2;
    info->class_names = ds_classes;
    info->w = info->h = 8;
    info->c = 3;
    for (int k = 0; k < 3; k++) {
        info->mean[k] = 0.5f;
        info->std[k] = 0.25f;
    }
    return EQM_OK;
}
static int ds_get(const void *self, int64_t index, eqm_image *img, size_t cap, int32_t *label)
{
    const ds *d = self;
    img->w = img->h = 8;
    img->c = 3;
    img->stride = 24;
    img->format = EQM_PIX_U8;
    if (cap < 192)
        return EQM_GROW;
    if (index == d->fail_at)
        return EQM_ERR_IO; /* no message: the host must still say what failed */
    for (int k = 0; k < 192; k++)
        ((unsigned char *)img->data)[k] = (unsigned char)(index * 31 + k);
    *label = (int32_t)(index % 2);
    return EQM_OK;
}
static const eqm_param_spec ds_params[] = {
    {"fail_at", EQM_PARAM_INT, offsetof(ds_opts, fail_at), "-1", -1, 100, NULL,
     "get() of this index fails without a message"},
    TP_SPEC_END};
static const eqm_dataset_ops ds_ops = {.size = sizeof(eqm_dataset_ops), .open = ds_open,
                                       .close = ds_close, .info = ds_info, .get = ds_get};
static const eqm_plugin_desc test_ds_desc = {EQM_DESC_HEADER(EQM_KIND_DATASET), "test_ds", "1",
                                             "8 synthetic images", ds_params, sizeof(ds_opts),
                                             &ds_ops};

/* ---- dataset test_stream ---- */
typedef struct st_opts {
    int64_t bug;
} st_opts;
static int st_open(const eqm_host_api *api, eqm_host *host, const void *opts, const char *split,
                   void **self)
{
    int rc = ds_open(api, host, opts, split, self);
    if (rc == EQM_OK)
        ((ds *)*self)->fail_at = ((const st_opts *)opts)->bug; /* fail_at holds the bug */
    return rc;
}
static int st_info(const void *self, eqm_dataset_info *info)
{
    ds_info(self, info);
    info->n_samples = -1;
    info->n_classes = 4;
    info->class_names = NULL;
    info->w = info->h = 0;
    return EQM_OK;
}
static int st_source(const void *self, eqm_stream_source *src)
{
    (void)self;
    src->shards = "/nowhere/test-{0..1}.tar";
    src->n_samples = -1;
    return EQM_OK;
}
static int st_decode(const void *self, const eqm_raw_sample *raw, int scale, eqm_image *img,
                     size_t cap, int32_t *label, int *orig_w, int *orig_h)
{
    const ds *d = self;
    const int64_t bug = d->fail_at;
    const eqm_raw_member *jpg = &raw->members[0], *cls = &raw->members[1];
    char txt[16] = {0};
    memcpy(txt, cls->data, cls->size < 15 ? cls->size : 15);
    int v = atoi(txt), W, H, C;
    if ((v < 0 || v >= 4) && bug != 1)
        return d->api->set_error(d->host, EQM_SKIP, "%s.cls = %d: not a class in [0, 4)",
                                 raw->key, v);
    if (d->api->image->jpeg_header(d->host, jpg->data, jpg->size, &W, &H, &C))
        return d->api->set_error(d->host, bug == 2 ? EQM_ERR_FORMAT : EQM_SKIP,
                                 "%s.jpg: not a JPEG", raw->key);
    if (bug == 4)
        scale = 8;
    const int sw = (W * scale + 7) / 8, sh = (H * scale + 7) / 8;
    if ((size_t)sw * sh * 3 > cap) {
        img->w = sw, img->h = sh, img->c = 3;
        if (bug == 3)
            return d->api->set_error(d->host, EQM_ERR_INVAL, "buffer too small");
        return EQM_GROW;
    }
    int ox, oy;
    int rc = d->api->image->jpeg_decode_region(d->host, jpg->data, jpg->size, scale, 0, 0, 0, 0,
                                               img, cap, &ox, &oy);
    if (rc)
        return d->api->set_error(d->host, EQM_SKIP, "%s.jpg: corrupt", raw->key);
    *label = v;
    if (orig_w && bug != 5)
        *orig_w = W, *orig_h = H;
    return EQM_OK;
}
/* png;cls: the label as st_decode; the image by api->image->decode at full size, then
 * crop_resize to the scaled size. */
static int st_decode_png(const void *self, const eqm_raw_sample *raw, int scale, eqm_image *img,
                         size_t cap, int32_t *label, int *orig_w, int *orig_h)
{
    const ds *d = self;
    const eqm_image_api *im = d->api->image;
    const eqm_raw_member *png = &raw->members[0], *cls = &raw->members[1];
    char txt[16] = {0};
    memcpy(txt, cls->data, cls->size < 15 ? cls->size : 15);
    int v = atoi(txt), W, H, C;
    if (v < 0 || v >= 4)
        return d->api->set_error(d->host, EQM_SKIP, "%s.cls = %d: not a class in [0, 4)",
                                 raw->key, v);
    if (im->image_header(d->host, png->data, png->size, &W, &H, &C))
        return d->api->set_error(d->host, EQM_SKIP, "%s.png: not a PNG", raw->key);
    const int sw = (W * scale + 7) / 8, sh = (H * scale + 7) / 8;
    if ((size_t)sw * sh * 3 > cap) {
        img->w = sw, img->h = sh, img->c = 3;
        return EQM_GROW;
    }
    eqm_image full = {0, 0, 0, 0, EQM_PIX_U8, img->data};
    unsigned char *tmp = NULL;
    if (scale < 8 && !(full.data = tmp = d->api->alloc(d->host, (size_t)W * H * 3, 0)))
        return EQM_ERR_NOMEM;
    int rc = im->decode(d->host, png->data, png->size, &full, scale < 8 ? (size_t)W * H * 3 : cap);
    if (rc == EQM_OK && scale < 8) {
        img->w = sw, img->h = sh, img->c = 3, img->stride = sw * 3, img->format = EQM_PIX_U8;
        rc = im->crop_resize(d->host, &full, 0, 0, (float)W, (float)H, img);
    } else if (rc == EQM_OK) {
        *img = full;
    }
    if (tmp)
        d->api->free(d->host, tmp);
    if (rc)
        return d->api->set_error(d->host, EQM_SKIP, "%s.png: corrupt", raw->key);
    *label = v;
    if (orig_w)
        *orig_w = W, *orig_h = H;
    return EQM_OK;
}
static const eqm_param_spec st_params[] = {
    {"bug", EQM_PARAM_INT, offsetof(st_opts, bug), "0", 0, 5, NULL,
     "which break of decode (tp_broken.c's header)"},
    TP_SPEC_END};
static const eqm_dataset_ops st_ops = {.size = sizeof(eqm_dataset_ops), .open = st_open,
                                       .close = ds_close, .info = st_info,
                                       .stream_members = "jpg;cls", .stream_source = st_source,
                                       .decode = st_decode};
static const eqm_plugin_desc test_stream_desc = {EQM_DESC_HEADER(EQM_KIND_DATASET), "test_stream",
                                                 "1", "streamed JPEG + class", st_params,
                                                 sizeof(st_opts), &st_ops};
static const eqm_dataset_ops st_png_ops = {.size = sizeof(eqm_dataset_ops), .open = st_open,
                                           .close = ds_close, .info = st_info,
                                           .stream_members = "png;cls",
                                           .stream_source = st_source, .decode = st_decode_png};
static const eqm_plugin_desc test_stream_png_desc = {
    EQM_DESC_HEADER(EQM_KIND_DATASET), "test_stream_png", "1", "streamed PNG + class", st_params,
    sizeof(st_opts), &st_png_ops};

/* ---- modules ---- */
static int bb_out_dim(const void *self) { (void)self; return 4; }
static int bb_forward_row0(void *self, eqm_module_io *io)
{
    (void)self;
    for (int j = 0; j < 4; j++) /* row 0 only: rows 1.. left as they were */
        io->out[j] = 1.0f;
    return EQM_OK;
}
static int mod_ok(void *self, eqm_module_io *io) { (void)self; (void)io; return EQM_OK; }
static int me_forward_emb_row0(void *self, eqm_module_io *io)
{
    (void)self;
    if (io->train || !io->out) {
        io->loss = 0.5;
        return EQM_OK;
    }
    for (int j = 0; j < 4; j++) /* row 0 of z only */
        io->out[j] = 1.0f;
    io->loss = 0;
    return EQM_OK;
}
static int mod_init_ok(void *self, eqm_rng *rng) { (void)self; (void)rng; return EQM_OK; }
static int one_tensor(const void *self) { (void)self; return 1; }
static int info_untouched(const void *self, int i, eqm_tensor_info *info)
{
    (void)self; (void)i; (void)info;
    return EQM_OK;
}

#define MOD(nm_, kind_, ntens_, tinfo_, fwd_, flags_)                                      \
    static const eqm_module_ops nm_##_ops = {                                              \
        .size = sizeof(eqm_module_ops), .create = tp_mod_create, .destroy = tp_mod_destroy,\
        .n_tensors = ntens_, .tensor_info = tinfo_, .act_floats = tp_mod_act_floats,       \
        .bind = tp_mod_bind, .init = mod_init_ok, .forward = fwd_, .backward = mod_ok,     \
        .out_dim = bb_out_dim, .flags = flags_};                                           \
    static const eqm_plugin_desc nm_##_desc = {EQM_DESC_HEADER(kind_), #nm_, "1",          \
                                               "broken on purpose", NULL, 0, &nm_##_ops};

MOD(test_bb_nowrite, EQM_KIND_BACKBONE, tp_mod_n_tensors, tp_mod_tensor_info, bb_forward_row0,
    0)
MOD(test_bb_noname, EQM_KIND_BACKBONE, one_tensor, info_untouched, bb_forward_row0, 0)
MOD(test_me_noloss, EQM_KIND_METHOD, tp_mod_n_tensors, tp_mod_tensor_info, mod_ok, 0)
MOD(test_me_noembed, EQM_KIND_METHOD, tp_mod_n_tensors, tp_mod_tensor_info, me_forward_emb_row0,
    EQM_MODULE_EMBEDDING)

static const eqm_plugin_desc *const descs[] = {
    &test_nomsg_desc,    &test_msg_desc,       &test_skipapply_desc, &test_nant_desc,
    &test_nullname_desc, &test_dupname_desc,   &test_nullself_desc,  &test_align_desc,
    &test_ds_desc,       &test_bb_nowrite_desc, &test_bb_noname_desc, &test_me_noloss_desc,
    &test_me_noembed_desc, &test_stream_desc, &test_stream_png_desc};
EQM_PLUGIN_ENTRY(descs)
