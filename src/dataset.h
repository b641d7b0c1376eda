/*
 * dataset.h — a labelled image data set in memory, and what training does with it:
 * shuffling, gathering mini-batches, holding out a validation split.
 *
 *   images [n, c, h, w] float32, pixel bytes / 255     labels [n] int32
 */
#ifndef DN_DATASET_H
#define DN_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "rng.h"

typedef struct dn_data {
    int64_t n, channels, height, width;
    float *images;   /* owned */
    int32_t *labels; /* owned */
    int32_t classes; /* largest label + 1 */
} dn_data;

/* An IDX pair: images [n, h, w] (one channel) or [n, c, h, w], labels [n]. */
dn_status dn_data_load_idx(const char *images_path, const char *labels_path, dn_data *out, dn_err *err);
/* train-images-idx3-ubyte / train-labels-idx1-ubyte (train) or t10k-… (test) in dir, each
 * with or without .gz. */
dn_status dn_data_load_dir(const char *dir, bool train, dn_data *out, dn_err *err);
/* Move the last n_val examples of *all into *val (n_val in [0, n − 1]). */
dn_status dn_data_split(dn_data *all, int64_t n_val, dn_data *val, dn_err *err);
void dn_data_free(dn_data *d);

/* perm = a uniformly random permutation of 0 .. n−1 (Fisher–Yates on the project's RNG). */
void dn_data_shuffle(int64_t *perm, int64_t n, dn_rng *rng);
/* Copy examples idx[0 .. count) into contiguous batch buffers. */
void dn_data_gather(const dn_data *d, const int64_t *idx, int64_t count, float *images, int32_t *labels);

#endif
