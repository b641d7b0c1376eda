/*
 * test_seed_weights.c — the book's trained SimpleConvNet runs in dagnet exactly as written.
 *
 * Loads examples/models/simple_convnet.json through the public API with the seed's trained
 * weights (shared/seed/simple_convnet_mnist.safetensors: W1 [30,1,5,5], b1, W2 [4320,100],
 * b2, W3 [100,10], b3), feeds a batch of 4 deterministic pseudo-random images and compares
 * dagnet's logits ("fc2") and probabilities ("prob") with the same network computed here
 * by naive loops in double precision:
 *   conv 5x5 stride 1 pad 0 → ReLU → max pool 2x2 stride 2 → flatten (C order, 30·12·12)
 *   → x·W2 + b2 → ReLU → x·W3 + b3 → softmax
 * The reference reads the weights with the library's own safetensors reader (tested on
 * its own in test_io.c), so a mismatch points at the model loader or the kernels.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dagnet.h"
#include "helpers.h"
#include "io/safetensors.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#ifndef DAGNET_SOURCE_DIR
#error "DAGNET_SOURCE_DIR must name the source tree (CMake defines it)"
#endif

#define MODEL_PATH DN_TEST_MODELS "/simple_convnet.json"
#define WEIGHTS_PATH DAGNET_SOURCE_DIR "/../shared/seed/simple_convnet_mnist.safetensors"

enum {
    BATCH = 4,
    IMG = 28, /* input height and width, one channel */
    FILTERS = 30,
    K = 5,                        /* conv kernel */
    CONV = IMG - K + 1,           /* 24: stride 1, pad 0 */
    POOL = CONV / 2,              /* 12: 2x2 windows, stride 2 */
    FLAT = FILTERS * POOL * POOL, /* 4320 */
    HIDDEN = 100,
    CLASSES = 10,
};

/* The seed's weights as floats, copied out of the file (entries may be unaligned). */
typedef struct weights {
    float *w1, *b1, *w2, *b2, *w3, *b3;
} weights;

static float *copy_param(const dn_st_file *f, const char *name, int rank, const int64_t *dims)
{
    const dn_st_entry *e = dn_st_find(f, name);
    cr_assert_not_null(e, "%s has no tensor \"%s\"", WEIGHTS_PATH, name);
    cr_assert_eq(e->dtype, DN_F32, "\"%s\" is not F32", name);
    cr_assert_eq(e->shape.rank, rank, "\"%s\" has rank %d, expected %d", name, e->shape.rank, rank);
    for (int i = 0; i < rank; i++)
        cr_assert_eq(e->shape.d[i], dims[i], "\"%s\" dim %d is %lld, expected %lld", name, i,
                     (long long)e->shape.d[i], (long long)dims[i]);
    float *p = malloc(e->nbytes);
    cr_assert_not_null(p);
    memcpy(p, e->data, e->nbytes);
    return p;
}

static void read_weights(weights *w)
{
    dn_st_file f;
    dn_err err;
    cr_assert_eq(dn_st_read(WEIGHTS_PATH, &f, &err), DN_OK, "%s", err.msg);
    w->w1 = copy_param(&f, "W1", 4, (int64_t[]){ FILTERS, 1, K, K });
    w->b1 = copy_param(&f, "b1", 1, (int64_t[]){ FILTERS });
    w->w2 = copy_param(&f, "W2", 2, (int64_t[]){ FLAT, HIDDEN });
    w->b2 = copy_param(&f, "b2", 1, (int64_t[]){ HIDDEN });
    w->w3 = copy_param(&f, "W3", 2, (int64_t[]){ HIDDEN, CLASSES });
    w->b3 = copy_param(&f, "b3", 1, (int64_t[]){ CLASSES });
    dn_st_free(&f);
}

static void free_weights(weights *w)
{
    free(w->w1);
    free(w->b1);
    free(w->w2);
    free(w->b2);
    free(w->w3);
    free(w->b3);
}

/* Deterministic pixels U(0, 1). */
static void make_images(float *img, size_t n)
{
    dn_rng rng;
    dn_rng_seed(&rng, 20240601);
    dn_test_fill_uniform(img, (int64_t)n, &rng, 0.0f, 1.0f);
}

/* ---------------------------------------------------------------- the reference network */

/* conv1 + ReLU + 2x2 max pool of one image → pooled[FILTERS][POOL][POOL], C order. */
static void conv_relu_pool(const weights *w, const float *img, double *pooled)
{
    static double conv[FILTERS][CONV][CONV];
    for (int f = 0; f < FILTERS; f++)
        for (int y = 0; y < CONV; y++)
            for (int x = 0; x < CONV; x++) {
                double acc = w->b1[f];
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++)
                        acc +=
                            (double)w->w1[(f * K + ky) * K + kx] * img[(y + ky) * IMG + (x + kx)];
                conv[f][y][x] = acc > 0 ? acc : 0;
            }
    for (int f = 0; f < FILTERS; f++)
        for (int y = 0; y < POOL; y++)
            for (int x = 0; x < POOL; x++) {
                double m = conv[f][2 * y][2 * x];
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        m = fmax(m, conv[f][2 * y + dy][2 * x + dx]);
                pooled[(f * POOL + y) * POOL + x] = m;
            }
}

