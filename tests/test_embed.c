/*
 * test_embed.c — embedding: shared read-only weights (dn_weights) and the inference sessions
 * that borrow them, weights from and to memory, and the stable header's promises (version,
 * options' struct_size, an output's shape before a run, four threads on one model and one
 * set of weights giving the sequential run's bits).
 *
 * The model is examples/models/lenet5.json (image [N, 1, 28, 28], labels [N], output "prob"
 * [N, 10]); its weights come from a training session seeded 7, saved as safetensors, so that
 * a training session that loads them and an inference session that borrows them must give
 * the same bits (same kernels, same thread count).
 */
#include <criterion/criterion.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"

#define BATCH 3
#define SIDE 28
#define CLASSES 10

TestSuite(embed_weights, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(embed_infer, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(embed_memory, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(embed_threads, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(embed_header);
TestSuite(embed_state, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

static dn_model *lenet(void) { return dn_test_load_model(DN_TEST_MODELS "/lenet5.json"); }

/* A one-thread training session seeded `seed` (its params drawn from the seed). */
static dn_session *trainable(const dn_model *m, uint64_t seed)
{
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.seed = seed;
    o.threads = 1;
    return dn_test_session(m, &o);
}

/* An inference session borrowing w. */
static dn_session *borrower(const dn_model *m, const dn_weights *w, int threads)
{
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.threads = threads;
    o.weights = w;
    return dn_test_session(m, &o);
}

/* Weights of a session seeded 7, saved to the scratch directory; the path. */
static const char *saved_weights(const dn_model *m)
{
    dn_session *s = trainable(m, 7);
    const char *path = dn_test_path("w.safetensors");
    cr_assert_eq(dn_session_save_weights(s, path), DN_OK, "%s", dn_session_errmsg(s));
    dn_session_free(s);
    return path;
}

static dn_weights *load(const dn_model *m, const char *path)
{
    dn_weights *w = NULL;
    dn_status st = dn_weights_load(m, path, &w);
    cr_assert_eq(st, DN_OK, "%s", dn_weights_errmsg(w));
    return w;
}

/* Run the model on `images` ([BATCH, 1, 28, 28]) and copy "prob" into prob. */
static void infer(dn_session *s, const float *images, float *prob)
{
    int64_t shape[4] = { BATCH, 1, SIDE, SIDE };
    cr_assert_eq(dn_session_set_input(s, "image", DN_F32, 4, shape, images), DN_OK, "%s",
                 dn_session_errmsg(s));
    cr_assert_eq(dn_session_forward(s, DN_INFER, NULL, 0), DN_OK, "%s", dn_session_errmsg(s));
    cr_assert_eq(dn_session_copy_tensor(s, "prob", prob, BATCH * CLASSES * sizeof(float)), DN_OK,
                 "%s", dn_session_errmsg(s));
}

/* ---------------------------------------------------------------- embed_weights */

Test(embed_weights, borrowing_session_matches_loading_session)
{
    dn_model *m = lenet();
    const char *path = saved_weights(m);
    dn_weights *w = load(m, path);
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 3, 0, 1);
    float want[BATCH * CLASSES], got[BATCH * CLASSES];
    dn_session *t = trainable(m, 99); /* other params, replaced by the file's */
    cr_assert_eq(dn_session_load_weights(t, path), DN_OK, "%s", dn_session_errmsg(t));
    infer(t, images, want);
    dn_session *s = borrower(m, w, 1);
    infer(s, images, got);
    dn_test_expect_same_bits(got, want, BATCH * CLASSES, "prob, borrowed vs loaded weights");
    /* The weights object holds the file's tensors, by name. */
    dn_view wv, pv;
    cr_assert_eq(dn_weights_tensor(w, "conv1.weight", &wv), DN_OK, "%s", dn_weights_errmsg(w));
    cr_assert_eq(dn_session_param(t, "conv1.weight", &pv), DN_OK, "%s", dn_session_errmsg(t));
    cr_assert_eq(wv.rank, pv.rank);
    cr_assert_eq(memcmp(wv.shape, pv.shape, sizeof wv.shape), 0);
    dn_test_expect_same_bits(wv.data, pv.data, dn_test_view_numel(&wv), "conv1.weight");
    size_t bytes = 0;
    for (int i = 0; i < dn_model_param_count(m); i++) {
        dn_tensor_info info;
        cr_assert_eq(dn_model_param_info(m, i, &info), DN_OK);
        size_t n = sizeof(float);
        for (int d = 0; d < info.rank; d++)
            n *= (size_t)info.shape[d];
        bytes += n;
    }
    cr_assert_eq(dn_weights_bytes(w), bytes);
    dn_session_free(s);
    dn_session_free(t);
    dn_weights_free(w);
    dn_model_free(m);
    free(images);
}

/* The session reads the weights' own buffer: a change to it (which the API forbids, and the
 * test does on purpose) shows in the session's next run. A copy would not see it. */
Test(embed_weights, sessions_borrow_without_copying)
{
    dn_model *m = lenet();
    dn_weights *w = load(m, saved_weights(m));
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 4, 0, 1);
    float before[BATCH * CLASSES], after[BATCH * CLASSES];
    dn_session *s = borrower(m, w, 1);
    infer(s, images, before);
    dn_view v;
    cr_assert_eq(dn_weights_tensor(w, "fc3.bias", &v), DN_OK, "%s", dn_weights_errmsg(w));
    ((float *)v.data)[0] += 5.0f;
    infer(s, images, after);
    cr_assert(memcmp(before, after, sizeof before) != 0, "the session copied the weights");
    dn_memory_info mem;
    cr_assert_eq(dn_session_memory(s, &mem), DN_OK);
    cr_assert_eq(mem.params, 0, "an inference session owns no params, found %zu", mem.params);
    cr_assert_eq(mem.param_grads, 0);
    dn_session_free(s);
    dn_weights_free(w);
    dn_model_free(m);
    free(images);
}

Test(embed_weights, from_session_is_a_snapshot)
{
    dn_model *m = lenet();
    dn_session *t = trainable(m, 11);
    dn_weights *w = NULL;
    cr_assert_eq(dn_weights_from_session(t, &w), DN_OK, "%s", dn_weights_errmsg(w));
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 5, 0, 1);
    float want[BATCH * CLASSES], got[BATCH * CLASSES];
    infer(t, images, want);
    dn_session *s = borrower(m, w, 1);
    infer(s, images, got);
    dn_test_expect_same_bits(got, want, BATCH * CLASSES, "prob, snapshot vs its session");
    /* Saved weights load back into the same bits. */
    const char *path = dn_test_path("snap.safetensors");
    cr_assert_eq(dn_weights_save(w, path), DN_OK, "%s", dn_weights_errmsg(w));
    dn_weights *back = load(m, path);
    dn_view a, b;
    cr_assert_eq(dn_weights_tensor(w, "fc1.weight", &a), DN_OK);
    cr_assert_eq(dn_weights_tensor(back, "fc1.weight", &b), DN_OK);
    dn_test_expect_same_bits(a.data, b.data, dn_test_view_numel(&a), "fc1.weight");
    dn_weights_free(back);
    dn_session_free(s);
    dn_weights_free(w);
    dn_session_free(t);
    dn_model_free(m);
    free(images);
}

Test(embed_weights, wrong_weights_are_refused_with_a_message)
{
    dn_model *m = lenet();
    dn_model *other = dn_test_load_model(DN_TEST_MODELS "/mlp_tanh.json");
    const char *path = saved_weights(m);
    dn_weights *w = NULL;
    dn_status st = dn_weights_load(other, path, &w);
    dn_test_expect_status(st, DN_ERR_SHAPE, dn_weights_errmsg(w));
    EXPECT_MSG_FROM(dn_weights_errmsg(w), path,
                    "param \"fc1.weight\": expected shape [784,100], found [400,120]");
    cr_assert_eq(dn_weights_tensor(w, "fc1.weight", &(dn_view){ 0 }), DN_ERR_ARG);
    EXPECT_MSG(dn_weights_errmsg(w), "dn_weights_tensor", "did not load");
    dn_weights_free(w);
    /* Weights of one model lent to a session of another. */
    dn_weights *mine = load(m, path);
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.weights = mine;
    dn_session *s = NULL;
    st = dn_session_new(other, &o, &s);
    dn_test_expect_status(st, DN_ERR_ARG, dn_session_errmsg(s));
    EXPECT_MSG(dn_session_errmsg(s), "dn_session_new", "another model (lenet5.json)",
               "(mlp_tanh.json)");
    dn_session_free(s);
    cr_assert_eq(dn_weights_tensor(mine, "nope", &(dn_view){ 0 }), DN_ERR_ARG);
    EXPECT_MSG(dn_weights_errmsg(mine), "no param or state tensor \"nope\"");
    cr_assert_eq(dn_weights_load(m, NULL, &w), DN_ERR_ARG);
    EXPECT_MSG(dn_weights_errmsg(w), "dn_weights_load: path is NULL");
    dn_weights_free(w);
    cr_assert_eq(dn_weights_load(NULL, path, &w), DN_ERR_ARG);
    EXPECT_MSG(dn_weights_errmsg(w), "model is NULL");
    dn_weights_free(w);
    cr_assert_eq(dn_weights_load(m, path, NULL), DN_ERR_ARG);
    dn_weights_free(mine);
    dn_model_free(other);
    dn_model_free(m);
}

/* ---------------------------------------------------------------- embed_infer */

/* Everything that would write params or needs gradients is refused, with a message. */
Test(embed_infer, training_calls_are_refused)
{
    dn_model *m = lenet();
    dn_weights *w = load(m, saved_weights(m));
    dn_session *s = borrower(m, w, 1);
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 6, 0, 1);
    int32_t labels[BATCH] = { 1, 2, 3 };
    int64_t shape[4] = { BATCH, 1, SIDE, SIDE }, lshape[1] = { BATCH };
    cr_assert_eq(dn_session_set_input(s, "image", DN_F32, 4, shape, images), DN_OK);
    cr_assert_eq(dn_session_set_input(s, "label", DN_I32, 1, lshape, labels), DN_OK);
    dn_view v;
    dn_status st = dn_session_forward(s, DN_TRAIN, NULL, 0);
    dn_test_expect_status(st, DN_ERR_ARG, dn_session_errmsg(s));
    EXPECT_MSG_FROM(dn_session_errmsg(s), "lenet5.json", "training forward", "inference session",
                    "DN_INFER");
    const char *fetch[] = { "loss" };
    cr_assert_eq(dn_session_forward(s, DN_INFER, fetch, 1), DN_OK, "%s", dn_session_errmsg(s));
    cr_assert_eq(dn_session_tensor(s, "loss", &v), DN_OK); /* the loss itself: fine */
    st = dn_session_backward(s);
    dn_test_expect_status(st, DN_ERR_ARG, dn_session_errmsg(s));
    EXPECT_MSG(dn_session_errmsg(s), "dn_session_backward", "inference session");
    cr_assert_eq(dn_session_param(s, "fc1.weight", &v), DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "dn_session_param", "dn_weights_tensor");
    cr_assert_eq(dn_session_param_grad(s, "fc1.weight", &v), DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "dn_session_param_grad", "inference session");
    cr_assert_eq(dn_session_load_weights(s, dn_test_path("w.safetensors")), DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "dn_session_load_weights", "read-only");
    cr_assert_eq(dn_session_load_weights_memory(s, "x", 1), DN_ERR_ARG);
    cr_assert_eq(dn_session_save_gradients(s, dn_test_path("g.safetensors"), false), DN_ERR_ARG);
    dn_trainer *t = NULL;
    st = dn_trainer_new(s, NULL, NULL, &t);
    dn_test_expect_status(st, DN_ERR_ARG, dn_trainer_errmsg(t));
    EXPECT_MSG(dn_trainer_errmsg(t), "dn_trainer_new", "inference session");
    dn_trainer_free(t);
    /* Saving what it reads is fine. */
    cr_assert_eq(dn_session_save_weights(s, dn_test_path("again.safetensors")), DN_OK, "%s",
                 dn_session_errmsg(s));
    dn_session_free(s);
    dn_weights_free(w);
    dn_model_free(m);
    free(images);
}

/* An inference session's arena holds the forward's activations only: smaller than a training
 * session's after a training step, which keeps activations and gradients for backward. */
Test(embed_infer, no_gradient_buffers)
{
    dn_model *m = lenet();
    dn_weights *w = load(m, saved_weights(m));
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 8, 0, 1);
    float prob[BATCH * CLASSES];
    int32_t labels[BATCH] = { 0, 1, 2 };
    int64_t lshape[1] = { BATCH };
    dn_session *s = borrower(m, w, 1), *t = trainable(m, 7);
    infer(s, images, prob);
    cr_assert_eq(dn_session_set_input(t, "label", DN_I32, 1, lshape, labels), DN_OK);
    infer(t, images, prob);
    cr_assert_eq(dn_session_forward(t, DN_TRAIN, NULL, 0), DN_OK, "%s", dn_session_errmsg(t));
    cr_assert_eq(dn_session_backward(t), DN_OK, "%s", dn_session_errmsg(t));
    dn_memory_info mi, mt;
    cr_assert_eq(dn_session_memory(s, &mi), DN_OK);
    cr_assert_eq(dn_session_memory(t, &mt), DN_OK);
    cr_assert_gt(mt.param_grads, 0);
    cr_assert_lt(mi.arena, mt.arena, "inference arena %zu, training arena %zu", mi.arena, mt.arena);
    /* Its profile counts no backward work. */
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_node_profile p;
        cr_assert_eq(dn_session_node_profile(s, i, &p), DN_OK);
        cr_assert_eq(p.backward_flops, 0, "node %s", p.node);
    }
    /* dn_session_evaluate runs on it too. */
    dn_dataset *d = NULL;
    cr_assert_eq(dn_dataset_from_arrays(BATCH, 1, SIDE, SIDE, images, labels, CLASSES, &d), DN_OK);
    dn_eval_result r;
    cr_assert_eq(dn_session_evaluate(s, d, NULL, 2, &r), DN_OK, "%s", dn_session_errmsg(s));
    cr_assert_eq(r.count, BATCH);
    dn_eval_result_free(&r);
    dn_dataset_free(d);
    dn_session_free(t);
    dn_session_free(s);
    dn_weights_free(w);
    dn_model_free(m);
    free(images);
}

