/* host/sweep/plan.c: the sweep file (sweep.h), its expansion into runs, validation of
 * every run's config, and sweep.json (the plan a sweep folder was made from).
 *
 * The file is read by config_load (the config reader: file:line errors, comments, line
 * limits) and its sections are bound through option tables of their own, so an unknown
 * key gets the same "file:line: [axis.x] vales: unknown key; did you mean 'values'?"
 * as a config. Axis keys are checked against the base config resolved with its defaults:
 * a key no config has is refused at its line with the closest existing key.
 * Deliberately left out: nested sweeps, conditional axes, expressions in values.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core.h"
#include "fsutil.h"
#include "sections.h"
#include "sweep/sweep.h"
#include "train/trainer.h"

/* ------------------------------------------------------------ option tables ------ */

typedef struct sweep_sec {
    const char *base, *baseline, *out;
    int knn;
    int linear;
} sweep_sec;

static const eqm_param_spec sweep_spec[] = {
    {"base", EQM_PARAM_STRING, offsetof(sweep_sec, base), "", 1, 0, NULL,
     "base config (relative to the sweep file, or absolute)"},
    {"baseline", EQM_PARAM_STRING, offsetof(sweep_sec, baseline), "", 1, 0, NULL,
     "point of the non-seed axes that summary.md compares against (axis=label,...)"},
    {"out", EQM_PARAM_STRING, offsetof(sweep_sec, out), "", 1, 0, NULL,
     "sweep folder (default sweeps/<file stem>; --out wins)"},
    {"knn", EQM_PARAM_BOOL, offsetof(sweep_sec, knn), "true", 0, 0, NULL,
     "kNN at the end of every run (eval.knn_at_end)"},
    {"linear", EQM_PARAM_ENUM, offsetof(sweep_sec, linear), "off", 0, -1, "off|fast|full",
     "linear probe after every run (equimod eval linear [--fast])"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};

typedef struct axis_sec {
    const char *key[SWEEP_MAX_KEYS], *values[SWEEP_MAX_KEYS];
    const char *names, *range;
    int scale;
} axis_sec;

#define AK(i) offsetof(axis_sec, key) + (i) * sizeof(const char *)
#define AV(i) offsetof(axis_sec, values) + (i) * sizeof(const char *)
static const eqm_param_spec axis_spec[] = {
    {"key", EQM_PARAM_STRING, AK(0), "", 1, 0, NULL, "config key: section.key"},
    {"values", EQM_PARAM_STRING, AV(0), "", 1, 0, NULL, "comma-separated values"},
    {"names", EQM_PARAM_STRING, offsetof(axis_sec, names), "", 1, 0, NULL,
     "labels of the values in run folder names (default: the values)"},
    {"key2", EQM_PARAM_STRING, AK(1), "", 1, 0, NULL, "zip axis: a second key"},
    {"values2", EQM_PARAM_STRING, AV(1), "", 1, 0, NULL, "zip axis: its values"},
    {"key3", EQM_PARAM_STRING, AK(2), "", 1, 0, NULL, "zip axis: a third key"},
    {"values3", EQM_PARAM_STRING, AV(2), "", 1, 0, NULL, "zip axis: its values"},
    {"key4", EQM_PARAM_STRING, AK(3), "", 1, 0, NULL, "zip axis: a fourth key"},
    {"values4", EQM_PARAM_STRING, AV(3), "", 1, 0, NULL, "zip axis: its values"},
    {"range", EQM_PARAM_STRING, offsetof(axis_sec, range), "", 1, 0, NULL,
     "with [sample]: LO, HI drawn per sample instead of values"},
    {"scale", EQM_PARAM_ENUM, offsetof(axis_sec, scale), "uniform", 0, -1, "uniform|log",
     "law of a range: uniform or log-uniform"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};

typedef struct sample_sec {
    int64_t n, seed;
} sample_sec;

static const eqm_param_spec sample_spec[] = {
    {"n", EQM_PARAM_INT, offsetof(sample_sec, n), "1", 1, 100000, NULL,
     "points drawn from the non-seed axes"},
    {"seed", EQM_PARAM_INT, offsetof(sample_sec, seed), "1", 0, 9007199254740992.0, NULL,
     "seed of the draw"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};

/* ------------------------------------------------------------ small helpers ------ */

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull


int sweep_json_get(const char *line, const char *key, double *v)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (!strncmp(p, "null", 4))
        return 0;
    char *end;
    *v = strtod(p, &end);
    return end != p;
}

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* Split "a, b, c" into malloc'ed items; an empty item is an error (returns -1). */
static int split_list(const char *text, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    char *copy = xstrdup(text);
    if (!copy)
        return -2;
    int cap = 0, rc = 0;
    char *save = copy;
    for (;;) {
        char *comma = strchr(save, ',');
        if (comma)
            *comma = 0;
        char *item = trim(save);
        if (!*item) {
            rc = -1;
            break;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            char **nl = realloc(*out, (size_t)cap * sizeof *nl);
            if (!nl) {
                rc = -2;
                break;
            }
            *out = nl;
        }
        if (!((*out)[(*n)++] = strdup(item))) {
            rc = -2;
            break;
        }
        if (!comma)
            break;
        save = comma + 1;
    }
    free(copy);
    if (rc) {
        for (int i = 0; i < *n; i++)
            free((*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* A label as a folder-name part: [A-Za-z0-9._+-], anything else becomes '_'. */
static void sanitize_label(char *s)
{
    for (char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '+' || *p == '-'))
            *p = '_';
    if (s[0] == '.')
        s[0] = '_';
}

static char *resolved_text(const eqm_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    config_write(c, f);
    fclose(f);
    return buf;
}

/* "section.key" of every line of a resolved config text (into *keys), hash of the
 * non-comment lines. */
static int resolved_keys(const char *text, char ***keys, size_t *n, uint64_t *hash)
{
    size_t cap = 0;
    *keys = NULL;
    *n = 0;
    uint64_t h = FNV_INIT;
    char section[200] = "";
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l && *p != '#' && *p != ';') {
            h = fnv(h, p, l);
            h = fnv(h, "\n", 1);
            if (*p == '[') {
                size_t sl = l > 2 ? l - 2 : 0;
                if (sl >= sizeof section)
                    sl = sizeof section - 1;
                memcpy(section, p + 1, sl);
                section[sl] = 0;
            } else {
                const char *eq = memchr(p, '=', l);
                if (eq) {
                    size_t kl = (size_t)(eq - p);
                    while (kl && p[kl - 1] == ' ')
                        kl--;
                    if (*n == cap) {
                        cap = cap ? 2 * cap : 64;
                        char **nk = realloc(*keys, cap * sizeof *nk);
                        if (!nk)
                            return -1;
                        *keys = nk;
                    }
                    char *k = malloc(strlen(section) + kl + 2);
                    if (!k)
                        return -1;
                    sprintf(k, "%s.%.*s", section, (int)kl, p);
                    (*keys)[(*n)++] = k;
                }
            }
        }
        p = e ? e + 1 : NULL;
    }
    *hash = h;
    return 0;
}

/* The optional keys the host reads in the base's plugin sections ([equimod] t_fields,
 * sections.h) are keys an axis or [set.*] may name even when the base leaves them out. */
static int add_host_keys(const eqm_config *base, char ***keys, size_t *n)
{
    for (size_t i = 0; config_section_at(base, i); i++) {
        const char *sec = config_section_at(base, i);
        for (const char *const *hk = host_plugin_keys(sec); *hk; hk++) {
            if (!strcmp(*hk, "plugin"))
                continue;
            char *k = malloc(strlen(sec) + strlen(*hk) + 2);
            if (!k)
                return -1;
            sprintf(k, "%s.%s", sec, *hk);
            int have = 0;
            for (size_t j = 0; j < *n && !have; j++)
                have = !strcmp((*keys)[j], k);
            char **nk = have ? NULL : realloc(*keys, (*n + 1) * sizeof *nk);
            if (have || !nk) {
                free(k);
                if (have)
                    continue;
                return -1;
            }
            *keys = nk;
            (*keys)[(*n)++] = k;
        }
    }
    return 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void sweep_plan_free(sweep_plan *p)
{
    if (!p)
        return;
    for (int a = 0; a < p->n_axes; a++) {
        sweep_axis *ax = &p->axes[a];
        free(ax->name);
        for (int k = 0; k < ax->n_keys; k++)
            free(ax->keys[k]);
        free_strv(ax->values, (size_t)ax->n_keys * ax->n_values);
        free_strv(ax->labels, (size_t)ax->n_values);
    }
    free(p->axes);
    for (int r = 0; r < p->n_runs; r++) {
        sweep_run *ru = &p->runs[r];
        free(ru->name), free(ru->point), free(ru->seed);
        free_strv(ru->sets, (size_t)ru->n_sets);
        free_strv(ru->labels, (size_t)p->n_axes);
    }
    free(p->runs);
    free_strv(p->fixed, (size_t)p->n_fixed);
    free(p->file), free(p->base), free(p->baseline), free(p->out);
    memset(p, 0, sizeof *p);
}

void sweep_default_dir(const sweep_plan *p, char *buf, size_t n)
{
    if (p->out && *p->out) {
        snprintf(buf, n, "%s", p->out);
        return;
    }
    const char *f = p->file ? p->file : "sweep";
    const char *b = strrchr(f, '/');
    b = b ? b + 1 : f;
    const char *dot = strrchr(b, '.');
    int l = dot && dot != b ? (int)(dot - b) : (int)strlen(b);
    snprintf(buf, n, "sweeps/%.*s", l, b);
}

/* ------------------------------------------------------------ reading ------------ */

/* Duplicate section headers: the config reader merges them, a sweep file refuses them. */
/* Length of the valid UTF-8 sequence at s (1..4), 0 when it is not one (overlong forms,
 * surrogates and code points above U+10FFFF included: what JSON strings refuse). */
static int utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    int n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (!n || s[0] > 0xf4)
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* Before the INI reader: every line is UTF-8 text (names, values and paths go into
 * sweep.json, whose strings must be; found by tests/fuzz/fuzz_sweep: a value byte 0xb2 was
 * written to sweep.json as another value), and no section is given twice. */
static int check_duplicate_sections(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char line[512], names[256][128];
    int lines[256], n = 0, lineno = 0, rc = EQM_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        /* a line longer than the buffer is refused by config_load; not checked here */
        if (len < sizeof line - 1 || line[len - 1] == '\n')
            for (const unsigned char *u = (const unsigned char *)line; *u;) {
                int q = utf8_seq(u);
                if (!q) {
                    rc = errf(err, errlen, EQM_ERR_INVAL,
                              "%s:%d: byte 0x%02x at column %d is not UTF-8 text\nhint: "
                              "sweep files are UTF-8 (names, values and paths are written "
                              "to sweep.json); re-save the file as UTF-8",
                              path, lineno, *u, (int)(u - (const unsigned char *)line) + 1);
                    goto out;
                }
                u += q;
            }
        char *s = trim(line);
        if (*s != '[')
            continue;
        char *close = strchr(s, ']');
        if (!close)
            continue;
        *close = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(names[i], s + 1)) {
                rc = errf(err, errlen, EQM_ERR_INVAL,
                          "%s:%d: [%s]: duplicate %s (first at line %d)\nhint: %s", path,
                          lineno, s + 1, strncmp(s + 1, "axis.", 5) ? "section" : "axis",
                          lines[i],
                          strncmp(s + 1, "axis.", 5)
                              ? "keep one of the two sections"
                              : "each axis has one section; give the other axis another name");
                goto out;
            }
        if (n < 256) {
            snprintf(names[n], sizeof names[n], "%s", s + 1);
            lines[n++] = lineno;
        }
    }
out:
    fclose(f);
    return rc;
}

/* The line of a key for messages: "file:N" (config_where). */
#define WHERE(c, s, k) config_where((c), (s), (k))

static int read_axis(eqm_config *c, const char *sec, sweep_axis *ax, char **known, size_t n_known,
                     int sampling, char *err, size_t errlen)
{
    axis_sec as;
    memset(&as, 0, sizeof as);
    int rc = config_bind(c, sec, axis_spec, &as, NULL, err, errlen);
    if (rc)
        return rc;
    ax->name = xstrdup(sec + 5);
    if (!ax->name)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    sanitize_label(ax->name);
    if (!as.key[0] || !*as.key[0])
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s: [%s]: no 'key'\nhint: key = section.key (a key of the base config, "
                    "e.g. train.equimod)",
                    WHERE(c, sec, NULL), sec);
    for (int k = 0; k < SWEEP_MAX_KEYS; k++) {
        char kn[16], vn[16];
        snprintf(kn, sizeof kn, k ? "key%d" : "key", k + 1);
        snprintf(vn, sizeof vn, k ? "values%d" : "values", k + 1);
        int has_k = as.key[k] && *as.key[k], has_v = as.values[k] && *as.values[k];
        if (!has_k && !has_v)
            continue;
        if (k && !has_k)
            return errf(err, errlen, EQM_ERR_INVAL, "%s: [%s] %s: no %s for these values",
                        WHERE(c, sec, vn), sec, vn, kn);
        if (k && (!as.key[k - 1] || !*as.key[k - 1]))
            return errf(err, errlen, EQM_ERR_INVAL, "%s: [%s] %s: key%d comes first",
                        WHERE(c, sec, kn), sec, kn, k);
        /* the key must be one of the base config's (resolved, defaults included) */
        int found = 0;
        for (size_t i = 0; i < n_known && !found; i++)
            found = !strcmp(known[i], as.key[k]);
        if (!found) {
            const char *sug = suggest_closest(as.key[k], (const char *const *)known, n_known);
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] %s: '%s' is not a key of the base config%s%s%s\nhint: "
                        "'equimod config BASE' prints every key (section.key)",
                        WHERE(c, sec, kn), sec, kn, as.key[k], sug ? "; did you mean '" : "",
                        sug ? sug : "", sug ? "'?" : "");
        }
        for (int j = 0; j < ax->n_keys; j++)
            if (!strcmp(ax->keys[j], as.key[k]))
                return errf(err, errlen, EQM_ERR_INVAL, "%s: [%s] %s: %s appears twice",
                            WHERE(c, sec, kn), sec, kn, as.key[k]);
        if (!(ax->keys[ax->n_keys++] = xstrdup(as.key[k])))
            return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
        if (!strcmp(as.key[k], "run.seed"))
            ax->is_seed = 1;
    }
    if (ax->is_seed && ax->n_keys > 1)
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s: [%s]: run.seed is zipped with other keys\nhint: seeds are an axis "
                    "of their own (summary.md averages over it)",
                    WHERE(c, sec, NULL), sec);
    int has_values = as.values[0] && *as.values[0], has_range = as.range && *as.range;
    if (has_range) {
        if (!sampling)
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] range: a range needs a [sample] section\nhint: add [sample] "
                        "with n = POINTS, or list the values (values = a, b, c)",
                        WHERE(c, sec, "range"), sec);
        if (has_values || ax->n_keys > 1 || ax->is_seed)
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] range: a range axis has one key (not run.seed) and no values",
                        WHERE(c, sec, "range"), sec);
        char **r = NULL;
        int nr = 0;
        char *e1 = NULL, *e2 = NULL;
        if (split_list(as.range, &r, &nr) || nr != 2 || (ax->lo = strtod(r[0], &e1), *e1) ||
            (ax->hi = strtod(r[1], &e2), *e2) || !(ax->hi > ax->lo) ||
            (as.scale == 1 && !(ax->lo > 0))) {
            free_strv(r, (size_t)nr);
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] range: expected 'LO, HI' with LO < HI (and LO > 0 for "
                        "scale = log), got '%s'",
                        WHERE(c, sec, "range"), sec, as.range);
        }
        free_strv(r, (size_t)nr);
        ax->is_range = 1;
        ax->log_scale = as.scale == 1;
        return EQM_OK;
    }
    for (int k = 0; k < ax->n_keys; k++) {
        char vn[16];
        snprintf(vn, sizeof vn, k ? "values%d" : "values", k + 1);
        const char *text = as.values[k];
        if (!text || !*text)
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] %s: no values\nhint: %s = a, b, c (comma separated)",
                        WHERE(c, sec, config_get(c, sec, vn) ? vn : NULL), sec, vn, vn);
        char **items = NULL;
        int n = 0;
        int src = split_list(text, &items, &n);
        if (src == -1)
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] %s: empty value in '%s'\nhint: values are separated by "
                        "single commas: a, b, c",
                        WHERE(c, sec, vn), sec, vn, text);
        if (src)
            return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
        if (k == 0) {
            ax->n_values = n;
            ax->values = calloc((size_t)ax->n_keys * n, sizeof(char *));
            if (!ax->values) {
                free_strv(items, (size_t)n);
                return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
            }
        } else if (n != ax->n_values) {
            free_strv(items, (size_t)n);
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] %s: %d values, but values has %d\nhint: the keys of a zip "
                        "axis vary together: one value each per point",
                        WHERE(c, sec, vn), sec, vn, n, ax->n_values);
        }
        for (int v = 0; v < n; v++)
            ax->values[k * ax->n_values + v] = items[v];
        free(items);
    }
    ax->labels = calloc((size_t)ax->n_values, sizeof(char *));
    if (!ax->labels)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    if (as.names && *as.names) {
        char **items = NULL;
        int n = 0;
        if (split_list(as.names, &items, &n) || n != ax->n_values) {
            free_strv(items, (size_t)n);
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] names: %d names for %d values\nhint: one name per value, "
                        "comma separated",
                        WHERE(c, sec, "names"), sec, n, ax->n_values);
        }
        for (int v = 0; v < n; v++)
            ax->labels[v] = items[v];
        free(items);
    } else {
        for (int v = 0; v < ax->n_values; v++)
            if (!(ax->labels[v] = xstrdup(ax->values[v])))
                return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < ax->n_values; v++) {
        sanitize_label(ax->labels[v]);
        for (int w = 0; w < v; w++)
            if (!strcmp(ax->labels[v], ax->labels[w]))
                return errf(err, errlen, EQM_ERR_INVAL,
                            "%s: [%s]: two values have the label '%s' in run folder names%s",
                            WHERE(c, sec, "values"), sec, ax->labels[v],
                            as.names && *as.names ? ""
                                                  : "\nhint: give them distinct names: "
                                                    "names = a, b, ...");
    }
    return EQM_OK;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Append a run built from one value index per axis (range axes: the drawn text). */
