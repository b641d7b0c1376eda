/*
 * conv.c — Conv: 2-D cross-correlation of NCHW images with a bank of filters, plus a bias.
 *
 *   x [N, C, H, W]     W [F, C, kh, kw]     b [F] (optional)     y [N, F, OH, OW]
 *   OH = floor((H + 2·pad_h − kh) / stride_h) + 1, OW likewise
 *
 *   y[n,f,p,q] = b[f] + Σ_{c,i,j} W[f,c,i,j] · x[n, c, p·sh − ph + i, q·sw − pw + j]
 *   (x reads as zero outside the image)
 *
 * Per sample the sum is one matrix product. im2col lays the receptive fields out as
 * col [K = C·kh·kw, P = OH·OW] (row (c·kh + i)·kw + j, column p·OW + q), and with W read as
 * [F, K]:
 *   forward    y_n = W · col_n + b
 *   backward   dW += dy_n · col_nᵀ      db[f] += Σ_{n,p,q} dy[n,f,p,q]
 *              dcol = Wᵀ · dy_n, and col2im adds every dcol entry onto the pixel its col
 *              entry was read from (padding entries are dropped): dx_n += col2im(dcol)
 * The workspace holds one col (forward, dW), reused as dcol once dW is done. Nothing is saved:
 * backward rebuilds col from x rather than keeping N of them alive between passes.
 *
 * attrs: stride (1), pad (0), each an int or [h, w]. For implicit params (FORMAT.md):
 * filters and kernel (int or [h, w]) size the weight, bias (true), init, bias_init. When
 * filters or kernel is given alongside explicit params it must agree with W.
 */
#include <string.h>

#include "../src/gemm.h"
#include "op.h"

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

static size_t workspace_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                             const dn_tensor_desc *out, int threads)
{
    (void)n_in, (void)threads;
    conv_geom g = geom(attrs, &in[0].shape, &in[1].shape, &out->shape);
    return (size_t)(g.k * g.p) * sizeof(float);
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

/* col = im2col(x) for one sample x [C, H, W]. Rows are independent, so they split across
 * threads. */
static void im2col(const conv_geom *g, const float *x, float *col, int threads)
{
#pragma omp parallel for num_threads(threads) if (g->k * g->p >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t r = 0; r < g->k; r++) {
        int64_t ch = r / (g->kh * g->kw), i = r / g->kw % g->kh, j = r % g->kw;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
        valid_span(i - g->ph, g->sh, g->h, g->oh, &oh_lo, &oh_hi);
        valid_span(j - g->pw, g->sw, g->w, g->ow, &ow_lo, &ow_hi);
        for (int64_t oh = 0; oh < g->oh; oh++) {
            float *dst = col + r * g->p + oh * g->ow;
            if (oh < oh_lo || oh >= oh_hi) {
                memset(dst, 0, (size_t)g->ow * sizeof *dst);
                continue;
            }
            const float *src = x + (ch * g->h + oh * g->sh - g->ph + i) * g->w;
            for (int64_t ow = 0; ow < ow_lo; ow++)
                dst[ow] = 0.0f;
            for (int64_t ow = ow_lo; ow < ow_hi; ow++)
                dst[ow] = src[ow * g->sw + j - g->pw];
            for (int64_t ow = ow_hi; ow < g->ow; ow++)
                dst[ow] = 0.0f;
        }
    }
}

/* dx += col2im(dcol) for one sample dx [C, H, W]. Overlapping windows add onto the same
 * pixel, so threads split by channel: each owns its plane of dx. */
static void col2im_add(const conv_geom *g, const float *dcol, float *dx, int threads)
{
#pragma omp parallel for num_threads(threads) if (g->k * g->p >= DN_PARALLEL_MIN) schedule(static)
    for (int64_t ch = 0; ch < g->c; ch++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const float *row = dcol + ((ch * g->kh + i) * g->kw + j) * g->p;
                int64_t oh_lo, oh_hi, ow_lo, ow_hi;
                valid_span(i - g->ph, g->sh, g->h, g->oh, &oh_lo, &oh_hi);
                valid_span(j - g->pw, g->sw, g->w, g->ow, &ow_lo, &ow_hi);
                for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
                    float *dst = dx + (ch * g->h + oh * g->sh - g->ph + i) * g->w;
                    for (int64_t ow = ow_lo; ow < ow_hi; ow++)
                        dst[ow * g->sw + j - g->pw] += row[oh * g->ow + ow];
                }
            }
}

/* ---------------------------------------------------------------- kernels */

/* y_n [F, P] starts as the bias so that the product adds onto it (beta = 1). */
static void fill_bias(const conv_geom *g, const float *b, float *y)
{
    for (int64_t f = 0; f < g->f; f++)
        for (int64_t p = 0; p < g->p; p++)
            y[f * g->p + p] = b[f];
}

static void forward(const dn_kernel *k)
{
    conv_geom g = geom(k->attrs, &k->x[0].shape, &k->x[1].shape, &k->y->shape);
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    float *col = k->work;
    for (int64_t n = 0; n < g.n; n++) {
        float *y = dn_f32(k->y) + n * g.f * g.p;
        im2col(&g, x + n * g.c * g.h * g.w, col, k->threads);
        if (b)
            fill_bias(&g, b, y);
        dn_sgemm(false, false, g.f, g.p, g.k, 1.0f, w, g.k, col, g.p, b ? 1.0f : 0.0f, y, g.p,
                 k->threads);
    }
}

/* db[f] += Σ_{n,p} dy[n,f,p]. Summed in double: P·N terms can be many. */
static void bias_grad(const conv_geom *g, const float *dy, float *db)
{
    for (int64_t f = 0; f < g->f; f++) {
        double sum = 0.0;
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t p = 0; p < g->p; p++)
                sum += dy[(n * g->f + f) * g->p + p];
        db[f] += (float)sum;
    }
}

static void backward(const dn_kernel *k)
{
    conv_geom g = geom(k->attrs, &k->x[0].shape, &k->x[1].shape, &k->y->shape);
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]), *dy_all = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]), *dw = dn_f32(&k->dx[1]);
    float *db = k->n_inputs > 2 ? dn_f32(&k->dx[2]) : NULL;
    float *col = k->work;
    if (db)
        bias_grad(&g, dy_all, db);
    for (int64_t n = 0; n < g.n && (dw || dx); n++) {
        const float *dy = dy_all + n * g.f * g.p;
        if (dw) {
            im2col(&g, x + n * g.c * g.h * g.w, col, k->threads);
            dn_sgemm(false, true, g.f, g.k, g.p, 1.0f, dy, g.p, col, g.p, 1.0f, dw, g.k,
                     k->threads);
        }
        if (dx) {
            dn_sgemm(true, false, g.k, g.p, g.f, 1.0f, w, g.k, dy, g.p, 0.0f, col, g.p,
                     k->threads);
            col2im_add(&g, col, dx + n * g.c * g.h * g.w, k->threads);
        }
    }
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
    .backward_reads_inputs = 0x3, /* x for dW (im2col again), W for dx */
};
