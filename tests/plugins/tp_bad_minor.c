/* tests/plugins/tp_bad_minor.c: deliberately broken loader fixture: built for a newer minor than the host. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc d = {sizeof(eqm_plugin_desc), EQM_ABI_MAJOR, EQM_ABI_MINOR + 1,
                                  EQM_KIND_AUGMENT, "test_minor", "1", "", NULL, 0, &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
