/* tests/sweep/check_report_html.c: `equimod report` of a tiny sweep (report_util.h) is one
 * self-contained page (no script, no external reference), and its table id="results"
 * holds exactly the rows and cells of the sweep's results.csv. Skips (77) without
 * $EQUIMOD_DATA_DIR/cifar10. */
#include "config.h"

#include "report_util.h"

/* Cells of the CSV, row by row, as "a\x1fb\x1f...\n" text. */
static char *csv_rows(const char *csv)
{
    char *out = calloc(strlen(csv) + 2, 1);
    size_t o = 0;
    int q = 0;
    for (const char *p = csv; *p; p++) {
        if (*p == '"') {
            if (q && p[1] == '"')
                out[o++] = '"', p++;
            else
                q = !q;
        } else if (*p == ',' && !q) {
            out[o++] = '\x1f';
        } else {
            out[o++] = *p;
        }
    }
    return out;
}

/* The cells of <table id="results"> in the same form (entities decoded). */
static char *html_rows(const char *html)
{
    const char *t = strstr(html, "<table id=\"results\">");
    ck_assert_ptr_nonnull(t);
    const char *end = strstr(t, "</table>");
    ck_assert_ptr_nonnull(end);
    char *out = calloc((size_t)(end - t) + 2, 1);
    size_t o = 0;
    int cells = 0, in_cell = 0;
    for (const char *p = t; p < end; p++) {
        if (*p == '<') {
            if (!strncmp(p, "<td>", 4) || !strncmp(p, "<th>", 4)) {
                if (cells++)
                    out[o++] = '\x1f';
                in_cell = 1;
            } else if (!strncmp(p, "</td>", 5) || !strncmp(p, "</th>", 5)) {
                in_cell = 0;
            } else if (!strncmp(p, "</tr>", 5)) {
                out[o++] = '\n';
                cells = 0;
            } else if (!strncmp(p, "<tr", 3) || !strncmp(p, "<table", 6)) {
            } else {
                ck_abort_msg("unexpected tag in the results table: %.20s", p);
            }
            p = strchr(p, '>');
            continue;
        }
        if (!in_cell)
            continue;
        if (*p == '&') {
            static const char *ent[][2] = {{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"},
                                           {"&quot;", "\""}};
            int hit = 0;
            for (int k = 0; k < 4 && !hit; k++)
                if (!strncmp(p, ent[k][0], strlen(ent[k][0]))) {
                    out[o++] = ent[k][1][0];
                    p += strlen(ent[k][0]) - 1;
                    hit = 1;
                }
            ck_assert_msg(hit, "unknown entity %.8s", p);
            continue;
        }
        out[o++] = *p;
    }
    return out;
}

START_TEST(test_results_table)
{
    char path[700];
    snprintf(path, sizeof path, "%s/results.csv", ru_sweep);
    char *csv = ru_slurp(path), *html = ru_slurp(ru_html);
    ck_assert_ptr_nonnull(csv);
    ck_assert_ptr_nonnull(html);
    char *a = csv_rows(csv), *b = html_rows(html);
    ck_assert_str_eq(a, b);
    /* 2 runs + header, both done, with a kNN top-1 */
    int rows = 0;
    for (char *s = a; (s = strchr(s, '\n')); s++)
        rows++;
    ck_assert_int_eq(rows, 3);
    ck_assert_msg(strstr(a, "\x1f" "done" "\x1f"), "%s", a);
    free(a), free(b);
    /* self-contained: no script, no reference to another file or host */
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_null(strstr(html, "src="));
    ck_assert_ptr_null(strstr(html, "href="));
    ck_assert_ptr_null(strstr(html, "url("));
    ck_assert_ptr_null(strstr(html, "@import"));
    for (const char *p = html; (p = strstr(p, "http")); p++)
        ck_assert_msg(!strncmp(p, "http://www.w3.org/2000/svg\"", 27), "reference: %.60s", p);
    /* the parts the issue asks for */
    ck_assert_ptr_nonnull(strstr(html, "<table id=\"summary\">"));
    ck_assert_ptr_nonnull(strstr(html, "method=simclr (baseline)"));
    ck_assert_ptr_nonnull(strstr(html, "kNN top-1 % against method"));
    ck_assert_ptr_nonnull(strstr(html, "loss per epoch"));
    ck_assert_ptr_nonnull(strstr(html, "equivariance gain per epoch"));
    ck_assert_ptr_nonnull(strstr(html, "throughput (images/s) per epoch"));
    ck_assert_ptr_nonnull(strstr(html, "[backbone]"));
    ck_assert_ptr_nonnull(strstr(html, "plugin ABI"));
    free(csv), free(html);
}
END_TEST

/* A run folder gets its own page: curves, report.md, config. */
START_TEST(test_run_page)
{
    char run[700], out[700], txt[700];
    snprintf(run, sizeof run, "%s/method=equimod", ru_sweep);
    snprintf(out, sizeof out, "%s/run.html", ru_tmp);
    snprintf(txt, sizeof txt, "%s/run.txt", ru_tmp);
    const char *a[] = {ru_bin, "report", run, "-o", out, NULL};
    ck_assert_int_eq(ru_run(a, txt), 0);
    char *html = ru_slurp(out);
    ck_assert_ptr_nonnull(html);
    ck_assert_ptr_nonnull(strstr(html, "lambda*L_equi per epoch"));
    ck_assert_ptr_nonnull(strstr(html, "learning rate per step"));
    ck_assert_ptr_nonnull(strstr(html, "## Training finished"));
    ck_assert_ptr_nonnull(strstr(html, "[equimod]"));
    free(html);
    /* neither a run nor a sweep folder */
    const char *b[] = {ru_bin, "report", ru_tmp, "-o", out, NULL};
    ck_assert_int_eq(ru_run(b, txt), 1);
    char *t = ru_slurp(txt);
    ck_assert_ptr_nonnull(strstr(t, "neither a run folder"));
    free(t);
}
END_TEST

int main(void)
{
    int rc = ru_make_report();
    if (rc)
        return rc;
    Suite *s = suite_create("report_html");
    TCase *tc = tcase_create("report_html");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_results_table);
    tcase_add_test(tc, test_run_page);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    ru_cleanup();
    return failed ? 1 : 0;
}
