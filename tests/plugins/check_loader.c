/* tests/plugins/check_loader.c: the plugin registry against real shared objects.
 *
 * The fixtures tp_*.c are built as check_LTLIBRARIES (real .so files in
 * $EQM_TEST_PLUGIN_DIR) and loaded with dlopen: one valid file with a plugin of every
 * kind, one broken file per refusal of sdk/ABI.md, a file mixing good and malformed option
 * tables, and a duplicate. Log lines are captured through host_log_set_sink; each refusal
 * must be ONE line naming the file, and the other files must still load.
 * The installed search directory is left out by make check ($EQUIMOD_PLUGIN_SYSTEM_PATH
 * set and empty), so what is installed on the machine never changes a result.
 */
#include "config.h"

#include <check.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

#define MAX_LINES 256
static char *lines[MAX_LINES];
static int levels[MAX_LINES];
static int n_lines;

static void sink(int level, const char *line, void *ud)
{
    (void)ud;
    if (n_lines < MAX_LINES) {
        levels[n_lines] = level;
        lines[n_lines++] = strdup(line);
    }
}

static void setup(void)
{
    n_lines = 0;
    host_log_set_sink(sink, NULL);
}

static void teardown(void)
{
    host_log_set_sink(NULL, NULL);
    for (int i = 0; i < n_lines; i++)
        free(lines[i]);
    n_lines = 0;
}

static const char *plugin_dir(void)
{
    const char *d = getenv("EQM_TEST_PLUGIN_DIR");
    ck_assert_msg(d && *d, "EQM_TEST_PLUGIN_DIR is not set (run through make check)");
    return d;
}

static char *fixture(const char *stem)
{
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s.so", plugin_dir(), stem);
    ck_assert_msg(access(b, R_OK) == 0, "fixture %s not built", b);
    return b;
}

/* Number of captured lines containing every one of the given substrings. */
static int count_lines(const char *a, const char *b, const char *c)
{
    int n = 0;
    for (int i = 0; i < n_lines; i++)
        if (strstr(lines[i], a) && (!b || strstr(lines[i], b)) && (!c || strstr(lines[i], c)))
            n++;
    return n;
}

static void dump_lines(void)
{
    for (int i = 0; i < n_lines; i++)
        fprintf(stderr, "  log: %s\n", lines[i]);
}

/* Loads one broken file: nothing added, exactly one refusal line naming the file and
 * containing `what`. */
static void expect_refused(const char *stem, const char *what)
{
    eqm_registry *r = registry_create();
    const char *path = fixture(stem);
    int rc = registry_load_file(r, path);
    if (rc != 0 || count_lines(path, "refused", what) != 1 || n_lines != 1)
        dump_lines();
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(registry_count(r), 0);
    ck_assert_int_eq(count_lines(path, "refused", what), 1);
    ck_assert_int_eq(n_lines, 1);
    registry_destroy(r);
}

START_TEST(valid_file)
{
    eqm_registry *r = registry_create();
    const char *path = fixture("tp_a_valid");
    ck_assert_int_eq(registry_load_file(r, path), 5);
    ck_assert_int_eq(n_lines, 0);
    const eqm_plugin *p = registry_find(r, EQM_KIND_AUGMENT, "test_identity");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->desc.version, "1.2.3");
    ck_assert_str_eq(p->path, path);
    ck_assert_uint_eq(p->file_abi_major, EQM_ABI_MAJOR);
    ck_assert_uint_eq(p->file_abi_minor, EQM_ABI_MINOR);
    ck_assert_ptr_nonnull(p->ops.augment.apply);
    ck_assert_ptr_null(p->ops.augment.scratch_bytes);
    for (int k = 0; k < EQM_KIND_COUNT; k++)
        if (k != EQM_KIND_AUGMENT)
            ck_assert_ptr_nonnull(registry_find(r, k, "test_tiny"));
    ck_assert_ptr_null(registry_find(r, EQM_KIND_AUGMENT, "test_tiny"));

    /* The copied augment really works through its ops (the file stayed loaded). */
    eqm_host *h = host_ctx_create("augment/test_identity");
    void *self = NULL;
    ck_assert_int_eq(p->ops.augment.create(host_api(), h, NULL, &self), EQM_OK);
    unsigned char in_px[2 * 3 * 3], out_px[2 * 3 * 3] = {0};
    for (size_t i = 0; i < sizeof in_px; i++)
        in_px[i] = (unsigned char)(i * 7);
    eqm_image in = {3, 2, 3, 9, EQM_PIX_U8, in_px}, out = {3, 2, 3, 9, EQM_PIX_U8, out_px};
    ck_assert_int_eq(p->ops.augment.apply(self, NULL, &in, &out, NULL), EQM_OK);
    ck_assert_mem_eq(in_px, out_px, sizeof in_px);
    p->ops.augment.destroy(self);
    host_ctx_destroy(h);
    /* The same file again is not added twice. */
    ck_assert_int_eq(registry_load_file(r, path), 0);
    ck_assert_uint_eq(registry_count(r), 5);
    registry_destroy(r);
}
END_TEST

