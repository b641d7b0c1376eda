/*
 * gemm.h — every matrix product in dagnet goes through here, to BLIS.
 *
 *   C[m×n] = alpha · op(A) · op(B) + beta · C      op(X) = X or Xᵀ
 *
 * Matrices are row-major with leading dimensions lda, ldb, ldc (elements between rows of the
 * stored, untransposed matrix). `threads` is passed to BLIS through a per-call runtime object,
 * so no global BLIS state is touched and two sessions can use different counts. Call with
 * threads = 1 from inside an OpenMP region: BLIS threads are never nested in OpenMP's. A
 * crew's leader (runtime/parallel.h) may pass its threads: the product is split across the
 * crew as one-thread BLIS products (dn_sgemm_blis).
 */
#ifndef DN_GEMM_H
#define DN_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Starts BLIS once per process, first choosing its kernels when BLIS would fall back to its
 * portable ones on this CPU (gemm.c says when; it sets BLIS_ARCH_TYPE unless the process has).
 * Every entry here calls it; thread-safe. */
void dn_blis_start(void);

/* BLIS as this process runs it, for dn_build_info: its version, the sub-configuration it chose
 * for this CPU (e.g. "haswell"), its threading model ("openmp", "pthreads" or "no") and, when
 * dagnet chose the sub-configuration, with which value and why:
 * "0.9.0 (skx, openmp threading; set by dagnet as BLIS_ARCH_TYPE=0: ...)" into buf[0..size)
 * like snprintf (whose count it returns). */
int dn_blis_describe(char *buf, size_t size);

void dn_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc, int threads);

/* dn_sgemm without the streamed path below: BLIS for every product of two rows and columns or
 * more (the profile's "BLIS sgemm on the same products" reference). */
void dn_sgemm_blis(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                   int64_t ldc, int threads);

/* C [m×n] = A [m×k] · B [k×n] + beta · C, row-major, streaming B once (gemm_rows.c): for a few
 * rows of A (2 ≤ m ≤ 16) against a large B, which BLIS would pack first. AVX-512 machines
 * only (dn_gemm_rows_available); dn_sgemm takes it by itself where it pays. */
bool dn_gemm_rows_available(void);
void dn_gemm_rows(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                  int64_t ldb, float beta, float *c, int64_t ldc, int threads);
/* The same with B transposed: C [m×n] = A [m×k] · Bᵀ + beta · C, B [n×k] row-major (Affine's
 * dx = dy · Wᵀ at a small batch), every row of B read once from memory. */
void dn_gemm_rows_t(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                    int64_t ldb, float beta, float *c, int64_t ldc, int threads);

/* ---- products run one per thread, inside the caller's OpenMP region ----
 *
 * A call to dn_sgemm opens BLIS's own thread team; many small products (one per sample)
 * would pay that each time, and could not run side by side on different threads without
 * nesting teams. For those, the caller packs the operands in BLIS's micro-panel format and
 * dn_gemm_packed runs BLIS's micro-kernel over them, on the calling thread only:
 *
 *   packed A: ceil(m / mr) panels, panel q holds rows q·mr .. q·mr + mr − 1 of A [m×k] as
 *             k columns of mr floats (pa[q·mr·k + p·mr + i] = A[q·mr + i][p]; zero past m)
 *   packed B: ceil(n / nr) panels, panel q holds columns q·nr .. of B [k×n] as k rows of
 *             nr floats (pb[q·nr·k + p·nr + j] = B[p][q·nr + j]; zero past n)
 *
 * mr and nr are the micro-kernel's (6 and 16 for AVX2 machines). There is no blocking of k:
 * a micro-kernel call streams an A panel and a B panel of k floats each from L2, which keeps
 * up with the FMA units to k of a few thousand (AlexNet's convs, K up to 3456, run at or above
 * BLIS's own speed this way: ops/conv.h). */
typedef struct dn_ukernel {
    int mr, nr;
    void *fn;   /* BLIS's sgemm micro-kernel */
    void *cntx; /* BLIS's context for this machine */
} dn_ukernel;

/* The micro-kernel BLIS chose for this machine. Thread-safe. */
void dn_ukernel_get(dn_ukernel *u);

/* Floats of a packed A [m×k] (or B [k×n] with nr) */
int64_t dn_packed_size(int64_t rows, int64_t k, int r);

/* pa = pack of A, element (i, p) at a[i·rs + p·cs]. */
void dn_pack_a(const dn_ukernel *u, const float *a, int64_t rs, int64_t cs, int64_t m, int64_t k,
               float *pa);
/* pb = pack of B, element (p, j) at b[p·rs + j·cs]. */
void dn_pack_b(const dn_ukernel *u, const float *b, int64_t rs, int64_t cs, int64_t k, int64_t n,
               float *pb);

/* C[m×n] = A·B + beta·C from packed operands; C's element (i, j) at c[i·rs_c + j·cs_c]. */
void dn_gemm_packed(const dn_ukernel *u, int64_t m, int64_t n, int64_t k, const float *pa,
                    const float *pb, float beta, float *c, int64_t rs_c, int64_t cs_c);

/* C [m×n] = op(A) · op(B) + beta · C (row-major, as dn_sgemm with alpha = 1) on BLIS's
 * micro-kernel with the caller's threads instead of BLIS's thread team, whose barriers spin
 * without yielding (gemm.c): for products up to dn_gemm_small_fits, as the Affine layers of
 * LeNet-5 and SimpleConvNet. work holds dn_gemm_small_work(m, n, k, threads) bytes. */
bool dn_gemm_small_fits(int64_t m, int64_t n, int64_t k);
/* Whether dn_sgemm streams this product through dn_gemm_rows or dn_gemm_rows_t (few rows of
 * A, a large B, A not transposed, alpha 1, AVX-512): a caller choosing between dn_gemm_small
 * and dn_sgemm asks this first, since dn_gemm_small would pack all of B (AlexNet's fc8 at
 * batch 16: 16 MB). */
bool dn_gemm_streams(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha);
size_t dn_gemm_small_work(int64_t m, int64_t n, int64_t k, int threads);
void dn_gemm_small(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                   int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                   void *work, int threads);

#endif
