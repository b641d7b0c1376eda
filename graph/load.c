/*
 * load.c — JSON text → a validated, sorted dn_graph (see graph.h and docs/format.md).
 *
 * The walk, each step failing with a message that names the file, the JSON location and the
 * input, param or node concerned:
 *   1. parse the JSON (errors carry line and column); check the top-level keys and "format";
 *   2. declare the graph inputs and params (shapes: positive, overflow-checked);
 *   3. declare one value per node, resolve every node input by name;
 *   4. sort the nodes topologically (sort.c);
 *   5. in that order: parse attrs, create implicit params, infer the output shape;
 *   6. check "outputs", "loss" and the optional "train" section (train_section.c), then mark
 *      which values need a gradient.
 * Nothing here runs a kernel; a model that loads can be planned and run.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/train_section.h"

/* ------------------------------------------------------------------ name table */

/* Open addressing from names to value indices, so that huge files stay linear. */
typedef struct name_table {
    int *slots; /* value index, or -1 */
    size_t cap; /* power of two */
} name_table;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

typedef struct loader {
    const char *file;
    dn_err *err;
    const cJSON *root;
    dn_graph *g;
    int values_cap;
    name_table names;
    /* For declared params: true once a shape is known (declared, or given by an implicit
     * creation), indexed by value. */
    bool *has_shape;
    int *param_json_index;
} loader;

static int names_lookup(const loader *L, const char *name)
{
    size_t mask = L->names.cap - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        int v = L->names.slots[i];
        if (v < 0 || strcmp(L->g->values[v].name, name) == 0)
            return v;
    }
}

static void names_insert(loader *L, int value)
{
    size_t mask = L->names.cap - 1;
    size_t i = hash_name(L->g->values[value].name) & mask;
    while (L->names.slots[i] >= 0)
        i = (i + 1) & mask;
    L->names.slots[i] = value;
}

/* ------------------------------------------------------------------ messages */

