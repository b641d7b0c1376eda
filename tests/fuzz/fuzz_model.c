/*
 * fuzz_model.c — libFuzzer harness of the model parser (graph/load*.c, dn_model_parse) and,
 * for the small models it accepts, of the engine that runs them: any JSON text either loads
 * or fails with a message; a model that loads and is small (params, per-sample outputs and
 * FLOPs under the caps of fuzz_run.h) gets a session with batch 2, deterministic inputs (floats
 * sin(i), int32 labels 0), a forward and, when it has a loss, a training forward and a
 * backward. Every failure must explain itself. Seeds in tests/fuzz/corpus/model/ are the
 * example models and small variants of them.
 */
#include "fuzz_run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_model *m = NULL;
    if (dn_model_parse((const char *)data, size, "fuzz.json", &m)) {
        explained(dn_model_errmsg(m));
        dn_model_free(m);
        return 0;
    }
    run_if_small(m);
    dn_model_free(m);
    return 0;
}
