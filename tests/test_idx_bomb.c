/*
 * test_idx_bomb.c — gzip bombs and hostile gzip streams for the IDX reader (io/idx.c, suite
 * io_idx_bomb).
 *
 * Each test builds its gzip stream here with zlib's deflate (windowBits 15 + 16 for the gzip
 * wrapper), feeding the zeros in 1 MiB slices so that the test itself never holds the
 * inflated size. The bomb is an IDX header declaring 10×28×28 images (7,840 bytes) followed
 * by 100 MiB of zeros, about 100 KB compressed: the reader must stop one byte past the
 * declared size, so its peak resident memory (getrusage's ru_maxrss, in KiB on Linux) may grow
 * by far less than the 100 MiB the stream holds, and the message must name the file and the
 * declared size. Also: a header declaring more than the caller's cap is refused before any
 * inflation, a truncated stream, bytes after the stream, and a stream shorter than declared.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

#include "helpers.h"
#include "io/idx.h"
#include "runtime/error.h"

TestSuite(io_idx_bomb, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

#define MIB ((size_t)1 << 20)

typedef struct gz_buf {
    unsigned char *p;
    size_t n, cap;
} gz_buf;

/* Deflate `in` into out (growing), flushing with `flush`. */
static void gz_feed(z_stream *zs, gz_buf *out, const unsigned char *in, size_t n, int flush)
{
    zs->next_in = (unsigned char *)in;
    zs->avail_in = (uInt)n;
    for (;;) {
        if (out->cap - out->n < 65536) {
            out->cap = out->cap * 2 + 65536;
            out->p = realloc(out->p, out->cap);
            cr_assert_not_null(out->p);
        }
        zs->next_out = out->p + out->n;
        zs->avail_out = (uInt)(out->cap - out->n);
        int ret = deflate(zs, flush);
        out->n = out->cap - zs->avail_out;
        cr_assert(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR, "deflate: %d", ret);
        if (flush == Z_FINISH ? ret == Z_STREAM_END : zs->avail_in == 0 && zs->avail_out > 0)
            break;
    }
}

/* A gzip stream of an IDX header with dims (type 0x08), then `data` (n bytes; NULL: zeros),
 * then `zeros` more zero bytes. */
