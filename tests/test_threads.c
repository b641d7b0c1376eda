/*
 * test_threads.c — one model, four sessions, four threads: dagnet.h promises that distinct
 * handles are independent (no global state), so sessions on one shared, immutable dn_model may
 * run side by side. Each thread makes its own session (seed 1, one kernel thread), feeds the
 * same batch (4 images [4, 1, 28, 28] U(0,1), labels 0..3), runs a training forward and a
 * backward, then an inference forward, and keeps the loss, every param gradient and the
 * inference output "prob" [4, 10]. All four must equal, bit for bit, what one session on the
 * main thread computed first. Then the same with one shared dn_weights (the weights of a
 * session seeded 1): each thread's inference session borrows them and computes "prob" only.
 *
 * Built as well, with its own main (DN_THREADS_MAIN), into dagnet_tsan_tests by the
 * ThreadSanitizer build (-DDAGNET_TSAN=ON, scripts/test.sh), where it must run without a
 * report. The sessions use one kernel thread
 * each, so the kernels open no OpenMP region and BLIS starts no team: libgomp and BLIS are
 * not built with TSan, and their synchronisation would show as false races.
 */
#ifndef DN_THREADS_MAIN
#include <criterion/criterion.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"

#define THREADS 4
#define BATCH 4
#define SIDE 28
#define MAX_PARAMS 16

/* What one run computes: owned copies, compared with memcmp. */
typedef struct result {
    dn_status status;
    char msg[256];
    float loss;
    float prob[BATCH * 10];
    int n_grads;
    float *grads[MAX_PARAMS];
    int64_t grad_len[MAX_PARAMS];
} result;

typedef struct job {
    const dn_model *model;     /* shared by every thread, read only */
    const dn_weights *weights; /* likewise; NULL: training sessions of their own */
    const float *images;
    const int32_t *labels;
    result out;
} job;

static int64_t numel(const dn_view *v)
{
    int64_t n = 1;
    for (int d = 0; d < v->rank; d++)
        n *= v->shape[d];
    return n;
}

/* Forward (train) + backward, then forward (infer), on a session of its own. No Criterion
 * assertion here: it may run off the main thread. */
static void *run(void *arg)
{
    job *j = arg;
    result *r = &j->out;
    dn_session_options o = { .seed = 1, .threads = 1, .weights = j->weights };
    dn_session *s = NULL;
    int64_t image_shape[4] = { BATCH, 1, SIDE, SIDE }, label_shape[1] = { BATCH };
    dn_view v;
    dn_status st = dn_session_new(j->model, &o, &s);
    bool train = !j->weights;
    if (!st)
        st = dn_session_set_input(s, "image", DN_F32, 4, image_shape, j->images);
    if (!st)
        st = dn_session_set_input(s, "label", DN_I32, 1, label_shape, j->labels);
    if (!st && train)
        st = dn_session_forward(s, DN_TRAIN, NULL, 0);
    if (!st && train)
        st = dn_session_backward(s);
    if (!st && train)
        st = dn_session_tensor(s, "loss", &v);
    if (!st && train)
        r->loss = *(const float *)v.data;
    int n = train ? dn_model_param_count(j->model) : 0;
    for (int i = 0; !st && i < n && i < MAX_PARAMS; i++) {
        dn_tensor_info info;
        st = dn_model_param_info(j->model, i, &info);
        if (!st)
            st = dn_session_param_grad(s, info.name, &v);
        if (!st) {
            r->grad_len[i] = numel(&v);
            r->grads[i] = malloc(sizeof(float) * (size_t)r->grad_len[i]);
            if (!r->grads[i])
                st = DN_ERR_NOMEM;
            else
                memcpy(r->grads[i], v.data, sizeof(float) * (size_t)r->grad_len[i]);
            r->n_grads = i + 1;
        }
    }
    const char *fetch[] = { "prob" };
    if (!st)
        st = dn_session_forward(s, DN_INFER, fetch, 1);
    if (!st)
        st = dn_session_tensor(s, "prob", &v);
    if (!st)
        memcpy(r->prob, v.data, sizeof r->prob);
    r->status = st;
    snprintf(r->msg, sizeof r->msg, "%s", s ? dn_session_errmsg(s) : "out of memory");
    dn_session_free(s);
    return NULL;
}

static void free_result(result *r)
{
    for (int i = 0; i < r->n_grads; i++)
        free(r->grads[i]);
}

