/*
 * conv_direct.c — Conv's direct path (ops/conv.h): few input values per output and stride 1
 * (K ≤ DIRECT_MAX_K: the first conv of LeNet and SimpleConvNet, one channel 5×5), where im2col
 * would copy every pixel K times for a product too thin to pay for it.
 *
 *   x_n [C, H, W]    W [F, K = C·kh·kw]    b [F]    y_n, dy_n [F, OH, OW]    dW [F, K]
 *   xp [C, H + 2·ph, W + 2·pw]: x_n zero-padded, a copy in the thread's slot
 *
 *   y[f, p, q]  = b[f] + Σ_{c,i,j} W[f,c,i,j] · xp[c, p + i, q + j]       (stride 1)
 *   dW[f,c,i,j] += Σ_p Σ_q dy[f,p,q] · xp[c, p + i, q + j]
 *
 *   dx[c, h, w] += Σ_{f,i,j} W[f, c, kh−1−i, kw−1−j] · dyp[f, h + i, w + j]   (AVX-512 only)
 *   dyp: dy_n padded by the kernel's reach, [F, H + dh·(kh − 1), W + dw·(kw − 1)]
 *
 * On AVX2 machines the loops are blocked for registers: forward keeps FB filters × QB outputs
 * of a row in accumulators while every tap passes; dW keeps DW_TAPS taps × 8 columns while
 * every row passes, then sums the columns. On AVX-512 machines the forward keeps 8 filters ×
 * 32 flat positions, dW 4 filters × 5 taps over the same flat positions in the thread's
 * lanes, and dx is a correlation of the padded dy with the flipped filters (each below);
 * they also serve wider kernels (conv_is_direct_wide: LeNet's second conv, K = 150).
 * Elsewhere plain loops compute the same sums. The sets are conv_direct_kernels (ops/conv.h)
 * and the entries take one: conv.c passes the machine's best, a test passes each in turn (no
 * switch shared by the process). Every forward applies the inference ReLU when g->relu is
 * set, and dn_conv_direct_forward_pooled pools its rows 2×2 from the slot
 * (DN_EPILOGUE_RELU_MAXPOOL2).
 *
 * Forward: threads split the batch's output rows, so batch 1 splits too. Backward: threads
 * split the batch and add dW into their own copies (the per-sample path's slots, summed in
 * thread order); dx, with the loops' own dx (AVX-512) or the per-sample path's product, and
 * db as the per-sample path computes it (dn_conv_sample_backward).
 */
#include <math.h>
#include <string.h>

#include "ops/conv.h"
#include "ops/pool.h"
#include "runtime/gemm.h"
#include "runtime/parallel.h"

/* The direct loops' register blocks: FB filters × QB outputs (forward), DW_TAPS taps × 8
 * columns (dW); QB floats of slack after the padded copy for lanes past a row's end. */
enum { FB = 3, QB = CONV_QB, DW_TAPS = 10 };

/* ---------------------------------------------------------------- the padded copy */

static void pad_sample(const conv_geom *g, const float *x, float *xp)
{
    int64_t pw = conv_padded_w(g), ph = conv_padded_h(g);
    memset(xp, 0, (size_t)conv_padded_size(g) * sizeof *xp);
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t h = 0; h < g->h; h++)
            memcpy(xp + (c * ph + h + g->ph) * pw + g->pw, x + (c * g->h + h) * g->w,
                   (size_t)g->w * sizeof *xp);
}

/* Where tap r = (c·kh + i)·kw + j of output row 0 reads in the padded sample. Nested loops,
 * not conv_tap_of's divisions: this runs once per sample (K = 150 taps for the wide path). */
static void tap_offsets(const conv_geom *g, int64_t *off)
{
    int64_t r = 0;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++)
                off[r++] =
                    (c * conv_padded_h(g) + conv_tap_h(g, i)) * conv_padded_w(g) + conv_tap_w(g, j);
}

/* ---------------------------------------------------------------- the plain loops */

/* Output rows [p0, p1) of every filter. */
static void forward_plain(const conv_geom *g, const float *w, const float *b, const float *xp,
                          const int64_t *off, float *y, int64_t p0, int64_t p1)
{
    for (int64_t f = 0; f < g->f; f++)
        for (int64_t p = p0; p < p1; p++)
            for (int64_t q = 0; q < g->ow; q++) {
                float sum = b ? b[f] : 0.0f;
                for (int64_t r = 0; r < g->k; r++)
                    sum = fmaf(w[f * g->k + r], xp[p * conv_padded_w(g) + q + off[r]], sum);
                y[(f * g->oh + p) * g->ow + q] = g->relu ? dn_relu(sum) : sum;
            }
}

static void dw_plain(const conv_geom *g, const float *dy, const float *xp, const int64_t *off,
                     const conv_slot *s)
{
    float *dw = s->dw;
    for (int64_t f = 0; f < g->f; f++)
        for (int64_t r = 0; r < g->k; r++) {
            float sum = 0.0f;
            for (int64_t p = 0; p < g->oh; p++)
                for (int64_t q = 0; q < g->ow; q++)
                    sum = fmaf(dy[(f * g->oh + p) * g->ow + q],
                               xp[p * conv_padded_w(g) + q + off[r]], sum);
            dw[f * g->k + r] += sum;
        }
}

