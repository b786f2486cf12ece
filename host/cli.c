/* host/cli.c: the commands `plugins`, `describe` and `config`, and the shared
 * command-line state (plugin search path, lazily loaded registry).
 *
 * Exit codes of every command: 0 success, 1 failure (bad config, plugin not found, ...),
 * 2 usage error (unknown option, missing argument). Errors go to stderr as
 * "equimod COMMAND: message" followed by a "hint:" line where a fix is known; results go
 * to stdout.
 * Deliberately left out: training and evaluation commands (their own files).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "loader/loader.h"
#include "sections.h"
#include "train/trainer.h"

#define MAX_PLUGIN_PATHS 64

static const char *plugin_paths[MAX_PLUGIN_PATHS];
static int n_plugin_paths;
static eqm_registry *the_registry;

static void registry_release(void) { registry_destroy(the_registry); }

void cli_add_plugin_path(const char *dir)
{
    if (n_plugin_paths < MAX_PLUGIN_PATHS)
        plugin_paths[n_plugin_paths++] = dir;
    else
        fprintf(stderr, "equimod: too many --plugin-path options (max %d); '%s' ignored\n",
                MAX_PLUGIN_PATHS, dir);
}

int cli_plugin_paths(const char *const **dirs)
{
    *dirs = plugin_paths;
    return n_plugin_paths;
}

eqm_registry *cli_registry(void)
{
    if (!the_registry) {
        the_registry = registry_create();
        if (!the_registry)
            return NULL;
        registry_scan(the_registry, plugin_paths, n_plugin_paths);
        atexit(registry_release);
    }
    return the_registry;
}

/* Options shared by the commands here. Returns -1 to go on, else an exit status. */
struct opts {
    const char *positional[4];
    int n_positional, max_positional;
    const char **sets;
    int n_sets;
};

static int parse_args(int argc, char **argv, struct opts *o, int allow_set,
                      void (*usage)(FILE *))
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--plugin-path") || (allow_set && !strcmp(a, "--set"))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "equimod %s: %s needs a value\nhint: see 'equimod %s --help'\n",
                        argv[0], a, argv[0]);
                return 2;
            }
            if (a[2] == 'p')
                cli_add_plugin_path(argv[++i]);
            else
                o->sets[o->n_sets++] = argv[++i];
        } else if (!strncmp(a, "--plugin-path=", 14)) {
            cli_add_plugin_path(a + 14);
        } else if (allow_set && !strncmp(a, "--set=", 6)) {
            o->sets[o->n_sets++] = a + 6;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "equimod %s: unknown option '%s'\nhint: see 'equimod %s --help'\n",
                    argv[0], a, argv[0]);
            return 2;
        } else {
            if (o->n_positional >= o->max_positional) {
                fprintf(stderr,
                        "equimod %s: unexpected argument '%s'\nhint: see 'equimod %s --help'\n",
                        argv[0], a, argv[0]);
                return 2;
            }
            o->positional[o->n_positional++] = a;
        }
    }
    return -1;
}

static void search_path_help(FILE *f)
{
    fprintf(f,
            "\nPlugins are searched in the --plugin-path dirs (in order), then in\n"
            "$EQUIMOD_PLUGIN_PATH (colon separated), then in %s\n"
            "(replaced by $EQUIMOD_PLUGIN_SYSTEM_PATH when set; set and empty: left out);\n"
            "never in the current directory unless named. A plugin found again later in\n"
            "this order is shadowed by the first one (one info line names both files).\n",
            EQM_PKGLIBDIR);
}

/* ------------------------------------------------------------------ plugins ----- */

static void plugins_usage(FILE *f)
{
    fprintf(f, "usage: equimod plugins [--plugin-path DIR]...\n\n"
               "List every plugin found: kind, name, version, plugin ABI and file.\n"
               "Files that are refused (wrong ABI, missing functions, ...) are reported on\n"
               "stderr, one line each, and do not stop the others.\n");
    search_path_help(f);
}

