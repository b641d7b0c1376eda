/*
 * safetensors.h — read and write safetensors files (dagnet's weights format).
 *
 * The format:
 *   bytes 0-7   N, the header length, unsigned 64-bit little-endian
 *   bytes 8..   N bytes of JSON: an object mapping each tensor name to
 *               {"dtype": "F32", "shape": [30, 1, 5, 5], "data_offsets": [begin, end]}
 *               plus an optional "__metadata__": {string: string}; often padded with spaces
 *   then        the data region; each tensor's raw little-endian C-order bytes are at
 *               [begin, end) relative to the start of the data region
 *
 * dagnet supports the dtypes F32, I32 and I64; others (F16, BF16, F64, ...) are rejected
 * with the tensor's name. The reader validates everything before any entry is returned:
 * the header length against the file, the JSON, each entry's fields and their types, the
 * shape (rank, dims, overflow), that the byte range lies inside the data region and has
 * exactly numel * itemsize bytes, that no two entries overlap, and that names are unique.
 * The writer pads the header with spaces to a multiple of 8 so that the data region starts
 * 8-byte aligned in the file; tensors follow each other without gaps (as other readers
 * require), so each is aligned to its element size when the ones before it add up to a
 * multiple of it — always so in an all-F32 weights file.
 */
#ifndef DN_SAFETENSORS_H
#define DN_SAFETENSORS_H

#include <stddef.h>

#include "runtime/error.h"
#include "runtime/tensor.h"

/* Headers larger than this are rejected before parsing (the JSON of a model with thousands
 * of tensors is a few hundred kB). */
#define DN_ST_HEADER_MAX ((uint64_t)100 * 1000 * 1000)

/* One tensor of a file. `data` points into the file's buffer and may be unaligned (files
 * from other writers need not align their header), so copy it out with memcpy rather than
 * casting it to float*. */
typedef struct dn_st_entry {
    char *name;
    dn_dtype dtype;
    dn_shape shape; /* batched is false */
    const unsigned char *data;
    size_t nbytes;
} dn_st_entry;

/* A parsed file: the whole file's bytes and its entries, in the header's order. */
typedef struct dn_st_file {
    unsigned char *buf;
    size_t size;
    dn_st_entry *entries;
    int n;
} dn_st_file;

/* Read and validate a file. Errors: DN_ERR_IO (cannot read), DN_ERR_PARSE (bad content; the
 * message names the path, the tensor and what was expected and found), DN_ERR_NOMEM.
 * On failure *out is zeroed; free it with dn_st_free on success. */
dn_status dn_st_read(const char *path, dn_st_file *out, dn_err *err);

/* The same on a file image in memory. Takes ownership of `buf` (malloc'ed) on success AND on
 * failure; `label` names the source in messages. */
dn_status dn_st_parse(unsigned char *buf, size_t size, const char *label, dn_st_file *out,
                      dn_err *err);

/* The entry called `name`, or NULL. */
const dn_st_entry *dn_st_find(const dn_st_file *f, const char *name);

/* Free everything and zero *f. Safe on a zeroed or already freed file. */
void dn_st_free(dn_st_file *f);

/* A tensor to write: `data` holds numel(shape) elements of `dtype` (NULL only if none). */
typedef struct dn_st_tensor {
    const char *name;
    dn_dtype dtype;
    const dn_shape *shape;
    const void *data;
} dn_st_tensor;

/* Write n tensors, in the given order, atomically (a temporary file renamed into place).
 * Names must be unique, non-empty and not "__metadata__". */
dn_status dn_st_write(const char *path, const dn_st_tensor *t, int n, dn_err *err);

/* The same file image in memory: *out (malloc'ed, the caller frees) holds *size bytes. `label`
 * names the buffer in messages. */
dn_status dn_st_write_mem(const dn_st_tensor *t, int n, const char *label, unsigned char **out,
                          size_t *size, dn_err *err);

#endif
