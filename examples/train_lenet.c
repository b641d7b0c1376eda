/*
 * train_lenet.c — train a model from its JSON file, report, save: the whole training loop
 * through dagnet's public API (include/dagnet.h).
 *
 *   train_lenet [MODEL.json] [DATA_DIR] [EPOCHS] [OUT.safetensors]
 *
 * Defaults: examples/models/lenet5.json, Debian's Fashion-MNIST, the model's "train" section
 * (or 3 epochs of Adam, lr 0.001, batch 100), lenet5.safetensors.
 */
#include <stdio.h>
#include <stdlib.h>

#include "dagnet.h"

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "train_lenet: %s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv)
{
    const char *model_path = argc > 1 ? argv[1] : "examples/models/lenet5.json";
    const char *data_dir = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";
    const char *out_path = argc > 4 ? argv[4] : "lenet5.safetensors";

    dn_model *model = NULL;
    dn_session *session = NULL;
    dn_trainer *trainer = NULL;
    dn_dataset *train = NULL, *test = NULL;
    int rc = 1;

    if (dn_model_load(model_path, &model)) {
        rc = fail("model", dn_model_errmsg(model));
        goto out;
    }
    dn_train_options opts;
    dn_model_train_options(model, &opts);
    if (argc > 3)
        opts.epochs = atoi(argv[3]);
    if (dn_session_new(model, NULL, &session)) {
        rc = fail("session", dn_session_errmsg(session));
        goto out;
    }
    if (dn_dataset_load_dir(data_dir, true, &train)) {
        rc = fail("training data", dn_dataset_errmsg(train));
        goto out;
    }
    if (dn_dataset_load_dir(data_dir, false, &test)) {
        rc = fail("test data", dn_dataset_errmsg(test));
        goto out;
    }
    if (dn_trainer_new(session, &opts, NULL, &trainer)) {
        rc = fail("trainer", dn_trainer_errmsg(trainer));
        goto out;
    }
    printf("%s: %lld training images, %d epochs\n", model_path, (long long)dn_dataset_count(train),
           opts.epochs);
    for (int epoch = 0; epoch < opts.epochs; epoch++) {
        dn_step_stats st = { 0 };
        while (!st.epoch_done)
            if (dn_trainer_step(trainer, train, &st)) {
                rc = fail("training", dn_trainer_errmsg(trainer));
                goto out;
            }
        dn_eval_result r;
        if (dn_session_evaluate(session, test, NULL, 100, &r)) {
            rc = fail("evaluation", dn_session_errmsg(session));
            goto out;
        }
        printf("epoch %d: train loss %.4f, train acc %.2f%%, test acc %.2f%%\n", epoch + 1,
               st.loss_sum / (double)st.seen, 100.0 * (double)st.correct / (double)st.seen,
               100.0 * (double)r.correct / (double)r.count);
        dn_eval_result_free(&r);
    }
    if (dn_session_save_weights(session, out_path)) {
        rc = fail("saving", dn_session_errmsg(session));
        goto out;
    }
    printf("weights: %s\n", out_path);
    rc = 0;
out:
    dn_trainer_free(trainer);
    dn_dataset_free(train);
    dn_dataset_free(test);
    dn_session_free(session);
    dn_model_free(model);
    return rc;
}
