/*
 * concat.c — joins one or more tensors along an axis.
 *
 *   x_1 … x_k: float32, the same rank, the same dims except on `axis`
 *   y:         those dims, with d[axis] = Σ_i x_i.d[axis]
 *   y = [x_1 | x_2 | … | x_k] along axis       dx_i += the slice of dy that x_i filled
 *
 * Attr `axis` (default 1; −1 is the last axis). Around the axis every tensor is a matrix
 * [outer, width]: outer = the product of the dims before the axis (the same for all), and
 * width = d[axis] × the product of the dims after it. Each row of y is the rows of the
 * inputs laid end to end, so both directions are contiguous copies of `width` floats.
 * Joining along a batch axis is refused: the result would not be a batch of N.
 */
#include <stdio.h>
#include <string.h>

#include "ops/op.h"
#include "runtime/parallel.h"

typedef struct concat_attrs {
    int64_t axis; /* as written; may be negative, resolved against the rank */
} concat_attrs;

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "axis", NULL };
    concat_attrs *a = attrs;
    dn_status st = dn_attrs_only(c, allowed);
    if (st)
        return st;
    return dn_attr_int(c, "axis", 1, -DN_MAX_RANK, DN_MAX_RANK - 1, &a->axis);
}

static int resolve_axis(int64_t axis, int rank) { return (int)(axis < 0 ? axis + rank : axis); }

static bool fits(const dn_shape *s, const dn_shape *first, int axis)
{
    if (s->rank != first->rank || s->batched != first->batched)
        return false;
    for (int d = 0; d < s->rank; d++)
        if (d != axis && s->d[d] != first->d[d])
            return false;
    return true;
}

static dn_status fail_axis(const dn_node_ctx *c, const concat_attrs *a, const dn_shape *s,
                           const char *why)
{
    char str[DN_SHAPE_STR_MAX];
    return dn_node_fail(c, DN_ERR_SHAPE, "attrs/axis", "axis %lld %s for input \"%s\" %s",
                        (long long)a->axis, why, c->input_names[0],
                        dn_shape_str(s, str, sizeof str));
}

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    const concat_attrs *a = attrs;
    const dn_shape *first = &in[0].shape;
    int rank = first->rank;
    for (int i = 0; i < c->n_inputs; i++) {
        dn_status st = dn_expect_f32(c, in, i);
        if (st)
            return st;
    }
    if (a->axis < -rank || a->axis >= rank)
        return fail_axis(c, a, first, "is outside the input's rank");
    int axis = resolve_axis(a->axis, rank);
    if (axis == 0 && first->batched)
        return fail_axis(c, a, first, "is the batch axis");
    *out = in[0];
    for (int i = 1; i < c->n_inputs; i++) {
        if (!fits(&in[i].shape, first, axis)) {
            char field[32], s[DN_SHAPE_STR_MAX], f[DN_SHAPE_STR_MAX];
            snprintf(field, sizeof field, "inputs/%d", i);
            return dn_node_fail(c, DN_ERR_SHAPE, field,
                                "input \"%s\" %s does not fit input \"%s\" %s: all dims but "
                                "axis %d must match",
                                c->input_names[i], dn_shape_str(&in[i].shape, s, sizeof s),
                                c->input_names[0], dn_shape_str(first, f, sizeof f), axis);
        }
        out->shape.d[axis] += in[i].shape.d[axis];
    }
    return DN_OK;
}

/* The output seen as [outer, row]; `after` is the product of the dims after the axis. */
typedef struct span {
    int axis;
    int64_t outer, after, row;
} span;

static span span_of(const dn_kernel *k)
{
    const dn_shape *ys = &k->y->shape;
    span sp = { .axis = resolve_axis(((const concat_attrs *)k->attrs)->axis, ys->rank),
                .outer = 1 };
    for (int d = 0; d < sp.axis; d++)
        sp.outer *= ys->d[d];
    sp.after = dn_shape_numel_from(ys, sp.axis + 1);
    sp.row = ys->d[sp.axis] * sp.after;
    return sp;
}

typedef struct rows_ctx {
    const dn_kernel *k;
    const span *sp;
} rows_ctx;

static void forward_rows(const dn_kernel *k, const span *s, int64_t lo, int64_t hi)
{
    span sp = *s;
    float *y = dn_f32(k->y);
    for (int64_t o = lo; o < hi; o++) {
        float *dst = y + o * sp.row;
        for (int i = 0; i < k->n_inputs; i++) {
            int64_t width = k->x[i].shape.d[sp.axis] * sp.after;
            memcpy(dst, dn_f32(&k->x[i]) + o * width, (size_t)width * sizeof(float));
            dst += width;
        }
    }
}

static void forward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const rows_ctx *j = ctx;
    (void)part;
    forward_rows(j->k, j->sp, lo, hi);
}

static void forward(const dn_kernel *k)
{
    span sp = span_of(k);
    dn_parallel_for(sp.outer, dn_team(k->threads, sp.outer * sp.row, DN_PARALLEL_MIN), forward_job,
                    &(rows_ctx){ .k = k, .sp = &sp });
}

static void backward_rows(const dn_kernel *k, const span *s, int64_t lo, int64_t hi)
{
    span sp = *s;
    for (int64_t o = lo; o < hi; o++) {
        const float *src = dn_f32(k->dy) + o * sp.row;
        for (int i = 0; i < k->n_inputs; i++) {
            int64_t width = k->x[i].shape.d[sp.axis] * sp.after;
            float *dx = dn_f32(&k->dx[i]);
            if (dx) /* one thread: this is already one range of a split */
                dn_add_into(dx + o * width, src, width, 1);
            src += width;
        }
    }
}

static void backward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const rows_ctx *j = ctx;
    (void)part;
    backward_rows(j->k, j->sp, lo, hi);
}

static void backward(const dn_kernel *k)
{
    span sp = span_of(k);
    dn_parallel_for(sp.outer, dn_team(k->threads, sp.outer * sp.row, DN_PARALLEL_MIN), backward_job,
                    &(rows_ctx){ .k = k, .sp = &sp });
}

const dn_op dn_op_concat = {
    .name = "Concat",
    .min_inputs = 1,
    .max_inputs = -1,
    .attrs_size = sizeof(concat_attrs),
    .parse_attrs = parse_attrs,
    .infer = infer,
    .flops = dn_flops_per_output,
    .forward = forward,
    .backward = backward,
};
