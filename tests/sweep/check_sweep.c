/* tests/sweep/check_sweep.c: `equimod sweep` through the real program, plugins and
 * CIFAR-10 images (tests/sweep/tiny2x2.ini: tests/train/tiny.ini at 128 images x 2
 * epochs, SimCLR vs SimCLR+EquiMod x 2 seeds).
 *   - every shipped study (the .ini files of configs/ablations) expands to valid runs;
 *   - malformed sweep files (unknown key, axis key no config has, empty values, duplicate
 *     axis, missing base, ...) are refused with file:line; an invalid point fails
 *     --dry-run up front, naming the run;
 *   - the 2x2 sweep runs end to end (--jobs 2): results.csv has a done row per run,
 *     summary.md a row per point with the paired difference to the baseline; re-running
 *     skips every run; --collect rebuilds the same tables; a folder made from another
 *     plan is refused and left as it was;
 *   - the same sweep stopped with SIGINT (exit 130, trainings stopped at a checkpoint),
 *     then killed with SIGKILL mid-run, then run again ends with the same
 *     results.csv metrics as the uninterrupted one;
 *   - a point that fails only at run time is recorded (status, exit code, last log line)
 *     while the other runs finish.
 * The training tests skip (77) without $EQUIMOD_DATA_DIR/cifar10. */
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

static char bin[2048], srcdir[1024], tmpdir[256];
static int have_data;

static void setup(void)
{
    const char *b = getenv("EQM_BUILDDIR"), *s = getenv("EQM_SRCDIR");
    snprintf(bin, sizeof bin, "%s/equimod", b ? b : ".");
    snprintf(srcdir, sizeof srcdir, "%s", s ? s : "..");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/eqm-sweep-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    ck_assert_int_eq(chdir(tmpdir), 0); /* the default sweep folder would land here */
    const char *d = getenv("EQUIMOD_DATA_DIR");
    char p[2300];
    struct stat st;
    snprintf(p, sizeof p, "%s/cifar10", d ? d : "");
    have_data = d && !stat(p, &st);
}

