/*
 * dropout.c — inverted dropout.
 *
 *   training:  m_i = [u_i ≥ ratio] / (1 − ratio),  u_i = dn_rng_hash_uniform(seed, i)
 *              y_i = x_i · m_i                     dx_i += dy_i · m_i
 *   inference: y = x                               dx += dy
 *
 * x, y: any shape, float32. `saved` holds m (one float per element) for backward.
 * Attr `ratio` (default 0.5), in [0, 1): the probability of zeroing an element.
 * Element i's draw depends only on (seed, i), so the mask is the same whatever the thread
 * split; scaling at training time means inference needs no correction.
 */
#include <float.h>
#include <string.h>

#include "ops/op.h"
#include "runtime/parallel.h"
#include "runtime/rng.h"

typedef struct dropout_attrs {
    float ratio;
    float scale; /* 1 / (1 − ratio) */
} dropout_attrs;

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "ratio", NULL };
    dropout_attrs *a = attrs;
    double ratio;
    dn_status st = dn_attrs_only(c, allowed);
    if (!st)
        st = dn_attr_number(c, "ratio", 0.5, -DBL_MAX, DBL_MAX, &ratio);
    if (st)
        return st;
    /* The range is half-open (1 would divide by zero in the scale), which dn_attr_number's
     * closed [min, max] cannot say. */
    if (ratio < 0.0 || ratio >= 1.0)
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/ratio", "expected a number in [0, 1), found %g",
                            ratio);
    a->ratio = (float)ratio;
    a->scale = (float)(1.0 / (1.0 - ratio));
    return DN_OK;
}

static size_t saved_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                         const dn_tensor_desc *out)
{
    (void)attrs, (void)in, (void)n_in;
    return (size_t)dn_shape_numel(&out->shape) * sizeof(float);
}

/* Two threads measured 1.7× faster from 4 Ki elements forward (a hash per element, ~2 ns),
 * 1.8× from 16 Ki backward (a vectorised stream). */
#define DROPOUT_PARALLEL_MIN 4096
#define MASK_PARALLEL_MIN 16384

/* Elements [lo, hi): y = x · mask, the mask drawn from (seed, element). In place, y may be x. */
static void drop(const dropout_attrs *a, uint64_t seed, const float *x, float *y,
                 float *restrict mask, int64_t lo, int64_t hi)
{
    /* The mask value is looked up, not branched to: a coin toss is mispredicted half the time. */
    const float pick[2] = { 0.0f, a->scale }; /* dropped, kept */
    float ratio = a->ratio;
    for (int64_t i = lo; i < hi; i++) {
        mask[i] = pick[dn_rng_hash_uniform(seed, (uint64_t)i) >= ratio];
        y[i] = x[i] * mask[i];
    }
}

static void mask_grad(const float *restrict dy, const float *restrict mask, float *restrict dx,
                      int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++)
        dx[i] += dy[i] * mask[i];
}

static void drop_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const dn_kernel *k = ctx;
    drop(k->attrs, k->seed, dn_f32(&k->x[0]), dn_f32(k->y), k->saved, lo, hi);
}

static void mask_grad_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const dn_kernel *k = ctx;
    mask_grad(dn_f32(k->dy), k->saved, dn_f32(&k->dx[0]), lo, hi);
}

static void forward(const dn_kernel *k)
{
    const float *x = dn_f32(&k->x[0]);
    float *y = dn_f32(k->y);
    int64_t n = dn_shape_numel(&k->y->shape);
    if (!k->training) {
        if (y != x) /* in place, inference has nothing to do */
            memcpy(y, x, (size_t)n * sizeof *y);
        return;
    }
    dn_parallel_for(n, dn_team(k->threads, n, DROPOUT_PARALLEL_MIN), drop_range, k);
}

static void backward(const dn_kernel *k)
{
    const float *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    int64_t n = dn_shape_numel(&k->y->shape);
    if (!k->training) {
        dn_add_into(dx, dy, n, k->threads);
        return;
    }
    dn_parallel_for(n, dn_team(k->threads, n, MASK_PARALLEL_MIN), mask_grad_range, k);
}

const dn_op dn_op_dropout = {
    .name = "Dropout",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(dropout_attrs),
    .parse_attrs = parse_attrs,
    .infer = dn_infer_unary,
    .saved_size = saved_size,
    .flops = dn_flops_per_output,
    .forward = forward,
    .backward = backward,
    .inplace = true,
};
