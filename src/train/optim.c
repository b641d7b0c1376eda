/*
 * optim.c — the update rules and schedules of optim.h.
 *
 * Each rule repeats, per element, the float32 operations PyTorch 1.13's single-tensor
 * optimisers perform, in their order, so that given the same float hyper-parameters the
 * params agree to the last bit (tests/test_optim.c checks this against PyTorch):
 *
 *   x.add(y, alpha=a)          fmaf(a, y, x)        PyTorch's CPU kernel fuses a·y + x
 *   x.addcmul_(y, z, value=a)  fmaf(a·y, z, x)      a·y rounded, then fused
 *   x.addcdiv_(y, z, value=a)  x + (a·y)/z          no fusion
 *   x.mul_(a)                  a·x
 *
 * Python computes scalars in double and the kernels round them to float once: 1 − β, the
 * bias corrections, lr/(1 − β1^t) and √(1 − β2^t) are therefore formed in double from the
 * float hyper-parameters and rounded at the end. Everything else is float arithmetic that the
 * compiler must not contract into FMAs of its own: ISO C mode (-std=c11, as the build uses)
 * keeps GCC from doing so, and -ffast-math would break it.
 */
#include "train/optim.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/clones.h"
#include "runtime/parallel.h"

/* Loops over this many elements or more run in parallel; below it threads cost more than
 * they save. The same threshold as the ops' DN_PARALLEL_MIN (ops/op.h), kept here so that the
 * optimisers do not depend on the op layer. */
#define OPTIM_PARALLEL_MIN 32768

dn_optim_config dn_optim_defaults(dn_optim_kind kind)
{
    dn_optim_config c = { .kind = kind,
                          .momentum = 0.9f,
                          .alpha = 0.99f,
                          .beta1 = 0.9f,
                          .beta2 = 0.999f,
                          .eps = 0.0f,
                          .weight_decay = 0.0f };
    if (kind == DN_OPTIM_ADAGRAD)
        c.eps = 1e-10f;
    else if (kind == DN_OPTIM_RMSPROP || kind == DN_OPTIM_ADAM)
        c.eps = 1e-8f;
    return c;
}

int dn_optim_state_slots(dn_optim_kind kind)
{
    switch (kind) {
    case DN_OPTIM_SGD: return 0;
    case DN_OPTIM_ADAM: return 2;
    default: return 1;
    }
}

/* ------------------------------------------------------------------ update rules */

/* g = grad + wd·p as grad.add(param, alpha=wd); PyTorch skips it at wd = 0, which also keeps
 * an infinite param from turning the gradient into NaN through 0·∞. */
static inline float decayed(float grad, float p, float wd)
{
    return wd != 0.0f ? fmaf(wd, p, grad) : grad;
}

/* 1 − x for a float hyper-parameter, as Python forms it (double) and a kernel takes it. */
static float complement(float x) { return (float)(1.0 - (double)x); }

/* Each update is an elementwise loop over a range of the params. The clone for x86-64-v3
 * machines (AVX2, FMA) vectorises it and turns fmaf into one instruction; the default clone
 * calls libm's fmaf. Both round fmaf exactly, so the results are the same bits. */
#define OPTIM_KERNEL DN_CLONES_AVX2 /* runtime/clones.h: plain in TSan builds */

/* param.add_(g, alpha=−lr) */
OPTIM_KERNEL static void sgd_range(float lr, float wd, float *restrict p,
                                   const float *restrict grad, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++)
        p[i] = fmaf(-lr, decayed(grad[i], p[i], wd), p[i]);
}

/* buf.mul_(μ).add_(g) (alpha 1: a plain sum); Nesterov: g.add(buf, alpha=μ); then
 * param.add_(·, alpha=−lr). */
