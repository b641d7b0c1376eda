/*
 * tiles.c — filters and feature maps as grids of tiles (draw.h: dn_draw_filters,
 * dn_draw_activations).
 *
 * A tile shows one h × w plane (a filter's weights for one input channel, or one channel of
 * a node's output) as h × w squares of `scale` pixels. Each tile is scaled on its own, as
 * matplotlib's imshow does for each subplot of the seed's filter_show:
 *     t = (v − min) / (max − min)  over the tile's finite values (t = 0 when max == min)
 *     filters:      level = round(255 · (1 − t))  (gray_r: the largest weight black)
 *     feature maps: level = round(255 · t)        (gray: the strongest response white)
 * so within a tile the level is a monotonic function of the value, which the tests check.
 * Three-channel filters are one RGB tile, t per channel with min and max over all three.
 * Squares are filled without antialiasing on whole pixels, so a PNG holds the exact levels.
 *
 * Shapes: Conv weights [F, C, kh, kw]; feature maps [1, C, H, W] for an image [C, H, W].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw/canvas.h"

#define PAD 10          /* around everything */
#define TITLE_SIZE 14.0 /* caption line 1 */
#define NOTE_SIZE 11.0  /* caption lines 2 and 3 */
#define AUTO_TILE 40    /* automatic scale: tiles of about this many pixels */
#define AUTO_LIMIT 4096 /* automatic scale: pictures within this many pixels */
#define MAX_SCALE 64

/* ------------------------------------------------------------------ finding nodes */

/* Node `name`'s info, or the first node with op `want` when name is NULL; when want is not
 * NULL the node must be of that op. The message lists the nodes of that op (of any op when
 * want is NULL), so the user sees what to ask for. */
static dn_status find_node(const dn_model *m, const char *name, const char *want, const char *path,
                           dn_node_info *out, dn_draw_err *err)
{
    char names[512] = "";
    size_t used = 0;
    int count = dn_model_node_count(m);
    bool found = false;
    for (int i = 0; i < count; i++) {
        dn_node_info n;
        if (dn_model_node_info(m, i, &n))
            continue;
        if (!found && (name ? strcmp(n.name, name) == 0 : strcmp(n.op, want) == 0)) {
            *out = n;
            found = true;
        }
        if ((!want || strcmp(n.op, want) == 0) && used < sizeof names - 1)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
                                     n.name);
    }
    if (!found && !name)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: model %s has no %s node", path, dn_model_name(m),
                            want);
    if (!found)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: model %s has no node \"%s\" (%s%snodes: %s)",
                            path, dn_model_name(m), name, want ? want : "", want ? " " : "",
                            used ? names : "none");
    if (want && strcmp(out->op, want) != 0)
        return dn_draw_fail(err, DN_ERR_ARG,
                            "%s: node \"%s\" is a %s, expected a %s (%s nodes: %s)", path,
                            out->name, out->op, want, want, used ? names : "none");
    return DN_OK;
}

static dn_status check_options(const dn_draw_tiles *o, const char *path, dn_draw_err *err)
{
    if (o->scale < 0 || o->scale > MAX_SCALE)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: scale %d is outside [1, %d] (0: automatic)", path,
                            o->scale, MAX_SCALE);
    if (o->columns < 0 || o->columns > 4096)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: %d columns is outside [1, 4096] (0: automatic)",
                            path, o->columns);
    return DN_OK;
}

/* ------------------------------------------------------------------ tiles */

static void plane_range(const float *v, int64_t n, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            *lo = fmin(*lo, v[i]);
            *hi = fmax(*hi, v[i]);
        }
    if (*lo > *hi)
        *lo = *hi = 0; /* nothing finite */
}

static double unit(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    return hi > lo ? (v - lo) / (hi - lo) : 0;
}

static void square(cairo_t *cr, int x, int y, int scale, unsigned char r, unsigned char g,
                   unsigned char b)
{
    cairo_set_source_rgb(cr, r / 255.0, g / 255.0, b / 255.0);
    cairo_rectangle(cr, x, y, scale, scale);
    cairo_fill(cr);
}

/* One plane of h × w values at (x, y), scaled by its own range. */
static void gray_tile(cairo_t *cr, int x, int y, const float *v, int h, int w, int scale,
                      bool reversed)
{
    double lo, hi;
    plane_range(v, (int64_t)h * w, &lo, &hi);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            unsigned char g = dn_gray_level(unit(v[(int64_t)i * w + j], lo, hi), reversed);
            square(cr, x + j * scale, y + i * scale, scale, g, g, g);
        }
}

