/*
 * relu.c — ReLU, elementwise.
 *
 *   y = x < 0 ? 0 : x                  x, y: any shape, float32
 *   dx += y <= 0 ? 0 : dy              (reads y, not x, so y may overwrite x in place)
 *
 * NaN and Inf as PyTorch 1.13 (torch.relu and its threshold_backward): ReLU(NaN) = NaN,
 * ReLU(−0) = −0, and the gradient passes where y is NaN (NaN ≤ 0 is false) and is exactly 0
 * where y ≤ 0, even for a NaN dy (a select, not a product).
 *
 * Both are branch-free selects that GCC vectorises (a compare and a mask per vector): a
 * branch on the sign of activations would be mispredicted half the time. Memory-bound, so a
 * second thread pays only on large tensors. The loops and kernels are ops/elementwise.h's.
 * No attrs.
 */
#include "ops/elementwise.h"
#include "ops/op.h"

/* Two threads measured 1.4–1.8× faster from 64 Ki elements (~11 µs on one); below it, and
 * more so when the machine is busy, waking the second costs about what it saves. */
#define RELU_PARALLEL_MIN 65536

/* dn_relu (ops/op.h): the select the folded epilogues share. */
static inline float relu_y(float x) { return dn_relu(x); }

static inline float relu_dx(float y, float dy) { return y <= 0.0f ? 0.0f : dy; }

DN_ELEMENTWISE(relu_y, relu_dx, RELU_PARALLEL_MIN, RELU_PARALLEL_MIN)

const dn_op dn_op_relu = {
    .name = "ReLU",
    .parse_attrs = dn_attrs_none,
    DN_ELEMENTWISE_FIELDS,
    .is_epilogue = DN_EPILOGUE_RELU, /* Conv and Affine fold it in, in inference */
};
