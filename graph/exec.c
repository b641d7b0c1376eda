/*
 * exec.c — a session's memory: the params, the graph inputs and each run's buffers (see
 * exec.h); exec_run.c runs forward and backward in them.
 *
 * dn_exec_init puts the params in one contiguous buffer (their gradients in another) and
 * fills each with its initialiser, in param order, from the session's generator, so the
 * weights follow from the seed alone. The state tensors (BatchNorm's running statistics) get
 * a third buffer, with no gradient, initialised after the params. It also marks the nodes on
 * the loss path: the loss's ancestors, found in one reverse pass over the sorted nodes.
 *
 * Planning has two levels, each redone only when what it depends on changes:
 *   per batch size  dn_exec_plan: the graph inputs at 64-byte aligned offsets, and one
 *                   workspace as large as the largest any node asks for (kernels run one at
 *                   a time, so they can share it);
 *   per run         dn_exec_plan_run: which nodes run forward and backward and which values
 *                   stay readable; plan.c places activations, gradients and saved state in
 *                   one arena, and every tensor view the kernels see is pointed into it.
 * Buffers only grow, so an epoch's smaller last batch allocates nothing.
 *
 * dn_exec_set_input checks an array against its input's declared shape and dtype (int64
 * labels are narrowed to int32, each value range-checked), plans for its batch size and
 * copies it in. A new batch size drops the other inputs, which no longer fit; the next
 * forward that needs one names the input that changed the batch.
 */
#include "graph/exec.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/parallel.h"

#define ALIGN 64

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* a + b into *sum, false on overflow. */
static bool add_ok(size_t a, size_t b, size_t *sum)
{
    if (a > SIZE_MAX - b)
        return false;
    *sum = a + b;
    return true;
}

static void *alloc_aligned(size_t n) { return n ? aligned_alloc(ALIGN, round_up(n)) : NULL; }

/* ------------------------------------------------------------------ init */

/* Issue 10 (item 7): a failed calloc used to return silently, leaving on_loss_path all false,
 * and every later backward "succeeded" with zero gradients; now the session fails to open. */
static dn_status mark_loss_path(dn_exec *e, dn_err *err)
{
    const dn_graph *g = e->g;
    if (g->loss < 0)
        return DN_OK;
    bool *needed = calloc((size_t)g->n_values, sizeof *needed);
    if (!needed)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: out of memory marking the loss's nodes", g->file);
    needed[g->loss] = true;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const dn_node *n = &g->nodes[i];
        if (!needed[n->output])
            continue;
        e->on_loss_path[i] = true;
        for (int j = 0; j < n->n_inputs; j++)
            needed[n->inputs[j]] = true;
    }
    free(needed);
    return DN_OK;
}

/* Elements of all params together (e->param_count), checked for overflow. */
static dn_status count_params(dn_exec *e, dn_err *err)
{
    const dn_graph *g = e->g;
    int64_t total = 0;
    for (int i = 0; i < g->n_params; i++) {
        int64_t n = dn_shape_numel(&g->values[g->param_values[i]].desc.shape);
        if (n < 0 || total > INT64_MAX - n)
            return dn_err_set(err, DN_ERR_NOMEM, "%s: the params' element count overflows",
                              g->file);
        total += n;
    }
    e->param_count = total;
    if ((uint64_t)total > SIZE_MAX / sizeof(float))
        return dn_err_set(err, DN_ERR_NOMEM, "%s: %lld params do not fit in memory", g->file,
                          (long long)total);
    return DN_OK;
}

