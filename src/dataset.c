/* dataset.c — image data sets from IDX files, shuffling and batching (see dataset.h). */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "idx.h"

/* Uncompressed IDX files above this are refused (Fashion-MNIST's largest is 47 MB). */
#define MAX_IDX_BYTES ((size_t)4 << 30)

static dn_status fill(dn_data *out, const dn_idx *img, const dn_idx *lab, const char *images_path,
                      const char *labels_path, dn_err *err)
{
    if (img->rank != 3 && img->rank != 4)
        return dn_err_set(err, DN_ERR_PARSE, "%s: images must be an IDX array of rank 3 [n,h,w] or 4 [n,c,h,w], found rank %d",
                          images_path, img->rank);
    if (lab->rank != 1)
        return dn_err_set(err, DN_ERR_PARSE, "%s: labels must be an IDX array of rank 1 [n], found rank %d",
                          labels_path, lab->rank);
    if (img->dims[0] != lab->dims[0])
        return dn_err_set(err, DN_ERR_PARSE, "%s holds %lld images but %s holds %lld labels", images_path,
                          (long long)img->dims[0], labels_path, (long long)lab->dims[0]);
    out->n = img->dims[0];
    out->channels = img->rank == 4 ? img->dims[1] : 1;
    out->height = img->dims[img->rank - 2];
    out->width = img->dims[img->rank - 1];
    out->images = malloc(img->size * sizeof *out->images);
    out->labels = malloc((size_t)out->n * sizeof *out->labels);
    if (!out->images || !out->labels)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: out of memory for %lld images", images_path, (long long)out->n);
    for (size_t i = 0; i < img->size; i++)
        out->images[i] = (float)img->data[i] / 255.0f;
    out->classes = 0;
    for (int64_t i = 0; i < out->n; i++) {
        out->labels[i] = lab->data[i];
        if (out->labels[i] + 1 > out->classes)
            out->classes = out->labels[i] + 1;
    }
    return DN_OK;
}

dn_status dn_data_load_idx(const char *images_path, const char *labels_path, dn_data *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    dn_idx img, lab;
    memset(&lab, 0, sizeof lab);
    dn_status st = dn_idx_read(images_path, MAX_IDX_BYTES, &img, err);
    if (!st)
        st = dn_idx_read(labels_path, MAX_IDX_BYTES, &lab, err);
    if (!st)
        st = fill(out, &img, &lab, images_path, labels_path, err);
    dn_idx_free(&img);
    dn_idx_free(&lab);
    if (st)
        dn_data_free(out);
    return st;
}

/* dir/name, or dir/name.gz when only that exists; false when neither does. */
static bool find_file(const char *dir, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    if (access(path, R_OK) == 0)
        return true;
    snprintf(path, size, "%s/%s.gz", dir, name);
    return access(path, R_OK) == 0;
}

dn_status dn_data_load_dir(const char *dir, bool train, dn_data *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    const char *prefix = train ? "train" : "t10k";
    char images_name[64], labels_name[64], images[4096], labels[4096];
    snprintf(images_name, sizeof images_name, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_name, sizeof labels_name, "%s-labels-idx1-ubyte", prefix);
    if (!find_file(dir, images_name, images, sizeof images))
        return dn_err_set(err, DN_ERR_IO, "%s: no %s or %s.gz (the %s images of an MNIST-format data set)",
                          dir, images_name, images_name, train ? "training" : "test");
    if (!find_file(dir, labels_name, labels, sizeof labels))
        return dn_err_set(err, DN_ERR_IO, "%s: no %s or %s.gz (the %s labels of an MNIST-format data set)",
                          dir, labels_name, labels_name, train ? "training" : "test");
    return dn_data_load_idx(images, labels, out, err);
}

dn_status dn_data_split(dn_data *all, int64_t n_val, dn_data *val, dn_err *err)
{
    memset(val, 0, sizeof *val);
    if (n_val < 0 || n_val >= all->n)
        return dn_err_set(err, DN_ERR_ARG, "a validation split of %lld examples needs more than that in the data set (it has %lld)",
                          (long long)n_val, (long long)all->n);
    int64_t per = all->channels * all->height * all->width, keep = all->n - n_val;
    *val = (dn_data){ .n = n_val, .channels = all->channels, .height = all->height, .width = all->width,
                      .classes = all->classes };
    val->images = malloc((size_t)(n_val * per) * sizeof *val->images + 1);
    val->labels = malloc((size_t)n_val * sizeof *val->labels + 1);
    if (!val->images || !val->labels) {
        dn_data_free(val);
        return dn_err_set(err, DN_ERR_NOMEM, "out of memory for a validation split of %lld", (long long)n_val);
    }
    memcpy(val->images, all->images + keep * per, (size_t)(n_val * per) * sizeof *val->images);
    memcpy(val->labels, all->labels + keep, (size_t)n_val * sizeof *val->labels);
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

void dn_data_shuffle(int64_t *perm, int64_t n, dn_rng *rng)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)dn_rng_below(rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void dn_data_gather(const dn_data *d, const int64_t *idx, int64_t count, float *images, int32_t *labels)
{
    int64_t per = d->channels * d->height * d->width;
    for (int64_t i = 0; i < count; i++) {
        memcpy(images + i * per, d->images + idx[i] * per, (size_t)per * sizeof *images);
        labels[i] = d->labels[idx[i]];
    }
}
