/*
 * conv_im2col.c — Conv's batched path (ops/conv.h): wide kernels (AlexNet), where the product
 * is large enough for BLIS to run at full speed on all the session's threads.
 *
 *   x [N, C, H, W]     W [F, C, kh, kw] read as [F, K]     b [F]     y [N, F, OH, OW]
 *
 * The sum is one matrix product over the whole batch (the batched path). im2col lays the
 * receptive fields of nc samples side by side as col [K = C·kh·kw, nc·P] (P = OH·OW; row
 * (c·kh + i)·kw + j, column n·P + p·OW + q), and with W read as [F, K]:
 *   forward    Y' = W · col              Y' [F, nc·P], then y[n, f, :] = Y'[f, n·P ..] + b[f]
 *   backward   dY'[f, n·P ..] = dy[n, f, :]
 *              dW += dY' · colᵀ          db[f] += Σ dY'[f, :]
 *              dcol = Wᵀ · dY', and col2im adds every dcol entry onto the pixel its col
 *              entry was read from (padding entries are dropped): dx += col2im(dcol)
 * One large product per chunk instead of one small one per sample: BLIS runs it on all the
 * session's threads at full speed, and the copies between y's [N, F, P] order and Y''s
 * [F, N, P] are contiguous runs of P floats. The batch goes in chunks of nc samples, nc
 * chosen so that the product has CHUNK_MIN_COLS columns over which BLIS's packing of W pays
 * (conv_chunk_samples, ops/conv.h). The copies around the product split their (sample, row) pairs
 * across the threads, so a chunk of one sample (AlexNet's wide layers) copies on all of them.
 * The workspace holds col (reused as dcol) and Y' (or dY').
 * Nothing is saved: backward rebuilds col from x rather than keeping it between passes.
 *
 * dn_conv_im2col_sample and dn_conv_col2im_sample serve the per-sample path too (conv_packed.c),
 * one sample at a time.
 */
#include <string.h>

#include "ops/conv.h"
#include "runtime/gemm.h"
#include "runtime/parallel.h"

/* ---------------------------------------------------------------- im2col and col2im */

/* Outputs o in [*lo, *hi) read input position o·stride + off inside [0, size); the rest
 * read padding. */
static void valid_span(int64_t off, int64_t stride, int64_t size, int64_t outs, int64_t *lo,
                       int64_t *hi)
{
    *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = size - 1 - off < 0 ? 0 : (size - 1 - off) / stride + 1;
    if (*hi > outs)
        *hi = outs;
    if (*lo > *hi)
        *lo = *hi;
}

/* Rows [lo, hi) of col for one sample x [C, H, W], written at column offset 0 of a col whose
 * rows are `ld` floats apart. */
static void im2col_rows(const conv_geom *g, const float *restrict x, float *restrict col,
                        int64_t ld, int64_t lo, int64_t hi)
{
    for (int64_t r = lo; r < hi; r++) {
        conv_tap t = conv_tap_of(g, r);
        int64_t ch = t.c, i = t.i, j = t.j;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
        i = conv_tap_h(g, i), j = conv_tap_w(g, j);
        valid_span(i - g->ph, g->sh, g->h, g->oh, &oh_lo, &oh_hi);
        valid_span(j - g->pw, g->sw, g->w, g->ow, &ow_lo, &ow_hi);
        float *row = col + r * ld;
        for (int64_t oh = 0; oh < g->oh; oh++) {
            float *dst = row + oh * g->ow;
            if (oh < oh_lo || oh >= oh_hi) {
                memset(dst, 0, (size_t)g->ow * sizeof *dst);
                continue;
            }
            const float *src = x + (ch * g->h + oh * g->sh - g->ph + i) * g->w + j - g->pw;
            for (int64_t ow = 0; ow < ow_lo; ow++)
                dst[ow] = 0.0f;
            if (g->sw == 1)
                memcpy(dst + ow_lo, src + ow_lo, (size_t)(ow_hi - ow_lo) * sizeof *dst);
            else
                for (int64_t ow = ow_lo; ow < ow_hi; ow++)
                    dst[ow] = src[ow * g->sw];
            for (int64_t ow = ow_hi; ow < g->ow; ow++)
                dst[ow] = 0.0f;
        }
    }
}

void dn_conv_im2col_sample(const conv_geom *g, const float *restrict x, float *restrict col,
                           int64_t ld)
{
    im2col_rows(g, x, col, ld, 0, g->k);
}

/* dx += col2im(rows [lo, hi) of dcol) for one sample dx [C, H, W]; dcol's rows are `ld`
 * floats apart. */
