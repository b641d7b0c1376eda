/*
 * test_errors.c — every class of bad model is rejected at load time, with a message that
 * names the file, the node (or param/input) and the field, and says what was expected and
 * what was found (suite api_load_errors); a session refuses inputs and weights that do not
 * fit in the same way (api_session_errors). The library returns a status; it never exits or
 * prints.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"

/* A small valid model; each test breaks one thing in it. */
#define HEAD "{\"format\": \"dagnet/1\", \"name\": \"t\","
#define INPUTS                                              \
    "\"inputs\": {\"image\": {\"shape\": [null, 1, 8, 8]}," \
    "             \"label\": {\"shape\": [null], \"dtype\": \"int32\"}},"
#define TAIL "\"outputs\": [\"fc\"], \"loss\": \"loss\"}"
#define CONV                                                                                       \
    "{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": 2, " \
    "\"kernel\": 3}}"
#define FC \
    "{\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"conv\"], \"attrs\": {\"units\": 4}}"
#define LOSS \
    "{\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}"

static dn_model *load_text(const char *json, dn_status *st)
{
    dn_model *m = NULL;
    *st = dn_model_parse(json, strlen(json), "bad.json", &m);
    cr_assert_not_null(m, "a model handle is returned even on failure");
    return m;
}

/* Load must fail with `want` and the message must contain every fragment. */
static void expect_error(const char *json, dn_status want, const char *const *fragments)
{
    dn_status st;
    dn_model *m = load_text(json, &st);
    dn_test_expect_status(st, want, dn_model_errmsg(m));
    dn_test_expect_msg(dn_model_errmsg(m), "bad.json", fragments);
    dn_model_free(m);
}

#define EXPECT(json, status, ...) expect_error(json, status, FRAGS(__VA_ARGS__))

Test(api_load_errors, valid_base_model_loads)
{
    dn_status st;
    dn_model *m = load_text(HEAD INPUTS "\"nodes\": [" CONV "," FC "," LOSS "]," TAIL, &st);
    cr_assert_eq(st, DN_OK, "%s", dn_model_errmsg(m));
    cr_assert_eq(dn_model_node_count(m), 3);
    cr_assert_eq(dn_model_param_count(m), 4, "conv and fc get weight and bias implicitly");
    dn_model_free(m);
}

Test(api_load_errors, invalid_json_gives_line_and_column)
{
    EXPECT("{\"format\": \"dagnet/1\",\n  \"inputs\": {,\n}", DN_ERR_PARSE, "invalid JSON",
           "line 2, column");
    EXPECT("{\"format\": \"dagnet/1\",\n\n   \"nodes\": [1,,2]}", DN_ERR_PARSE,
           "line 3, column 16");
    EXPECT("{\"format\": \"dagnet/1\"}\n  x", DN_ERR_PARSE, "line 2, column 3");
}

Test(api_load_errors, wrong_format)
{
    EXPECT("{\"format\": \"dagnet/2\"," INPUTS "\"nodes\": [" CONV "]}", DN_ERR_MODEL, "/format",
           "expected \"dagnet/1\"", "found \"dagnet/2\"");
    EXPECT("{" INPUTS "\"nodes\": [" CONV "]}", DN_ERR_MODEL, "/format", "found nothing");
}

Test(api_load_errors, unknown_op)
{
    EXPECT(HEAD INPUTS
           "\"nodes\": [{\"name\": \"c\", \"op\": \"Convolution\", \"inputs\": [\"image\"]}]," TAIL,
           DN_ERR_MODEL, "node \"c\"", "/nodes/0/op", "unknown op \"Convolution\"", "Conv");
}

Test(api_load_errors, unknown_attr)
{
    EXPECT(HEAD INPUTS "\"nodes\": [{\"name\": \"r\", \"op\": \"ReLU\", \"inputs\": [\"image\"], "
                       "\"attrs\": {\"slope\": 0.1}}],"
                       "\"outputs\": [\"r\"]}",
           DN_ERR_MODEL, "node \"r\"", "/nodes/0/attrs/slope", "unknown attr \"slope\"");
}

