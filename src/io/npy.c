/*
 * npy.c — NumPy .npy reader (format 1.0/2.0/3.0) and writer (1.0); the format is described
 * in npy.h.
 *
 * The header is a Python dict literal. Rather than a general Python parser this file has a
 * small recursive-descent parser for exactly what numpy writes: string keys, a string
 * 'descr', a bool 'fortran_order' and a tuple of non-negative ints 'shape', keys in any
 * order, optional trailing commas, any whitespace. Everything else is an error that says
 * where in the header it went wrong and what was found there. The file is hostile: every
 * length is checked against the bytes really present and every size product for overflow
 * before anything is allocated.
 */
#include "io/npy.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"

/* Data are copied as raw bytes; a big-endian host would need byte swaps that are not here. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

static const unsigned char NPY_MAGIC[6] = { 0x93, 'N', 'U', 'M', 'P', 'Y' };
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
/* numpy leaves room for the first dimension to grow to this many digits in place. */
#define NPY_GROWTH_DIGITS 21
#define SUPPORTED_DTYPES "'<f4' (float32), '<i4' (int32) or '<i8' (int64)"

/* ---------------------------------------------------------------- the header dict */

typedef struct cursor {
    const char *start, *p, *end;
    const char *label;
    dn_err *err;
} cursor;

typedef struct header_fields {
    bool has_descr, has_fortran, has_shape;
    dn_dtype dtype;
    bool fortran_order;
    dn_shape shape;
} header_fields;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Up to 24 characters from the cursor for messages, non-printables as '?'. */
static const char *found_text(const cursor *c, char *buf, size_t size)
{
    if (c->p >= c->end) {
        snprintf(buf, size, "the end of the header");
        return buf;
    }
    size_t n = 0;
    buf[n++] = '"';
    for (const char *q = c->p; q < c->end && n + 5 < size && q - c->p < 24; q++)
        buf[n++] = (*q >= 0x20 && *q < 0x7f) ? *q : '?';
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

static dn_status syntax_error(cursor *c, const char *expected)
{
    char found[40];
    return dn_err_set(c->err, DN_ERR_PARSE, "%s: .npy header at byte %td: expected %s, found %s",
                      c->label, c->p - c->start, expected, found_text(c, found, sizeof found));
}

static dn_status expect_char(cursor *c, char ch, const char *what)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch)
        return syntax_error(c, what);
    c->p++;
    return DN_OK;
}

/* A quoted Python string without escapes; *s, *len point into the header. */
static dn_status parse_string(cursor *c, const char **s, size_t *len)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return syntax_error(c, "a quoted string");
    char quote = *c->p++;
    const char *begin = c->p;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\')
            return syntax_error(c, "a string without escapes");
        c->p++;
    }
    if (c->p >= c->end)
        return syntax_error(c, "the closing quote of a string");
    *s = begin;
    *len = (size_t)(c->p - begin);
    c->p++;
    return DN_OK;
}

static bool match_word(cursor *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

static dn_status parse_bool(cursor *c, bool *out)
{
    skip_ws(c);
    if (match_word(c, "True"))
        *out = true;
    else if (match_word(c, "False"))
        *out = false;
    else
        return syntax_error(c, "True or False for 'fortran_order'");
    return DN_OK;
}

/* A non-negative decimal int, at most DN_MAX_DIM; Python 2 files may end it with 'L'. */
static dn_status parse_dim(cursor *c, int64_t *out)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return syntax_error(c, "a non-negative integer dimension");
    const char *begin = c->p;
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int digit = *c->p - '0';
        if (v > (DN_MAX_DIM - digit) / 10) {
            while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
                c->p++;
            return dn_err_set(c->err, DN_ERR_PARSE,
                              "%s: .npy shape dimension %.*s is too large (the limit is %lld)",
                              c->label, (int)(c->p - begin), begin, (long long)DN_MAX_DIM);
        }
        v = v * 10 + digit;
        c->p++;
    }
    if (c->p < c->end && *c->p == 'L')
        c->p++;
    *out = v;
    return DN_OK;
}

/* A tuple of dims: "()", "(3,)", "(2, 3)", "(2, 3,)". "(3)" is an int in Python, not a
 * tuple, and numpy rejects it, so it is rejected here too. */
