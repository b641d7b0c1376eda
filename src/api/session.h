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

#endif
