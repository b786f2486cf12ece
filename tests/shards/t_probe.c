/* tests/shards/t_probe.c: helper of tests/shards/train_shards.test (not a test by itself).
 * Opens the training loader of a config exactly as `equimod train` does
 * (loader_open: streaming datasets get their shard source) and prints the raw t of
 * the first batch, so that the shell test can check the crop records of t on real shards.
 * (`equimod views` cannot do this: it needs random access, which imagenet_tar lacks.)
 *
 * usage: t_probe PLUGIN_DIR CONFIG [SECTION.KEY=VALUE]...
 * output: "view W H P" (view size, t length), then one line per row and view:
 *         "t V ROW t[0] t[1] ... t[P-1]" (V = 1 or 2), all numbers as %.6g.
 * Left out: everything beyond the first batch. Exit status 0, or 1 with a message. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core.h"
#include "loader/loader.h"
#include "train/trainer.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: t_probe PLUGIN_DIR CONFIG [SECTION.KEY=VALUE]...\n");
        return 1;
    }
    char err[2048];
    eqm_config *cfg = config_load(argv[2], err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "t_probe: %s\n", err);
        return 1;
    }
    for (int i = 3; i < argc; i++)
        if (config_set(cfg, argv[i], err, sizeof err)) {
            fprintf(stderr, "t_probe: %s\n", err);
            config_destroy(cfg);
            return 1;
        }
    eqm_registry *reg = registry_create();
    const char *dirs[1] = {argv[1]};
    int status = 1;
    eqm_loader *ld = NULL;
    eqm_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.mode = EQM_LOADER_VIEWS;
    if (!reg || registry_scan(reg, dirs, 1) <= 0) {
        fprintf(stderr, "t_probe: no plugins in %s\n", argv[1]);
        goto done;
    }
    if (loader_open(&ld, cfg, reg, "train", &lo, err, sizeof err)) {
        fprintf(stderr, "t_probe: %s\n", err);
        goto done;
    }
    eqm_batch *b = NULL;
    if (loader_start_epoch(ld, 0) || loader_next(ld, &b)) {
        fprintf(stderr, "t_probe: %s\n", loader_error(ld));
        goto done;
    }
    printf("view %d %d %d\n", b->w, b->h, b->p);
    for (int v = 1; v <= 2; v++)
        for (int r = 0; r < b->n; r++) {
            const float *t = (v == 1 ? b->t1 : b->t2) + (size_t)r * b->p;
            printf("t %d %d", v, r);
            for (int k = 0; k < b->p; k++)
                printf(" %.6g", t[k]);
            printf("\n");
        }
    loader_release(ld, b);
    status = 0;
done:
    if (ld)
        loader_destroy(ld);
    if (reg)
        registry_destroy(reg);
    config_destroy(cfg);
    return status;
}
