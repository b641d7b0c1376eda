/*
 * test_nan.c — NaN and ±Inf through every op, forward and backward, as PyTorch 1.13 gives
 * them (docs/reliability.md, "NaN and Inf"). One suite per op, named by its id in
 * ops/registry.c (relu_nan, maxpool_nan, ...), so `--filter 'relu*'` runs it with the op's
 * other tests.
 *
 * Each case runs one op through the kernel harness (helpers.h) on a tiny input holding NaN,
 * Inf and −Inf, with a chosen dy and each dx starting at 0, and compares y and every dx with
 * the values PyTorch computed for the same input: the torch expression is named above each
 * expectation (run once with /usr/bin/python3 and torch 1.13, then written down). A NaN
 * expected must be NaN, an Inf the same Inf, anything else equal to 1e-5 relative.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

extern const dn_op dn_op_relu, dn_op_sigmoid, dn_op_tanh, dn_op_softmax,
    dn_op_softmax_cross_entropy, dn_op_dropout, dn_op_flatten, dn_op_add, dn_op_concat, dn_op_conv,
    dn_op_maxpool, dn_op_avgpool, dn_op_affine, dn_op_lrn, dn_op_global_avg_pool, dn_op_leaky_relu,
    dn_op_batchnorm;

#define NaN NAN
#define Inf INFINITY

/* A float32 tensor over `data` (the caller's), batched as the engine's are. */
static dn_tensor tensor_of(dn_dtype t, int rank, const int64_t *dims, void *data)
{
    return (dn_tensor){ t, dn_shape_make(rank, dims, true), data };
}
#define T(data, ...) tensor_of(DN_F32, NDIMS(__VA_ARGS__), (int64_t[]){ __VA_ARGS__ }, data)
#define TI(data, ...) tensor_of(DN_I32, NDIMS(__VA_ARGS__), (int64_t[]){ __VA_ARGS__ }, data)

static void expect_values(const float *got, const float *want, int64_t n, const char *op,
                          const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        float g = got[i], w = want[i];
        bool ok = isnan(w) ? isnan(g) : isinf(w) ? g == w : fabsf(g - w) <= 1e-5f * (1 + fabsf(w));
        cr_assert(ok, "%s %s[%lld] is %g, PyTorch gives %g", op, what, (long long)i, (double)g,
                  (double)w);
    }
}

/* One case: forward on x (in training mode when `training`), then backward from dy with every
 * dx zeroed; y against want_y and dx[i] against want_dx[i] (NULL: not checked, or no dx).
 * Run on 1 and on 2 threads. */
static void check(const dn_op *op, const char *attrs, int n_in, const dn_tensor *x, bool training,
                  const float *dy, const float *want_y, const float *const *want_dx)
{
    for (int threads = 1; threads <= 2; threads++) {
        dn_test_run r = dn_test_run_new(op, attrs, n_in, x, threads);
        int64_t ny = dn_shape_numel(&r.y.shape);
        dn_test_run_forward(&r, threads, training);
        expect_values(dn_f32(&r.y), want_y, ny, op->name, "y");
        if (dy) {
            memcpy(r.dy.data, dy, (size_t)ny * sizeof(float));
            for (int i = 0; i < n_in; i++)
                if (r.dx[i].data)
                    memset(r.dx[i].data, 0, (size_t)dn_shape_numel(&r.dx[i].shape) * sizeof(float));
            dn_test_run_backward(&r, threads);
            for (int i = 0; i < n_in; i++)
                if (want_dx && want_dx[i]) {
                    char what[16];
                    snprintf(what, sizeof what, "dx%d", i);
                    expect_values(dn_f32(&r.dx[i]), want_dx[i], dn_shape_numel(&r.dx[i].shape),
                                  op->name, what);
                }
        }
        dn_test_run_free(&r);
    }
}

#define WANT(...) ((const float *const[]){ __VA_ARGS__ })
#define F(...) ((const float[]){ __VA_ARGS__ })

