/*
 * test_onnx.c — the ONNX bridge (io/onnx_import.c, io/onnx_export.c, api/api_onnx.c): models
 * built here with protobuf-c from ONNX's schema, imported through the public API and run.
 *
 *   onnx_import   the op mappings: Gemm's layout, alpha and beta; MatMul + Add → Affine; a Pad
 *                 folded into a Conv and into an AveragePool; weights carried into sessions
 *   onnx_errors   what dagnet refuses names the node, its op type and what is unsupported
 *   onnx_hostile  nesting bombs, lying dims, truncated files
 *   onnx_export   a dagnet model → ONNX → dagnet again: same params, same outputs
 * The conformance cases of ONNX itself run in scripts/onnx_conformance.py.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"
#include "io/onnx.pb-c.h"

TestSuite(onnx_import);
TestSuite(onnx_errors);
TestSuite(onnx_hostile);
TestSuite(onnx_export, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

/* ---------------------------------------------------------------- building models */

/* Everything a built model points to lives in these pools until mb_pack frees nothing: the
 * tests are short, the pools static and reset by mb_new. */
#define POOL 256
typedef struct mb {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset, *opsets[1];
    Onnx__NodeProto nodes[16], *node_ptrs[16];
    Onnx__TensorProto inits[16], *init_ptrs[16];
    Onnx__ValueInfoProto vis[8], *in_ptrs[4], *out_ptrs[4];
    Onnx__TypeProto types[8];
    Onnx__TypeProto__Tensor tts[8];
    Onnx__TensorShapeProto shapes[8];
    Onnx__TensorShapeProto__Dimension dims[8][4], *dim_ptrs[8][4];
    Onnx__AttributeProto attrs[64], *attr_ptrs[16][8];
    int n_attrs, n_vis;
    char *strs[POOL][4];
} mb;

static mb B;

static void mb_new(int opset)
{
    memset(&B, 0, sizeof B);
    onnx__model_proto__init(&B.model);
    onnx__graph_proto__init(&B.graph);
    onnx__operator_set_id_proto__init(&B.opset);
    B.opset.domain = "";
    B.opset.has_version = true;
    B.opset.version = opset;
    B.opsets[0] = &B.opset;
    B.model.has_ir_version = true;
    B.model.ir_version = 7;
    B.model.n_opset_import = 1;
    B.model.opset_import = B.opsets;
    B.model.graph = &B.graph;
    B.graph.name = "t";
    B.graph.node = B.node_ptrs;
    B.graph.initializer = B.init_ptrs;
    B.graph.input = B.in_ptrs;
    B.graph.output = B.out_ptrs;
}

/* A float tensor type [N (symbolic), d1, ...] (d[0] < 0: symbolic). */
static Onnx__ValueInfoProto *mb_vi(const char *name, int rank, const int64_t *d)
{
    int k = B.n_vis++;
    Onnx__ValueInfoProto *v = &B.vis[k];
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(&B.types[k]);
    onnx__type_proto__tensor__init(&B.tts[k]);
    onnx__tensor_shape_proto__init(&B.shapes[k]);
    for (int i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *dm = &B.dims[k][i];
        onnx__tensor_shape_proto__dimension__init(dm);
        if (d[i] < 0) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = "N";
        } else {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = d[i];
        }
        B.dim_ptrs[k][i] = dm;
    }
    B.shapes[k].n_dim = (size_t)rank;
    B.shapes[k].dim = B.dim_ptrs[k];
    B.tts[k].has_elem_type = true;
    B.tts[k].elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    B.tts[k].shape = &B.shapes[k];
    B.types[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    B.types[k].tensor_type = &B.tts[k];
    v->type = &B.types[k];
    v->name = (char *)name;
    return v;
}

static void mb_input(const char *name, int rank, const int64_t *d)
{
    B.in_ptrs[B.graph.n_input++] = mb_vi(name, rank, d);
}

static void mb_output(const char *name)
{
    int64_t d[1] = { -1 };
    B.out_ptrs[B.graph.n_output++] = mb_vi(name, 1, d); /* shapes of outputs are not read */
}

