/*
 * conv.c — Conv: 2-D cross-correlation of NCHW images with a bank of filters, plus a bias.
 *
 *   x [N, C, H, W]     W [F, C, kh, kw]     b [F] (optional)     y [N, F, OH, OW]
 *   OH = floor((H + 2·pad_h − kh) / stride_h) + 1, OW likewise
 *
 *   y[n,f,p,q] = b[f] + Σ_{c,i,j} W[f,c,i,j] · x[n, c, p·sh − ph + i, q·sw − pw + j]
 *   (x reads as zero outside the image)
 *
 * The sum is one matrix product over the whole batch (the batched path). im2col lays the receptive fields of
 * nc samples side by side as col [K = C·kh·kw, nc·P] (P = OH·OW; row (c·kh + i)·kw + j,
 * column n·P + p·OW + q), and with W read as [F, K]:
 *   forward    Y' = W · col              Y' [F, nc·P], then y[n, f, :] = Y'[f, n·P ..] + b[f]
 *   backward   dY'[f, n·P ..] = dy[n, f, :]
 *              dW += dY' · colᵀ          db[f] += Σ dY'[f, :]
 *              dcol = Wᵀ · dY', and col2im adds every dcol entry onto the pixel its col
 *              entry was read from (padding entries are dropped): dx += col2im(dcol)
 * One large product per chunk instead of one small one per sample: BLIS runs it on all the
 * session's threads at full speed, and the copies between y's [N, F, P] order and Y''s
 * [F, N, P] are contiguous runs of P floats. The batch goes in chunks of nc samples, nc
 * chosen so that col and Y' stay within CHUNK_BYTES (a few MB: they stay in cache between
 * im2col and the product). The workspace holds col (reused as dcol) and Y' (or dY').
 * Nothing is saved: backward rebuilds col from x rather than keeping it between passes.
 *
 * Three paths, by the shape of the product (the same sums, in other orders):
 *   direct      (K ≤ DIRECT_MAX_K, stride 1: the first conv of LeNet and SimpleConvNet, one
 *               channel 5×5) loops over a zero-padded copy of each sample, vectorised along
 *               output rows; threads split the batch's output rows, so batch 1 splits too.
 *               im2col would copy every pixel K times for a product too thin to pay for it.
 *   per sample  (K ≤ PER_SAMPLE_MAX_K: LeNet's second conv) threads split the batch and run
 *               one product per sample on BLIS's micro-kernel (dn_gemm_packed), packing col
 *               straight from the image through an index table built once per pass. y_n is
 *               written in place, and each thread adds dW and db into its own copy, summed in
 *               thread order at the end (the same bits on every run with the same threads).
 *   batched     (wider kernels: AlexNet) the chunked im2col products above, BLIS threading.
 * dx always comes from the per-sample or the batched products (the direct path delegates it).
 *
 * attrs: stride (1), pad (0), each an int or [h, w]. For implicit params (FORMAT.md):
 * filters and kernel (int or [h, w]) size the weight, bias (true), init, bias_init. When
 * filters or kernel is given alongside explicit params it must agree with W.
 */
#include <math.h>
#include <string.h>

#include "runtime/gemm.h"
#include "runtime/parallel.h"
#include "ops/op.h"

typedef struct conv_attrs {
    int64_t stride[2], pad[2];
    int64_t kernel[2], filters; /* read only when has_kernel / has_filters */
    bool has_kernel, has_filters, bias;
    dn_init init, bias_init;
} conv_attrs;

/* Every size the kernels need, from the shapes of one run. */
typedef struct conv_geom {
    int64_t n, c, h, w, f, kh, kw, oh, ow, sh, sw, ph, pw;
    int64_t k, p; /* col is k × p: k = c·kh·kw, p = oh·ow */
} conv_geom;

static conv_geom geom(const conv_attrs *a, const dn_shape *x, const dn_shape *w,
                      const dn_shape *y)
{
    conv_geom g = { .n = x->d[0], .c = x->d[1], .h = x->d[2], .w = x->d[3],
                    .f = w->d[0], .kh = w->d[2], .kw = w->d[3],
                    .oh = y->d[2], .ow = y->d[3],
                    .sh = a->stride[0], .sw = a->stride[1], .ph = a->pad[0], .pw = a->pad[1] };
    g.k = g.c * g.kh * g.kw;
    g.p = g.oh * g.ow;
    return g;
}

/* Row r = (c·kh + i)·kw + j of col: the channel and the kernel position it reads. */
typedef struct tap {
    int64_t c, i, j;
} tap;

static tap tap_of(const conv_geom *g, int64_t r)
{
    return (tap){ r / (g->kh * g->kw), r / g->kw % g->kh, r % g->kw };
}

/* ---------------------------------------------------------------- attrs and shapes */

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "stride", "pad",  "filters",   "kernel",
                                           "bias",   "init", "bias_init", NULL };
    conv_attrs *a = attrs;
    dn_status st;
    if ((st = dn_attrs_only(c, allowed)) ||
        (st = dn_attr_int2(c, "stride", 1, 1, DN_MAX_DIM, a->stride)) ||
        (st = dn_attr_int2(c, "pad", 0, 0, DN_MAX_DIM, a->pad)) ||
        (st = dn_attr_int(c, "filters", 1, 1, DN_MAX_DIM, &a->filters)) ||
        (st = dn_attr_int2(c, "kernel", 1, 1, DN_MAX_DIM, a->kernel)) ||
        (st = dn_attr_bool(c, "bias", true, &a->bias)) ||
        (st = dn_attr_init(c, "init", &a->init)) ||
        (st = dn_attr_init(c, "bias_init", &a->bias_init)))
        return st;
    a->has_filters = dn_attr_present(c, "filters");
    a->has_kernel = dn_attr_present(c, "kernel");
    return DN_OK;
}

