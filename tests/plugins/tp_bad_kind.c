/* tests/plugins/tp_bad_kind.c: deliberately broken loader fixture: an unknown kind. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc d = {EQM_DESC_HEADER(42), "test_kind", "1", "", NULL, 0,
                                  &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
