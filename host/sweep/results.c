/* host/sweep/results.c: results.csv and summary.md of a sweep folder, read from its run
 * folders only (so --collect rebuilds them at any time, and a run trained by hand into
 * the folder counts the same).
 *
 * From a run folder:
 *   sweep-status.json  status, exit code, wall time (summed over attempts), last log lines
 *   metrics.jsonl      step records: final losses = means over the steps of the last
 *                      epoch, each step counted once (a resumed run rewrites the steps
 *                      after its checkpoint: the last record of a step wins, so an
 *                      interrupted and resumed run gives the numbers of an uninterrupted
 *                      one); img/s = images / summed step time; the "final" kNN record
 *   report.md          the test set the final kNN used (its "- kNN final" line)
 *   eval-linear.log    the linear probe's top-1 ([sweep] linear, older sweeps)
 *   metrics.jsonl      when present (newer runs): the final kNN's test_set, the
 *                      {"kind":"linear"} probe ([eval] linear_at_end), the {"kind":"end"}
 *                      record's images_per_step and threads; they win over the above
 *   machine.json       the CPU model the run trained on
 * summary.md: per point of the non-seed axes, n, mean and sample standard deviation of
 * each metric over the finished runs, and with [sweep] baseline the difference to the
 * baseline point paired by seed (mean and standard deviation of the per-seed
 * differences, over the seeds both have).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core.h"
#include "eval/probe.h"
#include "sweep/sweep.h"

sweep_step *sweep_read_steps(const char *run_dir, const char *const *names, int n_names,
                             void (*on_knn)(const char *line, void *ud), void *ud, size_t *n)
{
    *n = 0;
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(p, "r");
    if (!f)
        return NULL;
    sweep_step *st = NULL;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        double v;
        if (!strchr(line, '}'))
            continue; /* a line cut by a crash */
        if (strstr(line, "\"kind\":\"knn\"")) {
            if (on_knn)
                on_knn(line, ud);
            continue;
        }
        if (!strstr(line, "\"kind\":\"step\"") || !sweep_json_get(line, "step", &v) || v < 0 ||
            v > 1e9)
            continue;
        size_t s = (size_t)v;
        if (s >= cap) {
            size_t nc = cap ? cap : 256;
            while (nc <= s)
                nc *= 2;
            sweep_step *ns = realloc(st, nc * sizeof *ns);
            if (!ns)
                break;
            memset(ns + cap, 0, (nc - cap) * sizeof *ns);
            st = ns;
            cap = nc;
        }
        sweep_step *q = &st[s];
        q->present = 1;
        q->epoch = q->img_s = q->step_s = NAN;
        sweep_json_get(line, "epoch", &q->epoch);
        for (int k = 0; k < n_names && k < SWEEP_STEP_VALUES; k++) {
            q->v[k] = NAN;
            sweep_json_get(line, names[k], &q->v[k]);
        }
        sweep_json_get(line, "img_s", &q->img_s);
        sweep_json_get(line, "step_s", &q->step_s);
        if (s + 1 > *n)
            *n = s + 1;
    }
    free(line);
    fclose(f);
    if (!*n) {
        free(st);
        return NULL;
    }
    return st;
}

static void final_knn(const char *line, void *ud)
{
    run_result *r = ud;
    double v;
    if (!strstr(line, "\"what\":\"final\""))
        return;
    if (sweep_json_get(line, "top1", &v))
        r->knn_top1 = v;
    if (sweep_json_get(line, "top5", &v))
        r->knn_top5 = v;
    if (sweep_json_get(line, "n_test", &v))
        r->knn_n = v;
}

