/* tests/plugins/tp_bad_major.c: deliberately broken loader fixture: built for another ABI major. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc d = {sizeof(eqm_plugin_desc), EQM_ABI_MAJOR + 1, 0,
                                  EQM_KIND_AUGMENT, "test_major", "1", "", NULL, 0, &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
