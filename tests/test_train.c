/*
 * test_train.c — training end to end through the public API, on a small synthetic data set
 * written as IDX files: it converges, as evaluation on the test files shows, and it is
 * deterministic (suite train_loop); a checkpoint resumes bit for bit, at an epoch boundary
 * and in the middle of an epoch, with Dropout drawing (train_checkpoint); and the model
 * file's "train" section gives the trainer's defaults (train_section).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"

#define SIDE 12
#define CLASSES 4

/* Class c: a bright 3-pixel-wide bar (horizontal for even c, vertical for odd) at a place
 * that depends on c, on noise. */
static unsigned char pixel(int c, int y, int x, unsigned *rng)
{
    *rng = *rng * 1103515245u + 12345u;
    int noise = (int)((*rng >> 16) % 90);
    int pos = 2 + 3 * (c / 2) + 2 * (c % 2);
    int on = (c % 2 == 0) ? (y >= pos && y < pos + 3) : (x >= pos && x < pos + 3);
    return (unsigned char)(on ? 160 + noise : noise);
}

static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    fwrite(b, 1, 4, f);
}

/* Write n examples as <dir>/<prefix>-images-idx3-ubyte and -labels-idx1-ubyte. */
static void write_idx(const char *dir, const char *prefix, int n, unsigned seed)
{
    char path[512];
    unsigned rng = seed;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *img = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *lab = fopen(path, "wb");
    cr_assert(img && lab);
    put_be32(img, 0x803);
    put_be32(img, (uint32_t)n);
    put_be32(img, SIDE);
    put_be32(img, SIDE);
    put_be32(lab, 0x801);
    put_be32(lab, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        int c = (int)((i * 7 + seed) % CLASSES);
        fputc(c, lab);
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                fputc(pixel(c, y, x, &rng), img);
    }
    fclose(img);
    fclose(lab);
}

/* The data set lives in the test's scratch directory (tests/helpers.h), as do checkpoints. */
static void make_data(void)
{
    dn_test_dir_init();
    write_idx(dn_test_dir, "train", 2000, 1);
    write_idx(dn_test_dir, "t10k", 400, 2);
}

TestSuite(train_loop, .init = make_data, .fini = dn_test_dir_fini);
TestSuite(train_checkpoint, .init = make_data, .fini = dn_test_dir_fini);
TestSuite(train_divergence, .init = make_data, .fini = dn_test_dir_fini);
TestSuite(train_labels, .init = make_data, .fini = dn_test_dir_fini);

static const char *model_json =
    "{\"format\": \"dagnet/1\", \"name\": \"bars\","
    " \"inputs\": {\"image\": {\"shape\": [null, 1, 12, 12]}, \"label\": {\"shape\": [null], "
    "\"dtype\": \"int32\"}},"
    " \"nodes\": ["
    "  {\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": 4, "
    "\"kernel\": 3, \"pad\": 1}},"
    "  {\"name\": \"relu\", \"op\": \"ReLU\", \"inputs\": [\"conv\"]},"
    "  {\"name\": \"pool\", \"op\": \"MaxPool\", \"inputs\": [\"relu\"], \"attrs\": {\"kernel\": "
    "2}},"
    "  {\"name\": \"drop\", \"op\": \"Dropout\", \"inputs\": [\"pool\"], \"attrs\": {\"ratio\": "
    "0.2}},"
    "  {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"drop\"], \"attrs\": {\"units\": 4}},"
    "  {\"name\": \"prob\", \"op\": \"Softmax\", \"inputs\": [\"fc\"]},"
    "  {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}],"
    " \"outputs\": [\"prob\"], \"loss\": \"loss\","
    " \"train\": {\"epochs\": 2, \"batch\": 64, \"optimizer\": \"adam\", \"lr\": 0.01}}";

typedef struct rig {
    dn_model *m;
    dn_session *s;
    dn_trainer *t;
    dn_dataset *train, *test;
} rig;

/* The training-time augmentations a rig turns on. */
typedef struct augment {
    bool mirror;
    int shift;
} augment;

