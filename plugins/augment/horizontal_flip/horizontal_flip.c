/* plugins/augment/horizontal_flip: RandomHorizontalFlip(p) (torchvision 0.14, PIL
 * transpose FLIP_LEFT_RIGHT). Record (METHOD.md §4): flip = 1 if flipped, else 0.
 * Left out: vertical flips.
 */
#include <equimod/equimod.h>

#include "../aug_common.h"

AUG_INSTANCE(flip, aug_coin_opts, );

AUG_LIFECYCLE(flip, flip, "horizontal_flip", NULL, NULL)
AUG_COIN_RECORD(flip, flip, "flip")

AUG_APPLY(flip, flip, "horizontal_flip", 1)
{
    const int w = in->w, c = in->c;
    for (int y = 0; y < in->h; y++) {
        const uint8_t *s = (const uint8_t *)in->data + (size_t)y * in->stride;
        uint8_t *o = (uint8_t *)out->data + (size_t)y * out->stride;
        if (c == 3)
            for (int x = 0; x < w; x++) {
                o[3 * x] = s[3 * (w - 1 - x)];
                o[3 * x + 1] = s[3 * (w - 1 - x) + 1];
                o[3 * x + 2] = s[3 * (w - 1 - x) + 2];
            }
        else
            for (int x = 0; x < w; x++)
                o[x] = s[w - 1 - x];
    }
    return EQM_OK;
}

static const eqm_param_spec flip_params[] = {
    {"p", EQM_PARAM_FLOAT, offsetof(aug_coin_opts, p), "0.5", 0, 1, NULL, "probability of flipping"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(flip, "horizontal_flip", "RandomHorizontalFlip(p): t = flip (0/1)", aug_coin_opts,
           aug_same_shape, NULL, NULL, NULL) /* 1.1 source_box, apply_scaled: no resampling */