/* ---------------------------------------------------------------- the AVX2/FMA loops */

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* Lanes [0, len) of a vector (len ≤ 8): a maskload mask. */
AVX2 static __m256i lanes_below(int64_t len)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)len),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Outputs q0 .. q0 + len of row p (len ≤ QB = 16) for filters f0 .. f0 + nf (nf ≤ nb ≤ FB),
 * in nb rows of accumulators. Inlined with nb a constant (forward_avx2 passes 1, 2 or FB), so
 * that a block of one filter (every block of a depthwise group) does not pay FB rows of FMAs
 * on zero weights. */
AVX2 static inline __attribute__((always_inline)) void forward_block(
    const conv_geom *g, const float *w, const float *b, const float *in, const int64_t *off,
    int64_t f0, int64_t nf, int nb, int64_t len, float *y0)
{
    static const float zeros[DIRECT_MAX_K];
    const float *wt[FB];
    __m256 acc[FB][2];
    for (int t = 0; t < nb; t++) {
        wt[t] = t < nf ? w + (f0 + t) * g->k : zeros;
        acc[t][0] = acc[t][1] = _mm256_set1_ps(t < nf && b ? b[f0 + t] : 0.0f);
    }
    for (int64_t r = 0; r < g->k; r++) {
        __m256 x0 = _mm256_loadu_ps(in + off[r]), x1 = _mm256_loadu_ps(in + off[r] + 8);
        for (int t = 0; t < nb; t++) {
            __m256 wv = _mm256_broadcast_ss(wt[t] + r);
            acc[t][0] = _mm256_fmadd_ps(wv, x0, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(wv, x1, acc[t][1]);
        }
    }
    for (int64_t t = 0; t < nf && g->relu; t++)
        for (int v = 0; v < 2; v++) /* max(0, y): NaN and −0 pass as in ops/relu.c */
            acc[t][v] = _mm256_max_ps(_mm256_setzero_ps(), acc[t][v]);
    for (int64_t t = 0; t < nf; t++) {
        float out[16];
        _mm256_storeu_ps(out, acc[t][0]);
        _mm256_storeu_ps(out + 8, acc[t][1]);
        memcpy(y0 + t * g->oh * g->ow, out, (size_t)len * sizeof(float));
    }
}

AVX2 static void forward_avx2(const conv_geom *g, const float *w, const float *b, const float *xp,
                              const int64_t *off, float *y, int64_t p0, int64_t p1)
{
    for (int64_t p = p0; p < p1; p++)
        for (int64_t q0 = 0; q0 < g->ow; q0 += QB)
            for (int64_t f0 = 0; f0 < g->f; f0 += FB) {
                int64_t nf = g->f - f0 < FB ? g->f - f0 : FB,
                        len = g->ow - q0 < QB ? g->ow - q0 : QB;
                const float *in = xp + p * conv_padded_w(g) + q0;
                float *y0 = y + (f0 * g->oh + p) * g->ow + q0;
                if (nf == 1)
                    forward_block(g, w, b, in, off, f0, nf, 1, len, y0);
                else if (nf == 2)
                    forward_block(g, w, b, in, off, f0, nf, 2, len, y0);
                else
                    forward_block(g, w, b, in, off, f0, nf, FB, len, y0);
            }
}

/* dw[r0 .. r0 + nt] += Σ_p Σ_{q ∈ [q0, q0 + len)} dy[p, q] · xp[p, q + tap offset], one
 * vector of columns (len ≤ 8) and up to DW_TAPS taps at a time. A partial vector masks the
 * lanes past len out of both loads (0 · inf would be NaN). */
AVX2 static void dw_block(const conv_geom *g, const float *dy, const float *xp, const int64_t *off,
                          int64_t r0, int64_t nt, int64_t q0, int64_t len, float *dw)
{
    __m256 acc[DW_TAPS];
    __m256i mask = lanes_below(len);
    const float *at[DW_TAPS];
    for (int t = 0; t < DW_TAPS; t++) {
        acc[t] = _mm256_setzero_ps();
        at[t] = xp + off[r0 + (t < nt ? t : 0)] + q0;
    }
    int64_t pw = conv_padded_w(g);
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
    conv_add_lane_sums(acc, nt, dw + r0);
}

AVX2 static void dw_avx2(const conv_geom *g, const float *dy, const float *xp, const int64_t *off,
                         const conv_slot *s)
{
    float *dw = s->dw;
    for (int64_t f = 0; f < g->f; f++)
        for (int64_t q0 = 0; q0 < g->ow; q0 += 8)
            for (int64_t r0 = 0; r0 < g->k; r0 += DW_TAPS)
                dw_block(g, dy + f * g->oh * g->ow, xp, off, r0,
                         g->k - r0 < DW_TAPS ? g->k - r0 : DW_TAPS, q0,
                         g->ow - q0 < 8 ? g->ow - q0 : 8, dw + f * g->k);
}

static const conv_direct_kernels avx2_kernels = { "avx2", forward_avx2, dw_avx2, false, NULL };

const conv_direct_kernels *dn_conv_direct_avx2(void)
{
    bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has ? &avx2_kernels : NULL;
}

/* ---------------------------------------------------------------- the AVX-512 forward
 *
 * A block is FB512 filters × 32 positions (two 16-lane vectors): up to 16 accumulators, 16
 * independent chains while the taps pass (AVX2's FB × 16 block has 6). Positions are flat
 * (forward_avx512), so rows of any width fill the vectors and any K works: the forward of
 * the wide direct path too (conv.h, conv_is_direct_wide). Masked loads read only the
 * range's own lanes (they do not fault past the padded copy), compressed masked stores write
 * only its outputs. The same fused multiply-adds in the same order as the plain loops (the
 * bias, then tap 0, 1, …): the same bits. dW keeps the AVX2 loops. */
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

enum { FB512 = 8 };

/* The cases 1 .. 4 or 1 .. 8 of a switch on a block's size, each expanding M(size): the
 * AVX-512 blocks below take their size as a constant, so that their accumulators are
 * registers (a block of each size inlined once). */
#define CASES_1_TO_4(M) M(1) M(2) M(3) M(4)
#define CASES_1_TO_8(M) CASES_1_TO_4(M) M(5) M(6) M(7) M(8)

/* The flat forward: output (p, q) of a stride-1 convolution reads xp at p·pw + q + off[r]
 * (pw the padded width), so over flat positions t = p·pw + q the reads of a tap are
 * consecutive even across rows. Vectors run over t; lanes with q ≥ OW (the pw − OW positions
 * between rows) compute values nobody wants, and a compress then a masked store writes the
 * others, which are consecutive in y [OH, OW]. Rows narrower than a vector (LeNet's second
 * conv: OW = 10 in rows of 14) keep 10/14 of the lanes instead of 10/16, and any K works. */
typedef struct flat_vec {
    __mmask16 load, keep; /* lanes inside [t0, t_end); lanes with q < OW */
    int64_t at;           /* y offset of the first kept lane */
    int kept;             /* how many */
} flat_vec;

/* Lanes [lo, hi) ∩ [0, 16) of a vector, as a mask. */
AVX512 static uint32_t lanes_between(int64_t lo, int64_t hi)
{
    lo = lo < 0 ? 0 : lo;
    hi = hi > 16 ? 16 : hi;
    return hi <= lo ? 0 : ((1u << hi) - 1) & ~((1u << lo) - 1);
}

/* The vector of flat positions t0 .. t0 + 16: a row starts at every lane s ≡ −t0 (mod pw) and
 * keeps its first OW lanes. Masks by shifts (one pass per row the vector touches), not a
 * loop over lanes: this runs once per vector of every sample. */
AVX512 static flat_vec flat_vec_at(const conv_geom *g, int64_t t0, int64_t t_end)
{
    int64_t pw = conv_padded_w(g);
    flat_vec v = { (__mmask16)lanes_between(0, t_end - t0), 0, -1, 0 };
    uint32_t keep = 0;
    for (int64_t s = -(t0 % pw); s < 16; s += pw)
        keep |= lanes_between(s, s + g->ow);
    keep &= v.load;
    v.keep = (__mmask16)keep;
    v.kept = __builtin_popcount(keep);
    if (keep) {
        int64_t t = t0 + __builtin_ctz(keep);
        v.at = t / pw * g->ow + t % pw;
    }
    return v;
}

/* Flat positions t0 .. t0 + 32 (v[0], v[1]; the second unused unless `two`) of nb filters
 * from f0. Inlined with nb and `two` constants (forward_avx512's switch). */
AVX512 static inline __attribute__((always_inline)) void block512(
    const conv_geom *g, const float *w, const float *b, const float *in, const int64_t *off,
    int64_t f0, int nb, bool two, const flat_vec *v, float *y)
{
    __m512 acc[FB512][2];
    const float *wf = w + f0 * g->k;
    for (int t = 0; t < nb; t++)
        acc[t][0] = acc[t][1] = _mm512_set1_ps(b ? b[f0 + t] : 0.0f);
    for (int64_t r = 0; r < g->k; r++) {
        __m512 x0 = _mm512_maskz_loadu_ps(v[0].load, in + off[r]);
        __m512 x1 = two ? _mm512_maskz_loadu_ps(v[1].load, in + off[r] + 16) : x0;
        for (int t = 0; t < nb; t++) {
            __m512 wv = _mm512_set1_ps(wf[t * g->k + r]);
            acc[t][0] = _mm512_fmadd_ps(wv, x0, acc[t][0]);
            if (two)
                acc[t][1] = _mm512_fmadd_ps(wv, x1, acc[t][1]);
        }
    }
    if (g->relu) /* max(0, y): NaN and −0 pass as in ops/relu.c */
        for (int t = 0; t < nb; t++) {
            acc[t][0] = _mm512_max_ps(_mm512_setzero_ps(), acc[t][0]);
            acc[t][1] = _mm512_max_ps(_mm512_setzero_ps(), acc[t][1]);
        }
    for (int t = 0; t < nb; t++)
        for (int i = 0; i < (two ? 2 : 1); i++)
            if (v[i].kept)
                _mm512_mask_storeu_ps(y + (f0 + t) * g->oh * g->ow + v[i].at,
                                      (__mmask16)((1u << v[i].kept) - 1),
                                      _mm512_maskz_compress_ps(v[i].keep, acc[t][i]));
}

#define BLOCK512(nb)                                         \
    case nb:                                                 \
        if (two)                                             \
            block512(g, w, b, in, off, f0, nb, true, v, y);  \
        else                                                 \
            block512(g, w, b, in, off, f0, nb, false, v, y); \
        break;

AVX512 static void forward_avx512(const conv_geom *g, const float *w, const float *b,
                                  const float *xp, const int64_t *off, float *y, int64_t p0,
                                  int64_t p1)
{
    /* Filters in blocks of equal size, at most FB512: 30 filters as 8, 8, 8, 6. */
    int64_t blocks = (g->f + FB512 - 1) / FB512, per = (g->f + blocks - 1) / blocks;
    int64_t pw = conv_padded_w(g), t_end = (p1 - 1) * pw + g->ow;
    for (int64_t t0 = p0 * pw; t0 < t_end; t0 += 32) {
        flat_vec v[2] = { flat_vec_at(g, t0, t_end), flat_vec_at(g, t0 + 16, t_end) };
        bool two = t_end - t0 > 16;
        const float *in = xp + t0;
        for (int64_t f0 = 0; f0 < g->f; f0 += per)
            switch (g->f - f0 < per ? g->f - f0 : per) {
                CASES_1_TO_8(BLOCK512)
            }
    }
}

/* ---------------------------------------------------------------- the AVX-512 dW
 *
 * The same flat positions as the forward: dW[f, r] += Σ_t dyf[f, t] · xp[t + off[r]], where
 * dyf is dy_n laid out flat (row p at t = p·pw; the lanes between rows hold zeros) and only
 * the lanes with q < OW (the flat vector's `keep` mask) add: a masked multiply-add, so that an
 * inf that only a between-rows lane reads cannot make 0 · inf = NaN. A block is DWF filters ×
 * DWR taps, 20 accumulators while the vectors of a chunk pass (9 loads for 20 multiply-adds);
 * the accumulators are the thread's lanes for those entries, loaded before and stored after,
 * so that no sum of 16 lanes is taken per sample (DW_LANES_MAX, ops/conv.h). */
enum { DWF = 4, DWR = 5 };

/* rows × cols floats from src (rows src_ld apart) to dst (rows dst_ld apart), by masked
 * vectors: the rows here are short (LeNet's 10 and 28), where a memcpy call per row costs
 * more than the copy. Only those floats are written. */
AVX512 static void copy_rows(const float *src, int64_t src_ld, float *dst, int64_t dst_ld,
                             int64_t rows, int64_t cols)
{
    for (int64_t p = 0; p < rows; p++)
        for (int64_t q = 0; q < cols; q += 16) {
            __mmask16 m = (__mmask16)lanes_between(0, cols - q);
            _mm512_mask_storeu_ps(dst + p * dst_ld + q, m,
                                  _mm512_maskz_loadu_ps(m, src + p * src_ld + q));
        }
}

/* dy_n [F, OH, OW] into the flat layout dyf [F, nvec·16]: row p of filter f at f·nvec·16 +
 * p·pw. Only the rows are written: the zeros between them and after the last are the ones
 * backward_range wrote once for the thread's samples. (An expanding load per vector was as
 * slow as the multiply-adds it fed.) */
AVX512 static void flatten_dy(const conv_geom *g, const float *dy, int64_t nvec, float *dyf)
{
    for (int64_t f = 0; f < g->f; f++)
        copy_rows(dy + f * g->p, g->ow, dyf + f * nvec * 16, conv_padded_w(g), g->oh, g->ow);
}

/* Lanes of filters f0 .. f0 + nb × taps r0 .. r0 + nt (nt ≤ DWR; the block computes DWR taps,
 * the unused ones repeating r0, and stores nt) += the chunk's nv vectors. Inlined with nb a
 * constant (dw_avx512's switch). */
AVX512 static inline __attribute__((always_inline)) void dw_block512(
    const conv_geom *g, const float *dyf, int64_t fs, const __mmask16 *keep, int64_t nv,
    const float *x, const int64_t *off, int64_t f0, int nb, int64_t r0, int64_t nt, float *lanes)
{
    /* K in a local: every vector store may alias g (the vector types are may_alias), and the
     * compiler reloaded it for each lane address. With it local, GCC 12 turns a rolled store
     * loop over contiguous lanes into a copy through the stack (rep movs): the store loop is
     * unrolled instead (conv2's backward 1.22–1.46 → 1.11–1.21 ms, 1 thread, 4 rounds). */
    const int64_t k = g->k;
    __m512 acc[DWF][DWR];
    const float *at[DWR];
    for (int r = 0; r < DWR; r++)
        at[r] = x + off[r0 + (r < nt ? r : 0)];
    for (int f = 0; f < nb; f++)
        for (int r = 0; r < DWR; r++)
            acc[f][r] =
                r < nt ? _mm512_load_ps(lanes + ((f0 + f) * k + r0 + r) * 16) : _mm512_setzero_ps();
    for (int64_t v = 0; v < nv; v++) {
        __m512 d[DWF];
        for (int f = 0; f < nb; f++)
            d[f] = _mm512_load_ps(dyf + (f0 + f) * fs + v * 16);
        for (int r = 0; r < DWR; r++) {
            __m512 xv = _mm512_loadu_ps(at[r] + v * 16);
            for (int f = 0; f < nb; f++)
                acc[f][r] = _mm512_mask3_fmadd_ps(d[f], xv, acc[f][r], keep[v]);
        }
    }
    for (int f = 0; f < nb; f++)
#pragma GCC unroll 8
        for (int r = 0; r < DWR; r++)
            if (r < nt)
                _mm512_store_ps(lanes + ((f0 + f) * k + r0 + r) * 16, acc[f][r]);
}

#define DW_BLOCK512(nb) \
    case nb: dw_block512(g, dyf, nvec * 16, keep, nv, x, off, f0, nb, r0, nt, s->lanes); break;

/* The thread's lanes += one sample's share (the AVX2 loops into s->dw when the slot has no
 * lanes). The reads of the last vector run up to 15 floats past the flat positions' end:
 * within the padded copy's slack (conv_padded_size), their lanes masked out. */
AVX512 static void dw_avx512(const conv_geom *g, const float *dy, const float *xp,
                             const int64_t *off, const conv_slot *s)
{
    if (!s->lanes) {
        dw_avx2(g, dy, xp, off, s);
        return;
    }
    int64_t pw = conv_padded_w(g), t_end = (g->oh - 1) * pw + g->ow;
    int64_t nvec = conv_flat_vectors(g);
    /* Filters in blocks of equal size, at most DWF: 6 filters as 3, 3; 16 as 4 × 4. */
    int64_t blocks = (g->f + DWF - 1) / DWF, per = (g->f + blocks - 1) / blocks;
    flatten_dy(g, dy, nvec, s->flat_dy);
    __mmask16 keep[DW_CHUNK];
    for (int64_t c0 = 0; c0 < nvec; c0 += DW_CHUNK) {
        int64_t nv = nvec - c0 < DW_CHUNK ? nvec - c0 : DW_CHUNK;
        for (int64_t v = 0; v < nv; v++)
            keep[v] = flat_vec_at(g, (c0 + v) * 16, t_end).keep;
        const float *x = xp + c0 * 16, *dyf = s->flat_dy + c0 * 16;
        for (int64_t f0 = 0; f0 < g->f; f0 += per)
            for (int64_t r0 = 0; r0 < g->k; r0 += DWR) {
                int64_t nt = g->k - r0 < DWR ? g->k - r0 : DWR;
                switch (g->f - f0 < per ? g->f - f0 : per) {
                    CASES_1_TO_4(DW_BLOCK512)
                }
            }
    }
}

/* ---------------------------------------------------------------- the AVX-512 dx
 *
 * dx is a correlation too: with dy_n padded to dyp [F, H + dh·(kh − 1), W + dw·(kw − 1)]
 * (dy row p at row p + dh·(kh − 1) − ph, column q at q + dw·(kw − 1) − pw, zeros around),
 *   dx[c, h, w] += Σ_{f,i,j} wflip[c, f, i, j] · dyp[f, h + i·dh, w + j·dw],
 *   wflip[c, f, i, j] = W[f, c, kh − 1 − i, kw − 1 − j].
 * Row by row (16 outputs of a row a vector, DXC channels a block), skipping the kernel rows
 * that read only padding rows of dyp (LeNet's second conv: 50 of the 70 (row, i) pairs
 * read data). This replaces the per-sample path's product dcol = Wᵀ·dy_n and col2im's
 * scattered adds with one pass whose sums stay in registers. */
enum { DXC = 8 };

/* dy_n into the thread's padded copy: only dy's rows are written, the zeros around them
 * being the ones backward_range wrote once for the thread's samples. */
AVX512 static void pad_dy(const conv_geom *g, const float *dy, float *dyp)
{
    int64_t hd = conv_padded_dy_h(g), wd = conv_padded_dy_w(g);
    int64_t a = g->dh * (g->kh - 1) - g->ph, b = g->dw * (g->kw - 1) - g->pw;
    int64_t p0 = a < 0 ? -a : 0, p1 = g->oh < hd - a ? g->oh : hd - a;
    int64_t q0 = b < 0 ? -b : 0, q1 = g->ow < wd - b ? g->ow : wd - b;
    if (p0 >= p1 || q0 >= q1)
        return;
    for (int64_t f = 0; f < g->f; f++)
        copy_rows(dy + (f * g->oh + p0) * g->ow + q0, g->ow, dyp + (f * hd + p0 + a) * wd + b + q0,
                  wd, p1 - p0, q1 - q0);
}

/* Outputs q0 .. q0 + 16 (mask m) of rows h and, when `two`, h + 1 of channels c0 .. c0 + nb,
 * over kernel rows [i0, i1) (for two rows, the union of both rows' ranges: the rows of dyp
 * outside its data are zeros). Two rows share each weight's broadcast: 2 + nb loads for 2·nb
 * multiply-adds, where one row took 1 + nb for nb. Inlined with nb and `two` constants
 * (dx_avx512's switch). The loads run up to 15 floats past a row's end (the next row, or the
 * copy's slack): lanes that m drops. */
AVX512 static inline __attribute__((always_inline)) void dx_block512(
    const conv_geom *g, const float *wflip, const float *dyp, int64_t h, bool two, int64_t q0,
    __mmask16 m, int64_t c0, int nb, int64_t i0, int64_t i1, float *dx)
{
    int64_t hd = conv_padded_dy_h(g), wd = conv_padded_dy_w(g), kk = g->kh * g->kw;
    int64_t cs = g->f * kk; /* floats between channels of wflip */
    __m512 acc[2][DXC];
    for (int c = 0; c < nb; c++)
        acc[0][c] = acc[1][c] = _mm512_setzero_ps();
    for (int64_t f = 0; f < g->f; f++)
        for (int64_t i = i0; i < i1; i++) {
            const float *row = dyp + (f * hd + h + i * g->dh) * wd + q0;
            const float *wr = wflip + (c0 * g->f + f) * kk + i * g->kw;
            for (int64_t j = 0; j < g->kw; j++) {
                __m512 d0 = _mm512_loadu_ps(row + j * g->dw);
                __m512 d1 = two ? _mm512_loadu_ps(row + wd + j * g->dw) : d0;
                for (int c = 0; c < nb; c++) {
                    __m512 wv = _mm512_set1_ps(wr[c * cs + j]);
                    acc[0][c] = _mm512_fmadd_ps(wv, d0, acc[0][c]);
                    if (two)
                        acc[1][c] = _mm512_fmadd_ps(wv, d1, acc[1][c]);
                }
            }
        }
    for (int r = 0; r < (two ? 2 : 1); r++)
        for (int c = 0; c < nb; c++) {
            float *at = dx + ((c0 + c) * g->h + h + r) * g->w + q0;
            _mm512_mask_storeu_ps(at, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), acc[r][c]));
        }
}

