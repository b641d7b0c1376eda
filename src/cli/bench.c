/*
 * bench.c — `dagnet bench`: how fast a model trains (or infers) at one batch size, where a
 * step's time goes node by node, how close the matrix products come to BLIS's own sgemm
 * speed, and how much memory the run holds.
 *
 * The data are synthetic (images U(0,1), labels uniform over the classes) so that the figures
 * measure dagnet alone. A training step is one dn_trainer_step over a data set of exactly one
 * batch (gather, forward, backward, optimiser update); an inference step is one forward, the
 * input set once beforehand (data loading is not inference, as in PyTorch's timings). Steps
 * are timed one by one and summarised by median and quartiles, which a shared machine's
 * hiccups barely move. The per-node table comes from a second, profiled run of as many steps,
 * so the profiler's clock reads never touch the headline figures.
 *
 * --json prints one JSON object instead of the tables; bench/compare.py reads its keys, so
 * they are a contract. Sizes in MB are MiB (2^20 bytes).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define DEFAULT_WARMUP 5
#define MIN_ITERS 10
#define MAX_ITERS 1000000
#define TARGET_MS 1000.0 /* the default timed run lasts about this long */
#define GEMM_REPEATS 5   /* runs per BLIS reference product */
#define MIB (1024.0 * 1024.0)

/* The process's peak resident set (VmHWM) in MiB, 0 when unknown. Not getrusage's
 * ru_maxrss: Linux carries that over fork and exec, so a bench started by a large process
 * (a Python script with PyTorch loaded) would report its parent's peak. */
static double peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib / 1024.0;
}

typedef struct spread {
    double median, q1, q3, min, max;
} spread;

/* One node's line of the table: per-step times, achieved speed and BLIS's on its products. */
typedef struct node_row {
    dn_node_profile p;
    double fwd_ms, bwd_ms, share;
    double fwd_gflops, bwd_gflops;
    double blis_fwd, blis_bwd; /* 0 without matrix products */
} node_row;

typedef struct bench {
    const dn_model *m;
    bool train;
    int batch, warmup, iters;
    dn_session *s;
    dn_trainer *tr;   /* train mode */
    dn_dataset *data; /* train mode: exactly one batch */
    double *ms;       /* step times: the timed run's, then the profiled run's */
    spread step;
    double profiled_median; /* of the profiled run: far above step.median, the table
                               is suspect (a busy machine, a costly profiler) */
    node_row *rows;
    int n_rows;
    double peak_rss_mb;
    dn_memory_info mem;
    /* The Conv and Affine products of one step: flops, measured ms, ms at BLIS's speed. */
    double gemm_flops, gemm_ms, blis_ms;
} bench;

/* ------------------------------------------------------------------ synthetic data */

/* The image input as dn_binding finds it: the model's only float32 input. */
static int image_input(const dn_model *m, dn_tensor_info *out)
{
    int found = 0;
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_tensor_info t;
        if (dn_model_input_info(m, i, &t) == DN_OK && t.dtype == DN_F32) {
            *out = t;
            found++;
        }
    }
    if (found != 1) {
        fprintf(stderr, "dagnet: %s has %d float32 inputs; bench feeds exactly one (the images)\n",
                dn_model_file(m), found);
        return 1;
    }
    if (!out->batched) {
        fprintf(stderr, "dagnet: %s: input \"%s\" has no batch dimension\n", dn_model_file(m),
                out->name);
        return 1;
    }
    return 0;
}

static int64_t per_example(const dn_tensor_info *img)
{
    int64_t n = 1;
    for (int d = 1; d < img->rank; d++)
        n *= img->shape[d];
    return n;
}

/* `batch` images U(0,1) and labels uniform in [0, classes) (caller frees both). */
static int make_data(const bench *b, const dn_tensor_info *img, int classes, uint64_t seed,
                     float **images, int32_t **labels)
{
    int64_t pixels = per_example(img) * b->batch;
    *images = malloc((size_t)pixels * sizeof **images);
    *labels = malloc((size_t)b->batch * sizeof **labels);
    if (!*images || !*labels) {
        fprintf(stderr, "dagnet: out of memory for %d synthetic examples\n", b->batch);
        return 1;
    }
    uint64_t state = synthetic_start(seed);
    for (int64_t k = 0; k < pixels; k++)
        (*images)[k] = synthetic_uniform(&state);
    for (int i = 0; i < b->batch; i++)
        (*labels)[i] = classes > 0 ? (int32_t)(synthetic_next(&state) % (uint32_t)classes) : 0;
    return 0;
}