static int implicit_params(const void *attrs, const dn_tensor_desc *x, dn_param_spec *out)
{
    const conv_attrs *a = attrs;
    if (!a->has_filters || !a->has_kernel)
        return 0;
    /* infer rejects an x of another rank right after; until then any channel count does. */
    int64_t channels = x->shape.rank == 4 ? x->shape.d[1] : 1;
    int64_t dims[4] = { a->filters, channels, a->kernel[0], a->kernel[1] };
    out[0] = (dn_param_spec){ "weight", dn_shape_make(4, dims, false), a->init };
    if (!a->bias)
        return 1;
    out[1] = (dn_param_spec){ "bias", dn_shape_make(1, &a->filters, false), a->bias_init };
    return 2;
}

static dn_status check_weight(const dn_node_ctx *c, const conv_attrs *a,
                              const dn_tensor_desc *in)
{
    const dn_shape *x = &in[0].shape, *w = &in[1].shape;
    char xs[DN_SHAPE_STR_MAX], ws[DN_SHAPE_STR_MAX];
    dn_shape_str(x, xs, sizeof xs);
    dn_shape_str(w, ws, sizeof ws);
    if (w->d[1] != x->d[1])
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/1",
                            "weight \"%s\" %s expects %lld input channels, but input \"%s\" %s "
                            "has %lld",
                            c->input_names[1], ws, (long long)w->d[1], c->input_names[0], xs,
                            (long long)x->d[1]);
    if (a->has_filters && w->d[0] != a->filters)
        return dn_node_fail(c, DN_ERR_SHAPE, "attrs/filters",
                            "filters is %lld, but weight \"%s\" %s has %lld filters",
                            (long long)a->filters, c->input_names[1], ws, (long long)w->d[0]);
    if (a->has_kernel && (w->d[2] != a->kernel[0] || w->d[3] != a->kernel[1]))
        return dn_node_fail(c, DN_ERR_SHAPE, "attrs/kernel",
                            "kernel is [%lld,%lld], but weight \"%s\" %s has a [%lld,%lld] kernel",
                            (long long)a->kernel[0], (long long)a->kernel[1], c->input_names[1],
                            ws, (long long)w->d[2], (long long)w->d[3]);
    return DN_OK;
}

static dn_status output_shape(const dn_node_ctx *c, const conv_attrs *a,
                              const dn_tensor_desc *in, dn_tensor_desc *out)
{
    const dn_shape *x = &in[0].shape, *w = &in[1].shape;
    char xs[DN_SHAPE_STR_MAX], ws[DN_SHAPE_STR_MAX];
    dn_shape_str(x, xs, sizeof xs);
    dn_shape_str(w, ws, sizeof ws);
    int64_t oh = dn_window_out(x->d[2], w->d[2], a->stride[0], a->pad[0]);
    int64_t ow = dn_window_out(x->d[3], w->d[3], a->stride[1], a->pad[1]);
    if (oh < 1 || ow < 1)
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "the [%lld,%lld] kernel of weight \"%s\" %s does not fit input \"%s\" "
                            "%s with pad [%lld,%lld]",
                            (long long)w->d[2], (long long)w->d[3], c->input_names[1], ws,
                            c->input_names[0], xs, (long long)a->pad[0], (long long)a->pad[1]);
    int64_t dims[4] = { x->d[0], w->d[0], oh, ow };
    *out = (dn_tensor_desc){ DN_F32, dn_shape_make(4, dims, x->batched) };
    /* The workspace holds a [C·kh·kw, OH·OW] col; its size in bytes must be representable. */
    int64_t positions, bytes;
    bool fits = dn_shape_numel(&out->shape) >= 0 && dn_mul_ok(oh, ow, &positions) &&
                dn_mul_ok(dn_shape_numel_from(w, 1), positions, &bytes) &&
                dn_mul_ok(bytes, (int64_t)sizeof(float), &bytes);
    if (!fits)
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "input \"%s\" %s and weight \"%s\" %s give an output of %lldx%lld "
                            "positions, too large to compute",
                            c->input_names[0], xs, c->input_names[1], ws, (long long)oh,
                            (long long)ow);
    return DN_OK;
}

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    const conv_attrs *a = attrs;
    dn_status st;
    for (int i = 0; i < c->n_inputs; i++)
        if ((st = dn_expect_f32(c, in, i)) || (st = dn_expect_rank(c, in, i, i < 2 ? 4 : 1)))
            return st;
    if ((st = check_weight(c, a, in)) || (st = dn_check_bias(c, a->bias, in, 0, "filter")))
        return st;
    return output_shape(c, a, in, out);
}

/* Samples per chunk: as many as fit CHUNK_BYTES of col and Y', at least one, and chunks of
 * equal size (so that the last is not a sliver). */
#define CHUNK_BYTES ((int64_t)8 << 20)

static int64_t chunk_samples(const conv_geom *g)
{
    int64_t per_sample = (g->k + g->f) * g->p * (int64_t)sizeof(float);
    int64_t most = CHUNK_BYTES / (per_sample > 0 ? per_sample : 1);
    if (most < 1)
        most = 1;
    int64_t chunks = (g->n + most - 1) / most;
    return (g->n + chunks - 1) / chunks;
}

/* ---- the per-sample path's workspace: shared by all threads, the packed weights and an
 * index table; then one slot per thread ---- */
#define PER_SAMPLE_MAX_K 512

