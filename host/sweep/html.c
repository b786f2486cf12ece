/* host/sweep/html.c: `equimod report`: one self-contained HTML page (inline CSS and SVG,
 * no script, nothing fetched) for a run folder or a sweep folder (sweep.h).
 *
 * Run: the resolved config (config.ini), machine and version, report.md, per-epoch
 * curves from metrics.jsonl (losses, lr, equivariance gain, online kNN, img/s).
 * Sweep: summary.md's table, the results.csv table (id="results", one row per run, the
 * same cells as the file), each metric against each swept value (mean over seeds, error
 * bars: sample standard deviation), training curves overlaid per point (means over
 * seeds), failed runs with their last log lines, the base config.
 * Per-epoch values are means over the step records of each epoch, each step counted
 * once (the last record of a step wins), so a resumed run draws like an uninterrupted
 * one. Machine: where each run trained (RUN/machine.json: CPU, flags, threads, versions,
 * OpenBLAS) and its end record (times, img/s, evaluations with their test sets) when the
 * run folder has them (older runs do not: then only the machine the report is made on).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core.h"
#include "eval/probe.h"
#include "sweep/sweep.h"

/* ------------------------------------------------------------ run curves --------- */

#define N_TERMS 5
static const char *const term_names[N_TERMS] = {"loss", "loss_inv", "loss_equi", "equi_gain",
                                                "lr"};

typedef struct curves {
    int n_epochs;
    double *term[N_TERMS]; /* per epoch: mean over its steps */
    double *img_s;         /* per epoch */
    int n_knn;
    double knn_epoch[256], knn_top1[256];
    int n_lr;
    double *lr_step, *lr;
} curves;

static void curves_free(curves *c)
{
    for (int k = 0; k < N_TERMS; k++)
        free(c->term[k]);
    free(c->img_s), free(c->lr_step), free(c->lr);
    memset(c, 0, sizeof *c);
}

static void curve_knn(const char *line, void *ud)
{
    curves *c = ud;
    double e, t;
    if (strstr(line, "\"what\":\"untrained\"") || !sweep_json_get(line, "epoch", &e) ||
        !sweep_json_get(line, "top1", &t) || c->n_knn >= 256)
        return;
    int k = 0;
    while (k < c->n_knn && c->knn_epoch[k] != e)
        k++;
    c->knn_epoch[k] = e, c->knn_top1[k] = t;
    if (k == c->n_knn)
        c->n_knn++;
}

static void curves_read(const char *run_dir, curves *c)
{
    memset(c, 0, sizeof *c);
    size_t n;
    sweep_step *st = sweep_read_steps(run_dir, term_names, N_TERMS, curve_knn, c, &n);
    int ne = 0;
    for (size_t s = 0; s < n; s++)
        if (st[s].present && st[s].epoch >= 0 && st[s].epoch < 1e6 && st[s].epoch + 1 > ne)
            ne = (int)st[s].epoch + 1;
    c->n_epochs = ne;
    for (int k = 0; k < N_TERMS; k++)
        c->term[k] = calloc((size_t)ne + 1, sizeof(double));
    c->img_s = calloc((size_t)ne + 1, sizeof(double));
    double *cnt = calloc((size_t)ne + 1, N_TERMS * sizeof(double)),
           *im = calloc((size_t)ne + 1, 2 * sizeof(double));
    c->lr_step = malloc((n + 1) * sizeof(double));
    c->lr = malloc((n + 1) * sizeof(double));
    if (!cnt || !im || !c->img_s || !c->lr_step || !c->lr) {
        free(cnt), free(im), free(st);
        curves_free(c);
        return;
    }
    for (size_t s = 0; s < n; s++) {
        if (!st[s].present || !(st[s].epoch >= 0 && st[s].epoch < ne))
            continue;
        int e = (int)st[s].epoch;
        for (int k = 0; k < N_TERMS; k++)
            if (c->term[k] && isfinite(st[s].v[k]))
                c->term[k][e] += st[s].v[k], cnt[e * N_TERMS + k]++;
        if (isfinite(st[s].img_s) && isfinite(st[s].step_s))
            im[2 * e] += st[s].img_s * st[s].step_s, im[2 * e + 1] += st[s].step_s;
        if (isfinite(st[s].v[4]))
            c->lr_step[c->n_lr] = (double)s, c->lr[c->n_lr++] = st[s].v[4];
    }
    for (int e = 0; e < ne; e++) {
        for (int k = 0; k < N_TERMS; k++)
            if (c->term[k])
                c->term[k][e] = cnt[e * N_TERMS + k] ? c->term[k][e] / cnt[e * N_TERMS + k] : NAN;
        c->img_s[e] = im[2 * e + 1] > 0 ? im[2 * e] / im[2 * e + 1] : NAN;
    }
    free(cnt), free(im), free(st);
}

