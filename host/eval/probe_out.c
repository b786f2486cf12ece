/* host/eval/probe_out.c: probe.json read back, for `equimod report` (the run page) and
 * the sweep summary (summary.md: probe R^2 per t group per point, mean ± sd over seeds). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "eval/probe.h"
#include "sweep/sweep.h"

static double num_or_nan(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int probe_json_read(const char *run_dir, probe_summary *s)
{
    memset(s, 0, sizeof *s);
    char path[4200];
    snprintf(path, sizeof path, "%s/probe.json", run_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    json_error_t je;
    json_t *root = json_loadf(f, 0, &je);
    fclose(f);
    if (!root)
        return EQM_ERR_FORMAT;
    int rc = EQM_ERR_FORMAT;
    json_t *groups = json_object_get(root, "groups"), *bb = json_object_get(root, "backbone");
    json_t *em = json_object_get(root, "embedding"), *data = json_object_get(root, "data");
    if (!json_is_array(groups) || !json_is_object(bb) || json_array_size(groups) < 1 ||
        json_array_size(groups) > PROBE_MAX_GROUPS)
        goto out;
    json_t *bbr = json_object_get(bb, "r2"), *emr = json_is_object(em) ? json_object_get(em, "r2") : NULL;
    if (!json_is_object(bbr))
        goto out;
    s->has_embedding = json_is_object(emr);
    size_t n = json_array_size(groups);
    for (size_t g = 0; g <= n; g++) {
        const char *name = "all";
        if (g < n) {
            json_t *nm = json_object_get(json_array_get(groups, g), "name");
            if (!json_is_string(nm))
                goto out;
            name = json_string_value(nm);
        }
        snprintf(s->group[g], sizeof s->group[g], "%s", name);
        s->bb[g] = num_or_nan(bbr, name);
        s->emb[g] = s->has_embedding ? num_or_nan(emr, name) : NAN;
    }
    s->n_groups = (int)n + 1;
    json_t *m = json_object_get(root, "method");
    snprintf(s->method, sizeof s->method, "%s", json_is_string(m) ? json_string_value(m) : "?");
    s->equimod = json_is_true(json_object_get(root, "equimod"));
    s->images = (int64_t)num_or_nan(data, "images");
    json_t *sp = json_object_get(data, "split");
    snprintf(s->split, sizeof s->split, "%s", json_is_string(sp) ? json_string_value(sp) : "?");
    rc = EQM_OK;
out:
    json_decref(root);
    return rc;
}

static void html_esc(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

static void html_r2(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "<td>%.3f</td>", v);
    else
        fputs("<td>n/a</td>", f);
}

int probe_html(FILE *f, const char *run_dir)
{
    probe_summary s;
    int rc = probe_json_read(run_dir, &s);
    if (rc == 1)
        return 0;
    fputs("<h2>What the representation keeps of t (equimod probe)</h2>\n", f);
    if (rc) {
        fputs("<p>probe.json could not be read.</p>\n", f);
        return 0;
    }
    fprintf(f, "<p>Ridge regression from frozen features of augmented views to each group of "
               "t fields; R<sup>2</sup> on held-out images (%lld images of the ",
            (long long)s.images);
    html_esc(f, s.split);
    fputs(" split; 1 = read out perfectly, 0 = no better than the mean). Details: "
          "probe.json.</p>\n<table id=\"probe\">\n<tr><th>t group</th><th>backbone "
          "R<sup>2</sup></th><th>embedding R<sup>2</sup></th></tr>\n",
          f);
    for (int g = 0; g < s.n_groups; g++) {
        fputs("<tr><td>", f);
        html_esc(f, s.group[g]);
        fputs("</td>", f);
        html_r2(f, s.bb[g]);
        html_r2(f, s.emb[g]);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    return 1;
}

static void ms(const double *v, int n, double *mean, double *sd)
{
    double m = 0, q = 0;
    for (int i = 0; i < n; i++)
        m += v[i];
    m = n ? m / n : NAN;
    for (int i = 0; i < n; i++)
        q += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(q / (n - 1)) : NAN;
}

int probe_sweep_md(FILE *f, const sweep_plan *p, const char *dir)
{
    probe_summary *ps = calloc((size_t)p->n_runs + 1, sizeof *ps);
    int *have = calloc((size_t)p->n_runs + 1, sizeof *have);
    double *v = calloc((size_t)p->n_runs + 1, sizeof *v);
    int first = -1;
    for (int r = 0; ps && have && v && r < p->n_runs; r++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, p->runs[r].name);
        have[r] = probe_json_read(path, &ps[r]) == EQM_OK;
        if (have[r] && first < 0)
            first = r;
    }
    if (first < 0) {
        free(ps), free(have), free(v);
        return 0;
    }
    const probe_summary *g0 = &ps[first];
    fprintf(f, "\n## What the representation keeps of t (`equimod probe`)\n\n");
    fprintf(f, "- R^2 of a ridge read-out of each t group from frozen features of augmented "
               "views, on held-out images (probe.json of each run; `equimod probe RUN` writes "
               "it); mean ± sample standard deviation over the runs of the point that have "
               "one (n)\n\n");
    fprintf(f, "| point | representation | n |");
    for (int g = 0; g < g0->n_groups; g++)
        fprintf(f, " %s |", g0->group[g]);
    fprintf(f, "\n|---|---|---|");
    for (int g = 0; g < g0->n_groups; g++)
        fprintf(f, "---|");
    fputc('\n', f);
    for (int r = 0; r < p->n_runs; r++) {
        int seen = 0;
        for (int q = 0; q < r && !seen; q++)
            seen = !strcmp(p->runs[q].point, p->runs[r].point);
        if (seen)
            continue;
        const char *pt = p->runs[r].point;
        for (int rep = 0; rep < 2; rep++) {
            int n = 0;
            for (int q = 0; q < p->n_runs; q++)
                n += have[q] && !strcmp(p->runs[q].point, pt) && (rep == 0 || ps[q].has_embedding);
            if (!n)
                continue;
            fprintf(f, "| %s | %s | %d |", pt, rep ? "embedding" : "backbone", n);
            for (int g = 0; g < g0->n_groups; g++) {
                int k = 0;
                for (int q = 0; q < p->n_runs; q++) {
                    if (!have[q] || strcmp(p->runs[q].point, pt))
                        continue;
                    for (int h = 0; h < ps[q].n_groups; h++)
                        if (!strcmp(ps[q].group[h], g0->group[g])) {
                            double x = rep ? ps[q].emb[h] : ps[q].bb[h];
                            if (isfinite(x))
                                v[k++] = x;
                        }
                }
                double mean, sd;
                ms(v, k, &mean, &sd);
                if (!k)
                    fprintf(f, " |");
                else if (k == 1)
                    fprintf(f, " %.3f (1) |", mean);
                else
                    fprintf(f, " %.3f ± %.3f (%d) |", mean, sd, k);
            }
            fputc('\n', f);
        }
    }
    free(ps), free(have), free(v);
    return 1;
}
