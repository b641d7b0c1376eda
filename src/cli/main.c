/*
 * main.c — the `dagnet` command, built on the public API (include/dagnet.h) only.
 *
 *   dagnet summary MODEL.json
 *   dagnet infer   MODEL.json [--weights W] [--seed N] --feed NAME=FILE.npy ... --out OUT.npy [--fetch T]
 *   dagnet grad    MODEL.json [--weights W] [--seed N] --feed NAME=FILE.npy ... --out G.safetensors [--tensors]
 *   dagnet check   MODEL.json [--batch B] [--seed N]   one forward/backward on synthetic data
 *
 * Exit status: 0 success, 1 a failure reported by the library (its message on stderr),
 * 2 a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dagnet.h"

#define MAX_FEEDS 16

typedef struct options {
    const char *model;
    const char *weights;
    const char *out;
    const char *fetch;
    const char *feed_name[MAX_FEEDS];
    const char *feed_path[MAX_FEEDS];
    int n_feeds;
    unsigned long long seed;
    int threads;
    int batch;
    bool tensors;
} options;

static int usage(void)
{
    fputs("usage:\n"
          "  dagnet summary MODEL.json\n"
          "  dagnet infer MODEL.json [--weights W.safetensors] [--seed N] [--threads T]\n"
          "               --feed NAME=FILE.npy ... --out OUT.npy [--fetch TENSOR]\n"
          "  dagnet grad  MODEL.json [--weights W.safetensors] [--seed N] [--threads T]\n"
          "               --feed NAME=FILE.npy ... --out G.safetensors [--tensors]\n"
          "  dagnet check MODEL.json [--batch B] [--seed N] [--threads T]\n"
          "\n"
          "infer writes the model's first output (or --fetch TENSOR) as .npy.\n"
          "grad runs one forward and backward pass in training mode and writes the loss under\n"
          "\"loss\" and each param's gradient under \"grad.<param>\"; --tensors adds the params\n"
          "(\"param.<name>\") and every computed node output (\"act.<node>\").\n"
          "check runs one forward and backward pass on a synthetic batch (default 2).\n"
          "Without --weights, params are initialised by their init from --seed (default 0).\n",
          stderr);
    return 2;
}

static int fail_model(const dn_model *m)
{
    fprintf(stderr, "dagnet: %s\n", dn_model_errmsg(m));
    return 1;
}

static int fail_session(const dn_session *s)
{
    fprintf(stderr, "dagnet: %s\n", dn_session_errmsg(s));
    return 1;
}

static bool parse_number(const char *text, unsigned long long *out)
{
    char *end;
    if (!text || !*text || *text == '-')
        return false;
    *out = strtoull(text, &end, 10);
    return *end == '\0';
}

/* Flags after the model path. Returns false on a usage error (already reported). */
static bool parse_options(int argc, char **argv, options *o)
{
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (strcmp(a, "--tensors") == 0) {
            o->tensors = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "dagnet: %s needs a value\n", a);
            return false;
        }
        i++;
        if (strcmp(a, "--weights") == 0) {
            o->weights = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--fetch") == 0) {
            o->fetch = v;
        } else if (strcmp(a, "--seed") == 0 && parse_number(v, &n)) {
            o->seed = n;
        } else if (strcmp(a, "--batch") == 0 && parse_number(v, &n) && n >= 1 && n <= 1000000) {
            o->batch = (int)n;
        } else if (strcmp(a, "--threads") == 0 && parse_number(v, &n) && n >= 1 && n <= 1024) {
            o->threads = (int)n;
        } else if (strcmp(a, "--feed") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1] || o->n_feeds == MAX_FEEDS) {
                fprintf(stderr, "dagnet: --feed expects NAME=FILE.npy (at most %d), found \"%s\"\n",
                        MAX_FEEDS, v);
                return false;
            }
            o->feed_name[o->n_feeds] = strndup(v, (size_t)(eq - v));
            o->feed_path[o->n_feeds++] = eq + 1;
        } else {
            fprintf(stderr, "dagnet: unknown option or bad value: %s %s\n", a, v);
            return false;
        }
    }
    return true;
}

static void free_options(options *o)
{
    for (int i = 0; i < o->n_feeds; i++)
        free((char *)o->feed_name[i]);
}

