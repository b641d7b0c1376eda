/*
 * test_oom.c — every allocation failure returns a status: the Nth allocation fails, for every
 * N, as SQLite's malloc tests do.
 *
 * Each scenario is a call sequence on a tiny model (image [n, 1, 8, 8] → Conv 3×3, 2 filters →
 * ReLU → MaxPool 2 → Flatten → Affine 10 → softmax cross-entropy): parsing the model, making a
 * session and running forward and backward, training steps on a data set made from arrays,
 * saving and loading weights, saving and loading a checkpoint; and loading a gzipped IDX data
 * set (zlib's allocations). A scenario runs once without
 * faults (its reference results: losses, gradients, params), once counting the allocations it
 * makes, then once for each N with the Nth allocation failing (only that one). Each run must
 * either stop at a call that returns a non-OK status with a non-empty message, or succeed
 * with exactly the reference results (a failure swallowed, e.g. all-zero gradients after a
 * failed calloc, shows as a difference). After every run every block allocated during it
 * must have been freed (no leak), and nothing may crash.
 *
 * How: like test_alloc.c this file replaces malloc, calloc, realloc, free and the aligned
 * allocators for the whole process and forwards to glibc's (__libc_malloc, ...). While a run
 * is armed, it counts the allocations of the test's thread, makes the Nth return NULL and
 * keeps every live block in a table, removed when freed. Allocations made from inside
 * libgomp and BLIS are never failed (libgomp's gomp_malloc exits on failure, BLIS's
 * bli_fmalloc_align aborts), nor those of Criterion and the dynamic loader (ld.so): the
 * test finds those libraries' address ranges with dl_iterate_phdr and looks at each
 * allocation's return address. The sessions use one kernel thread, so after the warm-up run
 * BLIS and libgomp allocate only a few blocks (the log counts them). cJSON's, zlib's and
 * glibc's own (fopen, strdup) do fail: those libraries return NULL.
 *
 * Not built with sanitizers (CMakeLists.txt): ASan and TSan replace malloc themselves.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"

/* ------------------------------------------------------------------ the failing allocator */

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);
extern void __libc_free(void *p);
void *memalign(size_t alignment, size_t size);
void *valloc(size_t size);
void *pvalloc(size_t size);

#define LIVE_SLOTS (1 << 16) /* open addressing; a scenario keeps far fewer blocks alive */
#define MAX_SKIP 8

static _Thread_local bool on_test_thread;
static atomic_bool armed;
static long allocations; /* eligible allocations of this run so far */
static long fail_at;     /* fail the allocation with this number (1-based); 0: none */
static bool persistent;  /* fail every allocation from fail_at on, not only that one */
static long skipped;     /* allocations from libgomp or BLIS, never failed */
static bool fired;       /* the failure was injected in this run */
static void *live[LIVE_SLOTS];
static long n_live;
static atomic_flag lock = ATOMIC_FLAG_INIT;
/* Address ranges of libraries whose allocations are never failed (see the header). */
static uintptr_t skip_lo[MAX_SKIP], skip_hi[MAX_SKIP];
static int n_skip;

static void take(void)
{
    while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire))
        ;
}
static void give(void) { atomic_flag_clear_explicit(&lock, memory_order_release); }

static size_t slot_of(void *p) { return ((uintptr_t)p >> 4) * 2654435761u % LIVE_SLOTS; }

static void live_add(void *p)
{
    size_t i = slot_of(p);
    while (live[i])
        i = (i + 1) % LIVE_SLOTS;
    live[i] = p;
    n_live++;
}

/* Remove p if it is in the table (linear probing: re-insert the cluster after it). */
static void live_remove(void *p)
{
    size_t i = slot_of(p);
    while (live[i] && live[i] != p)
        i = (i + 1) % LIVE_SLOTS;
    if (!live[i])
        return;
    live[i] = NULL;
    n_live--;
    for (size_t j = (i + 1) % LIVE_SLOTS; live[j]; j = (j + 1) % LIVE_SLOTS) {
        void *q = live[j];
        live[j] = NULL;
        n_live--;
        live_add(q);
    }
}

static bool tracked(void)
{
    return on_test_thread && atomic_load_explicit(&armed, memory_order_relaxed);
}

