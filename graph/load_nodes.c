/*
 * load_nodes.c — the loader's nodes: steps 3 and 5 of load.c's walk.
 *
 * Step 3 runs in file order, in two passes: first every node is declared (its name, its op
 * from the registry, its output value), then every input is resolved by name. Declaring all
 * outputs first lets a node name a value defined further down the file; the sort (sort.c)
 * then decides the order.
 *
 * Step 5 runs in sorted order, because each node needs its inputs' shapes: the op parses its
 * attrs; a node that names only its data input gets the op's implicit params, "<node>.weight"
 * and "<node>.bias", with shapes from the data input and the attrs (a "params" entry of that
 * name without a shape takes it, one with a shape must agree); the arity is checked, every
 * param read must have a shape by now, and the op's infer gives the output shape, which must
 * fit 64 bits. The node's flops and param elements are counted then, once.
 *
 * Implicit tensors may be state (dn_op.implicit_state: BatchNorm's "<node>.running_mean"),
 * created as such or matched to a "state" entry. An op's state input slots (dn_op.state_inputs)
 * must hold state tensors: the op writes them in a training forward.
 */
#include "graph/load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ step 3, file order */

dn_status dn_load_declare_node(dn_loader *L, const cJSON *jn, int index)
{
    dn_node *n = &L->g->nodes[index];
    n->json_index = index;
    char loc[64];
    snprintf(loc, sizeof loc, "/nodes/%d", index);
    if (!cJSON_IsObject(jn))
        return dn_load_fail(L, DN_ERR_MODEL, "(%s): expected a node object, found %s", loc,
                            dn_json_kind(jn));
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(jn, "name");
    if (!cJSON_IsString(name))
        return dn_load_fail(L, DN_ERR_MODEL,
                            "(%s/name): every node needs a string \"name\", found %s", loc,
                            dn_json_kind(name));
    char where[300];
    snprintf(where, sizeof where, "node \"%s\" ", name->valuestring);
    static const char *const allowed[] = { "name", "op", "inputs", "attrs", NULL };
    dn_status st = dn_load_check_keys(L, jn, allowed, where, loc);
    if (st)
        return st;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(jn, "op");
    if (!cJSON_IsString(op))
        return dn_load_fail(L, DN_ERR_MODEL,
                            "%s(%s/op): expected the op name as a string, found %s", where, loc,
                            dn_json_kind(op));
    n->op = dn_op_find(op->valuestring);
    if (!n->op) {
        char known[512] = "";
        size_t used = 0;
        for (int i = 0; i < dn_op_count() && used < sizeof known; i++) {
            int w = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                             dn_op_at(i)->name);
            used += w > 0 ? (size_t)w : 0;
        }
        return dn_load_fail(L, DN_ERR_MODEL, "%s(%s/op): unknown op \"%s\" (known ops: %s)", where,
                            loc, op->valuestring, known);
    }
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(jn, "attrs");
    if (attrs && !cJSON_IsObject(attrs))
        return dn_load_fail(L, DN_ERR_MODEL, "%s(%s/attrs): expected an object, found %s", where,
                            loc, dn_json_kind(attrs));
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(jn, "inputs");
    if (!cJSON_IsArray(inputs))
        return dn_load_fail(L, DN_ERR_MODEL,
                            "%s(%s/inputs): expected an array of tensor names, found %s", where,
                            loc, dn_json_kind(inputs));
    n->name = strdup(name->valuestring);
    if (!n->name)
        return dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
    int v;
    if ((st = dn_load_add_value(L, name->valuestring, DN_VALUE_NODE, where, loc, &v)))
        return st;
    n->output = v;
    L->g->values[v].node = index;
    return DN_OK;
}

