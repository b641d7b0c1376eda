/*
 * test_ops_fast.c — the fast paths of the non-conv kernels, against the plain rules they
 * replace:
 *   - the in-place ops (ReLU, Sigmoid, Tanh, Dropout, Flatten) give the same forward and
 *     backward when y is x's buffer;
 *   - MaxPool's 2×2 loop and its vectorised general path pick the same value and argmax as a
 *     direct scan (ties to the first, the last NaN wins, padding never wins), AvgPool's 2×2
 *     loops give the same bits as direct loops;
 *   - LRN's sliding window sums agree with direct sums;
 *   - Dropout's inlined hash draws exactly dn_rng_hash_uniform's mask;
 *   - every kernel gives the same bits on 1 and 2 threads, on tensors large enough to split.
 * Kernels run in helpers.h's harness (y, workspace and saved state start as NaN); each op's
 * tests are in the suite <op>_fast.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "ops/op.h"
#include "ops/pool.h"
#include "runtime/rng.h"

extern const dn_op dn_op_relu, dn_op_sigmoid, dn_op_tanh, dn_op_dropout, dn_op_flatten,
    dn_op_maxpool, dn_op_avgpool, dn_op_lrn, dn_op_softmax, dn_op_softmax_cross_entropy, dn_op_add,
    dn_op_concat, dn_op_affine;

/* ---------------------------------------------------------------- in place */

/* x with the values that stress a select: NaN, ±inf, ±0, huge and tiny. */
static float *awkward_floats(int64_t n, uint64_t seed)
{
    float *x = dn_test_uniform(n, seed, -2.0f, 2.0f);
    const float special[] = { NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e30f, -1e30f, 1e-40f };
    for (int64_t i = 0; i < n; i += 97)
        x[i] = special[(i / 97) % 8];
    return x;
}

/* The op run out of place, then in place (y on x's buffer, as the planner does): the same y,
 * and after a training forward the same dx from backward. */
static void expect_inplace_same(const dn_op *op, const char *attrs, bool training, int rank,
                                const int64_t *dims)
{
    cr_assert(op->inplace, "%s is not marked in-place", op->name);
    cr_assert_eq(op->backward_reads_inputs, 0u, "%s: backward reads x", op->name);
    dn_tensor x = { DN_F32, dn_shape_make(rank, dims, true), NULL };
    int64_t n = dn_shape_numel(&x.shape);
    x.data = awkward_floats(n, 3);
    for (int threads = 1; threads <= 2; threads++) {
        char what[96];
        snprintf(what, sizeof what, "%s %s in place, %d threads", op->name, attrs, threads);
        dn_test_run out = dn_test_run_new(op, attrs, 1, &x, 2);
        dn_tensor xi = { DN_F32, x.shape, dn_test_copy(x.data, n) };
        dn_test_run in = dn_test_run_new(op, attrs, 1, &xi, 2);
        free(in.y.data);
        in.y.data = xi.data;
        dn_test_run_forward(&out, threads, training);
        dn_test_run_forward(&in, threads, training);
        dn_test_expect_same_bits(xi.data, out.y.data, n, what);
        if (training) {
            dn_test_run_backward(&out, threads);
            dn_test_run_backward(&in, threads);
            dn_test_expect_same_bits(in.dx[0].data, out.dx[0].data, n, what);
        }
        in.y.data = NULL;
        free(xi.data);
        dn_test_run_free(&in);
        dn_test_run_free(&out);
    }
    free(x.data);
}

/* A small tensor, and one of 256 Ki elements that the kernels split across threads. */
static void expect_inplace_small_and_split(const dn_op *op)
{
    expect_inplace_same(op, "{}", true, DIMS(3, 5, 7, 11));
    expect_inplace_same(op, "{}", true, DIMS(4, 64, 32, 32));
}

Test(relu_fast, in_place_small_and_split) { expect_inplace_small_and_split(&dn_op_relu); }
Test(sigmoid_fast, in_place_small_and_split) { expect_inplace_small_and_split(&dn_op_sigmoid); }
Test(tanh_fast, in_place_small_and_split) { expect_inplace_small_and_split(&dn_op_tanh); }
Test(flatten_fast, in_place_small_and_split) { expect_inplace_small_and_split(&dn_op_flatten); }

