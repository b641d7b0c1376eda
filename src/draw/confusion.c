/*
 * confusion.c — a confusion matrix as a heat map (draw.h: dn_draw_confusion).
 *
 * counts is classes × classes, row = true label, column = predicted. Each cell is coloured by
 * its share of its row, share = count / Σ row (0 for an empty row), through a white-to-blue
 * ramp (dn_draw_heat_color: linear in sRGB between five stops of ColorBrewer's "Blues"), so
 * the diagonal reads as each class's recall and the off-diagonal cells show which classes
 * are taken for which. The count is written in each cell (white on dark cells), each row's
 * recall at its right, the class names along both axes.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "draw/canvas.h"

const char *const dn_draw_fashion_mnist_classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

/* ColorBrewer Blues, from share 0 to share 1. */
static const unsigned char stops[5][3] = {
    { 255, 255, 255 }, { 198, 219, 239 }, { 107, 174, 214 }, { 33, 113, 181 }, { 8, 48, 107 },
};

void dn_draw_heat_color(double share, unsigned char rgb[3])
{
    if (!(share > 0))
        share = 0;
    if (share > 1)
        share = 1;
    double pos = share * 4;
    int i = pos >= 4 ? 3 : (int)pos;
    double t = pos - i;
    for (int k = 0; k < 3; k++)
        rgb[k] = (unsigned char)(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * t + 0.5);
}

#define PAD 12
#define CELL_MIN 34
#define FONT 11.0

dn_status dn_draw_confusion(const int64_t *counts, int classes, const char *const *names,
                            const char *title, const char *path, dn_draw_err *err)
{
    if (!counts || classes < 1 || classes > 1000)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: %d classes, expected 1 to 1000 (and counts)",
                            path ? path : "confusion", classes);
    dn_draw_format format;
    dn_status st = dn_draw_format_of(path, false, &format, err);
    if (st)
        return st;
    int64_t total = 0, correct = 0;
    for (int r = 0; r < classes; r++)
        for (int c = 0; c < classes; c++) {
            int64_t v = counts[(int64_t)r * classes + c];
            if (v < 0)
                return dn_draw_fail(err, DN_ERR_ARG,
                                    "%s: count [%d][%d] is %lld, expected a count >= 0", path, r, c,
                                    (long long)v);
            total += v;
            if (r == c)
                correct += v;
        }
    char num[32];
    /* Label and cell sizes from the text they hold. */
    double label_w = 0, count_w = 0;
    for (int i = 0; i < classes; i++) {
        snprintf(num, sizeof num, "%d", i);
        label_w = fmax(label_w, dn_text_measure(names && names[i] ? names[i] : num, FONT, false));
    }
    label_w = fmax(label_w, dn_text_measure("predicted \u2192", FONT, true) - 24);
    for (int64_t i = 0; i < (int64_t)classes * classes; i++) {
        snprintf(num, sizeof num, "%lld", (long long)counts[i]);
        count_w = fmax(count_w, dn_text_measure(num, FONT, false));
    }
    int cell = (int)fmax(CELL_MIN, ceil(count_w) + 10);
    int left = PAD + (int)ceil(label_w) + 30;            /* row labels and "true" */
    int top = PAD + 26 + (int)ceil(label_w * 0.72) + 14; /* title, column labels at 45° */
    int recall_w = 70;
    int64_t width = left + (int64_t)classes * cell + recall_w + PAD;
    int64_t height = top + (int64_t)classes * cell + 40 + PAD;
    if (width > DN_DRAW_MAX_SIDE || height > DN_DRAW_MAX_SIDE)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: %d classes make a picture of %lld x %lld pixels",
                            path, classes, (long long)width, (long long)height);
    char foot[160];
    snprintf(foot, sizeof foot,
             "rows: true class, columns: predicted; colour: share of the row. accuracy %.2f%% "
             "(%lld of %lld)",
             total ? 100.0 * (double)correct / (double)total : 0.0, (long long)correct,
             (long long)total);
    double text_w =
        fmax(title ? dn_text_measure(title, 14, true) : 0, dn_text_measure(foot, FONT, false));
    if (text_w + 2 * PAD > width)
        width = (int64_t)ceil(text_w) + 2 * PAD;
    dn_canvas cv;
    if ((st = dn_canvas_open(&cv, format, (int)width, (int)height, path, err)))
        return st;
    cairo_t *cr = cv.cr;
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (title)
        dn_text(cr, PAD, PAD + 14, title, 14, true, DN_LEFT);
    for (int r = 0; r < classes; r++) {
        int64_t row = 0;
        for (int c = 0; c < classes; c++)
            row += counts[(int64_t)r * classes + c];
        for (int c = 0; c < classes; c++) {
            int64_t v = counts[(int64_t)r * classes + c];
            double share = row ? (double)v / (double)row : 0;
            unsigned char rgb[3];
            dn_draw_heat_color(share, rgb);
            double x = left + c * cell, y = top + r * cell;
            cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
            cairo_set_source_rgb(cr, rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0);
            cairo_rectangle(cr, x, y, cell, cell);
            cairo_fill(cr);
            cairo_set_antialias(cr, CAIRO_ANTIALIAS_DEFAULT);
            if (v) {
                double g = share > 0.5 ? 1 : 0.1;
                cairo_set_source_rgb(cr, g, g, g);
                snprintf(num, sizeof num, "%lld", (long long)v);
                dn_text(cr, x + cell / 2.0, y + cell / 2.0 + FONT * 0.35, num, FONT, r == c,
                        DN_CENTRE);
            }
        }
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(num, sizeof num, "%d", r);
        const char *name = names && names[r] ? names[r] : num;
        dn_text(cr, left - 6, top + r * cell + cell / 2.0 + FONT * 0.35, name, FONT, false,
                DN_RIGHT);
        char recall[32];
        snprintf(recall, sizeof recall, row ? "%.1f%%" : "-",
                 row ? 100.0 * (double)counts[(int64_t)r * classes + r] / (double)row : 0.0);
        dn_text(cr, left + classes * cell + 8, top + r * cell + cell / 2.0 + FONT * 0.35, recall,
                FONT, false, DN_LEFT);
    }
    /* column labels, rising at 45° from the top of each column */
    for (int c = 0; c < classes; c++) {
        snprintf(num, sizeof num, "%d", c);
        const char *name = names && names[c] ? names[c] : num;
        cairo_save(cr);
        cairo_translate(cr, left + c * cell + cell / 2.0, top - 6);
        cairo_rotate(cr, -0.7853981633974483);
        dn_text(cr, 0, 0, name, FONT, false, DN_LEFT);
        cairo_restore(cr);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, left + 0.5, top + 0.5, classes * cell - 1, classes * cell - 1);
    cairo_stroke(cr);
    dn_text(cr, left + classes * cell + 8, top - 6, "recall", FONT, true, DN_LEFT);
    /* the corner above the row labels says which axis is which */
    dn_text(cr, left - 6, top - 22, "predicted \u2192", FONT, true, DN_RIGHT);
    dn_text(cr, left - 6, top - 6, "true \u2193", FONT, true, DN_RIGHT);
    dn_text(cr, PAD, top + classes * cell + 26, foot, FONT, false, DN_LEFT);
    return dn_canvas_save(&cv, path, err);
}
