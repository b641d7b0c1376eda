/*
 * test_profile.c — the measuring side of the public API, which `dagnet bench` is built on:
 * per-node call counts and flops, BLIS's reference speed on a node's products, the memory a
 * session holds (suite api_profile), and data sets made from arrays (api_data).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"

static dn_session *lenet_session(dn_model **m, int batch)
{
    *m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.threads = 2;
    dn_session *s = dn_test_session(*m, &o);
    int64_t ishape[4] = { batch, 1, 28, 28 }, n = batch;
    float *image = calloc((size_t)batch * 784, sizeof *image);
    int32_t *label = calloc((size_t)batch, sizeof *label);
    cr_assert_eq(dn_session_set_input(s, "image", DN_F32, 4, ishape, image), DN_OK);
    cr_assert_eq(dn_session_set_input(s, "label", DN_I32, 1, &n, label), DN_OK);
    free(image);
    free(label);
    return s;
}

static int node_index(const dn_model *m, const char *name)
{
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_node_info info;
        dn_model_node_info(m, i, &info);
        if (!strcmp(info.name, name))
            return i;
    }
    cr_assert_fail("no node \"%s\"", name);
    return -1;
}

Test(api_profile, counts_calls_and_flops_per_node)
{
    dn_model *m;
    dn_session *s = lenet_session(&m, 3);
    cr_assert_eq(dn_session_threads(s), 2);
    cr_assert_eq(dn_session_set_profiling(s, true), DN_OK);
    for (int step = 0; step < 2; step++) {
        cr_assert_eq(dn_session_forward(s, DN_TRAIN, NULL, 0), DN_OK);
        cr_assert_eq(dn_session_backward(s), DN_OK);
    }
    cr_assert_eq(dn_session_forward(s, DN_INFER, NULL, 0), DN_OK);
    dn_node_profile p;
    cr_assert_eq(dn_session_node_profile(s, node_index(m, "conv2"), &p), DN_OK);
    cr_assert_str_eq(p.node, "conv2");
    cr_assert_str_eq(p.op, "Conv");
    cr_assert_eq(p.forward_calls, 3);
    cr_assert_eq(p.backward_calls, 2);
    cr_assert_gt(p.forward_seconds, 0.0);
    cr_assert(p.has_gemm);
    /* conv2: 16 filters of 6×5×5 over 10×10 positions, 3 samples, plus the bias; backward
     * computes dW and dx, each a product of the same size. */
    double products = 2.0 * 3 * 16 * 100 * 150;
    cr_assert_float_eq(p.forward_flops, products + 3 * 16 * 100, 0.5, "%.1f", p.forward_flops);
    cr_assert_float_eq(p.backward_flops, 2 * products, 0.5);
    /* conv1 reads the image, which takes no gradient: its backward computes dW alone. */
    cr_assert_eq(dn_session_node_profile(s, node_index(m, "conv1"), &p), DN_OK);
    cr_assert_float_eq(p.backward_flops, 2.0 * 3 * 6 * 784 * 25, 0.5);
    /* The prediction is not on the loss path: it never runs backward. */
    cr_assert_eq(dn_session_node_profile(s, node_index(m, "prob"), &p), DN_OK);
    cr_assert_eq(p.backward_calls, 0);
    cr_assert_not(p.has_gemm);
    /* Turning profiling on again starts from zero. */
    cr_assert_eq(dn_session_set_profiling(s, true), DN_OK);
    cr_assert_eq(dn_session_node_profile(s, node_index(m, "conv2"), &p), DN_OK);
    cr_assert_eq(p.forward_calls, 0);
    cr_assert_eq(dn_session_node_profile(s, 99, &p), DN_ERR_ARG);
    dn_session_free(s);
    dn_model_free(m);
}

Test(api_profile, blis_reference_only_for_matrix_products)
{
    dn_model *m;
    dn_session *s = lenet_session(&m, 4);
    double fwd, bwd;
    cr_assert_eq(dn_session_gemm_reference(s, node_index(m, "fc1"), 3, &fwd, &bwd), DN_OK);
    cr_assert_gt(fwd, 0.0);
    cr_assert_gt(bwd, 0.0);
    cr_assert_eq(dn_session_gemm_reference(s, node_index(m, "relu1"), 3, &fwd, &bwd), DN_OK);
    cr_assert(fwd == 0.0 && bwd == 0.0);
    cr_assert_eq(dn_session_gemm_reference(s, node_index(m, "fc1"), 0, &fwd, &bwd), DN_ERR_ARG);
    dn_session_free(s);
    dn_model_free(m);
}

Test(api_profile, memory_reports_the_plan)
{
    dn_model *m;
    dn_session *s = lenet_session(&m, 10);
    dn_memory_info mem;
    cr_assert_eq(dn_session_forward(s, DN_TRAIN, NULL, 0), DN_OK);
    cr_assert_eq(dn_session_memory(s, &mem), DN_OK);
    cr_assert_eq(mem.params, 61706 * sizeof(float));
    cr_assert_eq(mem.param_grads, mem.params);
    cr_assert_gt(mem.arena, 0);
    cr_assert_leq(mem.arena, mem.arena_unshared);
    /* conv1's output alone, 10 × 6 × 28 × 28 floats, lives until its backward. */
    cr_assert_geq(mem.arena, 10 * 6 * 784 * sizeof(float));
    dn_session_free(s);
    dn_model_free(m);
}

Test(api_data, dataset_from_arrays_copies_and_checks)
{
    float images[2 * 4] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    int32_t labels[2] = { 1, 0 };
    dn_dataset *d;
    cr_assert_eq(dn_dataset_from_arrays(2, 1, 2, 2, images, labels, 2, &d), DN_OK, "%s",
                 dn_dataset_errmsg(d));
    images[0] = 99; /* copied, not borrowed */
    dn_view v;
    cr_assert_eq(dn_dataset_images(d, &v), DN_OK);
    cr_assert_eq(((const float *)v.data)[0], 0.0f);
    cr_assert_eq(v.rank, 4);
    cr_assert_eq(dn_dataset_count(d), 2);
    cr_assert_eq(dn_dataset_classes(d), 2);
    dn_dataset_free(d);
    labels[1] = 2;
    cr_assert_eq(dn_dataset_from_arrays(2, 1, 2, 2, images, labels, 2, &d), DN_ERR_ARG);
    EXPECT_MSG(dn_dataset_errmsg(d), "label 1 is 2");
    dn_dataset_free(d);
    cr_assert_eq(dn_dataset_from_arrays(0, 1, 2, 2, images, labels, 2, &d), DN_ERR_ARG);
    dn_dataset_free(d);
    cr_assert_eq(dn_dataset_from_arrays(INT64_MAX / 2, 1000, 1000, 1000, images, labels, 2, &d),
                 DN_ERR_NOMEM);
    dn_dataset_free(d);
}
