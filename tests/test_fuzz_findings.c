/*
 * test_fuzz_findings.c — what the libFuzzer harnesses of tests/fuzz/ found, each kept as a
 * test (docs/reliability.md, "How the readers are fuzzed").
 *
 * train_checkpoint_counters: fuzz_checkpoint found a checkpoint whose optimiser step counter
 * was INT64_MAX; it loaded, and the next dn_trainer_step overflowed the counter (signed
 * overflow, undefined behaviour). The checkpoint's counters (epoch, optimiser step, step,
 * examples seen, correct) must lie in range, else the load fails with a message. The
 * checkpoint is one of the tiny model the harness uses (tests/fuzz/fuzz_tiny_model.h, the same
 * text as tests/fuzz/corpus/model/tiny.json); its "trainer.state" entry is int64 [15], in the
 * order of trainer.c's CK_* fields.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"
#include "io/safetensors.h"

/* The harness's model (tests/fuzz/fuzz_tiny_model.h), as its seed in the model corpus. */
#define TINY_MODEL DAGNET_SOURCE_DIR "/tests/fuzz/corpus/model/tiny.json"

TestSuite(train_checkpoint_counters, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

/* trainer.c's CK_EPOCH, CK_T, CK_STEP, CK_SEEN, CK_CORRECT: indices in "trainer.state". */
enum { EPOCH = 3, OPTIM_STEP = 7, STEP = 11, SEEN = 12, CORRECT = 13 };

typedef struct tiny {
    dn_model *m;
    dn_session *s;
    dn_trainer *t;
    dn_dataset *d;
} tiny;

static tiny tiny_new(void)
{
    tiny x = { 0 };
    dn_session_options so = { .seed = 1, .threads = 1 };
    dn_train_options to = DN_TRAIN_OPTIONS_DEFAULT;
    to.batch = 2;
    float images[16];
    int32_t labels[4] = { 0, 1, 2, 0 };
    for (int i = 0; i < 16; i++)
        images[i] = (float)i / 16.0f;
    x.m = dn_test_load_model(TINY_MODEL);
    x.s = dn_test_session(x.m, &so);
    cr_assert_eq(dn_trainer_new(x.s, &to, NULL, &x.t), DN_OK, "%s", dn_trainer_errmsg(x.t));
    cr_assert_eq(dn_dataset_from_arrays(4, 1, 2, 2, images, labels, 3, &x.d), DN_OK);
    return x;
}

static void tiny_free(tiny *x)
{
    dn_dataset_free(x->d);
    dn_trainer_free(x->t);
    dn_session_free(x->s);
    dn_model_free(x->m);
}

/* A checkpoint after one step, with trainer.state[field] set to value, at path. */
static void write_patched(const char *path, int field, int64_t value)
{
    tiny x = tiny_new();
    cr_assert_eq(dn_trainer_step(x.t, x.d, NULL), DN_OK, "%s", dn_trainer_errmsg(x.t));
    cr_assert_eq(dn_trainer_save_checkpoint(x.t, path), DN_OK, "%s", dn_trainer_errmsg(x.t));
    tiny_free(&x);
    dn_st_file f;
    dn_err err;
    cr_assert_eq(dn_st_read(path, &f, &err), DN_OK, "%s", err.msg);
    const dn_st_entry *e = dn_st_find(&f, "trainer.state");
    cr_assert_not_null(e);
    cr_assert_eq(e->nbytes, 15 * sizeof(int64_t));
    memcpy(f.buf + (e->data - f.buf) + (size_t)field * sizeof value, &value, sizeof value);
    dn_test_write_file(path, f.buf, f.size);
    dn_st_free(&f);
}

static void expect_rejected(int field, int64_t value, const char *what)
{
    const char *path = dn_test_path("patched.ckpt");
    write_patched(path, field, value);
    tiny x = tiny_new();
    dn_status st = dn_trainer_load_checkpoint(x.t, path);
    cr_expect_neq(st, DN_OK, "%s = %lld: the checkpoint loaded", what, (long long)value);
    if (st)
        EXPECT_MSG(dn_trainer_errmsg(x.t), "patched.ckpt", "out of range", what);
    tiny_free(&x);
}

Test(train_checkpoint_counters, optimizer_step_at_int64_max_is_rejected)
{
    expect_rejected(OPTIM_STEP, INT64_MAX, "optimizer step");
}

Test(train_checkpoint_counters, negative_optimizer_step_is_rejected)
{
    expect_rejected(OPTIM_STEP, -5, "optimizer step");
}

Test(train_checkpoint_counters, other_counters_out_of_range_are_rejected)
{
    expect_rejected(EPOCH, (int64_t)INT_MAX, "epoch");
    expect_rejected(STEP, INT64_MAX, "step");
    expect_rejected(SEEN, -1, "seen");
    expect_rejected(CORRECT, INT64_MAX, "correct");
}

/* The input the fuzzer found, kept in its seed corpus. */
Test(train_checkpoint_counters, fuzzer_input_is_rejected)
{
    tiny x = tiny_new();
    dn_status st = dn_trainer_load_checkpoint(
        x.t, DAGNET_SOURCE_DIR "/tests/fuzz/corpus/checkpoint/crash_step_counter_overflow.ckpt");
    cr_expect_neq(st, DN_OK, "the fuzzer's checkpoint loaded");
    if (st)
        EXPECT_MSG(dn_trainer_errmsg(x.t), "out of range");
    tiny_free(&x);
}

/* An ordinary checkpoint still loads and trains on. */
Test(train_checkpoint_counters, real_checkpoint_loads)
{
    const char *path = dn_test_path("real.ckpt");
    tiny a = tiny_new();
    cr_assert_eq(dn_trainer_step(a.t, a.d, NULL), DN_OK);
    cr_assert_eq(dn_trainer_save_checkpoint(a.t, path), DN_OK, "%s", dn_trainer_errmsg(a.t));
    tiny b = tiny_new();
    cr_expect_eq(dn_trainer_load_checkpoint(b.t, path), DN_OK, "%s", dn_trainer_errmsg(b.t));
    cr_expect_eq(dn_trainer_step(b.t, b.d, NULL), DN_OK, "%s", dn_trainer_errmsg(b.t));
    tiny_free(&b);
    tiny_free(&a);
}
