/* tests/plugins/hostile/tp_wild.c: deliberately broken loader fixture: the entry returns
 * descriptors holding wild pointers, which the host must refuse without reading through
 * them: 0 a name pointer to address 0x10, 1 an ops pointer outside the file, 2 an option
 * table pointer outside the file, 3 an unaligned descriptor, 4 a descriptor pointer outside
 * the file, then 5 a valid plugin (loaded: one bad descriptor never stops the others). */
#include "../tp_common.h"

#include <stdint.h>

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

static const eqm_plugin_desc wild_name = {EQM_DESC_HEADER(EQM_KIND_AUGMENT),
                                          (const char *)0x10, "1", "", NULL, 0, &aug_ops};
static const eqm_plugin_desc wild_ops = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_wild_ops",
                                         "1", "", NULL, 0, (const void *)0x7f0000000000};
static const eqm_plugin_desc wild_params = {EQM_DESC_HEADER(EQM_KIND_AUGMENT),
                                            "test_wild_params", "1", "",
                                            (const eqm_param_spec *)0x1000, 8, &aug_ops};
/* a buffer holding a valid-looking descriptor one byte in: unaligned */
static const struct {
    char pad[1 + sizeof(eqm_plugin_desc)];
} unaligned = {{0}};
static const eqm_plugin_desc good = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_wild_survivor",
                                     "1", "still loads", NULL, 0, &aug_ops};

EQM_EXPORT const eqm_plugin_desc *eqm_plugin_entry(uint32_t index);
EQM_EXPORT const eqm_plugin_desc *eqm_plugin_entry(uint32_t index)
{
    switch (index) {
    case 0: return &wild_name;
    case 1: return &wild_ops;
    case 2: return &wild_params;
    case 3: return (const eqm_plugin_desc *)(uintptr_t)(unaligned.pad + 1);
    case 4: return (const eqm_plugin_desc *)(uintptr_t)0x20000;
    case 5: return &good;
    default: return NULL;
    }
}
