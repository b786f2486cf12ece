/* plugins/augment/grayscale: RandomGrayscale(p) (torchvision 0.14 on PIL): ITU-R 601 luma
 * with Pillow's rounding ((19595 R + 38470 G + 7471 B + 0x8000) >> 16), replicated to 3
 * channels. Record (METHOD.md §4): gray = 1 if applied, else 0.
 * Left out: 1-channel output.
 */
#include <equimod/equimod.h>

#include "../aug_common.h"

AUG_INSTANCE(gray, aug_coin_opts, );

AUG_LIFECYCLE(gray, gray, "grayscale", NULL, NULL)
AUG_COIN_RECORD(gray, gray, "gray")

AUG_APPLY(gray, gray, "grayscale", 1)
{
    if (in->c == 1) {
        aug_copy(in, out);
        return EQM_OK;
    }
    for (int y = 0; y < in->h; y++) {
        const uint8_t *s = (const uint8_t *)in->data + (size_t)y * in->stride;
        uint8_t *o = (uint8_t *)out->data + (size_t)y * out->stride;
        for (int x = 0; x < in->w; x++) {
            uint8_t l = aug_luma(s + 3 * x);
            o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = l;
        }
    }
    return EQM_OK;
}

static const eqm_param_spec gray_params[] = {
    {"p", EQM_PARAM_FLOAT, offsetof(aug_coin_opts, p), "0.2", 0, 1, NULL, "probability of converting to gray"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(gray, "grayscale", "RandomGrayscale(p), ITU-R 601 luma on 3 channels: t = gray (0/1)",
           aug_coin_opts, aug_same_shape, NULL, NULL, NULL) /* 1.1: no resampling */
