/*
 * registry.c — the one table of ops.
 *
 * How to add an op:
 *   1. Write ops/<name>.c exporting `const dn_op dn_op_<name>` (see op.h for the fields;
 *      keep shape, forward and backward side by side in that file).
 *   2. Declare it in the extern list below and add it to `ops`.
 *   3. Bump DN_OP_COUNT (the _Static_assert keeps the two in step). CMake builds every .c
 *      file in ops/, so the build needs no edit.
 *   4. Add a finite-difference test (tests/test_ops_basic.c or test_ops_spatial.c, through
 *      tests/gradcheck.h) and a section in docs/ops.md.
 * Nothing else in dagnet names an op: the loader looks ops up here by their "op" string.
 */
#include <string.h>

#include "ops/op.h"

#define DN_OP_COUNT 14

extern const dn_op dn_op_conv, dn_op_maxpool, dn_op_avgpool, dn_op_relu, dn_op_sigmoid,
    dn_op_tanh, dn_op_affine, dn_op_softmax, dn_op_softmax_cross_entropy, dn_op_dropout,
    dn_op_lrn, dn_op_flatten, dn_op_add, dn_op_concat;

static const dn_op *const ops[] = {
    &dn_op_conv,    &dn_op_maxpool, &dn_op_avgpool, &dn_op_relu,    &dn_op_sigmoid,
    &dn_op_tanh,    &dn_op_affine,  &dn_op_softmax, &dn_op_softmax_cross_entropy,
    &dn_op_dropout, &dn_op_lrn,     &dn_op_flatten, &dn_op_add,     &dn_op_concat,
};

_Static_assert(sizeof ops / sizeof ops[0] == DN_OP_COUNT, "ops[] and DN_OP_COUNT disagree");

const dn_op *dn_op_find(const char *name)
{
    for (int i = 0; i < DN_OP_COUNT; i++)
        if (strcmp(ops[i]->name, name) == 0)
            return ops[i];
    return NULL;
}

int dn_op_count(void) { return DN_OP_COUNT; }

const dn_op *dn_op_at(int i) { return i >= 0 && i < DN_OP_COUNT ? ops[i] : NULL; }
