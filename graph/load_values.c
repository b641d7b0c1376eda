/*
 * load_values.c — the loader's names and values: the name table, graph inputs and declared
 * params (step 2 of load.c's walk), their shapes.
 *
 * Every named tensor (graph input, param, node output) is one value, and names are unique
 * across all three kinds. Names map to values through an open-addressing table with linear
 * probing on an FNV-1a hash; load.c sizes it to a power of two at least twice the values a
 * file can declare, so it never fills (a probe always reaches an empty slot) and a lookup
 * takes O(1) expected steps however large the file.
 *
 * A shape is an array of integer dimensions in [1, DN_MAX_DIM], at most DN_MAX_RANK of them;
 * a graph input may make its first one `null`, the batch, held as 1 with `batched` set. The
 * element count must fit 64 bits, so no later size computation can overflow. A param's shape
 * may be left out here when a node creates the param implicitly (load_nodes.c).
 *
 * The "state" section (tensors ops update but no optimiser trains, BatchNorm's running
 * statistics) has the same entries as "params" and goes through the same code; a name in
 * both is refused with its own message.
 */
#include "graph/load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ name table */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int dn_load_lookup(const dn_loader *L, const char *name)
{
    size_t mask = L->names.cap - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        int v = L->names.slots[i];
        if (v < 0 || strcmp(L->g->values[v].name, name) == 0)
            return v;
    }
}

static void names_insert(dn_loader *L, int value)
{
    size_t mask = L->names.cap - 1;
    size_t i = hash_name(L->g->values[value].name) & mask;
    while (L->names.slots[i] >= 0)
        i = (i + 1) & mask;
    L->names.slots[i] = value;
}

/* ------------------------------------------------------------------ values */

dn_status dn_load_add_value(dn_loader *L, const char *name, dn_value_kind kind, const char *where,
                            const char *loc, int *out)
{
    if (!name[0])
        return dn_load_fail(L, DN_ERR_MODEL, "%s(%s): names must not be empty", where, loc);
    int existing = dn_load_lookup(L, name);
    if (existing >= 0) {
        static const char *const kind_names[] = { "an input", "a param", "a node",
                                                  "a state tensor" };
        dn_value_kind old = L->g->values[existing].kind;
        if ((kind == DN_VALUE_STATE && old == DN_VALUE_PARAM) ||
            (kind == DN_VALUE_PARAM && old == DN_VALUE_STATE))
            return dn_load_fail(L, DN_ERR_MODEL,
                                "%s(%s): \"%s\" is declared both in \"params\" and in \"state\" "
                                "(a tensor is either trained or state, not both)",
                                where, loc, name);
        return dn_load_fail(L, DN_ERR_MODEL, "%s(%s): duplicate name \"%s\" (already %s)", where,
                            loc, name, kind_names[old]);
    }
    if (L->g->n_values == L->values_cap)
        return dn_load_fail(L, DN_ERR_NOMEM, "too many named tensors");
    int v = L->g->n_values;
    dn_value *val = &L->g->values[v];
    memset(val, 0, sizeof *val);
    val->name = strdup(name);
    if (!val->name)
        return dn_load_fail(L, DN_ERR_NOMEM, "out of memory");
    val->kind = kind;
    val->node = -1;
    L->g->n_values++;
    names_insert(L, v);
    *out = v;
    return DN_OK;
}

/* A shape array: positive integer dims, `null` allowed only first (the batch) when
 * allow_batch. Overflow of the element count is an error. */
static dn_status parse_shape(dn_loader *L, const cJSON *arr, bool allow_batch, const char *where,
                             const char *loc, dn_shape *out)
{
    if (!cJSON_IsArray(arr))
        return dn_load_fail(L, DN_ERR_MODEL, "%s(%s): expected an array of dimensions, found %s",
                            where, loc, dn_json_kind(arr));
    int rank = cJSON_GetArraySize(arr);
    if (rank > DN_MAX_RANK)
        return dn_load_fail(L, DN_ERR_MODEL, "%s(%s): rank %d is above the limit of %d", where, loc,
                            rank, DN_MAX_RANK);
    memset(out, 0, sizeof *out);
    out->rank = rank;
    int i = 0;
    for (const cJSON *d = arr->child; d; d = d->next, i++) {
        if (cJSON_IsNull(d) && i == 0 && allow_batch) {
            out->batched = true;
            out->d[0] = 1;
            continue;
        }
        if (cJSON_IsNull(d))
            return dn_load_fail(L, DN_ERR_MODEL,
                                "%s(%s/%d): null is only allowed as the first (batch) dimension%s",
                                where, loc, i, allow_batch ? "" : " of a graph input");
        if (!cJSON_IsNumber(d) || !isfinite(d->valuedouble) ||
            d->valuedouble != floor(d->valuedouble))
            return dn_load_fail(L, DN_ERR_MODEL,
                                "%s(%s/%d): expected a positive integer dimension, found %s", where,
                                loc, i, cJSON_IsNumber(d) ? "a fraction" : dn_json_kind(d));
        if (d->valuedouble < 1)
            return dn_load_fail(L, DN_ERR_SHAPE, "%s(%s/%d): dimension must be >= 1, found %.0f",
                                where, loc, i, d->valuedouble);
        if (d->valuedouble > (double)DN_MAX_DIM)
            return dn_load_fail(L, DN_ERR_SHAPE,
                                "%s(%s/%d): dimension %.0f is above the limit of %lld", where, loc,
                                i, d->valuedouble, (long long)DN_MAX_DIM);
        out->d[i] = (int64_t)d->valuedouble;
    }
    if (dn_shape_numel(out) < 0)
        return dn_load_fail(L, DN_ERR_SHAPE,
                            "%s(%s): the element count of this shape overflows 64 bits", where,
                            loc);
    return DN_OK;
}

