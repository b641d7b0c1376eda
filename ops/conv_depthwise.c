/*
 * conv_depthwise.c — Conv's depthwise path (ops/conv.h): G > 1 groups of one input channel and
 * one filter each (G = C = F, MobileNet's depthwise layers), stride 1, K = kh·kw ≤ DIRECT_MAX_K.
 * Each (sample, group) pair is one plane convolved with one small kernel; threads share the
 * N·G planes out, sample-major, forward and backward alike.
 *
 *   x_n,g [H, W]    w_g [kh, kw]    b_g    y_n,g, dy_n,g [OH, OW]      (one plane each)
 *   xp: x_n,g zero-padded by (ph, pw)       dyp: dy_n,g zero-padded by ((kh−1)·dh, (kw−1)·dw)
 *
 *   y[p, q]    = b + Σ_{i,j} w[i, j] · xp[p + i·dh, q + j·dw]
 *   dw[i, j]  += Σ_{p,q} dy[p, q] · xp[p + i·dh, q + j·dw]
 *   db        += Σ_{p,q} dy[p, q]
 *   dx[h, w]  += Σ_{i,j} w[i, j] · dy[h + ph − i·dh, w + pw − j·dw]
 *              = Σ_{i,j} w[i, j] · dyp[h + ph + (kh−1−i)·dh, w + pw + (kw−1−j)·dw]
 *
 * So forward and dx are the same loop, a correlation of a padded plane with the taps at given
 * offsets (dx's offsets walk the kernel backwards), writing y or adding onto dx; dW is a dot
 * product per tap. Why a path of its own: an ungrouped Conv of one channel and one filter runs
 * the direct path, whose blocks of one filter hold two accumulators (a chain of K dependent
 * multiply-adds each, bound by the FMA's latency), and whose dx is a per-sample BLIS product
 * of K × 1 × OH·OW plus col2im, run for each group in turn. Here a block holds DW_ROWS rows of
 * 16 outputs (2·DW_ROWS independent chains), dx needs no product, and one parallel loop
 * covers every group. PyTorch too gives depthwise (groups > 1) a kernel of its own.
 *
 * Workspace (dn_conv_depthwise_workspace): one slot per thread: the padded plane (xp or dyp),
 * then for backward the thread's copies of dW [G, K] and db [G], summed in thread order at the
 * end (the same bits on every run with the same threads).
 */
#include <math.h>
#include <string.h>

#include "ops/conv.h"
#include "runtime/parallel.h"

/* A block: DW_ROWS output rows × DW_COLS columns (two vectors of 8); dW takes DW_TAPS taps
 * at a time over vectors of 8 columns. The padded plane has DW_COLS floats of slack after it
 * for the lanes of a block that run past a row's end (computed, never stored). */
enum { DW_ROWS = 4, DW_COLS = 16, DW_TAPS = 10 };

/* ---------------------------------------------------------------- planes and offsets */

typedef struct dw_plane {
    int64_t rows, cols, ld; /* the padded plane: rows × ld, and the part that is data */
    int64_t top, left;      /* where the data starts */
} dw_plane;

static dw_plane xp_plane(const conv_geom *g)
{
    return (dw_plane){ g->h, g->w, g->w + 2 * g->pw, g->ph, g->pw };
}

static dw_plane dyp_plane(const conv_geom *g)
{
    int64_t top = (g->kh - 1) * g->dh, left = (g->kw - 1) * g->dw;
    return (dw_plane){ g->oh, g->ow, g->ow + 2 * left, top, left };
}

static int64_t padded_floats(const dw_plane *pl)
{
    return (pl->top * 2 + pl->rows) * pl->ld + DW_COLS;
}

/* The plane src [rows, cols] into buf, zeros around it (and in the slack). (Zeroing only the
 * border, with the rows copied in an inlined loop, measured no faster.) */
static void pad_plane(const dw_plane *pl, const float *src, float *buf)
{
    memset(buf, 0, (size_t)padded_floats(pl) * sizeof *buf);
    for (int64_t r = 0; r < pl->rows; r++)
        memcpy(buf + (pl->top + r) * pl->ld + pl->left, src + r * pl->cols,
               (size_t)pl->cols * sizeof *buf);
}

/* Tap (i, j) of output (0, 0) reads xp at i·dh·ld + j·dw (forward, dW); dx's output (0, 0)
 * reads dyp at (ph + (kh−1−i)·dh)·ld + pw + (kw−1−j)·dw. */
