/* host/sweep/plan.c: the sweep file (sweep.h) read into a plan, and validation of every
 * run's config (its expansion into runs: expand.c; sweep.json: planjson.c).
 *
 * The file is read by config_load (the config reader: file:line errors, comments, line
 * limits) and its sections are bound through option tables of their own, so an unknown
 * key gets the same "file:line: [axis.x] vales: unknown key; did you mean 'values'?"
 * as a config. Axis keys are checked against the base config resolved with its defaults:
 * a key no config has is refused at its line with the closest existing key.
 * Deliberately left out: nested sweeps, conditional axes, expressions in values.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "sweep/internal.h"
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

/* ------------------------------------------------------------ reading ------------ */

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
 * written to sweep.json as another value), and no section is given twice (the config
 * reader merges duplicate section headers, a sweep file refuses them). */
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
        char *s = sweep_trim(line);
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

/* The keys of an axis (key, key2..): each a key of the base config, once. */
static int axis_keys(eqm_config *c, const char *sec, const axis_sec *as_, sweep_axis *ax,
                     char **known, size_t n_known, char *err, size_t errlen)
{
    const axis_sec as = *as_;
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
        if (!(ax->keys[ax->n_keys++] = sweep_strdup(as.key[k])))
            return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
        if (!strcmp(as.key[k], "run.seed"))
            ax->is_seed = 1;
    }
    if (ax->is_seed && ax->n_keys > 1)
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s: [%s]: run.seed is zipped with other keys\nhint: seeds are an axis "
                    "of their own (summary.md averages over it)",
                    WHERE(c, sec, NULL), sec);
    return EQM_OK;
}

/* range = LO, HI of a [sample] axis. */
static int axis_range(eqm_config *c, const char *sec, const axis_sec *as, sweep_axis *ax,
                      int sampling, char *err, size_t errlen)
{
    int has_values = as->values[0] && *as->values[0];
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
    if (sweep_split_list(as->range, &r, &nr) || nr != 2 || (ax->lo = strtod(r[0], &e1), *e1) ||
        (ax->hi = strtod(r[1], &e2), *e2) || !(ax->hi > ax->lo) ||
        (as->scale == 1 && !(ax->lo > 0))) {
        sweep_free_strv(r, (size_t)nr);
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s: [%s] range: expected 'LO, HI' with LO < HI (and LO > 0 for "
                    "scale = log), got '%s'",
                    WHERE(c, sec, "range"), sec, as->range);
    }
    sweep_free_strv(r, (size_t)nr);
    ax->is_range = 1;
    ax->log_scale = as->scale == 1;
    return EQM_OK;
}

/* values, values2..: one list per key, all of the same length. */
static int axis_values(eqm_config *c, const char *sec, const axis_sec *as_, sweep_axis *ax,
                       char *err, size_t errlen)
{
    const axis_sec as = *as_;
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
        int src = sweep_split_list(text, &items, &n);
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
                sweep_free_strv(items, (size_t)n);
                return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
            }
        } else if (n != ax->n_values) {
            sweep_free_strv(items, (size_t)n);
            return errf(err, errlen, EQM_ERR_INVAL,
                        "%s: [%s] %s: %d values, but values has %d\nhint: the keys of a zip "
                        "axis vary together: one value each per point",
                        WHERE(c, sec, vn), sec, vn, n, ax->n_values);
        }
        for (int v = 0; v < n; v++)
            ax->values[k * ax->n_values + v] = items[v];
        free(items);
    }
    return EQM_OK;
}