/* ------------------------------------------------------------ html/svg ----------- */

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void pre_file(FILE *f, const char *path)
{
    FILE *in = fopen(path, "r");
    if (!in) {
        fputs("<p class=\"dim\">(missing)</p>\n", f);
        return;
    }
    fputs("<pre>", f);
    char buf[4096];
    while (fgets(buf, sizeof buf, in))
        esc(f, buf);
    fputs("</pre>\n", f);
    fclose(in);
}

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_PALETTE 10

typedef struct series {
    const char *name;
    const double *x, *y, *err; /* err may be NULL */
    int n;
} series;

/* A line chart; with cats, x are category indices labelled cats[i]. */
static void svg_chart(FILE *f, const char *title, const char *xlabel, const series *s, int ns,
                      const char *const *cats, int ncats)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].y[k]))
                continue;
            double e = s[i].err && isfinite(s[i].err[k]) ? s[i].err[k] : 0;
            x0 = fmin(x0, s[i].x[k]), x1 = fmax(x1, s[i].x[k]);
            y0 = fmin(y0, s[i].y[k] - e), y1 = fmax(y1, s[i].y[k] + e);
        }
    if (cats)
        x0 = -0.5, x1 = ncats - 0.5;
    if (!isfinite(x0) || !isfinite(y0)) {
        fprintf(f, "<p class=\"dim\">%s: no data</p>\n", title);
        return;
    }
    if (!(x1 > x0))
        x0 -= 0.5, x1 += 0.5;
    if (!(y1 > y0)) {
        double d = fabs(y0) > 0 ? fabs(y0) * 0.05 : 0.5;
        y0 -= d, y1 += d;
    }
    double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
    const double W = 560, H = 300, L = 64, R = 150, T = 28, B = 42;
#define PX(x) (L + ((x)-x0) / (x1 - x0) * (W - L - R))
#define PY(y) (T + (y1 - (y)) / (y1 - y0) * (H - T - B))
    fprintf(f, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
               "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n<text x=\"%g\" y=\"18\" "
               "font-weight=\"bold\">",
            W, H, W, H, L);
    esc(f, title);
    fprintf(f, "</text>\n<path d=\"M%g %g V%g H%g\" stroke=\"#333\" fill=\"none\"/>\n", L, T,
            H - B, W - R);
    for (int k = 0; k <= 4; k++) {
        double yv = y0 + (y1 - y0) * k / 4;
        fprintf(f, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>"
                   "<path d=\"M%g %.1f H%g\" stroke=\"#eee\"/>\n",
                L - 4, PY(yv) + 4, yv, L + 1, PY(yv), W - R);
    }
    if (cats) {
        for (int c = 0; c < ncats; c++) {
            fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">", PX((double)c),
                    H - B + 16);
            esc(f, cats[c]);
            fputs("</text>\n", f);
        }
    } else {
        for (int k = 0; k <= 4; k++) {
            double xv = x0 + (x1 - x0) * k / 4;
            fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%.4g</text>\n", PX(xv),
                    H - B + 16, xv);
        }
    }
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">", (L + W - R) / 2, H - 8);
    esc(f, xlabel);
    fputs("</text>\n", f);
    for (int i = 0; i < ns; i++) {
        const char *col = palette[i % N_PALETTE];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        int first = 1;
        for (int k = 0; k < s[i].n; k++)
            if (isfinite(s[i].y[k])) {
                fprintf(f, "%s%.1f,%.1f", first ? "" : " ", PX(s[i].x[k]), PY(s[i].y[k]));
                first = 0;
            }
        fputs("\"/>\n", f);
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].y[k]))
                continue;
            if (s[i].n <= 40 || cats)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                        PX(s[i].x[k]), PY(s[i].y[k]), col);
            if (s[i].err && isfinite(s[i].err[k]) && s[i].err[k] > 0) {
                double xa = PX(s[i].x[k]), ya = PY(s[i].y[k] - s[i].err[k]),
                       yb = PY(s[i].y[k] + s[i].err[k]);
                fprintf(f, "<path d=\"M%.1f %.1f V%.1f M%.1f %.1f h8 M%.1f %.1f h8\" "
                           "stroke=\"%s\"/>\n",
                        xa, ya, yb, xa - 4, ya, xa - 4, yb, col);
            }
        }
        fprintf(f, "<rect x=\"%g\" y=\"%d\" width=\"12\" height=\"3\" fill=\"%s\"/>"
                   "<text x=\"%g\" y=\"%d\">",
                W - R + 10, (int)T + 6 + 16 * i, col, W - R + 26, (int)T + 10 + 16 * i);
        esc(f, s[i].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
}

