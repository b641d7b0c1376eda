/*
 * test_ops_spatial.c — Conv, MaxPool, AvgPool, Affine and LRN.
 *
 * Three kinds of test: finite-difference gradient checks (tests/gradcheck.h) over strides,
 * pads, rectangular kernels, batches and optional biases; forward values against direct
 * loops written here, independently of the ops' im2col/gemm/sliding-window code, the kernels
 * run in helpers.h's harness (y, workspace and saved state start as NaN); and attr/infer
 * errors, asserting the status and that the message names the node, the field and the shapes
 * involved.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "helpers.h"

extern const dn_op dn_op_conv, dn_op_maxpool, dn_op_avgpool, dn_op_affine, dn_op_lrn,
    dn_op_global_avg_pool;

/* ---------------------------------------------------------------- helpers */

static dn_gc_input gc_in(dn_gc_fill fill, int rank, const int64_t *dims)
{
    dn_gc_input in = { .dtype = DN_F32, .rank = rank, .fill = fill };
    memcpy(in.shape, dims, (size_t)rank * sizeof *dims);
    return in;
}

static void expect_grad(const dn_op *op, const char *attrs, int n_in, const dn_gc_input *in)
{
    dn_gc_result r = dn_gradcheck(op, attrs, n_in, in, 7);
    cr_assert(r.ok, "%s", r.msg);
    cr_assert_gt(r.checked, 0);
}

static dn_tensor_desc desc(bool batched, int rank, const int64_t *dims)
{
    return (dn_tensor_desc){ DN_F32, dn_shape_make(rank, dims, batched) };
}

/* parse_attrs then, as the loader does, infer once parsing passed and the node has its
 * inputs (fewer: the attrs are parsed for implicit_params only). Node "<node>" of
 * "model.json", its inputs called `names`. */
typedef struct probe {
    dn_status st;
    dn_err err;
    dn_tensor_desc out;
    unsigned char attrs[512];
} probe;

static probe run_infer(const dn_op *op, const char *node, const char *attrs_json, int n_in,
                       const dn_tensor_desc *in, const char *const *names)
{
    probe p;
    memset(&p, 0, sizeof p);
    cr_assert_leq(op->attrs_size, sizeof p.attrs);
    cJSON *attrs = cJSON_Parse(attrs_json);
    cr_assert_not_null(attrs, "bad test JSON: %s", attrs_json);
    dn_node_ctx c = { .file = "model.json",
                      .node = node,
                      .index = 3,
                      .n_inputs = n_in,
                      .input_names = names,
                      .attrs = attrs,
                      .err = &p.err };
    p.st = op->parse_attrs(&c, p.attrs);
    if (p.st == DN_OK && n_in >= op->min_inputs)
        p.st = op->infer(&c, p.attrs, in, &p.out);
    cJSON_Delete(attrs);
    return p;
}

static void expect_shape(const dn_shape *s, bool batched, int rank, const int64_t *dims)
{
    cr_assert_eq(s->rank, rank);
    cr_assert_eq(s->batched, batched);
    for (int i = 0; i < rank; i++)
        cr_assert_eq(s->d[i], dims[i], "dim %d: %lld, expected %lld", i, (long long)s->d[i],
                     (long long)dims[i]);
}

static dn_tensor tensor(float *data, int rank, const int64_t *dims)
{
    return (dn_tensor){ DN_F32, dn_shape_make(rank, dims, true), data };
}

/* ---------------------------------------------------------------- Conv: gradients */

Test(conv_grad, stride2_pad1_batch2_bias)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 3, 7, 7)),
                         gc_in(DN_GC_UNIFORM, DIMS(4, 3, 3, 3)), gc_in(DN_GC_UNIFORM, DIMS(4)) };
    expect_grad(&dn_op_conv, "{\"stride\": 2, \"pad\": 1}", 3, in);
}

Test(conv_grad, rectangular_kernel_pad_stride_batch3)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(3, 2, 6, 5)),
                         gc_in(DN_GC_UNIFORM, DIMS(3, 2, 3, 2)), gc_in(DN_GC_UNIFORM, DIMS(3)) };
    expect_grad(&dn_op_conv, "{\"stride\": [2, 1], \"pad\": [1, 0]}", 3, in);
}

Test(conv_grad, no_bias_wide_pad)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 3, 5, 5)),
                         gc_in(DN_GC_UNIFORM, DIMS(2, 3, 3, 3)) };
    expect_grad(&dn_op_conv, "{\"pad\": 2}", 2, in);
}

Test(conv_grad, stride_larger_than_kernel_skips_pixels)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(1, 2, 7, 8)),
                         gc_in(DN_GC_UNIFORM, DIMS(3, 2, 2, 2)), gc_in(DN_GC_UNIFORM, DIMS(3)) };
    expect_grad(&dn_op_conv, "{\"stride\": 3}", 3, in);
}

/* Large enough (col of 27 × 1600) for im2col/col2im to take their OpenMP path. */
Test(conv_grad, parallel_im2col)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 3, 40, 40)),
                         gc_in(DN_GC_UNIFORM, DIMS(5, 3, 3, 3)), gc_in(DN_GC_UNIFORM, DIMS(5)) };
    expect_grad(&dn_op_conv, "{\"pad\": 1}", 3, in);
}

/* Conv has two paths (ops/conv.c): thin kernels run per sample on the micro-kernel, packing
 * col through an index table from TABLE_MIN_BATCH samples on (plain im2col below); kernels
 * wider than PER_SAMPLE_MAX_K (512) values run one BLIS product per chunk of the batch. */
Test(conv_grad, per_sample_path_with_table_rectangular_stride_pad)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(5, 2, 6, 7)),
                         gc_in(DN_GC_UNIFORM, DIMS(3, 2, 3, 2)), gc_in(DN_GC_UNIFORM, DIMS(3)) };
    expect_grad(&dn_op_conv, "{\"stride\": [2, 1], \"pad\": [1, 2]}", 3, in);
}

Test(conv_grad, wide_kernel_takes_the_batched_path)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(3, 60, 4, 4)),
                         gc_in(DN_GC_UNIFORM, DIMS(2, 60, 3, 3)), gc_in(DN_GC_UNIFORM, DIMS(2)) };
    expect_grad(&dn_op_conv, "{\"pad\": 1, \"stride\": [1, 2]}", 3, in);
}

/* Groups and dilation (PyTorch's `groups`, `dilation`): W is [F, C/G, kh, kw]. */
Test(conv_grad, two_groups_per_sample_path_with_table)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(4, 4, 6, 5)),
                         gc_in(DN_GC_UNIFORM, DIMS(6, 2, 3, 2)), gc_in(DN_GC_UNIFORM, DIMS(6)) };
    expect_grad(&dn_op_conv, "{\"stride\": [2, 1], \"pad\": 1, \"groups\": 2}", 3, in);
}

Test(conv_grad, depthwise_direct_path_odd_sizes)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 3, 7, 5)),
                         gc_in(DN_GC_UNIFORM, DIMS(3, 1, 3, 3)), gc_in(DN_GC_UNIFORM, DIMS(3)) };
    expect_grad(&dn_op_conv, "{\"pad\": 1, \"groups\": 3}", 3, in);
}

Test(conv_grad, depthwise_multiplier_dilated_direct_path)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 2, 7, 8)),
                         gc_in(DN_GC_UNIFORM, DIMS(4, 1, 3, 3)), gc_in(DN_GC_UNIFORM, DIMS(4)) };
    expect_grad(&dn_op_conv, "{\"pad\": [2, 1], \"groups\": 2, \"dilation\": [2, 3]}", 3, in);
}

/* K = 2·5·5 = 50 per group, stride 1: the wide direct path on AVX-512 machines (its dW lanes
 * and its dx correlation, each group on a view), the per-sample path elsewhere. */
Test(conv_grad, two_groups_wide_direct_path_padded)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 4, 8, 7)),
                         gc_in(DN_GC_UNIFORM, DIMS(4, 2, 5, 5)), gc_in(DN_GC_UNIFORM, DIMS(4)) };
    expect_grad(&dn_op_conv, "{\"pad\": [2, 1], \"groups\": 2}", 3, in);
}

Test(conv_grad, dilation_stride_pad_per_sample_path)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 3, 9, 8)),
                         gc_in(DN_GC_UNIFORM, DIMS(2, 3, 3, 2)), gc_in(DN_GC_UNIFORM, DIMS(2)) };
    expect_grad(&dn_op_conv, "{\"stride\": 2, \"pad\": 1, \"dilation\": [2, 3]}", 3, in);
}

