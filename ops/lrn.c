/*
 * lrn.c — LRN: local response normalisation across channels (PyTorch LocalResponseNorm).
 *
 *   x [N, C, ...] (rank ≥ 3)     y: same shape     per sample and spatial position:
 *
 *   s_c = k + (alpha / size) · Σ_{c' ∈ W(c)} x_{c'}²      W(c) = [c − ⌊size/2⌋, c + ⌊(size−1)/2⌋]
 *   y_c = x_c · s_c^(−beta)
 * Channels of W(c) outside [0, C) count as zero, and the divisor stays `size` there.
 *
 * Gradient. x_j reaches y_j directly and every s_c whose window holds j:
 *   ∂y_c/∂x_j = [c = j] · s_j^(−beta)
 *               − beta · x_c · s_c^(−beta−1) · (2·alpha/size) · x_j · [j ∈ W(c)]
 * so with t_c = dy_c · x_c · s_c^(−beta−1):
 *   dx_j += dy_j · s_j^(−beta) − (2·alpha·beta / size) · x_j · Σ_{c ∈ M(j)} t_c
 *   M(j) = {c : j ∈ W(c)} = [j − ⌊(size−1)/2⌋, j + ⌊size/2⌋]
 * M is W mirrored: the two differ when size is even.
 *
 * Both window sums slide along the channels: moving from c − 1 to c adds the channel entering
 * the window and subtracts the one leaving it, two operations per element whatever the size.
 * They run in double: x² of a float is exact there, and the adds and subtracts drift by ~1e-16
 * of the largest sum, far below a float's precision.
 *
 * NaN and Inf: a sliding sum would carry a NaN or an Inf on to every later channel (Inf − Inf
 * is NaN), where PyTorch's window sum (an average pool over channels) keeps it in the windows
 * that hold it. So an item whose rows hold a non-finite value (one vectorised pass over its
 * bits, small beside the powers) sums each window afresh instead of sliding: NaN and Inf
 * then reach exactly the channels whose window holds them, as in PyTorch.
 *
 * Forward saves p = s^(−beta) (one float per element), its one power per element (libm powf,
 * the costly part, or two square roots for beta = 0.75); backward recomputes s with the same
 * sliding sum and uses s^(−beta−1) = p / s, so it takes no power at all. The workspace holds
 * t. Backward reads x, not y, so a later op may overwrite y in place.
 *
 * Threads split the work into items of one sample and a span of SPAN spatial positions: each
 * item runs its own sweep over the channels, so batch 1 still splits, and a span's running
 * sums (SPAN doubles) stay in L1.
 *
 * attrs: size (5), alpha (1e-4, ≥ 0), beta (0.75), k (1, > 0). With alpha ≥ 0 and k > 0, s ≥ k
 * stays positive and its powers are finite.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "ops/op.h"
#include "runtime/clones.h"
#include "runtime/parallel.h"

typedef struct lrn_attrs {
    int64_t size;
    double alpha, beta, k;
} lrn_attrs;

/* The tensor as planes: plane (n, c) holds the `inner` spatial values of channel c. */
typedef struct lrn_geom {
    int64_t n, c, inner;
} lrn_geom;

static lrn_geom geom(const dn_shape *x)
{
    return (lrn_geom){ x->d[0], x->d[1], dn_shape_numel_from(x, 2) };
}

/* ---------------------------------------------------------------- attrs and shapes */

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "size", "alpha", "beta", "k", NULL };
    lrn_attrs *a = attrs;
    dn_status st;
    if ((st = dn_attrs_only(c, allowed)) ||
        (st = dn_attr_int(c, "size", 5, 1, DN_MAX_DIM, &a->size)) ||
        (st = dn_attr_number(c, "alpha", 1e-4, 0.0, DBL_MAX, &a->alpha)) ||
        (st = dn_attr_number(c, "beta", 0.75, -DBL_MAX, DBL_MAX, &a->beta)) ||
        (st = dn_attr_number(c, "k", 1.0, 0.0, DBL_MAX, &a->k)))
        return st;
    if (a->k == 0.0)
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/k",
                            "expected a positive number (it keeps the denominator away from "
                            "zero), found 0");
    return DN_OK;
}

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    (void)attrs;
    dn_status st;
    if ((st = dn_expect_f32(c, in, 0)))
        return st;
    if (in[0].shape.rank < 3) {
        char xs[DN_SHAPE_STR_MAX];
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "input \"%s\" must have rank 3 or more ([N, C, ...]), found %s",
                            c->input_names[0], dn_shape_str(&in[0].shape, xs, sizeof xs));
    }
    *out = in[0];
    return DN_OK;
}

