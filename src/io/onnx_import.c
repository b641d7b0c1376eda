/*
 * onnx_import.c — an ONNX ModelProto → a dagnet/1 JSON model and a safetensors image of its
 * weights (see onnx.h; the op table is docs/onnx.md).
 *
 * The walk: the graph's nodes in file order (ONNX requires a topological order), each ONNX
 * tensor tracked by name with its dagnet value and its shape ([N, ...]: dim 0 is the batch,
 * `null` in dagnet). Most ops map one to one and keep the name of their first output as the
 * dagnet node's name, so the ONNX names of tensors survive. Some are folded:
 *   Identity, Constant            aliases and constants, no node
 *   Pad (constant 0, on H and W)  into the pads of the Conv or AveragePool that reads it (the
 *                                 padded zeros then count in the average: count_include_pad)
 *   MatMul (+ Add of a [out] initializer)   one Affine with W [in, out] as it is
 *   Gemm                          Affine with W = alpha·op(B) laid out [in, out] (op(B) = Bᵀ
 *                                 when transB) and b = beta·C broadcast to [out]
 *   Flatten(axis 1), Reshape to [N, rest]   Flatten
 *   GlobalAveragePool / GlobalMaxPool       a pool whose window is the whole plane
 * Initializers that a node reads as weights become params (BatchNormalization's mean and
 * variance: state) under their ONNX names, in float32.
 *
 * Hostile files: the size is bounded by the caller; the nesting depth is checked by walking
 * the wire format along the schema before protobuf-c unpacks (its unpack recurses); counts of
 * nodes, inputs and attrs are capped; every initializer's dims are checked (rank, sign,
 * overflow) against the bytes it really holds; external data is refused.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/onnx.h"
#include "io/onnx.pb-c.h"

#define MAX_NODES 100000
#define MAX_TENSORS 400000
#define MAX_NODE_IO 4096

/* ------------------------------------------------------------------ nesting depth */

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* True when no message in [p, end) (of type d) nests deeper than DN_ONNX_MAX_DEPTH. Malformed
 * bytes return true: protobuf-c's unpack then reports them. */
static bool depth_ok(const uint8_t *p, const uint8_t *end, const ProtobufCMessageDescriptor *d,
                     int depth)
{
    if (depth > DN_ONNX_MAX_DEPTH)
        return false;
    while (p < end) {
        uint64_t tag, v;
        if (!read_varint(&p, end, &tag))
            return true;
        switch (tag & 7) {
        case 0:
            if (!read_varint(&p, end, &v))
                return true;
            break;
        case 1:
            if (end - p < 8)
                return true;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return true;
            p += 4;
            break;
        case 2: {
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return true;
            const ProtobufCFieldDescriptor *f =
                (tag >> 3) <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !depth_ok(p, p + v, f->descriptor, depth + 1))
                return false;
            p += v;
            break;
        }
        default: return true;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ tensors by name */

typedef enum tkind { T_INPUT, T_NODE, T_INIT, T_PAD } tkind;

typedef struct tinfo {
    const char *onnx; /* the ONNX name */
    const char *dn;   /* the dagnet value it is (T_INPUT, T_NODE) */
    tkind kind;
    int rank;
    int64_t d[DN_MAX_RANK];
    const Onnx__TensorProto *init; /* T_INIT */
    int64_t pad[4];                /* T_PAD: top, left, bottom, right of H and W */
    const char *op;                /* T_NODE: the dagnet op that made it */
    const char *src;               /* T_NODE Softmax: its input (the logits for a loss) */
    int param;                     /* T_INIT: index in the emitted params, or -1 */
    bool unbatched;                /* T_INPUT read as a weight: all dims fixed, no batch */
    bool declared;                 /* T_INPUT: written to the JSON's inputs */
    bool label;                    /* T_INPUT: SoftmaxCrossEntropyLoss's int labels [N] */
    int layout;                    /* the layout it was emitted in (see param_use) */
} tinfo;

typedef struct emitted {
    const char *name;
    dn_shape shape;
    float *data;
    bool state;
} emitted;

typedef struct imp {
    dn_err *err;
    const char *label;
    int opset;
    const Onnx__GraphProto *g;
    tinfo *t;
    int nt;
    int *hash; /* open addressing, size hcap (a power of two), -1 empty */
    size_t hcap;
    emitted *p;
    int np;
    cJSON *root, *inputs, *params, *state, *nodes;
    bool *skip; /* nodes folded into an earlier one */
    int *ph;    /* producers: open addressing over (node, output) pairs, size phcap */
    size_t phcap;
    struct lrn_fold *lrn; /* PyTorch's LocalResponseNorm chains, one LRN each */
    int n_lrn;
    const char *labels[16]; /* what SoftmaxCrossEntropyLoss nodes read as labels */
    int n_labels;
} imp;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int find(const imp *c, const char *name)
{
    for (size_t i = fnv(name) & (c->hcap - 1);; i = (i + 1) & (c->hcap - 1)) {
        if (c->hash[i] < 0)
            return -1;
        if (!strcmp(c->t[c->hash[i]].onnx, name))
            return c->hash[i];
    }
}

/* Add (or replace: ONNX names are single-assignment, but a hostile file may repeat one) */
static tinfo *define(imp *c, const char *name)
{
    int i = find(c, name);
    if (i >= 0) {
        memset(&c->t[i], 0, sizeof c->t[i]);
        c->t[i].onnx = name;
        c->t[i].param = -1;
        return &c->t[i];
    }
    size_t h = fnv(name) & (c->hcap - 1);
    while (c->hash[h] >= 0)
        h = (h + 1) & (c->hcap - 1);
    c->hash[h] = c->nt;
    tinfo *t = &c->t[c->nt++];
    memset(t, 0, sizeof *t);
    t->onnx = name;
    t->param = -1;
    return t;
}

/* ------------------------------------------------------------------ messages */

static const char *node_name(const Onnx__NodeProto *n)
{
    if (n->name && n->name[0])
        return n->name;
    return n->n_output && n->output[0] ? n->output[0] : "?";
}

#define NODE_ERR(c, n, st, ...) node_err((c), (n), (st), __VA_ARGS__)

__attribute__((format(printf, 4, 5))) static dn_status node_err(imp *c, const Onnx__NodeProto *n,
                                                                dn_status st, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!n) /* the graph's own checks (initializers read before any node) */
        return dn_err_set(c->err, st, "%s: %s", c->label, what);
    return dn_err_set(c->err, st, "%s: node \"%.200s\" (%.64s): %s", c->label, node_name(n),
                      n->op_type ? n->op_type : "?", what);
}

/* ------------------------------------------------------------------ attributes */

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT ? a->i : dflt;
}

static double attr_float(const Onnx__NodeProto *n, const char *name, double dflt)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT ? a->f : dflt;
}

/* The ints of `name` (NULL when absent); *count their number. */
static const int64_t *attr_ints(const Onnx__NodeProto *n, const char *name, size_t *count)
{
    const Onnx__AttributeProto *a = attr(n, name);
    *count = 0;
    if (!a || a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
        return NULL;
    *count = a->n_ints;
    return a->ints;
}

/* A string attr as a C string (bytes up to the first NUL, at most size-1). */
static bool attr_str(const Onnx__NodeProto *n, const char *name, char *buf, size_t size)
{
    const Onnx__AttributeProto *a = attr(n, name);
    buf[0] = 0;
    if (!a || a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
        return false;
    size_t len = a->s.len < size - 1 ? a->s.len : size - 1;
    if (len)
        memcpy(buf, a->s.data, len);
    buf[len] = 0;
    buf[strnlen(buf, len)] = 0;
    return true;
}

/* ------------------------------------------------------------------ initializer data */

/* Check an initializer's dims and element count against its bytes; *numel its elements. */
static dn_status tensor_check(imp *c, const Onnx__NodeProto *n, const Onnx__TensorProto *t,
                              int64_t *numel)
{
    const char *name = t->name ? t->name : "?";
    if (t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL || t->n_external_data)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "initializer \"%.200s\" keeps its data in an external file, which dagnet "
                        "does not read (save the model with its data inside)",
                        name);
    if (t->segment)
        return NODE_ERR(c, n, DN_ERR_MODEL, "initializer \"%.200s\" is segmented", name);
    if (t->n_dims > DN_MAX_RANK)
        return NODE_ERR(c, n, DN_ERR_MODEL, "initializer \"%.200s\" has rank %zu (at most %d)",
                        name, t->n_dims, DN_MAX_RANK);
    int64_t e = 1;
    for (size_t i = 0; i < t->n_dims; i++)
        if (t->dims[i] < 0 || __builtin_mul_overflow(e, t->dims[i], &e) || e > (INT64_MAX >> 4))
            return NODE_ERR(c, n, DN_ERR_PARSE, "initializer \"%.200s\": dim %zu is %lld", name, i,
                            (long long)t->dims[i]);
    size_t have;
    int item;
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        item = 4;
        have = t->has_raw_data ? t->raw_data.len / 4 : t->n_float_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        item = 8;
        have = t->has_raw_data ? t->raw_data.len / 8 : t->n_int64_data;
        break;
    default:
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "initializer \"%.200s\" has ONNX data type %d; dagnet reads float32 "
                        "weights and int64 shapes",
                        name, (int)t->data_type);
    }
    if (t->has_raw_data && t->raw_data.len % (size_t)item)
        return NODE_ERR(c, n, DN_ERR_PARSE,
                        "initializer \"%.200s\": %zu raw bytes is not a whole number of elements",
                        name, t->raw_data.len);
    if ((uint64_t)e != (uint64_t)have)
        return NODE_ERR(c, n, DN_ERR_PARSE,
                        "initializer \"%.200s\": dims hold %lld elements, the data %zu", name,
                        (long long)e, have);
    *numel = e;
    return DN_OK;
}

