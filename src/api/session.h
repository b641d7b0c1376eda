/*
 * session.h — what the public handles hold, shared by the files that implement the API
 * (api.c: models and sessions; api_data.c: data sets and evaluation; api_profile.c:
 * profiling; api_onnx.c: the ONNX bridge). A data set's handle is train/dataset.h's, the
 * trainer's train/trainer.c's.
 */
#ifndef DN_SESSION_H
#define DN_SESSION_H

#include "dagnet.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "io/safetensors.h"
#include "runtime/error.h"
#include "train/feed.h"

struct dn_model {
    dn_graph *g;
    dn_err err;
    char *json; /* the model's text, kept for dn_model_save and the ONNX export */
    size_t json_len;
    /* weights that came with the model (an ONNX import): every new session starts from them;
     * parsed from `weights_image` (n == 0: none) */
    dn_st_file weights;
};

struct dn_session {
    const dn_model *m;
    dn_exec e;
    dn_err err;
};

/* A model's stored tensors, immutable once made (api_weights.c). `data` holds them in the
 * layout of dn_exec.param_data (every param, contiguous, in g->param_values order), so an
 * inference executor points its views straight into it. Every tensor is found and checked by
 * name: when the format grows stored tensors other than params, they get their own buffer
 * and one more loop in the loader. */
struct dn_weights {
    const dn_model *m; /* borrowed */
    float *data;       /* owned, 64-byte aligned; NULL when the model has no params */
    int64_t count;     /* floats in data */
    bool ready;        /* filled: a failed load leaves a handle holding only its message */
    dn_err err;
};

/* The tensors a weights file (and a dn_weights) holds, the stored tensors: every param in
 * g->param_values order, then every state tensor in g->state_values order. */
static inline int dn_stored_count(const dn_graph *g) { return g->n_params + g->n_state; }
static inline int dn_stored_value(const dn_graph *g, int i)
{
    return i < g->n_params ? g->param_values[i] : g->state_values[i - g->n_params];
}

/* Every param and state tensor of g must be in f as F32 with its exact shape, and nothing
 * else; messages start with `label` (the file or buffer). */
dn_status dn_weights_check(const dn_graph *g, const dn_st_file *f, const char *label, dn_err *err);
/* Copy the stored tensors from f (checked) into dst, one buffer in stored order: the layout
 * dn_exec_init_borrowed takes (params, then state). */
void dn_weights_copy_in(const dn_graph *g, const dn_st_file *f, float *dst);

#endif