static void page_head(FILE *f, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    esc(f, title);
    fputs("</title>\n<style>\n"
          "body{font-family:sans-serif;margin:24px;color:#222;background:#fff;max-width:1200px}\n"
          "table{border-collapse:collapse;margin:8px 0 16px}\n"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}\n"
          "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}\n"
          "pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}\n"
          ".chart{font-size:11px;margin:4px 8px 12px 0;border:1px solid #ddd}\n"
          ".dim{color:#777}.failed{background:#fde8e8}\n"
          "</style>\n</head>\n<body>\n<h1>",
          f);
    esc(f, title);
    fputs("</h1>\n", f);
}

static void machine_line(FILE *f)
{
    struct utsname u;
    char model[600] = "?";
    FILE *c = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (c && fgets(line, sizeof line, c))
        if (!strncmp(line, "model name", 10)) {
            const char *v = strchr(line, ':');
            snprintf(model, sizeof model, "%s", v ? v + 2 : line);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    if (c)
        fclose(c);
    time_t t = time(NULL);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
    fprintf(f, "<p class=\"dim\">equimod %s (plugin ABI %d.%d); report made %s on ", PACKAGE_VERSION,
            EQM_ABI_MAJOR, EQM_ABI_MINOR, ts);
    if (!uname(&u)) {
        esc(f, u.nodename);
        fprintf(f, " (%s %s, ", u.sysname, u.machine);
    } else {
        fputs("? (", f);
    }
    esc(f, model);
    fprintf(f, ", %ld CPUs)</p>\n", sysconf(_SC_NPROCESSORS_ONLN));
}

/* One line of the machine a run trained on (machine.json), into buf; 0 when absent. */
static int machine_summary(const char *run_dir, char *buf, size_t n)
{
    char p[4500];
    snprintf(p, sizeof p, "%s/machine.json", run_dir);
    json_t *m = json_load_file(p, 0, NULL);
    if (!m)
        return 0;
    json_t *ob = json_object_get(m, "openblas");
    const char *gd = json_string_value(json_object_get(m, "git_describe"));
    snprintf(buf, n, "%s, %lld CPUs online, %lld threads; equimod %s (ABI %s%s%s); OpenBLAS %s",
             json_string_value(json_object_get(m, "cpu_model")),
             (long long)json_integer_value(json_object_get(m, "cpus_online")),
             (long long)json_integer_value(json_object_get(m, "threads")),
             json_string_value(json_object_get(m, "equimod_version")),
             json_string_value(json_object_get(m, "abi")), gd && *gd ? ", git " : "",
             gd && *gd ? gd : "", json_string_value(json_object_get(ob, "core")));
    json_decref(m);
    return 1;
}

static void fact_row(FILE *f, const char *k, const char *v)
{
    fputs("<tr><td>", f);
    esc(f, k);
    fputs("</td><td>", f);
    esc(f, v ? v : "");
    fputs("</td></tr>\n", f);
}

/* The machine and versions a run trained on (machine.json) as a table. */
static void run_machine(FILE *f, const char *run_dir)
{
    char p[4400], v[2048];
    snprintf(p, sizeof p, "%s/machine.json", run_dir);
    json_t *m = json_load_file(p, 0, NULL);
    fputs("<h2>Machine and version</h2>\n", f);
    if (!m) {
        fputs("<p class=\"dim\">machine.json: not recorded (a run of an older equimod)</p>\n", f);
        return;
    }
#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) (long long)json_integer_value(json_object_get((o), (k)))
    json_t *ob = json_object_get(m, "openblas");
    fputs("<table id=\"machine\">\n", f);
    snprintf(v, sizeof v, "%s (plugin ABI %s), git %s, compiler %s", JS(m, "equimod_version"),
             JS(m, "abi"), JS(m, "git_describe") && *JS(m, "git_describe") ? JS(m, "git_describe") : "-",
             JS(m, "compiler"));
    fact_row(f, "equimod", v);
    snprintf(v, sizeof v, "%s, %s", JS(m, "hostname"), JS(m, "os"));
    fact_row(f, "host", v);
    snprintf(v, sizeof v, "%s; %lld online, %lld allowed", JS(m, "cpu_model"),
             JI(m, "cpus_online"), JI(m, "cpus_allowed"));
    fact_row(f, "CPU", v);
    size_t off = 0;
    v[0] = 0;
    json_t *fl = json_object_get(m, "cpu_flags");
    for (size_t i = 0; i < json_array_size(fl) && off < sizeof v; i++)
        off += (size_t)snprintf(v + off, sizeof v - off, "%s%s", i ? " " : "",
                                json_string_value(json_array_get(fl, i)));
    fact_row(f, "CPU flags (SIMD)", v);
    snprintf(v, sizeof v, "%lld compute threads, %lld loader workers, %lld MPI rank(s), %lld "
             "images per step", JI(m, "threads"), JI(m, "loader_workers"), JI(m, "mpi_ranks"),
             JI(m, "images_per_step"));
    fact_row(f, "run", v);
    snprintf(v, sizeof v, "core %s (OPENBLAS_CORETYPE %s), %lld threads; %s", JS(ob, "core"),
             JS(ob, "coretype_env") ? JS(ob, "coretype_env") : "unset", JI(ob, "threads"),
             JS(ob, "config"));
    fact_row(f, "OpenBLAS", v);
    fact_row(f, "recorded", JS(m, "written_utc"));
    fputs("</table>\n", f);
#undef JS
#undef JI
    json_decref(m);
}

/* Per-epoch charts of one run, or of several overlaid (one series per run/point). */
static void curve_charts(FILE *f, curves *c, const char *const *names, int n)
{
    static const struct {
        int term;
        const char *title;
    } charts[] = {{0, "loss per epoch"}, {1, "L_inv per epoch"}, {2, "lambda*L_equi per epoch"},
                  {3, "equivariance gain per epoch"}};
    series *s = calloc((size_t)n + 3, sizeof *s);
    double *xs = NULL;
    int maxe = 1;
    for (int i = 0; i < n; i++)
        maxe = c[i].n_epochs > maxe ? c[i].n_epochs : maxe;
    xs = malloc((size_t)maxe * sizeof *xs);
    if (!s || !xs) {
        free(s), free(xs);
        return;
    }
    for (int e = 0; e < maxe; e++)
        xs[e] = e + 1;
    for (size_t ch = 0; ch < sizeof charts / sizeof charts[0]; ch++) {
        int ns = 0, any = 0;
        for (int i = 0; i < n; i++) {
            if (!c[i].term[charts[ch].term])
                continue;
            s[ns] = (series){names[i], xs, c[i].term[charts[ch].term], NULL, c[i].n_epochs};
            for (int e = 0; e < c[i].n_epochs; e++)
                any |= isfinite(c[i].term[charts[ch].term][e]);
            ns++;
        }
        if (any)
            svg_chart(f, charts[ch].title, "epoch", s, ns, NULL, 0);
    }
    int ns = 0;
    for (int i = 0; i < n; i++)
        if (c[i].n_lr)
            s[ns++] = (series){names[i], c[i].lr_step, c[i].lr, NULL, c[i].n_lr};
    if (ns)
        svg_chart(f, "learning rate per step", "step", s, ns, NULL, 0);
    ns = 0;
    for (int i = 0; i < n; i++)
        if (c[i].n_knn)
            s[ns++] = (series){names[i], c[i].knn_epoch, c[i].knn_top1, NULL, c[i].n_knn};
    if (ns)
        svg_chart(f, "kNN top-1 % (online and final)", "epoch", s, ns, NULL, 0);
    ns = 0;
    for (int i = 0; i < n; i++)
        s[ns++] = (series){names[i], xs, c[i].img_s, NULL, c[i].n_epochs};
    svg_chart(f, "throughput (images/s) per epoch", "epoch", s, ns, NULL, 0);
    free(s), free(xs);
}

/* ------------------------------------------------------------ run page ----------- */

static int report_run(const char *dir, FILE *f)
{
    char p[4400];
    char title[4200];
    snprintf(title, sizeof title, "equimod run %s", dir);
    page_head(f, title);
    machine_line(f);
    run_machine(f, dir);
    curves c;
    curves_read(dir, &c);
    fputs("<h2>Curves</h2>\n", f);
    const char *name = "run";
    curve_charts(f, &c, &name, 1);
    curves_free(&c);
    probe_html(f, dir); /* RUN/probe.json (`equimod probe`), when present */
    fputs("<h2>Report</h2>\n", f);
    snprintf(p, sizeof p, "%s/report.md", dir);
    pre_file(f, p);
    fputs("<h2>Resolved config</h2>\n", f);
    snprintf(p, sizeof p, "%s/config.ini", dir);
    pre_file(f, p);
    fputs("</body>\n</html>\n", f);
    return EQM_OK;
}

/* ------------------------------------------------------------ sweep page --------- */

/* One CSV line into fields (quotes handled); returns the count. */
static int csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *w = line, *r = line;
    while (n < max) {
        fields[n++] = w;
        int q = 0;
        for (;; r++) {
            if (*r == '"') {
                if (q && r[1] == '"') {
                    *w++ = '"';
                    r++;
                } else {
                    q = !q;
                }
            } else if ((*r == ',' && !q) || *r == '\n' || *r == '\r' || !*r) {
                break;
            } else {
                *w++ = *r;
            }
        }
        char end = *r;
        *w++ = 0;
        if (end != ',')
            break;
        r++;
    }
    return n;
}