/* Should this allocation, made from `caller`, fail? Counts it when eligible. */
static bool should_fail(void *caller)
{
    if (!tracked())
        return false;
    for (int k = 0; k < n_skip; k++)
        if ((uintptr_t)caller >= skip_lo[k] && (uintptr_t)caller < skip_hi[k]) {
            skipped++;
            return false;
        }
    ++allocations;
    if (!fail_at || allocations < fail_at || (allocations > fail_at && !persistent))
        return false;
    fired = true;
    return true;
}

static void *note(void *p)
{
    if (p && tracked()) {
        take();
        live_add(p);
        give();
    }
    return p;
}

static void forget(void *p)
{
    if (p && tracked()) {
        take();
        live_remove(p);
        give();
    }
}

#define CALLER __builtin_return_address(0)

void *malloc(size_t size) { return should_fail(CALLER) ? NULL : note(__libc_malloc(size)); }

void *calloc(size_t n, size_t size)
{
    return should_fail(CALLER) ? NULL : note(__libc_calloc(n, size));
}

void *realloc(void *p, size_t size)
{
    if (should_fail(CALLER))
        return NULL; /* p stays valid, as when realloc really fails */
    void *q = __libc_realloc(p, size);
    if (q || size == 0)
        forget(p);
    return note(q);
}

void free(void *p)
{
    forget(p);
    __libc_free(p);
}

void *memalign(size_t alignment, size_t size)
{
    return should_fail(CALLER) ? NULL : note(__libc_memalign(alignment, size));
}

void *aligned_alloc(size_t alignment, size_t size)
{
    return should_fail(CALLER) ? NULL : note(__libc_memalign(alignment, size));
}

void *valloc(size_t size) { return should_fail(CALLER) ? NULL : note(__libc_valloc(size)); }

void *pvalloc(size_t size) { return should_fail(CALLER) ? NULL : note(__libc_pvalloc(size)); }

int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment == 0 || alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    if (should_fail(CALLER))
        return ENOMEM;
    void *p = note(__libc_memalign(alignment, size));
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static int find_skipped(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    static const char *const names[] = { "libblis", "libgomp", "libcriterion", "ld-linux" };
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        if (!info->dlpi_name || !strstr(info->dlpi_name, names[k]) || n_skip == MAX_SKIP)
            continue;
        uintptr_t lo = UINTPTR_MAX, hi = 0;
        for (int h = 0; h < info->dlpi_phnum; h++) {
            const ElfW(Phdr) *ph = &info->dlpi_phdr[h];
            if (ph->p_type != PT_LOAD)
                continue;
            uintptr_t a = info->dlpi_addr + ph->p_vaddr;
            lo = a < lo ? a : lo;
            hi = a + ph->p_memsz > hi ? a + ph->p_memsz : hi;
        }
        skip_lo[n_skip] = lo;
        skip_hi[n_skip++] = hi;
    }
    return 0;
}

/* Arm for one run failing allocation number n (0: none), and all after it if `all`. */
static void arm(long n, bool all)
{
    if (!n_skip)
        dl_iterate_phdr(find_skipped, NULL);
    on_test_thread = true;
    allocations = 0;
    fail_at = n;
    persistent = all;
    fired = false;
    skipped = 0;
    atomic_store(&armed, true);
}

static void disarm(void) { atomic_store(&armed, false); }

/* ------------------------------------------------------------------ the tiny model */

#define SIDE 8
#define EXAMPLES 6
#define BATCH 4
#define MAX_OUT 4096

static const char tiny_model[] =
    "{\"format\": \"dagnet/1\", \"name\": \"tiny\","
    " \"inputs\": {\"image\": {\"shape\": [null, 1, 8, 8]},"
    "              \"label\": {\"shape\": [null], \"dtype\": \"int32\"}},"
    " \"nodes\": ["
    "  {\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": 2, "
    "\"kernel\": 3}},"
    "  {\"name\": \"relu\", \"op\": \"ReLU\", \"inputs\": [\"conv\"]},"
    "  {\"name\": \"pool\", \"op\": \"MaxPool\", \"inputs\": [\"relu\"], \"attrs\": {\"kernel\": "
    "2, "
    "\"stride\": 2}},"
    "  {\"name\": \"flat\", \"op\": \"Flatten\", \"inputs\": [\"pool\"]},"
    "  {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"flat\"], \"attrs\": {\"units\": 10}},"
    "  {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}],"
    " \"outputs\": [\"fc\"], \"loss\": \"loss\"}";

