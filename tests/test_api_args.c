/*
 * test_api_args.c — the public API's own arguments (suite api_args).
 *
 * A table of calls, one per bad argument of each function of include/dagnet.h: NULL handles,
 * NULL pointers, out-of-range indices, modes, dtypes, ranks, batch sizes and thread counts.
 * Before each call every handle's message is overwritten with "stale message", so that a call
 * which fails without writing a message of its own is caught. Each call must return
 * DN_ERR_ARG (never crash), and its handle's message must name the function and the argument
 * (e.g. "dn_session_tensor: out is NULL"). Calls that have no handle to hold a message (a
 * constructor given a NULL out, a NULL handle) return DN_ERR_ARG, and dn_*_errmsg(NULL) says
 * what a missing handle means.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "helpers.h"
#include "runtime/error.h"

TestSuite(api_args);

typedef struct ctx {
    dn_model *m;
    dn_session *s;
    dn_dataset *d;
    dn_trainer *t;
    dn_model *made_m; /* handles a case creates, freed after it */
    dn_session *made_s;
    dn_dataset *made_d;
    dn_trainer *made_t;
} ctx;

/* Which handle's message a case reads. */
typedef enum { H_NONE, H_MODEL, H_SESSION, H_DATASET, H_TRAINER } handle;

typedef struct arg_case {
    const char *what;
    dn_status (*call)(ctx *c);
    handle h;
    bool made; /* the message is on the handle the call created (made_*) */
    const char *frag[3];
} arg_case;

#define CASE(NAME, BODY)          \
    static dn_status NAME(ctx *c) \
    {                             \
        (void)c;                  \
        BODY                      \
    }

static const int64_t SHAPE4[4] = { 1, 1, 28, 28 };
static float PIXELS[28 * 28];
static int32_t LABELS[1];
static dn_view view;
static dn_tensor_info tinfo;
static dn_node_info ninfo;
static double gf;

/* ---------------------------------------------------------------- models */
CASE(model_load_out_null, return dn_model_load(DN_TEST_MODELS "/lenet5.json", NULL);)
CASE(model_parse_out_null, return dn_model_parse("{}", 2, "x.json", NULL);)
CASE(model_load_path_null, return dn_model_load(NULL, &c->made_m);)
CASE(model_parse_json_null, return dn_model_parse(NULL, 0, "x.json", &c->made_m);)
CASE(model_input_info_range, return dn_model_input_info(c->m, 7, &tinfo);)
CASE(model_input_info_negative, return dn_model_input_info(c->m, -1, &tinfo);)
CASE(model_input_info_out_null, return dn_model_input_info(c->m, 0, NULL);)
CASE(model_param_info_range, return dn_model_param_info(c->m, 1000, &tinfo);)
CASE(model_param_info_out_null, return dn_model_param_info(c->m, 0, NULL);)
CASE(model_node_info_range, return dn_model_node_info(c->m, 500, &ninfo);)
CASE(model_node_info_out_null, return dn_model_node_info(c->m, 0, NULL);)
CASE(model_output_name_range, return dn_model_output_name(c->m, 9) == NULL ? DN_ERR_ARG : DN_OK;)
CASE(model_null_handle, return dn_model_input_info(NULL, 0, &tinfo);)

/* ---------------------------------------------------------------- sessions */
CASE(session_new_out_null, return dn_session_new(c->m, NULL, NULL);)
CASE(session_new_model_null, return dn_session_new(NULL, NULL, &c->made_s);)
CASE(session_threads_huge, dn_session_options o = DN_SESSION_OPTIONS_DEFAULT; o.threads = 100000;
     return dn_session_new(c->m, &o, &c->made_s);)
CASE(session_threads_negative, dn_session_options o = DN_SESSION_OPTIONS_DEFAULT; o.threads = -3;
     return dn_session_new(c->m, &o, &c->made_s);)