#define DX_BLOCK512(nb)                                                               \
    case nb:                                                                          \
        if (two)                                                                      \
            dx_block512(g, wflip, s->padded_dy, h, true, q0, m, c0, nb, i0, i1, dx);  \
        else                                                                          \
            dx_block512(g, wflip, s->padded_dy, h, false, q0, m, c0, nb, i0, i1, dx); \
        break;

/* Kernel rows i with h + i·dh in dyp's data rows [r0, r1): [*i0, *i1), maybe empty. */
static void data_taps(const conv_geom *g, int64_t h, int64_t r0, int64_t r1, int64_t *i0,
                      int64_t *i1)
{
    *i0 = r0 > h ? (r0 - h + g->dh - 1) / g->dh : 0;
    *i1 = r1 > h ? (r1 - h + g->dh - 1) / g->dh : 0;
    *i1 = *i1 < g->kh ? *i1 : g->kh;
}

AVX512 static void dx_avx512(const conv_geom *g, const float *wflip, const float *dy, float *dx,
                             const conv_slot *s)
{
    pad_dy(g, dy, s->padded_dy);
    /* dyp's rows that hold dy: [r0, r1) */
    int64_t a = g->dh * (g->kh - 1) - g->ph;
    int64_t r0 = a > 0 ? a : 0,
            r1 = a + g->oh < conv_padded_dy_h(g) ? a + g->oh : conv_padded_dy_h(g);
    /* Channels in blocks of equal size, at most DXC: 6 as one block, 12 as 6, 6. */
    int64_t blocks = (g->c + DXC - 1) / DXC, per = (g->c + blocks - 1) / blocks;
    for (int64_t h = 0; h < g->h; h += 2) {
        bool two = h + 1 < g->h;
        int64_t i0, i1, j0, j1;
        data_taps(g, h, r0, r1, &i0, &i1);
        if (two) { /* the union of both rows' ranges */
            data_taps(g, h + 1, r0, r1, &j0, &j1);
            if (j0 < j1) {
                i0 = i0 < i1 && i0 < j0 ? i0 : j0;
                i1 = i1 > j1 ? i1 : j1;
            }
        }
        if (i0 >= i1)
            continue;
        for (int64_t q0 = 0; q0 < g->w; q0 += 16) {
            __mmask16 m = (__mmask16)lanes_between(0, g->w - q0);
            for (int64_t c0 = 0; c0 < g->c; c0 += per)
                switch (g->c - c0 < per ? g->c - c0 : per) {
                    CASES_1_TO_8(DX_BLOCK512)
                }
        }
    }
}

