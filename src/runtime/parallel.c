/*
 * parallel.c — dn_parallel_for and the crew (parallel.h tells why).
 *
 * The crew's hand-over, one producer (the leader) and size − 1 consumers:
 *   leader: writes the job (fn, ctx, n, team), pending = size − 1, then epoch += 1 (seq_cst);
 *           wakes the sleepers if any; runs range 0; waits until pending == 0 (acquire).
 *   worker: waits until epoch != the last epoch it saw (acquire), reads the job, runs its
 *           range when its index < team, then pending −= 1 (release).
 * Every worker acknowledges every job, even one it has no range of: the leader writes the next
 * job only when all of them are done reading this one. The epoch starts at 0 and a worker
 * starts having seen 0, so a job posted before a worker looks is not missed.
 * Sleeping: a worker counts itself in `sleepers` (seq_cst) and then sleeps on the epoch only
 * while it is unchanged; the leader bumps the epoch (seq_cst) and then reads `sleepers`. Of
 * the two orders one side always sees the other's write: either the worker sees the new epoch
 * and does not sleep, or the leader sees the sleeper and wakes it.
 * The barrier inside a loop (dn_part_barrier) counts arrivals and bumps a generation.
 */
#define _GNU_SOURCE /* syscall */
#include "runtime/parallel.h"

#include <limits.h>
#include <omp.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Spins of a pause before a waiting thread starts yielding: about a microsecond, which covers
 * a leader posting the next loop straight after the last one. */
#define SPIN_PAUSES 64
/* How long an idle worker keeps yielding before it sleeps: longer than the serial stretches
 * inside a step (a small Affine and the loss: tens of microseconds), short enough that a crew
 * left idle stops costing system calls within a millisecond. */
#define DN_CREW_YIELD_NS 1000000
/* Yields between two looks at the clock. */
#define YIELDS_PER_LOOK 16

typedef struct dn_crew {
    alignas(64) atomic_uint epoch; /* bumped per job, and once more to stop */
    atomic_int sleepers;
    int size;  /* the region's threads, the leader included */
    bool stop; /* written before the last bump */
    dn_range_fn *fn;
    const void *ctx;
    int64_t n;
    int team;
    alignas(64) atomic_int pending; /* workers yet to acknowledge the job */
    alignas(64) atomic_int arrived; /* the barrier's count for this generation */
    atomic_uint generation;
} dn_crew;

/* The crew this thread leads and may post to now: NULL outside dn_crew_run, and while the
 * thread runs a range (a loop split inside a range runs on the range's thread). */
static _Thread_local dn_crew *leading;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void futex_wait(atomic_uint *word, unsigned seen)
{
#if defined(__linux__)
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
    (void)word, (void)seen;
    sched_yield();
#endif
}

static void futex_wake_all(atomic_uint *word)
{
#if defined(__linux__)
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

/* Round `round` of a wait: a pause for the first SPIN_PAUSES rounds, a sched_yield after. */
static void backoff(int64_t round)
{
    if (round < SPIN_PAUSES)
        cpu_relax();
    else
        sched_yield();
}

/* Wait until *word != seen (backoff between looks); return the new value. With may_sleep,
 * after DN_CREW_YIELD_NS of yielding, sleep on the word (the crew's sleepers count says so
 * first). */
static unsigned wait_change(dn_crew *c, atomic_uint *word, unsigned seen, bool may_sleep)
{
    int64_t yielding_since = 0;
    for (int64_t round = 0;; round++) {
        unsigned v = atomic_load_explicit(word, memory_order_acquire);
        if (v != seen)
            return v;
        if (may_sleep && round == SPIN_PAUSES)
            yielding_since = now_ns();
        if (may_sleep && round > SPIN_PAUSES && round % YIELDS_PER_LOOK == 0 &&
            now_ns() - yielding_since > DN_CREW_YIELD_NS)
            break;
        backoff(round);
    }
    unsigned v;
    atomic_fetch_add(&c->sleepers, 1);
    while ((v = atomic_load(word)) == seen)
        futex_wait(word, seen);
    atomic_fetch_sub(&c->sleepers, 1);
    return v;
}

/* Wait until *count == 0 (the leader, for the others' ranges: never sleeping). */
static void wait_zero(atomic_int *count)
{
    for (int64_t round = 0; atomic_load_explicit(count, memory_order_acquire) != 0; round++)
        backoff(round);
}

static void run_range(dn_range_fn *fn, const void *ctx, int64_t n, int t, int team, void *sync)
{
    dn_part part = { .slot = t, .team = team, .sync = sync };
    fn(ctx, n * t / team, n * (t + 1) / team, &part);
}

/* ---------------------------------------------------------------- the crew */

static void post(dn_crew *c)
{
    atomic_store_explicit(&c->pending, c->size - 1, memory_order_relaxed);
    atomic_fetch_add(&c->epoch, 1); /* seq_cst: before the sleepers are read */
    if (atomic_load(&c->sleepers) > 0)
        futex_wake_all(&c->epoch);
}

static void serve(dn_crew *c, int index)
{
    unsigned seen = 0;
    for (;;) {
        seen = wait_change(c, &c->epoch, seen, true);
        if (c->stop)
            return;
        if (index < c->team)
            run_range(c->fn, c->ctx, c->n, index, c->team, c);
        atomic_fetch_sub_explicit(&c->pending, 1, memory_order_release);
    }
}

void dn_crew_run(int threads, void (*body)(void *arg), void *arg)
{
    if (threads <= 1 || leading || omp_get_active_level() > 0) {
        body(arg);
        return;
    }
    dn_crew crew = { .size = 0 };
    atomic_init(&crew.epoch, 0);
    atomic_init(&crew.sleepers, 0);
    atomic_init(&crew.pending, 0);
    atomic_init(&crew.arrived, 0);
    atomic_init(&crew.generation, 0);
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        if (t == 0) {
            crew.size = omp_get_num_threads();
            leading = &crew;
            body(arg);
            leading = NULL;
            crew.stop = true;
            post(&crew);
        } else
            serve(&crew, t);
    }
}

int dn_parallel_leading(void) { return leading ? leading->size : 0; }

/* ---------------------------------------------------------------- loops */

int dn_parallel_for(int64_t n, int team, dn_range_fn *fn, const void *ctx)
{
    dn_crew *c = leading;
    if (c && team > c->size)
        team = c->size;
    /* Inside another region's range (a crew's, or a host program's): OpenMP would give a
     * nested region one thread, and allocate its team; run the loop here instead. */
    if (!c && omp_in_parallel())
        team = 1;
    if (team <= 1) {
        dn_part part = { .slot = 0, .team = 1, .sync = NULL };
        fn(ctx, 0, n, &part);
        return 1;
    }
    if (c) {
        c->fn = fn;
        c->ctx = ctx;
        c->n = n;
        c->team = team;
        post(c);
        leading = NULL;
        run_range(fn, ctx, n, 0, team, c);
        leading = c;
        wait_zero(&c->pending);
        return team;
    }
    int ran = team;
#pragma omp parallel num_threads(team)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (t == 0)
            ran = nt;
        run_range(fn, ctx, n, t, nt, NULL);
    }
    return ran;
}

void dn_part_barrier(const dn_part *part)
{
    if (part->team <= 1)
        return;
    dn_crew *c = part->sync;
    if (!c) {
#pragma omp barrier
        return;
    }
    unsigned gen = atomic_load_explicit(&c->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&c->arrived, 1, memory_order_acq_rel) == part->team - 1) {
        atomic_store_explicit(&c->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->generation, 1, memory_order_release);
        return;
    }
    wait_change(c, &c->generation, gen, false);
}
