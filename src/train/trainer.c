/*
 * trainer.c — mini-batch training and checkpoints (the dn_trainer_* API of dagnet.h).
 *
 * One step: take the next `batch` examples of this epoch's permutation, feed them, forward in
 * training mode, backward, then one optimiser update of the whole contiguous param buffer
 * (optim.c) with this epoch's learning rate (schedule). At an epoch's start the permutation is
 * drawn from the trainer's own generator.
 *
 * Resuming bit for bit: a checkpoint records the generator's state from just BEFORE the
 * current epoch's shuffle, so a resumed trainer redraws the same permutation and continues
 * at the same position; the session's generator (Dropout), the optimiser's moments and step
 * count, and the epoch's running statistics are restored as they were.
 *
 * Divergence: before the update, the batch's loss and the whole gradient buffer must be
 * finite; otherwise the step returns DN_ERR_DIVERGED naming the epoch, the step and what was
 * not finite, and changes nothing (params, optimiser state, position, statistics), so the
 * params stay those of the last good step. The gradient check is one pass over the contiguous
 * buffer testing exponent bits (an integer OR that vectorises, where a float sum would not
 * without -ffast-math), threaded on large models.
 *
 * Data parallel (options.comm with K = comm->size > 1, docs/distributed.md): every rank walks
 * the same permutation (same seed), and of each global batch of n examples rank r trains
 * [n·r/K, n·(r+1)/K), a contiguous shard; shard sizes differ by at most one. The loss is a
 * mean over the shard, so rank r scales its gradient by n_r/n before the allreduce sums the
 * contiguous gradient buffer (in buckets of options.bucket floats): the sum is Σ_r (n_r/n) ·
 * mean_r = the mean over all n, the gradient a single process computes for the whole batch,
 * up to summation order. A rank whose shard is empty (n < K, an epoch's last batch)
 * contributes zeros. The batch's loss sum and correct count are summed the same way, so every
 * rank sees the global statistics and takes the same divergence decision on the same summed
 * gradient; every rank then applies the same update. At the first step the ranks compare
 * fingerprints of the model, the options and position, the data and the params (a mismatch is
 * DN_ERR_COMM on every rank, naming what differs on which rank). The session generator
 * (Dropout) of rank r > 0 is derived from rank 0's, so that shards get independent masks.
 *
 * The trainer drives the session's executor directly; dn_trainer_new (api/api.c) unwraps the
 * session handle and calls dn_trainer_open.
 */
#include "train/trainer.h"

#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/train_section.h"
#include "io/safetensors.h"
#include "runtime/options.h"
#include "runtime/parallel.h"
#include "train/feed.h"
#include "train/optim.h"

/* The public enum and the optimiser's are the same list in the same order. */
_Static_assert((int)DN_SGD == (int)DN_OPTIM_SGD && (int)DN_MOMENTUM == (int)DN_OPTIM_MOMENTUM &&
                   (int)DN_NESTEROV == (int)DN_OPTIM_NESTEROV &&
                   (int)DN_ADAGRAD == (int)DN_OPTIM_ADAGRAD &&
                   (int)DN_RMSPROP == (int)DN_OPTIM_RMSPROP && (int)DN_ADAM == (int)DN_OPTIM_ADAM,
               "dn_optimizer and dn_optim_kind disagree");

/* Mirror draws are keyed by the epoch's generator state (checkpointed), salted so that they
 * are not the shuffle's own numbers. */
#define MIRROR_SALT 0x6d6972726f72ULL /* "mirror" */
#define SHIFT_SALT 0x7368696674ULL    /* "shift" */

/* Checkpoint layout version, the first element of "trainer.state". */
#define CHECKPOINT_VERSION 1

struct dn_trainer {
    dn_exec *e; /* borrowed: the session's executor */
    dn_train_options o;
    dn_optim_config optim;
    dn_schedule schedule;
    dn_bound b;
    dn_err err;

    dn_rng rng;               /* shuffling */
    uint64_t epoch_rng_state; /* rng before this epoch's shuffle */
    float *state;             /* optimiser moments: slots × params, contiguous */
    int64_t state_count;
    int64_t t; /* optimiser steps taken */

    int epoch;      /* the epoch under way (0-based) */
    bool in_epoch;  /* a permutation is drawn and pos is inside it */
    bool redraw;    /* resumed mid-epoch: redraw the permutation first */
    int64_t pos;    /* examples done in this epoch */
    int64_t perm_n; /* examples in the permutation (the data set's size) */
    int64_t *perm;
    int64_t per_example; /* floats per image in `images` */
    float *images;       /* one batch */
    int32_t *labels;
    dn_step_stats stats;

