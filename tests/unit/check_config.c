/* tests/unit/check_config.c: the INI reader, typed binding, --set, resolved output.
 *
 * Configs are written to temporary files and read back with config_load (libinih). The
 * binding tests use a spec table defined here with one option of every type; the resolve
 * and round-trip tests load the real fixture plugin file tests/plugins/tp_a_valid.so
 * ($EQM_TEST_PLUGIN_DIR) with dlopen.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "sections.h"

typedef struct opts {
    int flag;
    int64_t count;
    double rate;
    const char *label;
    int mode;
} opts;

static const eqm_param_spec spec[] = {
    {"flag", EQM_PARAM_BOOL, offsetof(opts, flag), "false", 1, 0, NULL, "a switch"},
    {"count", EQM_PARAM_INT, offsetof(opts, count), "3", 1, 10, NULL, "a count"},
    {"rate", EQM_PARAM_FLOAT, offsetof(opts, rate), "0.5", 0, 1, NULL, "a probability"},
    {"label", EQM_PARAM_STRING, offsetof(opts, label), NULL, 1, 0, NULL, "free text"},
    {"mode", EQM_PARAM_ENUM, offsetof(opts, mode), "fast", 1, 0, "fast|slow|exact", "choice"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static char tmp_path[64];
static char err[2048];

/* Writes `text` to a fresh temporary file; returns its path. */
static const char *write_tmp(const char *text)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/eqm_cfg_XXXXXX.ini");
    int fd = mkstemps(tmp_path, 4);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return tmp_path;
}

static eqm_config *load_text(const char *text)
{
    const char *p = write_tmp(text);
    err[0] = '\0';
    eqm_config *c = config_load(p, err, sizeof err);
    unlink(p);
    return c;
}

/* Loads text, binds [s] with spec; returns the status, opts in *o. */
static int bind_text(const char *text, opts *o, eqm_config **out)
{
    eqm_config *c = load_text(text);
    ck_assert_msg(c != NULL, "load failed: %s", err);
    memset(o, 0, sizeof *o);
    int rc = config_bind(c, "s", spec, o, NULL, err, sizeof err);
    if (out)
        *out = c;
    else
        config_destroy(c);
    return rc;
}

#define ASSERT_ERR_HAS(sub) ck_assert_msg(strstr(err, sub) != NULL, "'%s' not in: %s", sub, err)

START_TEST(parse_types_and_comments)
{
    eqm_config *c;
    opts o;
    int rc = bind_text("# leading comment\n"
                       "; another comment\n"
                       "\n"
                       "[s]\n"
                       "flag = yes\n"
                       "   # indented comment\n"
                       "count=7\n"
                       "  rate = 0.25   ; inline comment\n"
                       "label = hello world\n"
                       "mode = exact\n"
                       "[other]\n"
                       "rest =; a ';' that begins the value starts a comment too\n",
                       &o, &c);
    ck_assert_msg(rc == EQM_OK, "%s", err);
    ck_assert_int_eq(o.flag, 1);
    ck_assert_int_eq(o.count, 7);
    ck_assert(o.rate == 0.25);
    ck_assert_str_eq(o.label, "hello world");
    ck_assert_int_eq(o.mode, 2);
    ck_assert_str_eq(config_get(c, "s", "count"), "7");
    ck_assert_ptr_null(config_get(c, "s", "nope"));
    /* the fuzzer's finding (tests/fuzz/regress/config/value-starting-with-semicolon): inih
     * kept "; a ..." as the value, config_write printed "rest = ; a ...", and the next read
     * dropped it */
    ck_assert_str_eq(config_get(c, "other", "rest"), "");
    char where[128];
    snprintf(where, sizeof where, "%s:8", tmp_path);
    ck_assert_str_eq(config_where(c, "s", "rate"), where);
    config_destroy(c);
}
END_TEST

