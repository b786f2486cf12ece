/* host/params.c: typed option values (eqm_param_spec, plugin.h) and option-table checks.
 *
 * param_parse turns config text into the C value the spec's type names (BOOL int, INT
 * int64_t, FLOAT double, STRING const char *, ENUM int index) with a full-consume check,
 * range and choice checks; param_table_check validates a whole table the way the loader
 * needs it (key syntax, uniqueness, known types, choices, defaults that parse).
 * suggest_closest is the did-you-mean helper (Levenshtein distance) used by config and CLI.
 *
 * Deliberately left out: locale handling (strtod runs in the "C" locale the host never
 * changes), hexadecimal or suffixed integers ("1k"), and case-insensitive enum choices.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core.h"

#define MAX_TABLE_ENTRIES 256

int param_key_valid(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

const char *param_type_name(uint32_t type)
{
    switch (type) {
    case EQM_PARAM_BOOL: return "bool";
    case EQM_PARAM_INT: return "int";
    case EQM_PARAM_FLOAT: return "float";
    case EQM_PARAM_STRING: return "string";
    case EQM_PARAM_ENUM: return "enum";
    default: return NULL;
    }
}

/* Prints a range bound: integers without a fraction, others with %g. */
static void fmt_bound(char *buf, size_t n, double v)
{
    if (fabs(v) < 9.007199254740992e15 && v == floor(v))
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%g", v);
}

void param_range_text(const eqm_param_spec *p, char *buf, size_t n)
{
    if (!n)
        return;
    buf[0] = '\0';
    if (p->type == EQM_PARAM_ENUM) {
        snprintf(buf, n, "%s", p->choices ? p->choices : "");
    } else if (p->type == EQM_PARAM_BOOL) {
        snprintf(buf, n, "true|false");
    } else if ((p->type == EQM_PARAM_INT || p->type == EQM_PARAM_FLOAT) && p->min <= p->max) {
        char a[40], b[40];
        fmt_bound(a, sizeof a, p->min);
        fmt_bound(b, sizeof b, p->max);
        snprintf(buf, n, "[%s, %s]", a, b);
    }
}

/* Index of `text` in choices "a|b|c", -1 if absent. */
static int choice_index(const char *choices, const char *text)
{
    size_t tl = strlen(text);
    int i = 0;
    for (const char *s = choices; s;) {
        const char *bar = strchr(s, '|');
        size_t l = bar ? (size_t)(bar - s) : strlen(s);
        if (l == tl && !strncmp(s, text, l))
            return i;
        i++;
        s = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* Levenshtein distance, capped inputs (names are short). */
static size_t lev(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return (size_t)-1;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (a[i - 1] != b[j - 1]);
            size_t del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

const char *suggest_closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t wl = strlen(word);
    for (size_t i = 0; i < n; i++) {
        if (!cands[i])
            continue;
        size_t d = lev(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    /* Accept up to a third of the word's length (at least 2 edits): "dpeth" -> "depth". */
    size_t lim = wl / 3 > 2 ? wl / 3 : 2;
    return best && best_d > 0 && best_d <= lim ? best : NULL;
}

/* Did-you-mean over the choices of an enum. */
static const char *suggest_choice(const char *choices, const char *text, char *buf, size_t n)
{
    const char *cands[64];
    char copy[512];
    size_t nc = 0;
    snprintf(copy, sizeof copy, "%s", choices);
    for (char *s = copy; s && nc < 64;) {
        char *bar = strchr(s, '|');
        if (bar)
            *bar = '\0';
        cands[nc++] = s;
        s = bar ? bar + 1 : NULL;
    }
    const char *best = suggest_closest(text, cands, nc);
    if (!best)
        return NULL;
    snprintf(buf, n, "%s", best);
    return buf;
}

int param_parse(const eqm_param_spec *p, const char *text, void *field, char *err,
                size_t errlen)
{
    char rb[96];
    if (!text)
        text = "";
    switch (p->type) {
    case EQM_PARAM_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(text, yes[i])) {
                *(int *)field = 1;
                return EQM_OK;
            }
            if (!strcasecmp(text, no[i])) {
                *(int *)field = 0;
                return EQM_OK;
            }
        }
        snprintf(err, errlen, "'%s' is not a boolean (use true or false)", text);
        return EQM_ERR_INVAL;
    }
    case EQM_PARAM_INT: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || end == text) {
            snprintf(err, errlen, "'%s' is not an integer", text);
            return EQM_ERR_INVAL;
        }
        if (errno == ERANGE) {
            snprintf(err, errlen, "'%s' is too large for a 64-bit integer", text);
            return EQM_ERR_INVAL;
        }
        if (p->min <= p->max && ((double)v < p->min || (double)v > p->max)) {
            param_range_text(p, rb, sizeof rb);
            snprintf(err, errlen, "%lld is out of range %s", v, rb);
            return EQM_ERR_INVAL;
        }
        *(int64_t *)field = (int64_t)v;
        return EQM_OK;
    }
    case EQM_PARAM_FLOAT: {
        char *end = NULL;
        errno = 0;
        double v = strtod(text, &end);
        if (!*text || *end || end == text) {
            snprintf(err, errlen, "'%s' is not a number", text);
            return EQM_ERR_INVAL;
        }
        if (!isfinite(v)) {
            snprintf(err, errlen, "'%s' is not a finite number", text);
            return EQM_ERR_INVAL;
        }
        if (p->min <= p->max && (v < p->min || v > p->max)) {
            param_range_text(p, rb, sizeof rb);
            snprintf(err, errlen, "%s is out of range %s", text, rb);
            return EQM_ERR_INVAL;
        }
        *(double *)field = v;
        return EQM_OK;
    }
    case EQM_PARAM_STRING:
        *(const char **)field = text;
        return EQM_OK;
    case EQM_PARAM_ENUM: {
        if (!p->choices) {
            snprintf(err, errlen, "enum option has no choices");
            return EQM_ERR_INVAL;
        }
        int i = choice_index(p->choices, text);
        if (i < 0) {
            char sb[64];
            const char *s = suggest_choice(p->choices, text, sb, sizeof sb);
            if (s)
                snprintf(err, errlen, "'%s' is not one of %s; did you mean '%s'?", text,
                         p->choices, s);
            else
                snprintf(err, errlen, "'%s' is not one of %s", text, p->choices);
            return EQM_ERR_INVAL;
        }
        *(int *)field = i;
        return EQM_OK;
    }
    default:
        snprintf(err, errlen, "unknown option type %u", (unsigned)p->type);
        return EQM_ERR_INVAL;
    }
}