/* ---------------------------------------------------------------- elementwise */

static float special[] = { NaN, Inf, -Inf, -1.0f, 0.0f, 2.0f };
static const float special_dy[] = { 1, 2, 3, 4, 5, 6 };

/* x = [nan, inf, -inf, -1, 0, 2]; y = torch.relu(x); y.backward(tensor([1, 2, 3, 4, 5, 6])):
 * y = [nan, inf, 0, 0, 0, 2], x.grad = [1, 2, 0, 0, 0, 6] (threshold_backward passes the
 * gradient where y is NaN: NaN <= 0 is false). */
Test(relu_nan, nan_and_inf_propagate_as_pytorch)
{
    dn_tensor x = T(special, 1, 6);
    check(&dn_op_relu, "{}", 1, &x, true, special_dy, F(NaN, Inf, 0, 0, 0, 2),
          WANT(F(1, 2, 0, 0, 0, 6)));
}

/* x = [1, -1, nan]; torch.relu(x).backward(tensor([nan, nan, 1])): x.grad = [nan, 0, 1]
 * (where y <= 0 the gradient is 0 even for a NaN dy: a select, not a product). */
Test(relu_nan, nan_gradient_is_blocked_where_y_is_not_positive)
{
    float v[] = { 1, -1, NaN };
    dn_tensor x = T(v, 1, 3);
    check(&dn_op_relu, "{}", 1, &x, true, F(NaN, NaN, 1), F(1, 0, NaN), WANT(F(NaN, 0, 1)));
}

/* torch.sigmoid on the same x and dy: y = [nan, 1, 0, 0.26894143, 0.5, 0.88079703],
 * x.grad = [nan, 0, 0, 0.78644776, 1.25, 0.62996173]. */
Test(sigmoid_nan, nan_and_inf_propagate_as_pytorch)
{
    dn_tensor x = T(special, 1, 6);
    check(&dn_op_sigmoid, "{}", 1, &x, true, special_dy,
          F(NaN, 1, 0, 0.26894143f, 0.5f, 0.88079703f),
          WANT(F(NaN, 0, 0, 0.78644776f, 1.25f, 0.62996173f)));
}

/* torch.tanh: y = [nan, 1, -1, -0.76159418, 0, 0.96402758],
 * x.grad = [nan, 0, 0, 1.67989719, 5, 0.42390490]. */
Test(tanh_nan, nan_and_inf_propagate_as_pytorch)
{
    dn_tensor x = T(special, 1, 6);
    check(&dn_op_tanh, "{}", 1, &x, true, special_dy, F(NaN, 1, -1, -0.76159418f, 0, 0.96402758f),
          WANT(F(NaN, 0, 0, 1.67989719f, 5, 0.4239049f)));
}

/* ---------------------------------------------------------------- pooling */

/* The 2x2 fast path. x = [[1, nan, inf, 5], [3, 2, -inf, 0]] as [1,1,2,4];
 * y, idx = F.max_pool2d(x, 2, return_indices=True); y.backward(tensor([10, 20])):
 * y = [nan, inf], idx = [1, 2], x.grad = [0, 10, 20, 0, 0, 0, 0, 0]. */
Test(maxpool_nan, fast_2x2_nan_wins)
{
    float v[] = { 1, NaN, Inf, 5, 3, 2, -Inf, 0 };
    dn_tensor x = T(v, 1, 1, 2, 4);
    check(&dn_op_maxpool, "{\"kernel\": 2}", 1, &x, true, F(10, 20), F(NaN, Inf),
          WANT(F(0, 10, 20, 0, 0, 0, 0, 0)));
}

/* Two NaNs in one window: the last in row-major order wins (PyTorch's CPU kernel takes
 * `val > max || isnan(val)`). x = [[nan, 1, 7, 7], [2, nan, -inf, -inf]]:
 * y = [nan, 7], idx = [5, 2], x.grad = [0, 0, 20, 0, 0, 10, 0, 0]. */