/* summary.md's table lines -> an HTML table; its bullet lines -> a list. */
static void summary_html(FILE *f, const char *path)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return;
    char line[4096];
    int in_table = 0, in_list = 0, header = 1;
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '|') {
            if (in_list)
                fputs("</ul>\n", f), in_list = 0;
            if (!in_table)
                fputs("<table id=\"summary\">\n", f), in_table = 1, header = 1;
            if (!strncmp(line, "|---", 4))
                continue;
            fputs("<tr>", f);
            char *s = line + 1;
            for (char *bar; (bar = strchr(s, '|')); s = bar + 1) {
                *bar = 0;
                char *cell = s;
                while (*cell == ' ')
                    cell++;
                size_t l = strlen(cell);
                while (l && cell[l - 1] == ' ')
                    cell[--l] = 0;
                fputs(header ? "<th>" : "<td>", f);
                esc(f, cell);
                fputs(header ? "</th>" : "</td>", f);
            }
            fputs("</tr>\n", f);
            header = 0;
            continue;
        }
        if (in_table)
            fputs("</table>\n", f), in_table = 0;
        if (!strncmp(line, "- ", 2)) {
            if (!in_list)
                fputs("<ul>\n", f), in_list = 1;
            fputs("<li>", f);
            for (const char *s = line + 2; *s; s++)
                if (*s != '`')
                    esc(f, (char[]){*s, 0});
            fputs("</li>\n", f);
        } else if (!strncmp(line, "## ", 3)) {
            if (in_list)
                fputs("</ul>\n", f), in_list = 0;
            fputs("<h3>", f);
            esc(f, line + 3);
            fputs("</h3>\n", f);
        }
    }
    if (in_table)
        fputs("</table>\n", f);
    if (in_list)
        fputs("</ul>\n", f);
    fclose(in);
}