static dn_status init_params(dn_exec *e, uint64_t seed, dn_err *err)
{
    const dn_graph *g = e->g;
    dn_status st = count_params(e, err);
    if (st)
        return st;
    int64_t total = e->param_count;
    size_t bytes = (size_t)total * sizeof(float);
    e->param_data = alloc_aligned(bytes + sizeof(float));
    e->param_grad = alloc_aligned(bytes + sizeof(float));
    if (!e->param_data || !e->param_grad)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu bytes for %lld params",
                          g->file, 2 * bytes, (long long)total);
    dn_rng_seed(&e->rng, seed);
    int64_t offset = 0;
    for (int i = 0; i < g->n_params; i++) {
        int v = g->param_values[i];
        const dn_value *val = &g->values[v];
        e->val[v] = (dn_tensor){ DN_F32, val->desc.shape, e->param_data + offset };
        e->grad[v] = (dn_tensor){ DN_F32, val->desc.shape, e->param_grad + offset };
        dn_init_fill(&val->init, &val->desc.shape, e->param_data + offset, &e->rng);
        offset += dn_shape_numel(&val->desc.shape);
    }
    memset(e->param_grad, 0, bytes);
    return DN_OK;
}

/* The state tensors: one buffer, views into it, filled after the params so that adding
 * state to a model leaves its params' random draws as they were. */
static dn_status init_state(dn_exec *e, dn_err *err)
{
    const dn_graph *g = e->g;
    int64_t total = 0;
    for (int i = 0; i < g->n_state; i++) {
        int64_t n = dn_shape_numel(&g->values[g->state_values[i]].desc.shape);
        if (n < 0 || total > INT64_MAX - n || (uint64_t)(total + n) > SIZE_MAX / sizeof(float))
            return dn_err_set(err, DN_ERR_NOMEM, "%s: the state's element count overflows",
                              g->file);
        total += n;
    }
    e->state_count = total;
    e->state_data = alloc_aligned((size_t)total * sizeof(float) + sizeof(float));
    if (!e->state_data)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %lld floats of state", g->file,
                          (long long)total);
    int64_t offset = 0;
    for (int i = 0; i < g->n_state; i++) {
        int v = g->state_values[i];
        const dn_value *val = &g->values[v];
        e->val[v] = (dn_tensor){ DN_F32, val->desc.shape, e->state_data + offset };
        e->grad[v] = (dn_tensor){ DN_F32, val->desc.shape, NULL };
        dn_init_fill(&val->init, &val->desc.shape, e->state_data + offset, &e->rng);
        offset += dn_shape_numel(&val->desc.shape);
    }
    return DN_OK;
}

/* Point every param's and state tensor's view into the borrowed buffer (params, then state);
 * their gradients stay NULL. */
static dn_status borrow_weights(dn_exec *e, const float *params, dn_err *err)
{
    const dn_graph *g = e->g;
    dn_status st = count_params(e, err);
    if (st)
        return st;
    /* Never written through: an inference executor refuses everything that writes params or
     * state (training forwards, backward, loading weights, the trainer). */
    e->param_data = (float *)params;
    int64_t offset = 0;
    for (int i = 0; i < g->n_params; i++) {
        int v = g->param_values[i];
        e->val[v] = (dn_tensor){ DN_F32, g->values[v].desc.shape, e->param_data + offset };
        e->grad[v] = (dn_tensor){ DN_F32, g->values[v].desc.shape, NULL };
        offset += dn_shape_numel(&g->values[v].desc.shape);
    }
    /* The state follows the params; dn_weights counted both without overflow. */
    e->state_data = e->param_data + e->param_count;
    offset = 0;
    for (int i = 0; i < g->n_state; i++) {
        int v = g->state_values[i];
        e->val[v] = (dn_tensor){ DN_F32, g->values[v].desc.shape, e->state_data + offset };
        e->grad[v] = (dn_tensor){ DN_F32, g->values[v].desc.shape, NULL };
        offset += dn_shape_numel(&g->values[v].desc.shape);
    }
    e->state_count = offset;
    return DN_OK;
}

