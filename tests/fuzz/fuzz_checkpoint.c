/*
 * fuzz_checkpoint.c — libFuzzer harness of the checkpoint reader (dn_trainer_load_checkpoint,
 * src/train/trainer.c) on a tiny model: Affine 4 → 3 and a softmax loss, trained with Adam.
 * The input is written to an in-memory file and loaded into a fresh trainer; a load either
 * succeeds (then one training step must run) or fails with a message. Seeds in
 * tests/fuzz/corpus/checkpoint/ are checkpoints of this model (make_checkpoint_seeds.c).
 */
#include "fuzz_common.h"

#include <string.h>

#include "dagnet.h"

/* The model the seeds were saved from (make_checkpoint_seeds.c uses the same text). */
#include "fuzz_tiny_model.h"

static dn_model *model;
static dn_dataset *data;

/* The model and the data set, once: both are only read. */
static void setup(void)
{
    float images[4 * 4];
    int32_t labels[4] = { 0, 1, 2, 0 };
    for (int i = 0; i < 16; i++)
        images[i] = (float)i / 16.0f;
    if (dn_model_parse(DN_FUZZ_TINY_MODEL, strlen(DN_FUZZ_TINY_MODEL), "tiny.json", &model) ||
        dn_dataset_from_arrays(4, 1, 2, 2, images, labels, 3, &data))
        abort(); /* a harness bug, not a finding */
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    if (!model)
        setup();
    /* A fresh session and trainer per input, so that a run does not depend on the inputs
     * before it (a crash replays alone). */
    dn_session_options so = { .seed = 1, .threads = 1 };
    dn_train_options to = DN_TRAIN_OPTIONS_DEFAULT;
    to.batch = 2;
    dn_session *session = NULL;
    dn_trainer *trainer = NULL;
    if (dn_session_new(model, &so, &session) || dn_trainer_new(session, &to, NULL, &trainer))
        abort();
    if (dn_trainer_load_checkpoint(trainer, dn_fuzz_file(bytes, size)) != DN_OK) {
        if (!dn_trainer_errmsg(trainer)[0])
            abort();
    } else if (dn_trainer_step(trainer, data, NULL) != DN_OK && !dn_trainer_errmsg(trainer)[0]) {
        abort(); /* a loaded checkpoint must leave a trainer that trains (or says why not) */
    }
    dn_trainer_free(trainer);
    dn_session_free(session);
    return 0;
}