/* The float32 values of an initializer, malloc'ed (little-endian raw bytes or float_data). */
static dn_status tensor_floats(imp *c, const Onnx__NodeProto *n, const Onnx__TensorProto *t,
                               float **out, int64_t *numel)
{
    *out = NULL;
    dn_status st = tensor_check(c, n, t, numel);
    if (st)
        return st;
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return NODE_ERR(c, n, DN_ERR_MODEL, "initializer \"%.200s\" is not float32",
                        t->name ? t->name : "?");
    float *f = malloc((size_t)(*numel ? *numel : 1) * sizeof *f);
    if (!f)
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: out of memory for initializer \"%.200s\"",
                          c->label, t->name ? t->name : "?");
    if (t->has_raw_data) {
        for (int64_t i = 0; i < *numel; i++) {
            const uint8_t *b = t->raw_data.data + 4 * i;
            uint32_t u =
                (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&f[i], &u, 4);
        }
    } else if (*numel) {
        memcpy(f, t->float_data, (size_t)*numel * sizeof *f);
    }
    *out = f;
    return DN_OK;
}

/* Up to `max` int64 values of an initializer (a shape, pads). */
static dn_status tensor_ints(imp *c, const Onnx__NodeProto *n, const Onnx__TensorProto *t,
                             int64_t *out, int max, int *count)
{
    int64_t e;
    dn_status st = tensor_check(c, n, t, &e);
    if (st)
        return st;
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || e > max)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "\"%.200s\" should be at most %d int64 values (found %lld of type %d)",
                        t->name ? t->name : "?", max, (long long)e, (int)t->data_type);
    for (int64_t i = 0; i < e; i++) {
        if (t->has_raw_data) {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--)
                u = u << 8 | t->raw_data.data[8 * i + b];
            memcpy(&out[i], &u, 8);
        } else {
            out[i] = t->int64_data[i];
        }
    }
    *count = (int)e;
    return DN_OK;
}

/* ------------------------------------------------------------------ building the model */

static cJSON *int_pair(int64_t a, int64_t b)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr) {
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)a));
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)b));
    }
    return arr;
}

static cJSON *shape_json(const dn_shape *s)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < s->rank; i++)
        cJSON_AddItemToArray(arr, i == 0 && s->batched ? cJSON_CreateNull()
                                                       : cJSON_CreateNumber((double)s->d[i]));
    return arr;
}

/* Emit an initializer as a param (or state) in a given layout: `layout` 0 is the data as it
 * is; other layouts (a transposed or scaled Gemm weight) carry their own `data` (owned here).
 * One initializer read in two different layouts cannot be one param: refused. */
static dn_status param_use(imp *c, const Onnx__NodeProto *n, tinfo *ti, int layout, float *data,
                           const dn_shape *shape, bool state, const char **name)
{
    if (ti->kind == T_INPUT) { /* a weight fed at run time, as ONNX's node tests do */
        free(data);
        (void)state; /* BatchNorm's statistics, fed like the rest */
        if (layout != 0)
            return NODE_ERR(c, n, DN_ERR_MODEL,
                            "weight \"%.200s\" is a graph input that would need a new layout; "
                            "dagnet can only read it as it is",
                            ti->onnx);
        *name = ti->dn;
        return DN_OK;
    }
    if (ti->param >= 0) {
        free(data);
        if (ti->layout != layout || c->p[ti->param].state != state)
            return NODE_ERR(c, n, DN_ERR_MODEL,
                            "initializer \"%.200s\" is read by two ops in different layouts; "
                            "dagnet keeps one copy of a param",
                            ti->onnx);
        *name = ti->onnx;
        return DN_OK;
    }
    if (!data) {
        int64_t e;
        dn_status st = tensor_floats(c, n, ti->init, &data, &e);
        if (st)
            return st;
    }
    emitted *p = &c->p[c->np];
    p->name = ti->onnx;
    p->shape = *shape;
    p->shape.batched = false;
    p->data = data;
    p->state = state;
    ti->param = c->np++;
    ti->layout = layout;
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddItemToObject(entry, "shape", shape_json(&p->shape));
    if (state) {
        if (!c->state)
            c->state = cJSON_AddObjectToObject(c->root, "state");
        cJSON_AddItemToObject(c->state, ti->onnx, entry);
    } else {
        cJSON_AddItemToObject(c->params, ti->onnx, entry);
    }
    *name = ti->onnx;
    return DN_OK;
}

/* The initializer's shape as a dn_shape. */
static dn_shape init_shape(const Onnx__TensorProto *t)
{
    dn_shape s = { .rank = (int)t->n_dims, .batched = false };
    for (size_t i = 0; i < t->n_dims && i < DN_MAX_RANK; i++)
        s.d[i] = t->dims[i];
    return s;
}

/* A weight's dims: an initializer's, or those of a graph input read as a weight. */
static dn_shape wshape(const tinfo *t)
{
    if (t->kind == T_INIT)
        return init_shape(t->init);
    dn_shape s = { .rank = t->rank, .batched = false };
    memcpy(s.d, t->d, sizeof s.d);
    return s;
}

/* Add a dagnet node named by the ONNX node's first output; its output tensor gets `out`'s
 * shape. attrs may be NULL. */
static tinfo *emit(imp *c, const Onnx__NodeProto *n, const char *name, const char *op,
                   const char *const *in, int n_in, cJSON *attrs, const tinfo *shape)
{
    cJSON *node = cJSON_CreateObject();
    cJSON_AddStringToObject(node, "name", name);
    cJSON_AddStringToObject(node, "op", op);
    cJSON *arr = cJSON_AddArrayToObject(node, "inputs");
    for (int i = 0; i < n_in; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(in[i]));
    if (attrs)
        cJSON_AddItemToObject(node, "attrs", attrs);
    cJSON_AddItemToArray(c->nodes, node);
    (void)n;
    tinfo tmp = *shape;
    tinfo *t = define(c, name);
    t->kind = T_NODE;
    t->dn = name;
    t->op = op;
    t->rank = tmp.rank;
    memcpy(t->d, tmp.d, sizeof t->d);
    return t;
}

/* The tensor an ONNX node reads at input i, or an error naming it. Optional inputs (an empty
 * name) give NULL with DN_OK. */
static dn_status input(imp *c, const Onnx__NodeProto *n, size_t i, tinfo **out)
{
    *out = NULL;
    if (i >= n->n_input || !n->input[i] || !n->input[i][0])
        return DN_OK;
    int k = find(c, n->input[i]);
    if (k < 0)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "input \"%.200s\" is not defined by an earlier node, an input or an "
                        "initializer",
                        n->input[i]);
    *out = &c->t[k];
    return DN_OK;
}

/* A data input: computed (not a weight), not a pending Pad (unless allowed), rank-checked. */
static dn_status data_input(imp *c, const Onnx__NodeProto *n, size_t i, bool pad_ok, tinfo **out)
{
    dn_status st = input(c, n, i, out);
    if (st)
        return st;
    if (!*out)
        return NODE_ERR(c, n, DN_ERR_MODEL, "input %zu is missing", i);
    if ((*out)->kind == T_INIT)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "input \"%.200s\" is a constant; dagnet computes this op only on data "
                        "that flows from the graph's inputs",
                        (*out)->onnx);
    if ((*out)->label)
        return NODE_ERR(c, n, DN_ERR_MODEL, "input \"%.200s\" is a label input", (*out)->onnx);
    if ((*out)->kind == T_PAD && !pad_ok)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "input \"%.200s\" comes from a Pad; dagnet folds a Pad only into the "
                        "Conv or AveragePool that reads it",
                        (*out)->onnx);
    return DN_OK;
}

static dn_status weight_input(imp *c, const Onnx__NodeProto *n, size_t i, bool required,
                              tinfo **out)
{
    dn_status st = input(c, n, i, out);
    if (st)
        return st;
    if (!*out) {
        if (required)
            return NODE_ERR(c, n, DN_ERR_MODEL, "input %zu (a weight) is missing", i);
        return DN_OK;
    }
    if ((*out)->kind != T_INIT && !((*out)->kind == T_INPUT && (*out)->unbatched))
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "input \"%.200s\" is computed; dagnet needs this weight as an "
                        "initializer or a graph input",
                        (*out)->onnx);
    return DN_OK;
}

/* ------------------------------------------------------------------ window ops */

typedef struct window {
    int64_t k[2], s[2], d[2], p[4]; /* p: top, left, bottom, right */
} window;

/* kernel_shape (or the weight's), strides, dilations, pads / auto_pad of a 2-D window op. */
static dn_status window_attrs(imp *c, const Onnx__NodeProto *n, const tinfo *x,
                              const int64_t *kernel, window *w)
{
    size_t cnt;
    const int64_t *v;
    if (x->rank != 4)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "input \"%.200s\" has rank %d; dagnet runs 2-D windows on [N, C, H, W] "
                        "only",
                        x->onnx, x->rank);
    if ((v = attr_ints(n, "kernel_shape", &cnt))) {
        if (cnt != 2)
            return NODE_ERR(c, n, DN_ERR_MODEL,
                            "kernel_shape has %zu dims; dagnet's windows are 2-D", cnt);
        if (kernel && (v[0] != kernel[0] || v[1] != kernel[1]))
            return NODE_ERR(c, n, DN_ERR_MODEL, "kernel_shape disagrees with the weight");
        w->k[0] = v[0], w->k[1] = v[1];
    } else if (kernel) {
        w->k[0] = kernel[0], w->k[1] = kernel[1];
    } else {
        return NODE_ERR(c, n, DN_ERR_MODEL, "kernel_shape is missing");
    }
    w->s[0] = w->s[1] = w->d[0] = w->d[1] = 1;
    memset(w->p, 0, sizeof w->p);
    if ((v = attr_ints(n, "strides", &cnt))) {
        if (cnt != 2)
            return NODE_ERR(c, n, DN_ERR_MODEL, "strides has %zu values, expected 2", cnt);
        w->s[0] = v[0], w->s[1] = v[1];
    }
    if ((v = attr_ints(n, "dilations", &cnt))) {
        if (cnt != 2)
            return NODE_ERR(c, n, DN_ERR_MODEL, "dilations has %zu values, expected 2", cnt);
        w->d[0] = v[0], w->d[1] = v[1];
    }
    for (int i = 0; i < 2; i++)
        if (w->k[i] < 1 || w->k[i] > (1 << 20) || w->s[i] < 1 || w->s[i] > (1 << 20) ||
            w->d[i] < 1 || w->d[i] > (1 << 20))
            return NODE_ERR(c, n, DN_ERR_MODEL,
                            "kernel %lld×%lld, strides %lld×%lld, dilations %lld×%lld: each "
                            "must be in [1, 2^20]",
                            (long long)w->k[0], (long long)w->k[1], (long long)w->s[0],
                            (long long)w->s[1], (long long)w->d[0], (long long)w->d[1]);
    char autopad[32];
    attr_str(n, "auto_pad", autopad, sizeof autopad);
    if (!autopad[0] || !strcmp(autopad, "NOTSET")) {
        if ((v = attr_ints(n, "pads", &cnt))) {
            if (cnt != 4)
                return NODE_ERR(c, n, DN_ERR_MODEL, "pads has %zu values, expected 4", cnt);
            for (int i = 0; i < 4; i++) {
                if (v[i] < 0 || v[i] > (1 << 20))
                    return NODE_ERR(c, n, DN_ERR_MODEL, "pads[%d] is %lld", i, (long long)v[i]);
                w->p[i] = v[i];
            }
        }
    } else if (!strcmp(autopad, "SAME_UPPER") || !strcmp(autopad, "SAME_LOWER")) {
        for (int i = 0; i < 2; i++) {
            int64_t in = x->d[2 + i], out = (in + w->s[i] - 1) / w->s[i];
            int64_t total = (out - 1) * w->s[i] + (w->k[i] - 1) * w->d[i] + 1 - in;
            if (total < 0)
                total = 0;
            int64_t small = total / 2;
            bool upper = !strcmp(autopad, "SAME_UPPER");
            w->p[i] = upper ? small : total - small;
            w->p[i + 2] = total - w->p[i];
        }
    } else if (strcmp(autopad, "VALID")) {
        return NODE_ERR(c, n, DN_ERR_MODEL, "auto_pad \"%s\" is not an ONNX value", autopad);
    }
    return DN_OK;
}

