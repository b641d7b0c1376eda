/*
 * batchnorm.c — BatchNorm: per-channel normalisation with running statistics (PyTorch's
 * BatchNorm1d / BatchNorm2d).
 *
 *   x [N, C] or [N, C, L] or [N, C, H, W]   gamma, beta [C] (params)
 *   mean, var [C] (STATE: the model's "state" section, or implicit)   y: the shape of x
 *
 * Each channel c pools m = N·(H·W) values (every dim but 1).
 * Training:  μ = Σx / m,  σ² = Σ(x − μ)² / m (biased),  x̂ = (x − μ) / √(σ² + ε),
 *            y = gamma·x̂ + beta;  then, in place in the state tensors,
 *            mean ← (1 − momentum)·mean + momentum·μ,
 *            var  ← (1 − momentum)·var  + momentum·σ²·m/(m − 1)   (unbiased; m = 1: σ² as is)
 * Inference: the same y with mean and var in place of μ and σ²; the state is only read.
 *
 * Gradient (training; g = gamma·s with s = 1/√(σ² + ε)), per channel:
 *   dbeta  += Σ dy          dgamma += Σ dy·x̂
 *   dx     += g · (dy − Σdy/m − x̂·Σ(dy·x̂)/m)
 * mean and var take no gradient (no_grad_inputs) and are never trained.
 *
 * How the op writes its state: dn_op.state_inputs marks inputs 3 and 4; the loader accepts
 * only state tensors there (a param or an activation is refused, by name), so a training
 * forward may write through k->x[3].data and k->x[4].data. Only the forward with
 * k->training updates them, once per call.
 *
 * Passes: forward reads x once for both sums (shifted by the channel's first value, summed in
 * double, so that Σx² − (Σx)²/m does not cancel even when |μ| ≫ σ) and once to write
 * y = x·scale + shift; backward reads x and dy once for both sums and once to write dx.
 * Forward saves μ and s per channel (2·C floats) for backward. Threads split the channels
 * (each owns its channel's sums and its dgamma, dbeta entries, so nothing is shared) from
 * DN_PARALLEL_MIN elements of x on. No workspace, no allocation.
 *
 * attrs: epsilon (1e-5, > 0), momentum (0.1, in [0, 1]).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/op.h"
#include "runtime/clones.h"
#include "runtime/parallel.h"

typedef struct bn_attrs {
    double epsilon, momentum;
} bn_attrs;

/* x as [n, c, inner]: channel ch of sample b holds `inner` values at (b·c + ch)·inner. */
typedef struct bn_geom {
    int64_t n, c, inner;
} bn_geom;

static bn_geom geom(const dn_shape *x)
{
    return (bn_geom){ x->d[0], x->d[1], dn_shape_numel_from(x, 2) };
}

/* ---------------------------------------------------------------- attrs and shapes */

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    static const char *const allowed[] = { "epsilon", "momentum", NULL };
    bn_attrs *a = attrs;
    dn_status st;
    if ((st = dn_attrs_only(c, allowed)) ||
        (st = dn_attr_number(c, "epsilon", 1e-5, 0.0, 1e10, &a->epsilon)) ||
        (st = dn_attr_number(c, "momentum", 0.1, 0.0, 1.0, &a->momentum)))
        return st;
    if (a->epsilon == 0.0)
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/epsilon",
                            "expected a positive number (it keeps 1/sqrt(var + epsilon) finite "
                            "for a constant channel), found 0");
    return DN_OK;
}

/* gamma and beta: ones and zeros, trained; running mean and var: zeros and ones, state. */
static int implicit_params(const void *attrs, const dn_tensor_desc *x, dn_param_spec *out)
{
    (void)attrs;
    /* infer rejects a rank-1 x right after; until then any channel count does. */
    int64_t ch = x->shape.rank >= 2 ? x->shape.d[1] : 1;
    dn_shape s = dn_shape_make(1, &ch, false);
    dn_init ones = { .type = DN_INIT_ONES }, zeros = { .type = DN_INIT_ZEROS };
    out[0] = (dn_param_spec){ "weight", s, ones };
    out[1] = (dn_param_spec){ "bias", s, zeros };
    out[2] = (dn_param_spec){ "running_mean", s, zeros }; /* state: implicit_state */
    out[3] = (dn_param_spec){ "running_var", s, ones };
    return 4;
}

