/*
 * test_io.c — the file formats beside a model: NumPy .npy, safetensors, and the atomic
 * writer both use.
 *
 * Round trips check that what is written reads back bit for bit; byte-exact tests compare
 * the writers' output with what numpy.save (NumPy 1.24) and the safetensors convention
 * produce, embedded here as byte strings. The corrupt-file tests feed hostile images to the
 * parsers and check that each is rejected with the right status and a message that names
 * the file and says what was wrong. Every test works in its own scratch directory.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "io/fileio.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

/* ---------------------------------------------------------------- fixtures and helpers */

TestSuite(io_npy, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(io_safetensors, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(io_atomic, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

static dn_shape shape_of(int rank, const int64_t *dims) { return dn_shape_make(rank, dims, false); }

/* ---------------------------------------------------------------- npy: round trips */

#define S10 "          "
/* numpy.save(f, np.arange(3, dtype='<f4')) with NumPy 1.24: 128 header bytes, then data. */
static const char NPY_F32_3_HEADER[] =
    "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" S10 S10 S10
        S10 S10 S10 "\n";
/* numpy.save(f, np.array([[1, -2, 3], [4, 5, -6]], dtype='<i8')): the header. */
static const char NPY_I64_2x3_HEADER[] =
    "\x93NUMPY\x01\x00\x76\x00{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }" S10 S10
        S10 S10 S10 "        \n";
/* numpy.save(f, np.array(2.5, dtype='<f4')): rank 0, no growth room. */
static const char NPY_F32_SCALAR_HEADER[] =
    "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (), }" S10 S10 S10
        S10 S10 S10 "  \n";

static void roundtrip_npy(dn_dtype dtype, int rank, const int64_t *dims, const void *data)
{
    const char *path = dn_test_path("a.npy");
    dn_shape shape = shape_of(rank, dims);
    dn_err err;
    cr_assert_eq(dn_npy_write(path, dtype, &shape, data, &err), DN_OK, "%s", err.msg);
    dn_array a;
    cr_assert_eq(dn_npy_read(path, &a, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(a.dtype, dtype);
    cr_assert(dn_shape_equal(&a.shape, &shape), "rank %d read back as rank %d", rank, a.shape.rank);
    cr_assert_not(a.shape.batched);
    size_t nbytes = (size_t)dn_shape_numel(&shape) * dn_dtype_size(dtype);
    cr_assert_not_null(a.data);
    cr_assert(nbytes == 0 || memcmp(a.data, data, nbytes) == 0, "data differ after the round trip");
    dn_array_free(&a);
    cr_assert_null(a.data);
    cr_assert_eq(dn_test_dir_entries(), 1, "a temporary file was left behind");
}

Test(io_npy, roundtrip_f32_rank0_to_4)
{
    float v[48];
    for (int i = 0; i < 48; i++)
        v[i] = (float)i * 0.25f - 3.0f;
    const int64_t dims[5][4] = { { 0 }, { 3 }, { 2, 3 }, { 2, 3, 4 }, { 2, 1, 4, 6 } };
    for (int rank = 0; rank <= 4; rank++)
        roundtrip_npy(DN_F32, rank, dims[rank], v);
}

Test(io_npy, roundtrip_i32_i64_and_empty)
{
    int32_t a[6] = { 0, -1, 2147483647, -2147483647 - 1, 5, 6 };
    roundtrip_npy(DN_I32, 2, (int64_t[]){ 3, 2 }, a);
    int64_t b[4] = { INT64_MIN, -1, 0, INT64_MAX };
    roundtrip_npy(DN_I64, 1, (int64_t[]){ 4 }, b);
    roundtrip_npy(DN_F32, 2, (int64_t[]){ 0, 3 }, NULL); /* zero elements, data may be NULL */
}

/* The writer's bytes equal numpy.save's: same header text, padding and data offset. */
static void check_numpy_bytes(const char *header, size_t header_len, dn_dtype dtype, int rank,
                              const int64_t *dims, const void *data, size_t nbytes)
{
    const char *path = dn_test_path("np.npy");
    dn_shape shape = shape_of(rank, dims);
    dn_err err;
    cr_assert_eq(dn_npy_write(path, dtype, &shape, data, &err), DN_OK, "%s", err.msg);
    size_t size;
    unsigned char *got = dn_test_read_file(path, &size);
    cr_assert_eq(header_len % 64, 0, "test data: numpy aligns the data to 64 bytes");
    cr_assert_eq(size, header_len + nbytes, "file is %zu bytes, numpy writes %zu", size,
                 header_len + nbytes);
    cr_assert(memcmp(got, header, header_len) == 0, "header differs from numpy's: %.*s",
              (int)header_len - 10, (const char *)got + 10);
    cr_assert(memcmp(got + header_len, data, nbytes) == 0);
    free(got);
}

Test(io_npy, bytes_match_numpy)
{
    float f[3] = { 0, 1, 2 };
    check_numpy_bytes(NPY_F32_3_HEADER, sizeof NPY_F32_3_HEADER - 1, DN_F32, 1, (int64_t[]){ 3 }, f,
                      sizeof f);
    int64_t i[6] = { 1, -2, 3, 4, 5, -6 };
    check_numpy_bytes(NPY_I64_2x3_HEADER, sizeof NPY_I64_2x3_HEADER - 1, DN_I64, 2,
                      (int64_t[]){ 2, 3 }, i, sizeof i);
    float s = 2.5f;
    check_numpy_bytes(NPY_F32_SCALAR_HEADER, sizeof NPY_F32_SCALAR_HEADER - 1, DN_F32, 0, NULL, &s,
                      sizeof s);
}

/* Build a .npy 1.0 image from a header dict text (padded with a newline) and data. */
static size_t make_npy(unsigned char *buf, size_t cap, const char *dict, const void *data,
                       size_t nbytes)
{
    size_t hlen = strlen(dict) + 1;
    cr_assert(10 + hlen + nbytes <= cap);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, hlen - 1);
    buf[10 + hlen - 1] = '\n';
    if (nbytes)
        memcpy(buf + 10 + hlen, data, nbytes);
    return 10 + hlen + nbytes;
}

Test(io_npy, parses_header_variants)
{
    const char *dicts[] = {
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,3,)}",
        "  {'descr':'<f4','fortran_order':False,'shape':(2 , 3),}   ",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", /* Python 2 */
    };
    float v[6] = { 1, 2, 3, 4, 5, 6 };
    unsigned char buf[256];
    for (size_t k = 0; k < sizeof dicts / sizeof dicts[0]; k++) {
        size_t n = make_npy(buf, sizeof buf, dicts[k], v, sizeof v);
        dn_array a;
        dn_err err;
        cr_assert_eq(dn_npy_parse(buf, n, "v.npy", &a, &err), DN_OK, "%s: %s", dicts[k], err.msg);
        cr_assert_eq(a.shape.rank, 2);
        cr_assert_eq(a.shape.d[0], 2);
        cr_assert_eq(a.shape.d[1], 3);
        cr_assert(memcmp(a.data, v, sizeof v) == 0);
        dn_array_free(&a);
    }
}

Test(io_npy, reads_version_2_header)
{
    const char dict[] = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n";
    int32_t v[2] = { 7, -7 };
    unsigned char buf[128];
    memcpy(buf, "\x93NUMPY\x02\x00", 8);
    uint32_t hlen = sizeof dict - 1;
    for (int i = 0; i < 4; i++)
        buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 12, dict, hlen);
    memcpy(buf + 12 + hlen, v, sizeof v);
    dn_array a;
    dn_err err;
    cr_assert_eq(dn_npy_parse(buf, 12 + hlen + sizeof v, "v2.npy", &a, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(a.dtype, DN_I32);
    cr_assert_eq(((int32_t *)a.data)[1], -7);
    dn_array_free(&a);
}

/* ---------------------------------------------------------------- npy: corrupt files */

static void expect_npy_error(const unsigned char *buf, size_t n, dn_status want,
                             const char *const *fragments)
{
    dn_array a;
    dn_err err;
    dn_err_clear(&err);
    dn_test_expect_status(dn_npy_parse(buf, n, "bad.npy", &a, &err), want, err.msg);
    cr_assert_null(a.data, "no array is returned on failure");
    dn_test_expect_msg(err.msg, "bad.npy", fragments);
}

/* Parse `dict` with `nbytes` of data and expect a parse error with the fragments. */
static void expect_dict_error(const char *dict, size_t nbytes, const char *const *fragments)
{
    static unsigned char buf[4096];
    unsigned char data[256] = { 0 };
    cr_assert(nbytes <= sizeof data);
    size_t n = make_npy(buf, sizeof buf, dict, data, nbytes);
    expect_npy_error(buf, n, DN_ERR_PARSE, fragments);
}

#define GOOD_F32_23 "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"

Test(io_npy, rejects_bad_magic)
{
    const unsigned char png[] = "\x89PNG\r\n\x1a\n0000000000";
    expect_npy_error(png, sizeof png - 1, DN_ERR_PARSE,
                     FRAGS("not a .npy file", "93 4e 55 4d 50 59", "found 89 50 4e 47"));
    expect_npy_error(png, 0, DN_ERR_PARSE, FRAGS("not a .npy file", "empty file"));
}

Test(io_npy, rejects_truncated_header)
{
    unsigned char buf[256];
    size_t n = make_npy(buf, sizeof buf, GOOD_F32_23, NULL, 0);
    /* Cut inside the length field, then inside the dict. */
    expect_npy_error(buf, 9, DN_ERR_PARSE, FRAGS("truncated", "header length"));
    expect_npy_error(buf, 40, DN_ERR_PARSE, FRAGS("header is truncated", "only 30 follow"));
    (void)n;
}

Test(io_npy, rejects_truncated_and_trailing_data)
{
    expect_dict_error(GOOD_F32_23, 20,
                      FRAGS("data is truncated", "expected 24 bytes", "found 20", "float32 [2,3]"));
    expect_dict_error(GOOD_F32_23, 28, FRAGS("trailing bytes", "expected 24 bytes", "found 28"));
    expect_dict_error(GOOD_F32_23, 0, FRAGS("truncated", "found 0"));
}

Test(io_npy, rejects_fortran_order)
{
    expect_dict_error("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24,
                      FRAGS("fortran_order is True", "C-order"));
}

Test(io_npy, rejects_unknown_dtype)
{
    expect_dict_error("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 24,
                      FRAGS("unsupported dtype '<f8'", "'<f4'"));
    expect_dict_error("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", 3,
                      FRAGS("unsupported dtype '|u1'"));
    expect_dict_error("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", 12,
                      FRAGS("structured dtype"));
}

Test(io_npy, rejects_big_endian)
{
    expect_dict_error("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
                      FRAGS("big-endian", "'>f4'", "little-endian"));
}

Test(io_npy, rejects_shape_overflow_and_bad_shapes)
{
    expect_dict_error("{'descr': '<f4', 'fortran_order': False, "
                      "'shape': (1099511627776, 1099511627776, 1099511627776), }",
                      0, FRAGS("too large", "overflows"));
    expect_dict_error("{'descr': '<f4', 'fortran_order': False, "
                      "'shape': (99999999999999999999999,), }",
                      0, FRAGS("too large"));
    expect_dict_error("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 0,
                      FRAGS("non-negative integer"));
    expect_dict_error("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", 12,
                      FRAGS("not a tuple", "(3,)"));
    expect_dict_error("{'descr': '<f4', 'fortran_order': False, "
                      "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
                      4, FRAGS("more than 8"));
}

Test(io_npy, rejects_bad_dicts)
{
    expect_dict_error("{'descr': '<f4', 'shape': (2,), }", 8,
                      FRAGS("lacks the key 'fortran_order'"));
    expect_dict_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8,
                      FRAGS("unknown key 'x'"));
    expect_dict_error("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8,
                      FRAGS("twice"));
    expect_dict_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", 8,
                      FRAGS("after the header dict", "junk"));
    expect_dict_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8,
                      FRAGS("expected", "the end of the header"));
    expect_dict_error("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", 8,
                      FRAGS("True or False"));
}

