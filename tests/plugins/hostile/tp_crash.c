/* tests/plugins/hostile/tp_crash.c: deliberately broken loader fixture: the entry function
 * reads through a NULL pointer (SIGSEGV) when the host calls it. */
#include "../tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;
static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_crash", "1", "",
                                  NULL, 0, &aug_ops};

EQM_EXPORT const eqm_plugin_desc *eqm_plugin_entry(uint32_t index);
EQM_EXPORT const eqm_plugin_desc *eqm_plugin_entry(uint32_t index)
{
    volatile const int *volatile p = NULL;
    if (index == 0 && *p == 42) /* crashes */
        return NULL;
    return index == 0 ? &d : NULL;
}