static Onnx__TensorProto *mb_init(const char *name, int rank, const int64_t *d, float *data,
                                  size_t n)
{
    Onnx__TensorProto *t = &B.inits[B.graph.n_initializer];
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->n_dims = (size_t)rank;
    t->dims = (int64_t *)d;
    t->has_data_type = true;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_float_data = n;
    t->float_data = data;
    B.init_ptrs[B.graph.n_initializer++] = t;
    return t;
}

static Onnx__TensorProto *mb_init_i64(const char *name, int64_t n, int64_t *data)
{
    static int64_t dims[16][1];
    Onnx__TensorProto *t = &B.inits[B.graph.n_initializer];
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    dims[B.graph.n_initializer][0] = n;
    t->n_dims = 1;
    t->dims = dims[B.graph.n_initializer];
    t->has_data_type = true;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_int64_data = (size_t)n;
    t->int64_data = data;
    B.init_ptrs[B.graph.n_initializer++] = t;
    return t;
}

static Onnx__NodeProto *mb_node(const char *op, const char *name, int n_in, char **in,
                                const char *out)
{
    int k = (int)B.graph.n_node++;
    Onnx__NodeProto *n = &B.nodes[k];
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    n->n_input = (size_t)n_in;
    n->input = in;
    B.strs[k][0] = (char *)out;
    n->n_output = 1;
    n->output = B.strs[k];
    n->attribute = B.attr_ptrs[k];
    B.node_ptrs[k] = n;
    return n;
}

static Onnx__AttributeProto *mb_attr(Onnx__NodeProto *n, const char *name,
                                     Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = &B.attrs[B.n_attrs++];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = true;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void mb_int(Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = mb_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = true;
    a->i = v;
}

static void mb_float(Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = mb_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = true;
    a->f = v;
}

static void mb_ints(Onnx__NodeProto *n, const char *name, int count, int64_t *v)
{
    Onnx__AttributeProto *a = mb_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)count;
    a->ints = v;
}

/* The model's bytes (malloc'ed), *len their count. */
static unsigned char *mb_pack(size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&B.model);
    unsigned char *buf = malloc(*len ? *len : 1);
    cr_assert(buf);
    onnx__model_proto__pack(&B.model, buf);
    return buf;
}

/* Import the built model; DN_OK expected unless want says otherwise. */
static dn_model *mb_import(dn_status want, const dn_onnx_options *o)
{
    size_t len;
    unsigned char *buf = mb_pack(&len);
    dn_model *m = NULL;
    dn_status st = dn_model_parse_onnx(buf, len, "t.onnx", o, &m);
    free(buf);
    dn_test_expect_status(st, want, dn_model_errmsg(m));
    return m;
}

/* One forward of input "x" [n, ...] → output tensor `out`, copied into y (count floats). */
static void run(dn_model *m, int rank, const int64_t *shape, const float *x, const char *out,
                float *y, int64_t count)
{
    dn_session *s = NULL;
    cr_assert_eq(dn_session_new(m, NULL, &s), DN_OK, "%s", dn_session_errmsg(s));
    cr_assert_eq(dn_session_set_input(s, "x", DN_F32, rank, shape, x), DN_OK, "%s",
                 dn_session_errmsg(s));
    cr_assert_eq(dn_session_forward(s, DN_INFER, &out, 1), DN_OK, "%s", dn_session_errmsg(s));
    dn_view v;
    cr_assert_eq(dn_session_tensor(s, out, &v), DN_OK);
    int64_t n = 1;
    for (int i = 0; i < v.rank; i++)
        n *= v.shape[i];
    cr_assert_eq(n, count, "output has %lld values, expected %lld", (long long)n, (long long)count);
    memcpy(y, v.data, (size_t)count * sizeof *y);
    dn_session_free(s);
}

/* ---------------------------------------------------------------- import */

