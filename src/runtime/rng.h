/*
 * rng.h — the project's own random generator: the same numbers on every machine and compiler.
 *
 * State is one 64-bit counter advanced by the SplitMix64 step (Steele, Lea & Flood 2014);
 * each output is a bijective mix of the counter. Because an output depends only on (key,
 * counter), a kernel may also draw element i's number as dn_rng_hash(key, i): the same
 * result whatever the thread split (Dropout does this). Uniform floats use the top 24 bits;
 * normals use Box–Muller in double precision. No rand(), no global state.
 */
#ifndef DN_RNG_H
#define DN_RNG_H

#include <stdint.h>

typedef struct dn_rng {
    uint64_t state;
} dn_rng;

void dn_rng_seed(dn_rng *r, uint64_t seed);
uint64_t dn_rng_next(dn_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable in float). */
float dn_rng_uniform(dn_rng *r);
/* Standard normal, N(0, 1). */
double dn_rng_normal(dn_rng *r);
/* A uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint64_t dn_rng_below(dn_rng *r, uint64_t n);

#define DN_RNG_GAMMA 0x9E3779B97F4A7C15ull /* SplitMix64's increment: 2^64 / φ */

/* SplitMix64's output function: a bijective mix of 64 bits. */
static inline uint64_t dn_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Counter-based draw: a 64-bit mix of (key, i). Pure; inline so that a loop over i computes
 * dn_rng_mix(key) once. */
static inline uint64_t dn_rng_hash(uint64_t key, uint64_t i)
{
    return dn_rng_mix(dn_rng_mix(key) + (i + 1) * DN_RNG_GAMMA);
}

/* Uniform in [0, 1) from dn_rng_hash(key, i). */
static inline float dn_rng_hash_uniform(uint64_t key, uint64_t i)
{
    return (float)(int64_t)(dn_rng_hash(key, i) >> 40) * (1.0f / 16777216.0f);
}

#endif
