/*
 * test_gemm.c — src/runtime/gemm.c against a plain triple loop in double: dn_sgemm in every
 * transposition, including the one-row and one-column products it hands to gemv, and
 * dn_gemm_packed from operands packed by dn_pack_a/dn_pack_b, with sizes that leave partial
 * micro-tiles on both edges, and dn_gemm_rows (gemm_rows.c), alone and as dn_sgemm takes it.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"
#include "runtime/gemm.h"

/* n values U(−0.5, 0.5), the same for the same seed. */
static float *random_floats(int64_t n, uint64_t seed)
{
    return dn_test_uniform(n, seed, -0.5f, 0.5f);
}

/* C = alpha·op(A)·op(B) + beta·C, row-major, in double. */
static void reference(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                      float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double sum = 0;
            for (int64_t p = 0; p < k; p++)
                sum += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                       (double)(tb ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = (float)(alpha * sum + (double)beta * c[i * ldc + j]);
        }
}

static void check_sgemm(int64_t m, int64_t n, int64_t k, int threads)
{
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
        float *a = random_floats((ta ? k : m) * lda, 1), *b = random_floats((tb ? n : k) * ldb, 2);
        float *c = random_floats(m * ldc, 3), *want = random_floats(m * ldc, 3);
        dn_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c, ldc, threads);
        reference(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, want, ldc);
        char what[96];
        snprintf(what, sizeof what, "dn_sgemm %lldx%lldx%lld ta=%d tb=%d threads=%d", (long long)m,
                 (long long)n, (long long)k, ta, tb, threads);
        dn_test_expect_close(c, want, m * ldc, 1e-5f, what);
        free(a), free(b), free(c), free(want);
    }
}

Test(runtime_gemm, sgemm_in_every_transposition) { check_sgemm(7, 19, 13, 2); }
Test(runtime_gemm, one_row_goes_through_gemv) { check_sgemm(1, 37, 23, 2); }
Test(runtime_gemm, one_column_goes_through_gemv) { check_sgemm(29, 1, 17, 1); }
Test(runtime_gemm, one_by_one) { check_sgemm(1, 1, 9, 2); }
/* Large enough for the threads to split a one-row product (over k, or over B's rows). */
Test(runtime_gemm, one_row_split_across_threads) { check_sgemm(1, 301, 700, 2); }

/* A one-row product where a zero in the row meets an Inf in the matrix gives NaN in that
 * column (0 · Inf), as a gemm does, and beta = 0 overwrites a NaN already in C: on one thread
 * and split over k across two. */
static void check_zero_times_inf(int64_t n, int64_t k, int threads)
{
    float *a = random_floats(k, 1), *b = random_floats(k * n, 2), *c = malloc((size_t)n * 4);
    a[k - 1] = 0.0f; /* the last row of B is in the second half of the split */
    b[(k - 1) * n + n / 2] = INFINITY;
    for (int64_t j = 0; j < n; j++)
        c[j] = NAN;
    dn_sgemm(false, false, 1, n, k, 1.0f, a, k, b, n, 0.0f, c, n, threads);
    for (int64_t j = 0; j < n; j++)
        if (j == n / 2)
            cr_expect(isnan(c[j]), "threads=%d: column %lld holds 0 · Inf, want NaN, got %g",
                      threads, (long long)j, c[j]);
        else
            cr_expect(isfinite(c[j]), "threads=%d: column %lld want finite, got %g", threads,
                      (long long)j, c[j]);
    free(a), free(b), free(c);
}

Test(runtime_gemm, one_row_zero_times_inf_is_nan)
{
    check_zero_times_inf(37, 23, 1);
    check_zero_times_inf(301, 700, 2);
}

static void check_packed(int64_t m, int64_t n, int64_t k, float beta)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    cr_assert(u.mr > 0 && u.nr > 0 && u.fn);
    float *a = random_floats(m * k, 4), *b = random_floats(k * n, 5);
    float *c = random_floats(m * n, 6), *want = random_floats(m * n, 6);
    int64_t most = m > n ? m : n; /* both packings below use each buffer */
    float *pa = aligned_alloc(64, (size_t)(dn_packed_size(most, k, u.mr) * 4 + 64) / 64 * 64);
    float *pb = aligned_alloc(64, (size_t)(dn_packed_size(most, k, u.nr) * 4 + 64) / 64 * 64);
    if (beta == 0.0f) /* C must then be written, never read */
        for (int64_t i = 0; i < m * n; i++)
            c[i] = NAN;
    dn_pack_a(&u, a, k, 1, m, k, pa);
    dn_pack_b(&u, b, n, 1, k, n, pb);
    dn_gemm_packed(&u, m, n, k, pa, pb, beta, c, n, 1);
    reference(false, false, m, n, k, 1.0f, a, k, b, n, beta, want, n);
    dn_test_expect_close(c, want, m * n, 1e-5f, "dn_gemm_packed");
    /* Packing a transposed view: C = Aᵀ·Bᵀ from the same arrays read column-wise. */
    dn_pack_a(&u, b, 1, n, n, k, pa);
    dn_pack_b(&u, a, 1, k, k, m, pb);
    float *ct = random_floats(n * m, 7), *want_t = random_floats(n * m, 7);
    dn_gemm_packed(&u, n, m, k, pa, pb, beta, ct, m, 1);
    reference(true, true, n, m, k, 1.0f, b, n, a, k, beta, want_t, m);
    dn_test_expect_close(ct, want_t, n * m, 1e-5f, "dn_gemm_packed, transposed packing");
    free(a), free(b), free(c), free(want), free(pa), free(pb), free(ct), free(want_t);
}