static void read_metrics(const char *run_dir, run_result *r)
{
    static const char *const names[4] = {"loss", "loss_inv", "loss_equi", "equi_gain"};
    size_t n;
    sweep_step *st = sweep_read_steps(run_dir, names, 4, final_knn, r, &n);
    double last = -1, imgs = 0, secs = 0;
    for (size_t s = 0; s < n; s++)
        if (st[s].present) {
            if (st[s].epoch > last)
                last = st[s].epoch;
            if (isfinite(st[s].img_s) && isfinite(st[s].step_s)) {
                imgs += st[s].img_s * st[s].step_s;
                secs += st[s].step_s;
            }
        }
    if (n) {
        double sum[4] = {0}, cnt[4] = {0};
        for (size_t s = 0; s < n; s++) {
            if (!st[s].present || st[s].epoch != last)
                continue;
            for (int k = 0; k < 4; k++)
                if (isfinite(st[s].v[k]))
                    sum[k] += st[s].v[k], cnt[k]++;
        }
        double *out[4] = {&r->loss, &r->loss_inv, &r->loss_equi, &r->equi_gain};
        for (int k = 0; k < 4; k++)
            *out[k] = cnt[k] ? sum[k] / cnt[k] : NAN;
        r->epochs = last + 1;
        r->steps = (double)n;
        r->img_s = secs > 0 ? imgs / secs : NAN;
    }
    free(st);
}

/* "- kNN final (...): ... on N test images (DESC)" in report.md -> DESC */
static void read_test_set(const char *run_dir, run_result *r)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/report.md", run_dir);
    FILE *f = fopen(p, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "- kNN final", 11))
            continue;
        const char *s = strstr(line, " test images (");
        if (!s)
            continue;
        s += strlen(" test images (");
        size_t l = strlen(s);
        while (l && (s[l - 1] == '\n' || s[l - 1] == '\r'))
            l--;
        if (l && s[l - 1] == ')')
            l--;
        snprintf(r->test_set, sizeof r->test_set, "%.*s", (int)l, s);
    }
    free(line);
    fclose(f);
}

static void read_linear(const char *run_dir, run_result *r)
{
    char p[4400], line[2048];
    snprintf(p, sizeof p, "%s/eval-linear.log", run_dir);
    FILE *f = fopen(p, "r");
    while (f && fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "top-1 ");
        if (strstr(line, "linear probe") && s)
            r->linear_top1 = strtod(s + 6, NULL);
    }
    if (f)
        fclose(f);
}

/* The records of metrics.jsonl that newer runs write (fields optional: older runs lack
 * them and keep what the files above gave). */
static void read_records(const char *run_dir, run_result *r)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(p, "r");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        int knn = !strncmp(line, "{\"kind\":\"knn\",", 14), lin = !strncmp(line, "{\"kind\":\"linear\",", 17),
            end = !strncmp(line, "{\"kind\":\"end\",", 14);
        if (!knn && !lin && !end)
            continue;
        json_t *j = json_loads(line, 0, NULL);
        if (!j)
            continue; /* cut by a crash */
        const char *what = json_string_value(json_object_get(j, "what"));
        const char *ts = json_string_value(json_object_get(j, "test_set"));
        if (knn && what && !strcmp(what, "final") && ts)
            snprintf(r->test_set, sizeof r->test_set, "%s", ts);
        json_t *v;
        if (lin && json_is_number(v = json_object_get(j, "top1")))
            r->linear_top1 = json_number_value(v);
        if (end && json_is_number(v = json_object_get(j, "images_per_step")))
            r->images_per_step = json_number_value(v);
        if (end && json_is_number(v = json_object_get(j, "threads")))
            r->threads = json_number_value(v);
        json_decref(j);
    }
    free(line);
    if (f)
        fclose(f);
    snprintf(p, sizeof p, "%s/machine.json", run_dir);
    json_t *m = json_load_file(p, 0, NULL);
    const char *cpu = json_string_value(json_object_get(m, "cpu_model"));
    if (cpu)
        snprintf(r->cpu, sizeof r->cpu, "%s", cpu);
    json_decref(m);
}

