/*
 * train.c — `dagnet train` and `dagnet eval`.
 *
 * train: options from the model's "train" section, overridden by flags; data from an
 * MNIST-format folder; every epoch prints train loss and accuracy, validation and test
 * accuracy and its time (a progress bar on a terminal, plain lines in a log), appends to the
 * --log CSV and writes a checkpoint into --checkpoint DIR. Ctrl-C stops at the next
 * mini-batch and saves a checkpoint that --resume continues from. --filters DIR draws the
 * first Conv's filters (or --node's) at initialisation and after each epoch (draw.c).
 *
 * The log's columns: epoch,train_loss,train_acc[,val_acc],test_acc,lr,seconds,model
 * (accuracies in percent, model the model's name with commas and line breaks replaced).
 *
 * Before any data is loaded, the --save and --log files' directories and the --checkpoint
 * directory must take a new file (a probe created and removed): an unwritable path fails at
 * once, naming the path and the system's reason, not after the training it would have kept.
 * A step that diverges (a non-finite loss or gradient) stops the run with exit code 1: no log
 * row for that epoch (the CSV holds finished epochs only), no --save weights (those of the
 * last good step are finite but are what sent the loss to infinity), and the checkpoints of
 * the finished epochs are left as they were.
 *
 * Under `mpirun -np K` (K > 1, built with MPI: mpi_comm.c) training is data parallel
 * (docs/distributed.md): --batch is the global batch, every rank loads the same model and
 * data and trains its shard of each batch, and rank 0 alone prints (the others' stdout goes to
 * /dev/null; errors still reach stderr on every rank), evaluates, logs, draws and saves. All
 * ranks --resume from the same checkpoint file. Ctrl-C is left to mpirun (it ends every rank;
 * the checkpoints of finished epochs stay intact, being written atomically).
 * --check-replicas compares the ranks' params and optimiser state at every epoch's end.
 *
 * eval: test accuracy, loss, per-class accuracy and the confusion matrix; --confusion FILE
 * draws the matrix as a heat map (draw.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ------------------------------------------------------------------ options */

/* Indexed by dn_optimizer. */
static const char *const optimizer_names[] = { "sgd",     "momentum", "nesterov",
                                               "adagrad", "rmsprop",  "adam" };

static bool parse_optimizer(const char *name, dn_optimizer *out)
{
    for (int i = 0; i <= DN_ADAM; i++)
        if (strcmp(name, optimizer_names[i]) == 0) {
            *out = (dn_optimizer)i;
            return true;
        }
    return false;
}

/* "constant", "cosine", "step:N" or "step:N:GAMMA". */
static bool parse_schedule(const char *text, dn_train_options *t)
{
    if (strcmp(text, "constant") == 0 || strcmp(text, "cosine") == 0) {
        t->schedule = strcmp(text, "cosine") == 0 ? DN_LR_COSINE : DN_LR_CONSTANT;
        return true;
    }
    if (strncmp(text, "step:", 5) != 0)
        return false;
    char *end;
    long n = strtol(text + 5, &end, 10);
    if (end == text + 5 || n < 1 || n > 1000000)
        return false;
    t->schedule = DN_LR_STEP;
    t->step_size = (int)n;
    if (*end == '\0')
        return true;
    if (*end != ':')
        return false;
    double g = strtod(end + 1, &end);
    if (*end || !(g > 0 && g <= 1))
        return false;
    t->gamma = (float)g;
    return true;
}