START_TEST(refuse_no_entry) { expect_refused("tp_bad_noentry", "no symbol 'eqm_plugin_entry'"); }
END_TEST
START_TEST(refuse_major) { expect_refused("tp_bad_major", "other major"); }
END_TEST
START_TEST(refuse_minor) { expect_refused("tp_bad_minor", "newer than host ABI"); }
END_TEST
START_TEST(refuse_short) { expect_refused("tp_bad_short", "smaller than the ABI 1.0 descriptor"); }
END_TEST
START_TEST(refuse_null_fn) { expect_refused("tp_bad_nullfn", "ops->apply is NULL"); }
END_TEST
START_TEST(refuse_kind) { expect_refused("tp_bad_kind", "unknown kind 42"); }
END_TEST
START_TEST(refuse_ops_null) { expect_refused("tp_bad_opsnull", "ops table is NULL"); }
END_TEST
START_TEST(refuse_ops_size) { expect_refused("tp_bad_opssize", "smaller than the ABI 1.0 augment"); }
END_TEST
START_TEST(refuse_half_scaled)
{
    expect_refused("tp_bad_half", "set both or neither");
}
END_TEST

/* A plugin built against ABI 1.0 (minor 0, the 1.0 augment table) loads, and the fields
 * 1.1 appended read as NULL even though its memory goes on with functions there. */
START_TEST(old_minor_loads)
{
    eqm_registry *r = registry_create();
    ck_assert_int_eq(registry_load_file(r, fixture("tp_old_minor")), 1);
    ck_assert_int_eq(n_lines, 0);
    const eqm_plugin *p = registry_find(r, EQM_KIND_AUGMENT, "test_old_minor");
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->file_abi_minor, 0);
    ck_assert_ptr_nonnull(p->ops.augment.apply);
    ck_assert_ptr_null(p->ops.augment.source_box);
    ck_assert_ptr_null(p->ops.augment.apply_scaled);
    registry_destroy(r);
}
END_TEST

START_TEST(refuse_name) { expect_refused("tp_bad_name", "'Bad-Name' is not [a-z0-9_]+"); }
END_TEST

START_TEST(refuse_bad_options)
{
    static const char *const what[][2] = {
        {"test_badp_keychars", "'Bad Key' is not"},
        {"test_badp_dupkey", "duplicate key 'count'"},
        {"test_badp_type", "unknown type 99"},
        {"test_badp_defbad", "'abc' is not an integer"},
        {"test_badp_defrange", "20 is out of range [1, 10]"},
        {"test_badp_nochoices", "enum without choices"},
        {"test_badp_reserved", "'plugin' is reserved"},
        {"test_badp_offset", "does not fit params_size"},
    };
    eqm_registry *r = registry_create();
    const char *path = fixture("tp_bad_params");
    ck_assert_int_eq(registry_load_file(r, path), 1);
    ck_assert_ptr_nonnull(registry_find(r, EQM_KIND_AUGMENT, "test_params_ok"));
    ck_assert_uint_eq(registry_count(r), 1);
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
        if (count_lines(path, what[i][0], what[i][1]) != 1)
            dump_lines();
        ck_assert_msg(count_lines(path, what[i][0], what[i][1]) == 1, "%s: no line with '%s'",
                      what[i][0], what[i][1]);
        ck_assert_int_eq(count_lines(what[i][0], "malformed option table", NULL), 1);
        ck_assert_ptr_null(registry_find(r, EQM_KIND_AUGMENT, what[i][0]));
    }
    ck_assert_int_eq(n_lines, 8);
    registry_destroy(r);
}
END_TEST

