/* tests/fault/check_faults.c: fault injection over a tiny real training run with
 * checkpoints (issue 10). This program is linked with
 *     -Wl,--wrap=posix_memalign -Wl,--wrap=write
 * so that, inside the host code linked into it (libeqmhost: api->alloc, which every plugin
 * allocation goes through, the checkpoint reader/writer, the loader...), the Nth call of
 * posix_memalign fails with ENOMEM, or the Nth write() to a file fails with ENOSPC (once, or
 * from N on: a full disk). The run is the real trainer (train_main) with the real plugins on
 * real CIFAR-10 images (tests/train/tiny.ini, 64 images, batch 32), in a forked child:
 *   1. a clean run stops after epoch 1 (train.max_steps = 2): its checkpoint is the
 *      reference ("the previous checkpoint");
 *   2. a clean resume of a copy counts the calls (A allocations, W writes) of epoch 2;
 *   3. for a sweep of N over 1..A and 1..W, a resume of a fresh copy with the fault at N.
 * Every faulted run must end with exit status 0 (the failure was absorbed, the run
 * completed) or 1 with an "equimod train: error: MESSAGE" line; never a signal or a hang.
 * Afterwards the run folder must hold a checkpoint.last that verifies and no
 * checkpoint.tmp; after a failed run the reference must still be there byte for byte
 * (checkpoint.last, or checkpoint.prev after a new checkpoint.last was completed).
 * Write points: each write() of the resumed run once, and from the first and from the
 * last on (a full disk).
 *   4. a real full file system: the reference run folder copied to a tmpfs of 1.5
 *      checkpoints (mounted in a private mount namespace), resumed: the new checkpoint
 *      cannot be written; the run must fail with a message and keep the reference.
 *      Skipped with a message where the test cannot mount (unshare/mount not permitted).
 * Skips (77) without $EQUIMOD_DATA_DIR/cifar10. EQM_FAULT_POINTS caps the allocation
 * points of the sweep (default 24; every write point is always tried). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

/* ---- the wrapped calls ---- */
enum { F_ALLOC = 0, F_WRITE = 1 };
static long fault_at[2];    /* 0 = never */
static int fault_sticky[2]; /* 1: every call from N on fails */
static long n_calls[2];

int __real_posix_memalign(void **p, size_t align, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
ssize_t __real_write(int fd, const void *b, size_t n);
ssize_t __wrap_write(int fd, const void *b, size_t n);

static int hit(int kind)
{
    long k = __atomic_add_fetch(&n_calls[kind], 1, __ATOMIC_RELAXED);
    return fault_at[kind] && (k == fault_at[kind] || (fault_sticky[kind] && k > fault_at[kind]));
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    if (hit(F_ALLOC))
        return ENOMEM;
    return __real_posix_memalign(p, align, n);
}

ssize_t __wrap_write(int fd, const void *b, size_t n)
{
    if (fd > 2 && hit(F_WRITE)) {
        errno = ENOSPC;
        return -1;
    }
    return __real_write(fd, b, n);
}

/* ---- helpers ---- */
static char cfg[2048], base[256];
static int failures;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    if (fstat(fileno(f), &st)) {
        fclose(f);
        return NULL;
    }
    unsigned char *b = malloc((size_t)st.st_size + 1);
    size_t got = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!b || got != (size_t)st.st_size) {
        free(b);
        return NULL;
    }
    b[got] = 0;
    *n = got;
    return b;
}

/* Copy the regular files of src into dst (created). */
static int copy_dir(const char *src, const char *dst)
{
    if (mkdir(dst, 0755) && errno != EEXIST)
        return -1;
    DIR *d = opendir(src);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && !rc) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        struct stat st;
        if (stat(a, &st) || !S_ISREG(st.st_mode))
            continue;
        size_t n;
        unsigned char *buf = slurp(a, &n);
        FILE *f = fopen(b, "wb");
        if (!buf || !f || fwrite(buf, 1, n, f) != n)
            rc = -1;
        if (f && fclose(f))
            rc = -1;
        free(buf);
    }
    closedir(d);
    return rc;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (!lstat(p, &st) && S_ISDIR(st.st_mode))
            rm_dir(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

typedef struct run_result {
    int status;        /* exit status, or 128 + signal */
    long calls[2];     /* wrapped calls made by the child */
    char log[8192];    /* its stderr (tail) */
} run_result;

/* train_main in a child: tiny.ini + sets, run folder dir, --resume when resume. */
static void run_train(const char *dir, const char *const *extra, int resume, int kind, long at,
                      int sticky, run_result *r)
{
    char logp[4096];
    snprintf(logp, sizeof logp, "%s.log", dir);
    int pfd[2];
    if (pipe(pfd)) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(pfd[0]);
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        alarm(600); /* a hang is a failure, not a stuck test */
        static const char *const sets[] = {"train.max_samples=64", "loader.batch_size=32",
                                           "train.epochs=2", "train.threads=1",
                                           "loader.workers=1", "eval.knn_every=0"};
        char *argv_sets[16];
        int n = 0;
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
            argv_sets[n++] = (char *)sets[i];
        for (int i = 0; extra && extra[i]; i++)
            argv_sets[n++] = (char *)extra[i];
        n_calls[0] = n_calls[1] = 0;
        if (kind >= 0) {
            fault_at[kind] = at;
            fault_sticky[kind] = sticky;
        }
        int st = train_main(cfg, argv_sets, n, dir, resume);
        long c[2] = {n_calls[0], n_calls[1]};
        fault_at[0] = fault_at[1] = 0;
        if (__real_write(pfd[1], c, sizeof c) != (ssize_t)sizeof c)
            st = 99;
        _exit(st);
    }
    close(pfd[1]);
    memset(r, 0, sizeof *r);
    if (read(pfd[0], r->calls, sizeof r->calls) != (ssize_t)sizeof r->calls)
        r->calls[0] = r->calls[1] = -1;
    close(pfd[0]);
    int ws;
    waitpid(pid, &ws, 0);
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    size_t n;
    unsigned char *log = slurp(logp, &n);
    if (log) {
        const char *tail = n > sizeof r->log - 1 ? (char *)log + n - (sizeof r->log - 1) : (char *)log;
        snprintf(r->log, sizeof r->log, "%s", tail);
        free(log);
    }
}

