/* host/train/model.h: module instances (backbone, method, equimod) and the model's flat
 * buffers, in the style of llm.c: every tensor of every module lives in ONE 64-byte-aligned
 * allocation per role (params, grads, BYOL target), so zero_grad is one memset, an update or
 * the EMA one loop over the tensor table, and a checkpoint a header plus raw buffers.
 *
 * Layout of the flat buffers. Tensors are placed in slot order (backbone, method, equimod),
 * then in each module's tensor_info order; every tensor starts on a 64-byte boundary (its
 * offset is a multiple of 16 floats; the gaps are zero). The three buffers are PARALLEL: a
 * tensor has the same offset in params, grads and target, so
 *     grads + offset, target + offset
 * are its gradient and target copy. Consequences (deliberate, for simplicity of every loop):
 *   - grads has room for EQM_T_BUFFER tensors too (BN running stats) but their pointer in
 *     inst->grad / the bind table is NULL and the memory stays 0;
 *   - target (present only when some module has EQM_MODULE_NEEDS_TARGET) has room for
 *     every tensor, but only EQM_T_EMA tensors of the backbone and method slots are bound
 *     (inst->target[i] != NULL); the equimod slot never has a target.
 * Activations: one arena per model; slot s gets act_floats(cfg.max_rows) floats of it
 * (each slice 64-byte aligned). The backbone's act_floats also covers its BYOL target
 * forward (io->use_target), see plugins/backbone/resnet/README.md.
 *
 * Lifecycle:
 *     eqm_model m = {0};                               // or model_reset(&m)
 *     model_add_module(&m, backbone_plugin, opts, &cfg, err, n);   // any order, one per kind
 *     model_add_module(&m, method_plugin, ...);        // optional
 *     model_finalize(&m, err, n);                      // offsets, allocations, bind
 *     model_init(&m, seed, err, n);                    // torchvision init + target copy
 *     ... forward/backward through m.mod[slot].plugin->ops.module with m.mod[slot].self ...
 *     model_destroy(&m);
 * Ownership: the model owns the plugin instances (self), their eqm_host contexts, the info/
 * offset/pointer arrays and the flat buffers. `plugin` and `opts` are BORROWED: the registry
 * and the option struct (from config_bind_plugin) must outlive the model. Tensor names
 * (info[i].name) are owned by the plugin instance and valid until model_destroy.
 * Threading: not thread-safe; call everything from the training thread. Plugin
 * forward/backward use the host's compute threads internally.
 * Errors: functions returning int return EQM_OK or a negative eqm_status and write one
 * line naming the module ("backbone/resnet: ...") into err (errlen bytes; err may be NULL).
 * After a failed model_add_module the model is unchanged; after a failed finalize or init,
 * only model_destroy is valid.
 */
#ifndef EQM_HOST_TRAIN_MODEL_H
#define EQM_HOST_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* Slots, by plugin kind. */
enum eqm_model_slot {
    EQM_SLOT_BACKBONE = 0, /* EQM_KIND_BACKBONE, required */
    EQM_SLOT_METHOD = 1,   /* EQM_KIND_METHOD, optional (export needs only a backbone) */
    EQM_SLOT_EQUIMOD = 2,  /* EQM_KIND_EQUIMOD, optional */
    EQM_SLOT_COUNT
};

/* Alignment of every tensor and of the buffers, in floats (64 bytes). */
#define EQM_MODEL_ALIGN_FLOATS 16

typedef struct eqm_module_inst {
    const eqm_plugin *plugin;   /* borrowed from the registry; NULL = empty slot */
    const eqm_module_ops *ops;  /* &plugin->ops.module */
    void *self;                 /* the plugin's instance (ops->create), owned */
    eqm_host *ctx;              /* owned; label "kind/name", holds the plugin's last error */
    const void *opts;           /* borrowed option struct */
    eqm_module_cfg cfg;         /* copy of what create received */
    /* After model_finalize: */
    int n_tensors;
    eqm_tensor_info *info;      /* (n_tensors) names owned by self */
    size_t *offset;             /* (n_tensors) floats from the start of each flat buffer */
    size_t *numel;              /* (n_tensors) product of the shape */
    float **param;              /* (n_tensors) params + offset */
    float **grad;               /* (n_tensors) grads + offset; NULL for EQM_T_BUFFER */
    float **target;             /* (n_tensors) target + offset for EQM_T_EMA tensors of the
                                   backbone/method when the model has a target; else NULL.
                                   The array itself is NULL when the model has no target. */
    float *act;                 /* (act_floats) this module's slice of the arena */
    size_t act_floats;          /* ops->act_floats(cfg.max_rows) */
    int out_dim;                /* backbone: ops->out_dim(self); a method with
                                   EQM_MODULE_EMBEDDING: the embedding's width; else 0 */
} eqm_module_inst;

