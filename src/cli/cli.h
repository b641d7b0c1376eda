/*
 * cli.h — what the `dagnet` command's files share: the parsed options and small helpers.
 * The command uses the public API (include/dagnet.h) only.
 *
 *   main.c     help, version, dispatch (nothing includes its internals)
 *   args.[ch]  the one option parser, driven by each command's table of options
 *   commands.c the commands: operands, options (kind, range, default, help), examples
 *   help.c     the overview, each command's help, --version, the man page, bash completion
 *   common.c   what the commands share: failure reports, sessions, clock, synthetic data
 *   inspect.c  summary, infer, grad, check
 *   train.c    train, eval
 *   bench.c    bench
 *   import.c   import (ONNX → dagnet model and weights)
 *   export.c   export (dagnet model and weights → ONNX)
 *   draw.c     filters, activations, plot, graph, and the pictures of train --filters and
 *              eval --confusion (through the drawing layer, draw/draw.h)
 *   wait.c     how OpenMP threads wait (GOMP_SPINCOUNT) when the user has not set it
 *   mpi_comm.c the MPI communicator of `mpirun -np K dagnet train` (built when CMake finds
 *              MPI); comm_none.c stands in for it otherwise
 */
#ifndef DN_CLI_H
#define DN_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "dagnet.h"

#define MAX_FEEDS 16
#define MAX_LOGS 12 /* `plot`'s CSV files */
#define DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"

typedef struct options {
    const char *model;
    const char *weights;
    const char *out;
    const char *fetch;
    const char *feed_name[MAX_FEEDS];
    const char *feed_path[MAX_FEEDS];
    int n_feeds;
    unsigned long long seed;
    bool seed_set;
    int threads;
    int batch; /* 0: not given */
    bool tensors;
    /* train and eval */
    const char *data;
    const char *optimizer;
    const char *schedule;
    const char *mirror; /* "on" or "off" (NULL: not given) */
    int shift;          /* pixels (-1: not given) */
    const char *save;
    const char *checkpoint;
    const char *resume;
    const char *log;
    int epochs;                        /* -1: not given */
    double lr, weight_decay, momentum; /* < 0: not given */
    long long val;                     /* examples held out for validation */
    long long limit;                   /* train on the first N examples only (0: all) */
    bool check_replicas;               /* train under mpirun: compare the ranks' params */
    long long bucket;                  /* train under mpirun: floats per allreduce (0: default) */
    /* bench */
    int iters;        /* timed steps (0: about a second's worth) */
    int warmup;       /* -1: not given */
    const char *mode; /* "train" or "infer" (NULL: train) */
    bool json;
    /* pictures */
    const char *node;           /* filters, activations (and train --filters) */
    int scale;                  /* pixels per weight or activation (0: automatic) */
    const char *image;          /* activations: FILE[:INDEX] */
    const char *filters;        /* train: a folder for the filter pictures */
    const char *confusion;      /* eval: the confusion matrix picture */
    const char *classes;        /* eval: class names, "fashion-mnist", "numbers" or "a,b,c,..." */
    const char *title;          /* plot */
    const char *loss;           /* import: add this loss */
    const char *label;          /* import: the loss's label input */
    bool with_loss;             /* export: keep the loss and its labels */
    const char *logs[MAX_LOGS]; /* plot: the CSV files (the first is argv[2]) */
    int n_logs;
} options;

int fail_model(const dn_model *m);
int fail_session(const dn_session *s);
/* A session with o's seed and threads, weights loaded and feeds set. 0 or an exit code. */
int open_session(const dn_model *m, const options *o, dn_session **s);
double now_ms(void);

/* Synthetic data for `check` and `bench` (common.c). The class count the loss compares
 * labels against (0 without a loss); a small LCG reproducible from --seed, its next 31 bits
 * and a float in [0, 1) with 24 random bits. */
int64_t loss_classes(const dn_model *m);
uint64_t synthetic_start(unsigned long long seed);
uint32_t synthetic_next(uint64_t *state);
float synthetic_uniform(uint64_t *state);

int cmd_summary(const dn_model *m);
int cmd_infer(const dn_model *m, const options *o);
int cmd_grad(const dn_model *m, const options *o);
int cmd_check(const dn_model *m, const options *o);
int cmd_train(const dn_model *m, const options *o);
int cmd_eval(const dn_model *m, const options *o);
int cmd_bench(const dn_model *m, const options *o);
int cmd_filters(const dn_model *m, const options *o);
int cmd_activations(const dn_model *m, const options *o);
int cmd_plot(const dn_model *m, const options *o); /* m is NULL: plot reads logs, no model */
int cmd_graph(const dn_model *m, const options *o);
int cmd_import(const dn_model *m, const options *o); /* m is NULL: import reads ONNX itself */
int cmd_export(const dn_model *m, const options *o);

/* Data-parallel training (docs/distributed.md). Under mpirun (the launcher's environment says
 * so) cli_comm_start starts MPI and fills *c with this process's rank and size and, when the
 * size is above 1, a dn_comm over MPI_COMM_WORLD; otherwise rank 0 of 1 and comm NULL. 0 or
 * an exit code (the message printed). cli_comm_end ends MPI: normally when every rank ended
 * together (rc 0, or a failure all ranks saw: `collective`), else by MPI_Abort, so that a
 * rank failing on its own never leaves the others waiting in a collective. */
typedef struct cli_comm {
    int rank, size;
    const dn_comm *comm;
} cli_comm;
int cli_comm_start(cli_comm *c);
void cli_comm_end(cli_comm *c, int rc, bool collective);
/* Under a launcher of more than one process: OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_SIZE
 * (0 when none is set). */
int cli_launcher_size(void);

/* train --filters DIR: the filter picture DIR/filters-<tag>.png of s's current weights, with
 * `note` under the caption. 0 or an exit code (the failure reported). */
int write_filters_picture(const dn_model *m, dn_session *s, const options *o, const char *tag,
                          const char *note);
/* eval --confusion FILE: the confusion matrix of r as a heat map, class names from --classes
 * or, for Fashion-MNIST's folder (the default data, or a --data path naming "fashion"),
 * Fashion-MNIST's. 0 or an exit code (1 failure, 2 a bad --classes). */
int write_confusion_picture(const dn_model *m, const options *o, const dn_eval_result *r);

/* Sets GOMP_SPINCOUNT and executes the command again, unless the user set OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT (wait.c); returns only when it did not re-execute. */
void cli_choose_wait_policy(char **argv);
/* "GOMP_SPINCOUNT=10000 (set by dagnet)", "OMP_WAIT_POLICY=passive (yours)", ... into buf. */
void cli_describe_wait_policy(char *buf, size_t size);

#endif
