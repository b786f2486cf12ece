/* tests/fuzz/replay.c: main() of the replay_NAME test programs (fuzz.h). Feeds every file
 * of $EQM_SRCDIR/tests/fuzz/regress/NAME/ (reproducers of fixed findings) and
 * $EQM_SRCDIR/tests/fuzz/corpus/NAME/ (the seed corpus) to LLVMFuzzerTestOneInput, or the
 * files/folders given as arguments. A crash or a broken invariant fails the test (under
 * the ASan build, so does any memory error). Exit 0 with the count of inputs replayed;
 * 1 if a folder that must exist (the corpus) is missing or empty. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME (the harness name) must be defined"
#endif

static int n_inputs;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_NAME, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        fprintf(stderr, "replay_%s: %s: not a regular file\n", FUZZ_NAME, path);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    /* an exact-size heap copy, so that reads past the end are caught by ASan */
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fclose(f);
        free(buf);
        fprintf(stderr, "replay_%s: %s: read failed\n", FUZZ_NAME, path);
        return -1;
    }
    fclose(f);
    if (getenv("EQM_REPLAY_VERBOSE"))
        fprintf(stderr, "replay_%s: %s (%zu bytes)\n", FUZZ_NAME, path, n);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    n_inputs++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of a folder, in name order. Returns the count, -1 on errors. */
static int run_dir(const char *d, int must_exist)
{
    DIR *dp = opendir(d);
    if (!dp) {
        if (!must_exist && errno == ENOENT)
            return 0;
        fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_NAME, d, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn)
                abort();
            names = nn;
        }
        if (!(names[n++] = strdup(e->d_name)))
            abort();
    }
    closedir(dp);
    qsort(names, n, sizeof *names, cmp_str);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", d, names[i]);
        if (run_file(p))
            bad = 1;
        free(names[i]);
    }
    free(names);
    return bad ? -1 : (int)n;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            struct stat st;
            if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode) ? run_dir(argv[i], 1) < 0
                                                                : run_file(argv[i]) < 0)
                return 1;
        }
        printf("replay_%s: %d inputs replayed\n", FUZZ_NAME, n_inputs);
        return 0;
    }
    const char *src = getenv("EQM_SRCDIR");
    if (!src || !*src)
        src = EQM_SRCDIR;
    char corpus[4096], regress[4096];
    snprintf(corpus, sizeof corpus, "%s/tests/fuzz/corpus/%s", src, FUZZ_NAME);
    snprintf(regress, sizeof regress, "%s/tests/fuzz/regress/%s", src, FUZZ_NAME);
    int nr = run_dir(regress, 0);
    if (nr < 0)
        return 1;
    int nc = run_dir(corpus, 1);
    if (nc <= 0) {
        fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_NAME, corpus,
                nc == 0 ? "empty seed corpus" : "cannot read the seed corpus");
        return 1;
    }
    printf("replay_%s: %d regression inputs and %d corpus inputs replayed\n", FUZZ_NAME, nr,
           nc);
    return 0;
}
