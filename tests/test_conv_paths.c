/*
 * test_conv_paths.c — each of Conv's paths (ops/conv.h), called through its own entry on the
 * same data, against a plain double-precision loop written here:
 *   - the direct path with its plain loops, which the dispatch never takes on a machine with
 *     AVX2 (this test is what keeps them from rotting), with its AVX2/FMA loops and with its
 *     AVX-512 loops (also for wide kernels, K > DIRECT_MAX_K); each path also with the
 *     inference ReLU epilogue (g->relu);
 *   - the per-sample path (conv_packed.c) and the batched path (conv_im2col.c).
 * Forward y, and backward dx, dW and db (accumulated onto a prefilled value, as the engine
 * asks). The shapes are thin stride-1 kernels, the only ones the direct path takes: widths
 * that are not multiples of 8 or 16 (the vector and block widths), exact multiples, one
 * sample (forward splits its rows), padding, K = 32 (the direct path's limit), with and
 * without bias, filters not a multiple of the block of 3.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv.h"
#include "ops/pool.h"
#include "runtime/rng.h"

extern const dn_op dn_op_conv;

typedef struct shape {
    int64_t n, c, h, w, f, kh, kw, ph, pw;
    bool bias;
    int64_t dh, dw; /* dilation; 0 reads as 1 */
} shape;

static int64_t dil(int64_t d) { return d > 0 ? d : 1; }

/* One path's forward and backward, given the geometry; isa for the direct path only. */
typedef struct path {
    const char *name;
    void (*forward)(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *isa);
    void (*backward)(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *isa);
    const conv_direct_kernels *isa;
} path;

static void packed_forward(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *i)
{
    (void)i;
    dn_conv_packed_forward(k, g);
}

static void packed_backward(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *i)
{
    (void)i;
    dn_conv_packed_backward(k, g);
}

static void im2col_forward(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *i)
{
    (void)i;
    dn_conv_im2col_forward(k, g);
}

static void im2col_backward(const dn_kernel *k, const conv_geom *g, const conv_direct_kernels *i)
{
    (void)i;
    dn_conv_im2col_backward(k, g);
}

static float *floats(int64_t n, uint64_t seed)
{
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = 2.0f * dn_rng_uniform(&rng) - 1.0f;
    return x;
}

static float *filled(int64_t n, float v)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = v;
    return x;
}

/* The reference: every sum in double, each with the sum of its terms' magnitudes (the scale
 * of the rounding a float sum of them may carry). */
typedef struct reference {
    double *y, *y_abs, *dx, *dx_abs, *dw, *dw_abs, *db, *db_abs;
} reference;

static double *zeros(int64_t n) { return calloc((size_t)n, sizeof(double)); }

static reference reference_of(const shape *s, int64_t oh, int64_t ow, const float *x,
                              const float *w, const float *b, const float *dy)
{
    int64_t k = s->c * s->kh * s->kw;
    reference r = { zeros(s->n * s->f * oh * ow),
                    zeros(s->n * s->f * oh * ow),
                    zeros(s->n * s->c * s->h * s->w),
                    zeros(s->n * s->c * s->h * s->w),
                    zeros(s->f * k),
                    zeros(s->f * k),
                    zeros(s->f),
                    zeros(s->f) };
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t f = 0; f < s->f; f++)
            for (int64_t p = 0; p < oh; p++)
                for (int64_t q = 0; q < ow; q++) {
                    int64_t yi = ((n * s->f + f) * oh + p) * ow + q;
                    double g = dy[yi];
                    if (s->bias) {
                        r.y[yi] = b[f], r.y_abs[yi] = fabs(b[f]);
                        r.db[f] += g, r.db_abs[f] += fabs(g);
                    }
                    for (int64_t c = 0; c < s->c; c++)
                        for (int64_t i = 0; i < s->kh; i++)
                            for (int64_t j = 0; j < s->kw; j++) {
                                int64_t hh = p - s->ph + i * dil(s->dh),
                                        ww = q - s->pw + j * dil(s->dw);
                                if (hh < 0 || hh >= s->h || ww < 0 || ww >= s->w)
                                    continue;
                                int64_t xi = ((n * s->c + c) * s->h + hh) * s->w + ww;
                                int64_t wi = ((f * s->c + c) * s->kh + i) * s->kw + j;
                                double xv = x[xi], wv = w[wi];
                                r.y[yi] += wv * xv, r.y_abs[yi] += fabs(wv * xv);
                                r.dw[wi] += g * xv, r.dw_abs[wi] += fabs(g * xv);
                                r.dx[xi] += g * wv, r.dx_abs[xi] += fabs(g * wv);
                            }
                }
    return r;
}

static void reference_free(reference *r)
{
    free(r->y), free(r->y_abs), free(r->dx), free(r->dx_abs);
    free(r->dw), free(r->dw_abs), free(r->db), free(r->db_abs);
}

/* got − base is want, to within float rounding of sums whose terms' magnitudes add to abs. */
static void expect_near(const char *what, const char *path, const float *got, float base,
                        const double *want, const double *abs, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - base - want[i]);
        cr_assert(err <= 1e-5 * abs[i] + 1e-6, "%s, %s: element %lld is %.9g, expected %.9g", path,
                  what, (long long)i, (double)got[i] - base, want[i]);
    }
}

/* The direct loops with the ReLU and 2×2 max-pool epilogue (dn_conv_direct_forward_pooled):
 * MaxPool's selects over the ReLU'd y (relu_y), bit for bit; OH and OW may be odd (floor:
 * the last row and column dropped). */