/* ------------------------------------------------------------------ set-up */

/* Train mode: a data set of exactly one batch and a trainer over it, so that every step takes
 * the whole (reshuffled) set and runs at the full batch size. */
static int setup_train(bench *b, const dn_tensor_info *img, const float *images,
                       const int32_t *labels, int classes, const options *o)
{
    /* The data set's [c, h, w]: the last two dims are h and w, any before them fold into c;
     * the trainer reshapes each batch to the input's own layout. */
    int w = img->rank >= 2 ? (int)img->shape[img->rank - 1] : 1;
    int h = img->rank >= 3 ? (int)img->shape[img->rank - 2] : 1;
    int c = (int)(per_example(img) / ((int64_t)h * w));
    if (dn_dataset_from_arrays(b->batch, c, h, w, images, labels, classes, &b->data)) {
        fprintf(stderr, "dagnet: %s\n", dn_dataset_errmsg(b->data));
        return 1;
    }
    dn_train_options t;
    dn_model_train_options(b->m, &t);
    t.batch = b->batch;
    if (o->seed_set)
        t.seed = o->seed;
    /* Every step is a whole epoch here: a schedule would decay per step, not per epoch. */
    t.schedule = DN_LR_CONSTANT;
    if (dn_trainer_new(b->s, &t, NULL, &b->tr)) {
        fprintf(stderr, "dagnet: %s\n", dn_trainer_errmsg(b->tr));
        return 1;
    }
    return 0;
}

/* Infer mode: the images go in once; a step is the forward alone. */
static int setup_infer(bench *b, const dn_tensor_info *img, const float *images)
{
    int64_t shape[DN_MAX_RANK];
    memcpy(shape, img->shape, sizeof shape);
    shape[0] = b->batch;
    if (dn_session_set_input(b->s, img->name, DN_F32, img->rank, shape, images))
        return fail_session(b->s);
    return 0;
}

static int setup(bench *b, const options *o)
{
    dn_tensor_info img;
    int classes = b->train ? (int)loss_classes(b->m) : 0;
    if (image_input(b->m, &img))
        return 1;
    if (b->train && classes < 1) {
        fprintf(stderr, "dagnet: %s has no loss to train (bench --mode infer times inference)\n",
                dn_model_file(b->m));
        return 1;
    }
    float *images = NULL;
    int32_t *labels = NULL;
    int rc = open_session(b->m, o, &b->s);
    if (!rc)
        rc = make_data(b, &img, classes, o->seed, &images, &labels);
    if (!rc)
        rc = b->train ? setup_train(b, &img, images, labels, classes, o)
                      : setup_infer(b, &img, images);
    free(images);
    free(labels);
    return rc;
}

/* ------------------------------------------------------------------ timing */

static int step(bench *b)
{
    if (!b->train)
        return dn_session_forward(b->s, DN_INFER, NULL, 0) ? fail_session(b->s) : 0;
    if (dn_trainer_step(b->tr, b->data, NULL) == DN_OK)
        return 0;
    fprintf(stderr, "dagnet: %s\n", dn_trainer_errmsg(b->tr));
    return 1;
}