/* y = alpha · x · Bᵀ + beta · C with B [out=3, in=2] (transB): dagnet's W is alpha·Bᵀ. */
Test(onnx_import, gemm_transB_alpha_beta)
{
    mb_new(13);
    int64_t xd[2] = { -1, 2 }, bd[2] = { 3, 2 }, cd[1] = { 3 };
    float b[6] = { 1, 2, 3, 4, 5, 6 }, c[3] = { 10, 20, 30 };
    mb_input("x", 2, xd);
    mb_init("B", 2, bd, b, 6);
    mb_init("C", 1, cd, c, 3);
    char *in[] = { "x", "B", "C" };
    Onnx__NodeProto *n = mb_node("Gemm", "fc", 3, in, "y");
    mb_int(n, "transB", 1);
    mb_float(n, "alpha", 2.0f);
    mb_float(n, "beta", 0.5f);
    mb_output("y");
    dn_model *m = mb_import(DN_OK, NULL);
    dn_tensor_info p;
    cr_assert_eq(dn_model_param_count(m), 2);
    cr_assert_eq(dn_model_param_info(m, 0, &p), DN_OK);
    cr_expect_str_eq(p.name, "B");
    cr_expect(p.rank == 2 && p.shape[0] == 2 && p.shape[1] == 3, "W should be [in 2, out 3]");
    float x[4] = { 1, -1, 0.5f, 2 }, y[6];
    run(m, DIMS(2, 2), x, "y", y, 6);
    float want[6];
    for (int r = 0; r < 2; r++)
        for (int o = 0; o < 3; o++)
            want[r * 3 + o] =
                2.0f * (x[r * 2] * b[o * 2] + x[r * 2 + 1] * b[o * 2 + 1]) + 0.5f * c[o];
    dn_test_expect_close(y, want, 6, 1e-5f, "Gemm");
    dn_model_free(m);
}

/* MatMul then Add of a [out] initializer: one Affine node, named after the Add. */
Test(onnx_import, matmul_add_is_one_affine)
{
    mb_new(11);
    int64_t xd[2] = { -1, 3 }, wd[2] = { 3, 2 }, bd[1] = { 2 };
    float w[6] = { 1, 0, 0, 1, 1, 1 }, b[2] = { 0.5f, -0.5f };
    mb_input("x", 2, xd);
    mb_init("W", 2, wd, w, 6);
    mb_init("b", 1, bd, b, 2);
    char *in1[] = { "x", "W" }, *in2[] = { "xw", "b" };
    mb_node("MatMul", "mm", 2, in1, "xw");
    mb_node("Add", "add", 2, in2, "y");
    mb_output("y");
    dn_model *m = mb_import(DN_OK, NULL);
    cr_assert_eq(dn_model_node_count(m), 1);
    dn_node_info ni;
    dn_model_node_info(m, 0, &ni);
    cr_expect_str_eq(ni.op, "Affine");
    cr_expect_str_eq(ni.name, "y");
    float x[3] = { 1, 2, 3 }, y[2];
    run(m, DIMS(1, 3), x, "y", y, 2);
    float want[2] = { 1 + 3 + 0.5f, 2 + 3 - 0.5f };
    dn_test_expect_close(y, want, 2, 1e-6f, "MatMul + Add");
    dn_model_free(m);
}

/* Pad of 1 on H and W (opset 13: pads as an input), then a 3×3 Conv without pads: the same as
 * dagnet's Conv with pad 1, no Pad node. */
Test(onnx_import, pad_folds_into_conv)
{
    mb_new(13);
    int64_t xd[4] = { -1, 1, 4, 4 }, wd[4] = { 1, 1, 3, 3 };
    float w[9];
    for (int i = 0; i < 9; i++)
        w[i] = 1.0f;
    int64_t pads[8] = { 0, 0, 1, 1, 0, 0, 1, 1 };
    mb_input("x", 4, xd);
    mb_init("W", 4, wd, w, 9);
    mb_init_i64("pads", 8, pads);
    char *in1[] = { "x", "pads" }, *in2[] = { "xp", "W" };
    mb_node("Pad", "pad", 2, in1, "xp");
    mb_node("Conv", "conv", 2, in2, "y");
    mb_output("y");
    dn_model *m = mb_import(DN_OK, NULL);
    cr_assert_eq(dn_model_node_count(m), 1, "the Pad is folded, not a node");
    float x[16], y[16];
    for (int i = 0; i < 16; i++)
        x[i] = 1.0f;
    run(m, DIMS(1, 1, 4, 4), x, "y", y, 16);
    /* box sums of ones with zero padding: 4 at corners, 6 on edges, 9 inside */
    float want[16] = { 4, 6, 6, 4, 6, 9, 9, 6, 6, 9, 9, 6, 4, 6, 6, 4 };
    dn_test_expect_close(y, want, 16, 1e-6f, "Pad + Conv");
    dn_model_free(m);
}