static void col2im_rows(const conv_geom *g, const float *restrict dcol, int64_t ld,
                        float *restrict dx, int64_t lo, int64_t hi)
{
    for (int64_t r = lo; r < hi; r++) {
        conv_tap t = conv_tap_of(g, r);
        int64_t ch = t.c, i = t.i, j = t.j;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
        i = conv_tap_h(g, i), j = conv_tap_w(g, j);
        valid_span(i - g->ph, g->sh, g->h, g->oh, &oh_lo, &oh_hi);
        valid_span(j - g->pw, g->sw, g->w, g->ow, &ow_lo, &ow_hi);
        const float *row = dcol + r * ld;
        for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
            float *dst = dx + (ch * g->h + oh * g->sh - g->ph + i) * g->w + j - g->pw;
            const float *src = row + oh * g->ow;
            for (int64_t ow = ow_lo; ow < ow_hi; ow++)
                dst[ow * g->sw] += src[ow];
        }
    }
}

void dn_conv_col2im_sample(const conv_geom *g, const float *restrict dcol, int64_t ld,
                           float *restrict dx)
{
    col2im_rows(g, dcol, ld, dx, 0, g->k);
}

/* ---------------------------------------------------------------- the batched copies
 *
 * Each copy below is a loop over (sample, row) pairs, nc·rows of them, split evenly across
 * the threads: by sample when the chunk holds many, within a sample when it holds fewer
 * than the threads (AlexNet's wide layers take one sample per chunk, whose copies would
 * otherwise run on one thread while the others wait for the product). */

/* The team for `items` copies of `work` floats each. */
static int copy_team(int threads, int64_t items, int64_t work)
{
    return items > 1 ? dn_team(threads, items * work, DN_PARALLEL_MIN) : 1;
}

/* What a copy's ranges need (dn_parallel_for's context): the chunk of nc samples, the array
 * read and the array written (b: scatter_output's bias, or NULL). */
typedef struct copy_ctx {
    const conv_geom *g;
    const float *src, *b;
    int64_t nc;
    float *dst;
} copy_ctx;

/* Pair i = n·rows + row of a copy over (sample, row) pairs: the run of pairs from i on that
 * stays within sample n and before `hi`, as rows [*at, returned value) of sample *n. */
static int64_t pair_run(int64_t i, int64_t hi, int64_t rows, int64_t *n, int64_t *at)
{
    *n = i / rows, *at = i % rows;
    return hi - i < rows - *at ? *at + (hi - i) : rows;
}

static void im2col_range(const conv_geom *g, const float *x, int64_t nc, float *col, int64_t lo,
                         int64_t hi)
{
    for (int64_t i = lo, n, at, to; i < hi; i += to - at) {
        to = pair_run(i, hi, g->k, &n, &at);
        im2col_rows(g, x + n * g->xs, col + n * g->p, nc * g->p, at, to);
    }
}

static void im2col_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const copy_ctx *j = ctx;
    (void)part;
    im2col_range(j->g, j->src, j->nc, j->dst, lo, hi);
}

/* col [K, nc·P] from samples x [nc, C, H, W]: each (sample, row of col) pair is a run of P
 * floats of its own. */
static void im2col(const conv_geom *g, const float *x, int64_t nc, float *col, int threads)
{
    dn_parallel_for(nc * g->k, copy_team(threads, nc * g->k, g->p), im2col_job,
                    &(copy_ctx){ .g = g, .src = x, .nc = nc, .dst = col });
}

/* Pairs of sample and input channel: a channel's rows of dcol add only onto that channel. */
static void col2im_range(const conv_geom *g, const float *dcol, int64_t nc, float *dx, int64_t lo,
                         int64_t hi)
{
    int64_t taps = g->kh * g->kw;
    for (int64_t i = lo, n, at, to; i < hi; i += to - at) {
        to = pair_run(i, hi, g->c, &n, &at);
        col2im_rows(g, dcol + n * g->p, nc * g->p, dx + n * g->xs, at * taps, to * taps);
    }
}

static void col2im_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const copy_ctx *j = ctx;
    (void)part;
    col2im_range(j->g, j->src, j->nc, j->dst, lo, hi);
}

/* dx [nc, C, H, W] += col2im(dcol), split by (sample, channel), so threads never add onto the
 * same pixel. */
static void col2im(const conv_geom *g, const float *dcol, int64_t nc, float *dx, int threads)
{
    dn_parallel_for(nc * g->c, copy_team(threads, nc * g->c, g->kh * g->kw * g->p), col2im_job,
                    &(copy_ctx){ .g = g, .src = dcol, .nc = nc, .dst = dx });
}

static void scatter_range(const conv_geom *g, const float *yt, const float *b, int64_t nc, float *y,
                          int64_t lo, int64_t hi)
{
    for (int64_t i = lo, n, at, to; i < hi; i += to - at) {
        to = pair_run(i, hi, g->f, &n, &at);
        for (int64_t f = at; f < to; f++) {
            const float *restrict src = yt + f * nc * g->p + n * g->p;
            float *restrict dst = y + n * g->ys + f * g->p;
            float bias = b ? b[f] : 0.0f;
            if (g->relu) /* the inference epilogue */
                for (int64_t p = 0; p < g->p; p++)
                    dst[p] = dn_relu(src[p] + bias);
            else
                for (int64_t p = 0; p < g->p; p++)
                    dst[p] = src[p] + bias;
        }
    }
}

