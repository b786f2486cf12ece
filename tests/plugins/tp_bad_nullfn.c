/* tests/plugins/tp_bad_nullfn.c: deliberately broken loader fixture: a REQUIRED function (augment apply) is NULL. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_augment_ops bad_ops = {.size = sizeof(eqm_augment_ops),
                                        .create = tp_aug_create, .destroy = tp_aug_destroy,
                                        .n_params = tp_aug_n_params,
                                        .sample = tp_aug_sample,
                                        .out_shape = tp_aug_out_shape};
static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_nullfn", "1", "",
                                  NULL, 0, &bad_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
static const void *const keep_ = &aug_ops; /* silence unused */
const void *tp_keep_nullfn(void);
const void *tp_keep_nullfn(void) { return keep_; }
