/*
 * lrn.c — LRN: local response normalisation across channels (PyTorch LocalResponseNorm).
 *
 *   x [N, C, ...] (rank ≥ 3)     y: same shape     per sample and spatial position:
 *
 *   s_c = k + (alpha / size) · Σ_{c' ∈ W(c)} x_{c'}²      W(c) = [c − ⌊size/2⌋, c + ⌊(size−1)/2⌋]
 *   y_c = x_c · s_c^(−beta)
 * Channels of W(c) outside [0, C) count as zero, and the divisor stays `size` there.
 *
 * Gradient. x_j reaches y_j directly and every s_c whose window holds j:
 *   ∂y_c/∂x_j = [c = j] · s_j^(−beta)
 *               − beta · x_c · s_c^(−beta−1) · (2·alpha/size) · x_j · [j ∈ W(c)]
 * so with t_c = dy_c · x_c · s_c^(−beta−1):
 *   dx_j += dy_j · s_j^(−beta) − (2·alpha·beta / size) · x_j · Σ_{c ∈ M(j)} t_c
 *   M(j) = {c : j ∈ W(c)} = [j − ⌊(size−1)/2⌋, j + ⌊size/2⌋]
 * M is W mirrored: the two differ when size is even.
 *
 * Forward saves s (one float per element) for backward; the workspace holds t. Backward reads
 * x, not y, so a later op may overwrite y in place.
 *
 * attrs: size (5), alpha (1e-4, ≥ 0), beta (0.75), k (1, > 0). With alpha ≥ 0 and k > 0, s ≥ k
 * stays positive and its powers are finite.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "../src/parallel.h"
#include "op.h"

typedef struct lrn_attrs {
    int64_t size;
    double alpha, beta, k;
} lrn_attrs;

/* The tensor as planes: plane (n, c) holds the `inner` spatial values of channel c. */
typedef struct lrn_geom {
    int64_t n, c, inner;
} lrn_geom;

static lrn_geom geom(const dn_shape *x)
{
    return (lrn_geom){ x->d[0], x->d[1], dn_shape_numel_from(x, 2) };
}

/* Channels [*lo, *hi] of [c − before, c + after], clipped to [0, C). */
static void channel_span(int64_t c, int64_t before, int64_t after, int64_t channels,
                         int64_t *lo, int64_t *hi)
{
    *lo = c - before > 0 ? c - before : 0;
    *hi = c + after < channels - 1 ? c + after : channels - 1;
}

/* ---------------------------------------------------------------- attrs and shapes */

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "size", "alpha", "beta", "k", NULL };
    lrn_attrs *a = attrs;
    dn_status st;
    if ((st = dn_attrs_only(c, allowed)) ||
        (st = dn_attr_int(c, "size", 5, 1, DN_MAX_DIM, &a->size)) ||
        (st = dn_attr_number(c, "alpha", 1e-4, 0.0, DBL_MAX, &a->alpha)) ||
        (st = dn_attr_number(c, "beta", 0.75, -DBL_MAX, DBL_MAX, &a->beta)) ||
        (st = dn_attr_number(c, "k", 1.0, 0.0, DBL_MAX, &a->k)))
        return st;
    if (a->k == 0.0)
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/k",
                            "expected a positive number (it keeps the denominator away from "
                            "zero), found 0");
    return DN_OK;
}

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    (void)attrs;
    dn_status st;
    if ((st = dn_expect_f32(c, in, 0)))
        return st;
    if (in[0].shape.rank < 3) {
        char xs[DN_SHAPE_STR_MAX];
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "input \"%s\" must have rank 3 or more ([N, C, ...]), found %s",
                            c->input_names[0], dn_shape_str(&in[0].shape, xs, sizeof xs));
    }
    *out = in[0];
    return DN_OK;
}

static size_t buffer_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                          const dn_tensor_desc *out)
{
    (void)attrs, (void)n_in, (void)out;
    return (size_t)dn_shape_numel(&in[0].shape) * sizeof(float);
}

static size_t workspace_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                             const dn_tensor_desc *out, int threads)
{
    (void)threads;
    return buffer_size(attrs, in, n_in, out);
}

/* Per element: a multiply-add per window channel, then the scale, the power and the product. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)in, (void)n_in;
    const lrn_attrs *a = attrs;
    return dn_mul_sat(dn_shape_numel(&out->shape), 2 * a->size + 3);
}

/* ---------------------------------------------------------------- kernels */

