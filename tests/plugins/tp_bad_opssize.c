/* tests/plugins/tp_bad_opssize.c: deliberately broken loader fixture: ops table smaller than the 1.0 augment table. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_augment_ops small_ops = {.size = 2 * sizeof(void *),
                                          .create = tp_aug_create, .destroy = tp_aug_destroy,
                                          .n_params = tp_aug_n_params,
                                          .param_name = tp_aug_param_name,
                                          .sample = tp_aug_sample, .out_shape = tp_aug_out_shape,
                                          .apply = tp_aug_apply};
static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_opssize", "1", "",
                                  NULL, 0, &small_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
const void *tp_keep_opssize(void);
const void *tp_keep_opssize(void) { return &aug_ops; }
