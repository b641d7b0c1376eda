/*
 * test_ops_basic.c — the elementwise, softmax/loss, dropout and shape ops: finite-difference
 * gradients (tests/gradcheck.h), forward values against direct computations, and the
 * messages infer and parse_attrs give for bad models. Kernels run in helpers.h's harness (y,
 * workspace and saved state start as NaN); a test that checks backward's accumulation sets dy
 * and the starting dx itself.
 *
 * Suites are named after the op's id in ops/registry.c and what they test: <id>_grad (the
 * suite tests/test_registry.c requires of every op), <id>_forward, <id>_infer, <id>_check,
 * so that `dagnet_tests --filter 'relu*'` runs one op's tests.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "helpers.h"

extern const dn_op dn_op_relu, dn_op_sigmoid, dn_op_tanh, dn_op_softmax,
    dn_op_softmax_cross_entropy, dn_op_dropout, dn_op_flatten, dn_op_add, dn_op_concat,
    dn_op_leaky_relu;

/* ------------------------------------------------------------------ helpers */

#define F32(fill_, ...) \
    ((dn_gc_input){     \
        .dtype = DN_F32, .rank = NDIMS(__VA_ARGS__), .shape = { __VA_ARGS__ }, .fill = (fill_) })

static void expect_grad(const dn_op *op, const char *attrs, int n, const dn_gc_input *in)
{
    dn_gc_result r = dn_gradcheck(op, attrs, n, in, 20240611);
    cr_assert(r.ok, "%s %s: %s", op->name, attrs, r.msg);
    cr_assert_gt(r.checked, 0, "%s: nothing was checked", op->name);
}

static dn_tensor_desc desc_of(dn_dtype t, bool batched, int rank, const int64_t *dims)
{
    return (dn_tensor_desc){ t, dn_shape_make(rank, dims, batched) };
}
#define DESC(t, batched, ...) desc_of(t, batched, NDIMS(__VA_ARGS__), (int64_t[]){ __VA_ARGS__ })

static const char *const names[] = { "alpha", "beta", "gamma", "delta" };

/* A node "mynode" at /nodes/3 of net.json with inputs alpha, beta, gamma, delta. */
static dn_node_ctx ctx_for(int n_inputs, const cJSON *attrs, dn_err *err)
{
    dn_err_clear(err);
    return (dn_node_ctx){ .file = "net.json",
                          .node = "mynode",
                          .index = 3,
                          .n_inputs = n_inputs,
                          .input_names = names,
                          .attrs = attrs,
                          .err = err };
}

/* parse_attrs then infer, as the loader does; the status of the first that fails. */
static dn_status infer_node(const dn_op *op, const char *attrs_json, int n,
                            const dn_tensor_desc *in, dn_tensor_desc *out, dn_err *err)
{
    cJSON *json = cJSON_Parse(attrs_json);
    cr_assert(json, "bad test JSON %s", attrs_json);
    dn_node_ctx c = ctx_for(n, json, err);
    void *attrs = calloc(1, op->attrs_size + 1);
    dn_status st = op->parse_attrs(&c, attrs);
    if (!st)
        st = op->infer(&c, attrs, in, out);
    free(attrs);
    cJSON_Delete(json);
    return st;
}

static void expect_infer_fails(const dn_op *op, const char *attrs_json, int n,
                               const dn_tensor_desc *in, dn_status want, dn_err *err)
{
    dn_tensor_desc out;
    dn_status st = infer_node(op, attrs_json, n, in, &out, err);
    dn_test_expect_status(st, want, err->msg);
    EXPECT_MSG_FROM(err->msg, "net.json", "\"mynode\"");
}

static dn_tensor tensor_of(dn_dtype t, int rank, const int64_t *dims, void *data)
{
    return (dn_tensor){ t, dn_shape_make(rank, dims, true), data };
}
#define TENSOR(t, data, ...) tensor_of(t, NDIMS(__VA_ARGS__), (int64_t[]){ __VA_ARGS__ }, data)

/* ------------------------------------------------------------------ gradients */

Test(relu_grad, distinct_values)
{
    dn_gc_input in[] = { F32(DN_GC_DISTINCT, 3, 4, 5) };
    expect_grad(&dn_op_relu, "{}", 1, in);
}

Test(sigmoid_grad, small_and_wide_values)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 4, 7) };
    expect_grad(&dn_op_sigmoid, "{}", 1, in);
    /* values out to ±3.7: both branches of the stable formula */
    dn_gc_input wide[] = { F32(DN_GC_DISTINCT, 6, 25) };
    expect_grad(&dn_op_sigmoid, "{}", 1, wide);
}

Test(tanh_grad, small_and_wide_values)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 4, 7) };
    expect_grad(&dn_op_tanh, "{}", 1, in);
    dn_gc_input wide[] = { F32(DN_GC_DISTINCT, 3, 20) };
    expect_grad(&dn_op_tanh, "{}", 1, wide);
}

Test(softmax_grad, axis1)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 5, 8) };
    expect_grad(&dn_op_softmax, "{}", 1, in);
    expect_grad(&dn_op_softmax, "{\"axis\": 1}", 1, in);
}