/* AveragePool with its own pads and ONNX's default count_include_pad 0: the divisor counts only
 * the window's pixels inside the input, so ones average to exactly 1 everywhere. */
Test(onnx_import, averagepool_excludes_padding_by_default)
{
    mb_new(11);
    int64_t xd[4] = { -1, 1, 3, 3 };
    mb_input("x", 4, xd);
    char *in[] = { "x" };
    Onnx__NodeProto *n = mb_node("AveragePool", "p", 1, in, "y");
    int64_t k[2] = { 3, 3 }, s[2] = { 1, 1 }, p[4] = { 1, 1, 1, 1 };
    mb_ints(n, "kernel_shape", 2, k);
    mb_ints(n, "strides", 2, s);
    mb_ints(n, "pads", 4, p);
    mb_output("y");
    dn_model *m = mb_import(DN_OK, NULL);
    float x[9], y[9], want[9];
    for (int i = 0; i < 9; i++)
        x[i] = want[i] = 1.0f;
    run(m, DIMS(1, 1, 3, 3), x, "y", y, 9);
    dn_test_expect_close(y, want, 9, 1e-6f, "AveragePool count_include_pad 0");
    dn_model_free(m);
}

/* --loss: a SoftmaxCrossEntropy on the final Softmax's input, and a label input. */
Test(onnx_import, loss_on_request)
{
    mb_new(13);
    int64_t xd[2] = { -1, 2 }, wd[2] = { 2, 3 };
    float w[6] = { 1, 2, 3, 4, 5, 6 };
    mb_input("x", 2, xd);
    mb_init("W", 2, wd, w, 6);
    char *in1[] = { "x", "W" }, *in2[] = { "logits" };
    mb_node("MatMul", "mm", 2, in1, "logits");
    mb_node("Softmax", "sm", 1, in2, "prob");
    mb_output("prob");
    dn_onnx_options o = DN_ONNX_OPTIONS_DEFAULT;
    o.loss = "softmax-cross-entropy";
    o.label = "label";
    dn_model *m = mb_import(DN_OK, &o);
    cr_assert(dn_model_loss_name(m));
    cr_expect_eq(dn_model_input_count(m), 2);
    dn_node_info ni;
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_model_node_info(m, i, &ni);
        if (!strcmp(ni.name, dn_model_loss_name(m)))
            cr_expect_str_eq(ni.inputs[0], "logits", "the loss reads the Softmax's input");
    }
    dn_model_free(m);
}

/* ---------------------------------------------------------------- errors */

static void expect_refused(dn_status want, const char *a, const char *b, const char *c)
{
    dn_model *m = mb_import(want, NULL);
    EXPECT_MSG(dn_model_errmsg(m), a, b, c);
    dn_model_free(m);
}

Test(onnx_errors, unknown_op_names_node_and_type)
{
    mb_new(13);
    int64_t xd[2] = { -1, 2 };
    mb_input("x", 2, xd);
    char *in[] = { "x" };
    mb_node("Relu", "r", 1, in, "r");
    char *in2[] = { "r" };
    mb_node("Erf", "my_erf", 1, in2, "y");
    mb_output("y");
    expect_refused(DN_ERR_MODEL, "node \"my_erf\"", "(Erf)", "\"Erf\" is not supported");
}

Test(onnx_errors, asymmetric_pads)
{
    mb_new(13);
    int64_t xd[4] = { -1, 1, 5, 5 };
    mb_input("x", 4, xd);
    char *in[] = { "x" };
    Onnx__NodeProto *n = mb_node("MaxPool", "pool", 1, in, "y");
    int64_t k[2] = { 2, 2 }, p[4] = { 0, 0, 1, 1 };
    mb_ints(n, "kernel_shape", 2, k);
    mb_ints(n, "pads", 4, p);
    mb_output("y");
    expect_refused(DN_ERR_MODEL, "node \"pool\" (MaxPool)", "asymmetric pads", "bottom 1");
}

