/* tests/train/check_checkpoint.c: the checkpoint container (host/train/checkpoint.c):
 * round trip, rotation keeping last + previous, and refusal of corrupt, truncated,
 * foreign and non-checkpoint files with the previous good one kept and used; validation of
 * the trainer's sections in files whose CRC is valid (tensor-table offsets that wrap or
 * point outside params, section entries outside the payload, absurd or negative state
 * counters, NaN/Inf weights named by tensor) and of the state against the config; FIFOs
 * and directories refused at once instead of blocking. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

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
    ckpt_section s[2] = {{"params", a, sizeof a}, {"notes", b, sizeof b}};
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
    const ckpt_section *st = ckpt_find(&c, "notes");
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

/* ---- a training checkpoint as the trainer writes it: config, tensors, params, optim, state */

typedef struct tstate {
    int64_t step, epoch, batch, optim_steps;
    double elapsed_s;
    int64_t images;
} tstate;

static float W[64], O[64];

/* Write dir/x.ckpt with the given tensor table text and state (CRC valid). */
static const char *write_train(const char *table, const tstate *st, char *err, size_t errlen)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/x.ckpt", dir);
    const char *cfg = "[train]\nepochs = 2\n";
    ckpt_section s[5] = {{"config", cfg, strlen(cfg)},
                         {"tensors", table, strlen(table)},
                         {"params", W, sizeof W},
                         {"optim", O, sizeof O},
                         {"state", st, sizeof *st}};
    ck_assert_int_eq(ckpt_write(p, 5, s, 5, err, errlen), EQM_OK);
    return p;
}

static void fill_ok(void)
{
    for (int i = 0; i < 64; i++)
        W[i] = 0.01f * (float)i, O[i] = -0.5f;
}

static const tstate good_state = {10, 1, 5, 10, 1.5, 320};
static const char *good_table = "0 0 0 48 0 conv1.weight\n0 1 48 16 0 bn1.bias\n";

START_TEST(valid_training_checkpoint_reads)
{
    mkdir_tmp();
    fill_ok();
    char err[1024];
    const char *p = write_train(good_table, &good_state, err, sizeof err);
    ckpt c;
    ck_assert_msg(ckpt_read(p, 5, &c, err, sizeof err) == EQM_OK, "%s", err);
    ckpt_state st;
    ck_assert_int_eq(ckpt_state_get(&c, &st), EQM_OK);
    ck_assert(st.step == 10 && st.epoch == 1 && st.batch == 5 && st.images == 320);
    ck_assert_msg(ckpt_check_progress(&c, p, 2, 10, err, sizeof err) == EQM_OK, "%s", err);
    ckpt_free(&c);
    rm_tmp();
}
END_TEST

/* The tensor table of a CRC-valid file is not trusted: an offset that wraps size_t (what
 * read out of bounds in train_restore_slot) or points past params is refused by the reader. */
START_TEST(tensor_table_out_of_bounds_refused)
{
    mkdir_tmp();
    fill_ok();
    static const char *bad[] = {
        "0 0 0 48 0 conv1.weight\n0 1 18446744073709551610 16 0 bn1.bias\n", /* wraps */
        "0 0 0 48 0 conv1.weight\n0 1 60 16 0 bn1.bias\n",                    /* past end */
        "0 0 0 65 0 conv1.weight\n",                                         /* too long */
        "0 0 0 99999999999999999999999 0 conv1.weight\n",                    /* > u64 */
        "0 0 -8 16 0 conv1.weight\n",                                        /* negative */
        "7 0 0 16 0 conv1.weight\n",                                         /* no slot 7 */
        "0 0 0 16 0\n",                                                      /* no name */
        "0 0 0 16 0 a b\n",                                                  /* two names */
    };
    char err[1024];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = write_train(bad[i], &good_state, err, sizeof err);
        ckpt c;
        ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
        ck_assert_msg(strstr(err, p) && strstr(err, "was not used"), "case %zu: %s", i, err);
        if (i < 3)
            ck_assert_msg(strstr(err, i == 2 ? "conv1.weight" : "bn1.bias") &&
                              strstr(err, "outside the params"),
                          "case %zu: %s", i, err);
        if (i >= 3)
            ck_assert_msg(strstr(err, "line 1"), "case %zu: %s", i, err);
    }
    rm_tmp();
}
END_TEST