static dn_status fail(loader *L, dn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static dn_status fail(loader *L, dn_status st, const char *fmt, ...)
{
    char what[DN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return dn_err_set(L->err, st, "%s: %s", L->file, what);
}

static dn_status check_keys(loader *L, const cJSON *obj, const char *const *allowed,
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
                int n = snprintf(list + used, sizeof list - used, "%s%s", a == allowed ? "" : ", ", *a);
                used += n > 0 ? (size_t)n : 0;
            }
            return fail(L, DN_ERR_MODEL, "%s(%s/%s): unknown field \"%s\" (expected %s)", where,
                        loc, f->string, f->string, list);
        }
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ values */

static dn_status add_value(loader *L, const char *name, dn_value_kind kind, const char *where,
                           const char *loc, int *out)
{
    if (!name[0])
        return fail(L, DN_ERR_MODEL, "%s(%s): names must not be empty", where, loc);
    int existing = names_lookup(L, name);
    if (existing >= 0) {
        static const char *const kind_names[] = { "an input", "a param", "a node" };
        return fail(L, DN_ERR_MODEL, "%s(%s): duplicate name \"%s\" (already %s)", where, loc,
                    name, kind_names[L->g->values[existing].kind]);
    }
    if (L->g->n_values == L->values_cap)
        return fail(L, DN_ERR_NOMEM, "too many named tensors");
    int v = L->g->n_values;
    dn_value *val = &L->g->values[v];
    memset(val, 0, sizeof *val);
    val->name = strdup(name);
    if (!val->name)
        return fail(L, DN_ERR_NOMEM, "out of memory");
    val->kind = kind;
    val->node = -1;
    L->g->n_values++;
    names_insert(L, v);
    *out = v;
    return DN_OK;
}

/* A shape array: positive integer dims, `null` allowed only first (the batch) when
 * allow_batch. Overflow of the element count is an error. */
static dn_status parse_shape(loader *L, const cJSON *arr, bool allow_batch, const char *where,
                             const char *loc, dn_shape *out)
{
    if (!cJSON_IsArray(arr))
        return fail(L, DN_ERR_MODEL, "%s(%s): expected an array of dimensions, found %s", where,
                    loc, dn_json_kind(arr));
    int rank = cJSON_GetArraySize(arr);
    if (rank > DN_MAX_RANK)
        return fail(L, DN_ERR_MODEL, "%s(%s): rank %d is above the limit of %d", where, loc, rank,
                    DN_MAX_RANK);
    memset(out, 0, sizeof *out);
    out->rank = rank;
    int i = 0;
    for (const cJSON *d = arr->child; d; d = d->next, i++) {
        if (cJSON_IsNull(d) && i == 0 && allow_batch) {
            out->batched = true;
            out->d[0] = 1;
            continue;
        }
        if (cJSON_IsNull(d))
            return fail(L, DN_ERR_MODEL,
                        "%s(%s/%d): null is only allowed as the first (batch) dimension%s", where,
                        loc, i, allow_batch ? "" : " of a graph input");
        if (!cJSON_IsNumber(d) || !isfinite(d->valuedouble) || d->valuedouble != floor(d->valuedouble))
            return fail(L, DN_ERR_MODEL, "%s(%s/%d): expected a positive integer dimension, found %s",
                        where, loc, i, cJSON_IsNumber(d) ? "a fraction" : dn_json_kind(d));
        if (d->valuedouble < 1)
            return fail(L, DN_ERR_SHAPE, "%s(%s/%d): dimension must be >= 1, found %.0f", where, loc,
                        i, d->valuedouble);
        if (d->valuedouble > (double)DN_MAX_DIM)
            return fail(L, DN_ERR_SHAPE, "%s(%s/%d): dimension %.0f is above the limit of %lld",
                        where, loc, i, d->valuedouble, (long long)DN_MAX_DIM);
        out->d[i] = (int64_t)d->valuedouble;
    }
    if (dn_shape_numel(out) < 0)
        return fail(L, DN_ERR_SHAPE, "%s(%s): the element count of this shape overflows 64 bits",
                    where, loc);
    return DN_OK;
}

static dn_status parse_inputs(loader *L, const cJSON *inputs)
{
    if (!cJSON_IsObject(inputs))
        return fail(L, DN_ERR_MODEL, "(/inputs): expected an object of graph inputs, found %s",
                    dn_json_kind(inputs));
    static const char *const allowed[] = { "shape", "dtype", NULL };
    for (const cJSON *in = inputs->child; in; in = in->next) {
        char where[300], loc[300];
        snprintf(where, sizeof where, "input \"%s\" ", in->string);
        snprintf(loc, sizeof loc, "/inputs/%s", in->string);
        if (!cJSON_IsObject(in))
            return fail(L, DN_ERR_MODEL, "%s(%s): expected an object with \"shape\", found %s",
                        where, loc, dn_json_kind(in));
        dn_status st = check_keys(L, in, allowed, where, loc);
        if (st)
            return st;
        int v;
        if ((st = add_value(L, in->string, DN_VALUE_INPUT, where, loc, &v)))
            return st;
        L->g->input_values[L->g->n_inputs++] = v;
        dn_value *val = &L->g->values[v];
        char sloc[310];
        snprintf(sloc, sizeof sloc, "%s/shape", loc);
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
        if (!shape)
            return fail(L, DN_ERR_MODEL, "%s(%s): \"shape\" is required", where, loc);
        if ((st = parse_shape(L, shape, true, where, sloc, &val->desc.shape)))
            return st;
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(in, "dtype");
        val->desc.dtype = DN_F32;
        if (dtype) {
            if (cJSON_IsString(dtype) && strcmp(dtype->valuestring, "float32") == 0)
                val->desc.dtype = DN_F32;
            else if (cJSON_IsString(dtype) && strcmp(dtype->valuestring, "int32") == 0)
                val->desc.dtype = DN_I32;
            else
                return fail(L, DN_ERR_MODEL, "%s(%s/dtype): expected \"float32\" or \"int32\", found %s%s%s",
                            where, loc, cJSON_IsString(dtype) ? "\"" : "",
                            cJSON_IsString(dtype) ? dtype->valuestring : dn_json_kind(dtype),
                            cJSON_IsString(dtype) ? "\"" : "");
        }
    }
    return DN_OK;
}

static dn_status parse_params(loader *L, const cJSON *params)
{
    if (!params)
        return DN_OK;
    if (!cJSON_IsObject(params))
        return fail(L, DN_ERR_MODEL, "(/params): expected an object of params, found %s",
                    dn_json_kind(params));
    static const char *const allowed[] = { "shape", "init", NULL };
    int index = 0;
    for (const cJSON *p = params->child; p; p = p->next, index++) {
        char where[300], loc[300];
        snprintf(where, sizeof where, "param \"%s\" ", p->string);
        snprintf(loc, sizeof loc, "/params/%s", p->string);
        if (!cJSON_IsObject(p))
            return fail(L, DN_ERR_MODEL, "%s(%s): expected an object, found %s", where, loc,
                        dn_json_kind(p));
        dn_status st = check_keys(L, p, allowed, where, loc);
        if (st)
            return st;
        int v;
        if ((st = add_value(L, p->string, DN_VALUE_PARAM, where, loc, &v)))
            return st;
        L->g->param_values[L->g->n_params++] = v;
        L->param_json_index[v] = index;
        dn_value *val = &L->g->values[v];
        val->desc.dtype = DN_F32;
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(p, "shape");
        if (shape) {
            char sloc[310];
            snprintf(sloc, sizeof sloc, "%s/shape", loc);
            if ((st = parse_shape(L, shape, false, where, sloc, &val->desc.shape)))
                return st;
            L->has_shape[v] = true;
        }
        const cJSON *init = cJSON_GetObjectItemCaseSensitive(p, "init");
        char why[256];
        if (init && !dn_init_parse(init, &val->init, why, sizeof why))
            return fail(L, DN_ERR_MODEL, "%s(%s/init): %s", where, loc, why);
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ nodes */

static dn_status declare_node(loader *L, const cJSON *jn, int index)
{
    dn_node *n = &L->g->nodes[index];
    n->json_index = index;
    char loc[64];
    snprintf(loc, sizeof loc, "/nodes/%d", index);
    if (!cJSON_IsObject(jn))
        return fail(L, DN_ERR_MODEL, "(%s): expected a node object, found %s", loc, dn_json_kind(jn));
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(jn, "name");
    if (!cJSON_IsString(name))
        return fail(L, DN_ERR_MODEL, "(%s/name): every node needs a string \"name\", found %s",
                    loc, dn_json_kind(name));
    char where[300];
    snprintf(where, sizeof where, "node \"%s\" ", name->valuestring);
    static const char *const allowed[] = { "name", "op", "inputs", "attrs", NULL };
    dn_status st = check_keys(L, jn, allowed, where, loc);
    if (st)
        return st;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(jn, "op");
    if (!cJSON_IsString(op))
        return fail(L, DN_ERR_MODEL, "%s(%s/op): expected the op name as a string, found %s",
                    where, loc, dn_json_kind(op));
    n->op = dn_op_find(op->valuestring);
    if (!n->op) {
        char known[512] = "";
        size_t used = 0;
        for (int i = 0; i < dn_op_count() && used < sizeof known; i++) {
            int w = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", dn_op_at(i)->name);
            used += w > 0 ? (size_t)w : 0;
        }
        return fail(L, DN_ERR_MODEL, "%s(%s/op): unknown op \"%s\" (known ops: %s)", where, loc,
                    op->valuestring, known);
    }
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(jn, "attrs");
    if (attrs && !cJSON_IsObject(attrs))
        return fail(L, DN_ERR_MODEL, "%s(%s/attrs): expected an object, found %s", where, loc,
                    dn_json_kind(attrs));
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(jn, "inputs");
    if (!cJSON_IsArray(inputs))
        return fail(L, DN_ERR_MODEL, "%s(%s/inputs): expected an array of tensor names, found %s",
                    where, loc, dn_json_kind(inputs));
    n->name = strdup(name->valuestring);
    if (!n->name)
        return fail(L, DN_ERR_NOMEM, "out of memory");
    int v;
    if ((st = add_value(L, name->valuestring, DN_VALUE_NODE, where, loc, &v)))
        return st;
    n->output = v;
    L->g->values[v].node = index;
    return DN_OK;
}

/* Room for the node's inputs plus the params it may create. */
static dn_status resolve_inputs(loader *L, const cJSON *jn, dn_node *n)
{
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(jn, "inputs");
    int count = cJSON_GetArraySize(inputs);
    n->inputs = calloc((size_t)count + DN_MAX_IMPLICIT_PARAMS, sizeof *n->inputs);
    n->input_names = calloc((size_t)count + DN_MAX_IMPLICIT_PARAMS, sizeof *n->input_names);
    if (!n->inputs || !n->input_names)
        return fail(L, DN_ERR_NOMEM, "out of memory");
    int i = 0;
    for (const cJSON *in = inputs->child; in; in = in->next, i++) {
        if (!cJSON_IsString(in))
            return fail(L, DN_ERR_MODEL, "node \"%s\" (/nodes/%d/inputs/%d): expected a tensor name, found %s",
                        n->name, n->json_index, i, dn_json_kind(in));
        int v = names_lookup(L, in->valuestring);
        if (v < 0)
            return fail(L, DN_ERR_MODEL, "node \"%s\" (/nodes/%d/inputs/%d): input \"%s\" is not defined",
                        n->name, n->json_index, i, in->valuestring);
        n->inputs[i] = v;
        n->input_names[i] = L->g->values[v].name;
        n->n_inputs++;
    }
    return DN_OK;
}

/* The op's implicit params, created (or matched to a shape-less "params" entry). */
static dn_status create_implicit_params(loader *L, dn_node *n, const dn_node_ctx *c)
{
    dn_param_spec spec[DN_MAX_IMPLICIT_PARAMS];
    memset(spec, 0, sizeof spec);
    int count = n->op->implicit_params
                    ? n->op->implicit_params(n->attrs, &L->g->values[n->inputs[0]].desc, spec)
                    : 0;
    if (count == 0)
        return dn_node_fail(c, DN_ERR_MODEL, "inputs",
                            "%s expects %d to %d inputs, found %d%s", n->op->name,
                            n->op->min_inputs, n->op->max_inputs, n->n_inputs,
                            n->op->implicit_params ? " (or only its data input with the attrs that size its params)" : "");
    for (int i = 0; i < count; i++) {
        char name[512];
        snprintf(name, sizeof name, "%s.%s", n->name, spec[i].suffix);
        int v = names_lookup(L, name);
        dn_status st;
        if (v >= 0) {
            dn_value *val = &L->g->values[v];
            char a[DN_SHAPE_STR_MAX], b[DN_SHAPE_STR_MAX];
            if (val->kind != DN_VALUE_PARAM)
                return dn_node_fail(c, DN_ERR_MODEL, "name",
                                    "its implicit param \"%s\" clashes with a tensor of that name", name);
            if (L->has_shape[v] && !dn_shape_equal(&val->desc.shape, &spec[i].shape))
                return dn_node_fail(c, DN_ERR_SHAPE, "attrs",
                                    "implicit param \"%s\" has shape %s but /params/%s declares %s",
                                    name, dn_shape_str(&spec[i].shape, a, sizeof a), name,
                                    dn_shape_str(&val->desc.shape, b, sizeof b));
            if (!L->has_shape[v])
                val->desc.shape = spec[i].shape;
            if (val->init.type == DN_INIT_DEFAULT)
                val->init = spec[i].init;
            L->has_shape[v] = true;
        } else {
            if (dn_shape_numel(&spec[i].shape) < 0)
                return dn_node_fail(c, DN_ERR_SHAPE, "attrs",
                                    "the element count of implicit param \"%s\" overflows", name);
            char where[600];
            snprintf(where, sizeof where, "node \"%s\" ", n->name);
            char loc[64];
            snprintf(loc, sizeof loc, "/nodes/%d", n->json_index);
            if ((st = add_value(L, name, DN_VALUE_PARAM, where, loc, &v)))
                return st;
            L->g->param_values[L->g->n_params++] = v;
            dn_value *val = &L->g->values[v];
            val->desc = (dn_tensor_desc){ DN_F32, spec[i].shape };
            val->init = spec[i].init;
            L->has_shape[v] = true;
        }
        n->inputs[n->n_inputs] = v;
        n->input_names[n->n_inputs] = L->g->values[v].name;
        n->n_inputs++;
    }
    return DN_OK;
}

static dn_status check_arity(const dn_node *n, const dn_node_ctx *c)
{
    const dn_op *op = n->op;
    if (n->n_inputs >= op->min_inputs && (op->max_inputs < 0 || n->n_inputs <= op->max_inputs))
        return DN_OK;
    if (op->max_inputs < 0)
        return dn_node_fail(c, DN_ERR_MODEL, "inputs", "%s expects at least %d inputs, found %d",
                            op->name, op->min_inputs, n->n_inputs);
    if (op->min_inputs == op->max_inputs)
        return dn_node_fail(c, DN_ERR_MODEL, "inputs", "%s expects %d input%s, found %d",
                            op->name, op->min_inputs, op->min_inputs == 1 ? "" : "s", n->n_inputs);
    return dn_node_fail(c, DN_ERR_MODEL, "inputs", "%s expects %d to %d inputs, found %d",
                        op->name, op->min_inputs, op->max_inputs, n->n_inputs);
}

static int64_t count_param_elems(const dn_graph *g, const dn_node *n)
{
    int64_t total = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        const dn_value *v = &g->values[n->inputs[i]];
        if (v->kind == DN_VALUE_PARAM)
            total += dn_shape_numel(&v->desc.shape);
    }
    return total;
}

/* Step 5 for one node: attrs, implicit params, output shape. */
static dn_status build_node(loader *L, dn_node *n, const cJSON *jn)
{
    dn_node_ctx c = dn_graph_node_ctx(L->g, n, L->err);
    c.attrs = cJSON_GetObjectItemCaseSensitive(jn, "attrs");
    n->attrs = calloc(1, n->op->attrs_size ? n->op->attrs_size : 1);
    if (!n->attrs)
        return fail(L, DN_ERR_NOMEM, "out of memory");
    dn_status st = n->op->parse_attrs(&c, n->attrs);
    if (st)
        return st;
    if (n->n_inputs == 1 && n->op->implicit_params && (st = create_implicit_params(L, n, &c)))
        return st;
    c = dn_graph_node_ctx(L->g, n, L->err);
    if ((st = check_arity(n, &c)))
        return st;
    for (int i = 0; i < n->n_inputs; i++) {
        const dn_value *in = &L->g->values[n->inputs[i]];
        if (in->kind == DN_VALUE_PARAM && !L->has_shape[n->inputs[i]])
            return fail(L, DN_ERR_MODEL,
                        "param \"%s\" (/params/%s/shape): a shape is required (no node creates "
                        "this param implicitly before node \"%s\" reads it)",
                        in->name, in->name, n->name);
    }
    dn_tensor_desc *in = malloc(((size_t)n->n_inputs + 1) * sizeof *in);
    if (!in)
        return fail(L, DN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n->n_inputs; i++)
        in[i] = L->g->values[n->inputs[i]].desc;
    dn_tensor_desc *out = &L->g->values[n->output].desc;
    st = n->op->infer(&c, n->attrs, in, out);
    if (!st && dn_shape_numel(&out->shape) < 0)
        st = dn_node_fail(&c, DN_ERR_SHAPE, NULL, "the element count of the output overflows 64 bits");
    if (!st) {
        n->flops = n->op->flops ? n->op->flops(n->attrs, in, n->n_inputs, out) : 0;
        n->param_elems = count_param_elems(L->g, n);
    }
    free(in);
    return st;
}

/* ------------------------------------------------------------------ outputs and loss */

static dn_status parse_outputs(loader *L, const cJSON *outputs)
{
    if (!outputs)
        return DN_OK;
    if (!cJSON_IsArray(outputs))
        return fail(L, DN_ERR_MODEL, "(/outputs): expected an array of tensor names, found %s",
                    dn_json_kind(outputs));
    int count = cJSON_GetArraySize(outputs);
    L->g->outputs = calloc((size_t)count + 1, sizeof *L->g->outputs);
    if (!L->g->outputs)
        return fail(L, DN_ERR_NOMEM, "out of memory");
    int i = 0;
    for (const cJSON *o = outputs->child; o; o = o->next, i++) {
        if (!cJSON_IsString(o))
            return fail(L, DN_ERR_MODEL, "(/outputs/%d): expected a tensor name, found %s", i,
                        dn_json_kind(o));
        int v = names_lookup(L, o->valuestring);
        if (v < 0)
            return fail(L, DN_ERR_MODEL, "(/outputs/%d): output \"%s\" is not defined", i,
                        o->valuestring);
        L->g->outputs[L->g->n_outputs++] = v;
    }
    return DN_OK;
}

static dn_status parse_loss(loader *L, const cJSON *loss)
{
    L->g->loss = -1;
    if (!loss)
        return DN_OK;
    if (!cJSON_IsString(loss))
        return fail(L, DN_ERR_MODEL, "(/loss): expected the name of the loss tensor, found %s",
                    dn_json_kind(loss));
    int v = names_lookup(L, loss->valuestring);
    if (v < 0)
        return fail(L, DN_ERR_MODEL, "(/loss): loss \"%s\" is not defined", loss->valuestring);
    const dn_value *val = &L->g->values[v];
    char s[DN_SHAPE_STR_MAX];
    if (val->kind != DN_VALUE_NODE || val->desc.dtype != DN_F32 || val->desc.shape.batched ||
        dn_shape_numel(&val->desc.shape) != 1)
        return fail(L, DN_ERR_SHAPE,
                    "(/loss): loss \"%s\" must be a float32 scalar computed by a node, found %s %s %s",
                    loss->valuestring, val->kind == DN_VALUE_NODE ? "node output" : val->kind == DN_VALUE_PARAM ? "param" : "graph input",
                    dn_dtype_name(val->desc.dtype), dn_shape_str(&val->desc.shape, s, sizeof s));
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

static dn_status parse_json(loader *L, const char *json, size_t len, cJSON **root)
{
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (*root) {
        while (end < json + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end == json + len || *end == '\0')
            return DN_OK;
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
    return fail(L, DN_ERR_PARSE, "invalid JSON at line %d, column %d", line, col);
}

static dn_status check_top_level(loader *L, const cJSON *root)
{
    if (!cJSON_IsObject(root))
        return fail(L, DN_ERR_MODEL, "(/): a model is a JSON object, found %s", dn_json_kind(root));
    static const char *const allowed[] = { "format", "name", "inputs", "params", "nodes",
                                           "outputs", "loss", "train", NULL };
    dn_status st = check_keys(L, root, allowed, "", "");
    if (st)
        return st;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, "dagnet/1") != 0)
        return fail(L, DN_ERR_MODEL, "(/format): expected \"dagnet/1\", found %s%s%s",
                    cJSON_IsString(format) ? "\"" : "",
                    cJSON_IsString(format) ? format->valuestring : dn_json_kind(format),
                    cJSON_IsString(format) ? "\"" : "");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name && !cJSON_IsString(name))
        return fail(L, DN_ERR_MODEL, "(/name): expected a string, found %s", dn_json_kind(name));
    L->g->name = strdup(name ? name->valuestring : "");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) == 0)
        return fail(L, DN_ERR_MODEL, "(/nodes): expected a non-empty array of nodes, found %s",
                    dn_json_kind(nodes));
    if (!cJSON_GetObjectItemCaseSensitive(root, "inputs"))
        return fail(L, DN_ERR_MODEL, "(/inputs): \"inputs\" is required");
    return L->g->name ? DN_OK : fail(L, DN_ERR_NOMEM, "out of memory");
}

