/*
 * helpers.h — what the test files share: a scratch directory, seeded random arrays, checks on
 * error messages, and a harness that runs one op's kernels as the engine does, with every
 * buffer the kernel must write pre-filled with NaN.
 *
 * Suites are named <module>_<aspect> (io_npy, graph_plan, optim_schedule) and an op's suites
 * <op>_<aspect> (lrn_fast, conv_grad), so that `dagnet_tests --filter 'lrn*'` runs one op's
 * tests and `--filter 'io_*'` a module's; ctest runs each suite as a test of its own
 * (CMakeLists.txt).
 */
#ifndef DN_TEST_HELPERS_H
#define DN_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dagnet.h"
#include "ops/op.h"
#include "runtime/rng.h"

/* ---------------------------------------------------------------- shapes */

/* DIMS(2, 3, 7, 7) expands to the two arguments `rank, dims`. */
#define DIMS(...) \
    (int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), (int64_t[]) { __VA_ARGS__ }

/* How many dims a literal list such as `2, 3, 4` has. */
#define NDIMS(...) ((int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)))

/* ---------------------------------------------------------------- scratch directory */

/* The test's scratch directory, made before each test (a suite's .init) and removed with
 * everything in it after (.fini):
 *     TestSuite(io_npy, .init = dn_test_dir_init, .fini = dn_test_dir_fini);        */
extern char dn_test_dir[256];

/* mkdtemp /tmp/dn_test_<suite>_XXXXXX into dn_test_dir (fails the test if it cannot). */
void dn_test_dir_init(void);
/* Remove every file in dn_test_dir, then the directory. */
void dn_test_dir_fini(void);
/* dn_test_dir/name, in one of four static buffers used in turn: four paths can be alive at
 * once. */
const char *dn_test_path(const char *name);
/* Entries of dn_test_dir other than . and .., to spot files left behind. */
int dn_test_dir_entries(void);

/* Write n bytes to path, replacing it; fails the test if it cannot. */
void dn_test_write_file(const char *path, const void *data, size_t n);
/* The whole file, malloc'ed (caller frees), its size in *size; fails the test if it cannot. */
unsigned char *dn_test_read_file(const char *path, size_t *size);

/* ---------------------------------------------------------------- random arrays */

/* n values U(lo, hi) drawn from rng: lo + (hi − lo)·u with u = dn_rng_uniform. */
void dn_test_fill_uniform(float *x, int64_t n, dn_rng *rng, float lo, float hi);
/* The same from a fresh generator seeded with seed, malloc'ed (caller frees; n may be 0). */
float *dn_test_uniform(int64_t n, uint64_t seed, float lo, float hi);
/* A malloc'ed copy of n floats. */
float *dn_test_copy(const float *x, int64_t n);

/* Bit-for-bit equality of n 32-bit elements (NaNs of the same payload compare equal). */
void dn_test_expect_same_bits(const void *a, const void *b, int64_t n, const char *what);
/* |got − want| ≤ tol·(1 + |want|) element by element; what names the comparison (or NULL). */
void dn_test_expect_close(const float *got, const float *want, int64_t n, float tol,
                          const char *what);

/* ---------------------------------------------------------------- messages */

/* A NULL-terminated list of strings: FRAGS("node \"conv\"", "[N,1,8,8]"). */
#define FRAGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* msg holds every fragment; when source is not NULL it opens with "<source>: " (the file or
 * buffer the message is about). A failure shows the missing part and the whole message. */
void dn_test_expect_msg(const char *msg, const char *source, const char *const *fragments);
#define EXPECT_MSG(msg, ...) dn_test_expect_msg((msg), NULL, FRAGS(__VA_ARGS__))
#define EXPECT_MSG_FROM(msg, source, ...) dn_test_expect_msg((msg), (source), FRAGS(__VA_ARGS__))

/* A call returned `got` where `want` was expected: both statuses by name, and msg. */
void dn_test_expect_status(dn_status got, dn_status want, const char *msg);

/* ---------------------------------------------------------------- models and sessions */

/* The example models' folder: DN_TEST_MODELS "/lenet5.json". */
#define DN_TEST_MODELS DAGNET_SOURCE_DIR "/examples/models"

/* The model in json (named file in messages), or the model file at path; must load. */
dn_model *dn_test_parse_model(const char *json, const char *file);
dn_model *dn_test_load_model(const char *path);
/* A session on m with options o (NULL: the defaults); must open. */
dn_session *dn_test_session(const dn_model *m, const dn_session_options *o);
/* The number of elements a view holds. */
int64_t dn_test_view_numel(const dn_view *v);
/* Every param of m in s, then (with_state) every state tensor, concatenated; the count in
 * *count. The caller frees. */
float *dn_test_values(const dn_model *m, dn_session *s, bool with_state, size_t *count);

/* ---------------------------------------------------------------- running one op */

#define DN_TEST_MAX_INPUTS 8

/* One node run as the engine runs it: attrs parsed and the output inferred (both must pass),
 * the node "n" of "run.json" with inputs "x0", "x1", ... The inputs stay the caller's. Every
 * buffer a kernel writes starts as garbage that shows: y is NaN, the workspace and the saved
 * state are 0xff bytes (NaN too). dy is U(−2, 2) (seed 99), and each float input's dx starts
 * at U(−2, 2) (seeds 50, 51, ...): backward accumulates into it. Integer inputs get no dx.
 * The kernels' seed (Dropout's mask) is 1234 unless the caller changes r.seed. */
typedef struct dn_test_run {
    const dn_op *op;
    void *attrs;
    int n_in;
    int threads; /* the workspace is sized for this many */
    dn_tensor x[DN_TEST_MAX_INPUTS], dx[DN_TEST_MAX_INPUTS], y, dy;
    void *work, *saved;
    uint64_t seed;
} dn_test_run;

/* threads: the most threads forward and backward will be given. */
dn_test_run dn_test_run_new(const dn_op *op, const char *attrs_json, int n_in, const dn_tensor *x,
                            int threads);
void dn_test_run_forward(dn_test_run *r, int threads, bool training);
void dn_test_run_backward(dn_test_run *r, int threads);
void dn_test_run_free(dn_test_run *r);

#endif