static gz_buf gzip_idx(int rank, const uint32_t *dims, const unsigned char *data, size_t n,
                       size_t zeros)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    cr_assert_eq(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    gz_buf out = { 0 };
    unsigned char head[20] = { 0, 0, 0x08, (unsigned char)rank };
    for (int i = 0; i < rank; i++)
        for (int k = 0; k < 4; k++)
            head[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    gz_feed(&zs, &out, head, 4 + 4 * (size_t)rank, Z_NO_FLUSH);
    if (n)
        gz_feed(&zs, &out, data, n, Z_NO_FLUSH);
    unsigned char *slice = calloc(MIB, 1);
    cr_assert_not_null(slice);
    while (zeros > 0) {
        size_t k = zeros < MIB ? zeros : MIB;
        gz_feed(&zs, &out, slice, k, Z_NO_FLUSH);
        zeros -= k;
    }
    free(slice);
    gz_feed(&zs, &out, NULL, 0, Z_FINISH);
    deflateEnd(&zs);
    return out;
}

static long maxrss_kib(void)
{
    struct rusage ru;
    cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void expect_error(const char *path, size_t max_bytes, dn_status status,
                         const char *const *fragments)
{
    dn_idx x;
    dn_err err;
    dn_err_clear(&err);
    dn_test_expect_status(dn_idx_read(path, max_bytes, &x, &err), status, err.msg);
    cr_assert_null(x.data);
    dn_test_expect_msg(err.msg, path, fragments);
}

static const uint32_t DIMS_10x28x28[3] = { 10, 28, 28 };

/* 100 MiB of zeros behind a header declaring 7,840 bytes: refused at the declared size, fast,
 * and without the reader's memory growing anywhere near the inflated size. */
Test(io_idx_bomb, stops_at_the_declared_size)
{
    gz_buf gz = gzip_idx(3, DIMS_10x28x28, NULL, 0, 100 * MIB);
    cr_assert_lt(gz.n, 1 * MIB, "the bomb should compress to about 100 KB, got %zu", gz.n);
    const char *path = dn_test_path("bomb-images-idx3-ubyte.gz");
    dn_test_write_file(path, gz.p, gz.n);
    free(gz.p);

    long rss0 = maxrss_kib();
    double t0 = now_s();
    expect_error(path, DN_IDX_MAX_BYTES, DN_ERR_PARSE,
                 FRAGS("more than the IDX header declares", "expected 7840 bytes", "[10,28,28]",
                       "found more"));
    double secs = now_s() - t0;
    long grown_kib = maxrss_kib() - rss0;
    /* Inflating the whole stream would take 100 MiB; the declared size is 7,840 bytes. */
    cr_assert_lt(grown_kib, 16 * 1024, "peak memory grew by %ld KiB reading a bomb", grown_kib);
    cr_assert_lt(secs, 2.0, "rejecting the bomb took %.2f s", secs);
}

/* A header declaring 60000×28×28 is refused before anything is inflated when the cap is
 * smaller, naming the declared size and the cap. */
Test(io_idx_bomb, declared_size_above_the_cap)
{
    gz_buf gz = gzip_idx(3, (const uint32_t[]){ 60000, 28, 28 }, NULL, 0, 64 * MIB);
    const char *path = dn_test_path("big.gz");
    dn_test_write_file(path, gz.p, gz.n);
    free(gz.p);
    long rss0 = maxrss_kib();
    expect_error(path, 1 * MIB, DN_ERR_IO,
                 FRAGS("IDX header declares 47040000 bytes", "[60000,28,28]",
                       "more than the limit of 1048576 bytes"));
    long grown_kib = maxrss_kib() - rss0;
    cr_assert_lt(grown_kib, 16 * 1024, "peak memory grew by %ld KiB", grown_kib);
}

/* An honest file exactly as large as declared still reads, its checksum verified. */
Test(io_idx_bomb, exact_size_reads)
{
    unsigned char data[7840];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7);
    gz_buf gz = gzip_idx(3, DIMS_10x28x28, data, sizeof data, 0);
    const char *path = dn_test_path("ok.gz");
    dn_test_write_file(path, gz.p, gz.n);
    free(gz.p);
    dn_idx x;
    dn_err err;
    cr_assert_eq(dn_idx_read(path, DN_IDX_MAX_BYTES, &x, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(x.size, sizeof data);
    cr_assert_eq(memcmp(x.data, data, sizeof data), 0);
    dn_idx_free(&x);
}

/* One byte more than declared is already too much. */
Test(io_idx_bomb, one_byte_too_many)
{
    unsigned char data[7841] = { 0 };
    gz_buf gz = gzip_idx(3, DIMS_10x28x28, data, sizeof data, 0);
    const char *path = dn_test_path("plus1.gz");
    dn_test_write_file(path, gz.p, gz.n);
    free(gz.p);
    expect_error(path, DN_IDX_MAX_BYTES, DN_ERR_PARSE, FRAGS("expected 7840 bytes", "found more"));
}

/* The stream cut short, inside the data and inside the header. */
Test(io_idx_bomb, truncated_stream)
{
    unsigned char data[7840];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 13 + i / 7);
    gz_buf gz = gzip_idx(3, DIMS_10x28x28, data, sizeof data, 0);
    const char *path = dn_test_path("cut.gz");
    dn_test_write_file(path, gz.p, gz.n / 2);
    expect_error(path, DN_IDX_MAX_BYTES, DN_ERR_PARSE, FRAGS("truncated gzip data", "ends early"));
    dn_test_write_file(path, gz.p, 12);
    expect_error(path, DN_IDX_MAX_BYTES, DN_ERR_PARSE, FRAGS("truncated gzip data"));
    free(gz.p);
}

/* Garbage after a complete stream is refused, as is a stream shorter than declared. */
Test(io_idx_bomb, trailing_garbage_and_short_data)
{
    unsigned char data[7840] = { 1 };
    gz_buf gz = gzip_idx(3, DIMS_10x28x28, data, sizeof data, 0);
    size_t n = gz.n;
    gz.p = realloc(gz.p, n + 5);
    cr_assert_not_null(gz.p);
    memcpy(gz.p + n, "junk!", 5);
    const char *path = dn_test_path("junk.gz");
    dn_test_write_file(path, gz.p, n + 5);
    free(gz.p);
    expect_error(path, DN_IDX_MAX_BYTES, DN_ERR_PARSE,
                 FRAGS("5 trailing bytes after the gzip data"));

    gz = gzip_idx(3, DIMS_10x28x28, data, 7000, 0);
    path = dn_test_path("short.gz");
    dn_test_write_file(path, gz.p, gz.n);
    free(gz.p);
    expect_error(path, DN_IDX_MAX_BYTES, DN_ERR_PARSE,
                 FRAGS("truncated", "expected 7840 bytes", "[10,28,28]", "found 7000"));
}
