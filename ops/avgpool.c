/*
 * avgpool.c — AvgPool: the mean of each window, channel by channel.
 *
 *   x [N, C, H, W]     y [N, C, OH, OW]     OH = floor((H + 2·pad_h − kh) / stride_h) + 1
 *
 *   y[n,c,p,q] = (1 / (kh·kw)) · Σ x[n, c, h, w] over the window rows h ∈ [p·sh − ph, p·sh −
 *                ph + kh) and columns w ∈ [q·sw − pw, q·sw − pw + kw) that lie inside the image
 *   dx[n,c,h,w] += Σ dy[n,c,p,q] / (kh·kw) over the windows that contain (h, w)
 *
 * By default padding counts as zeros: the divisor is kh·kw (PyTorch count_include_pad=True),
 * so border outputs are smaller than the mean of their pixels. pad ≤ kernel/2 is required, as
 * in PyTorch; it also keeps at least one pixel in every window. With ceil, the last window may
 * run past the image and its padding: its divisor counts only its part inside input + padding,
 *   divisor = (min(p·sh − ph + kh, H + ph) − (p·sh − ph)) · (the same for columns)
 * which is kh·kw for every other window (PyTorch's avg_pool2d with ceil_mode=True). With
 * count_include_pad false (ONNX's default) the divisor is the window's in-image part only,
 * (h1 − h0)·(w1 − w0), never 0 since pad ≤ kernel/2 keeps a pixel in every window.
 *
 * attrs: kernel (required), stride (= kernel), pad (0), each an int or [h, w]; ceil (false);
 * count_include_pad (true). All but the last, the output shape and the window clipping are
 * shared with MaxPool (pool.h). The 2×2, stride-2 window of the classic LeNet has loops of its
 * own, with no window arithmetic (and no padding, so count_include_pad does not matter there).
 */
#include "ops/pool.h"
#include "runtime/parallel.h"

/* ---------------------------------------------------------------- attrs and shapes */

/* The shared window attrs first, so that pool.h's helpers read them through the same
 * pointer. */
typedef struct avgpool_attrs {
    dn_pool_attrs pool;
    bool count_include_pad;
} avgpool_attrs;

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    avgpool_attrs *a = attrs;
    dn_status st = dn_pool_parse_attrs(c, "AvgPool", &a->pool);
    return st ? st : dn_attr_bool(c, "count_include_pad", true, &a->count_include_pad);
}

/* One add per window pixel. A kernel may be far larger than the image it pads (H = 1,
 * kernel 2^40, pad 2^39 fits), so its area and the count saturate instead of overflowing. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)in, (void)n_in;
    const avgpool_attrs *a = attrs;
    return dn_mul_sat(dn_mul_sat(a->pool.kernel[0], a->pool.kernel[1]),
                      dn_shape_numel(&out->shape));
}

/* ---------------------------------------------------------------- kernels */

/* The window's extent along one dim that the divisor counts: inside input + padding. */
static int64_t counted(int64_t o, int64_t k, int64_t stride, int64_t pad, int64_t size)
{
    int64_t start = o * stride - pad, end = start + k < size + pad ? start + k : size + pad;
    return end - start;
}

/* 1 / the divisor of output (p, q), whose window is clipped to rows [h0, h1) and columns
 * [w0, w1) of the input: with the padding counted, kh·kw but for a window that ceil lets run
 * past the padding; without, the in-image part. */
static inline float avg_scale(const dn_pool_geom *g, bool include, int64_t p, int64_t q, int64_t h0,
                              int64_t h1, int64_t w0, int64_t w1)
{
    return include ? 1.0f / ((float)counted(p, g->kh, g->sh, g->ph, g->h) *
                             (float)counted(q, g->kw, g->sw, g->pw, g->w))
                   : 1.0f / ((float)(h1 - h0) * (float)(w1 - w0));
}

static void avg_plane(const dn_pool_geom *g, bool include, const float *x, float *y)
{
    for (int64_t p = 0; p < g->oh; p++) {
        int64_t h0, h1;
        dn_pool_window(p, g->kh, g->sh, g->ph, g->h, &h0, &h1);
        for (int64_t q = 0; q < g->ow; q++) {
            int64_t w0, w1;
            dn_pool_window(q, g->kw, g->sw, g->pw, g->w, &w0, &w1);
            float sum = 0.0f;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++)
                    sum += x[h * g->w + w];
            y[p * g->ow + q] = sum * avg_scale(g, include, p, q, h0, h1, w0, w1);
        }
    }
}

