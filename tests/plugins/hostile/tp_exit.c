/* tests/plugins/hostile/tp_exit.c: deliberately broken loader fixture: a constructor that
 * calls exit(3) when the file is loaded. The host must refuse the file and go on. */
#include "../tp_common.h"

#include <stdlib.h>

__attribute__((constructor)) static void tp_exit_ctor(void) { exit(3); }

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;
static const eqm_plugin_desc d = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_exit", "1", "",
                                  NULL, 0, &aug_ops};
static const eqm_plugin_desc *const descs[] = {&d};
EQM_PLUGIN_ENTRY(descs)
