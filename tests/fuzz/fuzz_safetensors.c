/*
 * fuzz_safetensors.c — libFuzzer harness of the safetensors reader (src/io/safetensors.c):
 * any bytes either parse into entries whose data lie inside the file and hold exactly the
 * bytes their dtype and shape need, or fail with a message. Every entry's bytes are read, so
 * that ASan sees an entry pointing outside the buffer. Seeds in tests/fuzz/corpus/safetensors/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1); /* dn_st_parse takes ownership */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    dn_err err;
    dn_err_clear(&err);
    dn_st_file f;
    memset(&f, 0, sizeof f);
    if (dn_st_parse(buf, size, "fuzz.safetensors", &f, &err) != DN_OK) {
        if (!err.msg[0])
            abort(); /* every failure explains itself */
        return 0;
    }
    unsigned sum = 0;
    for (int i = 0; i < f.n; i++) {
        if (dn_st_find(&f, f.entries[i].name) == NULL)
            abort();
        for (size_t b = 0; b < f.entries[i].nbytes; b++)
            sum += f.entries[i].data[b];
    }
    dn_st_free(&f);
    return (int)(sum & 0); /* the reads above must not be optimised away */
}
