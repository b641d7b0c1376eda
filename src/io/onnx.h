/*
 * onnx.h — ONNX models in and out: an ONNX ModelProto ⇄ a dagnet/1 JSON model plus its
 * weights as a safetensors image. The wire format is decoded and encoded by protobuf-c from
 * ONNX's own schema (onnx.proto of Debian's libonnx-dev, compiled by protoc-c at build time
 * into the build folder as io/onnx.pb-c.[ch]); this layer only maps ops.
 *
 * Import (onnx_import.c): the file is hostile. Before protobuf-c's recursive unpack, a walk of
 * the wire format along the schema's descriptors bounds the nesting depth (DN_ONNX_MAX_DEPTH);
 * then every count, dim, product and byte length is checked. Anything dagnet cannot express
 * is refused with the ONNX node's name, its op type and what is unsupported.
 *
 * Export (onnx_export.c): a dagnet model, described by its JSON text and its params' values,
 * becomes an opset-13 ModelProto with a symbolic batch dimension ("N").
 *
 * docs/onnx.md maps every op both ways.
 */
#ifndef DN_ONNX_H
#define DN_ONNX_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/error.h"
#include "runtime/tensor.h"

/* ONNX files larger than this are refused before parsing (AlexNet's are 250 MB). */
#define DN_ONNX_MAX_BYTES ((size_t)4 << 30)
/* Message nesting deeper than this is refused (ONNX models nest about 6 deep; subgraphs of
 * control-flow ops, which dagnet does not run, a few more). */
#define DN_ONNX_MAX_DEPTH 32
/* Opsets of the default domain dagnet imports: 7 to 17, and the older ones, whose versions of
 * the ops dagnet imports mean the same for what it accepts (ONNX's PyTorch-converted test cases
 * are opset 6, some node cases opset 1); docs/onnx.md. */
#define DN_ONNX_OPSET_MIN 1
#define DN_ONNX_OPSET_MAX 17

typedef struct dn_onnx_import_opts {
    const char *loss;  /* NULL or "softmax-cross-entropy" */
    const char *label; /* the int32 label input the loss reads (required with loss) */
} dn_onnx_import_opts;

/* The dagnet model: JSON text (NUL-terminated) and a safetensors image of its params and state,
 * each malloc'ed (free both; NULL on failure). `label` names the file in messages. */
typedef struct dn_onnx_model {
    char *json;
    size_t json_len;
    unsigned char *weights;
    size_t weights_len;
} dn_onnx_model;

dn_status dn_onnx_import(const void *buf, size_t size, const char *label,
                         const dn_onnx_import_opts *opts, dn_onnx_model *out, dn_err *err);
void dn_onnx_model_free(dn_onnx_model *m);

/* What the exporter reads of a loaded dagnet model (the graph layer's view, handed down by
 * the API so that io/ stays below graph/). */
typedef enum dn_onnx_value_kind { DN_ONNX_INPUT, DN_ONNX_PARAM, DN_ONNX_NODE } dn_onnx_value_kind;

typedef struct dn_onnx_value {
    const char *name;
    dn_onnx_value_kind kind;
    dn_dtype dtype;
    const dn_shape *shape; /* batched: dim 0 is the batch */
    const float *data;     /* DN_ONNX_PARAM: the values */
} dn_onnx_value;

typedef struct dn_onnx_node {
    const char *name, *op;
    int n_inputs;
    char *const *inputs; /* every input, implicit params included */
    int json_index;      /* its position in the JSON's "nodes" (for its attrs) */
} dn_onnx_node;

typedef struct dn_onnx_graph {
    const char *name;
    const char *json; /* the model's validated text: attrs are read from it */
    size_t json_len;
    const dn_onnx_value *values;
    int n_values;
    const dn_onnx_node *nodes; /* in execution (topological) order */
    int n_nodes;
    const char *const *outputs;
    int n_outputs;
    const char *loss; /* or NULL */
} dn_onnx_graph;

typedef struct dn_onnx_export_opts {
    bool with_loss; /* keep the loss node and the label input */
} dn_onnx_export_opts;

/* Encode the model as an ONNX ModelProto (opset 13, ir_version 7): *out malloc'ed, *out_len
 * bytes. An op without an ONNX form is refused naming the node. */
dn_status dn_onnx_export(const dn_onnx_graph *g, const dn_onnx_export_opts *opts,
                         unsigned char **out, size_t *out_len, dn_err *err);

#endif
