/*
 * exec_run.c — forward and backward over a planned run (see exec.h; exec.c plans).
 *
 * Forward runs the targets' ancestors, found in one reverse pass over the sorted nodes (a
 * node is needed when its output is), in sorted order; every graph input they read must have
 * been fed. The run is planned (exec.c) before the first node runs; a training loop, asking
 * for the same run each step, plans once. Randomness: one draw from the session's generator
 * per forward, hashed with each node's index into the node's seed, so Dropout's masks differ
 * between nodes and steps yet follow from the seed.
 *
 * Backward visits, in reverse sorted order, the nodes planned for it: run forward, on the
 * path to the loss, output needing a gradient. Kernels accumulate (dx += ∂L/∂x), so each
 * activation gradient is zeroed when backward first touches it (its bytes may still hold a
 * tensor whose life has ended) and the loss's is then seeded with ∂L/∂L = 1; the param
 * gradients, one contiguous buffer, are zeroed together first.
 *
 * Each of forward and backward runs its nodes as one crew (runtime/parallel.h) unless the
 * caller already leads one (the trainer's step does): one OpenMP region for all the kernels'
 * loops.
 *
 * With profiling on, each kernel call is timed with omp_get_wtime; off, it costs one branch
 * per node.
 */
#include "graph/exec.h"

#include <omp.h>
#include <string.h>

#include "runtime/parallel.h"

/* ------------------------------------------------------------------ forward */

/* Mark the nodes the targets depend on; fail if one of them reads an input not yet fed. */
static dn_status select_nodes(dn_exec *e, const int *targets, int n_targets, dn_err *err)
{
    const dn_graph *g = e->g;
    memset(e->wanted, 0, (size_t)g->n_nodes * sizeof *e->wanted);
    /* computed[] doubles as the "needed" mark during this walk; cleared before running. */
    bool *needed = e->computed;
    memset(needed, 0, (size_t)g->n_values * sizeof *needed);
    for (int i = 0; i < n_targets; i++)
        needed[targets[i]] = true;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const dn_node *n = &g->nodes[i];
        if (!needed[n->output])
            continue;
        e->wanted[i] = true;
        for (int j = 0; j < n->n_inputs; j++)
            needed[n->inputs[j]] = true;
    }
    for (int k = 0; k < g->n_inputs; k++) {
        int v = g->input_values[k];
        if (needed[v] && !e->input_set[v] && e->rebatched_by >= 0)
            return dn_err_set(err, DN_ERR_ARG,
                              "%s: input \"%s\" is needed but was dropped when \"%s\" changed the "
                              "batch size from %lld to %lld (feed every input with the same batch)",
                              g->file, g->values[v].name, g->values[e->rebatched_by].name,
                              (long long)e->old_batch, (long long)e->batch);
        if (needed[v] && !e->input_set[v])
            return dn_err_set(err, DN_ERR_ARG, "%s: input \"%s\" is needed but has not been set",
                              g->file, g->values[v].name);
    }
    return DN_OK;
}

static dn_kernel kernel_for(const dn_exec *e, int i, bool training, uint64_t step_seed)
{
    const dn_node *n = &e->g->nodes[i];
    return (dn_kernel){ .attrs = n->attrs,
                        .n_inputs = n->n_inputs,
                        .x = &e->x_views[e->node_first[i]],
                        .y = &e->val[n->output],
                        .dx = &e->dx_views[e->node_first[i]],
                        .dy = &e->grad[n->output],
                        .work = e->work,
                        .saved = e->saved[i],
                        .training = training,
                        .seed = dn_rng_hash(step_seed, (uint64_t)i),
                        .threads = e->threads,
                        .epilogue = training ? DN_EPILOGUE_NONE : e->epilogue[i],
                        .pooled = training || e->pooled[i] < 0 ? NULL : &e->val[e->pooled[i]] };
}

/* The values the caller may read after this forward: the targets (every value with
 * keep_all). */
static void mark_kept(dn_exec *e, const int *targets, int n_targets)
{
    size_t nv = (size_t)e->g->n_values;
    memset(e->wanted_keep, e->keep_all, nv * sizeof *e->wanted_keep);
    for (int i = 0; i < n_targets; i++)
        e->wanted_keep[targets[i]] = true;
}

static double seconds(void) { return omp_get_wtime(); }

static dn_status run_node_forward(dn_exec *e, int i, bool training, uint64_t step_seed, dn_err *err)
{
    const dn_node *n = &e->g->nodes[i];
    dn_kernel k = kernel_for(e, i, training, step_seed);
    if (n->op->check) {
        dn_node_ctx c = dn_graph_node_ctx(e->g, n, err);
        dn_status st = n->op->check(&c, n->attrs, k.x);
        if (st)
            return st;
    }
    if (!e->profiling) {
        n->op->forward(&k);
        return DN_OK;
    }
    double t0 = seconds();
    n->op->forward(&k);
    e->timing[i].forward_seconds += seconds() - t0;
    e->timing[i].forward_calls++;
    return DN_OK;
}

/* A crew for a batch; a single example's loops are mostly too small to split, and opening
 * the crew's region for none would cost more than they take (LeNet-5's forward at batch 1, 2
 * threads: 9.4 µs without, 10.7 with). Its loops that do split open regions of their own. */
