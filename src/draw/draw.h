/*
 * draw.h — pictures of a model and its training: filter grids, feature maps, learning curves,
 * the computation graph and confusion matrices, as PNG or SVG files.
 *
 * The drawing layer sits beside the `dagnet` command: it uses the public API (dagnet.h) and
 * two Debian libraries, cairo (surfaces, lines, text, PNG and SVG output) and Graphviz's gvc
 * (graph layout and rendering), and nothing else of dagnet. It is a library of its own
 * (dagnet_draw) so that the core library does not depend on cairo.
 *
 *   tiles.c      filters (a Conv's weights [F, C, kh, kw]) and activations (a node's output
 *                [1, C, H, W] for one image): grids of tiles, each scaled to its own range
 *   plot.c       learning curves from the CSV logs of `dagnet train --log`
 *   graph.c      the computation graph laid out and rendered by Graphviz
 *   confusion.c  a confusion matrix as a heat map
 *   canvas.c     what they share: surfaces written atomically, text, colour maps, errors
 *
 * Errors: every fallible call returns a dn_status and fills `err` with a message that names
 * the file, node or field and says what was expected and found. Nothing prints or exits.
 * Output files are written under a temporary name, synced and renamed into place, so a
 * failed or interrupted call never leaves half a picture. The format follows the output
 * path's extension: .png or .svg (and .dot for the graph).
 *
 * Threads: calls on distinct handles may run on distinct threads, except dn_draw_graph,
 * which goes through Graphviz's global error hook and one Graphviz context kept for the
 * process (one graph at a time per process).
 */
#ifndef DN_DRAW_H
#define DN_DRAW_H

#include <stdbool.h>
#include <stdint.h>

#include "dagnet.h"

/* A failure's explanation, e.g.
 *   filters.png: node "relu1" is a ReLU, expected a Conv (Conv nodes: conv1, conv2) */
typedef struct dn_draw_err {
    char msg[1024];
} dn_draw_err;

typedef enum dn_draw_format { DN_DRAW_PNG = 0, DN_DRAW_SVG, DN_DRAW_DOT } dn_draw_format;

/* The format named by `path`'s extension (.png, .svg, and .dot when allow_dot), any case. */
dn_status dn_draw_format_of(const char *path, bool allow_dot, dn_draw_format *out,
                            dn_draw_err *err);

/* Pictures are at most this many pixels on a side (PNG), so that a large --scale fails with
 * a message rather than an allocation of gigabytes. */
#define DN_DRAW_MAX_SIDE 16384

/* ---------------------------------------------------------------- tiles */

typedef struct dn_draw_tiles {
    int scale;        /* screen pixels per weight or activation; 0: automatic (tiles of
                         about 40 pixels, the picture within 4096 pixels) */
    int columns;      /* tiles per row; 0: automatic (8 filters a row, as the seed's
                         filter_show; about a square for feature maps) */
    const char *note; /* a second caption line (e.g. "epoch 3"); NULL for none */
} dn_draw_tiles;

#define DN_DRAW_TILES_DEFAULT ((dn_draw_tiles){ .scale = 0, .columns = 0, .note = NULL })

/* Where the tiles went, in pixels of the picture (for callers that annotate it, and tests):
 * tile (row r, column c) has its top-left corner at (x + c·step_x, y + r·step_y), and its
 * value (i, j) covers the scale × scale square from (i·scale, j·scale) within the tile
 * (row i down, column j across). Filters: tile k of a one- or three-channel Conv is at row
 * k / cols, column k % cols; with other channel counts, row = filter, column = channel.
 * Feature maps: map k at row k / cols, column k % cols; the input image at
 * (image_x, image_y), same scale. */
typedef struct dn_draw_grid {
    int x, y, step_x, step_y, rows, cols, scale;
    int image_x, image_y;
    int width, height; /* the whole picture */
} dn_draw_grid;

/* The weights of Conv node `node` (NULL: the model's first Conv) as a grid, one tile per
 * filter. Each tile is scaled by its own minimum and maximum, as the seed's filter_show does
 * with matplotlib's gray_r: the minimum white, the maximum black, linear in between (a tile
 * whose weights are all equal is white). One input channel: one tile per filter. Three
 * channels: one RGB tile per filter (channel c → red, green, blue, not reversed: the
 * maximum is bright), scaled by the filter's range over its three channels. Other channel
 * counts: a row per filter, a tile per input channel. A caption names the node, its weight
 * param and shape. s holds the weights (trained or initialised); m is the model s runs.
 * `grid` (may be NULL) receives the layout. Errors: DN_ERR_ARG (no such node, not a Conv,
 * no Conv in the model, bad options, a picture over DN_DRAW_MAX_SIDE), DN_ERR_IO (the
 * file), DN_ERR_NOMEM. */
dn_status dn_draw_filters(dn_session *s, const dn_model *m, const char *node,
                          const dn_draw_tiles *o, const char *path, dn_draw_grid *grid,
                          dn_draw_err *err);