Test(api_load_errors, ill_typed_attr)
{
    EXPECT(HEAD INPUTS
           "\"nodes\": [{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"],"
           " \"attrs\": {\"filters\": 2, \"kernel\": \"three\"}}], \"outputs\": [\"conv\"]}",
           DN_ERR_MODEL, "node \"conv\"", "/nodes/0/attrs/kernel", "found a string");
    EXPECT(
        HEAD INPUTS
        "\"nodes\": [{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"],"
        " \"attrs\": {\"filters\": 2, \"kernel\": 3, \"stride\": 1.5}}], \"outputs\": [\"conv\"]}",
        DN_ERR_MODEL, "node \"conv\"", "/nodes/0/attrs/stride", "integer");
}

Test(api_load_errors, undefined_input)
{
    EXPECT(HEAD INPUTS "\"nodes\": [" CONV
                       ", {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"pool9\"],"
                       " \"attrs\": {\"units\": 4}}," LOSS "]," TAIL,
           DN_ERR_MODEL, "node \"fc\"", "/nodes/1/inputs/0", "input \"pool9\" is not defined");
}

Test(api_load_errors, duplicate_name)
{
    EXPECT(HEAD INPUTS "\"nodes\": [" CONV
                       ", {\"name\": \"conv\", \"op\": \"ReLU\", \"inputs\": [\"image\"]}]," TAIL,
           DN_ERR_MODEL, "node \"conv\"", "/nodes/1", "duplicate name \"conv\"");
    EXPECT(HEAD INPUTS
           "\"nodes\": [{\"name\": \"image\", \"op\": \"ReLU\", \"inputs\": [\"label\"]}]," TAIL,
           DN_ERR_MODEL, "node \"image\"", "duplicate name \"image\"", "already an input");
}

Test(api_load_errors, cycle_names_its_nodes)
{
    EXPECT(HEAD INPUTS "\"nodes\": ["
                       "{\"name\": \"a\", \"op\": \"Add\", \"inputs\": [\"image\", \"c\"]},"
                       "{\"name\": \"b\", \"op\": \"ReLU\", \"inputs\": [\"a\"]},"
                       "{\"name\": \"c\", \"op\": \"Sigmoid\", \"inputs\": [\"b\"]},"
                       "{\"name\": \"d\", \"op\": \"ReLU\", \"inputs\": [\"c\"]}],"
                       "\"outputs\": [\"d\"]}",
           DN_ERR_MODEL, "cycle", "\"a\"", "\"b\"", "\"c\"");
    EXPECT(HEAD INPUTS "\"nodes\": [{\"name\": \"self\", \"op\": \"ReLU\", \"inputs\": "
                       "[\"self\"]}], \"outputs\": [\"self\"]}",
           DN_ERR_MODEL, "cycle", "\"self\" -> \"self\"");
}

Test(api_load_errors, wrong_number_of_inputs)
{
    EXPECT(HEAD INPUTS "\"nodes\": [{\"name\": \"sum\", \"op\": \"Add\", \"inputs\": "
                       "[\"image\"]}], \"outputs\": [\"sum\"]}",
           DN_ERR_MODEL, "node \"sum\"", "/nodes/0/inputs", "Add expects 2 inputs, found 1");
    EXPECT(HEAD INPUTS "\"nodes\": [{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": "
                       "[\"image\"]}], \"outputs\": [\"conv\"]}",
           DN_ERR_MODEL, "node \"conv\"", "/nodes/0/inputs", "found 1",
           "attrs that size its params");
}

