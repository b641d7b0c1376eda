/*
 * fuzz_run.h — what the model harnesses (fuzz_model.c, fuzz_onnx.c) do with a model that
 * loaded: if it is small (the caps below), open a session, feed every input BATCH samples of
 * deterministic values, run an inference forward and, with a loss, a training forward and a
 * backward. Every failure must come with a message: one without is a finding (abort).
 */
#ifndef DN_FUZZ_RUN_H
#define DN_FUZZ_RUN_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"

#define BATCH 2
#define MAX_PARAMS ((int64_t)1 << 20)   /* elements over all params */
#define MAX_ELEMENTS ((int64_t)1 << 18) /* elements of any one tensor, per sample */
#define MAX_FLOPS ((int64_t)1 << 26)    /* forward FLOPs of the whole model, per sample */

static void explained(const char *msg)
{
    if (!msg || !msg[0])
        abort(); /* a failure without a message is a finding */
}

static int64_t elements(int rank, const int64_t *shape, bool batched)
{
    int64_t n = 1;
    for (int d = batched ? 1 : 0; d < rank; d++) {
        if (shape[d] < 0 || (shape[d] && n > MAX_ELEMENTS / shape[d]))
            return MAX_ELEMENTS + 1;
        n *= shape[d];
    }
    return n;
}

/* Small enough to run in a few milliseconds? */
static bool small(const dn_model *m)
{
    int64_t params = 0, flops = 0;
    for (int i = 0; i < dn_model_param_count(m); i++) {
        dn_tensor_info t;
        if (dn_model_param_info(m, i, &t))
            return false;
        params += elements(t.rank, t.shape, t.batched);
        if (params > MAX_PARAMS)
            return false;
    }
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_node_info n;
        if (dn_model_node_info(m, i, &n) || elements(n.rank, n.shape, n.batched) > MAX_ELEMENTS)
            return false;
        if (n.flops < 0 || (flops += n.flops) > MAX_FLOPS)
            return false;
    }
    return true;
}

/* Feed every input: batched ones with BATCH samples. false if it failed (explained). */
static bool feed(dn_session *s, const dn_model *m)
{
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_tensor_info t;
        if (dn_model_input_info(m, i, &t))
            return false;
        int64_t shape[DN_MAX_RANK];
        memcpy(shape, t.shape, sizeof shape);
        if (t.batched)
            shape[0] = BATCH;
        /* elements() saturates at MAX_ELEMENTS + 1: compare per sample, then scale */
        int64_t n = elements(t.rank, t.shape, t.batched);
        if (n > MAX_ELEMENTS)
            return false;
        n *= t.batched ? BATCH : 1;
        size_t width = t.dtype == DN_I64 ? 8 : 4;
        void *data = calloc(n ? (size_t)n : 1, width);
        if (!data)
            return false;
        if (t.dtype == DN_F32)
            for (int64_t k = 0; k < n; k++)
                ((float *)data)[k] = sinf((float)k);
        dn_status st = dn_session_set_input(s, t.name, t.dtype, t.rank, shape, data);
        free(data);
        if (st) {
            explained(dn_session_errmsg(s));
            return false;
        }
    }
    return true;
}

/* Run m if it is small; any failure must explain itself. */
static void run_if_small(const dn_model *m)
{
    dn_session_options o = { .seed = 1, .threads = 1 };
    dn_session *s = NULL;
    if (!small(m))
        return;
    if (dn_session_new(m, &o, &s)) {
        explained(dn_session_errmsg(s));
        dn_session_free(s);
        return;
    }
    if (feed(s, m)) {
        if (dn_session_forward(s, DN_INFER, NULL, 0))
            explained(dn_session_errmsg(s));
        if (dn_model_loss_name(m)) {
            if (dn_session_forward(s, DN_TRAIN, NULL, 0) || dn_session_backward(s))
                explained(dn_session_errmsg(s));
        }
    }
    dn_session_free(s);
}

#endif
