/* host/sections.h: typed config sections owned by the host itself (not by a plugin).
 *
 * A config section is either a plugin section (it has `plugin = NAME`; its options are the
 * plugin's table) or a host section listed here. Each host module that reads a section
 * adds one entry to host_sections[] in host/sections.c, pointing at a spec table and
 * option struct defined in its own file. `equimod config` and `equimod train` resolve
 * every section through this table, so unknown sections/keys are caught before any work.
 * Section name patterns: an entry whose name ends in ".*" matches any suffix
 * ("augment.*" matches "augment.crop"). */
#ifndef EQM_HOST_SECTIONS_H
#define EQM_HOST_SECTIONS_H

#include <stddef.h>

#include <equimod/equimod.h>

typedef struct host_section {
    const char *name;            /* "run", "optim", "loader", ... */
    int plugin_kind;             /* -1: host section; else enum eqm_kind (section has plugin=) */
    const eqm_param_spec *spec;  /* host sections: option table (NULL for plugin sections) */
    size_t opts_size;            /* host sections: sizeof option struct */
    int required;                /* 1: must be present in a training config */
    const char *help;
} host_section;

extern const host_section host_sections[]; /* terminated by name == NULL */
const host_section *host_section_find(const char *section_name);
/* The keys of plugin section `section_name` that the host reads itself, not the plugin
 * (NULL-terminated): "plugin", and for [equimod] "t_fields" (loader.h). Optional: a config
 * without them is valid, and its resolved text shows them only when given. */
const char *const *host_plugin_keys(const char *section_name);

/* [run]: options of a run as a whole (host/sections.c). */
typedef struct run_opts {
    int64_t seed;        /* base seed of every random stream */
    const char *out_dir; /* parent folder of run folders */
    const char *name;    /* run folder name; "" = derived from the config */
} run_opts;
extern const eqm_param_spec run_spec[];

#endif
