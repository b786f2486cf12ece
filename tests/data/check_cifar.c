/* tests/data/check_cifar.c: the cifar10 dataset plugin (dataset_cifar10.so) on real files.
 * Generated at test time in a temporary folder: a valid batch (.bin, .bin.gz and inside a
 * cifar-10-binary.tar.gz made with libarchive), then broken copies: truncated mid-record,
 * short by whole records, a bad label, corrupt and truncated gzip, missing files, a gzip bomb
 * and an over-long archive member (refused at the batch size, without inflating them), a
 * FIFO, directory or device where a file is expected. Each must fail with a message naming
 * the file and what was expected.
 * With $EQUIMOD_DATA_DIR: the real training set (class counts of data_batch_1 from the
 * data README), the exact first 1,000 test images, and the JPEG q75 full test set
 * (balanced labels; pixels close to the exact ones). */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <zlib.h>

#include "data_util.h"

static eqm_registry *reg;
static char tmpdir[256];

static unsigned char *make_batch(int n, unsigned seed)
{
    unsigned char *d = malloc((size_t)n * 3073);
    for (int r = 0; r < n; r++) {
        d[(size_t)r * 3073] = (unsigned char)((r * 7 + seed) % 10);
        for (int k = 0; k < 3072; k++)
            d[(size_t)r * 3073 + 1 + k] = (unsigned char)(r * 31 + k * 13 + seed);
    }
    return d;
}

static void write_file(const char *rel, const void *d, size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(d, 1, n, f), n);
    fclose(f);
}

static void write_gz(const char *rel, const void *d, size_t n)
{
    uLongf cap = compressBound(n) + 64;
    unsigned char *o = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (unsigned char *)d;
    z.avail_in = (uInt)n;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t on = z.total_out;
    deflateEnd(&z);
    write_file(rel, o, on);
    free(o);
}

