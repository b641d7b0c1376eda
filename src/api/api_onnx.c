/*
 * api_onnx.c — the ONNX bridge in the public API (include/dagnet.h, docs/onnx.md): import an
 * ONNX file as a dagnet model that carries its weights, save a model's JSON and those
 * weights, and export a session's model with its current params as ONNX. The mapping of ops
 * is io/onnx_import.c and io/onnx_export.c; this file moves the results into handles and
 * files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "graph/graph.h"
#include "io/fileio.h"
#include "io/onnx.h"
#include "io/safetensors.h"
#include "runtime/error.h"
#include "runtime/options.h"

/* The largest ONNX file read whole (AlexNet's is 250 MB). */
#define MAX_ONNX_BYTES ((size_t)4 << 30)

dn_status dn_model_parse_onnx(const void *data, size_t len, const char *file_name,
                              const dn_onnx_options *opts, dn_model **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_model_errmsg(NULL) says so */
    *out = NULL;
    const char *label = file_name ? file_name : "<onnx>";
    dn_err err;
    dn_err_clear(&err);
    dn_onnx_options o = DN_ONNX_OPTIONS_DEFAULT; /* 0.2's layout is the first */
    dn_status st = opts ? dn_options_copy(&o, sizeof o, opts, sizeof o, "dn_model_parse_onnx",
                                          "DN_ONNX_OPTIONS_DEFAULT", &err)
                        : DN_OK;
    dn_onnx_import_opts io = { o.loss, o.label };
    dn_onnx_model om;
    if (!st)
        st = data || !len
                 ? dn_onnx_import(data, len, label, &io, &om, &err)
                 : dn_err_set(&err, DN_ERR_ARG, "dn_model_parse_onnx: data is NULL (%s)", label);
    if (st) {
        dn_model *m = calloc(1, sizeof *m);
        *out = m;
        if (!m)
            return DN_ERR_NOMEM;
        m->err = err;
        return st;
    }
    st = dn_model_parse(om.json, om.json_len, label, out);
    free(om.json);
    if (st) {
        free(om.weights);
        if (*out)
            dn_err_prefix(&(*out)->err, "the model imported from ONNX");
        return st;
    }
    /* dn_st_parse takes the image (and frees it on failure). */
    return dn_st_parse(om.weights, om.weights_len, label, &(*out)->weights, &(*out)->err);
}

dn_status dn_model_load_onnx(const char *path, const dn_onnx_options *opts, dn_model **out)
{
    if (!out)
        return DN_ERR_ARG;
    *out = NULL;
    unsigned char *data = NULL;
    size_t size = 0;
    dn_err err;
    dn_err_clear(&err);
    if (!path || dn_file_read_all(path, MAX_ONNX_BYTES, &data, &size, &err)) {
        dn_model *m = calloc(1, sizeof *m);
        *out = m;
        if (!m)
            return DN_ERR_NOMEM;
        if (!path)
            return dn_err_set(&m->err, DN_ERR_ARG, "dn_model_load_onnx: path is NULL");
        m->err = err;
        return err.status;
    }
    dn_status st = dn_model_parse_onnx(data, size, path, opts, out);
    free(data);
    return st;
}

static dn_status write_file(dn_err *err, const char *path, const void *data, size_t size)
{
    dn_atomic_file f;
    dn_status st = dn_atomic_open(&f, path, err);
    if (!st && size > 0)
        st = dn_atomic_write(&f, data, size, err);
    if (!st)
        return dn_atomic_commit(&f, err);
    dn_atomic_abort(&f);
    return st;
}

dn_status dn_model_save(const dn_model *m, const char *path)
{
    if (!m)
        return DN_ERR_ARG;
    dn_err *err = &((dn_model *)m)->err;
    if (!m->g || !m->json)
        return dn_err_set(err, DN_ERR_ARG, "dn_model_save: the model did not load");
    if (!path)
        return dn_err_set(err, DN_ERR_ARG, "dn_model_save: path is NULL");
    return write_file(err, path, m->json, m->json_len);
}

dn_status dn_model_save_weights(const dn_model *m, const char *path)
{
    if (!m)
        return DN_ERR_ARG;
    dn_err *err = &((dn_model *)m)->err;
    if (!m->g)
        return dn_err_set(err, DN_ERR_ARG, "dn_model_save_weights: the model did not load");
    if (!path)
        return dn_err_set(err, DN_ERR_ARG, "dn_model_save_weights: path is NULL");
    if (!m->weights.n && m->g->n_params)
        return dn_err_set(err, DN_ERR_ARG,
                          "dn_model_save_weights: %s carries no weights (only an imported model "
                          "does; a session saves its own with dn_session_save_weights)",
                          m->g->file);
    return write_file(err, path, m->weights.buf, m->weights.size);
}

dn_status dn_session_export_onnx(dn_session *s, const char *path, bool with_loss)
{
    if (!s)
        return DN_ERR_ARG;
    if (!s->m || !s->e.g)
        return dn_err_set(&s->err, DN_ERR_ARG, "dn_session_export_onnx: the session is not open");
    if (!path)
        return dn_err_set(&s->err, DN_ERR_ARG, "dn_session_export_onnx: path is NULL");
    const dn_graph *g = s->e.g;
    dn_onnx_value *values = calloc((size_t)g->n_values + 1, sizeof *values);
    dn_onnx_node *nodes = calloc((size_t)g->n_nodes + 1, sizeof *nodes);
    const char **outputs = calloc((size_t)g->n_outputs + 1, sizeof *outputs);
    if (!values || !nodes || !outputs) {
        free(values);
        free(nodes);
        free(outputs);
        return dn_err_set(&s->err, DN_ERR_NOMEM, "dn_session_export_onnx: out of memory");
    }
    for (int i = 0; i < g->n_values; i++) {
        const dn_value *v = &g->values[i];
        /* State (BatchNorm's running statistics) is an initializer as a param is: ONNX has
         * no other kind of stored tensor. */
        bool stored = v->kind == DN_VALUE_PARAM || v->kind == DN_VALUE_STATE;
        values[i] = (dn_onnx_value){
            .name = v->name,
            .kind = v->kind == DN_VALUE_INPUT ? DN_ONNX_INPUT
                    : stored                  ? DN_ONNX_PARAM
                                              : DN_ONNX_NODE,
            .dtype = v->desc.dtype,
            .shape = &v->desc.shape,
            .data = stored ? (const float *)s->e.val[i].data : NULL,
        };
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const dn_node *n = &g->nodes[i];
        nodes[i] =
            (dn_onnx_node){ n->name, n->op->name, n->n_inputs, n->input_names, n->json_index };
    }
    for (int i = 0; i < g->n_outputs; i++)
        outputs[i] = g->values[g->outputs[i]].name;
    dn_onnx_graph og = { .name = g->name,
                         .json = s->m->json,
                         .json_len = s->m->json_len,
                         .values = values,
                         .n_values = g->n_values,
                         .nodes = nodes,
                         .n_nodes = g->n_nodes,
                         .outputs = outputs,
                         .n_outputs = g->n_outputs,
                         .loss = g->loss >= 0 ? g->values[g->loss].name : NULL };
    unsigned char *bytes = NULL;
    size_t size = 0;
    dn_onnx_export_opts o = { .with_loss = with_loss };
    dn_status st = dn_onnx_export(&og, &o, &bytes, &size, &s->err);
    free(values);
    free(nodes);
    free(outputs);
    if (!st)
        st = write_file(&s->err, path, bytes, size);
    free(bytes);
    return st;
}
