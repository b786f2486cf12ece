/* tests/plugins/hostile/tp_hang.c: deliberately broken loader fixture: a constructor that
 * never returns. The host's probe gives up after its timeout and refuses the file. */
#include "../tp_common.h"

#include <unistd.h>

__attribute__((constructor)) static void tp_hang_ctor(void)
{
    for (;;)
        pause();
}

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;
static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_hang", "1", "",
                                  NULL, 0, &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