START_TEST(defaults)
{
    opts o;
    eqm_config *c;
    ck_assert_int_eq(bind_text("[s]\n", &o, &c), EQM_OK);
    ck_assert_int_eq(o.flag, 0);
    ck_assert_int_eq(o.count, 3);
    ck_assert(o.rate == 0.5);
    ck_assert_str_eq(o.label, "");
    ck_assert_int_eq(o.mode, 0);
    config_destroy(c);
}
END_TEST

START_TEST(where_and_sections)
{
    eqm_config *c = load_text("[a]\nx = 1\n\n[b.c]\ny = 2\n");
    ck_assert_ptr_nonnull(c);
    const char *path = tmp_path;
    char want[128];
    snprintf(want, sizeof want, "%s:5", path);
    ck_assert_str_eq(config_where(c, "b.c", "y"), want);
    snprintf(want, sizeof want, "%s:4", path);
    ck_assert_str_eq(config_where(c, "b.c", NULL), want);
    ck_assert_str_eq(config_section_at(c, 0), "a");
    ck_assert_str_eq(config_section_at(c, 1), "b.c");
    ck_assert_ptr_null(config_section_at(c, 2));
    ck_assert(config_has_section(c, "b.c"));
    ck_assert(!config_has_section(c, "b"));
    config_destroy(c);
}
END_TEST

/* Each wrong value names file:line, section and key, and says what is wrong. */
START_TEST(type_and_range_errors)
{
    static const struct {
        const char *line, *msg;
    } cases[] = {
        {"count = 11", "11 is out of range [1, 10]"},
        {"count = 0", "0 is out of range [1, 10]"},
        {"count = 2.5", "'2.5' is not an integer"},
        {"count = ", "'' is not an integer"},
        {"count = 99999999999999999999", "too large"},
        {"rate = 1.5", "1.5 is out of range [0, 1]"},
        {"rate = nan", "not a finite number"},
        {"rate = abc", "'abc' is not a number"},
        {"flag = maybe", "'maybe' is not a boolean"},
        {"mode = slwo", "'slwo' is not one of fast|slow|exact; did you mean 'slow'?"},
        {"mode = FAST", "not one of fast|slow|exact"},
        {"count = 3 # three", "'#' starts a comment only at the beginning of a line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[s]\n\n%s\n", cases[i].line);
        opts o;
        ck_assert_int_eq(bind_text(text, &o, NULL), EQM_ERR_INVAL);
        char where[128];
        snprintf(where, sizeof where, "%s:3: [s] ", tmp_path);
        ck_assert_msg(!strncmp(err, where, strlen(where)), "case %zu: %s", i, err);
        ASSERT_ERR_HAS(cases[i].msg);
    }
}
END_TEST

START_TEST(unknown_key)
{
    opts o;
    ck_assert_int_eq(bind_text("[s]\ncount = 2\ncuont = 4\n", &o, NULL), EQM_ERR_INVAL);
    char want[160];
    snprintf(want, sizeof want, "%s:3: [s] cuont: unknown key; did you mean 'count'?",
             tmp_path);
    ASSERT_ERR_HAS(want);
    ASSERT_ERR_HAS("hint: valid keys: flag, count, rate, label, mode");
    /* far from every key: no suggestion */
    ck_assert_int_eq(bind_text("[s]\nzzzzzzzz = 4\n", &o, NULL), EQM_ERR_INVAL);
    ck_assert(!strstr(err, "did you mean"));
}
END_TEST

