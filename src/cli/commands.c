/*
 * commands.c — every `dagnet` command as the parser, the help, the man page and the bash
 * completion see it (args.h): its operands, its own options (each once: value kind, range or
 * choices, default, help, completion), what it does and examples. Adding an option here adds
 * it everywhere; the command's code reads it from `options` (cli.h).
 */
#include <math.h>

#include "cli/args.h"

#define OFF(field) offsetof(options, field)
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define BIG 1e12 /* no upper bound worth stating */
#define SEED_MAX 9e18

/* Options several commands share, each with its own help where the meaning differs. */
#define OPT_WEIGHTS(text)                                                                        \
    {                                                                                            \
        .name = "weights", .kind = ARG_TEXT, .metavar = "W.safetensors", .offset = OFF(weights), \
        .help = text, .complete = "safetensors"                                                  \
    }
#define OPT_SEED(text, dflt)                                                            \
    {                                                                                   \
        .name = "seed", .kind = ARG_SEED, .metavar = "N", .offset = OFF(seed), .lo = 0, \
        .hi = SEED_MAX, .def = dflt, .help = text                                       \
    }
#define OPT_THREADS                                                                          \
    {                                                                                        \
        .name = "threads", .kind = ARG_INT, .metavar = "T", .offset = OFF(threads), .lo = 1, \
        .hi = 1024, .def = "OMP_NUM_THREADS, else every core",                               \
        .help = "OpenMP and BLIS threads of the session"                                     \
    }
#define OPT_FEED                                                                      \
    {                                                                                 \
        .name = "feed", .kind = ARG_FEED, .metavar = "NAME=FILE.npy",                 \
        .help = "the model input NAME from a .npy file; once per input (at most 16)", \
        .complete = "npy"                                                             \
    }
#define OPT_OUT(meta, text, exts)                                                           \
    {                                                                                       \
        .name = "out", .kind = ARG_TEXT, .metavar = meta, .offset = OFF(out), .help = text, \
        .complete = exts, .required = true                                                  \
    }
#define OPT_BATCH(dflt, text)                                                            \
    {                                                                                    \
        .name = "batch", .kind = ARG_INT, .metavar = "B", .offset = OFF(batch), .lo = 1, \
        .hi = 10000000, .def = dflt, .help = text                                        \
    }
#define OPT_DATA(text)                                                           \
    {                                                                            \
        .name = "data", .kind = ARG_TEXT, .metavar = "DIR", .offset = OFF(data), \
        .def = DEFAULT_DATA_DIR, .help = text, .complete = "/"                   \
    }
#define OPT_NODE(text, dflt)                                                                   \
    {                                                                                          \
        .name = "node", .kind = ARG_TEXT, .metavar = "NAME", .offset = OFF(node), .def = dflt, \
        .help = text                                                                           \
    }
#define OPT_SCALE                                                                                  \
    {                                                                                              \
        .name = "scale", .kind = ARG_INT, .metavar = "S", .offset = OFF(scale), .lo = 1, .hi = 64, \
        .def = "tiles of about 40 pixels", .help = "pixels per weight or activation"               \
    }

#define MODEL_OPERAND "MODEL.json", "json|onnx", 1, 1

/* ------------------------------------------------------------------ summary */

static const char *const summary_examples[] = { "dagnet summary examples/models/alexnet.json",
                                                "dagnet summary resnet.onnx", NULL };

/* ------------------------------------------------------------------ infer */

static const opt_spec infer_opts[] = {
    OPT_OUT("OUT.npy", "where to write the output tensor", "npy"),
    OPT_FEED,
    OPT_WEIGHTS("the trained params (without it, params are initialised from --seed)"),
    { .name = "fetch",
      .kind = ARG_TEXT,
      .metavar = "TENSOR",
      .offset = OFF(fetch),
      .def = "the model's first output",
      .help = "the tensor to write: any input, param or node output" },
    OPT_SEED("the seed of the params' initialisation, without --weights", "0"),
    OPT_THREADS,
};
static const char *const infer_examples[] = {
    "dagnet infer examples/models/simple_convnet.json --weights sc.safetensors "
    "--feed image=images.npy --out prob.npy",
    "dagnet infer lenet5.json --weights W.safetensors --feed image=x.npy --fetch relu1 "
    "--out relu1.npy",
    NULL
};

