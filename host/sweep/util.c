/* host/sweep/util.c: small helpers of the sweep files (internal.h): the FNV-1a hash,
 * comma lists, run-folder labels, the base config's resolved text and keys, freeing a
 * plan, the default sweep folder. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "sections.h"
#include "sweep/internal.h"

uint64_t sweep_fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}


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

char *sweep_strdup(const char *s) { return strdup(s ? s : ""); }

char *sweep_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* Split "a, b, c" into malloc'ed items; an empty item is an error (returns -1). */
int sweep_split_list(const char *text, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    char *copy = sweep_strdup(text);
    if (!copy)
        return -2;
    int cap = 0, rc = 0;
    char *save = copy;
    for (;;) {
        char *comma = strchr(save, ',');
        if (comma)
            *comma = 0;
        char *item = sweep_trim(save);
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
void sweep_sanitize_label(char *s)
{
    for (char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '+' || *p == '-'))
            *p = '_';
    if (s[0] == '.')
        s[0] = '_';
}

char *sweep_resolved_text(const eqm_config *c)
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
/* Options added after the first sweep folders were written, at their default: left out
 * of the base hash, so a sweep folder an older equimod started is still its plan (the
 * resolved text of an older equimod did not have the line). */
static int newer_default(const char *section, const char *line, size_t l)
{
    static const struct {
        const char *section, *line;
    } skip[] = {{"eval", "linear_at_end = off"}};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strcmp(section, skip[i].section) && l == strlen(skip[i].line) &&
            !memcmp(line, skip[i].line, l))
            return 1;
    return 0;
}

int sweep_resolved_keys(const char *text, char ***keys, size_t *n, uint64_t *hash)
{
    size_t cap = 0;
    *keys = NULL;
    *n = 0;
    uint64_t h = SWEEP_FNV_INIT;
    char section[200] = "";
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l && *p != '#' && *p != ';') {
            if (!newer_default(section, p, l)) {
                h = sweep_fnv(h, p, l);
                h = sweep_fnv(h, "\n", 1);
            }
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
int sweep_add_host_keys(const eqm_config *base, char ***keys, size_t *n)
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

void sweep_free_strv(char **v, size_t n)
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
        sweep_free_strv(ax->values, (size_t)ax->n_keys * ax->n_values);
        sweep_free_strv(ax->labels, (size_t)ax->n_values);
    }
    free(p->axes);
    for (int r = 0; r < p->n_runs; r++) {
        sweep_run *ru = &p->runs[r];
        free(ru->name), free(ru->point), free(ru->seed);
        sweep_free_strv(ru->sets, (size_t)ru->n_sets);
        sweep_free_strv(ru->labels, (size_t)p->n_axes);
    }
    free(p->runs);
    sweep_free_strv(p->fixed, (size_t)p->n_fixed);
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
