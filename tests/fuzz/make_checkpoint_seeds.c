/*
 * make_checkpoint_seeds.c — writes the seed corpus of fuzz_checkpoint: checkpoints of the tiny
 * model of fuzz_tiny_model.h after 1 and 3 Adam steps (batch 2 over 4 examples), and one after
 * an SGD step (a checkpoint of another optimiser: the reader's mismatch path).
 *   gcc -Isrc -Iinclude -Itests/fuzz tests/fuzz/make_checkpoint_seeds.c build/libdagnet.a \
 *       -L/usr/lib/x86_64-linux-gnu/blis-openmp -l:libblis.so.4 -lcjson -lz -lm -fopenmp \
 *       -o /tmp/seeds && /tmp/seeds tests/fuzz/corpus/checkpoint
 * (BLIS's OpenMP build, where CMakeLists.txt finds it.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagnet.h"
#include "fuzz_tiny_model.h"

static int save(const char *dir, const char *name, dn_optimizer opt, int steps)
{
    dn_model *m = NULL;
    dn_session *s = NULL;
    dn_trainer *t = NULL;
    dn_dataset *d = NULL;
    dn_session_options so = { .seed = 1, .threads = 1 };
    dn_train_options to = DN_TRAIN_OPTIONS_DEFAULT;
    to.batch = 2;
    to.optimizer = opt;
    float images[16];
    int32_t labels[4] = { 0, 1, 2, 0 };
    for (int i = 0; i < 16; i++)
        images[i] = (float)i / 16.0f;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int bad = dn_model_parse(DN_FUZZ_TINY_MODEL, strlen(DN_FUZZ_TINY_MODEL), "tiny.json", &m) ||
              dn_session_new(m, &so, &s) || dn_trainer_new(s, &to, NULL, &t) ||
              dn_dataset_from_arrays(4, 1, 2, 2, images, labels, 3, &d);
    for (int k = 0; !bad && k < steps; k++)
        bad = dn_trainer_step(t, d, NULL) != DN_OK;
    if (!bad)
        bad = dn_trainer_save_checkpoint(t, path) != DN_OK;
    if (bad)
        fprintf(stderr, "%s: failed\n", path);
    dn_dataset_free(d);
    dn_trainer_free(t);
    dn_session_free(s);
    dn_model_free(m);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    return save(argv[1], "adam_1_step.ckpt", DN_ADAM, 1) |
           save(argv[1], "adam_3_steps.ckpt", DN_ADAM, 3) |
           save(argv[1], "sgd_1_step.ckpt", DN_SGD, 1);
}