/* Table entries are int32 offsets into one sample. */
/* Few input values per output and stride 1 (the first conv of LeNet and SimpleConvNet: one
 * channel, 5×5): im2col would copy each pixel K times to feed a product too thin to pay for
 * it. The direct loops read a zero-padded copy of the sample instead (see "direct path"). */
#define DIRECT_MAX_K 32

static bool direct(const conv_geom *g)
{
    return g->k <= DIRECT_MAX_K && g->sh == 1 && g->sw == 1;
}

/* The direct loops' register blocks: FB filters × QB outputs (forward), DW_TAPS taps × 8
 * columns (dW); QB floats of slack after the padded copy for lanes past a row's end. */
enum { FB = 3, QB = 16, DW_TAPS = 10 };

static int64_t padded_w(const conv_geom *g) { return g->w + 2 * g->pw; }
static int64_t padded_h(const conv_geom *g) { return g->h + 2 * g->ph; }
/* Floats of the padded copy, with QB of slack for the lanes that run past a row's end. */
static int64_t padded_size(const conv_geom *g) { return g->c * padded_h(g) * padded_w(g) + QB; }

static bool per_sample(const conv_geom *g)
{
    return g->k <= PER_SAMPLE_MAX_K && g->c * g->h * g->w < INT32_MAX;
}

static int team_size(const conv_geom *g, int threads)
{
    return g->n < threads ? (int)g->n : threads;
}

typedef struct slot_layout {
    int64_t weights;            /* packed W (forward) or packed Wᵀ (backward) */
    int64_t table;              /* where each packed col entry comes from (int32) */
    int64_t shared;             /* the two above */
    int64_t sample;             /* x_n [C, H, W] and one 0 after it, for padding */
    int64_t col, packed_col;    /* dcol [K, P]; col_n packed as B (forward) or Bᵀ (dW) */
    int64_t packed_dy_a, packed_dy_b, dw, db;
    int64_t padded;             /* the direct path's padded sample (0 otherwise) */
    int64_t per_thread;         /* the sum of the slot's arrays (floats) */
} slot_layout;

/* Sizes rounded up to 16 floats keep every array 64-byte aligned. */
static int64_t r16(int64_t n) { return (n + 15) / 16 * 16; }

static int64_t larger(int64_t a, int64_t b) { return a > b ? a : b; }

static slot_layout slots(const conv_geom *g, const dn_ukernel *u)
{
    slot_layout s;
    int64_t cb = dn_packed_size(g->p, g->k, u->nr), ct = dn_packed_size(g->k, g->p, u->nr);
    s.weights = r16(larger(dn_packed_size(g->f, g->k, u->mr), dn_packed_size(g->k, g->f, u->mr)));
    s.table = r16(larger(cb, ct)); /* int32 entries, the size of floats */
    s.shared = s.weights + s.table;
    s.sample = r16(g->c * g->h * g->w + 1);
    s.col = r16(g->k * g->p);
    s.packed_col = r16(larger(cb, ct));
    s.packed_dy_a = r16(dn_packed_size(g->f, g->p, u->mr));
    s.packed_dy_b = r16(dn_packed_size(g->p, g->f, u->nr));
    s.dw = r16(g->f * g->k);
    s.db = r16(g->f);
    s.padded = direct(g) ? r16(padded_size(g)) : 0;
    s.per_thread = s.sample + s.col + s.packed_col + s.packed_dy_a + s.packed_dy_b + s.dw + s.db +
                   s.padded;
    return s;
}

static size_t workspace_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                             const dn_tensor_desc *out, int threads)
{
    (void)n_in;
    conv_geom g = geom(attrs, &in[0].shape, &in[1].shape, &out->shape);
    if (per_sample(&g)) {
        dn_ukernel u;
        dn_ukernel_get(&u);
        slot_layout s = slots(&g, &u);
        /* The direct path splits rows when the batch is smaller than the team. */
        int team = direct(&g) ? threads : team_size(&g, threads);
        return (size_t)(s.shared + team * s.per_thread) * sizeof(float) + 64;
    }
    return (size_t)((g.k + g.f) * chunk_samples(&g) * g.p) * sizeof(float);
}

/* Saturating: flop counts of absurd (but loadable) shapes must not overflow. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    conv_geom g = geom(attrs, &in[0].shape, &in[1].shape, &out->shape);
    int64_t outputs = dn_mul_sat(dn_mul_sat(g.n, g.f), g.p);
    int64_t macs = dn_mul_sat(outputs, g.k);
    int64_t total = dn_mul_sat(macs, 2);
    return n_in > 2 && total < INT64_MAX - outputs ? total + outputs : total;
}

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

/* Rows of col for one sample x [C, H, W], written at column offset 0 of a col whose rows
 * are `ld` floats apart. */
