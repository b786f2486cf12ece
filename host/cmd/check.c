/* host/cmd/check.c: `equimod check FILE.so | KIND/NAME`, a plugin's contract exercised
 * (the command; the checks of each kind are in host/check/).
 *
 * Loads the plugin(s) through the registry (so every load-time refusal is reported as in
 * `equimod plugins`), creates an instance with the default options (or --set KEY=VALUE),
 * and runs the checks of its kind. Each failure is one line naming the rule it breaks,
 *     FAIL [rule] what happened
 * and the exit status is 0 only when every check of every plugin held.
 *   augment:  param_name (non-NULL, [a-z0-9_]+, unique); on several sizes and channel
 *             counts: sample writes n_params finite values and nothing past them, the
 *             same rng gives the same record, out_shape is sane and does not need pixels,
 *             apply writes every pixel of out and nothing outside (guards, row padding),
 *             leaves the input alone, is deterministic, is not EQM_SKIP; apply_scaled at
 *             scale 1 equals apply and source_box lies in the image; with option p = 0
 *             the record is always the same (neutral) and apply is the identity; 4
 *             threads sharing the instance agree with one thread.
 *   dataset:  info (sizes, classes, mean/std); get on the first, last and 5 other indices
 *             (pixels inside the buffer, U8 1/3 channels, label in [0, n_classes), the
 *             same sample twice, the buffer-growth protocol from a 16-byte buffer); 4
 *             threads agree; streaming datasets: stream_source, then decode of every
 *             sample of a shard generated from stream_members (jpg/png images of varying
 *             size, class indices as text; one sample with a non-image, one with a label
 *             past n_classes) read by the host's shard stream: all samples and the end of
 *             the stream, the size query (capacity 0: EQM_GROW), image, pixels, label and
 *             original size at 8/8, sizes at 4/8 and 2/8, the bad samples EQM_SKIP with a
 *             message, 4 threads agree (host/check/stream.c).
 *   backbone, method, equimod: tensors (names unique, shapes, BUFFER/EMA flags);
 *             finite-difference check of the gradient of every trainable tensor and of
 *             the input (directional derivative along a random direction, central
 *             differences); output fully written and finite; guard canaries around the
 *             activation arena, parameters, gradients and outputs; din accumulates (+=);
 *             backbones: a target (EMA) forward between forward and backward leaves the
 *             gradients unchanged, and max_rows = 0 (as `equimod export` creates them) is
 *             accepted with the same tensors; methods with EQM_MODULE_EMBEDDING: out_dim
 *             gives Z, the embedding forward (train = 0) writes every one of rows x Z
 *             values of out (finite, nothing outside), no loss or metrics, no in_target
 *             read, no tensor updated, the same z twice.
 * Exit: 0 every check held, 1 a check failed or the plugin could not be loaded, 2 usage.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check/internal.h"

static void check_usage(FILE *f)
{
    fprintf(f,
            "usage: equimod check [--plugin-path DIR]... [--set KEY=VALUE]... [-v]\n"
            "                     FILE.so | KIND/NAME\n\n"
            "Exercise a plugin's contract and report each failure with the rule it breaks;\n"
            "exit status 0 only when everything holds. FILE.so checks every plugin of that\n"
            "file (a path: it contains '/'); KIND/NAME one plugin from the search path.\n"
            "The instance gets the plugin's default options; --set KEY=VALUE changes one\n"
            "(e.g. --set depth=18 for a smaller network). -v lists the checks that held.\n"
            "  augment   records in t (finite, declared length, unique names, neutral with\n"
            "            p = 0), apply (deterministic, every pixel, nothing outside out_shape,\n"
            "            no EQM_SKIP), apply_scaled = apply at scale 1, several threads agree,\n"
            "            on 8-bit images of several sizes with 1 and 3 channels\n"
            "  dataset   info, get on the first, last and random indices, labels within\n"
            "            n_classes, the buffer-growth protocol, several threads agree;\n"
            "            streaming: decode of a generated shard (images, labels, sizes at\n"
            "            8/8, 4/8, 2/8, bad samples skipped with a message, end of stream)\n"
            "  backbone, method, equimod\n"
            "            finite-difference check of the gradient of every parameter tensor\n"
            "            and of the input, output fully written, canaries around the\n"
            "            activation arena and every buffer, din accumulates; backbones: a\n"
            "            target (EMA) forward between forward and backward, max_rows = 0;\n"
            "            methods with EQM_MODULE_EMBEDDING: the embedding forward writes\n"
            "            rows x out_dim finite values, no loss, updates nothing, repeats\n");
}

static int check_one(const eqm_plugin *pl, const char *const *sets, int n_sets, int verbose)
{
    ck c;
    memset(&c, 0, sizeof c);
    c.pl = pl;
    c.verbose = verbose;
    const char *kn = kind_name((int)pl->desc.kind);
    snprintf(c.label, sizeof c.label, "%s/%s", kn ? kn : "?", pl->desc.name);
    printf("check %s %s (plugin ABI %u.%u, %s)\n", c.label, pl->desc.version, pl->file_abi_major,
           pl->file_abi_minor, pl->path);
    c.ctx = host_ctx_create(c.label);
    void *opts = calloc(1, pl->desc.params_size ? pl->desc.params_size : 1);
    eqm_config *cfg = config_new_empty();
    char err[2048];
    int rc = (c.ctx && opts && cfg) ? 0 : -1;
    for (int i = 0; rc == 0 && i < n_sets; i++) {
        char a[1200];
        snprintf(a, sizeof a, "check.%s", sets[i]);
        if (config_set(cfg, a, err, sizeof err)) {
            printf("  FAIL [options] --set %s: %s\n", sets[i], err);
            rc = -1;
        }
    }
    if (rc == 0 && config_bind(cfg, "check", pl->desc.params, opts, NULL, err, sizeof err)) {
        printf("  FAIL [options] %s\n", err);
        rc = -1;
    }
    if (rc == 0) {
        switch (pl->desc.kind) {
        case EQM_KIND_AUGMENT: check_augment(&c, pl, opts); break;
        case EQM_KIND_DATASET: check_dataset(&c, pl, opts); break;
        default: check_module(&c, pl, opts); break;
        }
        if (c.n_fail)
            printf("%s: %d of %d checks FAILED\n", c.label, c.n_fail, c.n_checks);
        else
            printf("%s: all %d checks hold\n", c.label, c.n_checks);
    } else {
        printf("%s: not checked\n", c.label);
    }
    config_destroy(cfg);
    free(opts);
    if (c.ctx)
        host_ctx_destroy(c.ctx);
    return rc == 0 && c.n_fail == 0 ? 0 : 1;
}

int cmd_check(int argc, char **argv)
{
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    const char *target = NULL;
    int n_sets = 0, verbose = 0, rc = 2;
    if (!sets)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            check_usage(stdout);
            rc = 0;
            goto done;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = 1;
        } else if (!strcmp(a, "--plugin-path") || !strcmp(a, "--set")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "equimod check: %s needs a value\n", a);
                goto done;
            }
            if (a[2] == 'p')
                cli_add_plugin_path(argv[++i]);
            else
                sets[n_sets++] = argv[++i];
        } else if (!strncmp(a, "--plugin-path=", 14)) {
            cli_add_plugin_path(a + 14);
        } else if (!strncmp(a, "--set=", 6)) {
            sets[n_sets++] = a + 6;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "equimod check: unknown option '%s'\nhint: see 'equimod check "
                            "--help'\n", a);
            goto done;
        } else if (!target) {
            target = a;
        } else {
            fprintf(stderr, "equimod check: unexpected argument '%s'\n", a);
            goto done;
        }
    }
    if (!target) {
        fprintf(stderr, "equimod check: expected FILE.so or KIND/NAME\n"
                        "hint: equimod check ./my_plugin.so, or equimod check augment/flip\n");
        goto done;
    }
    rc = 1;
    struct stat st;
    if (strchr(target, '/') && !stat(target, &st)) { /* a file */
        eqm_registry *r = registry_create();
        if (!r)
            goto done;
        int n = registry_load_file(r, target);
        if (n <= 0) {
            fprintf(stderr, "equimod check: no plugin of %s was accepted%s\n", target,
                    n < 0 ? " (the file could not be opened)" : " (see the refusal above)");
            registry_destroy(r);
            goto done;
        }
        rc = 0;
        for (size_t i = 0; i < registry_count(r); i++)
            rc |= check_one(registry_at(r, i), sets, n_sets, verbose);
        registry_destroy(r);
        goto done;
    }
    const char *slash = strchr(target, '/');
    if (!slash) {
        fprintf(stderr, "equimod check: '%s' is neither a file nor KIND/NAME\n", target);
        rc = 2;
        goto done;
    }
    char kind_s[32];
    snprintf(kind_s, sizeof kind_s, "%.*s", (int)(slash - target), target);
    int kind = kind_from_name(kind_s);
    eqm_registry *r = cli_registry();
    const eqm_plugin *pl = (r && kind >= 0) ? registry_find(r, kind, slash + 1) : NULL;
    if (!pl) {
        fprintf(stderr, "equimod check: no file %s and no plugin %s in the search path\n"
                        "hint: 'equimod plugins' lists the plugins found\n", target, target);
        goto done;
    }
    rc = check_one(pl, sets, n_sets, verbose);
done:
    free(sets);
    return rc;
}
