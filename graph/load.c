/*
 * load.c — JSON text → a validated, sorted dn_graph (see graph.h and docs/format.md).
 *
 * The walk, each step failing with a message that names the file, the JSON location and the
 * input, param or node concerned:
 *   1. parse the JSON (errors carry line and column; duplicate keys and \u0000 escapes are
 *      refused, runtime/json_strict.h); check the top-level keys and "format";
 *   2. declare the graph inputs, params and state (shapes: positive, overflow-checked;
 *      load_values.c);
 *   3. declare one value per node, resolve every node input by name (load_nodes.c);
 *   4. sort the nodes topologically (sort.c);
 *   5. in that order: parse attrs, create implicit params, infer the output shape
 *      (load_nodes.c);
 *   6. check "outputs", "loss" and the optional "train" section (train_section.c), then mark
 *      which values need a gradient.
 * Nothing here runs a kernel; a model that loads can be planned and run.
 *
 * This file holds the walk itself, the messages every step uses, steps 1, 4 (around sort.c)
 * and 6, and the graph's own functions (free, find, node context); load.h says what the
 * pieces share.
 * Everything is allocated up front for the most values a file can declare (inputs + params +
 * nodes × (1 + implicit params)), so adding a value never reallocates and the name table is
 * sized once.
 */
#include "graph/load.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/train_section.h"
#include "runtime/json_strict.h"

/* ------------------------------------------------------------------ messages */

