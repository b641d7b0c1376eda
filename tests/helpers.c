/* helpers.c — what the test files share (see helpers.h). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- scratch directory */

char dn_test_dir[256];

void dn_test_dir_init(void)
{
    const char *tag = criterion_current_suite ? criterion_current_suite->name : "test";
    snprintf(dn_test_dir, sizeof dn_test_dir, "/tmp/dn_test_%s_XXXXXX", tag);
    cr_assert_not_null(mkdtemp(dn_test_dir), "mkdtemp %s failed", dn_test_dir);
}

void dn_test_dir_fini(void)
{
    DIR *d = opendir(dn_test_dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dn_test_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dn_test_dir);
}

const char *dn_test_path(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof bufs[0], "%s/%s", dn_test_dir, name);
    return buf;
}

int dn_test_dir_entries(void)
{
    DIR *d = opendir(dn_test_dir);
    cr_assert_not_null(d, "cannot open %s", dn_test_dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

void dn_test_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n, "cannot write %s", path);
    cr_assert_eq(fclose(f), 0, "cannot close %s", path);
}

unsigned char *dn_test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long end = ftell(f);
    cr_assert_geq(end, 0, "cannot size %s", path);
    rewind(f);
    unsigned char *data = malloc((size_t)end + 1);
    cr_assert_not_null(data);
    *size = fread(data, 1, (size_t)end, f);
    cr_assert_eq(*size, (size_t)end, "short read of %s", path);
    fclose(f);
    return data;
}

/* ---------------------------------------------------------------- random arrays */

void dn_test_fill_uniform(float *x, int64_t n, dn_rng *rng, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * dn_rng_uniform(rng);
}

float *dn_test_uniform(int64_t n, uint64_t seed, float lo, float hi)
{
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    cr_assert_not_null(x);
    dn_test_fill_uniform(x, n, &rng, lo, hi);
    return x;
}

float *dn_test_copy(const float *x, int64_t n)
{
    float *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    cr_assert_not_null(c);
    memcpy(c, x, (size_t)n * sizeof *c);
    return c;
}

void dn_test_expect_same_bits(const void *a, const void *b, int64_t n, const char *what)
{
    const uint32_t *u = a, *v = b;
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(u[i], v[i], "%s: element %lld differs (%08x vs %08x)", what, (long long)i,
                     u[i], v[i]);
}

void dn_test_expect_close(const float *got, const float *want, int64_t n, float tol,
                          const char *what)
{
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabsf(got[i] - want[i]) <= tol * (1.0f + fabsf(want[i])),
                  "%s%selement %lld is %.7g, expected %.7g", what ? what : "", what ? ": " : "",
                  (long long)i, (double)got[i], (double)want[i]);
}

/* ---------------------------------------------------------------- messages */

void dn_test_expect_msg(const char *msg, const char *source, const char *const *fragments)
{
    cr_assert_not_null(msg, "no message");
    if (source) {
        size_t n = strlen(source);
        cr_assert(strncmp(msg, source, n) == 0 && strncmp(msg + n, ": ", 2) == 0,
                  "message does not start with \"%s: \": %s", source, msg);
    }
    for (const char *const *f = fragments; *f; f++)
        cr_assert(strstr(msg, *f), "message lacks \"%s\": %s", *f, msg);
}

void dn_test_expect_status(dn_status got, dn_status want, const char *msg)
{
    cr_assert_eq(got, want, "status %s, expected %s; message: %s", dn_status_name(got),
                 dn_status_name(want), msg ? msg : "(none)");
}

/* ---------------------------------------------------------------- models and sessions */

dn_model *dn_test_parse_model(const char *json, const char *file)
{
    dn_model *m = NULL;
    dn_status st = dn_model_parse(json, strlen(json), file, &m);
    cr_assert_eq(st, DN_OK, "%s", dn_model_errmsg(m));
    return m;
}

dn_model *dn_test_load_model(const char *path)
{
    dn_model *m = NULL;
    dn_status st = dn_model_load(path, &m);
    cr_assert_eq(st, DN_OK, "%s", dn_model_errmsg(m));
    return m;
}

dn_session *dn_test_session(const dn_model *m, const dn_session_options *o)
{
    dn_session *s = NULL;
    dn_status st = dn_session_new(m, o, &s);
    cr_assert_eq(st, DN_OK, "%s", dn_session_errmsg(s));
    return s;
}

int64_t dn_test_view_numel(const dn_view *v)
{
    int64_t n = 1;
    for (int d = 0; d < v->rank; d++)
        n *= v->shape[d];
    return n;
}