static void rig_open_with(rig *r, dn_optimizer opt, float lr, augment aug)
{
    memset(r, 0, sizeof *r);
    r->m = dn_test_parse_model(model_json, "bars.json");
    dn_session_options so = DN_SESSION_OPTIONS_DEFAULT;
    so.seed = 5;
    so.threads = 2;
    r->s = dn_test_session(r->m, &so);
    dn_train_options o;
    dn_model_train_options(r->m, &o);
    o.optimizer = opt;
    o.seed = 9;
    if (lr > 0)
        o.lr = lr;
    o.mirror = aug.mirror;
    o.shift = aug.shift;
    cr_assert_eq(dn_trainer_new(r->s, &o, NULL, &r->t), DN_OK, "%s", dn_trainer_errmsg(r->t));
    cr_assert_eq(dn_dataset_load_dir(dn_test_dir, true, &r->train), DN_OK, "%s",
                 dn_dataset_errmsg(r->train));
    cr_assert_eq(dn_dataset_load_dir(dn_test_dir, false, &r->test), DN_OK, "%s",
                 dn_dataset_errmsg(r->test));
}

static void rig_open(rig *r, dn_optimizer opt) { rig_open_with(r, opt, 0, (augment){ 0 }); }

static void rig_close(rig *r)
{
    dn_trainer_free(r->t);
    dn_dataset_free(r->train);
    dn_dataset_free(r->test);
    dn_session_free(r->s);
    dn_model_free(r->m);
}

/* Train `steps` mini-batches (or whole epochs when steps < 0: -steps epochs). */
static void train_for(rig *r, int steps)
{
    dn_step_stats st;
    int epochs_left = steps < 0 ? -steps : 0;
    for (int i = 0; steps >= 0 ? i < steps : epochs_left > 0; i++) {
        cr_assert_eq(dn_trainer_step(r->t, r->train, &st), DN_OK, "%s", dn_trainer_errmsg(r->t));
        if (st.epoch_done)
            epochs_left--;
    }
}

Test(train_loop, converges_far_above_chance)
{
    rig r;
    rig_open(&r, DN_ADAM);
    dn_eval_result before, after;
    cr_assert_eq(dn_session_evaluate(r.s, r.test, NULL, 100, &before), DN_OK, "%s",
                 dn_session_errmsg(r.s));
    train_for(&r, -2);
    cr_assert_eq(dn_trainer_epoch(r.t), 2);
    cr_assert_eq(dn_session_evaluate(r.s, r.test, NULL, 100, &after), DN_OK, "%s",
                 dn_session_errmsg(r.s));
    cr_assert_eq(after.count, 400);
    int64_t total = 0;
    for (int i = 0; i < after.classes * after.classes; i++)
        total += after.confusion[i];
    cr_assert_eq(total, 400, "the confusion matrix counts every example once");
    double acc = (double)after.correct / (double)after.count;
    cr_assert_gt(acc, 0.9, "accuracy %.3f after 2 epochs (chance is 0.25; %.3f before)", acc,
                 (double)before.correct / (double)before.count);
    cr_assert_lt(after.loss, before.loss);
    dn_eval_result_free(&before);
    dn_eval_result_free(&after);
    rig_close(&r);
}

Test(train_loop, same_seed_same_weights_bit_for_bit)
{
    rig a, b;
    rig_open(&a, DN_MOMENTUM);
    rig_open(&b, DN_MOMENTUM);
    train_for(&a, -1);
    train_for(&b, -1);
    size_t na, nb;
    float *wa = dn_test_values(a.m, a.s, false, &na), *wb = dn_test_values(b.m, b.s, false, &nb);
    cr_assert_eq(na, nb);
    cr_assert_arr_eq(wa, wb, na * sizeof *wa);
    free(wa);
    free(wb);
    rig_close(&a);
    rig_close(&b);
}

/* Train 2 epochs straight; and `first` steps, checkpoint, a fresh process-like rig, resume,
 * the rest. The weights must be identical byte for byte. */
