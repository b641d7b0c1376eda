/*
 * conv_packed.c — Conv's per-sample path (ops/conv.h): kernels too thin for one large product
 * to pay (K ≤ PER_SAMPLE_MAX_K: LeNet's second conv) run one product per sample on BLIS's
 * micro-kernel (dn_gemm_packed), on a team that splits the batch.
 *
 *   x_n [C, H, W]     W [F, K = C·kh·kw]     col_n [K, P = OH·OW]     y_n [F, P]
 *   forward    y_n = W · col_n + b
 *   backward   dW += dy_n · col_nᵀ           db[f] += Σ_p dy_n[f, p]
 *              dcol = Wᵀ · dy_n              dx_n += col2im(dcol)
 *
 * col_n is packed straight from the image through an index table built once per pass (from
 * TABLE_MIN_BATCH samples on; fewer pack the plain way, im2col then pack). W (forward) or Wᵀ
 * (backward, for dx) is packed once into the workspace's shared area. y_n is written in
 * place, and each thread adds dW and db into its own copy in its slot, summed in thread order
 * at the end (the same bits on every run with the same threads).
 *
 * The direct path (conv_direct.c) shares the slots, and borrows dx and db from here:
 * dn_conv_pack_weights_t, dn_conv_sample_backward and dn_conv_sum_copies.
 */
#include <string.h>

#include "ops/conv.h"
#include "runtime/gemm.h"
#include "runtime/parallel.h"

/* ---------------------------------------------------------------- packing col_n */

/* Packing col_n straight from the image: im2col and packing in one gather through a table
 * built once per pass. Entry t of the table is the offset in x_n [C, H, W] that packed
 * entry t reads, or C·H·W — the zero stored after the sample's copy — for padding: col
 * entry (r, p), tap r = (ch, i, j) and position p = (oh, ow), reads input row
 * oh·sh − ph + i·dh and column ow·sw − pw + j·dw of channel ch when they lie inside the image.
 * The builders walk taps and positions in order rather than dividing for each entry (a table
 * has K·P entries: 1.1 M for AlexNet's first conv, built each pass). */

/* A position's (or a tap's) offset from the input row and column, and one that no in-range
 * offset can reach: entries beyond P (or K) in the last panel read the zero. */
#define OFF_BEYOND (-((int64_t)1 << 40))

/* The entry for input row ih and column iw of channel base cb (= ch·H), or the zero. */
static inline int32_t table_entry(const conv_geom *g, int64_t cb, int64_t ih, int64_t iw,
                                  int32_t zero)
{
    return ih >= 0 && ih < g->h && iw >= 0 && iw < g->w ? (int32_t)((cb + ih) * g->w + iw) : zero;
}

/* Panels [lo, hi) of the table for col_n packed as B [K×P] (forward: panels of nr
 * positions). */
static void table_for_b(const conv_geom *g, int nr, int32_t *tab, int64_t lo, int64_t hi)
{
    tab += lo * nr * g->k;
    int32_t zero = (int32_t)(g->c * g->h * g->w);
    int64_t ih0[TABLE_NR_MAX], iw0[TABLE_NR_MAX];
    for (int64_t q = lo * nr; q < hi * nr; q += nr) {
        for (int64_t l = 0; l < nr; l++) {
            int64_t p = q + l;
            ih0[l] = p < g->p ? p / g->ow * g->sh - g->ph : OFF_BEYOND;
            iw0[l] = p < g->p ? p % g->ow * g->sw - g->pw : OFF_BEYOND;
        }
        for (int64_t ch = 0; ch < g->c; ch++)
            for (int64_t i = 0; i < g->kh; i++)
                for (int64_t j = 0; j < g->kw; j++) {
                    int64_t di = conv_tap_h(g, i), dj = conv_tap_w(g, j);
                    for (int64_t l = 0; l < nr; l++)
                        *tab++ = table_entry(g, ch * g->h, ih0[l] + di, iw0[l] + dj, zero);
                }
    }
}