static dn_status parse_shape(cursor *c, dn_shape *shape)
{
    dn_status s = expect_char(c, '(', "'(' starting the 'shape' tuple");
    if (s != DN_OK)
        return s;
    memset(shape, 0, sizeof *shape);
    skip_ws(c);
    if (c->p < c->end && *c->p == ')') {
        c->p++;
        return DN_OK; /* rank 0: one element */
    }
    bool trailing_comma = false;
    for (;;) {
        int64_t d = 0;
        if ((s = parse_dim(c, &d)) != DN_OK)
            return s;
        if (shape->rank == DN_MAX_RANK)
            return dn_err_set(c->err, DN_ERR_PARSE,
                              "%s: .npy shape has more than %d dimensions (the maximum rank)",
                              c->label, DN_MAX_RANK);
        shape->d[shape->rank++] = d;
        skip_ws(c);
        trailing_comma = false;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            trailing_comma = true;
            skip_ws(c);
        }
        if (c->p < c->end && *c->p == ')')
            break;
        if (!trailing_comma)
            return syntax_error(c, "',' or ')' in the 'shape' tuple");
    }
    c->p++;
    if (shape->rank == 1 && !trailing_comma)
        return dn_err_set(c->err, DN_ERR_PARSE,
                          "%s: .npy 'shape' is (%lld), an int, not a tuple: expected (%lld,)",
                          c->label, (long long)shape->d[0], (long long)shape->d[0]);
    return DN_OK;
}

static dn_status dtype_from_descr(cursor *c, const char *s, size_t len, dn_dtype *out)
{
    if (len == 3 && s[0] == '<') {
        if (memcmp(s + 1, "f4", 2) == 0) {
            *out = DN_F32;
            return DN_OK;
        }
        if (memcmp(s + 1, "i4", 2) == 0) {
            *out = DN_I32;
            return DN_OK;
        }
        if (memcmp(s + 1, "i8", 2) == 0) {
            *out = DN_I64;
            return DN_OK;
        }
    }
    int n = len > 40 ? 40 : (int)len;
    if (len > 0 && s[0] == '>')
        return dn_err_set(
            c->err, DN_ERR_PARSE,
            "%s: big-endian dtype '%.*s' is not supported: expected little-endian " SUPPORTED_DTYPES
            " (convert with a.astype(a.dtype.newbyteorder('<')))",
            c->label, n, s);
    return dn_err_set(c->err, DN_ERR_PARSE,
                      "%s: unsupported dtype '%.*s': expected " SUPPORTED_DTYPES, c->label, n, s);
}

static dn_status parse_value(cursor *c, const char *key, size_t klen, header_fields *h)
{
    if (klen == 5 && memcmp(key, "descr", 5) == 0) {
        skip_ws(c);
        if (c->p < c->end && *c->p == '[')
            return dn_err_set(c->err, DN_ERR_PARSE,
                              "%s: structured dtype (a list 'descr') is "
                              "not supported: expected " SUPPORTED_DTYPES,
                              c->label);
        const char *s;
        size_t len;
        dn_status st = parse_string(c, &s, &len);
        if (st == DN_OK)
            st = dtype_from_descr(c, s, len, &h->dtype);
        h->has_descr = true;
        return st;
    }
    if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) {
        h->has_fortran = true;
        return parse_bool(c, &h->fortran_order);
    }
    if (klen == 5 && memcmp(key, "shape", 5) == 0) {
        h->has_shape = true;
        return parse_shape(c, &h->shape);
    }
    return dn_err_set(c->err, DN_ERR_PARSE,
                      "%s: .npy header has an unknown key '%.*s' (expected "
                      "'descr', 'fortran_order' and 'shape')",
                      c->label, klen > 40 ? 40 : (int)klen, key);
}

static bool already_seen(const header_fields *h, const char *key, size_t klen)
{
    return (klen == 5 && memcmp(key, "descr", 5) == 0 && h->has_descr) ||
           (klen == 13 && memcmp(key, "fortran_order", 13) == 0 && h->has_fortran) ||
           (klen == 5 && memcmp(key, "shape", 5) == 0 && h->has_shape);
}

/* Entries "key: value" separated by commas, an optional trailing comma, then '}'. */
static dn_status parse_entries(cursor *c, header_fields *h)
{
    for (;;) {
        skip_ws(c);
        if (c->p < c->end && *c->p == '}')
            break;
        const char *key;
        size_t klen;
        dn_status s = parse_string(c, &key, &klen);
        if (s != DN_OK)
            return s;
        if (already_seen(h, key, klen))
            return dn_err_set(c->err, DN_ERR_PARSE, "%s: .npy header has the key '%.*s' twice",
                              c->label, (int)klen, key);
        if ((s = expect_char(c, ':', "':' after a key")) != DN_OK)
            return s;
        if ((s = parse_value(c, key, klen, h)) != DN_OK)
            return s;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p >= c->end || *c->p != '}')
            return syntax_error(c, "',' or '}' after a value");
    }
    c->p++;
    return DN_OK;
}