static size_t buffer_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                          const dn_tensor_desc *out)
{
    (void)attrs, (void)n_in, (void)out;
    return (size_t)dn_shape_numel(&in[0].shape) * sizeof(float);
}

static size_t workspace_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                             const dn_tensor_desc *out, int threads)
{
    (void)threads;
    return buffer_size(attrs, in, n_in, out);
}

/* Per element: a multiply-add per window channel, then the scale, the power and the product. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)in, (void)n_in;
    const lrn_attrs *a = attrs;
    return dn_mul_sat(dn_shape_numel(&out->shape), 2 * a->size + 3);
}

/* ---------------------------------------------------------------- kernels */

/* Spatial positions per work item: 512 doubles of running sum, 4 KiB. */
#define SPAN 512
/* Forward takes a powf per element (~6 ns): 4 Ki elements are worth a second thread. */
#define FORWARD_PARALLEL_MIN 4096
/* Backward is a few vectorised passes, ~1 ns an element. */
#define BACKWARD_PARALLEL_MIN 32768

/* One work item: sample n, spatial positions [at, at + len). off = n·C·inner + at is where its
 * channel 0 starts in an [N, C, inner] tensor; channel c is at off + c·inner. */
typedef struct item {
    int64_t off, len;
} item;

static item item_of(const lrn_geom *g, int64_t i)
{
    int64_t spans = (g->inner + SPAN - 1) / SPAN, n = i / spans, at = i % spans * SPAN;
    return (item){ n * g->c * g->inner + at, g->inner - at < SPAN ? g->inner - at : SPAN };
}

static int64_t item_count(const lrn_geom *g) { return g->n * ((g->inner + SPAN - 1) / SPAN); }

/* The loops over a span below are compiled for AVX2 too (runtime/clones.h): the sums in double
 * and the square roots run twice as wide, with the same bits (no contraction: C11 mode). */

/* acc += in² − out²: channel row `in` enters the window, `out` leaves it; either may be NULL
 * (a channel outside [0, C)). One pass over acc for both. */
DN_CLONES_AVX2 static void slide_squares(double *restrict acc, const float *restrict in,
                                         const float *restrict out, int64_t len)
{
    if (in && out)
        for (int64_t i = 0; i < len; i++)
            acc[i] += (double)in[i] * in[i] - (double)out[i] * out[i];
    else if (in)
        for (int64_t i = 0; i < len; i++)
            acc[i] += (double)in[i] * in[i];
    else if (out)
        for (int64_t i = 0; i < len; i++)
            acc[i] -= (double)out[i] * out[i];
}

/* acc += in − out, as slide_squares. */
DN_CLONES_AVX2 static void slide_values(double *restrict acc, const float *restrict in,
                                        const float *restrict out, int64_t len)
{
    if (in && out)
        for (int64_t i = 0; i < len; i++)
            acc[i] += (double)in[i] - (double)out[i];
    else if (in)
        for (int64_t i = 0; i < len; i++)
            acc[i] += (double)in[i];
    else if (out)
        for (int64_t i = 0; i < len; i++)
            acc[i] -= (double)out[i];
}

/* A running sum over channel windows [c − lag, c + lead] of one item's rows: start() makes it
 * the sum of channels [0, lead) (the window of c = −1), step(c) moves it to channel c's.
 * Channels outside [0, C) count as zero. */
typedef struct window {
    double acc[SPAN];
    const float *rows;
    int64_t inner, channels, len, lag, lead;
    bool squares;
    bool afresh; /* the rows hold NaN or Inf: each window summed anew, not slid */
} window;

