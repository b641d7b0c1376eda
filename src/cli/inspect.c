/*
 * inspect.c — the `dagnet` commands that look at a model or run it once:
 *   summary  a table of nodes, output shapes, params and FLOPs
 *   infer    one forward pass in inference mode, a tensor written as .npy
 *   grad     one forward and backward pass in training mode, gradients as safetensors
 *   check    one forward and backward pass on a synthetic batch
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* 1234567 → "1,234,567" */
static const char *grouped(long long n, char *buf, size_t size)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", n < 0 ? -n : n);
    size_t o = 0;
    if (n < 0 && o + 1 < size)
        buf[o++] = '-';
    for (int i = 0; i < len && o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *shape_text(int rank, const int64_t *shape, bool batched, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && o < size; i++) {
        int w = (i == 0 && batched)
                    ? snprintf(buf + o, size - o, "%sN", i ? "," : "")
                    : snprintf(buf + o, size - o, "%s%lld", i ? "," : "", (long long)shape[i]);
        o += w > 0 ? (size_t)w : 0;
    }
    if (o < size)
        snprintf(buf + o, size - o, "]");
    return buf;
}

/* Values in tensors 0 .. n−1 of one list of the model's (its params, or its state). */
static long long values_in(const dn_model *m, int n,
                           dn_status (*info)(const dn_model *, int, dn_tensor_info *))
{
    long long total = 0;
    for (int i = 0; i < n; i++) {
        dn_tensor_info t;
        info(m, i, &t);
        long long count = 1;
        for (int d = 0; d < t.rank; d++)
            count *= t.shape[d];
        total += count;
    }
    return total;
}

int cmd_summary(const dn_model *m)
{
    char shape[128], a[32], b[32];
    printf("model \"%s\" (%s)\n\n", dn_model_name(m), dn_model_file(m));
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_tensor_info t;
        dn_model_input_info(m, i, &t);
        printf("input  %-16s %-8s %s\n", t.name, t.dtype == DN_I32 ? "int32" : "float32",
               shape_text(t.rank, t.shape, t.batched, shape, sizeof shape));
    }
    printf("\n%-16s %-20s %-20s %14s %18s\n", "node", "op", "output", "params", "FLOPs/sample");
    long long flops = 0;
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_node_info n;
        dn_model_node_info(m, i, &n);
        printf("%-16s %-20s %-20s %14s %18s\n", n.name, n.op,
               shape_text(n.rank, n.shape, n.batched, shape, sizeof shape),
               grouped(n.params, a, sizeof a), grouped(n.flops, b, sizeof b));
        flops += n.flops;
    }
    long long params = values_in(m, dn_model_param_count(m), dn_model_param_info);
    printf("%-16s %-20s %-20s %14s %18s\n", "total", "", "", grouped(params, a, sizeof a),
           grouped(flops, b, sizeof b));
    printf("\n%d nodes, %d params tensors, %s parameters, %.2f MFLOPs forward per sample\n",
           dn_model_node_count(m), dn_model_param_count(m), grouped(params, a, sizeof a),
           flops / 1e6);
    /* State (BatchNorm's running statistics) is saved with the weights but never trained:
     * counted apart, so the parameter count stays what the paper or PyTorch reports. */
    long long state = values_in(m, dn_model_state_count(m), dn_model_state_info);
    if (dn_model_state_count(m) > 0)
        printf("%d state tensors, %s state values (running statistics, not trained)\n",
               dn_model_state_count(m), grouped(state, a, sizeof a));
    return 0;
}

/* ------------------------------------------------------------------ infer, grad */

int cmd_infer(const dn_model *m, const options *o)
{
    const char *target = o->fetch ? o->fetch : dn_model_output_name(m, 0);
    if (!target) {
        fprintf(stderr, "dagnet: %s has no outputs; name a tensor with --fetch\n",
                dn_model_file(m));
        return 2;
    }
    dn_session *s = NULL;
    int rc = open_session(m, o, &s);
    if (!rc && dn_session_forward(s, DN_INFER, &target, 1))
        rc = fail_session(s);
    if (!rc && dn_session_write_npy(s, target, o->out))
        rc = fail_session(s);
    dn_session_free(s);
    return rc;
}