/* Patch bytes of a file and recompute its CRC (as a careful forger would). */
static void patch_recrc(const char *p, long off, const void *bytes, size_t n)
{
    FILE *f = fopen(p, "r+b");
    ck_assert(f);
    ck_assert(fseek(f, 0, SEEK_END) == 0);
    long size = ftell(f);
    unsigned char *b = malloc((size_t)size);
    rewind(f);
    ck_assert(fread(b, 1, (size_t)size, f) == (size_t)size);
    memcpy(b + off, bytes, n);
    uLong crc = crc32(0L, b, (uInt)(size - 8));
    for (int i = 0; i < 4; i++)
        b[size - 8 + i] = (unsigned char)(crc >> (8 * i));
    rewind(f);
    ck_assert(fwrite(b, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    free(b);
}

START_TEST(section_entries_out_of_bounds_refused)
{
    mkdir_tmp();
    fill_ok();
    char err[1024];
    const char *p = write_train(good_table, &good_state, err, sizeof err);
    ckpt c;
    /* entry 2 (params) offset: 32 + 2*64 + 48 */
    const long at = 32 + 2 * 64 + 48;
    uint64_t v = 0xffffffffffffffc0ull; /* wraps */
    patch_recrc(p, at, &v, 8);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "out of bounds"), "%s", err);
    p = write_train(good_table, &good_state, err, sizeof err);
    v = 8; /* inside the header and table: would alias them */
    patch_recrc(p, at, &v, 8);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "out of bounds"), "%s", err);
    p = write_train(good_table, &good_state, err, sizeof err);
    uint64_t off;
    {
        FILE *f = fopen(p, "rb");
        ck_assert(fseek(f, at, SEEK_SET) == 0 && fread(&off, 8, 1, f) == 1);
        fclose(f);
    }
    v = off + 2; /* misaligned floats */
    patch_recrc(p, at, &v, 8);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "out of bounds"), "%s", err);
    /* a duplicate section name: which one would a caller get? */
    p = write_train(good_table, &good_state, err, sizeof err);
    patch_recrc(p, 32 + 3 * 64, "params\0", 7); /* "optim" renamed "params" */
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(err, "twice"), "%s", err);
    rm_tmp();
}
END_TEST

START_TEST(state_out_of_range_refused)
{
    mkdir_tmp();
    fill_ok();
    char err[1024];
    tstate bad[6];
    for (int i = 0; i < 6; i++)
        bad[i] = good_state;
    bad[0].step = INT64_MIN;
    bad[1].step = 4611686018427387904LL; /* "done: 4.6e18 steps" */
    bad[2].epoch = -1;
    bad[3].batch = 11; /* more batches in this epoch than steps in all */
    bad[4].elapsed_s = NAN;
    bad[5].images = INT64_MAX;
    for (int i = 0; i < 6; i++) {
        const char *p = write_train(good_table, &bad[i], err, sizeof err);
        ckpt c;
        ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
        ck_assert_msg(strstr(err, "state.") && strstr(err, "was not used"), "case %d: %s", i,
                      err);
    }
    /* A state section of another size is not a state. */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/x.ckpt", dir);
        ckpt_section s[1] = {{"state", &good_state, 16}};
        ck_assert_int_eq(ckpt_write(p, 1, s, 1, err, sizeof err), EQM_OK);
        ckpt c;
        ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_FORMAT);
        ck_assert_msg(strstr(err, "state section has 16 bytes"), "%s", err);
    }
    /* Against the config: 2 epochs of 10 steps. */
    const struct {
        tstate st;
        int ok;
    } cases[] = {{{20, 2, 0, 20, 1, 640}, 1},  /* complete */
                 {{10, 1, 10, 10, 1, 320}, 1}, /* saved after an epoch's last batch */
                 {{30, 3, 0, 30, 1, 960}, 0},  /* epoch past the config's */
                 {{25, 2, 5, 25, 1, 800}, 0},  /* more steps than the run has */
                 {{15, 1, 15, 15, 1, 480}, 0}}; /* batch past an epoch */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_train(good_table, &cases[i].st, err, sizeof err);
        ckpt c;
        ck_assert_msg(ckpt_read(p, 0, &c, err, sizeof err) == EQM_OK, "%s", err);
        int rc = ckpt_check_progress(&c, p, 2, 10, err, sizeof err);
        ck_assert_msg(cases[i].ok ? rc == EQM_OK : rc == EQM_ERR_FORMAT && strstr(err, "epoch"),
                      "case %zu: rc %d %s", i, rc, err);
        ckpt_free(&c);
    }
    rm_tmp();
}
END_TEST