typedef struct eqm_model {
    eqm_module_inst mod[EQM_SLOT_COUNT]; /* indexed by enum eqm_model_slot */
    int finalized;
    int has_target;             /* some module has EQM_MODULE_NEEDS_TARGET */
    size_t n_floats;            /* length of each flat buffer (params, grads, target) */
    float *params;              /* (n_floats) 64-byte aligned, owned */
    float *grads;               /* (n_floats) */
    float *target;              /* (n_floats) or NULL without a target */
    float *act;                 /* (n_act) the activation arena */
    size_t n_act;
    size_t n_trainable;         /* number of floats in non-BUFFER tensors (reporting) */
} eqm_model;

/* One tensor seen through the model (for optimizer, EMA, checkpoint and export loops). */
typedef struct eqm_model_tensor {
    int slot;                   /* enum eqm_model_slot */
    int index;                  /* index within the module */
    const eqm_tensor_info *info;
    size_t offset, numel;
    float *param, *grad, *target; /* grad/target NULL as in eqm_module_inst */
} eqm_model_tensor;

/* Zero the struct (same as `= {0}`). */
void model_reset(eqm_model *m);

/* Create an instance of a backbone/method/equimod plugin into the slot of its kind.
 * cfg->size may be 0 (it is set); cfg->max_rows sizes the activation arena (0 = no
 * activations: enough for init/export). Refuses a second module of the same kind, a
 * non-module kind, and calls after finalize (EQM_ERR_STATE). */
int model_add_module(eqm_model *m, const eqm_plugin *plugin, const void *opts,
                     const eqm_module_cfg *cfg, char *err, size_t errlen);

/* Query every module's tensors, compute offsets (checked size_t arithmetic), allocate the
 * flat buffers and the activation arena (zeroed), and bind every module. Requires a
 * backbone. Validates tensor_info (ndim 1..4, positive dims, non-empty unique names). */
int model_finalize(eqm_model *m, char *err, size_t errlen);

/* Initialise every module with its own stream api->rng_seed(r, seed, 0x6d6f64656c, slot,
 * 0) ("model"), then copy every bound target tensor from its param. Deterministic for a
 * given seed and plugin set. */
int model_init(eqm_model *m, uint64_t seed, char *err, size_t errlen);

/* target <- param for every bound target tensor (BYOL target = online at step 0). */
/* Run mi's forward (backward = 0) or backward (1) on io; `what` names the call in messages
 * ("forward", "target forward"). A failure names the module, its file and the function,
 * with the plugin's message or, when it set none, the status (host_ctx_failure). Declared
 * outputs are checked: before a backbone forward, and a method's embedding forward
 * (EQM_MODULE_EMBEDDING: train = 0, out set), its rows x out_dim outputs are set to NaN,
 * and one still NaN afterwards is refused (not written, or a NaN computed); another
 * method's or equimod's forward must set io->loss (preset to NaN). Costs one pass over
 * the output. Every host call of a module's forward/backward goes through here. */
int model_call(eqm_module_inst *mi, int backward, eqm_module_io *io, const char *what,
               char *err, size_t errlen);
void model_copy_to_target(eqm_model *m);

/* grads <- 0 (one memset). */
void model_zero_grad(eqm_model *m);

/* Tensors of all modules, slot order then module order: k in [0, model_n_tensors). */
int model_n_tensors(const eqm_model *m);
int model_tensor(const eqm_model *m, int k, eqm_model_tensor *out); /* EQM_ERR_INVAL if k bad */
/* Index within slot `slot` of the tensor named `name`, or -1. */
int model_find(const eqm_model *m, int slot, const char *name);

/* Destroy the plugin instances and free everything; leaves *m zeroed. Safe on a zeroed or
 * partially built model. */
void model_destroy(eqm_model *m);

#endif