Test(runtime_gemm, packed_with_partial_tiles_on_both_edges) { check_packed(13, 37, 21, 1.0f); }
Test(runtime_gemm, packed_overwrites_with_beta_zero) { check_packed(6, 16, 5, 0.0f); }
Test(runtime_gemm, packed_smaller_than_one_tile) { check_packed(2, 3, 4, 1.0f); }

/* ---------------------------------------------------------------- dn_gemm_rows
 *
 * The streamed product of a few rows (gemm_rows.c), called directly on shapes that leave a
 * partial strip of columns (n not a multiple of 32, and a strip of fewer than 16), a partial
 * band of B's rows (k not a multiple of its band) and a partial block of A's rows (m not a
 * multiple of 8), with leading dimensions wider than the matrices; beta 0 (C written, never
 * read: NaN in C disappears), 1 and 0.5; on 1 and 2 threads. Skipped (with a note) on a
 * machine without AVX-512, where dn_sgemm never takes it. */
static void check_rows_as(bool trans_b, int64_t m, int64_t n, int64_t k, float beta, int threads)
{
    int64_t lda = k + 3, ldb = trans_b ? k + 5 : n + 5, ldc = n + 2;
    float *a = random_floats(m * lda, 8), *b = random_floats((trans_b ? n : k) * ldb, 9);
    float *c = random_floats(m * ldc, 10), *want = random_floats(m * ldc, 10);
    if (beta == 0.0f)
        for (int64_t i = 0; i < m * ldc; i++)
            c[i] = want[i] = NAN;
    (trans_b ? dn_gemm_rows_t : dn_gemm_rows)(m, n, k, a, lda, b, ldb, beta, c, ldc, threads);
    for (int64_t i = 0; i < m; i++) /* the reference leaves C's padding columns as they were */
        for (int64_t j = 0; j < n; j++)
            want[i * ldc + j] = beta == 0.0f ? 0.0f : want[i * ldc + j];
    reference(false, trans_b, m, n, k, 1.0f, a, lda, b, ldb, beta, want, ldc);
    for (int64_t i = 0; i < m; i++) {
        char what[96];
        snprintf(what, sizeof what, "dn_gemm_rows%s %lldx%lldx%lld beta=%g threads=%d row %lld",
                 trans_b ? "_t" : "", (long long)m, (long long)n, (long long)k, beta, threads,
                 (long long)i);
        dn_test_expect_close(c + i * ldc, want + i * ldc, n, 1e-5f, what);
        for (int64_t j = n; j < ldc; j++) /* the padding between rows is never written */
            cr_expect(isnan(c[i * ldc + j]) == isnan(want[i * ldc + j]) &&
                          (isnan(c[i * ldc + j]) || c[i * ldc + j] == want[i * ldc + j]),
                      "%s: padding column %lld was written", what, (long long)j);
    }
    free(a), free(b), free(c), free(want);
}

static void check_rows(int64_t m, int64_t n, int64_t k, float beta, int threads)
{
    check_rows_as(false, m, n, k, beta, threads);
}

Test(runtime_gemm, rows_streamed_with_partial_strips_bands_and_blocks)
{
    if (!dn_gemm_rows_available()) {
        cr_log_info("no AVX-512 here: dn_gemm_rows is not used on this machine");
        return;
    }
    check_rows(2, 45, 70, 1.0f, 1);
    check_rows(11, 77, 33, 0.0f, 2);
    check_rows(16, 100, 131, 0.5f, 2);
    check_rows(9, 7, 5, 1.0f, 2); /* one strip, narrower than a vector */
}

/* dn_gemm_rows_t, B transposed (Affine's dx = dy · Wᵀ): blocks of 4 rows of A and 4 rows of B,
 * so m and n that leave partial blocks (2, 7, 11 rows; 5, 45, 77 columns), k with a tail
 * shorter than a vector (5, 33, 131) and with none (64); beta 0, 1, 0.5; 1 and 2 threads. */
Test(runtime_gemm, rows_streamed_against_a_transposed_b)
{
    if (!dn_gemm_rows_available()) {
        cr_log_info("no AVX-512 here: dn_gemm_rows_t is not used on this machine");
        return;
    }
    check_rows_as(true, 2, 45, 70, 1.0f, 1);
    check_rows_as(true, 11, 77, 33, 0.0f, 2);
    check_rows_as(true, 16, 100, 131, 0.5f, 2);
    check_rows_as(true, 7, 5, 5, 1.0f, 2);
    check_rows_as(true, 16, 8, 64, 0.0f, 1);
}

