/* gemm.c — row-major sgemm on BLIS's typed API with a per-call thread count, and products
 * on BLIS's micro-kernel from operands the caller packs (see gemm.h); and the choice of
 * BLIS's kernels for CPUs that Debian's BLIS does not know (dn_blis_start). */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "runtime/gemm.h"

#include <blis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "runtime/clones.h"
#include "runtime/parallel.h"

/* ---------------------------------------------------------------- BLIS's sub-configuration
 *
 * BLIS picks its kernels (a sub-configuration) from CPUID when it starts, and BLIS 0.9,
 * Debian 12's, predates two kinds of CPU these machines have been:
 *  - AMD after Zen 3. It knows AMD families up to 0x19 (Zen 3, Zen 4 taken for it); on a later
 *    family (Zen 5 is 0x1a) it falls back to "generic", portable C kernels that ran dagnet's
 *    products 2 to 3 times slower than its own AVX2 kernels on the same machine.
 *  - Intel Xeons after 2019. It runs its AVX-512 kernels (skx) only where it counts two
 *    AVX-512 FMA units, and it counts them from the brand string: "Platinum", or a Gold or W
 *    model number in its table of the parts of 2017–2019. A later Gold, or a virtual
 *    machine's generic "Intel(R) Xeon(R) Processor" (these machines'), gets its AVX2 kernels
 *    (haswell), half the vector width the CPU has.
 * BLIS 0.9's only switch is the environment variable BLIS_ARCH_TYPE, read once when it starts.
 * So before dagnet's first call into BLIS, when the process has not set that variable and BLIS
 * is older than 1.0, dagnet sets it: skx on a CPU with AVX-512 F, DQ, BW and VL where BLIS
 * would otherwise run less (an AMD family after 0x19: Zen 5; the Intel server families whose
 * every part has two AVX-512 FMA units: Sapphire, Emerald and Granite Rapids); zen3 on an AMD
 * family after 0x19 with AVX2 and FMA but no AVX-512. skx is a trade-off, measured on both
 * kinds of machine in docs/performance.md: it wins the large products (AlexNet's: 1.2-1.4x a
 * step) and loses a little on the thin ones (its 32-row micro-kernel on LeNet-5's 16 filters:
 * 4-6 % of a LeNet-5 training step), and BLIS 0.9 keeps one sub-configuration per process.
 * A process that sets BLIS_ARCH_TYPE itself, or starts BLIS before dagnet does, decides. */

static once_flag blis_once = ONCE_FLAG_INIT;
static char blis_choice[160]; /* written once, under blis_once; "" when BLIS chose */

#if defined(__x86_64__)
typedef struct cpu_id {
    char vendor[13];
    unsigned family, model; /* with their extended parts, as each vendor combines them */
} cpu_id;

static bool cpu_identify(cpu_id *id)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return false;
    memcpy(id->vendor, &b, 4);
    memcpy(id->vendor + 4, &d, 4);
    memcpy(id->vendor + 8, &c, 4);
    id->vendor[12] = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    unsigned base = (a >> 8) & 0xf, model = (a >> 4) & 0xf, ext_model = (a >> 16) & 0xf;
    id->family = base == 0xf ? base + ((a >> 20) & 0xff) : base;
    id->model = base == 0x6 || base == 0xf ? ext_model << 4 | model : model;
    return true;
}

/* Intel family 6 server models whose every part has two AVX-512 FMA units. */
static bool intel_two_fma_server(unsigned model)
{
    return model == 0x8f    /* Sapphire Rapids */
           || model == 0xcf /* Emerald Rapids */
           || model == 0xad /* Granite Rapids */
           || model == 0xae;
}

