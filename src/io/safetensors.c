/*
 * safetensors.c — safetensors reader and writer; the format is described in safetensors.h.
 *
 * Reading: the whole file is read into one buffer, the JSON header is parsed with cJSON and
 * every entry is validated before the file is handed out; entries then point into the
 * buffer. Numbers in the header are JSON numbers, which cJSON keeps as doubles: they are
 * accepted only when they are integers no larger than 2^53 (exact in a double) — far
 * beyond any real file. Writing: the header is built with cJSON (which escapes the names),
 * with numbers inserted as raw decimal text so that large offsets are never printed in
 * exponent notation, padded with spaces to a multiple of 8, and written atomically.
 */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "runtime/json_strict.h"

/* Data are handed out as raw bytes; a big-endian host would need byte swaps. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_LEN_BYTES 8
#define ST_MAX_EXACT ((uint64_t)1 << 53) /* the largest integer a double holds exactly */
#define METADATA_KEY "__metadata__"
#define NAME_FMT "\"%.200s\"" /* names in messages, cut to keep the message readable */

/* ---------------------------------------------------------------- small helpers */

static const char *st_dtype_name(dn_dtype t)
{
    switch (t) {
    case DN_F32: return "F32";
    case DN_I32: return "I32";
    case DN_I64: return "I64";
    }
    return NULL;
}

static bool st_dtype_parse(const char *s, dn_dtype *out)
{
    static const dn_dtype all[] = { DN_F32, DN_I32, DN_I64 };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, st_dtype_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    return false;
}

static const char *json_kind(const cJSON *j)
{
    if (cJSON_IsObject(j))
        return "an object";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNull(j))
        return "null";
    return "an invalid value";
}

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = ST_LEN_BYTES - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A JSON number that is a whole number in [0, max]; false for anything else. */
static bool json_uint(const cJSON *j, uint64_t max, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return false;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d <= (double)max)) /* also false for NaN */
        return false;
    uint64_t v = (uint64_t)d;
    if ((double)v != d)
        return false;
    *out = v;
    return true;
}

/* ---------------------------------------------------------------- one entry */

typedef struct parse_ctx {
    const char *label;
    dn_err *err;
    uint64_t region_size; /* bytes after the header */
} parse_ctx;

typedef struct entry_fields {
    const cJSON *dtype, *shape, *offsets;
} entry_fields;

static dn_status entry_error(const parse_ctx *c, const char *name, const char *what,
                             const char *detail)
{
    return dn_err_set(c->err, DN_ERR_PARSE, "%s: tensor " NAME_FMT ": %s%s", c->label, name, what,
                      detail ? detail : "");
}

/* Collect exactly the three fields, rejecting unknown and repeated ones. */
static dn_status entry_collect(const parse_ctx *c, const char *name, const cJSON *obj,
                               entry_fields *f)
{
    memset(f, 0, sizeof *f);
    if (!cJSON_IsObject(obj))
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: tensor " NAME_FMT ": expected an object "
                          "with dtype, shape and data_offsets, found %s",
                          c->label, name, json_kind(obj));
    const cJSON *field;
    cJSON_ArrayForEach(field, obj)
    {
        const cJSON **slot = strcmp(field->string, "dtype") == 0          ? &f->dtype
                             : strcmp(field->string, "shape") == 0        ? &f->shape
                             : strcmp(field->string, "data_offsets") == 0 ? &f->offsets
                                                                          : NULL;
        if (!slot)
            return dn_err_set(c->err, DN_ERR_PARSE,
                              "%s: tensor " NAME_FMT ": unexpected field " NAME_FMT
                              " (expected only dtype, shape and data_offsets)",
                              c->label, name, field->string);
        if (*slot)
            return dn_err_set(c->err, DN_ERR_PARSE,
                              "%s: tensor " NAME_FMT ": field " NAME_FMT " appears twice", c->label,
                              name, field->string);
        *slot = field;
    }
    const char *missing = !f->dtype     ? "dtype"
                          : !f->shape   ? "shape"
                          : !f->offsets ? "data_offsets"
                                        : NULL;
    if (missing)
        return dn_err_set(c->err, DN_ERR_PARSE, "%s: tensor " NAME_FMT ": missing field \"%s\"",
                          c->label, name, missing);
    return DN_OK;
}