/* A product dn_sgemm streams (16 rows against a B of 2^20 elements, AVX-512 machines): the
 * same result as the reference, and NaN from 0 · Inf in the column that holds the Inf. */
Test(runtime_gemm, few_rows_against_a_large_b)
{
    int64_t m = 16, n = 1027, k = 1031; /* n·k ≥ 2^20 */
    float *a = random_floats(m * k, 11), *b = random_floats(k * n, 12);
    float *c = random_floats(m * n, 13), *want = random_floats(m * n, 13);
    dn_sgemm(false, false, m, n, k, 1.0f, a, k, b, n, 1.0f, c, n, 2);
    reference(false, false, m, n, k, 1.0f, a, k, b, n, 1.0f, want, n);
    dn_test_expect_close(c, want, m * n, 1e-4f, "dn_sgemm 16x1027x1031");
    a[3 * k + 500] = 0.0f;
    b[500 * n + 600] = INFINITY;
    dn_sgemm(false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n, 2);
    cr_expect(isnan(c[3 * n + 600]), "row 3 column 600 holds 0 · Inf: want NaN, got %g",
              c[3 * n + 600]);
    cr_expect(isinf(c[4 * n + 600]), "row 4 column 600 meets the Inf with a nonzero: want Inf");
    /* B [n×k] transposed: dx = dy · Wᵀ as Affine asks it */
    b[500 * n + 600] = 0.5f;
    for (int64_t i = 0; i < m * n; i++)
        c[i] = want[i] = (float)(i % 7);
    dn_sgemm(false, true, m, n, k, 1.0f, a, k, b, k, 1.0f, c, n, 2);
    reference(false, true, m, n, k, 1.0f, a, k, b, k, 1.0f, want, n);
    dn_test_expect_close(c, want, m * n, 1e-4f, "dn_sgemm 16x1027x1031, B transposed");
    free(a), free(b), free(c), free(want);
}

/* Which products stream (dn_gemm_streams: what Affine asks before taking dn_gemm_small, which
 * would pack all of B): AlexNet's fc8 at batch 16 on an AVX-512 machine, forward and with B
 * transposed (dx); not with A transposed, 17 rows, alpha other than 1, one row (a
 * matrix-vector product) or a B under 2^20 elements. */
Test(runtime_gemm, streams_few_rows_against_a_large_b_only)
{
    bool here = dn_gemm_rows_available();
    cr_assert_eq(dn_gemm_streams(false, false, 16, 1000, 4096, 1.0f), here);
    cr_assert_eq(dn_gemm_streams(false, false, 2, 1024, 1024, 1.0f), here);
    cr_assert_eq(dn_gemm_streams(false, true, 16, 1000, 4096, 1.0f), here);
    cr_assert_not(dn_gemm_streams(true, false, 16, 1000, 4096, 1.0f));
    cr_assert_not(dn_gemm_streams(false, false, 17, 1000, 4096, 1.0f));
    cr_assert_not(dn_gemm_streams(false, false, 16, 1000, 4096, 0.5f));
    cr_assert_not(dn_gemm_streams(false, false, 1, 1000, 4096, 1.0f));
    cr_assert_not(dn_gemm_streams(false, false, 16, 1023, 1024, 1.0f));
}

/* ---------------------------------------------------------------- dn_gemm_small
 *
 * The small product on dagnet's own threads, in every transposition, with the threads
 * splitting B's column panels (n long) or A's row panels (m long), partial panels on both
 * edges, beta 0 (C written, never read) and 1, on 1, 2 and 3 threads, and products too small
 * to split; against the reference. */
static void check_small(int64_t m, int64_t n, int64_t k, float beta, int threads)
{
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
        float *a = random_floats((ta ? k : m) * lda, 14),
              *b = random_floats((tb ? n : k) * ldb, 15);
        float *c = random_floats(m * ldc, 16), *want = random_floats(m * ldc, 16);
        if (beta == 0.0f)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++)
                    c[i * ldc + j] = NAN;
        void *work = malloc(dn_gemm_small_work(m, n, k, threads));
        cr_assert(dn_gemm_small_fits(m, n, k));
        dn_gemm_small(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, work, threads);
        reference(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, want, ldc);
        char what[96];
        snprintf(what, sizeof what, "dn_gemm_small %lldx%lldx%lld ta=%d tb=%d beta=%g threads=%d",
                 (long long)m, (long long)n, (long long)k, ta, tb, beta, threads);
        dn_test_expect_close(c, want, m * ldc, 1e-5f, what);
        free(a), free(b), free(c), free(want), free(work);
    }
}

Test(runtime_gemm, small_products_split_either_side)
{
    /* from 2^21 multiply-adds on (SMALL_PARALLEL_MIN in gemm.c) */
    check_small(7, 2030, 370, 1.0f, 2);  /* column panels split */
    check_small(2030, 7, 370, 0.0f, 2);  /* row panels split */
    check_small(131, 131, 131, 1.0f, 3); /* three threads, partial panels */
    /* below it, on the calling thread whatever the session's threads */
    check_small(45, 45, 100, 1.0f, 3);
    check_small(1, 2, 3, 0.0f, 2);
    check_small(33, 29, 5, 1.0f, 1);
}