static void choose_blis_config(void)
{
    cpu_id id;
    if (getenv("BLIS_ARCH_TYPE") || strncmp(bli_info_get_version_str(), "0.", 2) != 0 ||
        !cpu_identify(&id))
        return;
    /* Where BLIS 0.9 runs less than the CPU has: an AMD family it does not know (generic C
     * kernels), or an Intel part with two AVX-512 FMA units it takes for one (haswell). */
    bool amd_unknown = strcmp(id.vendor, "AuthenticAMD") == 0 && id.family > 0x19;
    bool intel_halved =
        strcmp(id.vendor, "GenuineIntel") == 0 && id.family == 6 && intel_two_fma_server(id.model);
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    arch_t arch;
    if ((amd_unknown || intel_halved) && avx512)
        arch = BLIS_ARCH_SKX;
    else if (amd_unknown && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        arch = BLIS_ARCH_ZEN3;
    else
        return;
    char why[96];
    if (amd_unknown)
        snprintf(why, sizeof why, "BLIS %s does not know AMD family 0x%x",
                 bli_info_get_version_str(), id.family);
    else
        snprintf(why, sizeof why, "BLIS %s takes haswell on Intel family 6 model 0x%x",
                 bli_info_get_version_str(), id.model);
    char value[16];
    snprintf(value, sizeof value, "%d", (int)arch);
    if (setenv("BLIS_ARCH_TYPE", value, 0) == 0)
        snprintf(blis_choice, sizeof blis_choice, "set by dagnet as BLIS_ARCH_TYPE=%s: %s", value,
                 why);
}
#else
static void choose_blis_config(void) {}
#endif

static void blis_start_once(void)
{
    choose_blis_config();
    bli_init();
}

void dn_blis_start(void) { call_once(&blis_once, blis_start_once); }

/* Few rows of A against a B of this many elements or more (4 MiB: past L2) stream B once
 * (gemm_rows.c) instead of BLIS packing it first: AlexNet's fc6, fc7 and fc8 at batch 16, from
 * 22.9, 11.9 and 2.6 ms to 12.9, 5.8 and 1.8 (2 threads, Emerald Rapids). */
#define ROWS_MAX_M 16
#define ROWS_MIN_B ((int64_t)1 << 20)

/* Matrix-vector products split across threads from this many matrix elements (about what
 * one core streams from cache in 10 µs): below it a second thread costs more than it saves. */
#define GEMV_PARALLEL_MIN 131072
/* The partial sums of a split over k live on the stack: outputs up to this many. */
#define GEMV_SPLIT_MAX_N 4096

/* c[lo..hi) = alpha · (rows [lo, hi) of B [n×k]) · a + beta · c[lo..hi) */
static void rows_times_vector(int64_t k, float alpha, const float *b, int64_t ldb, const float *a,
                              int64_t inc_a, float beta, float *c, int64_t lo, int64_t hi)
{
    if (hi > lo)
        bli_sgemv_ex(BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, hi - lo, k, &alpha,
                     (float *)b + lo * ldb, ldb, 1, (float *)a, inc_a, &beta, c + lo, 1, NULL,
                     NULL);
}

/* out[0..n) = alpha · a[lo..hi) · (rows [lo, hi) of B [k×n]) + beta · out: one thread's share
 * of a product split over k, each thread reading its own contiguous rows of B.
 *
 * Written out rather than BLIS's transposed gemv because that one is a chain of axpys, and
 * an axpy with a zero coefficient returns early: a zero activation would skip its weight row,
 * and 0 · Inf would give 0 where IEEE arithmetic (and PyTorch) gives NaN. Four rows of B per
 * pass over out keep the loop bound by the stream of B, as gemv is; the AVX2 clone
 * (runtime/clones.h) matches gemv's speed, the baseline one is 20 % slower. beta == 0
 * overwrites out without reading it (BLAS's rule: whatever out held, even NaN, stays out). */
DN_CLONES_AVX2 static void vector_times_rows(int64_t n, float alpha, const float *a, int64_t inc_a,
                                             const float *b, int64_t ldb, float beta,
                                             float *restrict out, int64_t lo, int64_t hi)
{
    if (beta == 0.0f)
        for (int64_t j = 0; j < n; j++)
            out[j] = 0.0f;
    else if (beta != 1.0f)
        for (int64_t j = 0; j < n; j++)
            out[j] *= beta;
    int64_t i = lo;
    for (; i + 4 <= hi; i += 4) {
        const float a0 = alpha * a[i * inc_a], a1 = alpha * a[(i + 1) * inc_a];
        const float a2 = alpha * a[(i + 2) * inc_a], a3 = alpha * a[(i + 3) * inc_a];
        const float *restrict b0 = b + i * ldb, *restrict b1 = b0 + ldb;
        const float *restrict b2 = b1 + ldb, *restrict b3 = b2 + ldb;
        for (int64_t j = 0; j < n; j++)
            out[j] += (a0 * b0[j] + a1 * b1[j]) + (a2 * b2[j] + a3 * b3[j]);
    }
    for (; i < hi; i++) {
        const float ai = alpha * a[i * inc_a];
        const float *restrict bi = b + i * ldb;
        for (int64_t j = 0; j < n; j++)
            out[j] += ai * bi[j];
    }
}

/* The split of c[1×n] = alpha · a[1×k] · B[k×n] + beta · c over k: half 0 into c (with beta),
 * half 1 into partial. */
typedef struct halves_job {
    int64_t n, k, inc_a, ldb;
    float alpha, beta;
    const float *a, *b;
    float *c, *partial;
} halves_job;

static void halves(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const halves_job *j = ctx;
    for (int64_t h = lo; h < hi; h++)
        vector_times_rows(j->n, j->alpha, j->a, j->inc_a, j->b, j->ldb, h == 0 ? j->beta : 0.0f,
                          h == 0 ? j->c : j->partial, h == 0 ? 0 : j->k / 2,
                          h == 0 ? j->k / 2 : j->k);
}

/* c[1×n] = alpha · a[1×k] · B[k×n] + beta · c. Two threads each sum half of k; the second
 * half's partial sums are added after. */
static void row_times_matrix(int64_t n, int64_t k, float alpha, const float *a, int64_t inc_a,
                             const float *b, int64_t ldb, float beta, float *c, int threads)
{
    float partial[GEMV_SPLIT_MAX_N];
    if (n > GEMV_SPLIT_MAX_N || k < 2 || dn_team(threads, n * k, GEMV_PARALLEL_MIN) == 1) {
        vector_times_rows(n, alpha, a, inc_a, b, ldb, beta, c, 0, k);
        return;
    }
    halves_job job = { .n = n,
                       .k = k,
                       .inc_a = inc_a,
                       .ldb = ldb,
                       .alpha = alpha,
                       .beta = beta,
                       .a = a,
                       .b = b,
                       .c = c,
                       .partial = partial };
    dn_parallel_for(2, 2, halves, &job);
    for (int64_t j = 0; j < n; j++)
        c[j] += partial[j];
}

/* c = B·a, B stored n×k: rows [lo, hi) of B. */
typedef struct rows_vector_job {
    int64_t k, ldb, inc_a;
    float alpha, beta;
    const float *b, *a;
    float *c;
} rows_vector_job;

static void rows_vector(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const rows_vector_job *j = ctx;
    rows_times_vector(j->k, j->alpha, j->b, j->ldb, j->a, j->inc_a, j->beta, j->c, lo, hi);
}

/* A product with one row or one column is a matrix-vector product: BLIS's gemv, which runs
 * on the calling thread (BLIS threads only level-3 operations), split across our threads
 * when the matrix is large. For a batch of one that avoids a BLIS thread team's start-up,
 * which at that size costs more than the arithmetic. */
static bool as_gemv(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc, int threads)
{
    if (m == 1 && trans_b) { /* c = B·a, B stored n×k: threads split B's rows */
        int team = dn_team(threads, n * k, GEMV_PARALLEL_MIN);
        rows_vector_job j = { .k = k,
                              .ldb = ldb,
                              .inc_a = trans_a ? lda : 1,
                              .alpha = alpha,
                              .beta = beta,
                              .b = b,
                              .a = a,
                              .c = c };
        dn_parallel_for(n, team, rows_vector, &j);
        return true;
    }
    if (m == 1) {
        row_times_matrix(n, k, alpha, a, trans_a ? lda : 1, b, ldb, beta, c, threads);
        return true;
    }
    if (n == 1) { /* c[m×1] = op(A)·b[k×1], on one thread: only the weight gradient of a
                     * one-unit Affine at batch 1 takes this path */
        bli_sgemv_ex(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE,
                     trans_a ? k : m, trans_a ? m : k, &alpha, (float *)a, lda, 1, (float *)b,
                     trans_b ? 1 : ldb, &beta, c, ldc, NULL, NULL);
        return true;
    }
    return false;
}

/* C = alpha · op(A) · op(B) + beta · C on BLIS with `threads` of its own. */
static void blis_product(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                         float *c, int64_t ldc, int threads)
{
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(threads > 0 ? threads : 1, &rntm);
    /* Row-major X with leading dimension ld: row stride ld, column stride 1. */
    bli_sgemm_ex(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 trans_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, lda, 1,
                 (float *)b, ldb, 1, &beta, c, ldc, 1, NULL, &rntm);
}

/* A product split across a crew (runtime/parallel.h): BLIS's OpenMP team cannot start inside
 * the crew's region, so each range is a one-thread BLIS product on a block of C's rows (or of
 * its columns when C is wider than tall), the blocks whole multiples of SPLIT_ALIGN lines so
 * that only the last one has BLIS's partial micro-tiles. */
enum { SPLIT_ALIGN = 32 };

typedef struct split_product {
    bool trans_a, trans_b, by_rows;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
} split_product;

static void split_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const split_product *s = ctx;
    int64_t lines = s->by_rows ? s->m : s->n;
    int64_t first = lo * SPLIT_ALIGN, last = hi * SPLIT_ALIGN < lines ? hi * SPLIT_ALIGN : lines;
    if (last <= first)
        return;
    if (s->by_rows) /* rows [first, last) of C: the same rows of op(A) */
        blis_product(s->trans_a, s->trans_b, last - first, s->n, s->k, s->alpha,
                     s->a + first * (s->trans_a ? 1 : s->lda), s->lda, s->b, s->ldb, s->beta,
                     s->c + first * s->ldc, s->ldc, 1);
    else /* columns [first, last) of C: the same columns of op(B) */
        blis_product(s->trans_a, s->trans_b, s->m, last - first, s->k, s->alpha, s->a, s->lda,
                     s->b + first * (s->trans_b ? s->ldb : 1), s->ldb, s->beta, s->c + first,
                     s->ldc, 1);
}

