/*
 * affine.c — Affine (fully connected): y = flatten(x) · W + b.
 *
 *   x [N, ...] read as [N, in] (in = product of the dims after the batch)
 *   W [in, out]     b [out] (optional)     y [N, out]
 *
 *   forward    y = x · W + b                 (b added to every row)
 *   backward   dW += xᵀ · dy     dx += dy · Wᵀ     db += Σ_n dy[n, :] = 1ᵀ · dy
 * Every product, the bias gradient's sum included (a row of ones from the workspace times dy),
 * is a single call over the whole batch; x is already contiguous in C order, so flattening
 * costs nothing. Products up to dn_gemm_small_fits (LeNet-5's and SimpleConvNet's layers) run
 * on BLIS's micro-kernel with the session's threads (dn_gemm_small, packing into the
 * workspace): BLIS's own thread team spins at its barriers, which stalls two trainings
 * sharing the cores (runtime/gemm.c). Larger ones (AlexNet's) go to dn_sgemm.
 *
 * attrs, all for implicit params (docs/format.md): units (the weight's out), bias (true), init,
 * bias_init. units given alongside explicit params must agree with W.
 */
#include <string.h>

#include "ops/op.h"
#include "runtime/gemm.h"

typedef struct affine_attrs {
    int64_t units; /* read only when has_units */
    bool has_units, bias;
    dn_init init, bias_init;
} affine_attrs;

/* ---------------------------------------------------------------- attrs and shapes */

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "units", "bias", "init", "bias_init", NULL };
    affine_attrs *a = attrs;
    dn_status st;
    if ((st = dn_attrs_only(c, allowed)) ||
        (st = dn_attr_int(c, "units", 1, 1, DN_MAX_DIM, &a->units)) ||
        (st = dn_attr_bool(c, "bias", true, &a->bias)) ||
        (st = dn_attr_init(c, "init", &a->init)) ||
        (st = dn_attr_init(c, "bias_init", &a->bias_init)))
        return st;
    a->has_units = dn_attr_present(c, "units");
    return DN_OK;
}

static int implicit_params(const void *attrs, const dn_tensor_desc *x, dn_param_spec *out)
{
    const affine_attrs *a = attrs;
    if (!a->has_units)
        return 0;
    /* infer rejects a rank-1 or overflowing x right after; until then any size does. */
    int64_t in = dn_shape_numel_from(&x->shape, 1);
    int64_t dims[2] = { in > 0 ? in : 1, a->units };
    out[0] = (dn_param_spec){ "weight", dn_shape_make(2, dims, false), a->init };
    if (!a->bias)
        return 1;
    out[1] = (dn_param_spec){ "bias", dn_shape_make(1, &a->units, false), a->bias_init };
    return 2;
}

static dn_status check_data(const dn_node_ctx *c, const dn_tensor_desc *in)
{
    char xs[DN_SHAPE_STR_MAX];
    dn_shape_str(&in[0].shape, xs, sizeof xs);
    if (in[0].shape.rank < 2)
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "input \"%s\" must have rank 2 or more ([N, features...]), found %s",
                            c->input_names[0], xs);
    return DN_OK;
}

static dn_status check_weight(const dn_node_ctx *c, const affine_attrs *a, const dn_tensor_desc *in)
{
    const dn_shape *w = &in[1].shape;
    char xs[DN_SHAPE_STR_MAX], ws[DN_SHAPE_STR_MAX];
    dn_shape_str(&in[0].shape, xs, sizeof xs);
    dn_shape_str(w, ws, sizeof ws);
    int64_t features = dn_shape_numel_from(&in[0].shape, 1);
    if (w->d[0] != features)
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "Affine expects %lld input features, got %lld from \"%s\" %s "
                            "(weight \"%s\" is %s)",
                            (long long)w->d[0], (long long)features, c->input_names[0], xs,
                            c->input_names[1], ws);
    if (a->has_units && w->d[1] != a->units)
        return dn_node_fail(c, DN_ERR_SHAPE, "attrs/units",
                            "units is %lld, but weight \"%s\" %s has %lld output features",
                            (long long)a->units, c->input_names[1], ws, (long long)w->d[1]);
    return DN_OK;
}

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    const affine_attrs *a = attrs;
    dn_status st;
    for (int i = 0; i < c->n_inputs; i++)
        if ((st = dn_expect_f32(c, in, i)))
            return st;
    if ((st = check_data(c, in)) || (st = dn_expect_rank(c, in, 1, 2)) ||
        (c->n_inputs > 2 && (st = dn_expect_rank(c, in, 2, 1))) || (st = check_weight(c, a, in)) ||
        (st = dn_check_bias(c, a->bias, in, 1, "output feature")))
        return st;
    int64_t dims[2] = { in[0].shape.d[0], in[1].shape.d[1] };
    *out = (dn_tensor_desc){ DN_F32, dn_shape_make(2, dims, in[0].shape.batched) };
    return DN_OK;
}