/* The single-threaded run, then THREADS runs side by side; NULL if all equal it, else what
 * differed (static). No Criterion here, so that the ThreadSanitizer build can run it from a
 * plain main (Criterion's forking runner cannot start under TSan). */
static const char *check_threads(const dn_model *m, const dn_weights *w)
{
    static char why[512];
    why[0] = '\0';
    float *images = dn_test_uniform(BATCH * SIDE * SIDE, 7, 0.0f, 1.0f);
    int32_t labels[BATCH] = { 0, 1, 2, 3 };
    job reference = { .model = m, .weights = w, .images = images, .labels = labels };
    job jobs[THREADS];
    pthread_t threads[THREADS];
    int started = 0;
    run(&reference);
    if (reference.out.status != DN_OK ||
        reference.out.n_grads != (w ? 0 : dn_model_param_count(m))) {
        snprintf(why, sizeof why, "single-threaded run: %s", reference.out.msg);
        goto done;
    }
    for (; started < THREADS; started++) {
        jobs[started] = (job){ .model = m, .weights = w, .images = images, .labels = labels };
        if (pthread_create(&threads[started], NULL, run, &jobs[started]) != 0) {
            snprintf(why, sizeof why, "pthread_create failed");
            break;
        }
    }
    for (int t = 0; t < started; t++) {
        pthread_join(threads[t], NULL);
        result *r = &jobs[t].out, *ref = &reference.out;
        if (why[0])
            ;
        else if (r->status != DN_OK)
            snprintf(why, sizeof why, "thread %d: %s", t, r->msg);
        else if (memcmp(&r->loss, &ref->loss, sizeof r->loss) != 0)
            snprintf(why, sizeof why, "thread %d: loss %.9g, single-threaded %.9g", t, r->loss,
                     ref->loss);
        else if (memcmp(r->prob, ref->prob, sizeof r->prob) != 0)
            snprintf(why, sizeof why, "thread %d: prob differs from the single-threaded run", t);
        for (int i = 0; !why[0] && i < r->n_grads; i++)
            if (r->grad_len[i] != ref->grad_len[i] ||
                memcmp(r->grads[i], ref->grads[i], sizeof(float) * (size_t)r->grad_len[i]) != 0)
                snprintf(why, sizeof why, "thread %d: gradient of param %d differs", t, i);
        free_result(r);
    }
done:
    free_result(&reference.out);
    free(images);
    return why[0] ? why : NULL;
}

/* The weights of a session seeded 1, for the shared-weights run (NULL on failure). */
static dn_weights *seed_weights(const dn_model *m)
{
    dn_session_options o = { .seed = 1, .threads = 1 };
    dn_session *s = NULL;
    dn_weights *w = NULL;
    if (dn_session_new(m, &o, &s) != DN_OK || dn_weights_from_session(s, &w) != DN_OK) {
        dn_weights_free(w);
        w = NULL;
    }
    dn_session_free(s);
    return w;
}

#ifndef DN_THREADS_MAIN
Test(api_threads, four_sessions_share_one_model)
{
    dn_model *m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    const char *why = check_threads(m, NULL);
    cr_expect_null(why, "%s", why);
    dn_model_free(m);
}

Test(api_threads, four_inference_sessions_share_one_set_of_weights)
{
    dn_model *m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    dn_weights *w = seed_weights(m);
    cr_assert_not_null(w);
    const char *why = check_threads(m, w);
    cr_expect_null(why, "%s", why);
    dn_weights_free(w);
    dn_model_free(m);
}
#else
/* dagnet_tsan_tests: exit status 0 when every thread matched (and TSan, with
 * halt_on_error=1, exits non-zero on any report). */
int main(void)
{
    dn_model *m = NULL;
    if (dn_model_load(DAGNET_SOURCE_DIR "/examples/models/lenet5.json", &m) != DN_OK) {
        fprintf(stderr, "lenet5.json: %s\n", dn_model_errmsg(m));
        dn_model_free(m);
        return 1;
    }
    const char *why = check_threads(m, NULL);
    dn_weights *w = why ? NULL : seed_weights(m);
    if (!why && !w)
        why = "cannot make the shared weights";
    if (!why)
        why = check_threads(m, w);
    dn_weights_free(w);
    dn_model_free(m);
    if (why) {
        fprintf(stderr, "api_threads: %s\n", why);
        return 1;
    }
    printf("api_threads: %d threads, each with its own session on one model (training "
           "sessions, then inference sessions sharing one set of weights), matched the "
           "single-threaded run\n",
           THREADS);
    return 0;
}
#endif