    /* data parallel (comm NULL: one process) */
    const dn_comm *comm;
    bool synced;       /* the ranks' fingerprints were compared */
    float *comm_flags; /* 4 · K floats: which rank disagrees on what */
};

/* ------------------------------------------------------------------ life cycle */

static dn_schedule schedule_of(const dn_train_options *o)
{
    dn_schedule s = { .kind = DN_SCHEDULE_CONSTANT, .step_size = o->step_size, .gamma = o->gamma };
    if (o->schedule == DN_LR_STEP)
        s.kind = DN_SCHEDULE_STEP;
    else if (o->schedule == DN_LR_COSINE)
        s.kind = DN_SCHEDULE_COSINE;
    return s;
}

/* The caller's options over the defaults (runtime/options.h): the first layout is 0.1's, the
 * fields before `comm`. */
static dn_status copy_options(dn_trainer *t, const dn_train_options *o)
{
    t->o = DN_TRAIN_OPTIONS_DEFAULT;
    return o ? dn_options_copy(&t->o, sizeof t->o, o, offsetof(dn_train_options, comm),
                               "dn_trainer_new", "DN_TRAIN_OPTIONS_DEFAULT", &t->err)
             : DN_OK;
}

static dn_status check_options(dn_trainer *t, const dn_train_options *o)
{
    if (o->optimizer < DN_SGD || o->optimizer > DN_ADAM)
        return dn_err_set(&t->err, DN_ERR_ARG, "unknown optimizer %d", (int)o->optimizer);
    if (!(o->lr > 0) || o->batch < 1 || o->epochs < 0 || !(o->weight_decay >= 0) ||
        !(o->momentum >= 0 && o->momentum < 1) || (o->schedule == DN_LR_STEP && o->step_size < 1))
        return dn_err_set(&t->err, DN_ERR_ARG,
                          "bad training options: lr %g (> 0), batch %d (>= 1), epochs %d (>= 0), "
                          "weight decay %g (>= 0), momentum %g (in [0, 1)), step size %d (>= 1)",
                          (double)o->lr, o->batch, o->epochs, (double)o->weight_decay,
                          (double)o->momentum, o->step_size);
    if (o->bucket < 0 || o->shift < 0)
        return dn_err_set(&t->err, DN_ERR_ARG,
                          "bad training options: bucket %lld (>= 0), shift %d (>= 0)",
                          (long long)o->bucket, o->shift);
    const dn_comm *c = o->comm;
    if (c &&
        (c->size < 1 || c->rank < 0 || c->rank >= c->size || !c->allreduce_sum || !c->broadcast))
        return dn_err_set(&t->err, DN_ERR_ARG,
                          "dn_trainer_new: bad communicator: rank %d of size %d (expected 0 <= "
                          "rank < size), allreduce_sum %s, broadcast %s",
                          c->rank, c->size, c->allreduce_sum ? "set" : "NULL",
                          c->broadcast ? "set" : "NULL");
    return DN_OK;
}

/* Rank r > 0 draws Dropout masks from its own stream, derived from the session's (rank 0's)
 * state, so that two shards never share masks. Rank 0 keeps the session's stream: one rank is
 * exactly one process. */
static void split_session_rng(dn_trainer *t)
{
    if (t->comm && t->comm->rank > 0)
        t->e->rng.state = dn_rng_hash(t->e->rng.state, (uint64_t)t->comm->rank);
}

dn_status dn_trainer_open(dn_exec *e, const dn_train_options *o, const dn_binding *bind,
                          dn_trainer **out)
{
    if (!out)
        return DN_ERR_ARG; /* nowhere to put a message: dn_trainer_errmsg(NULL) says so */
    dn_trainer *t = calloc(1, sizeof *t);
    *out = t;
    if (!t)
        return DN_ERR_NOMEM;
    if (!e)
        return dn_err_set(&t->err, DN_ERR_ARG, "dn_trainer_new: session is NULL");
    if (!e->g)
        return dn_err_set(&t->err, DN_ERR_ARG, "dn_trainer_new: the session did not open");
    if (e->inference)
        return dn_err_set(&t->err, DN_ERR_ARG,
                          "dn_trainer_new: %s: the session is an inference session (it borrows "
                          "read-only weights); train a session opened without weights",
                          e->g->file);
    t->e = e;
    dn_status st = copy_options(t, o);
    if (st || (st = check_options(t, &t->o)))
        return st;
    if (t->o.comm && t->o.comm->size > 1) {
        t->comm = t->o.comm;
        t->comm_flags = calloc((size_t)t->comm->size * 4, sizeof *t->comm_flags);
        if (!t->comm_flags)
            return dn_err_set(&t->err, DN_ERR_NOMEM, "out of memory for %d ranks", t->comm->size);
    }
    const dn_graph *g = e->g;
    if (g->loss < 0)
        return dn_err_set(&t->err, DN_ERR_ARG, "%s: the model has no \"loss\" to train", g->file);
    if ((st = dn_bind(g, bind, true, &t->b, &t->err)))
        return st;
    t->optim = dn_optim_defaults((dn_optim_kind)t->o.optimizer);
    t->optim.momentum = t->o.momentum;
    t->optim.weight_decay = t->o.weight_decay;
    t->schedule = schedule_of(&t->o);
    dn_rng_seed(&t->rng, t->o.seed);
    t->state_count = (int64_t)dn_optim_state_slots(t->optim.kind) * e->param_count;
    t->state = calloc((size_t)t->state_count + 1, sizeof *t->state);
    if (!t->state)
        return dn_err_set(&t->err, DN_ERR_NOMEM, "out of memory for the optimiser's state");
    split_session_rng(t);
    return DN_OK;
}