Test(maxpool_nan, fast_2x2_last_nan_takes_the_gradient)
{
    float v[] = { NaN, 1, 7, 7, 2, NaN, -Inf, -Inf };
    dn_tensor x = T(v, 1, 1, 2, 4);
    check(&dn_op_maxpool, "{\"kernel\": 2}", 1, &x, true, F(10, 20), F(NaN, 7),
          WANT(F(0, 0, 20, 0, 0, 10, 0, 0)));
}

/* The general path. x = [[0, 1, 2, 3], [4, nan, 5, 6], [7, 8, 9, inf]] as [1,1,3,4];
 * F.max_pool2d(x, 3, stride=1): y = [nan, nan], idx = [5, 5], x.grad[5] = 30 (dy [10, 20]);
 * the Inf after the NaN does not displace it. */
Test(maxpool_nan, general_window_nan_wins)
{
    float v[] = { 0, 1, 2, 3, 4, NaN, 5, 6, 7, 8, 9, Inf };
    dn_tensor x = T(v, 1, 1, 3, 4);
    check(&dn_op_maxpool, "{\"kernel\": 3, \"stride\": 1}", 1, &x, true, F(10, 20), F(NaN, NaN),
          WANT(F(0, 0, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0)));
}

/* Padded windows. x = arange(16) as [1,1,4,4] with x[10] = nan, x[15] = -inf;
 * F.max_pool2d(x, 3, stride=2, padding=1): y = [5, 7, 13, nan], idx = [5, 7, 13, 10],
 * backward of ones: x.grad 1 at 5, 7, 10 and 13. */
Test(maxpool_nan, padded_window_nan_wins)
{
    float v[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, NaN, 11, 12, 13, 14, -Inf };
    dn_tensor x = T(v, 1, 1, 4, 4);
    check(&dn_op_maxpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1}", 1, &x, true, F(1, 1, 1, 1),
          F(5, 7, 13, NaN), WANT(F(0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0)));
}

/* x = [[1, nan, inf, 5, inf, 1], [3, 2, -inf, 0, 2, 3]] as [1,1,2,6]; F.avg_pool2d(x, 2),
 * backward of [4, 8, 12]: y = [nan, nan, inf], x.grad = [1, 1, 2, 2, 3, 3] twice. */
Test(avgpool_nan, nan_and_inf_propagate_as_pytorch)
{
    float v[] = { 1, NaN, Inf, 5, Inf, 1, 3, 2, -Inf, 0, 2, 3 };
    dn_tensor x = T(v, 1, 1, 2, 6);
    check(&dn_op_avgpool, "{\"kernel\": 2}", 1, &x, true, F(4, 8, 12), F(NaN, NaN, Inf),
          WANT(F(1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3)));
}

/* ---------------------------------------------------------------- products */

/* x = [[nan, 1, 2], [3, 4, 5], [6, 7, inf]] as [1,1,3,3], w = [[1, 2], [0, -1]], b = [0.5];
 * y = F.conv2d(x, w, b); y.backward(ones): y = [nan, 0.5, 4.5, -inf],
 * x.grad = [1, 3, 2, 1, 2, 1, 0, -1, -1], w.grad = [nan, 12, 20, inf], b.grad = [4]. */
Test(conv_nan, nan_and_inf_propagate_as_pytorch)
{
    float xv[] = { NaN, 1, 2, 3, 4, 5, 6, 7, Inf }, wv[] = { 1, 2, 0, -1 }, bv[] = { 0.5f };
    dn_tensor x[] = { T(xv, 1, 1, 3, 3), T(wv, 1, 1, 2, 2), T(bv, 1) };
    check(&dn_op_conv, "{\"filters\": 1, \"kernel\": 2}", 3, x, true, F(1, 1, 1, 1),
          F(NaN, 0.5f, 4.5f, -Inf),
          WANT(F(1, 3, 2, 1, 2, 1, 0, -1, -1), F(NaN, 12, 20, Inf), F(4)));
}

