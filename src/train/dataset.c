/*
 * dataset.c — image data sets from IDX files, validation splits, shuffling and mini-batch
 * gathering (see dataset.h).
 *
 * Pixels are converted through a 256-entry table of byte / 255.0f: the division is correctly
 * rounded, so 255 gives exactly 1.0f (a multiplication by 1/255 need not), and the table
 * makes the conversion of 47 million pixels a lookup each.
 */
#include "train/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/fileio.h"
#include "io/idx.h"
#include "io/npy.h"
#include "runtime/parallel.h"
#include "runtime/tensor.h"

/* ---------------------------------------------------------------- loading an IDX pair */

/* The image geometry an IDX array of rank 3 [n,h,w] or 4 [n,c,h,w] describes. */
static dn_status image_shape(const dn_idx *img, const char *path, dn_data *out, dn_err *err)
{
    if (img->rank != 3 && img->rank != 4)
        return dn_err_set(err, DN_ERR_SHAPE,
                          "%s: expected images of rank 3 [n,h,w] or 4 [n,c,h,w], found rank %d",
                          path, img->rank);
    out->n = img->dims[0];
    out->channels = img->rank == 4 ? img->dims[1] : 1;
    out->height = img->dims[img->rank - 2];
    out->width = img->dims[img->rank - 1];
    return DN_OK;
}

static dn_status check_labels(const dn_idx *lab, const dn_idx *img, const char *labels_path,
                              const char *images_path, dn_err *err)
{
    if (lab->rank != 1)
        return dn_err_set(err, DN_ERR_SHAPE, "%s: expected labels of rank 1 [n], found rank %d",
                          labels_path, lab->rank);
    if (lab->dims[0] != img->dims[0])
        return dn_err_set(err, DN_ERR_SHAPE,
                          "%s: %lld labels, but %s holds %lld images: expected one label per "
                          "image",
                          labels_path, (long long)lab->dims[0], images_path,
                          (long long)img->dims[0]);
    return DN_OK;
}

/* images = pixel bytes / 255; the float buffer is 4 times the bytes, so check that it fits. */
static dn_status convert_images(const dn_idx *img, const char *path, dn_data *out, dn_err *err)
{
    if (img->size > SIZE_MAX / sizeof *out->images)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: %zu pixels do not fit in memory as floats", path,
                          img->size);
    out->images = malloc(img->size * sizeof *out->images);
    if (!out->images)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu floats for the images", path,
                          img->size);
    float table[256];
    for (int b = 0; b < 256; b++)
        table[b] = (float)b / 255.0f;
    for (size_t i = 0; i < img->size; i++)
        out->images[i] = table[img->data[i]];
    return DN_OK;
}

/* Labels are bytes, so each is in [0, 255] and classes in [1, 256] by construction. */
static dn_status convert_labels(const dn_idx *lab, const char *path, dn_data *out, dn_err *err)
{
    out->labels = malloc(lab->size * sizeof *out->labels);
    if (!out->labels)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu labels", path, lab->size);
    int32_t top = 0;
    for (size_t i = 0; i < lab->size; i++) {
        out->labels[i] = lab->data[i];
        if (out->labels[i] > top)
            top = out->labels[i];
    }
    out->classes = top + 1;
    return DN_OK;
}

dn_status dn_data_load_idx(const char *images_path, const char *labels_path, dn_data *out,
                           dn_err *err)
{
    memset(out, 0, sizeof *out);
    if (!images_path || !labels_path)
        return dn_err_set(err, DN_ERR_ARG, "dn_data_load_idx: a file path is NULL");
    dn_idx img = { 0 }, lab = { 0 };
    dn_status st;
    if ((st = dn_idx_read(images_path, DN_IDX_MAX_BYTES, &img, err)) != DN_OK ||
        (st = image_shape(&img, images_path, out, err)) != DN_OK ||
        (st = dn_idx_read(labels_path, DN_IDX_MAX_BYTES, &lab, err)) != DN_OK ||
        (st = check_labels(&lab, &img, labels_path, images_path, err)) != DN_OK ||
        (st = convert_labels(&lab, labels_path, out, err)) != DN_OK)
        goto done;
    snprintf(out->label_file, sizeof out->label_file, "%s", labels_path);
    dn_idx_free(&lab); /* before the float images: the peak is then bytes + floats only */
    st = convert_images(&img, images_path, out, err);
done:
    dn_idx_free(&img);
    dn_idx_free(&lab);
    if (st != DN_OK)
        dn_data_free(out);
    return st;
}