void dn_trainer_free(dn_trainer *t)
{
    if (!t)
        return;
    free(t->state);
    free(t->perm);
    free(t->images);
    free(t->labels);
    free(t->comm_flags);
    free(t);
}

const char *dn_trainer_errmsg(const dn_trainer *t) { return t ? t->err.msg : DN_NO_HANDLE_MSG; }
int dn_trainer_epoch(const dn_trainer *t) { return t ? t->epoch : 0; }

/* ------------------------------------------------------------------ epochs and steps */

/* The permutation and batch buffers for this data set: allocated at the first epoch, and
 * again only if a later epoch brings a data set of another size. */
static dn_status size_buffers(dn_trainer *t, const dn_data *d)
{
    if (t->redraw && t->perm_n != d->n)
        return dn_err_set(
            &t->err, DN_ERR_ARG,
            "the training set has %lld examples, but the checkpointed epoch was drawn over %lld",
            (long long)d->n, (long long)t->perm_n);
    int64_t per_example = d->channels * d->height * d->width;
    if (t->perm && t->perm_n != d->n) {
        free(t->perm);
        t->perm = NULL;
    }
    if (t->images && t->per_example != per_example) {
        free(t->images);
        t->images = NULL;
    }
    if (!t->perm) {
        t->perm_n = d->n;
        t->perm = malloc((size_t)d->n * sizeof *t->perm);
    }
    if (!t->images) {
        t->per_example = per_example;
        t->images = malloc((size_t)t->o.batch * (size_t)per_example * sizeof *t->images);
    }
    if (!t->labels)
        t->labels = malloc((size_t)t->o.batch * sizeof *t->labels);
    if (!t->perm || !t->images || !t->labels)
        return dn_err_set(&t->err, DN_ERR_NOMEM, "out of memory for %lld examples",
                          (long long)d->n);
    return DN_OK;
}

static dn_status begin_epoch(dn_trainer *t, const dn_data *d)
{
    if (d->n < 1)
        return dn_err_set(&t->err, DN_ERR_ARG, "the training set is empty");
    if (t->o.shift >= d->height || t->o.shift >= d->width)
        return dn_err_set(&t->err, DN_ERR_ARG,
                          "shift %d: expected less than the training images' height and width "
                          "(%lld × %lld)",
                          t->o.shift, (long long)d->height, (long long)d->width);
    const dn_shape *ps = &t->e->g->values[t->b.prediction].desc.shape;
    dn_status st = dn_check_labels(d, ps->d[ps->rank - 1], &t->err);
    if (st || (st = size_buffers(t, d)))
        return st;
    if (!t->redraw) {
        t->pos = 0;
        t->stats = (dn_step_stats){ .epoch = t->epoch };
    }
    t->redraw = false;
    t->stats.steps = (d->n + t->o.batch - 1) / t->o.batch;
    t->stats.lr = dn_schedule_lr(&t->schedule, t->o.lr, t->epoch, t->o.epochs);
    t->epoch_rng_state = t->rng.state;
    dn_data_shuffle(t->perm, d->n, &t->rng);
    t->in_epoch = true;
    return DN_OK;
}

static int64_t count_correct(const dn_trainer *t, int64_t n)
{
    const dn_tensor *p = &t->e->val[t->b.prediction];
    int64_t width = p->shape.d[1], correct = 0;
    for (int64_t i = 0; i < n; i++)
        correct += dn_argmax(dn_f32(p) + i * width, width) == t->labels[i];
    return correct;
}

/* ------------------------------------------------------------------ divergence */

/* Floats from which two threads check finiteness faster than one: a stream at ~0.1 ns a
 * float, so only large models (AlexNet's 61 M params) pay for waking the second. */
#define FINITE_PARALLEL_MIN (1 << 20)

typedef struct finite_job {
    const float *x;
    atomic_bool *bad;
} finite_job;