/* A second plugin of the same kind and name is shadowed, not refused: one info line names
 * the file used and the file shadowed. */
START_TEST(shadowed_duplicate)
{
    eqm_registry *r = registry_create();
    const char *valid = fixture("tp_a_valid"), *dup = fixture("tp_z_dup");
    ck_assert_int_eq(registry_load_file(r, valid), 5);
    ck_assert_int_eq(registry_load_file(r, dup), 0);
    if (n_lines != 1)
        dump_lines();
    ck_assert_int_eq(n_lines, 1);
    ck_assert_int_eq(levels[0], EQM_LOG_INFO);
    ck_assert_int_eq(count_lines("augment/test_identity: using", valid, "is shadowed"), 1);
    ck_assert_int_eq(count_lines(dup, "is shadowed", NULL), 1);
    ck_assert_int_eq(count_lines("refused", NULL, NULL), 0);
    ck_assert_str_eq(registry_find(r, EQM_KIND_AUGMENT, "test_identity")->desc.version, "1.2.3");
    registry_destroy(r);
}
END_TEST

START_TEST(refuse_not_elf)
{
    char dir[] = "/tmp/eqm_loader_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/garbage.so", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not a shared object\n", f);
    fclose(f);
    eqm_registry *r = registry_create();
    ck_assert_int_lt(registry_load_file(r, path), 0);
    ck_assert_int_eq(count_lines(path, "refused file", "no ELF magic"), 1);
    /* a scan of the folder survives it too */
    const char *dirs[] = {dir};
    unsetenv("EQUIMOD_PLUGIN_PATH");
    registry_scan(r, dirs, 1);
    ck_assert_int_eq(count_lines(path, "refused file", "no ELF magic"), 2);
    registry_destroy(r);
    unlink(path);
    rmdir(dir);
}
END_TEST


/* ---- hostile files (sdk/ABI.md, "Hostile files"): the host refuses each and goes on ---- */

static char *hostile(const char *stem)
{
    static char buf[4][1200];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/../hostile/.libs/%s.so", plugin_dir(), stem);
    ck_assert_msg(access(b, R_OK) == 0, "fixture %s not built", b);
    return b;
}

START_TEST(refuse_wild_pointers)
{
    eqm_registry *r = registry_create();
    const char *path = hostile("tp_wild");
    ck_assert_int_eq(registry_load_file(r, path), 1); /* the valid descriptor 5 */
    ck_assert_ptr_nonnull(registry_find(r, EQM_KIND_AUGMENT, "test_wild_survivor"));
    static const char *const why[] = {"name pointer 0x10 is not a string",
                                      "ops pointer 0x7f0000000000 is outside",
                                      "option table pointer 0x1000",
                                      "descriptor pointer", "descriptor pointer 0x20000 is outside"};
    for (size_t i = 0; i < sizeof why / sizeof why[0]; i++)
        if (count_lines(path, "refused", why[i]) < 1) {
            dump_lines();
            ck_abort_msg("no refusal with '%s'", why[i]);
        }
    ck_assert_int_eq(count_lines(path, "refused", "unaligned"), 1);
    ck_assert_int_eq(count_lines(path, "refused", NULL), 5);
    registry_destroy(r);
}
END_TEST