/* What both executors hold: per-value and per-node bookkeeping, the loss path. */
static dn_status init_common(dn_exec *e, const dn_graph *g, int threads, dn_err *err)
{
    memset(e, 0, sizeof *e);
    e->g = g;
    e->threads = threads > 0 ? threads : omp_get_max_threads();
    e->rebatched_by = -1;
    size_t nv = (size_t)g->n_values, nn = (size_t)g->n_nodes;
    e->val = calloc(nv, sizeof *e->val);
    e->grad = calloc(nv, sizeof *e->grad);
    e->computed = calloc(nv, sizeof *e->computed);
    e->input_set = calloc(nv, sizeof *e->input_set);
    e->grad_zeroed = calloc(nv, sizeof *e->grad_zeroed);
    e->keep = calloc(nv, sizeof *e->keep);
    e->wanted_keep = calloc(nv, sizeof *e->wanted_keep);
    e->wanted = calloc(nn, sizeof *e->wanted);
    e->input_offset = calloc(nv, sizeof *e->input_offset);
    e->on_loss_path = calloc(nn, sizeof *e->on_loss_path);
    e->run_forward = calloc(nn, sizeof *e->run_forward);
    e->run_backward = calloc(nn, sizeof *e->run_backward);
    e->saved = calloc(nn, sizeof *e->saved);
    e->timing = calloc(nn, sizeof *e->timing);
    e->node_first = calloc(nn + 1, sizeof *e->node_first);
    e->epilogue = calloc(nn, sizeof *e->epilogue);
    e->fused = calloc(nn, sizeof *e->fused);
    e->pooled = calloc(nn, sizeof *e->pooled);
    if (!e->epilogue || !e->fused || !e->pooled)
        return dn_err_set(err, DN_ERR_NOMEM, "out of memory");
    if (!e->val || !e->grad || !e->computed || !e->input_set || !e->grad_zeroed || !e->keep ||
        !e->wanted_keep || !e->wanted || !e->input_offset || !e->on_loss_path || !e->run_forward ||
        !e->run_backward || !e->saved || !e->timing || !e->node_first)
        return dn_err_set(err, DN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nn; i++)
        e->node_first[i + 1] = e->node_first[i] + g->nodes[i].n_inputs;
    e->x_views = calloc((size_t)e->node_first[nn] + 1, sizeof *e->x_views);
    e->dx_views = calloc((size_t)e->node_first[nn] + 1, sizeof *e->dx_views);
    e->descs = calloc((size_t)e->node_first[nn] + 1, sizeof *e->descs);
    e->plan.offset = calloc(nv, sizeof *e->plan.offset);
    e->plan.grad_offset = calloc(nv, sizeof *e->plan.grad_offset);
    e->plan.saved_offset = calloc(nn + 1, sizeof *e->plan.saved_offset);
    e->scratch = dn_plan_scratch_new(g);
    if (!e->x_views || !e->dx_views || !e->descs || !e->plan.offset || !e->plan.grad_offset ||
        !e->plan.saved_offset || !e->scratch)
        return dn_err_set(err, DN_ERR_NOMEM, "out of memory");
    return mark_loss_path(e, err);
}

dn_status dn_exec_init(dn_exec *e, const dn_graph *g, uint64_t seed, int threads, dn_err *err)
{
    dn_status st = init_common(e, g, threads, err);
    if (!st)
        st = init_params(e, seed, err);
    return st ? st : init_state(e, err);
}

dn_status dn_exec_init_borrowed(dn_exec *e, const dn_graph *g, const float *params, int threads,
                                dn_err *err)
{
    dn_status st = init_common(e, g, threads, err);
    e->inference = true;
    return st ? st : borrow_weights(e, params, err);
}

void dn_exec_free(dn_exec *e)
{
    if (!e->inference) { /* an inference executor's are borrowed */
        free(e->param_data);
        free(e->state_data);
    }
    free(e->param_grad);
    free(e->val);
    free(e->grad);
    free(e->computed);
    free(e->input_set);
    free(e->grad_zeroed);
    free(e->keep);
    free(e->wanted_keep);
    free(e->wanted);
    free(e->input_offset);
    free(e->on_loss_path);
    free(e->run_forward);
    free(e->run_backward);
    free(e->saved);
    free(e->timing);
    free(e->node_first);
    free(e->epilogue);
    free(e->fused);
    free(e->pooled);
    free(e->x_views);
    free(e->dx_views);
    free(e->descs);
    free(e->plan.offset);
    free(e->plan.grad_offset);
    free(e->plan.saved_offset);
    dn_plan_scratch_free(e->scratch);
    free(e->arena);
    free(e->inputs);
    free(e->work);
    memset(e, 0, sizeof *e);
}