START_TEST(unknown_section)
{
    eqm_config *c = load_text("[run]\nseed = 1\n\n[augmnt.view1]\nplugin = x\n");
    ck_assert_ptr_nonnull(c);
    run_opts ro;
    memset(&ro, 0, sizeof ro);
    ck_assert_int_eq(config_bind(c, "run", run_spec, &ro, NULL, err, sizeof err), EQM_OK);
    ck_assert_int_eq(config_check_unused(c, err, sizeof err), EQM_ERR_INVAL);
    char want[160];
    snprintf(want, sizeof want,
             "%s:4: [augmnt.view1]: unknown section; did you mean 'augment.view1'?", tmp_path);
    ASSERT_ERR_HAS(want);
    ASSERT_ERR_HAS("hint: valid sections:");
    config_destroy(c);

    c = load_text("[rnu]\nseed = 1\n");
    ck_assert_int_eq(config_check_unused(c, err, sizeof err), EQM_ERR_INVAL);
    ASSERT_ERR_HAS("[rnu]: unknown section; did you mean 'run'?");
    config_destroy(c);

    /* a key read by nobody in a section that was otherwise read */
    c = load_text("[x]\na = 1\nb = 2\n");
    ck_assert_str_eq(config_get(c, "x", "a"), "1");
    ck_assert_int_eq(config_check_unused(c, err, sizeof err), EQM_ERR_INVAL); /* [x] unused */
    config_destroy(c);
}
END_TEST

