/* tests/train/check_e2e.c: end-to-end training on real CIFAR-10 images through the
 * `equimod` program and the real plugins (tests/train/tiny.ini: ResNet-18 at width 1/16,
 * 256 images, batch 32). Skips (77) without $EQUIMOD_DATA_DIR/cifar10.
 *   - a tiny SimCLR+EquiMod run: the loss falls, the run folder is complete, eval knn and
 *     features work on it;
 *   - the plain baseline from the same config with one --set (no L_equi, 2N rows);
 *   - resume: a run stopped mid-epoch (train.max_steps) and one stopped by SIGTERM both
 *     continue to checkpoints whose params, BN buffers, optimizer state (and BYOL target)
 *     are bit-identical to an uninterrupted run's;
 *   - a run killed after its last checkpoint and resumed ends with the metrics.jsonl of an
 *     uninterrupted run (timing fields aside);
 *   - a foreign checkpoint (other config in the same folder) is refused and kept.
 * Environment: EQM_BUILDDIR (the equimod binary), EQM_SRCDIR (configs),
 * EQUIMOD_PLUGIN_PATH (when it holds no plugin, the build tree's plugins/.../.libs). */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <equimod/status.h>

#include "nn/nn_internal.h"
#include "train/checkpoint.h"

static char bin[2048], cfg_simclr[2048], cfg_byol[2048], tmpdir[256];

static const char *const common_sets[] = {"train.max_samples=256", "loader.batch_size=32",
                                          "train.epochs=2", NULL};

/* Run equimod with args (NULL-terminated) + the common --set list; returns the exit status
 * (or 128+signal). Output goes to out_path. If kill_after_steps > 0, the run gets SIGTERM
 * once its metrics file (metrics_path) holds that many step lines. */
