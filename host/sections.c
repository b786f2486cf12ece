/* host/sections.c: the table of config sections (see sections.h).
 *
 * Plugin sections name the pipeline stages and carry `plugin = NAME` plus that plugin's
 * options; host sections are read by host modules through a spec table of their own.
 *
 * Adding a host section is ONE line in host_sections[] below, e.g.
 *     {"optim", -1, optim_spec, sizeof(optim_opts), 0, "optimiser: LARS, schedule"},
 * with `optim_spec` (an eqm_param_spec table ending in {NULL}) and `optim_opts` declared in
 * the module's own header and defined in its .c file (as run_spec is here). config_resolve
 * (host/resolve.c) then binds it, `equimod config` prints it, and its keys are checked.
 *
 * Deliberately left out: any logic; this file is data plus a lookup.
 */
#include "config.h"

#include <string.h>

#include "sections.h"
#include "loader/loader.h"
#include "train/trainer.h"

const eqm_param_spec run_spec[] = {
    {"seed", EQM_PARAM_INT, offsetof(run_opts, seed), "0", 0, 9007199254740992.0, NULL,
     "base seed of every random stream (data order, augmentations, initialisation)"},
    {"out_dir", EQM_PARAM_STRING, offsetof(run_opts, out_dir), "runs", 1, 0, NULL,
     "parent folder of the run folders"},
    {"name", EQM_PARAM_STRING, offsetof(run_opts, name), "", 1, 0, NULL,
     "run folder name under out_dir; empty = derived from the config file name"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

const host_section host_sections[] = {
    /* plugin sections: name, kind, NULL, 0, required, help */
    {"data", EQM_KIND_DATASET, NULL, 0, 1, "the dataset plugin and its options"},
    {"augment.*", EQM_KIND_AUGMENT, NULL, 0, 0,
     "one augmentation stage per section ([augment.crop], [augment.view1], ...)"},
    {"backbone", EQM_KIND_BACKBONE, NULL, 0, 1, "the backbone network"},
    {"method", EQM_KIND_METHOD, NULL, 0, 1, "the invariance method (SimCLR, BYOL)"},
    {"equimod", EQM_KIND_EQUIMOD, NULL, 0, 0, "the equivariance module (optional); t_fields = augmentations whose records t keeps"},
    /* host sections: name, -1, spec, sizeof opts, required, help (one line each) */
    {"run", -1, run_spec, sizeof(run_opts), 0, "seed, output folder and name of a run"},
    {"loader", -1, loader_section_spec, sizeof(loader_cfg), 0, "batch queue: batch size, workers, prefetch, shuffle, t standardisation"},
    {"views", -1, views_section_spec, sizeof(views_cfg), 0, "pipelines ([augment.NAME] lists) of the original view, view1, view2 and evaluation"},
    {"train", -1, train_section_spec, sizeof(train_opts), 0, "epochs, equimod on/off, subset, early stop, checkpoint cadence, threads"},
    {"optim", -1, optim_section_spec, sizeof(optim_opts), 0, "optimiser (LARS/SGD) and the warmup-cosine lr schedule"},
    {"eval", -1, eval_section_spec, sizeof(eval_opts), 0, "kNN and linear-probe evaluation (online kNN, test subsets)"},
    {NULL, 0, NULL, 0, 0, NULL},
};

const host_section *host_section_find(const char *section_name)
{
    if (!section_name)
        return NULL;
    for (size_t i = 0; host_sections[i].name; i++) {
        const char *n = host_sections[i].name;
        size_t l = strlen(n);
        if (l >= 2 && !strcmp(n + l - 2, ".*")) {
            /* "augment.*" matches "augment.X" with a non-empty X */
            if (!strncmp(section_name, n, l - 1) && section_name[l - 1] != '\0')
                return &host_sections[i];
        } else if (!strcmp(section_name, n)) {
            return &host_sections[i];
        }
    }
    return NULL;
}

const char *const *host_plugin_keys(const char *section_name)
{
    static const char *const plain[] = {"plugin", NULL};
    static const char *const equimod[] = {"plugin", "t_fields", NULL};
    return section_name && !strcmp(section_name, "equimod") ? equimod : plain;
}
