/*
 * train_section.h — the optional "train" section of a model file: training defaults, as
 * Caffe's solver gives them; command-line flags override them.
 *
 *   "train": {"epochs": 5, "batch": 100, "optimizer": "adam", "lr": 0.001, "momentum": 0.9,
 *             "weight_decay": 0, "schedule": "step", "step_size": 2, "gamma": 0.5, "seed": 0}
 *
 * Every key is optional; unknown keys and ill-typed values are errors.
 */
#ifndef DN_TRAIN_SECTION_H
#define DN_TRAIN_SECTION_H

#include <cjson/cJSON.h>

#include "dagnet.h"
#include "runtime/error.h"

/* Fill *out (already holding the defaults) from the section; messages name the file and the
 * JSON location (/train/<key>). */
dn_status dn_train_section_parse(const cJSON *train, const char *file, dn_train_options *out,
                                 dn_err *err);

/* The model file's and checkpoints' names of the optimisers: "sgd", "momentum", "nesterov",
 * "adagrad", "rmsprop", "adam" (lower case). false for any other name. */
bool dn_optimizer_parse(const char *name, dn_optimizer *out);

/* The name dn_optimizer_parse accepts, or "unknown" for a value outside the enum. */
const char *dn_optimizer_name(dn_optimizer kind);

#endif
