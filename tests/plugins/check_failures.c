/* tests/plugins/check_failures.c: a plugin that breaks its contract gets a message naming
 * the plugin, its kind, the function and the rule, not an empty message, a crash or a NaN
 * loss later. The plugins are real shared objects (tests/plugins/broken/tp_broken.c)
 * loaded with dlopen through the registry beside this build's real augmentation and
 * dataset plugins; the loader, the sources and the model run as in training. */
#include "config.h"

#include <math.h>

#include "../data/data_util.h"
#include "train/model.h"
#include "train/trainer.h"

static eqm_registry *reg;
static char broken_so[2048];

static void need(const char *msg, const char *what)
{
    ck_assert_msg(strstr(msg, what), "message lacks \"%s\": %s", what, msg);
}

/* A loader over test_ds (fail_at = -1: never) whose two views are `aug` then normalize;
 * returns loader_open's status and, on success, the first loader_next's; msg gets the
 * error. */
static int run_views(const char *aug, const char *fail_at, const char *tstd, char *msg,
                     size_t n)
{
    char l1[128], l2[64], l3[64];
    snprintf(l1, sizeof l1, "augment.bad.plugin=%s", aug);
    snprintf(l2, sizeof l2, "data.fail_at=%s", fail_at);
    snprintf(l3, sizeof l3, "loader.t_standardize=%s", tstd);
    const char *const lines[] = {"data.plugin=test_ds", l2, l1, "augment.norm.plugin=normalize",
                                 "views.view1=bad norm", "views.view2=bad norm",
                                 "views.original=norm", l3, "loader.t_estimate_samples=100",
                                 "loader.batch_size=4", "loader.workers=2", NULL};
    eqm_config *cfg = du_config(lines);
    eqm_loader *l = NULL;
    msg[0] = 0;
    int rc = loader_open(&l, cfg, reg, "train", NULL, msg, n);
    if (!rc) {
        ck_assert_int_eq(loader_start_epoch(l, 0), 0);
        eqm_batch *b;
        while ((rc = loader_next(l, &b)) == EQM_OK)
            loader_release(l, b);
        if (rc == EQM_EOF)
            rc = EQM_OK;
        else
            snprintf(msg, n, "%s", loader_error(l));
        loader_destroy(l);
    }
    config_destroy(cfg);
    ck_assert_msg(rc < 0 || rc == EQM_OK, "a positive status escaped: %d (%s)", rc, msg);
    return rc;
}