/* The feature maps node `node` computes for one image: `image` is float32 [C, H, W] or
 * [1, C, H, W] and is fed to graph input `input` (NULL: the model's only float input) as a
 * batch of one; the node's output must be [1, C', H', W'] (a map per channel). The input
 * image is drawn on the left (three channels in RGB, else the first in gray), then one tile
 * per channel. Each tile is scaled by its own range with the gray map: minimum black,
 * maximum white (a map that is all zero, a dead ReLU channel, is black). Runs a forward in
 * DN_INFER mode, so s's batch becomes 1. Errors as dn_draw_filters, DN_ERR_SHAPE for an image
 * or output of the wrong shape. `grid` (may be NULL) receives the layout, as for
 * dn_draw_filters. */
dn_status dn_draw_activations(dn_session *s, const dn_model *m, const char *node, const char *input,
                              const dn_view *image, const dn_draw_tiles *o, const char *path,
                              dn_draw_grid *grid, dn_draw_err *err);

/* ---------------------------------------------------------------- learning curves */

/* A training log as `dagnet train --log` writes it: a header line naming the columns, then a
 * row per epoch. Columns are found by name: "epoch" is required, and at least one of
 * train_loss, train_acc, val_acc, test_acc (accuracies in percent); others (lr, seconds)
 * are read and ignored; an optional "model" column holds the model's name. A missing
 * column's array is NULL. */
typedef struct dn_draw_log {
    char *path;  /* owned copies */
    char *label; /* the run's name in a legend: the file name without folder and ".csv" */
    char *model; /* the "model" column's value, or NULL */
    int n;       /* rows */
    double *epoch, *train_loss, *train_acc, *val_acc, *test_acc;
} dn_draw_log;

/* Read a log. Errors: DN_ERR_IO (cannot read), DN_ERR_PARSE (empty, no header, no rows, a
 * row whose field count differs from the header's, a field that is not a finite number;
 * the message names the file, line and column), DN_ERR_NOMEM. On failure *out is zeroed. */
dn_status dn_draw_log_read(const char *path, dn_draw_log *out, dn_draw_err *err);
void dn_draw_log_free(dn_draw_log *log);

/* An axis: from lo to hi in ticks of `step`, lo and hi multiples of step, at most
 * max_ticks + 1 ticks, covering [min, max] (a degenerate range is widened). Steps are
 * 1, 2 or 5 times a power of ten. */
typedef struct dn_draw_axis {
    double lo, hi, step;
} dn_draw_axis;

dn_draw_axis dn_draw_nice_axis(double min, double max, int max_ticks);

/* Learning curves of n logs on one picture: two panels against the epoch, the loss (left)
 * and the accuracies in percent (right: train solid, validation dotted, test dashed), a
 * colour per log (dn_draw_run_color), axes with ticks, a legend, and a title: `title`, or
 * else the logs' model names, or else their file names. All logs share the axes, so several
 * runs compare. Errors: those of dn_draw_log_read (naming the log), DN_ERR_ARG (no logs,
 * n > 12), DN_ERR_IO (the output). */
dn_status dn_draw_plot(const char *const *logs, int n, const char *title, const char *path,
                       dn_draw_err *err);

/* The colour of run i (0-based) in the plot, 8-bit sRGB. */
void dn_draw_run_color(int i, unsigned char rgb[3]);

/* ---------------------------------------------------------------- graph */

/* The computation graph laid out top to bottom by Graphviz's dot: one box per node with its
 * name, op, output shape and parameter count; graph inputs as green ellipses with their
 * shape; params as yellow notes with their shape; edges from what a node reads to it. The
 * nodes the loss depends on (what backward visits) and the edges between them are drawn in
 * red, the loss node with a double border. .svg and .png are rendered by Graphviz, .dot is
 * the laid-out graph in Graphviz's language. *boxes (when not NULL) receives the number of
 * graph nodes drawn: ops + inputs + params. Errors: DN_ERR_ARG, DN_ERR_IO, DN_ERR_NOMEM, or
 * a Graphviz failure (its message quoted). */
dn_status dn_draw_graph(const dn_model *m, const char *path, int *boxes, dn_draw_err *err);

/* ---------------------------------------------------------------- confusion matrix */

/* Fashion-MNIST's ten class names (static storage), index = label. */
extern const char *const dn_draw_fashion_mnist_classes[10];

/* counts: classes × classes, row = true label, column = predicted (dn_eval_result's layout).
 * A heat map: each cell coloured by its share of its row (white 0 → dark blue 1; the
 * diagonal is each class's recall) with the count written in it; rows and columns labelled
 * by `names` (NULL: the numbers 0 … classes − 1), each row's recall on the right, `title` on
 * top (NULL: none). Errors: DN_ERR_ARG (classes outside [1, 1000], a negative count),
 * DN_ERR_IO. */
dn_status dn_draw_confusion(const int64_t *counts, int classes, const char *const *names,
                            const char *title, const char *path, dn_draw_err *err);

/* The fill colour of a cell holding `share` ∈ [0, 1] of its row, 8-bit sRGB. Darker (the sum
 * of the channels strictly smaller) as share grows. */
void dn_draw_heat_color(double share, unsigned char rgb[3]);

#endif