static dn_status parse_header(const char *text, size_t len, const char *label, header_fields *h,
                              dn_err *err)
{
    cursor c = { text, text, text + len, label, err };
    memset(h, 0, sizeof *h);
    dn_status s = expect_char(&c, '{', "'{' starting the header dict");
    if (s == DN_OK)
        s = parse_entries(&c, h);
    if (s != DN_OK)
        return s;
    skip_ws(&c);
    if (c.p != c.end)
        return syntax_error(&c, "only spaces and a newline after the header dict");
    if (!h->has_descr || !h->has_fortran || !h->has_shape)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: .npy header lacks the key '%s' (expected "
                          "'descr', 'fortran_order' and 'shape')",
                          label,
                          !h->has_descr     ? "descr"
                          : !h->has_fortran ? "fortran_order"
                                            : "shape");
    if (h->fortran_order)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: fortran_order is True: only C-order arrays are "
                          "supported (save np.ascontiguousarray(a) instead)",
                          label);
    return DN_OK;
}

/* ---------------------------------------------------------------- the file around it */

static uint32_t read_le(const unsigned char *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Magic, version and header length; *header_at and *data_at are offsets into buf. */
static dn_status parse_prefix(const unsigned char *buf, size_t size, const char *label,
                              size_t *header_at, size_t *header_len, dn_err *err)
{
    if (size < NPY_MAGIC_LEN || memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        char found[32] = "";
        size_t n = size < NPY_MAGIC_LEN ? size : NPY_MAGIC_LEN;
        for (size_t i = 0; i < n; i++)
            snprintf(found + 3 * i, sizeof found - 3 * i, " %02x", buf[i]);
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: not a .npy file: expected the magic bytes "
                          "93 4e 55 4d 50 59 (\\x93NUMPY), found%s",
                          label, n ? found : " an empty file");
    }
    if (size < NPY_MAGIC_LEN + 2)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: .npy file is truncated: %zu bytes, the version "
                          "needs 8",
                          label, size);
    int major = buf[6], minor = buf[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: unsupported .npy format version %d.%d "
                          "(expected 1.0, 2.0 or 3.0)",
                          label, major, minor);
    int len_bytes = major == 1 ? 2 : 4;
    size_t at = NPY_MAGIC_LEN + 2 + (size_t)len_bytes;
    if (size < at)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: .npy file is truncated: %zu bytes, the header "
                          "length needs %zu",
                          label, size, at);
    uint32_t hlen = read_le(buf + NPY_MAGIC_LEN + 2, len_bytes);
    if (hlen > size - at)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: .npy header is truncated: its length field says "
                          "%lu bytes but only %zu follow",
                          label, (unsigned long)hlen, size - at);
    *header_at = at;
    *header_len = hlen;
    return DN_OK;
}

static dn_status check_data_size(const header_fields *h, size_t avail, const char *label,
                                 size_t *nbytes, dn_err *err)
{
    char sh[DN_SHAPE_STR_MAX];
    int64_t numel = dn_shape_numel(&h->shape), total;
    if (numel < 0 || !dn_mul_ok(numel, (int64_t)dn_dtype_size(h->dtype), &total) ||
        (uint64_t)total > SIZE_MAX)
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: .npy shape %s is too large: its size in bytes "
                          "overflows",
                          label, dn_shape_str(&h->shape, sh, sizeof sh));
    if ((uint64_t)total != (uint64_t)avail) {
        bool truncated = (uint64_t)total > (uint64_t)avail;
        return dn_err_set(err, DN_ERR_PARSE,
                          "%s: %s: expected %lld bytes of data for %s %s, "
                          "found %zu",
                          label,
                          truncated ? "data is truncated"
                                    : "trailing bytes "
                                      "after the data",
                          (long long)total, dn_dtype_name(h->dtype),
                          dn_shape_str(&h->shape, sh, sizeof sh), avail);
    }
    *nbytes = (size_t)total;
    return DN_OK;
}

dn_status dn_npy_parse(const unsigned char *buf, size_t size, const char *label, dn_array *out,
                       dn_err *err)
{
    memset(out, 0, sizeof *out);
    if (!label)
        label = "<npy>";
    if (!buf && size)
        return dn_err_set(err, DN_ERR_ARG, "%s: NULL buffer", label);
    size_t header_at = 0, header_len = 0, nbytes = 0;
    header_fields h;
    dn_status s = parse_prefix(buf, size, label, &header_at, &header_len, err);
    if (s == DN_OK)
        s = parse_header((const char *)buf + header_at, header_len, label, &h, err);
    size_t data_at = header_at + header_len;
    if (s == DN_OK)
        s = check_data_size(&h, size - data_at, label, &nbytes, err);
    if (s != DN_OK)
        return s;
    void *data = malloc(nbytes ? nbytes : 1);
    if (!data)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu bytes for the array", label,
                          nbytes);
    if (nbytes)
        memcpy(data, buf + data_at, nbytes);
    out->dtype = h.dtype;
    out->shape = h.shape;
    out->shape.batched = false;
    out->data = data;
    return DN_OK;
}

