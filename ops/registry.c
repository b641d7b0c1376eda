/*
 * registry.c — the one list of ops.
 *
 * How to add an op, <id> being its name in lower snake case (MaxPool: maxpool,
 * SoftmaxCrossEntropy: softmax_cross_entropy), which names its file, its descriptor and its
 * test suites:
 *   1. ops/<id>.c exporting `const dn_op dn_op_<id>` (op.h lists the fields), with its shape
 *      (infer), forward and backward side by side in that file. Backward ACCUMULATES:
 *      dx += ∂L/∂x, never dx =. An elementwise activation keeps only its maths and thresholds
 *      and takes its loops from ops/elementwise.h. CMake builds every .c file in ops/.
 *   2. One line `X(<id>)` in DN_OPS below: the extern declaration, the table, the count and
 *      dn_op_id_at's name all come from it.
 *   3. A finite-difference gradient test: a Criterion suite `<id>_grad` calling
 *      dn_gradcheck (tests/gradcheck.h) on dn_op_<id>, in tests/test_ops_basic.c or
 *      test_ops_spatial.c; forward values and messages in `<id>_forward` and `<id>_infer`,
 *      so that one `dagnet_tests --filter` on `<id>*` runs the op's tests.
 *   4. Its section in docs/ops.md: a `## ` heading naming the op (attrs, shapes, forward,
 *      backward, messages) and a row in the table at the top; its name in the `op` row of
 *      docs/format.md's node table.
 *   5. Its PyTorch equivalent in TORCH_OPS of tests/parity/parity.py (and its output shape
 *      in Model._build there).
 *   6. A model in examples/models/ that uses it (a new one if none fits, as branchy.json
 *      for Add and Concat): the pytorch_parity test runs every model there, so that is what
 *      puts step 5 to work.
 * tests/test_registry.c walks this list and fails, naming the op, when step 3, 4, 5 or 6 is
 * missing. Nothing else in dagnet names an op: the loader looks ops up here by their "op"
 * string.
 */
#include <string.h>

#include "ops/op.h"

/* In the order `dagnet` lists them in messages. */
#define DN_OPS(X)            \
    X(conv)                  \
    X(maxpool)               \
    X(avgpool)               \
    X(relu)                  \
    X(sigmoid)               \
    X(tanh)                  \
    X(affine)                \
    X(softmax)               \
    X(softmax_cross_entropy) \
    X(dropout)               \
    X(lrn)                   \
    X(flatten)               \
    X(add)                   \
    X(concat)                \
    X(global_avg_pool)       \
    X(leaky_relu)            \
    X(batchnorm)

#define DN_OP_EXTERN(id) extern const dn_op dn_op_##id;
DN_OPS(DN_OP_EXTERN)

#define DN_OP_ENTRY(id) &dn_op_##id,
static const dn_op *const ops[] = { DN_OPS(DN_OP_ENTRY) };

#define DN_OP_ID(id) #id,
static const char *const ids[] = { DN_OPS(DN_OP_ID) };

/* One enumerator per line of the list: an op listed twice declares its enumerator twice and
 * fails to compile, rather than shadowing itself in dn_op_find. */
#define DN_OP_ENUM(id) DN_OP_LISTED_##id,
enum { DN_OPS(DN_OP_ENUM) DN_OPS_LISTED };

#define DN_OP_COUNT ((int)(sizeof ops / sizeof ops[0]))

/* Both tables come from the list, so these hold by construction; they stay as the guard for
 * any table indexed by op that someone later writes out by hand. */
_Static_assert(DN_OP_COUNT == DN_OPS_LISTED, "ops[] does not follow DN_OPS");
_Static_assert(sizeof ids / sizeof ids[0] == DN_OPS_LISTED, "ids[] does not follow DN_OPS");

const dn_op *dn_op_find(const char *name)
{
    for (int i = 0; i < DN_OP_COUNT; i++)
        if (strcmp(ops[i]->name, name) == 0)
            return ops[i];
    return NULL;
}

int dn_op_count(void) { return DN_OP_COUNT; }

const dn_op *dn_op_at(int i) { return i >= 0 && i < DN_OP_COUNT ? ops[i] : NULL; }

const char *dn_op_id_at(int i) { return i >= 0 && i < DN_OP_COUNT ? ids[i] : NULL; }
