/*
 * test_batchnorm.c — BatchNorm and the model's "state" section.
 *
 * The op: finite-difference gradients in training mode ([N, C] and [N, C, H, W], a batch
 * large enough for threads), forward values and the running-statistics update against
 * direct loops written here (two passes in double), inference with the running statistics,
 * attr and shape errors. The state: the loader's messages (a name in params and state, mean
 * or var given as params), implicit params and state, state in the weights file, no gradient
 * and no optimiser update, and a resumed BatchNorm run bit-identical to an uninterrupted one.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "helpers.h"

extern const dn_op dn_op_batchnorm;

static dn_gc_input gc_in(dn_gc_fill fill, int rank, const int64_t *dims)
{
    dn_gc_input in = { .dtype = DN_F32, .rank = rank, .fill = fill };
    memcpy(in.shape, dims, (size_t)rank * sizeof *dims);
    return in;
}

static void expect_grad(const dn_op *op, const char *attrs, const dn_gc_input *in)
{
    dn_gc_result r = dn_gradcheck(op, attrs, 5, in, 7);
    cr_assert(r.ok, "%s", r.msg);
    cr_assert_gt(r.checked, 0);
}

/* ---------------------------------------------------------------- gradients (training) */

Test(batchnorm_grad, nchw)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(3, 4, 3, 2)), gc_in(DN_GC_UNIFORM, DIMS(4)),
                         gc_in(DN_GC_UNIFORM, DIMS(4)), gc_in(DN_GC_UNIFORM, DIMS(4)),
                         gc_in(DN_GC_POSITIVE, DIMS(4)) };
    expect_grad(&dn_op_batchnorm, "{}", in);
}

Test(batchnorm_grad, nc)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(5, 3)), gc_in(DN_GC_UNIFORM, DIMS(3)),
                         gc_in(DN_GC_UNIFORM, DIMS(3)), gc_in(DN_GC_UNIFORM, DIMS(3)),
                         gc_in(DN_GC_POSITIVE, DIMS(3)) };
    expect_grad(&dn_op_batchnorm, "{\"epsilon\": 0.01, \"momentum\": 0.3}", in);
}

/* 4 × 8 × 32 × 32 = 32768 elements: both kernels split the channels over threads. */
Test(batchnorm_grad, parallel)
{
    dn_gc_input in[] = { gc_in(DN_GC_UNIFORM, DIMS(4, 8, 32, 32)), gc_in(DN_GC_UNIFORM, DIMS(8)),
                         gc_in(DN_GC_UNIFORM, DIMS(8)), gc_in(DN_GC_UNIFORM, DIMS(8)),
                         gc_in(DN_GC_POSITIVE, DIMS(8)) };
    expect_grad(&dn_op_batchnorm, "{}", in);
}

/* ---------------------------------------------------------------- forward and the update */

/* Per channel, in double and two passes: the batch mean and biased variance. */
static void direct_stats(const float *x, int64_t n, int64_t c, int64_t inner, int64_t ch,
                         double *mu, double *var)
{
    double s = 0, s2 = 0, m = (double)(n * inner);
    for (int64_t b = 0; b < n; b++)
        for (int64_t i = 0; i < inner; i++)
            s += x[(b * c + ch) * inner + i];
    *mu = s / m;
    for (int64_t b = 0; b < n; b++)
        for (int64_t i = 0; i < inner; i++) {
            double d = x[(b * c + ch) * inner + i] - *mu;
            s2 += d * d;
        }
    *var = s2 / m;
}

/* Training: y from the batch statistics; mean and var move by momentum towards the batch
 * mean and the UNBIASED batch variance. Inference: y from the (updated) running statistics,
 * which stay as they are. Values shifted by 1000 check the shifted one-pass sums. */
