/* init.c — parsing of init specs and filling params from the generator (see init.h). */
#include "runtime/init.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    dn_init_type type;
} init_names[] = {
    { "zeros", DN_INIT_ZEROS },
    { "ones", DN_INIT_ONES },
    { "constant", DN_INIT_CONSTANT },
    { "normal", DN_INIT_NORMAL },
    { "uniform", DN_INIT_UNIFORM },
    { "he_normal", DN_INIT_HE_NORMAL },
    { "he_uniform", DN_INIT_HE_UNIFORM },
    { "xavier_normal", DN_INIT_XAVIER_NORMAL },
    { "xavier_uniform", DN_INIT_XAVIER_UNIFORM },
};
#define N_INIT_NAMES (sizeof init_names / sizeof init_names[0])

const char *dn_init_name(dn_init_type t)
{
    for (size_t i = 0; i < N_INIT_NAMES; i++)
        if (init_names[i].type == t)
            return init_names[i].name;
    return "default";
}

static bool lookup(const char *name, dn_init_type *out)
{
    for (size_t i = 0; i < N_INIT_NAMES; i++)
        if (strcmp(init_names[i].name, name) == 0) {
            *out = init_names[i].type;
            return true;
        }
    return false;
}

static bool read_number(const cJSON *obj, const char *key, double *out, bool required, char *why,
                        size_t why_size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required)
            snprintf(why, why_size, "field \"%s\" is required for this init type", key);
        return !required;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        snprintf(why, why_size, "field \"%s\" must be a finite number", key);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

static bool parse_object(const cJSON *spec, dn_init *out, char *why, size_t why_size)
{
    static const char *const allowed[] = { "type", "std", "value", "low", "high" };
    for (const cJSON *f = spec->child; f; f = f->next) {
        bool known = false;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            known |= strcmp(f->string, allowed[i]) == 0;
        if (!known) {
            snprintf(why, why_size,
                     "unknown init field \"%s\" (expected type, std, value, low, high)", f->string);
            return false;
        }
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(spec, "type");
    if (!cJSON_IsString(type)) {
        snprintf(why, why_size, "init object needs a string \"type\"");
        return false;
    }
    if (!lookup(type->valuestring, &out->type)) {
        snprintf(why, why_size, "unknown init type \"%s\"", type->valuestring);
        return false;
    }
    switch (out->type) {
    case DN_INIT_NORMAL:
        if (!read_number(spec, "std", &out->std, true, why, why_size))
            return false;
        if (out->std < 0) {
            snprintf(why, why_size, "\"std\" must be >= 0, found %g", out->std);
            return false;
        }
        return true;
    case DN_INIT_UNIFORM:
        if (!read_number(spec, "low", &out->low, true, why, why_size) ||
            !read_number(spec, "high", &out->high, true, why, why_size))
            return false;
        if (out->low > out->high) {
            snprintf(why, why_size, "\"low\" (%g) must not exceed \"high\" (%g)", out->low,
                     out->high);
            return false;
        }
        return true;
    case DN_INIT_CONSTANT: return read_number(spec, "value", &out->value, true, why, why_size);
    default: return true;
    }
}

bool dn_init_parse(const cJSON *spec, dn_init *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (cJSON_IsString(spec)) {
        if (!lookup(spec->valuestring, &out->type)) {
            snprintf(why, why_size,
                     "unknown init \"%s\" (expected zeros, ones, he_normal, he_uniform, "
                     "xavier_normal, xavier_uniform or an object)",
                     spec->valuestring);
            return false;
        }
        if (out->type == DN_INIT_NORMAL || out->type == DN_INIT_UNIFORM ||
            out->type == DN_INIT_CONSTANT) {
            snprintf(why, why_size, "init \"%s\" needs its parameters: write it as an object",
                     spec->valuestring);
            return false;
        }
        return true;
    }
    if (cJSON_IsObject(spec))
        return parse_object(spec, out, why, why_size);
    snprintf(why, why_size, "init must be a string or an object");
    return false;
}

static void fans(const dn_shape *s, double *fan_in, double *fan_out)
{
    if (s->rank == 2) {
        *fan_in = (double)s->d[0];
        *fan_out = (double)s->d[1];
    } else if (s->rank >= 3) {
        double receptive = (double)dn_shape_numel_from(s, 2);
        *fan_in = (double)s->d[1] * receptive;
        *fan_out = (double)s->d[0] * receptive;
    } else {
        *fan_in = *fan_out = s->rank == 1 ? (double)s->d[0] : 1.0;
    }
}

static void fill_normal(float *x, int64_t n, double std, dn_rng *rng)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(std * dn_rng_normal(rng));
}

static void fill_uniform(float *x, int64_t n, double low, double high, dn_rng *rng)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(low + (high - low) * (double)dn_rng_uniform(rng));
}

static void fill_constant(float *x, int64_t n, float v)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = v;
}

void dn_init_fill(const dn_init *init, const dn_shape *shape, float *data, dn_rng *rng)
{
    int64_t n = dn_shape_numel(shape);
    double fan_in, fan_out;
    fans(shape, &fan_in, &fan_out);
    dn_init_type type = init->type;
    if (type == DN_INIT_DEFAULT)
        type = shape->rank >= 2 ? DN_INIT_HE_NORMAL : DN_INIT_ZEROS;
    switch (type) {
    case DN_INIT_DEFAULT:
    case DN_INIT_ZEROS: fill_constant(data, n, 0.0f); break;
    case DN_INIT_ONES: fill_constant(data, n, 1.0f); break;
    case DN_INIT_CONSTANT: fill_constant(data, n, (float)init->value); break;
    case DN_INIT_NORMAL: fill_normal(data, n, init->std, rng); break;
    case DN_INIT_UNIFORM: fill_uniform(data, n, init->low, init->high, rng); break;
    case DN_INIT_HE_NORMAL: fill_normal(data, n, sqrt(2.0 / fan_in), rng); break;
    case DN_INIT_HE_UNIFORM: {
        double b = sqrt(6.0 / fan_in);
        fill_uniform(data, n, -b, b, rng);
        break;
    }
    case DN_INIT_XAVIER_NORMAL: fill_normal(data, n, sqrt(2.0 / (fan_in + fan_out)), rng); break;
    case DN_INIT_XAVIER_UNIFORM: {
        double b = sqrt(6.0 / (fan_in + fan_out));
        fill_uniform(data, n, -b, b, rng);
        break;
    }
    }
}
