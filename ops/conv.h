/*
 * conv.h — what Conv's three paths share (not an op: the seams of ops/conv.c, as pool.h is of
 * the pooling family).
 *
 *   x [N, C, H, W]     W [F, C/G, kh, kw]     b [F] (optional)     y [N, F, OH, OW]
 *   y[n,f,p,q] = b[f] + Σ_{c,i,j} W[f,c,i,j] · x[n, g·C/G + c, p·sh − ph + i·dh, q·sw − pw + j·dw]
 *   (g = f / (F/G): the filter's group; G groups, dilation (dh, dw))
 *
 * The paths see one group at a time: conv_geom describes a group's convolution (c = C/G input
 * channels, f = F/G filters), and xs, ys are the strides between samples of the whole x and y,
 * so that a group is a view of x and y (pointers offset to its first channel), never a copy.
 *
 * ops/conv.c parses the attrs, infers the shapes, sizes the workspace and picks a path by the
 * thresholds below; each path is a file of its own, with a forward and a backward entry:
 *   conv_im2col.c   batched: im2col over chunks of the batch, one BLIS product per chunk
 *   conv_packed.c   per sample: one product per sample on BLIS's micro-kernel
 *   conv_direct.c   direct: register-blocked loops for thin stride-1 kernels
 * Here: the geometry, the thresholds, the helpers every path needs (inline: they run inside
 * the paths' loops), the workspace layout the per-sample and direct paths share (the same
 * slots, one per thread) and the entry points. Types and inline helpers are named conv_...,
 * functions the library exports dn_conv_... (every symbol of libdagnet starts with dn_).
 */
#ifndef DN_CONV_H
#define DN_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/op.h"
#include "runtime/gemm.h"

/* ---------------------------------------------------------------- geometry */

/* Every size the kernels need, from the shapes of one run. */
typedef struct conv_geom {
    int64_t n, c, h, w, f, kh, kw, oh, ow, sh, sw, ph, pw;
    int64_t dh, dw; /* dilation: tap (i, j) reads x at (p·sh − ph + i·dh, q·sw − pw + j·dw) */
    int64_t groups; /* G: the op runs the paths once per group on these sizes */
    int64_t xs, ys; /* floats between samples of x [N, C, H, W] and y [N, F, OH, OW] */
    int64_t k, p;   /* col is k × p: k = c·kh·kw, p = oh·ow */
    bool relu;      /* inference epilogue: y = ReLU(y), applied by the path while the block is
                     * in cache (conv.c sets it from dn_kernel.epilogue; false otherwise) */
} conv_geom;

/* One group's geometry: c = w->d[1] = C/G channels and F/G filters; ungrouped and undilated
 * until conv_geom_group says otherwise. */
static inline conv_geom conv_geom_make(const dn_shape *x, const dn_shape *w, const dn_shape *y,
                                       const int64_t stride[2], const int64_t pad[2])
{
    conv_geom g = { .n = x->d[0],
                    .c = w->d[1],
                    .h = x->d[2],
                    .w = x->d[3],
                    .f = w->d[0],
                    .kh = w->d[2],
                    .kw = w->d[3],
                    .oh = y->d[2],
                    .ow = y->d[3],
                    .sh = stride[0],
                    .sw = stride[1],
                    .ph = pad[0],
                    .pw = pad[1],
                    .dh = 1,
                    .dw = 1,
                    .groups = 1 };
    g.k = g.c * g.kh * g.kw;
    g.p = g.oh * g.ow;
    g.xs = x->d[1] * g.h * g.w;
    g.ys = g.f * g.p;
    return g;
}

/* The geometry of one of `groups` groups with dilation [dh, dw]: F/G filters per group. */
static inline conv_geom conv_geom_group(conv_geom g, int64_t groups, const int64_t dilation[2])
{
    g.groups = groups > 0 ? groups : 1;
    g.dh = dilation[0];
    g.dw = dilation[1];
    g.ys = g.f * g.p; /* all F filters */
    g.f /= g.groups;
    return g;
}

