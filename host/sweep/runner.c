/* host/sweep/runner.c: runs a sweep's trainings as child processes of the same equimod
 * binary (sweep.h).
 *
 * Each run is `equimod train BASE --out DIR/RUN --set ...` (with --resume when the run
 * folder holds a checkpoint), its stdout/stderr appended to RUN/train.log; [sweep] knn and
 * linear become --set eval.knn_at_end=true and eval.linear_at_end=fast|full: the run
 * evaluates itself at its end (a run trained without them is started again: it finds
 * itself complete and only evaluates). (Sweep folders of an older equimod hold the probe in
 * RUN/eval-linear.log, from a separate `equimod eval linear`: still read.) When
 * a child ends the runner writes RUN/sweep-status.json: status (done | failed |
 * interrupted), exit code or signal, wall time summed over attempts, attempts, the last
 * log lines. A run is finished when that file says done and the evaluations the sweep
 * asks for are in the folder; anything else is started again (a checkpoint: resumed).
 *
 * Cores: --jobs N runs N children at once, each with train.threads = loader.workers =
 * cores / N (cores: this process's CPU affinity), so N children never ask for more
 * threads than there are cores (an axis that sets those keys wins).
 * Signals: SIGINT/SIGTERM to the sweep are forwarded (SIGTERM) to every running child,
 * which saves a checkpoint and exits 130; no new run starts; the sweep exits 130. Each
 * child runs in its own process group (a terminal's Ctrl-C reaches the sweep only, which
 * forwards it once) with PR_SET_PDEATHSIG = SIGTERM: if the sweep itself is killed, its
 * children still stop at a checkpoint. DIR/sweep.lock (flock) is held by the sweep and
 * inherited by its children: a second sweep on the same folder waits up to 60 s for
 * them to end, then refuses.
 * Deliberately left out: running children on other machines, retry limits (a failed run
 * is tried again each time the sweep is run again).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core.h"
#include "fsutil.h"
#include "sweep/sweep.h"

static volatile sig_atomic_t sweep_signal;
static void on_signal(int sig) { sweep_signal = sig; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int file_exists(const char *dir, const char *name)
{
    char p[4400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return !stat(p, &st);
}

/* The last n non-empty lines of a file (joined with '\n' into buf). */
static void log_tail(const char *path, int n, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char ring[8][512];
    int k = 0;
    char line[512];
    if (n > 8)
        n = 8;
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = 0;
        /* progress lines redrawn with \r: keep the last part */
        char *cr = strrchr(line, '\r');
        const char *s = cr ? cr + 1 : line;
        if (!*s)
            continue;
        snprintf(ring[k % 8], sizeof ring[0], "%s", s);
        k++;
    }
    fclose(f);
    int first = k > n ? k - n : 0;
    size_t off = 0;
    for (int i = first; i < k && off < cap; i++) {
        int w = snprintf(buf + off, cap - off, "%s%s", i > first ? "\n" : "", ring[i % 8]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

typedef struct run_state {
    int todo;
    int attempts;
    double wall_prev;
    int done_training; /* status says done: only the evaluations are missing */
} run_state;

static void read_state(const char *run_dir, run_state *s)
{
    memset(s, 0, sizeof *s);
    char p[4400];
    snprintf(p, sizeof p, "%s/sweep-status.json", run_dir);
    json_t *j = json_load_file(p, 0, NULL);
    if (!j)
        return;
    s->attempts = (int)json_integer_value(json_object_get(j, "attempts"));
    s->wall_prev = json_number_value(json_object_get(j, "wall_s"));
    const char *st = json_string_value(json_object_get(j, "status"));
    s->done_training = (st && !strcmp(st, "done")) || json_is_true(json_object_get(j, "trained"));
    json_decref(j);
}

static int write_state(const char *run_dir, const char *status, int code, int sig,
                       double wall, int attempts, const char *tail, int trained)
{
    char p[4400], tmp[4500];
    snprintf(p, sizeof p, "%s/sweep-status.json", run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    json_t *lines = json_array();
    char *copy = strdup(tail ? tail : "");
    for (char *s = copy ? strtok(copy, "\n") : NULL; s; s = strtok(NULL, "\n"))
        json_array_append_new(lines, json_string(s));
    free(copy);
    json_t *j = json_pack("{s:s, s:b, s:i, s:i, s:f, s:i, s:o}", "status", status, "trained",
                          trained, "exit", code, "signal", sig, "wall_s", wall, "attempts",
                          attempts, "log_tail", lines);
    int bad = !j || json_dump_file(j, tmp, JSON_INDENT(2)) || rename(tmp, p);
    json_decref(j);
    return bad ? -1 : 0;
}

/* Is the final kNN of this run in its metrics? */
static int has_final_knn(const char *run_dir)
{
    char p[4400], line[8192];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(p, "r");
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "\"kind\":\"knn\"") && strstr(line, "\"what\":\"final\""))
            found = 1;
    if (f)
        fclose(f);
    return found;
}

/* Is the linear probe's result in the run folder: a {"kind":"linear"} record of the
 * training (eval.linear_at_end), or eval-linear.log of an older sweep? */
static int linear_done(const char *run_dir)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/eval-linear.log", run_dir);
    FILE *f = fopen(p, "r");
    char line[8192];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "linear probe") && strstr(line, "top-1"))
            found = 1;
    if (f)
        fclose(f);
    snprintf(p, sizeof p, "%s/metrics.jsonl", run_dir);
    f = found ? NULL : fopen(p, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "{\"kind\":\"linear\",", 17))
            found = 1;
    if (f)
        fclose(f);
    return found;
}