/* x = [[nan, 1, 2], [inf, 1, -1]], W = [[0, 1], [2, 3], [4, 5]] (in × out), b = [0.5, -0.5];
 * y = x @ W + b; y.backward(tensor([[1, 2], [3, 4]])): y = [nan, nan, nan, inf] (the zero
 * weight times Inf is NaN: the product is not skipped), x.grad = [2, 8, 14, 4, 18, 32],
 * W.grad = [nan, nan, 4, 6, -1, 0], b.grad = [4, 6]. */
Test(affine_nan, nan_and_inf_propagate_as_pytorch)
{
    float xv[] = { NaN, 1, 2, Inf, 1, -1 }, wv[] = { 0, 1, 2, 3, 4, 5 }, bv[] = { 0.5f, -0.5f };
    dn_tensor x[] = { T(xv, 2, 3), T(wv, 3, 2), T(bv, 2) };
    check(&dn_op_affine, "{}", 3, x, true, F(1, 2, 3, 4), F(NaN, NaN, NaN, Inf),
          WANT(F(2, 8, 14, 4, 18, 32), F(NaN, NaN, 4, 6, -1, 0), F(4, 6)));
}

/* A finite input meets an Inf weight: x = [[0, 1], [1, 1]], W = [[inf], [1]]; y = x @ W;
 * y.backward(ones): y = [nan, inf] (0 · inf is NaN), x.grad = [inf, 1, inf, 1],
 * W.grad = [1, 2]. */
Test(affine_nan, zero_times_inf_weight_is_nan)
{
    float xv[] = { 0, 1, 1, 1 }, wv[] = { Inf, 1 };
    dn_tensor x[] = { T(xv, 2, 2), T(wv, 2, 1) };
    check(&dn_op_affine, "{\"bias\": false}", 2, x, true, F(1, 1), F(NaN, Inf),
          WANT(F(Inf, 1, Inf, 1), F(1, 2)));
}

/* The same at batch 1, where the product is a matrix-vector one (src/runtime/gemm.c) whose
 * kernel must not skip a zero activation's weight row: x = [[0, 1]], W = [[inf, 2], [1, 3]];
 * y = x @ W; y.backward(tensor([[1, 1]])): y = [nan, 3], x.grad = [inf, 4],
 * W.grad = [[0, 0], [1, 1]]. BLIS's own gemv gave y = [1, 3]. */
Test(affine_nan, zero_times_inf_weight_is_nan_at_batch_1)
{
    float xv[] = { 0, 1 }, wv[] = { Inf, 2, 1, 3 };
    dn_tensor x[] = { T(xv, 1, 2), T(wv, 2, 2) };
    check(&dn_op_affine, "{\"bias\": false}", 2, x, true, F(1, 1), F(NaN, 3),
          WANT(F(Inf, 4), F(0, 0, 1, 1)));
}

/* ---------------------------------------------------------------- softmax and the loss */

/* x rows [nan, 1, 2], [inf, 1, 2], [-inf, 0, 0], [inf, inf, 0]; y = torch.softmax(x, 1);
 * y.backward(tensor([1, 2, 3]) per row): y = nan rows but [0, 0.5, 0.5] for the -inf row,
 * whose x.grad is [0, -0.25, 0.25]; the other rows' gradients are NaN. */
Test(softmax_nan, nan_and_inf_propagate_as_pytorch)
{
    float v[] = { NaN, 1, 2, Inf, 1, 2, -Inf, 0, 0, Inf, Inf, 0 };
    dn_tensor x = T(v, 4, 3);
    check(&dn_op_softmax, "{}", 1, &x, true, F(1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3),
          F(NaN, NaN, NaN, NaN, NaN, NaN, 0, 0.5f, 0.5f, NaN, NaN, NaN),
          WANT(F(NaN, NaN, NaN, NaN, NaN, NaN, 0, -0.25f, 0.25f, NaN, NaN, NaN)));
}