/* ---------------------------------------------------------------- images alone */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A .npy of float32 [h,w], [n,h,w] or [n,c,h,w], taken as it is (no scaling). */
static dn_status load_npy_images(const char *path, dn_data *out, dn_err *err)
{
    dn_array a = { 0 };
    dn_status st = dn_npy_read(path, &a, err);
    if (st)
        return st;
    const dn_shape *s = &a.shape;
    if (a.dtype != DN_F32 || s->rank < 2 || s->rank > 4) {
        char shape[DN_SHAPE_STR_MAX];
        dn_shape_str(s, shape, sizeof shape);
        st =
            dn_err_set(err, DN_ERR_SHAPE,
                       "%s: expected float32 images [h,w], [n,h,w] or [n,c,h,w], found %s %s", path,
                       a.dtype == DN_F32   ? "float32"
                       : a.dtype == DN_I32 ? "int32"
                                           : "int64",
                       shape);
        dn_array_free(&a);
        return st;
    }
    out->n = s->rank >= 3 ? s->d[0] : 1;
    out->channels = s->rank == 4 ? s->d[1] : 1;
    out->height = s->d[s->rank - 2];
    out->width = s->d[s->rank - 1];
    out->images = a.data; /* taken over: a.data is malloc'ed */
    return DN_OK;
}

dn_status dn_data_load_images(const char *path, dn_data *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    if (!path)
        return dn_err_set(err, DN_ERR_ARG, "dn_data_load_images: the file path is NULL");
    dn_status st;
    if (has_suffix(path, ".npy")) {
        st = load_npy_images(path, out, err);
    } else {
        dn_idx img = { 0 };
        if ((st = dn_idx_read(path, DN_IDX_MAX_BYTES, &img, err)) == DN_OK &&
            (st = image_shape(&img, path, out, err)) == DN_OK)
            st = convert_images(&img, path, out, err);
        dn_idx_free(&img);
    }
    /* Every label 0 of one class: the images alone, for inspection. */
    if (st == DN_OK) {
        out->classes = 1;
        out->labels = calloc(out->n > 0 ? (size_t)out->n : 1, sizeof *out->labels);
        if (!out->labels)
            st = dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %lld labels", path,
                            (long long)out->n);
    }
    if (st != DN_OK)
        dn_data_free(out);
    return st;
}

/* ---------------------------------------------------------------- the MNIST layout */

/* "dir/name" + suffix in a new string; NULL when out of memory. A trailing '/' of dir is not
 * doubled. */
