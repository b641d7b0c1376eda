/* rng.c — SplitMix64 generator, uniform and normal draws (see rng.h). */
#include "runtime/rng.h"

#include <math.h>

void dn_rng_seed(dn_rng *r, uint64_t seed) { r->state = dn_rng_mix(seed + DN_RNG_GAMMA); }

uint64_t dn_rng_next(dn_rng *r)
{
    r->state += DN_RNG_GAMMA;
    return dn_rng_mix(r->state);
}

float dn_rng_uniform(dn_rng *r) { return (float)(dn_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

static double uniform_open01(dn_rng *r)
{
    /* 53 bits, shifted by half a step so that 0 never comes out (log(0) below). */
    return ((double)(dn_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double dn_rng_normal(dn_rng *r)
{
    double u1 = uniform_open01(r);
    double u2 = uniform_open01(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t dn_rng_below(dn_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = dn_rng_next(r);
    while (x >= limit);
    return x % n;
}
