/*
 * test_parallel.c — src/runtime/parallel.c: dn_parallel_for's ranges (each index once, range
 * t on slot t, the same split in a crew and in an OpenMP region), the crew (thousands of
 * loops back to back; a team larger or smaller than the crew; loops after its threads went to
 * sleep; a loop split inside a range; a crew inside a crew), dn_part_barrier, and a BLIS
 * product split across a crew against the same product on one thread, bit for bit.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "runtime/gemm.h"
#include "runtime/parallel.h"

#define MAX_N 4096
#define MAX_TEAM 8

/* What the ranges of one loop saw: who touched each index, and each slot's range. */
typedef struct record {
    int64_t n;
    atomic_int touched[MAX_N];
    int64_t lo[MAX_TEAM], hi[MAX_TEAM];
    atomic_int calls[MAX_TEAM];
    atomic_int teams_seen; /* part->team, the same for every range */
} record;

static void record_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    record *r = *(record *const *)ctx;
    for (int64_t i = lo; i < hi; i++)
        atomic_fetch_add(&r->touched[i], 1);
    r->lo[part->slot] = lo;
    r->hi[part->slot] = hi;
    atomic_fetch_add(&r->calls[part->slot], 1);
    atomic_store(&r->teams_seen, part->team);
}

static void record_reset(record *r, int64_t n)
{
    memset(r, 0, sizeof *r);
    r->n = n;
}

/* Every index once; range t = [n·t/T, n·(t+1)/T) on slot t, once, T = `team`. */
static void check_record(const record *r, int team)
{
    for (int64_t i = 0; i < r->n; i++)
        cr_assert_eq(atomic_load(&r->touched[i]), 1, "index %lld touched %d times (n %lld)",
                     (long long)i, atomic_load(&r->touched[i]), (long long)r->n);
    cr_assert_eq(atomic_load(&r->teams_seen), team);
    for (int t = 0; t < team; t++) {
        cr_assert_eq(atomic_load(&r->calls[t]), 1, "slot %d ran %d times", t,
                     atomic_load(&r->calls[t]));
        cr_assert_eq(r->lo[t], r->n * t / team);
        cr_assert_eq(r->hi[t], r->n * (t + 1) / team);
    }
    for (int t = team; t < MAX_TEAM; t++)
        cr_assert_eq(atomic_load(&r->calls[t]), 0, "slot %d ran outside a team of %d", t, team);
}

static record rec; /* large: not on a thread's stack */

static void run_and_check(int64_t n, int team, int expected_team)
{
    record_reset(&rec, n);
    record *p = &rec;
    dn_parallel_for(n, team, record_range, &p);
    check_record(&rec, expected_team);
}

Test(parallel, ranges_outside_a_crew)
{
    run_and_check(1000, 1, 1);
    run_and_check(1000, 2, 2);
    run_and_check(7, 3, 3);
    run_and_check(1, 2, 2); /* a range may be empty: [0, 0) on slot 0 */
}

/* ------------------------------------------------------------------ in a crew */

typedef struct crew_case {
    int loops;
    int leading_inside;   /* dn_parallel_leading() seen by the body */
    int leading_in_range; /* ... and by a range of one of its loops (max over ranges) */
    bool failed;
    char why[160];
} crew_case;

static void note_leading(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)lo, (void)hi, (void)part;
    crew_case *c = *(crew_case *const *)ctx;
    int seen = dn_parallel_leading();
    if (seen > c->leading_in_range) /* slot 0 is the body's thread: the only writer that matters */
        c->leading_in_range = seen;
}

