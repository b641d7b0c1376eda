/*
 * softmax.c — softmax along one axis, numerically stable.
 *
 *   y_j = e^(x_j − m) / Σ_k e^(x_k − m),  m = max_k x_k     j, k run along `axis`
 *   dx_j += y_j · (dy_j − Σ_k dy_k · y_k)
 *
 * x, y: float32, any rank ≥ 1, same shape. Attr `axis` (default 1; −1 is the last axis).
 * Subtracting the max keeps every exponent ≤ 0, so nothing overflows and the largest term
 * is exactly 1: the sum is never 0. The tensor is seen as [outer, n, inner] around the axis;
 * each of the outer·inner "lanes" is an independent softmax of n values, `inner` apart.
 * Backward reads y only, so y may overwrite x in place.
 */
#include <math.h>

#include "ops/op.h"
#include "runtime/parallel.h"

typedef struct softmax_attrs {
    int64_t axis; /* as written; may be negative, resolved against the rank */
} softmax_attrs;

typedef struct lanes {
    int64_t outer, n, inner;
} lanes;

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "axis", NULL };
    softmax_attrs *a = attrs;
    dn_status st = dn_attrs_only(c, allowed);
    if (st)
        return st;
    return dn_attr_int(c, "axis", 1, -DN_MAX_RANK, DN_MAX_RANK - 1, &a->axis);
}

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    const softmax_attrs *a = attrs;
    dn_status st = dn_expect_f32(c, in, 0);
    if (st)
        return st;
    int rank = in[0].shape.rank;
    if (a->axis < -rank || a->axis >= rank) {
        char s[DN_SHAPE_STR_MAX];
        return dn_node_fail(c, DN_ERR_SHAPE, "attrs/axis",
                            "axis %lld is outside [%d, %d) for input \"%s\" %s", (long long)a->axis,
                            -rank, rank, c->input_names[0],
                            dn_shape_str(&in[0].shape, s, sizeof s));
    }
    *out = in[0];
    return DN_OK;
}

static lanes lanes_of(const softmax_attrs *a, const dn_shape *s)
{
    int axis = (int)(a->axis < 0 ? a->axis + s->rank : a->axis);
    lanes l = { 1, s->d[axis], dn_shape_numel_from(s, axis + 1) };
    for (int i = 0; i < axis; i++)
        l.outer *= s->d[i];
    return l;
}

/* exp, sum and max are a few flops each per element. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)attrs, (void)in, (void)n_in;
    return 5 * dn_shape_numel(&out->shape);
}

/* Two threads measured 1.7× faster from 2 Ki elements forward (an expf each, ~5 ns), 1.6×
 * from 4 Ki backward (two cheap passes); the margin keeps a batch of 100 × 10 on one. */
#define FORWARD_PARALLEL_MIN 2048
#define BACKWARD_PARALLEL_MIN 8192

/* The exponentials are all taken before they are summed: back-to-back calls to expf overlap,
 * where a sum waiting on each would not. */
static void softmax_lane(const float *x, float *y, int64_t n, int64_t stride)
{
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        m = x[j * stride] > m ? x[j * stride] : m;
    for (int64_t j = 0; j < n; j++)
        y[j * stride] = expf(x[j * stride] - m);
    double sum = 0;
    for (int64_t j = 0; j < n; j++)
        sum += y[j * stride];
    float r = (float)(1.0 / sum);
    for (int64_t j = 0; j < n; j++)
        y[j * stride] *= r;
}

/* Where lane t starts: its outer and inner position. The usual softmax over the last axis
 * (inner = 1) has contiguous lanes and needs no division. */
static int64_t lane_base(const lanes *l, int64_t t)
{
    return l->inner == 1 ? t * l->n : t / l->inner * l->n * l->inner + t % l->inner;
}

static void forward_lanes(const lanes *l, const float *x, float *y, int64_t lo, int64_t hi)
{
    for (int64_t t = lo; t < hi; t++) {
        int64_t base = lane_base(l, t);
        softmax_lane(x + base, y + base, l->n, l->inner);
    }
}

/* What a range of lanes reads: their layout and the kernel. */
typedef struct lanes_job {
    lanes l;
    const dn_kernel *k;
} lanes_job;

static void forward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const lanes_job *j = ctx;
    forward_lanes(&j->l, dn_f32(&j->k->x[0]), dn_f32(j->k->y), lo, hi);
}

static void forward(const dn_kernel *k)
{
    lanes_job j = { lanes_of(k->attrs, &k->y->shape), k };
    int64_t count = j.l.outer * j.l.inner, n = j.l.outer * j.l.n * j.l.inner;
    dn_parallel_for(count, dn_team(k->threads, n, FORWARD_PARALLEL_MIN), forward_range, &j);
}

static void backward_lane(const float *y, const float *dy, float *dx, int64_t n, int64_t stride)
{
    double dot = 0;
    for (int64_t j = 0; j < n; j++)
        dot += (double)dy[j * stride] * y[j * stride];
    float d = (float)dot;
    for (int64_t j = 0; j < n; j++)
        dx[j * stride] += y[j * stride] * (dy[j * stride] - d);
}

static void backward_lanes(const lanes *l, const float *y, const float *dy, float *dx, int64_t lo,
                           int64_t hi)
{
    for (int64_t t = lo; t < hi; t++) {
        int64_t base = lane_base(l, t);
        backward_lane(y + base, dy + base, dx + base, l->n, l->inner);
    }
}

static void backward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const lanes_job *j = ctx;
    backward_lanes(&j->l, dn_f32(j->k->y), dn_f32(j->k->dy), dn_f32(&j->k->dx[0]), lo, hi);
}

static void backward(const dn_kernel *k)
{
    lanes_job j = { lanes_of(k->attrs, &k->y->shape), k };
    int64_t count = j.l.outer * j.l.inner, n = j.l.outer * j.l.n * j.l.inner;
    dn_parallel_for(count, dn_team(k->threads, n, BACKWARD_PARALLEL_MIN), backward_range, &j);
}

const dn_op dn_op_softmax = {
    .name = "Softmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(softmax_attrs),
    .parse_attrs = parse_attrs,
    .infer = infer,
    .flops = flops,
    .forward = forward,
    .backward = backward,
    .backward_reads_output = true,
};