static void mean_sd(const double *v, int n, double *m, double *sd)
{
    double s = 0, q = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            s += v[i], k++;
    *m = k ? s / k : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            q += (v[i] - *m) * (v[i] - *m);
    *sd = k > 1 ? sqrt(q / (k - 1)) : NAN;
}

/* The machines the runs trained on (their machine.json), each once with its run count. */
static void sweep_machines(const sweep_plan *p, const char *dir, FILE *f)
{
    enum { MAXM = 8 };
    char seen[MAXM][1024], rdir[4300];
    int count[MAXM] = {0}, ns = 0, none = 0;
    for (int r = 0; r < p->n_runs; r++) {
        char m[1024];
        snprintf(rdir, sizeof rdir, "%s/%s", dir, p->runs[r].name);
        if (!machine_summary(rdir, m, sizeof m)) {
            none++;
            continue;
        }
        int i = 0;
        while (i < ns && strcmp(seen[i], m))
            i++;
        if (i == ns && ns < MAXM)
            snprintf(seen[ns++], sizeof seen[0], "%s", m);
        if (i < ns)
            count[i]++;
    }
    if (!ns)
        return;
    fputs("<p>Trained on: ", f);
    for (int i = 0; i < ns; i++) {
        fputs(i ? "; " : "", f);
        esc(f, seen[i]);
        fprintf(f, " (%d run%s)", count[i], count[i] == 1 ? "" : "s");
    }
    if (none)
        fprintf(f, "; %d run(s) without machine.json", none);
    fputs("</p>\n", f);
}