static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)attrs;
    int64_t outputs = dn_shape_numel(&out->shape);
    int64_t total = dn_mul_sat(dn_mul_sat(outputs, in[1].shape.d[0]), 2);
    return n_in > 2 && total < INT64_MAX - outputs ? total + outputs : total;
}

/* ---------------------------------------------------------------- kernels */

/* Each row of y starts as the bias so that the product adds onto it (beta = 1). */
static void fill_bias(const float *b, int64_t rows, int64_t out, float *y)
{
    for (int64_t n = 0; n < rows; n++)
        memcpy(y + n * out, b, (size_t)out * sizeof *y);
}

/* The workspace: the bias gradient's row of ones (its sum over rows is the product
 * 1[1×rows] · dy[rows×out], a matrix-vector product BLIS runs faster than a loop), then the
 * packing space of the largest small product among forward's and backward's. */
static int64_t ones_floats(int64_t rows) { return (rows + 15) / 16 * 16; }

static size_t small_work(int64_t m, int64_t n, int64_t k, int threads)
{
    return dn_gemm_small_fits(m, n, k) ? dn_gemm_small_work(m, n, k, threads) : 0;
}

static size_t workspace_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                             const dn_tensor_desc *out, int threads)
{
    (void)attrs, (void)out;
    int64_t rows = in[0].shape.d[0], n_in_ = in[1].shape.d[0], n_out = in[1].shape.d[1];
    size_t most = small_work(rows, n_out, n_in_, threads); /* y = x · W */
    size_t dw = small_work(n_in_, n_out, rows, threads);   /* dW += xᵀ · dy */
    size_t dx = small_work(rows, n_in_, n_out, threads);   /* dx += dy · Wᵀ */
    most = dw > most ? dw : most;
    most = dx > most ? dx : most;
    return (size_t)(n_in > 2 ? ones_floats(rows) : 0) * sizeof(float) + most;
}

/* C = op(A) · op(B) + beta · C: dn_gemm_small when it fits, packing after the ones. */
static void product(const dn_kernel *k, bool ta, bool tb, int64_t m, int64_t n, int64_t kk,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc)
{
    if (m > 1 && n > 1 && dn_gemm_small_fits(m, n, kk) &&
        !dn_gemm_streams(ta, tb, m, n, kk, 1.0f)) {
        float *work = (float *)k->work + (k->n_inputs > 2 ? ones_floats(k->x[0].shape.d[0]) : 0);
        dn_gemm_small(ta, tb, m, n, kk, a, lda, b, ldb, beta, c, ldc, work, k->threads);
    } else
        dn_sgemm(ta, tb, m, n, kk, 1.0f, a, lda, b, ldb, beta, c, ldc, k->threads);
}

static void bias_grad(const float *dy, int64_t rows, int64_t out, float *ones, float *db,
                      int threads)
{
    for (int64_t n = 0; n < rows; n++)
        ones[n] = 1.0f;
    dn_sgemm(false, false, 1, out, rows, 1.0f, ones, rows, dy, out, 1.0f, db, out, threads);
}

static void forward(const dn_kernel *k)
{
    int64_t rows = k->x[0].shape.d[0], in = k->x[1].shape.d[0], out = k->x[1].shape.d[1];
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    float *y = dn_f32(k->y);
    if (b)
        fill_bias(b, rows, out, y);
    product(k, false, false, rows, out, in, x, in, w, out, b ? 1.0f : 0.0f, y, out);
    dn_epilogue_apply(k->epilogue, y, rows * out, k->threads); /* inference: ReLU folded in */
}

static void backward(const dn_kernel *k)
{
    int64_t rows = k->x[0].shape.d[0], in = k->x[1].shape.d[0], out = k->x[1].shape.d[1];
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]), *dw = dn_f32(&k->dx[1]);
    float *db = k->n_inputs > 2 ? dn_f32(&k->dx[2]) : NULL;
    if (dw)
        product(k, true, false, in, out, rows, x, in, dy, out, 1.0f, dw, out);
    if (dx)
        product(k, false, true, rows, in, out, dy, out, w, out, 1.0f, dx, in);
    if (db)
        bias_grad(dy, rows, out, k->work, db, k->threads);
}

static void gemm(const void *attrs, const dn_tensor_desc *in, int n_in, const dn_tensor_desc *out,
                 dn_gemm_shape *g)
{
    (void)attrs, (void)n_in, (void)out;
    *g = (dn_gemm_shape){ .m = in[0].shape.d[0],
                          .n = in[1].shape.d[1],
                          .k = in[1].shape.d[0],
                          .a_input = 0,
                          .b_input = 1 };
}

const dn_op dn_op_affine = {
    .name = "Affine",
    .min_inputs = 2,
    .max_inputs = 3,
    .attrs_size = sizeof(affine_attrs),
    .parse_attrs = parse_attrs,
    .implicit_params = implicit_params,
    .infer = infer,
    .workspace_size = workspace_size,
    .flops = flops,
    .forward = forward,
    .epilogues = 1u << DN_EPILOGUE_RELU,
    .backward = backward,
    .gemm = gemm,
    .backward_reads_inputs = 0x3, /* x for dW, W for dx */
};
