/*
 * test_distributed.c — data-parallel training through the public dn_comm interface, with an
 * in-process communicator: K trainers on K threads, each with its own session and copy of the
 * data, meeting at a barrier for every collective (docs/distributed.md). The MPI one of the
 * CLI is tested end to end under mpirun (scripts/mpi_test.sh).
 *
 *   dist_math:   K = 2 and K = 3 give the weights of K = 1 after 20 steps (relative
 *                difference max|a − b| / max|b| of every param below 1e-5), including uneven
 *                shards and a last batch smaller than K (an empty shard); every rank holds the
 *                same bits, and the replica check at each epoch end passes.
 *   dist_faults: another data set, another session seed, replicas drifting apart (caught by
 *                the epoch-end replica check) or a failing communicator end every rank with
 *                DN_ERR_COMM and a message naming the rank and what differs; a bad
 *                communicator is DN_ERR_ARG.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "helpers.h"

#define KMAX 3
#define SIDE 8
#define CLASSES 4
#define N_TRAIN 202 /* batch 25: eight full batches and one of 2, fewer than K = 3 */

/* ---------------------------------------------------------------- an in-process communicator */

typedef struct world {
    int size;
    pthread_barrier_t barrier;
    float *bufs[KMAX]; /* each rank's buffer, published for the collective under way */
    void *root_buf;
    float *sum;
    size_t sum_cap;
    int fail_rank;  /* this rank's collectives fail (-1: none) */
    int drift_rank; /* this rank's summed gradients come back slightly off (-1: none) */
} world;

typedef struct rank_ctx {
    world *w;
    int rank;
} rank_ctx;

/* Rank 0 sums in rank order into the shared buffer; everyone copies it: the same bits on
 * every rank, as MPI_Allreduce gives. */
static dn_status fake_allreduce(void *ctx, float *buf, size_t n, char *msg, size_t msg_size)
{
    rank_ctx *c = ctx;
    world *w = c->w;
    if (c->rank == w->fail_rank) {
        snprintf(msg, msg_size, "fake transport down");
        return DN_ERR_IO;
    }
    w->bufs[c->rank] = buf;
    pthread_barrier_wait(&w->barrier);
    if (c->rank == 0) {
        if (w->sum_cap < n) {
            free(w->sum);
            w->sum = malloc(n * sizeof *w->sum);
            w->sum_cap = n;
        }
        for (size_t i = 0; i < n; i++) {
            float s = w->bufs[0][i];
            for (int r = 1; r < w->size; r++)
                s += w->bufs[r][i];
            w->sum[i] = s;
        }
    }
    pthread_barrier_wait(&w->barrier);
    memcpy(buf, w->sum, n * sizeof *buf);
    if (c->rank == w->drift_rank && n > 2) /* a gradient, not the two statistics */
        buf[0] += 1e-3f;
    pthread_barrier_wait(&w->barrier);
    return DN_OK;
}

static dn_status fake_broadcast(void *ctx, void *buf, size_t bytes, int root, char *msg,
                                size_t msg_size)
{
    rank_ctx *c = ctx;
    world *w = c->w;
    if (c->rank == w->fail_rank) {
        snprintf(msg, msg_size, "fake transport down");
        return DN_ERR_IO;
    }
    if (c->rank == root)
        w->root_buf = buf;
    pthread_barrier_wait(&w->barrier);
    if (c->rank != root)
        memcpy(buf, w->root_buf, bytes);
    pthread_barrier_wait(&w->barrier);
    return DN_OK;
}

/* ---------------------------------------------------------------- one rank's training */