static dn_status entry_dtype(const parse_ctx *c, const char *name, const cJSON *j, dn_dtype *out)
{
    if (!cJSON_IsString(j))
        return entry_error(c, name, "dtype must be a string, found ", json_kind(j));
    if (!st_dtype_parse(j->valuestring, out))
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: tensor " NAME_FMT ": unsupported dtype " NAME_FMT
                          " (expected F32, I32 or I64)",
                          c->label, name, j->valuestring);
    return DN_OK;
}

static dn_status entry_shape(const parse_ctx *c, const char *name, const cJSON *j, dn_shape *out)
{
    if (!cJSON_IsArray(j))
        return entry_error(c, name, "shape must be an array, found ", json_kind(j));
    int rank = cJSON_GetArraySize(j);
    if (rank > DN_MAX_RANK)
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: tensor " NAME_FMT ": shape has %d "
                          "dimensions, more than the maximum %d",
                          c->label, name, rank, DN_MAX_RANK);
    memset(out, 0, sizeof *out);
    const cJSON *dim;
    cJSON_ArrayForEach(dim, j)
    {
        uint64_t v;
        if (!json_uint(dim, (uint64_t)DN_MAX_DIM, &v))
            return dn_err_set(c->err, DN_ERR_PARSE,
                              "%s: tensor " NAME_FMT ": shape dimension "
                              "%d must be an integer from 0 to %lld, found %s%s",
                              c->label, name, out->rank, (long long)DN_MAX_DIM, json_kind(dim),
                              cJSON_IsNumber(dim) ? " out of range or not whole" : "");
        out->d[out->rank++] = (int64_t)v;
    }
    return DN_OK;
}

static dn_status entry_offsets(const parse_ctx *c, const char *name, const cJSON *j,
                               uint64_t *begin, uint64_t *end)
{
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2 ||
        !json_uint(cJSON_GetArrayItem(j, 0), ST_MAX_EXACT, begin) ||
        !json_uint(cJSON_GetArrayItem(j, 1), ST_MAX_EXACT, end))
        return entry_error(c, name,
                           "data_offsets must be an array of two non-negative "
                           "integers [begin, end]",
                           NULL);
    if (*end < *begin)
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: tensor " NAME_FMT ": data_offsets [%llu, "
                          "%llu] end before begin",
                          c->label, name, (unsigned long long)*begin, (unsigned long long)*end);
    if (*end > c->region_size)
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: tensor " NAME_FMT ": data_offsets [%llu, "
                          "%llu] go past the end of the data region (%llu bytes)",
                          c->label, name, (unsigned long long)*begin, (unsigned long long)*end,
                          (unsigned long long)c->region_size);
    return DN_OK;
}

/* The byte count must match the shape exactly: fewer would read past the tensor. */
static dn_status entry_size(const parse_ctx *c, const char *name, dn_dtype dtype,
                            const dn_shape *shape, uint64_t begin, uint64_t end)
{
    char sh[DN_SHAPE_STR_MAX];
    int64_t numel = dn_shape_numel(shape), need;
    if (numel < 0 || !dn_mul_ok(numel, (int64_t)dn_dtype_size(dtype), &need))
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: tensor " NAME_FMT ": shape %s is too large: "
                          "its size in bytes overflows",
                          c->label, name, dn_shape_str(shape, sh, sizeof sh));
    if ((uint64_t)need != end - begin)
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: tensor " NAME_FMT ": %s %s needs %lld bytes "
                          "but data_offsets [%llu, %llu] give %llu",
                          c->label, name, st_dtype_name(dtype), dn_shape_str(shape, sh, sizeof sh),
                          (long long)need, (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)(end - begin));
    return DN_OK;
}