/* A NaN logit, or an Inf one on the label: F.cross_entropy(x, labels) with rows
 * [nan, 1, 2] (label 1) and [1, inf, 2] (label 1): loss nan, x.grad all nan. */
Test(softmax_cross_entropy_nan, nan_logit_gives_nan_loss)
{
    float v[] = { NaN, 1, 2, 1, Inf, 2 };
    int32_t lab[] = { 1, 1 };
    dn_tensor x[] = { T(v, 2, 3), TI(lab, 2) };
    check(&dn_op_softmax_cross_entropy, "{}", 2, x, true, F(1), F(NaN),
          WANT(F(NaN, NaN, NaN, NaN, NaN, NaN), NULL));
}

/* -inf logits: F.cross_entropy(x, labels) with rows [-inf, 0, 0] (label 1) and [0, 1, -inf]
 * (label 2, the -inf one): loss = (ln 2 + inf) / 2 = inf; x.grad = [0, -0.25, 0.25] and
 * [0.13447071, 0.36552930, -0.5] (the rows' softmax minus the label, halved). */
Test(softmax_cross_entropy_nan, minus_inf_logits_as_pytorch)
{
    float v[] = { -Inf, 0, 0, 0, 1, -Inf };
    int32_t lab[] = { 1, 2 };
    dn_tensor x[] = { T(v, 2, 3), TI(lab, 2) };
    check(&dn_op_softmax_cross_entropy, "{}", 2, x, true, F(1), F(Inf),
          WANT(F(0, -0.25f, 0.25f, 0.13447071f, 0.3655293f, -0.5f), NULL));
}

/* ---------------------------------------------------------------- LRN */

/* x [1,4,1,2] = channels [nan, 1], [1, 2], [2, inf], [3, 4];
 * y = F.local_response_norm(x, 3, alpha=1, beta=0.75, k=1); y.backward(ones):
 * y = [nan, 0.47920734, nan, 0, 0.54454559, nan, 0.85481513, 0],
 * x.grad = [nan, 0.38935596, nan, nan, nan, nan, -0.09962282, nan]. A NaN or Inf reaches
 * only the channels whose window holds it. */
Test(lrn_nan, nan_and_inf_stay_in_their_windows)
{
    float v[] = { NaN, 1, 1, 2, 2, Inf, 3, 4 };
    dn_tensor x = T(v, 1, 4, 1, 2);
    check(&dn_op_lrn, "{\"size\": 3, \"alpha\": 1, \"beta\": 0.75, \"k\": 1}", 1, &x, true,
          F(1, 1, 1, 1, 1, 1, 1, 1), F(NaN, 0.47920734f, NaN, 0, 0.54454559f, NaN, 0.85481513f, 0),
          WANT(F(NaN, 0.38935596f, NaN, NaN, NaN, NaN, -0.09962282f, NaN)));
}

/* ---------------------------------------------------------------- dropout */

/* PyTorch's dropout multiplies by the mask: F.dropout(tensor([nan, inf, -inf] * 4), 0.5,
 * training=True) gives nan wherever x is nan, ±inf where kept and nan (inf · 0) where
 * dropped; x.grad is the mask (0 or 2). The masks differ from PyTorch's (another generator),
 * so the rule is checked element by element. */