/* ------------------------------------------------------------------ summary */

/* 1234567 → "1,234,567" */
static const char *grouped(long long n, char *buf, size_t size)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", n < 0 ? -n : n);
    size_t o = 0;
    if (n < 0 && o + 1 < size)
        buf[o++] = '-';
    for (int i = 0; i < len && o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *shape_text(int rank, const int64_t *shape, bool batched, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && o < size; i++) {
        int w = (i == 0 && batched) ? snprintf(buf + o, size - o, "%sN", i ? "," : "")
                                    : snprintf(buf + o, size - o, "%s%lld", i ? "," : "", (long long)shape[i]);
        o += w > 0 ? (size_t)w : 0;
    }
    if (o < size)
        snprintf(buf + o, size - o, "]");
    return buf;
}

static int cmd_summary(const dn_model *m)
{
    char shape[128], a[32], b[32];
    printf("model \"%s\" (%s)\n\n", dn_model_name(m), dn_model_file(m));
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_tensor_info t;
        dn_model_input_info(m, i, &t);
        printf("input  %-16s %-8s %s\n", t.name, t.dtype == DN_I32 ? "int32" : "float32",
               shape_text(t.rank, t.shape, t.batched, shape, sizeof shape));
    }
    printf("\n%-16s %-20s %-20s %14s %18s\n", "node", "op", "output", "params", "FLOPs/sample");
    long long params = 0, flops = 0;
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_node_info n;
        dn_model_node_info(m, i, &n);
        printf("%-16s %-20s %-20s %14s %18s\n", n.name, n.op,
               shape_text(n.rank, n.shape, n.batched, shape, sizeof shape), grouped(n.params, a, sizeof a),
               grouped(n.flops, b, sizeof b));
        flops += n.flops;
    }
    for (int i = 0; i < dn_model_param_count(m); i++) {
        dn_tensor_info t;
        dn_model_param_info(m, i, &t);
        long long count = 1;
        for (int d = 0; d < t.rank; d++)
            count *= t.shape[d];
        params += count;
    }
    printf("%-16s %-20s %-20s %14s %18s\n", "total", "", "", grouped(params, a, sizeof a),
           grouped(flops, b, sizeof b));
    printf("\n%d nodes, %d params tensors, %s parameters, %.2f MFLOPs forward per sample\n",
           dn_model_node_count(m), dn_model_param_count(m), grouped(params, a, sizeof a), flops / 1e6);
    return 0;
}

/* ------------------------------------------------------------------ infer, grad */

static int open_session(const dn_model *m, const options *o, dn_session **s)
{
    dn_session_options so = DN_SESSION_OPTIONS_DEFAULT;
    so.seed = o->seed;
    so.threads = o->threads;
    if (dn_session_new(m, &so, s))
        return fail_session(*s);
    if (o->weights && dn_session_load_weights(*s, o->weights))
        return fail_session(*s);
    for (int i = 0; i < o->n_feeds; i++)
        if (dn_session_set_input_npy(*s, o->feed_name[i], o->feed_path[i]))
            return fail_session(*s);
    return 0;
}

static int cmd_infer(const dn_model *m, const options *o)
{
    const char *target = o->fetch ? o->fetch : dn_model_output_name(m, 0);
    if (!target) {
        fprintf(stderr, "dagnet: %s has no outputs; name a tensor with --fetch\n", dn_model_file(m));
        return 2;
    }
    dn_session *s = NULL;
    int rc = open_session(m, o, &s);
    if (!rc && dn_session_forward(s, DN_INFER, &target, 1))
        rc = fail_session(s);
    if (!rc && dn_session_write_npy(s, target, o->out))
        rc = fail_session(s);
    dn_session_free(s);
    return rc;
}

static int cmd_grad(const dn_model *m, const options *o)
{
    if (!dn_model_loss_name(m)) {
        fprintf(stderr, "dagnet: %s has no \"loss\" to differentiate\n", dn_model_file(m));
        return 2;
    }
    dn_session *s = NULL;
    int rc = open_session(m, o, &s);
    if (!rc && dn_session_forward(s, DN_TRAIN, NULL, 0))
        rc = fail_session(s);
    if (!rc && dn_session_backward(s))
        rc = fail_session(s);
    if (!rc && dn_session_save_gradients(s, o->out, o->tensors))
        rc = fail_session(s);
    if (!rc) {
        dn_view loss;
        if (dn_session_tensor(s, dn_model_loss_name(m), &loss) == DN_OK)
            printf("loss %.9g\n", (double)((const float *)loss.data)[0]);
    }
    dn_session_free(s);
    return rc;
}

