/*
 * flatten.c — keeps the batch dimension and merges all the others.
 *
 *   x: [N, d1, d2, …] float32, rank ≥ 2      y: [N, d1·d2·…] float32
 *   y = x (the same row-major elements)       dx += dy
 *
 * Row-major order makes this a plain copy; the loops also work when y overwrites x. No attrs.
 */
#include <string.h>

#include "ops/op.h"

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    (void)attrs;
    const dn_shape *s = &in[0].shape;
    dn_status st = dn_expect_f32(c, in, 0);
    if (st)
        return st;
    if (s->rank < 2) {
        char str[DN_SHAPE_STR_MAX];
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "input \"%s\" must have rank 2 or more, found %s", c->input_names[0],
                            dn_shape_str(s, str, sizeof str));
    }
    int64_t dims[2] = { s->d[0], dn_shape_numel_from(s, 1) };
    *out = (dn_tensor_desc){ .dtype = DN_F32, .shape = dn_shape_make(2, dims, s->batched) };
    return DN_OK;
}

static void forward(const dn_kernel *k)
{
    const float *x = dn_f32(&k->x[0]);
    float *y = dn_f32(k->y);
    if (y != x) /* in place (the planner's usual choice), the data are already there */
        memcpy(y, x, (size_t)dn_shape_numel(&k->y->shape) * sizeof *y);
}

static void backward(const dn_kernel *k)
{
    dn_add_into(dn_f32(&k->dx[0]), dn_f32(k->dy), dn_shape_numel(&k->y->shape), k->threads);
}

const dn_op dn_op_flatten = {
    .name = "Flatten",
    .min_inputs = 1,
    .max_inputs = 1,
    .parse_attrs = dn_attrs_none,
    .infer = infer,
    .flops = dn_flops_per_output,
    .forward = forward,
    .backward = backward,
    .inplace = true,
};
