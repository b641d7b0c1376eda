/*
 * dataset.h — a labelled image data set in memory, and what training does with it:
 * loading IDX pairs, shuffling, gathering mini-batches, holding out a validation split.
 *
 *   images [n, c, h, w] float32, pixel byte / 255 (so 0 → 0.0f and 255 → 1.0f exactly)
 *   labels [n] int32, each in [0, classes)
 *
 * The data come from IDX files (idx.h): images of rank 3 [n, h, w] (one channel) or rank 4
 * [n, c, h, w], and labels of rank 1 [n], raw or gzipped. A directory in the MNIST layout
 * holds the four standard names:
 *   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte
 *   t10k-labels-idx1-ubyte   each with or without ".gz"
 */
#ifndef DN_DATASET_H
#define DN_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/error.h"
#include "runtime/rng.h"

typedef struct dn_data {
    int64_t n, channels, height, width;
    float *images;   /* owned: n·c·h·w, scaled to [0, 1] (byte / 255) */
    int32_t *labels; /* owned: n */
    int32_t classes; /* largest label + 1 */
    /* the labels' file, for messages ("" when the labels came from elsewhere); truncated if
     * longer */
    char label_file[512];
} dn_data;

/* Load an IDX pair. The counts of images and labels must match. On failure *out is zeroed
 * (dn_data_free is harmless). Errors: DN_ERR_IO, DN_ERR_PARSE (bad file), DN_ERR_SHAPE
 * (ranks or counts that do not fit together), DN_ERR_NOMEM. */
dn_status dn_data_load_idx(const char *images_path, const char *labels_path, dn_data *out,
                           dn_err *err);

/* Images without labels from one file: an IDX file (raw or gzipped) of rank 3 [n,h,w] or 4
 * [n,c,h,w], pixels scaled as above, or a .npy of float32 [h,w] (one image), [n,h,w] or
 * [n,c,h,w], values as they are. Every label is 0 and classes is 1. */
dn_status dn_data_load_images(const char *path, dn_data *out, dn_err *err);

/* Load the training (train = true: "train-…") or test ("t10k-…") pair from dir, each file
 * plain or with ".gz" (the plain one when both exist). */
dn_status dn_data_load_dir(const char *dir, bool train, dn_data *out, dn_err *err);

/* Hold out the last n_val examples of *all as *val (fresh copies; n_val in [0, n − 1]) and
 * shrink all->n; all's buffers are kept as they are. val->classes is all->classes, so both
 * parts describe the same classifier. On failure *all is unchanged and *val zeroed.
 * Errors: DN_ERR_ARG (n_val out of range), DN_ERR_NOMEM. */
dn_status dn_data_split(dn_data *all, int64_t n_val, dn_data *val, dn_err *err);

/* Free the buffers and zero *d. Safe on a zeroed data set and on NULL. */
void dn_data_free(dn_data *d);

/* perm = a uniformly random permutation of 0 .. n−1: Fisher–Yates on the project's RNG, so
 * the same generator state gives the same permutation on every machine. */
void dn_data_shuffle(int64_t *perm, int64_t n, dn_rng *rng);

/* Copy examples idx[0 .. count) into contiguous batch buffers: images count·c·h·w floats,
 * labels count ints, on up to `threads` threads for a large batch. The indices must be in
 * [0, n). Allocates nothing. */
void dn_data_gather(const dn_data *d, const int64_t *idx, int64_t count, float *images,
                    int32_t *labels, int threads);

/* Mirror augmentation: flip image i of images[count, c, h, w] left to right (along w) when
 * the top bit of dn_rng_hash(key, first + i) is set, so that a flip depends only on the key
 * and the example's position `first + i` in the epoch, not on how the epoch is cut into
 * batches or shards. Allocates nothing. */
void dn_data_mirror(const dn_data *d, float *images, int64_t count, uint64_t key, int64_t first);

/* Shift augmentation (torchvision's RandomCrop(size, padding=shift) with zero fill): move
 * image i of images[count, c, h, w] by (dy, dx) pixels, each uniform in [−shift, shift] and
 * drawn (dn_rng_below) from a generator started at dn_rng_hash(key, first + i), so that, as
 * dn_data_mirror's flips, they depend only on the key and the position; pixels moved in
 * from outside the image are 0. out[c, y, x] = in[c, y + dy, x + dx]. shift must be less than
 * h and w (the trainer checks). In place; allocates nothing. */
void dn_data_shift(const dn_data *d, float *images, int64_t count, uint64_t key, int64_t first,
                   int shift);

/* The number of mini-batches of `batch` examples covering n, the last one partial:
 * ceil(n / batch); 0 when n <= 0 or batch <= 0. */
int64_t dn_data_batches(int64_t n, int64_t batch);

/* The public handle of a data set (dagnet.h): the examples and the handle's message. */
struct dn_dataset {
    dn_data data;
    dn_err err;
};

#endif
