/*
 * conv.c — Conv: 2-D cross-correlation of NCHW images with a bank of filters, plus a bias.
 *
 *   x [N, C, H, W]     W [F, C/G, kh, kw]     b [F] (optional)     y [N, F, OH, OW]
 *   OH = floor((H + 2·pad_h − dh·(kh − 1) − 1) / stride_h) + 1, OW likewise
 *
 *   y[n,f,p,q] = b[f] + Σ_{c,i,j} W[f,c,i,j] · x[n, g·C/G + c, p·sh − ph + i·dh, q·sw − pw + j·dw]
 *   (x reads as zero outside the image; g = f / (F/G), the filter's group)
 *
 * Groups (G, PyTorch's `groups`): the channels split into G independent convolutions, C/G
 * input channels and F/G filters each (AlexNet's two towers; G = C = F is depthwise). Each
 * group runs on the path its own sizes pick, on a view of x and y (pointers offset to the
 * group's first channel, samples xs and ys floats apart: conv.h), so no group's input is
 * copied and a group runs at the speed of an ungrouped Conv of its shape. Dilation (dh, dw)
 * spreads the taps; it changes only where each tap reads (im2col's rows, the packing table, the
 * direct path's tap offsets), not the products.
 *
 * Here: the attrs, the shapes, the workspace and flop counts, the matrix product the profiler
 * reports, and the choice of a path. The sum is one matrix product, W [F, K = C·kh·kw] times
 * the receptive fields laid out as col [K, N·OH·OW]; the paths compute it in other orders,
 * each in a file of its own beside this one (ops/conv.h holds what they share).
 *
 * Three paths, by the shape of the product (the same sums, in other orders):
 *   direct      (K ≤ DIRECT_MAX_K, stride 1: the first conv of LeNet and SimpleConvNet, one
 *               channel 5×5) loops over a zero-padded copy of each sample, vectorised along
 *               output rows; threads split the batch's output rows, so batch 1 splits too.
 *               im2col would copy every pixel K times for a product too thin to pay for it.
 *               (conv_direct.c)
 *   per sample  (K ≤ PER_SAMPLE_THIN_K: LeNet's second conv; and up to PER_SAMPLE_MAX_K,
 *               AlexNet's conv2-conv5, while a sample's col is a few MB and the batch has a
 *               sample for every thread: ops/conv.h) threads split the batch and run
 *               one product per sample on BLIS's micro-kernel (dn_gemm_packed), packing col
 *               straight from the image through an index table built once per pass. y_n is
 *               written in place, and each thread adds dW and db into its own copy, summed in
 *               thread order at the end (the same bits on every run with the same threads).
 *               (conv_packed.c)
 *   batched     (wider kernels, larger images, a batch smaller than the team: AlexNet at
 *               batch 1) the chunked im2col products, BLIS threading.
 *               (conv_im2col.c)
 * dx comes from the per-sample or the batched products, except on AVX-512 machines, where the
 * direct paths (and the wide direct shapes, whose backward takes the direct path too while
 * their dW lanes fit) compute it with their own correlation loop.
 * And one path for a kind of group: depthwise groups (one channel and one filter each, stride
 * 1, small kernels) run as (sample, group) planes shared out among threads, forward and
 * backward, dx by the same correlation loop as forward (conv_depthwise.c).
 *
 * attrs: stride (1), pad (0), dilation (1), each an int or [h, w]; groups (1). For implicit
 * params (docs/format.md): filters and kernel (int or [h, w]) size the weight [F, C/G, kh, kw],
 * bias (true), init, bias_init. When filters or kernel is given alongside explicit params it
 * must agree with W.
 */
#include "ops/conv.h"
#include "ops/op.h"
#include "ops/pool.h"
#include "runtime/gemm.h"
#include "runtime/parallel.h"

typedef struct conv_attrs {
    int64_t stride[2], pad[2], dilation[2], groups;
    int64_t kernel[2], filters; /* read only when has_kernel / has_filters */
    bool has_kernel, has_filters, bias;
    dn_init init, bias_init;
} conv_attrs;

