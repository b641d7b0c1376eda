/*
 * test_draw.c — the pictures (src/draw/): every PNG made here is decoded again with cairo and
 * what it shows is checked against the data it was drawn from.
 *
 *   draw_filters      tiles follow the weights: within a tile the gray level is round(255 ·
 *                     (1 − t)), t = (w − min) / (max − min), so it falls as the weight rises;
 *                     RGB tiles for three channels, a row per filter for two; the seed's
 *                     trained SimpleConvNet (skipped when ../shared/seed is absent)
 *   draw_activations  the maps follow the node's output (a 1×1 Conv of weight 1 copies the
 *                     image, so the map's levels rise with the pixels), input drawn beside
 *   draw_plot         nice axes; the curves' pixels move with the logs' ranges; SVG output
 *   draw_graph        one Graphviz node per op, input and param; the loss path marked
 *   draw_confusion    cells darken with their share of the row
 *   draw_errors       a node that is not a Conv, a node that does not exist, an unwritable
 *                     path, an unknown extension, empty and malformed logs, bad shapes
 *
 * Models are tiny JSON strings, weights are set through dn_session_param; files go to the
 * test's scratch directory.
 */
#include <cairo.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dagnet.h"
#include "draw/draw.h"
#include "helpers.h"
#include "io/npy.h"
#include "runtime/error.h"

/* ------------------------------------------------------------------ helpers */

/* The sanitizer build's leak checker calls this for its built-in suppressions (it is
 * LeakSanitizer's documented hook; other builds never call it). fontconfig, which cairo and
 * Graphviz use for text, loses a few hundred bytes while it parses its configuration once
 * per process (FcInitLoadConfigAndFonts), out of dagnet's reach. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "print_suppressions=0"; }

/* A model from JSON text (fails the test if it does not load). */
static dn_model *model_of(const char *json)
{
    dn_model *m = NULL;
    dn_status st = dn_model_parse(json, strlen(json), "test.json", &m);
    cr_assert_eq(st, DN_OK, "%s", dn_model_errmsg(m));
    return m;
}

static dn_session *session_of(const dn_model *m)
{
    dn_session *s = NULL;
    cr_assert_eq(dn_session_new(m, NULL, &s), DN_OK, "%s", dn_session_errmsg(s));
    return s;
}

/* A decoded PNG; pixels read as 8-bit r, g, b. */
typedef struct picture {
    cairo_surface_t *surface;
    const unsigned char *data;
    int width, height, stride;
} picture;

static picture load_png(const char *path)
{
    picture p = { 0 };
    p.surface = cairo_image_surface_create_from_png(path);
    cr_assert_eq(cairo_surface_status(p.surface), CAIRO_STATUS_SUCCESS, "%s: %s", path,
                 cairo_status_to_string(cairo_surface_status(p.surface)));
    cairo_format_t f = cairo_image_surface_get_format(p.surface);
    cr_assert(f == CAIRO_FORMAT_ARGB32 || f == CAIRO_FORMAT_RGB24, "%s: format %d", path, f);
    p.data = cairo_image_surface_get_data(p.surface);
    p.width = cairo_image_surface_get_width(p.surface);
    p.height = cairo_image_surface_get_height(p.surface);
    p.stride = cairo_image_surface_get_stride(p.surface);
    return p;
}

static void free_png(picture *p) { cairo_surface_destroy(p->surface); }

static void rgb_at(const picture *p, int x, int y, unsigned char rgb[3])
{
    cr_assert(x >= 0 && y >= 0 && x < p->width && y < p->height, "pixel (%d, %d) outside %dx%d", x,
              y, p->width, p->height);
    uint32_t v;
    memcpy(&v, p->data + (size_t)y * p->stride + (size_t)x * 4, 4);
    rgb[0] = (unsigned char)(v >> 16);
    rgb[1] = (unsigned char)(v >> 8);
    rgb[2] = (unsigned char)v;
}

/* The gray level at the centre of value (i, j) of tile (r, c). */
static int level_at(const picture *p, const dn_draw_grid *g, int r, int c, int i, int j)
{
    unsigned char rgb[3];
    int x = g->x + c * g->step_x + j * g->scale + g->scale / 2;
    int y = g->y + r * g->step_y + i * g->scale + g->scale / 2;
    rgb_at(p, x, y, rgb);
    cr_assert(rgb[0] == rgb[1] && rgb[1] == rgb[2], "pixel (%d, %d) is not gray: %d %d %d", x, y,
              rgb[0], rgb[1], rgb[2]);
    return rgb[0];
}

/* round(255 · t) or its reverse, t the value's place in [lo, hi]. */
static int expected_level(double v, double lo, double hi, bool reversed)
{
    double t = hi > lo ? (v - lo) / (hi - lo) : 0;
    if (reversed)
        t = 1 - t;
    return (int)(t * 255 + 0.5);
}

