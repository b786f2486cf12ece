/* tests/fuzz/fuzz_config.c: the INI config reader and the section binder.
 *
 * Input: an INI file (host/config.c's reader over libinih). Lines "#!set section.key=value"
 * (comments for the INI reader) are also applied as --set overrides (config_set) after
 * loading. The config is then resolved against the real plugins of the build
 * (config_resolve: every plugin section bound through the plugin's own option table, every
 * host section through its spec, unused keys/sections reported).
 * Invariants: a refusal always comes with a message; a config that resolves is written
 * (config_write), and that resolved text loads and resolves again and writes the same
 * text (the resolved file `equimod config` prints is itself a valid config). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fuzz.h"

static eqm_registry *reg;

static void init(void)
{
    if (reg)
        return;
    reg = fuzz_registry();
}

/* config_write without its "# ..." header lines. */
static char *written(const eqm_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        fuzz_fail("open_memstream failed");
    config_write(c, f);
    fclose(f);
    char *p = buf;
    while (*p == '#') {
        char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
    }
    memmove(buf, p, strlen(p) + 1);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    char err[2048] = "";
    const char *path = fuzz_file("config.ini", data, size);
    eqm_config *c = config_load(path, err, sizeof err);
    if (!c) {
        if (!err[0])
            fuzz_fail("config_load refused the file without a message");
        return 0;
    }
    /* "#!set a.b=c" lines: --set overrides */
    for (size_t i = 0; i < size;) {
        size_t e = i;
        while (e < size && data[e] != '\n')
            e++;
        if (e - i > 6 && !memcmp(data + i, "#!set ", 6)) {
            char line[512];
            size_t n = e - i - 6 < sizeof line - 1 ? e - i - 6 : sizeof line - 1;
            memcpy(line, data + i + 6, n);
            line[n] = 0;
            err[0] = 0;
            if (config_set(c, line, err, sizeof err) && !err[0])
                fuzz_fail("config_set refused '%s' without a message", line);
        }
        i = e + 1;
    }
    err[0] = 0;
    int rc = config_resolve(c, reg, err, sizeof err);
    if (rc) {
        if (!err[0])
            fuzz_fail("config_resolve failed (%d) without a message", rc);
        config_destroy(c);
        return 0;
    }
    char *text = written(c);
    config_destroy(c);
    const char *p2 = fuzz_file("resolved.ini", text, strlen(text));
    eqm_config *c2 = config_load(p2, err, sizeof err);
    if (!c2)
        fuzz_fail("the resolved config does not load: %s\n--- text:\n%s", err, text);
    if (config_resolve(c2, reg, err, sizeof err))
        fuzz_fail("the resolved config does not resolve: %s\n--- text:\n%s", err, text);
    char *text2 = written(c2);
    config_destroy(c2);
    if (strcmp(text, text2))
        fuzz_fail("resolving the resolved config changed it:\n--- first:\n%s\n--- second:\n%s",
                  text, text2);
    free(text);
    free(text2);
    return 0;
}
