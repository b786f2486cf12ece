/* tests/plugins/tp_bad_opsnull.c: deliberately broken loader fixture: ops table is NULL. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_opsnull", "1", "",
                                  NULL, 0, NULL};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
const void *tp_keep_opsnull(void);
const void *tp_keep_opsnull(void) { return &aug_ops; }