static const conv_direct_kernels avx512_kernels = { "avx512", forward_avx512, dw_avx512, true,
                                                    dx_avx512 };

const conv_direct_kernels *dn_conv_direct_avx512(void)
{
    bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    return has ? &avx512_kernels : NULL;
}
#else
const conv_direct_kernels *dn_conv_direct_avx2(void) { return NULL; }
const conv_direct_kernels *dn_conv_direct_avx512(void) { return NULL; }
#endif

static const conv_direct_kernels plain_kernels = { "plain", forward_plain, dw_plain, false, NULL };

const conv_direct_kernels *dn_conv_direct_plain(void) { return &plain_kernels; }

/* ---------------------------------------------------------------- the path: samples, rows
 * and threads, with either set of loops */

/* Output rows [p0, p1) of one sample. */
static void forward_rows(const conv_direct_kernels *isa, const conv_geom *g, const float *w,
                         const float *b, const float *x, float *y, const conv_slot *s, int64_t p0,
                         int64_t p1)
{
    int64_t off[DIRECT_WIDE_MAX_K];
    tap_offsets(g, off);
    pad_sample(g, x, s->padded);
    isa->forward(g, w, b, s->padded, off, y, p0, p1);
}

/* The thread's dW copy += sample n's share. */
static void dw_sample(const conv_direct_kernels *isa, const conv_geom *g, const float *x,
                      const float *dy, const conv_slot *s)
{
    int64_t off[DIRECT_WIDE_MAX_K];
    tap_offsets(g, off);
    pad_sample(g, x, s->padded);
    isa->dw(g, dy, s->padded, off, s);
}