static conv_geom geom(const conv_attrs *a, const dn_shape *x, const dn_shape *w, const dn_shape *y)
{
    return conv_geom_group(conv_geom_make(x, w, y, a->stride, a->pad), a->groups, a->dilation);
}

/* ---------------------------------------------------------------- attrs and shapes */

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "stride", "pad",  "dilation", "groups",    "filters",
                                           "kernel", "bias", "init",     "bias_init", NULL };
    conv_attrs *a = attrs;
    dn_status st;
    if ((st = dn_attrs_only(c, allowed)) ||
        (st = dn_attr_int2(c, "stride", 1, 1, DN_MAX_DIM, a->stride)) ||
        (st = dn_attr_int2(c, "pad", 0, 0, DN_MAX_DIM, a->pad)) ||
        (st = dn_attr_int2(c, "dilation", 1, 1, DN_MAX_DIM, a->dilation)) ||
        (st = dn_attr_int(c, "groups", 1, 1, DN_MAX_DIM, &a->groups)) ||
        (st = dn_attr_int(c, "filters", 1, 1, DN_MAX_DIM, &a->filters)) ||
        (st = dn_attr_int2(c, "kernel", 1, 1, DN_MAX_DIM, a->kernel)) ||
        (st = dn_attr_bool(c, "bias", true, &a->bias)) ||
        (st = dn_attr_init(c, "init", &a->init)) ||
        (st = dn_attr_init(c, "bias_init", &a->bias_init)))
        return st;
    a->has_filters = dn_attr_present(c, "filters");
    a->has_kernel = dn_attr_present(c, "kernel");
    if (a->has_filters && a->filters % a->groups != 0)
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/filters",
                            "filters %lld is not divisible by groups %lld", (long long)a->filters,
                            (long long)a->groups);
    return DN_OK;
}

static int implicit_params(const void *attrs, const dn_tensor_desc *x, dn_param_spec *out)
{
    const conv_attrs *a = attrs;
    if (!a->has_filters || !a->has_kernel)
        return 0;
    /* infer rejects an x of another rank right after; until then any channel count does. */
    int64_t channels = x->shape.rank == 4 ? x->shape.d[1] : 1;
    /* [F, C/G, kh, kw]; infer names a C that groups does not divide. */
    channels = channels / a->groups > 0 ? channels / a->groups : 1;
    int64_t dims[4] = { a->filters, channels, a->kernel[0], a->kernel[1] };
    out[0] = (dn_param_spec){ "weight", dn_shape_make(4, dims, false), a->init };
    if (!a->bias)
        return 1;
    out[1] = (dn_param_spec){ "bias", dn_shape_make(1, &a->filters, false), a->bias_init };
    return 2;
}

