/*
 * test_plan.c — memory planning by lifetime (graph/plan.c) must not change a single bit.
 *
 * Each test runs the same model twice from the same seed: once with keep_tensors (no two
 * tensors share memory), once planned (activations, gradients and saved state share the
 * arena; ReLU, Sigmoid, Tanh, Dropout and Flatten run in place when they can). The losses,
 * the fetched outputs and every param gradient must be bit-identical, across training and
 * inference runs in any order and across batch sizes. A branchy model covers fan-out (a
 * value read twice may not be overwritten in place), Add, Concat, LRN and Dropout; LeNet-5
 * covers the chain the planner shares most.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "dagnet.h"
#include "graph/exec.h"
#include "helpers.h"
#include "runtime/rng.h"

#define BRANCHY                                                                                    \
    "{\"format\": \"dagnet/1\", \"name\": \"branchy\","                                            \
    " \"inputs\": {\"image\": {\"shape\": [null, 3, 8, 8]}, \"label\": {\"shape\": [null], "       \
    "\"dtype\": \"int32\"}},"                                                                      \
    " \"nodes\": ["                                                                                \
    "  {\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": "  \
    "4, \"kernel\": 3, \"pad\": 1}},"                                                              \
    "  {\"name\": \"ra\", \"op\": \"ReLU\", \"inputs\": [\"conv\"]},"                              \
    "  {\"name\": \"sig\", \"op\": \"Sigmoid\", \"inputs\": [\"ra\"]},"                            \
    "  {\"name\": \"th\", \"op\": \"Tanh\", \"inputs\": [\"ra\"]},"                                \
    "  {\"name\": \"sum\", \"op\": \"Add\", \"inputs\": [\"sig\", \"th\"]},"                       \
    "  {\"name\": \"drop\", \"op\": \"Dropout\", \"inputs\": [\"sum\"], \"attrs\": {\"ratio\": "   \
    "0.3}},"                                                                                       \
    "  {\"name\": \"norm\", \"op\": \"LRN\", \"inputs\": [\"drop\"], \"attrs\": {\"size\": 3}},"   \
    "  {\"name\": \"cat\", \"op\": \"Concat\", \"inputs\": [\"norm\", \"ra\"]},"                   \
    "  {\"name\": \"pool\", \"op\": \"MaxPool\", \"inputs\": [\"cat\"], \"attrs\": {\"kernel\": "  \
    "2, \"stride\": 2}},"                                                                          \
    "  {\"name\": \"flat\", \"op\": \"Flatten\", \"inputs\": [\"pool\"]},"                         \
    "  {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"flat\"], \"attrs\": {\"units\": 6}}," \
    "  {\"name\": \"r2\", \"op\": \"ReLU\", \"inputs\": [\"fc\"]},"                                \
    "  {\"name\": \"out\", \"op\": \"Affine\", \"inputs\": [\"r2\"], \"attrs\": {\"units\": 3}},"  \
    "  {\"name\": \"prob\", \"op\": \"Softmax\", \"inputs\": [\"out\"]},"                          \
    "  {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"out\", \"label\"]}],"  \
    " \"outputs\": [\"prob\"], \"loss\": \"loss\"}"

typedef struct pair {
    dn_model *m;
    dn_session *shared, *kept; /* planned, and keep_tensors */
    int c, h, w, classes;
} pair;

static dn_session *new_session(dn_model *m, bool keep)
{
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.seed = 7;
    o.threads = 2;
    o.keep_tensors = keep;
    return dn_test_session(m, &o);
}

static pair open_pair(dn_model *m, int c, int h, int w, int classes)
{
    return (pair){ m, new_session(m, false), new_session(m, true), c, h, w, classes };
}

static void close_pair(pair *p)
{
    dn_session_free(p->shared);
    dn_session_free(p->kept);
    dn_model_free(p->m);
}

/* The same random batch into both sessions. */
static void feed(pair *p, int64_t n, uint64_t seed)
{
    int64_t pixels = n * p->c * p->h * p->w;
    float *image = malloc((size_t)pixels * sizeof *image);
    int32_t *label = malloc((size_t)n * sizeof *label);
    cr_assert(image && label);
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    dn_test_fill_uniform(image, pixels, &rng, 0.0f, 1.0f);
    for (int64_t i = 0; i < n; i++)
        label[i] = (int32_t)dn_rng_below(&rng, (uint64_t)p->classes);
    int64_t ishape[4] = { n, p->c, p->h, p->w };
    dn_session *both[2] = { p->shared, p->kept };
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(dn_session_set_input(both[k], "image", DN_F32, 4, ishape, image), DN_OK);
        cr_assert_eq(dn_session_set_input(both[k], "label", DN_I32, 1, &n, label), DN_OK);
    }
    free(image);
    free(label);
}