/* Output size of one axis; false when the window does not fit. */
static bool window_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1,
                       bool ceil_mode, int64_t *out)
{
    int64_t span = d * (k - 1) + 1, room = in + p0 + p1 - span;
    if (room < 0)
        return false;
    int64_t o = (ceil_mode ? (room + s - 1) / s : room / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p0) /* a last window starting in the padding */
        o--;
    *out = o;
    return true;
}

static dn_status window_shape(imp *c, const Onnx__NodeProto *n, const tinfo *x, const window *w,
                              bool ceil_mode, int64_t channels, tinfo *y)
{
    y->rank = 4;
    y->d[0] = x->d[0];
    y->d[1] = channels;
    for (int i = 0; i < 2; i++)
        if (!window_out(x->d[2 + i], w->k[i], w->s[i], w->d[i], w->p[i], w->p[i + 2], ceil_mode,
                        &y->d[2 + i]))
            return NODE_ERR(c, n, DN_ERR_SHAPE, "the %lld×%lld window does not fit the input %s",
                            (long long)w->k[0], (long long)w->k[1], "plane");
    return DN_OK;
}

/* Fold a Pad feeding this op into its pads; true pad tensors point at their source. */
static void fold_pad(const tinfo *x, window *w)
{
    for (int i = 0; i < 4; i++)
        w->p[i] += x->pad[i];
}

static dn_status symmetric_pads(imp *c, const Onnx__NodeProto *n, const window *w)
{
    if (w->p[0] != w->p[2] || w->p[1] != w->p[3])
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "asymmetric pads (top %lld, left %lld, bottom %lld, right %lld): dagnet "
                        "pads both sides of an axis alike",
                        (long long)w->p[0], (long long)w->p[1], (long long)w->p[2],
                        (long long)w->p[3]);
    return DN_OK;
}

/* The tensor a pending Pad pads (the op reads that one with the pads folded in). */
static const tinfo *unpadded(imp *c, const tinfo *x)
{
    if (x->kind != T_PAD)
        return x;
    int k = find(c, x->dn);
    return k >= 0 ? &c->t[k] : x;
}

static dn_status op_conv(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x, *w, *b;
    dn_status st;
    if ((st = data_input(c, n, 0, true, &x)) || (st = weight_input(c, n, 1, true, &w)) ||
        (st = weight_input(c, n, 2, false, &b)))
        return st;
    dn_shape ws = wshape(w);
    if (ws.rank != 4)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "weight \"%.200s\" has rank %d; dagnet's Conv is 2-D (rank 4)", w->onnx,
                        ws.rank);
    window win;
    const tinfo *src = unpadded(c, x);
    if ((st = window_attrs(c, n, src, &ws.d[2], &win)))
        return st;
    fold_pad(x, &win);
    if ((st = symmetric_pads(c, n, &win)))
        return st;
    int64_t group = attr_int(n, "group", 1);
    if (group < 1 || src->d[1] % group || ws.d[0] % group || ws.d[1] * group != src->d[1])
        return NODE_ERR(
            c, n, DN_ERR_SHAPE, "group %lld with %lld input channels and weight [%lld, %lld, ...]",
            (long long)group, (long long)src->d[1], (long long)ws.d[0], (long long)ws.d[1]);
    tinfo y = { 0 };
    if ((st = window_shape(c, n, src, &win, false, ws.d[0], &y)))
        return st;
    const char *in[3] = { src->dn };
    if ((st = param_use(c, n, w, 0, NULL, &ws, false, &in[1])))
        return st;
    if (b) {
        dn_shape bs = wshape(b);
        if (bs.rank != 1 || bs.d[0] != ws.d[0])
            return NODE_ERR(c, n, DN_ERR_SHAPE, "bias \"%.200s\" should be [%lld]", b->onnx,
                            (long long)ws.d[0]);
        if ((st = param_use(c, n, b, 0, NULL, &bs, false, &in[2])))
            return st;
    }
    cJSON *a = cJSON_CreateObject();
    cJSON_AddItemToObject(a, "stride", int_pair(win.s[0], win.s[1]));
    cJSON_AddItemToObject(a, "pad", int_pair(win.p[0], win.p[1]));
    if (win.d[0] != 1 || win.d[1] != 1)
        cJSON_AddItemToObject(a, "dilation", int_pair(win.d[0], win.d[1]));
    if (group != 1)
        cJSON_AddNumberToObject(a, "groups", (double)group);
    emit(c, n, n->output[0], "Conv", in, b ? 3 : 2, a, &y);
    return DN_OK;
}

static dn_status op_pool(imp *c, const Onnx__NodeProto *n, bool avg)
{
    tinfo *x;
    dn_status st;
    if ((st = data_input(c, n, 0, avg, &x)))
        return st;
    if (n->n_output > 1 && n->output[1] && n->output[1][0])
        return NODE_ERR(c, n, DN_ERR_MODEL, "the Indices output is not supported");
    if (attr_int(n, "storage_order", 0) != 0)
        return NODE_ERR(c, n, DN_ERR_MODEL, "storage_order 1 (column major) is not supported");
    const tinfo *src = unpadded(c, x);
    window win;
    if ((st = window_attrs(c, n, src, NULL, &win)))
        return st;
    if (win.d[0] != 1 || win.d[1] != 1)
        return NODE_ERR(c, n, DN_ERR_MODEL, "dilated pooling is not supported");
    bool include = avg && attr_int(n, "count_include_pad", 0) != 0;
    if (x->kind == T_PAD) {
        /* The Pad's zeros are data for the average: they count, as count_include_pad does;
         * mixing them with the op's own uncounted pads has no dagnet form. */
        if (!include && (win.p[0] || win.p[1] || win.p[2] || win.p[3]))
            return NODE_ERR(c, n, DN_ERR_MODEL,
                            "a Pad before an AveragePool with pads of its own and "
                            "count_include_pad 0 has no dagnet form");
        include = true;
        fold_pad(x, &win);
    }
    if ((st = symmetric_pads(c, n, &win)))
        return st;
    int64_t ceil_mode = attr_int(n, "ceil_mode", 0);
    tinfo y = { 0 };
    if ((st = window_shape(c, n, src, &win, ceil_mode != 0, src->d[1], &y)))
        return st;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddItemToObject(a, "kernel", int_pair(win.k[0], win.k[1]));
    cJSON_AddItemToObject(a, "stride", int_pair(win.s[0], win.s[1]));
    cJSON_AddItemToObject(a, "pad", int_pair(win.p[0], win.p[1]));
    if (ceil_mode)
        cJSON_AddBoolToObject(a, "ceil", true);
    if (avg && !include && (win.p[0] || win.p[1] || ceil_mode))
        cJSON_AddBoolToObject(a, "count_include_pad", false);
    const char *in[1] = { src->dn };
    emit(c, n, n->output[0], avg ? "AvgPool" : "MaxPool", in, 1, a, &y);
    return DN_OK;
}

static dn_status op_global_pool(imp *c, const Onnx__NodeProto *n, bool avg)
{
    tinfo *x;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)))
        return st;
    if (x->rank != 4)
        return NODE_ERR(c, n, DN_ERR_MODEL, "input has rank %d; dagnet pools [N, C, H, W] only",
                        x->rank);
    tinfo y = *x;
    y.d[2] = y.d[3] = 1;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddItemToObject(a, "kernel", int_pair(x->d[2], x->d[3]));
    const char *in[1] = { x->dn };
    emit(c, n, n->output[0], avg ? "AvgPool" : "MaxPool", in, 1, a, &y);
    return DN_OK;
}

/* ------------------------------------------------------------------ other ops */

static dn_status op_unary(imp *c, const Onnx__NodeProto *n, const char *op, cJSON *a)
{
    tinfo *x;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x))) {
        cJSON_Delete(a);
        return st;
    }
    const char *in[1] = { x->dn };
    emit(c, n, n->output[0], op, in, 1, a, x);
    return DN_OK;
}

static dn_status op_leaky(imp *c, const Onnx__NodeProto *n)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "alpha", attr_float(n, "alpha", 0.01));
    return op_unary(c, n, "LeakyReLU", a);
}

