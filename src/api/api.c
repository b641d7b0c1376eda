/*
 * api.c — the public API of include/dagnet.h for models and sessions, over the graph layer
 * (graph/) and the file formats (io/npy.c, io/safetensors.c). Data sets and evaluation are in
 * api_data.c, profiling in api_profile.c; the trainer is train/trainer.c, which
 * dn_trainer_new below hands the session's executor.
 *
 * A dn_model wraps a loaded dn_graph; a dn_session wraps a dn_exec (params, buffers, RNG).
 * Each handle keeps the message of its last failure, like sqlite3_errmsg.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "io/fileio.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "runtime/error.h"
#include "runtime/options.h"
#include "train/trainer.h"

/* Model files larger than this are refused before parsing. */
#define MAX_MODEL_BYTES ((size_t)64 << 20)
/* Weight files larger than this are refused (AlexNet's are 250 MB). */
#define MAX_WEIGHTS_BYTES ((size_t)16 << 30)

/* A bad argument: the message goes on the handle (its message is mutable state even through a
 * const pointer, like sqlite3_errmsg's), or nowhere when there is no handle. */
#define ARG_ERR(errp, ...) ((errp) ? dn_err_set((errp), DN_ERR_ARG, __VA_ARGS__) : DN_ERR_ARG)
#define MODEL_ERR(m) ((m) ? &((dn_model *)(m))->err : NULL)
#define SESSION_ERR(s) ((s) ? &((dn_session *)(s))->err : NULL)

/* ------------------------------------------------------------------ models */

dn_status dn_model_parse(const char *json, size_t len, const char *file_name, dn_model **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_model_errmsg(NULL) says so */
    dn_model *m = calloc(1, sizeof *m);
    *out = m;
    if (!m)
        return DN_ERR_NOMEM;
    if (!json)
        return dn_err_set(&m->err, DN_ERR_ARG, "dn_model_parse: json is NULL (%s)",
                          file_name ? file_name : "<model>");
    dn_status st = dn_graph_parse(json, len, file_name, &m->g, &m->err);
    if (st)
        return st;
    if (!(m->json = malloc(len + 1))) /* kept for dn_model_save and dn_session_export_onnx */
        return dn_err_set(&m->err, DN_ERR_NOMEM, "%s: out of memory", m->g->file);
    memcpy(m->json, json, len);
    m->json[len] = 0;
    m->json_len = len;
    return DN_OK;
}

dn_status dn_model_load(const char *path, dn_model **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_model_errmsg(NULL) says so */
    *out = NULL;
    unsigned char *text = NULL;
    size_t size = 0;
    dn_err err;
    dn_err_clear(&err);
    if (!path || dn_file_read_all(path, MAX_MODEL_BYTES, &text, &size, &err)) {
        dn_model *m = calloc(1, sizeof *m);
        *out = m;
        if (!m)
            return DN_ERR_NOMEM;
        if (!path)
            return dn_err_set(&m->err, DN_ERR_ARG, "dn_model_load: path is NULL");
        m->err = err;
        return err.status;
    }
    dn_status st = dn_model_parse((const char *)text, size, path, out);
    free(text);
    return st;
}

void dn_model_free(dn_model *m)
{
    if (!m)
        return;
    dn_graph_free(m->g);
    free(m->json);
    dn_st_free(&m->weights);
    free(m);
}

const char *dn_model_errmsg(const dn_model *m) { return m ? m->err.msg : DN_NO_HANDLE_MSG; }

static bool model_ready(const dn_model *m) { return m && m->g; }

const char *dn_model_name(const dn_model *m) { return model_ready(m) ? m->g->name : ""; }
const char *dn_model_file(const dn_model *m) { return model_ready(m) ? m->g->file : ""; }
int dn_model_node_count(const dn_model *m) { return model_ready(m) ? m->g->n_nodes : 0; }
int dn_model_input_count(const dn_model *m) { return model_ready(m) ? m->g->n_inputs : 0; }
int dn_model_param_count(const dn_model *m) { return model_ready(m) ? m->g->n_params : 0; }
int dn_model_state_count(const dn_model *m) { return model_ready(m) ? m->g->n_state : 0; }
int dn_model_output_count(const dn_model *m) { return model_ready(m) ? m->g->n_outputs : 0; }