static bool train_options(const dn_model *m, const options *o, dn_train_options *t)
{
    dn_model_train_options(m, t);
    if (o->epochs >= 0)
        t->epochs = o->epochs;
    if (o->batch)
        t->batch = o->batch;
    if (o->lr > 0)
        t->lr = (float)o->lr;
    if (o->weight_decay >= 0)
        t->weight_decay = (float)o->weight_decay;
    if (o->momentum >= 0)
        t->momentum = (float)o->momentum;
    if (o->seed_set)
        t->seed = o->seed;
    if (o->mirror)
        t->mirror = strcmp(o->mirror, "on") == 0;
    if (o->shift >= 0)
        t->shift = o->shift;
    if (o->optimizer && !parse_optimizer(o->optimizer, &t->optimizer)) {
        fprintf(
            stderr,
            "dagnet: unknown optimizer \"%s\" (sgd, momentum, nesterov, adagrad, rmsprop, adam)\n",
            o->optimizer);
        return false;
    }
    if (o->schedule && !parse_schedule(o->schedule, t)) {
        fprintf(stderr,
                "dagnet train: --schedule: expected constant, step:N[:GAMMA] (N from 1 to "
                "1000000, GAMMA in (0, 1]) or cosine, found '%s'\n",
                o->schedule);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ output paths */

/* Whether a file can be created in `dir`: a probe file made (O_EXCL) and removed, so that an
 * unwritable --save, --log or --checkpoint is reported before training rather than after it. */
static bool probe_dir(const char *flag, const char *path, const char *dir)
{
    char probe[4096 + 64];
    snprintf(probe, sizeof probe, "%s/.dagnet-probe.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "dagnet: %s %s: cannot create a file in %s: %s\n", flag, path, dir,
                strerror(errno));
        return false;
    }
    close(fd);
    unlink(probe);
    return true;
}

/* --save and --log: the file's directory takes new files (they are written under a temporary
 * name and renamed), and the file, if it exists, is not a directory. */
static bool file_writable(const char *flag, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "dagnet: %s %s: is a directory\n", flag, path);
        return false;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash[slash == dir] = '\0'; /* "/x" → "/" */
    return probe_dir(flag, path, dir);
}

/* Every output path of `dagnet train` checked before any data is loaded; --checkpoint DIR is
 * created if missing, as saving it would. */
static bool outputs_writable(const options *o)
{
    if (o->save && !file_writable("--save", o->save))
        return false;
    if (o->log && !file_writable("--log", o->log))
        return false;
    if (o->checkpoint) {
        if (mkdir(o->checkpoint, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "dagnet: --checkpoint %s: cannot create it: %s\n", o->checkpoint,
                    strerror(errno));
            return false;
        }
        return probe_dir("--checkpoint", o->checkpoint, o->checkpoint);
    }
    return true;
}

/* ------------------------------------------------------------------ data */

