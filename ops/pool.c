/* pool.c — attrs and shape inference shared by MaxPool and AvgPool (see pool.h). */
#include <string.h>

#include "ops/pool.h"

dn_status dn_pool_parse_attrs(const dn_node_ctx *c, const char *op, dn_pool_attrs *a)
{
    static const char *const allowed[] = { "kernel", "stride", "pad", "ceil", NULL };
    /* AvgPool's own attr, read by ops/avgpool.c */
    static const char *const avg_allowed[] = {
        "kernel", "stride", "pad", "ceil", "count_include_pad", NULL
    };
    dn_status st;
    if ((st = dn_attrs_only(c, strcmp(op, "AvgPool") ? allowed : avg_allowed)))
        return st;
    if (!dn_attr_present(c, "kernel"))
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/kernel",
                            "%s needs a kernel size (an integer or [h, w]), found none", op);
    if ((st = dn_attr_int2(c, "kernel", 1, 1, DN_MAX_DIM, a->kernel)) ||
        (st = dn_attr_int2(c, "stride", 1, 1, DN_MAX_DIM, a->stride)) ||
        (st = dn_attr_int2(c, "pad", 0, 0, DN_MAX_DIM, a->pad)) ||
        (st = dn_attr_bool(c, "ceil", false, &a->ceil)))
        return st;
    if (!dn_attr_present(c, "stride"))
        a->stride[0] = a->kernel[0], a->stride[1] = a->kernel[1];
    if (a->pad[0] > a->kernel[0] / 2 || a->pad[1] > a->kernel[1] / 2)
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/pad",
                            "pad [%lld,%lld] must be at most half the kernel [%lld,%lld] (the "
                            "rule PyTorch applies)",
                            (long long)a->pad[0], (long long)a->pad[1], (long long)a->kernel[0],
                            (long long)a->kernel[1]);
    return DN_OK;
}

dn_status dn_pool_infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                        dn_tensor_desc *out)
{
    const dn_pool_attrs *a = attrs;
    dn_status st;
    if ((st = dn_expect_f32(c, in, 0)) || (st = dn_expect_rank(c, in, 0, 4)))
        return st;
    const dn_shape *x = &in[0].shape;
    int64_t oh = dn_pool_out(x->d[2], a->kernel[0], a->stride[0], a->pad[0], a->ceil);
    int64_t ow = dn_pool_out(x->d[3], a->kernel[1], a->stride[1], a->pad[1], a->ceil);
    if (oh < 1 || ow < 1) {
        char xs[DN_SHAPE_STR_MAX];
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "kernel [%lld,%lld] with pad [%lld,%lld] does not fit input \"%s\" %s",
                            (long long)a->kernel[0], (long long)a->kernel[1], (long long)a->pad[0],
                            (long long)a->pad[1], c->input_names[0],
                            dn_shape_str(x, xs, sizeof xs));
    }
    int64_t dims[4] = { x->d[0], x->d[1], oh, ow };
    *out = (dn_tensor_desc){ DN_F32, dn_shape_make(4, dims, x->batched) };
    return DN_OK;
}
