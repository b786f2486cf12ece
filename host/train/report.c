/* host/train/report.c: what a run tells: the progress line on stderr, metrics.jsonl
 * ({"kind":"step"} per step, {"kind":"epoch"} per epoch, {"kind":"knn"} per kNN
 * evaluation with the test set it used, {"kind":"linear"} for [eval] linear_at_end, and
 * one {"kind":"end"} when training ends: final losses, times, img/s, images per step,
 * threads, the end evaluations and their test sets; appended across resumes), loss.svg
 * and report.md (the summary at the end; `equimod eval` appends its results). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist.h"
#include "nn/nn_internal.h"
#include "train/run.h"

int report_append(const char *run_dir, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/report.md", run_dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return EQM_ERR_IO;
    fputs(text, f);
    return fclose(f) ? EQM_ERR_IO : EQM_OK;
}


static void json_num(FILE *f, const char *k, double v)
{
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.9g", k, v);
    else
        fprintf(f, ",\"%s\":null", k);
}

/* ,"k":"v" with v escaped as a JSON string (NULL: null). */
static void json_str(FILE *f, const char *k, const char *v)
{
    if (!v) {
        fprintf(f, ",\"%s\":null", k);
        return;
    }
    fprintf(f, ",\"%s\":\"", k);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* v as json_num writes it (%.9g): an epoch line is the mean of its step lines as the file
 * holds them, so a resumed run rebuilds the sums of a cut epoch from the file exactly. */
static double as_logged(double v)
{
    char b[40];
    snprintf(b, sizeof b, "%.9g", v);
    return isfinite(v) ? strtod(b, NULL) : v;
}

void acc_add(acc_terms *a, const char *name, double v)
{
    v = as_logged(v);
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->name[i], name)) {
            a->sum[i] += v;
            return;
        }
    if (a->n < MAX_TERMS) {
        a->name[a->n] = name;
        a->sum[a->n++] = v;
    }
}

double acc_mean(const acc_terms *a, const char *name)
{
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->name[i], name))
            return a->steps ? a->sum[i] / a->steps : NAN;
    return NAN;
}

void report_progress(trainer *tr, int64_t epoch, int64_t b, double loss, double lr,
                     int final_line)
{
    if (!tr->writer)
        return;
    /* Rates over the whole run so far (smoother than one step's). */
    double per_step = tr->st.step > 0 ? tr->st.elapsed_s / tr->st.step : 0;
    double rate = tr->st.elapsed_s > 0 ? tr->st.images / tr->st.elapsed_s : 0;
    double eta = per_step * (double)(tr->T - tr->st.step);
    char eta_s[32];
    snprintf(eta_s, sizeof eta_s, "%dh%02dm%02ds", (int)(eta / 3600), (int)(eta / 60) % 60,
             (int)eta % 60);
    if (tr->tty) {
        int width = 24;
        int fill = tr->S > 0 ? (int)(width * b / tr->S) : 0;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr,
                "\r\033[Kepoch %lld/%lld [%s] %lld/%lld  loss %.4f  lr %.3g  %.0f img/s  ETA %s",
                (long long)epoch + 1, (long long)tr->to.epochs, bar, (long long)b,
                (long long)tr->S, loss, lr, rate, eta_s);
        if (final_line)
            fputc('\n', stderr);
        fflush(stderr);
    } else if (final_line || b % tr->to.log_every == 0) {
        fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.4f lr %.4g %.0f img/s ETA %s\n",
                (long long)epoch + 1, (long long)tr->to.epochs, (long long)b, (long long)tr->S,
                loss, lr, rate, eta_s);
    }
}


