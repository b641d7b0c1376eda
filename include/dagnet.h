/*
 * dagnet.h — the public API of dagnet, a CNN framework whose models are JSON graphs.
 *
 * A complete program: load a model and its weights once, classify on four threads that share
 * them, and read the errors (docs/embedding.md explains each step; examples/classify_threads.c
 * is the full version). Build it with
 *   cc app.c $(pkg-config --cflags --libs dagnet)      or, in CMake,
 *   find_package(dagnet REQUIRED)  target_link_libraries(app PRIVATE dagnet::dagnet)
 *
 *   #include <dagnet.h>
 *   #include <pthread.h>
 *   #include <stdio.h>
 *
 *   static const dn_model *model;     // shared, read-only
 *   static const dn_weights *weights; // shared, read-only
 *
 *   static void *classify(void *arg)
 *   {
 *       float *image = arg; // [1, 1, 28, 28]
 *       dn_session_options o = DN_SESSION_OPTIONS_DEFAULT;
 *       o.threads = 1;         // one core per session: the threads run side by side
 *       o.weights = weights;   // an inference session: borrows the weights, no copy
 *       dn_session *s;         // one per thread: a session is used by one thread at a time
 *       if (dn_session_new(model, &o, &s) != DN_OK) {
 *           fprintf(stderr, "%s\n", dn_session_errmsg(s)); // set even on failure
 *           dn_session_free(s);
 *           return NULL;
 *       }
 *       int64_t shape[4] = { 1, 1, 28, 28 };
 *       dn_view out;
 *       if (dn_session_set_input(s, "image", DN_F32, 4, shape, image) != DN_OK ||
 *           dn_session_forward(s, DN_INFER, NULL, 0) != DN_OK ||
 *           dn_session_tensor(s, dn_model_output_name(model, 0), &out) != DN_OK)
 *           fprintf(stderr, "%s\n", dn_session_errmsg(s)); // names file, node, field
 *       else
 *           printf("class 0 scores %g\n", ((const float *)out.data)[0]);
 *       dn_session_free(s);
 *       return NULL;
 *   }
 *
 *   int main(void)
 *   {
 *       dn_model *m;
 *       dn_weights *w = NULL;
 *       if (dn_model_load("lenet5.json", &m) != DN_OK) {
 *           fprintf(stderr, "%s\n", dn_model_errmsg(m));
 *           dn_model_free(m);
 *           return 1;
 *       }
 *       if (dn_weights_load(m, "lenet5.safetensors", &w) != DN_OK) {
 *           fprintf(stderr, "%s\n", dn_weights_errmsg(w)); // e.g. a param's shape differs
 *           dn_weights_free(w);
 *           dn_model_free(m);
 *           return 1;
 *       }
 *       model = m;
 *       weights = w;
 *       static float images[4][28 * 28];
 *       pthread_t t[4];
 *       for (int i = 0; i < 4; i++)
 *           pthread_create(&t[i], NULL, classify, images[i]);
 *       for (int i = 0; i < 4; i++)
 *           pthread_join(t[i], NULL);
 *       dn_weights_free(w); // after every session that borrowed them
 *       dn_model_free(m);   // after the weights and the sessions
 *       return 0;
 *   }
 *
 * How a model flows:
 *   dn_model_load()      JSON file → validated, topologically sorted graph (immutable)
 *   dn_weights_load()    safetensors → the model's params, validated, immutable (optional)
 *   dn_session_new()     graph → buffers for one batch size, and either params of its own
 *                        (initialised from a seed: a training session) or borrowed weights
 *                        (an inference session)
 *   dn_session_set_input()  feed named inputs (float32 images, int32 labels)
 *   dn_session_forward() run the nodes the requested outputs (or the loss) need
 *   dn_session_backward()  gradients of the loss w.r.t. every param (training sessions)
 *   dn_session_tensor() / dn_session_param_grad()  read results (borrowed views)
 *
 * Errors: every fallible call returns a dn_status; the handle involved keeps a message
 * (dn_model_errmsg, dn_session_errmsg, dn_weights_errmsg) naming the file, the JSON location
 * and the node, e.g.  lenet5.json: node "fc1" (/nodes/6/inputs/0): input "pool9" is not defined
 * The library never prints, exits or aborts.
 *
 * Arguments: every function checks its own arguments (NULL handles and pointers, indices,
 * modes, dtypes, ranks, sizes, thread counts) and returns DN_ERR_ARG with a message naming the
 * function and the argument, e.g. "dn_session_tensor: out is NULL", never crashing on NULL.
 * The message goes on the handle the call was given (also a const one: the message is the
 * handle's mutable state). When there is no handle to hold it (a NULL handle, or a constructor
 * given a NULL `out`), the call just returns DN_ERR_ARG, and dn_*_errmsg(NULL) says "no handle:
 * out of memory, or the call that should have made it was given a NULL out".
 *
 * Threads: there is no global state. What may be shared between threads:
 *   - a dn_model and a dn_weights: yes, by any number of threads and sessions at once, for
 *     reading (every call that takes them as `const` only reads them; their error message is
 *     the one exception, so a failed call on a shared handle may leave a garbled message:
 *     check handles once, before sharing them);
 *   - a dn_session, dn_trainer or dn_dataset: one thread at a time (they hold buffers that
 *     every call writes); give each thread its own session. Results do not depend on which
 *     thread runs a session: bit for bit the same as a sequential run with the same thread
 *     count (tests/test_embed.c checks four threads against one).
 * A session's `threads` option is its own OpenMP/BLIS team; sessions on several threads each
 * with threads = 1 use one core each.
 *
 * Ownership: a handle made by dn_*_new/load/parse is owned by the caller and freed with its
 * dn_*_free. A session borrows its model and its weights (both must outlive it); weights
 * borrow their model. Views (dn_view) and strings are borrowed, valid as each call says.
 * Buffers the library allocates for the caller (dn_session_save_weights_memory) are freed with
 * dn_free.
 *
 * ABI policy (libdagnet.so.SOVERSION; while the major version is 0, every minor release is a
 * new SOVERSION "0.MINOR", after that SOVERSION is the major version):
 *   - within one SOVERSION, functions are only added, never removed or changed;
 *   - enums only grow at the end, existing values keep their numbers;
 *   - options structs the caller fills (dn_session_options, dn_train_options) begin with
 *     `struct_size`, set by their *_DEFAULT macro to the size the caller was compiled with;
 *     the library reads only the fields inside it (the others take their defaults), and new
 *     fields are only appended. Start from the DEFAULT macro and set fields by name.
 *     struct_size 0 (a `{ .seed = 1 }` initialiser) means the fields of version 0.1, the ones
 *     before `weights`;
 *   - structs the library fills (dn_view, dn_*_info, dn_node_profile, dn_memory_info,
 *     dn_step_stats, dn_eval_result) keep their layout within a SOVERSION: new information
 *     comes through new functions;
 *   - handles are opaque; their layout is never part of the ABI.
 * Only the functions declared here are exported from the shared library (tests check it).
 */