static void check_pool_epilogue(const path *p, const dn_kernel *k, const conv_geom *g,
                                const float *relu_y, void *work, size_t ws)
{
    int64_t po = g->oh / 2, qo = g->ow / 2, np = g->n * g->f * po * qo;
    int64_t dims[4] = { g->n, g->f, po, qo };
    float *want = filled(np, 0.0f);
    for (int64_t i = 0; i < g->n * g->f; i++)
        dn_pool_max_2x2_rows(relu_y + i * g->p, g->ow, qo, 0, po, want + i * po * qo);
    dn_tensor pooled = { DN_F32, dn_shape_make(4, dims, true), filled(np, NAN) };
    dn_kernel kp = *k;
    kp.pooled = &pooled;
    kp.epilogue = DN_EPILOGUE_RELU_MAXPOOL2;
    memset(work, 0xff, ws);
    dn_conv_direct_forward_pooled(&kp, g, p->isa);
    cr_assert_eq(memcmp(pooled.data, want, (size_t)np * sizeof *want), 0,
                 "%s with the ReLU and max-pool epilogue: not MaxPool of the ReLU'd y", p->name);
    free(pooled.data), free(want);
}

/* The inference epilogue (g->relu, a ReLU folded into the Conv): the path's y with it is
 * ReLU's select (ops/relu.c) of its y without it, bit for bit: the same sums, then the select
 * on them while the block is in cache instead of in a pass of its own. */
static void check_relu_epilogue(const path *p, const dn_kernel *k, const conv_geom *g,
                                const float *y, int64_t ny, void *work, size_t ws)
{
    conv_geom gr = *g;
    gr.relu = true;
    dn_tensor yr = { DN_F32, k->y->shape, filled(ny, NAN) };
    dn_kernel kr = *k;
    kr.y = &yr;
    memset(work, 0xff, ws);
    p->forward(&kr, &gr, p->isa);
    const float *got = yr.data;
    int64_t negative = 0;
    for (int64_t i = 0; i < ny; i++) {
        float want = y[i] < 0.0f ? 0.0f : y[i];
        negative += y[i] < 0.0f;
        cr_assert_eq(memcmp(&got[i], &want, sizeof want), 0,
                     "%s with the ReLU epilogue: element %lld is %.9g, ReLU(%.9g) expected",
                     p->name, (long long)i, (double)got[i], (double)y[i]);
    }
    cr_assert_gt(negative, 0, "the data must have negative outputs for ReLU to clip");
    if (p->forward == dn_conv_direct_forward && g->oh >= 2 && g->ow >= 2)
        check_pool_epilogue(p, &kr, &gr, got, work, ws);
    free(yr.data);
}

/* The shape through every path: y, then dx, dW, db from backward, against the reference. */
static void check_paths(const shape *s, int threads)
{
    char attrs_json[128];
    snprintf(attrs_json, sizeof attrs_json, "{\"pad\": [%lld, %lld], \"dilation\": [%lld, %lld]}",
             (long long)s->ph, (long long)s->pw, (long long)dil(s->dh), (long long)dil(s->dw));
    int n_in = s->bias ? 3 : 2;
    int64_t xd[4] = { s->n, s->c, s->h, s->w }, wd[4] = { s->f, s->c, s->kh, s->kw };
    dn_tensor x[3] = { { DN_F32, dn_shape_make(4, xd, true), NULL },
                       { DN_F32, dn_shape_make(4, wd, false), NULL },
                       { DN_F32, dn_shape_make(1, &s->f, false), NULL } };
    int64_t nx = dn_shape_numel(&x[0].shape), nw = dn_shape_numel(&x[1].shape);
    x[0].data = floats(nx, 1), x[1].data = floats(nw, 2), x[2].data = floats(s->f, 3);

    /* attrs and the output's shape as the loader makes them */
    const char *names[] = { "x", "w", "b" };
    cJSON *json = cJSON_Parse(attrs_json);
    dn_err err = { 0 };
    dn_node_ctx ctx = { .file = "paths.json",
                        .node = "conv",
                        .n_inputs = n_in,
                        .input_names = names,
                        .attrs = json,
                        .err = &err };
    unsigned char attrs[512];
    cr_assert_leq(dn_op_conv.attrs_size, sizeof attrs);
    dn_tensor_desc in[3], out;
    for (int i = 0; i < 3; i++)
        in[i] = (dn_tensor_desc){ DN_F32, x[i].shape };
    cr_assert_eq(dn_op_conv.parse_attrs(&ctx, attrs), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_op_conv.infer(&ctx, attrs, in, &out), DN_OK, "%s", err.msg);
    cJSON_Delete(json);
    const int64_t stride[2] = { 1, 1 }, pad[2] = { s->ph, s->pw };
    const int64_t dilation[2] = { dil(s->dh), dil(s->dw) };
    conv_geom g = conv_geom_group(conv_geom_make(&x[0].shape, &x[1].shape, &out.shape, stride, pad),
                                  1, dilation);
    bool wide = conv_is_direct_wide(&g); /* the direct path on AVX-512 only */
    cr_assert(conv_is_direct(&g) || wide, "the shape must be one the direct path takes (K = %lld)",
              (long long)g.k);

    /* the workspace of the dispatch, or of the batched path when that is larger */
    size_t ws = dn_op_conv.workspace_size(attrs, in, n_in, &out, threads);
    size_t batched = (size_t)((g.k + g.f) * conv_chunk_samples(&g) * g.p) * sizeof(float);
    ws = ws > batched ? ws : batched;
    void *work = malloc(ws);

    int64_t ny = dn_shape_numel(&out.shape);
    float *dy = floats(ny, 4);
    reference r = reference_of(s, g.oh, g.ow, x[0].data, x[1].data, x[2].data, dy);

    path paths[5] = {
        { "direct, plain loops", dn_conv_direct_forward, dn_conv_direct_backward,
          dn_conv_direct_plain() },
        { "direct, AVX2 loops", dn_conv_direct_forward, dn_conv_direct_backward,
          dn_conv_direct_avx2() },
        { "direct, AVX-512 loops", dn_conv_direct_forward, dn_conv_direct_backward,
          dn_conv_direct_avx512() },
        { "per sample", packed_forward, packed_backward, NULL },
        { "batched", im2col_forward, im2col_backward, NULL },
    };
    for (int pi = 0; pi < 5; pi++) {
        const path *p = &paths[pi];
        if ((pi == 1 || pi == 2) && !p->isa) {
            cr_log_info("this machine lacks the ISA of the %s: not checked", p->name);
            continue;
        }
        if (wide && pi == 1)
            continue; /* the AVX2 loops take K ≤ DIRECT_MAX_K only */
        /* NaN bytes in the workspace and in y: a read of scratch before writing it, or an
         * output left unwritten, shows. */
        memset(work, 0xff, ws);
        dn_tensor y = { DN_F32, out.shape, filled(ny, NAN) };
        dn_tensor dyt = { DN_F32, out.shape, dy };
        const float base = 0.5f; /* backward adds onto what the gradients hold */
        dn_tensor dx[3] = { { DN_F32, x[0].shape, filled(nx, base) },
                            { DN_F32, x[1].shape, filled(nw, base) },
                            { DN_F32, x[2].shape, s->bias ? filled(s->f, base) : NULL } };
        dn_kernel k = { .attrs = attrs,
                        .n_inputs = n_in,
                        .x = x,
                        .y = &y,
                        .dx = dx,
                        .dy = &dyt,
                        .work = work,
                        .threads = threads };
        p->forward(&k, &g, p->isa);
        expect_near("y", p->name, y.data, 0.0f, r.y, r.y_abs, ny);
        check_relu_epilogue(p, &k, &g, y.data, ny, work, ws);
        memset(work, 0xff, ws);
        p->backward(&k, &g, p->isa);
        expect_near("dx", p->name, dx[0].data, base, r.dx, r.dx_abs, nx);
        expect_near("dW", p->name, dx[1].data, base, r.dw, r.dw_abs, nw);
        if (s->bias)
            expect_near("db", p->name, dx[2].data, base, r.db, r.db_abs, s->f);
        free(y.data), free(dx[0].data), free(dx[1].data), free(dx[2].data);
    }
    reference_free(&r);
    free(dy), free(work), free(x[0].data), free(x[1].data), free(x[2].data);
}

