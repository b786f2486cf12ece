/* plugins/augment/center_crop: CenterCrop(size) of torchvision 0.14: top =
 * int(round((H - size) / 2)), left = int(round((W - size) / 2)) (round half to even).
 * Deterministic: no record in t.
 * Left out: padding when the image is smaller than the crop (an error here).
 */
#include <equimod/equimod.h>

#include <math.h>

#include "../aug_common.h"

typedef struct cc_opts {
    int64_t size;
} cc_opts;

AUG_INSTANCE(cc, cc_opts, );

AUG_LIFECYCLE(cc, cc, "center_crop", NULL, NULL)
AUG_NO_RECORD(cc)

static int cc_out_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                        uint32_t *format)
{
    return aug_square_shape(((const cc *)self)->o.size, in, w, h, c, format);
}

AUG_APPLY(cc, cc, "center_crop", 0)
{
    int s = (int)g->o.size;
    if (s > in->w || s > in->h)
        return g->h.api->set_error(g->h.host, EQM_ERR_INVAL, "center_crop: %d px crop of a %dx%d "
                                   "image (padding is not supported; resize first)", s, in->w, in->h);
    int top = (int)nearbyint((in->h - s) / 2.0), left = (int)nearbyint((in->w - s) / 2.0);
    for (int y = 0; y < s; y++)
        memcpy((uint8_t *)out->data + (size_t)y * out->stride,
               (const uint8_t *)in->data + (size_t)(y + top) * in->stride + (size_t)left * in->c,
               (size_t)s * in->c);
    return EQM_OK;
}

static const eqm_param_spec cc_params[] = {
    {"size", EQM_PARAM_INT, offsetof(cc_opts, size), "224", 1, 65536, NULL, "crop side in pixels"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(cc, "center_crop", "CenterCrop(size); deterministic, no t record", cc_opts,
           cc_out_shape, NULL, NULL, NULL) /* 1.1 source_box, apply_scaled: no resampling */
