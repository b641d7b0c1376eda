/* train_section.c — parsing of a model file's "train" section (see train_section.h). */
#include "graph/train_section.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const optimizer_names[] = { "sgd",     "momentum", "nesterov",
                                               "adagrad", "rmsprop",  "adam" };
_Static_assert(sizeof optimizer_names / sizeof optimizer_names[0] == DN_ADAM + 1,
               "one name per dn_optimizer");

bool dn_optimizer_parse(const char *name, dn_optimizer *out)
{
    for (int i = DN_SGD; i <= DN_ADAM; i++)
        if (strcmp(name, optimizer_names[i]) == 0) {
            *out = (dn_optimizer)i;
            return true;
        }
    return false;
}

const char *dn_optimizer_name(dn_optimizer kind)
{
    return kind >= DN_SGD && kind <= DN_ADAM ? optimizer_names[kind] : "unknown";
}

static const char *const keys[] = { "epochs",   "batch",        "optimizer", "lr",
                                    "momentum", "weight_decay", "schedule",  "step_size",
                                    "gamma",    "seed",         "mirror",    "shift" };
#define N_KEYS (sizeof keys / sizeof keys[0])

static dn_status bad(dn_err *err, const char *file, const char *key, const char *expected,
                     const cJSON *v)
{
    char found[64] = "something else";
    if (cJSON_IsNumber(v))
        snprintf(found, sizeof found, "%g", v->valuedouble);
    else if (cJSON_IsString(v))
        snprintf(found, sizeof found, "\"%.40s\"", v->valuestring);
    return dn_err_set(err, DN_ERR_MODEL, "%s: (/train/%s): expected %s, found %s", file, key,
                      expected, found);
}

/* A number in [lo, hi] (an integer when `integer`); hi_open excludes hi. */
static bool number_in(const cJSON *v, double lo, double hi, bool hi_open, bool integer, double *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return false;
    double x = v->valuedouble;
    if (x < lo || x > hi || (hi_open && x == hi) || (integer && x != floor(x)))
        return false;
    *out = x;
    return true;
}

static dn_status parse_schedule(const cJSON *v, const char *file, dn_train_options *out,
                                dn_err *err)
{
    static const struct {
        const char *name;
        dn_lr_schedule kind;
    } names[] = { { "constant", DN_LR_CONSTANT },
                  { "step", DN_LR_STEP },
                  { "cosine", DN_LR_COSINE } };
    for (size_t i = 0; cJSON_IsString(v) && i < 3; i++)
        if (strcmp(v->valuestring, names[i].name) == 0) {
            out->schedule = names[i].kind;
            return DN_OK;
        }
    return bad(err, file, "schedule", "\"constant\", \"step\" or \"cosine\"", v);
}

static dn_status parse_key(const cJSON *v, const char *file, dn_train_options *out, dn_err *err)
{
    const char *k = v->string;
    double x;
    if (strcmp(k, "optimizer") == 0) {
        if (!cJSON_IsString(v) || !dn_optimizer_parse(v->valuestring, &out->optimizer))
            return bad(err, file, k, "one of sgd, momentum, nesterov, adagrad, rmsprop, adam", v);
    } else if (strcmp(k, "schedule") == 0) {
        return parse_schedule(v, file, out, err);
    } else if (strcmp(k, "epochs") == 0) {
        if (!number_in(v, 0, 1e6, false, true, &x))
            return bad(err, file, k, "an integer in [0, 1000000]", v);
        out->epochs = (int)x;
    } else if (strcmp(k, "batch") == 0) {
        if (!number_in(v, 1, 1e7, false, true, &x))
            return bad(err, file, k, "an integer in [1, 10000000]", v);
        out->batch = (int)x;
    } else if (strcmp(k, "step_size") == 0) {
        if (!number_in(v, 1, 1e6, false, true, &x))
            return bad(err, file, k, "an integer in [1, 1000000]", v);
        out->step_size = (int)x;
    } else if (strcmp(k, "seed") == 0) {
        if (!number_in(v, 0, 9007199254740992.0, false, true, &x))
            return bad(err, file, k, "a non-negative integer", v);
        out->seed = (uint64_t)x;
    } else if (strcmp(k, "mirror") == 0) {
        if (!cJSON_IsBool(v))
            return bad(err, file, k, "true or false", v);
        out->mirror = cJSON_IsTrue(v);
    } else if (strcmp(k, "shift") == 0) {
        if (!number_in(v, 0, 65535, false, true, &x))
            return bad(err, file, k, "an integer in [0, 65535] (pixels)", v);
        out->shift = (int)x;
    } else if (strcmp(k, "lr") == 0) {
        if (!number_in(v, 0, 1e6, false, false, &x) || x == 0)
            return bad(err, file, k, "a positive number", v);
        out->lr = (float)x;
    } else if (strcmp(k, "momentum") == 0) {
        if (!number_in(v, 0, 1, true, false, &x))
            return bad(err, file, k, "a number in [0, 1)", v);
        out->momentum = (float)x;
    } else if (strcmp(k, "weight_decay") == 0) {
        if (!number_in(v, 0, 1e6, false, false, &x))
            return bad(err, file, k, "a number >= 0", v);
        out->weight_decay = (float)x;
    } else { /* gamma */
        if (!number_in(v, 0, 1, false, false, &x) || x == 0)
            return bad(err, file, k, "a number in (0, 1]", v);
        out->gamma = (float)x;
    }
    return DN_OK;
}

dn_status dn_train_section_parse(const cJSON *train, const char *file, dn_train_options *out,
                                 dn_err *err)
{
    if (!cJSON_IsObject(train))
        return dn_err_set(err, DN_ERR_MODEL,
                          "%s: (/train): expected an object of training defaults", file);
    for (const cJSON *v = train->child; v; v = v->next) {
        bool known = false;
        for (size_t i = 0; i < N_KEYS && !known; i++)
            known = strcmp(keys[i], v->string) == 0;
        if (!known)
            return dn_err_set(err, DN_ERR_MODEL,
                              "%s: (/train/%s): unknown field \"%s\" (expected epochs, batch, "
                              "optimizer, lr, momentum, weight_decay, schedule, step_size, "
                              "gamma, seed, mirror, shift)",
                              file, v->string, v->string);
        dn_status st = parse_key(v, file, out, err);
        if (st)
            return st;
    }
    return DN_OK;
}
