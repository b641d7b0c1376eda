/*
 * canvas.h — what the drawing files share (draw.h is the public side): a cairo surface of
 * either format that ends in an atomically written file, errors, text and colour maps.
 *
 * A PNG canvas is an ARGB32 image surface painted white, encoded by cairo into memory; an SVG
 * canvas is cairo's SVG surface writing into memory. Either way the bytes then go to
 * "<path>.tmp.<pid>.<n>" (O_EXCL), are fsync'ed and renamed over `path`.
 */
#ifndef DN_DRAW_CANVAS_H
#define DN_DRAW_CANVAS_H

#include <cairo.h>
#include <stddef.h>

#include "draw/draw.h"

/* Growing bytes in memory (cairo's write callbacks append here). */
typedef struct dn_draw_buf {
    unsigned char *data;
    size_t size, cap;
    bool failed; /* an allocation failed */
} dn_draw_buf;

typedef struct dn_canvas {
    dn_draw_format format;
    int width, height;
    cairo_surface_t *surface;
    cairo_t *cr;
    dn_draw_buf buf;
} dn_canvas;

/* Format the message into err and return st. */
dn_status dn_draw_fail(dn_draw_err *err, dn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A white canvas of width × height (each in [1, DN_DRAW_MAX_SIDE], else DN_ERR_ARG naming
 * `path` and the size). */
dn_status dn_canvas_open(dn_canvas *c, dn_draw_format format, int width, int height,
                         const char *path, dn_draw_err *err);
/* Finish the drawing and write it to path atomically; frees the canvas in every case. */
dn_status dn_canvas_save(dn_canvas *c, const char *path, dn_draw_err *err);
/* Free without writing (safe on a zeroed canvas). */
void dn_canvas_discard(dn_canvas *c);

/* Write bytes to path atomically (temporary name, fsync, rename). */
dn_status dn_draw_write_file(const char *path, const void *data, size_t size, dn_draw_err *err);

/* Text in DejaVu Sans (fontconfig's sans-serif), `size` pixels. The text's advance width. */
double dn_text_width(cairo_t *cr, const char *text, double size, bool bold);
/* The same before a canvas exists (measured on a scratch surface), to size the canvas. */
double dn_text_measure(const char *text, double size, bool bold);
/* Draw text with its baseline's left end at (x, y), or centred / right-aligned on x. */
typedef enum dn_align { DN_LEFT, DN_CENTRE, DN_RIGHT } dn_align;
void dn_text(cairo_t *cr, double x, double y, const char *text, double size, bool bold,
             dn_align align);

/* A 0..1 value in a colour map, with t clamped. gray: 0 black, 1 white; gray_r the reverse
 * (matplotlib's gray_r, the seed's filter_show). 8-bit levels, round to nearest. */
unsigned char dn_gray_level(double t, bool reversed);

/* "[N,30,24,24]" from a shape (N for a batch dimension). */
void dn_shape_text(char *buf, size_t size, int rank, const int64_t *shape, bool batched);

#endif
