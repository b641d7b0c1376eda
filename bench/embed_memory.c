/*
 * embed_memory.c — what N sessions of one model cost in one process: resident memory and the
 * time to open a session. A benchmark (figures for docs/embedding.md), not a test.
 *
 *   build/embed_memory MODEL [--sessions N] [--weights FILE] [--threads T] [--training]
 *
 * Default (inference): the model and its weights are loaded once (dn_weights_load) and N
 * inference sessions borrow them (dn_session_options.weights). --training measures the way
 * without shared weights: N training sessions, each with params of its own (initialised from
 * the seed) and their gradients, each loading the weights file. Each session runs one forward
 * at batch 1 (zeros) before the next is opened, so its buffers are planned and touched.
 *
 * Memory is VmRSS from /proc/self/status after each step (and VmHWM, the peak, at the end).
 * Without --weights, a child process (so that its memory is not counted) writes the weights of
 * a session seeded 1 to a temporary file first. Prints one line per step and a summary:
 *   sessions N: rss MB, ratio rss(N sessions)/rss(1 session), open ms (median of N).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dagnet.h"

#define MAX_SESSIONS 64

/* A field of /proc/self/status in MB ("VmRSS:", "VmHWM:"), or -1. */
static double status_mb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0)
            kb = strtod(line + n, NULL);
    if (f)
        fclose(f);
    return kb < 0 ? -1 : kb / 1024.0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "embed_memory: %s: %s\n", what, msg);
    return 1;
}

/* In a child process: the weights of a session seeded 1, saved to path. */
static int write_weights(const dn_model *m, const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
        o.seed = 1;
        dn_session *s = NULL;
        int ok = dn_session_new(m, &o, &s) == DN_OK && dn_session_save_weights(s, path) == DN_OK;
        if (!ok)
            fprintf(stderr, "embed_memory: %s\n", dn_session_errmsg(s));
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

/* One forward at batch 1 on zeros, into the model's outputs. */
static dn_status run_once(const dn_model *m, dn_session *s)
{
    dn_tensor_info in;
    dn_status st = dn_model_input_info(m, 0, &in);
    if (st)
        return st;
    in.shape[0] = 1;
    int64_t n = 1;
    for (int d = 0; d < in.rank; d++)
        n *= in.shape[d];
    void *zeros = calloc((size_t)n, 4);
    if (!zeros)
        return DN_ERR_NOMEM;
    st = dn_session_set_input(s, in.name, in.dtype, in.rank, in.shape, zeros);
    free(zeros);
    const char *out = dn_model_output_name(m, 0);
    return st ? st : dn_session_forward(s, DN_INFER, &out, 1);
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *weights_path = NULL;
    int n = 4, threads = 1;
    bool training = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sessions") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc)
            weights_path = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--training"))
            training = true;
        else if (argv[i][0] != '-' && !model_path)
            model_path = argv[i];
        else
            return fail("usage", "embed_memory MODEL [--sessions N] [--weights FILE] "
                                 "[--threads T] [--training]");
    }
    if (!model_path || n < 1 || n > MAX_SESSIONS)
        return fail("usage", "a model and 1 to 64 sessions");
    printf("start              rss %8.1f MB\n", status_mb("VmRSS:"));
    dn_model *m = NULL;
    if (dn_model_load(model_path, &m))
        return fail(model_path, dn_model_errmsg(m));
    char tmp[64] = "";
    if (!weights_path) {
        snprintf(tmp, sizeof tmp, "/tmp/embed_memory_%d.safetensors", (int)getpid());
        if (!write_weights(m, tmp))
            return fail("writing weights", tmp);
        weights_path = tmp;
    }
    printf("model              rss %8.1f MB\n", status_mb("VmRSS:"));
    dn_weights *w = NULL;
    if (!training && dn_weights_load(m, weights_path, &w))
        return fail(weights_path, dn_weights_errmsg(w));
    double base = status_mb("VmRSS:");
    printf("weights (%s) rss %8.1f MB  (%.1f MB of tensors)\n", training ? "none" : "shared", base,
           (double)dn_weights_bytes(w) / (1 << 20));
    dn_session *s[MAX_SESSIONS] = { 0 };
    double open_ms[MAX_SESSIONS], rss[MAX_SESSIONS];
    for (int i = 0; i < n; i++) {
        dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
        o.seed = 1;
        o.threads = threads;
        o.weights = w;
        double t0 = now();
        dn_status st = dn_session_new(m, &o, &s[i]);
        if (!st && training)
            st = dn_session_load_weights(s[i], weights_path);
        open_ms[i] = (now() - t0) * 1e3;
        if (st || (st = run_once(m, s[i])))
            return fail("session", dn_session_errmsg(s[i]));
        rss[i] = status_mb("VmRSS:");
        printf("session %2d         rss %8.1f MB  opened in %8.2f ms%s\n", i + 1, rss[i],
               open_ms[i], training ? " (with loading the weights)" : "");
    }
    double hwm = status_mb("VmHWM:");
    qsort(open_ms, (size_t)n, sizeof *open_ms, cmp_double);
    printf("summary: %s, %d %s sessions, batch 1, %d thread(s) each: rss %.1f MB (1 session: "
           "%.1f MB), ratio %.2f, peak %.1f MB, open median %.2f ms\n",
           dn_model_name(m), n, training ? "training" : "inference", threads, rss[n - 1], rss[0],
           rss[n - 1] / rss[0], hwm, open_ms[n / 2]);
    for (int i = 0; i < n; i++)
        dn_session_free(s[i]);
    dn_weights_free(w);
    dn_model_free(m);
    if (tmp[0])
        remove(tmp);
    return 0;
}