/* ------------------------------------------------------------------ grad */

static const opt_spec grad_opts[] = {
    OPT_OUT("G.safetensors", "where to write the loss and the gradients", "safetensors"),
    OPT_FEED,
    OPT_WEIGHTS("the params to differentiate at (without it, initialised from --seed)"),
    { .name = "tensors",
      .kind = ARG_SWITCH,
      .offset = OFF(tensors),
      .help = "also write the params (\"param.<name>\") and every computed node output "
              "(\"act.<node>\")" },
    OPT_SEED("the seed of the params' initialisation and of dropout", "0"),
    OPT_THREADS,
};
static const char *const grad_examples[] = {
    "dagnet grad examples/models/lenet5.json --seed 1 --feed image=images.npy "
    "--feed label=labels.npy --out grads.safetensors",
    "dagnet grad lenet5.json --weights W.safetensors --feed image=x.npy --feed label=y.npy "
    "--out g.safetensors --tensors",
    NULL
};

/* ------------------------------------------------------------------ check */

static const opt_spec check_opts[] = {
    OPT_BATCH("2", "examples in the synthetic batch"),
    OPT_WEIGHTS("params to start from (without it, initialised from --seed)"),
    OPT_SEED("the seed of the initialisation and of the synthetic data", "0"),
    OPT_THREADS,
};
static const char *const check_examples[] = { "dagnet check examples/models/lenet5.json --batch 8",
                                              "dagnet check model.onnx", NULL };

/* ------------------------------------------------------------------ train */

