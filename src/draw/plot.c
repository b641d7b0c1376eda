/*
 * plot.c — learning curves from the CSV logs of `dagnet train --log` (draw.h: dn_draw_plot).
 *
 * A log is a header line, then a row per epoch:
 *     epoch,train_loss,train_acc[,val_acc],test_acc,lr,seconds[,model]
 * Columns are found by name, so older and newer logs read alike. The picture has two panels
 * sharing the epoch axis: the training loss (left) and the accuracies in percent (right:
 * train solid, validation dotted, test dashed), one colour per log, each point marked.
 *
 * Axes: each panel's range is the union of the logs' values, widened to "nice" ticks
 * (dn_draw_nice_axis: steps of 1, 2 or 5 × 10^k, at most 6 intervals; epochs in whole
 * steps). A value v maps to the panel linearly:
 *     x = left + (v − lo) / (hi − lo) · width,   y = bottom − (v − lo) / (hi − lo) · height
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw/canvas.h"

#define MAX_LOGS 12
#define DN_PI 3.14159265358979323846
#define MAX_LOG_BYTES (16 << 20) /* a log of a million epochs is a mistake */
#define MAX_COLUMNS 64

/* ------------------------------------------------------------------ reading */

static char *read_text(const char *path, size_t *size, dn_draw_err *err, dn_status *st)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *st = dn_draw_fail(err, DN_ERR_IO, "%s: cannot open the log: %s", path, strerror(errno));
        return NULL;
    }
    char *text = malloc(MAX_LOG_BYTES + 1);
    if (!text) {
        fclose(f);
        *st = dn_draw_fail(err, DN_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    *size = fread(text, 1, MAX_LOG_BYTES + 1, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad || *size > MAX_LOG_BYTES) {
        free(text);
        *st = dn_draw_fail(err, DN_ERR_IO, "%s: %s", path,
                           bad ? "cannot read the log" : "larger than 16 MiB; not a training log");
        return NULL;
    }
    text[*size] = '\0';
    if (memchr(text, '\0', *size)) {
        free(text);
        *st = dn_draw_fail(err, DN_ERR_PARSE, "%s: holds a NUL byte; expected a CSV text", path);
        return NULL;
    }
    return text;
}

/* Split `line` at commas in place; spaces around fields trimmed. Returns the field count. */
static int split(char *line, char **fields, int max)
{
    int n = 0;
    for (char *p = line;; p++) {
        char *start = p;
        while (*p && *p != ',')
            p++;
        char *end = p;
        while (start < end && (*start == ' ' || *start == '\t'))
            start++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            end--;
        bool last = *p == '\0';
        *end = '\0';
        if (n < max)
            fields[n] = start;
        n++;
        if (last)
            return n;
    }
}

enum { COL_EPOCH, COL_LOSS, COL_TRAIN, COL_VAL, COL_TEST, COL_MODEL, N_KNOWN };
static const char *const known[N_KNOWN] = { "epoch",   "train_loss", "train_acc",
                                            "val_acc", "test_acc",   "model" };

void dn_draw_log_free(dn_draw_log *log)
{
    if (!log)
        return;
    free(log->path);
    free(log->label);
    free(log->model);
    free(log->epoch);
    free(log->train_loss);
    free(log->train_acc);
    free(log->val_acc);
    free(log->test_acc);
    memset(log, 0, sizeof *log);
}

static char *label_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".csv") == 0)
        n -= 4;
    return strndup(base, n);
}

static const char header_hint[] =
    "expected a header line such as \"epoch,train_loss,train_acc,test_acc,lr,seconds\" "
    "as dagnet train --log writes";