static char *join(const char *dir, const char *name, const char *suffix)
{
    size_t len = strlen(dir);
    const char *sep = len > 0 && dir[len - 1] == '/' ? "" : "/";
    size_t size = len + strlen(sep) + strlen(name) + strlen(suffix) + 1;
    char *path = malloc(size);
    if (path)
        snprintf(path, size, "%s%s%s%s", dir, sep, name, suffix);
    return path;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* *path = dir/name or dir/name.gz, whichever exists (the plain one when both do: no
 * decompression needed). The message lists both names and the directory when neither does. */
static dn_status find_file(const char *dir, const char *name, const char *what, char **path,
                           dn_err *err)
{
    const char *suffixes[] = { "", ".gz" };
    for (int i = 0; i < 2; i++) {
        *path = join(dir, name, suffixes[i]);
        if (!*path)
            return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate a file name", dir);
        if (exists(*path))
            return DN_OK;
        free(*path);
        *path = NULL;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        char reason[256];
        return dn_err_set(err, DN_ERR_IO, "%s: cannot open the data directory: %s", dir,
                          dn_errno_str(errno, reason, sizeof reason));
    }
    return dn_err_set(err, DN_ERR_IO, "%s: no %s: looked for %s and %s.gz in this directory", dir,
                      what, name, name);
}

dn_status dn_data_load_dir(const char *dir, bool train, dn_data *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    if (!dir)
        return dn_err_set(err, DN_ERR_ARG, "dn_data_load_dir: the directory is NULL");
    const char *images_name = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    const char *labels_name = train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
    char *images = NULL, *labels = NULL;
    dn_status st;
    if ((st = find_file(dir, images_name, train ? "training images" : "test images", &images,
                        err)) == DN_OK &&
        (st = find_file(dir, labels_name, train ? "training labels" : "test labels", &labels,
                        err)) == DN_OK)
        st = dn_data_load_idx(images, labels, out, err);
    free(images);
    free(labels);
    return st;
}

/* ---------------------------------------------------------------- split */

/* Floats per example; the product fitted in memory when the data were loaded. */
static int64_t example_size(const dn_data *d) { return d->channels * d->height * d->width; }

dn_status dn_data_split(dn_data *all, int64_t n_val, dn_data *val, dn_err *err)
{
    memset(val, 0, sizeof *val);
    if (n_val < 0 || n_val > all->n - 1)
        return dn_err_set(err, DN_ERR_ARG,
                          "cannot hold out %lld of %lld examples: expected 0 to %lld, leaving at "
                          "least one for training",
                          (long long)n_val, (long long)all->n,
                          (long long)(all->n > 0 ? all->n - 1 : 0));
    int64_t per = example_size(all), keep = all->n - n_val;
    size_t floats = (size_t)n_val * (size_t)per;
    /* At least one byte each, so that buffers are never NULL, even for an empty split. */
    float *images = malloc(floats ? floats * sizeof *images : 1);
    int32_t *labels = malloc(n_val ? (size_t)n_val * sizeof *labels : 1);
    if (!images || !labels) {
        free(images);
        free(labels);
        return dn_err_set(err, DN_ERR_NOMEM, "cannot allocate a validation split of %lld examples",
                          (long long)n_val);
    }
    memcpy(images, all->images + (size_t)keep * (size_t)per, floats * sizeof *images);
    memcpy(labels, all->labels + keep, (size_t)n_val * sizeof *labels);
    *val = (dn_data){ .n = n_val,
                      .channels = all->channels,
                      .height = all->height,
                      .width = all->width,
                      .images = images,
                      .labels = labels,
                      .classes = all->classes };
    memcpy(val->label_file, all->label_file, sizeof val->label_file);
    all->n = keep;
    return DN_OK;
}

void dn_data_free(dn_data *d)
{
    if (!d)
        return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- batches */

void dn_data_shuffle(int64_t *perm, int64_t n, dn_rng *rng)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    /* Fisher–Yates from the top: position i takes a uniform pick among 0..i. */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)dn_rng_below(rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

typedef struct gather_job {
    const dn_data *d;
    const int64_t *idx;
    float *images;
    int32_t *labels;
} gather_job;

static void gather_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const gather_job *j = ctx;
    size_t per = (size_t)example_size(j->d);
    for (int64_t i = lo; i < hi; i++) {
        memcpy(j->images + (size_t)i * per, j->d->images + (size_t)j->idx[i] * per,
               per * sizeof *j->images);
        j->labels[i] = j->d->labels[j->idx[i]];
    }
}

/* Floats from which two threads copy a batch faster than one: a LeNet-5 batch of 100 (78 Ki)
 * is a serial stretch of the step otherwise. */
#define GATHER_PARALLEL_MIN 32768

void dn_data_gather(const dn_data *d, const int64_t *idx, int64_t count, float *images,
                    int32_t *labels, int threads)
{
    int team = dn_team(threads, count * example_size(d), GATHER_PARALLEL_MIN);
    dn_parallel_for(count, team, gather_range, &(gather_job){ d, idx, images, labels });
}

void dn_data_mirror(const dn_data *d, float *images, int64_t count, uint64_t key, int64_t first)
{
    int64_t rows = d->channels * d->height, w = d->width;
    for (int64_t i = 0; i < count; i++) {
        if (!(dn_rng_hash(key, (uint64_t)(first + i)) >> 63))
            continue;
        float *row = images + i * rows * w;
        for (int64_t r = 0; r < rows; r++, row += w)
            for (int64_t a = 0, b = w - 1; a < b; a++, b--) {
                float tmp = row[a];
                row[a] = row[b];
                row[b] = tmp;
            }
    }
}

/* row[x] ← src[x + dx], 0 where x + dx leaves [0, w). src may be row itself (memmove). */
static void shift_row(float *row, const float *src, int64_t w, int64_t dx)
{
    int64_t keep = w - (dx < 0 ? -dx : dx);
    if (dx >= 0) {
        memmove(row, src + dx, (size_t)keep * sizeof *row);
        memset(row + keep, 0, (size_t)dx * sizeof *row);
    } else {
        memmove(row - dx, src, (size_t)keep * sizeof *row);
        memset(row, 0, (size_t)-dx * sizeof *row);
    }
}

void dn_data_shift(const dn_data *d, float *images, int64_t count, uint64_t key, int64_t first,
                   int shift)
{
    int64_t h = d->height, w = d->width, span = 2 * (int64_t)shift + 1;
    for (int64_t i = 0; i < count; i++) {
        /* The example's own generator, started from its hash: two unbiased draws. */
        dn_rng r = { .state = dn_rng_hash(key, (uint64_t)(first + i)) };
        int64_t dy = (int64_t)dn_rng_below(&r, (uint64_t)span) - shift;
        int64_t dx = (int64_t)dn_rng_below(&r, (uint64_t)span) - shift;
        if (dy == 0 && dx == 0)
            continue;
        for (int64_t c = 0; c < d->channels; c++) {
            float *plane = images + (i * d->channels + c) * h * w;
            /* Rows in the order that reads each source row before it is overwritten. */
            for (int64_t k = 0; k < h; k++) {
                int64_t y = dy >= 0 ? k : h - 1 - k, sy = y + dy;
                if (sy >= 0 && sy < h)
                    shift_row(plane + y * w, plane + sy * w, w, dx);
                else
                    memset(plane + y * w, 0, (size_t)w * sizeof *plane);
            }
        }
    }
}

int64_t dn_data_batches(int64_t n, int64_t batch)
{
    if (n <= 0 || batch <= 0)
        return 0;
    return n / batch + (n % batch != 0); /* ceil without n + batch − 1 overflowing */
}