Test(dropout_nan, dropped_nan_stays_nan)
{
    enum { N = 96 };
    float v[N], ones[N];
    for (int i = 0; i < N; i++) {
        v[i] = i % 3 == 0 ? NaN : i % 3 == 1 ? Inf : -Inf;
        ones[i] = 1;
    }
    dn_tensor x = T(v, 1, N);
    dn_test_run r = dn_test_run_new(&dn_op_dropout, "{\"ratio\": 0.5}", 1, &x, 1);
    dn_test_run_forward(&r, 1, true);
    memcpy(r.dy.data, ones, sizeof ones);
    memset(r.dx[0].data, 0, sizeof ones);
    dn_test_run_backward(&r, 1);
    const float *y = dn_f32(&r.y), *mask = dn_f32(&r.dx[0]);
    int dropped_inf = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(mask[i] == 0 || mask[i] == 2, "mask[%d] = %g", i, (double)mask[i]);
        if (isnan(v[i]) || mask[i] == 0)
            cr_assert(isnan(y[i]), "y[%d] = %g for x %g, mask %g", i, (double)y[i], (double)v[i],
                      (double)mask[i]);
        else
            cr_assert_eq(y[i], v[i]);
        dropped_inf += !isnan(v[i]) && mask[i] == 0;
    }
    cr_assert_gt(dropped_inf, 0, "no Inf was dropped: the case is not exercised");
    dn_test_run_free(&r);
}

/* x = ones(6); F.dropout(x, 0.5, training=True).backward(tensor([nan] * 6)): x.grad is nan
 * everywhere, dropped or not (grad · mask, nan · 0). */
Test(dropout_nan, nan_gradient_passes_the_mask)
{
    float v[] = { 1, 1, 1, 1, 1, 1 };
    dn_tensor x = T(v, 1, 6);
    dn_test_run r = dn_test_run_new(&dn_op_dropout, "{\"ratio\": 0.5}", 1, &x, 1);
    dn_test_run_forward(&r, 1, true);
    float dy[6] = { NaN, NaN, NaN, NaN, NaN, NaN };
    memcpy(r.dy.data, dy, sizeof dy);
    memset(r.dx[0].data, 0, sizeof dy);
    dn_test_run_backward(&r, 1);
    for (int i = 0; i < 6; i++)
        cr_assert(isnan(dn_f32(&r.dx[0])[i]), "dx[%d] = %g", i, (double)dn_f32(&r.dx[0])[i]);
    dn_test_run_free(&r);
}

/* ---------------------------------------------------------------- plumbing */

/* a = [nan, inf, inf, 1], c = [1, -inf, inf, -inf]; y = a + c; y.backward(tensor([1, 2, 3,
 * nan])): y = [nan, nan, inf, -inf], a.grad = c.grad = [1, 2, 3, nan]. */
Test(add_nan, nan_and_inf_propagate_as_pytorch)
{
    float a[] = { NaN, Inf, Inf, 1 }, c[] = { 1, -Inf, Inf, -Inf };
    dn_tensor x[] = { T(a, 1, 4), T(c, 1, 4) };
    check(&dn_op_add, "{}", 2, x, true, F(1, 2, 3, NaN), F(NaN, NaN, Inf, -Inf),
          WANT(F(1, 2, 3, NaN), F(1, 2, 3, NaN)));
}

/* torch.cat([a, c], 1) with a = [[nan, inf]], c = [[-inf]]: y = [nan, inf, -inf]; backward of
 * [1, nan, 3]: a.grad = [1, nan], c.grad = [3]. */
Test(concat_nan, values_are_copied)
{
    float a[] = { NaN, Inf }, c[] = { -Inf };
    dn_tensor x[] = { T(a, 1, 2), T(c, 1, 1) };
    check(&dn_op_concat, "{}", 2, x, true, F(1, NaN, 3), F(NaN, Inf, -Inf), WANT(F(1, NaN), F(3)));
}

/* torch.flatten(x, 1) of [1,1,1,3] [nan, inf, -inf]: the same values; the gradient too. */
Test(flatten_nan, values_are_copied)
{
    float a[] = { NaN, Inf, -Inf };
    dn_tensor x = T(a, 1, 1, 1, 3);
    check(&dn_op_flatten, "{}", 1, &x, true, F(NaN, 1, -Inf), F(NaN, Inf, -Inf),
          WANT(F(NaN, 1, -Inf)));
}

