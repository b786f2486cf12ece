/* tests/fuzz/fuzz_cifar.c: the CIFAR-10 batch reader (plugins/dataset/cifar10 through the
 * registry, reading through the host's api->io: plain files, gzip, tar.gz archives).
 *
 * Input: one mode byte, then the bytes of one data file, written under a scratch root:
 *   mode % 4 == 0  test_batch_first1000.bin      split test, test_set = exact1000
 *              1  test_batch_first1000.bin.gz   split test, test_set = exact1000
 *              2  cifar-10-binary.tar.gz        split train, train_batches = 1
 *                                              (member cifar-10-batches-bin/data_batch_1.bin)
 *              3  test_batch.bin.gz             split test, test_set = official
 * The plugin's real open() reads it. Invariants: a refusal comes with a message; an opened
 * split holds the record count the format prescribes, labels 0..9, and every image can be
 * fetched. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fuzz.h"

static const char *const files[4] = {"test_batch_first1000.bin", "test_batch_first1000.bin.gz",
                                     "cifar-10-binary.tar.gz", "test_batch.bin.gz"};
static const char *const splits[4] = {"test", "test", "train", "test"};
static const char *const sets[4][2] = {{"data.test_set=exact1000", NULL},
                                       {"data.test_set=exact1000", NULL},
                                       {"data.train_batches=1", NULL},
                                       {"data.test_set=official", NULL}};
static const int64_t expect_n[4] = {1000, 1000, 10000, 10000};

static eqm_registry *reg;
static eqm_config *cfg[4];
static const eqm_plugin *pl;
static void *opts[4];

static void init(void)
{
    if (reg)
        return;
    reg = fuzz_registry();
    for (int m = 0; m < 4; m++) {
        char err[1024], root[700];
        snprintf(root, sizeof root, "data.root=%s", fuzz_dir());
        cfg[m] = config_new_empty();
        if (!cfg[m] || config_set(cfg[m], "data.plugin=cifar10", err, sizeof err) ||
            config_set(cfg[m], root, err, sizeof err) ||
            config_set(cfg[m], sets[m][0], err, sizeof err) ||
            config_bind_plugin(cfg[m], reg, "data", EQM_KIND_DATASET, &pl, &opts[m], err,
                               sizeof err))
            fuzz_fail("cannot bind the cifar10 options: %s", err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size < 1)
        return 0;
    int m = data[0] % 4;
    for (int i = 0; i < 4; i++)
        fuzz_unlink(files[i]);
    fuzz_file(files[m], data + 1, size - 1);
    eqm_host *h = host_ctx_create("dataset/cifar10");
    if (!h)
        fuzz_fail("out of memory");
    const eqm_dataset_ops *ops = &pl->ops.dataset;
    void *self = NULL;
    int rc = ops->open(host_api(), h, opts[m], splits[m], &self);
    if (rc) {
        if (!host_ctx_error(h)[0])
            fuzz_fail("cifar10 open failed (%d) without a message", rc);
        if (self)
            fuzz_fail("cifar10 open failed but returned an instance");
        host_ctx_destroy(h);
        return 0;
    }
    eqm_dataset_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (ops->info(self, &info) || info.n_samples != expect_n[m])
        fuzz_fail("cifar10 opened %s with %lld samples, expected %lld", files[m],
                  (long long)info.n_samples, (long long)expect_n[m]);
    static uint8_t pix[32 * 32 * 3];
    for (int64_t i = 0; i < info.n_samples; i += info.n_samples / 7 + 1) {
        eqm_image img = {0};
        img.data = pix;
        int32_t label = -1;
        if (ops->get(self, i, &img, sizeof pix, &label) || label < 0 || label > 9 ||
            img.w != 32 || img.h != 32)
            fuzz_fail("cifar10 get(%lld) failed or gave label %d", (long long)i, (int)label);
    }
    eqm_image img = {0};
    img.data = pix;
    int32_t label;
    if (ops->get(self, info.n_samples, &img, sizeof pix, &label) == EQM_OK)
        fuzz_fail("cifar10 get past the end succeeded");
    ops->close(self);
    host_ctx_destroy(h);
    return 0;
}
