/* tests/plugins/tp_old_minor.c: a valid plugin as built against ABI 1.0: minor 0 and an
 * augment ops table of the 1.0 size. The table in memory goes on with non-NULL functions
 * where 1.1 appended source_box / apply_scaled: the host must not read past `size`, so it
 * sees them as NULL (check_loader: old_minor_loads). */
#include <stddef.h>

#include "tp_common.h"

static int never_box(const void *self, const float *p, int w, int h, float box[4])
{
    (void)self, (void)p, (void)w, (void)h, (void)box;
    return EQM_ERR_STATE;
}

static int never_scaled(const void *self, const float *p, const eqm_image *in, float sx,
                        float sy, eqm_image *out, void *scratch)
{
    (void)self, (void)p, (void)in, (void)sx, (void)sy, (void)out, (void)scratch;
    return EQM_ERR_STATE;
}

static const eqm_augment_ops aug_ops = {
    .size = offsetof(eqm_augment_ops, source_box), /* the ABI 1.0 table */
    .create = tp_aug_create, .destroy = tp_aug_destroy, .n_params = tp_aug_n_params,
    .param_name = tp_aug_param_name, .sample = tp_aug_sample, .out_shape = tp_aug_out_shape,
    .apply = tp_aug_apply, .source_box = never_box, .apply_scaled = never_scaled};

static const eqm_plugin_desc d = {sizeof(eqm_plugin_desc), EQM_ABI_MAJOR, 0, EQM_KIND_AUGMENT,
                                  "test_old_minor", "1.0.0", "built against ABI 1.0", NULL, 0,
                                  &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