static void teardown(void)
{
    char cmd[400];
    if (chdir("/")) {
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) {
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

/* Start `equimod ARGS...` with stdout+stderr to out_path; returns the pid. */
static pid_t start(const char *const *args, const char *out_path)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout))
            _exit(126);
        dup2(fileno(stdout), 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int finish(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(const char *const *args, char **out)
{
    char path[400];
    snprintf(path, sizeof path, "%s/out.txt", tmpdir);
    int rc = finish(start(args, path));
    *out = slurp(path);
    ck_assert_ptr_nonnull(*out);
    return rc;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* ------------------------------------------------------------ malformed --------- */

/* A sweep file whose line `line` is wrong: the error names FILE:line and contains want. */
static void refused(const char *text, int line, const char *want)
{
    char path[400], where[500], *out;
    snprintf(path, sizeof path, "%s/bad.ini", tmpdir);
    char body[4096];
    snprintf(body, sizeof body, text, srcdir);
    write_file(path, body);
    const char *args[] = {"sweep", path, "--dry-run", NULL};
    int rc = run(args, &out);
    snprintf(where, sizeof where, "%s:%d:", path, line);
    ck_assert_msg(rc == 1, "exit %d for\n%s\noutput:\n%s", rc, body, out);
    ck_assert_msg(strstr(out, where), "no '%s' in\n%s", where, out);
    ck_assert_msg(strstr(out, want), "no '%s' in\n%s", want, out);
    free(out);
}

START_TEST(test_malformed)
{
    /* unknown key (did you mean) */
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.seed]\nkey = run.seed\n"
            "vales = 1, 2\n",
            5, "did you mean 'values'");
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\nbaseline_x = 1\n[axis.seed]\n"
            "key = run.seed\nvalues = 1\n",
            3, "unknown key");
    /* axis key that no config has */
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.eq]\nkey = train.equimd\n"
            "values = false, true\n",
            4, "did you mean 'train.equimod'");
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.eq]\nkey = nosuch.key\n"
            "values = 1\n",
            4, "not a key of the base config");
    /* empty values */
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.seed]\nkey = run.seed\nvalues =\n",
            5, "no values");
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.seed]\nkey = run.seed\n"
            "values = 1,, 2\n",
            5, "empty value");
    /* duplicate axis: the same section twice, or two axes on one key */
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.seed]\nkey = run.seed\n"
            "values = 1\n[axis.seed]\nkey = run.seed\nvalues = 2\n",
            6, "duplicate axis (first at line 3)");
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.seed]\nkey = run.seed\n"
            "values = 1\n[axis.s2]\nkey = run.seed\nvalues = 2\n",
            7, "already the key of [axis.seed]");
    /* missing base: no key, no [sweep] at all, a base that does not exist */
    refused("[sweep]\nbaseline = seed=1\n[axis.seed]\nkey = run.seed\nvalues = 1\n", 1,
            "no 'base' key");
    refused("# %s\n[axis.seed]\nkey = run.seed\nvalues = 1\n", 1, "no [sweep] section");
    refused("[sweep]\nbase = %s/tests/train/no-such.ini\n[axis.seed]\nkey = run.seed\n"
            "values = 1\n",
            2, "cannot open");
    /* unknown section, names count, baseline that is no point */
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axsi.seed]\nkey = run.seed\n", 3,
            "did you mean 'axis.seed'");
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.eq]\nkey = train.equimod\n"
            "values = false, true\nnames = a\n",
            6, "1 names for 2 values");
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\nbaseline = eq=fals\n[axis.eq]\n"
            "key = train.equimod\nvalues = false, true\n",
            3, "did you mean 'eq=false'");
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[set.trian]\nepochs = 1\n[axis.seed]\n"
            "key = run.seed\nvalues = 1\n",
            3, "did you mean 'set.train'");
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[set.train]\nepoch = 1\n[axis.seed]\n"
            "key = run.seed\nvalues = 1\n",
            4, "did you mean 'epochs'");
    /* a byte that is not UTF-8 (fuzz_sweep's finding: sweep.json got another value) */
    refused("[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.seed]\nkey = run.seed\n"
            "values = 1, \xb2\n",
            5, "byte 0xb2 at column 13 is not UTF-8 text");
}
END_TEST

/* One point's config is invalid: --dry-run fails before anything runs, naming it. */
START_TEST(test_dry_run_validates)
{
    char path[400], body[4096], *out;
    snprintf(path, sizeof path, "%s/lr.ini", tmpdir);
    snprintf(body, sizeof body,
             "[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.lr]\nkey = optim.lr\n"
             "values = 0.5, -1\n[axis.seed]\nkey = run.seed\nvalues = 1, 2\n",
             srcdir);
    write_file(path, body);
    const char *args[] = {"sweep", path, "--dry-run", NULL};
    int rc = run(args, &out);
    ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "run 'lr=-1,seed=1'") && strstr(out, "optim.lr"), "%s", out);
    free(out);
    /* the valid points print with their --set lists */
    snprintf(body, sizeof body,
             "[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.lr]\nkey = optim.lr\n"
             "values = 0.5, 2\n[axis.seed]\nkey = run.seed\nvalues = 1, 2\n",
             srcdir);
    write_file(path, body);
    rc = run(args, &out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "lr=2,seed=1 --set optim.lr=2 --set run.seed=1"), "%s", out);
    ck_assert_msg(strstr(out, "# 4 runs"), "%s", out);
    free(out);
    struct stat st;
    char sweeps[512];
    snprintf(sweeps, sizeof sweeps, "%s/sweeps", tmpdir);
    ck_assert_msg(stat(sweeps, &st) != 0, "--dry-run created a folder");
}
END_TEST