static int run_equimod(const char *const *args, const char *out_path, int kill_after_steps,
                       const char *metrics_path)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = args[0];
    if (!strcmp(args[0], "train")) /* first, so that a test's own --set wins */
        for (int i = 0; common_sets[i]; i++) {
            argv[n++] = "--set";
            argv[n++] = common_sets[i];
        }
    for (int i = 1; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        FILE *o = freopen(out_path, "w", stdout);
        (void)o;
        dup2(fileno(stdout), 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    if (kill_after_steps > 0) {
        for (int tries = 0; tries < 6000; tries++) {
            FILE *f = fopen(metrics_path, "r");
            int steps = 0;
            char line[8192];
            while (f && fgets(line, sizeof line, f))
                steps += strstr(line, "\"kind\":\"step\"") != NULL;
            if (f)
                fclose(f);
            if (steps >= kill_after_steps) {
                kill(pid, SIGTERM);
                break;
            }
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            usleep(10000);
        }
    }
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(n + 1);
    size_t got = fread(b, 1, n, f);
    b[got] = 0;
    fclose(f);
    return b;
}

static void show_output(const char *path)
{
    char *t = slurp(path);
    fprintf(stderr, "---- %s\n%s\n----\n", path, t ? t : "(none)");
    free(t);
}

static double epoch_loss(const char *metrics, int epoch)
{
    char *t = slurp(metrics);
    ck_assert_msg(t != NULL, "no %s", metrics);
    char pat[64];
    snprintf(pat, sizeof pat, "{\"kind\":\"epoch\",\"epoch\":%d,", epoch);
    char *p = strstr(t, pat);
    ck_assert_msg(p != NULL, "epoch %d missing in %s", epoch, metrics);
    char *l = strstr(p, "\"loss\":");
    ck_assert(l);
    double v = strtod(l + 7, NULL);
    free(t);
    return v;
}

static void path(char *out, size_t n, const char *run, const char *file)
{
    snprintf(out, n, "%s/%s/%s", tmpdir, run, file);
}

/* memcmp of the learnt state of two checkpoints. */
static void same_state(const char *a, const char *b)
{
    ckpt ca, cb;
    char err[1024];
    ck_assert_msg(ckpt_read(a, 0, &ca, err, sizeof err) == EQM_OK, "%s", err);
    ck_assert_msg(ckpt_read(b, 0, &cb, err, sizeof err) == EQM_OK, "%s", err);
    const char *names[] = {"params", "optim", "target", "tensors", "config"};
    for (int i = 0; i < 5; i++) {
        const ckpt_section *x = ckpt_find(&ca, names[i]), *y = ckpt_find(&cb, names[i]);
        if (!x && !y && !strcmp(names[i], "target"))
            continue;
        ck_assert_msg(x && y, "section %s missing", names[i]);
        ck_assert_msg(x->bytes == y->bytes && !memcmp(x->data, y->data, x->bytes),
                      "section %s differs between %s and %s", names[i], a, b);
    }
    /* step and epoch equal too (the state's first two int64) */
    const ckpt_section *x = ckpt_find(&ca, "state"), *y = ckpt_find(&cb, "state");
    ck_assert(x && y && !memcmp(x->data, y->data, 3 * sizeof(int64_t)));
    ckpt_free(&ca);
    ckpt_free(&cb);
}

START_TEST(tiny_run_loss_falls)
{
    char out[1024], metrics[1024], p[1024];
    snprintf(out, sizeof out, "%s/a", tmpdir);
    path(metrics, sizeof metrics, "a", "metrics.jsonl");
    const char *args[] = {"train", cfg_simclr, "--out", out, "--set", "train.epochs=3", NULL};
    path(p, sizeof p, "a", "stdout.txt");
    char log[1024];
    snprintf(log, sizeof log, "%s/a.log", tmpdir);
    int rc = run_equimod(args, log, 0, NULL);
    if (rc)
        show_output(log);
    ck_assert_int_eq(rc, 0);
    double l0 = epoch_loss(metrics, 0), l2 = epoch_loss(metrics, 2);
    ck_assert_msg(l2 < l0 - 0.05, "loss did not fall: epoch 0 %.4f, epoch 2 %.4f", l0, l2);
    const char *files[] = {"config.ini", "report.md", "loss.svg", CKPT_LAST, CKPT_PREV};
    struct stat st;
    for (int i = 0; i < 5; i++) {
        path(p, sizeof p, "a", files[i]);
        ck_assert_msg(stat(p, &st) == 0 && st.st_size > 0, "%s missing", p);
    }
    char *m = slurp(metrics);
    ck_assert(strstr(m, "\"loss_equi\":") && strstr(m, "\"equi_gain\":") &&
              strstr(m, "\"img_s\":") && strstr(m, "\"stall_ms\":") && strstr(m, "\"lr\":"));
    free(m);
    /* eval knn on the run: prints top-1 and the test set, appends to the report */
    const char *eargs[] = {"eval", "knn", out, "--set", "eval.train_limit=500", "--set",
                           "eval.test_limit=200", "--set", "eval.knn_k=20", NULL};
    rc = run_equimod(eargs, log, 0, NULL);
    char *o = slurp(log);
    ck_assert_msg(rc == 0 && strstr(o, "top-1") && strstr(o, "200 images"), "%s", o);
    ck_assert_msg(strstr(o, "exact") || strstr(o, "first 1"), "test set not named: %s", o);
    free(o);
    path(p, sizeof p, "a", "report.md");
    char *r = slurp(p);
    ck_assert(strstr(r, "equimod eval knn") != NULL);
    free(r);
    /* features: (100, 32) float32 + int64 labels */
    char npy[1024], lab[1024];
    snprintf(npy, sizeof npy, "%s/f.npy", tmpdir);
    snprintf(lab, sizeof lab, "%s/f.labels.npy", tmpdir);
    const char *fargs[] = {"features", out, "--split", "test", "-o", npy, "--limit", "100", NULL};
    rc = run_equimod(fargs, log, 0, NULL);
    if (rc)
        show_output(log);
    ck_assert_int_eq(rc, 0);
    ck_assert(stat(npy, &st) == 0 && st.st_size == 128 + 100 * 32 * 4);
    ck_assert(stat(lab, &st) == 0 && st.st_size == 128 + 100 * 8);
}
END_TEST

START_TEST(baseline_with_one_set)
{
    char out[1024], metrics[1024], log[1024];
    snprintf(out, sizeof out, "%s/base", tmpdir);
    snprintf(log, sizeof log, "%s/base.log", tmpdir);
    path(metrics, sizeof metrics, "base", "metrics.jsonl");
    const char *args[] = {"train", cfg_simclr, "--out", out, "--set", "train.equimod=false",
                          "--set", "train.epochs=1", NULL};
    int rc = run_equimod(args, log, 0, NULL);
    if (rc)
        show_output(log);
    ck_assert_int_eq(rc, 0);
    char *m = slurp(metrics);
    ck_assert(strstr(m, "\"loss_inv\":") && strstr(m, "\"l_simclr\":"));
    ck_assert_msg(!strstr(m, "loss_equi") && !strstr(m, "equi_gain"), "baseline ran EquiMod");
    free(m);
    char *o = slurp(log);
    ck_assert_msg(strstr(o, "simclr on") != NULL, "%s", o);
    free(o);
}
END_TEST

/* set: one more --set for all three runs (NULL: none). */
static void resume_case(const char *cfg, const char *tag, int use_signal, const char *set)
{
    char a[1024], b[1024], log[1024], metrics[2048], pa[2048], pb[2048];
    snprintf(a, sizeof a, "%s/%s_full", tmpdir, tag);
    snprintf(b, sizeof b, "%s/%s_cut", tmpdir, tag);
    snprintf(log, sizeof log, "%s/%s.log", tmpdir, tag);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", b);
    const char *full[] = {"train", cfg, "--out", a, set ? "--set" : NULL, set, NULL};
    int rc = run_equimod(full, log, 0, NULL);
    if (rc)
        show_output(log);
    ck_assert_int_eq(rc, 0);
    if (use_signal) {
        const char *cut[] = {"train", cfg, "--out", b, set ? "--set" : NULL, set, NULL};
        rc = run_equimod(cut, log, 3, metrics);
        if (rc != 130)
            show_output(log);
        ck_assert_int_eq(rc, 130); /* interrupted, checkpoint saved */
    } else {
        const char *cut[] = {"train", cfg, "--out", b, "--set", "train.max_steps=5",
                             set ? "--set" : NULL, set, NULL};
        rc = run_equimod(cut, log, 0, NULL);
        ck_assert_int_eq(rc, 0);
        char *o = slurp(log);
        ck_assert_msg(strstr(o, "step 5 (epoch 0, batch 5)"), "%s", o); /* mid-epoch */
        free(o);
    }
    const char *rest[] = {"train", cfg, "--out", b, "--resume", set ? "--set" : NULL, set, NULL};
    rc = run_equimod(rest, log, 0, NULL);
    if (rc)
        show_output(log);
    ck_assert_int_eq(rc, 0);
    char *o = slurp(log);
    ck_assert_msg(strstr(o, "(resumed)") != NULL, "%s", o);
    free(o);
    snprintf(pa, sizeof pa, "%s/%s", a, CKPT_LAST);
    snprintf(pb, sizeof pb, "%s/%s", b, CKPT_LAST);
    same_state(pa, pb);
}

START_TEST(resume_mid_epoch_bit_identical) { resume_case(cfg_simclr, "simclr", 0, NULL); }
END_TEST

START_TEST(resume_after_sigterm_bit_identical_byol) { resume_case(cfg_byol, "byol", 1, NULL); }
END_TEST

/* train.precision = bf16 (issue 14): the run says so (banner, report.md, config.ini), its
 * weights differ from the fp32 run of resume_mid_epoch_bit_identical (the precision
 * reaches the ops), it resumes mid-epoch bit for bit, and resuming it at fp32 is refused
 * (the precision is part of the config hash). On a CPU without bf16 the run uses the
 * emulation (EQM_NN_BF16_NATIVE=0 set here only then), the same products. */
START_TEST(resume_bf16_bit_identical)
{
    char p[2048], q[2048], log[1024];
    if (nn_bf16_cpu() == 0)
        setenv("EQM_NN_BF16_NATIVE", "0", 1);
    resume_case(cfg_simclr, "simclr_bf16", 0, "train.precision=bf16");
    snprintf(log, sizeof log, "%s/simclr_bf16.log", tmpdir);
    char *o = slurp(log);
    ck_assert_msg(strstr(o, "precision bf16: conv and linear products on "), "%s", o);
    free(o);
    snprintf(p, sizeof p, "%s/simclr_bf16_full/report.md", tmpdir);
    o = slurp(p);
    ck_assert_msg(o && strstr(o, "- precision: bf16 products, fp32 accumulation, on "), "%s", o);
    free(o);
    snprintf(p, sizeof p, "%s/simclr_bf16_full/config.ini", tmpdir);
    o = slurp(p);
    ck_assert_msg(o && strstr(o, "precision = bf16"), "%s", o);
    free(o);
    ckpt ca, cb;
    char err[1024];
    snprintf(p, sizeof p, "%s/simclr_full/%s", tmpdir, CKPT_LAST);
    snprintf(q, sizeof q, "%s/simclr_bf16_full/%s", tmpdir, CKPT_LAST);
    ck_assert_msg(ckpt_read(p, 0, &ca, err, sizeof err) == EQM_OK,
                  "%s (the fp32 run of resume_mid_epoch_bit_identical)", err);
    ck_assert_msg(ckpt_read(q, 0, &cb, err, sizeof err) == EQM_OK, "%s", err);
    const ckpt_section *x = ckpt_find(&ca, "params"), *y = ckpt_find(&cb, "params");
    ck_assert(x && y && x->bytes == y->bytes);
    ck_assert_msg(memcmp(x->data, y->data, x->bytes), "bf16 run bit-identical to fp32");
    ckpt_free(&ca), ckpt_free(&cb);
    snprintf(p, sizeof p, "%s/simclr_bf16_cut", tmpdir);
    const char *fp32[] = {"train", cfg_simclr, "--out", p, "--resume", NULL};
    ck_assert_int_eq(run_equimod(fp32, log, 0, NULL), 1);
    o = slurp(log);
    ck_assert_msg(strstr(o, "another configuration") != NULL, "%s", o);
    free(o);
    unsetenv("EQM_NN_BF16_NATIVE");
}
END_TEST

/* metrics.jsonl without the timing fields (they differ from run to run). */
static char *strip_timing(const char *path)
{
    char *t = slurp(path);
    ck_assert_msg(t != NULL, "no %s", path);
    static const char *const timing[] = {"img_s", "stall_ms", "step_s", "epoch_s", "train_s",
                                         "process_wall_s"};
    for (size_t k = 0; k < sizeof timing / sizeof timing[0]; k++) {
        char pat[32];
        snprintf(pat, sizeof pat, ",\"%s\":", timing[k]);
        for (char *p; (p = strstr(t, pat));) {
            char *e = p + 1;
            while (*e && *e != ',' && *e != '}')
                e++;
            memmove(p, e, strlen(e) + 1);
        }
    }
    return t;
}

static void copy_file(const char *from, const char *to)
{
    char *t = slurp(from);
    struct stat st;
    ck_assert(t && !stat(from, &st));
    FILE *f = fopen(to, "w");
    ck_assert(f && fwrite(t, 1, (size_t)st.st_size, f) == (size_t)st.st_size && !fclose(f));
    free(t);
}

/* A run killed after its last checkpoint has logged steps the resume does again: on resume
 * metrics.jsonl is cut back to the checkpoint, so it ends equal to an uninterrupted run's
 * (timing fields aside), epoch means of the cut epoch included. The kill is made exact:
 * a checkpoint at step 5 is put back after the run went on to step 11. */
START_TEST(resume_after_kill_metrics_equal)
{
    char a[1024], b[1024], log[1024], last[2048], keep[2048], prev[2048], ma[2048],
        mb[2048];
    snprintf(a, sizeof a, "%s/metrics_full", tmpdir);
    snprintf(b, sizeof b, "%s/metrics_cut", tmpdir);
    snprintf(log, sizeof log, "%s/metrics.log", tmpdir);
    snprintf(last, sizeof last, "%s/%s", b, CKPT_LAST);
    snprintf(prev, sizeof prev, "%s/%s", b, CKPT_PREV);
    snprintf(keep, sizeof keep, "%s/step5", tmpdir);
    snprintf(ma, sizeof ma, "%s/metrics.jsonl", a);
    snprintf(mb, sizeof mb, "%s/metrics.jsonl", b);
    const char *full[] = {"train", cfg_simclr, "--out", a, NULL};
    ck_assert_int_eq(run_equimod(full, log, 0, NULL), 0);
    const char *cut[] = {"train", cfg_simclr, "--out", b, "--set", "train.max_steps=5", NULL};
    ck_assert_int_eq(run_equimod(cut, log, 0, NULL), 0);
    copy_file(last, keep);
    const char *more[] = {"train", cfg_simclr, "--out", b, "--resume", "--set",
                          "train.max_steps=11", NULL};
    ck_assert_int_eq(run_equimod(more, log, 0, NULL), 0);
    copy_file(keep, last); /* as if killed at step 11 with the checkpoint of step 5 */
    unlink(prev);
    char *t = slurp(mb);
    ck_assert_msg(strstr(t, "\"kind\":\"step\",\"step\":10,"), "%s", t); /* lines past 5 */
    free(t);
    const char *rest[] = {"train", cfg_simclr, "--out", b, "--resume", NULL};
    int rc = run_equimod(rest, log, 0, NULL);
    if (rc)
        show_output(log);
    ck_assert_int_eq(rc, 0);
    char *x = strip_timing(ma), *y = strip_timing(mb);
    if (strcmp(x, y))
        fprintf(stderr, "---- uninterrupted\n%s---- resumed\n%s----\n", x, y);
    ck_assert_msg(!strcmp(x, y), "metrics.jsonl of the resumed run differs (both above)");
    free(x);
    free(y);
}
END_TEST

START_TEST(foreign_checkpoint_refused)
{
    char out[1024], log[1024], p[2048];
    snprintf(out, sizeof out, "%s/foreign", tmpdir);
    snprintf(log, sizeof log, "%s/foreign.log", tmpdir);
    const char *args[] = {"train", cfg_simclr, "--out", out, "--set", "train.max_steps=2", NULL};
    ck_assert_int_eq(run_equimod(args, log, 0, NULL), 0);
    snprintf(p, sizeof p, "%s/%s", out, CKPT_LAST);
    char *before = slurp(p);
    struct stat st0, st1;
    stat(p, &st0);
    const char *other[] = {"train", cfg_simclr, "--out", out, "--set", "method.tau=0.3", NULL};
    ck_assert_int_eq(run_equimod(other, log, 0, NULL), 1);
    char *o = slurp(log);
    ck_assert_msg(strstr(o, "another configuration") != NULL, "%s", o);
    free(o);
    stat(p, &st1);
    char *after = slurp(p);
    ck_assert(st0.st_size == st1.st_size && !memcmp(before, after, st0.st_size));
    free(before), free(after);
}
END_TEST

static int has_so(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".so"))
            n++;
    closedir(d);
    return n;
}

