/*
 * idx.h — IDX files, the format of MNIST and Fashion-MNIST, raw or gzip-compressed.
 *
 * The format (LeCun, "THE MNIST DATABASE of handwritten digits"):
 *   byte 0-1    0x00 0x00
 *   byte 2      element type: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32,
 *               0x0D float32, 0x0E float64
 *   byte 3      number of dimensions, ndims
 *   then        ndims dimensions, each a big-endian uint32
 *   then        the elements in C order, nothing after them
 *
 * dagnet reads only type 0x08 (what the MNIST family uses for pixels and labels) and 1 to 4
 * dimensions; anything else is an error that names what was found. A file that starts with
 * the gzip magic 1f 8b is decompressed in memory first (concatenated gzip members are
 * allowed, as gunzip allows them). The file is hostile: the header, every dimension, their
 * product and the exact data length are checked. Decompression stops as soon as the output
 * exceeds what the header declares (header + product of dims, + 1 byte to see the excess),
 * and the declared size is itself capped, so a small gzip bomb costs at most the declared
 * size in memory and time, never what the stream would expand to.
 */
#ifndef DN_IDX_H
#define DN_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

#define DN_IDX_MAX_RANK 4

/* A default cap on an IDX file's (decompressed) size: 2 GiB, or half the address space
 * where that is smaller. MNIST's largest file is 47 MB; its pixels become 4-byte floats. */
#define DN_IDX_MAX_BYTES                                                   \
    ((uint64_t)SIZE_MAX / 2 < ((uint64_t)1 << 31) ? (size_t)(SIZE_MAX / 2) \
                                                  : (size_t)((uint64_t)1 << 31))

/* An IDX array of unsigned bytes. data (owned, malloc'ed) holds size = product of dims
 * bytes in C order; it is never NULL after a successful read. */
typedef struct dn_idx {
    int rank;
    int64_t dims[DN_IDX_MAX_RANK];
    unsigned char *data;
    size_t size;
} dn_idx;

/* Read an IDX file, raw or gzip-compressed. max_bytes caps the file's size and, for gzip, the
 * decompressed size the header may declare (checked before inflating the data); inflation
 * stops one byte past the declared size. On failure *out is zeroed (dn_idx_free is harmless).
 * Errors: DN_ERR_IO (cannot read, or larger than max_bytes), DN_ERR_PARSE (bad gzip stream or
 * IDX content; the message names the path and says what was expected and found),
 * DN_ERR_NOMEM. */
dn_status dn_idx_read(const char *path, size_t max_bytes, dn_idx *out, dn_err *err);

/* Parse IDX bytes already in memory (decompressed); `label` names the source in messages.
 * The data are copied, buf stays the caller's. */
dn_status dn_idx_parse(const unsigned char *buf, size_t size, const char *label, dn_idx *out,
                       dn_err *err);

/* Free the data and zero *x. Safe on a zeroed or already freed dn_idx, and on NULL. */
void dn_idx_free(dn_idx *x);

#endif
