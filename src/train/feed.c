/*
 * feed.c — binding a data set to a graph and feeding it batches (feed.h): which graph input
 * takes the images, which the labels, and which tensor holds the class scores; by default the
 * model's only float input, its only int32 input and its first output.
 */
#include "train/feed.h"

#include <string.h>

int64_t dn_argmax(const float *scores, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (scores[i] > scores[best])
            best = i;
    return best;
}

/* The only graph input of this dtype, or -1 with a message when there are none or several. */
static int only_input(const dn_graph *g, dn_dtype dtype, const char *role, bool required,
                      dn_err *err)
{
    int found = -1, count = 0;
    for (int i = 0; i < g->n_inputs; i++)
        if (g->values[g->input_values[i]].desc.dtype == dtype) {
            found = g->input_values[i];
            count++;
        }
    if (count == 1 || (count == 0 && !required))
        return found;
    dn_err_set(err, DN_ERR_ARG, "%s: the model has %d %s inputs; name the %s input in the binding",
               g->file, count, dn_dtype_name(dtype), role);
    return -2;
}

static dn_status named_input(const dn_graph *g, const char *name, dn_dtype dtype, int *out,
                             dn_err *err)
{
    int v = dn_graph_find(g, name);
    if (v < 0 || g->values[v].kind != DN_VALUE_INPUT)
        return dn_err_set(err, DN_ERR_ARG, "%s: \"%s\" is not a graph input", g->file, name);
    if (g->values[v].desc.dtype != dtype)
        return dn_err_set(err, DN_ERR_ARG, "%s: input \"%s\" is %s, expected %s", g->file, name,
                          dn_dtype_name(g->values[v].desc.dtype), dn_dtype_name(dtype));
    *out = v;
    return DN_OK;
}

dn_status dn_bind(const dn_graph *g, const dn_binding *b, bool need_label, dn_bound *out,
                  dn_err *err)
{
    dn_binding none = DN_BINDING_DEFAULT;
    if (!b)
        b = &none;
    dn_status st;
    if (b->image_input) {
        if ((st = named_input(g, b->image_input, DN_F32, &out->image, err)))
            return st;
    } else if ((out->image = only_input(g, DN_F32, "image", true, err)) < 0) {
        return DN_ERR_ARG;
    }
    if (b->label_input) {
        if ((st = named_input(g, b->label_input, DN_I32, &out->label, err)))
            return st;
    } else if ((out->label = only_input(g, DN_I32, "label", need_label, err)) < -1) {
        return DN_ERR_ARG;
    }
    const char *pred = b->prediction  ? b->prediction
                       : g->n_outputs ? g->values[g->outputs[0]].name
                                      : NULL;
    out->prediction = pred ? dn_graph_find(g, pred) : -1;
    if (out->prediction < 0)
        return dn_err_set(err, DN_ERR_ARG, "%s: no prediction tensor (%s)", g->file,
                          pred ? "the named tensor is not defined" : "the model has no outputs");
    const dn_value *p = &g->values[out->prediction];
    if (p->desc.shape.rank != 2 || !p->desc.shape.batched || p->desc.dtype != DN_F32) {
        char s[DN_SHAPE_STR_MAX];
        return dn_err_set(
            err, DN_ERR_SHAPE,
            "%s: prediction \"%s\" must be float32 class scores [N,classes], found %s", g->file,
            p->name, dn_shape_str(&p->desc.shape, s, sizeof s));
    }
    return DN_OK;
}

dn_status dn_feed_batch(dn_exec *e, const dn_bound *b, const dn_data *d, const float *images,
                        const int32_t *labels, int64_t n, dn_err *err)
{
    const dn_value *img = &e->g->values[b->image];
    const dn_shape *want = &img->desc.shape;
    int64_t per_example = d->channels * d->height * d->width;
    if (!want->batched || dn_shape_numel_from(want, 1) != per_example) {
        char ws[DN_SHAPE_STR_MAX];
        return dn_err_set(
            err, DN_ERR_SHAPE,
            "%s: input \"%s\" %s does not take the data set's images [n,%lld,%lld,%lld]",
            e->g->file, img->name, dn_shape_str(want, ws, sizeof ws), (long long)d->channels,
            (long long)d->height, (long long)d->width);
    }
    /* Images go in with the input's own layout ([n,784] as well as [n,1,28,28]). */
    int64_t shape[DN_MAX_RANK];
    memcpy(shape, want->d, sizeof shape);
    shape[0] = n;
    dn_status st = dn_exec_set_input(e, b->image, DN_F32, want->rank, shape, images, err);
    int64_t lshape[1] = { n };
    if (!st && b->label >= 0)
        st = dn_exec_set_input(e, b->label, DN_I32, 1, lshape, labels, err);
    return st;
}

dn_status dn_check_labels(const dn_data *d, int64_t classes, dn_err *err)
{
    for (int64_t i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= classes)
            return dn_err_set(err, DN_ERR_ARG,
                              "%s: example %lld has label %d, outside the model's classes "
                              "[0, %lld)",
                              d->label_file[0] ? d->label_file : "the labels", (long long)i,
                              d->labels[i], (long long)classes);
    return DN_OK;
}
