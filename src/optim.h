/*
 * optim.h — optimisers over one contiguous param buffer, and learning-rate schedules.
 *
 * The update rules are PyTorch 1.13's (torch.optim), with g = grad + wd·param (L2 weight
 * decay added to the gradient) and t the 1-based step count:
 *   SGD        p -= lr·g
 *   Momentum   b = μ·b + g;                p -= lr·b
 *   Nesterov   b = μ·b + g;                p -= lr·(g + μ·b)
 *   AdaGrad    s += g²;                    p -= lr·g / (√s + ε)                 ε = 1e-10
 *   RMSProp    s = α·s + (1−α)·g²;         p -= lr·g / (√s + ε)                 α = 0.99, ε = 1e-8
 *   Adam       m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
 *              p -= (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)              β = (0.9, 0.999), ε = 1e-8
 * The book (chapter 6) writes Momentum as v = μ·v − lr·g, p += v: the same steps while lr is
 * constant; PyTorch's form keeps the velocity independent of lr, which matters once a
 * schedule changes lr.
 *
 * State: slots × n floats (one per moment), zeroed before the first step. Updates are
 * elementwise, so the result does not depend on the thread count.
 */
#ifndef DN_OPTIM_H
#define DN_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

typedef enum dn_optim_kind {
    DN_OPTIM_SGD = 0,
    DN_OPTIM_MOMENTUM,
    DN_OPTIM_NESTEROV,
    DN_OPTIM_ADAGRAD,
    DN_OPTIM_RMSPROP,
    DN_OPTIM_ADAM,
} dn_optim_kind;

/* Hyper-parameters in double, as PyTorch keeps them in Python floats: 1 − β is formed in
 * double and rounded to float once, which is what makes the steps agree to the last bit. */
typedef struct dn_optim_config {
    dn_optim_kind kind;
    double momentum;     /* Momentum, Nesterov */
    double alpha;        /* RMSProp decay */
    double beta1, beta2; /* Adam */
    double eps;
    double weight_decay;
} dn_optim_config;

/* PyTorch's constants for the kind. */
dn_optim_config dn_optim_defaults(dn_optim_kind kind);
bool dn_optim_parse_kind(const char *name, dn_optim_kind *out);
const char *dn_optim_kind_name(dn_optim_kind kind);
/* How many n-float state vectors the kind keeps. */
int dn_optim_state_slots(dn_optim_kind kind);

void dn_optim_step(const dn_optim_config *c, float lr, int64_t t, float *param, const float *grad,
                   float *state, int64_t n, int threads);

/* Learning rate by epoch (0-based), as PyTorch's StepLR and CosineAnnealingLR (T_max = epochs)
 * give it:  step: base·γ^⌊epoch / step_size⌋   cosine: min + (base − min)·(1 + cos(π·epoch/epochs))/2 */
typedef enum dn_schedule_kind { DN_SCHEDULE_CONSTANT, DN_SCHEDULE_STEP, DN_SCHEDULE_COSINE } dn_schedule_kind;

typedef struct dn_schedule {
    dn_schedule_kind kind;
    int64_t step_size;
    float gamma;
    float min_lr;
} dn_schedule;

float dn_schedule_lr(const dn_schedule *s, float base_lr, int64_t epoch, int64_t epochs);

#endif