typedef struct slot {
    pid_t pid;
    int run;      /* -1: free */
    double t0;
    int signalled;
} slot;

/* fork/exec one child with stdout+stderr appended to log_path. */
static pid_t spawn(const char *const *argv, const char *log_path, pid_t parent)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    FILE *hdr = fdopen(dup(fd), "a");
    if (hdr) {
        time_t t = time(NULL);
        char ts[64];
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", localtime(&t));
        fprintf(hdr, "=== equimod sweep %s:", ts);
        for (int i = 1; argv[i]; i++)
            fprintf(hdr, " %s", argv[i]);
        fprintf(hdr, "\n");
        fclose(hdr);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(130);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        dprintf(2, "equimod sweep: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    return pid;
}

static int cpu_count(void)
{
    cpu_set_t set;
    if (!sched_getaffinity(0, sizeof set, &set)) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void fmt_dur(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "--");
        return;
    }
    long t = lround(s);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

typedef struct progress {
    int tty, total, done, failed, running, jobs;
    double t0, run_time_sum;
    int finished_here;
    int bar_shown;
    const slot *slots;
} progress;

static int in_slot(const slot *slots, int jobs, int run)
{
    for (int i = 0; i < jobs; i++)
        if (slots[i].run == run)
            return 1;
    return 0;
}

static double eta(const progress *pg, int pending)
{
    if (!pg->finished_here)
        return NAN;
    double avg = pg->run_time_sum / pg->finished_here, left = pending * avg, now = now_s();
    for (int i = 0; i < pg->jobs; i++)
        if (pg->slots[i].run >= 0)
            left += fmax(0, avg - (now - pg->slots[i].t0));
    return left / pg->jobs;
}

static void bar(progress *pg, int pending, int final)
{
    char e[32];
    fmt_dur(eta(pg, pending), e, sizeof e);
    int w = 30, fill = pg->total ? (pg->done + pg->failed) * w / pg->total : w;
    char b[64];
    for (int i = 0; i < w; i++)
        b[i] = i < fill ? '#' : '-';
    b[w] = 0;
    fprintf(stderr, "%ssweep: [%s] %d/%d runs finished%s%.0d%s, %d running, ETA %s%s",
            pg->tty ? "\r\033[K" : "", b, pg->done + pg->failed, pg->total,
            pg->failed ? ", " : "", pg->failed, pg->failed ? " failed" : "", pg->running, e,
            pg->tty && !final ? "" : "\n");
    pg->bar_shown = pg->tty && !final;
}

static void say(progress *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(progress *pg, const char *fmt, ...)
{
    if (pg->bar_shown)
        fputs("\r\033[K", stderr);
    pg->bar_shown = 0;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static int take_lock(const char *dir)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/sweep.lock", dir);
    int fd = open(p, O_RDWR | O_CREAT, 0644); /* no O_CLOEXEC: children keep it */
    if (fd < 0) {
        fprintf(stderr, "equimod sweep: %s: %s\n", p, strerror(errno));
        return -1;
    }
    for (int i = 0; i < 600; i++) {
        if (!flock(fd, LOCK_EX | LOCK_NB))
            return fd;
        if (errno != EWOULDBLOCK)
            break;
        if (i == 0)
            fprintf(stderr, "equimod sweep: %s is in use (another sweep, or the trainings "
                            "of a stopped one saving their checkpoints); waiting up to 60 s\n",
                    dir);
        usleep(100000);
    }
    fprintf(stderr,
            "equimod sweep: %s is in use by another equimod sweep or its trainings\n"
            "hint: wait for it to end (or stop it with Ctrl-C), then run this command again\n",
            dir);
    close(fd);
    return -1;
}

/* One sweep's state while it runs. */
typedef struct runner {
    const sweep_plan *p;
    const char *dir;
    const sweep_run_opts *o;
    run_state *rs;
    slot *slots;
    int jobs, pending, done0, next, forwarded, interrupted;
    pid_t self;
    progress pg;
    char set_threads[64], set_workers[64];
} runner;

/* Which runs are finished (status done and the evaluations the sweep asks for present). */
static void runner_scan(runner *R)
{
    const sweep_plan *p = R->p;
    char rdir[4096];
    for (int r = 0; r < p->n_runs; r++) {
        snprintf(rdir, sizeof rdir, "%s/%s", R->dir, p->runs[r].name);
        read_state(rdir, &R->rs[r]);
        int evals_ok = (!p->knn || has_final_knn(rdir)) && (!p->linear || linear_done(rdir));
        R->rs[r].todo = !(R->rs[r].done_training && evals_ok);
        R->pending += R->rs[r].todo;
        R->done0 += !R->rs[r].todo;
    }
}

/* Jobs at once and threads each: the cores divided, never more jobs than cores or runs. */
static int runner_threads(runner *R, int cores)
{
    int jobs = R->o->jobs > 0 ? R->o->jobs : 1;
    if (jobs > cores) {
        fprintf(stderr, "equimod sweep: --jobs %d is more than the %d cores this process may "
                        "use; running %d at once\n", jobs, cores, cores);
        jobs = cores;
    }
    if (jobs > R->pending && R->pending > 0)
        jobs = R->pending;
    R->jobs = jobs;
    int threads = cores / jobs > 0 ? cores / jobs : 1;
    snprintf(R->set_threads, sizeof R->set_threads, "train.threads=%d", threads);
    snprintf(R->set_workers, sizeof R->set_workers, "loader.workers=%d", threads);
    return threads;
}

/* SIGINT/SIGTERM: forwarded once (SIGTERM) to every running child; no new run starts. */
static void runner_forward_signal(runner *R)
{
    if (!sweep_signal || R->forwarded == sweep_signal)
        return;
    R->forwarded = sweep_signal;
    say(&R->pg, "equimod sweep: %s: stopping %d running run(s) at a checkpoint\n",
        sweep_signal == SIGINT ? "interrupted (SIGINT)" : "interrupted (SIGTERM)",
        R->pg.running);
    for (int i = 0; i < R->jobs; i++)
        if (R->slots[i].run >= 0) {
            kill(R->slots[i].pid, SIGTERM);
            R->slots[i].signalled++;
        }
    sweep_signal = 0;
    R->interrupted = 1;
}

/* Start run r in slot i: `equimod train BASE --out DIR/RUN --set ...` into RUN/train.log. */
static void runner_start(runner *R, int i, int r)
{
    const sweep_plan *p = R->p;
    const sweep_run_opts *o = R->o;
    const sweep_run *ru = &p->runs[r];
    char rdir[4096], log_path[4500];
    snprintf(rdir, sizeof rdir, "%s/%s", R->dir, ru->name);
    if (fs_mkdir_p(rdir, 0755)) {
        say(&R->pg, "equimod sweep: %s: cannot create: %s\n", rdir, strerror(errno));
        R->pg.failed++;
        return;
    }
    const char *argv[160];
    int n = 0;
    argv[n++] = o->exe;
    for (int d = 0; d < o->n_plugin_dirs && n < 40; d++) {
        argv[n++] = "--plugin-path";
        argv[n++] = o->plugin_dirs[d];
    }
    int resume = file_exists(rdir, "checkpoint.last") || file_exists(rdir, "checkpoint.prev");
    argv[n++] = "train";
    argv[n++] = p->base;
    argv[n++] = "--out";
    argv[n++] = rdir;
    argv[n++] = "--set";
    argv[n++] = R->set_threads;
    argv[n++] = "--set";
    argv[n++] = R->set_workers;
    if (p->knn) {
        argv[n++] = "--set";
        argv[n++] = "eval.knn_at_end=true";
    }
    if (p->linear) {
        argv[n++] = "--set";
        argv[n++] = p->linear == 1 ? "eval.linear_at_end=fast" : "eval.linear_at_end=full";
    }
    for (int s = 0; s < ru->n_sets && n < 150; s++) {
        argv[n++] = "--set";
        argv[n++] = ru->sets[s];
    }
    if (resume)
        argv[n++] = "--resume";
    argv[n] = NULL;
    snprintf(log_path, sizeof log_path, "%s/train.log", rdir);
    pid_t pid = spawn(argv, log_path, R->self);
    if (pid < 0) {
        say(&R->pg, "equimod sweep: %s: cannot start: %s\n", ru->name, strerror(errno));
        R->pg.failed++;
        return;
    }
    R->slots[i] = (slot){pid, r, now_s(), 0};
    R->rs[r].attempts++;
    R->pg.running++;
    say(&R->pg, "sweep: [%d/%d] started %s%s\n", r + 1, p->n_runs, ru->name,
        R->rs[r].done_training ? " (evaluation)"
        : resume               ? " (resuming from its checkpoint)"
                               : "");
}

/* Fill the free slots with the next runs to do. */
static void runner_fill(runner *R)
{
    for (int i = 0; i < R->jobs && !R->interrupted; i++) {
        if (R->slots[i].run >= 0)
            continue;
        /* a run that is in a slot is never started twice (seen with --jobs 2 when a slot
         * went back to a finished run for its evaluation: a second `train --resume` into
         * the run folder of a run still training) */
        while (R->next < R->p->n_runs &&
               (!R->rs[R->next].todo || in_slot(R->slots, R->jobs, R->next)))
            R->next++;
        if (R->next >= R->p->n_runs)
            break;
        runner_start(R, i, R->next++);
    }
}

/* The child of slot sl ended with wait status st: its sweep-status.json and a line. */
static void runner_ended(runner *R, slot sl, int st)
{
    const sweep_plan *p = R->p;
    const sweep_run *ru = &p->runs[sl.run];
    run_state *rs = &R->rs[sl.run];
    char rdir[4096], tail[2048], log_path[4500];
    snprintf(rdir, sizeof rdir, "%s/%s", R->dir, ru->name);
    double wall = now_s() - sl.t0;
    rs->wall_prev += wall;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1, sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    snprintf(log_path, sizeof log_path, "%s/train.log", rdir);
    log_tail(log_path, 5, tail, sizeof tail);
    const char *what;
    if (code == 0 && (!p->knn || has_final_knn(rdir)) && (!p->linear || linear_done(rdir)))
        what = "done";
    else if (code == 130 || (sig && sl.signalled))
        what = "interrupted";
    else
        what = "failed";
    write_state(rdir, what, code, sig, rs->wall_prev, rs->attempts, tail,
                rs->done_training || !strcmp(what, "done"));
    if (!strcmp(what, "done")) {
        R->pg.done++;
        R->pg.finished_here++;
        /* the run's whole wall time (training, evaluations, earlier attempts): `wall` is
         * only its last attempt's (a run found trained that only evaluated: a minute), which
         * made the ETA of a sweep of 45-minute runs read "1m05s" */
        R->pg.run_time_sum += rs->wall_prev;
        rs->todo = 0;
        char d[32];
        fmt_dur(rs->wall_prev, d, sizeof d);
        say(&R->pg, "sweep: [%d/%d] finished %s in %s\n", sl.run + 1, p->n_runs, ru->name, d);
    } else if (!strcmp(what, "interrupted")) {
        say(&R->pg, "sweep: [%d/%d] stopped %s (checkpoint saved; run the sweep again to "
                    "resume it)\n",
            sl.run + 1, p->n_runs, ru->name);
    } else {
        R->pg.failed++;
        rs->todo = 0;
        const char *last = strrchr(tail, '\n');
        char why[64];
        if (sig)
            snprintf(why, sizeof why, "killed by signal %d", sig);
        else if (code == 0)
            snprintf(why, sizeof why, "exit 0 but the end evaluations are not in "
                                      "metrics.jsonl");
        else
            snprintf(why, sizeof why, "exit %d", code);
        say(&R->pg, "sweep: [%d/%d] FAILED %s (%s): %s\n", sl.run + 1, p->n_runs, ru->name, why,
            last ? last + 1 : tail);
    }
}

/* Runs still to start (for the ETA). */
static int runner_left(const runner *R)
{
    return R->pending - (R->pg.done - R->done0) - R->pg.failed - R->pg.running;
}

/* Start, wait, record until every run ended or a signal stopped the sweep. */
static void runner_loop(runner *R)
{
    double last_bar = 0;
    for (;;) {
        runner_forward_signal(R);
        runner_fill(R);
        if (!R->pg.running) {
            if (R->interrupted || R->next >= R->p->n_runs)
                break;
            continue;
        }
        int st;
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w == 0 || (w < 0 && errno == EINTR)) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (R->pg.tty && now_s() - last_bar > 0.5) {
                bar(&R->pg, runner_left(R), 0);
                last_bar = now_s();
            }
            continue;
        }
        if (w < 0)
            break;
        int i = 0;
        while (i < R->jobs && R->slots[i].pid != w)
            i++;
        if (i == R->jobs)
            continue; /* not ours */
        slot sl = R->slots[i];
        R->slots[i].run = -1;
        R->slots[i].pid = 0;
        R->pg.running--;
        runner_ended(R, sl, st);
        bar(&R->pg, runner_left(R), 0);
    }
}

