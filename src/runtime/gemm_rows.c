/* gemm_rows.c — a product of a few rows against a large matrix, streamed (see gemm.h):
 *
 *   C [m×n] = A [m×k] · B [k×n] + beta · C        2 ≤ m ≤ 16, all row-major
 *   C [m×n] = A [m×k] · Bᵀ + beta · C             the same with B [n×k] (below: B transposed)
 *
 * The Affine forward at a small batch is this shape: AlexNet's fc6 at batch 16 is
 * [16×9216]·[9216×4096], 151 MB of B for 16 rows. Such a product is bound by reading B once,
 * and BLIS 0.9 reads it three times: it packs B into panels (a read and a write), then its
 * micro-kernel reads the panels, which 16 rows of A use once each. Here every element of B is
 * loaded once from memory and used for all m rows while in a register.
 *
 * Blocking. Threads split the columns of C into strips of STRIP columns (two AVX-512
 * vectors). For each band of KB rows of B, a thread walks its strips: the strip's m × STRIP
 * entries of C are loaded into registers in blocks of up to 8 rows (16 accumulators), the
 * band's KB × STRIP tile of B (8 KiB, in L1 for the second block of rows) is multiplied in
 * with one broadcast of A per row and row of B, and C is stored back. C (m × its columns) stays
 * in L2 between bands; a band touches KB rows of B, a page each, which the TLB holds. The
 * loops over a block's rows are unrolled by pragma: without it GCC 12 at -O3 kept the
 * accumulator arrays in memory too, storing every accumulator after each multiply-add (fc6
 * at batch 16, 1 thread, Zen 5: 18.8 ms with those stores, 11.3 without).
 *
 * Order of the sums. C[i, j] starts from beta · C[i, j] (0 without reading C when beta = 0, as
 * BLAS), then adds A[i, p] · B[p, j] for p = 0, 1, ... in order, each a fused multiply-add:
 * one thread computes each entry, so the bits are the same for any number of threads.
 * NaN and Inf propagate as IEEE arithmetic says (no skipped zeros).
 *
 * AVX-512 only (runtime/gemm.c asks dn_gemm_rows_available); elsewhere BLIS runs the product.
 */
#include "runtime/gemm.h"

#include "runtime/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define INLINE_AVX512 __attribute__((target("avx512f"), always_inline)) static inline

enum {
    STRIP = 32, /* columns of C per strip: two vectors */
    KB = 32,    /* rows of B per band */
    PREFETCH = 2 * STRIP,
};

/* Lane masks for the columns [j, j + STRIP) of C that lie before n. */
INLINE_AVX512 void strip_masks(int64_t n, int64_t j, __mmask16 *m0, __mmask16 *m1)
{
    int64_t left = n - j;
    *m0 = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    left -= 16;
    *m1 = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* Rows [i0, i0 + rows) of C, columns [j, j + STRIP), += A[rows, p0..p1) · B[p0..p1, strip].
 * rows is a constant at each call (always inlined), so the accumulators stay in registers. */
INLINE_AVX512 void block(int rows, const float *a, int64_t lda, const float *b, int64_t ldb,
                         int64_t p0, int64_t p1, float *c, int64_t ldc, int64_t j, __mmask16 m0,
                         __mmask16 m1)
{
    __m512 acc0[8], acc1[8];
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        acc0[r] = _mm512_maskz_loadu_ps(m0, c + r * ldc + j);
        acc1[r] = _mm512_maskz_loadu_ps(m1, c + r * ldc + j + 16);
    }
    for (int64_t p = p0; p < p1; p++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b + p * ldb + j);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, b + p * ldb + j + 16);
        _mm_prefetch((const char *)(b + p * ldb + j + PREFETCH), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + p * ldb + j + PREFETCH + 16), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            __m512 av = _mm512_set1_ps(a[r * lda + p]);
            acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(c + r * ldc + j, m0, acc0[r]);
        _mm512_mask_storeu_ps(c + r * ldc + j + 16, m1, acc1[r]);
    }
}

