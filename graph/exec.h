/*
 * exec.h — running a graph: buffers planned per batch size, forward, reverse-mode autograd.
 *
 * Memory: the params live in one contiguous float buffer and their gradients in another,
 * each param's tensor a view into it (optimisers can treat them as one vector). For a batch
 * size, dn_exec_plan sizes the graph inputs and the kernels' shared workspace. Each forward
 * then asks plan.c for a layout of the activations, gradients and saved state it and the
 * following backward need, buffers sharing memory when their lifetimes do not overlap; the
 * layout is reused while the request stays the same (a training loop plans once). Arenas
 * only ever grow, so after the first steps forward and backward allocate nothing, and an
 * epoch's last, partial batch reuses them.
 *
 * After a forward, the values it was asked for (the targets) stay readable until the next
 * forward; other intermediate values may have been overwritten (keep_all keeps them all).
 *
 * Forward runs only the nodes the requested values need (their ancestors). Backward visits,
 * in reverse order, the nodes on the path to the loss whose output needs a gradient; it
 * zeroes each gradient once, when it is first written (its buffer may hold another tensor
 * before that), seeds ∂L/∂loss = 1 and lets each kernel accumulate, so fan-out and shared
 * weights add up with no special case. Inputs that need no gradient (the image,
 * the labels) are handed to kernels with dx.data == NULL, so no work is spent on them.
 */
#ifndef DN_EXEC_H
#define DN_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "graph/graph.h"
#include "graph/plan.h"
#include "runtime/rng.h"

/* Per-node timing, when profiling is on (dn_session_set_profiling). */
typedef struct dn_node_timing {
    double forward_seconds, backward_seconds;
    int64_t forward_calls, backward_calls;
} dn_node_timing;

typedef struct dn_exec {
    const dn_graph *g; /* borrowed */
    int threads;
    bool keep_all; /* every node output stays readable: no buffer sharing */
    dn_rng rng;    /* initialisers, then one draw per forward for Dropout */

    float *param_data; /* every param, contiguous, in g->param_values order */
    float *param_grad; /* their gradients, same layout (NULL in an inference executor) */
    /* An inference executor (dn_exec_init_borrowed) reads its params from a buffer someone
     * else owns (param_data points there and is never written), holds no gradients, plans no
     * backward and refuses training forwards: many of them can share one set of weights. */
    bool inference;
    int64_t param_count; /* floats in each of the two */
    float *state_data;   /* every state tensor, contiguous, in g->state_values order: no
                          * gradient, no optimiser; written only by ops' training forwards */
    int64_t state_count; /* floats in it */

    dn_tensor *val;     /* per value: its data (params: views into param_data, state into
                         * state_data) */
    dn_tensor *grad;    /* per value: its gradient, data NULL when it takes none */
    bool *on_loss_path; /* per node: the loss depends on it */
    bool *computed;     /* per value: readable since the last forward / set_input */
    bool *input_set;    /* per value: a graph input that has been fed */
    bool *grad_zeroed;  /* per value, during backward: its gradient has been zeroed */

    /* For one batch size: the graph inputs and the kernels' workspace. Each allocation keeps
     * the largest size asked for so far, so a smaller batch (an epoch's last) allocates
     * nothing. */
    int64_t batch;        /* 0: not planned */
    size_t *input_offset; /* per value: offset in `inputs` (graph inputs only) */
    void *inputs, *work;
    size_t inputs_size, work_size, work_used;

    /* For one run (batch, nodes run forward and backward, values kept): activations,
     * gradients and saved state, sharing memory by lifetime (plan.h). Planned again only
     * when the request changes. */
    bool *run_forward, *run_backward, *keep; /* the request of the current plan */
    /* Fusion, planned with the run (inference runs only): per node, the epilogue its forward
     * applies (its consumer's, dn_op.is_epilogue, and maybe the MaxPool after that), and
     * whether it is such a consumer, folded into its producer and skipped. */
    dn_epilogue *epilogue;
    bool *fused;
    int *pooled; /* per node, with DN_EPILOGUE_RELU_MAXPOOL2: the value it pools into */
    bool plan_training, planned;
    bool *wanted, *wanted_keep; /* scratch: the request of the forward being set up */
    dn_plan_scratch *scratch;
    dn_plan plan;
    void *arena;
    size_t arena_size;
    void **saved;        /* per node */
    dn_tensor *x_views;  /* per node, its inputs (node_first[i] .. + n_inputs) */
    dn_tensor *dx_views; /* per node, their gradients (data NULL: not wanted) */
    int *node_first;
    dn_tensor_desc *descs; /* scratch: one node's input descriptors */

    bool profiling;
    dn_node_timing *timing; /* per node */

    int rebatched_by;  /* the input whose batch size last dropped the others, or -1 */
    int64_t old_batch; /* the batch size it replaced */
    bool loss_ready;   /* the last forward was in training mode and computed the loss */
    bool grads_ready;  /* backward ran after it */
} dn_exec;

/* Allocate the params and initialise them from `seed`. threads <= 0: OpenMP's default. */
dn_status dn_exec_init(dn_exec *e, const dn_graph *g, uint64_t seed, int threads, dn_err *err);
/* An inference executor over borrowed params and state: `params` holds every param,
 * contiguous, in g->param_values order (the layout of dn_exec.param_data), then every state
 * tensor in g->state_values order (that of dn_exec.state_data), and must stay valid and unchanged
 * until dn_exec_free. Nothing is initialised, no gradient is allocated. */
dn_status dn_exec_init_borrowed(dn_exec *e, const dn_graph *g, const float *params, int threads,
                                dn_err *err);
void dn_exec_free(dn_exec *e);

/* Lay out buffers for `batch` (no-op when already planned for it). Fed inputs are kept only
 * when the batch size does not change. */
dn_status dn_exec_plan(dn_exec *e, int64_t batch, dn_err *err);

/* Copy an input in (see dn_session_set_input); plans for its batch size. */
dn_status dn_exec_set_input(dn_exec *e, int value, dn_dtype dtype, int rank, const int64_t *shape,
                            const void *data, dn_err *err);

/* Run what `targets` (value indices) need. training: Dropout on, and the loss may be
 * differentiated afterwards. */
dn_status dn_exec_forward(dn_exec *e, bool training, const int *targets, int n_targets,
                          dn_err *err);
dn_status dn_exec_backward(dn_exec *e, dn_err *err);

/* Whether node `node`'s input j takes a gradient in training (the image and labels do not;
 * nothing does in an inference executor). */
bool dn_exec_input_takes_grad(const dn_exec *e, int node, int j);

/* Lay out the run that e->wanted and e->wanted_keep describe, in training with the backward
 * that follows (no-op when already planned for it). Forward calls it (exec_run.c). */
dn_status dn_exec_plan_run(dn_exec *e, bool training, dn_err *err);

#endif