int cmd_plugins(int argc, char **argv)
{
    struct opts o = {.max_positional = 0};
    int rc = parse_args(argc, argv, &o, 0, plugins_usage);
    if (rc >= 0)
        return rc;
    eqm_registry *r = cli_registry();
    if (!r) {
        fprintf(stderr, "equimod plugins: out of memory\n");
        return 1;
    }
    size_t n = registry_count(r);
    if (!n) {
        fprintf(stderr,
                "equimod plugins: no plugins found\n"
                "hint: build them with 'make', or pass --plugin-path DIR / set "
                "EQUIMOD_PLUGIN_PATH (installed plugins live in %s)\n",
                EQM_PKGLIBDIR);
        return 0;
    }
    int wn = 4;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(registry_at(r, i)->desc.name);
        if (l > wn)
            wn = l;
    }
    printf("%-8s  %-*s  %-10s  %-5s  %s\n", "KIND", wn, "NAME", "VERSION", "ABI", "FILE");
    for (int k = 0; k < EQM_KIND_COUNT; k++)
        for (size_t i = 0; i < n; i++) {
            const eqm_plugin *p = registry_at(r, i);
            if ((int)p->desc.kind != k)
                continue;
            char abi[16];
            snprintf(abi, sizeof abi, "%u.%u", p->file_abi_major, p->file_abi_minor);
            printf("%-8s  %-*s  %-10s  %-5s  %s\n", kind_name(k), wn, p->desc.name,
                   p->desc.version, abi, p->path);
        }
    return 0;
}

/* ------------------------------------------------------------------ describe ---- */

static void describe_usage(FILE *f)
{
    fprintf(f, "usage: equimod describe [--plugin-path DIR]... KIND/NAME\n\n"
               "Show a plugin's summary, the config section it belongs in and its option\n"
               "table (key, type, default, range or choices, help).\n"
               "KIND is one of: dataset, augment, backbone, method, equimod.\n"
               "Example: equimod describe backbone/resnet\n");
    search_path_help(f);
}

static const char *section_for_kind(int kind)
{
    for (size_t i = 0; host_sections[i].name; i++)
        if (host_sections[i].plugin_kind == kind)
            return host_sections[i].name;
    return "?";
}

