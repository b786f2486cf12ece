/* host/dist/dist.h: the process group of a data-parallel run (MPI), host-internal.
 *
 * One communicator for the whole process: rank, size and the few collectives the trainer
 * and the nn ops need. Built with MPI (configure --with-mpi, HAVE_MPI) and started by an
 * MPI launcher (mpirun, mpiexec, srun), it is a duplicate of MPI_COMM_WORLD; otherwise
 * (built without MPI, or run as a plain program) it is the single-process group: rank 0 of
 * 1, every reduction is the identity and a gather is a copy, so callers need no #ifdef.
 * Only MPI standard calls are used (Open MPI and MPICH alike).
 *
 * Launcher detection (dist_init): EQM_MPI=0 never initialises MPI, EQM_MPI=1 always does;
 * otherwise MPI is initialised when one of OMPI_COMM_WORLD_SIZE (Open MPI), PMI_SIZE /
 * PMI_RANK (MPICH hydra, Slurm PMI2), PMIX_RANK (PMIx, srun --mpi=pmix) is set. A plain
 * `equimod ...` thus never pays for an MPI singleton start-up. A build without MPI that a
 * launcher started with more than one process refuses to run (N copies of the same
 * single-process run would write the same run folder).
 *
 * Collectives: called by every rank in the same order (SPMD), from one thread at a time
 * unless dist_thread_multiple() is 1. Sums are element-wise over ranks. Counts are
 * elements. Return EQM_OK, or EQM_ERR_IO with dist_error() naming the call and MPI's
 * message (MPI_ERRORS_RETURN is set on the communicator).
 * Statistics (bench/scaling): every collective adds its wall time and the bytes one rank
 * sends under a ring algorithm (all-reduce 2(N-1)/N x bytes, all-gather and
 * reduce-scatter (N-1)/N x the gathered bytes, broadcast the bytes) to dist_stats().
 */
#ifndef EQM_HOST_DIST_H
#define EQM_HOST_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Initialise once per process (later calls return EQM_OK at once). argc/argv may be NULL.
 * Returns EQM_OK or a negative eqm_status with the message in err. */
int dist_init(int *argc, char ***argv, char *err, size_t errlen);
/* For a rank whose command failed: 1 when every rank of the group reaches this call within
 * `seconds` (they all failed, or all stopped together, and each has printed its own
 * message: MPI can be finalised normally), 0 when some rank did not (it waits in a
 * collective or still runs: the caller must dist_abort). A non-blocking barrier on a
 * communicator of its own, so that it never meets a rank's pending collective. 1 in the
 * single-process group. */
int dist_all_failed(double seconds);
/* MPI_Finalize if dist_init initialised MPI; then the single-process group again. */
void dist_finalize(void);
/* MPI_Abort(code) on every rank when MPI runs with more than one process, else nothing:
 * for a rank that cannot go on while the others wait in a collective. */
void dist_abort(int code);

int dist_rank(void);
int dist_size(void);
/* Ranks of the group on this machine (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)); 1 in
 * the single-process group. */
int dist_local_size(void);
/* Compute threads for one rank when the config leaves them to equimod: the CPUs this
 * process may run on (its affinity mask: mpirun/srun may have bound it) and the machine's
 * online CPUs shared by the ranks on it, the smaller, at least 1. */
int dist_threads_per_rank(void);
int dist_built_with_mpi(void);     /* 1 when compiled with HAVE_MPI */
int dist_mpi_initialised(void);    /* 1 when dist_init started MPI */
int dist_thread_multiple(void);    /* 1 when MPI provides MPI_THREAD_MULTIPLE */
const char *dist_error(void);      /* message of the last failed call, "" if none */

/* In-place sums over ranks. */
int dist_allreduce_f32(float *buf, size_t n);
int dist_allreduce_f64(double *buf, size_t n);
/* In-place maxima over ranks (flags every rank must agree on: train's stop signal). */
int dist_allreduce_max_int(int *buf, size_t n);
/* recv (size * n) = [rank 0's n ; rank 1's n ; ...]. send may be recv + rank * n (in
 * place). n must be the same on every rank. */
int dist_allgather_f32(const float *send, size_t n, float *recv);
/* recv (n) = sum over ranks of send[rank * n : (rank + 1) * n]; send holds size * n. */
int dist_reduce_scatter_f32(const float *send, size_t n, float *recv);
/* Bytes version of dist_allgather_f32 (recv: size * bytes). */
int dist_allgather_bytes(const void *send, size_t bytes, void *recv);
/* Root's bytes to every rank. */
int dist_bcast(void *buf, size_t bytes, int root);
int dist_barrier(void);

/* The MPI communicator (as a pointer to its MPI_Comm) of lane 0 (the collectives above)
 * or lane 1 (the gradient engine, grad.c, which may run on its own thread: collectives of
 * two threads must not share a communicator). NULL in the single-process group. */
void *dist_mpi_comm(int lane);
/* Adds a collective run elsewhere (grad.c) to the statistics. */
void dist_stats_add(uint64_t ns, uint64_t bytes);

/* Every rank's `bytes` at p hashed (64-bit FNV-1a) and compared: EQM_OK when all ranks
 * hold the same bytes, else EQM_ERR_STATE with err naming `what` and the ranks that differ
 * from rank 0. Collective. */
int dist_check_identical(const void *p, size_t bytes, const char *what, char *err,
                         size_t errlen);

typedef struct dist_stats {
    uint64_t calls;
    uint64_t bytes;   /* sent by this rank (ring model, see above) */
    uint64_t ns;      /* wall time inside collectives */
} dist_stats;
dist_stats dist_stats_get(void);
void dist_stats_reset(void);

/* What the nn ops (api->nn) do across ranks when the group has more than one process.
 * Set once by the trainer before any plugin instance is created and left alone (the
 * NT-Xent scratch size depends on it). Every rank must then make the same train-mode
 * batchnorm and NT-Xent calls in the same order.
 * DIST_NN_SYNC_BN: batchnorm_forward (train = 1) normalises with the statistics of the
 *   whole global batch (all-reduce of per-channel sums, sums of squares and row counts);
 *   batchnorm_backward all-reduces the two per-channel gradient sums (and the count) and
 *   uses them for din; dgamma/dbeta get the LOCAL sums (the gradient all-reduce adds the
 *   ranks' shares). = torch.nn.SyncBatchNorm.
 * DIST_NN_GATHER_LOSS: ntxent_forward/backward use every rank's rows as negatives, with
 *   exact gradients for the local rows (host/nn/loss.c: gather forward, reduce-scatter of
 *   the gathered gradient backward).
 * Gradient convention (as DistributedDataParallel): with N ranks, what every rank's
 * backward produces sums over ranks to N x the gradient of the global loss; the trainer
 * AVERAGES gradients over ranks. Per-row losses (cosine, softmax) keep their local means,
 * which satisfies this as they are. */
enum { DIST_NN_SYNC_BN = 1u << 0, DIST_NN_GATHER_LOSS = 1u << 1 };
void dist_nn_set(unsigned flags);
/* The flags in force: 0 when the group has one process, whatever was set. */
unsigned dist_nn_flags(void);

#endif
