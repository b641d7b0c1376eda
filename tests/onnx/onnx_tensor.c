/*
 * onnx_tensor.c — one ONNX TensorProto file (the input_N.pb / output_N.pb of ONNX's backend
 * test cases) → a NumPy .npy file, for scripts/onnx_conformance.py. Decoded by protobuf-c with
 * ONNX's schema, as the importer does.
 *
 *     onnx_tensor IN.pb OUT.npy      prints "NAME DTYPE d0,d1,..." (NAME "-" when unset)
 *
 * float32, int32 and int64 tensors, raw or typed fields; anything else exits 2 naming the
 * data type. A test tool: the files are ONNX's own, but every size is still checked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "io/onnx.pb-c.h"
#include "runtime/error.h"

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "onnx_tensor: %s: %s\n", path, what);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return fprintf(stderr, "usage: onnx_tensor IN.pb OUT.npy\n"), 2;
    unsigned char *buf;
    size_t size;
    dn_err err;
    dn_err_clear(&err);
    if (dn_file_read_all(argv[1], (size_t)1 << 31, &buf, &size, &err))
        return fail(err.msg, argv[1]);
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, size, buf);
    free(buf);
    if (!t)
        return fail("not a TensorProto", argv[1]);
    const char *descr;
    size_t item;
    const void *typed;
    size_t n_typed;
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        descr = "<f4", item = 4, typed = t->float_data, n_typed = t->n_float_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        descr = "<i4", item = 4, typed = t->int32_data, n_typed = t->n_int32_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        descr = "<i8", item = 8, typed = t->int64_data, n_typed = t->n_int64_data;
        break;
    default: {
        char what[64];
        snprintf(what, sizeof what, "data type %d is not converted", (int)t->data_type);
        return fail(what, argv[1]);
    }
    }
    uint64_t numel = 1;
    char shape[512] = "", dims[512] = "";
    size_t k = 0, kd = 0;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || __builtin_mul_overflow(numel, (uint64_t)t->dims[i], &numel))
            return fail("bad dims", argv[1]);
        k += (size_t)snprintf(shape + k, sizeof shape - k > 0 ? sizeof shape - k : 0, "%lld,",
                              (long long)t->dims[i]);
        kd += (size_t)snprintf(dims + kd, sizeof dims - kd, "%s%lld", i ? "," : "",
                               (long long)t->dims[i]);
        if (k >= sizeof shape - 32 || kd >= sizeof dims - 32)
            return fail("too many dims", argv[1]);
    }
    const void *data = t->has_raw_data ? (const void *)t->raw_data.data : typed;
    size_t have = t->has_raw_data ? t->raw_data.len / item : n_typed;
    if (have != numel || (t->has_raw_data && t->raw_data.len % item))
        return fail("the data does not match the dims", argv[1]);
    /* int32 in typed form is int32_data; float/int64 typed arrays are the element type. */
    char header[640];
    int hl = snprintf(header, sizeof header,
                      "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    size_t pad = (64 - (10 + (size_t)hl + 1) % 64) % 64, hlen = (size_t)hl + pad + 1;
    unsigned char pre[10] = { 0x93,
                              'N',
                              'U',
                              'M',
                              'P',
                              'Y',
                              1,
                              0,
                              (unsigned char)(hlen & 0xff),
                              (unsigned char)(hlen >> 8) };
    memset(header + hl, ' ', pad);
    header[(size_t)hl + pad] = '\n';
    dn_atomic_file f;
    if (dn_atomic_open(&f, argv[2], &err) || dn_atomic_write(&f, pre, 10, &err) ||
        dn_atomic_write(&f, header, hlen, &err) ||
        (numel && dn_atomic_write(&f, data, item * numel, &err)) || dn_atomic_commit(&f, &err))
        return fail(err.msg, argv[2]);
    printf("%s %s %s\n", t->name && t->name[0] ? t->name : "-", descr, dims);
    onnx__tensor_proto__free_unpacked(t, NULL);
    return 0;
}
