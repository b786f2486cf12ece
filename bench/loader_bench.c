/* bench/loader_bench.c -> bench/loader: views per second per core of the SimCLR CIFAR-10
 * view pipeline (RandomResizedCrop 32 bicubic scale 0.2-1, flip 0.5, colour jitter
 * 0.4/0.4/0.4/0.1 p 0.8, grayscale 0.2, normalize), through the real batch queue with ONE
 * worker thread, then torchvision's same pipeline on PIL images (bench/loader_torchvision.py,
 * /usr/bin/python3, one process, one thread, ToTensor and Normalize included).
 * Output: one line per measurement, last line `ratio=R` (equimod / torchvision, per core).
 * Per core = views per CPU-second of the thread doing the work (the loader's worker thread,
 * CLOCK_THREAD_CPUTIME_ID; Python's process_time), so a busy machine does not skew it.
 * Usage: bench/loader [SECONDS]   (env: EQUIMOD_DATA_DIR, EQM_BUILDDIR or EQUIMOD_PLUGIN_PATH,
 *        EQM_SRCDIR for the Python script; default 3 s per measurement)
 * Images: the exact first 1,000 CIFAR-10 test images for both (cycled).
 * Not measured: the original view x0 and view 2 of the 3-view mode (reported separately as
 * "3-view samples/s"), decoding (CIFAR is raw bytes).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "loader/loader.h"

static const char *const plugins[] = {
    "dataset/cifar10/dataset_cifar10", "augment/random_resized_crop/augment_random_resized_crop",
    "augment/horizontal_flip/augment_horizontal_flip", "augment/color_jitter/augment_color_jitter",
    "augment/grayscale/augment_grayscale", "augment/normalize/augment_normalize"};

static double run(eqm_registry *reg, eqm_config *cfg, int mode, double secs, double *per)
{
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.mode = mode;
    o.single_view = "view1";
    o.workers = 1;
    o.batch_size = 250;
    o.prefetch = 2;
    eqm_loader *l;
    char err[1024];
    if (loader_create(&l, cfg, reg, "test", &o, err, sizeof err)) {
        fprintf(stderr, "bench/loader: %s\n", err);
        exit(1);
    }
    const eqm_host_api *api = host_api();
    int64_t rows = 0;
    uint64_t t0 = 0;
    for (int64_t e = 0;; e++) {
        loader_start_epoch(l, e);
        eqm_batch *b;
        while (loader_next(l, &b) == EQM_OK) {
            if (e == 0 && b->index == 0)
                t0 = api->now_ns(); /* first batch = warm-up */
            else
                rows += b->n;
            loader_release(l, b);
        }
        if (t0 && (api->now_ns() - t0) * 1e-9 >= secs)
            break;
    }
    (void)rows;
    eqm_loader_stats st;
    loader_stats(l, &st);
    *per = st.work_ns * 1e-9 / (double)st.samples; /* worker wall seconds per sample */
    loader_destroy(l);
    /* per core: samples over the worker thread's CPU time (includes the warm-up batch) */
    return (double)st.samples / (st.work_cpu_ns * 1e-9);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    const char *data = getenv("EQUIMOD_DATA_DIR");
    if (!data) {
        fprintf(stderr, "bench/loader: set EQUIMOD_DATA_DIR (folder holding cifar10/)\n");
        return 77;
    }
    host_log_set_level(EQM_LOG_WARN);
    eqm_registry *reg = registry_create();
    const char *bd = getenv("EQM_BUILDDIR"), *pp = getenv("EQUIMOD_PLUGIN_PATH");
    for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++) {
        char path[2048], dir[512];
        const char *base = strrchr(plugins[i], '/') + 1;
        snprintf(dir, sizeof dir, "%s", plugins[i]);
        *strrchr(dir, '/') = 0;
        snprintf(path, sizeof path, "%s/plugins/%s/.libs/%s.so", bd ? bd : ".", dir, base);
        if (access(path, R_OK) && pp)
            snprintf(path, sizeof path, "%s/%s.so", pp, base);
        if (registry_load_file(reg, path) != 1) {
            fprintf(stderr, "bench/loader: cannot load %s\n", path);
            return 1;
        }
    }
    char root[1200], err[1024];
    snprintf(root, sizeof root, "data.root=%s/cifar10", data);
    const char *lines[] = {"data.plugin=cifar10", root, "data.test_set=exact1000",
                           "augment.crop.plugin=random_resized_crop", "augment.crop.size=32",
                           "augment.crop.scale_min=0.2", "augment.flip.plugin=horizontal_flip",
                           "augment.jitter.plugin=color_jitter", "augment.gray.plugin=grayscale",
                           "augment.norm.plugin=normalize", "views.view1=crop flip jitter gray norm",
                           "views.view2=crop flip jitter gray norm", "views.original=norm", NULL};
    eqm_config *cfg = config_new_empty();
    for (int i = 0; lines[i]; i++)
        if (config_set(cfg, lines[i], err, sizeof err)) {
            fprintf(stderr, "bench/loader: %s\n", err);
            return 1;
        }
    double per1, per3;
    double v = run(reg, cfg, EQM_LOADER_SINGLE, secs, &per1);
    printf("equimod: %.0f views per CPU-second of the worker thread (wall %.2f us/view)\n", v,
           per1 * 1e6);
    double s3 = run(reg, cfg, EQM_LOADER_VIEWS, secs, &per3);
    printf("equimod: %.0f 3-view samples per CPU-second (original + 2 views + t)\n", s3);
    config_destroy(cfg);
    registry_destroy(reg);
    const char *src = getenv("EQM_SRCDIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/loader_torchvision.py '%s' %g",
             src ? src : EQM_SRCDIR, data, secs);
    FILE *f = popen(cmd, "r");
    double tv = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "views_per_s=", 12))
            tv = atof(line + 12);
    if (f)
        pclose(f);
    if (tv <= 0) {
        fprintf(stderr, "bench/loader: the torchvision run failed (%s)\n", cmd);
        return 1;
    }
    printf("torchvision: %.0f views per CPU-second, one process, one thread\n", tv);
    printf("ratio=%.1f\n", v / tv);
    return 0;
}