static dn_status op_lrn(imp *c, const Onnx__NodeProto *n)
{
    int64_t size = attr_int(n, "size", 0);
    /* ONNX sums floor((size−1)/2) channels before and ceil((size−1)/2) after; PyTorch (and
     * dagnet) size/2 before: the same windows for odd sizes only. */
    if (size < 1 || size % 2 == 0)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "size %lld: dagnet's LRN window is centred, which matches ONNX's for odd "
                        "sizes only",
                        (long long)size);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "size", (double)size);
    cJSON_AddNumberToObject(a, "alpha", attr_float(n, "alpha", 1e-4));
    cJSON_AddNumberToObject(a, "beta", attr_float(n, "beta", 0.75));
    cJSON_AddNumberToObject(a, "k", attr_float(n, "bias", 1.0));
    return op_unary(c, n, "LRN", a);
}

static dn_status op_softmax(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)))
        return st;
    int64_t axis = attr_int(n, "axis", c->opset >= 13 ? -1 : 1);
    if (axis < -x->rank || axis >= x->rank)
        return NODE_ERR(c, n, DN_ERR_MODEL, "axis %lld for rank %d", (long long)axis, x->rank);
    if (axis < 0)
        axis += x->rank;
    /* Before opset 13, Softmax normalises over all dims from `axis` on, flattened: the same as
     * one axis only when it is the last. */
    if (c->opset < 13 && axis != x->rank - 1)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "opset %d's Softmax over the flattened dims %lld.. of a rank-%d input; "
                        "dagnet's Softmax takes one axis",
                        c->opset, (long long)axis, x->rank);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "axis", (double)axis);
    const char *in[1] = { x->dn };
    tinfo *y = emit(c, n, n->output[0], "Softmax", in, 1, a, x);
    y->src = x->dn;
    return DN_OK;
}

static dn_status op_flatten_to(imp *c, const Onnx__NodeProto *n, const tinfo *x)
{
    tinfo y = *x;
    int64_t e = 1;
    for (int i = 1; i < x->rank; i++)
        e *= x->d[i];
    y.rank = 2;
    y.d[1] = e;
    if (x->rank == 2) { /* already [N, F]: an alias */
        tinfo *t = define(c, n->output[0]);
        const char *dn = x->dn;
        *t = *x;
        t->onnx = n->output[0];
        t->dn = dn;
        return DN_OK;
    }
    const char *in[1] = { x->dn };
    emit(c, n, n->output[0], "Flatten", in, 1, NULL, &y);
    return DN_OK;
}

static dn_status op_flatten(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)))
        return st;
    int64_t axis = attr_int(n, "axis", 1);
    if (axis < 0)
        axis += x->rank;
    if (axis != 1)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "axis %lld; dagnet flattens after the batch dimension only (axis 1)",
                        (long long)attr_int(n, "axis", 1));
    return op_flatten_to(c, n, x);
}

static dn_status op_reshape(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x, *s;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)) || (st = input(c, n, 1, &s)))
        return st;
    int64_t shape[DN_MAX_RANK];
    int cnt = 0;
    size_t na;
    const int64_t *v = attr_ints(n, "shape", &na); /* opset < 5 */
    if (s) {
        if (s->kind != T_INIT)
            return NODE_ERR(c, n, DN_ERR_MODEL,
                            "the target shape \"%.200s\" is computed; dagnet needs it constant",
                            s->onnx);
        if ((st = tensor_ints(c, n, s->init, shape, DN_MAX_RANK, &cnt)))
            return st;
    } else if (v && na <= DN_MAX_RANK) {
        cnt = (int)na;
        memcpy(shape, v, na * sizeof *v);
    } else {
        return NODE_ERR(c, n, DN_ERR_MODEL, "the target shape is missing");
    }
    int64_t e = 1;
    for (int i = 1; i < x->rank; i++)
        e *= x->d[i];
    bool batch_kept = cnt >= 1 && (shape[0] == 0 || shape[0] == -1 || shape[0] == x->d[0]);
    if (cnt == 2 && batch_kept && (shape[1] == e || (shape[1] == -1 && shape[0] != -1)))
        return op_flatten_to(c, n, x);
    return NODE_ERR(c, n, DN_ERR_MODEL,
                    "a reshape to rank %d; dagnet imports only the reshape to [N, %lld] (a "
                    "flatten)",
                    cnt, (long long)e);
}

/* Affine from a weight already laid out [in, out] and an optional bias [out]. */
static dn_status emit_affine(imp *c, const Onnx__NodeProto *n, const char *name, const tinfo *x,
                             tinfo *w, int wlayout, float *wdata, const dn_shape *ws, tinfo *b,
                             int blayout, float *bdata)
{
    const char *in[3] = { x->dn };
    dn_status st = param_use(c, n, w, wlayout, wdata, ws, false, &in[1]);
    if (st) {
        free(bdata);
        return st;
    }
    if (b) {
        dn_shape bs = { .rank = 1, .d = { ws->d[1] } };
        if ((st = param_use(c, n, b, blayout, bdata, &bs, false, &in[2])))
            return st;
    }
    tinfo y = { .rank = 2, .d = { x->d[0], ws->d[1] } };
    emit(c, n, name, "Affine", in, b ? 3 : 2, NULL, &y);
    return DN_OK;
}

/* A bias initializer of [out], [1, out] or one value, as `scale`·C broadcast to [out]. */
static dn_status bias_data(imp *c, const Onnx__NodeProto *n, const tinfo *b, int64_t out,
                           double scale, float **data, int *layout)
{
    int64_t e;
    float *v;
    if (b->kind == T_INPUT) { /* fed at run time: usable only as it is */
        if (b->rank != 1 || b->d[0] != out || scale != 1.0)
            return NODE_ERR(c, n, DN_ERR_MODEL,
                            "bias \"%.200s\" is a graph input that would need broadcasting or "
                            "scaling",
                            b->onnx);
        *data = NULL;
        *layout = 0;
        return DN_OK;
    }
    dn_status st = tensor_floats(c, n, b->init, &v, &e);
    if (st)
        return st;
    const Onnx__TensorProto *t = b->init;
    bool vec = (t->n_dims == 1 && t->dims[0] == out) ||
               (t->n_dims == 2 && t->dims[0] == 1 && t->dims[1] == out);
    if (!vec && e != 1) {
        free(v);
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "bias \"%.200s\" broadcasts as %lld values to [N, %lld]; dagnet's bias "
                        "is one value per output",
                        b->onnx, (long long)e, (long long)out);
    }
    float *f = malloc((size_t)(out ? out : 1) * sizeof *f);
    if (!f) {
        free(v);
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: out of memory", c->label);
    }
    for (int64_t i = 0; i < out; i++)
        f[i] = (float)(scale * (double)v[vec ? i : 0]);
    *layout = vec && scale == 1.0 && t->n_dims == 1 ? 0 : 1;
    free(v);
    if (*layout == 0) {
        free(f);
        f = NULL; /* param_use reads the initializer itself */
    }
    *data = f;
    return DN_OK;
}

static dn_status op_gemm(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x, *w, *b;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)) || (st = weight_input(c, n, 1, true, &w)) ||
        (st = weight_input(c, n, 2, false, &b)))
        return st;
    if (attr_int(n, "transA", 0))
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "transA 1 (the data transposed) has no dagnet form: dagnet's batch is "
                        "dim 0");
    if (x->rank != 2)
        return NODE_ERR(c, n, DN_ERR_SHAPE, "input A has rank %d; Gemm takes [N, K]", x->rank);
    int64_t transb = attr_int(n, "transB", 0);
    double alpha = attr_float(n, "alpha", 1.0), beta = attr_float(n, "beta", 1.0);
    dn_shape wsh = wshape(w);
    if (wsh.rank != 2)
        return NODE_ERR(c, n, DN_ERR_SHAPE, "weight \"%.200s\" has rank %d, expected 2", w->onnx,
                        wsh.rank);
    int64_t k = transb ? wsh.d[1] : wsh.d[0], m = transb ? wsh.d[0] : wsh.d[1];
    if (k != x->d[1])
        return NODE_ERR(c, n, DN_ERR_SHAPE,
                        "weight \"%.200s\" takes %lld features, the input has %lld", w->onnx,
                        (long long)k, (long long)x->d[1]);
    float *wd = NULL;
    int layout = 0;
    if ((transb || alpha != 1.0) && w->kind == T_INPUT)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "weight \"%.200s\" is a graph input; with transB or alpha it would need "
                        "a new layout, which dagnet makes only from an initializer",
                        w->onnx);
    if (transb || alpha != 1.0) {
        int64_t e;
        float *v;
        if ((st = tensor_floats(c, n, w->init, &v, &e)))
            return st;
        wd = malloc((size_t)(e ? e : 1) * sizeof *wd);
        if (!wd) {
            free(v);
            return dn_err_set(c->err, DN_ERR_NOMEM, "%s: out of memory", c->label);
        }
        for (int64_t i = 0; i < k; i++) /* wd[i][j] = alpha · op(B)[i][j], [in, out] */
            for (int64_t j = 0; j < m; j++)
                wd[i * m + j] = (float)(alpha * (double)(transb ? v[j * k + i] : v[i * m + j]));
        free(v);
        layout = 1 + (int)transb;
    }
    dn_shape ws = { .rank = 2, .d = { k, m } };
    float *bd = NULL;
    int blayout = 0;
    if (b && beta == 0.0)
        b = NULL;
    if (b && (st = bias_data(c, n, b, m, beta, &bd, &blayout))) {
        free(wd);
        return st;
    }
    return emit_affine(c, n, n->output[0], x, w, layout, wd, &ws, b, blayout, bd);
}

/* The index of the only node reading `name` (-1 when none or several, or a graph output). */
static int only_consumer(const imp *c, const char *name, size_t from)
{
    int found = -1;
    for (size_t i = 0; i < c->g->n_output; i++)
        if (c->g->output[i]->name && !strcmp(c->g->output[i]->name, name))
            return -1;
    for (size_t i = from; i < c->g->n_node; i++) {
        const Onnx__NodeProto *m = c->g->node[i];
        for (size_t j = 0; j < m->n_input; j++)
            if (m->input[j] && !strcmp(m->input[j], name)) {
                if (found >= 0)
                    return -1;
                found = (int)i;
            }
    }
    return found;
}