static const opt_spec train_opts[] = {
    OPT_DATA("a folder with the four MNIST-format files (train-images-idx3-ubyte, ..., gzipped "
             "or not)"),
    { .name = "epochs",
      .kind = ARG_INT,
      .metavar = "E",
      .offset = OFF(epochs),
      .lo = 0,
      .hi = 1000000,
      .def = "the model's \"train\" section, else 3",
      .help = "passes over the training set" },
    OPT_BATCH("the model's \"train\" section, else 100",
              "examples per step (under mpirun the global batch, split across the ranks)"),
    { .name = "optimizer",
      .kind = ARG_CHOICE,
      .metavar = "NAME",
      .offset = OFF(optimizer),
      .choices = "sgd|momentum|nesterov|adagrad|rmsprop|adam",
      .def = "the model's \"train\" section, else adam",
      .help = "the update rule" },
    { .name = "lr",
      .kind = ARG_REAL,
      .metavar = "LR",
      .offset = OFF(lr),
      .lo = 0,
      .hi = INFINITY,
      .lo_open = true,
      .def = "the model's \"train\" section, else 0.001",
      .help = "the learning rate" },
    { .name = "momentum",
      .kind = ARG_REAL,
      .metavar = "M",
      .offset = OFF(momentum),
      .lo = 0,
      .hi = 1,
      .hi_open = true,
      .def = "the model's \"train\" section, else 0.9",
      .help = "momentum of the momentum and nesterov optimizers" },
    { .name = "weight-decay",
      .kind = ARG_REAL,
      .metavar = "WD",
      .offset = OFF(weight_decay),
      .lo = 0,
      .hi = INFINITY,
      .def = "the model's \"train\" section, else 0",
      .help = "L2 penalty, added to the gradient as PyTorch does" },
    { .name = "schedule",
      .kind = ARG_TEXT,
      .metavar = "S",
      .offset = OFF(schedule),
      .def = "the model's \"train\" section, else constant",
      .help = "the learning rate over epochs: constant, step:N[:GAMMA] (times GAMMA, default "
              "0.1, every N epochs) or cosine" },
    { .name = "mirror",
      .kind = ARG_CHOICE,
      .metavar = "ON",
      .offset = OFF(mirror),
      .choices = "on|off",
      .def = "the model's \"train\" section, else off",
      .help = "flip each training image left to right with probability 1/2 (a fresh draw per "
              "epoch)" },
    { .name = "shift",
      .kind = ARG_INT,
      .metavar = "P",
      .offset = OFF(shift),
      .lo = 0,
      .hi = 65535,
      .def = "the model's \"train\" section, else 0",
      .help = "move each training image by up to P pixels in each direction, zeros moved in "
              "(PyTorch's RandomCrop with padding P; a fresh draw per epoch)" },
    OPT_SEED("the seed of the initialisation, the shuffling and dropout",
             "the model's \"train\" section, else 0"),
    OPT_THREADS,
    { .name = "val",
      .kind = ARG_LONG,
      .metavar = "N",
      .offset = OFF(val),
      .lo = 0,
      .hi = BIG,
      .def = "0",
      .help = "hold out the last N training examples for a validation accuracy per epoch" },
    { .name = "limit",
      .kind = ARG_LONG,
      .metavar = "N",
      .offset = OFF(limit),
      .lo = 1,
      .hi = BIG,
      .def = "every example",
      .help = "train on the first N examples only" },
    OPT_WEIGHTS("params to start from instead of the initialisation"),
    { .name = "save",
      .kind = ARG_TEXT,
      .metavar = "W.safetensors",
      .offset = OFF(save),
      .help = "write the trained weights here",
      .complete = "safetensors" },
    { .name = "checkpoint",
      .kind = ARG_TEXT,
      .metavar = "DIR",
      .offset = OFF(checkpoint),
      .def = "the current folder, on Ctrl-C only",
      .help = "write a checkpoint after every epoch into DIR (created if missing)",
      .complete = "/" },
    { .name = "resume",
      .kind = ARG_TEXT,
      .metavar = "CKPT",
      .offset = OFF(resume),
      .help = "continue from a checkpoint, bit for bit",
      .complete = "ckpt" },
    { .name = "log",
      .kind = ARG_TEXT,
      .metavar = "FILE.csv",
      .offset = OFF(log),
      .help = "a row per epoch: epoch,train_loss,train_acc[,val_acc],test_acc,lr,seconds,model",
      .complete = "csv" },
    { .name = "filters",
      .kind = ARG_TEXT,
      .metavar = "DIR",
      .offset = OFF(filters),
      .help = "draw a Conv's filters into DIR at initialisation and after each epoch",
      .complete = "/" },
    OPT_NODE("with --filters: the Conv node to draw", "the first Conv"),
    OPT_SCALE,
    { .name = "bucket",
      .kind = ARG_LONG,
      .metavar = "FLOATS",
      .offset = OFF(bucket),
      .lo = 1,
      .hi = BIG,
      .def = "the library's",
      .help = "under mpirun: floats per gradient allreduce" },
    { .name = "check-replicas",
      .kind = ARG_SWITCH,
      .offset = OFF(check_replicas),
      .help = "under mpirun: compare the ranks' params and optimiser state after every epoch" },
};
static const char *const train_examples[] = {
    "dagnet train examples/models/lenet5.json --epochs 3 --save lenet5.safetensors",
    "dagnet train examples/models/simple_convnet.json --optimizer sgd --lr 0.01 --schedule "
    "step:2 --val 5000 --log sc.csv --checkpoint ckpt",
    "mpirun -np 2 dagnet train examples/models/lenet5.json --batch 200 --threads 1", NULL
};

/* ------------------------------------------------------------------ eval */

