/*
 * classify.c — load a model and its weights, classify images, print the top classes: the
 * inference path of dagnet's public API (include/dagnet.h).
 *
 *   classify MODEL.json WEIGHTS.safetensors IMAGES.npy [--top K] [--show N]
 *   classify MODEL.json WEIGHTS.safetensors IMAGES-idx3-ubyte[.gz] LABELS-idx1-ubyte[.gz]
 *            [--top K] [--show N]
 *
 * A .npy holds float32 images shaped as the model's image input (e.g. [n,1,28,28], pixels in
 * [0, 1]); IDX files are read as the training data is (pixels / 255), and with their labels
 * the accuracy is printed too. The model's first output gives the class scores.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"

#define MAX_TOP 10

typedef struct args {
    const char *model, *weights, *images, *labels;
    int top, show;
} args;

static bool parse_args(int argc, char **argv, args *a)
{
    *a = (args){ .top = 3, .show = 10 };
    const char *pos[4] = { 0 };
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--top") == 0 || strcmp(argv[i], "--show") == 0) && i + 1 < argc) {
            int v = atoi(argv[i + 1]);
            if (argv[i][2] == 't')
                a->top = v < 1 ? 1 : v > MAX_TOP ? MAX_TOP : v;
            else
                a->show = v < 0 ? 0 : v;
            i++;
        } else if (n < 4) {
            pos[n++] = argv[i];
        } else {
            return false;
        }
    }
    a->model = pos[0], a->weights = pos[1], a->images = pos[2], a->labels = pos[3];
    return n >= 3;
}

/* Print the `top` best classes of one score row. */
static void print_top(int64_t index, const float *scores, int64_t classes, int top, int label)
{
    printf("image %lld:", (long long)index);
    bool used[4096] = { false };
    for (int k = 0; k < top && k < classes && classes <= 4096; k++) {
        int64_t best = -1;
        for (int64_t c = 0; c < classes; c++)
            if (!used[c] && (best < 0 || scores[c] > scores[best]))
                best = c;
        used[best] = true;
        printf("  %lld (%.3f)", (long long)best, (double)scores[best]);
    }
    if (label >= 0)
        printf("   label %d", label);
    printf("\n");
}

/* Classify `n` images given as one float buffer shaped like the model's image input. */
static int classify(dn_session *s, const dn_model *m, const float *images, const int32_t *labels,
                    int64_t n, const args *a)
{
    dn_tensor_info in;
    dn_model_input_info(m, 0, &in);
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_model_input_info(m, i, &in);
        if (in.dtype == DN_F32)
            break;
    }
    int64_t per_image = 1;
    for (int d = 1; d < in.rank; d++)
        per_image *= in.shape[d];
    const char *output = dn_model_output_name(m, 0);
    int64_t correct = 0;
    for (int64_t first = 0; first < n; first += 100) {
        int64_t count = n - first < 100 ? n - first : 100;
        in.shape[0] = count;
        dn_view scores;
        if (dn_session_set_input(s, in.name, DN_F32, in.rank, in.shape,
                                 images + first * per_image) ||
            dn_session_forward(s, DN_INFER, &output, 1) || dn_session_tensor(s, output, &scores)) {
            fprintf(stderr, "classify: %s\n", dn_session_errmsg(s));
            return 1;
        }
        int64_t classes = scores.shape[1];
        for (int64_t i = 0; i < count; i++) {
            const float *row = (const float *)scores.data + i * classes;
            int64_t best = 0;
            for (int64_t c = 1; c < classes; c++)
                if (row[c] > row[best])
                    best = c;
            if (labels)
                correct += best == labels[first + i];
            if (first + i < a->show)
                print_top(first + i, row, classes, a->top, labels ? labels[first + i] : -1);
        }
    }
    if (labels)
        printf("accuracy: %.2f%% (%lld of %lld)\n", 100.0 * (double)correct / (double)n,
               (long long)correct, (long long)n);
    return 0;
}

int main(int argc, char **argv)
{
    args a;
    if (!parse_args(argc, argv, &a)) {
        fprintf(
            stderr,
            "usage: classify MODEL.json WEIGHTS.safetensors (IMAGES.npy | IMAGES.idx LABELS.idx) "
            "[--top K] [--show N]\n");
        return 2;
    }
    dn_model *m = NULL;
    dn_session *s = NULL;
    dn_dataset *d = NULL;
    int rc = 1;
    if (dn_model_load(a.model, &m)) {
        fprintf(stderr, "classify: %s\n", dn_model_errmsg(m));
        goto out;
    }
    if (dn_session_new(m, NULL, &s) || dn_session_load_weights(s, a.weights)) {
        fprintf(stderr, "classify: %s\n", dn_session_errmsg(s));
        goto out;
    }
    if (a.labels) {
        dn_view images, labels;
        if (dn_dataset_load_idx(a.images, a.labels, &d)) {
            fprintf(stderr, "classify: %s\n", dn_dataset_errmsg(d));
            goto out;
        }
        dn_dataset_images(d, &images);
        dn_dataset_labels(d, &labels);
        rc = classify(s, m, images.data, labels.data, images.shape[0], &a);
    } else {
        /* A .npy goes straight into the image input; then it is read back as one batch. */
        const char *output = dn_model_output_name(m, 0);
        dn_tensor_info in;
        dn_view scores;
        for (int i = 0; i < dn_model_input_count(m); i++)
            if (dn_model_input_info(m, i, &in) == DN_OK && in.dtype == DN_F32)
                break;
        if (dn_session_set_input_npy(s, in.name, a.images) ||
            dn_session_forward(s, DN_INFER, &output, 1) || dn_session_tensor(s, output, &scores)) {
            fprintf(stderr, "classify: %s\n", dn_session_errmsg(s));
            goto out;
        }
        for (int64_t i = 0; i < scores.shape[0] && i < a.show; i++)
            print_top(i, (const float *)scores.data + i * scores.shape[1], scores.shape[1], a.top,
                      -1);
        rc = 0;
    }
out:
    dn_dataset_free(d);
    dn_session_free(s);
    dn_model_free(m);
    return rc;
}