dn_status dn_npy_read(const char *path, dn_array *out, dn_err *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t size;
    dn_status s = dn_file_read_all(path, DN_FILE_MAX, &buf, &size, err);
    if (s != DN_OK)
        return s;
    s = dn_npy_parse(buf, size, path, out, err);
    free(buf);
    return s;
}

void dn_array_free(dn_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- writing */

static const char *descr_of(dn_dtype t)
{
    switch (t) {
    case DN_F32: return "<f4";
    case DN_I32: return "<i4";
    case DN_I64: return "<i8";
    }
    return NULL;
}

/* Python's repr of the shape tuple: "()", "(3,)", "(2, 3)". */
static void shape_repr(const dn_shape *s, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < s->rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (n < size)
        snprintf(buf + n, size - n, s->rank == 1 ? ",)" : ")");
}

/* The full 1.0 prefix + header exactly as numpy 1.24 writes it; returns its length. The
 * shape was checked (rank <= DN_MAX_RANK, dims <= 13 digits), so it fits NPY_HEADER_MAX. */
#define NPY_HEADER_MAX 512
static size_t build_header(dn_dtype dtype, const dn_shape *shape, char buf[NPY_HEADER_MAX])
{
    char tuple[DN_MAX_RANK * 24 + 8];
    shape_repr(shape, tuple, sizeof tuple);
    char dict[sizeof tuple + 128];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr_of(dtype), tuple);
    if (shape->rank > 0) {
        /* numpy's in-place growth room: 21 minus the digits of the first dimension. */
        int digits = snprintf(NULL, 0, "%lld", (long long)shape->d[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS && (size_t)n + 1 < sizeof dict; i++)
            dict[n++] = ' ';
        dict[n] = '\0';
    }
    size_t hlen = (size_t)n + 1; /* + '\n' */
    /* Like numpy: a full block of padding when already aligned (64 - 0). */
    size_t pad = NPY_ALIGN - (NPY_MAGIC_LEN + 2 + 2 + hlen) % NPY_ALIGN;
    size_t total_header = hlen + pad;
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(total_header & 0xff);
    buf[9] = (char)(total_header >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', pad);
    buf[10 + (size_t)n + pad] = '\n';
    return 10 + total_header;
}

static dn_status check_write_args(const char *path, dn_dtype dtype, const dn_shape *shape,
                                  const void *data, size_t *nbytes, dn_err *err)
{
    char sh[DN_SHAPE_STR_MAX];
    if (!path || !shape)
        return dn_err_set(err, DN_ERR_ARG, "dn_npy_write: NULL %s", !path ? "path" : "shape");
    if (!descr_of(dtype))
        return dn_err_set(err, DN_ERR_ARG, "%s: cannot write dtype %d", path, (int)dtype);
    if (shape->rank < 0 || shape->rank > DN_MAX_RANK)
        return dn_err_set(err, DN_ERR_ARG, "%s: cannot write rank %d (0 to %d)", path, shape->rank,
                          DN_MAX_RANK);
    for (int i = 0; i < shape->rank; i++)
        if (shape->d[i] < 0 || shape->d[i] > DN_MAX_DIM)
            return dn_err_set(err, DN_ERR_ARG, "%s: cannot write shape %s: dimension %d is %lld",
                              path, dn_shape_str(shape, sh, sizeof sh), i, (long long)shape->d[i]);
    int64_t numel = dn_shape_numel(shape), total;
    if (numel < 0 || !dn_mul_ok(numel, (int64_t)dn_dtype_size(dtype), &total) ||
        (uint64_t)total > SIZE_MAX)
        return dn_err_set(err, DN_ERR_ARG, "%s: cannot write shape %s: its size overflows", path,
                          dn_shape_str(shape, sh, sizeof sh));
    if (total > 0 && !data)
        return dn_err_set(err, DN_ERR_ARG, "%s: NULL data for %lld bytes", path, (long long)total);
    *nbytes = (size_t)total;
    return DN_OK;
}

dn_status dn_npy_write(const char *path, dn_dtype dtype, const dn_shape *shape, const void *data,
                       dn_err *err)
{
    size_t nbytes = 0;
    dn_status s = check_write_args(path, dtype, shape, data, &nbytes, err);
    if (s != DN_OK)
        return s;
    char header[NPY_HEADER_MAX];
    size_t hsize = build_header(dtype, shape, header);
    dn_atomic_file f;
    if ((s = dn_atomic_open(&f, path, err)) != DN_OK)
        return s;
    if ((s = dn_atomic_write(&f, header, hsize, err)) != DN_OK ||
        (s = dn_atomic_write(&f, data, nbytes, err)) != DN_OK)
        return s; /* the writer already removed its temporary file */
    return dn_atomic_commit(&f, err);
}
