/* host/cmd/views.c: the `views` and `tstats` commands (the work is in host/loader).
 *
 *   equimod views CONFIG --index I [-o DIR] [--epoch E] [--split train|test]
 *                 [--set section.key=value]... [--plugin-path DIR]...
 *     writes DIR/sample<I>_original.png, _view1.png, _view2.png (the 8-bit images before
 *     the final normalisation) and DIR/sample<I>_t.txt, and prints t (raw and standardised)
 *     with its field names. A streaming dataset (imagenet_tar shards) is streamed in
 *     epoch E's order (seed [run] seed) up to position I: sample I is the I-th sample
 *     training sees in that epoch, with the same augmentation randomness.
 *   equimod tstats CONFIG [--samples N] [--seed S] [--set ...] [--plugin-path DIR]...
 *     estimates t's standardisation constants by sampling the configured view pipelines
 *     (sample() only, no pixels) and prints them next to the constants configured by
 *     [loader] t_standardize. Image sizes: the dataset's fixed size, or for a streaming
 *     dataset the original sizes of the first min(N, 2000) images of epoch 0 (crop
 *     records are in original pixels), as the trainer's t_standardize = estimate.
 * Left out: a grid/montage of many samples.
 */
#include "config.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader/loader.h"

typedef struct vargs {
    const char *config, *out, *split;
    int64_t index, epoch, samples;
    uint64_t seed;
    const char **sets;
    int n_sets;
    int help; /* --help was printed: exit 0 */
} vargs;

static void usage(const char *cmd, FILE *f)
{
    if (!strcmp(cmd, "views"))
        fprintf(f,
                "usage: equimod views CONFIG --index I [-o DIR] [--split train|test] [--epoch E]\n"
                "                     [--set SECTION.KEY=VALUE]... [--plugin-path DIR]...\n\n"
                "Write the three views of sample I of the split as it would be drawn in epoch E\n"
                "(the original and the two augmented views of [views]) as PNG files\n"
                "DIR/sampleI_original.png, _view1.png, _view2.png, with their raw t vectors\n"
                "(field by field, method-reference.md §4) in DIR/sampleI_t.txt and on stdout.\n"
                "For a streaming dataset (imagenet_tar shards) sample I is the I-th sample of\n"
                "epoch E's stream (order from [run] seed), streamed up to I, decoded at full\n"
                "size: where training decodes it at a reduced DCT scale ([loader] dct_scaling)\n"
                "its t is the same and its pixels differ slightly (--set loader.dct_scaling=false\n"
                "makes training match these images exactly).\n"
                "Default DIR: the current folder.\n");
    else
        fprintf(f,
                "usage: equimod tstats CONFIG [--samples N] [--seed S] [--set SECTION.KEY=VALUE]...\n"
                "                      [--plugin-path DIR]...\n\n"
                "Estimate the t standardisation constants (mean and std of every field) by drawing\n"
                "N parameter vectors (default 200000) from the configured view pipelines, and\n"
                "print them next to the constants the config uses ([loader] t_standardize).\n"
                "Streaming datasets (imagenet_tar shards): the draws use the original sizes of\n"
                "the first min(N, 2000) images of epoch 0.\n");
}

/* Whole-string integer parse; 0 on success. */
static int parse_i64(const char *cmd, const char *opt, const char *v, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end) {
        fprintf(stderr, "equimod %s: %s expects an integer, got '%s'\n", cmd, opt, v);
        return 2;
    }
    *out = x;
    return 0;
}

