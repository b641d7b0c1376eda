/*
 * dagnet.h — the public API of dagnet, a CNN framework whose models are JSON graphs.
 *
 * How a model flows:
 *   dn_model_load()      JSON file → validated, topologically sorted graph (immutable)
 *   dn_session_new()     graph → params (initialised from a seed) + buffers for one batch size
 *   dn_session_set_input()  feed named inputs (float32 images, int32 labels)
 *   dn_session_forward() run the nodes the requested outputs (or the loss) need
 *   dn_session_backward()  gradients of the loss w.r.t. every param
 *   dn_session_tensor() / dn_session_param_grad()  read results (borrowed views)
 *
 * Errors: every fallible call returns a dn_status; the handle involved keeps a message
 * (dn_model_errmsg, dn_session_errmsg) naming the file, the JSON location and the node,
 * e.g.  lenet5.json: node "fc1" (/nodes/6/inputs/0): input "pool9" is not defined
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
 * Threads: a handle may be used by one thread at a time; distinct handles are independent
 * (no global state), so two sessions can run on two threads.
 */
#ifndef DAGNET_H
#define DAGNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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
} dn_status;

/* A short English name for a status, e.g. "model error". Static storage. */
const char *dn_status_name(dn_status s);

/* Write size bytes of data to path as dagnet saves its own files: under one fixed, locked
 * temporary name beside the target (".<name>.tmp", reused by the next save after a crash),
 * fsynced, renamed into place, the directory fsynced. On failure the old file is untouched,
 * the temporary file removed, and, when errmsg is not NULL, errmsg[0..errmsg_size) holds the
 * message (naming the path and the system's reason); there is no handle to hold it. For
 * programs that write files of their own next to dagnet's (the `dagnet` command's log, the
 * pictures). DN_ERR_ARG for a NULL path, or NULL data with size > 0. */