/* Row r = (c·kh + i)·kw + j of col: the channel and the kernel position it reads. */
typedef struct conv_tap {
    int64_t c, i, j;
} conv_tap;

static inline conv_tap conv_tap_of(const conv_geom *g, int64_t r)
{
    return (conv_tap){ r / (g->kh * g->kw), r / g->kw % g->kh, r % g->kw };
}

/* The input row (column) offset of kernel row i (column j): dilation spreads the taps. */
static inline int64_t conv_tap_h(const conv_geom *g, int64_t i) { return i * g->dh; }
static inline int64_t conv_tap_w(const conv_geom *g, int64_t j) { return j * g->dw; }

/* ---------------------------------------------------------------- a group as a kernel */

/* Group gi of k as a kernel of its own: every tensor's data offset to the group's first
 * channel (x, dx), filter (W, b, their gradients, y, dy). The shapes stay the whole op's; the
 * paths read sizes only from the geometry, strides between samples from xs and ys. */
typedef struct conv_group_view {
    dn_kernel k;
    dn_tensor x[3], dx[3], y, dy;
} conv_group_view;

static inline void *conv_offset(void *data, int64_t floats)
{
    return data ? (float *)data + floats : NULL;
}

static inline void conv_group_view_of(const dn_kernel *k, const conv_geom *g, int64_t gi,
                                      conv_group_view *v)
{
    v->k = *k;
    int64_t xo = gi * g->c * g->h * g->w, wo = gi * g->f * g->k, bo = gi * g->f,
            yo = gi * g->f * g->p;
    int64_t offs[3] = { xo, wo, bo };
    for (int i = 0; i < k->n_inputs; i++) {
        v->x[i] = k->x[i];
        v->x[i].data = conv_offset(k->x[i].data, offs[i]);
        if (k->dx) {
            v->dx[i] = k->dx[i];
            v->dx[i].data = conv_offset(k->dx[i].data, offs[i]);
        }
    }
    v->k.x = v->x;
    if (k->dx)
        v->k.dx = v->dx;
    v->y = *k->y;
    v->y.data = conv_offset(k->y->data, yo);
    v->k.y = &v->y;
    if (k->dy) {
        v->dy = *k->dy;
        v->dy.data = conv_offset(k->dy->data, yo);
        v->k.dy = &v->dy;
    }
}

/* ---------------------------------------------------------------- thresholds: which path */

/* Samples per chunk of the batched path. BLIS packs W afresh for each product, so a chunk
 * gives the product at least CHUNK_MIN_COLS columns (nc·P) to spread that packing over,
 * within CHUNK_MAX_BYTES of col and Y', at least one sample, in chunks of equal size (so
 * that the last is not a sliver). Measured on AlexNet at batch 16 (2 threads, Zen 5): chunks
 * of at most 8 MB (conv3-conv5 two to four samples, 338-676 columns) ran those convs at
 * 57-73 % of BLIS on the whole product, the whole batch (2704 columns) at 78-98 %; a
 * training step's median over 6 alternated rounds went from 670 to 579 ms, inference from
 * 208 to 202 (8 rounds). Keeping col in cache between im2col and the product, the reason for
 * the small chunks, counted for less. */
#define CHUNK_MIN_COLS 8192
#define CHUNK_MAX_BYTES ((int64_t)128 << 20)

static inline int64_t conv_chunk_samples(const conv_geom *g)
{
    int64_t per_sample = (g->k + g->f) * g->p * (int64_t)sizeof(float);
    int64_t most = g->p > 0 ? (CHUNK_MIN_COLS + g->p - 1) / g->p : 1;
    int64_t cap = CHUNK_MAX_BYTES / (per_sample > 0 ? per_sample : 1);
    if (most > cap)
        most = cap;
    if (most < 1)
        most = 1;
    int64_t chunks = (g->n + most - 1) / most;
    return (g->n + chunks - 1) / chunks;
}