static void check_span(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const finite_job *j = ctx;
    if (!dn_all_finite(j->x + lo, hi - lo))
        atomic_store_explicit(j->bad, true, memory_order_relaxed);
}

static bool all_finite(const float *x, int64_t n, int threads)
{
    atomic_bool bad;
    atomic_init(&bad, false);
    dn_parallel_for(n, dn_team(threads, n, FINITE_PARALLEL_MIN), check_span,
                    &(finite_job){ x, &bad });
    return !atomic_load_explicit(&bad, memory_order_relaxed);
}

/* The step diverged: say where, and which param's gradient first holds a non-finite value
 * (the slow search runs only on failure). */
static dn_status diverged(dn_trainer *t, float loss)
{
    const dn_exec *e = t->e;
    const dn_graph *g = e->g;
    char what[512];
    if (!isfinite(loss))
        snprintf(what, sizeof what, "the loss is %s",
                 isnan(loss) ? "NaN"
                 : loss > 0  ? "inf"
                             : "-inf");
    else {
        snprintf(what, sizeof what, "the gradient is not finite");
        for (int i = 0; i < g->n_params; i++) {
            const dn_value *p = &g->values[g->param_values[i]];
            const float *gr = e->param_grad + (dn_f32(&e->val[g->param_values[i]]) - e->param_data);
            int64_t n = dn_shape_numel(&e->val[g->param_values[i]].shape);
            int64_t j = 0;
            while (j < n && isfinite(gr[j]))
                j++;
            if (j < n) {
                snprintf(what, sizeof what, "the gradient of \"%s\" is %g at element %lld", p->name,
                         (double)gr[j], (long long)j);
                break;
            }
        }
    }
    return dn_err_set(&t->err, DN_ERR_DIVERGED,
                      "training diverged at epoch %d, step %lld of %lld (learning rate %g): %s; "
                      "the update was not applied, the params are those of the last good step",
                      t->epoch + 1, (long long)t->stats.step + 1, (long long)t->stats.steps,
                      (double)t->stats.lr, what);
}

/* ------------------------------------------------------------------ data parallel */

/* A 64-bit hash of n bytes, 8 at a time (FNV-1a's prime on words, then a final mix): fast
 * enough for a whole data set once at start-up. */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return dn_rng_mix(h);
}

static uint64_t hash_u64(uint64_t h, uint64_t x) { return hash_bytes(h, &x, sizeof x); }

static uint64_t hash_str(uint64_t h, const char *s) { return hash_bytes(h, s, strlen(s) + 1); }

/* What the ranks must agree on before the first step. */
enum { FP_MODEL, FP_OPTIONS, FP_DATA, FP_PARAMS, FP_COUNT };
static const char *const fp_what[FP_COUNT] = {
    "model (its params' names and shapes, or its nodes)",
    "training options or position (epoch, step, seeds: a checkpoint of another run?)",
    "training data",
    "params or optimiser state (another session seed or checkpoint?)",
};

static void fingerprints(const dn_trainer *t, const dn_data *d, uint64_t fp[FP_COUNT])
{
    const dn_exec *e = t->e;
    const dn_graph *g = e->g;
    uint64_t h = hash_u64(1, (uint64_t)g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++)
        h = hash_str(hash_str(h, g->nodes[i].name), g->nodes[i].op->name);
    for (int i = 0; i < g->n_params; i++) {
        const dn_value *p = &g->values[g->param_values[i]];
        h = hash_str(h, p->name);
        h = hash_bytes(h, p->desc.shape.d, (size_t)p->desc.shape.rank * sizeof p->desc.shape.d[0]);
    }
    fp[FP_MODEL] = h;
    const dn_train_options *o = &t->o;
    uint64_t words[] = { (uint64_t)o->optimizer,  (uint64_t)o->schedule, (uint64_t)o->step_size,
                         (uint64_t)o->epochs,     (uint64_t)o->batch,    o->seed,
                         (uint64_t)o->bucket,     (uint64_t)t->epoch,    (uint64_t)t->pos,
                         (uint64_t)t->t,          t->rng.state,          (uint64_t)t->redraw,
                         (uint64_t)t->comm->size, (uint64_t)o->mirror,   (uint64_t)o->shift };
    float floats[] = { o->lr, o->momentum, o->weight_decay, o->gamma };
    fp[FP_OPTIONS] = hash_bytes(hash_bytes(2, words, sizeof words), floats, sizeof floats);
    int64_t dims[] = { d->n, d->channels, d->height, d->width };
    h = hash_bytes(3, dims, sizeof dims);
    h = hash_bytes(h, d->images, (size_t)(d->n * d->channels * d->height * d->width) * 4);
    fp[FP_DATA] = hash_bytes(h, d->labels, (size_t)d->n * sizeof *d->labels);
    h = hash_bytes(4, e->param_data, (size_t)e->param_count * sizeof *e->param_data);
    fp[FP_PARAMS] = hash_bytes(h, t->state, (size_t)t->state_count * sizeof *t->state);
}