/* Panels [lo, hi) of the table for col_nᵀ packed as B [P×K] (dW: panels of nr rows of col). */
static void table_for_bt(const conv_geom *g, int nr, int32_t *tab, int64_t lo, int64_t hi)
{
    tab += lo * nr * g->p;
    int32_t zero = (int32_t)(g->c * g->h * g->w);
    int64_t cb[TABLE_NR_MAX], di[TABLE_NR_MAX], dj[TABLE_NR_MAX];
    for (int64_t q = lo * nr; q < hi * nr; q += nr) {
        for (int64_t l = 0; l < nr; l++) {
            int64_t r = q + l;
            conv_tap t = conv_tap_of(g, r < g->k ? r : 0);
            cb[l] = t.c * g->h;
            di[l] = r < g->k ? conv_tap_h(g, t.i) - g->ph : OFF_BEYOND;
            dj[l] = r < g->k ? conv_tap_w(g, t.j) - g->pw : OFF_BEYOND;
        }
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++)
                for (int64_t l = 0; l < nr; l++)
                    *tab++ = table_entry(g, cb[l], oh * g->sh + di[l], ow * g->sw + dj[l], zero);
    }
}

typedef struct table_ctx {
    const conv_geom *g;
    int nr;
    bool transposed;
    int32_t *tab;
} table_ctx;

static void table_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const table_ctx *j = ctx;
    (void)part;
    if (j->transposed)
        table_for_bt(j->g, j->nr, j->tab, lo, hi);
    else
        table_for_b(j->g, j->nr, j->tab, lo, hi);
}

/* Tables are K·P entries: threads split the panels. */
static void build_table(const conv_geom *g, int nr, bool transposed, int32_t *tab, int threads)
{
    int64_t panels = ((transposed ? g->k : g->p) + nr - 1) / nr;
    int team = dn_team(threads, panels * nr * (transposed ? g->p : g->k), DN_PARALLEL_MIN / 4);
    dn_parallel_for(panels, team, table_job,
                    &(table_ctx){ .g = g, .nr = nr, .transposed = transposed, .tab = tab });
}

static void gather(const int32_t *restrict tab, int64_t n, const float *restrict src,
                   float *restrict dst)
{
    for (int64_t t = 0; t < n; t++)
        dst[t] = src[tab[t]];
}

/* Pack sample x_n into `packed`: as B [K×P] (forward) or as Bᵀ [P×K] (transposed, for dW);
 * through the table when the pass has one (entries > 0). */