static const char *model_json =
    "{\"format\": \"dagnet/1\", \"name\": \"dist\","
    " \"inputs\": {\"image\": {\"shape\": [null, 1, 8, 8]}, \"label\": {\"shape\": [null], "
    "\"dtype\": \"int32\"}},"
    " \"nodes\": ["
    "  {\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\"], \"attrs\": {\"filters\": 4, "
    "\"kernel\": 3, \"pad\": 1}},"
    "  {\"name\": \"relu\", \"op\": \"ReLU\", \"inputs\": [\"conv\"]},"
    "  {\"name\": \"pool\", \"op\": \"MaxPool\", \"inputs\": [\"relu\"], \"attrs\": {\"kernel\": "
    "2}},"
    "  {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"pool\"], \"attrs\": {\"units\": 4}},"
    "  {\"name\": \"prob\", \"op\": \"Softmax\", \"inputs\": [\"fc\"]},"
    "  {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}],"
    " \"outputs\": [\"prob\"], \"loss\": \"loss\"}";

typedef struct job {
    const dn_model *m;
    rank_ctx ctx;
    dn_comm comm;
    int k;                  /* ranks (1: no communicator) */
    dn_optimizer optimizer; /* what to train with */
    uint64_t session_seed;
    int bad_label; /* this rank's data has label 0 changed (-1: none) */
    int steps;
    /* results */
    dn_status status;
    char msg[1024];
    int epochs;
    float *params; /* every param, concatenated in model order */
    int64_t n_params;
} job;

static dn_dataset *make_data(bool corrupt)
{
    int64_t per = SIDE * SIDE;
    float *img = dn_test_uniform(N_TRAIN * per, 17, 0, 1);
    int32_t *lab = malloc(N_TRAIN * sizeof *lab);
    for (int i = 0; i < N_TRAIN; i++) {
        lab[i] = (i * 7) % CLASSES;
        for (int j = 0; j < SIDE; j++) /* a bright row at a place that depends on the class */
            img[i * per + (2 * lab[i] % SIDE) * SIDE + j] += 2.0f;
    }
    if (corrupt)
        lab[0] = (lab[0] + 1) % CLASSES;
    dn_dataset *d = NULL;
    cr_assert_eq(dn_dataset_from_arrays(N_TRAIN, 1, SIDE, SIDE, img, lab, CLASSES, &d), DN_OK);
    free(img);
    free(lab);
    return d;
}

static void *run_rank(void *arg)
{
    job *j = arg;
    dn_session_options so = DN_SESSION_OPTIONS_DEFAULT;
    so.seed = j->session_seed;
    so.threads = 1;
    dn_session *s = NULL;
    dn_dataset *d = make_data(j->bad_label == j->ctx.rank);
    dn_trainer *t = NULL;
    j->status = dn_session_new(j->m, &so, &s);
    dn_train_options o = DN_TRAIN_OPTIONS_DEFAULT;
    o.optimizer = j->optimizer;
    o.lr = 0.01f;
    o.batch = 25;
    o.epochs = 10;
    o.seed = 3;
    o.bucket = 50; /* several buckets over the ~370 gradients */
    o.check_replicas = true;
    o.comm = j->k > 1 ? &j->comm : NULL;
    if (!j->status && (j->status = dn_trainer_new(s, &o, NULL, &t)))
        snprintf(j->msg, sizeof j->msg, "%s", dn_trainer_errmsg(t));
    for (int i = 0; !j->status && i < j->steps; i++)
        if ((j->status = dn_trainer_step(t, d, NULL)))
            snprintf(j->msg, sizeof j->msg, "%s", dn_trainer_errmsg(t));
    j->epochs = t ? dn_trainer_epoch(t) : 0;
    int np = dn_model_param_count(j->m);
    j->params = NULL;
    j->n_params = 0;
    for (int i = 0; !j->status && i < np; i++) {
        dn_tensor_info info;
        dn_view v;
        dn_model_param_info(j->m, i, &info);
        dn_session_param(s, info.name, &v);
        int64_t n = dn_test_view_numel(&v);
        j->params = realloc(j->params, (size_t)(j->n_params + n) * sizeof(float));
        memcpy(j->params + j->n_params, v.data, (size_t)n * sizeof(float));
        j->n_params += n;
    }
    dn_trainer_free(t);
    dn_dataset_free(d);
    dn_session_free(s);
    return NULL;
}

