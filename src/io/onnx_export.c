/*
 * onnx_export.c — a dagnet model → an ONNX ModelProto, opset 13 (see onnx.h; docs/onnx.md).
 *
 * Every dagnet value keeps its name: graph inputs are graph inputs (dim 0 the symbolic "N"),
 * params are float32 initializers, each node writes one ONNX tensor named after it. The map:
 *   Conv           Conv (kernel_shape from W, pads [ph, pw, ph, pw], dilations, group)
 *   MaxPool        MaxPool;  AvgPool  AveragePool (count_include_pad; ceil → ceil_mode)
 *   Affine         Flatten (axis 1, only when x is not [N, F]) then Gemm with B = W [in, out]
 *                  as it is (transB 0), C = b: importing it gives back the same params
 *   ReLU, Sigmoid, Tanh, LeakyReLU, Softmax (axis), LRN (k → bias), Flatten, Add, Concat,
 *   Dropout (ratio as its second input), BatchNorm → BatchNormalization (momentum 1 − m),
 *   GlobalAvgPool → GlobalAveragePool
 *   SoftmaxCrossEntropy → SoftmaxCrossEntropyLoss (mean), only when the loss is asked for
 * Attrs come from the model's JSON text, already validated by the loader; defaults are the
 * format's (docs/format.md).
 *
 * Memory: every message and array lives in one list of allocations freed at the end, so the
 * error paths need no unwinding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/onnx.h"
#include "io/onnx.pb-c.h"

typedef struct ex {
    dn_err *err;
    const dn_onnx_graph *g;
    void **allocs;
    size_t n_allocs, cap_allocs;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    bool nomem;
} ex;

static void *alloc(ex *e, size_t size)
{
    if (e->n_allocs == e->cap_allocs) {
        size_t cap = e->cap_allocs ? 2 * e->cap_allocs : 256;
        void **p = realloc(e->allocs, cap * sizeof *p);
        if (!p) {
            e->nomem = true;
            return NULL;
        }
        e->allocs = p, e->cap_allocs = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        e->nomem = true;
        return NULL;
    }
    e->allocs[e->n_allocs++] = p;
    return p;
}

static char *str(ex *e, const char *s)
{
    size_t n = strlen(s);
    char *p = alloc(e, n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

/* Append to a growing array of pointers (kept in the arena once done). */
static bool push(ex *e, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (!item)
        return false;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        void **p = realloc(*arr, c * sizeof *p);
        if (!p) {
            e->nomem = true;
            return false;
        }
        *arr = p, *cap = c;
    }
    (*arr)[(*n)++] = item;
    return true;
}

/* ------------------------------------------------------------------ builders */

static Onnx__NodeProto *node(ex *e, const char *op, const char *name, const char *const *in,
                             int n_in, const char *out)
{
    Onnx__NodeProto *n = alloc(e, sizeof *n);
    char **ins = alloc(e, (size_t)n_in * sizeof *ins);
    char **outs = alloc(e, sizeof *outs);
    Onnx__AttributeProto **attrs = alloc(e, 8 * sizeof *attrs);
    if (!n || !ins || !outs || !attrs)
        return NULL;
    onnx__node_proto__init(n);
    for (int i = 0; i < n_in; i++)
        ins[i] = str(e, in[i]);
    outs[0] = str(e, out);
    n->n_input = (size_t)n_in, n->input = ins;
    n->n_output = 1, n->output = outs;
    n->name = str(e, name);
    n->op_type = str(e, op);
    n->attribute = attrs; /* at most 8 attrs per node here */
    push(e, (void ***)&e->nodes, &e->n_nodes, &e->cap_nodes, n);
    return n;
}

static Onnx__AttributeProto *new_attr(ex *e, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    if (!n || n->n_attribute == 8)
        return NULL;
    Onnx__AttributeProto *a = alloc(e, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = str(e, name);
    a->has_type = true;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_i(ex *e, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a)
        a->has_i = true, a->i = v;
}

static void attr_f(ex *e, Onnx__NodeProto *n, const char *name, double v)
{
    Onnx__AttributeProto *a = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a)
        a->has_f = true, a->f = (float)v;
}

static void attr_s(ex *e, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) {
        a->has_s = true;
        a->s.len = strlen(v);
        a->s.data = (uint8_t *)str(e, v);
    }
}

static void attr_is(ex *e, Onnx__NodeProto *n, const char *name, const int64_t *v, int count)
{
    Onnx__AttributeProto *a = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *p = alloc(e, (size_t)count * sizeof *p);
    if (a && p) {
        memcpy(p, v, (size_t)count * sizeof *p);
        a->n_ints = (size_t)count, a->ints = p;
    }
}

