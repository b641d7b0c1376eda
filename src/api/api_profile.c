/*
 * api_profile.c — the public API for measuring a session (include/dagnet.h, "profiling"):
 * per-node times and flop counts, BLIS's own speed on a node's matrix products, and the
 * memory a session holds. `dagnet bench` is built on these.
 *
 * Flops: forward from the op's `flops` at the current batch size. Backward, for an op with
 * matrix products (Conv, Affine: C[m×n] = A[m×k]·B[k×n]), 2·m·n·k for each of dA and dB the
 * session computes; for the other ops the forward count, a fair estimate for elementwise
 * and pooling kernels whose backward touches each element about as often. A grouped Conv is
 * `count` products of one group's shape: the flops count them all, and the BLIS reference
 * times one (its rate is the speed a group's products should reach).
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "runtime/gemm.h"

static bool ready(const dn_session *s) { return s && s->m && s->e.g; }

/* The session is usable and the pointer given; DN_ERR_ARG with a message otherwise (none when
 * s is NULL: there is nowhere to put it). */
static dn_status check(const dn_session *s, const char *fn, const void *p, const char *what)
{
    dn_err *err = s ? &((dn_session *)s)->err : NULL; /* the message is mutable state */
    if (!err)
        return DN_ERR_ARG;
    if (!ready(s))
        return dn_err_set(err, DN_ERR_ARG, "%s: the session did not open", fn);
    if (!p)
        return dn_err_set(err, DN_ERR_ARG, "%s: %s is NULL", fn, what);
    return DN_OK;
}

int dn_session_threads(const dn_session *s) { return ready(s) ? s->e.threads : 0; }

dn_status dn_session_set_profiling(dn_session *s, bool on)
{
    dn_status st = check(s, "dn_session_set_profiling", "", "");
    if (st != DN_OK)
        return st;
    s->e.profiling = on;
    if (on)
        memset(s->e.timing, 0, (size_t)s->e.g->n_nodes * sizeof *s->e.timing);
    return DN_OK;
}

/* Node i's input and output descriptors at the session's batch size (1 before any input). */
static void node_descs(const dn_exec *e, int i, dn_tensor_desc *in, dn_tensor_desc *out)
{
    const dn_node *n = &e->g->nodes[i];
    int64_t batch = e->batch ? e->batch : 1;
    for (int j = 0; j < n->n_inputs; j++) {
        in[j] = e->g->values[n->inputs[j]].desc;
        in[j].shape = dn_shape_at_batch(in[j].shape, batch);
    }
    *out = e->g->values[n->output].desc;
    out->shape = dn_shape_at_batch(out->shape, batch);
}

/* The matrix products of node i's backward: dA and/or dB, as (m, n, k, transposed operand)
 * for dn_sgemm. Returns how many. */
typedef struct product {
    int64_t m, n, k;
    bool ta, tb;
} product;

static int backward_products(const dn_exec *e, int i, const dn_gemm_shape *g, product *out)
{
    int count = 0;
    if (dn_exec_input_takes_grad(e, i, g->a_input)) /* dA = dC·Bᵀ */
        out[count++] = (product){ g->m, g->k, g->n, false, true };
    if (dn_exec_input_takes_grad(e, i, g->b_input)) /* dB = Aᵀ·dC */
        out[count++] = (product){ g->k, g->n, g->m, true, false };
    return count;
}

static bool node_gemm(const dn_exec *e, int i, dn_gemm_shape *g)
{
    const dn_node *n = &e->g->nodes[i];
    if (!n->op->gemm)
        return false;
    dn_tensor_desc out;
    node_descs(e, i, e->descs, &out);
    n->op->gemm(n->attrs, e->descs, n->n_inputs, &out, g);
    return true;
}