static void forward_offsets(const conv_geom *g, int64_t ld, int64_t *off)
{
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++)
            off[i * g->kw + j] = i * g->dh * ld + j * g->dw;
}

static void dx_offsets(const conv_geom *g, int64_t ld, int64_t *off)
{
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++)
            off[i * g->kw + j] =
                (g->ph + (g->kh - 1 - i) * g->dh) * ld + g->pw + (g->kw - 1 - j) * g->dw;
}

/* ---------------------------------------------------------------- the plain loops
 * (the same multiply-adds in the same order as the AVX2 correlation: the same bits) */

static void correlate_plain(const float *in, int64_t ld, const int64_t *off, const float *w,
                            int64_t taps, float *out, int64_t rows, int64_t cols, float bias,
                            conv_dw_out mode)
{
    for (int64_t p = 0; p < rows; p++)
        for (int64_t q = 0; q < cols; q++) {
            float sum = mode == CONV_DW_ADD ? out[p * cols + q] : bias;
            for (int64_t t = 0; t < taps; t++)
                sum = fmaf(w[t], in[p * ld + q + off[t]], sum);
            out[p * cols + q] = mode == CONV_DW_WRITE_RELU ? dn_relu(sum) : sum;
        }
}

static void dw_plain(const float *dy, int64_t rows, int64_t cols, const float *in, int64_t ld,
                     const int64_t *off, int64_t taps, float *dw)
{
    for (int64_t t = 0; t < taps; t++) {
        float sum = 0.0f;
        for (int64_t p = 0; p < rows; p++)
            for (int64_t q = 0; q < cols; q++)
                sum = fmaf(dy[p * cols + q], in[p * ld + q + off[t]], sum);
        dw[t] += sum;
    }
}

/* ---------------------------------------------------------------- the AVX2/FMA loops */

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* Lanes [0, len) of a vector, len clamped to [0, 8]: a mask for maskload/maskstore. */
AVX2 static __m256i lanes_below(int64_t len)
{
    int n = len < 0 ? 0 : len > 8 ? 8 : (int)len;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Rows [0, nr) × columns [0, len) of out (len ≤ DW_COLS), nr a constant when inlined (DW_ROWS
 * for whole blocks, 1 for the rows left over), so the compiler keeps 2·nr accumulators in
 * registers. Every tap is one broadcast and 2·nr multiply-adds on independent chains. */
AVX2 static inline __attribute__((always_inline)) void correlate_block(
    const float *in, int64_t ld, const int64_t *off, const float *w, int64_t taps, float *out,
    int64_t ldo, int nr, int64_t len, float bias, conv_dw_out mode)
{
    __m256i m0 = lanes_below(len), m1 = lanes_below(len - 8);
    __m256 acc[DW_ROWS][2];
    for (int r = 0; r < nr; r++) {
        if (mode == CONV_DW_ADD) {
            acc[r][0] = _mm256_maskload_ps(out + r * ldo, m0);
            acc[r][1] = _mm256_maskload_ps(out + r * ldo + 8, m1);
        } else
            acc[r][0] = acc[r][1] = _mm256_set1_ps(bias);
    }
    for (int64_t t = 0; t < taps; t++) {
        __m256 wv = _mm256_broadcast_ss(w + t);
        const float *s = in + off[t];
        for (int r = 0; r < nr; r++) {
            acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + r * ld), acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + r * ld + 8), acc[r][1]);
        }
    }
    if (mode == CONV_DW_WRITE_RELU) /* max(0, y) keeps NaN and −0, as dn_relu does */
        for (int r = 0; r < nr; r++)
            for (int v = 0; v < 2; v++)
                acc[r][v] = _mm256_max_ps(_mm256_setzero_ps(), acc[r][v]);
    for (int r = 0; r < nr; r++) {
        _mm256_maskstore_ps(out + r * ldo, m0, acc[r][0]);
        _mm256_maskstore_ps(out + r * ldo + 8, m1, acc[r][1]);
    }
}

AVX2 static void correlate_avx2(const float *in, int64_t ld, const int64_t *off, const float *w,
                                int64_t taps, float *out, int64_t rows, int64_t cols, float bias,
                                conv_dw_out mode)
{
    for (int64_t q0 = 0; q0 < cols; q0 += DW_COLS) {
        int64_t len = cols - q0 < DW_COLS ? cols - q0 : DW_COLS;
        int64_t p = 0;
        for (; p + DW_ROWS <= rows; p += DW_ROWS)
            correlate_block(in + p * ld + q0, ld, off, w, taps, out + p * cols + q0, cols, DW_ROWS,
                            len, bias, mode);
        for (; p < rows; p++)
            correlate_block(in + p * ld + q0, ld, off, w, taps, out + p * cols + q0, cols, 1, len,
                            bias, mode);
    }
}