static float images[EXAMPLES * SIDE * SIDE];
static int32_t labels[EXAMPLES];

/* What a run produced: the floats it compares, and how it ended. */
typedef struct outcome {
    bool failed; /* a call returned non-OK */
    dn_status status;
    char msg[DN_MAX_RANK * 64];
    const char *call; /* the call that failed */
    float out[MAX_OUT];
    int n_out;
} outcome;

/* Append n floats (or stop at MAX_OUT: the reference and the run are cut alike). */
static void keep(outcome *o, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n && o->n_out < MAX_OUT; i++)
        o->out[o->n_out++] = x[i];
}

/* A call that may fail: on failure record it and leave the scenario (its cleanup runs). */
#define CALL(o, expr, errmsg)                                   \
    do {                                                        \
        dn_status st_ = (expr);                                 \
        if (st_ != DN_OK) {                                     \
            (o)->failed = true;                                 \
            (o)->status = st_;                                  \
            snprintf((o)->msg, sizeof(o)->msg, "%s", (errmsg)); \
            (o)->call = #expr;                                  \
            goto done;                                          \
        }                                                       \
    } while (0)

static int64_t numel(const dn_view *v)
{
    int64_t n = 1;
    for (int d = 0; d < v->rank; d++)
        n *= v->shape[d];
    return n;
}

/* Every param (or its gradient) of s into o. */
static dn_status keep_params(outcome *o, dn_session *s, const dn_model *m, bool grads)
{
    for (int i = 0; i < dn_model_param_count(m); i++) {
        dn_tensor_info info;
        dn_view v;
        dn_status st = dn_model_param_info(m, i, &info);
        if (!st)
            st = grads ? dn_session_param_grad(s, info.name, &v)
                       : dn_session_param(s, info.name, &v);
        if (st)
            return st;
        keep(o, v.data, numel(&v));
    }
    return DN_OK;
}

static const dn_session_options one_thread = { .seed = 1, .threads = 1 };

/* ------------------------------------------------------------------ scenarios */

static void parse_model(outcome *o)
{
    dn_model *m = NULL;
    CALL(o, dn_model_parse(tiny_model, strlen(tiny_model), "tiny.json", &m), dn_model_errmsg(m));
    float counts[3] = { (float)dn_model_node_count(m), (float)dn_model_param_count(m),
                        (float)dn_model_input_count(m) };
    keep(o, counts, 3);
done:
    dn_model_free(m);
}

static void forward_backward(outcome *o)
{
    dn_model *m = NULL;
    dn_session *s = NULL;
    int64_t ishape[4] = { BATCH, 1, SIDE, SIDE }, lshape[1] = { BATCH };
    dn_view v;
    CALL(o, dn_model_parse(tiny_model, strlen(tiny_model), "tiny.json", &m), dn_model_errmsg(m));
    CALL(o, dn_session_new(m, &one_thread, &s), dn_session_errmsg(s));
    CALL(o, dn_session_set_input(s, "image", DN_F32, 4, ishape, images), dn_session_errmsg(s));
    CALL(o, dn_session_set_input(s, "label", DN_I32, 1, lshape, labels), dn_session_errmsg(s));
    CALL(o, dn_session_forward(s, DN_TRAIN, NULL, 0), dn_session_errmsg(s));
    CALL(o, dn_session_backward(s), dn_session_errmsg(s));
    CALL(o, dn_session_tensor(s, "loss", &v), dn_session_errmsg(s));
    keep(o, v.data, 1);
    CALL(o, keep_params(o, s, m, true), dn_session_errmsg(s));
    CALL(o, dn_session_forward(s, DN_INFER, NULL, 0), dn_session_errmsg(s));
    CALL(o, dn_session_tensor(s, "fc", &v), dn_session_errmsg(s));
    keep(o, v.data, numel(&v));
done:
    dn_session_free(s);
    dn_model_free(m);
}