/* The model's own checks for the introspection calls: loaded, index in range, out given. */
static dn_status check_index(const dn_model *m, const char *fn, int i, int count, const char *what,
                             const void *out)
{
    if (!m)
        return DN_ERR_ARG;
    if (!m->g)
        return ARG_ERR(MODEL_ERR(m), "%s: the model did not load", fn);
    if (i < 0 || i >= count)
        return ARG_ERR(MODEL_ERR(m), "%s: index %d is out of range (the model has %d %s)", fn, i,
                       count, what);
    if (!out)
        return ARG_ERR(MODEL_ERR(m), "%s: out is NULL", fn);
    return DN_OK;
}

const char *dn_model_output_name(const dn_model *m, int i)
{
    if (check_index(m, "dn_model_output_name", i, m && m->g ? m->g->n_outputs : 0, "outputs", "") !=
        DN_OK)
        return NULL;
    return m->g->values[m->g->outputs[i]].name;
}

const char *dn_model_loss_name(const dn_model *m)
{
    return model_ready(m) && m->g->loss >= 0 ? m->g->values[m->g->loss].name : NULL;
}

void dn_model_train_options(const dn_model *m, dn_train_options *out)
{
    if (!out) {
        (void)ARG_ERR(MODEL_ERR(m), "dn_model_train_options: out is NULL");
        return;
    }
    *out = model_ready(m) ? m->g->train : DN_TRAIN_OPTIONS_DEFAULT;
}

static void fill_shape(const dn_shape *s, int *rank, int64_t *shape, bool *batched)
{
    *rank = s->rank;
    memcpy(shape, s->d, sizeof s->d);
    *batched = s->batched;
}

dn_status dn_model_node_info(const dn_model *m, int i, dn_node_info *out)
{
    dn_status st =
        check_index(m, "dn_model_node_info", i, m && m->g ? m->g->n_nodes : 0, "nodes", out);
    if (st != DN_OK)
        return st;
    const dn_node *n = &m->g->nodes[i];
    const dn_value *v = &m->g->values[n->output];
    *out = (dn_node_info){ .name = n->name,
                           .op = n->op->name,
                           .n_inputs = n->n_inputs,
                           .inputs = (const char *const *)n->input_names,
                           .params = n->param_elems,
                           .flops = n->flops };
    fill_shape(&v->desc.shape, &out->rank, out->shape, &out->batched);
    return DN_OK;
}

static dn_status tensor_info(const dn_value *v, dn_tensor_info *out)
{
    *out = (dn_tensor_info){ .name = v->name, .dtype = v->desc.dtype };
    fill_shape(&v->desc.shape, &out->rank, out->shape, &out->batched);
    return DN_OK;
}

dn_status dn_model_input_info(const dn_model *m, int i, dn_tensor_info *out)
{
    dn_status st =
        check_index(m, "dn_model_input_info", i, m && m->g ? m->g->n_inputs : 0, "inputs", out);
    if (st != DN_OK)
        return st;
    return tensor_info(&m->g->values[m->g->input_values[i]], out);
}

dn_status dn_model_param_info(const dn_model *m, int i, dn_tensor_info *out)
{
    dn_status st =
        check_index(m, "dn_model_param_info", i, m && m->g ? m->g->n_params : 0, "params", out);
    if (st != DN_OK)
        return st;
    return tensor_info(&m->g->values[m->g->param_values[i]], out);
}

dn_status dn_model_output_info(const dn_model *m, int i, dn_tensor_info *out)
{
    dn_status st =
        check_index(m, "dn_model_output_info", i, m && m->g ? m->g->n_outputs : 0, "outputs", out);
    if (st != DN_OK)
        return st;
    return tensor_info(&m->g->values[m->g->outputs[i]], out);
}

dn_status dn_model_state_info(const dn_model *m, int i, dn_tensor_info *out)
{
    dn_status st =
        check_index(m, "dn_model_state_info", i, m && m->g ? m->g->n_state : 0, "state", out);
    if (st != DN_OK)
        return st;
    return tensor_info(&m->g->values[m->g->state_values[i]], out);
}

/* ------------------------------------------------------------------ sessions */

static dn_status apply_weights(dn_session *s, const dn_st_file *f, const char *path);