Test(conv_paths, lenet_first_conv)
{
    /* 1×5×5, pad 2: OW = 28, one block of 16 outputs and one of 12, 3 vectors of 8 and 4. */
    shape s = {
        .n = 3, .c = 1, .h = 28, .w = 28, .f = 6, .kh = 5, .kw = 5, .ph = 2, .pw = 2, .bias = true
    };
    check_paths(&s, 2);
    check_paths(&s, 1);
}

Test(conv_paths, three_channels_odd_width_rectangular_pad)
{
    /* K = 27: tap blocks of 10, 10 and 7; 5 filters: blocks of 3 and 2; OW = 15. Batch 4
     * packs through the per-sample path's index table. */
    shape s = {
        .n = 4, .c = 3, .h = 11, .w = 13, .f = 5, .kh = 3, .kw = 3, .ph = 1, .pw = 2, .bias = true
    };
    check_paths(&s, 2);
}

Test(conv_paths, one_sample_rows_split_no_bias)
{
    /* 2×2×4, no pad: OH = 8, OW = 18; forward splits the one sample's rows. */
    shape s = {
        .n = 1, .c = 2, .h = 9, .w = 21, .f = 4, .kh = 2, .kw = 4, .ph = 0, .pw = 0, .bias = false
    };
    check_paths(&s, 2);
}

Test(conv_paths, rows_narrower_than_a_vector)
{
    /* OW = 5: every dW vector is partial (masked), every forward block short. */
    shape s = {
        .n = 4, .c = 1, .h = 6, .w = 5, .f = 7, .kh = 3, .kw = 3, .ph = 0, .pw = 1, .bias = true
    };
    check_paths(&s, 2);
}

Test(conv_paths, widths_that_are_whole_vectors_and_k_at_the_limit)
{
    /* OW = 16 = one block, two vectors, nothing masked. */
    shape a = {
        .n = 2, .c = 2, .h = 10, .w = 16, .f = 3, .kh = 3, .kw = 3, .ph = 1, .pw = 1, .bias = true
    };
    check_paths(&a, 2);
    /* K = 2·4·4 = 32 = DIRECT_MAX_K; OH = 13, OW = 18. */
    shape b = {
        .n = 2, .c = 2, .h = 12, .w = 19, .f = 8, .kh = 4, .kw = 4, .ph = 2, .pw = 1, .bias = true
    };
    check_paths(&b, 2);
}

Test(conv_paths, simple_convnet_first_conv_and_rows_wider_than_a_block)
{
    /* 30 filters, OW = 24: AVX-512 blocks of 8, 8, 8, 6 filters × 16 + 8 lanes. */
    shape a = {
        .n = 2, .c = 1, .h = 28, .w = 28, .f = 30, .kh = 5, .kw = 5, .ph = 0, .pw = 0, .bias = true
    };
    check_paths(&a, 2);
    /* OW = 40: an AVX-512 block of 32 outputs, then one of 8 (one vector); 9 filters: blocks
     * of 5 and 4. */
    shape b = {
        .n = 2, .c = 2, .h = 7, .w = 42, .f = 9, .kh = 3, .kw = 3, .ph = 1, .pw = 0, .bias = false
    };
    check_paths(&b, 1);
}

/* Which path a wide kernel takes (ops/conv.h): AlexNet's conv2 (96 channels 5×5, K = 2400,
 * 27×27 outputs) per sample while every thread has a sample, batched at batch 1 on two
 * threads (BLIS's team splits the product), batched past PER_SAMPLE_MAX_K (512 channels 3×3)
 * and past PER_SAMPLE_MAX_COL_BYTES (its 64 channels 3×3 on 224×224: 116 MB a sample); thin
 * kernels per sample whatever the batch. */