int main(void)
{
    const char *data = getenv("EQUIMOD_DATA_DIR");
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/cifar10/cifar-10-batches-bin/data_batch_1.bin.gz", data ? data : "");
    if (!data || !*data || stat(p, &st)) {
        snprintf(p, sizeof p, "%s/cifar10/cifar-10-batches-bin/data_batch_1.bin",
                 data ? data : "");
        if (!data || !*data || stat(p, &st)) {
            printf("SKIP: no CIFAR-10 under $EQUIMOD_DATA_DIR\n");
            return 77;
        }
    }
    const char *bd = getenv("EQM_BUILDDIR"), *sd = getenv("EQM_SRCDIR");
    snprintf(bin, sizeof bin, "%s/equimod", bd ? bd : ".");
    snprintf(cfg_simclr, sizeof cfg_simclr, "%s/tests/train/tiny.ini", sd ? sd : EQM_SRCDIR);
    snprintf(cfg_byol, sizeof cfg_byol, "%s/tests/train/tiny_byol.ini", sd ? sd : EQM_SRCDIR);
    /* Plugins: the given path, else the build tree's plugin-dir/ (links to every plugin). */
    const char *pp = getenv("EQUIMOD_PLUGIN_PATH");
    if (!pp || !has_so(pp)) {
        static char dir[4096];
        snprintf(dir, sizeof dir, "%s/plugin-dir", bd ? bd : ".");
        setenv("EQUIMOD_PLUGIN_PATH", dir, 1);
    }
    setenv("EQM_LOG", "warn", 1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/eqm-e2e-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    Suite *s = suite_create("train_e2e");
    TCase *tc = tcase_create("e2e");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, tiny_run_loss_falls);
    tcase_add_test(tc, baseline_with_one_set);
    tcase_add_test(tc, resume_mid_epoch_bit_identical);
    tcase_add_test(tc, resume_after_sigterm_bit_identical_byol);
    tcase_add_test(tc, resume_bf16_bit_identical);
    tcase_add_test(tc, resume_after_kill_metrics_equal);
    tcase_add_test(tc, foreign_checkpoint_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (!nf) {
        snprintf(p, sizeof p, "rm -rf '%s'", tmpdir);
        if (system(p)) {
        }
    } else {
        fprintf(stderr, "run folders kept in %s\n", tmpdir);
    }
    return nf ? 1 : 0;
}
