/* host/cmd/report.c: `equimod report RUN_OR_SWEEP [-o report.html]` (the page is made by
 * host/sweep/html.c). Exit status: 0 written, 1 failure, 2 usage error. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core.h"
#include "sweep/sweep.h"

static void report_usage(FILE *f)
{
    fprintf(f, "usage: equimod report RUN_OR_SWEEP [-o report.html]\n\n"
               "Write one self-contained HTML page (inline SVG, no script, nothing fetched\n"
               "from the network) for a run folder or a sweep folder: the resolved config,\n"
               "machine and version, per-epoch curves (losses, lr, equivariance gain, online\n"
               "kNN, throughput), and the table of `equimod probe` when RUN/probe.json exists;\n"
               "for a sweep also the summary table (with probe R^2 per t group per point when\n"
               "runs have a probe.json), every run's row of\n"
               "results.csv, each metric against each swept value with error bars over seeds,\n"
               "and the training curves overlaid per point. Default output:\n"
               "RUN_OR_SWEEP/report.html.\n");
}

int cmd_report(int argc, char **argv)
{
    const char *src = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            report_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "equimod report: %s needs a file name\n", a);
                return 2;
            }
            out = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "equimod report: unknown option '%s'\nhint: see 'equimod report "
                            "--help'\n", a);
            return 2;
        } else if (src) {
            fprintf(stderr, "equimod report: more than one folder ('%s', '%s')\n", src, a);
            return 2;
        } else {
            src = a;
        }
    }
    if (!src) {
        report_usage(stderr);
        return 2;
    }
    char def[4200], err[2048];
    if (!out) {
        snprintf(def, sizeof def, "%s/report.html", src);
        out = def;
    }
    if (sweep_report_html(src, out, err, sizeof err)) {
        fprintf(stderr, "equimod report: %s\n", err);
        return 1;
    }
    printf("%s\n", out);
    return 0;
}