/* ---------------------------------------------------------------- embed_memory */

Test(embed_memory, weights_round_trip_through_buffers)
{
    dn_model *m = lenet();
    dn_session *a = trainable(m, 21), *b = trainable(m, 22);
    void *buf = NULL;
    size_t size = 0;
    cr_assert_eq(dn_session_save_weights_memory(a, &buf, &size), DN_OK, "%s", dn_session_errmsg(a));
    /* The same bytes as the file dn_session_save_weights writes. */
    const char *path = dn_test_path("a.safetensors");
    cr_assert_eq(dn_session_save_weights(a, path), DN_OK);
    size_t fsize;
    unsigned char *file = dn_test_read_file(path, &fsize);
    cr_assert_eq(fsize, size);
    cr_assert_eq(memcmp(file, buf, size), 0, "the buffer differs from the file");
    free(file);
    cr_assert_eq(dn_session_load_weights_memory(b, buf, size), DN_OK, "%s", dn_session_errmsg(b));
    dn_view pa, pb;
    cr_assert_eq(dn_session_param(a, "conv2.weight", &pa), DN_OK);
    cr_assert_eq(dn_session_param(b, "conv2.weight", &pb), DN_OK);
    dn_test_expect_same_bits(pb.data, pa.data, dn_test_view_numel(&pa), "conv2.weight");
    dn_weights *w = NULL;
    cr_assert_eq(dn_weights_from_memory(m, buf, size, "mine", &w), DN_OK, "%s",
                 dn_weights_errmsg(w));
    cr_assert_eq(dn_weights_tensor(w, "conv2.weight", &pb), DN_OK);
    dn_test_expect_same_bits(pb.data, pa.data, dn_test_view_numel(&pa), "conv2.weight (weights)");
    dn_weights_free(w);
    /* A truncated image is refused, naming the label; the session's params are unchanged. */
    dn_weights *bad = NULL;
    dn_status st = dn_weights_from_memory(m, buf, size - 4, "cut", &bad);
    dn_test_expect_status(st, DN_ERR_PARSE, dn_weights_errmsg(bad));
    EXPECT_MSG_FROM(dn_weights_errmsg(bad), "cut", "");
    dn_weights_free(bad);
    cr_assert_eq(dn_session_load_weights_memory(b, buf, 7), DN_ERR_PARSE);
    EXPECT_MSG_FROM(dn_session_errmsg(b), "<memory>", "");
    cr_assert_eq(dn_session_load_weights_memory(b, NULL, 7), DN_ERR_ARG);
    cr_assert_eq(dn_session_save_weights_memory(b, NULL, &size), DN_ERR_ARG);
    dn_free(buf);
    dn_session_free(a);
    dn_session_free(b);
    dn_model_free(m);
}