static void pack_sample(const conv_geom *g, const dn_ukernel *u, const int32_t *tab,
                        int64_t entries, bool transposed, const float *x, const conv_slot *s,
                        float *packed)
{
    if (entries == 0) {
        dn_conv_im2col_sample(g, x, s->col, g->p);
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

/* ---------------------------------------------------------------- forward */

/* y_n [F, P] = W · col_n + b (then ReLU, with g->relu), on the calling thread. */
static void forward_sample(const conv_pass *ps, const float *b, const float *x, float *y,
                           const conv_slot *s)
{
    const conv_geom *g = ps->g;
    pack_sample(g, ps->u, ps->table, ps->entries, false, x, s, s->packed_col);
    for (int64_t f = 0; f < g->f; f++) {
        float bias = b ? b[f] : 0.0f;
        for (int64_t p = 0; p < g->p; p++)
            y[f * g->p + p] = bias;
    }
    dn_gemm_packed(ps->u, g->f, g->p, g->k, ps->work, s->packed_col, 1.0f, y, g->p, 1);
    if (g->relu) /* the inference epilogue while y_n is in cache */
        for (int64_t i = 0; i < g->f * g->p; i++)
            y[i] = dn_relu(y[i]);
}

/* Samples [lo, hi) of the batch, in the range's slot. */
static void forward_range(const conv_pass *ps, const float *x, const float *b, float *y, int slot,
                          int64_t lo, int64_t hi)
{
    const conv_geom *g = ps->g;
    conv_slot s = conv_slot_of(ps->l, ps->work, slot);
    for (int64_t n = lo; n < hi; n++)
        forward_sample(ps, b, x + n * g->xs, y + n * g->ys, &s);
}

/* A loop over the batch (forward or backward): the pass, and the kernel (a group's view). */
typedef struct batch_ctx {
    const conv_pass *ps;
    const dn_kernel *k;
} batch_ctx;

static void forward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const batch_ctx *j = ctx;
    const dn_kernel *k = j->k;
    const float *b = k->n_inputs > 2 ? dn_f32(&k->x[2]) : NULL;
    forward_range(j->ps, dn_f32(&k->x[0]), b, dn_f32(k->y), part->slot, lo, hi);
}

/* Every group in turn (g one group's sizes, G = g->groups: a view of k each), on the team. The
 * table depends only on a group's geometry: one serves every group, built once per pass. */
void dn_conv_packed_forward(const dn_kernel *k, const conv_geom *g)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    conv_slot_layout l = conv_slots(g, &u);
    conv_pass ps = conv_pass_of(g, &u, &l, k->work);
    if (conv_use_table(g, &u)) {
        ps.entries = dn_packed_size(g->p, g->k, u.nr);
        build_table(g, u.nr, false, (int32_t *)ps.table, k->threads);
    }
    for (int64_t gi = 0; gi < g->groups; gi++) {
        conv_group_view v;
        conv_group_view_of(k, g, gi, &v);
        dn_pack_a(&u, dn_f32(&v.k.x[1]), g->k, 1, g->f, g->k, ps.work);
        dn_parallel_for(g->n, conv_team_size(g, k->threads), forward_job,
                        &(batch_ctx){ .ps = &ps, .k = &v.k });
    }
}

/* ---------------------------------------------------------------- backward
 * (dn_conv_sample_backward, dn_conv_sum_copies and dn_conv_pack_weights_t serve the direct
 * path's backward too) */

/* Σ v[0 .. n) in 16 lanes. One float sum term by term is a chain of dependent adds (IEEE
 * order, which the compiler keeps), a few cycles a term: summing LeNet's first conv's dy for
 * db that way took as long as its dW. Independent lanes vectorise (with SSE: no target clones,
 * whose ifunc would export the symbol from the library). */
float dn_conv_plane_sum(const float *v, int64_t n)
{
    float lane[16] = { 0 };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            lane[l] += v[i + l];
    float sum = 0.0f;
    for (int l = 0; l < 16; l++)
        sum += lane[l];
    for (; i < n; i++)
        sum += v[i];
    return sum;
}

/* Add sample n's share of dW and db into the thread's copies, and of dx into dx_n. */
void dn_conv_sample_backward(const conv_pass *ps, const float *x, const float *dy, float *dx,
                             const conv_slot *s, bool dw, bool db)
{
    const conv_geom *g = ps->g;
    if (db)
        for (int64_t f = 0; f < g->f; f++)
            s->db[f] += dn_conv_plane_sum(dy + f * g->p, g->p);
    if (dw) { /* dW [F, K] += dy_n [F, P] · col_nᵀ [P, K] */
        pack_sample(g, ps->u, ps->table, ps->entries, true, x, s, s->packed_col);
        dn_pack_a(ps->u, dy, g->p, 1, g->f, g->p, s->packed_dy_a);
        dn_gemm_packed(ps->u, g->f, g->k, g->p, s->packed_dy_a, s->packed_col, 1.0f, s->dw, g->k,
                       1);
    }
    if (dx) { /* dcol [K, P] = Wᵀ · dy_n, then dx_n += col2im(dcol) */
        dn_pack_b(ps->u, dy, g->p, 1, g->f, g->p, s->packed_dy_b);
        dn_gemm_packed(ps->u, g->k, g->p, g->f, ps->work, s->packed_dy_b, 0.0f, s->col, g->p, 1);
        dn_conv_col2im_sample(g, s->col, g->p, dx);
    }
}