/* ------------------------------------------------------------------ planning */

/* Grow *buf to at least `size` bytes (contents are not kept). */
static bool reserve(void **buf, size_t *have, size_t size)
{
    if (size <= *have)
        return true;
    free(*buf);
    *buf = alloc_aligned(size);
    *have = *buf ? size : 0;
    return *buf != NULL;
}

/* Offsets of the graph inputs and the largest workspace any node needs at this batch size. */
static dn_status size_batch(dn_exec *e, int64_t batch, size_t *inputs, size_t *work, int *work_node,
                            dn_err *err)
{
    const dn_graph *g = e->g;
    *inputs = *work = 0;
    *work_node = -1;
    for (int k = 0; k < g->n_inputs; k++) {
        const dn_value *v = &g->values[g->input_values[k]];
        dn_shape s = dn_shape_at_batch(v->desc.shape, batch);
        int64_t n = dn_shape_numel(&s), bytes;
        if (n < 0 || !dn_mul_ok(n, (int64_t)dn_dtype_size(v->desc.dtype), &bytes) ||
            (uint64_t)bytes > SIZE_MAX / 4 || !add_ok(*inputs, round_up((size_t)bytes), inputs))
            return dn_err_set(err, DN_ERR_NOMEM, "%s: batch %lld is too large for input \"%s\"",
                              g->file, (long long)batch, v->name);
        e->input_offset[g->input_values[k]] = *inputs - round_up((size_t)bytes);
    }
    dn_tensor_desc *in = e->descs, out;
    for (int i = 0; i < g->n_nodes; i++) {
        const dn_node *n = &g->nodes[i];
        if (!n->op->workspace_size)
            continue;
        for (int j = 0; j < n->n_inputs; j++) {
            in[j] = g->values[n->inputs[j]].desc;
            in[j].shape = dn_shape_at_batch(in[j].shape, batch);
        }
        out = g->values[n->output].desc;
        out.shape = dn_shape_at_batch(out.shape, batch);
        size_t ws = n->op->workspace_size(n->attrs, in, n->n_inputs, &out, e->threads);
        if (ws > *work) {
            *work = ws;
            *work_node = i;
        }
    }
    return DN_OK;
}

dn_status dn_exec_plan(dn_exec *e, int64_t batch, dn_err *err)
{
    if (batch == e->batch)
        return DN_OK;
    const dn_graph *g = e->g;
    if (batch < 1 || batch > DN_MAX_DIM)
        return dn_err_set(err, DN_ERR_ARG, "%s: batch size must be in [1, %lld], found %lld",
                          g->file, (long long)DN_MAX_DIM, (long long)batch);
    size_t inputs, work;
    int work_node;
    dn_status st = size_batch(e, batch, &inputs, &work, &work_node, err);
    e->batch = 0;
    e->planned = false;
    if (st)
        return st;
    /* Each failure names the buffer and its size, so that a huge batch says what is huge. */
    if (!reserve(&e->inputs, &e->inputs_size, inputs))
        return dn_err_set(err, DN_ERR_NOMEM,
                          "%s: cannot allocate %zu bytes for the graph inputs (the first, \"%s\", "
                          "and the others) at batch %lld",
                          g->file, inputs, g->values[g->input_values[0]].name, (long long)batch);
    if (!reserve(&e->work, &e->work_size, work))
        return dn_err_set(err, DN_ERR_NOMEM,
                          "%s: cannot allocate %zu bytes of workspace for node \"%s\" at batch "
                          "%lld",
                          g->file, work, work_node >= 0 ? g->nodes[work_node].name : "?",
                          (long long)batch);
    e->batch = batch;
    e->work_used = work;
    for (int k = 0; k < g->n_inputs; k++) {
        int v = g->input_values[k];
        e->val[v] =
            (dn_tensor){ g->values[v].desc.dtype, dn_shape_at_batch(g->values[v].desc.shape, batch),
                         (unsigned char *)e->inputs + e->input_offset[v] };
    }
    memset(e->input_set, 0, (size_t)g->n_values * sizeof *e->input_set);
    memset(e->computed, 0, (size_t)g->n_values * sizeof *e->computed);
    e->loss_ready = e->grads_ready = false;
    return DN_OK;
}