/* Three planes of h × w as red, green and blue, scaled by their common range. */
static void rgb_tile(cairo_t *cr, int x, int y, const float *v, int h, int w, int scale)
{
    int64_t plane = (int64_t)h * w;
    double lo, hi;
    plane_range(v, 3 * plane, &lo, &hi);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int64_t k = (int64_t)i * w + j;
            square(cr, x + j * scale, y + i * scale, scale,
                   dn_gray_level(unit(v[k], lo, hi), false),
                   dn_gray_level(unit(v[plane + k], lo, hi), false),
                   dn_gray_level(unit(v[2 * plane + k], lo, hi), false));
        }
}

/* ------------------------------------------------------------------ layout */

/* A grid of rows × cols tiles of th × tw values under a caption of up to three lines. */
typedef struct layout {
    int rows, cols, th, tw, scale, gap;
    int left;    /* grid's left edge (room for an image beside it) */
    int caption; /* caption height */
    int width, height;
    const char *line[3];
} layout;

static int gap_for(int scale) { return scale >= 4 ? 4 : 2; }

static void size_layout(layout *L, int extra_left)
{
    int title = L->line[0] ? (int)TITLE_SIZE + 8 : 0;
    int notes = (L->line[1] ? (int)NOTE_SIZE + 5 : 0) + (L->line[2] ? (int)NOTE_SIZE + 5 : 0);
    L->caption = title + notes + 6;
    L->gap = gap_for(L->scale);
    int64_t gw = (int64_t)L->cols * (L->tw * L->scale + L->gap) - L->gap;
    int64_t gh = (int64_t)L->rows * (L->th * L->scale + L->gap) - L->gap;
    double text = 0;
    for (int i = 0; i < 3; i++)
        if (L->line[i])
            text = fmax(text, dn_text_measure(L->line[i], i ? NOTE_SIZE : TITLE_SIZE, i == 0));
    L->left = PAD + extra_left;
    int64_t w = fmax((double)(L->left + gw), PAD + ceil(text)) + PAD;
    int64_t h = PAD + L->caption + gh + PAD;
    L->width = w > DN_DRAW_MAX_SIDE + 1 ? DN_DRAW_MAX_SIDE + 1 : (int)w;
    L->height = h > DN_DRAW_MAX_SIDE + 1 ? DN_DRAW_MAX_SIDE + 1 : (int)h;
}

/* The scale the options ask for, or the automatic one: tiles of about AUTO_TILE pixels,
 * smaller while the picture exceeds AUTO_LIMIT. */
static void choose_scale(layout *L, int asked)
{
    if (asked) {
        L->scale = asked;
        size_layout(L, 0);
        return;
    }
    int side = L->th > L->tw ? L->th : L->tw;
    L->scale = (AUTO_TILE + side - 1) / side;
    if (L->scale > 16)
        L->scale = 16;
    if (L->scale < 1)
        L->scale = 1;
    for (;;) {
        size_layout(L, 0);
        if (L->scale == 1 || (L->width <= AUTO_LIMIT && L->height <= AUTO_LIMIT))
            return;
        L->scale--;
    }
}

static void tile_origin(const layout *L, int r, int c, int *x, int *y)
{
    *x = L->left + c * (L->tw * L->scale + L->gap);
    *y = PAD + L->caption + r * (L->th * L->scale + L->gap);
}

static void report(const layout *L, dn_draw_grid *grid, int image_x, int image_y)
{
    if (!grid)
        return;
    *grid = (dn_draw_grid){ .x = L->left,
                            .y = PAD + L->caption,
                            .step_x = L->tw * L->scale + L->gap,
                            .step_y = L->th * L->scale + L->gap,
                            .rows = L->rows,
                            .cols = L->cols,
                            .scale = L->scale,
                            .image_x = image_x,
                            .image_y = image_y,
                            .width = L->width,
                            .height = L->height };
}

