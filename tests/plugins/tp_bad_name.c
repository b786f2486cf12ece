/* tests/plugins/tp_bad_name.c: deliberately broken loader fixture: a plugin name with characters outside [a-z0-9_]. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "Bad-Name", "1", "",
                                  NULL, 0, &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
