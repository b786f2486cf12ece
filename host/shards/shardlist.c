/* host/shards/shardlist.c: shard patterns ("train-{000000..001023}.tar", "{a,b}.tar",
 * "@list.txt") and the per-epoch, per-rank shard order.
 *
 * Left out: glob wildcards (* ?), nested braces, remote URLs (pipe:, http:).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "shards.h"

typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

static int sv_push(strvec *s, char *str)
{
    if (!str)
        return -1;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        char **nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) {
            free(str);
            return -1;
        }
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = str;
    return 0;
}

void shardlist_free(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

#define MAX_SHARDS 10000000

/* Expand the first brace group of `pat` and recurse on the rest. */
static int expand_rec(const char *pat, strvec *out, char *err, size_t errlen)
{
    const char *open = strchr(pat, '{');
    if (!open) {
        const char *close = strchr(pat, '}');
        if (close) {
            snprintf(err, errlen, "shard pattern '%s': '}' without '{'", pat);
            return EQM_ERR_INVAL;
        }
        if (out->n >= MAX_SHARDS) {
            snprintf(err, errlen, "shard pattern expands to more than %d paths", MAX_SHARDS);
            return EQM_ERR_INVAL;
        }
        return sv_push(out, strdup(pat)) ? EQM_ERR_NOMEM : EQM_OK;
    }
    const char *close = strchr(open + 1, '}');
    if (!close) {
        snprintf(err, errlen, "shard pattern '%s': '{' without '}'", pat);
        return EQM_ERR_INVAL;
    }
    if (memchr(open + 1, '{', (size_t)(close - open - 1))) {
        snprintf(err, errlen, "shard pattern '%s': nested braces are not supported", pat);
        return EQM_ERR_INVAL;
    }
    size_t pre = (size_t)(open - pat);
    const char *rest = close + 1;
    size_t inner_n = (size_t)(close - open - 1);
    char *inner = strndup(open + 1, inner_n);
    if (!inner)
        return EQM_ERR_NOMEM;
    int rc = EQM_OK;
    const char *dots = strstr(inner, "..");
    char *buf = NULL;
    size_t bufn = strlen(pat) + 64;
    buf = malloc(bufn);
    if (!buf) {
        free(inner);
        return EQM_ERR_NOMEM;
    }
    if (dots && !strchr(inner, ',')) {
        /* numeric range a..b; width of a sets zero padding when a starts with 0 */
        char *end1, *end2;
        errno = 0;
        long long a = strtoll(inner, &end1, 10);
        long long b = strtoll(dots + 2, &end2, 10);
        if (end1 != dots || end1 == inner || *end2 || end2 == dots + 2 || errno || a < 0 ||
            b < a || b - a >= MAX_SHARDS) {
            snprintf(err, errlen,
                     "shard pattern '%s': bad range {%s} (write {000000..001023}: two "
                     "non-negative integers, first <= last)", pat, inner);
            rc = EQM_ERR_INVAL;
        }
        int width = (inner[0] == '0' && dots - inner > 1) ? (int)(dots - inner) : 0;
        for (long long i = a; rc == EQM_OK && i <= b; i++) {
            snprintf(buf, bufn, "%.*s%0*lld%s", (int)pre, pat, width, i, rest);
            rc = expand_rec(buf, out, err, errlen);
        }
    } else {
        /* list a,b,c */
        char *save = NULL;
        for (char *tok = strtok_r(inner, ",", &save); rc == EQM_OK && tok;
             tok = strtok_r(NULL, ",", &save)) {
            size_t need = pre + strlen(tok) + strlen(rest) + 1;
            if (need > bufn) {
                char *nb = realloc(buf, need);
                if (!nb) {
                    rc = EQM_ERR_NOMEM;
                    break;
                }
                buf = nb;
                bufn = need;
            }
            snprintf(buf, bufn, "%.*s%s%s", (int)pre, pat, tok, rest);
            rc = expand_rec(buf, out, err, errlen);
        }
    }
    free(buf);
    free(inner);
    return rc;
}

static int read_list(const char *file, strvec *out, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "shard list '%s': %s", file, strerror(errno));
        return EQM_ERR_IO;
    }
    const char *slash = strrchr(file, '/');
    size_t dirn = slash ? (size_t)(slash - file + 1) : 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = EQM_OK, lineno = 0;
    while (rc == EQM_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                           line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        char *path;
        if (*p == '/' || !dirn) {
            path = strdup(p);
        } else {
            path = malloc(dirn + strlen(p) + 1);
            if (path) {
                memcpy(path, file, dirn);
                strcpy(path + dirn, p);
            }
        }
        if (sv_push(out, path))
            rc = EQM_ERR_NOMEM;
    }
    free(line);
    fclose(f);
    if (rc == EQM_OK && out->n == 0) {
        snprintf(err, errlen, "shard list '%s': no paths (one path per line expected)", file);
        rc = EQM_ERR_INVAL;
    }
    return rc;
}

int shardlist_expand(const char *pattern, char ***paths, size_t *n, char *err, size_t errlen)
{
    strvec out = {0};
    *paths = NULL;
    *n = 0;
    if (!pattern || !*pattern) {
        snprintf(err, errlen, "shard pattern is empty (set e.g. shards = "
                              "/data/train-{000000..001023}.tar)");
        return EQM_ERR_INVAL;
    }
    int rc = pattern[0] == '@' ? read_list(pattern + 1, &out, err, errlen)
                               : expand_rec(pattern, &out, err, errlen);
    if (rc == EQM_ERR_NOMEM)
        snprintf(err, errlen, "shard pattern: out of memory");
    if (rc != EQM_OK) {
        shardlist_free(out.v, out.n);
        return rc;
    }
    *paths = out.v;
    *n = out.n;
    return EQM_OK;
}

size_t shardlist_epoch_order(size_t n, uint64_t seed, uint64_t epoch, int rank, int world,
                             size_t *order)
{
    const eqm_host_api *api = host_api();
    size_t *perm = malloc((n ? n : 1) * sizeof *perm);
    if (world < 1)
        world = 1;
    if (rank < 0 || rank >= world)
        rank = 0;
    if (!perm) { /* degrade to the natural order rather than fail */
        size_t k = 0;
        for (size_t i = (size_t)rank; i < n; i += (size_t)world)
            order[k++] = i;
        return k;
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    eqm_rng r;
    api->rng_seed(&r, seed, epoch, 0x5a4d5348ULL /* "SHRD" */, 0);
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)api->rng_below(&r, i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    size_t k = 0;
    for (size_t i = (size_t)rank; i < n; i += (size_t)world)
        order[k++] = perm[i];
    free(perm);
    return k;
}