/* ------------------------------------------------------------------ check */

/* The class count the loss compares labels against: the last dim of its first input. */
static int64_t loss_classes(const dn_model *m)
{
    const char *loss = dn_model_loss_name(m);
    dn_node_info n, logits;
    for (int i = 0; loss && i < dn_model_node_count(m); i++) {
        if (dn_model_node_info(m, i, &n) || strcmp(n.name, loss) != 0 || n.n_inputs == 0)
            continue;
        for (int j = 0; j < dn_model_node_count(m); j++)
            if (!dn_model_node_info(m, j, &logits) && strcmp(logits.name, n.inputs[0]) == 0 &&
                logits.rank >= 1)
                return logits.shape[logits.rank - 1];
    }
    return 1;
}

/* Uniform [0, 1) images and labels in [0, classes), from a small LCG seeded by --seed. */
static int feed_synthetic(const dn_model *m, dn_session *s, int64_t batch, unsigned long long seed)
{
    uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
    int64_t classes = loss_classes(m);
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_tensor_info t;
        dn_model_input_info(m, i, &t);
        if (t.batched)
            t.shape[0] = batch;
        int64_t n = 1;
        for (int d = 0; d < t.rank; d++)
            n *= t.shape[d];
        void *data = malloc((size_t)n * 4 + 4);
        if (!data) {
            fprintf(stderr, "dagnet: out of memory\n");
            return 1;
        }
        for (int64_t k = 0; k < n; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(state >> 33);
            if (t.dtype == DN_I32)
                ((int32_t *)data)[k] = (int32_t)(r % (uint32_t)classes);
            else
                ((float *)data)[k] = (float)(r >> 7) / 16777216.0f;
        }
        dn_status st = dn_session_set_input(s, t.name, t.dtype, t.rank, t.shape, data);
        free(data);
        if (st)
            return fail_session(s);
    }
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmd_check(const dn_model *m, const options *o)
{
    dn_session *s = NULL;
    int rc = open_session(m, o, &s);
    int64_t batch = o->batch ? o->batch : 2;
    if (!rc)
        rc = feed_synthetic(m, s, batch, o->seed);
    double t0 = now_ms();
    bool train = dn_model_loss_name(m) != NULL;
    if (!rc && dn_session_forward(s, train ? DN_TRAIN : DN_INFER, NULL, 0))
        rc = fail_session(s);
    double t1 = now_ms();
    if (!rc && train && dn_session_backward(s))
        rc = fail_session(s);
    double t2 = now_ms();
    if (!rc) {
        dn_view loss;
        printf("check: batch %lld, forward %.1f ms", (long long)batch, t1 - t0);
        if (train && dn_session_tensor(s, dn_model_loss_name(m), &loss) == DN_OK)
            printf(", backward %.1f ms, loss %.6g", t2 - t1, (double)((const float *)loss.data)[0]);
        printf("\n");
    }
    dn_session_free(s);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *cmd = argv[1];
    bool summary = strcmp(cmd, "summary") == 0, infer = strcmp(cmd, "infer") == 0,
         grad = strcmp(cmd, "grad") == 0, check = strcmp(cmd, "check") == 0;
    if (!summary && !infer && !grad && !check)
        return usage();
    options o = { .model = argv[2] };
    if (!parse_options(argc, argv, &o)) {
        free_options(&o);
        return 2;
    }
    if ((infer || grad) && !o.out) {
        fprintf(stderr, "dagnet: %s needs --out\n", cmd);
        free_options(&o);
        return 2;
    }
    dn_model *m = NULL;
    int rc;
    if (dn_model_load(o.model, &m))
        rc = fail_model(m);
    else if (summary)
        rc = cmd_summary(m);
    else if (infer)
        rc = cmd_infer(m, &o);
    else if (check)
        rc = cmd_check(m, &o);
    else
        rc = cmd_grad(m, &o);
    dn_model_free(m);
    free_options(&o);
    return rc;
}