dn_status dn_session_new(const dn_model *m, const dn_session_options *opts, dn_session **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_session_errmsg(NULL) says so */
    dn_session *s = calloc(1, sizeof *s);
    *out = s;
    if (!s)
        return DN_ERR_NOMEM;
    if (!m)
        return dn_err_set(&s->err, DN_ERR_ARG, "dn_session_new: model is NULL");
    if (!model_ready(m))
        return dn_err_set(&s->err, DN_ERR_ARG, "dn_session_new: the model did not load");
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    if (opts && dn_options_copy(&o, sizeof o, opts, offsetof(dn_session_options, weights),
                                "dn_session_new", "DN_SESSION_OPTIONS_DEFAULT", &s->err))
        return s->err.status;
    if (o.threads < 0 || o.threads > DN_THREADS_MAX)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "dn_session_new: threads = %d is out of range (0 for the default, or "
                          "1 to %d)",
                          o.threads, DN_THREADS_MAX);
    const dn_weights *w = o.weights;
    if (w && !w->ready)
        return dn_err_set(&s->err, DN_ERR_ARG, "dn_session_new: the weights did not load (%s)",
                          w->err.msg);
    if (w && w->m != m)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "dn_session_new: the weights were loaded for another model (%s), not "
                          "this one (%s): load them with dn_weights_load(this model, ...)",
                          w->m->g->file, m->g->file);
    s->m = m;
    dn_status st = w ? dn_exec_init_borrowed(&s->e, m->g, w->data, o.threads, &s->err)
                     : dn_exec_init(&s->e, m->g, o.seed, o.threads, &s->err);
    s->e.keep_all = o.keep_tensors;
    /* weights that came with the model (an ONNX import), unless borrowed ones were given */
    if (!st && !w && m->weights.n)
        st = apply_weights(s, &m->weights, m->g->file);
    return st;
}

void dn_session_free(dn_session *s)
{
    if (!s)
        return;
    dn_exec_free(&s->e);
    free(s);
}

const char *dn_session_errmsg(const dn_session *s) { return s ? s->err.msg : DN_NO_HANDLE_MSG; }

dn_status dn_trainer_new(dn_session *s, const dn_train_options *o, const dn_binding *bind,
                         dn_trainer **out)
{
    return dn_trainer_open(s ? &s->e : NULL, o, bind, out);
}

static bool session_ready(const dn_session *s) { return s && s->m && s->e.g; }

/* The session is usable (a message on it when it is not, unless it is NULL). */
static dn_status check_session(const dn_session *s, const char *fn)
{
    if (!s)
        return DN_ERR_ARG; /* nowhere to put a message */
    if (!session_ready(s))
        return ARG_ERR(SESSION_ERR(s), "%s: the session did not open", fn);
    return DN_OK;
}

/* A pointer argument that must not be NULL. */
static dn_status check_ptr(dn_session *s, const char *fn, const void *p, const char *what)
{
    return p ? DN_OK : dn_err_set(&s->err, DN_ERR_ARG, "%s: %s is NULL", fn, what);
}

#define CHECK(expr)                   \
    do {                              \
        dn_status check_st_ = (expr); \
        if (check_st_ != DN_OK)       \
            return check_st_;         \
    } while (0)

/* The session's params may be written: refuse on an inference session, naming the call. */
static dn_status check_writable(dn_session *s, const char *fn)
{
    if (!s->e.inference)
        return DN_OK;
    return dn_err_set(&s->err, DN_ERR_ARG,
                      "%s: %s: the session is an inference session; its params are borrowed, "
                      "read-only weights (use dn_weights_tensor to read them, or open a session "
                      "without weights to change them)",
                      fn, s->e.g->file);
}

/* Value index of `name` of the wanted kind, or a message. kind < 0: any kind. */
static int find_value(dn_session *s, const char *name, int kind, const char *what)
{
    const dn_graph *g = s->e.g;
    int v = name ? dn_graph_find(g, name) : -1;
    if (v < 0 || (kind >= 0 && (int)g->values[v].kind != kind)) {
        dn_err_set(&s->err, DN_ERR_ARG, "%s: %s \"%s\" is not defined", g->file, what,
                   name ? name : "(null)");
        return -1;
    }
    return v;
}

