/* tests/plugins/tp_z_dup.c: deliberately broken loader fixture: the same (kind, name) as tp_a_valid.c (augment/test_identity); it sorts after it, so the scan refuses this one. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_identity", "9.9",
                                  "duplicate", NULL, 0, &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
