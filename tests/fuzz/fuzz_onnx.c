/*
 * fuzz_onnx.c — libFuzzer harness of the ONNX importer (io/onnx_import.c through
 * dn_model_parse_onnx): any bytes either import into a model that loads, or fail with a
 * message. A model that imports and is small (the caps of fuzz_run.h, shared with
 * fuzz_model.c) gets a session (which copies in the weights that came with it) with batch 2
 * and deterministic inputs, and runs a forward. Every failure must explain itself. Seeds in
 * tests/fuzz/corpus/onnx/ are small models of ONNX's own test cases and of dagnet's exports.
 */
#include "fuzz_run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_model *m = NULL;
    if (dn_model_parse_onnx(data, size, "fuzz.onnx", NULL, &m)) {
        explained(dn_model_errmsg(m));
        dn_model_free(m);
        return 0;
    }
    run_if_small(m);
    dn_model_free(m);
    return 0;
}
