/* host/train/optim.h: optimizers (LARS, SGD with momentum/Nesterov) and the per-step
 * learning-rate and EMA-momentum schedules.
 *
 * LARS follows METHOD.md §9 (ADevillers/EquiMod src/lars.py, class LARSW) literally, per
 * parameter tensor and per step:
 *   decay tensors (EQM_T_DECAY: conv/linear weights):
 *     g' = g + wd*w;  local = eta*||w||/||g'|| if both norms > 0 else 1;  s = lr*local
 *   other tensors (BN gamma/beta, biases): g' = g, s = lr (plain momentum SGD, no wd)
 *   buf = m*buf + s*g'   (the learning rate lives inside the buffer; buf starts at 0)
 *   w  -= buf
 * SGD follows torch.optim.SGD (dampening 0): d = g + wd*w (decay tensors only);
 *   buf = m*buf + d (first step buf = d); d = nesterov ? d + m*buf : buf; w -= lr*d.
 *
 * Schedules (per step k, 0-based; the value is the one used by step k):
 *   sched_warmup_cosine: PyTorch LinearLR(start_factor, total_iters=W) then
 *     CosineAnnealingLR(T_max=T-W, eta_min) (SequentialLR), closed form:
 *     k <  W: lr*(start + (1-start)*k/W)
 *     k >= W: eta_min + (lr-eta_min)*(1+cos(pi*(k-W)/(T-W)))/2   (k clamped to T)
 *   sched_ema_tau: BYOL target momentum 1 - (1-base)*(cos(pi*k/K)+1)/2 (METHOD.md §8).
 *
 * Left out: gradient clipping, LARS "clip" variants, AdamW (none is used by the paper).
 * Norms are accumulated in double; the update itself is float32 like PyTorch's.
 * Threading: an optimizer is used from the training thread only. Ownership: the optimizer
 * borrows the w/g pointers (the model's flat buffers) and owns its momentum buffer.
 * Return codes: EQM_OK, EQM_ERR_NOMEM, EQM_ERR_INVAL (bad configuration),
 * EQM_ERR_NUMERIC (a NaN/Inf gradient norm: the step is refused and nothing changes). */
#ifndef EQM_TRAIN_OPTIM_H
#define EQM_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

enum optim_kind { OPTIM_LARS = 0, OPTIM_SGD = 1 };

typedef struct optim_cfg {
    int kind;            /* enum optim_kind */
    double momentum;     /* 0.9 */
    double weight_decay; /* applied to decay tensors only */
    double eta;          /* LARS trust coefficient (1e-3) */
    int nesterov;        /* SGD only */
} optim_cfg;

/* One trained tensor: n floats of values and gradients (flat-buffer views). */
typedef struct optim_param {
    float *w;
    const float *g;
    size_t n;
    int decay; /* 1: weight decay and LARS adaptation apply (EQM_T_DECAY) */
} optim_param;

typedef struct optim {
    optim_cfg cfg;
    optim_param *p;   /* n_params entries, owned copy of the table */
    size_t n_params;
    float *buf;       /* momentum buffers, total floats, one run per tensor in order */
    size_t total;
    int64_t steps;    /* updates done so far (SGD: 0 = buffers not yet started) */
} optim;

int optim_init(optim *o, const optim_cfg *cfg, const optim_param *p, size_t n_params);
void optim_free(optim *o);
/* One update with learning rate lr. */
int optim_step(optim *o, double lr);

/* Learning rate for step k of T (warmup W steps). See the header comment. */
double sched_warmup_cosine(int64_t k, double lr, int64_t W, int64_t T, double start_factor,
                           double eta_min);
/* EMA momentum for step k of K. */
double sched_ema_tau(int64_t k, int64_t K, double tau_base);

/* BYOL target update over n floats: target = tau*target + (1-tau)*online. */
void ema_update(float *target, const float *online, size_t n, double tau);

#endif