void run_result_read(const char *run_dir, run_result *r)
{
    memset(r, 0, sizeof *r);
    r->knn_top1 = r->knn_top5 = r->knn_n = r->linear_top1 = NAN;
    r->loss = r->loss_inv = r->loss_equi = r->equi_gain = NAN;
    r->epochs = r->steps = r->wall_s = r->img_s = NAN;
    r->images_per_step = r->threads = NAN;
    r->exit_code = -1;
    snprintf(r->status, sizeof r->status, "pending");
    char p[4400];
    snprintf(p, sizeof p, "%s/sweep-status.json", run_dir);
    json_t *j = json_load_file(p, 0, NULL);
    if (j) {
        const char *s = json_string_value(json_object_get(j, "status"));
        snprintf(r->status, sizeof r->status, "%s", s ? s : "?");
        r->exit_code = (int)json_integer_value(json_object_get(j, "exit"));
        r->wall_s = json_number_value(json_object_get(j, "wall_s"));
        json_t *tail = json_object_get(j, "log_tail");
        size_t n = json_array_size(tail);
        if (n)
            snprintf(r->last_log, sizeof r->last_log, "%s",
                     json_string_value(json_array_get(tail, n - 1)));
        json_decref(j);
    }
    read_metrics(run_dir, r);
    read_test_set(run_dir, r);
    read_linear(run_dir, r);
    read_records(run_dir, r);
    if (!j && isfinite(r->steps))
        snprintf(r->status, sizeof r->status, "incomplete");
}

/* ------------------------------------------------------------ tables ------------ */

static void csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s == '\n' ? ' ' : *s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
}

static void csv_num(FILE *f, double v, const char *fmt)
{
    fputc(',', f);
    if (isfinite(v))
        fprintf(f, fmt, v);
}

typedef struct metric_def {
    const char *col, *title;
    size_t off;
} metric_def;

#define RO(f) offsetof(run_result, f)
static const metric_def summary_metrics[] = {
    {"knn_top1", "kNN top-1 %", RO(knn_top1)},   {"knn_top5", "kNN top-5 %", RO(knn_top5)},
    {"linear_top1", "linear top-1 %", RO(linear_top1)}, {"loss", "final loss", RO(loss)},
    {"equi_gain", "equivariance gain", RO(equi_gain)},
};
#define N_SUMMARY (sizeof summary_metrics / sizeof summary_metrics[0])

static double metric_of(const run_result *r, const metric_def *m)
{
    return *(const double *)((const char *)r + m->off);
}

static void mean_std(const double *v, int n, double *mean, double *sd)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = n ? s / n : NAN;
    double q = 0;
    for (int i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : NAN;
}

static void md_ms(FILE *f, double mean, double sd, int n, int sign)
{
    if (!n || !isfinite(mean)) {
        fputs(" - |", f);
        return;
    }
    fprintf(f, sign ? " %+.3f" : " %.3f", mean);
    if (isfinite(sd))
        fprintf(f, " ± %.3f", sd);
    if (sign)
        fprintf(f, " (%d)", n);
    fputs(" |", f);
}

/* results.csv: one row per run. */
static void write_csv(FILE *f, const sweep_plan *p, const run_result *rr, const char *dir)
{
    (void)dir;
    fputs("run", f);
    for (int a = 0; a < p->n_axes; a++) {
        fputc(',', f);
        csv_field(f, p->axes[a].name);
    }
    fputs(",status,exit,knn_top1,knn_top5,knn_n_test,linear_top1,loss,loss_inv,loss_equi,"
          "equi_gain,epochs,steps,wall_s,img_s,test_set,images_per_step,threads,cpu\n",
          f);
    for (int r = 0; r < p->n_runs; r++) {
        const run_result *x = &rr[r];
        csv_field(f, p->runs[r].name);
        for (int a = 0; a < p->n_axes; a++) {
            fputc(',', f);
            csv_field(f, p->runs[r].labels[a]);
        }
        fprintf(f, ",%s,", x->status);
        if (x->exit_code >= 0)
            fprintf(f, "%d", x->exit_code);
        csv_num(f, x->knn_top1, "%.4f");
        csv_num(f, x->knn_top5, "%.4f");
        csv_num(f, x->knn_n, "%.0f");
        csv_num(f, x->linear_top1, "%.4f");
        csv_num(f, x->loss, "%.6f");
        csv_num(f, x->loss_inv, "%.6f");
        csv_num(f, x->loss_equi, "%.6f");
        csv_num(f, x->equi_gain, "%.6f");
        csv_num(f, x->epochs, "%.0f");
        csv_num(f, x->steps, "%.0f");
        csv_num(f, x->wall_s, "%.1f");
        csv_num(f, x->img_s, "%.1f");
        fputc(',', f);
        csv_field(f, x->test_set);
        csv_num(f, x->images_per_step, "%.0f");
        csv_num(f, x->threads, "%.0f");
        fputc(',', f);
        csv_field(f, x->cpu);
        fputc('\n', f);
    }
}

