/*
 * main.c — the `dagnet` command: usage, option parsing, dispatch (see cli.h).
 *
 * Exit status: 0 success, 1 a failure reported by the library (its message on stderr),
 * 2 a usage error, 130 training interrupted by Ctrl-C (after saving a checkpoint).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

static int usage(void)
{
    fputs(
        "usage:\n"
        "  dagnet summary MODEL.json\n"
        "  dagnet infer MODEL.json [--weights W.safetensors] [--seed N] [--threads T]\n"
        "               --feed NAME=FILE.npy ... --out OUT.npy [--fetch TENSOR]\n"
        "  dagnet grad  MODEL.json [--weights W.safetensors] [--seed N] [--threads T]\n"
        "               --feed NAME=FILE.npy ... --out G.safetensors [--tensors]\n"
        "  dagnet check MODEL.json [--batch B] [--seed N] [--threads T]\n"
        "  dagnet train MODEL.json [--data DIR] [--epochs E] [--batch B] [--optimizer NAME]\n"
        "               [--lr LR] [--momentum M] [--weight-decay WD] [--schedule S] [--seed N]\n"
        "               [--threads T] [--val N] [--limit N] [--weights W] [--save W.safetensors]\n"
        "               [--checkpoint DIR] [--resume CKPT] [--log FILE.csv] [--filters DIR]\n"
        "               [--bucket FLOATS] [--check-replicas]\n"
        "  mpirun -np K dagnet train MODEL.json ...   data parallel, --batch the global batch\n"
        "  dagnet eval  MODEL.json --weights W.safetensors [--data DIR] [--batch B]\n"
        "               [--confusion C.png|.svg] [--classes fashion-mnist|numbers|A,B,...]\n"
        "  dagnet bench MODEL.json [--batch B] [--threads T] [--iters N] [--warmup W]\n"
        "               [--mode train|infer] [--json] [--seed N]\n"
        "  dagnet filters MODEL.json [--weights W] [--node CONV] [--scale S] --out F.png|.svg\n"
        "  dagnet activations MODEL.json [--weights W] --image FILE[:INDEX] --node NAME\n"
        "               [--scale S] --out A.png|.svg\n"
        "  dagnet plot  LOG.csv [LOG2.csv ...] [--title T] --out CURVE.png|.svg\n"
        "  dagnet graph MODEL.json --out G.svg|.png|.dot\n"
        "  dagnet import MODEL.onnx --out MODEL.json --weights W.safetensors\n"
        "               [--loss softmax-cross-entropy --label NAME]\n"
        "  dagnet export MODEL.json [--weights W.safetensors] --out MODEL.onnx [--with-loss]\n"
        "\n"
        "infer writes the model's first output (or --fetch TENSOR) as .npy.\n"
        "grad runs one forward and backward pass in training mode and writes the loss under\n"
        "\"loss\" and each param's gradient under \"grad.<param>\"; --tensors adds the params\n"
        "(\"param.<name>\") and every computed node output (\"act.<node>\").\n"
        "check runs one forward and backward pass on a synthetic batch (default 2).\n"
        "train and eval read the four MNIST-format files in --data (default " DEFAULT_DATA_DIR
        ").\n"
        "Optimizers: sgd, momentum, nesterov, adagrad, rmsprop, adam. Schedules: constant,\n"
        "step:N[:GAMMA] (decay every N epochs), cosine. Defaults come from the model's \"train\"\n"
        "section, then from dagnet (adam, lr 0.001, batch 100, 3 epochs); flags override both.\n"
        "Without --weights, params are initialised by their init from --seed (default 0).\n"
        "bench times training steps (--mode train, the default: gather, forward, backward,\n"
        "optimiser update) or inference forwards (--mode infer) on a synthetic batch, sized as\n"
        "for train: W warm-up steps (default 5), N timed steps (default about a second's worth,\n"
        "at least 10), then N profiled steps for a per-node table with BLIS's sgemm speed as the\n"
        "reference; --json prints one JSON object instead of the tables.\n"
        "Pictures (docs/pictures.md): filters draws a Conv's weights (default the first Conv),\n"
        "a tile per filter scaled to its own range; train --filters DIR writes that picture\n"
        "at initialisation and after each epoch; activations draws a node's feature maps for\n"
        "one image of an IDX or .npy file; plot draws the CSV logs of train --log; graph lays\n"
        "out the model with Graphviz; eval --confusion draws the confusion matrix (class\n"
        "names: --classes, or Fashion-MNIST's when --data names a fashion folder).\n"
        "Under mpirun -np K (docs/distributed.md) train splits every --batch across the K\n"
        "processes and averages their gradients with MPI; rank 0 prints, logs and saves.\n"
        "--bucket sets the floats per allreduce, --check-replicas compares the ranks' params\n"
        "at every epoch's end.\n"
        "import reads an ONNX model (docs/onnx.md) and writes it as a dagnet model and its\n"
        "weights; export writes ONNX (opset 13, batch dimension \"N\"). Every command that\n"
        "reads MODEL.json also reads MODEL.onnx, with the weights inside it.\n",
        stderr);
    return 2;
}

/* ------------------------------------------------------------------ options */