Test(onnx_errors, external_data)
{
    mb_new(13);
    int64_t xd[2] = { -1, 2 }, wd[2] = { 2, 2 };
    float w[4] = { 0 };
    mb_input("x", 2, xd);
    Onnx__TensorProto *t = mb_init("W", 2, wd, w, 4);
    t->has_data_location = true;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    char *in[] = { "x", "W" };
    mb_node("MatMul", "mm", 2, in, "y");
    mb_output("y");
    expect_refused(DN_ERR_MODEL, "t.onnx", "initializer \"W\"", "external file");
}

Test(onnx_errors, dynamic_dim_and_old_opset)
{
    mb_new(13);
    int64_t xd[2] = { -1, -1 };
    mb_input("x", 2, xd);
    char *in[] = { "x" };
    mb_node("Relu", "r", 1, in, "y");
    mb_output("y");
    expect_refused(DN_ERR_MODEL, "input \"x\"", "dim 1", "dynamic");
    mb_new(18);
    int64_t xd2[2] = { -1, 2 };
    mb_input("x", 2, xd2);
    mb_node("Relu", "r", 1, in, "y");
    mb_output("y");
    expect_refused(DN_ERR_MODEL, "opset 18", "1 to 17", "t.onnx");
}

Test(onnx_errors, gemm_transA_and_pad_into_relu)
{
    mb_new(13);
    int64_t xd[2] = { -1, 2 }, bd[2] = { 2, 2 };
    float b[4] = { 0 };
    mb_input("x", 2, xd);
    mb_init("B", 2, bd, b, 4);
    char *in[] = { "x", "B" };
    mb_int(mb_node("Gemm", "g", 2, in, "y"), "transA", 1);
    mb_output("y");
    expect_refused(DN_ERR_MODEL, "node \"g\" (Gemm)", "transA", "batch");

    mb_new(13);
    int64_t x4[4] = { -1, 1, 3, 3 }, pads[8] = { 0, 0, 1, 1, 0, 0, 1, 1 };
    mb_input("x", 4, x4);
    mb_init_i64("pads", 8, pads);
    char *in1[] = { "x", "pads" }, *in2[] = { "xp" };
    mb_node("Pad", "pad", 2, in1, "xp");
    mb_node("Relu", "relu", 1, in2, "y");
    mb_output("y");
    expect_refused(DN_ERR_MODEL, "node \"relu\" (Relu)", "comes from a Pad", "Conv or AveragePool");
}

/* ---------------------------------------------------------------- hostile files */