static void check_resume(int first_steps, dn_optimizer opt, augment aug)
{
    char name[64];
    snprintf(name, sizeof name, "resume-%d.ckpt", first_steps);
    const char *path = dn_test_path(name);
    rig straight, part, resumed;
    rig_open_with(&straight, opt, 0, aug);
    train_for(&straight, -2);

    rig_open_with(&part, opt, 0, aug);
    train_for(&part, first_steps);
    cr_assert_eq(dn_trainer_save_checkpoint(part.t, path), DN_OK, "%s", dn_trainer_errmsg(part.t));
    rig_close(&part);

    rig_open_with(&resumed, opt, 0, aug);
    cr_assert_eq(dn_trainer_load_checkpoint(resumed.t, path), DN_OK, "%s",
                 dn_trainer_errmsg(resumed.t));
    while (dn_trainer_epoch(resumed.t) < 2)
        train_for(&resumed, 1);
    size_t ns, nr;
    float *ws = dn_test_values(straight.m, straight.s, false, &ns),
          *wr = dn_test_values(resumed.m, resumed.s, false, &nr);
    cr_assert_eq(ns, nr);
    cr_assert_arr_eq(ws, wr, ns * sizeof *ws, "resumed after %d steps: weights differ",
                     first_steps);
    free(ws);
    free(wr);
    remove(path);
    rig_close(&straight);
    rig_close(&resumed);
}

Test(train_checkpoint, resume_at_an_epoch_boundary_is_bit_identical)
{
    check_resume(32, DN_ADAM, (augment){ 0 }); /* 2000 / 64 → 32 steps per epoch */
}

Test(train_checkpoint, resume_mid_epoch_is_bit_identical)
{
    check_resume(45, DN_NESTEROV, (augment){ 0 });
}

/* Mirror and shift draws come from the epoch's generator state and the example's position: a
 * resumed run flips and moves the same examples. */
Test(train_checkpoint, resume_mid_epoch_with_mirror_is_bit_identical)
{
    check_resume(45, DN_ADAM, (augment){ .mirror = true });
}

Test(train_checkpoint, resume_mid_epoch_with_mirror_and_shift_is_bit_identical)
{
    check_resume(45, DN_ADAM, (augment){ .mirror = true, .shift = 2 });
}

/* Training with `aug` must see other images than plain training, end at other weights, and
 * still learn the classes (a flip or a shift of 2 px keeps a bar a bar). */
static void check_augmented_training(augment aug, const char *what)
{
    rig plain, augmented;
    rig_open(&plain, DN_ADAM);
    rig_open_with(&augmented, DN_ADAM, 0, aug);
    train_for(&plain, -2);
    train_for(&augmented, -2);
    size_t np, na;
    float *wp = dn_test_values(plain.m, plain.s, false, &np),
          *wa = dn_test_values(augmented.m, augmented.s, false, &na);
    cr_assert_eq(np, na);
    cr_assert(memcmp(wp, wa, np * sizeof *wp) != 0, "%s on and off gave the same weights", what);
    dn_eval_result res;
    cr_assert_eq(dn_session_evaluate(augmented.s, augmented.test, NULL, 100, &res), DN_OK, "%s",
                 dn_session_errmsg(augmented.s));
    double acc = (double)res.correct / (double)res.count;
    cr_assert_gt(acc, 0.9, "accuracy %.3f after 2 epochs with %s", acc, what);
    dn_eval_result_free(&res);
    free(wp);
    free(wa);
    rig_close(&plain);
    rig_close(&augmented);
}

/* The bars of the odd classes are vertical, so a flip moves them. */
Test(train_loop, mirror_changes_what_training_sees_and_still_learns)
{
    check_augmented_training((augment){ .mirror = true }, "mirror");
}

Test(train_loop, shift_changes_what_training_sees_and_still_learns)
{
    check_augmented_training((augment){ .shift = 2 }, "shift 2");
}

/* A shift as large as the image would move every pixel out: refused at the first step, which
 * is where the trainer first sees the images' size. */
