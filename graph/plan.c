/*
 * plan.c — lifetimes of a run's buffers and their placement in one arena (see plan.h).
 */
#include "graph/plan.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 64
#define NONE (-1)

typedef struct buffer {
    size_t size; /* bytes, rounded up to ALIGN */
    size_t offset;
    int birth, death; /* steps, both included */
} buffer;

struct dn_plan_scratch {
    buffer *buf;        /* activations, then gradients, then saved states */
    int *act;           /* per value: its activation's buffer, or NONE */
    int *act_death;     /* per value: the last step its own readers need it */
    int *grad;          /* per value: its gradient's buffer, or NONE */
    int *order;         /* buffers, largest first */
    int *live;          /* placed buffers that overlap the one being placed */
    dn_tensor_desc *in; /* one node's input descriptors */
    int n_buf;
};

dn_plan_scratch *dn_plan_scratch_new(const dn_graph *g)
{
    dn_plan_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    size_t nv = (size_t)g->n_values, nn = (size_t)g->n_nodes, nb = 2 * nv + nn + 1;
    int max_in = 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_inputs > max_in)
            max_in = g->nodes[i].n_inputs;
    s->buf = calloc(nb, sizeof *s->buf);
    s->act = calloc(nv + 1, sizeof *s->act);
    s->act_death = calloc(nv + 1, sizeof *s->act_death);
    s->grad = calloc(nv + 1, sizeof *s->grad);
    s->order = calloc(nb, sizeof *s->order);
    s->live = calloc(nb, sizeof *s->live);
    s->in = calloc((size_t)max_in, sizeof *s->in);
    if (!s->buf || !s->act || !s->act_death || !s->grad || !s->order || !s->live || !s->in) {
        dn_plan_scratch_free(s);
        return NULL;
    }
    return s;
}

void dn_plan_scratch_free(dn_plan_scratch *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s->act);
    free(s->act_death);
    free(s->grad);
    free(s->order);
    free(s->live);
    free(s->in);
    free(s);
}

/* ------------------------------------------------------------------ sizes */

/* Bytes rounded up to ALIGN, false on overflow (sizes stay far below SIZE_MAX / 4, so that
 * sums of a few thousand of them cannot overflow either). */
static bool aligned_bytes(int64_t n, size_t elem, size_t *out)
{
    if (n < 0 || (uint64_t)n > (SIZE_MAX / 4 - ALIGN) / elem)
        return false;
    *out = ((size_t)n * elem + ALIGN - 1) / ALIGN * ALIGN;
    return true;
}

static bool value_size(const dn_value *v, int64_t batch, size_t *out)
{
    dn_shape s = dn_shape_at_batch(v->desc.shape, batch);
    return aligned_bytes(dn_shape_numel(&s), dn_dtype_size(v->desc.dtype), out);
}

static bool saved_size(const dn_graph *g, const dn_node *n, int64_t batch, dn_tensor_desc *in,
                       size_t *out)
{
    *out = 0;
    if (!n->op->saved_size)
        return true;
    for (int j = 0; j < n->n_inputs; j++) {
        in[j] = g->values[n->inputs[j]].desc;
        in[j].shape = dn_shape_at_batch(in[j].shape, batch);
    }
    dn_tensor_desc y = g->values[n->output].desc;
    y.shape = dn_shape_at_batch(y.shape, batch);
    size_t bytes = n->op->saved_size(n->attrs, in, n->n_inputs, &y);
    return bytes == 0 || aligned_bytes((int64_t)bytes, 1, out);
}

/* ------------------------------------------------------------------ lifetimes */

static int backward_step(const dn_graph *g, int node) { return 2 * g->n_nodes - 1 - node; }

static int add_buffer(dn_plan_scratch *s, size_t size, int birth, int death)
{
    s->buf[s->n_buf] = (buffer){ .size = size, .birth = birth, .death = death };
    return s->n_buf++;
}

static void max_into(int *a, int b) { *a = b > *a ? b : *a; }

/* The last step at which value v's own readers (not in-place successors) need it. */
static int activation_death(const dn_graph *g, const dn_plan_request *r, int v)
{
    int producer = g->values[v].node, death = producer;
    if (r->keep[v])
        return 2 * g->n_nodes;
    if (r->backward[producer] && g->nodes[producer].op->backward_reads_output)
        max_into(&death, backward_step(g, producer));
    for (int i = producer + 1; i < g->n_nodes; i++) {
        const dn_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_inputs; j++) {
            if (n->inputs[j] != v || !r->forward[i])
                continue;
            max_into(&death, i);
            if (r->backward[i] && j < 32 && (n->op->backward_reads_inputs & (1u << j)))
                max_into(&death, backward_step(g, i));
        }
    }
    return death;
}

/* Whether node i may write its output over its input 0. */
static bool runs_in_place(const dn_graph *g, const dn_plan_scratch *s, int i)
{
    const dn_node *n = &g->nodes[i];
    int u = n->inputs[0];
    return n->op->inplace && g->values[u].kind == DN_VALUE_NODE && s->act[u] != NONE &&
           s->act_death[u] == i && g->values[u].desc.dtype == g->values[n->output].desc.dtype &&
           dn_shape_numel(&g->values[u].desc.shape) ==
               dn_shape_numel(&g->values[n->output].desc.shape);
}