static void loops_body(void *arg)
{
    crew_case *c = arg;
    c->leading_inside = dn_parallel_leading();
    crew_case *p = c;
    dn_parallel_for(2, 2, note_leading, &p);
    for (int i = 0; i < c->loops && !c->failed; i++) {
        int64_t n = 1 + (i * 37) % MAX_N;
        int team = 1 + i % 3; /* 1, 2, 3: a crew of 2 runs 3 as 2 */
        record_reset(&rec, n);
        record *r = &rec;
        dn_parallel_for(n, team, record_range, &r);
        int expected = team > c->leading_inside ? c->leading_inside : team;
        for (int64_t j = 0; j < n && !c->failed; j++)
            if (atomic_load(&rec.touched[j]) != 1) {
                c->failed = true;
                snprintf(c->why, sizeof c->why, "loop %d (n %lld, team %d): index %lld touched %d",
                         i, (long long)n, team, (long long)j, atomic_load(&rec.touched[j]));
            }
        for (int t = 0; t < expected && !c->failed; t++)
            if (rec.lo[t] != n * t / expected || rec.hi[t] != n * (t + 1) / expected ||
                atomic_load(&rec.calls[t]) != 1) {
                c->failed = true;
                snprintf(c->why, sizeof c->why, "loop %d: slot %d ran [%lld, %lld) %d times", i, t,
                         (long long)rec.lo[t], (long long)rec.hi[t], atomic_load(&rec.calls[t]));
            }
    }
}

Test(parallel, thousands_of_loops_in_a_crew)
{
    crew_case c = { .loops = 5000 };
    dn_crew_run(2, loops_body, &c);
    cr_assert_not(c.failed, "%s", c.why);
    cr_assert_eq(c.leading_inside, 2, "the body leads a crew of 2, saw %d", c.leading_inside);
    cr_assert_eq(c.leading_in_range, 0, "a range must not post to the crew");
    cr_assert_eq(dn_parallel_leading(), 0, "no crew after dn_crew_run");
}

Test(parallel, a_crew_larger_than_the_team)
{
    crew_case c = { .loops = 300 };
    /* 4 threads on however many cores: team 1 to 3 leaves threads without a range, which
     * must still take part in every hand-over. */
    dn_crew_run(4, loops_body, &c);
    cr_assert_not(c.failed, "%s", c.why);
    cr_assert(c.leading_inside >= 1 && c.leading_inside <= 4);
}

/* Loops separated by pauses longer than the crew's yield budget: its threads sleep, and the
 * next loop must wake them. */
static void sleepy_body(void *arg)
{
    crew_case *c = arg;
    for (int i = 0; i < c->loops && !c->failed; i++) {
        struct timespec pause = { 0, 3 * 1000 * 1000 }; /* 3 ms */
        nanosleep(&pause, NULL);
        record_reset(&rec, 100);
        record *r = &rec;
        dn_parallel_for(100, 2, record_range, &r);
        if (atomic_load(&rec.calls[1]) != 1 || rec.lo[1] != 50) {
            c->failed = true;
            snprintf(c->why, sizeof c->why, "loop %d after a pause: slot 1 ran %d times", i,
                     atomic_load(&rec.calls[1]));
        }
    }
}

Test(parallel, loops_after_the_crew_slept)
{
    crew_case c = { .loops = 5 };
    dn_crew_run(2, sleepy_body, &c);
    cr_assert_not(c.failed, "%s", c.why);
}

/* A loop split inside a range runs on the range's thread, whole. */
typedef struct nested {
    atomic_int inner_calls, inner_team_sum;
    atomic_llong covered;
} nested;

static void inner_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    nested *s = *(nested *const *)ctx;
    atomic_fetch_add(&s->inner_calls, 1);
    atomic_fetch_add(&s->inner_team_sum, part->team);
    atomic_fetch_add(&s->covered, hi - lo);
}

static void outer_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)lo, (void)hi, (void)part;
    dn_parallel_for(64, 2, inner_range, ctx);
}

static void nested_body(void *arg)
{
    nested **p = arg;
    dn_parallel_for(2, 2, outer_range, p);
}