START_TEST(test_fixture_sane)
{
    char msg[2048];
    /* the dataset and a plugin that breaks nothing on the loader's path run clean */
    ck_assert_msg(run_views("test_dupname", "-1", "none", msg, sizeof msg) != 0, "dup");
    const char *const lines[] = {"data.plugin=test_ds", "augment.norm.plugin=normalize",
                                 "views.view1=norm", "views.view2=norm", "views.original=norm",
                                 "loader.t_standardize=none", "loader.batch_size=4", NULL};
    eqm_config *cfg = du_config(lines);
    eqm_loader *l = NULL;
    ck_assert_msg(loader_open(&l, cfg, reg, "train", NULL, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_int_eq(loader_start_epoch(l, 0), 0);
    eqm_batch *b;
    int rc, nb = 0;
    while ((rc = loader_next(l, &b)) == EQM_OK) {
        nb++;
        loader_release(l, b);
    }
    ck_assert_msg(rc == EQM_EOF, "%s", loader_error(l));
    ck_assert_int_eq(nb, 2);
    loader_destroy(l);
    config_destroy(cfg);
}
END_TEST

/* sample fails without a message: plugin, kind, file, function and status are named */
START_TEST(test_no_message)
{
    char msg[2048];
    ck_assert_int_eq(run_views("test_nomsg", "-1", "none", msg, sizeof msg), EQM_ERR_FORMAT);
    need(msg, "[augment.bad]");
    need(msg, "augment plugin 'test_nomsg'");
    need(msg, broken_so);
    need(msg, "sample() returned -4 (bad format) and set no message");
}
END_TEST

/* a message set inside sample (on a loader worker) reaches the user */
START_TEST(test_message_in_sample)
{
    char msg[2048];
    ck_assert_int_eq(run_views("test_msg", "-1", "none", msg, sizeof msg), EQM_ERR_INVAL);
    need(msg, "test_msg: the message set in sample for a 8x8 image");
    need(msg, "[augment.bad] (test_msg): sample");
    /* and during t estimation (loader_open, main thread) */
    ck_assert_int_eq(run_views("test_msg", "-1", "estimate", msg, sizeof msg), EQM_ERR_INVAL);
    need(msg, "t estimation");
    need(msg, "test_msg: the message set in sample for a 8x8 image");
}
END_TEST

START_TEST(test_skip_from_apply)
{
    char msg[2048];
    ck_assert_int_eq(run_views("test_skipapply", "-1", "none", msg, sizeof msg), EQM_ERR_STATE);
    need(msg, "augment plugin 'test_skipapply'");
    need(msg, "apply() returned 2 (EQM_SKIP), which it may not return");
}
END_TEST

/* NaN in t: at the sample, naming the augmentation and the field */
START_TEST(test_nan_t)
{
    char msg[2048];
    ck_assert_int_eq(run_views("test_nant", "-1", "none", msg, sizeof msg), EQM_ERR_NUMERIC);
    need(msg, "augment plugin 'test_nant'");
    need(msg, "sample() wrote nan into t field 'b' (1 of its 2)");
    ck_assert_int_eq(run_views("test_nant", "-1", "estimate", msg, sizeof msg), EQM_ERR_NUMERIC);
    need(msg, "t estimation");
    need(msg, "t field 'b'");
}
END_TEST

START_TEST(test_param_names)
{
    char msg[2048];
    ck_assert_int_eq(run_views("test_nullname", "-1", "none", msg, sizeof msg), EQM_ERR_FORMAT);
    need(msg, "augment plugin 'test_nullname'");
    need(msg, "param_name(0) returned NULL");
    ck_assert_int_eq(run_views("test_dupname", "-1", "none", msg, sizeof msg), EQM_ERR_FORMAT);
    need(msg, "augment plugin 'test_dupname'");
    need(msg, "param_name(1) repeats the field name 'a'");
}
END_TEST

START_TEST(test_null_instance)
{
    char msg[2048];
    ck_assert_int_eq(run_views("test_nullself", "-1", "none", msg, sizeof msg), EQM_ERR_STATE);
    need(msg, "augment plugin 'test_nullself'");
    need(msg, "create() returned EQM_OK without an instance");
}
END_TEST

/* api->alloc: alignments 1, 2, 4 work, 3 is refused with a message the failing plugin's
 * error then carries */
START_TEST(test_alloc_alignments)
{
    char msg[2048];
    ck_assert_int_eq(run_views("test_align", "-1", "none", msg, sizeof msg), EQM_ERR_NOMEM);
    need(msg, "[augment.bad] (test_align): create: api->alloc: alignment 3 is not a power of two");
}
END_TEST

/* a dataset's get failing without a message, read on a loader worker */
START_TEST(test_dataset_no_message)
{
    char msg[2048];
    const char *const lines[] = {"data.plugin=test_ds", "data.fail_at=5",
                                 "augment.norm.plugin=normalize", "views.view1=norm",
                                 "views.view2=norm", "views.original=norm",
                                 "loader.t_standardize=none", "loader.batch_size=4",
                                 "loader.shuffle=false", NULL};
    eqm_config *cfg = du_config(lines);
    eqm_loader *l = NULL;
    ck_assert_msg(loader_open(&l, cfg, reg, "train", NULL, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_int_eq(loader_start_epoch(l, 0), 0);
    eqm_batch *b;
    int rc;
    while ((rc = loader_next(l, &b)) == EQM_OK)
        loader_release(l, b);
    ck_assert_int_eq(rc, EQM_ERR_IO);
    snprintf(msg, sizeof msg, "%s", loader_error(l));
    need(msg, "sample 5");
    need(msg, "dataset plugin 'test_ds'");
    need(msg, "get() returned -3 (I/O error) and set no message");
    loader_destroy(l);
    config_destroy(cfg);
}
END_TEST

static const eqm_plugin *find(int kind, const char *name)
{
    const eqm_plugin *p = registry_find(reg, kind, name);
    ck_assert_msg(p != NULL, "%s not loaded", name);
    return p;
}

/* m <- test_bb_nowrite (8x8x3 images, 4 rows) and the method `method` (NULL: none),
 * finalized and initialised. */
static void small_model(eqm_model *m, const char *method)
{
    char err[2048];
    model_reset(m);
    eqm_module_cfg bc = {sizeof bc, 8, 8, 3, 0, 0, 4, 0};
    eqm_module_cfg mc = {sizeof mc, 0, 0, 0, 4, 0, 4, 0};
    ck_assert_msg(model_add_module(m, find(EQM_KIND_BACKBONE, "test_bb_nowrite"), NULL, &bc,
                                   err, sizeof err) == 0, "%s", err);
    if (method)
        ck_assert_msg(model_add_module(m, find(EQM_KIND_METHOD, method), NULL, &mc, err,
                                       sizeof err) == 0, "%s", err);
    ck_assert_msg(model_finalize(m, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(model_init(m, 1, err, sizeof err) == 0, "%s", err);
}

/* a backbone that writes only row 0 of h; a method that never sets its loss */
START_TEST(test_module_outputs)
{
    char err[2048];
    eqm_model m;
    small_model(&m, "test_me_noloss");
    eqm_module_cfg bc = {sizeof bc, 8, 8, 3, 0, 0, 4, 0};
    float x[4 * 8 * 8 * 3] = {0}, h[16];
    for (int i = 0; i < 16; i++)
        h[i] = 7.0f; /* what a previous step left: must not pass for an output */
    eqm_module_io io = {0};
    io.size = sizeof io;
    io.rows = 4;
    io.train = 1;
    io.in = x;
    io.out = h;
    ck_assert_int_eq(model_call(&m.mod[EQM_SLOT_BACKBONE], 0, &io, "forward", err, sizeof err),
                     EQM_ERR_NUMERIC);
    need(err, "backbone/test_bb_nowrite");
    need(err, "forward: output h[1][0] of the 4 x 4 it declares");
    need(err, "did not write it");
    eqm_module_io mio = {0};
    mio.size = sizeof mio;
    mio.rows = 4;
    mio.train = 1;
    mio.in = h;
    mio.loss = 1.5; /* stale */
    ck_assert_int_eq(model_call(&m.mod[EQM_SLOT_METHOD], 0, &mio, "forward", err, sizeof err),
                     EQM_ERR_NUMERIC);
    need(err, "method/test_me_noloss");
    need(err, "io->loss is NaN: forward did not set it");
    model_destroy(&m);

    /* tensor_info returning OK without filling the record */
    model_reset(&m);
    ck_assert_msg(model_add_module(&m, find(EQM_KIND_BACKBONE, "test_bb_noname"), NULL, &bc,
                                   err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(model_finalize(&m, err, sizeof err), EQM_ERR_FORMAT);
    need(err, "backbone/test_bb_noname");
    need(err, "tensor_info(0) returned EQM_OK but left the tensor unnamed");
    model_destroy(&m);
}
END_TEST

/* A method declaring EQM_MODULE_EMBEDDING whose embedding forward writes only row 0 of z
 * (`equimod probe` calls it so): model_call names the plugin and the first unwritten value. */
START_TEST(test_embedding_output)
{
    char err[2048];
    eqm_model m;
    small_model(&m, "test_me_noembed");
    ck_assert_int_eq(m.mod[EQM_SLOT_METHOD].out_dim, 4);
    float h[16], z[16];
    for (int i = 0; i < 16; i++)
        h[i] = 0.25f, z[i] = 7.0f; /* z: what a previous batch left */
    eqm_module_io io = {0};
    io.size = sizeof io;
    io.rows = 4;
    io.n_views = 2;
    io.train = 0;
    io.in = h;
    io.out = z;
    ck_assert_int_eq(model_call(&m.mod[EQM_SLOT_METHOD], 0, &io, "embedding forward", err,
                                sizeof err), EQM_ERR_NUMERIC);
    need(err, "method/test_me_noembed");
    need(err, "tp_broken.so");
    need(err, "embedding forward: output z[1][0] of the 4 x 4 it declares");
    need(err, "did not write it");
    /* its training forward (loss set, out not written) still passes */
    io.train = 1;
    io.out = NULL;
    ck_assert_msg(model_call(&m.mod[EQM_SLOT_METHOD], 0, &io, "forward", err, sizeof err) == 0,
                  "%s", err);
    model_destroy(&m);
}
END_TEST

/* The linear probe's backbone forward (eval linear, [eval] linear_at_end = full) gets the
 * trainer's check: a backbone that writes only row 0 of h is named, not probed on stale
 * features. */
START_TEST(test_linear_probe_output)
{
    char err[2048];
    eqm_model m;
    small_model(&m, NULL);
    const char *const lines[] = {"data.plugin=test_ds", "augment.norm.plugin=normalize",
                                 "views.view1=norm", "views.view2=norm", "views.original=norm",
                                 "views.eval_train=norm", "views.eval_test=norm",
                                 "loader.t_standardize=none", "loader.workers=1", NULL};
    eqm_config *cfg = du_config(lines);
    eval_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.batch = 4, eo.linear_batch = 4, eo.linear_epochs = 1;
    eo.linear_lr = 0.1, eo.linear_final_lr = 0.001, eo.linear_momentum = 0.9;
    eval_acc acc;
    double loss = 0;
    char *desc = NULL, line[512];
    err[0] = 0;
    int rc = linear_of_model(&m, cfg, reg, &eo, 0, &acc, &loss, &desc, line, sizeof line, err,
                             sizeof err);
    ck_assert_msg(rc == EQM_ERR_NUMERIC, "linear probe returned %d: %s", rc, err);
    need(err, "backbone/test_bb_nowrite");
    need(err, "forward (linear probe): output h[1][0] of the 4 x 4 it declares");
    free(desc);
    config_destroy(cfg);
    model_destroy(&m);
}
END_TEST

int main(void)
{
    reg = du_registry();
    const char *dir = getenv("EQM_BUILDDIR");
    if (!reg || !dir)
        return 99;
    snprintf(broken_so, sizeof broken_so, "%s/tests/plugins/broken/.libs/tp_broken.so", dir);
    int n = registry_load_file(reg, broken_so);
    if (n != 15) {
        fprintf(stderr, "%s: %d plugins loaded, 15 expected\n", broken_so, n);
        return 99;
    }
    Suite *s = suite_create("failures");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixture_sane);
    tcase_add_test(tc, test_no_message);
    tcase_add_test(tc, test_message_in_sample);
    tcase_add_test(tc, test_skip_from_apply);
    tcase_add_test(tc, test_nan_t);
    tcase_add_test(tc, test_param_names);
    tcase_add_test(tc, test_null_instance);
    tcase_add_test(tc, test_alloc_alignments);
    tcase_add_test(tc, test_dataset_no_message);
    tcase_add_test(tc, test_module_outputs);
    tcase_add_test(tc, test_embedding_output);
    tcase_add_test(tc, test_linear_probe_output);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    registry_destroy(reg);
    return nf ? 1 : 0;
}