Test(softmax_grad, rank4_axis1)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 2, 3, 4, 5) };
    expect_grad(&dn_op_softmax, "{\"axis\": 1}", 1, in);
}

Test(softmax_grad, rank4_last_axis)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 2, 3, 4, 5) };
    expect_grad(&dn_op_softmax, "{\"axis\": -1}", 1, in);
}

Test(softmax_cross_entropy_grad, int_labels)
{
    dn_gc_input in[] = {
        F32(DN_GC_UNIFORM, 6, 7),
        { .dtype = DN_I32, .rank = 1, .shape = { 6 }, .fill = DN_GC_LABELS, .classes = 7 }
    };
    expect_grad(&dn_op_softmax_cross_entropy, "{}", 2, in);
}

Test(softmax_cross_entropy_grad, one_hot)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 6, 7), F32(DN_GC_ONE_HOT, 6, 7) };
    expect_grad(&dn_op_softmax_cross_entropy, "{}", 2, in);
}

Test(softmax_cross_entropy_grad, unnormalised_targets)
{
    /* targets in (0.5, 1.5) do not sum to 1: the gradient must still match the loss */
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 4, 5), F32(DN_GC_POSITIVE, 4, 5) };
    expect_grad(&dn_op_softmax_cross_entropy, "{}", 2, in);
}

Test(dropout_grad, training)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 6, 40) };
    expect_grad(&dn_op_dropout, "{\"ratio\": 0.3}", 1, in);
}

Test(flatten_grad, rank4)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 3, 2, 4, 5) };
    expect_grad(&dn_op_flatten, "{}", 1, in);
}

Test(add_grad, same_shapes)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 4, 3, 5), F32(DN_GC_UNIFORM, 4, 3, 5) };
    expect_grad(&dn_op_add, "{}", 2, in);
}

Test(concat_grad, axis1)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 2, 3, 4), F32(DN_GC_UNIFORM, 2, 1, 4),
                         F32(DN_GC_UNIFORM, 2, 5, 4) };
    expect_grad(&dn_op_concat, "{}", 3, in);
    expect_grad(&dn_op_concat, "{\"axis\": 1}", 3, in);
}

Test(concat_grad, last_axis)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 2, 3, 2), F32(DN_GC_UNIFORM, 2, 3, 4),
                         F32(DN_GC_UNIFORM, 2, 3, 1) };
    expect_grad(&dn_op_concat, "{\"axis\": -1}", 3, in);
    expect_grad(&dn_op_concat, "{\"axis\": 2}", 3, in);
}

Test(concat_grad, single_input)
{
    dn_gc_input in[] = { F32(DN_GC_UNIFORM, 3, 4) };
    expect_grad(&dn_op_concat, "{}", 1, in);
}

/* ------------------------------------------------------------------ forward values */

/* Forward and backward by hand; backward adds dy where y > 0 (ReLU's gradient at 0 is 0) to
 * the dx it is given, here 10 everywhere. */
Test(relu_forward, by_hand)
{
    float x[] = { -2.0f, -0.5f, 0.0f, 0.5f, 3.0f }, dy[] = { 1, 2, 3, 4, 5 };
    dn_tensor in = TENSOR(DN_F32, x, 5);
    dn_test_run r = dn_test_run_new(&dn_op_relu, "{}", 1, &in, 2);
    dn_test_run_forward(&r, 1, false);
    float want[] = { 0, 0, 0, 0.5f, 3.0f };
    cr_assert_arr_eq(r.y.data, want, sizeof want);
    memcpy(r.dy.data, dy, sizeof dy);
    for (int i = 0; i < 5; i++)
        dn_f32(&r.dx[0])[i] = 10.0f;
    dn_test_run_backward(&r, 2);
    float want_dx[] = { 10, 10, 10, 14, 15 };
    cr_assert_arr_eq(r.dx[0].data, want_dx, sizeof want_dx);
    dn_test_run_free(&r);
}

/* From far below to far above saturation, against double precision. */
static const float extremes[] = { -1e4f, -100.0f, -30.0f, -1.0f, 0.0f, 1.0f, 30.0f, 100.0f, 1e4f };
enum { N_EXTREMES = sizeof extremes / sizeof *extremes };

Test(sigmoid_forward, extremes)
{
    float x[N_EXTREMES];
    memcpy(x, extremes, sizeof x);
    dn_tensor in = TENSOR(DN_F32, x, N_EXTREMES);
    dn_test_run s = dn_test_run_new(&dn_op_sigmoid, "{}", 1, &in, 1);
    dn_test_run_forward(&s, 1, false);
    for (int i = 0; i < N_EXTREMES; i++) {
        double want = 1.0 / (1.0 + exp(-(double)x[i]));
        float got = dn_f32(&s.y)[i];
        cr_assert(isfinite(got), "sigmoid(%g) = %g", x[i], got);
        /* relative: sigmoid(−30) ≈ 9.4e-14 must not collapse to 0 (sigmoid(−100) is a
         * float denormal, hence the absolute floor) */
        cr_assert(fabs(got - want) <= 1e-6 * want + 1e-44, "sigmoid(%g) = %.9g, want %.9g", x[i],
                  got, want);
    }
    dn_test_run_free(&s);
}

