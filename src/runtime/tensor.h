/*
 * tensor.h — shapes and tensors as the kernels see them.
 *
 * A dn_shape lists up to DN_MAX_RANK dimensions; `batched` says dim 0 is the batch (written
 * `null` in a model file, printed `N`). A dn_tensor is a view: dtype, shape and a pointer into
 * a buffer that someone else owns (the session's arenas). Element counts are computed with
 * overflow checks: a shape whose product does not fit in int64 is an error, not a crash.
 */
#ifndef DN_TENSOR_H
#define DN_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dagnet.h"

/* The largest single dimension a model may declare; keeps every index sum in int64. */
#define DN_MAX_DIM ((int64_t)1 << 40)

typedef struct dn_shape {
    int rank;
    bool batched;
    int64_t d[DN_MAX_RANK];
} dn_shape;

typedef struct dn_tensor_desc {
    dn_dtype dtype;
    dn_shape shape;
} dn_tensor_desc;

typedef struct dn_tensor {
    dn_dtype dtype;
    dn_shape shape;
    void *data;
} dn_tensor;

static inline float *dn_f32(const dn_tensor *t) { return (float *)t->data; }
static inline int32_t *dn_i32(const dn_tensor *t) { return (int32_t *)t->data; }

/* Element count; -1 when the product overflows int64. A rank-0 shape has one element. */
int64_t dn_shape_numel(const dn_shape *s);
/* Product of dims [from, rank); -1 on overflow. */
int64_t dn_shape_numel_from(const dn_shape *s, int from);
bool dn_shape_equal(const dn_shape *a, const dn_shape *b);
dn_shape dn_shape_make(int rank, const int64_t *dims, bool batched);
/* s with its batch dimension (when it has one) set to `batch`: a shape of one run. */
static inline dn_shape dn_shape_at_batch(dn_shape s, int64_t batch)
{
    if (s.batched)
        s.d[0] = batch;
    return s;
}

/* a*b, false when it would overflow int64 or either is negative. */
bool dn_mul_ok(int64_t a, int64_t b, int64_t *out);
/* a*b, or INT64_MAX when it would overflow int64 or either is negative (so an overflowed
 * dn_shape_numel, -1, saturates too). For counts that may be absurd but must not wrap: flops
 * of loadable shapes, a kernel area of 2^40 × 2^40. */
int64_t dn_mul_sat(int64_t a, int64_t b);

/* Writes e.g. "[N,256,5,5]" (batch dim as N) into buf; returns buf. */
char *dn_shape_str(const dn_shape *s, char *buf, size_t size);
#define DN_SHAPE_STR_MAX 192

size_t dn_dtype_size(dn_dtype t);
const char *dn_dtype_name(dn_dtype t); /* "float32", "int32", "int64" */

/* Whether the n floats at x are all finite (no NaN, no ±Inf): their exponent bits compared as
 * integers and OR-ed, a loop GCC vectorises where a float sum would need -ffast-math. */
bool dn_all_finite(const float *x, int64_t n);

#endif
