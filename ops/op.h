/*
 * op.h — the contract every op implements, and the helpers ops share.
 *
 * An op lives in one file, ops/<name>.c, and exports one `const dn_op` descriptor (a family
 * of ops may share helpers, as MaxPool and AvgPool share ops/pool.h). The graph layer never
 * knows an op by anything but this descriptor:
 *
 *   parse_attrs      JSON attrs → the op's attrs struct; rejects unknown or ill-typed keys
 *   implicit_params  (Conv, Affine, BatchNorm) params the loader creates when the node names
 *                    only its data input: their shapes from the input's shape and the attrs
 *   infer            input dtypes/shapes → output dtype/shape, or a message naming both shapes
 *   workspace_size   scratch bytes the kernels need (contents undefined on entry)
 *   saved_size       bytes forward keeps for backward (argmax, masks, probabilities)
 *   flops            forward floating-point operations for the given shapes
 *   check            (optional) validates input values before forward, e.g. label range
 *   forward          y = f(x...)
 *   backward         dx[i] += ∂L/∂x[i] for every i whose dx[i].data is not NULL. Kernels
 *                    ACCUMULATE: the engine zeroes gradients once per step, so fan-out and
 *                    shared weights need no special case.
 *   gemm             (Conv, Affine) the op's work as one matrix product, for the profiler
 *   state_inputs     (BatchNorm) the inputs that are state, written by a training forward
 *
 * Memory planning (graph/plan.c) shares buffers between tensors whose lifetimes do not
 * overlap; three fields tell it what the kernels read and when:
 *   inplace                the output may take input 0's buffer (y and x0 have the same
 *                          size, forward reads each x0 element before writing that y element
 *                          and backward never reads x0). The planner uses it only when
 *                          nothing else reads x0 afterwards.
 *   backward_reads_inputs  bit i: backward reads input i's values (Conv reads x and W)
 *   backward_reads_output  backward reads y (ReLU's mask, Softmax's probabilities)
 * Saved state (saved_size) always lives from the node's forward to its backward.
 *
 * Shapes handed to infer/workspace_size/saved_size/flops are those of one run: dim 0 holds
 * the real batch size (1 when the model is validated at load time). Outputs keep `batched`
 * from their data input.
 */
#ifndef DN_OP_H
#define DN_OP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"
#include "runtime/init.h"
#include "runtime/tensor.h"

#define DN_MAX_IMPLICIT_PARAMS 4

/* Where a node comes from, for messages; also carries its JSON attrs while parsing. */
typedef struct dn_node_ctx {
    const char *file; /* model file name, e.g. "lenet5.json" */
    const char *node; /* node name */
    int index;        /* position in the file's "nodes" array */
    int n_inputs;
    const char *const *input_names;
    const cJSON *attrs; /* the node's "attrs" object, or NULL */
    dn_err *err;
} dn_node_ctx;