/* K ranks on K threads, each a copy of `proto` with its rank filled in. */
static void run_world(world *w, job *jobs, int k, const job *proto)
{
    memset(w, 0, sizeof *w);
    w->size = k;
    w->fail_rank = -1;
    w->drift_rank = -1;
    pthread_barrier_init(&w->barrier, NULL, (unsigned)k);
    for (int r = 0; r < k; r++) {
        jobs[r] = *proto;
        jobs[r].k = k;
        jobs[r].ctx = (rank_ctx){ w, r };
        jobs[r].comm = (dn_comm){ .ctx = &jobs[r].ctx,
                                  .rank = r,
                                  .size = k,
                                  .allreduce_sum = fake_allreduce,
                                  .broadcast = fake_broadcast };
    }
}

static void start_world(world *w, job *jobs, int k)
{
    pthread_t th[KMAX];
    for (int r = 0; r < k; r++)
        pthread_create(&th[r], NULL, run_rank, &jobs[r]);
    for (int r = 0; r < k; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&w->barrier);
    free(w->sum);
}

/* Per param tensor: max |a − b| / max |b|, the largest over the model's params. */
static double max_relative_difference(const dn_model *m, const float *a, const float *b)
{
    double worst = 0;
    int64_t at = 0;
    for (int i = 0; i < dn_model_param_count(m); i++) {
        dn_tensor_info info;
        dn_model_param_info(m, i, &info);
        int64_t n = 1;
        for (int d = 0; d < info.rank; d++)
            n *= info.shape[d];
        double diff = 0, scale = 0;
        for (int64_t j = 0; j < n; j++) {
            diff = fmax(diff, fabs((double)a[at + j] - (double)b[at + j]));
            scale = fmax(scale, fabs((double)b[at + j]));
        }
        worst = fmax(worst, diff / (scale > 0 ? scale : 1));
        at += n;
    }
    return worst;
}

static void same_maths(dn_optimizer optimizer)
{
    dn_model *m = dn_test_parse_model(model_json, "dist.json");
    job proto = {
        .m = m, .optimizer = optimizer, .session_seed = 11, .bad_label = -1, .steps = 20
    };
    world w1;
    job one[1];
    run_world(&w1, one, 1, &proto);
    start_world(&w1, one, 1);
    cr_assert_eq(one[0].status, DN_OK, "%s", one[0].msg);
    cr_assert_eq(one[0].epochs, 2); /* 20 steps of 9 per epoch: two epoch ends checked */
    for (int k = 2; k <= KMAX; k++) {
        world w;
        job jobs[KMAX];
        run_world(&w, jobs, k, &proto);
        start_world(&w, jobs, k);
        for (int r = 0; r < k; r++)
            cr_assert_eq(jobs[r].status, DN_OK, "K = %d rank %d: %s", k, r, jobs[r].msg);
        for (int r = 1; r < k; r++)
            dn_test_expect_same_bits(jobs[r].params, jobs[0].params, jobs[0].n_params,
                                     "params of rank r and rank 0");
        double rel = max_relative_difference(m, jobs[0].params, one[0].params);
        fprintf(stderr, "dist_math: %s K=%d vs K=1, 20 steps: max relative difference %.3g\n",
                optimizer == DN_ADAM ? "adam" : "momentum", k, rel);
        cr_expect_lt(rel, 1e-5, "K = %d: relative difference %g", k, rel);
        cr_expect_gt(rel, 0, "K = %d: bit-identical is suspicious (no split happened?)", k);
        for (int r = 0; r < k; r++)
            free(jobs[r].params);
    }
    free(one[0].params);
    dn_model_free(m);
}

Test(dist_math, momentum_k2_k3_equal_k1) { same_maths(DN_MOMENTUM); }
Test(dist_math, adam_k2_k3_equal_k1) { same_maths(DN_ADAM); }

/* ---------------------------------------------------------------- faults */

static void expect_all_fail(job *jobs, int k, const char *const *frags)
{
    for (int r = 0; r < k; r++) {
        dn_test_expect_status(jobs[r].status, DN_ERR_COMM, jobs[r].msg);
        dn_test_expect_msg(jobs[r].msg, NULL, frags);
    }
}