bool dn_exec_input_takes_grad(const dn_exec *e, int node, int j)
{
    const dn_node *n = &e->g->nodes[node];
    return !e->inference && dn_op_takes_grad(n->op, j) && e->g->values[n->inputs[j]].needs_grad;
}

/* Point every activation, gradient, saved state and kernel view at its place in the arena. */
static void bind_views(dn_exec *e)
{
    const dn_graph *g = e->g;
    unsigned char *base = e->arena;
    for (int v = 0; v < g->n_values; v++) {
        const dn_value *val = &g->values[v];
        if (val->kind != DN_VALUE_NODE)
            continue;
        dn_shape s = dn_shape_at_batch(val->desc.shape, e->batch);
        size_t at = e->plan.offset[v], grad_at = e->plan.grad_offset[v];
        e->val[v] = (dn_tensor){ val->desc.dtype, s, at == SIZE_MAX ? NULL : base + at };
        e->grad[v] = (dn_tensor){ val->desc.dtype, s, grad_at == SIZE_MAX ? NULL : base + grad_at };
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const dn_node *n = &g->nodes[i];
        size_t at = e->plan.saved_offset[i];
        e->saved[i] = at == SIZE_MAX ? NULL : base + at;
        for (int j = 0; j < n->n_inputs; j++) {
            int v = n->inputs[j];
            dn_tensor *dx = &e->dx_views[e->node_first[i] + j];
            e->x_views[e->node_first[i] + j] = e->val[v];
            *dx = e->grad[v];
            if (!dn_exec_input_takes_grad(e, i, j))
                dx->data = NULL;
        }
    }
}

/* Which nodes run backward after a training forward that computes the loss. */
static void mark_backward(dn_exec *e, bool training)
{
    const dn_graph *g = e->g;
    bool loss = training && g->loss >= 0 && e->run_forward[g->values[g->loss].node];
    for (int i = 0; i < g->n_nodes; i++)
        e->run_backward[i] = loss && e->run_forward[i] && e->on_loss_path[i] &&
                             g->values[g->nodes[i].output].needs_grad;
}

/* The node that reads value v, when exactly one input slot of the graph's nodes (run or not)
 * does; else -1. */
static int sole_reader(const dn_graph *g, int v)
{
    int readers = 0, node = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_inputs; j++)
            if (g->nodes[i].inputs[j] == v)
                readers++, node = i;
    return readers == 1 ? node : -1;
}

/* Whether the arena bytes of value a and value b (both planned) overlap. */
static bool arena_overlap(const dn_exec *e, int a, int b)
{
    size_t a0 = e->plan.offset[a], b0 = e->plan.offset[b];
    if (a0 == SIZE_MAX || b0 == SIZE_MAX)
        return false;
    size_t a1 = a0 + dn_shape_numel(&e->val[a].shape) * dn_dtype_size(e->val[a].dtype);
    size_t b1 = b0 + dn_shape_numel(&e->val[b].shape) * dn_dtype_size(e->val[b].dtype);
    return a0 < b1 && b0 < a1;
}

/* With producer i's ReLU j folded in: fold the MaxPool m after it too, when m is the ReLU's
 * only reader, its window is the pooling epilogue's (2×2, stride 2), nothing else runs
 * between them (i, j, m consecutive: the plan gives m's output a buffer from step m on, and
 * only the buffers alive at step i could share it) and that buffer does not overlap one of
 * i's inputs (which may die at step i, m's output then reusing its bytes). */