Test(tanh_forward, extremes)
{
    float x[N_EXTREMES];
    memcpy(x, extremes, sizeof x);
    dn_tensor in = TENSOR(DN_F32, x, N_EXTREMES);
    dn_test_run t = dn_test_run_new(&dn_op_tanh, "{}", 1, &in, 1);
    dn_test_run_forward(&t, 1, false);
    for (int i = 0; i < N_EXTREMES; i++)
        cr_assert(fabs(dn_f32(&t.y)[i] - tanh((double)x[i])) <= 1e-6, "tanh(%g) = %g", x[i],
                  dn_f32(&t.y)[i]);
    dn_test_run_free(&t);
}

Test(softmax_forward, rows_sum_to_one)
{
    float *x = dn_test_uniform(8 * 10, 7, -5.0f, 5.0f);
    dn_tensor in = TENSOR(DN_F32, x, 8, 10);
    dn_test_run r = dn_test_run_new(&dn_op_softmax, "{}", 1, &in, 2);
    dn_test_run_forward(&r, 2, false);
    for (int row = 0; row < 8; row++) {
        double sum = 0, ez = 0;
        for (int j = 0; j < 10; j++)
            ez += exp((double)x[row * 10 + j]);
        for (int j = 0; j < 10; j++) {
            float p = dn_f32(&r.y)[row * 10 + j];
            cr_assert(fabs(p - exp((double)x[row * 10 + j]) / ez) <= 1e-6, "row %d col %d", row, j);
            sum += p;
        }
        cr_assert(fabs(sum - 1.0) <= 1e-5, "row %d sums to %.9g", row, sum);
    }
    dn_test_run_free(&r);
    free(x);
}

Test(softmax_forward, stable_for_huge_logits)
{
    float x[] = { 1000.0f, -1000.0f, 999.0f, 0.0f, -1000.0f, -1000.0f, -1000.0f, -1000.0f };
    dn_tensor in = TENSOR(DN_F32, x, 2, 4);
    dn_test_run r = dn_test_run_new(&dn_op_softmax, "{\"axis\": -1}", 1, &in, 1);
    dn_test_run_forward(&r, 1, false);
    const float *p = dn_f32(&r.y);
    double e = exp(-1.0);
    cr_assert_float_eq(p[0], 1.0 / (1.0 + e), 1e-6);
    cr_assert_float_eq(p[1], 0.0, 1e-30);
    cr_assert_float_eq(p[2], e / (1.0 + e), 1e-6);
    for (int j = 4; j < 8; j++)
        cr_assert_float_eq(p[j], 0.25, 1e-7);
    dn_test_run_free(&r);
}

/* The channel axis of an NCHW tensor: each (n, h, w) column sums to 1. */
Test(softmax_forward, rank4_channel_axis)
{
    enum { N = 2, C = 3, HW = 6 };
    float *x = dn_test_uniform(N * C * HW, 11, -3.0f, 3.0f);
    dn_tensor in = TENSOR(DN_F32, x, N, C, 2, 3);
    dn_test_run r = dn_test_run_new(&dn_op_softmax, "{\"axis\": 1}", 1, &in, 2);
    dn_test_run_forward(&r, 2, false);
    for (int n = 0; n < N; n++)
        for (int s = 0; s < HW; s++) {
            double ez = 0;
            for (int c = 0; c < C; c++)
                ez += exp((double)x[(n * C + c) * HW + s]);
            for (int c = 0; c < C; c++) {
                int i = (n * C + c) * HW + s;
                cr_assert(fabs(dn_f32(&r.y)[i] - exp((double)x[i]) / ez) <= 1e-6, "n %d c %d s %d",
                          n, c, s);
            }
        }
    dn_test_run_free(&r);
    free(x);
}

/* p = [1/2, 1/2] and [1/4, 3/4]: the loss and gradient by hand. */
Test(softmax_cross_entropy_forward, loss_and_gradient_by_hand)
{
    float logits[] = { 0.0f, 0.0f, 0.0f, logf(3.0f) };
    int32_t labels[] = { 0, 1 };
    dn_tensor x[] = { TENSOR(DN_F32, logits, 2, 2), TENSOR(DN_I32, labels, 2) };
    dn_test_run r = dn_test_run_new(&dn_op_softmax_cross_entropy, "{}", 2, x, 2);
    cr_assert_eq(r.y.shape.rank, 0);
    cr_assert(!r.y.shape.batched);
    dn_test_run_forward(&r, 1, true);
    double want = (log(2.0) + log(4.0 / 3.0)) / 2;
    cr_assert_float_eq(dn_f32(&r.y)[0], want, 1e-6);

    /* dy = 2 onto dx = 1 everywhere (the labels get no dx) */
    dn_f32(&r.dy)[0] = 2.0f;
    float *grad = dn_f32(&r.dx[0]);
    for (int i = 0; i < 4; i++)
        grad[i] = 1.0f;
    cr_assert_null(r.dx[1].data);
    dn_test_run_backward(&r, 2);
    /* 1 + dy · (p − t) / N, N = 2 */
    float expect[] = { 1 + (0.5f - 1), 1 + 0.5f, 1 + 0.25f, 1 + (0.75f - 1) };
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(grad[i], expect[i], 1e-6, "dx[%d] = %g, want %g", i, grad[i], expect[i]);
    dn_test_run_free(&r);
}