void report_step(trainer *tr, const step_log *s, acc_terms *acc)
{
    double img_s = s->dt > 0 ? s->rows / s->dt : 0;
    FILE *f = tr->metrics;
    fprintf(f, "{\"kind\":\"step\",\"step\":%lld,\"epoch\":%lld,\"batch\":%lld",
            (long long)tr->st.step, (long long)tr->st.epoch, (long long)tr->st.batch);
    json_num(f, "loss", s->loss);
    json_num(f, "loss_inv", s->l_inv);
    if (s->equimod)
        json_num(f, "loss_equi", s->l_equi);
    json_num(f, "lr", s->lr);
    if (tr->byol)
        json_num(f, "tau", s->tau);
    acc_add(acc, "loss", s->loss);
    acc_add(acc, "loss_inv", s->l_inv);
    if (s->equimod)
        acc_add(acc, "loss_equi", s->l_equi);
    const eqm_module_io *ios[2] = {s->method, s->equimod};
    for (int k = 0; k < 2; k++)
        for (int i = 0; ios[k] && i < ios[k]->n_metrics && i < EQM_MAX_METRICS; i++)
            if (ios[k]->metrics[i].name) {
                json_num(f, ios[k]->metrics[i].name, ios[k]->metrics[i].value);
                acc_add(acc, ios[k]->metrics[i].name, ios[k]->metrics[i].value);
            }
    json_num(f, "img_s", img_s);
    json_num(f, "stall_ms", s->stall_ms);
    json_num(f, "step_s", s->dt);
    fputs("}\n", f);
    fflush(f); /* one line per step, readable while the run goes on */
    acc->steps++;
    acc_add(acc, "stall_ms", s->stall_ms);
    acc_add(acc, "step_s", s->dt);
    tr->st.step++;
    tr->st.batch++;
    tr->st.images += s->rows;
    tr->st.elapsed_s += s->dt;
    report_progress(tr, tr->st.epoch, tr->st.batch, s->loss, s->lr, 0);
}

/* SVG of the loss curves from metrics.jsonl: per-step total loss (light) and its moving
 * average, per term (loss_inv, loss_equi) the per-epoch means. */
static int json_get(const char *line, const char *key, double *v)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    if (!strncmp(p, "null", 4))
        return 0;
    char *end;
    *v = strtod(p, &end);
    return end != p;
}

void report_svg(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t cap = 1024, n = 0;
    double *xs = malloc(cap * sizeof *xs), *ys = malloc(cap * sizeof *ys);
    double *ye = malloc(cap * sizeof *ye);
    char line[4096];
    while (xs && ys && ye && fgets(line, sizeof line, f)) {
        double st, lo, le = NAN;
        if (!strstr(line, "\"kind\":\"step\"") || !json_get(line, "step", &st) ||
            !json_get(line, "loss", &lo))
            continue;
        if (!json_get(line, "loss_equi", &le))
            le = NAN;
        if (n == cap) {
            cap *= 2;
            double *a = realloc(xs, cap * sizeof *xs), *b = realloc(ys, cap * sizeof *ys),
                   *c = realloc(ye, cap * sizeof *ye);
            if (a)
                xs = a;
            if (b)
                ys = b;
            if (c)
                ye = c;
            if (!a || !b || !c)
                break;
        }
        xs[n] = st, ys[n] = lo, ye[n++] = le;
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/loss.svg", dir);
    FILE *o = n ? fopen(path, "w") : NULL;
    if (!o) {
        free(xs), free(ys), free(ye);
        return;
    }
    double x0 = xs[0], x1 = xs[n - 1] > x0 ? xs[n - 1] : x0 + 1, y0 = INFINITY, y1 = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (ys[i] < y0)
            y0 = ys[i];
        if (ys[i] > y1)
            y1 = ys[i];
        if (isfinite(ye[i]) && ye[i] < y0)
            y0 = ye[i];
    }
    if (!(y1 > y0))
        y1 = y0 + 1;
    const double W = 720, H = 400, L = 60, R = 20, Tm = 30, B = 40;
#define PX(x) (L + ((x)-x0) / (x1 - x0) * (W - L - R))
#define PY(y) (Tm + (y1 - (y)) / (y1 - y0) * (H - Tm - B))
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%.0f\" y=\"18\">training loss (%s)</text>\n",
            W, H, L, dir);
    fprintf(o, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, H - B,
            W - R, H - B);
    fprintf(o, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, Tm, L,
            H - B);
    for (int k = 0; k <= 4; k++) {
        double yv = y0 + (y1 - y0) * k / 4, xv = x0 + (x1 - x0) * k / 4;
        fprintf(o, "<text x=\"4\" y=\"%.1f\">%.3g</text>\n", PY(yv) + 4, yv);
        fprintf(o, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", PX(xv),
                H - B + 16, xv);
    }
    fprintf(o, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step</text>\n",
            (L + W - R) / 2, H - 6);
    size_t stride = n > 1500 ? n / 1500 + 1 : 1;
    const char *colors[3] = {"#bbbbee", "#1f3fbf", "#d0501f"};
    for (int series = 0; series < 3; series++) {
        int started = 0;
        double ma = 0;
        size_t win = n / 50 + 1;
        fprintf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"",
                colors[series], series ? "2" : "1");
        for (size_t i = 0; i < n; i++) {
            double v;
            if (series == 0) {
                v = ys[i];
            } else if (series == 1) {
                ma += ys[i] - (i >= win ? ys[i - win] : 0);
                v = ma / (i + 1 < win ? i + 1 : win);
            } else {
                if (!isfinite(ye[i]))
                    continue;
                v = ye[i];
            }
            if (i % stride && i != n - 1)
                continue;
            fprintf(o, "%s%.1f,%.1f", started ? " " : "", PX(xs[i]), PY(v));
            started = 1;
        }
        fputs("\"/>\n", o);
    }
    fprintf(o, "<text x=\"%g\" y=\"%g\" fill=\"#1f3fbf\">total loss (moving mean)</text>\n",
            W - R - 260, Tm + 14);
    fprintf(o, "<text x=\"%g\" y=\"%g\" fill=\"#d0501f\">lambda*L_equi (per step)</text>\n",
            W - R - 260, Tm + 30);
    fputs("</svg>\n", o);
