/*
 * canvas.c — surfaces that end in atomically written files, errors, text and colour maps
 * (see canvas.h).
 *
 * cairo reports failures through a status on the surface and the context rather than return
 * values; dn_canvas_save checks both before anything is written, so an out-of-memory while
 * drawing becomes DN_ERR_NOMEM instead of a blank picture.
 */
#include "draw/canvas.h"

#include <cairo-svg.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dn_status dn_draw_fail(dn_draw_err *err, dn_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    if (n < k)
        return false;
    for (size_t i = 0; i < k; i++) {
        char a = s[n - k + i], b = suffix[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

dn_status dn_draw_format_of(const char *path, bool allow_dot, dn_draw_format *out, dn_draw_err *err)
{
    if (!path || !*path)
        return dn_draw_fail(err, DN_ERR_ARG, "no output path given");
    if (ends_with(path, ".png"))
        *out = DN_DRAW_PNG;
    else if (ends_with(path, ".svg"))
        *out = DN_DRAW_SVG;
    else if (allow_dot && ends_with(path, ".dot"))
        *out = DN_DRAW_DOT;
    else
        return dn_draw_fail(err, DN_ERR_ARG,
                            "%s: unknown picture format; expected a name ending "
                            "in .png or .svg%s",
                            path, allow_dot ? " or .dot" : "");
    return DN_OK;
}

/* ------------------------------------------------------------------ memory streams */

static cairo_status_t buf_write(void *closure, const unsigned char *data, unsigned int length)
{
    dn_draw_buf *b = closure;
    if (b->failed)
        return CAIRO_STATUS_NO_MEMORY;
    if (length > b->cap - b->size) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap - b->size < length) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return CAIRO_STATUS_NO_MEMORY;
            }
            cap *= 2;
        }
        unsigned char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return CAIRO_STATUS_NO_MEMORY;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->size, data, length);
    b->size += length;
    return CAIRO_STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ canvases */

dn_status dn_canvas_open(dn_canvas *c, dn_draw_format format, int width, int height,
                         const char *path, dn_draw_err *err)
{
    memset(c, 0, sizeof *c);
    if (width < 1 || height < 1 || width > DN_DRAW_MAX_SIDE || height > DN_DRAW_MAX_SIDE)
        return dn_draw_fail(err, DN_ERR_ARG,
                            "%s: the picture would be %d x %d pixels; at most %d a side "
                            "(choose a smaller scale)",
                            path, width, height, DN_DRAW_MAX_SIDE);
    c->format = format;
    c->width = width;
    c->height = height;
    if (format == DN_DRAW_SVG)
        c->surface = cairo_svg_surface_create_for_stream(buf_write, &c->buf, width, height);
    else
        c->surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height);
    c->cr = cairo_create(c->surface);
    if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) {
        dn_canvas_discard(c);
        return dn_draw_fail(err, DN_ERR_NOMEM, "%s: cannot make a %d x %d picture: out of memory",
                            path, width, height);
    }
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    return DN_OK;
}

void dn_canvas_discard(dn_canvas *c)
{
    if (c->cr)
        cairo_destroy(c->cr);
    if (c->surface)
        cairo_surface_destroy(c->surface);
    free(c->buf.data);
    memset(c, 0, sizeof *c);
}

dn_status dn_canvas_save(dn_canvas *c, const char *path, dn_draw_err *err)
{
    cairo_status_t cs = cairo_status(c->cr);
    if (cs == CAIRO_STATUS_SUCCESS) {
        cairo_surface_flush(c->surface);
        if (c->format == DN_DRAW_PNG)
            cs = cairo_surface_write_to_png_stream(c->surface, buf_write, &c->buf);
        else
            cairo_surface_finish(c->surface); /* the SVG surface writes everything now */
    }
    if (cs == CAIRO_STATUS_SUCCESS)
        cs = cairo_surface_status(c->surface);
    if (cs != CAIRO_STATUS_SUCCESS || c->buf.failed) {
        dn_status st = cs == CAIRO_STATUS_NO_MEMORY || c->buf.failed ? DN_ERR_NOMEM : DN_ERR_IO;
        dn_draw_fail(err, st, "%s: cairo could not draw the picture: %s", path,
                     c->buf.failed ? "out of memory" : cairo_status_to_string(cs));
        dn_canvas_discard(c);
        return st;
    }
    dn_status st = dn_draw_write_file(path, c->buf.data, c->buf.size, err);
    dn_canvas_discard(c);
    return st;
}

/* ------------------------------------------------------------------ atomic files */

/* dagnet's own atomic save (one locked temporary name per target, fsync, rename, directory
 * fsync), so that a picture left half-written by a crash is cleaned up as dagnet's files are. */
dn_status dn_draw_write_file(const char *path, const void *data, size_t size, dn_draw_err *err)
{
    char msg[sizeof err->msg];
    dn_status st = dn_file_write(path, data, size, msg, sizeof msg);
    return st ? dn_draw_fail(err, st, "%s", msg) : DN_OK;
}

/* ------------------------------------------------------------------ text and colour */

static void set_font(cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double dn_text_width(cairo_t *cr, const char *text, double size, bool bold)
{
    cairo_text_extents_t e;
    set_font(cr, size, bold);
    cairo_text_extents(cr, text, &e);
    return e.x_advance;
}

double dn_text_measure(const char *text, double size, bool bold)
{
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
    cairo_t *cr = cairo_create(scratch);
    double w = dn_text_width(cr, text, size, bold);
    cairo_destroy(cr);
    cairo_surface_destroy(scratch);
    return w;
}

void dn_text(cairo_t *cr, double x, double y, const char *text, double size, bool bold,
             dn_align align)
{
    double w = align == DN_LEFT ? 0 : dn_text_width(cr, text, size, bold);
    set_font(cr, size, bold);
    cairo_move_to(cr, align == DN_CENTRE ? x - w / 2 : align == DN_RIGHT ? x - w : x, y);
    cairo_show_text(cr, text);
}

unsigned char dn_gray_level(double t, bool reversed)
{
    if (!(t > 0))
        t = 0; /* NaN too */
    if (t > 1)
        t = 1;
    if (reversed)
        t = 1 - t;
    return (unsigned char)(t * 255 + 0.5);
}

void dn_shape_text(char *buf, size_t size, int rank, const int64_t *shape, bool batched)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && used < size; i++) {
        if (i == 0 && batched)
            used += (size_t)snprintf(buf + used, size - used, "N");
        else
            used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "",
                                     (long long)shape[i]);
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
}
