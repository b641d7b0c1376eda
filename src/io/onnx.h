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
/* Opsets of the default domain dagnet imports: 7 to 17, and 6, whose versions of the ops
 * dagnet imports mean the same (ONNX's PyTorch-converted test cases are opset 6). */
#define DN_ONNX_OPSET_MIN 6
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

/* One named float32 tensor the exporter writes as an initializer. */
typedef struct dn_onnx_param {
    const char *name;
    const dn_shape *shape; /* not batched */
    const float *data;
} dn_onnx_param;

/* Value shapes the exporter needs (Affine's input features): the dagnet value's name and its
 * shape, batched as the graph has it. */
typedef struct dn_onnx_value_shape {
    const char *name;
    const dn_shape *shape;
} dn_onnx_value_shape;

typedef struct dn_onnx_export_opts {
    bool with_loss; /* keep the loss node and the label input */
} dn_onnx_export_opts;

/* Encode a validated dagnet model (its JSON text, the params' values, every value's shape) as
 * an ONNX ModelProto: *out malloc'ed, *out_len bytes. */
dn_status dn_onnx_export(const char *json, size_t json_len, const dn_onnx_param *params,
                         int n_params, const dn_onnx_value_shape *shapes, int n_shapes,
                         const dn_onnx_export_opts *opts, unsigned char **out, size_t *out_len,
                         dn_err *err);

#endif