#undef PX
#undef PY
    fclose(o);
    free(xs), free(ys), free(ye);
}

void report_epoch(trainer *tr, const acc_terms *a, double epoch_s)
{
    FILE *f = tr->metrics;
    fprintf(f, "{\"kind\":\"epoch\",\"epoch\":%lld,\"step\":%lld,\"steps\":%lld",
            (long long)tr->st.epoch, (long long)tr->st.step, (long long)a->steps);
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->name[i], "stall_ms") && strcmp(a->name[i], "step_s"))
            json_num(f, a->name[i], acc_mean(a, a->name[i]));
    double imgs = 0, st = 0;
    for (int i = 0; i < a->n; i++) {
        if (!strcmp(a->name[i], "step_s"))
            st = a->sum[i];
        if (!strcmp(a->name[i], "stall_ms"))
            imgs = a->sum[i];
    }
    json_num(f, "stall_ms", imgs);
    json_num(f, "img_s", st > 0 ? (double)a->steps * tr->li.batch_size / st : 0);
    json_num(f, "epoch_s", epoch_s);
    fputs("}\n", f);
    fflush(f);
}

static void log_knn(trainer *tr, const char *what, const eval_acc *a, const char *desc)
{
    fprintf(tr->metrics,
            "{\"kind\":\"knn\",\"what\":\"%s\",\"step\":%lld,\"epoch\":%lld,\"top1\":%.4f,"
            "\"top5\":%.4f,\"n_test\":%lld",
            what, (long long)tr->st.step, (long long)tr->st.epoch, a->top1, a->top5,
            (long long)a->n);
    json_str(tr->metrics, "test_set", desc);
    fputs("}\n", tr->metrics);
    fflush(tr->metrics);
    if (tr->tty)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "kNN %s (k=%lld, T=%g): top-1 %.2f%%  top-5 %.2f%%  [%lld test images: %s]\n",
            what, (long long)tr->eo.knn_k, tr->eo.knn_t, a->top1, a->top5, (long long)a->n,
            desc ? desc : "?");
}

/* report_knn; the test set's description in *desc_out (malloc'ed) when not NULL. */
static int knn_logged(trainer *tr, const char *what, eval_acc *a, char **desc_out, char *err,
                      size_t errlen)
{
    char *desc = NULL;
    int rc = knn_of_model(&tr->m, tr->cfg, tr->reg, &tr->eo, a, &desc, err, errlen);
    if (!rc) {
        log_knn(tr, what, a, desc);
        char bank[48] = "all";
        if (tr->eo.train_limit)
            snprintf(bank, sizeof bank, "the first %lld", (long long)tr->eo.train_limit);
        char text[1024];
        snprintf(text, sizeof text,
                 "- kNN %s (k=%lld, T=%g, bank: %s train images): top-1 **%.2f%%**, "
                 "top-5 %.2f%% on %lld test images (%s)\n",
                 what, (long long)tr->eo.knn_k, tr->eo.knn_t, bank, a->top1, a->top5,
                 (long long)a->n, desc ? desc : "?");
        report_append(tr->dir, text);
    }
    if (desc_out && !rc)
        *desc_out = desc;
    else
        free(desc);
    return rc;
}