static dn_status parse_entry(const parse_ctx *c, const cJSON *obj, const unsigned char *region,
                             dn_st_entry *e)
{
    const char *name = obj->string;
    entry_fields f;
    uint64_t begin = 0, end = 0;
    dn_status s = entry_collect(c, name, obj, &f);
    if (s == DN_OK)
        s = entry_dtype(c, name, f.dtype, &e->dtype);
    if (s == DN_OK)
        s = entry_shape(c, name, f.shape, &e->shape);
    if (s == DN_OK)
        s = entry_offsets(c, name, f.offsets, &begin, &end);
    if (s == DN_OK)
        s = entry_size(c, name, e->dtype, &e->shape, begin, end);
    if (s != DN_OK)
        return s;
    e->name = strdup(name);
    if (!e->name)
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: cannot allocate a tensor name", c->label);
    e->data = region + begin;
    e->nbytes = (size_t)(end - begin);
    return DN_OK;
}

static dn_status check_metadata(const parse_ctx *c, const cJSON *meta)
{
    if (!cJSON_IsObject(meta))
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: \"" METADATA_KEY "\" must be an object of "
                          "strings, found %s",
                          c->label, json_kind(meta));
    const cJSON *item;
    cJSON_ArrayForEach(item, meta)
    {
        if (!cJSON_IsString(item))
            return dn_err_set(c->err, DN_ERR_PARSE,
                              "%s: \"" METADATA_KEY "\" value " NAME_FMT
                              " must be a string, found %s",
                              c->label, item->string, json_kind(item));
    }
    return DN_OK;
}

/* ---------------------------------------------------------------- whole-file checks */

static int cmp_entry_name(const void *a, const void *b)
{
    const dn_st_entry *x = *(const dn_st_entry *const *)a, *y = *(const dn_st_entry *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_entry_data(const void *a, const void *b)
{
    const dn_st_entry *x = *(const dn_st_entry *const *)a, *y = *(const dn_st_entry *const *)b;
    return x->data < y->data ? -1 : x->data > y->data ? 1 : 0;
}

/* Sorting a list of pointers makes both checks O(n log n). Empty tensors occupy no bytes
 * and cannot overlap anything. */
static dn_status check_unique_disjoint(const parse_ctx *c, const dn_st_file *f,
                                       const unsigned char *region)
{
    if (f->n < 2)
        return DN_OK;
    const dn_st_entry **p = malloc((size_t)f->n * sizeof *p);
    if (!p)
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: cannot allocate the entry index", c->label);
    for (int i = 0; i < f->n; i++)
        p[i] = &f->entries[i];
    dn_status s = DN_OK;
    qsort(p, (size_t)f->n, sizeof *p, cmp_entry_name);
    for (int i = 1; i < f->n && s == DN_OK; i++)
        if (strcmp(p[i - 1]->name, p[i]->name) == 0)
            s = dn_err_set(c->err, DN_ERR_PARSE,
                           "%s: tensor " NAME_FMT " appears twice in the "
                           "header",
                           c->label, p[i]->name);
    qsort(p, (size_t)f->n, sizeof *p, cmp_entry_data);
    const dn_st_entry *prev = NULL;
    for (int i = 0; i < f->n && s == DN_OK; i++) {
        if (p[i]->nbytes == 0)
            continue;
        if (prev && p[i]->data < prev->data + prev->nbytes)
            s = dn_err_set(c->err, DN_ERR_PARSE,
                           "%s: tensors " NAME_FMT " [%td, %td) and " NAME_FMT
                           " [%td, %td) overlap in the data region",
                           c->label, prev->name, prev->data - region,
                           prev->data + prev->nbytes - region, p[i]->name, p[i]->data - region,
                           p[i]->data + p[i]->nbytes - region);
        if (!prev || p[i]->data + p[i]->nbytes > prev->data + prev->nbytes)
            prev = p[i];
    }
    free(p);
    return s;
}

/* The 8-byte length and its bounds; *hlen is the header's length. */
static dn_status parse_length(const unsigned char *buf, size_t size, const char *label,
                              uint64_t *hlen, dn_err *err)
{
    if (size < ST_LEN_BYTES)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: not a safetensors file: %zu bytes, expected at "
                          "least 8 (the header length)",
                          label, size);
    *hlen = read_le64(buf);
    if (*hlen > (uint64_t)(size - ST_LEN_BYTES))
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: safetensors header length is %llu bytes but "
                          "only %zu bytes follow (truncated or not a safetensors file)",
                          label, (unsigned long long)*hlen, size - ST_LEN_BYTES);
    if (*hlen > DN_ST_HEADER_MAX)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: safetensors header length %llu exceeds the "
                          "limit of %llu bytes",
                          label, (unsigned long long)*hlen, (unsigned long long)DN_ST_HEADER_MAX);
    return DN_OK;
}

