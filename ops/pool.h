/*
 * pool.h — what MaxPool and AvgPool share (not an op: a helper of the pooling family, as
 * common.c is of all ops).
 *
 * Both slide a kh×kw window with stride (sh, sw) and padding (ph, pw) over each [H, W] plane
 * of an NCHW tensor, so they read the same attrs, infer the same output shape and clip their
 * windows to the image the same way:
 *
 *   x [N, C, H, W]     y [N, C, OH, OW]     OH = floor((H + 2·pad_h − kh) / stride_h) + 1
 *   output (p, q) covers rows [p·sh − ph, p·sh − ph + kh) and columns [q·sw − pw, q·sw − pw + kw)
 *
 * attrs: kernel (required), stride (= kernel), pad (0); each an int or [h, w]. pad ≤ kernel/2
 * is required, as PyTorch does; it keeps at least one image pixel in every window.
 * ceil (false): OH = ceil((H + 2·pad_h − kh) / stride_h) + 1, less one when that last window
 * would start at or past H + pad_h (PyTorch's ceil_mode=True, Caffe's pooling arithmetic), so
 * every window still starts inside the image; the last may run past the image and its padding
 * and is clipped like the others.
 *
 * What each op does inside a window (max and argmax, or mean with padding as zeros), what it
 * saves and how it counts flops stay in ops/maxpool.c and ops/avgpool.c.
 */
#ifndef DN_POOL_H
#define DN_POOL_H

#include "ops/op.h"

typedef struct dn_pool_attrs {
    int64_t kernel[2], stride[2], pad[2];
    bool ceil;
} dn_pool_attrs;

/* Every size the kernels need, from the shapes of one run; planes = N·C. */
typedef struct dn_pool_geom {
    int64_t planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
} dn_pool_geom;

/* Fills a dn_pool_attrs. `op` names the op in the message for a missing kernel
 * ("MaxPool needs a kernel size ..."). */
dn_status dn_pool_parse_attrs(const dn_node_ctx *c, const char *op, dn_pool_attrs *a);

/* A dn_op infer: float32 [N, C, H, W] in, float32 [N, C, OH, OW] out, or a message when the
 * window does not fit. */
dn_status dn_pool_infer(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                        dn_tensor_desc *out);

static inline dn_pool_geom dn_pool_geom_of(const dn_pool_attrs *a, const dn_shape *x,
                                           const dn_shape *y)
{
    return (dn_pool_geom){ .planes = x->d[0] * x->d[1],
                           .h = x->d[2],
                           .w = x->d[3],
                           .oh = y->d[2],
                           .ow = y->d[3],
                           .kh = a->kernel[0],
                           .kw = a->kernel[1],
                           .sh = a->stride[0],
                           .sw = a->stride[1],
                           .ph = a->pad[0],
                           .pw = a->pad[1] };
}

/* The input rows (or columns) [*lo, *hi) of window o, with the padding cut away. Inline: the
 * kernels call it once per output. */
static inline void dn_pool_window(int64_t o, int64_t k, int64_t stride, int64_t pad, int64_t size,
                                  int64_t *lo, int64_t *hi)
{
    int64_t start = o * stride - pad;
    *lo = start > 0 ? start : 0;
    *hi = start + k < size ? start + k : size;
}

/* The 2×2 window with stride 2 and no padding of LeNet and SimpleConvNet: each op has a loop of
 * its own for it, with no window arithmetic. Every window must lie inside the image (ceil on
 * an odd size clips the last one: the general loops take it). */
static inline bool dn_pool_is_2x2(const dn_pool_geom *g)
{
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
           2 * g->oh <= g->h && 2 * g->ow <= g->w;
}

/* MaxPool's rule (ops/maxpool.c): pixel value v, later in row-major order than the current
 * winner m, takes its place when larger, or NaN (the last NaN wins). */
static inline bool dn_pool_max_wins(float v, float m) { return v > m || v != v; }

/* Rows [p0, p1) of the 2×2 stride-2 max of one plane x [H, W] (W = w floats a row) into
 * y [OH, OW]: the four candidates in row-major order, by selects, so the winner is the one
 * MaxPool picks, bit for bit. The Conv's DN_EPILOGUE_RELU_MAXPOOL2 pools through it. */
static inline void dn_pool_max_2x2_rows(const float *restrict x, int64_t w, int64_t ow, int64_t p0,
                                        int64_t p1, float *restrict y)
{
    for (int64_t p = p0; p < p1; p++) {
        const float *r0 = x + 2 * p * w, *r1 = r0 + w;
        for (int64_t q = 0; q < ow; q++) {
            float m = r0[2 * q], b = r0[2 * q + 1], c = r1[2 * q], d = r1[2 * q + 1];
            m = dn_pool_max_wins(b, m) ? b : m;
            m = dn_pool_max_wins(c, m) ? c : m;
            y[p * ow + q] = dn_pool_max_wins(d, m) ? d : m;
        }
    }
}

/* MaxPool's 2×2, stride-2 plane (no padding): y [OH, OW] and the argmax of each output, by
 * the baseline loop, or with avx512 set (on a machine that has AVX-512F) sixteen outputs a
 * vector: the same winners, bit for bit. The op passes true; tests run both. */
void dn_maxpool_plane_2x2(const dn_pool_geom *g, const float *x, float *y, int32_t *arg,
                          bool avx512);

/* Outputs of a pooling window along one dim, as PyTorch's pooling_output_shape: floor or
 * ceil of (size + 2·pad − k) / stride, plus one; with ceil, a last window starting at or past
 * size + pad is dropped. -1 when the window does not fit. */
static inline int64_t dn_pool_out(int64_t size, int64_t k, int64_t stride, int64_t pad, bool ceil)
{
    int64_t span = size + 2 * pad - k;
    if (span < 0 || stride <= 0)
        return -1;
    int64_t out = (ceil ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil && (out - 1) * stride >= size + pad)
        out--;
    return out;
}

#endif
