/* gradcheck.c — finite-difference gradient check shared by the op tests (see gradcheck.h). */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "runtime/rng.h"

#define EPS 1e-3
#define ATOL 2e-3
#define RTOL 2e-2
#define MAX_CHECKS 150
#define PREFILL 0.25f

typedef struct gc_case {
    const dn_op *op;
    void *attrs;
    int n_in;
    dn_tensor x[DN_GC_MAX_INPUTS], dx[DN_GC_MAX_INPUTS];
    dn_tensor y, dy;
    void *work, *saved;
    uint64_t seed;
} gc_case;

static void fill_input(dn_tensor *t, const dn_gc_input *spec, dn_rng *rng)
{
    int64_t n = dn_shape_numel(&t->shape);
    if (spec->fill == DN_GC_LABELS) {
        for (int64_t i = 0; i < n; i++)
            dn_i32(t)[i] = (int32_t)dn_rng_below(rng, (uint64_t)spec->classes);
        return;
    }
    float *x = dn_f32(t);
    switch (spec->fill) {
    case DN_GC_DISTINCT:
        for (int64_t i = 0; i < n; i++)
            x[i] = 0.05f * (float)(i - n / 2) + (i - n / 2 >= 0 ? 0.025f : -0.025f);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)dn_rng_below(rng, (uint64_t)i + 1);
            float tmp = x[i];
            x[i] = x[j];
            x[j] = tmp;
        }
        break;
    case DN_GC_ONE_HOT: {
        int64_t cols = t->shape.d[t->shape.rank - 1], rows = n / cols;
        memset(x, 0, (size_t)n * sizeof *x);
        for (int64_t r = 0; r < rows; r++)
            x[r * cols + (int64_t)dn_rng_below(rng, (uint64_t)cols)] = 1.0f;
        break;
    }
    case DN_GC_POSITIVE: dn_test_fill_uniform(x, n, rng, 0.5f, 1.5f); break;
    default: dn_test_fill_uniform(x, n, rng, -1.0f, 1.0f);
    }
}

static void run_forward(gc_case *c)
{
    dn_kernel k = { .attrs = c->attrs,
                    .n_inputs = c->n_in,
                    .x = c->x,
                    .y = &c->y,
                    .work = c->work,
                    .saved = c->saved,
                    .training = true,
                    .seed = c->seed,
                    .threads = 2 };
    c->op->forward(&k);
}

static void run_backward(gc_case *c, const dn_tensor *dx)
{
    dn_kernel k = { .attrs = c->attrs,
                    .n_inputs = c->n_in,
                    .x = c->x,
                    .y = &c->y,
                    .dx = dx,
                    .dy = &c->dy,
                    .work = c->work,
                    .saved = c->saved,
                    .training = true,
                    .seed = c->seed,
                    .threads = 2 };
    c->op->backward(&k);
}

static double projected_loss(gc_case *c)
{
    run_forward(c);
    int64_t n = dn_shape_numel(&c->y.shape);
    double l = 0;
    for (int64_t i = 0; i < n; i++)
        l += (double)dn_f32(&c->y)[i] * (double)dn_f32(&c->dy)[i];
    return l;
}

static bool wants_grad(const gc_case *c, int i)
{
    return c->x[i].dtype == DN_F32 && !(c->op->no_grad_inputs & (1u << i));
}