void dn_sgemm_blis(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                   int64_t ldc, int threads)
{
    if (m == 0 || n == 0)
        return;
    dn_blis_start();
    if (k > 0 && as_gemv(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads))
        return;
    if (threads > 1 && dn_parallel_leading() > 1) { /* the crew takes at most its size */
        bool by_rows = m >= n;
        split_product s = { .trans_a = trans_a,
                            .trans_b = trans_b,
                            .by_rows = by_rows,
                            .m = m,
                            .n = n,
                            .k = k,
                            .lda = lda,
                            .ldb = ldb,
                            .ldc = ldc,
                            .alpha = alpha,
                            .beta = beta,
                            .a = a,
                            .b = b,
                            .c = c };
        int64_t blocks = ((by_rows ? m : n) + SPLIT_ALIGN - 1) / SPLIT_ALIGN;
        dn_parallel_for(blocks, threads < blocks ? threads : (int)blocks, split_range, &s);
        return;
    }
    blis_product(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
}

bool dn_gemm_streams(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha)
{
    (void)trans_b; /* either way: dn_gemm_rows or dn_gemm_rows_t */
    return !trans_a && m >= 2 && m <= ROWS_MAX_M && n > 0 && k > 0 && alpha == 1.0f &&
           n * k >= ROWS_MIN_B && dn_gemm_rows_available();
}

void dn_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc, int threads)
{
    if (dn_gemm_streams(trans_a, trans_b, m, n, k, alpha)) {
        (trans_b ? dn_gemm_rows_t : dn_gemm_rows)(m, n, k, a, lda, b, ldb, beta, c, ldc, threads);
        return;
    }
    dn_sgemm_blis(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
}

int dn_blis_describe(char *buf, size_t size)
{
    dn_blis_start();
    const char *threading = bli_info_get_enable_openmp()     ? "openmp"
                            : bli_info_get_enable_pthreads() ? "pthreads"
                                                             : "no";
    return snprintf(buf, size, "%s (%s, %s threading%s%s)", bli_info_get_version_str(),
                    bli_arch_string(bli_arch_query_id()), threading, blis_choice[0] ? "; " : "",
                    blis_choice);
}

void dn_ukernel_get(dn_ukernel *u)
{
    dn_blis_start(); /* the context is read-only once made */
    cntx_t *cntx = bli_gks_query_cntx();
    u->mr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, cntx);
    u->nr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, cntx);
    u->fn = (void *)bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, cntx);
    u->cntx = cntx;
}