int sweep_execute(const sweep_plan *p, const char *dir, const sweep_run_opts *o)
{
    int lock = take_lock(dir);
    if (lock < 0)
        return 1;
    runner R;
    memset(&R, 0, sizeof R);
    R.p = p, R.dir = dir, R.o = o;
    int cores = o->cores > 0 ? o->cores : cpu_count(), status = 1;
    R.rs = calloc((size_t)p->n_runs, sizeof *R.rs);
    if (!R.rs)
        goto out;
    runner_scan(&R);
    int threads = runner_threads(&R, cores);
    fprintf(stderr, "equimod sweep: %s: %d runs, %d finished before, %d to run; %d at once, "
                    "%d threads each\n",
            dir, p->n_runs, R.done0, R.pending, R.jobs, threads);
    R.slots = calloc((size_t)R.jobs, sizeof *R.slots);
    if (!R.slots)
        goto out;
    for (int i = 0; i < R.jobs; i++)
        R.slots[i].run = -1;
    R.pg = (progress){isatty(2), p->n_runs, R.done0, 0, 0, R.jobs, now_s(), 0, 0, 0, R.slots};
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sweep_signal = 0;
    R.self = getpid();
    runner_loop(&R);
    if (R.pg.bar_shown)
        fputs("\n", stderr);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (R.interrupted) {
        fprintf(stderr, "equimod sweep: interrupted; %d/%d runs finished. Run the same command "
                        "again to continue (finished runs are skipped, stopped ones resume)\n",
                R.pg.done, p->n_runs);
        status = 130;
    } else {
        fprintf(stderr, "equimod sweep: %d/%d runs finished, %d failed\n", R.pg.done, p->n_runs,
                R.pg.failed);
        status = R.pg.failed ? 1 : 0;
    }
out:
    free(R.rs);
    free(R.slots);
    close(lock);
    return status;
}
