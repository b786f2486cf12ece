/* host/loader/options.c: the option tables of the host sections [loader] and [views]
 * (structs in loader.h; listed in host/sections.c). Data only. */
#include "config.h"

#include <stddef.h>

#include "loader/loader.h"


const eqm_param_spec loader_section_spec[] = {
    {"batch_size", EQM_PARAM_INT, offsetof(loader_cfg, batch_size), "256", 1, 1 << 20, NULL,
     "images per batch"},
    {"workers", EQM_PARAM_INT, offsetof(loader_cfg, workers), "0", 0, 256, NULL,
     "loader threads; 0 = number of online CPUs (at most 8)"},
    {"prefetch", EQM_PARAM_INT, offsetof(loader_cfg, prefetch), "2", 0, 64, NULL,
     "batches produced ahead; the ring has prefetch + 2 slots"},
    {"drop_last", EQM_PARAM_BOOL, offsetof(loader_cfg, drop_last), "true", 0, 0, NULL,
     "drop the last partial batch of an epoch"},
    {"shuffle", EQM_PARAM_BOOL, offsetof(loader_cfg, shuffle), "true", 0, 0, NULL,
     "shuffle the sample order every epoch"},
    {"t_standardize", EQM_PARAM_ENUM, offsetof(loader_cfg, t_standardize), "cifar_simclr", 0, 0,
     "cifar_simclr|imagenet_simclr|byol_cifar|byol_imagenet|estimate|none",
     "t standardisation: published constants (method-reference.md §4), Monte Carlo estimate, or none"},
    {"t_estimate_samples", EQM_PARAM_INT, offsetof(loader_cfg, t_estimate_samples), "100000",
     100, 1e9, NULL, "parameter vectors drawn per view when t_standardize = estimate"},
    {"dct_scaling", EQM_PARAM_BOOL, offsetof(loader_cfg, dct_scaling), "true", 0, 0, NULL,
     "streaming JPEG datasets: decode at 1/8, 1/4 or 1/2 size when the first step of every "
     "view (random_resized_crop, resize) still gets at least its output size from it; false: "
     "full-size decode (bit-exact with torchvision on PIL)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};
const size_t loader_section_size = sizeof(loader_cfg);


const eqm_param_spec views_section_spec[] = {
    {"view1", EQM_PARAM_STRING, offsetof(views_cfg, view1), NULL, 0, 0, NULL,
     "[augment.NAME] sections of view 1, in order (e.g. crop flip jitter gray norm)"},
    {"view2", EQM_PARAM_STRING, offsetof(views_cfg, view2), NULL, 0, 0, NULL,
     "[augment.NAME] sections of view 2, in order"},
    {"original", EQM_PARAM_STRING, offsetof(views_cfg, original), NULL, 0, 0, NULL,
     "preprocessing of the original view x0 (e.g. norm; ImageNet: resize256 center224 norm)"},
    {"eval_train", EQM_PARAM_STRING, offsetof(views_cfg, eval_train), NULL, 0, 0, NULL,
     "linear-eval training pipeline (e.g. lin_crop flip norm)"},
    {"eval_test", EQM_PARAM_STRING, offsetof(views_cfg, eval_test), NULL, 0, 0, NULL,
     "evaluation pipeline (CIFAR: resize36 center32 norm)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};
const size_t views_section_size = sizeof(views_cfg);