Test(io_npy, rejects_unknown_version)
{
    unsigned char buf[256];
    size_t n = make_npy(buf, sizeof buf, GOOD_F32_23, (float[6]){ 0 }, 24);
    buf[6] = 4;
    expect_npy_error(buf, n, DN_ERR_PARSE, FRAGS("version 4.0"));
}

Test(io_npy, missing_file_is_io_error)
{
    const char *path = dn_test_path("nope.npy");
    dn_array a;
    dn_err err;
    cr_assert_eq(dn_npy_read(path, &a, &err), DN_ERR_IO);
    EXPECT_MSG_FROM(err.msg, path, "cannot open", "No such file");
}

/* ---------------------------------------------------------------- safetensors: round trips */

Test(io_safetensors, roundtrip_several_entries)
{
    float w[18], b[2] = { -1.5f, 2.25f }, s = 42.0f;
    for (int i = 0; i < 18; i++)
        w[i] = (float)i / 7.0f;
    int32_t lab[5] = { 0, 9, -3, 2147483647, 4 };
    int64_t idx[4] = { INT64_MIN, 0, 1, INT64_MAX };
    dn_shape sw = shape_of(4, (int64_t[]){ 2, 1, 3, 3 }), sb = shape_of(1, (int64_t[]){ 2 });
    dn_shape sl = shape_of(1, (int64_t[]){ 5 }), si = shape_of(2, (int64_t[]){ 2, 2 });
    dn_shape ss = shape_of(0, NULL), se = shape_of(2, (int64_t[]){ 0, 3 });
    const dn_st_tensor t[] = {
        { "conv1.weight", DN_F32, &sw, w }, { "conv1.bias", DN_F32, &sb, b },
        { "labels", DN_I32, &sl, lab },     { "idx", DN_I64, &si, idx },
        { "scalar", DN_F32, &ss, &s },      { "empty \"quoted\" name/é", DN_F32, &se, NULL },
    };
    const void *data[] = { w, b, lab, idx, &s, NULL };
    const int n = (int)(sizeof t / sizeof t[0]);
    const char *path = dn_test_path("w.safetensors");
    dn_err err;
    cr_assert_eq(dn_st_write(path, t, n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_test_dir_entries(), 1, "a temporary file was left behind");

    dn_st_file f;
    cr_assert_eq(dn_st_read(path, &f, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(f.n, n);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)f.buf[i] << (8 * i);
    cr_assert_eq(hlen % 8, 0, "header padded to a multiple of 8, got %llu",
                 (unsigned long long)hlen);
    cr_assert_eq(f.entries[0].data, f.buf + 8 + hlen, "the first tensor starts the data");
    for (int i = 0; i < n; i++) {
        const dn_st_entry *e = &f.entries[i];
        cr_assert_str_eq(e->name, t[i].name, "entries keep the written order");
        cr_assert_eq(e->dtype, t[i].dtype);
        cr_assert(dn_shape_equal(&e->shape, t[i].shape), "shape of %s", e->name);
        size_t nbytes = (size_t)dn_shape_numel(t[i].shape) * dn_dtype_size(t[i].dtype);
        cr_assert_eq(e->nbytes, nbytes);
        if (nbytes)
            cr_assert(memcmp(e->data, data[i], nbytes) == 0, "data of %s", e->name);
        cr_assert_eq(dn_st_find(&f, t[i].name), e);
    }
    cr_assert_null(dn_st_find(&f, "missing"));
    dn_st_free(&f);
    cr_assert_null(f.buf);
    dn_st_free(&f); /* twice is harmless */
}

Test(io_safetensors, bytes_match_convention)
{
    /* Compact JSON, padded with spaces to a multiple of 8, data right after. */
    static const char expect_header[] =
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}";
    float a[2] = { 1.0f, -2.0f };
    int64_t b = 77;
    dn_shape sa = shape_of(1, (int64_t[]){ 2 }), sb = shape_of(0, NULL);
    const dn_st_tensor t[] = { { "a", DN_F32, &sa, a }, { "b", DN_I64, &sb, &b } };
    const char *path = dn_test_path("c.safetensors");
    dn_err err;
    cr_assert_eq(dn_st_write(path, t, 2, &err), DN_OK, "%s", err.msg);
    size_t size;
    unsigned char *got = dn_test_read_file(path, &size);
    size_t jlen = sizeof expect_header - 1, hlen = (jlen + 7) / 8 * 8;
    cr_assert_eq(size, 8 + hlen + 16);
    cr_assert_eq(got[0], hlen);
    for (int i = 1; i < 8; i++)
        cr_assert_eq(got[i], 0);
    cr_assert(memcmp(got + 8, expect_header, jlen) == 0, "header: %.*s", (int)hlen, got + 8);
    for (size_t i = jlen; i < hlen; i++)
        cr_assert_eq(got[8 + i], ' ');
    cr_assert(memcmp(got + 8 + hlen, a, 8) == 0 && memcmp(got + 16 + hlen, &b, 8) == 0);
    free(got);
}

/* A file image (malloc'ed, as dn_st_parse wants) from a header text and data bytes. */
static unsigned char *make_st(const char *json, const void *data, size_t nbytes, size_t *size)
{
    size_t jlen = strlen(json);
    *size = 8 + jlen + nbytes;
    unsigned char *buf = malloc(*size ? *size : 1);
    cr_assert_not_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)jlen >> (8 * i));
    memcpy(buf + 8, json, jlen);
    if (nbytes)
        memcpy(buf + 8 + jlen, data, nbytes);
    return buf;
}