dn_status dn_session_set_input(dn_session *s, const char *name, dn_dtype dtype, int rank,
                               const int64_t *shape, const void *data)
{
    const char *fn = "dn_session_set_input";
    CHECK(check_session(s, fn));
    CHECK(check_ptr(s, fn, name, "name"));
    if (dtype != DN_F32 && dtype != DN_I32 && dtype != DN_I64)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "%s: dtype %d is not DN_F32 (0), DN_I32 (1) or DN_I64 (2)", fn,
                          (int)dtype);
    if (rank < 0 || rank > DN_MAX_RANK)
        return dn_err_set(&s->err, DN_ERR_ARG, "%s: rank %d is out of range (0 to %d)", fn, rank,
                          DN_MAX_RANK);
    if (rank > 0)
        CHECK(check_ptr(s, fn, shape, "shape"));
    CHECK(check_ptr(s, fn, data, "data"));
    int v = find_value(s, name, DN_VALUE_INPUT, "graph input");
    if (v < 0)
        return DN_ERR_ARG;
    return dn_exec_set_input(&s->e, v, dtype, rank, shape, data, &s->err);
}

dn_status dn_session_set_input_npy(dn_session *s, const char *name, const char *path)
{
    const char *fn = "dn_session_set_input_npy";
    CHECK(check_session(s, fn));
    CHECK(check_ptr(s, fn, name, "name"));
    CHECK(check_ptr(s, fn, path, "path"));
    dn_array a;
    dn_status st = dn_npy_read(path, &a, &s->err);
    if (st)
        return st;
    st = dn_session_set_input(s, name, a.dtype, a.shape.rank, a.shape.d, a.data);
    if (st)
        dn_err_prefix(&s->err, "%s", path);
    dn_array_free(&a);
    return st;
}

dn_status dn_session_forward(dn_session *s, dn_mode mode, const char *const *fetch, int n_fetch)
{
    const char *fn = "dn_session_forward";
    CHECK(check_session(s, fn));
    const dn_graph *g = s->e.g;
    if (mode != DN_INFER && mode != DN_TRAIN)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "%s: mode %d is neither DN_INFER (0) nor DN_TRAIN (1)", fn, (int)mode);
    if (n_fetch < 0)
        return dn_err_set(&s->err, DN_ERR_ARG, "%s: n_fetch = %d is negative", fn, n_fetch);
    if (n_fetch > 0)
        CHECK(check_ptr(s, fn, fetch, "fetch"));
    for (int i = 0; i < n_fetch; i++)
        if (!fetch[i])
            return dn_err_set(&s->err, DN_ERR_ARG, "%s: fetch[%d] is NULL", fn, i);
    /* The default targets: the outputs, and the loss when training. */
    int targets[64];
    int n = 0;
    if (n_fetch == 0) {
        if (g->n_outputs > 63)
            return dn_err_set(&s->err, DN_ERR_ARG,
                              "%s: %d outputs; name at most 64 tensors to fetch instead", g->file,
                              g->n_outputs);
        for (int i = 0; i < g->n_outputs; i++)
            targets[n++] = g->outputs[i];
        if (mode == DN_TRAIN && g->loss >= 0)
            targets[n++] = g->loss;
    } else {
        if (n_fetch > 64)
            return dn_err_set(&s->err, DN_ERR_ARG, "dn_session_forward: at most 64 fetches");
        for (int i = 0; i < n_fetch; i++)
            if ((targets[n++] = find_value(s, fetch[i], -1, "tensor")) < 0)
                return DN_ERR_ARG;
    }
    return dn_exec_forward(&s->e, mode == DN_TRAIN, targets, n, &s->err);
}

dn_status dn_session_backward(dn_session *s)
{
    CHECK(check_session(s, "dn_session_backward"));
    CHECK(check_writable(s, "dn_session_backward"));
    return dn_exec_backward(&s->e, &s->err);
}

static void to_view(const dn_tensor *t, dn_view *out)
{
    *out = (dn_view){ .dtype = t->dtype, .rank = t->shape.rank, .data = t->data };
    memcpy(out->shape, t->shape.d, sizeof t->shape.d);
}

dn_status dn_session_tensor(dn_session *s, const char *name, dn_view *out)
{
    CHECK(check_session(s, "dn_session_tensor"));
    CHECK(check_ptr(s, "dn_session_tensor", name, "name"));
    CHECK(check_ptr(s, "dn_session_tensor", out, "out"));
    int v = find_value(s, name, -1, "tensor");
    if (v < 0)
        return DN_ERR_ARG;
    if (!s->e.computed[v])
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "%s: tensor \"%s\" has not been computed (run a forward that needs it)",
                          s->e.g->file, name);
    to_view(&s->e.val[v], out);
    return DN_OK;
}