Test(softmax_cross_entropy_forward, soft_targets_by_hand)
{
    float logits[] = { 0.0f, logf(3.0f) }, target[] = { 0.5f, 0.5f };
    dn_tensor x[] = { TENSOR(DN_F32, logits, 1, 2), TENSOR(DN_F32, target, 1, 2) };
    dn_test_run r = dn_test_run_new(&dn_op_softmax_cross_entropy, "{}", 2, x, 1);
    dn_test_run_forward(&r, 1, true);
    cr_assert_float_eq(dn_f32(&r.y)[0], -0.5 * log(0.25) - 0.5 * log(0.75), 1e-6);
    dn_test_run_free(&r);
}

Test(softmax_cross_entropy_forward, extreme_logits)
{
    float logits[] = { 1000.0f, -1000.0f, 0.0f, -1000.0f, 1000.0f, -1000.0f };
    int32_t labels[] = { 1, 1 };
    float one_hot[] = { 0, 1, 0, 0, 1, 0 };
    dn_tensor xi[] = { TENSOR(DN_F32, logits, 2, 3), TENSOR(DN_I32, labels, 2) };
    dn_tensor xf[] = { xi[0], TENSOR(DN_F32, one_hot, 2, 3) };
    for (int kind = 0; kind < 2; kind++) {
        dn_test_run r = dn_test_run_new(&dn_op_softmax_cross_entropy, "{}", 2, kind ? xf : xi, 2);
        dn_test_run_forward(&r, 1, true);
        /* row 0 loses by 2000, row 1 is certain */
        cr_assert_float_eq(dn_f32(&r.y)[0], 1000.0, 1e-3, "kind %d: %g", kind, dn_f32(&r.y)[0]);
        /* dy = 1 onto dx = 0; the targets' gradient is not asked for */
        dn_f32(&r.dy)[0] = 1.0f;
        float *grad = dn_f32(&r.dx[0]);
        memset(grad, 0, 6 * sizeof *grad);
        free(r.dx[1].data);
        r.dx[1].data = NULL;
        dn_test_run_backward(&r, 2);
        for (int i = 0; i < 6; i++)
            cr_assert(isfinite(grad[i]), "kind %d dx[%d] = %g", kind, i, grad[i]);
        cr_assert_float_eq(grad[0], 0.5, 1e-6);
        cr_assert_float_eq(grad[1], -0.5, 1e-6);
        dn_test_run_free(&r);
    }
}

/* Row losses are summed in order, so the loss is bit-identical for any thread count. */
Test(softmax_cross_entropy_forward, independent_of_threads)
{
    enum { N = 4096, C = 10 };
    float *logits = dn_test_uniform(N * C, 5, -4.0f, 4.0f);
    int32_t *labels = malloc(N * sizeof *labels);
    for (int i = 0; i < N; i++)
        labels[i] = (i * 7) % C;
    dn_tensor x[] = { TENSOR(DN_F32, logits, N, C), TENSOR(DN_I32, labels, N) };
    dn_test_run r = dn_test_run_new(&dn_op_softmax_cross_entropy, "{}", 2, x, 4);
    dn_test_run_forward(&r, 1, true);
    float one = dn_f32(&r.y)[0];
    dn_test_run_forward(&r, 4, true);
    cr_assert_eq(memcmp(&one, dn_f32(&r.y), sizeof one), 0, "%.9g vs %.9g", one, dn_f32(&r.y)[0]);
    dn_test_run_free(&r);
    free(logits);
    free(labels);
}

Test(softmax_cross_entropy_check, labels_in_range)
{
    float logits[6] = { 0 };
    int32_t labels[2];
    dn_tensor x[] = { TENSOR(DN_F32, logits, 2, 3), TENSOR(DN_I32, labels, 2) };
    dn_err err;
    dn_node_ctx c = ctx_for(2, NULL, &err);
    const dn_op *op = &dn_op_softmax_cross_entropy;
    cr_assert(op->check);

    labels[0] = 0, labels[1] = 2;
    cr_assert_eq(op->check(&c, NULL, x), DN_OK, "%s", err.msg);
    labels[1] = 3;
    dn_test_expect_status(op->check(&c, NULL, x), DN_ERR_ARG, err.msg);
    EXPECT_MSG(err.msg, "mynode", "inputs/1", "label 3 at row 1", "[0, 3)");
    labels[0] = -1, labels[1] = 0;
    dn_test_expect_status(op->check(&c, NULL, x), DN_ERR_ARG, err.msg);
    EXPECT_MSG(err.msg, "mynode", "inputs/1", "label -1 at row 0");

    float targets[6] = { 0 };
    dn_tensor xf[] = { x[0], TENSOR(DN_F32, targets, 2, 3) };
    cr_assert_eq(op->check(&c, NULL, xf), DN_OK, "float targets have no range to check");
}

enum { DROP_N = 1 << 20 };