dn_status dn_draw_log_read(const char *path, dn_draw_log *out, dn_draw_err *err)
{
    memset(out, 0, sizeof *out);
    if (!path)
        return dn_draw_fail(err, DN_ERR_ARG, "dn_draw_log_read: path is NULL");
    size_t size = 0;
    dn_status st = DN_OK;
    char *text = read_text(path, &size, err, &st);
    if (!text)
        return st;
    /* Lines, blank ones skipped (a trailing newline, an editor's empty last line). */
    int cap = 16, n_lines = 0;
    char **lines = malloc((size_t)cap * sizeof *lines);
    int *line_no = malloc((size_t)cap * sizeof *line_no);
    int no = 0;
    for (char *p = text; lines && line_no && *p;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        no++;
        char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r')
            q++;
        if (*q) {
            if (n_lines == cap) {
                cap *= 2;
                char **l2 = realloc(lines, (size_t)cap * sizeof *lines);
                int *n2 = l2 ? realloc(line_no, (size_t)cap * sizeof *line_no) : NULL;
                if (l2)
                    lines = l2;
                if (!n2) {
                    free(lines);
                    lines = NULL;
                    break;
                }
                line_no = n2;
            }
            lines[n_lines] = p;
            line_no[n_lines++] = no;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    if (!lines || !line_no) {
        free(lines);
        free(line_no);
        free(text);
        return dn_draw_fail(err, DN_ERR_NOMEM, "%s: out of memory", path);
    }
    char *fields[MAX_COLUMNS];
    int col[N_KNOWN];
    int n_cols = 0, rows = n_lines - 1;
    if (n_lines == 0) {
        st = dn_draw_fail(err, DN_ERR_PARSE, "%s: the log is empty; %s", path, header_hint);
        goto done;
    }
    n_cols = split(lines[0], fields, MAX_COLUMNS);
    if (n_cols > MAX_COLUMNS) {
        st = dn_draw_fail(err, DN_ERR_PARSE, "%s:%d: %d columns, expected at most %d", path,
                          line_no[0], n_cols, MAX_COLUMNS);
        goto done;
    }
    bool any = false;
    for (int k = 0; k < N_KNOWN; k++) {
        col[k] = -1;
        for (int j = 0; j < n_cols; j++)
            if (strcmp(fields[j], known[k]) == 0)
                col[k] = j;
        if (k >= COL_LOSS && k <= COL_TEST && col[k] >= 0)
            any = true;
    }
    if (col[COL_EPOCH] < 0 || !any) {
        st = dn_draw_fail(err, DN_ERR_PARSE, "%s:%d: the header \"%.80s%s\" has no %s column; %s",
                          path, line_no[0], fields[0], n_cols > 1 ? ",..." : "",
                          col[COL_EPOCH] < 0 ? "\"epoch\"" : "loss or accuracy", header_hint);
        goto done;
    }
    if (rows == 0) {
        st = dn_draw_fail(err, DN_ERR_PARSE, "%s: the log has a header but no epochs", path);
        goto done;
    }
    out->n = rows;
    out->path = strdup(path);
    out->label = label_of(path);
    double **arrays[5] = { &out->epoch, &out->train_loss, &out->train_acc, &out->val_acc,
                           &out->test_acc };
    bool nomem = !out->path || !out->label;
    for (int k = 0; k < 5; k++)
        if (col[k] >= 0 && !(*arrays[k] = malloc((size_t)rows * sizeof(double))))
            nomem = true;
    if (nomem) {
        st = dn_draw_fail(err, DN_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    char header_names[MAX_COLUMNS][32];
    for (int j = 0; j < n_cols; j++)
        snprintf(header_names[j], sizeof header_names[j], "%s", fields[j]);
    for (int r = 0; r < rows; r++) {
        int got = split(lines[r + 1], fields, MAX_COLUMNS);
        if (got != n_cols) {
            st = dn_draw_fail(err, DN_ERR_PARSE, "%s:%d: %d fields, expected %d as the header has",
                              path, line_no[r + 1], got, n_cols);
            goto done;
        }
        for (int k = 0; k < 5; k++) {
            if (col[k] < 0)
                continue;
            const char *f = fields[col[k]];
            char *end;
            errno = 0;
            double v = strtod(f, &end);
            if (!*f || *end || !isfinite(v)) {
                st = dn_draw_fail(err, DN_ERR_PARSE,
                                  "%s:%d: column %d (%s) is \"%.40s\", expected a finite number",
                                  path, line_no[r + 1], col[k] + 1, header_names[col[k]], f);
                goto done;
            }
            (*arrays[k])[r] = v;
        }
        if (col[COL_MODEL] >= 0 && !out->model && *fields[col[COL_MODEL]] &&
            !(out->model = strdup(fields[col[COL_MODEL]]))) {
            st = dn_draw_fail(err, DN_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
    }
done:
    free(lines);
    free(line_no);
    free(text);
    if (st)
        dn_draw_log_free(out);
    return st;
}

/* ------------------------------------------------------------------ axes */

dn_draw_axis dn_draw_nice_axis(double min, double max, int max_ticks)
{
    if (max_ticks < 1)
        max_ticks = 1;
    if (!isfinite(min) || !isfinite(max))
        min = 0, max = 1;
    if (min > max) {
        double t = min;
        min = max;
        max = t;
    }
    if (max - min < 1e-12 * fmax(1, fabs(max))) {
        double d = fabs(min) > 0 ? fabs(min) * 0.1 : 1;
        min -= d;
        max += d;
    }
    if (!isfinite(max - min)) /* beyond double's range: two plain intervals */
        return (dn_draw_axis){ min, max, max / 2 - min / 2 };
    double raw = (max - min) / max_ticks;
    double mag = pow(10, floor(log10(raw)));
    static const double mult[] = { 1, 2, 5, 10, 20 };
    dn_draw_axis a = { 0, 0, 0 };
    for (int i = 0; i < 5; i++) {
        double step = mult[i] * mag;
        a = (dn_draw_axis){ floor(min / step + 1e-9) * step, ceil(max / step - 1e-9) * step, step };
        if ((a.hi - a.lo) / step <= max_ticks + 1e-9)
            return a;
    }
    /* rounding out may need one more interval than max_ticks allows (max_ticks = 1): widen */
    while ((a.hi - a.lo) / a.step > max_ticks + 1e-9 && isfinite(a.step)) {
        a.step *= 2;
        a.lo = floor(min / a.step + 1e-9) * a.step;
        a.hi = ceil(max / a.step - 1e-9) * a.step;
    }
    return a;
}

/* ------------------------------------------------------------------ drawing */

/* Tableau's ten colours and two more: distinct on screen and in print. */
static const unsigned char palette[MAX_LOGS][3] = {
    { 31, 119, 180 },  { 214, 39, 40 },  { 44, 160, 44 },   { 255, 127, 14 },
    { 148, 103, 189 }, { 140, 86, 75 },  { 227, 119, 194 }, { 127, 127, 127 },
    { 188, 189, 34 },  { 23, 190, 207 }, { 0, 0, 128 },     { 128, 0, 0 },
};

void dn_draw_run_color(int i, unsigned char rgb[3])
{
    int k = ((i % MAX_LOGS) + MAX_LOGS) % MAX_LOGS;
    memcpy(rgb, palette[k], 3);
}

static void set_color(cairo_t *cr, int run)
{
    unsigned char c[3];
    dn_draw_run_color(run, c);
    cairo_set_source_rgb(cr, c[0] / 255.0, c[1] / 255.0, c[2] / 255.0);
}

typedef struct panel {
    double x, y, w, h; /* plot area, y at the top */
    dn_draw_axis ax, ay;
    const char *title, *ylabel;
} panel;

static double px(const panel *p, double v)
{
    return p->x + (v - p->ax.lo) / (p->ax.hi - p->ax.lo) * p->w;
}
static double py(const panel *p, double v)
{
    return p->y + p->h - (v - p->ay.lo) / (p->ay.hi - p->ay.lo) * p->h;
}

static void tick_text(char *buf, size_t size, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 6)
        decimals = 6;
    if (fabs(v) < step * 1e-9)
        v = 0; /* no "-0" */
    snprintf(buf, size, "%.*f", decimals, v);
}

static void draw_axes(cairo_t *cr, const panel *p)
{
    char t[64];
    cairo_set_line_width(cr, 1);
    /* grid lines and ticks */
    for (int i = 0; i <= 64 && p->ay.step > 0; i++) {
        double v = p->ay.lo + i * p->ay.step;
        if (v > p->ay.hi + p->ay.step * 1e-6)
            break;
        double y = round(py(p, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, p->x, y);
        cairo_line_to(cr, p->x + p->w, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, p->x - 5, y);
        cairo_line_to(cr, p->x, y);
        cairo_stroke(cr);
        tick_text(t, sizeof t, v, p->ay.step);
        dn_text(cr, p->x - 8, y + 4, t, 11, false, DN_RIGHT);
    }
    for (int i = 0; i <= 64 && p->ax.step > 0; i++) {
        double v = p->ax.lo + i * p->ax.step;
        if (v > p->ax.hi + p->ax.step * 1e-6)
            break;
        double x = round(px(p, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, x, p->y);
        cairo_line_to(cr, x, p->y + p->h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, x, p->y + p->h);
        cairo_line_to(cr, x, p->y + p->h + 5);
        cairo_stroke(cr);
        tick_text(t, sizeof t, v, p->ax.step);
        dn_text(cr, x, p->y + p->h + 18, t, 11, false, DN_CENTRE);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, round(p->x) + 0.5, round(p->y) + 0.5, round(p->w), round(p->h));
    cairo_stroke(cr);
    dn_text(cr, p->x + p->w / 2, p->y + p->h + 34, "epoch", 12, false, DN_CENTRE);
    dn_text(cr, p->x + p->w / 2, p->y - 8, p->title, 13, true, DN_CENTRE);
    cairo_save(cr);
    cairo_translate(cr, p->x - 44, p->y + p->h / 2);
    cairo_rotate(cr, -DN_PI / 2);
    dn_text(cr, 0, 0, p->ylabel, 12, false, DN_CENTRE);
    cairo_restore(cr);
}

typedef enum style { SOLID, DASHED, DOTTED } style;

static void set_style(cairo_t *cr, style s)
{
    static const double dashed[] = { 7, 4 }, dotted[] = { 1.5, 3.5 };
    if (s == SOLID)
        cairo_set_dash(cr, NULL, 0, 0);
    else
        cairo_set_dash(cr, s == DASHED ? dashed : dotted, 2, 0);
    cairo_set_line_cap(cr, s == DOTTED ? CAIRO_LINE_CAP_ROUND : CAIRO_LINE_CAP_BUTT);
}

static void curve(cairo_t *cr, const panel *p, const dn_draw_log *log, const double *v, int run,
                  style s)
{
    if (!v)
        return;
    set_color(cr, run);
    cairo_save(cr);
    cairo_rectangle(cr, p->x - 4, p->y - 4, p->w + 8, p->h + 8);
    cairo_clip(cr);
    cairo_set_line_width(cr, 2);
    set_style(cr, s);
    for (int i = 0; i < log->n; i++) {
        double x = px(p, log->epoch[i]), y = py(p, v[i]);
        if (i == 0)
            cairo_move_to(cr, x, y);
        else
            cairo_line_to(cr, x, y);
    }
    cairo_stroke(cr);
    set_style(cr, SOLID);
    for (int i = 0; i < log->n; i++) {
        cairo_arc(cr, px(p, log->epoch[i]), py(p, v[i]), s == SOLID ? 3 : 2.5, 0, 2 * DN_PI);
        cairo_fill(cr);
    }
    cairo_restore(cr);
}

static void range_of(const dn_draw_log *logs, int n, size_t offset, double *lo, double *hi)
{
    for (int k = 0; k < n; k++) {
        const double *v = *(double *const *)((const char *)&logs[k] + offset);
        for (int i = 0; v && i < logs[k].n; i++) {
            *lo = fmin(*lo, v[i]);
            *hi = fmax(*hi, v[i]);
        }
    }
}

/* The title when none is given: the models' names (each once), else the logs' labels. */
static void default_title(const dn_draw_log *logs, int n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    bool models = false;
    for (int k = 0; k < n; k++)
        models |= logs[k].model != NULL;
    for (int k = 0; k < n && used < size; k++) {
        const char *name = models ? logs[k].model : logs[k].label;
        if (!name)
            continue;
        bool dup = false;
        for (int j = 0; j < k; j++)
            dup |= (models ? logs[j].model : logs[j].label) &&
                   strcmp(models ? logs[j].model : logs[j].label, name) == 0;
        if (!dup)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "", name);
    }
    if (used < size)
        snprintf(buf + used, size - used, n == 1 ? ": learning curves" : ": %d runs compared", n);
}

#define WIDTH 980
#define PANEL_H 300
#define TOP 56

dn_status dn_draw_plot(const char *const *paths, int n, const char *title, const char *path,
                       dn_draw_err *err)
{
    if (!paths || n < 1 || n > MAX_LOGS)
        return dn_draw_fail(err, DN_ERR_ARG, "%s: %d logs given, expected 1 to %d",
                            path ? path : "plot", n, MAX_LOGS);
    dn_draw_format format;
    dn_status st = dn_draw_format_of(path, false, &format, err);
    if (st)
        return st;
    dn_draw_log logs[MAX_LOGS];
    memset(logs, 0, sizeof logs);
    for (int k = 0; k < n && !st; k++)
        st = dn_draw_log_read(paths[k], &logs[k], err);
    if (st) {
        for (int k = 0; k < n; k++)
            dn_draw_log_free(&logs[k]);
        return st;
    }
    double e_lo = INFINITY, e_hi = -INFINITY, l_lo = INFINITY, l_hi = -INFINITY, a_lo = INFINITY,
           a_hi = -INFINITY;
    bool has_val = false, has_test = false, has_train_acc = false;
    range_of(logs, n, offsetof(dn_draw_log, epoch), &e_lo, &e_hi);
    range_of(logs, n, offsetof(dn_draw_log, train_loss), &l_lo, &l_hi);
    range_of(logs, n, offsetof(dn_draw_log, train_acc), &a_lo, &a_hi);
    range_of(logs, n, offsetof(dn_draw_log, val_acc), &a_lo, &a_hi);
    range_of(logs, n, offsetof(dn_draw_log, test_acc), &a_lo, &a_hi);
    for (int k = 0; k < n; k++) {
        has_val |= logs[k].val_acc != NULL;
        has_test |= logs[k].test_acc != NULL;
        has_train_acc |= logs[k].train_acc != NULL;
    }
    if (l_lo > l_hi)
        l_lo = 0, l_hi = 1; /* no loss column anywhere: an empty panel */
    if (a_lo > a_hi)
        a_lo = 0, a_hi = 100;
    panel loss = { .title = "training loss", .ylabel = "loss" };
    panel acc = { .title = "accuracy", .ylabel = "accuracy (%)" };
    loss.ax = dn_draw_nice_axis(e_lo, e_hi, 8);
    if (loss.ax.step < 1) /* whole epochs */
        loss.ax = (dn_draw_axis){ floor(e_lo) - (e_lo == e_hi), ceil(e_hi) + (e_lo == e_hi), 1 };
    acc.ax = loss.ax;
    loss.ay = dn_draw_nice_axis(l_lo, l_hi, 6);
    acc.ay = dn_draw_nice_axis(a_lo, a_hi, 6);
    if (acc.ay.hi > 100 && a_hi <= 100)
        acc.ay.hi = 100;
    /* Legend: a row per 3 runs under the panels, then the line styles. */
    int legend_rows = (n + 2) / 3;
    int height = TOP + PANEL_H + 50 + legend_rows * 20 + 30;
    loss.x = 70, loss.y = TOP, loss.w = WIDTH / 2 - 100, loss.h = PANEL_H;
    acc.x = WIDTH / 2 + 60, acc.y = TOP, acc.w = WIDTH / 2 - 90, acc.h = PANEL_H;
    char auto_title[512];
    if (!title || !*title)
        default_title(logs, n, auto_title, sizeof auto_title);
    dn_canvas c;
    if ((st = dn_canvas_open(&c, format, WIDTH, height, path, err))) {
        for (int k = 0; k < n; k++)
            dn_draw_log_free(&logs[k]);
        return st;
    }
    cairo_t *cr = c.cr;
    cairo_set_source_rgb(cr, 0, 0, 0);
    dn_text(cr, WIDTH / 2.0, 24, title && *title ? title : auto_title, 16, true, DN_CENTRE);
    draw_axes(cr, &loss);
    draw_axes(cr, &acc);
    for (int k = 0; k < n; k++) {
        curve(cr, &loss, &logs[k], logs[k].train_loss, k, SOLID);
        curve(cr, &acc, &logs[k], logs[k].train_acc, k, SOLID);
        curve(cr, &acc, &logs[k], logs[k].val_acc, k, DOTTED);
        curve(cr, &acc, &logs[k], logs[k].test_acc, k, DASHED);
    }
    /* legend */
    double ly = TOP + PANEL_H + 58;
    for (int k = 0; k < n; k++) {
        double lx = 70 + (k % 3) * 300, y = ly + (k / 3) * 20;
        set_color(cr, k);
        cairo_rectangle(cr, lx, y - 9, 22, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        char label[300];
        snprintf(label, sizeof label, "%s (%s%s%d epoch%s)", logs[k].label,
                 logs[k].model ? logs[k].model : "", logs[k].model ? ", " : "", logs[k].n,
                 logs[k].n == 1 ? "" : "s");
        dn_text(cr, lx + 28, y, label, 12, false, DN_LEFT);
    }
    double sy = ly + legend_rows * 20 + 4, sx = 70;
    static const char *const names[] = { "train", "validation", "test" };
    static const style styles[] = { SOLID, DOTTED, DASHED };
    bool shown[] = { has_train_acc, has_val, has_test };
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    dn_text(cr, sx, sy, "accuracy lines:", 11, false, DN_LEFT);
    sx += dn_text_width(cr, "accuracy lines:", 11, false) + 12;
    for (int i = 0; i < 3; i++) {
        if (!shown[i])
            continue;
        cairo_set_line_width(cr, 2);
        set_style(cr, styles[i]);
        cairo_move_to(cr, sx, sy - 4);
        cairo_line_to(cr, sx + 30, sy - 4);
        cairo_stroke(cr);
        set_style(cr, SOLID);
        dn_text(cr, sx + 36, sy, names[i], 11, false, DN_LEFT);
        sx += 36 + dn_text_width(cr, names[i], 11, false) + 20;
    }
    for (int k = 0; k < n; k++)
        dn_draw_log_free(&logs[k]);
    return dn_canvas_save(&c, path, err);
}