/* Whether the item's rows (channels rows `inner` apart, len values each) are all finite. */
static bool rows_finite(const float *rows, int64_t inner, int64_t channels, int64_t len)
{
    for (int64_t c = 0; c < channels; c++)
        if (!dn_all_finite(rows + c * inner, len))
            return false;
    return true;
}

static void slide(window *w, const float *in, const float *out)
{
    (w->squares ? slide_squares : slide_values)(w->acc, in, out, w->len);
}

static void start(window *w)
{
    memset(w->acc, 0, (size_t)w->len * sizeof w->acc[0]);
    for (int64_t c = 0; c < w->lead && c < w->channels; c++)
        slide(w, w->rows + c * w->inner, NULL);
}

static void step(window *w, int64_t c)
{
    if (w->afresh) {
        memset(w->acc, 0, (size_t)w->len * sizeof w->acc[0]);
        for (int64_t j = c - w->lag < 0 ? 0 : c - w->lag; j <= c + w->lead && j < w->channels; j++)
            slide(w, w->rows + j * w->inner, NULL);
        return;
    }
    int64_t in = c + w->lead, out = c - w->lag - 1;
    slide(w, in < w->channels ? w->rows + in * w->inner : NULL,
          out >= 0 ? w->rows + out * w->inner : NULL);
}

/* s = k + (alpha / size) · Σ x² for channel c of an item, from its window. */
DN_CLONES_AVX2 static void scale_row(const lrn_attrs *a, const window *w, float *restrict s)
{
    double scale = a->alpha / (double)a->size, k = a->k;
    const double *restrict acc = w->acc;
    for (int64_t i = 0; i < w->len; i++)
        s[i] = (float)(k + scale * acc[i]);
}

/* The sliding sum of x² over W(c) for the item at x + off. */
static void squares_window(const lrn_attrs *a, const lrn_geom *g, const float *x, item it,
                           window *w)
{
    *w = (window){ .rows = x + it.off,
                   .inner = g->inner,
                   .channels = g->c,
                   .len = it.len,
                   .lag = a->size / 2,
                   .lead = (a->size - 1) / 2,
                   .squares = true };
    w->afresh = !rows_finite(w->rows, w->inner, w->channels, w->len);
    start(w);
}

/* p[i] = s[i]^(−β). β = 0.75 (AlexNet's, Caffe's and PyTorch's default) is 1 / (√s · ⁴√s):
 * square roots vectorise where powf is a call per element, at most ~2 ulp from powf — the
 * same order as PyTorch's own vectorised pow. */
DN_CLONES_AVX2 static void inverse_power(float beta, const float *restrict s, float *restrict p,
                                         int64_t n)
{
    if (beta == 0.75f) {
        for (int64_t i = 0; i < n; i++) {
            float r = sqrtf(s[i]);
            p[i] = 1.0f / (r * sqrtf(r));
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        p[i] = powf(s[i], -beta);
}

DN_CLONES_AVX2 static void times(const float *restrict x, const float *restrict p,
                                 float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * p[i];
}

/* y = x · p and p = s^(−β), saved, for every channel of one item. */
static void forward_item(const lrn_attrs *a, const lrn_geom *g, const float *x, float *p, float *y,
                         item it)
{
    window w;
    float s[SPAN], beta = (float)a->beta;
    squares_window(a, g, x, it, &w);
    for (int64_t c = 0; c < g->c; c++) {
        int64_t row = it.off + c * g->inner;
        step(&w, c);
        scale_row(a, &w, s);
        inverse_power(beta, s, p + row, it.len);
        times(x + row, p + row, y + row, it.len);
    }
}

static void forward_items(const lrn_attrs *a, const lrn_geom *g, const float *x, float *p, float *y,
                          int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++)
        forward_item(a, g, x, p, y, item_of(g, i));
}

typedef struct forward_ctx {
    const lrn_attrs *a;
    const lrn_geom *g;
    const float *x;
    float *p, *y;
} forward_ctx;

static void forward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const forward_ctx *j = ctx;
    (void)part;
    forward_items(j->a, j->g, j->x, j->p, j->y, lo, hi);
}