static int add_run(sweep_plan *p, const int *idx, char *const *drawn)
{
    sweep_run *nr = realloc(p->runs, (size_t)(p->n_runs + 1) * sizeof *nr);
    if (!nr)
        return EQM_ERR_NOMEM;
    p->runs = nr;
    sweep_run *r = &p->runs[p->n_runs];
    memset(r, 0, sizeof *r);
    size_t nl = 1, pl = 1, ns = 0;
    r->labels = calloc((size_t)p->n_axes, sizeof(char *));
    if (!r->labels)
        return EQM_ERR_NOMEM;
    p->n_runs++;
    for (int a = 0; a < p->n_axes; a++) {
        const sweep_axis *ax = &p->axes[a];
        char lab[256];
        if (ax->is_range) {
            snprintf(lab, sizeof lab, "%s", drawn[a]);
            sanitize_label(lab);
        } else {
            snprintf(lab, sizeof lab, "%s", ax->labels[idx[a]]);
        }
        if (!(r->labels[a] = xstrdup(lab)))
            return EQM_ERR_NOMEM;
        nl += strlen(ax->name) + strlen(lab) + 2;
        pl += strlen(ax->name) + strlen(lab) + 2;
        ns += (size_t)ax->n_keys;
    }
    r->name = calloc(nl, 1);
    r->point = calloc(pl + 4, 1);
    r->sets = calloc(ns + (size_t)p->n_fixed + 1, sizeof(char *));
    if (!r->name || !r->point || !r->sets)
        return EQM_ERR_NOMEM;
    r->seed = xstrdup("");
    for (int k = 0; k < p->n_fixed; k++)
        if (!(r->sets[r->n_sets++] = xstrdup(p->fixed[k])))
            return EQM_ERR_NOMEM;
    for (int a = 0; a < p->n_axes; a++) {
        const sweep_axis *ax = &p->axes[a];
        char part[512];
        snprintf(part, sizeof part, "%s=%s", ax->name, r->labels[a]);
        if (*r->name)
            strcat(r->name, ",");
        strcat(r->name, part);
        if (ax->is_seed) {
            free(r->seed);
            r->seed = xstrdup(r->labels[a]);
        } else {
            if (*r->point)
                strcat(r->point, ",");
            strcat(r->point, part);
        }
        for (int k = 0; k < ax->n_keys; k++) {
            const char *v = ax->is_range ? drawn[a] : ax->values[k * ax->n_values + idx[a]];
            char *s = malloc(strlen(ax->keys[k]) + strlen(v) + 2);
            if (!s)
                return EQM_ERR_NOMEM;
            sprintf(s, "%s=%s", ax->keys[k], v);
            r->sets[r->n_sets++] = s;
        }
    }
    if (!*r->point)
        strcpy(r->point, "all");
    if (!r->seed)
        return EQM_ERR_NOMEM;
    return EQM_OK;
}

