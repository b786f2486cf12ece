/* host/sweep/planjson.c: sweep.json, the plan a sweep folder was made from (internal.h):
 * written when a folder is bound to its plan (a folder made from another plan is refused,
 * never overwritten), and read back for `equimod sweep DIR` / `equimod report DIR`. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core.h"
#include "fsutil.h"
#include "sweep/internal.h"

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
    return sweep_strdup(s);
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
    p->out = sweep_strdup(dir);
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
            ax->keys[k] = sweep_strdup(json_string_value(json_array_get(keys, (size_t)k)));
            json_t *vk = json_array_get(vals, (size_t)k);
            for (int v = 0; v < ax->n_values; v++)
                ax->values[k * ax->n_values + v] =
                    sweep_strdup(json_string_value(json_array_get(vk, (size_t)v)));
        }
        for (int v = 0; v < ax->n_values; v++)
            ax->labels[v] = sweep_strdup(json_string_value(json_array_get(labs, (size_t)v)));
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
            ru->sets[s] = sweep_strdup(json_string_value(json_array_get(sets, (size_t)s)));
        for (int a = 0; a < p->n_axes; a++)
            ru->labels[a] = sweep_strdup(json_string_value(json_array_get(labs, (size_t)a)));
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