/* ---------------------------------------------------------------- ops and fields added to v1 */

/* x = [nan, 1, 2, 3, 4, 5, 6, inf] as [1, 2, 2, 2], w = [2, -1] as [2, 1, 1, 1];
 * y = F.conv2d(x, w, groups=2, dilation=2); y.backward(ones): each group sees its own
 * channel only: y = [nan, 2, 4, 6, -4, -5, -6, -inf], x.grad = [2]·4 + [-1]·4,
 * w.grad = [nan, inf]. */
Test(conv_nan, grouped_dilated_keeps_nan_and_inf_in_their_group)
{
    float xv[] = { NaN, 1, 2, 3, 4, 5, 6, Inf }, wv[] = { 2, -1 };
    dn_tensor x[] = { T(xv, 1, 2, 2, 2), T(wv, 2, 1, 1, 1) };
    check(&dn_op_conv, "{\"groups\": 2, \"dilation\": 2}", 2, x, true, F(1, 1, 1, 1, 1, 1, 1, 1),
          F(NaN, 2, 4, 6, -4, -5, -6, -Inf), WANT(F(2, 2, 2, 2, -1, -1, -1, -1), F(NaN, Inf)));
}

/* x = [1 .. 8, nan] as [1, 1, 3, 3]; y = F.max_pool2d(x, 2, ceil_mode=True);
 * y.backward([1, 2, 3, 4]): the clipped last window holds only the NaN: y = [5, 6, 8, nan],
 * x.grad = [0, 0, 0, 0, 1, 2, 0, 3, 4]. */
Test(maxpool_nan, ceil_clipped_window_keeps_its_nan)
{
    float v[] = { 1, 2, 3, 4, 5, 6, 7, 8, NaN };
    dn_tensor x = T(v, 1, 1, 3, 3);
    check(&dn_op_maxpool, "{\"kernel\": 2, \"ceil\": true}", 1, &x, true, F(1, 2, 3, 4),
          F(5, 6, 8, NaN), WANT(F(0, 0, 0, 0, 1, 2, 0, 3, 4)));
}

/* x = [1 .. 8, inf] as [1, 1, 3, 3]; y = F.avg_pool2d(x, 2, ceil_mode=True);
 * y.backward([4, 8, 12, 16]): y = [3, 4.5, 7.5, inf], x.grad = [1, 1, 4, 1, 1, 4, 6, 6, 16]. */
Test(avgpool_nan, ceil_clipped_window_divides_by_its_part)
{
    float v[] = { 1, 2, 3, 4, 5, 6, 7, 8, Inf };
    dn_tensor x = T(v, 1, 1, 3, 3);
    check(&dn_op_avgpool, "{\"kernel\": 2, \"ceil\": true}", 1, &x, true, F(4, 8, 12, 16),
          F(3, 4.5f, 7.5f, Inf), WANT(F(1, 1, 4, 1, 1, 4, 6, 6, 16)));
}

/* x = [nan, 1, 2, 3, inf, 1, 2, 3] as [1, 2, 2, 2]; y = F.adaptive_avg_pool2d(x, 1);
 * y.backward([4, 8]): y = [nan, inf], x.grad = [1]·4 + [2]·4. */
Test(global_avg_pool_nan, nan_and_inf_propagate_as_pytorch)
{
    float v[] = { NaN, 1, 2, 3, Inf, 1, 2, 3 };
    dn_tensor x = T(v, 1, 2, 2, 2);
    check(&dn_op_global_avg_pool, "{}", 1, &x, true, F(4, 8), F(NaN, Inf),
          WANT(F(1, 1, 1, 1, 2, 2, 2, 2)));
}

/* x = [nan, inf, -inf, -1, 0, 2]; y = F.leaky_relu(x, 0.1); y.backward([1, 2, 3, 4, 5, 6]):
 * y = [nan, inf, -inf, -0.1, 0, 2], x.grad = [0.1, 2, 0.3, 0.4, 0.5, 6]. */