static dn_status comm_failed(dn_trainer *t, const char *what, dn_status st, const char *msg)
{
    return dn_err_set(&t->err, DN_ERR_COMM, "rank %d of %d: %s failed (%s): %s", t->comm->rank,
                      t->comm->size, what, dn_status_name(st), msg[0] ? msg : "no message");
}

static dn_status allreduce(dn_trainer *t, float *buf, int64_t n, const char *what)
{
    char msg[512] = "";
    int64_t bucket = t->o.bucket ? t->o.bucket : (int64_t)1 << 20;
    for (int64_t at = 0; at < n; at += bucket) {
        int64_t len = n - at < bucket ? n - at : bucket;
        dn_status st = t->comm->allreduce_sum(t->comm->ctx, buf + at, (size_t)len, msg, sizeof msg);
        if (st)
            return comm_failed(t, what, st, msg);
    }
    return DN_OK;
}

/* Every rank compares its fingerprints with rank 0's (broadcast), then the mismatches of all
 * ranks are summed, so that every rank fails with the same message naming each rank and
 * what differs on it. Fingerprints [first, first + count) are compared. */
static dn_status compare_ranks(dn_trainer *t, const uint64_t *mine, int first, int count,
                               const char *when)
{
    const dn_comm *c = t->comm;
    uint64_t root[FP_COUNT];
    memcpy(root, mine, sizeof root);
    char msg[512] = "";
    dn_status st = c->broadcast(c->ctx, root, sizeof root, 0, msg, sizeof msg);
    if (st)
        return comm_failed(t, "the broadcast of rank 0's fingerprints", st, msg);
    float *flags = t->comm_flags;
    memset(flags, 0, (size_t)c->size * FP_COUNT * sizeof *flags);
    for (int i = first; i < first + count; i++)
        flags[c->rank * FP_COUNT + i] = root[i] != mine[i];
    if ((st = allreduce(t, flags, (int64_t)c->size * FP_COUNT, "the fingerprint comparison")))
        return st;
    char text[900] = "";
    size_t used = 0;
    int bad = 0;
    for (int r = 1; r < c->size; r++)
        for (int i = first; i < first + count && i < FP_COUNT; i++)
            if (flags[r * FP_COUNT + i] != 0) {
                if (bad++ < 4 && used < sizeof text)
                    used += (size_t)snprintf(text + used, sizeof text - used, "%srank %d: %s",
                                             bad > 1 ? "; " : "", r, fp_what[i]);
            }
    if (bad)
        return dn_err_set(&t->err, DN_ERR_COMM,
                          "%s, the %d ranks disagree with rank 0 (rank %d speaking): %s%s", when,
                          c->size, c->rank, text, bad > 4 ? "; ..." : "");
    return DN_OK;
}

/* At the end of each epoch with check_replicas: params and optimiser state identical. */
static dn_status check_replicas(dn_trainer *t)
{
    uint64_t fp[FP_COUNT] = { 0 };
    uint64_t h = hash_bytes(4, t->e->param_data, (size_t)t->e->param_count * sizeof(float));
    fp[FP_PARAMS] = hash_bytes(h, t->state, (size_t)t->state_count * sizeof *t->state);
    char when[64];
    snprintf(when, sizeof when, "at the end of epoch %d", t->epoch);
    return compare_ranks(t, fp, FP_PARAMS, 1, when);
}

/* ------------------------------------------------------------------ steps */

static dn_status step(dn_trainer *t, const dn_data *d, dn_step_stats *stats);

typedef struct step_call {
    dn_trainer *t;
    const dn_data *d;
    dn_step_stats *stats;
    dn_status st;
} step_call;

static void step_body(void *arg)
{
    step_call *c = arg;
    c->st = step(c->t, c->d, c->stats);
}

/* The step runs as one crew (runtime/parallel.h): its threads wait for each other's loops in
 * the library's own wait, not OpenMP's, from the gather to the update. */
dn_status dn_trainer_step(dn_trainer *t, const dn_dataset *train, dn_step_stats *stats)
{
    if (!t || !t->e || !train)
        return t ? dn_err_set(&t->err, DN_ERR_ARG, "dn_trainer_step: %s",
                              !t->e ? "the trainer did not open" : "train (the dataset) is NULL")
                 : DN_ERR_ARG;
    step_call c = { .t = t, .d = &train->data, .stats = stats, .st = DN_OK };
    dn_crew_run(t->e->threads, step_body, &c);
    return c.st;
}