#ifndef DAGNET_H
#define DAGNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; dn_version() gives the library's (they differ when a program
 * runs against another build of the shared library than it was compiled with). */
#define DN_VERSION_MAJOR 0
#define DN_VERSION_MINOR 2
#define DN_VERSION_PATCH 0
#define DN_VERSION_STRING "0.2.0"
/* One comparable number: major·10000 + minor·100 + patch (0.2.0 → 200). */
#define DN_VERSION_NUMBER (DN_VERSION_MAJOR * 10000 + DN_VERSION_MINOR * 100 + DN_VERSION_PATCH)
/* The model format this version reads: a model file's "format" field (docs/format.md). */
#define DN_FORMAT "dagnet/1"

/* What the shared library exports: every function declared here, nothing else (the library
 * is compiled with -fvisibility=hidden). */
#if defined(__GNUC__) || defined(__clang__)
#define DN_API __attribute__((visibility("default")))
#else
#define DN_API
#endif

/* The library's version, e.g. "0.2.0", and the model format it reads, "dagnet/1". Static
 * storage. */
DN_API const char *dn_version(void);
DN_API const char *dn_format(void);
/* The build this library runs on, as one line for a program's --version: BLIS's version, the
 * configuration it chose for this CPU and its threading, the OpenMP version the library was
 * compiled for, and the threads a session uses when its options say 0 (omp_get_max_threads():
 * OMP_NUM_THREADS, else the cores), e.g.
 *   "BLIS 0.9.0 (haswell, openmp threading); OpenMP 4.5 (201511); 2 threads by default"
 * Written into buf[0..size) as snprintf writes (truncated, and terminated when size > 0);
 * returns the length of the whole line. buf may be NULL when size is 0. */
DN_API size_t dn_build_info(char *buf, size_t size);

#define DN_MAX_RANK 8