/* [equimod] t_fields, a host key the base config leaves out, is a key an axis may name;
 * a name no view has fails --dry-run, naming the point and the closest name (what train
 * refuses, the plan refuses up front). */
START_TEST(test_t_fields_axis)
{
    char path[400], body[4096], *out;
    snprintf(path, sizeof path, "%s/tf.ini", tmpdir);
    const char *args[] = {"sweep", path, "--dry-run", NULL};
    for (int bad = 0; bad < 2; bad++) {
        snprintf(body, sizeof body,
                 "[sweep]\nbase = %s/tests/train/tiny.ini\n[axis.t]\nkey = equimod.t_fields\n"
                 "values = all, %s, jitter gray\nnames = all, crop, colour\n",
                 srcdir, bad ? "crp" : "crop");
        write_file(path, body);
        int rc = run(args, &out);
        if (bad)
            ck_assert_msg(rc == 1 && strstr(out, "run 't=crop' (run 2 of 3) is invalid") &&
                              strstr(out, "did you mean 'crop'?"),
                          "exit %d:\n%s", rc, out);
        else
            ck_assert_msg(rc == 0 && strstr(out, "t=colour --set equimod.t_fields=jitter gray"),
                          "exit %d:\n%s", rc, out);
        free(out);
    }
}
END_TEST

/* Every shipped study (the .ini files of configs/ablations) is a valid plan. */
START_TEST(test_shipped_studies)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/configs/ablations", srcdir);
    DIR *dir = opendir(d);
    ck_assert_ptr_nonnull(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(dir))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".ini"))
            continue;
        char path[1500], *out;
        snprintf(path, sizeof path, "%s/%s", d, e->d_name);
        const char *args[] = {"sweep", path, "--dry-run", NULL};
        int rc = run(args, &out);
        ck_assert_msg(rc == 0 && strstr(out, "every run's config is valid"), "%s: exit %d\n%s",
                      path, rc, out);
        free(out);
        n++;
    }
    closedir(dir);
    ck_assert_int_ge(n, 4);
}
END_TEST

/* ------------------------------------------------------------ end to end -------- */