/* Which convolutions run one product per sample (conv_packed.c) rather than batched:
 *   - thin kernels, K ≤ PER_SAMPLE_THIN_K (LeNet's second conv), always;
 *   - wider ones up to PER_SAMPLE_MAX_K while a sample's col stays within
 *     PER_SAMPLE_MAX_COL_BYTES and the batch gives every thread a sample (at batch 1 on two
 *     threads the per-sample path would leave a core idle; the batched path's BLIS team
 *     splits the product instead). AlexNet's conv2-conv5 (K = 2400-3456, col 2.3-7 MB a
 *     sample), inference at batch 16 on 2 threads, Zen 5 (dagnet bench, 3 rounds each,
 *     alternated, 2026-12-02 07:35 UTC): 237-254 ms batched, 161-181 per sample; conv2 176 →
 *     292 GFLOP/s. Packing each sample's col from the image through the index table saves
 *     writing and re-reading the batched path's col (112 MB for conv2 at batch 16), and each
 *     thread's product runs without the BLIS team's barriers. Past a few MB a sample the
 *     per-thread slots (col and packed col, K·P floats each) cost more memory than the
 *     batched path's chunks, which are capped at CHUNK_MAX_BYTES. */
#define PER_SAMPLE_THIN_K 512
#define PER_SAMPLE_MAX_K 4096
#define PER_SAMPLE_MAX_COL_BYTES ((int64_t)16 << 20)

/* The per-sample and direct paths' index tables hold int32 offsets into one sample. */
static inline bool conv_table_fits(const conv_geom *g) { return g->c * g->h * g->w < INT32_MAX; }

static inline bool conv_is_per_sample(const conv_geom *g, int threads)
{
    if (!conv_table_fits(g))
        return false;
    if (g->k <= PER_SAMPLE_THIN_K)
        return true;
    return g->k <= PER_SAMPLE_MAX_K &&
           g->k * g->p * (int64_t)sizeof(float) <= PER_SAMPLE_MAX_COL_BYTES && g->n >= threads;
}

/* Few input values per output and stride 1 (the first conv of LeNet and SimpleConvNet: one
 * channel, 5×5): im2col would copy each pixel K times to feed a product too thin to pay for
 * it. The direct loops read a zero-padded copy of the sample instead (see conv_direct.c). */
#define DIRECT_MAX_K 32

static inline bool conv_is_direct(const conv_geom *g)
{
    return g->k <= DIRECT_MAX_K && g->sh == 1 && g->sw == 1;
}

/* The wide direct path (AVX-512 machines only: conv.c asks dn_conv_direct_avx512): stride
 * 1, K up to DIRECT_WIDE_MAX_K (LeNet's second conv, 6 channels 5×5: K = 150, rows of 10
 * outputs). Its accumulators stay in registers while the taps stream from L1, where the
 * per-sample path packs col for a product of 16 rows (measured: docs/performance.md). Its
 * backward takes the direct loops too (dW and dx) while the thread's lanes fit (below). */
#define DIRECT_WIDE_MAX_K 256

static inline bool conv_is_direct_wide(const conv_geom *g)
{
    return g->k > DIRECT_MAX_K && g->k <= DIRECT_WIDE_MAX_K && g->sh == 1 && g->sw == 1 &&
           conv_table_fits(g);
}

/* The AVX-512 dW loops keep 16 partial sums of every dW entry per thread (its "lanes", F·K·16
 * floats, summed once at the end of the thread's samples) instead of reducing 16 lanes to
 * one per entry and sample; up to DW_LANES_MAX entries (2 MB of lanes a thread, the size of
 * an L2), else the AVX2 loops. They read dy in the flat layout of the forward (rows padded to
 * the padded width, conv_direct.c: conv_flat_vectors vectors of 16 a filter), DW_CHUNK
 * vectors at a time. */
#define DW_LANES_MAX 32768
#define DW_CHUNK 32

static inline bool conv_dw_lanes_fit(const conv_geom *g) { return g->f * g->k <= DW_LANES_MAX; }

static inline int64_t conv_flat_vectors(const conv_geom *g)
{
    int64_t flat = (g->oh - 1) * (g->w + 2 * g->pw) + g->ow; /* (OH − 1)·padded width + OW */
    return (flat + 15) / 16;
}