static int load_data(const options *o, dn_dataset **train, dn_dataset **val, dn_dataset **test)
{
    const char *dir = o->data ? o->data : DEFAULT_DATA_DIR;
    *val = NULL;
    if (dn_dataset_load_dir(dir, true, train) || dn_dataset_load_dir(dir, false, test)) {
        const dn_dataset *bad = *test ? *test : *train;
        fprintf(stderr, "dagnet: %s\n", dn_dataset_errmsg(bad));
        if (!o->data)
            fprintf(stderr, "dagnet: the default data set is Debian's dataset-fashion-mnist "
                            "(apt-get install dataset-fashion-mnist), or give --data DIR\n");
        return 1;
    }
    int64_t n = dn_dataset_count(*train);
    if (o->limit && o->limit < n) {
        dn_dataset *rest = NULL;
        if (dn_dataset_split(*train, n - o->limit, &rest)) {
            fprintf(stderr, "dagnet: %s\n", dn_dataset_errmsg(*train));
            return 1;
        }
        dn_dataset_free(rest);
    }
    if (o->val && dn_dataset_split(*train, o->val, val)) {
        fprintf(stderr, "dagnet: --val %lld: %s\n", o->val, dn_dataset_errmsg(*train));
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ reporting */

typedef struct epoch_row {
    int epoch;
    double train_loss, train_acc, val_acc, test_acc, lr, seconds;
} epoch_row;

/* The rows a resumed run inherits: the earlier log's lines after its header (caller frees). */
static char *earlier_rows(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    char line[1024];
    bool header = true;
    while (out && fgets(line, sizeof line, f)) {
        if (!header)
            fputs(line, out);
        header = false;
    }
    fclose(f);
    if (out)
        fclose(out);
    return text;
}

/* The whole CSV, built in memory and saved with dn_file_write (a locked temporary name,
 * fsync, rename): a crash never leaves half a log nor a pile of temporary files. `earlier`
 * holds the rows of the run this one resumed. */
static int write_log(const char *path, const char *earlier, const epoch_row *rows, int n,
                     bool has_val, const char *model)
{
    char name[256];
    snprintf(name, sizeof name, "%s", model);
    for (char *p = name; *p; p++)
        if (*p == ',' || *p == '\n' || *p == '\r' || *p == '"')
            *p = '_';
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) {
        fprintf(stderr, "dagnet: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(f, "epoch,train_loss,train_acc,%stest_acc,lr,seconds,model\n",
            has_val ? "val_acc," : "");
    if (earlier)
        fputs(earlier, f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%d,%.6f,%.4f,", rows[i].epoch, rows[i].train_loss, rows[i].train_acc);
        if (has_val)
            fprintf(f, "%.4f,", rows[i].val_acc);
        fprintf(f, "%.4f,%.6g,%.2f,%s\n", rows[i].test_acc, rows[i].lr, rows[i].seconds, name);
    }
    bool ok = fclose(f) == 0;
    char msg[1024] = "out of memory";
    ok = ok && dn_file_write(path, text, size, msg, sizeof msg) == DN_OK;
    free(text);
    if (!ok) {
        fprintf(stderr, "dagnet: %s\n", msg);
        return 1;
    }
    return 0;
}

static void show_progress(const dn_step_stats *st, int epochs, double ms, bool tty)
{
    double rate = ms > 0 ? (double)st->seen / (ms / 1e3) : 0;
    double loss = st->seen ? st->loss_sum / (double)st->seen : 0;
    double acc = st->seen ? 100.0 * (double)st->correct / (double)st->seen : 0;
    if (tty) {
        int width = 30, done = (int)(width * st->step / (st->steps ? st->steps : 1));
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < done ? '=' : i == done ? '>' : ' ';
        bar[width] = '\0';
        printf("\repoch %d/%d [%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s ", st->epoch + 1,
               epochs, bar, (long long)st->step, (long long)st->steps, loss, acc, rate);
    } else {
        printf("epoch %d/%d step %lld/%lld loss %.4f acc %.2f%% %.0f img/s\n", st->epoch + 1,
               epochs, (long long)st->step, (long long)st->steps, loss, acc, rate);
    }
    fflush(stdout);
}

static double accuracy(dn_session *s, const dn_dataset *d, int batch, bool *ok)
{
    dn_eval_result r;
    if (dn_session_evaluate(s, d, NULL, batch, &r)) {
        fprintf(stderr, "dagnet: %s\n", dn_session_errmsg(s));
        *ok = false;
        return 0;
    }
    double acc = r.count ? 100.0 * (double)r.correct / (double)r.count : 0;
    dn_eval_result_free(&r);
    return acc;
}

/* ------------------------------------------------------------------ train */

typedef struct run {
    const dn_model *m;
    const options *o;
    dn_train_options t;
    dn_session *s;
    dn_trainer *tr;
    dn_dataset *train, *val, *test;
    epoch_row rows[1024];
    int n_rows;
    char *earlier_log;    /* rows of the run a --resume continues */
    bool diverged;        /* a step met a non-finite loss or gradient */
    bool collective;      /* the failure was seen by every rank alike (no MPI_Abort needed) */
    cli_comm cc;          /* data parallel: this rank and the communicator */
    char last_ckpt[4096]; /* the last checkpoint written, or "" */
} run;

static int save_checkpoint(run *r, const char *name)
{
    char path[4096];
    const char *dir = r->o->checkpoint ? r->o->checkpoint : ".";
    if (r->o->checkpoint && mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dagnet: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (dn_trainer_save_checkpoint(r->tr, path)) {
        fprintf(stderr, "dagnet: %s\n", dn_trainer_errmsg(r->tr));
        return 1;
    }
    printf("checkpoint: %s\n", path);
    snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", path);
    return 0;
}

/* One epoch; returns 0, an exit code, or 130 when interrupted (checkpoint saved). */
static int train_epoch(run *r)
{
    bool tty = isatty(STDOUT_FILENO);
    double start = now_ms(), last_shown = 0;
    dn_step_stats st = { 0 };
    int64_t report_every = 0;
    while (!st.epoch_done) {
        if (interrupted) {
            printf("\ninterrupted: saving a checkpoint\n");
            return save_checkpoint(r, "interrupted.ckpt") ? 1 : 130;
        }
        dn_status status = dn_trainer_step(r->tr, r->train, &st);
        if (status) {
            /* A diverged epoch gets no log row: the CSV holds complete epochs only. */
            r->diverged = status == DN_ERR_DIVERGED;
            /* Every rank sees the same summed gradient and the same fingerprint comparison. */
            r->collective = r->diverged ||
                            (status == DN_ERR_COMM && strstr(dn_trainer_errmsg(r->tr), "disagree"));
            fprintf(stderr, "\ndagnet: %s\n", dn_trainer_errmsg(r->tr));
            return 1;
        }
        double now = now_ms();
        if (!report_every)
            report_every = st.steps >= 10 ? st.steps / 10 : 1;
        if ((tty && (now - last_shown > 200 || st.epoch_done)) ||
            (!tty && (st.step % report_every == 0) && !st.epoch_done)) {
            show_progress(&st, r->t.epochs, now - start, tty);
            last_shown = now;
        }
    }
    if (tty)
        printf("\n");
    if (r->o->check_replicas && r->cc.size > 1)
        printf("replicas: params and optimiser state identical on %d ranks after epoch %d\n",
               r->cc.size, st.epoch + 1);
    if (r->cc.rank > 0)
        return 0; /* rank 0 alone evaluates, logs, draws and saves */
    bool ok = true;
    epoch_row *row = &r->rows[r->n_rows < 1024 ? r->n_rows++ : 1023];
    *row = (epoch_row){ .epoch = st.epoch + 1,
                        .lr = st.lr,
                        .train_loss = st.loss_sum / (double)st.seen,
                        .train_acc = 100.0 * (double)st.correct / (double)st.seen };
    double train_ms = now_ms() - start;
    if (r->val)
        row->val_acc = accuracy(r->s, r->val, r->t.batch, &ok);
    row->test_acc = accuracy(r->s, r->test, r->t.batch, &ok);
    row->seconds = (now_ms() - start) / 1e3;
    if (!ok)
        return 1;
    printf("epoch %d/%d: train loss %.4f, train acc %.2f%%", row->epoch, r->t.epochs,
           row->train_loss, row->train_acc);
    if (r->val)
        printf(", val acc %.2f%%", row->val_acc);
    printf(", test acc %.2f%%, %.1f s (%.0f img/s)\n", row->test_acc, row->seconds,
           (double)st.seen / (train_ms / 1e3));
    fflush(stdout);
    if (r->o->log && write_log(r->o->log, r->earlier_log, r->rows, r->n_rows, r->val != NULL,
                               dn_model_name(r->m)))
        return 1;
    if (r->o->filters) {
        char tag[32], note[128];
        snprintf(tag, sizeof tag, "epoch-%d", row->epoch);
        snprintf(note, sizeof note, "after epoch %d: test accuracy %.2f%%", row->epoch,
                 row->test_acc);
        if (write_filters_picture(r->m, r->s, r->o, tag, note))
            return 1;
    }
    if (r->o->checkpoint) {
        char name[64];
        snprintf(name, sizeof name, "epoch-%d.ckpt", row->epoch);
        return save_checkpoint(r, name);
    }
    return 0;
}

static int train_run(run *rp)
{
    run r = *rp;
    const dn_model *m = r.m;
    const options *o = r.o;
    bool lead = r.cc.rank == 0;
    if (!train_options(m, o, &r.t))
        return 2;
    r.t.comm = r.cc.comm;
    r.t.bucket = o->bucket;
    r.t.check_replicas = o->check_replicas;
    if (lead && !outputs_writable(o))
        return 1;
    int rc = open_session(m, o, &r.s);
    if (!rc)
        rc = load_data(o, &r.train, &r.val, &r.test);
    if (!rc && dn_trainer_new(r.s, &r.t, NULL, &r.tr)) {
        fprintf(stderr, "dagnet: %s\n", dn_trainer_errmsg(r.tr));
        rc = 1;
    }
    if (!rc && o->resume && dn_trainer_load_checkpoint(r.tr, o->resume)) {
        fprintf(stderr, "dagnet: %s\n", dn_trainer_errmsg(r.tr));
        rc = 1;
    }
    if (!rc && o->resume && o->log && lead)
        r.earlier_log = earlier_rows(o->log);
    if (!rc && o->filters && lead) {
        /* the starting point: the initialisation, or the epoch a resumed run stopped at */
        int done = dn_trainer_epoch(r.tr);
        char tag[32], note[128];
        if (done) {
            snprintf(tag, sizeof tag, "epoch-%d", done);
            snprintf(note, sizeof note, "resumed after epoch %d", done);
        } else {
            snprintf(tag, sizeof tag, "init");
            snprintf(note, sizeof note, "at initialisation (seed %llu)", o->seed);
        }
        rc = write_filters_picture(m, r.s, o, tag, note);
    }
    if (!rc) {
        char shifted[48] = "";
        if (r.t.shift)
            snprintf(shifted, sizeof shifted, ", shifted by up to %d px", r.t.shift);
        printf("training %s: %lld images (%s), %s lr %g, batch %d, %d epoch%s, seed %llu%s%s%s\n",
               dn_model_file(m), (long long)dn_dataset_count(r.train),
               o->data ? o->data : DEFAULT_DATA_DIR, optimizer_names[r.t.optimizer], (double)r.t.lr,
               r.t.batch, r.t.epochs, r.t.epochs == 1 ? "" : "s", (unsigned long long)r.t.seed,
               r.t.mirror ? ", mirrored" : "", shifted, o->resume ? ", resumed" : "");
        if (r.cc.size > 1)
            printf("data parallel: %d ranks, global batch %d (shards of %d or %d examples)\n",
                   r.cc.size, r.t.batch, r.t.batch / r.cc.size,
                   (r.t.batch + r.cc.size - 1) / r.cc.size);
        else
            signal(SIGINT, on_sigint); /* under mpirun, mpirun handles Ctrl-C */
    }
    while (!rc && dn_trainer_epoch(r.tr) < r.t.epochs)
        rc = train_epoch(&r);
    if (r.diverged) {
        /* --save writes nothing: the last good weights are finite but are those that sent the
         * loss to infinity; the checkpoints of the finished epochs stay as they were. */
        if (o->save)
            fprintf(stderr, "dagnet: %s not written: training diverged\n", o->save);
        if (r.last_ckpt[0])
            fprintf(stderr, "dagnet: the last good checkpoint is %s\n", r.last_ckpt);
    }
    if (!rc && r.n_rows)
        printf("test accuracy: %.2f%%\n", r.rows[r.n_rows - 1].test_acc);
    if (!rc && o->save && lead) {
        if (dn_session_save_weights(r.s, o->save))
            rc = fail_session(r.s);
        else
            printf("weights: %s\n", o->save);
    }
    free(r.earlier_log);
    dn_trainer_free(r.tr);
    dn_dataset_free(r.train);
    dn_dataset_free(r.val);
    dn_dataset_free(r.test);
    dn_session_free(r.s);
    rp->collective = r.collective;
    return rc;
}

int cmd_train(const dn_model *m, const options *o)
{
    run *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "dagnet: out of memory\n");
        return 1;
    }
    *r = (run){ .m = m, .o = o };
    int rc = cli_comm_start(&r->cc);
    if (rc) {
        free(r);
        return rc;
    }
    /* Rank 0 alone prints; the others keep stderr for their failures. */
    if (r->cc.rank > 0 && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "dagnet: rank %d: cannot silence stdout\n", r->cc.rank);
    rc = train_run(r);
    cli_comm_end(&r->cc, rc, rc == 0 || r->collective);
    free(r);
    return rc;
}

/* ------------------------------------------------------------------ eval */

static void print_confusion(const dn_eval_result *r)
{
    printf("\nclass  accuracy   count\n");
    for (int c = 0; c < r->classes; c++) {
        int64_t row = 0;
        for (int p = 0; p < r->classes; p++)
            row += r->confusion[(int64_t)c * r->classes + p];
        if (row)
            printf("%5d  %7.2f%%  %6lld\n", c,
                   100.0 * (double)r->confusion[(int64_t)c * r->classes + c] / (double)row,
                   (long long)row);
    }
    printf("\nconfusion matrix (row: true class, column: predicted)\n     ");
    for (int p = 0; p < r->classes; p++)
        printf("%6d", p);
    printf("\n");
    for (int c = 0; c < r->classes; c++) {
        printf("%5d", c);
        for (int p = 0; p < r->classes; p++)
            printf("%6lld", (long long)r->confusion[(int64_t)c * r->classes + p]);
        printf("\n");
    }
}

int cmd_eval(const dn_model *m, const options *o)
{
    dn_session *s = NULL;
    dn_dataset *test = NULL;
    const char *dir = o->data ? o->data : DEFAULT_DATA_DIR;
    int rc = open_session(m, o, &s);
    if (!rc && dn_dataset_load_dir(dir, false, &test)) {
        fprintf(stderr, "dagnet: %s\n", dn_dataset_errmsg(test));
        rc = 1;
    }
    dn_eval_result r;
    if (!rc && dn_session_evaluate(s, test, NULL, o->batch ? o->batch : 100, &r))
        rc = fail_session(s);
    if (!rc) {
        printf("test accuracy: %.2f%% (%lld of %lld), loss %.4f\n",
               100.0 * (double)r.correct / (double)r.count, (long long)r.correct,
               (long long)r.count, r.loss);
        print_confusion(&r);
        if (o->confusion)
            rc = write_confusion_picture(m, o, &r);
        dn_eval_result_free(&r);
    }
    dn_dataset_free(test);
    dn_session_free(s);
    return rc;
}