dn_status dn_load_fail(dn_loader *L, dn_status st, const char *fmt, ...)
{
    char what[DN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return dn_err_set(L->err, st, "%s: %s", L->file, what);
}

dn_status dn_load_check_keys(dn_loader *L, const cJSON *obj, const char *const *allowed,
                             const char *where, const char *loc)
{
    for (const cJSON *f = obj->child; f; f = f->next) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, f->string) == 0;
        if (!known) {
            char list[256] = "";
            size_t used = 0;
            for (const char *const *a = allowed; *a && used < sizeof list; a++) {
                int n =
                    snprintf(list + used, sizeof list - used, "%s%s", a == allowed ? "" : ", ", *a);
                used += n > 0 ? (size_t)n : 0;
            }
            return dn_load_fail(L, DN_ERR_MODEL, "%s(%s/%s): unknown field \"%s\" (expected %s)",
                                where, loc, f->string, f->string, list);
        }
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ outputs and loss */

static dn_status parse_outputs(dn_loader *L, const cJSON *outputs)
{
    if (!outputs)
        return DN_OK;
    if (!cJSON_IsArray(outputs))
        return dn_load_fail(L, DN_ERR_MODEL,
                            "(/outputs): expected an array of tensor names, found %s",
                            dn_json_kind(outputs));
    int count = cJSON_GetArraySize(outputs);
    L->g->outputs = calloc((size_t)count + 1, sizeof *L->g->outputs);
    if (!L->g->outputs)
        return dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
    int i = 0;
    for (const cJSON *o = outputs->child; o; o = o->next, i++) {
        if (!cJSON_IsString(o))
            return dn_load_fail(L, DN_ERR_MODEL, "(/outputs/%d): expected a tensor name, found %s",
                                i, dn_json_kind(o));
        int v = dn_load_lookup(L, o->valuestring);
        if (v < 0)
            return dn_load_fail(L, DN_ERR_MODEL, "(/outputs/%d): output \"%s\" is not defined", i,
                                o->valuestring);
        L->g->outputs[L->g->n_outputs++] = v;
    }
    return DN_OK;
}

static dn_status parse_loss(dn_loader *L, const cJSON *loss)
{
    L->g->loss = -1;
    if (!loss)
        return DN_OK;
    if (!cJSON_IsString(loss))
        return dn_load_fail(L, DN_ERR_MODEL,
                            "(/loss): expected the name of the loss tensor, found %s",
                            dn_json_kind(loss));
    int v = dn_load_lookup(L, loss->valuestring);
    if (v < 0)
        return dn_load_fail(L, DN_ERR_MODEL, "(/loss): loss \"%s\" is not defined",
                            loss->valuestring);
    const dn_value *val = &L->g->values[v];
    char s[DN_SHAPE_STR_MAX];
    if (val->kind != DN_VALUE_NODE || val->desc.dtype != DN_F32 || val->desc.shape.batched ||
        dn_shape_numel(&val->desc.shape) != 1)
        return dn_load_fail(L, DN_ERR_SHAPE,
                            "(/loss): loss \"%s\" must be a float32 scalar computed by a node, "
                            "found %s %s %s",
                            loss->valuestring,
                            val->kind == DN_VALUE_NODE    ? "node output"
                            : val->kind == DN_VALUE_PARAM ? "param"
                            : val->kind == DN_VALUE_STATE ? "state tensor"
                                                          : "graph input",
                            dn_dtype_name(val->desc.dtype),
                            dn_shape_str(&val->desc.shape, s, sizeof s));
    L->g->loss = v;
    return DN_OK;
}

/* A value needs a gradient when it is a param or computed from one through inputs that take
 * gradients; nodes are in topological order, so one pass settles it. */
static void mark_needs_grad(dn_graph *g)
{
    for (int i = 0; i < g->n_params; i++)
        g->values[g->param_values[i]].needs_grad = true;
    for (int i = 0; i < g->n_nodes; i++) {
        const dn_node *n = &g->nodes[i];
        bool needs = false;
        for (int j = 0; j < n->n_inputs; j++)
            if (dn_op_takes_grad(n->op, j))
                needs |= g->values[n->inputs[j]].needs_grad;
        g->values[n->output].needs_grad = needs;
    }
}

/* ------------------------------------------------------------------ the walk */

static dn_status parse_json(dn_loader *L, const char *json, size_t len, cJSON **root)
{
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (*root) {
        while (end < json + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end == json + len || *end == '\0') {
            /* Duplicate keys and \u0000 escapes: ambiguous, so refused (json_strict.h). */
            dn_status st = dn_json_check_strict(json, len, *root, L->file, L->err);
            if (st != DN_OK) {
                cJSON_Delete(*root);
                *root = NULL;
            }
            return st;
        }
        cJSON_Delete(*root);
        *root = NULL; /* text after the JSON value: report where it starts */
    }
    int line = 1, col = 1;
    const char *stop = end && end >= json && end <= json + len ? end : json + len;
    for (const char *p = json; p < stop; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return dn_load_fail(L, DN_ERR_PARSE, "invalid JSON at line %d, column %d", line, col);
}

static dn_status check_top_level(dn_loader *L, const cJSON *root)
{
    if (!cJSON_IsObject(root))
        return dn_load_fail(L, DN_ERR_MODEL, "(/): a model is a JSON object, found %s",
                            dn_json_kind(root));
    static const char *const allowed[] = { "format", "name",    "inputs", "params", "state",
                                           "nodes",  "outputs", "loss",   "train",  NULL };
    dn_status st = dn_load_check_keys(L, root, allowed, "", "");
    if (st)
        return st;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, "dagnet/1") != 0)
        return dn_load_fail(L, DN_ERR_MODEL, "(/format): expected \"dagnet/1\", found %s%s%s",
                            cJSON_IsString(format) ? "\"" : "",
                            cJSON_IsString(format) ? format->valuestring : dn_json_kind(format),
                            cJSON_IsString(format) ? "\"" : "");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name && !cJSON_IsString(name))
        return dn_load_fail(L, DN_ERR_MODEL, "(/name): expected a string, found %s",
                            dn_json_kind(name));
    L->g->name = strdup(name ? name->valuestring : "");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) == 0)
        return dn_load_fail(L, DN_ERR_MODEL,
                            "(/nodes): expected a non-empty array of nodes, found %s",
                            dn_json_kind(nodes));
    if (!cJSON_GetObjectItemCaseSensitive(root, "inputs"))
        return dn_load_fail(L, DN_ERR_MODEL, "(/inputs): \"inputs\" is required");
    return L->g->name ? DN_OK : dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
}