Test(api_load_errors, shape_mismatch_shows_both_shapes)
{
    EXPECT(HEAD INPUTS
           "\"params\": {\"W\": {\"shape\": [100, 4]}},"
           "\"nodes\": [" CONV
           ", {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"conv\", \"W\"]}," LOSS
           "]," TAIL,
           DN_ERR_SHAPE, "node \"fc\"", "100", "72", "[N,2,6,6]");
    EXPECT(HEAD INPUTS "\"nodes\": [" CONV
                       ", {\"name\": \"sum\", \"op\": \"Add\", \"inputs\": [\"conv\", \"image\"]}],"
                       "\"outputs\": [\"sum\"]}",
           DN_ERR_SHAPE, "node \"sum\"", "[N,2,6,6]", "[N,1,8,8]");
}

Test(api_load_errors, zero_negative_and_overflowing_dimensions)
{
    EXPECT(HEAD "\"inputs\": {\"image\": {\"shape\": [null, 0, 8, 8]}},"
                "\"nodes\": [{\"name\": \"r\", \"op\": \"ReLU\", \"inputs\": [\"image\"]}], "
                "\"outputs\": [\"r\"]}",
           DN_ERR_SHAPE, "input \"image\"", "/inputs/image/shape/1", "must be >= 1, found 0");
    EXPECT(HEAD "\"inputs\": {\"image\": {\"shape\": [null, 1, -8, 8]}},"
                "\"nodes\": [{\"name\": \"r\", \"op\": \"ReLU\", \"inputs\": [\"image\"]}], "
                "\"outputs\": [\"r\"]}",
           DN_ERR_SHAPE, "input \"image\"", "/inputs/image/shape/2", "found -8");
    EXPECT(HEAD "\"inputs\": {\"image\": {\"shape\": [null, 1000000, 1000000, 1000000, 1000000]}},"
                "\"nodes\": [{\"name\": \"r\", \"op\": \"ReLU\", \"inputs\": [\"image\"]}], "
                "\"outputs\": [\"r\"]}",
           DN_ERR_SHAPE, "input \"image\"", "overflows 64 bits");
    EXPECT(HEAD INPUTS "\"params\": {\"W\": {\"shape\": [4, 1e300]}},"
                       "\"nodes\": [" CONV "], \"outputs\": [\"conv\"]}",
           DN_ERR_SHAPE, "param \"W\"", "/params/W/shape/1", "above the limit");
    EXPECT(HEAD INPUTS "\"nodes\": [{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"],"
                       " \"attrs\": {\"filters\": 0, \"kernel\": 3}}], \"outputs\": [\"conv\"]}",
           DN_ERR_MODEL, "node \"conv\"", "/nodes/0/attrs/filters", "found 0");
}

Test(api_load_errors, kernel_larger_than_input)
{
    EXPECT(HEAD INPUTS "\"nodes\": [{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"],"
                       " \"attrs\": {\"filters\": 2, \"kernel\": 9}}], \"outputs\": [\"conv\"]}",
           DN_ERR_SHAPE, "node \"conv\"", "[N,1,8,8]");
}

Test(api_load_errors, int32_where_float_is_needed)
{
    EXPECT(HEAD INPUTS "\"nodes\": [{\"name\": \"r\", \"op\": \"ReLU\", \"inputs\": [\"label\"]}], "
                       "\"outputs\": [\"r\"]}",
           DN_ERR_SHAPE, "node \"r\"", "/nodes/0/inputs/0", "\"label\"", "float32", "int32");
}

Test(api_load_errors, unknown_fields_are_rejected)
{
    EXPECT(HEAD INPUTS "\"nodes\": [" CONV "], \"outputs\": [\"conv\"], \"optimizer\": \"sgd\"}",
           DN_ERR_MODEL, "/optimizer", "unknown field \"optimizer\"");
    EXPECT(HEAD INPUTS "\"nodes\": [{\"name\": \"r\", \"op\": \"ReLU\", \"input\": [\"image\"]}], "
                       "\"outputs\": [\"r\"]}",
           DN_ERR_MODEL, "node \"r\"", "/nodes/0/input", "unknown field \"input\"");
    EXPECT(HEAD "\"inputs\": {\"image\": {\"shape\": [null, 4], \"dtype\": \"float16\"}},"
                "\"nodes\": [{\"name\": \"r\", \"op\": \"ReLU\", \"inputs\": [\"image\"]}], "
                "\"outputs\": [\"r\"]}",
           DN_ERR_MODEL, "input \"image\"", "/inputs/image/dtype", "\"float16\"");
}