/* ------------------------------------------------------------------ inputs and params */

dn_status dn_load_inputs(dn_loader *L, const cJSON *inputs)
{
    if (!cJSON_IsObject(inputs))
        return dn_load_fail(L, DN_ERR_MODEL,
                            "(/inputs): expected an object of graph inputs, found %s",
                            dn_json_kind(inputs));
    static const char *const allowed[] = { "shape", "dtype", NULL };
    for (const cJSON *in = inputs->child; in; in = in->next) {
        char where[300], loc[300];
        snprintf(where, sizeof where, "input \"%s\" ", in->string);
        snprintf(loc, sizeof loc, "/inputs/%s", in->string);
        if (!cJSON_IsObject(in))
            return dn_load_fail(L, DN_ERR_MODEL,
                                "%s(%s): expected an object with \"shape\", found %s", where, loc,
                                dn_json_kind(in));
        dn_status st = dn_load_check_keys(L, in, allowed, where, loc);
        if (st)
            return st;
        int v;
        if ((st = dn_load_add_value(L, in->string, DN_VALUE_INPUT, where, loc, &v)))
            return st;
        L->g->input_values[L->g->n_inputs++] = v;
        dn_value *val = &L->g->values[v];
        char sloc[310];
        snprintf(sloc, sizeof sloc, "%s/shape", loc);
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
        if (!shape)
            return dn_load_fail(L, DN_ERR_MODEL, "%s(%s): \"shape\" is required", where, loc);
        if ((st = parse_shape(L, shape, true, where, sloc, &val->desc.shape)))
            return st;
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(in, "dtype");
        val->desc.dtype = DN_F32;
        if (dtype) {
            if (cJSON_IsString(dtype) && strcmp(dtype->valuestring, "float32") == 0)
                val->desc.dtype = DN_F32;
            else if (cJSON_IsString(dtype) && strcmp(dtype->valuestring, "int32") == 0)
                val->desc.dtype = DN_I32;
            else
                return dn_load_fail(L, DN_ERR_MODEL,
                                    "%s(%s/dtype): expected \"float32\" or \"int32\", found "
                                    "%s%s%s",
                                    where, loc, cJSON_IsString(dtype) ? "\"" : "",
                                    cJSON_IsString(dtype) ? dtype->valuestring
                                                          : dn_json_kind(dtype),
                                    cJSON_IsString(dtype) ? "\"" : "");
        }
    }
    return DN_OK;
}

/* The "params" or "state" section: the same entries (shape, init), different kinds. */
static dn_status load_tensors(dn_loader *L, const cJSON *section, dn_value_kind kind)
{
    bool state = kind == DN_VALUE_STATE;
    const char *key = state ? "state" : "params", *what = state ? "state" : "param";
    if (!section)
        return DN_OK;
    if (!cJSON_IsObject(section))
        return dn_load_fail(L, DN_ERR_MODEL, "(/%s): expected an object of %s tensors, found %s",
                            key, what, dn_json_kind(section));
    static const char *const allowed[] = { "shape", "init", NULL };
    int index = 0;
    for (const cJSON *p = section->child; p; p = p->next, index++) {
        char where[300], loc[300];
        snprintf(where, sizeof where, "%s \"%s\" ", what, p->string);
        snprintf(loc, sizeof loc, "/%s/%s", key, p->string);
        if (!cJSON_IsObject(p))
            return dn_load_fail(L, DN_ERR_MODEL, "%s(%s): expected an object, found %s", where, loc,
                                dn_json_kind(p));
        dn_status st = dn_load_check_keys(L, p, allowed, where, loc);
        if (st)
            return st;
        int v;
        if ((st = dn_load_add_value(L, p->string, kind, where, loc, &v)))
            return st;
        if (state)
            L->g->state_values[L->g->n_state++] = v;
        else
            L->g->param_values[L->g->n_params++] = v;
        L->param_json_index[v] = index;
        dn_value *val = &L->g->values[v];
        val->desc.dtype = DN_F32;
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(p, "shape");
        if (shape) {
            char sloc[310];
            snprintf(sloc, sizeof sloc, "%s/shape", loc);
            if ((st = parse_shape(L, shape, false, where, sloc, &val->desc.shape)))
                return st;
            L->has_shape[v] = true;
        }
        const cJSON *init = cJSON_GetObjectItemCaseSensitive(p, "init");
        char why[256];
        if (init && !dn_init_parse(init, &val->init, why, sizeof why))
            return dn_load_fail(L, DN_ERR_MODEL, "%s(%s/init): %s", where, loc, why);
    }
    return DN_OK;
}

dn_status dn_load_params(dn_loader *L, const cJSON *params)
{
    return load_tensors(L, params, DN_VALUE_PARAM);
}

dn_status dn_load_state(dn_loader *L, const cJSON *state)
{
    return load_tensors(L, state, DN_VALUE_STATE);
}
