/*
 * test_alloc.c — after warm-up, training steps and inference forwards make no heap allocation
 * at all, inside libgomp and BLIS included.
 *
 * Why it matters: an allocation per step costs time, fragments memory over a long run and
 * can fail in the middle of training. dagnet plans every buffer when it first meets a batch
 * size, so from then on a step only computes.
 *
 * How: this file defines malloc, calloc, realloc and the aligned allocators, which replace
 * glibc's for the whole process (shared libraries included) and forward to glibc's own entry
 * points (__libc_malloc, ...), counting the calls made while `counting` is set. free is not
 * replaced: every block still comes from glibc's allocator. Criterion runs each test in a
 * forked worker and the count covers only the steps between start_counting and
 * stop_counting. The first few counted calls keep their call stack, printed on failure;
 * offsets into dagnet_tests resolve with `addr2line -f -e dagnet_tests OFFSET`, or break on
 * note_allocation in gdb.
 *
 * Not built with sanitizers (CMakeLists.txt): ASan replaces malloc itself.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dagnet.h"
#include "helpers.h"

#define SIDE 28
#define CLASSES 10
#define EXAMPLES 250 /* batches of 100, 100 and 50: epochs wrap with a partial batch */
#define BATCH 100
#define MAX_STACKS 4
#define STACK_DEPTH 24

/* ------------------------------------------------------------------ the counting allocator */

/* glibc's own allocator, under the names it exports for exactly this purpose. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

/* Not declared by <stdlib.h> under _POSIX_C_SOURCE, but libraries may call them. */
void *memalign(size_t alignment, size_t size);
void *valloc(size_t size);
void *pvalloc(size_t size);

static atomic_bool counting;
static atomic_long allocations;
static void *stacks[MAX_STACKS][STACK_DEPTH];
static int depths[MAX_STACKS];
static _Thread_local bool in_hook; /* backtrace() must not count (or recurse) itself */

/* Every allocator entry point calls this: count, and keep the first few call stacks. */
static void note_allocation(void)
{
    if (!atomic_load_explicit(&counting, memory_order_relaxed) || in_hook)
        return;
    long k = atomic_fetch_add(&allocations, 1);
    if (k < MAX_STACKS) {
        in_hook = true;
        depths[k] = backtrace(stacks[k], STACK_DEPTH);
        in_hook = false;
    }
}

void *malloc(size_t size)
{
    note_allocation();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    note_allocation();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    note_allocation();
    return __libc_realloc(p, size);
}

void *memalign(size_t alignment, size_t size)
{
    note_allocation();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    note_allocation();
    return __libc_memalign(alignment, size);
}

void *valloc(size_t size)
{
    note_allocation();
    return __libc_valloc(size);
}