dn_gc_result dn_gradcheck(const dn_op *op, const char *attrs_json, int n_in, const dn_gc_input *in,
                          uint64_t seed)
{
    dn_gc_result res = { .ok = false };
    gc_case c = { .op = op, .n_in = n_in, .seed = seed };
    dn_err err;
    dn_err_clear(&err);
    if (n_in < 1 || n_in > DN_GC_MAX_INPUTS) {
        snprintf(res.msg, sizeof res.msg, "gradcheck takes 1 to %d inputs, given %d",
                 DN_GC_MAX_INPUTS, n_in);
        return res;
    }
    cJSON *attrs_obj = cJSON_Parse(attrs_json);
    const char *names[DN_GC_MAX_INPUTS] = { "x0", "x1", "x2",  "x3",  "x4",  "x5",  "x6",  "x7",
                                            "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15" };
    dn_node_ctx ctx = { .file = "gradcheck",
                        .node = op->name,
                        .n_inputs = n_in,
                        .input_names = names,
                        .attrs = attrs_obj,
                        .err = &err };
    dn_tensor_desc desc[DN_GC_MAX_INPUTS], out;
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    c.attrs = calloc(1, op->attrs_size ? op->attrs_size : 1);
    if (!attrs_obj || op->parse_attrs(&ctx, c.attrs) != DN_OK) {
        snprintf(res.msg, sizeof res.msg, "attrs rejected: %.900s", err.msg);
        goto done;
    }
    for (int i = 0; i < n_in; i++)
        desc[i] = (dn_tensor_desc){ in[i].dtype, dn_shape_make(in[i].rank, in[i].shape, true) };
    if (op->infer(&ctx, c.attrs, desc, &out) != DN_OK) {
        snprintf(res.msg, sizeof res.msg, "infer failed: %.900s", err.msg);
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        size_t bytes = (size_t)dn_shape_numel(&desc[i].shape) * dn_dtype_size(desc[i].dtype);
        c.x[i] = (dn_tensor){ desc[i].dtype, desc[i].shape, calloc(1, bytes + 4) };
        c.dx[i] = (dn_tensor){ desc[i].dtype, desc[i].shape, calloc(1, bytes + 4) };
        fill_input(&c.x[i], &in[i], &rng);
    }
    int64_t ny = dn_shape_numel(&out.shape);
    c.y = (dn_tensor){ DN_F32, out.shape, calloc((size_t)ny + 1, sizeof(float)) };
    c.dy = (dn_tensor){ DN_F32, out.shape, calloc((size_t)ny + 1, sizeof(float)) };
    dn_test_fill_uniform(dn_f32(&c.dy), ny, &rng, -1.0f, 1.0f);
    size_t ws = op->workspace_size ? op->workspace_size(c.attrs, desc, n_in, &out, 2) : 0;
    size_t ss = op->saved_size ? op->saved_size(c.attrs, desc, n_in, &out) : 0;
    /* NaN-filled scratch: an op that relies on zeroed workspace or saved state fails. */
    c.work = malloc(ws + 16);
    c.saved = malloc(ss + 16);
    memset(c.work, 0xff, ws + 16);
    memset(c.saved, 0xff, ss + 16);

    /* Analytic: backward into dx pre-filled with PREFILL, then subtract it. */
    run_forward(&c);
    dn_tensor dx_all[DN_GC_MAX_INPUTS];
    for (int i = 0; i < n_in; i++) {
        dx_all[i] = c.dx[i];
        if (!wants_grad(&c, i)) {
            dx_all[i].data = NULL;
            continue;
        }
        int64_t n = dn_shape_numel(&desc[i].shape);
        for (int64_t j = 0; j < n; j++)
            dn_f32(&c.dx[i])[j] = PREFILL;
    }
    run_backward(&c, dx_all);

    /* The same gradient when only input i is asked for. */
    for (int i = 0; i < n_in; i++) {
        if (!wants_grad(&c, i))
            continue;
        int64_t n = dn_shape_numel(&desc[i].shape);
        float *alone = calloc((size_t)n + 1, sizeof(float));
        dn_tensor dx_one[DN_GC_MAX_INPUTS];
        for (int j = 0; j < n_in; j++)
            dx_one[j] = (dn_tensor){ desc[j].dtype, desc[j].shape, j == i ? alone : NULL };
        run_backward(&c, dx_one);
        for (int64_t j = 0; j < n; j++) {
            float full = dn_f32(&c.dx[i])[j] - PREFILL;
            if (fabsf(full - alone[j]) > 1e-5f * (1.0f + fabsf(full))) {
                snprintf(res.msg, sizeof res.msg,
                         "input %d element %lld: %g with all gradients asked, %g alone", i,
                         (long long)j, full, alone[j]);
                free(alone);
                goto done;
            }
        }
        free(alone);
    }

    /* Numeric: central differences on a random subset of each input's elements. */
    res.ok = true;
    for (int i = 0; i < n_in && res.ok; i++) {
        if (!wants_grad(&c, i))
            continue;
        int64_t n = dn_shape_numel(&desc[i].shape);
        int64_t probes = n < MAX_CHECKS ? n : MAX_CHECKS;
        for (int64_t p = 0; p < probes; p++) {
            int64_t j = n <= MAX_CHECKS ? p : (int64_t)dn_rng_below(&rng, (uint64_t)n);
            float *xj = &dn_f32(&c.x[i])[j];
            float saved = *xj;
            *xj = saved + (float)EPS;
            double lp = projected_loss(&c);
            *xj = saved - (float)EPS;
            double lm = projected_loss(&c);
            *xj = saved;
            double step = (double)(saved + (float)EPS) - (double)(saved - (float)EPS);
            double numeric = (lp - lm) / step;
            double analytic = (double)dn_f32(&c.dx[i])[j] - PREFILL;
            double scaled = fabs(analytic - numeric) / (ATOL + RTOL * fabs(numeric));
            if (scaled > res.max_err)
                res.max_err = scaled;
            res.checked++;
            if (scaled > 1.0) {
                snprintf(res.msg, sizeof res.msg,
                         "%s input %d element %lld: analytic %.6g, numeric %.6g", op->name, i,
                         (long long)j, analytic, numeric);
                res.ok = false;
                break;
            }
        }
    }
    if (res.ok)
        snprintf(res.msg, sizeof res.msg, "%s: %d elements, worst error %.3f of tolerance",
                 op->name, res.checked, res.max_err);
done:
    for (int i = 0; i < n_in; i++) {
        free(c.x[i].data);
        free(c.dx[i].data);
    }
    free(c.y.data);
    free(c.dy.data);
    free(c.work);
    free(c.saved);
    free(c.attrs);
    cJSON_Delete(attrs_obj);
    return res;
}