static void draw_caption(cairo_t *cr, const layout *L)
{
    double y = PAD + TITLE_SIZE;
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (L->line[0]) {
        dn_text(cr, PAD, y, L->line[0], TITLE_SIZE, true, DN_LEFT);
        y += NOTE_SIZE + 7;
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    for (int i = 1; i < 3; i++)
        if (L->line[i]) {
            dn_text(cr, PAD, y, L->line[i], NOTE_SIZE, false, DN_LEFT);
            y += NOTE_SIZE + 5;
        }
}

/* ------------------------------------------------------------------ filters */

dn_status dn_draw_filters(dn_session *s, const dn_model *m, const char *node,
                          const dn_draw_tiles *o, const char *path, dn_draw_grid *grid,
                          dn_draw_err *err)
{
    dn_draw_tiles defaults = DN_DRAW_TILES_DEFAULT;
    if (!o)
        o = &defaults;
    if (!s || !m)
        return dn_draw_fail(err, DN_ERR_ARG, "dn_draw_filters: the session or model is NULL");
    dn_draw_format format;
    dn_node_info n;
    dn_status st;
    if ((st = dn_draw_format_of(path, false, &format, err)) || (st = check_options(o, path, err)) ||
        (st = find_node(m, node, "Conv", path, &n, err)))
        return st;
    if (n.n_inputs < 2)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: Conv node \"%s\" reads no weight param", path,
                            n.name);
    dn_view w;
    if (dn_session_param(s, n.inputs[1], &w))
        return dn_draw_fail(err, DN_ERR_ARG, "%s: node \"%s\": %s", path, n.name,
                            dn_session_errmsg(s));
    char shape[128];
    dn_shape_text(shape, sizeof shape, w.rank, w.shape, false);
    if (w.dtype != DN_F32 || w.rank != 4 || w.shape[0] < 1 || w.shape[1] < 1 || w.shape[2] < 1 ||
        w.shape[3] < 1 || w.shape[0] > 100000 || w.shape[1] > 100000 || w.shape[2] > 4096 ||
        w.shape[3] > 4096)
        return dn_draw_fail(err, DN_ERR_SHAPE,
                            "%s: weight \"%s\" of node \"%s\" is %s, expected float32 "
                            "[filters, channels, height, width]",
                            path, n.inputs[1], n.name, shape);
    int f = (int)w.shape[0], ch = (int)w.shape[1];
    bool rgb = ch == 3, per_channel = ch != 1 && ch != 3;
    layout L = { .th = (int)w.shape[2], .tw = (int)w.shape[3] };
    if (per_channel) {
        L.rows = f;
        L.cols = ch;
    } else {
        L.cols = o->columns ? o->columns : 8;
        if (L.cols > f)
            L.cols = f;
        L.rows = (f + L.cols - 1) / L.cols;
    }
    char title[512], how[256];
    snprintf(title, sizeof title, "%s (%s): %s %s", n.name, n.op, n.inputs[1], shape);
    if (rgb)
        snprintf(how, sizeof how,
                 "%d filters in RGB (input channels 0, 1, 2), each scaled to its own range", f);
    else if (per_channel)
        snprintf(how, sizeof how,
                 "rows: %d filters, columns: %d input channels; tiles: min white, max black", f,
                 ch);
    else
        snprintf(how, sizeof how, "%d filters, each scaled to its own min (white) and max (black)",
                 f);
    L.line[0] = title;
    L.line[1] = how;
    L.line[2] = o->note;
    choose_scale(&L, o->scale);
    dn_canvas c;
    if ((st = dn_canvas_open(&c, format, L.width, L.height, path, err)))
        return st;
    draw_caption(c.cr, &L);
    cairo_set_antialias(c.cr, CAIRO_ANTIALIAS_NONE);
    const float *data = w.data;
    int64_t plane = (int64_t)L.th * L.tw;
    for (int i = 0; i < f; i++)
        for (int k = 0; k < (per_channel ? ch : 1); k++) {
            int x, y;
            int r = per_channel ? i : i / L.cols, col = per_channel ? k : i % L.cols;
            tile_origin(&L, r, col, &x, &y);
            const float *v = data + ((int64_t)i * ch + k) * plane;
            if (rgb)
                rgb_tile(c.cr, x, y, v, L.th, L.tw, L.scale);
            else
                gray_tile(c.cr, x, y, v, L.th, L.tw, L.scale, true);
        }
    report(&L, grid, -1, -1);
    return dn_canvas_save(&c, path, err);
}

/* ------------------------------------------------------------------ activations */

/* The model's only float input, for an image. */
static dn_status image_input(const dn_model *m, const char *path, const char **out,
                             dn_draw_err *err)
{
    int found = 0;
    for (int i = 0; i < dn_model_input_count(m); i++) {
        dn_tensor_info t;
        if (!dn_model_input_info(m, i, &t) && t.dtype == DN_F32) {
            *out = t.name;
            found++;
        }
    }
    if (found != 1)
        return dn_draw_fail(err, DN_ERR_ARG,
                            "%s: model %s has %d float inputs; name the one that takes the image",
                            path, dn_model_name(m), found);
    return DN_OK;
}

