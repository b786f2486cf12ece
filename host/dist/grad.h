/* host/dist/grad.h: averaging a model's gradients over the ranks, in buckets that can be
 * sent while backward still runs (issue 13).
 *
 * The model's gradients are one flat float buffer (host/train/model.h). It is cut into
 * buckets of `bucket_floats`; each bucket is all-reduced (sum) and scaled by 1/size once,
 * so that after dist_grad_finish every rank holds the average of the ranks' gradients
 * (the DistributedDataParallel convention of dist.h).
 * A step: dist_grad_ready(off, n) for each range whose gradient is final (the caller
 * knows: e.g. a module's tensors after its backward); a bucket starts as soon as all its
 * floats were marked; dist_grad_finish starts the rest in bucket order and waits.
 * Every rank must mark the same ranges in the same order (the SPMD step does), so buckets
 * start in the same order everywhere.
 * Modes:
 *   DIST_GRAD_SYNC    no overlap: finish all-reduces every bucket in place;
 *   DIST_GRAD_THREAD  a communication thread runs the all-reduces of started buckets (on
 *                     its own communicator, dist_mpi_comm(1)); needs MPI_THREAD_MULTIPLE
 *                     (the training thread's SyncBN/NT-Xent collectives run meanwhile),
 *                     else create falls back to DIST_GRAD_TEST;
 *   DIST_GRAD_TEST    non-blocking MPI_Iallreduce per started bucket, progressed by
 *                     MPI_Testall at every dist_grad_ready/dist_grad_progress call (Open MPI
 *                     has no progress thread: nothing moves between those calls).
 * In the single-process group every call is a no-op (finish returns at once).
 * Threading: the training thread calls everything; the engine's own thread (THREAD mode)
 * touches only buckets it was handed and never the rest of the buffer.
 */
#ifndef EQM_HOST_DIST_GRAD_H
#define EQM_HOST_DIST_GRAD_H

#include <stddef.h>
#include <stdint.h>

enum dist_grad_mode { DIST_GRAD_SYNC = 0, DIST_GRAD_THREAD = 1, DIST_GRAD_TEST = 2 };

typedef struct dist_grad dist_grad;

typedef struct dist_grad_stats {
    uint64_t steps;
    uint64_t bytes;       /* sent by this rank, ring model: 2 (N-1)/N x the gradient bytes */
    uint64_t comm_ns;     /* time the all-reduces took (THREAD, SYNC; TEST: = wait_ns) */
    uint64_t overlap_ns;  /* of comm_ns, the part before dist_grad_finish was called */
    uint64_t wait_ns;     /* time dist_grad_finish blocked the training thread */
    uint64_t buckets;     /* buckets all-reduced (nb per step) */
    uint64_t early;       /* of them, those started by dist_grad_ready (before finish) */
} dist_grad_stats;

/* mode: enum dist_grad_mode. Returns EQM_OK or a negative status with err set. */
int dist_grad_create(dist_grad **out, float *grads, size_t n, size_t bucket_floats, int mode,
                     char *err, size_t errlen);
void dist_grad_destroy(dist_grad *g);
int dist_grad_mode_of(const dist_grad *g); /* the mode in force (after any fallback) */
/* [off, off + n) holds its final gradient for this step (ranges must not overlap). */
int dist_grad_ready(dist_grad *g, size_t off, size_t n);
/* TEST mode: drive the outstanding requests (cheap; a no-op in other modes). */
void dist_grad_progress(dist_grad *g);
/* Start what is left, wait for everything, scale by 1/size; ready for the next step.
 * EQM_OK, or EQM_ERR_IO with err naming the MPI failure. */
int dist_grad_finish(dist_grad *g, char *err, size_t errlen);
dist_grad_stats dist_grad_stats_get(const dist_grad *g);

#endif