/* s and y for plane (n, c). */
static void forward_plane(const lrn_attrs *a, const lrn_geom *g, int64_t plane, const float *x,
                          float *s, float *y)
{
    int64_t n = plane / g->c, c = plane % g->c, lo, hi;
    channel_span(c, a->size / 2, (a->size - 1) / 2, g->c, &lo, &hi);
    float *sp = s + plane * g->inner;
    memset(sp, 0, (size_t)g->inner * sizeof *sp);
    for (int64_t c2 = lo; c2 <= hi; c2++) {
        const float *x2 = x + (n * g->c + c2) * g->inner;
        for (int64_t i = 0; i < g->inner; i++)
            sp[i] += x2[i] * x2[i];
    }
    float scale = (float)(a->alpha / (double)a->size), k = (float)a->k, beta = (float)a->beta;
    const float *xp = x + plane * g->inner;
    float *yp = y + plane * g->inner;
    for (int64_t i = 0; i < g->inner; i++) {
        sp[i] = k + scale * sp[i];
        yp[i] = xp[i] * powf(sp[i], -beta);
    }
}

static void forward_planes(const lrn_attrs *a, const lrn_geom *g, const float *x, float *s,
                           float *y, int64_t lo, int64_t hi)
{
    for (int64_t p = lo; p < hi; p++)
        forward_plane(a, g, p, x, s, y);
}

static void forward(const dn_kernel *k)
{
    lrn_geom g = geom(&k->x[0].shape);
    int64_t planes = g.n * g.c;
    DN_PARALLEL_RANGE(planes, dn_team(k->threads, planes * g.inner, DN_PARALLEL_MIN), lo, hi,
                      forward_planes(k->attrs, &g, dn_f32(&k->x[0]), k->saved, dn_f32(k->y), lo,
                                     hi));
}

/* dx for plane (n, j), given t for every plane of sample n. */
static void backward_plane(const lrn_attrs *a, const lrn_geom *g, int64_t plane, const float *x,
                           const float *s, const float *dy, const float *t, float *dx)
{
    int64_t n = plane / g->c, j = plane % g->c, lo, hi, off = plane * g->inner;
    float beta = (float)a->beta, coef = (float)(2.0 * a->alpha * a->beta / (double)a->size);
    for (int64_t i = 0; i < g->inner; i++)
        dx[off + i] += dy[off + i] * powf(s[off + i], -beta);
    channel_span(j, (a->size - 1) / 2, a->size / 2, g->c, &lo, &hi);
    for (int64_t c = lo; c <= hi; c++) {
        const float *tc = t + (n * g->c + c) * g->inner;
        for (int64_t i = 0; i < g->inner; i++)
            dx[off + i] -= coef * x[off + i] * tc[i];
    }
}

/* t = dy · x · s^(−β−1), elements [lo, hi). */
static void scaled_grad(float beta, const float *x, const float *s, const float *dy, float *t,
                        int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++)
        t[i] = dy[i] * x[i] * powf(s[i], -beta - 1.0f);
}

static void backward_planes(const lrn_attrs *a, const lrn_geom *g, const float *x,
                            const float *s, const float *dy, const float *t, float *dx,
                            int64_t lo, int64_t hi)
{
    for (int64_t p = lo; p < hi; p++)
        backward_plane(a, g, p, x, s, dy, t, dx);
}

static void backward(const dn_kernel *k)
{
    const lrn_attrs *a = k->attrs;
    lrn_geom g = geom(&k->x[0].shape);
    const float *x = dn_f32(&k->x[0]), *dy = dn_f32(k->dy), *s = k->saved;
    float *dx = dn_f32(&k->dx[0]), *t = k->work;
    int64_t planes = g.n * g.c, total = planes * g.inner;
    float beta = (float)a->beta;
    if (!dx)
        return;
    int team = dn_team(k->threads, total, DN_PARALLEL_MIN);
    DN_PARALLEL_RANGE(total, team, lo, hi, scaled_grad(beta, x, s, dy, t, lo, hi));
    /* Every plane's t is complete (the region has ended) before any dx sums across them. */
    DN_PARALLEL_RANGE(planes, team, lo, hi, backward_planes(a, &g, x, s, dy, t, dx, lo, hi));
}

const dn_op dn_op_lrn = {
    .name = "LRN",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(lrn_attrs),
    .parse_attrs = parse_attrs,
    .infer = infer,
    .workspace_size = workspace_size,
    .saved_size = buffer_size,
    .flops = flops,
    .forward = forward,
    .backward = backward,
    .backward_reads_inputs = 0x1,
};