static void im2col_sample(const conv_geom *g, const float *restrict x, float *restrict col,
                          int64_t ld)
{
    for (int64_t r = 0; r < g->k; r++) {
        tap t = tap_of(g, r);
        int64_t ch = t.c, i = t.i, j = t.j;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
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

/* dx += col2im(dcol) for one sample dx [C, H, W]; dcol's rows are `ld` floats apart. */
static void col2im_sample(const conv_geom *g, const float *restrict dcol, int64_t ld,
                          float *restrict dx)
{
    for (int64_t r = 0; r < g->k; r++) {
        tap t = tap_of(g, r);
        int64_t ch = t.c, i = t.i, j = t.j;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
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

/* The team for a loop over `samples` samples of `work` floats each. */
static int sample_team(int threads, int64_t samples, int64_t work)
{
    return samples > 1 ? dn_team(threads, samples * work, DN_PARALLEL_MIN) : 1;
}

static void im2col_range(const conv_geom *g, const float *x, int64_t nc, float *col, int64_t lo,
                         int64_t hi)
{
    for (int64_t n = lo; n < hi; n++)
        im2col_sample(g, x + n * g->c * g->h * g->w, col + n * g->p, nc * g->p);
}

/* col [K, nc·P] from samples x [nc, C, H, W]; samples split across threads (each writes
 * its own P-wide column block of every row). */
static void im2col(const conv_geom *g, const float *x, int64_t nc, float *col, int threads)
{
    DN_PARALLEL_RANGE(nc, sample_team(threads, nc, g->k * g->p), lo, hi,
                      im2col_range(g, x, nc, col, lo, hi));
}

static void col2im_range(const conv_geom *g, const float *dcol, int64_t nc, float *dx,
                         int64_t lo, int64_t hi)
{
    for (int64_t n = lo; n < hi; n++)
        col2im_sample(g, dcol + n * g->p, nc * g->p, dx + n * g->c * g->h * g->w);
}

/* dx [nc, C, H, W] += col2im(dcol), split by sample, so threads never add onto the same
 * pixel. */
static void col2im(const conv_geom *g, const float *dcol, int64_t nc, float *dx, int threads)
{
    DN_PARALLEL_RANGE(nc, sample_team(threads, nc, g->k * g->p), lo, hi,
                      col2im_range(g, dcol, nc, dx, lo, hi));
}

static void scatter_range(const conv_geom *g, const float *yt, const float *b, int64_t nc,
                          float *y, int64_t lo, int64_t hi)
{
    for (int64_t n = lo; n < hi; n++)
        for (int64_t f = 0; f < g->f; f++) {
            const float *restrict src = yt + f * nc * g->p + n * g->p;
            float *restrict dst = y + (n * g->f + f) * g->p;
            float bias = b ? b[f] : 0.0f;
            for (int64_t p = 0; p < g->p; p++)
                dst[p] = src[p] + bias;
        }
}

/* y [nc, F, P] = Y' [F, nc·P] + b, run by run. */
static void scatter_output(const conv_geom *g, const float *yt, const float *b, int64_t nc,
                           float *y, int threads)
{
    DN_PARALLEL_RANGE(nc, sample_team(threads, nc, g->f * g->p), lo, hi,
                      scatter_range(g, yt, b, nc, y, lo, hi));
}

static void gather_range(const conv_geom *g, const float *dy, int64_t nc, float *dyt,
                         int64_t lo, int64_t hi)
{
    for (int64_t n = lo; n < hi; n++)
        for (int64_t f = 0; f < g->f; f++)
            memcpy(dyt + f * nc * g->p + n * g->p, dy + (n * g->f + f) * g->p,
                   (size_t)g->p * sizeof *dyt);
}

/* dY' [F, nc·P] from dy [nc, F, P]. */
static void gather_output_grad(const conv_geom *g, const float *dy, int64_t nc, float *dyt,
                               int threads)
{
    DN_PARALLEL_RANGE(nc, sample_team(threads, nc, g->f * g->p), lo, hi,
                      gather_range(g, dy, nc, dyt, lo, hi));
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

static void bias_grad(const conv_geom *g, const float *dyt, int64_t nc, float *db, int threads)
{
    int64_t len = nc * g->p;
    DN_PARALLEL_RANGE(g->f, sample_team(threads, g->f, len), lo, hi,
                      bias_grad_range(dyt, len, db, lo, hi));
}

static void forward_batched(const dn_kernel *k)
{
    conv_geom g = geom(k->attrs, &k->x[0].shape, &k->x[1].shape, &k->y->shape);
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    int64_t per = chunk_samples(&g), in = g.c * g.h * g.w;
    float *col = k->work;
    for (int64_t n0 = 0; n0 < g.n; n0 += per) {
        int64_t nc = g.n - n0 < per ? g.n - n0 : per;
        float *yt = col + g.k * nc * g.p;
        im2col(&g, x + n0 * in, nc, col, k->threads);
        dn_sgemm(false, false, g.f, nc * g.p, g.k, 1.0f, w, g.k, col, nc * g.p, 0.0f, yt,
                 nc * g.p, k->threads);
        scatter_output(&g, yt, b, nc, dn_f32(k->y) + n0 * g.f * g.p, k->threads);
    }
}

static void backward_batched(const dn_kernel *k)
{
    conv_geom g = geom(k->attrs, &k->x[0].shape, &k->x[1].shape, &k->y->shape);
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]), *dw = dn_f32(&k->dx[1]);
    float *db = k->n_inputs > 2 ? dn_f32(&k->dx[2]) : NULL;
    int64_t per = chunk_samples(&g), in = g.c * g.h * g.w;
    float *col = k->work;
    for (int64_t n0 = 0; n0 < g.n; n0 += per) {
        int64_t nc = g.n - n0 < per ? g.n - n0 : per, len = nc * g.p;
        float *dyt = col + g.k * len;
        gather_output_grad(&g, dy + n0 * g.f * g.p, nc, dyt, k->threads);
        if (db)
            bias_grad(&g, dyt, nc, db, k->threads);
        if (dw) {
            im2col(&g, x + n0 * in, nc, col, k->threads);
            dn_sgemm(false, true, g.f, g.k, len, 1.0f, dyt, len, col, len, 1.0f, dw, g.k,
                     k->threads);
        }
        if (dx) {
            dn_sgemm(true, false, g.k, len, g.f, 1.0f, w, g.k, dyt, len, 0.0f, col, len,
                     k->threads);
            col2im(&g, col, nc, dx + n0 * in, k->threads);
        }
    }
}

/* ---------------------------------------------------------------- per-sample path */

/* BLIS's micro-kernels load packed B with aligned loads: the slots start 64-byte aligned
 * (workspace_size adds the 64 bytes this may skip). */
static float *aligned_work(void *work)
{
    uintptr_t at = ((uintptr_t)work + 63) / 64 * 64;
    return (float *)at;
}

typedef struct slot {
    float *sample, *col, *packed_col, *packed_dy_a, *packed_dy_b, *dw, *db, *padded;
} slot;

static slot slot_of(const slot_layout *l, float *work, int t)
{
    float *base = work + l->shared + t * l->per_thread;
    slot s = { .sample = base };
    s.col = s.sample + l->sample;
    s.packed_col = s.col + l->col;
    s.packed_dy_a = s.packed_col + l->packed_col;
    s.packed_dy_b = s.packed_dy_a + l->packed_dy_a;
    s.dw = s.packed_dy_b + l->packed_dy_b;
    s.db = s.dw + l->dw;
    s.padded = s.db + l->db;
    return s;
}

/* Packing col_n straight from the image: im2col and packing in one gather through a table
 * built once per pass. Entry t of the table is the offset in x_n [C, H, W] that packed
 * entry t reads, or C·H·W — the zero stored after the sample's copy — for padding. */
static int32_t col_source(const conv_geom *g, int64_t r, int64_t p)
{
    int64_t pad = g->c * g->h * g->w;
    if (r >= g->k || p >= g->p)
        return (int32_t)pad;
    tap t = tap_of(g, r);
    int64_t ch = t.c, i = t.i, j = t.j;
    int64_t ih = p / g->ow * g->sh - g->ph + i, iw = p % g->ow * g->sw - g->pw + j;
    if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
        return (int32_t)pad;
    return (int32_t)((ch * g->h + ih) * g->w + iw);
}

/* Panels [lo, hi) of the table for col_n packed as B [K×P] (forward: panels of nr
 * positions). */
static void table_for_b(const conv_geom *g, int nr, int32_t *tab, int64_t lo, int64_t hi)
{
    tab += lo * nr * g->k;
    for (int64_t q = lo * nr; q < hi * nr; q += nr)
        for (int64_t r = 0; r < g->k; r++)
            for (int64_t l = 0; l < nr; l++)
                *tab++ = col_source(g, r, q + l);
}

/* Panels [lo, hi) of the table for col_nᵀ packed as B [P×K] (dW: panels of nr rows of col). */
static void table_for_bt(const conv_geom *g, int nr, int32_t *tab, int64_t lo, int64_t hi)
{
    tab += lo * nr * g->p;
    for (int64_t q = lo * nr; q < hi * nr; q += nr)
        for (int64_t p = 0; p < g->p; p++)
            for (int64_t l = 0; l < nr; l++)
                *tab++ = col_source(g, q + l, p);
}

/* Tables take a division or two per entry: threads split the panels. */
static void build_table(const conv_geom *g, int nr, bool transposed, int32_t *tab, int threads)
{
    int64_t panels = ((transposed ? g->k : g->p) + nr - 1) / nr;
    int team = dn_team(threads, panels * nr * (transposed ? g->p : g->k), DN_PARALLEL_MIN / 4);
    if (transposed)
        DN_PARALLEL_RANGE(panels, team, lo, hi, table_for_bt(g, nr, tab, lo, hi));
    else
        DN_PARALLEL_RANGE(panels, team, lo, hi, table_for_b(g, nr, tab, lo, hi));
}

static void gather(const int32_t *restrict tab, int64_t n, const float *restrict src,
                   float *restrict dst)
{
    for (int64_t t = 0; t < n; t++)
        dst[t] = src[tab[t]];
}

/* Building a table costs about what packing one sample the plain way (im2col, then pack)
 * does; below this many samples a pass packs the plain way. */
#define TABLE_MIN_BATCH 4

static bool use_table(const conv_geom *g) { return g->n >= TABLE_MIN_BATCH; }

/* Pack sample x_n into `packed`: as B [K×P] (forward) or as Bᵀ [P×K] (transposed, for dW);
 * through the table when the pass has one (entries > 0). */
static void pack_sample(const conv_geom *g, const dn_ukernel *u, const int32_t *tab,
                        int64_t entries, bool transposed, const float *x, const slot *s,
                        float *packed)
{
    if (entries == 0) {
        im2col_sample(g, x, s->col, g->p);
        if (transposed)
            dn_pack_b(u, s->col, 1, g->p, g->p, g->k, packed);
        else
            dn_pack_b(u, s->col, g->p, 1, g->k, g->p, packed);
        return;
    }
    int64_t size = g->c * g->h * g->w;
    memcpy(s->sample, x, (size_t)size * sizeof *x);
    s->sample[size] = 0.0f;
    gather(tab, entries, s->sample, packed);
}

typedef struct pass {
    const conv_geom *g;
    const dn_ukernel *u;
    const slot_layout *l;
    float *work;        /* the aligned workspace: packed weights, table, then the slots */
    const int32_t *table;
    int64_t entries;    /* of the table; 0: no table, pack the plain way */
} pass;

static pass pass_of(const conv_geom *g, const dn_ukernel *u, const slot_layout *l, void *work)
{
    float *w = aligned_work(work);
    return (pass){ g, u, l, w, (const int32_t *)(w + l->weights), 0 };
}

/* y_n [F, P] = W · col_n + b, on the calling thread. */
static void forward_sample(const pass *ps, const float *b, const float *x, float *y,
                           const slot *s)
{
    const conv_geom *g = ps->g;
    pack_sample(g, ps->u, ps->table, ps->entries, false, x, s, s->packed_col);
    for (int64_t f = 0; f < g->f; f++) {
        float bias = b ? b[f] : 0.0f;
        for (int64_t p = 0; p < g->p; p++)
            y[f * g->p + p] = bias;
    }
    dn_gemm_packed(ps->u, g->f, g->p, g->k, ps->work, s->packed_col, 1.0f, y, g->p, 1);
}

static void forward_range(const pass *ps, const float *x, const float *b, float *y, int64_t lo,
                          int64_t hi)
{
    const conv_geom *g = ps->g;
    slot s = slot_of(ps->l, ps->work, omp_get_thread_num());
    for (int64_t n = lo; n < hi; n++)
        forward_sample(ps, b, x + n * g->c * g->h * g->w, y + n * g->f * g->p, &s);
}

static void forward_per_sample(const dn_kernel *k, const conv_geom *g)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    slot_layout l = slots(g, &u);
    pass ps = pass_of(g, &u, &l, k->work);
    if (use_table(g)) {
        ps.entries = dn_packed_size(g->p, g->k, u.nr);
        build_table(g, u.nr, false, (int32_t *)ps.table, k->threads);
    }
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    dn_pack_a(&u, w, g->k, 1, g->f, g->k, ps.work);
    DN_PARALLEL_RANGE(g->n, team_size(g, k->threads), lo, hi,
                      forward_range(&ps, x, b, dn_f32(k->y), lo, hi));
}

/* Add sample n's share of dW and db into the thread's copies, and of dx into dx_n. */
static void backward_sample(const pass *ps, const float *x, const float *dy, float *dx,
                            const slot *s, bool dw, bool db)
{
    const conv_geom *g = ps->g;
    if (db)
        for (int64_t f = 0; f < g->f; f++) {
            float sum = 0.0f;
            for (int64_t p = 0; p < g->p; p++)
                sum += dy[f * g->p + p];
            s->db[f] += sum;
        }
    if (dw) { /* dW [F, K] += dy_n [F, P] · col_nᵀ [P, K] */
        pack_sample(g, ps->u, ps->table, ps->entries, true, x, s, s->packed_col);
        dn_pack_a(ps->u, dy, g->p, 1, g->f, g->p, s->packed_dy_a);
        dn_gemm_packed(ps->u, g->f, g->k, g->p, s->packed_dy_a, s->packed_col, 1.0f, s->dw, g->k,
                       1);
    }
    if (dx) { /* dcol [K, P] = Wᵀ · dy_n, then dx_n += col2im(dcol) */
        dn_pack_b(ps->u, dy, g->p, 1, g->f, g->p, s->packed_dy_b);
        dn_gemm_packed(ps->u, g->k, g->p, g->f, ps->work, s->packed_dy_b, 0.0f, s->col, g->p, 1);
        col2im_sample(g, s->col, g->p, dx);
    }
}

/* ---------------------------------------------------------------- direct path
 *
 *   y[f, p, q]  = b[f] + Σ_{c,i,j} W[f,c,i,j] · xp[c, p + i, q + j]       (stride 1)
 *   dW[f,c,i,j] += Σ_p Σ_q dy[f,p,q] · xp[c, p + i, q + j]
 * with xp the sample zero-padded to [C, H + 2·ph, W + 2·pw]. On AVX2 machines the loops are
 * blocked for registers: forward keeps FB filters × QB outputs of a row in accumulators while
 * every tap passes; dW keeps DW_TAPS taps × 8 columns while every row passes, then sums the
 * columns. Elsewhere plain loops compute the same sums. dx, when wanted, takes the
 * per-sample product path. */

static void pad_sample(const conv_geom *g, const float *x, float *xp)
{
    int64_t pw = padded_w(g), ph = padded_h(g);
    memset(xp, 0, (size_t)padded_size(g) * sizeof *xp);
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t h = 0; h < g->h; h++)
            memcpy(xp + (c * ph + h + g->ph) * pw + g->pw, x + (c * g->h + h) * g->w,
                   (size_t)g->w * sizeof *xp);
}

/* Where tap r = (c·kh + i)·kw + j of output row 0 reads in the padded sample. */
static void tap_offsets(const conv_geom *g, int64_t *off)
{
    for (int64_t r = 0; r < g->k; r++) {
        tap t = tap_of(g, r);
        off[r] = (t.c * padded_h(g) + t.i) * padded_w(g) + t.j;
    }
}

/* Output rows [p0, p1) of every filter. */
static void forward_plain(const conv_geom *g, const float *w, const float *b, const float *xp,
                          const int64_t *off, float *y, int64_t p0, int64_t p1)
{
    for (int64_t f = 0; f < g->f; f++)
        for (int64_t p = p0; p < p1; p++)
            for (int64_t q = 0; q < g->ow; q++) {
                float sum = b ? b[f] : 0.0f;
                for (int64_t r = 0; r < g->k; r++)
                    sum = fmaf(w[f * g->k + r], xp[p * padded_w(g) + q + off[r]], sum);
                y[(f * g->oh + p) * g->ow + q] = sum;
            }
}

static void dw_plain(const conv_geom *g, const float *dy, const float *xp, const int64_t *off,
                     float *dw)
{
    for (int64_t f = 0; f < g->f; f++)
        for (int64_t r = 0; r < g->k; r++) {
            float sum = 0.0f;
            for (int64_t p = 0; p < g->oh; p++)
                for (int64_t q = 0; q < g->ow; q++)
                    sum = fmaf(dy[(f * g->oh + p) * g->ow + q], xp[p * padded_w(g) + q + off[r]],
                               sum);
            dw[f * g->k + r] += sum;
        }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* Lanes [0, len) of a vector (len ≤ 8): a maskload mask. */
AVX2 static __m256i lanes_below(int64_t len)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)len),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Outputs q0 .. q0 + len of row p (len ≤ QB = 16) for filters f0 .. f0 + nf (nf ≤ FB). */
AVX2 static void forward_block(const conv_geom *g, const float *w, const float *b,
                               const float *in, const int64_t *off, int64_t f0, int64_t nf,
                               int64_t len, float *y0)
{
    static const float zeros[DIRECT_MAX_K];
    const float *wt[FB];
    __m256 acc[FB][2];
    for (int t = 0; t < FB; t++) {
        wt[t] = t < nf ? w + (f0 + t) * g->k : zeros;
        acc[t][0] = acc[t][1] = _mm256_set1_ps(t < nf && b ? b[f0 + t] : 0.0f);
    }
    for (int64_t r = 0; r < g->k; r++) {
        __m256 x0 = _mm256_loadu_ps(in + off[r]), x1 = _mm256_loadu_ps(in + off[r] + 8);
        for (int t = 0; t < FB; t++) {
            __m256 wv = _mm256_broadcast_ss(wt[t] + r);
            acc[t][0] = _mm256_fmadd_ps(wv, x0, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(wv, x1, acc[t][1]);
        }
    }
    for (int64_t t = 0; t < nf; t++) {
        float out[16];
        _mm256_storeu_ps(out, acc[t][0]);
        _mm256_storeu_ps(out + 8, acc[t][1]);
        memcpy(y0 + t * g->oh * g->ow, out, (size_t)len * sizeof(float));
    }
}

AVX2 static void forward_avx2(const conv_geom *g, const float *w, const float *b,
                              const float *xp, const int64_t *off, float *y, int64_t p0,
                              int64_t p1)
{
    for (int64_t p = p0; p < p1; p++)
        for (int64_t q0 = 0; q0 < g->ow; q0 += QB)
            for (int64_t f0 = 0; f0 < g->f; f0 += FB)
                forward_block(g, w, b, xp + p * padded_w(g) + q0, off, f0,
                              g->f - f0 < FB ? g->f - f0 : FB, g->ow - q0 < QB ? g->ow - q0 : QB,
                              y + (f0 * g->oh + p) * g->ow + q0);
}

/* dw[r0 .. r0 + nt] += Σ_p Σ_{q ∈ [q0, q0 + len)} dy[p, q] · xp[p, q + tap offset], one
 * vector of columns (len ≤ 8) and up to DW_TAPS taps at a time. A partial vector masks the
 * lanes past len out of both loads (0 · inf would be NaN). */
AVX2 static void dw_block(const conv_geom *g, const float *dy, const float *xp,
                          const int64_t *off, int64_t r0, int64_t nt, int64_t q0, int64_t len,
                          float *dw)
{
    __m256 acc[DW_TAPS];
    __m256i mask = lanes_below(len);
    const float *at[DW_TAPS];
    for (int t = 0; t < DW_TAPS; t++) {
        acc[t] = _mm256_setzero_ps();
        at[t] = xp + off[r0 + (t < nt ? t : 0)] + q0;
    }
    int64_t pw = padded_w(g);
    if (len == 8)
        for (int64_t p = 0; p < g->oh; p++) {
            __m256 d = _mm256_loadu_ps(dy + p * g->ow + q0);
            for (int t = 0; t < DW_TAPS; t++)
                acc[t] = _mm256_fmadd_ps(d, _mm256_loadu_ps(at[t] + p * pw), acc[t]);
        }
    else
        for (int64_t p = 0; p < g->oh; p++) {
            __m256 d = _mm256_maskload_ps(dy + p * g->ow + q0, mask);
            for (int t = 0; t < DW_TAPS; t++)
                acc[t] = _mm256_fmadd_ps(d, _mm256_maskload_ps(at[t] + p * pw, mask), acc[t]);
        }
    for (int64_t t = 0; t < nt; t++) {
        float lane[8];
        _mm256_storeu_ps(lane, acc[t]);
        float sum = 0.0f;
        for (int l = 0; l < 8; l++)
            sum += lane[l];
        dw[r0 + t] += sum;
    }
}

AVX2 static void dw_avx2(const conv_geom *g, const float *dy, const float *xp,
                         const int64_t *off, float *dw)
{
    for (int64_t f = 0; f < g->f; f++)
        for (int64_t q0 = 0; q0 < g->ow; q0 += 8)
            for (int64_t r0 = 0; r0 < g->k; r0 += DW_TAPS)
                dw_block(g, dy + f * g->oh * g->ow, xp, off, r0,
                         g->k - r0 < DW_TAPS ? g->k - r0 : DW_TAPS, q0,
                         g->ow - q0 < 8 ? g->ow - q0 : 8, dw + f * g->k);
}

static bool has_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static bool has_avx2(void) { return false; }
#endif

/* Output rows [p0, p1) of one sample. */
static void direct_forward_rows(const conv_geom *g, const float *w, const float *b,
                                const float *x, float *y, const slot *s, int64_t p0, int64_t p1)
{
    int64_t off[DIRECT_MAX_K];
    tap_offsets(g, off);
    pad_sample(g, x, s->padded);
#if defined(__x86_64__)
    if (has_avx2()) {
        forward_avx2(g, w, b, s->padded, off, y, p0, p1);
        return;
    }
#endif
    forward_plain(g, w, b, s->padded, off, y, p0, p1);
}

/* The thread's dW copy += sample n's share. */
static void direct_dw_sample(const conv_geom *g, const float *x, const float *dy, const slot *s)
{
    int64_t off[DIRECT_MAX_K];
    tap_offsets(g, off);
    pad_sample(g, x, s->padded);
#if defined(__x86_64__)
    if (has_avx2()) {
        dw_avx2(g, dy, s->padded, off, s->dw);
        return;
    }
#endif
    dw_plain(g, dy, s->padded, off, s->dw);
}

/* Items [lo, hi) of the batch's N·OH output rows (item n·OH + p: row p of sample n, every
 * filter), so that threads split the batch, or the rows of a batch smaller than the team. */
static void direct_forward_range(const pass *ps, const dn_kernel *k, int64_t lo, int64_t hi)
{
    const conv_geom *g = ps->g;
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    slot s = slot_of(ps->l, ps->work, omp_get_thread_num());
    for (int64_t it = lo; it < hi;) {
        int64_t n = it / g->oh, p0 = it % g->oh;
        int64_t p1 = g->oh - p0 < hi - it ? g->oh : p0 + (hi - it);
        direct_forward_rows(g, w, b, x + n * g->c * g->h * g->w, dn_f32(k->y) + n * g->f * g->p,
                            &s, p0, p1);
        it += p1 - p0;
    }
}

static void backward_range(const pass *ps, const dn_kernel *k, int64_t lo, int64_t hi)
{
    const conv_geom *g = ps->g;
    const float *x = dn_f32(&k->x[0]), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    bool dw = k->dx[1].data, db = k->n_inputs > 2 && k->dx[2].data;
    int64_t in = g->c * g->h * g->w, out = g->f * g->p;
    bool dw_direct = dw && direct(g);
    slot s = slot_of(ps->l, ps->work, omp_get_thread_num());
    memset(s.dw, 0, (size_t)(ps->l->dw + ps->l->db) * sizeof(float));
    for (int64_t n = lo; n < hi; n++) {
        if (dw_direct)
            direct_dw_sample(g, x + n * in, dy + n * out, &s);
        backward_sample(ps, x + n * in, dy + n * out, dx ? dx + n * in : NULL, &s,
                        dw && !dw_direct, db);
    }
}

/* dst[i] += Σ_t (thread t's copy)[i] for i in [lo, hi), t in order. */
static void sum_copies(const pass *ps, int team, bool bias, float *dst, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        float sum = 0.0f;
        for (int t = 0; t < team; t++) {
            slot s = slot_of(ps->l, ps->work, t);
            sum += (bias ? s.db : s.dw)[i];
        }
        dst[i] += sum;
    }
}

