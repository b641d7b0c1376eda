/*
 * test_graph.c — the graph layer end to end through the public API: topological order,
 * executing only what is needed, and autograd on whole graphs (fan-out, shared weights, Add,
 * Concat, Dropout modes) checked against finite differences of the loss.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "dagnet.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "helpers.h"
#include "runtime/rng.h"

static dn_model *parse_ok(const char *json) { return dn_test_parse_model(json, "graph.json"); }

static int node_position(const dn_model *m, const char *name)
{
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_node_info n;
        dn_model_node_info(m, i, &n);
        if (strcmp(n.name, name) == 0)
            return i;
    }
    return -1;
}

/* Every node comes after the nodes it reads. */
static void assert_topological(const dn_model *m)
{
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_node_info n;
        dn_model_node_info(m, i, &n);
        for (int j = 0; j < n.n_inputs; j++) {
            int p = node_position(m, n.inputs[j]);
            cr_assert(p < i, "node %s (at %d) reads %s (at %d)", n.name, i, n.inputs[j], p);
        }
    }
}

#define LENET_HEAD                                             \
    "{\"format\": \"dagnet/1\", \"name\": \"shuffled\","       \
    " \"inputs\": {\"image\": {\"shape\": [null, 1, 12, 12]}," \
    "              \"label\": {\"shape\": [null], \"dtype\": \"int32\"}},"
#define N_CONV                                                                                     \
    "{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": 3, " \
    "\"kernel\": 3, \"pad\": 1}}"
#define N_RELU "{\"name\": \"relu\", \"op\": \"ReLU\", \"inputs\": [\"conv\"]}"
#define N_POOL                                                                                   \
    "{\"name\": \"pool\", \"op\": \"MaxPool\", \"inputs\": [\"relu\"], \"attrs\": {\"kernel\": " \
    "2}}"
#define N_FC \
    "{\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"pool\"], \"attrs\": {\"units\": 5}}"
#define N_PROB "{\"name\": \"prob\", \"op\": \"Softmax\", \"inputs\": [\"fc\"]}"
#define N_LOSS \
    "{\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}"
#define LENET_TAIL "\"outputs\": [\"prob\"], \"loss\": \"loss\"}"

Test(graph_sort, shuffled_order_is_sorted_and_deterministic)
{
    const char *in_order = LENET_HEAD "\"nodes\": [" N_CONV "," N_RELU "," N_POOL "," N_FC
                                      "," N_PROB "," N_LOSS "]," LENET_TAIL;
    const char *shuffled = LENET_HEAD "\"nodes\": [" N_LOSS "," N_FC "," N_PROB "," N_RELU
                                      "," N_POOL "," N_CONV "]," LENET_TAIL;
    dn_model *a = parse_ok(in_order), *b = parse_ok(shuffled), *c = parse_ok(shuffled);
    assert_topological(a);
    assert_topological(b);
    const char *expect_a[] = { "conv", "relu", "pool", "fc", "prob", "loss" };
    for (int i = 0; i < 6; i++) {
        dn_node_info n;
        dn_model_node_info(a, i, &n);
        cr_assert_str_eq(n.name, expect_a[i], "a file already in order keeps its order");
    }
    /* Among ready nodes the earliest in the file goes first: "loss" precedes "prob". */
    const char *expect_b[] = { "conv", "relu", "pool", "fc", "loss", "prob" };
    for (int i = 0; i < 6; i++) {
        dn_node_info nb, nc;
        dn_model_node_info(b, i, &nb);
        dn_model_node_info(c, i, &nc);
        cr_assert_str_eq(nb.name, expect_b[i]);
        cr_assert_str_eq(nb.name, nc.name, "the same file sorts the same way twice");
    }
    dn_model_free(a);
    dn_model_free(b);
    dn_model_free(c);
}