/* Samples [lo, hi) of the batch, the copies of dW and db in the range's slot zeroed first. */
static void backward_range(const conv_pass *ps, const dn_kernel *k, int slot, int64_t lo,
                           int64_t hi)
{
    const conv_geom *g = ps->g;
    const float *x = dn_f32(&k->x[0]), *dy = dn_f32(k->dy);
    float *dx = dn_f32(&k->dx[0]);
    bool dw = k->dx[1].data, db = k->n_inputs > 2 && k->dx[2].data;
    int64_t in = g->xs, out = g->ys;
    conv_slot s = conv_slot_of(ps->l, ps->work, slot);
    memset(s.dw, 0, (size_t)(ps->l->dw + ps->l->db) * sizeof(float));
    for (int64_t n = lo; n < hi; n++)
        dn_conv_sample_backward(ps, x + n * in, dy + n * out, dx ? dx + n * in : NULL, &s, dw, db);
}

static void backward_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const batch_ctx *j = ctx;
    backward_range(j->ps, j->k, part->slot, lo, hi);
}

/* dst[i] += Σ_t (thread t's copy)[i] for i in [lo, hi), t in order. */
static void sum_copies(const conv_pass *ps, int team, bool bias, float *dst, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        float sum = 0.0f;
        for (int t = 0; t < team; t++) {
            conv_slot s = conv_slot_of(ps->l, ps->work, t);
            sum += (bias ? s.db : s.dw)[i];
        }
        dst[i] += sum;
    }
}

typedef struct sum_ctx {
    const conv_pass *ps;
    int team; /* the copies: the backward's team, not this loop's */
    float *dst;
} sum_ctx;

static void sum_dw_job(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    const sum_ctx *j = ctx;
    (void)part;
    sum_copies(j->ps, j->team, false, j->dst, lo, hi);
}

void dn_conv_sum_copies(const dn_kernel *k, const conv_pass *ps, int team)
{
    const conv_geom *g = ps->g;
    float *dw = dn_f32(&k->dx[1]), *db = k->n_inputs > 2 ? dn_f32(&k->dx[2]) : NULL;
    if (dw)
        dn_parallel_for(g->f * g->k, dn_team(team, g->f * g->k, DN_PARALLEL_MIN), sum_dw_job,
                        &(sum_ctx){ .ps = ps, .team = team, .dst = dw });
    if (db)
        sum_copies(ps, team, true, db, 0, g->f);
}

void dn_conv_pack_weights_t(const dn_kernel *k, const conv_pass *ps)
{
    const conv_geom *g = ps->g;
    if (k->dx[0].data)
        dn_pack_a(ps->u, dn_f32(&k->x[1]), 1, g->k, g->k, g->f, ps->work);
}

/* Every group in turn, as forward: one table for all. */
void dn_conv_packed_backward(const dn_kernel *k, const conv_geom *g)
{
    dn_ukernel u;
    dn_ukernel_get(&u);
    conv_slot_layout l = conv_slots(g, &u);
    conv_pass ps = conv_pass_of(g, &u, &l, k->work);
    if (k->dx[1].data && conv_use_table(g, &u)) {
        ps.entries = dn_packed_size(g->k, g->p, u.nr);
        build_table(g, u.nr, true, (int32_t *)ps.table, k->threads);
    }
    int team = conv_team_size(g, k->threads);
    for (int64_t gi = 0; gi < g->groups; gi++) {
        conv_group_view v;
        conv_group_view_of(k, g, gi, &v);
        dn_conv_pack_weights_t(&v.k, &ps);
        int ran = dn_parallel_for(g->n, team, backward_job, &(batch_ctx){ .ps = &ps, .k = &v.k });
        dn_conv_sum_copies(&v.k, &ps, ran);
    }
}