Test(conv_grad, two_groups_dilated_batched_path)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 120, 5, 5)),
                         gc_in(DN_GC_UNIFORM, DIMS(4, 60, 3, 3)), gc_in(DN_GC_UNIFORM, DIMS(4)) };
    expect_grad(&dn_op_conv, "{\"pad\": 2, \"groups\": 2, \"dilation\": 2}", 3, in);
}

/* ---------------------------------------------------------------- Conv: forward values */

typedef struct conv_case {
    int64_t n, c, h, w, f, kh, kw, sh, sw, ph, pw, oh, ow;
    int64_t groups, dh, dw; /* 0 reads as 1 */
} conv_case;

static int64_t or_one(int64_t v) { return v > 0 ? v : 1; }

static void direct_conv(const conv_case *k, const float *x, const float *w, const float *b,
                        float *y)
{
    int64_t groups = or_one(k->groups), dh = or_one(k->dh), dw = or_one(k->dw);
    int64_t cg = k->c / groups, fg = k->f / groups;
    for (int64_t n = 0; n < k->n; n++)
        for (int64_t f = 0; f < k->f; f++)
            for (int64_t p = 0; p < k->oh; p++)
                for (int64_t q = 0; q < k->ow; q++) {
                    double sum = b ? b[f] : 0.0;
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t i = 0; i < k->kh; i++)
                            for (int64_t j = 0; j < k->kw; j++) {
                                int64_t h = p * k->sh - k->ph + i * dh,
                                        v = q * k->sw - k->pw + j * dw, xc = f / fg * cg + c;
                                if (h >= 0 && h < k->h && v >= 0 && v < k->w)
                                    sum += (double)w[((f * cg + c) * k->kh + i) * k->kw + j] *
                                           x[((n * k->c + xc) * k->h + h) * k->w + v];
                            }
                    y[((n * k->f + f) * k->oh + p) * k->ow + q] = (float)sum;
                }
}

static void check_conv_forward(const conv_case *k, const char *attrs, bool bias, int threads)
{
    int64_t cg = k->c / or_one(k->groups);
    int64_t nx = k->n * k->c * k->h * k->w, nw = k->f * cg * k->kh * k->kw;
    int64_t ny = k->n * k->f * k->oh * k->ow;
    float *x = dn_test_uniform(nx, 1, -1.0f, 1.0f), *w = dn_test_uniform(nw, 2, -1.0f, 1.0f);
    float *b = dn_test_uniform(k->f, 3, -1.0f, 1.0f), *want = malloc((size_t)ny * sizeof *want);
    direct_conv(k, x, w, bias ? b : NULL, want);
    dn_tensor in[] = { tensor(x, DIMS(k->n, k->c, k->h, k->w)),
                       tensor(w, DIMS(k->f, cg, k->kh, k->kw)), tensor(b, DIMS(k->f)) };
    dn_test_run r = dn_test_run_new(&dn_op_conv, attrs, bias ? 3 : 2, in, threads);
    dn_test_run_forward(&r, threads, false);
    expect_shape(&r.y.shape, true, DIMS(k->n, k->f, k->oh, k->ow));
    dn_test_expect_close(dn_f32(&r.y), want, ny, 1e-5f, attrs);
    dn_test_run_free(&r);
    free(x), free(w), free(b), free(want);
}

Test(conv_forward, matches_direct_loops_with_pad_and_stride)
{
    /* OH = (7 + 2 − 3) / 2 + 1 = 4, OW = (6 + 0 − 2) / 1 + 1 = 5 */
    conv_case k = { .n = 2,
                    .c = 3,
                    .h = 7,
                    .w = 6,
                    .f = 4,
                    .kh = 3,
                    .kw = 2,
                    .sh = 2,
                    .sw = 1,
                    .ph = 1,
                    .pw = 0,
                    .oh = 4,
                    .ow = 5 };
    check_conv_forward(&k, "{\"stride\": [2, 1], \"pad\": [1, 0]}", true, 1);
    check_conv_forward(&k, "{\"stride\": [2, 1], \"pad\": [1, 0]}", false, 2);
}

Test(conv_forward, matches_direct_loops_on_every_path)
{
    /* Batch 6 packs through the index table; 60·3·3 = 540 kernel values take the batched
     * path. OH = (5 + 2 − 3) / 1 + 1 = 5, OW = (6 + 4 − 2) / 2 + 1 = 5. */
    conv_case thin = { .n = 6,
                       .c = 3,
                       .h = 5,
                       .w = 6,
                       .f = 7,
                       .kh = 3,
                       .kw = 2,
                       .sh = 1,
                       .sw = 2,
                       .ph = 1,
                       .pw = 2,
                       .oh = 5,
                       .ow = 5 };
    check_conv_forward(&thin, "{\"stride\": [1, 2], \"pad\": [1, 2]}", true, 2);
    check_conv_forward(&thin, "{\"stride\": [1, 2], \"pad\": [1, 2]}", false, 1);
    /* One sample, large enough for the direct path to split its rows across 2 threads. */
    conv_case rows = { .n = 1,
                       .c = 3,
                       .h = 40,
                       .w = 37,
                       .f = 8,
                       .kh = 3,
                       .kw = 3,
                       .sh = 1,
                       .sw = 1,
                       .ph = 1,
                       .pw = 1,
                       .oh = 40,
                       .ow = 37 };
    check_conv_forward(&rows, "{\"pad\": 1}", true, 2);
    conv_case wide = { .n = 5,
                       .c = 60,
                       .h = 5,
                       .w = 6,
                       .f = 7,
                       .kh = 3,
                       .kw = 3,
                       .sh = 1,
                       .sw = 1,
                       .ph = 1,
                       .pw = 0,
                       .oh = 5,
                       .ow = 4 };
    check_conv_forward(&wide, "{\"pad\": [1, 0]}", true, 2);
}

Test(conv_forward, matches_direct_loops_in_parallel)
{
    /* col is 4·3·3 × 45·45 = 72900 floats: im2col runs on several threads. */
    conv_case k = { .n = 3,
                    .c = 4,
                    .h = 45,
                    .w = 45,
                    .f = 6,
                    .kh = 3,
                    .kw = 3,
                    .sh = 1,
                    .sw = 1,
                    .ph = 1,
                    .pw = 1,
                    .oh = 45,
                    .ow = 45 };
    check_conv_forward(&k, "{\"pad\": 1}", true, 3);
}

/* Groups and dilation on each path: per group, the direct loops (depthwise 3×3), the
 * per-sample products with their table (batch 5) and without (batch 2), and the batched
 * products (60 channels per group: K = 540). */
Test(conv_forward, groups_and_dilation_on_every_path)
{
    /* depthwise: OH = (9 + 2 − 2·2 − 1) / 1 + 1 = 7, OW = (8 + 2 − 1·2 − 1) + 1 = 8 */
    conv_case dw = { .n = 3,
                     .c = 4,
                     .h = 9,
                     .w = 8,
                     .f = 4,
                     .kh = 3,
                     .kw = 3,
                     .sh = 1,
                     .sw = 1,
                     .ph = 1,
                     .pw = 1,
                     .oh = 7,
                     .ow = 8,
                     .groups = 4,
                     .dh = 2,
                     .dw = 1 };
    check_conv_forward(&dw, "{\"pad\": 1, \"groups\": 4, \"dilation\": [2, 1]}", true, 2);
    /* two groups of 3 channels, 2 filters each, stride 2, dilation 2: OH = (9 − 4 − 1) / 2 + 1
     * = 3, OW = (8 + 2 − 4 − 1) / 2 + 1 = 3 */
    conv_case two = { .n = 5,
                      .c = 6,
                      .h = 9,
                      .w = 8,
                      .f = 4,
                      .kh = 3,
                      .kw = 3,
                      .sh = 2,
                      .sw = 2,
                      .ph = 0,
                      .pw = 1,
                      .oh = 3,
                      .ow = 3,
                      .groups = 2,
                      .dh = 2,
                      .dw = 2 };
    const char *two_attrs = "{\"stride\": 2, \"pad\": [0, 1], \"groups\": 2, \"dilation\": 2}";
    check_conv_forward(&two, two_attrs, true, 2);
    two.n = 2;
    check_conv_forward(&two, two_attrs, false, 1);
    conv_case wide = { .n = 3,
                       .c = 120,
                       .h = 6,
                       .w = 5,
                       .f = 6,
                       .kh = 3,
                       .kw = 3,
                       .sh = 1,
                       .sw = 1,
                       .ph = 1,
                       .pw = 1,
                       .oh = 4,
                       .ow = 5,
                       .groups = 2,
                       .dh = 2,
                       .dw = 1 };
    check_conv_forward(&wide, "{\"pad\": 1, \"groups\": 2, \"dilation\": [2, 1]}", true, 2);
    /* depthwise with enough groups for threads to take whole groups (each too small to split
     * its rows): 16 groups of 4·32·32·9 multiply-adds */
    conv_case many = { .n = 4,
                       .c = 16,
                       .h = 32,
                       .w = 32,
                       .f = 16,
                       .kh = 3,
                       .kw = 3,
                       .sh = 1,
                       .sw = 1,
                       .ph = 1,
                       .pw = 1,
                       .oh = 32,
                       .ow = 32,
                       .groups = 16 };
    check_conv_forward(&many, "{\"pad\": 1, \"groups\": 16}", true, 2);
    check_conv_forward(&many, "{\"pad\": 1, \"groups\": 16}", false, 3);
}