/* Room for the node's inputs plus the params it may create. */
dn_status dn_load_resolve_inputs(dn_loader *L, const cJSON *jn, dn_node *n)
{
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(jn, "inputs");
    int count = cJSON_GetArraySize(inputs);
    n->inputs = calloc((size_t)count + DN_MAX_IMPLICIT_PARAMS, sizeof *n->inputs);
    n->input_names = calloc((size_t)count + DN_MAX_IMPLICIT_PARAMS, sizeof *n->input_names);
    if (!n->inputs || !n->input_names)
        return dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
    int i = 0;
    for (const cJSON *in = inputs->child; in; in = in->next, i++) {
        if (!cJSON_IsString(in))
            return dn_load_fail(L, DN_ERR_MODEL,
                                "node \"%s\" (/nodes/%d/inputs/%d): expected a tensor name, "
                                "found %s",
                                n->name, n->json_index, i, dn_json_kind(in));
        int v = dn_load_lookup(L, in->valuestring);
        if (v < 0)
            return dn_load_fail(L, DN_ERR_MODEL,
                                "node \"%s\" (/nodes/%d/inputs/%d): input \"%s\" is not defined",
                                n->name, n->json_index, i, in->valuestring);
        n->inputs[i] = v;
        n->input_names[i] = L->g->values[v].name;
        n->n_inputs++;
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ step 5, sorted order */

/* The op's implicit params, created (or matched to a shape-less "params" entry). */
static dn_status create_implicit_params(dn_loader *L, dn_node *n, const dn_node_ctx *c)
{
    dn_param_spec spec[DN_MAX_IMPLICIT_PARAMS];
    memset(spec, 0, sizeof spec);
    int count = n->op->implicit_params
                    ? n->op->implicit_params(n->attrs, &L->g->values[n->inputs[0]].desc, spec)
                    : 0;
    if (count == 0)
        return dn_node_fail(c, DN_ERR_MODEL, "inputs", "%s expects %d to %d inputs, found %d%s",
                            n->op->name, n->op->min_inputs, n->op->max_inputs, n->n_inputs,
                            n->op->implicit_params
                                ? " (or only its data input with the attrs that size its params)"
                                : "");
    for (int i = 0; i < count; i++) {
        char name[512];
        snprintf(name, sizeof name, "%s.%s", n->name, spec[i].suffix);
        bool is_state = (n->op->implicit_state >> i) & 1u;
        dn_value_kind kind = is_state ? DN_VALUE_STATE : DN_VALUE_PARAM;
        const char *what = is_state ? "state" : "param";
        const char *section = is_state ? "state" : "params";
        int v = dn_load_lookup(L, name);
        dn_status st;
        if (v >= 0) {
            dn_value *val = &L->g->values[v];
            char a[DN_SHAPE_STR_MAX], b[DN_SHAPE_STR_MAX];
            if (val->kind != kind)
                return dn_node_fail(c, DN_ERR_MODEL, "name",
                                    "its implicit %s \"%s\" clashes with a tensor of that name "
                                    "(%s)",
                                    what, name,
                                    val->kind == DN_VALUE_PARAM   ? "declared in \"params\""
                                    : val->kind == DN_VALUE_STATE ? "declared in \"state\""
                                                                  : "not a declared tensor");
            if (L->has_shape[v] && !dn_shape_equal(&val->desc.shape, &spec[i].shape))
                return dn_node_fail(c, DN_ERR_SHAPE, "attrs",
                                    "implicit %s \"%s\" has shape %s but /%s/%s declares %s", what,
                                    name, dn_shape_str(&spec[i].shape, a, sizeof a), section, name,
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
            if ((st = dn_load_add_value(L, name, kind, where, loc, &v)))
                return st;
            if (is_state)
                L->g->state_values[L->g->n_state++] = v;
            else
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
        return dn_node_fail(c, DN_ERR_MODEL, "inputs", "%s expects %d input%s, found %d", op->name,
                            op->min_inputs, op->min_inputs == 1 ? "" : "s", n->n_inputs);
    return dn_node_fail(c, DN_ERR_MODEL, "inputs", "%s expects %d to %d inputs, found %d", op->name,
                        op->min_inputs, op->max_inputs, n->n_inputs);
}

/* The op writes its state inputs in a training forward: only a state tensor may sit there
 * (never a param an optimiser trains, a graph input or another node's output), and a state
 * tensor is read elsewhere only as plain data. */
static dn_status check_state_inputs(const dn_graph *g, const dn_node *n, const dn_node_ctx *c)
{
    static const char *const kinds[] = { "a graph input", "a param (declared in \"params\")",
                                         "a node output", "state" };
    for (int i = 0; i < n->n_inputs && i < 32; i++) {
        const dn_value *in = &g->values[n->inputs[i]];
        if (!(n->op->state_inputs & (1u << i)) || in->kind == DN_VALUE_STATE)
            continue;
        char field[32];
        snprintf(field, sizeof field, "inputs/%d", i);
        return dn_node_fail(c, DN_ERR_MODEL, field,
                            "%s input %d \"%s\" must be a state tensor (declared in the top-level "
                            "\"state\" section: %s updates it in training, no optimiser may), "
                            "found %s",
                            n->op->name, i, in->name, n->op->name, kinds[in->kind]);
    }
    return DN_OK;
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
dn_status dn_load_build_node(dn_loader *L, dn_node *n, const cJSON *jn)
{
    dn_node_ctx c = dn_graph_node_ctx(L->g, n, L->err);
    c.attrs = cJSON_GetObjectItemCaseSensitive(jn, "attrs");
    n->attrs = calloc(1, n->op->attrs_size ? n->op->attrs_size : 1);
    if (!n->attrs)
        return dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
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
        bool state = in->kind == DN_VALUE_STATE;
        if ((in->kind == DN_VALUE_PARAM || state) && !L->has_shape[n->inputs[i]])
            return dn_load_fail(L, DN_ERR_MODEL,
                                "%s \"%s\" (/%s/%s/shape): a shape is required (no node "
                                "creates this %s implicitly before node \"%s\" reads it)",
                                state ? "state" : "param", in->name, state ? "state" : "params",
                                in->name, state ? "state tensor" : "param", n->name);
    }
    if ((st = check_state_inputs(L->g, n, &c)))
        return st;
    dn_tensor_desc *in = malloc(((size_t)n->n_inputs + 1) * sizeof *in);
    if (!in)
        return dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n->n_inputs; i++)
        in[i] = L->g->values[n->inputs[i]].desc;
    dn_tensor_desc *out = &L->g->values[n->output].desc;
    st = n->op->infer(&c, n->attrs, in, out);
    if (!st && dn_shape_numel(&out->shape) < 0)
        st = dn_node_fail(&c, DN_ERR_SHAPE, NULL,
                          "the element count of the output overflows 64 bits");
    if (!st) {
        n->flops = n->op->flops ? n->op->flops(n->attrs, in, n->n_inputs, out) : 0;
        n->param_elems = count_param_elems(L->g, n);
    }
    free(in);
    return st;
}
