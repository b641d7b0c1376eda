/*
 * maxpool.c — MaxPool: the largest value of each window, channel by channel.
 *
 *   x [N, C, H, W]     y [N, C, OH, OW]     OH = floor((H + 2·pad_h − kh) / stride_h) + 1
 *
 *   y[n,c,p,q] = max x[n, c, h, w] over the window rows h ∈ [p·sh − ph, p·sh − ph + kh) and
 *                columns w ∈ [q·sw − pw, q·sw − pw + kw) that lie inside the image
 *   dx[n,c,h,w] += Σ dy[n,c,p,q] over the windows whose max was (h, w)
 *
 * Padding never wins the max: windows are clipped to the image rather than filled with zeros
 * or −inf. With pad ≤ kernel/2 (checked, as PyTorch does) every clipped window keeps at least
 * one pixel, so every output has a real argmax. Forward saves that argmax (int32 index in the
 * H·W plane, one per output element) for backward to scatter dy onto. Ties go to the first
 * pixel in row-major order; a NaN wins, as in PyTorch, so divergence shows downstream.
 *
 * attrs: kernel (required), stride (= kernel), pad (0), each an int or [h, w]; ceil (false:
 * PyTorch's ceil_mode, pool.h: the last window may run past the image and is clipped). Those
 * attrs, the output shape and the window clipping are shared with AvgPool (pool.h); the
 * plane-size limit of the int32 argmax is checked here.
 *
 * Speed: the 2×2, stride-2 window of LeNet and SimpleConvNet has a loop of its own, with no
 * window arithmetic (and on AVX-512 machines one that takes 16 outputs a vector), and so have
 * the whole 3×3, stride-2 windows of AlexNet. Other windows go
 * a row of outputs at a time: each pass brings one pixel of every window in the row against
 * its running winner, so the compares are independent vector selects rather than a chain of
 * mispredicted branches. All vectorise; backward scatters dy through the saved argmax.
 */
#include "ops/pool.h"
#include "runtime/clones.h"
#include "runtime/parallel.h"

/* ---------------------------------------------------------------- attrs and shapes */

static dn_status parse_attrs(const dn_node_ctx *c, void *attrs)
{
    return dn_pool_parse_attrs(c, "MaxPool", attrs);
}

/* The pooling shape (pool.c), and planes small enough for the int32 argmax. */
static dn_status infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                       dn_tensor_desc *out)
{
    dn_tensor_desc y;
    dn_status st = dn_pool_infer(c, attrs, in, &y);
    if (st)
        return st;
    const dn_shape *x = &in[0].shape;
    int64_t plane;
    if (!dn_mul_ok(x->d[2], x->d[3], &plane) || plane > INT32_MAX) {
        char xs[DN_SHAPE_STR_MAX];
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/0",
                            "input \"%s\" %s has planes of more than 2^31 - 1 pixels, which the "
                            "int32 argmax cannot index",
                            c->input_names[0], dn_shape_str(x, xs, sizeof xs));
    }
    *out = y;
    return DN_OK;
}

static size_t saved_size(const void *attrs, const dn_tensor_desc *in, int n_in,
                         const dn_tensor_desc *out)
{
    (void)attrs, (void)in, (void)n_in;
    return (size_t)dn_shape_numel(&out->shape) * sizeof(int32_t);
}

/* One compare per window pixel. A kernel may be far larger than the image it pads (H = 1,
 * kernel 2^40, pad 2^39 fits), so its area and the count saturate instead of overflowing. */
static int64_t flops(const void *attrs, const dn_tensor_desc *in, int n_in,
                     const dn_tensor_desc *out)
{
    (void)in, (void)n_in;
    const dn_pool_attrs *a = attrs;
    return dn_mul_sat(dn_mul_sat(a->kernel[0], a->kernel[1]), dn_shape_numel(&out->shape));
}

/* ---------------------------------------------------------------- kernels */

/* Input pixels below which one thread pools faster than two: the 2×2 path takes well under a
 * ns per pixel, and within a run the second thread is already awake (SimpleConvNet's pool at
 * batch 1, 17 Ki pixels, takes 14 µs on one thread and 6 µs on two). */
#define MAXPOOL_PARALLEL_MIN 16384

/* Output (p, q) of any window, rows [h0, h1) of it already clipped: the winner in row-major
 * order, its index in the plane saved. For the columns the padding clips. */