typedef enum dn_status {
    DN_OK = 0,
    DN_ERR_IO,    /* a file could not be opened, read or written */
    DN_ERR_PARSE, /* malformed JSON, safetensors, .npy or IDX content */
    DN_ERR_MODEL, /* the model breaks the format contract (docs/format.md) */
    DN_ERR_SHAPE, /* shapes or dtypes that do not fit together */
    DN_ERR_NOMEM, /* an allocation failed or a size overflowed */
    DN_ERR_ARG,   /* a bad argument from the caller (unknown name, NULL, wrong mode) */
    /* training met a non-finite loss or gradient and stopped before the update (the params
     * are those of the last good step) */
    DN_ERR_DIVERGED,
    /* data-parallel training: a communicator call failed, or the ranks disagree (model, data,
     * options or params differ between them) */
    DN_ERR_COMM,
} dn_status;

/* A short English name for a status, e.g. "model error". Static storage. */
DN_API const char *dn_status_name(dn_status s);

/* Write size bytes of data to path as dagnet saves its own files: under one fixed, locked
 * temporary name beside the target (".<name>.tmp", reused by the next save after a crash),
 * fsynced, renamed into place, the directory fsynced. On failure the old file is untouched,
 * the temporary file removed, and, when errmsg is not NULL, errmsg[0..errmsg_size) holds the
 * message (naming the path and the system's reason); there is no handle to hold it. For
 * programs that write files of their own next to dagnet's (the `dagnet` command's log, the
 * pictures). DN_ERR_ARG for a NULL path, or NULL data with size > 0. */
DN_API dn_status dn_file_write(const char *path, const void *data, size_t size, char *errmsg,
                               size_t errmsg_size);

typedef enum dn_dtype { DN_F32 = 0, DN_I32 = 1, DN_I64 = 2 } dn_dtype;

/* A view of a tensor: shape, dtype and data owned by someone else (see each call). */
typedef struct dn_view {
    dn_dtype dtype;
    int rank;
    int64_t shape[DN_MAX_RANK];
    void *data;
} dn_view;

/* ---------------------------------------------------------------- models */

typedef struct dn_model dn_model;

/* Load and validate a dagnet/1 model file. Like sqlite3_open, *out is set even on failure
 * (unless memory ran out, then NULL) so that dn_model_errmsg(*out) explains the failure.
 * owned: free *out with dn_model_free in every case. */
DN_API dn_status dn_model_load(const char *path, dn_model **out);

/* The same from a JSON text in memory; `file_name` only labels messages. owned as above. */
DN_API dn_status dn_model_parse(const char *json, size_t len, const char *file_name,
                                dn_model **out);

DN_API void dn_model_free(dn_model *m);

/* borrowed: valid until the next call on m or dn_model_free. Never NULL. */
DN_API const char *dn_model_errmsg(const dn_model *m);

/* Introspection, for summaries and tools. Strings are borrowed: valid until dn_model_free. */
DN_API const char *dn_model_name(const dn_model *m);
DN_API const char *dn_model_file(const dn_model *m);

typedef struct dn_node_info {
    const char *name;
    const char *op;
    int n_inputs;
    const char *const *inputs; /* names of the tensors it reads */
    int rank;                  /* output shape; dim 0 is the batch when `batched` */
    int64_t shape[DN_MAX_RANK];
    bool batched;
    int64_t params; /* elements of the params this node reads */
    int64_t flops;  /* forward floating-point operations for one sample */
} dn_node_info;

/* Nodes in execution (topological) order. */
DN_API int dn_model_node_count(const dn_model *m);
DN_API dn_status dn_model_node_info(const dn_model *m, int i, dn_node_info *out);

typedef struct dn_tensor_info {
    const char *name;
    dn_dtype dtype;
    int rank;
    int64_t shape[DN_MAX_RANK];
    bool batched; /* dim 0 is the batch (null in the file) */
} dn_tensor_info;

DN_API int dn_model_input_count(const dn_model *m);
DN_API dn_status dn_model_input_info(const dn_model *m, int i, dn_tensor_info *out);
DN_API int dn_model_param_count(const dn_model *m);
DN_API dn_status dn_model_param_info(const dn_model *m, int i, dn_tensor_info *out);
/* State tensors (the "state" section and implicit ones, e.g. BatchNorm's running mean and
 * variance): saved and loaded with the weights, written only by a training forward, never
 * trained. */
DN_API int dn_model_state_count(const dn_model *m);
DN_API dn_status dn_model_state_info(const dn_model *m, int i, dn_tensor_info *out);
DN_API int dn_model_output_count(const dn_model *m);
DN_API const char *dn_model_output_name(const dn_model *m, int i);
/* Output i's dtype and shape before any run (dim 0 is the batch when `batched`: shape[0]
 * is then 1, and a run at batch n gives n), to size the caller's buffers. */