/* Capacity for every value: inputs + params + nodes + implicit params. */
static dn_status allocate(dn_loader *L, const cJSON *root)
{
    int n_in = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "inputs"));
    int n_par = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "params")) +
                cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "state"));
    int n_nodes = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "nodes"));
    int64_t cap = (int64_t)n_in + n_par + (int64_t)n_nodes * (1 + DN_MAX_IMPLICIT_PARAMS);
    if (cap > INT_MAX / 4)
        return dn_load_fail(L, DN_ERR_MODEL, "too many inputs, params and nodes (%lld)",
                            (long long)cap);
    dn_graph *g = L->g;
    L->values_cap = (int)cap;
    g->values = calloc((size_t)cap, sizeof *g->values);
    g->input_values = calloc((size_t)n_in + 1, sizeof *g->input_values);
    g->param_values = calloc((size_t)cap, sizeof *g->param_values);
    g->state_values = calloc((size_t)cap, sizeof *g->state_values);
    g->nodes = calloc((size_t)n_nodes, sizeof *g->nodes);
    L->has_shape = calloc((size_t)cap, sizeof *L->has_shape);
    L->param_json_index = calloc((size_t)cap, sizeof *L->param_json_index);
    size_t slots = 16;
    while (slots < (size_t)cap * 2)
        slots *= 2;
    L->names.cap = slots;
    L->names.slots = malloc(slots * sizeof *L->names.slots);
    if (!g->values || !g->input_values || !g->param_values || !g->state_values || !g->nodes ||
        !L->has_shape || !L->param_json_index || !L->names.slots)
        return dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
    memset(L->names.slots, 0xff, slots * sizeof *L->names.slots);
    return DN_OK;
}

/* Put g->nodes in topological order (remapping value.node). */
static dn_status sort_nodes(dn_loader *L)
{
    dn_graph *g = L->g;
    int *producer = malloc((size_t)g->n_values * sizeof *producer);
    int *order = malloc((size_t)g->n_nodes * sizeof *order);
    dn_node *sorted = malloc((size_t)g->n_nodes * sizeof *sorted);
    dn_status st = DN_ERR_NOMEM;
    if (!producer || !order || !sorted) {
        dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int v = 0; v < g->n_values; v++)
        producer[v] = g->values[v].kind == DN_VALUE_NODE ? g->values[v].node : -1;
    if ((st = dn_graph_sort(g->nodes, g->n_nodes, producer, L->file, order, L->err)))
        goto out;
    for (int i = 0; i < g->n_nodes; i++) {
        sorted[i] = g->nodes[order[i]];
        g->values[sorted[i].output].node = i;
    }
    memcpy(g->nodes, sorted, (size_t)g->n_nodes * sizeof *sorted);
out:
    free(producer);
    free(order);
    free(sorted);
    return st;
}