static void avg_plane_grad(const dn_pool_geom *g, bool include, const float *dy, float *dx)
{
    for (int64_t p = 0; p < g->oh; p++) {
        int64_t h0, h1;
        dn_pool_window(p, g->kh, g->sh, g->ph, g->h, &h0, &h1);
        for (int64_t q = 0; q < g->ow; q++) {
            int64_t w0, w1;
            dn_pool_window(q, g->kw, g->sw, g->pw, g->w, &w0, &w1);
            float share = dy[p * g->ow + q] * avg_scale(g, include, p, q, h0, h1, w0, w1);
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++)
                    dx[h * g->w + w] += share;
        }
    }
}

/* The 2×2, stride-2 window: one output row from input rows r0 and r1, summed in the order
 * avg_plane sums (from 0, row-major) so the results are the same to the bit. */
static void avg_row_2x2(const float *restrict r0, const float *restrict r1, float *restrict y,
                        int64_t ow)
{
    for (int64_t q = 0; q < ow; q++)
        y[q] = (0.0f + r0[2 * q] + r0[2 * q + 1] + r1[2 * q] + r1[2 * q + 1]) * 0.25f;
}

/* Each input pixel lies in one window at most: its rows d0 and d1 take a quarter of dy. */
static void avg_row_grad_2x2(const float *restrict dy, float *restrict d0, float *restrict d1,
                             int64_t ow)
{
    for (int64_t q = 0; q < ow; q++) {
        float share = dy[q] * 0.25f;
        d0[2 * q] += share;
        d0[2 * q + 1] += share;
        d1[2 * q] += share;
        d1[2 * q + 1] += share;
    }
}

/* Two threads measured 1.2–1.7× faster from 32 Ki input pixels. */
#define AVGPOOL_PARALLEL_MIN 32768

/* Threads split the N·C planes: whole planes each, so no two write one output or one dx. */
static int team(const dn_pool_geom *g, int threads)
{
    return g->planes > 1 ? dn_team(threads, g->planes * g->h * g->w, AVGPOOL_PARALLEL_MIN) : 1;
}

static void forward_planes(const dn_pool_geom *g, bool include, const float *x, float *y,
                           int64_t lo, int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    for (int64_t i = lo; i < hi; i++) {
        const float *xp = x + i * in_plane;
        float *yp = y + i * out_plane;
        if (!dn_pool_is_2x2(g)) {
            avg_plane(g, include, xp, yp);
            continue;
        }
        for (int64_t p = 0; p < g->oh; p++)
            avg_row_2x2(xp + 2 * p * g->w, xp + (2 * p + 1) * g->w, yp + p * g->ow, g->ow);
    }
}

static void backward_planes(const dn_pool_geom *g, bool include, const float *dy, float *dx,
                            int64_t lo, int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    for (int64_t i = lo; i < hi; i++) {
        const float *dyp = dy + i * out_plane;
        float *dxp = dx + i * in_plane;
        if (!dn_pool_is_2x2(g)) {
            avg_plane_grad(g, include, dyp, dxp);
            continue;
        }
        for (int64_t p = 0; p < g->oh; p++)
            avg_row_grad_2x2(dyp + p * g->ow, dxp + 2 * p * g->w, dxp + (2 * p + 1) * g->w, g->ow);
    }
}

/* A loop's context: the geometry, count_include_pad, the array read and the array written. */
typedef struct planes_ctx {
    const dn_pool_geom *g;
    bool include;
    const float *src;
    float *dst;
} planes_ctx;

static void forward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const planes_ctx *j = ctx;
    (void)part;
    forward_planes(j->g, j->include, j->src, j->dst, lo, hi);
}

static void backward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const planes_ctx *j = ctx;
    (void)part;
    backward_planes(j->g, j->include, j->src, j->dst, lo, hi);
}

static void forward(const dn_kernel *k)
{
    const avgpool_attrs *a = k->attrs;
    dn_pool_geom g = dn_pool_geom_of(&a->pool, &k->x[0].shape, &k->y->shape);
    bool include = a->count_include_pad;
    dn_parallel_for(
        g.planes, team(&g, k->threads), forward_job,
        &(planes_ctx){ .g = &g, .include = include, .src = dn_f32(&k->x[0]), .dst = dn_f32(k->y) });
}

/* Overlapping windows add onto shared pixels: threads split by plane, never inside one. */
static void backward(const dn_kernel *k)
{
    const avgpool_attrs *a = k->attrs;
    dn_pool_geom g = dn_pool_geom_of(&a->pool, &k->x[0].shape, &k->y->shape);
    bool include = a->count_include_pad;
    float *dx = dn_f32(&k->dx[0]);
    if (!dx)
        return;
    dn_parallel_for(g.planes, team(&g, k->threads), backward_job,
                    &(planes_ctx){ .g = &g, .include = include, .src = dn_f32(k->dy), .dst = dx });
}

const dn_op dn_op_avgpool = {
    .name = "AvgPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(avgpool_attrs),
    .parse_attrs = parse_attrs,
    .infer = dn_pool_infer,
    .flops = flops,
    .forward = forward,
    .backward = backward,
};