Test(graph_summary, shapes_params_and_flops)
{
    dn_model *m = parse_ok(LENET_HEAD "\"nodes\": [" N_CONV "," N_RELU "," N_POOL "," N_FC
                                      "," N_PROB "," N_LOSS "]," LENET_TAIL);
    dn_node_info n;
    dn_model_node_info(m, node_position(m, "pool"), &n);
    cr_assert(n.batched && n.rank == 4 && n.shape[1] == 3 && n.shape[2] == 6 && n.shape[3] == 6);
    dn_model_node_info(m, node_position(m, "conv"), &n);
    cr_assert_eq(n.params, 3 * 1 * 3 * 3 + 3);
    cr_assert_eq(n.flops, 2LL * 9 * 144 * 3 + 3 * 144, "2·C·kh·kw·OH·OW·F + bias, one sample");
    dn_model_node_info(m, node_position(m, "fc"), &n);
    cr_assert_eq(n.params, 108 * 5 + 5);
    dn_model_node_info(m, node_position(m, "loss"), &n);
    cr_assert(n.rank == 0 && !n.batched, "the loss is a scalar");
    dn_model_free(m);
}

/* ---------------------------------------------------------------- whole-graph gradients */

typedef struct feed {
    int64_t batch;
    float image[4 * 2 * 12 * 12];
    int32_t label[4];
} feed;

/* Images U(−0.3, 0.7), labels 0, 3, 1, 4. */
static void make_feed(feed *f, int64_t batch, int channels, uint64_t seed)
{
    f->batch = batch;
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    dn_test_fill_uniform(f->image, batch * channels * 144, &rng, -0.3f, 0.7f);
    for (int i = 0; i < batch; i++)
        f->label[i] = (int32_t)(i * 3 % 5);
}

static void set_feed(dn_session *s, const feed *f, int channels)
{
    int64_t ishape[4] = { f->batch, channels, 12, 12 }, lshape[1] = { f->batch };
    cr_assert_eq(dn_session_set_input(s, "image", DN_F32, 4, ishape, f->image), DN_OK, "%s",
                 dn_session_errmsg(s));
    cr_assert_eq(dn_session_set_input(s, "label", DN_I32, 1, lshape, f->label), DN_OK, "%s",
                 dn_session_errmsg(s));
}

static double loss_of(dn_session *s, const char *loss)
{
    cr_assert_eq(dn_session_forward(s, DN_TRAIN, NULL, 0), DN_OK, "%s", dn_session_errmsg(s));
    dn_view v;
    cr_assert_eq(dn_session_tensor(s, loss, &v), DN_OK);
    return ((const float *)v.data)[0];
}

/* Compare each param's backward gradient with central differences of the loss, on a dozen
 * elements per param. All gradients are copied out first: a forward invalidates them. */
static void check_model_gradients(const char *json, int channels)
{
    dn_model *m = parse_ok(json);
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.seed = 7;
    dn_session *s = dn_test_session(m, &o);
    feed f;
    make_feed(&f, 3, channels, 11);
    set_feed(s, &f, channels);
    loss_of(s, "loss");
    cr_assert_eq(dn_session_backward(s), DN_OK, "%s", dn_session_errmsg(s));
    int n_params = dn_model_param_count(m);
    float *grads[16];
    cr_assert_leq(n_params, 16);
    for (int p = 0; p < n_params; p++) {
        dn_tensor_info info;
        dn_model_param_info(m, p, &info);
        dn_view g;
        cr_assert_eq(dn_session_param_grad(s, info.name, &g), DN_OK, "%s", dn_session_errmsg(s));
        int64_t n = dn_test_view_numel(&g);
        grads[p] = malloc((size_t)n * sizeof(float));
        memcpy(grads[p], g.data, (size_t)n * sizeof(float));
    }
    for (int p = 0; p < n_params; p++) {
        dn_tensor_info info;
        dn_model_param_info(m, p, &info);
        dn_view w;
        dn_session_param(s, info.name, &w);
        int64_t n = dn_test_view_numel(&w);
        for (int64_t k = 0; k < n; k += (n > 12 ? n / 12 : 1)) {
            float *x = &((float *)w.data)[k], old = *x;
            const float eps = 1e-3f;
            *x = old + eps;
            double lp = loss_of(s, "loss");
            *x = old - eps;
            double lm = loss_of(s, "loss");
            *x = old;
            double numeric = (lp - lm) / ((double)(old + eps) - (double)(old - eps));
            cr_assert(fabs(numeric - grads[p][k]) <= 5e-3 + 3e-2 * fabs(numeric),
                      "param %s[%lld]: backward %g, finite difference %g", info.name, (long long)k,
                      grads[p][k], numeric);
        }
        free(grads[p]);
    }
    dn_session_free(s);
    dn_model_free(m);
}

