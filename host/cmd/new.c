/* host/cmd/new.c: `equimod new KIND NAME [DIR]`, a plugin skeleton to start from.
 *
 * Writes DIR/NAME.c (default DIR: NAME) and DIR/Makefile. The sources are the SDK's
 * example plugins (one per kind, installed under $(docdir)/examples and compiled into
 * this program by Makefile.am as host/cmd/templates.h) with the example's plugin name
 * replaced by NAME, so a fresh skeleton is a complete plugin that builds against the
 * installed SDK (`make`, through pkg-config) and passes `equimod check` as written. The
 * Makefile builds every *.c of its folder. Existing files are never overwritten, except
 * with --force (a Makefile identical to ours is left as it is).
 * Exit: 0 written, 1 a file could not be written, 2 usage error.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"
#include "fsutil.h"
#include "host/cmd/templates.h"

struct tpl {
    int kind;
    const char *example; /* the example's plugin name, replaced by NAME */
    const char *src;
};

static const struct tpl templates[] = {
    {EQM_KIND_DATASET, "example_shapes", tpl_example_shapes_c},
    {EQM_KIND_AUGMENT, "example_invert", tpl_example_invert_c},
    {EQM_KIND_BACKBONE, "example_mlp", tpl_example_mlp_c},
    {EQM_KIND_METHOD, "example_simclr", tpl_example_simclr_c},
    {EQM_KIND_EQUIMOD, "example_equimod", tpl_example_equimod_c},
};

static void new_usage(FILE *f)
{
    fprintf(f,
            "usage: equimod new [--force] KIND NAME [DIR]\n\n"
            "Write a plugin skeleton: DIR/NAME.c (DIR defaults to NAME) and DIR/Makefile.\n"
            "KIND is one of: dataset, augment, backbone, method, equimod; NAME is the\n"
            "plugin's name ([a-z0-9_]+, what a config's 'plugin =' names). The skeleton is\n"
            "a complete, working plugin of that kind (the SDK example of the kind, renamed):\n"
            "edit it from there. Then:\n"
            "  cd DIR && make            build NAME.so against the installed SDK (pkg-config)\n"
            "  equimod check ./NAME.so   validate it (exit 0 when every rule holds)\n"
            "  make install              copy it to the installed plugin directory\n"
            "--force overwrites existing files.\n"
            "The SDK documentation (README.md, ABI.md, examples/) is in %s.\n",
            EQM_DOCDIR);
}

/* Copy `src` to `f`, writing `to` for every occurrence of `from` and dropping the
 * " (SDK example)" tag of the summary. */
static int write_subst(FILE *f, const char *src, const char *from, const char *to)
{
    static const char tag[] = " (SDK example)";
    size_t nf = strlen(from), nt = strlen(tag);
    for (const char *p = src; *p;) {
        if (!strncmp(p, from, nf)) {
            fputs(to, f);
            p += nf;
        } else if (!strncmp(p, tag, nt)) {
            p += nt;
        } else {
            fputc(*p++, f);
        }
    }
    return ferror(f) ? -1 : 0;
}


/* Write path from src (substituted). Returns 0, 1 (left as it is: identical), or -1. */
static int write_file(const char *path, const char *src, const char *from, const char *to,
                      int force, int same_ok)
{
    struct stat st;
    if (!stat(path, &st) && !force) {
        if (same_ok) {
            FILE *f = fopen(path, "rb");
            size_t n = strlen(src);
            char *buf = f ? malloc(n + 2) : NULL;
            size_t got = buf ? fread(buf, 1, n + 1, f) : 0;
            int same = buf && got == n && !memcmp(buf, src, n);
            free(buf);
            if (f)
                fclose(f);
            if (same)
                return 1;
        }
        fprintf(stderr, "equimod new: %s exists\nhint: choose another DIR or NAME, or pass "
                        "--force to overwrite it\n", path);
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "equimod new: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = from ? write_subst(f, src, from, to) : (fputs(src, f) < 0 ? -1 : 0);
    if (fclose(f) || rc) {
        fprintf(stderr, "equimod new: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int cmd_new(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0, force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            new_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--force") || !strcmp(a, "-f")) {
            force = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "equimod new: unknown option '%s'\nhint: see 'equimod new --help'\n",
                    a);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "equimod new: unexpected argument '%s'\n"
                            "hint: equimod new KIND NAME [DIR]\n", a);
            return 2;
        }
    }
    if (n_pos < 2) {
        fprintf(stderr, "equimod new: expected KIND NAME [DIR]\n"
                        "hint: for example 'equimod new augment my_flip'; KIND is one of "
                        "dataset, augment, backbone, method, equimod\n");
        return 2;
    }
    int kind = kind_from_name(pos[0]);
    const struct tpl *t = NULL;
    for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++)
        if (templates[i].kind == kind)
            t = &templates[i];
    if (!t) {
        const char *kinds[EQM_KIND_COUNT];
        for (int k = 0; k < EQM_KIND_COUNT; k++)
            kinds[k] = kind_name(k);
        const char *sug = suggest_closest(pos[0], kinds, EQM_KIND_COUNT);
        fprintf(stderr, "equimod new: unknown kind '%s'%s%s%s\n"
                        "hint: kinds are dataset, augment, backbone, method, equimod\n",
                pos[0], sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
        return 2;
    }
    const char *name = pos[1];
    if (!param_key_valid(name) || strlen(name) > 64) {
        fprintf(stderr, "equimod new: plugin name '%s' is not [a-z0-9_]+ (at most 64 "
                        "characters)\nhint: plugin names are lower case, digits and '_', "
                        "e.g. my_flip\n", name);
        return 2;
    }
    const char *dir = pos[2] ? pos[2] : name;
    if (fs_mkdir_p(dir, 0777)) {
        fprintf(stderr, "equimod new: cannot create folder %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char src[4200], mk[4200];
    snprintf(src, sizeof src, "%s/%s.c", dir, name);
    snprintf(mk, sizeof mk, "%s/Makefile", dir);
    if (write_file(src, t->src, t->example, name, force, 0) < 0)
        return 1;
    int mrc = write_file(mk, tpl_Makefile, NULL, NULL, force, 1);
    if (mrc < 0)
        return 1;
    printf("wrote %s (%s/%s, from the SDK example %s)\n", src, kind_name(kind), name,
           t->example);
    printf(mrc == 1 ? "kept %s (already the SDK's)\n" : "wrote %s\n", mk);
    printf("next:\n  cd %s && make && equimod check ./%s.so\n"
           "  equimod --plugin-path %s describe %s/%s\n"
           "(if pkg-config does not find equimod-sdk: export PKG_CONFIG_PATH=%s)\n",
           dir, name, dir, kind_name(kind), name, EQM_PKGCONFIGDIR);
    return 0;
}