Test(dropout_fast, in_place_training_and_inference)
{
    expect_inplace_same(&dn_op_dropout, "{\"ratio\": 0.3}", true, DIMS(3, 5, 7, 11));
    expect_inplace_same(&dn_op_dropout, "{\"ratio\": 0.3}", true, DIMS(4, 64, 32, 32));
    expect_inplace_same(&dn_op_dropout, "{}", false, DIMS(3, 5, 7, 11));
}

/* ---------------------------------------------------------------- pooling */

/* The rule, written plainly: window rows/columns clipped to the image, scanned in row-major
 * order, a later pixel winning when larger or NaN. */
static void direct_maxpool(const float *x, int64_t h, int64_t w, const int64_t k[2],
                           const int64_t s[2], const int64_t p[2], int64_t oh, int64_t ow, float *y,
                           int32_t *arg)
{
    for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
            int64_t best = -1;
            for (int64_t a = i * s[0] - p[0]; a < i * s[0] - p[0] + k[0]; a++)
                for (int64_t b = j * s[1] - p[1]; b < j * s[1] - p[1] + k[1]; b++) {
                    if (a < 0 || a >= h || b < 0 || b >= w)
                        continue;
                    float v = x[a * w + b];
                    if (best < 0 || v > x[best] || isnan(v))
                        best = a * w + b;
                }
            y[i * ow + j] = x[best];
            arg[i * ow + j] = (int32_t)best;
        }
}

static void direct_avgpool(const float *x, int64_t h, int64_t w, const int64_t k[2],
                           const int64_t s[2], const int64_t p[2], int64_t oh, int64_t ow, float *y)
{
    for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
            float sum = 0.0f;
            for (int64_t a = i * s[0] - p[0]; a < i * s[0] - p[0] + k[0]; a++)
                for (int64_t b = j * s[1] - p[1]; b < j * s[1] - p[1] + k[1]; b++)
                    if (a >= 0 && a < h && b >= 0 && b < w)
                        sum += x[a * w + b];
            y[i * ow + j] = sum * (1.0f / ((float)k[0] * (float)k[1]));
        }
}

static void direct_avgpool_grad(const float *dy, int64_t h, int64_t w, const int64_t k[2],
                                const int64_t s[2], const int64_t p[2], int64_t oh, int64_t ow,
                                float *dx)
{
    for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
            float share = dy[i * ow + j] * (1.0f / ((float)k[0] * (float)k[1]));
            for (int64_t a = i * s[0] - p[0]; a < i * s[0] - p[0] + k[0]; a++)
                for (int64_t b = j * s[1] - p[1]; b < j * s[1] - p[1] + k[1]; b++)
                    if (a >= 0 && a < h && b >= 0 && b < w)
                        dx[a * w + b] += share;
        }
}

/* Few distinct values (many ties), some NaNs. */
static float *tied_floats(int64_t n, uint64_t seed, bool nans)
{
    float *x = dn_test_uniform(n, seed, -2.0f, 2.0f);
    for (int64_t i = 0; i < n; i++)
        x[i] = nans && i % 23 == 5 ? NAN : floorf(x[i] * 2.0f);
    return x;
}

typedef struct pool_case {
    int64_t k[2], s[2], p[2], h, w;
} pool_case;

/* Every window shape, stride and pad up to small sizes, on images from 1×1 to 9×8, run
 * through the op's forward on one plane-batch of 2×3 planes. */
