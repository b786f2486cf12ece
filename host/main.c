/* equimod: the command-line host. Dispatches sub-commands listed in commands.def.
 * Global options (before the command): --plugin-path DIR (repeatable), --help, --version.
 * Most commands also accept --plugin-path after their name. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "dist/dist.h"

struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
};

static const struct command commands[] = {
#define CMD(name, fn, summary) {#name, fn, summary},
#include "commands.def"
#undef CMD
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
    fprintf(f,
            "usage: equimod [--plugin-path DIR]... COMMAND [ARGS]...\n"
            "       equimod --help | --version\n\n"
            "Self-supervised visual representation learning (SimCLR, BYOL, EquiMod) with\n"
            "plugins for datasets, augmentations, backbones and methods.\n\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nRun 'equimod COMMAND --help' for the options of a command.\n"
            "Plugins are searched in --plugin-path dirs, then $EQUIMOD_PLUGIN_PATH (colon\n"
            "separated), then %s. Log level: EQM_LOG=error|warn|info|debug|trace.\n",
            EQM_PKGLIBDIR);
}

/* Commands that know how to run as one of several MPI processes (host/dist). Any other
 * command started by mpirun/srun with more than one process is refused on every rank:
 * N copies of a single-process command would compete for the same files. */
static const char *const mpi_commands[] = {"train", NULL};

static int run_command(const struct command *cmd, int argc, char **argv)
{
    char err[512] = "";
    if (dist_init(&argc, &argv, err, sizeof err) != EQM_OK) {
        fprintf(stderr, "equimod: %s\n", err);
        return 2;
    }
    int ok = dist_size() == 1;
    for (size_t k = 0; !ok && mpi_commands[k]; k++)
        ok = !strcmp(cmd->name, mpi_commands[k]);
    int rc;
    if (!ok) {
        fprintf(stderr, "equimod: [rank %d of %d] 'equimod %s' does not run under MPI: start "
                "it as a single process (without mpirun/srun)\n", dist_rank(), dist_size(),
                cmd->name);
        rc = 2;
    } else {
        rc = cmd->fn(argc, argv);
    }
    if (rc && dist_size() > 1 && !dist_all_failed(5.0)) {
        /* a rank that fails alone ends the job: the others would wait in a collective
         * forever. When every rank failed (or stopped) with it, each has printed its own
         * message and MPI is finalised normally. */
        fflush(NULL);
        dist_abort(rc);
    }
    dist_finalize();
    return rc;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
            printf("equimod %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, EQM_ABI_MAJOR,
                   EQM_ABI_MINOR);
            return 0;
        } else if (!strcmp(a, "--plugin-path")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "equimod: --plugin-path needs a directory\n");
                return 2;
            }
            cli_add_plugin_path(argv[++i]);
        } else if (!strncmp(a, "--plugin-path=", 14)) {
            cli_add_plugin_path(a + 14);
        } else if (a[0] == '-') {
            fprintf(stderr, "equimod: unknown option '%s'\nhint: see 'equimod --help'\n", a);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t c = 0; c < N_COMMANDS; c++)
        if (!strcmp(argv[i], commands[c].name))
            return run_command(&commands[c], argc - i, argv + i);
    fprintf(stderr, "equimod: unknown command '%s'\nhint: see 'equimod --help'\n", argv[i]);
    return 2;
}