dn_status dn_session_copy_tensor(dn_session *s, const char *name, void *dst, size_t size)
{
    const char *fn = "dn_session_copy_tensor";
    CHECK(check_session(s, fn));
    CHECK(check_ptr(s, fn, name, "name"));
    CHECK(check_ptr(s, fn, dst, "dst"));
    dn_view v;
    CHECK(dn_session_tensor(s, name, &v));
    const dn_tensor *t = &s->e.val[dn_graph_find(s->e.g, name)];
    size_t bytes = (size_t)dn_shape_numel(&t->shape) * dn_dtype_size(t->dtype);
    if (size < bytes)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "%s: %s: tensor \"%s\" takes %zu bytes, the buffer holds %zu", fn,
                          s->e.g->file, name, bytes, size);
    memcpy(dst, t->data, bytes);
    return DN_OK;
}

/* The value behind dn_session_param, _state and _param_grad: `name`, of `kind` (`what` in the
 * message), after the checks every writable view needs; -1 (DN_ERR_ARG, the message set) when
 * one fails. */
static int writable_value(dn_session *s, const char *fn, const char *name, const dn_view *out,
                          int kind, const char *what)
{
    if (check_session(s, fn) || check_ptr(s, fn, name, "name") || check_ptr(s, fn, out, "out") ||
        check_writable(s, fn))
        return -1;
    return find_value(s, name, kind, what);
}

dn_status dn_session_param(dn_session *s, const char *name, dn_view *out)
{
    int v = writable_value(s, "dn_session_param", name, out, DN_VALUE_PARAM, "param");
    if (v < 0)
        return DN_ERR_ARG;
    to_view(&s->e.val[v], out);
    return DN_OK;
}

dn_status dn_session_state(dn_session *s, const char *name, dn_view *out)
{
    int v = writable_value(s, "dn_session_state", name, out, DN_VALUE_STATE, "state tensor");
    if (v < 0)
        return DN_ERR_ARG;
    to_view(&s->e.val[v], out);
    return DN_OK;
}

dn_status dn_session_param_grad(dn_session *s, const char *name, dn_view *out)
{
    int v = writable_value(s, "dn_session_param_grad", name, out, DN_VALUE_PARAM, "param");
    if (v < 0)
        return DN_ERR_ARG;
    if (!s->e.grads_ready)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "%s: no gradients yet (run backward after a training forward)",
                          s->e.g->file);
    to_view(&s->e.grad[v], out);
    return DN_OK;
}

/* ------------------------------------------------------------------ files */

dn_status dn_file_write(const char *path, const void *data, size_t size, char *errmsg,
                        size_t errmsg_size)
{
    dn_err err = { 0 };
    dn_status st;
    if (!path)
        st = dn_err_set(&err, DN_ERR_ARG, "dn_file_write: path is NULL");
    else if (!data && size > 0)
        st = dn_err_set(&err, DN_ERR_ARG, "dn_file_write: data is NULL");
    else {
        dn_atomic_file f;
        st = dn_atomic_open(&f, path, &err);
        if (!st && size > 0)
            st = dn_atomic_write(&f, data, size, &err);
        if (!st)
            st = dn_atomic_commit(&f, &err);
        else
            dn_atomic_abort(&f);
    }
    if (st && errmsg && errmsg_size > 0)
        snprintf(errmsg, errmsg_size, "%s", err.msg);
    return st;
}

/* Every param and state tensor must be in the file as F32 with its exact shape, and nothing
 * else. */
dn_status dn_weights_check(const dn_graph *g, const dn_st_file *f, const char *path, dn_err *err)
{
    char want[DN_SHAPE_STR_MAX], got[DN_SHAPE_STR_MAX];
    for (int i = 0; i < dn_stored_count(g); i++) {
        const dn_value *p = &g->values[dn_stored_value(g, i)];
        const char *what = p->kind == DN_VALUE_STATE ? "state tensor" : "param";
        const dn_st_entry *e = dn_st_find(f, p->name);
        if (!e)
            return dn_err_set(err, DN_ERR_SHAPE, "%s: %s \"%s\" of %s is missing", path, what,
                              p->name, g->file);
        if (e->dtype != DN_F32)
            return dn_err_set(err, DN_ERR_SHAPE, "%s: %s \"%s\": expected dtype F32, found %s",
                              path, what, p->name, dn_dtype_name(e->dtype));
        if (!dn_shape_equal(&e->shape, &p->desc.shape))
            return dn_err_set(err, DN_ERR_SHAPE, "%s: %s \"%s\": expected shape %s, found %s", path,
                              what, p->name, dn_shape_str(&p->desc.shape, want, sizeof want),
                              dn_shape_str(&e->shape, got, sizeof got));
    }
    for (int i = 0; i < f->n; i++) {
        int v = dn_graph_find(g, f->entries[i].name);
        if (v < 0 || (g->values[v].kind != DN_VALUE_PARAM && g->values[v].kind != DN_VALUE_STATE))
            return dn_err_set(err, DN_ERR_SHAPE,
                              "%s: tensor \"%s\" is not a param or state tensor of %s", path,
                              f->entries[i].name, g->file);
    }
    return DN_OK;
}

