/* host/config.c: INI configs (libinih), --set overrides, typed binding, resolved output.
 *
 * A config is a list of sections in file order, each a list of key = value pairs with the
 * line they came from ("--set" for command-line overrides). Reading goes through inih's
 * ini_parse_stream with our own line reader, which closes inih's traps (STYLE.md 5.8):
 *   - an overlong line is an error "file:N: line is longer than 198 bytes" instead of being
 *     split silently into two lines (inih's stack buffer is 200 bytes);
 *   - leading blanks are stripped, so an indented line is never glued to the previous
 *     value (inih's multi-line continuation);
 * What stays: `#` and `;` start a comment at the beginning of a line; ` ;` (blank then
 * semicolon) starts an inline comment, and so does a `;` that begins the value (`key =;`); `#` inside a value is part of the value (an error
 * for typed options says so in its hint).
 *
 * Binding (config_bind) checks a section against an eqm_param_spec table and fills an
 * option struct; it records the resolved text of every option (defaults included) in the
 * config, so that config_write prints the complete resolved file, and STRING options point
 * into that config-owned text.
 *
 * Deliberately left out: value interpolation, includes, and multi-line values.
 * Threading: single-threaded construction; read-only use afterwards (config_get marks keys
 * used, so it is a write).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "core.h"
#include "sections.h"

/* inih's default line buffer is 200 bytes: content + '\n' + NUL. */
#define INI_LINE_MAX 200
#define LINE_CONTENT_MAX (INI_LINE_MAX - 2)

typedef struct cfg_key {
    char *key, *value;
    int line; /* 0 = from --set or a default */
    int used;
} cfg_key;

typedef struct cfg_section {
    char *name;
    int line; /* 0 = not in the file (created by --set or by binding defaults) */
    int used;
    cfg_key *keys;
    size_t n, cap;
    /* after config_bind: the resolved options in spec order, plus the skip keys present */
    int bound;
    char **res_keys, **res_values;
    size_t n_res;
    char **old_values; /* resolved text of earlier bindings: STRING fields of option
                        * structs bound before may still point into it */
    size_t n_old;
    /* after config_resolve */
    void *opts;
    const eqm_plugin *plugin;
} cfg_section;

struct eqm_config {
    char *path; /* NULL for an empty config */
    cfg_section *secs;
    size_t n, cap;
    int n_sets; /* number of --set overrides applied */
    char where[600];
};

/* ------------------------------------------------------------------ structure --- */

eqm_config *config_new_empty(void) { return calloc(1, sizeof(eqm_config)); }

/* Drops the resolved key list; with keep_values, the value strings move to old_values
 * (freed with the config) because option structs bound earlier may point into them. */
static void res_free(cfg_section *s, int keep_values)
{
    char **ov = keep_values && s->n_res
                    ? realloc(s->old_values, (s->n_old + s->n_res) * sizeof *ov)
                    : NULL;
    if (ov)
        s->old_values = ov;
    for (size_t i = 0; i < s->n_res; i++) {
        free(s->res_keys[i]);
        if (ov)
            s->old_values[s->n_old++] = s->res_values[i];
        else
            free(s->res_values[i]);
    }
    free(s->res_keys);
    free(s->res_values);
    s->res_keys = s->res_values = NULL;
    s->n_res = 0;
    s->bound = 0;
}

void config_destroy(eqm_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        cfg_section *s = &c->secs[i];
        for (size_t k = 0; k < s->n; k++) {
            free(s->keys[k].key);
            free(s->keys[k].value);
        }
        free(s->keys);
        res_free(s, 0);
        for (size_t k = 0; k < s->n_old; k++)
            free(s->old_values[k]);
        free(s->old_values);
        free(s->opts);
        free(s->name);
    }
    free(c->secs);
    free(c->path);
    free(c);
}

static cfg_section *find_section(const eqm_config *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->secs[i].name, name))
            return &c->secs[i];
    return NULL;
}