static dn_status check_weight(const dn_node_ctx *c, const conv_attrs *a, const dn_tensor_desc *in)
{
    const dn_shape *x = &in[0].shape, *w = &in[1].shape;
    char xs[DN_SHAPE_STR_MAX], ws[DN_SHAPE_STR_MAX];
    dn_shape_str(x, xs, sizeof xs);
    dn_shape_str(w, ws, sizeof ws);
    if (x->d[1] % a->groups != 0)
        return dn_node_fail(c, DN_ERR_SHAPE, "attrs/groups",
                            "groups is %lld, but input \"%s\" %s has %lld channels, not "
                            "divisible by it",
                            (long long)a->groups, c->input_names[0], xs, (long long)x->d[1]);
    if (w->d[0] % a->groups != 0)
        return dn_node_fail(c, DN_ERR_SHAPE, "attrs/groups",
                            "groups is %lld, but weight \"%s\" %s has %lld filters, not "
                            "divisible by it",
                            (long long)a->groups, c->input_names[1], ws, (long long)w->d[0]);
    if (w->d[1] != x->d[1] / a->groups) {
        if (a->groups == 1)
            return dn_node_fail(c, DN_ERR_SHAPE, "inputs/1",
                                "weight \"%s\" %s expects %lld input channels, but input \"%s\" "
                                "%s has %lld",
                                c->input_names[1], ws, (long long)w->d[1], c->input_names[0], xs,
                                (long long)x->d[1]);
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/1",
                            "weight \"%s\" %s has %lld channels per group, but input \"%s\" %s "
                            "with groups %lld needs C/groups = %lld",
                            c->input_names[1], ws, (long long)w->d[1], c->input_names[0], xs,
                            (long long)a->groups, (long long)(x->d[1] / a->groups));
    }
    if (a->has_filters && w->d[0] != a->filters)
        return dn_node_fail(c, DN_ERR_SHAPE, "attrs/filters",
                            "filters is %lld, but weight \"%s\" %s has %lld filters",
                            (long long)a->filters, c->input_names[1], ws, (long long)w->d[0]);
    if (a->has_kernel && (w->d[2] != a->kernel[0] || w->d[3] != a->kernel[1]))
        return dn_node_fail(c, DN_ERR_SHAPE, "attrs/kernel",
                            "kernel is [%lld,%lld], but weight \"%s\" %s has a [%lld,%lld] kernel",
                            (long long)a->kernel[0], (long long)a->kernel[1], c->input_names[1], ws,
                            (long long)w->d[2], (long long)w->d[3]);
    return DN_OK;
}

/* The pixels a kernel of k taps spans with dilation d: d·(k − 1) + 1, saturating (a loadable
 * model may hold absurd sizes; dn_window_out then finds it does not fit). */
static int64_t dilated_span(int64_t k, int64_t d)
{
    int64_t span = dn_mul_sat(d, k - 1);
    return span < INT64_MAX ? span + 1 : span;
}

static dn_status output_shape(const dn_node_ctx *c, const conv_attrs *a, const dn_tensor_desc *in,
                              dn_tensor_desc *out)
{
    const dn_shape *x = &in[0].shape, *w = &in[1].shape;
    char xs[DN_SHAPE_STR_MAX], ws[DN_SHAPE_STR_MAX];
    dn_shape_str(x, xs, sizeof xs);
    dn_shape_str(w, ws, sizeof ws);
    int64_t span_h = dilated_span(w->d[2], a->dilation[0]);
    int64_t span_w = dilated_span(w->d[3], a->dilation[1]);
    int64_t oh = dn_window_out(x->d[2], span_h, a->stride[0], a->pad[0]);
    int64_t ow = dn_window_out(x->d[3], span_w, a->stride[1], a->pad[1]);
    if (oh < 1 || ow < 1)
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "the [%lld,%lld] kernel of weight \"%s\" %s with dilation [%lld,%lld] "
                            "does not fit input \"%s\" %s with pad [%lld,%lld]",
                            (long long)w->d[2], (long long)w->d[3], c->input_names[1], ws,
                            (long long)a->dilation[0], (long long)a->dilation[1], c->input_names[0],
                            xs, (long long)a->pad[0], (long long)a->pad[1]);
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
    (void)n_in;
    conv_geom g = geom(attrs, &in[0].shape, &in[1].shape, &out->shape);
    if (conv_is_depthwise(&g))
        return dn_conv_depthwise_workspace(&g, threads);
    if (conv_is_per_sample(&g, threads)) {
        dn_ukernel u;
        dn_ukernel_get(&u);
        conv_slot_layout s = conv_slots(&g, &u);
        /* The direct path splits rows when the batch is smaller than the team. */
        bool direct = conv_is_direct(&g) || conv_is_direct_wide(&g);
        int team = direct ? threads : conv_team_size(&g, threads);
        return (size_t)(s.shared + team * s.per_thread) * sizeof(float) + 64;
    }
    return (size_t)((g.k + g.f) * conv_chunk_samples(&g) * g.p) * sizeof(float);
}