Test(embed_memory, copy_tensor_checks_the_buffer)
{
    dn_model *m = lenet();
    dn_session *s = trainable(m, 1);
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 9, 0, 1);
    float prob[BATCH * CLASSES];
    infer(s, images, prob);
    dn_view v;
    cr_assert_eq(dn_session_tensor(s, "prob", &v), DN_OK);
    dn_test_expect_same_bits(prob, v.data, BATCH * CLASSES, "copied prob");
    dn_status st = dn_session_copy_tensor(s, "prob", prob, sizeof prob - 1);
    dn_test_expect_status(st, DN_ERR_ARG, dn_session_errmsg(s));
    EXPECT_MSG(dn_session_errmsg(s), "takes 120 bytes", "holds 119");
    cr_assert_eq(dn_session_copy_tensor(s, "prob", NULL, 4), DN_ERR_ARG);
    dn_session_free(s);
    dn_model_free(m);
    free(images);
}

/* ---------------------------------------------------------------- embed_threads */

#define THREADS 4

typedef struct job {
    const dn_model *m;
    const dn_weights *w;
    const float *images;
    float prob[BATCH * CLASSES];
    dn_status st;
    char msg[256];
} job;

/* A session of its own on the shared model and weights; no Criterion off the main thread. */
static void *run(void *arg)
{
    job *j = arg;
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.threads = 1;
    o.weights = j->w;
    dn_session *s = NULL;
    int64_t shape[4] = { BATCH, 1, SIDE, SIDE };
    dn_status st = dn_session_new(j->m, &o, &s);
    for (int round = 0; !st && round < 3; round++) {
        st = dn_session_set_input(s, "image", DN_F32, 4, shape, j->images);
        if (!st)
            st = dn_session_forward(s, DN_INFER, NULL, 0);
        if (!st)
            st = dn_session_copy_tensor(s, "prob", j->prob, sizeof j->prob);
    }
    j->st = st;
    snprintf(j->msg, sizeof j->msg, "%s", dn_session_errmsg(s));
    dn_session_free(s);
    return NULL;
}

