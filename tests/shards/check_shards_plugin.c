/* tests/shards/check_shards_plugin.c: `equimod shards` (cmd_shards) on ImageFolder and
 * flat+labels (ILSVRC val) layouts, its determinism and index, then the real
 * dataset_imagenet_tar.so loaded through the registry, bound through the config code, read
 * through the streaming source adapter (shard_source_create) and its decode(): labels,
 * grayscale/CMYK to RGB, DCT-scaled decode, a corrupt JPEG and a bad .cls skipped.
 * With EQUIMOD_DATA_DIR set, the Imagenette train subset (1,000 JPEGs in a .tar.gz) is
 * turned into shards and read back in full; without it that case is skipped (the program
 * exits 77 only if nothing else ran, which never happens: the synthetic cases always run). */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "loader/loader.h"
#include "shards/shards.h"
#include "shard_util.h"

static char *dir;

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_jpeg(const char *path, int w, int h, int kind, int seed)
{
    unsigned char *j;
    unsigned long n;
    ck_assert_int_eq(su_jpeg(w, h, kind, seed, &j, &n), 0);
    write_file(path, j, n);
    tjFree(j);
}

/* ImageFolder: cat/ dog/ eel/, 5 images each; eel/e4.JPEG is corrupt, dog/d1 grayscale,
 * dog/d2 CMYK. */
static void make_tree(const char *root)
{
    const char *cls[3] = {"cat", "dog", "eel"};
    char p[700];
    mkdir(root, 0755);
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/%s", root, cls[c]);
        mkdir(p, 0755);
        for (int i = 0; i < 5; i++) {
            snprintf(p, sizeof p, "%s/%s/%c%d.JPEG", root, cls[c], cls[c][0], i);
            if (c == 2 && i == 4) {
                {
                static const char junk[] = "\xff\xd8\xff\xe0 this is not really a JPEG";
                write_file(p, junk, sizeof junk - 1);
            }
                continue;
            }
            int kind = (c == 1 && i == 1) ? SU_GRAY : (c == 1 && i == 2) ? SU_CMYK : SU_RGB;
            write_jpeg(p, 40 + 8 * i, 30 + 4 * c, kind, c * 5 + i);
        }
    }
    snprintf(p, sizeof p, "%s/readme.txt", root); /* not a class folder: ignored */
    write_file(p, "x", 1);
}

static int run_shards(const char *a0, const char *a1, const char *a2, const char *a3,
                      const char *a4, const char *a5, const char *a6)
{
    char *argv[8] = {"shards", (char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4,
                     (char *)a5, (char *)a6};
    int argc = 1;
    while (argc < 8 && argv[argc])
        argc++;
    return cmd_shards(argc, argv);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)k + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)k, f), (size_t)k);
    b[k] = 0;
    fclose(f);
    *n = (size_t)k;
    return b;
}

static void setup(void)
{
    dir = su_tmpdir();
    ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
    su_rmtree(dir);
    free(dir);
}