static int crew_threads(const dn_exec *e) { return e->batch > 1 ? e->threads : 1; }

typedef struct forward_call {
    dn_exec *e;
    bool training;
    uint64_t step_seed;
    dn_err *err;
    dn_status st;
} forward_call;

/* The planned nodes in sorted order, as one crew (runtime/parallel.h) unless the caller's
 * already is: the kernels' loops go to threads that wait in the library's own wait. */
static void forward_nodes(void *arg)
{
    forward_call *c = arg;
    dn_exec *e = c->e;
    for (int i = 0; i < e->g->n_nodes && !c->st; i++)
        if (e->run_forward[i] && !e->fused[i])
            c->st = run_node_forward(e, i, c->training, c->step_seed, c->err);
}

dn_status dn_exec_forward(dn_exec *e, bool training, const int *targets, int n_targets, dn_err *err)
{
    const dn_graph *g = e->g;
    if (training && e->inference)
        return dn_err_set(err, DN_ERR_ARG,
                          "%s: a training forward on an inference session (it borrows read-only "
                          "weights and holds no gradients); use DN_INFER",
                          g->file);
    if (e->batch == 0)
        return dn_err_set(err, DN_ERR_ARG, "%s: no input has been set", g->file);
    dn_status st = select_nodes(e, targets, n_targets, err);
    memset(e->computed, 0, (size_t)g->n_values * sizeof *e->computed);
    e->loss_ready = e->grads_ready = false;
    if (st)
        return st;
    mark_kept(e, targets, n_targets);
    if ((st = dn_exec_plan_run(e, training, err)))
        return st;
    forward_call c = {
        .e = e, .training = training, .step_seed = dn_rng_next(&e->rng), .err = err, .st = DN_OK
    };
    dn_crew_run(crew_threads(e), forward_nodes, &c);
    if (c.st)
        return c.st;
    for (int v = 0; v < g->n_values; v++)
        e->computed[v] = g->values[v].kind == DN_VALUE_PARAM ||
                         g->values[v].kind == DN_VALUE_STATE || e->input_set[v] || e->keep[v];
    e->loss_ready = training && g->loss >= 0 && e->computed[g->loss];
    return DN_OK;
}

/* ------------------------------------------------------------------ backward */

static void zero_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    unsigned char *const *p = ctx;
    memset(*p + lo, 0, (size_t)(hi - lo));
}

/* Zero `bytes` bytes, on the session's threads when there are enough of them to share. */
static void zero(const dn_exec *e, void *p, int64_t bytes)
{
    unsigned char *start = p;
    dn_parallel_for(bytes, dn_team(e->threads, bytes / 4, DN_PARALLEL_MIN), zero_range, &start);
}

/* Zero a value's gradient the first time backward touches it: until then its buffer may hold
 * a tensor whose life has ended. */
static void zero_on_first_touch(dn_exec *e, int v)
{
    const dn_tensor *t = &e->grad[v];
    if (e->grad_zeroed[v] || !t->data || e->g->values[v].kind != DN_VALUE_NODE)
        return;
    zero(e, t->data, dn_shape_numel(&t->shape) * (int64_t)dn_dtype_size(t->dtype));
    e->grad_zeroed[v] = true;
    if (v == e->g->loss)
        dn_f32(t)[0] = 1.0f; /* ∂L/∂L */
}

static void run_node_backward(dn_exec *e, int i)
{
    const dn_node *n = &e->g->nodes[i];
    zero_on_first_touch(e, n->output);
    for (int j = 0; j < n->n_inputs; j++)
        zero_on_first_touch(e, n->inputs[j]);
    dn_kernel k = kernel_for(e, i, true, 0);
    if (!e->profiling) {
        n->op->backward(&k);
        return;
    }
    double t0 = seconds();
    n->op->backward(&k);
    e->timing[i].backward_seconds += seconds() - t0;
    e->timing[i].backward_calls++;
}

/* The param gradients zeroed, then the planned nodes in reverse sorted order, as one crew
 * (see forward_nodes). */
static void backward_nodes(void *arg)
{
    dn_exec *e = arg;
    zero(e, e->param_grad, e->param_count * (int64_t)sizeof(float));
    memset(e->grad_zeroed, 0, (size_t)e->g->n_values * sizeof *e->grad_zeroed);
    for (int i = e->g->n_nodes - 1; i >= 0; i--)
        if (e->run_backward[i])
            run_node_backward(e, i);
}

dn_status dn_exec_backward(dn_exec *e, dn_err *err)
{
    const dn_graph *g = e->g;
    if (e->inference)
        return dn_err_set(err, DN_ERR_ARG,
                          "%s: backward on an inference session (it borrows read-only weights "
                          "and holds no gradients; open a session without weights to train)",
                          g->file);
    if (g->loss < 0)
        return dn_err_set(err, DN_ERR_ARG, "%s: the model has no \"loss\" to differentiate",
                          g->file);
    if (!e->loss_ready)
        return dn_err_set(err, DN_ERR_ARG,
                          "%s: backward needs a forward in training mode that computed the "
                          "loss \"%s\"",
                          g->file, g->values[g->loss].name);
    dn_crew_run(crew_threads(e), backward_nodes, e);
    e->grads_ready = true;
    return DN_OK;
}
