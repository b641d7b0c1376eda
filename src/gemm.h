/*
 * gemm.h — every matrix product in dagnet goes through here, to BLIS.
 *
 *   C[m×n] = alpha · op(A) · op(B) + beta · C      op(X) = X or Xᵀ
 *
 * Matrices are row-major with leading dimensions lda, ldb, ldc (elements between rows of the
 * stored, untransposed matrix). `threads` is passed to BLIS through a per-call runtime object,
 * so no global BLIS state is touched and two sessions can use different counts. Call with
 * threads = 1 from inside an OpenMP region: BLIS threads are never nested in OpenMP's.
 */
#ifndef DN_GEMM_H
#define DN_GEMM_H

#include <stdbool.h>
#include <stdint.h>

void dn_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc, int threads);

#endif