/* The lanes' use, around a thread's samples: zeroed before, s->dw += the sum of each entry's
 * 16 lanes after (in lane order). */
static bool uses_lanes(const conv_direct_kernels *isa, const conv_slot *s)
{
    return isa->lanes && s->lanes;
}

static void fold_lanes(const conv_geom *g, const conv_slot *s)
{
    for (int64_t e = 0; e < g->f * g->k; e++) {
        float sum = 0.0f;
        for (int l = 0; l < 16; l++)
            sum += s->lanes[e * 16 + l];
        s->dw[e] += sum;
    }
}

/* What every range of a direct loop reads: the loops, the pass, the kernel. */
typedef struct direct_job {
    const conv_direct_kernels *isa;
    const conv_pass *ps;
    const dn_kernel *k;
} direct_job;

/* Items [lo, hi) of the batch's N·OH output rows (item n·OH + p: row p of sample n, every
 * filter), so that threads split the batch, or the rows of a batch smaller than the team. */
static void forward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const direct_job *j = ctx;
    const conv_direct_kernels *isa = j->isa;
    const conv_pass *ps = j->ps;
    const dn_kernel *k = j->k;
    const conv_geom *g = ps->g;
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    conv_slot s = conv_slot_of(ps->l, ps->work, part->slot);
    for (int64_t it = lo; it < hi;) {
        int64_t n = it / g->oh, p0 = it % g->oh;
        int64_t p1 = g->oh - p0 < hi - it ? g->oh : p0 + (hi - it);
        forward_rows(isa, g, w, b, x + n * g->xs, dn_f32(k->y) + n * g->ys, &s, p0, p1);
        it += p1 - p0;
    }
}