dn_status dn_file_write(const char *path, const void *data, size_t size, char *errmsg,
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
dn_status dn_model_load(const char *path, dn_model **out);

/* The same from a JSON text in memory; `file_name` only labels messages. owned as above. */
dn_status dn_model_parse(const char *json, size_t len, const char *file_name, dn_model **out);

void dn_model_free(dn_model *m);

/* borrowed: valid until the next call on m or dn_model_free. Never NULL. */
const char *dn_model_errmsg(const dn_model *m);

/* Introspection, for summaries and tools. Strings are borrowed: valid until dn_model_free. */
const char *dn_model_name(const dn_model *m);
const char *dn_model_file(const dn_model *m);

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
int dn_model_node_count(const dn_model *m);
dn_status dn_model_node_info(const dn_model *m, int i, dn_node_info *out);

typedef struct dn_tensor_info {
    const char *name;
    dn_dtype dtype;
    int rank;
    int64_t shape[DN_MAX_RANK];
    bool batched; /* dim 0 is the batch (null in the file) */
} dn_tensor_info;

int dn_model_input_count(const dn_model *m);
dn_status dn_model_input_info(const dn_model *m, int i, dn_tensor_info *out);
int dn_model_param_count(const dn_model *m);
dn_status dn_model_param_info(const dn_model *m, int i, dn_tensor_info *out);
/* State tensors (the "state" section and implicit ones, e.g. BatchNorm's running mean and
 * variance): saved and loaded with the weights, written only by a training forward, never
 * trained. */
int dn_model_state_count(const dn_model *m);
dn_status dn_model_state_info(const dn_model *m, int i, dn_tensor_info *out);
int dn_model_output_count(const dn_model *m);
const char *dn_model_output_name(const dn_model *m, int i);
/* The loss tensor's name, or NULL for an inference-only model. */
const char *dn_model_loss_name(const dn_model *m);

/* ---------------------------------------------------------------- sessions */

typedef struct dn_session dn_session;

typedef struct dn_session_options {
    uint64_t seed;     /* initialisers and Dropout draw from a generator seeded here */
    int threads;       /* 0: OMP_NUM_THREADS or the number of cores; 1 to DN_THREADS_MAX
                          (1024) taken as given; anything else is DN_ERR_ARG naming the value
                          and the range */
    bool keep_tensors; /* every node output stays readable after a forward (inspection,
                          gradient dumps); otherwise only the fetched tensors do, and the
                          others' memory is reused */
} dn_session_options;

#define DN_THREADS_MAX 1024

#define DN_SESSION_OPTIONS_DEFAULT \
    ((dn_session_options){ .seed = 0, .threads = 0, .keep_tensors = false })

/* A session owns the params (initialised by their `init` from opts->seed), their gradients
 * and the buffers of one batch size. m is borrowed: it must outlive the session.
 * *out is set even on failure (unless memory ran out) so that dn_session_errmsg explains.
 * owned: free *out with dn_session_free. opts may be NULL for the defaults. */
dn_status dn_session_new(const dn_model *m, const dn_session_options *opts, dn_session **out);
void dn_session_free(dn_session *s);
/* borrowed: valid until the next call on s. Never NULL. */
const char *dn_session_errmsg(const dn_session *s);

/* Copy `data` (C order, the given dtype and shape) into graph input `name`. The batch size
 * is taken from shape[0]; all inputs of one run must agree. int64 labels are narrowed to
 * int32 with a range check. */
dn_status dn_session_set_input(dn_session *s, const char *name, dn_dtype dtype, int rank,
                               const int64_t *shape, const void *data);
/* The same from a NumPy .npy file. */
dn_status dn_session_set_input_npy(dn_session *s, const char *name, const char *path);

typedef enum dn_mode { DN_INFER = 0, DN_TRAIN = 1 } dn_mode;

/* Run the nodes that `fetch` (n_fetch tensor names) needs; n_fetch == 0 means the model's
 * outputs, plus the loss in DN_TRAIN mode. DN_TRAIN enables Dropout. */
dn_status dn_session_forward(dn_session *s, dn_mode mode, const char *const *fetch, int n_fetch);

/* Gradients of the loss w.r.t. every param, after a DN_TRAIN forward that computed the loss.
 * Gradients are overwritten (not accumulated across calls). */
dn_status dn_session_backward(dn_session *s);

/* borrowed: valid until the next forward/backward/set_input/load on s. */
dn_status dn_session_tensor(dn_session *s, const char *name, dn_view *out);
dn_status dn_session_param(dn_session *s, const char *name, dn_view *out); /* writable */
dn_status dn_session_param_grad(dn_session *s, const char *name, dn_view *out);
dn_status dn_session_state(dn_session *s, const char *name, dn_view *out); /* writable */

/* Weights as safetensors keyed by param name (F32), the state tensors (BatchNorm's running
 * statistics) beside them under their own names. Loading checks every name, dtype and
 * shape; a file with missing or extra params or state is an error. Saving writes a temporary file
 * and renames it into place. */
dn_status dn_session_load_weights(dn_session *s, const char *path);
dn_status dn_session_save_weights(dn_session *s, const char *path);

/* Write a computed tensor to a .npy file (atomically). */
dn_status dn_session_write_npy(dn_session *s, const char *tensor, const char *path);

/* Write the scalar loss under "loss" and each param's gradient under "grad.<param>" to a
 * safetensors file (atomically); with `with_tensors`, also each param's value under
 * "param.<param>", each state tensor under "state.<name>" (after the training forward
 * updated it) and every computed node output under "act.<node>". For the `dagnet grad`
 * command and parity checks. Needs a backward since the last forward. */
dn_status dn_session_save_gradients(dn_session *s, const char *path, bool with_tensors);

/* ---------------------------------------------------------------- profiling */

/* The thread count the session's kernels and BLIS use. */
int dn_session_threads(const dn_session *s);

/* Per-node timing for benchmarks (`dagnet bench`). Off by default; when on, each node's
 * forward and backward is timed (two clock reads per node). Turning it on resets the
 * counters. */
dn_status dn_session_set_profiling(dn_session *s, bool on);

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
dn_status dn_session_node_profile(dn_session *s, int i, dn_node_profile *out);

/* BLIS's own sgemm speed on node i's matrix products at the session's current batch size and
 * thread count: the products of one forward, and those of one backward (only the gradients
 * the session computes), each run `repeats` times on scratch matrices; the median GFLOP/s of
 * each. Both are 0 for nodes without matrix products. The reference a Conv's or Affine's
 * achieved GFLOP/s reads against. */
dn_status dn_session_gemm_reference(dn_session *s, int i, int repeats, double *forward_gflops,
                                    double *backward_gflops);

/* Bytes the session holds, as planned for its current batch size. */
typedef struct dn_memory_info {
    size_t params;         /* params, one contiguous buffer */
    size_t param_grads;    /* their gradients, likewise */
    size_t arena;          /* activations, gradients and saved state, shared by lifetime */
    size_t arena_unshared; /* what the arena would take if no two buffers shared memory */
    size_t workspace;      /* the kernels' scratch (im2col) */
} dn_memory_info;

dn_status dn_session_memory(const dn_session *s, dn_memory_info *out);

/* ---------------------------------------------------------------- data sets */

/* Labelled images in memory, pixels scaled to [0, 1], from IDX files (the MNIST format),
 * raw or gzip-compressed. */
typedef struct dn_dataset dn_dataset;

/* The four standard MNIST file names in `dir` (train-images-idx3-ubyte, …, with or without
 * .gz); `train` picks the training or the test (t10k) pair. *out is set even on failure so
 * that dn_dataset_errmsg explains. owned: free with dn_dataset_free. */
dn_status dn_dataset_load_dir(const char *dir, bool train, dn_dataset **out);
dn_status dn_dataset_load_idx(const char *images_path, const char *labels_path, dn_dataset **out);
/* Images without labels from one file, to look at or to run a model on: an IDX file of
 * unsigned bytes [n, h, w] or [n, c, h, w] (raw or gzip, pixels scaled to [0, 1] as above),
 * or a .npy file of float32 [h, w] (one image), [n, h, w] or [n, c, h, w] (values as they
 * are). The format follows the name: ".npy", else IDX. Every label is 0 and the class
 * count 1. *out is set even on failure. owned: free with dn_dataset_free. */
dn_status dn_dataset_load_images(const char *path, dn_dataset **out);
/* A data set copied from arrays: images [n, c, h, w] float32 and labels [n] int32, each in
 * [0, classes). For synthetic data (benchmarks, tests) and callers with their own loaders.
 * *out is set even on failure. owned: free with dn_dataset_free. */
dn_status dn_dataset_from_arrays(int64_t n, int c, int h, int w, const float *images,
                                 const int32_t *labels, int classes, dn_dataset **out);
void dn_dataset_free(dn_dataset *d);
/* borrowed: valid until the next call on d. Never NULL. */
const char *dn_dataset_errmsg(const dn_dataset *d);

int64_t dn_dataset_count(const dn_dataset *d);
int dn_dataset_classes(const dn_dataset *d);
/* Move the last n_val examples into a new data set (a validation split).
 * owned: free *val with dn_dataset_free. */
dn_status dn_dataset_split(dn_dataset *d, int64_t n_val, dn_dataset **val);
/* borrowed: valid until dn_dataset_free or dn_dataset_split. Images [n, c, h, w] float32,
 * labels [n] int32. */
dn_status dn_dataset_images(const dn_dataset *d, dn_view *out);
dn_status dn_dataset_labels(const dn_dataset *d, dn_view *out);

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

#define DN_BINDING_DEFAULT ((dn_binding){ NULL, NULL, NULL })

/* Inference over the whole data set in batches of `batch` (Dropout off). */
dn_status dn_session_evaluate(dn_session *s, const dn_dataset *d, const dn_binding *bind, int batch,
                              dn_eval_result *out);
void dn_eval_result_free(dn_eval_result *r);

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

typedef struct dn_train_options {
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
} dn_train_options;

#define DN_TRAIN_OPTIONS_DEFAULT                     \
    ((dn_train_options){ .optimizer = DN_ADAM,       \
                         .lr = 0.001f,               \
                         .momentum = 0.9f,           \
                         .weight_decay = 0.0f,       \
                         .schedule = DN_LR_CONSTANT, \
                         .step_size = 10,            \
                         .gamma = 0.1f,              \
                         .epochs = 3,                \
                         .batch = 100,               \
                         .seed = 0 })

/* The defaults, overridden by the model file's optional "train" section. */
void dn_model_train_options(const dn_model *m, dn_train_options *out);

typedef struct dn_trainer dn_trainer;

/* A trainer updates the session's params; s is borrowed and must outlive it. *out is set even
 * on failure. owned: free with dn_trainer_free. */
dn_status dn_trainer_new(dn_session *s, const dn_train_options *o, const dn_binding *bind,
                         dn_trainer **out);
void dn_trainer_free(dn_trainer *t);
const char *dn_trainer_errmsg(const dn_trainer *t);

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
dn_status dn_trainer_step(dn_trainer *t, const dn_dataset *train, dn_step_stats *stats);
/* Epochs finished so far (after a resume: counted from the start of training). */
int dn_trainer_epoch(const dn_trainer *t);

/* A checkpoint holds the params, the optimiser's state, the epoch and step, and both
 * generators' states: resuming continues bit for bit as if never stopped (same thread
 * count). Written under a temporary name and renamed into place. */
dn_status dn_trainer_save_checkpoint(dn_trainer *t, const char *path);
dn_status dn_trainer_load_checkpoint(dn_trainer *t, const char *path);

#ifdef __cplusplus
}
#endif
#endif
