/*
 * test_data.c — IDX files (io/idx.c: suite io_idx) and image data sets in memory
 * (train/dataset.c: data_load, data_split, data_batch).
 *
 * Every test builds its own small IDX files in its scratch directory, raw or gzipped through
 * zlib's gzopen/gzwrite, so nothing depends on a data set being installed. Round trips check
 * dims and bytes, and that pixels scale exactly (0 → 0.0f, 255 → 1.0f). The hostile-file tests
 * check the status and the words of each message: the file it names and what was wrong
 * (bad magic, unsupported type, rank 0 or 5, a zero dimension, truncated or trailing data, a
 * gzip bomb beyond the cap, a corrupt or truncated gzip stream). The data-set tests cover the
 * directory loader (gzipped and plain names), mismatched counts, validation splits, shuffling,
 * gathering and the batch count.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "helpers.h"
#include "io/idx.h"
#include "runtime/error.h"
#include "runtime/rng.h"
#include "train/dataset.h"

/* ---------------------------------------------------------------- fixtures and helpers */

TestSuite(io_idx, .init = dn_test_dir_init, .fini = dn_test_dir_fini);
TestSuite(data_load, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

/* An IDX image in memory: header (type, rank, big-endian dims), then n data bytes. */
typedef struct bytes {
    unsigned char *p;
    size_t n;
} bytes;

static bytes idx_image(int type, int rank, const uint32_t *dims, const unsigned char *data,
                       size_t n)
{
    bytes b = { .n = 4 + 4 * (size_t)rank + n };
    b.p = malloc(b.n ? b.n : 1);
    cr_assert_not_null(b.p);
    b.p[0] = 0;
    b.p[1] = 0;
    b.p[2] = (unsigned char)type;
    b.p[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++)
        for (int k = 0; k < 4; k++)
            b.p[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    if (n)
        memcpy(b.p + 4 + 4 * (size_t)rank, data, n);
    return b;
}

/* mode "wb" writes a gzip file, "ab" appends another gzip member to it. */
static void write_gz_mode(const char *path, const void *data, size_t n, const char *mode)
{
    gzFile g = gzopen(path, mode);
    cr_assert_not_null(g, "cannot create %s", path);
    cr_assert_eq(gzwrite(g, data, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(g), Z_OK);
}

static void write_gz(const char *path, const void *data, size_t n)
{
    write_gz_mode(path, data, n, "wb");
}

/* An unsigned-byte IDX file at dn_test_dir/name, gzipped when gz. */
static const char *write_idx(const char *name, bool gz, int rank, const uint32_t *dims,
                             const unsigned char *data, size_t n)
{
    const char *path = dn_test_path(name);
    bytes b = idx_image(0x08, rank, dims, data, n);
    if (gz)
        write_gz(path, b.p, b.n);
    else
        dn_test_write_file(path, b.p, b.n);
    free(b.p);
    return path;
}

static bytes slurp(const char *path)
{
    bytes b;
    b.p = dn_test_read_file(path, &b.n);
    return b;
}

/* Read dn_test_dir/name and expect the status and message fragments; the result stays empty. */
static void expect_read_error(const char *path, size_t max_bytes, dn_status status,
                              const char *const *fragments)
{
    dn_idx x;
    dn_err err;
    dn_err_clear(&err);
    dn_test_expect_status(dn_idx_read(path, max_bytes, &x, &err), status, err.msg);
    cr_assert_null(x.data);
    cr_assert_eq(x.rank, 0);
    dn_test_expect_msg(err.msg, path, fragments);
}

static const uint32_t DIMS_2x2x3[3] = { 2, 2, 3 };
static const unsigned char PIX_12[12] = { 0, 1, 2, 3, 127, 128, 200, 250, 251, 252, 254, 255 };

static void check_2x2x3(const dn_idx *x)
{
    cr_assert_eq(x->rank, 3);
    cr_assert_eq(x->dims[0], 2);
    cr_assert_eq(x->dims[1], 2);
    cr_assert_eq(x->dims[2], 3);
    cr_assert_eq(x->size, 12);
    cr_assert_not_null(x->data);
    cr_assert_arr_eq(x->data, PIX_12, 12);
}

/* ---------------------------------------------------------------- idx: round trips */

Test(io_idx, raw_round_trip)
{
    const char *path = write_idx("a.idx", false, 3, DIMS_2x2x3, PIX_12, 12);
    dn_idx x;
    dn_err err;
    cr_assert_eq(dn_idx_read(path, DN_IDX_MAX_BYTES, &x, &err), DN_OK, "%s", err.msg);
    check_2x2x3(&x);
    dn_idx_free(&x);
    cr_assert_null(x.data);
    dn_idx_free(&x); /* twice is harmless */
}

Test(io_idx, gzip_round_trip)
{
    const char *path = write_idx("a.idx.gz", true, 3, DIMS_2x2x3, PIX_12, 12);
    bytes raw = slurp(path);
    cr_assert(raw.n > 2 && raw.p[0] == 0x1f && raw.p[1] == 0x8b, "not written as gzip");
    free(raw.p);
    dn_idx x;
    dn_err err;
    cr_assert_eq(dn_idx_read(path, DN_IDX_MAX_BYTES, &x, &err), DN_OK, "%s", err.msg);
    check_2x2x3(&x);
    dn_idx_free(&x);
}

/* Rank 1 and rank 4, the extremes allowed. */
Test(io_idx, rank_1_and_4)
{
    const uint32_t d1[1] = { 5 }, d4[4] = { 1, 2, 1, 3 };
    const unsigned char lab[5] = { 9, 0, 3, 3, 1 };
    dn_idx x;
    dn_err err;
    cr_assert_eq(dn_idx_read(write_idx("l", false, 1, d1, lab, 5), 100, &x, &err), DN_OK, "%s",
                 err.msg);
    cr_assert_eq(x.rank, 1);
    cr_assert_eq(x.dims[0], 5);
    cr_assert_arr_eq(x.data, lab, 5);
    dn_idx_free(&x);
    cr_assert_eq(dn_idx_read(write_idx("i", true, 4, d4, PIX_12, 6), 100, &x, &err), DN_OK, "%s",
                 err.msg);
    cr_assert_eq(x.rank, 4);
    cr_assert_eq(x.dims[3], 3);
    cr_assert_eq(x.size, 6);
    dn_idx_free(&x);
}

/* gunzip accepts concatenated members; so do we. */
Test(io_idx, gzip_concatenated_members)
{
    bytes b = idx_image(0x08, 3, DIMS_2x2x3, PIX_12, 12);
    const char *path = dn_test_path("multi.gz");
    write_gz_mode(path, b.p, 10, "wb");
    write_gz_mode(path, b.p + 10, b.n - 10, "ab");
    free(b.p);
    dn_idx x;
    dn_err err;
    cr_assert_eq(dn_idx_read(path, DN_IDX_MAX_BYTES, &x, &err), DN_OK, "%s", err.msg);
    check_2x2x3(&x);
    dn_idx_free(&x);
}

Test(io_idx, parse_copies_the_data)
{
    bytes b = idx_image(0x08, 3, DIMS_2x2x3, PIX_12, 12);
    dn_idx x;
    dn_err err;
    cr_assert_eq(dn_idx_parse(b.p, b.n, "mem", &x, &err), DN_OK, "%s", err.msg);
    memset(b.p, 0xAA, b.n); /* the caller's buffer is not kept */
    free(b.p);
    check_2x2x3(&x);
    dn_idx_free(&x);
}

/* ---------------------------------------------------------------- idx: hostile headers */

Test(io_idx, bad_magic)
{
    unsigned char bad[] = { 0x01, 0x00, 0x08, 0x01, 0, 0, 0, 1, 7 };
    const char *path = dn_test_path("magic.idx");
    dn_test_write_file(path, bad, sizeof bad);
    expect_read_error(path, 1000, DN_ERR_PARSE,
                      FRAGS("not an IDX file", "magic", "00 00", "found 01 00"));
}

Test(io_idx, unsupported_type)
{
    bytes b = idx_image(0x0D, 1, (const uint32_t[]){ 1 }, (const unsigned char[]){ 0, 0, 0, 0 }, 4);
    const char *path = dn_test_path("float.idx");
    dn_test_write_file(path, b.p, b.n);
    free(b.p);
    expect_read_error(path, 1000, DN_ERR_PARSE,
                      FRAGS("element type 0x0d", "float32", "not supported", "expected 0x08"));
    /* A type the format does not define is reported as unknown. */
    b = idx_image(0x42, 1, (const uint32_t[]){ 1 }, (const unsigned char[]){ 0 }, 1);
    dn_idx x;
    dn_err err;
    cr_assert_eq(dn_idx_parse(b.p, b.n, "mem", &x, &err), DN_ERR_PARSE);
    free(b.p);
    EXPECT_MSG_FROM(err.msg, "mem", "0x42", "unknown type");
}

Test(io_idx, rank_0_and_5)
{
    const uint32_t dims[5] = { 1, 1, 1, 1, 1 };
    const unsigned char one = 1;
    expect_read_error(write_idx("r0", false, 0, dims, &one, 1), 1000, DN_ERR_PARSE,
                      FRAGS("rank 0", "expected 1 to 4"));
    expect_read_error(write_idx("r5.gz", true, 5, dims, &one, 1), 1000, DN_ERR_PARSE,
                      FRAGS("rank 5", "expected 1 to 4"));
}

Test(io_idx, zero_dimension)
{
    const uint32_t dims[3] = { 3, 0, 4 };
    expect_read_error(write_idx("zero", false, 3, dims, NULL, 0), 1000, DN_ERR_PARSE,
                      FRAGS("dimension 1 is 0", "expected every dimension >= 1"));
}

/* Four dims of 2^32 − 1: the product overflows int64, which must be caught, not wrapped. */
Test(io_idx, dimension_product_overflows)
{
    const uint32_t dims[4] = { UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX };
    expect_read_error(write_idx("huge", false, 4, dims, PIX_12, 12), 1000, DN_ERR_PARSE,
                      FRAGS("[4294967295,4294967295]", "more elements"));
}

Test(io_idx, truncated_header)
{
    const unsigned char head[] = { 0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0 };
    const char *path = dn_test_path("head");
    dn_test_write_file(path, head, sizeof head);
    expect_read_error(
        path, 1000, DN_ERR_PARSE,
        FRAGS("truncated IDX header", "expected 16 bytes", "3 dimensions", "found 10"));
    dn_test_write_file(path, head, 3);
    expect_read_error(path, 1000, DN_ERR_PARSE,
                      FRAGS("too short", "expected at least 4 bytes", "found 3"));
    dn_test_write_file(path, head, 0);
    expect_read_error(path, 1000, DN_ERR_PARSE, FRAGS("too short", "found 0"));
}

Test(io_idx, truncated_data)
{
    const uint32_t dims[2] = { 4, 4 };
    expect_read_error(write_idx("short", false, 2, dims, PIX_12, 10), 1000, DN_ERR_PARSE,
                      FRAGS("truncated", "expected 16 bytes", "[4,4]", "found 10"));
    expect_read_error(write_idx("short.gz", true, 2, dims, PIX_12, 10), 1000, DN_ERR_PARSE,
                      FRAGS("truncated", "expected 16 bytes", "found 10"));
}

Test(io_idx, trailing_data)
{
    const uint32_t dims[2] = { 2, 5 };
    expect_read_error(write_idx("long", false, 2, dims, PIX_12, 12), 1000, DN_ERR_PARSE,
                      FRAGS("trailing bytes", "expected 10 bytes", "found 12"));
}

Test(io_idx, missing_file)
{
    expect_read_error(dn_test_path("nothing-here"), 1000, DN_ERR_IO, FRAGS("cannot open"));
}

/* ---------------------------------------------------------------- idx: hostile gzip */

/* 4 MiB of zeros compress to about 4 KiB; with a 64 KiB cap the reader must stop at the cap. */
Test(io_idx, gzip_bomb_is_capped)
{
    size_t n = (size_t)4 << 20;
    unsigned char *zeros = calloc(n, 1);
    cr_assert_not_null(zeros);
    const char *path = write_idx("bomb.gz", true, 1, (const uint32_t[]){ (uint32_t)n }, zeros, n);
    free(zeros);
    expect_read_error(path, 65536, DN_ERR_IO,
                      FRAGS("decompress to more than the limit of 65536 bytes"));
}

/* The cap is inclusive: a file of exactly max_bytes decompressed is read, one byte less fails. */
Test(io_idx, gzip_cap_boundary)
{
    const char *path = write_idx("edge.gz", true, 3, DIMS_2x2x3, PIX_12, 12);
    size_t total = 4 + 3 * 4 + 12;
    dn_idx x;
    dn_err err;
    cr_assert_eq(dn_idx_read(path, total, &x, &err), DN_OK, "%s", err.msg);
    check_2x2x3(&x);
    dn_idx_free(&x);
    expect_read_error(path, total - 1, DN_ERR_IO, FRAGS("more than the limit of 27 bytes"));
}

Test(io_idx, raw_file_over_the_cap)
{
    const char *path = write_idx("big", false, 3, DIMS_2x2x3, PIX_12, 12);
    expect_read_error(path, 20, DN_ERR_IO, FRAGS("28 bytes", "larger than the limit of 20"));
}

/* A gzip file with its first deflate block header set to the reserved block type 3. */
Test(io_idx, corrupt_gzip_stream)
{
    const char *path = write_idx("bad.gz", true, 3, DIMS_2x2x3, PIX_12, 12);
    bytes b = slurp(path);
    cr_assert(b.n > 18);
    b.p[10] = 0xFF; /* the gzip header is 10 bytes (gzopen writes no file name) */
    dn_test_write_file(path, b.p, b.n);
    free(b.p);
    expect_read_error(path, 1000, DN_ERR_PARSE, FRAGS("corrupt gzip data", "invalid block type"));
}

/* Intact deflate data but a wrong CRC in the trailer. */
Test(io_idx, gzip_checksum_mismatch)
{
    const char *path = write_idx("crc.gz", true, 3, DIMS_2x2x3, PIX_12, 12);
    bytes b = slurp(path);
    b.p[b.n - 8] ^= 0x5A;
    dn_test_write_file(path, b.p, b.n);
    free(b.p);
    expect_read_error(path, 1000, DN_ERR_PARSE, FRAGS("corrupt gzip data", "incorrect data check"));
}

Test(io_idx, truncated_gzip_stream)
{
    unsigned char pix[300];
    for (int i = 0; i < 300; i++)
        pix[i] = (unsigned char)(i * 37 + i / 7); /* poorly compressible */
    const char *path = write_idx("cut.gz", true, 2, (const uint32_t[]){ 10, 30 }, pix, 300);
    bytes b = slurp(path);
    dn_test_write_file(path, b.p, b.n / 2);
    free(b.p);
    expect_read_error(path, 1000, DN_ERR_PARSE, FRAGS("truncated gzip data", "ends early"));
}

Test(io_idx, bytes_after_gzip_stream)
{
    const char *path = write_idx("junk.gz", true, 3, DIMS_2x2x3, PIX_12, 12);
    bytes b = slurp(path);
    b.p = realloc(b.p, b.n + 4);
    memcpy(b.p + b.n, "junk", 4);
    dn_test_write_file(path, b.p, b.n + 4);
    free(b.p);
    expect_read_error(path, 1000, DN_ERR_PARSE, FRAGS("4 trailing bytes after the gzip data"));
}

/* ---------------------------------------------------------------- data sets: loading */

/* 3 images of 2×2 and their labels. */
static const unsigned char IMG_3x2x2[12] = { 0, 255, 128, 1, 255, 255, 0, 0, 51, 102, 153, 204 };
static const unsigned char LAB_3[3] = { 0, 9, 4 };

static void check_3x2x2(const dn_data *d)
{
    cr_assert_eq(d->n, 3);
    cr_assert_eq(d->channels, 1);
    cr_assert_eq(d->height, 2);
    cr_assert_eq(d->width, 2);
    cr_assert_eq(d->classes, 10);
    for (int i = 0; i < 12; i++)
        cr_assert(d->images[i] == (float)IMG_3x2x2[i] / 255.0f, "pixel %d: %.9g", i,
                  (double)d->images[i]);
    cr_assert(d->images[1] == 1.0f && d->images[0] == 0.0f, "255 must be 1 and 0 must be 0");
    cr_assert(d->images[8] == 0.2f, "51/255 is 0.2f: %.9g", (double)d->images[8]);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(d->labels[i], LAB_3[i]);
}

Test(data_load, load_idx_pair)
{
    const char *img = write_idx("img", false, 3, (const uint32_t[]){ 3, 2, 2 }, IMG_3x2x2, 12);
    const char *lab = write_idx("lab.gz", true, 1, (const uint32_t[]){ 3 }, LAB_3, 3);
    dn_data d;
    dn_err err;
    cr_assert_eq(dn_data_load_idx(img, lab, &d, &err), DN_OK, "%s", err.msg);
    check_3x2x2(&d);
    dn_data_free(&d);
    cr_assert_null(d.images);
    dn_data_free(&d);
}

Test(data_load, load_rank_4_images)
{
    const char *img = write_idx("img4", true, 4, (const uint32_t[]){ 2, 3, 1, 2 }, PIX_12, 12);
    const char *lab =
        write_idx("lab", false, 1, (const uint32_t[]){ 2 }, (const unsigned char[]){ 1, 0 }, 2);
    dn_data d;
    dn_err err;
    cr_assert_eq(dn_data_load_idx(img, lab, &d, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(d.n, 2);
    cr_assert_eq(d.channels, 3);
    cr_assert_eq(d.height, 1);
    cr_assert_eq(d.width, 2);
    cr_assert_eq(d.classes, 2);
    cr_assert(d.images[11] == 1.0f);
    dn_data_free(&d);
}

Test(data_load, counts_mismatch)
{
    const char *img = write_idx("imgs", false, 3, (const uint32_t[]){ 3, 2, 2 }, IMG_3x2x2, 12);
    const char *lab = write_idx("labs", false, 1, (const uint32_t[]){ 2 }, LAB_3, 2);
    dn_data d;
    dn_err err;
    cr_assert_eq(dn_data_load_idx(img, lab, &d, &err), DN_ERR_SHAPE);
    cr_assert_null(d.images);
    cr_assert_null(d.labels);
    cr_assert_eq(d.n, 0);
    EXPECT_MSG_FROM(err.msg, lab, "2 labels", img, "3 images", "one label per image");
}

Test(data_load, wrong_ranks)
{
    const char *img2 = write_idx("img2", false, 2, (const uint32_t[]){ 3, 4 }, IMG_3x2x2, 12);
    const char *img3 = write_idx("img3", false, 3, (const uint32_t[]){ 3, 2, 2 }, IMG_3x2x2, 12);
    const char *lab2 = write_idx("lab2", false, 2, (const uint32_t[]){ 3, 1 }, LAB_3, 3);
    dn_data d;
    dn_err err;
    cr_assert_eq(dn_data_load_idx(img2, lab2, &d, &err), DN_ERR_SHAPE);
    EXPECT_MSG_FROM(err.msg, img2, "expected images of rank 3 [n,h,w] or 4 [n,c,h,w]",
                    "found rank 2");
    cr_assert_eq(dn_data_load_idx(img3, lab2, &d, &err), DN_ERR_SHAPE);
    EXPECT_MSG_FROM(err.msg, lab2, "expected labels of rank 1", "found rank 2");
}

/* A bad labels file is reported under its own name. */
Test(data_load, bad_labels_file)
{
    const char *img = write_idx("img", false, 3, (const uint32_t[]){ 3, 2, 2 }, IMG_3x2x2, 12);
    const char *lab = write_idx("lab", false, 1, (const uint32_t[]){ 4 }, LAB_3, 3);
    dn_data d;
    dn_err err;
    cr_assert_eq(dn_data_load_idx(img, lab, &d, &err), DN_ERR_PARSE);
    EXPECT_MSG_FROM(err.msg, lab, "truncated", "expected 4 bytes", "found 3");
    cr_assert_null(d.images);
}

/* Training files gzipped, test files plain: the loader finds both. */
Test(data_load, load_dir_gz_and_plain)
{
    write_idx("train-images-idx3-ubyte.gz", true, 3, (const uint32_t[]){ 3, 2, 2 }, IMG_3x2x2, 12);
    write_idx("train-labels-idx1-ubyte.gz", true, 1, (const uint32_t[]){ 3 }, LAB_3, 3);
    write_idx("t10k-images-idx3-ubyte", false, 3, (const uint32_t[]){ 1, 2, 2 }, IMG_3x2x2, 4);
    write_idx("t10k-labels-idx1-ubyte", false, 1, (const uint32_t[]){ 1 }, LAB_3 + 2, 1);
    dn_data d;
    dn_err err;
    cr_assert_eq(dn_data_load_dir(dn_test_dir, true, &d, &err), DN_OK, "%s", err.msg);
    check_3x2x2(&d);
    dn_data_free(&d);
    cr_assert_eq(dn_data_load_dir(dn_test_dir, false, &d, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.labels[0], 4);
    cr_assert_eq(d.classes, 5);
    dn_data_free(&d);
    /* A trailing slash on the directory is fine. */
    char slash[300];
    snprintf(slash, sizeof slash, "%s/", dn_test_dir);
    cr_assert_eq(dn_data_load_dir(slash, false, &d, &err), DN_OK, "%s", err.msg);
    dn_data_free(&d);
}

/* With both names present the plain file is read (no decompression needed). */
Test(data_load, load_dir_prefers_plain)
{
    write_idx("t10k-images-idx3-ubyte", false, 3, (const uint32_t[]){ 1, 2, 2 }, IMG_3x2x2, 4);
    write_idx("t10k-images-idx3-ubyte.gz", true, 3, (const uint32_t[]){ 2, 2, 2 }, IMG_3x2x2, 8);
    write_idx("t10k-labels-idx1-ubyte.gz", true, 1, (const uint32_t[]){ 1 }, LAB_3, 1);
    dn_data d;
    dn_err err;
    cr_assert_eq(dn_data_load_dir(dn_test_dir, false, &d, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(d.n, 1);
    dn_data_free(&d);
}

Test(data_load, load_dir_missing_files)
{
    dn_data d;
    dn_err err;
    cr_assert_eq(dn_data_load_dir(dn_test_dir, true, &d, &err), DN_ERR_IO);
    EXPECT_MSG_FROM(err.msg, dn_test_dir, "training images",
                    "train-images-idx3-ubyte and train-images-idx3-ubyte.gz", "in this directory");
    write_idx("t10k-images-idx3-ubyte.gz", true, 3, (const uint32_t[]){ 1, 2, 2 }, IMG_3x2x2, 4);
    cr_assert_eq(dn_data_load_dir(dn_test_dir, false, &d, &err), DN_ERR_IO);
    EXPECT_MSG_FROM(err.msg, dn_test_dir, "test labels",
                    "t10k-labels-idx1-ubyte and t10k-labels-idx1-ubyte.gz");
    cr_assert_null(d.images);
    const char *gone = dn_test_path("no-such-dir");
    cr_assert_eq(dn_data_load_dir(gone, false, &d, &err), DN_ERR_IO);
    EXPECT_MSG_FROM(err.msg, gone, "cannot open the data directory", "No such file");
}

/* ---------------------------------------------------------------- data sets: in memory */

/* n examples of c×h×w; pixel k of example i is i·1000 + k, label i mod 7. */
static dn_data make_data(int64_t n, int64_t c, int64_t h, int64_t w)
{
    dn_data d = { .n = n, .channels = c, .height = h, .width = w, .classes = 7 };
    int64_t per = c * h * w;
    d.images = malloc((size_t)(n * per) * sizeof *d.images);
    d.labels = malloc((size_t)n * sizeof *d.labels);
    cr_assert(d.images && d.labels);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < per; k++)
            d.images[i * per + k] = (float)(i * 1000 + k);
        d.labels[i] = (int32_t)(i % 7);
    }
    return d;
}

Test(data_split, split_holds_out_the_last_examples)
{
    dn_data all = make_data(5, 2, 1, 3), val;
    float *before = all.images;
    dn_err err;
    cr_assert_eq(dn_data_split(&all, 2, &val, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(all.n, 3);
    cr_assert_eq(all.images, before, "all is not reallocated");
    cr_assert_eq(val.n, 2);
    cr_assert_eq(val.channels, 2);
    cr_assert_eq(val.height, 1);
    cr_assert_eq(val.width, 3);
    cr_assert_eq(val.classes, all.classes);
    cr_assert_neq(val.images, all.images + 3 * 6, "val must own a copy");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(val.labels[i], (3 + i) % 7);
        for (int k = 0; k < 6; k++)
            cr_assert(val.images[i * 6 + k] == (float)((3 + i) * 1000 + k));
    }
    dn_data_free(&val);
    /* n_val = 0 gives an empty, still freeable, validation set. */
    cr_assert_eq(dn_data_split(&all, 0, &val, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(val.n, 0);
    cr_assert_eq(all.n, 3);
    dn_data_free(&val);
    dn_data_free(&all);
}

Test(data_split, split_out_of_range)
{
    dn_data all = make_data(5, 1, 2, 2), val;
    dn_err err;
    cr_assert_eq(dn_data_split(&all, 5, &val, &err), DN_ERR_ARG);
    EXPECT_MSG(err.msg, "cannot hold out 5 of 5 examples", "0 to 4");
    cr_assert_eq(dn_data_split(&all, -1, &val, &err), DN_ERR_ARG);
    EXPECT_MSG(err.msg, "cannot hold out -1 of 5");
    cr_assert_eq(all.n, 5, "a failed split leaves the data alone");
    cr_assert_null(val.images);
    dn_data_free(&all);
}

static bool is_permutation(const int64_t *perm, int64_t n)
{
    bool *seen = calloc((size_t)n + 1, 1);
    cr_assert_not_null(seen);
    bool ok = true;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = perm[i] >= 0 && perm[i] < n && !seen[perm[i]];
        if (ok)
            seen[perm[i]] = true;
    }
    free(seen);
    return ok;
}

Test(data_batch, shuffle_is_a_deterministic_permutation)
{
    enum { N = 100 };
    int64_t a[N], b[N], c[N];
    dn_rng r;
    dn_rng_seed(&r, 42);
    dn_data_shuffle(a, N, &r);
    dn_rng_seed(&r, 42);
    dn_data_shuffle(b, N, &r);
    dn_rng_seed(&r, 43);
    dn_data_shuffle(c, N, &r);
    cr_assert(is_permutation(a, N));
    cr_assert(is_permutation(c, N));
    cr_assert_arr_eq(a, b, sizeof a, "the same seed must give the same permutation");
    cr_assert(memcmp(a, c, sizeof a) != 0, "another seed should give another permutation");
    int fixed = 0;
    for (int i = 0; i < N; i++)
        fixed += a[i] == i;
    cr_assert_lt(fixed, 10, "%d of %d elements stayed in place: not shuffled", fixed, N);
    /* The same on every machine: the generator and Fisher–Yates are pinned. The expected
     * order was computed independently (SplitMix64, rejection sampling and Fisher–Yates from
     * the top, re-implemented in Python). */
    int64_t small[6];
    dn_rng_seed(&r, 1);
    dn_data_shuffle(small, 6, &r);
    const int64_t expect[6] = { 3, 4, 5, 0, 1, 2 };
    cr_assert_arr_eq(small, expect, sizeof small, "%lld %lld %lld %lld %lld %lld",
                     (long long)small[0], (long long)small[1], (long long)small[2],
                     (long long)small[3], (long long)small[4], (long long)small[5]);
    /* n = 0 and 1 are fine. */
    int64_t one = 7;
    dn_data_shuffle(&one, 1, &r);
    cr_assert_eq(one, 0);
    dn_data_shuffle(NULL, 0, &r);
}

Test(data_batch, gather_copies_the_right_examples)
{
    dn_data d = make_data(4, 1, 2, 3);
    const int64_t idx[3] = { 2, 0, 2 };
    float images[3 * 6];
    int32_t labels[3];
    dn_data_gather(&d, idx, 3, images, labels, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(labels[i], (int32_t)(idx[i] % 7));
        for (int k = 0; k < 6; k++)
            cr_assert(images[i * 6 + k] == (float)(idx[i] * 1000 + k), "batch %d pixel %d", i, k);
    }
    dn_data_free(&d);
}

/* A batch large enough to be gathered on two threads (64 examples of 1×32×32: 64 Ki floats,
 * over dataset.c's threshold): every example where it belongs, as on one thread. */
Test(data_batch, gather_on_two_threads_copies_the_right_examples)
{
    enum { N = 80, B = 64, PER = 32 * 32 };
    dn_data d = make_data(N, 1, 32, 32);
    int64_t idx[B];
    for (int i = 0; i < B; i++)
        idx[i] = (i * 37 + 5) % N;
    float *images = malloc(sizeof(float) * B * PER);
    int32_t labels[B];
    cr_assert(images);
    dn_data_gather(&d, idx, B, images, labels, 2);
    for (int i = 0; i < B; i++) {
        cr_assert_eq(labels[i], (int32_t)(idx[i] % 7), "example %d", i);
        for (int k = 0; k < PER; k++)
            cr_assert(images[i * PER + k] == (float)(idx[i] * 1000 + k), "batch %d pixel %d", i, k);
    }
    free(images);
    dn_data_free(&d);
}

/* Pixel (ch, y, x) of example i in make_data holds i·1000 + (ch·h + y)·w + x. */
static bool is_mirror_of(const float *img, int64_t i, int64_t rows, int64_t w)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t x = 0; x < w; x++)
            if (img[r * w + x] != (float)(i * 1000 + r * w + (w - 1 - x)))
                return false;
    return true;
}

Test(data_batch, mirror_flips_about_half_whatever_the_batches)
{
    enum { N = 400, C = 2, H = 2, W = 3, PER = C * H * W };
    dn_data d = make_data(N, C, H, W);
    static float whole[N * PER], cut[N * PER], other[N * PER];
    memcpy(whole, d.images, sizeof whole);
    memcpy(cut, d.images, sizeof cut);
    memcpy(other, d.images, sizeof other);
    dn_data_mirror(&d, whole, N, 77, 0);
    /* The same epoch in two batches of other sizes: the flip belongs to the position. */
    dn_data_mirror(&d, cut, 150, 77, 0);
    dn_data_mirror(&d, cut + 150 * PER, N - 150, 77, 150);
    cr_assert_arr_eq(whole, cut, sizeof whole, "flips depend on how the epoch is cut");
    dn_data_mirror(&d, other, N, 78, 0);
    int flipped = 0, same_as_other = 0;
    for (int64_t i = 0; i < N; i++) {
        const float *img = whole + i * PER;
        bool mirrored = is_mirror_of(img, i, C * H, W);
        bool kept = memcmp(img, d.images + i * PER, PER * sizeof *img) == 0;
        cr_assert(mirrored != kept, "example %lld is neither kept nor mirrored", (long long)i);
        flipped += mirrored;
        same_as_other += memcmp(img, other + i * PER, PER * sizeof *img) == 0;
    }
    /* Binomial(400, 1/2): mean 200, sd 10. */
    cr_assert(flipped > 150 && flipped < 250, "%d of %d flipped", flipped, N);
    cr_assert(same_as_other > 150 && same_as_other < 250,
              "another key agrees on %d of %d: not an independent draw", same_as_other, N);
    dn_data_free(&d);
}

/* The offset (dy, dx) in [−s, s]² by which img is example i moved (out[c, y, x] = in[c, y + dy,
 * x + dx], 0 outside), or false when no offset gives img. */
static bool shift_of(const float *img, int64_t i, int64_t c, int64_t h, int64_t w, int s,
                     int *dy_out, int *dx_out)
{
    for (int dy = -s; dy <= s; dy++)
        for (int dx = -s; dx <= s; dx++) {
            bool same = true;
            for (int64_t ch = 0; ch < c && same; ch++)
                for (int64_t y = 0; y < h && same; y++)
                    for (int64_t x = 0; x < w && same; x++) {
                        int64_t sy = y + dy, sx = x + dx;
                        float want = sy >= 0 && sy < h && sx >= 0 && sx < w
                                         ? (float)(i * 1000 + (ch * h + sy) * w + sx)
                                         : 0.0f;
                        same = img[(ch * h + y) * w + x] == want;
                    }
            if (same) {
                *dy_out = dy;
                *dx_out = dx;
                return true;
            }
        }
    return false;
}

Test(data_batch, shift_moves_each_image_by_every_offset_whatever_the_batches)
{
    enum { N = 500, C = 2, H = 4, W = 5, PER = C * H * W, S = 2, SPAN = 2 * S + 1 };
    dn_data d = make_data(N, C, H, W);
    static float whole[N * PER], cut[N * PER];
    memcpy(whole, d.images, sizeof whole);
    memcpy(cut, d.images, sizeof cut);
    dn_data_shift(&d, whole, N, 91, 0, S);
    dn_data_shift(&d, cut, 210, 91, 0, S);
    dn_data_shift(&d, cut + 210 * PER, N - 210, 91, 210, S);
    cr_assert_arr_eq(whole, cut, sizeof whole, "shifts depend on how the epoch is cut");
    int seen[SPAN][SPAN] = { { 0 } };
    for (int64_t i = 0; i < N; i++) {
        int dy, dx;
        cr_assert(shift_of(whole + i * PER, i, C, H, W, S, &dy, &dx),
                  "example %lld is not the image moved by at most %d px", (long long)i, S);
        seen[dy + S][dx + S]++;
    }
    /* Each of the 25 offsets: Binomial(500, 1/25), mean 20, sd 4.4. */
    for (int a = 0; a < SPAN; a++)
        for (int b = 0; b < SPAN; b++)
            cr_assert(seen[a][b] >= 5 && seen[a][b] <= 40, "offset (%d, %d) drawn %d times of %d",
                      a - S, b - S, seen[a][b], N);
    dn_data_free(&d);
}

Test(data_batch, batch_count)
{
    cr_assert_eq(dn_data_batches(10, 3), 4);
    cr_assert_eq(dn_data_batches(9, 3), 3);
    cr_assert_eq(dn_data_batches(1, 100), 1);
    cr_assert_eq(dn_data_batches(0, 3), 0);
    cr_assert_eq(dn_data_batches(10, 0), 0);
    cr_assert_eq(dn_data_batches(INT64_MAX, 2), INT64_MAX / 2 + 1);
    cr_assert_eq(dn_data_batches(INT64_MAX, 1), INT64_MAX);
}