/* The direct forward's work in multiply-adds, and the work from which it splits a sample's
 * rows among threads (conv_direct.c); conv.c gives small direct groups (depthwise) a thread
 * each instead, below that. */
#define DIRECT_SPLIT_MIN (8 * (int64_t)32768)

static inline int64_t conv_direct_work(const conv_geom *g)
{
    return g->n * g->oh * g->ow * g->f * g->k;
}

/* Building a table costs about what packing one sample the plain way (im2col, then pack)
 * does; below this many samples a pass packs the plain way. The table builders keep a panel's
 * positions (or taps) on the stack, up to TABLE_NR_MAX of them: BLIS's single-precision
 * micro-kernels are at most 32 wide, and a wider one would pack the plain way. */
#define TABLE_MIN_BATCH 4
#define TABLE_NR_MAX 64

static inline bool conv_use_table(const conv_geom *g, const dn_ukernel *u)
{
    return g->n >= TABLE_MIN_BATCH && u->nr <= TABLE_NR_MAX;
}

/* ---------------------------------------------------------------- the direct path's copy */

/* The direct forward keeps QB = 16 outputs of a row in registers (its block, conv_direct.c):
 * QB floats of slack after the padded copy take the lanes that run past a row's end. */
#define CONV_QB 16

static inline int64_t conv_padded_w(const conv_geom *g) { return g->w + 2 * g->pw; }
static inline int64_t conv_padded_h(const conv_geom *g) { return g->h + 2 * g->ph; }
/* Floats of the padded copy, with QB of slack for the lanes that run past a row's end. */
static inline int64_t conv_padded_size(const conv_geom *g)
{
    return g->c * conv_padded_h(g) * conv_padded_w(g) + CONV_QB;
}

/* The direct dx reads dy_n padded so that it is a stride-1 correlation with no bounds
 * (conv_direct.c): [F, H + dh·(kh − 1), W + dw·(kw − 1)], with QB floats of slack. */
static inline int64_t conv_padded_dy_h(const conv_geom *g) { return g->h + g->dh * (g->kh - 1); }
static inline int64_t conv_padded_dy_w(const conv_geom *g) { return g->w + g->dw * (g->kw - 1); }
static inline int64_t conv_padded_dy_size(const conv_geom *g)
{
    return g->f * conv_padded_dy_h(g) * conv_padded_dy_w(g) + CONV_QB;
}

/* ---------------------------------------------------------------- per-thread slots
 *
 * The per-sample path's workspace, which the direct path shares: shared by all threads, the
 * packed weights and an index table; then one slot per thread. Threads split the batch (or,
 * direct forward, its output rows); each works in its own slot and adds dW and db into its
 * own copies, summed in thread order at the end. */

static inline int conv_team_size(const conv_geom *g, int threads)
{
    return g->n < threads ? (int)g->n : threads;
}

typedef struct conv_slot_layout {
    int64_t weights;         /* packed W (forward) or packed Wᵀ (backward) */
    int64_t table;           /* where each packed col entry comes from (int32) */
    int64_t shared;          /* the two above */
    int64_t sample;          /* x_n [C, H, W] and one 0 after it, for padding */
    int64_t col, packed_col; /* dcol [K, P]; col_n packed as B (forward) or Bᵀ (dW) */
    int64_t packed_dy_a, packed_dy_b, dw, db;
    int64_t padded;     /* the direct path's padded sample (0 otherwise) */
    int64_t out;        /* the direct path's y_n [F, OH, OW] before the pooling epilogue */
    int64_t lanes;      /* the direct path's dW lanes [F, K, 16] (0 when they do not fit) */
    int64_t flat_dy;    /* the direct path's dy_n in the flat layout [F, conv_flat_vectors·16] */
    int64_t padded_dy;  /* the direct path's dy_n padded for dx (conv_padded_dy_size) */
    int64_t per_thread; /* the sum of the slot's arrays (floats) */
} conv_slot_layout;

/* Sizes rounded up to 16 floats keep every array 64-byte aligned. */
static inline int64_t conv_r16(int64_t n) { return (n + 15) / 16 * 16; }

static inline int64_t conv_larger(int64_t a, int64_t b) { return a > b ? a : b; }

