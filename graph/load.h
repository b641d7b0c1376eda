/*
 * load.h — what the three files of the loader share (internal to graph/; graph.h is the
 * loader's interface).
 *
 *   load.c         the walk (steps 1–6 in its header): the JSON text and the top-level object,
 *                  the sort, "outputs", "loss" and "train", gradient marking; dn_graph_parse
 *   load_values.c  the name table and the values: graph inputs, declared params, shapes
 *   load_nodes.c   the nodes: declaration, inputs by name, attrs, implicit params, arity,
 *                  output shapes
 *
 * They share one dn_loader: the graph being built plus what only loading needs (the name
 * table, which params have a shape yet), freed by dn_graph_parse when loading ends. Every
 * failure goes through dn_load_fail, so each message starts with the model file's name.
 */
#ifndef DN_LOAD_H
#define DN_LOAD_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "graph/graph.h"

/* Open addressing from names to value indices, so that huge files stay linear. */
typedef struct dn_name_table {
    int *slots; /* value index, or -1 */
    size_t cap; /* power of two */
} dn_name_table;

typedef struct dn_loader {
    const char *file;
    dn_err *err;
    const cJSON *root;
    dn_graph *g;
    int values_cap;
    dn_name_table names;
    /* For declared params and state: true once a shape is known (declared, or given by an implicit
     * creation), indexed by value. */
    bool *has_shape;
    int *param_json_index;
} dn_loader;

/* ---- load.c: messages */

/* Set L->err to "<file>: <message>" and return st. */
dn_status dn_load_fail(dn_loader *L, dn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fail on the first field of `obj` not in `allowed` (NULL-terminated), naming the list. */
dn_status dn_load_check_keys(dn_loader *L, const cJSON *obj, const char *const *allowed,
                             const char *where, const char *loc);

/* ---- load_values.c: names and values */

/* The value called `name`, or -1. */
int dn_load_lookup(const dn_loader *L, const char *name);

/* Append a value named `name` (non-empty, not yet taken) and enter it in the name table;
 * where/loc say, for messages, what declares it. */
dn_status dn_load_add_value(dn_loader *L, const char *name, dn_value_kind kind, const char *where,
                            const char *loc, int *out);

/* Step 2: the graph inputs and the declared params. */
dn_status dn_load_inputs(dn_loader *L, const cJSON *inputs);
dn_status dn_load_params(dn_loader *L, const cJSON *params);
/* The top-level "state" section: entries as in "params", kind DN_VALUE_STATE. */
dn_status dn_load_state(dn_loader *L, const cJSON *state);

/* ---- load_nodes.c: nodes (step 3 in file order, step 5 in sorted order) */

/* Node `index` of the file: name, op, and its output value. */
dn_status dn_load_declare_node(dn_loader *L, const cJSON *jn, int index);

/* Node n's inputs, by name; every value is declared by now. */
dn_status dn_load_resolve_inputs(dn_loader *L, const cJSON *jn, dn_node *n);

/* Attrs, implicit params, arity and output shape; n's inputs are built already. */
dn_status dn_load_build_node(dn_loader *L, dn_node *n, const cJSON *jn);

#endif