/* Saturating: flop counts of absurd (but loadable) shapes must not overflow. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    conv_geom g = geom(attrs, &in[0].shape, &in[1].shape, &out->shape);
    int64_t outputs = dn_mul_sat(dn_mul_sat(g.n, dn_mul_sat(g.f, g.groups)), g.p);
    int64_t macs = dn_mul_sat(outputs, g.k);
    int64_t total = dn_mul_sat(macs, 2);
    return n_in > 2 && total < INT64_MAX - outputs ? total + outputs : total;
}

/* ---------------------------------------------------------------- dispatch */

/* The direct loops for this machine: AVX-512 when it has them, else AVX2/FMA, else plain. */
static const conv_direct_kernels *direct_kernels(void)
{
    const conv_direct_kernels *avx512 = dn_conv_direct_avx512(), *avx2 = dn_conv_direct_avx2();
    return avx512 ? avx512 : avx2 ? avx2 : dn_conv_direct_plain();
}

static const conv_depthwise_kernels *depthwise_kernels(void)
{
    const conv_depthwise_kernels *avx2 = dn_conv_depthwise_avx2();
    return avx2 ? avx2 : dn_conv_depthwise_plain();
}

/* The direct and batched paths see one group: they run once per group, on a view of k. */
static void direct_forward(const dn_kernel *k, const conv_geom *g)
{
    dn_conv_direct_forward(k, g, direct_kernels());
}

/* The wide direct forward (conv_is_direct_wide): AVX-512 machines only. */
static void wide_forward(const dn_kernel *k, const conv_geom *g)
{
    dn_conv_direct_forward(k, g, dn_conv_direct_avx512());
}

static void direct_backward(const dn_kernel *k, const conv_geom *g)
{
    dn_conv_direct_backward(k, g, direct_kernels());
}

/* The wide direct backward: dW and dx from the AVX-512 loops (conv_direct.c). */
static void wide_backward(const dn_kernel *k, const conv_geom *g)
{
    dn_conv_direct_backward(k, g, dn_conv_direct_avx512());
}

static void each_group(const dn_kernel *k, const conv_geom *g,
                       void (*path)(const dn_kernel *, const conv_geom *))
{
    if (g->groups == 1) {
        path(k, g);
        return;
    }
    for (int64_t gi = 0; gi < g->groups; gi++) {
        conv_group_view v;
        conv_group_view_of(k, g, gi, &v);
        path(&v.k, g);
    }
}

/* Groups run one after another, each on all the session's threads and the whole workspace
 * (sized for one group), the per-sample path's groups sharing one index table; but for two
 * kinds: depthwise groups take their own path, and other direct groups too small to split
 * their rows (a few channels each) would each run on one thread: threads share out (sample,
 * group) items instead, each in its own slot (the direct path's workspace has one per
 * thread). Every path applies g->relu (the inference epilogue) as it writes y. */
static void forward(const dn_kernel *k, const conv_geom *gp)
{
    conv_geom g = *gp;
    int64_t work = conv_direct_work(&g);
    if (conv_is_depthwise(&g))
        dn_conv_depthwise_forward(k, &g, depthwise_kernels());
    else if (conv_is_direct(&g) && g.groups > 1 && dn_team(k->threads, work, DIRECT_SPLIT_MIN) == 1)
        dn_conv_direct_forward_groups(
            k, &g, direct_kernels(),
            dn_team(k->threads, dn_mul_sat(work, g.groups), DIRECT_SPLIT_MIN));
    else if (conv_is_direct(&g))
        each_group(k, &g, direct_forward);
    else if (conv_is_direct_wide(&g) && dn_conv_direct_avx512())
        each_group(k, &g, wide_forward);
    else if (conv_is_per_sample(&g, k->threads))
        dn_conv_packed_forward(k, &g); /* every group */
    else
        each_group(k, &g, dn_conv_im2col_forward);
}