DN_API dn_status dn_model_output_info(const dn_model *m, int i, dn_tensor_info *out);
/* The loss tensor's name, or NULL for an inference-only model. */
DN_API const char *dn_model_loss_name(const dn_model *m);

/* ---------------------------------------------------------------- sessions */

typedef struct dn_session dn_session;

/* ---------------------------------------------------------------- weights */

/* A model's stored tensors (its params, keyed by name), loaded once, validated against the
 * model and immutable afterwards: any number of inference sessions, on any threads, borrow
 * them without copying (dn_session_options.weights). weights borrow m (it must outlive
 * them); free them with dn_weights_free after every session that borrows them. */
typedef struct dn_weights dn_weights;

/* Weights for m from a safetensors file: every param of m by name, F32, its exact shape; a
 * missing or extra tensor is an error. *out is set even on failure (unless memory ran out)
 * so that dn_weights_errmsg explains. owned: free with dn_weights_free. */
DN_API dn_status dn_weights_load(const dn_model *m, const char *path, dn_weights **out);
/* The same from a safetensors image in the caller's memory (copied: data may be freed after
 * the call). `label` only names the buffer in messages (NULL: "<memory>"). */
DN_API dn_status dn_weights_from_memory(const dn_model *m, const void *data, size_t size,
                                        const char *label, dn_weights **out);
/* A copy of a session's current params (e.g. after training), for inference sessions.
 * owned as above. */
DN_API dn_status dn_weights_from_session(dn_session *s, dn_weights **out);
DN_API void dn_weights_free(dn_weights *w);
/* borrowed: valid until the next call on w. Never NULL. */
DN_API const char *dn_weights_errmsg(const dn_weights *w);
/* Bytes of tensor data the weights hold. */
DN_API size_t dn_weights_bytes(const dn_weights *w);
/* One tensor, by name. borrowed and READ-ONLY: valid until dn_weights_free; never write
 * through out->data (sessions on other threads read it). */
DN_API dn_status dn_weights_tensor(const dn_weights *w, const char *name, dn_view *out);
/* Save as safetensors (atomically), as dn_session_save_weights does. */
DN_API dn_status dn_weights_save(const dn_weights *w, const char *path);

/* ---------------------------------------------------------------- sessions */

typedef struct dn_session_options {
    size_t struct_size; /* sizeof(dn_session_options) as compiled: see the ABI policy above */
    uint64_t seed;      /* initialisers and Dropout draw from a generator seeded here */
    int threads;        /* 0: OMP_NUM_THREADS or the number of cores; 1 to DN_THREADS_MAX
                           (1024) taken as given; anything else is DN_ERR_ARG naming the value
                           and the range */
    bool keep_tensors;  /* every node output stays readable after a forward (inspection,
                           gradient dumps); otherwise only the fetched tensors do, and the
                           others' memory is reused */
    /* (0.2) NULL: a training session, with params of its own initialised from `seed`, their
     * gradients and buffers for backward. Non-NULL: an INFERENCE session that borrows these
     * weights (loaded for the same model; they must outlive the session) without copying,
     * initialises nothing, and holds no gradients, no optimiser state and no buffer kept for
     * a backward: it runs DN_INFER forwards only. backward, training forwards,
     * dn_session_param, dn_session_param_grad, loading weights and dn_trainer_new return
     * DN_ERR_ARG on it. */
    const dn_weights *weights;
} dn_session_options;

#define DN_THREADS_MAX 1024

/* The defaults; set fields by name afterwards. Valid in C and C++ (C++ gets an aggregate
 * initialiser in declaration order instead of C's compound literal). */
#ifdef __cplusplus
#define DN_SESSION_OPTIONS_DEFAULT \
    (dn_session_options{ sizeof(dn_session_options), 0, 0, false, 0 })
#else
#define DN_SESSION_OPTIONS_DEFAULT                                    \
    ((dn_session_options){ .struct_size = sizeof(dn_session_options), \
                           .seed = 0,                                 \
                           .threads = 0,                              \
                           .keep_tensors = false,                     \
                           .weights = NULL })
#endif

/* A training session owns the params (initialised by their `init` from opts->seed), their
 * gradients and the buffers of one batch size; an inference session (opts->weights) borrows
 * its params. m is borrowed: it must outlive the session.
 * *out is set even on failure (unless memory ran out) so that dn_session_errmsg explains.
 * owned: free *out with dn_session_free. opts may be NULL for the defaults. */
DN_API dn_status dn_session_new(const dn_model *m, const dn_session_options *opts,
                                dn_session **out);
DN_API void dn_session_free(dn_session *s);
/* borrowed: valid until the next call on s. Never NULL. */
DN_API const char *dn_session_errmsg(const dn_session *s);