Test(api_load_errors, bad_init_and_missing_param_shape)
{
    EXPECT(HEAD INPUTS "\"params\": {\"W\": {\"shape\": [72, 4], \"init\": \"gaussian\"}},"
                       "\"nodes\": [" CONV "], \"outputs\": [\"conv\"]}",
           DN_ERR_MODEL, "param \"W\"", "/params/W/init", "unknown init \"gaussian\"");
    EXPECT(HEAD INPUTS "\"params\": {\"W\": {\"init\": \"zeros\"}},"
                       "\"nodes\": [" CONV
                       ", {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"conv\", \"W\"]}],"
                       "\"outputs\": [\"fc\"]}",
           DN_ERR_MODEL, "param \"W\"", "/params/W/shape", "required");
}

Test(api_load_errors, loss_must_be_a_scalar)
{
    EXPECT(HEAD INPUTS "\"nodes\": [" CONV "], \"outputs\": [\"conv\"], \"loss\": \"conv\"}",
           DN_ERR_SHAPE, "/loss", "\"conv\"", "scalar", "[N,2,6,6]");
}

Test(api_load_errors, missing_file_is_an_io_error)
{
    dn_model *m = NULL;
    dn_status st = dn_model_load("/nonexistent/dir/model.json", &m);
    cr_assert_eq(st, DN_ERR_IO);
    EXPECT_MSG(dn_model_errmsg(m), "/nonexistent/dir/model.json");
    dn_model_free(m);
}

Test(api_session_errors, batch_too_large_to_allocate)
{
    dn_status st;
    dn_model *m = load_text(HEAD INPUTS "\"nodes\": [" CONV "," FC "," LOSS "]," TAIL, &st);
    cr_assert_eq(st, DN_OK, "%s", dn_model_errmsg(m));
    dn_session *s = NULL;
    cr_assert_eq(dn_session_new(m, NULL, &s), DN_OK, "%s", dn_session_errmsg(s));
    float pixel = 0;
    /* 2^40 images of 64 floats: a size no machine can allocate, and must not overflow. */
    int64_t shape[4] = { (int64_t)1 << 40, 1, 8, 8 };
    st = dn_session_set_input(s, "image", DN_F32, 4, shape, &pixel);
    cr_assert_eq(st, DN_ERR_NOMEM, "status %s: %s", dn_status_name(st), dn_session_errmsg(s));
    EXPECT_MSG(dn_session_errmsg(s), "batch");
    dn_session_free(s);
    dn_model_free(m);
}

Test(api_session_errors, fed_input_of_wrong_shape_or_dtype)
{
    dn_status st;
    dn_model *m = load_text(HEAD INPUTS "\"nodes\": [" CONV "," FC "," LOSS "]," TAIL, &st);
    dn_session *s = NULL;
    cr_assert_eq(dn_session_new(m, NULL, &s), DN_OK);
    float img[2 * 64] = { 0 };
    int64_t wrong[4] = { 2, 1, 7, 8 };
    st = dn_session_set_input(s, "image", DN_F32, 4, wrong, img);
    cr_assert_eq(st, DN_ERR_SHAPE);
    EXPECT_MSG(dn_session_errmsg(s), "[N,1,8,8]", "[2,1,7,8]");
    int64_t shape[4] = { 2, 1, 8, 8 };
    st = dn_session_set_input(s, "image", DN_I32, 4, shape, img);
    cr_assert_eq(st, DN_ERR_SHAPE);
    EXPECT_MSG(dn_session_errmsg(s), "expected float32, found int32");
    st = dn_session_set_input(s, "nothing", DN_F32, 4, shape, img);
    cr_assert_eq(st, DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "\"nothing\" is not defined");
    dn_session_free(s);
    dn_model_free(m);
}

