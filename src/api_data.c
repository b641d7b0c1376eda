/*
 * api_data.c — the public API for data sets and evaluation (include/dagnet.h), over
 * dataset.c (IDX files in memory) and the executor.
 *
 * A binding says which graph input takes the images, which the labels, and which tensor holds
 * the class scores; by default the model's only float input, its only int32 input and its
 * first output.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"

/* ------------------------------------------------------------------ data sets */

static dn_dataset *new_dataset(dn_dataset **out)
{
    *out = calloc(1, sizeof **out);
    return *out;
}

dn_status dn_dataset_load_dir(const char *dir, bool train, dn_dataset **out)
{
    dn_dataset *d = new_dataset(out);
    if (!d)
        return DN_ERR_NOMEM;
    if (!dir)
        return dn_err_set(&d->err, DN_ERR_ARG, "dn_dataset_load_dir: dir is NULL");
    return dn_data_load_dir(dir, train, &d->data, &d->err);
}

dn_status dn_dataset_load_idx(const char *images_path, const char *labels_path, dn_dataset **out)
{
    dn_dataset *d = new_dataset(out);
    if (!d)
        return DN_ERR_NOMEM;
    if (!images_path || !labels_path)
        return dn_err_set(&d->err, DN_ERR_ARG, "dn_dataset_load_idx: a path is NULL");
    return dn_data_load_idx(images_path, labels_path, &d->data, &d->err);
}

/* The checks a loader makes of a file, made of the caller's arrays. */
static dn_status check_arrays(dn_err *err, int64_t n, int c, int h, int w, const float *images,
                              const int32_t *labels, int classes, int64_t *pixels)
{
    int64_t per, total;
    if (n < 1 || c < 1 || h < 1 || w < 1 || classes < 1)
        return dn_err_set(err, DN_ERR_ARG,
                          "dn_dataset_from_arrays: n, c, h, w and classes must be positive, "
                          "found %lld, %d, %d, %d, %d", (long long)n, c, h, w, classes);
    if (!images || !labels)
        return dn_err_set(err, DN_ERR_ARG, "dn_dataset_from_arrays: images or labels is NULL");
    if (!dn_mul_ok((int64_t)c * h, w, &per) || !dn_mul_ok(per, n, &total) ||
        (uint64_t)total > SIZE_MAX / sizeof(float))
        return dn_err_set(err, DN_ERR_NOMEM,
                          "dn_dataset_from_arrays: %lld images of %dx%dx%d do not fit in memory",
                          (long long)n, c, h, w);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return dn_err_set(err, DN_ERR_ARG,
                              "dn_dataset_from_arrays: label %lld is %d, expected [0, %d)",
                              (long long)i, (int)labels[i], classes);
    *pixels = total;
    return DN_OK;
}

dn_status dn_dataset_from_arrays(int64_t n, int c, int h, int w, const float *images,
                                 const int32_t *labels, int classes, dn_dataset **out)
{
    dn_dataset *d = new_dataset(out);
    if (!d)
        return DN_ERR_NOMEM;
    int64_t pixels = 0;
    dn_status st = check_arrays(&d->err, n, c, h, w, images, labels, classes, &pixels);
    if (st)
        return st;
    dn_data *data = &d->data;
    data->images = malloc((size_t)pixels * sizeof(float));
    data->labels = malloc((size_t)n * sizeof(int32_t));
    if (!data->images || !data->labels) {
        dn_data_free(data);
        return dn_err_set(&d->err, DN_ERR_NOMEM, "dn_dataset_from_arrays: out of memory");
    }
    memcpy(data->images, images, (size_t)pixels * sizeof(float));
    memcpy(data->labels, labels, (size_t)n * sizeof(int32_t));
    data->n = n;
    data->channels = c;
    data->height = h;
    data->width = w;
    data->classes = classes;
    return DN_OK;
}

void dn_dataset_free(dn_dataset *d)
{
    if (!d)
        return;
    dn_data_free(&d->data);
    free(d);
}

const char *dn_dataset_errmsg(const dn_dataset *d) { return d ? d->err.msg : "out of memory"; }
int64_t dn_dataset_count(const dn_dataset *d) { return d ? d->data.n : 0; }
int dn_dataset_classes(const dn_dataset *d) { return d ? d->data.classes : 0; }

dn_status dn_dataset_split(dn_dataset *d, int64_t n_val, dn_dataset **val)
{
    *val = NULL;
    if (!d)
        return DN_ERR_ARG;
    dn_dataset *v = new_dataset(val);
    if (!v)
        return dn_err_set(&d->err, DN_ERR_NOMEM, "out of memory");
    dn_status st = dn_data_split(&d->data, n_val, &v->data, &d->err);
    if (st) {
        dn_dataset_free(v);
        *val = NULL;
    }
    return st;
}

dn_status dn_dataset_images(const dn_dataset *d, dn_view *out)
{
    if (!d || !out)
        return DN_ERR_ARG;
    *out = (dn_view){ .dtype = DN_F32, .rank = 4, .data = d->data.images,
                      .shape = { d->data.n, d->data.channels, d->data.height, d->data.width } };
    return DN_OK;
}

dn_status dn_dataset_labels(const dn_dataset *d, dn_view *out)
{
    if (!d || !out)
        return DN_ERR_ARG;
    *out = (dn_view){ .dtype = DN_I32, .rank = 1, .data = d->data.labels, .shape = { d->data.n } };
    return DN_OK;
}