static void check_forward(int64_t n, int64_t c, int64_t h, int64_t w, float offset, int threads)
{
    int64_t inner = h * w, total = n * c * inner;
    float *x = dn_test_uniform(total, 3, -1.0f + offset, 2.0f + offset);
    float *gamma = dn_test_uniform(c, 4, 0.5f, 1.5f), *beta = dn_test_uniform(c, 5, -1, 1);
    float *mean = dn_test_uniform(c, 6, -0.5f, 0.5f), *var = dn_test_uniform(c, 7, 0.5f, 1.5f);
    float *mean0 = dn_test_copy(mean, c), *var0 = dn_test_copy(var, c);
    dn_tensor in[5];
    in[0] = (dn_tensor){ DN_F32,
                         h > 1 || w > 1 ? dn_shape_make(4, (int64_t[]){ n, c, h, w }, true)
                                        : dn_shape_make(2, (int64_t[]){ n, c }, true),
                         x };
    float *p[4] = { gamma, beta, mean, var };
    for (int i = 1; i < 5; i++)
        in[i] = (dn_tensor){ DN_F32, dn_shape_make(1, &c, false), p[i - 1] };
    dn_test_run r = dn_test_run_new(&dn_op_batchnorm, "{\"momentum\": 0.25, \"epsilon\": 0.001}", 5,
                                    in, threads);
    dn_test_run_forward(&r, threads, true);
    float *want = malloc((size_t)total * sizeof *want);
    float *want_mean = malloc((size_t)c * sizeof *want_mean);
    float *want_var = malloc((size_t)c * sizeof *want_var);
    for (int64_t ch = 0; ch < c; ch++) {
        double mu, v, m = (double)(n * inner);
        direct_stats(x, n, c, inner, ch, &mu, &v);
        for (int64_t b = 0; b < n; b++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t at = (b * c + ch) * inner + i;
                want[at] = (float)(gamma[ch] * (x[at] - mu) / sqrt(v + 0.001) + beta[ch]);
            }
        want_mean[ch] = (float)(0.75 * mean0[ch] + 0.25 * mu);
        want_var[ch] = (float)(0.75 * var0[ch] + 0.25 * v * m / (m - 1));
    }
    /* y = x·scale + shift, PyTorch's CPU form, rounds at |x|·scale: with x near 1000 the
     * output keeps ~1e-4 absolute; the statistics below must stay exact regardless. */
    float tol = offset != 0 ? 5e-4f : 2e-5f;
    dn_test_expect_close(dn_f32(&r.y), want, total, tol, "training y");
    dn_test_expect_close(mean, want_mean, c, 1e-5f, "running mean");
    dn_test_expect_close(var, want_var, c, 1e-5f, "running var");

    float *mean1 = dn_test_copy(mean, c), *var1 = dn_test_copy(var, c);
    dn_test_run_forward(&r, threads, false);
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t b = 0; b < n; b++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t at = (b * c + ch) * inner + i;
                want[at] =
                    (float)(gamma[ch] * (x[at] - (double)mean[ch]) / sqrt((double)var[ch] + 0.001) +
                            beta[ch]);
            }
    dn_test_expect_close(dn_f32(&r.y), want, total, offset != 0 ? 2e-2f : 2e-4f, "inference y");
    dn_test_expect_same_bits(mean, mean1, c, "inference leaves the running mean");
    dn_test_expect_same_bits(var, var1, c, "inference leaves the running var");
    dn_test_run_free(&r);
    free(x), free(gamma), free(beta), free(mean), free(var), free(mean0), free(var0);
    free(mean1), free(var1), free(want), free(want_mean), free(want_var);
}

Test(batchnorm_forward, nchw_training_update_and_inference) { check_forward(3, 4, 5, 3, 0, 1); }
Test(batchnorm_forward, nc) { check_forward(7, 5, 1, 1, 0, 1); }
Test(batchnorm_forward, large_offset_does_not_cancel) { check_forward(4, 3, 6, 6, 1000, 1); }
Test(batchnorm_forward, parallel) { check_forward(8, 6, 32, 32, 0, 2); }

/* ---------------------------------------------------------------- the loader */

#define BN_MODEL(params, state, bn_inputs, attrs)                                               \
    "{\"format\": \"dagnet/1\", \"inputs\": {\"x\": {\"shape\": [null, 3, 4, 4]}, \"label\": "  \
    "{\"shape\": [null], \"dtype\": \"int32\"}}, " params state                                 \
    "\"nodes\": [{\"name\": \"bn\", \"op\": \"BatchNorm\", \"inputs\": " bn_inputs attrs "},"   \
    " {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"bn\"], \"attrs\": {\"units\": 2}}," \
    " {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}]," \
    " \"loss\": \"loss\"}"