/* ---------------------------------------------------------------- Conv: attrs, shapes, params */

static const char *const conv_names[] = { "img", "conv1.weight", "conv1.bias" };

Test(conv_infer, output_shape_workspace_and_flops)
{
    dn_tensor_desc in[] = { desc(true, DIMS(2, 3, 8, 8)), desc(false, DIMS(4, 3, 3, 3)),
                            desc(false, DIMS(4)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{\"stride\": 2, \"pad\": 1}", 3, in, conv_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(2, 4, 4, 4)); /* (8 + 2 − 3) / 2 + 1 = 4 */
    cr_assert_eq(p.out.dtype, DN_F32);
    cr_assert_geq(dn_op_conv.workspace_size(p.attrs, in, 3, &p.out, 4), 27 * 16 * sizeof(float));
    /* 2·C·kh·kw·OH·OW·F·N + F·OH·OW·N */
    cr_assert_eq(dn_op_conv.flops(p.attrs, in, 3, &p.out), 2 * 27 * 16 * 4 * 2 + 4 * 16 * 2);
    cr_assert_eq(dn_op_conv.flops(p.attrs, in, 2, &p.out), 2 * 27 * 16 * 4 * 2);
}

Test(conv_infer, rejects_channel_mismatch)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 2, 3, 3)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "model.json: node \"conv1\"", "inputs/1", "[N,3,8,8]", "[4,2,3,3]",
               "\"img\"", "\"conv1.weight\"");
}

Test(conv_infer, rejects_kernel_attr_that_disagrees_with_weight)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 3, 3, 3)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{\"kernel\": [3, 2]}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"conv1\"", "attrs/kernel", "[3,2]", "[4,3,3,3]");
}

Test(conv_infer, rejects_filters_attr_that_disagrees_with_weight)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 3, 3, 3)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{\"filters\": 5}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"conv1\"", "attrs/filters", "5", "[4,3,3,3]");
}

Test(conv_infer, accepts_filters_and_kernel_that_agree)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 3, 3, 1)) };
    probe p =
        run_infer(&dn_op_conv, "conv1", "{\"filters\": 4, \"kernel\": [3, 1]}", 2, in, conv_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(1, 4, 6, 8));
}

Test(conv_infer, rejects_bias_input_when_bias_is_false)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 3, 3, 3)),
                            desc(false, DIMS(4)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{\"bias\": false}", 3, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"conv1\"", "attrs/bias", "\"conv1.bias\"", "[4]");
}

Test(conv_infer, rejects_bias_of_wrong_length)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 3, 3, 3)),
                            desc(false, DIMS(5)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{}", 3, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"conv1\"", "inputs/2", "[5]", "[4,3,3,3]");
}

Test(conv_infer, rejects_bias_of_wrong_rank)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 3, 3, 3)),
                            desc(false, DIMS(4, 1)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{}", 3, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"conv1\"", "inputs/2", "[4,1]");
}

Test(conv_infer, rejects_weight_of_wrong_rank)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 27)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"conv1\"", "inputs/1", "[4,27]");
}

Test(conv_infer, rejects_kernel_larger_than_padded_input)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 4, 2)), desc(false, DIMS(4, 3, 3, 5)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{\"pad\": 1}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"conv1\"", "inputs/0", "[N,3,4,2]", "[4,3,3,5]");
}