static void clean(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

typedef struct ds {
    const eqm_plugin *pl;
    void *opts, *self;
    eqm_host *host;
    eqm_config *cfg;
    int rc;
} ds;

static ds ds_open(const char *root, const char *split, const char *const *kv)
{
    ds d;
    memset(&d, 0, sizeof d);
    d.cfg = config_new_empty();
    char line[1200], err[1024];
    config_set(d.cfg, "data.plugin=cifar10", err, sizeof err);
    snprintf(line, sizeof line, "data.root=%s", root);
    ck_assert(config_set(d.cfg, line, err, sizeof err) == 0);
    for (int i = 0; kv && kv[i]; i++) {
        snprintf(line, sizeof line, "data.%s", kv[i]);
        ck_assert(config_set(d.cfg, line, err, sizeof err) == 0);
    }
    ck_assert_msg(config_bind_plugin(d.cfg, reg, "data", EQM_KIND_DATASET, &d.pl, &d.opts, err, sizeof err) == 0,
                  "%s", err);
    d.host = host_ctx_create("dataset/cifar10");
    d.rc = d.pl->ops.dataset.open(host_api(), d.host, d.opts, split, &d.self);
    return d;
}

static void ds_close(ds *d)
{
    if (d->self)
        d->pl->ops.dataset.close(d->self);
    host_ctx_destroy(d->host);
    free(d->opts);
    config_destroy(d->cfg);
}

static void expect_fail(const char *split, const char *const *kv, int status, const char *s1,
                        const char *s2)
{
    ds d = ds_open(tmpdir, split, kv);
    ck_assert_msg(d.rc == status, "status %d (%s), expected %d", d.rc, host_ctx_error(d.host), status);
    ck_assert_ptr_null(d.self);
    ck_assert_msg(strstr(host_ctx_error(d.host), s1), "'%s' lacks '%s'", host_ctx_error(d.host), s1);
    if (s2)
        ck_assert_msg(strstr(host_ctx_error(d.host), s2), "'%s' lacks '%s'", host_ctx_error(d.host), s2);
    ds_close(&d);
}

static void check_content(ds *d, int n, unsigned seed)
{
    eqm_dataset_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    ck_assert_int_eq(d->pl->ops.dataset.info(d->self, &info), 0);
    ck_assert_int_eq(info.n_samples, n);
    ck_assert_int_eq(info.n_classes, 10);
    ck_assert_str_eq(info.class_names[9], "truck");
    ck_assert_ptr_nonnull(info.desc);
    unsigned char buf[3072];
    for (int r = 0; r < n; r += n / 7 + 1) {
        eqm_image im = {0, 0, 0, 0, 0, buf};
        int32_t lab;
        ck_assert_int_eq(d->pl->ops.dataset.get(d->self, r, &im, sizeof buf, &lab), 0);
        ck_assert_int_eq(lab, (int)((r * 7 + seed) % 10));
        ck_assert(im.w == 32 && im.h == 32 && im.c == 3 && im.stride == 96);
        /* HWC from the planar record: pixel q, channel c = byte 1 + c*1024 + q */
        for (int q = 0; q < 1024; q += 37)
            for (int c = 0; c < 3; c++)
                ck_assert_int_eq(buf[3 * q + c], (unsigned char)(r * 31 + (c * 1024 + q) * 13 + seed));
    }
    int32_t lab;
    eqm_image im = {0, 0, 0, 0, 0, buf};
    ck_assert_int_eq(d->pl->ops.dataset.get(d->self, n, &im, sizeof buf, &lab), EQM_ERR_INVAL);
}

static const char *const one_batch[] = {"train_batches=1", NULL};

START_TEST(test_formats)
{
    clean();
    size_t n = 10000 * 3073;
    unsigned char *b = make_batch(10000, 3);
    /* plain .bin in root */
    write_file("data_batch_1.bin", b, n);
    ds d = ds_open(tmpdir, "train", one_batch);
    ck_assert_msg(d.rc == 0, "%s", host_ctx_error(d.host));
    check_content(&d, 10000, 3);
    ds_close(&d);
    clean();
    /* gzipped, in cifar-10-batches-bin/ */
    char p[512];
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin", tmpdir);
    mkdir(p, 0755);
    write_gz("cifar-10-batches-bin/data_batch_1.bin.gz", b, n);
    d = ds_open(tmpdir, "train", one_batch);
    ck_assert_msg(d.rc == 0, "%s", host_ctx_error(d.host));
    check_content(&d, 10000, 3);
    ds_close(&d);
    clean();
    /* the official archive layout */
    snprintf(p, sizeof p, "%s/cifar-10-binary.tar.gz", tmpdir);
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    ck_assert_int_eq(archive_write_open_filename(a, p), ARCHIVE_OK);
    unsigned char *t = make_batch(10000, 5);
    const char *names[2] = {"cifar-10-batches-bin/data_batch_1.bin", "cifar-10-batches-bin/test_batch.bin"};
    for (int i = 0; i < 2; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_size(e, (la_int64_t)n);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_data(a, i ? t : b, n), (la_ssize_t)n);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    d = ds_open(tmpdir, "train", one_batch);
    ck_assert_msg(d.rc == 0, "%s", host_ctx_error(d.host));
    check_content(&d, 10000, 3);
    ds_close(&d);
    d = ds_open(tmpdir, "test", NULL); /* auto: the official test batch from the archive */
    ck_assert_msg(d.rc == 0, "%s", host_ctx_error(d.host));
    check_content(&d, 10000, 5);
    eqm_dataset_info info = {.size = sizeof info};
    d.pl->ops.dataset.info(d.self, &info);
    ck_assert_msg(strstr(info.desc, "official, all 10,000 exact"), "%s", info.desc);
    ds_close(&d);
    /* the archive lacks data_batch_2 */
    expect_fail("train", (const char *[]){"train_batches=2", NULL}, EQM_ERR_NOTFOUND,
                "cifar-10-binary.tar.gz", "data_batch_2.bin");
    clean();
    /* exact1000 test set chosen by auto when there is no official one */
    write_gz("test_batch_first1000.bin.gz", t, 1000 * 3073);
    d = ds_open(tmpdir, "test", NULL);
    ck_assert_msg(d.rc == 0, "%s", host_ctx_error(d.host));
    check_content(&d, 1000, 5);
    d.pl->ops.dataset.info(d.self, &info);
    ck_assert_msg(strstr(info.desc, "exact first 1,000"), "%s", info.desc);
    ds_close(&d);
    expect_fail("test", (const char *[]){"test_set=official", NULL}, EQM_ERR_NOTFOUND,
                "no official test set", NULL);
    expect_fail("test", (const char *[]){"test_set=jpeg_full", NULL}, EQM_ERR_NOTFOUND,
                "cifar10-test-jpeg-q75.tar.gz", NULL);
    expect_fail("validation", NULL, EQM_ERR_INVAL, "unknown split", NULL);
    free(t);
    free(b);
}
END_TEST

START_TEST(test_malformed)
{
    clean();
    size_t n = 10000 * 3073;
    unsigned char *b = make_batch(10000, 1);
    /* missing */
    expect_fail("train", one_batch, EQM_ERR_NOTFOUND, "data_batch_1.bin not found", tmpdir);
    /* truncated mid-record */
    write_file("data_batch_1.bin", b, n - 100);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "data_batch_1.bin", "not a whole number of 3073-byte");
    /* short by whole records */
    write_file("data_batch_1.bin", b, n - 3073);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "9999 records", "expected 10000");
    /* too long */
    unsigned char *b2 = make_batch(10001, 1);
    write_file("data_batch_1.bin", b2, n + 3073);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "30733073 bytes",
                "more than the 30730000 expected");
    free(b2);
    /* bad label */
    b[5 * 3073] = 10;
    write_file("data_batch_1.bin", b, n);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "record 5 has label 10", "expected 0..9");
    b[5 * 3073] = 1;
    clean();
    /* corrupt gzip: flip bytes in the middle of the deflate stream */
    write_gz("data_batch_1.bin.gz", b, n);
    char p[512];
    snprintf(p, sizeof p, "%s/data_batch_1.bin.gz", tmpdir);
    FILE *f = fopen(p, "r+b");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz / 2, SEEK_SET);
    unsigned char junk[64];
    memset(junk, 0xA5, sizeof junk);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "data_batch_1.bin.gz", "gzip");
    /* truncated gzip */
    write_gz("data_batch_1.bin.gz", b, n);
    ck_assert_int_eq(truncate(p, sz / 3), 0);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "data_batch_1.bin.gz", "truncated gzip");
    /* a gzip of the wrong size */
    write_gz("data_batch_1.bin.gz", b, n - 3073 * 10);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "9990 records", NULL);
    /* not gzip at all */
    write_file("data_batch_1.bin.gz", b, 5000);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "data_batch_1.bin.gz", NULL);
    clean();
    /* truncated archive */
    write_gz("cifar-10-binary.tar.gz", b, 4000); /* gzip of garbage: not a tar */
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "cifar-10-binary.tar.gz", NULL);
    free(b);
}
END_TEST