/* Copy `data` (C order, the given dtype and shape) into graph input `name`. The batch size
 * is taken from shape[0]; all inputs of one run must agree. int64 labels are narrowed to
 * int32 with a range check. */
DN_API dn_status dn_session_set_input(dn_session *s, const char *name, dn_dtype dtype, int rank,
                                      const int64_t *shape, const void *data);
/* The same from a NumPy .npy file. */
DN_API dn_status dn_session_set_input_npy(dn_session *s, const char *name, const char *path);

typedef enum dn_mode { DN_INFER = 0, DN_TRAIN = 1 } dn_mode;

/* Run the nodes that `fetch` (n_fetch tensor names) needs; n_fetch == 0 means the model's
 * outputs, plus the loss in DN_TRAIN mode. DN_TRAIN enables Dropout. */
DN_API dn_status dn_session_forward(dn_session *s, dn_mode mode, const char *const *fetch,
                                    int n_fetch);

/* Gradients of the loss w.r.t. every param, after a DN_TRAIN forward that computed the loss.
 * Gradients are overwritten (not accumulated across calls). */
DN_API dn_status dn_session_backward(dn_session *s);

/* borrowed: valid until the next forward/backward/set_input/load on s. */
DN_API dn_status dn_session_tensor(dn_session *s, const char *name, dn_view *out);
DN_API dn_status dn_session_param(dn_session *s, const char *name, dn_view *out); /* writable */
DN_API dn_status dn_session_param_grad(dn_session *s, const char *name, dn_view *out);
/* A state tensor (e.g. "bn1.running_mean"), writable; DN_ERR_ARG on an inference session,
 * whose state is the borrowed weights' (read it with dn_weights_tensor). */
DN_API dn_status dn_session_state(dn_session *s, const char *name, dn_view *out);

/* Weights as safetensors keyed by param name (F32), the state tensors (BatchNorm's running
 * statistics) beside them under their own names. Loading checks every name, dtype and
 * shape; a file with missing or extra params or state is an error. Saving writes a temporary file
 * and renames it into place. */
DN_API dn_status dn_session_load_weights(dn_session *s, const char *path);
DN_API dn_status dn_session_save_weights(dn_session *s, const char *path);
/* The same from and to memory: load from a safetensors image of `size` bytes (not kept after
 * the call); save into a new buffer, *data (free it with dn_free), of *size bytes. */
DN_API dn_status dn_session_load_weights_memory(dn_session *s, const void *data, size_t size);
DN_API dn_status dn_session_save_weights_memory(dn_session *s, void **data, size_t *size);
/* Free a buffer the library allocated for the caller. NULL is ignored. */
DN_API void dn_free(void *p);

/* Copy a computed tensor (see dn_session_tensor) into the caller's buffer of `size` bytes,
 * which must hold all of it (DN_ERR_ARG naming both sizes otherwise). */
DN_API dn_status dn_session_copy_tensor(dn_session *s, const char *name, void *dst, size_t size);

/* Write a computed tensor to a .npy file (atomically). */
DN_API dn_status dn_session_write_npy(dn_session *s, const char *tensor, const char *path);

/* Write the scalar loss under "loss" and each param's gradient under "grad.<param>" to a
 * safetensors file (atomically); with `with_tensors`, also each param's value under
 * "param.<param>", each state tensor under "state.<name>" (after the training forward
 * updated it) and every computed node output under "act.<node>". For the `dagnet grad`
 * command and parity checks. Needs a backward since the last forward. */
DN_API dn_status dn_session_save_gradients(dn_session *s, const char *path, bool with_tensors);

/* ---------------------------------------------------------------- ONNX (docs/onnx.md) */

typedef struct dn_onnx_options {
    size_t struct_size; /* sizeof(dn_onnx_options) as compiled: see the ABI policy above */
    const char *loss;   /* NULL, or "softmax-cross-entropy": adds a loss on the first output (on
                          a final Softmax's input) so that the model can be fine-tuned */
    const char *label;  /* with loss: the name of the int32 label input [N] it adds */
} dn_onnx_options;

#ifdef __cplusplus
#define DN_ONNX_OPTIONS_DEFAULT (dn_onnx_options{ sizeof(dn_onnx_options), NULL, NULL })
#else
#define DN_ONNX_OPTIONS_DEFAULT \
    ((dn_onnx_options){ .struct_size = sizeof(dn_onnx_options), .loss = NULL, .label = NULL })
#endif