OPTIM_KERNEL static void momentum_range(float lr, float wd, float mu, bool nesterov,
                                        float *restrict p, const float *restrict grad,
                                        float *restrict buf, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        float g = decayed(grad[i], p[i], wd);
        buf[i] = mu * buf[i] + g;
        float d = nesterov ? fmaf(mu, buf[i], g) : buf[i];
        p[i] = fmaf(-lr, d, p[i]);
    }
}

/* sum.addcmul_(g, g, value=1); std = sum.sqrt().add_(ε); param.addcdiv_(g, std, value=−lr)
 * (PyTorch's lr_decay is 0, so its clr is lr). */
OPTIM_KERNEL static void adagrad_range(float lr, float wd, float eps, float *restrict p,
                                       const float *restrict grad, float *restrict sum, int64_t lo,
                                       int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        float g = decayed(grad[i], p[i], wd);
        sum[i] = fmaf(g, g, sum[i]);
        p[i] += (-lr * g) / (sqrtf(sum[i]) + eps);
    }
}

/* avg.mul_(α).addcmul_(g, g, value=1−α); param.addcdiv_(g, avg.sqrt().add_(ε), value=−lr) */
OPTIM_KERNEL static void rmsprop_range(float alpha, float rest, float wd, float eps, float lr,
                                       float *restrict p, const float *restrict grad,
                                       float *restrict avg, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        float g = decayed(grad[i], p[i], wd);
        avg[i] = fmaf(rest * g, g, alpha * avg[i]);
        p[i] += (-lr * g) / (sqrtf(avg[i]) + eps);
    }
}

/* The constants of one Adam step. */
typedef struct adam_step {
    float neg_step, bc2_sqrt, b1, b2, rest1, rest2, wd, eps;
} adam_step;

OPTIM_KERNEL static void adam_range(const adam_step *a, float *restrict p,
                                    const float *restrict grad, float *restrict m,
                                    float *restrict v, int64_t lo, int64_t hi)
{
    adam_step c = *a;
    for (int64_t i = lo; i < hi; i++) {
        float g = decayed(grad[i], p[i], c.wd);
        m[i] = fmaf(c.rest1, g, c.b1 * m[i]);
        v[i] = fmaf(c.rest2 * g, g, c.b2 * v[i]);
        p[i] += (c.neg_step * m[i]) / (sqrtf(v[i]) / c.bc2_sqrt + c.eps);
    }
}

/* One step's update: the rule's constants and buffers, for the ranges of its split. */
typedef struct update_job {
    const dn_optim_config *c;
    float lr;
    adam_step adam;
    float *p, *s0, *s1; /* params; the rule's state: buf, sum, avg, or Adam's m and v */
    const float *grad;
} update_job;

static void update_range(const void *ctx, int64_t lo, int64_t hi, const dn_part *part)
{
    (void)part;
    const update_job *j = ctx;
    const dn_optim_config *c = j->c;
    float lr = j->lr, wd = c->weight_decay;
    switch (c->kind) {
    case DN_OPTIM_SGD: sgd_range(lr, wd, j->p, j->grad, lo, hi); break;
    case DN_OPTIM_MOMENTUM:
    case DN_OPTIM_NESTEROV:
        momentum_range(lr, wd, c->momentum, c->kind == DN_OPTIM_NESTEROV, j->p, j->grad, j->s0, lo,
                       hi);
        break;
    case DN_OPTIM_ADAGRAD: adagrad_range(lr, wd, c->eps, j->p, j->grad, j->s0, lo, hi); break;
    case DN_OPTIM_RMSPROP:
        rmsprop_range(c->alpha, complement(c->alpha), wd, c->eps, lr, j->p, j->grad, j->s0, lo, hi);
        break;
    case DN_OPTIM_ADAM: adam_range(&j->adam, j->p, j->grad, j->s0, j->s1, lo, hi); break;
    }
}

/* Adam's constants at step t: m.mul_(β1).add_(g, alpha=1−β1); v.mul_(β2).addcmul_(g, g,
 * value=1−β2); denom = (v.sqrt() / √bc2).add_(ε); param.addcdiv_(m, denom, value=−lr/bc1),
 * with bc1 = 1 − β1^t and bc2 = 1 − β2^t in double (Python's ** is C's pow). */