static void each_pool_case(void (*check)(const pool_case *c, const char *attrs))
{
    for (int64_t kh = 1; kh <= 4; kh++)
        for (int64_t kw = 1; kw <= 3; kw++)
            for (int64_t sh = 1; sh <= 3; sh++)
                for (int64_t sw = 1; sw <= 3; sw++)
                    for (int64_t ph = 0; ph <= kh / 2; ph++)
                        for (int64_t pw = 0; pw <= kw / 2; pw++)
                            for (int64_t h = 1; h <= 9; h += 2)
                                for (int64_t w = 1; w <= 8; w += 1) {
                                    if (h + 2 * ph < kh || w + 2 * pw < kw)
                                        continue;
                                    pool_case c = { { kh, kw }, { sh, sw }, { ph, pw }, h, w };
                                    char attrs[160];
                                    snprintf(attrs, sizeof attrs,
                                             "{\"kernel\": [%lld, %lld], \"stride\": [%lld, "
                                             "%lld], \"pad\": [%lld, %lld]}",
                                             (long long)kh, (long long)kw, (long long)sh,
                                             (long long)sw, (long long)ph, (long long)pw);
                                    check(&c, attrs);
                                }
}

static void check_maxpool(const pool_case *c, const char *attrs)
{
    int64_t planes = 6, n = planes * c->h * c->w;
    dn_tensor x = { DN_F32, dn_shape_make(DIMS(2, 3, c->h, c->w), true),
                    tied_floats(n, (uint64_t)(c->h * 16 + c->w), true) };
    dn_test_run r = dn_test_run_new(&dn_op_maxpool, attrs, 1, &x, 2);
    dn_test_run_forward(&r, 1, true);
    int64_t oh = r.y.shape.d[2], ow = r.y.shape.d[3], out = oh * ow;
    float *want = malloc((size_t)out * sizeof *want);
    int32_t *arg = malloc((size_t)out * sizeof *arg);
    for (int64_t i = 0; i < planes; i++) {
        direct_maxpool(dn_f32(&x) + i * c->h * c->w, c->h, c->w, c->k, c->s, c->p, oh, ow, want,
                       arg);
        for (int64_t o = 0; o < out; o++) {
            int32_t got = ((int32_t *)r.saved)[i * out + o];
            cr_assert_eq(got, arg[o],
                         "%s on %lldx%lld, plane %lld output %lld: argmax %d, "
                         "expected %d",
                         attrs, (long long)c->h, (long long)c->w, (long long)i, (long long)o, got,
                         arg[o]);
        }
        dn_test_expect_same_bits(dn_f32(&r.y) + i * out, want, out, attrs);
    }
    free(want), free(arg), free(x.data);
    dn_test_run_free(&r);
}

Test(maxpool_fast, every_window_matches_the_rule) { each_pool_case(check_maxpool); }

/* Rows of many windows at column stride 2 (AlexNet's overlapping pools), where a faster row
 * loop would block the windows: widths 16 to 41, every window up to 3 × 3. */
Test(maxpool_fast, wide_rows_at_column_stride_2)
{
    for (int64_t kh = 1; kh <= 3; kh++)
        for (int64_t kw = 1; kw <= 3; kw++)
            for (int64_t sh = 1; sh <= 2; sh++)
                for (int64_t ph = 0; ph <= kh / 2; ph++)
                    for (int64_t pw = 0; pw <= kw / 2; pw++)
                        for (int64_t w = 16; w <= 41; w++) {
                            pool_case c = { { kh, kw }, { sh, 2 }, { ph, pw }, 5, w };
                            char attrs[160];
                            snprintf(attrs, sizeof attrs,
                                     "{\"kernel\": [%lld, %lld], \"stride\": [%lld, 2], "
                                     "\"pad\": [%lld, %lld]}",
                                     (long long)kh, (long long)kw, (long long)sh, (long long)ph,
                                     (long long)pw);
                            check_maxpool(&c, attrs);
                        }
}

/* The 2×2 plane loop with and without AVX-512 (the op takes the wider one where the machine
 * has it, so this is what runs the other there): widths 2 to 41 (up to three vectors of
 * outputs, the last partial), odd widths (the last column unused), ties and NaNs. */