typedef struct sum_ctx {
    const sweep_plan *p;
    const run_result *rr;
    const char *base; /* the baseline point, NULL without one */
    int has_linear, n_done, n_failed;
    double *v;        /* scratch: n_runs values */
} sum_ctx;

/* summary.md's head: the sweep, the counts, the test set, the table's header. */
static void summary_head(FILE *f, sum_ctx *S)
{
    const sweep_plan *p = S->p;
    const char *test_set = NULL;
    int mixed_sets = 0;
    for (int r = 0; r < p->n_runs; r++) {
        S->n_done += !strcmp(S->rr[r].status, "done");
        S->n_failed += !strcmp(S->rr[r].status, "failed");
        S->has_linear |= isfinite(S->rr[r].linear_top1);
        if (S->rr[r].test_set[0]) {
            if (test_set && strcmp(test_set, S->rr[r].test_set))
                mixed_sets = 1;
            test_set = S->rr[r].test_set;
        }
    }
    fprintf(f, "# Sweep summary\n\n");
    fprintf(f, "- sweep file: `%s`; base config: `%s` (resolved hash %016llx)\n",
            p->file && *p->file ? p->file : "?", p->base, (unsigned long long)p->base_hash);
    fprintf(f, "- runs: %d, done %d, failed %d, not finished %d\n", p->n_runs, S->n_done,
            S->n_failed, p->n_runs - S->n_done - S->n_failed);
    fprintf(f, "- test set: %s\n", mixed_sets ? "differs between runs (see results.csv)"
                                    : test_set ? test_set : "(no final kNN recorded)");
    fprintf(f, "- each cell: mean ± sample standard deviation over the finished runs of the "
               "point (n)");
    if (S->base)
        fprintf(f, "; Δ: difference to the baseline point `%s`, paired by seed: mean ± "
                   "standard deviation of the per-seed differences (number of pairs)",
                S->base);
    fprintf(f, "\n\n| point | n |");
    for (size_t m = 0; m < N_SUMMARY; m++)
        if (S->has_linear || strcmp(summary_metrics[m].col, "linear_top1"))
            fprintf(f, " %s |", summary_metrics[m].title);
    if (S->base) {
        fprintf(f, " Δ kNN top-1 |");
        if (S->has_linear)
            fprintf(f, " Δ linear top-1 |");
    }
    fprintf(f, "\n|---|---|");
    for (size_t m = 0; m < N_SUMMARY; m++)
        if (S->has_linear || strcmp(summary_metrics[m].col, "linear_top1"))
            fprintf(f, "---|");
    if (S->base)
        fprintf(f, S->has_linear ? "---|---|" : "---|");
    fputc('\n', f);
}

/* The differences of metric m to the baseline point, paired by seed, for point pt. */
static void summary_delta(FILE *f, const sum_ctx *S, const char *pt, const metric_def *m)
{
    const sweep_plan *p = S->p;
    int k = 0;
    for (int q = 0; q < p->n_runs; q++) {
        if (strcmp(p->runs[q].point, pt) || strcmp(S->rr[q].status, "done"))
            continue;
        for (int b = 0; b < p->n_runs; b++)
            if (!strcmp(p->runs[b].point, S->base) && !strcmp(p->runs[b].seed, p->runs[q].seed) &&
                !strcmp(S->rr[b].status, "done")) {
                double x = metric_of(&S->rr[q], m) - metric_of(&S->rr[b], m);
                if (isfinite(x))
                    S->v[k++] = x;
            }
    }
    double mean, sd;
    mean_std(S->v, k, &mean, &sd);
    md_ms(f, mean, sd, k, 1);
}