static const opt_spec eval_opts[] = {
    { .name = "weights",
      .kind = ARG_TEXT,
      .metavar = "W.safetensors",
      .offset = OFF(weights),
      .help = "the trained params",
      .complete = "safetensors",
      .required = true },
    OPT_DATA("a folder with the MNIST-format test files (t10k-images-idx3-ubyte, ...)"),
    OPT_BATCH("100", "examples per forward pass"),
    { .name = "confusion",
      .kind = ARG_TEXT,
      .metavar = "C.png|.svg",
      .offset = OFF(confusion),
      .help = "draw the confusion matrix as a heat map",
      .complete = "png|svg" },
    { .name = "classes",
      .kind = ARG_TEXT,
      .metavar = "NAMES",
      .offset = OFF(classes),
      .def = "Fashion-MNIST's when --data names a fashion folder, else numbers",
      .help = "the class names of --confusion: fashion-mnist, numbers, or A,B,... (one per "
              "class)" },
    OPT_THREADS,
};
static const char *const eval_examples[] = {
    "dagnet eval examples/models/simple_convnet.json --weights sc.safetensors",
    "dagnet eval lenet5.json --weights lenet5.safetensors --data ~/mnist --classes numbers "
    "--confusion cm.png",
    NULL
};

/* ------------------------------------------------------------------ bench */

static const opt_spec bench_opts[] = {
    OPT_BATCH("the model's \"train\" batch, else 100", "examples per step"),
    { .name = "mode",
      .kind = ARG_CHOICE,
      .metavar = "MODE",
      .offset = OFF(mode),
      .choices = "train|infer",
      .def = "train",
      .help = "time training steps (gather, forward, backward, update) or inference forwards" },
    { .name = "iters",
      .kind = ARG_INT,
      .metavar = "N",
      .offset = OFF(iters),
      .lo = 1,
      .hi = 1000000,
      .def = "about a second's worth, at least 10",
      .help = "timed steps (then as many profiled ones)" },
    { .name = "warmup",
      .kind = ARG_INT,
      .metavar = "W",
      .offset = OFF(warmup),
      .lo = 0,
      .hi = 1000000,
      .def = "5",
      .help = "untimed steps first" },
    { .name = "json",
      .kind = ARG_SWITCH,
      .offset = OFF(json),
      .help = "print one JSON object instead of the tables" },
    OPT_SEED("the seed of the initialisation and of the synthetic data", "0"),
    OPT_THREADS,
};
static const char *const bench_examples[] = {
    "dagnet bench examples/models/lenet5.json --batch 100 --threads 2",
    "dagnet bench examples/models/lenet5.json --mode infer --json > lenet5-infer.json", NULL
};

/* ------------------------------------------------------------------ filters */

static const opt_spec filters_opts[] = {
    OPT_OUT("F.png|.svg", "the picture to write", "png|svg"),
    OPT_WEIGHTS("the params to draw (without it, as initialised from --seed)"),
    OPT_NODE("the Conv node whose filters to draw", "the first Conv"),
    OPT_SCALE,
    OPT_SEED("the seed of the initialisation, without --weights", "0"),
    OPT_THREADS,
};
static const char *const filters_examples[] = {
    "dagnet filters examples/models/simple_convnet.json --weights sc.safetensors --out "
    "filters.png",
    "dagnet filters examples/models/alexnet.json --node conv1 --scale 6 --out alexnet.svg", NULL
};

/* ------------------------------------------------------------------ activations */

static const opt_spec activations_opts[] = {
    OPT_OUT("A.png|.svg", "the picture to write", "png|svg"),
    { .name = "image",
      .kind = ARG_TEXT,
      .metavar = "FILE[:INDEX]",
      .offset = OFF(image),
      .help = "image INDEX (default 0) of an IDX file (raw or gzip) or a .npy array",
      .complete = "gz|npy|idx3-ubyte",
      .required = true },
    { .name = "node",
      .kind = ARG_TEXT,
      .metavar = "NAME",
      .offset = OFF(node),
      .help = "the node whose feature maps to draw",
      .required = true },
    OPT_WEIGHTS("the params (without it, as initialised from --seed)"),
    OPT_SCALE,
    OPT_SEED("the seed of the initialisation, without --weights", "0"),
    OPT_THREADS,
};
static const char *const activations_examples[] = {
    "dagnet activations examples/models/simple_convnet.json --weights sc.safetensors --image "
    "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz:0 --node relu1 --out act.png",
    NULL
};