/* Parse the JSON and require that only whitespace (the writer's padding) follows it. */
static dn_status parse_json(const char *text, size_t len, const char *label, cJSON **out,
                            dn_err *err)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: safetensors header is not valid JSON (error "
                          "near byte %zu of %zu)",
                          label, at, len);
    }
    for (const char *p = end; p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return dn_err_set(err, DN_ERR_PARSE,
                              "%s: safetensors header has extra text after "
                              "the JSON object, at byte %td",
                              label, p - text);
        }
    /* \u0000 in a name would be cut there by cJSON: refused, with the JSON location. */
    dn_status strict = dn_json_check_nul(text, len, label, err);
    if (strict != DN_OK) {
        cJSON_Delete(root);
        return strict;
    }
    if (!cJSON_IsObject(root)) {
        dn_status s = dn_err_set(err, DN_ERR_PARSE,
                                 "%s: safetensors header must be a JSON "
                                 "object, found %s",
                                 label, json_kind(root));
        cJSON_Delete(root);
        return s;
    }
    *out = root;
    return DN_OK;
}

static dn_status parse_entries(const parse_ctx *c, const cJSON *root, const unsigned char *region,
                               dn_st_file *out)
{
    int count = 0, metas = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) count += strcmp(item->string, METADATA_KEY) != 0;
    out->entries = calloc(count ? (size_t)count : 1, sizeof *out->entries);
    if (!out->entries)
        return dn_err_set(c->err, DN_ERR_NOMEM, "%s: cannot allocate %d entries", c->label, count);
    cJSON_ArrayForEach(item, root)
    {
        dn_status s;
        if (strcmp(item->string, METADATA_KEY) == 0)
            s = ++metas > 1 ? dn_err_set(c->err, DN_ERR_PARSE,
                                         "%s: \"" METADATA_KEY "\" appears "
                                         "twice",
                                         c->label)
                            : check_metadata(c, item);
        else
            s = parse_entry(c, item, region, &out->entries[out->n++]);
        if (s != DN_OK)
            return s;
    }
    return check_unique_disjoint(c, out, region);
}

static dn_status parse_file(const unsigned char *buf, size_t size, const char *label,
                            dn_st_file *out, dn_err *err)
{
    uint64_t hlen = 0;
    dn_status s = parse_length(buf, size, label, &hlen, err);
    if (s != DN_OK)
        return s;
    cJSON *root = NULL;
    s = parse_json((const char *)buf + ST_LEN_BYTES, (size_t)hlen, label, &root, err);
    if (s != DN_OK)
        return s;
    size_t region_at = ST_LEN_BYTES + (size_t)hlen;
    parse_ctx c = { label, err, (uint64_t)(size - region_at) };
    s = parse_entries(&c, root, buf + region_at, out);
    /* A tensor listed twice is reported by parse_entries; a field given twice inside an entry
     * or in __metadata__ is found here. */
    if (s == DN_OK)
        s = dn_json_check_dups(root, label, err);
    cJSON_Delete(root);
    return s;
}

dn_status dn_st_parse(unsigned char *buf, size_t size, const char *label, dn_st_file *out,
                      dn_err *err)
{
    memset(out, 0, sizeof *out);
    if (!label)
        label = "<safetensors>";
    if (!buf) {
        return dn_err_set(err, DN_ERR_ARG, "%s: NULL buffer", label);
    }
    dn_status s = parse_file(buf, size, label, out, err);
    out->buf = buf;
    out->size = size;
    if (s != DN_OK)
        dn_st_free(out); /* frees buf too: ownership passed in either way */
    return s;
}

dn_status dn_st_read(const char *path, dn_st_file *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t size;
    dn_status s = dn_file_read_all(path, DN_FILE_MAX, &buf, &size, err);
    if (s != DN_OK)
        return s;
    return dn_st_parse(buf, size, path, out, err);
}