int report_knn(trainer *tr, const char *what, eval_acc *a, char *err, size_t errlen)
{
    return knn_logged(tr, what, a, NULL, err, errlen);
}

/* top-1 of the untrained kNN recorded in metrics.jsonl (this run or before a resume). */
double report_untrained_top1(const char *dir)
{
    char path[4200], line[1024];
    if (snprintf(path, sizeof path, "%s/metrics.jsonl", dir) >= (int)sizeof path)
        return NAN;
    FILE *f = fopen(path, "r");
    double v = NAN;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "\"what\":\"untrained\""))
            json_get(line, "top1", &v);
    if (f)
        fclose(f);
    return v;
}

/* The last epoch line's means (loss, loss_inv, loss_equi, equi_gain) of metrics.jsonl:
 * the final losses, also for a run found complete (no step in this process). */
static void last_epoch_means(const char *dir, double v[4])
{
    static const char *const keys[4] = {"loss", "loss_inv", "loss_equi", "equi_gain"};
    char path[4200];
    for (int k = 0; k < 4; k++)
        v[k] = NAN;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0)
        if (strstr(line, "{\"kind\":\"epoch\",") == line)
            for (int k = 0; k < 4; k++)
                if (!json_get(line, keys[k], &v[k]))
                    v[k] = NAN;
    free(line);
    if (f)
        fclose(f);
}

/* [eval] linear_at_end: the probe, its metrics line and report.md line. */
static int linear_logged(trainer *tr, eval_acc *a, char **desc, char *err, size_t errlen)
{
    static const char *const mode[3] = {"off", "fast", "full"};
    char line[1024], text[2048];
    double loss = 0;
    int rc = linear_of_model(&tr->m, tr->cfg, tr->reg, &tr->eo, tr->eo.linear_at_end == 1, a,
                             &loss, desc, line, sizeof line, err, errlen);
    if (rc)
        return rc;
    FILE *f = tr->metrics;
    fprintf(f, "{\"kind\":\"linear\",\"mode\":\"%s\",\"step\":%lld,\"epoch\":%lld",
            mode[tr->eo.linear_at_end], (long long)tr->st.step, (long long)tr->st.epoch);
    json_num(f, "top1", a->top1);
    json_num(f, "top5", a->top5);
    fprintf(f, ",\"n_test\":%lld", (long long)a->n);
    json_num(f, "loss", loss);
    json_num(f, "epochs", (double)tr->eo.linear_epochs);
    json_str(f, "test_set", *desc);
    fputs("}\n", f);
    fflush(f);
    if (tr->tty)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "%s [%lld test images: %s]\n", line, (long long)a->n, *desc ? *desc : "?");
    snprintf(text, sizeof text, "- %s on %lld test images (%s)\n", line, (long long)a->n,
             *desc ? *desc : "?");
    report_append(tr->dir, text);
    return EQM_OK;
}