/* Import an ONNX model (opsets 7 to 17; docs/onnx.md lists the ops and how each maps): the
 * dagnet model, and its initializers as weights that every session on it starts from instead
 * of the params' inits. A file dagnet cannot express is refused naming the ONNX node, its op
 * type and what is unsupported. *out is set even on failure, as for dn_model_load. opts may be
 * NULL. owned: free *out with dn_model_free. */
DN_API dn_status dn_model_load_onnx(const char *path, const dn_onnx_options *opts, dn_model **out);
/* The same from an ONNX file's bytes in memory; `file_name` only labels messages. */
DN_API dn_status dn_model_parse_onnx(const void *data, size_t len, const char *file_name,
                                     const dn_onnx_options *opts, dn_model **out);

/* Write the model's dagnet JSON text (atomically, as dn_file_write). */
DN_API dn_status dn_model_save(const dn_model *m, const char *path);
/* Write the weights that came with the model (an ONNX import) as safetensors, atomically;
 * DN_ERR_ARG when it has none. */
DN_API dn_status dn_model_save_weights(const dn_model *m, const char *path);

/* Write the session's model with its current params as ONNX (opset 13, the batch dimension
 * symbolic "N"), atomically. The loss node and the label inputs are left out unless
 * with_loss. A model using an op without an ONNX form is refused naming the node. */
DN_API dn_status dn_session_export_onnx(dn_session *s, const char *path, bool with_loss);

/* ---------------------------------------------------------------- profiling */

/* The thread count the session's kernels and BLIS use. */
DN_API int dn_session_threads(const dn_session *s);

/* Per-node timing for benchmarks (`dagnet bench`). Off by default; when on, each node's
 * forward and backward is timed (two clock reads per node). Turning it on resets the
 * counters. */
DN_API dn_status dn_session_set_profiling(dn_session *s, bool on);

typedef struct dn_node_profile {
    const char *node; /* borrowed: valid until the model is freed */
    const char *op;   /* borrowed: likewise */
    int64_t forward_calls, backward_calls;
    double forward_seconds, backward_seconds; /* summed over the calls */
    double forward_flops;                     /* of one call, at the session's current batch size */
    double backward_flops; /* likewise, counting only the gradients the session computes */
    bool has_gemm;         /* the op's work is matrix products (Conv, Affine) */
} dn_node_profile;

/* Node i's counters, i in [0, dn_model_node_count()), in the model's execution order. */
DN_API dn_status dn_session_node_profile(dn_session *s, int i, dn_node_profile *out);

/* BLIS's own sgemm speed on node i's matrix products at the session's current batch size and
 * thread count: the products of one forward, and those of one backward (only the gradients
 * the session computes), each run `repeats` times on scratch matrices; the median GFLOP/s of
 * each. Both are 0 for nodes without matrix products. The reference a Conv's or Affine's
 * achieved GFLOP/s reads against. */
DN_API dn_status dn_session_gemm_reference(dn_session *s, int i, int repeats,
                                           double *forward_gflops, double *backward_gflops);

/* Bytes the session holds, as planned for its current batch size. */
typedef struct dn_memory_info {
    size_t params;         /* params, one contiguous buffer */
    size_t param_grads;    /* their gradients, likewise */
    size_t arena;          /* activations, gradients and saved state, shared by lifetime */
    size_t arena_unshared; /* what the arena would take if no two buffers shared memory */
    size_t workspace;      /* the kernels' scratch (im2col) */
} dn_memory_info;

DN_API dn_status dn_session_memory(const dn_session *s, dn_memory_info *out);

/* ---------------------------------------------------------------- data sets */

/* Labelled images in memory, pixels scaled to [0, 1], from IDX files (the MNIST format),
 * raw or gzip-compressed. */
typedef struct dn_dataset dn_dataset;

/* The four standard MNIST file names in `dir` (train-images-idx3-ubyte, …, with or without
 * .gz); `train` picks the training or the test (t10k) pair. *out is set even on failure so
 * that dn_dataset_errmsg explains. owned: free with dn_dataset_free. */
DN_API dn_status dn_dataset_load_dir(const char *dir, bool train, dn_dataset **out);
DN_API dn_status dn_dataset_load_idx(const char *images_path, const char *labels_path,
                                     dn_dataset **out);
/* Images without labels from one file, to look at or to run a model on: an IDX file of
 * unsigned bytes [n, h, w] or [n, c, h, w] (raw or gzip, pixels scaled to [0, 1] as above),
 * or a .npy file of float32 [h, w] (one image), [n, h, w] or [n, c, h, w] (values as they
 * are). The format follows the name: ".npy", else IDX. Every label is 0 and the class
 * count 1. *out is set even on failure. owned: free with dn_dataset_free. */