/* A float32 initializer, little-endian raw bytes. */
static void init_f32(ex *e, const char *name, const dn_shape *s, const float *data)
{
    Onnx__TensorProto *t = alloc(e, sizeof *t);
    int64_t *dims = alloc(e, (size_t)s->rank * sizeof *dims);
    int64_t numel = 1;
    for (int i = 0; i < s->rank; i++)
        numel *= s->d[i];
    uint8_t *raw = alloc(e, (size_t)numel * 4);
    if (!t || !dims || !raw)
        return;
    onnx__tensor_proto__init(t);
    for (int i = 0; i < s->rank; i++)
        dims[i] = s->d[i];
    for (int64_t i = 0; i < numel; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        for (int b = 0; b < 4; b++)
            raw[4 * i + b] = (uint8_t)(u >> (8 * b));
    }
    t->n_dims = (size_t)s->rank, t->dims = dims;
    t->has_data_type = true, t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->has_raw_data = true, t->raw_data.len = (size_t)numel * 4, t->raw_data.data = raw;
    t->name = str(e, name);
    push(e, (void ***)&e->inits, &e->n_inits, &e->cap_inits, t);
}

/* A tensor's type: float32 or int32, dim 0 "N" when batched. */
static Onnx__ValueInfoProto *value_info(ex *e, const char *name, dn_dtype dtype, const dn_shape *s)
{
    Onnx__ValueInfoProto *v = alloc(e, sizeof *v);
    Onnx__TypeProto *ty = alloc(e, sizeof *ty);
    Onnx__TypeProto__Tensor *tt = alloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sh = alloc(e, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = alloc(e, (size_t)s->rank * sizeof *dims);
    if (!v || !ty || !tt || !sh || !dims)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(ty);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < s->rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = alloc(e, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0 && s->batched) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = str(e, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = s->d[i];
        }
        dims[i] = d;
    }
    sh->n_dim = (size_t)s->rank, sh->dim = dims;
    tt->has_elem_type = true;
    tt->elem_type = dtype == DN_I32 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT32
                                    : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    ty->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    ty->tensor_type = tt;
    v->type = ty;
    v->name = str(e, name);
    return v;
}

/* ------------------------------------------------------------------ attrs from the JSON */

static const dn_onnx_value *value(const ex *e, const char *name)
{
    for (int i = 0; i < e->g->n_values; i++)
        if (!strcmp(e->g->values[i].name, name))
            return &e->g->values[i];
    return NULL;
}

/* An int or [h, w] attr (validated by the loader), or the default. */
static void pair(const cJSON *attrs, const char *key, int64_t dflt, int64_t out[2])
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(attrs, key);
    if (cJSON_IsNumber(a)) {
        out[0] = out[1] = (int64_t)a->valuedouble;
    } else if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == 2) {
        out[0] = (int64_t)cJSON_GetArrayItem(a, 0)->valuedouble;
        out[1] = (int64_t)cJSON_GetArrayItem(a, 1)->valuedouble;
    } else {
        out[0] = out[1] = dflt;
    }
}

static double number(const cJSON *attrs, const char *key, double dflt)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(attrs, key);
    return cJSON_IsNumber(a) ? a->valuedouble : dflt;
}

static bool boolean(const cJSON *attrs, const char *key, bool dflt)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(attrs, key);
    return cJSON_IsBool(a) ? cJSON_IsTrue(a) : dflt;
}

/* ------------------------------------------------------------------ ops */

static dn_status node_err(ex *e, const dn_onnx_node *n, const char *what)
{
    return dn_err_set(e->err, DN_ERR_MODEL, "ONNX export: node \"%.200s\" (%s): %s", n->name, n->op,
                      what);
}

static void window(ex *e, Onnx__NodeProto *o, const cJSON *a, const int64_t k[2], bool conv)
{
    int64_t s[2], p[2], d[2];
    pair(a, "stride", conv ? 1 : -1, s);
    if (s[0] < 0)
        s[0] = k[0], s[1] = k[1]; /* pooling: stride defaults to the kernel */
    pair(a, "pad", 0, p);
    int64_t pads[4] = { p[0], p[1], p[0], p[1] };
    attr_is(e, o, "kernel_shape", k, 2);
    attr_is(e, o, "strides", s, 2);
    attr_is(e, o, "pads", pads, 4);
    if (conv) {
        pair(a, "dilation", 1, d);
        attr_is(e, o, "dilations", d, 2);
        attr_i(e, o, "group", (int64_t)number(a, "groups", 1));
    } else if (boolean(a, "ceil", false)) {
        attr_i(e, o, "ceil_mode", 1);
    }
}

