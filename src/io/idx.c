/*
 * idx.c — IDX reader, raw or gzip-compressed (the format is described in idx.h).
 *
 * A file is read whole (dn_file_read_all, size-capped), inflated in memory when it starts with
 * the gzip magic, then parsed. Inflation writes into a buffer that grows by doubling but never
 * beyond max_bytes + 1: reaching that extra byte proves the data are too large, so a gzip
 * bomb costs at most the caller's cap, whatever its header claims. zlib counts in 32-bit
 * uInt, so input and output are handed to inflate in slices of at most UINT_MAX bytes.
 */
#include "io/idx.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/fileio.h"
#include "runtime/tensor.h"

#define IDX_TYPE_UBYTE 0x08
#define GZIP_MAGIC0 0x1f
#define GZIP_MAGIC1 0x8b
/* zlib's windowBits: 15 (the largest window) + 16 = expect a gzip wrapper, not zlib's. */
#define GZIP_WINDOW_BITS (15 + 16)
/* Deflate cannot expand more than 1032:1, so a trailer claiming more is lying. */
#define DEFLATE_MAX_RATIO 1032
#define INFLATE_MIN_CAP ((size_t)1 << 16)

/* ---------------------------------------------------------------- header */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The IDX names of element types, so that an unsupported one is reported by what it is. */
static const char *type_name(unsigned type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    }
    return NULL;
}

static dn_status check_magic(const unsigned char *buf, size_t size, const char *label, dn_err *err)
{
    if (size < 4)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: too short for an IDX header: expected at least 4 bytes, found %zu",
                          label, size);
    if (buf[0] != 0 || buf[1] != 0)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: not an IDX file: expected magic bytes 00 00, found %02x %02x", label,
                          buf[0], buf[1]);
    if (buf[2] != IDX_TYPE_UBYTE) {
        const char *name = type_name(buf[2]);
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: IDX element type 0x%02x (%s) is not supported: expected 0x08 "
                          "(unsigned byte)",
                          label, buf[2], name ? name : "unknown type");
    }
    if (buf[3] < 1 || buf[3] > DN_IDX_MAX_RANK)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: IDX rank %d is not supported: expected 1 to %d dimensions", label,
                          buf[3], DN_IDX_MAX_RANK);
    return DN_OK;
}

/* "[60000,28,28]" for messages. */
static void dims_str(const int64_t *dims, int rank, char *buf, size_t size)
{
    size_t used = 0;
    for (int i = 0; i < rank && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "[", (long long)dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* Validate the header and the data length; fills rank, dims and size of *out (not data) and
 * the header length. */
static dn_status parse_header(const unsigned char *buf, size_t size, const char *label, dn_idx *out,
                              size_t *header_len, dn_err *err)
{
    dn_status st = check_magic(buf, size, label, err);
    if (st != DN_OK)
        return st;
    int rank = buf[3];
    size_t header = 4 + 4 * (size_t)rank;
    if (size < header)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: truncated IDX header: expected %zu bytes for %d dimensions, "
                          "found %zu",
                          label, header, rank, size);
    int64_t count = 1;
    for (int i = 0; i < rank; i++) {
        out->dims[i] = be32(buf + 4 + 4 * (size_t)i);
        if (out->dims[i] < 1)
            return dn_err_set(err, DN_ERR_PARSE,
                              "%s: IDX dimension %d is 0: expected every dimension >= 1", label, i);
        if (!dn_mul_ok(count, out->dims[i], &count) || (uint64_t)count > SIZE_MAX) {
            char shape[DN_SHAPE_STR_MAX];
            dims_str(out->dims, i + 1, shape, sizeof shape);
            return dn_err_set(err, DN_ERR_PARSE,
                              "%s: IDX dimensions %s hold more elements than memory can address",
                              label, shape);
        }
    }
    out->rank = rank;
    size_t found = size - header;
    if ((uint64_t)count != found) {
        char shape[DN_SHAPE_STR_MAX];
        dims_str(out->dims, rank, shape, sizeof shape);
        bool truncated = (uint64_t)count > found;
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: %s: expected %lld bytes of data for IDX dimensions %s, found %zu",
                          label, truncated ? "truncated" : "trailing bytes after the data",
                          (long long)count, shape, found);
    }
    out->size = (size_t)count;
    *header_len = header;
    return DN_OK;
}