static void training(outcome *o)
{
    dn_model *m = NULL;
    dn_session *s = NULL;
    dn_dataset *d = NULL;
    dn_trainer *t = NULL;
    dn_train_options to = DN_TRAIN_OPTIONS_DEFAULT;
    to.batch = BATCH;
    CALL(o, dn_model_parse(tiny_model, strlen(tiny_model), "tiny.json", &m), dn_model_errmsg(m));
    CALL(o, dn_session_new(m, &one_thread, &s), dn_session_errmsg(s));
    CALL(o, dn_dataset_from_arrays(EXAMPLES, 1, SIDE, SIDE, images, labels, 10, &d),
         dn_dataset_errmsg(d));
    CALL(o, dn_trainer_new(s, &to, NULL, &t), dn_trainer_errmsg(t));
    for (int k = 0; k < 3; k++) { /* a full batch, a partial one, a new epoch */
        dn_step_stats stats;
        CALL(o, dn_trainer_step(t, d, &stats), dn_trainer_errmsg(t));
        float loss = (float)stats.loss_sum;
        keep(o, &loss, 1);
    }
    CALL(o, keep_params(o, s, m, false), dn_session_errmsg(s));
done:
    dn_trainer_free(t);
    dn_dataset_free(d);
    dn_session_free(s);
    dn_model_free(m);
}

static void weights(outcome *o)
{
    dn_model *m = NULL;
    dn_session *a = NULL, *b = NULL;
    dn_session_options other = one_thread;
    other.seed = 2;
    const char *path = dn_test_path("w.safetensors");
    CALL(o, dn_model_parse(tiny_model, strlen(tiny_model), "tiny.json", &m), dn_model_errmsg(m));
    CALL(o, dn_session_new(m, &one_thread, &a), dn_session_errmsg(a));
    CALL(o, dn_session_new(m, &other, &b), dn_session_errmsg(b));
    CALL(o, dn_session_save_weights(a, path), dn_session_errmsg(a));
    CALL(o, dn_session_load_weights(b, path), dn_session_errmsg(b));
    CALL(o, keep_params(o, b, m, false), dn_session_errmsg(b));
done:
    dn_session_free(b);
    dn_session_free(a);
    dn_model_free(m);
}

static void checkpoint(outcome *o)
{
    dn_model *m = NULL;
    dn_session *a = NULL, *b = NULL;
    dn_dataset *d = NULL;
    dn_trainer *ta = NULL, *tb = NULL;
    dn_train_options to = DN_TRAIN_OPTIONS_DEFAULT;
    to.batch = BATCH;
    const char *path = dn_test_path("c.ckpt");
    CALL(o, dn_model_parse(tiny_model, strlen(tiny_model), "tiny.json", &m), dn_model_errmsg(m));
    CALL(o, dn_session_new(m, &one_thread, &a), dn_session_errmsg(a));
    CALL(o, dn_session_new(m, &one_thread, &b), dn_session_errmsg(b));
    CALL(o, dn_dataset_from_arrays(EXAMPLES, 1, SIDE, SIDE, images, labels, 10, &d),
         dn_dataset_errmsg(d));
    CALL(o, dn_trainer_new(a, &to, NULL, &ta), dn_trainer_errmsg(ta));
    CALL(o, dn_trainer_new(b, &to, NULL, &tb), dn_trainer_errmsg(tb));
    CALL(o, dn_trainer_step(ta, d, NULL), dn_trainer_errmsg(ta));
    CALL(o, dn_trainer_save_checkpoint(ta, path), dn_trainer_errmsg(ta));
    CALL(o, dn_trainer_load_checkpoint(tb, path), dn_trainer_errmsg(tb));
    CALL(o, dn_trainer_step(tb, d, NULL), dn_trainer_errmsg(tb)); /* resumes as ta would */
    CALL(o, keep_params(o, b, m, false), dn_session_errmsg(b));
done:
    dn_trainer_free(tb);
    dn_trainer_free(ta);
    dn_dataset_free(d);
    dn_session_free(b);
    dn_session_free(a);
    dn_model_free(m);
}

/* The gzipped IDX seeds of the IDX fuzzer (3 images 4×4, labels 0 1 2 in two gzip members):
 * zlib's allocations fail too. */