static dn_status op_matmul(imp *c, const Onnx__NodeProto *n, size_t index)
{
    tinfo *x, *w;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)) || (st = weight_input(c, n, 1, true, &w)))
        return st;
    dn_shape ws = wshape(w);
    if (x->rank != 2 || ws.rank != 2 || ws.d[0] != x->d[1])
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "dagnet imports MatMul only as [N, K]·[K, M] with a constant right "
                        "side (here rank %d and %d)",
                        x->rank, ws.rank);
    /* MatMul then Add of a bias: one Affine named after the Add. */
    int k = only_consumer(c, n->output[0], index + 1);
    if (k >= 0) {
        const Onnx__NodeProto *add = c->g->node[k];
        if (add->op_type && !strcmp(add->op_type, "Add") && add->n_input == 2 && add->input[0] &&
            add->input[1] && add->n_output >= 1) {
            const char *other = strcmp(add->input[0], n->output[0]) ? add->input[0] : add->input[1];
            int bi = find(c, other);
            if (bi >= 0 &&
                (c->t[bi].kind == T_INIT || (c->t[bi].kind == T_INPUT && c->t[bi].unbatched))) {
                float *bd = NULL;
                int blayout = 0;
                if (bias_data(c, add, &c->t[bi], ws.d[1], 1.0, &bd, &blayout) == DN_OK) {
                    c->skip[k] = true;
                    return emit_affine(c, add, add->output[0], x, w, 0, NULL, &ws, &c->t[bi],
                                       blayout, bd);
                }
                dn_err_clear(c->err);
            }
        }
    }
    return emit_affine(c, n, n->output[0], x, w, 0, NULL, &ws, NULL, 0, NULL);
}

static dn_status op_add(imp *c, const Onnx__NodeProto *n)
{
    tinfo *a, *b;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &a)) || (st = data_input(c, n, 1, false, &b)))
        return st;
    if (a->rank != b->rank || memcmp(a->d + 1, b->d + 1, (size_t)(a->rank - 1) * sizeof *a->d))
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "inputs \"%.200s\" and \"%.200s\" differ in shape; dagnet's Add does not "
                        "broadcast",
                        a->onnx, b->onnx);
    const char *in[2] = { a->dn, b->dn };
    emit(c, n, n->output[0], "Add", in, 2, NULL, a);
    return DN_OK;
}

static dn_status op_concat(imp *c, const Onnx__NodeProto *n)
{
    if (n->n_input < 1 || n->n_input > 64)
        return NODE_ERR(c, n, DN_ERR_MODEL, "%zu inputs (1 to 64)", n->n_input);
    const char *in[64];
    tinfo *first = NULL, y;
    int64_t axis = attr_int(n, "axis", 1);
    for (size_t i = 0; i < n->n_input; i++) {
        tinfo *x;
        dn_status st = data_input(c, n, i, false, &x);
        if (st)
            return st;
        if (!first) {
            first = x;
            y = *x;
            if (axis < -x->rank || axis >= x->rank)
                return NODE_ERR(c, n, DN_ERR_MODEL, "axis %lld for rank %d", (long long)axis,
                                x->rank);
            if (axis < 0)
                axis += x->rank;
            if (axis == 0)
                return NODE_ERR(c, n, DN_ERR_MODEL,
                                "concatenation along the batch axis is not supported");
        } else {
            if (x->rank != y.rank)
                return NODE_ERR(c, n, DN_ERR_SHAPE, "inputs of different ranks");
            y.d[axis] += x->d[axis];
        }
        in[i] = x->dn;
    }
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "axis", (double)axis);
    emit(c, n, n->output[0], "Concat", in, (int)n->n_input, a, &y);
    return DN_OK;
}

static dn_status op_dropout(imp *c, const Onnx__NodeProto *n)
{
    if (n->n_output > 1 && n->output[1] && n->output[1][0] &&
        only_consumer(c, n->output[1], 0) != -1)
        return NODE_ERR(c, n, DN_ERR_MODEL, "the mask output is read; dagnet keeps no mask");
    double ratio = attr_float(n, "ratio", 0.5);
    tinfo *r;
    dn_status st = input(c, n, 1, &r);
    if (st)
        return st;
    if (r) {
        int64_t e;
        float *v;
        if (r->kind != T_INIT)
            return NODE_ERR(c, n, DN_ERR_MODEL, "the ratio is computed; dagnet needs a constant");
        if ((st = tensor_floats(c, n, r->init, &v, &e)))
            return st;
        ratio = e == 1 ? v[0] : -1;
        free(v);
    }
    if (n->n_input > 2 && n->input[2] && n->input[2][0])
        return NODE_ERR(c, n, DN_ERR_MODEL, "the training_mode input is not supported");
    if (!(ratio >= 0 && ratio < 1))
        return NODE_ERR(c, n, DN_ERR_MODEL, "ratio %g is not in [0, 1)", ratio);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "ratio", ratio);
    return op_unary(c, n, "Dropout", a);
}

static dn_status op_batchnorm(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x, *w[4];
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)))
        return st;
    for (int i = 0; i < 4; i++)
        if ((st = weight_input(c, n, (size_t)i + 1, true, &w[i])))
            return st;
    for (size_t i = 1; i < n->n_output; i++)
        if (n->output[i] && n->output[i][0])
            return NODE_ERR(c, n, DN_ERR_MODEL,
                            "training-mode outputs (running statistics) are not supported");
    if (attr_int(n, "spatial", 1) != 1)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "spatial 0 (per-element statistics) is not "
                        "supported");
    if (x->rank != 2 && x->rank != 4)
        return NODE_ERR(c, n, DN_ERR_MODEL, "input rank %d; dagnet's BatchNorm takes rank 2 or 4",
                        x->rank);
    const char *in[5] = { x->dn };
    for (int i = 0; i < 4; i++) {
        dn_shape s = wshape(w[i]);
        if (s.rank != 1 || s.d[0] != x->d[1])
            return NODE_ERR(c, n, DN_ERR_SHAPE, "\"%.200s\" should be [%lld]", w[i]->onnx,
                            (long long)x->d[1]);
        if ((st = param_use(c, n, w[i], 0, NULL, &s, i >= 2, &in[i + 1])))
            return st;
    }
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "epsilon", attr_float(n, "epsilon", 1e-5));
    cJSON_AddNumberToObject(a, "momentum", 1.0 - attr_float(n, "momentum", 0.9));
    emit(c, n, n->output[0], "BatchNorm", in, 5, a, x);
    return DN_OK;
}

static dn_status op_pad(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)))
        return st;
    char mode[32];
    attr_str(n, "mode", mode, sizeof mode);
    if (mode[0] && strcmp(mode, "constant"))
        return NODE_ERR(c, n, DN_ERR_MODEL, "mode \"%s\"; dagnet pads with zeros only", mode);
    int64_t pads[2 * DN_MAX_RANK];
    int cnt = 0;
    double value = attr_float(n, "value", 0.0);
    if (c->opset < 11) {
        size_t na;
        const int64_t *v = attr_ints(n, "pads", &na);
        if (!v || na > 2 * DN_MAX_RANK)
            return NODE_ERR(c, n, DN_ERR_MODEL, "pads is missing");
        cnt = (int)na;
        memcpy(pads, v, na * sizeof *v);
    } else {
        tinfo *p, *v;
        if ((st = input(c, n, 1, &p)) || (st = input(c, n, 2, &v)))
            return st;
        if (!p || p->kind != T_INIT)
            return NODE_ERR(c, n, DN_ERR_MODEL, "the pads are computed; dagnet needs constants");
        if ((st = tensor_ints(c, n, p->init, pads, 2 * DN_MAX_RANK, &cnt)))
            return st;
        if (v) {
            int64_t e;
            float *f;
            if (v->kind != T_INIT)
                return NODE_ERR(c, n, DN_ERR_MODEL, "the pad value is computed");
            if ((st = tensor_floats(c, n, v->init, &f, &e)))
                return st;
            value = e == 1 ? f[0] : NAN;
            free(f);
        }
        if (n->n_input > 3)
            return NODE_ERR(c, n, DN_ERR_MODEL, "the axes input is not supported");
    }
    if (value != 0.0)
        return NODE_ERR(c, n, DN_ERR_MODEL, "pad value %g; dagnet pads with zeros only", value);
    if (x->rank != 4 || cnt != 8 || pads[0] || pads[1] || pads[4] || pads[5])
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "dagnet folds only a Pad of H and W of [N, C, H, W] into the next "
                        "Conv or AveragePool");
    for (int i = 0; i < 8; i++)
        if (pads[i] < 0 || pads[i] > (1 << 20))
            return NODE_ERR(c, n, DN_ERR_MODEL, "pads[%d] is %lld", i, (long long)pads[i]);
    if (x->kind == T_PAD)
        return NODE_ERR(c, n, DN_ERR_MODEL, "a Pad of a Pad is not supported");
    tinfo *t = define(c, n->output[0]);
    t->kind = T_PAD;
    t->dn = x->onnx; /* unpadded() finds the source by this name */
    t->rank = 4;
    memcpy(t->d, x->d, sizeof t->d);
    t->d[2] += pads[2] + pads[6];
    t->d[3] += pads[3] + pads[7];
    t->pad[0] = pads[2], t->pad[1] = pads[3], t->pad[2] = pads[6], t->pad[3] = pads[7];
    return DN_OK;
}

static dn_status op_identity(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x;
    dn_status st = input(c, n, 0, &x);
    if (st)
        return st;
    if (!x)
        return NODE_ERR(c, n, DN_ERR_MODEL, "input 0 is missing");
    tinfo copy = *x;
    tinfo *t = define(c, n->output[0]);
    const char *name = t->onnx;
    *t = copy;
    t->onnx = name;
    if (copy.kind == T_INIT)
        t->param = -1; /* its own name if it is ever a param */
    return DN_OK;
}

static dn_status op_constant(imp *c, const Onnx__NodeProto *n)
{
    const Onnx__AttributeProto *a = attr(n, "value");
    if (!a || a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR || !a->t)
        return NODE_ERR(c, n, DN_ERR_MODEL, "only a Constant with a `value` tensor is supported");
    int64_t e;
    dn_status st = tensor_check(c, n, a->t, &e);
    if (st)
        return st;
    tinfo *t = define(c, n->output[0]);
    t->kind = T_INIT;
    t->init = a->t;
    return DN_OK;
}

