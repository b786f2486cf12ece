/* tests/plugins/tp_bad_noentry.c: deliberately broken loader fixture: no eqm_plugin_entry symbol (misspelt entry). */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_noentry", "1",
                                  "", NULL, 0, &aug_ops};
EQM_EXPORT const eqm_plugin_desc *eqm_plugin_entri(uint32_t i);
EQM_EXPORT const eqm_plugin_desc *eqm_plugin_entri(uint32_t i) { return i ? NULL : &d; }
