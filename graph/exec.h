/*
 * exec.h — running a graph: buffers planned per batch size, forward, reverse-mode autograd.
 *
 * Memory: the params live in one contiguous float buffer and their gradients in another,
 * each param's tensor a view into it (optimisers can treat them as one vector). For a batch
 * size, dn_exec_plan lays out every graph input, node output, node gradient, saved state and
 * the shared kernel workspace in arenas allocated once; forward and backward then allocate
 * nothing. Planning again is needed only when the batch size changes, and allocates only when
 * the new size needs more room than any size before (so an epoch's last, partial batch
 * reuses the arenas).
 *
 * Forward runs only the nodes the requested values need (their ancestors). Backward visits,
 * in reverse order, the nodes on the path to the loss whose output needs a gradient; it
 * zeroes all gradients once, seeds ∂L/∂loss = 1 and lets each kernel accumulate, so fan-out
 * and shared weights add up with no special case. Inputs that need no gradient (the image,
 * the labels) are handed to kernels with dx.data == NULL, so no work is spent on them.
 */
#ifndef DN_EXEC_H
#define DN_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"
#include "rng.h"

/* Where each buffer sits in the arena for one batch size. */
typedef struct dn_layout {
    size_t *offset;       /* per value: activation offset, SIZE_MAX when none */
    size_t *grad_offset;  /* per value: gradient offset, SIZE_MAX when none */
    size_t *saved_offset; /* per node */
    size_t total, work;   /* arena and workspace bytes */
} dn_layout;

typedef struct dn_exec {
    const dn_graph *g;     /* borrowed */
    int threads;
    dn_rng rng;            /* initialisers, then one draw per forward for Dropout */

    float *param_data;     /* every param, contiguous, in g->param_values order */
    float *param_grad;     /* their gradients, same layout */
    int64_t param_count;   /* floats in each of the two */

    dn_tensor *val;        /* per value: its data (params: views into param_data) */
    dn_tensor *grad;       /* per value: its gradient, data NULL when it takes none */
    bool *on_loss_path;    /* per node: the loss depends on it */
    bool *wanted;          /* per node, scratch: the current forward runs it */
    bool *computed;        /* per value: valid since the last forward / set_input */
    bool *input_set;       /* per value: a graph input that has been fed */

    /* Planned for one batch size; the arenas keep the largest size planned so far. */
    int64_t batch;         /* 0: not planned */
    dn_layout lay;
    dn_tensor_desc *descs; /* scratch for planning: one node's input descriptors */
    void *arena;           /* inputs, activations, gradients and saved state */
    void *work;            /* the kernels' shared scratch */
    size_t arena_size, work_size;
    void **saved;          /* per node */
    dn_tensor *x_views;    /* per node, its inputs (node_first[i] .. + n_inputs) */
    dn_tensor *dx_views;   /* per node, their gradients (data NULL: not wanted) */
    int *node_first;

    int rebatched_by;      /* the input whose batch size last dropped the others, or -1 */
    int64_t old_batch;     /* the batch size it replaced */
    bool loss_ready;       /* the last forward was in training mode and computed the loss */
    bool grads_ready;      /* backward ran after it */
} dn_exec;

/* Allocate the params and initialise them from `seed`. threads <= 0: OpenMP's default. */
dn_status dn_exec_init(dn_exec *e, const dn_graph *g, uint64_t seed, int threads, dn_err *err);
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

#endif