static void gz_dataset(outcome *o)
{
    dn_dataset *d = NULL;
    dn_view v;
    CALL(o,
         dn_dataset_load_idx(DAGNET_SOURCE_DIR "/tests/fuzz/corpus/idx/images_3x4x4.idx.gz",
                             DAGNET_SOURCE_DIR "/tests/fuzz/corpus/idx/labels_3_two_members.idx.gz",
                             &d),
         dn_dataset_errmsg(d));
    CALL(o, dn_dataset_images(d, &v), dn_dataset_errmsg(d));
    keep(o, v.data, numel(&v));
    CALL(o, dn_dataset_labels(d, &v), dn_dataset_errmsg(d));
    for (int64_t i = 0; i < numel(&v); i++) {
        float label = (float)((const int32_t *)v.data)[i];
        keep(o, &label, 1);
    }
done:
    dn_dataset_free(d);
}

/* ------------------------------------------------------------------ the countdown */

static outcome run_once(void (*scenario)(outcome *), long n, bool all, long *count, long *leaked)
{
    static outcome o;
    memset(&o, 0, sizeof o);
    arm(n, all);
    scenario(&o);
    disarm();
    *count = allocations;
    take();
    *leaked = n_live;
    memset(live, 0, sizeof live);
    n_live = 0;
    give();
    return o;
}

static void countdown(void (*scenario)(outcome *), const char *what)
{
    for (int i = 0; i < EXAMPLES * SIDE * SIDE; i++)
        images[i] = (float)((i * 37) % 101) / 101.0f;
    for (int i = 0; i < EXAMPLES; i++)
        labels[i] = i % 10;
    long total, leaked;
    outcome o = run_once(scenario, 0, false, &total, &leaked); /* warm-up: BLIS and libc set up */
    cr_assert(!o.failed, "%s without faults: %s failed: %s", what, o.call, o.msg);
    static outcome reference;
    reference = run_once(scenario, 0, false, &total, &leaked);
    cr_assert(!reference.failed, "%s without faults: %s failed: %s", what, reference.call,
              reference.msg);
    cr_assert_eq(leaked, 0, "%s without faults: %ld blocks not freed", what, leaked);
    cr_assert_gt(total, 0);
    long in_libraries = skipped, failures = 0;
    /* SQLite's two modes: only the Nth allocation fails (the code goes on past a failure
     * that was handled), then the Nth and every later one (memory stays short). */
    for (long n = 1; n <= 2 * total; n++) {
        long count, at = n <= total ? n : n - total;
        bool all = n > total;
        const char *mode = all ? " (and every later one)" : "";
        o = run_once(scenario, at, all, &count, &leaked);
        cr_assert(fired, "%s: allocation %ld of %ld was not reached", what, at, total);
        if (o.failed) {
            failures++;
            cr_expect(o.msg[0] != '\0',
                      "%s, allocation %ld%s failed: %s returned %s without a "
                      "message",
                      what, at, mode, o.call, dn_status_name(o.status));
        } else {
            cr_expect(o.n_out == reference.n_out &&
                          memcmp(o.out, reference.out, sizeof(float) * (size_t)o.n_out) == 0,
                      "%s, allocation %ld%s failed: every call succeeded but the results differ "
                      "from a run without faults",
                      what, at, mode);
        }
        cr_expect_eq(leaked, 0, "%s, allocation %ld%s failed (%s): %ld blocks not freed", what, at,
                     mode, o.failed ? o.call : "no call failed", leaked);
    }
    cr_log_info("%s: %ld allocations (and %ld in BLIS, libgomp or ld.so, not failed); in %ld runs "
                "failing one or all from the Nth on, %ld stopped with a status and a message, "
                "%ld succeeded with the reference results",
                what, total, in_libraries, 2 * total, failures, 2 * total - failures);
}

TestSuite(oom_model, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(oom_session, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(oom_train, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(oom_weights, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(oom_checkpoint, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(oom_data, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

Test(oom_model, parse) { countdown(parse_model, "dn_model_parse"); }
Test(oom_session, forward_backward) { countdown(forward_backward, "forward and backward"); }
Test(oom_train, steps) { countdown(training, "training steps"); }
Test(oom_weights, save_load) { countdown(weights, "weights save and load"); }
Test(oom_checkpoint, save_load) { countdown(checkpoint, "checkpoint save and load"); }
Test(oom_data, gzip_idx) { countdown(gz_dataset, "gzipped IDX data set"); }