CASE(session_tensor_out_null, return dn_session_tensor(c->s, "prob", NULL);)
CASE(session_tensor_name_null, return dn_session_tensor(c->s, NULL, &view);)
CASE(session_param_out_null, return dn_session_param(c->s, "conv1.weight", NULL);)
CASE(session_param_name_null, return dn_session_param(c->s, NULL, &view);)
CASE(session_param_grad_out_null, return dn_session_param_grad(c->s, "conv1.weight", NULL);)
CASE(session_forward_mode, return dn_session_forward(c->s, (dn_mode)7, NULL, 0);)
CASE(session_forward_fetch_null, return dn_session_forward(c->s, DN_INFER, NULL, 1);)
CASE(session_forward_fetch_item_null, const char *f[1] = { NULL };
     return dn_session_forward(c->s, DN_INFER, f, 1);)
CASE(session_forward_n_negative, return dn_session_forward(c->s, DN_INFER, NULL, -1);)
CASE(session_set_input_name_null,
     return dn_session_set_input(c->s, NULL, DN_F32, 4, SHAPE4, PIXELS);)
CASE(session_set_input_shape_null,
     return dn_session_set_input(c->s, "image", DN_F32, 4, NULL, PIXELS);)
CASE(session_set_input_data_null,
     return dn_session_set_input(c->s, "image", DN_F32, 4, SHAPE4, NULL);)
CASE(session_set_input_rank, return dn_session_set_input(c->s, "image", DN_F32, 9, SHAPE4, PIXELS);)
CASE(session_set_input_dtype,
     return dn_session_set_input(c->s, "image", (dn_dtype)5, 4, SHAPE4, PIXELS);)
CASE(session_set_input_npy_path_null, return dn_session_set_input_npy(c->s, "image", NULL);)
CASE(session_set_input_npy_name_null, return dn_session_set_input_npy(c->s, NULL, "x.npy");)
CASE(session_load_weights_null, return dn_session_load_weights(c->s, NULL);)
CASE(session_save_weights_null, return dn_session_save_weights(c->s, NULL);)
CASE(session_write_npy_tensor_null, return dn_session_write_npy(c->s, NULL, "x.npy");)
CASE(session_write_npy_path_null, return dn_session_write_npy(c->s, "prob", NULL);)
CASE(session_save_gradients_null, return dn_session_save_gradients(c->s, NULL, false);)
CASE(session_node_profile_range, dn_node_profile p; return dn_session_node_profile(c->s, 99, &p);)
CASE(session_node_profile_out_null, return dn_session_node_profile(c->s, 0, NULL);)
CASE(session_gemm_reference_null, return dn_session_gemm_reference(c->s, 0, 1, NULL, &gf);)
CASE(session_memory_null, return dn_session_memory(c->s, NULL);)
CASE(session_evaluate_out_null, return dn_session_evaluate(c->s, c->d, NULL, 10, NULL);)
CASE(session_evaluate_dataset_null, dn_eval_result r;
     return dn_session_evaluate(c->s, NULL, NULL, 10, &r);)
CASE(session_evaluate_batch, dn_eval_result r; return dn_session_evaluate(c->s, c->d, NULL, 0, &r);)
CASE(session_null_handle, return dn_session_forward(NULL, DN_INFER, NULL, 0);)
CASE(session_backward_null_handle, return dn_session_backward(NULL);)
CASE(session_set_profiling_null, return dn_session_set_profiling(NULL, true);)

/* ---------------------------------------------------------------- data sets */
CASE(dataset_load_dir_out_null, return dn_dataset_load_dir("/nonexistent", true, NULL);)
CASE(dataset_load_dir_null, return dn_dataset_load_dir(NULL, true, &c->made_d);)
CASE(dataset_load_idx_null, return dn_dataset_load_idx("a", NULL, &c->made_d);)
CASE(dataset_load_images_null, return dn_dataset_load_images(NULL, &c->made_d);)
CASE(dataset_load_images_out_null, return dn_dataset_load_images("x.npy", NULL);)
CASE(dataset_from_arrays_out_null,
     return dn_dataset_from_arrays(1, 1, 28, 28, PIXELS, LABELS, 10, NULL);)