Test(graph_autograd, chain_matches_finite_differences)
{
    check_model_gradients(LENET_HEAD "\"nodes\": [" N_CONV "," N_RELU "," N_POOL "," N_FC "," N_PROB
                                     "," N_LOSS "]," LENET_TAIL,
                          1);
}

Test(graph_autograd, fan_out_adds_gradients)
{
    /* "t" feeds two Affine branches that meet again in Add. */
    check_model_gradients(
        LENET_HEAD
        "\"nodes\": ["
        "{\"name\": \"t\", \"op\": \"Tanh\", \"inputs\": [\"image\"]},"
        "{\"name\": \"a\", \"op\": \"Affine\", \"inputs\": [\"t\"], \"attrs\": {\"units\": 5}},"
        "{\"name\": \"b\", \"op\": \"Affine\", \"inputs\": [\"t\"], \"attrs\": {\"units\": 5}},"
        "{\"name\": \"fc\", \"op\": \"Add\", \"inputs\": [\"a\", \"b\"]}," N_PROB "," N_LOSS
        "]," LENET_TAIL,
        1);
}

Test(graph_autograd, shared_weights_add_gradients)
{
    /* One weight W used by two Affine nodes, and one tensor added to itself. */
    check_model_gradients(
        LENET_HEAD "\"params\": {\"W\": {\"shape\": [144, 5], \"init\": {\"type\": \"normal\", "
                   "\"std\": 0.1}}},"
                   "\"nodes\": ["
                   "{\"name\": \"s\", \"op\": \"Sigmoid\", \"inputs\": [\"image\"]},"
                   "{\"name\": \"a\", \"op\": \"Affine\", \"inputs\": [\"image\", \"W\"]},"
                   "{\"name\": \"b\", \"op\": \"Affine\", \"inputs\": [\"s\", \"W\"]},"
                   "{\"name\": \"ab\", \"op\": \"Add\", \"inputs\": [\"a\", \"b\"]},"
                   "{\"name\": \"fc\", \"op\": \"Add\", \"inputs\": [\"ab\", \"ab\"]}," N_PROB
                   "," N_LOSS "]," LENET_TAIL,
        1);
}

Test(graph_autograd, concat_branches)
{
    check_model_gradients(
        "{\"format\": \"dagnet/1\", \"inputs\": {\"image\": {\"shape\": [null, 2, 12, 12]},"
        " \"label\": {\"shape\": [null], \"dtype\": \"int32\"}},"
        " \"nodes\": ["
        "{\"name\": \"c1\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": 2, "
        "\"kernel\": [3, 2], \"stride\": 2}},"
        "{\"name\": \"c2\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": 3, "
        "\"kernel\": [3, 2], \"stride\": 2}},"
        "{\"name\": \"cat\", \"op\": \"Concat\", \"inputs\": [\"c1\", \"c2\"]},"
        "{\"name\": \"p\", \"op\": \"AvgPool\", \"inputs\": [\"cat\"], \"attrs\": {\"kernel\": 3, "
        "\"stride\": 2, \"pad\": 1}},"
        "{\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"p\"], \"attrs\": {\"units\": "
        "5}}," N_LOSS "], \"loss\": \"loss\"}",
        2);
}

/* ---------------------------------------------------------------- executor */

