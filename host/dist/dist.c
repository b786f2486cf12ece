/* host/dist/dist.c: the process group (see dist.h). MPI standard calls only; without
 * HAVE_MPI, or when no launcher started the process, the single-process group.
 * Large counts: MPI counts are int, so reductions are cut into chunks of at most 2^28
 * elements; a gather or reduce-scatter whose per-rank count exceeds INT_MAX is refused.
 */
#include "config.h"

#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

#include <equimod/status.h>

#include "core.h"
#include "dist/dist.h"

static int g_rank = 0, g_size = 1, g_mpi = 0, g_multiple = 0, g_local = 1;
static unsigned g_nn_flags;
static _Thread_local char g_err[512];
static dist_stats g_stats;
#ifdef HAVE_MPI
static MPI_Comm g_comm = MPI_COMM_NULL, g_comm_grad = MPI_COMM_NULL, g_comm_fail = MPI_COMM_NULL;
#endif

#define CHUNK ((size_t)1 << 28)

static int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return status;
}

const char *dist_error(void) { return g_err; }
int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_size(void) { return g_local; }

int dist_threads_per_rank(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN), mine = online;
    cpu_set_t set;
    if (!sched_getaffinity(0, sizeof set, &set))
        mine = CPU_COUNT(&set);
    long share = (online > 0 ? online : 1) / (g_local > 0 ? g_local : 1);
    long n = mine < share ? mine : share;
    return n > 0 ? (int)n : 1;
}
int dist_mpi_initialised(void) { return g_mpi; }
int dist_thread_multiple(void) { return g_multiple; }
int dist_built_with_mpi(void)
{
#ifdef HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

void dist_nn_set(unsigned flags) { g_nn_flags = flags; }
unsigned dist_nn_flags(void) { return g_size > 1 ? g_nn_flags : 0; }

dist_stats dist_stats_get(void) { return g_stats; }
void dist_stats_add(uint64_t ns, uint64_t bytes)
{
    g_stats.calls++;
    g_stats.bytes += bytes;
    g_stats.ns += ns;
}

void *dist_mpi_comm(int lane)
{
#ifdef HAVE_MPI
    if (g_mpi && g_size > 1)
        return lane ? (void *)&g_comm_grad : (void *)&g_comm;
#endif
    (void)lane;
    return NULL;
}
void dist_stats_reset(void) { memset(&g_stats, 0, sizeof g_stats); }

/* Size of the job as the launcher announced it (0: no launcher seen, 1: a launcher whose
 * size only MPI knows). */
static long launcher_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            long n = strtol(v, NULL, 10);
            return n > 0 ? n : 1;
        }
    }
    if (getenv("PMI_RANK") || getenv("PMIX_RANK") || getenv("MPI_LOCALNRANKS"))
        return 1;
    return 0;
}

int dist_init(int *argc, char ***argv, char *err, size_t errlen)
{
    static int done;
    if (done)
        return EQM_OK;
    const char *force = getenv("EQM_MPI");
    long ls = launcher_size();
    int want = force && *force ? strcmp(force, "0") != 0 : ls > 0;
#ifndef HAVE_MPI
    (void)argc, (void)argv;
    if (force && !strcmp(force, "1")) {
        snprintf(err, errlen, "EQM_MPI=1 asks for MPI, but this equimod was built without "
                 "it: rebuild with MPI (apt-get install libopenmpi-dev openmpi-bin; "
                 "./configure --with-mpi) or unset EQM_MPI");
        return EQM_ERR_INVAL;
    }
    if (want && ls > 1) {
        snprintf(err, errlen,
                 "this equimod was built without MPI, but an MPI launcher started it as one "
                 "of %ld processes: each would run alone and write the same files. Rebuild "
                 "with MPI (apt-get install libopenmpi-dev openmpi-bin; ./configure "
                 "--with-mpi) or run it without mpirun/srun", ls);
        return EQM_ERR_INVAL;
    }
    done = 1;
    return EQM_OK;
#else
    if (!want) {
        done = 1;
        return EQM_OK;
    }
    int inited = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&inited);
    int rc = inited ? MPI_SUCCESS
                    : MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    if (inited)
        MPI_Query_thread(&provided);
    if (rc != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init_thread failed (error %d): is this the mpirun of "
                 "the MPI equimod was built with?", rc);
        return EQM_ERR_IO;
    }
    if (provided < MPI_THREAD_FUNNELED) {
        snprintf(err, errlen, "MPI provides thread level %d, equimod needs at least "
                 "MPI_THREAD_FUNNELED (its compute threads never call MPI)", provided);
        MPI_Finalize();
        return EQM_ERR_INVAL;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &g_comm);
    MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
    MPI_Comm_dup(MPI_COMM_WORLD, &g_comm_grad);
    MPI_Comm_set_errhandler(g_comm_grad, MPI_ERRORS_RETURN);
    MPI_Comm_dup(MPI_COMM_WORLD, &g_comm_fail);
    MPI_Comm_set_errhandler(g_comm_fail, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g_comm, &g_rank);
    MPI_Comm_size(g_comm, &g_size);
    MPI_Comm node;
    if (MPI_Comm_split_type(g_comm, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &g_local);
        MPI_Comm_free(&node);
    }
    g_multiple = provided >= MPI_THREAD_MULTIPLE;
    g_mpi = 1;
    done = 1;
    return EQM_OK;