/* Rows [i0, i0 + rows) with rows in 1..8, as a constant. */
AVX512 static void rows_block(int64_t rows, const float *a, int64_t lda, const float *b,
                              int64_t ldb, int64_t p0, int64_t p1, float *c, int64_t ldc, int64_t j,
                              __mmask16 m0, __mmask16 m1)
{
    switch (rows) {
    case 8: block(8, a, lda, b, ldb, p0, p1, c, ldc, j, m0, m1); break;
    case 7: block(7, a, lda, b, ldb, p0, p1, c, ldc, j, m0, m1); break;
    case 6: block(6, a, lda, b, ldb, p0, p1, c, ldc, j, m0, m1); break;
    case 5: block(5, a, lda, b, ldb, p0, p1, c, ldc, j, m0, m1); break;
    case 4: block(4, a, lda, b, ldb, p0, p1, c, ldc, j, m0, m1); break;
    case 3: block(3, a, lda, b, ldb, p0, p1, c, ldc, j, m0, m1); break;
    case 2: block(2, a, lda, b, ldb, p0, p1, c, ldc, j, m0, m1); break;
    default: block(1, a, lda, b, ldb, p0, p1, c, ldc, j, m0, m1); break;
    }
}

/* Strips [lo, hi) of C: beta first, then every band of B in order. */
AVX512 static void strips(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                          const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                          int64_t lo, int64_t hi)
{
    int64_t j0 = lo * STRIP, j1 = hi * STRIP < n ? hi * STRIP : n;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = j0; j < j1; j++)
            c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    for (int64_t p0 = 0; p0 < k; p0 += KB) {
        int64_t p1 = k - p0 < KB ? k : p0 + KB;
        for (int64_t j = j0; j < j1; j += STRIP) {
            __mmask16 m0, m1;
            strip_masks(n, j, &m0, &m1);
            for (int64_t i0 = 0; i0 < m; i0 += 8)
                rows_block(m - i0 < 8 ? m - i0 : 8, a + i0 * lda, lda, b, ldb, p0, p1, c + i0 * ldc,
                           ldc, j, m0, m1);
        }
    }
}

/* ---------------------------------------------------------------- B transposed
 *
 *   C [m×n] = A [m×k] · Bᵀ + beta · C        B [n×k] row-major: C[i, j] = A row i · B row j
 *
 * Each entry is a dot product of two rows. Threads split B's rows (C's columns) in groups of
 * TJ; for a group, blocks of TI rows of A keep TI × TJ accumulators of 16 lanes while k passes
 * (TI + TJ loads for TI·TJ multiply-adds), then each accumulator's lanes are summed into its
 * entry. B's group (TJ rows) is read from memory for the first block of A and from cache for
 * the others; A (16 rows, 256 KiB for AlexNet's fc6) stays in L2. Every entry is one thread's,
 * summed in one order (lanes along k, then the 16 lanes): the same bits for any number of
 * threads. A tail of k shorter than a vector loads zeros in both operands' masked lanes. */
enum { TI = 4, TJ = 4 };

/* C's columns [j0, j0 + nj), nj ≤ TJ (a short last group computes its first row again in
 * the unused slots and stores nothing from them). */
