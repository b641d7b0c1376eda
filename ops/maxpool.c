/*
 * maxpool.c — MaxPool: the largest value of each window, channel by channel.
 *
 *   x [N, C, H, W]     y [N, C, OH, OW]     OH = floor((H + 2·pad_h − kh) / stride_h) + 1
 *
 *   y[n,c,p,q] = max x[n, c, h, w] over the window rows h ∈ [p·sh − ph, p·sh − ph + kh) and
 *                columns w ∈ [q·sw − pw, q·sw − pw + kw) that lie inside the image
 *   dx[n,c,h,w] += Σ dy[n,c,p,q] over the windows whose max was (h, w)
 *
 * Padding never wins the max: windows are clipped to the image rather than filled with zeros
 * or −inf. With pad ≤ kernel/2 (checked, as PyTorch does) every clipped window keeps at least
 * one pixel, so every output has a real argmax. Forward saves that argmax (int32 index in the
 * H·W plane, one per output element) for backward to scatter dy onto. Ties go to the first
 * pixel in row-major order; a NaN wins, as in PyTorch, so divergence shows downstream.
 *
 * attrs: kernel (required), stride (= kernel), pad (0); each an int or [h, w].
 */
#include <math.h>

#include "op.h"

typedef struct pool_attrs {
    int64_t kernel[2], stride[2], pad[2];
} pool_attrs;

typedef struct pool_geom {
    int64_t planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
} pool_geom;

static pool_geom geom(const pool_attrs *a, const dn_shape *x, const dn_shape *y)
{
    return (pool_geom){ .planes = x->d[0] * x->d[1], .h = x->d[2], .w = x->d[3],
                        .oh = y->d[2], .ow = y->d[3],
                        .kh = a->kernel[0], .kw = a->kernel[1],
                        .sh = a->stride[0], .sw = a->stride[1],
                        .ph = a->pad[0], .pw = a->pad[1] };
}

/* A kernel may be far larger than the image it pads (H = 1, kernel 2^40, pad 2^39 fits), so
 * its area and flop count saturate instead of overflowing. */
static int64_t mul_sat(int64_t a, int64_t b)
{
    int64_t r;
    return dn_mul_ok(a, b, &r) ? r : INT64_MAX;
}

/* ---------------------------------------------------------------- attrs and shapes */

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "kernel", "stride", "pad", NULL };
    pool_attrs *a = attrs;
    dn_status st;
    if ((st = dn_attrs_only(c, allowed)))
        return st;
    if (!dn_attr_present(c, "kernel"))
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/kernel",
                            "MaxPool needs a kernel size (an integer or [h, w]), found none");
    if ((st = dn_attr_int2(c, "kernel", 1, 1, DN_MAX_DIM, a->kernel)) ||
        (st = dn_attr_int2(c, "stride", 1, 1, DN_MAX_DIM, a->stride)) ||
        (st = dn_attr_int2(c, "pad", 0, 0, DN_MAX_DIM, a->pad)))
        return st;
    if (!dn_attr_present(c, "stride"))
        a->stride[0] = a->kernel[0], a->stride[1] = a->kernel[1];
    if (a->pad[0] > a->kernel[0] / 2 || a->pad[1] > a->kernel[1] / 2)
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/pad",
                            "pad [%lld,%lld] must be at most half the kernel [%lld,%lld] (the "
                            "rule PyTorch applies)",
                            (long long)a->pad[0], (long long)a->pad[1],
                            (long long)a->kernel[0], (long long)a->kernel[1]);
    return DN_OK;
}

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    const pool_attrs *a = attrs;
    dn_status st;
    if ((st = dn_expect_f32(c, in, 0)) || (st = dn_expect_rank(c, in, 0, 4)))
        return st;
    const dn_shape *x = &in[0].shape;
    char xs[DN_SHAPE_STR_MAX];
    dn_shape_str(x, xs, sizeof xs);
    int64_t oh = dn_window_out(x->d[2], a->kernel[0], a->stride[0], a->pad[0]);
    int64_t ow = dn_window_out(x->d[3], a->kernel[1], a->stride[1], a->pad[1]);
    if (oh < 1 || ow < 1)
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "kernel [%lld,%lld] with pad [%lld,%lld] does not fit input \"%s\" %s",
                            (long long)a->kernel[0], (long long)a->kernel[1],
                            (long long)a->pad[0], (long long)a->pad[1], c->input_names[0], xs);
    int64_t plane;
    if (!dn_mul_ok(x->d[2], x->d[3], &plane) || plane > INT32_MAX)
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "input \"%s\" %s has planes of more than 2^31 - 1 pixels, which the "
                            "int32 argmax cannot index",
                            c->input_names[0], xs);
    int64_t dims[4] = { x->d[0], x->d[1], oh, ow };
    *out = (dn_tensor_desc){ DN_F32, dn_shape_make(4, dims, x->batched) };
    return DN_OK;
}