CASE(dataset_split_val_null, return dn_dataset_split(c->d, 1, NULL);)
CASE(dataset_images_out_null, return dn_dataset_images(c->d, NULL);)
CASE(dataset_labels_out_null, return dn_dataset_labels(c->d, NULL);)

/* ---------------------------------------------------------------- trainers */
CASE(trainer_new_out_null, return dn_trainer_new(c->s, NULL, NULL, NULL);)
CASE(trainer_new_session_null, return dn_trainer_new(NULL, NULL, NULL, &c->made_t);)
CASE(trainer_step_dataset_null, return dn_trainer_step(c->t, NULL, NULL);)
CASE(trainer_save_null, return dn_trainer_save_checkpoint(c->t, NULL);)
CASE(trainer_load_null, return dn_trainer_load_checkpoint(c->t, NULL);)

#define F(...)      \
    {               \
        __VA_ARGS__ \
    }
static const arg_case CASES[] = {
    { "model_load out NULL", model_load_out_null, H_NONE, false, F(NULL) },
    { "model_parse out NULL", model_parse_out_null, H_NONE, false, F(NULL) },
    { "model_load path NULL", model_load_path_null, H_MODEL, true,
      F("dn_model_load", "path is NULL") },
    { "model_parse json NULL", model_parse_json_null, H_MODEL, true,
      F("dn_model_parse", "json is NULL") },
    { "input_info 7", model_input_info_range, H_MODEL, false,
      F("dn_model_input_info", "index 7 is out of range", "2 inputs") },
    { "input_info -1", model_input_info_negative, H_MODEL, false,
      F("dn_model_input_info", "index -1") },
    { "input_info out NULL", model_input_info_out_null, H_MODEL, false,
      F("dn_model_input_info", "out is NULL") },
    { "param_info 1000", model_param_info_range, H_MODEL, false,
      F("dn_model_param_info", "index 1000") },
    { "param_info out NULL", model_param_info_out_null, H_MODEL, false,
      F("dn_model_param_info", "out is NULL") },
    { "node_info 500", model_node_info_range, H_MODEL, false,
      F("dn_model_node_info", "index 500") },
    { "node_info out NULL", model_node_info_out_null, H_MODEL, false,
      F("dn_model_node_info", "out is NULL") },
    { "output_name 9", model_output_name_range, H_MODEL, false,
      F("dn_model_output_name", "index 9") },
    { "model NULL", model_null_handle, H_NONE, false, F(NULL) },

    { "session_new out NULL", session_new_out_null, H_NONE, false, F(NULL) },
    { "session_new model NULL", session_new_model_null, H_SESSION, true,
      F("dn_session_new", "model is NULL") },
    { "threads 100000", session_threads_huge, H_SESSION, true,
      F("dn_session_new", "threads = 100000", "1 to 1024") },
    { "threads -3", session_threads_negative, H_SESSION, true,
      F("dn_session_new", "threads = -3", "0 for the default") },
    { "tensor out NULL", session_tensor_out_null, H_SESSION, false,
      F("dn_session_tensor", "out is NULL") },
    { "tensor name NULL", session_tensor_name_null, H_SESSION, false,
      F("dn_session_tensor", "name is NULL") },
    { "param out NULL", session_param_out_null, H_SESSION, false,
      F("dn_session_param", "out is NULL") },
    { "param name NULL", session_param_name_null, H_SESSION, false,
      F("dn_session_param", "name is NULL") },
    { "param_grad out NULL", session_param_grad_out_null, H_SESSION, false,
      F("dn_session_param_grad", "out is NULL") },
    { "forward mode 7", session_forward_mode, H_SESSION, false, F("dn_session_forward", "mode 7") },
    { "forward fetch NULL", session_forward_fetch_null, H_SESSION, false,
      F("dn_session_forward", "fetch is NULL") },
    { "forward fetch[0] NULL", session_forward_fetch_item_null, H_SESSION, false,
      F("dn_session_forward", "fetch[0] is NULL") },
    { "forward n_fetch -1", session_forward_n_negative, H_SESSION, false,
      F("dn_session_forward", "n_fetch = -1") },
    { "set_input name NULL", session_set_input_name_null, H_SESSION, false,
      F("dn_session_set_input", "name is NULL") },
    { "set_input shape NULL", session_set_input_shape_null, H_SESSION, false,
      F("dn_session_set_input", "shape is NULL") },
    { "set_input data NULL", session_set_input_data_null, H_SESSION, false,
      F("dn_session_set_input", "data is NULL") },
    { "set_input rank 9", session_set_input_rank, H_SESSION, false,
      F("dn_session_set_input", "rank 9") },
    { "set_input dtype 5", session_set_input_dtype, H_SESSION, false,
      F("dn_session_set_input", "dtype 5") },
    { "set_input_npy path NULL", session_set_input_npy_path_null, H_SESSION, false,
      F("dn_session_set_input_npy", "path is NULL") },
    { "set_input_npy name NULL", session_set_input_npy_name_null, H_SESSION, false,
      F("dn_session_set_input_npy", "name is NULL") },
    { "load_weights NULL", session_load_weights_null, H_SESSION, false,
      F("dn_session_load_weights", "path is NULL") },
    { "save_weights NULL", session_save_weights_null, H_SESSION, false,
      F("dn_session_save_weights", "path is NULL") },
    { "write_npy tensor NULL", session_write_npy_tensor_null, H_SESSION, false,
      F("dn_session_write_npy", "tensor is NULL") },
    { "write_npy path NULL", session_write_npy_path_null, H_SESSION, false,
      F("dn_session_write_npy", "path is NULL") },
    { "save_gradients NULL", session_save_gradients_null, H_SESSION, false,
      F("dn_session_save_gradients", "path is NULL") },
    { "node_profile 99", session_node_profile_range, H_SESSION, false,
      F("dn_session_node_profile", "index 99") },
    { "node_profile out NULL", session_node_profile_out_null, H_SESSION, false,
      F("dn_session_node_profile", "out is NULL") },
    { "gemm_reference NULL", session_gemm_reference_null, H_SESSION, false,
      F("dn_session_gemm_reference", "forward_gflops is NULL") },
    { "memory NULL", session_memory_null, H_SESSION, false, F("dn_session_memory", "out is NULL") },
    { "evaluate out NULL", session_evaluate_out_null, H_SESSION, false,
      F("dn_session_evaluate", "out is NULL") },
    { "evaluate dataset NULL", session_evaluate_dataset_null, H_SESSION, false,
      F("dn_session_evaluate", "dataset is NULL") },
    { "evaluate batch 0", session_evaluate_batch, H_SESSION, false,
      F("dn_session_evaluate", "batch = 0") },
    { "session NULL", session_null_handle, H_NONE, false, F(NULL) },
    { "backward NULL", session_backward_null_handle, H_NONE, false, F(NULL) },
    { "set_profiling NULL", session_set_profiling_null, H_NONE, false, F(NULL) },

    { "load_dir out NULL", dataset_load_dir_out_null, H_NONE, false, F(NULL) },
    { "load_dir NULL", dataset_load_dir_null, H_DATASET, true,
      F("dn_dataset_load_dir", "dir is NULL") },
    { "load_idx NULL", dataset_load_idx_null, H_DATASET, true,
      F("dn_dataset_load_idx", "labels_path is NULL") },
    { "load_images NULL", dataset_load_images_null, H_DATASET, true,
      F("dn_dataset_load_images", "path is NULL") },
    { "load_images out NULL", dataset_load_images_out_null, H_NONE, false, F(NULL) },
    { "from_arrays out NULL", dataset_from_arrays_out_null, H_NONE, false, F(NULL) },
    { "split val NULL", dataset_split_val_null, H_DATASET, false,
      F("dn_dataset_split", "val is NULL") },
    { "images out NULL", dataset_images_out_null, H_DATASET, false,
      F("dn_dataset_images", "out is NULL") },
    { "labels out NULL", dataset_labels_out_null, H_DATASET, false,
      F("dn_dataset_labels", "out is NULL") },

    { "trainer_new out NULL", trainer_new_out_null, H_NONE, false, F(NULL) },
    { "trainer_new session NULL", trainer_new_session_null, H_TRAINER, true,
      F("dn_trainer_new", "session is NULL") },
    { "trainer_step NULL", trainer_step_dataset_null, H_TRAINER, false,
      F("dn_trainer_step", "is NULL") },
    { "save_checkpoint NULL", trainer_save_null, H_TRAINER, false,
      F("dn_trainer_save_checkpoint", "path is NULL") },
    { "load_checkpoint NULL", trainer_load_null, H_TRAINER, false,
      F("dn_trainer_load_checkpoint", "path is NULL") },
};