#endif
}

void dist_finalize(void)
{
#ifdef HAVE_MPI
    if (g_mpi) {
        MPI_Comm_free(&g_comm);
        MPI_Comm_free(&g_comm_grad);
        MPI_Comm_free(&g_comm_fail);
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin)
            MPI_Finalize();
    }
#endif
    g_mpi = 0;
    g_rank = 0;
    g_size = 1;
    g_local = 1;
}

void dist_abort(int code)
{
#ifdef HAVE_MPI
    if (g_mpi && g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)code;
#endif
}

#ifdef HAVE_MPI
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif

int dist_all_failed(double seconds)
{
#ifdef HAVE_MPI
    if (!g_mpi || g_size == 1)
        return 1;
    MPI_Request req;
    if (MPI_Ibarrier(g_comm_fail, &req) != MPI_SUCCESS)
        return 0;
    const uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    for (;;) {
        int done = 0;
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return 0;
        if (done)
            return 1;
        if (now_ns() >= end)
            return 0; /* the request stays pending: MPI_Abort follows */
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
#else
    (void)seconds;
    return 1;
#endif
}

#ifdef HAVE_MPI

static void account(uint64_t t0, double bytes)
{
    g_stats.calls++;
    g_stats.bytes += (uint64_t)bytes;
    g_stats.ns += now_ns() - t0;
}

static int mpi_fail(const char *call, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", rc);
    return fail(EQM_ERR_IO, "rank %d of %d: %s failed: %s", g_rank, g_size, call, msg);
}

#endif

enum coll_kind { C_ALLREDUCE, C_ALLGATHER, C_REDUCE_SCATTER, C_BCAST, C_BARRIER };
enum coll_type { T_F32, T_F64, T_I32, T_BYTE };

/* One collective as data: every public call below is one of these. */
typedef struct coll {
    enum coll_kind kind;
    enum coll_type type;
    int max;          /* reductions: MPI_MAX instead of MPI_SUM */
    const void *send; /* NULL: in place (recv) */
    void *recv;
    size_t n;         /* elements: the whole buffer (all-reduce, broadcast) or per rank */
    int root;
    const char *name; /* for messages */
} coll;

static size_t type_size(enum coll_type t)
{
    return t == T_F64 ? 8 : t == T_BYTE ? 1 : 4;
}

#ifdef HAVE_MPI
static MPI_Datatype mpi_type(enum coll_type t)
{
    return t == T_F32 ? MPI_FLOAT : t == T_F64 ? MPI_DOUBLE : t == T_I32 ? MPI_INT : MPI_BYTE;
}

/* The MPI call(s) of c; *sent: bytes this rank sends under a ring algorithm. All-reduce
 * and broadcast are cut into chunks of at most CHUNK elements. */
static int mpi_collective(const coll *c, double *sent)
{
    const size_t esz = type_size(c->type);
    const double bytes = (double)(c->n * esz), others = g_size - 1;
    const MPI_Datatype t = mpi_type(c->type);
    const MPI_Op op = c->max ? MPI_MAX : MPI_SUM;
    char *buf = c->recv;
    int rc = MPI_SUCCESS;
    switch (c->kind) {
    case C_ALLREDUCE:
    case C_BCAST:
        for (size_t o = 0; o < c->n && rc == MPI_SUCCESS; o += CHUNK) {
            int m = (int)(c->n - o < CHUNK ? c->n - o : CHUNK);
            rc = c->kind == C_BCAST ? MPI_Bcast(buf + o * esz, m, t, c->root, g_comm)
                                    : MPI_Allreduce(MPI_IN_PLACE, buf + o * esz, m, t, op, g_comm);
        }
        *sent = c->kind == C_BCAST ? bytes : 2.0 * others / g_size * bytes;
        break;
    case C_ALLGATHER: {
        const void *sb = !c->send || c->send == buf + (size_t)g_rank * c->n * esz ? MPI_IN_PLACE
                                                                                   : c->send;
        rc = MPI_Allgather(sb, (int)c->n, t, buf, (int)c->n, t, g_comm);
        *sent = others * bytes;
        break;
    }
    case C_REDUCE_SCATTER:
        rc = MPI_Reduce_scatter_block(c->send, buf, (int)c->n, t, op, g_comm);
        *sent = others * bytes;
        break;
    case C_BARRIER:
        rc = MPI_Barrier(g_comm);
        *sent = 0;
        break;
    }
    return rc == MPI_SUCCESS ? EQM_OK : mpi_fail(c->name, rc);
}
#endif

/* Runs c across the group; in the single-process group a gather, reduce-scatter or
 * broadcast is a copy (or nothing in place) and a reduction the identity. */
static int collective(const coll *c)
{
    if ((c->kind == C_ALLGATHER || c->kind == C_REDUCE_SCATTER) && c->n > INT_MAX)
        return fail(EQM_ERR_INVAL, "%s: %zu elements per rank exceed MPI's int count", c->name,
                    c->n);
    if (c->kind == C_BCAST && (c->root < 0 || c->root >= g_size))
        return fail(EQM_ERR_INVAL, "%s: root %d outside [0, %d)", c->name, c->root, g_size);
#ifdef HAVE_MPI
    if (g_mpi && g_size > 1) {
        uint64_t t0 = now_ns();
        double sent = 0;
        int rc = mpi_collective(c, &sent);
        if (rc == EQM_OK)
            account(t0, sent);
        return rc;
    }
#endif
    if ((c->kind == C_ALLGATHER || c->kind == C_REDUCE_SCATTER) && c->send &&
        c->send != c->recv)
        memmove(c->recv, c->send, c->n * type_size(c->type));
    return EQM_OK;
}

int dist_allreduce_f32(float *buf, size_t n)
{
    return collective(&(coll){C_ALLREDUCE, T_F32, 0, NULL, buf, n, 0, "MPI_Allreduce(float)"});
}

int dist_allreduce_f64(double *buf, size_t n)
{
    return collective(&(coll){C_ALLREDUCE, T_F64, 0, NULL, buf, n, 0, "MPI_Allreduce(double)"});
}

int dist_allreduce_max_int(int *buf, size_t n)
{
    return collective(&(coll){C_ALLREDUCE, T_I32, 1, NULL, buf, n, 0, "MPI_Allreduce(int, max)"});
}

int dist_allgather_f32(const float *send, size_t n, float *recv)
{
    return collective(&(coll){C_ALLGATHER, T_F32, 0, send, recv, n, 0, "MPI_Allgather"});
}

int dist_allgather_bytes(const void *send, size_t bytes, void *recv)
{
    return collective(&(coll){C_ALLGATHER, T_BYTE, 0, send, recv, bytes, 0,
                              "MPI_Allgather(bytes)"});
}

int dist_reduce_scatter_f32(const float *send, size_t n, float *recv)
{
    return collective(&(coll){C_REDUCE_SCATTER, T_F32, 0, send, recv, n, 0,
                              "MPI_Reduce_scatter_block"});
}

int dist_bcast(void *buf, size_t bytes, int root)
{
    return collective(&(coll){C_BCAST, T_BYTE, 0, NULL, buf, bytes, root, "MPI_Bcast"});
}

int dist_barrier(void)
{
    return collective(&(coll){C_BARRIER, T_BYTE, 0, NULL, NULL, 0, 0, "MPI_Barrier"});
}

int dist_check_identical(const void *p, size_t bytes, const char *what, char *err,
                         size_t errlen)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = p;
    for (size_t i = 0; i < bytes; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    uint64_t *all = calloc((size_t)g_size, sizeof *all);
    if (!all)
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
    int rc = dist_allgather_bytes(&h, sizeof h, all);
    if (rc) {
        free(all);
        return errf(err, errlen, rc, "%s: %s", what, dist_error());
    }
    char list[256] = "";
    size_t used = 0;
    int bad = 0;
    for (int r = 1; r < g_size; r++)
        if (all[r] != all[0]) {
            bad++;
            if (used < sizeof list - 16)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%d",
                                         bad > 1 ? ", " : "", r);
        }
    free(all);
    if (bad)
        return errf(err, errlen, EQM_ERR_STATE,
                    "%s differ between ranks: rank(s) %s hold other bytes than rank 0 (%zu "
                    "bytes compared by hash)", what, list, bytes);
    return EQM_OK;
}