/* names = (or the values): the labels of run folder names, distinct. */
static int axis_labels(eqm_config *c, const char *sec, const axis_sec *as_, sweep_axis *ax,
                       char *err, size_t errlen)
{
    const axis_sec as = *as_;
    ax->labels = calloc((size_t)ax->n_values, sizeof(char *));
    if (!ax->labels)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    if (as.names && *as.names) {
        char **items = NULL;
        int n = 0;
        if (sweep_split_list(as.names, &items, &n) || n != ax->n_values) {
            sweep_free_strv(items, (size_t)n);
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
            if (!(ax->labels[v] = sweep_strdup(ax->values[v])))
                return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < ax->n_values; v++) {
        sweep_sanitize_label(ax->labels[v]);
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

static int read_axis(eqm_config *c, const char *sec, sweep_axis *ax, char **known, size_t n_known,
                     int sampling, char *err, size_t errlen)
{
    axis_sec as;
    memset(&as, 0, sizeof as);
    int rc = config_bind(c, sec, axis_spec, &as, NULL, err, errlen);
    if (rc)
        return rc;
    ax->name = sweep_strdup(sec + 5);
    if (!ax->name)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    sweep_sanitize_label(ax->name);
    if ((rc = axis_keys(c, sec, &as, ax, known, n_known, err, errlen)))
        return rc;
    if (as.range && *as.range)
        return axis_range(c, sec, &as, ax, sampling, err, errlen);
    if ((rc = axis_values(c, sec, &as, ax, err, errlen)))
        return rc;
    return axis_labels(c, sec, &as, ax, err, errlen);
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
            sweep_free_strv(secs, ns);
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

/* The sections of a sweep file: [sweep], [sample], [axis.NAME], [set.SECTION]; counts. */
static int plan_sections(eqm_config *c, int *n_axes, int *sampling, char *err, size_t errlen)
{
    *n_axes = *sampling = 0;
    for (size_t i = 0; config_section_at(c, i); i++) {
        const char *s = config_section_at(c, i);
        if (!strcmp(s, "sweep") || !strncmp(s, "set.", 4))
            continue;
        if (!strcmp(s, "sample")) {
            *sampling = 1;
            continue;
        }
        if (!strncmp(s, "axis.", 5)) {
            (*n_axes)++;
            continue;
        }
        char cand[4][96];
        const char *dot = strchr(s, '.');
        snprintf(cand[0], sizeof cand[0], "sweep");
        snprintf(cand[1], sizeof cand[1], "sample");
        snprintf(cand[2], sizeof cand[2], "axis.%s", dot ? dot + 1 : s);
        snprintf(cand[3], sizeof cand[3], "set.%s", dot ? dot + 1 : s);
        const char *cands[4] = {cand[0], cand[1], cand[2], cand[3]};
        const char *sug = suggest_closest(s, cands, 4);
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s: [%s]: unknown section%s%s%s\nhint: a sweep file has [sweep], "
                    "[axis.NAME] (one per axis), optionally [set.SECTION] (fixed overrides of "
                    "the base) and [sample]",
                    WHERE(c, s, NULL), s, sug ? "; did you mean '" : "", sug ? sug : "",
                    sug ? "'?" : "");
    }
    return EQM_OK;
}

/* [sweep] and [sample] into p; *base_rel: the base path as written (owned by c). */
static int plan_sweep_section(eqm_config *c, const char *path, sweep_plan *p, int sampling,
                              const char **base_rel, char *err, size_t errlen)
{
    sweep_sec ss;
    memset(&ss, 0, sizeof ss);
    int had_sweep = config_has_section(c, "sweep");
    int rc = config_bind(c, "sweep", sweep_spec, &ss, NULL, err, errlen);
    if (rc)
        return rc;
    if (!ss.base || !*ss.base)
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s%s: %s\nhint: base = path/to/config.ini (relative to the sweep file, or "
                    "absolute)",
                    had_sweep ? WHERE(c, "sweep", NULL) : path, had_sweep ? "" : ":1",
                    had_sweep ? "[sweep]: no 'base' key" : "no [sweep] section naming the base "
                                                           "config");
    p->knn = ss.knn;
    p->linear = ss.linear;
    p->baseline = sweep_strdup(ss.baseline);
    p->out = sweep_strdup(ss.out);
    *base_rel = ss.base;
    if (sampling) {
        sample_sec sm;
        memset(&sm, 0, sizeof sm);
        if ((rc = config_bind(c, "sample", sample_spec, &sm, NULL, err, errlen)))
            return rc;
        p->sample_n = (int)sm.n;
        p->sample_seed = sm.seed;
    }
    return EQM_OK;
}

/* The base config (relative to the sweep file), resolved: its keys (with the host's
 * optional ones) and hash. *base and *text are the caller's to free. */
static int plan_base(eqm_config *c, const char *path, const char *base_rel,
                     const eqm_registry *reg, sweep_plan *p, eqm_config **base, char **text,
                     char ***known, size_t *n_known, char *err, size_t errlen)
{
    char bp[4096], e2[2048];
    const char *slash = strrchr(path, '/');
    if (base_rel[0] == '/' || !slash)
        snprintf(bp, sizeof bp, "%s", base_rel);
    else
        snprintf(bp, sizeof bp, "%.*s/%s", (int)(slash - path), path, base_rel);
    p->base = sweep_strdup(bp);
    if (!(*base = config_load(bp, e2, sizeof e2)))
        return errf(err, errlen, EQM_ERR_INVAL, "%s: [sweep] base: %s", WHERE(c, "sweep", "base"),
                    e2);
    int rc = config_resolve(*base, reg, e2, sizeof e2);
    if (rc)
        return errf(err, errlen, rc, "%s: [sweep] base: the base config is invalid: %s",
                    WHERE(c, "sweep", "base"), e2);
    if (!(*text = sweep_resolved_text(*base)) ||
        sweep_resolved_keys(*text, known, n_known, &p->base_hash) ||
        sweep_add_host_keys(*base, known, n_known))
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    return EQM_OK;
}

/* The [axis.NAME] sections in file order; a key or a name used by two axes is refused. */
static int plan_axes(eqm_config *c, const char *path, sweep_plan *p, int n_axes, char **known,
                     size_t n_known, int sampling, char *err, size_t errlen)
{
    if (!n_axes)
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s:1: no [axis.NAME] section\nhint: [axis.seed] key = run.seed values = 1, 2, 3",
                    path);
    p->axes = calloc((size_t)n_axes, sizeof *p->axes);
    if (!p->axes)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; config_section_at(c, i); i++) {
        const char *s = config_section_at(c, i);
        if (strncmp(s, "axis.", 5))
            continue;
        sweep_axis *ax = &p->axes[p->n_axes++];
        int rc = read_axis(c, s, ax, known, n_known, sampling, err, errlen);
        if (rc)
            return rc;
        for (int a = 0; a < p->n_axes - 1; a++)
            for (int k = 0; k < ax->n_keys; k++)
                for (int j = 0; j < p->axes[a].n_keys; j++)
                    if (!strcmp(ax->keys[k], p->axes[a].keys[j]))
                        return errf(err, errlen, EQM_ERR_INVAL,
                                    "%s: [%s]: %s is already the key of [axis.%s]\nhint: one "
                                    "axis per key; list all its values in one axis",
                                    WHERE(c, s, k ? NULL : "key"), s, ax->keys[k],
                                    p->axes[a].name);
        for (int a = 0; a < p->n_axes - 1; a++)
            if (!strcmp(ax->name, p->axes[a].name))
                return errf(err, errlen, EQM_ERR_INVAL,
                            "%s: [%s]: the axis name '%s' is already used", WHERE(c, s, NULL), s,
                            ax->name);
    }
    return EQM_OK;
}

/* The expanded runs: distinct names, and the baseline one of their points. */
static int plan_check_runs(eqm_config *c, const char *path, const sweep_plan *p, char *err,
                           size_t errlen)
{
    for (int r = 0; r < p->n_runs; r++)
        for (int q = 0; q < r; q++)
            if (!strcmp(p->runs[r].name, p->runs[q].name))
                return errf(err, errlen, EQM_ERR_INVAL, "%s: two runs are named '%s'", path,
                            p->runs[r].name);
    if (!*p->baseline)
        return EQM_OK;
    const char **pts = calloc((size_t)p->n_runs, sizeof *pts);
    int found = 0, rc = EQM_OK;
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
    }
    free(pts);
    return rc;
}

