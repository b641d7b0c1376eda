/*
 * parallel.h — how kernels split work across threads, and the crew that runs a whole step.
 *
 * A kernel splits a loop [0, n) into `team` contiguous ranges, one per thread, with
 * dn_parallel_for: static (the same split on every run, so results are the same bit for bit
 * for a given thread count) and contiguous (threads never write the same cache line except
 * where two ranges meet, and each range's inner loop vectorises). Range t is [n·t/T, n·(t+1)/T)
 * and runs with part->slot = t, the index a kernel uses for its per-thread workspace.
 *
 * Who runs the ranges:
 *  - team 1: the calling thread, at once (no region, no allocation).
 *  - a crew's leader (below): the crew's threads, handed the job through memory.
 *  - inside another region's range (a crew's, or a host program's): the calling thread, as
 *    one range (a nested OpenMP region would have one thread, and allocate its team).
 *  - anyone else: an OpenMP region of `team` threads.
 *
 * The crew. A LeNet-5 training step splits about twenty-five loops; as separate OpenMP regions,
 * each one wakes libgomp's idle threads, which between regions spin (GOMP_SPINCOUNT) and then
 * sleep, and a sleeping thread of a virtual machine can take tens of microseconds to wake
 * when the host is busy: the step's two threads then ran at 1.3–1.5× one, not 1.8 (issue 14;
 * docs/performance.md). dn_crew_run opens one region for a whole step and runs the step on
 * its thread 0, the leader; the other threads wait for the leader's loops in the crew's own
 * wait: a short spin, then sched_yield in a loop (the core stays awake for this process, yet
 * goes at once to any other runnable thread: a second process training on the same cores
 * loses nothing to it), then, after DN_CREW_YIELD_NS without work, a futex sleep. The leader
 * posts a loop (function, context, n, team) and runs range 0 itself; it waits for the others'
 * ranges in the same spin-then-yield, never sleeping. Still one OpenMP level: the crew's
 * threads are the region's, and a loop split inside a range runs on that range's thread.
 *
 * BLIS, OpenMP-threaded in Debian, cannot run its own team inside the crew's region: a crew's
 * leader asks dn_parallel_leading() and splits a BLIS product across the crew itself
 * (runtime/gemm.c).
 *
 * No globals: which crew a thread leads is thread-local, so two sessions on two threads each
 * run their own crew.
 */
#ifndef DN_PARALLEL_H
#define DN_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

/* The team for `work` units when splitting pays from `min_work` units on. */
static inline int dn_team(int threads, int64_t work, int64_t min_work)
{
    return threads > 1 && work >= min_work ? threads : 1;
}

/* One range's view of its loop: its slot (0 .. team − 1) and how to meet the other ranges. */
typedef struct dn_part {
    int slot, team;
    void *sync; /* the crew running the loop, or NULL (OpenMP region, or the calling thread) */
} dn_part;

/* A loop's body over [lo, hi): ctx is the caller's, part names the range. */
typedef void dn_range_fn(const void *ctx, int64_t lo, int64_t hi, const dn_part *part);

/* Run fn over [0, n) split into `team` ranges, and return when every range is done, with the
 * number of ranges that ran: fewer than `team` when fewer threads are at hand (a smaller crew,
 * or inside another region's range: 1), so that a caller summing per-slot copies sums those. */
int dn_parallel_for(int64_t n, int team, dn_range_fn *fn, const void *ctx);

/* Every range of the loop waits here until all of them arrive (a no-op for a team of 1). */
void dn_part_barrier(const dn_part *part);

/* Run body(arg) on the calling thread as the leader of a crew of `threads` threads (see
 * above); with threads <= 1, inside another parallel region, or when the calling thread
 * already leads a crew, run body(arg) directly. */
void dn_crew_run(int threads, void (*body)(void *arg), void *arg);

/* The number of threads of the crew the calling thread leads and may post a loop to now;
 * 0 outside a crew (or inside a range of one of its loops). */
int dn_parallel_leading(void);

#endif