static int parse(const char *cmd, int argc, char **argv, vargs *a)
{
    memset(a, 0, sizeof *a);
    a->out = ".";
    a->split = "train";
    a->index = -1;
    a->samples = 200000;
    a->seed = 12345;
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    if (!a->sets)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(name) (!strcmp(s, name) && v && (i++, 1))
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            usage(cmd, stdout);
            a->help = 1;
            return 0;
        } else if (TAKE("--index")) {
            if (parse_i64(cmd, "--index", v, &a->index))
                return 2;
        }
        else if (TAKE("-o") || TAKE("--out"))
            a->out = v;
        else if (TAKE("--epoch")) {
            if (parse_i64(cmd, "--epoch", v, &a->epoch))
                return 2;
        }
        else if (TAKE("--split"))
            a->split = v;
        else if (TAKE("--samples")) {
            if (parse_i64(cmd, "--samples", v, &a->samples))
                return 2;
        } else if (TAKE("--seed")) {
            int64_t sd;
            if (parse_i64(cmd, "--seed", v, &sd))
                return 2;
            a->seed = (uint64_t)sd;
        }
        else if (TAKE("--set"))
            a->sets[a->n_sets++] = v;
        else if (!strncmp(s, "--set=", 6))
            a->sets[a->n_sets++] = s + 6;
        else if (TAKE("--plugin-path"))
            cli_add_plugin_path(v);
        else if (!strncmp(s, "--plugin-path=", 14))
            cli_add_plugin_path(s + 14);
        else if (s[0] != '-' && !a->config)
            a->config = s;
        else {
            fprintf(stderr, "equimod %s: unexpected argument '%s'\nhint: see 'equimod %s --help'\n",
                    cmd, s, cmd);
            return 2;
        }
#undef TAKE
    }
    if (!a->config) {
        fprintf(stderr, "equimod %s: missing CONFIG file\n", cmd);
        return 2;
    }
    return 0;
}

static eqm_config *load(const char *cmd, vargs *a)
{
    char err[2048];
    eqm_config *c = config_load(a->config, err, sizeof err);
    if (!c) {
        fprintf(stderr, "equimod %s: %s\n", cmd, err);
        return NULL;
    }
    for (int i = 0; i < a->n_sets; i++)
        if (config_set(c, a->sets[i], err, sizeof err)) {
            fprintf(stderr, "equimod %s: %s\n", cmd, err);
            config_destroy(c);
            return NULL;
        }
    return c;
}

static int write_png(const char *path, const eqm_image *im)
{
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = (png_uint_32)im->w;
    p.height = (png_uint_32)im->h;
    p.format = im->c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    if (!png_image_write_to_file(&p, path, 0, im->data, im->stride, NULL)) {
        fprintf(stderr, "equimod views: %s: %s\n", path, p.message);
        return 1;
    }
    return 0;
}

/* The loader of `cmd` for a command line: one worker, batches of 1 (loader_open). With
 * index >= 0 (views) and a streaming dataset the loader's one sample is what epoch `epoch`
 * of the split shows at position `index` (pick_*: read up to the batch of training's
 * [loader] batch_size holding it, a bad sample substituted as training does), so the
 * views, their t and their randomness key (the stream position) are those of training.
 * With index < 0 (tstats) the loader reads the stream itself (its t estimate uses the
 * sizes of epoch 0's first images). Prints the error and returns NULL on failure. */
static eqm_loader *cli_loader(const char *cmd, eqm_config *c, const vargs *a, int64_t epoch,
                              int64_t index)
{
    eqm_registry *r = cli_registry();
    eqm_loader_opts o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.batch_size = 1;
    o.pick_set = index >= 0;
    o.pick_epoch = epoch;
    o.pick_index = index;
    eqm_loader *l = NULL;
    char err[2048];
    if (!r || loader_open(&l, c, r, a->split, &o, err, sizeof err)) {
        fprintf(stderr, "equimod %s: %s\n", cmd, r ? err : "no plugins");
        return NULL;
    }
    return l;
}

