/*
 * test_batchnorm.c — BatchNorm and the model's "state" section.
 *
 * The op: finite-difference gradients in training mode ([N, C] and [N, C, H, W], a batch
 * large enough for threads), forward values and the running-statistics update against
 * direct loops written here (two passes in double), inference with the running statistics,
 * attr and shape errors. The state: the loader's messages (a name in params and state, mean
 * or var given as params), implicit params and state, state in the weights file, no gradient
 * and no optimiser update, and a resumed BatchNorm run bit-identical to an uninterrupted one.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "helpers.h"

extern const dn_op dn_op_batchnorm;

static dn_gc_input gc_in(dn_gc_fill fill, int rank, const int64_t *dims)
{
    dn_gc_input in = { .dtype = DN_F32, .rank = rank, .fill = fill };
    memcpy(in.shape, dims, (size_t)rank * sizeof *dims);
    return in;
}

static void expect_grad(const char *attrs, const dn_gc_input *in)
{
    dn_gc_result r = dn_gradcheck(&dn_op_batchnorm, attrs, 5, in, 7);
    cr_assert(r.ok, "%s", r.msg);
    cr_assert_gt(r.checked, 0);
}

/* ---------------------------------------------------------------- gradients (training) */

Test(batchnorm_grad, nchw)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(3, 4, 3, 2)), gc_in(DN_GC_UNIFORM, DIMS(4)),
                         gc_in(DN_GC_UNIFORM, DIMS(4)), gc_in(DN_GC_UNIFORM, DIMS(4)),
                         gc_in(DN_GC_POSITIVE, DIMS(4)) };
    expect_grad("{}", in);
}

Test(batchnorm_grad, nc)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(5, 3)), gc_in(DN_GC_UNIFORM, DIMS(3)),
                         gc_in(DN_GC_UNIFORM, DIMS(3)), gc_in(DN_GC_UNIFORM, DIMS(3)),
                         gc_in(DN_GC_POSITIVE, DIMS(3)) };
    expect_grad("{\"epsilon\": 0.01, \"momentum\": 0.3}", in);
}

/* 4 × 8 × 32 × 32 = 32768 elements: both kernels split the channels over threads. */
Test(batchnorm_grad, parallel)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(4, 8, 32, 32)), gc_in(DN_GC_UNIFORM, DIMS(8)),
                         gc_in(DN_GC_UNIFORM, DIMS(8)), gc_in(DN_GC_UNIFORM, DIMS(8)),
                         gc_in(DN_GC_POSITIVE, DIMS(8)) };
    expect_grad("{}", in);
}