Test(io_safetensors, reads_foreign_layout)
{
    /* Spaced JSON as Python writes it, metadata, an odd header length (unaligned data) and
     * the entries' data in a different order from the header's. */
    const char *json = "{\"__metadata__\": {\"format\": \"pt\"}, "
                       "\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}, "
                       "\"y\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    unsigned char data[12];
    int32_t y = -5;
    float x[2] = { 3.5f, -0.5f };
    memcpy(data, &y, 4);
    memcpy(data + 4, x, 8);
    size_t size;
    unsigned char *buf = make_st(json, data, sizeof data, &size);
    dn_st_file f;
    dn_err err;
    cr_assert_eq(dn_st_parse(buf, size, "f.safetensors", &f, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(f.n, 2);
    const dn_st_entry *ex = dn_st_find(&f, "x");
    cr_assert_not_null(ex);
    float got[2];
    memcpy(got, ex->data, sizeof got); /* the data may be unaligned */
    cr_assert(got[0] == 3.5f && got[1] == -0.5f);
    cr_assert_eq(dn_st_find(&f, "y")->dtype, DN_I32);
    dn_st_free(&f);
}

/* ---------------------------------------------------------------- safetensors: corrupt files */

static void expect_st_error_buf(unsigned char *buf, size_t size, const char *const *fragments)
{
    dn_st_file f;
    dn_err err;
    dn_err_clear(&err);
    dn_status s = dn_st_parse(buf, size, "bad.safetensors", &f, &err); /* takes buf */
    dn_test_expect_status(s, DN_ERR_PARSE, err.msg);
    cr_assert(f.buf == NULL && f.entries == NULL && f.n == 0, "*out is zeroed on failure");
    dn_test_expect_msg(err.msg, "bad.safetensors", fragments);
}

static void expect_st_error(const char *json, size_t nbytes, const char *const *fragments)
{
    unsigned char data[256] = { 0 };
    cr_assert(nbytes <= sizeof data);
    size_t size;
    unsigned char *buf = make_st(json, data, nbytes, &size);
    expect_st_error_buf(buf, size, fragments);
}

#define ENTRY(name, dtype, shape, b, e)                                                     \
    "\"" name "\": {\"dtype\": \"" dtype "\", \"shape\": " shape ", \"data_offsets\": [" #b \
    ", " #e "]}"

Test(io_safetensors, rejects_short_file)
{
    unsigned char *buf = malloc(5);
    memcpy(buf, "\x10\0\0\0\0", 5);
    expect_st_error_buf(buf, 5, FRAGS("5 bytes", "at least 8"));
}

Test(io_safetensors, rejects_header_longer_than_file)
{
    size_t size;
    unsigned char *buf = make_st("{}", NULL, 0, &size);
    buf[0] = 200;
    expect_st_error_buf(buf, size, FRAGS("header length is 200", "only 2 bytes follow"));
    buf = make_st("{}", NULL, 0, &size);
    memset(buf, 0xff, 8); /* 2^64 - 1: must not wrap around */
    expect_st_error_buf(buf, size, FRAGS("header length is 18446744073709551615"));
}

Test(io_safetensors, rejects_invalid_json)
{
    expect_st_error("{\"a\": {\"dtype\": \"F32\",", 0, FRAGS("not valid JSON"));
    expect_st_error("[1, 2]", 0, FRAGS("must be a JSON object", "an array"));
    expect_st_error("{} xx", 0, FRAGS("extra text after the JSON"));
}

Test(io_safetensors, rejects_offsets_past_end)
{
    expect_st_error("{" ENTRY("w", "F32", "[4]", 0, 16) "}", 12,
                    FRAGS("tensor \"w\"", "[0, 16]", "past the end", "12 bytes"));
    expect_st_error("{" ENTRY("w", "F32", "[1]", 8, 4) "}", 12,
                    FRAGS("tensor \"w\"", "end before begin"));
    expect_st_error("{" ENTRY("w", "F32", "[1]", 0, 1e300) "}", 12,
                    FRAGS("tensor \"w\"", "two non-negative integers"));
    expect_st_error("{" ENTRY("w", "F32", "[1]", 0.5, 4) "}", 12,
                    FRAGS("tensor \"w\"", "two non-negative integers"));
}

Test(io_safetensors, rejects_size_mismatch)
{
    expect_st_error("{" ENTRY("w", "F32", "[2, 3]", 0, 20) "}", 24,
                    FRAGS("tensor \"w\"", "F32 [2,3] needs 24 bytes", "give 20"));
}

Test(io_safetensors, rejects_overlap)
{
    expect_st_error("{" ENTRY("a", "F32", "[4]", 0, 16) ", " ENTRY("b", "F32", "[2]", 8, 16) "}",
                    16, FRAGS("\"a\" [0, 16)", "\"b\" [8, 16)", "overlap"));
}

Test(io_safetensors, rejects_unsupported_dtype)
{
    expect_st_error("{" ENTRY("half", "F16", "[2]", 0, 4) "}", 4,
                    FRAGS("tensor \"half\"", "unsupported dtype \"F16\"", "F32"));
    expect_st_error("{" ENTRY("bf", "BF16", "[2]", 0, 4) "}", 4, FRAGS("\"BF16\""));
}

Test(io_safetensors, rejects_shape_overflow)
{
    expect_st_error("{" ENTRY("big", "F32", "[1099511627776, 1099511627776]", 0, 0) "}", 0,
                    FRAGS("tensor \"big\"", "too large", "overflows"));
    expect_st_error("{" ENTRY("neg", "F32", "[-1]", 0, 0) "}", 0,
                    FRAGS("tensor \"neg\"", "dimension 0", "integer"));
    expect_st_error("{" ENTRY("r9", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4,
                    FRAGS("tensor \"r9\"", "9 dimensions"));
}

Test(io_safetensors, rejects_missing_and_extra_fields)
{
    expect_st_error("{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
                    FRAGS("tensor \"w\"", "missing field \"shape\""));
    expect_st_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], "
                    "\"extra\": 1}}",
                    4, FRAGS("tensor \"w\"", "unexpected field \"extra\""));
    expect_st_error("{\"w\": {\"dtype\": 5, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                    FRAGS("tensor \"w\"", "dtype must be a string", "a number"));
    expect_st_error("{\"w\": [1]}", 4, FRAGS("tensor \"w\"", "expected an object"));
}