/* One table row: the point pt (first seen at run r). */
static void summary_row(FILE *f, const sum_ctx *S, const char *pt)
{
    const sweep_plan *p = S->p;
    int n = 0;
    for (int q = 0; q < p->n_runs; q++)
        n += !strcmp(p->runs[q].point, pt) && !strcmp(S->rr[q].status, "done");
    fprintf(f, "| %s%s | %d |", pt, S->base && !strcmp(pt, S->base) ? " (baseline)" : "", n);
    for (size_t m = 0; m < N_SUMMARY; m++) {
        if (!S->has_linear && !strcmp(summary_metrics[m].col, "linear_top1"))
            continue;
        int k = 0;
        for (int q = 0; q < p->n_runs; q++) {
            double x = metric_of(&S->rr[q], &summary_metrics[m]);
            if (!strcmp(p->runs[q].point, pt) && !strcmp(S->rr[q].status, "done") && isfinite(x))
                S->v[k++] = x;
        }
        double mean, sd;
        mean_std(S->v, k, &mean, &sd);
        md_ms(f, mean, sd, k, 0);
    }
    for (int d = 0; S->base && d < 1 + S->has_linear; d++)
        summary_delta(f, S, pt, &summary_metrics[d ? 2 : 0]);
    fputc('\n', f);
}

/* The failed runs with their last log line, and the runs not finished. */
static void summary_lists(FILE *f, const sum_ctx *S)
{
    const sweep_plan *p = S->p;
    if (S->n_failed) {
        fprintf(f, "\n## Failed runs\n\n");
        for (int r = 0; r < p->n_runs; r++)
            if (!strcmp(S->rr[r].status, "failed"))
                fprintf(f, "- `%s`: exit %d: %s (log: `%s/train.log`)\n", p->runs[r].name,
                        S->rr[r].exit_code, S->rr[r].last_log[0] ? S->rr[r].last_log : "?",
                        p->runs[r].name);
    }
    if (p->n_runs - S->n_done - S->n_failed > 0) {
        fprintf(f, "\n## Not finished\n\n");
        for (int r = 0; r < p->n_runs; r++)
            if (strcmp(S->rr[r].status, "done") && strcmp(S->rr[r].status, "failed"))
                fprintf(f, "- `%s`: %s\n", p->runs[r].name, S->rr[r].status);
    }
}

static void write_summary(FILE *f, const sweep_plan *p, const run_result *rr, const char *dir)
{
    sum_ctx S = {p, rr, p->baseline && *p->baseline ? p->baseline : NULL, 0, 0, 0, NULL};
    summary_head(f, &S);
    S.v = calloc((size_t)p->n_runs + 1, sizeof *S.v);
    for (int r = 0; S.v && r < p->n_runs; r++) {
        int first = 1;
        for (int q = 0; q < r && first; q++)
            if (!strcmp(p->runs[q].point, p->runs[r].point))
                first = 0;
        if (first)
            summary_row(f, &S, p->runs[r].point);
    }
    free(S.v);
    probe_sweep_md(f, p, dir); /* probe R^2 per t group per point, when runs have one */
    summary_lists(f, &S);
}

/* DIR/NAME written through NAME.tmp and renamed. */
static int write_table(const char *dir, const char *name, const sweep_plan *p,
                       const run_result *rr,
                       void (*fn)(FILE *, const sweep_plan *, const run_result *, const char *), char *err,
                       size_t errlen)
{
    char path[4400], tmp[4500];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot write", tmp);
    fn(f, p, rr, dir);
    if (fclose(f) || rename(tmp, path))
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot write", path);
    return EQM_OK;
}

int sweep_collect(const sweep_plan *p, const char *dir, char *err, size_t errlen)
{
    run_result *rr = calloc((size_t)p->n_runs + 1, sizeof *rr);
    if (!rr)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    char path[4400];
    for (int r = 0; r < p->n_runs; r++) {
        snprintf(path, sizeof path, "%s/%s", dir, p->runs[r].name);
        run_result_read(path, &rr[r]);
    }
    int rc = write_table(dir, "results.csv", p, rr, write_csv, err, errlen);
    if (!rc)
        rc = write_table(dir, "summary.md", p, rr, write_summary, err, errlen);
    free(rr);
    return rc;
}
