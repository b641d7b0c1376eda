/* common.c — what ops share: attr reading with messages that name the node and field, dtype/rank
 * and bias checks, window sizes, the pass-through gradient loop (see op.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ops/op.h"
#include "runtime/parallel.h"

dn_status dn_node_fail(const dn_node_ctx *c, dn_status status, const char *field, const char *fmt,
                       ...)
{
    char what[DN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (field)
        return dn_err_set(c->err, status, "%s: node \"%s\" (/nodes/%d/%s): %s", c->file, c->node,
                          c->index, field, what);
    return dn_err_set(c->err, status, "%s: node \"%s\" (/nodes/%d): %s", c->file, c->node, c->index,
                      what);
}

static const cJSON *attr(const dn_node_ctx *c, const char *key)
{
    return c->attrs ? cJSON_GetObjectItemCaseSensitive(c->attrs, key) : NULL;
}

bool dn_attr_present(const dn_node_ctx *c, const char *key) { return attr(c, key) != NULL; }

const char *dn_json_kind(const cJSON *v)
{
    if (!v)
        return "nothing";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "an invalid value";
}

dn_status dn_attrs_only(const dn_node_ctx *c, const char *const *allowed)
{
    if (!c->attrs)
        return DN_OK;
    for (const cJSON *f = c->attrs->child; f; f = f->next) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, f->string) == 0;
        if (known)
            continue;
        char list[256] = "";
        size_t used = 0;
        for (const char *const *a = allowed; *a && used < sizeof list; a++) {
            int n = snprintf(list + used, sizeof list - used, "%s%s", a == allowed ? "" : ", ", *a);
            used += n > 0 ? (size_t)n : 0;
        }
        char field[300];
        snprintf(field, sizeof field, "attrs/%s", f->string);
        return dn_node_fail(c, DN_ERR_MODEL, field, "unknown attr \"%s\" (expected %s)", f->string,
                            used ? list : "no attrs");
    }
    return DN_OK;
}

dn_status dn_attrs_none(const dn_node_ctx *c, void *attrs)
{
    (void)attrs;
    static const char *const allowed[] = { NULL };
    return dn_attrs_only(c, allowed);
}

static dn_status int_value(const dn_node_ctx *c, const char *field, const cJSON *v, int64_t min,
                           int64_t max, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return dn_node_fail(c, DN_ERR_MODEL, field, "expected an integer, found %s",
                            dn_json_kind(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return dn_node_fail(c, DN_ERR_MODEL, field, "expected an integer, found %g", d);
    if (d < (double)min || d > (double)max)
        return dn_node_fail(c, DN_ERR_MODEL, field, "expected an integer in [%lld, %lld], found %g",
                            (long long)min, (long long)max, d);
    *out = (int64_t)d;
    return DN_OK;
}

dn_status dn_attr_int(const dn_node_ctx *c, const char *key, int64_t def, int64_t min, int64_t max,
                      int64_t *out)
{
    const cJSON *v = attr(c, key);
    *out = def;
    if (!v)
        return DN_OK;
    char field[128];
    snprintf(field, sizeof field, "attrs/%s", key);
    return int_value(c, field, v, min, max, out);
}

dn_status dn_attr_int2(const dn_node_ctx *c, const char *key, int64_t def, int64_t min, int64_t max,
                       int64_t out[2])
{
    const cJSON *v = attr(c, key);
    out[0] = out[1] = def;
    if (!v)
        return DN_OK;
    char field[128];
    snprintf(field, sizeof field, "attrs/%s", key);
    if (cJSON_IsNumber(v)) {
        dn_status st = int_value(c, field, v, min, max, &out[0]);
        out[1] = out[0];
        return st;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
        return dn_node_fail(c, DN_ERR_MODEL, field,
                            "expected an integer or an [h, w] pair, found %s%s", dn_json_kind(v),
                            cJSON_IsArray(v) ? " of another length" : "");
    for (int i = 0; i < 2; i++) {
        char item[140];
        snprintf(item, sizeof item, "%s/%d", field, i);
        dn_status st = int_value(c, item, cJSON_GetArrayItem(v, i), min, max, &out[i]);
        if (st)
            return st;
    }
    return DN_OK;
}

dn_status dn_attr_number(const dn_node_ctx *c, const char *key, double def, double min, double max,
                         double *out)
{
    const cJSON *v = attr(c, key);
    *out = def;
    if (!v)
        return DN_OK;
    char field[128];
    snprintf(field, sizeof field, "attrs/%s", key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return dn_node_fail(c, DN_ERR_MODEL, field, "expected a finite number, found %s",
                            dn_json_kind(v));
    if (v->valuedouble < min || v->valuedouble > max)
        return dn_node_fail(c, DN_ERR_MODEL, field, "expected a number in [%g, %g], found %g", min,
                            max, v->valuedouble);
    *out = v->valuedouble;
    return DN_OK;
}

dn_status dn_attr_bool(const dn_node_ctx *c, const char *key, bool def, bool *out)
{
    const cJSON *v = attr(c, key);
    *out = def;
    if (!v)
        return DN_OK;
    if (!cJSON_IsBool(v)) {
        char field[128];
        snprintf(field, sizeof field, "attrs/%s", key);
        return dn_node_fail(c, DN_ERR_MODEL, field, "expected true or false, found %s",
                            dn_json_kind(v));
    }
    *out = cJSON_IsTrue(v);
    return DN_OK;
}

dn_status dn_attr_init(const dn_node_ctx *c, const char *key, dn_init *out)
{
    const cJSON *v = attr(c, key);
    memset(out, 0, sizeof *out);
    if (!v)
        return DN_OK;
    char why[256];
    if (dn_init_parse(v, out, why, sizeof why))
        return DN_OK;
    char field[128];
    snprintf(field, sizeof field, "attrs/%s", key);
    return dn_node_fail(c, DN_ERR_MODEL, field, "%s", why);
}

dn_status dn_expect_f32(const dn_node_ctx *c, const dn_tensor_desc *in, int i)
{
    if (in[i].dtype == DN_F32)
        return DN_OK;
    char field[32];
    snprintf(field, sizeof field, "inputs/%d", i);
    return dn_node_fail(c, DN_ERR_SHAPE, field, "input \"%s\" must be float32, found %s",
                        c->input_names[i], dn_dtype_name(in[i].dtype));
}

dn_status dn_expect_rank(const dn_node_ctx *c, const dn_tensor_desc *in, int i, int rank)
{
    if (in[i].shape.rank == rank)
        return DN_OK;
    char field[32], s[DN_SHAPE_STR_MAX];
    snprintf(field, sizeof field, "inputs/%d", i);
    return dn_node_fail(c, DN_ERR_SHAPE, field, "input \"%s\" must have rank %d, found %s",
                        c->input_names[i], rank, dn_shape_str(&in[i].shape, s, sizeof s));
}

dn_status dn_check_bias(const dn_node_ctx *c, bool bias, const dn_tensor_desc *in, int dim,
                        const char *per)
{
    if (c->n_inputs < 3)
        return DN_OK;
    char bs[DN_SHAPE_STR_MAX], ws[DN_SHAPE_STR_MAX];
    dn_shape_str(&in[2].shape, bs, sizeof bs);
    dn_shape_str(&in[1].shape, ws, sizeof ws);
    if (!bias)
        return dn_node_fail(c, DN_ERR_MODEL, "attrs/bias",
                            "bias is false, but the node has a bias input \"%s\" %s",
                            c->input_names[2], bs);
    if (in[2].shape.d[0] != in[1].shape.d[dim])
        return dn_node_fail(c, DN_ERR_SHAPE, "inputs/2",
                            "bias \"%s\" %s must hold one value per %s of weight \"%s\" %s (%lld)",
                            c->input_names[2], bs, per, c->input_names[1], ws,
                            (long long)in[1].shape.d[dim]);
    return DN_OK;
}

int64_t dn_window_out(int64_t size, int64_t k, int64_t stride, int64_t pad)
{
    int64_t span = size + 2 * pad - k;
    if (span < 0 || stride <= 0)
        return -1;
    return span / stride + 1;
}

dn_status dn_infer_unary(const dn_node_ctx *c, const void *attrs, const dn_tensor_desc *in,
                         dn_tensor_desc *out)
{
    (void)attrs;
    dn_status st = dn_expect_f32(c, in, 0);
    if (st)
        return st;
    *out = in[0];
    return DN_OK;
}

int64_t dn_flops_per_output(const void *attrs, const dn_tensor_desc *in, int n_in,
                            const dn_tensor_desc *out)
{
    (void)attrs, (void)in, (void)n_in;
    return dn_shape_numel(&out->shape);
}

typedef struct add_job {
    float *dst;
    const float *src;
} add_job;

static void add_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const add_job *j = ctx;
    float *restrict dst = j->dst;
    const float *restrict src = j->src;
    for (int64_t i = lo; i < hi; i++)
        dst[i] += src[i];
}

void dn_add_into(float *dst, const float *src, int64_t n, int threads)
{
    dn_parallel_for(n, dn_team(threads, n, DN_PARALLEL_MIN), add_range, &(add_job){ dst, src });
}

static void relu_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    float *restrict y = *(float *const *)ctx;
    for (int64_t i = lo; i < hi; i++)
        y[i] = dn_relu(y[i]);
}

void dn_epilogue_apply(dn_epilogue e, float *y, int64_t n, int threads)
{
    if (e == DN_EPILOGUE_RELU)
        dn_parallel_for(n, dn_team(threads, n, DN_PARALLEL_MIN), relu_range, &y);
}
