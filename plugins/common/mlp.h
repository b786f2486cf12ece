/* plugins/common/mlp.h: the MLP heads of the method and equimod plugins (METHOD.md §5).
 *
 * A static helper compiled INTO each plugin that needs it (it is not a plugin and not part
 * of the SDK; it calls only api->nn, libc and libm). An MLP is a stack of blocks
 *     hidden block:  Linear(C_in -> C, no bias), BatchNorm1d(C, affine), ReLU
 *     final block:   Linear(C_in -> C_out, bias or not) [+ BatchNorm1d(C_out, affine or not)]
 * laid out like a PyTorch nn.Sequential, so tensor names follow PyTorch: with prefix "g",
 * "g.0.weight", "g.1.weight", "g.1.bias", "g.1.running_mean", "g.1.running_var" (the ReLU
 * takes index 2 and has no tensor), "g.3.weight", ... BN num_batches_tracked is left out
 * (momentum is fixed at 0.1, so PyTorch never reads it).
 *
 * Widths come from a spec string: "2048-2048" (two hidden blocks), "" or "none" (none); a
 * trailing '-' is accepted (the reference code writes "2048-2048-").
 *
 * Deliberately left out: dropout, other activations, hidden blocks without BN, and an
 * identity head (the reference's "none" for g'; see mlp_build).
 *
 * Dimension legend: R rows of the batch, C_in input width, C layer width.
 * Memory: the caller hands an activation area of mlp_act_floats(m, R) floats (written by
 * forward, read by backward) and, for backward, a scratch area of mlp_scratch_floats(m, R)
 * floats that several MLPs of one plugin may share (backward runs them one at a time);
 * forward/backward allocate nothing. Parameters are borrowed per call as an array of this
 * MLP's tensor pointers, in the order of mlp_tensor_info (so the online weights and the
 * BYOL target weights run through the same code).
 * Threading: call from the training thread (the nn ops use the host's threads inside).
 * Return codes: EQM_OK or the negative status of the failing nn op (its message is set).
 */
#ifndef EQM_PLUGINS_COMMON_MLP_H
#define EQM_PLUGINS_COMMON_MLP_H

#include <stddef.h>

#include <equimod/equimod.h>

#define MLP_MAX_LAYERS 8
#define MLP_MAX_TENSORS (MLP_MAX_LAYERS * 6)
#define MLP_NAME_LEN 64

enum mlp_bn {
    MLP_BN_NONE = 0,   /* no BatchNorm after the final Linear */
    MLP_BN_AFFINE = 1, /* BatchNorm1d(C) with gamma/beta */
    MLP_BN_PLAIN = 2   /* BatchNorm1d(C, affine=False) */
};

typedef struct mlp_layer {
    int c_in, c_out;
    int bias; /* Linear has a bias */
    int bn;   /* enum mlp_bn */
    int relu; /* ReLU after the BN (hidden blocks) */
    /* indices into the MLP's tensor table, -1 when absent */
    int t_w, t_b, t_gamma, t_beta, t_rm, t_rv;
} mlp_layer;

typedef struct mlp {
    int in_dim, out_dim, max_c;
    int n_layers;
    mlp_layer layer[MLP_MAX_LAYERS];
    int n_tensors;
    char name[MLP_MAX_TENSORS][MLP_NAME_LEN];
    int ndim[MLP_MAX_TENSORS];
    int shape[MLP_MAX_TENSORS][2];
    uint32_t flags[MLP_MAX_TENSORS];
} mlp;

/* Parse "W1-W2-...-Wk" into widths[0..k) (each 1..65536). "" and "none" give k = 0.
 * Returns k >= 0, or -1 with a message in err naming the bad piece. */
int mlp_parse_widths(const char *spec, int *widths, int max_widths, char *err, size_t errlen);

/* Build the layer table: hidden blocks of widths hidden[0..n_hidden), then the final
 * block Linear(-> out_dim, bias = final_bias) + BN per final_bn. extra_flags is OR-ed into
 * every tensor's flags (EQM_T_EMA for the BYOL projector). prefix names the tensors.
 * Returns EQM_OK or EQM_ERR_INVAL with a message in err. */
int mlp_build(mlp *m, const char *prefix, int in_dim, const int *hidden, int n_hidden,
              int out_dim, int final_bias, int final_bn, uint32_t extra_flags, char *err,
              size_t errlen);

/* Tensor i of this MLP (0 <= i < m->n_tensors); names are owned by m. */
void mlp_tensor_info(const mlp *m, int i, eqm_tensor_info *info);

/* Floats of activation memory for R rows (the forward's outputs and BN statistics). */
size_t mlp_act_floats(const mlp *m, int R);
/* Floats of backward scratch for R rows (three (R, widest layer) gradient buffers). */
size_t mlp_scratch_floats(const mlp *m, int R);

/* PyTorch defaults: Linear weight and bias ~ U(-1/sqrt(C_in), 1/sqrt(C_in))
 * (kaiming_uniform_(a=sqrt(5)) and the bias rule of nn.Linear.reset_parameters),
 * BN gamma 1, beta 0, running_mean 0, running_var 1. Draws in tensor order. */
void mlp_init(const mlp *m, const eqm_host_api *api, eqm_rng *rng, float *const *params);

/* Forward of R rows of `in` (R, in_dim). train = 1: BN batch statistics and running
 * update. *out points into act: (R, out_dim), valid until the next forward on act.
 * Every params[i] must be non-NULL (BN running statistics included). */
int mlp_forward(const mlp *m, const eqm_host_api *api, eqm_host *h, float *const *params,
                float *act, int R, int train, const float *in, const float **out);

/* The output (R, out_dim) of the latest forward on act with R rows (= its *out). */
const float *mlp_output(const mlp *m, const float *act, int R);

/* Backward of the latest forward on act, which MUST have been train = 1, with the same R
 * and in. dout: (R, out_dim); it may point into act (the forward's *out).
 * Accumulates parameter gradients into grads[i] (NULL entries skipped) and din (R, in_dim)
 * += dL/din unless din is NULL. scratch: mlp_scratch_floats(m, R) floats, overwritten. */
int mlp_backward(const mlp *m, const eqm_host_api *api, eqm_host *h, float *const *params,
                 float *const *grads, const float *act, float *scratch, int R,
                 const float *in, const float *dout, float *din);

#endif