/* Fail with `file: node "name" (/nodes/<i>/<field>): <message>`. field may be NULL. */
dn_status dn_node_fail(const dn_node_ctx *c, dn_status status, const char *field, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

/* A param the loader creates for a node (implicit params). */
typedef struct dn_param_spec {
    const char *suffix; /* "weight" or "bias": the param is named <node>.<suffix> */
    dn_shape shape;
    dn_init init;
} dn_param_spec;

/* What a kernel sees. Arrays have n_inputs entries. */
/* An elementwise function a producer's forward can apply to its output as it writes it, so
 * that an inference run skips the pass of the op that computes it: graph/exec.c plans the
 * fusion (dn_op.is_epilogue, dn_op.epilogues) and sets dn_kernel.epilogue. */
typedef enum dn_epilogue {
    DN_EPILOGUE_NONE,
    DN_EPILOGUE_RELU, /* y = y < 0 ? 0 : y (ops/relu.c's select: NaN and −0 pass) */
    /* ReLU, then MaxPool's 2×2 stride-2 unpadded window (floor: ops/maxpool.c's rules, the
     * first max in row-major order, a NaN wins) into dn_kernel.pooled; y is scratch. */
    DN_EPILOGUE_RELU_MAXPOOL2,
} dn_epilogue;

/* ReLU's select, shared by ops/relu.c and every path that folds it in: `x > 0 ? x : 0` would
 * turn NaN into 0 and hide it; this passes NaN and −0 unchanged, as torch.relu does. */
static inline float dn_relu(float x) { return x < 0.0f ? 0.0f : x; }

typedef struct dn_kernel {
    const void *attrs;
    int n_inputs;
    const dn_tensor *x;  /* inputs */
    const dn_tensor *y;  /* output: forward writes it, backward may read it */
    const dn_tensor *dx; /* input gradients; dx[i].data == NULL: not wanted */
    const dn_tensor *dy; /* output gradient (backward only) */
    void *work;          /* workspace_size bytes of scratch */
    void *saved;         /* saved_size bytes, written by forward, read by backward */
    bool training;       /* DN_TRAIN mode: Dropout active */
    uint64_t seed;       /* fresh for each forward; for ops that draw random numbers */
    int threads;         /* the session's thread count (OpenMP and BLIS) */
    /* Inference forwards only, and only for an op whose `epilogues` has its bit: y =
     * epilogue(forward's y), the consumer's pass folded in (never set in training). */
    dn_epilogue epilogue;
    const dn_tensor *pooled; /* DN_EPILOGUE_RELU_MAXPOOL2: the pooled output [N, F, OH/2, OW/2] */
} dn_kernel;

/* Forward as `count` products (one per group; 0 reads as 1) C[m×n] = A[m×k]·B[k×n] over the
 * whole batch, A being (built from) input
 * a_input and B input b_input. Backward computes dA = dC·Bᵀ (m×k, inner n) when input
 * a_input takes a gradient and dB = Aᵀ·dC (k×n, inner m) when b_input does.
 *   Conv:   A = W [F/G, C/G·kh·kw], B = im2col(x) [C/G·kh·kw, N·OH·OW], count = G groups
 *   Affine: A = x [N, in],      B = W [in, out] */
typedef struct dn_gemm_shape {
    int64_t m, n, k;
    int a_input, b_input;
    int64_t count;
} dn_gemm_shape;

typedef struct dn_op {
    const char *name;           /* as written in "op" */
    int min_inputs, max_inputs; /* max_inputs < 0: any number (Concat) */
    unsigned no_grad_inputs;    /* bit i set: input i never takes a gradient (labels) */
    size_t attrs_size;          /* bytes of the attrs struct parse_attrs fills */

    dn_status (*parse_attrs)(const dn_node_ctx *c, void *attrs);
    /* Returns how many params it wrote (0: the node names them itself). May be NULL. */
    int (*implicit_params)(const void *attrs, const dn_tensor_desc *x, dn_param_spec *out);
    dn_status (*infer)(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out);
    size_t (*workspace_size)(const void *attrs, const dn_tensor_desc *in, int n_in,
                             const dn_tensor_desc *out, int threads); /* may be NULL */
    size_t (*saved_size)(const void *attrs, const dn_tensor_desc *in, int n_in,
                         const dn_tensor_desc *out); /* may be NULL */
    int64_t (*flops)(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out);
    /* Checks input VALUES that shapes cannot (class labels in range) before forward runs.
     * c->attrs is NULL here. May be NULL. */
    dn_status (*check)(const dn_node_ctx *c, const void *attrs, const dn_tensor *x);
    void (*forward)(const dn_kernel *k);
    void (*backward)(const dn_kernel *k);
    /* The op's matrix product at these shapes; NULL for ops that have none. */
    void (*gemm)(const void *attrs, const dn_tensor_desc *in, int n_in, const dn_tensor_desc *out,
                 dn_gemm_shape *g);

    bool inplace;
    unsigned backward_reads_inputs;
    bool backward_reads_output;
    /* Bit i: input i must be a state tensor (the model's "state" section, or implicit
     * state), and forward in training mode may WRITE it through k->x[i].data (BatchNorm's
     * running statistics). The loader refuses anything else in that slot, so a param or an
     * activation is never written; such inputs take no gradient (also set them in
     * no_grad_inputs). Inference forwards and backward only read them. */
    unsigned state_inputs;
    /* Fusion in inference (graph/exec.c): an op with is_epilogue computes y = that function
     * of its input 0 elementwise (ReLU), and an op whose `epilogues` has bit e applies
     * epilogue e itself when dn_kernel.epilogue asks (Conv, Affine). When the first is the
     * sole reader of the second's output, an inference run skips it. */
    dn_epilogue is_epilogue;
    unsigned epilogues;
    /* Whether this op, with these attrs, is DN_EPILOGUE_RELU_MAXPOOL2's pooling (MaxPool:
     * kernel 2, stride 2, no padding, floor), so that it folds into a producer whose ReLU is
     * folded already. NULL: never. */
    bool (*is_pool_epilogue)(const void *attrs);
    /* Bit i: implicit_params' entry i is a state tensor ("<node>.running_mean"), created in
     * the model's state rather than its params. */
    unsigned implicit_state;
} dn_op;

/* Whether input i of op can take a gradient (labels cannot). */
static inline bool dn_op_takes_grad(const dn_op *op, int i)
{
    return i >= 32 || !(op->no_grad_inputs & (1u << i));
}

/* ---- attribute helpers (ops/common.c). Each fails through dn_node_fail with the field
 * "attrs/<key>" and what was expected and found. ---- */

/* "a number", "a string", …, "nothing" for NULL: what a JSON value is, for messages. */
const char *dn_json_kind(const cJSON *v);
/* Reject any attrs key not in `allowed` (NULL-terminated). */
dn_status dn_attrs_only(const dn_node_ctx *c, const char *const *allowed);
/* The parse_attrs of an op that takes no attrs: rejects every key. */
dn_status dn_attrs_none(const dn_node_ctx *c, void *attrs);
bool dn_attr_present(const dn_node_ctx *c, const char *key);
/* An int in [min, max]; `def` when absent. */
dn_status dn_attr_int(const dn_node_ctx *c, const char *key, int64_t def, int64_t min, int64_t max,
                      int64_t *out);
/* An int or a [h, w] pair, each in [min, max]; {def, def} when absent. */
dn_status dn_attr_int2(const dn_node_ctx *c, const char *key, int64_t def, int64_t min, int64_t max,
                       int64_t out[2]);
/* A finite number in [min, max]. */
dn_status dn_attr_number(const dn_node_ctx *c, const char *key, double def, double min, double max,
                         double *out);
dn_status dn_attr_bool(const dn_node_ctx *c, const char *key, bool def, bool *out);
/* An init spec (see src/init.h); DN_INIT_DEFAULT when absent. */
dn_status dn_attr_init(const dn_node_ctx *c, const char *key, dn_init *out);

/* ---- shape helpers ---- */

/* Fail unless input i is float32 (message names the input and its dtype). */
dn_status dn_expect_f32(const dn_node_ctx *c, const dn_tensor_desc *in, int i);
/* Fail unless input i has the given rank. */
dn_status dn_expect_rank(const dn_node_ctx *c, const dn_tensor_desc *in, int i, int rank);

/* Conv, Affine: with a third input (the bias, rank 1), fail when the `bias` attr is false or
 * the bias does not hold one value per dim `dim` of the weight (input 1); `per` names that
 * dim in the message ("filter", "output feature"). */
dn_status dn_check_bias(const dn_node_ctx *c, bool bias, const dn_tensor_desc *in, int dim,
                        const char *per);

/* Output size of a sliding window: floor((size + 2·pad − k) / stride) + 1, or -1 when the
 * window does not fit. */
int64_t dn_window_out(int64_t size, int64_t k, int64_t stride, int64_t pad);

/* Elementwise ops: float32 in, the same dtype and shape out. */
dn_status dn_infer_unary(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                         dn_tensor_desc *out);
/* One flop per output element (elementwise ops, pooling compares, copies). */
int64_t dn_flops_per_output(const void *attrs, const dn_tensor_desc *in, int n_in,
                            const dn_tensor_desc *out);

/* Loops over this many elements or more run in parallel (OpenMP); below it threads cost more
 * than they save. */
#define DN_PARALLEL_MIN 32768

/* dst[i] += src[i] for i < n (gradients that pass straight through), in parallel from
 * DN_PARALLEL_MIN elements. */
void dn_add_into(float *dst, const float *src, int64_t n, int threads);

/* y[i] = e(y[i]) for i < n: an epilogue as a pass of its own, for a producer that cannot apply
 * it while writing (Affine, whose y BLIS writes); in parallel from DN_PARALLEL_MIN elements. */
void dn_epilogue_apply(dn_epilogue e, float *y, int64_t n, int threads);

/* ---- the registry (ops/registry.c) ---- */

const dn_op *dn_op_find(const char *name);
int dn_op_count(void);
const dn_op *dn_op_at(int i);
/* Op i's identifier: its file ops/<id>.c, its descriptor dn_op_<id>, its test suites <id>_grad,
 * <id>_forward, … (the name in lower snake case: "maxpool", "softmax_cross_entropy"). */
const char *dn_op_id_at(int i);

#endif
