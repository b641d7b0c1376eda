/*
 * avgpool.c — AvgPool: the mean of each window, channel by channel.
 *
 *   x [N, C, H, W]     y [N, C, OH, OW]     OH = floor((H + 2·pad_h − kh) / stride_h) + 1
 *
 *   y[n,c,p,q] = (1 / (kh·kw)) · Σ x[n, c, h, w] over the window rows h ∈ [p·sh − ph, p·sh −
 *                ph + kh) and columns w ∈ [q·sw − pw, q·sw − pw + kw) that lie inside the image
 *   dx[n,c,h,w] += Σ dy[n,c,p,q] / (kh·kw) over the windows that contain (h, w)
 *
 * Padding counts as zeros: the divisor is always kh·kw (PyTorch count_include_pad=True), so
 * border outputs are smaller than the mean of their pixels. pad ≤ kernel/2 is required, as in
 * PyTorch; it also keeps at least one pixel in every window.
 *
 * attrs: kernel (required), stride (= kernel), pad (0); each an int or [h, w].
 */
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
                            "AvgPool needs a kernel size (an integer or [h, w]), found none");
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
    int64_t oh = dn_window_out(x->d[2], a->kernel[0], a->stride[0], a->pad[0]);
    int64_t ow = dn_window_out(x->d[3], a->kernel[1], a->stride[1], a->pad[1]);
    if (oh < 1 || ow < 1) {
        char xs[DN_SHAPE_STR_MAX];
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "kernel [%lld,%lld] with pad [%lld,%lld] does not fit input \"%s\" %s",
                            (long long)a->kernel[0], (long long)a->kernel[1],
                            (long long)a->pad[0], (long long)a->pad[1], c->input_names[0],
                            dn_shape_str(x, xs, sizeof xs));
    }
    int64_t dims[4] = { x->d[0], x->d[1], oh, ow };
    *out = (dn_tensor_desc){ DN_F32, dn_shape_make(4, dims, x->batched) };
    return DN_OK;
}

/* One add per window pixel. */
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

static void avg_plane(const pool_geom *g, const float *x, float *y)
{
    float scale = 1.0f / ((float)g->kh * (float)g->kw);
    for (int64_t p = 0; p < g->oh; p++) {
        int64_t h0, h1;
        window(p, g->kh, g->sh, g->ph, g->h, &h0, &h1);
        for (int64_t q = 0; q < g->ow; q++) {
            int64_t w0, w1;
            window(q, g->kw, g->sw, g->pw, g->w, &w0, &w1);
            float sum = 0.0f;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++)
                    sum += x[h * g->w + w];
            y[p * g->ow + q] = sum * scale;
        }
    }
}

static void avg_plane_grad(const pool_geom *g, const float *dy, float *dx)
{
    float scale = 1.0f / ((float)g->kh * (float)g->kw);
    for (int64_t p = 0; p < g->oh; p++) {
        int64_t h0, h1;
        window(p, g->kh, g->sh, g->ph, g->h, &h0, &h1);
        for (int64_t q = 0; q < g->ow; q++) {
            int64_t w0, w1;
            window(q, g->kw, g->sw, g->pw, g->w, &w0, &w1);
            float share = dy[p * g->ow + q] * scale;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++)
                    dx[h * g->w + w] += share;
        }
    }
}

static void forward(const dn_kernel *k)
{
    pool_geom g = geom(k->attrs, &k->x[0].shape, &k->y->shape);
    const float *x = dn_f32(&k->x[0]);
    float *y = dn_f32(k->y);
    int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
#pragma omp parallel for num_threads(k->threads) \
    if (g.planes * out_plane >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < g.planes; i++)
        avg_plane(&g, x + i * in_plane, y + i * out_plane);
}

/* Overlapping windows add onto shared pixels: threads split by plane, never inside one. */
static void backward(const dn_kernel *k)
{
    pool_geom g = geom(k->attrs, &k->x[0].shape, &k->y->shape);
    const float *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
    if (!dx)
        return;
#pragma omp parallel for num_threads(k->threads) \
    if (g.planes * out_plane >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < g.planes; i++)
        avg_plane_grad(&g, dy + i * out_plane, dx + i * in_plane);
}

const dn_op dn_op_avgpool = {
    .name = "AvgPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(pool_attrs),
    .parse_attrs = parse_attrs,
    .infer = infer,
    .flops = flops,
    .forward = forward,
    .backward = backward,
};
