/* tests/shards/check_host_error.c: error messages of an instance context (host/api.c
 * host_ctx_set_error / api->set_error / host_ctx_error) are per calling thread. The
 * loader's workers decode through ONE dataset context at once; a shared message buffer
 * let one worker's failure overwrite another's before it was read (a data race, and the
 * wrong sample named in the error). Cases: threads setting distinct messages on one
 * context in a loop each read back their own (through both setters), the shared copy is
 * seen by a thread that set nothing itself, wrapping a message read back from the same
 * context (overlapping text) works, and a context created after one is destroyed never
 * shows the old one's message on a thread that had an entry for it.
 * Run under ASan/UBSan/TSan-free builds alike (no sleeps, no timing assumptions). */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

enum { THREADS = 4, ITERS = 20000 };

typedef struct arg {
    eqm_host *h;
    int id;
    int bad;          /* iterations that read back another thread's message */
    char first_bad[1024];
} arg;

static void *hammer(void *p)
{
    arg *a = p;
    const eqm_host_api *api = host_api();
    char want[128];
    for (int i = 0; i < ITERS; i++) {
        snprintf(want, sizeof want, "thread %d: sample %d is corrupt", a->id, i);
        int rc = (i & 1) ? api->set_error(a->h, EQM_SKIP, "%s", want)
                         : host_ctx_set_error(a->h, EQM_SKIP, "%s", want);
        ck_assert_int_eq(rc, EQM_SKIP);
        const char *got = host_ctx_error(a->h);
        if (strcmp(got, want)) {
            if (!a->bad++)
                snprintf(a->first_bad, sizeof a->first_bad, "wanted '%s', read '%s'", want, got);
        }
    }
    return NULL;
}

START_TEST(test_per_thread_messages)
{
    eqm_host *h = host_ctx_create("dataset/test");
    ck_assert_ptr_nonnull(h);
    pthread_t th[THREADS];
    arg a[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&a[i], 0, sizeof a[i]);
        a[i].h = h;
        a[i].id = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &a[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        if (a[i].bad)
            fprintf(stderr, "thread %d: %d of %d reads were not its own message; first: %s\n",
                    i, a[i].bad, ITERS, a[i].first_bad);
        bad += a[i].bad;
    }
    ck_assert_msg(bad == 0, "%d reads saw another thread's message", bad);
    /* this (main) thread set nothing on h: it sees the shared copy, one of the threads'
     * last messages */
    const char *last = host_ctx_error(h);
    char want[THREADS][128];
    int match = 0;
    for (int i = 0; i < THREADS; i++) {
        snprintf(want[i], sizeof want[i], "thread %d: sample %d is corrupt", i, ITERS - 1);
        match |= !strcmp(last, want[i]);
    }
    ck_assert_msg(match, "main thread read '%s'", last);
    host_ctx_destroy(h);
}
END_TEST

static void *set_once(void *p)
{
    host_ctx_set_error(p, EQM_ERR_IO, "set by another thread");
    return NULL;
}

START_TEST(test_fallback_wrap_and_reuse)
{
    eqm_host *h = host_ctx_create("augment/x");
    ck_assert_str_eq(host_ctx_error(h), "");
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, set_once, h), 0);
    pthread_join(t, NULL);
    ck_assert_str_eq(host_ctx_error(h), "set by another thread");
    /* wrap this thread's own message read back from the same context */
    host_ctx_set_error(h, EQM_ERR_FORMAT, "first");
    host_ctx_set_error(h, EQM_ERR_FORMAT, "%s (set on_bad = skip)", host_ctx_error(h));
    ck_assert_str_eq(host_ctx_error(h), "first (set on_bad = skip)");
    /* more contexts than table entries: the least recently used entries are reused, and
     * every context still reads its own latest message */
    eqm_host *many[20];
    for (int i = 0; i < 20; i++) {
        many[i] = host_ctx_create("m");
        host_ctx_set_error(many[i], EQM_ERR_IO, "ctx %d", i);
    }
    for (int i = 0; i < 20; i++) {
        char w[32];
        snprintf(w, sizeof w, "ctx %d", i);
        ck_assert_str_eq(host_ctx_error(many[i]), w);
    }
    for (int i = 0; i < 20; i++)
        host_ctx_destroy(many[i]);
    /* a new context (possibly at the freed address) starts without a message */
    host_ctx_destroy(h);
    for (int i = 0; i < 4; i++) {
        eqm_host *g = host_ctx_create("again");
        ck_assert_str_eq(host_ctx_error(g), "");
        host_ctx_set_error(g, EQM_ERR_IO, "g%d", i);
        host_ctx_destroy(g);
    }
    ck_assert_str_eq(host_ctx_error(NULL), "");
}
END_TEST

int main(void)
{
    Suite *su = suite_create("host_error");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_per_thread_messages);
    tcase_add_test(tc, test_fallback_wrap_and_reuse);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