static dn_status step(dn_trainer *t, const dn_data *d, dn_step_stats *stats)
{
    dn_exec *e = t->e;
    dn_status st = DN_OK;
    if (!t->in_epoch && (st = begin_epoch(t, d)))
        return st;
    if (d->n != t->perm_n)
        return dn_err_set(&t->err, DN_ERR_ARG,
                          "the training set changed size in the middle of an epoch");
    if (t->comm && !t->synced) {
        uint64_t fp[FP_COUNT];
        fingerprints(t, d, fp);
        if ((st = compare_ranks(t, fp, 0, FP_COUNT, "at start-up")))
            return st;
        t->synced = true;
    }
    int64_t n = d->n - t->pos < t->o.batch ? d->n - t->pos : t->o.batch;
    /* This rank's shard of the global batch (all of it with one process). */
    int64_t k = t->comm ? t->comm->size : 1, r = t->comm ? t->comm->rank : 0;
    int64_t lo = n * r / k, nr = n * (r + 1) / k - lo;
    float loss = 0;
    int64_t correct = 0;
    if (nr > 0) {
        dn_data_gather(d, t->perm + t->pos + lo, nr, t->images, t->labels, e->threads);
        if (t->o.mirror)
            dn_data_mirror(d, t->images, nr, t->epoch_rng_state ^ MIRROR_SALT, t->pos + lo);
        if (t->o.shift)
            dn_data_shift(d, t->images, nr, t->epoch_rng_state ^ SHIFT_SALT, t->pos + lo,
                          t->o.shift);
        int targets[2] = { t->b.prediction, e->g->loss };
        if ((st = dn_feed_batch(e, &t->b, d, t->images, t->labels, nr, &t->err)) ||
            (st = dn_exec_forward(e, true, targets, 2, &t->err)) ||
            (st = dn_exec_backward(e, &t->err)))
            return st;
        loss = dn_f32(&e->val[e->g->loss])[0];
        correct = count_correct(t, nr);
    } else
        memset(e->param_grad, 0, (size_t)e->param_count * sizeof *e->param_grad);
    if (t->comm) {
        /* The shard's mean gradient weighted by its share of the batch: the sum over ranks is
         * the batch mean. The statistics travel as floats: exact for counts below 2^24. */
        float w = (float)((double)nr / (double)n), sums[2] = { loss * (float)nr, (float)correct };
        if (nr != n)
            for (int64_t i = 0; i < e->param_count; i++)
                e->param_grad[i] *= w;
        if ((st = allreduce(t, sums, 2, "the allreduce of the loss")) ||
            (st = allreduce(t, e->param_grad, e->param_count, "the allreduce of the gradients")))
            return st;
        loss = sums[0] / (float)n;
        correct = (int64_t)sums[1];
    }
    if (!isfinite(loss) || !all_finite(e->param_grad, e->param_count, e->threads))
        return diverged(t, loss);
    t->t++;
    dn_optim_step(&t->optim, t->stats.lr, t->t, e->param_data, e->param_grad, t->state,
                  e->param_count, e->threads);
    /* The params changed: what the forward computed is stale. */
    memset(e->computed, 0, (size_t)e->g->n_values * sizeof *e->computed);
    t->stats.loss_sum += (double)loss * (double)n;
    t->stats.correct += correct;
    t->stats.seen += n;
    t->stats.step++;
    t->pos += n;
    t->stats.epoch_done = t->pos == d->n;
    if (t->stats.epoch_done) {
        t->in_epoch = false;
        t->epoch++;
        if (t->comm && t->o.check_replicas && (st = check_replicas(t)))
            return st;
    }
    if (stats)
        *stats = t->stats;
    return DN_OK;
}

/* ------------------------------------------------------------------ checkpoints */

enum {
    CK_VERSION,
    CK_OPTIMIZER,
    CK_PARAMS,
    CK_EPOCH,
    CK_IN_EPOCH,
    CK_POS,
    CK_PERM_N,
    CK_T,
    CK_RNG,
    CK_EPOCH_RNG,
    CK_SESSION_RNG,
    CK_STEP,
    CK_SEEN,
    CK_CORRECT,
    CK_LOSS_SUM,
    CK_COUNT
};

static int64_t bits_of_double(double x)
{
    int64_t i;
    memcpy(&i, &x, sizeof i);
    return i;
}

static double double_of_bits(int64_t i)
{
    double x;
    memcpy(&x, &i, sizeof x);
    return x;
}

