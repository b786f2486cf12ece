/* host/train/machine.c: RUN/machine.json, the machine and the build a run trained on
 * (written by the trainer at every start or resume: the latest one's), for results and
 * reports:
 *   equimod_version, abi, git_describe (of the sources when configure ran; "" outside
 *   git), compiler; hostname, os; cpu_model, cpus_online, cpus_allowed (affinity);
 *   threads (compute threads of this run), loader_workers, mpi_ranks; cpu_flags (the
 *   SIMD flags of /proc/cpuinfo the kernels may dispatch on: avx2/fma/bmi2 for the
 *   resampler and OpenBLAS, avx512* and amx* for the bf16 kernels); openblas: core (the
 *   kernel set OpenBLAS picked, which OPENBLAS_CORETYPE overrides), config, threads,
 *   coretype_env; images_per_step (the global batch); written_utc. */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "fsutil.h"
#include "train/run.h"

/* The value of the first "key : value" line of /proc/cpuinfo starting with key. */
static int cpuinfo_value(const char *key, char *out, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    int found = 0;
    out[0] = 0;
    while (f && !found && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) {
            const char *v = strchr(line, ':');
            snprintf(out, n, "%s", v ? v + 1 + (v[1] == ' ') : "");
            out[strcspn(out, "\n")] = 0;
            found = 1;
        }
    if (f)
        fclose(f);
    return found;
}

static json_t *cpu_flags(void)
{
    static const char *const want[] = {"sse4_2", "avx", "avx2", "fma", "bmi2", "f16c",
                                       "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                       "avx512_bf16", "amx_tile", "amx_bf16", NULL};
    char flags[8192];
    json_t *a = json_array();
    if (!cpuinfo_value("flags", flags, sizeof flags))
        return a;
    for (int i = 0; want[i]; i++) {
        size_t l = strlen(want[i]);
        for (const char *p = flags; (p = strstr(p, want[i])); p += l)
            if ((p == flags || p[-1] == ' ') && (p[l] == ' ' || p[l] == 0)) {
                json_array_append_new(a, json_string(want[i]));
                break;
            }
    }
    return a;
}

json_t *machine_json(int threads, int workers, int ranks, int64_t images_per_step)
{
    char model[512], abi[32], ts[64], os[300] = "?";
    if (!cpuinfo_value("model name", model, sizeof model))
        snprintf(model, sizeof model, "?");
    snprintf(abi, sizeof abi, "%d.%d", EQM_ABI_MAJOR, EQM_ABI_MINOR);
    struct utsname u;
    int have_u = !uname(&u);
    if (have_u)
        snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
    time_t t = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    cpu_set_t set;
    int allowed = sched_getaffinity(0, sizeof set, &set) ? -1 : CPU_COUNT(&set);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    json_t *ob = json_pack("{s:s, s:s, s:i, s:s?}", "core", openblas_get_corename(), "config",
                           openblas_get_config(), "threads", openblas_get_num_threads(),
                           "coretype_env", ct);
#ifdef __clang__
    const char *cc = "clang " __clang_version__;
#else
    const char *cc = "gcc " __VERSION__;
#endif
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:o, "
                     "s:o, s:s}",
                     "equimod_version", PACKAGE_VERSION, "abi", abi, "git_describe",
                     EQM_GIT_DESCRIBE, "compiler", cc, "hostname",
                     have_u ? u.nodename : "?", "os", os, "cpu_model", model, "cpus_online",
                     (int)sysconf(_SC_NPROCESSORS_ONLN), "cpus_allowed", allowed, "threads",
                     threads, "loader_workers", workers, "mpi_ranks", ranks, "images_per_step",
                     (json_int_t)images_per_step, "cpu_flags", cpu_flags(), "openblas", ob,
                     "written_utc", ts);
}

int machine_write(const char *dir, int threads, int workers, int ranks, int64_t images_per_step,
                  char *err, size_t errlen)
{
    char p[4200], tmp[4300];
    if (snprintf(p, sizeof p, "%s/machine.json", dir) >= (int)sizeof p)
        return errf(err, errlen, EQM_ERR_INVAL, "run folder path too long");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    json_t *j = machine_json(threads, workers, ranks, images_per_step);
    int bad = !j || json_dump_file(j, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
              rename(tmp, p);
    int e = errno;
    json_decref(j);
    if (bad) {
        unlink(tmp);
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot write: %s", p,
                    j ? strerror(e) : "out of memory");
    }
    return EQM_OK;
}