static void plan_hash(sweep_plan *p)
{
    uint64_t h = fnv(FNV_INIT, &p->base_hash, sizeof p->base_hash);
    for (int r = 0; r < p->n_runs; r++) {
        h = fnv(h, p->runs[r].name, strlen(p->runs[r].name) + 1);
        for (int s = 0; s < p->runs[r].n_sets; s++)
            h = fnv(h, p->runs[r].sets[s], strlen(p->runs[r].sets[s]) + 1);
    }
    p->plan_hash = h;
}

static int expand(sweep_plan *p, char *err, size_t errlen)
{
    int idx[64] = {0};
    if (p->n_axes > 64)
        return errf(err, errlen, EQM_ERR_INVAL, "%s: more than 64 axes", p->file);
    if (!p->sample_n) {
        for (;;) {
            if (add_run(p, idx, NULL))
                return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
            if (p->n_runs > 100000)
                return errf(err, errlen, EQM_ERR_INVAL, "%s: more than 100000 runs", p->file);
            int a = p->n_axes - 1;
            for (; a >= 0; a--) {
                if (++idx[a] < p->axes[a].n_values)
                    break;
                idx[a] = 0;
            }
            if (a < 0)
                break;
        }
        return EQM_OK;
    }
    /* [sample]: n draws of the non-seed axes, each crossed with every seed. */
    uint64_t st = (uint64_t)p->sample_seed * 0x9e3779b97f4a7c15ull + 12345;
    int seed_axis = -1;
    for (int a = 0; a < p->n_axes; a++)
        if (p->axes[a].is_seed)
            seed_axis = a;
    char drawn_buf[64][64];
    char *drawn[64];
    for (int a = 0; a < 64; a++)
        drawn[a] = drawn_buf[a];
    for (int64_t s = 0; s < p->sample_n; s++) {
        for (int a = 0; a < p->n_axes; a++) {
            sweep_axis *ax = &p->axes[a];
            if (ax->is_seed)
                continue;
            double u = (splitmix(&st) >> 11) * 0x1.0p-53;
            if (ax->is_range) {
                double v = ax->log_scale ? exp(log(ax->lo) + u * (log(ax->hi) - log(ax->lo)))
                                         : ax->lo + u * (ax->hi - ax->lo);
                snprintf(drawn[a], 64, "%.4g", v);
            } else {
                idx[a] = (int)(u * ax->n_values);
                if (idx[a] >= ax->n_values)
                    idx[a] = ax->n_values - 1;
            }
        }
        int n_seed = seed_axis >= 0 ? p->axes[seed_axis].n_values : 1;
        for (int k = 0; k < n_seed; k++) {
            if (seed_axis >= 0)
                idx[seed_axis] = k;
            int before = p->n_runs;
            if (add_run(p, idx, drawn))
                return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
            /* the same point drawn twice runs once */
            for (int r = 0; r < before; r++)
                if (!strcmp(p->runs[r].name, p->runs[before].name)) {
                    sweep_run *ru = &p->runs[before];
                    free(ru->name), free(ru->point), free(ru->seed);
                    free_strv(ru->sets, (size_t)ru->n_sets);
                    free_strv(ru->labels, (size_t)p->n_axes);
                    p->n_runs--;
                    break;
                }
        }
    }
    return EQM_OK;
}