/* SoftmaxCrossEntropyLoss (mean over the batch, class-index labels): dagnet's
 * SoftmaxCrossEntropy, which becomes the model's loss. */
static dn_status op_sce(imp *c, const Onnx__NodeProto *n)
{
    tinfo *x, *l;
    dn_status st;
    if ((st = data_input(c, n, 0, false, &x)) || (st = input(c, n, 1, &l)))
        return st;
    char red[32];
    attr_str(n, "reduction", red, sizeof red);
    if (!l || l->kind != T_INPUT || !l->label || n->n_input > 2 || attr(n, "ignore_index") ||
        (red[0] && strcmp(red, "mean")) || (n->n_output > 1 && n->output[1] && n->output[1][0]))
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "dagnet imports only the mean loss over int labels given as a graph "
                        "input, without weights, ignore_index or the log_prob output");
    if (x->rank != 2)
        return NODE_ERR(c, n, DN_ERR_MODEL, "scores of rank %d; dagnet's take [N, C]", x->rank);
    const char *in[2] = { x->dn, l->dn };
    tinfo y = { .rank = 0 };
    emit(c, n, n->output[0], "SoftmaxCrossEntropy", in, 2, NULL, &y);
    if (!cJSON_GetObjectItemCaseSensitive(c->root, "loss"))
        cJSON_AddStringToObject(c->root, "loss", n->output[0]);
    return DN_OK;
}

/* ------------------------------------------------------------------ PyTorch's LRN */

/* PyTorch 1.13 writes LocalResponseNorm(size, alpha, beta, k) of a [N, C, H, W] x as some 70
 * nodes: Mul(x, x), reshapes to [N, 1, C, H, W], two Pads of the channel axis, an AveragePool
 * of kernel [size, 1, 1] (dividing by size), shape arithmetic and an If, then
 * Div(x, Pow(Add(Mul(avg, alpha), k), beta)). That is dagnet's LRN exactly (PyTorch's
 * semantics, docs/ops.md). The chain is recognised from its end: a Div whose divisor is that
 * Pow(Add(Mul)) and whose every ancestor up to x is in the chain, reads only x and constants,
 * holds the Mul(x, x) and the AveragePool, and feeds nothing outside. */
#define MAX_LRN_FOLDS 64  /* candidate chains examined (each costs a pass over the graph) */
#define MAX_LRN_CHAIN 256 /* nodes in one chain (PyTorch's has about 70) */

typedef struct lrn_fold {
    size_t div;
    const char *x;
    int64_t size;
    double alpha, beta, k;
} lrn_fold;

static bool is_op(const Onnx__NodeProto *n, const char *op)
{
    return n->op_type && !strcmp(n->op_type, op);
}

static void producers_build(imp *c)
{
    memset(c->ph, 0xff, c->phcap * sizeof *c->ph);
    for (size_t i = 0; i < c->g->n_node; i++) {
        const Onnx__NodeProto *n = c->g->node[i];
        for (size_t j = 0; j < n->n_output; j++) {
            if (!n->output[j] || !n->output[j][0])
                continue;
            size_t h = fnv(n->output[j]) & (c->phcap - 1);
            while (c->ph[h] >= 0)
                h = (h + 1) & (c->phcap - 1);
            c->ph[h] = (int)i;
        }
    }
}

/* The node writing `name`, or -1. */
static int producer(const imp *c, const char *name)
{
    if (!name || !name[0])
        return -1;
    for (size_t h = fnv(name) & (c->phcap - 1);; h = (h + 1) & (c->phcap - 1)) {
        if (c->ph[h] < 0)
            return -1;
        const Onnx__NodeProto *n = c->g->node[c->ph[h]];
        for (size_t j = 0; j < n->n_output; j++)
            if (n->output[j] && !strcmp(n->output[j], name))
                return c->ph[h];
    }
}

/* A one-value float constant (an initializer or a Constant node's value). */
static bool const_scalar(imp *c, const char *name, double *v)
{
    int p = producer(c, name), k = p < 0 && name ? find(c, name) : -1;
    const Onnx__TensorProto *t = NULL;
    if (p >= 0 && is_op(c->g->node[p], "Constant")) {
        const Onnx__AttributeProto *a = attr(c->g->node[p], "value");
        t = a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR ? a->t : NULL;
    } else if (k >= 0 && c->t[k].kind == T_INIT) {
        t = c->t[k].init;
    }
    float *f;
    int64_t e;
    if (!t || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) /* (no message then) */
        return false;
    dn_err keep = *c->err;
    bool ok = tensor_floats(c, NULL, t, &f, &e) == DN_OK && e == 1;
    *c->err = keep;
    if (ok)
        *v = f[0];
    free(f);
    return ok;
}

/* The node of op type `op` writing input i of n, or -1. */
static int input_op(const imp *c, const Onnx__NodeProto *n, size_t i, const char *op)
{
    int p = i < n->n_input ? producer(c, n->input[i]) : -1;
    return p >= 0 && is_op(c->g->node[p], op) ? p : -1;
}

/* Does the chain ending in Div node d fold into an LRN? Marks `chain` (cleared on failure). */
static bool lrn_chain(imp *c, size_t d, bool *chain, int *stack, lrn_fold *f)
{
    const Onnx__GraphProto *g = c->g;
    const Onnx__NodeProto *div = g->node[d];
    int pw = input_op(c, div, 1, "Pow");
    int add = pw >= 0 ? input_op(c, g->node[pw], 0, "Add") : -1;
    int mul = add >= 0 ? input_op(c, g->node[add], 0, "Mul") : -1;
    if (mul < 0 || div->n_input != 2 || g->node[pw]->n_input != 2 || g->node[add]->n_input != 2 ||
        g->node[mul]->n_input != 2 || !const_scalar(c, g->node[pw]->input[1], &f->beta) ||
        !const_scalar(c, g->node[add]->input[1], &f->k) ||
        !const_scalar(c, g->node[mul]->input[1], &f->alpha))
        return false;
    const char *x = div->input[0];
    if (!x || !x[0])
        return false;
    int n = 0, top = 0;
    bool square = false;
    f->size = 0;
    chain[pw] = true;
    stack[top++] = pw;
    int members[MAX_LRN_CHAIN];
    members[n++] = pw;
    bool ok = true;
    while (ok && top > 0) {
        const Onnx__NodeProto *q = g->node[stack[--top]];
        if (is_op(q, "Mul") && q->n_input == 2 && q->input[0] && q->input[1] &&
            !strcmp(q->input[0], x) && !strcmp(q->input[1], x))
            square = true;
        size_t cnt;
        const int64_t *k = is_op(q, "AveragePool") ? attr_ints(q, "kernel_shape", &cnt) : NULL;
        if (k && cnt == 3 && k[1] == 1 && k[2] == 1 && k[0] >= 1 && k[0] < (1 << 20))
            f->size = k[0];
        for (size_t j = 0; ok && j < q->n_input; j++) {
            const char *in = q->input[j];
            if (!in || !in[0] || !strcmp(in, x))
                continue;
            int r = producer(c, in);
            if (r < 0) { /* an initializer, nothing else */
                int t = find(c, in);
                ok = t >= 0 && c->t[t].kind == T_INIT;
            } else if ((size_t)r == d || n == MAX_LRN_CHAIN) {
                ok = false;
            } else if (!chain[r]) {
                chain[r] = true;
                members[n++] = r;
                stack[top++] = r;
            }
        }
    }
    ok = ok && square && f->size > 0;
    /* Nothing outside the chain reads what it computes. */
    for (size_t i = 0; ok && i < g->n_node; i++) {
        if (chain[i] || i == d)
            continue;
        for (size_t j = 0; ok && j < g->node[i]->n_input; j++) {
            int r = producer(c, g->node[i]->input[j]);
            ok = r < 0 || !chain[r];
        }
    }
    for (size_t i = 0; ok && i < g->n_output; i++) {
        int r = producer(c, g->output[i]->name);
        ok = r < 0 || !chain[r];
    }
    for (int i = 0; i < n; i++) {
        if (ok)
            c->skip[members[i]] = true;
        chain[members[i]] = false;
    }
    f->div = d;
    f->x = x;
    return ok;
}

static dn_status fold_lrn_chains(imp *c)
{
    const Onnx__GraphProto *g = c->g;
    int tries = 0;
    bool *chain = calloc(g->n_node + 1, sizeof *chain);
    int *stack = malloc(MAX_LRN_CHAIN * sizeof *stack);
    c->lrn = calloc(MAX_LRN_FOLDS, sizeof *c->lrn);
    if (!chain || !stack || !c->lrn) {
        free(chain);
        free(stack);
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: out of memory", c->label);
    }
    for (size_t i = 0; i < g->n_node && tries < MAX_LRN_FOLDS; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!is_op(n, "Div") || n->n_input != 2 || input_op(c, n, 1, "Pow") < 0)
            continue;
        tries++;
        if (lrn_chain(c, i, chain, stack, &c->lrn[c->n_lrn]))
            c->n_lrn++;
    }
    free(chain);
    free(stack);
    return DN_OK;
}

static const lrn_fold *lrn_at(const imp *c, size_t index)
{
    for (int i = 0; i < c->n_lrn; i++)
        if (c->lrn[i].div == index)
            return &c->lrn[i];
    return NULL;
}

static dn_status emit_lrn(imp *c, const Onnx__NodeProto *n, const lrn_fold *f)
{
    int k = find(c, f->x);
    if (k < 0 || (c->t[k].kind != T_NODE && c->t[k].kind != T_INPUT) || c->t[k].rank != 4)
        return NODE_ERR(c, n, DN_ERR_MODEL,
                        "the LocalResponseNorm chain over \"%.200s\" needs a computed [N, C, H, "
                        "W] input",
                        f->x);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "size", (double)f->size);
    cJSON_AddNumberToObject(a, "alpha", f->alpha);
    cJSON_AddNumberToObject(a, "beta", f->beta);
    cJSON_AddNumberToObject(a, "k", f->k);
    const char *in[1] = { c->t[k].dn };
    emit(c, n, n->output[0], "LRN", in, 1, a, &c->t[k]);
    return DN_OK;
}