Test(conv_paths, wide_kernels_go_per_sample_while_the_batch_feeds_every_thread)
{
    conv_geom conv2 = { .n = 16, .c = 96, .h = 27, .w = 27, .k = 2400, .p = 27 * 27 };
    cr_assert(conv_is_per_sample(&conv2, 2));
    conv2.n = 1;
    cr_assert(!conv_is_per_sample(&conv2, 2));
    cr_assert(conv_is_per_sample(&conv2, 1));
    conv_geom deep = { .n = 16, .c = 512, .h = 14, .w = 14, .k = 512 * 9, .p = 14 * 14 };
    cr_assert(!conv_is_per_sample(&deep, 2));
    conv_geom large = { .n = 16, .c = 64, .h = 224, .w = 224, .k = 576, .p = 224 * 224 };
    cr_assert(!conv_is_per_sample(&large, 2));
    conv_geom thin = { .n = 1, .c = 6, .h = 14, .w = 14, .k = 150, .p = 10 * 10 };
    cr_assert(conv_is_per_sample(&thin, 2));
}

/* The batched path in more than one chunk: LeNet's first conv (P = 784) at batch 12 needs 11
 * samples for CHUNK_MIN_COLS columns, so it goes in two chunks of 6; the second chunk's
 * im2col, product and copies start at sample 6 of x, y and dx. */
Test(conv_paths, batch_in_two_chunks)
{
    shape s = {
        .n = 12, .c = 1, .h = 28, .w = 28, .f = 6, .kh = 5, .kw = 5, .ph = 2, .pw = 2, .bias = true
    };
    conv_geom g = { .n = s.n, .k = s.c * s.kh * s.kw, .f = s.f, .p = 28 * 28 };
    cr_assert_eq(conv_chunk_samples(&g), 6, "chunks of %lld samples, 6 expected",
                 (long long)conv_chunk_samples(&g));
    check_paths(&s, 2);
}

/* A chunk of one sample in the batched path (AlexNet's wide layers): its copies split the
 * sample's rows of col (K = 150 of 256 floats: past DN_PARALLEL_MIN) and its 6 channels of
 * dx between the threads; LeNet's first conv above splits them mid-sample in a batch of 3. */
Test(conv_paths, one_sample_chunk_copies_split)
{
    shape s = {
        .n = 1, .c = 6, .h = 20, .w = 20, .f = 5, .kh = 5, .kw = 5, .ph = 0, .pw = 0, .bias = true
    };
    check_paths(&s, 2);
}

/* The wide direct forward (K > DIRECT_MAX_K): LeNet's second conv (6 channels 5×5, K = 150,
 * rows of 10 outputs in padded rows of 14: flat vectors span rows), then K = 100 with
 * padding, 11 filters (blocks of 6 and 5), one sample whose rows the threads split. */
Test(conv_paths, wide_kernels_lenet_second_conv_and_padded)
{
    shape a = {
        .n = 3, .c = 6, .h = 14, .w = 14, .f = 16, .kh = 5, .kw = 5, .ph = 0, .pw = 0, .bias = true
    };
    check_paths(&a, 2);
    shape b = {
        .n = 1, .c = 4, .h = 9, .w = 23, .f = 11, .kh = 5, .kw = 5, .ph = 1, .pw = 2, .bias = false
    };
    check_paths(&b, 2);
    b.n = 2;
    check_paths(&b, 1);
}

/* More filters than the AVX-512 dW's lanes take (F·K = 220·150 > DW_LANES_MAX): the slot
 * has no lanes, and that set's dW falls back to the AVX2 loops. */
Test(conv_paths, wide_kernels_with_more_filters_than_the_lanes_hold)
{
    shape s = {
        .n = 2, .c = 6, .h = 7, .w = 9, .f = 220, .kh = 5, .kw = 5, .ph = 0, .pw = 1, .bias = true
    };
    conv_geom g = { .f = s.f, .k = s.c * s.kh * s.kw };
    cr_assert(!conv_dw_lanes_fit(&g));
    check_paths(&s, 2);
}

/* dn_op_conv's forward with the epilogues the plan sets (graph/exec.c) on a shape no direct
 * loop takes (K = 12·5·5 = 300: the per-sample path; 33 filters), grouped (G = 3: the direct
 * loops' (sample, group) items), grouped with K = 300 per group (per sample) and depthwise
 * (its own path): y, then ReLU(y), then the 2×2 max of it, bit for bit those of the unfused
 * forward followed by ReLU's and MaxPool's rules. */