START_TEST(test_writer_imagefolder)
{
    char tree[600], o1[600], o2[600], p[700];
    snprintf(tree, sizeof tree, "%s/tree", dir);
    snprintf(o1, sizeof o1, "%s/out1", dir);
    snprintf(o2, sizeof o2, "%s/out2", dir);
    make_tree(tree);
    ck_assert_int_eq(run_shards("--per-shard", "4", "--seed", "3", tree, o1, NULL), 0);
    ck_assert_int_eq(run_shards("--per-shard", "4", "--seed", "3", tree, o2, NULL), 0);
    /* index: 14 good files (eel/e4 is not a JPEG: skipped) in 4 shards of 4,4,4,2 */
    size_t n;
    snprintf(p, sizeof p, "%s/train.index", o1);
    char *idx = slurp(p, &n);
    ck_assert_ptr_nonnull(idx);
    ck_assert_ptr_nonnull(strstr(idx, "train-000000.tar 4 "));
    ck_assert_ptr_nonnull(strstr(idx, "train-000003.tar 2 "));
    ck_assert_ptr_nonnull(strstr(idx, "total 14\n"));
    free(idx);
    snprintf(p, sizeof p, "%s/classes.txt", o1);
    char *cl = slurp(p, &n);
    ck_assert_str_eq(cl, "cat\ndog\neel\n");
    free(cl);
    /* deterministic: byte-identical shards */
    for (int s = 0; s < 4; s++) {
        size_t n1, n2;
        snprintf(p, sizeof p, "%s/train-%06d.tar", o1, s);
        char *a = slurp(p, &n1);
        snprintf(p, sizeof p, "%s/train-%06d.tar", o2, s);
        char *b = slurp(p, &n2);
        ck_assert_ptr_nonnull(a);
        ck_assert_uint_eq(n1, n2);
        ck_assert(!memcmp(a, b, n1));
        free(a);
        free(b);
    }
    /* --shard-bytes: one new shard per ~2 kB */
    snprintf(p, sizeof p, "%s/out3", dir);
    ck_assert_int_eq(run_shards("--shard-bytes", "2k", "--prefix", "val", tree, p, NULL), 0);
    char q[800];
    snprintf(q, sizeof q, "%s/val.index", p);
    idx = slurp(q, &n);
    ck_assert_ptr_nonnull(strstr(idx, "total 14\n"));
    ck_assert_ptr_nonnull(strstr(idx, "val-000002.tar")); /* several shards */
    free(idx);
    /* usage errors */
    ck_assert_int_eq(run_shards(tree, NULL, NULL, NULL, NULL, NULL, NULL), 2);
    ck_assert_int_eq(run_shards("--per-shard", "0", tree, o1, NULL, NULL, NULL), 2);
    ck_assert_int_eq(run_shards("--bogus", "1", tree, o1, NULL, NULL, NULL), 2);
    snprintf(p, sizeof p, "%s/nothing", dir);
    mkdir(p, 0755);
    ck_assert_int_eq(run_shards(p, o1, NULL, NULL, NULL, NULL, NULL), 1);
}
END_TEST

START_TEST(test_writer_flat_labels)
{
    char flat[600], out[600], p[800];
    snprintf(flat, sizeof flat, "%s/val", dir);
    snprintf(out, sizeof out, "%s/vs", dir);
    mkdir(flat, 0755);
    FILE *lab;
    snprintf(p, sizeof p, "%s/val_labels.txt", dir);
    lab = fopen(p, "w");
    for (int i = 1; i <= 6; i++) {
        char f[700];
        snprintf(f, sizeof f, "%s/ILSVRC2012_val_%08d.JPEG", flat, i);
        write_jpeg(f, 16, 16, SU_RGB, i);
        fprintf(lab, "ILSVRC2012_val_%08d.JPEG %d\n", i, (i * 7) % 5);
    }
    fclose(lab);
    ck_assert_int_eq(run_shards("--labels", p, "--no-shuffle", flat, out, NULL, NULL), 0);
    /* read back: cls = (i*7)%5 for the sample of file i */
    char pat[700], err[1024];
    snprintf(pat, sizeof pat, "%s/train-000000.tar", out);
    shard_stream_opts o;
    memset(&o, 0, sizeof o);
    o.pattern = pat;
    o.members = "jpg;cls";
    o.world = 1;
    shard_stream *s;
    ck_assert_int_eq(shard_stream_create(&o, &s, err, sizeof err), EQM_OK);
    ck_assert_int_eq(shard_stream_start_epoch(s, 0, err, sizeof err), EQM_OK);
    eqm_raw_sample *r;
    int n = 0;
    while (shard_stream_pop(s, &r, err, sizeof err) == EQM_OK) {
        int i = atoi(strstr(r->key, "val_") + 4);
        ck_assert_int_eq(atoi(r->members[1].data), (i * 7) % 5);
        n++;
        shard_stream_release(s, r);
    }
    ck_assert_int_eq(n, 6);
    shard_stream_destroy(s);
    /* a label file missing an image is an error */
    lab = fopen(p, "w");
    fprintf(lab, "ILSVRC2012_val_00000001.JPEG 3\n");
    fclose(lab);
    ck_assert_int_eq(run_shards("--labels", p, flat, out, NULL, NULL, NULL), 1);
}
END_TEST


