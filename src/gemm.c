/* gemm.c — row-major sgemm on BLIS's typed API with a per-call thread count (see gemm.h). */
#include "gemm.h"

#include <blis.h>

void dn_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc, int threads)
{
    if (m == 0 || n == 0)
        return;
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(threads > 0 ? threads : 1, &rntm);
    /* Row-major X with leading dimension ld: row stride ld, column stride 1. */
    bli_sgemm_ex(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 trans_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, lda, 1,
                 (float *)b, ldb, 1, &beta, c, ldc, 1, NULL, &rntm);
}