static void check_op_epilogues(int64_t c, int64_t f, const char *attrs_json)
{
    int64_t xd[4] = { 3, c, 13, 12 }, wd[4] = { f, 0, 5, 5 };
    cJSON *json = cJSON_Parse(attrs_json);
    int64_t groups = cJSON_GetObjectItem(json, "groups")
                         ? (int64_t)cJSON_GetObjectItem(json, "groups")->valuedouble
                         : 1;
    wd[1] = c / groups;
    dn_tensor x[3] = { { DN_F32, dn_shape_make(4, xd, true), NULL },
                       { DN_F32, dn_shape_make(4, wd, false), NULL },
                       { DN_F32, dn_shape_make(1, &f, false), NULL } };
    int64_t nx = dn_shape_numel(&x[0].shape), nw = dn_shape_numel(&x[1].shape);
    x[0].data = floats(nx, 21), x[1].data = floats(nw, 22), x[2].data = floats(f, 23);
    const char *names[] = { "x", "w", "b" };
    dn_err err = { 0 };
    dn_node_ctx ctx = { .file = "paths.json",
                        .node = "conv",
                        .n_inputs = 3,
                        .input_names = names,
                        .attrs = json,
                        .err = &err };
    unsigned char attrs[512];
    dn_tensor_desc in[3], out;
    for (int i = 0; i < 3; i++)
        in[i] = (dn_tensor_desc){ DN_F32, x[i].shape };
    cr_assert_eq(dn_op_conv.parse_attrs(&ctx, attrs), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_op_conv.infer(&ctx, attrs, in, &out), DN_OK, "%s", err.msg);
    cJSON_Delete(json);
    void *work = malloc(dn_op_conv.workspace_size(attrs, in, 3, &out, 2));
    int64_t ny = dn_shape_numel(&out.shape), oh = out.shape.d[2], ow = out.shape.d[3];
    int64_t po = oh / 2, qo = ow / 2, np = 3 * f * po * qo, pd[4] = { 3, f, po, qo };
    dn_tensor y = { DN_F32, out.shape, filled(ny, NAN) }, yr = { DN_F32, out.shape, filled(ny, 0) };
    dn_tensor pooled = { DN_F32, dn_shape_make(4, pd, true), filled(np, NAN) };
    dn_kernel k = { .attrs = attrs, .n_inputs = 3, .x = x, .y = &y, .work = work, .threads = 2 };
    dn_op_conv.forward(&k);
    float *want_r = filled(ny, 0), *want_p = filled(np, 0);
    for (int64_t i = 0; i < ny; i++)
        want_r[i] = ((float *)y.data)[i] < 0.0f ? 0.0f : ((float *)y.data)[i];
    for (int64_t i = 0; i < 3 * f; i++)
        dn_pool_max_2x2_rows(want_r + i * oh * ow, ow, qo, 0, po, want_p + i * po * qo);
    k.y = &yr;
    k.epilogue = DN_EPILOGUE_RELU;
    dn_op_conv.forward(&k);
    cr_assert_eq(memcmp(yr.data, want_r, (size_t)ny * sizeof(float)), 0, "%s: ReLU epilogue",
                 attrs_json);
    k.epilogue = DN_EPILOGUE_RELU_MAXPOOL2;
    k.pooled = &pooled;
    dn_op_conv.forward(&k);
    cr_assert_eq(memcmp(pooled.data, want_p, (size_t)np * sizeof(float)), 0,
                 "%s: ReLU and max-pool epilogue", attrs_json);
    free(y.data), free(yr.data), free(pooled.data), free(want_r), free(want_p), free(work);
    free(x[0].data), free(x[1].data), free(x[2].data);
}

Test(conv_paths, op_epilogues_on_the_per_sample_path_and_grouped)
{
    check_op_epilogues(12, 33, "{\"pad\": 1}");
    check_op_epilogues(6, 9, "{\"pad\": 2, \"groups\": 3}");
    check_op_epilogues(24, 10, "{\"pad\": 1, \"groups\": 2}"); /* K = 300 per group */
    check_op_epilogues(8, 8, "{\"pad\": 2, \"groups\": 8}");   /* depthwise 5×5 */
}

/* Dilation: the taps spread over [dh·(kh − 1) + 1, dw·(kw − 1) + 1] pixels; every path reads
 * through its own offsets (the direct loops' tap offsets, the table, im2col). OH = 11 + 4 −
 * 2·2 − 1 + 1 = 11, OW = 19 + 2 − 3·2 − 1 + 1 = 15. */
Test(conv_paths, dilated_taps_on_every_path)
{
    shape s = { .n = 4,
                .c = 2,
                .h = 11,
                .w = 19,
                .f = 5,
                .kh = 3,
                .kw = 3,
                .ph = 2,
                .pw = 1,
                .bias = true,
                .dh = 2,
                .dw = 3 };
    check_paths(&s, 2);
    s.n = 1;
    check_paths(&s, 1);
    /* Taps 9 columns apart: rows of 22 keep 4 outputs each, and the flat vector [48, 64)
     * falls wholly between two rows (no lane of it kept: the AVX-512 dW's empty vector). */
    shape gap = {
        .n = 2, .c = 2, .h = 8, .w = 22, .f = 3, .kh = 2, .kw = 3, .bias = true, .dw = 9
    };
    check_paths(&gap, 2);
}

/* An inf in a column that only the lanes between two flat rows read for a tap (the last
 * column, for tap column j = 0 of a 3×3 kernel without padding) stays out of that tap's dW:
 * every set of dW loops gives the count of outputs there (x and dy are 1 elsewhere), not
 * 0 · inf = NaN; the taps that do read it get inf. */
