/* tests/methods/harness.h: drive a real method/equimod plugin file outside the trainer.
 *
 * Loads <kind>_<name>.so through the host registry (registry_load_file: dlopen and every
 * ABI check) from $EQUIMOD_PLUGIN_PATH (falling back to the build tree's
 * plugins/<kind>/<name>/.libs under $EQM_BUILDDIR), fills the option struct from the
 * plugin's own option table with the host's param_parse (defaults, then overrides given
 * as text), creates the module
 * with the real host services (host_api(): nn ops, rng, alloc), and allocates one buffer
 * per tensor for values, gradients and (EQM_T_EMA tensors of NEEDS_TARGET modules) the
 * target copy, plus the activation arena. Also reads the text fixtures written by
 * tests/methods/gen_fixtures.py.
 *
 * Left out: config files (the trainer's business); the flat-buffer
 * layout of host/train (each tensor is its own allocation here).
 * Errors: functions return EQM_OK or a negative status with a message in `err`.
 */
#ifndef EQM_TESTS_METHODS_HARNESS_H
#define EQM_TESTS_METHODS_HARNESS_H

#include <stddef.h>

#include <equimod/equimod.h>

typedef struct hmod {
    struct eqm_registry *reg;
    const eqm_plugin_desc *desc;
    const eqm_module_ops *ops;
    const eqm_host_api *api;
    eqm_host *host;
    void *opts;
    char *opt_text[32]; /* strings the option struct points to */
    int n_opt_text;
    void *self;
    int n;                 /* tensors */
    eqm_tensor_info *info; /* (n) */
    size_t *count;         /* (n) elements per tensor */
    float **params, **grads, **target; /* (n) each; NULL entries where absent */
    float *act;
    size_t act_floats;
    int max_rows;
} hmod;

/* Open plugin `name` of `kind` from file "<kind>_<name>.so". overrides: NULL-terminated
 * "key", "value" pairs (value "-" means empty string). */
int hmod_open(hmod *m, int kind, const char *name, const char *const *overrides, int in_dim,
              int p_dim, int max_rows, char *err, size_t errlen);
void hmod_close(hmod *m);
int hmod_find(const hmod *m, const char *tensor_name); /* index or -1 */
void hmod_zero_grads(hmod *m);
/* init with a fixed seed */
int hmod_init(hmod *m, uint64_t seed);
/* One training-mode forward (train = 1) and, if din_or_null_ok, backward. */
int hmod_forward(hmod *m, eqm_module_io *io, int rows, int train, const float *in,
                 const float *in_target, const float *t);
int hmod_backward(hmod *m, eqm_module_io *io, float *din, float loss_scale);
/* Last error message of the module's host context. */
const char *hmod_error(const hmod *m);

/* --------------------------------------------------------------- fixtures ------ */
typedef struct hfx_entry {
    char kind;      /* 'o' option, 'd' dim, 't' tensor */
    char name[128];
    char text[128]; /* option value */
    int n;
    float *v;       /* tensor values (n) */
} hfx_entry;

typedef struct hfx {
    int n, cap;
    hfx_entry *e;
} hfx;

int hfx_load(hfx *f, const char *path, char *err, size_t errlen);
void hfx_free(hfx *f);
const hfx_entry *hfx_get(const hfx *f, char kind, const char *name);
/* Option overrides of the fixture as "key", "value", ..., NULL (points into f). */
int hfx_options(const hfx *f, const char **pairs, int max_pairs);
int hfx_dim(const hfx *f, const char *name, int def);

#endif