const dn_st_entry *dn_st_find(const dn_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->entries[i].name, name) == 0)
            return &f->entries[i];
    return NULL;
}

void dn_st_free(dn_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; f->entries && i < f->n; i++)
        free(f->entries[i].name);
    free(f->entries);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

/* ---------------------------------------------------------------- writing */

/* Validate one tensor; *nbytes gets its data size. */
static dn_status check_tensor(const char *path, const dn_st_tensor *t, int index, size_t *nbytes,
                              dn_err *err)
{
    char sh[DN_SHAPE_STR_MAX];
    if (!t->name || !t->name[0] || strcmp(t->name, METADATA_KEY) == 0)
        return dn_err_set(err, DN_ERR_ARG, "%s: tensor %d: name %s%s%s is not allowed", path, index,
                          t->name ? "\"" : "", t->name ? t->name : "NULL", t->name ? "\"" : "");
    if (!st_dtype_name(t->dtype) || !t->shape)
        return dn_err_set(err, DN_ERR_ARG, "%s: tensor " NAME_FMT ": %s", path, t->name,
                          !t->shape ? "NULL shape" : "unknown dtype");
    const dn_shape *s = t->shape;
    bool dims_ok = s->rank >= 0 && s->rank <= DN_MAX_RANK;
    for (int i = 0; dims_ok && i < s->rank; i++)
        dims_ok = s->d[i] >= 0 && s->d[i] <= DN_MAX_DIM;
    int64_t numel = dims_ok ? dn_shape_numel(s) : -1, total;
    if (numel < 0 || !dn_mul_ok(numel, (int64_t)dn_dtype_size(t->dtype), &total) ||
        (uint64_t)total > SIZE_MAX)
        return dn_err_set(err, DN_ERR_ARG,
                          "%s: tensor " NAME_FMT ": cannot write shape %s "
                          "(rank %d)",
                          path, t->name, dims_ok ? dn_shape_str(s, sh, sizeof sh) : "[invalid]",
                          s->rank);
    if (total > 0 && !t->data)
        return dn_err_set(err, DN_ERR_ARG, "%s: tensor " NAME_FMT ": NULL data", path, t->name);
    *nbytes = (size_t)total;
    return DN_OK;
}

static dn_status check_tensors(const char *path, const dn_st_tensor *t, int n, size_t *sizes,
                               dn_err *err)
{
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        dn_status s = check_tensor(path, &t[i], i, &sizes[i], err);
        if (s != DN_OK)
            return s;
        for (int j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                return dn_err_set(err, DN_ERR_ARG, "%s: tensor " NAME_FMT " is given twice", path,
                                  t[i].name);
        offset += sizes[i];
        if (offset > ST_MAX_EXACT)
            return dn_err_set(err, DN_ERR_ARG, "%s: tensors total more than 2^53 bytes", path);
    }
    return DN_OK;
}

static bool add_raw_number(cJSON *array, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    cJSON *raw = cJSON_CreateRaw(text);
    if (raw && cJSON_AddItemToArray(array, raw))
        return true;
    cJSON_Delete(raw);
    return false;
}

/* One {"dtype", "shape", "data_offsets"} object added to root under the tensor's name. */
static bool add_entry(cJSON *root, const dn_st_tensor *t, uint64_t begin, uint64_t end)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj || !cJSON_AddItemToObject(root, t->name, obj)) {
        cJSON_Delete(obj);
        return false;
    }
    cJSON *shape, *offsets;
    if (!cJSON_AddStringToObject(obj, "dtype", st_dtype_name(t->dtype)) ||
        !(shape = cJSON_AddArrayToObject(obj, "shape")) ||
        !(offsets = cJSON_AddArrayToObject(obj, "data_offsets")))
        return false;
    for (int d = 0; d < t->shape->rank; d++)
        if (!add_raw_number(shape, (uint64_t)t->shape->d[d]))
            return false;
    return add_raw_number(offsets, begin) && add_raw_number(offsets, end);
}