START_TEST(refuse_exit_crash_hang)
{
    eqm_registry *r = registry_create();
    const char *ex = hostile("tp_exit");
    ck_assert_int_lt(registry_load_file(r, ex), 0);
    ck_assert_int_eq(count_lines(ex, "refused file", "calls exit()"), 1);
    const char *cr = hostile("tp_crash");
    ck_assert_int_lt(registry_load_file(r, cr), 0);
    /* under ASan the probe's SEGV is ASan's report and exit status, not a signal */
    ck_assert_int_eq(count_lines(cr, "refused file",
                                 getenv("EQM_SANITIZED") ? "probe process" : "crashed"),
                     1);
    setenv("EQUIMOD_PLUGIN_PROBE_TIMEOUT", "1", 1);
    const char *hg = hostile("tp_hang");
    ck_assert_int_lt(registry_load_file(r, hg), 0);
    unsetenv("EQUIMOD_PLUGIN_PROBE_TIMEOUT");
    ck_assert_int_eq(count_lines(hg, "refused file", "did not finish within 1 s"), 1);
    ck_assert_uint_eq(registry_count(r), 0);
    /* the whole folder in one scan: the host is still here, the survivor loaded */
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/../hostile/.libs", plugin_dir());
    const char *dirs[] = {dir};
    unsetenv("EQUIMOD_PLUGIN_PATH");
    setenv("EQUIMOD_PLUGIN_PROBE_TIMEOUT", "1", 1);
    registry_scan(r, dirs, 1);
    unsetenv("EQUIMOD_PLUGIN_PROBE_TIMEOUT");
    ck_assert_uint_eq(registry_count(r), 1);
    ck_assert_ptr_nonnull(registry_find(r, EQM_KIND_AUGMENT, "test_wild_survivor"));
    registry_destroy(r);
}
END_TEST

static void copy_file(const char *from, const char *to, long keep)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    ck_assert(a && b);
    int c;
    for (long i = 0; (keep < 0 || i < keep) && (c = fgetc(a)) != EOF; i++)
        fputc(c, b);
    fclose(a);
    fclose(b);
}

