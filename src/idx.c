/* idx.c — reading IDX files, raw or gzip-compressed (see idx.h). */
#include "idx.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fileio.h"
#include "tensor.h"

/* Compressed files larger than this are refused before inflating. */
#define MAX_COMPRESSED ((size_t)1 << 30)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

dn_status dn_idx_parse(unsigned char *buf, size_t size, const char *label, dn_idx *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    dn_status st = DN_OK;
    if (size < 4 || buf[0] != 0 || buf[1] != 0) {
        st = dn_err_set(err, DN_ERR_PARSE, "%s: not an IDX file (expected the magic bytes 00 00 at the start)", label);
        goto fail;
    }
    if (buf[2] != 0x08) {
        st = dn_err_set(err, DN_ERR_PARSE, "%s: IDX element type 0x%02x is not supported (expected 0x08, unsigned bytes)",
                        label, buf[2]);
        goto fail;
    }
    int rank = buf[3];
    if (rank < 1 || rank > 4) {
        st = dn_err_set(err, DN_ERR_PARSE, "%s: IDX rank %d is not supported (expected 1 to 4)", label, rank);
        goto fail;
    }
    size_t header = 4 + 4 * (size_t)rank;
    if (size < header) {
        st = dn_err_set(err, DN_ERR_PARSE, "%s: truncated IDX header (%zu bytes, expected %zu)", label, size, header);
        goto fail;
    }
    int64_t count = 1;
    for (int i = 0; i < rank; i++) {
        out->dims[i] = be32(buf + 4 + 4 * i);
        if (out->dims[i] < 1 || !dn_mul_ok(count, out->dims[i], &count)) {
            st = dn_err_set(err, DN_ERR_PARSE, "%s: IDX dimension %d is %lld (expected >= 1, product within range)",
                            label, i, (long long)out->dims[i]);
            goto fail;
        }
    }
    if ((uint64_t)count != size - header) {
        st = dn_err_set(err, DN_ERR_PARSE, "%s: expected %lld bytes of data after the header, found %zu (%s)",
                        label, (long long)count, size - header,
                        (uint64_t)count > size - header ? "truncated" : "trailing bytes");
        goto fail;
    }
    out->rank = rank;
    out->buf = buf;
    out->data = buf + header;
    out->size = (size_t)count;
    return DN_OK;
fail:
    free(buf);
    memset(out, 0, sizeof *out);
    return st;
}

/* Inflate a gzip stream into a buffer that grows up to max_bytes. */
static dn_status inflate_all(const unsigned char *in, size_t in_size, size_t max_bytes, const char *label,
                             unsigned char **out, size_t *out_size, dn_err *err)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot start zlib", label);
    size_t cap = in_size * 4 + 1024, used = 0;
    if (cap > max_bytes)
        cap = max_bytes;
    unsigned char *buf = malloc(cap + 1);
    dn_status st = DN_OK;
    int zr = Z_OK;
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)in_size;
    while (buf && zr != Z_STREAM_END) {
        if (used == cap) {
            if (cap >= max_bytes) {
                st = dn_err_set(err, DN_ERR_IO, "%s: inflates to more than %zu bytes", label, max_bytes);
                break;
            }
            size_t grown = cap * 2 < max_bytes ? cap * 2 : max_bytes;
            unsigned char *bigger = realloc(buf, grown + 1);
            if (!bigger)
                break;
            buf = bigger;
            cap = grown;
        }
        size_t room = cap - used;
        z.next_out = buf + used;
        z.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
        zr = inflate(&z, Z_NO_FLUSH);
        used = (size_t)(z.next_out - buf);
        if (zr != Z_OK && zr != Z_STREAM_END) {
            st = dn_err_set(err, DN_ERR_PARSE, "%s: corrupt gzip data (%s)", label,
                            zr == Z_BUF_ERROR ? "truncated" : z.msg ? z.msg : "inflate failed");
            break;
        }
    }
    inflateEnd(&z);
    if (!buf && !st)
        st = dn_err_set(err, DN_ERR_NOMEM, "%s: out of memory inflating", label);
    if (st || zr != Z_STREAM_END) {
        free(buf);
        return st ? st : dn_err_set(err, DN_ERR_NOMEM, "%s: out of memory inflating", label);
    }
    *out = buf;
    *out_size = used;
    return DN_OK;
}

dn_status dn_idx_read(const char *path, size_t max_bytes, dn_idx *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *raw = NULL;
    size_t size = 0;
    dn_status st = dn_file_read_all(path, max_bytes < MAX_COMPRESSED ? max_bytes : MAX_COMPRESSED, &raw, &size, err);
    if (st)
        return st;
    if (size >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        unsigned char *plain = NULL;
        size_t plain_size = 0;
        st = inflate_all(raw, size, max_bytes, path, &plain, &plain_size, err);
        free(raw);
        if (st)
            return st;
        raw = plain;
        size = plain_size;
    }
    return dn_idx_parse(raw, size, path, out, err);
}

void dn_idx_free(dn_idx *x)
{
    if (!x)
        return;
    free(x->buf);
    memset(x, 0, sizeof *x);
}