Test(io_safetensors, rejects_duplicates_and_bad_metadata)
{
    expect_st_error("{" ENTRY("w", "F32", "[1]", 0, 4) ", " ENTRY("w", "F32", "[1]", 4, 8) "}", 8,
                    FRAGS("tensor \"w\" appears twice"));
    expect_st_error("{\"__metadata__\": {\"k\": 1}}", 0,
                    FRAGS("__metadata__", "\"k\"", "must be a string"));
}

Test(io_safetensors, missing_file_is_io_error)
{
    const char *path = dn_test_path("none.safetensors");
    dn_st_file f;
    dn_err err;
    cr_assert_eq(dn_st_read(path, &f, &err), DN_ERR_IO);
    EXPECT_MSG_FROM(err.msg, path, "cannot open");
}

Test(io_safetensors, writer_rejects_bad_arguments)
{
    const char *path = dn_test_path("x.safetensors");
    float v = 1;
    dn_shape s = shape_of(1, (int64_t[]){ 1 });
    const dn_st_tensor dup[] = { { "a", DN_F32, &s, &v }, { "a", DN_F32, &s, &v } };
    dn_err err;
    cr_assert_eq(dn_st_write(path, dup, 2, &err), DN_ERR_ARG);
    EXPECT_MSG(err.msg, "\"a\" is given twice");
    const dn_st_tensor meta[] = { { "__metadata__", DN_F32, &s, &v } };
    cr_assert_eq(dn_st_write(path, meta, 1, &err), DN_ERR_ARG);
    cr_assert_eq(dn_test_dir_entries(), 0, "nothing is written on failure");
}