int report_end(trainer *tr, double wall_s, char *err, size_t errlen)
{
    eval_acc k = {NAN, NAN, 0}, l = {NAN, NAN, 0};
    char *kdesc = NULL, *ldesc = NULL;
    int rc = EQM_OK;
    if (tr->eo.knn_at_end && !(rc = knn_logged(tr, "final", &k, &kdesc, err, errlen))) {
        double base = report_untrained_top1(tr->dir);
        if (isfinite(base))
            fprintf(stderr, "kNN top-1 after training: %.2f%% (the same backbone untrained: "
                            "%.2f%%, %+.2f points)\n",
                    k.top1, base, k.top1 - base);
        else
            fprintf(stderr, "kNN top-1 after training: %.2f%%\n", k.top1);
    }
    if (!rc && tr->eo.linear_at_end)
        rc = linear_logged(tr, &l, &ldesc, err, errlen);
    if (!rc) {
        static const char *const mode[3] = {"off", "fast", "full"};
        static const char *const keys[4] = {"loss", "loss_inv", "loss_equi", "equi_gain"};
        double v[4];
        last_epoch_means(tr->dir, v);
        FILE *f = tr->metrics;
        fprintf(f, "{\"kind\":\"end\",\"step\":%lld,\"epoch\":%lld,\"images\":%lld",
                (long long)tr->st.step, (long long)tr->st.epoch, (long long)tr->st.images);
        for (int i = 0; i < (tr->use_equimod ? 4 : 2); i++) /* loss_equi, equi_gain: EquiMod */
            json_num(f, keys[i], v[i]);
        json_num(f, "train_s", tr->st.elapsed_s);
        json_num(f, "process_wall_s", wall_s);
        json_num(f, "img_s", tr->st.elapsed_s > 0 ? tr->st.images / tr->st.elapsed_s : NAN);
        fprintf(f, ",\"images_per_step\":%lld,\"threads\":%d",
                (long long)tr->li.batch_size * dist_size(), host_threads());
        json_str(f, "data_test_set", config_get(tr->cfg, "data", "test_set"));
        if (tr->eo.knn_at_end) {
            json_num(f, "knn_top1", k.top1);
            json_num(f, "knn_top5", k.top5);
            fprintf(f, ",\"knn_n_test\":%lld", (long long)k.n);
            json_str(f, "knn_test_set", kdesc);
        }
        if (tr->eo.linear_at_end) {
            fprintf(f, ",\"linear\":\"%s\"", mode[tr->eo.linear_at_end]);
            json_num(f, "linear_top1", l.top1);
            json_num(f, "linear_top5", l.top5);
            fprintf(f, ",\"linear_n_test\":%lld", (long long)l.n);
            json_str(f, "linear_test_set", ldesc);
        }
        fputs("}\n", f);
        fflush(f);
    }
    free(kdesc);
    free(ldesc);
    return rc;
}

void report_final(trainer *tr, const acc_terms *last, double wall_s)
{
    char text[4096];
    const eqm_module_inst *bb = &tr->m.mod[EQM_SLOT_BACKBONE], *me = &tr->m.mod[EQM_SLOT_METHOD];
    char extra[256] = "";
    if (tr->use_equimod)
        snprintf(extra, sizeof extra,
                 "- last epoch EquiMod: lambda*L_equi %.4f, equivariance gain %.4f\n",
                 acc_mean(last, "loss_equi"), acc_mean(last, "equi_gain"));
    snprintf(text, sizeof text,
             "\n## Training finished\n\n"
             "- method: %s%s, backbone: %s (D = %d), %zu trainable floats\n"
             "- data: %s, %lld samples per epoch, batch %d, %lld steps per epoch\n"
             "- epochs %lld, steps %lld, images %lld, training time %.1f s (this process: "
             "%.1f s wall), %.1f images/s\n"
             "- last epoch means: loss %.4f, L_inv %.4f\n%s"
             "- optimizer: %s lr %g wd %g, warmup %g epochs, cosine to %g\n"
             "- precision: %s%s\n\n"
             "![loss](loss.svg)\n\n",
             me->plugin ? me->plugin->desc.name : "?", tr->use_equimod ? " + equimod" : "",
             bb->plugin ? bb->plugin->desc.name : "?", bb->out_dim, tr->m.n_trainable,
             tr->li.source_desc ? tr->li.source_desc : "?", (long long)tr->li.n_samples,
             tr->li.batch_size, (long long)tr->S, (long long)tr->to.epochs,
             (long long)tr->st.step, (long long)tr->st.images, tr->st.elapsed_s, wall_s,
             tr->st.elapsed_s > 0 ? tr->st.images / tr->st.elapsed_s : 0,
             acc_mean(last, "loss"), acc_mean(last, "loss_inv"), extra,
             tr->oo.name ? "SGD" : "LARS", tr->oo.lr, tr->oo.weight_decay,
             tr->oo.warmup_epochs, tr->oo.final_lr,
             tr->to.precision == 1 ? "bf16 products, fp32 accumulation, on " : "fp32",
             tr->to.precision == 1 ? nn_bf16_kernel_name() : "");
    report_append(tr->dir, text);
    report_svg(tr->dir);
}


