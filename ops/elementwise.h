/*
 * elementwise.h — the shell the elementwise activations share (ReLU, Sigmoid, Tanh): their
 * loops, the split among threads and the kernels, written once. An activation keeps only its
 * maths, as static inline functions, and its thresholds:
 *
 *   static inline float relu_y(float x) { return x < 0.0f ? 0.0f : x; }
 *   static inline float relu_dx(float y, float dy) { return y <= 0.0f ? 0.0f : dy; }
 *   DN_ELEMENTWISE(relu_y, relu_dx, RELU_PARALLEL_MIN, RELU_PARALLEL_MIN)
 *   const dn_op dn_op_relu = { .name = "ReLU", .parse_attrs = dn_attrs_none,
 *                              DN_ELEMENTWISE_FIELDS };
 *
 * which gives, over any shape, float32:
 *   forward    y[i] = Y(x[i])              on one range per thread from FWD_MIN elements
 *   backward   dx[i] += DX(y[i], dy[i])    likewise from BWD_MIN (two thresholds: a libm call
 *                                          forward pays for a thread far sooner than a stream)
 * Backward reads y, never x, and forward reads each x[i] before writing y[i], so y may take
 * x's buffer: DN_ELEMENTWISE_FIELDS declares the op in place and reading its output (op.h).
 *
 * DN_ELEMENTWISE_STAGED is the same for maths around a libm call that GCC cannot vectorise:
 * Y(x, PRE(x)), PRE's results kept for DN_ELEMENTWISE_CHUNK elements on the stack (1 KiB, in
 * L1), so that the Y loop vectorises even though the PRE loop cannot.
 *
 * Macros, not functions taking pointers to the maths: the maths must be inlined into the loop
 * bodies for GCC to vectorise them, and a pointer handed to a shared range function would be
 * called once per element. Each op file expands one macro, which defines its static forward
 * and backward.
 */
#ifndef DN_ELEMENTWISE_H
#define DN_ELEMENTWISE_H

#include "ops/op.h"
#include "runtime/parallel.h"

#define DN_ELEMENTWISE_CHUNK 256

/* The kernels around span functions forward_span(x, y, n) and backward_span(y, dy, dx, n);
 * each range reads its pointers from the kernel. */
#define DN_ELEMENTWISE_KERNELS_(FWD_MIN, BWD_MIN)                                              \
    static void forward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)    \
    {                                                                                          \
        (void)part;                                                                            \
        const dn_kernel *k = ctx;                                                              \
        forward_span(dn_f32(&k->x[0]) + lo, dn_f32(k->y) + lo, hi - lo);                       \
    }                                                                                          \
    static void backward_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)   \
    {                                                                                          \
        (void)part;                                                                            \
        const dn_kernel *k = ctx;                                                              \
        backward_span(dn_f32(k->y) + lo, dn_f32(k->dy) + lo, dn_f32(&k->dx[0]) + lo, hi - lo); \
    }                                                                                          \
    static void forward(const dn_kernel *k)                                                    \
    {                                                                                          \
        int64_t n = dn_shape_numel(&k->y->shape);                                              \
        dn_parallel_for(n, dn_team(k->threads, n, (FWD_MIN)), forward_range, k);               \
    }                                                                                          \
    static void backward(const dn_kernel *k)                                                   \
    {                                                                                          \
        int64_t n = dn_shape_numel(&k->y->shape);                                              \
        dn_parallel_for(n, dn_team(k->threads, n, (BWD_MIN)), backward_range, k);              \
    }

/* dy is loaded whatever DX makes of it, so a select in DX needs no branch. */
#define DN_ELEMENTWISE_BACKWARD_SPAN_(DX)                                        \
    static void backward_span(const float *restrict y, const float *restrict dy, \
                              float *restrict dx, int64_t n)                     \
    {                                                                            \
        for (int64_t i = 0; i < n; i++)                                          \
            dx[i] += DX(y[i], dy[i]);                                            \
    }

/* x and y may be the same buffer (in place), hence no restrict: x[i] is read before y[i] is
 * written. */
#define DN_ELEMENTWISE(Y, DX, FWD_MIN, BWD_MIN)                   \
    static void forward_span(const float *x, float *y, int64_t n) \
    {                                                             \
        for (int64_t i = 0; i < n; i++)                           \
            y[i] = Y(x[i]);                                       \
    }                                                             \
    DN_ELEMENTWISE_BACKWARD_SPAN_(DX)                             \
    DN_ELEMENTWISE_KERNELS_(FWD_MIN, BWD_MIN)

#define DN_ELEMENTWISE_STAGED(PRE, Y, DX, FWD_MIN, BWD_MIN)                            \
    static void forward_span(const float *x, float *y, int64_t n)                      \
    {                                                                                  \
        float pre[DN_ELEMENTWISE_CHUNK];                                               \
        for (int64_t c = 0; c < n; c += DN_ELEMENTWISE_CHUNK) {                        \
            int64_t len = n - c < DN_ELEMENTWISE_CHUNK ? n - c : DN_ELEMENTWISE_CHUNK; \
            for (int64_t i = 0; i < len; i++)                                          \
                pre[i] = PRE(x[c + i]);                                                \
            for (int64_t i = 0; i < len; i++)                                          \
                y[c + i] = Y(x[c + i], pre[i]);                                        \
        }                                                                              \
    }                                                                                  \
    DN_ELEMENTWISE_BACKWARD_SPAN_(DX)                                                  \
    DN_ELEMENTWISE_KERNELS_(FWD_MIN, BWD_MIN)

/* The descriptor fields every activation of this shell shares; the op adds .name and
 * .parse_attrs. */
#define DN_ELEMENTWISE_FIELDS                                                                \
    .min_inputs = 1, .max_inputs = 1, .infer = dn_infer_unary, .flops = dn_flops_per_output, \
    .forward = forward, .backward = backward, .inplace = true, .backward_reads_output = true

#endif