Test(conv_infer, rejects_unknown_and_ill_typed_attrs)
{
    dn_tensor_desc in[] = { desc(true, DIMS(1, 3, 8, 8)), desc(false, DIMS(4, 3, 3, 3)) };
    probe p = run_infer(&dn_op_conv, "conv1", "{\"strides\": 2}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"conv1\"", "attrs/strides");
    p = run_infer(&dn_op_conv, "conv1", "{\"stride\": 0}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "attrs/stride");
    p = run_infer(&dn_op_conv, "conv1", "{\"pad\": [1, 2, 3]}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "attrs/pad");
    p = run_infer(&dn_op_conv, "conv1", "{\"init\": \"bogus\"}", 2, in, conv_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "attrs/init", "bogus");
}

Test(conv_params, implicit_weight_and_bias_from_input_and_attrs)
{
    dn_tensor_desc x = desc(true, DIMS(1, 3, 9, 9));
    probe p = run_infer(&dn_op_conv, "conv1",
                        "{\"filters\": 6, \"kernel\": [5, 3], \"init\": \"xavier_uniform\", "
                        "\"bias_init\": {\"type\": \"constant\", \"value\": 0.1}}",
                        1, &x, conv_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    dn_param_spec spec[DN_MAX_IMPLICIT_PARAMS];
    cr_assert_eq(dn_op_conv.implicit_params(p.attrs, &x, spec), 2);
    cr_assert_str_eq(spec[0].suffix, "weight");
    expect_shape(&spec[0].shape, false, DIMS(6, 3, 5, 3));
    cr_assert_eq(spec[0].init.type, DN_INIT_XAVIER_UNIFORM);
    cr_assert_str_eq(spec[1].suffix, "bias");
    expect_shape(&spec[1].shape, false, DIMS(6));
    cr_assert_eq(spec[1].init.type, DN_INIT_CONSTANT);
    cr_assert_float_eq(spec[1].init.value, 0.1, 1e-12);

    dn_tensor_desc in[] = { x, { DN_F32, spec[0].shape }, { DN_F32, spec[1].shape } };
    probe q =
        run_infer(&dn_op_conv, "conv1", "{\"filters\": 6, \"kernel\": [5, 3]}", 3, in, conv_names);
    cr_assert_eq(q.st, DN_OK, "%s", q.err.msg);
    expect_shape(&q.out.shape, true, DIMS(1, 6, 5, 7));
}

Test(conv_params, no_bias_param_when_bias_is_false_and_none_without_sizes)
{
    dn_tensor_desc x = desc(true, DIMS(1, 2, 9, 9));
    dn_param_spec spec[DN_MAX_IMPLICIT_PARAMS];
    probe p = run_infer(&dn_op_conv, "c", "{\"filters\": 6, \"kernel\": 3, \"bias\": false}", 1, &x,
                        conv_names);
    cr_assert_eq(dn_op_conv.implicit_params(p.attrs, &x, spec), 1);
    expect_shape(&spec[0].shape, false, DIMS(6, 2, 3, 3));
    cr_assert_eq(spec[0].init.type, DN_INIT_DEFAULT);
    p = run_infer(&dn_op_conv, "c", "{\"stride\": 2}", 1, &x, conv_names);
    cr_assert_eq(dn_op_conv.implicit_params(p.attrs, &x, spec), 0);
    p = run_infer(&dn_op_conv, "c", "{\"kernel\": 3}", 1, &x, conv_names);
    cr_assert_eq(dn_op_conv.implicit_params(p.attrs, &x, spec), 0);
}

/* ---------------------------------------------------------------- MaxPool */

Test(maxpool_grad, overlapping_windows)
{
    dn_gc_input in[] = { gc_in(DN_GC_DISTINCT, DIMS(2, 3, 7, 7)) };
    expect_grad(&dn_op_maxpool, "{\"kernel\": 3, \"stride\": 2}", 1, in);
}

Test(maxpool_grad, padded_default_stride)
{
    dn_gc_input in[] = { gc_in(DN_GC_DISTINCT, DIMS(2, 2, 6, 7)) };
    expect_grad(&dn_op_maxpool, "{\"kernel\": 3, \"pad\": 1}", 1, in);
}

Test(maxpool_grad, padded_stride1)
{
    dn_gc_input in[] = { gc_in(DN_GC_DISTINCT, DIMS(1, 3, 5, 5)) };
    expect_grad(&dn_op_maxpool, "{\"kernel\": 3, \"stride\": 1, \"pad\": 1}", 1, in);
}

Test(maxpool_grad, rectangular)
{
    dn_gc_input in[] = { gc_in(DN_GC_DISTINCT, DIMS(3, 2, 5, 7)) };
    expect_grad(&dn_op_maxpool, "{\"kernel\": [2, 3], \"stride\": [1, 2], \"pad\": [1, 1]}", 1, in);
}

static void direct_maxpool(const float *x, int64_t planes, int64_t h, int64_t w, int64_t k,
                           int64_t s, int64_t pad, int64_t oh, int64_t ow, float *y)
{
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t p = 0; p < oh; p++)
            for (int64_t q = 0; q < ow; q++) {
                float best = -INFINITY;
                for (int64_t i = 0; i < k; i++)
                    for (int64_t j = 0; j < k; j++) {
                        int64_t r = p * s - pad + i, c = q * s - pad + j;
                        if (r >= 0 && r < h && c >= 0 && c < w && x[(pl * h + r) * w + c] > best)
                            best = x[(pl * h + r) * w + c];
                    }
                y[(pl * oh + p) * ow + q] = best;
            }
}

/* All inputs negative: were padding a zero, it would win every border window. */
Test(maxpool_forward, padding_never_wins)
{
    int64_t n = 2 * 3 * 5 * 6;
    float *x = dn_test_uniform(n, 11, -1.0f, 1.0f);
    for (int64_t i = 0; i < n; i++)
        x[i] = -1.5f - fabsf(x[i]);
    dn_tensor in[] = { tensor(x, DIMS(2, 3, 5, 6)) };
    dn_test_run r =
        dn_test_run_new(&dn_op_maxpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1}", 1, in, 2);
    dn_test_run_forward(&r, 2, false);
    /* (5 + 2 − 3) / 2 + 1 = 3, (6 + 2 − 3) / 2 + 1 = 3 */
    expect_shape(&r.y.shape, true, DIMS(2, 3, 3, 3));
    float want[2 * 3 * 3 * 3];
    direct_maxpool(x, 6, 5, 6, 3, 2, 1, 3, 3, want);
    const float *y = dn_f32(&r.y);
    for (int i = 0; i < 54; i++)
        cr_assert_lt(y[i], -1.0f);
    dn_test_expect_close(y, want, 54, 0.0f, NULL);
    dn_test_run_free(&r);
    free(x);
}

Test(maxpool_forward, matches_direct_loops_in_parallel)
{
    /* 2·16 planes of 64×64 → 32·32·32 = 32768 outputs: the OpenMP path. */
    int64_t n = 2 * 16 * 64 * 64;
    float *x = dn_test_uniform(n, 12, -1.0f, 1.0f);
    dn_tensor in[] = { tensor(x, DIMS(2, 16, 64, 64)) };
    dn_test_run r =
        dn_test_run_new(&dn_op_maxpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1}", 1, in, 3);
    dn_test_run_forward(&r, 3, false);
    expect_shape(&r.y.shape, true, DIMS(2, 16, 32, 32));
    float *want = malloc(32768 * sizeof *want);
    direct_maxpool(x, 32, 64, 64, 3, 2, 1, 32, 32, want);
    dn_test_expect_close(dn_f32(&r.y), want, 32768, 0.0f, NULL);
    dn_test_run_free(&r);
    free(x), free(want);
}

/* MaxPool (kernel k, stride st, pad pd) of N = 2 samples, C = 3 channels of H × W against the
 * rule, values and argmax: each window clipped to the image, its pixels in row-major order,
 * the first maximum wins a tie and a NaN wins. The input has many ties and a NaN at plane 0,
 * row 1, column 3. */
static void check_max_rules(const char *attrs, int k, int st, int pd, int h, int w, int oh, int ow)
{
    enum { N = 2, C = 3 };
    float *x = malloc((size_t)(N * C * h * w) * sizeof *x);
    for (int i = 0; i < N * C * h * w; i++)
        x[i] = (float)((i * 7) % 5); /* many ties */
    x[1 * w + 3] = NAN;
    dn_tensor in[] = { tensor(x, DIMS(N, C, h, w)) };
    probe p = run_infer(&dn_op_maxpool, "n", attrs, 1,
                        (dn_tensor_desc[]){ { DN_F32, in[0].shape } }, (const char *[]){ "x" });
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(N, C, oh, ow));
    float *y = malloc((size_t)(N * C * oh * ow) * sizeof *y);
    int32_t *arg = malloc((size_t)(N * C * oh * ow) * sizeof *arg);
    dn_tensor yt = { DN_F32, p.out.shape, y };
    dn_kernel kr = {
        .attrs = p.attrs, .n_inputs = 1, .x = in, .y = &yt, .saved = arg, .threads = 2
    };
    dn_op_maxpool.forward(&kr);
    bool nan_seen = false;
    for (int pl = 0; pl < N * C; pl++)
        for (int o = 0; o < oh * ow; o++) {
            const float *plane = x + pl * h * w;
            int best = -1;
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) {
                    int r = o / ow * st - pd + i, c = o % ow * st - pd + j, at = r * w + c;
                    if (r < 0 || r >= h || c < 0 || c >= w)
                        continue;
                    if (best < 0 || plane[at] > plane[best] || isnan(plane[at]))
                        best = at;
                }
            int out = pl * oh * ow + o;
            cr_assert_eq(arg[out], best, "%s: plane %d output %d: argmax %d, expected %d", attrs,
                         pl, o, arg[out], best);
            cr_assert(y[out] == plane[best] || (isnan(y[out]) && isnan(plane[best])));
            nan_seen |= pl == 0 && isnan(y[out]);
        }
    cr_assert(nan_seen, "%s: the windows holding the NaN give NaN", attrs);
    free(x), free(y), free(arg);
}

/* The 2×2 stride-2 loop of its own (ops/maxpool.c) on odd sizes (the last row and column are
 * dropped); the 3×3 stride-2 loop of its own on whole windows (AlexNet's), and next to the
 * general loop on the windows padding clips. */
Test(maxpool_forward, own_loops_keep_the_rules)
{
    check_max_rules("{\"kernel\": 2}", 2, 2, 0, 7, 9, 3, 4);
    check_max_rules("{\"kernel\": 3, \"stride\": 2}", 3, 2, 0, 9, 13, 4, 6);
    check_max_rules("{\"kernel\": 3, \"stride\": 2, \"pad\": 1}", 3, 2, 1, 9, 13, 5, 7);
    check_max_rules("{\"kernel\": 3, \"stride\": 2, \"ceil\": true}", 3, 2, 0, 8, 12, 4, 6);
}

/* Backward sends each dy to its window's max, adding where windows share one, on top of what
 * dx already held. */
Test(maxpool_backward, scatters_onto_argmax_and_accumulates)
{
    /* One 3×3 plane, kernel 2 stride 1: four overlapping windows. The top-left one's max is
     * 9.5 at (0, 0); the other three share their max, 9 at the centre. */
    float x[9] = { 9.5f, 1, 2, 3, 9, 4, 5, 6, 7 };
    float dy[4] = { 1, 10, 100, 1000 }, dx[9];
    for (int i = 0; i < 9; i++)
        dx[i] = 0.5f;
    dn_tensor in[] = { tensor(x, DIMS(1, 1, 3, 3)) };
    probe p = run_infer(&dn_op_maxpool, "n", "{\"kernel\": 2, \"stride\": 1}", 1,
                        (dn_tensor_desc[]){ { DN_F32, in[0].shape } }, (const char *[]){ "x" });
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    int32_t saved[4];
    float y[4];
    dn_tensor yt = { DN_F32, p.out.shape, y }, dyt = { DN_F32, p.out.shape, dy };
    dn_tensor dxt = { DN_F32, in[0].shape, dx };
    dn_kernel k = { .attrs = p.attrs,
                    .n_inputs = 1,
                    .x = in,
                    .y = &yt,
                    .dx = &dxt,
                    .dy = &dyt,
                    .saved = saved,
                    .threads = 1 };
    dn_op_maxpool.forward(&k);
    dn_op_maxpool.backward(&k);
    float want[9] = { 0.5f + 1, 0.5f, 0.5f, 0.5f, 0.5f + 1110, 0.5f, 0.5f, 0.5f, 0.5f };
    dn_test_expect_close(dx, want, 9, 0.0f, "dx");
    float want_y[4] = { 9.5f, 9, 9, 9 };
    dn_test_expect_close(y, want_y, 4, 0.0f, "y");
}