static adam_step adam_constants(const dn_optim_config *c, float lr, int64_t t)
{
    double bc1 = 1.0 - pow((double)c->beta1, (double)t);
    double bc2 = 1.0 - pow((double)c->beta2, (double)t);
    return (adam_step){ .neg_step = (float)(-((double)lr / bc1)),
                        .bc2_sqrt = (float)sqrt(bc2),
                        .b1 = c->beta1,
                        .b2 = c->beta2,
                        .rest1 = complement(c->beta1),
                        .rest2 = complement(c->beta2),
                        .wd = c->weight_decay,
                        .eps = c->eps };
}

void dn_optim_step(const dn_optim_config *c, float lr, int64_t t, float *param, const float *grad,
                   float *state, int64_t n, int threads)
{
    update_job j = { .c = c, .lr = lr, .p = param, .s0 = state, .grad = grad };
    if (c->kind == DN_OPTIM_ADAM) {
        j.adam = adam_constants(c, lr, t);
        j.s1 = state + n;
    }
    dn_parallel_for(n, dn_team(threads, n, OPTIM_PARALLEL_MIN), update_range, &j);
}

/* ------------------------------------------------------------------ schedules */

/* In double, rounded once: PyTorch keeps the rate as a Python float. */
float dn_schedule_lr(const dn_schedule *s, float base_lr, int64_t epoch, int64_t epochs)
{
    const double pi = 3.14159265358979323846;
    switch (s->kind) {
    case DN_SCHEDULE_STEP:
        if (s->step_size < 1)
            return base_lr;
        return (float)((double)base_lr * pow((double)s->gamma, (double)(epoch / s->step_size)));
    case DN_SCHEDULE_COSINE:
        if (epochs < 1)
            return base_lr;
        return (float)((double)s->min_lr + ((double)base_lr - (double)s->min_lr) *
                                               (1.0 + cos(pi * (double)epoch / (double)epochs)) /
                                               2.0);
    case DN_SCHEDULE_CONSTANT: break;
    }
    return base_lr;
}

/* A whole string that is a finite number; strtod alone accepts a prefix, "nan" and "inf". */
static bool parse_float(const char *text, float *out)
{
    char *end;
    errno = 0;
    double x = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(x) || fabs(x) > (double)FLT_MAX)
        return false;
    *out = (float)x;
    return true;
}

/* "N" or "N:GAMMA" after "step:". */
static bool parse_step(const char *text, dn_schedule *s)
{
    if (*text < '0' || *text > '9') /* strtoll would skip blanks and take a sign */
        return false;
    char *end;
    errno = 0;
    long long size = strtoll(text, &end, 10);
    if (errno == ERANGE || size < 1)
        return false;
    s->step_size = size;
    if (*end == '\0')
        return true;
    return *end == ':' && parse_float(end + 1, &s->gamma) && s->gamma > 0.0f;
}

bool dn_schedule_parse(const char *text, dn_schedule *out)
{
    dn_schedule s = { .kind = DN_SCHEDULE_CONSTANT, .step_size = 1, .gamma = 0.1f, .min_lr = 0.0f };
    bool ok;
    if (strcmp(text, "constant") == 0)
        ok = true;
    else if (strncmp(text, "step:", 5) == 0) {
        s.kind = DN_SCHEDULE_STEP;
        ok = parse_step(text + 5, &s);
    } else if (strcmp(text, "cosine") == 0 || strncmp(text, "cosine:", 7) == 0) {
        s.kind = DN_SCHEDULE_COSINE;
        ok = text[6] == '\0' || (parse_float(text + 7, &s.min_lr) && s.min_lr >= 0.0f);
    } else
        ok = false;
    if (ok)
        *out = s;
    return ok;
}