Test(dropout_forward, training_mask)
{
    float *x = dn_test_uniform(DROP_N, 3, 1.0f, 2.0f); /* never 0: zeros in y are the mask */
    dn_tensor in = TENSOR(DN_F32, x, 1024, 1024);
    dn_test_run r = dn_test_run_new(&dn_op_dropout, "{\"ratio\": 0.3}", 1, &in, 4);
    r.seed = 42;
    dn_test_run_forward(&r, 4, true);
    int64_t zeros = 0;
    const float *y = dn_f32(&r.y);
    for (int64_t i = 0; i < DROP_N; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            cr_assert(fabsf(y[i] - x[i] / 0.7f) <= 1e-6f * y[i], "y[%lld] = %g, x = %g",
                      (long long)i, y[i], x[i]);
    }
    /* 4.6e-4 is one standard deviation of the fraction */
    double frac = (double)zeros / DROP_N;
    cr_assert(fabs(frac - 0.3) < 0.003, "fraction of zeros %g", frac);

    /* backward applies the same mask (dy U(-1, 1) onto dx = 0) */
    float *dy = dn_f32(&r.dy), *grad = dn_f32(&r.dx[0]);
    dn_rng rng;
    dn_rng_seed(&rng, 4);
    dn_test_fill_uniform(dy, DROP_N, &rng, -1.0f, 1.0f);
    memset(grad, 0, DROP_N * sizeof *grad);
    dn_test_run_backward(&r, 2);
    for (int64_t i = 0; i < DROP_N; i++)
        cr_assert_float_eq(grad[i], y[i] == 0.0f ? 0.0f : dy[i] / 0.7f, 1e-6f, "%lld",
                           (long long)i);
    dn_test_run_free(&r);
    free(x);
}

Test(dropout_forward, same_mask_for_any_thread_count)
{
    float *x = dn_test_uniform(DROP_N, 3, 1.0f, 2.0f);
    dn_tensor in = TENSOR(DN_F32, x, DROP_N);
    dn_test_run r = dn_test_run_new(&dn_op_dropout, "{}", 1, &in, 4);
    float *one = malloc(DROP_N * sizeof *one);
    r.seed = 9;
    dn_test_run_forward(&r, 1, true);
    memcpy(one, r.y.data, DROP_N * sizeof *one);
    dn_test_run_forward(&r, 4, true);
    cr_assert_eq(memcmp(one, r.y.data, DROP_N * sizeof *one), 0);
    r.seed = 10;
    dn_test_run_forward(&r, 4, true);
    cr_assert_neq(memcmp(one, r.y.data, DROP_N * sizeof *one), 0, "a new seed, a new mask");
    dn_test_run_free(&r);
    free(x);
    free(one);
}

/* Outside training forward copies x and backward adds dy to dx (here 1 everywhere).
 * dn_test_run_backward always trains, so backward's kernel is spelled out here. */
Test(dropout_forward, inference_is_identity)
{
    float x[] = { 1, -2, 3, -4, 5, -6 }, dy[] = { 1, 2, 3, 4, 5, 6 };
    dn_tensor in = TENSOR(DN_F32, x, 2, 3);
    dn_test_run r = dn_test_run_new(&dn_op_dropout, "{\"ratio\": 0.9}", 1, &in, 2);
    r.seed = 1;
    dn_test_run_forward(&r, 1, false);
    cr_assert_eq(memcmp(r.y.data, x, sizeof x), 0);
    memcpy(r.dy.data, dy, sizeof dy);
    float *grad = dn_f32(&r.dx[0]);
    for (int i = 0; i < 6; i++)
        grad[i] = 1.0f;
    dn_kernel k = { .attrs = r.attrs,
                    .n_inputs = 1,
                    .x = r.x,
                    .y = &r.y,
                    .dx = r.dx,
                    .dy = &r.dy,
                    .work = r.work,
                    .saved = r.saved,
                    .training = false,
                    .seed = r.seed,
                    .threads = 2 };
    dn_op_dropout.backward(&k);
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(grad[i], 1 + dy[i], 0.0f);
    dn_test_run_free(&r);
}

Test(concat_forward, last_axis)
{
    float a[] = { 1, 2, 3, 4 }, b[] = { 5, 6 }, c[] = { 7, 8, 9, 10, 11, 12 };
    dn_tensor x[] = { TENSOR(DN_F32, a, 2, 2), TENSOR(DN_F32, b, 2, 1), TENSOR(DN_F32, c, 2, 3) };
    dn_test_run r = dn_test_run_new(&dn_op_concat, "{\"axis\": -1}", 3, x, 1);
    cr_assert_eq(r.y.shape.d[1], 6);
    dn_test_run_forward(&r, 1, false);
    float want[] = { 1, 2, 5, 7, 8, 9, 3, 4, 6, 10, 11, 12 };
    cr_assert_arr_eq(r.y.data, want, sizeof want);
    dn_test_run_free(&r);
}

