/*
 * fuzz_tiny_model.h — the tiny model the checkpoint harness trains and its seeds come from:
 * image [n, 1, 2, 2] → Flatten → Affine (4 → 3, params W [4, 3] and b [3]) → softmax
 * cross-entropy against int32 labels [n] in [0, 3). tests/fuzz/corpus/model/tiny.json is the
 * same model (tests/test_fuzz_findings.c loads it from there).
 */
#ifndef DN_FUZZ_TINY_MODEL_H
#define DN_FUZZ_TINY_MODEL_H

#define DN_FUZZ_TINY_MODEL                                                                         \
    "{\"format\": \"dagnet/1\", \"name\": \"tiny\","                                               \
    " \"inputs\": {\"image\": {\"shape\": [null, 1, 2, 2]},"                                       \
    "              \"label\": {\"shape\": [null], \"dtype\": \"int32\"}},"                         \
    " \"nodes\": ["                                                                                \
    "  {\"name\": \"flat\", \"op\": \"Flatten\", \"inputs\": [\"image\"]},"                        \
    "  {\"name\": \"fc\", \"op\": \"Affine\", \"inputs\": [\"flat\"], \"attrs\": {\"units\": 3}}," \
    "  {\"name\": \"loss\", \"op\": \"SoftmaxCrossEntropy\", \"inputs\": [\"fc\", \"label\"]}],"   \
    " \"outputs\": [\"fc\"], \"loss\": \"loss\"}"

#endif