START_TEST(syntax_errors)
{
    static const struct {
        const char *text, *msg;
        int line;
    } cases[] = {
        {"[s]\ncount 3\n", "syntax error", 2},
        {"[s\ncount = 3\n", "syntax error", 1},
        {"count = 3\n", "outside any section", 1},
        {"[s]\ncount = 3\ncount = 4\n", "duplicate key (first set at line 2)", 3},
        {"[S]\na = 1\n", "bad section name", 1},
        {"[s]\nBad = 1\n", "bad key name", 2},
        {"[s..t]\na = 1\n", "bad section name", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eqm_config *c = load_text(cases[i].text);
        ck_assert_msg(c == NULL, "case %zu loaded", i);
        char where[128];
        snprintf(where, sizeof where, "%s:%d: ", tmp_path, cases[i].line);
        ck_assert_msg(!strncmp(err, where, strlen(where)), "case %zu: %s", i, err);
        ASSERT_ERR_HAS(cases[i].msg);
    }
    /* an indented line is its own line, not a continuation of the previous value */
    eqm_config *c = load_text("[s]\nlabel = a\n  count = 4\n");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(config_get(c, "s", "label"), "a");
    ck_assert_str_eq(config_get(c, "s", "count"), "4");
    config_destroy(c);
    /* missing file */
    ck_assert_ptr_null(config_load("/nonexistent/x.ini", err, sizeof err));
    ASSERT_ERR_HAS("/nonexistent/x.ini: cannot open");
}
END_TEST

START_TEST(overlong_line)
{
    char text[1024];
    char val[300];
    memset(val, 'a', 196);
    val[196] = '\0';
    /* "label = " + 190 chars = 198 bytes: the longest line accepted */
    snprintf(text, sizeof text, "[s]\nlabel = %.190s\n", val);
    eqm_config *c = load_text(text);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(strlen(config_get(c, "s", "label")), 190);
    config_destroy(c);
    snprintf(text, sizeof text, "[s]\nflag = 1\nlabel = %.191s\ncount = 2\n", val);
    ck_assert_ptr_null(load_text(text));
    char want[128];
    snprintf(want, sizeof want, "%s:3: line is 199 bytes long; the limit is 198", tmp_path);
    ASSERT_ERR_HAS(want);
    ASSERT_ERR_HAS("hint:");
}
END_TEST

START_TEST(set_override)
{
    eqm_config *c = load_text("[s]\ncount = 2\n[augment.view1]\nplugin = x\n");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(config_set(c, "s.count=5", err, sizeof err), EQM_OK);
    ck_assert_int_eq(config_set(c, " s.mode = slow ", err, sizeof err), EQM_OK);
    ck_assert_int_eq(config_set(c, "augment.view1.scale=0.2", err, sizeof err), EQM_OK);
    ck_assert_int_eq(config_set(c, "new.sec.key=v", err, sizeof err), EQM_OK);
    ck_assert_str_eq(config_get(c, "augment.view1", "scale"), "0.2");
    ck_assert_str_eq(config_get(c, "new.sec", "key"), "v");
    ck_assert_str_eq(config_where(c, "s", "count"), "--set s.count");
    opts o;
    memset(&o, 0, sizeof o);
    ck_assert_int_eq(config_bind(c, "s", spec, &o, NULL, err, sizeof err), EQM_OK);
    ck_assert_int_eq(o.count, 5);
    ck_assert_int_eq(o.mode, 1);
    /* a bad override is reported against --set */
    ck_assert_int_eq(config_set(c, "s.count=50", err, sizeof err), EQM_OK);
    ck_assert_int_eq(config_bind(c, "s", spec, &o, NULL, err, sizeof err), EQM_ERR_INVAL);
    ASSERT_ERR_HAS("--set s.count: [s] count: 50 is out of range [1, 10]");
    ck_assert_int_eq(config_set(c, "nodot=1", err, sizeof err), EQM_ERR_INVAL);
    ASSERT_ERR_HAS("expected section.key=value");
    ck_assert_int_eq(config_set(c, "s.count", err, sizeof err), EQM_ERR_INVAL);
    ck_assert_int_eq(config_set(c, "S.count=1", err, sizeof err), EQM_ERR_INVAL);
    ck_assert_int_eq(config_set(c, "s.label=a ;b", err, sizeof err), EQM_ERR_INVAL);
    ASSERT_ERR_HAS("comment");
    ck_assert_int_eq(config_set(c, "s.label=;b", err, sizeof err), EQM_ERR_INVAL);
    ASSERT_ERR_HAS("starts with ';'");
    config_destroy(c);
}
END_TEST

START_TEST(param_parse_direct)
{
    int b;
    int64_t l;
    double d;
    ck_assert_int_eq(param_parse(&spec[0], "ON", &b, err, sizeof err), EQM_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(param_parse(&spec[0], "0", &b, err, sizeof err), EQM_OK);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(param_parse(&spec[1], "-3", &l, err, sizeof err), EQM_ERR_INVAL);
    ck_assert_int_eq(param_parse(&spec[1], "+10", &l, err, sizeof err), EQM_OK);
    ck_assert_int_eq(l, 10);
    ck_assert_int_eq(param_parse(&spec[2], "1e-3", &d, err, sizeof err), EQM_OK);
    ck_assert(fabs(d - 1e-3) < 1e-18);
    ck_assert_int_eq(param_parse(&spec[2], "inf", &d, err, sizeof err), EQM_ERR_INVAL);
    /* whole tables */
    ck_assert_int_eq(param_table_check(spec, err, sizeof err), EQM_OK);
    ck_assert_int_eq(param_table_check(run_spec, err, sizeof err), EQM_OK);
    for (size_t i = 0; host_sections[i].name; i++)
        ck_assert_int_eq(param_table_check(host_sections[i].spec, err, sizeof err), EQM_OK);
    static const char *const names[] = {"depth", "width", "seed"};
    ck_assert_str_eq(suggest_closest("dpeth", names, 3), "depth");
    ck_assert_ptr_null(suggest_closest("depth", names, 3));
    ck_assert_ptr_null(suggest_closest("optimizer", names, 3));
}
END_TEST

/* Resolved output of a bound config reads back to the same values. */
START_TEST(write_round_trip_bind)
{
    eqm_config *c = load_text("[s]\nrate = 0.125\nlabel = two words\n");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(config_set(c, "s.mode=exact", err, sizeof err), EQM_OK);
    opts a;
    memset(&a, 0, sizeof a);
    ck_assert_int_eq(config_bind(c, "s", spec, &a, NULL, err, sizeof err), EQM_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_write(c, f);
    fclose(f);
    /* every key, defaults included, in spec order */
    ck_assert_msg(strstr(buf, "[s]\nflag = false\ncount = 3\nrate = 0.125\n"
                              "label = two words\nmode = exact\n"),
                  "%s", buf);
    eqm_config *c2 = load_text(buf);
    ck_assert_msg(c2 != NULL, "%s", err);
    opts b;
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(config_bind(c2, "s", spec, &b, NULL, err, sizeof err), EQM_OK);
    ck_assert_int_eq(a.flag, b.flag);
    ck_assert_int_eq(a.count, b.count);
    ck_assert(a.rate == b.rate);
    ck_assert_str_eq(a.label, b.label);
    ck_assert_int_eq(a.mode, b.mode);
    /* binding a section again leaves strings of the earlier binding valid */
    opts again;
    memset(&again, 0, sizeof again);
    ck_assert_int_eq(config_bind(c, "s", spec, &again, NULL, err, sizeof err), EQM_OK);
    ck_assert_str_eq(a.label, "two words");
    ck_assert_str_eq(again.label, "two words");
    config_destroy(c);
    config_destroy(c2);
    free(buf);
}
END_TEST

/* ---- against real plugins: the fixture file of tests/plugins ---- */

static eqm_registry *fixture_registry(void)
{
    const char *d = getenv("EQM_TEST_PLUGIN_DIR");
    ck_assert_msg(d && *d, "EQM_TEST_PLUGIN_DIR is not set (run through make check)");
    char path[1024];
    snprintf(path, sizeof path, "%s/tp_a_valid.so", d);
    eqm_registry *r = registry_create();
    ck_assert_int_eq(registry_load_file(r, path), 5);
    return r;
}

static const char *full_config = "[run]\n"
                                 "seed = 42\n"
                                 "[data]\n"
                                 "plugin = test_tiny\n"
                                 "count = 9\n"
                                 "[augment.view1]\n"
                                 "plugin = test_identity\n"
                                 "mode = slow\n"
                                 "[augment.view2]\n"
                                 "plugin = test_identity\n"
                                 "[backbone]\n"
                                 "plugin = test_tiny\n"
                                 "label = resnet-ish\n"
                                 "[method]\n"
                                 "plugin = test_tiny\n";

START_TEST(resolve_and_round_trip)
{
    eqm_registry *r = fixture_registry();
    eqm_config *c = load_text(full_config);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(config_set(c, "augment.view2.rate=0.75", err, sizeof err), EQM_OK);
    ck_assert_msg(config_resolve(c, r, err, sizeof err) == EQM_OK, "%s", err);
    const opts *v1 = config_section_opts(c, "augment.view1");
    const opts *v2 = config_section_opts(c, "augment.view2");
    const opts *bb = config_section_opts(c, "backbone");
    const run_opts *ro = config_section_opts(c, "run");
    ck_assert_ptr_nonnull(v1);
    ck_assert_ptr_nonnull(v2);
    ck_assert_ptr_nonnull(ro);
    ck_assert_int_eq(v1->mode, 1);
    ck_assert(v2->rate == 0.75);
    ck_assert_str_eq(bb->label, "resnet-ish");
    ck_assert_int_eq(((const opts *)config_section_opts(c, "data"))->count, 9);
    ck_assert_int_eq(ro->seed, 42);
    ck_assert_str_eq(ro->out_dir, "runs");
    ck_assert_str_eq(config_section_plugin(c, "augment.view1")->desc.name, "test_identity");
    ck_assert_int_eq(config_section_plugin(c, "method")->desc.kind, EQM_KIND_METHOD);
    ck_assert_ptr_null(config_section_plugin(c, "run"));
    ck_assert_ptr_null(config_section_plugin(c, "equimod"));

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_write(c, f);
    fclose(f);
    ck_assert_msg(strstr(buf, "[augment.view2]\nplugin = test_identity\nflag = false\n"
                              "count = 3\nrate = 0.75\nlabel = \nmode = fast\n"),
                  "%s", buf);
    ck_assert_msg(strstr(buf, "[method]\nplugin = test_tiny\n"), "%s", buf);
    ck_assert_msg(strstr(buf, "[run]\nseed = 42\nout_dir = runs\nname = \n"), "%s", buf);

    /* the output is a config that resolves to the same values and prints the same */
    eqm_config *c2 = load_text(buf);
    ck_assert_msg(c2 != NULL, "%s", err);
    ck_assert_msg(config_resolve(c2, r, err, sizeof err) == EQM_OK, "%s", err);
    const char *sections[] = {"data", "augment.view1", "augment.view2", "backbone"};
    for (size_t i = 0; i < 4; i++) {
        const opts *a = config_section_opts(c, sections[i]);
        const opts *b = config_section_opts(c2, sections[i]);
        ck_assert_int_eq(a->flag, b->flag);
        ck_assert_int_eq(a->count, b->count);
        ck_assert(a->rate == b->rate);
        ck_assert_str_eq(a->label, b->label);
        ck_assert_int_eq(a->mode, b->mode);
    }
    ck_assert_int_eq(((const run_opts *)config_section_opts(c2, "run"))->seed, 42);
    char *buf2 = NULL;
    size_t len2 = 0;
    f = open_memstream(&buf2, &len2);
    config_write(c2, f);
    fclose(f);
    /* identical after the two header comment lines */
    const char *b1 = strstr(buf, "\n\n["), *b2 = strstr(buf2, "\n\n[");
    ck_assert_ptr_nonnull(b1);
    ck_assert_ptr_nonnull(b2);
    ck_assert_str_eq(b1, b2);
    free(buf);
    free(buf2);
    config_destroy(c);
    config_destroy(c2);
    registry_destroy(r);
}
END_TEST

START_TEST(resolve_errors)
{
    eqm_registry *r = fixture_registry();
    static const struct {
        const char *set, *msg;
    } cases[] = {
        {"backbone.plugin=test_tyni", "[backbone] plugin: no backbone plugin named 'test_tyni'; "
                                      "did you mean 'test_tiny'?"},
        {"backbone.cuont=1", "[backbone] cuont: unknown key; did you mean 'count'?"},
        {"augment.view1.count=0", "[augment.view1] count: 0 is out of range [1, 10]"},
        {"run.sed=1", "[run] sed: unknown key; did you mean 'seed'?"},
        {"optimm.lr=1", "[optimm]: unknown section"},
        {"equimod.count=2", "[equimod]: no 'plugin' key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eqm_config *c = load_text(full_config);
        ck_assert_int_eq(config_set(c, cases[i].set, err, sizeof err), EQM_OK);
        ck_assert_int_ne(config_resolve(c, r, err, sizeof err), EQM_OK);
        ASSERT_ERR_HAS(cases[i].msg);
        ASSERT_ERR_HAS("--set");
        config_destroy(c);
    }
    /* file positions for problems in the file */
    eqm_config *c = load_text("[data]\nplugin = test_tiny\n[backbone]\nplugin = test_tiny\n"
                              "[method]\nplugin = test_tiny\nrate = 2\n");
    ck_assert_int_ne(config_resolve(c, r, err, sizeof err), EQM_OK);
    char want[160];
    snprintf(want, sizeof want, "%s:7: [method] rate: unknown key", tmp_path);
    ASSERT_ERR_HAS(want);
    config_destroy(c);
    /* a missing required section */
    c = load_text("[data]\nplugin = test_tiny\n[method]\nplugin = test_tiny\n");
    ck_assert_int_ne(config_resolve(c, r, err, sizeof err), EQM_OK);
    ASSERT_ERR_HAS("missing section [backbone]");
    ASSERT_ERR_HAS("hint:");
    config_destroy(c);
    registry_destroy(r);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, parse_types_and_comments);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, where_and_sections);
    tcase_add_test(tc, type_and_range_errors);
    tcase_add_test(tc, unknown_key);
    tcase_add_test(tc, unknown_section);
    tcase_add_test(tc, syntax_errors);
    tcase_add_test(tc, overlong_line);
    tcase_add_test(tc, set_override);
    tcase_add_test(tc, param_parse_direct);
    tcase_add_test(tc, write_round_trip_bind);
    tcase_add_test(tc, resolve_and_round_trip);
    tcase_add_test(tc, resolve_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    host_log_set_level(EQM_LOG_ERROR);
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