static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    (void)attrs;
    static const char *const roles[] = { "x", "gamma", "beta", "mean", "var" };
    char xs[DN_SHAPE_STR_MAX], ps[DN_SHAPE_STR_MAX];
    dn_status st;
    for (int i = 0; i < 5; i++)
        if ((st = dn_expect_f32(c, in, i)))
            return st;
    int rank = in[0].shape.rank;
    dn_shape_str(&in[0].shape, xs, sizeof xs);
    if (rank < 2 || rank > 4)
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "input \"%s\" must be [N, C], [N, C, L] or [N, C, H, W], found %s",
                            c->input_names[0], xs);
    int64_t ch = in[0].shape.d[1];
    for (int i = 1; i < 5; i++) {
        const dn_shape *p = &in[i].shape;
        if (p->rank == 1 && p->d[0] == ch)
            continue;
        char field[16];
        snprintf(field, sizeof field, "inputs/%d", i);
        return dn_node_fail(c, DN_ERR_SHAPE, field,
                            "%s \"%s\" must be [%lld] (one value per channel, dim 1 of \"%s\" %s), "
                            "found %s",
                            roles[i], c->input_names[i], (long long)ch, c->input_names[0], xs,
                            dn_shape_str(p, ps, sizeof ps));
    }
    *out = in[0];
    return DN_OK;
}

/* μ and s per channel. */
static size_t saved_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                         const dn_tensor_desc *out)
{
    (void)attrs, (void)n_in, (void)out;
    return 2 * (size_t)in[0].shape.d[1] * sizeof(float);
}

/* Training, per element: the two sums (3), the subtraction and square (2), the scale and
 * shift (2). */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)attrs, (void)in, (void)n_in;
    return dn_mul_sat(dn_shape_numel(&out->shape), 7);
}

/* ---------------------------------------------------------------- forward */

typedef struct bn_fwd {
    const bn_attrs *a;
    bn_geom g;
    const float *x, *gamma, *beta;
    float *mean, *var; /* the state */
    float *y, *saved;
    bool training;
} bn_fwd;

/* Channel ch's batch mean and biased variance: one pass, shifted by its first value. */
/* The sums run in LANES independent double accumulators (element i of a row goes to lane
 * i mod LANES; the lanes are added in order at the end): one chain of dependent additions
 * held the loop to one element per add latency and kept it from vectorising, and BatchNorm
 * took 13 % of an alexnet_fmnist step (docs/benchmarks.md). Still double precision; the
 * order is fixed, so both clones (runtime/clones.h: no FMA contraction in ISO C) and every
 * thread count give the same bits. */
enum { LANES = 8 };

static double lanes_total(const double *lane)
{
    double t = 0;
    for (int l = 0; l < LANES; l++)
        t += lane[l];
    return t;
}

DN_CLONES_AVX2 static void channel_stats(const bn_geom *g, const float *x, int64_t ch, double *mu,
                                         double *var)
{
    /* A non-finite first value would turn Inf − Inf into NaN where PyTorch's mean is ±Inf. */
    double shift = isfinite(x[ch * g->inner]) ? x[ch * g->inner] : 0.0;
    double s[LANES] = { 0 }, s2[LANES] = { 0 };
    for (int64_t b = 0; b < g->n; b++) {
        const float *row = x + (b * g->c + ch) * g->inner;
        int64_t i = 0;
        for (; i + LANES <= g->inner; i += LANES)
            for (int l = 0; l < LANES; l++) {
                double d = (double)row[i + l] - shift;
                s[l] += d;
                s2[l] += d * d;
            }
        for (; i < g->inner; i++) {
            double d = (double)row[i] - shift;
            s[i % LANES] += d;
            s2[i % LANES] += d * d;
        }
    }
    double m = (double)(g->n * g->inner);
    double dm = lanes_total(s) / m;
    *mu = shift + dm;
    *var = lanes_total(s2) / m - dm * dm;
    if (*var < 0)
        *var = 0; /* rounding of a constant channel */
}

/* Σ dy and Σ dy·x̂ of one channel, over LANES accumulators as channel_stats. */
DN_CLONES_AVX2 static void channel_grad_sums(const bn_geom *g, const float *x, const float *dy,
                                             int64_t ch, float mu, float s, double *sdy,
                                             double *sdyx)
{
    double a[LANES] = { 0 }, b2[LANES] = { 0 };
    for (int64_t b = 0; b < g->n; b++) {
        int64_t at = (b * g->c + ch) * g->inner;
        const float *xr = x + at, *dyr = dy + at;
        int64_t i = 0;
        for (; i + LANES <= g->inner; i += LANES)
            for (int l = 0; l < LANES; l++) {
                a[l] += dyr[i + l];
                b2[l] += (double)dyr[i + l] * (double)((xr[i + l] - mu) * s);
            }
        for (; i < g->inner; i++) {
            a[i % LANES] += dyr[i];
            b2[i % LANES] += (double)dyr[i] * (double)((xr[i] - mu) * s);
        }
    }
    *sdy = lanes_total(a);
    *sdyx = lanes_total(b2);
}

