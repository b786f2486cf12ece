/* tests/plugins/tp_bad_short.c: deliberately broken loader fixture: descriptor size smaller than the 1.0 descriptor. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc d = {EQM_PLUGIN_DESC_SIZE_V1_0 - sizeof(void *), EQM_ABI_MAJOR,
                                  EQM_ABI_MINOR, EQM_KIND_AUGMENT, "test_short", "1", "",
                                  NULL, 0, &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