static dn_status export_node(ex *e, const dn_onnx_node *n, const cJSON *a, bool with_loss)
{
    const char *op = n->op;
    const char *const *in = (const char *const *)n->inputs;
    if (!strcmp(op, "Conv")) {
        const dn_onnx_value *w = n->n_inputs > 1 ? value(e, in[1]) : NULL;
        if (!w || w->shape->rank != 4)
            return node_err(e, n, "its weight is not a rank-4 param");
        int64_t k[2] = { w->shape->d[2], w->shape->d[3] };
        window(e, node(e, "Conv", n->name, in, n->n_inputs, n->name), a, k, true);
    } else if (!strcmp(op, "MaxPool") || !strcmp(op, "AvgPool")) {
        bool avg = op[0] == 'A';
        int64_t k[2];
        pair(a, "kernel", 1, k);
        Onnx__NodeProto *o = node(e, avg ? "AveragePool" : "MaxPool", n->name, in, 1, n->name);
        window(e, o, a, k, false);
        if (avg)
            attr_i(e, o, "count_include_pad", boolean(a, "count_include_pad", true));
    } else if (!strcmp(op, "GlobalAvgPool")) {
        node(e, "GlobalAveragePool", n->name, in, 1, n->name);
    } else if (!strcmp(op, "ReLU") || !strcmp(op, "Sigmoid") || !strcmp(op, "Tanh")) {
        node(e, op[0] == 'R' ? "Relu" : op, n->name, in, 1, n->name);
    } else if (!strcmp(op, "LeakyReLU")) {
        attr_f(e, node(e, "LeakyRelu", n->name, in, 1, n->name), "alpha", number(a, "alpha", 0.01));
    } else if (!strcmp(op, "Affine")) {
        const dn_onnx_value *x = value(e, in[0]);
        const char *gin[3] = { in[0], in[1], n->n_inputs > 2 ? in[2] : NULL };
        char flat[600];
        if (!x)
            return node_err(e, n, "its input has no shape");
        if (x->shape->rank != 2) {
            snprintf(flat, sizeof flat, "%.500s/flatten", n->name);
            attr_i(e, node(e, "Flatten", flat, in, 1, flat), "axis", 1);
            gin[0] = flat;
        }
        node(e, "Gemm", n->name, gin, n->n_inputs, n->name);
    } else if (!strcmp(op, "Softmax")) {
        attr_i(e, node(e, "Softmax", n->name, in, 1, n->name), "axis",
               (int64_t)number(a, "axis", 1));
    } else if (!strcmp(op, "Dropout")) {
        char ratio[600];
        snprintf(ratio, sizeof ratio, "%.500s/ratio", n->name);
        float r = (float)number(a, "ratio", 0.5);
        dn_shape scalar = { .rank = 0 };
        init_f32(e, ratio, &scalar, &r);
        const char *din[2] = { in[0], ratio };
        node(e, "Dropout", n->name, din, 2, n->name);
    } else if (!strcmp(op, "LRN")) {
        Onnx__NodeProto *o = node(e, "LRN", n->name, in, 1, n->name);
        attr_i(e, o, "size", (int64_t)number(a, "size", 5));
        attr_f(e, o, "alpha", number(a, "alpha", 1e-4));
        attr_f(e, o, "beta", number(a, "beta", 0.75));
        attr_f(e, o, "bias", number(a, "k", 1.0));
    } else if (!strcmp(op, "Flatten")) {
        attr_i(e, node(e, "Flatten", n->name, in, 1, n->name), "axis", 1);
    } else if (!strcmp(op, "Add")) {
        node(e, "Add", n->name, in, 2, n->name);
    } else if (!strcmp(op, "Concat")) {
        attr_i(e, node(e, "Concat", n->name, in, n->n_inputs, n->name), "axis",
               (int64_t)number(a, "axis", 1));
    } else if (!strcmp(op, "BatchNorm")) {
        Onnx__NodeProto *o = node(e, "BatchNormalization", n->name, in, n->n_inputs, n->name);
        attr_f(e, o, "epsilon", number(a, "epsilon", 1e-5));
        attr_f(e, o, "momentum", 1.0 - number(a, "momentum", 0.1));
    } else if (!strcmp(op, "SoftmaxCrossEntropy")) {
        if (!with_loss)
            return DN_OK;
        const dn_onnx_value *l = n->n_inputs > 1 ? value(e, in[1]) : NULL;
        if (!l || l->dtype != DN_I32)
            return node_err(e, n,
                            "ONNX's SoftmaxCrossEntropyLoss takes class indices, not "
                            "one-hot float labels");
        attr_s(e, node(e, "SoftmaxCrossEntropyLoss", n->name, in, 2, n->name), "reduction", "mean");
    } else {
        return node_err(e, n, "this op has no ONNX export");
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ the model */

static dn_status build(ex *e, const dn_onnx_export_opts *o, Onnx__ModelProto *m, cJSON *root)
{
    const dn_onnx_graph *g = e->g;
    bool with_loss = o && o->with_loss;
    const cJSON *jnodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    for (int i = 0; i < g->n_nodes; i++) {
        const cJSON *jn = cJSON_GetArrayItem(jnodes, g->nodes[i].json_index);
        const cJSON *attrs = jn ? cJSON_GetObjectItemCaseSensitive(jn, "attrs") : NULL;
        dn_status st = export_node(e, &g->nodes[i], attrs, with_loss);
        if (st)
            return st;
    }
    Onnx__ValueInfoProto **ins = alloc(e, (size_t)g->n_values * sizeof *ins);
    Onnx__ValueInfoProto **outs = alloc(e, ((size_t)g->n_outputs + 1) * sizeof *outs);
    if (!ins || !outs)
        return dn_err_set(e->err, DN_ERR_NOMEM, "ONNX export: out of memory");
    size_t n_in = 0, n_out = 0;
    for (int i = 0; i < g->n_values; i++) {
        const dn_onnx_value *v = &g->values[i];
        if (v->kind == DN_ONNX_PARAM)
            init_f32(e, v->name, v->shape, v->data);
        else if (v->kind == DN_ONNX_INPUT && (v->dtype == DN_F32 || with_loss))
            ins[n_in++] = value_info(e, v->name, v->dtype, v->shape);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const dn_onnx_value *v = value(e, g->outputs[i]);
        if (!v)
            return dn_err_set(e->err, DN_ERR_MODEL, "ONNX export: output \"%.200s\" is unknown",
                              g->outputs[i]);
        outs[n_out++] = value_info(e, v->name, v->dtype, v->shape);
    }
    if (with_loss && g->loss) {
        dn_shape scalar = { .rank = 0 };
        outs[n_out++] = value_info(e, g->loss, DN_F32, &scalar);
    }
    Onnx__GraphProto *gp = alloc(e, sizeof *gp);
    Onnx__OperatorSetIdProto *opset = alloc(e, sizeof *opset);
    Onnx__OperatorSetIdProto **opsets = alloc(e, sizeof *opsets);
    if (!gp || !opset || !opsets || e->nomem)
        return dn_err_set(e->err, DN_ERR_NOMEM, "ONNX export: out of memory");
    onnx__graph_proto__init(gp);
    gp->name = str(e, g->name ? g->name : "dagnet");
    gp->n_node = e->n_nodes, gp->node = e->nodes;
    gp->n_initializer = e->n_inits, gp->initializer = e->inits;
    gp->n_input = n_in, gp->input = ins;
    gp->n_output = n_out, gp->output = outs;
    onnx__operator_set_id_proto__init(opset);
    opset->domain = str(e, "");
    opset->has_version = true, opset->version = 13;
    opsets[0] = opset;
    m->has_ir_version = true, m->ir_version = 7;
    m->n_opset_import = 1, m->opset_import = opsets;
    m->producer_name = str(e, "dagnet");
    m->graph = gp;
    if (e->nomem)
        return dn_err_set(e->err, DN_ERR_NOMEM, "ONNX export: out of memory");
    return DN_OK;
}

dn_status dn_onnx_export(const dn_onnx_graph *g, const dn_onnx_export_opts *opts,
                         unsigned char **out, size_t *out_len, dn_err *err)
{
    *out = NULL;
    *out_len = 0;
    cJSON *root = cJSON_ParseWithLength(g->json, g->json_len);
    if (!root)
        return dn_err_set(err, DN_ERR_PARSE, "ONNX export: the model's JSON does not parse");
    ex e = { .err = err, .g = g };
    Onnx__ModelProto m;
    onnx__model_proto__init(&m);
    dn_status st = build(&e, opts, &m, root);
    if (!st) {
        size_t size = onnx__model_proto__get_packed_size(&m);
        *out = malloc(size ? size : 1);
        if (!*out)
            st = dn_err_set(err, DN_ERR_NOMEM, "ONNX export: out of memory for %zu bytes", size);
        else
            *out_len = onnx__model_proto__pack(&m, *out);
    }
    for (size_t i = 0; i < e.n_allocs; i++)
        free(e.allocs[i]);
    free(e.allocs);
    free(e.nodes);
    free(e.inits);
    cJSON_Delete(root);
    return st;
}