static inline conv_slot_layout conv_slots(const conv_geom *g, const dn_ukernel *u)
{
    conv_slot_layout s;
    int64_t cb = dn_packed_size(g->p, g->k, u->nr), ct = dn_packed_size(g->k, g->p, u->nr);
    s.weights =
        conv_r16(conv_larger(dn_packed_size(g->f, g->k, u->mr), dn_packed_size(g->k, g->f, u->mr)));
    s.table = conv_r16(conv_larger(cb, ct)); /* int32 entries, the size of floats */
    s.shared = s.weights + s.table;
    s.sample = conv_r16(g->c * g->h * g->w + 1);
    s.col = conv_r16(g->k * g->p);
    s.packed_col = conv_r16(conv_larger(cb, ct));
    s.packed_dy_a = conv_r16(dn_packed_size(g->f, g->p, u->mr));
    s.packed_dy_b = conv_r16(dn_packed_size(g->p, g->f, u->nr));
    s.dw = conv_r16(g->f * g->k);
    s.db = conv_r16(g->f);
    bool direct = conv_is_direct(g) || conv_is_direct_wide(g);
    s.padded = direct ? conv_r16(conv_padded_size(g)) : 0;
    s.out = direct ? conv_r16(g->f * g->p) : 0;
    bool lanes = direct && conv_dw_lanes_fit(g);
    s.lanes = lanes ? g->f * g->k * 16 : 0;
    s.flat_dy = lanes ? g->f * conv_flat_vectors(g) * 16 : 0;
    s.padded_dy = direct ? conv_r16(conv_padded_dy_size(g)) : 0;
    s.per_thread = s.sample + s.col + s.packed_col + s.packed_dy_a + s.packed_dy_b + s.dw + s.db +
                   s.padded + s.out + s.lanes + s.flat_dy + s.padded_dy;
    return s;
}

/* BLIS's micro-kernels load packed B with aligned loads: the slots start 64-byte aligned
 * (workspace_size adds the 64 bytes this may skip). */
static inline float *conv_aligned_work(void *work)
{
    uintptr_t at = ((uintptr_t)work + 63) / 64 * 64;
    return (float *)at;
}

typedef struct conv_slot {
    float *sample, *col, *packed_col, *packed_dy_a, *packed_dy_b, *dw, *db, *padded, *out;
    float *lanes, *flat_dy, *padded_dy; /* NULL when the layout has none */
} conv_slot;

static inline conv_slot conv_slot_of(const conv_slot_layout *l, float *work, int t)
{
    float *base = work + l->shared + t * l->per_thread;
    conv_slot s = { .sample = base };
    s.col = s.sample + l->sample;
    s.packed_col = s.col + l->col;
    s.packed_dy_a = s.packed_col + l->packed_col;
    s.packed_dy_b = s.packed_dy_a + l->packed_dy_a;
    s.dw = s.packed_dy_b + l->packed_dy_b;
    s.db = s.dw + l->dw;
    s.padded = s.db + l->db;
    s.out = s.padded + l->padded;
    s.lanes = l->lanes ? s.out + l->out : NULL;
    s.flat_dy = l->flat_dy ? s.out + l->out + l->lanes : NULL;
    s.padded_dy = l->padded_dy ? s.out + l->out + l->lanes + l->flat_dy : NULL;
    return s;
}

/* One pass of the per-sample or the direct path over the batch. */
typedef struct conv_pass {
    const conv_geom *g;
    const dn_ukernel *u;
    const conv_slot_layout *l;
    float *work; /* the aligned workspace: packed weights, table, then the slots */
    const int32_t *table;
    int64_t entries; /* of the table; 0: no table, pack the plain way */
} conv_pass;

static inline conv_pass conv_pass_of(const conv_geom *g, const dn_ukernel *u,
                                     const conv_slot_layout *l, void *work)
{
    float *w = conv_aligned_work(work);
    return (conv_pass){ g, u, l, w, (const int32_t *)(w + l->weights), 0 };
}

/* ---------------------------------------------------------------- the batched path
 * (conv_im2col.c); k->work holds col and Y' */