static void backward_per_sample(const dn_kernel *k, const conv_geom *g)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    slot_layout l = slots(g, &u);
    pass ps = pass_of(g, &u, &l, k->work);
    float *dw = dn_f32(&k->dx[1]), *db = k->n_inputs > 2 ? dn_f32(&k->dx[2]) : NULL;
    if (dw && use_table(g) && !direct(g)) {
        ps.entries = dn_packed_size(g->k, g->p, u.nr);
        build_table(g, u.nr, true, (int32_t *)ps.table, k->threads);
    }
    if (k->dx[0].data)
        dn_pack_a(&u, dn_f32(&k->x[1]), 1, g->k, g->k, g->f, ps.work);
    int team = team_size(g, k->threads);
    DN_PARALLEL_RANGE(g->n, team, lo, hi, backward_range(&ps, k, lo, hi));
    if (dw)
        DN_PARALLEL_RANGE(g->f * g->k, dn_team(team, g->f * g->k, DN_PARALLEL_MIN), lo, hi,
                          sum_copies(&ps, team, false, dw, lo, hi));
    if (db)
        sum_copies(&ps, team, true, db, 0, g->f);
}

static void forward_direct(const dn_kernel *k, const conv_geom *g)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    slot_layout l = slots(g, &u);
    pass ps = pass_of(g, &u, &l, k->work);
    int64_t rows = g->n * g->oh;
    int team = dn_team(k->threads, rows * g->ow * g->f * g->k, 8 * DN_PARALLEL_MIN);
    DN_PARALLEL_RANGE(rows, team < rows ? team : (int)rows, lo, hi,
                      direct_forward_range(&ps, k, lo, hi));
}