static void poison(ctx *c)
{
    dn_err_set(&c->m->err, DN_ERR_IO, "stale message");
    dn_err_set(&c->s->err, DN_ERR_IO, "stale message");
    /* dn_dataset and dn_trainer are opaque here: make them fail a call of their own. */
    dn_dataset *unused = NULL;
    (void)dn_dataset_split(c->d, -5, &unused);
    dn_dataset_free(unused);
    (void)dn_trainer_load_checkpoint(c->t, "/nonexistent/stale message");
}

static const char *message(const ctx *c, handle h, bool made)
{
    switch (h) {
    case H_MODEL: return dn_model_errmsg(made ? c->made_m : c->m);
    case H_SESSION: return dn_session_errmsg(made ? c->made_s : c->s);
    case H_DATASET: return dn_dataset_errmsg(made ? c->made_d : c->d);
    case H_TRAINER: return dn_trainer_errmsg(made ? c->made_t : c->t);
    default: return "";
    }
}

Test(api_args, every_function_checks_its_arguments)
{
    ctx c = { 0 };
    c.m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    c.s = dn_test_session(c.m, NULL);
    cr_assert_eq(dn_dataset_from_arrays(1, 1, 28, 28, PIXELS, LABELS, 10, &c.d), DN_OK);
    cr_assert_eq(dn_trainer_new(c.s, NULL, NULL, &c.t), DN_OK, "%s", dn_trainer_errmsg(c.t));
    int failures = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const arg_case *k = &CASES[i];
        poison(&c);
        dn_status st = k->call(&c);
        const char *msg = message(&c, k->h, k->made);
        bool ok = st == DN_ERR_ARG;
        for (int f = 0; ok && f < 3 && k->frag[f]; f++)
            ok = strstr(msg, k->frag[f]) != NULL;
        if (k->h != H_NONE && strstr(msg, "stale message"))
            ok = false;
        if (!ok) {
            failures++;
            cr_log_error("%s: status %s, message \"%s\"", k->what, dn_status_name(st), msg);
        }
        dn_model_free(c.made_m);
        dn_session_free(c.made_s);
        dn_dataset_free(c.made_d);
        dn_trainer_free(c.made_t);
        c.made_m = NULL;
        c.made_s = NULL;
        c.made_d = NULL;
        c.made_t = NULL;
    }
    dn_trainer_free(c.t);
    dn_dataset_free(c.d);
    dn_session_free(c.s);
    dn_model_free(c.m);
    cr_assert_eq(failures, 0, "%d of %zu calls did not check their arguments (see the log)",
                 failures, sizeof CASES / sizeof CASES[0]);
}