dn_status dn_idx_parse(const unsigned char *buf, size_t size, const char *label, dn_idx *out,
                       dn_err *err)
{
    memset(out, 0, sizeof *out);
    if (!label)
        label = "IDX data";
    if (!buf && size > 0)
        return dn_err_set(err, DN_ERR_ARG, "%s: %zu bytes from NULL", label, size);
    size_t header = 0;
    dn_status st = parse_header(buf, size, label, out, &header, err);
    if (st == DN_OK) {
        out->data = malloc(out->size);
        if (!out->data)
            st = dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu bytes for the IDX data",
                            label, out->size);
        else
            memcpy(out->data, buf + header, out->size);
    }
    if (st != DN_OK)
        dn_idx_free(out);
    return st;
}

/* ---------------------------------------------------------------- gzip */

static bool is_gzip(const unsigned char *buf, size_t size)
{
    return size >= 2 && buf[0] == GZIP_MAGIC0 && buf[1] == GZIP_MAGIC1;
}

/* A first output size: the trailer's ISIZE (size mod 2^32 of the last member) + 1, so that a
 * single honest member fits without regrowth; never above the cap nor what deflate could
 * produce from this much input, so a lying trailer cannot make us allocate early. */
static size_t first_capacity(const unsigned char *in, size_t in_size, size_t limit)
{
    size_t cap = INFLATE_MIN_CAP;
    if (in_size >= 18) { /* gzip header 10 + trailer 8 */
        const unsigned char *t = in + in_size - 4;
        uint64_t isize =
            (uint64_t)t[0] | (uint64_t)t[1] << 8 | (uint64_t)t[2] << 16 | (uint64_t)t[3] << 24;
        uint64_t bound = (uint64_t)in_size > UINT64_MAX / DEFLATE_MAX_RATIO
                             ? UINT64_MAX
                             : (uint64_t)in_size * DEFLATE_MAX_RATIO;
        if (isize + 1 <= bound && isize + 1 > cap)
            cap = (size_t)(isize + 1);
    }
    return cap < limit ? cap : limit;
}

/* Make room for more output: double, up to `limit`. */
static dn_status grow(unsigned char **buf, size_t *cap, size_t limit, const char *path, dn_err *err)
{
    size_t ncap = *cap > limit / 2 ? limit : *cap * 2;
    unsigned char *nbuf = realloc(*buf, ncap);
    if (!nbuf)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu bytes to decompress it", path,
                          ncap);
    *buf = nbuf;
    *cap = ncap;
    return DN_OK;
}

typedef struct inflater {
    z_stream zs;
    const unsigned char *in;
    size_t in_size, in_pos;
    unsigned char *out;
    size_t cap, used;
} inflater;

/* One call of inflate on the next slices of input and output; returns zlib's code. */
static int inflate_step(inflater *f)
{
    size_t in_chunk = f->in_size - f->in_pos, out_chunk = f->cap - f->used;
    if (in_chunk > UINT_MAX)
        in_chunk = UINT_MAX;
    if (out_chunk > UINT_MAX)
        out_chunk = UINT_MAX;
    f->zs.next_in = (unsigned char *)(f->in + f->in_pos); /* zlib's API is not const */
    f->zs.avail_in = (uInt)in_chunk;
    f->zs.next_out = f->out + f->used;
    f->zs.avail_out = (uInt)out_chunk;
    int ret = inflate(&f->zs, Z_NO_FLUSH);
    f->in_pos += in_chunk - f->zs.avail_in;
    f->used += out_chunk - f->zs.avail_out;
    return ret;
}

/* After a member ended: another member follows (gzip files may be concatenated), the input
 * is done, or trailing bytes remain, which gunzip would only warn about but we refuse. */
static dn_status after_member(inflater *f, const char *path, bool *done, dn_err *err)
{
    if (f->in_pos == f->in_size) {
        *done = true;
        return DN_OK;
    }
    if (is_gzip(f->in + f->in_pos, f->in_size - f->in_pos)) {
        if (inflateReset(&f->zs) != Z_OK)
            return dn_err_set(err, DN_ERR_PARSE, "%s: cannot restart gzip decompression", path);
        return DN_OK;
    }
    return dn_err_set(err, DN_ERR_PARSE,
                      "%s: %zu trailing bytes after the gzip data (at byte %zu): expected the "
                      "end of the file or another gzip member",
                      path, f->in_size - f->in_pos, f->in_pos);
}