Test(flatten_forward, keeps_the_values)
{
    float s[] = { 1, 2, 3, 4, 5, 6 };
    dn_tensor img = TENSOR(DN_F32, s, 1, 3, 1, 2);
    dn_test_run f = dn_test_run_new(&dn_op_flatten, "{}", 1, &img, 1);
    cr_assert(f.y.shape.rank == 2 && f.y.shape.d[0] == 1 && f.y.shape.d[1] == 6);
    cr_assert(f.y.shape.batched);
    dn_test_run_forward(&f, 1, false);
    cr_assert_arr_eq(f.y.data, s, sizeof s);
    dn_test_run_free(&f);
}

Test(add_forward, elementwise_sum)
{
    float s[] = { 1, 2, 3, 4, 5, 6 }, c[] = { 7, 8, 9, 10, 11, 12 };
    dn_tensor pair[] = { TENSOR(DN_F32, s, 2, 3), TENSOR(DN_F32, c, 2, 3) };
    dn_test_run sum = dn_test_run_new(&dn_op_add, "{}", 2, pair, 1);
    dn_test_run_forward(&sum, 1, false);
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(dn_f32(&sum.y)[i], s[i] + c[i], 0.0f);
    dn_test_run_free(&sum);
}

/* ------------------------------------------------------------------ infer and attrs */

/* An attrs key the op does not know is an error naming it (every op here). */
static void expect_unknown_attr_rejected(const dn_op *op)
{
    dn_tensor_desc in[] = { DESC(DN_F32, true, 1, 4), DESC(DN_F32, true, 1, 4) };
    dn_err err;
    expect_infer_fails(op, "{\"bogus\": 1}", op->min_inputs, in, DN_ERR_MODEL, &err);
    EXPECT_MSG(err.msg, "attrs/bogus", "unknown attr");
}