static void plan_pool_fusion(dn_exec *e, int i, int j)
{
    const dn_graph *g = e->g;
    int w = g->nodes[j].output, m = sole_reader(g, w);
    if (m != j + 1 || j != i + 1 || !e->run_forward[m] || e->keep[w] ||
        !(g->nodes[i].op->epilogues & (1u << DN_EPILOGUE_RELU_MAXPOOL2)) ||
        !g->nodes[m].op->is_pool_epilogue || !g->nodes[m].op->is_pool_epilogue(g->nodes[m].attrs))
        return;
    int out = g->nodes[m].output;
    if (e->plan.offset[out] == SIZE_MAX || e->saved[i])
        return;
    for (int k = 0; k < g->nodes[i].n_inputs; k++)
        if (arena_overlap(e, g->nodes[i].inputs[k], out))
            return;
    e->epilogue[i] = DN_EPILOGUE_RELU_MAXPOOL2;
    e->pooled[i] = out;
    e->fused[m] = true;
}

/* Fold each epilogue node (ReLU) into its producer (Conv, Affine) where nothing can tell:
 * an inference run (no backward reads the producer's output or the ReLU's), the producer
 * runs and can apply it, the ReLU is the only reader of the producer's output, which the
 * caller does not keep, and the plan already runs the ReLU in place (its output is the
 * producer's buffer). The producer then writes the ReLU's values into that buffer and the
 * ReLU is skipped: one pass over the tensor less, made while the producer's block is in
 * cache. The values are the same bits (the same select on the same sums). */
static void plan_fusion(dn_exec *e, bool training)
{
    const dn_graph *g = e->g;
    for (int i = 0; i < g->n_nodes; i++)
        e->epilogue[i] = DN_EPILOGUE_NONE, e->fused[i] = false, e->pooled[i] = -1;
    if (training)
        return;
    for (int j = 0; j < g->n_nodes; j++) {
        const dn_node *n = &g->nodes[j];
        dn_epilogue ep = n->op->is_epilogue;
        if (ep == DN_EPILOGUE_NONE || !e->run_forward[j] || n->n_inputs != 1)
            continue;
        int v = n->inputs[0], w = n->output;
        if (g->values[v].kind != DN_VALUE_NODE || e->keep[v] || sole_reader(g, v) != j)
            continue;
        int i = g->values[v].node;
        const dn_op *producer = g->nodes[i].op;
        if (!e->run_forward[i] || !(producer->epilogues & (1u << ep)) ||
            e->epilogue[i] != DN_EPILOGUE_NONE || e->plan.offset[v] == SIZE_MAX ||
            e->plan.offset[v] != e->plan.offset[w] || g->values[v].desc.dtype != DN_F32)
            continue;
        e->epilogue[i] = ep;
        e->fused[j] = true;
        if (ep == DN_EPILOGUE_RELU)
            plan_pool_fusion(e, i, j);
    }
}

/* Plan the run that e->wanted and e->wanted_keep describe, unless the current plan is
 * already for it. */
dn_status dn_exec_plan_run(dn_exec *e, bool training, dn_err *err)
{
    const dn_graph *g = e->g;
    size_t nn = (size_t)g->n_nodes, nv = (size_t)g->n_values;
    if (e->planned && e->plan_training == training &&
        !memcmp(e->wanted, e->run_forward, nn * sizeof *e->wanted) &&
        !memcmp(e->wanted_keep, e->keep, nv * sizeof *e->keep))
        return DN_OK;
    memcpy(e->run_forward, e->wanted, nn * sizeof *e->wanted);
    memcpy(e->keep, e->wanted_keep, nv * sizeof *e->keep);
    mark_backward(e, training);
    e->planned = false;
    e->plan_training = training;
    dn_plan_request r = { e->batch, e->run_forward, e->run_backward, e->keep };
    dn_status st = dn_plan_make(g, &r, e->scratch, &e->plan, err);
    if (st)
        return st;
    if (!reserve(&e->arena, &e->arena_size, e->plan.total))
        return dn_err_set(err, DN_ERR_NOMEM,
                          "%s: cannot allocate %zu bytes for the arena (activations, their "
                          "gradients and saved state) at batch %lld",
                          g->file, e->plan.total, (long long)e->batch);
    bind_views(e);
    plan_fusion(e, training);
    e->planned = true;
    return DN_OK;
}