static cfg_key *find_key(const cfg_section *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->keys[i].key, key))
            return &s->keys[i];
    return NULL;
}

static cfg_section *add_section(eqm_config *c, const char *name, int line)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        cfg_section *ns = realloc(c->secs, nc * sizeof *ns);
        if (!ns)
            return NULL;
        c->secs = ns;
        c->cap = nc;
    }
    cfg_section *s = &c->secs[c->n];
    memset(s, 0, sizeof *s);
    if (!(s->name = strdup(name)))
        return NULL;
    s->line = line;
    c->n++;
    return s;
}

static cfg_key *add_key(cfg_section *s, const char *key, const char *value, int line)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        cfg_key *nk = realloc(s->keys, nc * sizeof *nk);
        if (!nk)
            return NULL;
        s->keys = nk;
        s->cap = nc;
    }
    cfg_key *k = &s->keys[s->n];
    k->key = strdup(key);
    k->value = strdup(value);
    if (!k->key || !k->value) {
        free(k->key);
        free(k->value);
        return NULL;
    }
    k->line = line;
    k->used = 0;
    s->n++;
    return k;
}

/* Section names: [a-z0-9_]+ joined by single dots ("augment.view1"). */
static int section_name_valid(const char *s)
{
    if (!s || !*s || *s == '.')
        return 0;
    for (const char *p = s; *p; p++) {
        if (*p == '.') {
            if (p[1] == '.' || p[1] == '\0')
                return 0;
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ reading ----- */

struct parse_ctx {
    eqm_config *c;
    FILE *f;
    int lineno;      /* line last handed to inih */
    char *buf;       /* getline buffer */
    size_t bufcap;
    char err[600];   /* first error, "file:line: message\nhint: ..." */
};

static char *reader(char *str, int num, void *stream)
{
    struct parse_ctx *p = stream;
    if (p->err[0])
        return NULL;
    ssize_t n = getline(&p->buf, &p->bufcap, p->f);
    if (n < 0)
        return NULL;
    p->lineno++;
    size_t len = (size_t)n;
    while (len && (p->buf[len - 1] == '\n' || p->buf[len - 1] == '\r'))
        len--;
    if (len > LINE_CONTENT_MAX || (int)len + 2 > num) {
        snprintf(p->err, sizeof p->err,
                 "%s:%d: line is %zu bytes long; the limit is %d bytes\n"
                 "hint: shorten the value or the comment on this line",
                 p->c->path, p->lineno, len, LINE_CONTENT_MAX);
        return NULL;
    }
    if (memchr(p->buf, '\0', len)) {
        snprintf(p->err, sizeof p->err, "%s:%d: NUL byte in line (not a text file?)",
                 p->c->path, p->lineno);
        return NULL;
    }
    size_t start = 0;
    while (start < len && (p->buf[start] == ' ' || p->buf[start] == '\t'))
        start++;
    if (p->buf[start] == '[') {
        /* record the section at its own line (inih reports only key lines), so that empty
         * sections exist and messages point at the header */
        const char *close = memchr(p->buf + start, ']', len - start);
        if (!close) {
            snprintf(p->err, sizeof p->err,
                     "%s:%d: syntax error: '[' without ']'\nhint: a section header looks "
                     "like [backbone]",
                     p->c->path, p->lineno);
            return NULL;
        }
        char name[LINE_CONTENT_MAX + 1];
        size_t nl = (size_t)(close - (p->buf + start + 1));
        memcpy(name, p->buf + start + 1, nl);
        name[nl] = '\0';
        if (!section_name_valid(name)) {
            snprintf(p->err, sizeof p->err,
                     "%s:%d: [%s]: bad section name\nhint: section names are lower-case "
                     "words [a-z0-9_] joined by dots, like [augment.view1]",
                     p->c->path, p->lineno, name);
            return NULL;
        }
        if (!find_section(p->c, name) && !add_section(p->c, name, p->lineno)) {
            snprintf(p->err, sizeof p->err, "%s:%d: out of memory", p->c->path, p->lineno);
            return NULL;
        }
    }
    if (p->buf[start] != '[' && p->buf[start] != '#' && p->buf[start] != ';') {
        /* "key =; text": a ';' that begins the value starts a comment, as " ;" does inside
         * it (inih alone would keep "; text" as the value, which config_write then prints as
         * "key = ; text" and the next read drops: the resolved file would not re-read the
         * same) */
        size_t eq = start;
        while (eq < len && p->buf[eq] != '=' && p->buf[eq] != ':')
            eq++;
        size_t v = eq + 1;
        while (v < len && (p->buf[v] == ' ' || p->buf[v] == '\t'))
            v++;
        if (eq < len && v < len && p->buf[v] == ';')
            len = eq + 1;
    }
    memcpy(str, p->buf + start, len - start);
    str[len - start] = '\n';
    str[len - start + 1] = '\0';
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *p = user;
    eqm_config *c = p->c;
    if (p->err[0])
        return 0;
    if (!name) /* only with INI_CALL_HANDLER_ON_NEW_SECTION builds: nothing to do */
        return 1;
    if (!section || !*section) {
        snprintf(p->err, sizeof p->err,
                 "%s:%d: '%s' is outside any section\nhint: put it under a [section] line",
                 c->path, p->lineno, name);
        return 0;
    }
    if (!section_name_valid(section)) {
        snprintf(p->err, sizeof p->err,
                 "%s:%d: [%s]: bad section name\nhint: section names are lower-case words "
                 "[a-z0-9_] joined by dots, like [augment.view1]",
                 c->path, p->lineno, section);
        return 0;
    }
    if (!param_key_valid(name)) {
        snprintf(p->err, sizeof p->err,
                 "%s:%d: [%s] %s: bad key name\nhint: keys are lower-case [a-z0-9_]+",
                 c->path, p->lineno, section, name);
        return 0;
    }
    cfg_section *s = find_section(c, section);
    if (!s && !(s = add_section(c, section, p->lineno)))
        goto nomem;
    cfg_key *k = find_key(s, name);
    if (k) {
        snprintf(p->err, sizeof p->err,
                 "%s:%d: [%s] %s: duplicate key (first set at line %d)\nhint: keep one of the "
                 "two lines",
                 c->path, p->lineno, section, name, k->line);
        return 0;
    }
    if (!add_key(s, name, value ? value : "", p->lineno))
        goto nomem;
    return 1;
nomem:
    snprintf(p->err, sizeof p->err, "%s:%d: out of memory", c->path, p->lineno);
    return 0;
}

eqm_config *config_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    eqm_config *c = config_new_empty();
    if (!c || !(c->path = strdup(path))) {
        fclose(f);
        config_destroy(c);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    struct parse_ctx p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.f = f;
    int rc = ini_parse_stream(reader, &p, handler, &p);
    int read_err = ferror(f);
    free(p.buf);
    fclose(f);
    if (!p.err[0] && read_err)
        snprintf(p.err, sizeof p.err, "%s: read error", path);
    if (!p.err[0] && rc > 0)
        snprintf(p.err, sizeof p.err,
                 "%s:%d: syntax error: expected '[section]', 'key = value' or a comment\n"
                 "hint: comments start with '#' or ';' at the beginning of a line",
                 path, rc);
    if (!p.err[0] && rc < 0)
        snprintf(p.err, sizeof p.err, "%s: cannot parse (error %d)", path, rc);
    if (p.err[0]) {
        snprintf(err, errlen, "%s", p.err);
        config_destroy(c);
        return NULL;
    }
    return c;
}

/* Rejects value text that the INI writer could not round-trip. */
static int value_writable(const char *v, char *why, size_t n)
{
    for (const char *s = v; *s; s++) {
        if (*s == '\n' || *s == '\r') {
            snprintf(why, n, "value contains a line break");
            return 0;
        }
        if (*s == ';' && (s == v || s[-1] == ' ' || s[-1] == '\t')) {
            snprintf(why, n, "value %s ';', which an INI file reads as a comment",
                     s == v ? "starts with" : "contains ' ;'");
            return 0;
        }
    }
    return 1;
}

int config_set(eqm_config *c, const char *assignment, char *err, size_t errlen)
{
    while (*assignment == ' ' || *assignment == '\t')
        assignment++;
    const char *eq = strchr(assignment, '=');
    if (!eq) {
        snprintf(err, errlen,
                 "--set %s: expected section.key=value\nhint: for example --set "
                 "backbone.depth=18",
                 assignment);
        return EQM_ERR_INVAL;
    }
    char lhs[256], value[256];
    size_t ll = (size_t)(eq - assignment);
    while (ll && (assignment[ll - 1] == ' ' || assignment[ll - 1] == '\t'))
        ll--;
    if (ll >= sizeof lhs) {
        snprintf(err, errlen, "--set %s: name too long", assignment);
        return EQM_ERR_INVAL;
    }
    memcpy(lhs, assignment, ll);
    lhs[ll] = '\0';
    const char *v = eq + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    char *dot = strrchr(lhs, '.');
    if (!dot || dot == lhs) {
        snprintf(err, errlen,
                 "--set %s: expected section.key=value\nhint: for example --set "
                 "backbone.depth=18",
                 assignment);
        return EQM_ERR_INVAL;
    }
    *dot = '\0';
    const char *sec = lhs, *key = dot + 1;
    if (!section_name_valid(sec) || !param_key_valid(key)) {
        snprintf(err, errlen,
                 "--set %s: bad section or key name\nhint: section names are [a-z0-9_] words "
                 "joined by dots, keys are [a-z0-9_]+",
                 assignment);
        return EQM_ERR_INVAL;
    }
    if (strlen(key) + 3 + vl > LINE_CONTENT_MAX || vl >= sizeof value) {
        snprintf(err, errlen, "--set %s: value too long (a config line holds %d bytes)",
                 assignment, LINE_CONTENT_MAX);
        return EQM_ERR_INVAL;
    }
    memcpy(value, v, vl);
    value[vl] = '\0';
    char why[128];
    if (!value_writable(value, why, sizeof why)) {
        snprintf(err, errlen, "--set %s: %s", assignment, why);
        return EQM_ERR_INVAL;
    }
    cfg_section *s = find_section(c, sec);
    if (!s && !(s = add_section(c, sec, 0)))
        goto nomem;
    cfg_key *k = find_key(s, key);
    if (k) {
        char *nv = strdup(value);
        if (!nv)
            goto nomem;
        free(k->value);
        k->value = nv;
        k->line = 0;
    } else if (!add_key(s, key, value, 0)) {
        goto nomem;
    }
    c->n_sets++;
    return EQM_OK;
nomem:
    snprintf(err, errlen, "--set %s: out of memory", assignment);
    return EQM_ERR_NOMEM;
}

const char *config_get(eqm_config *c, const char *section, const char *key)
{
    cfg_section *s = find_section(c, section);
    if (!s)
        return NULL;
    cfg_key *k = find_key(s, key);
    if (!k)
        return NULL;
    k->used = 1;
    return k->value;
}

int config_has_section(const eqm_config *c, const char *section)
{
    return find_section(c, section) != NULL;
}

const char *config_section_at(const eqm_config *c, size_t i)
{
    return i < c->n ? c->secs[i].name : NULL;
}

const char *config_where(const eqm_config *c, const char *section, const char *key)
{
    eqm_config *mc = (eqm_config *)c; /* the buffer is scratch, not state */
    const cfg_section *s = find_section(c, section);
    int line = 0;
    if (s) {
        line = s->line;
        if (!key && !line) {
            for (size_t i = 0; i < s->n; i++)
                if (!s->keys[i].line) {
                    snprintf(mc->where, sizeof mc->where, "--set %s", section);
                    return mc->where;
                }
        }
        if (key) {
            const cfg_key *k = find_key(s, key);
            line = k ? k->line : 0;
            if (k && !k->line) {
                snprintf(mc->where, sizeof mc->where, "--set %s.%s", section, key);
                return mc->where;
            }
        }
    }
    if (line > 0 && c->path)
        snprintf(mc->where, sizeof mc->where, "%s:%d", c->path, line);
    else
        snprintf(mc->where, sizeof mc->where, "%s", c->path ? c->path : "config");
    return mc->where;
}

/* ------------------------------------------------------------------ binding ----- */

static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (!strcmp(list[i], s))
            return 1;
    return 0;
}

static void list_keys(const eqm_param_spec *spec, char *buf, size_t n)
{
    size_t len = param_table_len(spec), off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < len && off < n; i++) {
        int w = snprintf(buf + off, n - off, "%s%s", i ? ", " : "", spec[i].key);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    if (!len)
        snprintf(buf, n, "(none: this section takes no options)");
}

int config_bind(eqm_config *c, const char *section, const eqm_param_spec *spec, void *out,
                const char *const *skip_keys, char *err, size_t errlen)
{
    char why[512];
    size_t len = param_table_len(spec);
    cfg_section *s = find_section(c, section);
    if (!s && !(s = add_section(c, section, 0))) {
        snprintf(err, errlen, "[%s]: out of memory", section);
        return EQM_ERR_NOMEM;
    }
    /* defaults first */
    for (size_t i = 0; i < len; i++) {
        if (param_parse(&spec[i], spec[i].def, (char *)out + spec[i].offset, why, sizeof why)) {
            snprintf(err, errlen, "[%s] %s: bad default in the option table: %s", section,
                     spec[i].key, why);
            return EQM_ERR_FORMAT;
        }
    }
    /* then the config's values */
    for (size_t k = 0; k < s->n; k++) {
        cfg_key *ck = &s->keys[k];
        if (in_list(skip_keys, ck->key)) {
            ck->used = 1;
            continue;
        }
        const eqm_param_spec *p = NULL;
        for (size_t i = 0; i < len; i++)
            if (!strcmp(spec[i].key, ck->key))
                p = &spec[i];
        if (!p) {
            const char *cands[256];
            for (size_t i = 0; i < len; i++)
                cands[i] = spec[i].key;
            const char *sug = suggest_closest(ck->key, cands, len);
            char keys[400];
            list_keys(spec, keys, sizeof keys);
            snprintf(err, errlen, "%s: [%s] %s: unknown key%s%s%s\nhint: valid keys: %s",
                     config_where(c, section, ck->key), section, ck->key,
                     sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "", keys);
            return EQM_ERR_INVAL;
        }
        if (param_parse(p, ck->value, (char *)out + p->offset, why, sizeof why)) {
            const char *hint = strchr(ck->value, '#')
                                   ? "\nhint: '#' starts a comment only at the beginning of "
                                     "a line; move the comment to its own line"
                                   : "";
            snprintf(err, errlen, "%s: [%s] %s: %s%s", config_where(c, section, ck->key),
                     section, ck->key, why, hint);
            return EQM_ERR_INVAL;
        }
        ck->used = 1;
    }
    s->used = 1;
    /* record the resolved text; STRING fields point into it */
    res_free(s, 1);
    size_t n_skip = 0;
    for (size_t i = 0; skip_keys && skip_keys[i]; i++)
        n_skip++;
    s->res_keys = calloc(len + n_skip + 1, sizeof(char *));
    s->res_values = calloc(len + n_skip + 1, sizeof(char *));
    if (!s->res_keys || !s->res_values)
        goto nomem;
    for (size_t i = 0; i < n_skip; i++) {
        cfg_key *ck = find_key(s, skip_keys[i]);
        if (!ck)
            continue;
        s->res_keys[s->n_res] = strdup(ck->key);
        s->res_values[s->n_res] = strdup(ck->value);
        if (!s->res_keys[s->n_res++] || !s->res_values[s->n_res - 1])
            goto nomem;
    }
    for (size_t i = 0; i < len; i++) {
        cfg_key *ck = find_key(s, spec[i].key);
        const char *text = ck ? ck->value : spec[i].def ? spec[i].def : "";
        s->res_keys[s->n_res] = strdup(spec[i].key);
        s->res_values[s->n_res] = strdup(text);
        if (!s->res_keys[s->n_res++] || !s->res_values[s->n_res - 1])
            goto nomem;
        if (spec[i].type == EQM_PARAM_STRING)
            *(const char **)((char *)out + spec[i].offset) = s->res_values[s->n_res - 1];
    }
    s->bound = 1;
    return EQM_OK;
nomem:
    res_free(s, 0);
    snprintf(err, errlen, "[%s]: out of memory", section);
    return EQM_ERR_NOMEM;
}

/* Names of the plugins of one kind, for hints. */
static void list_plugins(const eqm_registry *r, int kind, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < registry_count(r) && off < n; i++) {
        const eqm_plugin *p = registry_at(r, i);
        if ((int)p->desc.kind != kind)
            continue;
        int w = snprintf(buf + off, n - off, "%s%s", off ? ", " : "", p->desc.name);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    if (!buf[0])
        snprintf(buf, n, "none found; see 'equimod plugins'");
}

int config_bind_plugin(eqm_config *c, const eqm_registry *r, const char *section, int kind,
                       const eqm_plugin **plugin, void **opts, char *err, size_t errlen)
{
    /* the keys of a plugin section the host reads itself ([equimod] t_fields) */
    const char *const *skip = host_plugin_keys(section);
    char names[400];
    *plugin = NULL;
    *opts = NULL;
    const char *kn = kind_name(kind) ? kind_name(kind) : "?";
    cfg_section *s = find_section(c, section);
    cfg_key *pk = s ? find_key(s, "plugin") : NULL;
    if (!pk) {
        list_plugins(r, kind, names, sizeof names);
        snprintf(err, errlen,
                 "%s: [%s]: no 'plugin' key\nhint: add 'plugin = NAME' naming a %s plugin "
                 "(%s)",
                 config_where(c, section, NULL), section, kn, names);
        return EQM_ERR_INVAL;
    }
    const eqm_plugin *p = registry_find(r, kind, pk->value);
    if (!p) {
        const char *cands[256];
        size_t nc = 0;
        for (size_t i = 0; i < registry_count(r) && nc < 256; i++)
            if ((int)registry_at(r, i)->desc.kind == kind)
                cands[nc++] = registry_at(r, i)->desc.name;
        const char *sug = suggest_closest(pk->value, cands, nc);
        list_plugins(r, kind, names, sizeof names);
        snprintf(err, errlen, "%s: [%s] plugin: no %s plugin named '%s'%s%s%s\nhint: %s "
                 "plugins: %s",
                 config_where(c, section, "plugin"), section, kn, pk->value,
                 sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "", kn, names);
        return EQM_ERR_NOTFOUND;
    }
    pk->used = 1;
    void *o = calloc(1, p->desc.params_size ? p->desc.params_size : 1);
    if (!o) {
        snprintf(err, errlen, "[%s]: out of memory", section);
        return EQM_ERR_NOMEM;
    }
    int rc = config_bind(c, section, p->desc.params, o, skip, err, errlen);
    if (rc) {
        free(o);
        return rc;
    }
    *plugin = p;
    *opts = o;
    return EQM_OK;
}

/* Did-you-mean for a section name: host section names, with "x.*" patterns completed
 * by the suffix of the unknown name ("augmnt.view1" -> "augment.view1"). */
static const char *suggest_section(const char *name, char *buf, size_t n)
{
    char store[64][64];
    const char *cands[64];
    size_t nc = 0;
    const char *dot = strchr(name, '.');
    for (size_t i = 0; host_sections[i].name && nc < 64; i++) {
        const char *hn = host_sections[i].name;
        size_t l = strlen(hn);
        if (l >= 2 && !strcmp(hn + l - 2, ".*"))
            snprintf(store[nc], sizeof store[nc], "%.*s.%s", (int)(l - 2), hn,
                     dot ? dot + 1 : "NAME");
        else
            snprintf(store[nc], sizeof store[nc], "%s", hn);
        cands[nc] = store[nc];
        nc++;
    }
    const char *s = suggest_closest(name, cands, nc);
    if (!s)
        return NULL;
    snprintf(buf, n, "%s", s);
    return buf;
}

int config_check_unused(const eqm_config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n; i++) {
        const cfg_section *s = &c->secs[i];
        if (!s->used) {
            char sb[80], all[400];
            size_t off = 0;
            all[0] = '\0';
            for (size_t h = 0; host_sections[h].name && off < sizeof all; h++) {
                int w = snprintf(all + off, sizeof all - off, "%s[%s]", h ? " " : "",
                                 host_sections[h].name);
                if (w < 0)
                    break;
                off += (size_t)w;
            }
            const char *sug = suggest_section(s->name, sb, sizeof sb);
            snprintf(err, errlen, "%s: [%s]: unknown section%s%s%s\nhint: valid sections: %s",
                     config_where(c, s->name, NULL), s->name, sug ? "; did you mean '" : "",
                     sug ? sug : "", sug ? "'?" : "", all);
            return EQM_ERR_INVAL;
        }
        for (size_t k = 0; k < s->n; k++) {
            if (s->keys[k].used)
                continue;
            const char *cands[256];
            size_t nc = 0;
            for (size_t j = 0; j < s->n && nc < 256; j++)
                if (s->keys[j].used)
                    cands[nc++] = s->keys[j].key;
            for (size_t j = 0; j < s->n_res && nc < 256; j++)
                cands[nc++] = s->res_keys[j];
            const char *sug = suggest_closest(s->keys[k].key, cands, nc);
            snprintf(err, errlen, "%s: [%s] %s: unknown key%s%s%s",
                     config_where(c, s->name, s->keys[k].key), s->name, s->keys[k].key,
                     sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
            return EQM_ERR_INVAL;
        }
    }
    return EQM_OK;
}

void config_write(const eqm_config *c, FILE *f)
{
    fprintf(f, "# equimod %s resolved configuration (plugin ABI %d.%d)\n", PACKAGE_VERSION,
            EQM_ABI_MAJOR, EQM_ABI_MINOR);
    if (c->path)
        fprintf(f, "# from %s%s\n", c->path, c->n_sets ? " with --set overrides" : "");
    for (size_t i = 0; i < c->n; i++) {
        const cfg_section *s = &c->secs[i];
        fprintf(f, "\n[%s]\n", s->name);
        if (s->bound) {
            for (size_t k = 0; k < s->n_res; k++)
                fprintf(f, "%s = %s\n", s->res_keys[k], s->res_values[k]);
        } else {
            for (size_t k = 0; k < s->n; k++)
                fprintf(f, "%s = %s\n", s->keys[k].key, s->keys[k].value);
        }
    }
}

/* ------------------------------------------------------------------ resolved ---- */

int config_section_attach(eqm_config *c, const char *section, const eqm_plugin *plugin,
                          void *opts)
{
    cfg_section *s = find_section(c, section);
    if (!s)
        return EQM_ERR_NOTFOUND;
    free(s->opts);
    s->opts = opts;
    s->plugin = plugin;
    return EQM_OK;
}

const void *config_section_opts(const eqm_config *c, const char *section)
{
    const cfg_section *s = find_section(c, section);
    return s ? s->opts : NULL;
}

const eqm_plugin *config_section_plugin(const eqm_config *c, const char *section)
{
    const cfg_section *s = find_section(c, section);
    return s ? s->plugin : NULL;
}
