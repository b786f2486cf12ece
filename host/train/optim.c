/* host/train/optim.c: LARS and SGD updates, warmup-cosine and EMA schedules (optim.h). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <equimod/status.h>

#include "train/optim.h"

#define EQM_PI 3.14159265358979323846

int optim_init(optim *o, const optim_cfg *cfg, const optim_param *p, size_t n_params)
{
    memset(o, 0, sizeof *o);
    if (!cfg || (cfg->kind != OPTIM_LARS && cfg->kind != OPTIM_SGD) || cfg->momentum < 0 ||
        cfg->momentum >= 1 || cfg->weight_decay < 0 || cfg->eta < 0)
        return EQM_ERR_INVAL;
    o->cfg = *cfg;
    o->p = calloc(n_params ? n_params : 1, sizeof *o->p);
    if (!o->p)
        return EQM_ERR_NOMEM;
    memcpy(o->p, p, n_params * sizeof *p);
    o->n_params = n_params;
    for (size_t i = 0; i < n_params; i++)
        o->total += p[i].n;
    o->buf = calloc(o->total ? o->total : 1, sizeof(float));
    if (!o->buf) {
        free(o->p);
        o->p = NULL;
        return EQM_ERR_NOMEM;
    }
    return EQM_OK;
}

void optim_free(optim *o)
{
    free(o->p);
    free(o->buf);
    memset(o, 0, sizeof *o);
}

static int lars_step(optim *o, double lr)
{
    const float m = (float)o->cfg.momentum;
    const float wd = (float)o->cfg.weight_decay;
    /* Pass 1: every trust ratio, so that a NaN anywhere leaves the whole model unchanged. */
    float *scaled = malloc((o->n_params ? o->n_params : 1) * sizeof(float));
    if (!scaled)
        return EQM_ERR_NOMEM;
    for (size_t i = 0; i < o->n_params; i++) {
        const optim_param *p = &o->p[i];
        if (!p->decay) {
            double gs = 0;
            for (size_t j = 0; j < p->n; j++)
                gs += (double)p->g[j] * p->g[j];
            if (!isfinite(gs)) {
                free(scaled);
                return EQM_ERR_NUMERIC;
            }
            scaled[i] = (float)lr;
            continue;
        }
        double ws = 0, gs = 0;
        for (size_t j = 0; j < p->n; j++) {
            float gd = p->g[j] + wd * p->w[j];
            ws += (double)p->w[j] * p->w[j];
            gs += (double)gd * gd;
        }
        if (!isfinite(gs) || !isfinite(ws)) {
            free(scaled);
            return EQM_ERR_NUMERIC;
        }
        double wn = sqrt(ws), gn = sqrt(gs);
        float local = (wn > 0 && gn > 0) ? (float)(o->cfg.eta * wn / gn) : 1.0f;
        scaled[i] = (float)lr * local;
    }
    float *buf = o->buf;
    for (size_t i = 0; i < o->n_params; i++) {
        const optim_param *p = &o->p[i];
        const float s = scaled[i];
        const float d = p->decay ? wd : 0.0f;
        for (size_t j = 0; j < p->n; j++) {
            float gd = p->g[j] + d * p->w[j];
            buf[j] = m * buf[j] + s * gd;
            p->w[j] -= buf[j];
        }
        buf += p->n;
    }
    free(scaled);
    return EQM_OK;
}

static int sgd_step(optim *o, double lr)
{
    const float m = (float)o->cfg.momentum;
    const float wd = (float)o->cfg.weight_decay;
    const float flr = (float)lr;
    for (size_t i = 0; i < o->n_params; i++)
        for (size_t j = 0; j < o->p[i].n; j++)
            if (!isfinite(o->p[i].g[j]))
                return EQM_ERR_NUMERIC;
    float *buf = o->buf;
    for (size_t i = 0; i < o->n_params; i++) {
        const optim_param *p = &o->p[i];
        const float d = p->decay ? wd : 0.0f;
        for (size_t j = 0; j < p->n; j++) {
            float g = p->g[j] + d * p->w[j];
            if (m > 0) {
                buf[j] = o->steps == 0 ? g : m * buf[j] + g;
                g = o->cfg.nesterov ? g + m * buf[j] : buf[j];
            }
            p->w[j] -= flr * g;
        }
        buf += p->n;
    }
    return EQM_OK;
}

int optim_step(optim *o, double lr)
{
    if (!isfinite(lr))
        return EQM_ERR_NUMERIC;
    int rc = o->cfg.kind == OPTIM_LARS ? lars_step(o, lr) : sgd_step(o, lr);
    if (rc == EQM_OK)
        o->steps++;
    return rc;
}

double sched_warmup_cosine(int64_t k, double lr, int64_t W, int64_t T, double start_factor,
                           double eta_min)
{
    if (k < 0)
        k = 0;
    if (W > 0 && k < W)
        return lr * (start_factor + (1.0 - start_factor) * (double)k / (double)W);
    if (T <= W)
        return lr;
    if (k > T)
        k = T;
    return eta_min + (lr - eta_min) * (1.0 + cos(EQM_PI * (double)(k - W) / (double)(T - W))) / 2.0;
}

double sched_ema_tau(int64_t k, int64_t K, double tau_base)
{
    if (K <= 0)
        return tau_base;
    if (k > K)
        k = K;
    return 1.0 - (1.0 - tau_base) * (cos(EQM_PI * (double)k / (double)K) + 1.0) / 2.0;
}

void ema_update(float *target, const float *online, size_t n, double tau)
{
    const float a = (float)tau, b = (float)(1.0 - tau);
    for (size_t i = 0; i < n; i++)
        target[i] = a * target[i] + b * online[i];
}
