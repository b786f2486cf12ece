/* plugins/augment/solarize: RandomSolarize(threshold, p) (PIL ImageOps.solarize: pixels at
 * or above the threshold are inverted, 255 - v). Record (METHOD.md §4): solarize = 1 if
 * applied, else 0.
 * Left out: nothing.
 */
#include <equimod/equimod.h>

#include "../aug_common.h"

typedef struct sol_opts {
    int64_t threshold;
    double p;
} sol_opts;

AUG_INSTANCE(sol, sol_opts, );

AUG_LIFECYCLE(sol, sol, "solarize", NULL, NULL)
AUG_COIN_RECORD(sol, sol, "solarize")

AUG_APPLY(sol, sol, "solarize", 1)
{
    uint8_t lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = v < g->o.threshold ? (uint8_t)v : (uint8_t)(255 - v);
    size_t row = (size_t)in->w * in->c;
    for (int y = 0; y < in->h; y++) {
        const uint8_t *s = (const uint8_t *)in->data + (size_t)y * in->stride;
        uint8_t *o = (uint8_t *)out->data + (size_t)y * out->stride;
        for (size_t x = 0; x < row; x++)
            o[x] = lut[s[x]];
    }
    return EQM_OK;
}

static const eqm_param_spec sol_params[] = {
    {"threshold", EQM_PARAM_INT, offsetof(sol_opts, threshold), "128", 0, 256, NULL,
     "pixels >= threshold are inverted"},
    {"p", EQM_PARAM_FLOAT, offsetof(sol_opts, p), "0.2", 0, 1, NULL, "probability of solarizing"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(sol, "solarize", "RandomSolarize(threshold, p), PIL semantics: t = solarize (0/1)",
           sol_opts, aug_same_shape, NULL, NULL, NULL) /* 1.1: no resampling */