/* The page head: title, machines, axes, summary.md's table. */
static void sweep_intro(FILE *f, const sweep_plan *p, const char *dir)
{
    char path[4400], title[4200];
    snprintf(title, sizeof title, "equimod sweep %s", dir);
    page_head(f, title);
    machine_line(f);
    sweep_machines(p, dir, f);
    fprintf(f, "<p>%d runs, %d axes: ", p->n_runs, p->n_axes);
    for (int a = 0; a < p->n_axes; a++) {
        fputs(a ? "; " : "", f);
        esc(f, p->axes[a].name);
        fputs(" (", f);
        for (int k = 0; k < p->axes[a].n_keys; k++) {
            fputs(k ? ", " : "", f);
            esc(f, p->axes[a].keys[k]);
        }
        fputs(")", f);
    }
    fputs("</p>\n<h2>Summary</h2>\n", f);
    snprintf(path, sizeof path, "%s/summary.md", dir);
    summary_html(f, path);
}

/* Each metric against swept axis a: one series per combination of the other non-seed
 * axes, the mean over the runs (seeds) of each value, error bar = sample sd. */
static const struct {
    size_t off;
    const char *title;
} mets[] = {{offsetof(run_result, knn_top1), "kNN top-1 %"},
            {offsetof(run_result, linear_top1), "linear top-1 %"},
            {offsetof(run_result, loss), "final loss"},
            {offsetof(run_result, equi_gain), "equivariance gain"}};

static void metric_axis_charts(FILE *f, const sweep_plan *p, const run_result *rr, int a)
{
    const sweep_axis *ax = &p->axes[a];
    /* groups: the other non-seed labels of each run */
    char **gname = calloc((size_t)p->n_runs + 1, sizeof *gname);
    int *gof = calloc((size_t)p->n_runs + 1, sizeof *gof), ng = 0;
    for (int r = 0; gname && gof && r < p->n_runs; r++) {
        char g[1024] = "";
        for (int b = 0; b < p->n_axes; b++) {
            if (b == a || p->axes[b].is_seed)
                continue;
            size_t l = strlen(g);
            snprintf(g + l, sizeof g - l, "%s%s=%s", l ? "," : "", p->axes[b].name,
                     p->runs[r].labels[b]);
        }
        if (!g[0])
            snprintf(g, sizeof g, "mean over seeds");
        int k = 0;
        while (k < ng && strcmp(gname[k], g))
            k++;
        if (k == ng)
            gname[ng++] = strdup(g);
        gof[r] = k;
    }
    const char **cats = calloc((size_t)ax->n_values + 1, sizeof *cats);
    for (int v = 0; cats && v < ax->n_values; v++)
        cats[v] = ax->labels[v];
    for (size_t m = 0; cats && gname && gof && m < sizeof mets / sizeof mets[0]; m++) {
        series *s = calloc((size_t)ng + 1, sizeof *s);
        double *buf = calloc((size_t)ng * ax->n_values * 3 + (size_t)p->n_runs + 1,
                             sizeof(double));
        if (!s || !buf) {
            free(s), free(buf);
            break;
        }
        double *vals = buf + (size_t)ng * ax->n_values * 3;
        int any = 0;
        for (int g = 0; g < ng; g++) {
            double *x = buf + (size_t)g * ax->n_values * 3, *y = x + ax->n_values,
                   *e = y + ax->n_values;
            for (int v = 0; v < ax->n_values; v++) {
                int k = 0;
                for (int r = 0; r < p->n_runs; r++)
                    if (gof[r] == g && !strcmp(p->runs[r].labels[a], ax->labels[v]) &&
                        !strcmp(rr[r].status, "done"))
                        vals[k++] = *(double *)((char *)&rr[r] + mets[m].off);
                x[v] = v;
                mean_sd(vals, k, &y[v], &e[v]);
                any |= isfinite(y[v]);
            }
            s[g] = (series){gname[g], x, y, e, ax->n_values};
        }
        if (any) {
            char t[512];
            snprintf(t, sizeof t, "%s against %s", mets[m].title, ax->name);
            svg_chart(f, t, ax->name, s, ng, cats, ax->n_values);
        }
        free(s), free(buf);
    }
    free(cats);
    for (int g = 0; gname && g < ng; g++)
        free(gname[g]);
    free(gname), free(gof);
}