/* ------------------------------------------------------------------ the op table */

/* The ONNX op types dagnet imports (docs/onnx.md), checked for the whole graph first so that
 * an unknown op is what a file without a dagnet form is refused for. */
static const char *const known_ops[] = {
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Gemm",
    "MatMul",
    "Flatten",
    "Reshape",
    "Softmax",
    "LRN",
    "Dropout",
    "Concat",
    "Add",
    "BatchNormalization",
    "Identity",
    "Pad",
    "Constant",
    "SoftmaxCrossEntropyLoss",
};

static bool known_op(const char *op)
{
    for (size_t i = 0; i < sizeof known_ops / sizeof known_ops[0]; i++)
        if (!strcmp(op, known_ops[i]))
            return true;
    return false;
}

static dn_status import_node(imp *c, const Onnx__NodeProto *n, size_t index)
{
    const char *op = n->op_type ? n->op_type : "";
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
        return NODE_ERR(c, n, DN_ERR_MODEL, "domain \"%.100s\" is not supported", n->domain);
    if (n->n_output < 1 || !n->output[0] || !n->output[0][0])
        return NODE_ERR(c, n, DN_ERR_MODEL, "no output");
    if (n->n_input > MAX_NODE_IO || n->n_output > MAX_NODE_IO || n->n_attribute > MAX_NODE_IO)
        return NODE_ERR(c, n, DN_ERR_MODEL, "more than %d inputs, outputs or attrs", MAX_NODE_IO);
    const lrn_fold *lrn = lrn_at(c, index);
    if (lrn)
        return emit_lrn(c, n, lrn);
    if (!strcmp(op, "Conv"))
        return op_conv(c, n);
    if (!strcmp(op, "MaxPool"))
        return op_pool(c, n, false);
    if (!strcmp(op, "AveragePool"))
        return op_pool(c, n, true);
    if (!strcmp(op, "GlobalAveragePool"))
        return op_global_pool(c, n, true);
    if (!strcmp(op, "GlobalMaxPool"))
        return op_global_pool(c, n, false);
    if (!strcmp(op, "Relu"))
        return op_unary(c, n, "ReLU", NULL);
    if (!strcmp(op, "LeakyRelu"))
        return op_leaky(c, n);
    if (!strcmp(op, "Sigmoid"))
        return op_unary(c, n, "Sigmoid", NULL);
    if (!strcmp(op, "Tanh"))
        return op_unary(c, n, "Tanh", NULL);
    if (!strcmp(op, "Gemm"))
        return op_gemm(c, n);
    if (!strcmp(op, "MatMul"))
        return op_matmul(c, n, index);
    if (!strcmp(op, "Flatten"))
        return op_flatten(c, n);
    if (!strcmp(op, "Reshape"))
        return op_reshape(c, n);
    if (!strcmp(op, "Softmax"))
        return op_softmax(c, n);
    if (!strcmp(op, "LRN"))
        return op_lrn(c, n);
    if (!strcmp(op, "Dropout"))
        return op_dropout(c, n);
    if (!strcmp(op, "Concat"))
        return op_concat(c, n);
    if (!strcmp(op, "Add"))
        return op_add(c, n);
    if (!strcmp(op, "BatchNormalization"))
        return op_batchnorm(c, n);
    if (!strcmp(op, "Identity"))
        return op_identity(c, n);
    if (!strcmp(op, "Pad"))
        return op_pad(c, n);
    if (!strcmp(op, "Constant"))
        return op_constant(c, n);
    if (!strcmp(op, "SoftmaxCrossEntropyLoss"))
        return op_sce(c, n);
    return NODE_ERR(c, n, DN_ERR_MODEL, "op type \"%.64s\" is not supported by dagnet", op);
}

/* ------------------------------------------------------------------ graph inputs and outputs */

static dn_status graph_input(imp *c, const Onnx__ValueInfoProto *v)
{
    const char *name = v->name ? v->name : "";
    if (!name[0])
        return dn_err_set(c->err, DN_ERR_MODEL, "%s: a graph input has no name", c->label);
    if (find(c, name) >= 0)
        return DN_OK; /* an initializer listed as an input too (IR < 4) */
    const Onnx__TypeProto *ty = v->type;
    if (!ty || ty->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !ty->tensor_type)
        return dn_err_set(c->err, DN_ERR_MODEL, "%s: input \"%.200s\" is not a tensor", c->label,
                          name);
    const Onnx__TypeProto__Tensor *tt = ty->tensor_type;
    bool label = false;
    for (int i = 0; i < c->n_labels; i++)
        label = label || !strcmp(c->labels[i], name);
    label = label && (tt->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ||
                      tt->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    if (tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && !label) {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            &onnx__tensor_proto__data_type__descriptor, tt->elem_type);
        return dn_err_set(c->err, DN_ERR_MODEL,
                          "%s: input \"%.200s\" has ONNX element type %s; dagnet's data inputs "
                          "are float32",
                          c->label, name, ev ? ev->name : "unknown");
    }
    const Onnx__TensorShapeProto *s = tt->shape;
    if (!s || s->n_dim < 1 || s->n_dim > DN_MAX_RANK)
        return dn_err_set(c->err, DN_ERR_MODEL,
                          "%s: input \"%.200s\" has %s; dagnet needs rank 1 to %d with a batch "
                          "dimension first",
                          c->label, name, s ? "an unsupported rank" : "no shape", DN_MAX_RANK);
    if (label && s->n_dim != 1)
        return dn_err_set(c->err, DN_ERR_MODEL,
                          "%s: label input \"%.200s\" has rank %zu; dagnet's labels are [N]",
                          c->label, name, s->n_dim);
    tinfo *t = define(c, name);
    t->kind = T_INPUT;
    t->dn = name;
    t->label = label;
    t->rank = (int)s->n_dim;
    for (size_t i = 0; i < s->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = s->dim[i];
        bool known = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (known && (d->dim_value < 1 || d->dim_value > ((int64_t)1 << 31)))
            return dn_err_set(c->err, DN_ERR_MODEL, "%s: input \"%.200s\": dim %zu is %lld",
                              c->label, name, i, (long long)d->dim_value);
        if (!known && i > 0)
            return dn_err_set(c->err, DN_ERR_MODEL,
                              "%s: input \"%.200s\": dim %zu is dynamic (symbolic); dagnet needs "
                              "every dim but the batch known",
                              c->label, name, i);
        t->d[i] = known ? d->dim_value : -1; /* -1: a symbolic batch */
    }
    return DN_OK;
}

/* Graph inputs that ONNX nodes read as weights (Conv's W and B, Gemm's B and C, MatMul's B,
 * BatchNormalization's four): fed whole at run time, with no batch dimension. */
static void mark_weight_inputs(imp *c)
{
    static const struct {
        const char *op;
        size_t from, to; /* input positions [from, to] */
    } uses[] = {
        { "Conv", 1, 2 }, { "Gemm", 1, 2 }, { "MatMul", 1, 1 }, { "BatchNormalization", 1, 4 }
    };
    for (size_t i = 0; i < c->g->n_node; i++) {
        const Onnx__NodeProto *n = c->g->node[i];
        for (size_t u = 0; u < sizeof uses / sizeof uses[0]; u++) {
            if (!is_op(n, uses[u].op)) /* op_type may be absent (NULL) in a hostile file */
                continue;
            for (size_t j = uses[u].from; j <= uses[u].to && j < n->n_input; j++) {
                int k = n->input[j] && n->input[j][0] ? find(c, n->input[j]) : -1;
                if (k >= 0 && c->t[k].kind == T_INPUT)
                    c->t[k].unbatched = true;
            }
        }
    }
}

/* The JSON's inputs, in the graph's order: a data input's dim 0 is the batch (null), a weight
 * input's dims are all fixed. */
static dn_status declare_input(imp *c, const Onnx__ValueInfoProto *v)
{
    int k = v->name ? find(c, v->name) : -1;
    if (k < 0 || c->t[k].kind != T_INPUT || c->t[k].declared)
        return DN_OK; /* an initializer listed as an input too, or a repeated name */
    tinfo *t = &c->t[k];
    t->declared = true;
    dn_shape shape = { .rank = t->rank, .batched = !t->unbatched };
    if (t->unbatched && t->d[0] < 0)
        return dn_err_set(c->err, DN_ERR_MODEL,
                          "%s: input \"%.200s\" is read as a weight but its dim 0 is symbolic",
                          c->label, t->onnx);
    if (!t->unbatched && t->d[0] < 0)
        t->d[0] = 1;
    memcpy(shape.d, t->d, sizeof shape.d);
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddItemToObject(entry, "shape", shape_json(&shape));
    if (t->label)
        cJSON_AddStringToObject(entry, "dtype", "int32");
    cJSON_AddItemToObject(c->inputs, t->onnx, entry);
    return DN_OK;
}

