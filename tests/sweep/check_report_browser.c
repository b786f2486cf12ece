/* tests/sweep/check_report_browser.c: the report of a tiny sweep (report_util.h) opened in
 * a real browser: headless Chromium renders it to PNG; the page is not blank (enough
 * non-white pixels, the chart colours drawn) and the browser logs no page error
 * (console message, failed load, blocked request). Skips (77) without chromium
 * ($CHROMIUM, else /usr/bin/chromium; scripts/install-deps.sh installs it) or without
 * $EQUIMOD_DATA_DIR/cifar10. */
#include "config.h"

#include <png.h>
#include <signal.h>

#include "report_util.h"

static char chromium[1024];

static int find_chromium(void)
{
    const char *c = getenv("CHROMIUM");
    const char *cands[] = {c ? c : "", "/usr/bin/chromium", "/usr/bin/chromium-browser", NULL};
    for (int i = 0; cands[i]; i++)
        if (cands[i][0] && !access(cands[i], X_OK)) {
            snprintf(chromium, sizeof chromium, "%s", cands[i]);
            return 1;
        }
    return 0;
}

START_TEST(test_renders)
{
    char png[700], log[700], prof[700], url[800], shot[800], prof_arg[800];
    snprintf(png, sizeof png, "%s/report.png", ru_tmp);
    snprintf(log, sizeof log, "%s/chromium.log", ru_tmp);
    snprintf(prof, sizeof prof, "%s/profile", ru_tmp);
    ck_assert_int_eq(mkdir(prof, 0700), 0);
    snprintf(url, sizeof url, "file://%s", ru_html);
    snprintf(shot, sizeof shot, "--screenshot=%s", png);
    snprintf(prof_arg, sizeof prof_arg, "--user-data-dir=%s", prof);
    const char *argv[] = {chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--no-first-run", "--enable-logging=stderr",
                          "--v=0", "--window-size=1280,2000", prof_arg, shot, url, NULL};
    int rc = ru_run(argv, log);
    char *text = ru_slurp(log);
    ck_assert_msg(rc == 0, "chromium exit %d:\n%s", rc, text ? text : "");
    /* page errors: console messages, failed or blocked loads */
    static const char *bad[] = {"CONSOLE", "Uncaught", "net::ERR", "Failed to load",
                                "Not allowed to load", "Refused to", NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(!strstr(text, bad[i]), "chromium logged '%s':\n%s", bad[i], text);
    free(text);
    /* the screenshot: not blank, charts drawn */
    FILE *f = fopen(png, "rb");
    ck_assert_msg(f != NULL, "no screenshot %s", png);
    png_structp ps = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop pi = png_create_info_struct(ps);
    ck_assert(ps && pi);
    if (setjmp(png_jmpbuf(ps)))
        ck_abort_msg("bad PNG");
    png_init_io(ps, f);
    png_read_png(ps, pi, PNG_TRANSFORM_STRIP_16 | PNG_TRANSFORM_PACKING | PNG_TRANSFORM_EXPAND,
                 NULL);
    png_uint_32 w = png_get_image_width(ps, pi), h = png_get_image_height(ps, pi);
    int ch = png_get_channels(ps, pi);
    png_bytepp rows = png_get_rows(ps, pi);
    ck_assert(w >= 600 && h >= 600 && ch >= 3);
    long nonwhite = 0, blue = 0, red = 0;
    for (png_uint_32 y = 0; y < h; y++)
        for (png_uint_32 x = 0; x < w; x++) {
            const png_byte *px = rows[y] + (size_t)x * ch;
            if (px[0] < 240 || px[1] < 240 || px[2] < 240)
                nonwhite++;
            if (abs(px[0] - 0x1f) < 24 && abs(px[1] - 0x77) < 24 && abs(px[2] - 0xb4) < 24)
                blue++;
            if (abs(px[0] - 0xd6) < 24 && abs(px[1] - 0x27) < 24 && abs(px[2] - 0x28) < 24)
                red++;
        }
    png_destroy_read_struct(&ps, &pi, NULL);
    fclose(f);
    double frac = (double)nonwhite / ((double)w * h);
    ck_assert_msg(frac > 0.01, "page nearly blank: %.4f of the pixels are not white", frac);
    ck_assert_msg(blue > 100 && red > 100, "chart series not drawn (blue %ld, red %ld pixels)",
                  blue, red);
}
END_TEST

int main(void)
{
    if (!find_chromium()) {
        fprintf(stderr, "no chromium ($CHROMIUM, /usr/bin/chromium): skipped\n"
                        "hint: scripts/install-deps.sh installs Debian's chromium\n");
        return 77;
    }
    int rc = ru_make_report();
    if (rc)
        return rc;
    Suite *s = suite_create("report_browser");
    TCase *tc = tcase_create("report_browser");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_renders);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    ru_cleanup();
    return failed ? 1 : 0;
}