/* A one-input float op given int32: the message names the input and its dtype. */
static void expect_int32_rejected(const dn_op *op)
{
    dn_tensor_desc ints[] = { DESC(DN_I32, true, 1, 10) };
    dn_err err;
    expect_infer_fails(op, "{}", 1, ints, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/0", "alpha", "int32");
}

Test(relu_infer, float32_only_and_no_attrs)
{
    expect_int32_rejected(&dn_op_relu);
    expect_unknown_attr_rejected(&dn_op_relu);
}

Test(sigmoid_infer, float32_only_and_no_attrs)
{
    expect_int32_rejected(&dn_op_sigmoid);
    expect_unknown_attr_rejected(&dn_op_sigmoid);
}

Test(tanh_infer, float32_only_and_no_attrs)
{
    expect_int32_rejected(&dn_op_tanh);
    expect_unknown_attr_rejected(&dn_op_tanh);
}

Test(softmax_infer, output_shape)
{
    dn_err err;
    dn_tensor_desc out;
    dn_tensor_desc img[] = { DESC(DN_F32, true, 1, 3, 4, 5) };
    cr_assert_eq(infer_node(&dn_op_softmax, "{\"axis\": -1}", 1, img, &out, &err), DN_OK);
    cr_assert(dn_shape_equal(&out.shape, &img[0].shape) && out.shape.batched);
}

Test(softmax_infer, errors)
{
    dn_err err;
    dn_tensor_desc m[] = { DESC(DN_F32, true, 1, 10) };
    dn_tensor_desc out;
    cr_assert_eq(infer_node(&dn_op_softmax, "{\"axis\": -2}", 1, m, &out, &err), DN_OK);
    expect_infer_fails(&dn_op_softmax, "{\"axis\": 2}", 1, m, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "attrs/axis", "alpha", "[N,10]", "2");
    expect_infer_fails(&dn_op_softmax, "{\"axis\": -3}", 1, m, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "attrs/axis", "[N,10]", "-3");
    expect_infer_fails(&dn_op_softmax, "{\"axis\": \"last\"}", 1, m, DN_ERR_MODEL, &err);
    EXPECT_MSG(err.msg, "attrs/axis", "a string");
    expect_int32_rejected(&dn_op_softmax);
    expect_unknown_attr_rejected(&dn_op_softmax);
}

Test(softmax_cross_entropy_infer, scalar_loss)
{
    dn_err err;
    dn_tensor_desc out;
    dn_tensor_desc ce[] = { DESC(DN_F32, true, 1, 10), DESC(DN_I32, true, 1) };
    cr_assert_eq(infer_node(&dn_op_softmax_cross_entropy, "{}", 2, ce, &out, &err), DN_OK, "%s",
                 err.msg);
    cr_assert(out.dtype == DN_F32 && out.shape.rank == 0 && !out.shape.batched);
}

Test(softmax_cross_entropy_infer, errors)
{
    dn_err err;
    const dn_op *op = &dn_op_softmax_cross_entropy;

    dn_tensor_desc rank3[] = { DESC(DN_F32, true, 1, 3, 4), DESC(DN_I32, true, 1) };
    expect_infer_fails(op, "{}", 2, rank3, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/0", "alpha", "rank 2", "[N,3,4]");

    dn_tensor_desc int_rank2[] = { DESC(DN_F32, true, 1, 5), DESC(DN_I32, true, 1, 2) };
    expect_infer_fails(op, "{}", 2, int_rank2, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "beta", "[N,2]", "[N,5]", "[N]");

    dn_tensor_desc float_cols[] = { DESC(DN_F32, true, 1, 5), DESC(DN_F32, true, 1, 4) };
    expect_infer_fails(op, "{}", 2, float_cols, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "[N,4]", "[N,5]");

    dn_tensor_desc float_rank1[] = { DESC(DN_F32, true, 1, 5), DESC(DN_F32, true, 1) };
    expect_infer_fails(op, "{}", 2, float_rank1, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "[N]", "[N,5]");

    dn_tensor_desc rows[] = { DESC(DN_F32, false, 4, 5), DESC(DN_I32, false, 3) };
    expect_infer_fails(op, "{}", 2, rows, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "[3]", "[4,5]", "3 rows");

    dn_tensor_desc unbatched[] = { DESC(DN_F32, true, 1, 5), DESC(DN_I32, false, 1) };
    expect_infer_fails(op, "{}", 2, unbatched, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "[1]", "[N,5]");

    dn_tensor_desc wide[] = { DESC(DN_F32, true, 1, 5), DESC(DN_I64, true, 1) };
    expect_infer_fails(op, "{}", 2, wide, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "int64", "[N]", "[N,5]");

    dn_tensor_desc int_logits[] = { DESC(DN_I32, true, 1, 5), DESC(DN_I32, true, 1) };
    expect_infer_fails(op, "{}", 2, int_logits, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/0", "alpha", "int32");

    expect_unknown_attr_rejected(op);
}

Test(dropout_infer, ratio_in_range)
{
    dn_tensor_desc in[] = { DESC(DN_F32, true, 1, 4) };
    dn_err err;
    expect_infer_fails(&dn_op_dropout, "{\"ratio\": 1}", 1, in, DN_ERR_MODEL, &err);
    EXPECT_MSG(err.msg, "attrs/ratio", "[0, 1)");
    expect_infer_fails(&dn_op_dropout, "{\"ratio\": -0.1}", 1, in, DN_ERR_MODEL, &err);
    EXPECT_MSG(err.msg, "attrs/ratio", "-0.1");
    expect_infer_fails(&dn_op_dropout, "{\"ratio\": true}", 1, in, DN_ERR_MODEL, &err);
    EXPECT_MSG(err.msg, "attrs/ratio", "a boolean");
    dn_tensor_desc out;
    cr_assert_eq(infer_node(&dn_op_dropout, "{\"ratio\": 0}", 1, in, &out, &err), DN_OK);
    cr_assert_eq(infer_node(&dn_op_dropout, "{\"ratio\": 0.99}", 1, in, &out, &err), DN_OK);
    expect_int32_rejected(&dn_op_dropout);
    expect_unknown_attr_rejected(&dn_op_dropout);
}

Test(flatten_infer, output_shape)
{
    dn_err err;
    dn_tensor_desc out;
    dn_tensor_desc img[] = { DESC(DN_F32, true, 1, 3, 4, 5) };
    cr_assert_eq(infer_node(&dn_op_flatten, "{}", 1, img, &out, &err), DN_OK, "%s", err.msg);
    cr_assert(out.shape.rank == 2 && out.shape.d[1] == 60 && out.shape.batched);
}

Test(flatten_infer, errors)
{
    dn_err err;
    dn_tensor_desc v[] = { DESC(DN_F32, true, 1) };
    expect_infer_fails(&dn_op_flatten, "{}", 1, v, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/0", "alpha", "[N]", "rank 2");
    expect_int32_rejected(&dn_op_flatten);
    expect_unknown_attr_rejected(&dn_op_flatten);
}

Test(add_infer, errors)
{
    dn_err err;
    dn_tensor_desc cols[] = { DESC(DN_F32, true, 1, 3), DESC(DN_F32, true, 1, 4) };
    expect_infer_fails(&dn_op_add, "{}", 2, cols, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "alpha", "beta", "[N,3]", "[N,4]");

    dn_tensor_desc ranks[] = { DESC(DN_F32, true, 1, 12), DESC(DN_F32, true, 1, 3, 4) };
    expect_infer_fails(&dn_op_add, "{}", 2, ranks, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "[N,12]", "[N,3,4]");

    dn_tensor_desc batch[] = { DESC(DN_F32, true, 1, 4), DESC(DN_F32, false, 1, 4) };
    expect_infer_fails(&dn_op_add, "{}", 2, batch, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "[N,4]", "[1,4]");

    dn_tensor_desc ints[] = { DESC(DN_F32, true, 1, 4), DESC(DN_I32, true, 1, 4) };
    expect_infer_fails(&dn_op_add, "{}", 2, ints, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "beta", "int32");

    expect_unknown_attr_rejected(&dn_op_add);
}

Test(concat_infer, output_shapes)
{
    dn_err err;
    dn_tensor_desc out;
    dn_tensor_desc parts[] = { DESC(DN_F32, true, 1, 3, 4, 5), DESC(DN_F32, true, 1, 2, 4, 5),
                               DESC(DN_F32, true, 1, 1, 4, 5) };
    cr_assert_eq(infer_node(&dn_op_concat, "{}", 3, parts, &out, &err), DN_OK, "%s", err.msg);
    cr_assert(out.shape.rank == 4 && out.shape.d[1] == 6 && out.shape.d[2] == 4 &&
              out.shape.batched);

    dn_tensor_desc fixed[] = { DESC(DN_F32, false, 2, 3), DESC(DN_F32, false, 4, 3) };
    cr_assert_eq(infer_node(&dn_op_concat, "{\"axis\": 0}", 2, fixed, &out, &err), DN_OK, "%s",
                 err.msg);
    cr_assert(out.shape.d[0] == 6 && !out.shape.batched);
}

Test(concat_infer, errors)
{
    dn_err err;
    dn_tensor_desc third[] = { DESC(DN_F32, true, 1, 3, 4), DESC(DN_F32, true, 1, 2, 4),
                               DESC(DN_F32, true, 1, 3, 5) };
    expect_infer_fails(&dn_op_concat, "{}", 3, third, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/2", "gamma", "alpha", "[N,3,5]", "[N,3,4]");

    dn_tensor_desc rank[] = { DESC(DN_F32, true, 1, 3, 4), DESC(DN_F32, true, 1, 3) };
    expect_infer_fails(&dn_op_concat, "{}", 2, rank, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "beta", "[N,3]", "[N,3,4]");

    /* on the last axis the channel dims must agree */
    dn_tensor_desc last[] = { DESC(DN_F32, true, 1, 3, 4), DESC(DN_F32, true, 1, 2, 4) };
    expect_infer_fails(&dn_op_concat, "{\"axis\": -1}", 2, last, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "[N,2,4]", "[N,3,4]");

    dn_tensor_desc two[] = { DESC(DN_F32, true, 1, 3), DESC(DN_F32, true, 1, 3) };
    expect_infer_fails(&dn_op_concat, "{\"axis\": 2}", 2, two, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "attrs/axis", "[N,3]");
    expect_infer_fails(&dn_op_concat, "{\"axis\": -3}", 2, two, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "attrs/axis", "-3");
    expect_infer_fails(&dn_op_concat, "{\"axis\": 0}", 2, two, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "attrs/axis", "batch", "[N,3]");

    dn_tensor_desc ints[] = { DESC(DN_F32, true, 1, 3), DESC(DN_I32, true, 1, 3) };
    expect_infer_fails(&dn_op_concat, "{}", 2, ints, DN_ERR_SHAPE, &err);
    EXPECT_MSG(err.msg, "inputs/1", "beta", "int32");

    expect_unknown_attr_rejected(&dn_op_concat);
    dn_tensor_desc in[] = { DESC(DN_F32, true, 1, 4), DESC(DN_F32, true, 1, 4) };
    expect_infer_fails(&dn_op_concat, "{\"axis\": 1.5}", 2, in, DN_ERR_MODEL, &err);
    EXPECT_MSG(err.msg, "attrs/axis", "1.5");
}

/* ---------------------------------------------------------------- LeakyReLU */

Test(leaky_relu_grad, distinct_values_default_and_wide_alpha)
{
    dn_gc_input in[] = { F32(DN_GC_DISTINCT, 3, 4, 5) };
    expect_grad(&dn_op_leaky_relu, "{}", 1, in);
    expect_grad(&dn_op_leaky_relu, "{\"alpha\": 0.3}", 1, in);
    expect_grad(&dn_op_leaky_relu, "{\"alpha\": 2.5}", 1, in);
}

Test(leaky_relu_forward, by_hand)
{
    float x[] = { -2.0f, -0.5f, 0.0f, 0.25f, 3.0f, -100.0f };
    dn_tensor in[] = { { DN_F32, dn_shape_make(1, (int64_t[]){ 6 }, true), x } };
    dn_test_run r = dn_test_run_new(&dn_op_leaky_relu, "{\"alpha\": 0.2}", 1, in, 1);
    dn_test_run_forward(&r, 1, false);
    float want[] = { -0.4f, -0.1f, 0.0f, 0.25f, 3.0f, -20.0f };
    dn_test_expect_close(dn_f32(&r.y), want, 6, 1e-6f, "alpha 0.2");
    dn_test_run_free(&r);
    r = dn_test_run_new(&dn_op_leaky_relu, "{}", 1, in, 1);
    dn_test_run_forward(&r, 1, false);
    float def[] = { -0.02f, -0.005f, 0.0f, 0.25f, 3.0f, -1.0f };
    dn_test_expect_close(dn_f32(&r.y), def, 6, 1e-6f, "default alpha 0.01");
    dn_test_run_free(&r);
}

Test(leaky_relu_infer, rejects_negative_and_non_numeric_alpha_and_unknown_attrs)
{
    const char *bad[] = { "{\"alpha\": -0.1}", "{\"alpha\": \"big\"}", "{\"slope\": 0.1}" };
    for (int i = 0; i < 3; i++) {
        cJSON *attrs = cJSON_Parse(bad[i]);
        dn_err err = { 0 };
        dn_node_ctx c = { .file = "model.json", .node = "act1", .attrs = attrs, .err = &err };
        unsigned char a[64];
        cr_assert_neq(dn_op_leaky_relu.parse_attrs(&c, a), DN_OK, "%s accepted", bad[i]);
        cr_assert(strstr(err.msg, "act1") && strstr(err.msg, "attrs/"), "%s", err.msg);
        cJSON_Delete(attrs);
    }
}