/* Channels [lo, hi) (ctx: the bn_fwd). */
static void forward_channels(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const bn_fwd *f = ctx;
    const bn_geom *g = &f->g;
    (void)part;
    double m = (double)(g->n * g->inner), mom = f->a->momentum;
    for (int64_t ch = lo; ch < hi; ch++) {
        double mu, var;
        if (f->training) {
            channel_stats(g, f->x, ch, &mu, &var);
            double unbiased = m > 1 ? var * m / (m - 1) : var;
            f->mean[ch] = (float)((1 - mom) * (double)f->mean[ch] + mom * mu);
            f->var[ch] = (float)((1 - mom) * (double)f->var[ch] + mom * unbiased);
        } else {
            mu = f->mean[ch];
            var = f->var[ch];
        }
        double s = 1.0 / sqrt(var + f->a->epsilon);
        f->saved[ch] = (float)mu;
        f->saved[g->c + ch] = (float)s;
        float scale = (float)((double)f->gamma[ch] * s);
        float shift = (float)((double)f->beta[ch] - mu * (double)f->gamma[ch] * s);
        for (int64_t b = 0; b < g->n; b++) {
            int64_t at = (b * g->c + ch) * g->inner;
            const float *xr = f->x + at;
            float *yr = f->y + at;
            for (int64_t i = 0; i < g->inner; i++)
                yr[i] = xr[i] * scale + shift;
        }
    }
}

static void forward(const dn_kernel *k)
{
    bn_fwd f = { .a = k->attrs,
                 .g = geom(&k->x[0].shape),
                 .x = dn_f32(&k->x[0]),
                 .gamma = dn_f32(&k->x[1]),
                 .beta = dn_f32(&k->x[2]),
                 .mean = dn_f32(&k->x[3]),
                 .var = dn_f32(&k->x[4]),
                 .y = dn_f32(k->y),
                 .saved = k->saved,
                 .training = k->training };
    int64_t total = dn_shape_numel(&k->x[0].shape);
    dn_parallel_for(f.g.c, dn_team(k->threads, total, DN_PARALLEL_MIN), forward_channels, &f);
}

/* ---------------------------------------------------------------- backward */

typedef struct bn_bwd {
    bn_geom g;
    const float *x, *gamma, *dy, *saved;
    float *dx, *dgamma, *dbeta; /* NULL: not wanted */
} bn_bwd;

/* Channels [lo, hi) (ctx: the bn_bwd). */
static void backward_channels(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const bn_bwd *d = ctx;
    const bn_geom *g = &d->g;
    (void)part;
    double m = (double)(g->n * g->inner);
    for (int64_t ch = lo; ch < hi; ch++) {
        float mu = d->saved[ch], s = d->saved[g->c + ch];
        double sdy, sdyx;
        channel_grad_sums(g, d->x, d->dy, ch, mu, s, &sdy, &sdyx);
        if (d->dbeta)
            d->dbeta[ch] += (float)sdy;
        if (d->dgamma)
            d->dgamma[ch] += (float)sdyx;
        if (!d->dx)
            continue;
        float gs = d->gamma[ch] * s, mean_dy = (float)(sdy / m), mean_dyx = (float)(sdyx / m);
        for (int64_t b = 0; b < g->n; b++) {
            int64_t at = (b * g->c + ch) * g->inner;
            const float *xr = d->x + at, *dyr = d->dy + at;
            float *dxr = d->dx + at;
            for (int64_t i = 0; i < g->inner; i++)
                dxr[i] += gs * (dyr[i] - mean_dy - (xr[i] - mu) * s * mean_dyx);
        }
    }
}

static void backward(const dn_kernel *k)
{
    bn_bwd d = { .g = geom(&k->x[0].shape),
                 .x = dn_f32(&k->x[0]),
                 .gamma = dn_f32(&k->x[1]),
                 .dy = dn_f32(k->dy),
                 .saved = k->saved,
                 .dx = dn_f32(&k->dx[0]),
                 .dgamma = dn_f32(&k->dx[1]),
                 .dbeta = dn_f32(&k->dx[2]) };
    if (!d.dx && !d.dgamma && !d.dbeta)
        return;
    int64_t total = dn_shape_numel(&k->x[0].shape);
    dn_parallel_for(d.g.c, dn_team(k->threads, total, DN_PARALLEL_MIN), backward_channels, &d);
}

const dn_op dn_op_batchnorm = {
    .name = "BatchNorm",
    .min_inputs = 5,
    .max_inputs = 5,
    .no_grad_inputs = 0x18,
    .attrs_size = sizeof(bn_attrs),
    .parse_attrs = parse_attrs,
    .implicit_params = implicit_params,
    .infer = infer,
    .saved_size = saved_size,
    .flops = flops,
    .forward = forward,
    .backward = backward,
    .backward_reads_inputs = 0x3,
    .state_inputs = 0x18,
    .implicit_state = 0xc,
};