/* One "key":value pair of a flat metrics line from *p on; value NaN for null or a string.
 * Returns 0 at the end of the object or on anything else. */
static int json_pair(const char **p, char *key, size_t keylen, double *v, int *is_str)
{
    const char *q = *p;
    while (*q == ',' || *q == '{' || *q == ' ')
        q++;
    if (*q != '"')
        return 0;
    const char *k = ++q;
    while (*q && *q != '"')
        q++;
    if (*q != '"' || q[1] != ':' || (size_t)(q - k) >= keylen)
        return 0;
    memcpy(key, k, (size_t)(q - k));
    key[q - k] = 0;
    q += 2;
    *is_str = *q == '"';
    if (*is_str) {
        q++;
        while (*q && *q != '"')
            q++;
        if (*q != '"')
            return 0;
        q++;
        *v = NAN;
    } else if (!strncmp(q, "null", 4)) {
        q += 4;
        *v = NAN;
    } else {
        char *end;
        *v = strtod(q, &end);
        if (end == q)
            return 0;
        q = end;
    }
    *p = q;
    return 1;
}

/* Keep a line of an interrupted run? Steps before the checkpoint's, epoch lines of the
 * epochs it completed, kNN lines up to it except "final" (written again at the end). */
static int keep_line(const char *line, const train_state *st, int *step_of_epoch)
{
    double step, epoch;
    *step_of_epoch = 0;
    if (!json_get(line, "step", &step) || !json_get(line, "epoch", &epoch))
        return 0;
    if (strstr(line, "{\"kind\":\"step\",") == line) {
        *step_of_epoch = step < (double)st->step && epoch == (double)st->epoch;
        return step < (double)st->step;
    }
    if (strstr(line, "{\"kind\":\"epoch\",") == line)
        return epoch < (double)st->epoch;
    if (strstr(line, "\"what\":\"final\"") || strstr(line, "{\"kind\":\"end\",") == line ||
        strstr(line, "{\"kind\":\"linear\",") == line)
        return 0; /* the end's evaluations and record: written again at the end */
    return step <= (double)st->step && epoch <= (double)st->epoch;
}

/* The step line's logged values into the epoch sums, in the order report_step adds them
 * (every value but the position, lr, tau and the rate). */
static void resume_add(trainer *tr, const char *line)
{
    acc_terms *a = &tr->resume_acc;
    const char *p = line;
    char key[64];
    double v;
    int is_str;
    while (json_pair(&p, key, sizeof key, &v, &is_str)) {
        static const char *const skip[] = {"kind", "step", "epoch", "batch", "lr", "tau",
                                           "img_s"};
        int k = 0;
        while (k < 7 && strcmp(key, skip[k]))
            k++;
        if (k < 7 || is_str)
            continue;
        int i = 0;
        while (i < a->n && strcmp(a->name[i], key))
            i++;
        if (i == a->n) {
            if (a->n == MAX_TERMS)
                continue;
            snprintf(tr->resume_names[i], sizeof tr->resume_names[i], "%s", key);
            a->name[a->n++] = tr->resume_names[i];
            a->sum[i] = 0;
        }
        a->sum[i] += v;
    }
    a->steps++;
}

int report_resume_metrics(trainer *tr, char *err, size_t errlen)
{
    char path[4200], tmp[4300];
    memset(&tr->resume_acc, 0, sizeof tr->resume_acc);
    snprintf(path, sizeof path, "%s/metrics.jsonl", tr->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *in = fopen(path, "r");
    if (!in)
        return errno == ENOENT ? EQM_OK : errf(err, errlen, EQM_ERR_IO, "%s: cannot read: %s",
                                               path, strerror(errno));
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long dropped = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        int in_epoch;
        if (line[n - 1] != '\n' || !keep_line(line, &tr->st, &in_epoch)) {
            dropped++;
            continue;
        }
        if (in_epoch)
            resume_add(tr, line);
        fputs(line, out);
    }
    free(line);
    int bad = ferror(in);
    fclose(in);
    if (fclose(out) || bad || rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot rewrite it for the resume: %s", path,
                    strerror(e));
    }
    if (dropped)
        host_log(EQM_LOG_INFO, "train",
                 "%s: %ld line(s) written after the checkpoint dropped (written again)", path,
                 dropped);
    return EQM_OK;
}