/* Without a handle there is nowhere to put a message: errmsg(NULL) says what that means. */
Test(api_args, errmsg_of_null_handles)
{
    EXPECT_MSG(dn_model_errmsg(NULL), "no handle", "NULL out");
    EXPECT_MSG(dn_session_errmsg(NULL), "no handle", "NULL out");
    EXPECT_MSG(dn_dataset_errmsg(NULL), "no handle", "NULL out");
    EXPECT_MSG(dn_trainer_errmsg(NULL), "no handle", "NULL out");
}

/* The documented range of threads: 0 (the default) and 1 to 1024 are accepted. */
Test(api_args, threads_range)
{
    dn_model *m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    const int ok[] = { 0, 1, 1024 };
    for (int i = 0; i < 3; i++) {
        dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
        o.threads = ok[i];
        dn_session *s;
        cr_assert_eq(dn_session_new(m, &o, &s), DN_OK, "threads %d: %s", ok[i],
                     dn_session_errmsg(s));
        cr_assert_eq(dn_session_threads(s), ok[i] ? ok[i] : dn_session_threads(s));
        dn_session_free(s);
    }
    dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
    o.threads = 1025;
    dn_session *s;
    cr_assert_eq(dn_session_new(m, &o, &s), DN_ERR_ARG);
    EXPECT_MSG(dn_session_errmsg(s), "threads = 1025");
    dn_session_free(s);
    dn_model_free(m);
}

