/*
 * global_avg_pool.c — GlobalAvgPool: the mean of each [H, W] plane.
 *
 *   x [N, C, H, W]     y [N, C, 1, 1]
 *   y[n,c] = (1 / (H·W)) · Σ_{h,w} x[n,c,h,w]
 *   dx[n,c,h,w] += dy[n,c] / (H·W)
 *
 * PyTorch's F.adaptive_avg_pool2d(x, 1) (or x.mean((2, 3), keepdim=True)). Each plane's sum
 * runs in double: a plane may hold many thousands of values, and the sum of one float
 * accumulator would lose the low bits of each. NaN and Inf propagate through the sum as
 * through PyTorch's mean; backward spreads dy whatever it holds. No attrs.
 *
 * Threads split the N·C planes (whole planes each: no two write one output or one dx) once
 * the input is large enough (AvgPool's threshold, ops/avgpool.c).
 */
#include "ops/op.h"
#include "runtime/parallel.h"

#define GLOBAL_AVG_POOL_PARALLEL_MIN 32768

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    (void)attrs;
    dn_status st;
    if ((st = dn_expect_f32(c, in, 0)) || (st = dn_expect_rank(c, in, 0, 4)))
        return st;
    const dn_shape *x = &in[0].shape;
    int64_t dims[4] = { x->d[0], x->d[1], 1, 1 };
    *out = (dn_tensor_desc){ DN_F32, dn_shape_make(4, dims, x->batched) };
    return DN_OK;
}

/* One add per input value. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)attrs, (void)n_in, (void)out;
    return dn_shape_numel(&in[0].shape);
}

static void forward_planes(const float *x, float *y, int64_t plane, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        const float *p = x + i * plane;
        double sum = 0.0;
        for (int64_t j = 0; j < plane; j++)
            sum += p[j];
        y[i] = (float)(sum / (double)plane);
    }
}

static void backward_planes(const float *dy, float *dx, int64_t plane, int64_t lo, int64_t hi)
{
    float scale = 1.0f / (float)plane;
    for (int64_t i = lo; i < hi; i++) {
        float share = dy[i] * scale;
        float *d = dx + i * plane;
        for (int64_t j = 0; j < plane; j++)
            d[j] += share;
    }
}

/* A loop's context: the array read, the array written, and the plane's size. */
typedef struct planes_ctx {
    const float *src;
    float *dst;
    int64_t plane;
} planes_ctx;

static void forward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const planes_ctx *j = ctx;
    (void)part;
    forward_planes(j->src, j->dst, j->plane, lo, hi);
}

static void backward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const planes_ctx *j = ctx;
    (void)part;
    backward_planes(j->src, j->dst, j->plane, lo, hi);
}

static int team(int64_t planes, int64_t plane, int threads)
{
    return planes > 1 ? dn_team(threads, planes * plane, GLOBAL_AVG_POOL_PARALLEL_MIN) : 1;
}

static void forward(const dn_kernel *k)
{
    const dn_shape *s = &k->x[0].shape;
    int64_t planes = s->d[0] * s->d[1], plane = s->d[2] * s->d[3];
    const float *x = dn_f32(&k->x[0]);
    float *y = dn_f32(k->y);
    dn_parallel_for(planes, team(planes, plane, k->threads), forward_job,
                    &(planes_ctx){ .src = x, .dst = y, .plane = plane });
}

static void backward(const dn_kernel *k)
{
    const dn_shape *s = &k->x[0].shape;
    int64_t planes = s->d[0] * s->d[1], plane = s->d[2] * s->d[3];
    const float *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    if (!dx)
        return;
    dn_parallel_for(planes, team(planes, plane, k->threads), backward_job,
                    &(planes_ctx){ .src = dy, .dst = dx, .plane = plane });
}

const dn_op dn_op_global_avg_pool = {
    .name = "GlobalAvgPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .parse_attrs = dn_attrs_none,
    .infer = infer,
    .flops = flops,
    .forward = forward,
    .backward = backward,
};