void dn_weights_copy_in(const dn_graph *g, const dn_st_file *f, float *dst)
{
    for (int i = 0; i < dn_stored_count(g); i++) {
        const dn_st_entry *e = dn_st_find(f, g->values[dn_stored_value(g, i)].name);
        memcpy(dst, e->data, e->nbytes); /* entries may be unaligned: copy bytes */
        dst += e->nbytes / sizeof(float);
    }
}

/* Check f against the params and state and copy it into the session's own. */
static dn_status apply_weights(dn_session *s, const dn_st_file *f, const char *label)
{
    dn_status st = dn_weights_check(s->e.g, f, label, &s->err);
    if (st)
        return st;
    const dn_graph *g = s->e.g;
    for (int i = 0; i < dn_stored_count(g); i++) { /* params and state: two buffers */
        int v = dn_stored_value(g, i);
        const dn_st_entry *e = dn_st_find(f, g->values[v].name);
        memcpy(s->e.val[v].data, e->data, e->nbytes); /* entries may be unaligned: copy bytes */
    }
    memset(s->e.computed, 0, (size_t)s->e.g->n_values * sizeof *s->e.computed);
    s->e.loss_ready = s->e.grads_ready = false;
    return DN_OK;
}

/* Load a parsed safetensors image into the session's params (f is freed). */
static dn_status load_parsed(dn_session *s, dn_st_file *f, const char *label)
{
    dn_status st = apply_weights(s, f, label);
    dn_st_free(f);
    return st;
}

dn_status dn_session_load_weights(dn_session *s, const char *path)
{
    CHECK(check_session(s, "dn_session_load_weights"));
    CHECK(check_ptr(s, "dn_session_load_weights", path, "path"));
    CHECK(check_writable(s, "dn_session_load_weights"));
    dn_st_file f;
    dn_status st = dn_st_read(path, &f, &s->err);
    return st ? st : load_parsed(s, &f, path);
}

dn_status dn_session_load_weights_memory(dn_session *s, const void *data, size_t size)
{
    const char *fn = "dn_session_load_weights_memory";
    CHECK(check_session(s, fn));
    CHECK(check_ptr(s, fn, data, "data"));
    CHECK(check_writable(s, fn));
    unsigned char *copy = malloc(size ? size : 1); /* dn_st_parse takes a buffer it owns */
    if (!copy)
        return dn_err_set(&s->err, DN_ERR_NOMEM, "%s: cannot copy %zu bytes", fn, size);
    memcpy(copy, data, size);
    dn_st_file f;
    dn_status st = dn_st_parse(copy, size, "<memory>", &f, &s->err);
    return st ? st : load_parsed(s, &f, "<memory>");
}

/* The session's params and state as safetensors entries: t has room for each. */
static void param_entries(const dn_session *s, dn_st_tensor *t)
{
    const dn_graph *g = s->e.g;
    for (int i = 0; i < dn_stored_count(g); i++) {
        int v = dn_stored_value(g, i);
        t[i] = (dn_st_tensor){ g->values[v].name, DN_F32, &s->e.val[v].shape, s->e.val[v].data };
    }
}

dn_status dn_session_save_weights_memory(dn_session *s, void **data, size_t *size)
{
    const char *fn = "dn_session_save_weights_memory";
    CHECK(check_session(s, fn));
    CHECK(check_ptr(s, fn, data, "data"));
    CHECK(check_ptr(s, fn, size, "size"));
    *data = NULL;
    *size = 0;
    int n = dn_stored_count(s->e.g);
    dn_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
    if (!t)
        return dn_err_set(&s->err, DN_ERR_NOMEM, "out of memory");
    param_entries(s, t);
    unsigned char *buf;
    dn_status st = dn_st_write_mem(t, n, "<memory>", &buf, size, &s->err);
    if (!st)
        *data = buf;
    free(t);
    return st;
}