Test(parallel, a_loop_inside_a_range_runs_on_its_thread)
{
    nested s = { 0 };
    nested *p = &s;
    dn_crew_run(2, nested_body, &p);
    cr_assert_eq(atomic_load(&s.inner_calls), 2, "one inner range per outer range");
    cr_assert_eq(atomic_load(&s.inner_team_sum), 2, "each inner loop is a team of 1");
    cr_assert_eq(atomic_load(&s.covered), 128);
    /* and the same outside a crew, inside OpenMP's region */
    memset(&s, 0, sizeof s);
    dn_parallel_for(2, 2, outer_range, &p);
    cr_assert_eq(atomic_load(&s.inner_calls), 2);
    cr_assert_eq(atomic_load(&s.covered), 128);
}

static void count_body(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static void crew_in_crew_body(void *arg)
{
    atomic_int *runs = arg;
    dn_crew_run(2, count_body, runs); /* runs here, on this thread: the crew is ours already */
    if (dn_parallel_leading() == 0)
        atomic_fetch_add(runs, 100); /* the inner crew must not have ended the outer one */
}

Test(parallel, a_crew_inside_a_crew_is_the_same_crew)
{
    atomic_int runs = 0;
    dn_crew_run(2, crew_in_crew_body, &runs);
    cr_assert_eq(atomic_load(&runs), 1);
}

/* ------------------------------------------------------------------ the barrier */

typedef struct phases {
    int rounds;
    int64_t values[MAX_TEAM];
    atomic_int wrong;
} phases;

/* Each round: every range writes its value, all meet, each reads every other's, all meet. */
static void phases_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)lo, (void)hi;
    phases *s = *(phases *const *)ctx;
    for (int r = 0; r < s->rounds; r++) {
        s->values[part->slot] = (int64_t)r * 100 + part->slot;
        dn_part_barrier(part);
        for (int t = 0; t < part->team; t++)
            if (s->values[t] != (int64_t)r * 100 + t)
                atomic_fetch_add(&s->wrong, 1);
        dn_part_barrier(part);
    }
}

static void phases_body(void *arg) { dn_parallel_for(2, 2, phases_range, arg); }

Test(parallel, the_barrier_holds_every_range)
{
    phases s = { .rounds = 2000 };
    phases *p = &s;
    dn_crew_run(2, phases_body, &p);
    cr_assert_eq(atomic_load(&s.wrong), 0, "a range read before the others wrote (crew)");
    dn_parallel_for(2, 2, phases_range, &p);
    cr_assert_eq(atomic_load(&s.wrong), 0, "a range read before the others wrote (OpenMP)");
}

/* ------------------------------------------------------------------ BLIS in a crew */

typedef struct product {
    bool ta, tb;
    int64_t m, n, k;
    const float *a, *b;
    float *c;
} product;

static void product_body(void *arg)
{
    const product *p = arg;
    dn_sgemm_blis(p->ta, p->tb, p->m, p->n, p->k, 1.0f, p->a, p->ta ? p->m : p->k, p->b,
                  p->tb ? p->k : p->n, 0.5f, p->c, p->n, 2);
}

Test(parallel, a_blis_product_split_across_a_crew_is_blis_on_one_thread)
{
    const int64_t shapes[][3] = { { 200, 70, 90 }, { 40, 300, 64 }, { 33, 33, 5 } };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int t = 0; t < 4; t++) {
            int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *a = dn_test_uniform(m * k, 1, -1, 1), *b = dn_test_uniform(k * n, 2, -1, 1);
            float *c1 = dn_test_uniform(m * n, 3, -1, 1), *c2 = dn_test_uniform(m * n, 3, -1, 1);
            product p = { t & 1, t & 2, m, n, k, a, b, c2 };
            dn_sgemm_blis(p.ta, p.tb, m, n, k, 1.0f, a, p.ta ? m : k, b, p.tb ? k : n, 0.5f, c1, n,
                          1);
            dn_crew_run(2, product_body, &p);
            cr_assert(memcmp(c1, c2, (size_t)(m * n) * sizeof *c1) == 0,
                      "%lld×%lld×%lld, trans %d/%d: the crew's product differs", (long long)m,
                      (long long)n, (long long)k, p.ta, p.tb);
            free(a), free(b), free(c1), free(c2);
        }
}