void dn_conv_im2col_forward(const dn_kernel *k, const conv_geom *g);
void dn_conv_im2col_backward(const dn_kernel *k, const conv_geom *g);

/* Rows of col for one sample x [C, H, W], written at column offset 0 of a col whose rows
 * are `ld` floats apart. The per-sample path packs through it when it has no table. */
void dn_conv_im2col_sample(const conv_geom *g, const float *restrict x, float *restrict col,
                           int64_t ld);

/* dx += col2im(dcol) for one sample dx [C, H, W]; dcol's rows are `ld` floats apart. */
void dn_conv_col2im_sample(const conv_geom *g, const float *restrict dcol, int64_t ld,
                           float *restrict dx);

/* ---------------------------------------------------------------- the per-sample path
 * (conv_packed.c); k->work holds the shared area and the slots */

/* Every group of k (g one group's sizes), one after another, sharing one index table. */
void dn_conv_packed_forward(const dn_kernel *k, const conv_geom *g);
void dn_conv_packed_backward(const dn_kernel *k, const conv_geom *g);

/* What the direct path's backward borrows: its dx and db are the per-sample path's.
 *   pack_weights_t   packs Wᵀ into the pass's shared area, when dx is wanted
 *   sample_backward  adds sample n's share of dW and db into the thread's copies in slot s,
 *                    and of dx into dx_n (dx NULL: not wanted)
 *   sum_copies       dW and db (those wanted) += the team's copies, in thread order */
void dn_conv_pack_weights_t(const dn_kernel *k, const conv_pass *ps);
void dn_conv_sample_backward(const conv_pass *ps, const float *x, const float *dy, float *dx,
                             const conv_slot *s, bool dw, bool db);
void dn_conv_sum_copies(const dn_kernel *k, const conv_pass *ps, int team);
/* Σ v[0 .. n), in lanes (db of one filter of one sample; the depthwise path's too). */
float dn_conv_plane_sum(const float *v, int64_t n);

/* ---------------------------------------------------------------- the direct path
 * (conv_direct.c); k->work as the per-sample path's, each slot with its padded copy
 *
 * The loops come in three sets, the plain C ones (any machine), the AVX2/FMA ones and the
 * AVX-512 ones; the dispatch in conv.c takes the widest the machine has,
 * and a test runs each on any machine that has it. All read a padded sample xp
 * (conv_padded_size floats) and off[r], where tap r of output row 0 reads in xp. */
typedef struct conv_direct_kernels {
    const char *name;
    /* Output rows [p0, p1) of every filter of one sample: y [F, OH, OW]. */
    void (*forward)(const conv_geom *g, const float *w, const float *b, const float *xp,
                    const int64_t *off, float *y, int64_t p0, int64_t p1);
    /* The thread's dW copy s->dw [F, K] += one sample's share, from its dy [F, OH, OW]; loops
     * with `lanes` set add into s->lanes instead when the slot has them (the path zeroes them
     * before the thread's samples and folds them into s->dw after). */
    void (*dw)(const conv_geom *g, const float *dy, const float *xp, const int64_t *off,
               const conv_slot *s);
    bool lanes;
    /* dx_n [C, H, W] += one sample's share, from its dy_n (padded into s->padded_dy) and
     * wflip [C, F, kh, kw] (W with each filter turned half a turn, channels first, as the
     * direct backward lays it out); NULL: dx takes the per-sample path's product. */
    void (*dx)(const conv_geom *g, const float *wflip, const float *dy, float *dx,
               const conv_slot *s);
} conv_direct_kernels;

/* The plain loops. */
const conv_direct_kernels *dn_conv_direct_plain(void);
/* The AVX2/FMA loops, or NULL when this machine (or this build's target) has none. */
const conv_direct_kernels *dn_conv_direct_avx2(void);
/* The AVX-512 loops, or NULL when this machine has no AVX-512F. */
const conv_direct_kernels *dn_conv_direct_avx512(void);