Test(embed_threads, four_threads_share_one_model_and_weights)
{
    dn_model *m = lenet();
    dn_weights *w = load(m, saved_weights(m));
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 10, 0, 1);
    job seq = { .m = m, .w = w, .images = images };
    run(&seq);
    cr_assert_eq(seq.st, DN_OK, "%s", seq.msg);
    job jobs[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){ .m = m, .w = w, .images = images };
        cr_assert_eq(pthread_create(&t[i], NULL, run, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(jobs[i].st, DN_OK, "thread %d: %s", i, jobs[i].msg);
        dn_test_expect_same_bits(jobs[i].prob, seq.prob, BATCH * CLASSES, "prob, thread vs seq");
    }
    dn_weights_free(w);
    dn_model_free(m);
    free(images);
}

/* ---------------------------------------------------------------- embed_header */

Test(embed_header, version_and_format)
{
    cr_assert_str_eq(dn_version(), DN_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", DN_VERSION_MAJOR, DN_VERSION_MINOR, DN_VERSION_PATCH);
    cr_assert_str_eq(dn_version(), want);
    cr_assert_eq(DN_VERSION_NUMBER,
                 DN_VERSION_MAJOR * 10000 + DN_VERSION_MINOR * 100 + DN_VERSION_PATCH);
    cr_assert_str_eq(dn_format(), "dagnet/1");
    cr_assert_str_eq(DN_FORMAT, "dagnet/1");
}

/* dn_build_info: snprintf's contract (the whole length returned, truncated and terminated,
 * NULL with size 0) and the line's parts, the thread count following OpenMP's own. */
Test(embed_header, build_info)
{
    char line[256];
    size_t n = dn_build_info(line, sizeof line);
    cr_assert_eq(n, strlen(line), "%zu for \"%s\"", n, line);
    cr_assert_eq(dn_build_info(NULL, 0), n);
    cr_assert(strncmp(line, "BLIS 0.", 7) == 0 || strncmp(line, "BLIS 1.", 7) == 0, "%s", line);
    cr_assert(strstr(line, " threading") != NULL, "%s", line);
    cr_assert(strstr(line, "); OpenMP ") != NULL, "%s", line);
    char threads[64];
    snprintf(threads, sizeof threads, "; %d thread%s by default", omp_get_max_threads(),
             omp_get_max_threads() == 1 ? "" : "s");
    cr_assert(strstr(line, threads) != NULL, "\"%s\" lacks \"%s\"", line, threads);
    char small[8];
    memset(small, 'x', sizeof small);
    cr_assert_eq(dn_build_info(small, 6), n);
    cr_assert_str_eq(small, "BLIS ");
    cr_assert_eq(small[6], 'x', "nothing written past size");
}

Test(embed_header, output_info_before_a_run)
{
    dn_model *m = lenet();
    dn_tensor_info info;
    cr_assert_eq(dn_model_output_info(m, 0, &info), DN_OK, "%s", dn_model_errmsg(m));
    cr_assert_str_eq(info.name, "prob");
    cr_assert_eq(info.dtype, DN_F32);
    cr_assert_eq(info.rank, 2);
    cr_assert(info.batched);
    cr_assert_eq(info.shape[0], 1);
    cr_assert_eq(info.shape[1], CLASSES);
    cr_assert_eq(dn_model_output_info(m, 1, &info), DN_ERR_ARG);
    EXPECT_MSG(dn_model_errmsg(m), "dn_model_output_info", "index 1 is out of range");
    cr_assert_eq(dn_model_output_info(m, 0, NULL), DN_ERR_ARG);
    dn_model_free(m);
}

/* struct_size: 0 (a designated initialiser) and the header's size are accepted; a size from
 * another header is refused with a message, for sessions and trainers. */
Test(embed_header, options_struct_size)
{
    dn_model *m = lenet();
    dn_session_options zero = { .seed = 3, .threads = 1 };
    dn_session *s = dn_test_session(m, &zero);
    cr_assert_eq(dn_session_threads(s), 1);
    dn_session_options big = DN_SESSION_OPTIONS_DEFAULT;
    big.struct_size += 8;
    dn_session *bad = NULL;
    dn_status st = dn_session_new(m, &big, &bad);
    dn_test_expect_status(st, DN_ERR_ARG, dn_session_errmsg(bad));
    EXPECT_MSG(dn_session_errmsg(bad), "dn_session_new", "struct_size", "DEFAULT");
    dn_session_free(bad);
    cr_assert_eq(DN_SESSION_OPTIONS_DEFAULT.struct_size, sizeof(dn_session_options));
    cr_assert_eq(DN_TRAIN_OPTIONS_DEFAULT.struct_size, sizeof(dn_train_options));
    dn_train_options to = DN_TRAIN_OPTIONS_DEFAULT;
    to.struct_size = 3;
    dn_trainer *t = NULL;
    st = dn_trainer_new(s, &to, NULL, &t);
    dn_test_expect_status(st, DN_ERR_ARG, dn_trainer_errmsg(t));
    EXPECT_MSG(dn_trainer_errmsg(t), "struct_size 3", "DN_TRAIN_OPTIONS_DEFAULT");
    dn_trainer_free(t);
    dn_train_options plain = { .optimizer = DN_SGD, .lr = 0.1f, .batch = 2, .epochs = 1 };
    cr_assert_eq(dn_trainer_new(s, &plain, NULL, &t), DN_OK, "%s", dn_trainer_errmsg(t));
    dn_trainer_free(t);
    dn_train_options from_model;
    dn_model_train_options(m, &from_model);
    cr_assert_eq(from_model.struct_size, sizeof from_model);
    dn_session_free(s);
    dn_model_free(m);
}

/* The C defaults hold the values tests/cxx/header.cpp asserts for C++'s spelling of the same
 * macros: a default changed in one spelling only fails one of the two. */
Test(embed_header, defaults_match_the_cxx_spelling)
{
    dn_train_options t = DN_TRAIN_OPTIONS_DEFAULT;
    cr_assert(t.optimizer == DN_ADAM && t.lr == 0.001f && t.momentum == 0.9f &&
              t.weight_decay == 0.0f && t.schedule == DN_LR_CONSTANT && t.step_size == 10 &&
              t.gamma == 0.1f && t.epochs == 3 && t.batch == 100 && t.seed == 0);
    dn_session_options s = DN_SESSION_OPTIONS_DEFAULT;
    cr_assert(s.seed == 0 && s.threads == 0 && !s.keep_tensors && s.weights == NULL);
    dn_binding b = DN_BINDING_DEFAULT;
    cr_assert(!b.image_input && !b.label_input && !b.prediction);
}

/* ---------------------------------------------------------------- embed_state */

/* BatchNorm's running statistics are stored tensors like the params: a dn_weights holds them,
 * an inference session borrows them (examples/models/simple_convnet_bn.json, bn1 over 30
 * channels), and its inference forward gives the bits of the training session they came from,
 * which must differ from the bits with the initial statistics (mean 0, var 1). */
Test(embed_state, borrowed_running_statistics_are_used)
{
    dn_model *m = dn_test_load_model(DN_TEST_MODELS "/simple_convnet_bn.json");
    dn_session *train = trainable(m, 3);
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 5, 0.0f, 1.0f);
    float before[BATCH * CLASSES], want[BATCH * CLASSES], got[BATCH * CLASSES];
    infer(train, images, before);
    dn_view mean, var;
    cr_assert_eq(dn_session_state(train, "bn1.running_mean", &mean), DN_OK, "%s",
                 dn_session_errmsg(train));
    cr_assert_eq(dn_session_state(train, "bn1.running_var", &var), DN_OK);
    for (int c = 0; c < 30; c++) { /* what a few training forwards would leave */
        ((float *)mean.data)[c] = 0.01f * (float)c;
        ((float *)var.data)[c] = 0.5f + 0.1f * (float)c;
    }
    infer(train, images, want);
    cr_assert(memcmp(before, want, sizeof want) != 0, "the running statistics change nothing");

    void *buf;
    size_t size;
    cr_assert_eq(dn_session_save_weights_memory(train, &buf, &size), DN_OK);
    dn_weights *w = NULL;
    cr_assert_eq(dn_weights_from_memory(m, buf, size, "bn", &w), DN_OK, "%s", dn_weights_errmsg(w));
    dn_free(buf);
    dn_view v;
    cr_assert_eq(dn_weights_tensor(w, "bn1.running_var", &v), DN_OK, "%s", dn_weights_errmsg(w));
    cr_assert_eq(((const float *)v.data)[29], 0.5f + 0.1f * 29.0f);

    dn_session *s = borrower(m, w, 1);
    infer(s, images, got);
    cr_assert(memcmp(got, want, sizeof got) == 0, "the borrowing session's output differs");
    cr_assert_eq(dn_session_state(s, "bn1.running_mean", &v), DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "inference session");

    dn_weights *snap = NULL; /* from a session: params and state */
    cr_assert_eq(dn_weights_from_session(train, &snap), DN_OK, "%s", dn_weights_errmsg(snap));
    dn_session *s2 = borrower(m, snap, 1);
    infer(s2, images, got);
    cr_assert(memcmp(got, want, sizeof got) == 0, "dn_weights_from_session lost the state");

    dn_session_free(s2);
    dn_weights_free(snap);
    dn_session_free(s);
    dn_weights_free(w);
    dn_session_free(train);
    free(images);
    dn_model_free(m);
}
