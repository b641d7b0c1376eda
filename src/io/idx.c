/*
 * idx.c — IDX reader, raw or gzip-compressed (the format is described in idx.h).
 *
 * A file is read whole (dn_file_read_all, size-capped), inflated in memory when it starts with
 * the gzip magic, then parsed. Inflation first produces at most 4 KiB, enough for the IDX
 * header; from then on the output buffer grows by doubling but never beyond the header's
 * length + the data length it declares + 1 byte: reaching that extra byte proves the stream
 * holds more than declared, and inflation stops there. So a gzip bomb costs (in memory and
 * time) at most the size its header declares, itself capped by max_bytes before anything is
 * allocated for it. zlib counts in 32-bit
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

/* Validate the header (magic, type, rank, dims and their product); fills rank, dims and size
 * of *out (not data) and the header length. The data length is not checked here. */
static dn_status parse_dims(const unsigned char *buf, size_t size, const char *label, dn_idx *out,
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
        if (!dn_mul_ok(count, out->dims[i], &count) || (uint64_t)count > SIZE_MAX - header) {
            char shape[DN_SHAPE_STR_MAX];
            dims_str(out->dims, i + 1, shape, sizeof shape);
            return dn_err_set(err, DN_ERR_PARSE,
                              "%s: IDX dimensions %s hold more elements than memory can address",
                              label, shape);
        }
    }
    out->rank = rank;
    out->size = (size_t)count;
    *header_len = header;
    return DN_OK;
}

/* The header's length + the data length it declares, in *total; a declared size above
 * max_bytes is refused before anything is allocated for it. */
static dn_status declared_size(const unsigned char *buf, size_t size, const char *label,
                               size_t max_bytes, dn_idx *shape, size_t *total, dn_err *err)
{
    size_t header = 0;
    dn_status st = parse_dims(buf, size, label, shape, &header, err);
    if (st != DN_OK)
        return st;
    if (shape->size > max_bytes || header > max_bytes - shape->size) {
        char dims[DN_SHAPE_STR_MAX];
        dims_str(shape->dims, shape->rank, dims, sizeof dims);
        return dn_err_set(err, DN_ERR_IO,
                          "%s: IDX header declares %zu bytes of data (dimensions %s): the data "
                          "would decompress to more than the limit of %zu bytes",
                          label, shape->size, dims, max_bytes);
    }
    *total = header + shape->size;
    return DN_OK;
}

/* Validate the header and the data length; fills rank, dims and size of *out (not data) and
 * the header length. */
static dn_status parse_header(const unsigned char *buf, size_t size, const char *label, dn_idx *out,
                              size_t *header_len, dn_err *err)
{
    size_t header = 0;
    dn_status st = parse_dims(buf, size, label, out, &header, err);
    if (st != DN_OK)
        return st;
    size_t found = size - header;
    if (out->size != found) {
        char shape[DN_SHAPE_STR_MAX];
        dims_str(out->dims, out->rank, shape, sizeof shape);
        bool truncated = out->size > found;
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: %s: expected %zu bytes of data for IDX dimensions %s, found %zu",
                          label, truncated ? "truncated" : "trailing bytes after the data",
                          out->size, shape, found);
    }
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

/* Bytes inflated before the IDX header is known: enough for any header (4 + 4·4 bytes)
 * and small enough that a bomb costs nothing before its header bounds it. */
#define INFLATE_HEAD_CAP ((size_t)4096)

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
    /* Output allowed so far: INFLATE_HEAD_CAP until the header is read, then the header's
     * length + the data length it declares + 1, the one byte that proves excess. */
    size_t limit;
    bool header_known;
    dn_idx shape; /* the header's dims, for messages */
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

static dn_status declared_size(const unsigned char *buf, size_t size, const char *label,
                               size_t max_bytes, dn_idx *shape, size_t *total, dn_err *err);

/* Once the header has been inflated, bound the output by what it declares: a bomb then
 * costs the declared size (itself capped by max_bytes), never what the stream expands to. */
static dn_status learn_header(inflater *f, size_t max_bytes, const char *path, dn_err *err)
{
    if (f->header_known || f->used < 4 || f->used < 4 + 4 * (size_t)f->out[3])
        return DN_OK;
    size_t total = 0;
    dn_status st = declared_size(f->out, f->used, path, max_bytes, &f->shape, &total, err);
    if (st != DN_OK)
        return st;
    f->header_known = true;
    f->limit = total + 1;
    return DN_OK;
}

static dn_status excess(const inflater *f, const char *path, dn_err *err)
{
    char shape[DN_SHAPE_STR_MAX];
    dims_str(f->shape.dims, f->shape.rank, shape, sizeof shape);
    size_t header = 4 + 4 * (size_t)f->shape.rank;
    return dn_err_set(err, DN_ERR_PARSE,
                      "%s: gzip data decompress to more than the IDX header declares: expected "
                      "%zu bytes of data for IDX dimensions %s, found more (decompression "
                      "stopped at %zu bytes)",
                      path, f->shape.size, shape, f->used - header);
}

static dn_status inflate_loop(inflater *f, size_t max_bytes, const char *path, dn_err *err)
{
    for (;;) {
        if (f->used == f->cap) {
            if (f->cap >= f->limit)
                return f->header_known
                           ? excess(f, path, err)
                           : dn_err_set(err, DN_ERR_PARSE, "%s: cannot read the IDX header", path);
            dn_status st = grow(&f->out, &f->cap, f->limit, path, err);
            if (st != DN_OK)
                return st;
        }
        int ret = inflate_step(f);
        dn_status st = learn_header(f, max_bytes, path, err);
        if (st != DN_OK)
            return st;
        /* The buffer holds at most limit = declared + 1 bytes, so this ends every bomb. */
        if (f->header_known && f->used >= f->limit)
            return excess(f, path, err);
        if (ret == Z_STREAM_END) {
            bool done = false;
            st = after_member(f, path, &done, err);
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

/* Decompress a whole gzip file image into a new buffer of at most the size its IDX header
 * declares (itself at most max_bytes). */
static dn_status gunzip(const unsigned char *in, size_t in_size, size_t max_bytes, const char *path,
                        unsigned char **out, size_t *out_size, dn_err *err)
{
    *out = NULL;
    *out_size = 0;
    inflater f = { .in = in, .in_size = in_size, .limit = INFLATE_HEAD_CAP };
    if (inflateInit2(&f.zs, GZIP_WINDOW_BITS) != Z_OK)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot start zlib decompression", path);
    f.cap = INFLATE_HEAD_CAP;
    f.out = malloc(f.cap);
    dn_status st = f.out
                       ? inflate_loop(&f, max_bytes, path, err)
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