void dn_conv_direct_forward(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *isa);
/* The forward with DN_EPILOGUE_RELU_MAXPOOL2 (g->relu set): each thread computes pairs of
 * output rows into its slot's `out`, while they are in cache pools them into k->pooled
 * [N, F, OH/2, OW/2]; y is never written (and the odd last row of an odd OH never
 * computed). */
void dn_conv_direct_forward_pooled(const dn_kernel *k, const conv_geom *g,
                                   const conv_direct_kernels *isa);
void dn_conv_direct_backward(const dn_kernel *k, const conv_geom *g,
                             const conv_direct_kernels *isa);
/* Every group of a grouped Conv (k and g the whole op's; g one group's sizes) whose groups
 * are too small to split their rows (depthwise): `team` threads share the N·G (sample, group)
 * items out, sample-major, each item on one thread in its own slot. */
void dn_conv_direct_forward_groups(const dn_kernel *k, const conv_geom *g,
                                   const conv_direct_kernels *isa, int team);

/* ---------------------------------------------------------------- the AVX2 dW loops' tail */

#if defined(__x86_64__)
#include <immintrin.h>

/* dw[t] += the sum of acc[t]'s 8 lanes, lane by lane in order, for t < nt: the end of the
 * direct and depthwise paths' AVX2 dW loops, which keep one vector of column sums per tap. */
__attribute__((target("avx2,fma"))) static inline void conv_add_lane_sums(const __m256 *acc,
                                                                          int64_t nt, float *dw)
{
    for (int64_t t = 0; t < nt; t++) {
        float lane[8];
        _mm256_storeu_ps(lane, acc[t]);
        float sum = 0.0f;
        for (int l = 0; l < 8; l++)
            sum += lane[l];
        dw[t] += sum;
    }
}
#endif

/* ---------------------------------------------------------------- the depthwise path
 * (conv_depthwise.c); k->work holds one slot per thread (dn_conv_depthwise_workspace)
 *
 * G > 1 groups of one channel and one filter (g one group's geometry), stride 1, K ≤
 * DIRECT_MAX_K. PyTorch's condition too: an ungrouped Conv of one channel stays on the direct
 * path. */
static inline bool conv_is_depthwise(const conv_geom *g)
{
    return g->groups > 1 && g->c == 1 && g->f == 1 && conv_is_direct(g);
}

/* Two sets of loops, as the direct path's: plain C and AVX2/FMA. in is a padded plane whose
 * rows are ld floats apart, with DW_COLS floats of slack after it; off[t] is where tap t of
 * output (0, 0) reads in it. */
/* What the correlation does with its sums: write them (forward), write their ReLU (forward
 * with the inference epilogue folded in, g->relu) or add them (dx). */
typedef enum conv_dw_out { CONV_DW_WRITE, CONV_DW_WRITE_RELU, CONV_DW_ADD } conv_dw_out;

typedef struct conv_depthwise_kernels {
    const char *name;
    /* out [rows, cols] (=, = ReLU of, +=) bias + Σ_t w[t] · in[p·ld + q + off[t]] (bias 0 to
     * add) */
    void (*correlate)(const float *in, int64_t ld, const int64_t *off, const float *w, int64_t taps,
                      float *out, int64_t rows, int64_t cols, float bias, conv_dw_out mode);
    /* dw[t] += Σ_{p,q} dy[p, q] · in[p·ld + q + off[t]], dy [rows, cols] */
    void (*dw)(const float *dy, int64_t rows, int64_t cols, const float *in, int64_t ld,
               const int64_t *off, int64_t taps, float *dw);
} conv_depthwise_kernels;

const conv_depthwise_kernels *dn_conv_depthwise_plain(void);
/* NULL when this machine (or this build's target) has no AVX2/FMA. */
const conv_depthwise_kernels *dn_conv_depthwise_avx2(void);

size_t dn_conv_depthwise_workspace(const conv_geom *g, int threads);
void dn_conv_depthwise_forward(const dn_kernel *k, const conv_geom *g,
                               const conv_depthwise_kernels *isa);
void dn_conv_depthwise_backward(const dn_kernel *k, const conv_geom *g,
                                const conv_depthwise_kernels *isa);

#endif