int cmd_describe(int argc, char **argv)
{
    struct opts o = {.max_positional = 1};
    int rc = parse_args(argc, argv, &o, 0, describe_usage);
    if (rc >= 0)
        return rc;
    const char *arg = o.n_positional ? o.positional[0] : NULL;
    const char *slash = arg ? strchr(arg, '/') : NULL;
    if (!slash || slash == arg || !slash[1]) {
        fprintf(stderr, "equimod describe: expected KIND/NAME%s%s%s\n"
                        "hint: for example 'equimod describe backbone/resnet'; "
                        "'equimod plugins' lists them\n",
                arg ? ", got '" : "", arg ? arg : "", arg ? "'" : "");
        return 2;
    }
    char kind_s[32];
    snprintf(kind_s, sizeof kind_s, "%.*s", (int)(slash - arg), arg);
    const char *name = slash + 1;
    int kind = kind_from_name(kind_s);
    if (kind < 0) {
        const char *kinds[EQM_KIND_COUNT];
        for (int k = 0; k < EQM_KIND_COUNT; k++)
            kinds[k] = kind_name(k);
        const char *sug = suggest_closest(kind_s, kinds, EQM_KIND_COUNT);
        fprintf(stderr, "equimod describe: unknown kind '%s'%s%s%s\n"
                        "hint: kinds are dataset, augment, backbone, method, equimod\n",
                kind_s, sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
        return 1;
    }
    eqm_registry *r = cli_registry();
    const eqm_plugin *p = r ? registry_find(r, kind, name) : NULL;
    if (!p) {
        const char *cands[256];
        size_t nc = 0;
        for (size_t i = 0; i < registry_count(r) && nc < 256; i++)
            if ((int)registry_at(r, i)->desc.kind == kind)
                cands[nc++] = registry_at(r, i)->desc.name;
        const char *sug = suggest_closest(name, cands, nc);
        fprintf(stderr, "equimod describe: no %s plugin named '%s'%s%s%s\n"
                        "hint: 'equimod plugins' lists the plugins found\n",
                kind_s, name, sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
        return 1;
    }
    const eqm_plugin_desc *d = &p->desc;
    printf("%s/%s %s (plugin ABI %u.%u)\n", kind_s, d->name, d->version, p->file_abi_major,
           p->file_abi_minor);
    printf("  %s\n", d->summary);
    printf("file:    %s\n", p->path);
    const char *sec = section_for_kind(kind);
    printf("config:  [%s]  plugin = %s\n", sec, d->name);
    size_t n = param_table_len(d->params);
    if (!n) {
        printf("options: none\n");
        return 0;
    }
    int wk = 3, wd = 7, wr = 14;
    char range[256];
    for (size_t i = 0; i < n; i++) {
        const eqm_param_spec *s = &d->params[i];
        int l = (int)strlen(s->key);
        wk = l > wk ? l : wk;
        l = s->def ? (int)strlen(s->def) : 2;
        wd = l > wd ? l : wd;
        param_range_text(s, range, sizeof range);
        l = (int)strlen(range);
        wr = l > wr ? l : wr;
    }
    printf("options:\n  %-*s  %-6s  %-*s  %-*s  %s\n", wk, "KEY", "TYPE", wd, "DEFAULT", wr,
           "RANGE/CHOICES", "HELP");
    for (size_t i = 0; i < n; i++) {
        const eqm_param_spec *s = &d->params[i];
        param_range_text(s, range, sizeof range);
        printf("  %-*s  %-6s  %-*s  %-*s  %s\n", wk, s->key, param_type_name(s->type), wd,
               s->def ? (*s->def ? s->def : "\"\"") : "\"\"", wr, range[0] ? range : "-",
               s->help ? s->help : "");
    }
    return 0;
}

/* ------------------------------------------------------------------ config ------ */

static void config_usage(FILE *f)
{
    fprintf(f, "usage: equimod config [--plugin-path DIR]... [--set SECTION.KEY=VALUE]... "
               "CONFIG\n\n"
               "Validate an INI config against the plugins' and the host's option tables and\n"
               "print it fully resolved (every option, defaults included) on stdout; the\n"
               "output is itself a valid config. --set overrides a value of the file (the\n"
               "section may contain dots: --set augment.crop.scale_min=0.2).\n"
               "Errors name file:line and suggest the closest valid name.\n"
               "Sections: ");
    for (size_t i = 0; host_sections[i].name; i++)
        fprintf(f, "%s[%s]%s", i ? " " : "", host_sections[i].name,
                host_sections[i].required ? "*" : "");
    fprintf(f, "  (* required)\n");
    search_path_help(f);
}

/* The layout of t follows from the [views] pipelines; print it after the resolved config
 * as comment lines, so the output stays a valid config. Configs without augmentation
 * views (nothing to lay out) print nothing. */
static void print_t_layout(eqm_config *c, const eqm_registry *r)
{
    if (!config_has_section(c, "views"))
        return;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return;
    loader_describe_t(c, r, mem);
    fclose(mem);
    printf("\n");
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        printf("%s%s\n", line[0] == '#' ? "" : "# ", line);
    free(buf);
}

int cmd_config(int argc, char **argv)
{
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    if (!sets)
        return 1;
    struct opts o = {.max_positional = 1, .sets = sets};
    int rc = parse_args(argc, argv, &o, 1, config_usage);
    if (rc >= 0)
        goto out;
    rc = 2;
    if (!o.n_positional) {
        fprintf(stderr, "equimod config: missing CONFIG file\n"
                        "hint: equimod config FILE.ini [--set section.key=value]...\n");
        goto out;
    }
    char err[2048];
    rc = 1;
    eqm_config *c = config_load(o.positional[0], err, sizeof err);
    if (!c) {
        fprintf(stderr, "equimod config: %s\n", err);
        goto out;
    }
    for (int i = 0; i < o.n_sets; i++)
        if (config_set(c, o.sets[i], err, sizeof err)) {
            fprintf(stderr, "equimod config: %s\n", err);
            config_destroy(c);
            goto out;
        }
    /* the [views] pipelines are validated when the config sets them (view1 given): a
     * config of modules only (no augment sections) is checked for its modules */
    const char *v1 = config_get(c, "views", "view1");
    int with_views = v1 && *v1;
    eqm_registry *r = cli_registry();
    if (!r || config_resolve(c, r, err, sizeof err)) {
        fprintf(stderr, "equimod config: %s\n", r ? err : "out of memory");
        config_destroy(c);
        goto out;
    }
    if (config_check_plugins(c, r, with_views, err, sizeof err)) {
        fprintf(stderr, "equimod config: %s\n", err);
        config_destroy(c);
        goto out;
    }
    config_write(c, stdout);
    print_t_layout(c, r);
    config_destroy(c);
    rc = 0;
out:
    free(sets);
    return rc;
}