/* A batch too large for memory: the message names the buffer and the bytes, not a bare "out of
 * memory". 2^30 images of 28×28 floats and their labels are 3.4 TB, more than any allocator
 * here will give. */
Test(api_args, huge_batch_names_the_buffer)
{
    dn_model *m = dn_test_load_model(DN_TEST_MODELS "/lenet5.json");
    dn_session *s = dn_test_session(m, NULL);
    const int64_t shape[4] = { (int64_t)1 << 30, 1, 28, 28 };
    dn_status st = dn_session_set_input(s, "image", DN_F32, 4, shape, PIXELS);
    dn_test_expect_status(st, DN_ERR_NOMEM, dn_session_errmsg(s));
    EXPECT_MSG(dn_session_errmsg(s), "cannot allocate 3371549327360 bytes",
               "bytes for the graph inputs", "\"image\"", "batch 1073741824");
    dn_session_free(s);
    dn_model_free(m);
}

/* dn_file_write: arguments checked, the message in the caller's buffer; a save replaces the
 * target and reuses (then removes) a temporary file a crashed save left behind. */
TestSuite(api_file, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

Test(api_file, writes_atomically_and_checks_its_arguments)
{
    char msg[256] = "stale message";
    cr_expect_eq(dn_file_write(NULL, "x", 1, msg, sizeof msg), DN_ERR_ARG);
    EXPECT_MSG(msg, "dn_file_write", "path is NULL");
    cr_expect_eq(dn_file_write(dn_test_path("a.csv"), NULL, 3, msg, sizeof msg), DN_ERR_ARG);
    EXPECT_MSG(msg, "dn_file_write", "data is NULL");
    cr_expect_eq(dn_file_write(NULL, NULL, 0, NULL, 0), DN_ERR_ARG, "no buffer is fine");

    dn_test_write_file(dn_test_path(".a.csv.tmp"), "half a fi", 9); /* a crashed save's */
    cr_assert_eq(dn_file_write(dn_test_path("a.csv"), "one,two\n", 8, msg, sizeof msg), DN_OK, "%s",
                 msg);
    size_t size;
    unsigned char *got = dn_test_read_file(dn_test_path("a.csv"), &size);
    cr_expect(size == 8 && memcmp(got, "one,two\n", 8) == 0);
    free(got);
    cr_expect_eq(dn_test_dir_entries(), 1, "only the target is left");

    cr_expect_eq(dn_file_write(dn_test_path("no/such/dir/a.csv"), "x", 1, msg, sizeof msg),
                 DN_ERR_IO);
    EXPECT_MSG(msg, "no/such/dir/a.csv");
}
