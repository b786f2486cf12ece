/* tests/fuzz/fuzz_util.c: scratch files and small helpers of the harnesses (fuzz.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "fuzz.h"

static char dir[256];

static void rm_dir(void)
{
    if (!dir[0])
        return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

const char *fuzz_dir(void)
{
    if (dir[0])
        return dir;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
                               access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/eqm-fuzz-XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", dir, strerror(errno));
        abort();
    }
    atexit(rm_dir);
    return dir;
}

const char *fuzz_file(const char *name, const void *data, size_t size)
{
    static char paths[8][600];
    static char names[8][64];
    int slot = -1;
    for (int i = 0; i < 8 && slot < 0; i++)
        if (!strcmp(names[i], name) || !names[i][0])
            slot = i;
    if (slot < 0)
        slot = 7;
    snprintf(names[slot], sizeof names[slot], "%s", name);
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir(), name);
    int fd = open(paths[slot], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fuzz_fail("cannot create %s: %s", paths[slot], strerror(errno));
    const uint8_t *p = data;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, p + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            fuzz_fail("cannot write %s: %s", paths[slot], strerror(errno));
        done += (size_t)w;
    }
    close(fd);
    return paths[slot];
}

void fuzz_unlink(const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir(), name);
    unlink(p);
}

static void drop_line(int level, const char *line, void *ud)
{
    (void)level, (void)line, (void)ud;
}

void fuzz_quiet(void) { host_log_set_sink(drop_line, NULL); }

const char *fuzz_plugin_dir(void)
{
    const char *e = getenv("EQUIMOD_PLUGIN_PATH");
    if (e && *e)
        return e;
#ifdef FUZZ_PLUGIN_DIR
    return FUZZ_PLUGIN_DIR;
#else
    return "plugin-dir";
#endif
}

eqm_registry *fuzz_registry(void)
{
    static eqm_registry *reg;
    if (reg)
        return reg;
    fuzz_quiet();
    reg = registry_create();
    const char *d = fuzz_plugin_dir();
    if (!reg || registry_scan(reg, &d, 1) <= 0)
        fuzz_fail("no plugins found in %s (build them first, or set EQUIMOD_PLUGIN_PATH)", d);
    return reg;
}

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: invariant broken: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