Test(dist_faults, other_data_on_rank_1)
{
    dn_model *m = dn_test_parse_model(model_json, "dist.json");
    job proto = { .m = m, .optimizer = DN_SGD, .session_seed = 11, .bad_label = 1, .steps = 3 };
    world w;
    job jobs[2];
    run_world(&w, jobs, 2, &proto);
    start_world(&w, jobs, 2);
    expect_all_fail(jobs, 2, FRAGS("at start-up", "rank 1: training data"));
    cr_expect_null(strstr(jobs[0].msg, "params"), "%s", jobs[0].msg);
    dn_model_free(m);
}

Test(dist_faults, other_session_seed_on_rank_2)
{
    dn_model *m = dn_test_parse_model(model_json, "dist.json");
    job proto = { .m = m, .optimizer = DN_SGD, .session_seed = 11, .bad_label = -1, .steps = 3 };
    world w;
    job jobs[3];
    run_world(&w, jobs, 3, &proto);
    jobs[2].session_seed = 12;
    start_world(&w, jobs, 3);
    expect_all_fail(jobs, 3, FRAGS("rank 2: params or optimiser state"));
    cr_expect_null(strstr(jobs[0].msg, "rank 1"), "%s", jobs[0].msg);
    dn_model_free(m);
}

/* A transport that hands rank 1 another sum: the replica check at the first epoch's end (9
 * steps) ends both ranks, naming rank 1's params. */
Test(dist_faults, replicas_drift)
{
    dn_model *m = dn_test_parse_model(model_json, "dist.json");
    job proto = { .m = m, .optimizer = DN_SGD, .session_seed = 11, .bad_label = -1, .steps = 20 };
    world w;
    job jobs[2];
    run_world(&w, jobs, 2, &proto);
    w.drift_rank = 1;
    start_world(&w, jobs, 2);
    expect_all_fail(jobs, 2, FRAGS("at the end of epoch 1", "rank 1: params or optimiser state"));
    cr_expect_eq(jobs[0].epochs, 1);
    dn_model_free(m);
}

Test(dist_faults, failing_transport)
{
    dn_model *m = dn_test_parse_model(model_json, "dist.json");
    job proto = { .m = m, .optimizer = DN_SGD, .session_seed = 11, .bad_label = -1, .steps = 3 };
    world w;
    job jobs[1];
    /* One rank of a world of two whose transport fails at once: no partner needed. */
    run_world(&w, jobs, 1, &proto);
    jobs[0].k = 2;
    jobs[0].comm.size = 2;
    w.fail_rank = 0;
    start_world(&w, jobs, 1);
    dn_test_expect_status(jobs[0].status, DN_ERR_COMM, jobs[0].msg);
    EXPECT_MSG(jobs[0].msg, "rank 0 of 2", "broadcast", "fake transport down");
    dn_model_free(m);
}

Test(dist_faults, bad_communicator)
{
    dn_model *m = dn_test_parse_model(model_json, "dist.json");
    dn_session *s = dn_test_session(m, NULL);
    dn_comm c = { .rank = 2, .size = 2, .allreduce_sum = fake_allreduce };
    dn_train_options o = DN_TRAIN_OPTIONS_DEFAULT;
    o.comm = &c;
    dn_trainer *t = NULL;
    dn_test_expect_status(dn_trainer_new(s, &o, NULL, &t), DN_ERR_ARG, dn_trainer_errmsg(t));
    EXPECT_MSG(dn_trainer_errmsg(t), "rank 2 of size 2", "broadcast NULL");
    cr_expect_str_eq(dn_status_name(DN_ERR_COMM), "communication between ranks failed");
    dn_trainer_free(t);
    /* A struct_size of 0.1's layout (without comm) is still accepted. */
    o.struct_size = offsetof(dn_train_options, comm);
    cr_assert_eq(dn_trainer_new(s, &o, NULL, &t), DN_OK, "%s", dn_trainer_errmsg(t));
    dn_trainer_free(t);
    dn_session_free(s);
    dn_model_free(m);
}