/* Training curves per point: per epoch the means over its runs. */
static void point_curves(FILE *f, const sweep_plan *p, const curves *cv)
{
    int np = 0;
    const char **pn = calloc((size_t)p->n_runs + 1, sizeof *pn);
    curves *pc = calloc((size_t)p->n_runs + 1, sizeof *pc);
    for (int r = 0; pn && pc && r < p->n_runs; r++) {
        int k = 0;
        while (k < np && strcmp(pn[k], p->runs[r].point))
            k++;
        if (k < np)
            continue;
        pn[np] = p->runs[r].point;
        curves *c = &pc[np++];
        int ne = 0;
        for (int q = 0; q < p->n_runs; q++)
            if (!strcmp(p->runs[q].point, pn[np - 1]) && cv[q].n_epochs > ne)
                ne = cv[q].n_epochs;
        c->n_epochs = ne;
        for (int t = 0; t < N_TERMS; t++)
            c->term[t] = calloc((size_t)ne + 1, sizeof(double));
        c->img_s = calloc((size_t)ne + 1, sizeof(double));
        for (int e = 0; e < ne; e++) {
            for (int t = 0; t <= N_TERMS; t++) {
                double s = 0;
                int cnt = 0;
                for (int q = 0; q < p->n_runs; q++) {
                    if (strcmp(p->runs[q].point, pn[np - 1]) || e >= cv[q].n_epochs)
                        continue;
                    double *src = t < N_TERMS ? cv[q].term[t] : cv[q].img_s;
                    if (src && isfinite(src[e]))
                        s += src[e], cnt++;
                }
                double *dst = t < N_TERMS ? c->term[t] : c->img_s;
                if (dst)
                    dst[e] = cnt ? s / cnt : NAN;
            }
        }
        /* kNN: per epoch mean over the runs */
        for (int q = 0; q < p->n_runs; q++) {
            if (strcmp(p->runs[q].point, pn[np - 1]))
                continue;
            for (int k2 = 0; k2 < cv[q].n_knn; k2++) {
                int j = 0;
                while (j < c->n_knn && c->knn_epoch[j] != cv[q].knn_epoch[k2])
                    j++;
                if (j == 256)
                    continue;
                if (j == c->n_knn)
                    c->knn_epoch[c->n_knn++] = cv[q].knn_epoch[k2], c->knn_top1[j] = 0;
                c->knn_top1[j] += cv[q].knn_top1[k2];
            }
        }
        for (int j = 0; j < c->n_knn; j++) {
            int cnt = 0;
            for (int q = 0; q < p->n_runs; q++)
                if (!strcmp(p->runs[q].point, pn[np - 1]))
                    for (int k2 = 0; k2 < cv[q].n_knn; k2++)
                        cnt += cv[q].knn_epoch[k2] == c->knn_epoch[j];
            c->knn_top1[j] /= cnt ? cnt : 1;
        }
    }
    if (pn && pc)
        curve_charts(f, pc, pn, np);
    for (int i = 0; pc && i < np; i++)
        curves_free(&pc[i]);
    free(pc), free(pn);
}