/* n steps, each one's milliseconds into ms[] (when given). */
static int run_steps(bench *b, int n, double *ms)
{
    for (int i = 0; i < n; i++) {
        double t0 = now_ms();
        if (step(b))
            return 1;
        if (ms)
            ms[i] = now_ms() - t0;
    }
    return 0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile p of sorted x[0..n), interpolating linearly between ranks (NumPy's default). */
static double quantile(const double *x, int n, double p)
{
    double r = p * (n - 1);
    int i = (int)r;
    return i + 1 < n ? x[i] + (r - i) * (x[i + 1] - x[i]) : x[n - 1];
}

static spread summarise(double *ms, int n)
{
    qsort(ms, (size_t)n, sizeof *ms, by_value);
    return (spread){ .median = quantile(ms, n, 0.5),
                     .q1 = quantile(ms, n, 0.25),
                     .q3 = quantile(ms, n, 0.75),
                     .min = ms[0],
                     .max = ms[n - 1] };
}

/* Warm-up (which also sizes the default run: about TARGET_MS of steps), then the timed steps. */
static int time_steps(bench *b, int iters_given)
{
    double *warm = malloc(((size_t)b->warmup + 1) * sizeof *warm);
    if (!warm) {
        fprintf(stderr, "dagnet: out of memory\n");
        return 1;
    }
    int rc = run_steps(b, b->warmup, warm);
    b->iters = iters_given;
    if (!rc && !b->iters) {
        double typical = b->warmup ? summarise(warm, b->warmup).median : 0;
        double want = typical > 0 ? ceil(TARGET_MS / typical) : MIN_ITERS;
        b->iters = (int)(want < MIN_ITERS ? MIN_ITERS : want > MAX_ITERS ? MAX_ITERS : want);
    }
    free(warm);
    if (!rc && !(b->ms = malloc((size_t)b->iters * sizeof *b->ms))) {
        fprintf(stderr, "dagnet: out of memory\n");
        rc = 1;
    }
    if (!rc)
        rc = run_steps(b, b->iters, b->ms);
    if (!rc)
        b->step = summarise(b->ms, b->iters);
    return rc;
}

/* ------------------------------------------------------------------ profile */

static double per_call_ms(double seconds, int64_t calls)
{
    return calls ? seconds * 1e3 / (double)calls : 0;
}

static double gflops(double flops, double ms) { return ms > 0 ? flops / ms / 1e6 : 0; }

/* Node i's row, with BLIS's reference on its products when it has any. */
static int node_row_of(bench *b, int i, node_row *r)
{
    if (dn_session_node_profile(b->s, i, &r->p))
        return fail_session(b->s);
    r->fwd_ms = per_call_ms(r->p.forward_seconds, r->p.forward_calls);
    r->bwd_ms = per_call_ms(r->p.backward_seconds, r->p.backward_calls);
    r->share = (r->fwd_ms + r->bwd_ms) / b->step.median;
    r->fwd_gflops = gflops(r->p.forward_flops, r->fwd_ms);
    r->bwd_gflops = gflops(r->p.backward_flops, r->bwd_ms);
    if (r->p.has_gemm &&
        dn_session_gemm_reference(b->s, i, GEMM_REPEATS, &r->blis_fwd, &r->blis_bwd))
        return fail_session(b->s);
    /* Inference runs no backward: a reference for it would compare with nothing. */
    if (!b->train)
        r->blis_bwd = 0;
    return 0;
}

/* One direction of a Conv or Affine into the step's matrix-product totals. */
static void add_gemm(bench *b, double flops, double ms, double blis_gflops)
{
    if (flops <= 0 || ms <= 0 || blis_gflops <= 0)
        return;
    b->gemm_flops += flops;
    b->gemm_ms += ms;
    b->blis_ms += flops / blis_gflops / 1e6;
}

/* A profiled run of as many steps as were timed, then each node's row. */
static int profile(bench *b)
{
    if (dn_session_set_profiling(b->s, true))
        return fail_session(b->s);
    int rc = run_steps(b, b->iters, b->ms);
    if (!rc && dn_session_set_profiling(b->s, false))
        rc = fail_session(b->s);
    if (!rc)
        b->profiled_median = summarise(b->ms, b->iters).median;
    /* Measured before the BLIS references, whose scratch matrices are no part of the run. */
    b->peak_rss_mb = peak_rss_mb();
    if (!rc && dn_session_memory(b->s, &b->mem))
        rc = fail_session(b->s);
    b->n_rows = dn_model_node_count(b->m);
    if (!rc && !(b->rows = calloc((size_t)b->n_rows + 1, sizeof *b->rows))) {
        fprintf(stderr, "dagnet: out of memory\n");
        rc = 1;
    }
    for (int i = 0; !rc && i < b->n_rows; i++) {
        node_row *r = &b->rows[i];
        rc = node_row_of(b, i, r);
        if (!rc && r->p.has_gemm) {
            add_gemm(b, r->p.forward_flops, r->fwd_ms, r->blis_fwd);
            add_gemm(b, r->p.backward_flops, r->bwd_ms, r->blis_bwd);
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ human output */

/* A figure, or "-" for one that was not measured. */
static const char *figure(double v, const char *fmt, bool present, char *buf, size_t size)
{
    if (present)
        snprintf(buf, size, fmt, v);
    else
        snprintf(buf, size, "-");
    return buf;
}

static int name_width(const bench *b, bool op)
{
    int w = op ? 2 : 4;
    for (int i = 0; i < b->n_rows; i++) {
        int len = (int)strlen(op ? b->rows[i].p.op : b->rows[i].p.node);
        w = len > w ? len : w;
    }
    return w;
}

static void print_row(const node_row *r, int nw, int ow)
{
    char c[9][32];
    bool fwd = r->p.forward_calls > 0, bwd = r->p.backward_calls > 0;
    bool gf = fwd && r->blis_fwd > 0, gb = bwd && r->blis_bwd > 0;
    printf("%-*s %-*s %8s %8s %6s %9s %9s %9s %9s %8s %8s\n", nw, r->p.node, ow, r->p.op,
           figure(r->fwd_ms, "%.3f", fwd, c[0], 32), figure(r->bwd_ms, "%.3f", bwd, c[1], 32),
           figure(100 * r->share, "%.1f%%", fwd || bwd, c[2], 32),
           figure(r->fwd_gflops, "%.2f", fwd && r->p.forward_flops > 0, c[3], 32),
           figure(r->bwd_gflops, "%.2f", bwd && r->p.backward_flops > 0, c[4], 32),
           figure(r->blis_fwd, "%.2f", gf, c[5], 32), figure(r->blis_bwd, "%.2f", gb, c[6], 32),
           figure(100 * r->fwd_gflops / r->blis_fwd, "%.0f%%", gf, c[7], 32),
           figure(100 * r->bwd_gflops / r->blis_bwd, "%.0f%%", gb, c[8], 32));
}

/* The node table, its total, and what the nodes leave of the step. */
static void print_table(const bench *b)
{
    int nw = name_width(b, false), ow = name_width(b, true);
    printf(
        "\nper node, from %d profiled steps (their median %.3f ms)\n"
        "ms per step; share of the median unprofiled step; GFLOP/s; eff = achieved / BLIS sgemm\n",
        b->iters, b->profiled_median);
    printf("%-*s %-*s %8s %8s %6s %9s %9s %9s %9s %8s %8s\n", nw, "node", ow, "op", "fwd ms",
           "bwd ms", "share", "fwd GF/s", "bwd GF/s", "BLIS fwd", "BLIS bwd", "eff fwd", "eff bwd");
    double fwd = 0, bwd = 0;
    for (int i = 0; i < b->n_rows; i++) {
        print_row(&b->rows[i], nw, ow);
        fwd += b->rows[i].fwd_ms;
        bwd += b->rows[i].bwd_ms;
    }
    double rest = b->step.median - fwd - bwd;
    char total_bwd[32];
    printf("%-*s %8.3f %8s %5.1f%%\n", nw + 1 + ow, "total", fwd,
           figure(bwd, "%.3f", b->train, total_bwd, sizeof total_bwd),
           100 * (fwd + bwd) / b->step.median);
    printf("%-*s %17.3f %5.1f%%  (the median step less the nodes: %s)\n", nw + 1 + ow, "rest", rest,
           100 * rest / b->step.median, b->train ? "data, optimiser, overhead" : "overhead");
}

static void print_human(const bench *b)
{
    const spread *t = &b->step;
    printf("bench %s (%s): %s, batch %d, %d threads, %d warm-up + %d timed steps\n",
           dn_model_name(b->m), dn_model_file(b->m), b->train ? "train" : "infer", b->batch,
           dn_session_threads(b->s), b->warmup, b->iters);
    printf("\nms per step: median %.3f  q1 %.3f  q3 %.3f  min %.3f  max %.3f\n", t->median, t->q1,
           t->q3, t->min, t->max);
    printf("images/s:    %.1f\n", b->batch * 1000.0 / t->median);
    print_table(b);
    if (b->blis_ms > 0)
        printf("\nmatrix products (Conv, Affine): %.4g GFLOP per step, achieved %.2f GFLOP/s\n"
               "BLIS sgemm on the same products: %.2f GFLOP/s (flop-weighted), efficiency %.0f%%\n",
               b->gemm_flops / 1e9, gflops(b->gemm_flops, b->gemm_ms),
               gflops(b->gemm_flops, b->blis_ms), 100 * b->blis_ms / b->gemm_ms);
    const dn_memory_info *mem = &b->mem;
    printf("\nmemory: peak RSS %.1f MB; params %.2f MB, gradients %.2f MB, arena %.2f MB "
           "(%.2f MB unshared), workspace %.2f MB\n",
           b->peak_rss_mb, mem->params / MIB, mem->param_grads / MIB, mem->arena / MIB,
           mem->arena_unshared / MIB, mem->workspace / MIB);
}

/* ------------------------------------------------------------------ JSON output */

/* x to `decimals` places: short numbers in the JSON (x / 10^k prints back exactly). */
static double rounded(double x, int decimals)
{
    double scale = pow(10, decimals);
    return round(x * scale) / scale;
}

static cJSON *node_json(const node_row *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node", r->p.node);
    cJSON_AddStringToObject(o, "op", r->p.op);
    cJSON_AddNumberToObject(o, "forward_ms", rounded(r->fwd_ms, 6));
    cJSON_AddNumberToObject(o, "backward_ms", rounded(r->bwd_ms, 6));
    cJSON_AddNumberToObject(o, "share", rounded(r->share, 5));
    cJSON_AddNumberToObject(o, "forward_gflops", rounded(r->fwd_gflops, 3));
    cJSON_AddNumberToObject(o, "backward_gflops", rounded(r->bwd_gflops, 3));
    cJSON_AddNumberToObject(o, "blis_forward_gflops", rounded(r->blis_fwd, 3));
    cJSON_AddNumberToObject(o, "blis_backward_gflops", rounded(r->blis_bwd, 3));
    return o;
}

static cJSON *bench_json(const bench *b)
{
    const spread *t = &b->step;
    const dn_memory_info *mem = &b->mem;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", dn_model_name(b->m));
    cJSON_AddStringToObject(o, "mode", b->train ? "train" : "infer");
    cJSON_AddNumberToObject(o, "batch", b->batch);
    cJSON_AddNumberToObject(o, "threads", dn_session_threads(b->s));
    cJSON_AddNumberToObject(o, "iters", b->iters);
    cJSON_AddNumberToObject(o, "warmup", b->warmup);
    cJSON *ms = cJSON_AddObjectToObject(o, "ms_per_step");
    cJSON_AddNumberToObject(ms, "median", rounded(t->median, 6));
    cJSON_AddNumberToObject(ms, "q1", rounded(t->q1, 6));
    cJSON_AddNumberToObject(ms, "q3", rounded(t->q3, 6));
    cJSON_AddNumberToObject(ms, "min", rounded(t->min, 6));
    cJSON_AddNumberToObject(ms, "max", rounded(t->max, 6));
    cJSON_AddNumberToObject(o, "images_per_s", rounded(b->batch * 1000.0 / t->median, 1));
    cJSON_AddNumberToObject(o, "peak_rss_mb", rounded(b->peak_rss_mb, 2));
    cJSON *mj = cJSON_AddObjectToObject(o, "memory");
    cJSON_AddNumberToObject(mj, "params_mb", rounded(mem->params / MIB, 3));
    cJSON_AddNumberToObject(mj, "param_grads_mb", rounded(mem->param_grads / MIB, 3));
    cJSON_AddNumberToObject(mj, "arena_mb", rounded(mem->arena / MIB, 3));
    cJSON_AddNumberToObject(mj, "arena_unshared_mb", rounded(mem->arena_unshared / MIB, 3));
    cJSON_AddNumberToObject(mj, "workspace_mb", rounded(mem->workspace / MIB, 3));
    cJSON_AddNumberToObject(o, "blis_gflops", rounded(gflops(b->gemm_flops, b->blis_ms), 3));
    cJSON *ops = cJSON_AddArrayToObject(o, "ops");
    for (int i = 0; i < b->n_rows; i++)
        cJSON_AddItemToArray(ops, node_json(&b->rows[i]));
    return o;
}

static int print_json(const bench *b)
{
    cJSON *o = bench_json(b);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        fprintf(stderr, "dagnet: out of memory for the JSON report\n");
        return 1;
    }
    puts(text);
    cJSON_free(text);
    return 0;
}

/* ------------------------------------------------------------------ command */

int cmd_bench(const dn_model *m, const options *o)
{
    bench b = { .m = m,
                .train = !o->mode || strcmp(o->mode, "train") == 0,
                .batch = o->batch,
                .warmup = o->warmup >= 0 ? o->warmup : DEFAULT_WARMUP };
    if (!b.batch) {
        dn_train_options t;
        dn_model_train_options(m, &t);
        b.batch = t.batch;
    }
    int rc = setup(&b, o);
    if (!rc)
        rc = time_steps(&b, o->iters);
    if (!rc)
        rc = profile(&b);
    if (!rc && o->json)
        rc = print_json(&b);
    else if (!rc)
        print_human(&b);
    free(b.rows);
    free(b.ms);
    dn_trainer_free(b.tr);
    dn_dataset_free(b.data);
    dn_session_free(b.s);
    return rc;
}