/* dw[t0 .. t0 + nt) += Σ_p Σ_q dy[p, q] · in[p·ld + q + off[t]], DW_TAPS taps (nt ≤ DW_TAPS;
 * the unused ones repeat the first) and 8 columns at a time. A partial vector masks the lanes
 * past the row out of both loads: 0 · inf would be NaN. */
AVX2 static void dw_taps(const float *dy, int64_t rows, int64_t cols, const float *in, int64_t ld,
                         const int64_t *off, int64_t t0, int64_t nt, float *dw)
{
    __m256 acc[DW_TAPS];
    const float *at[DW_TAPS];
    for (int t = 0; t < DW_TAPS; t++) {
        acc[t] = _mm256_setzero_ps();
        at[t] = in + off[t0 + (t < nt ? t : 0)];
    }
    for (int64_t p = 0; p < rows; p++) {
        const float *d = dy + p * cols;
        int64_t q = 0;
        for (; q + 8 <= cols; q += 8) {
            __m256 dv = _mm256_loadu_ps(d + q);
            for (int t = 0; t < DW_TAPS; t++)
                acc[t] = _mm256_fmadd_ps(dv, _mm256_loadu_ps(at[t] + p * ld + q), acc[t]);
        }
        if (q < cols) {
            __m256i m = lanes_below(cols - q);
            __m256 dv = _mm256_maskload_ps(d + q, m);
            for (int t = 0; t < DW_TAPS; t++)
                acc[t] = _mm256_fmadd_ps(dv, _mm256_maskload_ps(at[t] + p * ld + q, m), acc[t]);
        }
    }
    conv_add_lane_sums(acc, nt, dw + t0);
}

AVX2 static void dw_avx2(const float *dy, int64_t rows, int64_t cols, const float *in, int64_t ld,
                         const int64_t *off, int64_t taps, float *dw)
{
    for (int64_t t0 = 0; t0 < taps; t0 += DW_TAPS)
        dw_taps(dy, rows, cols, in, ld, off, t0, taps - t0 < DW_TAPS ? taps - t0 : DW_TAPS, dw);
}

static const conv_depthwise_kernels avx2_kernels = { "avx2", correlate_avx2, dw_avx2 };

const conv_depthwise_kernels *dn_conv_depthwise_avx2(void)
{
    bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has ? &avx2_kernels : NULL;
}
#else
const conv_depthwise_kernels *dn_conv_depthwise_avx2(void) { return NULL; }
#endif

static const conv_depthwise_kernels plain_kernels = { "plain", correlate_plain, dw_plain };

const conv_depthwise_kernels *dn_conv_depthwise_plain(void) { return &plain_kernels; }

/* ---------------------------------------------------------------- workspace and threads */

typedef struct dw_slots {
    int64_t padded, dw, db, per_thread; /* floats, each a multiple of 16 */
} dw_slots;

static dw_slots slots_of(const conv_geom *g)
{
    dw_plane xp = xp_plane(g), dyp = dyp_plane(g);
    dw_slots s;
    s.padded = conv_r16(conv_larger(padded_floats(&xp), padded_floats(&dyp)));
    s.dw = conv_r16(g->groups * g->k);
    s.db = conv_r16(g->groups);
    s.per_thread = s.padded + s.dw + s.db;
    return s;
}

size_t dn_conv_depthwise_workspace(const conv_geom *g, int threads)
{
    dw_slots s = slots_of(g);
    return (size_t)(s.per_thread * (threads > 1 ? threads : 1)) * sizeof(float) + 64;
}

/* The team: one thread per range of (sample, group) planes, from DIRECT_SPLIT_MIN
 * multiply-adds in all, never more threads than planes. */
static int team_of(const conv_geom *g, int threads)
{
    int64_t planes = g->n * g->groups;
    int team = dn_team(threads, dn_mul_sat(conv_direct_work(g), g->groups), DIRECT_SPLIT_MIN);
    return team < planes ? team : (int)planes;
}

static float *slot_of(const conv_geom *g, void *work, int t)
{
    return conv_aligned_work(work) + t * slots_of(g).per_thread;
}