int64_t dn_packed_size(int64_t rows, int64_t k, int r) { return (rows + r - 1) / r * r * k; }

/* Panels of r lines (rows of A, columns of B): line l of the source is src + l·ls, its
 * k elements es apart. */
static void pack_panels(const float *src, int64_t ls, int64_t es, int64_t lines, int64_t k, int r,
                        float *restrict dst)
{
    for (int64_t q = 0; q < lines; q += r) {
        int64_t full = lines - q < r ? lines - q : r;
        for (int64_t p = 0; p < k; p++) {
            float *restrict d = dst + p * r;
            for (int64_t l = 0; l < full; l++)
                d[l] = src[(q + l) * ls + p * es];
            for (int64_t l = full; l < r; l++)
                d[l] = 0.0f;
        }
        dst += r * k;
    }
}

void dn_pack_a(const dn_ukernel *u, const float *a, int64_t rs, int64_t cs, int64_t m, int64_t k,
               float *pa)
{
    pack_panels(a, rs, cs, m, k, u->mr, pa);
}

void dn_pack_b(const dn_ukernel *u, const float *b, int64_t rs, int64_t cs, int64_t k, int64_t n,
               float *pb)
{
    pack_panels(b, cs, rs, n, k, u->nr, pb);
}

void dn_gemm_packed(const dn_ukernel *u, int64_t m, int64_t n, int64_t k, const float *pa,
                    const float *pb, float beta, float *c, int64_t rs_c, int64_t cs_c)
{
    sgemm_ukr_ft kernel = (sgemm_ukr_ft)u->fn;
    float one = 1.0f;
    auxinfo_t aux = { 0 };
    /* Column panels outside: one B panel stays in cache while every A panel passes. */
    for (int64_t j = 0; j < n; j += u->nr) {
        const float *b = pb + j * k;
        for (int64_t i = 0; i < m; i += u->mr) {
            const float *a = pa + i * k;
            bli_auxinfo_set_next_a((void *)a, &aux);
            bli_auxinfo_set_next_b((void *)b, &aux);
            kernel(m - i < u->mr ? m - i : u->mr, n - j < u->nr ? n - j : u->nr, k, &one,
                   (float *)a, (float *)b, &beta, c + i * rs_c + j * cs_c, rs_c, cs_c, &aux,
                   u->cntx);
        }
    }
}

