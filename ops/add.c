/*
 * add.c — elementwise sum of two tensors of the same shape (residual connections).
 *
 *   a, b, y: the same shape, float32 (no broadcasting)
 *   y = a + b          da += dy          db += dy
 *
 * The batch marker must agree too: a batched [N, 4] and a fixed [1, 4] look equal when the
 * model is validated with N = 1 but not at run time. No attrs.
 */
#include "ops/op.h"
#include "runtime/parallel.h"

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    (void)attrs;
    const dn_shape *a = &in[0].shape, *b = &in[1].shape;
    dn_status st = dn_expect_f32(c, in, 0);
    if (!st)
        st = dn_expect_f32(c, in, 1);
    if (st)
        return st;
    if (!dn_shape_equal(a, b) || a->batched != b->batched) {
        char as[DN_SHAPE_STR_MAX], bs[DN_SHAPE_STR_MAX];
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/1",
                            "input \"%s\" %s must have the shape of input \"%s\" %s",
                            c->input_names[1], dn_shape_str(b, bs, sizeof bs), c->input_names[0],
                            dn_shape_str(a, as, sizeof as));
    }
    *out = in[0];
    return DN_OK;
}

static void add(const float *restrict a, const float *restrict b, float *restrict y, int64_t lo,
                int64_t hi)
{
    for (int64_t i = lo; i < hi; i++)
        y[i] = a[i] + b[i];
}

static void add_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const dn_kernel *k = ctx;
    add(dn_f32(&k->x[0]), dn_f32(&k->x[1]), dn_f32(k->y), lo, hi);
}

static void forward(const dn_kernel *k)
{
    int64_t n = dn_shape_numel(&k->y->shape);
    dn_parallel_for(n, dn_team(k->threads, n, DN_PARALLEL_MIN), add_range, k);
}

static void backward(const dn_kernel *k)
{
    int64_t n = dn_shape_numel(&k->y->shape);
    for (int i = 0; i < 2; i++)
        if (k->dx[i].data)
            dn_add_into(dn_f32(&k->dx[i]), dn_f32(k->dy), n, k->threads);
}

const dn_op dn_op_add = {
    .name = "Add",
    .min_inputs = 2,
    .max_inputs = 2,
    .parse_attrs = dn_attrs_none,
    .infer = infer,
    .flops = dn_flops_per_output,
    .forward = forward,
    .backward = backward,
};