/* The direct loops that take this geometry's forward, or NULL. */
static const conv_direct_kernels *direct_forward_kernels(const conv_geom *g)
{
    if (conv_is_direct(g))
        return direct_kernels();
    return conv_is_direct_wide(g) ? dn_conv_direct_avx512() : NULL;
}

/* pooled [N·F planes, OH/2, OW/2] = the 2×2 max of y [N·F planes, OH, OW], planes [lo, hi). */
static void pool_planes(const conv_geom *g, const float *y, float *pooled, int64_t lo, int64_t hi)
{
    int64_t po = g->oh / 2, qo = g->ow / 2;
    for (int64_t i = lo; i < hi; i++)
        dn_pool_max_2x2_rows(y + i * g->p, g->ow, qo, 0, po, pooled + i * po * qo);
}

typedef struct pool_ctx {
    const conv_geom *g;
    const float *y;
    float *pooled;
} pool_ctx;

static void pool_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const pool_ctx *j = ctx;
    (void)part;
    pool_planes(j->g, j->y, j->pooled, lo, hi);
}

/* The op's forward. An inference ReLU folded in (k->epilogue): the paths apply it while each
 * block of y is in cache (g.relu). With the 2×2
 * max-pool after it (DN_EPILOGUE_RELU_MAXPOOL2), the direct loops of an ungrouped Conv pool
 * each pair of rows from their slot (y never written); the other paths write y, then pool it
 * in a pass. */
static void forward_op(const dn_kernel *k)
{
    conv_geom g = geom(k->attrs, &k->x[0].shape, &k->x[1].shape, &k->y->shape);
    bool pool = k->epilogue == DN_EPILOGUE_RELU_MAXPOOL2;
    const conv_direct_kernels *isa = direct_forward_kernels(&g);
    if (pool && g.groups == 1 && isa) {
        g.relu = true;
        dn_conv_direct_forward_pooled(k, &g, isa);
        return;
    }
    g.relu = k->epilogue != DN_EPILOGUE_NONE;
    forward(k, &g);
    if (pool) {
        int64_t planes = g.n * g.f * g.groups;
        int team = dn_team(k->threads, planes * g.p, DN_PARALLEL_MIN);
        dn_parallel_for(planes, team, pool_job,
                        &(pool_ctx){ .g = &g, .y = dn_f32(k->y), .pooled = dn_f32(k->pooled) });
    }
}

/* The direct backward works in the per-sample path's slots, which workspace_size sizes only
 * within the per-sample bounds: outside them backward is batched. */
static void backward(const dn_kernel *k)
{
    conv_geom g = geom(k->attrs, &k->x[0].shape, &k->x[1].shape, &k->y->shape);
    if (conv_is_depthwise(&g))
        dn_conv_depthwise_backward(k, &g, depthwise_kernels());
    else if (!conv_is_per_sample(&g, k->threads))
        each_group(k, &g, dn_conv_im2col_backward);
    else if (conv_is_direct(&g))
        each_group(k, &g, direct_backward);
    else if (conv_is_direct_wide(&g) && conv_dw_lanes_fit(&g) && dn_conv_direct_avx512())
        each_group(k, &g, wide_backward);
    else
        dn_conv_packed_backward(k, &g); /* every group */
}

static void gemm(const void *attrs, const dn_tensor_desc *in, int n_in, const dn_tensor_desc *out,
                 dn_gemm_shape *gs)
{
    (void)n_in;
    conv_geom g = geom(attrs, &in[0].shape, &in[1].shape, &out->shape);
    *gs = (dn_gemm_shape){
        .m = g.f, .n = g.n * g.p, .k = g.k, .a_input = 1, .b_input = 0, .count = g.groups
    };
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
    .forward = forward_op,
    .backward = backward,
    .gemm = gemm,
    .epilogues = 1u << DN_EPILOGUE_RELU | 1u << DN_EPILOGUE_RELU_MAXPOOL2,
    .backward_reads_inputs = 0x3, /* x for dW (im2col again), W for dx */
};