/* [set.SECTION] key = value: fixed overrides of the base for every run, checked like a
 * config section (the base's keys of SECTION, did-you-mean). */
static int read_fixed_sets(eqm_config *c, sweep_plan *p, char **known, size_t n_known,
                           char *err, size_t errlen)
{
    for (size_t i = 0; config_section_at(c, i); i++) {
        const char *s = config_section_at(c, i);
        if (strncmp(s, "set.", 4))
            continue;
        const char *sec = s + 4;
        size_t sl = strlen(sec), n = 0;
        for (size_t k = 0; k < n_known; k++)
            n += !strncmp(known[k], sec, sl) && known[k][sl] == '.' && !strchr(known[k] + sl + 1, '.') ;
        if (!n) {
            char **secs = calloc(n_known + 1, sizeof *secs);
            size_t ns = 0;
            for (size_t k = 0; secs && k < n_known; k++) {
                const char *dot = strrchr(known[k], '.');
                char *name = strndup(known[k], (size_t)(dot - known[k]));
                if (name && (!ns || strcmp(secs[ns - 1], name)))
                    secs[ns++] = name;
                else
                    free(name);
            }
            const char *sug = secs ? suggest_closest(sec, (const char *const *)secs, ns) : NULL;
            int rc = errf(err, errlen, EQM_ERR_INVAL,
                          "%s: [%s]: the base config has no section [%s]%s%s%s", WHERE(c, s, NULL),
                          s, sec, sug ? "; did you mean 'set." : "", sug ? sug : "",
                          sug ? "'?" : "");
            free_strv(secs, ns);
            return rc;
        }
        eqm_param_spec *spec = calloc(n + 1, sizeof *spec);
        const char **vals = calloc(n + 1, sizeof *vals);
        if (!spec || !vals) {
            free(spec), free(vals);
            return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
        }
        size_t j = 0;
        for (size_t k = 0; k < n_known; k++)
            if (!strncmp(known[k], sec, sl) && known[k][sl] == '.' && !strchr(known[k] + sl + 1, '.'))
                spec[j] = (eqm_param_spec){known[k] + sl + 1, EQM_PARAM_STRING,
                                           j * sizeof(const char *), "", 1, 0, NULL, ""},
                j++;
        int rc = config_bind(c, s, spec, vals, NULL, err, errlen);
        for (size_t k = 0; !rc && k < n; k++) {
            if (!config_get(c, s, spec[k].key))
                continue;
            char **nf = realloc(p->fixed, (size_t)(p->n_fixed + 1) * sizeof *nf);
            char *a = malloc(sl + strlen(spec[k].key) + strlen(vals[k]) + 3);
            if (!nf || !a) {
                free(a);
                if (nf)
                    p->fixed = nf;
                rc = errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
                break;
            }
            p->fixed = nf;
            sprintf(a, "%s.%s=%s", sec, spec[k].key, vals[k]);
            p->fixed[p->n_fixed++] = a;
        }
        free(spec), free(vals);
        if (rc)
            return rc;
    }
    return EQM_OK;
}