/* Run cmd_shards with stderr captured into *log (malloc'ed). */
static int run_shards_log(char **log, const char *a0, const char *a1, const char *a2,
                          const char *a3, const char *a4)
{
    char lp[700];
    snprintf(lp, sizeof lp, "%s/stderr.txt", dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *lf = fopen(lp, "w");
    ck_assert_ptr_nonnull(lf);
    dup2(fileno(lf), 2);
    int rc = run_shards(a0, a1, a2, a3, a4, NULL, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(lf);
    size_t n;
    *log = slurp(lp, &n);
    return rc;
}

/* Files named .JPEG that are not whole JPEGs: each reported by path with the reason and
 * skipped (or, with --strict, an error that leaves no shard or index behind); a FIFO and a
 * directory named .JPEG never block the writer. */
START_TEST(test_writer_bad_files)
{
    char tree[600], out[600], p[800];
    snprintf(tree, sizeof tree, "%s/bad", dir);
    snprintf(out, sizeof out, "%s/bo", dir);
    mkdir(tree, 0755);
    snprintf(p, sizeof p, "%s/a", tree);
    mkdir(p, 0755);
    unsigned char *j;
    unsigned long jn;
    ck_assert_int_eq(su_jpeg(64, 48, SU_RGB, 7, &j, &jn), 0);
    snprintf(p, sizeof p, "%s/a/a0.JPEG", tree);
    write_file(p, j, jn);
    snprintf(p, sizeof p, "%s/a/a1.JPEG", tree);
    write_file(p, j, jn);
    snprintf(p, sizeof p, "%s/a/a2.JPEG", tree); /* empty */
    write_file(p, "", 0);
    snprintf(p, sizeof p, "%s/a/a3.JPEG", tree); /* a PNG with the wrong name */
    write_file(p, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    snprintf(p, sizeof p, "%s/a/a4.JPEG", tree); /* cut in the middle of its scan */
    write_file(p, j, jn * 2 / 3);
    snprintf(p, sizeof p, "%s/a/a5.JPEG", tree); /* text */
    write_file(p, "hello, world\n", 13);
    snprintf(p, sizeof p, "%s/a/a6.JPEG", tree); /* a FIFO: would block open() */
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/a/a7.JPEG", tree); /* a directory */
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/a8.JPEG", tree); /* the JPEG with trailing bytes: fine */
    {
        unsigned char *t = malloc(jn + 100);
        memcpy(t, j, jn);
        memset(t + jn, 0, 100);
        write_file(p, t, jn + 100);
        free(t);
    }
    tjFree(j);
    alarm(60);
    char *log = NULL;
    ck_assert_int_eq(run_shards_log(&log, "--per-shard", "2", tree, out, NULL), 0);
    static const char *const why[] = {"a2.JPEG: empty file", "a3.JPEG: a PNG image",
                                      "a4.JPEG: truncated JPEG", "a5.JPEG: not a JPEG",
                                      "a6.JPEG: is a FIFO", "a7.JPEG: is a directory",
                                      "skipped 6 bad file(s)"};
    for (size_t k = 0; k < sizeof why / sizeof why[0]; k++)
        ck_assert_msg(strstr(log, why[k]), "'%s' not in:\n%s", why[k], log);
    ck_assert_msg(!strstr(log, "a0.JPEG") && !strstr(log, "a8.JPEG"), "%s", log);
    free(log);
    size_t n;
    snprintf(p, sizeof p, "%s/train.index", out);
    char *idx = slurp(p, &n);
    ck_assert_ptr_nonnull(idx);
    ck_assert_msg(strstr(idx, "train-000000.tar 2 ") && strstr(idx, "train-000001.tar 1 ") &&
                      strstr(idx, "total 3\n"),
                  "%s", idx);
    free(idx);
    /* --strict: an error, and nothing of the failed run is left (no .tmp, no index, no
     * shard); the complete output of the run above stays as it was */
    char out2[700];
    snprintf(out2, sizeof out2, "%s/bo2", dir);
    ck_assert_int_eq(run_shards_log(&log, "--strict", "--no-shuffle", tree, out2, NULL), 1);
    ck_assert_msg(strstr(log, "error:") && strstr(log, "a2.JPEG: empty file"), "%s", log);
    free(log);
    const char *left[] = {"train.index", "train.index.tmp", "train-000000.tar",
                          "train-000000.tar.tmp", "classes.txt", "classes.txt.tmp"};
    for (size_t k = 0; k < sizeof left / sizeof left[0]; k++) {
        snprintf(p, sizeof p, "%s/%s", out2, left[k]);
        ck_assert_msg(access(p, F_OK) != 0, "%s left behind", p);
    }
    snprintf(p, sizeof p, "%s/train.index", out);
    char *before = slurp(p, &n);
    ck_assert_int_eq(run_shards_log(&log, "--strict", "--per-shard", "1", tree, out), 1);
    free(log);
    char *after = slurp(p, &n);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    snprintf(p, sizeof p, "%s/train-000002.tar", out);
    ck_assert_msg(access(p, F_OK) != 0, "a shard of the failed run was published");
    alarm(0);
    /* only bad files: an error, nothing written */
    snprintf(p, sizeof p, "%s/a/a0.JPEG", tree);
    unlink(p);
    snprintf(p, sizeof p, "%s/a/a1.JPEG", tree);
    unlink(p);
    snprintf(p, sizeof p, "%s/a/a8.JPEG", tree);
    unlink(p);
    snprintf(p, sizeof p, "%s/a/a6.JPEG", tree);
    unlink(p);
    snprintf(out2, sizeof out2, "%s/bo3", dir);
    ck_assert_int_eq(run_shards_log(&log, tree, out2, NULL, NULL, NULL), 1);
    ck_assert_msg(strstr(log, "none of the"), "%s", log);
    free(log);
    snprintf(p, sizeof p, "%s/train.index", out2);
    ck_assert(access(p, F_OK) != 0);
}
END_TEST

/* Load dataset_imagenet_tar.so and bind its options from "key=value" assignments. */
static const eqm_plugin *load_plugin(eqm_registry **reg, eqm_config **cfg, void **opts,
                                     const char *const *sets)
{
    /* The real discovery path: make check points EQUIMOD_PLUGIN_PATH at plugin-dir/;
     * config_bind_plugin below finds dataset/imagenet_tar in it. */
    *reg = registry_create();
    ck_assert_msg(*reg && registry_scan(*reg, NULL, 0) > 0,
                  "no plugins in EQUIMOD_PLUGIN_PATH=%s", getenv("EQUIMOD_PLUGIN_PATH"));
    *cfg = config_new_empty();
    char err[1024];
    ck_assert_int_eq(config_set(*cfg, "dataset.plugin=imagenet_tar", err, sizeof err), 0);
    for (int i = 0; sets[i]; i++)
        ck_assert_msg(config_set(*cfg, sets[i], err, sizeof err) == 0, "%s", err);
    const eqm_plugin *p = NULL;
    ck_assert_msg(config_bind_plugin(*cfg, *reg, "dataset", EQM_KIND_DATASET, &p, opts, err,
                                     sizeof err) == 0,
                  "%s", err);
    ck_assert_ptr_nonnull(p->ops.dataset.decode);
    ck_assert_str_eq(p->ops.dataset.stream_members, "jpg;cls");
    return p;
}

START_TEST(test_plugin_decode_and_source)
{
    char tree[600], out[600];
    snprintf(tree, sizeof tree, "%s/tree", dir);
    snprintf(out, sizeof out, "%s/sh", dir);
    make_tree(tree);
    ck_assert_int_eq(run_shards("--per-shard", "6", tree, out, NULL, NULL, NULL), 0);
    /* add a sample with a bad .cls to the last shard's list */
    char badtar[700], sets[4][900];
    snprintf(badtar, sizeof badtar, "%s/sh/extra.tar", dir);
    unsigned char *j;
    unsigned long jn;
    ck_assert_int_eq(su_jpeg(8, 8, SU_RGB, 1, &j, &jn), 0);
    /* and the corrupt eel/e4 (the writer refuses to pack it; a shard from elsewhere may hold
     * such a sample, and decode must skip it) */
    static const char junk[] = "\xff\xd8\xff\xe0 this is not really a JPEG";
    tar_member m[4] = {{"zz/badcls.jpg", j, jn},
                       {"zz/badcls.cls", "77\n", 3},
                       {"eel/e4.jpg", junk, sizeof junk - 1},
                       {"eel/e4.cls", "2\n", 2}};
    ck_assert_int_eq(su_write_tar(badtar, m, 4), 0);
    tjFree(j);
    snprintf(sets[0], sizeof sets[0], "dataset.train_shards=%s/sh/{train-{000000..000002},extra}.tar", dir);
    /* nested braces are refused; use a list file instead */
    char list[700];
    snprintf(list, sizeof list, "%s/sh/list.txt", dir);
    FILE *f = fopen(list, "w");
    fprintf(f, "train-000000.tar\ntrain-000001.tar\ntrain-000002.tar\nextra.tar\n");
    fclose(f);
    snprintf(sets[0], sizeof sets[0], "dataset.train_shards=@%s", list);
    snprintf(sets[1], sizeof sets[1], "dataset.train_index=%s/sh/train.index", dir);
    snprintf(sets[2], sizeof sets[2], "dataset.classes=%s/sh/classes.txt", dir);
    const char *setv[] = {sets[0], sets[1], sets[2], "dataset.shuffle_buffer=4", NULL};
    eqm_registry *reg;
    eqm_config *cfg;
    void *opts;
    const eqm_plugin *p = load_plugin(&reg, &cfg, &opts, setv);

    /* 1. plugin decode() on every raw sample: labels from the key's class folder */
    const eqm_dataset_ops *ops = &p->ops.dataset;
    eqm_host *h = host_ctx_create("dataset/imagenet_tar");
    void *self;
    ck_assert_int_eq(ops->open(host_api(), h, opts, "train", &self), EQM_OK);
    eqm_dataset_info info = {.size = sizeof info};
    ck_assert_int_eq(ops->info(self, &info), EQM_OK);
    ck_assert_int_eq(info.n_classes, 3);
    ck_assert_str_eq(info.class_names[2], "eel");
    ck_assert_ptr_nonnull(strstr(info.desc, "14 samples"));
    eqm_stream_source ss = {.size = sizeof ss};
    ck_assert_int_eq(ops->stream_source(self, &ss), EQM_OK);
    ck_assert_int_eq(ss.shuffle_buffer, 4);
    ck_assert_int_eq(ss.n_samples, 14);
    shard_stream_opts so;
    memset(&so, 0, sizeof so);
    so.pattern = ss.shards;
    so.members = ops->stream_members;
    so.world = 1;
    char err[1024];
    shard_stream *st;
    ck_assert_int_eq(shard_stream_create(&so, &st, err, sizeof err), EQM_OK);
    ck_assert_int_eq(shard_stream_start_epoch(st, 0, err, sizeof err), EQM_OK);
    uint8_t *buf = malloc(100 * 100 * 3);
    eqm_raw_sample *r;
    int ok = 0, skipped = 0;
    while (shard_stream_pop(st, &r, err, sizeof err) == EQM_OK) {
        eqm_image img = {.data = buf};
        int32_t label = -1;
        int ow = 0, oh = 0;
        int rc = ops->decode(self, r, 8, &img, 100 * 100 * 3, &label, &ow, &oh);
        if (!strcmp(r->key, "eel/e4")) {
            ck_assert_int_eq(rc, EQM_SKIP);
            ck_assert_ptr_nonnull(strstr(host_ctx_error(h), "eel/e4"));
            skipped++;
        } else if (!strcmp(r->key, "zz/badcls")) {
            ck_assert_int_eq(rc, EQM_SKIP);
            ck_assert_ptr_nonnull(strstr(host_ctx_error(h), "not a class index"));
            skipped++;
        } else {
            ck_assert_msg(rc == EQM_OK, "%s: %s", r->key, host_ctx_error(h));
            int want = r->key[0] == 'c' ? 0 : r->key[0] == 'd' ? 1 : 2;
            ck_assert_int_eq(label, want);
            int i = r->key[strlen(r->key) - 1] - '0';
            ck_assert_int_eq(ow, 40 + 8 * i);
            ck_assert_int_eq(oh, 30 + 4 * want);
            ck_assert_int_eq(img.w, ow);
            ck_assert_int_eq(img.c, 3);
            /* grayscale and CMYK come out as RGB close to the pattern */
            uint8_t *ref = su_pattern(ow, oh, want * 5 + i);
            if (!strcmp(r->key, "dog/d1")) {
                ck_assert_int_eq(buf[0], buf[1]);
            } else {
                int md = 0;
                for (int k = 0; k < ow * oh * 3; k++)
                    md = abs(buf[k] - ref[k]) > md ? abs(buf[k] - ref[k]) : md;
                ck_assert_msg(md <= 24, "%s differs by %d", r->key, md);
            }
            free(ref);
            /* DCT-scaled: 4/8 */
            rc = ops->decode(self, r, 4, &img, 100 * 100 * 3, &label, &ow, &oh);
            ck_assert_int_eq(rc, EQM_OK);
            ck_assert_int_eq(img.w, (ow + 1) / 2);
            /* too small a buffer: NOMEM with the size needed */
            rc = ops->decode(self, r, 8, &img, 10, &label, &ow, &oh);
            ck_assert_int_eq(rc, EQM_ERR_NOMEM);
            ck_assert_int_eq(img.w, ow);
            ok++;
        }
        shard_stream_release(st, r);
    }
    ck_assert_int_eq(ok, 14);
    ck_assert_int_eq(skipped, 2);
    shard_stream_destroy(st);
    ops->close(self);
    host_ctx_destroy(h);

    /* 2. the loader source adapter: the two bad samples are EQM_SKIP (counted; the loader
     * substitutes them within their batch), the rest decode */
    eqm_sample_source src;
    ck_assert_msg(shard_source_create(p, opts, "train", 11, 0, 1, &src, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_int_lt(src.n_samples, 0);
    ck_assert_int_eq(src.n_classes, 3);
    ck_assert_int_eq(src.start_epoch(src.ctx, 0), EQM_OK);
    int decoded = 0, failed = 0;
    void *raw;
    int64_t id;
    while (src.next(src.ctx, &raw, &id) == EQM_OK) {
        eqm_image img = {.data = buf};
        int32_t label;
        int rc = src.decode(src.ctx, raw, &img, 100 * 100 * 3, &label);
        if (rc == EQM_OK) {
            ck_assert(label >= 0 && label < 3);
            decoded++;
        } else {
            ck_assert_int_eq(rc, EQM_SKIP);
            const char *e = src.error(src.ctx);
            ck_assert_msg(strstr(e, "JPEG") || strstr(e, ".cls"), "%s", e);
            failed++;
        }
    }
    ck_assert_int_eq(decoded, 14); /* 14 good samples in all */
    ck_assert_int_eq(failed, 2);
    shard_stream_stats sst;
    ck_assert_int_eq(shard_source_stats(&src, &sst), EQM_OK);
    ck_assert_uint_eq(sst.bad_samples, 2);
    src.destroy(src.ctx);
    /* on_bad = fail: the first bad sample is an error */
    free(opts);
    config_destroy(cfg);
    registry_destroy(reg);
    const char *setf[] = {sets[0], sets[2], "dataset.on_bad=fail", "dataset.io=pread", NULL};
    p = load_plugin(&reg, &cfg, &opts, setf);
    ck_assert_int_eq(shard_source_create(p, opts, "train", 11, 0, 1, &src, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(src.desc, "pread"));
    ck_assert_int_eq(src.start_epoch(src.ctx, 0), EQM_OK);
    int errors = 0;
    while (src.next(src.ctx, &raw, &id) == EQM_OK) {
        eqm_image img = {.data = buf};
        int32_t label;
        if (src.decode(src.ctx, raw, &img, 100 * 100 * 3, &label) != EQM_OK) {
            ck_assert_ptr_nonnull(strstr(src.error(src.ctx), "on_bad"));
            errors++;
        }
    }
    ck_assert_int_eq(errors, 2);
    src.destroy(src.ctx);
    free(buf);
    free(opts);
    config_destroy(cfg);
    registry_destroy(reg);
}
END_TEST

/* Imagenette train subset (1,000 JPEGs, 224x224) -> shards -> source adapter. */
START_TEST(test_imagenette)
{
    const char *dd = getenv("EQUIMOD_DATA_DIR");
    char src_tgz[1200], out[700], err[1024];
    snprintf(src_tgz, sizeof src_tgz, "%s/imagenette2-224/imagenette2-224-train-sub100.tar.gz",
             dd);
    snprintf(out, sizeof out, "%s/inette", dir);
    ck_assert_int_eq(run_shards("--per-shard", "250", src_tgz, out, NULL, NULL, NULL), 0);
    char sets[3][900];
    snprintf(sets[0], sizeof sets[0], "dataset.train_shards=%s/train-{000000..000003}.tar", out);
    snprintf(sets[1], sizeof sets[1], "dataset.classes=%s/classes.txt", out);
    snprintf(sets[2], sizeof sets[2], "dataset.train_index=%s/train.index", out);
    const char *setv[] = {sets[0], sets[1], sets[2], "dataset.shuffle_buffer=200",
                          "dataset.on_bad=fail", NULL};
    eqm_registry *reg;
    eqm_config *cfg;
    void *opts;
    const eqm_plugin *p = load_plugin(&reg, &cfg, &opts, setv);
    eqm_sample_source src;
    ck_assert_msg(shard_source_create(p, opts, "train", 1, 0, 1, &src, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_int_eq(src.n_classes, 10);
    ck_assert_int_eq(src.start_epoch(src.ctx, 0), EQM_OK);
    uint8_t *buf = malloc(224 * 224 * 3);
    int n = 0, per_class[10] = {0};
    void *raw;
    int64_t id;
    while (src.next(src.ctx, &raw, &id) == EQM_OK) {
        ck_assert_int_eq(id, n);
        eqm_image img = {.data = buf};
        int32_t label = -1;
        int rc = src.decode(src.ctx, raw, &img, 224 * 224 * 3, &label);
        ck_assert_msg(rc == EQM_OK, "%s", src.error(src.ctx));
        ck_assert_int_eq(img.w, 224);
        ck_assert_int_eq(img.h, 224);
        ck_assert(label >= 0 && label < 10);
        per_class[label]++;
        n++;
    }
    ck_assert_int_eq(n, 1000);
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(per_class[c], 100);
    src.destroy(src.ctx);
    free(buf);
    free(opts);
    config_destroy(cfg);
    registry_destroy(reg);
}
END_TEST

/* The stream feeding H4's batch loader (loader_create_source) with the augmentation
 * plugins at 224 (original = resize 256 + centre crop 224): batches come out full, with
 * crop records in original pixels, and bit-identical with 1 or 2 workers. */
static void loader_batches(const char *shard_dir, int workers, float **x0, float **x1,
                           float **t1, int32_t **labels, int64_t **ids, int n_batches)
{
    char sets[3][900], err[2048];
    snprintf(sets[0], sizeof sets[0], "data.train_shards=%s/train-{000000..000003}.tar", shard_dir);
    snprintf(sets[1], sizeof sets[1], "data.classes=%s/classes.txt", shard_dir);
    snprintf(sets[2], sizeof sets[2], "loader.workers=%d", workers);
    const char *lines[] = {"data.plugin=imagenet_tar", sets[0], sets[1], sets[2],
                           "data.shuffle_buffer=100", "loader.batch_size=8",
                           "loader.t_standardize=none",
                           "augment.crop.plugin=random_resized_crop", "augment.crop.size=224",
                           "augment.flip.plugin=horizontal_flip",
                           "augment.jitter.plugin=color_jitter", "augment.gray.plugin=grayscale",
                           "augment.norm.plugin=normalize", "augment.r256.plugin=resize",
                           "augment.r256.size=256", "augment.c224.plugin=center_crop",
                           "augment.c224.size=224", "views.view1=crop flip jitter gray norm",
                           "views.view2=crop flip jitter gray norm",
                           "views.original=r256 c224 norm", NULL};
    eqm_config *cfg = config_new_empty();
    for (int i = 0; lines[i]; i++)
        ck_assert_msg(config_set(cfg, lines[i], err, sizeof err) == 0, "%s", err);
    eqm_registry *reg = registry_create();
    const char *pp = getenv("EQUIMOD_PLUGIN_PATH");
    ck_assert_ptr_nonnull(pp);
    const char *dirs[1] = {pp};
    ck_assert_int_gt(registry_scan(reg, dirs, 1), 0);
    const eqm_plugin *p;
    void *opts;
    ck_assert_msg(config_bind_plugin(cfg, reg, "data", EQM_KIND_DATASET, &p, &opts, err,
                                     sizeof err) == 0, "%s", err);
    eqm_sample_source src;
    ck_assert_msg(shard_source_create(p, opts, "train", 5, 0, 1, &src, err, sizeof err) == 0,
                  "%s", err);
    eqm_loader *ld;
    int rc = loader_create_source(&ld, cfg, reg, &src, NULL, err, sizeof err);
    if (rc)
        src.destroy(src.ctx);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(loader_start_epoch(ld, 0), EQM_OK);
    size_t xs = 8 * 224 * 224 * 3;
    for (int b = 0; b < n_batches; b++) {
        eqm_batch *bt;
        rc = loader_next(ld, &bt);
        ck_assert_msg(rc == EQM_OK, "%s", loader_error(ld));
        ck_assert_int_eq(bt->n, 8);
        ck_assert_int_eq(bt->w, 224);
        ck_assert_int_eq(bt->h, 224);
        ck_assert_int_eq(bt->p, 15);
        for (int i = 0; i < 8; i++) {
            const float *t = bt->t1 + (size_t)i * bt->p;
            /* crop record (i, j, h, w) in pixels of the 224x224 originals */
            ck_assert(t[0] >= 0 && t[1] >= 0 && t[2] >= 1 && t[3] >= 1);
            ck_assert(t[0] + t[2] <= 224 && t[1] + t[3] <= 224);
            ck_assert_int_eq(bt->sample_ids[i], (int64_t)b * 8 + i);
        }
        memcpy(x0[b], bt->x0, xs * sizeof(float));
        memcpy(x1[b], bt->x1, xs * sizeof(float));
        memcpy(t1[b], bt->t1, 8 * 15 * sizeof(float));
        memcpy(labels[b], bt->labels, 8 * sizeof(int32_t));
        memcpy(ids[b], bt->sample_ids, 8 * sizeof(int64_t));
        loader_release(ld, bt);
    }
    loader_destroy(ld);
    free(opts);
    config_destroy(cfg);
    registry_destroy(reg);
}

START_TEST(test_loader_integration)
{
    const char *dd = getenv("EQUIMOD_DATA_DIR");
    char src_tgz[1200], out[700];
    snprintf(src_tgz, sizeof src_tgz, "%s/imagenette2-224/imagenette2-224-train-sub100.tar.gz",
             dd);
    snprintf(out, sizeof out, "%s/inette", dir);
    ck_assert_int_eq(run_shards("--per-shard", "250", src_tgz, out, NULL, NULL, NULL), 0);
    enum { NB = 3 };
    size_t xs = 8 * 224 * 224 * 3;
    float *x0[2][NB], *x1[2][NB], *t1[2][NB];
    int32_t *lab[2][NB];
    int64_t *ids[2][NB];
    for (int w = 0; w < 2; w++)
        for (int b = 0; b < NB; b++) {
            x0[w][b] = malloc(xs * sizeof(float));
            x1[w][b] = malloc(xs * sizeof(float));
            t1[w][b] = malloc(8 * 15 * sizeof(float));
            lab[w][b] = malloc(8 * sizeof(int32_t));
            ids[w][b] = malloc(8 * sizeof(int64_t));
        }
    loader_batches(out, 1, x0[0], x1[0], t1[0], lab[0], ids[0], NB);
    loader_batches(out, 2, x0[1], x1[1], t1[1], lab[1], ids[1], NB);
    for (int b = 0; b < NB; b++) {
        ck_assert(!memcmp(lab[0][b], lab[1][b], 8 * sizeof(int32_t)));
        ck_assert(!memcmp(t1[0][b], t1[1][b], 8 * 15 * sizeof(float)));
        ck_assert(!memcmp(x0[0][b], x0[1][b], xs * sizeof(float)));
        ck_assert(!memcmp(x1[0][b], x1[1][b], xs * sizeof(float)));
    }
    /* labels span several classes: the shuffle mixes shards */
    int seen[10] = {0}, k = 0;
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < 8; i++)
            seen[lab[0][b][i]] = 1;
    for (int c = 0; c < 10; c++)
        k += seen[c];
    ck_assert_int_ge(k, 3);
    for (int w = 0; w < 2; w++)
        for (int b = 0; b < NB; b++) {
            free(x0[w][b]);
            free(x1[w][b]);
            free(t1[w][b]);
            free(lab[w][b]);
            free(ids[w][b]);
        }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shards_plugin");
    TCase *tc = tcase_create("writer_plugin");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_writer_imagefolder);
    tcase_add_test(tc, test_writer_flat_labels);
    tcase_add_test(tc, test_writer_bad_files);
    tcase_add_test(tc, test_plugin_decode_and_source);
    const char *dd = getenv("EQUIMOD_DATA_DIR");
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/imagenette2-224/imagenette2-224-train-sub100.tar.gz",
             dd ? dd : "");
    if (dd && access(probe, R_OK) == 0) {
        tcase_add_test(tc, test_imagenette);
        tcase_add_test(tc, test_loader_integration);
    }
    else
        fprintf(stderr, "SKIP imagenette integration: EQUIMOD_DATA_DIR unset or %s missing\n",
                probe);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