/* The message of the "equimod train: error: ..." line, or NULL. */
static const char *error_line(const char *log, char *buf, size_t n)
{
    const char *p = strstr(log, "equimod train: error: ");
    if (!p)
        return NULL;
    p += strlen("equimod train: error: ");
    size_t l = strcspn(p, "\n");
    snprintf(buf, n, "%.*s", (int)l, p);
    return buf[0] ? buf : NULL;
}

/* After a run: checkpoint.last verifies, no checkpoint.tmp is left, and after a failed
 * run (failed = 1) the reference is still checkpoint.last or checkpoint.prev. (A run that
 * completes may rotate the reference out with two checkpoints of its own.) */
static void check_folder(const char *dir, const unsigned char *ref, size_t ref_n, int failed,
                         const char *what)
{
    char last[4096], prev[4096], tmp[4096], err[1024];
    snprintf(last, sizeof last, "%s/%s", dir, CKPT_LAST);
    snprintf(prev, sizeof prev, "%s/%s", dir, CKPT_PREV);
    snprintf(tmp, sizeof tmp, "%s/%s", dir, CKPT_TMP);
    CHECK(ckpt_verify(last, err, sizeof err) == EQM_OK, "%s: checkpoint.last: %s", what, err);
    CHECK(access(tmp, F_OK) != 0, "%s: checkpoint.tmp left behind", what);
    size_t nl = 0, np = 0;
    unsigned char *bl = slurp(last, &nl), *bp = slurp(prev, &np);
    int kept = (bl && nl == ref_n && !memcmp(bl, ref, ref_n)) ||
               (bp && np == ref_n && !memcmp(bp, ref, ref_n));
    CHECK(kept || !failed, "%s: the previous checkpoint is neither checkpoint.last nor .prev any more",
          what);
    free(bl);
    free(bp);
}

/* Step 4 (see the header). Returns 0 passed, 1 failed, 77 skipped. */
static int full_tmpfs(const char *ref_dir, const unsigned char *ref, size_t ref_n)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        char mnt[1024], dir[1200], opts[64], msg[1024];
        snprintf(mnt, sizeof mnt, "%s/tmpfs", base);
        if (mkdir(mnt, 0755) || unshare(CLONE_NEWNS) ||
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
            printf("SKIP full tmpfs: cannot make a private mount namespace: %s\n",
                   strerror(errno));
            _exit(77);
        }
        snprintf(opts, sizeof opts, "size=%zu", ref_n + ref_n / 2 + 65536);
        if (mount("tmpfs", mnt, "tmpfs", 0, opts)) {
            printf("SKIP full tmpfs: cannot mount a tmpfs: %s\n", strerror(errno));
            _exit(77);
        }
        snprintf(dir, sizeof dir, "%s/run", mnt);
        failures = 0;
        CHECK(copy_dir(ref_dir, dir) == 0, "cannot copy the run folder to the tmpfs");
        run_result r;
        run_train(dir, NULL, 1, -1, 0, 0, &r);
        const char *m = error_line(r.log, msg, sizeof msg);
        CHECK(r.status == 1 && m, "full tmpfs (%s): exit status %d, log:\n%s", opts, r.status,
              r.log);
        printf("%-52s -> exit %d: %s\n", "checkpoint on a full tmpfs", r.status,
               m ? m : "(no message)");
        check_folder(dir, ref, ref_n, 1, "full tmpfs");
        fflush(NULL);
        umount2(mnt, MNT_DETACH);
        _exit(failures ? 1 : 0);
    }
    int ws;
    waitpid(pid, &ws, 0);
    char mnt[1024];
    snprintf(mnt, sizeof mnt, "%s/tmpfs", base);
    rmdir(mnt);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 1;
}