/* results.csv as a table (id="results"), failed rows marked. */
static void results_table(FILE *f, const char *dir)
{
    char path[4400];
    fputs("<h2>Runs (results.csv)</h2>\n<table id=\"results\">\n", f);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FILE *in = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int row = 0, status_col = -1;
    while (in && getline(&line, &cap, in) > 0) {
        char *fields[128];
        int n = csv_split(line, fields, 128);
        if (!row)
            for (int i = 0; i < n; i++)
                if (!strcmp(fields[i], "status"))
                    status_col = i;
        int failed = row && status_col >= 0 && status_col < n && !strcmp(fields[status_col], "failed");
        fputs(failed ? "<tr class=\"failed\">" : "<tr>", f);
        for (int i = 0; i < n; i++) {
            fputs(row ? "<td>" : "<th>", f);
            esc(f, fields[i]);
            fputs(row ? "</td>" : "</th>", f);
        }
        fputs("</tr>\n", f);
        row++;
    }
    free(line);
    if (in)
        fclose(in);
    fputs("</table>\n", f);
}

/* Failed runs with the last lines of their logs; the first run's resolved config. */
static void failed_and_base(FILE *f, const sweep_plan *p, const run_result *rr, const char *dir)
{
    char path[4400];
    for (int r = 0; r < p->n_runs; r++) {
        if (strcmp(rr[r].status, "failed"))
            continue;
        fputs("<h3>Failed: ", f);
        esc(f, p->runs[r].name);
        fprintf(f, " (exit %d)</h3>\n", rr[r].exit_code);
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/%s/sweep-status.json", dir, p->runs[r].name);
        pre_file(f, sp);
    }
    fputs("<h2>Base config (resolved, first run)</h2>\n<details><summary>config.ini</summary>\n", f);
    if (p->n_runs) {
        snprintf(path, sizeof path, "%s/%s/config.ini", dir, p->runs[0].name);
        pre_file(f, path);
    }
    fputs("</details>\n</body>\n</html>\n", f);
}

static int report_sweep(const sweep_plan *p, const char *dir, FILE *f)
{
    char path[4400], err[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    if (stat(path, &st) && sweep_collect(p, dir, err, sizeof err))
        fprintf(stderr, "equimod report: %s\n", err);
    sweep_intro(f, p, dir);
    /* per run numbers, read once */
    run_result *rr = calloc((size_t)p->n_runs + 1, sizeof *rr);
    curves *cv = calloc((size_t)p->n_runs + 1, sizeof *cv);
    if (!rr || !cv) {
        free(rr), free(cv);
        return EQM_ERR_NOMEM;
    }
    for (int r = 0; r < p->n_runs; r++) {
        char rd[4400];
        snprintf(rd, sizeof rd, "%s/%s", dir, p->runs[r].name);
        run_result_read(rd, &rr[r]);
        curves_read(rd, &cv[r]);
    }
    fputs("<h2>Metrics against the swept values</h2>\n", f);
    for (int a = 0; a < p->n_axes; a++)
        if (!p->axes[a].is_seed && p->axes[a].n_values >= 1)
            metric_axis_charts(f, p, rr, a);
    fputs("<h2>Training curves per point (means over seeds)</h2>\n", f);
    point_curves(f, p, cv);
    results_table(f, dir);
    failed_and_base(f, p, rr, dir);
    for (int r = 0; r < p->n_runs; r++)
        curves_free(&cv[r]);
    free(rr), free(cv);
    return EQM_OK;
}

int sweep_report_html(const char *dir, const char *out, char *err, size_t errlen)
{
    char p[4400];
    struct stat st;
    snprintf(p, sizeof p, "%s/sweep.json", dir);
    int is_sweep = !stat(p, &st);
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    if (!is_sweep && stat(p, &st))
        return errf(err, errlen, EQM_ERR_NOTFOUND,
                    "%s: neither a run folder (metrics.jsonl) nor a sweep folder (sweep.json)",
                    dir);
    sweep_plan plan;
    if (is_sweep) {
        int rc = sweep_plan_load_json(&plan, dir, err, errlen);
        if (rc)
            return rc;
    }
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        if (is_sweep)
            sweep_plan_free(&plan);
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot write", tmp);
    }
    int rc = is_sweep ? report_sweep(&plan, dir, f) : report_run(dir, f);
    if (is_sweep)
        sweep_plan_free(&plan);
    if (fclose(f) || (!rc && rename(tmp, out)))
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot write", out);
    return rc ? errf(err, errlen, rc, "out of memory") : EQM_OK;
}