DN_API dn_status dn_dataset_load_images(const char *path, dn_dataset **out);
/* A data set copied from arrays: images [n, c, h, w] float32 and labels [n] int32, each in
 * [0, classes). For synthetic data (benchmarks, tests) and callers with their own loaders.
 * *out is set even on failure. owned: free with dn_dataset_free. */
DN_API dn_status dn_dataset_from_arrays(int64_t n, int c, int h, int w, const float *images,
                                        const int32_t *labels, int classes, dn_dataset **out);
DN_API void dn_dataset_free(dn_dataset *d);
/* borrowed: valid until the next call on d. Never NULL. */
DN_API const char *dn_dataset_errmsg(const dn_dataset *d);

DN_API int64_t dn_dataset_count(const dn_dataset *d);
DN_API int dn_dataset_classes(const dn_dataset *d);
/* Move the last n_val examples into a new data set (a validation split).
 * owned: free *val with dn_dataset_free. */
DN_API dn_status dn_dataset_split(dn_dataset *d, int64_t n_val, dn_dataset **val);
/* borrowed: valid until dn_dataset_free or dn_dataset_split. Images [n, c, h, w] float32,
 * labels [n] int32. */
DN_API dn_status dn_dataset_images(const dn_dataset *d, dn_view *out);
DN_API dn_status dn_dataset_labels(const dn_dataset *d, dn_view *out);

/* ---------------------------------------------------------------- evaluation */

typedef struct dn_eval_result {
    int64_t count;   /* examples seen */
    int64_t correct; /* argmax of the prediction equals the label */
    double loss;     /* mean loss, when the model has one (else 0) */
    int classes;
    int64_t *confusion; /* classes × classes, row = true label, column = predicted; owned by
                           the result: free with dn_eval_result_free */
} dn_eval_result;

/* Which tensors carry the data: NULL names are found automatically (the model's only float
 * input, its only int32 input, its first output). */
typedef struct dn_binding {
    const char *image_input;
    const char *label_input;
    const char *prediction;
} dn_binding;

#ifdef __cplusplus
#define DN_BINDING_DEFAULT (dn_binding{ 0, 0, 0 })
#else
#define DN_BINDING_DEFAULT ((dn_binding){ NULL, NULL, NULL })
#endif

/* Inference over the whole data set in batches of `batch` (Dropout off). */
DN_API dn_status dn_session_evaluate(dn_session *s, const dn_dataset *d, const dn_binding *bind,
                                     int batch, dn_eval_result *out);
DN_API void dn_eval_result_free(dn_eval_result *r);

/* ---------------------------------------------------------------- training */

typedef enum dn_optimizer {
    DN_SGD = 0,
    DN_MOMENTUM,
    DN_NESTEROV,
    DN_ADAGRAD,
    DN_RMSPROP,
    DN_ADAM,
} dn_optimizer;

typedef enum dn_lr_schedule { DN_LR_CONSTANT = 0, DN_LR_STEP, DN_LR_COSINE } dn_lr_schedule;

/* Data-parallel training (docs/distributed.md): K processes ("ranks") each hold the same
 * model and data; every global batch is split across them, each computes the gradient of its
 * shard, and the gradients are summed with allreduce_sum so that every rank applies the same
 * update. The library itself does no communication: the caller plugs MPI, NCCL or its own
 * transport in here (the `dagnet` command plugs MPI under mpirun). Every callback is
 * collective: all ranks call it in the same order with the same sizes. Each returns DN_OK or
 * a status with a message written into msg (msg_size bytes, NUL-terminated). */
typedef struct dn_comm {
    void *ctx;
    int rank; /* this process, in [0, size) */
    int size; /* processes taking part (K) */
    /* buf[0..n) ← the elementwise sum over ranks of buf, the same bits on every rank */
    dn_status (*allreduce_sum)(void *ctx, float *buf, size_t n, char *msg, size_t msg_size);
    /* buf[0..bytes) ← rank `root`'s buf */
    dn_status (*broadcast)(void *ctx, void *buf, size_t bytes, int root, char *msg,
                           size_t msg_size);
} dn_comm;