static dn_status inflate_loop(inflater *f, size_t limit, size_t max_bytes, const char *path,
                              dn_err *err)
{
    for (;;) {
        if (f->used == f->cap) {
            dn_status st = grow(&f->out, &f->cap, limit, path, err);
            if (st != DN_OK)
                return st;
        }
        int ret = inflate_step(f);
        /* The buffer holds at most limit = max_bytes + 1 bytes, so this ends every bomb. */
        if (f->used > max_bytes)
            return dn_err_set(err, DN_ERR_IO,
                              "%s: gzip data decompress to more than the limit of %zu bytes", path,
                              max_bytes);
        if (ret == Z_STREAM_END) {
            bool done = false;
            dn_status st = after_member(f, path, &done, err);
            if (st != DN_OK || done)
                return st;
        } else if (ret == Z_BUF_ERROR && f->in_pos == f->in_size && f->used < f->cap) {
            /* No progress possible although there is room: the stream wants more input. */
            return dn_err_set(err, DN_ERR_PARSE,
                              "%s: truncated gzip data: the stream ends early, after %zu "
                              "compressed bytes",
                              path, f->in_size);
        } else if (ret == Z_MEM_ERROR) {
            return dn_err_set(err, DN_ERR_NOMEM, "%s: zlib is out of memory", path);
        } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
            return dn_err_set(err, DN_ERR_PARSE, "%s: corrupt gzip data: %s (at byte %zu)", path,
                              f->zs.msg ? f->zs.msg : "inflate failed", f->in_pos);
        }
    }
}

/* Decompress a whole gzip file image into a new buffer of at most max_bytes. */
static dn_status gunzip(const unsigned char *in, size_t in_size, size_t max_bytes, const char *path,
                        unsigned char **out, size_t *out_size, dn_err *err)
{
    *out = NULL;
    *out_size = 0;
    size_t limit = max_bytes + 1; /* one byte more than allowed proves "too large" */
    inflater f = { .in = in, .in_size = in_size };
    if (inflateInit2(&f.zs, GZIP_WINDOW_BITS) != Z_OK)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot start zlib decompression", path);
    f.cap = first_capacity(in, in_size, limit);
    f.out = malloc(f.cap);
    dn_status st = f.out
                       ? inflate_loop(&f, limit, max_bytes, path, err)
                       : dn_err_set(err, DN_ERR_NOMEM,
                                    "%s: cannot allocate %zu bytes to decompress it", path, f.cap);
    inflateEnd(&f.zs);
    if (st != DN_OK) {
        free(f.out);
        return st;
    }
    *out = f.out;
    *out_size = f.used;
    return DN_OK;
}

/* ---------------------------------------------------------------- files */

/* The compressed file may exceed max_bytes slightly (deflate's stored blocks and gzip's
 * header and trailer); beyond this margin it cannot be a gzip of at most max_bytes with
 * ordinary headers. */
static size_t compressed_cap(size_t max_bytes)
{
    size_t margin = max_bytes / 64 + 4096;
    return max_bytes > SIZE_MAX - 1 - margin ? SIZE_MAX - 1 : max_bytes + margin;
}

/* Move the data to the front of the buffer and hand the buffer to *out, saving a copy of a
 * file that may be tens of megabytes. */
static void adopt(unsigned char *buf, size_t header, dn_idx *out)
{
    memmove(buf, buf + header, out->size);
    unsigned char *shrunk = realloc(buf, out->size);
    out->data = shrunk ? shrunk : buf;
}

dn_status dn_idx_read(const char *path, size_t max_bytes, dn_idx *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    if (!path)
        return dn_err_set(err, DN_ERR_ARG, "IDX file path is NULL");
    if (max_bytes >= SIZE_MAX - 1)
        max_bytes = SIZE_MAX - 2; /* room for fileio's '\0' and our extra byte */
    unsigned char *buf = NULL;
    size_t size = 0;
    dn_status st = dn_file_read_all(path, compressed_cap(max_bytes), &buf, &size, err);
    if (st != DN_OK)
        return st;
    if (is_gzip(buf, size)) {
        unsigned char *plain = NULL;
        st = gunzip(buf, size, max_bytes, path, &plain, &size, err);
        free(buf);
        if (st != DN_OK)
            return st;
        buf = plain;
    } else if (size > max_bytes) {
        free(buf);
        return dn_err_set(err, DN_ERR_IO, "%s: file is %zu bytes, larger than the limit of %zu",
                          path, size, max_bytes);
    }
    size_t header = 0;
    st = parse_header(buf, size, path, out, &header, err);
    if (st != DN_OK) {
        free(buf);
        dn_idx_free(out);
        return st;
    }
    adopt(buf, header, out);
    return DN_OK;
}

void dn_idx_free(dn_idx *x)
{
    if (!x)
        return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