AVX512 static void dots_group(int64_t m, int64_t k, const float *a, int64_t lda, const float *b,
                              int64_t ldb, float beta, float *c, int64_t ldc, int64_t j0,
                              int64_t nj)
{
    const float *br[TJ];
    for (int t = 0; t < TJ; t++)
        br[t] = b + (j0 + (t < nj ? t : 0)) * ldb;
    __mmask16 tail = (__mmask16)((1u << (k % 16)) - 1);
    for (int64_t i0 = 0; i0 < m; i0 += TI) {
        int64_t ni = m - i0 < TI ? m - i0 : TI;
        const float *ar[TI];
        for (int s = 0; s < TI; s++)
            ar[s] = a + (i0 + (s < ni ? s : 0)) * lda;
        __m512 acc[TI][TJ];
#pragma GCC unroll 16
        for (int s = 0; s < TI * TJ; s++)
            acc[s / TJ][s % TJ] = _mm512_setzero_ps();
        int64_t p = 0;
        for (; p + 16 <= k; p += 16) {
            __m512 bv[TJ];
#pragma GCC unroll 4
            for (int t = 0; t < TJ; t++)
                bv[t] = _mm512_loadu_ps(br[t] + p);
#pragma GCC unroll 4
            for (int s = 0; s < TI; s++) {
                __m512 av = _mm512_loadu_ps(ar[s] + p);
#pragma GCC unroll 4
                for (int t = 0; t < TJ; t++)
                    acc[s][t] = _mm512_fmadd_ps(av, bv[t], acc[s][t]);
            }
        }
        if (p < k) {
#pragma GCC unroll 4
            for (int s = 0; s < TI; s++) {
                __m512 av = _mm512_maskz_loadu_ps(tail, ar[s] + p);
#pragma GCC unroll 4
                for (int t = 0; t < TJ; t++)
                    acc[s][t] =
                        _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(tail, br[t] + p), acc[s][t]);
            }
        }
        for (int64_t s = 0; s < ni; s++)
            for (int64_t t = 0; t < nj; t++) {
                float *at = c + (i0 + s) * ldc + j0 + t;
                *at = (beta == 0.0f ? 0.0f : beta * *at) + _mm512_reduce_add_ps(acc[s][t]);
            }
    }
}

AVX512 static void dots_groups(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                               const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                               int64_t lo, int64_t hi)
{
    for (int64_t gi = lo; gi < hi; gi++) {
        int64_t j0 = gi * TJ;
        dots_group(m, k, a, lda, b, ldb, beta, c, ldc, j0, n - j0 < TJ ? n - j0 : TJ);
    }
}

/* The operands of one product, for the ranges of its split. */
typedef struct rows_job {
    int64_t m, n, k, lda, ldb, ldc;
    const float *a, *b;
    float beta, *c;
} rows_job;

static void dots_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const rows_job *j = ctx;
    dots_groups(j->m, j->n, j->k, j->a, j->lda, j->b, j->ldb, j->beta, j->c, j->ldc, lo, hi);
}

static void strips_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const rows_job *j = ctx;
    strips(j->m, j->n, j->k, j->a, j->lda, j->b, j->ldb, j->beta, j->c, j->ldc, lo, hi);
}

void dn_gemm_rows_t(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                    int64_t ldb, float beta, float *c, int64_t ldc, int threads)
{
    int64_t groups = (n + TJ - 1) / TJ;
    rows_job j = { m, n, k, lda, ldb, ldc, a, b, beta, c };
    dn_parallel_for(groups, dn_team(threads, groups, 2), dots_job, &j);
}

bool dn_gemm_rows_available(void) { return __builtin_cpu_supports("avx512f"); }

void dn_gemm_rows(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                  int64_t ldb, float beta, float *c, int64_t ldc, int threads)
{
    int64_t count = (n + STRIP - 1) / STRIP;
    rows_job j = { m, n, k, lda, ldb, ldc, a, b, beta, c };
    dn_parallel_for(count, dn_team(threads, count, 2), strips_job, &j);
}
#else
/* Other machines: BLIS runs every product. */
bool dn_gemm_rows_available(void) { return false; }

void dn_gemm_rows(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                  int64_t ldb, float beta, float *c, int64_t ldc, int threads)
{
    (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb, (void)beta, (void)c;
    (void)ldc, (void)threads;
}

void dn_gemm_rows_t(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                    int64_t ldb, float beta, float *c, int64_t ldc, int threads)
{
    dn_gemm_rows(m, n, k, a, lda, b, ldb, beta, c, ldc, threads);
}
#endif