static const char *const pool_names[] = { "conv3" };

/* ceil (PyTorch ceil_mode): odd sizes, the last window clipped by the image's end. */
Test(maxpool_grad, ceil_odd_sizes_clipped_last_window)
{
    dn_gc_input in[] = { gc_in(DN_GC_DISTINCT, DIMS(2, 2, 7, 6)) };
    expect_grad(&dn_op_maxpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1, \"ceil\": true}", 1,
                in);
}

Test(maxpool_grad, ceil_two_by_two_odd_input)
{
    dn_gc_input in[] = { gc_in(DN_GC_DISTINCT, DIMS(2, 2, 5, 7)) };
    expect_grad(&dn_op_maxpool, "{\"kernel\": 2, \"ceil\": true}", 1, in);
}

/* PyTorch 1.13: F.max_pool2d(-arange(30).reshape(1, 1, 6, 5), 3, 2, 1, ceil_mode=True). */
Test(maxpool_forward, ceil_matches_pytorch)
{
    float x[30];
    for (int i = 0; i < 30; i++)
        x[i] = -(float)i;
    dn_tensor in[] = { tensor(x, DIMS(1, 1, 6, 5)) };
    dn_test_run r = dn_test_run_new(
        &dn_op_maxpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1, \"ceil\": true}", 1, in, 1);
    dn_test_run_forward(&r, 1, false);
    expect_shape(&r.y.shape, true, DIMS(1, 1, 4, 3));
    float want[12] = { -0.0f, -1, -3, -5, -6, -8, -15, -16, -18, -25, -26, -28 };
    dn_test_expect_close(dn_f32(&r.y), want, 12, 0.0f, "ceil");
    dn_test_run_free(&r);
}

/* ceil rounds up, but drops a last window that would start at or past H + pad: H = 5, k 2,
 * s 2, pad 1 gives ceil(5/2) + 1 = 4, then 3 (window 3 would start at 6 − 1 = 5); W = 6: 4. */
Test(maxpool_infer, ceil_rounds_up_and_drops_a_window_in_the_padding)
{
    dn_tensor_desc x = desc(true, DIMS(2, 3, 5, 6));
    probe p = run_infer(&dn_op_maxpool, "pool1", "{\"kernel\": 2, \"pad\": 1, \"ceil\": true}", 1,
                        &x, pool_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(2, 3, 3, 4));
    p = run_infer(&dn_op_maxpool, "pool1", "{\"kernel\": 2, \"pad\": 1}", 1, &x, pool_names);
    expect_shape(&p.out.shape, true, DIMS(2, 3, 3, 4));
    p = run_infer(&dn_op_avgpool, "pool1", "{\"kernel\": 3, \"stride\": 2, \"ceil\": true}", 1, &x,
                  pool_names);
    expect_shape(&p.out.shape, true, DIMS(2, 3, 2, 3));
    p = run_infer(&dn_op_avgpool, "pool1", "{\"kernel\": 3, \"ceil\": 1}", 1, &x, pool_names);
    cr_assert_eq(p.st, DN_ERR_MODEL);
    cr_assert(strstr(p.err.msg, "attrs/ceil"), "%s", p.err.msg);
}

Test(maxpool_infer, default_stride_is_the_kernel)
{
    dn_tensor_desc x = desc(true, DIMS(4, 2, 7, 9));
    probe p = run_infer(&dn_op_maxpool, "pool1", "{\"kernel\": [2, 3]}", 1, &x, pool_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(4, 2, 3, 3));
    cr_assert_geq(dn_op_maxpool.saved_size(p.attrs, &x, 1, &p.out),
                  4 * 2 * 3 * 3 * sizeof(int32_t));
}

Test(maxpool_infer, requires_kernel)
{
    dn_tensor_desc x = desc(true, DIMS(1, 2, 8, 8));
    probe p = run_infer(&dn_op_maxpool, "pool1", "{\"stride\": 2}", 1, &x, pool_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"pool1\"", "attrs/kernel");
}

Test(maxpool_infer, rejects_pad_over_half_the_kernel)
{
    dn_tensor_desc x = desc(true, DIMS(1, 2, 8, 8));
    probe p = run_infer(&dn_op_maxpool, "pool1", "{\"kernel\": 3, \"pad\": 2}", 1, &x, pool_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"pool1\"", "attrs/pad", "[2,2]", "[3,3]", "half");
    /* Only the width breaks the rule here: 2 > 3 / 2. */
    p = run_infer(&dn_op_maxpool, "pool1", "{\"kernel\": [4, 3], \"pad\": [2, 2]}", 1, &x,
                  pool_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "attrs/pad", "[4,3]");
    p = run_infer(&dn_op_maxpool, "pool1", "{\"kernel\": [4, 3], \"pad\": [2, 1]}", 1, &x,
                  pool_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
}

Test(maxpool_infer, rejects_window_larger_than_input)
{
    dn_tensor_desc x = desc(true, DIMS(1, 2, 2, 8));
    probe p = run_infer(&dn_op_maxpool, "pool1", "{\"kernel\": 3}", 1, &x, pool_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"pool1\"", "inputs/0", "[N,2,2,8]", "[3,3]", "\"conv3\"");
}

Test(maxpool_infer, rejects_rank_3_input)
{
    dn_tensor_desc x = desc(true, DIMS(1, 8, 8));
    probe p = run_infer(&dn_op_maxpool, "pool1", "{\"kernel\": 2}", 1, &x, pool_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"pool1\"", "inputs/0", "[N,8,8]");
}

/* ---------------------------------------------------------------- AvgPool */

Test(avgpool_grad, overlapping_windows)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 3, 7, 7)) };
    expect_grad(&dn_op_avgpool, "{\"kernel\": 3, \"stride\": 2}", 1, in);
}

Test(avgpool_grad, padded)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(3, 2, 6, 5)) };
    expect_grad(&dn_op_avgpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1}", 1, in);
}

Test(avgpool_grad, rectangular_padded_stride1)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(1, 2, 5, 6)) };
    expect_grad(&dn_op_avgpool, "{\"kernel\": [2, 3], \"stride\": [2, 1], \"pad\": [1, 1]}", 1, in);
}

Test(avgpool_grad, padding_not_counted)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 2, 5, 6)) };
    expect_grad(
        &dn_op_avgpool,
        "{\"kernel\": [3, 2], \"stride\": [2, 1], \"pad\": 1, \"count_include_pad\": false}", 1,
        in);
}

/* Ones in, kernel 3, stride 1, pad 1, count_include_pad false: every window's divisor is its
 * in-image part, so every output is exactly 1 (ONNX's default, PyTorch count_include_pad=False). */
Test(avgpool_forward, padding_not_counted_in_the_divisor)
{
    float x[4 * 5];
    for (int i = 0; i < 20; i++)
        x[i] = 1.0f;
    x[0] = 5.0f; /* the corner window holds 4 pixels: (5 + 3) / 4 = 2 */
    dn_tensor in[] = { tensor(x, DIMS(1, 1, 4, 5)) };
    dn_test_run r = dn_test_run_new(
        &dn_op_avgpool, "{\"kernel\": 3, \"stride\": 1, \"pad\": 1, \"count_include_pad\": false}",
        1, in, 1);
    dn_test_run_forward(&r, 1, false);
    expect_shape(&r.y.shape, true, DIMS(1, 1, 4, 5));
    float e = 10.0f / 6, m = 13.0f / 9;
    float plane[20] = { 2, e, 1, 1, 1, e, m, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    dn_test_expect_close(dn_f32(&r.y), plane, 20, 1e-6f, "plane");
    dn_test_run_free(&r);
}

/* Ones in, kernel 3, stride 1, pad 1: a window holds 4 pixels at a corner, 6 along an edge and
 * 9 inside, always divided by 9. */
Test(avgpool_grad, ceil_odd_sizes_clipped_divisor)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 2, 7, 6)) };
    expect_grad(&dn_op_avgpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1, \"ceil\": true}", 1,
                in);
    dn_gc_input two[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 2, 5, 7)) };
    expect_grad(&dn_op_avgpool, "{\"kernel\": 2, \"ceil\": true}", 1, two);
}