void dn_free(void *p) { free(p); }

dn_status dn_session_save_weights(dn_session *s, const char *path)
{
    CHECK(check_session(s, "dn_session_save_weights"));
    CHECK(check_ptr(s, "dn_session_save_weights", path, "path"));
    const dn_graph *g = s->e.g;
    int n = dn_stored_count(g);
    dn_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
    if (!t)
        return dn_err_set(&s->err, DN_ERR_NOMEM, "out of memory");
    param_entries(s, t);
    dn_status st = dn_st_write(path, t, n, &s->err);
    free(t);
    return st;
}

dn_status dn_session_write_npy(dn_session *s, const char *tensor, const char *path)
{
    CHECK(check_session(s, "dn_session_write_npy"));
    CHECK(check_ptr(s, "dn_session_write_npy", tensor, "tensor"));
    CHECK(check_ptr(s, "dn_session_write_npy", path, "path"));
    dn_view v;
    dn_status st = dn_session_tensor(s, tensor, &v);
    if (st)
        return st;
    const dn_tensor *t = &s->e.val[dn_graph_find(s->e.g, tensor)];
    dn_shape shape = t->shape;
    shape.batched = false;
    return dn_npy_write(path, t->dtype, &shape, t->data, &s->err);
}

/* Entry names built for save_gradients: "grad.<param>", "param.<param>", "act.<node>". */
static char *prefixed(const char *prefix, const char *name)
{
    size_t n = strlen(prefix) + strlen(name) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", prefix, name);
    return s;
}

dn_status dn_session_save_gradients(dn_session *s, const char *path, bool with_tensors)
{
    CHECK(check_session(s, "dn_session_save_gradients"));
    CHECK(check_ptr(s, "dn_session_save_gradients", path, "path"));
    const dn_graph *g = s->e.g;
    if (!s->e.grads_ready)
        return dn_err_set(&s->err, DN_ERR_ARG,
                          "%s: no gradients yet (run backward after a training forward)", g->file);
    int cap = 1 + 2 * g->n_params + g->n_state + g->n_nodes;
    dn_st_tensor *t = calloc((size_t)cap, sizeof *t);
    char **names = calloc((size_t)cap, sizeof *names);
    dn_shape scalar = { .rank = 0 };
    int n = 0;
    dn_status st = DN_OK;
    if (!t || !names) {
        st = dn_err_set(&s->err, DN_ERR_NOMEM, "out of memory");
        goto out;
    }
    t[n++] = (dn_st_tensor){ "loss", DN_F32, &scalar, s->e.val[g->loss].data };
    for (int i = 0; i < g->n_params; i++) {
        int v = g->param_values[i];
        if (!(names[n] = prefixed("grad.", g->values[v].name)))
            goto oom;
        t[n] = (dn_st_tensor){ names[n], DN_F32, &s->e.grad[v].shape, s->e.grad[v].data };
        n++;
    }
    for (int i = 0; with_tensors && i < g->n_params; i++) {
        int v = g->param_values[i];
        if (!(names[n] = prefixed("param.", g->values[v].name)))
            goto oom;
        t[n] = (dn_st_tensor){ names[n], DN_F32, &s->e.val[v].shape, s->e.val[v].data };
        n++;
    }
    for (int i = 0; with_tensors && i < g->n_state; i++) {
        int v = g->state_values[i];
        if (!(names[n] = prefixed("state.", g->values[v].name)))
            goto oom;
        t[n] = (dn_st_tensor){ names[n], DN_F32, &s->e.val[v].shape, s->e.val[v].data };
        n++;
    }
    for (int i = 0; with_tensors && i < g->n_nodes; i++) {
        int v = g->nodes[i].output;
        if (!s->e.computed[v])
            continue;
        if (!(names[n] = prefixed("act.", g->values[v].name)))
            goto oom;
        t[n] = (dn_st_tensor){ names[n], s->e.val[v].dtype, &s->e.val[v].shape, s->e.val[v].data };
        n++;
    }
    st = dn_st_write(path, t, n, &s->err);
    goto out;
oom:
    st = dn_err_set(&s->err, DN_ERR_NOMEM, "out of memory");
out:
    for (int i = 0; names && i < cap; i++)
        free(names[i]);
    free(names);
    free(t);
    return st;
}