Test(maxpool_fast, plane_2x2_same_winners_with_and_without_avx512)
{
    for (int64_t w = 2; w <= 41; w++) {
        dn_pool_geom g = {
            .planes = 1, .h = 6, .w = w, .oh = 3, .ow = w / 2, .kh = 2, .kw = 2, .sh = 2, .sw = 2
        };
        float *x = tied_floats(6 * w, (uint64_t)w, true), y[2][3 * 20];
        int32_t arg[2][3 * 20];
        for (int v = 0; v < 2; v++)
            dn_maxpool_plane_2x2(&g, x, y[v], arg[v], v == 1);
        for (int64_t o = 0; o < g.oh * g.ow; o++)
            cr_assert_eq(arg[1][o], arg[0][o], "width %lld, output %lld: argmax %d, %d expected",
                         (long long)w, (long long)o, arg[1][o], arg[0][o]);
        dn_test_expect_same_bits(y[1], y[0], g.oh * g.ow, "the 2x2 plane");
        free(x);
    }
}

static void check_avgpool(const pool_case *c, const char *attrs)
{
    int64_t planes = 6, n = planes * c->h * c->w;
    dn_tensor x = { DN_F32, dn_shape_make(DIMS(2, 3, c->h, c->w), true),
                    dn_test_uniform(n, (uint64_t)(c->h * 16 + c->w), -2.0f, 2.0f) };
    dn_test_run r = dn_test_run_new(&dn_op_avgpool, attrs, 1, &x, 2);
    float *dx0 = dn_test_copy(r.dx[0].data, n);
    dn_test_run_forward(&r, 1, true);
    dn_test_run_backward(&r, 1);
    int64_t oh = r.y.shape.d[2], ow = r.y.shape.d[3], out = oh * ow;
    float *want = malloc((size_t)out * sizeof *want);
    for (int64_t i = 0; i < planes; i++) {
        direct_avgpool(dn_f32(&x) + i * c->h * c->w, c->h, c->w, c->k, c->s, c->p, oh, ow, want);
        dn_test_expect_same_bits(dn_f32(&r.y) + i * out, want, out, attrs);
        direct_avgpool_grad(dn_f32(&r.dy) + i * out, c->h, c->w, c->k, c->s, c->p, oh, ow,
                            dx0 + i * c->h * c->w);
    }
    dn_test_expect_same_bits(r.dx[0].data, dx0, n, attrs);
    free(want), free(dx0), free(x.data);
    dn_test_run_free(&r);
}

Test(avgpool_fast, every_window_matches_direct_loops) { each_pool_case(check_avgpool); }

/* ---------------------------------------------------------------- LRN */

/* y and dx of LRN from the definition (op.c's header), in double. */
static void direct_lrn(const float *x, const float *dy, int64_t n, int64_t c, int64_t inner,
                       int64_t size, double alpha, double beta, double k, double *y, double *dx)
{
    int64_t before = size / 2, after = (size - 1) / 2;
    double *s = malloc((size_t)(n * c * inner) * sizeof *s);
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < inner; i++) {
                double sum = 0;
                for (int64_t d = ch - before; d <= ch + after; d++)
                    if (d >= 0 && d < c) {
                        double v = x[(b * c + d) * inner + i];
                        sum += v * v;
                    }
                int64_t at = (b * c + ch) * inner + i;
                s[at] = k + alpha / (double)size * sum;
                y[at] = x[at] * pow(s[at], -beta);
            }
    for (int64_t b = 0; b < n; b++)
        for (int64_t j = 0; j < c; j++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t at = (b * c + j) * inner + i;
                double g = dy[at] * pow(s[at], -beta);
                for (int64_t ch = j - after; ch <= j + before; ch++)
                    if (ch >= 0 && ch < c) {
                        int64_t o = (b * c + ch) * inner + i;
                        g -= 2.0 * alpha * beta / (double)size * x[at] * dy[o] * x[o] *
                             pow(s[o], -beta - 1.0);
                    }
                dx[at] = g;
            }
    free(s);
}