Test(conv_paths, an_inf_between_flat_rows_stays_out_of_dw)
{
    int64_t xd[4] = { 1, 1, 6, 20 }, wd[4] = { 2, 1, 3, 3 }, yd[4] = { 1, 2, 4, 18 };
    dn_shape xs = dn_shape_make(4, xd, true), ws = dn_shape_make(4, wd, false),
             ys = dn_shape_make(4, yd, true);
    const int64_t stride[2] = { 1, 1 }, pad[2] = { 0, 0 };
    conv_geom g = conv_geom_make(&xs, &ws, &ys, stride, pad);
    cr_assert(conv_is_direct(&g));
    dn_ukernel u;
    dn_ukernel_get(&u);
    conv_slot_layout l = conv_slots(&g, &u);
    void *work = malloc((size_t)(l.shared + l.per_thread) * sizeof(float) + 64);
    float *x = filled(120, 1.0f), *w = filled(18, 0.5f), *dy = filled(144, 1.0f);
    x[1 * 20 + 19] = INFINITY;
    const conv_direct_kernels *isa[3] = { dn_conv_direct_plain(), dn_conv_direct_avx2(),
                                          dn_conv_direct_avx512() };
    for (int i = 0; i < 3; i++) {
        if (!isa[i])
            continue;
        float *dw = filled(18, 0.0f);
        dn_tensor in[2] = { { DN_F32, xs, x }, { DN_F32, ws, w } }, y = { DN_F32, ys, NULL },
                  dyt = { DN_F32, ys, dy };
        dn_tensor dx[2] = { { DN_F32, xs, NULL }, { DN_F32, ws, dw } };
        dn_kernel k = {
            .n_inputs = 2, .x = in, .y = &y, .dx = dx, .dy = &dyt, .work = work, .threads = 1
        };
        memset(work, 0xff, (size_t)(l.shared + l.per_thread) * sizeof(float) + 64);
        dn_conv_direct_backward(&k, &g, isa[i]);
        for (int64_t f = 0; f < 2; f++)
            for (int64_t ki = 0; ki < 3; ki++)
                for (int64_t kj = 0; kj < 3; kj++) {
                    /* the inf (row 1, column 19) is read by column 19 − 2 = 17 for j = 2 */
                    bool reads = kj == 2 && ki <= 1;
                    float got = dw[f * 9 + ki * 3 + kj];
                    cr_assert(reads ? got == INFINITY : got == 72.0f,
                              "%s loops: dW[%lld, %lld, %lld] is %g, %s expected", isa[i]->name,
                              (long long)f, (long long)ki, (long long)kj, (double)got,
                              reads ? "inf" : "72");
                }
        free(dw);
    }
    free(x), free(w), free(dy), free(work);
}

/* The dispatch takes the widest loops the machine has: AVX-512, else AVX2. Every forward
 * does the same fused multiply-adds in the same order as the plain loops (the same bits);
 * the AVX2 dW sums 8 columns at a time, the AVX-512 dW 16 lanes over the batch (other bits
 * each): dn_op_conv's dW is the widest loops', bit for bit, and not the plain loops'. */
Test(conv_paths, dispatch_takes_the_widest_loops_the_machine_has)
{
#if defined(__x86_64__)
    bool machine = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    cr_assert_eq(dn_conv_direct_avx2() != NULL, machine);
    cr_assert_eq(dn_conv_direct_avx512() != NULL, machine && __builtin_cpu_supports("avx512f"));
#endif
    cr_assert_not_null(dn_conv_direct_plain());
    if (!dn_conv_direct_avx2())
        return;
    const char *names[] = { "x", "w", "b" };
    cJSON *json = cJSON_Parse("{\"pad\": 2}");
    dn_err err = { 0 };
    dn_node_ctx ctx = { .file = "paths.json",
                        .node = "conv",
                        .n_inputs = 3,
                        .input_names = names,
                        .attrs = json,
                        .err = &err };
    unsigned char attrs[512];
    int64_t xd[4] = { 2, 1, 28, 28 }, wd[4] = { 6, 1, 5, 5 }, f = 6;
    dn_tensor x[3] = { { DN_F32, dn_shape_make(4, xd, true), floats(2 * 28 * 28, 5) },
                       { DN_F32, dn_shape_make(4, wd, false), floats(6 * 25, 6) },
                       { DN_F32, dn_shape_make(1, &f, false), floats(6, 7) } };
    dn_tensor_desc in[3], out;
    for (int i = 0; i < 3; i++)
        in[i] = (dn_tensor_desc){ DN_F32, x[i].shape };
    cr_assert_eq(dn_op_conv.parse_attrs(&ctx, attrs), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_op_conv.infer(&ctx, attrs, in, &out), DN_OK, "%s", err.msg);
    cJSON_Delete(json);
    size_t ws = dn_op_conv.workspace_size(attrs, in, 3, &out, 2);
    void *work = malloc(ws);
    int64_t ny = dn_shape_numel(&out.shape), nw = 6 * 25;
    const int64_t stride[2] = { 1, 1 }, pad[2] = { 2, 2 };
    conv_geom g = conv_geom_make(&x[0].shape, &x[1].shape, &out.shape, stride, pad);
    const conv_direct_kernels *isa[4] = { NULL, dn_conv_direct_avx2(), dn_conv_direct_plain(),
                                          dn_conv_direct_avx512() };
    int runs = isa[3] ? 4 : 3;
    float *ys[4], *dws[4], *dy = floats(ny, 8);
    for (int run = 0; run < runs; run++) { /* the dispatch, AVX2, plain, AVX-512 */
        dn_tensor y = { DN_F32, out.shape, filled(ny, NAN) }, dyt = { DN_F32, out.shape, dy };
        dn_tensor dx[3] = { { DN_F32, x[0].shape, NULL },
                            { DN_F32, x[1].shape, filled(nw, 0.0f) },
                            { DN_F32, x[2].shape, NULL } };
        dn_kernel k = { .attrs = attrs,
                        .n_inputs = 3,
                        .x = x,
                        .y = &y,
                        .dx = dx,
                        .dy = &dyt,
                        .work = work,
                        .threads = 2 };
        if (run == 0) {
            dn_op_conv.forward(&k);
            dn_op_conv.backward(&k);
        } else {
            dn_conv_direct_forward(&k, &g, isa[run]);
            dn_conv_direct_backward(&k, &g, isa[run]);
        }
        ys[run] = y.data, dws[run] = dx[1].data;
    }
    for (int run = 1; run < runs; run++)
        cr_assert_eq(memcmp(ys[0], ys[run], (size_t)ny * sizeof(float)), 0,
                     "the %s loops' y differs from the dispatch's", isa[run]->name);
    int widest = isa[3] ? 3 : 1;
    cr_assert_eq(memcmp(dws[0], dws[widest], (size_t)nw * sizeof(float)), 0,
                 "the dispatch's dW is not the %s loops' dW", isa[widest]->name);
    cr_assert_neq(memcmp(dws[0], dws[2], (size_t)nw * sizeof(float)), 0,
                  "the dispatch's dW has the plain loops' bits: it did not take %s",
                  isa[widest]->name);
    if (isa[3])
        cr_assert_neq(memcmp(dws[3], dws[1], (size_t)nw * sizeof(float)), 0,
                      "the AVX-512 dW has the AVX2 loops' bits: it did not take its own loops");
    for (int run = 0; run < runs; run++)
        free(ys[run]), free(dws[run]);
    free(dy), free(work), free(x[0].data), free(x[1].data), free(x[2].data);
}