static dn_status plan_activations(const dn_graph *g, const dn_plan_request *r, dn_plan_scratch *s,
                                  dn_err *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        int v = g->nodes[i].output;
        if (!r->forward[i])
            continue;
        s->act_death[v] = activation_death(g, r, v);
        if (runs_in_place(g, s, i)) {
            int b = s->act[v] = s->act[g->nodes[i].inputs[0]];
            max_into(&s->buf[b].death, s->act_death[v]);
            continue;
        }
        size_t size;
        if (!value_size(&g->values[v], r->batch, &size))
            return dn_err_set(err, DN_ERR_NOMEM, "%s: batch %lld is too large for tensor \"%s\"",
                              g->file, (long long)r->batch, g->values[v].name);
        s->act[v] = add_buffer(s, size, i, s->act_death[v]);
    }
    return DN_OK;
}

/* A value's gradient is born when the backward of its last forward reader first adds to it,
 * and dies once its producer's backward has read it. */
static void plan_gradients(const dn_graph *g, const dn_plan_request *r, dn_plan_scratch *s)
{
    for (int p = 0; p < g->n_nodes; p++) {
        int v = g->nodes[p].output;
        if (!r->backward[p])
            continue;
        int birth = backward_step(g, p);
        for (int i = p + 1; i < g->n_nodes; i++) {
            const dn_node *n = &g->nodes[i];
            for (int j = 0; j < n->n_inputs; j++)
                if (n->inputs[j] == v && r->backward[i] && dn_op_takes_grad(n->op, j) &&
                    backward_step(g, i) < birth)
                    birth = backward_step(g, i);
        }
        s->grad[v] = add_buffer(s, s->buf[s->act[v]].size, birth, backward_step(g, p));
    }
}

static dn_status plan_saved(const dn_graph *g, const dn_plan_request *r, dn_plan_scratch *s,
                            dn_plan *plan, dn_err *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        plan->saved_offset[i] = SIZE_MAX;
        size_t size;
        if (!r->forward[i])
            continue;
        if (!saved_size(g, &g->nodes[i], r->batch, s->in, &size))
            return dn_err_set(err, DN_ERR_NOMEM, "%s: batch %lld is too large for node \"%s\"",
                              g->file, (long long)r->batch, g->nodes[i].name);
        if (size) /* the offset is filled in once placed; the index rides in the meantime */
            plan->saved_offset[i] =
                (size_t)add_buffer(s, size, i, r->backward[i] ? backward_step(g, i) : i);
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ placement */

static bool larger(const buffer *x, const buffer *y)
{
    return x->size != y->size ? x->size > y->size : x->birth < y->birth;
}

/* Insertion sorts: a few hundred buffers at most, and no comparator needs global state. */
static void sort_by_size(const buffer *buf, int *idx, int n)
{
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i;
        for (; j > 0 && larger(&buf[v], &buf[idx[j - 1]]); j--)
            idx[j] = idx[j - 1];
        idx[j] = v;
    }
}

static void sort_by_offset(const buffer *buf, int *idx, int n)
{
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i;
        for (; j > 0 && buf[v].offset < buf[idx[j - 1]].offset; j--)
            idx[j] = idx[j - 1];
        idx[j] = v;
    }
}

static bool overlap(const buffer *a, const buffer *b)
{
    return a->birth <= b->death && b->birth <= a->death;
}

/* Greedy by size: each buffer, largest first, goes to the lowest gap among the placed
 * buffers alive at the same time. Returns the arena size. */
static size_t place_all(dn_plan_scratch *s)
{
    size_t total = 0;
    for (int i = 0; i < s->n_buf; i++)
        s->order[i] = i;
    sort_by_size(s->buf, s->order, s->n_buf);
    for (int k = 0; k < s->n_buf; k++) {
        buffer *b = &s->buf[s->order[k]];
        int n_live = 0;
        for (int q = 0; q < k; q++)
            if (overlap(&s->buf[s->order[q]], b))
                s->live[n_live++] = s->order[q];
        sort_by_offset(s->buf, s->live, n_live);
        size_t at = 0;
        for (int q = 0; q < n_live; q++) {
            const buffer *o = &s->buf[s->live[q]];
            if (o->offset >= at + b->size)
                break;
            if (o->offset + o->size > at)
                at = o->offset + o->size;
        }
        b->offset = at;
        if (at + b->size > total)
            total = at + b->size;
    }
    return total;
}

dn_status dn_plan_make(const dn_graph *g, const dn_plan_request *r, dn_plan_scratch *s,
                       dn_plan *plan, dn_err *err)
{
    s->n_buf = 0;
    for (int v = 0; v < g->n_values; v++)
        s->act[v] = s->grad[v] = NONE;
    dn_status st;
    if ((st = plan_activations(g, r, s, err)))
        return st;
    plan_gradients(g, r, s);
    if ((st = plan_saved(g, r, s, plan, err)))
        return st;
    plan->unshared = 0;
    for (int i = 0; i < s->n_buf; i++)
        plan->unshared += s->buf[i].size;
    plan->total = place_all(s);
    for (int v = 0; v < g->n_values; v++) {
        plan->offset[v] = s->act[v] == NONE ? SIZE_MAX : s->buf[s->act[v]].offset;
        plan->grad_offset[v] = s->grad[v] == NONE ? SIZE_MAX : s->buf[s->grad[v]].offset;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (plan->saved_offset[i] != SIZE_MAX)
            plan->saved_offset[i] = s->buf[plan->saved_offset[i]].offset;
    return DN_OK;
}
