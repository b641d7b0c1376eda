/*
 * classify_threads.c — N threads share one model and one set of weights and classify the
 * Fashion-MNIST (or MNIST) test set; prints images/s and the accuracy. The embedding pattern
 * of docs/embedding.md: the model and the weights are loaded once and only read afterwards,
 * each thread opens its own inference session that borrows the weights (no copy, nothing
 * initialised, no gradients) and runs one core.
 *
 *   classify_threads MODEL.json WEIGHTS.safetensors [DATA_DIR] [--threads N] [--batch B]
 *
 * DATA_DIR holds t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] (default
 * /usr/share/datasets/fashion-mnist). Thread i classifies the i-th contiguous slice of the
 * test set in batches of B (default 100); the model's first output gives the class scores.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dagnet.h"

#define MAX_THREADS 64

/* Shared by every thread, read only. */
static const dn_model *model;
static const dn_weights *weights;
static const float *images; /* [n, c, h, w] */
static const int32_t *labels;
static int64_t image_shape[4];

typedef struct job {
    int64_t begin, end; /* the slice of the test set */
    int batch;
    int64_t correct;
    dn_status status;
    char msg[512];
} job;

static void *classify(void *arg)
{
    job *j = arg;
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.threads = 1;       /* one core per session: the threads run side by side */
    o.weights = weights; /* an inference session borrowing the shared weights */
    dn_session *s = NULL;
    dn_status st = dn_session_new(model, &o, &s);
    const char *input = NULL, *output = dn_model_output_name(model, 0);
    dn_tensor_info in;
    if (!st && !(st = dn_model_input_info(model, 0, &in)))
        input = in.name;
    int64_t per_image = image_shape[1] * image_shape[2] * image_shape[3];
    for (int64_t at = j->begin; !st && at < j->end; at += j->batch) {
        int64_t n = j->end - at < j->batch ? j->end - at : j->batch;
        int64_t shape[4] = { n, image_shape[1], image_shape[2], image_shape[3] };
        dn_view out;
        if ((st = dn_session_set_input(s, input, DN_F32, 4, shape, images + at * per_image)) ||
            (st = dn_session_forward(s, DN_INFER, &output, 1)) ||
            (st = dn_session_tensor(s, output, &out)))
            break;
        const float *scores = out.data;
        int64_t classes = out.shape[1];
        for (int64_t i = 0; i < n; i++) {
            int64_t best = 0;
            for (int64_t c = 1; c < classes; c++)
                if (scores[i * classes + c] > scores[i * classes + best])
                    best = c;
            j->correct += best == labels[at + i];
        }
    }
    j->status = st;
    snprintf(j->msg, sizeof j->msg, "%s", dn_session_errmsg(s));
    dn_session_free(s);
    return NULL;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *pos[3] = { NULL, NULL, "/usr/share/datasets/fashion-mnist" };
    int n_pos = 0, threads = 4, batch = 100;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (n_pos < 3)
            pos[n_pos++] = argv[i];
    }
    if (n_pos < 2 || threads < 1 || threads > MAX_THREADS || batch < 1) {
        fprintf(stderr, "usage: classify_threads MODEL.json WEIGHTS.safetensors [DATA_DIR] "
                        "[--threads 1..64] [--batch B]\n");
        return 2;
    }
    dn_model *m = NULL;
    dn_weights *w = NULL;
    dn_dataset *d = NULL;
    int rc = 1;
    if (dn_model_load(pos[0], &m)) {
        fprintf(stderr, "%s\n", dn_model_errmsg(m));
        goto out;
    }
    if (dn_weights_load(m, pos[1], &w)) {
        fprintf(stderr, "%s\n", dn_weights_errmsg(w));
        goto out;
    }
    dn_view iv, lv;
    if (dn_dataset_load_dir(pos[2], false, &d) || dn_dataset_images(d, &iv) ||
        dn_dataset_labels(d, &lv)) {
        fprintf(stderr, "%s\n", dn_dataset_errmsg(d));
        goto out;
    }
    model = m;
    weights = w;
    images = iv.data;
    labels = lv.data;
    memcpy(image_shape, iv.shape, sizeof image_shape);
    int64_t count = dn_dataset_count(d);
    job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    double t0 = now();
    for (int i = 0; i < threads; i++) {
        jobs[i] =
            (job){ .begin = count * i / threads, .end = count * (i + 1) / threads, .batch = batch };
        if (pthread_create(&tid[i], NULL, classify, &jobs[i]) != 0) {
            fprintf(stderr, "cannot start thread %d\n", i);
            threads = i;
            break;
        }
    }
    int64_t correct = 0;
    rc = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        if (jobs[i].status) {
            fprintf(stderr, "thread %d: %s\n", i, jobs[i].msg);
            rc = 1;
        }
        correct += jobs[i].correct;
    }
    double seconds = now() - t0;
    if (!rc)
        printf("%s: %lld images, %d threads, batch %d: %.0f images/s, accuracy %.2f%%\n",
               dn_model_name(m), (long long)count, threads, batch, (double)count / seconds,
               100.0 * (double)correct / (double)count);
out:
    dn_dataset_free(d);
    dn_weights_free(w); /* after every session that borrowed them */
    dn_model_free(m);
    return rc;
}