/* ------------------------------------------------------------------ inputs */

static dn_status copy_labels64(dn_exec *e, const dn_value *val, const int64_t *src, int32_t *dst,
                               int64_t n, dn_err *err)
{
    for (int64_t i = 0; i < n; i++) {
        if (src[i] < INT32_MIN || src[i] > INT32_MAX)
            return dn_err_set(err, DN_ERR_ARG,
                              "%s: input \"%s\": int64 value %lld at %lld does not fit int32",
                              e->g->file, val->name, (long long)src[i], (long long)i);
        dst[i] = (int32_t)src[i];
    }
    return DN_OK;
}

typedef struct copy_job {
    unsigned char *dst;
    const unsigned char *src;
} copy_job;

static void copy_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const copy_job *j = ctx;
    memcpy(j->dst + lo, j->src + lo, (size_t)(hi - lo));
}

/* An input's bytes into its buffer, on the session's threads for a large batch (a stretch of
 * the training step that would otherwise run on one). */
static void copy_input(const dn_exec *e, void *dst, const void *src, int64_t bytes)
{
    dn_parallel_for(bytes, dn_team(e->threads, bytes / 4, DN_PARALLEL_MIN), copy_range,
                    &(copy_job){ dst, src });
}

dn_status dn_exec_set_input(dn_exec *e, int value, dn_dtype dtype, int rank, const int64_t *shape,
                            const void *data, dn_err *err)
{
    const dn_graph *g = e->g;
    const dn_value *val = &g->values[value];
    char want[DN_SHAPE_STR_MAX], got[DN_SHAPE_STR_MAX];
    if (rank < 0 || rank > DN_MAX_RANK || (rank > 0 && !shape) || !data)
        return dn_err_set(err, DN_ERR_ARG, "%s: input \"%s\": bad rank, shape or data pointer",
                          g->file, val->name);
    dn_shape s = dn_shape_make(rank, shape, val->desc.shape.batched);
    bool fits = rank == val->desc.shape.rank;
    for (int i = 0; i < rank && fits; i++)
        fits = (i == 0 && val->desc.shape.batched) ? s.d[0] >= 1 : s.d[i] == val->desc.shape.d[i];
    dn_shape found = s;
    found.batched = false; /* show the numbers the caller gave */
    if (!fits)
        return dn_err_set(err, DN_ERR_SHAPE, "%s: input \"%s\": expected shape %s, found %s",
                          g->file, val->name, dn_shape_str(&val->desc.shape, want, sizeof want),
                          dn_shape_str(&found, got, sizeof got));
    bool int_ok = val->desc.dtype == DN_I32 && (dtype == DN_I32 || dtype == DN_I64);
    if (dtype != val->desc.dtype && !int_ok)
        return dn_err_set(err, DN_ERR_SHAPE, "%s: input \"%s\": expected %s, found %s", g->file,
                          val->name, dn_dtype_name(val->desc.dtype), dn_dtype_name(dtype));
    int64_t batch = val->desc.shape.batched ? s.d[0] : (e->batch ? e->batch : 1);
    bool others_set = false;
    for (int k = 0; k < g->n_inputs; k++)
        others_set |= g->input_values[k] != value && e->input_set[g->input_values[k]];
    if (batch != e->batch && others_set) {
        e->rebatched_by = value;
        e->old_batch = e->batch;
    }
    dn_status st = dn_exec_plan(e, batch, err);
    if (st)
        return st;
    const dn_tensor *t = &e->val[value];
    int64_t n = dn_shape_numel(&t->shape);
    if (dtype == DN_I64 && val->desc.dtype == DN_I32)
        st = copy_labels64(e, val, data, dn_i32(t), n, err);
    else
        copy_input(e, t->data, data, n * (int64_t)dn_dtype_size(dtype));
    if (st)
        return st;
    e->input_set[value] = true;
    memset(e->computed, 0, (size_t)g->n_values * sizeof *e->computed);
    e->loss_ready = e->grads_ready = false;
    return DN_OK;
}