/* PyTorch 1.13: F.avg_pool2d(arange(30).reshape(1, 1, 6, 5), 3, 2, 1, ceil_mode=True) and
 * F.avg_pool2d(arange(25).reshape(1, 1, 5, 5), 2, ceil_mode=True): the divisor of a window
 * past the padding counts its part inside input + padding. */
Test(avgpool_forward, ceil_divisor_matches_pytorch)
{
    float x[30];
    for (int i = 0; i < 30; i++)
        x[i] = (float)i;
    dn_tensor in[] = { tensor(x, DIMS(1, 1, 6, 5)) };
    dn_test_run r = dn_test_run_new(
        &dn_op_avgpool, "{\"kernel\": 3, \"stride\": 2, \"pad\": 1, \"ceil\": true}", 1, in, 1);
    dn_test_run_forward(&r, 1, false);
    expect_shape(&r.y.shape, true, DIMS(1, 1, 4, 3));
    float want[12] = { 12.0f / 9,  3,  24.0f / 9,  7,    12,    9,
                       123.0f / 9, 22, 141.0f / 9, 8.5f, 13.5f, 9.5f };
    dn_test_expect_close(dn_f32(&r.y), want, 12, 1e-5f, "kernel 3, pad 1");
    dn_test_run_free(&r);
    dn_tensor in2[] = { tensor(x, DIMS(1, 1, 5, 5)) };
    r = dn_test_run_new(&dn_op_avgpool, "{\"kernel\": 2, \"ceil\": true}", 1, in2, 1);
    dn_test_run_forward(&r, 1, false);
    expect_shape(&r.y.shape, true, DIMS(1, 1, 3, 3));
    float want2[9] = { 3, 5, 6.5f, 13, 15, 16.5f, 20.5f, 22.5f, 24 };
    dn_test_expect_close(dn_f32(&r.y), want2, 9, 1e-6f, "kernel 2, odd input");
    dn_test_run_free(&r);
}

Test(avgpool_forward, padding_counts_in_the_divisor)
{
    float x[2 * 4 * 5];
    for (int i = 0; i < 40; i++)
        x[i] = 1.0f;
    dn_tensor in[] = { tensor(x, DIMS(2, 1, 4, 5)) };
    dn_test_run r =
        dn_test_run_new(&dn_op_avgpool, "{\"kernel\": 3, \"stride\": 1, \"pad\": 1}", 1, in, 1);
    dn_test_run_forward(&r, 1, false);
    expect_shape(&r.y.shape, true, DIMS(2, 1, 4, 5));
    float c = 4.0f / 9, e = 6.0f / 9, m = 1.0f;
    float plane[20] = { c, e, e, e, c, e, m, m, m, e, e, m, m, m, e, c, e, e, e, c };
    dn_test_expect_close(dn_f32(&r.y), plane, 20, 1e-6f, "sample 0");
    dn_test_expect_close(dn_f32(&r.y) + 20, plane, 20, 1e-6f, "sample 1");
    dn_test_run_free(&r);
}

Test(avgpool_forward, rectangular_stride_matches_direct_sum)
{
    /* kernel [2, 3], stride [2, 1], no pad, on one 4×4 plane of 0..15: OH 2, OW 2. */
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    dn_tensor in[] = { tensor(x, DIMS(1, 1, 4, 4)) };
    dn_test_run r =
        dn_test_run_new(&dn_op_avgpool, "{\"kernel\": [2, 3], \"stride\": [2, 1]}", 1, in, 1);
    dn_test_run_forward(&r, 1, false);
    expect_shape(&r.y.shape, true, DIMS(1, 1, 2, 2));
    float want[4] = { (0 + 1 + 2 + 4 + 5 + 6) / 6.0f, (1 + 2 + 3 + 5 + 6 + 7) / 6.0f,
                      (8 + 9 + 10 + 12 + 13 + 14) / 6.0f, (9 + 10 + 11 + 13 + 14 + 15) / 6.0f };
    dn_test_expect_close(dn_f32(&r.y), want, 4, 1e-6f, NULL);
    dn_test_run_free(&r);
}

Test(avgpool_infer, rejects_pad_over_half_the_kernel_and_requires_kernel)
{
    dn_tensor_desc x = desc(true, DIMS(1, 2, 8, 8));
    probe p = run_infer(&dn_op_avgpool, "pool2", "{\"kernel\": 2, \"pad\": 2}", 1, &x, pool_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"pool2\"", "attrs/pad", "[2,2]");
    p = run_infer(&dn_op_avgpool, "pool2", "{}", 1, &x, pool_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"pool2\"", "attrs/kernel");
    p = run_infer(&dn_op_avgpool, "pool2", "{\"kernel\": 2, \"size\": 2}", 1, &x, pool_names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "attrs/size");
}

Test(avgpool_infer, shape_and_window_that_does_not_fit)
{
    dn_tensor_desc x = desc(true, DIMS(3, 2, 7, 8));
    probe p = run_infer(&dn_op_avgpool, "pool2", "{\"kernel\": 3, \"stride\": 2, \"pad\": 1}", 1,
                        &x, pool_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(3, 2, 4, 4));
    x = desc(true, DIMS(3, 2, 7, 1));
    p = run_infer(&dn_op_avgpool, "pool2", "{\"kernel\": 2}", 1, &x, pool_names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"pool2\"", "inputs/0", "[N,2,7,1]", "[2,2]");
}

/* ---------------------------------------------------------------- Affine */

Test(affine_grad, rank4_input_with_bias)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(3, 2, 3, 2)), gc_in(DN_GC_UNIFORM, DIMS(12, 5)),
                         gc_in(DN_GC_UNIFORM, DIMS(5)) };
    expect_grad(&dn_op_affine, "{}", 3, in);
}

Test(affine_grad, rank4_input_without_bias)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 4, 3, 3)),
                         gc_in(DN_GC_UNIFORM, DIMS(36, 3)) };
    expect_grad(&dn_op_affine, "{}", 2, in);
}

Test(affine_grad, rank2_input_batch1)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(1, 7)), gc_in(DN_GC_UNIFORM, DIMS(7, 4)),
                         gc_in(DN_GC_UNIFORM, DIMS(4)) };
    expect_grad(&dn_op_affine, "{\"units\": 4}", 3, in);
}

Test(affine_forward, matches_direct_loops)
{
    int64_t n = 3, in_f = 2 * 2 * 3, out_f = 4;
    float *x = dn_test_uniform(n * in_f, 21, -1.0f, 1.0f);
    float *w = dn_test_uniform(in_f * out_f, 22, -1.0f, 1.0f);
    float *b = dn_test_uniform(out_f, 23, -1.0f, 1.0f);
    float want[3 * 4], want_nb[3 * 4];
    for (int64_t r = 0; r < n; r++)
        for (int64_t o = 0; o < out_f; o++) {
            double sum = 0;
            for (int64_t i = 0; i < in_f; i++)
                sum += (double)x[r * in_f + i] * w[i * out_f + o];
            want_nb[r * out_f + o] = (float)sum;
            want[r * out_f + o] = (float)(sum + b[o]);
        }
    dn_tensor in[] = { tensor(x, DIMS(3, 2, 2, 3)), tensor(w, DIMS(12, 4)), tensor(b, DIMS(4)) };
    dn_test_run r = dn_test_run_new(&dn_op_affine, "{}", 3, in, 2);
    dn_test_run_forward(&r, 2, false);
    expect_shape(&r.y.shape, true, DIMS(3, 4));
    dn_test_expect_close(dn_f32(&r.y), want, 12, 1e-5f, "with bias");
    dn_test_run_free(&r);
    r = dn_test_run_new(&dn_op_affine, "{\"bias\": false}", 2, in, 1);
    dn_test_run_forward(&r, 1, false);
    expect_shape(&r.y.shape, true, DIMS(3, 4));
    dn_test_expect_close(dn_f32(&r.y), want_nb, 12, 1e-5f, "without bias");
    dn_test_run_free(&r);
    free(x), free(w), free(b);
}