static bool parse_count(const char *text, long long lo, long long hi, long long *out)
{
    char *end;
    if (!text || !*text)
        return false;
    long long v = strtoll(text, &end, 10);
    if (*end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_real(const char *text, double lo, double *out)
{
    char *end;
    if (!text || !*text)
        return false;
    double v = strtod(text, &end);
    if (*end || !(v >= lo))
        return false;
    *out = v;
    return true;
}

static bool parse_feed(const char *v, options *o)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1] || o->n_feeds == MAX_FEEDS) {
        fprintf(stderr, "dagnet: --feed expects NAME=FILE.npy (at most %d), found \"%s\"\n",
                MAX_FEEDS, v);
        return false;
    }
    o->feed_name[o->n_feeds] = strndup(v, (size_t)(eq - v));
    o->feed_path[o->n_feeds++] = eq + 1;
    return true;
}

/* One flag with a value; false when the flag is unknown or the value bad. */
static bool parse_flag(const char *a, const char *v, options *o)
{
    static const struct {
        const char *flag;
        size_t offset;
    } strings[] = {
        { "--weights", offsetof(options, weights) },
        { "--out", offsetof(options, out) },
        { "--fetch", offsetof(options, fetch) },
        { "--data", offsetof(options, data) },
        { "--optimizer", offsetof(options, optimizer) },
        { "--schedule", offsetof(options, schedule) },
        { "--save", offsetof(options, save) },
        { "--checkpoint", offsetof(options, checkpoint) },
        { "--resume", offsetof(options, resume) },
        { "--log", offsetof(options, log) },
        { "--node", offsetof(options, node) },
        { "--image", offsetof(options, image) },
        { "--filters", offsetof(options, filters) },
        { "--confusion", offsetof(options, confusion) },
        { "--classes", offsetof(options, classes) },
        { "--title", offsetof(options, title) },
        { "--loss", offsetof(options, loss) },
        { "--label", offsetof(options, label) },
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (strcmp(a, strings[i].flag) == 0) {
            *(const char **)((char *)o + strings[i].offset) = v;
            return true;
        }
    long long n;
    if (strcmp(a, "--feed") == 0)
        return parse_feed(v, o);
    if (strcmp(a, "--seed") == 0 && parse_count(v, 0, (long long)9e18, &n))
        return o->seed = (unsigned long long)n, o->seed_set = true;
    if (strcmp(a, "--threads") == 0 && parse_count(v, 1, 1024, &n))
        return o->threads = (int)n, true;
    if (strcmp(a, "--batch") == 0 && parse_count(v, 1, 10000000, &n))
        return o->batch = (int)n, true;
    if (strcmp(a, "--epochs") == 0 && parse_count(v, 0, 1000000, &n))
        return o->epochs = (int)n, true;
    if (strcmp(a, "--val") == 0 && parse_count(v, 0, (long long)1e12, &n))
        return o->val = n, true;
    if (strcmp(a, "--limit") == 0 && parse_count(v, 1, (long long)1e12, &n))
        return o->limit = n, true;
    if (strcmp(a, "--bucket") == 0 && parse_count(v, 1, (long long)1e12, &n))
        return o->bucket = n, true;
    if (strcmp(a, "--iters") == 0 && parse_count(v, 1, 1000000, &n))
        return o->iters = (int)n, true;
    if (strcmp(a, "--warmup") == 0 && parse_count(v, 0, 1000000, &n))
        return o->warmup = (int)n, true;
    if (strcmp(a, "--scale") == 0 && parse_count(v, 1, 64, &n))
        return o->scale = (int)n, true;
    if (strcmp(a, "--mode") == 0 && (strcmp(v, "train") == 0 || strcmp(v, "infer") == 0))
        return o->mode = v, true;
    if (strcmp(a, "--lr") == 0)
        return parse_real(v, 1e-30, &o->lr);
    if (strcmp(a, "--weight-decay") == 0)
        return parse_real(v, 0, &o->weight_decay);
    if (strcmp(a, "--momentum") == 0)
        return parse_real(v, 0, &o->momentum) && o->momentum < 1;
    return false;
}

/* A flag without a value; false when `a` is not one. */
static bool parse_switch(const char *a, options *o)
{
    if (strcmp(a, "--check-replicas") == 0)
        return o->check_replicas = true;
    if (strcmp(a, "--tensors") == 0)
        return o->tensors = true;
    if (strcmp(a, "--json") == 0)
        return o->json = true;
    if (strcmp(a, "--with-loss") == 0)
        return o->with_loss = true;
    return false;
}

/* Flags after the model path (for `plot`, more log files may come before and between them).
 * Returns false on a usage error (already reported). */
static bool parse_options(int argc, char **argv, bool takes_logs, options *o)
{
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (takes_logs && strncmp(a, "--", 2) != 0) {
            if (o->n_logs == MAX_LOGS) {
                fprintf(stderr, "dagnet: plot takes at most %d logs\n", MAX_LOGS);
                return false;
            }
            o->logs[o->n_logs++] = a;
            continue;
        }
        if (parse_switch(a, o))
            continue;
        if (!v) {
            fprintf(stderr, "dagnet: %s needs a value\n", a);
            return false;
        }
        i++;
        if (!parse_flag(a, v, o)) {
            fprintf(stderr, "dagnet: unknown option or bad value: %s %s\n", a, v);
            return false;
        }
    }
    return true;
}