static void expect_same_tensor(pair *p, const char *name)
{
    dn_view a, b;
    cr_assert_eq(dn_session_tensor(p->shared, name, &a), DN_OK, "%s", dn_session_errmsg(p->shared));
    cr_assert_eq(dn_session_tensor(p->kept, name, &b), DN_OK, "%s", dn_session_errmsg(p->kept));
    int64_t n = dn_test_view_numel(&a);
    cr_assert_eq(memcmp(a.data, b.data, (size_t)n * 4), 0, "\"%s\" differs when memory is shared",
                 name);
}

static void expect_same_grads(pair *p)
{
    for (int i = 0; i < dn_model_param_count(p->m); i++) {
        dn_tensor_info info;
        dn_model_param_info(p->m, i, &info);
        dn_view a, b;
        cr_assert_eq(dn_session_param_grad(p->shared, info.name, &a), DN_OK);
        cr_assert_eq(dn_session_param_grad(p->kept, info.name, &b), DN_OK);
        int64_t n = dn_test_view_numel(&a);
        cr_assert_eq(memcmp(a.data, b.data, (size_t)n * 4), 0,
                     "gradient of \"%s\" differs when memory is shared", info.name);
    }
}

static void train_both(pair *p)
{
    cr_assert_eq(dn_session_forward(p->shared, DN_TRAIN, NULL, 0), DN_OK, "%s",
                 dn_session_errmsg(p->shared));
    cr_assert_eq(dn_session_forward(p->kept, DN_TRAIN, NULL, 0), DN_OK);
    cr_assert_eq(dn_session_backward(p->shared), DN_OK);
    cr_assert_eq(dn_session_backward(p->kept), DN_OK);
    expect_same_tensor(p, "loss");
    expect_same_tensor(p, "prob"); /* fetched: readable after backward too */
    expect_same_grads(p);
}

static void infer_both(pair *p)
{
    cr_assert_eq(dn_session_forward(p->shared, DN_INFER, NULL, 0), DN_OK);
    cr_assert_eq(dn_session_forward(p->kept, DN_INFER, NULL, 0), DN_OK);
    expect_same_tensor(p, "prob");
}

static void run_schedule(pair *p)
{
    feed(p, 5, 1);
    train_both(p);
    infer_both(p);
    train_both(p); /* the plan switches back */
    feed(p, 2, 2); /* a smaller batch reuses the arena */
    train_both(p);
    infer_both(p);
    feed(p, 5, 3);
    train_both(p);
}

Test(graph_plan, branchy_model_is_bit_identical_with_shared_memory)
{
    dn_model *m = dn_test_parse_model(BRANCHY, "branchy.json");
    pair p = open_pair(m, 3, 8, 8, 3);
    run_schedule(&p);
    close_pair(&p);
}

Test(graph_plan, lenet5_is_bit_identical_with_shared_memory)
{
    dn_model *m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    pair p = open_pair(m, 1, 28, 28, 10);
    run_schedule(&p);
    close_pair(&p);
}

Test(graph_plan, relu_runs_in_place_and_memory_is_shared)
{
    dn_model *m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    pair p = open_pair(m, 1, 28, 28, 10);
    feed(&p, 4, 1);
    cr_assert_eq(dn_session_forward(p.shared, DN_TRAIN, NULL, 0), DN_OK);
    const dn_exec *e = &p.shared->e;
    int conv1 = dn_graph_find(e->g, "conv1"), relu1 = dn_graph_find(e->g, "relu1");
    cr_assert_eq(e->val[conv1].data, e->val[relu1].data, "relu1 overwrites conv1's output");
    dn_memory_info mem;
    cr_assert_eq(dn_session_memory(p.shared, &mem), DN_OK);
    cr_assert_lt(mem.arena, mem.arena_unshared, "training shares buffers: %zu of %zu bytes",
                 mem.arena, mem.arena_unshared);
    size_t train_arena = mem.arena;
    cr_assert_eq(dn_session_forward(p.shared, DN_INFER, NULL, 0), DN_OK);
    cr_assert_eq(dn_session_memory(p.shared, &mem), DN_OK);
    cr_assert_lt(mem.arena, train_arena / 2,
                 "inference frees what no later node reads: %zu bytes against %zu in training",
                 mem.arena, train_arena);
    close_pair(&p);
}

Test(graph_plan, unfetched_tensors_are_not_readable_but_fetched_ones_are)
{
    dn_model *m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    pair p = open_pair(m, 1, 28, 28, 10);
    feed(&p, 3, 4);
    const char *fetch[2] = { "conv2", "prob" };
    cr_assert_eq(dn_session_forward(p.shared, DN_INFER, fetch, 2), DN_OK);
    cr_assert_eq(dn_session_forward(p.kept, DN_INFER, fetch, 2), DN_OK);
    expect_same_tensor(&p, "conv2");
    expect_same_tensor(&p, "prob");
    dn_view v;
    cr_assert_eq(dn_session_tensor(p.shared, "relu1", &v), DN_ERR_ARG,
                 "an intermediate tensor nobody asked for may have been overwritten");
    EXPECT_MSG(dn_session_errmsg(p.shared), "relu1");
    cr_assert_eq(dn_session_tensor(p.kept, "relu1", &v), DN_OK, "keep_tensors keeps it");
    close_pair(&p);
}
