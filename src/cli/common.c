/*
 * common.c — what the `dagnet` commands share (declared in cli.h): reporting a handle's
 * failure, opening a session from the options, the clock, and the synthetic data of `check`
 * and `bench`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* ------------------------------------------------------------------ sessions */

int fail_model(const dn_model *m)
{
    fprintf(stderr, "dagnet: %s\n", dn_model_errmsg(m));
    return 1;
}

int fail_session(const dn_session *s)
{
    fprintf(stderr, "dagnet: %s\n", dn_session_errmsg(s));
    return 1;
}

int open_session(const dn_model *m, const options *o, dn_session **s)
{
    dn_session_options so = DN_SESSION_OPTIONS_DEFAULT;
    so.seed = o->seed;
    so.threads = o->threads;
    so.keep_tensors = o->tensors; /* `grad --tensors` writes every activation */
    if (dn_session_new(m, &so, s))
        return fail_session(*s);
    if (o->weights && dn_session_load_weights(*s, o->weights))
        return fail_session(*s);
    for (int i = 0; i < o->n_feeds; i++)
        if (dn_session_set_input_npy(*s, o->feed_name[i], o->feed_path[i]))
            return fail_session(*s);
    return 0;
}

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ synthetic data */

/* The class count the loss compares labels against: the last dim of its first input; 0 when
 * the model has no loss. */
int64_t loss_classes(const dn_model *m)
{
    const char *loss = dn_model_loss_name(m);
    dn_node_info n, logits;
    for (int i = 0; loss && i < dn_model_node_count(m); i++) {
        if (dn_model_node_info(m, i, &n) || strcmp(n.name, loss) != 0 || n.n_inputs == 0)
            continue;
        for (int j = 0; j < dn_model_node_count(m); j++)
            if (!dn_model_node_info(m, j, &logits) && strcmp(logits.name, n.inputs[0]) == 0 &&
                logits.rank >= 1)
                return logits.shape[logits.rank - 1];
    }
    return 0;
}

uint64_t synthetic_start(unsigned long long seed)
{
    return seed * 6364136223846793005ull + 1442695040888963407ull;
}

uint32_t synthetic_next(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*state >> 33);
}

float synthetic_uniform(uint64_t *state)
{
    return (float)(synthetic_next(state) >> 7) / 16777216.0f;
}

int cli_launcher_size(void)
{
    const char *names[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE" };
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return atoi(v);
    }
    return 0;
}