int sweep_plan_read(sweep_plan *p, const char *path, const eqm_registry *reg, char *err,
                    size_t errlen)
{
    memset(p, 0, sizeof *p);
    eqm_config *c = NULL, *base = NULL;
    char **known = NULL;
    size_t n_known = 0;
    char *text = NULL;
    int rc = check_duplicate_sections(path, err, errlen);
    if (rc)
        return rc;
    if (!(c = config_load(path, err, errlen)))
        return EQM_ERR_INVAL;
    p->file = xstrdup(path);
    /* sections: [sweep], [sample], [axis.NAME] */
    int n_axes = 0, sampling = 0;
    for (size_t i = 0; config_section_at(c, i); i++) {
        const char *s = config_section_at(c, i);
        if (!strcmp(s, "sweep"))
            continue;
        if (!strcmp(s, "sample")) {
            sampling = 1;
            continue;
        }
        if (!strncmp(s, "axis.", 5)) {
            n_axes++;
            continue;
        }
        if (!strncmp(s, "set.", 4))
            continue;
        char cand[4][96];
        const char *dot = strchr(s, '.');
        snprintf(cand[0], sizeof cand[0], "sweep");
        snprintf(cand[1], sizeof cand[1], "sample");
        snprintf(cand[2], sizeof cand[2], "axis.%s", dot ? dot + 1 : s);
        snprintf(cand[3], sizeof cand[3], "set.%s", dot ? dot + 1 : s);
        const char *cands[4] = {cand[0], cand[1], cand[2], cand[3]};
        const char *sug = suggest_closest(s, cands, 4);
        rc = errf(err, errlen, EQM_ERR_INVAL,
                  "%s: [%s]: unknown section%s%s%s\nhint: a sweep file has [sweep], "
                  "[axis.NAME] (one per axis), optionally [set.SECTION] (fixed overrides of "
                  "the base) and [sample]",
                  WHERE(c, s, NULL), s, sug ? "; did you mean '" : "", sug ? sug : "",
                  sug ? "'?" : "");
        goto out;
    }
    sweep_sec ss;
    memset(&ss, 0, sizeof ss);
    int had_sweep = config_has_section(c, "sweep");
    if ((rc = config_bind(c, "sweep", sweep_spec, &ss, NULL, err, errlen)))
        goto out;
    if (!ss.base || !*ss.base) {
        rc = errf(err, errlen, EQM_ERR_INVAL,
                  "%s%s: %s\nhint: base = path/to/config.ini (relative to the sweep file, or "
                  "absolute)",
                  had_sweep ? WHERE(c, "sweep", NULL) : path, had_sweep ? "" : ":1",
                  had_sweep ? "[sweep]: no 'base' key" : "no [sweep] section naming the base "
                                                         "config");
        goto out;
    }
    p->knn = ss.knn;
    p->linear = ss.linear;
    p->baseline = xstrdup(ss.baseline);
    p->out = xstrdup(ss.out);
    if (sampling) {
        sample_sec sm;
        memset(&sm, 0, sizeof sm);
        if ((rc = config_bind(c, "sample", sample_spec, &sm, NULL, err, errlen)))
            goto out;
        p->sample_n = (int)sm.n;
        p->sample_seed = sm.seed;
    }
    /* the base config, relative to the sweep file */
    {
        char bp[4096];
        const char *slash = strrchr(path, '/');
        if (ss.base[0] == '/' || !slash)
            snprintf(bp, sizeof bp, "%s", ss.base);
        else
            snprintf(bp, sizeof bp, "%.*s/%s", (int)(slash - path), path, ss.base);
        p->base = xstrdup(bp);
        char e2[2048];
        base = config_load(bp, e2, sizeof e2);
        if (!base) {
            rc = errf(err, errlen, EQM_ERR_INVAL, "%s: [sweep] base: %s", WHERE(c, "sweep", "base"),
                      e2);
            goto out;
        }
        if ((rc = config_resolve(base, reg, e2, sizeof e2))) {
            errf(err, errlen, rc, "%s: [sweep] base: the base config is invalid: %s",
                 WHERE(c, "sweep", "base"), e2);
            goto out;
        }
        if (!(text = resolved_text(base)) ||
            resolved_keys(text, &known, &n_known, &p->base_hash) ||
            add_host_keys(base, &known, &n_known)) {
            rc = errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if ((rc = read_fixed_sets(c, p, known, n_known, err, errlen)))
        goto out;
    if (!n_axes) {
        rc = errf(err, errlen, EQM_ERR_INVAL,
                  "%s:1: no [axis.NAME] section\nhint: [axis.seed] key = run.seed values = 1, 2, 3",
                  path);
        goto out;
    }
    p->axes = calloc((size_t)n_axes, sizeof *p->axes);
    if (!p->axes) {
        rc = errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
        goto out;
    }
    int n_seed = 0;
    for (size_t i = 0; config_section_at(c, i); i++) {
        const char *s = config_section_at(c, i);
        if (strncmp(s, "axis.", 5))
            continue;
        sweep_axis *ax = &p->axes[p->n_axes++];
        if ((rc = read_axis(c, s, ax, known, n_known, sampling, err, errlen)))
            goto out;
        for (int a = 0; a < p->n_axes - 1; a++)
            for (int k = 0; k < ax->n_keys; k++)
                for (int j = 0; j < p->axes[a].n_keys; j++)
                    if (!strcmp(ax->keys[k], p->axes[a].keys[j])) {
                        rc = errf(err, errlen, EQM_ERR_INVAL,
                                  "%s: [%s]: %s is already the key of [axis.%s]\nhint: one "
                                  "axis per key; list all its values in one axis",
                                  WHERE(c, s, k ? NULL : "key"), s, ax->keys[k],
                                  p->axes[a].name);
                        goto out;
                    }
        for (int a = 0; a < p->n_axes - 1; a++)
            if (!strcmp(ax->name, p->axes[a].name)) {
                rc = errf(err, errlen, EQM_ERR_INVAL,
                          "%s: [%s]: the axis name '%s' is already used", WHERE(c, s, NULL), s,
                          ax->name);
                goto out;
            }
        n_seed += ax->is_seed;
    }
    if ((rc = expand(p, err, errlen)))
        goto out;
    for (int r = 0; r < p->n_runs; r++)
        for (int q = 0; q < r; q++)
            if (!strcmp(p->runs[r].name, p->runs[q].name)) {
                rc = errf(err, errlen, EQM_ERR_INVAL, "%s: two runs are named '%s'", path,
                          p->runs[r].name);
                goto out;
            }
    if (*p->baseline) {
        const char **pts = calloc((size_t)p->n_runs, sizeof *pts);
        int found = 0;
        for (int r = 0; r < p->n_runs && pts; r++) {
            pts[r] = p->runs[r].point;
            found |= !strcmp(p->runs[r].point, p->baseline);
        }
        if (!found) {
            const char *sug = pts ? suggest_closest(p->baseline, pts, (size_t)p->n_runs) : NULL;
            rc = errf(err, errlen, EQM_ERR_INVAL,
                      "%s: [sweep] baseline: no point '%s'%s%s%s\nhint: a point names every "
                      "non-seed axis as axis=label joined by commas, e.g. '%s'",
                      WHERE(c, "sweep", "baseline"), p->baseline, sug ? "; did you mean '" : "",
                      sug ? sug : "", sug ? "'?" : "", p->runs[0].point);
            free(pts);
            goto out;
        }
        free(pts);
    }
    plan_hash(p);
    rc = EQM_OK;
out:
    free_strv(known, n_known);
    free(text);
    config_destroy(base);
    config_destroy(c);
    if (rc)
        sweep_plan_free(p);
    return rc;
}

int sweep_validate(const sweep_plan *p, const eqm_registry *reg, char *err, size_t errlen)
{
    char e2[2048];
    for (int r = 0; r < p->n_runs; r++) {
        const sweep_run *ru = &p->runs[r];
        eqm_config *c = config_load(p->base, e2, sizeof e2);
        int rc = c ? EQM_OK : EQM_ERR_INVAL;
        for (int s = 0; !rc && s < ru->n_sets; s++)
            rc = config_set(c, ru->sets[s], e2, sizeof e2);
        if (!rc)
            rc = config_resolve(c, reg, e2, sizeof e2);
        if (!rc) { /* what train refuses before it starts, as `equimod config` does */
            const char *v1 = config_get(c, "views", "view1");
            rc = config_check_plugins(c, reg, v1 && *v1, e2, sizeof e2);
        }
        config_destroy(c);
        if (rc)
            return errf(err, errlen, rc, "run '%s' (run %d of %d) is invalid: %s", ru->name,
                        r + 1, p->n_runs, e2);
    }
    return EQM_OK;
}

/* ------------------------------------------------------------ sweep.json --------- */

static json_t *plan_json(const sweep_plan *p)
{
    char hb[32], hp[32];
    snprintf(hb, sizeof hb, "%016llx", (unsigned long long)p->base_hash);
    snprintf(hp, sizeof hp, "%016llx", (unsigned long long)p->plan_hash);
    static const char *lin[] = {"off", "fast", "full"};
    json_t *axes = json_array(), *runs = json_array();
    for (int a = 0; a < p->n_axes; a++) {
        const sweep_axis *ax = &p->axes[a];
        json_t *keys = json_array(), *vals = json_array(), *labs = json_array();
        for (int k = 0; k < ax->n_keys; k++) {
            json_array_append_new(keys, json_string(ax->keys[k]));
            json_t *vk = json_array();
            for (int v = 0; v < ax->n_values; v++)
                json_array_append_new(vk, json_string(ax->values[k * ax->n_values + v]));
            json_array_append_new(vals, vk);
        }
        for (int v = 0; v < ax->n_values; v++)
            json_array_append_new(labs, json_string(ax->labels[v]));
        json_t *o = json_pack("{s:s, s:o, s:o, s:o, s:b}", "name", ax->name, "keys", keys,
                              "values", vals, "labels", labs, "seed", ax->is_seed);
        if (ax->is_range)
            json_object_set_new(o, "range", json_pack("{s:f, s:f, s:s}", "lo", ax->lo, "hi",
                                                      ax->hi, "scale",
                                                      ax->log_scale ? "log" : "uniform"));
        json_array_append_new(axes, o);
    }
    for (int r = 0; r < p->n_runs; r++) {
        const sweep_run *ru = &p->runs[r];
        json_t *sets = json_array(), *labs = json_array();
        for (int s = 0; s < ru->n_sets; s++)
            json_array_append_new(sets, json_string(ru->sets[s]));
        for (int a = 0; a < p->n_axes; a++)
            json_array_append_new(labs, json_string(ru->labels[a]));
        json_array_append_new(runs, json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", ru->name,
                                              "point", ru->point, "seed", ru->seed, "labels",
                                              labs, "sets", sets));
    }
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:o, s:o}", "version", 1,
                     "sweep_file", p->file ? p->file : "", "base", p->base, "base_hash", hb,
                     "plan_hash", hp, "baseline", p->baseline ? p->baseline : "", "knn", p->knn,
                     "linear", lin[p->linear], "axes", axes, "runs", runs);
}

