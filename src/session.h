/*
 * session.h — what the public handles hold, shared by the files that implement the API
 * (api.c: models and sessions; api_data.c: data sets and evaluation; trainer.c: training).
 */
#ifndef DN_SESSION_H
#define DN_SESSION_H

#include "dagnet.h"
#include "dataset.h"
#include "error.h"
#include "exec.h"
#include "graph.h"

struct dn_model {
    dn_graph *g;
    dn_err err;
};

struct dn_session {
    const dn_model *m;
    dn_exec e;
    dn_err err;
};

struct dn_dataset {
    dn_data data;
    dn_err err;
};

/* The value indices of a binding's tensors, found or checked (see dn_binding). */
typedef struct dn_bound {
    int image, label, prediction;
} dn_bound;

dn_status dn_bind(const dn_graph *g, const dn_binding *b, bool need_label, dn_bound *out,
                  dn_err *err);

/* Set the bound image (and label) inputs to n examples; images shaped as the input wants. */
dn_status dn_feed_batch(dn_session *s, const dn_bound *b, const dn_data *d, const float *images,
                        const int32_t *labels, int64_t n);

/* Index of the largest of n scores (the first on ties). */
int64_t dn_argmax(const float *scores, int64_t n);

#endif
