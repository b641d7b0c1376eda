/*
 * plan.h — memory planning: which activations, gradients and saved states of one run can
 * share memory, and where each one sits in the arena.
 *
 * A run is a timeline of steps. Node i (in sorted order, n nodes) runs its forward at step i
 * and, when it runs backward, its backward at step 2n − 1 − i. Every buffer lives over an
 * interval of steps, both ends included:
 *
 *   activation of node i   from step i to its last reader: forward readers; in training,
 *                          also the backward of readers that read their inputs (Conv's x)
 *                          and node i's own backward when it reads its output (ReLU's y);
 *                          kept tensors (what the caller fetches) live to the end
 *   gradient of a value    from the backward of its last forward reader (the first to add to
 *                          it; the engine zeroes it then) to the backward of its producer
 *   saved state of node i  from step i to i's backward (or to step i in inference)
 *
 * Buffers whose intervals do not overlap may share bytes. An op marked `inplace` (ReLU,
 * Dropout, …) writes its output over its input when that input dies at this very node. The
 * buffers are then placed greedily, largest first, each at the lowest offset that does not
 * collide with a placed buffer alive at the same time (the greedy-by-size strategy of
 * TensorFlow Lite's arena planner). Graph inputs, params and the kernels' workspace are not
 * planned here: they live for the whole session (exec.c).
 *
 * Planning allocates nothing: the scratch is sized once per graph by dn_plan_scratch_new.
 */
#ifndef DN_PLAN_H
#define DN_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* What one run needs: which nodes run forward and backward, and which values the caller
 * reads afterwards. Arrays are per node / per value of the graph. */
typedef struct dn_plan_request {
    int64_t batch;
    const bool *forward;  /* per node: runs forward */
    const bool *backward; /* per node: runs backward (empty in inference) */
    const bool *keep;     /* per value: must stay readable to the end of the run */
} dn_plan_request;

/* Where things are, as byte offsets into the arena; SIZE_MAX: not in the arena. */
typedef struct dn_plan {
    size_t *offset;       /* per value: its activation */
    size_t *grad_offset;  /* per value: its gradient */
    size_t *saved_offset; /* per node */
    size_t total;         /* arena bytes */
    size_t unshared;      /* what the arena would take if nothing shared */
} dn_plan;

typedef struct dn_plan_scratch dn_plan_scratch;

/* owned: free with dn_plan_scratch_free. NULL when out of memory. */
dn_plan_scratch *dn_plan_scratch_new(const dn_graph *g);
void dn_plan_scratch_free(dn_plan_scratch *s);

/* Fill `plan` (its arrays sized by the caller) for request r. Fails only when a size
 * overflows, naming the tensor. */
dn_status dn_plan_make(const dn_graph *g, const dn_plan_request *r, dn_plan_scratch *s,
                       dn_plan *plan, dn_err *err);

#endif