/* ------------------------------------------------------------------ plot */

static const opt_spec plot_opts[] = {
    OPT_OUT("CURVE.png|.svg", "the picture to write", "png|svg"),
    { .name = "title",
      .kind = ARG_TEXT,
      .metavar = "T",
      .offset = OFF(title),
      .def = "the models' names",
      .help = "the plot's title" },
};
static const char *const plot_examples[] = {
    "dagnet plot sc.csv --out curve.png",
    "dagnet plot sc.csv lenet5.csv --title \"SimpleConvNet vs LeNet-5\" --out compare.svg", NULL
};

/* ------------------------------------------------------------------ graph */

static const opt_spec graph_opts[] = {
    OPT_OUT("G.svg|.png|.dot", "the picture (or Graphviz source) to write", "svg|png|dot"),
};
static const char *const graph_examples[] = {
    "dagnet graph examples/models/lenet5.json --out lenet5.svg",
    "dagnet graph model.onnx --out model.dot", NULL
};

/* ------------------------------------------------------------------ import */

static const opt_spec import_opts[] = {
    OPT_OUT("MODEL.json", "the dagnet model to write", "json"),
    { .name = "weights",
      .kind = ARG_TEXT,
      .metavar = "W.safetensors",
      .offset = OFF(weights),
      .help = "where to write the ONNX initializers as weights",
      .complete = "safetensors",
      .required = true },
    { .name = "loss",
      .kind = ARG_CHOICE,
      .metavar = "LOSS",
      .offset = OFF(loss),
      .choices = "softmax-cross-entropy",
      .help = "add this loss on the first output (on a final Softmax's input), with --label" },
    { .name = "label",
      .kind = ARG_TEXT,
      .metavar = "NAME",
      .offset = OFF(label),
      .help = "with --loss: the name of the int32 label input [N] it adds" },
};
static const char *const import_examples[] = {
    "dagnet import resnet.onnx --out resnet.json --weights resnet.safetensors",
    "dagnet import net.onnx --out net.json --weights net.safetensors --loss "
    "softmax-cross-entropy --label label",
    NULL
};

/* ------------------------------------------------------------------ export */

static const opt_spec export_opts[] = {
    OPT_OUT("MODEL.onnx", "the ONNX file to write", "onnx"),
    OPT_WEIGHTS("the params to write (without it, as initialised from --seed)"),
    { .name = "with-loss",
      .kind = ARG_SWITCH,
      .offset = OFF(with_loss),
      .help = "keep the loss and its label input" },
    OPT_SEED("the seed of the initialisation, without --weights", "0"),
    OPT_THREADS,
};
static const char *const export_examples[] = {
    "dagnet export examples/models/lenet5.json --weights lenet5.safetensors --out lenet5.onnx",
    "dagnet export lenet5.json --weights lenet5.safetensors --out train.onnx --with-loss", NULL
};

/* ------------------------------------------------------------------ the table */

static int run_summary(const dn_model *m, const options *o)
{
    (void)o;
    return cmd_summary(m);
}

#define OPTS(a) a, COUNT(a)

