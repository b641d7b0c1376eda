/*
 * gradcheck.h — finite-difference check of one op's backward against its forward.
 *
 * With random inputs x and a random projection r of the output, L = Σ r·y. The op's backward
 * with dy = r gives ∂L/∂x; central differences (L(x+ε) − L(x−ε)) / 2ε give it again. The
 * check also proves the accumulation contract (dx is pre-filled and must grow by exactly the
 * gradient) and that asking for one input's gradient gives the same numbers as asking for all.
 */
#ifndef DN_GRADCHECK_H
#define DN_GRADCHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/op.h"

typedef enum dn_gc_fill {
    DN_GC_UNIFORM = 0, /* U(-1, 1) */
    DN_GC_DISTINCT,    /* a shuffled grid of values 0.05 apart, away from 0: no ties or kinks */
    DN_GC_LABELS,      /* int32 class indices in [0, classes) */
    DN_GC_ONE_HOT,     /* float rows with a single 1 */
    DN_GC_POSITIVE,    /* U(0.5, 1.5) */
} dn_gc_fill;

typedef struct dn_gc_input {
    dn_dtype dtype;
    int rank;
    int64_t shape[DN_MAX_RANK];
    dn_gc_fill fill;
    int64_t classes; /* for DN_GC_LABELS */
} dn_gc_input;

typedef struct dn_gc_result {
    bool ok;
    int checked;    /* elements compared */
    double max_err; /* largest |analytic − numeric| / (atol + rtol·|numeric|) */
    char msg[1024]; /* what failed, or a summary */
} dn_gc_result;

/* attrs_json: the node's attrs as JSON text ("{}" for none); at most DN_GC_MAX_INPUTS inputs.
 * Inputs with dtype int32 or in the op's no_grad_inputs are not checked. At most 150 elements
 * per input are probed (chosen at random), all when the input is small. */
#define DN_GC_MAX_INPUTS 16
dn_gc_result dn_gradcheck(const dn_op *op, const char *attrs_json, int n_in, const dn_gc_input *in,
                          uint64_t seed);

#endif