static char *load_fails(const char *json, dn_status want)
{
    dn_model *m = NULL;
    dn_status st = dn_model_parse(json, strlen(json), "bn.json", &m);
    dn_test_expect_status(st, want, dn_model_errmsg(m));
    char *msg = strdup(dn_model_errmsg(m));
    dn_model_free(m);
    return msg;
}

Test(batchnorm_infer, implicit_params_and_state)
{
    dn_model *m = dn_test_parse_model(BN_MODEL("", "", "[\"x\"]", ""), "bn.json");
    cr_assert_eq(dn_model_param_count(m), 4, "bn.weight, bn.bias, fc.weight, fc.bias");
    cr_assert_eq(dn_model_state_count(m), 2);
    dn_tensor_info a, b;
    cr_assert_eq(dn_model_state_info(m, 0, &a), DN_OK);
    cr_assert_eq(dn_model_state_info(m, 1, &b), DN_OK);
    cr_assert_str_eq(a.name, "bn.running_mean");
    cr_assert_str_eq(b.name, "bn.running_var");
    cr_assert(a.rank == 1 && a.shape[0] == 3);
    cr_assert_neq(dn_model_state_info(m, 2, &a), DN_OK);
    dn_session *s = dn_test_session(m, NULL);
    dn_view v;
    cr_assert_eq(dn_session_state(s, "bn.running_var", &v), DN_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(((float *)v.data)[i], 1.0f);
    cr_assert_eq(dn_session_param(s, "bn.weight", &v), DN_OK);
    cr_assert_eq(((float *)v.data)[2], 1.0f);
    cr_assert_neq(dn_session_param(s, "bn.running_mean", &v), DN_OK, "state is not a param");
    cr_assert_neq(dn_session_state(s, "bn.weight", &v), DN_OK, "a param is not state");
    dn_session_free(s);
    dn_model_free(m);
}

#define EXPLICIT_PARAMS \
    "\"params\": {\"g\": {\"shape\": [3], \"init\": \"ones\"}, \"b\": {\"shape\": [3]}, "
#define EXPLICIT_STATE \
    "\"state\": {\"m\": {\"shape\": [3]}, \"v\": {\"shape\": [3], \"init\": \"ones\"}}, "

Test(batchnorm_infer, explicit_state_loads)
{
    dn_model *m =
        dn_test_parse_model(BN_MODEL(EXPLICIT_PARAMS "\"unused\": {\"shape\": [1]}}, ",
                                     EXPLICIT_STATE, "[\"x\", \"g\", \"b\", \"m\", \"v\"]", ""),
                            "bn.json");
    cr_assert_eq(dn_model_state_count(m), 2);
    dn_model_free(m);
}

Test(batchnorm_infer, mean_and_var_given_as_params_are_refused)
{
    char *msg = load_fails(BN_MODEL(EXPLICIT_PARAMS "\"m\": {\"shape\": [3]}, \"v\": {\"shape\": "
                                                    "[3]}}, ",
                                    "", "[\"x\", \"g\", \"b\", \"m\", \"v\"]", ""),
                           DN_ERR_MODEL);
    EXPECT_MSG(msg, "bn.json", "node \"bn\"", "inputs/3", "\"m\"", "must be a state tensor",
               "found a param");
    free(msg);
}

Test(batchnorm_infer, a_name_in_params_and_state_is_refused)
{
    char *msg = load_fails(BN_MODEL(EXPLICIT_PARAMS "\"m\": {\"shape\": [3]}}, ", EXPLICIT_STATE,
                                    "[\"x\", \"g\", \"b\", \"m\", \"v\"]", ""),
                           DN_ERR_MODEL);
    EXPECT_MSG(msg, "state \"m\"", "/state/m", "both in \"params\" and in \"state\"");
    free(msg);
}

Test(batchnorm_infer, wrong_shapes_and_attrs_are_named)
{
    char *msg =
        load_fails(BN_MODEL(EXPLICIT_PARAMS "\"z\": {\"shape\": [1]}}, ",
                            "\"state\": {\"m\": {\"shape\": [4]}, \"v\": {\"shape\": [3]}}, ",
                            "[\"x\", \"g\", \"b\", \"m\", \"v\"]", ""),
                   DN_ERR_SHAPE);
    EXPECT_MSG(msg, "node \"bn\"", "inputs/3", "mean \"m\" must be [3]", "found [4]");
    free(msg);
    msg = load_fails(BN_MODEL("", "", "[\"x\"]", ", \"attrs\": {\"epsilon\": 0}"), DN_ERR_MODEL);
    EXPECT_MSG(msg, "node \"bn\"", "attrs/epsilon", "found 0");
    free(msg);
    msg = load_fails(BN_MODEL("", "", "[\"x\"]", ", \"attrs\": {\"momentum\": 1.5}"), DN_ERR_MODEL);
    EXPECT_MSG(msg, "node \"bn\"", "attrs/momentum");
    free(msg);
    msg = load_fails(BN_MODEL("", "", "[\"x\", \"x\"]", ""), DN_ERR_MODEL);
    EXPECT_MSG(msg, "node \"bn\"", "BatchNorm expects 5 inputs, found 2");
    free(msg);
}

/* ---------------------------------------------------------------- state in sessions */

TestSuite(batchnorm_state, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

static void feed(dn_session *s, uint64_t seed)
{
    float *x = dn_test_uniform(6 * 48, seed, -1, 3);
    int32_t labels[6] = { 0, 1, 1, 0, 1, 0 };
    cr_assert_eq(dn_session_set_input(s, "x", DN_F32, 4, (int64_t[]){ 6, 3, 4, 4 }, x), DN_OK);
    cr_assert_eq(dn_session_set_input(s, "label", DN_I32, 1, (int64_t[]){ 6 }, labels), DN_OK);
    free(x);
}

static float state_at(dn_session *s, const char *name, int i)
{
    dn_view v;
    cr_assert_eq(dn_session_state(s, name, &v), DN_OK, "%s", dn_session_errmsg(s));
    return ((float *)v.data)[i];
}

/* Only a training forward moves the running statistics; they take no gradient (save_gradients
 * has no grad.bn.running_mean) and survive a save/load of the weights. */
Test(batchnorm_state, training_forward_updates_weights_file_carries_it)
{
    dn_model *m = dn_test_parse_model(BN_MODEL("", "", "[\"x\"]", ""), "bn.json");
    dn_session *s = dn_test_session(m, NULL);
    feed(s, 1);
    const char *prob[] = { "fc" };
    cr_assert_eq(dn_session_forward(s, DN_INFER, prob, 1), DN_OK, "%s", dn_session_errmsg(s));
    cr_assert_eq(state_at(s, "bn.running_mean", 0), 0.0f, "inference does not update");
    cr_assert_eq(dn_session_forward(s, DN_TRAIN, NULL, 0), DN_OK, "%s", dn_session_errmsg(s));
    float mean = state_at(s, "bn.running_mean", 0), var = state_at(s, "bn.running_var", 1);
    cr_assert(mean > 0.05f && mean < 0.15f, "0.1 × a batch mean near 1, found %g", mean);
    cr_assert_neq(var, 1.0f);
    cr_assert_eq(dn_session_backward(s), DN_OK, "%s", dn_session_errmsg(s));
    dn_view g;
    cr_assert_neq(dn_session_param_grad(s, "bn.running_mean", &g), DN_OK, "state takes no grad");

    const char *w = dn_test_path("bn.safetensors");
    cr_assert_eq(dn_session_save_weights(s, w), DN_OK, "%s", dn_session_errmsg(s));
    dn_session *s2 = dn_test_session(m, NULL);
    cr_assert_eq(state_at(s2, "bn.running_mean", 0), 0.0f);
    cr_assert_eq(dn_session_load_weights(s2, w), DN_OK, "%s", dn_session_errmsg(s2));
    cr_assert_eq(state_at(s2, "bn.running_mean", 0), mean);
    cr_assert_eq(state_at(s2, "bn.running_var", 1), var);
    remove(w);
    dn_session_free(s2);
    dn_session_free(s);
    dn_model_free(m);
}

/* A weights file without the state (one written for the model without BatchNorm's running
 * statistics) is refused, naming the missing tensor. */
Test(batchnorm_state, weights_without_state_are_refused)
{
    const char *without = BN_MODEL(EXPLICIT_PARAMS "\"m\": {\"shape\": [3]}, \"v\": {\"shape\": "
                                                   "[3]}}, ",
                                   "", "[\"x\", \"g\", \"b\"]", "");
    (void)without;
    dn_model *m =
        dn_test_parse_model(BN_MODEL(EXPLICIT_PARAMS "\"z\": {\"shape\": [1]}}, ", EXPLICIT_STATE,
                                     "[\"x\", \"g\", \"b\", \"m\", \"v\"]", ""),
                            "bn.json");
    dn_session *s = dn_test_session(m, NULL);
    const char *w = dn_test_path("partial.safetensors");
    dn_view g;
    cr_assert_eq(dn_session_param(s, "g", &g), DN_OK);
    /* Write params only through the public file helper: a safetensors file by hand. */
    char header[512];
    int len =
        snprintf(header, sizeof header,
                 "{\"g\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]},"
                 "\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]},"
                 "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[48,2],\"data_offsets\":[28,412]},"
                 "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[412,420]}}");
    while (len % 8)
        header[len++] = ' ';
    size_t size = 8 + (size_t)len + 420;
    unsigned char *buf = calloc(1, size);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(buf + 8, header, (size_t)len);
    dn_test_write_file(w, buf, size);
    dn_status st = dn_session_load_weights(s, w);
    dn_test_expect_status(st, DN_ERR_SHAPE, dn_session_errmsg(s));
    EXPECT_MSG(dn_session_errmsg(s), "state tensor \"m\"", "is missing");
    free(buf);
    remove(w);
    dn_session_free(s);
    dn_model_free(m);
}

/* ---------------------------------------------------------------- state in training */

#define SIDE 8

static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    fwrite(b, 1, 4, f);
}

/* n examples of 2 classes (bright top or bottom half, on noise) as IDX files in the test's
 * directory. */
static void write_idx(const char *prefix, int n, unsigned seed)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dn_test_dir, prefix);
    FILE *img = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dn_test_dir, prefix);
    FILE *lab = fopen(path, "wb");
    cr_assert(img && lab);
    put_be32(img, 0x803), put_be32(img, (uint32_t)n), put_be32(img, SIDE), put_be32(img, SIDE);
    put_be32(lab, 0x801), put_be32(lab, (uint32_t)n);
    unsigned rng = seed;
    for (int i = 0; i < n; i++) {
        int c = i % 2;
        fputc(c, lab);
        for (int p = 0; p < SIDE * SIDE; p++) {
            rng = rng * 1103515245u + 12345u;
            int on = (p / SIDE < SIDE / 2) == (c == 0);
            fputc((on ? 150 : 0) + (int)((rng >> 16) % 100), img);
        }
    }
    fclose(img);
    fclose(lab);
}