/* The header text, padded with spaces to a multiple of 8; malloc'ed. */
static char *build_header(const dn_st_tensor *t, int n, const size_t *sizes, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    uint64_t offset = 0;
    bool ok = root != NULL;
    for (int i = 0; ok && i < n; i++) {
        ok = add_entry(root, &t[i], offset, offset + sizes[i]);
        offset += sizes[i];
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json)
        return NULL;
    size_t jlen = strlen(json), padded = (jlen + 7) / 8 * 8;
    char *text = malloc(padded + 1);
    if (text) {
        memcpy(text, json, jlen);
        memset(text + jlen, ' ', padded - jlen);
        text[padded] = '\0';
        *len = padded;
    }
    cJSON_free(json);
    return text;
}

static dn_status write_all(const char *path, const char *header, size_t hlen, const dn_st_tensor *t,
                           int n, const size_t *sizes, dn_err *err)
{
    unsigned char len_bytes[ST_LEN_BYTES];
    for (int i = 0; i < ST_LEN_BYTES; i++)
        len_bytes[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    dn_atomic_file f;
    dn_status s = dn_atomic_open(&f, path, err);
    if (s != DN_OK)
        return s;
    if ((s = dn_atomic_write(&f, len_bytes, sizeof len_bytes, err)) != DN_OK ||
        (s = dn_atomic_write(&f, header, hlen, err)) != DN_OK)
        return s; /* the writer removed its temporary file */
    for (int i = 0; i < n; i++)
        if ((s = dn_atomic_write(&f, t[i].data, sizes[i], err)) != DN_OK)
            return s;
    return dn_atomic_commit(&f, err);
}

dn_status dn_st_write(const char *path, const dn_st_tensor *t, int n, dn_err *err)
{
    if (!path || n < 0 || (n > 0 && !t))
        return dn_err_set(err, DN_ERR_ARG, "dn_st_write: %s",
                          !path   ? "NULL path"
                          : n < 0 ? "negative tensor count"
                                  : "NULL tensor list");
    size_t *sizes = malloc((n ? (size_t)n : 1) * sizeof *sizes);
    if (!sizes)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %d sizes", path, n);
    dn_status s = check_tensors(path, t, n, sizes, err);
    size_t hlen = 0;
    char *header = NULL;
    if (s == DN_OK && !(header = build_header(t, n, sizes, &hlen)))
        s = dn_err_set(err, DN_ERR_NOMEM, "%s: cannot build the safetensors header", path);
    if (s == DN_OK)
        s = write_all(path, header, hlen, t, n, sizes, err);
    free(header);
    free(sizes);
    return s;
}

dn_status dn_st_write_mem(const dn_st_tensor *t, int n, const char *label, unsigned char **out,
                          size_t *size, dn_err *err)
{
    *out = NULL;
    *size = 0;
    if (!label)
        label = "<safetensors>";
    if (n < 0 || (n > 0 && !t))
        return dn_err_set(err, DN_ERR_ARG, "dn_st_write_mem: %s",
                          n < 0 ? "negative tensor count" : "NULL tensor list");
    size_t *sizes = malloc((n ? (size_t)n : 1) * sizeof *sizes);
    if (!sizes)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %d sizes", label, n);
    dn_status s = check_tensors(label, t, n, sizes, err);
    size_t hlen = 0, total = 0;
    char *header = NULL;
    if (s == DN_OK && !(header = build_header(t, n, sizes, &hlen)))
        s = dn_err_set(err, DN_ERR_NOMEM, "%s: cannot build the safetensors header", label);
    if (s == DN_OK) {
        /* check_tensors bounded the data to 2^53 bytes: the sum cannot overflow a 64-bit
         * size_t, and on 32-bit hosts the allocation fails first. */
        total = ST_LEN_BYTES + hlen;
        for (int i = 0; i < n; i++)
            total += sizes[i];
        unsigned char *buf = malloc(total ? total : 1);
        if (!buf) {
            s = dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu bytes", label, total);
        } else {
            for (int i = 0; i < ST_LEN_BYTES; i++)
                buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
            memcpy(buf + ST_LEN_BYTES, header, hlen);
            size_t at = ST_LEN_BYTES + hlen;
            for (int i = 0; i < n; i++) {
                if (sizes[i])
                    memcpy(buf + at, t[i].data, sizes[i]);
                at += sizes[i];
            }
            *out = buf;
            *size = total;
        }
    }
    free(header);
    free(sizes);
    return s;
}
