/* tests/train/check_checkpoint.c: the checkpoint container (host/train/checkpoint.c):
 * round trip, rotation keeping last + previous, and refusal of corrupt, truncated,
 * foreign and non-checkpoint files with the previous good one kept and used. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <equimod/status.h>

#include "train/checkpoint.h"

static char dir[256];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof dir, "/tmp/eqm-ckpt-XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

static void rm_tmp(void)
{
    const char *names[] = {CKPT_LAST, CKPT_PREV, CKPT_TMP, "x.ckpt", "junk"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* Save a checkpoint whose payload is `fill` repeated, with an odd-sized second section. */
static void save(uint64_t hash, float fill)
{
    float a[100];
    for (int i = 0; i < 100; i++)
        a[i] = fill + (float)i;
    char b[13] = "odd sized!!";
    ckpt_section s[2] = {{"params", a, sizeof a}, {"state", b, sizeof b}};
    char err[512];
    ck_assert_msg(ckpt_save_rotate(dir, hash, s, 2, err, sizeof err) == EQM_OK, "%s", err);
}

static float first_value(const ckpt *c)
{
    const ckpt_section *s = ckpt_find(c, "params");
    ck_assert(s && s->bytes == 400);
    return ((const float *)s->data)[0];
}

static void clobber(const char *name, long offset, int byte)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "r+b");
    ck_assert(f);
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(byte < 0 ? (c ^ 0x40) : byte, f);
    fclose(f);
}

START_TEST(round_trip_and_rotation)
{
    mkdir_tmp();
    save(42, 1.0f);
    save(42, 2.0f);
    save(42, 3.0f);
    ckpt c;
    const char *which;
    char warn[1024], err[1024];
    ck_assert_int_eq(ckpt_load_latest(dir, 42, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_OK);
    ck_assert_str_eq(which, CKPT_LAST);
    ck_assert(first_value(&c) == 3.0f);
    const ckpt_section *st = ckpt_find(&c, "state");
    ck_assert(st && st->bytes == 13 && !memcmp(st->data, "odd sized!!", 12));
    ck_assert(ckpt_find(&c, "nope") == NULL);
    ck_assert(((uintptr_t)ckpt_find(&c, "params")->data & 63) == 0);
    ckpt_free(&c);
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_PREV);
    ck_assert_int_eq(ckpt_read(p, 42, &c, err, sizeof err), EQM_OK);
    ck_assert(first_value(&c) == 2.0f);
    ckpt_free(&c);
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_TMP);
    ck_assert(access(p, F_OK) != 0); /* no temp file left behind */
    rm_tmp();
}
END_TEST

START_TEST(corrupt_last_falls_back_and_prev_kept)
{
    mkdir_tmp();
    save(7, 1.0f);
    save(7, 2.0f);
    clobber(CKPT_LAST, 300, -1); /* one flipped bit in the payload */
    ckpt c;
    const char *which = NULL;
    char warn[1024], err[1024];
    ck_assert_int_eq(ckpt_load_latest(dir, 7, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_OK);
    ck_assert_str_eq(which, CKPT_PREV);
    ck_assert_msg(strstr(warn, "corrupt") != NULL, "warning: %s", warn);
    ck_assert(first_value(&c) == 1.0f);
    ckpt_free(&c);
    /* The next save must not rotate the corrupt last over the good previous. */
    save(7, 3.0f);
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_PREV);
    ck_assert_int_eq(ckpt_read(p, 7, &c, err, sizeof err), EQM_OK);
    ck_assert(first_value(&c) == 1.0f);
    ckpt_free(&c);
    rm_tmp();
}
END_TEST

START_TEST(truncated_refused)
{
    mkdir_tmp();
    save(9, 1.0f);
    save(9, 2.0f);
    char p[512], err[1024];
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_LAST);
    struct stat st;
    ck_assert(stat(p, &st) == 0);
    ck_assert(truncate(p, st.st_size - 100) == 0);
    ckpt c;
    ck_assert_int_eq(ckpt_read(p, 9, &c, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "truncated") != NULL, "%s", err);
    ck_assert(truncate(p, 10) == 0);
    ck_assert_int_eq(ckpt_read(p, 9, &c, err, sizeof err), EQM_ERR_FORMAT);
    const char *which;
    char warn[1024];
    ck_assert_int_eq(ckpt_load_latest(dir, 9, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_OK);
    ck_assert(first_value(&c) == 1.0f);
    ckpt_free(&c);
    /* Both bad: an error naming both files. */
    clobber(CKPT_PREV, -1, 'X');
    ck_assert_int_eq(ckpt_load_latest(dir, 9, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, CKPT_LAST) && strstr(err, CKPT_PREV), "%s", err);
    rm_tmp();
}
END_TEST

START_TEST(foreign_and_junk_refused)
{
    mkdir_tmp();
    save(1, 1.0f);
    save(2, 5.0f); /* written by another configuration */
    ckpt c;
    const char *which;
    char warn[1024], err[1024];
    ck_assert_int_eq(ckpt_load_latest(dir, 1, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_ERR_ABI);
    ck_assert_msg(strstr(err, "another configuration") != NULL, "%s", err);
    /* hash 0 = accept any (export, eval) */
    ck_assert_int_eq(ckpt_load_latest(dir, 0, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_OK);
    ck_assert(first_value(&c) == 5.0f);
    ckpt_free(&c);
    char p[512];
    snprintf(p, sizeof p, "%s/junk", dir);
    FILE *f = fopen(p, "w");
    fputs("[run]\nname = not a checkpoint, just some text long enough\n", f);
    fclose(f);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "bad magic") != NULL, "%s", err);
    /* A wrong version is named as such. */
    clobber(CKPT_LAST, 8, 99);
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_LAST);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "version") != NULL, "%s", err);
    rm_tmp();
    mkdir_tmp();
    ck_assert_int_eq(ckpt_load_latest(dir, 0, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_ERR_NOTFOUND);
    rm_tmp();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, round_trip_and_rotation);
    tcase_add_test(tc, corrupt_last_falls_back_and_prev_kept);
    tcase_add_test(tc, truncated_refused);
    tcase_add_test(tc, foreign_and_junk_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