static void make_data(void)
{
    dn_test_dir_init();
    write_idx("train", 300, 1);
    write_idx("t10k", 50, 2);
}

TestSuite(batchnorm_training, .init = make_data, .fini = dn_test_dir_fini);

#define TRAIN_MODEL(bn_attrs)                                                                     \
    "{\"format\": \"dagnet/1\", \"inputs\": {\"image\": {\"shape\": [null, 1, 8, 8]}, "           \
    "\"label\": {\"shape\": [null], \"dtype\": \"int32\"}}, \"nodes\": ["                         \
    " {\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": "  \
    "3, \"kernel\": 3, \"pad\": 1, \"bias\": false}},"                                            \
    " {\"name\": \"bn\", \"op\": \"BatchNorm\", \"inputs\": [\"conv\"]" bn_attrs "},"             \
    " {\"name\": \"relu\", \"op\": \"ReLU\", \"inputs\": [\"bn\"]},"                              \
    " {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"relu\"], \"attrs\": {\"units\": 2}}," \
    " {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}],"   \
    " \"outputs\": [\"fc\"], \"loss\": \"loss\", \"train\": {\"batch\": 32, \"epochs\": 2,"       \
    " \"optimizer\": \"momentum\","                                                               \
    " \"lr\": 0.05, \"weight_decay\": 0.1}}"

