/*
 * npy.h — NumPy .npy arrays: read (format 1.0, 2.0, 3.0) and write (1.0).
 *
 * The format (numpy.lib.format):
 *   bytes 0-5   magic "\x93NUMPY"
 *   bytes 6-7   format version major, minor: 1.0, 2.0 or 3.0
 *   then        header length H: 2 bytes little-endian in 1.0, 4 bytes in 2.0 and 3.0
 *   then        H bytes of header: a Python dict literal, e.g.
 *               {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *               padded with spaces and ended by '\n'
 *   then        the raw data, numel * itemsize bytes, nothing after it
 *
 * dagnet reads and writes only little-endian float32 '<f4', int32 '<i4' and int64 '<i8' in
 * C order; anything else (other dtypes, big-endian, fortran_order True, structured dtypes)
 * is rejected with a message that names it. The writer produces the same bytes as
 * numpy.save of NumPy 1.24: sorted keys, the spare spaces numpy leaves to grow the first
 * dimension in place, and padding so that the data starts at a multiple of 64 bytes.
 */
#ifndef DN_NPY_H
#define DN_NPY_H

#include <stddef.h>

#include "runtime/error.h"
#include "runtime/tensor.h"

/* An array read from a file. data is malloc'ed and owned (free with dn_array_free); it is
 * never NULL after a successful read, even for zero elements. shape.batched is false. */
typedef struct dn_array {
    dn_dtype dtype;
    dn_shape shape;
    void *data;
} dn_array;

/* Read a .npy file. Errors: DN_ERR_IO (cannot read), DN_ERR_PARSE (bad content; the message
 * names the path and says what was expected and found), DN_ERR_NOMEM. */
dn_status dn_npy_read(const char *path, dn_array *out, dn_err *err);

/* Parse a .npy image in memory; `label` names the source in messages (e.g. the path). */
dn_status dn_npy_parse(const unsigned char *buf, size_t size, const char *label, dn_array *out,
                       dn_err *err);

/* Write a .npy 1.0 file atomically (a temporary file renamed into place). `data` holds
 * numel(shape) elements of `dtype` in C order; it may be NULL only when there are none. */
dn_status dn_npy_write(const char *path, dn_dtype dtype, const dn_shape *shape, const void *data,
                       dn_err *err);

/* Free the data and reset *a. Safe on a zeroed or already freed array. */
void dn_array_free(dn_array *a);

#endif
