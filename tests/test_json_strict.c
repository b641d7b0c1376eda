/*
 * test_json_strict.c — ambiguous JSON refused wherever dagnet reads JSON (suite
 * api_load_json): duplicate keys (cJSON would keep the first, Python's json the last) and
 * \u0000 escapes (cJSON would end the C string there) in the model file, its node attrs and
 * its "train" section, and in safetensors headers (a tensor listed twice, a field given twice,
 * a NUL in a tensor name). Each message must name the file, the JSON location and the key.
 * An escaped backslash followed by "u0000" is plain text and stays accepted, and an object of
 * 50,000 keys is checked without quadratic cost.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "io/safetensors.h"
#include "runtime/error.h"

TestSuite(api_load_json);

/* A small valid model; %s slots: the first node's name, its attrs, and extra top-level text. */
static const char *MODEL_FMT =
    "{\"format\": \"dagnet/1\", \"name\": \"%s\",\n"
    " \"inputs\": {\"image\": {\"shape\": [null, 1, 8, 8]}},\n"
    " \"nodes\": [\n"
    "  {\"name\": \"%s\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {%s}},\n"
    "  {\"name\": \"r\", \"op\": \"ReLU\", \"inputs\": [\"c\"]}\n"
    " ],\n"
    " \"outputs\": [\"r\"]%s}";

static dn_status parse(const char *model_name, const char *node, const char *attrs,
                       const char *extra, char *msg, size_t msg_size)
{
    char json[4096];
    snprintf(json, sizeof json, MODEL_FMT, model_name, node, attrs, extra);
    dn_model *m = NULL;
    dn_status s = dn_model_parse(json, strlen(json), "m.json", &m);
    snprintf(msg, msg_size, "%s", dn_model_errmsg(m));
    dn_model_free(m);
    return s;
}

#define ATTRS_OK "\"filters\": 2, \"kernel\": 3"

Test(api_load_json, valid_model_loads)
{
    char msg[1024];
    dn_status s = parse("a\\\\u0000b", "c", ATTRS_OK, "", msg, sizeof msg);
    cr_assert_eq(s, DN_OK, "an escaped backslash before u0000 is plain text: %s", msg);
}

Test(api_load_json, duplicate_attr_key)
{
    char msg[1024];
    dn_status s =
        parse("m", "c", "\"filters\": 2, \"kernel\": 3, \"kernel\": 5", "", msg, sizeof msg);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "m.json", "/nodes/0/attrs", "duplicate key \"kernel\"");
}

Test(api_load_json, duplicate_top_level_key)
{
    char msg[1024];
    dn_status s = parse("m", "c", ATTRS_OK, ", \"outputs\": [\"c\"]", msg, sizeof msg);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "m.json", "(/)", "duplicate key \"outputs\"");
}

Test(api_load_json, duplicate_key_in_train_section)
{
    char msg[1024];
    dn_status s =
        parse("m", "c", ATTRS_OK, ", \"train\": {\"epochs\": 2, \"epochs\": 3}", msg, sizeof msg);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "m.json", "/train", "duplicate key \"epochs\"");
}

Test(api_load_json, nul_in_node_name)
{
    char msg[1024];
    dn_status s = parse("m", "c\\u0000x", ATTRS_OK, "", msg, sizeof msg);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "m.json", "/nodes/0/name", "\\u0000", "line 4");
}

Test(api_load_json, nul_in_key)
{
    char msg[1024];
    dn_status s = parse("m", "c", "\"filters\": 2, \"kernel\\u0000\": 3", "", msg, sizeof msg);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "m.json", "/nodes/0/attrs", "\\u0000 in the key \"kernel");
}

/* A model file on disk: the message names its path. */
Test(api_load_json, model_file_duplicate, .init = dn_test_dir_init, .fini = dn_test_dir_fini)
{
    char json[4096];
    snprintf(json, sizeof json, MODEL_FMT, "m", "c", ATTRS_OK, ", \"name\": \"again\"");
    const char *path = dn_test_path("dup.json");
    dn_test_write_file(path, json, strlen(json));
    dn_model *m = NULL;
    dn_test_expect_status(dn_model_load(path, &m), DN_ERR_PARSE, dn_model_errmsg(m));
    EXPECT_MSG_FROM(dn_model_errmsg(m), "dup.json",
                    "duplicate key \"name\""); /* the loader names files by base name */
    dn_model_free(m);
}

/* ---------------------------------------------------------------- safetensors headers */

/* A safetensors image whose header is `header` (padded to 8 bytes) and data 16 zero bytes. */
static dn_status st_parse(const char *header, char *msg, size_t msg_size)
{
    size_t hlen = strlen(header), pad = (8 - hlen % 8) % 8, data = 16;
    size_t n = 8 + hlen + pad + data;
    unsigned char *buf = calloc(n, 1);
    cr_assert_not_null(buf);
    uint64_t h = hlen + pad;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(h >> (8 * i));
    memcpy(buf + 8, header, hlen);
    memset(buf + 8 + hlen, ' ', pad);
    dn_st_file f;
    dn_err err;
    dn_err_clear(&err);
    dn_status s = dn_st_parse(buf, n, "w.safetensors", &f, &err);
    snprintf(msg, msg_size, "%s", err.msg);
    if (s == DN_OK)
        dn_st_free(&f);
    return s;
}

#define ST_A "\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}"
#define ST_B "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}"

Test(api_load_json, safetensors_valid)
{
    char msg[1024];
    cr_assert_eq(st_parse("{" ST_A ", " ST_B "}", msg, sizeof msg), DN_OK, "%s", msg);
}

Test(api_load_json, safetensors_duplicate_tensor)
{
    char msg[1024];
    dn_status s = st_parse("{" ST_A ", " ST_B ", " ST_A "}", msg, sizeof msg);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "w.safetensors", "\"a\"");
}

Test(api_load_json, safetensors_duplicate_field)
{
    char msg[1024];
    dn_status s = st_parse("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"dtype\": \"F16\", "
                           "\"data_offsets\": [0, 8]}, " ST_B "}",
                           msg, sizeof msg);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "w.safetensors", "\"a\"", "\"dtype\"");
}

Test(api_load_json, safetensors_nul_in_name)
{
    char msg[1024];
    dn_status s = st_parse("{\"a\\u0000b\": {\"dtype\": \"F32\", \"shape\": [2], "
                           "\"data_offsets\": [0, 8]}, " ST_B "}",
                           msg, sizeof msg);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "w.safetensors", "\\u0000 in the key \"a");
}

/* 50,000 metadata keys, the last a duplicate of the first: found, and fast. */
Test(api_load_json, huge_object_is_not_quadratic)
{
    size_t cap = 50000 * 24 + 256, used = 0;
    char *h = malloc(cap);
    cr_assert_not_null(h);
    used += (size_t)snprintf(h + used, cap - used, "{\"__metadata__\": {");
    for (int i = 0; i < 50000; i++)
        used += (size_t)snprintf(h + used, cap - used, "\"k%d\": \"v\", ", i);
    used += (size_t)snprintf(h + used, cap - used, "\"k0\": \"w\"}, " ST_A ", " ST_B "}");
    char msg[1024];
    clock_t t0 = clock();
    dn_status s = st_parse(h, msg, sizeof msg);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    free(h);
    dn_test_expect_status(s, DN_ERR_PARSE, msg);
    EXPECT_MSG_FROM(msg, "w.safetensors", "(/__metadata__)", "duplicate key \"k0\"");
    cr_assert_lt(secs, 2.0, "checking 50,000 keys took %.2f s", secs);
}