static size_t saved_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                         const dn_tensor_desc *out)
{
    (void)attrs, (void)in, (void)n_in;
    return (size_t)dn_shape_numel(&out->shape) * sizeof(int32_t);
}

/* One compare per window pixel. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)in, (void)n_in;
    const pool_attrs *a = attrs;
    return mul_sat(mul_sat(a->kernel[0], a->kernel[1]), dn_shape_numel(&out->shape));
}

/* ---------------------------------------------------------------- kernels */

/* The input rows (or columns) [*lo, *hi) of window o, with the padding cut away. */
static void window(int64_t o, int64_t k, int64_t stride, int64_t pad, int64_t size, int64_t *lo,
                   int64_t *hi)
{
    int64_t start = o * stride - pad;
    *lo = start > 0 ? start : 0;
    *hi = start + k < size ? start + k : size;
}

static void max_plane(const pool_geom *g, const float *x, float *y, int32_t *arg)
{
    for (int64_t p = 0; p < g->oh; p++) {
        int64_t h0, h1;
        window(p, g->kh, g->sh, g->ph, g->h, &h0, &h1);
        for (int64_t q = 0; q < g->ow; q++) {
            int64_t w0, w1;
            window(q, g->kw, g->sw, g->pw, g->w, &w0, &w1);
            int64_t best = h0 * g->w + w0;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++)
                    if (x[h * g->w + w] > x[best] || isnan(x[h * g->w + w]))
                        best = h * g->w + w;
            y[p * g->ow + q] = x[best];
            arg[p * g->ow + q] = (int32_t)best;
        }
    }
}

static void forward(const dn_kernel *k)
{
    pool_geom g = geom(k->attrs, &k->x[0].shape, &k->y->shape);
    const float *x = dn_f32(&k->x[0]);
    float *y = dn_f32(k->y);
    int32_t *arg = k->saved;
    int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
#pragma omp parallel for num_threads(k->threads) \
    if (g.planes * out_plane >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < g.planes; i++)
        max_plane(&g, x + i * in_plane, y + i * out_plane, arg + i * out_plane);
}

/* Windows overlap when stride < kernel, so two outputs may share an argmax: threads split by
 * plane, never inside one. */
static void backward(const dn_kernel *k)
{
    pool_geom g = geom(k->attrs, &k->x[0].shape, &k->y->shape);
    const float *dy = dn_f32(k->dy);
    const int32_t *arg = k->saved;
    float *dx = dn_f32(&k->dx[0]);
    int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
    if (!dx)
        return;
#pragma omp parallel for num_threads(k->threads) \
    if (g.planes * out_plane >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < g.planes; i++)
        for (int64_t o = 0; o < out_plane; o++)
            dx[i * in_plane + arg[i * out_plane + o]] += dy[i * out_plane + o];
}

const dn_op dn_op_maxpool = {
    .name = "MaxPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(pool_attrs),
    .parse_attrs = parse_attrs,
    .infer = infer,
    .saved_size = saved_size,
    .flops = flops,
    .forward = forward,
    .backward = backward,
};