static dn_status load(dn_loader *L, const char *json, size_t len)
{
    cJSON *root = NULL;
    dn_status st = parse_json(L, json, len, &root);
    if (st)
        return st;
    L->root = root;
    if ((st = check_top_level(L, root)) || (st = allocate(L, root)) ||
        (st = dn_load_inputs(L, cJSON_GetObjectItemCaseSensitive(root, "inputs"))) ||
        (st = dn_load_params(L, cJSON_GetObjectItemCaseSensitive(root, "params"))) ||
        (st = dn_load_state(L, cJSON_GetObjectItemCaseSensitive(root, "state"))))
        return st;
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    dn_graph *g = L->g;
    g->n_nodes = cJSON_GetArraySize(nodes);
    int i = 0;
    for (const cJSON *jn = nodes->child; jn; jn = jn->next, i++)
        if ((st = dn_load_declare_node(L, jn, i)))
            return st;
    i = 0;
    for (const cJSON *jn = nodes->child; jn; jn = jn->next, i++)
        if ((st = dn_load_resolve_inputs(L, jn, &g->nodes[i])))
            return st;
    if ((st = sort_nodes(L)))
        return st;
    for (i = 0; i < g->n_nodes; i++)
        if ((st = dn_load_build_node(L, &g->nodes[i],
                                     cJSON_GetArrayItem(nodes, g->nodes[i].json_index))))
            return st;
    for (i = 0; i < g->n_params; i++) {
        int v = g->param_values[i];
        if (!L->has_shape[v])
            return dn_load_fail(L, DN_ERR_MODEL,
                                "param \"%s\" (/params/%s/shape): a shape is required (no node "
                                "creates this param implicitly)",
                                g->values[v].name, g->values[v].name);
    }
    for (i = 0; i < g->n_state; i++) {
        int v = g->state_values[i];
        if (!L->has_shape[v])
            return dn_load_fail(L, DN_ERR_MODEL,
                                "state \"%s\" (/state/%s/shape): a shape is required (no node "
                                "creates this state tensor implicitly)",
                                g->values[v].name, g->values[v].name);
    }
    if ((st = parse_outputs(L, cJSON_GetObjectItemCaseSensitive(root, "outputs"))) ||
        (st = parse_loss(L, cJSON_GetObjectItemCaseSensitive(root, "loss"))))
        return st;
    if (g->n_outputs == 0 && g->loss < 0)
        return dn_load_fail(L, DN_ERR_MODEL,
                            "(/outputs): the model names neither \"outputs\" nor a \"loss\"");
    g->train = DN_TRAIN_OPTIONS_DEFAULT;
    const cJSON *train = cJSON_GetObjectItemCaseSensitive(root, "train");
    if (train && (st = dn_train_section_parse(train, L->file, &g->train, L->err)))
        return st;
    mark_needs_grad(g);
    return DN_OK;
}

dn_status dn_graph_parse(const char *json, size_t len, const char *file, dn_graph **out,
                         dn_err *err)
{
    *out = NULL;
    const char *base = file ? strrchr(file, '/') : NULL;
    dn_graph *g = calloc(1, sizeof *g);
    if (!g)
        return dn_err_set(err, DN_ERR_NOMEM, "out of memory");
    g->loss = -1;
    g->file = strdup(base ? base + 1 : file ? file : "<model>");
    dn_loader L = { .file = g->file ? g->file : "<model>", .err = err, .g = g };
    dn_status st = g->file ? load(&L, json, len) : dn_err_set(err, DN_ERR_NOMEM, "out of memory");
    cJSON_Delete((cJSON *)L.root);
    free(L.names.slots);
    free(L.has_shape);
    free(L.param_json_index);
    if (st) {
        dn_graph_free(g);
        return st;
    }
    *out = g;
    return DN_OK;
}

void dn_graph_free(dn_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_values; i++)
        free(g->values[i].name);
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].attrs);
        free(g->nodes[i].inputs);
        free(g->nodes[i].input_names);
    }
    free(g->values);
    free(g->input_values);
    free(g->param_values);
    free(g->state_values);
    free(g->nodes);
    free(g->outputs);
    free(g->file);
    free(g->name);
    free(g);
}

int dn_graph_find(const dn_graph *g, const char *name)
{
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

dn_node_ctx dn_graph_node_ctx(const dn_graph *g, const dn_node *n, dn_err *err)
{
    return (dn_node_ctx){ .file = g->file,
                          .node = n->name,
                          .index = n->json_index,
                          .n_inputs = n->n_inputs,
                          .input_names = (const char *const *)n->input_names,
                          .attrs = NULL,
                          .err = err };
}
