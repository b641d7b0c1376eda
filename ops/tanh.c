/*
 * tanh.c — hyperbolic tangent, elementwise.
 *
 *   y = tanh(x)                        x, y: any shape, float32
 *   dx += dy · (1 − y²)                (from y alone, so y may overwrite x in place)
 *
 * tanhf saturates to ±1 for large |x| without overflow. No attrs.
 */
#include <math.h>

#include "op.h"

static void forward(const dn_kernel *k)
{
    const float *x = dn_f32(&k->x[0]);
    float *y = dn_f32(k->y);
    int64_t n = dn_shape_numel(&k->y->shape);
#pragma omp parallel for num_threads(k->threads) if (n >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        y[i] = tanhf(x[i]);
}

static void backward(const dn_kernel *k)
{
    const float *y = dn_f32(k->y), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    int64_t n = dn_shape_numel(&k->y->shape);
#pragma omp parallel for num_threads(k->threads) if (n >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

const dn_op dn_op_tanh = {
    .name = "Tanh",
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
