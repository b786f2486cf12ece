/* tests/plugins/tp_bad_half.c: deliberately broken loader fixture: an augment with
 * source_box but no apply_scaled (ABI 1.1: both or neither). */
#include "tp_common.h"

static int box(const void *self, const float *p, int w, int h, float b[4])
{
    (void)self, (void)p;
    b[0] = b[1] = 0;
    b[2] = (float)w;
    b[3] = (float)h;
    return EQM_OK;
}

static const eqm_augment_ops aug_ops = {
    .size = sizeof(eqm_augment_ops), .create = tp_aug_create, .destroy = tp_aug_destroy,
    .n_params = tp_aug_n_params, .param_name = tp_aug_param_name, .sample = tp_aug_sample,
    .out_shape = tp_aug_out_shape, .apply = tp_aug_apply, .source_box = box};

static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_half", "1", "", NULL,
                                  0, &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
