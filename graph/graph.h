/*
 * graph.h — a loaded model: every named tensor (a "value") and the nodes in execution order.
 *
 * Values are graph inputs, params (declared, then implicit ones as their nodes create them)
 * and node outputs; a node reads values by index and writes exactly one. Shapes are those inferred
 * at load time with batch 1: `shape.batched` marks a leading batch dimension, which a
 * session replaces with the real batch size. The graph is immutable once loaded, so many
 * sessions (on many threads) can share one.
 *
 *   load.c           JSON → values and nodes, every field checked (messages carry JSON
 *                    locations); load_values.c declares the inputs and params, load_nodes.c
 *                    the nodes, load.h is what they share
 *   sort.c           topological order, deterministic: among ready nodes the earliest in the
 *                    file
 *   train_section.c  the optional "train" section
 *   the ops' infer() gives each node's output shape as load_nodes.c walks the sorted nodes
 */
#ifndef DN_GRAPH_H
#define DN_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/op.h"
#include "runtime/error.h"
#include "runtime/init.h"
#include "runtime/tensor.h"

/* DN_VALUE_STATE: a tensor of the top-level "state" section (BatchNorm's running statistics),
 * or one an op creates as implicit state: held like a param (its own buffer, saved with the
 * weights) but never differentiated or trained; only an op's training forward writes it,
 * through an input slot the op marks in dn_op.state_inputs. */
typedef enum dn_value_kind {
    DN_VALUE_INPUT,
    DN_VALUE_PARAM,
    DN_VALUE_NODE,
    DN_VALUE_STATE
} dn_value_kind;

typedef struct dn_value {
    char *name;
    dn_value_kind kind;
    dn_tensor_desc desc; /* batch 1 when desc.shape.batched */
    int node;            /* DN_VALUE_NODE: index of the producing node in graph.nodes */
    dn_init init;        /* DN_VALUE_PARAM, DN_VALUE_STATE: how to initialise it */
    bool needs_grad;     /* a param, or computed from one */
} dn_value;

typedef struct dn_node {
    char *name;
    const dn_op *op;
    void *attrs; /* op->attrs_size bytes, filled by op->parse_attrs */
    int n_inputs;
    int *inputs;         /* value indices */
    char **input_names;  /* the same, as names (for messages) */
    int output;          /* value index */
    int json_index;      /* position in the file's "nodes" array */
    int64_t flops;       /* forward, one sample */
    int64_t param_elems; /* elements of the params it reads */
} dn_node;

typedef struct dn_graph {
    char *file; /* base name of the model file, for messages */
    char *name;
    dn_value *values;
    int n_values;
    int n_inputs, n_params;
    int *input_values; /* value index of each graph input, in file order */
    int *param_values; /* value index of each param: declared in file order, then implicit */
    int n_state;
    int *state_values; /* value index of each state tensor: declared, then implicit */
    dn_node *nodes;    /* topological order */
    int n_nodes;
    int *outputs;
    int n_outputs;
    int loss;               /* value index, or -1 */
    dn_train_options train; /* the defaults, overridden by the file's "train" section */
} dn_graph;

/* Parse and validate a model. On failure *out is NULL and err says why. */
dn_status dn_graph_parse(const char *json, size_t len, const char *file, dn_graph **out,
                         dn_err *err);
void dn_graph_free(dn_graph *g);

/* Index of the value called `name`, or -1. */
int dn_graph_find(const dn_graph *g, const char *name);

/* Order nodes[0..n) so that every node comes after the nodes whose outputs it reads
 * (producer[v] is the node writing value v, or -1). On a cycle, fails naming its nodes. */
dn_status dn_graph_sort(dn_node *nodes, int n, const int *producer, const char *file, int *order,
                        dn_err *err);

/* A node context for messages about node i. */
dn_node_ctx dn_graph_node_ctx(const dn_graph *g, const dn_node *n, dn_err *err);

#endif