/* No temporary files are left in the scratch directory. */
static void assert_no_tmp_files(void)
{
    DIR *d = opendir(dn_test_dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        cr_assert_null(strstr(e->d_name, ".tmp"), "a temporary file was left: %s", e->d_name);
    closedir(d);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* conv (channels → filters of kernel × kernel) → relu → fc → loss, and a Softmax output off the
 * loss path. */
static char *tiny_json(int channels, int filters, int kernel)
{
    static char json[2048];
    int side = 6, out = side - kernel + 1;
    snprintf(json, sizeof json,
             "{\"format\": \"dagnet/1\", \"name\": \"tiny\","
             " \"inputs\": {\"image\": {\"shape\": [null, %d, %d, %d]},"
             "              \"label\": {\"shape\": [null], \"dtype\": \"int32\"}},"
             " \"params\": {\"W\": {\"shape\": [%d, %d, %d, %d]}, \"b\": {\"shape\": [%d]},"
             "              \"V\": {\"shape\": [%d, 3]}, \"c\": {\"shape\": [3]}},"
             " \"nodes\": ["
             "  {\"name\": \"conv\", \"op\": \"Conv\", \"inputs\": [\"image\", \"W\", \"b\"]},"
             "  {\"name\": \"relu\", \"op\": \"ReLU\", \"inputs\": [\"conv\"]},"
             "  {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"relu\", \"V\", \"c\"]},"
             "  {\"name\": \"prob\", \"op\": \"Softmax\", \"inputs\": [\"fc\"]},"
             "  {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", "
             "\"label\"]}],"
             " \"outputs\": [\"prob\"], \"loss\": \"loss\"}",
             channels, side, side, filters, channels, kernel, kernel, filters, filters * out * out);
    return json;
}

/* Weight k of the flattened W: a scrambled order, so that sorted and drawn orders differ. */
static float weight(int64_t k) { return (float)((k * 37) % 101) / 50.0f - 1.0f + 0.001f * k; }

static float *fill_weights(dn_session *s, const char *name, int64_t *count)
{
    dn_view w;
    cr_assert_eq(dn_session_param(s, name, &w), DN_OK, "%s", dn_session_errmsg(s));
    int64_t n = 1;
    for (int i = 0; i < w.rank; i++)
        n *= w.shape[i];
    float *v = w.data;
    for (int64_t k = 0; k < n; k++)
        v[k] = weight(k);
    *count = n;
    return v;
}

/* ------------------------------------------------------------------ filters */

TestSuite(draw_filters, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

Test(draw_filters, gray_tiles_follow_the_weights)
{
    dn_model *m = model_of(tiny_json(1, 5, 3));
    dn_session *s = session_of(m);
    int64_t n;
    const float *w = fill_weights(s, "W", &n);
    dn_draw_tiles o = DN_DRAW_TILES_DEFAULT;
    o.scale = 6;
    o.columns = 3;
    dn_draw_grid g;
    dn_draw_err err;
    const char *path = dn_test_path("filters.png");
    cr_assert_eq(dn_draw_filters(s, m, NULL, &o, path, &g, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(g.cols, 3);
    cr_assert_eq(g.rows, 2);
    cr_assert_eq(g.scale, 6);
    picture p = load_png(path);
    cr_assert_eq(p.width, g.width);
    cr_assert_eq(p.height, g.height);
    for (int f = 0; f < 5; f++) {
        const float *t = w + f * 9;
        double lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < 9; k++)
            lo = fmin(lo, t[k]), hi = fmax(hi, t[k]);
        int levels[9];
        for (int k = 0; k < 9; k++) {
            levels[k] = level_at(&p, &g, f / 3, f % 3, k / 3, k % 3);
            cr_assert_eq(levels[k], expected_level(t[k], lo, hi, true),
                         "filter %d weight %d: level %d, expected %d", f, k, levels[k],
                         expected_level(t[k], lo, hi, true));
        }
        /* gray_r: a larger weight is never lighter, and the extremes are black and white */
        for (int a = 0; a < 9; a++)
            for (int b = 0; b < 9; b++)
                if (t[a] < t[b])
                    cr_assert_gt(levels[a], levels[b], "filter %d: w%d < w%d but level %d <= %d", f,
                                 a, b, levels[a], levels[b]);
        bool white = false, black = false;
        for (int k = 0; k < 9; k++)
            white |= levels[k] == 255, black |= levels[k] == 0;
        cr_assert(white && black, "filter %d does not span white to black", f);
    }
    /* Every pixel of a value's square has its level (no antialiasing at the edges). */
    int x0 = g.x + g.step_x, y0 = g.y;
    unsigned char a[3], b[3];
    rgb_at(&p, x0, y0, a);
    rgb_at(&p, x0 + g.scale - 1, y0 + g.scale - 1, b);
    cr_assert_eq(a[0], b[0]);
    free_png(&p);
    assert_no_tmp_files();
    dn_session_free(s);
    dn_model_free(m);
}

Test(draw_filters, three_channels_are_rgb)
{
    dn_model *m = model_of(tiny_json(3, 2, 3));
    dn_session *s = session_of(m);
    int64_t n;
    const float *w = fill_weights(s, "W", &n);
    dn_draw_tiles o = DN_DRAW_TILES_DEFAULT;
    o.scale = 5;
    dn_draw_grid g;
    dn_draw_err err;
    const char *path = dn_test_path("rgb.png");
    cr_assert_eq(dn_draw_filters(s, m, "conv", &o, path, &g, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(g.rows, 1);
    cr_assert_eq(g.cols, 2);
    picture p = load_png(path);
    for (int f = 0; f < 2; f++) {
        const float *t = w + f * 27;
        double lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < 27; k++)
            lo = fmin(lo, t[k]), hi = fmax(hi, t[k]);
        for (int k = 0; k < 9; k++) {
            unsigned char rgb[3];
            int x = g.x + f * g.step_x + (k % 3) * g.scale + 2, y = g.y + (k / 3) * g.scale + 2;
            rgb_at(&p, x, y, rgb);
            for (int c = 0; c < 3; c++)
                cr_assert_eq(rgb[c], expected_level(t[c * 9 + k], lo, hi, false),
                             "filter %d channel %d weight %d", f, c, k);
        }
    }
    free_png(&p);
    dn_session_free(s);
    dn_model_free(m);
}

Test(draw_filters, other_channel_counts_give_a_row_per_filter)
{
    dn_model *m = model_of(tiny_json(2, 3, 3));
    dn_session *s = session_of(m);
    int64_t n;
    const float *w = fill_weights(s, "W", &n);
    dn_draw_tiles o = DN_DRAW_TILES_DEFAULT;
    o.scale = 4;
    dn_draw_grid g;
    dn_draw_err err;
    const char *path = dn_test_path("two.png");
    cr_assert_eq(dn_draw_filters(s, m, NULL, &o, path, &g, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(g.rows, 3);
    cr_assert_eq(g.cols, 2);
    picture p = load_png(path);
    for (int f = 0; f < 3; f++)
        for (int c = 0; c < 2; c++) {
            const float *t = w + (f * 2 + c) * 9;
            double lo = INFINITY, hi = -INFINITY;
            for (int k = 0; k < 9; k++)
                lo = fmin(lo, t[k]), hi = fmax(hi, t[k]);
            for (int k = 0; k < 9; k++)
                cr_assert_eq(level_at(&p, &g, f, c, k / 3, k % 3),
                             expected_level(t[k], lo, hi, true), "filter %d channel %d", f, c);
        }
    free_png(&p);
    dn_session_free(s);
    dn_model_free(m);
}

Test(draw_filters, svg_and_automatic_scale)
{
    dn_model *m = model_of(tiny_json(1, 4, 3));
    dn_session *s = session_of(m);
    dn_draw_grid g;
    dn_draw_err err;
    const char *path = dn_test_path("filters.SVG");
    cr_assert_eq(dn_draw_filters(s, m, NULL, NULL, path, &g, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(g.scale, 14, "3x3 kernels get tiles of about 40 pixels");
    char *text = read_all(path);
    cr_assert_not_null(strstr(text, "<svg"), "not an SVG");
    free(text);
    dn_session_free(s);
    dn_model_free(m);
}

#define SEED_MODEL DAGNET_SOURCE_DIR "/examples/models/simple_convnet.json"
#define SEED_WEIGHTS DAGNET_SOURCE_DIR "/../shared/seed/simple_convnet_mnist.safetensors"

Test(draw_filters, the_seeds_trained_simple_convnet)
{
    if (access(SEED_WEIGHTS, R_OK) != 0)
        cr_skip_test("%s is absent", SEED_WEIGHTS);
    dn_model *m = NULL;
    cr_assert_eq(dn_model_load(SEED_MODEL, &m), DN_OK, "%s", dn_model_errmsg(m));
    dn_session *s = session_of(m);
    cr_assert_eq(dn_session_load_weights(s, SEED_WEIGHTS), DN_OK, "%s", dn_session_errmsg(s));
    dn_draw_grid g;
    dn_draw_err err;
    const char *path = dn_test_path("seed.png");
    cr_assert_eq(dn_draw_filters(s, m, NULL, NULL, path, &g, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(g.cols, 8, "8 a row, as the seed's filter_show");
    cr_assert_eq(g.rows, 4, "30 filters");
    dn_view w;
    cr_assert_eq(dn_session_param(s, "W1", &w), DN_OK);
    picture p = load_png(path);
    const float *v = w.data;
    for (int f = 0; f < 30; f++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < 25; k++)
            lo = fmin(lo, v[f * 25 + k]), hi = fmax(hi, v[f * 25 + k]);
        for (int k = 0; k < 25; k++)
            cr_assert_eq(level_at(&p, &g, f / 8, f % 8, k / 5, k % 5),
                         expected_level(v[f * 25 + k], lo, hi, true), "filter %d weight %d", f, k);
    }
    free_png(&p);
    dn_session_free(s);
    dn_model_free(m);
}

/* ------------------------------------------------------------------ activations */

TestSuite(draw_activations, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

Test(draw_activations, maps_follow_the_nodes_output)
{
    /* 2 filters of 1×1: the first copies the image (w = 1), the second negates it (w = −1),
     * so after ReLU the second map is all zero: a dead channel, drawn black. */
    dn_model *m = model_of(tiny_json(1, 2, 1));
    dn_session *s = session_of(m);
    dn_view w, b;
    cr_assert_eq(dn_session_param(s, "W", &w), DN_OK);
    cr_assert_eq(dn_session_param(s, "b", &b), DN_OK);
    ((float *)w.data)[0] = 1;
    ((float *)w.data)[1] = -1;
    ((float *)b.data)[0] = ((float *)b.data)[1] = 0;
    float img[36];
    for (int k = 0; k < 36; k++)
        img[k] = (float)((k * 13) % 36) / 35.0f; /* 0 … 1 in a scrambled order */
    dn_view image = { .dtype = DN_F32, .rank = 3, .shape = { 1, 6, 6 }, .data = img };
    dn_draw_tiles o = DN_DRAW_TILES_DEFAULT;
    o.scale = 4;
    dn_draw_grid g;
    dn_draw_err err;
    const char *path = dn_test_path("act.png");
    cr_assert_eq(dn_draw_activations(s, m, "relu", NULL, &image, &o, path, &g, &err), DN_OK, "%s",
                 err.msg);
    cr_assert_eq(g.rows * g.cols >= 2, true);
    cr_assert_gt(g.x, g.image_x + 6 * 4, "the maps are right of the input image");
    picture p = load_png(path);
    for (int k = 0; k < 36; k++) {
        int want = expected_level(img[k], 0, 1, false);
        cr_assert_eq(level_at(&p, &g, 0, 0, k / 6, k % 6), want, "map 0 value %d", k);
        cr_assert_eq(level_at(&p, &g, 1 / g.cols, 1 % g.cols, k / 6, k % 6), 0, "dead map");
        unsigned char rgb[3];
        rgb_at(&p, g.image_x + (k % 6) * 4 + 2, g.image_y + (k / 6) * 4 + 2, rgb);
        cr_assert_eq(rgb[0], want, "input pixel %d", k);
    }
    free_png(&p);
    dn_session_free(s);
    dn_model_free(m);
}

/* dn_dataset_load_images, which `dagnet activations --image` reads through. */
Test(draw_activations, images_from_idx_and_npy)
{
    const char *idx = dn_test_path("images-idx3-ubyte");
    FILE *f = fopen(idx, "wb");
    cr_assert_not_null(f);
    const unsigned char header[] = { 0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4 };
    fwrite(header, 1, sizeof header, f);
    for (int k = 0; k < 24; k++)
        fputc(k * 10, f);
    fclose(f);
    dn_dataset *d = NULL;
    cr_assert_eq(dn_dataset_load_images(idx, &d), DN_OK, "%s", dn_dataset_errmsg(d));
    dn_view v;
    cr_assert_eq(dn_dataset_images(d, &v), DN_OK);
    cr_assert_eq(v.shape[0], 2);
    cr_assert_eq(v.shape[1], 1);
    cr_assert_eq(v.shape[2], 3);
    cr_assert_eq(v.shape[3], 4);
    cr_assert_float_eq(((float *)v.data)[23], 230 / 255.0f, 1e-7);
    cr_assert_eq(dn_dataset_classes(d), 1);
    dn_dataset_free(d);

    const char *npy = dn_test_path("images.npy");
    float pixels[12];
    for (int k = 0; k < 12; k++)
        pixels[k] = (float)k - 3;
    dn_shape shape = { .rank = 2, .d = { 3, 4 } };
    dn_err err = { 0 };
    cr_assert_eq(dn_npy_write(npy, DN_F32, &shape, pixels, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_dataset_load_images(npy, &d), DN_OK, "%s", dn_dataset_errmsg(d));
    cr_assert_eq(dn_dataset_images(d, &v), DN_OK);
    cr_assert_eq(v.shape[0], 1, "[h, w] is one image");
    cr_assert_float_eq(((float *)v.data)[0], -3, 1e-7);
    dn_dataset_free(d);

    int32_t ints[3] = { 1, 2, 3 };
    dn_shape flat = { .rank = 1, .d = { 3 } };
    cr_assert_eq(dn_npy_write(npy, DN_I32, &flat, ints, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_dataset_load_images(npy, &d), DN_ERR_SHAPE);
    cr_assert_not_null(strstr(dn_dataset_errmsg(d), "expected float32 images"), "%s",
                       dn_dataset_errmsg(d));
    dn_dataset_free(d);
    cr_assert_eq(dn_dataset_load_images(dn_test_path("none.idx"), &d), DN_ERR_IO);
    dn_dataset_free(d);
}

/* ------------------------------------------------------------------ plot */

TestSuite(draw_plot, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

Test(draw_plot, nice_axes)
{
    dn_draw_axis a = dn_draw_nice_axis(0.23, 1.9, 6);
    cr_assert_float_eq(a.lo, 0, 1e-12);
    cr_assert_float_eq(a.hi, 2, 1e-12);
    cr_assert_float_eq(a.step, 0.5, 1e-12);
    a = dn_draw_nice_axis(71.3, 92.4, 6);
    cr_assert_float_eq(a.lo, 70, 1e-9);
    cr_assert_float_eq(a.hi, 95, 1e-9);
    cr_assert_float_eq(a.step, 5, 1e-9);
    a = dn_draw_nice_axis(1, 10, 8);
    cr_assert_float_eq(a.step, 2, 1e-12);
    cr_assert(a.lo <= 1 && a.hi >= 10);
    a = dn_draw_nice_axis(3, 3, 6); /* one value: widened around it */
    cr_assert(a.lo < 3 && a.hi > 3 && a.step > 0);
    for (int ticks = 1; ticks <= 10; ticks++) {
        a = dn_draw_nice_axis(0.1, 0.95, ticks);
        cr_assert(a.step > 0 && a.lo <= 0.1 && a.hi >= 0.95, "%d ticks", ticks);
        cr_assert_leq((a.hi - a.lo) / a.step, ticks + 1e-6, "%d ticks", ticks);
    }
    a = dn_draw_nice_axis(-1e308, 1e308, 6); /* the span overflows */
    cr_assert(a.step > 0 && isfinite(a.step) && a.lo <= -1e308 && a.hi >= 1e308);
    for (double lo = -3; lo < 5; lo += 0.37)
        for (double span = 1e-3; span < 1e4; span *= 3.7) {
            a = dn_draw_nice_axis(lo, lo + span, 6);
            double slack = a.step * 1e-6; /* rounding of lo + span itself */
            cr_assert(a.lo <= lo + slack && a.hi >= lo + span - slack, "[%g, %g] not covered", lo,
                      lo + span);
            cr_assert_leq((a.hi - a.lo) / a.step, 6 + 1e-6);
        }
}

Test(draw_plot, reads_the_log_that_train_writes)
{
    const char *path = dn_test_path("run.csv");
    write_text(path, "epoch,train_loss,train_acc,val_acc,test_acc,lr,seconds,model\n"
                     "1,0.912345,70.1000,75.2000,74.0000,0.001,12.50,lenet5\n"
                     "2,0.500000,80.0000,81.0000,80.5000,0.001,12.40,lenet5\n");
    dn_draw_log log;
    dn_draw_err err;
    cr_assert_eq(dn_draw_log_read(path, &log, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(log.n, 2);
    cr_assert_str_eq(log.label, "run");
    cr_assert_str_eq(log.model, "lenet5");
    cr_assert_float_eq(log.train_loss[0], 0.912345, 1e-12);
    cr_assert_float_eq(log.val_acc[1], 81.0, 1e-12);
    cr_assert_float_eq(log.test_acc[1], 80.5, 1e-12);
    dn_draw_log_free(&log);
    /* an older log: no val_acc, no model column */
    write_text(path, "epoch,train_loss,train_acc,test_acc,lr,seconds\r\n1,1,50,60,0.1,3\r\n\n");
    cr_assert_eq(dn_draw_log_read(path, &log, &err), DN_OK, "%s", err.msg);
    cr_assert_null(log.val_acc);
    cr_assert_null(log.model);
    cr_assert_float_eq(log.test_acc[0], 60, 1e-12);
    dn_draw_log_free(&log);
}

/* The bounding box of the pixels near `rgb` in columns [x0, x1). */
typedef struct box {
    int x0, y0, x1, y1, count;
} box;

static box find_color(const picture *p, const unsigned char rgb[3], int x0, int x1)
{
    box b = { p->width, p->height, -1, -1, 0 };
    for (int y = 0; y < p->height; y++)
        for (int x = x0; x < x1; x++) {
            unsigned char c[3];
            rgb_at(p, x, y, c);
            int d = abs(c[0] - rgb[0]) + abs(c[1] - rgb[1]) + abs(c[2] - rgb[2]);
            if (d <= 12) {
                b.x0 = x < b.x0 ? x : b.x0;
                b.y0 = y < b.y0 ? y : b.y0;
                b.x1 = x > b.x1 ? x : b.x1;
                b.y1 = y > b.y1 ? y : b.y1;
                b.count++;
            }
        }
    return b;
}

static void write_log(const char *path, int epochs, double loss0, double loss1, double acc0,
                      double acc1)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "epoch,train_loss,train_acc,test_acc,lr,seconds,model\n");
    for (int e = 1; e <= epochs; e++) {
        double t = epochs > 1 ? (e - 1.0) / (epochs - 1.0) : 0;
        fprintf(f, "%d,%.6f,%.4f,%.4f,0.001,1.00,tiny\n", e, loss0 + (loss1 - loss0) * t,
                acc0 + (acc1 - acc0) * t, acc0 + (acc1 - acc0) * t - 1);
    }
    fclose(f);
}

Test(draw_plot, curves_follow_the_logs)
{
    /* run a: high loss, 3 epochs; run b: low loss, 6 epochs, higher accuracy */
    const char *a = dn_test_path("a.csv"), *b = dn_test_path("b.csv"),
               *out = dn_test_path("curve.png");
    write_log(a, 3, 2.0, 1.5, 40, 50);
    write_log(b, 6, 0.6, 0.3, 80, 90);
    const char *logs[] = { a, b };
    dn_draw_err err;
    cr_assert_eq(dn_draw_plot(logs, 2, NULL, out, &err), DN_OK, "%s", err.msg);
    picture p = load_png(out);
    unsigned char ca[3], cb[3];
    dn_draw_run_color(0, ca);
    dn_draw_run_color(1, cb);
    int half = p.width / 2;
    box la = find_color(&p, ca, 0, half), lb = find_color(&p, cb, 0, half);
    box aa = find_color(&p, ca, half, p.width), ab = find_color(&p, cb, half, p.width);
    cr_assert(la.count > 0 && lb.count > 0 && aa.count > 0 && ab.count > 0);
    /* loss panel: a's curve lies above b's (screen y grows downward); the legend's swatches,
     * at the bottom, do not move the tops */
    cr_assert_lt(la.y0 + 20, lb.y0, "a's loss (top %d) should be far above b's (top %d)", la.y0,
                 lb.y0);
    /* accuracy panel: b's curve is above a's */
    cr_assert_lt(ab.y0 + 20, aa.y0, "b's accuracy (top %d) should be above a's (top %d)", ab.y0,
                 aa.y0);
    /* 3 of 6 epochs: a's curves end left of b's, about 2/5 of the way along the axis */
    cr_assert_lt(aa.x1 + 40, ab.x1, "a ends at x %d, b at %d", aa.x1, ab.x1);
    free_png(&p);

    /* the same run alone: its loss curve now fills the panel's height */
    const char *one[] = { a };
    cr_assert_eq(dn_draw_plot(one, 1, "a alone", out, &err), DN_OK, "%s", err.msg);
    p = load_png(out);
    box alone = find_color(&p, ca, 0, half);
    cr_assert_lt(alone.y0, la.y0 + 1, "alone, a's curve reaches the panel's top");
    free_png(&p);
    assert_no_tmp_files();
}

Test(draw_plot, svg)
{
    const char *a = dn_test_path("a.csv"), *out = dn_test_path("curve.svg");
    write_log(a, 4, 1.0, 0.5, 60, 70);
    const char *logs[] = { a };
    dn_draw_err err;
    cr_assert_eq(dn_draw_plot(logs, 1, NULL, out, &err), DN_OK, "%s", err.msg);
    char *text = read_all(out);
    cr_assert_not_null(strstr(text, "<svg"));
    free(text);
}

/* ------------------------------------------------------------------ graph */

TestSuite(draw_graph, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

/* A node's statement in Graphviz's DOT output: a line starting with its name and " [". */
static const char *dot_statement(const char *dot, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n\t%s\t[", name);
    const char *p = strstr(dot, key);
    if (!p) {
        snprintf(key, sizeof key, "\n\t%s [", name);
        p = strstr(dot, key);
    }
    return p;
}

/* The attribute text of edge from → to ("from -> to [ ... ]"). */
static bool edge_is_red(const char *dot, const char *from, const char *to)
{
    char key[128];
    snprintf(key, sizeof key, "\t%s -> %s", from, to);
    const char *p = strstr(dot, key);
    cr_assert_not_null(p, "no edge %s -> %s", from, to);
    const char *end = strstr(p, "];");
    cr_assert_not_null(end);
    const char *red = strstr(p, "#c0392b");
    return red && red < end;
}

Test(draw_graph, one_box_per_node_and_the_loss_path)
{
    dn_model *m = model_of(tiny_json(1, 4, 3));
    dn_draw_err err;
    int boxes = 0;
    const char *dot_path = dn_test_path("g.dot"), *svg_path = dn_test_path("g.svg"),
               *png_path = dn_test_path("g.png");
    cr_assert_eq(dn_draw_graph(m, dot_path, &boxes, &err), DN_OK, "%s", err.msg);
    int want = dn_model_node_count(m) + dn_model_input_count(m) + dn_model_param_count(m);
    cr_assert_eq(boxes, want);
    char *dot = read_all(dot_path);
    for (int i = 0; i < dn_model_node_count(m); i++) {
        dn_node_info n;
        cr_assert_eq(dn_model_node_info(m, i, &n), DN_OK);
        const char *st = dot_statement(dot, n.name);
        cr_assert_not_null(st, "no Graphviz node for \"%s\"", n.name);
        cr_assert_not_null(strstr(st, n.op), "\"%s\"'s box does not name its op", n.name);
    }
    cr_assert_not_null(strstr(dot_statement(dot, "loss"), "peripheries=2"));
    cr_assert(edge_is_red(dot, "fc", "loss"));
    cr_assert(edge_is_red(dot, "conv", "relu"));
    cr_assert(edge_is_red(dot, "W", "conv"), "gradients flow to the params");
    cr_assert(!edge_is_red(dot, "fc", "prob"), "prob is not on the loss path");
    cr_assert(!edge_is_red(dot, "image", "conv"), "inputs take no gradient");
    free(dot);

    cr_assert_eq(dn_draw_graph(m, svg_path, &boxes, &err), DN_OK, "%s", err.msg);
    char *svg = read_all(svg_path);
    cr_assert_eq(count_of(svg, "class=\"node\""), want, "one SVG node per graph node");
    cr_assert_eq(count_of(svg, "class=\"edge\""), 10, "an edge per input a node reads");
    free(svg);

    cr_assert_eq(dn_draw_graph(m, png_path, &boxes, &err), DN_OK, "%s", err.msg);
    picture p = load_png(png_path);
    cr_assert(p.width > 100 && p.height > 100);
    free_png(&p);
    assert_no_tmp_files();
    dn_model_free(m);
}

/* ------------------------------------------------------------------ confusion */

TestSuite(draw_confusion, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

Test(draw_confusion, heat_follows_the_rows_shares)
{
    unsigned char prev[3] = { 255, 255, 255 };
    dn_draw_heat_color(0, prev);
    cr_assert(prev[0] == 255 && prev[1] == 255 && prev[2] == 255, "share 0 is white");
    for (int i = 1; i <= 100; i++) {
        unsigned char c[3];
        dn_draw_heat_color(i / 100.0, c);
        cr_assert_lt(c[0] + c[1] + c[2], prev[0] + prev[1] + prev[2], "share %d%%", i);
        memcpy(prev, c, 3);
    }
    int64_t counts[9] = { 90, 10, 0, 5, 80, 15, 0, 0, 50 };
    const char *names[] = { "cat", "dog", "bird" };
    dn_draw_err err;
    const char *path = dn_test_path("confusion.png");
    cr_assert_eq(dn_draw_confusion(counts, 3, names, "test", path, &err), DN_OK, "%s", err.msg);
    picture p = load_png(path);
    /* the picture holds the colours of the diagonal's shares */
    unsigned char c[3];
    dn_draw_heat_color(0.9, c);
    cr_assert_gt(find_color(&p, c, 0, p.width).count, 100, "no cell of share 0.9");
    dn_draw_heat_color(1.0, c);
    cr_assert_gt(find_color(&p, c, 0, p.width).count, 100, "no cell of share 1");
    free_png(&p);
    cr_assert_eq(dn_draw_confusion(counts, 3, dn_draw_fashion_mnist_classes, NULL,
                                   dn_test_path("c.svg"), &err),
                 DN_OK, "%s", err.msg);
}

/* ------------------------------------------------------------------ errors */

TestSuite(draw_errors, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

Test(draw_errors, filters_of_a_node_that_is_not_a_conv)
{
    dn_model *m = model_of(tiny_json(1, 4, 3));
    dn_session *s = session_of(m);
    dn_draw_err err;
    const char *path = dn_test_path("f.png");
    cr_assert_eq(dn_draw_filters(s, m, "relu", NULL, path, NULL, &err), DN_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "node \"relu\" is a ReLU, expected a Conv"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "conv"), "lists the Conv nodes: %s", err.msg);
    cr_assert_eq(dn_draw_filters(s, m, "nope", NULL, path, NULL, &err), DN_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "no node \"nope\""), "%s", err.msg);
    cr_assert_eq(access(path, F_OK), -1, "no picture after a failure");
    dn_session_free(s);
    dn_model_free(m);

    /* a model without a Conv */
    m = model_of("{\"format\": \"dagnet/1\", \"name\": \"flat\","
                 " \"inputs\": {\"x\": {\"shape\": [null, 4]}},"
                 " \"params\": {\"V\": {\"shape\": [4, 2]}, \"c\": {\"shape\": [2]}},"
                 " \"nodes\": [{\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"x\", \"V\","
                 " \"c\"]}], \"outputs\": [\"fc\"]}");
    s = session_of(m);
    cr_assert_eq(dn_draw_filters(s, m, NULL, NULL, path, NULL, &err), DN_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "has no Conv node"), "%s", err.msg);
    dn_session_free(s);
    dn_model_free(m);
}

Test(draw_errors, activations_of_a_missing_or_flat_node)
{
    dn_model *m = model_of(tiny_json(1, 4, 3));
    dn_session *s = session_of(m);
    float img[36] = { 0 };
    dn_view image = { .dtype = DN_F32, .rank = 3, .shape = { 1, 6, 6 }, .data = img };
    dn_draw_err err;
    const char *path = dn_test_path("a.png");
    cr_assert_eq(dn_draw_activations(s, m, "nope", NULL, &image, NULL, path, NULL, &err),
                 DN_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "no node \"nope\""), "%s", err.msg);
    cr_assert_eq(dn_draw_activations(s, m, "fc", NULL, &image, NULL, path, NULL, &err),
                 DN_ERR_SHAPE);
    cr_assert_not_null(strstr(err.msg, "expected feature maps"), "%s", err.msg);
    dn_view wrong = { .dtype = DN_F32, .rank = 3, .shape = { 1, 5, 6 }, .data = img };
    cr_assert_neq(dn_draw_activations(s, m, "relu", NULL, &wrong, NULL, path, NULL, &err), DN_OK);
    cr_assert_not_null(strstr(err.msg, "image"), "names the input: %s", err.msg);
    dn_session_free(s);
    dn_model_free(m);
}

Test(draw_errors, unwritable_paths_and_unknown_formats)
{
    dn_model *m = model_of(tiny_json(1, 4, 3));
    dn_session *s = session_of(m);
    dn_draw_err err;
    const char *bad = "/nonexistent-dagnet-dir/filters.png";
    cr_assert_eq(dn_draw_filters(s, m, NULL, NULL, bad, NULL, &err), DN_ERR_IO);
    cr_assert_not_null(strstr(err.msg, bad), "names the path: %s", err.msg);
    cr_assert_not_null(strstr(err.msg, "No such file"), "says why: %s", err.msg);
    cr_assert_eq(dn_draw_graph(m, "/nonexistent-dagnet-dir/g.svg", NULL, &err), DN_ERR_IO);
    cr_assert_eq(dn_draw_filters(s, m, NULL, NULL, dn_test_path("f.jpg"), NULL, &err), DN_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, ".png or .svg"), "%s", err.msg);
    cr_assert_eq(dn_draw_filters(s, m, NULL, NULL, dn_test_path("f.dot"), NULL, &err), DN_ERR_ARG);
    /* a picture too large for its scale */
    dn_draw_tiles o = DN_DRAW_TILES_DEFAULT;
    o.scale = 64;
    o.columns = 4096;
    cr_assert_eq(dn_draw_filters(s, m, NULL, &o, dn_test_path("big.png"), NULL, &err), DN_OK, "%s",
                 err.msg); /* 4 columns at most: 4 filters */
    o.scale = 65;
    cr_assert_eq(dn_draw_filters(s, m, NULL, &o, dn_test_path("big.png"), NULL, &err), DN_ERR_ARG);
    const char *plot_logs[] = { dn_test_path("none.csv") };
    cr_assert_eq(dn_draw_plot(plot_logs, 1, NULL, dn_test_path("p.png"), &err), DN_ERR_IO);
    cr_assert_not_null(strstr(err.msg, "none.csv"), "%s", err.msg);
    int64_t neg[4] = { 1, -1, 0, 1 };
    cr_assert_eq(dn_draw_confusion(neg, 2, NULL, NULL, dn_test_path("c.png"), &err), DN_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "[0][1] is -1"), "%s", err.msg);
    assert_no_tmp_files();
    dn_session_free(s);
    dn_model_free(m);
}

/* The log's read error for `text`, which must contain `expect`. */
static void bad_log(const char *text, const char *expect)
{
    const char *path = dn_test_path("bad.csv");
    write_text(path, text);
    dn_draw_log log;
    dn_draw_err err;
    cr_assert_eq(dn_draw_log_read(path, &log, &err), DN_ERR_PARSE, "accepted: %s", text);
    cr_assert_not_null(strstr(err.msg, expect), "for %s: %s", text, err.msg);
    cr_assert_not_null(strstr(err.msg, "bad.csv"), "names the file: %s", err.msg);
    cr_assert_null(log.epoch);
    const char *logs[] = { path };
    cr_assert_eq(dn_draw_plot(logs, 1, NULL, dn_test_path("p.png"), &err), DN_ERR_PARSE);
    cr_assert_eq(access(dn_test_path("p.png"), F_OK), -1);
}

Test(draw_errors, empty_and_malformed_logs)
{
    bad_log("", "empty");
    bad_log("\n\n", "empty");
    bad_log("epoch,train_loss\n", "no epochs");
    bad_log("loss,acc\n1,2\n", "no \"epoch\" column");
    bad_log("epoch,lr\n1,0.1\n", "no loss or accuracy column");
    bad_log("epoch,train_loss,test_acc\n1,0.5,80\n2,0.4\n", "bad.csv:3: 2 fields, expected 3");
    bad_log("epoch,train_loss,test_acc\n1,abc,80\n", "bad.csv:2: column 2 (train_loss) is \"abc\"");
    bad_log("epoch,train_loss,test_acc\n1,nan,80\n", "expected a finite number");
    bad_log("epoch,train_loss,test_acc\n1,,80\n", "column 2");
    const char *path = dn_test_path("bad.csv");
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite("epoch,train_loss\n1,\0\n", 1, 22, f);
    fclose(f);
    dn_draw_log log;
    dn_draw_err err;
    cr_assert_eq(dn_draw_log_read(path, &log, &err), DN_ERR_PARSE);
    cr_assert_not_null(strstr(err.msg, "NUL"), "%s", err.msg);
}