static void free_options(options *o)
{
    for (int i = 0; i < o->n_feeds; i++)
        free((char *)o->feed_name[i]);
}

/* ------------------------------------------------------------------ dispatch */

/* A dagnet model, or an ONNX one (by its name) with the weights inside it. */
static dn_status load_model(const char *path, dn_model **m)
{
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".onnx") == 0)
        return dn_model_load_onnx(path, NULL, m);
    return dn_model_load(path, m);
}

typedef struct command {
    const char *name;
    int (*run)(const dn_model *m, const options *o);
    bool needs_out;
    bool takes_logs; /* CSV logs instead of a model: run gets m = NULL */
    bool own_model;  /* reads argv[2] itself: run gets m = NULL */
} command;

static int run_summary(const dn_model *m, const options *o)
{
    (void)o;
    return cmd_summary(m);
}

static const command commands[] = {
    { "summary", run_summary, false, false, false },
    { "infer", cmd_infer, true, false, false },
    { "grad", cmd_grad, true, false, false },
    { "check", cmd_check, false, false, false },
    { "train", cmd_train, false, false, false },
    { "eval", cmd_eval, false, false, false },
    { "bench", cmd_bench, false, false, false },
    { "filters", cmd_filters, true, false, false },
    { "activations", cmd_activations, true, false, false },
    { "plot", cmd_plot, true, true, false },
    { "graph", cmd_graph, true, false, false },
    { "import", cmd_import, true, false, true },
    { "export", cmd_export, true, false, false },
};

int main(int argc, char **argv)
{
    cli_choose_wait_policy(argv);
    if (argc < 3)
        return usage();
    const command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            cmd = &commands[i];
    if (!cmd)
        return usage();
    options o = {
        .model = argv[2], .epochs = -1, .lr = -1, .weight_decay = -1, .momentum = -1, .warmup = -1
    };
    if (cmd->takes_logs && strncmp(argv[2], "--", 2) == 0) {
        fprintf(stderr, "dagnet: %s needs at least one LOG.csv before its options\n", cmd->name);
        return 2;
    }
    if (cmd->takes_logs)
        o.logs[o.n_logs++] = argv[2];
    if (!parse_options(argc, argv, cmd->takes_logs, &o)) {
        free_options(&o);
        return 2;
    }
    if (cmd->needs_out && !o.out) {
        fprintf(stderr, "dagnet: %s needs --out\n", cmd->name);
        free_options(&o);
        return 2;
    }
    dn_model *m = NULL;
    int rc = cmd->takes_logs || cmd->own_model ? cmd->run(NULL, &o)
             : load_model(o.model, &m)         ? fail_model(m)
                                               : cmd->run(m, &o);
    dn_model_free(m);
    free_options(&o);
    return rc;
}
