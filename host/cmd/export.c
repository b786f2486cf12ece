/* host/cmd/export.c: `equimod export`, backbone weights to/from PyTorch .safetensors.
 *
 *   equimod export CONFIG.ini -o OUT.safetensors [--import IN.safetensors] [--set s.k=v]...
 *
 * SOURCE = a config file: the backbone of [backbone] (plugin = resnet and its options) is
 * built and freshly initialised with [run] seed through model_init, exactly as a training
 * run initialises it at step 0 (model_init derives the backbone's stream from the seed and
 * the slot only, so the other modules do not change it). With --import, the backbone is then
 * overwritten from a PyTorch file (strict: names, shapes; see st_import_backbone) before
 * being written, so the command also validates and normalises a torchvision state_dict.
 * SOURCE = a run folder or a checkpoint file: the run's config (RUN/config.ini or the
 * config embedded in the checkpoint) gives the backbone, the checkpoint (checkpoint.last,
 * else .prev) its weights and BN statistics (train_restore_slot, by name), and its step
 * becomes num_batches_tracked. No dataset is opened.
 * Output: torchvision names and shapes (conv weights OIHW, BN num_batches_tracked I64
 * scalars), so torchvision.models.resnet18() with the CIFAR stem (conv1 = Conv2d(3, 64, 3,
 * 1, 1, bias=False), maxpool = Identity) and fc removed loads it with strict=True.
 * Input size for building the module: 32x32x3 (tensor shapes do not depend on it).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/safetensors.h"
#include "train/trainer.h"

/* ------------------------------------------------------------------ command ----- */

static void export_usage(FILE *f)
{
    fprintf(f,
            "usage: equimod export SOURCE -o OUT.safetensors [--import IN.safetensors]\n"
            "                      [--set section.key=value]... [--plugin-path DIR]...\n\n"
            "Write the backbone's weights and BN running statistics as a .safetensors file\n"
            "with torchvision's tensor names and shapes (conv weights OIHW, BN\n"
            "num_batches_tracked as int64 scalars). A ResNet-18 with stem=cifar loads in\n"
            "PyTorch with strict=True into torchvision.models.resnet18() after\n"
            "  m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity();\n"
            "  m.fc = nn.Identity()\n\n"
            "SOURCE  a config file (.ini): the [backbone] section (plugin = resnet and its\n"
            "        options) freshly initialised with [run] seed (default 0), exactly as\n"
            "        training initialises it.\n"
            "        A run folder (its checkpoint.last, else .prev, and config.ini) or a\n"
            "        checkpoint file (its embedded config): the trained backbone, BN\n"
            "        num_batches_tracked = the checkpoint's step.\n"
            "options:\n"
            "  -o, --output FILE     the .safetensors file to write (required)\n"
            "  --import FILE         load the backbone from a PyTorch .safetensors file\n"
            "                        (strict: every tensor, right shapes, nothing extra but\n"
            "                        num_batches_tracked) instead of the seed, then write -o\n"
            "  --set section.key=v   override a config value (repeatable)\n"
            "  --plugin-path DIR     also search DIR for plugins (repeatable)\n");
}

int cmd_export(int argc, char **argv)
{
    const char *source = NULL, *out = NULL, *imp = NULL;
    char *sets[64];
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            export_usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--import") && i + 1 < argc) {
            imp = argv[++i];
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            if (n_sets == 64) {
                fprintf(stderr, "equimod export: too many --set (max 64)\n");
                return 2;
            }
            sets[n_sets++] = argv[++i];
        } else if (!strcmp(a, "--plugin-path") && i + 1 < argc) {
            cli_add_plugin_path(argv[++i]);
        } else if (a[0] == '-') {
            fprintf(stderr,
                    "equimod export: unknown option or missing value '%s'\n"
                    "hint: see 'equimod export --help'\n",
                    a);
            return 2;
        } else if (!source) {
            source = a;
        } else {
            fprintf(stderr, "equimod export: more than one SOURCE ('%s', '%s')\n", source, a);
            return 2;
        }
    }
    if (!source || !out) {
        fprintf(stderr, "equimod export: %s is required\nhint: see 'equimod export --help'\n",
                !source ? "SOURCE" : "-o OUT.safetensors");
        return 2;
    }
    char err[4096] = "";
    struct stat sb;
    if (stat(source, &sb)) {
        fprintf(stderr, "equimod export: %s: %s\n", source, strerror(errno));
        return 1;
    }
    int rc = 1;
    void *opts = NULL;
    eqm_model m;
    model_reset(&m);
    model_source ms;
    if (model_source_open(&ms, source, sets, n_sets, err, sizeof err)) {
        fprintf(stderr, "equimod export: %s\n", err);
        return 1;
    }
    eqm_config *cfg = ms.cfg;
    const int from_ckpt = ms.ckpt[0] != 0;
    const char *ckpt_path = ms.ckpt;
    const int64_t step = ms.step;
    uint64_t seed = 0;
    const char *seed_txt = config_get(cfg, "run", "seed");
    if (seed_txt) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(seed_txt, &end, 0);
        if (errno || end == seed_txt || *end || seed_txt[0] == '-') {
            fprintf(stderr,
                    "equimod export: %s: [run] seed = '%s' is not a non-negative integer\n",
                    config_where(cfg, "run", "seed"), seed_txt);
            goto done;
        }
        seed = v;
    }
    const eqm_plugin *plugin = NULL;
    if (config_bind_plugin(cfg, cli_registry(), "backbone", EQM_KIND_BACKBONE, &plugin, &opts,
                           err, sizeof err) < 0) {
        fprintf(stderr, "equimod export: %s\n", err);
        goto done;
    }
    eqm_module_cfg mc = {sizeof mc, 32, 32, 3, 0, 0, 0, 0};
    if (model_add_module(&m, plugin, opts, &mc, err, sizeof err) < 0 ||
        model_finalize(&m, err, sizeof err) < 0 || model_init(&m, seed, err, sizeof err) < 0) {
        fprintf(stderr, "equimod export: %s\n", err);
        goto done;
    }
    if (from_ckpt && train_restore_slot(&m, EQM_SLOT_BACKBONE, ckpt_path, err, sizeof err)) {
        fprintf(stderr, "equimod export: %s\n", err);
        goto done;
    }
    if (imp && st_import_backbone(&m, imp, err, sizeof err) < 0) {
        fprintf(stderr, "equimod export: %s\n", err);
        goto done;
    }
    char seed_s[32], step_s[32];
    snprintf(seed_s, sizeof seed_s, "%" PRIu64, seed);
    snprintf(step_s, sizeof step_s, "%" PRId64, step);
    const char *meta[] = {"equimod.backbone", plugin->desc.name,
                          "equimod.source", from_ckpt ? ckpt_path : source,
                          "equimod.seed", seed_s,
                          "equimod.step", step_s,
                          "equimod.import", imp ? imp : "",
                          NULL};
    if (st_export_backbone(&m, out, step, meta, err, sizeof err) < 0) {
        fprintf(stderr, "equimod export: %s\n", err);
        goto done;
    }
    fprintf(stderr, "equimod export: wrote %s (%d tensors of backbone/%s, %zu trainable floats)\n",
            out, m.mod[0].n_tensors, plugin->desc.name, m.n_trainable);
    rc = 0;
done:
    model_destroy(&m);
    free(opts);
    model_source_close(&ms);
    return rc;
}