dn_status dn_draw_activations(dn_session *s, const dn_model *m, const char *node, const char *input,
                              const dn_view *image, const dn_draw_tiles *o, const char *path,
                              dn_draw_grid *grid, dn_draw_err *err)
{
    dn_draw_tiles defaults = DN_DRAW_TILES_DEFAULT;
    if (!o)
        o = &defaults;
    if (!s || !m || !image || !image->data)
        return dn_draw_fail(err, DN_ERR_ARG,
                            "dn_draw_activations: the session, model or image is NULL");
    if (!node)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: name the node whose feature maps to draw",
                            path ? path : "activations");
    dn_draw_format format;
    dn_node_info n;
    dn_status st;
    if ((st = dn_draw_format_of(path, false, &format, err)) || (st = check_options(o, path, err)))
        return st;
    if ((st = find_node(m, node, NULL, path, &n, err)))
        return st;
    if (!input && (st = image_input(m, path, &input, err)))
        return st;
    /* The image as a batch of one. */
    int skip = image->rank == 4 ? 1 : 0;
    char shape[128];
    dn_shape_text(shape, sizeof shape, image->rank, image->shape, false);
    if (image->dtype != DN_F32 || (image->rank != 3 && image->rank != 4) ||
        (skip && image->shape[0] != 1))
        return dn_draw_fail(err, DN_ERR_SHAPE,
                            "%s: the image is %s, expected float32 [channels, height, width]", path,
                            shape);
    int64_t in_shape[4] = { 1, image->shape[skip], image->shape[skip + 1], image->shape[skip + 2] };
    for (int i = 1; i < 4; i++)
        if (in_shape[i] < 1 || in_shape[i] > 4096)
            return dn_draw_fail(err, DN_ERR_SHAPE,
                                "%s: the image is %s, expected dimensions in [1, 4096]", path,
                                shape);
    const char *fetch[1] = { n.name };
    dn_view out;
    if (dn_session_set_input(s, input, DN_F32, 4, in_shape, image->data) ||
        dn_session_forward(s, DN_INFER, fetch, 1) || dn_session_tensor(s, n.name, &out))
        return dn_draw_fail(err, DN_ERR_ARG, "%s: %s", path, dn_session_errmsg(s));
    dn_shape_text(shape, sizeof shape, out.rank, out.shape, false);
    if (out.dtype != DN_F32 || out.rank != 4 || out.shape[0] != 1 || out.shape[1] < 1 ||
        out.shape[2] < 1 || out.shape[3] < 1 || out.shape[2] > 4096 || out.shape[3] > 4096 ||
        out.shape[1] > 100000)
        return dn_draw_fail(err, DN_ERR_SHAPE,
                            "%s: node \"%s\" (%s) outputs %s for one image, expected feature "
                            "maps [1, channels, height, width]",
                            path, n.name, n.op, shape);
    int maps = (int)out.shape[1];
    layout L = { .th = (int)out.shape[2], .tw = (int)out.shape[3] };
    L.cols = o->columns ? o->columns : (int)ceil(sqrt((double)maps));
    if (L.cols > maps)
        L.cols = maps;
    L.rows = (maps + L.cols - 1) / L.cols;
    char title[512], how[256];
    snprintf(title, sizeof title, "%s (%s): %d feature maps %lldx%lld", n.name, n.op, maps,
             (long long)out.shape[2], (long long)out.shape[3]);
    snprintf(how, sizeof how,
             "the input (left, %lldx%lld) and each map scaled to its own min (black) and "
             "max (white)",
             (long long)in_shape[2], (long long)in_shape[3]);
    L.line[0] = title;
    L.line[1] = how;
    L.line[2] = o->note;
    /* The input is drawn at the maps' scale; the grid starts after it and a gap. */
    int ih = (int)in_shape[2], iw = (int)in_shape[3];
    int scale = o->scale;
    if (!scale) {
        layout probe = L;
        choose_scale(&probe, 0);
        scale = probe.scale;
        while (scale > 1 && (int64_t)(iw + 2) * scale + probe.width > AUTO_LIMIT)
            scale--;
    }
    L.scale = scale;
    size_layout(&L, iw * scale + 3 * gap_for(scale));
    int64_t need_h = PAD + L.caption + (int64_t)ih * scale + PAD;
    if (need_h > L.height)
        L.height = need_h > DN_DRAW_MAX_SIDE + 1 ? DN_DRAW_MAX_SIDE + 1 : (int)need_h;
    /* The input is drawn from the caller's buffer (set_input copied it for the forward). */
    dn_canvas c;
    if ((st = dn_canvas_open(&c, format, L.width, L.height, path, err)))
        return st;
    draw_caption(c.cr, &L);
    cairo_set_antialias(c.cr, CAIRO_ANTIALIAS_NONE);
    const float *img = image->data;
    int y0 = PAD + L.caption;
    if (in_shape[1] == 3) /* RGB; else the first channel in gray */
        rgb_tile(c.cr, PAD, y0, img, ih, iw, scale);
    else
        gray_tile(c.cr, PAD, y0, img, ih, iw, scale, false);
    const float *v = out.data;
    int64_t plane = (int64_t)L.th * L.tw;
    for (int i = 0; i < maps; i++) {
        int x, y;
        tile_origin(&L, i / L.cols, i % L.cols, &x, &y);
        gray_tile(c.cr, x, y, v + i * plane, L.th, L.tw, L.scale, false);
    }
    report(&L, grid, PAD, y0);
    return dn_canvas_save(&c, path, err);
}