/* Capacity for every value: inputs + params + nodes + implicit params. */
static dn_status allocate(loader *L, const cJSON *root)
{
    int n_in = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "inputs"));
    int n_par = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "params"));
    int n_nodes = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "nodes"));
    int64_t cap = (int64_t)n_in + n_par + (int64_t)n_nodes * (1 + DN_MAX_IMPLICIT_PARAMS);
    if (cap > INT_MAX / 4)
        return fail(L, DN_ERR_MODEL, "too many inputs, params and nodes (%lld)", (long long)cap);
    dn_graph *g = L->g;
    L->values_cap = (int)cap;
    g->values = calloc((size_t)cap, sizeof *g->values);
    g->input_values = calloc((size_t)n_in + 1, sizeof *g->input_values);
    g->param_values = calloc((size_t)cap, sizeof *g->param_values);
    g->nodes = calloc((size_t)n_nodes, sizeof *g->nodes);
    L->has_shape = calloc((size_t)cap, sizeof *L->has_shape);
    L->param_json_index = calloc((size_t)cap, sizeof *L->param_json_index);
    size_t slots = 16;
    while (slots < (size_t)cap * 2)
        slots *= 2;
    L->names.cap = slots;
    L->names.slots = malloc(slots * sizeof *L->names.slots);
    if (!g->values || !g->input_values || !g->param_values || !g->nodes || !L->has_shape ||
        !L->param_json_index || !L->names.slots)
        return fail(L, DN_ERR_NOMEM, "out of memory");
    memset(L->names.slots, 0xff, slots * sizeof *L->names.slots);
    return DN_OK;
}