Test(leaky_relu_nan, nan_and_inf_propagate_as_pytorch)
{
    float v[] = { NaN, Inf, -Inf, -1, 0, 2 };
    dn_tensor x = T(v, 6);
    check(&dn_op_leaky_relu, "{\"alpha\": 0.1}", 1, &x, true, F(1, 2, 3, 4, 5, 6),
          F(NaN, Inf, -Inf, -0.1f, 0, 2), WANT(F(0.1f, 2, 0.3f, 0.4f, 0.5f, 6)));
}

/* x = [-inf, nan, -0, 3]; y = F.leaky_relu(x, 0.0); y.backward([1, nan, 3, 4]):
 * y = [nan, nan, -0, 3] (0·−inf), x.grad = [0, nan, 0, 4]. */
Test(leaky_relu_nan, zero_alpha_times_inf_is_nan)
{
    float v[] = { -Inf, NaN, -0.0f, 3 };
    dn_tensor x = T(v, 4);
    check(&dn_op_leaky_relu, "{\"alpha\": 0}", 1, &x, true, F(1, NaN, 3, 4), F(NaN, NaN, -0.0f, 3),
          WANT(F(0, NaN, 0, 4)));
}

/* x [2,3,1,1]: channel 0 [nan, 1], channel 1 [inf, 2], channel 2 [1, 3]; gamma [1, 0.5, 2],
 * beta [0, 1, -1], running mean 0, var 1; F.batch_norm(x, rm, rv, gamma, beta,
 * training=True), y.backward(dy = [1..6]):
 * y = [nan, nan, -2.99999, nan, nan, 0.99999], x.grad = [nan, nan, -3.0041e-05, nan, nan,
 * 3.0041e-05], gamma.grad = [nan, nan, 2.999985], beta.grad = [5, 7, 9] (dy alone);
 * the running mean becomes [nan, inf, 0.2] and the running var [nan, nan, 1.1]. A non-finite
 * value spoils its own channel only. */
Test(batchnorm_nan, nan_and_inf_spoil_their_channel_only)
{
    float v[] = { NaN, Inf, 1, 1, 2, 3 }, gamma[] = { 1, 0.5f, 2 }, beta[] = { 0, 1, -1 };
    for (int threads = 1; threads <= 2; threads++) {
        float mean[] = { 0, 0, 0 }, var[] = { 1, 1, 1 };
        dn_tensor x[] = { T(v, 2, 3, 1, 1), T(gamma, 3), T(beta, 3), T(mean, 3), T(var, 3) };
        dn_test_run r = dn_test_run_new(&dn_op_batchnorm, "{}", 5, x, threads);
        dn_test_run_forward(&r, threads, true);
        expect_values(dn_f32(&r.y), F(NaN, NaN, -2.99999f, NaN, NaN, 0.99999f), 6, "BatchNorm",
                      "y");
        expect_values(mean, F(NaN, Inf, 0.2f), 3, "BatchNorm", "running mean");
        expect_values(var, F(NaN, NaN, 1.1f), 3, "BatchNorm", "running var");
        memcpy(r.dy.data, F(1, 2, 3, 4, 5, 6), sizeof(float[6]));
        for (int i = 0; i < 3; i++)
            memset(r.dx[i].data, 0, (size_t)dn_shape_numel(&r.dx[i].shape) * sizeof(float));
        dn_test_run_backward(&r, threads);
        expect_values(dn_f32(&r.dx[0]), F(NaN, NaN, -3.004059e-05f, NaN, NaN, 3.004059e-05f), 6,
                      "BatchNorm", "dx");
        expect_values(dn_f32(&r.dx[1]), F(NaN, NaN, 2.999985f), 3, "BatchNorm", "dgamma");
        expect_values(dn_f32(&r.dx[2]), F(5, 7, 9), 3, "BatchNorm", "dbeta");
        dn_test_run_free(&r);
    }
}