static void max_window(const dn_pool_geom *g, const float *x, int64_t p, int64_t q, int64_t h0,
                       int64_t h1, float *y, int32_t *arg)
{
    int64_t w0, w1;
    dn_pool_window(q, g->kw, g->sw, g->pw, g->w, &w0, &w1);
    int64_t best = h0 * g->w + w0;
    for (int64_t h = h0; h < h1; h++)
        for (int64_t w = w0; w < w1; w++)
            if (dn_pool_max_wins(x[h * g->w + w], x[best]))
                best = h * g->w + w;
    y[p * g->ow + q] = x[best];
    arg[p * g->ow + q] = (int32_t)best;
}

/* One window pixel, at plane index at + q·sw for output q, against the running winners m and
 * best of n outputs side by side. Selects, not branches (a new max is a coin toss), and the
 * outputs are independent, so the loop vectorises. */
static void visit(const float *restrict x, int64_t at, int64_t sw, int64_t n, float *restrict m,
                  int32_t *restrict best)
{
    for (int64_t q = 0; q < n; q++) {
        float v = x[at + q * sw];
        bool t = dn_pool_max_wins(v, m[q]);
        m[q] = t ? v : m[q];
        best[q] = t ? (int32_t)(at + q * sw) : best[q];
    }
}

/* Outputs [0, n) of a row of 3×3 windows, stride 2, whole (unclipped): window q's rows start
 * at plane index at + 2q, at + w + 2q and at + 2w + 2q. Its nine pixels meet in row-major
 * order by selects, in registers (AlexNet's overlapping pool: max_row's passes kept the
 * running winners in memory, nine loads and stores of each), and the loop vectorises over q. */
DN_CLONES_AVX2 static void max_row_3x3s2(const float *restrict x, int64_t at, int64_t w, int64_t n,
                                         float *restrict y, int32_t *restrict arg)
{
    const float *restrict r0 = x + at, *restrict r1 = r0 + w, *restrict r2 = r1 + w;
    int32_t i0 = (int32_t)at, i1 = (int32_t)(at + w), i2 = (int32_t)(at + 2 * w);
    for (int64_t q = 0; q < n; q++) {
        int64_t c = 2 * q;
        int32_t ic = (int32_t)c;
        float m = r0[c];
        int32_t best = i0 + ic;
        bool t;
        /* the row-major order: r0[c + 1], r0[c + 2], then rows 1 and 2 */
        t = dn_pool_max_wins(r0[c + 1], m), m = t ? r0[c + 1] : m, best = t ? i0 + ic + 1 : best;
        t = dn_pool_max_wins(r0[c + 2], m), m = t ? r0[c + 2] : m, best = t ? i0 + ic + 2 : best;
        t = dn_pool_max_wins(r1[c], m), m = t ? r1[c] : m, best = t ? i1 + ic : best;
        t = dn_pool_max_wins(r1[c + 1], m), m = t ? r1[c + 1] : m, best = t ? i1 + ic + 1 : best;
        t = dn_pool_max_wins(r1[c + 2], m), m = t ? r1[c + 2] : m, best = t ? i1 + ic + 2 : best;
        t = dn_pool_max_wins(r2[c], m), m = t ? r2[c] : m, best = t ? i2 + ic : best;
        t = dn_pool_max_wins(r2[c + 1], m), m = t ? r2[c + 1] : m, best = t ? i2 + ic + 1 : best;
        t = dn_pool_max_wins(r2[c + 2], m), m = t ? r2[c + 2] : m, best = t ? i2 + ic + 2 : best;
        y[q] = m;
        arg[q] = best;
    }
}

/* Any window: output row p. Columns whose window the padding clips go one by one; the rest
 * meet their window's pixels in row-major order, one pixel of every window per pass, with y
 * and arg holding the running winners. */
static void max_row(const dn_pool_geom *g, const float *x, int64_t p, float *y, int32_t *arg)
{
    int64_t h0, h1;
    dn_pool_window(p, g->kh, g->sh, g->ph, g->h, &h0, &h1);
    /* Window q lies inside the image from q·sw ≥ pw to q·sw − pw + kw ≤ W. */
    int64_t lo = (g->pw + g->sw - 1) / g->sw, room = g->w - g->kw + g->pw;
    int64_t hi = room < 0 ? 0 : room / g->sw + 1;
    hi = hi < g->ow ? hi : g->ow;
    lo = lo < hi ? lo : hi;
    for (int64_t q = 0; q < lo; q++)
        max_window(g, x, p, q, h0, h1, y, arg);
    for (int64_t q = hi; q < g->ow; q++)
        max_window(g, x, p, q, h0, h1, y, arg);
    float *m = y + p * g->ow + lo;
    int32_t *best = arg + p * g->ow + lo;
    int64_t start = lo * g->sw - g->pw; /* the first column of window lo */
    if (g->kh == 3 && g->kw == 3 && g->sw == 2 && h1 - h0 == 3) {
        max_row_3x3s2(x, h0 * g->w + start, g->w, hi - lo, m, best);
        return;
    }
    for (int64_t q = 0; q < hi - lo; q++) {
        best[q] = (int32_t)(h0 * g->w + start + q * g->sw);
        m[q] = x[best[q]];
    }
    for (int64_t h = h0; h < h1; h++)
        for (int64_t j = 0; j < g->kw; j++)
            visit(x, h * g->w + start + j, g->sw, hi - lo, m, best);
}