/* ---------------------------------------------------------------- the depthwise path
 *
 * G = C = F groups of one channel and one filter (conv_depthwise.c), through the op's dispatch
 * and through the path's entries with each set of loops, against a double-precision loop.
 * The plain and AVX2 correlations do the same multiply-adds in the same order: y and dx are
 * the same bits; dW and db sum 8 columns at a time in AVX2 (other bits), and the dispatch's
 * are the AVX2 loops' bits on a machine that has them. */

typedef struct dw_shape {
    int64_t n, c, h, w, kh, kw, ph, pw, dh, dw;
    bool bias, want_dx;
    int threads;
} dw_shape;

typedef struct dw_run {
    float *y, *dx, *dw, *db;
} dw_run;

static void dw_reference(const dw_shape *s, int64_t oh, int64_t ow, const float *x, const float *w,
                         const float *b, const float *dy, reference *r)
{
    int64_t k = s->kh * s->kw;
    *r = (reference){ zeros(s->n * s->c * oh * ow),
                      zeros(s->n * s->c * oh * ow),
                      zeros(s->n * s->c * s->h * s->w),
                      zeros(s->n * s->c * s->h * s->w),
                      zeros(s->c * k),
                      zeros(s->c * k),
                      zeros(s->c),
                      zeros(s->c) };
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t c = 0; c < s->c; c++)
            for (int64_t p = 0; p < oh; p++)
                for (int64_t q = 0; q < ow; q++) {
                    int64_t yi = ((n * s->c + c) * oh + p) * ow + q;
                    double g = dy[yi];
                    if (s->bias) {
                        r->y[yi] = b[c], r->y_abs[yi] = fabs(b[c]);
                        r->db[c] += g, r->db_abs[c] += fabs(g);
                    }
                    for (int64_t i = 0; i < s->kh; i++)
                        for (int64_t j = 0; j < s->kw; j++) {
                            int64_t hh = p - s->ph + i * s->dh, ww = q - s->pw + j * s->dw;
                            if (hh < 0 || hh >= s->h || ww < 0 || ww >= s->w)
                                continue;
                            int64_t xi = ((n * s->c + c) * s->h + hh) * s->w + ww;
                            int64_t wi = c * k + i * s->kw + j;
                            double xv = x[xi], wv = w[wi];
                            r->y[yi] += wv * xv, r->y_abs[yi] += fabs(wv * xv);
                            r->dw[wi] += g * xv, r->dw_abs[wi] += fabs(g * xv);
                            r->dx[xi] += g * wv, r->dx_abs[xi] += fabs(g * wv);
                        }
                }
}