/* ---------------------------------------------------------------- small products, own threads
 *
 * BLIS's thread team waits at its barriers by spinning without yielding. When more threads
 * are runnable than there are cores (two trainings at once on 2 cores, each with 2 threads) a
 * spinning thread can burn its whole time slice waiting for a partner that is not running:
 * with BLIS's skx kernels, which have no path of their own for small products, two LeNet-5
 * trainings at once took 850 ms a step instead of 8 (docs/performance.md). The products of
 * LeNet-5's and SimpleConvNet's Affine layers are small enough to run on BLIS's micro-kernel
 * with dagnet's own threads instead, whose waits are OpenMP's (GOMP_SPINCOUNT, then sleep).
 * The threads split the longer side in panels: with more column panels than row panels, A is
 * packed once, shared (each thread packs a share of its panels, then all wait at one
 * barrier), and each thread packs its own B panels one at a time into its slot and runs every
 * panel of A against each; with more row panels, the same with A and B's roles swapped. */

/* The work of an Affine-sized product, in multiply-adds, up to which dn_gemm_small runs it. */
#define SMALL_MAX_MACS ((int64_t)1 << 26)
/* ... and from which it splits the product across threads: below it a second thread's
 * start, shared packing and barrier cost more than its half saves (LeNet-5's fc3, 84 K
 * multiply-adds a product: forward and backward 0.055 ms a step split on 2 threads, 0.030
 * on one). Since a step's loops go to a crew (runtime/parallel.h) a split costs a hand-over,
 * not a region: fc2 (1 M) split took the serial stretch from fc1's forward to its backward
 * from ~115 to ~45 µs a step (2 threads, 3 runs, 13:22 UTC). */
#define SMALL_PARALLEL_MIN ((int64_t)1 << 19)

bool dn_gemm_small_fits(int64_t m, int64_t n, int64_t k)
{
    return m > 0 && n > 0 && k > 0 && m <= SMALL_MAX_MACS / n / k;
}

/* 64-byte aligned (BLIS's micro-kernels load packed operands with aligned loads), in floats. */
static int64_t round16(int64_t floats) { return (floats + 15) / 16 * 16; }

/* The workspace: the shared pack of either operand, then one panel slot per thread. */
static int64_t small_shared(const dn_ukernel *u, int64_t m, int64_t n, int64_t k)
{
    int64_t a = round16(dn_packed_size(m, k, u->mr)), b = round16(dn_packed_size(n, k, u->nr));
    return a > b ? a : b;
}