static void forward(const dn_kernel *k)
{
    lrn_geom g = geom(&k->x[0].shape);
    int64_t items = item_count(&g);
    forward_ctx c = {
        .a = k->attrs, .g = &g, .x = dn_f32(&k->x[0]), .p = k->saved, .y = dn_f32(k->y)
    };
    dn_parallel_for(items, dn_team(k->threads, g.n * g.c * g.inner, FORWARD_PARALLEL_MIN),
                    forward_job, &c);
}

/* t = dy · x · p / s over one row of a span. */
DN_CLONES_AVX2 static void t_row(const float *restrict dy, const float *restrict x,
                                 const float *restrict p, const float *restrict s,
                                 float *restrict t, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        t[i] = dy[i] * x[i] * p[i] / s[i];
}

/* dx += dy · p − coef · x · m over one row of a span (m: the window sums of t). */
DN_CLONES_AVX2 static void dx_row(const float *restrict dy, const float *restrict p,
                                  const float *restrict x, const double *restrict m, float coef,
                                  float *restrict dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] += dy[i] * p[i] - coef * x[i] * (float)m[i];
}

/* t_c = dy_c · x_c · p_c / s_c (= dy · x · s^(−β−1)) for every channel of one item. */
static void t_rows(const lrn_attrs *a, const lrn_geom *g, const float *x, const float *p,
                   const float *dy, float *restrict t, item it)
{
    window w;
    float s[SPAN];
    squares_window(a, g, x, it, &w);
    for (int64_t c = 0; c < g->c; c++) {
        int64_t row = it.off + c * g->inner;
        step(&w, c);
        scale_row(a, &w, s);
        t_row(dy + row, x + row, p + row, s, t + row, it.len);
    }
}

/* dx_j += dy_j · p_j − coef · x_j · Σ_{c ∈ M(j)} t_c for every channel j of one item. */
static void backward_item(const lrn_attrs *a, const lrn_geom *g, const float *x, const float *p,
                          const float *dy, float *t, float *restrict dx, item it)
{
    t_rows(a, g, x, p, dy, t, it);
    float coef = (float)(2.0 * a->alpha * a->beta / (double)a->size);
    window m = { .rows = t + it.off,
                 .inner = g->inner,
                 .channels = g->c,
                 .len = it.len,
                 .lag = (a->size - 1) / 2,
                 .lead = a->size / 2,
                 .squares = false };
    m.afresh = !rows_finite(m.rows, m.inner, m.channels, m.len);
    start(&m);
    for (int64_t j = 0; j < g->c; j++) {
        int64_t row = it.off + j * g->inner;
        step(&m, j);
        dx_row(dy + row, p + row, x + row, m.acc, coef, dx + row, it.len);
    }
}

static void backward_items(const lrn_attrs *a, const lrn_geom *g, const float *x, const float *p,
                           const float *dy, float *t, float *dx, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++)
        backward_item(a, g, x, p, dy, t, dx, item_of(g, i));
}

typedef struct backward_ctx {
    const lrn_attrs *a;
    const lrn_geom *g;
    const float *x, *p, *dy;
    float *t, *dx;
} backward_ctx;

static void backward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const backward_ctx *j = ctx;
    (void)part;
    backward_items(j->a, j->g, j->x, j->p, j->dy, j->t, j->dx, lo, hi);
}

/* Each item writes and reads only its own rows of t, so one pass per item needs no barrier. */
static void backward(const dn_kernel *k)
{
    lrn_geom g = geom(&k->x[0].shape);
    float *dx = dn_f32(&k->dx[0]);
    if (!dx)
        return;
    int64_t items = item_count(&g);
    backward_ctx c = { .a = k->attrs,
                       .g = &g,
                       .x = dn_f32(&k->x[0]),
                       .p = k->saved,
                       .dy = dn_f32(k->dy),
                       .t = k->work,
                       .dx = dx };
    dn_parallel_for(items, dn_team(k->threads, g.n * g.c * g.inner, BACKWARD_PARALLEL_MIN),
                    backward_job, &c);
}

const dn_op dn_op_lrn = {
    .name = "LRN",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(lrn_attrs),
    .parse_attrs = parse_attrs,
    .infer = infer,
    .workspace_size = workspace_size,
    .saved_size = buffer_size,
    .flops = flops,
    .forward = forward,
    .backward = backward,
    .backward_reads_inputs = 0x1,
};