/* Items [lo, hi) of the batch's N·G (sample, group) pairs, sample-major: item n·G + gi is
 * every output row of group gi of sample n, on one thread. Sample-major keeps the reads of x
 * and the writes of y sequential (group gi + 1 of a sample follows group gi in memory); the
 * group-major order jumped a whole sample between items, and depthwise groups ran at 0.74 of
 * an ungrouped Conv of the same bytes (bench/conv_groups.py). */
static void forward_groups_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const direct_job *j = ctx;
    const conv_direct_kernels *isa = j->isa;
    const conv_pass *ps = j->ps;
    const dn_kernel *k = j->k;
    const conv_geom *g = ps->g;
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    float *y = dn_f32(k->y);
    int64_t xg = g->c * g->h * g->w, wg = g->f * g->k, yg = g->f * g->p;
    conv_slot s = conv_slot_of(ps->l, ps->work, part->slot);
    for (int64_t it = lo; it < hi; it++) {
        int64_t n = it / g->groups, gi = it % g->groups;
        forward_rows(isa, g, w + gi * wg, b ? b + gi * g->f : NULL, x + n * g->xs + gi * xg,
                     y + n * g->ys + gi * yg, &s, 0, g->oh);
    }
}

/* Samples [lo, hi) of the batch: dW and (with the loops' own dx) dx here, the rest as the
 * per-sample path computes it (db; dx without). */
