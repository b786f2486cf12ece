/* tests/sweep/report_util.h: shared by check_report_html and check_report_browser: a tiny
 * 2-run sweep (tests/train/tiny.ini at 64 images, 1 epoch, equimod off/on) made through
 * the real program, then `equimod report` of it. Static functions only (one .c each). */
#ifndef EQM_TESTS_REPORT_UTIL_H
#define EQM_TESTS_REPORT_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char ru_bin[2048], ru_src[1024], ru_tmp[256], ru_sweep[512], ru_html[600];

static char *ru_slurp(const char *path)
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

/* Run argv (NULL-terminated, argv[0] a path) with stdout+stderr to out_path. */
static int ru_run(const char *const *argv, const char *out_path)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout))
            _exit(126);
        dup2(fileno(stdout), 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* 0: the sweep and its report exist; 77: no CIFAR-10 data. */
static int ru_make_report(void)
{
    const char *b = getenv("EQM_BUILDDIR"), *s = getenv("EQM_SRCDIR"),
               *d = getenv("EQUIMOD_DATA_DIR");
    char p[2300];
    struct stat st;
    snprintf(p, sizeof p, "%s/cifar10", d ? d : "");
    if (!d || stat(p, &st))
        return 77;
    snprintf(ru_bin, sizeof ru_bin, "%s/equimod", b ? b : ".");
    snprintf(ru_src, sizeof ru_src, "%s", s ? s : "..");
    snprintf(ru_tmp, sizeof ru_tmp, "/tmp/eqm-report-XXXXXX");
    if (!mkdtemp(ru_tmp))
        return 1;
    char ini[600], out[600];
    snprintf(ini, sizeof ini, "%s/r.ini", ru_tmp);
    FILE *f = fopen(ini, "w");
    if (!f)
        return 1;
    fprintf(f,
            "[sweep]\nbase = %s/tests/train/tiny.ini\nbaseline = method=simclr\n"
            "[set.train]\nmax_samples = 64\nepochs = 2\n[set.loader]\nbatch_size = 32\n"
            "[set.eval]\ntrain_limit = 128\ntest_limit = 100\n"
            "[axis.method]\nkey = train.equimod\nvalues = false, true\nnames = simclr, equimod\n",
            ru_src);
    fclose(f);
    snprintf(ru_sweep, sizeof ru_sweep, "%s/sweep", ru_tmp);
    snprintf(out, sizeof out, "%s/sweep.txt", ru_tmp);
    const char *a1[] = {ru_bin, "sweep", ini, "--out", ru_sweep, NULL};
    int rc = ru_run(a1, out);
    if (rc) {
        char *t = ru_slurp(out);
        fprintf(stderr, "sweep failed (%d):\n%s\n", rc, t ? t : "");
        free(t);
        return 1;
    }
    snprintf(ru_html, sizeof ru_html, "%s/report.html", ru_tmp);
    const char *a2[] = {ru_bin, "report", ru_sweep, "-o", ru_html, NULL};
    rc = ru_run(a2, out);
    if (rc) {
        char *t = ru_slurp(out);
        fprintf(stderr, "report failed (%d):\n%s\n", rc, t ? t : "");
        free(t);
        return 1;
    }
    return 0;
}

static void ru_cleanup(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ru_tmp);
    if (ru_tmp[0] && system(cmd)) {
    }
}

#endif