dn_status dn_trainer_save_checkpoint(dn_trainer *t, const char *path)
{
    if (!t || !t->e || !path)
        return t ? dn_err_set(&t->err, DN_ERR_ARG, "dn_trainer_save_checkpoint: %s",
                              !t->e ? "the trainer did not open" : "path is NULL")
                 : DN_ERR_ARG;
    const dn_exec *e = t->e;
    const dn_graph *g = e->g;
    int64_t meta[CK_COUNT] = {
        [CK_VERSION] = CHECKPOINT_VERSION,
        [CK_OPTIMIZER] = t->optim.kind,
        [CK_PARAMS] = e->param_count,
        [CK_EPOCH] = t->epoch,
        [CK_IN_EPOCH] = t->in_epoch || t->redraw,
        [CK_POS] = t->pos,
        [CK_PERM_N] = t->perm_n,
        [CK_T] = t->t,
        [CK_RNG] = (int64_t)t->rng.state,
        [CK_EPOCH_RNG] = (int64_t)(t->redraw ? t->rng.state : t->epoch_rng_state),
        [CK_SESSION_RNG] = (int64_t)e->rng.state,
        [CK_STEP] = t->stats.step,
        [CK_SEEN] = t->stats.seen,
        [CK_CORRECT] = t->stats.correct,
        [CK_LOSS_SUM] = bits_of_double(t->stats.loss_sum),
    };
    dn_shape meta_shape = { .rank = 1, .d = { CK_COUNT } };
    dn_shape state_shape = { .rank = 1, .d = { t->state_count } };
    int n_tensors = g->n_params + g->n_state;
    dn_st_tensor *list = calloc((size_t)n_tensors + 2, sizeof *list);
    char **names = calloc((size_t)n_tensors + 1, sizeof *names);
    dn_status st = DN_OK;
    if (!list || !names) {
        st = dn_err_set(&t->err, DN_ERR_NOMEM, "out of memory");
        goto out;
    }
    int n = 0;
    list[n++] = (dn_st_tensor){ "trainer.state", DN_I64, &meta_shape, meta };
    if (t->state_count)
        list[n++] = (dn_st_tensor){ "optim.state", DN_F32, &state_shape, t->state };
    /* Params as "param.<name>", then the state tensors (BatchNorm's running statistics) as
     * "state.<name>", so that a resumed run normalises exactly as the uninterrupted one. */
    for (int i = 0; i < n_tensors; i++) {
        int v = i < g->n_params ? g->param_values[i] : g->state_values[i - g->n_params];
        const char *prefix = i < g->n_params ? "param." : "state.";
        size_t len = strlen(g->values[v].name) + 7;
        if (!(names[i] = malloc(len))) {
            st = dn_err_set(&t->err, DN_ERR_NOMEM, "out of memory");
            goto out;
        }
        snprintf(names[i], len, "%s%s", prefix, g->values[v].name);
        list[n++] = (dn_st_tensor){ names[i], DN_F32, &e->val[v].shape, e->val[v].data };
    }
    st = dn_st_write(path, list, n, &t->err);
out:
    for (int i = 0; names && i < n_tensors; i++)
        free(names[i]);
    free(names);
    free(list);
    return st;
}

/* A checkpoint entry that must exist with this dtype and element count. */
static const dn_st_entry *entry(dn_trainer *t, const dn_st_file *f, const char *path,
                                const char *name, dn_dtype dtype, const dn_shape *shape)
{
    const dn_st_entry *e = dn_st_find(f, name);
    char want[DN_SHAPE_STR_MAX], got[DN_SHAPE_STR_MAX];
    if (!e)
        dn_err_set(&t->err, DN_ERR_PARSE, "%s: not a checkpoint of this model: \"%s\" is missing",
                   path, name);
    else if (e->dtype != dtype || !dn_shape_equal(&e->shape, shape))
        dn_err_set(&t->err, DN_ERR_SHAPE, "%s: \"%s\": expected %s %s, found %s %s", path, name,
                   dn_dtype_name(dtype), dn_shape_str(shape, want, sizeof want),
                   dn_dtype_name(e->dtype), dn_shape_str(&e->shape, got, sizeof got));
    else
        return e;
    return NULL;
}

