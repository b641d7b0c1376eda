/* optim.c — the update rules and schedules of optim.h. */
#include "optim.h"

#include <math.h>
#include <string.h>

/* Elementwise loops this long or longer run in parallel. */
#define PARALLEL_MIN 32768

static const char *const kind_names[] = { "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam" };

dn_optim_config dn_optim_defaults(dn_optim_kind kind)
{
    dn_optim_config c = { .kind = kind, .momentum = 0.9, .alpha = 0.99, .beta1 = 0.9,
                          .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0 };
    if (kind == DN_OPTIM_ADAGRAD)
        c.eps = 1e-10;
    return c;
}

bool dn_optim_parse_kind(const char *name, dn_optim_kind *out)
{
    for (int i = 0; i <= DN_OPTIM_ADAM; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (dn_optim_kind)i;
            return true;
        }
    return false;
}

const char *dn_optim_kind_name(dn_optim_kind kind)
{
    return kind >= DN_OPTIM_SGD && kind <= DN_OPTIM_ADAM ? kind_names[kind] : "unknown";
}

int dn_optim_state_slots(dn_optim_kind kind)
{
    switch (kind) {
    case DN_OPTIM_SGD: return 0;
    case DN_OPTIM_ADAM: return 2;
    default: return 1;
    }
}

/* Each rule is one loop over the elements; g folds in the weight decay. */

static void sgd(float lr, float wd, float *p, const float *grad, int64_t n, int threads)
{
#pragma omp parallel for num_threads(threads) if (n >= PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + wd * p[i];
        p[i] -= lr * g;
    }
}

static void momentum(float lr, float wd, float mu, bool nesterov, float *p, const float *grad,
                     float *buf, int64_t n, int threads)
{
#pragma omp parallel for num_threads(threads) if (n >= PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + wd * p[i];
        buf[i] = mu * buf[i] + g;
        p[i] -= lr * (nesterov ? g + mu * buf[i] : buf[i]);
    }
}

static void adagrad(float lr, float wd, float eps, float *p, const float *grad, float *sum,
                    int64_t n, int threads)
{
#pragma omp parallel for num_threads(threads) if (n >= PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + wd * p[i];
        sum[i] += g * g;
        p[i] -= lr * (g / (sqrtf(sum[i]) + eps));
    }
}

static void rmsprop(float lr, float wd, double alpha_d, float eps, float *p, const float *grad,
                    float *avg, int64_t n, int threads)
{
    float alpha = (float)alpha_d, rest = (float)(1.0 - alpha_d);
#pragma omp parallel for num_threads(threads) if (n >= PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + wd * p[i];
        avg[i] = alpha * avg[i] + rest * (g * g);
        p[i] -= lr * (g / (sqrtf(avg[i]) + eps));
    }
}

static void adam(const dn_optim_config *c, float lr, int64_t t, float *p, const float *grad,
                 float *m, float *v, int64_t n, int threads)
{
    /* As PyTorch: the bias corrections in double, folded into a step size and a divisor. */
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    float step = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float b1 = (float)c->beta1, b2 = (float)c->beta2, rest1 = (float)(1.0 - c->beta1),
          rest2 = (float)(1.0 - c->beta2), wd = (float)c->weight_decay, eps = (float)c->eps;
#pragma omp parallel for num_threads(threads) if (n >= PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + wd * p[i];
        m[i] = b1 * m[i] + rest1 * g;
        v[i] = b2 * v[i] + rest2 * (g * g);
        p[i] -= step * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
    }
}

void dn_optim_step(const dn_optim_config *c, float lr, int64_t t, float *param, const float *grad,
                   float *state, int64_t n, int threads)
{
    float wd = (float)c->weight_decay, mu = (float)c->momentum, eps = (float)c->eps;
    switch (c->kind) {
    case DN_OPTIM_SGD: sgd(lr, wd, param, grad, n, threads); break;
    case DN_OPTIM_MOMENTUM: momentum(lr, wd, mu, false, param, grad, state, n, threads); break;
    case DN_OPTIM_NESTEROV: momentum(lr, wd, mu, true, param, grad, state, n, threads); break;
    case DN_OPTIM_ADAGRAD: adagrad(lr, wd, eps, param, grad, state, n, threads); break;
    case DN_OPTIM_RMSPROP: rmsprop(lr, wd, c->alpha, eps, param, grad, state, n, threads); break;
    case DN_OPTIM_ADAM: adam(c, lr, t, param, grad, state, state + n, n, threads); break;
    }
}

float dn_schedule_lr(const dn_schedule *s, float base_lr, int64_t epoch, int64_t epochs)
{
    switch (s->kind) {
    case DN_SCHEDULE_STEP:
        return (float)((double)base_lr * pow((double)s->gamma, (double)(epoch / s->step_size)));
    case DN_SCHEDULE_COSINE:
        if (epochs <= 0)
            return base_lr;
        return (float)((double)s->min_lr + ((double)base_lr - (double)s->min_lr) *
                                                   (1.0 + cos(3.14159265358979323846 * (double)epoch / (double)epochs)) / 2.0);
    default:
        return base_lr;
    }
}