Test(lrn_fast, sliding_sums_match_direct_sums)
{
    /* Sizes odd and even, smaller and larger than C; 700 spatial positions span two work
     * items; values up to ±30 make the squares large enough to matter against k. */
    int64_t sizes[] = { 1, 2, 5, 6, 13 }, n = 2, c = 9, inner = 700, total = n * c * inner;
    float *x = dn_test_uniform(total, 8, -2.0f, 2.0f);
    for (int64_t i = 0; i < total; i++)
        x[i] *= 15.0f;
    double *y = malloc((size_t)total * sizeof *y), *dx = malloc((size_t)total * sizeof *dx);
    for (int t = 0; t < 5; t++) {
        char attrs[128];
        snprintf(attrs, sizeof attrs,
                 "{\"size\": %lld, \"alpha\": 0.01, \"beta\": 0.75, "
                 "\"k\": 2}",
                 (long long)sizes[t]);
        dn_tensor xt = { DN_F32, dn_shape_make(DIMS(n, c, 7, 100), true), x };
        dn_test_run r = dn_test_run_new(&dn_op_lrn, attrs, 1, &xt, 2);
        float *dx0 = dn_test_copy(r.dx[0].data, total);
        dn_test_run_forward(&r, 2, true);
        dn_test_run_backward(&r, 2);
        direct_lrn(x, r.dy.data, n, c, inner, sizes[t], 0.01, 0.75, 2.0, y, dx);
        for (int64_t i = 0; i < total; i++) {
            float got = dn_f32(&r.y)[i], grad = dn_f32(&r.dx[0])[i] - dx0[i];
            cr_assert(fabs(got - y[i]) <= 2e-6 * fabs(y[i]) + 1e-30,
                      "%s y[%lld] = %.9g, want "
                      "%.9g",
                      attrs, (long long)i, got, y[i]);
            cr_assert(fabs(grad - dx[i]) <= 1e-4 * (fabs(dx[i]) + 1e-3),
                      "%s dx[%lld] = %.9g, "
                      "want %.9g",
                      attrs, (long long)i, grad, dx[i]);
        }
        free(dx0);
        dn_test_run_free(&r);
    }
    free(x), free(y), free(dx);
}

/* ---------------------------------------------------------------- Dropout */

Test(dropout_fast, mask_is_dn_rng_hash_uniform)
{
    const char *ratios[] = { "0", "0.3", "0.5", "0.999" };
    const float values[] = { 0.0f, 0.3f, 0.5f, 0.999f };
    int64_t n = 100003;
    dn_tensor x = { DN_F32, dn_shape_make(DIMS(n), true), dn_test_uniform(n, 5, -2.0f, 2.0f) };
    for (int t = 0; t < 4; t++) {
        char attrs[64];
        snprintf(attrs, sizeof attrs, "{\"ratio\": %s}", ratios[t]);
        dn_test_run r = dn_test_run_new(&dn_op_dropout, attrs, 1, &x, 2);
        dn_test_run_forward(&r, 2, true);
        float scale = (float)(1.0 / (1.0 - strtod(ratios[t], NULL))); /* as parse_attrs */
        for (int64_t i = 0; i < n; i++) {
            bool kept = dn_rng_hash_uniform(1234, (uint64_t)i) >= values[t];
            float want = dn_f32(&x)[i] * (kept ? scale : 0.0f);
            cr_assert(dn_f32(&r.y)[i] == want, "ratio %s, element %lld: %g, want %g", ratios[t],
                      (long long)i, dn_f32(&r.y)[i], want);
        }
        dn_test_run_free(&r);
    }
    free(x.data);
}

/* ---------------------------------------------------------------- 1 and 2 threads */

/* Forward (training) then backward on 1 thread and on 2: the same bits in y and every dx. */
static void expect_thread_independent(const dn_op *op, const char *attrs, int n_in,
                                      const dn_tensor *x)
{
    dn_test_run one = dn_test_run_new(op, attrs, n_in, x, 2);
    dn_test_run two = dn_test_run_new(op, attrs, n_in, x, 2);
    dn_test_run_forward(&one, 1, true);
    dn_test_run_forward(&two, 2, true);
    char what[96];
    snprintf(what, sizeof what, "%s %s: y", op->name, attrs);
    dn_test_expect_same_bits(one.y.data, two.y.data, dn_shape_numel(&one.y.shape), what);
    dn_test_run_backward(&one, 1);
    dn_test_run_backward(&two, 2);
    for (int i = 0; i < n_in; i++)
        if (one.dx[i].data) {
            snprintf(what, sizeof what, "%s %s: dx[%d]", op->name, attrs, i);
            dn_test_expect_same_bits(one.dx[i].data, two.dx[i].data,
                                     dn_shape_numel(&one.dx[i].shape), what);
        }
    dn_test_run_free(&one);
    dn_test_run_free(&two);
}