/* out[j] = relu?(b[j] + Σ_i in[i] · W[i][j]) with W stored [n_in, n_out] (the book's way). */
static void affine(const double *in, int n_in, const float *wt, const float *b, int n_out,
                   bool relu, double *out)
{
    for (int j = 0; j < n_out; j++) {
        double acc = b[j];
        for (int i = 0; i < n_in; i++)
            acc += in[i] * (double)wt[(size_t)i * (size_t)n_out + (size_t)j];
        out[j] = relu && acc < 0 ? 0 : acc;
    }
}

/* logits[BATCH][CLASSES] of the whole network. */
static void reference_logits(const weights *w, const float *images, double *logits)
{
    static double pooled[FLAT];
    double hidden[HIDDEN];
    for (int n = 0; n < BATCH; n++) {
        conv_relu_pool(w, images + (size_t)n * IMG * IMG, pooled);
        affine(pooled, FLAT, w->w2, w->b2, HIDDEN, true, hidden);
        affine(hidden, HIDDEN, w->w3, w->b3, CLASSES, false, logits + n * CLASSES);
    }
}

static void softmax_rows(const double *logits, double *prob)
{
    for (int n = 0; n < BATCH; n++) {
        const double *z = logits + n * CLASSES;
        double m = z[0], sum = 0;
        for (int c = 1; c < CLASSES; c++)
            m = fmax(m, z[c]);
        for (int c = 0; c < CLASSES; c++)
            sum += exp(z[c] - m);
        for (int c = 0; c < CLASSES; c++)
            prob[n * CLASSES + c] = exp(z[c] - m) / sum;
    }
}

/* ---------------------------------------------------------------- dagnet */

/* A borrowed [BATCH, CLASSES] float32 tensor of the session. */
static const float *fetch_bc(dn_session *s, const char *name)
{
    dn_view v;
    cr_assert_eq(dn_session_tensor(s, name, &v), DN_OK, "tensor %s: %s", name,
                 dn_session_errmsg(s));
    cr_assert_eq(v.dtype, DN_F32, "%s is not float32", name);
    cr_assert_eq(v.rank, 2, "%s has rank %d, expected 2", name, v.rank);
    cr_assert(v.shape[0] == BATCH && v.shape[1] == CLASSES, "%s is [%lld,%lld], expected [%d,%d]",
              name, (long long)v.shape[0], (long long)v.shape[1], BATCH, CLASSES);
    cr_assert_not_null(v.data);
    return v.data;
}

/* Run dagnet on the images; copies "fc2" and "prob" out before the session goes away. */
static void dagnet_forward(const float *images, float *logits, float *prob)
{
    dn_model *m = dn_test_load_model(MODEL_PATH);
    dn_session_options opts = DN_SESSION_OPTIONS_DEFAULT;
    opts.seed = 7; /* the weights file overwrites every initialised param */
    dn_session *s = dn_test_session(m, &opts);
    dn_status st = dn_session_load_weights(s, WEIGHTS_PATH);
    cr_assert_eq(st, DN_OK, "%s", dn_session_errmsg(s));

    const int64_t img_shape[4] = { BATCH, 1, IMG, IMG }, label_shape[1] = { BATCH };
    const int32_t labels[BATCH] = { 3, 1, 4, 1 };
    st = dn_session_set_input(s, "image", DN_F32, 4, img_shape, images);
    cr_assert_eq(st, DN_OK, "%s", dn_session_errmsg(s));
    st = dn_session_set_input(s, "label", DN_I32, 1, label_shape, labels);
    cr_assert_eq(st, DN_OK, "%s", dn_session_errmsg(s));

    const char *const fetch[] = { "fc2", "prob" };
    st = dn_session_forward(s, DN_INFER, fetch, 2);
    cr_assert_eq(st, DN_OK, "%s", dn_session_errmsg(s));
    memcpy(logits, fetch_bc(s, "fc2"), sizeof(float) * BATCH * CLASSES);
    memcpy(prob, fetch_bc(s, "prob"), sizeof(float) * BATCH * CLASSES);
    dn_session_free(s);
    dn_model_free(m);
}

Test(api_seed_weights, simple_convnet_matches_direct_computation)
{
    if (access(WEIGHTS_PATH, R_OK) != 0)
        cr_skip_test("the seed's weights are not at %s", WEIGHTS_PATH);
    static float images[BATCH * IMG * IMG];
    make_images(images, sizeof images / sizeof images[0]);
    weights w;
    read_weights(&w);
    double want[BATCH * CLASSES], want_prob[BATCH * CLASSES];
    reference_logits(&w, images, want);
    softmax_rows(want, want_prob);
    free_weights(&w);

    float got[BATCH * CLASSES], got_prob[BATCH * CLASSES];
    dagnet_forward(images, got, got_prob);

    double max_abs = 0, max_diff = 0, max_pdiff = 0;
    for (int i = 0; i < BATCH * CLASSES; i++) {
        cr_assert(isfinite(got[i]), "fc2[%d] is %g", i, got[i]);
        max_abs = fmax(max_abs, fabs(want[i]));
        max_diff = fmax(max_diff, fabs(got[i] - want[i]));
        max_pdiff = fmax(max_pdiff, fabs(got_prob[i] - want_prob[i]));
    }
    cr_assert(max_abs > 0, "the reference logits are all zero: a broken test");
    cr_assert(max_diff <= 1e-4 * max_abs,
              "fc2 differs from the direct computation by %g (largest logit %g, allowed %g); "
              "fc2[0] = %g, expected %g",
              max_diff, max_abs, 1e-4 * max_abs, got[0], want[0]);
    cr_assert(max_pdiff <= 1e-5, "prob differs from softmax(direct logits) by %g", max_pdiff);
}
