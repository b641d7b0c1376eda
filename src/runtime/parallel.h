/*
 * parallel.h — how kernels split work across threads.
 *
 * One level of OpenMP, owned by the kernels: a loop is split into contiguous ranges, one
 * per thread (static: the same split on every run, so results are the same bit for bit for
 * a given thread count; contiguous: threads never write the same cache line except where
 * two ranges meet, and each range's inner loop vectorises).
 *
 * A region is opened only when it will have two threads or more: libgomp allocates a team
 * on the heap for every region entered with a single thread (it caches teams of two or more
 * only), and the training step must not allocate. So kernels never write
 * `#pragma omp parallel ... if (cond)`; they ask dn_team for a team size and use
 * DN_PARALLEL_RANGE, which runs the loop on the calling thread when the team is 1.
 */
#ifndef DN_PARALLEL_H
#define DN_PARALLEL_H

#include <omp.h>
#include <stdint.h>

/* The team for `work` units when splitting pays from `min_work` units on. */
static inline int dn_team(int threads, int64_t work, int64_t min_work)
{
    return threads > 1 && work >= min_work ? threads : 1;
}

/* Run `call` with int64_t lo, hi declared, over ranges splitting [0, n) among `team`
 * threads; on the calling thread over [0, n) when team <= 1. In `call`,
 * omp_get_thread_num() names the range's thread (0 on the calling thread). */
#define DN_PARALLEL_RANGE(n, team, lo, hi, call)                                        \
    do {                                                                                \
        int64_t dn_n_ = (n);                                                            \
        int dn_team_ = (team);                                                          \
        if (dn_team_ <= 1) {                                                            \
            int64_t lo = 0, hi = dn_n_;                                                 \
            call;                                                                       \
        } else {                                                                        \
            _Pragma("omp parallel num_threads(dn_team_)")                               \
            {                                                                           \
                int64_t dn_t_ = omp_get_thread_num(), dn_nt_ = omp_get_num_threads();   \
                int64_t lo = dn_n_ * dn_t_ / dn_nt_, hi = dn_n_ * (dn_t_ + 1) / dn_nt_; \
                call;                                                                   \
            }                                                                           \
        }                                                                               \
    } while (0)

#endif