START_TEST(nonfinite_weights_refused_by_name)
{
    mkdir_tmp();
    char err[1024];
    ckpt c;
    fill_ok();
    W[50] = NAN; /* inside bn1.bias [48, 64) */
    const char *p = write_train(good_table, &good_state, err, sizeof err);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_NUMERIC);
    ck_assert_msg(strstr(err, "bn1.bias") && strstr(err, "NaN") && strstr(err, p), "%s", err);
    fill_ok();
    W[3] = -INFINITY;
    p = write_train(good_table, &good_state, err, sizeof err);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_NUMERIC);
    ck_assert_msg(strstr(err, "conv1.weight") && strstr(err, "Inf"), "%s", err);
    fill_ok();
    O[7] = NAN;
    p = write_train(good_table, &good_state, err, sizeof err);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_NUMERIC);
    ck_assert_msg(strstr(err, "optim"), "%s", err);
    /* In a run folder a NaN last falls back to a good previous, with a warning. */
    fill_ok();
    ckpt_section s[2] = {{"tensors", good_table, strlen(good_table)}, {"params", W, sizeof W}};
    ck_assert_int_eq(ckpt_save_rotate(dir, 3, s, 2, err, sizeof err), EQM_OK);
    W[0] = NAN;
    ck_assert_int_eq(ckpt_save_rotate(dir, 3, s, 2, err, sizeof err), EQM_OK);
    const char *which;
    char warn[1024];
    ck_assert_int_eq(ckpt_load_latest(dir, 3, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_OK);
    ck_assert_str_eq(which, CKPT_PREV);
    ck_assert_msg(strstr(warn, "NaN"), "%s", warn);
    ckpt_free(&c);
    rm_tmp();
}
END_TEST

/* A FIFO or a directory where a checkpoint is expected: refused at once (the test would
 * otherwise block in open() and time out). */
START_TEST(fifo_and_directory_refused)
{
    mkdir_tmp();
    char p[512], err[1024];
    ckpt c;
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_LAST);
    ck_assert(mkfifo(p, 0600) == 0);
    alarm(20);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_IO);
    ck_assert_msg(strstr(err, p) && strstr(err, "FIFO"), "%s", err);
    const char *which;
    char warn[1024];
    ck_assert_int_eq(ckpt_load_latest(dir, 0, &c, &which, warn, sizeof warn, err, sizeof err),
                     EQM_ERR_IO);
    ck_assert_msg(strstr(err, "FIFO"), "%s", err);
    unlink(p);
    ck_assert(mkdir(p, 0700) == 0);
    ck_assert_int_eq(ckpt_read(p, 0, &c, err, sizeof err), EQM_ERR_IO);
    ck_assert_msg(strstr(err, "directory"), "%s", err);
    rmdir(p);
    ck_assert_int_eq(ckpt_read("/dev/zero", 0, &c, err, sizeof err), EQM_ERR_IO);
    ck_assert_msg(strstr(err, "character device"), "%s", err);
    alarm(0);
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
    tcase_add_test(tc, valid_training_checkpoint_reads);
    tcase_add_test(tc, tensor_table_out_of_bounds_refused);
    tcase_add_test(tc, section_entries_out_of_bounds_refused);
    tcase_add_test(tc, state_out_of_range_refused);
    tcase_add_test(tc, nonfinite_weights_refused_by_name);
    tcase_add_test(tc, fifo_and_directory_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