/* Peak resident memory of this (forked) test process, MiB. */
static long peak_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* A gzip bomb: 24 concatenated gzip members of 64 MiB of zeros each (1.5 GiB of output
 * from a ~1.5 MB file) named data_batch_1.bin.gz. It must be refused at the size of a
 * batch (30,730,000 bytes) without inflating it all: before the cap this read 1.5 GiB. */
START_TEST(test_gzip_bomb)
{
    clean();
    const size_t chunk = 64u << 20;
    unsigned char *zeros = calloc(1, chunk);
    uLongf cap = compressBound(chunk) + 64;
    unsigned char *o = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = zeros;
    z.avail_in = (uInt)chunk;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t on = z.total_out;
    deflateEnd(&z);
    free(zeros);
    char p[512];
    snprintf(p, sizeof p, "%s/data_batch_1.bin.gz", tmpdir);
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 24; i++)
        ck_assert_uint_eq(fwrite(o, 1, on, f), on);
    fclose(f);
    free(o);
    long before = peak_mib();
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "data_batch_1.bin.gz",
                "inflates to more than 30730000 bytes");
    long grew = peak_mib() - before;
    ck_assert_msg(grew < 400, "reading the bomb raised the peak RSS by %ld MiB", grew);
    clean();
    /* An archive member longer than a batch is refused from its header, before its data. */
    size_t n = 10000 * 3073 + 3073;
    unsigned char *b = make_batch(10001, 2);
    snprintf(p, sizeof p, "%s/cifar-10-binary.tar.gz", tmpdir);
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    ck_assert_int_eq(archive_write_open_filename(a, p), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "cifar-10-batches-bin/data_batch_1.bin");
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
    ck_assert_int_eq(archive_write_data(a, b, n), (la_ssize_t)n);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    free(b);
    expect_fail("train", one_batch, EQM_ERR_FORMAT, "data_batch_1.bin",
                "more than the 30730000 expected");
    clean();
}
END_TEST