/* A varint-length-prefixed field: tag, length, body. */
static size_t wrap(unsigned char *dst, unsigned field, const unsigned char *body, size_t n)
{
    size_t k = 0;
    dst[k++] = (unsigned char)(field << 3 | 2);
    size_t v = n;
    do {
        dst[k++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    memmove(dst + k, body, n);
    return k + n;
}

/* ModelProto.graph → NodeProto → AttributeProto.g → GraphProto → ... 2000 levels deep: refused
 * before protobuf-c's recursive unpack. */
Test(onnx_hostile, nesting_bomb)
{
    size_t cap = 64 * 1024;
    unsigned char *a = calloc(1, cap), *b = calloc(1, cap);
    size_t n = 0;
    for (int level = 0; level < 2000; level++) {
        n = wrap(b, 6, a, n); /* AttributeProto.g */
        n = wrap(a, 5, b, n); /* NodeProto.attribute */
        n = wrap(b, 1, a, n); /* GraphProto.node */
        memcpy(a, b, n);
        cr_assert(n + 16 < cap);
    }
    n = wrap(b, 7, a, n); /* ModelProto.graph */
    dn_model *m = NULL;
    dn_status st = dn_model_parse_onnx(b, n, "bomb.onnx", NULL, &m);
    dn_test_expect_status(st, DN_ERR_PARSE, dn_model_errmsg(m));
    EXPECT_MSG(dn_model_errmsg(m), "bomb.onnx", "nested deeper than", "32");
    dn_model_free(m);
    free(a);
    free(b);
}

/* An initializer whose dims claim far more than its data, or overflow int64. */
Test(onnx_hostile, lying_dims)
{
    int64_t huge[2][2] = { { 1 << 20, 1 << 20 }, { INT64_MAX / 2, 4 } };
    for (int i = 0; i < 2; i++) {
        mb_new(13);
        int64_t xd[2] = { -1, 2 };
        float w[4] = { 0 };
        mb_input("x", 2, xd);
        mb_init("W", 2, huge[i], w, 4);
        char *in[] = { "x", "W" };
        mb_node("MatMul", "mm", 2, in, "y");
        mb_output("y");
        dn_model *m = mb_import(DN_ERR_PARSE, NULL);
        EXPECT_MSG(dn_model_errmsg(m), "t.onnx", "initializer \"W\"",
                   i == 0 ? "the data 4" : "dim 0");
        dn_model_free(m);
    }
}

Test(onnx_hostile, truncated_and_garbage)
{
    mb_new(13);
    int64_t xd[2] = { -1, 2 };
    mb_input("x", 2, xd);
    char *in[] = { "x" };
    mb_node("Relu", "r", 1, in, "y");
    mb_output("y");
    size_t len;
    unsigned char *buf = mb_pack(&len);
    for (size_t cut = 1; cut < len; cut += 3) {
        dn_model *m = NULL;
        dn_status st = dn_model_parse_onnx(buf, cut, "cut.onnx", NULL, &m);
        cr_assert(st != DN_OK || m, "a result without a handle");
        cr_expect(st == DN_OK || dn_model_errmsg(m)[0], "a failure without a message at %zu", cut);
        dn_model_free(m);
    }
    dn_model *m = NULL;
    dn_status st = dn_model_parse_onnx("\xff\xff\xff\xff", 4, "junk.onnx", NULL, &m);
    dn_test_expect_status(st, DN_ERR_PARSE, dn_model_errmsg(m));
    EXPECT_MSG(dn_model_errmsg(m), "junk.onnx", "not an ONNX model");
    dn_model_free(m);
    free(buf);
}

/* ---------------------------------------------------------------- export */

/* The example LeNet-5 (seeded params) → ONNX → dagnet: every param back under its name with
 * the same bits, and the same outputs. */
Test(onnx_export, lenet5_round_trip)
{
    char path[512];
    snprintf(path, sizeof path, "%s/examples/models/lenet5.json", DAGNET_SOURCE_DIR);
    dn_model *m = NULL;
    cr_assert_eq(dn_model_load(path, &m), DN_OK, "%s", dn_model_errmsg(m));
    dn_session_options so = DN_SESSION_OPTIONS_DEFAULT;
    so.seed = 11;
    dn_session *s = NULL;
    cr_assert_eq(dn_session_new(m, &so, &s), DN_OK);
    const char *onnx = dn_test_path("lenet5.onnx");
    cr_assert_eq(dn_session_export_onnx(s, onnx, false), DN_OK, "%s", dn_session_errmsg(s));
    dn_model *back = NULL;
    cr_assert_eq(dn_model_load_onnx(onnx, NULL, &back), DN_OK, "%s", dn_model_errmsg(back));
    cr_expect_eq(dn_model_input_count(back), 1, "the label input is left out");
    cr_expect_null(dn_model_loss_name(back), "the loss is left out");
    dn_session *s2 = NULL;
    cr_assert_eq(dn_session_new(back, NULL, &s2), DN_OK, "%s", dn_session_errmsg(s2));
    cr_assert_eq(dn_model_param_count(back), dn_model_param_count(m));
    for (int i = 0; i < dn_model_param_count(m); i++) {
        dn_tensor_info p;
        dn_model_param_info(m, i, &p);
        dn_view a, b;
        cr_assert_eq(dn_session_param(s, p.name, &a), DN_OK);
        cr_assert_eq(dn_session_param(s2, p.name, &b), DN_OK, "%s", dn_session_errmsg(s2));
        int64_t n = 1;
        for (int d = 0; d < a.rank; d++) {
            cr_assert_eq(a.shape[d], b.shape[d], "param %s dim %d", p.name, d);
            n *= a.shape[d];
        }
        cr_expect(!memcmp(a.data, b.data, (size_t)n * 4), "param %s changed", p.name);
    }
    float *x = dn_test_uniform(2 * 28 * 28, 5, 0, 1);
    int64_t shape[4] = { 2, 1, 28, 28 };
    const char *out = "prob";
    cr_assert_eq(dn_session_set_input(s, "image", DN_F32, 4, shape, x), DN_OK);
    cr_assert_eq(dn_session_set_input(s2, "image", DN_F32, 4, shape, x), DN_OK);
    cr_assert_eq(dn_session_forward(s, DN_INFER, &out, 1), DN_OK);
    cr_assert_eq(dn_session_forward(s2, DN_INFER, &out, 1), DN_OK, "%s", dn_session_errmsg(s2));
    dn_view ya, yb;
    dn_session_tensor(s, "prob", &ya);
    dn_session_tensor(s2, "prob", &yb);
    dn_test_expect_close(yb.data, ya.data, 20, 1e-6f, "outputs after export + import");
    free(x);
    dn_session_free(s2);
    dn_model_free(back);
    dn_session_free(s);
    dn_model_free(m);
}

/* ---------------------------------------------------------------- arguments */

Test(onnx_errors, api_arguments)
{
    dn_model *m = NULL;
    cr_expect_eq(dn_model_parse_onnx(NULL, 5, "x.onnx", NULL, &m), DN_ERR_ARG);
    EXPECT_MSG(dn_model_errmsg(m), "dn_model_parse_onnx", "data is NULL");
    dn_model_free(m);
    cr_expect_eq(dn_model_parse_onnx("", 0, "x.onnx", NULL, NULL), DN_ERR_ARG);
    m = NULL;
    cr_expect_eq(dn_model_load_onnx(NULL, NULL, &m), DN_ERR_ARG);
    EXPECT_MSG(dn_model_errmsg(m), "dn_model_load_onnx", "path is NULL");
    dn_model_free(m);
    m = NULL;
    cr_expect_eq(dn_model_load_onnx("/nonexistent/m.onnx", NULL, &m), DN_ERR_IO);
    EXPECT_MSG(dn_model_errmsg(m), "/nonexistent/m.onnx");
    dn_model_free(m);
    cr_expect_eq(dn_model_save(NULL, "x.json"), DN_ERR_ARG);
    cr_expect_eq(dn_model_save_weights(NULL, "x.safetensors"), DN_ERR_ARG);
    cr_expect_eq(dn_session_export_onnx(NULL, "x.onnx", false), DN_ERR_ARG);

    char path[512];
    snprintf(path, sizeof path, "%s/examples/models/lenet5.json", DAGNET_SOURCE_DIR);
    m = NULL;
    cr_assert_eq(dn_model_load(path, &m), DN_OK);
    cr_expect_eq(dn_model_save(m, NULL), DN_ERR_ARG);
    EXPECT_MSG(dn_model_errmsg(m), "dn_model_save", "path is NULL");
    cr_expect_eq(dn_model_save_weights(m, "/tmp/never.safetensors"), DN_ERR_ARG);
    EXPECT_MSG(dn_model_errmsg(m), "carries no weights", "dn_session_save_weights");
    dn_session *s = NULL;
    cr_assert_eq(dn_session_new(m, NULL, &s), DN_OK);
    cr_expect_eq(dn_session_export_onnx(s, NULL, false), DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "dn_session_export_onnx", "path is NULL");
    dn_session_free(s);
    dn_model_free(m);
}

/* A fuzzing find: a node without an op type (NULL in protobuf-c) reached strcmp when graph
 * inputs were sorted into data and weights. Any result will do, as long as it explains itself. */
Test(onnx_hostile, fuzz_finding_node_without_op_type)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/onnx/finding-null-op-type.onnx",
             DAGNET_SOURCE_DIR);
    dn_model *m = NULL;
    if (dn_model_load_onnx(path, NULL, &m) != DN_OK)
        cr_expect(dn_model_errmsg(m)[0], "a failure without a message");
    dn_model_free(m);
}

/* Options from a newer header (a larger struct_size) are refused, naming the initialiser. */
Test(onnx_errors, options_struct_size_from_another_header)
{
    unsigned char junk[4] = { 0 };
    dn_onnx_options o = DN_ONNX_OPTIONS_DEFAULT;
    o.struct_size = sizeof o + 8;
    dn_model *m = NULL;
    cr_assert_eq(dn_model_parse_onnx(junk, sizeof junk, "t.onnx", &o, &m), DN_ERR_ARG);
    EXPECT_MSG(dn_model_errmsg(m), "dn_model_parse_onnx", "struct_size", "DN_ONNX_OPTIONS_DEFAULT");
    dn_model_free(m);
}