static void check_depthwise(const dw_shape *s)
{
    char attrs_json[160];
    snprintf(attrs_json, sizeof attrs_json,
             "{\"pad\": [%lld, %lld], \"dilation\": [%lld, %lld], \"groups\": %lld}",
             (long long)s->ph, (long long)s->pw, (long long)s->dh, (long long)s->dw,
             (long long)s->c);
    int n_in = s->bias ? 3 : 2;
    int64_t xd[4] = { s->n, s->c, s->h, s->w }, wd[4] = { s->c, 1, s->kh, s->kw };
    dn_tensor x[3] = { { DN_F32, dn_shape_make(4, xd, true), NULL },
                       { DN_F32, dn_shape_make(4, wd, false), NULL },
                       { DN_F32, dn_shape_make(1, &s->c, false), NULL } };
    int64_t nx = dn_shape_numel(&x[0].shape), nw = dn_shape_numel(&x[1].shape);
    x[0].data = floats(nx, 11), x[1].data = floats(nw, 12), x[2].data = floats(s->c, 13);
    const char *names[] = { "x", "w", "b" };
    cJSON *json = cJSON_Parse(attrs_json);
    dn_err err = { 0 };
    dn_node_ctx ctx = { .file = "paths.json",
                        .node = "conv",
                        .n_inputs = n_in,
                        .input_names = names,
                        .attrs = json,
                        .err = &err };
    unsigned char attrs[512];
    dn_tensor_desc in[3], out;
    for (int i = 0; i < 3; i++)
        in[i] = (dn_tensor_desc){ DN_F32, x[i].shape };
    cr_assert_eq(dn_op_conv.parse_attrs(&ctx, attrs), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_op_conv.infer(&ctx, attrs, in, &out), DN_OK, "%s", err.msg);
    cJSON_Delete(json);
    const int64_t stride[2] = { 1, 1 }, pad[2] = { s->ph, s->pw }, dil[2] = { s->dh, s->dw };
    conv_geom g = conv_geom_group(conv_geom_make(&x[0].shape, &x[1].shape, &out.shape, stride, pad),
                                  s->c, dil);
    cr_assert(conv_is_depthwise(&g), "the shape must be one the depthwise path takes");

    size_t ws = dn_op_conv.workspace_size(attrs, in, n_in, &out, s->threads);
    void *work = malloc(ws);
    int64_t ny = dn_shape_numel(&out.shape);
    float *dy = floats(ny, 14);
    reference r;
    dw_reference(s, g.oh, g.ow, x[0].data, x[1].data, x[2].data, dy, &r);

    const conv_depthwise_kernels *isa[3] = { NULL, dn_conv_depthwise_plain(),
                                             dn_conv_depthwise_avx2() };
    const char *name[3] = { "dispatch", "plain loops", "AVX2 loops" };
    dw_run runs[3] = { 0 };
    const float base = 0.5f; /* backward adds onto what the gradients hold */
    for (int ri = 0; ri < 3; ri++) {
        if (ri == 2 && !isa[2]) {
            cr_log_info("no AVX2/FMA on this machine: the depthwise AVX2 loops are not checked");
            continue;
        }
        memset(work, 0xff, ws); /* NaN bytes: scratch read before written shows */
        dn_tensor y = { DN_F32, out.shape, filled(ny, NAN) }, dyt = { DN_F32, out.shape, dy };
        dn_tensor dx[3] = { { DN_F32, x[0].shape, s->want_dx ? filled(nx, base) : NULL },
                            { DN_F32, x[1].shape, filled(nw, base) },
                            { DN_F32, x[2].shape, s->bias ? filled(s->c, base) : NULL } };
        dn_kernel k = { .attrs = attrs,
                        .n_inputs = n_in,
                        .x = x,
                        .y = &y,
                        .dx = dx,
                        .dy = &dyt,
                        .work = work,
                        .threads = s->threads };
        if (ri == 0)
            dn_op_conv.forward(&k);
        else
            dn_conv_depthwise_forward(&k, &g, isa[ri]);
        expect_near("y", name[ri], y.data, 0.0f, r.y, r.y_abs, ny);
        if (ri > 0) { /* the inference ReLU folded in: dn_relu of the same sums, bit for bit */
            conv_geom gr = g;
            gr.relu = true;
            dn_tensor yr = { DN_F32, out.shape, filled(ny, NAN) };
            dn_kernel kr = k;
            kr.y = &yr;
            dn_conv_depthwise_forward(&kr, &gr, isa[ri]);
            for (int64_t i = 0; i < ny; i++)
                cr_assert_eq(((float *)yr.data)[i], dn_relu(((float *)y.data)[i]),
                             "%s with ReLU: element %lld", name[ri], (long long)i);
            free(yr.data);
        }
        memset(work, 0xff, ws);
        if (ri == 0)
            dn_op_conv.backward(&k);
        else
            dn_conv_depthwise_backward(&k, &g, isa[ri]);
        if (s->want_dx)
            expect_near("dx", name[ri], dx[0].data, base, r.dx, r.dx_abs, nx);
        expect_near("dW", name[ri], dx[1].data, base, r.dw, r.dw_abs, nw);
        if (s->bias)
            expect_near("db", name[ri], dx[2].data, base, r.db, r.db_abs, s->c);
        runs[ri] = (dw_run){ y.data, dx[0].data, dx[1].data, dx[2].data };
    }
    if (isa[2]) {
        cr_assert_eq(memcmp(runs[1].y, runs[2].y, (size_t)ny * sizeof(float)), 0,
                     "the plain and AVX2 correlations' y differ");
        if (s->want_dx)
            cr_assert_eq(memcmp(runs[1].dx, runs[2].dx, (size_t)nx * sizeof(float)), 0,
                         "the plain and AVX2 correlations' dx differ");
        cr_assert_eq(memcmp(runs[0].dw, runs[2].dw, (size_t)nw * sizeof(float)), 0,
                     "the dispatch's dW is not the AVX2 loops'");
    }
    for (int ri = 0; ri < 3; ri++)
        free(runs[ri].y), free(runs[ri].dx), free(runs[ri].dw), free(runs[ri].db);
    reference_free(&r);
    free(dy), free(work), free(x[0].data), free(x[1].data), free(x[2].data);
}

Test(conv_paths, depthwise_whole_blocks_and_a_partial_one)
{
    /* 28×28, 3×3, pad 1: OW = 28 is a block of 16 and one of 12; OH = 28, 7 blocks of 4 rows;
     * 4·12·28·28·9 multiply-adds: past DIRECT_SPLIT_MIN, so 2 threads share the planes */
    dw_shape s = { .n = 4,
                   .c = 12,
                   .h = 28,
                   .w = 28,
                   .kh = 3,
                   .kw = 3,
                   .ph = 1,
                   .pw = 1,
                   .dh = 1,
                   .dw = 1,
                   .bias = true,
                   .want_dx = true,
                   .threads = 2 };
    check_depthwise(&s);
    s.threads = 1;
    s.want_dx = false; /* the first layer: no dx, dW and db still right */
    check_depthwise(&s);
}

Test(conv_paths, depthwise_dilated_rectangular_no_bias)
{
    /* 3×3 dilated [2, 3], pad [2, 1]: OH = 9 + 4 − 4 = 9 (2 blocks of 4 and a row), OW = 7 + 2 −
     * 6 = 3; dx's padded dy is wider than x's padded copy */
    dw_shape s = { .n = 2,
                   .c = 3,
                   .h = 9,
                   .w = 7,
                   .kh = 3,
                   .kw = 3,
                   .ph = 2,
                   .pw = 1,
                   .dh = 2,
                   .dw = 3,
                   .bias = false,
                   .want_dx = true,
                   .threads = 2 };
    check_depthwise(&s);
}

Test(conv_paths, depthwise_one_sample_wide_rows_big_kernel)
{
    /* 5×5 pad 0 on 6×37: OH = 2 (rows left over only), OW = 33 (blocks 16, 16, 1); one
     * sample, its 4 planes shared by 2 threads */
    dw_shape s = { .n = 1,
                   .c = 4,
                   .h = 6,
                   .w = 37,
                   .kh = 5,
                   .kw = 5,
                   .ph = 0,
                   .pw = 0,
                   .dh = 1,
                   .dw = 1,
                   .bias = true,
                   .want_dx = true,
                   .threads = 2 };
    check_depthwise(&s);
}