/* ---------------------------------------------------------------- atomic writer, read_all */

Test(io_atomic, abort_keeps_old_file)
{
    const char *path = dn_test_path("target");
    dn_test_write_file(path, "old", 3);
    dn_atomic_file f;
    dn_err err;
    cr_assert_eq(dn_atomic_open(&f, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_atomic_write(&f, "new content", 11, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_test_dir_entries(), 2, "the temporary file sits beside the target");
    dn_atomic_abort(&f);
    dn_atomic_abort(&f); /* idempotent */
    cr_assert_eq(dn_test_dir_entries(), 1, "abort removes the temporary file");
    size_t size;
    unsigned char *got = dn_test_read_file(path, &size);
    cr_assert(size == 3 && memcmp(got, "old", 3) == 0, "the old file is intact");
    free(got);
}

Test(io_atomic, commit_replaces_file)
{
    const char *path = dn_test_path("target");
    dn_test_write_file(path, "old", 3);
    dn_atomic_file f;
    dn_err err;
    cr_assert_eq(dn_atomic_open(&f, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_atomic_write(&f, "new ", 4, &err), DN_OK);
    cr_assert_eq(dn_atomic_write(&f, "content", 7, &err), DN_OK);
    size_t size;
    unsigned char *got = dn_test_read_file(path, &size);
    cr_assert(size == 3 && memcmp(got, "old", 3) == 0, "readers see the old file until commit");
    free(got);
    cr_assert_eq(dn_atomic_commit(&f, &err), DN_OK, "%s", err.msg);
    dn_atomic_abort(&f); /* harmless after commit */
    cr_assert_eq(dn_test_dir_entries(), 1, "no temporary file remains after commit");
    got = dn_test_read_file(path, &size);
    cr_assert(size == 11 && memcmp(got, "new content", 11) == 0);
    free(got);
}

Test(io_atomic, open_in_missing_directory_fails_cleanly)
{
    const char *path = dn_test_path("no/such/dir/file");
    dn_atomic_file f;
    dn_err err;
    cr_assert_eq(dn_atomic_open(&f, path, &err), DN_ERR_IO);
    EXPECT_MSG(err.msg, path, "No such file");
    dn_atomic_abort(&f); /* safe after a failed open */
    cr_assert_eq(dn_atomic_write(&f, "x", 1, &err), DN_ERR_ARG);
    cr_assert_eq(dn_test_dir_entries(), 0);
}

Test(io_atomic, read_all_limits_and_empty_files)
{
    const char *path = dn_test_path("f");
    dn_test_write_file(path, "0123456789", 10);
    unsigned char *data;
    size_t size;
    dn_err err;
    cr_assert_eq(dn_file_read_all(path, 9, &data, &size, &err), DN_ERR_IO);
    EXPECT_MSG_FROM(err.msg, path, "10 bytes", "limit of 9");
    cr_assert_null(data);
    cr_assert_eq(dn_file_read_all(path, 10, &data, &size, &err), DN_OK, "%s", err.msg);
    cr_assert(size == 10 && data[10] == '\0');
    free(data);
    dn_test_write_file(path, "", 0);
    cr_assert_eq(dn_file_read_all(path, 10, &data, &size, &err), DN_OK, "%s", err.msg);
    cr_assert(size == 0 && data != NULL && data[0] == '\0');
    free(data);
    cr_assert_eq(dn_file_read_all(dn_test_dir, 10, &data, &size, &err), DN_ERR_IO);
    EXPECT_MSG_FROM(err.msg, dn_test_dir, "directory");
}

Test(io_atomic, npy_write_failure_leaves_nothing)
{
    const char *path = dn_test_path("missing/a.npy");
    float v = 1;
    dn_shape s = shape_of(0, NULL);
    dn_err err;
    cr_assert_eq(dn_npy_write(path, DN_F32, &s, &v, &err), DN_ERR_IO);
    EXPECT_MSG(err.msg, "missing/a.npy");
    cr_assert_eq(dn_test_dir_entries(), 0);
}