Test(graph_exec, runs_only_the_nodes_needed)
{
    dn_model *m = parse_ok(LENET_HEAD "\"nodes\": [" N_CONV "," N_RELU "," N_POOL "," N_FC
                                      "," N_PROB "," N_LOSS "]," LENET_TAIL);
    dn_session *s = dn_test_session(m, NULL);
    feed f;
    make_feed(&f, 2, 1, 3);
    int64_t ishape[4] = { 2, 1, 12, 12 };
    cr_assert_eq(dn_session_set_input(s, "image", DN_F32, 4, ishape, f.image), DN_OK);
    /* Inference of "prob" needs no label and never runs "loss". */
    cr_assert_eq(dn_session_forward(s, DN_INFER, NULL, 0), DN_OK, "%s", dn_session_errmsg(s));
    dn_view v;
    cr_assert_eq(dn_session_tensor(s, "prob", &v), DN_OK);
    cr_assert_eq(v.rank, 2);
    cr_assert_eq(v.shape[0], 2);
    cr_assert_neq(dn_session_tensor(s, "loss", &v), DN_OK);
    EXPECT_MSG(dn_session_errmsg(s), "not been computed");
    /* Fetching "relu" runs conv and relu only. */
    const char *fetch[] = { "relu" };
    cr_assert_eq(dn_session_forward(s, DN_INFER, fetch, 1), DN_OK);
    cr_assert_eq(dn_session_tensor(s, "relu", &v), DN_OK);
    cr_assert_neq(dn_session_tensor(s, "pool", &v), DN_OK);
    /* Training needs the label, which was never set. */
    cr_assert_eq(dn_session_forward(s, DN_TRAIN, NULL, 0), DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "input \"label\" is needed but has not been set");
    cr_assert_eq(dn_session_backward(s), DN_ERR_ARG, "no backward without a training forward");
    /* Feeding labels of another batch size drops the image: the message says why. */
    int32_t labels[3] = { 0, 1, 2 };
    int64_t lshape[1] = { 3 };
    cr_assert_eq(dn_session_set_input(s, "label", DN_I32, 1, lshape, labels), DN_OK);
    cr_assert_eq(dn_session_forward(s, DN_TRAIN, NULL, 0), DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "\"image\" is needed but was dropped when \"label\" "
                                     "changed the batch size from 2 to 3");
    dn_session_free(s);
    dn_model_free(m);
}

Test(graph_exec, no_gradient_work_towards_inputs_or_off_the_loss_path)
{
    /* Through the executor itself: which gradient buffers exist, and which dx the kernels get. */
    const char *json = LENET_HEAD "\"nodes\": [" N_CONV "," N_RELU "," N_POOL "," N_FC "," N_PROB
                                  "," N_LOSS "]," LENET_TAIL;
    dn_graph *g;
    dn_err err;
    cr_assert_eq(dn_graph_parse(json, strlen(json), "graph.json", &g, &err), DN_OK, "%s", err.msg);
    dn_exec e;
    cr_assert_eq(dn_exec_init(&e, g, 1, 1, &err), DN_OK, "%s", err.msg);
    feed f;
    make_feed(&f, 2, 1, 3);
    int64_t ishape[4] = { 2, 1, 12, 12 }, lshape[1] = { 2 };
    int image = dn_graph_find(g, "image"), label = dn_graph_find(g, "label");
    cr_assert_eq(dn_exec_set_input(&e, image, DN_F32, 4, ishape, f.image, &err), DN_OK, "%s",
                 err.msg);
    cr_assert_eq(dn_exec_set_input(&e, label, DN_I32, 1, lshape, f.label, &err), DN_OK, "%s",
                 err.msg);
    /* Buffers are planned for a run, so they exist once a forward has asked for one. */
    int targets[1] = { g->loss };
    cr_assert_eq(dn_exec_forward(&e, true, targets, 1, &err), DN_OK, "%s", err.msg);
    cr_assert_null(e.grad[image].data, "no gradient buffer for the image");
    cr_assert_null(e.grad[label].data, "none for the labels");
    cr_assert_null(e.grad[dn_graph_find(g, "prob")].data, "none off the loss path");
    cr_assert_not_null(e.grad[dn_graph_find(g, "relu")].data);
    int conv = g->values[dn_graph_find(g, "conv")].node;
    cr_assert_null(e.dx_views[e.node_first[conv]].data, "conv is not asked for d(image)");
    cr_assert_not_null(e.dx_views[e.node_first[conv] + 1].data, "but is for d(weight)");
    int loss = g->values[g->loss].node;
    cr_assert_null(e.dx_views[e.node_first[loss] + 1].data, "labels take no gradient");
    cr_assert_eq(dn_exec_backward(&e, &err), DN_OK, "%s", err.msg);
    cr_assert_not(e.computed[dn_graph_find(g, "prob")], "prob was not needed for the loss");
    dn_exec_free(&e);
    dn_graph_free(g);
}

