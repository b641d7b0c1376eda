/*
 * sigmoid.c — the logistic function, elementwise.
 *
 *   y = 1 / (1 + e^−x)                 x, y: any shape, float32
 *   dx += dy · y · (1 − y)             (from y alone, so y may overwrite x in place)
 *
 * For x < 0 the same value is computed as e^x / (1 + e^x): e^−x would overflow for large |x|
 * and 1 − y would lose every digit of a tiny result. No attrs.
 */
#include <math.h>

#include "op.h"

static inline float sigmoid(float x)
{
    float e = expf(-fabsf(x)); /* in (0, 1]: never overflows */
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

static void forward(const dn_kernel *k)
{
    const float *x = dn_f32(&k->x[0]);
    float *y = dn_f32(k->y);
    int64_t n = dn_shape_numel(&k->y->shape);
#pragma omp parallel for num_threads(k->threads) if (n >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        y[i] = sigmoid(x[i]);
}

static void backward(const dn_kernel *k)
{
    const float *y = dn_f32(k->y), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    int64_t n = dn_shape_numel(&k->y->shape);
#pragma omp parallel for num_threads(k->threads) if (n >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

const dn_op dn_op_sigmoid = {
    .name = "Sigmoid",
    .min_inputs = 1,
    .max_inputs = 1,
    .parse_attrs = dn_attrs_none,
    .infer = dn_infer_unary,
    .flops = dn_flops_per_output,
    .forward = forward,
    .backward = backward,
    .inplace = true,
    .backward_reads_output = true,
};