/* ------------------------------------------------------------------ binding */

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
    const char *pred = b->prediction ? b->prediction
                       : g->n_outputs ? g->values[g->outputs[0]].name : NULL;
    out->prediction = pred ? dn_graph_find(g, pred) : -1;
    if (out->prediction < 0)
        return dn_err_set(err, DN_ERR_ARG, "%s: no prediction tensor (%s)", g->file,
                          pred ? "the named tensor is not defined" : "the model has no outputs");
    const dn_value *p = &g->values[out->prediction];
    if (p->desc.shape.rank != 2 || !p->desc.shape.batched || p->desc.dtype != DN_F32) {
        char s[DN_SHAPE_STR_MAX];
        return dn_err_set(err, DN_ERR_SHAPE, "%s: prediction \"%s\" must be float32 class scores [N,classes], found %s",
                          g->file, p->name, dn_shape_str(&p->desc.shape, s, sizeof s));
    }
    return DN_OK;
}

/* ------------------------------------------------------------------ evaluation */

void dn_eval_result_free(dn_eval_result *r)
{
    if (!r)
        return;
    free(r->confusion);
    r->confusion = NULL;
}

typedef struct eval_batch {
    float *images;
    int32_t *labels;
    int64_t *index;
} eval_batch;

dn_status dn_feed_batch(dn_session *s, const dn_bound *b, const dn_data *d, const float *images,
                        const int32_t *labels, int64_t n)
{
    dn_exec *e = &s->e;
    const dn_value *img = &e->g->values[b->image];
    const dn_shape *want = &img->desc.shape;
    int64_t per_example = d->channels * d->height * d->width;
    if (!want->batched || dn_shape_numel_from(want, 1) != per_example) {
        char ws[DN_SHAPE_STR_MAX];
        return dn_err_set(&s->err, DN_ERR_SHAPE,
                          "%s: input \"%s\" %s does not take the data set's images [n,%lld,%lld,%lld]",
                          e->g->file, img->name, dn_shape_str(want, ws, sizeof ws),
                          (long long)d->channels, (long long)d->height, (long long)d->width);
    }
    /* Images go in with the input's own layout ([n,784] as well as [n,1,28,28]). */
    int64_t shape[DN_MAX_RANK];
    memcpy(shape, want->d, sizeof shape);
    shape[0] = n;
    dn_status st = dn_exec_set_input(e, b->image, DN_F32, want->rank, shape, images, &s->err);
    int64_t lshape[1] = { n };
    if (!st && b->label >= 0)
        st = dn_exec_set_input(e, b->label, DN_I32, 1, lshape, labels, &s->err);
    return st;
}

/* Feed examples [first, first + n) and run the prediction (and the loss when it can). */
static dn_status eval_run(dn_session *s, const dn_data *d, const dn_bound *b, eval_batch *buf,
                          int64_t first, int64_t n, bool with_loss)
{
    for (int64_t i = 0; i < n; i++)
        buf->index[i] = first + i;
    dn_data_gather(d, buf->index, n, buf->images, buf->labels);
    dn_status st = dn_feed_batch(s, b, d, buf->images, buf->labels, n);
    int targets[2] = { b->prediction, s->e.g->loss };
    if (!st)
        st = dn_exec_forward(&s->e, false, targets, with_loss ? 2 : 1, &s->err);
    return st;
}

dn_status dn_session_evaluate(dn_session *s, const dn_dataset *ds, const dn_binding *bind,
                              int batch, dn_eval_result *out)
{
    memset(out, 0, sizeof *out);
    if (!s || !s->e.g || !ds || batch < 1)
        return s ? dn_err_set(&s->err, DN_ERR_ARG, "dn_session_evaluate: bad arguments") : DN_ERR_ARG;
    const dn_graph *g = s->e.g;
    const dn_data *d = &ds->data;
    dn_bound b;
    dn_status st = dn_bind(g, bind, false, &b, &s->err);
    if (st)
        return st;
    int64_t width = g->values[b.prediction].desc.shape.d[1];
    int classes = (int)(width > d->classes ? width : d->classes);
    bool with_loss = b.label >= 0 && g->loss >= 0;
    eval_batch buf = { malloc((size_t)batch * (size_t)(d->channels * d->height * d->width) * sizeof(float)),
                       malloc((size_t)batch * sizeof(int32_t)), malloc((size_t)batch * sizeof(int64_t)) };
    out->confusion = calloc((size_t)classes * (size_t)classes, sizeof *out->confusion);
    out->classes = classes;
    if (!buf.images || !buf.labels || !buf.index || !out->confusion)
        st = dn_err_set(&s->err, DN_ERR_NOMEM, "out of memory for evaluation batches");
    double loss_sum = 0;
    for (int64_t first = 0; !st && first < d->n; first += batch) {
        int64_t n = d->n - first < batch ? d->n - first : batch;
        if ((st = eval_run(s, d, &b, &buf, first, n, with_loss)))
            break;
        const float *scores = dn_f32(&s->e.val[b.prediction]);
        for (int64_t i = 0; i < n; i++) {
            int64_t guess = dn_argmax(scores + i * width, width);
            int32_t truth = buf.labels[i];
            out->confusion[(int64_t)truth * classes + guess]++;
            out->correct += guess == truth;
        }
        if (with_loss)
            loss_sum += (double)dn_f32(&s->e.val[g->loss])[0] * (double)n;
        out->count += n;
    }
    out->loss = out->count ? loss_sum / (double)out->count : 0;
    free(buf.images);
    free(buf.labels);
    free(buf.index);
    if (st)
        dn_eval_result_free(out);
    return st;
}