int sweep_plan_read(sweep_plan *p, const char *path, const eqm_registry *reg, char *err,
                    size_t errlen)
{
    memset(p, 0, sizeof *p);
    eqm_config *c = NULL, *base = NULL;
    char **known = NULL, *text = NULL;
    size_t n_known = 0;
    const char *base_rel = NULL;
    int n_axes = 0, sampling = 0;
    int rc = check_duplicate_sections(path, err, errlen);
    if (rc)
        return rc;
    if (!(c = config_load(path, err, errlen)))
        return EQM_ERR_INVAL;
    p->file = sweep_strdup(path);
    if (!(rc = plan_sections(c, &n_axes, &sampling, err, errlen)) &&
        !(rc = plan_sweep_section(c, path, p, sampling, &base_rel, err, errlen)) &&
        !(rc = plan_base(c, path, base_rel, reg, p, &base, &text, &known, &n_known, err,
                         errlen)) &&
        !(rc = read_fixed_sets(c, p, known, n_known, err, errlen)) &&
        !(rc = plan_axes(c, path, p, n_axes, known, n_known, sampling, err, errlen)) &&
        !(rc = sweep_expand(p, err, errlen)) && !(rc = plan_check_runs(c, path, p, err, errlen)))
        sweep_plan_hash(p);
    sweep_free_strv(known, n_known);
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
