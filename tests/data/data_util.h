/* tests/data/data_util.h: helpers of the data-path tests: load the real plugin files of
 * this build (dataset_cifar10.so, augment_*.so) into a registry, build configs in memory,
 * find the shared data folder. Header-only (static functions). */
#ifndef EQM_TESTS_DATA_UTIL_H
#define EQM_TESTS_DATA_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "loader/loader.h"

static const char *const du_plugins[] = {
    "dataset/cifar10/dataset_cifar10",         "augment/random_resized_crop/augment_random_resized_crop",
    "augment/horizontal_flip/augment_horizontal_flip", "augment/color_jitter/augment_color_jitter",
    "augment/grayscale/augment_grayscale",     "augment/gaussian_blur/augment_gaussian_blur",
    "augment/solarize/augment_solarize",       "augment/normalize/augment_normalize",
    "augment/resize/augment_resize",           "augment/center_crop/augment_center_crop",
};

/* Registry with this build's data plugins (NULL + message on stderr on failure): $EQM_BUILDDIR/plugins/<kind>/<name>/.libs/X.so,
 * else $EQUIMOD_PLUGIN_PATH/X.so. */
__attribute__((unused)) static eqm_registry *du_registry(void)
{
    eqm_registry *r = registry_create();
    if (!r)
        return NULL;
    const char *bd = getenv("EQM_BUILDDIR"), *pp = getenv("EQUIMOD_PLUGIN_PATH");
    for (size_t i = 0; i < sizeof du_plugins / sizeof du_plugins[0]; i++) {
        char path[2048];
        const char *base = strrchr(du_plugins[i], '/') + 1;
        int ok = 0;
        if (bd) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s", du_plugins[i]);
            *strrchr(dir, '/') = 0;
            snprintf(path, sizeof path, "%s/plugins/%s/.libs/%s.so", bd, dir, base);
            ok = access(path, R_OK) == 0;
        }
        if (!ok && pp) {
            snprintf(path, sizeof path, "%s/%s.so", pp, base);
            ok = access(path, R_OK) == 0;
        }
        if (!ok) {
            fprintf(stderr, "%s.so not found (EQM_BUILDDIR=%s, EQUIMOD_PLUGIN_PATH=%s)\n", base,
                    bd ? bd : "", pp ? pp : "");
            registry_destroy(r);
            return NULL;
        }
        int n = registry_load_file(r, path);
        if (n != 1) {
            fprintf(stderr, "%s: registry_load_file gave %d\n", path, n);
            registry_destroy(r);
            return NULL;
        }
    }
    return r;
}

/* Config from "section.key=value" lines (NULL-terminated). */
__attribute__((unused)) static eqm_config *du_config(const char *const *lines)
{
    eqm_config *c = config_new_empty();
    ck_assert_ptr_nonnull(c);
    char err[1024];
    for (size_t i = 0; lines[i]; i++)
        ck_assert_msg(config_set(c, lines[i], err, sizeof err) == 0, "%s: %s", lines[i], err);
    return c;
}

/* The SimCLR CIFAR pipeline (METHOD.md §3) without the [data] section. */
#define DU_SIMCLR_CIFAR                                                                    \
    "augment.crop.plugin=random_resized_crop", "augment.crop.size=32",                     \
        "augment.crop.scale_min=0.2", "augment.flip.plugin=horizontal_flip",               \
        "augment.jitter.plugin=color_jitter", "augment.gray.plugin=grayscale",             \
        "augment.norm.plugin=normalize", "views.view1=crop flip jitter gray norm",         \
        "views.view2=crop flip jitter gray norm", "views.original=norm"

/* $EQUIMOD_DATA_DIR/cifar10 if it holds the training batches, else NULL. */
__attribute__((unused)) static const char *du_cifar_dir(void)
{
    static char dir[1024];
    const char *d = getenv("EQUIMOD_DATA_DIR");
    if (!d || !d[0])
        return NULL;
    snprintf(dir, sizeof dir, "%s/cifar10", d);
    char p[1200];
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin/data_batch_1.bin.gz", dir);
    struct stat st;
    if (stat(p, &st) == 0)
        return dir;
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin/data_batch_1.bin", dir);
    if (stat(p, &st) == 0)
        return dir;
    snprintf(p, sizeof p, "%s/cifar-10-binary.tar.gz", dir);
    return stat(p, &st) == 0 ? dir : NULL;
}

#endif