int cmd_views(int argc, char **argv)
{
    vargs a;
    int rc = parse("views", argc, argv, &a);
    if (rc || a.help)
        goto out0;
    rc = 2;
    if (a.index < 0) {
        fprintf(stderr, "equimod views: --index I is required (a sample index of the split)\n");
        goto out0;
    }
    rc = 1;
    eqm_config *c = load("views", &a);
    if (!c)
        goto out0;
    eqm_loader *l = cli_loader("views", c, &a, a.epoch, a.index);
    if (!l)
        goto out1;
    int P = loader_t_dim(l);
    float *t1 = calloc((size_t)P + 1, sizeof(float)), *t2 = calloc((size_t)P + 1, sizeof(float));
    float *s1 = calloc((size_t)P + 1, sizeof(float)), *s2 = calloc((size_t)P + 1, sizeof(float));
    eqm_image u8[3];
    int32_t label;
    if (!t1 || !t2 || !s1 || !s2 || loader_render_sample(l, a.epoch, a.index, u8, t1, t2, &label)) {
        fprintf(stderr, "equimod views: %s\n", loader_error(l));
        goto out2;
    }
    loader_standardize_t(l, t1, s1, 1);
    loader_standardize_t(l, t2, s2, 1);
    if (mkdir(a.out, 0755) && errno != EEXIST) {
        fprintf(stderr, "equimod views: cannot create %s: %s\n", a.out, strerror(errno));
        goto out3;
    }
    eqm_loader_info info;
    loader_info(l, &info);
    const char *names[3] = {"original", "view1", "view2"};
    char path[4096];
    int bad = 0;
    for (int v = 0; v < 3; v++) {
        snprintf(path, sizeof path, "%s/sample%lld_%s.png", a.out, (long long)a.index, names[v]);
        bad |= write_png(path, &u8[v]);
        printf("%s: %dx%dx%d\n", path, u8[v].w, u8[v].h, u8[v].c);
    }
    snprintf(path, sizeof path, "%s/sample%lld_t.txt", a.out, (long long)a.index);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "equimod views: cannot write %s: %s\n", path, strerror(errno));
        goto out3;
    }
    FILE *outs[2] = {stdout, f};
    for (int k = 0; k < 2; k++) {
        fprintf(outs[k], "# %s, sample %lld, epoch %lld, label %d (%s), t standardisation %s\n",
                info.source_desc, (long long)a.index, (long long)a.epoch, label,
                info.class_names && label >= 0 && label < info.n_classes ? info.class_names[label] : "?",
                info.t_standardize);
        fprintf(outs[k], "# idx name view1_raw view2_raw view1_std view2_std\n");
        for (int i = 0; i < P; i++)
            fprintf(outs[k], "%d %s %.6g %.6g %.6g %.6g\n", i, loader_t_name(l, i), t1[i], t2[i],
                    s1[i], s2[i]);
    }
    fclose(f);
    printf("%s\n", path);
    rc = bad;
out3:
    for (int v = 0; v < 3; v++)
        free(u8[v].data);
out2:
    free(t1);
    free(t2);
    free(s1);
    free(s2);
    loader_destroy(l);
out1:
    config_destroy(c);
out0:
    free(a.sets);
    return rc;
}

int cmd_tstats(int argc, char **argv)
{
    vargs a;
    int rc = parse("tstats", argc, argv, &a);
    if (rc || a.help)
        goto out0;
    rc = 1;
    eqm_config *c = load("tstats", &a);
    if (!c)
        goto out0;
    eqm_loader *l = cli_loader("tstats", c, &a, 0, -1);
    if (!l)
        goto out1;
    int P = loader_t_dim(l);
    float *m = calloc((size_t)P + 1, sizeof(float)), *s = calloc((size_t)P + 1, sizeof(float));
    if (!m || !s || loader_estimate_t(l, a.samples, a.seed, m, s)) {
        fprintf(stderr, "equimod tstats: %s\n", loader_error(l));
        goto out2;
    }
    eqm_loader_info info;
    loader_info(l, &info);
    const float *cm = loader_t_mean(l), *cs = loader_t_std(l);
    printf("# t standardisation constants estimated from %lld draws of view1 and of view2 "
           "(seed %llu); configured: t_standardize = %s\n",
           (long long)a.samples, (unsigned long long)a.seed, info.t_standardize);
    printf("# idx name estimated_mean estimated_std configured_mean configured_std\n");
    for (int i = 0; i < P; i++)
        printf("%d %s %.6g %.6g %.6g %.6g\n", i, loader_t_name(l, i), m[i], s[i], cm[i], cs[i]);
    rc = 0;
out2:
    free(m);
    free(s);
    loader_destroy(l);
out1:
    config_destroy(c);
out0:
    free(a.sets);
    return rc;
}