static dn_status restore(dn_trainer *t, const dn_st_file *f, const char *path)
{
    dn_exec *e = t->e;
    const dn_graph *g = e->g;
    dn_shape meta_shape = { .rank = 1, .d = { CK_COUNT } };
    const dn_st_entry *me = entry(t, f, path, "trainer.state", DN_I64, &meta_shape);
    if (!me)
        return t->err.status;
    int64_t meta[CK_COUNT];
    memcpy(meta, me->data, sizeof meta);
    if (meta[CK_VERSION] != CHECKPOINT_VERSION || meta[CK_OPTIMIZER] != t->optim.kind ||
        meta[CK_PARAMS] != e->param_count || meta[CK_EPOCH] < 0 || meta[CK_POS] < 0 ||
        meta[CK_PERM_N] < 0 || (meta[CK_IN_EPOCH] && meta[CK_POS] >= meta[CK_PERM_N]))
        return dn_err_set(
            &t->err, DN_ERR_ARG,
            "%s: checkpoint (version %lld, optimizer %s, %lld params) does not fit this "
            "trainer (version %d, optimizer %s, %lld params) or is inconsistent",
            path, (long long)meta[CK_VERSION],
            meta[CK_OPTIMIZER] >= 0 && meta[CK_OPTIMIZER] <= DN_OPTIM_ADAM
                ? dn_optimizer_name((dn_optimizer)meta[CK_OPTIMIZER])
                : "?",
            (long long)meta[CK_PARAMS], CHECKPOINT_VERSION,
            dn_optimizer_name((dn_optimizer)t->optim.kind), (long long)e->param_count);
    /* Issue 10, found by tests/fuzz/fuzz_checkpoint: a step counter of INT64_MAX loaded, and
     * the next step's t->t++ overflowed. Every counter a step adds to must leave headroom;
     * no real run comes near 2^62 steps or INT_MAX epochs. */
    const int64_t most = (int64_t)1 << 62;
    if (meta[CK_EPOCH] >= INT_MAX || meta[CK_POS] >= most || meta[CK_PERM_N] >= most ||
        meta[CK_T] < 0 || meta[CK_T] >= most || meta[CK_STEP] < 0 || meta[CK_STEP] >= most ||
        meta[CK_SEEN] < 0 || meta[CK_SEEN] >= most || meta[CK_CORRECT] < 0 ||
        meta[CK_CORRECT] >= most)
        return dn_err_set(&t->err, DN_ERR_PARSE,
                          "%s: checkpoint counters out of range (epoch %lld, optimizer step "
                          "%lld, step %lld, seen %lld, correct %lld): expected 0 to 2^62",
                          path, (long long)meta[CK_EPOCH], (long long)meta[CK_T],
                          (long long)meta[CK_STEP], (long long)meta[CK_SEEN],
                          (long long)meta[CK_CORRECT]);
    dn_shape state_shape = { .rank = 1, .d = { t->state_count } };
    const dn_st_entry *se =
        t->state_count ? entry(t, f, path, "optim.state", DN_F32, &state_shape) : NULL;
    if (t->state_count && !se)
        return t->err.status;
    /* Check every param and state tensor before changing any. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g->n_params + g->n_state; i++) {
            int v = i < g->n_params ? g->param_values[i] : g->state_values[i - g->n_params];
            const dn_value *p = &g->values[v];
            char name[512];
            snprintf(name, sizeof name, "%s%s", i < g->n_params ? "param." : "state.", p->name);
            const dn_st_entry *pe = entry(t, f, path, name, DN_F32, &p->desc.shape);
            if (!pe)
                return t->err.status;
            if (pass == 1)
                memcpy(e->val[v].data, pe->data, pe->nbytes);
        }
    if (se)
        memcpy(t->state, se->data, se->nbytes);
    t->epoch = (int)meta[CK_EPOCH];
    t->redraw = meta[CK_IN_EPOCH] != 0;
    t->in_epoch = false;
    t->pos = meta[CK_POS];
    if (t->perm && t->perm_n != meta[CK_PERM_N]) {
        free(t->perm); /* sized for another data set */
        t->perm = NULL;
    }
    t->perm_n = meta[CK_PERM_N];
    t->t = meta[CK_T];
    t->rng.state = (uint64_t)(t->redraw ? meta[CK_EPOCH_RNG] : meta[CK_RNG]);
    e->rng.state = (uint64_t)meta[CK_SESSION_RNG];
    t->stats = (dn_step_stats){ .epoch = t->epoch,
                                .step = meta[CK_STEP],
                                .seen = meta[CK_SEEN],
                                .correct = meta[CK_CORRECT],
                                .loss_sum = double_of_bits(meta[CK_LOSS_SUM]) };
    memset(e->computed, 0, (size_t)g->n_values * sizeof *e->computed);
    split_session_rng(t);
    t->synced = false; /* the ranks compare again what they loaded */
    return DN_OK;
}

dn_status dn_trainer_load_checkpoint(dn_trainer *t, const char *path)
{
    if (!t || !t->e || !path)
        return t ? dn_err_set(&t->err, DN_ERR_ARG, "dn_trainer_load_checkpoint: %s",
                              !t->e ? "the trainer did not open" : "path is NULL")
                 : DN_ERR_ARG;
    dn_st_file f;
    dn_status st = dn_st_read(path, &f, &t->err);
    if (st)
        return st;
    st = restore(t, &f, path);
    dn_st_free(&f);
    return st;
}
