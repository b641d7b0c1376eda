/*
 * leaky_relu.c — LeakyReLU, elementwise.
 *
 *   y = x > 0 ? x : alpha·x            x, y: any shape, float32
 *   dx += y > 0 ? dy : alpha·dy        (reads y, not x, so y may overwrite x in place)
 *
 * attrs: alpha (0.01), a finite number ≥ 0. A negative alpha would give y > 0 for x < 0, and
 * backward could no longer tell the two sides apart from y; it is refused by name.
 *
 * NaN and Inf as PyTorch 1.13 (F.leaky_relu and its leaky_relu_backward): LeakyReLU(NaN) =
 * alpha·NaN = NaN, LeakyReLU(−0) = −0, LeakyReLU(−Inf) = −Inf (NaN for alpha 0, as 0·−Inf in
 * PyTorch); the gradient is alpha·dy wherever x > 0 is false, NaN included (PyTorch tests
 * x > 0 on x; with alpha ≥ 0, y > 0 exactly when x > 0, NaN or not).
 *
 * The elementwise shell (ops/elementwise.h) takes no attrs, so the two loops are written here
 * in its form: branch-free selects that GCC vectorises, one range per thread from
 * LEAKY_RELU_PARALLEL_MIN elements, like ReLU's.
 */
#include "ops/op.h"
#include "runtime/parallel.h"

/* ReLU's threshold (ops/relu.c): the same memory-bound stream, one multiply more. */
#define LEAKY_RELU_PARALLEL_MIN 65536

typedef struct leaky_relu_attrs {
    float alpha;
} leaky_relu_attrs;

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "alpha", NULL };
    leaky_relu_attrs *a = attrs;
    double alpha;
    dn_status st;
    if ((st = dn_attrs_only(c, allowed)) ||
        (st = dn_attr_number(c, "alpha", 0.01, 0.0, 1e30, &alpha)))
        return st;
    a->alpha = (float)alpha;
    return DN_OK;
}

/* x and y may be the same buffer (in place): x[i] is read before y[i] is written. */
static void forward_span(const float *x, float *y, int64_t n, float alpha)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
}

static void backward_span(const float *restrict y, const float *restrict dy, float *restrict dx,
                          int64_t n, float alpha)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] += y[i] > 0.0f ? dy[i] : alpha * dy[i];
}

static void forward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const dn_kernel *k = ctx;
    const leaky_relu_attrs *a = k->attrs;
    forward_span(dn_f32(&k->x[0]) + lo, dn_f32(k->y) + lo, hi - lo, a->alpha);
}

static void backward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const dn_kernel *k = ctx;
    const leaky_relu_attrs *a = k->attrs;
    backward_span(dn_f32(k->y) + lo, dn_f32(k->dy) + lo, dn_f32(&k->dx[0]) + lo, hi - lo, a->alpha);
}

static void forward(const dn_kernel *k)
{
    int64_t n = dn_shape_numel(&k->y->shape);
    dn_parallel_for(n, dn_team(k->threads, n, LEAKY_RELU_PARALLEL_MIN), forward_range, k);
}

static void backward(const dn_kernel *k)
{
    if (!k->dx[0].data)
        return;
    int64_t n = dn_shape_numel(&k->y->shape);
    dn_parallel_for(n, dn_team(k->threads, n, LEAKY_RELU_PARALLEL_MIN), backward_range, k);
}

const dn_op dn_op_leaky_relu = {
    .name = "LeakyReLU",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(leaky_relu_attrs),
    .parse_attrs = parse_attrs,
    .infer = dn_infer_unary,
    .flops = dn_flops_per_output,
    .forward = forward,
    .backward = backward,
    .inplace = true,
    .backward_reads_output = true,
};
