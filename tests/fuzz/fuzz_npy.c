/*
 * fuzz_npy.c — libFuzzer harness of the .npy reader (src/io/npy.c): any bytes either parse
 * into an array whose data hold exactly the product of its shape's elements, or fail with a
 * message. Run by scripts/fuzz.sh; seeds in tests/fuzz/corpus/npy/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_err err;
    dn_err_clear(&err);
    dn_array a;
    memset(&a, 0, sizeof a);
    if (dn_npy_parse(data, size, "fuzz.npy", &a, &err) != DN_OK) {
        if (!err.msg[0])
            abort(); /* every failure explains itself */
        return 0;
    }
    dn_array_free(&a);
    return 0;
}
