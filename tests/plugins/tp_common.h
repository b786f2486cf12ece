/* tests/plugins/tp_common.h: shared parts of the loader test plugins (tp_*.c).
 *
 * These are fixtures for tests/plugins/check_loader.c and tests/unit/check_config.c, built
 * as real shared objects (check_LTLIBRARIES, never installed). The augment "identity" is a
 * complete, working augmentation; the dataset and module functions exist so that the
 * loader's REQUIRED-function checks pass, and report EQM_ERR_UNSUPPORTED with a message
 * when called: they are not plugins for training. Plugin names start with "test_" so that
 * they never collide with the real plugins.
 */
#ifndef EQM_TESTS_TP_COMMON_H
#define EQM_TESTS_TP_COMMON_H

#include <stddef.h>
#include <string.h>

#include <equimod/equimod.h>

/* An option struct with one field of every type, and its table. */
typedef struct tp_opts {
    int flag;          /* BOOL */
    int64_t count;     /* INT [1, 10] */
    double rate;       /* FLOAT [0, 1] */
    const char *label; /* STRING */
    int mode;          /* ENUM fast|slow|exact */
} tp_opts;

#define TP_SPEC_END {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
#define TP_SPEC_ROWS                                                                        \
    {"flag", EQM_PARAM_BOOL, offsetof(tp_opts, flag), "false", 1, 0, NULL, "a switch"},     \
    {"count", EQM_PARAM_INT, offsetof(tp_opts, count), "3", 1, 10, NULL, "a count"},        \
    {"rate", EQM_PARAM_FLOAT, offsetof(tp_opts, rate), "0.5", 0, 1, NULL, "a probability"}, \
    {"label", EQM_PARAM_STRING, offsetof(tp_opts, label), NULL, 1, 0, NULL, "free text"},   \
    {"mode", EQM_PARAM_ENUM, offsetof(tp_opts, mode), "fast", 1, 0, "fast|slow|exact",      \
     "a choice"}

/* ---- augment "identity": copies its input; no parameters in t ---- */
typedef struct tp_aug {
    const eqm_host_api *api;
    eqm_host *host;
} tp_aug;

static inline int tp_aug_create(const eqm_host_api *api, eqm_host *host, const void *opts,
                                void **self)
{
    (void)opts;
    tp_aug *a = api->alloc(host, sizeof *a, 0);
    if (!a)
        return EQM_ERR_NOMEM;
    a->api = api;
    a->host = host;
    *self = a;
    return EQM_OK;
}
static inline void tp_aug_destroy(void *self)
{
    tp_aug *a = self;
    if (a)
        a->api->free(a->host, a);
}
static inline int tp_aug_n_params(const void *self) { (void)self; return 0; }
static inline const char *tp_aug_param_name(const void *self, int i)
{
    (void)self; (void)i;
    return NULL;
}
static inline int tp_aug_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                                const eqm_image *in, float *p)
{
    (void)self; (void)rng; (void)ctx; (void)in; (void)p;
    return EQM_OK;
}
static inline int tp_aug_out_shape(const void *self, const eqm_image *in, int *w, int *h,
                                   int *c, uint32_t *format)
{
    (void)self;
    *w = in->w;
    *h = in->h;
    *c = in->c;
    *format = in->format;
    return EQM_OK;
}
static inline int tp_aug_apply(const void *self, const float *p, const eqm_image *in,
                               eqm_image *out, void *scratch)
{
    (void)self; (void)p; (void)scratch;
    size_t es = in->format == EQM_PIX_F32 ? sizeof(float) : 1;
    for (int y = 0; y < in->h; y++)
        memcpy((char *)out->data + (size_t)y * (size_t)out->stride * es,
               (const char *)in->data + (size_t)y * (size_t)in->stride * es,
               (size_t)in->w * (size_t)in->c * es);
    return EQM_OK;
}

#define TP_AUGMENT_OPS                                                                  \
    {.size = sizeof(eqm_augment_ops), .create = tp_aug_create, .destroy = tp_aug_destroy, \
     .n_params = tp_aug_n_params, .param_name = tp_aug_param_name,                       \
     .sample = tp_aug_sample, .out_shape = tp_aug_out_shape, .apply = tp_aug_apply}

/* ---- loader-fixture modules and dataset: they can be created (no tensors), so that
 * `equimod config` validates a config of them, but refuse to run ---- */
static int tp_mod_instance;
static inline int tp_mod_create(const eqm_host_api *api, eqm_host *host, const void *opts,
                                const eqm_module_cfg *cfg, void **self)
{
    (void)api; (void)host; (void)opts; (void)cfg;
    *self = &tp_mod_instance;
    return EQM_OK;
}
static inline void tp_mod_destroy(void *self) { (void)self; }
static inline int tp_mod_n_tensors(const void *self) { (void)self; return 0; }
static inline int tp_mod_tensor_info(const void *self, int i, eqm_tensor_info *info)
{
    (void)self; (void)i; (void)info;
    return EQM_ERR_INVAL;
}
static inline size_t tp_mod_act_floats(const void *self, int rows)
{
    (void)self; (void)rows;
    return 0;
}
static inline int tp_mod_bind(void *self, const eqm_module_bind *b)
{
    (void)self; (void)b;
    return EQM_OK;
}
static inline int tp_mod_init(void *self, eqm_rng *rng)
{
    (void)self; (void)rng;
    return EQM_ERR_UNSUPPORTED;
}
static inline int tp_mod_run(void *self, eqm_module_io *io)
{
    (void)self; (void)io;
    return EQM_ERR_UNSUPPORTED;
}
static inline int tp_mod_out_dim(const void *self) { (void)self; return 1; }

#define TP_MODULE_OPS                                                                   \
    {.size = sizeof(eqm_module_ops), .create = tp_mod_create, .destroy = tp_mod_destroy, \
     .n_tensors = tp_mod_n_tensors, .tensor_info = tp_mod_tensor_info,                   \
     .act_floats = tp_mod_act_floats, .bind = tp_mod_bind, .init = tp_mod_init,          \
     .forward = tp_mod_run, .backward = tp_mod_run, .out_dim = tp_mod_out_dim}

static inline int tp_ds_open(const eqm_host_api *api, eqm_host *host, const void *opts,
                             const char *split, void **self)
{
    (void)opts; (void)split; (void)self;
    return api->set_error(host, EQM_ERR_UNSUPPORTED, "test fixture: loader tests only");
}
static inline void tp_ds_close(void *self) { (void)self; }
static inline int tp_ds_info(const void *self, eqm_dataset_info *info)
{
    (void)self; (void)info;
    return EQM_ERR_UNSUPPORTED;
}

#define TP_DATASET_OPS                                                                  \
    {.size = sizeof(eqm_dataset_ops), .open = tp_ds_open, .close = tp_ds_close,          \
     .info = tp_ds_info}

#endif