Test(train_loop, shift_as_large_as_the_images_is_refused)
{
    rig r;
    rig_open_with(&r, DN_ADAM, 0, (augment){ .shift = 12 });
    dn_step_stats st;
    cr_assert_eq(dn_trainer_step(r.t, r.train, &st), DN_ERR_ARG);
    EXPECT_MSG(dn_trainer_errmsg(r.t), "shift 12: expected less than the training images' height "
                                       "and width (12 × 12)");
    rig_close(&r);
}

Test(train_checkpoint, checkpoint_of_another_optimizer_is_refused)
{
    const char *path = dn_test_path("adam.ckpt");
    rig a, b;
    rig_open(&a, DN_ADAM);
    train_for(&a, 3);
    cr_assert_eq(dn_trainer_save_checkpoint(a.t, path), DN_OK, "%s", dn_trainer_errmsg(a.t));
    rig_open(&b, DN_SGD);
    cr_assert_neq(dn_trainer_load_checkpoint(b.t, path), DN_OK);
    EXPECT_MSG(dn_trainer_errmsg(b.t), "adam", "sgd");
    cr_assert_eq(dn_trainer_load_checkpoint(b.t, "/nonexistent.ckpt"), DN_ERR_IO);
    remove(path);
    rig_close(&a);
    rig_close(&b);
}

/* A one-ReLU model "bad.json" with the given "train" section. */
static dn_status parse_with_train(const char *train, dn_model **m)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"format\": \"dagnet/1\", \"inputs\": {\"x\": {\"shape\": [null, 2]}},"
             " \"nodes\": [{\"name\": \"r\", \"op\": \"ReLU\", \"inputs\": [\"x\"]}],"
             " \"outputs\": [\"r\"], \"train\": %s}",
             train);
    return dn_model_parse(json, strlen(json), "bad.json", m);
}

Test(train_section, gives_the_defaults)
{
    dn_model *m = dn_test_parse_model(model_json, "bars.json");
    dn_train_options o;
    dn_model_train_options(m, &o);
    cr_assert_eq(o.epochs, 2);
    cr_assert_eq(o.batch, 64);
    cr_assert_eq(o.optimizer, DN_ADAM);
    cr_assert_float_eq(o.lr, 0.01f, 1e-9f);
    cr_assert_float_eq(o.momentum, 0.9f, 1e-9f, "unnamed keys keep dagnet's defaults");
    dn_model_free(m);

    cr_assert(!o.mirror && o.shift == 0, "augmentations are off unless the section turns them on");

    cr_assert_eq(parse_with_train("{\"lr\": -1}", &m), DN_ERR_MODEL);
    EXPECT_MSG(dn_model_errmsg(m), "bad.json: (/train/lr): expected a positive number, found -1");
    dn_model_free(m);
    cr_assert_eq(parse_with_train("{\"optimiser\": \"adam\"}", &m), DN_ERR_MODEL);
    EXPECT_MSG(dn_model_errmsg(m), "/train/optimiser");
    dn_model_free(m);
    cr_assert_eq(parse_with_train("{\"mirror\": true}", &m), DN_OK, "%s", dn_model_errmsg(m));
    dn_model_train_options(m, &o);
    cr_assert(o.mirror);
    dn_model_free(m);
    cr_assert_eq(parse_with_train("{\"mirror\": 1}", &m), DN_ERR_MODEL);
    EXPECT_MSG(dn_model_errmsg(m), "bad.json: (/train/mirror): expected true or false, found 1");
    dn_model_free(m);
    cr_assert_eq(parse_with_train("{\"shift\": 2}", &m), DN_OK, "%s", dn_model_errmsg(m));
    dn_model_train_options(m, &o);
    cr_assert_eq(o.shift, 2);
    dn_model_free(m);
    cr_assert_eq(parse_with_train("{\"shift\": 1.5}", &m), DN_ERR_MODEL);
    EXPECT_MSG(dn_model_errmsg(m),
               "bad.json: (/train/shift): expected an integer in [0, 65535] (pixels), found 1.5");
    dn_model_free(m);
}