static void max_plane(const dn_pool_geom *g, const float *x, float *y, int32_t *arg)
{
    for (int64_t p = 0; p < g->oh; p++)
        max_row(g, x, p, y, arg);
}

/* The common 2×2 window, stride 2, no padding: one output row from input rows r0 and r1
 * (row r0 starts at plane index `base`, rows are w apart). The four candidates meet in
 * row-major order with selects, not branches, so the loop vectorises; combining pairwise in
 * that order picks the same winner as max_plane (the first maximum, or the last NaN). */
static void max_row_2x2(const float *restrict r0, const float *restrict r1, float *restrict y,
                        int32_t *restrict arg, int64_t ow, int32_t base, int32_t w)
{
    for (int64_t q = 0; q < ow; q++) {
        float a = r0[2 * q], b = r0[2 * q + 1], c = r1[2 * q], d = r1[2 * q + 1];
        int32_t i = base + 2 * (int32_t)q;
        bool tb = dn_pool_max_wins(b, a);
        float m = tb ? b : a;
        int32_t im = tb ? i + 1 : i;
        bool tc = dn_pool_max_wins(c, m);
        m = tc ? c : m;
        im = tc ? i + w : im;
        bool td = dn_pool_max_wins(d, m);
        y[q] = td ? d : m;
        arg[q] = td ? i + w + 1 : im;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

/* v wins against m (dn_pool_max_wins) in each lane: v > m, or v is NaN. */
AVX512 static inline __mmask16 wins16(__m512 v, __m512 m)
{
    return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}

/* max_row_2x2 sixteen outputs at a time: each window's four candidates deinterleaved from two
 * vectors of each input row (even and odd columns), then the same selects in the same
 * order, so the same winners. The baseline loop above runs a row of LeNet's 14 outputs
 * mostly in its scalar tail; this one in one masked vector. */
AVX512 static void max_row_2x2_avx512(const float *restrict r0, const float *restrict r1,
                                      float *restrict y, int32_t *restrict arg, int64_t ow,
                                      int32_t base, int32_t w)
{
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i two_q = _mm512_add_epi32(even, _mm512_set1_epi32(base));
    for (int64_t q = 0; q < ow; q += 16) {
        int64_t n = ow - q < 16 ? ow - q : 16; /* outputs, 2n input columns */
        __mmask16 out = (__mmask16)((1u << n) - 1);
        __mmask16 lo = (__mmask16)(n >= 8 ? 0xffff : (1u << 2 * n) - 1),
                  hi = (__mmask16)(n > 8 ? (1u << 2 * (n - 8)) - 1 : 0);
        const float *a0 = r0 + 2 * q, *a1 = r1 + 2 * q;
        __m512 x0 = _mm512_maskz_loadu_ps(lo, a0), x1 = _mm512_maskz_loadu_ps(hi, a0 + 16);
        __m512 z0 = _mm512_maskz_loadu_ps(lo, a1), z1 = _mm512_maskz_loadu_ps(hi, a1 + 16);
        __m512 a = _mm512_permutex2var_ps(x0, even, x1), b = _mm512_permutex2var_ps(x0, odd, x1);
        __m512 c = _mm512_permutex2var_ps(z0, even, z1), d = _mm512_permutex2var_ps(z0, odd, z1);
        __m512i i = _mm512_add_epi32(two_q, _mm512_set1_epi32(2 * (int32_t)q));
        __m512i iw = _mm512_add_epi32(i, _mm512_set1_epi32(w));
        __mmask16 t = wins16(b, a);
        __m512 m = _mm512_mask_blend_ps(t, a, b);
        __m512i im = _mm512_mask_blend_epi32(t, i, _mm512_add_epi32(i, _mm512_set1_epi32(1)));
        t = wins16(c, m);
        m = _mm512_mask_blend_ps(t, m, c);
        im = _mm512_mask_blend_epi32(t, im, iw);
        t = wins16(d, m);
        m = _mm512_mask_blend_ps(t, m, d);
        im = _mm512_mask_blend_epi32(t, im, _mm512_add_epi32(iw, _mm512_set1_epi32(1)));
        _mm512_mask_storeu_ps(y + q, out, m);
        _mm512_mask_storeu_epi32(arg + q, out, im);
    }
}

static bool has_avx512(void) { return __builtin_cpu_supports("avx512f"); }
#else
static void max_row_2x2_avx512(const float *restrict r0, const float *restrict r1,
                               float *restrict y, int32_t *restrict arg, int64_t ow, int32_t base,
                               int32_t w)
{
    max_row_2x2(r0, r1, y, arg, ow, base, w);
}

static bool has_avx512(void) { return false; }
#endif

void dn_maxpool_plane_2x2(const dn_pool_geom *g, const float *x, float *y, int32_t *arg,
                          bool avx512)
{
    void (*row)(const float *, const float *, float *, int32_t *, int64_t, int32_t, int32_t) =
        avx512 && has_avx512() ? max_row_2x2_avx512 : max_row_2x2;
    for (int64_t p = 0; p < g->oh; p++) {
        const float *r0 = x + 2 * p * g->w;
        row(r0, r0 + g->w, y + p * g->ow, arg + p * g->ow, g->ow, (int32_t)(2 * p * g->w),
            (int32_t)g->w);
    }
}

/* Threads split the N·C planes: whole planes each, so no two write one output or one dx. */
static int team(const dn_pool_geom *g, int threads)
{
    return g->planes > 1 ? dn_team(threads, g->planes * g->h * g->w, MAXPOOL_PARALLEL_MIN) : 1;
}

/* What a range of planes reads: the geometry and the kernel. */
typedef struct planes_job {
    dn_pool_geom g;
    const dn_kernel *k;
} planes_job;

static void forward_planes(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const planes_job *j = ctx;
    const dn_pool_geom *g = &j->g;
    const float *x = dn_f32(&j->k->x[0]);
    float *y = dn_f32(j->k->y);
    int32_t *arg = j->k->saved;
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    bool fast = dn_pool_is_2x2(g);
    for (int64_t i = lo; i < hi; i++)
        if (fast)
            dn_maxpool_plane_2x2(g, x + i * in_plane, y + i * out_plane, arg + i * out_plane, true);
        else
            max_plane(g, x + i * in_plane, y + i * out_plane, arg + i * out_plane);
}

static void forward(const dn_kernel *k)
{
    planes_job j = { dn_pool_geom_of(k->attrs, &k->x[0].shape, &k->y->shape), k };
    dn_parallel_for(j.g.planes, team(&j.g, k->threads), forward_planes, &j);
}

/* dy of each output onto its winner. Windows overlap when stride < kernel, so two outputs
 * may share a winner: a plane is one thread's, never split. */
static void scatter_plane(const float *restrict dy, const int32_t *restrict arg, float *restrict dx,
                          int64_t out_plane)
{
    for (int64_t o = 0; o < out_plane; o++)
        dx[arg[o]] += dy[o];
}

static void backward_planes(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const planes_job *j = ctx;
    const dn_pool_geom *g = &j->g;
    const float *dy = dn_f32(j->k->dy);
    const int32_t *arg = j->k->saved;
    float *dx = dn_f32(&j->k->dx[0]);
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    for (int64_t i = lo; i < hi; i++)
        scatter_plane(dy + i * out_plane, arg + i * out_plane, dx + i * in_plane, out_plane);
}

static void backward(const dn_kernel *k)
{
    if (!k->dx[0].data)
        return;
    planes_job j = { dn_pool_geom_of(k->attrs, &k->x[0].shape, &k->y->shape), k };
    dn_parallel_for(j.g.planes, team(&j.g, k->threads), backward_planes, &j);
}

/* The Conv's DN_EPILOGUE_RELU_MAXPOOL2 pools 2×2 windows, stride 2, unpadded, floor. */
static bool is_pool_epilogue(const void *attrs)
{
    const dn_pool_attrs *a = attrs;
    return a->kernel[0] == 2 && a->kernel[1] == 2 && a->stride[0] == 2 && a->stride[1] == 2 &&
           a->pad[0] == 0 && a->pad[1] == 0 && !a->ceil;
}

const dn_op dn_op_maxpool = {
    .name = "MaxPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs_size = sizeof(dn_pool_attrs),
    .parse_attrs = parse_attrs,
    .infer = infer,
    .saved_size = saved_size,
    .flops = flops,
    .forward = forward,
    .is_pool_epilogue = is_pool_epilogue,
    .backward = backward,
};