typedef struct rig {
    dn_model *m;
    dn_session *s;
    dn_trainer *t;
    dn_dataset *train;
} rig;

static void rig_open(rig *r, const char *json)
{
    memset(r, 0, sizeof *r);
    r->m = dn_test_parse_model(json, "bn_train.json");
    dn_session_options so = DN_SESSION_OPTIONS_DEFAULT;
    so.seed = 3;
    so.threads = 2;
    r->s = dn_test_session(r->m, &so);
    dn_train_options o;
    dn_model_train_options(r->m, &o);
    o.seed = 4;
    cr_assert_eq(dn_trainer_new(r->s, &o, NULL, &r->t), DN_OK, "%s", dn_trainer_errmsg(r->t));
    cr_assert_eq(dn_dataset_load_dir(dn_test_dir, true, &r->train), DN_OK, "%s",
                 dn_dataset_errmsg(r->train));
}

static void rig_close(rig *r)
{
    dn_trainer_free(r->t);
    dn_dataset_free(r->train);
    dn_session_free(r->s);
    dn_model_free(r->m);
}

static void steps(rig *r, int n)
{
    dn_step_stats st;
    for (int i = 0; i < n; i++)
        cr_assert_eq(dn_trainer_step(r->t, r->train, &st), DN_OK, "%s", dn_trainer_errmsg(r->t));
}