Test(graph_exec, gradients_are_recomputed_not_accumulated_across_steps)
{
    dn_model *m = parse_ok(LENET_HEAD "\"nodes\": [" N_CONV "," N_RELU "," N_POOL "," N_FC
                                      "," N_PROB "," N_LOSS "]," LENET_TAIL);
    dn_session *s = dn_test_session(m, NULL);
    feed f;
    make_feed(&f, 2, 1, 5);
    set_feed(s, &f, 1);
    loss_of(s, "loss");
    dn_session_backward(s);
    dn_view g;
    dn_session_param_grad(s, "conv.weight", &g);
    float first[27];
    memcpy(first, g.data, sizeof first);
    loss_of(s, "loss");
    dn_session_backward(s);
    dn_session_param_grad(s, "conv.weight", &g);
    cr_assert_arr_eq(first, g.data, sizeof first);
    float norm = 0;
    for (int i = 0; i < 27; i++)
        norm += fabsf(first[i]);
    cr_assert_gt(norm, 0.0f, "the gradient is not trivially zero");
    dn_session_free(s);
    dn_model_free(m);
}

Test(graph_exec, dropout_is_identity_in_inference_and_masks_in_training)
{
    dn_model *m =
        parse_ok("{\"format\": \"dagnet/1\", \"inputs\": {\"x\": {\"shape\": [null, 1000]}},"
                 " \"nodes\": [{\"name\": \"d\", \"op\": \"Dropout\", \"inputs\": [\"x\"], "
                 "\"attrs\": {\"ratio\": 0.4}}],"
                 " \"outputs\": [\"d\"]}");
    dn_session *s = dn_test_session(m, NULL);
    float x[2000];
    for (int i = 0; i < 2000; i++)
        x[i] = 1.0f + (float)i;
    int64_t shape[2] = { 2, 1000 };
    dn_session_set_input(s, "x", DN_F32, 2, shape, x);
    dn_view v;
    cr_assert_eq(dn_session_forward(s, DN_INFER, NULL, 0), DN_OK);
    dn_session_tensor(s, "d", &v);
    cr_assert_arr_eq(v.data, x, sizeof x);
    cr_assert_eq(dn_session_forward(s, DN_TRAIN, NULL, 0), DN_OK);
    dn_session_tensor(s, "d", &v);
    int zeros = 0;
    for (int i = 0; i < 2000; i++) {
        float y = ((float *)v.data)[i];
        if (y == 0)
            zeros++;
        else
            cr_assert_float_eq(y, x[i] / 0.6f, 1e-3f * x[i]);
    }
    cr_assert(zeros > 700 && zeros < 900, "about 40%% dropped, found %d of 2000", zeros);
    dn_session_free(s);
    dn_model_free(m);
}

/* ---------------------------------------------------------------- no globals */

typedef struct run {
    const dn_model *m;
    uint64_t seed;
    float loss;
} run;

static void *train_step(void *arg)
{
    run *r = arg;
    dn_session *s;
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.seed = r->seed;
    o.threads = 1;
    dn_session_new(r->m, &o, &s);
    feed f;
    make_feed(&f, 4, 1, 9);
    int64_t ishape[4] = { 4, 1, 12, 12 }, lshape[1] = { 4 };
    dn_session_set_input(s, "image", DN_F32, 4, ishape, f.image);
    dn_session_set_input(s, "label", DN_I32, 1, lshape, f.label);
    dn_session_forward(s, DN_TRAIN, NULL, 0);
    dn_session_backward(s);
    dn_view v;
    r->loss = dn_session_tensor(s, "loss", &v) == DN_OK ? ((float *)v.data)[0] : NAN;
    dn_session_free(s);
    return NULL;
}

Test(graph_exec, two_sessions_on_two_threads_agree_with_one)
{
    dn_model *m = parse_ok(LENET_HEAD "\"nodes\": [" N_CONV "," N_RELU "," N_POOL "," N_FC
                                      "," N_PROB "," N_LOSS "]," LENET_TAIL);
    run alone = { m, 42, 0 }, a = { m, 42, 0 }, b = { m, 43, 0 };
    train_step(&alone);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, train_step, &a);
    pthread_create(&tb, NULL, train_step, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert(isfinite(alone.loss));
    cr_assert_eq(a.loss, alone.loss, "same seed, same loss, whatever runs beside it");
    cr_assert_neq(b.loss, alone.loss, "another seed initialises differently");
    dn_model_free(m);
}

/* ---------------------------------------------------------------- inference fusion */

/* An inference forward of an example model (image [N, 1, 28, 28]) at batch n, through the
 * executor; targets: "prob", and with `unfused` also every Conv and Affine output, which keeps
 * them and so leaves every ReLU (and MaxPool) unfused (the caller would read the pre-ReLU
 * values). Returns prob's values (malloc'd) and counts the nodes the plan folded into their
 * producers. */