int cmd_grad(const dn_model *m, const options *o)
{
    if (!dn_model_loss_name(m)) {
        fprintf(stderr, "dagnet: %s has no \"loss\" to differentiate\n", dn_model_file(m));
        return 2;
    }
    dn_session *s = NULL;
    int rc = open_session(m, o, &s);
    if (!rc && dn_session_forward(s, DN_TRAIN, NULL, 0))
        rc = fail_session(s);
    if (!rc && dn_session_backward(s))
        rc = fail_session(s);
    if (!rc && dn_session_save_gradients(s, o->out, o->tensors))
        rc = fail_session(s);
    if (!rc) {
        dn_view loss;
        if (dn_session_tensor(s, dn_model_loss_name(m), &loss) == DN_OK)
            printf("loss %.9g\n", (double)((const float *)loss.data)[0]);
    }
    dn_session_free(s);
    return rc;
}

/* ------------------------------------------------------------------ check */

/* Uniform [0, 1) images and labels in [0, classes), from --seed. */
static int feed_synthetic(const dn_model *m, dn_session *s, int64_t batch, unsigned long long seed)
{
    uint64_t state = synthetic_start(seed);
    int64_t classes = loss_classes(m) > 0 ? loss_classes(m) : 1;
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_tensor_info t;
        dn_model_input_info(m, i, &t);
        if (t.batched)
            t.shape[0] = batch;
        int64_t n = 1;
        bool fits = true;
        for (int d = 0; d < t.rank; d++)
            fits = fits && !__builtin_mul_overflow(n, t.shape[d], &n);
        fits = fits && (uint64_t)n < SIZE_MAX / 4 - 1;
        void *data = fits ? malloc((size_t)n * 4 + 4) : NULL;
        if (!data) {
            fprintf(stderr,
                    "dagnet: cannot allocate %s%.0f bytes for input \"%s\" at batch %lld "
                    "(%lld elements of 4 bytes)\n",
                    fits ? "" : "more than ", fits ? (double)n * 4 : (double)SIZE_MAX, t.name,
                    (long long)batch, (long long)n);
            return 1;
        }
        for (int64_t k = 0; k < n; k++) {
            if (t.dtype == DN_I32)
                ((int32_t *)data)[k] = (int32_t)(synthetic_next(&state) % (uint32_t)classes);
            else
                ((float *)data)[k] = synthetic_uniform(&state);
        }
        dn_status st = dn_session_set_input(s, t.name, t.dtype, t.rank, t.shape, data);
        free(data);
        if (st)
            return fail_session(s);
    }
    return 0;
}

int cmd_check(const dn_model *m, const options *o)
{
    dn_session *s = NULL;
    int rc = open_session(m, o, &s);
    int64_t batch = o->batch ? o->batch : 2;
    if (!rc)
        rc = feed_synthetic(m, s, batch, o->seed);
    double t0 = now_ms();
    bool train = dn_model_loss_name(m) != NULL;
    if (!rc && dn_session_forward(s, train ? DN_TRAIN : DN_INFER, NULL, 0))
        rc = fail_session(s);
    double t1 = now_ms();
    if (!rc && train && dn_session_backward(s))
        rc = fail_session(s);
    double t2 = now_ms();
    if (!rc) {
        dn_view loss;
        printf("check: batch %lld, forward %.1f ms", (long long)batch, t1 - t0);
        if (train && dn_session_tensor(s, dn_model_loss_name(m), &loss) == DN_OK)
            printf(", backward %.1f ms, loss %.6g", t2 - t1, (double)((const float *)loss.data)[0]);
        printf("\n");
    }
    dn_session_free(s);
    return rc;
}