/* SGD at lr 1e30 sends the weights to ~1e30 at the first step and the loss to infinity
 * or NaN soon after: the step that meets it must stop before its update, say where, and leave
 * the params (and the position in the epoch) as the last good step left them. */
Test(train_divergence, huge_lr_stops_before_the_update_with_finite_params)
{
    rig r;
    rig_open_with(&r, DN_SGD, 1e30f, (augment){ 0 });
    dn_step_stats st = { 0 }, before = { 0 };
    size_t n = 0;
    float *good = NULL;
    dn_status status = DN_OK;
    int steps = 0;
    for (; steps < 60; steps++) {
        free(good);
        good = dn_test_values(r.m, r.s, false, &n);
        before = st;
        if ((status = dn_trainer_step(r.t, r.train, &st)) != DN_OK)
            break;
    }
    dn_test_expect_status(status, DN_ERR_DIVERGED, dn_trainer_errmsg(r.t));
    cr_assert_gt(steps, 0, "the first step, from finite weights, cannot diverge");
    char where[96];
    snprintf(where, sizeof where, "at epoch %d, step %lld of %lld", st.epoch + 1,
             (long long)st.step + 1, (long long)st.steps);
    EXPECT_MSG(dn_trainer_errmsg(r.t), "training diverged", where,
               "the params are those of the last good step");
    cr_assert_str_eq(dn_status_name(DN_ERR_DIVERGED), "training diverged");
    size_t m;
    float *now = dn_test_values(r.m, r.s, false, &m);
    cr_assert_eq(m, n);
    cr_assert_arr_eq(now, good, n * sizeof *now, "the diverging update was applied");
    for (size_t i = 0; i < n; i++)
        cr_assert(isfinite(now[i]), "param element %zu is %g", i, (double)now[i]);
    /* Nothing counted for the failed step, and trying again fails the same way. */
    cr_assert_eq(st.step, before.step);
    cr_assert_eq(st.seen, before.seen);
    cr_assert_eq(dn_trainer_step(r.t, r.train, &st), DN_ERR_DIVERGED);
    EXPECT_MSG(dn_trainer_errmsg(r.t), where);
    free(now);
    free(good);
    rig_close(&r);
}

/* Example `index` of the training labels becomes `label` (byte 8 + index of the IDX file). */
static void patch_label(const char *prefix, long index, int label)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dn_test_dir, prefix);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 8 + index, SEEK_SET), 0);
    fputc(label, f);
    fclose(f);
}

/* A label past the model's 4 classes in the LAST example: the first step refuses the whole
 * data set, naming the file, the example, the label and the range, before any update. */
Test(train_labels, out_of_range_label_is_refused_before_the_first_step)
{
    patch_label("train", 1999, 7);
    rig r;
    rig_open(&r, DN_SGD);
    size_t n, m;
    float *before = dn_test_values(r.m, r.s, false, &n);
    dn_step_stats st;
    dn_test_expect_status(dn_trainer_step(r.t, r.train, &st), DN_ERR_ARG, dn_trainer_errmsg(r.t));
    EXPECT_MSG(dn_trainer_errmsg(r.t), "train-labels-idx1-ubyte", "example 1999", "label 7",
               "[0, 4)");
    float *after = dn_test_values(r.m, r.s, false, &m);
    cr_assert_arr_eq(after, before, n * sizeof *after, "a step ran before the labels were checked");
    free(before);
    free(after);
    rig_close(&r);
}

/* Evaluation with a loss checks the whole test set before the first batch. */
Test(train_labels, evaluation_refuses_an_out_of_range_label_up_front)
{
    patch_label("t10k", 399, 200);
    rig r;
    rig_open(&r, DN_SGD);
    dn_eval_result res;
    dn_test_expect_status(dn_session_evaluate(r.s, r.test, NULL, 100, &res), DN_ERR_ARG,
                          dn_session_errmsg(r.s));
    EXPECT_MSG(dn_session_errmsg(r.s), "t10k-labels-idx1-ubyte", "example 399", "label 200",
               "[0, 4)");
    rig_close(&r);
}