size_t param_field_size(uint32_t type)
{
    switch (type) {
    case EQM_PARAM_BOOL:
    case EQM_PARAM_ENUM: return sizeof(int);
    case EQM_PARAM_INT: return sizeof(int64_t);
    case EQM_PARAM_FLOAT: return sizeof(double);
    case EQM_PARAM_STRING: return sizeof(const char *);
    default: return 0;
    }
}

size_t param_table_len(const eqm_param_spec *spec)
{
    size_t n = 0;
    if (spec)
        while (n < MAX_TABLE_ENTRIES && spec[n].key)
            n++;
    return n;
}

static int check_choices(const char *choices, char *err, size_t errlen, const char *key)
{
    if (!choices || !*choices) {
        snprintf(err, errlen, "option '%s': enum without choices", key);
        return EQM_ERR_FORMAT;
    }
    const char *s = choices;
    for (;;) {
        const char *bar = strchr(s, '|');
        size_t l = bar ? (size_t)(bar - s) : strlen(s);
        if (l == 0) {
            snprintf(err, errlen, "option '%s': empty item in choices \"%s\"", key, choices);
            return EQM_ERR_FORMAT;
        }
        for (size_t k = 0; k < l; k++)
            if (s[k] == ' ' || s[k] == '\t' || s[k] == ';' || s[k] == '#') {
                snprintf(err, errlen, "option '%s': choice with a blank, ';' or '#' in \"%s\"",
                         key, choices);
                return EQM_ERR_FORMAT;
            }
        /* duplicates: compare with every earlier item */
        for (const char *t = choices; t < s;) {
            const char *tb = strchr(t, '|');
            size_t tl = (size_t)(tb - t);
            if (tl == l && !strncmp(t, s, l)) {
                snprintf(err, errlen, "option '%s': duplicate choice '%.*s' in \"%s\"", key,
                         (int)l, s, choices);
                return EQM_ERR_FORMAT;
            }
            t = tb + 1;
        }
        if (!bar)
            break;
        s = bar + 1;
    }
    return EQM_OK;
}

int param_table_check(const eqm_param_spec *spec, char *err, size_t errlen)
{
    if (!spec)
        return EQM_OK;
    size_t n = 0;
    for (; n < MAX_TABLE_ENTRIES && spec[n].key; n++) {
        const eqm_param_spec *p = &spec[n];
        if (!param_key_valid(p->key)) {
            snprintf(err, errlen, "option %zu: key '%s' is not [a-z0-9_]+", n, p->key);
            return EQM_ERR_FORMAT;
        }
        if (!strcmp(p->key, "plugin")) {
            snprintf(err, errlen, "option %zu: key 'plugin' is reserved by the host", n);
            return EQM_ERR_FORMAT;
        }
        for (size_t j = 0; j < n; j++)
            if (!strcmp(spec[j].key, p->key)) {
                snprintf(err, errlen, "option %zu: duplicate key '%s'", n, p->key);
                return EQM_ERR_FORMAT;
            }
        if (!param_type_name(p->type)) {
            snprintf(err, errlen, "option '%s': unknown type %u (host knows 1..%d)", p->key,
                     (unsigned)p->type, EQM_PARAM_TYPE_COUNT - 1);
            return EQM_ERR_FORMAT;
        }
        if (isnan(p->min) || isnan(p->max)) {
            snprintf(err, errlen, "option '%s': NaN in range", p->key);
            return EQM_ERR_FORMAT;
        }
        if (p->type == EQM_PARAM_ENUM) {
            int rc = check_choices(p->choices, err, errlen, p->key);
            if (rc)
                return rc;
        } else if (p->choices) {
            snprintf(err, errlen, "option '%s': choices given for a %s option", p->key,
                     param_type_name(p->type));
            return EQM_ERR_FORMAT;
        }
        if (!p->def && p->type != EQM_PARAM_STRING) {
            snprintf(err, errlen, "option '%s': no default (NULL is allowed for strings only)",
                     p->key);
            return EQM_ERR_FORMAT;
        }
        union {
            int i;
            int64_t l;
            double d;
            const char *s;
        } tmp;
        char why[256];
        if (param_parse(p, p->def, &tmp, why, sizeof why)) {
            snprintf(err, errlen, "option '%s': default does not validate: %s", p->key, why);
            return EQM_ERR_FORMAT;
        }
    }
    if (n == MAX_TABLE_ENTRIES) {
        snprintf(err, errlen, "no terminating entry (key NULL) within %d options",
                 MAX_TABLE_ENTRIES);
        return EQM_ERR_FORMAT;
    }
    return EQM_OK;
}
