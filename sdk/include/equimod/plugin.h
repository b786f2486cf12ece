/* equimod SDK: plugin descriptors, option tables and the entry symbol.
 *
 * A plugin file (a shared object) exports ONE symbol, eqm_plugin_entry (emitted by
 * EQM_PLUGIN_ENTRY below). The host calls it with i = 0, 1, 2, ... until it returns NULL;
 * each non-NULL result describes one plugin, so one file may hold several.
 *
 * Ownership: descriptors, option tables and every string they point to are owned by the
 * plugin file and MUST stay valid and unchanged while the file is loaded (static const data).
 * The host copies what it keeps past the call into its own storage.
 * Threading: the entry function MUST be pure (no side effects); the host may call it from
 * any thread, but only once per index in practice.
 * Versioning: see ABI.md in the SDK documentation
 * (installed under $(docdir), e.g. /usr/local/share/doc/equimod/ABI.md). EQM_ABI_MAJOR changes on any incompatible change; the host
 * refuses another major. EQM_ABI_MINOR counts append-only additions; the host refuses a
 * plugin built against a newer minor than its own.
 */
#ifndef EQM_SDK_PLUGIN_H
#define EQM_SDK_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define EQM_ABI_MAJOR 1
#define EQM_ABI_MINOR 6

#if defined(__GNUC__)
#define EQM_EXPORT __attribute__((visibility("default")))
#else
#define EQM_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin kinds. APPEND ONLY: never reorder, never remove. */
enum eqm_kind {
    EQM_KIND_DATASET = 0, /* ops: eqm_dataset_ops (kinds.h) */
    EQM_KIND_AUGMENT = 1, /* ops: eqm_augment_ops */
    EQM_KIND_BACKBONE = 2, /* ops: eqm_module_ops */
    EQM_KIND_METHOD = 3,  /* ops: eqm_module_ops (invariance method: SimCLR, BYOL) */
    EQM_KIND_EQUIMOD = 4, /* ops: eqm_module_ops (equivariance module) */
    EQM_KIND_COUNT
};

/* Option types. APPEND ONLY. The C type the host writes at `offset` in the plugin's
 * option struct is given for each. */
enum eqm_param_type {
    EQM_PARAM_END = 0,    /* terminates an option table (key == NULL too) */
    EQM_PARAM_BOOL = 1,   /* int: 0 or 1. Text: true/false/yes/no/on/off/1/0 */
    EQM_PARAM_INT = 2,    /* int64_t, range [min, max] checked */
    EQM_PARAM_FLOAT = 3,  /* double, range [min, max] checked, NaN/Inf refused */
    EQM_PARAM_STRING = 4, /* const char *: host-owned, valid until the instance is destroyed */
    EQM_PARAM_ENUM = 5,   /* int: index of the value in `choices` ("a|b|c") */
    EQM_PARAM_TYPE_COUNT
};

/* One option. An option table is an array terminated by an entry whose key is NULL.
 * `def` is the default written as config text and is validated exactly like user text;
 * a table whose default does not validate is malformed and refused at load time.
 * Keys: [a-z0-9_]+, unique within the table. Option `plugin` is reserved by the host. */
typedef struct eqm_param_spec {
    const char *key;
    uint32_t type;       /* enum eqm_param_type */
    size_t offset;       /* offsetof(your_opts_struct, field) */
    const char *def;     /* default, as text; NULL only for STRING (= empty string) */
    double min, max;     /* INT/FLOAT: inclusive range; ignored when min > max */
    const char *choices; /* ENUM: "a|b|c"; NULL otherwise */
    const char *help;    /* one line */
} eqm_param_spec;

/* A plugin descriptor. `size` MUST be sizeof(eqm_plugin_desc) as compiled by the plugin;
 * the host reads nothing past it. New fields are appended (minor bump). */
typedef struct eqm_plugin_desc {
    uint32_t size;
    uint16_t abi_major, abi_minor;
    uint32_t kind;              /* enum eqm_kind */
    const char *name;           /* [a-z0-9_]+, unique per kind */
    const char *version;        /* plugin's own version, free text ("1.0.0") */
    const char *summary;        /* one line, for `equimod plugins` / `describe` */
    const eqm_param_spec *params; /* option table (NULL = no options) */
    size_t params_size;         /* sizeof the option struct the host fills and passes to create */
    const void *ops;            /* kind ops table (kinds.h); starts with uint32_t size */
} eqm_plugin_desc;

/* The size of the 1.0 descriptor: the host refuses anything smaller. */
#define EQM_PLUGIN_DESC_SIZE_V1_0 (offsetof(eqm_plugin_desc, ops) + sizeof(const void *))

typedef const eqm_plugin_desc *(*eqm_plugin_entry_fn)(uint32_t index);

/* Use once per plugin file, at file scope, with an array of descriptor pointers:
 *     static const eqm_plugin_desc *const descs[] = { &my_desc };
 *     EQM_PLUGIN_ENTRY(descs)
 * In C++ the entry gets C linkage (extern "C"), as the host looks it up by name. */
#ifdef __cplusplus
#define EQM_ENTRY_LINKAGE extern "C"
#else
#define EQM_ENTRY_LINKAGE
#endif
#define EQM_PLUGIN_ENTRY(descs)                                                          \
    EQM_ENTRY_LINKAGE EQM_EXPORT const eqm_plugin_desc *eqm_plugin_entry(uint32_t index); \
    EQM_ENTRY_LINKAGE EQM_EXPORT const eqm_plugin_desc *eqm_plugin_entry(uint32_t index)  \
    {                                                                                    \
        return index < sizeof(descs) / sizeof((descs)[0]) ? (descs)[index] : NULL;       \
    }

#define EQM_PLUGIN_ENTRY_SYMBOL "eqm_plugin_entry"

/* Helper to fill the header of a descriptor. */
#define EQM_DESC_HEADER(kind_) sizeof(eqm_plugin_desc), EQM_ABI_MAJOR, EQM_ABI_MINOR, (kind_)

#ifdef __cplusplus
}
#endif

#include "host_api.h"
#include "kinds.h"

#endif
