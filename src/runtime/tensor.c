/* tensor.c — shape arithmetic with overflow checks and shape formatting (see tensor.h). */
#include "runtime/tensor.h"

#include <stdio.h>
#include <string.h>

bool dn_mul_ok(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0)
        return false;
    if (a != 0 && b > INT64_MAX / a)
        return false;
    *out = a * b;
    return true;
}

int64_t dn_mul_sat(int64_t a, int64_t b)
{
    int64_t r;
    return dn_mul_ok(a, b, &r) ? r : INT64_MAX;
}

int64_t dn_shape_numel_from(const dn_shape *s, int from)
{
    int64_t n = 1;
    for (int i = from; i < s->rank; i++)
        if (!dn_mul_ok(n, s->d[i], &n))
            return -1;
    return n;
}

int64_t dn_shape_numel(const dn_shape *s) { return dn_shape_numel_from(s, 0); }

bool dn_shape_equal(const dn_shape *a, const dn_shape *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i])
            return false;
    return true;
}

dn_shape dn_shape_make(int rank, const int64_t *dims, bool batched)
{
    dn_shape s = { .rank = rank, .batched = batched };
    for (int i = 0; i < rank && i < DN_MAX_RANK; i++)
        s.d[i] = dims[i];
    return s;
}

char *dn_shape_str(const dn_shape *s, char *buf, size_t size)
{
    size_t used = 0;
    int n = snprintf(buf, size, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < s->rank && used < size; i++) {
        const char *sep = i ? "," : "";
        if (i == 0 && s->batched)
            n = snprintf(buf + used, size - used, "%sN", sep);
        else
            n = snprintf(buf + used, size - used, "%s%lld", sep, (long long)s->d[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

size_t dn_dtype_size(dn_dtype t) { return t == DN_I64 ? 8 : 4; }

const char *dn_dtype_name(dn_dtype t)
{
    switch (t) {
    case DN_F32: return "float32";
    case DN_I32: return "int32";
    case DN_I64: return "int64";
    }
    return "unknown";
}

bool dn_all_finite(const float *x, int64_t n)
{
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b); /* the bits, within the aliasing rules */
        bad |= (b & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}