static int64_t small_slot(const dn_ukernel *u, int64_t k)
{
    return round16(k * (u->mr > u->nr ? u->mr : u->nr));
}

size_t dn_gemm_small_work(int64_t m, int64_t n, int64_t k, int threads)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    int64_t floats = small_shared(&u, m, n, k) + (threads > 1 ? threads : 1) * small_slot(&u, k);
    return (size_t)floats * sizeof(float) + 64;
}

typedef struct small_product {
    const dn_ukernel *u;
    int64_t m, n, k;
    const float *a, *b;
    int64_t a_rs, a_cs, b_rs, b_cs; /* A's element (i, p) at a[i·a_rs + p·a_cs]; B's likewise */
    float beta, *c;
    int64_t ldc;
    float *shared, *slots; /* the shared pack; the threads' panel slots, `slot` floats apart */
    int64_t slot;
    bool by_columns; /* the threads split B's column panels (else A's row panels) */
} small_product;

/* This range's share of the shared operand's panels, packed; then all wait. */
static void pack_shared_share(const small_product *s, const dn_part *part)
{
    const dn_ukernel *u = s->u;
    int t = part->slot, team = part->team;
    int64_t lines = s->by_columns ? s->m : s->n, r = s->by_columns ? u->mr : u->nr;
    int64_t panels = (lines + r - 1) / r;
    int64_t lo = panels * t / team * r, hi = panels * (t + 1) / team * r;
    hi = hi < lines ? hi : lines;
    if (hi > lo) {
        if (s->by_columns)
            dn_pack_a(u, s->a + lo * s->a_rs, s->a_rs, s->a_cs, hi - lo, s->k,
                      s->shared + lo * s->k);
        else
            dn_pack_b(u, s->b + lo * s->b_cs, s->b_rs, s->b_cs, s->k, hi - lo,
                      s->shared + lo * s->k);
    }
    dn_part_barrier(part);
}

/* Panels [lo, hi) of the split side, each packed into this thread's slot and run against the
 * whole shared operand. */
static void small_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const small_product *s = ctx;
    const dn_ukernel *u = s->u;
    pack_shared_share(s, part);
    float *own = s->slots + part->slot * s->slot;
    for (int64_t panel = lo; panel < hi; panel++)
        if (s->by_columns) {
            int64_t j = panel * u->nr, cols = s->n - j < u->nr ? s->n - j : u->nr;
            dn_pack_b(u, s->b + j * s->b_cs, s->b_rs, s->b_cs, s->k, cols, own);
            dn_gemm_packed(u, s->m, cols, s->k, s->shared, own, s->beta, s->c + j, s->ldc, 1);
        } else {
            int64_t i = panel * u->mr, rows = s->m - i < u->mr ? s->m - i : u->mr;
            dn_pack_a(u, s->a + i * s->a_rs, s->a_rs, s->a_cs, rows, s->k, own);
            dn_gemm_packed(u, rows, s->n, s->k, own, s->shared, s->beta, s->c + i * s->ldc, s->ldc,
                           1);
        }
}

void dn_gemm_small(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                   int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                   void *work, int threads)
{
    if (m == 0 || n == 0)
        return;
    dn_blis_start();
    dn_ukernel u;
    dn_ukernel_get(&u);
    float *shared = (float *)(((uintptr_t)work + 63) / 64 * 64);
    int64_t row_panels = (m + u.mr - 1) / u.mr, col_panels = (n + u.nr - 1) / u.nr;
    bool by_columns = col_panels >= row_panels;
    small_product s = { .u = &u,
                        .m = m,
                        .n = n,
                        .k = k,
                        .a = a,
                        .b = b,
                        .a_rs = trans_a ? 1 : lda,
                        .a_cs = trans_a ? lda : 1,
                        .b_rs = trans_b ? 1 : ldb,
                        .b_cs = trans_b ? ldb : 1,
                        .beta = beta,
                        .c = c,
                        .ldc = ldc,
                        .shared = shared,
                        .slots = shared + small_shared(&u, m, n, k),
                        .slot = small_slot(&u, k),
                        .by_columns = by_columns };
    int64_t panels = by_columns ? col_panels : row_panels;
    int team = dn_team(threads, m * n * k, SMALL_PARALLEL_MIN);
    dn_parallel_for(panels, team < panels ? team : (int)panels, small_range, &s);
}
