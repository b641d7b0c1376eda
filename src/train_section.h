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
#include "error.h"

/* Fill *out (already holding the defaults) from the section; messages name the file and the
 * JSON location (/train/<key>). */
dn_status dn_train_section_parse(const cJSON *train, const char *file, dn_train_options *out,
                                 dn_err *err);

#endif