/* The host's file service reads regular files only: a FIFO (which would block open() until
 * a writer came), a directory or a device is refused at once with the path and what it is. */
START_TEST(test_not_regular)
{
    clean();
    const eqm_io_api *io = host_api()->io;
    eqm_host *h = host_ctx_create("test");
    char p[512];
    snprintf(p, sizeof p, "%s/data_batch_1.bin", tmpdir);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    alarm(20);
    void *d = NULL;
    size_t n = 0;
    ck_assert_int_eq(io->read_file(h, p, &d, &n), EQM_ERR_IO);
    ck_assert_msg(strstr(host_ctx_error(h), p) && strstr(host_ctx_error(h), "FIFO"), "%s",
                  host_ctx_error(h));
    snprintf(p, sizeof p, "%s/data_batch_2.bin.gz", tmpdir);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    ck_assert_int_eq(io->read_file_max(h, p, 100, &d, &n), EQM_ERR_IO);
    ck_assert_msg(strstr(host_ctx_error(h), "FIFO"), "%s", host_ctx_error(h));
    ck_assert_int_eq(io->read_file(h, tmpdir, &d, &n), EQM_ERR_IO);
    ck_assert_msg(strstr(host_ctx_error(h), "directory"), "%s", host_ctx_error(h));
    ck_assert_int_eq(io->read_file(h, "/dev/zero", &d, &n), EQM_ERR_IO);
    ck_assert_msg(strstr(host_ctx_error(h), "character device"), "%s", host_ctx_error(h));
    alarm(0);
    /* and the limit on a plain file */
    unsigned char *b = make_batch(2, 1);
    write_file("small.bin", b, 2 * 3073);
    free(b);
    snprintf(p, sizeof p, "%s/small.bin", tmpdir);
    ck_assert_int_eq(io->read_file_max(h, p, 3073, &d, &n), EQM_ERR_FORMAT);
    ck_assert_msg(strstr(host_ctx_error(h), "6146 bytes, more than the 3073"), "%s",
                  host_ctx_error(h));
    ck_assert_int_eq(io->read_file_max(h, p, 6146, &d, &n), EQM_OK);
    ck_assert_uint_eq(n, 6146);
    host_api()->free(h, d);
    host_ctx_destroy(h);
    clean();
}
END_TEST

