/*
 * init.h — parameter initialisers of docs/format.md.
 *
 * Fans: a rank-2 weight is an Affine weight [in, out] (fan_in = in, fan_out = out); a weight
 * of rank >= 3 is a Conv weight [out, in, kh, kw] (fan_in = in·kh·kw, fan_out = out·kh·kw).
 *   he_normal       N(0, sqrt(2 / fan_in))
 *   he_uniform      U(±sqrt(6 / fan_in))
 *   xavier_normal   N(0, sqrt(2 / (fan_in+fan_out)))
 *   xavier_uniform  U(±sqrt(6 / (fan_in+fan_out)))
 *   normal(std)  uniform(low, high)  constant(value)  zeros  ones
 * Default: he_normal for rank >= 2, zeros for rank 1.
 */
#ifndef DN_INIT_H
#define DN_INIT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "runtime/rng.h"
#include "runtime/tensor.h"

typedef enum dn_init_type {
    DN_INIT_DEFAULT = 0, /* decided by rank when the shape is known */
    DN_INIT_ZEROS,
    DN_INIT_ONES,
    DN_INIT_CONSTANT,
    DN_INIT_NORMAL,
    DN_INIT_UNIFORM,
    DN_INIT_HE_NORMAL,
    DN_INIT_HE_UNIFORM,
    DN_INIT_XAVIER_NORMAL,
    DN_INIT_XAVIER_UNIFORM,
} dn_init_type;

typedef struct dn_init {
    dn_init_type type;
    double std, value, low, high;
} dn_init;

/* Parse a string or object init spec. On failure returns false and writes what was expected
 * and found into `why` (the caller adds the location). */
bool dn_init_parse(const cJSON *spec, dn_init *out, char *why, size_t why_size);

/* Fill n = numel(shape) floats. */
void dn_init_fill(const dn_init *init, const dn_shape *shape, float *data, dn_rng *rng);

const char *dn_init_name(dn_init_type t);

#endif