static void backward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const direct_job *j = ctx;
    const conv_direct_kernels *isa = j->isa;
    const conv_pass *ps = j->ps;
    const dn_kernel *k = j->k;
    const conv_geom *g = ps->g;
    const float *x = dn_f32(&k->x[0]), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    bool dw = k->dx[1].data, db = k->n_inputs > 2 && k->dx[2].data;
    int64_t in = g->xs, out = g->ys;
    conv_slot s = conv_slot_of(ps->l, ps->work, part->slot);
    memset(s.dw, 0, (size_t)(ps->l->dw + ps->l->db) * sizeof(float));
    bool lanes = dw && uses_lanes(isa, &s);
    bool direct_dx = dx && isa->dx;
    /* The flat and the padded dy get their zeros here, once: each sample rewrites only its
     * rows of them. */
    if (lanes) {
        memset(s.lanes, 0, (size_t)ps->l->lanes * sizeof(float));
        memset(s.flat_dy, 0, (size_t)ps->l->flat_dy * sizeof(float));
    }
    if (direct_dx)
        memset(s.padded_dy, 0, (size_t)ps->l->padded_dy * sizeof(float));
    for (int64_t n = lo; n < hi; n++) {
        if (dw)
            dw_sample(isa, g, x + n * in, dy + n * out, &s);
        if (direct_dx)
            isa->dx(g, ps->work, dy + n * out, dx + n * in, &s);
        dn_conv_sample_backward(ps, x + n * in, dy + n * out, dx && !direct_dx ? dx + n * in : NULL,
                                &s, false, db);
    }
    if (lanes)
        fold_lanes(g, &s);
}