/* The safetensors image of the emitted params and state. */
static dn_status weights_image(imp *c, dn_onnx_model *out)
{
    cJSON *h = cJSON_CreateObject();
    uint64_t off = 0;
    for (int i = 0; h && i < c->np; i++) {
        cJSON *e = cJSON_AddObjectToObject(h, c->p[i].name);
        cJSON_AddStringToObject(e, "dtype", "F32");
        dn_shape s = c->p[i].shape;
        cJSON *arr = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < s.rank; d++)
            cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)s.d[d]));
        uint64_t bytes = (uint64_t)dn_shape_numel(&s) * 4;
        cJSON *r = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(r, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(r, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *text = h ? cJSON_PrintUnformatted(h) : NULL;
    cJSON_Delete(h);
    if (!text)
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: out of memory", c->label);
    size_t hl = strlen(text), padded = (hl + 7) / 8 * 8;
    out->weights_len = 8 + padded + off;
    out->weights = malloc(out->weights_len);
    if (!out->weights) {
        free(text);
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: out of memory for the weights", c->label);
    }
    for (int b = 0; b < 8; b++)
        out->weights[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    memcpy(out->weights + 8, text, hl);
    memset(out->weights + 8 + hl, ' ', padded - hl);
    free(text);
    unsigned char *p = out->weights + 8 + padded;
    for (int i = 0; i < c->np; i++) {
        int64_t e = dn_shape_numel(&c->p[i].shape);
        for (int64_t k = 0; k < e; k++) { /* little-endian whatever the host */
            uint32_t u;
            memcpy(&u, &c->p[i].data[k], 4);
            for (int b = 0; b < 4; b++)
                *p++ = (unsigned char)(u >> (8 * b));
        }
    }
    return DN_OK;
}

static dn_status add_loss(imp *c, const dn_onnx_import_opts *o, cJSON *outputs)
{
    if (strcmp(o->loss, "softmax-cross-entropy"))
        return dn_err_set(c->err, DN_ERR_ARG,
                          "%s: loss \"%.100s\" is not one dagnet adds (softmax-cross-entropy)",
                          c->label, o->loss);
    if (!o->label || !o->label[0] || find(c, o->label) >= 0)
        return dn_err_set(c->err, DN_ERR_ARG,
                          "%s: the loss needs a label input name not used in the model (%s)",
                          c->label, o->label ? o->label : "none given");
    cJSON *first = cJSON_GetArrayItem(outputs, 0);
    int k = first ? find(c, first->valuestring) : -1;
    if (k < 0)
        return dn_err_set(c->err, DN_ERR_MODEL, "%s: no output to put a loss on", c->label);
    /* The loss takes logits: the input of a final Softmax, else the output itself. */
    const char *logits = c->t[k].src ? c->t[k].src : c->t[k].dn;
    const char *name = "loss";
    if (find(c, name) >= 0 || !strcmp(o->label, name))
        name = "dagnet.loss";
    cJSON *entry = cJSON_CreateObject();
    cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNull());
    cJSON_AddStringToObject(entry, "dtype", "int32");
    cJSON_AddItemToObject(c->inputs, o->label, entry);
    cJSON *node = cJSON_CreateObject();
    cJSON_AddStringToObject(node, "name", name);
    cJSON_AddStringToObject(node, "op", "SoftmaxCrossEntropy");
    cJSON *in = cJSON_AddArrayToObject(node, "inputs");
    cJSON_AddItemToArray(in, cJSON_CreateString(logits));
    cJSON_AddItemToArray(in, cJSON_CreateString(o->label));
    cJSON_AddItemToArray(c->nodes, node);
    cJSON_AddStringToObject(c->root, "loss", name);
    return DN_OK;
}

static dn_status import_graph(imp *c, const Onnx__ModelProto *mp, const dn_onnx_import_opts *o,
                              dn_onnx_model *out)
{
    const Onnx__GraphProto *g = mp->graph;
    if (!g)
        return dn_err_set(c->err, DN_ERR_MODEL, "%s: the model has no graph", c->label);
    if (g->n_node > MAX_NODES || g->n_initializer > MAX_NODES || g->n_input > MAX_NODES ||
        g->n_output > MAX_NODES || g->n_sparse_initializer)
        return dn_err_set(c->err, DN_ERR_MODEL,
                          "%s: %zu nodes, %zu initializers, %zu inputs, %zu outputs, %zu sparse "
                          "initializers (at most %d each, no sparse ones)",
                          c->label, g->n_node, g->n_initializer, g->n_input, g->n_output,
                          g->n_sparse_initializer, MAX_NODES);
    c->g = g;
    size_t tensors = g->n_initializer + g->n_input + 2 * g->n_node;
    for (size_t i = 0; i < g->n_node; i++)
        tensors += g->node[i]->n_output;
    if (tensors > MAX_TENSORS)
        return dn_err_set(c->err, DN_ERR_MODEL, "%s: %zu tensors (at most %d)", c->label, tensors,
                          MAX_TENSORS);
    for (c->hcap = 16; c->hcap < 2 * tensors + 2; c->hcap *= 2)
        ;
    c->t = calloc(tensors + 1, sizeof *c->t);
    c->hash = malloc(c->hcap * sizeof *c->hash);
    c->p = calloc(tensors + 1, sizeof *c->p);
    c->skip = calloc(g->n_node + 1, sizeof *c->skip);
    for (c->phcap = 16; c->phcap < 2 * tensors + 2; c->phcap *= 2)
        ;
    c->ph = malloc(c->phcap * sizeof *c->ph);
    c->root = cJSON_CreateObject();
    if (!c->t || !c->hash || !c->p || !c->skip || !c->ph || !c->root)
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: out of memory", c->label);
    memset(c->hash, 0xff, c->hcap * sizeof *c->hash);
    cJSON_AddStringToObject(c->root, "format", "dagnet/1");
    cJSON_AddStringToObject(c->root, "name", g->name && g->name[0] ? g->name : "onnx");
    c->inputs = cJSON_AddObjectToObject(c->root, "inputs");
    c->params = cJSON_AddObjectToObject(c->root, "params");
    c->nodes = cJSON_AddArrayToObject(c->root, "nodes");
    cJSON *outputs = cJSON_AddArrayToObject(c->root, "outputs");
    dn_status st;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        if (!t->name || !t->name[0])
            return dn_err_set(c->err, DN_ERR_MODEL, "%s: initializer %zu has no name", c->label, i);
        int64_t e;
        if ((t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
             t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) &&
            (st = tensor_check(c, NULL, t, &e)))
            return st; /* every float and int64 initializer is checked before it is used */
        tinfo *ti = define(c, t->name);
        ti->kind = T_INIT;
        ti->init = t;
    }
    /* Unknown op types are what a file is refused for first: after folding PyTorch's LRN
     * chains, whose Pow, Div, Shape and If have no dagnet form of their own. */
    producers_build(c);
    if ((st = fold_lrn_chains(c)))
        return st;
    for (size_t i = 0; i < g->n_node; i++)
        if (!c->skip[i] && !lrn_at(c, i) &&
            !known_op(g->node[i]->op_type ? g->node[i]->op_type : ""))
            return NODE_ERR(c, g->node[i], DN_ERR_MODEL,
                            "op type \"%.64s\" is not supported by dagnet",
                            g->node[i]->op_type ? g->node[i]->op_type : "");
    c->opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *s = mp->opset_import[i];
        if (!s->domain || !s->domain[0] || !strcmp(s->domain, "ai.onnx"))
            c->opset = s->has_version && s->version < 1000 ? (int)s->version : -1;
    }
    if (c->opset < DN_ONNX_OPSET_MIN || c->opset > DN_ONNX_OPSET_MAX)
        return dn_err_set(c->err, DN_ERR_MODEL,
                          "%s: ONNX opset %d of the default domain; dagnet imports opsets %d to %d",
                          c->label, c->opset, DN_ONNX_OPSET_MIN, DN_ONNX_OPSET_MAX);
    for (size_t i = 0; i < g->n_node && c->n_labels < 16; i++)
        if (is_op(g->node[i], "SoftmaxCrossEntropyLoss") && g->node[i]->n_input >= 2 &&
            g->node[i]->input[1])
            c->labels[c->n_labels++] = g->node[i]->input[1];
    for (size_t i = 0; i < g->n_input; i++)
        if ((st = graph_input(c, g->input[i])))
            return st;
    mark_weight_inputs(c);
    for (size_t i = 0; i < g->n_input; i++)
        if ((st = declare_input(c, g->input[i])))
            return st;
    for (size_t i = 0; i < g->n_node; i++)
        if (!c->skip[i] && (st = import_node(c, g->node[i], i)))
            return st;
    if (g->n_output < 1)
        return dn_err_set(c->err, DN_ERR_MODEL, "%s: the graph has no outputs", c->label);
    for (size_t i = 0; i < g->n_output; i++) {
        const char *name = g->output[i]->name ? g->output[i]->name : "";
        int k = find(c, name);
        if (k < 0 || c->t[k].kind != T_NODE)
            return dn_err_set(c->err, DN_ERR_MODEL,
                              "%s: output \"%.200s\" is %s; dagnet's outputs are computed by "
                              "nodes",
                              c->label, name,
                              k < 0                     ? "not defined"
                              : c->t[k].kind == T_INPUT ? "a graph input"
                              : c->t[k].kind == T_PAD   ? "a Pad's result"
                                                        : "a constant");
        cJSON_AddItemToArray(outputs, cJSON_CreateString(c->t[k].dn));
    }
    if (o && o->loss && (st = add_loss(c, o, outputs)))
        return st;
    out->json = cJSON_Print(c->root);
    if (!out->json)
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: out of memory", c->label);
    out->json_len = strlen(out->json);
    return weights_image(c, out);
}

dn_status dn_onnx_import(const void *buf, size_t size, const char *label,
                         const dn_onnx_import_opts *opts, dn_onnx_model *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    label = label ? label : "<onnx>";
    if (!buf && size)
        return dn_err_set(err, DN_ERR_ARG, "%s: no data", label);
    if (size > DN_ONNX_MAX_BYTES)
        return dn_err_set(err, DN_ERR_PARSE, "%s: %zu bytes (at most %zu)", label, size,
                          DN_ONNX_MAX_BYTES);
    const uint8_t *p = buf ? buf : (const uint8_t *)"";
    if (!depth_ok(p, p + size, &onnx__model_proto__descriptor, 0))
        return dn_err_set(err, DN_ERR_PARSE, "%s: messages nested deeper than %d", label,
                          DN_ONNX_MAX_DEPTH);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, p);
    if (!mp)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: not an ONNX model (protobuf-c could not decode a ModelProto)",
                          label);
    imp c = { .err = err, .label = label };
    dn_status st = import_graph(&c, mp, opts, out);
    for (int i = 0; i < c.np; i++)
        free(c.p[i].data);
    free(c.p);
    free(c.t);
    free(c.hash);
    free(c.skip);
    free(c.ph);
    free(c.lrn);
    cJSON_Delete(c.root);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st)
        dn_onnx_model_free(out);
    return st;
}

void dn_onnx_model_free(dn_onnx_model *m)
{
    if (!m)
        return;
    free(m->json);
    free(m->weights);
    memset(m, 0, sizeof *m);
}
