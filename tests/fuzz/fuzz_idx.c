/*
 * fuzz_idx.c — libFuzzer harness of the IDX reader (src/io/idx.c), raw and gzip: the input is
 * written to an in-memory file and read with dn_idx_read under a 1 MiB cap, so that a gzip
 * member (magic 1f 8b) is inflated and any other bytes parsed as raw IDX. A success must hold
 * exactly the product of its dimensions; a failure must explain itself. Seeds in
 * tests/fuzz/corpus/idx/ (raw and .gz).
 */
#include "fuzz_common.h"

#include <string.h>

#include "io/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_err err;
    dn_err_clear(&err);
    dn_idx x;
    memset(&x, 0, sizeof x);
    if (dn_idx_read(dn_fuzz_file(data, size), (size_t)1 << 20, &x, &err) != DN_OK) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    uint64_t n = 1;
    for (int i = 0; i < x.rank; i++)
        n *= (uint64_t)x.dims[i];
    if (n != x.size || !x.data)
        abort();
    unsigned sum = 0;
    for (size_t i = 0; i < x.size; i++)
        sum += x.data[i];
    dn_idx_free(&x);
    return (int)(sum & 0);
}