float *dn_test_values(const dn_model *m, dn_session *s, bool with_state, size_t *count)
{
    size_t n = 0;
    float *all = NULL;
    int np = dn_model_param_count(m), ns = with_state ? dn_model_state_count(m) : 0;
    for (int i = 0; i < np + ns; i++) {
        dn_tensor_info info;
        dn_view v;
        if (i < np) {
            dn_model_param_info(m, i, &info);
            cr_assert_eq(dn_session_param(s, info.name, &v), DN_OK, "%s", dn_session_errmsg(s));
        } else {
            dn_model_state_info(m, i - np, &info);
            cr_assert_eq(dn_session_state(s, info.name, &v), DN_OK, "%s", dn_session_errmsg(s));
        }
        size_t k = (size_t)dn_test_view_numel(&v);
        all = realloc(all, (n + k) * sizeof *all);
        cr_assert_not_null(all);
        memcpy(all + n, v.data, k * sizeof *all);
        n += k;
    }
    *count = n;
    return all;
}

/* ---------------------------------------------------------------- running one op */

dn_test_run dn_test_run_new(const dn_op *op, const char *attrs_json, int n_in, const dn_tensor *x,
                            int threads)
{
    static const char *const names[DN_TEST_MAX_INPUTS] = { "x0", "x1", "x2", "x3",
                                                           "x4", "x5", "x6", "x7" };
    cr_assert(n_in >= 1 && n_in <= DN_TEST_MAX_INPUTS, "%s: %d inputs", op->name, n_in);
    dn_test_run r = { .op = op, .n_in = n_in, .threads = threads, .seed = 1234 };
    cJSON *json = cJSON_Parse(attrs_json);
    cr_assert_not_null(json, "bad test JSON %s", attrs_json);
    dn_err err;
    dn_err_clear(&err);
    dn_node_ctx c = { .file = "run.json",
                      .node = "n",
                      .n_inputs = n_in,
                      .input_names = names,
                      .attrs = json,
                      .err = &err };
    dn_tensor_desc in[DN_TEST_MAX_INPUTS], out;
    for (int i = 0; i < n_in; i++)
        in[i] = (dn_tensor_desc){ x[i].dtype, x[i].shape };
    r.attrs = calloc(1, op->attrs_size ? op->attrs_size : 1);
    cr_assert_not_null(r.attrs);
    cr_assert_eq(op->parse_attrs(&c, r.attrs), DN_OK, "%s", err.msg);
    cr_assert_eq(op->infer(&c, r.attrs, in, &out), DN_OK, "%s", err.msg);
    cJSON_Delete(json);

    size_t ws = op->workspace_size ? op->workspace_size(r.attrs, in, n_in, &out, threads) : 0;
    size_t ss = op->saved_size ? op->saved_size(r.attrs, in, n_in, &out) : 0;
    r.work = malloc(ws + 1);
    r.saved = malloc(ss + 1);
    cr_assert(r.work && r.saved);
    memset(r.work, 0xff, ws + 1);
    memset(r.saved, 0xff, ss + 1);
    int64_t ny = dn_shape_numel(&out.shape);
    size_t ybytes = (size_t)ny * dn_dtype_size(out.dtype);
    r.y = (dn_tensor){ out.dtype, out.shape, malloc(ybytes ? ybytes : 1) };
    cr_assert_not_null(r.y.data);
    if (out.dtype == DN_F32)
        for (int64_t i = 0; i < ny; i++)
            dn_f32(&r.y)[i] = NAN;
    else
        memset(r.y.data, 0xff, ybytes);
    r.dy = (dn_tensor){ DN_F32, out.shape, dn_test_uniform(ny, 99, -2.0f, 2.0f) };
    for (int i = 0; i < n_in; i++) {
        r.x[i] = x[i];
        int64_t n = dn_shape_numel(&x[i].shape);
        r.dx[i] =
            (dn_tensor){ x[i].dtype, x[i].shape,
                         x[i].dtype == DN_F32 ? dn_test_uniform(n, 50 + (uint64_t)i, -2.0f, 2.0f)
                                              : NULL };
    }
    return r;
}

static dn_kernel kernel_of(dn_test_run *r, int threads, bool training)
{
    cr_assert(threads >= 1 && threads <= r->threads,
              "%s: run on %d threads, its workspace is sized for %d", r->op->name, threads,
              r->threads);
    return (dn_kernel){ .attrs = r->attrs,
                        .n_inputs = r->n_in,
                        .x = r->x,
                        .y = &r->y,
                        .dx = r->dx,
                        .dy = &r->dy,
                        .work = r->work,
                        .saved = r->saved,
                        .training = training,
                        .seed = r->seed,
                        .threads = threads };
}

void dn_test_run_forward(dn_test_run *r, int threads, bool training)
{
    dn_kernel k = kernel_of(r, threads, training);
    r->op->forward(&k);
}

void dn_test_run_backward(dn_test_run *r, int threads)
{
    dn_kernel k = kernel_of(r, threads, true);
    r->op->backward(&k);
}

void dn_test_run_free(dn_test_run *r)
{
    free(r->attrs);
    free(r->work);
    free(r->saved);
    free(r->y.data);
    free(r->dy.data);
    for (int i = 0; i < r->n_in; i++)
        free(r->dx[i].data);
    memset(r, 0, sizeof *r);
}
