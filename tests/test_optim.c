/*
 * test_optim.c — every optimiser against PyTorch 1.13 on the same gradients (the reference
 * values in optim_reference.h come from tests/optim_reference.py), hand-checked steps, and the
 * learning-rate schedules against StepLR and CosineAnnealingLR.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "optim_reference.h"

#define LONG_N 70007 /* long enough for the parallel loops */

/* Five steps from p0 with grads[], on 7 elements and on a long vector repeating them. */
static void run(dn_optim_kind kind, float lr, double wd, const float want[7])
{
    dn_optim_config c = dn_optim_defaults(kind);
    c.weight_decay = wd;
    float *p = malloc(LONG_N * sizeof *p), *g = malloc(LONG_N * sizeof *g);
    float *state = calloc((size_t)dn_optim_state_slots(kind) * LONG_N + 1, sizeof *state);
    for (int64_t i = 0; i < LONG_N; i++)
        p[i] = p0[i % 7];
    for (int t = 1; t <= 5; t++) {
        for (int64_t i = 0; i < LONG_N; i++)
            g[i] = grads[t - 1][i % 7];
        dn_optim_step(&c, lr, t, p, g, state, LONG_N, 2);
    }
    for (int64_t i = 0; i < LONG_N; i += 997)
        cr_assert(fabsf(p[i] - want[i % 7]) <= 1e-6f * fabsf(want[i % 7]) + 1e-7f,
                  "%s element %lld: %.9g, PyTorch %.9g", dn_optim_kind_name(kind), (long long)i,
                  (double)p[i], (double)want[i % 7]);
    free(p);
    free(g);
    free(state);
}

Test(optim, sgd_matches_pytorch) { run(DN_OPTIM_SGD, 0.1f, 0, want_sgd); }
Test(optim, sgd_weight_decay_matches_pytorch) { run(DN_OPTIM_SGD, 0.1f, 0.01, want_sgd_wd); }
Test(optim, momentum_matches_pytorch) { run(DN_OPTIM_MOMENTUM, 0.05f, 0, want_momentum); }
Test(optim, momentum_weight_decay_matches_pytorch) { run(DN_OPTIM_MOMENTUM, 0.05f, 0.001, want_momentum_wd); }
Test(optim, nesterov_matches_pytorch) { run(DN_OPTIM_NESTEROV, 0.05f, 0, want_nesterov); }
Test(optim, adagrad_matches_pytorch) { run(DN_OPTIM_ADAGRAD, 0.1f, 0, want_adagrad); }
Test(optim, rmsprop_matches_pytorch) { run(DN_OPTIM_RMSPROP, 0.01f, 0, want_rmsprop); }
Test(optim, rmsprop_weight_decay_matches_pytorch) { run(DN_OPTIM_RMSPROP, 0.01f, 0.1, want_rmsprop_wd); }
Test(optim, adam_matches_pytorch) { run(DN_OPTIM_ADAM, 0.001f, 0, want_adam); }
Test(optim, adam_weight_decay_matches_pytorch) { run(DN_OPTIM_ADAM, 0.01f, 0.05, want_adam_wd); }

Test(optim, hand_checked_first_steps)
{
    float p[2] = { 1.0f, -2.0f }, g[2] = { 0.5f, -0.25f }, state[4] = { 0 };
    dn_optim_config c = dn_optim_defaults(DN_OPTIM_SGD);
    dn_optim_step(&c, 0.1f, 1, p, g, NULL, 2, 1);
    cr_assert_eq(p[0], 1.0f - 0.1f * 0.5f);
    cr_assert_eq(p[1], -2.0f + 0.1f * 0.25f);
    /* Adam's first step moves each param by lr·sign(g) (up to eps). */
    float q[2] = { 1.0f, -2.0f };
    c = dn_optim_defaults(DN_OPTIM_ADAM);
    dn_optim_step(&c, 0.01f, 1, q, g, state, 2, 1);
    cr_assert_float_eq(q[0], 1.0f - 0.01f, 1e-6f);
    cr_assert_float_eq(q[1], -2.0f + 0.01f, 1e-6f);
    cr_assert_eq(dn_optim_state_slots(DN_OPTIM_SGD), 0);
    cr_assert_eq(dn_optim_state_slots(DN_OPTIM_ADAM), 2);
}

Test(optim, names)
{
    dn_optim_kind k;
    cr_assert(dn_optim_parse_kind("nesterov", &k) && k == DN_OPTIM_NESTEROV);
    cr_assert_str_eq(dn_optim_kind_name(DN_OPTIM_RMSPROP), "rmsprop");
    cr_assert_not(dn_optim_parse_kind("Adam", &k), "names are lower case");
    cr_assert_not(dn_optim_parse_kind("lbfgs", &k));
}

Test(schedule, step_and_cosine_match_pytorch)
{
    dn_schedule step = { .kind = DN_SCHEDULE_STEP, .step_size = 3, .gamma = 0.5f };
    dn_schedule cosine = { .kind = DN_SCHEDULE_COSINE };
    dn_schedule constant = { .kind = DN_SCHEDULE_CONSTANT };
    for (int e = 0; e < 8; e++) {
        cr_assert_float_eq(dn_schedule_lr(&step, 0.1f, e, 8), want_step_lr[e], 1e-8f, "step, epoch %d", e);
        cr_assert_float_eq(dn_schedule_lr(&cosine, 0.1f, e, 8), want_cosine_lr[e], 1e-8f, "cosine, epoch %d", e);
        cr_assert_eq(dn_schedule_lr(&constant, 0.1f, e, 8), 0.1f);
    }
}
