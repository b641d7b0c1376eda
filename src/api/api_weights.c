/*
 * api_weights.c — shared, read-only weights (dn_weights of include/dagnet.h) and the
 * library's version.
 *
 * A dn_weights holds every stored tensor of one model, found by name in a safetensors image
 * and checked against the model (dn_weights_check: each param and state tensor F32 with its
 * exact shape, nothing missing, nothing extra), copied into one 64-byte aligned buffer: every
 * param contiguous in g->param_values order, then every state tensor (BatchNorm's running
 * statistics) in g->state_values order (session.h, dn_stored_value). An inference session
 * (dn_exec_init_borrowed) points its param and state views into that buffer: N
 * sessions cost one copy of the weights plus N sets of activations, and opening one
 * initialises nothing. Nothing writes the buffer after it is filled, so any number of threads
 * may read it at once; the only mutable part is the error message of a failed call.
 */
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "io/safetensors.h"

#define ALIGN 64

const char *dn_version(void) { return DN_VERSION_STRING; }
const char *dn_format(void) { return DN_FORMAT; }

/* A handle for m, its message set on failure (*out NULL only when memory ran out). */
static dn_status weights_open(const dn_model *m, const char *fn, dn_weights **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_weights_errmsg(NULL) says so */
    dn_weights *w = calloc(1, sizeof *w);
    *out = w;
    if (!w)
        return DN_ERR_NOMEM;
    if (!m)
        return dn_err_set(&w->err, DN_ERR_ARG, "%s: model is NULL", fn);
    if (!m->g)
        return dn_err_set(&w->err, DN_ERR_ARG, "%s: the model did not load", fn);
    w->m = m;
    const dn_graph *g = m->g;
    int64_t total = 0;
    for (int i = 0; i < dn_stored_count(g); i++) {
        int64_t n = dn_shape_numel(&g->values[dn_stored_value(g, i)].desc.shape);
        if (n < 0 || total > INT64_MAX - n)
            return dn_err_set(&w->err, DN_ERR_NOMEM, "%s: the weights' element count overflows",
                              g->file);
        total += n;
    }
    if ((uint64_t)total > (SIZE_MAX - ALIGN) / sizeof(float))
        return dn_err_set(&w->err, DN_ERR_NOMEM, "%s: %lld params do not fit in memory", g->file,
                          (long long)total);
    size_t bytes = ((size_t)total * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    w->count = total;
    if (bytes && !(w->data = aligned_alloc(ALIGN, bytes)))
        return dn_err_set(&w->err, DN_ERR_NOMEM, "%s: cannot allocate %zu bytes for the weights",
                          g->file, bytes);
    return DN_OK;
}

/* Fill w from a parsed image (freed here); on failure w holds the message. */
static dn_status weights_fill(dn_weights *w, dn_st_file *f, const char *label)
{
    dn_status st = dn_weights_check(w->m->g, f, label, &w->err);
    if (!st)
        dn_weights_copy_in(w->m->g, f, w->data);
    w->ready = !st;
    dn_st_free(f);
    return st;
}

dn_status dn_weights_load(const dn_model *m, const char *path, dn_weights **out)
{
    dn_status st = weights_open(m, "dn_weights_load", out);
    if (st)
        return st;
    dn_weights *w = *out;
    if (!path)
        return dn_err_set(&w->err, DN_ERR_ARG, "dn_weights_load: path is NULL");
    dn_st_file f;
    if ((st = dn_st_read(path, &f, &w->err)))
        return st;
    return weights_fill(w, &f, path);
}

dn_status dn_weights_from_memory(const dn_model *m, const void *data, size_t size,
                                 const char *label, dn_weights **out)
{
    dn_status st = weights_open(m, "dn_weights_from_memory", out);
    if (st)
        return st;
    dn_weights *w = *out;
    if (!label)
        label = "<memory>";
    if (!data)
        return dn_err_set(&w->err, DN_ERR_ARG, "dn_weights_from_memory: data is NULL (%s)", label);
    unsigned char *copy = malloc(size ? size : 1); /* dn_st_parse takes a buffer it owns */
    if (!copy)
        return dn_err_set(&w->err, DN_ERR_NOMEM, "%s: cannot copy %zu bytes", label, size);
    memcpy(copy, data, size);
    dn_st_file f;
    if ((st = dn_st_parse(copy, size, label, &f, &w->err)))
        return st;
    return weights_fill(w, &f, label);
}

dn_status dn_weights_from_session(dn_session *s, dn_weights **out)
{
    if (!s) {
        if (out)
            *out = NULL;
        return DN_ERR_ARG;
    }
    dn_status st = weights_open(s->m, "dn_weights_from_session", out);
    if (st)
        return st;
    if (!s->e.g || (s->e.param_count && !s->e.param_data))
        return dn_err_set(&(*out)->err, DN_ERR_ARG,
                          "dn_weights_from_session: the session did not open");
    if (s->e.param_count) /* the stored order: params, then state */
        memcpy((*out)->data, s->e.param_data, (size_t)s->e.param_count * sizeof(float));
    if (s->e.state_count)
        memcpy((*out)->data + s->e.param_count, s->e.state_data,
               (size_t)s->e.state_count * sizeof(float));
    (*out)->ready = true;
    return DN_OK;
}

void dn_weights_free(dn_weights *w)
{
    if (!w)
        return;
    free(w->data);
    free(w);
}

const char *dn_weights_errmsg(const dn_weights *w) { return w ? w->err.msg : DN_NO_HANDLE_MSG; }

size_t dn_weights_bytes(const dn_weights *w)
{
    return w && w->data ? (size_t)w->count * sizeof(float) : 0;
}

/* The weights are complete (a failed load leaves a handle with only a message). */
static dn_status check_ready(const dn_weights *w, const char *fn)
{
    if (!w)
        return DN_ERR_ARG;
    if (!w->ready)
        return dn_err_set((dn_err *)&w->err, DN_ERR_ARG, "%s: the weights did not load", fn);
    return DN_OK;
}

dn_status dn_weights_tensor(const dn_weights *w, const char *name, dn_view *out)
{
    dn_status st = check_ready(w, "dn_weights_tensor");
    if (st)
        return st;
    dn_err *err = (dn_err *)&w->err;
    if (!name || !out)
        return dn_err_set(err, DN_ERR_ARG, "dn_weights_tensor: %s is NULL", name ? "out" : "name");
    const dn_graph *g = w->m->g;
    int64_t offset = 0;
    for (int i = 0; i < dn_stored_count(g); i++) {
        const dn_value *v = &g->values[dn_stored_value(g, i)];
        if (strcmp(v->name, name) == 0) {
            *out =
                (dn_view){ .dtype = DN_F32, .rank = v->desc.shape.rank, .data = w->data + offset };
            memcpy(out->shape, v->desc.shape.d, sizeof v->desc.shape.d);
            return DN_OK;
        }
        offset += dn_shape_numel(&v->desc.shape);
    }
    return dn_err_set(err, DN_ERR_ARG, "dn_weights_tensor: %s: no param or state tensor \"%s\"",
                      g->file, name);
}

dn_status dn_weights_save(const dn_weights *w, const char *path)
{
    dn_status st = check_ready(w, "dn_weights_save");
    if (st)
        return st;
    dn_err *err = (dn_err *)&w->err;
    if (!path)
        return dn_err_set(err, DN_ERR_ARG, "dn_weights_save: path is NULL");
    const dn_graph *g = w->m->g;
    int n = dn_stored_count(g);
    dn_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
    if (!t)
        return dn_err_set(err, DN_ERR_NOMEM, "out of memory");
    int64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const dn_value *v = &g->values[dn_stored_value(g, i)];
        t[i] = (dn_st_tensor){ v->name, DN_F32, &v->desc.shape, w->data + offset };
        offset += dn_shape_numel(&v->desc.shape);
    }
    st = dn_st_write(path, t, n, err);
    free(t);
    return st;
}