void *pvalloc(size_t size)
{
    note_allocation();
    return __libc_pvalloc(size);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
    note_allocation();
    if (alignment == 0 || alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static void start_counting(void)
{
    void *frame[1];
    backtrace(frame, 1); /* loads libgcc's unwinder now, not inside a counted call */
    atomic_store(&allocations, 0);
    atomic_store(&counting, true);
}

static long stop_counting(void)
{
    atomic_store(&counting, false);
    return atomic_load(&allocations);
}

/* Fails with the count, after printing where the first allocations were made. */
static void expect_none(long count, const char *what)
{
    for (long i = 0; i < count && i < MAX_STACKS; i++) {
        fprintf(stderr, "%s: allocation %ld of %ld:\n", what, i + 1, count);
        backtrace_symbols_fd(stacks[i], depths[i], STDERR_FILENO);
    }
    cr_expect_eq(count, 0, "%s: %ld heap allocations after warm-up (call stacks on stderr)", what,
                 count);
}

/* ------------------------------------------------------------------ fixtures */

/* Conv → ReLU → Dropout → Flatten → Affine: Dropout draws a fresh mask every step. */
static const char dropout_model[] =
    "{\"format\": \"dagnet/1\", \"name\": \"dropout_net\","
    " \"inputs\": {\"image\": {\"shape\": [null, 1, 28, 28]},"
    "              \"label\": {\"shape\": [null], \"dtype\": \"int32\"}},"
    " \"nodes\": ["
    "  {\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": 4, "
    "\"kernel\": 5}},"
    "  {\"name\": \"relu\", \"op\": \"ReLU\", \"inputs\": [\"conv\"]},"
    "  {\"name\": \"drop\", \"op\": \"Dropout\", \"inputs\": [\"relu\"], \"attrs\": {\"ratio\": "
    "0.5}},"
    "  {\"name\": \"flat\", \"op\": \"Flatten\", \"inputs\": [\"drop\"]},"
    "  {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"flat\"], \"attrs\": {\"units\": 10}},"
    "  {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}],"
    " \"outputs\": [\"fc\"], \"loss\": \"loss\"}";

static dn_model *lenet5(void) { return dn_test_load_model(DN_TEST_MODELS "/lenet5.json"); }

/* Two threads, so that OpenMP teams and BLIS's threaded products are exercised. */
static dn_session *new_session(const dn_model *m)
{
    dn_session_options o = { .seed = 1, .threads = 2 };
    return dn_test_session(m, &o);
}

/* EXAMPLES images U(0,1) of 1×SIDE×SIDE, labels cycling through the classes. */
static dn_dataset *synthetic_data(void)
{
    float *images = dn_test_uniform(EXAMPLES * SIDE * SIDE, 1, 0.0f, 1.0f);
    int32_t *labels = malloc(sizeof(int32_t) * EXAMPLES);
    cr_assert_not_null(labels);
    for (int i = 0; i < EXAMPLES; i++)
        labels[i] = i % CLASSES;
    dn_dataset *d = NULL;
    dn_status st = dn_dataset_from_arrays(EXAMPLES, 1, SIDE, SIDE, images, labels, CLASSES, &d);
    free(images);
    free(labels);
    cr_assert_eq(st, DN_OK, "%s", dn_dataset_errmsg(d));
    return d;
}

/* Steps until `epochs` more epochs are done; the first failure's status. No assertion
 * inside: only the steps themselves run while counting. */
static dn_status train_epochs(dn_trainer *t, const dn_dataset *d, int epochs)
{
    int target = dn_trainer_epoch(t) + epochs;
    dn_status st = DN_OK;
    while (!st && dn_trainer_epoch(t) < target)
        st = dn_trainer_step(t, d, NULL);
    return st;
}

/* Two warm-up epochs (both batch sizes, 100 and 50, planned), then two counted ones. */
static void check_training(const dn_model *m, const char *what)
{
    dn_session *s = new_session(m);
    dn_dataset *d = synthetic_data();
    dn_train_options o = DN_TRAIN_OPTIONS_DEFAULT;
    o.batch = BATCH;
    dn_trainer *t = NULL;
    cr_assert_eq(dn_trainer_new(s, &o, NULL, &t), DN_OK, "%s", dn_trainer_errmsg(t));
    cr_assert_eq(train_epochs(t, d, 2), DN_OK, "%s", dn_trainer_errmsg(t));
    start_counting();
    dn_status st = train_epochs(t, d, 2);
    long count = stop_counting();
    cr_assert_eq(st, DN_OK, "%s", dn_trainer_errmsg(t));
    expect_none(count, what);
    dn_trainer_free(t);
    dn_dataset_free(d);
    dn_session_free(s);
}

/* ------------------------------------------------------------------ tests */

Test(graph_alloc, training_step_allocates_nothing)
{
    dn_model *m = lenet5();
    check_training(m, "lenet5 training");
    dn_model_free(m);
}

Test(graph_alloc, dropout_training_step_allocates_nothing)
{
    dn_model *m = dn_test_parse_model(dropout_model, "dropout_net.json");
    check_training(m, "Dropout model training");
    dn_model_free(m);
}

/* Set the images to the first n examples and run the outputs. */
static dn_status infer_at(dn_session *s, int64_t n, const float *images)
{
    int64_t shape[4] = { n, 1, SIDE, SIDE };
    dn_status st = dn_session_set_input(s, "image", DN_F32, 4, shape, images);
    return st ? st : dn_session_forward(s, DN_INFER, NULL, 0);
}

/* Batch 100, then 1, then 100 again: a batch size met before must not re-plan. */
static dn_status infer_sizes(dn_session *s, const float *images)
{
    dn_status st = infer_at(s, BATCH, images);
    if (!st)
        st = infer_at(s, 1, images);
    return st ? st : infer_at(s, BATCH, images);
}

Test(graph_alloc, inference_forward_allocates_nothing)
{
    dn_model *m = lenet5();
    dn_session *s = new_session(m);
    dn_dataset *d = synthetic_data();
    dn_view images;
    cr_assert_eq(dn_dataset_images(d, &images), DN_OK);
    cr_assert_eq(infer_sizes(s, images.data), DN_OK, "%s", dn_session_errmsg(s));
    start_counting();
    dn_status st = infer_sizes(s, images.data);
    long count = stop_counting();
    cr_assert_eq(st, DN_OK, "%s", dn_session_errmsg(s));
    expect_none(count, "lenet5 inference");
    dn_dataset_free(d);
    dn_session_free(s);
    dn_model_free(m);
}