static float *infer_model(const char *file, int64_t n, int threads, bool unfused, int *fused)
{
    size_t size;
    char *json = (char *)dn_test_read_file(file, &size);
    dn_graph *g;
    dn_err err;
    cr_assert_eq(dn_graph_parse(json, size, file, &g, &err), DN_OK, "%s", err.msg);
    free(json);
    dn_exec e;
    cr_assert_eq(dn_exec_init(&e, g, 7, threads, &err), DN_OK, "%s", err.msg);
    float *image = malloc((size_t)n * 784 * sizeof *image);
    dn_rng rng;
    dn_rng_seed(&rng, 11);
    dn_test_fill_uniform(image, n * 784, &rng, -1.0f, 1.0f);
    int64_t ishape[4] = { n, 1, 28, 28 };
    cr_assert_eq(dn_exec_set_input(&e, dn_graph_find(g, "image"), DN_F32, 4, ishape, image, &err),
                 DN_OK, "%s", err.msg);
    int targets[32], nt = 0, prob = dn_graph_find(g, "prob");
    targets[nt++] = prob;
    for (int i = 0; i < g->n_nodes && unfused; i++)
        if (g->nodes[i].op->epilogues)
            targets[nt++] = g->nodes[i].output;
    cr_assert_eq(dn_exec_forward(&e, false, targets, nt, &err), DN_OK, "%s", err.msg);
    *fused = 0;
    for (int i = 0; i < g->n_nodes; i++)
        *fused += e.fused[i];
    int64_t count = dn_shape_numel(&e.val[prob].shape);
    float *out = malloc((size_t)count * sizeof *out);
    memcpy(out, e.val[prob].data, (size_t)count * sizeof *out);
    /* A training forward right after plans again, with nothing fused. */
    int32_t *labels = calloc((size_t)n, sizeof *labels);
    int64_t lshape[1] = { n };
    cr_assert_eq(dn_exec_set_input(&e, dn_graph_find(g, "label"), DN_I32, 1, lshape, labels, &err),
                 DN_OK, "%s", err.msg);
    int loss[1] = { g->loss };
    cr_assert_eq(dn_exec_forward(&e, true, loss, 1, &err), DN_OK, "%s", err.msg);
    for (int i = 0; i < g->n_nodes; i++)
        cr_assert(!e.fused[i] && e.epilogue[i] == DN_EPILOGUE_NONE, "node %s fused in training",
                  g->nodes[i].name);
    free(labels);
    free(image);
    dn_exec_free(&e);
    dn_graph_free(g);
    return out;
}

/* Folding each ReLU into the Conv or Affine before it, and the 2×2 MaxPool after a Conv's
 * ReLU, gives the unfused forward's outputs bit for bit, not merely to float rounding: the
 * producer computes the same sums in the same order and applies ReLU's own select (NaN and
 * −0 pass) to each, and the pool MaxPool's selects in its order, while the block is in cache
 * rather than in passes of their own. Batch 100 and batch 1 split the work differently
 * (rows at batch 1), each with its epilogue. */
Test(graph_exec, inference_fusion_gives_the_unfused_forward_bit_for_bit)
{
    const char *models[] = { DAGNET_SOURCE_DIR "/examples/models/lenet5.json",
                             DAGNET_SOURCE_DIR "/examples/models/simple_convnet.json" };
    const int folded[] = { 4 + 2, 2 + 1 }; /* every ReLU; every MaxPool after a Conv's ReLU */
    const int64_t batches[] = { 100, 1 };
    for (int m = 0; m < 2; m++)
        for (int b = 0; b < 2; b++) {
            int fused, none;
            float *y = infer_model(models[m], batches[b], 2, false, &fused);
            float *want = infer_model(models[m], batches[b], 2, true, &none);
            cr_assert_eq(fused, folded[m], "%s: %d nodes folded, %d expected", models[m], fused,
                         folded[m]);
            cr_assert_eq(none, 0, "%s: a kept Conv or Affine output must leave its ReLU alone",
                         models[m]);
            cr_assert_eq(memcmp(y, want, (size_t)batches[b] * 10 * sizeof *y), 0,
                         "%s, batch %lld: the fused forward differs from the unfused one",
                         models[m], (long long)batches[b]);
            free(y), free(want);
        }
}