/* 300 examples in batches of 32: 10 steps an epoch. Straight 2 epochs, against 13 steps,
 * a checkpoint, a fresh trainer that resumes: params AND running statistics bit for bit. */
Test(batchnorm_training, resumed_run_is_bit_identical_with_running_statistics)
{
    const char *path = dn_test_path("bn.ckpt");
    rig straight, part, resumed;
    rig_open(&straight, TRAIN_MODEL(""));
    steps(&straight, 20);
    rig_open(&part, TRAIN_MODEL(""));
    steps(&part, 13);
    cr_assert_eq(dn_trainer_save_checkpoint(part.t, path), DN_OK, "%s", dn_trainer_errmsg(part.t));
    size_t n_part;
    float *at_13 = dn_test_values(part.m, part.s, true, &n_part);
    rig_close(&part);
    rig_open(&resumed, TRAIN_MODEL(""));
    cr_assert_eq(dn_trainer_load_checkpoint(resumed.t, path), DN_OK, "%s",
                 dn_trainer_errmsg(resumed.t));
    size_t n_loaded;
    float *loaded = dn_test_values(resumed.m, resumed.s, true, &n_loaded);
    cr_assert_eq(n_loaded, n_part);
    dn_test_expect_same_bits(loaded, at_13, (int64_t)n_part, "the checkpoint's params and state");
    steps(&resumed, 7);
    size_t ns, nr;
    float *ws = dn_test_values(straight.m, straight.s, true, &ns),
          *wr = dn_test_values(resumed.m, resumed.s, true, &nr);
    cr_assert_eq(ns, nr);
    dn_test_expect_same_bits(ws, wr, (int64_t)ns, "params and running statistics after resuming");
    dn_view mean;
    cr_assert_eq(dn_session_state(straight.s, "bn.running_mean", &mean), DN_OK);
    cr_assert_neq(((float *)mean.data)[0], 0.0f, "training moved the running mean");
    free(ws), free(wr), free(at_13), free(loaded);
    remove(path);
    rig_close(&straight);
    rig_close(&resumed);
}

/* With momentum 0 the op leaves its state alone; then nothing else may touch it either: not
 * the optimiser (momentum SGD, lr 0.05), not the weight decay (0.1). */
Test(batchnorm_training, no_optimiser_update_and_no_weight_decay_on_state)
{
    rig r;
    rig_open(&r, TRAIN_MODEL(", \"attrs\": {\"momentum\": 0}"));
    steps(&r, 12);
    dn_view mean, var, gamma;
    cr_assert_eq(dn_session_state(r.s, "bn.running_mean", &mean), DN_OK);
    cr_assert_eq(dn_session_state(r.s, "bn.running_var", &var), DN_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(((float *)mean.data)[i], 0.0f);
        cr_assert_eq(((float *)var.data)[i], 1.0f);
    }
    cr_assert_eq(dn_session_param(r.s, "bn.weight", &gamma), DN_OK);
    cr_assert_neq(((float *)gamma.data)[0], 1.0f, "the params did train");
    rig_close(&r);
}