void dn_conv_direct_forward(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *isa)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    conv_slot_layout l = conv_slots(g, &u);
    conv_pass ps = conv_pass_of(g, &u, &l, k->work);
    int64_t rows = g->n * g->oh;
    int team = dn_team(k->threads, conv_direct_work(g), DIRECT_SPLIT_MIN);
    dn_parallel_for(rows, team < rows ? team : (int)rows, forward_range,
                    &(direct_job){ isa, &ps, k });
}

/* Items [lo, hi) of the batch's N·PO pooled rows (PO = OH/2; item n·PO + a: pooled row a of
 * sample n, every filter): conv rows 2a and 2a + 1 into the slot's `out`, then their 2×2
 * max into k->pooled. */
static void forward_pooled_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const direct_job *j = ctx;
    const conv_direct_kernels *isa = j->isa;
    const conv_pass *ps = j->ps;
    const dn_kernel *k = j->k;
    const conv_geom *g = ps->g;
    const float *x = dn_f32(&k->x[0]), *w = dn_f32(&k->x[1]);
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    float *pooled = dn_f32(k->pooled);
    int64_t po = g->oh / 2, qo = g->ow / 2;
    conv_slot s = conv_slot_of(ps->l, ps->work, part->slot);
    for (int64_t it = lo; it < hi;) {
        int64_t n = it / po, a0 = it % po;
        int64_t a1 = po - a0 < hi - it ? po : a0 + (hi - it);
        forward_rows(isa, g, w, b, x + n * g->xs, s.out, &s, 2 * a0, 2 * a1);
        float *yn = pooled + n * g->f * po * qo;
        for (int64_t f = 0; f < g->f; f++)
            dn_pool_max_2x2_rows(s.out + f * g->p, g->ow, qo, a0, a1, yn + f * po * qo);
        it += a1 - a0;
    }
}

void dn_conv_direct_forward_pooled(const dn_kernel *k, const conv_geom *g,
                                   const conv_direct_kernels *isa)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    conv_slot_layout l = conv_slots(g, &u);
    conv_pass ps = conv_pass_of(g, &u, &l, k->work);
    int64_t rows = g->n * (g->oh / 2);
    int team = dn_team(k->threads, conv_direct_work(g), DIRECT_SPLIT_MIN);
    dn_parallel_for(rows, team < rows ? team : (int)rows, forward_pooled_range,
                    &(direct_job){ isa, &ps, k });
}

void dn_conv_direct_forward_groups(const dn_kernel *k, const conv_geom *g,
                                   const conv_direct_kernels *isa, int team)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    conv_slot_layout l = conv_slots(g, &u);
    conv_pass ps = conv_pass_of(g, &u, &l, k->work);
    int64_t items = g->n * g->groups;
    dn_parallel_for(items, team < items ? team : (int)items, forward_groups_range,
                    &(direct_job){ isa, &ps, k });
}

/* wflip [C, F, kh, kw]: wflip[c, f, i, j] = W[f, c, kh − 1 − i, kw − 1 − j]. */
static void flip_weights(const conv_geom *g, const float *w, float *wflip)
{
    int64_t kk = g->kh * g->kw;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t f = 0; f < g->f; f++)
            for (int64_t t = 0; t < kk; t++)
                wflip[(c * g->f + f) * kk + t] = w[(f * g->c + c) * kk + kk - 1 - t];
}

/* Threads split the batch; no index table: dW reads the padded copy, and dx either the
 * padded dy (the loops' own dx) or packs only dy (the per-sample product). The shared area's
 * weights hold wflip or packed Wᵀ (both F·K floats or more). */
void dn_conv_direct_backward(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *isa)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    conv_slot_layout l = conv_slots(g, &u);
    conv_pass ps = conv_pass_of(g, &u, &l, k->work);
    if (k->dx[0].data && isa->dx)
        flip_weights(g, dn_f32(&k->x[1]), ps.work);
    else
        dn_conv_pack_weights_t(k, &ps);
    int team = conv_team_size(g, k->threads);
    int ran = dn_parallel_for(g->n, team, backward_range, &(direct_job){ isa, &ps, k });
    dn_conv_sum_copies(k, &ps, ran);
}