static void scatter_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const copy_ctx *j = ctx;
    (void)part;
    scatter_range(j->g, j->src, j->b, j->nc, j->dst, lo, hi);
}

/* y [nc, F, P] = Y' [F, nc·P] + b (then ReLU, with g->relu), run by run. */
static void scatter_output(const conv_geom *g, const float *yt, const float *b, int64_t nc,
                           float *y, int threads)
{
    dn_parallel_for(nc * g->f, copy_team(threads, nc * g->f, g->p), scatter_job,
                    &(copy_ctx){ .g = g, .src = yt, .b = b, .nc = nc, .dst = y });
}

static void gather_range(const conv_geom *g, const float *dy, int64_t nc, float *dyt, int64_t lo,
                         int64_t hi)
{
    for (int64_t i = lo, n, at, to; i < hi; i += to - at) {
        to = pair_run(i, hi, g->f, &n, &at);
        for (int64_t f = at; f < to; f++)
            memcpy(dyt + f * nc * g->p + n * g->p, dy + n * g->ys + f * g->p,
                   (size_t)g->p * sizeof *dyt);
    }
}

static void gather_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const copy_ctx *j = ctx;
    (void)part;
    gather_range(j->g, j->src, j->nc, j->dst, lo, hi);
}

/* dY' [F, nc·P] from dy [nc, F, P]. */
static void gather_output_grad(const conv_geom *g, const float *dy, int64_t nc, float *dyt,
                               int threads)
{
    dn_parallel_for(nc * g->f, copy_team(threads, nc * g->f, g->p), gather_job,
                    &(copy_ctx){ .g = g, .src = dy, .nc = nc, .dst = dyt });
}

/* db[f] += Σ dY'[f, :] for f in [lo, hi), each sum in double (nc·P terms can be many). */
static void bias_grad_range(const float *dyt, int64_t len, float *db, int64_t lo, int64_t hi)
{
    for (int64_t f = lo; f < hi; f++) {
        double sum = 0.0;
        for (int64_t i = 0; i < len; i++)
            sum += dyt[f * len + i];
        db[f] += (float)sum;
    }
}

static void bias_grad_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const copy_ctx *j = ctx;
    (void)part;
    bias_grad_range(j->src, j->nc * j->g->p, j->dst, lo, hi);
}

static void bias_grad(const conv_geom *g, const float *dyt, int64_t nc, float *db, int threads)
{
    dn_parallel_for(g->f, copy_team(threads, g->f, nc * g->p), bias_grad_job,
                    &(copy_ctx){ .g = g, .src = dyt, .nc = nc, .dst = db });
}

void dn_conv_im2col_forward(const dn_kernel *k, const conv_geom *g)
{
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    int64_t per = conv_chunk_samples(g), in = g->xs;
    float *col = k->work;
    for (int64_t n0 = 0; n0 < g->n; n0 += per) {
        int64_t nc = g->n - n0 < per ? g->n - n0 : per;
        float *yt = col + g->k * nc * g->p;
        im2col(g, x + n0 * in, nc, col, k->threads);
        dn_sgemm(false, false, g->f, nc * g->p, g->k, 1.0f, w, g->k, col, nc * g->p, 0.0f, yt,
                 nc * g->p, k->threads);
        scatter_output(g, yt, b, nc, dn_f32(k->y) + n0 * g->ys, k->threads);
    }
}

void dn_conv_im2col_backward(const dn_kernel *k, const conv_geom *g)
{
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]), *dw = dn_f32(&k->dx[1]);
    float *db = k->n_inputs > 2 ? dn_f32(&k->dx[2]) : NULL;
    int64_t per = conv_chunk_samples(g), in = g->xs;
    float *col = k->work;
    for (int64_t n0 = 0; n0 < g->n; n0 += per) {
        int64_t nc = g->n - n0 < per ? g->n - n0 : per, len = nc * g->p;
        float *dyt = col + g->k * len;
        gather_output_grad(g, dy + n0 * g->ys, nc, dyt, k->threads);
        if (db)
            bias_grad(g, dyt, nc, db, k->threads);
        if (dw) {
            im2col(g, x + n0 * in, nc, col, k->threads);
            dn_sgemm(false, true, g->f, g->k, len, 1.0f, dyt, len, col, len, 1.0f, dw, g->k,
                     k->threads);
        }
        if (dx) {
            dn_sgemm(true, false, g->k, len, g->f, 1.0f, w, g->k, dyt, len, 0.0f, col, len,
                     k->threads);
            col2im(g, col, nc, dx + n0 * in, k->threads);
        }
    }
}