/* results.csv without the columns that measure time (wall_s, img_s). */
static char *metrics_of(const char *csv_path)
{
    char *s = slurp(csv_path);
    ck_assert_ptr_nonnull(s);
    char *out = calloc(strlen(s) + 1, 1);
    int drop[64] = {0}, col = 0, header = 1;
    char field[4096];
    size_t fl = 0, ol = 0;
    int quoted = 0;
    for (char *p = s;; p++) {
        if (*p == '"') {
            quoted = !quoted;
        } else if ((*p == ',' && !quoted) || *p == '\n' || !*p) {
            field[fl] = 0;
            if (header && col < 64)
                drop[col] = !strcmp(field, "wall_s") || !strcmp(field, "img_s");
            if (col >= 64 || !drop[col])
                ol += (size_t)sprintf(out + ol, "%s%s", field, *p == ',' ? "|" : "");
            fl = 0;
            col++;
            if (*p != ',') {
                if (*p == '\n')
                    out[ol++] = '\n';
                header = 0;
                col = 0;
            }
            if (!*p)
                break;
            continue;
        }
        if (fl < sizeof field - 1)
            field[fl++] = *p;
    }
    free(s);
    return out;
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

START_TEST(test_sweep_e2e)
{
    if (!have_data)
        return;
    char ini[2300], dir[400], dir2[400], path[600], *out;
    snprintf(ini, sizeof ini, "%s/tests/sweep/tiny2x2.ini", srcdir);
    snprintf(dir, sizeof dir, "%s/s1", tmpdir);
    const char *args[] = {"sweep", ini, "--jobs", "2", "--out", dir, NULL};
    int rc = run(args, &out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "started method=simclr,seed=1") &&
                      strstr(out, "finished method=equimod,seed=2") &&
                      strstr(out, "4/4 runs finished"),
                  "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv = slurp(path);
    ck_assert_ptr_nonnull(csv);
    ck_assert_msg(count_lines(csv, ",done,0,") == 4, "%s", csv);
    ck_assert_msg(strstr(csv, "\"method=equimod,seed=2\",equimod,2,done,0,"), "%s", csv);
    ck_assert_msg(strstr(csv, "exact first 1,000 of the official test set"), "%s", csv);
    snprintf(path, sizeof path, "%s/summary.md", dir);
    char *md = slurp(path);
    ck_assert_ptr_nonnull(md);
    ck_assert_msg(strstr(md, "| method=simclr (baseline) | 2 |") &&
                      strstr(md, "| method=equimod | 2 |") && strstr(md, "(2) |"),
                  "%s", md);
    /* the run folders are normal run folders */
    snprintf(path, sizeof path, "%s/method=equimod,seed=1/checkpoint.last", dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    /* again: every run is skipped */
    rc = run(args, &out);
    ck_assert_msg(rc == 0 && strstr(out, "4 finished before, 0 to run") && !strstr(out, "started"),
                  "exit %d:\n%s", rc, out);
    free(out);
    /* --collect rebuilds the same tables */
    snprintf(path, sizeof path, "%s/results.csv", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/summary.md", dir);
    unlink(path);
    const char *col[] = {"sweep", ini, "--collect", "--out", dir, NULL};
    rc = run(col, &out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv2 = slurp(path);
    snprintf(path, sizeof path, "%s/summary.md", dir);
    char *md2 = slurp(path);
    ck_assert_ptr_nonnull(csv2);
    ck_assert_ptr_nonnull(md2);
    ck_assert_str_eq(csv, csv2);
    ck_assert_str_eq(md, md2);
    free(csv2), free(md2);
    const char *col_dir[] = {"sweep", dir, "--collect", NULL};
    rc = run(col_dir, &out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    csv2 = slurp(path);
    ck_assert_str_eq(csv, csv2);
    free(csv2);
    /* another plan into the same folder is refused, the folder left as it was */
    snprintf(path, sizeof path, "%s/sweep.json", dir);
    char *plan = slurp(path);
    char other[600], *body = slurp(ini);
    snprintf(other, sizeof other, "%s/other.ini", tmpdir);
    char *v = strstr(body, "values = 1, 2");
    ck_assert_ptr_nonnull(v);
    v[12] = '3';
    char *b = strstr(body, "base = ../train/tiny.ini");
    ck_assert_ptr_nonnull(b);
    char fixed[8192];
    snprintf(fixed, sizeof fixed, "%.*sbase = %s/tests/train/tiny.ini%s", (int)(b - body), body,
             srcdir, b + strlen("base = ../train/tiny.ini"));
    write_file(other, fixed);
    free(body);
    const char *args2[] = {"sweep", other, "--out", dir, NULL};
    rc = run(args2, &out);
    ck_assert_msg(rc == 1 && strstr(out, "made from another plan"), "exit %d:\n%s", rc, out);
    free(out);
    char *plan2 = slurp(path);
    ck_assert_str_eq(plan, plan2);
    free(plan), free(plan2);

    /* stopped with SIGINT (forwarded: checkpoints saved, exit 130), then killed with
     * SIGKILL mid-run, then run again: the same metrics as the uninterrupted sweep */
    snprintf(dir2, sizeof dir2, "%s/s2", tmpdir);
    const char *args3[] = {"sweep", ini, "--jobs", "2", "--out", dir2, NULL};
    snprintf(path, sizeof path, "%s/out-kill.txt", tmpdir);
    char metrics[700];
    snprintf(metrics, sizeof metrics, "%s/method=simclr,seed=2/metrics.jsonl", dir2);
    for (int round = 0; round < 2; round++) {
        char *m0 = slurp(metrics);
        int base = m0 ? count_lines(m0, "\"kind\":\"step\"") : 0;
        free(m0);
        pid_t pid = start(args3, path);
        int sent = 0;
        for (int tries = 0; tries < 6000 && !sent; tries++) {
            char *m = slurp(metrics);
            if (m && count_lines(m, "\"kind\":\"step\"") >= base + 2) {
                kill(pid, round ? SIGKILL : SIGINT);
                sent = 1;
            }
            free(m);
            if (!sent) {
                int st2;
                ck_assert_msg(waitpid(pid, &st2, WNOHANG) == 0, "the sweep ended before the signal");
                usleep(20000);
            }
        }
        ck_assert(sent);
        rc = finish(pid);
        out = slurp(path);
        if (round == 0)
            ck_assert_msg(rc == 130 && strstr(out, "stopped method=simclr,seed=2 (checkpoint saved"),
                          "exit %d:\n%s", rc, out);
        else
            ck_assert_msg(rc == 128 + SIGKILL, "exit %d:\n%s", rc, out);
        free(out);
    }
    rc = run(args3, &out);
    ck_assert_msg(rc == 0 && strstr(out, "resuming from its checkpoint"), "exit %d:\n%s", rc,
                  out);
    free(out);
    char p1[700], p2[700];
    snprintf(p1, sizeof p1, "%s/results.csv", dir);
    snprintf(p2, sizeof p2, "%s/results.csv", dir2);
    char *m1 = metrics_of(p1), *m2 = metrics_of(p2);
    ck_assert_str_eq(m1, m2);
    free(m1), free(m2);
    free(csv), free(md);
}
END_TEST

START_TEST(test_runtime_failure)
{
    if (!have_data)
        return;
    char ini[600], body[4096], dir[400], path[600], *out;
    snprintf(ini, sizeof ini, "%s/fail.ini", tmpdir);
    /* batch 1024 over 128 images: valid config, no batch at run time */
    snprintf(body, sizeof body,
             "[sweep]\nbase = %s/tests/train/tiny.ini\n[set.train]\nmax_samples = 128\n"
             "epochs = 1\n[set.eval]\ntrain_limit = 256\ntest_limit = 200\n"
             "[axis.batch]\nkey = loader.batch_size\nvalues = 1024, 32\n",
             srcdir);
    write_file(ini, body);
    snprintf(dir, sizeof dir, "%s/f", tmpdir);
    const char *args[] = {"sweep", ini, "--out", dir, NULL};
    int rc = run(args, &out);
    ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "FAILED batch=1024 (exit 1)") && strstr(out, "0 batches per epoch") &&
                      strstr(out, "finished batch=32"),
                  "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv = slurp(path);
    ck_assert_msg(strstr(csv, "\nbatch=1024,1024,failed,1,") && strstr(csv, "\nbatch=32,32,done,0,"),
                  "%s", csv);
    free(csv);
    snprintf(path, sizeof path, "%s/summary.md", dir);
    char *md = slurp(path);
    ck_assert_msg(strstr(md, "## Failed runs") && strstr(md, "- `batch=1024`: exit 1: ") &&
                      strstr(md, "| batch=32 | 1 |"),
                  "%s", md);
    free(md);
}
END_TEST

/* --jobs 2 with a linear evaluation: the runs that are still training must not be started
 * a second time (they were, when a slot went back to a finished run for a separate linear
 * evaluation: a second `train --resume` into the folder of a run still training, seen in
 * study (1)). Run a (1 epoch) ends and its slot must go to c, not to b (8 epochs, still
 * training). The probe now runs inside each training (eval.linear_at_end): one attempt. */
START_TEST(test_jobs_never_start_a_running_run)
{
    if (!have_data)
        return;
    char ini[600], body[4096], dir[400], path[600], *out;
    snprintf(ini, sizeof ini, "%s/jobs.ini", tmpdir);
    snprintf(body, sizeof body,
             "[sweep]\nbase = %s/tests/train/tiny.ini\nlinear = fast\n[set.train]\n"
             "max_samples = 128\n[set.loader]\nbatch_size = 32\n[set.eval]\n"
             "train_limit = 256\ntest_limit = 200\nlinear_epochs = 2\n"
             "[axis.ep]\nkey = train.epochs\nvalues = 1, 8, 1\nnames = a, b, c\n",
             srcdir);
    write_file(ini, body);
    snprintf(dir, sizeof dir, "%s/j", tmpdir);
    const char *args[] = {"sweep", ini, "--jobs", "2", "--out", dir, NULL};
    int rc = run(args, &out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    int starts_b = 0;
    for (const char *q = out; (q = strstr(q, "started ep=b")); q++)
        starts_b += strncmp(q + strlen("started ep=b"), " (linear", 8) != 0;
    ck_assert_msg(starts_b == 1, "run b was started %d times for training:\n%s", starts_b, out);
    free(out);
    snprintf(path, sizeof path, "%s/ep=b/sweep-status.json", dir);
    char *st = slurp(path);
    ck_assert_ptr_nonnull(st);
    ck_assert_msg(strstr(st, "\"attempts\": 1") && strstr(st, "\"status\": \"done\""),
                  "b: one attempt (training with its linear probe) expected:\n%s", st);
    free(st);
}
END_TEST

/* [sweep] linear: the run evaluates itself at its end (eval.linear_at_end): metrics.jsonl
 * gets the linear record and the end record (with the test sets), the run folder its
 * machine.json, results.csv the linear top-1, images per step, threads and CPU, the run's
 * report page its machine table; a second sweep skips the finished run. A run folder
 * written before these outputs existed (no machine.json, no end/linear records, the probe
 * in eval-linear.log) still collects. */
START_TEST(test_linear_at_end)
{
    if (!have_data)
        return;
    char ini[600], body[4096], dir[400], path[800], *out;
    snprintf(ini, sizeof ini, "%s/lin.ini", tmpdir);
    snprintf(body, sizeof body,
             "[sweep]\nbase = %s/tests/train/tiny.ini\nlinear = fast\n[set.train]\n"
             "max_samples = 128\nepochs = 1\n[set.eval]\ntrain_limit = 256\ntest_limit = 200\n"
             "linear_epochs = 3\n[axis.seed]\nkey = run.seed\nvalues = 1\n",
             srcdir);
    write_file(ini, body);
    snprintf(dir, sizeof dir, "%s/lin", tmpdir);
    const char *args[] = {"sweep", ini, "--out", dir, NULL};
    int rc = run(args, &out);
    ck_assert_msg(rc == 0 && strstr(out, "1/1 runs finished"), "exit %d:\n%s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/seed=1/metrics.jsonl", dir);
    char *m = slurp(path);
    ck_assert_ptr_nonnull(m);
    ck_assert_msg(strstr(m, "\"what\":\"final\"") &&
                      strstr(m, "\"test_set\":\"cifar10 test: exact first 1,000") &&
                      strstr(m, "{\"kind\":\"linear\",\"mode\":\"fast\"") &&
                      strstr(m, "{\"kind\":\"end\",") && strstr(m, "\"images_per_step\":64,") &&
                      strstr(m, "\"linear_test_set\":\"cifar10 test: exact first 1,000"),
                  "%s", m);
    /* the same probe as `equimod eval linear RUN --fast` gives (same model, seed, threads) */
    const char *lin_top1 = strstr(strstr(m, "{\"kind\":\"linear\","), "\"top1\":") + 7;
    char want[64];
    snprintf(want, sizeof want, "top-1 %.2f%%", atof(lin_top1));
    snprintf(path, sizeof path, "%s/seed=1", dir);
    const char *ev[] = {"eval", "linear", path, "--fast", NULL};
    rc = run(ev, &out);
    ck_assert_msg(rc == 0 && strstr(out, want), "exit %d, want '%s':\n%s", rc, want, out);
    free(out);
    free(m);
    snprintf(path, sizeof path, "%s/seed=1/machine.json", dir);
    char *mj = slurp(path);
    ck_assert_msg(mj && strstr(mj, "\"cpu_model\"") && strstr(mj, "\"openblas\"") &&
                      strstr(mj, "\"equimod_version\""),
                  "%s", mj ? mj : "(no machine.json)");
    free(mj);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv = slurp(path);
    ck_assert_ptr_nonnull(csv);
    /* ...,linear_top1,... and the last columns: test_set,images_per_step,threads,cpu */
    ck_assert_msg(strstr(csv, ",test_set,images_per_step,threads,cpu\n") &&
                      strstr(csv, ")\",64,"),
                  "%s", csv);
    char *row = strstr(csv, "\nseed=1,1,done,0,");
    ck_assert_msg(row, "%s", csv);
    char *f = row + strlen("\nseed=1,1,done,0,");
    for (int k = 0; k < 3; k++) /* knn_top1, knn_top5, knn_n_test */
        f = strchr(f, ',') + 1;
    ck_assert_msg(*f != ',' && atof(f) >= 0, "no linear_top1 in: %s", row);
    free(csv);
    rc = run(args, &out);
    ck_assert_msg(rc == 0 && strstr(out, "1 finished before, 0 to run"), "exit %d:\n%s", rc, out);
    free(out);
    /* the run's page */
    char html[600];
    snprintf(html, sizeof html, "%s/run.html", tmpdir);
    snprintf(path, sizeof path, "%s/seed=1", dir);
    const char *rep[] = {"report", path, "-o", html, NULL};
    rc = run(rep, &out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    free(out);
    char *h = slurp(html);
    ck_assert_msg(h && strstr(h, "<table id=\"machine\">") && strstr(h, "images per step"),
                  "%s", h ? h : "(no page)");
    free(h);
    /* as an older equimod left it: no machine.json, no end/linear records, eval-linear.log */
    snprintf(path, sizeof path, "%s/seed=1/machine.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/seed=1/metrics.jsonl", dir);
    m = slurp(path);
    FILE *o = fopen(path, "w");
    for (char *line = strtok(m, "\n"); line; line = strtok(NULL, "\n"))
        if (!strstr(line, "\"kind\":\"end\"") && !strstr(line, "\"kind\":\"linear\""))
            fprintf(o, "%s\n", line);
    fclose(o);
    free(m);
    snprintf(path, sizeof path, "%s/seed=1/eval-linear.log", dir);
    write_file(path, "linear probe, fast mode (...): top-1 12.50%  top-5 50.00%\n");
    const char *col[] = {"sweep", dir, "--collect", NULL};
    rc = run(col, &out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    csv = slurp(path);
    ck_assert_msg(strstr(csv, ",12.5000,") && strstr(csv, ")\",,,\n"), "%s", csv);
    free(csv);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_dry_run_validates);
    tcase_add_test(tc, test_shipped_studies);
    tcase_add_test(tc, test_t_fields_axis);
    tcase_add_test(tc, test_sweep_e2e);
    tcase_add_test(tc, test_runtime_failure);
    tcase_add_test(tc, test_jobs_never_start_a_running_run);
    suite_add_tcase(s, tc);
    /* a case of its own: CK_RUN_CASE=linear_at_end runs it alone */
    TCase *tl = tcase_create("linear_at_end");
    tcase_add_checked_fixture(tl, setup, teardown);
    tcase_set_timeout(tl, 600);
    tcase_add_test(tl, test_linear_at_end);
    suite_add_tcase(s, tl);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    const char *d = getenv("EQUIMOD_DATA_DIR");
    struct stat st;
    char p[2300];
    snprintf(p, sizeof p, "%s/cifar10", d ? d : "");
    if (!failed && (!d || stat(p, &st)))
        return 77; /* the training tests did not run */
    return failed ? 1 : 0;
}
