/* host/check/common.c: the report of `equimod check` (one line per failed rule, the
 * count), guarded buffers and hashing, shared by the kind checks (internal.h). */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/internal.h"

void chk_fail(ck *c, const char *rule, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  FAIL [%s] ", rule);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    c->n_fail++;
    c->n_checks++;
}

void chk_pass(ck *c, const char *what)
{
    c->n_checks++;
    if (c->verbose)
        printf("  ok   %s\n", what);
}

void chk_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  note ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* The message of a failed call, or the rule it broke by not setting one. */
const char *chk_why(ck *c, int rc, char *buf, size_t n, const char *fn)
{
    const char *m = host_ctx_error(c->ctx);
    if (m && *m) {
        snprintf(buf, n, "%s (%s)", m, eqm_status_str(rc));
        return buf;
    }
    chk_fail(c, "error message", "%s returned %d (%s) without a message: a failing function "
                                 "records one with api->set_error (ABI.md §8)",
             fn, rc, eqm_status_str(rc));
    snprintf(buf, n, "%s, no message", eqm_status_str(rc));
    return buf;
}

/* ------------------------------------------------------------------ guarded ---- */

void *chk_gb_alloc(gbuf *g, size_t n)
{
    g->n = n;
    g->raw = aligned_alloc(64, (2 * GUARD + n + 63) / 64 * 64);
    if (!g->raw)
        return NULL;
    memset(g->raw, CANARY, 2 * GUARD + n);
    return g->raw + GUARD;
}


/* 1 if both guards are intact. */
int chk_gb_intact(const gbuf *g)
{
    if (!g->raw)
        return 1;
    for (size_t i = 0; i < GUARD; i++)
        if (g->raw[i] != CANARY || g->raw[GUARD + g->n + i] != CANARY)
            return 0;
    return 1;
}

void chk_gb_free(gbuf *g)
{
    free(g->raw);
    g->raw = NULL;
}

uint64_t chk_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int chk_threads(void *(*fn)(void *), const void *run, size_t size, size_t failed_off)
{
    unsigned char *copies = malloc(4 * size);
    if (!copies)
        return -1;
    pthread_t th[4];
    int started = 0, failed = 0;
    for (int i = 0; i < 4; i++) {
        memcpy(copies + i * size, run, size);
        if (pthread_create(&th[i], NULL, fn, copies + i * size))
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        int f;
        pthread_join(th[i], NULL);
        memcpy(&f, copies + i * size + failed_off, sizeof f);
        failed |= f;
    }
    free(copies);
    return started ? failed != 0 : -1;
}