/* ---------------------------------------------------------------- forward */

typedef struct dw_pass {
    const conv_depthwise_kernels *isa;
    const conv_geom *g;
    const dn_kernel *k;
} dw_pass;

/* Planes [lo, hi) (ctx: the dw_pass): plane n·G + gi is group gi of sample n, whose x and y
 * are one plane each at n·xs + gi·H·W and n·ys + gi·OH·OW. */
static void forward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const dw_pass *ps = ctx;
    const conv_geom *g = ps->g;
    const dn_kernel *k = ps->k;
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    float *y = dn_f32(k->y), *buf = slot_of(g, k->work, part->slot);
    dw_plane pl = xp_plane(g);
    int64_t off[DIRECT_MAX_K];
    forward_offsets(g, pl.ld, off);
    for (int64_t it = lo; it < hi; it++) {
        int64_t n = it / g->groups, gi = it % g->groups;
        pad_plane(&pl, x + n * g->xs + gi * g->h * g->w, buf);
        ps->isa->correlate(buf, pl.ld, off, w + gi * g->k, g->k, y + n * g->ys + gi * g->p, g->oh,
                           g->ow, b ? b[gi] : 0.0f, g->relu ? CONV_DW_WRITE_RELU : CONV_DW_WRITE);
    }
}

void dn_conv_depthwise_forward(const dn_kernel *k, const conv_geom *g,
                               const conv_depthwise_kernels *isa)
{
    dw_pass ps = { isa, g, k };
    dn_parallel_for(g->n * g->groups, team_of(g, k->threads), forward_range, &ps);
}

/* ---------------------------------------------------------------- backward */

/* Planes [lo, hi) (ctx: the dw_pass): dW and db into the copies in the range's slot, dx
 * straight into its plane (no two planes share one). */
static void backward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const dw_pass *ps = ctx;
    const conv_geom *g = ps->g;
    const dn_kernel *k = ps->k;
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    bool want_dw = k->dx[1].data, want_db = k->n_inputs > 2 && k->dx[2].data;
    dw_slots sl = slots_of(g);
    float *buf = slot_of(g, k->work, part->slot);
    float *dw = buf + sl.padded, *db = dw + sl.dw;
    memset(dw, 0, (size_t)(sl.dw + sl.db) * sizeof *dw);
    dw_plane xp = xp_plane(g), dyp = dyp_plane(g);
    int64_t fwd_off[DIRECT_MAX_K], dx_off[DIRECT_MAX_K];
    forward_offsets(g, xp.ld, fwd_off);
    dx_offsets(g, dyp.ld, dx_off);
    for (int64_t it = lo; it < hi; it++) {
        int64_t n = it / g->groups, gi = it % g->groups;
        const float *dy_n = dy + n * g->ys + gi * g->p;
        if (want_dw) {
            pad_plane(&xp, x + n * g->xs + gi * g->h * g->w, buf);
            ps->isa->dw(dy_n, g->oh, g->ow, buf, xp.ld, fwd_off, g->k, dw + gi * g->k);
        }
        if (want_db)
            db[gi] += dn_conv_plane_sum(dy_n, g->p);
        if (dx) {
            pad_plane(&dyp, dy_n, buf);
            ps->isa->correlate(buf, dyp.ld, dx_off, w + gi * g->k, g->k,
                               dx + n * g->xs + gi * g->h * g->w, g->h, g->w, 0.0f, CONV_DW_ADD);
        }
    }
}

void dn_conv_depthwise_backward(const dn_kernel *k, const conv_geom *g,
                                const conv_depthwise_kernels *isa)
{
    dw_pass ps = { isa, g, k };
    int team = team_of(g, k->threads);
    team = dn_parallel_for(g->n * g->groups, team, backward_range, &ps);
    /* The copies, in thread order: G·K and G floats, too few to split. */
    dw_slots sl = slots_of(g);
    float *dw = k->dx[1].data ? dn_f32(&k->dx[1]) : NULL;
    float *db = k->n_inputs > 2 && k->dx[2].data ? dn_f32(&k->dx[2]) : NULL;
    for (int t = 0; t < team; t++) {
        const float *copy = slot_of(g, k->work, t) + sl.padded;
        for (int64_t i = 0; dw && i < g->groups * g->k; i++)
            dw[i] += copy[i];
        for (int64_t i = 0; db && i < g->groups; i++)
            db[i] += copy[sl.dw + i];
    }
}