dn_status dn_session_node_profile(dn_session *s, int i, dn_node_profile *out)
{
    dn_status st = check(s, "dn_session_node_profile", out, "out");
    if (st != DN_OK)
        return st;
    const dn_exec *e = &s->e;
    if (i < 0 || i >= e->g->n_nodes)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "dn_session_node_profile: index %d is out of range (the model has %d "
                          "nodes)",
                          i, e->g->n_nodes);
    const dn_node *n = &e->g->nodes[i];
    const dn_node_timing *t = &e->timing[i];
    dn_tensor_desc o;
    node_descs(e, i, e->descs, &o);
    double fwd = (double)n->op->flops(n->attrs, e->descs, n->n_inputs, &o);
    *out = (dn_node_profile){ .node = n->name,
                              .op = n->op->name,
                              .forward_calls = t->forward_calls,
                              .backward_calls = t->backward_calls,
                              .forward_seconds = t->forward_seconds,
                              .backward_seconds = t->backward_seconds,
                              .forward_flops = fwd,
                              .backward_flops = e->inference ? 0 : fwd };
    dn_gemm_shape g;
    if (node_gemm(e, i, &g)) {
        product p[2];
        int count = backward_products(e, i, &g, p);
        out->has_gemm = true;
        out->backward_flops = 0;
        for (int j = 0; j < count; j++)
            out->backward_flops += 2.0 * (double)p[j].m * (double)p[j].n * (double)p[j].k;
        out->backward_flops *= (double)(g.count > 1 ? g.count : 1); /* one set per group */
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ the BLIS reference */

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of `repeats` runs of the products, on scratch operands of their sizes. */
static dn_status time_products(dn_session *s, const product *p, int count, int repeats,
                               double *median)
{
    size_t most = 1;
    for (int j = 0; j < count; j++) {
        size_t a = (size_t)(p[j].m * p[j].k), b = (size_t)(p[j].k * p[j].n),
               c = (size_t)(p[j].m * p[j].n);
        size_t need = a > b ? a : b;
        most = need > most ? need : most;
        most = c > most ? c : most;
    }
    float *buf = malloc(3 * most * sizeof(float));
    double *times = malloc((size_t)repeats * sizeof *times);
    if (!buf || !times) {
        free(buf);
        free(times);
        return dn_err_set(&s->err, DN_ERR_NOMEM, "dn_session_gemm_reference: out of memory");
    }
    for (size_t j = 0; j < 3 * most; j++)
        buf[j] = (float)(j % 17) * 0.0625f - 0.5f;
    float *a = buf, *b = buf + most, *c = buf + 2 * most;
    for (int r = -1; r < repeats; r++) { /* r = -1: warm-up */
        double t0 = omp_get_wtime();
        for (int j = 0; j < count; j++)
            dn_sgemm_blis(p[j].ta, p[j].tb, p[j].m, p[j].n, p[j].k, 1.0f, a,
                          p[j].ta ? p[j].m : p[j].k, b, p[j].tb ? p[j].k : p[j].n, 0.0f, c, p[j].n,
                          s->e.threads);
        if (r >= 0)
            times[r] = omp_get_wtime() - t0;
    }
    qsort(times, (size_t)repeats, sizeof *times, by_value);
    *median = times[repeats / 2];
    free(buf);
    free(times);
    return DN_OK;
}

static double flops_of(const product *p, int count)
{
    double f = 0;
    for (int j = 0; j < count; j++)
        f += 2.0 * (double)p[j].m * (double)p[j].n * (double)p[j].k;
    return f;
}

dn_status dn_session_gemm_reference(dn_session *s, int i, int repeats, double *forward_gflops,
                                    double *backward_gflops)
{
    const char *fn = "dn_session_gemm_reference";
    dn_status st0 = check(s, fn, forward_gflops, "forward_gflops");
    if (st0 == DN_OK)
        st0 = check(s, fn, backward_gflops, "backward_gflops");
    if (st0 != DN_OK)
        return st0;
    *forward_gflops = *backward_gflops = 0;
    if (i < 0 || i >= s->e.g->n_nodes || repeats < 1)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "dn_session_gemm_reference: node %d of %d, %d repeats", i,
                          s->e.g->n_nodes, repeats);
    dn_gemm_shape g;
    if (!node_gemm(&s->e, i, &g))
        return DN_OK;
    product fwd = { g.m, g.n, g.k, false, false }, bwd[2];
    int n_bwd = backward_products(&s->e, i, &g, bwd);
    double t = 0;
    dn_status st = time_products(s, &fwd, 1, repeats, &t);
    if (st)
        return st;
    *forward_gflops = flops_of(&fwd, 1) / t * 1e-9;
    if (n_bwd == 0)
        return DN_OK;
    if ((st = time_products(s, bwd, n_bwd, repeats, &t)))
        return st;
    *backward_gflops = flops_of(bwd, n_bwd) / t * 1e-9;
    return DN_OK;
}

/* ------------------------------------------------------------------ memory */

dn_status dn_session_memory(const dn_session *s, dn_memory_info *out)
{
    dn_status st = check(s, "dn_session_memory", out, "out");
    if (st != DN_OK)
        return st;
    const dn_exec *e = &s->e;
    /* An inference session owns neither: its params are the borrowed weights'. */
    size_t params = e->inference ? 0 : (size_t)e->param_count * sizeof(float);
    *out = (dn_memory_info){ .params = params,
                             .param_grads = params,
                             .arena = e->planned ? e->plan.total : 0,
                             .arena_unshared = e->planned ? e->plan.unshared : 0,
                             .workspace = e->work_used };
    return DN_OK;
}