int main(void)
{
    const char *data = getenv("EQUIMOD_DATA_DIR");
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/cifar10", data ? data : "");
    struct stat st;
    if (!data || !*data || stat(probe, &st)) {
        printf("SKIP: no $EQUIMOD_DATA_DIR/cifar10\n");
        return 77;
    }
    const char *src = getenv("EQM_SRCDIR") ? getenv("EQM_SRCDIR") : EQM_SRCDIR;
    snprintf(cfg, sizeof cfg, "%s/tests/train/tiny.ini", src);
    snprintf(base, sizeof base, "%s/eqm-fault-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    int max_points = getenv("EQM_FAULT_POINTS") ? atoi(getenv("EQM_FAULT_POINTS")) : 24;
    /* 1. the reference: epoch 1 of 2, checkpointed */
    char ref_dir[1024], dir[1024], what[256], msg[1024];
    snprintf(ref_dir, sizeof ref_dir, "%s/ref", base);
    static const char *const stop1[] = {"train.max_steps=2", NULL};
    run_result r;
    run_train(ref_dir, stop1, 0, -1, 0, 0, &r);
    if (r.status != 0) {
        fprintf(stderr, "the clean reference run failed (%d):\n%s\n", r.status, r.log);
        rm_dir(base);
        return 1;
    }
    char refp[4096];
    snprintf(refp, sizeof refp, "%s/%s", ref_dir, CKPT_LAST);
    size_t ref_n;
    unsigned char *ref = slurp(refp, &ref_n);
    if (!ref) {
        fprintf(stderr, "no reference checkpoint in %s\n", ref_dir);
        rm_dir(base);
        return 1;
    }
    /* 2. a clean resume counts the calls */
    snprintf(dir, sizeof dir, "%s/count", base);
    copy_dir(ref_dir, dir);
    run_train(dir, NULL, 1, -1, 0, 0, &r);
    if (r.status != 0 || r.calls[0] <= 0 || r.calls[1] <= 0) {
        fprintf(stderr, "the clean resume failed (%d, %ld allocations, %ld writes):\n%s\n",
                r.status, r.calls[0], r.calls[1], r.log);
        rm_dir(base);
        return 1;
    }
    long A = r.calls[0], W = r.calls[1];
    printf("clean resume: %ld allocations (posix_memalign), %ld file writes\n", A, W);
    check_folder(dir, ref, ref_n, 0, "clean resume");
    /* 3. the sweep */
    struct point {
        int kind, sticky;
        long at;
    } pts[512];
    int np = 0;
    for (long w = 1; w <= W && np < 200; w++) /* every write once, a full disk twice */
        pts[np++] = (struct point){F_WRITE, 0, w};
    pts[np++] = (struct point){F_WRITE, 1, 1};
    pts[np++] = (struct point){F_WRITE, 1, W};
    for (int i = 0; i < max_points && np < 512; i++) {
        long at = i < 4 ? i + 1 : 1 + (long)((double)(A - 1) * (i - 3) / (max_points - 4));
        pts[np++] = (struct point){F_ALLOC, 0, at};
    }
    int n_fail = 0, n_ok = 0;
    for (int i = 0; i < np; i++) {
        snprintf(dir, sizeof dir, "%s/p%d", base, i);
        copy_dir(ref_dir, dir);
        snprintf(what, sizeof what, "%s %s at call %ld",
                 pts[i].kind == F_ALLOC ? "allocation failure" : "write failure (ENOSPC)",
                 pts[i].sticky ? "from" : "once", pts[i].at);
        run_train(dir, NULL, 1, pts[i].kind, pts[i].at, pts[i].sticky, &r);
        CHECK(r.status == 0 || r.status == 1, "%s: exit status %d (signal or crash):\n%s",
              what, r.status, r.log);
        if (r.status == 1) {
            const char *m = error_line(r.log, msg, sizeof msg);
            CHECK(m != NULL, "%s: exit 1 without an 'equimod train: error:' message:\n%s",
                  what, r.log);
            printf("%-52s -> exit 1: %s\n", what, m ? m : "(no message)");
            n_fail++;
        } else {
            printf("%-52s -> exit %d\n", what, r.status);
            n_ok++;
        }
        check_folder(dir, ref, ref_n, r.status != 0, what);
        rm_dir(dir);
        snprintf(dir + strlen(dir), sizeof dir - strlen(dir), ".log");
        unlink(dir);
    }
    int fs = full_tmpfs(ref_dir, ref, ref_n);
    if (fs != 0 && fs != 77)
        failures++;
    printf("%d fault points: %d ended with an error, %d completed; full tmpfs: %s; %d check "
           "failures\n", np, n_fail, n_ok, fs == 0 ? "passed" : fs == 77 ? "skipped" : "FAILED",
           failures);
    free(ref);
    if (!failures)
        rm_dir(base);
    else
        fprintf(stderr, "run folders kept in %s\n", base);
    return failures ? 1 : 0;
}