const command_spec cli_commands[] = {
    { "summary", MODEL_OPERAND, "inputs, nodes, output shapes, params and FLOPs of a model",
      "Prints the model's inputs, then every node with its op, output shape, params and forward "
      "FLOPs per sample, and the totals.",
      NULL, 0, summary_examples, run_summary, false },
    { "infer", MODEL_OPERAND, "run a model forward and write an output as .npy",
      "Runs the model forward in inference mode on the --feed inputs and writes its first "
      "output, or the --fetch tensor, as a .npy file.",
      OPTS(infer_opts), infer_examples, cmd_infer, false },
    { "grad", MODEL_OPERAND, "one forward and backward pass: the loss and every gradient",
      "Runs one forward and backward pass in training mode on the --feed inputs and writes the "
      "loss under \"loss\" and each param's gradient under \"grad.<param>\" as safetensors.",
      OPTS(grad_opts), grad_examples, cmd_grad, false },
    { "check", MODEL_OPERAND, "a forward and backward pass on a synthetic batch",
      "Runs one forward pass (and, with a loss, one backward pass) on a synthetic batch "
      "(images uniform in [0, 1), random labels) and prints their times and the loss: a quick "
      "test that a model loads, plans and runs.",
      OPTS(check_opts), check_examples, cmd_check, false },
    { "train", MODEL_OPERAND, "train on an MNIST-format data set",
      "Trains the model on the four MNIST-format files of --data. Every option left out comes "
      "from the model's optional \"train\" section, then from dagnet's defaults. Each epoch "
      "prints the training loss and accuracy, the validation (--val) and test accuracy and its "
      "time, appends a row to --log and writes a checkpoint into --checkpoint. Ctrl-C stops at "
      "the next step and saves a checkpoint that --resume continues bit for bit.\n\n"
      "Under mpirun -np K the training is data parallel (docs/distributed.md): --batch is the "
      "global batch, each rank trains its share, and rank 0 prints, logs and saves.",
      OPTS(train_opts), train_examples, cmd_train, false },
    { "eval", MODEL_OPERAND, "test accuracy, loss, per-class accuracy and confusion matrix",
      "Evaluates trained weights on the test files of --data: accuracy, loss, accuracy per "
      "class and the confusion matrix; --confusion draws the matrix.",
      OPTS(eval_opts), eval_examples, cmd_eval, false },
    { "bench", MODEL_OPERAND, "how fast a model trains or infers, node by node",
      "Times training steps (or inference forwards) on a synthetic batch: --warmup steps, then "
      "--iters timed steps (median, quartiles, extremes, images/s), then as many profiled steps "
      "for a table of each node's time and GFLOP/s next to BLIS's own sgemm speed, and the "
      "memory held.",
      OPTS(bench_opts), bench_examples, cmd_bench, false },
    { "filters", MODEL_OPERAND, "draw a Conv's filters",
      "Draws a Conv node's weights as a picture, a tile per filter, each scaled to its own "
      "range (docs/pictures.md).",
      OPTS(filters_opts), filters_examples, cmd_filters, false },
    { "activations", MODEL_OPERAND, "draw a node's feature maps for one image",
      "Runs one image through the model and draws the feature maps of --node, a tile per "
      "channel (docs/pictures.md).",
      OPTS(activations_opts), activations_examples, cmd_activations, false },
    { "plot", "LOG.csv [LOG.csv ...]", "csv", 1, MAX_LOGS, "draw learning curves from train logs",
      "Draws the loss and accuracy curves of up to 12 CSV logs written by train --log.",
      OPTS(plot_opts), plot_examples, cmd_plot, true },
    { "graph", MODEL_OPERAND, "draw the model's graph with Graphviz",
      "Lays out the model's nodes, inputs and params with Graphviz, as SVG, PNG or the dot "
      "source, by --out's extension.",
      OPTS(graph_opts), graph_examples, cmd_graph, false },
    { "import", "MODEL.onnx", "onnx", 1, 1, "convert an ONNX model to a dagnet model and weights",
      "Reads an ONNX model (opsets 7 to 17; docs/onnx.md) and writes it as a dagnet model file "
      "and its initializers as safetensors weights.",
      OPTS(import_opts), import_examples, cmd_import, true },
    { "export", MODEL_OPERAND, "write a model and its weights as ONNX",
      "Writes the model with its weights as ONNX (opset 13, batch dimension \"N\"); the loss "
      "is left out unless --with-loss.",
      OPTS(export_opts), export_examples, cmd_export, false },
};
const int cli_command_count = COUNT(cli_commands);

const char cli_tagline[] = "train and run convolutional networks described as JSON graphs";

const char cli_notes[] =
    "Every command that reads MODEL.json also reads MODEL.onnx, with the weights inside it. "
    "Options and operands may come in any order; --name=VALUE equals --name VALUE; -- ends the "
    "options. A repeated option takes its last value, except --feed, which accumulates (one per "
    "input).";