/* One input of 8×32×32×32 elements U(−2, 2). */
static void expect_same_bits_on_one_input(const dn_op *op, const char *attrs)
{
    int64_t n = 8 * 32 * 32 * 32;
    dn_tensor x = { DN_F32, dn_shape_make(DIMS(8, 32, 32, 32), true),
                    dn_test_uniform(n, 1, -2.0f, 2.0f) };
    expect_thread_independent(op, attrs, 1, &x);
    free(x.data);
}

/* Two such inputs. */
static void expect_same_bits_on_two_inputs(const dn_op *op, const char *attrs)
{
    int64_t n = 8 * 32 * 32 * 32;
    dn_shape s = dn_shape_make(DIMS(8, 32, 32, 32), true);
    dn_tensor pair[] = { { DN_F32, s, dn_test_uniform(n, 1, -2.0f, 2.0f) },
                         { DN_F32, s, dn_test_uniform(n, 2, -2.0f, 2.0f) } };
    expect_thread_independent(op, attrs, 2, pair);
    free(pair[0].data), free(pair[1].data);
}

Test(relu_fast, same_bits_on_1_and_2_threads) { expect_same_bits_on_one_input(&dn_op_relu, "{}"); }

Test(sigmoid_fast, same_bits_on_1_and_2_threads)
{
    expect_same_bits_on_one_input(&dn_op_sigmoid, "{}");
}

Test(tanh_fast, same_bits_on_1_and_2_threads) { expect_same_bits_on_one_input(&dn_op_tanh, "{}"); }

Test(dropout_fast, same_bits_on_1_and_2_threads)
{
    expect_same_bits_on_one_input(&dn_op_dropout, "{}");
}

Test(flatten_fast, same_bits_on_1_and_2_threads)
{
    expect_same_bits_on_one_input(&dn_op_flatten, "{}");
}

Test(maxpool_fast, same_bits_on_1_and_2_threads)
{
    expect_same_bits_on_one_input(&dn_op_maxpool, "{\"kernel\": 2}");
    expect_same_bits_on_one_input(&dn_op_maxpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1}");
}

Test(avgpool_fast, same_bits_on_1_and_2_threads)
{
    expect_same_bits_on_one_input(&dn_op_avgpool, "{\"kernel\": 2}");
    expect_same_bits_on_one_input(&dn_op_avgpool, "{\"kernel\": 3, \"stride\": 1, \"pad\": 1}");
}

Test(lrn_fast, same_bits_on_1_and_2_threads)
{
    expect_same_bits_on_one_input(&dn_op_lrn, "{\"size\": 5, \"alpha\": 0.1}");
}

Test(softmax_fast, same_bits_on_1_and_2_threads)
{
    expect_same_bits_on_one_input(&dn_op_softmax, "{\"axis\": 1}");
    expect_same_bits_on_one_input(&dn_op_softmax, "{\"axis\": -1}");
}

Test(add_fast, same_bits_on_1_and_2_threads) { expect_same_bits_on_two_inputs(&dn_op_add, "{}"); }

Test(concat_fast, same_bits_on_1_and_2_threads)
{
    expect_same_bits_on_two_inputs(&dn_op_concat, "{\"axis\": 1}");
}

/* [256, 1000] logits, int32 labels. */
Test(softmax_cross_entropy_fast, same_bits_on_1_and_2_threads)
{
    int32_t labels[256];
    for (int i = 0; i < 256; i++)
        labels[i] = (i * 37) % 1000;
    dn_tensor sce[] = { { DN_F32, dn_shape_make(DIMS(256, 1000), true),
                          dn_test_uniform(256 * 1000, 1, -2.0f, 2.0f) },
                        { DN_I32, dn_shape_make(DIMS(256), true), labels } };
    expect_thread_independent(&dn_op_softmax_cross_entropy, "{}", 2, sce);
    free(sce[0].data);
}
