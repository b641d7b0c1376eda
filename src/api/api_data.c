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

#include "api/session.h"

/* ------------------------------------------------------------------ data sets */

static dn_dataset *new_dataset(dn_dataset **out)
{
    *out = calloc(1, sizeof **out);
    return *out;
}

dn_status dn_dataset_load_dir(const char *dir, bool train, dn_dataset **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_dataset_errmsg(NULL) says so */
    dn_dataset *d = new_dataset(out);
    if (!d)
        return DN_ERR_NOMEM;
    if (!dir)
        return dn_err_set(&d->err, DN_ERR_ARG, "dn_dataset_load_dir: dir is NULL");
    return dn_data_load_dir(dir, train, &d->data, &d->err);
}

dn_status dn_dataset_load_idx(const char *images_path, const char *labels_path, dn_dataset **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_dataset_errmsg(NULL) says so */
    dn_dataset *d = new_dataset(out);
    if (!d)
        return DN_ERR_NOMEM;
    if (!images_path || !labels_path)
        return dn_err_set(&d->err, DN_ERR_ARG, "dn_dataset_load_idx: %s is NULL",
                          images_path ? "labels_path" : "images_path");
    return dn_data_load_idx(images_path, labels_path, &d->data, &d->err);
}

dn_status dn_dataset_load_images(const char *path, dn_dataset **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_dataset_errmsg(NULL) says so */
    dn_dataset *d = new_dataset(out);
    if (!d)
        return DN_ERR_NOMEM;
    if (!path)
        return dn_err_set(&d->err, DN_ERR_ARG, "dn_dataset_load_images: path is NULL");
    return dn_data_load_images(path, &d->data, &d->err);
}

/* The checks a loader makes of a file, made of the caller's arrays. */
static dn_status check_arrays(dn_err *err, int64_t n, int c, int h, int w, const float *images,
                              const int32_t *labels, int classes, int64_t *pixels)
{
    int64_t per, total;
    if (n < 1 || c < 1 || h < 1 || w < 1 || classes < 1)
        return dn_err_set(err, DN_ERR_ARG,
                          "dn_dataset_from_arrays: n, c, h, w and classes must be positive, "
                          "found %lld, %d, %d, %d, %d",
                          (long long)n, c, h, w, classes);
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
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_dataset_errmsg(NULL) says so */
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

const char *dn_dataset_errmsg(const dn_dataset *d) { return d ? d->err.msg : DN_NO_HANDLE_MSG; }
int64_t dn_dataset_count(const dn_dataset *d) { return d ? d->data.n : 0; }
int dn_dataset_classes(const dn_dataset *d) { return d ? d->data.classes : 0; }

dn_status dn_dataset_split(dn_dataset *d, int64_t n_val, dn_dataset **val)
{
    if (!d)
        return DN_ERR_ARG;
    if (!val)
        return dn_err_set(&d->err, DN_ERR_ARG, "dn_dataset_split: val is NULL");
    *val = NULL;
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
    if (!d)
        return DN_ERR_ARG;
    if (!out) /* the message is the handle's mutable state, also through const */
        return dn_err_set(&((dn_dataset *)d)->err, DN_ERR_ARG, "dn_dataset_images: out is NULL");
    *out = (dn_view){ .dtype = DN_F32,
                      .rank = 4,
                      .data = d->data.images,
                      .shape = { d->data.n, d->data.channels, d->data.height, d->data.width } };
    return DN_OK;
}

dn_status dn_dataset_labels(const dn_dataset *d, dn_view *out)
{
    if (!d)
        return DN_ERR_ARG;
    if (!out) /* the message is the handle's mutable state, also through const */
        return dn_err_set(&((dn_dataset *)d)->err, DN_ERR_ARG, "dn_dataset_labels: out is NULL");
    *out = (dn_view){ .dtype = DN_I32, .rank = 1, .data = d->data.labels, .shape = { d->data.n } };
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

/* Feed examples [first, first + n) and run the prediction (and the loss when it can). */
static dn_status eval_run(dn_session *s, const dn_data *d, const dn_bound *b, eval_batch *buf,
                          int64_t first, int64_t n, bool with_loss)
{
    for (int64_t i = 0; i < n; i++)
        buf->index[i] = first + i;
    dn_data_gather(d, buf->index, n, buf->images, buf->labels, s->e.threads);
    dn_status st = dn_feed_batch(&s->e, b, d, buf->images, buf->labels, n, &s->err);
    int targets[2] = { b->prediction, s->e.g->loss };
    if (!st)
        st = dn_exec_forward(&s->e, false, targets, with_loss ? 2 : 1, &s->err);
    return st;
}

dn_status dn_session_evaluate(dn_session *s, const dn_dataset *ds, const dn_binding *bind,
                              int batch, dn_eval_result *out)
{
    if (!s)
        return DN_ERR_ARG;
    const char *fn = "dn_session_evaluate";
    if (!out)
        return dn_err_set(&s->err, DN_ERR_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    if (!s->e.g)
        return dn_err_set(&s->err, DN_ERR_ARG, "%s: the session did not open", fn);
    if (!ds)
        return dn_err_set(&s->err, DN_ERR_ARG, "%s: dataset is NULL", fn);
    if (batch < 1)
        return dn_err_set(&s->err, DN_ERR_ARG, "%s: batch = %d, expected at least 1", fn, batch);
    const dn_graph *g = s->e.g;
    const dn_data *d = &ds->data;
    dn_bound b;
    dn_status st = dn_bind(g, bind, false, &b, &s->err);
    if (st)
        return st;
    int64_t width = g->values[b.prediction].desc.shape.d[1];
    int classes = (int)(width > d->classes ? width : d->classes);
    bool with_loss = b.label >= 0 && g->loss >= 0;
    /* The loss refuses a label outside the model's classes: say so before the first batch. */
    if (with_loss && (st = dn_check_labels(d, width, &s->err)))
        return st;
    eval_batch buf = {
        malloc((size_t)batch * (size_t)(d->channels * d->height * d->width) * sizeof(float)),
        malloc((size_t)batch * sizeof(int32_t)), malloc((size_t)batch * sizeof(int64_t))
    };
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