/* 1 when dir is absent or has no entries but . and .. */
static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 1;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n == 0;
}

int sweep_plan_bind_dir(const sweep_plan *p, const char *dir, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/sweep.json", dir);
    struct stat st;
    if (!stat(path, &st)) {
        json_error_t je;
        json_t *old = json_load_file(path, 0, &je);
        if (!old)
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "%s:%d: cannot read: %s\nhint: this folder's plan is damaged; run the "
                        "sweep into another folder (--out DIR)",
                        path, je.line, je.text);
        const char *oh = json_string_value(json_object_get(old, "plan_hash"));
        const char *ob = json_string_value(json_object_get(old, "base_hash"));
        const char *of = json_string_value(json_object_get(old, "sweep_file"));
        char hp[32], hb[32];
        snprintf(hp, sizeof hp, "%016llx", (unsigned long long)p->plan_hash);
        snprintf(hb, sizeof hb, "%016llx", (unsigned long long)p->base_hash);
        int same = oh && !strcmp(oh, hp);
        if (!same) {
            char why[1024];
            json_t *runs = json_object_get(old, "runs");
            if (ob && strcmp(ob, hb)) {
                snprintf(why, sizeof why, "the base config (%s) resolves differently now "
                                          "(hash %s, the folder's plan has %s)",
                         p->base, hb, ob);
            } else if ((int)json_array_size(runs) != p->n_runs) {
                snprintf(why, sizeof why, "it has %d runs, this plan has %d",
                         (int)json_array_size(runs), p->n_runs);
            } else {
                snprintf(why, sizeof why, "its runs differ");
                for (int r = 0; r < p->n_runs; r++) {
                    const char *on =
                        json_string_value(json_object_get(json_array_get(runs, r), "name"));
                    if (!on || strcmp(on, p->runs[r].name)) {
                        snprintf(why, sizeof why, "its run %d is '%s', this plan's is '%s'",
                                 r + 1, on ? on : "?", p->runs[r].name);
                        break;
                    }
                }
            }
            char ofile[1024];
            snprintf(ofile, sizeof ofile, "%s", of ? of : "");
            json_decref(old);
            return errf(err, errlen, EQM_ERR_STATE,
                        "%s was made from another plan (%s%s): %s\nhint: nothing was changed; "
                        "run this sweep into another folder (--out DIR), or restore the plan",
                        dir, ofile[0] ? "sweep file " : "", ofile, why);
        }
        json_decref(old);
        return EQM_OK;
    }
    if (!dir_is_empty(dir))
        return errf(err, errlen, EQM_ERR_STATE,
                    "%s exists, is not empty and holds no sweep.json\nhint: nothing was "
                    "changed; choose another folder with --out DIR",
                    dir);
    if (fs_mkdir_p(dir, 0755))
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    json_t *j = plan_json(p);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int bad = !j || json_dump_file(j, tmp, JSON_INDENT(2)) || rename(tmp, path);
    json_decref(j);
    if (bad)
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return EQM_OK;
}

