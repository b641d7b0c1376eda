/*
 * optim.h — optimisers over one contiguous param buffer, and learning-rate schedules.
 *
 * The update rules are PyTorch 1.13's (torch.optim.SGD, Adagrad, RMSprop, Adam), per element,
 * with t the 1-based step count and L2 weight decay added to the gradient first:
 *
 *   g = grad + wd·p                                   (skipped when wd = 0, as PyTorch does)
 *
 *   SGD        p ← p − lr·g
 *   Momentum   b ← μ·b + g;           p ← p − lr·b                         μ = 0.9
 *   Nesterov   b ← μ·b + g;           p ← p − lr·(g + μ·b)
 *   AdaGrad    s ← s + g²;            p ← p − lr·g / (√s + ε)              ε = 1e-10
 *   RMSProp    s ← α·s + (1−α)·g²;    p ← p − lr·g / (√s + ε)              α = 0.99, ε = 1e-8
 *   Adam       m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²
 *              p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)
 *                                                              β1 = 0.9, β2 = 0.999, ε = 1e-8
 *
 * Adam's last line is m̂ / (√v̂ + ε) with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t), in PyTorch's grouping:
 * ε is added after √v is divided by √(1−β2^t). It is Adam, not AdamW: the decay goes through
 * the moments. RMSProp is the plain form (not centred, no momentum).
 *
 * Momentum is PyTorch's form, not the textbook's v ← μ·v − lr·g, p ← p + v. PyTorch's buffer
 * b holds no lr (v = −lr·b), so the two take the same steps while lr is constant; when a
 * schedule changes lr, PyTorch's applies the new lr to the whole accumulated velocity at once.
 * PyTorch sets b = g on the first step; with b zeroed beforehand μ·0 + g is the same value.
 *
 * State: dn_optim_state_slots(kind) vectors of n floats, one after the other in one buffer
 * (Adam: m, then v), zeroed by the caller before step 1. Every update is elementwise, so the
 * result does not depend on the thread count.
 */
#ifndef DN_OPTIM_H
#define DN_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

typedef enum dn_optim_kind {
    DN_OPTIM_SGD,
    DN_OPTIM_MOMENTUM,
    DN_OPTIM_NESTEROV,
    DN_OPTIM_ADAGRAD,
    DN_OPTIM_RMSPROP,
    DN_OPTIM_ADAM,
} dn_optim_kind;

typedef struct dn_optim_config {
    dn_optim_kind kind;
    float momentum;     /* μ: Momentum, Nesterov; 0.9 */
    float alpha;        /* α: RMSProp's decay; 0.99 */
    float beta1, beta2; /* Adam; 0.9, 0.999 */
    float eps;          /* AdaGrad 1e-10, RMSProp 1e-8, Adam 1e-8; 0 for the kinds without one */
    float weight_decay; /* wd, L2 through the gradient; 0 */
} dn_optim_config;

/* PyTorch's default hyper-parameters for the kind. */
dn_optim_config dn_optim_defaults(dn_optim_kind kind);

/* How many n-float state vectors the kind keeps: SGD 0, Adam 2, the others 1. */
int dn_optim_state_slots(dn_optim_kind kind);

/* One update of param[0..n) from grad with learning rate lr; t ≥ 1 is this step's number.
 * state holds dn_optim_state_slots(c->kind)·n floats (NULL when that is 0). */
void dn_optim_step(const dn_optim_config *c, float lr, int64_t t, float *param, const float *grad,
                   float *state, int64_t n, int threads);

/*
 * Learning rate of an epoch (0-based) out of `epochs`, PyTorch's schedulers in closed form:
 *
 *   CONSTANT   base
 *   STEP       base·γ^⌊epoch / step_size⌋                         StepLR
 *   COSINE     min + (base − min)·(1 + cos(π·epoch / epochs))/2   CosineAnnealingLR, T_max = epochs
 */
typedef enum dn_schedule_kind {
    DN_SCHEDULE_CONSTANT,
    DN_SCHEDULE_STEP,
    DN_SCHEDULE_COSINE
} dn_schedule_kind;

typedef struct dn_schedule {
    dn_schedule_kind kind;
    int64_t step_size; /* STEP: epochs between decays, ≥ 1 */
    float gamma;       /* STEP: decay factor; 0.1 */
    float min_lr;      /* COSINE: the floor reached at the last epoch; 0 */
} dn_schedule;

/* A STEP schedule with step_size < 1, or a COSINE one with epochs < 1, gives base_lr. */
float dn_schedule_lr(const dn_schedule *s, float base_lr, int64_t epoch, int64_t epochs);

/* Command-line form: "constant", "step:N" or "step:N:GAMMA" (N ≥ 1, GAMMA > 0, default 0.1),
 * "cosine" or "cosine:MIN_LR" (MIN_LR ≥ 0, default 0). On false *out is untouched. */
bool dn_schedule_parse(const char *text, dn_schedule *out);

#endif