Test(affine_infer, feature_mismatch_reads_like_the_format_contract)
{
    const char *names[] = { "pool5", "fc6.weight", "fc6.bias" };
    dn_tensor_desc in[] = { desc(true, DIMS(1, 256, 5, 5)), desc(false, DIMS(9216, 4096)),
                            desc(false, DIMS(4096)) };
    probe p = run_infer(&dn_op_affine, "fc6", "{}", 3, in, names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "model.json: node \"fc6\"",
               "Affine expects 9216 input features, got 6400 from \"pool5\" [N,256,5,5]",
               "[9216,4096]");
}

Test(affine_infer, shape_and_flops)
{
    const char *names[] = { "x", "w", "b" };
    dn_tensor_desc in[] = { desc(true, DIMS(5, 2, 3)), desc(false, DIMS(6, 4)),
                            desc(false, DIMS(4)) };
    probe p = run_infer(&dn_op_affine, "fc", "{\"units\": 4}", 3, in, names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(5, 4));
    cr_assert_eq(dn_op_affine.flops(p.attrs, in, 3, &p.out), 2 * 5 * 6 * 4 + 5 * 4);
    cr_assert_eq(dn_op_affine.flops(p.attrs, in, 2, &p.out), 2 * 5 * 6 * 4);
}

Test(affine_infer, rejects_units_bias_and_rank_errors)
{
    const char *names[] = { "x", "w", "b" };
    dn_tensor_desc in[] = { desc(true, DIMS(1, 6)), desc(false, DIMS(6, 4)), desc(false, DIMS(3)) };
    probe p = run_infer(&dn_op_affine, "fc", "{\"units\": 5}", 2, in, names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"fc\"", "attrs/units", "5", "[6,4]");
    p = run_infer(&dn_op_affine, "fc", "{}", 3, in, names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"fc\"", "inputs/2", "[3]", "[6,4]");
    in[2] = desc(false, DIMS(4));
    p = run_infer(&dn_op_affine, "fc", "{\"bias\": false}", 3, in, names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"fc\"", "attrs/bias", "[4]");
    in[0] = desc(true, DIMS(6));
    p = run_infer(&dn_op_affine, "fc", "{}", 2, in, names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"fc\"", "inputs/0", "[N]");
    in[0] = desc(true, DIMS(1, 6));
    in[1] = desc(false, DIMS(6, 4, 1));
    p = run_infer(&dn_op_affine, "fc", "{}", 2, in, names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"fc\"", "inputs/1", "[6,4,1]");
    p = run_infer(&dn_op_affine, "fc", "{\"unit\": 4}", 2, in, names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "attrs/unit");
}

Test(affine_params, implicit_weight_and_bias)
{
    const char *names[] = { "pool2" };
    dn_tensor_desc x = desc(true, DIMS(1, 3, 4, 4));
    dn_param_spec spec[DN_MAX_IMPLICIT_PARAMS];
    probe p =
        run_infer(&dn_op_affine, "fc", "{\"units\": 10, \"init\": \"he_uniform\"}", 1, &x, names);
    cr_assert_eq(dn_op_affine.implicit_params(p.attrs, &x, spec), 2);
    cr_assert_str_eq(spec[0].suffix, "weight");
    expect_shape(&spec[0].shape, false, DIMS(48, 10));
    cr_assert_eq(spec[0].init.type, DN_INIT_HE_UNIFORM);
    cr_assert_str_eq(spec[1].suffix, "bias");
    expect_shape(&spec[1].shape, false, DIMS(10));
    cr_assert_eq(spec[1].init.type, DN_INIT_DEFAULT);
    p = run_infer(&dn_op_affine, "fc", "{\"units\": 10, \"bias\": false}", 1, &x, names);
    cr_assert_eq(dn_op_affine.implicit_params(p.attrs, &x, spec), 1);
    p = run_infer(&dn_op_affine, "fc", "{}", 1, &x, names);
    cr_assert_eq(dn_op_affine.implicit_params(p.attrs, &x, spec), 0);
}

/* ---------------------------------------------------------------- LRN */

/* alpha large enough that the cross-channel term matters to the check. */
Test(lrn_grad, size5)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 7, 3, 2)) };
    expect_grad(&dn_op_lrn, "{\"size\": 5, \"alpha\": 1.0, \"beta\": 0.75, \"k\": 2}", 1, in);
}

Test(lrn_grad, size2_even_window_rank3)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 4, 3)) };
    expect_grad(&dn_op_lrn, "{\"size\": 2, \"alpha\": 2.0, \"beta\": 0.75, \"k\": 1}", 1, in);
}

Test(lrn_grad, size3_more_than_channels)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(3, 2, 2, 2)) };
    expect_grad(&dn_op_lrn, "{\"size\": 3, \"alpha\": 1.5, \"beta\": 0.6, \"k\": 1.5}", 1, in);
}

Test(lrn_grad, size4_more_than_channels)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 3, 2, 3)) };
    expect_grad(&dn_op_lrn, "{\"size\": 4, \"alpha\": 3.0, \"beta\": 1.2, \"k\": 1}", 1, in);
}

Test(lrn_grad, default_attrs)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 6, 2, 2)) };
    expect_grad(&dn_op_lrn, "{}", 1, in);
}

/* 2 × 8 × 48 × 48 = 36864 elements: both backward loops run on several threads. */
Test(lrn_grad, parallel)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 8, 48, 48)) };
    expect_grad(&dn_op_lrn, "{\"size\": 3, \"alpha\": 1.0, \"beta\": 0.75, \"k\": 1}", 1, in);
}

/* x = (1, 2, 3) over channels, size 2 (window [c − 1, c]), alpha 0.3, beta 0.75, k 1:
 * s = (1 + 0.15·1, 1 + 0.15·(1 + 4), 1 + 0.15·(4 + 9)) = (1.15, 1.75, 2.95) and
 * y = x · s^−0.75, evaluated separately (Python) to the constants below. */
Test(lrn_forward, tiny_case_by_hand)
{
    float x[3] = { 1, 2, 3 };
    dn_tensor in[] = { tensor(x, DIMS(1, 3, 1, 1)) };
    dn_test_run r = dn_test_run_new(
        &dn_op_lrn, "{\"size\": 2, \"alpha\": 0.3, \"beta\": 0.75, \"k\": 1}", 1, in, 1);
    dn_test_run_forward(&r, 1, false);
    expect_shape(&r.y.shape, true, DIMS(1, 3, 1, 1));
    float want[3] = { 0.9004853f, 1.3144724f, 1.3327686f };
    dn_test_expect_close(dn_f32(&r.y), want, 3, 1e-6f, NULL);
    dn_test_run_free(&r);
}

static void direct_lrn(const float *x, int64_t n, int64_t c, int64_t inner, int64_t size,
                       double alpha, double beta, double k, float *y)
{
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < inner; i++) {
                double sum = 0;
                for (int64_t j = ch - size / 2; j <= ch + (size - 1) / 2; j++)
                    if (j >= 0 && j < c)
                        sum += (double)x[(b * c + j) * inner + i] * x[(b * c + j) * inner + i];
                double v = x[(b * c + ch) * inner + i];
                y[(b * c + ch) * inner + i] = (float)(v / pow(k + alpha / size * sum, beta));
            }
}

Test(lrn_forward, matches_direct_loops)
{
    int64_t sizes[] = { 1, 2, 3, 4, 5, 9 };
    float *x = dn_test_uniform(2 * 5 * 6, 31, -1.0f, 1.0f);
    float want[60];
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        char attrs[128];
        snprintf(attrs, sizeof attrs, "{\"size\": %lld, \"alpha\": 0.8, \"beta\": 0.7, \"k\": 1.3}",
                 (long long)sizes[t]);
        direct_lrn(x, 2, 5, 6, sizes[t], 0.8, 0.7, 1.3, want);
        dn_tensor in[] = { tensor(x, DIMS(2, 5, 2, 3)) };
        dn_test_run r = dn_test_run_new(&dn_op_lrn, attrs, 1, in, 2);
        dn_test_run_forward(&r, 2, false);
        dn_test_expect_close(dn_f32(&r.y), want, 60, 1e-5f, attrs);
        dn_test_run_free(&r);
    }
    free(x);
}