static char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return xstrdup(s);
}

int sweep_plan_load_json(sweep_plan *p, const char *dir, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    char path[4200];
    snprintf(path, sizeof path, "%s/sweep.json", dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        return errf(err, errlen, EQM_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
    int rc = EQM_ERR_FORMAT;
    json_t *axes = json_object_get(j, "axes"), *runs = json_object_get(j, "runs");
    if (!json_is_array(axes) || !json_is_array(runs))
        goto bad;
    p->file = jstr(j, "sweep_file");
    p->base = jstr(j, "base");
    p->baseline = jstr(j, "baseline");
    p->out = xstrdup(dir);
    p->knn = json_is_true(json_object_get(j, "knn"));
    const char *lin = json_string_value(json_object_get(j, "linear"));
    p->linear = lin && !strcmp(lin, "fast") ? 1 : lin && !strcmp(lin, "full") ? 2 : 0;
    const char *bh = json_string_value(json_object_get(j, "base_hash"));
    const char *ph = json_string_value(json_object_get(j, "plan_hash"));
    if (!bh || !ph)
        goto bad;
    p->base_hash = strtoull(bh, NULL, 16);
    p->plan_hash = strtoull(ph, NULL, 16);
    p->n_axes = (int)json_array_size(axes);
    p->axes = calloc((size_t)p->n_axes + 1, sizeof *p->axes);
    if (!p->axes)
        goto nomem;
    for (int a = 0; a < p->n_axes; a++) {
        json_t *o = json_array_get(axes, (size_t)a);
        sweep_axis *ax = &p->axes[a];
        ax->name = jstr(o, "name");
        ax->is_seed = json_is_true(json_object_get(o, "seed"));
        ax->is_range = json_object_get(o, "range") != NULL;
        json_t *keys = json_object_get(o, "keys"), *vals = json_object_get(o, "values"),
               *labs = json_object_get(o, "labels");
        ax->n_keys = (int)json_array_size(keys);
        if (ax->n_keys > SWEEP_MAX_KEYS)
            goto bad;
        ax->n_values = (int)json_array_size(labs);
        ax->values = calloc((size_t)ax->n_keys * ax->n_values + 1, sizeof(char *));
        ax->labels = calloc((size_t)ax->n_values + 1, sizeof(char *));
        if (!ax->values || !ax->labels)
            goto nomem;
        for (int k = 0; k < ax->n_keys; k++) {
            ax->keys[k] = xstrdup(json_string_value(json_array_get(keys, (size_t)k)));
            json_t *vk = json_array_get(vals, (size_t)k);
            for (int v = 0; v < ax->n_values; v++)
                ax->values[k * ax->n_values + v] =
                    xstrdup(json_string_value(json_array_get(vk, (size_t)v)));
        }
        for (int v = 0; v < ax->n_values; v++)
            ax->labels[v] = xstrdup(json_string_value(json_array_get(labs, (size_t)v)));
    }
    p->n_runs = (int)json_array_size(runs);
    p->runs = calloc((size_t)p->n_runs + 1, sizeof *p->runs);
    if (!p->runs)
        goto nomem;
    for (int r = 0; r < p->n_runs; r++) {
        json_t *o = json_array_get(runs, (size_t)r);
        sweep_run *ru = &p->runs[r];
        ru->name = jstr(o, "name");
        ru->point = jstr(o, "point");
        ru->seed = jstr(o, "seed");
        json_t *sets = json_object_get(o, "sets"), *labs = json_object_get(o, "labels");
        ru->n_sets = (int)json_array_size(sets);
        ru->sets = calloc((size_t)ru->n_sets + 1, sizeof(char *));
        ru->labels = calloc((size_t)p->n_axes + 1, sizeof(char *));
        if (!ru->sets || !ru->labels)
            goto nomem;
        for (int s = 0; s < ru->n_sets; s++)
            ru->sets[s] = xstrdup(json_string_value(json_array_get(sets, (size_t)s)));
        for (int a = 0; a < p->n_axes; a++)
            ru->labels[a] = xstrdup(json_string_value(json_array_get(labs, (size_t)a)));
        if (!ru->name || !*ru->name || strchr(ru->name, '/') || ru->name[0] == '.')
            goto bad;
    }
    json_decref(j);
    return EQM_OK;
nomem:
    rc = EQM_ERR_NOMEM;
bad:
    json_decref(j);
    sweep_plan_free(p);
    return errf(err, errlen, rc, "%s: %s", path,
                rc == EQM_ERR_NOMEM ? "out of memory" : "not a sweep plan (fields missing)");
}