START_TEST(test_real)
{
    const char *dir = du_cifar_dir();
    if (!dir) {
        fprintf(stderr, "%s: skipped (no CIFAR-10 under $EQUIMOD_DATA_DIR/cifar10)\n", __func__);
        return;
    }
    ds d = ds_open(dir, "train", NULL);
    ck_assert_msg(d.rc == 0, "%s", host_ctx_error(d.host));
    eqm_dataset_info info = {.size = sizeof info};
    d.pl->ops.dataset.info(d.self, &info);
    ck_assert_int_eq(info.n_samples, 50000);
    /* class counts of data_batch_1 (shared/data/README.md) */
    const int want[10] = {1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981};
    int cnt[10] = {0};
    unsigned char buf[3072];
    double sum = 0;
    for (int i = 0; i < 50000; i++) {
        eqm_image im = {0, 0, 0, 0, 0, buf};
        int32_t lab;
        ck_assert_int_eq(d.pl->ops.dataset.get(d.self, i, &im, sizeof buf, &lab), 0);
        if (i < 10000)
            cnt[lab]++;
        if (i % 50 == 0)
            for (int k = 0; k < 3072; k += 3)
                sum += buf[k];
    }
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(cnt[c], want[c]);
    /* red-channel mean 0.4914 (README), on a 1/50 subsample */
    ck_assert_msg(fabs(sum / (1000.0 * 1024) / 255.0 - 0.4914) < 0.01, "mean %g", sum / (1000.0 * 1024) / 255.0);
    ds_close(&d);
    /* exact first 1,000 */
    ds e = ds_open(dir, "test", (const char *[]){"test_set=exact1000", NULL});
    ck_assert_msg(e.rc == 0, "%s", host_ctx_error(e.host));
    e.pl->ops.dataset.info(e.self, &info);
    ck_assert_int_eq(info.n_samples, 1000);
    const int wt[10] = {103, 89, 100, 103, 90, 86, 112, 102, 106, 109};
    int ct[10] = {0};
    for (int i = 0; i < 1000; i++) {
        eqm_image im = {0, 0, 0, 0, 0, buf};
        int32_t lab;
        e.pl->ops.dataset.get(e.self, i, &im, sizeof buf, &lab);
        ct[lab]++;
    }
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(ct[c], wt[c]);
    /* the JPEG full test set: same labels for 0..999, pixels within JPEG error */
    ds j = ds_open(dir, "test", (const char *[]){"test_set=jpeg_full", NULL});
    if (j.rc == EQM_ERR_UNSUPPORTED) {
        ds_close(&j);
        ds_close(&e);
        return;
    }
    ck_assert_msg(j.rc == 0, "%s", host_ctx_error(j.host));
    j.pl->ops.dataset.info(j.self, &info);
    ck_assert_int_eq(info.n_samples, 10000);
    ck_assert_msg(strstr(info.desc, "JPEG"), "%s", info.desc);
    int cj[10] = {0};
    double mae = 0;
    unsigned char b2[3072];
    for (int i = 0; i < 10000; i++) {
        eqm_image im = {0, 0, 0, 0, 0, buf};
        int32_t lab, lab2;
        ck_assert_int_eq(j.pl->ops.dataset.get(j.self, i, &im, sizeof buf, &lab), 0);
        cj[lab]++;
        if (i < 1000) {
            eqm_image im2 = {0, 0, 0, 0, 0, b2};
            e.pl->ops.dataset.get(e.self, i, &im2, sizeof b2, &lab2);
            ck_assert_int_eq(lab, lab2);
            for (int k = 0; k < 3072; k++)
                mae += abs((int)buf[k] - (int)b2[k]);
        }
    }
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(cj[c], 1000);
    mae /= 1000.0 * 3072;
    ck_assert_msg(mae > 1 && mae < 10, "JPEG mean abs error %g (README: about 5.8)", mae);
    ds_close(&j);
    ds_close(&e);
}
END_TEST

int main(void)
{
    reg = du_registry();
    if (!reg)
        return 99;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/eqm_cifar_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 99;
    Suite *s = suite_create("cifar10");
    TCase *tc = tcase_create("cifar10");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_formats);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_gzip_bomb);
    tcase_add_test(tc, test_not_regular);
    tcase_add_test(tc, test_real);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) {
    }
    registry_destroy(reg);
    return nf ? 1 : 0;
}
