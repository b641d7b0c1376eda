/*
 * feed.h — a data set bound to a graph: the graph values that take the images and labels and
 * the one that holds the class scores, and feeding examples into an executor. Used by the
 * trainer (trainer.c) and by evaluation (api/api_data.c).
 */
#ifndef DN_FEED_H
#define DN_FEED_H

#include "dagnet.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "runtime/error.h"
#include "train/dataset.h"

/* The value indices of a binding's tensors, found or checked (see dn_binding). label is -1
 * when the model has no int32 input and none is needed. */
typedef struct dn_bound {
    int image, label, prediction;
} dn_bound;

/* Find or check the binding's tensors in g (b NULL: the defaults). need_label: the model must
 * have a label input (training). */
dn_status dn_bind(const dn_graph *g, const dn_binding *b, bool need_label, dn_bound *out,
                  dn_err *err);

/* Set the bound image (and label) inputs to n examples; images [n, C·H·W] are reshaped as the
 * input wants ([n,784] as well as [n,1,28,28]). */
dn_status dn_feed_batch(dn_exec *e, const dn_bound *b, const dn_data *d, const float *images,
                        const int32_t *labels, int64_t n, dn_err *err);

/* Every label of d must be in [0, classes), the model's class count: checked over the whole
 * data set before training or evaluating on it, so that a bad label is found before any work
 * is done rather than when its batch comes up. The message names the labels' file, the
 * example's index (from 0), the label and the range. Errors: DN_ERR_ARG. */
dn_status dn_check_labels(const dn_data *d, int64_t classes, dn_err *err);

/* Index of the largest of n scores (the first on ties). */
int64_t dn_argmax(const float *scores, int64_t n);

#endif