static void poke(const char *path, long off, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* Truncated and corrupted copies of a valid plugin: refused by the ELF check (or, past it,
 * by dlopen or the probe), never mapped into the host. */
START_TEST(refuse_truncated_corrupt_elf)
{
    char dir[] = "/tmp/eqm_elf_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *valid = fixture("tp_a_valid");
    struct stat st;
    ck_assert_int_eq(stat(valid, &st), 0);
    char p[300];
    eqm_registry *r = registry_create();
    snprintf(p, sizeof p, "%s/half.so", dir);
    copy_file(valid, p, (long)st.st_size / 2);
    ck_assert_int_lt(registry_load_file(r, p), 0);
    ck_assert_int_eq(count_lines(p, "refused file", "truncated"), 1);
    snprintf(p, sizeof p, "%s/head.so", dir);
    copy_file(valid, p, 40);
    ck_assert_int_lt(registry_load_file(r, p), 0);
    ck_assert_int_eq(count_lines(p, "refused file", "truncated ELF file"), 1);
    snprintf(p, sizeof p, "%s/phoff.so", dir);
    copy_file(valid, p, -1);
    uint64_t off = (uint64_t)st.st_size - 8; /* program headers past the end */
    poke(p, 32, &off, 8);                    /* e_phoff (ELF64) */
    ck_assert_int_lt(registry_load_file(r, p), 0);
    ck_assert_int_eq(count_lines(p, "refused file", "program headers"), 1);
    snprintf(p, sizeof p, "%s/machine.so", dir);
    copy_file(valid, p, -1);
    uint16_t em = 40; /* EM_ARM */
    poke(p, 18, &em, 2);
    ck_assert_int_lt(registry_load_file(r, p), 0);
    ck_assert_int_eq(count_lines(p, "refused file", "another machine"), 1);
    /* garbage over everything after the headers: whatever dlopen makes of it, one refusal
     * and the host goes on */
    snprintf(p, sizeof p, "%s/garbage.so", dir);
    copy_file(valid, p, -1);
    {
        size_t n = (size_t)st.st_size - 4096;
        unsigned char *junk = malloc(n);
        for (size_t i = 0; i < n; i++)
            junk[i] = (unsigned char)(i * 131 + 7);
        poke(p, 4096, junk, n);
        free(junk);
    }
    registry_load_file(r, p);
    ck_assert_int_eq(count_lines(p, "refused", NULL), 1);
    ck_assert_uint_eq(registry_count(r), 0);
    registry_destroy(r);
    const char *names[] = {"half.so", "head.so", "phoff.so", "machine.so", "garbage.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}
END_TEST

/* Directory entries named *.so that are not plugin files: each skipped with a line. */
START_TEST(scan_reports_non_files)
{
    char dir[] = "/tmp/eqm_scan_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char p[300], q[300];
    snprintf(p, sizeof p, "%s/a_dir.so", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/b_fifo.so", dir);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/c_dangling.so", dir);
    ck_assert_int_eq(symlink("/nonexistent/x.so", p), 0);
    snprintf(p, sizeof p, "%s/d_loop.so", dir);
    ck_assert_int_eq(symlink(p, p), 0);
    snprintf(p, sizeof p, "%s/e_ok.so", dir);
    ck_assert_int_eq(symlink(fixture("tp_a_valid"), p), 0);
    unsetenv("EQUIMOD_PLUGIN_PATH");
    eqm_registry *r = registry_create();
    const char *dirs[] = {dir};
    alarm(30);
    registry_scan(r, dirs, 1);
    alarm(0);
    ck_assert_ptr_nonnull(registry_find(r, EQM_KIND_AUGMENT, "test_identity"));
    static const char *const want[][2] = {{"a_dir.so", "a directory"},
                                          {"b_fifo.so", "a FIFO"},
                                          {"c_dangling.so", "dangling symbolic link"},
                                          {"d_loop.so", "symbolic link loop"}};
    for (size_t i = 0; i < 4; i++) {
        snprintf(q, sizeof q, "%s/%s", dir, want[i][0]);
        if (count_lines(q, "skipped", want[i][1]) != 1) {
            dump_lines();
            ck_abort_msg("no 'skipped ... %s' line for %s", want[i][1], q);
        }
    }
    registry_destroy(r);
    const char *names[] = {"b_fifo.so", "c_dangling.so", "d_loop.so", "e_ok.so"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/a_dir.so", dir);
    rmdir(p);
    rmdir(dir);
}
END_TEST

/* The whole fixture folder in one scan: every broken file refused with a line, the valid
 * ones loaded, in name order (so tp_a_valid wins over tp_z_dup). */
START_TEST(scan_folder)
{
    static const char *const refused[] = {"tp_bad_noentry", "tp_bad_major",   "tp_bad_minor",
                                          "tp_bad_short",   "tp_bad_nullfn",  "tp_bad_kind",
                                          "tp_bad_opsnull", "tp_bad_opssize", "tp_bad_name",
                                          "tp_bad_half"};
    unsetenv("EQUIMOD_PLUGIN_PATH");
    eqm_registry *r = registry_create();
    const char *dirs[] = {plugin_dir()};
    registry_scan(r, dirs, 1);
    ck_assert_ptr_nonnull(registry_find(r, EQM_KIND_AUGMENT, "test_identity"));
    ck_assert_str_eq(registry_find(r, EQM_KIND_AUGMENT, "test_identity")->desc.version, "1.2.3");
    ck_assert_ptr_nonnull(registry_find(r, EQM_KIND_AUGMENT, "test_params_ok"));
    ck_assert_ptr_nonnull(registry_find(r, EQM_KIND_METHOD, "test_tiny"));
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "/%s.so:", refused[i]);
        ck_assert_msg(count_lines(name, "refused", NULL) == 1, "no refusal line for %s", name);
    }
    ck_assert_int_eq(count_lines("/tp_bad_params.so:", "refused", NULL), 8);
    ck_assert_int_eq(count_lines("/tp_z_dup.so", "is shadowed", NULL), 1);
    ck_assert_int_eq(count_lines("/tp_z_dup.so", "refused", NULL), 0);
    /* scanning the same folder again through the environment adds nothing */
    size_t n = registry_count(r);
    int before = n_lines;
    setenv("EQUIMOD_PLUGIN_PATH", plugin_dir(), 1);
    registry_scan(r, NULL, 0);
    ck_assert_uint_eq(registry_count(r), n);
    ck_assert_int_eq(n_lines, before);
    registry_destroy(r);
}
END_TEST

/* Search order: --plugin-path dirs first, then $EQUIMOD_PLUGIN_PATH; an empty element of
 * the variable and the current directory are never searched. */
START_TEST(search_order_and_cwd)
{
    char d1[] = "/tmp/eqm_order1_XXXXXX", d2[] = "/tmp/eqm_order2_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(d1));
    ck_assert_ptr_nonnull(mkdtemp(d2));
    char l1[300], l2[300];
    snprintf(l1, sizeof l1, "%s/a.so", d1);
    snprintf(l2, sizeof l2, "%s/a.so", d2);
    ck_assert_int_eq(symlink(fixture("tp_z_dup"), l1), 0);   /* identity 9.9 */
    ck_assert_int_eq(symlink(fixture("tp_a_valid"), l2), 0); /* identity 1.2.3 */

    setenv("EQUIMOD_PLUGIN_PATH", d2, 1);
    eqm_registry *r = registry_create();
    const char *dirs[] = {d1};
    registry_scan(r, dirs, 1);
    ck_assert_str_eq(registry_find(r, EQM_KIND_AUGMENT, "test_identity")->desc.version, "9.9");
    ck_assert_int_eq(count_lines(l2, "is shadowed", l1), 1);
    registry_destroy(r);

    /* cwd = the fixture folder, empty path elements: nothing of it is loaded */
    char old[1024];
    ck_assert_ptr_nonnull(getcwd(old, sizeof old));
    ck_assert_int_eq(chdir(plugin_dir()), 0);
    setenv("EQUIMOD_PLUGIN_PATH", "::", 1);
    r = registry_create();
    registry_scan(r, NULL, 0);
    ck_assert_ptr_null(registry_find(r, EQM_KIND_AUGMENT, "test_identity"));
    ck_assert_ptr_null(registry_find(r, EQM_KIND_AUGMENT, "test_params_ok"));
    registry_destroy(r);
    ck_assert_int_eq(chdir(old), 0);
    unlink(l1);
    unlink(l2);
    rmdir(d1);
    rmdir(d2);
}
END_TEST

/* $EQUIMOD_PLUGIN_SYSTEM_PATH replaces the installed directory: set to a folder, that folder
 * is scanned last (its copies shadowed by earlier ones); set and empty, nothing is scanned
 * after --plugin-path and $EQUIMOD_PLUGIN_PATH, whatever is installed on the machine. */
START_TEST(system_path)
{
    char d1[] = "/tmp/eqm_sys1_XXXXXX", d2[] = "/tmp/eqm_sys2_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(d1));
    ck_assert_ptr_nonnull(mkdtemp(d2));
    char l1[300], l2[300];
    snprintf(l1, sizeof l1, "%s/a.so", d1);
    snprintf(l2, sizeof l2, "%s/a.so", d2);
    ck_assert_int_eq(symlink(fixture("tp_a_valid"), l1), 0); /* identity 1.2.3 */
    ck_assert_int_eq(symlink(fixture("tp_z_dup"), l2), 0);   /* identity 9.9 */
    unsetenv("EQUIMOD_PLUGIN_PATH");

    setenv("EQUIMOD_PLUGIN_SYSTEM_PATH", d2, 1);
    eqm_registry *r = registry_create();
    registry_scan(r, NULL, 0);
    ck_assert_str_eq(registry_find(r, EQM_KIND_AUGMENT, "test_identity")->desc.version, "9.9");
    registry_destroy(r);

    const char *dirs[] = {d1};
    r = registry_create();
    registry_scan(r, dirs, 1);
    ck_assert_str_eq(registry_find(r, EQM_KIND_AUGMENT, "test_identity")->desc.version,
                     "1.2.3");
    ck_assert_int_eq(count_lines(l2, "is shadowed", l1), 1);
    registry_destroy(r);

    setenv("EQUIMOD_PLUGIN_SYSTEM_PATH", "", 1);
    r = registry_create();
    registry_scan(r, NULL, 0);
    ck_assert_uint_eq(registry_count(r), 0);
    registry_destroy(r);
    unlink(l1);
    unlink(l2);
    rmdir(d1);
    rmdir(d2);
}
END_TEST

/* Every real plugin built in this tree passes every loader check (no refusal line). */
START_TEST(real_plugins_load_cleanly)
{
    const char *bd = getenv("EQM_BUILDDIR");
    ck_assert_msg(bd && *bd, "EQM_BUILDDIR is not set (run through make check)");
    char pattern[1024];
    snprintf(pattern, sizeof pattern, "%s/plugins/*/*/.libs", bd);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0) {
        fprintf(stderr, "no plugins built under %s; nothing to check\n", pattern);
        return;
    }
    unsetenv("EQUIMOD_PLUGIN_PATH");
    eqm_registry *r = registry_create();
    registry_scan(r, (const char *const *)g.gl_pathv, (int)g.gl_pathc);
    for (int i = 0; i < n_lines; i++)
        if (strstr(lines[i], "refused"))
            fprintf(stderr, "  %s\n", lines[i]);
    ck_assert_int_eq(count_lines("refused", NULL, NULL), 0);
    ck_assert_uint_ge(registry_count(r), g.gl_pathc);
    for (size_t i = 0; i < registry_count(r); i++) {
        const eqm_plugin *p = registry_at(r, i);
        char err[512];
        ck_assert_msg(param_table_check(p->desc.params, err, sizeof err) == EQM_OK, "%s: %s",
                      p->desc.name, err);
    }
    registry_destroy(r);
    globfree(&g);
}
END_TEST

START_TEST(kind_names)
{
    for (int k = 0; k < EQM_KIND_COUNT; k++)
        ck_assert_int_eq(kind_from_name(kind_name(k)), k);
    ck_assert_ptr_null(kind_name(EQM_KIND_COUNT));
    ck_assert_ptr_null(kind_name(-1));
    ck_assert_int_eq(kind_from_name("augmnt"), -1);
}
END_TEST

static Suite *loader_suite(void)
{
    Suite *s = suite_create("plugin_loader");
    TCase *tc = tcase_create("load");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, valid_file);
    tcase_add_test(tc, refuse_wild_pointers);
    tcase_add_test(tc, refuse_exit_crash_hang);
    tcase_add_test(tc, refuse_truncated_corrupt_elf);
    tcase_add_test(tc, scan_reports_non_files);
    tcase_add_test(tc, refuse_no_entry);
    tcase_add_test(tc, refuse_major);
    tcase_add_test(tc, refuse_minor);
    tcase_add_test(tc, refuse_short);
    tcase_add_test(tc, refuse_null_fn);
    tcase_add_test(tc, refuse_kind);
    tcase_add_test(tc, refuse_ops_null);
    tcase_add_test(tc, refuse_ops_size);
    tcase_add_test(tc, refuse_name);
    tcase_add_test(tc, refuse_half_scaled);
    tcase_add_test(tc, old_minor_loads);
    tcase_add_test(tc, refuse_bad_options);
    tcase_add_test(tc, shadowed_duplicate);
    tcase_add_test(tc, system_path);
    tcase_add_test(tc, refuse_not_elf);
    tcase_add_test(tc, scan_folder);
    tcase_add_test(tc, search_order_and_cwd);
    tcase_add_test(tc, real_plugins_load_cleanly);
    tcase_add_test(tc, kind_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(loader_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
