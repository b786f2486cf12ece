/* host/cmd/shards.c: the `shards` command (the writer is host/shards/writer.c).
 *
 *   equimod shards [options] SRC OUTDIR
 *     labelled JPEGs (an ImageFolder tree, a flat folder with --labels, or a .tar/.tar.gz
 *     of either) -> WebDataset-style tar shards, PREFIX.index and classes.txt. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "shards/shards.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: equimod shards [options] SRC OUTDIR\n"
            "Write WebDataset-style tar shards (KEY.jpg + KEY.cls) and an index.\n"
            "SRC: an ImageFolder tree (SRC/<class>/<file>.JPEG, e.g. ILSVRC-2012 train), a\n"
            "     flat folder with --labels (ILSVRC-2012 val), or a .tar/.tar.gz of either.\n"
            "options:\n"
            "  --prefix NAME        shard names NAME-000000.tar ... (default: train)\n"
            "  --per-shard N        samples per shard (default 1000)\n"
            "  --shard-bytes B      or: start a new shard past B bytes (suffix k/M/G ok)\n"
            "  --labels FILE        lines '<file name> <class index|class name>' (flat SRC)\n"
            "  --classes FILE       class list, first word per line (default: sorted names)\n"
            "  --seed S             order shuffle seed (default 1)\n"
            "  --no-shuffle         keep the sorted order (class, then file)\n"
            "  --limit N            write only the first N samples of the order\n"
            "  --strict             a file that is not a whole JPEG is an error (default: it\n"
            "                       is reported and skipped)\n");
}

static size_t parse_bytes(const char *s, int *ok)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    *ok = end != s && !errno;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'M')
        v <<= 20, end++;
    else if (*end == 'G')
        v <<= 30, end++;
    if (*end)
        *ok = 0;
    return (size_t)v;
}

/* One option with a value (a[0..1] = "--x"), into o. Returns 0 or the exit status 2. */
static int set_option(shards_write_opts *o, const char *a, const char *v)
{
    if (!strcmp(a, "--prefix")) {
        o->prefix = v;
    } else if (!strcmp(a, "--labels")) {
        o->labels = v;
    } else if (!strcmp(a, "--classes")) {
        o->classes_file = v;
    } else if (!strcmp(a, "--per-shard") || !strcmp(a, "--shard-bytes") ||
               !strcmp(a, "--seed") || !strcmp(a, "--limit")) {
        int ok;
        size_t x = parse_bytes(v, &ok);
        if (!ok || (x == 0 && strcmp(a, "--seed") && strcmp(a, "--limit"))) {
            fprintf(stderr, "equimod shards: %s '%s': expected a positive integer\n", a, v);
            return 2;
        }
        if (!strcmp(a, "--per-shard"))
            o->per_shard = x;
        else if (!strcmp(a, "--shard-bytes"))
            o->shard_bytes = x;
        else if (!strcmp(a, "--seed"))
            o->seed = x;
        else
            o->limit = x;
    } else {
        fprintf(stderr, "equimod shards: unknown option '%s'\nhint: equimod shards --help\n", a);
        return 2;
    }
    return 0;
}

int cmd_shards(int argc, char **argv)
{
    shards_write_opts o = {.prefix = "train", .per_shard = 1000, .seed = 1, .shuffle = 1};
    const char *pos[2];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-shuffle")) {
            o.shuffle = 0;
        } else if (!strcmp(a, "--strict")) {
            o.strict = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            if (!v) {
                fprintf(stderr, "equimod shards: %s needs a value\n", a);
                return 2;
            }
            i++;
            int rc = set_option(&o, a, v);
            if (rc)
                return rc;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "equimod shards: too many arguments ('%s')\n", a);
            return 2;
        }
    }
    if (npos != 2) {
        usage(stderr);
        return 2;
    }
    o.src = pos[0];
    o.out = pos[1];
    return shards_write(&o);
}