static void forward(const dn_kernel *k)
{
    conv_geom g = geom(k->attrs, &k->x[0].shape, &k->x[1].shape, &k->y->shape);
    if (direct(&g))
        forward_direct(k, &g);
    else if (per_sample(&g))
        forward_per_sample(k, &g);
    else
        forward_batched(k);
}

static void backward(const dn_kernel *k)
{
    conv_geom g = geom(k->attrs, &k->x[0].shape, &k->x[1].shape, &k->y->shape);
    if (per_sample(&g))
        backward_per_sample(k, &g);
    else
        backward_batched(k);
}

static void gemm(const void *attrs, const dn_tensor_desc *in, int n_in, const dn_tensor_desc *out,
                 dn_gemm_shape *gs)
{
    (void)n_in;
    conv_geom g = geom(attrs, &in[0].shape, &in[1].shape, &out->shape);
    *gs = (dn_gemm_shape){ .m = g.f, .n = g.n * g.p, .k = g.k, .a_input = 1, .b_input = 0 };
}

const dn_op dn_op_conv = {
    .name = "Conv",
    .min_inputs = 2,
    .max_inputs = 3,
    .attrs_size = sizeof(conv_attrs),
    .parse_attrs = parse_attrs,
    .implicit_params = implicit_params,
    .infer = infer,
    .workspace_size = workspace_size,
    .flops = flops,
    .forward = forward,
    .backward = backward,
    .gemm = gemm,
    .backward_reads_inputs = 0x3, /* x for dW (im2col again), W for dx */
};