Test(api_session_errors, labels_out_of_range_are_caught_before_the_kernel)
{
    dn_status st;
    dn_model *m = load_text(HEAD INPUTS "\"nodes\": [" CONV "," FC "," LOSS "]," TAIL, &st);
    dn_session *s = NULL;
    cr_assert_eq(dn_session_new(m, NULL, &s), DN_OK);
    float img[2 * 64] = { 0 };
    int32_t labels[2] = { 1, 4 };
    int64_t ishape[4] = { 2, 1, 8, 8 }, lshape[1] = { 2 };
    cr_assert_eq(dn_session_set_input(s, "image", DN_F32, 4, ishape, img), DN_OK);
    cr_assert_eq(dn_session_set_input(s, "label", DN_I32, 1, lshape, labels), DN_OK);
    st = dn_session_forward(s, DN_TRAIN, NULL, 0);
    cr_assert_eq(st, DN_ERR_ARG, "%s", dn_session_errmsg(s));
    EXPECT_MSG(dn_session_errmsg(s), "node \"loss\"", "inputs/1");
    dn_session_free(s);
    dn_model_free(m);
}

Test(api_session_errors, weights_that_do_not_fit, .init = dn_test_dir_init,
     .fini = dn_test_dir_fini)
{
    const char *path = dn_test_path("w.safetensors");
    dn_status st;
    /* Save weights of a model whose conv has 3 filters, load them into one with 2. */
    const char *three =
        HEAD INPUTS "\"nodes\": [{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"],"
                    " \"attrs\": {\"filters\": 3, \"kernel\": 3}}], \"outputs\": [\"conv\"]}";
    const char *two = HEAD INPUTS "\"nodes\": [" CONV "], \"outputs\": [\"conv\"]}";
    const char *nobias = HEAD INPUTS
        "\"nodes\": [{\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"],"
        " \"attrs\": {\"filters\": 2, \"kernel\": 3, \"bias\": false}}], \"outputs\": [\"conv\"]}";
    dn_model *m3 = load_text(three, &st), *m2 = load_text(two, &st), *mnb = load_text(nobias, &st);
    dn_session *s3, *s2, *snb;
    dn_session_new(m3, NULL, &s3);
    dn_session_new(m2, NULL, &s2);
    dn_session_new(mnb, NULL, &snb);
    cr_assert_eq(dn_session_save_weights(s3, path), DN_OK, "%s", dn_session_errmsg(s3));
    st = dn_session_load_weights(s2, path);
    cr_assert_eq(st, DN_ERR_SHAPE);
    EXPECT_MSG(dn_session_errmsg(s2), "w.safetensors: param \"conv.weight\": "
                                      "expected shape [2,1,3,3], found [3,1,3,3]");
    st = dn_session_load_weights(snb, path);
    cr_assert_eq(st, DN_ERR_SHAPE);
    EXPECT_MSG(dn_session_errmsg(snb), "conv.weight");
    cr_assert_eq(dn_session_save_weights(snb, path), DN_OK);
    st = dn_session_load_weights(s2, path);
    cr_assert_eq(st, DN_ERR_SHAPE);
    EXPECT_MSG(dn_session_errmsg(s2), "param \"conv.bias\" of bad.json is missing");
    st = dn_session_load_weights(s2, "/nonexistent/w.safetensors");
    cr_assert_eq(st, DN_ERR_IO, "%s", dn_session_errmsg(s2));
    dn_session_free(s3);
    dn_session_free(s2);
    dn_session_free(snb);
    dn_model_free(m3);
    dn_model_free(m2);
    dn_model_free(mnb);
}