Test(lrn_infer, rejects_bad_attrs_and_low_rank)
{
    const char *names[] = { "conv1" };
    dn_tensor_desc x = desc(true, DIMS(1, 5, 4, 4));
    probe p = run_infer(&dn_op_lrn, "norm1", "{\"size\": 0}", 1, &x, names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"norm1\"", "attrs/size");
    p = run_infer(&dn_op_lrn, "norm1", "{\"k\": 0}", 1, &x, names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"norm1\"", "attrs/k");
    p = run_infer(&dn_op_lrn, "norm1", "{\"alpha\": -1}", 1, &x, names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "attrs/alpha");
    p = run_infer(&dn_op_lrn, "norm1", "{\"bias\": 1}", 1, &x, names);
    dn_test_expect_status(p.st, DN_ERR_MODEL, p.err.msg);
    EXPECT_MSG(p.err.msg, "attrs/bias");
    p = run_infer(&dn_op_lrn, "norm1", "{\"size\": 3}", 1, &x, names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(1, 5, 4, 4));
    x = desc(true, DIMS(1, 5));
    p = run_infer(&dn_op_lrn, "norm1", "{}", 1, &x, names);
    dn_test_expect_status(p.st, DN_ERR_SHAPE, p.err.msg);
    EXPECT_MSG(p.err.msg, "node \"norm1\"", "inputs/0", "[N,5]", "\"conv1\"");
}

/* ---------------------------------------------------------------- GlobalAvgPool */

Test(global_avg_pool_grad, odd_planes_batch2)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(2, 3, 5, 3)) };
    expect_grad(&dn_op_global_avg_pool, "{}", 1, in);
}

Test(global_avg_pool_forward, mean_of_each_plane_on_1_and_2_threads)
{
    int64_t n = 3 * 70 * 9 * 11;
    float *x = dn_test_uniform(n, 5, -1.0f, 1.0f), *want = malloc(3 * 70 * sizeof *want);
    for (int64_t i = 0; i < 3 * 70; i++) {
        double sum = 0;
        for (int64_t j = 0; j < 99; j++)
            sum += x[i * 99 + j];
        want[i] = (float)(sum / 99);
    }
    dn_tensor in[] = { tensor(x, DIMS(3, 70, 9, 11)) };
    for (int threads = 1; threads <= 2; threads++) {
        dn_test_run r = dn_test_run_new(&dn_op_global_avg_pool, "{}", 1, in, threads);
        dn_test_run_forward(&r, threads, false);
        expect_shape(&r.y.shape, true, DIMS(3, 70, 1, 1));
        dn_test_expect_close(dn_f32(&r.y), want, 3 * 70, 1e-6f, "plane means");
        dn_test_run_free(&r);
    }
    free(x), free(want);
}

Test(global_avg_pool_infer, shape_and_rank_and_no_attrs)
{
    dn_tensor_desc x = desc(true, DIMS(4, 7, 5, 3));
    probe p = run_infer(&dn_op_global_avg_pool, "gap", "{}", 1, &x, pool_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(4, 7, 1, 1));
    cr_assert_eq(dn_op_global_avg_pool.flops(p.attrs, &x, 1, &p.out), 4 * 7 * 5 * 3);
    dn_tensor_desc flat = desc(true, DIMS(4, 7));
    p = run_infer(&dn_op_global_avg_pool, "gap", "{}", 1, &flat, pool_names);
    cr_assert_eq(p.st, DN_ERR_SHAPE);
    cr_assert(strstr(p.err.msg, "gap") && strstr(p.err.msg, "conv3"), "%s", p.err.msg);
    p = run_infer(&dn_op_global_avg_pool, "gap", "{\"kernel\": 2}", 1, &x, pool_names);
    cr_assert_eq(p.st, DN_ERR_MODEL, "%s", p.err.msg);
    cr_assert(strstr(p.err.msg, "attrs/kernel"), "%s", p.err.msg);
}

/* ---------------------------------------------------------------- Conv: groups' errors */

static const char *const gconv_names[] = { "img", "c2.weight", "c2.bias" };

Test(conv_infer, groups_and_dilation_shapes_and_errors)
{
    /* AlexNet's conv2: 96 channels in two groups, W [256, 48, 5, 5], pad 2. */
    dn_tensor_desc in[] = { desc(true, DIMS(2, 96, 27, 27)), desc(false, DIMS(256, 48, 5, 5)),
                            desc(false, DIMS(256)) };
    probe p = run_infer(&dn_op_conv, "c2", "{\"pad\": 2, \"groups\": 2}", 3, in, gconv_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(2, 256, 27, 27));
    /* flops: 2·N·F·P·(C/G·kh·kw) + N·F·P */
    int64_t outs = 2 * 256 * 27 * 27;
    cr_assert_eq(dn_op_conv.flops(p.attrs, in, 3, &p.out), outs * 2 * 48 * 25 + outs);
    dn_gemm_shape gs;
    dn_op_conv.gemm(p.attrs, in, 3, &p.out, &gs);
    cr_assert(gs.m == 128 && gs.k == 48 * 25 && gs.n == 2 * 27 * 27 && gs.count == 2);
    /* dilation 2 with pad 2 keeps 27: OH = 27 + 4 − 2·4 − 1 + 1 = 23 */
    p = run_infer(&dn_op_conv, "c2", "{\"pad\": 2, \"groups\": 2, \"dilation\": 2}", 3, in,
                  gconv_names);
    cr_assert_eq(p.st, DN_OK, "%s", p.err.msg);
    expect_shape(&p.out.shape, true, DIMS(2, 256, 23, 23));
    /* W's second dim must be C/groups */
    p = run_infer(&dn_op_conv, "c2", "{\"groups\": 3}", 3, in, gconv_names);
    cr_assert_eq(p.st, DN_ERR_SHAPE);
    cr_assert(strstr(p.err.msg, "attrs/groups") && strstr(p.err.msg, "256 filters"), "%s",
              p.err.msg);
    p = run_infer(&dn_op_conv, "c2", "{\"groups\": 4}", 3, in, gconv_names);
    cr_assert_eq(p.st, DN_ERR_SHAPE);
    cr_assert(strstr(p.err.msg, "inputs/1") && strstr(p.err.msg, "C/groups = 24"), "%s", p.err.msg);
    dn_tensor_desc odd[] = { desc(true, DIMS(2, 95, 27, 27)), desc(false, DIMS(256, 48, 5, 5)) };
    p = run_infer(&dn_op_conv, "c2", "{\"groups\": 2}", 2, odd, gconv_names);
    cr_assert_eq(p.st, DN_ERR_SHAPE);
    cr_assert(strstr(p.err.msg, "attrs/groups") && strstr(p.err.msg, "95 channels"), "%s",
              p.err.msg);
    /* named attr errors: dilation 0, groups 0, filters not divisible by groups */
    const char *bad[] = { "{\"dilation\": 0}", "{\"groups\": 0}", "{\"dilation\": [1, 0]}",
                          "{\"filters\": 5, \"kernel\": 3, \"groups\": 2}" };
    const char *field[] = { "attrs/dilation", "attrs/groups", "attrs/dilation", "attrs/filters" };
    for (int i = 0; i < 4; i++) {
        p = run_infer(&dn_op_conv, "c2", bad[i], 3, in, gconv_names);
        cr_assert_neq(p.st, DN_OK, "%s accepted", bad[i]);
        cr_assert(strstr(p.err.msg, field[i]), "%s: %s", bad[i], p.err.msg);
    }
    /* a dilated kernel that no longer fits */
    p = run_infer(&dn_op_conv, "c2", "{\"groups\": 2, \"dilation\": 7}", 3, in, gconv_names);
    cr_assert_eq(p.st, DN_ERR_SHAPE);
    cr_assert(strstr(p.err.msg, "dilation [7,7]"), "%s", p.err.msg);
}

/* Implicit params of a grouped Conv: W [F, C/groups, kh, kw] (PyTorch's layout; He's fan_in
 * is then C/groups·kh·kw, read from the shape). */
Test(conv_params, implicit_weight_of_a_grouped_conv)
{
    cJSON *attrs = cJSON_Parse("{\"filters\": 256, \"kernel\": 5, \"groups\": 2}");
    dn_err err = { 0 };
    dn_node_ctx c = { .file = "model.json", .node = "c2", .attrs = attrs, .err = &err };
    unsigned char a[512];
    cr_assert_eq(dn_op_conv.parse_attrs(&c, a), DN_OK, "%s", err.msg);
    dn_tensor_desc x = desc(true, DIMS(1, 96, 27, 27));
    dn_param_spec spec[DN_MAX_IMPLICIT_PARAMS];
    cr_assert_eq(dn_op_conv.implicit_params(a, &x, spec), 2);
    expect_shape(&spec[0].shape, false, DIMS(256, 48, 5, 5));
    expect_shape(&spec[1].shape, false, DIMS(256));
    cJSON_Delete(attrs);
}