typedef struct dn_train_options {
    size_t struct_size; /* sizeof(dn_train_options) as compiled: see the ABI policy above */
    dn_optimizer optimizer;
    float lr;           /* base learning rate */
    float momentum;     /* Momentum, Nesterov */
    float weight_decay; /* L2, added to the gradient as PyTorch does */
    dn_lr_schedule schedule;
    int step_size; /* DN_LR_STEP: epochs between decays */
    float gamma;   /* DN_LR_STEP: decay factor */
    int epochs;
    int batch;
    uint64_t seed; /* shuffling; the session's own seed drives inits and Dropout */
    /* Since 0.2 (after `seed`: struct_size 0 means none of these). */
    /* Data-parallel training over comm (borrowed; NULL or size 1: one process). `batch` is
     * then the global batch; rank r trains examples [n·r/K, n·(r+1)/K) of each batch of n. */
    const dn_comm *comm;
    /* Floats per allreduce call over the gradient buffer; 0: 1 M floats (4 MB). */
    int64_t bucket;
    /* At every epoch's end, hash params and optimiser state and compare them across ranks
     * (a debug check: a difference fails the step with DN_ERR_COMM). */
    bool check_replicas;
    /* Flip each training image left to right with probability 1/2 (Caffe's `mirror`,
     * PyTorch's RandomHorizontalFlip): a fresh draw per example and epoch, from the epoch's
     * generator state, so a resumed run and every rank flip the same examples. */
    bool mirror;
    /* Move each training image by up to `shift` pixels in each direction, the offsets uniform
     * in [-shift, shift] and drawn afresh per example and epoch as `mirror`'s flips, the
     * pixels moved in being zeros (PyTorch's RandomCrop(size, padding=shift), Caffe's and
     * Darknet's random crops of a padded image). 0: off; must be less than the images'
     * height and width. Applied after the flip. */
    int shift;
} dn_train_options;

#ifdef __cplusplus
#define DN_TRAIN_OPTIONS_DEFAULT                                                                  \
    (dn_train_options{ sizeof(dn_train_options), DN_ADAM, 0.001f, 0.9f, 0.0f, DN_LR_CONSTANT, 10, \
                       0.1f, 3, 100, 0, 0, 0, false, false, 0 })
#else
#define DN_TRAIN_OPTIONS_DEFAULT                                  \
    ((dn_train_options){ .struct_size = sizeof(dn_train_options), \
                         .optimizer = DN_ADAM,                    \
                         .lr = 0.001f,                            \
                         .momentum = 0.9f,                        \
                         .weight_decay = 0.0f,                    \
                         .schedule = DN_LR_CONSTANT,              \
                         .step_size = 10,                         \
                         .gamma = 0.1f,                           \
                         .epochs = 3,                             \
                         .batch = 100,                            \
                         .seed = 0,                               \
                         .comm = NULL,                            \
                         .bucket = 0,                             \
                         .check_replicas = false,                 \
                         .mirror = false,                         \
                         .shift = 0 })
#endif

/* The defaults, overridden by the model file's optional "train" section. */
DN_API void dn_model_train_options(const dn_model *m, dn_train_options *out);

typedef struct dn_trainer dn_trainer;

/* A trainer updates the session's params; s is borrowed and must outlive it. *out is set even
 * on failure. owned: free with dn_trainer_free. */
DN_API dn_status dn_trainer_new(dn_session *s, const dn_train_options *o, const dn_binding *bind,
                                dn_trainer **out);
DN_API void dn_trainer_free(dn_trainer *t);
DN_API const char *dn_trainer_errmsg(const dn_trainer *t);

typedef struct dn_step_stats {
    int epoch;       /* 0-based */
    int64_t step;    /* mini-batches done in this epoch */
    int64_t steps;   /* mini-batches in the epoch (the last may be partial) */
    int64_t seen;    /* examples done in this epoch */
    double loss_sum; /* Σ batch loss × batch size, this epoch */
    int64_t correct; /* correct predictions, this epoch */
    float lr;        /* learning rate of this epoch */
    bool epoch_done; /* the step just taken finished the epoch */
} dn_step_stats;

/* Train one mini-batch of `train` (shuffling at each epoch's start). Call until
 * stats->epoch_done, then again for the next epoch. A non-finite loss or gradient returns
 * DN_ERR_DIVERGED, naming the epoch and step, before the update: the params, the optimiser's
 * state and the position in the epoch stay those of the last good step. */
DN_API dn_status dn_trainer_step(dn_trainer *t, const dn_dataset *train, dn_step_stats *stats);
/* Epochs finished so far (after a resume: counted from the start of training). */
DN_API int dn_trainer_epoch(const dn_trainer *t);

/* A checkpoint holds the params, the optimiser's state, the epoch and step, and both
 * generators' states: resuming continues bit for bit as if never stopped (same thread
 * count). Written under a temporary name and renamed into place. */
DN_API dn_status dn_trainer_save_checkpoint(dn_trainer *t, const char *path);
DN_API dn_status dn_trainer_load_checkpoint(dn_trainer *t, const char *path);

#ifdef __cplusplus
}
#endif
#endif