/* Put g->nodes in topological order (remapping value.node). */
static dn_status sort_nodes(loader *L)
{
    dn_graph *g = L->g;
    int *producer = malloc((size_t)g->n_values * sizeof *producer);
    int *order = malloc((size_t)g->n_nodes * sizeof *order);
    dn_node *sorted = malloc((size_t)g->n_nodes * sizeof *sorted);
    dn_status st = DN_ERR_NOMEM;
    if (!producer || !order || !sorted) {
        fail(L, DN_ERR_NOMEM, "out of memory");
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

static dn_status load(loader *L, const char *json, size_t len)
{
    cJSON *root = NULL;
    dn_status st = parse_json(L, json, len, &root);
    if (st)
        return st;
    L->root = root;
    if ((st = check_top_level(L, root)) || (st = allocate(L, root)) ||
        (st = parse_inputs(L, cJSON_GetObjectItemCaseSensitive(root, "inputs"))) ||
        (st = parse_params(L, cJSON_GetObjectItemCaseSensitive(root, "params"))))
        return st;
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    dn_graph *g = L->g;
    g->n_nodes = cJSON_GetArraySize(nodes);
    int i = 0;
    for (const cJSON *jn = nodes->child; jn; jn = jn->next, i++)
        if ((st = declare_node(L, jn, i)))
            return st;
    i = 0;
    for (const cJSON *jn = nodes->child; jn; jn = jn->next, i++)
        if ((st = resolve_inputs(L, jn, &g->nodes[i])))
            return st;
    if ((st = sort_nodes(L)))
        return st;
    for (i = 0; i < g->n_nodes; i++)
        if ((st = build_node(L, &g->nodes[i], cJSON_GetArrayItem(nodes, g->nodes[i].json_index))))
            return st;
    for (i = 0; i < g->n_params; i++) {
        int v = g->param_values[i];
        if (!L->has_shape[v])
            return fail(L, DN_ERR_MODEL,
                        "param \"%s\" (/params/%s/shape): a shape is required (no node creates "
                        "this param implicitly)",
                        g->values[v].name, g->values[v].name);
    }
    if ((st = parse_outputs(L, cJSON_GetObjectItemCaseSensitive(root, "outputs"))) ||
        (st = parse_loss(L, cJSON_GetObjectItemCaseSensitive(root, "loss"))))
        return st;
    if (g->n_outputs == 0 && g->loss < 0)
        return fail(L, DN_ERR_MODEL, "(/outputs): the model names neither \"outputs\" nor a \"loss\"");
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
    loader L = { .file = g->file ? g->file : "<model>", .err = err, .g = g };
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
